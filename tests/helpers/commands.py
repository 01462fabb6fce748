"""strf-run as a subprocess, as a user runs it. Only end-to-end tests (``@pytest.mark.e2e``, or
``slow``) may start one: the README's test command leaves them to CI's second step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


#: Command-line overrides for a short strf-run: the tiny synthetic dataset, the smoke trainer, on CPU.
TINY_ARGS = ["dataset=synth_tiny", "trainer=smoke", "device=cpu"]


#: The marks of tests that may start strf-run as a subprocess (CI's second step runs them).
END_TO_END_MARKS = {"e2e", "slow"}
#: Whether the running test has one of them (set for every test by tests/conftest.py; True outside pytest).
END_TO_END = True


def strf_cmd() -> list[str]:
    """The ``strf-run`` command: the installed script, else the module. AssertionError in a test that is
    not marked end-to-end: a subprocess run costs seconds, and the README's test command runs often."""
    assert END_TO_END, ("this test starts strf-run as a subprocess: mark it @pytest.mark.e2e (CI's end-to-end "
                        "step), or run the code in-process")
    exe = shutil.which("strf-run")
    return [exe] if exe else [sys.executable, "-m", "strf_runner.cli"]


def strf_env(cache: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ with its own dataset cache (and ``env`` on top), without HYDRA_FULL_ERROR."""
    out = {**os.environ, "STRF_RUNNER_DATA": str(cache), **(env or {})}
    out.pop("HYDRA_FULL_ERROR", None)
    return out


def strf_run(args: list[str], cache: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``strf-run ARGS`` as a user runs it: a subprocess with its own dataset cache (and extra env)."""
    return subprocess.run(strf_cmd() + args, cwd=cwd, env=strf_env(cache, env), capture_output=True, text=True,
                          timeout=300)
