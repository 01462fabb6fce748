"""Front-ends by config name (``frontend=<name>``). Adding one is a module here (or anywhere imported
before the run) with a ``Frontend`` subclass and its ``FrontendConfig`` subclass, decorated with
``@register(name, config=...)``; a YAML option under conf/frontend/ is optional (for comments and
variants): without one, ``frontend=<name>`` composes the config class's defaults."""

from __future__ import annotations

from typing import Any

from strf_runner.frontends.base import Frontend
from strf_runner.registry import Registry

FRONTENDS: Registry[type[Frontend]] = Registry(
    "frontend", "name", "strf_runner.frontends", shared=frozenset({"base", "ops", "pcen", "registry", "spacing"})
)
register = FRONTENDS.register


def frontend_class(name: str) -> type[Frontend]:
    return FRONTENDS.get(name).build


def build_frontend(name: str, **kwargs: Any) -> Frontend:
    return FRONTENDS.get(name).build(**kwargs)
