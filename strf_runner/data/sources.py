"""Dataset sources by config name (``dataset.source``): where each kind of dataset config gets its HDF5 file.

A source is a function from its dataset config (the ``dataset`` group's dataclass; read by attribute,
so this module needs no config import) to the path of a file in the project's format, plus whether
that file is a cache strf-runner made (a damaged cache is deleted and made again) and its named
stimulus splits, if it has any. Adding a source is a function decorated with ``@source(name)`` here,
a dataclass in config.py's ``SCHEMAS["dataset"]`` and a YAML file under conf/dataset/.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from strf_runner.data.ns1 import NS1Options, ensure_ns1, split_indices
from strf_runner.data.nwb import ensure_nwb, nwb_options
from strf_runner.data.paths import data_root
from strf_runner.data.synth import SynthParams, ensure_synth
from strf_runner.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """path: dataset config -> its HDF5 file (made or fetched if needed). cached: the file is a cache
    strf-runner wrote. splits: dataset config -> the named split it asks for ({} for the file's own)."""

    path: Callable[[Any], Path]
    cached: bool
    splits: Callable[[Any], dict[str, list[int]]] = lambda d: {}


SOURCES: dict[str, Source] = {}


def source(name: str, cached: bool, splits: Callable[[Any], dict[str, list[int]]] | None = None):
    """Register the decorated function as the path of source ``name``."""

    def add(path: Callable[[Any], Path]) -> Callable[[Any], Path]:
        SOURCES[name] = Source(path, cached, splits or (lambda d: {}))
        return path

    return add


def get_source(name: str) -> Source:
    """The source ``name``; ConfigError listing the known ones otherwise."""
    if name not in SOURCES:
        raise ConfigError(f"dataset.source={name!r} has no loader; choose one of {sorted(SOURCES)}")
    return SOURCES[name]


@source("synth", cached=True)
def synth_file(d: Any) -> Path:
    """The embedded synthetic dataset for these parameters, generated on first use."""
    given = {f.name: getattr(d, f.name) for f in dataclasses.fields(SynthParams) if hasattr(d, f.name)}
    return ensure_synth(SynthParams(**given), data_root(d.root))


@source("ns1", cached=True, splits=lambda d: split_indices(d.split))
def ns1_file(d: Any) -> Path:
    """The processed NS1 release (verified, and downloaded with ``dataset.download``)."""
    options = NS1Options(smooth=d.smooth, resample_from=d.resample_from, native=d.native, verify=d.verify)
    return ensure_ns1(root=d.root, options=options, download=d.download)


@source("hdf5", cached=False)
def hdf5_file(d: Any) -> Path:
    """A user's own file in the project's format."""
    return Path(d.path).expanduser()


@source("nwb", cached=True)
def nwb_file(d: Any) -> Path:
    """NWB recordings (a file, files or a folder), converted once into the cache."""
    return ensure_nwb(d.path, nwb_options(d), d.root)
