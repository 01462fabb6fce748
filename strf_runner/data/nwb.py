"""``dataset=nwb``: recordings in Neurodata Without Borders, converted once to the project's format.

One NWB file, several files of one experiment, or a folder of them (``*.nwb``, in name order) become
one HDF5 file (``schema``), cached as ``<cache>/nwb-<key>.h5`` where the key hashes every option and
the SHA-256 of every input: the NWB files and every sound file the conversion read (in any subfolder).
Which stimuli take their sound from a file depends only on the NWB files and the options, so each
conversion lists them in ``<cache>/nwb-<key of those>.sounds.json``; a later run looks their files up
again and hashes them to find the converted file. ``nwb_read`` reads each file; this module joins them:

**Neurons.** The units of every file, in file order; the unit id is the neuron id (``<identifier>/<id>``
with several files, the file's identifier or, where identifiers repeat, its name). Metadata: the
units' scalar columns (quality, location, electrode group ...), ``session`` and ``unit_id``;
a column some files lack is NaN (numbers) or "" (text) there. ``dataset.units_where`` keeps the
units a condition on a column holds for (``quality==good``, ``snr>=3``; operators ``== != >= <= > <``).

**Presentations.** Rows of the presentation table that name a stimulus (rows with an empty name,
and those ``dataset.presentations_where`` rejects, are left out and counted). Every presentation of
the same stimulus is a repeat, in time order. Stimuli are all the names, in sorted order. A
stimulus lasts its first presentation's duration: every presentation of it, in every file, must last
as long (within half a bin, at most 1 ms), and presentations in a file must not overlap.

**Responses.** Spike times binned relative to each presentation's start into ``dt_ms`` bins over
the stimulus duration (T = whole bins in it; bin k holds spikes in [start + k dt, start + (k+1) dt)):
(N, R, T) per stimulus, R its most repeats in any file. NaN where a unit has fewer repeats of a
stimulus (its file played it fewer times, or not at all) or was not recorded (outside its
``obs_intervals``). Spike times must be >= 0, within the file's time series (when it has any) and
inside the unit's ``obs_intervals`` (when given).

**Sound.** Per stimulus, from the first file that has it (``dataset.audio``: ``auto`` tries them in
this order): a ``stimulus_template`` of its name; the stretch of a played-audio series under
``/stimulus`` that its first presentation covers (``dataset.audio_series`` names the series where
several cover it); a sound file ``<name>.wav`` (or .flac ...) in ``dataset.audio_dir`` (default: the
NWB file's folder; a name with folders, ``sounds/stim03.wav``, is a path under it). Its rate, shape and
size are checked before it is read (``nwb_read.check_audio``: every error names the file and the
series, or the sound file), integer PCM (integer data the series gives no conversion for) is scaled to
+-1 as in a WAV file, and several channels are
mixed to mono by their mean (one warning line: dichotic sounds lose their difference between the
ears). It must not last more than twice its presentations (``MAX_SOUND_OVER_PRESENTATION``: a wrong
rate or the wrong sound); a sound longer than its presentations by more than a bin is cut at their end
(one warning line); a shorter one is zero-padded (the silence after a sound in a trial). Resampled to
``audio_fs`` with ``resample_poly`` (exact rational ratio), cut or zero-padded to T * hop samples. The
native view is the project's cochleagram of that waveform. Every array a stimulus needs is sized from
the file (its duration, units and repeats) and checked against the memory limit (``strf_runner.memory``)
before it is made, naming the stimulus and its first presentation.

**Splits.** ``dataset.train_stimuli`` / ``val_stimuli`` / ``test_stimuli`` (indices into the sorted
stimulus names), else a fixed rule: a permutation of the stimuli drawn from ``split_seed``, the first
15 % (at least one) for test, the next 15 % (at least one) for validation, the rest for training.

**Provenance** (``attrs["provenance"]``, JSON; copied into every run's summary.json): each file's
path, SHA-256, identifier, session description and start, the table and column used, units and
presentations kept and left out; each stimulus' sound: where it came from, its rate, channels, how it
was scaled and a sound file's SHA-256; and the notes about the sounds (mixed, cut) that every run
using the file repeats as warnings.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence

import h5py
import numpy as np
import soundfile
from omegaconf import MISSING

from strf_runner.atomic import atomic_path
from strf_runner.config import DatasetConfig
from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.data.ns1 import resample_to_grid
from strf_runner.data.nwb_read import AUDIO_EXTENSIONS, BYTES_PER_READ_SAMPLE, Session, Sound, check_audio, read_session
from strf_runner.data.paths import data_root
from strf_runner.data.schema import DatasetContent, Stimulus, file_sha256, hop_samples, write_dataset
from strf_runner.errors import ConfigError, DatasetError, StrfRunnerError, StrfRunnerWarning
from strf_runner.memory import check_allocation

PROCESSOR_VERSION = 2  # bump whenever the converted data change for the same inputs and options
AUDIO_CHOICES = ("auto", "template", "played", "wav")
IN_FILE = {"auto": ("template", "played"), "template": ("template",), "played": ("played",), "wav": ()}
SPLIT_FRACTION = 0.15
DURATION_TOLERANCE_MS = 1.0
MAX_SOUND_OVER_PRESENTATION = 2.0  # a sound longer than this many presentations: a wrong rate or the wrong sound
# bytes per sample of a stimulus' waveform at audio_fs while it is made: the resampled float64 and the
# float32 waveform, and the cochleagram's float64 frames (2 hop long, every hop) and their complex FFT (4x)
BYTES_PER_GRID_SAMPLE = 8 + 4 + 16 + 64 + 32


CONVERSION_KEYS = ("intervals", "stimulus_column", "units_where", "presentations_where", "audio", "audio_series",
                   "audio_dir", "dt_ms", "audio_fs", "split_seed")


@dataclass
class NWBDatasetConfig(DatasetConfig):
    """``dataset=nwb``: recordings in NWB, and everything that changes the converted file (``cache_key``
    hashes CONVERSION_KEYS with the inputs' SHA-256; see the module docstring).

    path: an NWB file, a list of files of one experiment, or a folder of them; converted once into the
    cache (``root``). Presentations come from the TimeIntervals table ``intervals`` (default: trials,
    epochs, then any table with a stimulus column), stimuli from ``stimulus_column`` (default: the first
    of stimulus_name, stimulus, ...). ``units_where`` / ``presentations_where``: ``COLUMN OP VALUE``
    conditions (``quality==good``). ``audio``: where sounds come from (auto: stimulus templates, then
    played audio under /stimulus, then ``<name>.wav`` in ``audio_dir``, default the NWB file's folder).
    Splits: the *_stimuli indices (into the sorted stimulus names), else 15 % test and 15 % validation
    drawn with ``split_seed``.
    """

    name: str = "nwb"
    source: str = "nwb"
    path: Any = MISSING
    intervals: Optional[str] = None
    stimulus_column: Optional[str] = None
    units_where: Optional[str] = None
    presentations_where: Optional[str] = None
    audio: str = "auto"
    audio_series: Optional[str] = None
    audio_dir: Optional[str] = None
    dt_ms: float = 5.0
    audio_fs: float = 48000.0
    split_seed: int = 0

    cached: ClassVar[bool] = True

    def check(self) -> None:
        if str(self.path).strip() == "":
            raise ConfigError(f"dataset.path={self.path!r} is empty: give the NWB file, files or folder to read")

    def __post_init__(self) -> None:
        if self.audio not in AUDIO_CHOICES:
            raise ConfigError(f"dataset.audio={self.audio!r}; choose one of {list(AUDIO_CHOICES)}")
        for key in ("dt_ms", "audio_fs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"dataset.{key}={value!r} must be a positive number")
        try:
            hop_samples(self.audio_fs, self.dt_ms, "dataset")
        except DatasetError as err:
            raise ConfigError(f"dataset.audio_fs={self.audio_fs} and dataset.dt_ms={self.dt_ms}: {err}") from err
        for key in ("units_where", "presentations_where"):
            if getattr(self, key) is not None:
                Condition.parse(getattr(self, key), f"dataset.{key}")


# ---------------------------------------------------------------------------------------------
# conditions on a table's columns: units_where, presentations_where

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|>=|<=|>|<)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Condition:
    """``column OP value``: text compares as text, a numeric column as numbers."""

    column: str
    op: str
    value: str

    @staticmethod
    def parse(text: str, key: str) -> Condition:
        match = _CONDITION.match(str(text))
        if match is None or not match.group(3):
            raise ConfigError(f"{key}={text!r} is not a condition; write COLUMN OP VALUE with OP one of "
                              f"{list(OPERATORS)}, e.g. quality==good or snr>=3")
        column, op, value = match.groups()
        return Condition(column, op, value.strip("'\""))

    def mask(self, columns: dict[str, np.ndarray], key: str, where: str) -> np.ndarray:
        """(rows,) bool; ConfigError naming ``key`` and the columns ``where`` has when the column is missing."""
        if self.column not in columns:
            raise ConfigError(f"{key}: {where} has no column {self.column!r}; it has {sorted(columns)}")
        values = columns[self.column]
        compare = OPERATORS[self.op]
        if values.dtype.kind == "f":
            try:
                target = float(self.value)
            except ValueError as err:
                raise ConfigError(f"{key}: column {self.column!r} of {where} holds numbers; "
                                  f"{self.value!r} is not one") from err
            with np.errstate(invalid="ignore"):
                return np.asarray(compare(values, target), dtype=bool)
        if self.op not in ("==", "!="):
            raise ConfigError(f"{key}: column {self.column!r} of {where} holds text; only == and != compare it")
        return np.asarray(compare(values.astype(str), self.value), dtype=bool)


# ---------------------------------------------------------------------------------------------
# files and the cache


def nwb_files(path: str | Sequence[str], key: str = "dataset.path") -> list[Path]:
    """The NWB files ``dataset.path`` names: a file, a list of files, or folders (their ``*.nwb``)."""
    given = [path] if isinstance(path, (str, Path)) else list(path)
    if not given:
        raise ConfigError(f"{key} is empty; give an NWB file, a list of them or a folder")
    files: list[Path] = []
    for item in given:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            found = sorted(p.glob("*.nwb"))
            if not found:
                raise DatasetError(f"{key}: the folder {p} holds no .nwb file")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DatasetError(f"{key}: {p} does not exist")
    resolved = [f.resolve() for f in files]
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"{key} names a file twice: {[str(f) for f in files]}")
    return resolved


def audio_dirs(files: list[Path], options: NWBDatasetConfig) -> list[Path]:
    """Where sound files are looked for: ``audio_dir``, else each NWB file's folder."""
    if options.audio_dir is not None:
        return [Path(options.audio_dir).expanduser().resolve()]
    return list(dict.fromkeys(f.parent for f in files))


def input_digests(files: list[Path]) -> dict[str, str]:
    """SHA-256 of every NWB file by path."""
    return {str(f): file_sha256(f) for f in files}


def conversion_options(options: NWBDatasetConfig) -> dict[str, Any]:
    """The options that change the converted file (CONVERSION_KEYS), by name."""
    return {key: getattr(options, key) for key in CONVERSION_KEYS}


def cache_key(options: NWBDatasetConfig, digests: dict[str, str]) -> str:
    blob = json.dumps({"version": PROCESSOR_VERSION, "options": conversion_options(options), "inputs": digests}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cached(index: Path, files: list[Path], options: NWBDatasetConfig, digests: dict[str, str]) -> Path | None:
    """The converted file of these inputs if there is one: ``index`` (written by their conversion)
    names the stimuli whose sound came from a file; those are looked up again and hashed into the key.
    None when any is missing now, or there is no index (never converted)."""
    try:
        names = json.loads(index.read_text())["sound_files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found = [_sound_file(name, audio_dirs(files, options)) for name in names]
    if any(path is None for path in found):
        return None
    key = cache_key(options, {**digests, **{str(path): file_sha256(path) for path in found}})
    out = index.parent / f"nwb-{key}.h5"
    return out if out.exists() else None


def ensure_nwb(path: str | Sequence[str], options: NWBDatasetConfig, cache_dir: str | Path | None = None) -> Path:
    """The converted file for these NWB inputs and options, made once (atomic write) and reused after."""
    files = nwb_files(path)
    digests = input_digests(files)
    index = data_root(cache_dir) / f"nwb-{cache_key(options, digests)}.sounds.json"
    out = _cached(index, files, options, digests)
    if out is None:
        content = convert_nwb(files, options, digests)
        from_files = {name: s for name, s in json.loads(content.attrs["provenance"])["sounds"].items() if s["sha256"]}
        key = cache_key(options, {**digests, **{s["from"]: s["sha256"] for s in from_files.values()}})
        content.attrs["cache_key"] = key
        out = index.parent / f"nwb-{key}.h5"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_dataset(content, out)
            with atomic_path(index) as tmp:
                tmp.write_text(json.dumps({"sound_files": sorted(from_files)}))
        except OSError as err:
            raise DatasetError(f"cannot write the converted NWB file {out} ({err.strerror or err}); "
                               "set STRF_RUNNER_DATA (or dataset.root) to a writable folder") from err
    with h5py.File(out, "r") as f:
        provenance = json.loads(f.attrs["provenance"])
    left = left_out_line(provenance)
    # on every run, not only the one that converted
    if left:
        warnings.warn(f"nwb: {left} (counts in the run's summary.json)", StrfRunnerWarning, stacklevel=2)
    for note in provenance["sound_notes"]:
        warnings.warn(f"nwb: {note}", StrfRunnerWarning, stacklevel=2)
    return out


# ---------------------------------------------------------------------------------------------
# conversion


def bin_spikes(spike_times: np.ndarray, starts: np.ndarray, n_bins: int, dt_ms: float) -> np.ndarray:
    """Spike counts (R, n_bins): row r counts the sorted ``spike_times`` (s) in
    [starts[r] + k dt, starts[r] + (k+1) dt) for bin k."""
    edges = starts[:, None] + np.arange(n_bins + 1)[None, :] * (dt_ms / 1000.0)  # (R, T + 1)
    below = np.searchsorted(spike_times, edges.ravel(), side="left").reshape(edges.shape)
    return np.diff(below, axis=1).astype(np.float32)


def to_grid(sound: Sound, audio_fs: float, n: int) -> np.ndarray:
    """A sound resampled to ``audio_fs`` at the exact rational ratio (NS1's band-limited polyphase FIR),
    cut or zero-padded at the end to ``n`` samples, float32."""
    ratio = (Fraction(audio_fs) / Fraction(sound.rate)).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    if up != down:  # resample_poly's output and its FIR of 20 max(up, down) + 1 taps, float64
        check_allocation(8 * (len(sound.samples) * up / down + 20 * max(up, down) + 1),
                         f"{sound.where}: resampling {len(sound.samples)} samples from {sound.rate:g} to "
                         f"{audio_fs:g} Hz")
    return resample_to_grid(sound.samples, up, down, n)


def read_sound_file(path: Path) -> Sound:
    """A sound file's samples, mixed to mono, with the SHA-256 of exactly the bytes decoded. Checked
    like a series (``check_audio``) before its samples are decoded."""
    check_allocation(path.stat().st_size, f"{path} (a sound file)")
    data = path.read_bytes()
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            channels = check_audio(str(path), f.samplerate, (f.frames, f.channels))
            check_allocation(f.frames * channels * BYTES_PER_READ_SAMPLE,
                             f"{path} ({f.frames} samples x {channels} channels)")
            x = f.read(dtype="float64", always_2d=True)
            rate, subtype = float(f.samplerate), f.subtype
    except StrfRunnerError:
        raise
    except (RuntimeError, TypeError, ValueError, EOFError) as err:  # soundfile's LibsndfileError is a RuntimeError
        raise DatasetError(f"{path}: cannot read it as a sound file ({err})") from err
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: holds NaN or infinite samples")
    return Sound(x.mean(axis=1), rate, str(path), channels, f"soundfile {subtype}",
                 hashlib.sha256(data).hexdigest())


def _sound_file(name: str, folders: list[Path]) -> Path | None:
    candidates = [name] if Path(name).suffix.lower() in AUDIO_EXTENSIONS else [name + ext for ext in AUDIO_EXTENSIONS]
    for folder in folders:
        for candidate in candidates:
            if (folder / candidate).is_file():
                return folder / candidate
    return None


@dataclass
class _Kept:
    """One session after the conditions: the units and presentations that stay, and what left."""

    session: Session
    units: np.ndarray  # (N_f,) indices into session.units
    rows: np.ndarray  # (P_f,) indices into session.presentations, by start time
    left: dict[str, int]


def _keep(session: Session, options: NWBDatasetConfig) -> _Kept:
    units, table = session.units, session.presentations
    where_units = f"{session.path}: /units"
    columns = {**units.columns, "unit_id": np.array(units.ids, dtype=str)}
    keep_units = np.ones(len(units.ids), dtype=bool)
    if options.units_where is not None:
        keep_units = Condition.parse(options.units_where, "dataset.units_where").mask(
            columns, "dataset.units_where", where_units)
        if not keep_units.any():
            raise DatasetError(f"{where_units}: dataset.units_where={options.units_where!r} leaves none of its "
                               f"{len(units.ids)} units")
    named = table.stimulus != ""
    chosen = np.ones(len(named), dtype=bool)
    if options.presentations_where is not None:
        chosen = Condition.parse(options.presentations_where, "dataset.presentations_where").mask(
            {**table.columns, table.stimulus_column: table.stimulus}, "dataset.presentations_where",
            f"{session.path}: /intervals/{table.table}")
    rows = np.flatnonzero(named & chosen)
    rows = rows[np.argsort(table.start[rows], kind="stable")]
    left = {"units_where": int((~keep_units).sum()), "no_stimulus": int((~named).sum()),
            "presentations_where": int((named & ~chosen).sum())}
    return _Kept(session, np.flatnonzero(keep_units), rows, left)


def _check_times(kept: _Kept) -> None:
    """Presentations that overlap, and spike times outside the file's time range or a unit's obs_intervals."""
    s, table = kept.session, kept.session.presentations
    start, stop = table.start[kept.rows], table.stop[kept.rows]
    overlap = np.flatnonzero(start[1:] < stop[:-1] - 1e-9)
    if len(overlap):
        a, b = kept.rows[overlap[0]], kept.rows[overlap[0] + 1]
        raise DatasetError(
            f"{s.path}: /intervals/{table.table} rows {table.row_ids[a]} ({str(table.stimulus[a])!r}, "
            f"{table.start[a]:g}-{table.stop[a]:g} s) and {table.row_ids[b]} ({str(table.stimulus[b])!r}, "
            f"{table.start[b]:g}-{table.stop[b]:g} s) overlap; presentations must not")
    for i in kept.units:
        t = s.units.spike_times[i]
        unit = f"{s.path}: /units unit {s.units.ids[i]}"
        if len(t) and t[0] < 0:
            raise DatasetError(f"{unit} has a spike at {t[0]:g} s, before the session start (0 s)")
        if len(t) and s.time_end is not None and t[-1] > s.time_end + 1e-6:
            raise DatasetError(f"{unit} has a spike at {t[-1]:g} s, after the file's time series end ({s.time_end:g} s)")
        obs = s.units.obs_intervals[i]
        if obs is not None and len(t):
            inside = np.zeros(len(t), dtype=bool)
            for lo, hi in obs:
                inside |= (t >= lo) & (t <= hi)
            if not inside.all():
                raise DatasetError(f"{unit} has a spike at {t[~inside][0]:g} s, outside its obs_intervals "
                                   f"{obs.tolist()}")


def _observed(obs: np.ndarray | None, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """(R,) bool: each presentation lies inside one of the unit's obs_intervals (all of them without)."""
    if obs is None:
        return np.ones(len(start), dtype=bool)
    return ((obs[None, :, 0] <= start[:, None] + 1e-9) & (stop[:, None] <= obs[None, :, 1] + 1e-9)).any(axis=1)


def _durations(kept: list[_Kept], options: NWBDatasetConfig) -> dict[str, tuple[float, str]]:
    """Each stimulus' duration (s) and its first presentation (file, table and row), checked across
    every presentation of it."""
    tol = min(DURATION_TOLERANCE_MS, options.dt_ms / 2.0) / 1000.0
    first: dict[str, tuple[float, str]] = {}
    for k in kept:
        table = k.session.presentations
        for r in k.rows:
            name, d = str(table.stimulus[r]), float(table.stop[r] - table.start[r])
            where = f"{k.session.path}: /intervals/{table.table} row {table.row_ids[r]}"
            if name not in first:
                first[name] = (d, where)
            elif abs(d - first[name][0]) > tol:
                raise DatasetError(f"{where}: stimulus {name!r} lasts {d:.6g} s here but {first[name][0]:.6g} s at "
                                   f"{first[name][1]}; every presentation of a stimulus must last as long")
    if not first:
        raise DatasetError("dataset.path: no presentation names a stimulus in any file")
    return dict(sorted(first.items()))


def _sounds(names: list[str], kept: list[_Kept], files: list[Path], options: NWBDatasetConfig) -> dict[str, Sound]:
    folders = audio_dirs(files, options)
    out = {}
    for name in names:
        found = next((k.session.sounds[name] for k in kept if name in k.session.sounds), None)
        looked = [f"{k.session.path}: {k.session.looked[name]}" for k in kept if k.session.looked.get(name)]
        if found is None and options.audio in ("auto", "wav"):
            path = _sound_file(name, folders)
            if path is not None:
                found = read_sound_file(path)
            else:
                looked.append(f"{name}.wav (or {', '.join(AUDIO_EXTENSIONS[1:])}) in {[str(f) for f in folders]}")
        if found is None:
            raise DatasetError(f"stimulus {name!r} has no sound (dataset.audio={options.audio}); looked for "
                               + "; ".join(looked))
        out[name] = found
    return out


def _neuron_ids(kept: list[_Kept]) -> tuple[list[str], list[str]]:
    """Neuron ids and each one's session label."""
    identifiers = [k.session.identifier for k in kept]
    labels = identifiers if len(set(identifiers)) == len(identifiers) else [k.session.path.stem for k in kept]
    if len(set(labels)) != len(labels):
        labels = [str(k.session.path) for k in kept]
    ids, sessions = [], []
    for k, label in zip(kept, labels):
        for i in k.units:
            unit = k.session.units.ids[i]
            ids.append(unit if len(kept) == 1 else f"{label}/{unit}")
            sessions.append(label)
    return ids, sessions


def _neuron_meta(kept: list[_Kept], sessions: list[str]) -> dict[str, np.ndarray]:
    names = list(dict.fromkeys(c for k in kept for c in k.session.units.columns))
    meta: dict[str, np.ndarray] = {}
    for name in names:
        parts = [k.session.units.columns.get(name) for k in kept]
        text = any(p is not None and p.dtype.kind != "f" for p in parts)
        pieces = []
        for k, part in zip(kept, parts):
            n = len(k.units)
            if part is None:
                pieces.append(np.full(n, "" if text else np.nan, dtype=str if text else np.float64))
            else:
                pieces.append(part[k.units].astype(str) if text else part[k.units])
        meta[name] = np.concatenate(pieces)
    meta["session"] = np.array(sessions, dtype=str)
    meta["unit_id"] = np.array([k.session.units.ids[i] for k in kept for i in k.units], dtype=str)
    return meta


def default_splits(n_stimuli: int, seed: int) -> dict[str, list[int]]:
    """The fixed rule: a permutation from ``seed``; 15 % (>= 1) test, 15 % (>= 1) val, the rest train."""
    if n_stimuli < 3:
        raise DatasetError(f"the recording has {n_stimuli} stimuli; train, validation and test need at least 3")
    order = np.random.default_rng(seed).permutation(n_stimuli)
    n_held = max(1, round(SPLIT_FRACTION * n_stimuli))
    n_held = min(n_held, (n_stimuli - 1) // 2)
    return {"test": sorted(int(i) for i in order[:n_held]),
            "val": sorted(int(i) for i in order[n_held:2 * n_held]),
            "train": sorted(int(i) for i in order[2 * n_held:])}


def _past_end(name: str, sound: Sound, duration: float, presentation: str) -> float:
    """Seconds of ``sound`` after its presentations end (0 when it fits); DatasetError naming the sound
    and the presentation when it lasts more than ``MAX_SOUND_OVER_PRESENTATION`` times as long."""
    length = len(sound.samples) / sound.rate
    if length > MAX_SOUND_OVER_PRESENTATION * duration:
        raise DatasetError(f"{sound.where}: the sound of stimulus {name!r} lasts {length:.6g} s ({len(sound.samples)} "
                           f"samples at {sound.rate:g} Hz), more than {MAX_SOUND_OVER_PRESENTATION:g} times its "
                           f"presentations ({presentation}: {duration:.6g} s); check the sampling rate and the sound")
    return max(0.0, length - duration)


def _sound_notes(names: list[str], sounds: dict[str, Sound], past_end: dict[str, float], dt_ms: float) -> list[str]:
    """One line per kind of change made to the sounds: several channels mixed, sounds cut at the end."""
    notes = []
    mixed = [n for n in names if sounds[n].channels > 1]
    if mixed:
        first = sounds[mixed[0]]
        notes.append(f"{len(mixed)} of {len(names)} sounds have several channels, mixed to mono by their mean "
                     f"(first: {first.where}, {first.channels} channels)")
    cut = [n for n in names if past_end[n] > dt_ms / 1000.0]
    if cut:
        most = max(cut, key=lambda n: past_end[n])
        notes.append(f"{len(cut)} of {len(names)} sounds last longer than their presentations and are cut at their "
                     f"end (most: {sounds[most].where}, {past_end[most]:.6g} s cut)")
    return notes


def convert_nwb(files: list[Path], options: NWBDatasetConfig, digests: dict[str, str] | None = None) -> DatasetContent:
    """The NWB files as one dataset in the project's format (both views); see the module docstring."""
    sessions = [read_session(f, options.intervals, options.stimulus_column, IN_FILE[options.audio],
                             options.audio_series) for f in files]
    kept = [_keep(s, options) for s in sessions]
    for k in kept:
        _check_times(k)
    durations = _durations(kept, options)
    names = list(durations)
    sounds = _sounds(names, kept, files, options)
    past_end = {name: _past_end(name, sounds[name], *durations[name]) for name in names}
    ids, session_labels = _neuron_ids(kept)
    hop = hop_samples(options.audio_fs, options.dt_ms)
    dt_s = options.dt_ms / 1000.0
    stimuli = []
    for name in names:
        duration, presentation = durations[name]
        n_bins = int(math.floor(duration / dt_s + 1e-6))
        if n_bins < 1:
            raise DatasetError(f"{presentation}: stimulus {name!r} lasts {duration:g} s, shorter than one "
                               f"{options.dt_ms:g} ms bin")
        rows = [k.rows[k.session.presentations.stimulus[k.rows] == name] for k in kept]
        n_repeats = max(len(r) for r in rows)
        check_allocation(4 * len(ids) * n_repeats * n_bins + BYTES_PER_GRID_SAMPLE * n_bins * hop,
                         f"{presentation}: stimulus {name!r} ({duration:g} s in {options.dt_ms:g} ms bins, "
                         f"{len(ids)} units x {n_repeats} repeats)")
        responses = np.full((len(ids), n_repeats, n_bins), np.nan, dtype=np.float32)
        offset = 0
        for k, r in zip(kept, rows):
            start, stop = k.session.presentations.start[r], k.session.presentations.stop[r]
            for j, unit in enumerate(k.units):
                counts = bin_spikes(k.session.units.spike_times[unit], start, n_bins, options.dt_ms)
                counts[~_observed(k.session.units.obs_intervals[unit], start, stop)] = np.nan
                responses[offset + j, : len(r)] = counts
            offset += len(k.units)
        waveform = to_grid(sounds[name], options.audio_fs, n_bins * hop)
        if not np.isfinite(waveform).all():
            raise DatasetError(f"{sounds[name].where}: samples beyond float32's range (after scaling and resampling)")
        table = next(k.session.presentations for k, r in zip(kept, rows) if len(r))
        first = next(r[0] for r in rows if len(r))
        kind = next((str(table.columns[c][first]) for c in ("stimulus_type", "type") if c in table.columns), "unknown")
        stimuli.append(Stimulus(name, kind, responses,
                                spectrogram=native_cochleagram(waveform, options.audio_fs, options.dt_ms),
                                waveform=waveform))
    provenance = _provenance(kept, sounds, options, digests or {})
    provenance["sound_notes"] = _sound_notes(names, sounds, past_end, options.dt_ms)  # ensure_nwb warns them
    return DatasetContent(
        name=files[0].stem if len(files) == 1 else f"{files[0].stem}+{len(files) - 1}",
        dt_ms=float(options.dt_ms), neuron_ids=ids, stimuli=stimuli,
        splits=default_splits(len(names), options.split_seed), audio_fs=float(options.audio_fs),
        spectrogram_freqs=band_centres(), neuron_meta=_neuron_meta(kept, session_labels),
        attrs={"source": "nwb", "native_source": "recomputed", "provenance": json.dumps(provenance)},
    )


def left_out_line(provenance: dict[str, Any]) -> str:
    """What the conversion left out, from its provenance, as one line ("" when nothing)."""
    files = provenance["files"]
    units = sum(f["left_out"]["units_where"] for f in files)
    unnamed = sum(f["left_out"]["no_stimulus"] for f in files)
    rejected = sum(f["left_out"]["presentations_where"] for f in files)
    parts = []
    if units:
        parts.append(f"{units} of {sum(f['units'] for f in files)} units left out by dataset.units_where")
    if unnamed or rejected:
        why = [f"{unnamed} name no stimulus"] if unnamed else []
        why += [f"{rejected} rejected by dataset.presentations_where"] if rejected else []
        parts.append(f"{unnamed + rejected} of {sum(f['presentations'] for f in files)} presentations left out "
                     f"({', '.join(why)})")
    return "; ".join(parts)


def _provenance(kept: list[_Kept], sounds: dict[str, Sound], options: NWBDatasetConfig,
                digests: dict[str, str]) -> dict[str, Any]:
    files = []
    for k in kept:
        s = k.session
        files.append({
            "path": str(s.path), "sha256": digests.get(str(s.path)), "identifier": s.identifier,
            "session_description": s.description, "session_start_time": s.start_time,
            "presentation_table": s.presentations.table, "stimulus_column": s.presentations.stimulus_column,
            "units": len(s.units.ids), "units_kept": len(k.units),
            "presentations": len(s.presentations.start), "presentations_kept": len(k.rows),
            "left_out": k.left,
        })
    return {
        "format": "nwb", "files": files, "options": conversion_options(options),
        "units_left_out": sum(k.left["units_where"] for k in kept),
        "presentations_left_out": sum(k.left["no_stimulus"] + k.left["presentations_where"] for k in kept),
        "sounds": {name: {"from": s.where, "rate_hz": s.rate, "channels": s.channels, "scale": s.scale,
                          "sha256": s.sha256} for name, s in sounds.items()},
    }
