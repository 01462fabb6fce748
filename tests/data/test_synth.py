"""The synthetic dataset: determinism, format, statistics, and that it is a meaningful fitting problem.

Most tests use a tiny configuration; the tests marked "default size" share one generation of the
full NS1-sized default (a few seconds), made once per module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from tests.helpers.data import TINY_DATASET

from strf_runner.data import schema
from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.data.synth import (
    GENERATOR_VERSION,
    RATE_STEP,
    SPECTROGRAM_STEP_DB,
    STIMULUS_TYPES,
    WAVEFORM_STEP,
    SynthNeurons,
    SynthDatasetConfig,
    _poisson_counts,
    cache_key,
    draw_neurons,
    ensure_synth,
    generate_synth,
    make_stimuli,
    native_spectrogram,
    neuron_rates,
    synth_path,
)
from strf_runner.errors import ConfigError, ShapeError

TINY = SynthDatasetConfig(**{k: v for k, v in TINY_DATASET.items() if k != "name"})  # dataset=synth_tiny

# schema.content_sha256 of generate_synth(TINY) and of generate_synth(SynthDatasetConfig()), generator version 2.
# The same on every machine and library stack (see "Reproducibility" in synth's docstring): checked
# under numpy's AVX512, AVX2 and baseline code paths, three OpenBLAS kernels, and numpy 1.26 +
# scipy 1.11 as well as numpy 2.4 + scipy 1.17. A change here means the generated data changed:
# bump GENERATOR_VERSION (the cache key) and update these.
TINY_SHA256 = "de77b924294b4bfee1459e119510c9d6576f0c8f57d8c7a5d2dc7b9ed83bc2a2"
DEFAULT_SHA256 = "2fd63ba15f5e7e4936bbe69162759826d3fff12060d47fb5427e34c095b48fae"


@pytest.fixture(scope="module")
def tiny() -> schema.DatasetContent:
    return generate_synth(TINY)


@pytest.fixture(scope="module")
def default() -> schema.DatasetContent:
    return generate_synth(SynthDatasetConfig())


# --------------------------------------------------------------------------------------------
# helpers: independent, plain-numpy analyses


def _corr_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of (n, k) arrays."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-30)


def _lagged_design(spec: np.ndarray, n_lags: int = 9) -> np.ndarray:
    """(F, T) spectrogram -> (T, F * n_lags + 1) causal lagged design with a constant column."""
    f, t = spec.shape
    out = np.zeros((t, f * n_lags + 1))
    for lag in range(n_lags):
        out[lag:, lag * f : (lag + 1) * f] = spec[:, : t - lag].T
    out[:, -1] = 1.0
    return out


def _native_ridge_cc(content: schema.DatasetContent, targets: np.ndarray, scores_against: np.ndarray) -> np.ndarray:
    """Ridge from the lagged native spectrogram (9 lags) to ``targets`` (S, N, T): fit on train, pick
    the penalty on val, return per-neuron test correlations with ``scores_against`` (S, N, T)."""
    spec = np.stack([s.spectrogram for s in content.stimuli]).astype(np.float64)
    train, val, test = (content.splits[k] for k in ("train", "val", "test"))
    mu = spec[train].mean(axis=(0, 2))[:, None]
    sd = spec[train].std(axis=(0, 2))[:, None]
    design = [_lagged_design((x - mu) / sd) for x in spec]

    def stack(idx, arr):
        return np.concatenate([design[i] for i in idx]), np.concatenate([arr[i].T for i in idx])

    a, b = stack(train, targets)
    gram, cross = a.T @ a, a.T @ b
    av, bv = stack(val, scores_against)
    best = None
    for lam in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
        w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), cross)
        score = np.nanmean(_corr_cols(av @ w, bv))
        if best is None or score > best[0]:
            best = (score, w)
    at, bt = stack(test, scores_against)
    return _corr_cols(at @ best[1], bt)


def _band_noise(rng: np.random.Generator, fc: float, n: int, fs: float, rms: float = 0.05) -> np.ndarray:
    """Half-octave Gaussian band of noise around fc with 10 ms ramps, built independently of synth."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    f[0] = 1e-3
    spec *= np.exp(-0.5 * (np.log2(f / fc) / (0.5 / 2.355)) ** 2)
    x = np.fft.irfft(spec, n)
    ramp = int(0.01 * fs)
    env = np.ones(n)
    env[:ramp] = np.linspace(0, 1, ramp)
    env[-ramp:] = np.linspace(1, 0, ramp)
    x *= env
    return x * rms / np.sqrt(np.mean(x**2))


