"""The fitter: train, validate, early-stop on validation cc_norm, restore the best weights.

Loop semantics follow the reference (spec/fitting.md): one optimiser step per batch; validation
metrics are computed once on all validation predictions concatenated, never averaged per batch;
improvement is strict (a NaN score never improves); the best state is checkpointed on every
improvement and restored after the loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from strf_runner import metrics
from strf_runner.data.collate import Batch, DeviceLoader
from strf_runner.errors import ConfigError, TrainingError
from strf_runner.training.checkpoint import load_checkpoint, save_checkpoint

MONITORS = ("val_cc_norm", "val_cc", "val_loss")


@dataclass
class EpochRecord:
    """Scalar summary of one epoch; cc values are NaN-ignoring means over neurons."""

    epoch: int
    train_loss: float
    train_cc_norm: float
    val_loss: float
    val_cc: float
    val_cc_norm: float
    seconds: float


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
        gather.add(model(batch["stims"]), batch)
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


class Fitter:
    """Fits a model with early stopping on a monitored validation score and best-val restore.

    checkpoint_path: where the best state is saved on each improvement and restored from at the end.
    on_epoch_end: called with (record, best_score, best_epoch) after every epoch (progress display).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: str = "mse",
        max_epochs: int = 100,
        patience: int = 30,
        min_delta: float = 0.0,
        monitor: str = "val_cc_norm",
        mode: str = "max",
        track_train_metrics: bool = True,
        checkpoint_path: str | Path | None = None,
        on_epoch_end: Callable[[EpochRecord, float, int | None], None] | None = None,
    ) -> None:
        if loss not in metrics.LOSSES:
            raise ConfigError(f"trainer.loss={loss!r} is not one of {sorted(metrics.LOSSES)}")
        if monitor not in MONITORS:
            raise ConfigError(f"trainer.monitor={monitor!r} is not one of {list(MONITORS)}")
        if mode not in ("max", "min"):
            raise ConfigError(f"trainer.mode={mode!r} must be 'max' or 'min'")
        if max_epochs < 1 or patience < 1:
            raise ConfigError(f"trainer.max_epochs and trainer.patience must be >= 1, got {max_epochs}, {patience}")
        self.model, self.optimizer = model, optimizer
        self.loss_fn = metrics.LOSSES[loss]
        self.max_epochs, self.patience, self.min_delta = max_epochs, patience, min_delta
        self.monitor, self.mode = monitor, mode
        self.track_train_metrics = track_train_metrics
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.on_epoch_end = on_epoch_end

    def improved(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if self.mode == "max":
            return score > best + self.min_delta
        return score < best - self.min_delta

    def fit(self, train: DeviceLoader, val: DeviceLoader) -> FitResult:
        train_target = loader_target(train) if self.track_train_metrics else None
        val_target = loader_target(val)
        history: list[EpochRecord] = []
        best = -math.inf if self.mode == "max" else math.inf
        best_epoch, stale, stop_reason = None, 0, "max_epochs"
        for epoch in range(1, self.max_epochs + 1):
            start = time.perf_counter()
            train_loss, train_cc_norm = self._train_epoch(train, epoch, train_target)
            ev = evaluate(self.model, val, self.loss_fn, val_target)
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                train_cc_norm=train_cc_norm,
                val_loss=ev.loss,
                val_cc=nan_mean(ev.scores.cc_abs),
                val_cc_norm=nan_mean(ev.scores.cc_norm),
                seconds=time.perf_counter() - start,
            )
            history.append(record)
            score = getattr(record, self.monitor)
            if self.improved(score, best):
                best, best_epoch, stale = score, epoch, 0
                if self.checkpoint_path is not None:
                    save_checkpoint(self.checkpoint_path, self.model, epoch=epoch, score=score, monitor=self.monitor)
            else:
                stale += 1
            if self.on_epoch_end is not None:
                self.on_epoch_end(record, best, best_epoch)
            if stale >= self.patience:
                stop_reason = "patience"
                break
        if self.checkpoint_path is not None and best_epoch is not None:
            load_checkpoint(self.checkpoint_path, self.model)
        return FitResult(history, best_epoch, best, stop_reason)

    def _train_epoch(
        self, loader: DeviceLoader, epoch: int, target: metrics.ResponseSummary | None
    ) -> tuple[float, float]:
        """One pass of optimiser steps; returns the mean batch loss and (if tracked) train cc_norm."""
        self.model.train()
        losses = []
        gather = _Gather(loader) if target is not None else None
        for batch in loader:
            self.optimizer.zero_grad(set_to_none=True)
            pred = self.model(batch["stims"])
            loss = self.loss_fn(pred, batch["psth"])
            loss.backward()
            self.optimizer.step()
            losses.append(loss.detach())
            if gather is not None:
                gather.add(pred, batch)
        mean_loss = float(torch.stack(losses).mean())
        if not math.isfinite(mean_loss):
            raise TrainingError(f"training loss is {mean_loss} at epoch {epoch}; stopping (try a lower trainer.lr)")
        if gather is None:
            return mean_loss, math.nan
        return mean_loss, nan_mean(metrics.score_summary(gather.result(), target).cc_norm)


def history_rows(history: list[EpochRecord]) -> list[dict]:
    return [asdict(r) for r in history]
