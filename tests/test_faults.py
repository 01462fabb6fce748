"""Honest numbers under bad data and faults: no leakage, no mislabelled scores, no lost runs, one-line errors.

Each test builds the bad input an adversarial user would (own HDF5 files, overlapping splits, a second
run into a busy run dir, a full disk) and checks what strf-runner says and leaves behind.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from tests.helpers.commands import TINY_ARGS, strf_cmd, strf_env, strf_run
from tests.helpers.data import make_content
from tests.helpers.runs import tiny_config

from strf_runner.config import FrontendConfig, RunConfig, TrainerConfig
from strf_runner.data.dataset import split_datasets
from strf_runner.data.ns1 import split_indices
from strf_runner.data.schema import read_dataset, write_dataset
from strf_runner.data.sources import HDF5DatasetConfig
from strf_runner.entry import os_error_line
from strf_runner.errors import ConfigError, DatasetError, ResultsError, StrfRunnerWarning
from strf_runner.experiment import run_experiment
from strf_runner.models.linear import LinearModelConfig
from strf_runner.results.rundir import LOCK, RunDir
from strf_runner.training.fitter import FitState


def hdf5_config(path: Path, max_epochs: int = 3, **model) -> RunConfig:
    return RunConfig(
        dataset=HDF5DatasetConfig(name="mine", path=str(path)),
        frontend=FrontendConfig(name="native"),
        model=LinearModelConfig(**model),
        trainer=TrainerConfig(max_epochs=max_epochs, patience=max_epochs, device="cpu"),
        run_name="test",
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single error line of a refused strf-run (warnings and a progress bar's last state aside),
    checked to be the only thing it said besides those, never a traceback."""
    said = [line for line in proc.stderr.strip().splitlines() if ": warning" not in line and "━" not in line
            and not line.startswith("native->")]
    assert proc.returncode == 2 and len(said) == 1 and said[0].startswith("strf-run: error: "), proc.stderr
    return said[0]


# ------------------------------------------------------------------------------------------------
# 1. overlapping splits


@pytest.mark.e2e
def test_overlapping_split_overrides_are_refused_naming_the_shared_stimuli(tmp_path, cache):
    proc = strf_run(TINY_ARGS + ["dataset.train_stimuli=[0,1,2]", "dataset.val_stimuli=[3]",
                                 "dataset.test_stimuli=[0]"], cache, tmp_path)
    line = one_error_line(proc)
    assert "splits 'train' and 'test' share stimuli [0]" in line and "dataset.test_stimuli" in line
    assert not (tmp_path / "outputs").exists(), "a refused run leaves no run dir behind"


