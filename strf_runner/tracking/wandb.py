"""``logger=wandb``: the run as a Weights & Biases run, offline by default.

The W&B run id is derived from the run dir (``run_id``), so a resumed run continues the same W&B run
(``resume="allow"``) and a sweep logged again after the fact finds it. Config: the resolved config's
non-volatile keys plus ``strf.<tag>`` (hash, seeds, dataset, versions, device); W&B tags: the sweep's
varying keys (``frontend=leaf``); group: the sweep. History: every epoch's values (step = epoch).
Summary: the test scores, stop reason and status. At the end: neurons.csv as a W&B table and the run's
figures as images. Offline runs live in ``<run dir>/wandb/offline-run-*-<id>`` (``wandb sync`` them).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from strf_runner.config import TrackerConfig
from strf_runner.errors import ConfigError
from strf_runner.results.summary import RunSummary
from strf_runner.tracking.base import RunInfo, Tracker, final_scalars, short_value, tracker

EXIT_CODES = {"failed": 1, "interrupted": 130}


def run_id(name: str) -> str:
    """A W&B run id from a run dir (or a sweep's name): stable, 16 hex digits."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def wandb_group(group: str | None) -> str | None:
    """A sweep's group name as W&B takes it (at most 128 characters: the end of the path)."""
    return group if group is None or len(group) <= 128 else group[-128:]


@dataclass
class WandbLoggerConfig(TrackerConfig):
    """Weights & Biases. mode offline (the default: files under ``<run dir>/wandb``, ``wandb sync`` them
    later) or online (after ``wandb login``). save_dir null: the run dir. A sweep's runs form a W&B group."""

    project: str = "strf-runner"
    entity: Optional[str] = None
    mode: str = "offline"
    save_dir: Optional[str] = None

    def check(self) -> None:
        if self.mode not in ("offline", "online"):
            raise ConfigError(f"logger.wandb.mode={self.mode!r} must be 'offline' or 'online'")


@tracker("wandb", package="wandb", config=WandbLoggerConfig)
class WandbTracker(Tracker):
    def __init__(self, project: str = "strf-runner", entity: str | None = None, mode: str = "offline",
                 save_dir: str | None = None) -> None:
        self.project, self.entity, self.mode, self.save_dir = project, entity, mode, save_dir
        self.run: Any = None
        self.step = 0

    def directory(self, info_dir: Path) -> Path:
        return Path(self.save_dir) if self.save_dir else info_dir

    def _init(self, directory: Path, **kwargs: Any) -> Any:
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True)
        return wandb.init(project=self.project, entity=self.entity, mode=self.mode, dir=str(directory),
                          resume="allow", reinit="create_new", settings=settings, **kwargs)

    def start(self, info: RunInfo) -> dict[str, Any]:
        identifier = run_id(str(info.run_dir.resolve()))
        config = {k: short_value(v) for k, v in info.params.items()}
        config.update({f"strf.{k}": v for k, v in info.tags.items()})
        directory = self.directory(info.local_dir or info.run_dir)
        if self.mode == "offline":
            wait_for_a_new_folder(directory / "wandb", identifier)
        self.run = self._init(directory, id=identifier, name=info.name,
                              group=wandb_group(info.group), job_type="run", config=config,
                              tags=[f"{k}={v}"[:64] for k, v in info.varying.items()])
        self.run.summary["status"] = "resumed" if info.resumed else "running"
        return {"id": identifier}

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self.run.log(values, step=epoch)
        self.step = epoch

    def finish(self, summary: RunSummary, files: dict[str, Path]) -> None:
        self.run.summary.update({**final_scalars(summary), "stop_reason": summary.stop_reason,
                                 "status": "finished"})
        self.run.log(self._media(files), step=self.step)
        self.run.finish(exit_code=0)

    def fail(self, status: str, error: str) -> None:
        if self.run is not None:
            self.run.summary.update({"status": status, **({"error": error} if error else {})})
            self.run.finish(exit_code=EXIT_CODES[status])

    def logged(self, info: RunInfo) -> bool:
        """Logged live (under the run dir) or replayed before (under ``local_dir``)."""
        identifier = run_id(str(info.run_dir.resolve()))
        places = {self.directory(info.run_dir), self.directory(info.local_dir or info.run_dir)}
        return any(any((place / "wandb").glob(f"*-{identifier}")) for place in places)

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        """One run named "aggregate" in the sweep's group: the report's tables and figures, headline numbers
        in its summary."""
        self.run = self._init(self.directory(local_dir), id=run_id(f"{group} aggregate"), name="aggregate",
                              group=wandb_group(group), job_type="aggregate")
        self.run.summary.update(scalars)
        self.run.log(self._media(files))
        self.run.finish(exit_code=0)

    @staticmethod
    def _media(files: dict[str, Path]) -> dict[str, Any]:
        """CSV files as W&B tables, PNGs as images, by name without the suffix."""
        import pandas as pd
        import wandb

        media: dict[str, Any] = {}
        for name, path in files.items():
            if path.suffix == ".csv":
                media[name.removesuffix(".csv")] = wandb.Table(dataframe=pd.read_csv(path))
            elif path.suffix == ".png":
                media[name.removesuffix(".png")] = wandb.Image(str(path))
        return media


def wait_for_a_new_folder(wandb_dir: Path, identifier: str) -> None:
    """W&B names an offline session's folder ``offline-run-<YYYYmmdd_HHMMSS>-<run id>``: a resumed run that
    starts within the second its earlier session started would write into that session's folder and
    replace its file. Wait (under a second) until the clock names a folder that does not exist yet."""
    while (wandb_dir / f"offline-run-{time.strftime('%Y%m%d_%H%M%S')}-{identifier}").exists():
        time.sleep(0.05)
