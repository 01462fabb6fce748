"""What every console entry point shares: its process-wide setup (``setup``), ``--version``, and errors
a user caused as one line, ``<prog>: error: ...``, exit status 2, never a traceback from deep inside a
library."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from strf_runner import __version__
from strf_runner.errors import StrfRunnerError, StrfRunnerWarning


def version_line(prog: str) -> str:
    """What ``<prog> --version`` prints: the command and strf-runner's version (pyproject.toml's)."""
    return f"{prog} {__version__}"


def setup(prog: str, *, trains: bool = False) -> None:
    """All that a console entry point changes for its whole process, done once at its start: every
    warning is one line on stderr, ``<prog>: warning: <message>``, and the project's own are shown every
    time (a sweep runs many runs in one process); Hydra's plugin scan sees strf-runner's plugins
    (``show_plugins``). ``trains`` (strf-run): SIGTERM (SLURM preemption, kill) stops the run as Ctrl-C
    does, its last finished epoch kept, and Hydra raises its errors for ``one_line_errors`` to print
    (HYDRA_FULL_ERROR=1) instead of printing them itself."""
    show_plugins()

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 (warnings' signature)
        kind = "" if issubclass(category, StrfRunnerWarning) else f" ({category.__name__})"
        print(f"{prog}: warning{kind}: {' '.join(str(message).split())}", file=file or sys.stderr)

    warnings.showwarning = show
    warnings.simplefilter("always", StrfRunnerWarning)
    if trains:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def show_plugins() -> None:
    """Put the repository's ``hydra_plugins/`` (strf-runner's SLURM launcher and sweeper) on the namespace
    path that Hydra's plugin scan walks. A wheel installs it into site-packages, where the scan finds it
    anyway; an editable install maps it through setuptools' import hook, which the scan (pkgutil) cannot see."""
    import hydra_plugins

    here = Path(__file__).resolve().parent.parent / "hydra_plugins"
    if here.is_dir() and str(here) not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(str(here))


@contextmanager
def one_line_errors(prog: str, *also: type[BaseException], show_traceback: bool = False) -> Iterator[None]:
    """Around an entry point's work: a StrfRunnerError, an OSError (a file it cannot read or write) or
    an exception of the types ``also`` is printed as ``<prog>: error: <error_line>`` and exits with 2;
    ``show_traceback`` re-raises instead (--debug)."""
    try:
        yield
    except (StrfRunnerError, OSError, *also) as err:
        if show_traceback:
            raise
        print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
        sys.exit(2)


def os_error_line(err: OSError) -> str:
    """One line for a failed file-system operation, naming the path."""
    path = str(err.filename) if err.filename is not None else "?"
    shown = path if len(path) <= 120 else path[:60] + "..." + path[-40:]
    if err.errno == errno.ENOSPC:
        return f"disk full at {shown}"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied at {shown}: choose a folder you can write (hydra.run.dir, STRF_RUNNER_DATA)"
    if err.errno == errno.EROFS:
        return f"read-only file system at {shown}"
    if err.errno == errno.ENAMETOOLONG:
        return (f"file name too long: {shown} ({len(Path(path).name)} characters; a name is limited to 255 bytes): "
                "shorten run_name or hydra.run.dir")
    return f"{err.strerror or type(err).__name__} at {shown}"


def error_line(err: BaseException) -> str:
    """One line for an error: the project's own message, the file-system failure, or the config key at fault."""
    if isinstance(err, StrfRunnerError):
        return str(err)
    if isinstance(err, OSError) and err.errno is not None:  # Hydra's MissingConfigException is an OSError too
        return os_error_line(err)
    if isinstance(err, AssertionError) and str(err).startswith("Unexpected type for root"):  # OmegaConf.update
        return ("an override sets a key inside a config node that is null: choose its option first "
                "(e.g. logger=mlflow logger.mlflow.tracking_uri=...)")
    if type(err).__name__ == "OverrideParseException":  # hydra.errors, not imported here (entry points load fast)
        first = str(err).strip().splitlines()[0]
        return (f"cannot parse an override: {first}; a value with = ! < > or spaces needs quotes inside the "
                "shell's: 'dataset.units_where=\"quality==good\"'")
    cause = err
    while not isinstance(cause, OmegaConfBaseException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and dataclasses.is_dataclass(cause.object_type):
        valid = ", ".join(f.name for f in dataclasses.fields(cause.object_type))
        return f"config key '{cause.full_key}' does not exist (valid keys here: {valid})"
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        msg = str(getattr(cause, "msg", "") or cause).strip().splitlines()[0]
        return f"config key '{key}': {msg}" if key else msg
    text = ""
    for line in (line.strip() for line in str(err).splitlines()):
        if line.startswith("Config search path"):
            break
        if line:
            text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(err).__name__


