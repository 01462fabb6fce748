"""The launcher and sweeper configs a user picks on the command line (conf/hydra/launcher, conf/experiment):

- ``hydra/launcher=local_parallel``: joblib, n jobs at a time on this machine;
- ``hydra/launcher=slurm``: its sbatch script rendered without submitting (``tests/slurm`` runs sweeps
  on a real SLURM cluster);
- ``+experiment=tune``: the Optuna sweeper, which must optimise the validation score.

Each runs ``strf-run`` as a user does: a subprocess on the tiny config (a few seconds per run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import strf_run

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

TINY = ["dataset=synth_tiny", "trainer=smoke", "trainer.device=cpu"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


def test_local_parallel_launcher_runs_the_jobs_of_a_sweep(tmp_path, cache):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=local_parallel", "seed=0,1", "trainer.threads=1", *TINY, f"hydra.sweep.dir={sweep}"]
    proc = strf_run(args, cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout + proc.stderr
    runs = sorted(p.parent.name for p in sweep.glob("*/summary.json"))
    assert runs == ["0_native-linear-synth_tiny-s0", "1_native-linear-synth_tiny-s1"]
    assert [s["seed"] for s in summaries(sweep)] == [0, 1]


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


def test_tune_experiment_config():
    """The search space and the study as conf/experiment/tune.yaml declares them."""
    from hydra import compose, initialize_config_module

    from strf_runner.compose import register_configs

    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+experiment=tune"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.n_trials == 20 and sweeper.n_jobs == 1
    assert sweeper.study_name == "strf-tune" and sweeper.storage is None
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert dict(sweeper.params) == {
        "trainer.lr": "tag(log, interval(1e-4, 3e-2))",
        "model.temporal_window_size": "int(interval(3, 20))",
    }
