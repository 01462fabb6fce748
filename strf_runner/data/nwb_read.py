"""Reading one NWB file (pynwb) into plain arrays: its units, its stimulus presentations and their sounds.

What the NWB conversion (``nwb.py``) needs of a file, read inside one open ``NWBHDF5IO`` so that a
long played-audio series is only read where presentations cut it. Every problem is a DatasetError
naming the file and the NWB object (``/units``, ``/intervals/trials``, ``/stimulus/<name>`` ...).

* **Units** (``/units``): ids (unique: they name the neurons), spike times (seconds, sorted),
  ``obs_intervals`` when the table has them, and every other column that holds one scalar per unit as
  neuron metadata; an ``electrode_group`` column becomes the group's name, plus its ``location`` when
  the table has no location column.
* **Presentations**: one TimeIntervals table (``trials``, ``epochs`` or a named table under
  ``/intervals``): start and stop times, the stimulus names (a column of names or ids) and its other
  scalar columns.
* **Sounds**: per stimulus name, a ``stimulus_template`` series of that name (a core TimeSeries or
  ndx-sound's AcousticWaveformSeries: both are TimeSeries with a ``rate``), or the stretch of a
  played-audio TimeSeries under ``/stimulus`` that a presentation covers. Checked before the samples
  are read (``check_audio``): a rate in Hz of a sound (``AUDIO_RATE_HZ``; a rate written in kHz is
  refused), data (samples,) or (samples, channels) with time first as NWB stores it (more channels
  than samples is refused as transposed), at least one sample, and a size within the memory limit
  (``strf_runner.memory``). Integer data with the series' default ``conversion`` (1) and ``offset``
  (0) are PCM, scaled like a WAV file (soundfile's convention: int16 / 32768, uint8 (x - 128) / 128);
  other data are in the series' units (``data * conversion + offset``). NaN or infinite samples are
  refused; several channels are mixed to mono by their mean (``Sound.channels`` keeps how many).
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from strf_runner.errors import ConfigError, DatasetError
from strf_runner.memory import check_allocation

STIMULUS_COLUMNS = ("stimulus_name", "stimulus", "stim_name", "sound_name", "sound", "stimulus_file", "stim_file",
                    "stimulus_id", "stim_id", "stim")
SKIPPED_UNIT_COLUMNS = ("spike_times", "obs_intervals", "electrodes", "waveforms", "waveform_mean", "waveform_sd")
AUDIO_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".ogg")
AUDIO_RATE_HZ = (1e3, 1e7)  # from telephone-band audio to ultrasound recorders; outside it a rate is wrong
BYTES_PER_READ_SAMPLE = 24  # a sample as stored (<= 8 bytes), as float64, and scaled (float64)


@dataclass
class Sound:
    """A stimulus' sound as found in a file: mono samples at ``rate`` Hz, where they came from, how many
    channels were mixed into them, how they were scaled to floats, and a sound file's SHA-256."""

    samples: np.ndarray  # (n,) float64
    rate: float
    where: str
    channels: int
    scale: str  # e.g. "int16 PCM / 32768", "float32 * 1 + 0" (data * conversion + offset)
    sha256: str | None = None  # of a sound file; None for a series in an NWB file (its file's digest covers it)


@dataclass
class Units:
    """The units of one file. spike_times[i]: (n_i,) float64 seconds, sorted; obs_intervals[i]:
    (k, 2) seconds or None (recorded throughout); columns: name -> (N,) numbers or strings."""

    ids: list[str]
    spike_times: list[np.ndarray]
    obs_intervals: list[np.ndarray | None]
    columns: dict[str, np.ndarray]


@dataclass
class Presentations:
    """Rows of the presentation table (all of them, in file order): start, stop (P,) seconds;
    stimulus (P,) names ("" where the row names none); columns: the table's scalar columns."""

    table: str
    stimulus_column: str
    row_ids: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    stimulus: np.ndarray
    columns: dict[str, np.ndarray]


@dataclass
class Session:
    """What the conversion takes from one NWB file."""

    path: Path
    identifier: str
    description: str
    start_time: str
    units: Units
    presentations: Presentations
    time_end: float | None  # the end of the file's last time series (s); None without any
    sounds: dict[str, Sound] = field(default_factory=dict)
    looked: dict[str, str] = field(default_factory=dict)  # stimulus -> where this file had no sound for it


def check_pynwb() -> None:
    """ConfigError (one line, what to install) when pynwb is missing."""
    if importlib.util.find_spec("pynwb") is None:
        raise ConfigError('dataset=nwb needs the pynwb package: pip install "strf-runner[nwb]" (or pip install pynwb)')


