"""``logger=mlflow``: the run as an MLflow run (through ``MlflowClient``, no global active-run state).

One MLflow run per strf-runner run, in an experiment named after its sweep (``group_name``: the sweep
dir's absolute path, ``/home/me/project/outputs/multirun/2026-12-01/14-03-11``) or
``logger.mlflow.experiment_name`` (default for a single run: ``strf-runner``). Params: the resolved
config's non-volatile keys. Tags: config hash, seeds, dataset and its SHA-256, versions, device, the
sweep's varying keys with this run's values (``frontend``, ``seed`` ...), ``strf.run_dir``,
``strf.status`` (running / finished / failed / interrupted) and ``strf.error``. Metrics: every
epoch's values (step = epoch), then the test scores at the best epoch. Artifacts: neurons.csv,
history.csv, summary.json and the run's figures. The MLflow run id is kept in the run's tracking.json,
so a resumed run continues the same MLflow run.

The default store is local and offline: ``sqlite:///<cwd>/outputs/mlflow.db``, with artifacts beside it
in ``outputs/mlartifacts`` (``mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db``). For a server,
requests time out after ``timeout_s`` with one retry, so a server that is down costs the run seconds,
once: the tracker is then dropped with a warning. A sqlite store is tried first with Python's own
sqlite3 (opened, read, a change made and rolled back): one that cannot be opened, is not a database or
is read-only costs the run milliseconds and one warning, not MLflow's ten tries at creating its engine
(about 100 s, each logged) or a traceback at its first write.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from strf_runner.config import TrackerConfig
from strf_runner.errors import ConfigError
from strf_runner.results.summary import RunSummary
from strf_runner.tracking.base import RunInfo, Tracker, final_scalars, short_value, tracker

DEFAULT_STORE = Path("outputs") / "mlflow.db"
ARTIFACTS = "mlartifacts"
SINGLE_RUN_EXPERIMENT = "strf-runner"
PARAM_LIMIT = 6000  # MLflow's longest param value
BATCH = 100  # params per log_batch call (MLflow's limit)


def default_uri() -> str:
    return f"sqlite:///{DEFAULT_STORE.resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///<path>`` store; None for a server."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_sqlite_store(uri: str, path: Path, timeout_s: float) -> None:
    """ConfigError (one line naming ``uri``) unless the store's file can be created or opened, read as a
    database and written: a table is made and rolled back, as MLflow's first write would (waiting at most
    ``timeout_s`` for another process's lock)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=timeout_s, isolation_level=None)) as db:
            db.execute("SELECT count(*) FROM sqlite_master")
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE strf_runner_probe (x)")
            db.execute("ROLLBACK")
    except (OSError, sqlite3.Error) as err:
        raise ConfigError(f"logger.mlflow.tracking_uri={uri}: the store cannot be opened and written ({err})") from err


@dataclass
class MLflowLoggerConfig(TrackerConfig):
    """MLflow. tracking_uri null: a local store, ``sqlite:///outputs/mlflow.db`` under the working
    directory (artifacts beside it); ``http://host:5000`` for a server. experiment_name null: the sweep
    dir for a sweep's runs (one experiment per sweep), ``strf-runner`` for single runs. timeout_s: per
    request to a server (one retry), so a server that is down costs the run seconds, once."""

    tracking_uri: Optional[str] = None
    experiment_name: Optional[str] = None
    timeout_s: int = 10

    def check(self) -> None:
        if self.timeout_s < 1:
            raise ConfigError(f"logger.mlflow.timeout_s={self.timeout_s!r} must be >= 1")


