"""strf-analyze on real (tiny) runs: every figure, table and WAV of a waveform and a spectrogram model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile
from tests.helpers.runs import tiny_config

from strf_runner.analysis.run_analysis import analyze_run
from strf_runner.cli import analyze_main
from strf_runner.config import FrontendConfig
from strf_runner.errors import ResultsError
from strf_runner.experiment import run_experiment
from strf_runner.frontends.leaf import LeafFrontendConfig
from strf_runner.models.statenet import StateNetModelConfig

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def leaf_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leafrun")
    cfg = tiny_config(tmp, max_epochs=2)
    cfg.frontend = LeafFrontendConfig(n_filters=8)
    return run_experiment(cfg, tmp / "run").run_dir


def test_waveform_run_gets_every_figure_table_and_wav(leaf_run):
    summary_before = (leaf_run / "summary.json").read_bytes()
    index = analyze_run(leaf_run, n_wav=2)
    out = leaf_run / "analysis"
    for name in ("filterbank", "spectrograms", "strfs", "strf_gradmaps", "receptive_field", "traces"):
        assert (out / f"{name}.png").read_bytes()[:4] == PNG, name
    for name in ("filterbank", "spectrogram_learned", "spectrogram_native", "strfs", "gradmaps", "traces"):
        assert len(pd.read_csv(out / f"{name}.csv")) > 0, name
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert len(wavs) == 4 and all(w.startswith(("rf_", "stim_")) for w in wavs)
    rate, audio = wavfile.read(out / wavs[0])
    assert rate == 48000 and audio.dtype == np.int16 and np.abs(audio).max() > 0
    spans = pd.read_csv(out / "gradmaps.csv")
    assert len(spans) == 16 and (spans["span_99_ms"].dropna() > 0).all()
    written = json.loads((out / "index.json").read_text())
    assert written["files"] == index["files"] and written["files"]["traces"] == "traces.png"
    assert 0 <= written["mean_drift"] < 1
    assert (leaf_run / "summary.json").read_bytes() == summary_before  # the run's own files are never rewritten
    truth = pd.read_csv(out / "strfs.csv")
    assert list(truth.columns[:2]) == ["id", "cc_norm"] and len(truth) == 16


def test_spectrogram_model_without_strf_weights(tmp_path):
    cfg = tiny_config(tmp_path, max_epochs=1)
    cfg.frontend = FrontendConfig(name="native")
    cfg.model = StateNetModelConfig()
    run = run_experiment(cfg, tmp_path / "run").run_dir
    index = analyze_run(run)
    files = set(index["files"])
    assert {"strfs", "strf_gradmaps", "traces", "spectrograms"} <= files  # STRFs from gradient maps
    assert not any(f.startswith(("rf_", "filterbank")) for f in files)  # no waveform, no filters


def test_errors_name_the_problem(leaf_run, tmp_path, capsys):
    with pytest.raises(ResultsError, match="not a finished run"):
        analyze_run(tmp_path)
    with pytest.raises(ResultsError, match="stimulus 99 is not in the dataset"):
        analyze_run(leaf_run, stimulus=99)
    copy = tmp_path / "copy"
    shutil.copytree(leaf_run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["dataset"]["sha256"] = "0" * 64
    (copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit) as err:
        analyze_main([str(copy)])
    assert err.value.code == 2 and "changed since the run" in capsys.readouterr().err


def test_ids_become_safe_file_names_and_short_titles():
    from strf_runner.analysis.run_analysis import _file_safe
    from strf_runner.results.tables import short_id as _label

    assert _file_safe("dataAC/E1P02.L.SH.En.C/cluster.01.data") == "dataAC_E1P02.L.SH.En.C_cluster.01.data"
    assert _label("dataAC/E1P02.L.SH.En.C/cluster.01.data") == "…SH.En.C/cluster.01.data"
    assert len(_label("x" * 50)) == 24 and _label("n001") == "n001"
