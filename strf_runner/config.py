"""Structured configs: the typed schema of every config group, and value checks.

Each YAML option under ``conf/<group>/`` starts from one of these dataclasses (the CLI stores them
in Hydra's ConfigStore as ``schema_<group>_<kind>``), so an unknown key or a wrong type fails at compose
time. ``validate`` then checks values and combinations before any data is loaded. This module does
not import Hydra: a notebook can build a ``RunConfig`` by hand and call ``run_experiment``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional

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


@dataclass
class SynthDatasetConfig(DatasetConfig):
    """The embedded synthetic dataset, generated from ``seed`` and cached under ``root``."""

    source: str = "synth"
    seed: int = 0
    n_stimuli: int = 20
    duration_s: float = 4.995
    n_neurons: int = 119
    n_repeats: int = 20
    audio_fs: float = 48000.0
    dt_ms: float = 5.0
    n_train: int = 14
    n_val: int = 3
    n_test: int = 3


@dataclass
class NS1DatasetConfig(DatasetConfig):
    """The real NS1 release (Harper et al. 2016): ``root`` is the folder holding the raw release
    (MetadataSHEnCneurons.mat and spikesandwav/), default <cache>/ns1_raw; ``download`` fetches it
    there when absent. Processed once into the cache; every option below is part of the cache key."""

    source: str = "ns1"
    download: bool = False
    smooth: bool = True  # the reference's centred, unnormalised 5-tap Hann smoothing of the counts
    resample_from: str = "reference"  # 48828 -> 48000 Hz as the reference does ("exact": 48828.125 Hz)
    native: str = "auto"  # X_nfht when present in root, else recomputed from the waveforms
    verify: bool = True
    split: str = "default"


@dataclass
class HDF5DatasetConfig(DatasetConfig):
    """A dataset file in the project's HDF5 format (see docs/datasets/hdf5.md)."""

    source: str = "hdf5"
    path: str = MISSING


@dataclass
class NWBDatasetConfig(DatasetConfig):
    """Recordings in NWB (``strf_runner/data/nwb.py``): ``path`` an NWB file, a list of files of one
    experiment, or a folder of them; converted once into the cache (``root``), keyed by the inputs'
    SHA-256 and every option below. Presentations come from the TimeIntervals table ``intervals``
    (default: trials, epochs, then any table with a stimulus column), stimuli from ``stimulus_column``
    (default: the first of stimulus_name, stimulus, ...). ``units_where`` / ``presentations_where``:
    ``COLUMN OP VALUE`` conditions (``quality==good``). ``audio``: where sounds come from (auto:
    stimulus templates, then played audio under /stimulus, then ``<name>.wav`` in ``audio_dir``,
    default the NWB file's folder). Splits: the *_stimuli indices (into the sorted stimulus names), else
    15 % test and 15 % validation drawn with ``split_seed``."""

    source: str = "nwb"
    path: Any = MISSING
    intervals: Optional[str] = None
    stimulus_column: Optional[str] = None
    units_where: Optional[str] = None
    presentations_where: Optional[str] = None
    audio: str = "auto"
    audio_series: Optional[str] = None
    audio_dir: Optional[str] = None
    dt_ms: float = 5.0
    audio_fs: float = 48000.0
    split_seed: int = 0


@dataclass
class FrontendConfig:
    """The wav2spec slot. ``name`` is a key of the front-end registry; ``lr`` is this arm's learning
    rate (the seed study trains LEAF at 3e-3 and the native arm at 1e-3), used unless trainer.lr is set.
    Every other field is passed to the front-end's constructor."""

    name: str = MISSING
    lr: float = 1e-3


@dataclass
class LeafFrontendConfig(FrontendConfig):
    """CausalLEAF: learnable Gabor filterbank, Gaussian pooling and PCEN on the waveform."""

    name: str = "leaf"
    lr: float = 3e-3
    n_filters: int = 34
    f_min: float = 60.0
    f_max: float = 22627.0
    gabor_ms: float = 15.0
    pool_ms: float = 20.0
    learn_filters: bool = True
    learn_pooling: bool = True
    learn_pcen: bool = True


@dataclass
class NativePcenFrontendConfig(FrontendConfig):
    """The native spectrogram (dB -> linear) through learnable per-channel PCEN (4F parameters)."""

    name: str = "native_pcen"
    alpha: float = 0.96
    delta: float = 2.0
    root: float = 0.5
    smooth: float = 0.04
    learnable: bool = True


@dataclass
class MelFrontendConfig(FrontendConfig):
    """Causal mel spectrogram on the waveform; optional learnable gains or PCEN compression."""

    name: str = "mel"
    n_filters: int = 34
    f_min: float = 500.0
    f_max: float = 22627.0
    window_ms: float = 10.0
    compression: str = "log"
    learnable_gain: bool = False


@dataclass
class SincNetFrontendConfig(FrontendConfig):
    """SincNet: learnable band-pass edges (sinc filters) on the waveform."""

    name: str = "sincnet"
    n_filters: int = 34
    kernel_size: int = 251
    f_min: float = 300.0
    f_max: Optional[float] = None
    init: str = "mel"
    activation: str = "logabs"
    envelope: bool = False
    envelope_ms: Optional[float] = None
    fir: str = "auto"


