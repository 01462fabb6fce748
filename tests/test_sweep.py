"""Sweeps as a user runs them: aggregation at the end, failed jobs, and resuming a killed sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats as sps

from strf_runner.sweep import AggregateCallback
from tests.helpers.commands import TINY_ARGS, strf_run
from tests.helpers.fakes import fake_scores, run_config, write_fake_run

FRONTENDS = ["native", "native_pcen", "mel"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "aggregate")


@pytest.mark.e2e
def test_three_by_two_sweep_is_aggregated_with_honest_statistics(tmp_path, cache):
    sweep = tmp_path / "sweep"
    proc = strf_run(["-m", f"frontend={','.join(FRONTENDS)}", "seed=0,1", *TINY_ARGS, f"hydra.sweep.dir={sweep}"],
                    cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(job_dirs(sweep)) == 6 and all((d / "summary.json").is_file() for d in job_dirs(sweep))
    agg = sweep / "aggregate"
    for name in ("arms.csv", "comparisons.csv", "runs.csv", "per_neuron.csv", "report.md", "comparison.png"):
        assert (agg / name).is_file(), name
    said = " ".join(proc.stdout.split())  # rich wraps a long title
    assert "Paired differences vs baseline (CI: bootstrap over test stimuli and neurons" in said, proc.stdout

    # independent computation from the runs' own neurons.csv files
    per_arm = {}
    for fe in FRONTENDS:
        tables = [pd.read_csv(d / "neurons.csv") for d in job_dirs(sweep) if d.name.split("_", 1)[1].startswith(f"{fe}-")]
        assert len(tables) == 2
        stacked = np.stack([np.where(t["valid"], t["cc_norm"], np.nan) for t in tables])
        counts = np.isfinite(stacked).sum(0)
        per_arm[fe] = np.where(counts > 0, np.nansum(stacked, 0) / np.maximum(counts, 1), np.nan)
    arms = pd.read_csv(agg / "arms.csv").set_index("arm")
    comparisons = pd.read_csv(agg / "comparisons.csv").set_index("arm")
    for fe in FRONTENDS:
        assert arms.loc[f"frontend={fe}", "mean_cc_norm"] == pytest.approx(np.nanmean(per_arm[fe]), abs=1e-5)
        assert arms.loc[f"frontend={fe}", "runs"] == 2
    for fe in FRONTENDS[1:]:
        d = per_arm[fe] - per_arm["native"]
        d = d[np.isfinite(d)]
        row = comparisons.loc[f"frontend={fe}"]
        assert row["baseline"] == "frontend=native"
        assert row["mean_diff"] == pytest.approx(d.mean(), abs=1e-5)
        assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-4)
        assert row["frac_improved"] == pytest.approx(np.mean(d > 0), abs=1e-6)


@pytest.mark.e2e
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, cache):
    sweep = tmp_path / "sweep"
    proc = strf_run(["-m", "model.temporal_window_size=0,3", *TINY_ARGS, f"hydra.sweep.dir={sweep}"], cache, tmp_path)
    assert proc.returncode == 1, proc.stderr  # a run of the sweep did not finish
    bad, good = job_dirs(sweep)
    failed = json.loads((bad / "failed.json").read_text())
    assert failed["error"] == "model.temporal_window_size=0 must be >= 1"
    assert failed["type"] == "ConfigError" and "Traceback" in failed["traceback"]
    assert (good / "summary.json").is_file()
    assert "the sweep goes on" in proc.stderr
    runs = pd.read_csv(sweep / "aggregate" / "runs.csv")
    assert sorted(runs["status"]) == ["failed", "finished"]
    assert "1 failed" in (sweep / "aggregate" / "report.md").read_text()


@pytest.mark.e2e
def test_a_sweep_whose_every_run_failed_exits_with_status_1(tmp_path, cache):
    sweep = tmp_path / "sweep"
    proc = strf_run(["-m", "seed=0,1", "model.temporal_window_size=0", *TINY_ARGS, f"hydra.sweep.dir={sweep}"], cache,
                    tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (f"strf-run: 2 of 2 runs of this sweep did not finish (2 failed; {sweep / 'aggregate' / 'report.md'} "
            "lists them): exit status 1") in proc.stderr
    assert list(pd.read_csv(sweep / "aggregate" / "runs.csv")["status"]) == ["failed", "failed"]


@pytest.mark.e2e
def test_a_single_run_whose_training_failed_exits_with_status_1_and_a_refused_one_with_2(tmp_path, cache):
    diverged = strf_run([*TINY_ARGS, "trainer.lr=1e30", f"hydra.run.dir={tmp_path / 'run'}"], cache, tmp_path)
    assert diverged.returncode == 1, diverged.stderr
    assert "strf-run: error: training loss is " in diverged.stderr and (tmp_path / "run" / "failed.json").is_file()
    refused = strf_run([*TINY_ARGS, "model.temporal_window_size=0"], cache, tmp_path)
    assert refused.returncode == 2 and "model.temporal_window_size=0 must be >= 1" in refused.stderr


@pytest.mark.e2e
def test_help_documents_the_exit_statuses(tmp_path, cache):
    text = strf_run(["--help"], cache, tmp_path).stdout
    statuses = text.split("Exit status:")[1].split("Hydra's own options")[0]
    for line in ("0 every run finished", "1 the run's training failed; in a sweep, any run that failed or did not "
                 "finish", "2 the command, its config, data or files are at fault", "130 interrupted"):
        assert line in " ".join(statuses.split()), line


def test_the_end_of_sweep_aggregate_lists_a_corrupt_run(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for k, fe in enumerate(("native", "leaf", "mel")):
        write_fake_run(sweep / f"{k}_{fe}-s0", run_config(fe, 0), fake_scores(fe, 0))
    (sweep / "1_leaf-s0" / "summary.json").write_text('{"test_mean_cc_norm": 0.6')  # cut short by a full disk
    AggregateCallback().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert "2 finished, 0 failed, 0 unfinished, 1 corrupt" in " ".join(capsys.readouterr().out.split())
    runs = pd.read_csv(sweep / "aggregate" / "runs.csv")
    assert list(runs["status"]) == ["finished", "corrupt", "finished"]
    assert runs["error"][1].startswith(f"cannot read {sweep / '1_leaf-s0' / 'summary.json'}: ")
    assert list(pd.read_csv(sweep / "aggregate" / "comparisons.csv")["arm"]) == ["frontend=mel"]


@pytest.mark.e2e
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path, cache):
    args = ["-m", "seed=0,1,2,3", *TINY_ARGS, f"sweep_root={tmp_path / 'sweeps'}"]
    env = {**os.environ, "STRF_RUNNER_DATA": str(cache)}
    first = tmp_path / "sweeps" / "first"
    cmd = [sys.executable, "-m", "strf_runner.cli", *args, f"hydra.sweep.dir={first}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(first.glob("*/summary.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {json.loads(p.read_text())["config_hash"] for p in first.glob("*/summary.json")}
    assert 1 <= len(done_before) < 4, "kill the sweep after its first run and before its last"

    second = tmp_path / "sweeps" / "second"
    rerun = strf_run([*args, f"hydra.sweep.dir={second}"], cache, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    summaries = [json.loads(p.read_text()) for p in sorted(second.glob("*/summary.json"))]
    assert len(summaries) == 4
    reused = [s for s in summaries if s.get("reused_from")]
    assert {s["config_hash"] for s in reused} == done_before  # exactly the finished ones were reused ...
    assert all(Path(s["reused_from"]).parent == first.resolve() for s in reused)
    assert rerun.stdout.count("reused") == len(done_before)  # ... and only the missing ones trained
    for d in second.iterdir():  # a reused run is whole: predict and the seed ensemble need these too
        if (d / "summary.json").is_file():
            assert (d / "model.json").is_file() and (d / "test_predictions.npz").is_file(), d

    again = strf_run([*args, f"hydra.sweep.dir={second}"], cache, tmp_path)  # the same sweep dir once more
    assert again.returncode == 0 and again.stdout.count("reused") == 4


@pytest.mark.e2e
def test_every_readout_trains_with_every_frontend(tmp_path, cache):
    """A CI-sized capacity sweep: each front-end x readout pair builds, trains an epoch and is scored."""
    from strf_runner.frontends.registry import FRONTENDS
    from strf_runner.models.registry import READOUTS

    sweep = tmp_path / "sweep"
    frontends, models = FRONTENDS.names(), READOUTS.names()
    proc = strf_run(["-m", f"frontend={','.join(frontends)}", f"model={','.join(models)}", *TINY_ARGS,
                     "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"], cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert {(s["frontend"], s["model"]) for s in summaries} == {(f, m) for f in frontends for m in models}
    assert all(s["n_params"] > 0 and s["test_n_neurons"] == 16 for s in summaries)
    arms = pd.read_csv(sweep / "aggregate" / "arms.csv")
    assert len(arms) == len(frontends) * len(models) and arms["n_params"].notna().all()
    assert (sweep / "aggregate" / "capacity.png").read_bytes()[:4] == b"\x89PNG"  # front-ends x readouts
    assert "capacity.png" in (sweep / "aggregate" / "report.md").read_text()


@pytest.mark.e2e
def test_two_sweeps_writing_one_sweep_dir_at_once(tmp_path, cache):
    """Two processes, one sweep dir: every run finishes intact and the report holds all of them."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "STRF_RUNNER_DATA": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "strf_runner.cli", "-m", f"frontend={fe}", "seed=0,1", *TINY_ARGS,
                          "trainer.threads=1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for fe in ("native", "mel")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert sorted((s["frontend"], s["seed"]) for s in summaries) == [("mel", 0), ("mel", 1), ("native", 0), ("native", 1)]
    for d in job_dirs(sweep):
        pd.read_csv(d / "neurons.csv")  # complete, parseable files only
        assert not list(d.glob(".*.tmp")), "a temp file was left behind"
    subprocess.run([sys.executable, "-c", "from strf_runner.cli import report_main; report_main()", str(sweep)],
                   check=True, capture_output=True, env=env)
    assert len(pd.read_csv(sweep / "aggregate" / "runs.csv")) == 4
