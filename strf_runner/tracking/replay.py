"""Logging what is on disk: a sweep's runs replayed into trackers from their files, and its aggregate.

At the end of a multirun (and with ``strf-report --logger``), every run of the sweep that a tracker
does not hold yet (a run reused from an earlier sweep, one logged with another logger, a sweep run
before trackers existed) is replayed from its files: config.yaml as params, history.csv as the epochs,
summary.json and the tables as the end, failed.json as a failure. Then the aggregate is logged once.
A finished run dir is never written into: trackers that keep local files (TensorBoard, W&B offline)
put a replayed run under ``<aggregate dir>/runs/<run name>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from strf_runner.identity import SEED_KEYS, volatile
from strf_runner.results.collect import RunRecord
from strf_runner.results.rundir import HISTORY, NEURONS, SUMMARY, RunDir
from strf_runner.tracking.base import RunInfo, Trackers, build_trackers, epoch_values, metric_name

REPLAY_DIR = "runs"


def varying_keys(runs: list[RunRecord]) -> list[str]:
    """The non-volatile config keys whose values differ among the runs (what tells them apart)."""
    keys = {k for r in runs for k in r.config if not volatile(k)}
    return sorted(k for k in keys if len({str(r.config.get(k)) for r in runs}) > 1)


def replay_info(run: RunRecord, group: str, varying: list[str], local_dir: Path) -> RunInfo:
    """A RunInfo for a run on disk, from its config (and summary, when finished)."""
    s = run.summary
    tags = {k: str(run.config[k]) for k in sorted(SEED_KEYS) if k in run.config}
    if s is not None:
        dataset = {} if s.dataset is None else {"dataset": s.dataset.name, "dataset_sha256": s.dataset.sha256}
        found = {"config_hash": s.config_hash, "device": s.device, **dataset, **s.versions}
        tags.update({k: str(v) for k, v in found.items() if v is not None})
    params = {k: v for k, v in run.config.items() if not volatile(k)}
    return RunInfo(run.path, run.path.name, group, params, tags,
                   varying={k: str(run.config.get(k)) for k in varying}, local_dir=local_dir)


def replay_run(trackers: Trackers, info: RunInfo, run: RunRecord) -> None:
    """Start, every epoch of history.csv, then finish (finished), fail (failed) or "interrupted" (neither)."""
    trackers.start(info)
    if (run.path / HISTORY).is_file():  # best_epoch, not in history.csv, comes with the summary
        for row in pd.read_csv(run.path / HISTORY).to_dict("records"):
            trackers.epoch(int(row["epoch"]), epoch_values(row, None))
    if run.status == "finished":
        trackers.finish(run.summary, {n: run.path / n for n in (NEURONS, HISTORY, SUMMARY) if (run.path / n).is_file()})
    elif run.status == "failed":
        trackers.fail("failed", run.error)
    else:
        trackers.fail("interrupted", "")


def sweep_scalars(arms: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of an aggregate (``sweep/<arm> mean_cc_norm``): each arm's mean cc_norm over seeds,
    each comparison's paired mean difference against its baseline (``sweep/<arm> diff_vs_baseline``)."""
    out = {}
    for row in arms.to_dict("records"):
        if pd.notna(row.get("mean_cc_norm")):
            out[metric_name(f"sweep/{row['arm']} mean_cc_norm")] = float(row["mean_cc_norm"])
    for row in comparisons.to_dict("records"):
        if pd.notna(row.get("mean_diff")):
            out[metric_name(f"sweep/{row['arm']} diff_vs_baseline")] = float(row["mean_diff"])
    return out


def log_sweep(logger: dict[str, Any], group: str, runs: list[RunRecord], report_files: dict[str, Path],
              scalars: dict[str, float], out_dir: Path) -> dict[str, list[str]]:
    """Log a sweep to the trackers ``logger`` (kind -> options, as a run's ``logger``) asks for: runs they do not hold yet,
    replayed, then the aggregate (``report_files`` by name, ``scalars``). Every tracker is
    fault-isolated as in a run (one warning line). Returns the names of the replayed runs, by kind."""
    varying = varying_keys([r for r in runs if r.config])
    replayed: dict[str, list[str]] = {}
    for kind in [k for k, v in logger.items() if v is not None]:
        replayed[kind] = []
        for run in runs:
            if run.status == "corrupt" or (run.status == "unfinished" and RunDir(run.path).in_use):
                continue
            info = replay_info(run, group, varying, out_dir / REPLAY_DIR / run.path.name)
            trackers = build_trackers(logger, only=kind)
            if trackers.logged(info):
                continue
            replay_run(trackers, info, run)
            if not trackers:  # it failed (one warning): no more of this kind
                break
            replayed[kind].append(run.path.name)
        else:
            build_trackers(logger, only=kind).log_sweep(group, report_files, scalars, out_dir)
    return replayed
