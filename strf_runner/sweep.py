"""Sweep (multirun) support: resuming by config hash, recording failures, aggregating at the end.

- A sweep job whose resolved config matches a finished run anywhere under ``sweep_root`` (or in
  its own sweep dir) copies that run's results instead of training again, so re-running an
  interrupted sweep finishes only the missing runs.
- A job that raises writes ``failed.json`` (one-line error and traceback) and the sweep goes on;
  the report lists it.
- ``AggregateCallback`` (a Hydra callback, registered in conf/config.yaml) writes the sweep's
  aggregate when the multirun ends, and logs it to the sweep's experiment trackers; ``strf-report``
  does the same on demand. It also collects the sweep's jobs for strf-run's exit status (1 when any
  run did not finish; ``strf_runner.exit_status``).
- ``sweep_group``: the group a job's trackers file it under (the sweep, and the values of the swept keys).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from strf_runner.analysis.sweep_figure import sweep_figures
from strf_runner.atomic import atomic_path
from strf_runner.data.digest import DataIdentity, recorded_digest
from strf_runner.errors import ResultsError, StrfRunnerWarning
from strf_runner.exit_status import SWEEP_JOBS
from strf_runner.results.aggregate import Aggregate, aggregate
from strf_runner.results.collect import (
    collect_runs,
    finished_with_hash,
    interrupted_with_hash,
    is_run_dir,
)
from strf_runner.results.cv import assemble_all
from strf_runner.results.report import write_report
from strf_runner.results.rundir import CONFIG, LAST_STATE, RESULT_FILES, TRACKING, RunDir
from strf_runner.results.summary import RunSummary
from strf_runner.tracking.base import Group, group_name
from strf_runner.tracking.replay import log_sweep, sweep_scalars


def reuse_finished(wanted: str, data: DataIdentity, job_dir: str | Path, roots: list[str | Path]
                   ) -> RunSummary | None:
    """If a finished run under ``roots`` has the config hash ``wanted`` (``ResolvedConfig.hash``) and
    trained on ``data``, copy it into ``job_dir`` and return its summary (with ``reused_from`` added);
    else None. A run with that hash but other data is never reused (a warning names the first one);
    ResultsError if ``job_dir`` itself holds one, as a finished run is never overwritten."""
    job_dir = Path(job_dir).resolve()
    if RunDir(job_dir).finished:  # the same sweep dir run again: this job is done already
        summary = RunDir(job_dir).summary()
        if not data.matches(summary.data_identity):
            raise ResultsError(
                f"{job_dir} holds a finished run of this config {_trained_on(summary.data_identity, data)}: "
                "run the sweep into a new hydra.sweep.dir to train on the current data"
            )
        return dataclasses.replace(summary, reused_from=str(job_dir))
    other = None
    for root in roots:
        for found, summary in finished_with_hash(root, wanted):
            if found.resolve() == job_dir:
                continue
            if data.matches(summary.data_identity):
                summary = dataclasses.replace(summary, reused_from=str(found.resolve()))
                _copy_into(job_dir, found, RESULT_FILES, summary=summary)
                return summary
            other = other or (found, summary.data_identity)
    if other is not None:
        warnings.warn(f"not reusing {other[0]}: it has this config but {_trained_on(other[1], data)}; training "
                      "again", StrfRunnerWarning, stacklevel=2)
    return None


def prepare_resume(wanted: str, data: DataIdentity, job_dir: str | Path, roots: list[str | Path]) -> Path | None:
    """If an interrupted run with the config hash ``wanted`` (and a saved training state) on ``data``
    exists under ``roots``, copy its state, best weights and config into ``job_dir`` and return where it
    came from: the job then continues with resume=true instead of starting over. None otherwise (a
    warning names the first such run on other data, which is left as it is)."""
    job_dir = Path(job_dir).resolve()
    other = None
    for root in roots:
        for found in interrupted_with_hash(root, wanted):
            try:
                recorded = RunDir(found).data_record()
            except ResultsError:
                recorded = None
            if not data.matches(recorded):
                other = other or (found, recorded)
                continue
            if found.resolve() != job_dir:
                _copy_into(job_dir, found, (LAST_STATE, TRACKING, *RESULT_FILES))
            return found
    if other is not None:
        warnings.warn(f"not resuming {other[0]}: it has this config but {_trained_on(other[1], data)}; training "
                      "from the start", StrfRunnerWarning, stacklevel=2)
    return None


def _trained_on(recorded: dict[str, Any] | None, data: DataIdentity) -> str:
    """'trained on other data (content digest 1a2b3c4d, now 5e6f7a8b in /data/x.h5)'."""
    then = recorded_digest(recorded)
    return (f"trained on other data (content digest {then}, now {data.short} in {data.path})" if then is not None
            else f"records no data digest (from an older strf-runner), so it may not be {data.path}")


def _copy_into(job_dir: Path, source: Path, names: tuple[str, ...], summary: RunSummary | None = None) -> None:
    """Own ``job_dir`` while copying the files ``names`` that ``source`` has into it, each atomically,
    and then writing ``summary`` (if given) last."""
    with RunDir(job_dir).owned() as run:
        for name in names:
            if (source / name).is_file():
                with atomic_path(job_dir / name) as tmp:
                    shutil.copyfile(source / name, tmp)
        if summary is not None:
            run.write_summary(summary)


def record_failure(job_dir: str | Path, cfg: Any, err: BaseException, message: str,
                   extra: dict[str, Any] | None = None) -> None:
    """Mark a sweep job as failed: failed.json (the one-line message, the exception type, the
    traceback, and ``extra``), plus its config.yaml if the run failed before writing one (so reports
    find it)."""
    run = RunDir(job_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    if not (run.path / CONFIG).is_file():
        try:
            text = OmegaConf.to_yaml(OmegaConf.structured(cfg), resolve=True)
        except Exception:
            text = OmegaConf.to_yaml(OmegaConf.structured(cfg))
        run.write_text(CONFIG, text)
    run.record_failure(
        {
            "error": message,
            "type": type(err).__name__,
            "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__)),
            **(extra or {}),
        },
    )


def sweep_group(sweep_dir: str | Path, job_overrides: list[str]) -> Group:
    """The tracker group of a sweep job: the sweep dir's ``group_name``, and this job's values of the keys
    the sweep varies (the sweep overrides in the sweep's multirun.yaml, which Hydra's basic sweeper
    writes before the jobs start; none without it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    saved = Path(sweep_dir) / "multirun.yaml"
    swept: list[str] = []
    if saved.is_file():
        task = OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task", default=[]) or []
        swept = [o.key_or_group for o in parser.parse_overrides(list(task)) if o.is_sweep_override()]
    mine = {o.key_or_group: o.get_value_element_as_str() for o in parser.parse_overrides(list(job_overrides))
            if not o.is_sweep_override()}
    return Group(group_name(sweep_dir), {k: mine[k] for k in swept if k in mine})


def report(
    dirs: list[str | Path], baseline: str = "frontend=native", out: str | Path | None = None,
    console: Console | None = None, neurons: str | None = None,
    logger: dict[str, Any] | None = None,
) -> tuple[Aggregate, dict[str, Path]]:
    """Aggregate every run under ``dirs``, write the report and print it. It goes to ``out``, by default
    ``<first dir>/aggregate``, or ``<run dir>-aggregate`` beside it when the first dir is itself a run
    dir; ResultsError if it would lie inside any run dir: a run is never written into. ``logger`` (kind ->
    options, as a run's ``logger``): log the runs and the aggregate to those trackers, grouped under the first dir."""
    from strf_runner.display import aggregate_tables

    runs = collect_runs(list(dirs))
    if out is not None:
        out_dir = Path(out)
    elif is_run_dir(dirs[0]):
        run = Path(dirs[0]).resolve()
        out_dir = run.with_name(f"{run.name}-aggregate")
    else:
        out_dir = Path(dirs[0]) / "aggregate"
    inside = next((r.path for r in runs if out_dir.resolve().is_relative_to(r.path.resolve())), None)
    if inside is not None:
        raise ResultsError(f"{out_dir} is inside the run dir {inside}, and a run dir is never written into: "
                           "choose another --out")
    agg = aggregate(runs, baseline=baseline, neurons=neurons)
    files = write_report(agg, out_dir, [str(d) for d in dirs], sweep_figures(agg))
    if console is not None:
        for table in aggregate_tables(agg):
            console.print(table)
        console.print(f"aggregate: {out_dir}", soft_wrap=True, highlight=False)
    if logger and any(v is not None for v in logger.values()):
        group = group_name(dirs[0])
        replayed = log_sweep(logger, group, runs, {p.name: p for p in files.values()},
                             sweep_scalars(agg.arms, agg.comparisons), out_dir)
        if console is not None:
            for kind, names in replayed.items():
                extra = f" ({len(names)} runs logged from their files)" if names else ""
                console.print(f"logged to {kind}: {group}{extra}", soft_wrap=True, highlight=False)
    return agg, files


class AggregateCallback(Callback):
    """Writes the sweep's aggregate (tables, report.md, comparison.png) when a multirun ends, and
    collects the sweep's jobs for strf-run's exit status (``strf_runner.exit_status.SWEEP_JOBS``): the
    ones run in this process as they end, and at the end one line on stderr if any did not finish.

    A failure to aggregate is reported and never turns a finished sweep into an error.
    """

    def __init__(self, baseline: str = "frontend=native") -> None:
        self.baseline = baseline

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SWEEP_JOBS.start()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        SWEEP_JOBS.add(config.hydra.runtime.output_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from strf_runner.display import wide_console

        sweep_dir = Path(config.hydra.sweep.dir)
        console = wide_console()
        counts = SWEEP_JOBS.end()
        if sweep_dir.is_dir():
            logger = OmegaConf.to_object(config.logger) if OmegaConf.select(config, "logger") is not None else None
            try:
                for cv_dir in assemble_all(sweep_dir):  # e.g. every fold reused: no job assembled it
                    console.print(f"cross-validation assembled: {cv_dir}", soft_wrap=True, highlight=False)
                report([sweep_dir], baseline=self.baseline, console=console, logger=logger)
            except Exception as err:
                console.print(f"[yellow]strf-run: could not aggregate {sweep_dir}: {err}[/yellow]", soft_wrap=True)
        if SWEEP_JOBS.not_finished:
            how = ", ".join(f"{counts[s]} {s}" for s in ("failed", "unfinished", "corrupt") if counts[s])
            print(f"strf-run: {SWEEP_JOBS.not_finished} of {counts.total()} runs of this sweep did not finish ({how}; "
                  f"{sweep_dir / 'aggregate' / 'report.md'} lists them): exit status {SWEEP_JOBS.exit_status}",
                  file=sys.stderr)
