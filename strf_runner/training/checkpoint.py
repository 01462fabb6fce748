"""Model checkpoints, written atomically so a crash never leaves a half-written file."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strf_runner.atomic import atomic_write_bytes
from strf_runner.errors import TrainingError


def save_checkpoint(path: str | Path, model: nn.Module, **info: Any) -> None:
    """Write {"state_dict": ..., **info} to ``path`` via a temp file and an atomic rename.

    Serialised in memory first, so a failed write (a full disk) is an OSError naming ``path`` rather
    than torch's archive error, and the previous file at ``path`` stays whole.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, **info}, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load the weights saved at ``path`` into ``model``; return the checkpoint's other entries.
    TrainingError with one line (the first of torch's explanation) if it cannot."""
    try:
        with warnings.catch_warnings():  # a damaged file makes torch warn about its pickle protocol first
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        if isinstance(err, pickle.UnpicklingError):  # torch's text advises weights_only=False: not for a damaged file
            reason = "not a checkpoint of plain tensors (unpickling failed)"
        else:
            first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
            reason = first.split(". ")[0]
        raise TrainingError(f"cannot restore checkpoint {path}: {reason}") from err
    return {k: v for k, v in ckpt.items() if k != "state_dict"}