# --------------------------------------------------------------------------------------------
# params, cache


def test_default_params_are_ns1_geometry():
    p = SynthDatasetConfig().check()
    assert (p.n_bins, p.hop, p.n_audio, p.n_lags) == (999, 240, 239760, 13)
    assert (p.n_stimuli, p.n_neurons, p.n_repeats) == (20, 119, 20)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"n_train": 10}, "n_stimuli"),
        ({"n_neurons": 0}, "n_neurons"),
        ({"n_repeats": 0}, "n_repeats"),
        ({"n_test": 0, "n_train": 17}, "n_test"),
        ({"duration_s": 4.9975}, "duration_s"),
        ({"audio_fs": 44100.0}, "dt_ms"),
        ({"cf_max_hz": 30000.0}, "cf_max_hz"),
        ({"cf_min_hz": 20000.0}, "cf_min_hz"),
        ({"rate_min_hz": 100.0}, "rate_min_hz"),
        ({"seed": -1}, "seed"),
        ({"n_neurons": 2.5}, "n_neurons"),
        ({"level_rms": 0.0}, "level_rms"),
    ],
)
def test_check_names_the_bad_field(change, field):
    params = dataclasses.replace(SynthDatasetConfig(), **change)
    with pytest.raises(ConfigError, match=rf"dataset\.{field}") as err:
        params.check()
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        generate_synth(params)


def test_cache_key_is_short_stable_and_sensitive(tmp_path):
    key = cache_key(SynthDatasetConfig())
    assert key == cache_key(SynthDatasetConfig()) and len(key) == 12 and int(key, 16) >= 0
    for change in ({"seed": 1}, {"n_repeats": 19}, {"level_rms": 0.06}, {"max_lag_ms": 55.0}):
        assert cache_key(dataclasses.replace(SynthDatasetConfig(), **change)) != key
    assert synth_path(SynthDatasetConfig(), tmp_path) == tmp_path / f"synth-{key}.h5"


def test_ensure_synth_writes_once(tmp_path, monkeypatch):
    path = ensure_synth(TINY, tmp_path / "cache")
    assert path == synth_path(TINY, tmp_path / "cache") and path.exists()
    assert not list(path.parent.glob("*.tmp"))
    import strf_runner.data.synth as synth_module

    def fail(params):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(synth_module, "generate_synth", fail)
    assert ensure_synth(TINY, tmp_path / "cache") == path


# --------------------------------------------------------------------------------------------
# the tiny dataset


def test_tiny_generates_well_under_a_second():
    generate_synth(TINY)  # warm up (first-touch memory, FFT plans)
    start = time.process_time()
    generate_synth(TINY)
    assert time.process_time() - start < 1.0


def test_deterministic_from_the_seed(tiny):
    again = generate_synth(TINY)
    for a, b in zip(tiny.stimuli, again.stimuli):
        for view in ("responses", "spectrogram", "waveform"):
            np.testing.assert_array_equal(getattr(a, view), getattr(b, view))
    for key, value in tiny.truth.items():
        np.testing.assert_array_equal(value, again.truth[key])
    other = generate_synth(dataclasses.replace(TINY, seed=1))
    assert not np.array_equal(other.stimuli[0].waveform, tiny.stimuli[0].waveform)
    assert not np.array_equal(other.stimuli[0].responses, tiny.stimuli[0].responses)
    assert not np.array_equal(other.truth["centre_hz"], tiny.truth["centre_hz"])


