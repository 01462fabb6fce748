"""What every front-end is: a module that declares the dataset view it reads."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.pcen import PCEN
from strf_runner.stream import with_context

FrontendState = dict[str, torch.Tensor | None]


@dataclass(eq=False)
class FilterbankInfo:
    """A front-end's filter centres now and at initialisation: what analysis and prediction need to
    know of a front-end's channels (``Frontend.filterbank_info``).

    kind: the front-end's config name. centres_hz, initial_centres_hz: (F,) in Hz, channel order
    (equal for fixed banks). learnable: whether the centres can move. band_edges_hz,
    initial_band_edges_hz: (F, 2) (f1, f2) in Hz, for banks defined by band edges (SincNet).
    """

    kind: str
    centres_hz: np.ndarray
    initial_centres_hz: np.ndarray
    learnable: bool
    band_edges_hz: np.ndarray | None = None
    initial_band_edges_hz: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.centres_hz.ndim != 1 or self.centres_hz.shape != self.initial_centres_hz.shape:
            raise ValueError(
                f"centres_hz {self.centres_hz.shape} and initial_centres_hz {self.initial_centres_hz.shape} "
                "must both be (F,)"
            )
        n = len(self.centres_hz)
        for edges in (self.band_edges_hz, self.initial_band_edges_hz):
            if edges is not None and edges.shape != (n, 2):
                raise ValueError(f"band edges must be ({n}, 2), got {edges.shape}")

    @property
    def n_channels(self) -> int:
        return len(self.centres_hz)

    @property
    def drift(self) -> np.ndarray:
        """(F,) relative centre drift |c - c0| / c0 per channel (0.1 = moved by 10 %)."""
        return np.abs(self.centres_hz - self.initial_centres_hz) / self.initial_centres_hz

    @property
    def mean_drift(self) -> float:
        """The mean of ``drift`` over channels."""
        return float(self.drift.mean())


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array, detached and on the CPU (for descriptions, never for training)."""
    return t.detach().cpu().numpy().astype(np.float64)


