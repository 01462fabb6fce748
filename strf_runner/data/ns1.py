"""NS1: the real data of the seed study (Harper et al. 2016), processed once into the project's format.

Ferret primary auditory cortex, 119 units, 20 natural sounds of 5 s x 20 repeats, 5 ms bins. The
raw release (``ns1_release``: its files, checksums and download) is converted to the project's HDF5
format (``schema``) with both stimulus views, and cached as ``<cache>/ns1-<key>.h5``, where the key
hashes every processing option (``NS1DatasetConfig``) and ``PROCESSOR_VERSION``. The rules follow
``spec/dataset.md``; the decisions it leaves open:

**Files.** ``ensure_ns1`` finds (or fetches) the raw folder with ``ns1_release.locate_raw`` and, with
``verify``, checks it with ``ns1_release.verify_raw`` before processing. The processed file always
goes to the writable cache folder (``data_root(cache_dir)``), never into the raw folder (which may be
read-only). ``.mat`` files, classic or v7.3, are read with ``matfile.read_mat``.

**Missing neuron files** (``NS1DatasetConfig.verify``). The reference looks for a neuron's file under the
name in the metadata, then under the same name with ``_1`` before ``.mat``, and skips the neuron if
both are missing (``ns1_release.neuron_files``). A ``_1`` file is not part of the checksummed
release, so:

* ``verify=True`` (default): the release must be exactly the published one. A missing file is an
  error naming it (and mentioning a ``_1`` sibling if there is one); so is any checksum mismatch.
  With this, the cache key depends on the options only.
* ``verify=False``: the reference's behaviour: ``_1`` fallback, then skip (with a warning, listed in
  ``attrs["skipped_neurons"]``); no checksums. The cache key then also covers a SHA-256 of the
  input files actually used, so changed inputs are reprocessed.

**Responses.** Per neuron, stimulus s (element s of ``data.set``, checked against its
``stim_params`` Source/Set/StimID when present) and repeat r (element r of its ``repeats``, field
``t``, spike times in ms): round to whole ms with numpy's half-to-even rounding (as the reference),
keep 0 <= k < 4995 (rounding first), mark each ms at most once (several spikes in one ms count once),
count per 5 ms bin: (R=20, T=999) values in 0..5. Empty repeats (MATLAB ``uint8`` 1x0) are repeats
without spikes (zeros); a stimulus with fewer than 20 repeats gets NaN rows for the missing ones.
Smoothing (``NS1DatasetConfig.smooth``, default on, as the reference and all its anchors): the
*unnormalised* 5-tap Hann window [0, 0.5, 1, 0.5, 0] (from a requested 21 ms window: floor(21/5) = 4
taps, even, so 5), correlated along time with zero padding: ``y[t] = 0.5 c[t-1] + c[t] + 0.5 c[t+1]``.
Its taps sum to 2, so smoothed responses are about twice a local average: this changes the MSE scale
and the signal power that cc_norm uses. ``smooth=False`` stores the raw counts.

**Waveform view.** Each WAV (float32, 48828 Hz in its header, 244,140 samples; the TDT hardware's
true rate is 48828.125 Hz) is read, downmixed to mono by the mean, resampled to ``audio_fs`` with
``scipy.signal.resample_poly`` (a polyphase, Kaiser-windowed sinc FIR: band-limited), then cropped or
zero-padded at the end to T_audio = 999 * hop samples (239,760 at 48 kHz; hop = 240 samples = 5 ms),
so audio sample j belongs to bin j // hop. ``resample_from``: ``"reference"`` (default) treats the
source as 48828 Hz, exactly as the reference (48828 -> 48000, ratio 4000/4069); ``"exact"`` uses
48828.125 Hz (ratio 3072/3125). The two differ by a time warp of 2.6e-6: at most 12.8 us (0.61
samples) at the end of a stimulus, 1/400 of a bin. Measured on stimulus 3: the recomputed
cochleagrams differ by 0.027 dB on average (99th percentile 0.41 dB), while the waveforms differ
sample by sample by up to 49 % relative RMS near the end (phase of the top octave). Since no 5 ms
model can see the difference, we keep the reference's input exactly, which removes one confound when
comparing with its results.

**Native spectrogram view** (``NS1DatasetConfig.native``): ``X_nfht[s, :, 0, :]`` (34 x 999) from
``test_data_5ms.mat`` when present (``"auto"``, default, or ``"x_nfht"`` to require it); otherwise
(or with ``"recomputed"``) ``cochleagram.native_cochleagram`` of the 48 kHz waveform (Rahman et al.'s
recipe, Hamming window, causal and grid-locked, exactly 999 frames). ``attrs["native_source"]`` is
``"X_nfht"`` or ``"recomputed"``; ``ensure_ns1`` resolves ``"auto"`` before keying the cache, so
fetching X_nfht later gives a new cache file.

**Neurons and stimuli.** Neuron id = ``cell_id`` = the spike-file path in the metadata without
``.mat`` (e.g. ``exp45_1x32/P07-SH.En.C.2.U/cluster.03.data``; file names alone are not unique).
Metadata columns: ``cell_id``, ``depth_um``, ``noise_ratio`` (Sahani-Linden noise power / signal
power, lower is cleaner; not an SNR), ``single_n`` (0 = No, 1 = Maybe, 2 = Yes), ``single_t``
(``"Yes"``/``"Maybe"``/``"No"``), ``n_electrodes``, ``electrode_number``, ``area`` (``"A1"``) and
``spike_file`` (the file actually read). Stimuli ``nat01``..``nat20`` with the spec's types; the
file's splits are ``SPLITS["default"]``; ``split_indices`` gives a named split. Neuron selections
are ``selection``'s (dataset-independent); on the real metadata, ``valid73`` (single_t Yes or Maybe,
depth >= 0) gives 73 units; the other criterion the reference mentions, noise ratio < 40, gives all
119 (it is the criterion that defined the 119-unit release), so it is exposed as ``noise_lt40`` but
is not "valid73".
"""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
import os
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Mapping

