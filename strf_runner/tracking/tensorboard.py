"""``logger=tensorboard``: the run as TensorBoard event files (torch's SummaryWriter).

Scalars ``epoch/<name>`` per epoch (step = epoch), ``test/<name>`` at the end (step = the best epoch),
a histogram ``test/cc_norm_per_neuron`` of the valid neurons, the run's figures as images, the config
and tags as text, and ``status`` as text (running / resumed / finished / failed: error / interrupted).
A live run writes ``<run dir>/tb`` (or ``<save_dir>/<run name>``): ``tensorboard --logdir <sweep dir>``
shows a sweep's runs side by side, with the sweep's aggregate in ``<sweep dir>/aggregate/tb``. A resumed
run writes into the same directory, continuing its curves from the epoch it resumes at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from strf_runner.config import TrackerConfig
from strf_runner.results.summary import RunSummary
from strf_runner.tracking.base import RunInfo, Tracker, final_scalars, tracker

TB_DIR = "tb"


@dataclass
class TensorBoardLoggerConfig(TrackerConfig):
    """TensorBoard event files. save_dir null: ``<run dir>/tb`` (a sweep's runs then sit side by side:
    ``tensorboard --logdir <sweep dir>``)."""

    save_dir: Optional[str] = None


@tracker("tensorboard", package="tensorboard", config=TensorBoardLoggerConfig)
class TensorBoardTracker(Tracker):
    def __init__(self, save_dir: str | None = None) -> None:
        self.save_dir = save_dir
        self.writer: Any = None
        self.step = 0

    def log_dir(self, info: RunInfo) -> Path:
        if info.previous is not None:
            return Path(info.previous["log_dir"])
        if self.save_dir:
            return Path(self.save_dir) / info.name
        return (info.local_dir or info.run_dir) / TB_DIR

    def start(self, info: RunInfo) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = self.log_dir(info)
        self.writer = SummaryWriter(log_dir=str(log_dir))
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(info.params.items()))
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows)
        tags = {**info.tags, **info.varying, **({"group": info.group} if info.group else {})}
        self.writer.add_text("tags", "\n".join(f"- {k}: {v}" for k, v in sorted(tags.items())))
        self.writer.add_text("status", "resumed" if info.resumed else "running")
        self.writer.flush()
        return {"log_dir": str(log_dir.resolve())}

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"epoch/{name}", value, epoch)
        self.writer.flush()
        self.step = epoch

    def finish(self, summary: RunSummary, files: dict[str, Path]) -> None:
        import numpy as np
        import pandas as pd

        step = int(summary.best_epoch or self.step)
        for name, value in final_scalars(summary).items():
            self.writer.add_scalar(f"test/{name}", value, step)
        if "neurons.csv" in files:
            table = pd.read_csv(files["neurons.csv"])
            scores = table.loc[table["valid"], "cc_norm"].to_numpy(dtype=np.float64)
            if len(scores):
                self.writer.add_histogram("test/cc_norm_per_neuron", scores, step)
        self._images(files, step)
        self.writer.add_text("status", f"finished: {summary.stop_reason}, best epoch {summary.best_epoch}")
        self.writer.close()

    def fail(self, status: str, error: str) -> None:
        if self.writer is not None:
            self.writer.add_text("status", f"{status}: {error}" if error else status)
            self.writer.close()

    def logged(self, info: RunInfo) -> bool:
        """Logged live (``<run dir>/tb``) or replayed before (``log_dir``)."""
        return (info.run_dir / TB_DIR).is_dir() or self.log_dir(info).is_dir()

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(self.save_dir) / "aggregate" if self.save_dir else local_dir / TB_DIR))
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, 0)
        for name, path in files.items():
            if path.suffix == ".md":
                self.writer.add_text(name, path.read_text())
        self._images(files, 0)
        self.writer.close()

    def _images(self, files: dict[str, Path], step: int) -> None:
        from matplotlib.image import imread

        for name, path in files.items():
            if path.suffix == ".png":
                pixels = imread(path)[..., :3]  # float RGB in [0, 1]
                self.writer.add_image(name.removesuffix(".png"), pixels, step, dataformats="HWC")
