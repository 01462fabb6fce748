"""Terminal output with rich: the training progress bar and the end-of-run table."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from strf_runner.results.summary import RunSummary
from strf_runner.training.fitter import EpochCallback, EpochRecord

if TYPE_CHECKING:
    from strf_runner.results.aggregate import Aggregate


def wide_console(stderr: bool = False) -> Console:
    """A console for tables: the terminal's width, or 160 columns when writing to a file or pipe
    (rich would otherwise squeeze wide tables into 80 and cut the arm names)."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


@contextmanager
def epoch_progress(label: str, console: Console | None = None) -> Iterator[EpochCallback]:
    """A progress bar over epochs; yields the callback the fitter calls after each epoch.

    Shows train loss, validation cc_norm and the best score so far, and the time since the run began.
    The bar appears with the first epoch (so it never overlaps the data's own download bars) and ends
    early when early stopping does.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]} | val cc_norm {task.fields[val]} | best {task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task(label, total=None, loss="-", val="-", best="-")  # its clock runs from here

    def update(record: EpochRecord, best: float, best_epoch: int | None, max_epochs: int) -> None:
        if not progress.live.is_started:
            progress.start()
        best_text = f"{_fmt(best)} (ep {best_epoch})" if best_epoch is not None else "-"
        progress.update(
            task,
            total=max_epochs,
            completed=record.epoch,
            loss=_fmt(record.train_loss, 4),
            val=_fmt(record.val_cc_norm),
            best=best_text,
        )

    try:
        yield update
    finally:
        if progress.live.is_started:
            progress.stop()


def summary_table(summary: RunSummary) -> Table:
    """The short end-of-run table: test cc_norm, capacity, early stopping, wall time."""
    table = Table(title="strf-run result", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    valid = f"({summary.test_n_valid} / {summary.test_n_neurons} neurons valid)"
    rows = [
        ("pipeline", f"{summary.frontend} -> {summary.model} on {summary.dataset.config}"),
        ("test cc_norm mean", f"{_fmt(summary.test_mean_cc_norm)} {valid}"),
        ("test cc_norm median", f"{_fmt(summary.test_median_cc_norm)} {valid}"),
    ]
    if summary.monitor != "val_cc_norm":
        rows.append(("early stopping on", summary.monitor))
    rows += [("warning", text) for text in summary.warnings]
    if summary.truth_test_mean_cc_norm is not None:
        rows.append(("ground-truth ceiling", _fmt(summary.truth_test_mean_cc_norm)))
    rows += [
        ("n params", f"{summary.n_params:,}"),
        ("best epoch", f"{summary.best_epoch} of {summary.epochs_run} ({summary.stop_reason})"),
        ("wall time", f"{summary.wall_time_s:.1f} s on {summary.device}"
         + (f" ({summary.wall_time_total_s:.1f} s with the sessions before the resume)"
            if summary.wall_time_total_s is not None else "")),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def aggregate_tables(agg: "Aggregate") -> list[Table]:
    """The sweep report in the terminal: arms, then paired comparisons with their baselines, then the
    runs left out of both (failed, unfinished, corrupt) with their errors. Titles say what each CI
    resampled; the comparisons table's caption (or the arms', without comparisons) says why any CI
    resamples neurons only."""
    from strf_runner.results.report import (
        ARM_COLUMNS, COMPARISON_COLUMNS, arm_cells, ci_notes, comparison_cells, resampled, status_counts,
    )

    title = f"Sweep: {status_counts(agg.runs)} runs" + (f" (test cc_norm; CI: {resampled(agg.arms)})" if len(agg.arms)
                                                        else "")
    problems = agg.runs[agg.runs["status"] != "finished"][["status", "path", "error"]].astype(str)
    notes = ci_notes(agg)
    caption = "CI over neurons only: " + "; ".join(notes) if notes else None
    tables = []
    for rows, columns, heading, below in (
        ([arm_cells(r) for _, r in agg.arms.iterrows()], ARM_COLUMNS, title, None if len(agg.comparisons) else caption),
        ([comparison_cells(r) for _, r in agg.comparisons.iterrows()], COMPARISON_COLUMNS,
         f"Paired differences vs baseline (CI: {resampled(agg.comparisons)}; Wilcoxon signed-rank "
         "over neurons; sign-flip test over test stimuli)", caption),
        (problems.to_dict("records"), [("status", "status"), ("path", "run dir"), ("error", "error")],
         "Runs not in the tables" if len(agg.arms) else title, None),
    ):
        if not rows:
            continue
        table = Table(title=heading, title_justify="left", caption=below, caption_justify="left")
        for key, name in columns:
            table.add_column(name, justify="left" if key in ("arm", "baseline", "status", "path", "error") else "right")
        for r in rows:
            table.add_row(*(r[key] for key, _ in columns))
        tables.append(table)
    return tables


@contextmanager
def frame_progress(label: str, console: Console | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over time bins; yields the callback (bins done, bins in all) a predictor calls.
    Shown on a terminal only (a pipe or log file would get a blank line per input)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TextColumn("bins"), TimeElapsedColumn(), console=console, transient=True,
    )
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def cv_table(summary: RunSummary) -> Table:
    """The end-of-run table of a cross-validation: the pooled out-of-fold score (what comparisons use), the
    mean +- SD of the fold scores, and each fold's score and best epoch."""
    def fmt(x: float | None) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    table = Table(title=f"strf-run cross-validation ({summary.cv.folds} folds)", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("pipeline", f"{summary.frontend} -> {summary.model} on {summary.dataset.config}")
    table.add_row("pooled out-of-fold cc_norm", f"{fmt(summary.test_mean_cc_norm)} "
                  f"({summary.test_n_valid} / {summary.test_n_neurons} neurons valid; what comparisons use)")
    table.add_row("fold mean cc_norm", f"{fmt(summary.fold_mean_cc_norm)} +- {fmt(summary.fold_sd_cc_norm)} (SD)")
    for fold in summary.folds:
        table.add_row(f"  {fold.path}", f"{fmt(fold.test_mean_cc_norm)} (best epoch {fold.best_epoch})")
    if summary.truth_test_mean_cc_norm is not None:
        table.add_row("ground-truth ceiling", fmt(summary.truth_test_mean_cc_norm))
    for text in summary.warnings:
        table.add_row("warning", text)
    table.add_row("wall time", f"{summary.wall_time_s:.1f} s (all folds)")
    return table
