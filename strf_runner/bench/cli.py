"""``strf-bench``: time every front-end and whole training epochs on NS1-sized input, against the
naive direct-convolution LEAF in the same run; print the ratios and the performance targets; write a CSV.

Each measurement runs in its own process, so its peak-RSS column is its own and no measurement
warms the allocator or caches for another. Children first tell glibc to keep freed memory
(``keep_freed_memory``), as ``strf-run`` does.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from strf_runner.atomic import atomic_path
from strf_runner.bench.names import DIRECT, TORCH_RNN
from strf_runner.entry import setup, version_line
from strf_runner.errors import ConfigError

SINC_ENV = "sincnet[envelope=true,kernel_size=753,envelope_ms=10]"  # the seed study's SincNet arm
REFERENCES = {  # each FFT-filtering row and its direct-convolution twin (same kernels, conv1d)
    "leaf": DIRECT,
    "gammatone": "gammatone[fir=direct]",
    SINC_ENV: "sincnet[envelope=true,kernel_size=753,envelope_ms=10,fir=direct]",
}
TARGETS = {  # the project's CPU targets, stated for 2 threads
    "leaf_epoch_s": 1.3,
    "native_epoch_s": 0.15,
    "statenet_epoch_s": 0.9,
    "gammatone_x_native": 1.5,
    "fwd_bwd_x_leaf": 3.0,
    "leaf_peak_rss_mb": 2048.0,
}
EPOCH_ROWS = ",".join([  # every front-end kind and readout a sweep uses, and the naive references
    "native", "leaf", DIRECT, "gammatone", "mel", "native+statenet", f"native+{TORCH_RNN}",
    "native+statenet[rnn=lstm]", "native+statenet[rnn=rnn]", "native+dnet",
])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(kind: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from strf_runner.training.device import keep_freed_memory

    kept = keep_freed_memory()
    torch.set_num_threads(args.threads)
    if kind == "frontend":
        from strf_runner.bench.frontends import time_frontend

        result = time_frontend(name, repeats=args.repeats, device=args.device)
    else:
        from strf_runner.bench.epochs import time_epochs

        result = dataclasses.asdict(time_epochs(name, epochs=args.epochs, device=args.device))
    result.update(kind=kind, peak_rss_mb=peak_rss_mb(), malloc_kept=kept)
    return result


def run_child(kind: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "strf_runner.bench.cli", f"--child-{kind}", name, "--threads", str(args.threads)]
    cmd += ["--repeats", str(args.repeats), "--epochs", str(args.epochs), "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"kind": kind, "name": name, "error": last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def frontend_rows(only: list[str] | None, references: bool) -> list[str]:
    from strf_runner.frontends.registry import FRONTENDS

    rows = only or FRONTENDS.names() + [SINC_ENV]
    if references:
        rows += [ref for fast, ref in REFERENCES.items() if fast in rows and ref not in rows]
    return rows


def split_rows(text: str) -> list[str]:
    """'a,b[x=1,y=2],c' -> ['a', 'b[x=1,y=2]', 'c']: commas inside brackets belong to a row's options."""
    rows, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            rows.append(current.strip())
            current = ""
        else:
            current += ch
    rows.append(current.strip())
    return [r for r in rows if r]


