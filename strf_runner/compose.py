"""Hydra glue: the structured-config schemas in Hydra's ConfigStore, and composing a run's config.

``strf-run`` composes through ``@hydra.main``; ``compose_config`` gives the same ``RunConfig`` from a
list of overrides without a command line (strf-bench's epoch rows, tests).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from strf_runner.config import SCHEMAS, RunConfig, validate


def register_configs() -> None:
    """Store the structured-config schemas; each YAML option names its schema in its defaults list
    (``/schema_<group>_<kind>@_here_``). Top-level names keep them out of the group listing in --help.
    Also make the project's own Hydra plugins findable (``show_plugins``)."""
    show_plugins()
    cs = ConfigStore.instance()
    cs.store(name="schema_run", node=RunConfig)
    for group, kinds in SCHEMAS.items():
        for kind, node in kinds.items():
            cs.store(name=f"schema_{group}_{kind}", node=node)


def cv_subdir(num: int, run_name: str, folds: int | None, fold: int | None) -> str:
    """A sweep job's subdir (``hydra.sweep.subdir``): ``<num>_<run_name>``, or for fold ``fold`` of a
    cross-validation ``<arm>_<run_name>/fold<fold>`` with arm = num // folds, as strf-run makes the folds the
    innermost loop of a sweep (``cli.with_fold_sweep``): the k folds of an arm share one CV dir."""
    if folds is None or fold is None:
        return f"{num}_{run_name}"
    return f"{int(num) // int(folds)}_{run_name}/fold{fold}"


def register_resolvers() -> None:
    """The OmegaConf resolvers conf/config.yaml uses (``cv_subdir``). Run when this module is imported,
    so that a launcher's job process (which imports the task, hence this module) has them too."""
    OmegaConf.register_new_resolver("cv_subdir", cv_subdir, replace=True)


register_resolvers()


def show_plugins() -> None:
    """Put the repository's ``hydra_plugins/`` (strf-runner's SLURM launcher) on the namespace path that
    Hydra's plugin scan walks. A wheel installs it into site-packages, where the scan finds it anyway;
    an editable install maps it through setuptools' import hook, which the scan (pkgutil) cannot see."""
    import hydra_plugins

    here = Path(__file__).resolve().parent.parent / "hydra_plugins"
    if here.is_dir() and str(here) not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(str(here))


def compose_config(overrides: list[str]) -> RunConfig:
    """The validated ``RunConfig`` that ``strf-run <overrides>`` would run."""
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    validate(run_cfg)
    return run_cfg
