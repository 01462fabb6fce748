"""An arm's seed ensemble: the average of its finished runs' test predictions, scored as one model.

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
import torch

from strf_runner import metrics
from strf_runner.data.schema import DatasetContent, file_sha256, read_dataset
from strf_runner.errors import DatasetError, ResultsError
from strf_runner.results.collect import RunRecord
from strf_runner.results.rundir import TEST_PREDICTIONS


@dataclass
class Ensemble:
    """The per-neuron scores of an arm's averaged predictions, indexed by neuron id (NaN: invalid),
    and how many runs it averaged; or, when it could not be scored, why (``scores`` None)."""

    members: int
    scores: pd.Series | None = None
    why_not: str = ""


class DatasetCache:
    """Dataset files read once per report (several arms share one), keyed by path and SHA-256."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str], DatasetContent] = {}

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


def ensemble_of(finished: list[RunRecord], datasets: DatasetCache) -> Ensemble:
    """Score the mean of ``finished``'s test predictions (runs of one arm; at least two)."""
    members = [r for r in finished if (r.path / TEST_PREDICTIONS).is_file()]
    if len(members) < 2:
        return Ensemble(len(members), why_not="fewer than two runs with test predictions")
    try:
        loaded = [np.load(r.path / TEST_PREDICTIONS) for r in members]
        stimuli, ids = loaded[0]["stimuli"], [str(i) for i in loaded[0]["neuron_ids"]]
        if any(not np.array_equal(d["stimuli"], stimuli) or [str(i) for i in d["neuron_ids"]] != ids for d in loaded):
            return Ensemble(len(members), why_not="the runs predicted different stimuli or neurons")
        sources = {(r.summary["dataset"]["path"], r.summary["dataset"]["sha256"], r.summary["view"]) for r in members}
        if len(sources) != 1:
            return Ensemble(len(members), why_not="the runs trained on different dataset files")
        content = datasets.get(*sources.pop())
        mean = np.mean([d["predictions"] for d in loaded], axis=0, dtype=np.float64)  # (S, N, T_max), NaN-padded
    except (OSError, KeyError, ValueError, ResultsError) as err:
        return Ensemble(len(members), why_not=str(err))
    position = {nid: k for k, nid in enumerate(content.neuron_ids)}
    if any(nid not in position for nid in ids):
        return Ensemble(len(members), why_not="the runs' neurons are not all in their dataset")
    rows = [position[nid] for nid in ids]
    responses = [content.stimuli[int(s)].responses[rows] for s in stimuli]  # (N, R, T) each
    n_rep, n_bins = max(r.shape[1] for r in responses), max(r.shape[2] for r in responses)
    resp = np.full((len(responses), len(ids), n_rep, n_bins), np.nan, dtype=np.float32)
    for k, r in enumerate(responses):
        resp[k, :, : r.shape[1], : r.shape[2]] = r
    pred = torch.from_numpy(np.nan_to_num(mean[:, :, :n_bins]))[:, :, None]  # NaN only where responses are
    scores = metrics.score_neurons(pred, torch.from_numpy(resp))
    return Ensemble(len(members), pd.Series(scores.cc_norm.numpy(), index=ids))
