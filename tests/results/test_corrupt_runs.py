"""Reports of sweeps holding run dirs whose files are damaged: the run is listed as corrupt with
the reason, the rest is reported as usual, and resuming a sweep skips what it cannot read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from strf_runner.cli import report_main
from strf_runner.errors import ResultsError
from strf_runner.results.aggregate import aggregate
from strf_runner.identity import config_hash
from strf_runner.results.collect import collect_runs, finished_with_hash, interrupted_with_hash, read_run
from strf_runner.sweep import reuse_finished
from strf_runner.data.digest import DataIdentity
from tests.helpers.fakes import fake_scores, run_config, write_fake_run

ANY_DATA = DataIdentity(Path("data.h5"), "0" * 64, "0" * 64)

GARBAGE = bytes(range(256))[::-1]  # starts with 0xff: not UTF-8, not JSON, not YAML, not CSV
HEADER = "neuron,id,cc_norm,valid\n"
DAMAGE = {
    "summary truncated": ("summary.json", b'{"test_mean_cc_norm": 0.5, "n_par'),
    "summary garbage": ("summary.json", GARBAGE),
    "summary empty": ("summary.json", b""),
    "summary not an object": ("summary.json", b"[0.5, 36771]"),
    "neurons without cc_norm": ("neurons.csv", b"neuron,id,valid\n0,unit00,True\n"),
    "neurons empty": ("neurons.csv", b""),
    "neurons header only": ("neurons.csv", HEADER.encode()),
    "neurons cut mid-row": ("neurons.csv", (HEADER + "0,unit00,0.5,True\n1,unit01,0.4").encode()),
    "neurons garbage": ("neurons.csv", GARBAGE),
    "failed.json truncated": ("failed.json", b'{"error": "trainer.l'),
}
CONFIG_DAMAGE = {
    "config garbage": GARBAGE,
    "config truncated": b"dataset:\n  name: synth\nfrontend: {name: nat",
    "config empty": b"",
    "config not a mapping": b"just some text",
}


@pytest.fixture
def sweep(tmp_path) -> Path:
    """native and mel x seeds 0, 1: four finished runs."""
    root = tmp_path / "sweep"
    for k, (fe, seed) in enumerate((fe, s) for fe in ("native", "mel") for s in (0, 1)):
        write_fake_run(root / f"{k}_{fe}-s{seed}", run_config(fe, seed), fake_scores(fe, seed))
    return root


def damage(run: Path, name: str, content: bytes) -> Path:
    if name == "failed.json":
        (run / "summary.json").unlink()
    (run / name).write_bytes(content)
    return run / name


@pytest.mark.parametrize("case", DAMAGE)
def test_a_run_with_a_damaged_file_is_listed_as_corrupt_and_the_rest_reported(sweep, tmp_path, capsys, case):
    damaged = damage(sweep / "1_native-s1", *DAMAGE[case])
    report_main([str(sweep), "--out", str(tmp_path / "agg")])
    title = capsys.readouterr().out
    assert "3 finished, 0 failed, 0 unfinished, 1 corrupt" in " ".join(title.split())
    runs = pd.read_csv(tmp_path / "agg" / "runs.csv")
    bad = runs[runs["status"] == "corrupt"]
    assert list(bad["path"]) == [str(sweep / "1_native-s1")] and list(bad["arm"]) == ["frontend=native"]
    reason = bad["error"].iloc[0]
    assert str(damaged) in reason and "\n" not in reason
    arms = pd.read_csv(tmp_path / "agg" / "arms.csv").set_index("arm")
    assert (arms.loc["frontend=native", "runs"], arms.loc["frontend=native", "corrupt"]) == (1, 1)
    assert arms.loc["frontend=native", "mean_cc_norm"] == pytest.approx(fake_scores("native", 0).mean(), abs=1e-6)
    assert arms.loc["frontend=mel", "runs"] == 2
    assert len(pd.read_csv(tmp_path / "agg" / "comparisons.csv")) == 1
    md = (tmp_path / "agg" / "report.md").read_text()
    assert "3 finished, 0 failed, 0 unfinished, 1 corrupt." in md
    assert f"- corrupt: `{sweep / '1_native-s1'}` — {reason}" in md


@pytest.mark.parametrize("case", CONFIG_DAMAGE)
def test_a_run_with_an_unreadable_config_is_corrupt_and_in_no_arm(sweep, case):
    damaged = damage(sweep / "2_mel-s0", "config.yaml", CONFIG_DAMAGE[case])
    agg = aggregate(collect_runs([sweep]))
    bad = agg.runs[agg.runs["status"] == "corrupt"]
    assert len(bad) == 1 and bad["arm"].isna().all()
    assert str(damaged) in bad["error"].iloc[0] and "\n" not in bad["error"].iloc[0]
    assert list(agg.arms["arm"]) == ["frontend=native", "frontend=mel"]  # no arm for it, no new label keys
    assert list(agg.arms["runs"]) == [2, 1]


def test_a_sweep_of_corrupt_runs_only_is_still_reported(sweep, tmp_path, capsys):
    for run in sweep.iterdir():
        damage(run, "config.yaml", GARBAGE)
    report_main([str(sweep), "--out", str(tmp_path / "agg")])
    assert "4 corrupt" in capsys.readouterr().out
    runs = pd.read_csv(tmp_path / "agg" / "runs.csv")
    assert list(runs["status"]) == ["corrupt"] * 4
    assert "0 finished, 0 failed, 0 unfinished, 4 corrupt." in (tmp_path / "agg" / "report.md").read_text()


def test_an_arm_without_a_readable_run_leaves_the_others_intact(sweep, tmp_path):
    for run in ("2_mel-s0", "3_mel-s1"):
        damage(sweep / run, "neurons.csv", b"")
    report_main([str(sweep), "--out", str(tmp_path / "agg")])
    md = (tmp_path / "agg" / "report.md").read_text()
    assert "| frontend=mel | 0 (+2 corrupt) | - |" in md
    assert "| frontend=native | 2 | " in md and " | 36,771 | " in md  # a count, not 36771.000


def test_finding_a_finished_run_skips_damaged_summaries(tmp_path):
    cfg = run_config("leaf", 0)
    for k, content in enumerate((GARBAGE, b"[1, 2]", b'{"config_h')):
        damage(write_fake_run(tmp_path / "old" / f"{k}_leaf-s0", cfg, fake_scores("leaf", 0)), "summary.json", content)
    assert list(finished_with_hash(tmp_path / "old", config_hash(cfg))) == []
    good = write_fake_run(tmp_path / "old" / "9_leaf-s0", cfg, fake_scores("leaf", 0))
    assert [path for path, _ in finished_with_hash(tmp_path / "old", config_hash(cfg))] == [good]


def test_finding_an_interrupted_run_skips_damaged_configs(tmp_path):
    cfg = run_config("leaf", 0)
    for k, content in enumerate((GARBAGE, b"just some text", b"")):
        run = write_fake_run(tmp_path / f"{k}_leaf-s0", cfg, None, status="unfinished")
        (run / "last.pt").write_bytes(b"state")
        damage(run, "config.yaml", content)
    assert list(interrupted_with_hash(tmp_path, config_hash(cfg))) == []


@pytest.mark.parametrize("content", [GARBAGE, b"[1, 2]", b""])
def test_a_rerun_sweep_refuses_its_own_damaged_job_with_one_line(tmp_path, content):
    job = write_fake_run(tmp_path / "0_leaf-s0", run_config("leaf", 0), fake_scores("leaf", 0))
    damage(job, "summary.json", content)
    with pytest.raises(ResultsError, match="summary.json") as err:
        reuse_finished(None, ANY_DATA, job, [tmp_path])
    assert "\n" not in str(err.value)
    with pytest.raises(ResultsError):
        read_run(job)

