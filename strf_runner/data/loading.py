"""A dataset config -> its HDF5 file, its content (the selected neurons) and the train / val / test sets.

The config is the ``dataset`` group's dataclass (a ``DatasetConfig``); where the file comes from is its
source's business (``sources.py``).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from strf_runner.config import CVConfig, DatasetConfig
from strf_runner.data.dataset import NeuralDataset, split_datasets
from strf_runner.data.digest import DataIdentity, data_identity
from strf_runner.data.folds import check_folds, default_val, fold_splits
from strf_runner.data.schema import VIEWS, DatasetContent, read_dataset
from strf_runner.data.selection import select_neuron_indices, subset_neurons
from strf_runner.data.sources import SOURCES
from strf_runner.errors import DatasetError


def dataset_path(dataset: DatasetConfig) -> Path:
    """The HDF5 file a dataset config refers to, made, fetched or generated on first use."""
    return SOURCES.get(dataset.source).build(dataset)


def stimulus_splits(dataset: DatasetConfig, cv: CVConfig | None = None, content: DatasetContent | None = None
                    ) -> dict[str, list[int] | None]:
    """Split overrides: the source's named split (NS1's ``dataset.split``), then explicit *_stimuli on top;
    or, for one fold of a cross-validation (``cv.fold`` set; ``content`` the dataset), that fold's
    (``data.folds.fold_splits``; ConfigError where the folds cannot be cut from the dataset)."""
    if cv is not None and cv.fold is not None:
        return dict(fold_splits(len(content.stimuli), cv.folds, cv.fold, cv_val(cv, content)))
    splits: dict[str, list[int] | None] = dict(dataset.split_stimuli())
    for name in ("train", "val", "test"):
        given = getattr(dataset, f"{name}_stimuli")
        if given is not None:
            splits[name] = list(given)
    return splits


def cv_val(cv: CVConfig, content: DatasetContent) -> int:
    """Validation stimuli per fold: ``cv.val``, else the size of the file's own validation split (at least 1)."""
    return cv.val if cv.val is not None else default_val(content.splits.get("val", []))


def check_cv(dataset: DatasetConfig, cv: CVConfig, view: str) -> int:
    """Whether ``cv.folds`` folds can be cut from the dataset's stimuli (its file made first if needed, and
    read in ``view``), before anything is written: ConfigError naming the key otherwise. Returns the
    validation size per fold."""
    path = dataset_path(dataset)
    with _named_cache(dataset, path):
        content = read_dataset(path, views=(view,))
    val = cv_val(cv, content)
    check_folds(len(content.stimuli), cv.folds, val)
    return val


def dataset_identity(dataset: DatasetConfig) -> DataIdentity:
    """The identity of the data a dataset config names (its file made, fetched or converted first if
    needed): what sweep reuse and resume compare before training."""
    path = dataset_path(dataset)
    with _named_cache(dataset, path):
        return data_identity(path)


@contextmanager
def _named_cache(dataset: DatasetConfig, path: Path) -> Iterator[None]:
    """A DatasetError from a cache file strf-runner made gets the advice to delete it."""
    try:
        yield
    except DatasetError as err:
        if dataset.cached:
            raise DatasetError(f"{err} (a cached file: delete {path} and it is made again)") from err
        raise


def _only_view(content: DatasetContent, view: str) -> DatasetContent:
    """``content`` without the views other than ``view`` (their memory freed once nothing else holds them)."""
    dropped = {v: None for v in VIEWS if v != view}
    return dataclasses.replace(content, stimuli=[dataclasses.replace(s, **dropped) for s in content.stimuli])


def load_data(dataset: DatasetConfig, view: str, cv: CVConfig | None = None) -> tuple[Path, DatasetContent, dict[str, NeuralDataset]]:
    """The dataset file, its content (cut to the selected neurons) and the train / val / test sets in
    ``view``: the file's splits with the config's overrides, or fold ``cv.fold``'s of a cross-validation
    (``cv``: the run's ``cv`` config). The whole file is read once, so its ``data_identity`` is known
    afterwards without another read. A damaged cache file is named with the advice to delete it."""
    path = dataset_path(dataset)
    with _named_cache(dataset, path):
        content = read_dataset(path)
        data_identity(path, content)
    content = _only_view(content, view)
    neurons = select_neuron_indices(content.neuron_meta, content.neuron_ids, dataset.neurons)
    if neurons != list(range(len(content.neuron_ids))):
        content = subset_neurons(content, neurons)
    if cv is not None and cv.fold is not None:
        sources = [f"cv.folds={cv.folds} cv.fold={cv.fold}"]
    else:
        split = dataset.named_split()
        sources = [f"dataset.split={split}"] if split is not None else []
        sources += [f"dataset.{k}_stimuli" for k in ("train", "val", "test")
                    if getattr(dataset, f"{k}_stimuli") is not None]
    origin = f"splits set by {', '.join(sources)}" if sources else "the file's own /splits"
    return path, content, split_datasets(content, view, stimulus_splits(dataset, cv, content), origin=origin)