@dataclass
class GammatoneFrontendConfig(FrontendConfig):
    """ERB-spaced gammatone FIR filterbank, rectification, pooling and compression."""

    name: str = "gammatone"
    n_filters: int = 34
    f_min: float = 500.0
    f_max: float = 22627.0
    order: int = 4
    kernel_ms: float = 20.0
    pool_ms: Optional[float] = None
    rectify: str = "half"
    compression: str = "log"
    learn_centres: bool = False
    fir: str = "auto"


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


@dataclass
class LinearModelConfig(ModelConfig):
    """Causal Linear STRF: ``temporal_window_size`` frames of history per neuron (9 = 45 ms at 5 ms)."""

    name: str = "linear"
    temporal_window_size: int = 9
    batch_norm: bool = True
    activation: str = "identity"


@dataclass
class LNModelConfig(ModelConfig):
    """Linear STRF + per-neuron parametric softplus (2N more parameters)."""

    name: str = "ln"
    temporal_window_size: int = 9
    batch_norm: bool = True


@dataclass
class NRFModelConfig(ModelConfig):
    """Network receptive field: ``n_hidden`` causal STRF units, tanh, per-time-step linear readout."""

    name: str = "nrf"
    temporal_window_size: int = 9
    n_hidden: int = 20


@dataclass
class DNetModelConfig(ModelConfig):
    """NRF with a learnable exponential decay per hidden unit over round(7 tau) frames."""

    name: str = "dnet"
    temporal_window_size: int = 9
    n_hidden: int = 20
    tau: float = 2.0


@dataclass
class StateNetModelConfig(ModelConfig):
    """Locally connected spectral encoder per time step, a recurrence (gru | lstm | rnn), readout."""

    name: str = "statenet"
    kernel_size: int = 7
    stride: int = 3
    channels: int = 7
    rnn: str = "gru"
    hidden_size: Optional[int] = None  # null: the encoder's feature count
    # the reference's earlier version (batch norm over the encoder's channels, linear readout): the best
    # validation score of the four combinations on NS1 (3 seeds each, README), and the one that
    # reproduces the anchor; layer | softplus give the newest version
    encoder_norm: str = "batch"
    output: str = "linear"


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


@dataclass
class TensorBoardLoggerConfig:
    """TensorBoard event files. save_dir null: ``<run dir>/tb`` (a sweep's runs then sit side by side:
    ``tensorboard --logdir <sweep dir>``)."""

    save_dir: Optional[str] = None


@dataclass
class MLflowLoggerConfig:
    """MLflow. tracking_uri null: a local store, ``sqlite:///outputs/mlflow.db`` under the working
    directory (artifacts beside it); ``http://host:5000`` for a server. experiment_name null: the sweep
    dir for a sweep's runs (one experiment per sweep), ``strf-runner`` for single runs. timeout_s: per
    request to a server (one retry), so a server that is down costs the run seconds, once."""

    tracking_uri: Optional[str] = None
    experiment_name: Optional[str] = None
    timeout_s: int = 10


@dataclass
class WandbLoggerConfig:
    """Weights & Biases. mode offline (the default: files under ``<run dir>/wandb``, ``wandb sync`` them
    later) or online (after ``wandb login``). save_dir null: the run dir. A sweep's runs form a W&B group."""

    project: str = "strf-runner"
    entity: Optional[str] = None
    mode: str = "offline"
    save_dir: Optional[str] = None


@dataclass
class LoggerConfig:
    """Experiment trackers (``logger=tensorboard``, several at once: ``logger=[tensorboard,mlflow]``); each
    field set is one tracker. Copies of the run: never part of its identity (config hash)."""

    tensorboard: Optional[TensorBoardLoggerConfig] = None
    mlflow: Optional[MLflowLoggerConfig] = None
    wandb: Optional[WandbLoggerConfig] = None


@dataclass
class CVConfig:
    """k-fold cross-validation over stimuli (``strf_runner/data/folds.py`` documents which stimuli each fold
    tests, validates and trains on). ``folds`` null: one run on the dataset's own split. ``fold``: the one
    fold a run fits (set by strf-run itself: a single command runs every fold, a sweep makes each fold a
    job). ``val``: validation stimuli per fold (null: the size of the file's own validation split)."""

    folds: Optional[int] = None
    fold: Optional[int] = None
    val: Optional[int] = None


LOGGER_OPTIONS: dict[str, type] = {"tensorboard": TensorBoardLoggerConfig, "mlflow": MLflowLoggerConfig,
                                   "wandb": WandbLoggerConfig}


