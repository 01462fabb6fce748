"""Batching items of unequal length, and a loader that keeps a whole split on the device."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence, TypedDict

import torch

from strf_runner.data.dataset import Item, NeuralDataset


class Batch(TypedDict):
    """A collated batch of B stimuli.

    stims: (B, 1, F, T_max) or (B, 1, T_audio_max), zero-padded on the right, never NaN.
    responses: (B, N, R_max, T_max), NaN-padded along R and T.
    psth: (B, N, 1, T_max), mean over valid repeats, NaN-padded along T.
    valid_mask: (B, N, R_max, T_max) bool, True where responses are not NaN.
    stim_metas: list of B metadata dicts.
    features: (B, F', T_max) the items' precomputed front-end stage (zero-padded), or None.
    Tensors that needed no padding may share memory with the dataset's items: do not modify them in place.
    """

    stims: torch.Tensor
    responses: torch.Tensor
    psth: torch.Tensor
    valid_mask: torch.Tensor
    stim_metas: list[dict[str, Any]]
    features: torch.Tensor | None


def collate(items: Sequence[Item]) -> Batch:
    """Stack items: stimuli zero-padded, responses NaN-padded; stimulus and response time axes
    are padded independently (they differ by the hop in the waveform view)."""
    stims = _pad_stack([it.stim for it in items], 0.0)
    responses = _pad_stack([it.responses for it in items], float("nan"))
    return Batch(
        stims=stims,
        responses=responses,
        psth=_pad_stack([it.psth for it in items], float("nan")),
        valid_mask=~torch.isnan(responses),
        stim_metas=[it.meta for it in items],
        features=None if items[0].features is None else _pad_stack([it.features for it in items], 0.0),
    )


def _pad_stack(tensors: Sequence[torch.Tensor], value: float) -> torch.Tensor:
    if all(t.shape == tensors[0].shape for t in tensors):  # nothing to pad (always so for B = 1)
        return torch.stack(tensors) if len(tensors) > 1 else tensors[0].unsqueeze(0)
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_full([len(tensors), *shape], value)
    for b, t in enumerate(tensors):
        out[(b, *(slice(0, s) for s in t.shape))] = t
    return out


class DeviceLoader:
    """Yields collated batches of a dataset whose tensors were moved to ``device`` once.

    Order is shuffled per epoch from ``generator`` when ``shuffle`` is set (a CPU torch.Generator
    dedicated to data order, so model initialisation and data order are seeded separately).
    ``features``: a function of one stimulus (1, ...) -> (1, F', T), applied to every item once, here,
    without gradient; batches then carry its output as ``features`` (a fixed front-end stage computed
    once per fit instead of once per step).
    """

    def __init__(
        self,
        dataset: NeuralDataset,
        batch_size: int = 1,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.items = [
            Item(it.stim.to(device), it.responses.to(device), it.psth.to(device), it.meta) for it in dataset.items
        ]
        if features is not None:
            with torch.no_grad():
                for it in self.items:
                    it.features = features(it.stim[None])[0]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.items)
        order = torch.randperm(n, generator=self.generator).tolist() if self.shuffle else range(n)
        order = list(order)
        for start in range(0, n, self.batch_size):
            yield collate([self.items[i] for i in order[start : start + self.batch_size]])
