"""Structured configs: the run's schema, the base class of each pluggable group, and value checks.

A front-end's, readout's, dataset source's or tracker's own options are a dataclass in its module,
registered with it (``strf_runner.registry``); the CLI stores each in Hydra's ConfigStore as
``schema_<group>_<name>``, so an unknown key or a wrong type fails at compose time. ``validate`` then
checks values and combinations before any data is loaded: each options class checks its own values in
``check()``, and says what it can do through attributes (``ModelConfig.nonnegative_output``). This
module does not import Hydra: a notebook can build a ``RunConfig`` by hand and call ``run_experiment``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional

from omegaconf import II, MISSING, OmegaConf

from strf_runner.errors import ConfigError, StrfRunnerWarning
from strf_runner.identity import config_hash


@dataclass
class DatasetConfig:
    """Where the data come from. ``source`` picks the loader; ``neurons`` selects neurons ("all", a
    named selection such as "valid73" where the metadata allow it, or a list of ids or indices);
    ``*_stimuli`` override the file's splits."""

    name: str = MISSING
    source: str = MISSING
    root: Optional[str] = None
    neurons: Any = "all"
    train_stimuli: Optional[List[int]] = None
    val_stimuli: Optional[List[int]] = None
    test_stimuli: Optional[List[int]] = None

    #: the source's file is a cache strf-runner made (a damaged one is deleted and made again)
    cached: ClassVar[bool] = False

    def check(self) -> None:
        """ConfigError naming the key for a value this source cannot use (none here)."""

    def named_split(self) -> Optional[str]:
        """The name of the source's own split this config asks for (``dataset.split``); None: the file's."""
        return None

    def split_stimuli(self) -> dict[str, list[int]]:
        """The stimulus indices of the named split, by split name ({}: the file's own /splits)."""
        return {}


@dataclass
class FrontendConfig:
    """The wav2spec slot. ``name`` is a key of the front-end registry; ``lr`` is this arm's learning
    rate (the seed study trains LEAF at 3e-3 and the native arm at 1e-3), used unless trainer.lr is set.
    Every other field is passed to the front-end's constructor."""

    name: str = MISSING
    lr: float = 1e-3

    def check(self) -> None:
        """ConfigError naming the key for a value this front-end cannot use (none here)."""


@dataclass
class ModelConfig:
    """The readout. ``name`` is a key of the readout registry; every field but ``name`` and the training
    budget is passed to its constructor.

    The budget is the readout's own recipe where it needs one (a recurrent readout learns more slowly
    than a Linear STRF): ``lr`` trains the readout's parameters (the front-end's keep ``frontend.lr``),
    ``max_epochs`` and ``patience`` replace the trainer's. Null: the trainer's and front-end's values.
    ``trainer.lr`` set explicitly still trains everything at that rate.
    """

    name: str = MISSING
    lr: Optional[float] = None
    max_epochs: Optional[int] = None
    patience: Optional[int] = None

    #: what to set for non-negative predictions (a Poisson loss needs them), when these options do not give them
    nonnegative_with: ClassVar[str] = "a readout whose predictions are >= 0 (see its config)"

    @property
    def nonnegative_output(self) -> bool:
        """Whether the readout's predictions are >= 0 by construction with these options (a Poisson
        likelihood needs that)."""
        return False

    def check(self) -> None:
        """ConfigError naming the key for a value this readout cannot use (none here)."""


@dataclass
class TrainerConfig:
    """Optimiser, loss and early stopping. Defaults are the seed study's shared recipe.

    ``lr`` null (default) trains each front-end at its own ``frontend.lr``; a value overrides it.
    """

    max_epochs: int = 100
    patience: int = 30
    min_delta: float = 0.0
    lr: Optional[float] = None
    weight_decay: float = 0.0
    batch_size: int = 1
    loss: str = "mse"
    monitor: str = "val_cc_norm"
    mode: str = "max"
    track_train_metrics: bool = True
    device: str = II("device")
    deterministic: bool = True
    threads: Optional[int] = None
    grad_clip: Optional[float] = None  # max global gradient norm per step; null: no clipping
    cache_frontend: bool = True  # compute a fixed front-end stage once per stimulus (same numbers, faster)

    def check(self) -> None:
        """ConfigError naming the key for the first value out of range (the Fitter and ``validate`` both
        call it; the loss and monitor names are the Fitter's to check, as it holds their tables)."""
        t = self
        checks = [
            (t.lr is None or 0 < t.lr < math.inf, "lr", t.lr, "must be a finite number > 0 (or null: the front-end's lr)"),
            (0 <= t.weight_decay < math.inf, "weight_decay", t.weight_decay, "must be a finite number >= 0"),
            (t.max_epochs >= 1, "max_epochs", t.max_epochs, "must be >= 1"),
            (t.patience >= 1, "patience", t.patience, "must be >= 1"),
            (0 <= t.min_delta < math.inf, "min_delta", t.min_delta, "must be a finite number >= 0"),
            (t.batch_size >= 1, "batch_size", t.batch_size, "must be >= 1"),
            (t.mode in ("max", "min"), "mode", t.mode, "must be 'max' or 'min'"),
            (t.threads is None or t.threads >= 1, "threads", t.threads, "must be >= 1 or null"),
            (t.grad_clip is None or 0 < t.grad_clip < math.inf, "grad_clip", t.grad_clip,
             "must be a finite number > 0 or null"),
        ]
        raise_first_failure(checks, "trainer.")


