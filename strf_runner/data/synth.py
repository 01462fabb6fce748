"""The embedded default dataset ``synth``: synthetic stimuli and ground-truth neurons of NS1 geometry.

Deterministic from a seed, generated on first use in a few seconds (in a child process, so a run
that generates it trains exactly as one that finds it cached), cached as an HDF5 file in the
project's format (``schema``; ``ensure_synth``). It is built so that a learned waveform front-end can,
in principle, beat the native 34-band cochleagram:

* about a quarter of the neurons are tuned below 500 Hz, where the native cochleagram has no band;
* tuning bandwidths range from 0.1 to 1.5 octaves, unlike any fixed 1/6-octave or mel grid;
* every neuron adapts (divisive, PCEN-like gain control) and compresses its band envelope, and
  envelopes are taken at full audio resolution, not through 10 ms frames.

Stimuli (``make_stimuli``): S waveforms of ``T * hop`` samples, float32 on a 16-bit grid, scaled to
RMS ``level_rms`` unless the 0.99 peak cap binds (click trains and some mixtures end up at RMS
0.015-0.06), each a sequence of events separated by 30-400 ms silences, over a faint pink background
(``BACKGROUND_DB`` re the stimulus RMS). Stimulus s has type ``STIMULUS_TYPES[s % 5]``:

* ``vocalisation``: harmonic syllables of 80-350 ms, f0 100-600 Hz with glides and vibrato, three
  formants, spectral tilt, attack/release ramps;
* ``fm_sweep``: log-FM sweeps up and down, 0.5-4 octaves in 50-500 ms, 1-3 harmonics;
* ``am_noise``: band-limited noise (centre 150-8000 Hz, 0.3-2 oct) with 2-40 Hz sinusoidal AM;
* ``click_train``: 0.5-2 ms noise-burst clicks at 5-150 /s (rate gliding), bandpassed 0.8-10 kHz;
* ``mixture``: 2-3 events of the other four types overlapped.

Neurons (``draw_neurons``, ``neuron_rates``), each with two inputs: its excitatory band (input 0) and,
in about half of them, an inhibitory sideband (input 1) on either side, whose half-maximum point lies
0-0.75 octave beyond the excitatory band's. Per neuron and input:

1. Band envelope: analytic-signal magnitude of the waveform through a Gaussian-in-log-frequency
   filter (FWHM ``bandwidth_oct``), computed on one rfft per stimulus: the band's bins (centre
   +- 3 sigma) are shifted to baseband and inverse-transformed at a reduced rate (>= 4 samples per
   bin), then averaged within each 5 ms bin. The zero-phase filter is made causal by a delay of 3
   temporal standard deviations (<= ``MAX_BAND_DELAY_S``). Bandwidths are floored at a
   ``MIN_FWHM_HZ`` = 40 Hz FWHM (this only affects centres below about 550 Hz).
2. Normalised by ``env_ref`` (the input's mean envelope over the generated stimuli), then adaptive
   gain ``a = e / (ADAPT_EPS + lowpass_tau(e)) ** alpha`` (first-order causal low-pass at the bin
   rate, zero initial state), then a PCEN-like offset compressive root
   ``(a + COMPRESS_DELTA) ** compress_root - COMPRESS_DELTA ** compress_root``.
3. Causal temporal filter over lags 0..``max_lag_ms`` (``temporal_kernels``): for the excitatory
   band a biphasic kernel, excitation peaking at 5-20 ms then a delayed suppression (30-90 % of it);
   for the sideband a negative lobe 2-10 ms later with at most a weak rebound. Summed: the drive.
4. Output: ``rate = rate_gain * softplus((drive - drive_mean) / drive_std - threshold) ** out_power``,
   expected spike counts per bin, calibrated so each neuron's mean rate over the generated stimuli
   is ``target_rate_hz`` (log-uniform 2-60 spikes/s).

Spikes: independent Poisson counts per repeat, (N, R, T) float32 per stimulus (see
``_poisson_counts`` for the exact, faster sampling scheme).

Every neuron parameter, calibration constants included, is rounded before use (to ``PARAM_BITS`` = 20
significant bits, kernel weights to ``KERNEL_STEP``; both exact in float32) and stored in
``DatasetContent.truth``, so ``neuron_rates(waveforms, SynthNeurons.from_truth(truth), params)``
recomputes the stored ``truth['rates']`` exactly and can be called on any probe sound.

Reproducibility: the same params give the same data, byte for byte, on other machines and library
versions, checked by ``schema.content_sha256`` (pinned in ``tests/data/test_synth.py``). Generation runs
in float64 with numpy's elementwise functions and scipy's FFTs; sums run in a fixed order (no einsum,
no BLAS except the native cochleagram's filterbank product, no torch). Transcendental functions, FFTs,
BLAS and reductions still differ in their last bits between CPUs (numpy's SIMD code paths: AVX512,
AVX2, baseline) and library versions, so every quantity is rounded to a power-of-two grid before it is
stored or decides anything discrete (a random draw and how many numbers it consumes, an index, a
comparison): waveforms to ``WAVEFORM_STEP`` = 2**-15 (16-bit PCM), the native spectrogram to
``SPECTROGRAM_STEP_DB`` = 2**-13 dB, rates to ``RATE_STEP`` = 2**-16 expected counts per bin before the
Poisson draws, frequency trajectories (f0, sweeps, click rates) to ``HZ_STEP`` = 2**-10 Hz at control
points every ``_CTRL`` = 64 samples (1.3 ms; linear in between, so the phase is an exact sum), band
edges and delays to 2**-20 bins before they become integers. The grids are 10**7 to 10**9 times
coarser than those last-bit differences, so a value rounds differently only if it lies that close to
a rounding boundary. Measured for the default params: identical digests under numpy's AVX512, AVX2 and
baseline code paths, three OpenBLAS kernels, and numpy 1.26 + scipy 1.11 against numpy 2.4 + scipy
1.17 (x86-64 Linux). From the sizes of the raw differences seen there, the expected number of values
that round differently is about 2e-4 per dataset (mostly rates and spectrogram values): a flip, and
with it a different dataset, is possible but rare. A math library that differs more (another OS or
CPU architecture) raises that chance, and the digest test then fails rather than the data changing
silently. The sampling relies
on numpy's ``Generator`` streams (normal, uniform, integers, poisson) staying the same, as they are
in numpy 1.26 and 2.4; numpy does not promise that forever.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import scipy.fft
import scipy.signal

from strf_runner.config import DatasetConfig
from strf_runner.data import schema
from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.errors import ConfigError, DatasetError, ShapeError, StrfRunnerError

__all__ = [
    "GENERATOR_VERSION",
    "STIMULUS_TYPES",
    "SynthNeurons",
    "SynthDatasetConfig",
    "cache_key",
    "draw_neurons",
    "ensure_synth",
    "generate_synth",
    "make_stimuli",
    "native_spectrogram",
    "neuron_rates",
    "synth_path",
    "write_synth",
]

GENERATOR_VERSION = 2  # bump whenever the generated data change for the same params (2: float64, quantised)
STIMULUS_TYPES = ("vocalisation", "fm_sweep", "am_noise", "click_train", "mixture")
N_INPUTS = 2  # input 0: excitatory band; input 1: inhibitory sideband (zero kernel if absent)
BACKGROUND_DB = -45.0  # pink background noise re the stimulus RMS
ADAPT_EPS = 0.05  # adaptive-gain offset, in units of the input's mean envelope
COMPRESS_DELTA = 0.1  # offset of the compressive root (a + delta) ** r - delta ** r, as in PCEN
MIN_FWHM_HZ = 40.0  # tuning bandwidth floor in Hz
MAX_BAND_DELAY_S = 0.030  # cap on the causal delay of a band filter
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_PAD_S = 0.3  # zero padding after a stimulus for the band filters (no circular wrap)
_SEED_STIMULI, _SEED_NEURONS, _SEED_SPIKES = 1, 2, 3

# Quantisation grids (see "Reproducibility" in the module docstring). Every grid is a power of two,
# so rounding to it is exact arithmetic, and every rounded value is exact in its stored dtype.
WAVEFORM_STEP = 2.0**-15  # waveform samples: a 16-bit PCM grid (|x| <= 0.99)
# native spectrogram, dB: as coarse as it can be while the cochleagram recomputed from a sound file
# (strf-predict) still matches the stored view to 1e-4 dB (half a step: 6.1e-5 dB)
SPECTROGRAM_STEP_DB = 2.0**-13
RATE_STEP = 2.0**-16  # expected spike counts per bin (truth rates, Poisson means); 0.003 spikes/s
HZ_STEP = 2.0**-10  # control points of frequency trajectories (f0, sweeps, click rates), Hz
KERNEL_STEP = 2.0**-20  # temporal kernel weights
PARAM_BITS = 20  # significant bits of every other neuron parameter and calibration constant
_CTRL = 64  # samples between the control points of a frequency trajectory
_INDEX_STEP = 2.0**-20  # a real number is rounded to this grid before it is turned into an index


@dataclass
class SynthDatasetConfig(DatasetConfig):
    """``dataset=synth``: the embedded synthetic dataset, generated from ``seed`` on first use and cached
    under ``root``. Every field but the DatasetConfig ones (GENERATION_KEYS) defines the data; ``cache_key``
    hashes all of them.

    Geometry defaults are NS1's: 20 stimuli of 999 bins of 5 ms, 119 neurons, 20 repeats, 48 kHz,
    split 14 / 3 / 3. Generation knobs: ``level_rms`` (stimulus RMS), the neurons' centre-frequency
    range ``cf_min_hz``..``cf_max_hz`` (log-uniform), mean-rate range ``rate_min_hz``..``rate_max_hz``
    (log-uniform, spikes/s) and the longest lag of the temporal kernels ``max_lag_ms``.
    """

    name: str = "synth"
    source: str = "synth"
    seed: int = 0
    n_stimuli: int = 20
    duration_s: float = 4.995
    n_neurons: int = 119
    n_repeats: int = 20
    audio_fs: float = 48000.0
    dt_ms: float = 5.0
    n_train: int = 14
    n_val: int = 3
    n_test: int = 3
    level_rms: float = 0.07
    cf_min_hz: float = 150.0
    cf_max_hz: float = 16000.0
    rate_min_hz: float = 2.0
    rate_max_hz: float = 60.0
    max_lag_ms: float = 60.0

    cached: ClassVar[bool] = True

    @property
    def hop(self) -> int:
        """Audio samples per time bin."""
        return int(round(self.audio_fs * self.dt_ms / 1000.0))

    @property
    def n_bins(self) -> int:
        """T, time bins per stimulus."""
        return int(round(self.duration_s * 1000.0 / self.dt_ms))

    @property
    def n_audio(self) -> int:
        """T_audio = T * hop, samples per stimulus."""
        return self.n_bins * self.hop

    @property
    def n_lags(self) -> int:
        """L, taps of the temporal kernels (lags 0..max_lag_ms)."""
        return int(round(self.max_lag_ms / self.dt_ms)) + 1

    def check(self) -> "SynthDatasetConfig":
        """Validate; raise ConfigError with a one-line message naming the field. Returns self."""

        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"dataset.{name}={getattr(self, name)!r}: {why}")

        for name in ("seed", "n_stimuli", "n_neurons", "n_repeats", "n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise bad(name, "must be an integer")
            if value < (0 if name == "seed" else 1):
                raise bad(name, "must be >= 0" if name == "seed" else "must be >= 1")
        for name in ("duration_s", "audio_fs", "dt_ms", "level_rms", "cf_min_hz", "cf_max_hz",
                     "rate_min_hz", "rate_max_hz", "max_lag_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
                raise bad(name, "must be a positive number")
        if self.n_train + self.n_val + self.n_test != self.n_stimuli:
            raise bad("n_stimuli", f"must equal n_train + n_val + n_test = "
                                   f"{self.n_train} + {self.n_val} + {self.n_test}")
        if self.audio_fs < 8000:
            raise bad("audio_fs", "must be >= 8000 Hz")
        hop = self.audio_fs * self.dt_ms / 1000.0
        if abs(hop - round(hop)) > 1e-9:
            raise bad("dt_ms", f"gives {hop} samples per bin at audio_fs={self.audio_fs}; the hop must be an integer")
        bins = self.duration_s * 1000.0 / self.dt_ms
        if abs(bins - round(bins)) > 1e-6 or round(bins) < 1:
            raise bad("duration_s", f"is {bins:g} bins of dt_ms={self.dt_ms}; must be a whole number >= 1")
        lags = self.max_lag_ms / self.dt_ms
        if abs(lags - round(lags)) > 1e-6:
            raise bad("max_lag_ms", f"must be a whole number of dt_ms={self.dt_ms} bins")
        if not 0 < self.level_rms <= 0.3:
            raise bad("level_rms", "must be in (0, 0.3]")
        if self.cf_min_hz >= self.cf_max_hz:
            raise bad("cf_min_hz", f"must be below cf_max_hz={self.cf_max_hz}")
        if self.cf_max_hz > 0.45 * self.audio_fs:
            raise bad("cf_max_hz", f"must be <= 0.45 * audio_fs = {0.45 * self.audio_fs:g} Hz")
        if self.rate_min_hz > self.rate_max_hz:
            raise bad("rate_min_hz", f"must be <= rate_max_hz={self.rate_max_hz}")
        if self.rate_max_hz * self.dt_ms / 1000.0 > 5.0:
            raise bad("rate_max_hz", "gives more than 5 expected spikes per bin")
        return self


GENERATION_KEYS = tuple(f.name for f in fields(SynthDatasetConfig) if f.name not in {g.name for g in fields(DatasetConfig)})


# ---------------------------------------------------------------------------------------------
# quantisation


def _grid(x, step: float):
    """``x`` rounded to the nearest multiple of ``step`` (a power of two; ties to even), float64.

    Exact arithmetic; -0.0 becomes 0.0 and NaN stays NaN. Scalars give a float.
    """
    q = np.rint(np.asarray(x, dtype=np.float64) / step) * step + 0.0
    return float(q) if q.ndim == 0 else q


def _sig(x, bits: int = PARAM_BITS):
    """``x`` rounded to ``bits`` significant bits (relative grid; exact, via frexp/ldexp), float64.

    With bits <= 24 the result is exact in float32. NaN stays NaN; scalars give a float.
    """
    mant, expo = np.frexp(np.asarray(x, dtype=np.float64))
    q = np.ldexp(np.rint(np.ldexp(mant, bits)), expo - bits) + 0.0
    return float(q) if q.ndim == 0 else q


# ---------------------------------------------------------------------------------------------
# caching


def generation_params(params: SynthDatasetConfig) -> dict[str, Any]:
    """The fields that define the data (GENERATION_KEYS), by name."""
    return {key: getattr(params, key) for key in GENERATION_KEYS}


def cache_key(params: SynthDatasetConfig) -> str:
    """A short stable hash (12 hex digits) of all params and GENERATOR_VERSION."""
    blob = json.dumps({"generator_version": GENERATOR_VERSION, **generation_params(params)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def synth_path(params: SynthDatasetConfig, root: str | Path) -> Path:
    """Where the dataset for ``params`` is cached under ``root``: ``root / f"synth-{cache_key}.h5"``."""
    return Path(root) / f"synth-{cache_key(params)}.h5"


def ensure_synth(params: SynthDatasetConfig, root: str | Path) -> Path:
    """Generate and write (atomically) the dataset for ``params`` unless cached; return its path.

    The generation runs in a child interpreter (``write_synth`` there), so the calling process, which
    goes on to train on the file, is left as it would be had it found the file cached: nothing the
    generator loads or sets up (BLAS and FFT thread pools and their settings, the floating-point
    environment, the heap it fragments) stays behind to change a same-seed run's last bits.
    """
    path = synth_path(params, root)
    if path.exists():
        return path
    params.check()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
    except OSError as err:
        raise _unwritable(path, err) from err
    _write_in_child(params, path)
    return path


def write_synth(params: SynthDatasetConfig, path: Path) -> None:
    """Generate the dataset for ``params`` and write it (atomically) to ``path``, in this process."""
    try:
        schema.write_dataset(generate_synth(params), path)
    except OSError as err:
        raise _unwritable(path, err) from err


def _unwritable(path: Path, err: OSError) -> DatasetError:
    return DatasetError(
        f"cannot write the synthetic dataset file {path} ({err.strerror or err}); "
        "set STRF_RUNNER_DATA (or dataset.root) to a writable folder"
    )


_CHILD_ERROR = 3  # the child's exit status for a StrfRunnerError, whose one-line message is its stderr
# the child imports from the parent's sys.path (a notebook's additions included), not from its working folder
_CHILD_CODE = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
               "from strf_runner.data.synth import _child_main; sys.exit(_child_main(sys.argv[2:]))")


def _write_in_child(params: SynthDatasetConfig, path: Path) -> None:
    """``write_synth(params, path)`` in a fresh interpreter; its errors come back as one-line DatasetErrors."""
    argv = [json.dumps(sys.path), json.dumps(generation_params(params)), str(path)]
    proc = subprocess.run([sys.executable, "-c", _CHILD_CODE, *argv], capture_output=True, text=True)
    if proc.returncode == _CHILD_ERROR:
        raise DatasetError(proc.stderr.strip())
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["no error message"]
        raise DatasetError(
            f"generating the synthetic dataset {path} failed: its process ({sys.executable}) "
            f"exited with status {proc.returncode}: {last[0]}"
        ) from ChildProcessError(proc.stderr)


def _child_main(argv: list[str]) -> int:
    """The child of ``_write_in_child``: argv = [params as JSON, path]. Returns the exit status."""
    params_json, path = argv
    try:
        write_synth(SynthDatasetConfig(**json.loads(params_json)), Path(path))
    except StrfRunnerError as err:
        print(err, file=sys.stderr)
        return _CHILD_ERROR
    return 0


# ---------------------------------------------------------------------------------------------
# the dataset


def generate_synth(params: SynthDatasetConfig) -> schema.DatasetContent:
    """The whole synthetic dataset in memory, both views (waveform and native spectrogram).

    Stimuli: (T_audio,) float32 waveforms with responses (N, R, T) float32 Poisson counts and the
    native spectrogram ``native_spectrogram(waveform, params)``.
    truth: ``rates`` (S, N, T) expected counts per bin plus every SynthNeurons field (float32).
    ``schema.content_sha256`` of the result is the same on every machine (module docstring).
    """
    params.check()
    waveforms, types = make_stimuli(params)
    neurons = draw_neurons(params)
    envelopes = _input_envelopes(waveforms, neurons, params)
    neurons, drive = _calibrate(envelopes, neurons, params)
    rates = _rates_from_drive(drive, neurons)  # (S, N, T) float32 on RATE_STEP, as neuron_rates computes them
    counts = _poisson_counts(np.random.default_rng([params.seed, _SEED_SPIKES]), rates, params.n_repeats)
    stimuli = [
        schema.Stimulus(
            name=f"syn{s + 1:02d}",
            type=types[s],
            responses=counts[s],
            spectrogram=native_spectrogram(waveforms[s], params),
            waveform=waveforms[s],
        )
        for s in range(params.n_stimuli)
    ]
    n_tr, n_va = params.n_train, params.n_val
    # rates lie on RATE_STEP, so this float64 sum is exact in any order: the mean is platform-stable
    mean_rate_hz = (rates.mean(axis=(0, 2), dtype=np.float64) * 1000.0 / params.dt_ms).astype(np.float32)
    truth = {"rates": rates, **neurons.to_truth()}
    attrs: dict[str, object] = {
        "description": f"synthetic NS1-like dataset: {params.n_stimuli} natural-like sounds, "
                       f"{params.n_neurons} model A1 neurons (seed {params.seed})",
        "native_source": "recomputed",
        "generator": "strf_runner.data.synth",
        "generator_version": GENERATOR_VERSION,
        "cache_key": cache_key(params),
    }
    attrs.update({f"synth_{k}": v for k, v in generation_params(params).items()})
    return schema.DatasetContent(
        name="synth",
        dt_ms=float(params.dt_ms),
        neuron_ids=[f"n{i:03d}" for i in range(params.n_neurons)],
        stimuli=stimuli,
        splits={
            "train": list(range(n_tr)),
            "val": list(range(n_tr, n_tr + n_va)),
            "test": list(range(n_tr + n_va, params.n_stimuli)),
        },
        audio_fs=float(params.audio_fs),
        spectrogram_freqs=band_centres(),
        neuron_meta={"mean_rate_hz": mean_rate_hz, "centre_hz": neurons.centre_hz.copy()},
        attrs=attrs,
        truth=truth,
    )


def native_spectrogram(waveform: np.ndarray, params: SynthDatasetConfig) -> np.ndarray:
    """The stored native view of a synth stimulus: ``native_cochleagram`` with its dB values rounded
    to ``SPECTROGRAM_STEP_DB`` (in float64, before the float32 cast), (34, T) float32."""
    return native_cochleagram(waveform, params.audio_fs, params.dt_ms, quantum_db=SPECTROGRAM_STEP_DB)


def _poisson_counts(rng: np.random.Generator, rates: np.ndarray, n_repeats: int) -> np.ndarray:
    """Independent Poisson counts per repeat: rates (S, N, T) -> counts (S, N, R, T) float32.

    Drawn stimulus by stimulus from ``rng`` in an exactly equivalent, faster way: for each (n, t) the
    total over the R repeats is Poisson(R * rate), and each of those spikes falls in a repeat chosen
    uniformly at random (the multinomial split of a Poisson total gives independent Poisson counts).
    This needs one Poisson draw per (n, t) instead of per (n, r, t). numpy's Poisson sampler uses a
    number of random numbers that depends on the mean, so the counts are platform-stable only if the
    rates are (``generate_synth`` passes rates rounded to RATE_STEP).
    """
    s_count, n, t = rates.shape
    counts = np.empty((s_count, n, n_repeats, t), dtype=np.float32)
    for s in range(s_count):
        totals = rng.poisson(rates[s].astype(np.float64) * n_repeats).ravel()  # (N * T,)
        cell = np.repeat(np.arange(n * t), totals)  # the flat (n, t) of every spike
        repeat = rng.integers(0, n_repeats, size=cell.size)
        flat = (cell // t) * (n_repeats * t) + repeat * t + cell % t
        counts[s] = np.bincount(flat, minlength=n * n_repeats * t).reshape(n, n_repeats, t)
    return counts


# ---------------------------------------------------------------------------------------------
# stimuli


def make_stimuli(params: SynthDatasetConfig) -> tuple[np.ndarray, list[str]]:
    """The stimulus waveforms (S, T_audio) float32 and their types (S,), from the seed.

    Stimulus s uses its own generator (seed, 1, s), so it does not depend on the neuron or spike
    settings.
    """
    params.check()
    fs = float(params.audio_fs)
    waves = np.empty((params.n_stimuli, params.n_audio), dtype=np.float32)
    types = [STIMULUS_TYPES[s % len(STIMULUS_TYPES)] for s in range(params.n_stimuli)]
    for s, kind in enumerate(types):
        rng = np.random.default_rng([params.seed, _SEED_STIMULI, s])
        waves[s] = _stimulus(rng, kind, params.n_audio, fs, params.level_rms)
    return waves, types


def _stimulus(rng: np.random.Generator, kind: str, n: int, fs: float, level_rms: float) -> np.ndarray:
    """One stimulus: events of ``kind`` separated by silences, over a faint pink background."""
    make = _EVENT_MAKERS[kind]
    x = np.zeros(n)
    tail = int(0.03 * fs)  # keep the end silent
    pos = int(rng.uniform(0.02, 0.2) * fs)
    placed, misses = 0, 0
    while misses < 3:
        event = make(rng, fs) * 10 ** (rng.uniform(-12.0, 0.0) / 20)
        room = n - tail - pos
        if event.size > room:
            misses += 1
            if placed == 0 and misses == 3 and room > int(0.02 * fs):  # too short for any whole event
                event = event[:room] * _ramps(room, fs, 0.0, 0.01)
            else:
                continue
        x[pos : pos + event.size] += event
        placed += 1
        pos += event.size + int(rng.uniform(0.03, 0.4) * fs)
    x += _pink_noise(rng, n) * (_rms(x) * 10 ** (BACKGROUND_DB / 20))
    x *= level_rms / max(_rms(x), 1e-12)
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
    # on the 16-bit grid (exact in float32; 0.99 * 2**15 = 32440.32 rounds down, so |x| <= 0.99 holds)
    return _grid(x, WAVEFORM_STEP).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / max(_rms(x), 1e-12)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _ramps(n: int, fs: float, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine on/off ramps, (n,) float64."""
    env = np.ones(n)
    for length, sl in ((int(attack_s * fs), slice(None)), (int(release_s * fs), slice(None, None, -1))):
        length = min(length, n)
        if length > 0:
            env[sl][:length] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)
    return env


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum, (n,)."""
    size = scipy.fft.next_fast_len(n, real=True)
    spec = scipy.fft.rfft(rng.standard_normal(size))
    k = np.arange(spec.size, dtype=np.float64)
    k[0] = 1.0
    spec /= np.sqrt(k)
    spec[0] = 0.0
    return _unit_rms(scipy.fft.irfft(spec, size)[:n])


def _band_filter(x: np.ndarray, fs: float, fc: float, bw_oct: float) -> np.ndarray:
    """Zero-phase Gaussian-in-log-frequency band filter (FWHM bw_oct) in the frequency domain
    (zero-padded to a fast FFT length; the output has the input's length)."""
    size = scipy.fft.next_fast_len(x.size, real=True)
    spec = scipy.fft.rfft(x, size)
    f = np.arange(spec.size) * (fs / size)
    f[0] = 1e-6
    sigma = bw_oct / _FWHM_PER_SIGMA
    spec *= np.exp(-0.5 * (np.log2(f / fc) / sigma) ** 2)
    return scipy.fft.irfft(spec, size)[: x.size]


def _trajectory(freq_at: Callable[[np.ndarray], np.ndarray], n: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """A frequency trajectory in Hz: per sample (n,) and at its control points (n // _CTRL + 2,).

    ``freq_at(t)`` (t in seconds) is evaluated every _CTRL samples and rounded to HZ_STEP; the samples
    in between are interpolated linearly. The control values hold at most 25 significant bits
    (< 2**15 Hz on a 2**-10 grid) and the interpolation weights 6, so the per-sample values are exact
    on a 2**-16 Hz grid: the transcendental functions in ``freq_at`` only matter through the rounded
    control values, and the running sum of the samples (``_cycles``) is exact too.
    """
    ctrl = _grid(freq_at(np.arange(n // _CTRL + 2) * (_CTRL / fs)), HZ_STEP)
    frac = np.arange(_CTRL) / _CTRL
    per_sample = (ctrl[:-1, None] + (ctrl[1:] - ctrl[:-1])[:, None] * frac).reshape(-1)[:n]
    return per_sample, ctrl


def _cycles(freq_hz: np.ndarray, fs: float) -> np.ndarray:
    """Instantaneous phase in cycles, wrapped to [0, 1), float64, of a ``_trajectory``: its running
    sum is exact (values on a 2**-16 Hz grid, sums below 2**37), so the phase is the same everywhere."""
    return np.cumsum(freq_hz) / fs % 1.0


def _vocalisation(rng: np.random.Generator, fs: float) -> np.ndarray:
    """A harmonic syllable: f0 100-600 Hz with glide and vibrato, three formants, spectral tilt."""
    dur = rng.uniform(0.08, 0.35)
    n = int(dur * fs)
    f0_start = _log_uniform(rng, 100.0, 600.0)
    glide_oct = rng.uniform(-0.7, 0.7)
    glide_shape = rng.choice([0.5, 1.0, 2.0])  # concave, linear or convex glide in log frequency
    vib_rate, vib_depth, vib_phase = rng.uniform(4.0, 10.0), rng.uniform(0.0, 0.04), rng.uniform(0, 2 * np.pi)

    def f0_at(t: np.ndarray) -> np.ndarray:
        glide = f0_start * 2.0 ** (glide_oct * (t / dur) ** glide_shape)
        return glide * (1.0 + vib_depth * np.sin(2 * np.pi * vib_rate * t + vib_phase))

    # f0 on a 64-sample control grid (the harmonic amplitudes follow it there: formants stay put
    # while f0 moves), linearly interpolated to the sample rate
    f0, f0_ctrl = _trajectory(f0_at, n, fs)
    cycles = _cycles(f0, fs)
    nyq_safe = min(10000.0, 0.45 * fs)
    n_harm = int(max(1, min(40, nyq_safe // f0.max())))
    formants = np.array([_log_uniform(rng, 300, 1000), _log_uniform(rng, 900, 2800), _log_uniform(rng, 2200, 5000)])
    formant_sigma = rng.uniform(0.15, 0.5, 3) / _FWHM_PER_SIGMA
    formant_gain = 10 ** (np.array([0.0, rng.uniform(-10, 0), rng.uniform(-15, -3)]) / 20)
    tilt = rng.uniform(0.6, 1.2)
    harm = np.arange(1, n_harm + 1, dtype=np.float64)[:, None]
    freq = harm * f0_ctrl[None, :]  # (H, C)
    shape = 0.03 + sum(
        g * np.exp(-0.5 * (np.log2(freq / fc) / sg) ** 2) for fc, sg, g in zip(formants, formant_sigma, formant_gain)
    )
    amp_ctrl = shape * harm**-tilt * np.clip((nyq_safe - freq) / 500.0, 0.0, 1.0)
    frac = np.arange(_CTRL) / _CTRL
    amp = (amp_ctrl[:, :-1, None] * (1 - frac) + amp_ctrl[:, 1:, None] * frac).reshape(n_harm, -1)[:, :n]
    offsets = rng.uniform(0.0, 1.0, n_harm)
    # harmonic h + 1 is sin(2 pi ((h + 1) cycles + offset_h)); sin and cos of (h + 1) * 2 pi cycles
    # come from rotating those of harmonic 1 (two sines per sample instead of one per harmonic;
    # the recurrence's error grows ~h ulp, far below the 16-bit grid), summed in a fixed order
    theta = 2 * np.pi * cycles
    cos1, sin1 = np.cos(theta), np.sin(theta)
    sin_h, cos_h = sin1.copy(), cos1.copy()
    x = np.zeros(n)
    for h in range(n_harm):
        phase = 2 * math.pi * offsets[h]
        x += amp[h] * (sin_h * math.cos(phase) + cos_h * math.sin(phase))
        sin_h, cos_h = sin_h * cos1 + cos_h * sin1, cos_h * cos1 - sin_h * sin1
    x *= _ramps(n, fs, rng.uniform(0.005, 0.03), rng.uniform(0.01, 0.06))
    return _unit_rms(x)


def _fm_sweep(rng: np.random.Generator, fs: float) -> np.ndarray:
    """A log-FM sweep, up or down, 0.5-4 octaves in 50-500 ms, with 1-3 harmonics."""
    dur = rng.uniform(0.05, 0.5)
    n = int(dur * fs)
    top = min(16000.0, 0.42 * fs)
    f1 = _log_uniform(rng, 200.0, top)
    f2 = float(np.clip(f1 * 2.0 ** (rng.choice([-1, 1]) * rng.uniform(0.5, 4.0)), 150.0, top))
    f, _ = _trajectory(lambda t: f1 * (f2 / f1) ** (t / dur), n, fs)
    cycles = _cycles(f, fs)
    gains = [1.0, rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.3)][: rng.integers(1, 4)]
    x = np.zeros(n)
    for h, g in enumerate(gains, start=1):
        carrier = np.sin(2 * np.pi * (h * cycles + rng.uniform(0.0, 1.0)))
        x += g * np.clip((0.45 * fs - h * f) / 500.0, 0.0, 1.0) * carrier
    x *= _ramps(n, fs, rng.uniform(0.003, 0.01), rng.uniform(0.003, 0.01))
    return _unit_rms(x)


def _am_noise(rng: np.random.Generator, fs: float) -> np.ndarray:
    """Band-limited noise (centre 150-8000 Hz, 0.3-2 oct) with sinusoidal AM at 2-40 Hz."""
    dur = rng.uniform(0.2, 1.0)
    n = int(dur * fs)
    fc = _log_uniform(rng, 150.0, min(8000.0, 0.3 * fs))
    noise = _band_filter(rng.standard_normal(n), fs, fc, rng.uniform(0.3, 2.0))
    t = np.arange(n) / fs
    depth = rng.uniform(0.5, 1.0)
    am = 1.0 - depth * 0.5 * (1.0 - np.cos(2 * np.pi * _log_uniform(rng, 2.0, 40.0) * t + rng.uniform(0, 2 * np.pi)))
    x = noise * am * _ramps(n, fs, rng.uniform(0.005, 0.02), rng.uniform(0.01, 0.03))
    return _unit_rms(x)


def _click_train(rng: np.random.Generator, fs: float) -> np.ndarray:
    """Clicks at 5-150 /s (rate gliding up to an octave either way), each a 0.5-2 ms decaying noise
    burst (one frozen shape per train), bandpassed around 0.8-10 kHz."""
    dur = rng.uniform(0.1, 0.6)
    n = int(dur * fs)
    pad = int(0.012 * fs)  # room for the click and the filter's ringing
    rate0 = _log_uniform(rng, 5.0, 150.0)
    glide = rng.uniform(-1.0, 1.0)
    # the click times are discrete decisions: an exact (quantised) rate trajectory and running sum
    rate, _ = _trajectory(lambda t: rate0 * 2.0 ** (glide * t * (fs / n)), n, fs)
    cycles = np.cumsum(rate) / fs + rng.uniform(0.0, 1.0)
    idx = np.flatnonzero(np.diff(np.floor(cycles)) > 0) + 1
    if idx.size == 0:
        idx = np.array([0])
    pulses = np.zeros(n + 2 * pad)
    pulses[idx + pad] = rng.uniform(0.6, 1.0, idx.size)
    tau = rng.uniform(0.0005, 0.002)
    k = np.arange(int(5 * tau * fs) + 1)
    click = rng.standard_normal(k.size) * np.exp(-k / (tau * fs))
    train = scipy.signal.fftconvolve(pulses, click)[: pulses.size]
    fc = _log_uniform(rng, 800.0, min(10000.0, 0.35 * fs))
    x = _band_filter(train, fs, fc, rng.uniform(1.0, 3.0))
    return _unit_rms(x * _ramps(x.size, fs, 0.002, 0.002))


def _mixture(rng: np.random.Generator, fs: float) -> np.ndarray:
    """2-3 events of the other types overlapped with onsets up to 150 ms apart."""
    parts = []
    for _ in range(rng.integers(2, 4)):
        kind = STIMULUS_TYPES[rng.integers(0, 4)]
        parts.append((int(rng.uniform(0.0, 0.15) * fs), _EVENT_MAKERS[kind](rng, fs) * 10 ** (rng.uniform(-6, 0) / 20)))
    x = np.zeros(max(o + p.size for o, p in parts))
    for o, p in parts:
        x[o : o + p.size] += p
    return _unit_rms(x)


_EVENT_MAKERS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    "vocalisation": _vocalisation,
    "fm_sweep": _fm_sweep,
    "am_noise": _am_noise,
    "click_train": _click_train,
    "mixture": _mixture,
}


# ---------------------------------------------------------------------------------------------
# neurons


@dataclass
class SynthNeurons:
    """Ground-truth neuron parameters, one row per neuron (N,), float32; input 0 = excitatory band,
    input 1 = inhibitory sideband (NaN centre and zero kernel where absent).

    centre_hz, bandwidth_oct: excitatory band (Gaussian in log2 frequency, FWHM in octaves).
    inhib_centre_hz, inhib_bandwidth_oct: inhibitory sideband, NaN if none.
    adapt_tau_ms, adapt_alpha: adaptive gain e / (ADAPT_EPS + lowpass_tau(e)) ** alpha.
    compress_root: exponent r of the offset root (a + COMPRESS_DELTA) ** r - COMPRESS_DELTA ** r.
    temporal_kernels: (N, 2, L) weights at lags 0..L-1 bins, per input.
    threshold, out_power: output nonlinearity softplus(z - threshold) ** out_power.
    target_rate_hz: the mean rate the calibration aims at (spikes/s).
    Calibration (NaN until calibrated on the generated stimuli): env_ref (N, 2) mean envelope per
    input; drive_mean, drive_std: drive standardisation; rate_gain: counts per bin per unit output.
    """

    centre_hz: np.ndarray
    bandwidth_oct: np.ndarray
    inhib_centre_hz: np.ndarray
    inhib_bandwidth_oct: np.ndarray
    adapt_tau_ms: np.ndarray
    adapt_alpha: np.ndarray
    compress_root: np.ndarray
    temporal_kernels: np.ndarray
    threshold: np.ndarray
    out_power: np.ndarray
    target_rate_hz: np.ndarray
    env_ref: np.ndarray
    drive_mean: np.ndarray
    drive_std: np.ndarray
    rate_gain: np.ndarray

    @property
    def n_neurons(self) -> int:
        return int(self.centre_hz.shape[0])

    def to_truth(self) -> dict[str, np.ndarray]:
        """All fields as float32 arrays, keyed by field name (for DatasetContent.truth)."""
        return {f.name: np.asarray(getattr(self, f.name), dtype=np.float32) for f in fields(self)}

    @classmethod
    def from_truth(cls, truth: dict[str, np.ndarray]) -> "SynthNeurons":
        """Rebuild from a dataset's truth dict (extra keys such as ``rates`` are ignored)."""
        missing = [f.name for f in fields(cls) if f.name not in truth]
        if missing:
            raise DatasetError(
                f"synth truth lacks {missing}; not a synth dataset of generator version {GENERATOR_VERSION}"
            )
        return cls(**{f.name: np.asarray(truth[f.name], dtype=np.float32) for f in fields(cls)})

    def select(self, index) -> "SynthNeurons":
        """A subset of neurons (any numpy index along the neuron axis)."""
        return SynthNeurons(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})


def draw_neurons(params: SynthDatasetConfig) -> SynthNeurons:
    """Draw N uncalibrated neurons from generator (seed, 2); see the module docstring."""
    params.check()
    rng = np.random.default_rng([params.seed, _SEED_NEURONS])
    n = params.n_neurons
    f32 = np.float32
    # every value is rounded (_sig: PARAM_BITS significant bits, exact in float32) as soon as it is
    # drawn or derived, so later comparisons, clips and band edges see the same numbers everywhere
    centre = _sig(_log_uniform(rng, params.cf_min_hz, params.cf_max_hz, n))
    bw = _sig(np.maximum(_log_uniform(rng, 0.1, 1.5, n), _min_bandwidth_oct(centre)))
    has_inhib = rng.random(n) < 0.5
    side = rng.choice([-1.0, 1.0], n)
    inhib_bw = _sig(np.clip(bw * rng.uniform(0.7, 1.5, n), 0.1, 2.0))
    # the sideband's half-maximum points stay clear of the excitatory band's (0 to 0.75 oct apart)
    offset = 0.5 * (bw + inhib_bw) + rng.uniform(0.0, 0.75, n)
    inhib_centre = _sig(np.clip(centre * 2.0 ** (side * offset), 100.0, min(20000.0, 0.45 * params.audio_fs)))
    inhib_bw = _sig(np.maximum(inhib_bw, _min_bandwidth_oct(inhib_centre)))
    inhib_centre[~has_inhib] = np.nan
    inhib_bw[~has_inhib] = np.nan
    tau = _sig(_log_uniform(rng, 20.0, 300.0, n))
    alpha = _sig(rng.uniform(0.5, 0.95, n))
    root = _sig(rng.uniform(0.25, 0.5, n))
    lags_ms = np.arange(params.n_lags) * params.dt_ms
    latency = _sig(rng.uniform(5.0, 20.0, n))
    kernels = np.zeros((n, N_INPUTS, params.n_lags))
    kernels[:, 0] = _biphasic(rng, lags_ms, latency, (0.3, 0.9))
    inhib_weight = rng.uniform(0.4, 1.0, n) * has_inhib
    # the sideband suppresses, a little later, with at most a weak rebound (no net excitation)
    kernels[:, 1] = -inhib_weight[:, None] * _biphasic(rng, lags_ms, latency + rng.uniform(2.0, 10.0, n), (0.0, 0.3))
    kernels = _grid(kernels, KERNEL_STEP)
    nan = np.full(n, np.nan, dtype=f32)
    return SynthNeurons(
        centre_hz=centre.astype(f32),
        bandwidth_oct=bw.astype(f32),
        inhib_centre_hz=inhib_centre.astype(f32),
        inhib_bandwidth_oct=inhib_bw.astype(f32),
        adapt_tau_ms=tau.astype(f32),
        adapt_alpha=alpha.astype(f32),
        compress_root=root.astype(f32),
        temporal_kernels=kernels.astype(f32),
        threshold=_sig(rng.uniform(-0.5, 1.5, n)).astype(f32),
        out_power=_sig(rng.uniform(1.0, 2.0, n)).astype(f32),
        target_rate_hz=_sig(_log_uniform(rng, params.rate_min_hz, params.rate_max_hz, n)).astype(f32),
        env_ref=np.full((n, N_INPUTS), np.nan, dtype=f32),
        drive_mean=nan.copy(),
        drive_std=nan.copy(),
        rate_gain=nan.copy(),
    )


def _min_bandwidth_oct(centre_hz: np.ndarray) -> np.ndarray:
    """The bandwidth in octaves whose FWHM is MIN_FWHM_HZ, centred (geometrically) on centre_hz."""
    return 2.0 * np.arcsinh(MIN_FWHM_HZ / (2.0 * centre_hz)) / math.log(2.0)


def _biphasic(
    rng: np.random.Generator, lags_ms: np.ndarray, latency_ms: np.ndarray, beta_range: tuple[float, float]
) -> np.ndarray:
    """Per neuron: a lobe peaking at latency, then a delayed, broader opposite lobe; (N, L).

    The first lobe sums to 1; the second to -beta (beta uniform in beta_range), 10-25 ms later.
    """
    n = latency_ms.shape[0]
    width = rng.uniform(2.5, 6.0, n)[:, None]
    delay = rng.uniform(10.0, 25.0, n)[:, None]
    beta = rng.uniform(*beta_range, n)[:, None]
    lat = latency_ms[:, None]
    excite = np.exp(-0.5 * ((lags_ms[None, :] - lat) / width) ** 2)
    suppress = np.exp(-0.5 * ((lags_ms[None, :] - lat - delay) / (width * rng.uniform(1.2, 2.0, n)[:, None])) ** 2)
    return excite / excite.sum(1, keepdims=True) - beta * suppress / np.maximum(suppress.sum(1, keepdims=True), 1e-12)


def neuron_rates(waveforms: np.ndarray, neurons: SynthNeurons, params: SynthDatasetConfig) -> np.ndarray:
    """Expected spike counts per bin of calibrated ``neurons`` for any sounds: (S, N, T) float32.

    waveforms: (S, T_audio) or (T_audio,) at ``params.audio_fs``, T_audio a multiple of
    ``params.hop``; T = T_audio // hop. ``neurons`` must be calibrated (as stored in a dataset's
    truth: ``SynthNeurons.from_truth(content.truth)``).
    """
    if not np.all(np.isfinite(neurons.rate_gain)):
        raise ConfigError(
            "neuron_rates: neurons are not calibrated (rate_gain is NaN); use SynthNeurons.from_truth(content.truth)"
        )
    x = np.asarray(waveforms)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ShapeError(f"neuron_rates: waveforms must be (S, T_audio) or (T_audio,); got shape {np.shape(waveforms)}")
    hop = params.hop
    if x.shape[1] == 0 or x.shape[1] % hop:
        raise ShapeError(f"neuron_rates: waveforms have {x.shape[1]} samples, not a positive multiple of hop={hop}")
    return _rates_from_envelopes(_input_envelopes(x, neurons, params), neurons, params)


def _input_envelopes(waveforms: np.ndarray, neurons: SynthNeurons, params: SynthDatasetConfig) -> np.ndarray:
    """Band envelopes of every neuron input averaged in each bin: (S, N, 2, T) float64.

    One rfft per stimulus (zero-padded by _PAD_S to avoid circular wrap); per band, only its bins
    (centre +- 3 sigma) are shifted to baseband and inverse-transformed at a reduced rate of m
    samples per bin, m >= 4, so z_j is the analytic signal at time j * hop / m exactly.
    """
    fs = float(params.audio_fs)
    hop = params.hop
    s, n_audio = waveforms.shape
    n_bins = n_audio // hop
    n_frames = scipy.fft.next_fast_len(n_bins + int(math.ceil(_PAD_S * 1000.0 / params.dt_ms)))
    n_pad = n_frames * hop
    spectra = scipy.fft.rfft(np.asarray(waveforms, dtype=np.float64), n=n_pad, axis=-1)
    out = np.zeros((s, neurons.n_neurons, N_INPUTS, n_bins))
    bands = ((neurons.centre_hz, neurons.bandwidth_oct), (neurons.inhib_centre_hz, neurons.inhib_bandwidth_oct))
    for i, (centres, widths) in enumerate(bands):
        for k in range(neurons.n_neurons):
            if np.isfinite(centres[k]):
                out[:, k, i] = _band_envelope(
                    spectra, n_pad, n_frames, n_bins, hop, fs, float(centres[k]), float(widths[k])
                )
    return out


def _band_envelope(
    spectra: np.ndarray, n_pad: int, n_frames: int, n_bins: int, hop: int, fs: float, fc: float, bw_oct: float
) -> np.ndarray:
    """Bin-averaged analytic-signal magnitude of one Gaussian band, (S, n_bins) float64.

    The band edges and the causal delay are rounded to _INDEX_STEP before they become indices, so a
    last-bit difference in pow or log on another machine cannot move them.
    """
    sigma = bw_oct / _FWHM_PER_SIGMA
    df = fs / n_pad
    k_lo = max(1, int(math.ceil(_grid(fc * 2.0 ** (-3 * sigma) / df, _INDEX_STEP))))
    k_hi = min(spectra.shape[1] - 1, int(math.floor(_grid(min(fc * 2.0 ** (3 * sigma), fs / 2) / df, _INDEX_STEP)))) + 1
    width = k_hi - k_lo
    if width < 1:
        return np.zeros((spectra.shape[0], n_bins))
    m = scipy.fft.next_fast_len(max(4, -(-width // n_frames)))
    size = m * n_frames
    gain = np.exp(-0.5 * (np.log2((k_lo + np.arange(width)) * df / fc) / sigma) ** 2)
    base = np.zeros((spectra.shape[0], size), dtype=np.complex128)
    base[:, :width] = spectra[:, k_lo:k_hi] * gain
    z = scipy.fft.ifft(base, axis=-1, overwrite_x=True)
    env = np.sqrt(z.real * z.real + z.imag * z.imag) * (2.0 * size / n_pad)  # |z|, faster than hypot
    # make the zero-phase filter causal: delay by 3 temporal standard deviations of its response
    sigma_t = 1.0 / (2.0 * math.pi * fc * sigma * math.log(2.0))
    shift = int(round(_grid(min(3.0 * sigma_t, MAX_BAND_DELAY_S) * fs * m / hop, _INDEX_STEP)))
    env = np.roll(env, shift, axis=-1)
    return env[:, : n_bins * m].reshape(-1, n_bins, m).mean(axis=-1)


def _adapted_inputs(envelopes: np.ndarray, neurons: SynthNeurons, params: SynthDatasetConfig) -> np.ndarray:
    """Normalise, adapt and compress the input envelopes: (S, N, 2, T) -> (S, N, 2, T) float64."""
    ref = np.where(np.isfinite(neurons.env_ref), neurons.env_ref, 1.0).astype(np.float64)
    e = envelopes / ref[None, :, :, None]
    slow = np.empty_like(e)
    for k in range(neurons.n_neurons):
        s = _sig(1.0 - math.exp(-params.dt_ms / float(neurons.adapt_tau_ms[k])))
        slow[:, k] = scipy.signal.lfilter(np.array([s]), np.array([1.0, s - 1.0]), e[:, k], axis=-1)
    alpha = neurons.adapt_alpha.astype(np.float64)[None, :, None, None]
    root = neurons.compress_root.astype(np.float64)[None, :, None, None]
    adapted = e * np.exp(-alpha * np.log(ADAPT_EPS + slow))  # e / (eps + slow) ** alpha
    # offset root: ~linear for small a (silence stays near 0), a ** root for large a
    return np.exp(root * np.log(adapted + COMPRESS_DELTA)) - np.exp(root * math.log(COMPRESS_DELTA))


def _drive(inputs: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Causal temporal filtering summed over inputs: (S, N, 2, T), (N, 2, L) -> (S, N, T) float64.

    Plain elementwise products and sums in a fixed order (lag by lag, input 0 then 1): no einsum or
    BLAS, whose summation order depends on the machine.
    """
    n_bins = inputs.shape[-1]
    drive = np.zeros(inputs.shape[:2] + (n_bins,))
    k64 = kernels.astype(np.float64)
    term = np.empty_like(drive)
    for lag in range(min(k64.shape[-1], n_bins)):
        for i in range(inputs.shape[2]):
            part = term[..., : n_bins - lag]
            np.multiply(inputs[:, :, i, : n_bins - lag], k64[None, :, i, lag, None], out=part)
            drive[..., lag:] += part
    return drive


def _output(drive: np.ndarray, neurons: SynthNeurons) -> np.ndarray:
    """Output nonlinearity before the gain: softplus(z - threshold) ** out_power, (S, N, T) float64."""
    col = lambda a: np.asarray(a, dtype=np.float64)[None, :, None]  # noqa: E731
    z = (drive - col(neurons.drive_mean)) / col(neurons.drive_std)
    softplus = np.logaddexp(0.0, z - col(neurons.threshold))
    return np.exp(np.log(softplus) * col(neurons.out_power))


def _rates_from_envelopes(envelopes: np.ndarray, neurons: SynthNeurons, params: SynthDatasetConfig) -> np.ndarray:
    drive = _drive(_adapted_inputs(envelopes, neurons, params), neurons.temporal_kernels)
    return _rates_from_drive(drive, neurons)


def _rates_from_drive(drive: np.ndarray, neurons: SynthNeurons) -> np.ndarray:
    """Rates (S, N, T) float32, rounded to RATE_STEP in float64 (exact in float32 below 256 counts
    per bin): the Poisson sampler branches on its mean, so its inputs must be the same everywhere."""
    rates = _output(drive, neurons) * neurons.rate_gain.astype(np.float64)[None, :, None]
    return _grid(rates, RATE_STEP).astype(np.float32)


def _calibrate(envelopes: np.ndarray, neurons: SynthNeurons, params: SynthDatasetConfig) -> tuple[SynthNeurons, np.ndarray]:
    """Fill the calibration fields from the generated stimuli, each rounded to PARAM_BITS significant
    bits (exact in float32) before use: the float64 means behind them may differ in the last bits
    between machines (summation order), the rounded values do not.

    Returns the calibrated neurons and their drive (S, N, T), from which the rates follow exactly as
    in ``neuron_rates``.
    """
    f32 = np.float32
    n = neurons.select(slice(None))
    ref = envelopes.mean(axis=(0, 3))  # (N, 2)
    ref[:, 1] = np.where(np.isfinite(n.inhib_centre_hz), ref[:, 1], np.nan)
    n.env_ref = _sig(np.maximum(ref, 1e-12)).astype(f32)
    drive = _drive(_adapted_inputs(envelopes, n, params), n.temporal_kernels)
    n.drive_mean = _sig(drive.mean(axis=(0, 2))).astype(f32)
    n.drive_std = _sig(np.maximum(drive.std(axis=(0, 2)), 1e-12)).astype(f32)
    out = _output(drive, n)
    target = n.target_rate_hz.astype(np.float64) * params.dt_ms / 1000.0
    n.rate_gain = _sig(target / np.maximum(out.mean(axis=(0, 2)), 1e-12)).astype(f32)
    return n, drive
