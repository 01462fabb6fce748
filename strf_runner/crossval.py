"""k-fold cross-validation over stimuli as one command (``strf-run cv.folds=k``): fold 0 .. k-1 one after
another in this process, each an ordinary run (``experiment.run_experiment`` with ``cv.fold=f``) into
``<cv dir>/fold<f>``, then the CV dir assembled (``results.cv``: layout, pooled and fold-mean scores).

A fold that has finished is skipped; an interrupted one is continued with ``resume=true`` (and refused
without it, as an interrupted run is). In a sweep (``strf-run -m ... cv.folds=k``) every fold is a job of
its own instead, and the job that finishes a CV's last fold assembles it (``cli``, ``sweep``).
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from strf_runner.config import ResolvedConfig, RunConfig, resolve_config
from strf_runner.data.loading import check_cv
from strf_runner.errors import ConfigError, ResultsError
from strf_runner.experiment import run_experiment
from strf_runner.frontends.registry import frontend_class
from strf_runner.identity import config_hash
from strf_runner.results.cv import assemble_cv, fold_dir
from strf_runner.results.rundir import CONFIG, RunDir
from strf_runner.results.summary import RunSummary
from strf_runner.tracking.base import Group, group_name
from strf_runner.training.fitter import EpochCallback


@dataclass
class CVResult:
    """cv_dir: the assembled CV dir; summary: its summary.json; ran: the folds fitted by this call (the
    others had finished before)."""

    cv_dir: Path
    summary: RunSummary
    ran: list[int]


def fold_run_config(resolved: ResolvedConfig, fold: int, resume: bool) -> ResolvedConfig:
    """Fold ``fold`` of the cross-validation ``resolved`` (cv.fold null) as a run's config."""
    cfg = resolved.cfg
    return resolve_config(dataclasses.replace(cfg, cv=dataclasses.replace(cfg.cv, fold=fold), resume=resume))


def run_cv(
    cfg: RunConfig | ResolvedConfig,
    cv_dir: str | Path,
    progress: Callable[[int], AbstractContextManager[EpochCallback | None]] | None = None,
    records: dict[str, str] | None = None,
    analyze: Callable[[Path], dict[str, Path]] | None = None,
) -> CVResult:
    """Run every fold of ``cfg`` (cv.folds set, cv.fold null) not finished yet into ``cv_dir``, then
    assemble the CV dir. Whether the folds can be cut from the data (ConfigError naming the key) and
    whether ``cv_dir`` can be owned (ResultsError) are checked before anything is written.

    progress: fold -> a context manager yielding that fold's epoch callback (the CLI's progress bar).
    records: files (relative name -> text) for the CV dir (the CLI's Hydra record). analyze: as for
    ``run_experiment``, on each fold's run dir.
    """
    resolved = cfg if isinstance(cfg, ResolvedConfig) else resolve_config(cfg)
    cv = resolved.cfg.cv
    if cv.folds is None or cv.fold is not None:
        raise ConfigError(f"run_cv runs every fold of cv.folds=k with cv.fold null; got cv.folds={cv.folds}, "
                          f"cv.fold={cv.fold}")
    check_cv(resolved.cfg.dataset, cv, frontend_class(resolved.cfg.frontend.name).view)
    runs = [RunDir(fold_dir(cv_dir, f)) for f in range(cv.folds)]
    if resolved.cfg.resume and not any(r.interrupted or r.finished for r in runs):
        raise ResultsError(f"resume=true but {cv_dir} holds no interrupted cross-validation (no fold of it has "
                           "started): drop resume=true, or give the CV dir as hydra.run.dir")
    group = Group(group_name(cv_dir))
    ran = []
    with RunDir(cv_dir).owned() as owner:
        for fold, run in enumerate(runs):
            if run.finished:
                _check_finished(run, fold_run_config(resolved, fold, False).hash)
                continue
            fold_cfg = fold_run_config(resolved, fold, resolved.cfg.resume and run.interrupted)
            with progress(fold) if progress is not None else nullcontext() as on_epoch_end:
                run_experiment(fold_cfg, run.path, on_epoch_end=on_epoch_end, analyze=analyze,
                               group=dataclasses.replace(group, varying={"cv.fold": str(fold)}))
            ran.append(fold)
        summary = assemble_cv(owner, records)
    return CVResult(Path(cv_dir), summary, ran)


def _check_finished(run: RunDir, wanted: str) -> None:
    """A fold found finished must be this fold of this config (ResultsError naming it otherwise)."""
    saved = run.saved_config()
    if saved is None or config_hash(saved) != wanted:
        raise ResultsError(f"{run.path} holds a finished run of another config ({CONFIG} differs): choose another "
                           "hydra.run.dir for this cross-validation")
