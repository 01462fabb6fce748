"""summary.json as types: what a finished run (or an assembled cross-validation) reports.

``RunSummary`` is written and read only through ``RunDir`` (``write_summary`` / ``summary``); every
consumer reads attributes. ``to_json`` gives the file's object and ``from_json`` reads it back, with a
one-line ResultsError naming the file and the key where a value is missing or of the wrong type. The
file keeps its layout (``RUN_FORMAT_VERSION`` 1): the best validation score is stored under
``best_<monitor>``, and keys of what did not happen (a resume, a warm start, a CV) are left out.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from strf_runner.errors import ResultsError

RESTORE = "restore the file from the run that wrote it, or re-run"


@dataclass
class DatasetRecord:
    """The data a run trained on. config: the dataset option's name (``synth_tiny``); name: the file's own;
    path / sha256 / content_sha256: the file and its digests (``data.json``); native_source: where its
    spectrogram view comes from; neurons: the selection; splits: stimulus indices by split name (a CV
    dir's: every stimulus as test); provenance: a converted file's (NWB) record of its inputs."""

    path: Optional[str] = None
    sha256: Optional[str] = None
    splits: dict[str, list[int]] = field(default_factory=dict)
    config: Optional[str] = None
    name: Optional[str] = None
    content_sha256: Optional[str] = None
    native_source: Optional[str] = None
    neurons: Any = "all"
    provenance: Optional[dict[str, Any]] = None

    def identity(self) -> dict[str, Any]:
        """The file and its digests, as data.json records them (``DataIdentity.matches`` compares them)."""
        return {"path": self.path, "sha256": self.sha256, "content_sha256": self.content_sha256}


@dataclass
class FoldRecord:
    """One fold of an assembled cross-validation: its run dir's name and what its summary reported."""

    fold: int
    path: str
    config_hash: Optional[str] = None
    best_epoch: Optional[int] = None
    epochs_run: Optional[int] = None
    test_mean_cc_norm: Optional[float] = None
    best_score: Optional[float] = None


@dataclass
class CVRecord:
    """A cross-validation's design: k folds, validation stimuli per fold, each fold's stimulus splits."""

    folds: int
    val: int
    assignment: list[dict[str, list[int]]]


@dataclass
class RunSummary:
    """What a finished run reports (summary.json). Every field has a default, so that a run dir made by
    hand (or by another tool) with a few of them still reports; strf-runner's runs write them all. The
    ``test_*`` scores are over the test neurons
    (``tables.score_summary``); ``best_score`` is the best value of ``monitor`` on validation data (in
    the file: ``best_<monitor>``). A resumed run adds ``resumed_from_epoch`` and the wall time of its
    earlier sessions; a fine-tuned one ``init_from``; a synthetic dataset ``truth_test_mean_cc_norm``
    (the ground-truth ceiling); an assembled cross-validation ``fold_mean_cc_norm``, ``fold_sd_cc_norm``,
    ``compared_by``, ``folds`` and ``cv``; a sweep job that reused a finished run ``reused_from`` (that
    run's dir)."""

    test_mean_cc_norm: float = math.nan
    test_median_cc_norm: float = math.nan
    test_mean_cc_abs: float = math.nan
    test_n_valid: Optional[int] = None
    test_n_neurons: Optional[int] = None
    monitor: str = "val_cc_norm"
    config_hash: Optional[str] = None
    view: Optional[str] = None
    dataset: Optional[DatasetRecord] = None
    wall_time_s: float = math.nan
    best_score: Optional[float] = None
    n_params: Optional[int] = None
    lr: Optional[float] = None
    frontend_lr: Optional[float] = None
    test_loss: Optional[float] = None
    best_epoch: Optional[int] = None
    epochs_run: Optional[int] = None
    stop_reason: Optional[str] = None
    device: Optional[str] = None
    seed: Optional[int] = None
    data_seed: Optional[int] = None
    frontend: Optional[str] = None
    model: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    determinism: Optional[dict[str, Any]] = None
    resumed_from_epoch: Optional[int] = None
    wall_time_earlier_s: Optional[float] = None
    wall_time_total_s: Optional[float] = None
    init_from: Optional[dict[str, Any]] = None
    truth_test_mean_cc_norm: Optional[float] = None
    fold_mean_cc_norm: Optional[float] = None
    fold_sd_cc_norm: Optional[float] = None
    compared_by: Optional[str] = None
    folds: Optional[list[FoldRecord]] = None
    cv: Optional[CVRecord] = None
    reused_from: Optional[str] = None

    @property
    def total_wall_time_s(self) -> float:
        """The run's wall time over all its sessions (a resumed run's earlier ones included)."""
        return self.wall_time_total_s if self.wall_time_total_s is not None else self.wall_time_s

    @property
    def data_identity(self) -> Optional[dict[str, Any]]:
        """The dataset file and its digests, as data.json records them; None where the summary names none."""
        return None if self.dataset is None else self.dataset.identity()

    @property
    def is_cv(self) -> bool:
        """An assembled cross-validation (one score from every fold), not one fitted model."""
        return self.cv is not None

    def to_json(self) -> dict[str, Any]:
        """The file's object (without ``format_version``, which RunDir adds)."""
        best = f"best_{self.monitor}"
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[best if f.name == "best_score" else f.name] = _plain(value)
        for fold in out.get("folds", []):
            fold[best] = fold.pop("best_score")
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], file: Path) -> "RunSummary":
        """The summary in ``data`` (summary.json's object); ResultsError naming ``file`` and the key at fault."""
        data = {k: v for k, v in data.items() if k != "format_version"}
        if isinstance(data.get("monitor"), str):
            best = f"best_{data['monitor']}"
            data["best_score"] = data.pop(best, None)
            if isinstance(data.get("folds"), list):
                data["folds"] = [{**{k: v for k, v in f.items() if k != best}, "best_score": f.get(best)}
                                 if isinstance(f, dict) else f for f in data["folds"]]
        return _build(cls, data, file, "")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, file: Path, parent: str) -> Any:
    """``cls`` from ``data``, each field checked against its type hint (ResultsError naming the key); keys
    this code does not know (an older run's) are left out."""
    if not isinstance(data, dict):
        raise ResultsError(f"{file}: key '{parent or 'summary'}' must be an object, got {_shown(data)}: {RESTORE}")
    hints = get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        name = f"{parent}.{f.name}" if parent else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultsError(f"{file}: key '{name}' is missing: {RESTORE}")
            continue
        values[f.name] = _value(hints[f.name], data[f.name], file, name)
    return cls(**values)


def _value(hint: Any, value: Any, file: Path, name: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _value(hint, value, file, name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, file, name)
    if origin is list:
        if not isinstance(value, list):
            raise ResultsError(f"{file}: key '{name}' must be a list, got {_shown(value)}: {RESTORE}")
        return [_value(args[0], v, file, f"{name}[{i}]") for i, v in enumerate(value)]
    ok = {int: _is_int(value), float: _is_number(value), str: isinstance(value, str),
          dict: isinstance(value, dict)}.get(origin or hint, True)
    if not ok:
        raise ResultsError(f"{file}: key '{name}' must be {_kind(origin or hint)}, got {_shown(value)}: {RESTORE}")
    if (origin or hint) is float:
        return math.nan if value is None else float(value)  # a score of no valid neuron is stored as null
    return value


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) or x is None


def _kind(t: Any) -> str:
    return {int: "a whole number", float: "a number", str: "a string", dict: "an object"}.get(t, str(t))


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: Optional[float]) -> float:
    """A summary's number; NaN where it recorded none."""
    return math.nan if value is None else float(value)
