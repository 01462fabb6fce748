"""schema.content_sha256: a digest of a dataset's content, not of its HDF5 file."""

from __future__ import annotations

import copy

import numpy as np

from strf_runner.data import schema


def test_digest_survives_an_hdf5_roundtrip(content, tmp_path):
    digest = schema.content_sha256(content)
    assert len(digest) == 64 and int(digest, 16) >= 0
    back = schema.read_dataset(schema.write_dataset(content, tmp_path / "a.h5"))
    assert schema.content_sha256(back) == digest
    # a second file of the same content has other bytes on disk (HDF5 metadata) but the same digest
    schema.write_dataset(back, tmp_path / "b.h5")
    assert schema.content_sha256(schema.read_dataset(tmp_path / "b.h5")) == digest


def test_digest_sees_every_part_of_the_data(content):
    digest = schema.content_sha256(content)

    def changed(edit) -> str:
        c = copy.deepcopy(content)
        edit(c)
        return schema.content_sha256(c)

    edits = [
        lambda c: c.stimuli[1].responses.__setitem__((0, 0, 0), c.stimuli[1].responses[0, 0, 0] + 1),
        lambda c: c.stimuli[0].waveform.__setitem__(3, np.nextafter(c.stimuli[0].waveform[3], np.float32(9))),
        lambda c: c.stimuli[2].spectrogram.__setitem__((1, 1), 0.5),
        lambda c: setattr(c.stimuli[0], "name", "other"),
        lambda c: setattr(c.stimuli[0], "type", "other"),
        lambda c: c.neuron_ids.reverse(),
        lambda c: c.splits.update(val=c.splits["test"], test=c.splits["val"]),
        lambda c: setattr(c, "dt_ms", 10.0),
        lambda c: setattr(c, "spectrogram_freqs", c.spectrogram_freqs * 1.0001),
        lambda c: c.neuron_meta.update(grade=np.array(["No", "Yes"] * 2)),
        lambda c: setattr(c, "truth", {"rates": np.zeros(3, dtype=np.float32)}),
        # the dtype is part of the content: the same values in float64 are another array
        lambda c: setattr(c.stimuli[0], "waveform", c.stimuli[0].waveform.astype(np.float64)),
    ]
    digests = [changed(edit) for edit in edits]
    assert digest not in digests and len(set(digests)) == len(digests)


def test_digest_ignores_provenance_and_hashes_floats_by_value(content):
    digest = schema.content_sha256(content)
    c = copy.deepcopy(content)
    c.attrs = {"description": "another generator run", "generator_version": 99}
    assert schema.content_sha256(c) == digest
    # -0.0 is 0.0, and every NaN (any sign or payload) is one NaN
    a, b = copy.deepcopy(content), copy.deepcopy(content)
    a.stimuli[0].responses[0, 0, :2] = [0.0, np.nan]
    b.stimuli[0].responses[0, 0, :2] = [-0.0, -np.nan]
    b.stimuli[0].responses.view(np.uint32)[0, 0, 1] |= 1  # another NaN payload
    assert np.isnan(b.stimuli[0].responses[0, 0, 1])
    assert schema.content_sha256(a) == schema.content_sha256(b) != digest
