"""Same seed, same numbers, whichever process generated the data and however busy the machine is
(issue 28, case 11: a run that generated synth under heavy load differed in the last digits from every
later run with the same seed).

- ``ensure_synth`` generates in a child process: the run that generates trains in a process that is
  the same as one that found the file cached.
- ``make_deterministic`` switches OpenMP's dynamic thread adjustment off (with it on, GNU OpenMP sizes
  each parallel region by the machine's load average); a run records the CPU settings that decide its
  last bits (summary.json ``determinism``) and warns about one that lets them vary.
- End to end: a generating ``strf-run`` and a later one, both beside busy processes, agree bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import strf_runner.data.synth as synth_module
from strf_runner.data.schema import read_dataset
from strf_runner.data.synth import SynthDatasetConfig, ensure_synth, synth_path
from strf_runner.errors import DatasetError
from strf_runner.experiment import run_experiment
from strf_runner.results.rundir import CHECKPOINT, NEURONS, SUMMARY
from strf_runner.training.seeding import (CPU_ENV, determinism_settings, determinism_warnings, make_deterministic,
                                          openmp_runtime)
from tests.helpers.commands import TINY_ARGS, strf_run
from tests.helpers.data import TINY_DATASET
from tests.helpers.runs import tiny_config

TINY = SynthDatasetConfig(**{k: v for k, v in TINY_DATASET.items() if k != "name"})

# A busy process like a training one (torch's matrix products on all its threads) that prints "ready"
# once it is busy and stops by itself at the deadline given as argv[1] (seconds from its start).
BUSY = """
import sys, time, torch
stop = time.monotonic() + float(sys.argv[1])
a = torch.randn(512, 512)
a @ a
print("ready", flush=True)
while time.monotonic() < stop:
    a @ a
"""
LOAD_LIMIT_S = 900.0


def test_generation_runs_outside_the_calling_process(tmp_path, monkeypatch):
    def in_this_process(params):
        raise AssertionError("generate_synth ran in the calling process")

    monkeypatch.setattr(synth_module, "generate_synth", in_this_process)
    path = ensure_synth(TINY, tmp_path / "cache")
    assert path == synth_path(TINY, tmp_path / "cache")
    content = read_dataset(path)
    assert len(content.stimuli) == TINY.n_stimuli and len(content.neuron_ids) == TINY.n_neurons
    assert not list(path.parent.glob("*.tmp"))


def test_an_error_in_the_generating_process_is_one_line_naming_the_file(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "synth.h5"
    with pytest.raises(DatasetError) as err:
        synth_module._write_in_child(TINY, target)
    message = str(err.value)
    assert "\n" not in message and "cannot write the synthetic dataset file" in message and str(target) in message


@pytest.fixture
def openmp():
    """The OpenMP runtime torch uses, its dynamic adjustment off again after the test."""
    omp = openmp_runtime()
    if omp is None:
        pytest.skip("no OpenMP runtime visible in this process (torch built without one, or not Linux)")
    yield omp
    omp.omp_set_dynamic(0)


def test_make_deterministic_switches_openmp_dynamic_adjustment_off(openmp):
    openmp.omp_set_dynamic(1)
    assert determinism_settings()["openmp_dynamic"] is True
    make_deterministic()
    assert determinism_settings()["openmp_dynamic"] is False


def test_determinism_warnings_name_the_setting():
    settings = {"threads": 2, "openmp_dynamic": True, "denormals_flushed": False, "env": {"OMP_DYNAMIC": "TRUE"}}
    (message,) = determinism_warnings(settings)
    assert "OMP_DYNAMIC=true" in message and "trainer.deterministic=true" in message and "\n" not in message
    (message,) = determinism_warnings({**settings, "openmp_dynamic": None})  # no runtime to switch off
    assert "OMP_DYNAMIC=true" in message and "unset OMP_DYNAMIC" in message
    (message,) = determinism_warnings({**settings, "env": {}})
    assert "omp_set_dynamic(1) by a library" in message
    assert determinism_warnings({**settings, "threads": 1}) == []  # one thread: nothing to take away
    assert determinism_warnings({**settings, "openmp_dynamic": False}) == []
    assert determinism_warnings({**settings, "openmp_dynamic": None, "env": {}}) == []


def test_a_run_records_and_warns_about_dynamic_threads(tmp_path, openmp):
    cfg = tiny_config(tmp_path, max_epochs=1)
    cfg.trainer.deterministic = False  # nothing switches the adjustment off
    cfg.trainer.threads = 2  # with one thread (as under pytest -n) the adjustment has nothing to take away
    openmp.omp_set_dynamic(1)
    with pytest.warns(UserWarning, match="dynamic thread adjustment is on .omp_set_dynamic.1. by a library"):
        result = run_experiment(cfg, tmp_path / "run")
    recorded = json.loads((result.run_dir / SUMMARY).read_text())
    assert recorded["determinism"]["openmp_dynamic"] is True
    assert recorded["determinism"]["threads"] == torch.get_num_threads()
    assert any("dynamic thread adjustment" in w for w in recorded["warnings"])


def test_a_deterministic_run_records_its_cpu_settings(tmp_path):
    result = run_experiment(tiny_config(tmp_path, max_epochs=1), tmp_path / "run")
    recorded = json.loads((result.run_dir / SUMMARY).read_text())["determinism"]
    assert recorded["threads"] == torch.get_num_threads()
    assert recorded["openmp_dynamic"] in (False, None) and recorded["denormals_flushed"] is False
    assert recorded["env"] == {k: os.environ[k] for k in CPU_ENV if k in os.environ}
    assert not any("dynamic thread adjustment" in w for w in result.summary.warnings)


def start_load(n: int) -> list[subprocess.Popen]:
    """``n`` busy processes, each returned once it is busy; each stops by itself after LOAD_LIMIT_S."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY, str(LOAD_LIMIT_S)], stdout=subprocess.PIPE,
                                          text=True))
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", "a load process failed to start"
    except BaseException:
        stop_load(procs)
        raise
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()
        proc.stdout.close()


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [TINY_ARGS, ["device=cpu", "trainer.max_epochs=3"]],
    ids=["synth_tiny-smoke", "synth-3-epochs"],
)
def test_the_generating_run_and_a_later_one_agree_under_load(tmp_path, args):
    cache = tmp_path / "cache"
    load = start_load(2 * (os.cpu_count() or 1))
    try:
        first = strf_run(args + [f"hydra.run.dir={tmp_path / 'first'}"], cache, tmp_path)
        generated = sorted(cache.glob("synth-*.h5"))
        later = strf_run(args + [f"hydra.run.dir={tmp_path / 'later'}"], cache, tmp_path)
        still_busy = all(proc.poll() is None for proc in load)
    finally:
        stop_load(load)
    assert first.returncode == 0, first.stderr
    assert later.returncode == 0, later.stderr
    assert len(generated) == 1 and sorted(cache.glob("synth-*.h5")) == generated  # the first run made it
    assert still_busy, f"a load process stopped before the runs ended (limit {LOAD_LIMIT_S} s)"
    assert (tmp_path / "first" / NEURONS).read_bytes() == (tmp_path / "later" / NEURONS).read_bytes()
    a, b = weights(tmp_path / "first"), weights(tmp_path / "later")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
