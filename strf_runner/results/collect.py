"""Finding run directories on disk and reading what each holds, finished or not.

A run directory is any folder with the run's own ``config.yaml`` (written first by every run). Its
status: ``finished`` (summary.json, written last), ``failed`` (failed.json, written by a sweep job
that raised), ``unfinished`` (neither: killed, or still running) or, in a report, ``corrupt`` (a file
the report needs cannot be read: config.yaml, summary.json, failed.json, or a finished run's
neurons.csv; the record's error names the file and what is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from strf_runner.data.digest import recorded_digest
from strf_runner.errors import ResultsError
from strf_runner.identity import config_hash, flatten
from strf_runner.results.rundir import (
    CONFIG,
    ENDED,
    FAILED,
    LAST_STATE,
    MODEL_INFO,
    NEURONS,
    SLURM,
    SUMMARY,
    RunDir,
    one_line,
    read_json,
)
from strf_runner.results.summary import RunSummary


@dataclass
class RunRecord:
    """One run directory as found on disk."""

    path: Path
    status: str  # finished | failed | unfinished | corrupt
    config: dict[str, Any]  # flattened resolved config ({} when config.yaml is unreadable)
    summary: RunSummary | None = None  # a finished run's
    error: str = ""
    _neurons: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def data(self) -> str | None:
        """The data the run trained on, as a report labels it (``recorded_digest``): from its summary
        when finished, else from data.json; None where neither says."""
        if self.status == "finished":
            return recorded_digest(self.summary.data_identity)
        try:
            return recorded_digest(RunDir(self.path).data_record())
        except ResultsError:
            return None

    def neurons(self) -> pd.DataFrame:
        """The run's per-neuron table (finished runs only), read once; ResultsError naming the file if
        it cannot be read or is not one row per neuron with an id, a numeric cc_norm and a true/false
        valid, or if its ids are not the neurons the run fitted (model.json's neuron_ids; without one,
        as many as summary.json's test_n_neurons)."""
        if self._neurons is None:
            table = _read_neurons(self.path / NEURONS)
            _check_neuron_set(table, self.path, self.summary)
            self._neurons = table
        return self._neurons


def _read_neurons(path: Path) -> pd.DataFrame:
    """A neurons.csv as a report needs it; ResultsError naming the file and what is wrong otherwise."""
    try:
        table = pd.read_csv(path, dtype={"id": str})
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read {path}: {one_line(err)}") from err
    missing = [c for c in ("id", "cc_norm", "valid") if c not in table.columns]
    if missing:
        problem = f"lacks the {' and '.join(missing)} column{'s' if len(missing) > 1 else ''}"
    elif table.empty:
        problem = "holds no neurons"
    elif not is_numeric_dtype(table["cc_norm"]):
        problem = "has cc_norm values that are not numbers"
    elif not is_bool_dtype(table["valid"]):
        problem = "has a valid column that is not all True / False (cut short?)"
    elif table["id"].isna().any() or not table["id"].is_unique:
        problem = "has missing or repeated neuron ids"
    else:
        return table
    raise ResultsError(f"{path} {problem}")


def _check_neuron_set(table: pd.DataFrame, run: Path, summary: RunSummary) -> None:
    """ResultsError naming neurons.csv if its rows are not the run's neurons (a row lost or added)."""
    ids = set(table["id"])
    fitted = _fitted_ids(run / MODEL_INFO)
    if fitted is not None and ids != set(fitted):
        missing, extra = sorted(set(fitted) - ids), sorted(ids - set(fitted))
        parts = ([f"lacks {len(missing)} of the run's {len(fitted)} neurons (e.g. {missing[0]})"] if missing else []) + (
            [f"has {len(extra)} neurons the run did not fit (e.g. {extra[0]})"] if extra else [])
        raise ResultsError(f"{run / NEURONS} {' and '.join(parts)} ({MODEL_INFO} lists the run's neurons)")
    expected = summary.test_n_neurons
    if fitted is None and expected is not None and len(ids) != expected:
        raise ResultsError(f"{run / NEURONS} has {len(ids)} neurons where {SUMMARY} says the run tested {expected}")


def _fitted_ids(model_json: Path) -> list[str] | None:
    """model.json's neuron_ids as strings; None where there is no model.json (a hand-made run dir: the
    summary's count is checked instead); ResultsError naming the file if it cannot be read."""
    if not model_json.is_file():
        return None
    info = read_json(model_json)
    ids = info.get("neuron_ids")
    if not isinstance(ids, list):
        raise ResultsError(f"{model_json} has no neuron_ids list")
    return [str(i) for i in ids]


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run directory (holds the config.yaml every run writes first)."""
    return (Path(path) / CONFIG).is_file()


def find_run_dirs(root: str | Path) -> Iterator[Path]:
    """Every run directory at or below ``root`` (hidden folders such as .hydra, .submitit skipped).
    Links to folders are followed, each real folder visited once: a link back up the tree is no loop."""
    root = Path(root)
    if not is_run_dir(root) and not root.is_dir():
        raise ResultsError(f"{root} is not a directory")
    yield from _run_dirs_below(root, set())


def _run_dirs_below(folder: Path, seen: set[Path]) -> Iterator[Path]:
    real = folder.resolve()
    if real in seen:
        return
    seen.add(real)
    if is_run_dir(folder):
        yield folder
        return
    children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for child in sorted(children, key=_natural_key):  # 2_x before 10_x: Hydra's job order
        yield from _run_dirs_below(child, seen)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_run(path: str | Path) -> RunRecord:
    """Status, config and (if finished) summary of one run directory; ResultsError naming the file
    if its config.yaml, summary.json or failed.json cannot be read."""
    path = Path(path)
    return _with_status(path, flatten(RunDir(path).config()))


def _with_status(path: Path, flat: dict[str, Any]) -> RunRecord:
    if (path / SUMMARY).is_file():
        return RunRecord(path, "finished", flat, summary=RunDir(path).summary())
    if (path / FAILED).is_file():
        return RunRecord(path, "failed", flat, error=str(read_json(path / FAILED).get("error", "")))
    for record in (SLURM, ENDED):  # a SLURM or local_parallel job that ended before its run did
        if (path / record).is_file():
            return RunRecord(path, "unfinished", flat, error=str(read_json(path / record).get("error", "")))
    return RunRecord(path, "unfinished", flat)


def survey_run(path: str | Path) -> RunRecord:
    """One run directory as a report sees it, never raising: ``read_run``'s record, with a finished
    run's neurons.csv read and checked too; status ``corrupt`` (the reason as its error, its config
    when config.yaml itself is readable) where any of those files cannot be read."""
    path = Path(path)
    flat: dict[str, Any] = {}
    try:
        flat = flatten(RunDir(path).config())
        record = _with_status(path, flat)
        if record.status == "finished":
            record.neurons()
    except ResultsError as err:
        return RunRecord(path, "corrupt", flat, error=str(err))
    return record


def collect_runs(roots: list[str | Path]) -> list[RunRecord]:
    """Every run under the given folders (each a sweep dir, a folder of sweeps, or one run dir), each
    as ``survey_run`` reads it: a run dir with unreadable files is listed as corrupt, never dropped."""
    seen: set[Path] = set()
    runs = []
    for root in roots:
        for path in find_run_dirs(root):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(survey_run(path))
    return runs


def _visible(root: str | Path, name: str) -> Iterator[Path]:
    """Every file called ``name`` below ``root`` outside hidden folders (.hydra, .submitit)."""
    root = Path(root)
    if not root.is_dir():
        return
    for path in root.rglob(name):
        if not any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            yield path


def finished_with_hash(root: str | Path, wanted_hash: str) -> Iterator[tuple[Path, RunSummary]]:
    """Each finished run below ``root`` whose summary records ``config_hash`` = wanted_hash, with that
    summary (unreadable summaries skipped)."""
    for file in _visible(root, SUMMARY):
        try:
            summary = RunDir(file.parent).summary()
        except ResultsError:
            continue
        if summary.config_hash == wanted_hash:
            yield file.parent, summary


def interrupted_with_hash(root: str | Path, wanted_hash: str, state: str = LAST_STATE) -> Iterator[Path]:
    """Each unfinished run below ``root`` with a saved training state whose config.yaml hashes to
    ``wanted_hash`` (so it can be resumed)."""
    for config in _visible(root, CONFIG):
        run = config.parent
        if (run / SUMMARY).exists() or not (run / state).is_file():
            continue
        try:
            if config_hash(RunDir(run).config()) == wanted_hash:
                yield run
        except ResultsError:
            continue
