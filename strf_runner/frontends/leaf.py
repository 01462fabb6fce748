"""``leaf``: CausalLEAF, a learnable Gabor filterbank + Gaussian pooling + PCEN (spec/frontends.md).

Definition (the direct-convolution reference the tests compare against, in float64):

1. Left-pad K - 1 zeros and correlate with the real and imaginary parts of F complex Gabor kernels
   on the centred grid n = -(K-1)/2 .. (K-1)/2: real_i[n] = cos(w_i n) g_i[n] / Z_i,
   imag_i[n] = sin(w_i n) g_i[n] / Z_i, g_i[n] = exp(-n^2 / (2 sigma_g,i^2)), Z_i = max(sum g_i, 1e-8).
2. Envelope sqrt(re^2 + im^2 + 1e-9).
3. One-sided Gaussian pooling over the last L envelope samples of every frame (tap at distance d from
   the frame's newest sample weighs exp(-d^2 / (2 sigma_p,i^2)), normalised to sum 1), stride hop.
4. PCEN (the shared ``PCEN`` module: initial smoother state M(0) = E(0)).

Parameters (7F): centre w_i in rad/sample (clamped to [0.01, pi] in the forward), Gabor width
sigma_g = max(softplus(raw), 1) and pooling width sigma_p = max(softplus(raw), 0.5) in samples, and
PCEN's alpha, delta, r, s. Initialisation: HTK-mel centres from f_min to f_max, sigma_g =
fs / (2 pi ERB(fc)), sigma_p = L / 4.

How the filtering is computed (exactly causal, FFT-fast): a uniformly partitioned overlap-save
convolution whose blocks are the frames themselves. The causal filter (lags 0 .. K-1) is cut into
P = ceil((K-1)/hop) partitions of hop + 1 taps starting at lags 0, hop, 2 hop, ...; frame t's hop
output samples are sum_p irfft(X_{t-p} * H_p) (samples hop .. 2 hop - 1 of an N-point transform,
N the power of two >= 2 hop: 512 at NS1's hop of 240, where MKL runs about 3x faster than at 480),
where X_b is the spectrum of input samples [(b-1) hop, (b+1) hop). Every transform therefore covers
samples of one frame and the frame before it, never a later one: output frame t is computed from
samples < (t+1) hop only, bit for bit, and the input gradient of frame t is exactly zero after it
(the causality tests assert exact zeros, with no rounding allowance). That per-frame inverse FFT of
all 68 real channels (real and imaginary kernels) is the price of exactness and the largest single
cost. The input spectra are one cheap single-channel rfft; the sum over partitions is one real
batched matmul over frequency bins. The envelope and the pooling (a batched matmul per channel over
each frame's hop samples, then a sum over the Q = ceil(L / hop) frames a window spans) live in the
same autograd node, whose backward is written by hand. The kernel gradient, a cross-correlation of
the filtered signal's gradient with the input over K lags, does not need per-frame transforms: it
is computed in long blocks (``correlation_geometry``: 4096-point transforms, 14 frames a block),
which halves the backward's transform work and cuts its per-bin products five-fold. The input
gradient (causality tests, waveform gradient maps) is the exact adjoint of the per-frame forward.

In training mode, on an input that needs no gradient (a training step), the forward takes the same
long blocks instead (``_LongBlockGaborEnvelopePool``): the same function to float rounding, ~40 %
less transform work, but a block's transform lets its later samples reach its earlier outputs at
the rounding level. Causality is an eval-mode property (spec/frontends.md: batch norm already mixes
a clip in training mode), and every eval-mode call (test, predictions, gradient maps, the Jacobian
tests) takes the frame-exact path; only the fitter's validation pass, which needs no proof of
causality, asks for the long blocks in eval mode too (``block_filtering``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.config import FrontendConfig
from strf_runner.errors import ConfigError
from strf_runner.frontends.base import FilterbankInfo, WaveformFrontend, as_numpy, kernel_magnitudes
from strf_runner.frontends.pcen import PCEN, inverse_softplus
from strf_runner.frontends.registry import register
from strf_runner.frontends.spacing import erb_bandwidth, mel_centres

ENVELOPE_EPS = 1e-9  # inside the magnitude's square root: sqrt(re^2 + im^2 + 1e-9)
MIN_CENTRE = 0.01  # rad/sample
MIN_GABOR_WIDTH = 1.0  # samples
MIN_POOL_WIDTH = 0.5  # samples


def fft_size(hop: int) -> int:
    """N: the power of two >= 2 S. Overlap-save needs N >= 2 S; MKL's power-of-two transforms
    run about 3x faster than the 480-point ones of NS1's S = 240."""
    return 1 << (2 * hop - 1).bit_length()


