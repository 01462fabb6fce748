"""Model checkpoints, written atomically so a crash never leaves a half-written file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strf_runner.atomic import atomic_path
from strf_runner.errors import TrainingError


def save_checkpoint(path: str | Path, model: nn.Module, **info: Any) -> None:
    """Write {"state_dict": ..., **info} to ``path`` via a temp file and an atomic rename."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, **info}, tmp)


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load the weights saved at ``path`` into ``model``; return the checkpoint's other entries."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        raise TrainingError(f"cannot restore checkpoint {path}: {err}") from err
    return {k: v for k, v in ckpt.items() if k != "state_dict"}