def test_shapes_grid_lock_and_views(tiny):
    p = TINY
    assert tiny.name == "synth" and tiny.dt_ms == 5.0 and tiny.audio_fs == 48000.0 and tiny.hop == 240
    assert tiny.neuron_ids == [f"n{i:03d}" for i in range(p.n_neurons)]
    assert [s.name for s in tiny.stimuli] == [f"syn{i:02d}" for i in range(1, 7)]
    assert [s.type for s in tiny.stimuli] == [STIMULUS_TYPES[i % 5] for i in range(6)]
    assert tiny.splits == {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    np.testing.assert_array_equal(tiny.spectrogram_freqs, band_centres())
    for stim in tiny.stimuli:
        assert stim.responses.shape == (16, 6, 200) and stim.responses.dtype == np.float32
        assert stim.waveform.shape == (200 * 240,) and stim.waveform.dtype == np.float32
        assert stim.spectrogram.shape == (34, 200) and stim.spectrogram.dtype == np.float32
        np.testing.assert_array_equal(stim.spectrogram, native_spectrogram(stim.waveform, TINY))
        # the native cochleagram, rounded to the dB grid
        np.testing.assert_allclose(stim.spectrogram, native_cochleagram(stim.waveform, 48000.0), rtol=0,
                                   atol=SPECTROGRAM_STEP_DB / 2 + 1e-5)
        assert np.all(stim.responses >= 0) and np.all(stim.responses == np.round(stim.responses))
    assert tiny.truth["rates"].shape == (6, 16, 200)
    assert tiny.truth["temporal_kernels"].shape == (16, 2, 13)
    for key in ("centre_hz", "bandwidth_oct", "inhib_centre_hz", "adapt_tau_ms", "adapt_alpha"):
        assert tiny.truth[key].shape == (16,) and tiny.truth[key].dtype == np.float32
    no_inhib = np.isnan(tiny.truth["inhib_centre_hz"])
    assert np.all(tiny.truth["temporal_kernels"][no_inhib, 1] == 0)
    assert set(tiny.neuron_meta) == {"mean_rate_hz", "centre_hz"}
    assert tiny.attrs["native_source"] == "recomputed" and tiny.attrs["generator_version"] == GENERATOR_VERSION
    assert tiny.attrs["synth_seed"] == 0 and tiny.attrs["synth_n_neurons"] == 16
    schema.validate_content(tiny)


def test_roundtrips_through_hdf5(tiny, tmp_path):
    path = schema.write_dataset(tiny, tmp_path / "synth.h5")
    back = schema.read_dataset(path)
    assert back.name == tiny.name and back.neuron_ids == tiny.neuron_ids and back.splits == tiny.splits
    assert back.dt_ms == tiny.dt_ms and back.audio_fs == tiny.audio_fs
    np.testing.assert_array_equal(back.spectrogram_freqs, tiny.spectrogram_freqs)
    for a, b in zip(tiny.stimuli, back.stimuli):
        assert (a.name, a.type) == (b.name, b.type)
        for view in ("responses", "spectrogram", "waveform"):
            np.testing.assert_array_equal(getattr(a, view), getattr(b, view))
    assert set(back.truth) == set(tiny.truth)
    for key, value in tiny.truth.items():
        np.testing.assert_array_equal(back.truth[key], value)  # NaN == NaN here
    for key, value in tiny.neuron_meta.items():
        np.testing.assert_array_equal(back.neuron_meta[key], value)
    assert back.attrs == tiny.attrs
    # the stored truth is enough to recompute the rates exactly
    rebuilt = neuron_rates(np.stack([s.waveform for s in back.stimuli]), SynthNeurons.from_truth(back.truth), TINY)
    np.testing.assert_array_equal(rebuilt, tiny.truth["rates"])
    # the content digest does not depend on the HDF5 file: the read-back content hashes the same
    assert schema.content_sha256(back) == schema.content_sha256(tiny) == TINY_SHA256


def test_neuron_rates_api_errors(tiny):
    neurons = SynthNeurons.from_truth(tiny.truth)
    one = neuron_rates(tiny.stimuli[0].waveform, neurons, TINY)
    assert one.shape == (1, 16, 200) and one.dtype == np.float32
    with pytest.raises(ShapeError, match="241"):
        neuron_rates(np.zeros(241), neurons, TINY)
    with pytest.raises(ConfigError, match="calibrated"):
        neuron_rates(tiny.stimuli[0].waveform, draw_neurons(TINY), TINY)


def test_tiny_digest_is_pinned(tiny):
    """The generated content, byte for byte, is what every machine and library stack produces."""
    assert schema.content_sha256(tiny) == TINY_SHA256


def _on_grid(x: np.ndarray, step: float) -> bool:
    x = np.asarray(x, dtype=np.float64)
    return bool(np.all(np.rint(x / step) * step == x))


def test_stored_values_lie_on_their_grids(tiny):
    """What makes the digest platform-stable: every stored float is rounded to a fixed grid."""
    for stim in tiny.stimuli:
        assert _on_grid(stim.waveform, WAVEFORM_STEP)
        assert _on_grid(stim.spectrogram, SPECTROGRAM_STEP_DB)
    assert _on_grid(tiny.truth["rates"], RATE_STEP)
    for key in ("centre_hz", "bandwidth_oct", "adapt_tau_ms", "threshold", "drive_std", "rate_gain"):
        mant, _ = np.frexp(tiny.truth[key].astype(np.float64))
        assert _on_grid(mant, 2.0**-20), key  # 20 significant bits


def _simd_beyond_baseline() -> list[str]:
    """numpy's SIMD targets beyond its baseline that this CPU has (and numpy uses), e.g. AVX2, AVX512."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def test_tiny_digest_is_the_same_without_simd_extensions():
    """Generate TINY in a subprocess with numpy's SIMD code paths beyond its baseline disabled
    (NPY_DISABLE_CPU_FEATURES): float64 exp/log/power then take other code paths, whose results differ
    in the last bit; the quantised dataset must not."""
    enabled = _simd_beyond_baseline()
    if not enabled:
        pytest.skip("this CPU has no SIMD extensions beyond numpy's baseline: nothing to disable")
    script = textwrap.dedent(
        f"""
        import json
        from strf_runner.data import schema
        from strf_runner.data.synth import SynthDatasetConfig, generate_synth
        try:
            from numpy._core._multiarray_umath import __cpu_features__
        except ImportError:
            from numpy.core._multiarray_umath import __cpu_features__
        content = generate_synth(SynthDatasetConfig(**{dataclasses.asdict(TINY)!r}))
        still = [f for f in {enabled!r} if __cpu_features__.get(f)]
        print(json.dumps({{"still_enabled": still, "sha256": schema.content_sha256(content)}}))
        """
    )
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(enabled)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and ("NPY_DISABLE_CPU_FEATURES" in proc.stderr or "CPU feature" in proc.stderr):
        pytest.skip(f"numpy refused NPY_DISABLE_CPU_FEATURES={' '.join(enabled)!r}: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["still_enabled"]:
        pytest.skip(f"numpy ignored NPY_DISABLE_CPU_FEATURES for {result['still_enabled']}")
    assert result["sha256"] == TINY_SHA256


def test_stimuli_do_not_depend_on_neuron_settings():
    a, _ = make_stimuli(TINY)
    b, _ = make_stimuli(dataclasses.replace(TINY, n_neurons=3, n_repeats=2))
    np.testing.assert_array_equal(a, b)


def test_poisson_counts_statistics():
    rng = np.random.default_rng(7)
    rates = np.full((2, 3, 4000), 0.3, dtype=np.float32)
    rates[1] = 2.5
    counts = _poisson_counts(rng, rates, 40)
    assert counts.shape == (2, 3, 40, 4000) and counts.dtype == np.float32
    for s, lam in ((0, 0.3), (1, 2.5)):
        c = counts[s].ravel()
        se = np.sqrt(lam / c.size)
        assert abs(c.mean() - lam) < 5 * se
        assert abs(c.var() / lam - 1) < 0.03
        assert abs(np.mean(c == 0) - np.exp(-lam)) < 0.01
    # repeats are independent: the correlation between two repeats is ~0
    r = np.corrcoef(counts[1, :, 0].ravel(), counts[1, :, 1].ravel())[0, 1]
    assert abs(r) < 0.05


# --------------------------------------------------------------------------------------------
# the default dataset (one generation shared by these tests)


def test_default_size_digest_is_pinned(default):
    assert schema.content_sha256(default) == DEFAULT_SHA256


def test_default_size_types_levels_and_tuning(default):
    types = [s.type for s in default.stimuli]
    assert set(types) == set(STIMULUS_TYPES)
    for split in ("train", "val", "test"):
        assert len({types[i] for i in default.splits[split]}) >= 3
    for stim in default.stimuli:
        x = stim.waveform.astype(np.float64)
        assert x.size == 999 * 240
        # RMS level_rms = 0.07 unless the 0.99 peak cap binds (clicks: peaky, RMS down to ~0.015)
        assert 0.01 < np.sqrt(np.mean(x**2)) <= 0.0701 and np.max(np.abs(x)) <= 0.99 + 1e-6
        assert np.all(x[-240:] ** 2 < 1e-4)  # ends in (near) silence: only the faint background
    truth = default.truth
    cf = truth["centre_hz"]
    assert 0.15 < np.mean(cf < 500) < 0.4
    assert cf.min() >= 150 and cf.max() <= 16000
    bw = truth["bandwidth_oct"]
    assert bw.min() < 0.15 and bw.max() > 1.2
    rate = default.neuron_meta["mean_rate_hz"]
    assert rate.min() < 4 and rate.max() > 40 and np.median(rate) > 5
    np.testing.assert_allclose(rate, truth["target_rate_hz"], rtol=1e-3)
    assert 0.2 < np.mean(np.isfinite(truth["inhib_centre_hz"])) < 0.8
    tau, alpha = truth["adapt_tau_ms"], truth["adapt_alpha"]
    assert tau.min() >= 20 and tau.max() <= 300 and alpha.min() >= 0.5 and alpha.max() <= 0.95


def test_default_size_trial_means_converge_to_rates(default):
    rates = default.truth["rates"].astype(np.float64)  # (S, N, T)
    r = default.stimuli[0].responses.shape[1]
    totals = np.zeros(rates.shape[1])
    ratios = []
    for stim, lam in zip(default.stimuli, rates):
        totals += stim.responses.sum(axis=(1, 2), dtype=np.float64)
        mean = stim.responses.mean(axis=1, dtype=np.float64)  # (N, T) trial mean
        ok = lam > 0.01
        ratios.append((mean[ok] - lam[ok]) ** 2 * r / lam[ok])
    # per neuron: total spikes vs expected total, in Poisson standard errors
    expected = r * rates.sum(axis=(0, 2))
    z = (totals - expected) / np.sqrt(expected)
    assert np.all(np.abs(z) < 5), z
    # per bin: squared error of the trial mean in units of its Poisson variance averages to 1
    assert abs(np.concatenate(ratios).mean() - 1) < 0.05


def test_default_size_neurons_follow_their_band(default):
    """Probe sounds built here: noise in a neuron's band drives it much more than noise 3 octaves away.

    Compared by the peak rate within each event (+60 ms): most neurons adapt and some have a
    sideband that a half-octave probe also covers, so sustained responses can sit below the
    spontaneous rate while the onset response is strong.
    """
    neurons = SynthNeurons.from_truth(default.truth)
    params = SynthDatasetConfig()
    fs, hop = 48000.0, 240
    cf = neurons.centre_hz
    chosen = np.argsort(cf)[np.linspace(0, len(cf) - 1, 10).astype(int)]
    rng = np.random.default_rng(11)
    seg = int(0.4 * fs)
    sil = np.zeros(int(0.2 * fs))
    probes = []
    for k in chosen:
        far = cf[k] * 8 if cf[k] * 8 <= 16000 else cf[k] / 8
        own_noise, far_noise = _band_noise(rng, cf[k], seg, fs), _band_noise(rng, far, seg, fs)
        probes.append(np.concatenate([sil, own_noise, sil, sil, far_noise, sil]))
    probes = np.stack(probes)
    probes = probes[:, : probes.shape[1] // hop * hop]
    rates = neuron_rates(probes, neurons, params)  # (10, N, T)
    own = slice(40, 40 + 80 + 12)  # the own-band event (bins 40..119) and 60 ms after
    away = slice(200, 200 + 80 + 12)
    low_k = None
    for i, k in enumerate(chosen):
        r_own, r_away = rates[i, k, own].max(), rates[i, k, away].max()
        assert r_own > 2 * r_away, (k, cf[k], r_own, r_away)
        if cf[k] < 400:
            low_k = i
    assert low_k is not None  # a neuron tuned below 400 Hz was among those probed
    # and a low-tuned neuron responds more to a low band than to a high one, in one and the same sound
    k = chosen[0]
    sound = np.concatenate([sil, _band_noise(rng, 250.0, seg, fs), sil, sil, _band_noise(rng, 6000.0, seg, fs), sil])
    sound = sound[: sound.size // hop * hop]
    r = neuron_rates(sound, neurons, params)[0, k]
    assert cf[k] < 300 and r[own].max() > 2 * r[away].max()


def test_default_size_low_neurons_are_hidden_from_the_native_spectrogram(default):
    rates = default.truth["rates"].astype(np.float64)
    cf = default.truth["centre_hz"]
    low, high = cf < 500, cf > 1000
    # best |correlation| of each neuron's rate with any native band at lags 0..8 bins
    spec = np.stack([s.spectrogram for s in default.stimuli]).astype(np.float64)  # (S, F, T)
    t = rates.shape[2]
    zr = np.concatenate(list(rates), axis=1)  # (N, S*T)
    zr = (zr - zr.mean(1, keepdims=True)) / zr.std(1, keepdims=True)
    best = np.zeros(zr.shape[0])
    for lag in range(9):
        lagged = np.concatenate(list(np.pad(spec, ((0, 0), (0, 0), (lag, 0)))[:, :, :t]), axis=1)  # (F, S*T)
        zs = (lagged - lagged.mean(1, keepdims=True)) / (lagged.std(1, keepdims=True) + 1e-12)
        best = np.maximum(best, np.abs(zr @ zs.T / zr.shape[1]).max(axis=1))
    assert np.median(best[low]) < np.median(best[high])
    # stronger: a ridge from the lagged native spectrogram to the noise-free rates predicts the
    # low-tuned neurons much worse on the test stimuli
    cc = _native_ridge_cc(default, rates, rates)
    assert np.mean(cc[low]) < np.mean(cc[high]) - 0.15
    assert np.mean(cc[low]) < 0.55 < np.mean(cc[high])


def test_default_size_is_a_sensible_fitting_problem(default):
    """Lagged-native ridge to trial means: clearly above 0, clearly below the truth's correlation."""
    trial_mean = np.stack([s.responses.mean(axis=1) for s in default.stimuli]).astype(np.float64)
    cc_ridge = _native_ridge_cc(default, trial_mean, trial_mean)
    test = default.splits["test"]
    cc_truth = _corr_cols(
        np.concatenate([default.truth["rates"][i].T for i in test]).astype(np.float64),
        np.concatenate([trial_mean[i].T for i in test]),
    )
    assert 0.3 < np.nanmean(cc_ridge) < np.nanmean(cc_truth) - 0.15
    assert np.nanmean(cc_truth) > 0.7
    assert np.mean(cc_ridge > 0.1) > 0.8
