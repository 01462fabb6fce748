"""Property-based (hypothesis) fuzzing of the dataset file format (strf_runner/data/schema.py).

(a) Random valid contents round-trip exactly through write_dataset / read_dataset.
(b) Random corruptions of a valid file (h5py edits, truncation, overwritten bytes) make read_dataset
    either succeed with content that passes the format's checks, or raise one of the project's own
    errors (StrfRunnerError) whose message names the file; never anything else.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import tempfile
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from strf_runner.data.schema import VIEWS, DatasetContent, Stimulus, read_dataset, write_dataset
from strf_runner.errors import StrfRunnerError

_fuzz = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RESERVED = {"format", "format_version", "name", "dt_ms", "n_neurons", "n_stimuli", "views", "audio_fs", "hop"}
# HDF5 strings cannot hold NUL, and lone surrogates are not UTF-8: neither can be written by anyone
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@st.composite
def contents(draw, max_stimuli: int = 4) -> DatasetContent:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_stimuli = draw(st.integers(1, max_stimuli))
    n_neurons = draw(st.integers(1, 4))
    n_bands = draw(st.integers(1, 5))
    views = draw(st.sampled_from([("spectrogram",), ("waveform",), VIEWS]))
    dt_ms = draw(st.sampled_from([0.5, 1.0, 2.5, 5.0, 10.0]))
    hop = draw(st.integers(1, 6))
    nan_frac = draw(st.sampled_from([0.0, 0.2, 1.0]))
    stimuli = []
    for _ in range(n_stimuli):
        R, T = draw(st.integers(1, 4)), draw(st.integers(1, 30))
        resp = rng.poisson(1.5, size=(n_neurons, R, T)).astype(np.float32)
        resp[rng.random(resp.shape) < nan_frac] = np.nan
        stimuli.append(
            Stimulus(
                name=draw(_text),
                type=draw(_text),
                responses=resp,
                spectrogram=rng.normal(size=(n_bands, T)).astype(np.float32) if "spectrogram" in views else None,
                waveform=rng.normal(size=T * hop).astype(np.float32) if "waveform" in views else None,
            )
        )
    order = [int(i) for i in rng.permutation(n_stimuli)]
    cuts = sorted(draw(st.lists(st.integers(0, n_stimuli), min_size=2, max_size=2)))
    parts = {"train": order[: cuts[0]], "val": order[cuts[0] : cuts[1]], "test": order[cuts[1] :]}
    meta = {}
    for col in draw(st.lists(st.sampled_from(["depth", "rate", "grade"]), unique=True, max_size=3)):
        if col == "depth":
            meta[col] = rng.integers(-5, 1000, size=n_neurons)
        elif col == "rate":
            meta[col] = np.where(rng.random(n_neurons) < 0.3, np.nan, rng.normal(size=n_neurons))
        else:
            meta[col] = np.array(draw(st.lists(_text, min_size=n_neurons, max_size=n_neurons)))
    attr_keys = draw(st.lists(st.text("abcdefgh_", min_size=1, max_size=6), unique=True, max_size=3))
    attrs = {k: draw(st.one_of(_text, st.integers(-(2**40), 2**40), st.floats(allow_nan=False))) for k in attr_keys}
    attrs = {k: v for k, v in attrs.items() if k not in RESERVED}
    truth = {"kernel": rng.normal(size=(n_neurons, 3, 2))} if draw(st.booleans()) else {}
    return DatasetContent(
        name=draw(_text),
        dt_ms=dt_ms,
        neuron_ids=draw(st.lists(_text, min_size=n_neurons, max_size=n_neurons, unique=True)),
        stimuli=stimuli,
        splits={k: v for k, v in parts.items() if v},
        audio_fs=hop * 1000.0 / dt_ms if "waveform" in views else None,
        spectrogram_freqs=np.geomspace(500, 8000, n_bands) if "spectrogram" in views else None,
        neuron_meta=meta,
        attrs=attrs,
        truth=truth,
    )


def assert_same_content(a: DatasetContent, b: DatasetContent) -> None:
    assert (b.name, b.dt_ms, b.audio_fs, b.hop, b.views) == (a.name, a.dt_ms, a.audio_fs, a.hop, a.views)
    assert b.neuron_ids == a.neuron_ids
    assert b.splits == a.splits
    assert b.attrs == a.attrs
    if a.spectrogram_freqs is None:
        assert b.spectrogram_freqs is None
    else:
        np.testing.assert_array_equal(b.spectrogram_freqs, a.spectrogram_freqs)
    assert set(b.neuron_meta) == set(a.neuron_meta)
    for col, values in a.neuron_meta.items():
        got = b.neuron_meta[col]
        if values.dtype.kind == "U":
            assert list(got) == list(values), col
        else:
            assert got.dtype == values.dtype, col
            np.testing.assert_array_equal(got, values)
    assert set(b.truth) == set(a.truth)
    for key, value in a.truth.items():
        np.testing.assert_array_equal(b.truth[key], value)
    assert len(b.stimuli) == len(a.stimuli)
    for sa, sb in zip(a.stimuli, b.stimuli):
        assert (sb.name, sb.type) == (sa.name, sa.type)
        for field in ("responses", "spectrogram", "waveform"):
            x, y = getattr(sa, field), getattr(sb, field)
            if x is None:
                assert y is None, field
            else:
                assert y.dtype == np.float32 and y.shape == x.shape, field
                np.testing.assert_array_equal(y, x)  # NaN == NaN here


@_fuzz
@given(contents())
def test_fuzz_valid_contents_round_trip_exactly(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_dataset(content, Path(tmp) / "d.h5")
        assert_same_content(content, read_dataset(path))
        for view in content.views:  # one view at a time: the other is left out, the rest identical
            one = read_dataset(path, views=(view,))
            assert one.views == (view,)
            for sa, sb in zip(content.stimuli, one.stimuli):
                np.testing.assert_array_equal(sb.responses, sa.responses)
                np.testing.assert_array_equal(getattr(sb, view), getattr(sa, view))


# --------------------------------------------------------------------------------------------
# Corruptions
# --------------------------------------------------------------------------------------------

_ROOT_ATTRS = sorted(RESERVED)
_WEIRD_VALUES = [
    "abc",
    "",
    "spectrogram,waveform,bogus",
    np.nan,
    np.inf,
    -np.inf,
    -1.0,
    0.0,
    0,
    2,
    1e308,
    2**62,
    np.array([1.0, 2.0]),
    np.zeros((2, 2)),
    np.array([], dtype=np.float64),
    b"\xff\xfe",
    np.bool_(True),
    h5py.Empty("f8"),
]


def _objects(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return sorted(names)


def _datasets(f: h5py.File) -> list[str]:
    return [n for n in _objects(f) if isinstance(f[n], h5py.Dataset)]


def _replace(f: h5py.File, name: str, data) -> None:
    del f[name]
    f[name] = data


@st.composite
def corruptions(draw):
    """A list of (kind, parameters) edits; the parameters are drawn now and applied to any file."""
    kinds = st.sampled_from(
        [
            "delete_object",
            "delete_attr",
            "weird_attr",
            "stim_attr",
            "dtype",
            "shape",
            "nonfinite",
            "splits",
            "group_for_dataset",
            "rename_stimulus",
            "truncate",
            "bytes",
        ]
    )
    return [
        (draw(kinds), draw(st.integers(0, 2**32 - 1)))
        for _ in range(draw(st.integers(1, 3)))
    ]


def _apply(path: Path, kind: str, seed: int) -> None:
    """Damage the file at ``path`` in the way ``kind`` names, the details drawn from ``seed``."""
    rng = np.random.default_rng(seed)

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    if kind in ("truncate", "bytes"):
        data = bytearray(path.read_bytes())
        if kind == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for _ in range(int(rng.integers(1, 20))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
        path.write_bytes(bytes(data))
        return
    with h5py.File(path, "r+") as f:
        objects, datasets = _objects(f), _datasets(f)
        if kind == "delete_object" and objects:
            name = pick(objects)
            if name in f:
                del f[name]
        elif kind == "delete_attr":
            key = pick(_ROOT_ATTRS)
            if key in f.attrs:
                del f.attrs[key]
        elif kind == "weird_attr":
            f.attrs[pick(_ROOT_ATTRS)] = pick(_WEIRD_VALUES)
        elif kind == "stim_attr":
            groups = [n for n in objects if isinstance(f[n], h5py.Group) and n.startswith("stimuli/")]
            if groups:
                f[pick(groups)].attrs[pick(["name", "type"])] = pick(_WEIRD_VALUES)
        elif kind == "dtype" and datasets:
            name = pick(datasets)
            data = f[name][()]
            to = pick(["int32", "float16", "complex64", "bool", "str", "compound", "uint8"])
            if to == "str":
                arr = np.asarray(data)
                new = np.array([repr(x) for x in arr.reshape(-1)], dtype=h5py.string_dtype()).reshape(arr.shape)
            elif to == "compound":
                flat = np.asarray(data).reshape(-1)
                new = np.zeros(flat.shape, dtype=[("a", "f4"), ("b", "i4")])
            else:
                new = np.nan_to_num(np.asarray(data).astype(float) if np.asarray(data).dtype.kind in "fiub" else 0.0)
                new = np.asarray(new).astype(to)
            _replace(f, name, new)
        elif kind == "shape" and datasets:
            name = pick(datasets)
            data = np.asarray(f[name][()])
            how = pick(["scalar", "empty", "extra_dim", "drop_dim", "shorter", "longer", "transpose"])
            if how == "scalar":
                new = data.reshape(-1)[0] if data.size else np.float32(1)
            elif how == "empty":
                new = data.reshape(-1)[:0]
            elif how == "extra_dim":
                new = data[None]
            elif how == "drop_dim":
                new = data.reshape(-1)
            elif how == "transpose":
                new = data.T
            else:
                if data.ndim == 0:
                    return
                axis = int(rng.integers(data.ndim))
                if how == "shorter":
                    new = np.take(data, range(max(data.shape[axis] - 1, 0)), axis=axis)
                else:
                    new = np.concatenate([data, np.take(data, [0] if data.shape[axis] else [], axis=axis)], axis=axis)
                    if not new.size:
                        return
            _replace(f, name, new)
        elif kind == "nonfinite":
            targets = [n for n in datasets if n.rsplit("/", 1)[-1] in ("spectrogram", "waveform", "responses")]
            targets += [n for n in datasets if n == "spectrogram_freqs"]
            if targets:
                name = pick(targets)
                data = np.array(f[name][()])
                if data.size and data.dtype.kind == "f":
                    data.reshape(-1)[int(rng.integers(data.size))] = pick([np.nan, np.inf, -np.inf])
                    f[name][...] = data
        elif kind == "splits":
            targets = [n for n in datasets if n.startswith("splits/")]
            if targets:
                _replace(f, pick(targets), pick([np.array([0, 0]), np.array([-1]), np.array([99]), np.array([0.5]),
                                                  np.array([], dtype=np.int64), np.array([2**40])]))
        elif kind == "group_for_dataset" and objects:
            name = pick(objects)
            if name in f:
                is_group = isinstance(f[name], h5py.Group)
                del f[name]
                if is_group:
                    f[name] = np.arange(3.0)
                else:
                    f.create_group(name)
        elif kind == "rename_stimulus" and isinstance(f.get("stimuli"), h5py.Group) and len(f["stimuli"]):
            old = pick(sorted(f["stimuli"].keys()))
            new = pick(["0099", "x", "00", "0000", "1", "9999"])
            if new not in f["stimuli"]:
                f["stimuli"].move(old, new)


def _check_read(path: Path, views) -> None:
    """read_dataset either raises a StrfRunnerError naming the file, or returns content that holds
    what the format promises."""
    try:
        got = read_dataset(path, views=views)
    except StrfRunnerError as err:
        assert str(path) in str(err), f"error does not name the file: {err}"
        return
    for stim in got.stimuli:
        for view in ("spectrogram", "waveform"):
            x = getattr(stim, view)
            assert x is None or np.isfinite(x).all(), f"accepted a non-finite {view}"
        assert not np.isinf(stim.responses).any(), "accepted infinite responses (NaN is the only mask)"
    assert np.isfinite(got.dt_ms) and got.dt_ms > 0, f"accepted dt_ms={got.dt_ms}"
    if got.spectrogram_freqs is not None:
        assert np.isfinite(got.spectrogram_freqs).all(), "accepted non-finite spectrogram_freqs"


def _child(conn, path: Path, views) -> None:
    faulthandler.disable()  # a libhdf5 crash here is expected and reported by the parent
    try:
        _check_read(path, views)
        conn.send(None)
    except BaseException:  # noqa: BLE001 - report anything to the parent
        conn.send(traceback.format_exc())
    finally:
        conn.close()


def _check_read_isolated(path: Path, views, timeout_s: float = 15.0) -> str | None:
    """_check_read in a forked child. Byte-level damage to HDF5 metadata can crash (SIGSEGV) or hang
    libhdf5 itself, below anything Python can catch; those outcomes are returned as a description
    (the caller decides whether they are acceptable). Python-level failures are re-raised here."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, path, views), daemon=True)
    proc.start()
    child.close()
    ready = parent.poll(timeout_s)
    try:
        report = parent.recv() if ready else None
    except EOFError:  # the child died before reporting
        ready = False
    proc.join(1.0 if ready else 0.5)
    hung = proc.is_alive()
    if hung:
        proc.kill()  # our own child, by its handle
        proc.join()
    if ready:
        assert report is None, f"read_dataset failed the property:\n{report}"
        return None
    if hung:
        return f"libhdf5 hung (> {timeout_s} s)"
    assert proc.exitcode < 0, f"the child exited with {proc.exitcode} without reporting"
    return f"libhdf5 crashed (signal {-proc.exitcode})"