def test_overlapping_file_splits_are_refused_at_write_and_at_run(tmp_path):
    content = make_content()
    content.splits = {"train": [0, 1, 2], "val": [3], "test": [3, 4]}
    with pytest.raises(DatasetError, match=r"splits 'val' and 'test' share stimuli \[3\]"):
        write_dataset(content, tmp_path / "leaky.h5")
    content.splits = {"train": [0, 1, 2], "val": [3], "test": [4]}
    path = write_dataset(content, tmp_path / "mine.h5")
    with h5py.File(path, "a") as f:  # a file written by other tools
        del f["splits/test"]
        f["splits/test"] = np.array([0, 4])
    with pytest.raises(DatasetError, match=r"'train' and 'test' share stimuli \[0\].*the file's own /splits"):
        run_experiment(hdf5_config(path), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ns1_split_presets_with_an_override_that_overlaps_are_refused():
    content = make_content(n_stimuli=20, lengths=[12] * 20)
    for name in ("default", "rahman2020"):
        split_datasets(content, "spectrogram", split_indices(name))  # the presets themselves are disjoint
        leaky = {**split_indices(name), "test": [0]}
        with pytest.raises(DatasetError, match=r"'train' and 'test' share stimuli \[0\]"):
            split_datasets(content, "spectrogram", leaky, origin="splits set by dataset.test_stimuli")


# ------------------------------------------------------------------------------------------------
# 2. one repeat: cc_norm is undefined, not a plain correlation


def test_one_repeat_gives_nan_cc_norm_and_early_stopping_on_val_cc(tmp_path):
    path = write_dataset(make_content(n_repeats=1, n_neurons=6), tmp_path / "single_trial.h5")
    with pytest.warns(StrfRunnerWarning) as caught:
        result = run_experiment(hdf5_config(path, max_epochs=4), tmp_path / "run")
    text = " | ".join(str(w.message) for w in caught)
    assert "early stopping monitors val_cc" in text and "no test stimulus has 2 or more repeats" in text
    table = pd.read_csv(tmp_path / "run" / "neurons.csv")
    assert table["cc_norm"].isna().all() and not table["valid"].any()
    assert table["cc_abs"].notna().all(), "the raw correlation stays, under its own name"
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["test_mean_cc_norm"] is None and s["test_n_valid"] == 0
    assert s["monitor"] == "val_cc" and s["best_val_cc"] is not None and s["best_epoch"] is not None
    assert len(s["warnings"]) >= 2
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert s["best_val_cc"] == pytest.approx(history["val_cc"].max(), rel=1e-5)
    assert result.summary.monitor == "val_cc"


# ------------------------------------------------------------------------------------------------
# 3. tiny splits and few valid neurons


def test_stimuli_shorter_than_the_window_and_few_valid_neurons_are_warned(tmp_path):
    content = make_content(n_neurons=6, lengths=[30, 30, 30, 5, 4])
    for stim in content.stimuli[3:]:  # val and test: only 2 of 6 neurons with signal
        stim.responses[2:] = 0.0
    path = write_dataset(content, tmp_path / "tiny.h5")
    with pytest.warns(StrfRunnerWarning) as caught:
        run_experiment(hdf5_config(path), tmp_path / "run")
    text = " | ".join(str(w.message) for w in caught)
    assert "1 of 1 test stimuli are shorter than the readout's window of 9 frames" in text
    assert "1 of 1 val stimuli are shorter" in text
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["test_n_valid"] <= 2 and any("of 6 neurons have a defined test cc_norm" in w for w in s["warnings"])


def test_summary_table_shows_valid_counts_beside_the_means():
    from rich.console import Console

    from strf_runner.display import summary_table

    from strf_runner.results.summary import DatasetRecord, RunSummary

    summary = RunSummary(frontend="native", model="linear", dataset=DatasetRecord(config="mine"), test_mean_cc_norm=0.835,
                         test_median_cc_norm=0.8, test_n_valid=3, test_n_neurons=16, n_params=10, best_epoch=2,
                         epochs_run=3, stop_reason="max_epochs", wall_time_s=1.0, device="cpu",
                         warnings=["only 3 of 16 neurons have a defined test cc_norm"])
    console = Console(width=200, record=True)
    console.print(summary_table(summary))
    out = console.export_text()
    assert "0.835 (3 / 16 neurons valid)" in out and "0.800 (3 / 16 neurons valid)" in out
    assert "only 3 of 16 neurons" in out


def test_a_window_longer_than_every_training_stimulus_is_refused_before_allocating(tmp_path):
    path = write_dataset(make_content(), tmp_path / "mine.h5")
    with pytest.raises(ConfigError, match=r"model.temporal_window_size=1000000000 frames .* longest has 26 frames"):
        run_experiment(hdf5_config(path, temporal_window_size=1_000_000_000), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# 4. data that are not counts


def _rewrite(path: Path, edit) -> Path:
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(f: h5py.File, key: str, data: np.ndarray) -> None:
    del f[key]
    f[key] = data


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: _replace(f, "stimuli/0001/responses", -f["stimuli/0001/responses"][()] - 1),
         r"/stimuli/0001/responses holds negative values \(smallest -\d"),
        (lambda f: _replace(f, "stimuli/0002/responses", np.full_like(f["stimuli/0002/responses"][()], 1e30)),
         r"/stimuli/0002/responses holds values up to 1e\+30 per bin: not spike counts or rates"),
        (lambda f: f.attrs.__setitem__("n_neurons", 7), r"attribute n_neurons=7 but /neurons/id holds 4 ids"),
        (lambda f: _replace(f, "spectrogram_freqs", f["spectrogram_freqs"][()][::-1]),
         r"/spectrogram_freqs must increase strictly .* band 1 \([\d.]+ Hz\) does not lie above band 0"),
        (lambda f: f.attrs.__delitem__("dt_ms"), r"missing the root attribute dt_ms"),
    ],
    ids=["negative", "1e30", "n_neurons", "freqs_descending", "no_dt_ms"],
)
def test_data_that_are_not_counts_are_refused_in_one_line(tmp_path, edit, message):
    path = _rewrite(write_dataset(make_content(), tmp_path / "bad.h5"), edit)
    with pytest.raises(DatasetError, match=message) as err:
        read_dataset(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_negative_responses_are_refused_under_the_poisson_loss_too(tmp_path):
    path = _rewrite(write_dataset(make_content(), tmp_path / "bad.h5"),
                    lambda f: _replace(f, "stimuli/0000/responses", f["stimuli/0000/responses"][()] - 5))
    cfg = hdf5_config(path, activation="softplus")
    cfg.trainer.loss = "poisson"
    with pytest.raises(DatasetError, match="negative values"):
        run_experiment(cfg, tmp_path / "run")


def test_integer_spike_counts_are_read_as_floats(tmp_path):
    content = make_content()
    path = _rewrite(write_dataset(content, tmp_path / "ints.h5"),
                    lambda f: [_replace(f, f"stimuli/{i:04d}/responses", f[f"stimuli/{i:04d}/responses"][()].astype(np.int16))
                               for i in range(len(content.stimuli))])
    back = read_dataset(path)
    assert back.stimuli[0].responses.dtype == np.float32
    np.testing.assert_array_equal(back.stimuli[3].responses, content.stimuli[3].responses)


def test_a_corrupt_cache_file_says_how_to_rebuild_it(tmp_path):
    cfg = tiny_config(tmp_path, max_epochs=1)
    run_experiment(cfg, tmp_path / "a")
    (cached,) = (tmp_path / "cache").glob("synth-*.h5")
    cached.write_bytes(cached.read_bytes()[:5000])
    with pytest.raises(DatasetError, match=f"delete {cached} and it is made again"):
        run_experiment(tiny_config(tmp_path, max_epochs=1), tmp_path / "b")


# ------------------------------------------------------------------------------------------------
# 5. one owner per run dir


def test_a_second_claim_is_refused_while_the_first_holds_the_dir(tmp_path):
    first = RunDir(tmp_path / "run")
    first.claim()
    with pytest.raises(ResultsError, match=r"is in use by another run \(pid \d+ on .*, started"):
        RunDir(tmp_path / "run").claim()
    assert RunDir(tmp_path / "run").in_use
    first.release()
    assert not (tmp_path / "run" / LOCK).exists() and not RunDir(tmp_path / "run").in_use
    with RunDir(tmp_path / "run").owned():
        pass


def test_an_interrupted_run_is_taken_over_only_by_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt), run.owned():
        (tmp_path / "run" / "last.pt").write_bytes(b"state")
        raise KeyboardInterrupt
    owner = json.loads((tmp_path / "run" / LOCK).read_text())
    assert owner["pid"] == os.getpid() and "interrupted" in owner
    with pytest.raises(ResultsError, match=r"holds an interrupted run \(pid .*interrupted .*add resume=true"):
        RunDir(tmp_path / "run").claim()
    resumed = RunDir(tmp_path / "run")
    resumed.claim(resume=True)
    resumed.release()


