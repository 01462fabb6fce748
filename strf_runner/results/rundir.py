"""A run directory: every file written atomically, a finished run never overwritten.

``summary.json`` is written last and marks a run as finished.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from strf_runner.atomic import atomic_path
from strf_runner.errors import ResultsError

SUMMARY = "summary.json"


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
    """The folder of one run: config, per-neuron table, history, best checkpoint, summary."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / "best.pt"

    @property
    def finished(self) -> bool:
        return (self.path / SUMMARY).exists()

    def claim(self) -> None:
        """Create the folder for a new run; ResultsError if it already holds a finished run."""
        if self.finished:
            raise ResultsError(
                f"{self.path} already holds a finished run ({SUMMARY} exists); "
                "refusing to overwrite it: choose another hydra.run.dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_csv(self, name: str, table: pd.DataFrame) -> Path:
        return self.write_text(name, table.to_csv(index=False, float_format="%.6g"))

    def write_json(self, name: str, obj: dict[str, Any]) -> Path:
        return self.write_text(name, json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write summary.json, the marker of a finished run; call it last."""
        return self.write_json(SUMMARY, summary)