@_fuzz
@given(contents(max_stimuli=3), corruptions(), st.sampled_from([None, ("spectrogram",), ("waveform",), VIEWS]))
def test_fuzz_corrupt_files_raise_only_project_errors(content, edits, views):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_dataset(content, Path(tmp) / "d.h5")
        # h5py edits first, then byte-level damage (h5py cannot edit a file whose bytes are damaged)
        for kind, seed in sorted(edits, key=lambda e: e[0] in ("truncate", "bytes")):
            _apply(path, kind, seed)
        if not any(kind == "bytes" for kind, _ in edits):
            _check_read(path, views)
            return
        crash = _check_read_isolated(path, views)
        event(f"overwritten bytes: {crash or 'handled in Python'}")


@pytest.mark.parametrize("kind", ["truncate", "bytes"])
def test_byte_level_damage_many_seeds(tmp_path, content, kind):
    """Byte-level damage is where a reader most often escapes with a foreign exception: many seeds
    (cheap, so more than hypothesis' budget above), on the shared fixture's two-view dataset."""
    clean = write_dataset(content, tmp_path / "clean.h5").read_bytes()
    path = tmp_path / "d.h5"
    crashes = []
    for seed in range(60):
        path.write_bytes(clean)
        _apply(path, kind, seed)
        if kind == "truncate":
            _check_read(path, None)
        else:
            crash = _check_read_isolated(path, None)
            if crash:
                crashes.append((seed, crash))
    # libhdf5 (not strf-runner) dies on a few damaged metadata bytes; more than a few would mean
    # the reader itself walks into it
    assert len(crashes) <= 6, crashes