import numpy as np
import scipy.io.wavfile
import scipy.signal

from strf_runner.config import DatasetConfig
from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.data.matfile import read_mat
from strf_runner.data.ns1_release import (
    CITATION,
    META_FILE,
    META_URL,
    SPIKES_DIR,
    STIMULUS_FILES,
    WAVEFORM_DIR,
    X_NFHT_FILE,
    X_NFHT_URL,
    ZIP_FILE,
    ZIP_URL,
    locate_raw,
    neuron_files,
    verify_raw,
    waveform_path,
)
from strf_runner.data.paths import data_root
from strf_runner.data.schema import DatasetContent, Stimulus, file_sha256, hop_samples, validate_content, write_dataset
from strf_runner.errors import ConfigError, DatasetError

__all__ = [
    "NS1DatasetConfig",
    "PROCESSOR_VERSION",
    "SPLITS",
    "STIMULUS_NAMES",
    "STIMULUS_TYPES",
    "bin_spike_times",
    "cache_key",
    "ensure_ns1",
    "ns1_path",
    "process_ns1",
    "read_waveform",
    "resample_ratio",
    "resample_to_grid",
    "resolve_options",
    "smooth_responses",
    "split_indices",
]

PROCESSOR_VERSION = 1  # bump whenever the processed data change for the same options

# ---------------------------------------------------------------------------------------------
# geometry (fixed by the release; the reference supports no other bin width for NS1)

N_STIMULI = 20
N_REPEATS = 20
DT_MS = 5.0
N_BINS = 999
NATIVE_FS = Fraction(48828125, 1000)  # the TDT sample rate, 48828.125 Hz
NATIVE_FS_HEADER = 48828  # what the WAV headers (and the reference) say
# (Source, Set, StimID) of data.set(s).stim_params for stimulus s, matching ns1_release.STIMULUS_FILES
STIMULUS_PARAMS = tuple((1, 2, i) for i in range(1, 13)) + tuple((2, 1, i) for i in range(1, 9))
STIMULUS_NAMES = tuple(f"nat{s + 1:02d}" for s in range(N_STIMULI))
_TYPES = {0: "water_sounds", 19: "water_sounds", 3: "ferret_vocalization", 6: "insects_buzzing"}
_TYPES.update({s: "human_speech" for s in range(8, 12)})
STIMULUS_TYPES = tuple(_TYPES.get(s, "unknown") for s in range(N_STIMULI))
HANN5 = np.array([0.0, 0.5, 1.0, 0.5, 0.0])  # np.hanning(5): the reference's unnormalised kernel

