"""``strf-run``: the Hydra entry point. Thin: compose and validate the config, call run_experiment.

Errors a user causes (an unknown key, a wrong type, a missing file) are printed as one line
without a traceback; ``--debug`` (or HYDRA_FULL_ERROR=1) shows the full traceback.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from rich.console import Console

from strf_runner.config import SCHEMAS, RunConfig
from strf_runner.errors import StrfRunnerError
from strf_runner.training.device import keep_freed_memory

PROG = "strf-run"


def register_configs() -> None:
    """Store the structured-config schemas; each YAML option names its schema in its defaults list
    (``/schema_<group>_<kind>@_here_``). Top-level names keep them out of the group listing in --help."""
    cs = ConfigStore.instance()
    cs.store(name="schema_run", node=RunConfig)
    for group, kinds in SCHEMAS.items():
        for kind, node in kinds.items():
            cs.store(name=f"schema_{group}_{kind}", node=node)


@hydra.main(version_base="1.3", config_path="pkg://strf_runner.conf", config_name="config")
def _task(cfg: DictConfig) -> float:
    from strf_runner.display import epoch_progress, summary_table
    from strf_runner.experiment import run_experiment

    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    hydra_cfg = HydraConfig.get()
    label = f"{run_cfg.frontend.name}->{run_cfg.model.name} seed {run_cfg.seed}"
    try:
        result = run_experiment(
            run_cfg,
            hydra_cfg.runtime.output_dir,
            progress=lambda max_epochs: epoch_progress(max_epochs, label, Console(stderr=True)),
        )
    except StrfRunnerError as err:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)
    out = Console()
    out.print(summary_table(result.summary))
    out.print(f"results: {result.run_dir}", soft_wrap=True, highlight=False)
    return result.summary["test_mean_cc_norm"]


def error_line(err: BaseException) -> str:
    """One line for an error: the project's own message, or the config key at fault."""
    if isinstance(err, StrfRunnerError):
        return str(err)
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


def main() -> None:
    """Console entry point of ``strf-run``."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    show_traceback = debug or os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    keep_freed_memory()
    register_configs()
    try:
        _task()
    except (StrfRunnerError, HydraException, OmegaConfBaseException) as err:
        if show_traceback:
            raise
        print(f"{PROG}: error: {error_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