def read_session(path: Path, intervals: str | None, stimulus_column: str | None, sources: tuple[str, ...],
                 audio_series: str | None) -> Session:
    """Units, presentations and the sounds of one NWB file, looked for in ``sources`` ("template",
    "played"), in that order."""
    check_pynwb()
    from pynwb import NWBHDF5IO

    if not path.is_file():
        raise DatasetError(f"{path}: no such NWB file")

    def unreadable(err: Exception) -> DatasetError:
        return DatasetError(f"{path}: pynwb cannot read it as an NWB file ({type(err).__name__}: {_first_line(err)})")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # namespace-version chatter of files written by other pynwb versions
        try:
            io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        except Exception as err:  # noqa: BLE001 - h5py, hdmf and pynwb raise many kinds; all mean "not readable"
            raise unreadable(err) from err
    with io:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                nwb = io.read()
            except Exception as err:  # noqa: BLE001
                raise unreadable(err) from err
        units = _units(nwb, path)
        presentations = _presentations(nwb, path, intervals, stimulus_column)
        session = Session(path, str(nwb.identifier), str(nwb.session_description or ""),
                          nwb.session_start_time.isoformat() if nwb.session_start_time else "",
                          units, presentations, _time_end(nwb))
        names = sorted({str(s) for s in presentations.stimulus if s})
        for name in names:
            sound, looked = _find_sound(nwb, path, name, presentations, sources, audio_series)
            if sound is None:
                session.looked[name] = looked
            else:
                session.sounds[name] = sound
    return session


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _scalar_column(values: Any) -> np.ndarray | None:
    """A column's values as a 1-D array of numbers or strings; None if they are not one scalar per row."""
    try:
        items = list(values)
    except TypeError:
        return None
    if all(isinstance(v, (bytes, str)) for v in items):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in items], dtype=str)
    if all(isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)) for v in items):
        return np.asarray(items, dtype=np.float64)
    return None


def _units(nwb: Any, path: Path) -> Units:
    table = nwb.units
    if table is None:
        raise DatasetError(f"{path}: no Units table (/units); strf-runner needs the units' spike times")
    if "spike_times" not in table.colnames:
        raise DatasetError(f"{path}: /units has no spike_times column (it has {list(table.colnames)})")
    ids = [str(i) for i in table.id[:]]
    if not ids:
        raise DatasetError(f"{path}: /units holds no units")
    repeated = [(unit, n) for unit, n in Counter(ids).items() if n > 1]
    if repeated:
        unit, n = repeated[0]
        raise DatasetError(f"{path}: /units has {n} units with the id {unit}; unit ids name the neurons and must be "
                           "unique")
    spikes = []
    for i, unit in enumerate(ids):
        t = np.asarray(table["spike_times"][i], dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise DatasetError(f"{path}: /units unit {unit} has non-finite spike times")
        spikes.append(np.sort(t))
    observed: list[np.ndarray | None] = [None] * len(ids)
    if "obs_intervals" in table.colnames:
        observed = [np.asarray(table["obs_intervals"][i], dtype=np.float64).reshape(-1, 2) for i in range(len(ids))]
    columns: dict[str, np.ndarray] = {}
    for name in table.colnames:
        if name in SKIPPED_UNIT_COLUMNS:
            continue
        values = table[name][:]
        if name == "electrode_group":
            columns[name] = np.array([g.name for g in values], dtype=str)
            if "location" not in table.colnames:
                columns["location"] = np.array([str(g.location) for g in values], dtype=str)
            continue
        column = _scalar_column(values)
        if column is not None and len(column) == len(ids):
            columns[name] = column
    return Units(ids, spikes, observed, columns)


def interval_tables(nwb: Any) -> dict[str, Any]:
    """Every TimeIntervals table of a file by name: trials, epochs, then those under /intervals."""
    tables = {"trials": nwb.trials, "epochs": nwb.epochs}
    tables.update(dict(nwb.intervals or {}))
    return {name: t for name, t in tables.items() if t is not None and name != "invalid_times"}


def _presentations(nwb: Any, path: Path, intervals: str | None, stimulus_column: str | None) -> Presentations:
    tables = interval_tables(nwb)
    if intervals is not None:
        if intervals not in tables:
            raise DatasetError(f"{path}: no TimeIntervals table {intervals!r} (dataset.intervals); it has "
                               f"{sorted(tables) or 'none'}")
        candidates = {intervals: tables[intervals]}
    else:
        candidates = tables
    if not candidates:
        raise DatasetError(f"{path}: no presentation table (no trials, epochs or TimeIntervals under /intervals); "
                           "strf-runner needs one with the start, stop and stimulus of every presentation")
    for name, table in candidates.items():
        wanted = [stimulus_column] if stimulus_column is not None else list(STIMULUS_COLUMNS)
        column = next((c for c in wanted if c in table.colnames), None)
        if column is not None:
            return _read_table(name, table, column, path)
    listing = "; ".join(f"{n}: {list(t.colnames)}" for n, t in candidates.items())
    what = f"a column {stimulus_column!r} (dataset.stimulus_column)" if stimulus_column else \
        f"a stimulus column (looked for {list(STIMULUS_COLUMNS)}; set dataset.stimulus_column)"
    raise DatasetError(f"{path}: no presentation table has {what}; the tables' columns are {listing}")


def _read_table(name: str, table: Any, column: str, path: Path) -> Presentations:
    start = np.asarray(table["start_time"][:], dtype=np.float64)
    stop = np.asarray(table["stop_time"][:], dtype=np.float64)
    raw = list(table[column][:])
    names = []
    for value in raw:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            names.append("")
        elif isinstance(value, bytes):
            names.append(value.decode())
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            names.append(str(int(value)))
        elif hasattr(value, "name") and not isinstance(value, str):  # a reference to a TimeSeries
            names.append(str(value.name))
        else:
            names.append(str(value).strip())
    columns = {}
    for c in table.colnames:
        if c in ("start_time", "stop_time", column):
            continue
        values = _scalar_column(table[c][:])
        if values is not None and len(values) == len(start):
            columns[c] = values
    bad = np.flatnonzero(~np.isfinite(start) | ~np.isfinite(stop) | (stop <= start))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"{path}: /intervals/{name} row {table.id[i]} has start {start[i]} s and stop {stop[i]} s; "
                           "every presentation needs finite times with stop > start")
    return Presentations(name, column, np.asarray(table.id[:]), start, stop, np.array(names, dtype=str), columns)


