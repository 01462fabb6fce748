"""Time every registered front-end on one NS1-sized stimulus: forward and forward + backward.

    python benchmarks/frontends.py [--threads 2] [--repeats 3] [--only leaf,mel] [--malloc keep|default]

Each front-end runs in its own subprocess (so the peak RSS column is that front-end's own), built with
audio_fs = 48 kHz and hop = 240 (5 ms) for waveform front-ends, or n_bands = 34 for spectrogram-view
ones, on a seeded noise stimulus of 239,760 samples (999 frames) or a (1, 1, 34, 999) spectrogram.
Protocol: one warm-up forward + backward, then the median of ``repeats`` runs of each of
* forward: under ``torch.no_grad()`` (the evaluation cost);
* forward + backward: the gradient of (output * fixed random probe).sum() w.r.t. all trainable
  parameters (the training cost; "-" for a front-end without parameters, whose backward never runs).
For LEAF the same run also times a naive reference (``DirectLEAF`` below: the same Gabor kernels through
a 721-tap ``F.conv1d``, then the same envelope, pooling and PCEN), checks that both agree and prints
the speed-up. ``--malloc keep`` (default) first tells glibc to keep freed memory for reuse instead of
returning it to the OS (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 1 GiB; spec/performance.md, lever 1):
without it every tensor of tens of MB is page-faulted back on every step. ``--malloc default`` shows
the cost of not doing so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO_FS, HOP, N_FRAMES, N_BANDS = 48000, 240, 999, 34
DIRECT = "leaf-direct"  # the reference row: LEAF by direct convolution
SINC_ENV = "sincnet[envelope=true,kernel_size=753,envelope_ms=10]"  # the seed study's SincNet arm
# each FFT-filtering row and its direct-convolution reference (same kernels, conv1d instead of FFT)
REFERENCES = {
    "leaf": DIRECT,
    "gammatone": "gammatone[fir=direct]",
    SINC_ENV: "sincnet[envelope=true,kernel_size=753,envelope_ms=10,fir=direct]",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --------------------------------------------------------------------------------------------
# child: one front-end


def direct_leaf_class():
    import torch
    import torch.nn.functional as F_
    from torch import nn

    class DirectLEAF(nn.Module):
        """LEAF by its definition: two real 721-tap convolutions (F.conv1d, stride 1) on the input
        left-padded by K - 1, magnitude envelope, strided depthwise pooling conv, PCEN. Shares the
        fast model's parameters, so outputs and gradients are comparable."""

        def __init__(self, leaf: nn.Module) -> None:
            super().__init__()
            self.leaf = leaf

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.leaf
            m.check_waveform(x)
            re, im = m.kernels()
            n_f = m.out_channels
            y = F_.conv1d(F_.pad(x, (m.kernel_size - 1, 0)), torch.cat([re, im])[:, None])
            env = torch.sqrt(y[:, :n_f] ** 2 + y[:, n_f:] ** 2 + 1e-9)
            w = m.pooling_weights()[:, None]
            pooled = F_.conv1d(F_.pad(env, (m.pool_size - m.hop, 0)), w, stride=m.hop, groups=n_f)
            return m.pcen(pooled).unsqueeze(1)

    return DirectLEAF


def parse_row(row: str) -> tuple[str, dict]:
    """"name[key=value,...]" -> (name, options); values parsed as YAML scalars (true, 753, 10.0)."""
    import yaml

    name, _, rest = row.partition("[")
    options = {}
    for item in filter(None, rest.rstrip("]").split(",")):
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    return name, options