def _frame_spectra(x: torch.Tensor, hop: int, n_fft: int) -> torch.Tensor:
    """(B, T, N/2+1): the N-point rfft of samples [(t-1) S, (t+1) S) of x (B, T*S), S = hop, zeros
    before the clip and after the 2 S samples. Frame t's spectrum uses samples < (t+1) S only."""
    blocks = F_.pad(x, (hop, 0)).unfold(-1, 2 * hop, hop)  # (B, T, 2S)
    return torch.fft.rfft(blocks, n=n_fft)


def _delayed(spec: torch.Tensor, n_parts: int) -> torch.Tensor:
    """(B, T, P, N/2+1): entry [b, t, p] = spec[b, t - p] (zero for t < p)."""
    t_len = spec.shape[1]
    padded = F_.pad(spec, (0, 0, n_parts - 1, 0))
    return torch.stack([padded[:, n_parts - 1 - p : n_parts - 1 - p + t_len] for p in range(n_parts)], 2)


def _data_matrix(spec: torch.Tensor, n_parts: int) -> torch.Tensor:
    """(N/2+1, 2P, 2BT) real data matrix of the partitioned convolution, from spec (B, T, N/2+1).

    Row (p, 0) holds X_{t-p} as (Re, Im) pairs over the columns (b, t, re/im), row (p, 1) holds
    i X_{t-p} = (-Im, Re), so that for weights W[k, c, (p, 0)] = Re H_p, W[k, c, (p, 1)] = Im H_p the
    real matmul W @ M gives Y = sum_p H_p X_{t-p} as interleaved (Re, Im) pairs.
    """
    b, t_len, n_bins = spec.shape
    delayed = _delayed(spec, n_parts).permute(3, 2, 0, 1)  # (N/2+1, P, B, T)
    out = torch.empty(n_bins, n_parts, 2, b, t_len, dtype=spec.dtype, device=spec.device)
    out[:, :, 0] = delayed
    torch.mul(delayed, 1j, out=out[:, :, 1])
    return torch.view_as_real(out).view(n_bins, 2 * n_parts, 2 * b * t_len)


