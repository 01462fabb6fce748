"""entry.setup: every process-wide change a console entry point makes, in one call."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import hydra_plugins
import pytest

from strf_runner.entry import setup
from strf_runner.errors import StrfRunnerWarning

REPO_PLUGINS = str(Path(__file__).resolve().parents[1] / "hydra_plugins")


@pytest.fixture
def restored(monkeypatch):
    """What setup changes, given back afterwards."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    monkeypatch.setattr(hydra_plugins, "__path__", hydra_plugins.__path__)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def test_every_command_gets_one_line_warnings_and_the_projects_plugins(restored, capsys):
    setup("strf-x")
    assert REPO_PLUGINS in list(hydra_plugins.__path__)
    for _ in range(2):  # the project's warnings every time, not once per place
        warnings.warn("first line\n  second line", StrfRunnerWarning)
    warnings.warn("a library's", DeprecationWarning)
    err = capsys.readouterr().err.splitlines()
    assert err == ["strf-x: warning: first line second line"] * 2 + ["strf-x: warning (DeprecationWarning): a library's"]
    assert "HYDRA_FULL_ERROR" not in os.environ and signal.getsignal(signal.SIGTERM) is not None


def test_a_command_that_trains_stops_on_sigterm_as_on_ctrl_c(restored):
    setup("strf-run", trains=True)
    assert os.environ["HYDRA_FULL_ERROR"] == "1"
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
