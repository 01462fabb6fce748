"""The tracker interface, the registry of tracker kinds, and ``Trackers``: many trackers, each fault-isolated."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from strf_runner.config import TrackerConfig
from strf_runner.errors import ConfigError, StrfRunnerWarning
from strf_runner.registry import Registry
from strf_runner.results.summary import RunSummary

# per-epoch values a tracker records, by the name it records them under
EPOCH_SCALARS = ("train_loss", "train_cc_norm", "val_loss", "val_cc", "val_cc_norm", "seconds")
# end-of-run values from summary.json (attributes of RunSummary)
FINAL_SCALARS = ("test_mean_cc_norm", "test_median_cc_norm", "test_n_valid", "n_params", "wall_time_s", "best_epoch")


@dataclass
class RunInfo:
    """What a tracker is told when a run starts.

    run_dir: the run directory. name: its folder name. group: the sweep a multirun job belongs to
    (``group_name`` of its sweep dir; trackers group the runs of one sweep under it), else None.
    params: the resolved config as flattened dotted keys, without the volatile ones (which may change
    on resume). tags: config hash, seeds, dataset name and SHA-256, package versions, device. varying:
    for a sweep job, the swept keys and this job's values (``frontend: leaf``). local_dir: where a
    tracker that keeps local files puts them by default (the run dir for a live run; elsewhere when a
    finished run, which is never written into, is logged after the fact). previous: what this tracker
    returned from ``start`` when the run started before it was interrupted (resume continues it).
    """

    run_dir: Path
    name: str
    group: str | None
    params: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    varying: dict[str, str] = field(default_factory=dict)
    local_dir: Path | None = None
    previous: dict[str, Any] | None = None

    @property
    def resumed(self) -> bool:
        return self.previous is not None


@dataclass(frozen=True)
class Group:
    """The sweep a multirun job belongs to: its name (``group_name`` of the sweep dir) and this job's
    values of the keys the sweep varies (``{"frontend": "leaf", "seed": "1"}``)."""

    name: str
    varying: dict[str, str] = field(default_factory=dict)


class Tracker:
    """One tracking tool for one run. Subclasses implement the four calls; every call may raise (Trackers copes)."""

    kind: str = ""
    package: str = ""  # the import name it needs; ``pip install strf-runner[<kind>]``

    def start(self, info: RunInfo) -> dict[str, Any] | None:
        """Open the tracking run; return what a resumed run needs to find it again (kept in tracking.json)."""
        raise NotImplementedError

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        """The epoch's EPOCH_SCALARS (NaN where not measured) plus best_epoch once there is one."""
        raise NotImplementedError

    def finish(self, summary: RunSummary, files: dict[str, Path]) -> None:
        """The run finished: its summary.json, and files to copy by name ("neurons.csv", "history.csv",
        "summary.json", "figures/<name>.png" ...)."""
        raise NotImplementedError

    def fail(self, status: str, error: str) -> None:
        """The run ended without a summary: status "failed" (with the one-line error) or "interrupted"."""
        raise NotImplementedError

    def logged(self, info: RunInfo) -> bool:
        """This run is in the tracking tool already, in ``info.group`` (a sweep logged again after the fact
        skips it)."""
        return False

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        """The sweep's aggregate, once at its end: report files by name (tables, report.md, figures) and
        headline numbers; ``local_dir`` for a tracker that keeps local files."""
        raise NotImplementedError


TRACKERS: Registry[type[Tracker]] = Registry("logger", None, "strf_runner.tracking",
                                            shared=frozenset({"base", "replay"}))


def tracker(kind: str, package: str, config: type[TrackerConfig]) -> Callable[[type[Tracker]], type[Tracker]]:
    """Register a Tracker class as ``logger=<kind>`` with its options class (its constructor's
    arguments); ``package`` is the module it imports (checked before a run starts)."""

    def add(cls: type[Tracker]) -> type[Tracker]:
        cls.kind, cls.package = kind, package
        return TRACKERS.register(kind, config)(cls)

    return add


def check_installed(kind: str) -> None:
    """ConfigError (one line, what to install) when the tracker's package is missing."""
    cls = TRACKERS.get(kind).build
    if importlib.util.find_spec(cls.package) is None:
        raise ConfigError(f"logger={kind} needs the {cls.package} package: pip install \"strf-runner[{kind}]\" "
                          f"(or pip install {cls.package})")


