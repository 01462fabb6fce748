"""One version, written once in pyproject.toml, printed by every command's ``--version``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

import pytest

import strf_runner
from strf_runner.bench.cli import main as bench_main
from strf_runner.cli import analyze_main, main, predict_main, report_main

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pyproject_version() -> str:
    """The ``version = "..."`` of pyproject's [project] table."""
    project = PYPROJECT.read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version = "([^"]+)"', project, flags=re.MULTILINE)
    assert found, "pyproject.toml's [project] table has no static version"
    return found.group(1)


def test_the_package_reports_pyprojects_version():
    assert strf_runner.__version__ == pyproject_version()


def test_strf_run_prints_its_version_before_hydra_reads_the_command_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["strf-run", "dataset=synth_tiny", "--version"])
    main()
    assert capsys.readouterr().out == f"strf-run {pyproject_version()}\n"


@pytest.mark.parametrize("prog, entry", [("strf-report", report_main), ("strf-analyze", analyze_main),
                                         ("strf-predict", predict_main), ("strf-bench", bench_main)])
def test_every_other_command_prints_its_version(prog: str, entry: Callable[[list[str]], None], capsys):
    with pytest.raises(SystemExit) as done:
        entry(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"{prog} {pyproject_version()}\n"