@dataclass
class RunConfig:
    """One run: a dataset, a front-end, a readout and a trainer, plus seeds and the device."""

    dataset: DatasetConfig = MISSING
    frontend: FrontendConfig = MISSING
    model: ModelConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
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


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"synth": SynthDatasetConfig, "ns1": NS1DatasetConfig, "hdf5": HDF5DatasetConfig,
                "nwb": NWBDatasetConfig},
    "frontend": {
        "plain": FrontendConfig,
        "leaf": LeafFrontendConfig,
        "native_pcen": NativePcenFrontendConfig,
        "mel": MelFrontendConfig,
        "sincnet": SincNetFrontendConfig,
        "gammatone": GammatoneFrontendConfig,
    },
    "model": {
        "plain": ModelConfig,
        "linear": LinearModelConfig,
        "ln": LNModelConfig,
        "nrf": NRFModelConfig,
        "dnet": DNetModelConfig,
        "statenet": StateNetModelConfig,
    },
    "trainer": {"trainer": TrainerConfig},
    "logger": {"logger": LoggerConfig},
}

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
    checks = [
        (t.lr is None or 0 < t.lr < math.inf, "trainer.lr", t.lr, "must be a finite number > 0 (or null: the front-end's lr)"),
        (0 < cfg.frontend.lr < math.inf, "frontend.lr", cfg.frontend.lr, "must be a finite number > 0"),
        (0 <= t.weight_decay < math.inf, "trainer.weight_decay", t.weight_decay, "must be a finite number >= 0"),
        (t.max_epochs >= 1, "trainer.max_epochs", t.max_epochs, "must be >= 1"),
        (t.patience >= 1, "trainer.patience", t.patience, "must be >= 1"),
        (0 <= t.min_delta < math.inf, "trainer.min_delta", t.min_delta, "must be a finite number >= 0"),
        (t.batch_size >= 1, "trainer.batch_size", t.batch_size, "must be >= 1"),
        (t.mode in ("max", "min"), "trainer.mode", t.mode, "must be 'max' or 'min'"),
        (t.threads is None or t.threads >= 1, "trainer.threads", t.threads, "must be >= 1 or null"),
        (t.grad_clip is None or 0 < t.grad_clip < math.inf, "trainer.grad_clip", t.grad_clip,
         "must be a finite number > 0 or null"),
        (_device_kind(t.device) in DEVICES, "trainer.device", t.device, f"must be one of {DEVICES} (or cuda:N)"),
        (cfg.seed >= 0, "seed", cfg.seed, "must be >= 0"),
        (cfg.data_seed >= 0, "data_seed", cfg.data_seed, "must be >= 0"),
        (cfg.analysis in ("none", "full"), "analysis", cfg.analysis, "must be 'none' or 'full'"),
        (_plain_name(cfg.run_name), "run_name", cfg.run_name,
         "must be a plain folder name: no '/' or '\\', not empty, '.' or '..' (it names the run dir inside outputs/)"),
    ]
    if cfg.logger.mlflow is not None:
        checks.append((cfg.logger.mlflow.timeout_s >= 1, "logger.mlflow.timeout_s", cfg.logger.mlflow.timeout_s,
                       "must be >= 1"))
    if cfg.logger.wandb is not None:
        checks.append((cfg.logger.wandb.mode in ("offline", "online"), "logger.wandb.mode", cfg.logger.wandb.mode,
                       "must be 'offline' or 'online'"))
    for key in ("temporal_window_size", "n_hidden", "kernel_size", "stride", "channels", "max_epochs", "patience"):
        value = getattr(cfg.model, key, None)
        if value is not None:
            checks.append((value >= 1, f"model.{key}", value, "must be >= 1"))
    m_lr = cfg.model.lr
    checks.append((m_lr is None or 0 < m_lr < math.inf, "model.lr", m_lr, "must be a finite number > 0 or null"))
    path = getattr(cfg.dataset, "path", None)
    if path is not None:
        checks.append((str(path).strip() != "", "dataset.path", path, "is empty: give the HDF5 file to read"))
    for ok, key, value, why in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r} {why}")
    validate_cv(cfg)
    if t.loss == "poisson" and not nonnegative_rates(cfg.model):
        raise ConfigError(
            f"trainer.loss=poisson needs non-negative predicted rates, which model={cfg.model.name} with these "
            "options does not give: use ln, nrf, statenet with model.output=softplus, or linear with "
            "model.activation=softplus|relu (or trainer.loss=mse)"
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
    split = getattr(cfg.dataset, "split", "default")
    if split != "default":
        raise ConfigError(f"dataset.split={split!r} cannot be combined with cv.folds={cv.folds}: cross-validation "
                          "chooses every fold's stimuli itself (drop dataset.split)")


def nonnegative_rates(model: ModelConfig) -> bool:
    """Whether the readout's predictions are >= 0 by construction (what a Poisson likelihood needs)."""
    if model.name in ("ln", "nrf"):
        return True
    if model.name == "statenet":
        return getattr(model, "output", None) == "softplus"
    return getattr(model, "activation", "identity") in ("softplus", "relu")


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


def _plain_name(name: str) -> bool:
    """A name that stays one folder where it is put: no path separator, not empty, '.' or '..'."""
    return name.strip() not in ("", ".", "..") and not any(sep in name for sep in ("/", "\\", "\0"))


def _device_kind(device: str) -> str:
    return device.split(":", 1)[0]
