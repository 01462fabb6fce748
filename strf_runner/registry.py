"""One registry mechanism for every pluggable part: front-ends, readouts, dataset sources and trackers.

An entry is a name, the thing it builds and its config dataclass (the schema of its YAML option);
what an entry can do that others cannot is an attribute of that dataclass (a readout config's
``nonnegative_output``), never a branch on its name. The built-in entries register themselves when
their package (or module) is scanned on first lookup; anything else registers by calling ``register``
before the run is composed. ``compose.register_configs`` builds Hydra's ConfigStore from the registries.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from strf_runner.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered part: its config name, what builds it (a class or a function) and its config
    dataclass (every field but the selector and the training budget is an argument of ``build``)."""

    name: str
    build: T
    config: type


class Registry(Generic[T]):
    """The entries of one config group, keyed by the value of its selector key.

    group: the config group ("frontend", "model", "dataset", "logger"). selector: the key inside the
    group that names the entry ("name", "source"; None for a group whose options are keys of their own,
    as the trackers under ``logger`` are). package: the package (or a single module) whose modules define
    the built-in entries; all of them except ``shared`` are imported on first lookup.
    """

    def __init__(self, group: str, selector: str | None, package: str, shared: frozenset[str] = frozenset()) -> None:
        self.group, self.selector, self.package, self.shared = group, selector, package, shared
        self.entries: dict[str, Entry[T]] = {}
        self._scanned = False

    @property
    def key(self) -> str:
        """The config key a user sets to choose an entry ("frontend.name"), as errors name it."""
        return f"{self.group}.{self.selector}" if self.selector else self.group

    def register(self, name: str, config: type) -> Callable[[T], T]:
        """Decorator: register the decorated class or function as ``name`` with its config dataclass."""

        def add(build: T) -> T:
            self.entries[name] = Entry(name, build, config)
            return build

        return add

    def names(self) -> list[str]:
        self._scan()
        return sorted(self.entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        self._scan()
        return iter([self.entries[name] for name in sorted(self.entries)])

    def get(self, name: str) -> Entry[T]:
        """The entry registered as ``name``; ConfigError listing the valid names otherwise."""
        self._scan()
        if name not in self.entries:
            raise ConfigError(f"{self.key}={name!r} is not one of {sorted(self.entries)}")
        return self.entries[name]

    def _scan(self) -> None:
        if self._scanned:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if info.name not in self.shared:
                importlib.import_module(f"{self.package}.{info.name}")
        self._scanned = True
