"""NS1 (``ns1`` and ``ns1_release``): the reference's processing rules, the release checks, acquisition, caching.

Always on: a tiny release written by these tests in the real layout (``MetadataSHEnCneurons.mat``
with a ``neuron`` struct array; per-neuron ``data.set(s).repeats(r).t`` struct arrays via
scipy.io.savemat, one neuron file in MATLAB v7.3 / HDF5 layout, empty repeats as uint8 1x0; float32
WAVs at 48828 Hz without extension; a neuron whose file is missing but has an ``_1`` sibling, and
one with neither). Downloads go to a local HTTP server on 127.0.0.1.

With the real release (``../shared/data/ns1_raw`` next to the repository, or $STRF_RUNNER_NS1_RAW):
the full 119-unit processing, its counts, the noise ratio, the 73-unit selection and the cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import stat
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.io.wavfile
import scipy.signal

from strf_runner.data import ns1, ns1_release
from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.data.matfile import read_mat
from strf_runner.data.schema import DatasetContent, file_sha256, read_dataset
from strf_runner.data.selection import select_neuron_indices
from strf_runner.errors import ConfigError, DatasetError

FS_HEADER = 48828
N_MS = 4995

# ---------------------------------------------------------------------------------------------
# writers of the release layout


def _char(text: str) -> np.ndarray:
    return np.array([text])


def write_metadata(path: Path, rows: list[dict]) -> None:
    """``neuron`` (1 x N) struct array with the release's fields and MATLAB integer types."""
    fields = ["path", "NrOfElectrodes", "ElectrodeNumber", "depth", "NoiseRatio", "singleT", "singleN"]
    neuron = np.empty((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        neuron["path"][0, i] = _char(row["path"])
        neuron["NrOfElectrodes"][0, i] = np.array([[row.get("n_el", 32)]], dtype=np.uint8)
        neuron["ElectrodeNumber"][0, i] = np.array([[row.get("el", i + 1)]], dtype=np.uint8)
        neuron["depth"][0, i] = np.array([[row["depth"]]], dtype=np.int16 if row["depth"] < 0 else np.uint16)
        neuron["NoiseRatio"][0, i] = np.array([[row["noise"]]], dtype=np.float64)
        neuron["singleT"][0, i] = _char(row["single_t"])
        neuron["singleN"][0, i] = np.array([[{"No": 0, "Maybe": 1, "Yes": 2}[row["single_t"]]]], dtype=np.uint8)
    scipy.io.savemat(path, {"neuron": neuron})


def _sets(trains: list[list[np.ndarray | None]], stim_params: list[tuple[int, int, int]] | None = None) -> list[dict]:
    """The ``data.set`` elements in plain form: 20 natural sounds, then 2 DRC-like sets (5 repeats)."""
    params = list(stim_params or ns1.STIMULUS_PARAMS) + [(9, 10, 0), (9, 20, 0)]
    extra = [[np.array([100.0, 200.0])] * 5] * 2
    out = []
    for s, reps in enumerate(list(trains) + extra):
        source, set_, stim_id = params[s]
        out.append(
            {
                "repeats": [
                    {"t": t, "repeat_id": np.full(0 if t is None else len(t), r + 1), "timestamp": f"20130426-{r:09d}"}
                    for r, t in enumerate(reps)
                ],
                "stim_params": {"Source": source, "Set": set_, "StimID": stim_id},
                "length_signal_ms": 5241.9,
            }
        )
    return out


def write_neuron_classic(path: Path, trains, stim_params=None) -> None:
    """A classic (v5) neuron file: ``data`` 1x1 struct, ``set`` 1xS struct array, ``repeats`` 1xR."""
    sets = _sets(trains, stim_params)
    arr = np.empty((1, len(sets)), dtype=[("repeats", "O"), ("stim_params", "O"), ("length_signal_ms", "O")])
    for s, e in enumerate(sets):
        reps = np.empty((1, len(e["repeats"])), dtype=[("t", "O"), ("repeat_id", "O"), ("timestamp", "O")])
        for r, rep in enumerate(e["repeats"]):
            t = rep["t"]
            # the release stores a repeat without spikes as a uint8 1x0 array
            reps["t"][0, r] = np.zeros((1, 0), np.uint8) if t is None or len(t) == 0 else np.asarray(t, float)[None, :]
            reps["repeat_id"][0, r] = rep["repeat_id"].astype(np.uint8)[None, :]
            reps["timestamp"][0, r] = _char(rep["timestamp"])
        sp = np.empty((1, 1), dtype=[("Source", "O"), ("Set", "O"), ("StimID", "O")])
        for k, v in e["stim_params"].items():
            sp[k][0, 0] = np.array([[v]], dtype=np.uint8)
        arr["repeats"][0, s] = reps
        arr["stim_params"][0, s] = sp
        arr["length_signal_ms"][0, s] = np.array([[e["length_signal_ms"]]])
    data = np.empty((1, 1), dtype=[("set", "O")])
    data["set"][0, 0] = arr
    scipy.io.savemat(path, {"data": data})


class _V73Writer:
    """Just enough of MATLAB's v7.3 layout: a 512-byte user block with a MATLAB header, arrays stored
    transposed with a MATLAB_class, empties as their dims with MATLAB_empty, scalar structs as groups,
    struct arrays as groups of reference arrays (no MATLAB_class) into ``#refs#``."""

    def __init__(self, f: h5py.File) -> None:
        self.f, self.refs, self.names = f, f.require_group("#refs#"), itertools.count()

    def member(self, group: h5py.Group, name: str, value):
        if isinstance(value, list):  # struct array
            g = group.create_group(name)
            g.attrs["MATLAB_class"] = np.bytes_("struct")
            for key in value[0]:
                refs = [self.member(self.refs, f"r{next(self.names)}", e[key]).ref for e in value]
                g.create_dataset(key, data=np.array(refs, dtype=h5py.ref_dtype)[:, None])  # 1 x n, transposed
            return g
        if isinstance(value, dict):  # scalar struct
            g = group.create_group(name)
            g.attrs["MATLAB_class"] = np.bytes_("struct")
            for key, v in value.items():
                self.member(g, key, v)
            return g
        if isinstance(value, str):
            ds = group.create_dataset(name, data=np.array([ord(c) for c in value], dtype=np.uint16)[:, None])
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            return ds
        a = np.asarray(np.zeros(0) if value is None else value, dtype=np.float64)
        if a.size == 0:
            ds = group.create_dataset(name, data=np.array([1, 0], dtype=np.uint64))
            ds.attrs["MATLAB_empty"] = np.uint8(1)
        else:
            ds = group.create_dataset(name, data=(a.reshape(1, -1) if a.ndim < 2 else a).T)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        return ds


def write_mat73(path: Path, variables: dict) -> None:
    with h5py.File(path, "w", userblock_size=512) as f:
        w = _V73Writer(f)
        for name, value in variables.items():
            if isinstance(value, np.ndarray) and value.ndim > 2:
                ds = f.create_dataset(name, data=value.T)  # MATLAB's column-major order, as HDF5 sees it
                ds.attrs["MATLAB_class"] = np.bytes_("double")
            else:
                w.member(f, name, [value] if isinstance(value, dict) else value)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .".ljust(116))


def write_neuron_v73(path: Path, trains) -> None:
    write_mat73(path, {"data": {"set": _sets(trains)}})


def write_wav(path: Path, x: np.ndarray) -> None:
    scipy.io.wavfile.write(path, FS_HEADER, np.asarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# the tiny release

HAND_TIMES = [0.4, 0.6, 4.5, 5.5, -0.4, -0.6, 2.5, 7.5, 9.8, 10.2, 20, 21, 22, 23, 24, 24.2, 4990.0, 4994.4, 4994.6]
HAND_COUNTS = {0: 4, 1: 2, 2: 1, 4: 5, 998: 2}  # worked by hand below, in test_binning_rule_hand_worked


def _random_trains(rng: np.random.Generator) -> list[list[np.ndarray]]:
    trains = []
    for _ in range(ns1.N_STIMULI):
        reps = []
        for _ in range(ns1.N_REPEATS):
            t = rng.uniform(-30.0, 5100.0, rng.poisson(25))
            halves = rng.integers(0, 5000, 3) + 0.5  # exact .5 ms: half to even
            clumps = np.repeat(rng.uniform(0, 4995, 2), 2) + rng.uniform(-0.2, 0.2, 4)  # two spikes in one ms
            reps.append(np.sort(np.concatenate([t, halves, clumps])))
        trains.append(reps)
    return trains


NEURONS = [  # metadata rows of the tiny release, and how each neuron's file is written
    {"path": "exp1/P01-A/cluster.01.data.mat", "depth": 300, "noise": 10.0, "single_t": "Yes", "kind": "classic"},
    {"path": "exp1/P01-A/cluster.02.data.mat", "depth": -50, "noise": 45.0, "single_t": "Maybe", "kind": "v73"},
    {"path": "exp2/P02-B/cluster.01.data.mat", "depth": 100, "noise": 12.0, "single_t": "No", "kind": "sibling"},
    {"path": "exp2/P02-B/cluster.07.data.mat", "depth": 200, "noise": 8.0, "single_t": "Yes", "kind": "absent"},
    {"path": "exp1/P01-A/cluster.03.data.mat", "depth": 0, "noise": 30.0, "single_t": "Maybe", "kind": "edge"},
]


def make_release(root: Path, complete: bool = False, seed: int = 0) -> dict:
    """Write the tiny release into ``root``; return the spike trains written per metadata row.

    complete: only the neurons whose named file exists (what a strict, verified run needs).
    """
    rng = np.random.default_rng(seed)
    rows = [n for n in NEURONS if not complete or n["kind"] in ("classic", "v73", "edge")]
    spikes = root / ns1_release.SPIKES_DIR
    written = {}
    for row in rows:
        trains = _random_trains(rng)
        target = spikes / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if row["kind"] == "edge":
            for r in range(5):
                trains[0][r] = None  # empty repeats
            trains[0][5] = np.array(HAND_TIMES)
            trains[5] = trains[5][:19]  # a stimulus with 19 repeats
        if row["kind"] == "v73":
            trains = [reps[:6] for reps in trains]  # 6 repeats (NaN rows after): a smaller, quicker HDF5 file
            write_neuron_v73(target, trains)
        elif row["kind"] == "sibling":
            write_neuron_classic(target.with_name("cluster.01.data_1.mat"), trains)
        elif row["kind"] != "absent":
            write_neuron_classic(target, trains)
        written[row["path"]] = None if row["kind"] == "absent" else trains
    write_metadata(root / ns1_release.META_FILE, rows)
    wav_dir = spikes / ns1_release.WAVEFORM_DIR
    wav_dir.mkdir(parents=True, exist_ok=True)
    for s, name in enumerate(ns1_release.STIMULUS_FILES):
        if s == 0:  # a 1 kHz tone, shorter than 5 s: padded
            x = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(12000) / 48828.125)
        elif s == 1:  # stereo: downmixed by the mean
            x = rng.normal(0, 0.1, (3000, 2))
        elif s == 2:  # longer than 5 s: cropped
            x = rng.normal(0, 0.1, 250_000)
        else:
            x = rng.normal(0, 0.1, 2441)
        write_wav(wav_dir / name, x)
    return written


def release_manifest(root: Path) -> dict[str, tuple[int, str]]:
    """The tiny release's own (size, sha256) table, in the layout of ns1_release.RELEASE_FILES."""
    files = [root / ns1_release.META_FILE] + sorted((root / ns1_release.SPIKES_DIR).rglob("*"))
    return {p.relative_to(root).as_posix(): (p.stat().st_size, file_sha256(p)) for p in files if p.is_file()}


def reference_counts(times) -> np.ndarray:
    """The spec's rule, one spike at a time: Python's round (half to even), range test, one-hot, reshape-sum."""
    onehot = np.zeros(N_MS)
    for t in [] if times is None else times:
        k = round(float(t))
        if 0 <= k < N_MS:
            onehot[k] = 1.0
    return onehot.reshape(999, 5).sum(axis=1)


def smooth_formula(c: np.ndarray) -> np.ndarray:
    """y[t] = 0.5 c[t-1] + c[t] + 0.5 c[t+1], zeros outside."""
    y = c.astype(np.float64).copy()
    y[..., 1:] += 0.5 * c[..., :-1]
    y[..., :-1] += 0.5 * c[..., 1:]
    return y


def add_x_nfht(raw: Path, v73: bool = False, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(-30, 10, (20, 34, 1, 999))
    if v73:
        write_mat73(raw / ns1_release.X_NFHT_FILE, {"X_nfht": x})
    else:
        scipy.io.savemat(raw / ns1_release.X_NFHT_FILE, {"X_nfht": x, "y_nt": np.zeros((3, 999))})
    return x[:, :, 0, :].astype(np.float32)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ns1_tiny")
    return root, make_release(root)


@pytest.fixture(scope="module")
def processed(release) -> tuple[DatasetContent, list[str]]:
    """The tiny release with the default options but unverified (so: _1 fallback and skip), and the
    warnings that processing gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        content = ns1.process_ns1(release[0], ns1.NS1DatasetConfig(verify=False))
    return content, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def content(processed) -> DatasetContent:
    return processed[0]


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny release with every named neuron file (what a strict, verified run needs), plus X_nfht."""
    root = tmp_path_factory.mktemp("ns1_complete")
    written = make_release(root, complete=True)
    add_x_nfht(root)
    return root, written


def _copy_release(release, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(release[0], raw)
    return raw


# ---------------------------------------------------------------------------------------------
# the binning and smoothing rules


def test_binning_rule_hand_worked():
    # 0.4->0, 0.6->1, 4.5->4 (half to even), 2.5->2, -0.4->0 (rounded before the range test; ms 0 is
    # already marked, so once): bin 0 = {0,1,2,4} = 4. 5.5->6, 7.5->8: bin 1 = 2. 9.8 and 10.2 -> 10:
    # one ms, counted once: bin 2 = 1. 20..24 and 24.2 (-> 24 again): bin 4 = 5 (the maximum).
    # 4990 and 4994.4 -> bin 998 = 2; 4994.6 -> 4995 and -0.6 -> -1 fall outside.
    counts = ns1.bin_spike_times(np.array(HAND_TIMES + [0.4]), np.array([0] * len(HAND_TIMES) + [1]), 2)
    assert counts.shape == (2, 999) and counts.dtype == np.float32
    expected = np.zeros(999)
    for k, v in HAND_COUNTS.items():
        expected[k] = v
    np.testing.assert_array_equal(counts[0], expected)
    np.testing.assert_array_equal(counts[1], np.eye(999)[0])  # trials are kept apart
    np.testing.assert_array_equal(counts[0], reference_counts(HAND_TIMES))


def test_binning_matches_the_one_spike_at_a_time_rule():
    rng = np.random.default_rng(3)
    trains = [np.concatenate([rng.uniform(-10, 5010, 400), np.arange(0, 5000, 7) + 0.5]) for _ in range(6)]
    times = np.concatenate(trains)
    trial = np.repeat(np.arange(6), [len(t) for t in trains])
    counts = ns1.bin_spike_times(times, trial, 6)
    for i, t in enumerate(trains):
        np.testing.assert_array_equal(counts[i], reference_counts(t))
    assert counts.max() <= 5


def test_binning_drops_non_finite_times():
    counts = ns1.bin_spike_times(np.array([np.nan, np.inf, 3.0]), np.zeros(3, int), 1)
    assert counts.sum() == 1 and counts[0, 0] == 1


def test_smoothing_is_the_unnormalised_centred_hann():
    np.testing.assert_array_equal(ns1.HANN5, np.hanning(5))  # [0, .5, 1, .5, 0], sums to 2
    c = np.zeros((1, 10), np.float32)
    c[0, 5] = 1
    np.testing.assert_array_equal(ns1.smooth_responses(c)[0], [0, 0, 0, 0, 0.5, 1, 0.5, 0, 0, 0])
    edge = np.zeros(6, np.float32)
    edge[0], edge[-1] = 2, 4  # zero padding: nothing wraps around
    np.testing.assert_array_equal(ns1.smooth_responses(edge), [2, 1, 0, 0, 2, 4])
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 6, (3, 4, 999)).astype(np.float32)
    smoothed = ns1.smooth_responses(counts)
    assert smoothed.dtype == np.float32
    np.testing.assert_array_equal(smoothed, smooth_formula(counts))
    np.testing.assert_array_equal(smoothed[1, 2], np.convolve(counts[1, 2], np.hanning(5), mode="same"))
    # taps sum to 2: twice the counts, less the half taps that fall off each end
    np.testing.assert_array_equal(smoothed.sum(-1), 2 * counts.sum(-1) - 0.5 * (counts[..., 0] + counts[..., -1]))


def test_smoothing_kernel_must_be_odd():
    with pytest.raises(ConfigError, match="odd"):
        ns1.smooth_responses(np.zeros(5), np.ones(4))


# ---------------------------------------------------------------------------------------------
# the tiny release, processed


def test_tiny_release_responses_follow_the_rule(release, content):
    _, written = release
    kept = [n for n in NEURONS if n["kind"] != "absent"]
    assert content.neuron_ids == [n["path"][:-4] for n in kept]
    for j, row in enumerate(kept):
        trains = written[row["path"]]
        for s in range(20):
            r_count = len(trains[s])
            expected = np.stack([reference_counts(t) for t in trains[s]])
            np.testing.assert_array_equal(content.stimuli[s].responses[j, :r_count], smooth_formula(expected))
            assert np.isnan(content.stimuli[s].responses[j, r_count:]).all()
    edge = kept.index(NEURONS[4])
    assert np.isnan(content.stimuli[5].responses[edge, 19]).all()  # the 19-repeat stimulus
    np.testing.assert_array_equal(content.stimuli[0].responses[edge, :5], 0.0)  # empty uint8 1x0 repeats
    assert np.isfinite(content.stimuli[0].responses[[0, 2, 3]]).all()  # all but the 6-repeat v7.3 neuron


def test_tiny_release_geometry_and_grid_lock(content):
    assert len(content.stimuli) == 20 and content.dt_ms == 5.0 and content.audio_fs == 48000.0
    assert content.hop == 240 and 239_760 % 240 == 0 and 239_760 // 240 == 999
    for s in content.stimuli:
        assert s.responses.shape == (4, 20, 999) and s.responses.dtype == np.float32
        assert s.waveform.shape == (239_760,) and s.waveform.dtype == np.float32
        assert s.spectrogram.shape == (34, 999) and s.spectrogram.dtype == np.float32
        assert s.waveform.shape[0] // content.hop == s.responses.shape[-1]
    np.testing.assert_array_equal(content.spectrogram_freqs, band_centres())


def test_tiny_release_metadata_stimuli_and_splits(content):
    m = content.neuron_meta
    assert list(m["cell_id"]) == content.neuron_ids
    np.testing.assert_array_equal(m["depth_um"], [300, -50, 100, 0])
    np.testing.assert_array_equal(m["noise_ratio"], [10.0, 45.0, 12.0, 30.0])
    assert list(m["single_t"]) == ["Yes", "Maybe", "No", "Maybe"]
    np.testing.assert_array_equal(m["single_n"], [2, 1, 0, 1])
    np.testing.assert_array_equal(m["n_electrodes"], [32] * 4)
    np.testing.assert_array_equal(m["electrode_number"], [1, 2, 3, 5])
    assert list(m["area"]) == ["A1"] * 4
    assert m["spike_file"][2] == "exp2/P02-B/cluster.01.data_1.mat"  # the reference's _1 fallback
    assert [s.name for s in content.stimuli] == [f"nat{i:02d}" for i in range(1, 21)]
    types = [s.type for s in content.stimuli]
    assert types[0] == types[19] == "water_sounds" and types[3] == "ferret_vocalization"
    assert types[6] == "insects_buzzing" and types[8:12] == ["human_speech"] * 4
    assert types.count("unknown") == 20 - 2 - 1 - 1 - 4
    assert content.splits == {"train": list(range(14)), "val": [14, 15, 16], "test": [17, 18, 19]}
    a = content.attrs
    assert a["native_source"] == "recomputed" and a["citation"] == ns1_release.CITATION
    assert a["smooth"].startswith("hann5_unnormalised") and "4000" in a["resample"] and "4069" in a["resample"]
    assert json.loads(a["skipped_neurons"]) == ["exp2/P02-B/cluster.07.data.mat"]
    assert json.loads(a["source_urls"])[ns1_release.META_FILE] == ns1_release.META_URL


def test_missing_neuron_without_sibling_is_skipped_with_a_warning(processed):
    content, messages = processed
    assert messages == [
        "NS1: skipped 1 neurons whose spike file is missing (nor a _1 file): exp2/P02-B/cluster.07.data.mat"
    ]
    assert len(content.neuron_ids) == 4 and "exp2/P02-B/cluster.07.data" not in content.neuron_ids


def test_waveform_view_resamples_pads_crops_and_downmixes(release, content):
    wav_dir = release[0] / ns1_release.SPIKES_DIR / ns1_release.WAVEFORM_DIR
    # the tone stays a 1 kHz tone on the 48 kHz grid (the ratio goes the right way), then zeros
    w = content.stimuli[0].waveform.astype(np.float64)
    n = int(12000 * 48000 / 48828)
    t = np.arange(1000, n - 1000)
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * (48828 / 48828.125) * t / 48000.0)  # source taken as 48828 Hz
    assert np.abs(w[t] - expected).max() < 2e-3
    assert np.abs(w[n + 200 :]).max() == 0.0
    # stereo: the mean of the channels, resampled like any mono file
    _, stereo = scipy.io.wavfile.read(wav_dir / ns1_release.STIMULUS_FILES[1])
    mono = scipy.signal.resample_poly(stereo.astype(np.float64).mean(axis=1), 4000, 4069)
    np.testing.assert_allclose(content.stimuli[1].waveform[: mono.size], mono, atol=1e-6)
    # longer than 4.995 s: cropped at the end to 239,760 samples
    _, long = scipy.io.wavfile.read(wav_dir / ns1_release.STIMULUS_FILES[2])
    full = scipy.signal.resample_poly(long.astype(np.float64), 4000, 4069)
    assert full.size > 239_760
    np.testing.assert_allclose(content.stimuli[2].waveform, full[:239_760], atol=1e-6)


def test_recomputed_native_view_is_the_cochleagram_of_the_48k_waveform(content):
    for s in (0, 7):
        expected = native_cochleagram(content.stimuli[s].waveform, 48000.0)
        np.testing.assert_array_equal(content.stimuli[s].spectrogram, expected)


def test_x_nfht_is_used_when_present(release, tmp_path: Path):
    raw = _copy_release(release, tmp_path)
    expected = add_x_nfht(raw)
    with pytest.warns(UserWarning, match="skipped"):
        c = ns1.process_ns1(raw, ns1.NS1DatasetConfig(verify=False, smooth=False))
    assert c.attrs["native_source"] == "X_nfht"
    for s in (0, 13, 19):
        np.testing.assert_array_equal(c.stimuli[s].spectrogram, expected[s])


def test_x_nfht_in_v73_layout_reads_in_matlab_orientation(tmp_path: Path):
    expected = add_x_nfht(tmp_path, v73=True)
    assert h5py.File(tmp_path / ns1_release.X_NFHT_FILE)["X_nfht"].shape == (999, 1, 34, 20)  # as MATLAB writes it
    np.testing.assert_array_equal(ns1._read_x_nfht(tmp_path / ns1_release.X_NFHT_FILE), expected)


def test_x_nfht_of_the_wrong_shape_is_an_error(tmp_path: Path):
    scipy.io.savemat(tmp_path / ns1_release.X_NFHT_FILE, {"X_nfht": np.zeros((20, 34, 1, 500))})
    with pytest.raises(DatasetError, match=r"test_data_5ms\.mat: X_nfht has shape \(20, 34, 500\)"):
        ns1._read_x_nfht(tmp_path / ns1_release.X_NFHT_FILE)


def test_native_x_nfht_without_the_file_says_where_to_get_it(release):
    with pytest.raises(DatasetError, match=r"dataset\.native=x_nfht needs .*test_data_5ms\.mat; download https://raw"):
        ns1.process_ns1(release[0], ns1.NS1DatasetConfig(verify=False, native="x_nfht"))


def test_16khz_waveform_view_has_hop_80(release, tmp_path: Path):
    raw = _copy_release(release, tmp_path)
    add_x_nfht(raw)
    with pytest.warns(UserWarning):
        c = ns1.process_ns1(raw, ns1.NS1DatasetConfig(verify=False, audio_fs=16000.0, resample_from="exact"))
    assert c.hop == 80 and c.stimuli[0].waveform.shape == (79_920,)
    assert "up=1024 down=3125" in c.attrs["resample"]


def test_options_are_checked():
    assert ns1.resample_ratio(48000.0, "reference") == (4000, 4069)
    assert ns1.resample_ratio(48000.0, "exact") == (3072, 3125)
    with pytest.raises(ConfigError, match=r"dataset\.audio_fs=44100.* 220\.5 samples"):
        ns1.NS1DatasetConfig(audio_fs=44100)
    with pytest.raises(ConfigError, match=r"dataset\.native='cochleagram'; choose one of"):
        ns1.NS1DatasetConfig(native="cochleagram")
    with pytest.raises(ConfigError, match=r"dataset\.resample_from"):
        ns1.NS1DatasetConfig(resample_from="48828")
    with pytest.raises(ConfigError, match=r"dataset\.smooth"):
        ns1.NS1DatasetConfig(smooth="yes")
    assert ns1.NS1DatasetConfig(audio_fs=16000).audio_fs == 16000.0


# ---------------------------------------------------------------------------------------------
# NS1's files: neuron files in both MATLAB layouts (test_matfile has the generic reader's tests), WAVs


def test_classic_and_v73_neuron_files_read_the_same(tmp_path: Path):
    trains = [reps[:4] for reps in _random_trains(np.random.default_rng(5))]  # 4 repeats: quicker
    trains[2][3] = None
    trains[4][0] = np.array([12.5])  # a single spike: a 1x1 array
    write_neuron_classic(tmp_path / "a.mat", trains)
    write_neuron_v73(tmp_path / "b.mat", trains)
    assert h5py.is_hdf5(tmp_path / "b.mat") and not h5py.is_hdf5(tmp_path / "a.mat")
    a = read_mat(tmp_path / "a.mat", ["data"])["data"]
    b = read_mat(tmp_path / "b.mat", ["data"])["data"]
    assert len(a) == len(b) == 1 and len(a[0]["set"]) == len(b[0]["set"]) == 22
    for s in range(20):
        for ra, rb in zip(a[0]["set"][s]["repeats"], b[0]["set"][s]["repeats"], strict=True):
            np.testing.assert_array_equal(np.ravel(ra["t"]), np.ravel(rb["t"]))
            assert ra["timestamp"] == rb["timestamp"]
    assert a[0]["set"][4]["repeats"][0]["timestamp"] == "20130426-000000000"
    assert np.asarray(a[0]["set"][2]["repeats"][3]["t"]).dtype == np.uint8  # the release's empty repeat
    np.testing.assert_array_equal(ns1._read_spike_trains(tmp_path / "a.mat")[4][0], [12.5])


def test_neuron_file_of_the_wrong_structure_names_file_and_field(tmp_path: Path):
    trains = _random_trains(np.random.default_rng(0))
    swapped = [ns1.STIMULUS_PARAMS[1], ns1.STIMULUS_PARAMS[0]] + list(ns1.STIMULUS_PARAMS[2:])
    write_neuron_classic(tmp_path / "swap.mat", trains, stim_params=swapped)
    with pytest.raises(DatasetError, match=r"swap\.mat: data\.set\(1\) is stimulus \(Source, Set, StimID\)"):
        ns1._read_spike_trains(tmp_path / "swap.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"data": {"sets": np.zeros(3)}})
    with pytest.raises(DatasetError, match=r"other\.mat: data has no field 'set'"):
        ns1._read_spike_trains(tmp_path / "other.mat")
    too_many = [reps + reps[:1] for reps in trains]
    write_neuron_classic(tmp_path / "many.mat", too_many)
    with pytest.raises(DatasetError, match=r"many\.mat: data\.set\(1\)\.repeats has 21 repeats"):
        ns1._read_spike_trains(tmp_path / "many.mat")


def test_truncated_or_foreign_wav_is_an_error(tmp_path: Path):
    write_wav(tmp_path / "w", np.zeros(10_000))
    data = (tmp_path / "w").read_bytes()
    (tmp_path / "half").write_bytes(data[: len(data) // 2])
    (tmp_path / "stub").write_bytes(data[:30])
    with pytest.raises(DatasetError, match="half: truncated WAV file"):
        ns1.read_waveform(tmp_path / "half")
    with pytest.raises(DatasetError, match="stub: cannot read as a WAV file"):
        ns1.read_waveform(tmp_path / "stub")
    scipy.io.wavfile.write(tmp_path / "cd", 44100, np.zeros(100, np.int16))
    with pytest.raises(DatasetError, match="cd: sample rate 44100 Hz"):
        ns1.read_waveform(tmp_path / "cd")
    with pytest.raises(DatasetError, match="stimulus waveform .* is missing"):
        ns1.read_waveform(tmp_path / "absent")


def test_corrupt_neuron_file_in_a_release_is_an_error_naming_it(release, tmp_path: Path):
    raw = _copy_release(release, tmp_path)
    target = raw / ns1_release.SPIKES_DIR / NEURONS[0]["path"]
    target.write_bytes(target.read_bytes()[:5000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped neuron
        with pytest.raises(DatasetError, match=r"cluster\.01\.data\.mat: cannot read as a MATLAB"):
            ns1.process_ns1(raw, ns1.NS1DatasetConfig(verify=False))


# ---------------------------------------------------------------------------------------------
# verification and the strict missing-file rule


def test_verify_raw_accepts_a_matching_release_and_names_each_problem(release, tmp_path: Path):
    raw = _copy_release(release, tmp_path)
    manifest = release_manifest(raw)
    ns1_release.verify_raw(raw, manifest)
    neuron = raw / ns1_release.SPIKES_DIR / NEURONS[0]["path"]
    data = bytearray(neuron.read_bytes())
    data[200] ^= 0xFF
    neuron.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"cluster\.01\.data\.mat has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}"):
        ns1_release.verify_raw(raw, manifest)
    wav = ns1_release.waveform_path(raw, 4)
    wav.write_bytes(wav.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"has \d+ bytes, expected \d+ \(truncated or corrupt\) \(and 1 more"):
        ns1_release.verify_raw(raw, {k: manifest[k] for k in sorted(manifest, key=lambda k: "SH.En.C" not in k)})
    (raw / ns1_release.META_FILE).unlink()
    with pytest.raises(DatasetError, match=r"MetadataSHEnCneurons\.mat is missing .*dataset\.verify=false") as info:
        ns1_release.verify_raw(raw, manifest)
    assert "\n" not in str(info.value)


def test_verify_raw_reports_a_missing_neuron_file_and_its_sibling(release):
    raw = release[0]
    with pytest.raises(DatasetError, match=r"cluster\.01\.data\.mat is missing \(only cluster\.01\.data_1\.mat is"):
        ns1_release.verify_raw(raw, {f"{ns1_release.SPIKES_DIR}/{NEURONS[2]['path']}": (1, "0" * 64)})
    with pytest.raises(DatasetError, match="NS1 release check failed"):
        ns1_release.verify_raw(raw)  # the tiny release is not the real one


def test_strict_processing_requires_every_named_neuron_file(release):
    pattern = r"NS1 neuron file .*exp2/P02-B/cluster\.01\.data\.mat is missing; only cluster\.01\.data_1\.mat exists; "
    with pytest.raises(DatasetError, match=pattern + r".*dataset\.verify=false"):
        ns1.process_ns1(release[0], ns1.NS1DatasetConfig(verify=True))


def test_complete_release_processes_strictly(complete):
    raw, written = complete
    c = ns1.process_ns1(raw, ns1.NS1DatasetConfig(smooth=False))
    assert c.neuron_ids == [p[:-4] for p in written] and json.loads(c.attrs["skipped_neurons"]) == []
    trains = written[NEURONS[1]["path"]]  # the v7.3 file, 6 repeats
    np.testing.assert_array_equal(c.stimuli[7].responses[1, :6], np.stack([reference_counts(t) for t in trains[7]]))
    assert np.isnan(c.stimuli[7].responses[1, 6:]).all()


# ---------------------------------------------------------------------------------------------
# the cache


def test_ensure_processes_once_and_reuses(complete, tmp_path: Path, monkeypatch):
    raw = complete[0]
    monkeypatch.setattr(ns1_release, "RELEASE_FILES", release_manifest(raw))
    cache = tmp_path / "cache"
    path = ns1.ensure_ns1(raw, ns1.NS1DatasetConfig(), cache_dir=cache, progress=False)
    key = ns1.cache_key(ns1.NS1DatasetConfig(native="x_nfht"), {"x_nfht_sha256": file_sha256(raw / ns1_release.X_NFHT_FILE)})
    assert path == cache / f"ns1-{key}.h5" and path.exists()
    assert not list(raw.glob("*.h5"))  # nothing is written into the raw folder
    spec = read_dataset(path, views=("spectrogram",))
    wave = read_dataset(path, views=("waveform",))
    assert spec.attrs["cache_key"] == key and spec.attrs["native_source"] == "X_nfht"
    for a, b in zip(spec.stimuli, wave.stimuli, strict=True):
        assert a.responses.tobytes() == b.responses.tobytes()  # bit-identical in both views
    assert wave.audio_fs == 48000.0 and wave.hop == 240
    assert list(spec.neuron_meta["single_t"]) == ["Yes", "Maybe", "Maybe"]

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    monkeypatch.setattr(ns1, "process_ns1", fail)
    monkeypatch.setattr(ns1, "verify_raw", fail)  # as ensure_ns1 looks it up
    assert ns1.ensure_ns1(raw, ns1.NS1DatasetConfig(), cache_dir=cache, progress=False) == path


def test_ensure_verifies_before_processing(complete, tmp_path: Path, monkeypatch):
    raw = _copy_release(complete, tmp_path)
    manifest = release_manifest(raw)
    monkeypatch.setattr(ns1_release, "RELEASE_FILES", manifest)
    wav = ns1_release.waveform_path(raw, 0)
    wav.write_bytes(wav.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(DatasetError, match=r"frozen\.1 has sha256 .* \(corrupt\)"):
        ns1.ensure_ns1(raw, ns1.NS1DatasetConfig(), cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("ns1-*.h5"))


def test_cache_key_covers_every_option_and_unpinned_inputs(release, tmp_path: Path):
    base = ns1.NS1DatasetConfig(native="recomputed")
    variants = [
        base,
        ns1.NS1DatasetConfig(native="recomputed", smooth=False),
        ns1.NS1DatasetConfig(native="recomputed", audio_fs=16000),
        ns1.NS1DatasetConfig(native="recomputed", resample_from="exact"),
        ns1.NS1DatasetConfig(native="x_nfht"),
        ns1.NS1DatasetConfig(native="recomputed", verify=False),
    ]
    keys = {ns1.cache_key(o) for o in variants}
    assert len(keys) == len(variants) and all(len(k) == 12 for k in keys)
    assert ns1.cache_key(base, {"x": "1"}) != ns1.cache_key(base, {"x": "2"})
    assert ns1.cache_key(base) == ns1.cache_key(ns1.NS1DatasetConfig(native="recomputed"))
    # auto is resolved against the raw folder: the key changes when X_nfht appears
    raw = _copy_release(release, tmp_path)
    assert ns1.resolve_options(ns1.NS1DatasetConfig(), raw).native == "recomputed"
    add_x_nfht(raw)
    assert ns1.resolve_options(ns1.NS1DatasetConfig(), raw).native == "x_nfht"


def test_unverified_cache_key_follows_the_input_files(release, tmp_path: Path):
    raw = _copy_release(release, tmp_path)
    add_x_nfht(raw)
    cache = tmp_path / "cache"
    opts = ns1.NS1DatasetConfig(verify=False, smooth=False)
    with pytest.warns(UserWarning, match="skipped"):
        first = ns1.ensure_ns1(raw, opts, cache_dir=cache, progress=False)
    assert ns1.ensure_ns1(raw, opts, cache_dir=cache, progress=False) == first
    wav = ns1_release.waveform_path(raw, 3)
    write_wav(wav, np.zeros(100))
    with pytest.warns(UserWarning, match="skipped"):
        second = ns1.ensure_ns1(raw, opts, cache_dir=cache, progress=False)
    assert second != first and second.exists()
    assert np.abs(read_dataset(second).stimuli[3].waveform).max() == 0.0


def test_unwritable_cache_is_a_dataset_error(complete, tmp_path: Path, monkeypatch):
    raw = complete[0]
    monkeypatch.setattr(ns1_release, "RELEASE_FILES", release_manifest(raw))
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DatasetError, match=r"cannot write the processed NS1 file .*STRF_RUNNER_DATA"):
        ns1.ensure_ns1(raw, ns1.NS1DatasetConfig(), cache_dir=blocker, progress=False)


# ---------------------------------------------------------------------------------------------
# acquiring the release


def _zip_folder(folder: Path, archive: Path, prefix: str = "spikesandwav/") -> None:
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, prefix + p.relative_to(folder).as_posix())


def test_offline_without_a_copy_says_what_to_fetch_and_where(tmp_path: Path):
    with pytest.raises(DatasetError) as info:
        ns1_release.locate_raw(tmp_path / "nowhere", download=False)
    msg = str(info.value)
    assert ns1_release.META_URL in msg and ns1_release.ZIP_URL in msg and str(tmp_path / "nowhere") in msg
    assert "dataset.download=true" in msg and "dataset.root" in msg and "\n" not in msg


def test_default_raw_folder_is_under_the_cache_root(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STRF_RUNNER_DATA", str(tmp_path / "env"))
    assert ns1_release.raw_dir(None) == tmp_path / "env" / "ns1_raw"
    assert ns1_release.raw_dir(None, tmp_path / "c") == tmp_path / "c" / "ns1_raw"
    assert ns1_release.raw_dir(tmp_path / "mine") == tmp_path / "mine"
    with pytest.raises(DatasetError, match=str(tmp_path / "env" / "ns1_raw")):
        ns1_release.locate_raw(None, download=False)


def test_download_fetches_checks_and_unzips(release, server, tmp_path: Path, monkeypatch):
    src = release[0]
    _zip_folder(src / ns1_release.SPIKES_DIR, tmp_path / "s.zip")
    meta = (src / ns1_release.META_FILE).read_bytes()
    server.files.update({"/meta": meta, "/zip": (tmp_path / "s.zip").read_bytes()})
    monkeypatch.setattr(ns1_release, "META_URL", server.url("meta"))
    monkeypatch.setattr(ns1_release, "ZIP_URL", server.url("zip"))
    monkeypatch.setattr(ns1_release, "X_NFHT_URL", server.url("x_nfht"))  # 404: recomputed instead, with a warning
    monkeypatch.setattr(ns1_release, "META_SHA256", hashlib.sha256(meta).hexdigest())
    raw = tmp_path / "cache" / "ns1_raw"
    with pytest.warns(UserWarning, match=r"X_nfht not available.*HTTP 404"):
        got = ns1_release.locate_raw(None, download=True, cache_dir=tmp_path / "cache", progress=False)
    assert got == raw
    assert release_manifest(raw) == release_manifest(src)
    assert not (raw / ns1_release.ZIP_FILE).exists() and (raw / (ns1_release.ZIP_FILE + ".sha256")).exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no temp folder left
    server.files["/x_nfht"] = b"later"
    got = ns1_release.locate_raw(None, download=True, cache_dir=tmp_path / "cache", progress=False)
    assert (raw / ns1_release.X_NFHT_FILE).read_bytes() == b"later"
    assert [path for path, _ in server.requests] == ["/meta", "/zip", "/x_nfht", "/x_nfht"]
    ns1_release.locate_raw(raw, download=False)  # in place now: no network


def test_download_of_a_wrong_metadata_file_is_refused(server, tmp_path: Path, monkeypatch):
    server.files["/meta"] = b"not the metadata"
    monkeypatch.setattr(ns1_release, "META_URL", server.url("meta"))
    with pytest.raises(DatasetError, match=r"sha256 is [0-9a-f]{64}, expected 857f7821"):
        ns1_release.locate_raw(tmp_path / "raw", download=True, progress=False)
    assert not (tmp_path / "raw" / ns1_release.META_FILE).exists()


def test_zip_placed_by_hand_is_unpacked_without_network(release, tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(release[0] / ns1_release.META_FILE, raw)
    # no top folder: also accepted
    _zip_folder(release[0] / ns1_release.SPIKES_DIR, raw / ns1_release.ZIP_FILE, prefix="")
    assert ns1_release.locate_raw(raw, download=False) == raw
    assert release_manifest(raw) == release_manifest(release[0])


def test_zip_with_path_traversal_or_links_is_refused(tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for member in ("../evil.txt", "/abs.txt", "spikesandwav/../../evil.txt"):
        with zipfile.ZipFile(raw / "bad.zip", "w") as z:
            z.writestr("spikesandwav/SH.En.C/x", b"ok")
            z.writestr(member, b"evil")
        with pytest.raises(DatasetError, match="unsafe member"):
            ns1_release.extract_spikes(raw / "bad.zip", raw)
    link = zipfile.ZipInfo("spikesandwav/SH.En.C/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(raw / "bad.zip", "w") as z:
        z.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="unsafe member"):
        ns1_release.extract_spikes(raw / "bad.zip", raw)
    assert not (tmp_path / "evil.txt").exists() and not (raw / ns1_release.SPIKES_DIR).exists()
    assert sorted(p.name for p in raw.iterdir()) == ["bad.zip"]  # the temp folder is gone too


def test_bad_archives_are_errors(tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / ns1_release.ZIP_FILE).write_bytes(b"PK\x03\x04 truncated")
    shutil.copy(Path(__file__), raw / ns1_release.META_FILE)  # any file: only its presence matters here
    with pytest.raises(DatasetError, match=r"spikesandwav\.zip is not a valid zip archive .*download it again"):
        ns1_release.locate_raw(raw, download=False)
    with zipfile.ZipFile(raw / ns1_release.ZIP_FILE, "w") as z:
        z.writestr("other/readme.txt", b"hi")
    with pytest.raises(DatasetError, match=r"holds no spikesandwav/SH\.En\.C/ folder"):
        ns1_release.locate_raw(raw, download=False)


# ---------------------------------------------------------------------------------------------
# splits


def test_splits():
    for name, split in ns1.SPLITS.items():
        together = split["train"] + split["val"] + split["test"]
        assert sorted(together) == list(range(20)), name
    assert ns1.SPLITS["default"] == {"train": list(range(14)), "val": [14, 15, 16], "test": [17, 18, 19]}
    r = ns1.split_indices("rahman2020")
    assert r["test"] == [3, 6, 9, 19] and r["val"] == [16, 17, 18] and len(r["train"]) == 13
    r["train"].clear()  # a copy
    assert len(ns1.SPLITS["rahman2020"]["train"]) == 13
    with pytest.raises(ConfigError, match=r"dataset\.split='random' is not a split; choose one of \['default'"):
        ns1.split_indices("random")


# ---------------------------------------------------------------------------------------------
# the real release (skipped where it is absent)


@pytest.fixture(scope="module")
def real(ns1_raw_dir) -> Path:
    return ns1_raw_dir


@pytest.fixture(scope="module")
def real_counts(real) -> DatasetContent:
    """The whole release, unsmoothed."""
    return ns1.process_ns1(real, ns1.NS1DatasetConfig(smooth=False, native="recomputed"))


def test_embedded_checksums_are_the_release_sums(real):
    sums = real / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"{sums} is absent")
    listed = dict(reversed(line.split(maxsplit=1)) for line in sums.read_text().splitlines() if line.strip())
    listed = {path.strip(): digest for path, digest in listed.items()}
    assert {rel: digest for rel, (_, digest) in ns1_release.RELEASE_FILES.items()} == listed
    assert all((real / rel).stat().st_size == size for rel, (size, _) in ns1_release.RELEASE_FILES.items())


def test_real_release_verifies(real):
    ns1_release.verify_raw(real)


def test_real_counts_shapes_and_rule(real, real_counts):
    c = real_counts
    assert len(c.neuron_ids) == 119 == len(set(c.neuron_ids)) and len(c.stimuli) == 20
    total = 0.0
    for s in c.stimuli:
        r = s.responses
        assert r.shape == (119, 20, 999) and r.dtype == np.float32 and np.isfinite(r).all()
        assert r.min() == 0 and r.max() <= 5 and np.array_equal(r, np.round(r))
        total += float(r.sum())
    assert total == REAL_TOTAL_MARKED_MS
    # two neurons, independently: scipy's own reader and the one-spike-at-a-time rule
    meta = scipy.io.loadmat(real / ns1_release.META_FILE)["neuron"][0]
    for j in (0, 118):
        path = str(meta[j]["path"][0])
        assert c.neuron_ids[j] == path[:-4]
        sets = scipy.io.loadmat(real / ns1_release.SPIKES_DIR / path)["data"]["set"][0, 0][0]
        for s in (0, 11, 19):
            expected = np.stack([reference_counts(np.ravel(rep["t"])) for rep in sets[s]["repeats"][0]])
            np.testing.assert_array_equal(c.stimuli[s].responses[j], expected)


REAL_TOTAL_MARKED_MS = 2_990_905.0  # distinct spiking ms in [0, 4995) over all units, sounds and repeats


def _noise_ratio(responses: np.ndarray) -> np.ndarray:
    """Sahani & Linden (2003) noise power / signal power per neuron, from (S, N, R, T) counts with the
    stimuli concatenated in time: TP = mean over repeats of the variance over time, SP = (R Var(PSTH)
    - TP) / (R - 1), NP = TP - SP."""
    s, n, r, t = responses.shape
    y = np.moveaxis(responses, 0, 2).reshape(n, r, s * t).astype(np.float64)
    tp = y.var(axis=-1).mean(axis=-1)
    sp = (r * y.mean(axis=1).var(axis=-1) - tp) / (r - 1)
    return (tp - sp) / sp


def test_real_noise_ratio_matches_the_metadata(real_counts):
    responses = np.stack([s.responses for s in real_counts.stimuli])
    ours = _noise_ratio(responses)
    theirs = real_counts.neuron_meta["noise_ratio"]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert np.median(np.abs(ours / theirs - 1)) < 0.03


def test_real_selections(real_counts):
    meta, ids = real_counts.neuron_meta, real_counts.neuron_ids
    assert len(select_neuron_indices(meta, ids, "valid73")) == 73
    assert len(select_neuron_indices(meta, ids, "noise_lt40")) == 119  # the release's own criterion
    grades = {"No": 0, "Maybe": 1, "Yes": 2}
    assert [grades[g] for g in meta["single_t"]] == list(meta["single_n"])
    assert sorted(set(meta["area"])) == ["A1"]


def test_real_default_processing_and_cache(real, real_counts, tmp_path: Path, monkeypatch):
    path = ns1.ensure_ns1(real, ns1.NS1DatasetConfig(), cache_dir=tmp_path, progress=False)
    spec = read_dataset(path, views=("spectrogram",))
    wave = read_dataset(path, views=("waveform",))
    has_x = (real / ns1_release.X_NFHT_FILE).is_file()
    assert spec.attrs["native_source"] == ("X_nfht" if has_x else "recomputed")
    assert wave.hop == 240 and spec.neuron_ids == real_counts.neuron_ids
    for s, (a, b, raw_counts) in enumerate(zip(spec.stimuli, wave.stimuli, real_counts.stimuli, strict=True)):
        assert a.responses.tobytes() == b.responses.tobytes()
        np.testing.assert_array_equal(a.responses, smooth_formula(raw_counts.responses))
        assert a.spectrogram.shape == (34, 999) and b.waveform.shape == (239_760,)
        assert np.abs(b.waveform[:48_000]).max() > 0  # real sound at the start
    monkeypatch.setattr(ns1, "process_ns1", lambda *a, **k: pytest.fail("processed again"))
    assert ns1.ensure_ns1(real, ns1.NS1DatasetConfig(), cache_dir=tmp_path, progress=False) == path


def test_real_resampling_reference_and_exact_are_equivalent_on_the_bin_grid(real):
    x = ns1.read_waveform(ns1_release.waveform_path(real, 3)).astype(np.float64)
    assert x.size == 244_140
    ref = scipy.signal.resample_poly(x, *ns1.resample_ratio(48000.0, "reference"))
    exact = scipy.signal.resample_poly(x, *ns1.resample_ratio(48000.0, "exact"))
    assert ref.size == exact.size == 240_000
    a = native_cochleagram(ref[:239_760].astype(np.float32), 48000.0)
    b = native_cochleagram(exact[:239_760].astype(np.float32), 48000.0)
    diff = np.abs(a - b)
    assert diff.mean() < 0.05 and np.percentile(diff, 99) < 0.6  # dB; measured 0.027 and 0.41