def run_files(run) -> set[str]:
    """The files in a run dir, without the temporary files of the atomic writes the live run is making
    (its checkpoint every epoch): they come and go while the test looks."""
    return {p.name for p in run.iterdir() if not p.name.endswith(".tmp")}


@pytest.mark.e2e
def test_two_runs_into_one_dir_at_once_the_second_is_refused(tmp_path, cache):
    """The issue's case: a long run, and another run started into the same hydra.run.dir while it trains.
    The first run cannot finish before the test stops it (a million epochs, days on any machine): with 400
    epochs a fast machine finished it before the SIGINT came."""
    run = tmp_path / "shared"
    first = subprocess.Popen(
        [*strf_cmd(), "dataset=synth_tiny", "device=cpu", "trainer.max_epochs=1000000", "trainer.patience=1000000",
         f"hydra.run.dir={run}"],
        cwd=tmp_path, env=strf_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: (run / "last.pt").is_file(), first)
        before = run_files(run)
        second = strf_run(TINY_ARGS + ["model=ln", f"hydra.run.dir={run}"], cache, tmp_path)
        line = one_error_line(second)
        assert f"{run} is in use by another run (pid {first.pid}" in line and "resume=true" not in line
        assert run_files(run) == before and not (run / "summary.json").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130 and (run / "last.pt").is_file()
    assert "model: ln" not in (run / "config.yaml").read_text()


