"""The contract every registered front-end keeps, checked on all of them (new ones included): shapes,
grid errors, eval determinism, gradients, causality (perturbation and Jacobian), strf-predict and
strf-analyze on a finished run of it. Streaming is checked over the registry in tests/test_stream.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from strf_runner.analysis.run_analysis import analyze_run
from strf_runner.compose import compose_config
from strf_runner.errors import ShapeError
from strf_runner.experiment import run_experiment
from strf_runner.frontends.registry import FRONTENDS, build_frontend, frontend_class
from strf_runner.predict.predictor import predict_stimulus
from strf_runner.results.load import load_run
from tests.helpers.runs import tiny_config

AUDIO_FS, HOP, N_BANDS, N_FRAMES = 48000.0, 240, 34, 8


def build(name: str):
    return build_frontend(name, **frontend_class(name).geometry(N_BANDS, AUDIO_FS, HOP)).double().eval()


def random_input(frontend, generator: torch.Generator) -> torch.Tensor:
    if frontend.view == "waveform":
        return 0.1 * torch.randn(2, 1, N_FRAMES * HOP, generator=generator, dtype=torch.float64)
    return torch.randn(2, 1, N_BANDS, N_FRAMES, generator=generator, dtype=torch.float64) * 20 - 30


def samples_per_frame(frontend) -> int:
    return HOP if frontend.view == "waveform" else 1


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_shape_and_declared_view(name):
    frontend = build(name)
    assert frontend.view in ("waveform", "spectrogram")
    out = frontend(random_input(frontend, torch.Generator().manual_seed(0)))
    assert out.shape == (2, 1, frontend.out_channels, N_FRAMES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_perturbing_the_future_leaves_past_frames_unchanged(name):
    """Random input; for each t, replace everything after bin t with other random values: frames <= t
    must not change (float64; FFT filterbanks may differ by rounding only, ~1e-16 of the output)."""
    frontend = build(name)
    g = torch.Generator().manual_seed(1)
    x = random_input(frontend, g)
    out = frontend(x).detach()
    scale = out.abs().max()
    per = samples_per_frame(frontend)
    for t in range(N_FRAMES - 1):
        y = x.clone()
        y[..., (t + 1) * per :] = random_input(frontend, g)[..., (t + 1) * per :]
        changed = frontend(y).detach()
        assert (changed[..., : t + 1] - out[..., : t + 1]).abs().max() <= 1e-12 * scale, f"frame <= {t} saw the future"
        assert not torch.equal(changed[..., t + 1 :], out[..., t + 1 :]), "the perturbation must reach later frames"


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_wrong_rank_is_a_shape_error(name):
    frontend = build(name)
    with pytest.raises(ShapeError):
        frontend(torch.zeros(5, dtype=torch.float64))


def wrong_length_input(frontend) -> torch.Tensor:
    """A waveform that is not whole frames, or a spectrogram with one band too many."""
    if frontend.view == "waveform":
        return torch.zeros(2, 1, N_FRAMES * HOP + HOP // 2, dtype=torch.float64)
    return torch.zeros(2, 1, N_BANDS + 1, N_FRAMES, dtype=torch.float64)


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_input_off_the_grid_is_a_shape_error_naming_the_shape(name):
    frontend = build(name)
    x = wrong_length_input(frontend)
    with pytest.raises(ShapeError, match=str(x.shape[-1] if frontend.view == "waveform" else N_BANDS + 1)):
        frontend(x)


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_eval_mode_is_deterministic_and_batch_independent(name):
    """Twice the same input, the same output bit for bit; a clip gives the same output alone as in a batch."""
    frontend = build(name)
    x = random_input(frontend, torch.Generator().manual_seed(2))
    first, second = frontend(x), frontend(x.clone())
    assert torch.equal(first, second)
    torch.testing.assert_close(frontend(x[1:]), first[1:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_gradients_reach_every_trainable_parameter(name):
    """Every parameter with requires_grad gets a finite, non-zero gradient from a random loss, in
    training mode as a fit runs it; the frozen ones get none."""
    frontend = build(name).train()
    x = random_input(frontend, torch.Generator().manual_seed(3))
    weights = torch.randn(frontend.out_channels, N_FRAMES, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    loss = (frontend(x)[:, 0] * weights).sum()
    if not any(p.requires_grad for p in frontend.parameters()):
        assert not loss.requires_grad  # a fixed front-end: nothing to train, nothing recorded
        return
    loss.backward()
    for pname, p in frontend.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"
        else:
            assert p.grad is None, pname


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_jacobian_of_each_frame_is_zero_on_later_input(name):
    """d output[..., t] / d input is zero past the end of bin t, exactly up to FFT rounding (float64),
    and non-zero within it: causality proven by autograd, not only sampled by perturbation."""
    frontend = build(name)
    x = random_input(frontend, torch.Generator().manual_seed(5)).requires_grad_(True)
    out = frontend(x)
    per = samples_per_frame(frontend)
    for t in range(N_FRAMES):
        (grad,) = torch.autograd.grad(out[..., t].sum(), x, retain_graph=True)
        scale = grad.abs().max()
        assert scale > 0, f"frame {t} depends on no input"
        later = grad[..., (t + 1) * per :]
        assert later.numel() == 0 or later.abs().max() <= 1e-12 * scale, f"frame {t} depends on later input"


@pytest.fixture(scope="module")
def registry_runs(tmp_path_factory) -> dict[str, Path]:
    """One finished tiny run (1 epoch on synth_tiny cut to 4 neurons, Linear readout) per registered front-end, each from
    its own conf/frontend/<name>.yaml: a front-end without a YAML file of its name fails here."""
    tmp = tmp_path_factory.mktemp("registry")
    runs = {}
    for name in FRONTENDS.names():
        cfg = tiny_config(tmp, max_epochs=1, n_neurons=4)  # analysis takes waveform gradients per neuron
        cfg.frontend = compose_config([f"frontend={name}"]).frontend
        runs[name] = run_experiment(cfg, tmp / name).run_dir
    return runs


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_predict_replays_the_runs_own_test_predictions(registry_runs, name):
    run = load_run(registry_runs[name])
    saved = np.load(run.path / "test_predictions.npz")
    pred = predict_stimulus(run, int(saved["stimuli"][0]), chunk_s=0.13)  # in chunks, the state carried across
    n_frames = pred.rates.shape[1]
    np.testing.assert_allclose(pred.rates, saved["predictions"][0][:, :n_frames], rtol=1e-4, atol=1e-5)
    assert pred.channel_hz is not None and pred.channel_hz.shape == (run.model.frontend.out_channels,)


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_analyze_writes_what_the_frontend_declares(registry_runs, name):
    """A filterbank figure exactly when the front-end describes its filters; spectrogram-space STRFs
    exactly when it says what frequency its channels stand for, and a stated reason otherwise."""
    index = analyze_run(registry_runs[name], n_wav=1)
    frontend = load_run(registry_runs[name]).model.frontend
    files = index["files"]
    assert ("filterbank" in files) == (frontend.filterbank_info() is not None)
    assert {"traces", "traces_csv", "strf_gradmaps"} <= set(files)
    assert ("receptive_field" in files) == (frontend.view == "waveform")
    for stem, file in files.items():
        assert (registry_runs[name] / "analysis" / file).stat().st_size > 0, stem