def _data_matrix_adjoint(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Gradient w.r.t. spec (B, T, N/2+1) (as Re + i Im) from the gradient (N/2+1, 2P, 2BT) of its data matrix."""
    b, t_len, n_bins = shape
    n_parts = grad.shape[1] // 2
    g = torch.view_as_complex(grad.reshape(n_bins, n_parts, 2, b, t_len, 2))  # (N/2+1, P, 2, B, T)
    # d/d Re X and d/d Im X of row (p, 0) [Re X, Im X] and row (p, 1) [-Im X, Re X]:
    # Re X gets g0.re + g1.im and Im X gets g0.im - g1.re, i.e. complex g0 - i g1
    g = g[:, :, 0] - 1j * g[:, :, 1]  # (N/2+1, P, B, T), column t feeds X_{t-p}
    out = g[:, 0].clone()
    for p in range(1, min(n_parts, t_len)):  # X_s feeds column s + p of row p
        out[..., : t_len - p] += g[:, p, :, p:]
    return out.permute(1, 2, 0)


def _partition_weights(kernels: torch.Tensor, hop: int, n_parts: int, n_fft: int) -> torch.Tensor:
    """(N/2+1, C, 2P) real-form N-point spectra of the causal filters cut into P partitions of S+1 taps.

    kernels: (C, K) correlation kernels (conv1d weights), so the causal filter is h[m] = k[K-1-m],
    lag m = 0 .. K-1. Partition p holds lags p S .. p S + S; lag p S (p >= 1) is left to
    partition p - 1 (its tap S), so every lag is counted once.
    """
    c, k_len = kernels.shape
    s = hop
    lags = F_.pad(kernels.flip(-1), (0, n_parts * s + 1 - k_len))  # (C, P*S+1)
    parts = lags.unfold(-1, s + 1, s)  # (C, P, S+1)
    keep = torch.ones(n_parts, s + 1, dtype=kernels.dtype, device=kernels.device)
    keep[1:, 0] = 0
    spec = torch.fft.rfft(parts * keep, n=n_fft)  # (C, P, N/2+1)
    return torch.stack([spec.real, spec.imag], -1).permute(2, 0, 1, 3).reshape(n_fft // 2 + 1, c, 2 * n_parts)


def _bin_weights(n_fft: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(N/2+1,) the adjoint of irfft: the gradient w.r.t. bin k of the spectrum (as Re, Im) of
    irfft(Y, N) is rfft(g)[k] times 2/N for interior bins, 1/N for DC and Nyquist."""
    w = torch.full((n_fft // 2 + 1,), 2.0 / n_fft, dtype=dtype, device=device)
    w[0] = w[-1] = 1.0 / n_fft
    return w


def correlation_geometry(k_len: int, hop: int) -> tuple[int, int]:
    """(N', D) of the kernel gradient's long-block correlation: N' the power of two >= 4 (K-1) and
    >= K - 1 + 4 S, D the whole frames per block that fit with the K - 1 samples of history
    (N' = 4096, D = 3360 = 14 frames for K = 721, S = 240)."""
    n_fft = 1 << (max(4 * (k_len - 1), k_len - 1 + 4 * hop) - 1).bit_length()
    return n_fft, (n_fft - k_len + 1) // hop * hop


def _signal_blocks(x: torch.Tensor, k_len: int, n_fft: int, step: int) -> torch.Tensor:
    """(B, J, N'/2+1): N'-point spectra of the input x (B, T*S) in blocks for ``_kernel_grad``.

    Block j holds samples [j D - (K-1), (j+1) D), D = ``step`` (zeros outside the clip)."""
    n_blocks = -(-x.shape[-1] // step)
    padded = F_.pad(x, (k_len - 1, n_blocks * step - x.shape[-1]))
    return torch.fft.rfft(padded.unfold(-1, step + k_len - 1, step), n=n_fft)


def _product_into_blocks(dst: torch.Tensor, a: torch.Tensor, b: torch.Tensor, m: int) -> None:
    """dst (F, B, J, N') <- a * b, both (F, B, T, S): frames j m .. j m + m - 1 go to the first
    m S positions of block j, zeros everywhere else. No intermediate copies."""
    t_len, s = a.shape[2], a.shape[3]
    frames = dst[..., : m * s].unflatten(-1, (m, s))  # (F, B, J, m, S)
    full = t_len // m
    if full:
        torch.mul(a[:, :, : full * m].unflatten(2, (full, m)), b[:, :, : full * m].unflatten(2, (full, m)),
                  out=frames[:, :, :full])
    rest = t_len - full * m
    if rest:
        torch.mul(a[:, :, full * m :], b[:, :, full * m :], out=frames[:, :, full, :rest])
        frames[:, :, full, rest:].zero_()
    dst[..., m * s :].zero_()


def _kernel_grad(grad_blocks: torch.Tensor, x_blocks: torch.Tensor, k_len: int) -> torch.Tensor:
    """(C, K), C = 2F: gradient w.r.t. the correlation kernels k of y_c[n] = sum_j k_c[j] x[n - (K-1) + j].

    grad_blocks: (F, B, J, N') complex, g_re + i g_im of each real / imaginary kernel pair: the
    gradient w.r.t. y in blocks of D samples (``_product_into_blocks``); x_blocks: (B, J, N'/2+1) from
    ``_signal_blocks``. dL/dk_c[j] = sum_n g_c[n] x[n - (K-1) + j], a cross-correlation over the whole
    clip, computed per block as fft(g block) * conj(fft(x block)), summed over blocks and the batch,
    then one inverse FFT per pair: lag j sits at index -j mod N'. x is real, so the correlation of
    g_re + i g_im is corr(g_re) + i corr(g_im): one complex transform per pair instead of two real ones
    (torch's real-to-complex FFT on the CPU measured 1.5-3x slower than the complex one per transform).
    """
    n_fft = grad_blocks.shape[-1]
    g_spec = torch.fft.fft(grad_blocks)  # (F, B, J, N')
    x_conj = torch.cat([x_blocks, x_blocks[..., 1:-1].flip(-1).conj()], -1).conj()  # the full spectra, conjugated
    acc = g_spec[:, 0, 0] * x_conj[0, 0]
    for b in range(g_spec.shape[1]):
        for j in range(g_spec.shape[2]):
            if b or j:
                acc.addcmul_(g_spec[:, b, j], x_conj[b, j])
    pairs = torch.fft.ifft(acc)  # (F, N')
    corr = torch.cat([pairs.real, pairs.imag])  # (C, N')
    return torch.cat([corr[:, :1], corr[:, n_fft - k_len + 1 :].flip(-1)], -1)


def _complex_blocks(n_f: int, b: int, n_blocks: int, n_fft: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An (F, B, J, N') complex buffer for ``_kernel_grad`` and its real and imaginary parts as views."""
    z = torch.empty(n_f, b, n_blocks, n_fft, dtype=torch.complex128 if like.dtype == torch.float64 else torch.complex64,
                    device=like.device)
    parts = torch.view_as_real(z)
    return z, parts[..., 0], parts[..., 1]


def _pool_grad(env: torch.Tensor, grad_parts: torch.Tensor) -> torch.Tensor:
    """(F, S, Q) = env^T grad_parts for env (F, R, S), grad_parts (F, R, Q), as (grad_parts^T env)^T:
    the long axis R inside the product, not across a transposed operand (3x faster here)."""
    return torch.bmm(grad_parts.transpose(1, 2).contiguous(), env).transpose(1, 2)


class _GaborEnvelopePool(torch.autograd.Function):
    """Partitioned FFT convolution -> envelope -> per-frame pooling partial sums, one autograd node.

    Inputs: spec (B, T, N/2+1) from ``_frame_spectra``; kernels (C, K), C = 2F correlation kernels
    (real ones first, then imaginary ones); pool (F, S, Q): weight of position i of the frame q
    frames back; x_blocks from ``_signal_blocks`` (for the kernel gradient; not differentiated);
    n_parts: P. Output (F, BT, Q): the contribution of frame t's envelope samples to pooled frame t + q.
    The matmul wants the frequency bin as its batch (outer) axis and the FFTs want it innermost; the
    inverse FFT reads the strided spectrum directly (MKL's output is (C, BT, N) in memory, so the
    ``contiguous()`` after it is free there). The kernel gradient does not go through the frames'
    spectra at all: it is one long-block cross-correlation (``_kernel_grad``), about half the
    transform work and a fifth of the products of the frame-by-frame adjoint.
    """

    @staticmethod
    def forward(ctx, spec, kernels, pool, x_blocks, n_parts, correlation_geometry):  # type: ignore[override]
        n_f, s = pool.shape[0], pool.shape[1]
        n_bins = spec.shape[-1]
        weights = _partition_weights(kernels, s, n_parts, 2 * (n_bins - 1))  # (N/2+1, C, 2P)
        data = _data_matrix(spec, n_parts)
        out_spec = torch.bmm(weights, data, out=data.new_empty(n_bins, weights.shape[1], data.shape[-1]))
        del data
        out_spec = torch.view_as_complex(out_spec.view(n_bins, out_spec.shape[1], -1, 2))  # Y, (N/2+1, C, BT)
        filt = torch.fft.irfft(out_spec, n=2 * (n_bins - 1), dim=0).permute(1, 2, 0).contiguous()  # (C, BT, N)
        del out_spec
        re, im = filt[:n_f, :, s : 2 * s], filt[n_f:, :, s : 2 * s]  # the frame's own S output samples
        env = re * re
        env.addcmul_(im, im).add_(ENVELOPE_EPS).sqrt_()  # (F, BT, S)
        parts = torch.bmm(env, pool)  # (F, BT, Q)
        ctx.save_for_backward(spec, weights, pool, x_blocks, filt, env)
        ctx.k_len, ctx.correlation_geometry = kernels.shape[-1], correlation_geometry
        return parts

    @staticmethod
    def backward(ctx, grad_parts):  # type: ignore[override]
        spec, weights, pool, x_blocks, filt, env = ctx.saved_tensors
        n_f, s = pool.shape[0], pool.shape[1]
        need_spec, need_kernels, need_pool = ctx.needs_input_grad[:3]
        grad_pool = _pool_grad(env, grad_parts) if need_pool else None
        grad_spec = grad_kernels = None
        if need_spec or need_kernels:
            ratio = torch.bmm(grad_parts, pool.transpose(1, 2))  # (F, BT, S): d loss / d env
            ratio /= env  # d env / d re = re / env, d env / d im = im / env
            b, n_fft = spec.shape[0], filt.shape[-1]
            if need_kernels:
                n_corr, step = ctx.correlation_geometry
                grad_blocks, *dsts = _complex_blocks(n_f, b, x_blocks.shape[1], n_corr, filt)
                ratio_frames = ratio.view(n_f, b, -1, s)
                for dst, rows in zip(dsts, (slice(None, n_f), slice(n_f, None))):  # real kernels, then imaginary
                    own = filt[rows].view(n_f, b, -1, n_fft)[..., s : 2 * s]  # re or im, (F, B, T, S)
                    _product_into_blocks(dst, ratio_frames, own, step // s)
                grad_kernels = _kernel_grad(grad_blocks, x_blocks, ctx.k_len)
                del grad_blocks
            if need_spec:  # input gradients (causality tests, waveform gradient maps): not the hot path
                grad_y = torch.cat([ratio * filt[:n_f, :, s : 2 * s], ratio * filt[n_f:, :, s : 2 * s]])
                buf = F_.pad(grad_y, (s, n_fft - 2 * s))  # positions S .. 2S-1 of each block
                g_spec = torch.fft.rfft(buf)  # (C, BT, N/2+1)
                scale = _bin_weights(filt.shape[-1], filt.dtype, filt.device)[:, None, None]
                g_spec = torch.view_as_real(g_spec.permute(2, 0, 1).contiguous())  # (N/2+1, C, BT, 2)
                g_spec = g_spec.view(g_spec.shape[0], g_spec.shape[1], -1)  # (N/2+1, C, 2BT)
                grad_data = torch.bmm((weights * scale).transpose(1, 2), g_spec)  # (N/2+1, 2P, 2BT)
                grad_spec = _data_matrix_adjoint(grad_data, spec.shape)
        return grad_spec, grad_kernels, grad_pool, None, None, None


class _LongBlockGaborEnvelopePool(torch.autograd.Function):
    """The training-mode twin of ``_GaborEnvelopePool``: the same filtering, envelope and pooling
    partial sums, with the Gabor filtering done in long overlap-save blocks (those of
    ``_signal_blocks``: N'-point transforms of D = m S new samples each) instead of frame by frame.

    Equal to the definition to float rounding (the tests hold it to 1e-4 of a float64 direct
    convolution, with all gradients), about 40 % less forward work, but a block's transform mixes
    its later frames into its earlier ones at the rounding level, so it is used in training mode
    and for the fitter's validation pass only (``block_filtering``): causality is an eval-mode
    property (spec/frontends.md), and eval mode (test, predictions, gradient maps) otherwise takes the
    frame-exact path. Inputs: x_blocks (B, J, N'/2+1),
    kernels (C, K), pool (F, S, Q), the correlation geometry (N', D) and the number of frames T.
    Output (F, BT, Q) as ``_GaborEnvelopePool``'s. No input gradient (the waveform is data).
    """

    @staticmethod
    def forward(ctx, x_blocks, kernels, pool, geometry, n_frames):  # type: ignore[override]
        n_fft, step = geometry
        n_f, s, q = pool.shape
        b, n_blocks = x_blocks.shape[:2]
        k_len = kernels.shape[-1]
        m = step // s
        h_spec = torch.fft.rfft(kernels.flip(-1), n=n_fft)  # the causal filters' spectra, (C, N'/2+1)
        filt = torch.fft.irfft(x_blocks[None] * h_spec[:, None, None], n=n_fft)  # (C, B, J, N')
        own = filt[..., k_len - 1 : k_len - 1 + step].unflatten(-1, (m, s))  # (C, B, J, m, S): block j's frames
        env = own[:n_f] * own[:n_f]
        env.addcmul_(own[n_f:], own[n_f:]).add_(ENVELOPE_EPS).sqrt_()  # (F, B, J, m, S), contiguous
        parts = torch.bmm(env.view(n_f, -1, s), pool).view(n_f, b, n_blocks * m, q)[:, :, :n_frames]
        ctx.save_for_backward(x_blocks, pool, filt, env)
        ctx.k_len, ctx.n_frames = k_len, n_frames
        return parts.reshape(n_f, b * n_frames, q)

    @staticmethod
    def backward(ctx, grad_parts):  # type: ignore[override]
        x_blocks, pool, filt, env = ctx.saved_tensors
        n_f, s, q = pool.shape
        b, n_blocks = x_blocks.shape[0], x_blocks.shape[1]
        k_len, n_frames = ctx.k_len, ctx.n_frames
        m = env.shape[3]
        full = grad_parts.new_zeros(n_f, b, n_blocks * m, q)  # frames past the clip end get no gradient
        full[:, :, :n_frames] = grad_parts.view(n_f, b, n_frames, q)
        full = full.view(n_f, -1, q)
        env_rows = env.view(n_f, -1, s)
        grad_pool = _pool_grad(env_rows, full) if ctx.needs_input_grad[2] else None
        grad_kernels = None
        if ctx.needs_input_grad[1]:
            ratio = torch.bmm(full, pool.transpose(1, 2)).view(env.shape)
            ratio /= env  # d env / d re = re / env, d env / d im = im / env
            own = filt[..., k_len - 1 : k_len - 1 + m * s].unflatten(-1, (m, s))
            # block j: the gradient w.r.t. its D output samples, then zeros; real pairs with imaginary
            grad_blocks, g_re, g_im = _complex_blocks(n_f, b, n_blocks, filt.shape[-1], filt)
            torch.mul(ratio, own[:n_f], out=g_re[..., : m * s].unflatten(-1, (m, s)))
            torch.mul(ratio, own[n_f:], out=g_im[..., : m * s].unflatten(-1, (m, s)))
            grad_blocks[..., m * s :].zero_()
            grad_kernels = _kernel_grad(grad_blocks, x_blocks, k_len)
        return None, grad_kernels, grad_pool, None, None


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


@register("leaf", config=LeafFrontendConfig)
class CausalLEAF(WaveformFrontend):
    """CausalLEAF: (B, 1, T*hop) -> (B, 1, F, T); 7F learnable parameters (238 at F = 34).

    audio_fs, hop: from the dataset. n_filters: F. f_min, f_max: range of the HTK-mel initial
    centres in Hz (f_max capped at Nyquist). gabor_ms: Gabor length, K = max(hop, round(fs ms/1000))
    forced odd (721 at 48 kHz). pool_ms: pooling window, L = max(hop, round(fs ms/1000)) (960).
    learn_filters / learn_pooling / learn_pcen: False freezes that group (kept as buffers).
    eps: PCEN's epsilon. Output frame t depends only on samples [0, (t+1) hop), exactly.
    """

    def __init__(
        self,
        audio_fs: float,
        hop: int,
        n_filters: int = 34,
        f_min: float = 60.0,
        f_max: float = 22627.0,
        gabor_ms: float = 15.0,
        pool_ms: float = 20.0,
        learn_filters: bool = True,
        learn_pooling: bool = True,
        learn_pcen: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(n_filters, audio_fs, hop)
        fs = self.audio_fs
        if n_filters < 1:
            raise ConfigError(f"frontend.n_filters must be >= 1, got {n_filters}")
        if gabor_ms <= 0 or pool_ms <= 0:
            raise ConfigError(f"frontend.gabor_ms and frontend.pool_ms must be > 0, got {gabor_ms}, {pool_ms}")
        if eps <= 0:
            raise ConfigError(f"frontend.eps must be > 0, got {eps}")
        f_max = min(float(f_max), fs / 2)
        if not 0 < f_min < f_max:
            raise ConfigError(f"frontend.f_min must be in (0, f_max={f_max:g}) (f_max capped at Nyquist), got {f_min}")
        self.f_min, self.f_max = float(f_min), f_max
        k_len = max(self.hop, round(fs * gabor_ms / 1000.0))
        self.kernel_size = k_len + 1 - k_len % 2  # forced odd
        self.pool_size = max(self.hop, round(fs * pool_ms / 1000.0))
        self.n_parts = max(1, -(-(self.kernel_size - 1) // self.hop))  # P: partitions of the filter
        self.n_pool_frames = -(-self.pool_size // self.hop)  # Q: frames a pooling window spans
        self.n_fft = fft_size(self.hop)
        self.correlation_geometry = correlation_geometry(self.kernel_size, self.hop)

        fc = mel_centres(n_filters, f_min, f_max)
        centre = torch.tensor(2 * np.pi * fc / fs, dtype=torch.float32)
        gabor = torch.tensor([inverse_softplus(v) for v in fs / (2 * np.pi * erb_bandwidth(fc))], dtype=torch.float32)
        pool = torch.full((n_filters,), inverse_softplus(self.pool_size / 4.0))
        self._add("centre", centre, learn_filters)
        self._add("gabor_width_raw", gabor, learn_filters)
        self._add("pool_width_raw", pool, learn_pooling)
        self.register_buffer("initial_centre", centre.clone(), persistent=False)
        self.pcen = PCEN(n_filters, eps=eps, learnable=learn_pcen)

    def _add(self, name: str, value: torch.Tensor, learnable: bool) -> None:
        if learnable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    # --- constrained parameters -------------------------------------------------------------

    def centres(self) -> torch.Tensor:
        """(F,) centre frequencies in rad/sample as used: clamped to [0.01, pi]."""
        return self.centre.clamp(MIN_CENTRE, math.pi)

    def gabor_widths(self) -> torch.Tensor:
        """(F,) Gabor Gaussian standard deviations in samples: softplus(raw), at least 1."""
        return F_.softplus(self.gabor_width_raw).clamp(min=MIN_GABOR_WIDTH)

    def pool_widths(self) -> torch.Tensor:
        """(F,) pooling Gaussian standard deviations in samples: softplus(raw), at least 0.5."""
        return F_.softplus(self.pool_width_raw).clamp(min=MIN_POOL_WIDTH)

    def kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, imag), each (F, K): the Gabor kernels as conv1d (correlation) weights, differentiable.

        Tap j sits at n = j - (K-1)/2; correlating the left-padded input with them makes output
        sample t use x[t-K+1 .. t], the kernel's centre at lag (K-1)/2.
        """
        half = (self.kernel_size - 1) / 2
        dtype, device = self.centre.dtype, self.centre.device
        n = torch.arange(self.kernel_size, dtype=dtype, device=device) - half
        gauss = torch.exp(-0.5 * (n / self.gabor_widths()[:, None]) ** 2)
        gauss = gauss / gauss.sum(-1, keepdim=True).clamp(min=1e-8)  # unit DC gain
        phase = self.centres()[:, None] * n
        return torch.cos(phase) * gauss, torch.sin(phase) * gauss

    def pooling_weights(self) -> torch.Tensor:
        """(F, L) pooling taps as conv1d weights: tap j at distance L-1-j from the newest sample."""
        dist = torch.arange(self.pool_size - 1, -1, -1, dtype=self.centre.dtype, device=self.centre.device)
        w = torch.exp(-0.5 * (dist / self.pool_widths()[:, None]) ** 2)
        return w / w.sum(-1, keepdim=True).clamp(min=1e-8)

    def _pool_blocks(self) -> torch.Tensor:
        """(F, S, Q): weight of position i of the frame q frames before the pooled one (zero-extended)."""
        q, s = self.n_pool_frames, self.hop
        w = F_.pad(self.pooling_weights(), (q * s - self.pool_size, 0))  # (F, Q*S), newest last
        return w.view(-1, q, s).flip(1).transpose(1, 2)

    # --- for plots --------------------------------------------------------------------------

    def centres_hz(self) -> torch.Tensor:
        """(F,) current centre frequencies in Hz (after the forward's clamp)."""
        return (self.centres() * self.audio_fs / (2 * math.pi)).detach()

    def initial_centres_hz(self) -> torch.Tensor:
        """(F,) the initial centres in Hz through the same clamp (HTK mel from f_min to f_max, except
        that centres below 0.01 rad/sample, e.g. 60 Hz at 48 kHz, sit at 0.01 rad/sample = 76.4 Hz)."""
        return (self.initial_centre.clamp(MIN_CENTRE, math.pi) * self.audio_fs / (2 * math.pi)).detach()

    def bandwidths_hz(self) -> torch.Tensor:
        """(F,) bandwidths in Hz: fs / (2 pi sigma_g), the standard deviation of each Gabor's Gaussian
        frequency response (equal to ERB(fc) at initialisation)."""
        return (self.audio_fs / (2 * math.pi * self.gabor_widths())).detach()

    def impulse_responses(self) -> torch.Tensor:
        """(F, K) complex Gabor kernels real + i imag on the centred grid n = -(K-1)/2 .. (K-1)/2."""
        re, im = self.kernels()
        return torch.complex(re.detach(), im.detach())

    def filterbank_info(self) -> FilterbankInfo:
        return FilterbankInfo("leaf", as_numpy(self.centres_hz()), as_numpy(self.initial_centres_hz()),
                              self.centre.requires_grad)

    def magnitude_responses(self, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """|FFT| of the complex Gabor impulse responses (positive frequencies)."""
        return kernel_magnitudes(self.impulse_responses(), self.audio_fs, n_fft)

    # --- forward ----------------------------------------------------------------------------

    @property
    def context_frames(self) -> int:
        """P + Q - 1: frame t pools frames t-Q+1 .. t, each filtered from spectra of P earlier blocks
        that start one frame before them."""
        return self.n_parts + self.n_pool_frames - 1

    def finite(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled Gabor envelopes (B, F, T) before PCEN, for waveform x (B, 1, T*hop)."""
        n_frames = self.check_waveform(x)
        if n_frames == 0:
            return x.new_zeros(x.shape[0], self.out_channels, 0)
        b, s, q = x.shape[0], self.hop, self.n_pool_frames
        re, im = self.kernels()
        kernels = torch.cat([re, im]).to(x.dtype)
        pool = self._pool_blocks().to(x.dtype)
        x_blocks = _signal_blocks(x[:, 0].detach(), self.kernel_size, *self.correlation_geometry)
        if self.block_filtering_allowed and not x.requires_grad:  # causality is an eval-mode property: see the docstring
            parts = _LongBlockGaborEnvelopePool.apply(x_blocks, kernels, pool, self.correlation_geometry, n_frames)
        else:
            spec = _frame_spectra(x[:, 0], s, self.n_fft)
            parts = _GaborEnvelopePool.apply(spec, kernels, pool, x_blocks, self.n_parts, self.correlation_geometry)
        # parts: (F, B*T, Q)
        parts = F_.pad(parts.view(-1, b, n_frames, q), (0, 0, q - 1, 0))  # frame t gets parts[t - q, q]
        pooled = parts[:, :, q - 1 :, 0]
        for i in range(1, q):
            pooled = pooled + parts[:, :, q - 1 - i : q - 1 - i + n_frames, i]
        return pooled.transpose(0, 1)

    def extra_repr(self) -> str:
        return (
            f"audio_fs={self.audio_fs:g}, hop={self.hop}, n_filters={self.out_channels}, "
            f"f_min={self.f_min:g}, f_max={self.f_max:g}, kernel_size={self.kernel_size}, pool_size={self.pool_size}"
        )
