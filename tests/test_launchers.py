"""The launcher and sweeper configs a user picks on the command line (conf/hydra/launcher, conf/experiment):

- ``hydra/launcher=local_parallel``: n jobs at a time on this machine, each in a process of its own; a
  job killed from outside is recorded and the others finish;
- ``hydra/launcher=slurm``: its sbatch script rendered without submitting (``tests/slurm`` runs sweeps
  on a real SLURM cluster);
- ``+experiment=tune``: the Optuna sweeper, which must optimise the validation score, and go on past a
  trial that failed.

Each runs ``strf-run`` as a user does: a subprocess on the tiny config (a few seconds per run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tests.helpers.commands import strf_cmd, strf_env, strf_run

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

ROOT = Path(__file__).resolve().parents[1]
TINY = ["dataset=synth_tiny", "trainer=smoke", "trainer.device=cpu"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


@pytest.mark.e2e
def test_local_parallel_launcher_runs_the_jobs_of_a_sweep(tmp_path, cache):
    """Two jobs, each in a process of its own, which keeps freed memory as strf-run's does: a LEAF step
    took twice as long in local_parallel jobs that gave every freed tensor back to the OS."""
    sweep, probes = tmp_path / "sweep", tmp_path / "probes"
    probes.mkdir()
    probe = ["+hydra.callbacks.probe._target_=tests.test_launchers.MallocProbe", f"+hydra.callbacks.probe.folder={probes}"]
    args = ["-m", "hydra/launcher=local_parallel", "seed=0,1", "trainer.threads=1", *TINY, *probe,
            f"hydra.sweep.dir={sweep}"]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = strf_run(args, cache, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert "Launching 2 jobs locally, 2 at a time, each in a process of its own" in proc.stdout + proc.stderr
    runs = sorted(p.parent.name for p in sweep.glob("*/summary.json"))
    assert runs == ["0_native-linear-synth_tiny-s0", "1_native-linear-synth_tiny-s1"]
    assert [s["seed"] for s in summaries(sweep)] == [0, 1]
    seen = {int(p.stem): json.loads(p.read_text()) for p in probes.glob("*.json")}
    if any(s["mallinfo2"] is False for s in seen.values()):
        pytest.skip("this C library has no mallinfo2 (glibc >= 2.33) to look at its allocator with")
    assert seen == {0: {"mallinfo2": True, "mmapped": False}, 1: {"mallinfo2": True, "mmapped": False}}


class MallocProbe(Callback):
    """A Hydra callback (``+hydra.callbacks.probe``) that looks, in a job's process after its run, at
    how glibc serves a 64 MiB malloc: from a fresh mmap (the default), or from the heap, which keeps
    freed memory (``keep_freed_memory``). Writes ``<folder>/<seed>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_job_end(self, config: DictConfig, job_return: object, **kwargs) -> None:
        import ctypes

        libc = ctypes.CDLL(None)
        found: dict = {"mallinfo2": hasattr(libc, "mallinfo2")}
        if found["mallinfo2"]:
            class MallInfo2(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                             "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

            libc.mallinfo2.restype = MallInfo2
            libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
            before = libc.mallinfo2().hblks
            block = libc.malloc(64 << 20)
            found["mmapped"] = libc.mallinfo2().hblks > before
            libc.free(block)
        (self.folder / f"{config.seed}.json").write_text(json.dumps(found))


class Gate(Callback):
    """A Hydra callback that holds jobs at their start (``+hydra.callbacks.gate``), for the killed-job
    test: the job of seed ``blocked`` writes its pid to ``<folder>/blocked.pid`` and waits to be killed;
    every other job waits for ``<folder>/go``, which the test writes once it has killed that one."""

    def __init__(self, folder: str, blocked: int) -> None:
        self.folder, self.blocked = Path(folder), blocked

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if config.seed == self.blocked:
            (self.folder / "blocked.tmp").write_text(str(os.getpid()))
            (self.folder / "blocked.tmp").rename(self.folder / "blocked.pid")
            time.sleep(300)
            raise AssertionError("the test did not kill this job")
        wait_for(self.folder / "go", "the test to kill the blocked job")


def wait_for(path: Path, what: str, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``path`` exists (at most 120 s; AssertionError naming ``what`` if ``proc`` ended first)."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise AssertionError(f"no {path.name}: waited in vain for {what}")
        time.sleep(0.05)


@pytest.mark.e2e
def test_a_killed_local_parallel_job_is_recorded_and_the_other_jobs_finish(tmp_path, cache):
    gate, sweeps = tmp_path / "gate", tmp_path / "sweeps"
    gate.mkdir()
    args = ["seed=0,1", "trainer.threads=1", *TINY, f"sweep_root={sweeps}"]
    held = ["+hydra.callbacks.gate._target_=tests.test_launchers.Gate", f"+hydra.callbacks.gate.folder={gate}",
            "+hydra.callbacks.gate.blocked=1"]
    env = strf_env(cache, {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    first = sweeps / "first"
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([*strf_cmd(), "-m", "hydra/launcher=local_parallel", *args, *held,
                                 f"hydra.sweep.dir={first}"], cwd=tmp_path, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            wait_for(gate / "blocked.pid", "job #1 to start", proc)
            os.kill(int((gate / "blocked.pid").read_text()), signal.SIGKILL)  # as the OOM killer would
            (gate / "go").touch()  # job #0 starts only now, after the kill
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    stderr = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]  # a run did not finish: status 1
    assert ("strf-run: 1 of 2 jobs ended before their run finished: #1 was killed by SIGKILL "
            "(1_native-linear-synth_tiny-s1)") in stderr
    killed = json.loads((first / "1_native-linear-synth_tiny-s1" / "failed.json").read_text())
    assert killed["error"] == "its process was killed by SIGKILL before the run finished"
    assert killed["exit_code"] == -signal.SIGKILL
    assert json.loads((first / "0_native-linear-synth_tiny-s0" / "summary.json").read_text())["seed"] == 0
    runs = pd.read_csv(first / "aggregate" / "runs.csv")
    assert sorted(zip(runs["seed"], runs["status"])) == [(0, "finished"), (1, "failed")]

    again = strf_run(["-m", *args, f"hydra.sweep.dir={sweeps / 'second'}"], cache, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    done = {s["seed"]: s for s in summaries(sweeps / "second")}
    assert Path(done[0]["reused_from"]) == (first / "0_native-linear-synth_tiny-s0").resolve()
    assert "reused_from" not in done[1] and again.stdout.count("reused") == 1  # only the killed run trained


def test_a_job_ended_beside_its_training_state_is_unfinished_and_resumable(tmp_path):
    """``record_ended`` (local_parallel and SLURM alike): a run with a last.pt is recorded as unfinished
    (ended.json, which the report reads), never as failed, so that a re-run resumes it."""
    from strf_runner.launchers import record_ended
    from strf_runner.results.collect import read_run
    from strf_runner.results.rundir import ENDED, RunDir

    run = tmp_path / "sweep" / "3_native-linear-synth_tiny-s3"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 3}))
    (run / "last.pt").write_bytes(b"state")
    config = OmegaConf.create({"seed": 3, "hydra": {"sweep": {"dir": str(tmp_path / "sweep"), "subdir": run.name}}})
    assert record_ended(config, {"error": "its process was killed by SIGKILL before the run finished"},
                        ChildProcessError(), ENDED) == run
    record = read_run(run)
    assert record.status == "unfinished" and RunDir(run).interrupted
    assert record.error == ("its process was killed by SIGKILL before the run finished; its last finished epoch is "
                            "in last.pt: re-run the sweep to resume it")
    assert not (run / "failed.json").exists()


# --------------------------------------------------------------------------------------------- SLURM

class _Submitted(Exception):
    """Raised instead of calling sbatch: the submission script was rendered and captured."""


def render_sbatch(overrides: list[str], n_jobs: int, tmp_path: Path, monkeypatch) -> str:
    """The sbatch script the SLURM launcher would submit for a sweep of ``n_jobs`` jobs, without a cluster:
    the config is composed with Hydra's compose API, the launcher instantiated from it and its own launch()
    run, up to submitit writing the job array's script; sbatch itself is never called."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from submitit.slurm.slurm import SlurmExecutor

    from strf_runner.compose import register_configs

    srun = tmp_path / "bin" / "srun"  # submitit's SlurmExecutor refuses to start where there is no srun
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    scripts = []

    def capture(self, submission_file_path):
        scripts.append(Path(submission_file_path).read_text())
        raise _Submitted

    monkeypatch.setattr(SlurmExecutor, "_make_submission_command", capture)
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
            return_hydra_config=True,
        )
    launcher = instantiate(cfg.hydra.launcher)  # as Hydra does: hydra.launcher._target_ is SlurmLauncher
    assert type(launcher).__name__ == "SlurmLauncher"
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(_Submitted):
        launcher.launch([[f"seed={i}"] for i in range(n_jobs)], initial_job_idx=0)
    (script,) = scripts
    return script


def test_slurm_config_renders_the_expected_sbatch_script(tmp_path, monkeypatch):
    script = render_sbatch(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], 40, tmp_path, monkeypatch)
    flags = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for flag in (
        "--partition=gpu",
        "--time=60",
        "--cpus-per-task=4",
        "--gpus-per-node=1",
        "--ntasks-per-node=1",
        "--nodes=1",
        "--mem=16GB",
        "--array=0-39%32",  # 40 jobs, at most array_parallelism=32 at a time
    ):
        assert f"#SBATCH {flag}" in flags, (flag, script)
    assert f"--output={tmp_path / 'sweep' / '.submitit' / '%A_%a' / '%A_%a_0_log.out'}" in script
    assert "--account" not in script and "--gres" not in script


def test_nested_launcher_parameters_reach_the_sbatch_script_as_submitit_passes_them(tmp_path, monkeypatch):
    """A mapping (additional_parameters) and a list (setup) given on the command line arrive as the plugin's
    own launcher passes them: OmegaConf containers turned into plain ones, one #SBATCH line per key."""
    script = render_sbatch(["hydra/launcher=slurm", "+hydra.launcher.additional_parameters={comment: nested, mail-type: END}",
                            "hydra.launcher.setup=['export STRF_NESTED=1']"], 2, tmp_path, monkeypatch)
    lines = script.splitlines()
    assert "#SBATCH --comment=nested" in lines and "#SBATCH --mail-type=END" in lines
    assert "export STRF_NESTED=1" in lines


def test_slurm_requests_follow_the_trainer_unless_given(tmp_path, monkeypatch):
    script = render_sbatch(["hydra/launcher=slurm", "device=cpu", "trainer.threads=2"], 2, tmp_path, monkeypatch)
    flags = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --cpus-per-task=2" in flags and not any("gpus" in f or "gres" in f for f in flags), flags
    (tmp_path / "given").mkdir()
    given = render_sbatch(["hydra/launcher=slurm", "device=cpu", "trainer.threads=2", "hydra.launcher.cpus_per_task=3",
                           "hydra.launcher.gpus_per_node=1"], 2, tmp_path / "given", monkeypatch)
    assert "#SBATCH --cpus-per-task=3" in given and "#SBATCH --gpus-per-node=1" in given


def test_slurm_config_passes_user_overrides_to_sbatch(tmp_path, monkeypatch):
    overrides = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=a100",
        "hydra.launcher.timeout_min=240",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.gres=gpu:a100:1",
        "hydra.launcher.account=lab42",
        "+hydra.launcher.additional_parameters={mail-type: END}",
    ]
    flags = render_sbatch(overrides, 2, tmp_path, monkeypatch).splitlines()
    for flag in ("--partition=a100", "--time=240", "--gres=gpu:a100:1", "--account=lab42", "--mail-type=END",
                 "--array=0-1%2"):
        assert f"#SBATCH {flag}" in flags, flag
    assert not any(line.startswith("#SBATCH --gpus-per-node") for line in flags)


# -------------------------------------------------------------------------------------------- Optuna


@pytest.mark.e2e
def test_tune_experiment_maximises_the_validation_score(tmp_path, cache):
    sweep = tmp_path / "tune"
    args = ["-m", "+experiment=tune", "hydra.sweeper.n_trials=2", *TINY, f"hydra.sweep.dir={sweep}"]
    proc = strf_run(args, cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    runs = summaries(sweep)
    assert len(runs) == 2
    # the objective is the best validation cc_norm of a run, never its test score, and higher is better
    assert results["best_value"] == pytest.approx(max(s["best_val_cc_norm"] for s in runs), abs=1e-12)
    assert results["best_value"] != pytest.approx(max(s["test_mean_cc_norm"] for s in runs))
    best = max(runs, key=lambda s: s["best_val_cc_norm"])
    assert results["best_params"]["trainer.lr"] == pytest.approx(best["lr"])
    assert set(results["best_params"]) == {"trainer.lr", "model.temporal_window_size"}
    assert 3 <= results["best_params"]["model.temporal_window_size"] <= 20
    for s in runs:
        assert 1e-4 <= s["lr"] <= 3e-2


@pytest.mark.e2e
def test_a_failed_trial_is_told_to_the_study_and_the_study_goes_on(tmp_path, cache):
    """Trial 0 (window 0, refused by the run) fails, trial 1 (window 3) trains: the seeded TPE sampler
    of +experiment=tune picks 0 then 3."""
    sweep = tmp_path / "tune"
    args = ["-m", "+experiment=tune", "hydra.sweeper.n_trials=2", "model.temporal_window_size=choice(0,3)", *TINY,
            f"hydra.sweep.dir={sweep}"]
    proc = strf_run(args, cache, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # one run failed: status 1
    failed = json.loads((sweep / "0_native-linear-synth_tiny-s0" / "failed.json").read_text())
    assert failed["error"] == "model.temporal_window_size=0 must be >= 1"
    (run,) = summaries(sweep)
    assert "Trial 0 told to the study as failed" in proc.stdout + proc.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"]["model.temporal_window_size"] == 3
    assert results["best_value"] == pytest.approx(run["best_val_cc_norm"], abs=1e-12)
    assert sorted(pd.read_csv(sweep / "aggregate" / "runs.csv")["status"]) == ["failed", "finished"]
    assert "strf-run: 1 of 2 runs of this sweep did not finish (1 failed;" in proc.stderr


def test_tune_experiment_config():
    """The search space and the study as conf/experiment/tune.yaml declares them."""
    from hydra import compose, initialize_config_module

    from strf_runner.compose import register_configs

    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+experiment=tune"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.strf_runner_sweep.OptunaSweeper"  # goes on past a failed trial
    assert sweeper.direction == "maximize" and sweeper.n_trials == 20 and sweeper.n_jobs == 1
    assert sweeper.max_failure_rate == 1.0
    assert sweeper.study_name == "strf-tune" and sweeper.storage is None
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert dict(sweeper.params) == {
        "trainer.lr": "tag(log, interval(1e-4, 3e-2))",
        "model.temporal_window_size": "int(interval(3, 20))",
    }
