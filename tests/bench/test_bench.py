"""strf-bench runs end to end and writes its CSV (timings themselves are not tested)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from strf_runner.bench import cli
from strf_runner.bench.cli import main, target_checks


@pytest.fixture
def no_measurements(monkeypatch):
    """Any measurement fails the test: argument errors must stop strf-bench before the first one."""
    monkeypatch.setattr(cli, "run_child", lambda kind, name, args: pytest.fail(f"measured {kind} {name}"))


@pytest.mark.e2e
def test_bench_writes_a_row_per_measurement(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    main(["--only", "native,native_pcen", "--epoch-rows", "native", "--repeats", "1", "--epochs", "1",
          "--out", str(out)])
    table = pd.read_csv(out)
    assert list(table["kind"]) == ["frontend", "frontend", "epoch", "target"]  # no LEAF rows: one target
    assert set(table["name"][:3]) == {"native", "native_pcen"}
    assert (table["threads"] == 2).all() and (table["device"] == "cpu").all()
    assert table.loc[2, "epoch_s"] > 0 and table.loc[2, "n_params"] == 36771
    assert "native epoch + validation" in capsys.readouterr().out


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    """strf-bench's exit status is ``code`` and its stderr one line ``strf-bench: error: ...``; that line."""
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == code
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("strf-bench: error: ")
    return line


def test_unknown_frontend_is_a_usage_error(capsys, no_measurements):
    assert "unknown front-end(s) or readout(s) ['leafy']" in one_line_error(capsys, ["--only", "leafy"])


@pytest.mark.parametrize("flag", ["--threads", "--repeats", "--epochs"])
@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_counts_below_one_are_usage_errors(capsys, no_measurements, flag, value):
    line = one_line_error(capsys, [flag, value, "--only", "native", "--epoch-rows", ""])
    assert f"argument {flag}: must be a whole number >= 1, got '{value}'" in line


def test_an_unavailable_device_is_a_usage_error(capsys, no_measurements, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = one_line_error(capsys, ["--device", "cuda"])
    assert line == "strf-bench: error: --device='cuda' but no CUDA GPU is visible; use cpu or auto"
    assert "--device='gpu' is not a device name" in one_line_error(capsys, ["--device", "gpu"])


def test_auto_measures_on_the_cpu_without_a_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    devices = []
    monkeypatch.setattr(cli, "run_child", lambda kind, name, args: devices.append(args.device) or {
        "kind": kind, "name": name, "forward_ms": 1.0, "fwd_bwd_ms": None, "params": 0, "peak_rss_mb": 1.0})
    main(["--device", "auto", "--only", "mel", "--epoch-rows", "", "--out", str(tmp_path / "b.csv")])
    assert devices == ["cpu"] and (tmp_path / "b.csv").is_file()


def test_a_run_that_measured_nothing_exits_1(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "run_child", lambda kind, name, args: {"kind": kind, "name": name, "error": "boom"})
    line = one_line_error(capsys, ["--only", "native,mel", "--epoch-rows", "native", "--out",
                                   str(tmp_path / "b.csv")], code=1)
    assert line == "strf-bench: error: nothing was measured: all 3 measurements failed (the first: boom)"


def test_help_states_the_targets_without_issue_numbers(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "issue" not in text.lower()
    assert "a LEAF epoch <= 1.3 s, a native epoch <= 0.15 s, a StateNet epoch <= 0.9 s" in text
    assert "peak memory <= 2 GB" in text


def test_targets_compare_measurements_with_the_limits():
    fronts = {
        "leaf": {"fwd_bwd_ms": 100.0},
        "sincnet": {"fwd_bwd_ms": 310.0},
        "gammatone": {"forward_ms": 200.0, "fwd_bwd_ms": None},  # no parameters: its forward is its cost
        "leaf-direct": {"fwd_bwd_ms": 900.0},  # a reference, not a front-end
    }
    epochs = {"leaf": {"epoch_s": 1.25, "peak_rss_mb": 3000.0}, "native": {"epoch_s": 0.1},
              "gammatone": {"epoch_s": 0.16}, "native+statenet": {"epoch_s": 0.5}}
    checks = {c["name"]: c["met"] for c in target_checks(fronts, epochs)}
    assert checks == {
        "LEAF epoch + validation, s": True,
        "native epoch + validation, s": True,
        "StateNet (GRU) epoch + validation, s": True,
        "gammatone epoch / native epoch": False,  # 1.6x
        "slowest other front-end's training cost / LEAF's fwd+bwd (sincnet)": False,  # 3.1x
        "peak RSS of the LEAF epoch process, MB": False,
    }


def test_epoch_rows_name_front_ends_readouts_and_references():
    from strf_runner.bench.cli import split_rows
    from strf_runner.bench.epochs import parse_epoch_row

    assert split_rows("native,sincnet[envelope=true,kernel_size=753],native+statenet[rnn=lstm]") == [
        "native", "sincnet[envelope=true,kernel_size=753]", "native+statenet[rnn=lstm]"]
    assert parse_epoch_row("leaf") == ["frontend=leaf", "model=linear"]
    assert parse_epoch_row("leaf-direct") == ["frontend=leaf", "model=linear"]
    assert parse_epoch_row("native+statenet[rnn=lstm]") == ["frontend=native", "model=statenet", "model.rnn=lstm"]
    assert parse_epoch_row("native+statenet-torch") == ["frontend=native", "model=statenet"]


@pytest.mark.e2e
def test_a_readout_row_and_its_reference_are_real_runs(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    main(["--only", "native", "--epoch-rows", "native+statenet,native+statenet-torch", "--repeats", "1",
          "--epochs", "1", "--out", str(out)])
    table = pd.read_csv(out).set_index("name")
    assert table.loc["native+statenet", "n_params"] == table.loc["native+statenet-torch", "n_params"] == 38843
    assert table.loc["native+statenet", "epoch_s"] > table.loc["native+statenet", "validation_s"] > 0
    assert "StateNet epoch: x" in capsys.readouterr().out


def test_an_unknown_readout_row_is_one_line(capsys):
    line = one_line_error(capsys, ["--only", "native", "--epoch-rows", "native+lstmnet"])
    assert "unknown front-end(s) or readout(s) ['lstmnet']" in line


def test_the_direct_leaf_reference_trains_like_leaf_never_cached():
    """A leaf-direct epoch row builds its model through the experiment, which asks whether the
    front-end's finite stage is fixed (it failed there once: the reference lacked the question)."""
    from strf_runner.bench.reference import DirectLEAF
    from strf_runner.frontends.leaf import CausalLEAF

    assert DirectLEAF(CausalLEAF(48000.0, 240)).fixed_finite is False
