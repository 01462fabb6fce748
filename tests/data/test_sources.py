"""Dataset sources by config name: each kind of dataset config finds its file through one registry, and
says what it can do through its config class."""

from __future__ import annotations

from pathlib import Path

import pytest

from strf_runner.data.ns1 import NS1DatasetConfig
from strf_runner.data.sources import SOURCES, HDF5DatasetConfig
from strf_runner.errors import ConfigError


def test_every_source_is_registered_with_the_config_class_that_names_it():
    assert SOURCES.names() == ["hdf5", "ns1", "nwb", "synth"]
    assert all(entry.config().source == entry.name for entry in SOURCES if entry.name != "hdf5")
    assert HDF5DatasetConfig(path="x.h5").source == "hdf5"
    assert [entry.name for entry in SOURCES if entry.config.cached] == ["ns1", "nwb", "synth"]


def test_an_unknown_source_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"dataset.source='matlab' is not one of \['hdf5', 'ns1', 'nwb', 'synth'\]"):
        SOURCES.get("matlab")


def test_named_splits_come_from_the_config():
    assert NS1DatasetConfig(split="rahman2020").split_stimuli()["test"] == [3, 6, 9, 19]
    assert HDF5DatasetConfig(path="x.h5").split_stimuli() == {} and HDF5DatasetConfig(path="x.h5").named_split() is None
    assert SOURCES.get("hdf5").build(HDF5DatasetConfig(path="~/x.h5")) == Path("~/x.h5").expanduser()
