"""The fitter: train, validate, early-stop on validation cc_norm, restore the best weights.

Loop semantics follow the reference (spec/fitting.md): one optimiser step per batch; validation
metrics are computed once on all validation predictions concatenated, never averaged per batch;
improvement is strict (a NaN score never improves); the best state is checkpointed on every
improvement and restored after the loop.
"""

from __future__ import annotations

import math
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from strf_runner import metrics
from strf_runner.config import TrainerConfig
from strf_runner.data.collate import Batch, DeviceLoader
from strf_runner.errors import ConfigError, TrainingError
from strf_runner.frontends.base import block_filtering
from strf_runner.training.checkpoint import load_checkpoint, save_checkpoint

MONITORS = ("val_cc_norm", "val_cc", "val_loss")


@dataclass
class EpochRecord:
    """Scalar summary of one epoch; cc values are NaN-ignoring means over neurons.

    seconds: the epoch's wall time, training steps, validation and checkpoint writes together (what
    a user waits per epoch); val_seconds: of which validation (predictions and their metrics).
    """

    epoch: int
    train_loss: float
    train_cc_norm: float
    val_loss: float
    val_cc: float
    val_cc_norm: float
    seconds: float
    val_seconds: float = math.nan


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int | None
    best_score: float
    stop_reason: str
    epochs_run: int = field(init=False)

    def __post_init__(self) -> None:
        self.epochs_run = len(self.history)


@dataclass
class Evaluation:
    """Predictions of a model on a whole loader and the scores computed on their concatenation.

    predictions: (S, N, 1, T_max) in the loader's item order, NaN-padded, on the model's device.
    """

    loss: float
    predictions: torch.Tensor
    scores: metrics.NeuronScores


