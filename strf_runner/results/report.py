"""Writing a sweep's aggregate: CSV tables, a Markdown report and the comparison figure.

Files (in ``<sweep dir>/aggregate/`` by default), each written atomically:
arms.csv, comparisons.csv, runs.csv, per_neuron.csv, report.md, comparison.png, capacity.png when the
arms cross several front-ends with several readouts, and folds.csv when runs are cross-validated.
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
from strf_runner.results.stats import N_BOOT, NEURONS_ONLY, STIMULI_AND_NEURONS

ARM_COLUMNS = [
    ("arm", "arm"),
    ("runs", "runs"),
    ("mean_cc_norm", "mean cc_norm"),
    ("ci", "95% CI"),
    ("ci_resamples", "CI resamples"),
    ("median_cc_norm", "median"),
    ("seed_mean_sd", "mean over seeds ± SD"),
    ("n_valid", "valid neurons"),
    ("n_stimuli", "test stimuli"),
    ("ensemble", "seed ensemble"),
    ("n_params", "params"),
    ("wall_time_s", "s / run"),
]
COMPARISON_COLUMNS = [
    ("arm", "arm"),
    ("baseline", "baseline"),
    ("mean_diff", "mean Δ cc_norm"),
    ("ci", "95% CI"),
    ("ci_resamples", "CI resamples"),
    ("wilcoxon_p", "Wilcoxon p (neurons)"),
    ("frac_improved", "neurons improved"),
    ("n_pairs", "paired neurons"),
    ("stimulus_p", "sign-flip p (stimuli)"),
    ("stimuli_improved", "stimuli improved"),
]


def _num(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _p(p: float) -> str:
    return "-" if not math.isfinite(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def resampled(table: pd.DataFrame) -> str:
    """What the CIs of an arms or comparisons table resampled, for a title: "bootstrap over test stimuli
    and neurons", "bootstrap over neurons only", or, where rows differ, a pointer to the "CI resamples"
    column (arms without finished runs, and so without a CI, aside)."""
    units = set(table["ci_resamples"]) - {""} if len(table) else set()
    if not units:
        return "none (no finished runs)"
    if units == {STIMULI_AND_NEURONS}:
        return "bootstrap over test stimuli and neurons"
    if units == {NEURONS_ONLY}:
        return "bootstrap over neurons only"
    return "bootstrap, over what: see CI resamples"


def ci_notes(agg: Aggregate) -> list[str]:
    """'<arm>: <why its CI resamples neurons only>', one per arm (then per comparison) whose CI does."""
    notes = [f"{r.arm}: {r.ci_note}" for r in agg.arms.itertuples() if r.ci_resamples == NEURONS_ONLY and r.ci_note]
    notes += [f"{r.arm} vs {r.baseline}: {r.ci_note}" for r in agg.comparisons.itertuples()
              if r.ci_resamples == NEURONS_ONLY and r.ci_note]
    return notes


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
        "ci_resamples": row["ci_resamples"],
        "median_cc_norm": _num(row["median_cc_norm"]),
        "seed_mean_sd": _num(row["seed_mean"]) + sd,
        "n_valid": str(row["n_valid"]),
        "n_stimuli": _num(row["n_stimuli"], ".0f"),
        "ensemble": _num(row.get("ensemble_mean_cc_norm", math.nan)),
        "n_params": f"{params:,.0f}" if is_count(params) else _num(params),
        "wall_time_s": _num(row["wall_time_s"], ".0f"),
    }


def comparison_cells(row: pd.Series) -> dict[str, str]:
    n_stimuli = row["n_stimuli"]
    return {
        "arm": row["arm"],
        "baseline": row["baseline"],
        "mean_diff": _num(row["mean_diff"], "+.3f"),
        "ci": f"[{_num(row['ci_low'], '+.3f')}, {_num(row['ci_high'], '+.3f')}]",
        "ci_resamples": row["ci_resamples"],
        "wilcoxon_p": _p(row["wilcoxon_p"]),
        "frac_improved": _num(100 * row["frac_improved"], ".0f") + " %",
        "n_pairs": str(row["n_pairs"]),
        "stimulus_p": _p(row["stimulus_p"]),
        "stimuli_improved": f"{round(row['stimuli_improved'] * n_stimuli)} / {n_stimuli:.0f}"
        if math.isfinite(n_stimuli) and n_stimuli > 0 else "-",
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
        "Test cc_norm per arm: per neuron averaged over the arm's seeds, then over valid neurons. "
        f"The 95 % CI is a percentile bootstrap ({N_BOOT:,} replicates) that resamples the **test stimuli and "
        "neurons**: each replicate draws the test stimuli with replacement and scores every run again on them "
        "(cc_norm of the drawn stimuli concatenated), then draws the neurons with replacement. Sounds vary more "
        "than neurons and a test set holds few, so this CI is wide: that is the honest answer. Where an arm's "
        "test predictions cannot be scored again, its CI resamples **neurons only**, as its CI resamples column "
        "says (why: below the tables); arms.csv keeps every arm's neuron-only CI as neuron_ci_low / "
        "neuron_ci_high. Mean over seeds ± SD uses each run's own mean. Seed ensemble: the mean test cc_norm of "
        "the arm's runs' averaged predictions, scored as one model.",
        "",
        markdown_table([arm_cells(r) for _, r in agg.arms.iterrows()], ARM_COLUMNS),
    ]
    if len(agg.comparisons):
        text += [
            "",
            "Paired differences (arm − baseline) of per-neuron cc_norm over neurons valid in both. 95 % CI: the "
            "same bootstrap over test stimuli and neurons, with the same draws for the arm and its baseline. "
            "Wilcoxon p (neurons): two-sided signed-rank test over neurons, which holds the test stimuli fixed. "
            "Sign-flip p (stimuli): per test stimulus, the mean over neurons of the difference in the correlation "
            "of prediction and PSTH on that stimulus alone; a two-sided exact sign-flip permutation test of their "
            "mean across stimuli, whose smallest possible value with S stimuli is 2 / 2^S (0.25 with 3).",
            "",
            markdown_table([comparison_cells(r) for _, r in agg.comparisons.iterrows()], COMPARISON_COLUMNS),
        ]
    notes = ci_notes(agg)
    if notes:
        text += ["", "CIs that resample neurons only (the test stimuli held fixed), and why:", ""]
        text += [f"- {note}" for note in notes]
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
    tables = [("arms", agg.arms), ("comparisons", agg.comparisons), ("runs", agg.runs), ("per_neuron", agg.per_neuron)]
    for name, table in tables + ([("folds", agg.folds)] if not agg.folds.empty else []):
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
