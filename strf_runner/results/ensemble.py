"""What a report reads from runs' test predictions: an arm's seed ensemble, and the per-stimulus
statistics that let a report resample test stimuli (``arm_stimuli``).

An arm's seed ensemble is the average of its finished runs' test predictions, scored as one model.

Averaging the predictions of models trained from different seeds is a model in its own right (its
predictions are a fixed function of the stimulus). It is scored exactly as a run is: per neuron, on
the test stimuli concatenated, against the test responses of the dataset file the runs trained on
(read from the path in their summary.json and checked against its SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from strf_runner.data.schema import DatasetContent, file_sha256, read_dataset
from strf_runner.errors import DatasetError, ResultsError
from strf_runner.results.collect import RunRecord
from strf_runner.results.rundir import NEURONS, TEST_PREDICTIONS
from strf_runner.results.stimulus_stats import (
    ResponseStats,
    StimulusStats,
    cc_norm_from_stats,
    response_stats,
    stimulus_stats,
)


@dataclass
class Ensemble:
    """The per-neuron scores of an arm's averaged predictions, indexed by neuron id (NaN: invalid), their
    per-stimulus sufficient statistics (neurons in the same order) and how many runs it averaged; or,
    when it could not be scored, why (``scores`` None)."""

    members: int
    scores: pd.Series | None = None
    why_not: str = ""
    stats: StimulusStats | None = None


class DatasetCache:
    """Dataset files read once per report (several arms share one), keyed by path and SHA-256, and the
    statistics of their test responses, computed once for every run scored against them."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str], DatasetContent] = {}
        self._responses: dict[tuple, ResponseStats] = {}

    def get(self, path: str, sha256: str, view: str) -> DatasetContent:
        key = (path, sha256)
        if key not in self._read:
            if not Path(path).is_file():
                raise ResultsError(f"the runs' dataset {path} is not here")
            if file_sha256(path) != sha256:
                raise ResultsError(f"{path} is not the file the runs trained on (SHA-256 differs)")
            try:
                self._read[key] = read_dataset(path, views=(view,))
            except DatasetError as err:
                raise ResultsError(str(err)) from err
        return self._read[key]

    def responses(self, source: tuple[str, str, str], stimuli: np.ndarray, neuron_ids: list[str]) -> ResponseStats:
        """``response_stats`` of the responses of ``neuron_ids`` to ``stimuli`` in the dataset file ``source``
        (path, SHA-256, view)."""
        key = (source, tuple(int(s) for s in stimuli), tuple(neuron_ids))
        if key not in self._responses:
            self._responses[key] = response_stats(responses_for(self.get(*source), stimuli, neuron_ids))
        return self._responses[key]


@dataclass
class RunPredictions:
    """A run's test_predictions.npz: ``predictions`` (S, N, T_max) float32, NaN-padded; ``stimuli`` (S,)
    dataset indices; ``neuron_ids`` (N,); ``source``: the dataset file it trained on (path, SHA-256, view)."""

    predictions: np.ndarray
    stimuli: np.ndarray
    neuron_ids: list[str]
    source: tuple[str, str, str]


def read_predictions(run: RunRecord) -> RunPredictions:
    """A finished run's test predictions and the dataset file they belong to; ResultsError naming the file
    when it is missing or unreadable, or when summary.json does not say which dataset file the run used."""
    path = run.path / TEST_PREDICTIONS
    if not path.is_file():
        raise ResultsError(f"{path} is not there")
    dataset, view = run.summary.dataset, run.summary.view
    if dataset is None or dataset.path is None or dataset.sha256 is None or view is None:
        missing = "dataset" if dataset is None else "view" if view is None else "dataset.path or dataset.sha256"
        raise ResultsError(f"{run.path / 'summary.json'} does not say which dataset file the run trained on "
                           f"(no {missing!r})")
    source = (run.summary.dataset.path, run.summary.dataset.sha256, run.summary.view)
    try:
        with np.load(path) as saved:
            return RunPredictions(saved["predictions"], saved["stimuli"], [str(i) for i in saved["neuron_ids"]],
                                  source)
    except (OSError, KeyError, ValueError) as err:
        raise ResultsError(f"cannot read {path}: {err}") from err


def responses_for(content: DatasetContent, stimuli: np.ndarray, neuron_ids: list[str]) -> np.ndarray:
    """The responses (S, N, R_max, T_max) float32 of ``neuron_ids`` to the dataset's ``stimuli``, NaN-padded
    along R and T; ResultsError when a neuron is not in the dataset."""
    position = {nid: k for k, nid in enumerate(content.neuron_ids)}
    missing = [nid for nid in neuron_ids if nid not in position]
    if missing:
        raise ResultsError(f"neuron {missing[0]} of the runs' test predictions is not in their dataset")
    rows = [position[nid] for nid in neuron_ids]
    responses = [content.stimuli[int(s)].responses[rows] for s in stimuli]  # (N, R, T) each
    n_rep, n_bins = max(r.shape[1] for r in responses), max(r.shape[2] for r in responses)
    resp = np.full((len(responses), len(neuron_ids), n_rep, n_bins), np.nan, dtype=np.float32)
    for k, r in enumerate(responses):
        resp[k, :, : r.shape[1], : r.shape[2]] = r
    return resp