def _series_end(series: Any) -> float | None:
    try:
        if series.rate is not None:
            rate = float(series.rate)
            return float(series.starting_time or 0.0) + len(series.data) / rate if 0 < rate < math.inf else None
        if series.timestamps is not None and len(series.timestamps):
            return float(series.timestamps[-1])
    except (TypeError, AttributeError):
        return None
    return None


def _time_end(nwb: Any) -> float | None:
    """The end (s) of the last TimeSeries under /acquisition or /stimulus: the recording's extent."""
    ends = [_series_end(s) for group in (nwb.acquisition, nwb.stimulus) for s in (group or {}).values()]
    ends = [e for e in ends if e is not None]
    return max(ends) if ends else None


def check_audio(where: str, rate: float, shape: tuple[int, ...]) -> int:
    """The channels of sound data of ``shape`` at ``rate`` Hz, checked before they are read: a finite
    rate in ``AUDIO_RATE_HZ``; (samples,) or (samples, channels), time first as NWB stores it, so more
    channels than samples is taken for transposed data; at least one sample. One-line DatasetError
    naming ``where`` (the file and the series) otherwise."""
    rate = float(rate)
    low, high = AUDIO_RATE_HZ
    if not 0 < rate < math.inf:
        raise DatasetError(f"{where}: sampling rate {rate!r} Hz; a sound needs a finite rate above 0")
    if not low <= rate <= high:
        hint = f"; {rate:g} looks like kHz: write {rate * 1000:g}" if low <= rate * 1000 <= high else ""
        raise DatasetError(f"{where}: sampling rate {rate:g} Hz is not a sound's ({low / 1e3:g} kHz to "
                           f"{high / 1e6:g} MHz; NWB rates are in Hz{hint})")
    if len(shape) not in (1, 2):
        raise DatasetError(f"{where}: data of shape {tuple(shape)}; a sound is (samples,) or (samples, channels)")
    if len(shape) == 2 and shape[1] > shape[0]:
        raise DatasetError(f"{where}: data of shape {tuple(shape)}: NWB stores time first, so that is {shape[0]} "
                           f"samples of {shape[1]} channels; store the sound as (samples, channels), e.g. data.T")
    if shape[0] == 0 or (len(shape) == 2 and shape[1] == 0):
        raise DatasetError(f"{where}: holds no samples (data of shape {tuple(shape)})")
    return 1 if len(shape) == 1 else int(shape[1])


