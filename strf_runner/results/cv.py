"""A cross-validation directory (``cv.folds=k``): one ordinary run dir per fold, and the CV's own result,
assembled once every fold has finished.

=============================  ===========================================================================
``fold0/`` .. ``fold<k-1>/``   ordinary run dirs, each with cv.folds=k and its cv.fold in config.yaml
                               (resume, sweep reuse and trackers work on each as on any run)
``config.yaml``                the config with cv.fold null: once it is there, a report sees the CV dir as
                               one run and no longer its folds
``data.json``                  the data every fold trained on (all must share one content digest)
``neurons.csv``                a run's columns (``tables.neuron_table``), scored on every stimulus from the
                               folds' joined out-of-fold test predictions, plus ``fold<f>_cc_norm``: each
                               fold's own score on its own test stimuli
``test_predictions.npz``       the joined out-of-fold predictions (every stimulus), as a run writes its own
``summary.json``               written last: ``test_*`` the pooled out-of-fold scores (what reports and
                               comparisons use), ``fold_mean_cc_norm`` / ``fold_sd_cc_norm`` the mean and
                               SD of the fold scores, ``folds`` each fold's path, best epoch and score,
                               ``cv`` (folds, val, each fold's stimuli), ``best_<monitor>`` the mean over folds
=============================  ===========================================================================

The pooled score correlates predictions and responses over all stimuli at once; the fold mean averages
k correlations over k small test sets. They differ (the pooled one is not the mean of the others).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from strf_runner import metrics
from strf_runner.data.schema import DatasetContent
from strf_runner.errors import ResultsError, StrfRunnerWarning
from strf_runner.identity import config_hash, differing_keys, volatile
from strf_runner.results.collect import RunRecord, read_run
from strf_runner.results.ensemble import DatasetCache, read_predictions, responses_for
from strf_runner.results.rundir import CONFIG, DATA, NEURONS, SUMMARY, RunDir
from strf_runner.results.summary import CVRecord, FoldRecord, RunSummary, number
from strf_runner.results.tables import neuron_table, score_summary

FOLD = "fold"  # fold f of a CV dir is <cv dir>/fold<f>


def fold_dir(cv_dir: str | Path, fold: int) -> Path:
    """Where fold ``fold`` of the CV in ``cv_dir`` runs."""
    return Path(cv_dir) / f"{FOLD}{fold}"


def chosen_fold(path: str | Path, fold: int | None) -> Path:
    """The run dir a command given ``path`` and ``--fold fold`` works on: ``path`` itself for a run, fold
    ``fold`` of an assembled CV dir; ResultsError in one line where ``--fold`` is missing, out of range or
    given for a run."""
    path = Path(path)
    folds = None
    if (path / SUMMARY).is_file():
        try:
            summary = RunDir(path).summary()
            folds = summary.cv.folds if summary.cv is not None else None
        except ResultsError:
            folds = None  # the command's own reading of the run names what is wrong
    if folds is None:
        if fold is not None:
            raise ResultsError(f"--fold {fold}: {path} is a run, not a cross-validation: drop --fold")
        return path
    if fold is None:
        raise ResultsError(f"{path} is a cross-validation of {folds} folds: pass --fold 0..{folds - 1}")
    if not 0 <= fold < folds:
        raise ResultsError(f"--fold {fold}: {path} is a cross-validation of {folds} folds: pass --fold 0..{folds - 1}")
    return fold_dir(path, fold)


def fold_config(config: dict[str, Any], fold: int | None) -> dict[str, Any]:
    """A config tree (nested dict) with ``cv.fold`` set to ``fold`` (None: the whole CV's)."""
    return {**config, "cv": {**(config.get("cv") or {}), "fold": fold}}


def folds_of(cv_dir: str | Path) -> int | None:
    """k when ``cv_dir`` holds folds of a CV (its fold0's config.yaml says cv.folds=k); None otherwise."""
    config = RunDir(fold_dir(cv_dir, 0)).saved_config()
    folds = ((config or {}).get("cv") or {}).get("folds")
    return int(folds) if folds is not None else None


def complete(cv_dir: str | Path, folds: int) -> bool:
    """Every fold of the CV in ``cv_dir`` has finished."""
    return all(RunDir(fold_dir(cv_dir, f)).finished for f in range(folds))


def assemble_if_complete(cv_dir: str | Path) -> RunSummary | None:
    """Assemble the CV in ``cv_dir`` if all its folds have finished and nobody has yet; returns its
    summary, or None where a fold is not finished, it is assembled already or another process is assembling
    it (the CV dir's run.lock decides). ResultsError where the folds cannot be joined."""
    folds = folds_of(cv_dir)
    run = RunDir(cv_dir)
    if folds is None or run.finished or not complete(cv_dir, folds):
        return None
    try:
        run.claim()
    except ResultsError:  # assembled meanwhile, or being assembled by another job
        return None
    try:
        return assemble_cv(run)
    finally:
        run.release()


def assemble_all(root: str | Path) -> list[Path]:
    """Assemble every complete, not yet assembled CV dir at or below ``root`` (a sweep whose folds were
    all reused never assembled its CV dirs in a job); the CV dirs assembled now. One whose folds cannot be
    joined is a warning naming it."""
    done = []
    for config in sorted(Path(root).rglob(f"{FOLD}0/{CONFIG}")):
        if not any(part.startswith(".") for part in config.relative_to(root).parts):
            cv_dir = config.parent.parent
            try:
                if assemble_if_complete(cv_dir) is not None:
                    done.append(cv_dir)
            except ResultsError as err:  # the other CV dirs still get theirs
                warnings.warn(f"cannot assemble the cross-validation {cv_dir}: {err}", StrfRunnerWarning, stacklevel=2)
    return done


def assemble_cv(run: RunDir, records: dict[str, str] | None = None) -> dict[str, Any]:
    """Join the finished folds of the CV dir ``run`` (owned by the caller) into its own result (see the
    module docstring) and return its summary. ``records``: extra files written first (the CLI's Hydra
    record). ResultsError naming the fold where the folds are not one CV: a fold unfinished, configs that
    differ in more than cv.fold, other data or neurons, or test sets that do not partition the stimuli."""
    folds = folds_of(run.path)
    if folds is None:
        raise ResultsError(f"{fold_dir(run.path, 0)} holds no fold of a cross-validation")
    records_f = [_fold_run(run.path, f, folds) for f in range(folds)]
    config = fold_config(RunDir(records_f[0].path).saved_config() or {}, None)
    for record in records_f[1:]:
        differ = differing_keys(config, fold_config(RunDir(record.path).saved_config() or {}, None), ignore=volatile)
        if differ:
            raise ResultsError(f"{record.path} is not a fold of the same cross-validation as "
                               f"{records_f[0].path}: their configs differ in {differ[:4]}")
    digests = [r.summary.dataset.content_sha256 or r.summary.dataset.sha256 for r in records_f]
    if len(set(digests)) != 1 or digests[0] is None:
        other = next((r.path for r, d in zip(records_f, digests) if d != digests[0] or d is None), records_f[0].path)
        raise ResultsError(f"{other} trained on other data than {records_f[0].path} (content digests differ): "
                           "the folds of one cross-validation must share their data; re-run that fold")

    datasets = DatasetCache()
    saved = [read_predictions(r) for r in records_f]
    ids = saved[0].neuron_ids
    for record, s in zip(records_f, saved):
        if s.neuron_ids != ids:
            raise ResultsError(f"{record.path} predicted other neurons than {records_f[0].path}")
    content = datasets.get(*saved[0].source)
    stimuli = np.concatenate([s.stimuli for s in saved])
    if sorted(stimuli.tolist()) != list(range(len(content.stimuli))):
        raise ResultsError(f"the test stimuli of the folds in {run.path} do not cover each of the dataset's "
                           f"{len(content.stimuli)} stimuli exactly once")
    pred = pooled_predictions(saved)
    table = score_table(content, pred, ids)
    for f, record in enumerate(records_f):
        own = record.neurons()
        table[f"{FOLD}{f}_cc_norm"] = own["cc_norm"].where(own["valid"].astype(bool)).set_axis(
            own["id"].astype(str)).reindex(ids).to_numpy()
    summary = cv_summary(records_f, table, config, content)

    for name, text in (records or {}).items():
        run.write_text(name, text)
    run.write_json(DATA, RunDir(records_f[0].path).data_record() or {})
    run.write_csv(NEURONS, table)
    run.write_test_predictions(pred, list(range(pred.shape[0])), ids)
    run.write_text(CONFIG, OmegaConf.to_yaml(config))  # from here a report sees one run, not its folds
    run.write_summary(summary)
    return summary


def _fold_run(cv_dir: Path, fold: int, folds: int) -> RunRecord:
    """Fold ``fold``'s finished run, its config saying it is that fold; ResultsError otherwise."""
    path = fold_dir(cv_dir, fold)
    if not RunDir(path).finished:
        raise ResultsError(f"{path} has not finished ({SUMMARY} missing): fold {fold} of {folds} is still to run")
    record = read_run(path)
    if record.config.get("cv.folds") != folds or record.config.get("cv.fold") != fold:
        raise ResultsError(f"{path / CONFIG} says cv.folds={record.config.get('cv.folds')}, "
                           f"cv.fold={record.config.get('cv.fold')}: not fold {fold} of {folds}")
    return record


def pooled_predictions(saved: list[Any]) -> np.ndarray:
    """The folds' test predictions joined in dataset order: (S, N, T_max) float32, NaN past a shorter
    stimulus's end; ``saved``: each fold's ``RunPredictions``, whose test stimuli together are 0 .. S-1."""
    n_bins = max(s.predictions.shape[-1] for s in saved)
    n_stim = sum(len(s.stimuli) for s in saved)
    pred = np.full((n_stim, len(saved[0].neuron_ids), n_bins), np.nan, dtype=np.float32)
    for s in saved:
        pred[s.stimuli, :, : s.predictions.shape[-1]] = s.predictions
    return pred


def score_table(content: DatasetContent, pred: np.ndarray, ids: list[str]) -> pd.DataFrame:
    """Per-neuron scores (``tables.neuron_table``) of ``pred`` (S, N, T_max), the predictions for every
    stimulus of ``content`` in dataset order, scored as a run scores its test set (all stimuli
    concatenated, ``metrics.score_neurons``), with the generator's true rates' scores where stored."""
    stimuli = np.arange(pred.shape[0])
    resp = responses_for(content, stimuli, ids)  # (S, N, R_max, T_max), NaN-padded
    filled = np.nan_to_num(pred[:, :, : resp.shape[-1]])  # NaN only where the responses are
    scores = metrics.score_neurons(torch.from_numpy(filled)[:, :, None], torch.from_numpy(resp))
    table = neuron_table(ids, scores)
    rates = content.truth.get("rates")
    if rates is not None:
        rows = [content.neuron_ids.index(i) for i in ids]
        truth = torch.from_numpy(np.ascontiguousarray(rates[:, rows], dtype=np.float32))[:, :, None]
        table["truth_cc_norm"] = metrics.score_neurons(truth, torch.from_numpy(resp)).cc_norm.numpy()
    return table


def cv_summary(folds: list[RunRecord], table: pd.DataFrame, config: dict[str, Any], content: DatasetContent
               ) -> RunSummary:
    """The CV dir's summary.json: see the module docstring."""
    first = folds[0].summary
    fold_scores = np.array([number(r.summary.test_mean_cc_norm) for r in folds])
    best = np.array([number(r.summary.best_score) for r in folds])
    return RunSummary(
        **score_summary(table, prefix="test_"),
        fold_mean_cc_norm=float(np.nanmean(fold_scores)) if np.isfinite(fold_scores).any() else math.nan,
        fold_sd_cc_norm=float(np.nanstd(fold_scores, ddof=1)) if np.isfinite(fold_scores).sum() > 1 else math.nan,
        compared_by="test_mean_cc_norm: the pooled out-of-fold score (all stimuli, every fold's test predictions "
                    "joined); fold_mean_cc_norm is the mean of the folds' own test scores",
        folds=[FoldRecord(fold=f, path=r.path.name, config_hash=r.summary.config_hash, best_epoch=r.summary.best_epoch,
                          epochs_run=r.summary.epochs_run, test_mean_cc_norm=r.summary.test_mean_cc_norm,
                          best_score=r.summary.best_score) for f, r in enumerate(folds)],
        cv=CVRecord(folds=len(folds), val=len(first.dataset.splits["val"]),
                    assignment=[r.summary.dataset.splits for r in folds]),
        n_params=first.n_params,
        lr=first.lr,
        frontend_lr=first.frontend_lr,
        monitor=first.monitor,
        best_score=float(np.nanmean(best)) if np.isfinite(best).any() else math.nan,
        wall_time_s=float(sum(r.summary.total_wall_time_s for r in folds)),
        device=first.device,
        seed=first.seed,
        data_seed=first.data_seed,
        config_hash=config_hash(config),
        frontend=first.frontend,
        model=first.model,
        view=first.view,
        dataset=dataclasses.replace(first.dataset, splits={"test": list(range(len(content.stimuli)))}),
        warnings=[f"fold {f}: {w}" for f, r in enumerate(folds) for w in r.summary.warnings],
        versions=first.versions,
        truth_test_mean_cc_norm=float(np.nanmean(table["truth_cc_norm"])) if "truth_cc_norm" in table else None,
    )