# ---------------------------------------------------------------------------------------------
# options and the cache

NATIVE_CHOICES = ("auto", "x_nfht", "recomputed")
RESAMPLE_CHOICES = ("reference", "exact")


PROCESSING_KEYS = ("smooth", "audio_fs", "resample_from", "native", "verify")


@dataclass
class NS1DatasetConfig(DatasetConfig):
    """``dataset=ns1``: the real NS1 release (Harper et al. 2016), and everything that changes its
    processed file (``cache_key`` hashes PROCESSING_KEYS).

    root: the folder holding the raw release (MetadataSHEnCneurons.mat and spikesandwav/), default
        <cache>/ns1_raw. download: fetch it there when absent. split: a named stimulus split (``SPLITS``).

    smooth: the reference's unnormalised centred 5-tap Hann smoothing of the responses (default, as
        the reference and its anchors); False stores raw counts per bin.
    audio_fs: sample rate of the waveform view; ``audio_fs * 5 / 1000`` must be a whole number
        (48000 -> hop 240, 16000 -> hop 80).
    resample_from: ``"reference"`` (source taken as 48828 Hz, as the reference) or ``"exact"``
        (48828.125 Hz); see the module docstring for the measured difference.
    native: ``"auto"`` (X_nfht if ``test_data_5ms.mat`` is present, else recomputed), ``"x_nfht"``
        (require it) or ``"recomputed"`` (always recompute from the waveforms).
    verify: check the release against the embedded checksums and require every neuron file
        (default); False follows the reference (``_1`` fallback, skip missing neurons), unchecked.
    """

    name: str = "ns1"
    source: str = "ns1"
    download: bool = False
    smooth: bool = True
    audio_fs: float = 48000.0
    resample_from: str = "reference"
    native: str = "auto"
    verify: bool = True
    split: str = "default"

    cached: ClassVar[bool] = True

    def named_split(self) -> str:
        return self.split

    def split_stimuli(self) -> dict[str, list[int]]:
        return split_indices(self.split)

    def __post_init__(self) -> None:
        for name in ("smooth", "verify"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"dataset.{name}={getattr(self, name)!r} must be true or false")
        if self.resample_from not in RESAMPLE_CHOICES:
            raise ConfigError(f"dataset.resample_from={self.resample_from!r}; choose one of {list(RESAMPLE_CHOICES)}")
        if self.native not in NATIVE_CHOICES:
            raise ConfigError(f"dataset.native={self.native!r}; choose one of {list(NATIVE_CHOICES)}")
        fs = self.audio_fs
        if isinstance(fs, bool) or not isinstance(fs, numbers.Real) or not 0 < fs <= float(NATIVE_FS):
            raise ConfigError(f"dataset.audio_fs={fs!r} must be a number in (0, {float(NATIVE_FS)}] Hz")
        hop = fs * DT_MS / 1000.0
        if abs(hop - round(hop)) > 1e-9:
            raise ConfigError(
                f"dataset.audio_fs={fs} gives {hop} samples per 5 ms bin; the grid lock needs a whole number "
                "(48000 -> 240, 16000 -> 80)"
            )
        object.__setattr__(self, "audio_fs", float(fs))

    @property
    def hop(self) -> int:
        return int(round(self.audio_fs * DT_MS / 1000.0))


def resolve_options(options: NS1DatasetConfig, raw_dir: str | os.PathLike) -> NS1DatasetConfig:
    """``options`` with ``native="auto"`` replaced by what ``raw_dir`` allows (``x_nfht`` or
    ``recomputed``); ``native="x_nfht"`` without the file is a DatasetError saying where to get it."""
    have = (Path(raw_dir) / X_NFHT_FILE).is_file()
    if options.native == "auto":
        return replace(options, native="x_nfht" if have else "recomputed")
    if options.native == "x_nfht" and not have:
        raise DatasetError(
            f"dataset.native=x_nfht needs {Path(raw_dir) / X_NFHT_FILE}; download {X_NFHT_URL} there "
            "(or set dataset.download=true), or use dataset.native=auto to recompute the cochleagram"
        )
    return options


