"""Front-ends by config name. Adding one is a module that calls ``register`` plus a YAML file."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from strf_runner.errors import ConfigError
from strf_runner.frontends.base import Frontend

FRONTENDS: dict[str, type[Frontend]] = {}
_SHARED = {"base", "ops", "pcen", "registry", "spacing"}  # modules that register nothing


def register(name: str) -> Callable[[type[Frontend]], type[Frontend]]:
    def add(cls: type[Frontend]) -> type[Frontend]:
        FRONTENDS[name] = cls
        return cls

    return add


def _discover() -> None:
    """Import every front-end module of the package once, so each registers itself."""
    import strf_runner.frontends as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _SHARED:
            importlib.import_module(f"{package.__name__}.{info.name}")


def frontend_class(name: str) -> type[Frontend]:
    """The front-end class registered as ``name``; ConfigError listing the valid names otherwise."""
    _discover()
    if name not in FRONTENDS:
        raise ConfigError(f"frontend.name={name!r} is not a front-end; choose one of {sorted(FRONTENDS)}")
    return FRONTENDS[name]


def build_frontend(name: str, **kwargs: Any) -> Frontend:
    return frontend_class(name)(**kwargs)
