"""strf-bench runs end to end and writes its CSV (timings themselves are not tested)."""

from __future__ import annotations

import pandas as pd
import pytest

from strf_runner.bench.cli import main, target_checks


def test_bench_writes_a_row_per_measurement(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    main(["--only", "native,native_pcen", "--epoch-frontends", "native", "--repeats", "1", "--epochs", "1",
          "--out", str(out)])
    table = pd.read_csv(out)
    assert list(table["kind"]) == ["frontend", "frontend", "epoch", "target"]  # no LEAF rows: one target
    assert set(table["name"][:3]) == {"native", "native_pcen"}
    assert (table["threads"] == 2).all() and (table["device"] == "cpu").all()
    assert table.loc[2, "epoch_s"] > 0 and table.loc[2, "n_params"] == 36771
    assert "native epoch + validation" in capsys.readouterr().out


def test_unknown_frontend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["--only", "leafy"])
    assert err.value.code == 2
    assert "unknown front-end(s) ['leafy']" in capsys.readouterr().err


def test_targets_compare_measurements_with_the_limits():
    fronts = {
        "leaf": {"fwd_bwd_ms": 100.0},
        "sincnet": {"fwd_bwd_ms": 310.0},
        "gammatone": {"forward_ms": 200.0, "fwd_bwd_ms": None},  # no parameters: its forward is its cost
        "leaf-direct": {"fwd_bwd_ms": 900.0},  # a reference, not a front-end
    }
    epochs = {"leaf": {"epoch_s": 1.4, "peak_rss_mb": 3000.0}}
    checks = {c["name"]: c["met"] for c in target_checks(fronts, epochs)}
    assert checks == {
        "LEAF epoch + validation, s": True,
        "slowest other front-end's training cost / LEAF's fwd+bwd (sincnet)": False,  # 3.1x
        "peak RSS of the LEAF epoch process, MB": False,
    }
