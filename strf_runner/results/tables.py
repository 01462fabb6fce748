"""Per-neuron result tables and their summary statistics."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from strf_runner.metrics import NeuronScores


def neuron_table(neuron_ids: Sequence[str], scores: NeuronScores) -> pd.DataFrame:
    """One row per neuron, in dataset order; NaN kept where a score is undefined (valid=False)."""
    return pd.DataFrame(
        {
            "neuron": np.arange(len(neuron_ids)),
            "id": list(neuron_ids),
            "cc_norm": scores.cc_norm.numpy(),
            "cc_abs": scores.cc_abs.numpy(),
            "signal_power": scores.signal_power.numpy(),
            "noise_power": scores.noise_power.numpy(),
            "cc_max": scores.cc_max.numpy(),
            "valid": scores.valid.numpy(),
        }
    )


def score_summary(table: pd.DataFrame, prefix: str = "") -> dict[str, Any]:
    """Mean and median cc_norm (and mean cc_abs) over valid neurons, with the counts behind them."""
    valid = table[table["valid"]]

    def stat(series: pd.Series, how: str) -> float:
        return float(getattr(series, how)()) if len(series) else math.nan

    return {
        f"{prefix}mean_cc_norm": stat(valid["cc_norm"], "mean"),
        f"{prefix}median_cc_norm": stat(valid["cc_norm"], "median"),
        f"{prefix}mean_cc_abs": stat(valid["cc_abs"], "mean"),
        f"{prefix}n_valid": int(len(valid)),
        f"{prefix}n_neurons": int(len(table)),
    }


def short_id(neuron_id: str, width: int = 24) -> str:
    """A neuron id short enough for a panel title or a table cell: NS1's ids are recording paths, keep their end."""
    return neuron_id if len(neuron_id) <= width else "…" + neuron_id[-(width - 1):]