@dataclass
class TrackerConfig:
    """The options of one experiment tracker (``logger.<name>``); each tracker's subclass is in its module."""

    def check(self) -> None:
        """ConfigError naming the key for a value this tracker cannot use (none here)."""


@dataclass
class CVConfig:
    """k-fold cross-validation over stimuli (``strf_runner/data/folds.py`` documents which stimuli each fold
    tests, validates and trains on). ``folds`` null: one run on the dataset's own split. ``fold``: the one
    fold a run fits (set by strf-run itself: a single command runs every fold, a sweep makes each fold a
    job). ``val``: validation stimuli per fold (null: the size of the file's own validation split)."""

    folds: Optional[int] = None
    fold: Optional[int] = None
    val: Optional[int] = None


@dataclass
class RunConfig:
    """One run: a dataset, a front-end, a readout and a trainer, plus seeds and the device."""

    dataset: DatasetConfig = MISSING
    frontend: FrontendConfig = MISSING
    model: ModelConfig = MISSING
    trainer: TrainerConfig = MISSING
    # experiment trackers by name (``logger=tensorboard``, several: ``logger=[tensorboard,mlflow]``), each with
    # its options (``strf_runner.tracking``); copies of the run, never part of its identity (config hash)
    logger: Dict[str, Any] = dataclasses.field(default_factory=dict)
    cv: CVConfig = dataclasses.field(default_factory=CVConfig)
    seed: int = 0  # seeds model initialisation
    data_seed: int = II("seed")  # seeds the training-set order (separately from the model)
    device: str = "auto"  # auto (cuda when visible, else cpu) | cpu | cuda | cuda:N | mps
    run_name: str = MISSING  # conf/config.yaml: <frontend>-<model>-<dataset>-s<seed>
    # sweeps live under sweep_root; a job whose resolved config matches a finished run there reuses its
    # results (reuse_finished=false: always train)
    sweep_root: str = "outputs/multirun"
    reuse_finished: bool = True
    analysis: str = "none"  # "full": write every interpretability figure after the run (strf-analyze)
    resume: bool = False  # continue the interrupted run in this run dir (hydra.run.dir) from its last.pt
    init_from: Optional[str] = None  # a finished run dir whose best weights this run starts from (fine-tuning)


DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class ResolvedConfig:
    """A run config resolved once. cfg: typed, every ``${...}`` resolved, validated. tree: the same as
    a nested dict (config.yaml). hash: ``identity.config_hash(tree)``, the run's identity."""

    cfg: RunConfig
    tree: dict[str, Any]
    hash: str

    @property
    def yaml(self) -> str:
        return OmegaConf.to_yaml(self.tree)

    def resuming(self) -> "ResolvedConfig":
        """The same run with ``resume=true`` (a volatile key: the hash stays)."""
        return ResolvedConfig(dataclasses.replace(self.cfg, resume=True), {**self.tree, "resume": True}, self.hash)


def resolve_config(cfg: Any) -> ResolvedConfig:
    """A RunConfig (or a DictConfig of one) resolved, type-checked and validated (ConfigError naming
    the key otherwise): what a run, a sweep's reuse check and resume all compare."""
    node = OmegaConf.structured(cfg)
    tree = OmegaConf.to_container(node, resolve=True)
    typed = OmegaConf.to_object(node)
    validate(typed)
    return ResolvedConfig(typed, tree, config_hash(tree))


