"""Readouts by config name. Adding one is a module that calls ``register`` plus a YAML file."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from torch import nn

from strf_runner.errors import ConfigError

READOUTS: dict[str, type[nn.Module]] = {}
_SHARED = {"encoding", "registry"}  # modules that register nothing


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        READOUTS[name] = cls
        return cls

    return add


def _discover() -> None:
    """Import every readout module of the package once, so each registers itself."""
    import strf_runner.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _SHARED:
            importlib.import_module(f"{package.__name__}.{info.name}")


def readout_class(name: str) -> type[nn.Module]:
    """The readout class registered as ``name``; ConfigError listing the valid names otherwise."""
    _discover()
    if name not in READOUTS:
        raise ConfigError(f"model.name={name!r} is not a model; choose one of {sorted(READOUTS)}")
    return READOUTS[name]


def build_readout(name: str, **kwargs: Any) -> nn.Module:
    return readout_class(name)(**kwargs)