@tracker("mlflow", package="mlflow", config=MLflowLoggerConfig)
class MLflowTracker(Tracker):
    def __init__(self, tracking_uri: str | None = None, experiment_name: str | None = None, timeout_s: int = 10
                 ) -> None:
        self.uri = tracking_uri or default_uri()
        self.experiment_name = experiment_name
        self.timeout_s = timeout_s
        self.client: Any = None
        self.run_id: str | None = None
        self.step = 0

    def _connect(self) -> Any:
        if self.client is None:
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.timeout_s))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            store = sqlite_file(self.uri)
            if store is not None:
                check_sqlite_store(self.uri, store, self.timeout_s)
            from mlflow.tracking import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.WARNING)  # its import sets INFO: database migration chatter
            # what its sqlite store logs (retries, tracebacks) comes before an exception that Trackers reports
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
            self.client = MlflowClient(tracking_uri=self.uri)
        return self.client

    def experiment_id(self, group: str | None) -> str:
        name = self.experiment_name or group or SINGLE_RUN_EXPERIMENT
        client = self._connect()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=self.artifact_root(),
                                        tags={"mlflow.experimentKind": "custom_model_development"})  # the UI's training view

    def artifact_root(self) -> str | None:
        """A local sqlite store keeps its artifacts beside it (``mlartifacts``); a server chooses its own."""
        store = sqlite_file(self.uri)
        return None if store is None else str(store.parent.resolve() / ARTIFACTS)

    def start(self, info: RunInfo) -> dict[str, Any]:
        client = self._connect()
        tags = {**info.tags, **info.varying, "strf.run_dir": str(info.run_dir.resolve()), "strf.status": "running"}
        if info.group:
            tags["strf.sweep"] = info.group
        if info.previous is not None:
            self.run_id = info.previous["run_id"]
            client.update_run(self.run_id, status="RUNNING")
            self._log(tags={**tags, "strf.status": "resumed"})
        else:
            run = client.create_run(self.experiment_id(info.group), run_name=info.name)
            self.run_id = run.info.run_id
            self._log(tags=tags, params={k: short_value(v, PARAM_LIMIT) for k, v in info.params.items()})
        return {"run_id": self.run_id, "tracking_uri": self.uri}

    def _log(self, metrics: dict[str, float] | None = None, step: int = 0, params: dict[str, str] | None = None,
             tags: dict[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metrics_ = [Metric(k, v, now, step) for k, v in (metrics or {}).items() if math.isfinite(v)]
        params_ = [Param(k, v) for k, v in (params or {}).items()]
        tags_ = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        while metrics_ or params_ or tags_:
            self.client.log_batch(self.run_id, metrics=metrics_[:BATCH], params=params_[:BATCH], tags=tags_[:BATCH])
            metrics_, params_, tags_ = metrics_[BATCH:], params_[BATCH:], tags_[BATCH:]

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._log(metrics=values, step=epoch)
        self.step = epoch

    def finish(self, summary: RunSummary, files: dict[str, Path]) -> None:
        step = int(summary.best_epoch or self.step)
        self._log(metrics=final_scalars(summary), step=step, tags={"strf.status": "finished", "strf.stop_reason": summary.stop_reason})
        for name, path in files.items():
            folder = str(Path(name).parent)
            self.client.log_artifact(self.run_id, str(path), None if folder == "." else folder)
        self._end("FINISHED")

    def fail(self, status: str, error: str) -> None:
        if self.run_id is None:
            return
        self._log(tags={"strf.status": status, **({"strf.error": error[:PARAM_LIMIT]} if error else {})})
        self._end("KILLED" if status == "interrupted" else "FAILED")

    def _end(self, status: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints "View run ... at: <url>" for a server
            self.client.set_terminated(self.run_id, status)

    def logged(self, info: RunInfo) -> bool:
        client = self._connect()
        found = client.get_experiment_by_name(self.experiment_name or info.group or SINGLE_RUN_EXPERIMENT)
        if found is None:
            return False
        runs = client.search_runs([found.experiment_id], f"tags.`strf.run_dir` = '{info.run_dir.resolve()}'",
                                  max_results=1)
        return len(runs) > 0

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        """One run named "aggregate" in the sweep's experiment: the headline numbers as metrics, the
        report's tables, report.md and figures as artifacts."""
        client = self._connect()
        run = client.create_run(self.experiment_id(group), run_name="aggregate",
                                tags={"strf.sweep": group, "strf.kind": "aggregate", "strf.status": "finished"})
        self.run_id = run.info.run_id
        self._log(metrics=scalars)
        for name, path in files.items():
            folder = str(Path(name).parent)
            client.log_artifact(self.run_id, str(path), None if folder == "." else folder)
        self._end("FINISHED")
