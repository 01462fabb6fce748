"""The SLURM test cluster, one per test session (``cluster.py``): skipped with its reason where this
machine cannot run it, unless STRF_REQUIRE_SLURM=1 (CI sets it), where that is a failure instead."""

from __future__ import annotations

import os

import pytest

from tests.slurm.cluster import Cluster, missing


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    why = missing()
    if why is not None:
        if os.environ.get("STRF_REQUIRE_SLURM") == "1":
            pytest.fail(f"STRF_REQUIRE_SLURM=1 but no SLURM test cluster here: {why}")
        pytest.skip(f"no SLURM test cluster: {why}")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()
