"""One run from a validated config: data -> model -> fit -> test scores -> run dir.

Plain Python (no Hydra): ``run_experiment(cfg, run_dir)`` is what the CLI calls and what a notebook
can call with a ``RunConfig`` built by hand.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

import numpy as np
import pandas as pd
import torch
import yaml
from omegaconf import OmegaConf

import strf_runner
from strf_runner import metrics
from strf_runner.atomic import atomic_path
from strf_runner.config import BUDGET_KEYS, RunConfig, epoch_budget, learning_rates, validate
from strf_runner.data.collate import DeviceLoader
from strf_runner.data.dataset import NeuralDataset, split_datasets
from strf_runner.data.schema import DatasetContent, file_sha256, read_dataset
from strf_runner.data.selection import select_neuron_indices, subset_neurons
from strf_runner.data.sources import get_source
from strf_runner.errors import ConfigError, DatasetError, ResultsError, TrainingError
from strf_runner.frontends.registry import build_frontend, frontend_class
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.registry import build_readout
from strf_runner.preflight import few_valid_warning, preflight
from strf_runner.results.collect import VOLATILE_KEYS, config_hash, differing_keys, flatten
from strf_runner.results.load import load_run
from strf_runner.results.rundir import FAILED, LAST_STATE, TEST_PREDICTIONS, RunDir
from strf_runner.results.tables import neuron_table, score_summary
from strf_runner.training.device import resolve_device
from strf_runner.training.checkpoint import save_checkpoint
from strf_runner.training.fitter import EpochRecord, FitResult, Fitter, FitState, evaluate, history_rows
from strf_runner.training.seeding import data_generator, make_deterministic, seed_everything


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    neurons: pd.DataFrame
    fit: FitResult


def dataset_path(cfg: RunConfig) -> Path:
    """The HDF5 file a dataset config refers to, made, fetched or generated on first use (data/sources.py)."""
    return get_source(cfg.dataset.source).path(cfg.dataset)


def stimulus_splits(cfg: RunConfig) -> dict[str, list[int] | None]:
    """Split overrides: the source's named split (NS1's ``dataset.split``), then explicit *_stimuli on top."""
    d = cfg.dataset
    splits: dict[str, list[int] | None] = dict(get_source(d.source).splits(d))
    for name, given in (("train", d.train_stimuli), ("val", d.val_stimuli), ("test", d.test_stimuli)):
        if given is not None:
            splits[name] = list(given)
    return splits


def build_model(cfg: RunConfig, data: NeuralDataset) -> EncodingModel:
    """Front-end + readout for ``data``, each built once; ``model.spec`` holds every constructor
    argument of both (data-dependent ones included: what ``models.encoding.build_encoding_model``
    rebuilds it from)."""
    frontend_spec = {k: v for k, v in dataclasses.asdict(cfg.frontend).items() if k != "lr"}
    frontend_spec.update(frontend_class(cfg.frontend.name).geometry(data.n_bands, data.audio_fs, data.hop))
    frontend = build_frontend(**frontend_spec)
    readout_spec = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in BUDGET_KEYS}
    readout_spec.update(n_bands=frontend.out_channels, n_neurons=data.n_neurons)
    model = EncodingModel(frontend, build_readout(**readout_spec))
    model.spec = {"frontend": frontend_spec, "readout": readout_spec}
    return model


def model_info(model: EncodingModel, data: NeuralDataset) -> dict[str, Any]:
    """model.json: the model's spec plus what a user of the model needs to feed it and read its output."""
    return {
        "spec": model.spec,
        "view": data.view,
        "neuron_ids": list(data.neuron_ids),
        "dt_ms": data.dt_ms,
        "audio_fs": data.audio_fs,
        "hop": data.hop,
        "spectrogram_freqs_hz": None if data.spectrogram_freqs is None else [float(f) for f in data.spectrogram_freqs],
    }


