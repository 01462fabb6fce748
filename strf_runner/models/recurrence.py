"""Exact GRU and tanh-RNN recurrences for the CPU, compiled, with a hand-written backward through time.

On the CPU, ``torch.nn.GRU`` over a long clip (999 frames) with batch 1 is dominated by per-step
overhead, not arithmetic: each step records about ten autograd nodes, and the backward pass walks
them one by one. ``recur`` computes the same function of the same parameters in three parts:

1. the input projections of every frame at once, ``x @ W_ih^T + b_ih`` (one matrix product, torch
   autograd);
2. the recurrence proper over those projections, one compiled loop (numba) per direction, whose
   backward is the exact backpropagation through time of torch's equations, also one compiled loop;
3. the weight gradients of the recurrent matrix as one matrix product over all steps.

Torch's equations (``torch.nn.GRU`` / ``LSTM`` / ``RNN`` documentation), per step with gi = the
step's input projection and gh = W_hh h + b_hh:

- GRU: r = sigma(gi_r + gh_r), z = sigma(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h' = (1 - z) n + z h
- RNN: h' = tanh(gi + gh)

The module's own parameters are used (``weight_ih_l0`` ...), so state dicts are unchanged. Elsewhere
(an LSTM, CUDA, other dtypes, or several layers) ``recur`` calls the torch module itself.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import nn

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU / RNN: h; LSTM: (h, c); each (1, B, H)


# ------------------------------------------------------------------------------------------------
# compiled loops. Shapes: gi (B, T, G) with G = 3H (GRU) or H (RNN); w_hh (G, H), w_hh_t = its
# transpose, contiguous (H, G); b_hh (G,); h0 (B, H); out (B, T, H).


@numba.njit(cache=True)
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@numba.njit(cache=True)
def _gru_forward(gi, w_hh, b_hh, h0, out, saved):
    """saved (B, T, 4H): r, z, n and gh_n of every step (what the backward needs)."""
    n_b, n_t, g = gi.shape
    h_size = g // 3
    for b in range(n_b):
        h = h0[b].copy()
        for t in range(n_t):
            gh = np.dot(w_hh, h) + b_hh
            for k in range(h_size):
                r = _sigmoid(gi[b, t, k] + gh[k])
                z = _sigmoid(gi[b, t, h_size + k] + gh[h_size + k])
                n = math.tanh(gi[b, t, 2 * h_size + k] + r * gh[2 * h_size + k])
                saved[b, t, k], saved[b, t, h_size + k] = r, z
                saved[b, t, 2 * h_size + k], saved[b, t, 3 * h_size + k] = n, gh[2 * h_size + k]
                h[k] = (1.0 - z) * n + z * h[k]
                out[b, t, k] = h[k]


@numba.njit(cache=True)
def _gru_backward(d_out, h0, out, saved, w_hh_t, d_gi, d_gh, d_h0):
    """Fills d_gi and d_gh (B, T, 3H): gradients w.r.t. the step's input projection and w.r.t.
    W_hh h + b_hh; d_h0 (B, H): w.r.t. the initial state."""
    n_b, n_t, h_size = d_out.shape
    for b in range(n_b):
        dh = np.zeros(h_size, dtype=d_out.dtype)
        for t in range(n_t - 1, -1, -1):
            h_prev = out[b, t - 1] if t > 0 else h0[b]
            direct = np.empty(h_size, dtype=d_out.dtype)
            for k in range(h_size):
                r, z = saved[b, t, k], saved[b, t, h_size + k]
                n, gh_n = saved[b, t, 2 * h_size + k], saved[b, t, 3 * h_size + k]
                g = dh[k] + d_out[b, t, k]
                da_n = g * (1.0 - z) * (1.0 - n * n)
                da_z = g * (h_prev[k] - n) * z * (1.0 - z)
                da_r = da_n * gh_n * r * (1.0 - r)
                d_gi[b, t, k], d_gi[b, t, h_size + k], d_gi[b, t, 2 * h_size + k] = da_r, da_z, da_n
                d_gh[b, t, k], d_gh[b, t, h_size + k], d_gh[b, t, 2 * h_size + k] = da_r, da_z, da_n * r
                direct[k] = g * z
            dh = direct + np.dot(w_hh_t, d_gh[b, t])
        d_h0[b] = dh


@numba.njit(cache=True)
def _rnn_forward(gi, w_hh, b_hh, h0, out):
    n_b, n_t, h_size = gi.shape
    for b in range(n_b):
        h = h0[b].copy()
        for t in range(n_t):
            gh = np.dot(w_hh, h) + b_hh
            for k in range(h_size):
                h[k] = math.tanh(gi[b, t, k] + gh[k])
                out[b, t, k] = h[k]


@numba.njit(cache=True)
def _rnn_backward(d_out, out, w_hh_t, d_gates, d_h0):
    """Fills d_gates (B, T, H) (the gradient w.r.t. gi + gh) and d_h0 (B, H)."""
    n_b, n_t, h_size = d_out.shape
    for b in range(n_b):
        dh = np.zeros(h_size, dtype=d_out.dtype)
        for t in range(n_t - 1, -1, -1):
            for k in range(h_size):
                h = out[b, t, k]
                d_gates[b, t, k] = (dh[k] + d_out[b, t, k]) * (1.0 - h * h)
            dh = np.dot(w_hh_t, d_gates[b, t])
        d_h0[b] = dh


# ------------------------------------------------------------------------------------------------
# autograd functions over the compiled loops


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def _previous_states(out: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """(B, T, H): the state each step started from (h0, then the outputs shifted by one)."""
    return torch.cat([h0[:, None], out[:, :-1]], dim=1)


def _recurrent_weight_grads(d_gh: torch.Tensor, h_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/dW_hh (G, H) and dL/db_hh (G,) from d_gh (B, T, G) and the states h_prev (B, T, H)."""
    flat = d_gh.reshape(-1, d_gh.shape[-1])
    return flat.T @ h_prev.reshape(-1, h_prev.shape[-1]), flat.sum(dim=0)


