"""Shared test fixtures: small datasets in the project's format, built in memory by ``tests.helpers.data.make_content``;
and the rule that only end-to-end tests start strf-run as a subprocess (``tests.helpers.commands``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strf_runner.data.schema import DatasetContent
from tests.helpers import commands
from tests.helpers.data import make_content

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of several test processes: one thread each, not one per core
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def content() -> DatasetContent:
    return make_content()


@pytest.fixture
def content_factory():
    """``make_content`` as a fixture, for tests that need their own sizes."""
    return make_content


@pytest.fixture(scope="session")
def ns1_raw_dir() -> Path:
    """The real NS1 release: ../shared/data/ns1_raw beside the repository, or $STRF_RUNNER_NS1_RAW.
    Tests that need it are skipped where it is absent (a user's machine)."""
    env = os.environ.get("STRF_RUNNER_NS1_RAW")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ns1_raw"
    if not (path / "MetadataSHEnCneurons.mat").is_file():
        pytest.skip(f"the real NS1 release is not at {path} (set STRF_RUNNER_NS1_RAW to a copy of it)")
    return path.resolve()


@pytest.fixture(autouse=True)
def _marked_end_to_end(request):
    """Tell ``tests.helpers.commands`` whether the running test may start strf-run as a subprocess."""
    commands.END_TO_END = any(m.name in commands.END_TO_END_MARKS for m in request.node.iter_markers())
    yield
    commands.END_TO_END = True


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A run with trainer.threads set changes torch's thread count process-wide: set it back after the test."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
