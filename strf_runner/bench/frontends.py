"""Time one front-end on one NS1-sized stimulus: forward, and forward + backward.

Geometry: 48 kHz, hop 240 (5 ms), 999 frames (239,760 samples), or a (1, 1, 34, 999) spectrogram
for spectrogram-view front-ends. Protocol: one warm-up forward + backward, then the median of
``repeats`` runs of the forward under ``torch.no_grad()`` (the evaluation cost) and of the gradient
of (output * fixed random probe).sum() w.r.t. all trainable parameters (the training cost).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import yaml
from torch import nn

from strf_runner.bench.names import DIRECT
from strf_runner.bench.reference import DirectLEAF
from strf_runner.frontends.leaf import CausalLEAF
from strf_runner.frontends.registry import build_frontend, frontend_class

AUDIO_FS, HOP, N_FRAMES, N_BANDS = 48000, 240, 999, 34


def parse_row(row: str) -> tuple[str, dict[str, Any]]:
    """'name[key=value,...]' -> (name, options), values parsed as YAML scalars (true, 753, 10.0)."""
    name, _, rest = row.partition("[")
    options = {}
    for item in filter(None, rest.rstrip("]").split(",")):
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    return name, options


def build_row(row: str) -> tuple[nn.Module, str]:
    """The module a benchmark row names, and the dataset view it reads."""
    if row == DIRECT:
        return DirectLEAF(CausalLEAF(AUDIO_FS, HOP)), "waveform"
    name, options = parse_row(row)
    cls = frontend_class(name)
    return build_frontend(name, **cls.geometry(N_BANDS, AUDIO_FS, HOP), **options), cls.view


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_frontend(row: str, repeats: int = 3, device: str = "cpu") -> dict[str, Any]:
    """Forward and forward + backward milliseconds of one benchmark row (see the module docstring)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model, view = build_row(row)
    model = model.to(dev).eval()
    shape = (1, 1, N_FRAMES * HOP) if view == "waveform" else (1, 1, N_BANDS, N_FRAMES)
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(shape, generator=g) if view == "waveform" else torch.randn(shape, generator=g) * 20 - 30
    x = x.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        y = model(x)
    probe = torch.randn(y.shape, generator=g).to(dev)

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        model.train()
        torch.autograd.grad((model(x) * probe).sum(), params)

    (forward_backward if params else forward)()  # warm-up
    result: dict[str, Any] = {
        "name": row,
        "view": view,
        "params": sum(p.numel() for p in params),
        "forward_ms": median_ms(forward, repeats, dev),
        "fwd_bwd_ms": median_ms(forward_backward, repeats, dev) if params else None,
    }
    if row == DIRECT:  # how closely the fast LEAF reproduces its definition, same parameters
        with torch.no_grad():
            fast, slow = model.leaf(x), model(x)
        result["max_rel_diff"] = float((fast - slow).abs().max() / slow.abs().max())
    return result
