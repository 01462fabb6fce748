"""Sweeps through ``hydra/launcher=slurm`` on a real single-node SLURM cluster (``conftest.py``): a job
array that finishes and aggregates, a cancelled task that the sweep survives and a re-run completes, a
task killed outside its run (FAILED), a preempted or requeued task that resumes and ends equal to an
uninterrupted run, and requests the partition cannot meet refused in one line before anything runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from strf_runner.training.fitter import FitState
from tests.helpers.commands import strf_cmd, strf_env, strf_run

pytestmark = pytest.mark.slow
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

RUN = ["dataset=synth_tiny", "device=cpu", "trainer.threads=1"]
SMALL = [*RUN, "hydra.launcher.mem_gb=1"]
EPOCHS = 600
LONG = [f"trainer.max_epochs={EPOCHS}", f"trainer.patience={EPOCHS}"]  # about 8 s of training on the tiny dataset


def sweep(slurm, args: list[str], cache: Path, cwd: Path) -> subprocess.Popen:
    """``strf-run -m hydra/launcher=slurm ARGS`` against the test cluster, in the background."""
    env = {**strf_env(cache), "SLURM_CONF": slurm.env()["SLURM_CONF"], "PATH": slurm.env()["PATH"]}
    return subprocess.Popen([*strf_cmd(), "-m", "hydra/launcher=slurm", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(ready, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def saved_epoch(run: Path) -> int:
    try:
        return FitState.load(run / "last.pt").epoch
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return 0


def states(slurm, job: str) -> dict[str, str]:
    """Array task id -> SLURM state, as squeue keeps them (MinJobAge is a day)."""
    lines = slurm.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%i|%T").split()
    return dict(line.split("|") for line in lines)


def job_id(sweep_dir: Path) -> str:
    (folder,) = {p.name.split("_")[0] for p in (sweep_dir / ".submitit").iterdir() if p.name[0].isdigit()}
    return folder


def test_a_2x2_sweep_runs_as_one_job_array_and_aggregates(slurm, tmp_path):
    out = tmp_path / "sweep"
    nested = ["+hydra.launcher.additional_parameters={comment: strf-nested}", "hydra.launcher.setup=['export STRF_NESTED=1']"]
    proc = sweep(slurm, [*SMALL, *nested, "trainer=smoke", "seed=0,1", "model=linear,ln", f"hydra.sweep.dir={out}"],
                 tmp_path / "cache", tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert len(list(out.glob("*/summary.json"))) == 4
    arms = pd.read_csv(out / "aggregate" / "arms.csv")
    assert sorted(arms["model"]) == ["linear", "ln"] and list(arms["runs"]) == [2, 2]
    job = job_id(out)
    done = {f"{job}_{i}": "COMPLETED" for i in range(4)}  # a task's result comes a moment before its state
    wait_until(lambda: states(slurm, job) == done, f"SLURM to mark every task COMPLETED ({states(slurm, job)})", 30)
    script = next((out / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in script and "#SBATCH --cpus-per-task=1" in script  # trainer.threads
    assert "gpus" not in script and "gres" not in script  # device=cpu asks for no GPU
    assert "#SBATCH --comment=strf-nested" in script.splitlines() and "export STRF_NESTED=1" in script.splitlines()
    assert "strf-nested" in slurm.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%k")  # SLURM holds the comment


def test_a_cross_validated_sweep_runs_its_folds_as_tasks_and_compares_arms_on_cv_scores(slurm, tmp_path):
    """cv.folds=2 with two arms: four tasks of one array, one per fold; each arm's CV dir is assembled when
    its last fold ends, whichever task that is, and the aggregate compares the arms on all stimuli."""
    out = tmp_path / "sweep"
    proc = sweep(slurm, [*SMALL, "trainer=smoke", "frontend=native,native_pcen", "cv.folds=2", f"hydra.sweep.dir={out}"],
                 tmp_path / "cache", tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert sorted(p.parent.relative_to(out).as_posix() for p in out.glob("*/fold*/summary.json")) == [
        "0_native-linear-synth_tiny-s0/fold0", "0_native-linear-synth_tiny-s0/fold1",
        "1_native_pcen-linear-synth_tiny-s0/fold0", "1_native_pcen-linear-synth_tiny-s0/fold1"]
    for arm in ("0_native-linear-synth_tiny-s0", "1_native_pcen-linear-synth_tiny-s0"):
        summary = json.loads((out / arm / "summary.json").read_text())
        assert summary["cv"]["folds"] == 2 and len(summary["folds"]) == 2
    script = next((out / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in script
    arms = pd.read_csv(out / "aggregate" / "arms.csv")
    assert list(arms["frontend"]) == ["native", "native_pcen"] and list(arms["runs"]) == [1, 1]
    assert list(arms["ci_resamples"]) == ["stimuli and neurons"] * 2
    assert list(arms["n_stimuli"]) == [6, 6]  # synth_tiny's stimuli, every one tested once
    comparisons = pd.read_csv(out / "aggregate" / "comparisons.csv")
    assert list(comparisons["arm"]) == ["frontend=native_pcen"] and list(comparisons["n_stimuli"]) == [6]


def test_a_cancelled_task_is_recorded_the_rest_aggregates_and_a_rerun_trains_only_it(slurm, tmp_path):
    out = tmp_path / "sweep"
    args = [*SMALL, *LONG, "seed=0,1", f"hydra.sweep.dir={out}"]
    proc = sweep(slurm, args, tmp_path / "cache", tmp_path)
    second = out / "1_native-linear-synth_tiny-s1"
    wait_until(lambda: saved_epoch(second) >= 3, "the second run's first epochs")
    job = job_id(out)
    slurm.run("scancel", f"{job}_1")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]  # a run did not finish: status 1
    assert (f"strf-run: 1 of 2 SLURM jobs ended before their run finished: {job}_1 CANCELLED "
            "(1_native-linear-synth_tiny-s1)") in stderr
    assert states(slurm, job)[f"{job}_1"] == "CANCELLED"  # what SLURM says is what the run dir says
    record = json.loads((second / "slurm.json").read_text())
    assert record["slurm_job_id"] == f"{job}_1" and record["slurm_state"] == "CANCELLED"
    assert not (second / "summary.json").exists() and (second / "last.pt").is_file()
    arms = pd.read_csv(out / "aggregate" / "arms.csv")
    assert arms.loc[0, "runs"] == 1 and arms.loc[0, "unfinished"] == 1
    assert f"SLURM job {job}_1 ended CANCELLED" in (out / "aggregate" / "report.md").read_text()

    again = sweep(slurm, args, tmp_path / "cache", tmp_path)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-3000:]
    logs = "".join(p.read_text() for p in (out / ".submitit").glob("*/*_log.out"))
    assert "seed 0: already finished" in logs and "seed 1: resuming the interrupted run" in logs
    summary = json.loads((second / "summary.json").read_text())
    assert summary["epochs_run"] == EPOCHS and summary["resumed_from_epoch"] >= 3


def test_a_task_killed_outside_its_run_is_recorded_as_slurm_saw_it(slurm, tmp_path):
    out = tmp_path / "sweep"
    proc = sweep(slurm, [*SMALL, *LONG, "seed=0,1", f"hydra.sweep.dir={out}"], tmp_path / "cache", tmp_path)
    second = out / "1_native-linear-synth_tiny-s1"
    wait_until(lambda: saved_epoch(second) >= 3, "the second run's first epochs")
    os.kill(json.loads((second / "run.lock").read_text())["pid"], signal.SIGKILL)  # as the OOM killer would
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]  # a run did not finish: status 1
    job = job_id(out)
    state = states(slurm, job)[f"{job}_1"]
    assert state == "FAILED" and f"{job}_1 FAILED (1_native-linear-synth_tiny-s1)" in stderr
    assert json.loads((second / "slurm.json").read_text())["slurm_state"] == "FAILED"
    assert (out / "0_native-linear-synth_tiny-s0" / "summary.json").is_file()
    assert f"SLURM job {job}_1 ended FAILED" in (out / "aggregate" / "report.md").read_text()


@pytest.mark.parametrize("how", ["preempted", "requeued"])
def test_a_preempted_or_requeued_task_resumes_and_ends_as_an_uninterrupted_run(slurm, tmp_path, how):
    out = tmp_path / "sweep"
    args = [*RUN, *LONG, "seed=4"]
    proc = sweep(slurm, [*args, "hydra.launcher.mem_gb=1", f"hydra.sweep.dir={out}"], tmp_path / "cache", tmp_path)
    run = out / "0_native-linear-synth_tiny-s4"
    wait_until(lambda: saved_epoch(run) >= 3, "the run's first epochs")
    job = job_id(out)
    if how == "preempted":  # what SLURM sends before preempting (or ahead of the time limit): submitit requeues
        slurm.run("scancel", "--signal=USR2", job)
    else:
        slurm.run("scontrol", "requeue", job)
    wait_until(lambda: states(slurm, job).get(job) == "PENDING", "the requeued job")
    interrupted_at = saved_epoch(run)
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")  # SLURM holds a requeued job ~2 minutes
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert 3 <= summary["resumed_from_epoch"] == interrupted_at < EPOCHS

    alone = strf_run([*args, f"hydra.run.dir={tmp_path / 'alone'}"], tmp_path / "cache", tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(run / "neurons.csv"), pd.read_csv(tmp_path / "alone" / "neurons.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(run / "history.csv").drop(columns=["seconds", "val_seconds"]),
                                  pd.read_csv(tmp_path / "alone" / "history.csv").drop(columns=["seconds", "val_seconds"]))


@pytest.mark.parametrize("request_, said", [
    (["trainer.threads=64", "device=cpu"],
     "sbatch: error: Batch job submission failed: More processors requested than permitted "
     "(hydra.launcher: cpus_per_task=64, mem_gb=1, timeout_min=60)"),
    (["trainer.threads=1"],
     "sbatch: error: Invalid generic resource (gres) specification (hydra.launcher: cpus_per_task=1, "
     "gpus_per_node=1, mem_gb=1, timeout_min=60); no GPUs there? device=cpu asks for none"),
])
def test_a_request_the_partition_cannot_meet_is_one_line_before_anything_runs(slurm, tmp_path, request_, said):
    out = tmp_path / "sweep"
    proc = sweep(slurm, ["dataset=synth_tiny", "trainer=smoke", "hydra.launcher.mem_gb=1", "seed=0,1", *request_,
                         f"hydra.sweep.dir={out}"], tmp_path / "cache", tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert stderr.strip().splitlines()[-1] == f"strf-run: error: SLURM refused the sweep's jobs: {said}"
    assert "Traceback" not in stderr and not list(out.glob("*/config.yaml"))
