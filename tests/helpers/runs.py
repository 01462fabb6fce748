"""One run in-process: a RunConfig on the tiny dataset, and a Ctrl-C after a given epoch."""

from __future__ import annotations

from tests.helpers.data import TINY_DATASET

from strf_runner.config import FrontendConfig, RunConfig, TrainerConfig
from strf_runner.data.synth import SynthDatasetConfig
from strf_runner.models.linear import LinearModelConfig


class Interrupt(KeyboardInterrupt):
    """What ``interrupt_after`` raises: a Ctrl-C the test can tell from a real one."""


def interrupt_after(epoch: int):
    """An epoch callback that stops the run like Ctrl-C once ``epoch`` epochs are done."""

    def on_epoch_end(record, best, best_epoch, max_epochs):
        if record.epoch == epoch:
            raise Interrupt

    return on_epoch_end


def tiny_config(tmp_path, seed=0, max_epochs=4, **dataset) -> RunConfig:
    """A RunConfig built by hand: native front-end + Linear readout on ``TINY_DATASET`` (fields overridden
    by ``dataset``), cached under ``tmp_path / "cache"``, ``max_epochs`` epochs with patience as long, on CPU."""
    return RunConfig(
        dataset=SynthDatasetConfig(root=str(tmp_path / "cache"), **{**TINY_DATASET, **dataset}),
        frontend=FrontendConfig(name="native"),
        model=LinearModelConfig(),
        trainer=TrainerConfig(max_epochs=max_epochs, patience=max_epochs, device="cpu"),
        seed=seed,
        run_name="test",
    )