def fmt(v: float | None, spec: str = ",.1f") -> str:
    return "-" if v is None else format(v, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def report(results: list[dict[str, Any]], args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    """Print the tables; return the rows for the CSV (with ratios) and the target checks."""
    fronts = {r["name"]: r for r in results if r["kind"] == "frontend"}
    epochs = {r["name"]: r for r in results if r["kind"] == "epoch"}
    leaf = fronts.get("leaf", {})
    rows = []

    table = Table(title=f"Front-ends, one NS1-sized stimulus (999 frames; 239,760 samples at 48 kHz), "
                  f"{args.device}, {args.threads} threads, median of {args.repeats}", title_justify="left")
    for col in ("front-end", "params", "forward ms", "fwd+bwd ms", "fwd x LEAF", "fwd+bwd x LEAF", "peak RSS MB"):
        table.add_column(col, justify="left" if col == "front-end" else "right", no_wrap=True)
    for name, r in fronts.items():
        if "error" in r:
            table.add_row(escape(name), "", f"[red]failed: {escape(r['error'])}[/red]", "", "", "", "")
            rows.append({"kind": "frontend", "name": name, "error": r["error"]})
            continue
        r = dict(r, fwd_x_leaf=ratio(r["forward_ms"], leaf.get("forward_ms")),
                 fwd_bwd_x_leaf=ratio(r["fwd_bwd_ms"], leaf.get("fwd_bwd_ms")))
        table.add_row(escape(name), f"{r['params']:,}", fmt(r["forward_ms"]), fmt(r["fwd_bwd_ms"]),
                      fmt(r["fwd_x_leaf"], ".2f"), fmt(r["fwd_bwd_x_leaf"], ".2f"), fmt(r["peak_rss_mb"], ",.0f"))
        rows.append(r)
    if fronts:
        console.print(table)
    for fast, ref in REFERENCES.items():
        a, b = fronts.get(fast), fronts.get(ref)
        if a and b and "error" not in a and "error" not in b:
            key = "fwd_bwd_ms" if a["fwd_bwd_ms"] and b["fwd_bwd_ms"] else "forward_ms"
            line = f"{escape(fast)}: x{b['forward_ms'] / a['forward_ms']:.1f} faster than its direct convolution forward"
            if key == "fwd_bwd_ms":
                line += f", x{b[key] / a[key]:.1f} forward + backward"
            if "max_rel_diff" in b:
                line += f"; outputs agree to {b['max_rel_diff']:.1e} (max difference / max output)"
            console.print(line)

    table = Table(title=f"Training epochs of real strf-run runs (14 train + 3 val stimuli of NS1's size, 119 neurons, "
                  f"batch 1, default recipe; Linear readout unless named; {args.device}, {args.threads} threads, "
                  f"median of {args.epochs} after a warm-up)", title_justify="left")
    for col in ("run", "params", "epoch s", "of which val s", "x native", "peak RSS MB"):
        table.add_column(col, justify="left" if col == "run" else "right", no_wrap=True)
    native_epoch = epochs.get("native", {}).get("epoch_s")
    for name, r in epochs.items():
        if "error" in r:
            table.add_row(escape(name), "", f"[red]failed: {escape(r['error'])}[/red]", "", "", "")
            rows.append({"kind": "epoch", "name": name, "error": r["error"]})
            continue
        r = dict(r, epoch_x_native=ratio(r["epoch_s"], native_epoch))
        table.add_row(escape(name), f"{r['n_params']:,}", fmt(r["epoch_s"], ".3f"), fmt(r["validation_s"], ".3f"),
                      fmt(r["epoch_x_native"], ".2f"), fmt(r["peak_rss_mb"], ",.0f"))
        rows.append(r)
    if epochs:
        console.print(table)
    for fast, ref, what in (("leaf", DIRECT, "LEAF epoch: x{:.1f} faster than the direct-convolution LEAF epoch"),
                            ("native+statenet", f"native+{TORCH_RNN}",
                             "StateNet epoch: x{:.1f} faster than with torch's own GRU")):
        a, b = epochs.get(fast, {}).get("epoch_s"), epochs.get(ref, {}).get("epoch_s")
        if a and b:
            console.print(what.format(b / a))

    checks = []
    if args.device == "cpu":
        checks = target_checks(fronts, epochs)
        table = Table(title="Targets (stated for 2 CPU threads)", title_justify="left")
        for col in ("target", "measured", "limit", ""):
            table.add_column(col, justify="left" if col == "target" else "right")
        for c in checks:
            ok = "[green]met[/green]" if c["met"] else "[red]missed[/red]"
            table.add_row(escape(c["name"]), fmt(c["value"], ",.3f"), fmt(c["limit"], ",.3f"), ok)
        console.print(table)
    return rows + [{"kind": "target", **c} for c in checks]


def target_checks(fronts: dict[str, dict], epochs: dict[str, dict]) -> list[dict[str, Any]]:
    checks = []
    for row, key, label in (("leaf", "leaf_epoch_s", "LEAF epoch + validation, s"),
                            ("native", "native_epoch_s", "native epoch + validation, s"),
                            ("native+statenet", "statenet_epoch_s", "StateNet (GRU) epoch + validation, s")):
        value = epochs.get(row, {}).get("epoch_s")
        if value is not None:
            checks.append({"name": label, "value": value, "limit": TARGETS[key]})
    gammatone, native = epochs.get("gammatone", {}).get("epoch_s"), epochs.get("native", {}).get("epoch_s")
    if gammatone is not None and native:
        checks.append({"name": "gammatone epoch / native epoch", "value": gammatone / native,
                       "limit": TARGETS["gammatone_x_native"]})
    leaf = fronts.get("leaf", {}).get("fwd_bwd_ms")
    # a front-end's training cost: forward + backward, or the forward alone when it has no parameters
    cost = {n: r.get("fwd_bwd_ms") or r.get("forward_ms") for n, r in fronts.items()
            if n != "leaf" and n not in REFERENCES.values() and "error" not in r}
    if leaf and cost:
        name = max(cost, key=cost.get)
        checks.append({"name": f"slowest other front-end's training cost / LEAF's fwd+bwd ({name})",
                       "value": cost[name] / leaf, "limit": TARGETS["fwd_bwd_x_leaf"]})
    rss = epochs.get("leaf", {}).get("peak_rss_mb")
    if rss is not None:
        checks.append({"name": "peak RSS of the LEAF epoch process, MB", "value": rss, "limit": TARGETS["leaf_peak_rss_mb"]})
    for c in checks:
        c["met"] = c["value"] <= c["limit"]
    return checks


def write_csv(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    columns: list[str] = list(meta)
    for r in rows:
        columns += [k for k in r if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({**meta, **r})


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``strf-bench: error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def bench_device(name: str) -> str:
    """The device ``--device name`` measures on (``auto``: cuda when a GPU is visible, else cpu);
    ConfigError naming ``--device`` when it is not a device or not available here."""
    from strf_runner.training.device import resolve_device

    return str(resolve_device(name, key="--device"))


def targets_text() -> str:
    """The CPU targets in words, for --help."""
    t = TARGETS
    return (f"a LEAF epoch <= {t['leaf_epoch_s']:g} s, a native epoch <= {t['native_epoch_s']:g} s, a StateNet "
            f"epoch <= {t['statenet_epoch_s']:g} s, a gammatone epoch within {t['gammatone_x_native']:g}x of native's, "
            f"every front-end's training step within {t['fwd_bwd_x_leaf']:g}x of LEAF's, the LEAF epoch's peak "
            f"memory <= {t['leaf_peak_rss_mb'] / 1024:g} GB")


def bench_parser() -> OneLineParser:
    """strf-bench's command line (also what tests/test_docs.py checks the documented commands against)."""
    parser = OneLineParser(
        prog="strf-bench",
        description="Time every front-end (forward, forward + backward) and whole training epochs of real "
        "strf-run runs on NS1-sized input, with the naive references in the same run (LEAF by direct "
        "convolution, StateNet with torch's own GRU); print the "
        f"ratios and, on cpu, the project's targets as met / missed (stated for 2 threads: {targets_text()}); "
        "write a CSV. Exits 1 when no measurement succeeded.",
        epilog="Timings on a shared machine are noisy: compare rows of one run. Examples: strf-bench; "
        "strf-bench --only leaf,mel --epoch-rows leaf,native+statenet; strf-bench --device cuda --threads 8",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads per measurement (default 2)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default), cuda, cuda:N, or auto (cuda when a GPU is visible)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs per front-end measurement (median)")
    parser.add_argument("--epochs", type=positive_int, default=2, help="timed epochs after one warm-up (median)")
    parser.add_argument("--only", default="", help="comma-separated front-end rows (default: all registered)")
    parser.add_argument("--epoch-rows", default=EPOCH_ROWS,
                        help="runs to time whole epochs of, each FRONTEND[opts] (Linear readout) or "
                        f"FRONTEND[opts]+MODEL[opts] ('' for none; default {EPOCH_ROWS})")
    parser.add_argument("--no-reference", action="store_true", help="skip the direct-convolution reference rows")
    parser.add_argument("--out", type=Path, help="CSV path (default outputs/bench/bench-<time>.csv)")
    parser.add_argument("--child-frontend", help=argparse.SUPPRESS)
    parser.add_argument("--child-epoch", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=version_line(parser.prog))
    return parser


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``strf-bench``."""
    parser = bench_parser()
    args = parser.parse_args(argv)

    if args.child_frontend or args.child_epoch:
        kind = "frontend" if args.child_frontend else "epoch"
        print(json.dumps(child(kind, args.child_frontend or args.child_epoch, args)))
        return

    setup("strf-bench")
    try:
        args.device = bench_device(args.device)
    except ConfigError as err:
        parser.error(str(err))

    from strf_runner.frontends.registry import FRONTENDS
    from strf_runner.models.registry import READOUTS

    only = [n.strip() for n in args.only.split(",") if n.strip()] or None
    known = set(FRONTENDS.names()) | {DIRECT}
    readouts = set(READOUTS.names()) | {TORCH_RNN}
    unknown = [n for n in (only or []) if n.partition("[")[0] not in known]
    epoch_names = split_rows(args.epoch_rows)
    for row in epoch_names:
        frontend, _, model = row.partition("+")
        unknown += [part for part, names in ((frontend, known), (model or "linear", readouts))
                    if part.partition("[")[0] not in names]
    if unknown:
        parser.error(f"unknown front-end(s) or readout(s) {unknown}; registered: {sorted(known)}, {sorted(readouts)}")
    if args.no_reference:
        epoch_names = [n for n in epoch_names if not n.startswith(DIRECT) and TORCH_RNN not in n]

    console = Console() if sys.stdout.isatty() else Console(width=200)
    start = time.perf_counter()
    results = []
    jobs = [("frontend", n) for n in frontend_rows(only, not args.no_reference)] + [("epoch", n) for n in epoch_names]
    for kind, name in jobs:
        with console.status(f"timing {kind} {name} ..."):
            results.append(run_child(kind, name, args))
    rows = report(results, args, console)
    if all("error" in r for r in results):
        print(f"strf-bench: error: nothing was measured: all {len(results)} measurements failed "
              f"(the first: {results[0]['error']})", file=sys.stderr)
        sys.exit(1)

    import torch

    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": args.device,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    out = args.out or Path("outputs/bench") / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}.csv"
    write_csv(out, rows, meta)
    console.print(f"[dim]{time.perf_counter() - start:.0f} s in all; each measurement in its own process "
                  f"(pid {os.getpid()} ran the children)[/dim]")
    console.print(f"CSV: {out}", soft_wrap=True, highlight=False)


if __name__ == "__main__":
    main()