def warm_start(model: EncodingModel, info: dict[str, Any], source: str) -> dict[str, Any]:
    """Load the best weights of the finished run at ``source`` into ``model`` (``init_from``).

    The source must have the same model spec (every constructor argument, data-dependent ones
    included) and the same neuron ids; ConfigError naming what differs otherwise. Returns what the
    summary records of the source: its path, config hash and test score.
    """
    loaded = load_run(Path(source).expanduser())
    differ = differing_keys(loaded.info["spec"], info["spec"])
    if differ:
        old, new = flatten(loaded.info["spec"]), flatten(info["spec"])
        shown = ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in differ[:4])
        raise ConfigError(f"init_from={source}: that run's model differs from this one in {shown}")
    if loaded.neuron_ids != info["neuron_ids"]:
        n_diff = sum(a != b for a, b in zip(loaded.neuron_ids, info["neuron_ids"]))
        raise ConfigError(
            f"init_from={source}: that run's {len(loaded.neuron_ids)} neurons are not this run's "
            f"{len(info['neuron_ids'])} in the same order ({n_diff} ids differ): its readout weights would belong to other units"
        )
    model.load_state_dict(loaded.model.state_dict())
    return {
        "path": str(loaded.path.resolve()),
        "config_hash": loaded.summary.get("config_hash"),
        "test_mean_cc_norm": loaded.summary.get("test_mean_cc_norm"),
    }


def truth_scores(content: DatasetContent, indices: list[int]) -> metrics.NeuronScores | None:
    """Scores of the generator's true rates on the given stimuli (the achievable ceiling), if stored."""
    rates = content.truth.get("rates")
    if rates is None:
        return None
    pred = torch.from_numpy(np.stack([rates[i] for i in indices]))[:, :, None, :]
    resp = torch.from_numpy(np.stack([content.stimuli[i].responses for i in indices]))
    return metrics.score_neurons(pred, resp)


def param_groups(model: EncodingModel, frontend_lr: float, readout_lr: float) -> list[dict[str, Any]]:
    """AdamW's parameter groups: the front-end's parameters at its lr, the readout's at its own (one
    group when the two are equal, as an optimiser of one lr always was)."""
    if frontend_lr == readout_lr:
        return [{"params": list(model.parameters()), "lr": frontend_lr}]
    groups = [{"params": list(model.frontend.parameters()), "lr": frontend_lr},
              {"params": list(model.readout.parameters()), "lr": readout_lr}]
    return [g for g in groups if g["params"]]


def prepare_fit(
    cfg: RunConfig,
    sets: dict[str, NeuralDataset],
    device: torch.device,
    checkpoint_path: Path | None = None,
    monitor: str | None = None,
    state_path: Path | None = None,
) -> tuple[EncodingModel, Fitter, dict[str, DeviceLoader]]:
    """Model, optimiser, fitter and device loaders for the train / val / test ``sets`` (seed first).
    monitor: what early stopping watches (default ``trainer.monitor``); checkpoint_path, state_path:
    the Fitter's best weights and whole training state."""
    model = build_model(cfg, sets["train"]).to(device)
    t = cfg.trainer
    optimizer = torch.optim.AdamW(param_groups(model, *learning_rates(cfg)), weight_decay=t.weight_decay)
    max_epochs, patience = epoch_budget(cfg)
    # a fixed front-end stage (mel, gammatone, native_pcen's dB -> linear) is computed once per stimulus,
    # exactly as a step computes it; with batches of several stimuli the padding would differ, so never then
    cached = t.cache_frontend and t.batch_size == 1 and model.frontend.fixed_finite
    loaders = {
        name: DeviceLoader(
            ds,
            batch_size=t.batch_size,
            shuffle=name == "train",
            generator=data_generator(cfg.data_seed) if name == "train" else None,
            device=device,
            features=model.frontend.finite if cached else None,
        )
        for name, ds in sets.items()
    }
    fitter = Fitter(
        model,
        optimizer,
        loss=t.loss,
        max_epochs=max_epochs,
        patience=patience,
        min_delta=t.min_delta,
        monitor=monitor or t.monitor,
        mode=t.mode,
        track_train_metrics=t.track_train_metrics,
        checkpoint_path=checkpoint_path,
        grad_clip=t.grad_clip,
        state_path=state_path,
    )
    return model, fitter, loaders


