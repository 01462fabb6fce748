"""One run from a config, top to bottom: resolve the config once -> data (``data.loading``) -> model
(``models.encoding.build_model``) -> loaders and Fitter -> fit -> test scores -> the run dir
(``results.rundir``).

Plain Python (no Hydra): ``run_experiment(cfg, run_dir)`` is what the CLI calls and what a notebook
can call with a ``RunConfig`` built by hand.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

import strf_runner
from strf_runner import metrics
from strf_runner.config import (FrontendConfig, ModelConfig, ResolvedConfig, RunConfig, epoch_budget, learning_rates,
                                resolve_config)
from strf_runner.data.collate import DeviceLoader
from strf_runner.data.dataset import NeuralDataset
from strf_runner.data.loading import load_data
from strf_runner.data.digest import DataIdentity, data_identity, recorded_digest
from strf_runner.data.schema import DatasetContent
from strf_runner.errors import ConfigError, ResultsError, StrfRunnerWarning, TrainingError
from strf_runner.frontends.registry import frontend_class
from strf_runner.identity import config_hash, differing_keys, flatten, volatile
from strf_runner.models.encoding import EncodingModel, build_model, model_info
from strf_runner.preflight import few_valid_warning, preflight
from strf_runner.results.load import load_run
from strf_runner.results.rundir import DATA, FAILED_STATE, HISTORY, LAST_STATE, NEURONS, SUMMARY, TRACKING, RunDir
from strf_runner.results.summary import DatasetRecord, RunSummary
from strf_runner.results.tables import neuron_table, score_summary
from strf_runner.training.checkpoint import save_checkpoint
from strf_runner.training.device import resolve_device
from strf_runner.tracking.base import Group, RunInfo, Trackers, build_trackers, epoch_values
from strf_runner.training.fitter import EpochCallback, EpochRecord, FitResult, Fitter, FitState, evaluate, history_rows
from strf_runner.training.seeding import (configure_torch, data_generator, determinism_settings,
                                         determinism_warnings, seed_everything)


@dataclass
class RunResult:
    run_dir: Path
    summary: RunSummary
    neurons: pd.DataFrame
    fit: FitResult


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
        "config_hash": loaded.summary.config_hash,
        "test_mean_cc_norm": loaded.summary.test_mean_cc_norm,
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


def make_loaders(cfg: RunConfig, sets: dict[str, NeuralDataset], model: EncodingModel, device: torch.device
                 ) -> dict[str, DeviceLoader]:
    """Device loaders for the train / val / test ``sets``: the train set shuffled by ``data_seed``.

    A fixed front-end stage (mel, gammatone, native_pcen's dB -> linear) is computed once per stimulus,
    exactly as a step computes it; with batches of several stimuli the padding would differ, so never then.
    """
    t = cfg.trainer
    cached = t.cache_frontend and t.batch_size == 1 and model.frontend.fixed_finite
    return {
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


def make_fitter(cfg: RunConfig, model: EncodingModel, run: RunDir | None = None, monitor: str | None = None,
                on_epoch_end: EpochCallback | None = None) -> Fitter:
    """AdamW over ``param_groups`` and the Fitter with the run's budget. monitor: what early stopping
    watches (default ``trainer.monitor``); run: where best weights and the training state go."""
    t = cfg.trainer
    optimizer = torch.optim.AdamW(param_groups(model, *learning_rates(cfg)), weight_decay=t.weight_decay)
    max_epochs, patience = epoch_budget(cfg)
    recipe = dataclasses.replace(t, max_epochs=max_epochs, patience=patience, monitor=monitor or t.monitor)
    return Fitter(model, optimizer, recipe, checkpoint_path=run.checkpoint if run is not None else None,
                  on_epoch_end=on_epoch_end, state_path=run.last_state if run is not None else None)


def resume_state(resolved: ResolvedConfig, run: RunDir, data: DataIdentity) -> FitState | None:
    """The state to continue from when ``resume=true``: ``last.pt`` of this run dir, whose config
    must hash like the current one and whose data.json must name ``data`` (ResultsError otherwise; a
    warning where an older run recorded no data); None when not resuming."""
    if not resolved.cfg.resume:
        return None
    previous = run.saved_config()
    if previous is None or not run.last_state.is_file():
        raise ResultsError(f"resume=true but {run.path} holds no interrupted run ({LAST_STATE} missing)")
    if config_hash(previous) != resolved.hash:
        keys = differing_keys(previous, resolved.tree, ignore=volatile)
        raise ResultsError(f"resume=true but the config differs from the interrupted run's in {keys}")
    recorded = run.data_record()
    if recorded is None:
        warnings.warn(f"resume=true: {run.path} records no {DATA} (a run from before data digests), so whether "
                      f"its data equal {data.path} cannot be checked", StrfRunnerWarning, stacklevel=2)
    elif not data.matches(recorded):
        raise ResultsError(
            f"resume=true but the interrupted run in {run.path} trained on other data (content digest "
            f"{recorded_digest(recorded)}, now {data.short} in {data.path}): start a new run instead"
        )
    return FitState.load(run.last_state)


def run_experiment(
    cfg: RunConfig | ResolvedConfig,
    run_dir: str | Path,
    on_epoch_end: EpochCallback | None = None,
    records: dict[str, str] | None = None,
    group: Group | None = None,
    analyze: Callable[[Path], dict[str, Path]] | None = None,
    build: Callable[[FrontendConfig, ModelConfig, NeuralDataset], EncodingModel] = build_model,
) -> RunResult:
    """Fit and test one model as configured; write the run dir; return its summary and tables.

    Everything that can refuse the run (config values, the data, the model against the data, the
    ownership of ``run_dir``) is checked before the first file is written to ``run_dir``.

    on_epoch_end: what the fitter calls after every epoch (the CLI's progress bar).
    records: extra files (relative name -> text) written into the run dir right after it is claimed
    (the CLI's Hydra record under .hydra/). group: the sweep a multirun job belongs to (trackers group
    its runs under it). analyze: called on the finished run dir (``analysis=full``); the files it
    returns (by name: ``figures/<name>.png``) go to the trackers with the run's tables. build: what makes
    the model from the configs and the training set (strf-bench passes one that swaps in a naive reference).
    """
    start = time.perf_counter()
    resolved = cfg if isinstance(cfg, ResolvedConfig) else resolve_config(cfg)
    cfg = resolved.cfg
    device = resolve_device(cfg.trainer.device)
    configure_torch(cfg.trainer.threads, cfg.trainer.deterministic)
    view = frontend_class(cfg.frontend.name).view

    path, content, sets = load_data(cfg.dataset, view, cfg.cv)
    checks = preflight(cfg, sets)
    cpu_settings = determinism_settings()
    for message in determinism_warnings(cpu_settings):
        checks.warn(message)
    run = RunDir(run_dir)
    seed_everything(cfg.seed)
    model = build(cfg.frontend, cfg.model, sets["train"]).to(device)
    info = model_info(model, sets["train"])
    warm = warm_start(model, info, cfg.init_from) if cfg.init_from else None
    loaders = make_loaders(cfg, sets, model, device)
    trackers = build_trackers(cfg.logger)
    fitter = make_fitter(cfg, model, run, monitor=checks.monitor, on_epoch_end=tracked(trackers, on_epoch_end))
    data = data_identity(path)

    with run.owned(resume=cfg.resume), trackers.recording_failures():
        state = resume_state(resolved, run, data)
        # the fitter advances the state it resumes from: what the summary reports is taken now
        resumed = None if state is None else (state.epoch, state.wall_time_s)
        run.start(resolved.yaml, info, data.record(), records)
        start_trackers(trackers, run, resolved, group, earlier=None if state is None else state.history, tags={
            "config_hash": resolved.hash, "seed": str(cfg.seed), "data_seed": str(cfg.data_seed),
            "dataset": content.name, "dataset_sha256": data.file_sha256,
            "dataset_content_sha256": data.content_sha256, "device": str(device), **versions(),
        })
        try:
            fit = fitter.fit(loaders["train"], loaders["val"], resume=state)
        except TrainingError as err:  # keep what went wrong for inspection, and say so
            save_checkpoint(run / FAILED_STATE, model, optimizer=fitter.optimizer.state_dict())
            run.record_failure({"error": str(err), "type": "TrainingError", "state": FAILED_STATE})
            raise TrainingError(f"{err} (state saved in {run / FAILED_STATE})") from err
        test = evaluate(model, loaders["test"], fitter.loss_fn)

        table = neuron_table(content.neuron_ids, test.scores)
        ceiling = truth_scores(content, sets["test"].indices)
        if ceiling is not None:
            table["truth_cc_norm"] = ceiling.cc_norm.numpy()
        scores = score_summary(table, prefix="test_")
        few_valid_warning(scores["test_n_valid"], scores["test_n_neurons"], checks)
        run.write_csv(NEURONS, table)
        run.write_test_predictions(test.predictions[:, :, 0].float().cpu().numpy(), sets["test"].indices,
                                   content.neuron_ids)
        run.write_csv(HISTORY, pd.DataFrame(history_rows(fit.history)))
        summary = RunSummary(
            **scores,
            test_loss=test.loss,
            n_params=model.n_params(),
            lr=learning_rates(cfg)[1],
            frontend_lr=learning_rates(cfg)[0],
            monitor=fitter.monitor,
            best_epoch=fit.best_epoch,
            best_score=fit.best_score,
            epochs_run=fit.epochs_run,
            stop_reason=fit.stop_reason,
            wall_time_s=time.perf_counter() - start,
            device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            seed=cfg.seed,
            data_seed=cfg.data_seed,
            config_hash=resolved.hash,
            frontend=cfg.frontend.name,
            model=cfg.model.name,
            view=view,
            dataset=DatasetRecord(
                config=cfg.dataset.name,
                name=content.name,
                **data.record(),
                native_source=content.attrs.get("native_source"),
                provenance=json.loads(content.attrs["provenance"]) if "provenance" in content.attrs else None,
                neurons=cfg.dataset.neurons if isinstance(cfg.dataset.neurons, str) else list(cfg.dataset.neurons),
                splits={k: v.indices for k, v in sets.items()},
            ),
            warnings=checks.warnings,
            versions=versions(),
            determinism=cpu_settings,
            init_from=warm,
            truth_test_mean_cc_norm=None if ceiling is None else float(np.nanmean(ceiling.cc_norm.numpy())),
        )
        if resumed is not None:  # the sessions before this one
            summary.resumed_from_epoch, summary.wall_time_earlier_s = resumed
            summary.wall_time_total_s = summary.wall_time_earlier_s + summary.wall_time_s
        run.write_summary(summary)
        files = {name: run / name for name in (NEURONS, HISTORY, SUMMARY)}
        try:
            if analyze is not None:
                files.update(analyze(run.path))
        finally:  # a failed analysis leaves a finished run: the trackers get what there is
            trackers.finish(summary, files)
    return RunResult(run.path, summary, table, fit)


def start_trackers(trackers: Trackers, run: RunDir, resolved: ResolvedConfig, group: Group | None,
                   earlier: list[EpochRecord] | None, tags: dict[str, str]) -> None:
    """Start the trackers on the run (a resumed run continues the tracking runs its tracking.json names)
    and keep what finds them again in tracking.json. earlier: a resumed run's epochs so far (None for a
    new run), replayed into a tracker that was not recording them."""
    if not trackers:
        return
    previous = run.tracking_records() if earlier is not None else {}
    params = {k: v for k, v in flatten(resolved.tree).items() if not volatile(k)}
    info = RunInfo(run.path, run.path.name, group.name if group else None, params, tags,
                   varying=dict(group.varying) if group else {}, local_dir=run.path)
    records = trackers.start(info, previous, [(r.epoch, epoch_values(asdict(r), None)) for r in earlier or []])
    if records:
        run.write_json(TRACKING, {**previous, **records})


def versions() -> dict[str, str]:
    """The package versions a run records."""
    return {"strf_runner": strf_runner.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def tracked(trackers: Trackers, on_epoch_end: EpochCallback | None) -> EpochCallback | None:
    """The fitter's epoch callback: each epoch to the trackers (values it already has on the host, so
    no device synchronisation is added), then ``on_epoch_end``."""
    if not trackers:
        return on_epoch_end

    def callback(record: EpochRecord, best: float, best_epoch: int | None, max_epochs: int) -> None:
        trackers.epoch(record.epoch, epoch_values(asdict(record), best_epoch))
        if on_epoch_end is not None:
            on_epoch_end(record, best, best_epoch, max_epochs)

    return callback
