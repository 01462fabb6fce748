"""Dataset sources by config name (``dataset.source``): where each kind of dataset config gets its HDF5 file.

A source is a function from its dataset config (a ``DatasetConfig`` subclass, the options its loader
takes) to the path of a file in the project's format, made, fetched or converted if needed. What else a
source says is on its config class: ``cached`` (the file is a cache strf-runner made: a damaged one is
deleted and made again) and ``split_stimuli()`` (its own named splits). Adding one is a function
decorated with ``@SOURCES.register(name, config=...)`` (here, or anywhere imported before the run); a
YAML option under conf/dataset/ is optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from omegaconf import MISSING

from strf_runner.config import DatasetConfig
from strf_runner.data.ns1 import NS1DatasetConfig, ensure_ns1
from strf_runner.data.nwb import NWBDatasetConfig, ensure_nwb
from strf_runner.data.paths import data_root
from strf_runner.data.synth import SynthDatasetConfig, ensure_synth
from strf_runner.errors import ConfigError
from strf_runner.registry import Registry

SOURCES: Registry[Callable[[DatasetConfig], Path]] = Registry("dataset", "source", "strf_runner.data.sources")


@dataclass
class HDF5DatasetConfig(DatasetConfig):
    """``dataset=hdf5``: a dataset file of the user's own in the project's HDF5 format (docs/datasets/hdf5.md)."""

    name: str = "hdf5"
    source: str = "hdf5"
    path: str = MISSING

    def check(self) -> None:
        if str(self.path).strip() == "":
            raise ConfigError(f"dataset.path={self.path!r} is empty: give the HDF5 file to read")


@SOURCES.register("synth", config=SynthDatasetConfig)
def synth_file(d: SynthDatasetConfig) -> Path:
    """The embedded synthetic dataset for these parameters, generated on first use."""
    return ensure_synth(d, data_root(d.root))


@SOURCES.register("ns1", config=NS1DatasetConfig)
def ns1_file(d: NS1DatasetConfig) -> Path:
    """The processed NS1 release (verified, and downloaded with ``dataset.download``)."""
    return ensure_ns1(root=d.root, options=d, download=d.download)


@SOURCES.register("hdf5", config=HDF5DatasetConfig)
def hdf5_file(d: HDF5DatasetConfig) -> Path:
    """A user's own file in the project's format."""
    return Path(d.path).expanduser()


@SOURCES.register("nwb", config=NWBDatasetConfig)
def nwb_file(d: NWBDatasetConfig) -> Path:
    """NWB recordings (a file, files or a folder), converted once into the cache."""
    return ensure_nwb(d.path, d, d.root)
