"""Reading one NWB file (pynwb) into plain arrays: its units, its stimulus presentations and their sounds.

What the NWB conversion (``nwb.py``) needs of a file, read inside one open ``NWBHDF5IO`` so that a
long played-audio series is only read where presentations cut it. Every problem is a DatasetError
naming the file and the NWB object (``/units``, ``/intervals/trials``, ``/stimulus/<name>`` ...).

* **Units** (``/units``): ids, spike times (seconds, sorted), ``obs_intervals`` when the table has
  them, and every other column that holds one scalar per unit as neuron metadata; an
  ``electrode_group`` column becomes the group's name, plus its ``location`` when the table has no
  location column.
* **Presentations**: one TimeIntervals table (``trials``, ``epochs`` or a named table under
  ``/intervals``): start and stop times, the stimulus names (a column of names or ids) and its other
  scalar columns.
* **Sounds**: per stimulus name, a ``stimulus_template`` series of that name (a core TimeSeries or
  ndx-sound's AcousticWaveformSeries: both are TimeSeries with a ``rate``), or the stretch of a
  played-audio TimeSeries under ``/stimulus`` that a presentation covers. Samples are in the
  series' units (``data * conversion + offset``), mixed to mono by the mean over channels.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from strf_runner.errors import ConfigError, DatasetError

STIMULUS_COLUMNS = ("stimulus_name", "stimulus", "stim_name", "sound_name", "sound", "stimulus_file", "stim_file",
                    "stimulus_id", "stim_id", "stim")
SKIPPED_UNIT_COLUMNS = ("spike_times", "obs_intervals", "electrodes", "waveforms", "waveform_mean", "waveform_sd")
AUDIO_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".ogg")


@dataclass
class Sound:
    """A stimulus' sound as found in a file: mono samples at ``rate`` Hz and where they came from."""

    samples: np.ndarray  # (n,) float64
    rate: float
    where: str


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
            return float(series.starting_time or 0.0) + len(series.data) / float(series.rate)
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


def _mono(data: Any, series: Any) -> np.ndarray:
    x = np.asarray(data, dtype=np.float64)
    x = x * float(getattr(series, "conversion", 1.0) or 1.0) + float(getattr(series, "offset", 0.0) or 0.0)
    return x.mean(axis=1) if x.ndim == 2 else x.reshape(-1)


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
            if series.rate is None:
                raise DatasetError(f"{path}: /stimulus_templates/{series.name} has timestamps, not a sampling rate; "
                                   "a sound needs a rate")
            return Sound(_mono(series.data[:], series), float(series.rate), f"/stimulus_templates/{series.name}"), ""
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
        covering = {n: s for n, s in played.items()
                    if getattr(s, "rate", None) and float(s.starting_time or 0.0) <= start
                    and stop <= (_series_end(s) or -math.inf) + 1.0 / float(s.rate)}
        if len(covering) > 1:
            raise DatasetError(f"{path}: several played series under /stimulus cover the presentation of {name!r} "
                               f"at {start:g} s ({sorted(covering)}); choose one with dataset.audio_series")
        if covering:
            (series_name, series), = covering.items()
            rate = float(series.rate)
            i0 = int(round((start - float(series.starting_time or 0.0)) * rate))
            n = int(round((stop - start) * rate))
            return Sound(_mono(series.data[i0:i0 + n], series), rate,
                         f"/stimulus/{series_name}[{i0}:{i0 + n}]"), ""
        looked.append(f"a TimeSeries with a rate under /stimulus covering {start:g}-{stop:g} s "
                      f"(the file has {sorted(played) or 'none'})")
    return None, "; ".join(looked)
