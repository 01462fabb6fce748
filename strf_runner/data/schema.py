"""The on-disk dataset format: one HDF5 layout that every dataset is converted to.

Layout (format ``strf-runner-dataset``, version 1)::

    /                       attrs: format, format_version, name, dt_ms, n_neurons, n_stimuli,
                                   audio_fs and hop (only with a waveform view), views,
                                   plus free-form provenance attrs (strings or numbers)
    /neurons/id             (N,) str      unique neuron ids
    /neurons/<column>       (N,)          optional per-neuron metadata (numbers or strings)
    /stimuli/<i:04d>/       one group per stimulus i = 0..S-1, attrs: name, type
        responses           (N, R, T) float32, spike counts (or rates) per bin, NaN = missing trial/bin
                            (integer counts are read too: they cannot mark missing data)
        spectrogram         (F, T) float32, the native spectrogram view        [optional]
        waveform            (T * hop,) float32, mono audio at audio_fs          [optional]
    /spectrogram_freqs      (F,) float64, centre frequency of each band in Hz  [with a spectrogram view]
    /splits/{train,val,test} int64 stimulus indices
    /truth/...              optional ground truth (synthetic data): free-form arrays

Every stimulus carries the same views. Sample j of a waveform belongs to time bin j // hop, so the
two views share one time grid and responses are stored once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from strf_runner.atomic import atomic_path
from strf_runner.errors import DatasetError

FORMAT_NAME = "strf-runner-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
VIEWS = ("spectrogram", "waveform")


@dataclass
class Stimulus:
    """One stimulus with its responses and the views of it that the dataset holds.

    responses: (N, R, T) float32, NaN where a trial or bin is missing.
    spectrogram: (F, T) float32 or None.
    waveform: (T * hop,) float32 or None.
    """

    name: str
    type: str
    responses: np.ndarray
    spectrogram: np.ndarray | None = None
    waveform: np.ndarray | None = None

    @property
    def n_bins(self) -> int:
        return int(self.responses.shape[-1])


@dataclass
class DatasetContent:
    """A whole dataset in memory, as written to or read from the HDF5 file."""

    name: str
    dt_ms: float
    neuron_ids: list[str]
    stimuli: list[Stimulus]
    splits: dict[str, list[int]]
    audio_fs: float | None = None
    spectrogram_freqs: np.ndarray | None = None
    neuron_meta: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(v for v in VIEWS if getattr(self.stimuli[0], v) is not None)

    @property
    def hop(self) -> int | None:
        return None if self.audio_fs is None else hop_samples(self.audio_fs, self.dt_ms)


def hop_samples(audio_fs: float, dt_ms: float, where: str = "dataset") -> int:
    """Audio samples per time bin; the grid lock requires audio_fs * dt_ms / 1000 to be an integer."""
    hop = audio_fs * dt_ms / 1000.0
    # a NaN/inf audio_fs or dt_ms made round() raise ValueError/OverflowError
    if not math.isfinite(hop) or hop < 1 or abs(hop - round(hop)) > 1e-9:
        raise DatasetError(
            f"{where}: audio_fs={audio_fs} Hz and dt_ms={dt_ms} give {hop} samples per bin; "
            "the grid lock needs a whole number"
        )
    return int(round(hop))


def validate_content(content: DatasetContent, where: str = "dataset") -> None:
    """Check the invariants of the format; raise DatasetError naming the first violation."""
    if not content.stimuli:
        raise DatasetError(f"{where}: holds no stimuli")
    n = len(content.neuron_ids)
    if n == 0:
        raise DatasetError(f"{where}: /neurons/id is empty")
    if len(set(content.neuron_ids)) != n:
        raise DatasetError(f"{where}: /neurons/id has duplicate ids")
    # a NaN, infinite or non-positive dt_ms (the time grid) was accepted silently
    try:
        dt_ok = np.ndim(content.dt_ms) == 0 and 0 < float(content.dt_ms) < math.inf
    except (TypeError, ValueError):
        dt_ok = False
    if not dt_ok:
        raise DatasetError(f"{where}: dt_ms={content.dt_ms!r}; expected a positive number of milliseconds")
    views = content.views
    if not views:
        raise DatasetError(f"{where}: stimulus 0 has neither a spectrogram nor a waveform view")
    hop = None
    if "waveform" in views:
        if content.audio_fs is None:
            raise DatasetError(f"{where}: has a waveform view but no audio_fs")
        hop = hop_samples(content.audio_fs, content.dt_ms, where)
    n_bands = None
    if "spectrogram" in views:
        if content.spectrogram_freqs is None:
            raise DatasetError(f"{where}: has a spectrogram view but no /spectrogram_freqs")
        # a scalar /spectrogram_freqs crashed len() with TypeError; strings, NaN or
        # inf frequencies were accepted silently
        freqs = np.asarray(content.spectrogram_freqs)
        if freqs.ndim != 1 or freqs.dtype.kind not in "iuf" or not np.isfinite(freqs).all():
            raise DatasetError(
                f"{where}: /spectrogram_freqs must be a 1-D array of finite numbers (Hz); "
                f"got dtype {freqs.dtype}, shape {freqs.shape}"
            )
        steps = np.diff(freqs)
        if (steps <= 0).any():
            k = int(np.argmax(steps <= 0))
            raise DatasetError(
                f"{where}: /spectrogram_freqs must increase strictly (band 0 the lowest); "
                f"band {k + 1} ({freqs[k + 1]:g} Hz) does not lie above band {k} ({freqs[k]:g} Hz): "
                "store the bands (and every spectrogram's rows) in ascending order"
            )
        n_bands = len(freqs)
    for i, stim in enumerate(content.stimuli):
        key = f"{where}: /stimuli/{i:04d}"
        r = stim.responses
        if r.ndim != 3 or r.shape[0] != n:
            raise DatasetError(f"{key}/responses has shape {r.shape}; expected (N={n}, R, T)")
        if r.shape[1] < 1 or r.shape[2] < 1:
            raise DatasetError(f"{key}/responses has shape {r.shape}; R and T must be >= 1")
        # non-finite values went through silently;
        # NaN is the only mask in responses, and stimuli are never NaN (collate's Batch contract)
        if np.isinf(r).any():
            raise DatasetError(f"{key}/responses holds infinite values; NaN is the only way to mark missing data")
        check_counts(r, key)
        for view in VIEWS:
            if (getattr(stim, view) is None) != (view not in views):
                raise DatasetError(f"{key} views differ from stimulus 0 (which has {list(views)})")
        if stim.spectrogram is not None:
            s = stim.spectrogram
            if s.ndim != 2 or s.shape != (n_bands, r.shape[2]):
                raise DatasetError(
                    f"{key}/spectrogram has shape {s.shape}; expected (F={n_bands}, T={r.shape[2]}) "
                    "to match /spectrogram_freqs and responses"
                )
            if not np.isfinite(s).all():
                raise DatasetError(f"{key}/spectrogram holds NaN or infinite values")
        if stim.waveform is not None:
            w = stim.waveform
            if w.ndim != 1 or w.shape[0] != r.shape[2] * hop:
                raise DatasetError(
                    f"{key}/waveform has shape {w.shape}; expected ({r.shape[2] * hop},) "
                    f"= T={r.shape[2]} bins x hop={hop}"
                )
            if not np.isfinite(w).all():
                raise DatasetError(f"{key}/waveform holds NaN or infinite values")
    for name, idx in content.splits.items():
        if name not in SPLITS:
            raise DatasetError(f"{where}: unknown split {name!r}; expected one of {SPLITS}")
        check_split(idx, len(content.stimuli), f"{where}: split {name!r}")
    for col, values in content.neuron_meta.items():
        # a scalar column crashed len() with TypeError
        if np.ndim(values) != 1 or len(values) != n:
            raise DatasetError(f"{where}: /neurons/{col} has shape {np.shape(values)}; expected ({n},), one per neuron")


MAX_RESPONSE = 1e6
"""Largest response value per bin taken as data: a neuron firing at 1 kHz has 5 spikes per 5 ms bin and
1,000 spikes/s as a rate, so anything near 1e6 is a unit or scaling error, not a count or a rate."""


def check_counts(responses: np.ndarray, where: str) -> None:
    """Responses are spike counts (or rates) per bin: never negative, never astronomically large.

    A negative value or one above MAX_RESPONSE is a DatasetError naming ``where`` and the value;
    left in, they train on impossible targets (a 1e30 overflows the loss and looks like a bad lr).
    """
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(responses, initial=0.0), np.nanmax(responses, initial=0.0)
    if low < 0:
        raise DatasetError(
            f"{where}/responses holds negative values (smallest {low:g}): responses are spike counts or "
            "rates per bin, which cannot be negative (baseline-subtracted or z-scored data are not counts)"
        )
    if high > MAX_RESPONSE:
        raise DatasetError(
            f"{where}/responses holds values up to {high:g} per bin: not spike counts or rates "
            f"(anything above {MAX_RESPONSE:g} is a scaling or unit error); rescale the responses"
        )


def check_disjoint_splits(splits: dict[str, list[int]], where: str, hint: str = "") -> None:
    """Train, val and test must not share a stimulus: a test score on a trained stimulus is a leak.
    ``hint`` ends the message (say where the splits came from)."""
    names = [n for n in SPLITS if splits.get(n) is not None]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted({int(x) for x in splits[a]} & {int(x) for x in splits[b]})
            if shared:
                raise DatasetError(
                    f"{where}: splits {a!r} and {b!r} share stimuli {shared}; a stimulus in two splits "
                    f"leaks what the model trained on into its scores: give each stimulus to one split{hint}"
                )


def check_split(indices: list[int], n_stimuli: int, where: str) -> None:
    """A split must be a non-empty list of distinct stimulus indices that exist."""
    if len(indices) == 0:
        raise DatasetError(f"{where} is empty")
    bad = [i for i in indices if not 0 <= int(i) < n_stimuli]
    if bad:
        raise DatasetError(f"{where} names stimuli {bad} but the dataset has {n_stimuli} (0..{n_stimuli - 1})")
    if len(set(int(i) for i in indices)) != len(indices):
        raise DatasetError(f"{where} lists a stimulus more than once: {list(indices)}")


def write_dataset(content: DatasetContent, path: str | os.PathLike) -> Path:
    """Validate and write ``content`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    validate_content(content, str(path))
    check_disjoint_splits(content.splits, str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write(f, content)
    return path


def _write(f: h5py.File, c: DatasetContent) -> None:
    f.attrs.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION})
    f.attrs.update({"name": c.name, "dt_ms": float(c.dt_ms), "n_neurons": len(c.neuron_ids)})
    f.attrs.update({"n_stimuli": len(c.stimuli), "views": ",".join(c.views)})
    if c.audio_fs is not None:
        f.attrs.update({"audio_fs": float(c.audio_fs), "hop": c.hop})
    for key, value in c.attrs.items():
        f.attrs[key] = value
    neurons = f.create_group("neurons")
    neurons.create_dataset("id", data=np.array(c.neuron_ids, dtype=h5py.string_dtype()))
    for col, values in c.neuron_meta.items():
        values = np.asarray(values)
        neurons.create_dataset(col, data=values.astype(h5py.string_dtype()) if values.dtype.kind in "UO" else values)
    group = f.create_group("stimuli")
    for i, stim in enumerate(c.stimuli):
        g = group.create_group(f"{i:04d}")
        g.attrs.update({"name": stim.name, "type": stim.type})
        g.create_dataset("responses", data=stim.responses.astype(np.float32), **_compressed(stim.responses))
        if stim.spectrogram is not None:
            g.create_dataset("spectrogram", data=stim.spectrogram.astype(np.float32))
        if stim.waveform is not None:
            g.create_dataset("waveform", data=stim.waveform.astype(np.float32))
    if c.spectrogram_freqs is not None:
        f.create_dataset("spectrogram_freqs", data=np.asarray(c.spectrogram_freqs, dtype=np.float64))
    splits = f.create_group("splits")
    for name, idx in c.splits.items():
        splits.create_dataset(name, data=np.asarray(idx, dtype=np.int64))
    if c.truth:
        truth = f.create_group("truth")
        for key, value in c.truth.items():
            truth.create_dataset(key, data=value, **_compressed(value))


def _compressed(array: np.ndarray) -> dict[str, Any]:
    """Responses are mostly small counts: shuffle + gzip shrinks them about tenfold, readable everywhere."""
    if np.asarray(array).size < 4096:
        return {}
    return {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def read_dataset(path: str | os.PathLike, views: tuple[str, ...] | None = None) -> DatasetContent:
    """Read and validate a dataset file.

    views: which stimulus views to load (default: all present); a requested view that the file
    lacks is an error naming the file and the views it has.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset file {path} does not exist")
    if path.is_dir():
        raise DatasetError(f"dataset file {path} is a directory; give the path of an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            content = _read(f, path, views)
    except DatasetError:
        raise
    # h5py raises RuntimeError for many kinds of damaged metadata, and int()/float()
    # of an inf attribute raises OverflowError; both escaped as foreign exceptions
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as err:
        raise DatasetError(f"{path}: cannot read as a strf-runner dataset ({type(err).__name__}: {err})") from err
    validate_content(content, str(path))
    return content


def _read(f: h5py.File, path: Path, views: tuple[str, ...] | None) -> DatasetContent:
    fmt = f.attrs.get("format")
    if fmt != FORMAT_NAME:
        raise DatasetError(f"{path}: attribute 'format' is {fmt!r}, expected {FORMAT_NAME!r}")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {version} is not supported (this version reads {FORMAT_VERSION})")
    for key in ("neurons/id", "stimuli", "splits"):
        if key not in f:
            raise DatasetError(f"{path}: missing /{key}")
    if "dt_ms" not in f.attrs:
        raise DatasetError(f"{path}: missing the root attribute dt_ms (the width of a time bin in ms)")
    # a dataset where a group belongs crashed .keys()/.items() with AttributeError
    for key in ("neurons", "stimuli", "splits", "truth"):
        if key in f and not isinstance(f[key], h5py.Group):
            raise DatasetError(f"{path}: /{key} must be a group, found a {type(f[key]).__name__}")
    have = tuple(v for v in str(f.attrs.get("views", "")).split(",") if v)
    wanted = have if views is None else tuple(views)
    missing = [v for v in wanted if v not in have]
    if missing:
        raise DatasetError(f"{path}: has no {missing[0]} view (it holds: {', '.join(have) or 'none'})")
    stimuli = []
    for i, key in enumerate(_stimulus_keys(f, path)):
        g = f["stimuli"][key]
        stimuli.append(
            Stimulus(
                name=_str(g.attrs.get("name", f"stim{i:02d}")),
                type=_str(g.attrs.get("type", "unknown")),
                responses=_array(g, "responses", path, key),
                spectrogram=_array(g, "spectrogram", path, key) if "spectrogram" in wanted else None,
                waveform=_array(g, "waveform", path, key) if "waveform" in wanted else None,
            )
        )
    neuron_ids = [_str(x) for x in f["neurons/id"][()]]
    meta = {k: _decode(v[()]) for k, v in f["neurons"].items() if k != "id"}
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
    for k in ("format", "format_version", "name", "dt_ms", "n_neurons", "n_stimuli", "views", "audio_fs", "hop"):
        attrs.pop(k, None)
    audio_fs = float(f.attrs["audio_fs"]) if "audio_fs" in f.attrs else None
    content = DatasetContent(
        name=_str(f.attrs.get("name", path.stem)),
        dt_ms=float(f.attrs["dt_ms"]),
        neuron_ids=neuron_ids,
        stimuli=stimuli,
        splits={k: [int(i) for i in v[()]] for k, v in f["splits"].items()},
        audio_fs=audio_fs,
        spectrogram_freqs=f["spectrogram_freqs"][()] if "spectrogram_freqs" in f and "spectrogram" in wanted else None,
        neuron_meta=meta,
        attrs=attrs,
        truth={k: v[()] for k, v in f["truth"].items()} if "truth" in f else {},
    )
    if int(f.attrs.get("n_stimuli", len(stimuli))) != len(stimuli):
        raise DatasetError(f"{path}: attribute n_stimuli={f.attrs['n_stimuli']} but /stimuli has {len(stimuli)} groups")
    if int(f.attrs.get("n_neurons", len(neuron_ids))) != len(neuron_ids):
        raise DatasetError(f"{path}: attribute n_neurons={f.attrs['n_neurons']} but /neurons/id holds {len(neuron_ids)} ids")
    return content


def _stimulus_keys(f: h5py.File, path: Path) -> Iterator[str]:
    keys = sorted(f["stimuli"].keys())
    expected = [f"{i:04d}" for i in range(len(keys))]
    if keys != expected:
        raise DatasetError(f"{path}: /stimuli groups must be named 0000..{len(keys) - 1:04d}; found {keys[:5]}...")
    return iter(keys)


def _array(g: h5py.Group, name: str, path: Path, key: str) -> np.ndarray:
    if name not in g:
        raise DatasetError(f"{path}: missing /stimuli/{key}/{name}")
    data = g[name][()]
    counts = name == "responses" and data.dtype.kind in "iu"  # spike counts are naturally integers
    if data.dtype.kind != "f" and not counts:
        expected = "floating point or integer counts" if name == "responses" else "floating point"
        raise DatasetError(f"{path}: /stimuli/{key}/{name} has dtype {data.dtype}; expected {expected}")
    return data.astype(np.float32, copy=False)


def _str(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _decode(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, np.ndarray) and x.dtype.kind in "SO":
        return np.array([_str(v) for v in x])
    if isinstance(x, np.generic):
        return x.item()
    return x


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(content: DatasetContent) -> str:
    """Hex SHA-256 of a dataset's content, independent of how (or whether) it was written to HDF5.

    Hashes, in a fixed order and each tagged with its key, dtype and shape: name, dt_ms, audio_fs,
    the neuron ids, every stimulus (name, type, responses, spectrogram, waveform), spectrogram_freqs,
    the splits (as int64), neuron_meta and truth (keys sorted). Provenance ``attrs`` are left out, so
    the digest names the data, not the generator's bookkeeping. Float arrays are hashed by value:
    every NaN as one canonical NaN and -0.0 as 0.0. Arrays are hashed little-endian, C order, with
    their own dtype (a float32 array and its float64 copy differ). A dataset read back from its file
    (``read_dataset``, all views) has the digest of the content that was written.
    """
    h = hashlib.sha256()

    def text(key: str, value: object) -> None:
        blob = json.dumps(value, ensure_ascii=True).encode()
        h.update(f"{key}|str|{len(blob)}\n".encode())
        h.update(blob)

    def array(key: str, value: Any) -> None:
        a = np.asarray(value)
        if a.dtype.kind in "USO":
            text(key, [_str(x) for x in a.ravel().tolist()] + [list(a.shape)])
            return
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), a.dtype.type(np.nan), a) + a.dtype.type(0.0)  # canonical NaN, -0 -> +0
        shape = a.shape
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))  # (0-d arrays come back 1-d)
        h.update(f"{key}|{a.dtype.str}|{shape}\n".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")

    h.update(f"{FORMAT_NAME} content digest 1\n".encode())
    text("name", content.name)
    text("dt_ms", float(content.dt_ms))
    text("audio_fs", None if content.audio_fs is None else float(content.audio_fs))
    text("neuron_ids", [str(x) for x in content.neuron_ids])
    for i, stim in enumerate(content.stimuli):
        text(f"stimuli/{i}/name", stim.name)
        text(f"stimuli/{i}/type", stim.type)
        array(f"stimuli/{i}/responses", stim.responses)
        for view in VIEWS:
            if getattr(stim, view) is not None:
                array(f"stimuli/{i}/{view}", getattr(stim, view))
    if content.spectrogram_freqs is not None:
        array("spectrogram_freqs", content.spectrogram_freqs)
    for name in [*[s for s in SPLITS if s in content.splits], *sorted(set(content.splits) - set(SPLITS))]:
        array(f"splits/{name}", np.asarray(content.splits[name], dtype=np.int64))
    for key in sorted(content.neuron_meta):
        array(f"neuron_meta/{key}", content.neuron_meta[key])
    for key in sorted(content.truth):
        array(f"truth/{key}", content.truth[key])
    return h.hexdigest()
