"""The sweep report's figures: per-arm cc_norm distributions, paired comparisons against baseline arms
and test score against parameter count (``comparison_figure``), and, collected for a report,
``sweep_figures``.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so they need no display and
leave no global state behind.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from strf_runner.analysis.capacity_figure import capacity_figure, has_capacity_grid
from strf_runner.results.aggregate import Aggregate
from strf_runner.results.report import baseline_frontend, is_count


PER_NEURON_COLUMNS = ("arm", "neuron", "cc_norm")
ARMS_COLUMNS = ("arm", "n_params", "mean_cc_norm", "sd_cc_norm")

_TICK_WIDTH = 18
_TITLE_WIDTH = 40
_LABEL_WIDTH = 36
_JITTER = 0.15


def comparison_figure(per_neuron: pd.DataFrame, baselines: dict[str, str], arms: pd.DataFrame | None = None,
                      comparisons: pd.DataFrame | None = None) -> Figure:
    """Build the sweep comparison figure.

    Inputs:
    - ``per_neuron``: long table with columns ``arm`` (label), ``neuron`` (id) and ``cc_norm`` (the
      neuron's test cc_norm averaged over the arm's seeds; NaN where the neuron is invalid). Arms keep
      the order of their first appearance; each (arm, neuron) pair appears at most once.
    - ``baselines``: arm -> its baseline arm. An arm mapped to itself, or absent, gets no comparison
      panel; a baseline must itself appear in ``per_neuron``.
    - ``arms``: optional, one row per arm with ``arm``, ``n_params`` (> 0), ``mean_cc_norm`` and
      ``sd_cc_norm`` (NaN for a single seed); adds the capacity panel.
    - ``comparisons``: optional, comparisons.csv's rows (``arm``, ``ci_low``, ``ci_high``,
      ``ci_resamples``): each scatter panel then names its paired difference's CI and what it resampled.

    Panels: a box plot of cc_norm per arm over valid neurons (neurons overlaid as a jittered strip, the
    mean marked), then one baseline-vs-arm scatter per compared arm (neurons valid in both, paired by
    id), then the capacity panel (mean cc_norm against n_params, log x) when ``arms`` is given.
    Raises ValueError when a table lacks a required column or is empty, ``per_neuron`` has duplicate
    (arm, neuron) rows, a baseline arm is absent from ``per_neuron``, or an ``n_params`` is not positive.
    """
    _require_columns(per_neuron, PER_NEURON_COLUMNS, "per_neuron")
    if per_neuron.empty:
        raise ValueError("per_neuron is empty: no (arm, neuron) rows to plot")
    duplicated = per_neuron.duplicated(["arm", "neuron"])
    if duplicated.any():
        first = per_neuron.loc[duplicated, ["arm", "neuron"]].iloc[0]
        raise ValueError(f"per_neuron has duplicate rows, e.g. arm={first['arm']!r} neuron={first['neuron']!r}")
    if arms is not None:
        _require_columns(arms, ARMS_COLUMNS, "arms")
        if arms.empty:
            raise ValueError("arms is empty: pass None to leave out the capacity panel")
        if not (arms["n_params"].to_numpy(dtype=float) > 0).all():
            raise ValueError("arms.n_params must be positive: the capacity panel has a log x axis")

    order = list(pd.unique(per_neuron["arm"]))
    scores = {
        arm: group.set_index("neuron")["cc_norm"].astype(float) for arm, group in per_neuron.groupby("arm", sort=False)
    }
    pairs = [(arm, baselines[arm]) for arm in order if baselines.get(arm, arm) != arm]
    missing = sorted({base for _, base in pairs if base not in scores})
    if missing:
        raise ValueError(f"baseline arm(s) not in per_neuron: {', '.join(missing)}")

    palette = colormaps["tab10"]
    colors = {arm: palette(i % palette.N) for i, arm in enumerate(order)}
    n_small = len(pairs) + (arms is not None)
    ncols = min(3, max(1, n_small))
    nrows = math.ceil(n_small / ncols)
    width = max(4.2 * ncols, 1.1 * len(order) + 2.0)
    fig = Figure(figsize=(width, 4.5 + 4.2 * nrows), layout="constrained")
    grid = fig.add_gridspec(1 + nrows, ncols, height_ratios=[1.1] + [1.0] * nrows)

    _box_panel(fig.add_subplot(grid[0, :]), order, scores, colors)
    cis = {} if comparisons is None else {row["arm"]: row for row in comparisons.to_dict("records")}
    for i, (arm, base) in enumerate(pairs):
        _scatter_panel(fig.add_subplot(grid[1 + i // ncols, i % ncols]), arm, base, scores, colors[arm], cis.get(arm))
    if arms is not None:
        i = len(pairs)
        _capacity_panel(fig.add_subplot(grid[1 + i // ncols, i % ncols]), arms, colors)
    return fig


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """Raise ValueError naming every column of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks required column(s): {', '.join(missing)} (needs {', '.join(columns)})")