@pytest.mark.e2e
def test_a_killed_run_is_resumed_not_overwritten_and_records_both_wall_times(tmp_path, cache):
    run = tmp_path / "killed"
    args = ["dataset=synth_tiny", "device=cpu", "trainer.max_epochs=400", "trainer.patience=400", f"hydra.run.dir={run}"]
    proc = subprocess.Popen([*strf_cmd(), *args], cwd=tmp_path, env=strf_env(cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (run / "last.pt").is_file() and FitState.load(run / "last.pt").epoch >= 2, proc)
    proc.kill()
    proc.wait()
    again = strf_run(args, cache, tmp_path)
    assert "holds an interrupted run" in one_error_line(again) and "add resume=true" in again.stderr
    assert not (run / "summary.json").exists()
    epoch = FitState.load(run / "last.pt").epoch
    short = [a if not a.startswith("trainer.max_epochs") else f"trainer.max_epochs={epoch + 2}" for a in args]
    resumed = strf_run(short + ["trainer.patience=400", "resume=true"], cache, tmp_path)
    assert resumed.returncode != 0 and "config differs" in resumed.stderr  # resuming needs the same config
    done = strf_run(args + ["resume=true"], cache, tmp_path)
    assert done.returncode == 0, done.stderr
    s = json.loads((run / "summary.json").read_text())
    # the epoch it resumed from, and the training time before it (less than the two sessions' together)
    assert s["resumed_from_epoch"] == epoch and 0 < s["wall_time_earlier_s"] < FitState.load(run / "last.pt").wall_time_s
    assert s["wall_time_total_s"] == pytest.approx(s["wall_time_s"] + s["wall_time_earlier_s"])
    assert not (run / LOCK).exists()


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the test could act"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# 7. file-system faults and bad values: one line, never a traceback


def test_a_full_disk_keeps_the_last_good_checkpoint_and_says_where(tmp_path, monkeypatch):
    """The disk fills while the third epoch's state is flushed: the error names last.pt, the second
    epoch's state stays whole, and the run is left resumable."""
    real_fsync, flushed = os.fsync, []

    def fsync(fd: int) -> None:
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.startswith(".last.pt."):
            flushed.append(name)
            if len(flushed) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as err:
        run_experiment(tiny_config(tmp_path, max_epochs=5), tmp_path / "run")
    assert os_error_line(err.value) == f"disk full at {tmp_path / 'run' / 'last.pt'}"
    assert FitState.load(tmp_path / "run" / "last.pt").epoch == 2, "the last good state is whole"
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".last")] == [], "no temp file left"
    assert RunDir(tmp_path / "run").interrupted and not (tmp_path / "run" / LOCK).exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def _pages(folder: Path) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


@pytest.mark.e2e
def test_a_real_full_disk_is_one_line_and_leaves_a_resumable_run(tmp_path, cache, tiny_disk):
    """On a real (tmpfs) disk with room for one epoch's files and half a training state more."""
    one = strf_run(TINY_ARGS + ["trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'one'}"], cache, tmp_path)
    assert one.returncode == 0, one.stderr
    (tmp_path / "one" / "summary.json").unlink()
    room = _pages(tmp_path / "one") - _pages(tmp_path / "one") % 4096 + (tmp_path / "one" / "last.pt").stat().st_size // 2
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    (tiny_disk / "filler").write_bytes(b"\0" * (free - room))
    run = tiny_disk / "run"
    proc = strf_run(["dataset=synth_tiny", "device=cpu", "trainer.max_epochs=50", "trainer.patience=50",
                     f"hydra.run.dir={run}"], cache, tmp_path)
    line = one_error_line(proc)
    assert f"disk full at {run}" in line
    assert FitState.load(run / "last.pt").epoch >= 1 and "add resume=true" in line
    (tiny_disk / "filler").unlink()
    done = strf_run(["dataset=synth_tiny", "device=cpu", "trainer.max_epochs=50", "trainer.patience=50",
                     f"hydra.run.dir={run}", "resume=true"], cache, tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["trainer.lr=inf"], "trainer.lr=inf must be a finite number > 0"),
        (["dataset=hdf5", "dataset.path="], "dataset.path='' is empty"),
        (["run_name=" + "x" * 300], "file name too long: "),
        (["model.temporal_window_size=1000000000"], "longer than every training stimulus"),
    ],
    ids=["lr_inf", "empty_path", "long_run_name", "huge_window"],
)
@pytest.mark.e2e
def test_bad_values_are_one_line_and_leave_nothing(tmp_path, cache, args, expected):
    line = one_error_line(strf_run(TINY_ARGS + args, cache, tmp_path))
    assert expected in line
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.yaml"))


@pytest.mark.e2e
def test_unwritable_places_are_one_line(tmp_path, cache):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    line = one_error_line(strf_run(TINY_ARGS + [f"hydra.run.dir={blocker / 'run'}"], cache, tmp_path))
    assert str(blocker) in line
    line = one_error_line(strf_run(TINY_ARGS, blocker / "cache", tmp_path))
    assert "cannot write the synthetic dataset file" in line and "STRF_RUNNER_DATA" in line


def test_os_errors_read_as_one_line_naming_the_path():
    assert os_error_line(OSError(errno.ENOSPC, "No space left", "/x/last.pt")) == "disk full at /x/last.pt"
    assert os_error_line(PermissionError(errno.EACCES, "Permission denied", "/x")).startswith("permission denied at /x")
    long = "/o/" + "y" * 300
    text = os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", long))
    assert "file name too long" in text and "shorten run_name" in text and len(text) < 260


