"""Front-ends by config name. Adding one is a module that calls ``register`` plus a YAML file."""

from __future__ import annotations

from typing import Any

from strf_runner.frontends.base import Frontend
from strf_runner.registry import Registry

FRONTENDS: Registry[type[Frontend]] = Registry(
    "strf_runner.frontends", key="frontend.name", shared={"base", "ops", "pcen", "registry", "spacing"}
)
register = FRONTENDS.register


def frontend_class(name: str) -> type[Frontend]:
    return FRONTENDS.get(name)


def build_frontend(name: str, **kwargs: Any) -> Frontend:
    return FRONTENDS.get(name)(**kwargs)
