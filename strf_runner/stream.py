"""Chunked evaluation of causal modules with their state carried across chunks.

Every front-end and readout has ``stream(x, state) -> (y, state)``: fed a long input in consecutive
chunks along time (state ``None`` for the first), the concatenated outputs equal one ``forward`` over
the whole input, up to float rounding, in eval mode. Memory then scales with the chunk, not the input.

Two kinds of memory are carried:

- finite context: a stage whose output frame t reads input frames t - n .. t only (FIR filters,
  framed FFTs, STRFs) keeps the last n input frames and is re-run on them prepended to the next
  chunk (``with_context``). Near the start fewer than n frames exist and the stage sees only those,
  so its own padding stands for the time before the start exactly as in ``forward`` (zero audio
  is not always equivalent: LEAF's envelope of silence is sqrt(1e-9), its pooling pads with 0);
- recursive state: PCEN's smoother value and a recurrent network's hidden state, passed on as is.
"""

from __future__ import annotations

import torch


def with_context(
    x: torch.Tensor, past: torch.Tensor | None, n: int
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """What a finite-context stage runs on for the chunk x (..., T): (past ++ x along the last axis,
    how many steps of it precede x, the last n steps of it (fewer near the start) to keep as the
    next chunk's ``past``). past: (..., <= n) or None at the start of the input."""
    full = x if past is None else torch.cat([past, x], dim=-1)
    n_past = 0 if past is None else past.shape[-1]
    return full, n_past, full[..., max(0, full.shape[-1] - n) :]