def forward_batch(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The model's predictions (B, N, 1, T) for a batch: from its precomputed front-end stage when the
    loader made one (``EncodingModel.from_finite``), else from the stimuli."""
    features = batch.get("features")
    return model(batch["stims"]) if features is None else model.from_finite(features)


def loader_target(loader: DeviceLoader) -> metrics.ResponseSummary:
    """PSTH and signal power of a loader's responses, in item order; fixed for the whole fit."""
    return metrics.summarise_responses(_concat_padded([it.responses[None] for it in loader.items]))


def evaluate(
    model: nn.Module, loader: DeviceLoader, loss_fn: Callable, target: metrics.ResponseSummary | None = None
) -> Evaluation:
    """Predict every batch in eval mode without gradient; score once on the concatenation.

    target: ``loader_target(loader)``, passed in when the same loader is evaluated repeatedly.
    """
    target = loader_target(loader) if target is None else target
    was_training = model.training
    model.eval()
    with torch.no_grad():
        pred = _predict_in_order(model, loader)
    model.train(was_training)
    return Evaluation(float(loss_fn(pred, target.psth)), pred, metrics.score_summary(pred, target))


def _predict_in_order(model: nn.Module, loader: DeviceLoader) -> torch.Tensor:
    gather = _Gather(loader)
    for batch in loader:
        gather.add(forward_batch(model, batch), batch)
    return gather.result()


class _Gather:
    """Collects per-item predictions from batches in any order; concatenates them in item order."""

    def __init__(self, loader: DeviceLoader) -> None:
        self.position = {it.meta["index"]: k for k, it in enumerate(loader.items)}
        self.lengths = [it.responses.shape[-1] for it in loader.items]
        self.slots: list[torch.Tensor | None] = [None] * len(loader.items)

    def add(self, pred: torch.Tensor, batch: Batch) -> None:
        for b, meta in enumerate(batch["stim_metas"]):
            k = self.position[meta["index"]]
            self.slots[k] = pred[b : b + 1, :, :, : self.lengths[k]].detach()

    def result(self) -> torch.Tensor:
        return _concat_padded(self.slots)


def _concat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B_i, N, R_i, T_i) along B, NaN-padding R and T to their maxima."""
    r = max(t.shape[2] for t in tensors)
    t_max = max(t.shape[3] for t in tensors)
    first = tensors[0]
    out = first.new_full((sum(t.shape[0] for t in tensors), first.shape[1], r, t_max), float("nan"))
    b = 0
    for t in tensors:
        out[b : b + t.shape[0], :, : t.shape[2], : t.shape[3]] = t
        b += t.shape[0]
    return out


def nan_mean(x: torch.Tensor) -> float:
    """NaN-ignoring mean of a per-neuron vector; NaN when empty or all NaN."""
    finite = x[~torch.isnan(x)]
    return float(finite.mean()) if finite.numel() else math.nan


@dataclass
class FitState:
    """Where a fit stands after ``epoch`` epochs: early-stopping state, history, and the wall time
    spent fitting so far (every session of a resumed fit together).

    ``save`` writes it with the weights, the optimiser and every random generator (torch, CUDA,
    NumPy, Python, the loader's data-order generator) atomically; ``load`` reads it back and
    ``restore`` puts weights, optimiser and generators in place.
    """

    epoch: int = 0
    best: float = -math.inf
    best_epoch: int | None = None
    stale: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    wall_time_s: float = 0.0
    saved: dict = field(default_factory=dict, repr=False)

    def save(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, train: DeviceLoader) -> None:
        rng = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "data": train.generator.get_state() if train.generator is not None else None,
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        save_checkpoint(
            path, model, optimizer=optimizer.state_dict(), rng=rng, epoch=self.epoch, best=self.best,
            best_epoch=self.best_epoch, stale=self.stale, history=[asdict(r) for r in self.history],
            wall_time_s=self.wall_time_s,
        )

    @classmethod
    def load(cls, path: Path) -> "FitState":
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            history = [EpochRecord(**r) for r in ckpt["history"]]
            return cls(
                epoch=ckpt["epoch"], best=ckpt["best"], best_epoch=ckpt["best_epoch"], stale=ckpt["stale"],
                history=history, wall_time_s=ckpt.get("wall_time_s", sum(r.seconds for r in history)), saved=ckpt,
            )
        except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
            raise TrainingError(f"cannot resume from {path}: {err}") from err

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, train: DeviceLoader) -> None:
        ckpt = self.saved
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["data"] is not None and train.generator is not None:
            train.generator.set_state(rng["data"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


EpochCallback = Callable[[EpochRecord, float, "int | None", int], None]


class Fitter:
    """Fits a model with early stopping on a monitored validation score and best-val restore.

    trainer: the recipe (loss, budget, early stopping, clipping), as the run resolved it: a readout's own
    budget and a monitor that fell back to val_cc already in it (``experiment.make_fitter``).
    checkpoint_path: where the best state is saved on each improvement and restored from at the end.
    on_epoch_end: called with (record, best_score, best_epoch, max_epochs) after every epoch (progress
    display). state_path: where the whole training state goes after every epoch (resume).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        trainer: TrainerConfig,
        checkpoint_path: str | Path | None = None,
        on_epoch_end: EpochCallback | None = None,
        state_path: str | Path | None = None,
    ) -> None:
        trainer.check()
        if trainer.loss not in metrics.LOSSES:
            raise ConfigError(f"trainer.loss={trainer.loss!r} is not one of {sorted(metrics.LOSSES)}")
        if trainer.monitor not in MONITORS:
            raise ConfigError(f"trainer.monitor={trainer.monitor!r} is not one of {list(MONITORS)}")
        self.model, self.optimizer, self.trainer = model, optimizer, trainer
        self.loss_fn = metrics.LOSSES[trainer.loss]
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.on_epoch_end = on_epoch_end
        self.state_path = Path(state_path) if state_path is not None else None

    @property
    def monitor(self) -> str:
        return self.trainer.monitor

    @property
    def max_epochs(self) -> int:
        return self.trainer.max_epochs

    def improved(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if self.trainer.mode == "max":
            return score > best + self.trainer.min_delta
        return score < best - self.trainer.min_delta

    def fit(self, train: DeviceLoader, val: DeviceLoader, resume: FitState | None = None) -> FitResult:
        """Train until max_epochs or patience; restore the best weights.

        After every epoch the whole training state (``FitState``: weights, optimiser, early stopping,
        history, every random generator) is saved to ``state_path``; ``resume`` continues from such a
        state and ends exactly where an uninterrupted fit would have.
        """
        train_target = loader_target(train) if self.trainer.track_train_metrics else None
        val_target = loader_target(val)
        state = resume or FitState(best=-math.inf if self.trainer.mode == "max" else math.inf)
        if resume is not None:
            resume.restore(self.model, self.optimizer, train)
        started, earlier = time.perf_counter(), state.wall_time_s
        stop_reason = "max_epochs"
        for epoch in range(state.epoch + 1, self.max_epochs + 1):
            if state.stale >= self.trainer.patience:
                break
            start = time.perf_counter()
            train_loss, train_cc_norm = self._train_epoch(train, epoch, train_target)
            val_start = time.perf_counter()
            with block_filtering(self.model):  # validation needs no causality proof: LEAF's faster path
                ev = evaluate(self.model, val, self.loss_fn, val_target)
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                train_cc_norm=train_cc_norm,
                val_loss=ev.loss,
                val_cc=nan_mean(ev.scores.cc_abs),
                val_cc_norm=nan_mean(ev.scores.cc_norm),
                seconds=math.nan,
                val_seconds=time.perf_counter() - val_start,
            )
            state.history.append(record)
            state.epoch = epoch
            score = getattr(record, self.monitor)
            if self.improved(score, state.best):
                state.best, state.best_epoch, state.stale = score, epoch, 0
                if self.checkpoint_path is not None:
                    save_checkpoint(self.checkpoint_path, self.model, epoch=epoch, score=score, monitor=self.monitor)
            else:
                state.stale += 1
            state.wall_time_s = earlier + time.perf_counter() - started
            record.seconds = time.perf_counter() - start  # the copy in the saved state lacks the save itself
            if self.state_path is not None:
                state.save(self.state_path, self.model, self.optimizer, train)
                record.seconds = time.perf_counter() - start
            if self.on_epoch_end is not None:
                self.on_epoch_end(record, state.best, state.best_epoch, self.max_epochs)
        if state.stale >= self.trainer.patience:
            stop_reason = "patience"
        if self.checkpoint_path is not None and state.best_epoch is not None:
            load_checkpoint(self.checkpoint_path, self.model)
        return FitResult(state.history, state.best_epoch, state.best, stop_reason)

    def _train_epoch(
        self, loader: DeviceLoader, epoch: int, target: metrics.ResponseSummary | None
    ) -> tuple[float, float]:
        """One pass of optimiser steps; returns the mean batch loss and (if tracked) train cc_norm.

        Non-finite losses and gradients are tallied on the device and checked once, at the end of
        the epoch (no per-step synchronisation); then ``TrainingError`` names the epoch and the
        parameters that hold non-finite values or gradients.
        """
        self.model.train()
        losses = []
        params = [p for p in self.model.parameters() if p.requires_grad]
        bad_grads = torch.zeros((), device=params[0].device) if params else None
        gather = _Gather(loader) if target is not None else None
        for batch in loader:
            self.optimizer.zero_grad(set_to_none=True)
            pred = forward_batch(self.model, batch)
            loss = self.loss_fn(pred, batch["psth"])
            loss.backward()
            if self.trainer.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(params, self.trainer.grad_clip)
            else:
                norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in (p.grad for p in params) if g is not None]))
            bad_grads += ~torch.isfinite(norm)
            self.optimizer.step()
            losses.append(loss.detach())
            if gather is not None:
                gather.add(pred, batch)
        mean_loss = float(torch.stack(losses).mean())
        if not math.isfinite(mean_loss) or (bad_grads is not None and bad_grads.item() > 0):
            raise TrainingError(
                f"training loss is {mean_loss} at epoch {epoch} (non-finite gradients in {int(bad_grads.item())} "
                f"step(s)); non-finite values now in: {', '.join(self._nonfinite_parameters()) or 'no parameter'}; "
                "try a lower trainer.lr or trainer.grad_clip"
            )
        if gather is None:
            return mean_loss, math.nan
        return mean_loss, nan_mean(metrics.score_summary(gather.result(), target).cc_norm)

    def _nonfinite_parameters(self) -> list[str]:
        """Names of parameters whose values or gradients hold NaN or inf (at most 6, then a count)."""
        names = [n for n, p in self.model.named_parameters()
                 if not torch.isfinite(p).all() or (p.grad is not None and not torch.isfinite(p.grad).all())]
        return names[:6] + ([f"{len(names) - 6} more"] if len(names) > 6 else [])


def history_rows(history: list[EpochRecord]) -> list[dict]:
    return [asdict(r) for r in history]
