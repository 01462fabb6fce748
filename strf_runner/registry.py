"""A name -> class registry whose entries register themselves when their package is scanned."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from strf_runner.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one family keyed by config name.

    package: the package whose modules define the entries (each decorated with ``register``);
    all of its modules except ``shared`` are imported on first lookup. key: the config key users
    set (e.g. "frontend.name"), named in the error for an unknown entry.
    """

    def __init__(self, package: str, key: str, shared: set[str]) -> None:
        self.package, self.key, self.shared = package, key, shared
        self.entries: dict[str, T] = {}
        self._scanned = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            self.entries[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        self._scan()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The class registered as ``name``; ConfigError listing the valid names otherwise."""
        self._scan()
        if name not in self.entries:
            raise ConfigError(f"{self.key}={name!r} is not one of {sorted(self.entries)}")
        return self.entries[name]

    def _scan(self) -> None:
        if self._scanned:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in self.shared:
                importlib.import_module(f"{self.package}.{info.name}")
        self._scanned = True