def _read_sound(series: Any, i0: int, i1: int, channels: int, where: str) -> Sound:
    """Samples ``i0:i1`` of a series that ``check_audio`` passed, as a mono Sound (see the module
    docstring for the scaling); refused before reading when they would exceed the memory limit."""
    if i1 <= i0:
        raise DatasetError(f"{where}: holds no samples")
    check_allocation((i1 - i0) * channels * BYTES_PER_READ_SAMPLE, f"{where} ({i1 - i0} samples x {channels} channels)")
    x = np.asarray(series.data[i0:i1])
    if x.dtype.kind not in "iuf":
        raise DatasetError(f"{where}: holds {x.dtype} data, not sound samples")
    conversion = float(getattr(series, "conversion", 1.0) or 1.0)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    if x.dtype.kind in "iu" and conversion == 1.0 and offset == 0.0:
        full = 2.0 ** (8 * x.dtype.itemsize - 1)
        centre = full if x.dtype.kind == "u" else 0.0
        y = (x.astype(np.float64) - centre) / full
        scale = f"{x.dtype} PCM (x - {centre:g}) / {full:g}" if centre else f"{x.dtype} PCM / {full:g}"
    else:
        y = x.astype(np.float64) * conversion + offset
        scale = f"{x.dtype} * {conversion:g} + {offset:g}"
    if not np.isfinite(y).all():
        raise DatasetError(f"{where}: holds NaN or infinite samples")
    return Sound(y.mean(axis=1) if y.ndim == 2 else y, float(series.rate), where, channels, scale)


def _template(nwb: Any, name: str) -> Any:
    templates = dict(nwb.stimulus_template or {})
    if name in templates:
        return templates[name]
    stem = Path(name).stem if Path(name).suffix.lower() in AUDIO_EXTENSIONS else None
    return templates.get(stem) if stem else None


def _find_sound(nwb: Any, path: Path, name: str, presentations: Presentations, sources: tuple[str, ...],
                audio_series: str | None) -> tuple[Sound | None, str]:
    """The sound of stimulus ``name`` in this file, or None and where it looked."""
    looked = []
    if "template" in sources:
        series = _template(nwb, name)
        if series is not None:
            where = f"{path}: /stimulus_templates/{series.name}"
            if series.rate is None:
                raise DatasetError(f"{where} has timestamps, not a sampling rate; a sound needs a rate")
            shape = np.shape(series.data)
            channels = check_audio(where, series.rate, shape)
            return _read_sound(series, 0, shape[0], channels, where), ""
        looked.append(f"/stimulus_templates/{name} (the file has {sorted(dict(nwb.stimulus_template or {})) or 'none'})")
    if "played" in sources:
        first = int(np.flatnonzero(presentations.stimulus == name)[0])
        start, stop = presentations.start[first], presentations.stop[first]
        played = dict(nwb.stimulus or {})
        if audio_series is not None:
            if audio_series not in played:
                raise DatasetError(f"{path}: no TimeSeries {audio_series!r} under /stimulus (dataset.audio_series); "
                                   f"it has {sorted(played) or 'none'}")
            played = {audio_series: played[audio_series]}
            if getattr(played[audio_series], "rate", None) is not None:
                check_audio(f"{path}: /stimulus/{audio_series}", played[audio_series].rate,
                            np.shape(played[audio_series].data))
        covering = {n: s for n, s in played.items()
                    if getattr(s, "rate", None) and float(s.starting_time or 0.0) <= start
                    and stop <= (_series_end(s) or -math.inf) + 1.0 / float(s.rate)}
        if len(covering) > 1:
            raise DatasetError(f"{path}: several played series under /stimulus cover the presentation of {name!r} "
                               f"at {start:g} s ({sorted(covering)}); choose one with dataset.audio_series")
        if covering:
            (series_name, series), = covering.items()
            channels = check_audio(f"{path}: /stimulus/{series_name}", series.rate, np.shape(series.data))
            rate = float(series.rate)
            i0 = int(round((start - float(series.starting_time or 0.0)) * rate))
            i1 = min(i0 + int(round((stop - start) * rate)), len(series.data))
            return _read_sound(series, i0, i1, channels, f"{path}: /stimulus/{series_name}[{i0}:{i1}]"), ""
        looked.append(f"a TimeSeries with a rate under /stimulus covering {start:g}-{stop:g} s "
                      f"(the file has {sorted(played) or 'none'})")
    return None, "; ".join(looked)
