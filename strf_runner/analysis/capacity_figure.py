"""The capacity figure: readouts x front-ends at a glance, the score of each pair and the gain of each
front-end over the native spectrogram under the same readout.

Built on ``matplotlib.figure.Figure`` directly (no pyplot, no display needed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

ARMS_COLUMNS = ("arm", "frontend", "model", "mean_cc_norm")
COMPARISONS_COLUMNS = ("arm", "baseline", "mean_diff", "ci_low", "ci_high")


def has_capacity_grid(arms: pd.DataFrame) -> bool:
    """Whether a sweep's arms cross at least two front-ends with at least two readouts."""
    if not {"frontend", "model"} <= set(arms.columns):
        return False
    return arms["frontend"].nunique() >= 2 and arms["model"].nunique() >= 2


def capacity_figure(arms: pd.DataFrame, comparisons: pd.DataFrame, baseline: str = "native") -> Figure:
    """Two panels from a sweep's ``arms.csv`` and ``comparisons.csv`` tables.

    Left: a heatmap of mean test cc_norm (over valid neurons, each averaged over seeds), readouts as
    rows in the order they first appear, front-ends as columns, every cell annotated. Right: for each
    readout, the paired per-neuron gain of every other front-end over ``baseline`` under that readout,
    with its 95 % bootstrap CI (points with error bars; zero marked). A pair without finished runs is
    blank on the left; a comparison missing from ``comparisons`` has no point on the right.
    ValueError when a table lacks a column or the arms do not form a grid of >= 2 x 2.
    """
    for table, columns, name in ((arms, ARMS_COLUMNS, "arms"), (comparisons, COMPARISONS_COLUMNS, "comparisons")):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{name} lacks the column(s) {missing}")
    if not has_capacity_grid(arms):
        raise ValueError("the arms do not cross >= 2 front-ends with >= 2 readouts")
    readouts = list(dict.fromkeys(arms["model"]))
    frontends = list(dict.fromkeys(arms["frontend"]))
    if baseline in frontends:  # the baseline first, the rest as they came
        frontends = [baseline] + [f for f in frontends if f != baseline]
    grid = np.full((len(readouts), len(frontends)), math.nan)
    arm_of: dict[str, tuple[str, str]] = {}
    for _, row in arms.iterrows():
        grid[readouts.index(row["model"]), frontends.index(row["frontend"])] = row["mean_cc_norm"]
        arm_of[row["arm"]] = (row["model"], row["frontend"])

    fig = Figure(figsize=(4.0 + 1.1 * len(frontends) + 4.5, 1.2 + 0.55 * len(readouts) + 1.0), layout="constrained")
    heat, gains = fig.subplots(1, 2, width_ratios=[len(frontends), 4.0])
    finite = grid[np.isfinite(grid)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = heat.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=low, vmax=high if high > low else low + 1e-9,
                        aspect="auto")
    for i in range(len(readouts)):
        for j in range(len(frontends)):
            if math.isfinite(grid[i, j]):
                bright = (grid[i, j] - low) / (high - low) > 0.6 if high > low else False
                heat.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=9,
                          color="black" if bright else "white")
    heat.set_xticks(range(len(frontends)), frontends, rotation=30, ha="right")
    heat.set_yticks(range(len(readouts)), readouts)
    heat.set_xlabel("front-end")
    heat.set_ylabel("readout")
    heat.set_title("mean test cc_norm")
    fig.colorbar(image, ax=heat, shrink=0.8)

    others = [f for f in frontends if f != baseline]
    colors = {f: colormaps["tab10"](k % 10) for k, f in enumerate(others)}
    width = 0.7 / max(len(others), 1)
    plotted = set()
    for _, row in comparisons.iterrows():
        if row["arm"] not in arm_of or row["baseline"] not in arm_of:
            continue
        model, frontend = arm_of[row["arm"]]
        if arm_of[row["baseline"]] != (model, baseline) or frontend not in colors:
            continue
        y = readouts.index(model) + (others.index(frontend) - (len(others) - 1) / 2) * width
        err = [[row["mean_diff"] - row["ci_low"]], [row["ci_high"] - row["mean_diff"]]]
        gains.errorbar(row["mean_diff"], y, xerr=err, fmt="o", color=colors[frontend], capsize=3,
                       label=frontend if frontend not in plotted else None)
        plotted.add(frontend)
    gains.axvline(0.0, color="0.5", lw=1, ls="--")
    gains.set_yticks(range(len(readouts)), readouts)
    gains.set_ylim(len(readouts) - 0.5, -0.5)
    units = sorted({str(u) for u in comparisons.get("ci_resamples", []) if isinstance(u, str) and u})
    over = f" over {' / '.join(units)}" if units else ""
    gains.set_xlabel(f"gain over {baseline} under the same readout\n(mean paired Δ cc_norm, 95 % CI{over})")
    gains.set_title(f"front-end vs {baseline}")
    if plotted:
        gains.legend(loc="best", fontsize=8)
    return fig
