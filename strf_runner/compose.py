"""Hydra glue: the structured-config schemas in Hydra's ConfigStore, and composing a run's config.

``strf-run`` composes through ``@hydra.main``; ``compose_config`` gives the same ``RunConfig`` from a
list of overrides without a command line (strf-bench's epoch rows, tests).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from strf_runner.config import RunConfig, TrainerConfig, validate
from strf_runner.data.sources import SOURCES
from strf_runner.frontends.registry import FRONTENDS
from strf_runner.models.registry import READOUTS
from strf_runner.registry import Entry, Registry
from strf_runner.tracking.base import TRACKERS

REGISTRIES: tuple[Registry[Any], ...] = (SOURCES, FRONTENDS, READOUTS, TRACKERS)


def register_configs() -> None:
    """Hydra's ConfigStore, built from the registries: each entry's config dataclass as the schema
    ``schema_<group>_<name>``, which a YAML option names in its defaults list
    (``/schema_frontend_leaf@_here_``; a tracker's ``/schema_logger_mlflow@mlflow``), and, for an entry
    without a YAML option under conf/<group>/, the option ``<group>=<name>`` itself: the schema's defaults.
    Top-level schema names keep them out of the group listing in --help."""
    cs = ConfigStore.instance()
    cs.store(name="schema_run", node=RunConfig)
    cs.store(name="schema_trainer", node=TrainerConfig)
    for registry in REGISTRIES:
        for entry in registry:
            cs.store(name=f"schema_{registry.group}_{entry.name}", node=entry.config)
            if not _has_yaml(registry.group, entry.name):
                cs.store(group=registry.group, name=entry.name, node=option_node(registry, entry))


def option_node(registry: Registry[Any], entry: Entry[Any]) -> Any:
    """The config an entry without a YAML option composes to: its dataclass's defaults, with the
    selector set to its name (and a dataset's display name, when its class leaves it unset)."""
    node = OmegaConf.structured(entry.config)
    if registry.selector is None:
        return {entry.name: node}
    node[registry.selector] = entry.name
    if OmegaConf.is_missing(node, "name"):
        node.name = entry.name
    return node


def _has_yaml(group: str, name: str) -> bool:
    return resources.files("strf_runner.conf").joinpath(group, f"{name}.yaml").is_file()


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


def compose_config(overrides: list[str]) -> RunConfig:
    """The validated ``RunConfig`` that ``strf-run <overrides>`` would run."""
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    validate(run_cfg)
    return run_cfg