def kernel_magnitudes(kernels: torch.Tensor, audio_fs: float, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """(freqs_hz (K,), |H| (F, K)) of FIR kernels (F, L), real or complex, on max(n_fft, L) points, 0 .. fs/2."""
    n = max(n_fft, kernels.shape[-1])
    spectrum = torch.fft.fft(kernels.detach().to(torch.complex128), n=n)[:, : n // 2 + 1]
    return np.arange(n // 2 + 1) * audio_fs / n, spectrum.abs().cpu().numpy()


class Frontend(nn.Module):
    """Maps a stimulus batch to a spectrogram (B, 1, F, T), strictly causally.

    ``view`` names the dataset view the front-end consumes: "spectrogram" (input (B, 1, F, T))
    or "waveform" (input (B, 1, T * hop)). The runner loads that view, so choosing a front-end
    is the only switch a user sets. Output frame t depends only on input up to the end of bin t.

    Every front-end is a finite-memory stage ``finite`` (filtering, framing, pooling, pointwise
    compression: output frame t reads input frames t - ``context_frames`` .. t only) optionally
    followed by ``pcen``, an adaptive gain with a recursive state. ``forward`` runs both on a whole
    clip; ``stream`` runs them chunk by chunk with the context and the PCEN state carried across.
    """

    view: ClassVar[str]

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pcen: PCEN | None = None
        self.exact_causality = True  # False only inside ``block_filtering``

    @property
    def block_filtering_allowed(self) -> bool:
        """Whether a front-end with a faster long-block path (LEAF) may take it: in training mode, or
        inside ``block_filtering``; never in plain eval mode, whose outputs are exactly causal."""
        return self.training or not self.exact_causality

    @classmethod
    def geometry(cls, n_bands: int | None, audio_fs: float | None, hop: int | None) -> dict[str, Any]:
        """The constructor arguments this kind of front-end takes from the data's geometry."""
        raise NotImplementedError(f"{cls.__name__} is neither a spectrogram nor a waveform front-end")

    @property
    def frame_size(self) -> int:
        """Input samples along time per output frame: hop for a waveform, 1 for a spectrogram."""
        return 1

    @property
    def context_frames(self) -> int:
        """How many input frames before frame t the finite stage's output frame t may read."""
        return 0

    def finite(self, stims: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The finite-memory stage: stimulus batch -> (B, F, T)."""
        raise NotImplementedError

    def filterbank_info(self) -> FilterbankInfo | None:
        """Its filters' centres now and at initialisation, or None: a front-end without a filterbank of
        its own (the spectrogram view), or one that does not say (analysis then skips the filterbank
        figure, and prediction labels channels by index)."""
        return None

    def magnitude_responses(self, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray] | None:
        """Each channel's filter magnitude response, (freqs_hz (K,), |H| (F, K)) from 0 to audio_fs / 2,
        linear; None where the front-end has no filter kernels to show."""
        return None

    def channel_hz(self, band_hz: np.ndarray | None) -> np.ndarray | None:
        """(F,) the frequency each output channel stands for, or None if unknown. ``band_hz``: the
        dataset's spectrogram band centres (what a spectrogram-view front-end's channels are)."""
        info = self.filterbank_info()
        return None if info is None else info.centres_hz

    def forward(self, stims: torch.Tensor) -> torch.Tensor:
        return self.after_finite(self.finite(stims))

    def after_finite(self, out: torch.Tensor) -> torch.Tensor:
        """What follows the finite stage: (B, F, T) -> PCEN (if any) -> (B, 1, F, T)."""
        return (out if self.pcen is None else self.pcen(out)).unsqueeze(1)

    @property
    def fixed_finite(self) -> bool:
        """The finite stage has no trainable parameter (every one, if any, is PCEN's), so its output for
        a stimulus never changes during a fit and can be computed once."""
        return not any(p.requires_grad for name, p in self.named_parameters() if not name.startswith("pcen."))

    def stream(self, stims: torch.Tensor, state: FrontendState | None = None) -> tuple[torch.Tensor, FrontendState]:
        """``forward`` on the next chunk of a long input: (B, 1, F_in or 1, T * frame_size) -> (B, 1, F, T).

        state: what the previous call returned (None at the start). Chunks may be any whole number of
        frames; their outputs concatenated along time equal ``forward`` of the whole input (eval mode).
        """
        state = state or {"context": None, "pcen": None}
        if stims.shape[-1] % self.frame_size:
            raise ShapeError(
                f"{type(self).__name__}.stream: a chunk of {stims.shape[-1]} samples is not a whole number of "
                f"frames of {self.frame_size}"
            )
        full, n_past, context = with_context(stims, state["context"], self.context_frames * self.frame_size)
        out = self.finite(full)[..., n_past // self.frame_size :]
        smoother = state["pcen"]
        if self.pcen is not None and out.shape[-1]:
            out, smoother = self.pcen.stream(out, smoother)
        return out.unsqueeze(1), {"context": context, "pcen": smoother}


class SpectrogramFrontend(Frontend):
    """A front-end on the dataset's spectrogram view: (B, 1, F, T) -> (B, 1, F', T)."""

    view = "spectrogram"

    @classmethod
    def geometry(cls, n_bands: int | None, audio_fs: float | None, hop: int | None) -> dict[str, Any]:
        """n_bands: the spectrogram view's F."""
        return {"n_bands": n_bands}

    def channel_hz(self, band_hz: np.ndarray | None) -> np.ndarray | None:
        """The dataset's band centres: a spectrogram-view front-end keeps its channels (or None)."""
        return None if band_hz is None or len(band_hz) != self.out_channels else np.asarray(band_hz, dtype=float)

    def check_spectrogram(self, x: torch.Tensor, name: str) -> None:
        """Validate a spectrogram batch (B, 1, F=out_channels, T); ``name`` is the config name in errors."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.out_channels:
            raise ShapeError(
                f"{name} front-end expects a spectrogram batch (B, 1, F={self.out_channels}, T); "
                f"got {tuple(x.shape)}"
            )


class WaveformFrontend(Frontend):
    """A front-end on raw audio: (B, 1, T * hop) -> (B, 1, F, T).

    audio_fs: sample rate in Hz; hop: samples per output frame (audio_fs * dt). Output frame t may
    depend only on samples [0, (t + 1) * hop). Subclasses call ``check_waveform`` first in forward.
    """

    view = "waveform"

    @classmethod
    def geometry(cls, n_bands: int | None, audio_fs: float | None, hop: int | None) -> dict[str, Any]:
        """audio_fs and hop: the waveform view's rate and samples per bin."""
        return {"audio_fs": audio_fs, "hop": hop}

    def __init__(self, out_channels: int, audio_fs: float, hop: int) -> None:
        super().__init__(out_channels)
        if hop < 1 or audio_fs <= 0:
            raise ConfigError(f"{type(self).__name__}: need audio_fs > 0 and hop >= 1, got {audio_fs}, {hop}")
        self.audio_fs = float(audio_fs)
        self.hop = int(hop)

    @property
    def frame_size(self) -> int:
        return self.hop

    def frames_before(self, window: int) -> int:
        """How many frames before frame t a window of ``window`` samples ending at frame t's last
        sample reaches into (the ``context_frames`` of a stage built of such windows)."""
        return max(0, -(-(window - self.hop) // self.hop))

    def check_waveform(self, x: torch.Tensor) -> int:
        """Validate a waveform batch (B, 1, T_audio); return the number of frames T_audio // hop."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ShapeError(f"{type(self).__name__} expects a waveform batch (B, 1, T_audio); got {tuple(x.shape)}")
        if x.shape[-1] % self.hop:
            raise ShapeError(
                f"{type(self).__name__}: T_audio={x.shape[-1]} is not a multiple of hop={self.hop} "
                "(the waveform must be grid-locked to the time bins)"
            )
        return x.shape[-1] // self.hop


@contextmanager
def block_filtering(model: nn.Module) -> Iterator[None]:
    """Let every front-end in ``model`` filter in long blocks in eval mode too, for this block only.

    For scores that need no proof of causality and are computed without input gradients: the
    validation pass of every epoch. Equal to the exact path to float rounding (about 1e-7), where a
    block's later samples reach its earlier outputs; test scores, predictions and gradient maps
    never run inside it.
    """
    frontends = [m for m in model.modules() if isinstance(m, Frontend)]
    saved = [m.exact_causality for m in frontends]
    for m in frontends:
        m.exact_causality = False
    try:
        yield
    finally:
        for m, exact in zip(frontends, saved):
            m.exact_causality = exact
