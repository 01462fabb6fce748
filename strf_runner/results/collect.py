"""Finding run directories on disk and reading what each holds, finished or not.

A run directory is any folder with the run's own ``config.yaml`` (written first by every run). Its
status: ``finished`` (summary.json, written last), ``failed`` (failed.json, written by a sweep job
that raised) or ``unfinished`` (neither: killed, or still running).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from strf_runner.errors import ResultsError
from strf_runner.results.rundir import SUMMARY

CONFIG = "config.yaml"
FAILED = "failed.json"
NEURONS = "neurons.csv"

# keys that say where or how fast a run ran, not what it computed: not part of its identity
VOLATILE_KEYS = frozenset({"run_name", "sweep_root", "reuse_finished", "analysis", "resume", "trainer.threads"})
# keys that tell the replicates of one arm apart
SEED_KEYS = frozenset({"seed", "data_seed"})
# keys that tell arms apart but not their results' identity: the same arm on any device
DEVICE_KEYS = frozenset({"device", "trainer.device"})


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are kept as values (as tuples, so they hash)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def differing_keys(old: dict[str, Any], new: dict[str, Any], ignore: frozenset[str] = frozenset()) -> list[str]:
    """Dotted keys whose values differ between two nested configs (missing counts as None), sorted
    with ``*.name`` keys first (the most telling difference); keys in ``ignore`` are skipped."""
    a, b = flatten(old), flatten(new)
    keys = (k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in ignore)
    return sorted(keys, key=lambda k: (not k.endswith(".name"), k))


def config_hash(resolved: dict[str, Any]) -> str:
    """Content hash of a resolved run config (nested dict): 16 hex digits of SHA-256 over its
    canonical JSON, without the volatile keys and without null values (a key added to the schema
    later with a null default leaves the hashes of older runs valid). Equal hashes = the same
    computation."""
    flat = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in flatten(resolved).items()
        if k not in VOLATILE_KEYS and v is not None
    }
    blob = json.dumps(flat, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    """One run directory as found on disk."""

    path: Path
    status: str  # finished | failed | unfinished
    config: dict[str, Any]  # flattened resolved config
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def neurons(self) -> pd.DataFrame:
        """The run's per-neuron table (finished runs only)."""
        path = self.path / NEURONS
        try:
            return pd.read_csv(path, dtype={"id": str})
        except (OSError, ValueError) as err:
            raise ResultsError(f"cannot read {path}: {err}") from err


def find_run_dirs(root: str | Path) -> Iterator[Path]:
    """Every run directory at or below ``root`` (hidden folders such as .hydra, .submitit skipped)."""
    root = Path(root)
    if (root / CONFIG).is_file():
        yield root
        return
    if not root.is_dir():
        raise ResultsError(f"{root} is not a directory")
    children = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for child in sorted(children, key=_natural_key):  # 2_x before 10_x: Hydra's job order
        yield from find_run_dirs(child)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_run(path: str | Path) -> RunRecord:
    """Status, config and (if finished) summary of one run directory."""
    path = Path(path)
    try:
        config = yaml.safe_load((path / CONFIG).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ResultsError(f"cannot read {path / CONFIG}: {err}") from err
    flat = flatten(config)
    if (path / SUMMARY).is_file():
        return RunRecord(path, "finished", flat, summary=_read_json(path / SUMMARY))
    if (path / FAILED).is_file():
        return RunRecord(path, "failed", flat, error=str(_read_json(path / FAILED).get("error", "")))
    return RunRecord(path, "unfinished", flat)


def collect_runs(roots: list[str | Path]) -> list[RunRecord]:
    """Every run under the given folders (each a sweep dir, a folder of sweeps, or one run dir)."""
    seen: set[Path] = set()
    runs = []
    for root in roots:
        for path in find_run_dirs(root):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(read_run(path))
    return runs


def _visible(root: str | Path, name: str) -> Iterator[Path]:
    """Every file called ``name`` below ``root`` outside hidden folders (.hydra, .submitit)."""
    root = Path(root)
    if not root.is_dir():
        return
    for path in root.rglob(name):
        if not any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            yield path


def find_finished(root: str | Path, wanted_hash: str) -> Path | None:
    """A finished run below ``root`` whose summary records ``config_hash`` = wanted_hash, if any."""
    for summary in _visible(root, SUMMARY):
        try:
            if _read_json(summary).get("config_hash") == wanted_hash:
                return summary.parent
        except ResultsError:
            continue
    return None


def find_interrupted(root: str | Path, wanted_hash: str, state: str = "last.pt") -> Path | None:
    """An unfinished run below ``root`` with a saved training state whose config.yaml hashes to
    ``wanted_hash`` (so it can be resumed), if any."""
    for config in _visible(root, CONFIG):
        run = config.parent
        if (run / SUMMARY).exists() or not (run / state).is_file():
            continue
        try:
            if config_hash(yaml.safe_load(config.read_text()) or {}) == wanted_hash:
                return run
        except (OSError, yaml.YAMLError):
            continue
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read {path}: {err}") from err
