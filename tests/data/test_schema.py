"""The HDF5 dataset format: round trip, validation errors, corrupt files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from strf_runner.data.schema import DatasetContent, read_dataset, write_dataset
from strf_runner.errors import DatasetError


def test_round_trip_is_exact(tmp_path, content: DatasetContent):
    path = write_dataset(content, tmp_path / "d.h5")
    back = read_dataset(path)
    assert back.name == content.name and back.dt_ms == content.dt_ms
    assert back.neuron_ids == content.neuron_ids
    assert back.splits == content.splits
    assert back.audio_fs == content.audio_fs and back.hop == 8
    assert back.views == ("spectrogram", "waveform")
    np.testing.assert_array_equal(back.spectrogram_freqs, content.spectrogram_freqs)
    np.testing.assert_array_equal(back.neuron_meta["depth_um"], content.neuron_meta["depth_um"])
    assert list(back.neuron_meta["grade"]) == list(content.neuron_meta["grade"])
    assert back.attrs["native_source"] == "random"
    for a, b in zip(content.stimuli, back.stimuli):
        assert (a.name, a.type) == (b.name, b.type)
        for field in ("responses", "spectrogram", "waveform"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_nan_responses_survive(tmp_path, content):
    content.stimuli[0].responses[1, 2, :] = np.nan
    back = read_dataset(write_dataset(content, tmp_path / "d.h5"))
    assert np.isnan(back.stimuli[0].responses[1, 2]).all()
    assert not np.isnan(back.stimuli[0].responses[0]).any()


def test_read_one_view_only(tmp_path, content):
    path = write_dataset(content, tmp_path / "d.h5")
    back = read_dataset(path, views=("spectrogram",))
    assert back.stimuli[0].waveform is None and back.views == ("spectrogram",)


def test_missing_view_is_named(tmp_path, content):
    for s in content.stimuli:
        s.waveform = None
    path = write_dataset(content, tmp_path / "d.h5")
    with pytest.raises(DatasetError, match="has no waveform view"):
        read_dataset(path, views=("waveform",))


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope.h5")


def test_truncated_file_is_a_dataset_error(tmp_path, content):
    path = write_dataset(content, tmp_path / "d.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="d.h5"):
        read_dataset(path)


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "d.h5"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="cannot read"):
        read_dataset(path)


def test_foreign_hdf5_names_the_format(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match="attribute 'format'"):
        read_dataset(path)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda c: setattr(c.stimuli[1], "spectrogram", c.stimuli[1].spectrogram[:, :-1]), "spectrogram has shape"),
        (lambda c: setattr(c.stimuli[1], "waveform", c.stimuli[1].waveform[:-3]), "waveform has shape"),
        (lambda c: setattr(c.stimuli[2], "responses", c.stimuli[2].responses[:2]), "responses has shape"),
        (lambda c: c.splits.update(test=[7, 9]), r"names stimuli \[7, 9\]"),
        (lambda c: c.splits.update(val=[]), "'val' is empty"),
        (lambda c: setattr(c.stimuli[0], "waveform", None), "views differ"),
        (lambda c: setattr(c, "audio_fs", 1234.5), "whole number"),
        (lambda c: setattr(c, "neuron_ids", ["a"] * 4), "duplicate"),
    ],
)
def test_writer_rejects_inconsistent_content(tmp_path, content, break_it, message):
    break_it(content)
    with pytest.raises(DatasetError, match=message):
        write_dataset(content, tmp_path / "d.h5")
    assert not list(tmp_path.iterdir()), "a failed write must leave nothing behind"


def test_reader_rejects_shape_mismatch_written_by_hand(tmp_path, content):
    path = write_dataset(content, tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        del f["stimuli/0001/spectrogram"]
        f["stimuli/0001/spectrogram"] = np.zeros((6, 5), np.float32)
    with pytest.raises(DatasetError, match=r"/stimuli/0001/spectrogram has shape \(6, 5\)"):
        read_dataset(path)


def test_write_is_atomic(tmp_path, content, monkeypatch):
    path = write_dataset(content, tmp_path / "d.h5")
    before = path.read_bytes()
    import strf_runner.data.schema as schema

    def boom(f, c):
        raise RuntimeError("disk full")

    monkeypatch.setattr(schema, "_write", boom)
    with pytest.raises(RuntimeError):
        write_dataset(content, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]