def build(row: str):
    from strf_runner.frontends.registry import build_frontend, frontend_class

    if row == DIRECT:
        return direct_leaf_class()(build_frontend("leaf", audio_fs=AUDIO_FS, hop=HOP)), "waveform"
    name, options = parse_row(row)
    view = frontend_class(name).view
    if view == "waveform":
        return build_frontend(name, audio_fs=AUDIO_FS, hop=HOP, **options), view
    return build_frontend(name, n_bands=N_BANDS, **options), view


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def child(name: str, threads: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, view = build(name)
    model.eval()  # front-ends have no train-only behaviour; eval keeps any future BN fixed
    shape = (1, 1, N_FRAMES * HOP) if view == "waveform" else (1, 1, N_BANDS, N_FRAMES)
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(shape, generator=g) if view == "waveform" else torch.randn(shape, generator=g) * 20 - 30
    params = [p for p in model.parameters() if p.requires_grad]
    rss_before = peak_rss_mb()
    with torch.no_grad():
        y = model(x)
    probe = torch.randn(y.shape, generator=g)

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        torch.autograd.grad((model(x) * probe).sum(), params)

    result = {"name": name, "view": view, "params": sum(p.numel() for p in params), "out_shape": list(y.shape)}
    (forward_backward if params else forward)()  # warm-up
    result["forward_ms"] = median_ms(forward, repeats)
    result["fwd_bwd_ms"] = median_ms(forward_backward, repeats) if params else None
    result["rss_setup_mb"] = rss_before
    result["peak_rss_mb"] = peak_rss_mb()
    if name == DIRECT:  # agreement of the fast LEAF with the reference, same parameters
        with torch.no_grad():
            fast = model.leaf(x)
            slow = model(x)
        result["max_rel_diff"] = ((fast - slow).abs().max() / slow.abs().max()).item()
    return result


# --------------------------------------------------------------------------------------------
# parent: run the children, print the table


def run_child(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--threads", str(args.threads)]
    cmd += ["--repeats", str(args.repeats), "--malloc", args.malloc]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"name": name, "error": last[:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--only", default="", help="comma-separated front-end names (default: all registered)")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep", help="glibc allocator mode")
    parser.add_argument("--no-reference", action="store_true", help="skip LEAF's direct conv1d reference")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        from strf_runner.training.device import keep_freed_memory

        kept = keep_freed_memory() if args.malloc == "keep" else False
        result = child(args.child, args.threads, args.repeats)
        result["malloc_kept"] = kept
        print(json.dumps(result))
        return

    sys.path.insert(0, str(ROOT))
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from strf_runner.frontends.registry import FRONTENDS

    names = FRONTENDS.names()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names) - {DIRECT})
        if unknown:
            parser.error(f"--only: unknown front-end(s) {unknown}; registered: {names}")
        names = [n for n in names if n in wanted] + ([DIRECT] if DIRECT in wanted else [])
    if "sincnet" in names and not args.only:
        names.append(SINC_ENV)
    if not args.no_reference:
        names += [ref for fast, ref in REFERENCES.items() if fast in names and ref not in names]

    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # a log file: do not squeeze the table into 80 columns
    start = time.perf_counter()
    results = []
    for name in names:
        with console.status(f"timing {name} ..."):
            results.append(run_child(name, args))
    by_name = {r["name"]: r for r in results}
    leaf = by_name.get("leaf", {})

    table = Table(
        title=f"Front-ends on one NS1-sized stimulus (239,760 samples at 48 kHz, 999 frames): "
        f"{args.threads} threads, median of {args.repeats}, malloc {args.malloc}",
        title_justify="left",
    )
    columns = ("front-end", "view", "params", "forward ms", "fwd+bwd ms", "fwd x LEAF", "fwd+bwd x LEAF")
    for col in (*columns, "peak RSS MB", "setup RSS MB"):
        table.add_column(col, justify="left" if col in ("front-end", "view") else "right", no_wrap=True)
    for r in results:
        if "error" in r:
            table.add_row(escape(r["name"]), "", "", f"[red]failed: {escape(r['error'])}[/red]", "", "", "", "", "")
            continue

        def ratio(key: str) -> str:
            a, b = r.get(key), leaf.get(key)
            return "-" if a is None or not b else f"{a / b:.2f}"

        table.add_row(
            escape(r["name"]),
            r["view"],
            f"{r['params']:,}",
            fmt(r["forward_ms"]),
            fmt(r["fwd_bwd_ms"]),
            ratio("forward_ms"),
            ratio("fwd_bwd_ms"),
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['rss_setup_mb']:,.0f}",
        )
    console.print(table)
    for fast_name, ref_name in REFERENCES.items():
        fast, ref = by_name.get(fast_name), by_name.get(ref_name)
        if not fast or not ref or "error" in fast or "error" in ref:
            continue
        key = "fwd_bwd_ms" if fast["fwd_bwd_ms"] and ref["fwd_bwd_ms"] else "forward_ms"
        line = (
            f"{escape(fast_name)} vs its direct-convolution reference: forward x{ref['forward_ms'] / fast['forward_ms']:.1f}"
            + (f", forward + backward x{ref[key] / fast[key]:.1f}" if key == "fwd_bwd_ms" else "")
            + " faster"
        )
        if "max_rel_diff" in ref:
            line += f"; outputs differ by {ref['max_rel_diff']:.1e} (max, relative to the largest output)"
        console.print(line)
    if args.malloc == "keep" and results and not all(r.get("malloc_kept", True) for r in results if "error" not in r):
        console.print("[yellow]mallopt unavailable (not glibc): ran with the default allocator[/yellow]")
    console.print(
        f"[dim]{time.perf_counter() - start:.0f} s in all; each front-end in its own process (peak RSS = that "
        "process's; setup = after importing torch, building the front-end and the input)[/dim]"
    )


if __name__ == "__main__":
    main()
