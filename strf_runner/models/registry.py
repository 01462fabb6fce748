"""Readouts by config name. Adding one is a module that calls ``register`` plus a YAML file."""

from __future__ import annotations

from typing import Any

from torch import nn

from strf_runner.registry import Registry

READOUTS: Registry[type[nn.Module]] = Registry("strf_runner.models", key="model.name", shared={"blocks", "encoding", "recurrence", "registry"})
register = READOUTS.register


def readout_class(name: str) -> type[nn.Module]:
    return READOUTS.get(name)


def build_readout(name: str, **kwargs: Any) -> nn.Module:
    return READOUTS.get(name)(**kwargs)