def _resume_state(cfg: RunConfig, run: RunDir, resolved: dict[str, Any]) -> FitState | None:
    """The state to continue from when ``cfg.resume``: ``last.pt`` of this run dir, whose config
    must hash like the current one (ResultsError otherwise); None when not resuming."""
    if not cfg.resume:
        return None
    state_file, config_file = run.path / LAST_STATE, run.path / "config.yaml"
    if not state_file.is_file() or not config_file.is_file():
        raise ResultsError(f"resume=true but {run.path} holds no interrupted run ({LAST_STATE} missing)")
    previous = yaml.safe_load(config_file.read_text()) or {}
    if config_hash(previous) != config_hash(resolved):
        keys = differing_keys(previous, resolved, ignore=VOLATILE_KEYS)
        raise ResultsError(f"resume=true but the config differs from the interrupted run's in {keys}")
    return FitState.load(state_file)


def write_test_predictions(path: Path, predictions: torch.Tensor, stimuli: list[int], neuron_ids: list[str]) -> None:
    """The best model's test-set predictions, atomically: ``predictions`` (S, N, T_max) float32
    (NaN past a shorter stimulus's end), ``stimuli`` (S,) dataset indices, ``neuron_ids`` (N,)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            predictions=predictions[:, :, 0].float().cpu().numpy(),
            stimuli=np.asarray(stimuli, dtype=np.int64),
            neuron_ids=np.asarray(neuron_ids),
        )


FAILED_STATE = "failed_state.pt"  # weights and optimiser when training stopped on non-finite values

EpochCallback = Callable[[EpochRecord, float, "int | None"], None]


def load_data(cfg: RunConfig, view: str) -> tuple[Path, DatasetContent, dict[str, NeuralDataset]]:
    """The dataset file, its content (cut to the selected neurons) and the train / val / test sets."""
    path = dataset_path(cfg)
    try:
        content = read_dataset(path, views=(view,))
    except DatasetError as err:
        if get_source(cfg.dataset.source).cached:
            raise DatasetError(f"{err} (a cached file: delete {path} and it is made again)") from err
        raise
    neurons = select_neuron_indices(content.neuron_meta, content.neuron_ids, cfg.dataset.neurons)
    if neurons != list(range(len(content.neuron_ids))):
        content = subset_neurons(content, neurons)
    sources = [f"dataset.split={cfg.dataset.split}"] if hasattr(cfg.dataset, "split") else []
    sources += [f"dataset.{k}_stimuli" for k in ("train", "val", "test") if getattr(cfg.dataset, f"{k}_stimuli") is not None]
    origin = f"splits set by {', '.join(sources)}" if sources else "the file's own /splits"
    return path, content, split_datasets(content, view, stimulus_splits(cfg), origin=origin)


def run_experiment(
    cfg: RunConfig,
    run_dir: str | Path,
    progress: Callable[[int], ContextManager[EpochCallback]] | None = None,
    records: dict[str, str] | None = None,
) -> RunResult:
    """Fit and test one model as configured; write the run dir; return its summary and tables.

    Everything that can refuse the run (config values, the data, the model against the data, the
    ownership of ``run_dir``) is checked before the first file is written to ``run_dir``.

    progress: called with max_epochs once training starts; the context manager it returns yields
    the callback the fitter calls after every epoch (the CLI's progress bar).
    records: extra files (relative name -> text) written into the run dir right after it is claimed
    (the CLI's Hydra record under .hydra/).
    """
    start = time.perf_counter()
    cfg = OmegaConf.to_object(OmegaConf.structured(cfg))  # resolve ${...} defaults, check types
    validate(cfg)
    device = resolve_device(cfg.trainer.device)
    view = frontend_class(cfg.frontend.name).view
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    if cfg.trainer.threads is not None:
        torch.set_num_threads(cfg.trainer.threads)
    if cfg.trainer.deterministic:
        make_deterministic()

    path, content, sets = load_data(cfg, view)
    checks = preflight(cfg, sets)
    run = RunDir(run_dir)
    seed_everything(cfg.seed)
    model, fitter, loaders = prepare_fit(
        cfg, sets, device, checkpoint_path=run.checkpoint, monitor=checks.monitor, state_path=run.path / LAST_STATE
    )
    info = model_info(model, sets["train"])
    warm = warm_start(model, info, cfg.init_from) if cfg.init_from else None

    with run.owned(resume=cfg.resume):
        resume_state = _resume_state(cfg, run, resolved)
        resumed_at, earlier_wall = (resume_state.epoch, resume_state.wall_time_s) if resume_state else (None, 0.0)
        for name, text in (records or {}).items():
            run.write_text(name, text)
        run.write_text("config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg), resolve=True))
        (run.path / FAILED).unlink(missing_ok=True)
        run.write_json("model.json", info)
        with (progress(fitter.max_epochs) if progress is not None else nullcontext()) as on_epoch_end:
            fitter.on_epoch_end = on_epoch_end
            try:
                fit = fitter.fit(loaders["train"], loaders["val"], resume=resume_state)
            except TrainingError as err:  # keep what went wrong for inspection, and say so
                save_checkpoint(run.path / FAILED_STATE, model, optimizer=fitter.optimizer.state_dict())
                run.write_json(FAILED, {"error": str(err), "type": "TrainingError", "state": FAILED_STATE})
                raise TrainingError(f"{err} (state saved in {run.path / FAILED_STATE})") from err
        test = evaluate(model, loaders["test"], fitter.loss_fn)

        table = neuron_table(content.neuron_ids, test.scores)
        ceiling = truth_scores(content, sets["test"].indices)
        if ceiling is not None:
            table["truth_cc_norm"] = ceiling.cc_norm.numpy()
        scores = score_summary(table, prefix="test_")
        few_valid_warning(scores["test_n_valid"], scores["test_n_neurons"], checks)
        run.write_csv("neurons.csv", table)
        write_test_predictions(run.path / TEST_PREDICTIONS, test.predictions, sets["test"].indices, content.neuron_ids)
        run.write_csv("history.csv", pd.DataFrame(history_rows(fit.history)))
        wall = time.perf_counter() - start
        summary = {
            **scores,
            "test_loss": test.loss,
            "n_params": model.n_params(),
            "lr": learning_rates(cfg)[1],
            "frontend_lr": learning_rates(cfg)[0],
            "monitor": fitter.monitor,
            "best_epoch": fit.best_epoch,
            f"best_{fitter.monitor}": fit.best_score,
            "epochs_run": fit.epochs_run,
            "stop_reason": fit.stop_reason,
            "wall_time_s": wall,
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "seed": cfg.seed,
            "data_seed": cfg.data_seed,
            "config_hash": config_hash(resolved),
            "frontend": cfg.frontend.name,
            "model": cfg.model.name,
            "view": view,
            "dataset": {
                "config": cfg.dataset.name,
                "name": content.name,
                "path": str(path.resolve()),
                "sha256": file_sha256(path),
                "native_source": content.attrs.get("native_source"),
                "neurons": cfg.dataset.neurons if isinstance(cfg.dataset.neurons, str) else list(cfg.dataset.neurons),
                "splits": {k: v.indices for k, v in sets.items()},
            },
            "warnings": checks.warnings,
            "versions": {
                "strf_runner": strf_runner.__version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
        }
        if resume_state is not None:
            summary["resumed_from_epoch"] = resumed_at
            summary["wall_time_earlier_s"] = earlier_wall  # training time of the sessions before the resume
            summary["wall_time_total_s"] = earlier_wall + wall
        if warm is not None:
            summary["init_from"] = warm
        if ceiling is not None:
            summary["truth_test_mean_cc_norm"] = float(np.nanmean(ceiling.cc_norm.numpy()))
        run.write_summary(summary)
    return RunResult(run.path, summary, table, fit)