def _short(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _box_panel(ax: Axes, order: list[str], scores: dict[str, pd.Series], colors: dict[str, tuple]) -> None:
    """Box plot per arm (in ``order``) of valid cc_norm, with a jittered strip of neurons and the mean."""
    rng = np.random.default_rng(0)
    positions = np.arange(1, len(order) + 1)
    values = [scores[arm].dropna().to_numpy() for arm in order]
    ax.boxplot(
        values,
        positions=positions,
        widths=0.5,
        showmeans=True,
        showfliers=False,
        meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "zorder": 4},
        medianprops={"color": "black"},
    )
    for pos, arm, vals in zip(positions, order, values):
        jitter = rng.uniform(-_JITTER, _JITTER, size=len(vals))
        ax.scatter(pos + jitter, vals, s=12, alpha=0.6, color=colors[arm], zorder=3, linewidths=0)
        ax.text(pos, 1.0, f"n={len(vals)}", transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    labels = [textwrap.fill(arm, _TICK_WIDTH, break_long_words=False) for arm in order]
    ax.set_xticks(positions, labels, fontsize=8)
    if any(len(line) > _TICK_WIDTH for label in labels for line in label.splitlines()):
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set(ha="right", rotation_mode="anchor")
    ax.set_xlim(0.4, len(order) + 0.6)
    ax.set_ylabel("test cc_norm")
    ax.grid(axis="y", alpha=0.3)


def _scatter_panel(ax: Axes, arm: str, base: str, scores: dict[str, pd.Series], color: tuple,
                   ci: dict | None = None) -> None:
    """Baseline's cc_norm (x) against the arm's (y) for neurons valid in both, in the arm's neuron order;
    ``ci``, the comparison's row, adds its CI and what it resampled to the panel's text."""
    paired = pd.concat({"arm": scores[arm], "base": scores[base]}, axis=1, join="inner").dropna()
    x, y = paired["base"].to_numpy(), paired["arm"].to_numpy()
    ax.scatter(x, y, s=14, alpha=0.7, color=color, linewidths=0)
    if len(paired):
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        pad = 0.05 * (hi - lo) or 0.05
        lo, hi = lo - pad, hi + pad
        summary = f"n={len(paired)}  mean diff={np.mean(y - x):+.3f}  above diagonal={100 * np.mean(y > x):.0f}%"
        if ci is not None and np.isfinite(ci["ci_low"]):
            summary += f"\n95% CI [{ci['ci_low']:+.3f}, {ci['ci_high']:+.3f}], resampling {ci['ci_resamples']}"
    else:
        lo, hi = 0.0, 1.0
        summary = "no neurons valid in both"
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.text(
        0.03,
        0.97,
        summary,
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=8,
        zorder=5,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 2},
    )
    title = f"{_short(arm, _TITLE_WIDTH)} vs {_short(base, _TITLE_WIDTH)}"
    ax.set_title(textwrap.fill(title, _TITLE_WIDTH, break_long_words=False), fontsize=9)
    ax.set_xlabel(f"{_short(base, _LABEL_WIDTH)} cc_norm", fontsize=8)
    ax.set_ylabel(f"{_short(arm, _LABEL_WIDTH)} cc_norm", fontsize=8)


def _capacity_panel(ax: Axes, arms: pd.DataFrame, colors: dict[str, tuple]) -> None:
    """Mean cc_norm (error bars: SD over seeds where finite) against n_params on a log x axis."""
    n_params = arms["n_params"].to_numpy(dtype=float)
    mean = arms["mean_cc_norm"].to_numpy(dtype=float)
    sd = arms["sd_cc_norm"].to_numpy(dtype=float)
    finite = np.isfinite(sd)
    ax.errorbar(n_params[finite], mean[finite], yerr=sd[finite], fmt="none", ecolor="grey", capsize=3)
    point_colors = [colors.get(arm, "black") for arm in arms["arm"]]
    ax.scatter(n_params, mean, s=30, color=point_colors, zorder=3)
    middle = math.sqrt(n_params.min() * n_params.max())
    for arm, x, y in zip(arms["arm"], n_params, mean):
        label = textwrap.fill(str(arm), _TICK_WIDTH, break_long_words=False)
        left = x > middle
        ax.annotate(
            label,
            (x, y),
            xytext=(-4 if left else 4, 4),
            textcoords="offset points",
            fontsize=7,
            ha="right" if left else "left",
        )
    ax.set_xscale("log")
    if n_params.max() < 10 * n_params.min():  # within a decade: plain numbers, no crowded minor labels
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(np.unique(n_params))
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    else:
        ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.margins(x=0.3, y=0.15)
    ax.set_xlabel("n_params")
    ax.set_ylabel("mean test cc_norm")
    ax.set_title("capacity", fontsize=9)
    ax.grid(alpha=0.3)


def sweep_figures(agg: Aggregate) -> dict[str, Figure]:
    """The figures of a sweep's report, by file stem: ``comparison`` (when any arm has finished runs) and
    ``capacity`` (when the finished arms cross front-ends with readouts against one baseline front-end)."""
    figures: dict[str, Figure] = {}
    if len(agg.per_neuron):
        arms = agg.arms[["arm", "n_params", "seed_mean", "seed_sd"]].rename(
            columns={"seed_mean": "mean_cc_norm", "seed_sd": "sd_cc_norm"}
        )
        arms = arms[arms["n_params"].map(is_count)]
        figures["comparison"] = comparison_figure(agg.per_neuron, agg.baselines, arms if len(arms) else None,
                                                  agg.comparisons)
    finished = agg.arms[agg.arms["runs"] > 0] if "runs" in agg.arms else agg.arms
    base = baseline_frontend(agg)
    if base is not None and has_capacity_grid(finished):
        figures["capacity"] = capacity_figure(finished, agg.comparisons, base)
    return figures
