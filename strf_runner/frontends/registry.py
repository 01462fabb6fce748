"""Front-ends by config name. Adding one is a module that calls ``register`` plus a YAML file."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from strf_runner.errors import ConfigError
from strf_runner.frontends.base import Frontend

FRONTENDS: dict[str, type[Frontend]] = {}
_MODULES = ("native",)


def register(name: str) -> Callable[[type[Frontend]], type[Frontend]]:
    def add(cls: type[Frontend]) -> type[Frontend]:
        FRONTENDS[name] = cls
        return cls

    return add


def frontend_class(name: str) -> type[Frontend]:
    """The front-end class registered as ``name``; ConfigError listing the valid names otherwise."""
    for module in _MODULES:
        importlib.import_module(f"strf_runner.frontends.{module}")
    if name not in FRONTENDS:
        raise ConfigError(f"frontend.name={name!r} is not a front-end; choose one of {sorted(FRONTENDS)}")
    return FRONTENDS[name]


def build_frontend(name: str, **kwargs: Any) -> Frontend:
    return frontend_class(name)(**kwargs)
