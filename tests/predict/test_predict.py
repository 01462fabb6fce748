"""strf-predict: any sound or dataset stimulus through a finished run's model, and init_from; an edited
run dir refused in one line, outputs written whole and never replaced unasked."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile
import torch
from matplotlib.figure import Figure
from tests.helpers.runs import tiny_config

from strf_runner.cli import predict_main
from strf_runner.compose import compose_config
from strf_runner.config import FrontendConfig
from strf_runner.data.cochleagram import native_cochleagram
from strf_runner.data.schema import read_dataset
from strf_runner.errors import AudioError, ConfigError, ResultsError, StrfRunnerWarning
from strf_runner.experiment import run_experiment, warm_start
from strf_runner.frontends.gammatone import GammatoneFrontendConfig
from strf_runner.frontends.leaf import LeafFrontendConfig
from strf_runner.frontends.mel import MelFrontendConfig
from strf_runner.frontends.native_pcen import NativePcenFrontendConfig
from strf_runner.frontends.sincnet import SincNetFrontendConfig
from strf_runner.models.dnet import DNetModelConfig
from strf_runner.models.linear import LinearModelConfig
from strf_runner.models.ln import LNModelConfig
from strf_runner.models.nrf import NRFModelConfig
from strf_runner.models.registry import READOUTS
from strf_runner.models.statenet import StateNetModelConfig
from strf_runner.predict.audio import grid_chunks, open_sound, resample_margin, resample_ratio, resampled_blocks
from strf_runner.predict.outputs import write_prediction
from strf_runner.predict.predictor import channel_frequencies, cochleagram_chunks, predict_sound, predict_stimulus
from strf_runner.results.load import load_run

# every registered readout behind the native spectrogram (each front-end is run through strf-predict by
# the contract bank, tests/frontends/test_contract.py), plus front-end x readout pairs whose state or
# chunk context interact
CASES = {
    **{f"native-{name}": (FrontendConfig(name="native"), compose_config([f"model={name}"]).model)
       for name in READOUTS.names()},
    "native_pcen-linear": (NativePcenFrontendConfig(), LinearModelConfig()),
    "mel-linear": (MelFrontendConfig(n_filters=8), LinearModelConfig()),
    "sincnet-nrf": (SincNetFrontendConfig(n_filters=8, envelope=True), NRFModelConfig()),
    "sincnet-ln": (SincNetFrontendConfig(n_filters=8), LNModelConfig()),  # strided (the default)
    "gammatone-dnet": (GammatoneFrontendConfig(n_filters=8), DNetModelConfig()),
    "leaf-statenet": (LeafFrontendConfig(n_filters=8), StateNetModelConfig()),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny finished run (1 epoch on synth_tiny) per front-end and per readout."""
    tmp = tmp_path_factory.mktemp("predict")
    out = {}
    for name, (frontend, model) in CASES.items():
        cfg = tiny_config(tmp, max_epochs=1)
        cfg.frontend, cfg.model = frontend, model
        out[name] = run_experiment(cfg, tmp / name).run_dir
    return out


def saved_test_predictions(run_dir: Path) -> tuple[np.ndarray, list[int]]:
    saved = np.load(run_dir / "test_predictions.npz")
    return saved["predictions"], saved["stimuli"].tolist()


