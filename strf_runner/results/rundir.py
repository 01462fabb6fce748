"""The run directory: every file name in it, who writes what, and when a run counts as finished.

This module is the one owner of the layout; runs, sweeps, reports, predict, analyze and resume read
and write a run directory only through the names and methods here. Layout, in the order a run writes it:

=======================  ==============================================================================
``run.lock``             the owner while the run lives (below); removed at the end
``.hydra/``              Hydra's record of the command (CLI runs only)
``config.yaml``          the resolved config, written first: a folder with one is a run directory
``model.json``           every constructor argument of the model plus what feeding it needs
``data.json``            the data it trains on: the dataset file, its SHA-256 and its content digest
                         (``data.digest``), compared by sweep reuse, resume and reports
``last.pt``              the whole training state after the latest epoch (what ``resume=true`` continues)
``best.pt``              the best-validation weights
``neurons.csv``          per-neuron test scores
``test_predictions.npz`` the best model's test predictions (for seed ensembles)
``history.csv``          one row per epoch
``tracking.json``        where the experiment trackers keep this run (an MLflow run id, ...), so that a
                         resumed run continues its own tracking run
``summary.json``         written last, once, never rewritten: its presence means "finished"
``failed.json``          instead of ``summary.json`` when the run failed (plus ``failed_state.pt`` for
                         a training failure)
``analysis/``            strf-analyze's figures, tables and WAVs, indexed by ``analysis/index.json``;
                         written after the run, never touching the files above
=======================  ==============================================================================

model.json and summary.json carry ``format_version`` (``RUN_FORMAT_VERSION``): a reader refuses a newer
one. Every file is written atomically (a temp file renamed into place). A run owns its directory from its
first write to its end through ``run.lock``: an exclusive ``flock`` held by the running process (the
kernel drops it when the process dies, however it dies) on a file that names the owner (pid, host,
start). A second run into the same directory is refused while the first holds it; an interrupted run
(its ``last.pt`` there, no ``summary.json`` or ``failed.json``) is taken over only with ``resume=true``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import yaml

from strf_runner.atomic import atomic_path
from strf_runner.errors import ResultsError
from strf_runner.results.summary import RunSummary

try:
    import fcntl
except ImportError:  # not POSIX: fall back to the pid/host record alone
    fcntl = None  # type: ignore[assignment]

LOCK = "run.lock"
HYDRA_RECORD = ".hydra"
CONFIG = "config.yaml"
MODEL_INFO = "model.json"
DATA = "data.json"
LAST_STATE = "last.pt"
CHECKPOINT = "best.pt"
NEURONS = "neurons.csv"
TEST_PREDICTIONS = "test_predictions.npz"
HISTORY = "history.csv"
TRACKING = "tracking.json"
SUMMARY = "summary.json"
FAILED = "failed.json"
FAILED_STATE = "failed_state.pt"
SLURM = "slurm.json"
ENDED = "ended.json"  # a local_parallel job whose process ended before its run did (strf_runner/launchers.py)
ANALYSIS = "analysis"
ANALYSIS_INDEX = "index.json"  # inside ANALYSIS
#: The layout version of model.json and summary.json, written into both; a reader refuses a newer one.
RUN_FORMAT_VERSION = 1
# what a finished run's results are: copied when a sweep reuses a finished run (summary.json after them)
RESULT_FILES = (CONFIG, MODEL_INFO, DATA, CHECKPOINT, NEURONS, TEST_PREDICTIONS, HISTORY)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, fsync it, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def _json_safe(value: Any) -> Any:
    """NaN and inf become null: JSON has no NaN, and a reader must not mistake it for a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class RunDir:
    """The folder of one run: config, per-neuron table, history, best checkpoint, summary.

    ``claim`` makes this object the folder's owner (see the module docstring) until ``release``;
    ``owned`` does both around a block.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def last_state(self) -> Path:
        return self.path / LAST_STATE

    @property
    def finished(self) -> bool:
        return (self.path / SUMMARY).exists()

    @property
    def interrupted(self) -> bool:
        """A saved training state that neither finished nor failed: what ``resume=true`` continues."""
        return (self.path / LAST_STATE).is_file() and not self.finished and not (self.path / FAILED).exists()

    @property
    def in_use(self) -> bool:
        """Another live process owns this folder (holds the lock of its ``run.lock``)."""
        if self._lock_fd is not None:
            return False
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR)
        except OSError:
            return False
        try:
            return not _try_flock(fd) or (fcntl is None and _live_owner(_read_owner(fd)))
        finally:
            os.close(fd)  # closing drops a lock taken just now

    def claim(self, resume: bool = False) -> None:
        """Create the folder if needed and take ownership of it before anything is written.

        ResultsError (one line) if it holds a finished run, if another live process owns it, or if it
        holds an interrupted run and ``resume`` is false.
        """
        self._refuse_finished()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = self._lock()
        try:
            self._refuse_finished()  # it may have finished while we waited for the lock
            if self.interrupted and not resume:
                owner = _describe(_read_owner(fd))
                raise ResultsError(
                    f"{self.path} holds an interrupted run{owner} with its state in {LAST_STATE}: add resume=true "
                    "to continue it, or choose another hydra.run.dir"
                )
            _write_owner(fd, {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "argv": sys.argv})
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def release(self, interrupted: bool = False) -> None:
        """Give the folder up. ``interrupted``: keep ``run.lock`` with the time of the interruption
        (the message a later run gets names it); otherwise remove it."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            if interrupted:
                _write_owner(fd, {**_read_owner(fd), "interrupted": _now()})
            else:
                (self.path / LOCK).unlink(missing_ok=True)
        finally:
            os.close(fd)

    @contextmanager
    def owned(self, resume: bool = False) -> Iterator["RunDir"]:
        """``claim`` for the block, ``release`` after it (``interrupted`` on Ctrl-C / SIGTERM)."""
        self.claim(resume=resume)
        try:
            yield self
        except KeyboardInterrupt:
            self.release(interrupted=True)
            raise
        except BaseException:
            self.release()
            raise
        self.release()

    def _refuse_finished(self) -> None:
        if self.finished:
            raise ResultsError(
                f"{self.path} already holds a finished run ({SUMMARY} exists); "
                "refusing to overwrite it: choose another hydra.run.dir"
            )

    def _lock(self) -> int:
        """An fd of ``run.lock`` holding its exclusive lock; ResultsError if a live process holds it."""
        path = self.path / LOCK
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_flock(fd):
                    raise ResultsError(f"{self.path} is in use by another run{_describe(_read_owner(fd))}; "
                                       "choose another hydra.run.dir")
                if fcntl is None and _live_owner(_read_owner(fd)):
                    raise ResultsError(f"{self.path} is in use by another run{_describe(_read_owner(fd))}; "
                                       "choose another hydra.run.dir")
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:  # else the previous owner removed the file between our open and our lock: retry
                return fd
            os.close(fd)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_csv(self, name: str, table: pd.DataFrame) -> Path:
        return self.write_text(name, table.to_csv(index=False, float_format="%.6g"))

    def write_json(self, name: str, obj: dict[str, Any]) -> Path:
        return self.write_text(name, json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n")

    def write_summary(self, summary: RunSummary) -> Path:
        """Write summary.json, the marker of a finished run; call it last. A finished run's summary
        is never rewritten (ResultsError): later work (analysis) keeps its own index."""
        self._refuse_finished()
        return self.write_json(SUMMARY, {"format_version": RUN_FORMAT_VERSION, **summary.to_json()})

    def summary(self) -> RunSummary:
        """summary.json, typed; ResultsError naming the file (and key) if it is missing, unreadable,
        malformed or of a newer ``format_version``."""
        path = self.path / SUMMARY
        if not path.is_file():
            raise ResultsError(f"{self.path} is not a finished run ({SUMMARY} missing)")
        return RunSummary.from_json(read_versioned_json(path), path)

    def start(self, config_yaml: str, model_info: dict[str, Any], data: dict[str, Any],
              records: dict[str, str] | None = None) -> None:
        """A run's first writes, once it owns the folder: ``records`` (relative name -> text, the CLI's
        Hydra record), config.yaml, model.json and data.json (``DataIdentity.record()``); a failed.json
        of an earlier attempt is removed."""
        for name, text in (records or {}).items():
            self.write_text(name, text)
        self.write_text(CONFIG, config_yaml)
        (self.path / FAILED).unlink(missing_ok=True)
        self.write_json(MODEL_INFO, {"format_version": RUN_FORMAT_VERSION, **model_info})
        self.write_json(DATA, data)

    def data_record(self) -> dict[str, Any] | None:
        """data.json: the data this folder's run trained on; None for a run from before it was written.
        ResultsError naming the file if it cannot be read."""
        path = self.path / DATA
        return read_json(path) if path.is_file() else None

    def saved_config(self) -> dict[str, Any] | None:
        """The resolved config this folder's run wrote (config.yaml as a nested dict), None if it has none;
        ResultsError naming the file if it cannot be read or is not a mapping of config keys."""
        path = self.path / CONFIG
        if not path.is_file():
            return None
        try:
            config = yaml.safe_load(read_text(path))
        except yaml.YAMLError as err:
            raise ResultsError(f"cannot read {path}: {one_line(err)}") from err
        if not isinstance(config, dict) or not config:
            raise ResultsError(f"{path} is not a mapping of config keys")
        return config

    def config(self) -> dict[str, Any]:
        """``saved_config``, which must exist (ResultsError naming the folder otherwise)."""
        config = self.saved_config()
        if config is None:
            raise ResultsError(f"{self.path} is not a run directory ({CONFIG} missing)")
        return config

    def tracking_records(self) -> dict[str, Any]:
        """tracking.json: what each experiment tracker needs to find this run again, by logger kind ({} if none)."""
        path = self.path / TRACKING
        if not path.is_file():
            return {}
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ResultsError(f"{path} cannot be read ({err}): remove it to start new tracking runs") from err
        return records if isinstance(records, dict) else {}

    def write_test_predictions(self, predictions: np.ndarray, stimuli: list[int], neuron_ids: list[str]) -> Path:
        """The best model's test-set predictions: ``predictions`` (S, N, T_max) float32 (NaN past a
        shorter stimulus's end), ``stimuli`` (S,) dataset indices, ``neuron_ids`` (N,)."""
        path = self.path / TEST_PREDICTIONS
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, predictions=np.asarray(predictions, dtype=np.float32),
                     stimuli=np.asarray(stimuli, dtype=np.int64), neuron_ids=np.asarray(neuron_ids))
        return path

    def record_failure(self, failure: dict[str, Any]) -> Path:
        """failed.json: ``failure`` holds at least "error" (one line) and "type"."""
        return self.write_json(FAILED, failure)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (YAML and pandas spread theirs over several)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{err.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def read_text(path: Path) -> str:
    """A run file's text; ResultsError naming the file if it cannot be read or is empty."""
    try:
        text = path.read_text()
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read {path}: {one_line(err)}") from err
    if not text.strip():
        raise ResultsError(f"{path} is empty")
    return text


def read_versioned_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (model.json or summary.json), of a ``format_version`` this code reads;
    ResultsError naming the file otherwise."""
    data = read_json(path)
    version = data.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultsError(f"{path}: key 'format_version' must be a whole number >= 1, got {json.dumps(version)}: "
                           "restore the file from the run that wrote it, or re-run")
    if version > RUN_FORMAT_VERSION:
        raise ResultsError(f"{path}: format_version {version} was written by a newer strf-runner (this one reads up "
                           f"to {RUN_FORMAT_VERSION}): upgrade strf-runner to use this run")
    return data


def read_json(path: Path) -> dict[str, Any]:
    """A run file holding a JSON object (summary.json, failed.json, data.json, model.json); ResultsError naming the file if it is not one."""
    try:
        value = json.loads(read_text(path))
    except ValueError as err:
        raise ResultsError(f"cannot read {path}: {one_line(err)}") from err
    if not isinstance(value, dict):
        raise ResultsError(f"{path} is not a JSON object")
    return value


def _try_flock(fd: int) -> bool:
    """Take an exclusive non-blocking flock; False if another process holds one. Where the file
    system has no locks (some network mounts), True: the pid/host record is then the only guard."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return True
        raise
    return True


def _live_owner(owner: dict[str, Any]) -> bool:
    """Without flock: the recorded owner is a live process on this host."""
    pid = owner.get("pid")
    if owner.get("interrupted") or owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 1 << 16)
        owner = json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _write_owner(fd: int, owner: dict[str, Any]) -> None:
    data = (json.dumps(owner) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _describe(owner: dict[str, Any]) -> str:
    """' (pid 123 on host, started ...)' from an owner record, or '' when it says nothing."""
    if not owner:
        return ""
    parts = [f"pid {owner.get('pid')} on {owner.get('host')}", f"started {owner.get('started')}"]
    if owner.get("interrupted"):
        parts.append(f"interrupted {owner['interrupted']}")
    return " (" + ", ".join(parts) + ")"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
