"""A run's identity follows its data (issue 28, cases 1 and 3): every run records the content digest of
the data it trained on, and sweep reuse, resume and strf-report compare it as well as the config."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.commands import strf_run
from tests.helpers.data import make_content
from tests.helpers.fakes import fake_scores, run_config, write_fake_run
from tests.helpers.runs import Interrupt, interrupt_after

from strf_runner.config import FrontendConfig, RunConfig, TrainerConfig
from strf_runner.data.digest import DataIdentity, data_identity
from strf_runner.data.schema import content_sha256, file_sha256, read_dataset, write_dataset
from strf_runner.data.sources import HDF5DatasetConfig
from strf_runner.errors import ResultsError, StrfRunnerWarning
from strf_runner.experiment import run_experiment
from strf_runner.models.linear import LinearModelConfig
from strf_runner.results.aggregate import aggregate
from strf_runner.results.collect import collect_runs
from strf_runner.sweep import reuse_finished

# a Linear readout short enough for make_content's 20-32-bin stimuli
SMALL = ["model.temporal_window_size=4", "trainer=smoke", "device=cpu"]


def hdf5_config(path: Path, max_epochs: int = 3) -> RunConfig:
    return RunConfig(
        dataset=HDF5DatasetConfig(name="file", path=str(path)),
        frontend=FrontendConfig(name="native"),
        model=LinearModelConfig(temporal_window_size=4),
        trainer=TrainerConfig(max_epochs=max_epochs, patience=max_epochs, device="cpu"),
        run_name="test",
    )


def edit_in_place(path: Path) -> None:
    """The same file name, shapes and metadata; other responses."""
    content = read_dataset(path)
    for stim in content.stimuli:
        stim.responses = stim.responses[:, ::-1].copy()  # repeats reversed: other values per repeat index
        stim.responses[:, 0] += 1.0
    write_dataset(content, path)


def test_the_digest_is_of_the_content_not_of_the_bytes(tmp_path):
    content = make_content()
    write_dataset(content, tmp_path / "a.h5")
    data = data_identity(tmp_path / "a.h5")
    assert data.content_sha256 == content_sha256(content)
    assert data.file_sha256 == file_sha256(tmp_path / "a.h5")
    edit_in_place(tmp_path / "a.h5")
    assert data_identity(tmp_path / "a.h5").content_sha256 != data.content_sha256  # not a stale memo
    assert data.matches(data.record())
    assert not data.matches({"content_sha256": "f" * 64, "sha256": data.file_sha256})  # the content decides
    assert data.matches({"sha256": data.file_sha256})  # an older run's record: its file bytes
    assert not data.matches(None) and not data.matches({})


def test_a_run_records_its_data_where_it_starts_and_where_it_ends(tmp_path):
    write_dataset(make_content(), tmp_path / "d.h5")
    result = run_experiment(hdf5_config(tmp_path / "d.h5"), tmp_path / "run")
    data = data_identity(tmp_path / "d.h5")
    assert json.loads((result.run_dir / "data.json").read_text()) == data.record()
    assert result.summary.dataset.content_sha256 == data.content_sha256
    assert result.summary.dataset.sha256 == data.file_sha256
    for name in ("model.json", "summary.json"):  # the layout version a reader checks
        assert json.loads((result.run_dir / name).read_text())["format_version"] == 1


@pytest.mark.e2e
def test_a_sweep_rerun_after_the_data_changed_trains_again(tmp_path):
    """Case 1: the same command after the file at the same path changed retrains; the old sweep dir,
    run again, refuses to pass its finished run off as one on the new data."""
    path = tmp_path / "d.h5"
    write_dataset(make_content(), path)
    sweeps = tmp_path / "sweeps"
    args = ["-m", "dataset=hdf5", f"dataset.path={path}", *SMALL, "seed=0", f"sweep_root={sweeps}"]
    first = strf_run([*args, f"hydra.sweep.dir={sweeps / 'a'}"], tmp_path / "cache", tmp_path)
    assert first.returncode == 0, first.stderr
    old = json.loads(next((sweeps / "a").glob("0_*/summary.json")).read_text())

    edit_in_place(path)
    second = strf_run([*args, f"hydra.sweep.dir={sweeps / 'b'}"], tmp_path / "cache", tmp_path)
    assert second.returncode == 0, second.stderr
    assert "reused" not in second.stdout
    assert "not reusing" in second.stderr and "trained on other data" in second.stderr
    new = json.loads(next((sweeps / "b").glob("0_*/summary.json")).read_text())
    assert "reused_from" not in new
    assert new["config_hash"] == old["config_hash"]
    assert new["dataset"]["content_sha256"] == data_identity(path).content_sha256 != old["dataset"]["content_sha256"]

    again = strf_run([*args, f"hydra.sweep.dir={sweeps / 'a'}"], tmp_path / "cache", tmp_path)
    line = next(x for x in again.stderr.splitlines() if "holds a finished run" in x)
    assert "trained on other data" in line and "new hydra.sweep.dir" in line
    assert json.loads(next((sweeps / "a").glob("0_*/summary.json")).read_text()) == old  # never overwritten

    summary = reuse_finished(new["config_hash"], data_identity(path), tmp_path / "c" / "0_job", [sweeps])
    assert summary is not None and Path(summary.reused_from).parent.name == "b"  # the run on today's data


def test_a_sweep_does_not_resume_an_interrupted_run_on_other_data(tmp_path):
    from strf_runner.config import resolve_config
    from strf_runner.sweep import prepare_resume

    write_dataset(make_content(), tmp_path / "d.h5")
    cfg = hdf5_config(tmp_path / "d.h5", max_epochs=5)
    old = tmp_path / "sweeps" / "old" / "0_job"
    with pytest.raises(Interrupt):
        run_experiment(cfg, old, on_epoch_end=interrupt_after(2))
    edit_in_place(tmp_path / "d.h5")
    with pytest.warns(StrfRunnerWarning, match="not resuming .*trained on other data"):
        found = prepare_resume(resolve_config(cfg).hash, data_identity(tmp_path / "d.h5"),
                               tmp_path / "sweeps" / "new" / "0_job", [tmp_path / "sweeps"])
    assert found is None and not (tmp_path / "sweeps" / "new").exists()


def test_resume_true_refuses_a_run_interrupted_on_other_data(tmp_path):
    write_dataset(make_content(), tmp_path / "d.h5")
    cfg = hdf5_config(tmp_path / "d.h5", max_epochs=5)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "run", on_epoch_end=interrupt_after(2))
    edit_in_place(tmp_path / "d.h5")
    with pytest.raises(ResultsError, match=r"resume=true but the interrupted run .* trained on other data") as err:
        run_experiment(dataclasses.replace(cfg, resume=True), tmp_path / "run")
    assert "\n" not in str(err.value)


def _with_data(run: Path, digest: str) -> Path:
    summary = json.loads((run / "summary.json").read_text())
    summary["dataset"] = {"path": "/data/x.h5", "sha256": "1" * 64, "content_sha256": digest}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_the_report_never_pools_runs_on_different_data_into_one_arm(tmp_path):
    """Case 3: two seed-0 runs of one config on different data are two arms labelled by their data, and
    each is compared only with the baseline on the same data."""
    a, b = "a" * 64, "b" * 64
    for digest in (a, b):
        for frontend in ("native", "leaf"):
            _with_data(write_fake_run(tmp_path / f"{frontend}-{digest[0]}", run_config(frontend, 0),
                                      fake_scores(frontend, 0)), digest)
    with pytest.warns(StrfRunnerWarning, match="2 different datasets"):
        agg = aggregate(collect_runs([tmp_path]))
    assert sorted(agg.arms["arm"]) == ["frontend=leaf data=aaaaaaaa", "frontend=leaf data=bbbbbbbb",
                                       "frontend=native data=aaaaaaaa", "frontend=native data=bbbbbbbb"]
    assert set(agg.arms["runs"]) == {1} and set(agg.arms["seeds"]) == {"0"}
    assert dict(zip(agg.comparisons["arm"], agg.comparisons["baseline"])) == {
        "frontend=leaf data=aaaaaaaa": "frontend=native data=aaaaaaaa",
        "frontend=leaf data=bbbbbbbb": "frontend=native data=bbbbbbbb",
    }


def test_the_report_labels_data_only_where_runs_differ_in_it(tmp_path):
    for frontend in ("native", "leaf"):
        for seed in (0, 1):
            _with_data(write_fake_run(tmp_path / f"{frontend}-{seed}", run_config(frontend, seed),
                                      fake_scores(frontend, seed)), "a" * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StrfRunnerWarning)
        agg = aggregate(collect_runs([tmp_path]))
    assert sorted(agg.arms["arm"]) == ["frontend=leaf", "frontend=native"]


def test_the_report_never_pools_runs_that_scored_different_neurons(tmp_path):
    """Runs that record no data (hand-made or older) but scored other neuron sets are split too."""
    for seed in (0, 1):
        run = write_fake_run(tmp_path / f"leaf-{seed}", run_config("leaf", seed), fake_scores("leaf", seed))
        if seed == 1:
            table = (run / "neurons.csv").read_text().splitlines()
            (run / "neurons.csv").write_text("\n".join(table[:-1]) + "\n")  # 11 of the 12 neurons
    with pytest.warns(StrfRunnerWarning, match="different neuron sets"):
        agg = aggregate(collect_runs([tmp_path]))
    assert len(agg.arms) == 2 and set(agg.arms["runs"]) == {1}
    assert sorted(arm.split("neurons=")[1].split(":")[0] for arm in agg.arms["arm"]) == ["11", "12"]
    assert np.isfinite(agg.arms["mean_cc_norm"]).all()


def test_old_runs_without_a_content_digest_are_reused_only_on_equal_file_bytes(tmp_path):
    write_dataset(make_content(), tmp_path / "d.h5")
    data = data_identity(tmp_path / "d.h5")
    cfg = run_config("leaf", 0)
    run = write_fake_run(tmp_path / "sweeps" / "old" / "0_leaf", cfg, fake_scores("leaf", 0))
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "dataset": {"sha256": data.file_sha256}}))
    hash_ = summary["config_hash"]
    assert reuse_finished(hash_, data, tmp_path / "new" / "0_leaf", [tmp_path / "sweeps"]) is not None
    other = DataIdentity(data.path, "2" * 64, data.content_sha256)
    with pytest.warns(StrfRunnerWarning, match="not reusing"):
        assert reuse_finished(hash_, other, tmp_path / "new2" / "0_leaf", [tmp_path / "sweeps"]) is None