class _GRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        n_b, n_t, g = gi.shape
        out = np.empty((n_b, n_t, g // 3), dtype=_np(gi).dtype)
        saved = np.empty((n_b, n_t, 4 * (g // 3)), dtype=out.dtype)
        _gru_forward(_np(gi), _np(w_hh), _np(b_hh), _np(h0), out, saved)
        out_t = torch.from_numpy(out)
        ctx.save_for_backward(w_hh, h0, out_t, torch.from_numpy(saved))
        return out_t

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        w_hh, h0, out, saved = ctx.saved_tensors
        d_gi = np.empty(saved.shape[:2] + (w_hh.shape[0],), dtype=out.numpy().dtype)
        d_gh = np.empty_like(d_gi)
        d_h0 = np.empty_like(_np(h0))
        _gru_backward(_np(d_out), _np(h0), out.numpy(), saved.numpy(), _np(w_hh.T), d_gi, d_gh, d_h0)
        d_w, d_b = _recurrent_weight_grads(torch.from_numpy(d_gh), _previous_states(out, h0))
        return torch.from_numpy(d_gi), d_w, d_b, torch.from_numpy(d_h0)


class _RNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, h0) -> torch.Tensor:
        out = np.empty(gi.shape, dtype=_np(gi).dtype)
        _rnn_forward(_np(gi), _np(w_hh), _np(b_hh), _np(h0), out)
        out_t = torch.from_numpy(out)
        ctx.save_for_backward(w_hh, h0, out_t)
        return out_t

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):
        w_hh, h0, out = ctx.saved_tensors
        d_gates = np.empty(out.shape, dtype=out.numpy().dtype)
        d_h0 = np.empty_like(_np(h0))
        _rnn_backward(_np(d_out), out.numpy(), _np(w_hh.T), d_gates, d_h0)
        d_gates_t = torch.from_numpy(d_gates)
        d_w, d_b = _recurrent_weight_grads(d_gates_t, _previous_states(out, h0))
        return d_gates_t, d_w, d_b, torch.from_numpy(d_h0)


def compiled(rnn: nn.RNNBase, x: torch.Tensor) -> bool:
    """Whether ``recur`` runs ``rnn`` on ``x`` with the compiled loops: a GRU or tanh RNN of one layer,
    one direction, batch first, with biases, on the CPU, in float32 or float64 like its parameters.
    (An LSTM stays with torch: on the CPU torch runs it with oneDNN's fused LSTM, which measured faster.)"""
    return (
        (isinstance(rnn, nn.GRU) or (type(rnn) is nn.RNN and rnn.nonlinearity == "tanh"))
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and all(p.dtype == x.dtype and p.device.type == "cpu" for p in rnn.parameters())
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and rnn.batch_first
        and rnn.bias
    )


def recur(rnn: nn.RNNBase, x: torch.Tensor, state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
    """``rnn(x, state)``: (B, T, D) -> outputs (B, T, H) and the final state in torch's format
    ((1, B, H), or a pair of them for an LSTM); the compiled loops where ``compiled`` allows, else torch."""
    if not compiled(rnn, x) or x.shape[1] == 0:
        return rnn(x, state)
    gi = torch.nn.functional.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)  # (B, T, G)
    h0 = x.new_zeros(x.shape[0], rnn.hidden_size) if state is None else state[0]
    step = _GRU.apply if isinstance(rnn, nn.GRU) else _RNN.apply
    out = step(gi, rnn.weight_hh_l0, rnn.bias_hh_l0, h0)
    return out, out[:, -1][None]
