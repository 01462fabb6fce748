"""Serving a dataset file as tensors: both views, splits, collate, the device loader."""

from __future__ import annotations

import math

import pytest
import torch

from strf_runner.data.collate import DeviceLoader, collate
from strf_runner.data.dataset import NeuralDataset, split_datasets
from strf_runner.data.schema import read_dataset, write_dataset
from strf_runner.errors import DatasetError


def test_views_serve_bit_identical_responses(tmp_path, content):
    back = read_dataset(write_dataset(content, tmp_path / "d.h5"))
    spec = NeuralDataset(back, "spectrogram")
    wave = NeuralDataset(back, "waveform")
    for a, b in zip(spec, wave):
        assert torch.equal(a.responses, b.responses)
        assert a.stim.shape == (1, 6, a.responses.shape[-1])
        assert b.stim.shape == (1, a.responses.shape[-1] * 8)
    assert spec.n_bands == 6 and wave.n_bands is None


def test_split_datasets_follow_file_and_overrides(content):
    sets = split_datasets(content, "spectrogram")
    assert [len(sets[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    sets = split_datasets(content, "spectrogram", {"train": [0, 1], "val": [2], "test": None})
    assert sets["train"].indices == [0, 1] and sets["test"].indices == [4]


def test_split_naming_missing_stimuli(content):
    with pytest.raises(DatasetError, match=r"split 'val' names stimuli \[12\]"):
        split_datasets(content, "spectrogram", {"val": [12]})


def test_unknown_view(content):
    with pytest.raises(DatasetError, match="unknown view"):
        NeuralDataset(content, "cochleagram")


def test_collate_pads_stimuli_with_zero_and_responses_with_nan(content):
    content.stimuli[1].responses = content.stimuli[1].responses[:, :2]  # fewer repeats
    ds = NeuralDataset(content, "waveform")
    items = [ds[0], ds[1], ds[3]]
    batch = collate(items)
    t_max = max(it.responses.shape[-1] for it in items)
    assert batch["stims"].shape == (3, 1, t_max * 8)
    assert batch["responses"].shape == (3, 4, 3, t_max)
    assert batch["valid_mask"].dtype == torch.bool
    assert torch.equal(batch["valid_mask"], ~torch.isnan(batch["responses"]))
    assert not torch.isnan(batch["stims"]).any()
    for b, it in enumerate(items):
        n, r, t = it.responses.shape
        assert torch.equal(batch["responses"][b, :, :r, :t], it.responses)
        assert torch.isnan(batch["responses"][b, :, r:, :]).all()
        assert torch.isnan(batch["responses"][b, :, :, t:]).all()
        assert torch.equal(batch["stims"][b, :, : it.stim.shape[-1]], it.stim)
        assert (batch["stims"][b, :, it.stim.shape[-1] :] == 0).all()
    assert [m["index"] for m in batch["stim_metas"]] == [0, 1, 3]


def test_collate_single_item_is_unpadded(content):
    item = NeuralDataset(content, "spectrogram")[2]
    batch = collate([item])
    assert torch.equal(batch["stims"][0], item.stim)
    assert torch.equal(batch["responses"][0], item.responses)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_device_loader_covers_every_item_once_per_epoch(content, batch_size):
    ds = NeuralDataset(content, "spectrogram")
    loader = DeviceLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert len(loader) == math.ceil(len(ds) / batch_size)
    seen = [m["index"] for batch in loader for m in batch["stim_metas"]]
    assert sorted(seen) == list(range(len(ds)))


def test_device_loader_order_is_seeded(content):
    ds = NeuralDataset(content, "spectrogram")

    def order(seed):
        loader = DeviceLoader(ds, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [[b["stim_metas"][0]["index"] for b in loader] for _ in range(3)]

    assert order(3) == order(3)
    assert order(3) != order(4)
    unshuffled = DeviceLoader(ds)
    assert [b["stim_metas"][0]["index"] for b in unshuffled] == list(range(len(ds)))
