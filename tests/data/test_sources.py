"""Dataset sources by config name: each kind of dataset config finds its file through one registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from strf_runner.config import SCHEMAS, HDF5DatasetConfig, NS1DatasetConfig
from strf_runner.data.sources import SOURCES, get_source
from strf_runner.errors import ConfigError


def test_every_dataset_schema_has_a_source_and_only_those():
    assert set(SOURCES) == {schema.source for schema in SCHEMAS["dataset"].values()}
    assert [name for name, s in SOURCES.items() if s.cached] == ["synth", "ns1", "nwb"]


def test_an_unknown_source_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"dataset.source='matlab' has no loader; choose one of \['hdf5', 'ns1', 'nwb', 'synth'\]"):
        get_source("matlab")


def test_named_splits_come_from_the_source():
    assert get_source("ns1").splits(NS1DatasetConfig(name="ns1", split="rahman2020"))["test"] == [3, 6, 9, 19]
    assert get_source("hdf5").splits(HDF5DatasetConfig(name="mine", path="x.h5")) == {}
    assert get_source("hdf5").path(HDF5DatasetConfig(name="mine", path="~/x.h5")) == Path("~/x.h5").expanduser()