def processing_options(options: NS1DatasetConfig) -> dict[str, Any]:
    """The options that change the processed file (PROCESSING_KEYS), by name."""
    return {key: getattr(options, key) for key in PROCESSING_KEYS}


def cache_key(options: NS1DatasetConfig, inputs: Mapping[str, str] | None = None) -> str:
    """A short stable hash (12 hex digits) of all options, PROCESSOR_VERSION and ``inputs``.

    inputs: digests of inputs that the embedded checksums do not pin (``ensure_ns1`` passes the
    SHA-256 of X_nfht when it is used, and of all input files when ``verify=False``).
    """
    blob = {"processor_version": PROCESSOR_VERSION, **processing_options(options), "inputs": dict(inputs or {})}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def ns1_path(
    options: NS1DatasetConfig, cache_dir: str | os.PathLike | None = None, inputs: Mapping[str, str] | None = None
) -> Path:
    """Where the processed file for ``options`` is cached: ``data_root(cache_dir) / f"ns1-{key}.h5"``."""
    return data_root(cache_dir) / f"ns1-{cache_key(options, inputs)}.h5"


def ensure_ns1(
    root: str | os.PathLike | None = None,
    options: NS1DatasetConfig | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """The processed NS1 file for ``options``, made once (atomic write) and reused after; its path.

    root: the raw folder (``dataset.root``; may be read-only), default ``<data_root(cache_dir)>/ns1_raw``.
    download: fetch what is missing (see ``ns1_release.locate_raw``). cache_dir: where the processed file goes
    (``data_root(cache_dir)``: the argument, else $STRF_RUNNER_DATA, else the user cache dir).
    With ``options.verify`` the raw files are checked against the embedded checksums before
    processing (not again once the processed file exists).
    """
    options = options or NS1DatasetConfig()
    raw = locate_raw(root, download, cache_dir=cache_dir, x_nfht=options.native != "recomputed", progress=progress)
    resolved = resolve_options(options, raw)
    inputs = _input_digests(raw, resolved)
    path = ns1_path(resolved, cache_dir, inputs)
    if path.exists():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
        if resolved.verify:
            verify_raw(raw)
        content = process_ns1(raw, resolved)
        content.attrs["cache_key"] = cache_key(resolved, inputs)
        write_dataset(content, path)
    except OSError as err:
        raise DatasetError(
            f"cannot write the processed NS1 file {path} ({err.strerror or err}); "
            "set STRF_RUNNER_DATA (or the cache folder) to a writable folder"
        ) from err
    return path


def _input_digests(raw: Path, options: NS1DatasetConfig) -> dict[str, str]:
    inputs = {}
    if options.native == "x_nfht":
        inputs["x_nfht_sha256"] = file_sha256(raw / X_NFHT_FILE)
    if not options.verify:
        digest = hashlib.sha256()
        used = [raw / META_FILE] + [waveform_path(raw, s) for s in range(N_STIMULI)]
        used += [p for p in neuron_files(raw, _read_metadata(raw / META_FILE), strict=False) if p is not None]
        for p in used:
            digest.update(f"{p.relative_to(raw).as_posix()}:{file_sha256(p) if p.is_file() else 'missing'}\n".encode())
        inputs["raw_sha256"] = digest.hexdigest()
    return inputs


# ---------------------------------------------------------------------------------------------
# the release's MATLAB structs (in ``read_mat``'s plain form)


def _field(struct: Any, name: str, path: Path, where: str) -> Any:
    if not isinstance(struct, dict) or name not in struct:
        raise DatasetError(f"{path}: {where} has no field {name!r}")
    return struct[name]


def _elements(value: Any, path: Path, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DatasetError(f"{path}: {where} is not a struct or cell array")
    return value


def _scalar(value: Any, path: Path, where: str) -> float:
    try:
        flat = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        flat = np.zeros(0)
    if flat.size != 1:
        raise DatasetError(f"{path}: {where} is not a single number")
    return float(flat[0])


def _read_metadata(path: Path) -> list[dict[str, Any]]:
    """One dict per neuron of ``MetadataSHEnCneurons.mat``, in its order, with plain Python values."""
    entries = _elements(read_mat(path, ["neuron"])["neuron"], path, "neuron")
    if not entries:
        raise DatasetError(f"{path}: the neuron struct array is empty")
    out = []
    for i, e in enumerate(entries):
        where = f"neuron({i + 1})"
        rel = _field(e, "path", path, where)
        grade = _field(e, "singleT", path, where)
        if not isinstance(rel, str) or not rel.endswith(".mat") or not isinstance(grade, str):
            raise DatasetError(f"{path}: {where}.path or .singleT is not text ending in .mat / Yes|Maybe|No")
        nums = {
            key: _scalar(_field(e, field, path, where), path, f"{where}.{field}")
            for key, field in (
                ("depth_um", "depth"),
                ("noise_ratio", "NoiseRatio"),
                ("single_n", "singleN"),
                ("n_electrodes", "NrOfElectrodes"),
                ("electrode_number", "ElectrodeNumber"),
            )
        }
        rel = rel.replace("\\", "/")
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise DatasetError(f"{path}: {where}.path {rel!r} leaves the {SPIKES_DIR}/ folder")
        out.append({"path": rel, "single_t": grade, **nums})
    return out


_SPIKE_FIELDS = ("set", "repeats", "t", "stim_params", "Source", "Set", "StimID")


def _read_spike_trains(path: Path) -> list[list[np.ndarray]]:
    """Spike times (ms, float64, 1-D) of each repeat of each of the 20 natural sounds of one neuron file."""
    data = _elements(read_mat(path, ["data"], fields=_SPIKE_FIELDS)["data"], path, "data")
    if not data:
        raise DatasetError(f"{path}: data is empty")
    sets = _elements(_field(data[0], "set", path, "data"), path, "data.set")
    if len(sets) < N_STIMULI:
        raise DatasetError(f"{path}: data.set has {len(sets)} elements; expected at least {N_STIMULI} (natural sounds)")
    trains = []
    for s in range(N_STIMULI):
        where = f"data.set({s + 1})"
        params = sets[s].get("stim_params") if isinstance(sets[s], dict) else None
        if isinstance(params, list) and params and all(k in params[0] for k in ("Source", "Set", "StimID")):
            keys = ("Source", "Set", "StimID")
            found = tuple(int(_scalar(params[0][k], path, f"{where}.stim_params.{k}")) for k in keys)
            if found != STIMULUS_PARAMS[s]:
                raise DatasetError(
                    f"{path}: {where} is stimulus (Source, Set, StimID) = {found}; expected {STIMULUS_PARAMS[s]} "
                    f"({STIMULUS_FILES[s]})"
                )
        repeats = _elements(_field(sets[s], "repeats", path, where), path, f"{where}.repeats")
        if len(repeats) > N_REPEATS:
            raise DatasetError(f"{path}: {where}.repeats has {len(repeats)} repeats; expected at most {N_REPEATS}")
        times = []
        for r, rep in enumerate(repeats):
            t = _field(rep, "t", path, f"{where}.repeats({r + 1})")
            try:
                times.append(np.asarray(t, dtype=np.float64).ravel())
            except (TypeError, ValueError) as err:
                raise DatasetError(f"{path}: {where}.repeats({r + 1}).t is not numeric") from err
        trains.append(times)
    return trains


# ---------------------------------------------------------------------------------------------
# responses


def bin_spike_times(
    times_ms: np.ndarray, trial: np.ndarray, n_trials: int, n_bins: int = N_BINS, bin_ms: int = 5
) -> np.ndarray:
    """Counts per bin of many spike trains at once, by the reference's rule: (n_trials, n_bins) float32.

    times_ms: spike times (ms) of all trials, concatenated; trial: the trial index (0..n_trials-1) of
    each spike. Each time is rounded to a whole ms (half to even, numpy's default, as the
    reference), then kept if 0 <= k < n_bins * bin_ms (rounding comes first, so -0.4 ms counts and
    4994.6 ms does not); each ms is marked at most once per trial (several spikes in one ms count
    once); the marks are summed per bin of ``bin_ms`` ms, so counts lie in 0..bin_ms. Non-finite
    times are dropped.
    """
    times_ms = np.asarray(times_ms, dtype=np.float64).ravel()
    trial = np.asarray(trial, dtype=np.int64).ravel()
    n_ms = n_bins * bin_ms
    finite = np.isfinite(times_ms)
    k = np.round(times_ms[finite]).astype(np.int64)
    tr = trial[finite]
    keep = (k >= 0) & (k < n_ms)
    slots = np.unique(tr[keep] * n_ms + k[keep])  # one-hot per trial and ms
    counts = np.bincount(slots // bin_ms, minlength=n_trials * n_bins)
    return counts.reshape(n_trials, n_bins).astype(np.float32)


def _bin_neuron(trains: list[list[np.ndarray]]) -> np.ndarray:
    """(S, R, T) float32 counts of one neuron; repeats a stimulus lacks are NaN rows."""
    flat = [(s * N_REPEATS + r, t) for s, reps in enumerate(trains) for r, t in enumerate(reps)]
    times = np.concatenate([t for _, t in flat]) if flat else np.zeros(0)
    trial = np.repeat([i for i, _ in flat], [t.size for _, t in flat]) if flat else np.zeros(0, np.int64)
    counts = bin_spike_times(times, trial, N_STIMULI * N_REPEATS).reshape(N_STIMULI, N_REPEATS, N_BINS)
    for s, reps in enumerate(trains):
        counts[s, len(reps) :] = np.nan
    return counts


def smooth_responses(counts: np.ndarray, kernel: np.ndarray = HANN5) -> np.ndarray:
    """The reference's smoothing along the last axis: centred correlation with ``kernel``, zeros
    outside; with the default (unnormalised 5-tap Hann) ``y[t] = 0.5 c[t-1] + c[t] + 0.5 c[t+1]``.

    Returns a new array of the same shape (float32 unless ``counts`` is another float type); a NaN
    (missing repeat) spreads to its neighbours only. Counts and halves are exact in float32.
    """
    c = np.asarray(counts)
    c = c.astype(c.dtype if c.dtype.kind == "f" else np.float32, copy=False)
    w = np.asarray(kernel, dtype=np.float64)
    if w.ndim != 1 or w.size % 2 == 0:
        raise ConfigError(f"smooth_responses: kernel must be 1-D of odd length; got shape {w.shape}")
    half, t = w.size // 2, c.shape[-1]
    out = np.zeros_like(c)
    for j, weight in enumerate(w):
        shift = j - half  # out[..., i] += weight * c[..., i + shift]
        if weight == 0.0 or abs(shift) >= t:
            continue
        if shift >= 0:
            out[..., : t - shift] += c.dtype.type(weight) * c[..., shift:]
        else:
            out[..., -shift:] += c.dtype.type(weight) * c[..., : t + shift]
    return out


# ---------------------------------------------------------------------------------------------
# stimuli


def read_waveform(path: str | os.PathLike) -> np.ndarray:
    """A release WAV (no extension) as mono float32 at its native rate; DatasetError if unreadable,
    truncated, empty or not at 48828 Hz."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"stimulus waveform {path} is missing")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.io.wavfile.WavFileWarning)
        try:
            fs, x = scipy.io.wavfile.read(path)
        except Exception as err:  # struct.error, ValueError, EOFError, ... on damaged files
            raise DatasetError(
                f"{path}: cannot read as a WAV file ({type(err).__name__}: {err}); fetch it again"
            ) from err
    for w in caught:
        if "EOF" in str(w.message):
            raise DatasetError(f"{path}: truncated WAV file ({w.message}); fetch it again")
    if fs != NATIVE_FS_HEADER:
        raise DatasetError(f"{path}: sample rate {fs} Hz; the NS1 waveforms are {NATIVE_FS_HEADER} Hz")
    x = np.asarray(x)
    if x.dtype.kind == "i":
        x = x / float(2 ** (8 * x.dtype.itemsize - 1))
    elif x.dtype.kind == "u":
        x = (x.astype(np.float64) - 128.0) / 128.0
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        raise DatasetError(f"{path}: the WAV file holds no samples")
    return x.astype(np.float32)


def resample_ratio(audio_fs: float, resample_from: str) -> tuple[int, int]:
    """(up, down) of the polyphase resampler: 48000 Hz gives (4000, 4069) from the reference's
    48828 Hz and (3072, 3125) from the exact 48828.125 Hz."""
    source = Fraction(NATIVE_FS_HEADER) if resample_from == "reference" else NATIVE_FS
    ratio = Fraction(audio_fs).limit_denominator(1000) / source
    return ratio.numerator, ratio.denominator


@functools.lru_cache(maxsize=8)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR that ``resample_poly`` designs by default (Kaiser, beta 5), made once."""
    rate = max(up, down)
    return scipy.signal.firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))


def resample_to_grid(x: np.ndarray, up: int, down: int, n: int) -> np.ndarray:
    """Resample by up/down (band-limited polyphase FIR; none at ratio 1), then crop or zero-pad at the end
    to n samples."""
    y = x if up == down else scipy.signal.resample_poly(x.astype(np.float64), up, down, window=_lowpass(up, down))
    out = np.zeros(n, dtype=np.float32)
    m = min(n, y.size)
    out[:m] = y[:m]
    return out


def _read_x_nfht(path: Path) -> np.ndarray:
    """X_nfht of ``test_data_5ms.mat`` as (20, 34, 999) float32."""
    x = np.asarray(read_mat(path, ["X_nfht"])["X_nfht"])
    n_bands = len(band_centres())
    if x.ndim == 4 and x.shape[2] == 1:
        x = x[:, :, 0, :]
    if x.shape != (N_STIMULI, n_bands, N_BINS) or x.dtype.kind not in "fiu":
        raise DatasetError(
            f"{path}: X_nfht has shape {x.shape}; expected ({N_STIMULI}, {n_bands}, 1, {N_BINS}) (stim, band, 1, time)"
        )
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the whole dataset


def process_ns1(raw_dir: str | os.PathLike, options: NS1DatasetConfig | None = None) -> DatasetContent:
    """Convert the raw release in ``raw_dir`` to a DatasetContent with both views (see the module docstring).

    Does not check checksums (``ensure_ns1`` calls ``verify_raw`` first); ``options.verify`` decides
    what a missing neuron file means (error, or the reference's ``_1`` fallback and skip).
    ``native="auto"`` is resolved against ``raw_dir``.
    """
    options = options or NS1DatasetConfig()
    raw = Path(raw_dir)
    options = resolve_options(options, raw)
    meta = _read_metadata(raw / META_FILE)
    files = neuron_files(raw, meta, strict=options.verify)
    kept = [i for i, p in enumerate(files) if p is not None]
    skipped = [meta[i]["path"] for i, p in enumerate(files) if p is None]
    if skipped:
        warnings.warn(
            f"NS1: skipped {len(skipped)} neurons whose spike file is missing (nor a _1 file): {', '.join(skipped)}",
            stacklevel=2,
        )
    if not kept:
        raise DatasetError(f"{raw}: none of the {len(meta)} neuron files named in {META_FILE} exists")

    responses = np.empty((N_STIMULI, len(kept), N_REPEATS, N_BINS), dtype=np.float32)
    for j, i in enumerate(kept):
        binned = _bin_neuron(_read_spike_trains(files[i]))  # (S, R, T), smoothed per neuron: cache-friendly
        responses[:, j] = smooth_responses(binned) if options.smooth else binned

    hop = hop_samples(options.audio_fs, DT_MS, "dataset.audio_fs")
    up, down = resample_ratio(options.audio_fs, options.resample_from)
    up48, down48 = resample_ratio(48000.0, options.resample_from)
    x_nfht = _read_x_nfht(raw / X_NFHT_FILE) if options.native == "x_nfht" else None
    stimuli = []
    for s in range(N_STIMULI):
        native = read_waveform(waveform_path(raw, s))
        wave = resample_to_grid(native, up, down, N_BINS * hop)
        if x_nfht is not None:
            spec = x_nfht[s]
        else:
            wave48 = wave if options.audio_fs == 48000.0 else resample_to_grid(native, up48, down48, N_BINS * 240)
            spec = native_cochleagram(wave48, 48000.0, DT_MS)
        stimuli.append(
            Stimulus(
                name=STIMULUS_NAMES[s],
                type=STIMULUS_TYPES[s],
                responses=np.ascontiguousarray(responses[s]),
                spectrogram=spec,
                waveform=wave,
            )
        )

    ids = [meta[i]["path"][: -len(".mat")] for i in kept]
    column = lambda key, dtype: np.array([meta[i][key] for i in kept], dtype=dtype)  # noqa: E731
    neuron_meta = {
        "cell_id": np.array(ids),
        "depth_um": column("depth_um", np.int64),
        "noise_ratio": column("noise_ratio", np.float64),
        "single_n": column("single_n", np.int64),
        "single_t": np.array([meta[i]["single_t"] for i in kept]),
        "n_electrodes": column("n_electrodes", np.int64),
        "electrode_number": column("electrode_number", np.int64),
        "area": np.array(["A1"] * len(kept)),
        "spike_file": np.array([files[i].relative_to(raw / SPIKES_DIR).as_posix() for i in kept]),
    }
    source = "exact 48828.125" if options.resample_from == "exact" else "reference 48828"
    attrs = {
        "description": (
            f"NS1: ferret A1, {len(kept)} units, {N_STIMULI} natural sounds x {N_REPEATS} repeats, 5 ms bins; "
            + ("spike counts smoothed by the reference's unnormalised 5-tap Hann" if options.smooth else "spike counts")
        ),
        "citation": CITATION,
        "species": "ferret",
        "area": "A1",
        "hearing_range_hz": "200-40000",
        "native_source": "X_nfht" if x_nfht is not None else "recomputed",
        "resample": f"{source} -> {options.audio_fs:g} Hz, scipy.signal.resample_poly up={up} down={down}",
        "smooth": "hann5_unnormalised: y[t] = 0.5 c[t-1] + c[t] + 0.5 c[t+1]" if options.smooth else "none",
        "source_urls": json.dumps({META_FILE: META_URL, ZIP_FILE: ZIP_URL, X_NFHT_FILE: X_NFHT_URL}),
        "stimulus_files": json.dumps([f"{SPIKES_DIR}/{WAVEFORM_DIR}/{f}" for f in STIMULUS_FILES]),
        "skipped_neurons": json.dumps(skipped),
        "processor_version": PROCESSOR_VERSION,
        "options": json.dumps(processing_options(options), sort_keys=True),
    }
    content = DatasetContent(
        name="ns1",
        dt_ms=DT_MS,
        neuron_ids=ids,
        stimuli=stimuli,
        splits={k: list(v) for k, v in SPLITS["default"].items()},
        audio_fs=options.audio_fs,
        spectrogram_freqs=band_centres(),
        neuron_meta=neuron_meta,
        attrs=attrs,
    )
    validate_content(content, f"NS1 from {raw}")
    return content


# ---------------------------------------------------------------------------------------------
# splits

SPLITS: dict[str, dict[str, list[int]]] = {
    "default": {"train": list(range(14)), "val": [14, 15, 16], "test": [17, 18, 19]},
    "rahman2020": {
        "train": [s for s in range(N_STIMULI) if s not in (3, 6, 9, 19, 16, 17, 18)],
        "val": [16, 17, 18],
        "test": [3, 6, 9, 19],
    },
}
"""Named stimulus splits of NS1: the anchors' ``default`` and Rahman et al. 2020's (unused by the anchors)."""


def split_indices(name: str, key: str = "dataset.split") -> dict[str, list[int]]:
    """A copy of ``SPLITS[name]``; an unknown name is a ConfigError listing the choices."""
    if name not in SPLITS:
        raise ConfigError(f"{key}={name!r} is not a split; choose one of {list(SPLITS)}")
    return {k: list(v) for k, v in SPLITS[name].items()}
