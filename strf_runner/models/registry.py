"""Readouts by config name (``model=<name>``). Adding one is a module here (or anywhere imported before
the run) with an ``nn.Module`` readout and its ``ModelConfig`` subclass, decorated with
``@register(name, config=...)``; a YAML option under conf/model/ is optional (for comments and
variants): without one, ``model=<name>`` composes the config class's defaults."""

from __future__ import annotations

from typing import Any

from torch import nn

from strf_runner.registry import Registry

READOUTS: Registry[type[nn.Module]] = Registry(
    "model", "name", "strf_runner.models", shared=frozenset({"blocks", "encoding", "recurrence", "registry"})
)
register = READOUTS.register


def readout_class(name: str) -> type[nn.Module]:
    return READOUTS.get(name).build


def build_readout(name: str, **kwargs: Any) -> nn.Module:
    return READOUTS.get(name).build(**kwargs)
