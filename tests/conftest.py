"""Shared test fixtures: small datasets in the project's format, built in memory by ``tests.helpers.make_content``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strf_runner.data.schema import DatasetContent
from tests.helpers import make_content


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
