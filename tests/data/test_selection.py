"""Neuron selection (``selection``): named and explicit selections, and cutting a dataset to them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from strf_runner.data.schema import Stimulus, validate_content
from strf_runner.data.selection import NEURON_SELECTIONS, select_neuron_indices, subset_neurons
from strf_runner.errors import ConfigError, DatasetError

# the metadata of the 4 units that test_ns1's tiny release keeps
IDS = [
    "exp1/P01-A/cluster.01.data",
    "exp1/P01-A/cluster.02.data",
    "exp2/P02-B/cluster.01.data",
    "exp1/P01-A/cluster.03.data",
]
META = {
    "depth_um": np.array([300, -50, 100, 0]),
    "noise_ratio": np.array([10.0, 45.0, 12.0, 30.0]),
    "single_t": np.array(["Yes", "Maybe", "No", "Maybe"]),
}

# ---------------------------------------------------------------------------------------------
# selections


def test_named_and_explicit_neuron_selections():
    meta, ids = META, IDS
    assert select_neuron_indices(meta, ids) == [0, 1, 2, 3]
    assert select_neuron_indices(meta, ids, "valid73") == [0, 3]  # Yes/Maybe and depth >= 0 (0 counts)
    assert select_neuron_indices(meta, ids, "noise_lt40") == [0, 2, 3]
    assert select_neuron_indices(meta, ids, [ids[2], 0, -1]) == [2, 0, 3]
    choices = r"choose one of \['all', 'valid73', 'noise_lt40'\]"
    with pytest.raises(ConfigError, match=r"dataset\.neurons='good' is not a selection; " + choices):
        select_neuron_indices(meta, ids, "good")
    with pytest.raises(ConfigError, match=r"unknown neuron id 'cluster\.01\.data'"):
        select_neuron_indices(meta, ids, ["cluster.01.data"])
    with pytest.raises(ConfigError, match="index 4 is out of range for 4 neurons"):
        select_neuron_indices(meta, ids, [4])
    with pytest.raises(ConfigError, match="more than once"):
        select_neuron_indices(meta, ids, [1, ids[1]])
    with pytest.raises(ConfigError, match="selects no neuron"):
        select_neuron_indices(meta, ids, [])
    with pytest.raises(ConfigError, match="neither a neuron id nor an integer"):
        select_neuron_indices(meta, ids, [True])
    with pytest.raises(ConfigError, match=r"needs neuron metadata \['single_t', 'depth_um'\]"):
        select_neuron_indices({}, ids, "valid73", key="neurons")


def test_named_selections_need_only_their_columns():
    # any dataset with the named columns will do (here: no ids like NS1's, no other columns)
    ids = ["a", "b", "c"]
    assert select_neuron_indices({"noise_ratio": np.array([50.0, 1.0, 39.9])}, ids, "noise_lt40") == [1, 2]
    with pytest.raises(ConfigError, match=r"neurons='noise_lt40' needs neuron metadata \['noise_ratio'\]"):
        select_neuron_indices({"depth_um": np.zeros(3)}, ids, "noise_lt40", key="neurons")
    assert select_neuron_indices({}, ids, "all") == [0, 1, 2]
    assert NEURON_SELECTIONS["all"][0] == ()


# ---------------------------------------------------------------------------------------------
# subset_neurons


@pytest.fixture
def with_truth(content_factory):
    """4 stimuli x 4 neurons (so S == N: rates must be cut on axis 1, not 0) with a synth-like truth."""
    c = content_factory(n_stimuli=4, n_neurons=4, lengths=[20] * 4)
    rng = np.random.default_rng(1)
    c.truth = {
        "rates": rng.random((4, 4, 20)).astype(np.float32),  # (S, N, T)
        "gain": np.arange(4, dtype=np.float32),  # (N,)
        "kernels": rng.random((4, 2, 3)).astype(np.float32),  # (N, 2, L)
        "grid": np.linspace(0, 1, 7),  # not per neuron
        "seed": np.array(5),  # a scalar
    }
    c.neuron_meta["noise_ratio"] = np.array([30.0, 50.0, 45.0, 10.0])
    return c


def test_subset_neurons_keeps_the_order_and_cuts_every_per_neuron_array(with_truth):
    c, keep = with_truth, [3, 0, 2]
    sub = subset_neurons(c, keep)
    validate_content(sub, "subset")
    assert sub.neuron_ids == ["u3", "u0", "u2"]
    for s, orig in zip(sub.stimuli, c.stimuli, strict=True):
        np.testing.assert_array_equal(s.responses, orig.responses[keep])
        np.testing.assert_array_equal(s.spectrogram, orig.spectrogram)
        np.testing.assert_array_equal(s.waveform, orig.waveform)
        assert (s.name, s.type) == (orig.name, orig.type)
    assert set(sub.neuron_meta) == set(c.neuron_meta)
    for col, values in c.neuron_meta.items():
        np.testing.assert_array_equal(sub.neuron_meta[col], values[keep])
    assert list(sub.neuron_meta["grade"]) == ["No", "Yes", "Yes"]
    np.testing.assert_array_equal(sub.truth["rates"], c.truth["rates"][:, keep])
    np.testing.assert_array_equal(sub.truth["gain"], [3, 0, 2])
    np.testing.assert_array_equal(sub.truth["kernels"], c.truth["kernels"][keep])
    np.testing.assert_array_equal(sub.truth["grid"], c.truth["grid"])
    assert sub.truth["seed"] == 5
    assert sub.splits == c.splits and sub.attrs == c.attrs and sub.views == c.views
    assert (sub.name, sub.dt_ms, sub.audio_fs) == (c.name, c.dt_ms, c.audio_fs)
    np.testing.assert_array_equal(sub.spectrogram_freqs, c.spectrogram_freqs)
    # ids and metadata stay together: a selection on the subset picks the same units as on the whole
    whole = select_neuron_indices(c.neuron_meta, c.neuron_ids, "noise_lt40")
    part = select_neuron_indices(sub.neuron_meta, sub.neuron_ids, "noise_lt40")
    assert [c.neuron_ids[i] for i in whole] == ["u0", "u3"] and [sub.neuron_ids[i] for i in part] == ["u3", "u0"]


def test_subset_neurons_leaves_the_input_untouched_and_shares_nothing(with_truth):
    c = with_truth
    before = copy.deepcopy(c)
    sub = subset_neurons(c, [1, 2])
    for name in ("neuron_ids", "splits", "attrs"):
        assert getattr(c, name) == getattr(before, name)
    for s, b in zip(c.stimuli, before.stimuli, strict=True):
        for view in ("responses", "spectrogram", "waveform"):
            np.testing.assert_array_equal(getattr(s, view), getattr(b, view))
    for group in ("neuron_meta", "truth"):
        assert set(getattr(c, group)) == set(getattr(before, group))
        for k, v in getattr(c, group).items():
            np.testing.assert_array_equal(v, getattr(before, group)[k])
    # writing into the result does not reach the input
    for s in sub.stimuli:
        s.responses[...] = -1
        s.spectrogram[...] = -1
        s.waveform[...] = -1
    for group in ("neuron_meta", "truth"):
        for v in getattr(sub, group).values():
            if v.dtype.kind == "f":
                v[...] = -1
    sub.spectrogram_freqs[...] = -1
    sub.splits["train"].append(99)
    sub.neuron_ids.append("x")
    sub.attrs["new"] = 1
    assert c.splits == before.splits and c.neuron_ids == before.neuron_ids and c.attrs == before.attrs
    np.testing.assert_array_equal(c.spectrogram_freqs, before.spectrogram_freqs)
    for s, b in zip(c.stimuli, before.stimuli, strict=True):
        for view in ("responses", "spectrogram", "waveform"):
            np.testing.assert_array_equal(getattr(s, view), getattr(b, view))
    for k, v in c.truth.items():
        np.testing.assert_array_equal(v, before.truth[k])


def test_subset_neurons_of_a_single_view_dataset(content_factory):
    c = content_factory(n_neurons=6)
    c.stimuli = [Stimulus(s.name, s.type, s.responses, spectrogram=s.spectrogram) for s in c.stimuli]
    c.audio_fs = None
    sub = subset_neurons(c, [5])
    validate_content(sub, "subset")
    assert sub.views == ("spectrogram",) and sub.neuron_ids == ["u5"] and sub.truth == {}
    assert sub.stimuli[2].responses.shape == (1,) + c.stimuli[2].responses.shape[1:]


def test_subset_neurons_rejects_bad_indices(with_truth):
    for bad in ([], [4], [-1], [1, 1], [True], [0.0]):
        with pytest.raises(ValueError, match="subset_neurons: indices must be"):
            subset_neurons(with_truth, bad)
    with_truth.truth["rates"] = with_truth.truth["rates"][:, :3]
    with pytest.raises(DatasetError, match=r"truth\['rates'\] has shape \(4, 3, 20\); expected \(S, N=4, T\)"):
        subset_neurons(with_truth, [0])