@pytest.mark.parametrize("case", CASES)
def test_dataset_stimulus_equals_the_runs_own_test_predictions(runs, case):
    run = load_run(runs[case])
    saved, stimuli = saved_test_predictions(run.path)
    for k, index in enumerate(stimuli):
        pred = predict_stimulus(run, index, chunk_s=0.13)  # 26-bin chunks: the state is carried 7 times
        n_frames = pred.rates.shape[1]
        assert pred.neuron_ids == run.neuron_ids and pred.meta["split"] == "test"
        np.testing.assert_allclose(pred.rates, saved[k][:, :n_frames], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_a_sound_file_of_a_stimulus_predicts_like_the_stimulus(runs, case, tmp_path):
    """The stimulus's waveform written as a float WAV at the dataset's rate: a waveform model reads it
    unchanged; a spectrogram model gets the native cochleagram recomputed from it, which is how the
    dataset made its spectrogram view, so both routes agree."""
    run = load_run(runs[case])
    content = read_dataset(run.summary.dataset.path, views=("waveform",))
    index = run.summary.dataset.splits["test"][0]
    wav = tmp_path / "stim.wav"
    soundfile.write(wav, content.stimuli[index].waveform, int(content.audio_fs), subtype="FLOAT")
    from_file = predict_sound(run, open_sound(wav), chunk_s=0.3)
    from_dataset = predict_stimulus(run, index)
    np.testing.assert_allclose(from_file.rates, from_dataset.rates, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(from_file.spectrogram, from_dataset.spectrogram, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["leaf-statenet", "native-dnet", "gammatone-dnet"])
def test_chunked_equals_unchunked(runs, case, tmp_path):
    run = load_run(runs[case])
    rng = np.random.default_rng(0)
    stereo = 0.1 * rng.standard_normal((int(44100 * 3.1), 2))
    stereo[:4410] = 0  # a silent start
    soundfile.write(tmp_path / "long.wav", stereo, 44100, subtype="FLOAT")
    sound = open_sound(tmp_path / "long.wav")
    whole = predict_sound(run, sound, chunk_s=100.0)
    for chunk_s in (0.005, 0.27, 1.0):
        chunked = predict_sound(run, sound, chunk_s=chunk_s)
        np.testing.assert_allclose(chunked.rates, whole.rates, rtol=1e-4, atol=1e-5)
    assert whole.rates.shape == (16, -(-round(3.1 * 44100 * 48000 / 44100) // 240))


def test_cochleagram_chunks_concatenate_to_the_whole():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(57 * 240)
    whole = native_cochleagram(audio, 48000.0, 5.0)
    for frames in (1, 4, 56, 100):
        chunks = (audio[s : s + frames * 240] for s in range(0, len(audio), frames * 240))
        parts = list(cochleagram_chunks(chunks, 48000.0, 5.0, 34))
        assert len(parts) == -(-57 // frames)
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def _blocks(x: np.ndarray, size: int):
    return (x[s : s + size] for s in range(0, len(x), size))


@pytest.mark.parametrize("fs, target", [(44100, 48000), (24000, 48000), (192000, 48000), (48828.125, 48000), (8000, 48000), (48000, 48000)])
def test_block_resampling_equals_one_resample_poly_call(fs, target):
    """Each block resampled with its margins gives exactly the whole-file resample_poly output."""
    ratio = resample_ratio(fs, target)
    up, down = ratio.numerator, ratio.denominator
    rng = np.random.default_rng(4)
    x = rng.standard_normal(int(fs * 0.37) + 7)
    whole = scipy.signal.resample_poly(x, up, down)[: round(len(x) * ratio)] if up != down else x
    margin = resample_margin(ratio)
    for size in (margin, 3 * margin + down, 50 * down):
        size = -(-size // down) * down
        got = np.concatenate(list(resampled_blocks(_blocks(x, size), ratio, len(x))))
        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-12)


def test_sound_reading_mixes_to_mono_resamples_and_pads_to_whole_bins(tmp_path):
    rng = np.random.default_rng(2)
    mono = 0.2 * rng.standard_normal(2401)
    soundfile.write(tmp_path / "stereo.flac", np.stack([mono, -mono + 0.1], 1), 24000)
    sound = open_sound(tmp_path / "stereo.flac")
    assert sound.channels == 2 and sound.fs == 24000 and sound.frames == 2401
    stored = soundfile.read(tmp_path / "stereo.flac")[0].mean(axis=1)  # 16-bit FLAC: the file's own values
    np.testing.assert_allclose(stored, 0.05, atol=1e-4)
    for frames in (1, 3, 100):
        chunks = list(grid_chunks(sound, 48000.0, 240, frames))
        assert all(len(c) == frames * 240 for c in chunks[:-1]) and chunks[-1].dtype == np.float32
        grid = np.concatenate(chunks)
        assert len(grid) == 21 * 240  # 4802 samples at 48 kHz -> 21 bins, the last completed with zeros
        reference = scipy.signal.resample_poly(stored, 2, 1)
        np.testing.assert_allclose(grid[:4802], reference, atol=1e-6)
        assert not grid[4802:].any()
    # a band-limited tone keeps its amplitude and phase through 24 -> 48 kHz
    t = np.arange(24000) / 24000
    soundfile.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 24000, subtype="DOUBLE")
    up = np.concatenate(list(grid_chunks(open_sound(tmp_path / "tone.wav"), 48000.0, 240, 7)))
    t48 = np.arange(48000) / 48000
    np.testing.assert_allclose(up[2000:46000], 0.5 * np.sin(2 * np.pi * 1000 * t48[2000:46000]), atol=2e-3)


@pytest.mark.parametrize("case", ["leaf-statenet", "native-linear"])
def test_silence_and_sounds_shorter_than_the_strf_window(runs, case, tmp_path):
    run = load_run(runs[case])
    for name, n in (("click", 3), ("silence", 48000)):
        soundfile.write(tmp_path / f"{name}.wav", np.zeros(n) if name == "silence" else np.ones(n) * 0.5, 48000)
        pred = predict_sound(run, open_sound(tmp_path / f"{name}.wav"))
        assert pred.rates.shape == (16, max(1, n // 240)) and np.isfinite(pred.rates).all()


@pytest.mark.e2e
def test_strf_predict_cli_in_a_new_process(runs, tmp_path):
    """End to end as a user runs it: the rates a new process writes for a test stimulus are the ones
    the training process saved; a sound file gives the table, the rates with ids and the figure."""
    run_dir = runs["leaf-statenet"]
    saved, stimuli = saved_test_predictions(run_dir)
    rng = np.random.default_rng(3)
    soundfile.write(tmp_path / "call.wav", 0.1 * rng.standard_normal(30000), 44100)
    exe = shutil.which("strf-predict")
    cmd = [exe] if exe else [sys.executable, "-c", "from strf_runner.cli import predict_main; predict_main()"]
    out = tmp_path / "preds"
    args = [str(run_dir), "--dataset-stimulus", str(stimuli[0]), "--wav", str(tmp_path / "call.wav"), "--out", str(out)]
    done = subprocess.run(cmd + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "call.wav" in done.stdout and str(out) in done.stdout
    [stim_h5] = out.glob("stimulus*.h5")
    with h5py.File(stim_h5) as f:
        np.testing.assert_allclose(f["rates"][()], saved[0][:, : f["rates"].shape[1]], rtol=1e-4, atol=1e-5)
        assert [s.decode() for s in f["neuron_ids"][()]] == load_run(run_dir).neuron_ids
        assert f.attrs["run"] == str(run_dir) and f.attrs["dt_ms"] == 5.0
    with h5py.File(out / "call.h5") as f:
        n_bins = -(-round(30000 * 48000 / 44100) // 240)
        assert f["rates"].shape == (16, n_bins) and f["spectrogram"].shape == (8, n_bins)
        np.testing.assert_allclose(f["time_s"][:3], [0, 0.005, 0.01])
        assert f.attrs["input_fs"] == 44100 and f.attrs["source"] == str(tmp_path / "call.wav")
    table = pd.read_csv(out / "call.csv")
    assert list(table.columns) == ["neuron_id", "mean_rate", "sd_rate", "peak_rate", "peak_time_s"] and len(table) == 16
    assert (out / "call.png").stat().st_size > 10_000

    done = subprocess.run(cmd + [str(run_dir), "--wav", str(tmp_path / "call.wav"), "--format", "npz", "--no-plot",
                                 "--out", str(tmp_path / "npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    npz = np.load(tmp_path / "npz" / "call.npz")
    with h5py.File(out / "call.h5") as f:
        np.testing.assert_array_equal(npz["rates"], f["rates"][()])
    assert json.loads(str(npz["meta"]))["input_fs"] == 44100 and not (tmp_path / "npz" / "call.png").exists()


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    code = "import sys; from strf_runner.cli import predict_main; predict_main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_clear_errors_for_bad_runs_and_bad_sounds(runs, tmp_path):
    run_dir = runs["native-linear"]
    (tmp_path / "noise.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 1)), 48000)
    soundfile.write(tmp_path / "ok.wav", np.zeros(480), 48000)
    soundfile.write(tmp_path / "long.flac", 0.1 * np.random.default_rng(5).standard_normal(96000), 48000)
    whole = (tmp_path / "long.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(whole[: len(whole) // 2])
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "summary.json").unlink()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run_dir, corrupt)
    (corrupt / "best.pt").write_bytes(b"\x80\x04 not a checkpoint")
    cases = {
        "does not exist": [str(run_dir), "--wav", str(tmp_path / "missing.wav")],
        f"{tmp_path} is a directory, not a sound file": [str(run_dir), "--wav", str(tmp_path)],
        "cannot read": [str(run_dir), "--wav", str(tmp_path / "noise.wav")],
        "no samples": [str(run_dir), "--wav", str(tmp_path / "empty.wav")],
        "truncated.flac": [str(run_dir), "--wav", str(tmp_path / "truncated.flac")],
        "not a finished run": [str(unfinished), "--wav", str(tmp_path / "ok.wav")],
        "corrupt": [str(corrupt), "--wav", str(tmp_path / "ok.wav")],
        "has stimuli 0..5": [str(run_dir), "--dataset-stimulus", "6"],
        "chunk length must be > 0": [str(run_dir), "--wav", str(tmp_path / "ok.wav"), "--chunk-s", "0"],
    }
    for needle, args in cases.items():
        done = _cli(args)
        assert done.returncode == 2, (needle, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strf-predict: error: ") and needle in lines[0], done.stderr
    assert _cli([str(run_dir)]).returncode == 2  # neither --wav nor --dataset-stimulus: usage error


def _edited_copy(run_dir: Path, dest: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of ``run_dir`` at ``dest`` with ``edit`` applied to its model.json."""
    shutil.copytree(run_dir, dest)
    info = json.loads((dest / "model.json").read_text())
    edit(info)
    (dest / "model.json").write_text(json.dumps(info))
    return dest


@pytest.mark.parametrize("needle, edit", [
    ("key 'view' is missing", lambda d: d.pop("view")),
    ("key 'neuron_ids' lists 15 neurons, but the model predicts 16",
     lambda d: d.update(neuron_ids=d["neuron_ids"][1:])),
], ids=["no view", "short neuron_ids"])
@pytest.mark.e2e
def test_an_edited_model_json_is_one_line_and_nothing_is_written(runs, tmp_path, needle, edit):
    """Without 'view' strf-predict stopped with a KeyError traceback; with one id too few it wrote the
    .h5 and then stopped with a ValueError. Both are now refused by load_run before any output."""
    soundfile.write(tmp_path / "ok.wav", np.zeros(480), 48000)
    run = _edited_copy(runs["native-linear"], tmp_path / "run", edit)
    out = tmp_path / "out"
    done = _cli([str(run), "--wav", str(tmp_path / "ok.wav"), "--dataset-stimulus", "0", "--out", str(out)])
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"strf-predict: error: {run / 'model.json'}: {needle}"), line
    assert not out.exists()


def test_model_json_that_disagrees_with_the_dataset_is_refused(runs, tmp_path):
    """A spectrogram model fixes neither its bin width nor its audio rate: the run's dataset tells."""
    edits = {
        "key 'dt_ms' is 10 ms, but the run's dataset": lambda d: d.update(dt_ms=10.0, audio_fs=None, hop=None),
        "key 'audio_fs' is 24000 Hz, but the run's dataset": lambda d: d.update(audio_fs=24000.0, hop=120),
    }
    for k, (needle, edit) in enumerate(edits.items()):
        run = load_run(_edited_copy(runs["native-linear"], tmp_path / f"run{k}", edit))
        with pytest.raises(ResultsError, match=f"model.json: {needle}"):
            predict_stimulus(run, 0)


@pytest.mark.e2e
def test_existing_outputs_are_refused_unless_overwrite(runs, tmp_path, capsys):
    soundfile.write(tmp_path / "call.wav", 0.1 * np.random.default_rng(8).standard_normal(4800), 48000)
    out = tmp_path / "preds"
    out.mkdir()
    (out / "call.csv").write_text("an earlier table\n")
    args = [str(runs["native-linear"]), "--wav", str(tmp_path / "call.wav"), "--out", str(out), "--no-plot"]
    done = _cli(args)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"strf-predict: error: {out / 'call.csv'} already exists: add --overwrite to "
                                   "replace it, or choose another --out")
    assert [p.name for p in out.iterdir()] == ["call.csv"] and (out / "call.csv").read_text() == "an earlier table\n"
    done = _cli(args + ["--overwrite"])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["call.csv", "call.h5"]
    assert pd.read_csv(out / "call.csv").shape == (16, 5)
    with pytest.raises(SystemExit):
        predict_main(["--help"])
    assert "--overwrite" in capsys.readouterr().out


def _full_disk(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_prediction_is_written_whole_or_not_at_all(runs, tmp_path, monkeypatch):
    """The figure, written last, fails (a full disk): neither the rates nor the table are left behind,
    and with overwrite the earlier files stay as they were."""
    run = load_run(runs["native-linear"])
    pred = predict_stimulus(run, 0)
    monkeypatch.setattr(Figure, "savefig", _full_disk)
    with pytest.raises(OSError, match=r"No space left on device: '.*\.png'"):
        write_prediction(pred, tmp_path / "new", run.path)
    assert list((tmp_path / "new").iterdir()) == []
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for suffix in ("h5", "csv", "png"):
        (earlier / f"{pred.name}.{suffix}").write_text("earlier")
    with pytest.raises(OSError, match="No space left on device"):
        write_prediction(pred, earlier, run.path, overwrite=True)
    assert sorted(p.read_text() for p in earlier.iterdir()) == ["earlier"] * 3


def _band_warnings(run_dir: Path, wav: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_sound(load_run(run_dir), open_sound(wav))
    return [str(w.message) for w in caught if issubclass(w.category, StrfRunnerWarning)]


def test_a_sound_without_the_models_upper_bands_warns_once_naming_them(runs, tmp_path):
    """The native cochleagram's 34 bands (500 Hz x 2^(k/6), up to 22.6 kHz): an 8 kHz file has
    nothing above 4 kHz, a 44.1 kHz one nothing at the top band; a 48 kHz one covers them all."""
    for fs in (8000, 44100, 48000):
        soundfile.write(tmp_path / f"call{fs}.wav", 0.1 * np.random.default_rng(7).standard_normal(fs // 10), fs)
    assert _band_warnings(runs["native-linear"], tmp_path / "call8000.wav") == [
        f"{tmp_path / 'call8000.wav'} is sampled at 8000 Hz: its content ends at 4000 Hz, so 15 of 34 channels "
        "(centres 4.5-22.6 kHz) get little or no input from it"
    ]
    [line] = _band_warnings(runs["native-linear"], tmp_path / "call44100.wav")
    assert line.endswith("at 44100 Hz: its content ends at 22050 Hz, so 1 of 34 channels (centre 22.6 kHz) "
                         "get little or no input from it")
    assert _band_warnings(runs["native-linear"], tmp_path / "call48000.wav") == []
    freqs, _ = channel_frequencies(load_run(runs["leaf-statenet"]))  # a learned front-end: its current centres
    [line] = _band_warnings(runs["leaf-statenet"], tmp_path / "call8000.wav")
    assert f"so {(freqs > 4000).sum()} of 8 channels" in line


def test_a_spectrogram_that_a_sound_cannot_produce_is_refused(runs, tmp_path):
    other = tmp_path / "custom_view"
    shutil.copytree(runs["native-linear"], other)
    summary = json.loads((other / "summary.json").read_text())
    summary["dataset"]["native_source"] = None  # e.g. a user's HDF5 dataset with its own spectrograms
    (other / "summary.json").write_text(json.dumps(summary))
    soundfile.write(tmp_path / "ok.wav", np.zeros(480), 48000)
    with pytest.raises(AudioError, match="cannot be made from a sound file.*--dataset-stimulus"):
        predict_sound(load_run(other), open_sound(tmp_path / "ok.wav"))
    info = json.loads((other / "model.json").read_text())
    info["spectrogram_freqs_hz"] = [100.0 * (k + 1) for k in range(34)]
    (other / "model.json").write_text(json.dumps(info))
    summary["dataset"]["native_source"] = "recomputed"
    (other / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(AudioError, match="bands are not the native cochleagram's"):
        predict_sound(load_run(other), open_sound(tmp_path / "ok.wav"))
    assert predict_stimulus(load_run(other), 0).rates.shape == (16, 200)  # its own stimuli still work


def test_init_from_starts_from_the_finished_runs_weights(runs, tmp_path):
    source = load_run(runs["leaf-statenet"])
    cfg = tiny_config(tmp_path, max_epochs=1)
    cfg.frontend, cfg.model = CASES["leaf-statenet"]
    cfg.init_from = str(source.path)
    from strf_runner.data.loading import load_data
    from strf_runner.models.encoding import build_model, model_info

    train = load_data(cfg.dataset, "waveform")[2]["train"]
    torch.manual_seed(123)
    model = build_model(cfg.frontend, cfg.model, train)
    record = warm_start(model, model_info(model, train), cfg.init_from)
    assert record["config_hash"] == source.summary.config_hash
    for key, value in source.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    result = run_experiment(cfg, tmp_path / "finetuned")
    assert result.summary.init_from["path"] == str(source.path.resolve())

    cfg.model = LinearModelConfig()
    with pytest.raises(ConfigError, match=r"init_from=.*differs from this one in readout\.name: 'statenet' there, 'linear' here"):
        run_experiment(cfg, tmp_path / "other_model")
    cfg.model = StateNetModelConfig()
    cfg.dataset.neurons = list(range(15, -1, -1))
    with pytest.raises(ConfigError, match="16 neurons are not this run's 16 in the same order"):
        run_experiment(cfg, tmp_path / "other_neurons")
    cfg.dataset.neurons = "all"
    cfg.init_from = str(tmp_path / "nowhere")
    with pytest.raises(ResultsError, match="not a finished run"):
        run_experiment(cfg, tmp_path / "no_source")


def test_long_predictions_are_drawn_as_means_over_groups_of_bins():
    from strf_runner.predict.outputs import MAX_FIGURE_BINS, _bin_means, prediction_figure
    from strf_runner.predict.predictor import Prediction

    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 10))
    np.testing.assert_allclose(_bin_means(x, 4), np.stack([x[:, 0:4].mean(1), x[:, 4:8].mean(1), x[:, 8:].mean(1)], 1))
    n = 2 * MAX_FIGURE_BINS + 1  # 3 bins a column
    pred = Prediction("long", "noise", rng.random((4, n), dtype=np.float32), list("abcd"), 5.0,
                      rng.standard_normal((6, n)), np.geomspace(500, 8000, 6), "band (Hz)")
    fig = prediction_figure(pred)
    top, middle, bottom = fig.axes[:3]  # then the two colour bars
    assert top.images[0].get_array().shape == (6, -(-n // 3))
    assert middle.images[0].get_array().shape == (4, -(-n // 3))
    assert bottom.get_xlim()[1] == pytest.approx(n * 0.005) and "means over 15 ms" in fig._suptitle.get_text()
