"""Bounded memory as a rule: an input that would make strf-runner allocate more than a limit is refused
before the allocation, in one line that names the key, file or object at fault.

The limit is half of the memory this process may use: the smaller of the machine's physical memory
and a cgroup (container, SLURM job) limit. ``STRF_RUNNER_MEMORY_LIMIT`` sets it instead, as bytes or
with a unit (``512M``, ``8G``, ``1.5T``; powers of 1024). A check compares one allocation with the whole
limit, so an input that passes can still need more than the limit alongside others; the rule is
there to stop the absurd (a 1 mHz sampling rate asking for 20 GB), not to budget a run.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from strf_runner.errors import ConfigError, StrfRunnerError

ENV = "STRF_RUNNER_MEMORY_LIMIT"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# cgroup v2, then v1: where a container or a SLURM job's memory limit is visible
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


class MemoryLimitError(StrfRunnerError, ValueError):
    """An input would need more memory than ``memory_limit()`` allows (names the input and the sizes)."""


def parse_bytes(text: str, key: str = ENV) -> int:
    """'8G' -> 8 * 1024**3; '123' -> 123. ConfigError naming ``key`` for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{key}={text!r} is not a positive size (bytes, or a number with K, M, G or T)")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def machine_memory() -> int:
    """Bytes this process may use: physical memory, or a smaller cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def memory_limit() -> int:
    """The most bytes one input may make strf-runner allocate: ``STRF_RUNNER_MEMORY_LIMIT`` if set,
    else half of ``machine_memory()``."""
    given = os.environ.get(ENV)
    return parse_bytes(given) if given else machine_memory() // 2


def human(n_bytes: float) -> str:
    """1.5e9 -> '1.4 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n_bytes) < 1024 or unit == "TiB":
            return f"{n_bytes:.3g} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_allocation(n_bytes: float, what: str) -> None:
    """Refuse (MemoryLimitError) an allocation of ``n_bytes`` for ``what`` (the key, file or object
    that asks for it, with the reason: "dataset.path s.nwb: sound 'stim03' at 0.001 Hz over 5 s") when
    it exceeds ``memory_limit()``. Call it before allocating."""
    limit = memory_limit()
    if not n_bytes <= limit:  # NaN and inf are refused too
        size = human(n_bytes) if math.isfinite(n_bytes) else "unbounded"
        source = f"{ENV}" if os.environ.get(ENV) else f"half this machine's memory; {ENV} sets it"
        raise MemoryLimitError(f"{what} would need {size} of memory, more than the limit of {human(limit)} ({source})")
