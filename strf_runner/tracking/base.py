"""The tracker interface, the registry of tracker kinds, and ``Trackers``: many trackers, each fault-isolated."""

from __future__ import annotations

import importlib
import importlib.util
import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from strf_runner.errors import ConfigError, StrfRunnerWarning

# per-epoch values a tracker records, by the name it records them under
EPOCH_SCALARS = ("train_loss", "train_cc_norm", "val_loss", "val_cc", "val_cc_norm", "seconds")
# end-of-run values from summary.json
FINAL_SCALARS = ("test_mean_cc_norm", "test_median_cc_norm", "test_n_valid", "n_params", "wall_time_s", "best_epoch")


@dataclass
class RunInfo:
    """What a tracker is told when a run starts.

    run_dir: the run directory. name: its folder name. group: the sweep dir's name for a multirun job
    (trackers group the runs of one sweep under it), else None. params: the resolved config as
    flattened dotted keys. tags: config hash, seeds, dataset name and SHA-256, package versions,
    device, and for a sweep job the overrides that vary. resumed: this run continues an interrupted one.
    """

    run_dir: Path
    name: str
    group: str | None
    params: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    resumed: bool = False


class Tracker:
    """One tracking tool. Subclasses implement the four calls; every call may raise (Trackers copes)."""

    kind: str = ""
    package: str = ""  # the import name it needs; ``pip install strf-runner[<kind>]``

    def start(self, info: RunInfo) -> None:
        raise NotImplementedError

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        """The epoch's EPOCH_SCALARS (NaN where not measured) plus best_epoch once there is one."""
        raise NotImplementedError

    def finish(self, summary: dict[str, Any], files: dict[str, Path]) -> None:
        """The run finished: its summary.json and files to copy (by name; "neurons": neurons.csv)."""
        raise NotImplementedError

    def fail(self, status: str, error: str) -> None:
        """The run ended without a summary: status "failed" (with the one-line error) or "interrupted"."""
        raise NotImplementedError


TRACKERS: dict[str, Callable[..., Tracker]] = {}


def tracker(kind: str, package: str) -> Callable[[type[Tracker]], type[Tracker]]:
    """Register a Tracker class as ``logger.<kind>``; ``package`` is the module it imports."""

    def add(cls: type[Tracker]) -> type[Tracker]:
        cls.kind, cls.package = kind, package
        TRACKERS[kind] = cls
        return cls

    return add


def check_installed(kind: str) -> None:
    """ConfigError (one line, what to install) when the tracker's package is missing."""
    cls = TRACKERS[kind]
    if importlib.util.find_spec(cls.package) is None:
        raise ConfigError(f"logger={kind} needs the {cls.package} package: pip install \"strf-runner[{kind}]\" "
                          f"(or pip install {cls.package})")


class Trackers:
    """Several trackers behind one interface. The first exception of a tracker is one warning line
    ("logger <kind> failed while <step>: <reason>; the run goes on without it"), and that tracker is
    called no more; the run and its files are untouched."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.live = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.live)

    def _each(self, step: str, call: Callable[[Tracker], None]) -> None:
        for t in list(self.live):
            try:
                call(t)
            except Exception as err:  # noqa: BLE001 - a tracker never fails the run
                self.live.remove(t)
                reason = " ".join(str(err).split()) or type(err).__name__
                warnings.warn(f"logger {t.kind} failed while {step}: {reason[:300]}; the run goes on without it",
                              StrfRunnerWarning, stacklevel=2)

    def start(self, info: RunInfo) -> None:
        self._each("starting", lambda t: t.start(info))

    def epoch(self, record: Any, best_epoch: int | None) -> None:
        values = {k: float(v) for k, v in asdict(record).items() if k in EPOCH_SCALARS}
        if best_epoch is not None:
            values["best_epoch"] = float(best_epoch)
        self._each(f"logging epoch {record.epoch}", lambda t: t.epoch(record.epoch, values))

    def finish(self, summary: dict[str, Any], files: dict[str, Path]) -> None:
        self._each("finishing", lambda t: t.finish(summary, files))

    def fail(self, status: str, error: str) -> None:
        self._each(f"recording the run as {status}", lambda t: t.fail(status, error))

    @contextmanager
    def recording_failures(self) -> Iterator[None]:
        """Around a run: an exception is recorded as "failed" (its message on one line), Ctrl-C / SIGTERM
        as "interrupted", then re-raised."""
        try:
            yield
        except KeyboardInterrupt:
            self.fail("interrupted", "")
            raise
        except Exception as err:
            self.fail("failed", " ".join(str(err).split()) or type(err).__name__)
            raise


def final_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """FINAL_SCALARS of a summary that are numbers (NaN and null left out)."""
    out = {}
    for key in FINAL_SCALARS:
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def build_trackers(logger: Any) -> Trackers:
    """The trackers a ``LoggerConfig`` asks for (each set field is one), their packages checked first
    (ConfigError naming what to install); an empty Trackers for ``logger=none``."""
    built = []
    for key, options in vars(logger).items():
        if options is None:
            continue
        importlib.import_module(f"strf_runner.tracking.{key}")  # registers the kind
        check_installed(key)
        built.append(TRACKERS[key](**vars(options)))
    return Trackers(built)