def validate(cfg: RunConfig) -> None:
    """Check values a user is likely to get wrong; raise ConfigError naming the key."""
    t = cfg.trainer
    t.check()
    checks = [
        (0 < cfg.frontend.lr < math.inf, "frontend.lr", cfg.frontend.lr, "must be a finite number > 0"),
        (_device_kind(t.device) in DEVICES, "trainer.device", t.device, f"must be one of {DEVICES} (or cuda:N)"),
        (cfg.seed >= 0, "seed", cfg.seed, "must be >= 0"),
        (cfg.data_seed >= 0, "data_seed", cfg.data_seed, "must be >= 0"),
        (cfg.analysis in ("none", "full"), "analysis", cfg.analysis, "must be 'none' or 'full'"),
        (_plain_name(cfg.run_name), "run_name", cfg.run_name,
         "must be a plain folder name: no '/' or '\\', not empty, '.' or '..' (it names the run dir inside outputs/)"),
    ]
    for key in ("max_epochs", "patience"):
        value = getattr(cfg.model, key)
        if value is not None:
            checks.append((value >= 1, f"model.{key}", value, "must be >= 1"))
    m_lr = cfg.model.lr
    checks.append((m_lr is None or 0 < m_lr < math.inf, "model.lr", m_lr, "must be a finite number > 0 or null"))
    raise_first_failure(checks)
    for options in (cfg.dataset, cfg.frontend, cfg.model, *(o for o in cfg.logger.values() if o is not None)):
        options.check()
    validate_cv(cfg)
    if t.loss == "poisson" and not cfg.model.nonnegative_output:
        raise ConfigError(
            f"trainer.loss=poisson needs non-negative predicted rates, which model={cfg.model.name} with these "
            f"options does not give: {cfg.model.nonnegative_with} (or trainer.loss=mse)"
        )
    max_epochs, patience = epoch_budget(cfg)
    if patience > max_epochs:
        where = "model" if cfg.model.patience is not None or cfg.model.max_epochs is not None else "trainer"
        warnings.warn(
            f"{where}.patience={patience} > {where}.max_epochs={max_epochs}: early stopping can never trigger",
            StrfRunnerWarning,
            stacklevel=2,
        )


def validate_cv(cfg: RunConfig) -> None:
    """The cross-validation keys alone and with the dataset's splits; ConfigError naming the key. What
    depends on the data (more folds than stimuli, too few left for validation) is ``data.folds.check_folds``."""
    cv = cfg.cv
    if cv.folds is None:
        for key in ("fold", "val"):
            if getattr(cv, key) is not None:
                raise ConfigError(f"cv.{key}={getattr(cv, key)!r} needs cv.folds (the number of folds), which is null")
        return
    if cv.folds < 2:
        raise ConfigError(f"cv.folds={cv.folds!r} must be >= 2 (or null: no cross-validation)")
    if cv.fold is not None and not 0 <= cv.fold < cv.folds:
        raise ConfigError(f"cv.fold={cv.fold!r} must be in 0..{cv.folds - 1} (cv.folds={cv.folds})")
    if cv.val is not None and cv.val < 1:
        raise ConfigError(f"cv.val={cv.val!r} must be >= 1 (or null: the size of the dataset's validation split)")
    for name in ("train", "val", "test"):
        if getattr(cfg.dataset, f"{name}_stimuli") is not None:
            raise ConfigError(f"dataset.{name}_stimuli cannot be combined with cv.folds={cv.folds}: cross-validation "
                              f"chooses every fold's stimuli itself (drop dataset.{name}_stimuli)")
    split = cfg.dataset.named_split()
    if split not in (None, "default"):
        raise ConfigError(f"dataset.split={split!r} cannot be combined with cv.folds={cv.folds}: cross-validation "
                          "chooses every fold's stimuli itself (drop dataset.split)")


BUDGET_KEYS = ("lr", "max_epochs", "patience")  # the readout's training budget: not constructor arguments


def learning_rates(cfg: RunConfig) -> tuple[float, float]:
    """(front-end lr, readout lr): trainer.lr for both when set; else the front-end arm's own lr, and
    the readout's budget lr (``model.lr``) or, without one, the front-end's."""
    if cfg.trainer.lr is not None:
        return cfg.trainer.lr, cfg.trainer.lr
    return cfg.frontend.lr, cfg.model.lr if cfg.model.lr is not None else cfg.frontend.lr


def epoch_budget(cfg: RunConfig) -> tuple[int, int]:
    """(max_epochs, patience): the readout's budget where it sets them, else the trainer's."""
    m, t = cfg.model, cfg.trainer
    return (m.max_epochs if m.max_epochs is not None else t.max_epochs,
            m.patience if m.patience is not None else t.patience)


def raise_first_failure(checks: list[tuple[bool, str, Any, str]], prefix: str = "") -> None:
    """ConfigError ``<prefix><key>=<value> <why>`` for the first check (ok, key, value, why) that failed."""
    for ok, key, value, why in checks:
        if not ok:
            raise ConfigError(f"{prefix}{key}={value!r} {why}")


def require_at_least_one(options: Any, group: str, keys: tuple[str, ...]) -> None:
    """ConfigError naming ``<group>.<key>`` for the first of ``keys`` of ``options`` that is set and < 1."""
    for key in keys:
        value = getattr(options, key)
        if value is not None and value < 1:
            raise ConfigError(f"{group}.{key}={value!r} must be >= 1")


def _plain_name(name: str) -> bool:
    """A name that stays one folder where it is put: no path separator, not empty, '.' or '..'."""
    return name.strip() not in ("", ".", "..") and not any(sep in name for sep in ("/", "\\", "\0"))


def _device_kind(device: str) -> str:
    return device.split(":", 1)[0]
