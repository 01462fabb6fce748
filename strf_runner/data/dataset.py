"""A dataset file served as torch tensors, in either view, with bit-identical responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from strf_runner.data.schema import VIEWS, DatasetContent, check_disjoint_splits, check_split
from strf_runner.errors import DatasetError


@dataclass
class Item:
    """One stimulus and its responses.

    stim: (1, F, T) for the spectrogram view, (1, T * hop) for the waveform view.
    responses: (N, R, T) float32, NaN where missing.
    psth: (N, 1, T) float32, the NaN-ignoring mean over repeats (NaN where no repeat is valid),
        computed once because every training step's loss needs it.
    meta: index, name and type of the stimulus.
    features: what a model's fixed front-end stage makes of ``stim``, (F', T), when a loader computed it
        once for the whole fit (``DeviceLoader(features=...)``); None otherwise.
    """

    stim: torch.Tensor
    responses: torch.Tensor
    psth: torch.Tensor
    meta: dict[str, Any]
    features: torch.Tensor | None = None


class NeuralDataset(torch.utils.data.Dataset):
    """The stimuli of one split of a dataset, in one view, held in memory as tensors.

    Both views are built from the same response arrays, so a spectrogram-view and a waveform-view
    dataset of one file yield bit-identical responses.
    """

    def __init__(self, content: DatasetContent, view: str, indices: Sequence[int] | None = None) -> None:
        if view not in VIEWS:
            raise DatasetError(f"unknown view {view!r}; expected one of {VIEWS}")
        if view not in content.views:
            raise DatasetError(
                f"dataset {content.name!r} has no {view} view (it holds: {', '.join(content.views)})"
            )
        indices = list(range(len(content.stimuli))) if indices is None else [int(i) for i in indices]
        check_split(indices, len(content.stimuli), f"dataset {content.name!r} selection")
        self.view = view
        self.indices = indices
        self.neuron_ids = list(content.neuron_ids)
        self.dt_ms = content.dt_ms
        self.audio_fs = content.audio_fs
        self.hop = content.hop
        self.spectrogram_freqs = content.spectrogram_freqs
        self.items = [self._item(content, i) for i in indices]

    def _item(self, content: DatasetContent, i: int) -> Item:
        s = content.stimuli[i]
        array = s.spectrogram if self.view == "spectrogram" else s.waveform
        responses = torch.from_numpy(s.responses)
        return Item(
            stim=torch.from_numpy(np.ascontiguousarray(array))[None],
            responses=responses,
            psth=torch.nanmean(responses, dim=1, keepdim=True),
            meta={"index": i, "name": s.name, "type": s.type},
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> Item:
        return self.items[k]

    @property
    def n_neurons(self) -> int:
        return len(self.neuron_ids)

    @property
    def n_bands(self) -> int | None:
        """F of the spectrogram view (None for the waveform view)."""
        return int(self.items[0].stim.shape[1]) if self.view == "spectrogram" else None


def split_datasets(
    content: DatasetContent, view: str, splits: dict[str, Sequence[int]] | None = None, origin: str = ""
) -> dict[str, NeuralDataset]:
    """Build train / val / test datasets; ``splits`` overrides the file's own split indices.

    The splits in effect (the file's, with any overrides) must be disjoint: DatasetError naming the
    shared stimuli otherwise, ending with ``origin`` (where the splits came from).
    """
    chosen = dict(content.splits)
    chosen.update({k: list(v) for k, v in (splits or {}).items() if v is not None})
    for name in ("train", "val", "test"):
        if name not in chosen:
            raise DatasetError(f"dataset {content.name!r} defines no {name!r} split")
        check_split(chosen[name], len(content.stimuli), f"dataset {content.name!r} split {name!r}")
    check_disjoint_splits(chosen, f"dataset {content.name!r}", f" ({origin})" if origin else "")
    return {name: NeuralDataset(content, view, chosen[name]) for name in ("train", "val", "test")}