def ensemble_of(finished: list[RunRecord], datasets: DatasetCache) -> Ensemble:
    """Score the mean of ``finished``'s test predictions (runs of one arm; at least two)."""
    members = [r for r in finished if (r.path / TEST_PREDICTIONS).is_file()]
    if len(members) < 2:
        return Ensemble(len(members), why_not="fewer than two runs with test predictions")
    try:
        loaded = [read_predictions(r) for r in members]
        stimuli, ids = loaded[0].stimuli, loaded[0].neuron_ids
        if any(not np.array_equal(d.stimuli, stimuli) or d.neuron_ids != ids for d in loaded):
            return Ensemble(len(members), why_not="the runs predicted different stimuli or neurons")
        if len({d.source for d in loaded}) != 1:
            return Ensemble(len(members), why_not="the runs trained on different dataset files")
        responses = datasets.responses(loaded[0].source, stimuli, ids)
        mean = np.mean([d.predictions for d in loaded], axis=0, dtype=np.float64)  # (S, N, T_max), NaN-padded
        stats = stimulus_stats(mean[:, :, : responses.psth.shape[-1]], responses)
    except (ValueError, ResultsError) as err:
        return Ensemble(len(members), why_not=str(err))
    scores = cc_norm_from_stats(stats, np.ones((1, stats.n_stimuli)))[0]  # metrics.cc_norm on the test set
    return Ensemble(len(members), pd.Series(scores, index=ids), stats=stats)


@dataclass
class ArmStimuli:
    """What resampling an arm's test stimuli needs: each finished run's neuron ids and the sufficient
    statistics of its test predictions (``StimulusStats``, neurons in that order), the dataset
    ``stimuli`` (S,) they were all tested on and the dataset file (path, SHA-256)."""

    stimuli: np.ndarray
    dataset: tuple[str, str]
    runs: list[tuple[list[str], StimulusStats]]

    def select(self, ids: list[str]) -> list[StimulusStats]:
        """Each run's statistics for the neurons ``ids`` in that order (a neuron a run lacks is never valid)."""
        out = []
        for run_ids, stats in self.runs:
            position = {nid: k for k, nid in enumerate(run_ids)}
            out.append(stats.rows(np.array([position.get(nid, -1) for nid in ids], dtype=np.int64)))
        return out

    def same_test_set(self, other: ArmStimuli) -> bool:
        return self.dataset == other.dataset and np.array_equal(self.stimuli, other.stimuli)


def arm_stimuli(finished: list[RunRecord], datasets: DatasetCache) -> ArmStimuli | str:
    """The test-stimulus statistics of an arm's finished runs, or why they cannot be had (one line): a run
    without test predictions, runs tested on different stimuli or dataset files, a dataset file that is
    not here or not the one they trained on, or predictions that do not reproduce a run's neurons.csv."""
    if not finished:
        return "no finished runs"
    lacking = [r for r in finished if not (r.path / TEST_PREDICTIONS).is_file()]
    if lacking:
        return f"{len(lacking)} of {len(finished)} runs have no {TEST_PREDICTIONS} (e.g. {lacking[0].path})"
    try:
        loaded = [read_predictions(r) for r in finished]
        if any(not np.array_equal(d.stimuli, loaded[0].stimuli) for d in loaded):
            return "the runs were tested on different stimuli"
        if len({d.source for d in loaded}) != 1:
            return "the runs trained on different dataset files"
        runs = []
        for run, saved in zip(finished, loaded):
            responses = datasets.responses(saved.source, saved.stimuli, saved.neuron_ids)
            stats = stimulus_stats(saved.predictions[:, :, : responses.psth.shape[-1]], responses)
            mismatch = _mismatch(run, saved.neuron_ids, cc_norm_from_stats(stats, np.ones((1, stats.n_stimuli)))[0])
            if mismatch:
                return mismatch
            runs.append((saved.neuron_ids, stats))
    except (ValueError, ResultsError) as err:
        return str(err)
    return ArmStimuli(loaded[0].stimuli, loaded[0].source[:2], runs)


def _mismatch(run: RunRecord, ids: list[str], recomputed: np.ndarray) -> str:
    """Why the cc_norm recomputed from a run's test predictions (N,) is not its neurons.csv's (written to
    6 significant digits), or "" where it is."""
    table = run.neurons()
    recorded = table["cc_norm"].where(table["valid"].astype(bool)).set_axis(table["id"].astype(str))
    again = pd.Series(recomputed, index=ids).reindex(recorded.index)
    differ = (np.isfinite(again) != np.isfinite(recorded)) | ~np.isclose(again, recorded, rtol=1e-5, atol=1e-6,
                                                                         equal_nan=True)
    if not differ.any():
        return ""
    nid = differ.index[np.argmax(differ.to_numpy())]
    return (f"the test predictions of {run.path} do not reproduce its {NEURONS} (neuron {nid}: cc_norm "
            f"{again[nid]:.6g} recomputed, {recorded[nid]:.6g} recorded)")
