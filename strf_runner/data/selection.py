"""Choosing neurons of any dataset: named selections, explicit lists, and cutting a dataset to them.

``select_neuron_indices(neuron_meta, neuron_ids, selection, key)`` turns ``dataset.neurons`` (a name
of ``NEURON_SELECTIONS`` or a list of neuron ids and/or indices) into neuron indices. A named
selection is a predicate over named metadata columns, so it works on any dataset that has those
columns and is a ConfigError naming the missing ones otherwise. ``subset_neurons(content, indices)``
returns a copy of a dataset cut to those neurons (see its docstring for what is cut).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping, Sequence

import numpy as np

from strf_runner.data.schema import DatasetContent, Stimulus
from strf_runner.errors import ConfigError, DatasetError

__all__ = ["NEURON_SELECTIONS", "select_neuron_indices", "subset_neurons"]


def _valid73(meta: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.isin(np.asarray(meta["single_t"]).astype(str), ["Yes", "Maybe"]) & (np.asarray(meta["depth_um"]) >= 0)


NEURON_SELECTIONS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, np.ndarray]], np.ndarray]]] = {
    "all": ((), lambda meta: None),
    # the reference's "73 valid" units (single_t Yes or Maybe, depth >= 0); on the real NS1 metadata: 73
    "valid73": (("single_t", "depth_um"), _valid73),
    # the reference's other criterion; on the real NS1 metadata it keeps all 119 (the release's criterion)
    "noise_lt40": (("noise_ratio",), lambda meta: np.asarray(meta["noise_ratio"]) < 40.0),
}
"""name -> (metadata columns needed, predicate giving a boolean mask, or None for every neuron)."""


def select_neuron_indices(
    neuron_meta: Mapping[str, np.ndarray],
    neuron_ids: Sequence[str],
    selection: str | Sequence[int | str] = "all",
    key: str = "dataset.neurons",
) -> list[int]:
    """Indices of the selected neurons.

    selection: a name of ``NEURON_SELECTIONS`` (ascending indices), or a list of neuron ids and/or
    integer indices (in the given order). An unknown name or id, an index out of range, a repeat,
    or an empty result is a ConfigError naming ``key``.
    """
    n = len(neuron_ids)
    if isinstance(selection, str):
        if selection not in NEURON_SELECTIONS:
            raise ConfigError(
                f"{key}={selection!r} is not a selection; choose one of {list(NEURON_SELECTIONS)} or a list of "
                "neuron ids or indices"
            )
        columns, predicate = NEURON_SELECTIONS[selection]
        lacking = [c for c in columns if c not in neuron_meta]
        if lacking:
            raise ConfigError(f"{key}={selection!r} needs neuron metadata {lacking}, which this dataset lacks")
        mask = predicate(neuron_meta)
        chosen = list(range(n)) if mask is None else [int(i) for i in np.flatnonzero(mask)]
    else:
        position = {str(u): i for i, u in enumerate(neuron_ids)}
        chosen = []
        for item in selection:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer, str)):
                raise ConfigError(f"{key}: {item!r} is neither a neuron id nor an integer index")
            if isinstance(item, str):
                if item not in position:
                    raise ConfigError(f"{key}: unknown neuron id {item!r} (ids look like {neuron_ids[0]!r})")
                chosen.append(position[item])
            elif not -n <= int(item) < n:
                raise ConfigError(f"{key}: index {int(item)} is out of range for {n} neurons")
            else:
                chosen.append(int(item) % n)
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"{key}: lists a neuron more than once")
    if not chosen:
        raise ConfigError(f"{key}={selection!r} selects no neuron")
    return chosen


def subset_neurons(content: DatasetContent, indices: Sequence[int]) -> DatasetContent:
    """A new DatasetContent holding only the neurons ``indices`` (0..N-1, distinct), in that order.

    Cut along the neuron axis: every stimulus's responses (axis 0 of (N, R, T)), ``neuron_ids``,
    every ``neuron_meta`` column, and the ground truth by this rule: ``truth["rates"]`` is (S, N, T)
    and is cut along axis 1; every other truth array whose first axis has length N is taken as
    per-neuron and cut along axis 0; any other truth array (a scalar, or a first axis of another
    length) is kept whole. (A truth array that is not per-neuron but happens to have N rows would be
    cut too; synth's truth has none: its other arrays are ``SynthNeurons`` fields, (N,) or (N, ...).)
    Views, splits, spectrogram_freqs and attrs are unchanged.

    The input is never modified, and the result shares no array, list or dict with it (unchanged
    arrays are copied; attrs is a shallow copy). An index that is not an integer in 0..N-1, a
    repeated index or an empty list is a ValueError (``select_neuron_indices`` gives valid ones); a
    ``truth["rates"]`` without N on axis 1 is a DatasetError.
    """
    n = len(content.neuron_ids)
    bad = [i for i in indices if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))]
    if bad or any(not 0 <= int(i) < n for i in indices):
        raise ValueError(f"subset_neurons: indices must be integers in 0..{n - 1}; got {list(indices)}")
    if len(indices) == 0 or len({int(i) for i in indices}) != len(indices):
        raise ValueError(f"subset_neurons: indices must be distinct and not empty; got {list(indices)}")
    idx = np.array([int(i) for i in indices], dtype=np.int64)
    truth = {}
    for name, value in content.truth.items():
        value = np.asarray(value)
        if name == "rates":
            if value.ndim < 2 or value.shape[1] != n:
                raise DatasetError(f"subset_neurons: truth['rates'] has shape {value.shape}; expected (S, N={n}, T)")
            truth[name] = value[:, idx]
        elif value.ndim >= 1 and value.shape[0] == n:
            truth[name] = value[idx]
        else:
            truth[name] = value.copy()
    return replace(
        content,
        neuron_ids=[content.neuron_ids[i] for i in idx.tolist()],
        stimuli=[
            Stimulus(
                name=s.name,
                type=s.type,
                responses=s.responses[idx],
                spectrogram=_copy(s.spectrogram),
                waveform=_copy(s.waveform),
            )
            for s in content.stimuli
        ],
        splits={k: list(v) for k, v in content.splits.items()},
        spectrogram_freqs=_copy(content.spectrogram_freqs),
        neuron_meta={k: np.asarray(v)[idx] for k, v in content.neuron_meta.items()},
        attrs=dict(content.attrs),
        truth=truth,
    )


def _copy(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.array(a, copy=True)
