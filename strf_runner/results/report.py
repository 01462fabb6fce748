"""Writing a sweep's aggregate: CSV tables, a Markdown report and the comparison figure.

Files (in ``<sweep dir>/aggregate/`` by default), each written atomically:
arms.csv, comparisons.csv, runs.csv, per_neuron.csv, report.md, comparison.png, and capacity.png when the
arms cross several front-ends with several readouts.
Failed, unfinished and corrupt runs are counted per arm and listed with their error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from strf_runner.results.aggregate import Aggregate
from strf_runner.atomic import save_png
from strf_runner.results.rundir import atomic_write_text

ARM_COLUMNS = [
    ("arm", "arm"),
    ("runs", "runs"),
    ("mean_cc_norm", "mean cc_norm"),
    ("ci", "95% CI (neurons)"),
    ("median_cc_norm", "median"),
    ("seed_mean_sd", "mean over seeds ± SD"),
    ("n_valid", "valid neurons"),
    ("ensemble", "seed ensemble"),
    ("n_params", "params"),
    ("wall_time_s", "s / run"),
]
COMPARISON_COLUMNS = [
    ("arm", "arm"),
    ("baseline", "baseline"),
    ("mean_diff", "mean Δ cc_norm"),
    ("ci", "95% CI"),
    ("wilcoxon_p", "Wilcoxon p"),
    ("frac_improved", "neurons improved"),
    ("n_pairs", "paired neurons"),
]


def _num(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def status_counts(runs: pd.DataFrame) -> str:
    """'6 finished, 1 failed, 1 unfinished' for a runs table, then ', 2 corrupt' if any are."""
    counts = runs["status"].value_counts()
    text = ", ".join(f"{counts.get(status, 0)} {status}" for status in ("finished", "failed", "unfinished"))
    return text + (f", {counts['corrupt']} corrupt" if counts.get("corrupt", 0) else "")


def is_count(v: Any) -> bool:
    """A single parameter count (pandas makes the column float when an arm without finished runs has none)."""
    return isinstance(v, (int, float)) and math.isfinite(v)


def arm_cells(row: pd.Series) -> dict[str, str]:
    """Display strings for one row of the arms table."""
    sd = "" if not math.isfinite(row["seed_sd"]) else f" ± {row['seed_sd']:.3f}"
    params = row["n_params"]
    return {
        "arm": row["arm"],
        "runs": f"{row['runs']}"
        + "".join(f" (+{row[status]} {status})" for status in ("failed", "unfinished", "corrupt") if row[status]),
        "mean_cc_norm": _num(row["mean_cc_norm"]),
        "ci": f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]",
        "median_cc_norm": _num(row["median_cc_norm"]),
        "seed_mean_sd": _num(row["seed_mean"]) + sd,
        "n_valid": str(row["n_valid"]),
        "ensemble": _num(row.get("ensemble_mean_cc_norm", math.nan)),
        "n_params": f"{params:,.0f}" if is_count(params) else _num(params),
        "wall_time_s": _num(row["wall_time_s"], ".0f"),
    }


def comparison_cells(row: pd.Series) -> dict[str, str]:
    p = row["wilcoxon_p"]
    return {
        "arm": row["arm"],
        "baseline": row["baseline"],
        "mean_diff": _num(row["mean_diff"], "+.3f"),
        "ci": f"[{_num(row['ci_low'], '+.3f')}, {_num(row['ci_high'], '+.3f')}]",
        "wilcoxon_p": "-" if not math.isfinite(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"),
        "frac_improved": _num(100 * row["frac_improved"], ".0f") + " %",
        "n_pairs": str(row["n_pairs"]),
    }


def markdown_table(rows: list[dict[str, str]], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r[key].replace("|", "\\|") for key, _ in columns) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(agg: Aggregate, sources: list[str], figure: str | None, capacity: bool = False) -> str:
    runs = agg.runs
    text = [
        "# Sweep report",
        "",
        f"Runs from: {', '.join(f'`{s}`' for s in sources)}. {status_counts(runs)}."
        + (f" Neurons: {agg.neurons} only." if agg.neurons else ""),
        "",
        "Test cc_norm per arm: per neuron averaged over the arm's seeds, then over valid neurons; the CI is a "
        "95 % percentile bootstrap over neurons (10,000 resamples). Mean over seeds ± SD uses each run's own mean. "
        "Seed ensemble: the mean test cc_norm of the arm's runs' averaged predictions, scored as one model.",
        "",
        markdown_table([arm_cells(r) for _, r in agg.arms.iterrows()], ARM_COLUMNS),
    ]
    if len(agg.comparisons):
        text += [
            "",
            "Paired per-neuron differences (arm − baseline) over neurons valid in both; Wilcoxon signed-rank, "
            "two-sided.",
            "",
            markdown_table([comparison_cells(r) for _, r in agg.comparisons.iterrows()], COMPARISON_COLUMNS),
        ]
    problems = runs[runs["status"] != "finished"]
    if len(problems):
        text += ["", "Runs not in the tables:", ""]
        text += [f"- {r.status}: `{r.path}`" + (f" — {r.error}" if r.error else "") for r in problems.itertuples()]
    if figure:
        text += ["", f"![per-neuron comparison]({figure})"]
    if capacity:
        text += ["", "![readouts x front-ends: mean test cc_norm, and each front-end's gain over the baseline "
                 "under the same readout](capacity.png)"]
    return "\n".join(text) + "\n"


def write_report(agg: Aggregate, out_dir: str | Path, sources: list[str], figures: dict[str, Any] | None = None
                 ) -> dict[str, Path]:
    """Write the aggregate's tables, ``figures`` (file stem -> matplotlib Figure, each as <stem>.png; the
    report mentions ``comparison`` and ``capacity``) and report.md into ``out_dir``; returns them by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, table in (("arms", agg.arms), ("comparisons", agg.comparisons), ("runs", agg.runs),
                        ("per_neuron", agg.per_neuron)):
        files[name] = atomic_write_text(out / f"{name}.csv", table.to_csv(index=False, float_format="%.6g"))
    for stem, fig in (figures or {}).items():
        files["figure" if stem == "comparison" else stem] = save_png(fig, out / f"{stem}.png")
    figure = "comparison.png" if "figure" in files else None
    files["report"] = atomic_write_text(out / "report.md", markdown_report(agg, sources, figure,
                                                                          "capacity" in files))
    return files


def baseline_frontend(agg: Aggregate) -> str | None:
    """The front-end every comparison's baseline arm uses (``native`` for the default selector), or
    None when the baselines are not one front-end (a baseline chosen by another key)."""
    if agg.comparisons.empty or "frontend" not in agg.arms:
        return None
    frontend_of = dict(zip(agg.arms["arm"], agg.arms["frontend"]))
    names = {frontend_of.get(b) for b in agg.comparisons["baseline"]}
    varying = {frontend_of.get(a) != frontend_of.get(b) for a, b in zip(agg.comparisons["arm"], agg.comparisons["baseline"])}
    return names.pop() if len(names) == 1 and varying == {True} else None