# ------------------------------------------------------------------------------------------------
# friction


@pytest.mark.e2e
def test_warnings_are_one_clean_line(tmp_path, cache):
    proc = strf_run(TINY_ARGS + ["trainer.max_epochs=2", "trainer.patience=30", f"hydra.run.dir={tmp_path / 'run'}"],
                    cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings_ = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert warnings_ == ["strf-run: warning: trainer.patience=30 > trainer.max_epochs=2: early stopping can never trigger"]
    assert "warnings.warn" not in proc.stderr and "UserWarning" not in proc.stderr


@pytest.mark.e2e
def test_a_run_writes_its_hydra_record_itself(tmp_path, cache):
    proc = strf_run(TINY_ARGS + ["trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"], cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = tmp_path / "run" / ".hydra"
    assert {p.name for p in record.iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert "trainer.max_epochs=1" in (record / "overrides.yaml").read_text()


# ------------------------------------------------------------------------------------------------
# issue 28: the smaller cases (7, 12 and the empty run dir of case 4)


@pytest.mark.e2e
def test_a_run_name_with_a_path_separator_is_refused_and_leaves_nothing(tmp_path, cache):
    line = one_error_line(strf_run(TINY_ARGS + ["run_name=../../x"], cache, tmp_path))
    assert "run_name='../../x' must be a plain folder name" in line
    assert not (tmp_path / "outputs").exists()  # not even the "<time>_.." folder Hydra made on the way


def test_a_run_that_fails_with_a_non_project_error_leaves_no_empty_run_dir(tmp_path, monkeypatch):
    from strf_runner import cli

    def boom(*args, **kwargs):
        raise RuntimeError("a bug deep inside")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("strf_runner.experiment.run_experiment", boom)
    monkeypatch.setattr("sys.argv", ["strf-run", *TINY_ARGS])
    with pytest.raises(RuntimeError, match="a bug deep inside"):
        cli.main()
    assert not (tmp_path / "outputs").exists()


def test_strf_report_does_not_loop_on_links_back_up_the_tree(tmp_path):
    from tests.helpers.fakes import fake_scores, run_config, write_fake_run

    write_fake_run(tmp_path / "sweep" / "0_leaf", run_config("leaf", 0), fake_scores("leaf", 0))
    (tmp_path / "sweep" / "here").symlink_to(".")
    (tmp_path / "sweep" / "again").symlink_to(".")
    (tmp_path / "sweep" / "0_leaf_link").symlink_to("0_leaf")
    proc = subprocess.run([*report_cmd(), str(tmp_path / "sweep"), "--out", str(tmp_path / "agg")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_csv(tmp_path / "agg" / "runs.csv")
    assert len(runs) == 1


def report_cmd() -> list[str]:
    """strf-report after strf_cmd()'s interpreter (or as the installed script)."""
    import shutil
    import sys

    exe = shutil.which("strf-report")
    return [exe] if exe else [sys.executable, "-c", "from strf_runner.cli import report_main; report_main()"]


def test_strf_report_refuses_an_empty_path(tmp_path, monkeypatch, capsys):
    from strf_runner.cli import report_main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        report_main([""])
    assert exit_.value.code == 2
    assert "an empty path" in capsys.readouterr().err
    assert not (tmp_path / "aggregate").exists()


def test_a_neurons_csv_missing_a_row_is_corrupt(tmp_path):
    from strf_runner.results.collect import collect_runs
    from tests.helpers.fakes import FAKE_NEURON_IDS, fake_scores, run_config, write_fake_run

    run = write_fake_run(tmp_path / "0_leaf", run_config("leaf", 0), fake_scores("leaf", 0))
    (run / "model.json").write_text(json.dumps({"neuron_ids": FAKE_NEURON_IDS}))
    rows = (run / "neurons.csv").read_text().splitlines()
    (run / "neurons.csv").write_text("\n".join(rows[:4] + rows[5:]) + "\n")  # unit03 lost
    [record] = collect_runs([tmp_path])
    assert record.status == "corrupt"
    assert "lacks 1 of the run's 12 neurons (e.g. unit03)" in record.error and "neurons.csv" in record.error

    (run / "model.json").unlink()  # a hand-made run dir: the summary's count is what is checked
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "test_n_neurons": 12}))
    [record] = collect_runs([tmp_path])
    assert record.status == "corrupt" and "has 11 neurons where summary.json says the run tested 12" in record.error