class Trackers:
    """Several trackers behind one interface. The first exception of a tracker is one warning line
    ("logger <kind> failed while <step>: <reason>; the run goes on without it"), and that tracker is
    called no more; the run and its files are untouched."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.live = list(trackers)
        self.ended = False

    def __bool__(self) -> bool:
        return bool(self.live)

    def _each(self, step: str, call: Callable[[Tracker], Any], among: list[Tracker] | None = None) -> dict[str, Any]:
        """``call`` on each live tracker (of ``among``, when given); its results by kind."""
        out = {}
        for t in [t for t in self.live if among is None or t in among]:
            try:
                out[t.kind] = call(t)
            except Exception as err:  # noqa: BLE001 - a tracker never fails the run
                self.live.remove(t)
                reason = " ".join(str(err).split()) or type(err).__name__
                warnings.warn(f"logger {t.kind} failed while {step}: {reason[:300]}; the run goes on without it",
                              StrfRunnerWarning, stacklevel=2)
        return out

    def start(self, info: RunInfo, previous: dict[str, Any] | None = None,
              earlier: Sequence[tuple[int, dict[str, float]]] = ()) -> dict[str, Any]:
        """Start each tracker (``previous``: tracking.json of the interrupted run, by kind); return what
        each needs to be found again, by kind (for tracking.json).

        earlier: a resumed run's epochs before this session, as (epoch, values). A tracker that was not
        recording them (no ``previous`` record: not asked for then, or failed to start) gets them now, so
        its curves start at epoch 1 like the others'."""
        previous = previous or {}

        def start(t: Tracker) -> Any:
            return t.start(dataclasses.replace(info, previous=previous.get(t.kind)))

        records = {k: v for k, v in self._each("starting", start).items() if v is not None}
        missing = [t for t in self.live if t.kind not in previous]
        for epoch, values in earlier:
            self._each(f"replaying epoch {epoch}", lambda t: t.epoch(epoch, values), among=missing)
        return records

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._each(f"logging epoch {epoch}", lambda t: t.epoch(epoch, values))

    def finish(self, summary: RunSummary, files: dict[str, Path]) -> None:
        self.ended = True
        self._each("finishing", lambda t: t.finish(summary, files))

    def fail(self, status: str, error: str) -> None:
        self.ended = True
        self._each(f"recording the run as {status}", lambda t: t.fail(status, error))

    def logged(self, info: RunInfo) -> bool:
        """Some tracker holds this run already."""
        return any(self._each("looking the run up", lambda t: t.logged(info)).values())

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        self._each(f"logging the sweep {group}", lambda t: t.log_sweep(group, files, scalars, local_dir))

    @contextmanager
    def recording_failures(self) -> Iterator[None]:
        """Around a run: an exception is recorded as "failed" (its message on one line), Ctrl-C / SIGTERM
        as "interrupted", then re-raised; nothing is recorded once the run has finished."""
        try:
            yield
        except KeyboardInterrupt:
            if not self.ended:
                self.fail("interrupted", "")
            raise
        except Exception as err:
            if not self.ended:
                self.fail("failed", " ".join(str(err).split()) or type(err).__name__)
            raise


def epoch_values(row: dict[str, Any], best_epoch: int | None) -> dict[str, float]:
    """What a tracker logs of one epoch: the EPOCH_SCALARS of an epoch record (or history.csv row) as
    floats, and best_epoch once there is one."""
    values = {k: float(v) for k, v in row.items() if k in EPOCH_SCALARS and v is not None}
    if best_epoch is not None:
        values["best_epoch"] = float(best_epoch)
    return values


def metric_name(text: str) -> str:
    """A label as a metric name every tracker takes (MLflow allows letters, digits and ``_-. /:``)."""
    return re.sub(r"[^\w\-. /:]", "_", text)


def final_scalars(summary: RunSummary) -> dict[str, float]:
    """FINAL_SCALARS of a summary that are numbers (NaN and null left out)."""
    out = {}
    for key in FINAL_SCALARS:
        value = getattr(summary, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def build_trackers(logger: dict[str, Any], only: str | None = None) -> Trackers:
    """The trackers a run's ``logger`` asks for (each entry, kind -> options, is one; ``only``: that kind
    alone), their packages checked first (ConfigError naming what to install); an empty Trackers for
    ``logger=none``."""
    built = []
    for kind, options in logger.items():
        if options is None or (only is not None and kind != only):
            continue
        check_installed(kind)
        built.append(TRACKERS.get(kind).build(**vars(options)))
    return Trackers(built)


def group_name(sweep_dir: str | Path) -> str:
    """The name a sweep's runs are grouped under: its dir's absolute path (the same from any working
    directory, so strf-report finds the group of a sweep logged live; and it says where the files are)."""
    return str(Path(sweep_dir).resolve())


def short_value(value: Any, limit: int = 500) -> str:
    """A config value as a tracker parameter: its text, cut to ``limit`` characters (long lists of neuron ids)."""
    text = str(list(value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
