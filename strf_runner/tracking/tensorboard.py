"""``logger=tensorboard``: the run as TensorBoard event files (torch's SummaryWriter).

Scalars ``epoch/<name>`` per epoch (step = epoch), ``test/<name>`` at the end (step = the best epoch),
a histogram ``test/cc_norm_per_neuron`` of the valid neurons, the config and tags as text, and
``status`` as text (finished / failed: error / interrupted). A resumed run writes into
the same directory, continuing its curves from the epoch it resumes at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strf_runner.tracking.base import RunInfo, Tracker, final_scalars, tracker

TB_DIR = "tb"


@tracker("tensorboard", package="tensorboard")
class TensorBoardTracker(Tracker):
    def __init__(self, save_dir: str | None = None) -> None:
        self.save_dir = save_dir
        self.writer: Any = None
        self.step = 0

    def start(self, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(self.save_dir) / info.name if self.save_dir else info.run_dir / TB_DIR
        self.writer = SummaryWriter(log_dir=str(log_dir))
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(info.params.items()))
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows)
        self.writer.add_text("tags", "\n".join(f"- {k}: {v}" for k, v in sorted(info.tags.items())))
        self.writer.add_text("status", "resumed" if info.resumed else "running")
        self.writer.flush()

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"epoch/{name}", value, epoch)
        self.writer.flush()
        self.step = epoch

    def finish(self, summary: dict[str, Any], files: dict[str, Path]) -> None:
        import numpy as np
        import pandas as pd

        step = int(summary.get("best_epoch") or self.step)
        for name, value in final_scalars(summary).items():
            self.writer.add_scalar(f"test/{name}", value, step)
        if "neurons" in files:
            table = pd.read_csv(files["neurons"])
            scores = table.loc[table["valid"], "cc_norm"].to_numpy(dtype=np.float64)
            if len(scores):
                self.writer.add_histogram("test/cc_norm_per_neuron", scores, step)
        self.writer.add_text("status", f"finished: {summary.get('stop_reason')}, best epoch {summary.get('best_epoch')}")
        self.writer.close()

    def fail(self, status: str, error: str) -> None:
        if self.writer is not None:
            self.writer.add_text("status", f"{status}: {error}" if error else status)
            self.writer.close()
