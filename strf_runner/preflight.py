"""Checks of a run's data against its config, after the data are loaded and before anything is built.

What a config check cannot see: a readout window longer than the stimuli (refused before its weights
are allocated), splits too short for that window, and splits whose responses have no repeats, where
cc_norm is undefined (Schoppe et al. 2016 need >= 2 repeats for the signal power). The last changes
what early stopping can monitor; everything else is a warning that ends up in summary.json.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from strf_runner import metrics
from strf_runner.config import RunConfig
from strf_runner.data.dataset import NeuralDataset
from strf_runner.errors import ConfigError, StrfRunnerWarning


@dataclass
class Preflight:
    """What the checks decided: the monitor early stopping uses, and the warnings already issued."""

    monitor: str
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, StrfRunnerWarning, stacklevel=3)


def readout_window(cfg: RunConfig) -> int | None:
    """Frames of input history the readout sees per output frame (None: unbounded, a recurrence)."""
    return getattr(cfg.model, "temporal_window_size", None)


def neurons_with_repeats(data: NeuralDataset) -> int:
    """Neurons whose signal power is defined on ``data``: some stimulus has >= 2 usable repeats."""
    sp, _ = metrics.signal_power(_stacked_responses(data))
    return int(torch.isfinite(sp).sum())


def _stacked_responses(data: NeuralDataset) -> torch.Tensor:
    """(S, N, R_max, T_max) NaN-padded responses of every stimulus of ``data``."""
    items = data.items
    r = max(it.responses.shape[1] for it in items)
    t = max(it.responses.shape[2] for it in items)
    out = torch.full((len(items), data.n_neurons, r, t), float("nan"))
    for k, it in enumerate(items):
        out[k, :, : it.responses.shape[1], : it.responses.shape[2]] = it.responses
    return out


def preflight(cfg: RunConfig, sets: dict[str, NeuralDataset]) -> Preflight:
    """Check ``sets`` (train / val / test) against ``cfg``; warn (StrfRunnerWarning) as it goes.

    ConfigError when the readout window is longer than every training stimulus (its far lags would
    never see data, and a huge window would try to allocate its weights first). Warnings: a split
    with stimuli shorter than the window; a split whose responses have no repeats (cc_norm undefined
    there). When the validation split has none and early stopping monitors val_cc_norm, it monitors
    val_cc (the raw correlation) instead, and says so.
    """
    dt = sets["train"].dt_ms
    result = Preflight(monitor=cfg.trainer.monitor)
    window = readout_window(cfg)
    if window is not None:
        longest = max(it.responses.shape[-1] for it in sets["train"].items)
        if window > longest:
            raise ConfigError(
                f"model.temporal_window_size={window} frames ({window * dt / 1000:g} s) is longer than every "
                f"training stimulus (the longest has {longest} frames, {longest * dt / 1000:g} s)"
            )
        for name, data in sets.items():
            short = [it for it in data.items if it.responses.shape[-1] < window]
            if short:
                result.warn(
                    f"{len(short)} of {len(data)} {name} stimuli are shorter than the readout's window of {window} "
                    f"frames ({window * dt:g} ms): their predictions rest on zero-padded history"
                )
    for name in ("val", "test"):  # train cc_norm is only tracked, never used
        if neurons_with_repeats(sets[name]) > 0:
            continue
        if name == "val" and cfg.trainer.monitor == "val_cc_norm":
            result.monitor = "val_cc"
            result.warn(
                "no validation stimulus has 2 or more repeats, so val cc_norm is undefined: early stopping "
                "monitors val_cc (the raw correlation) instead (set trainer.monitor=val_cc to choose it yourself)"
            )
        else:
            result.warn(
                f"no {name} stimulus has 2 or more repeats: cc_norm is undefined on the {name} split "
                "(NaN, valid=false); its raw correlation is in cc_abs"
            )
    return result


def few_valid_warning(n_valid: int, n_neurons: int, result: Preflight) -> None:
    """Warn when fewer than half the neurons have a defined test cc_norm: the mean then describes few."""
    if n_valid < n_neurons / 2:
        result.warn(
            f"only {n_valid} of {n_neurons} neurons have a defined test cc_norm: the test mean and median "
            "describe those few (see valid in neurons.csv)"
        )
