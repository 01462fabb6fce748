"""Property-based (hypothesis) fuzzing of collate: items of unequal lengths and repeat counts."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strf_runner import metrics as M
from strf_runner.data.collate import collate
from strf_runner.data.dataset import Item

_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def item_lists(draw):
    """1-5 items of one view, one N; T, R per item random; stim length T (spectrogram) or T * hop."""
    view = draw(st.sampled_from(["spectrogram", "waveform"]))
    n_items = draw(st.integers(1, 5))
    N = draw(st.integers(1, 4))
    F = draw(st.integers(1, 6))
    hop = draw(st.integers(1, 5))
    equal = draw(st.booleans())  # equal shapes take collate's no-padding path
    shapes = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 40)), min_size=n_items, max_size=n_items))
    if equal:
        shapes = [shapes[0]] * n_items
    nan_frac = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    items = []
    for i, (R, T) in enumerate(shapes):
        stim = rng.normal(size=(1, F, T) if view == "spectrogram" else (1, T * hop)).astype(np.float32)
        resp = rng.poisson(2.0, size=(N, R, T)).astype(np.float32)
        resp[rng.random(resp.shape) < nan_frac] = np.nan
        responses = torch.from_numpy(resp)
        items.append(
            Item(
                stim=torch.from_numpy(stim),
                responses=responses,
                psth=torch.nanmean(responses, dim=1, keepdim=True),  # as NeuralDataset builds it
                meta={"index": i, "name": f"s{i}", "type": "tone"},
            )
        )
    return items


@_fuzz
@given(item_lists())
def test_fuzz_collate_pads_and_preserves(items):
    before = [(it.stim.clone(), it.responses.clone(), it.psth.clone()) for it in items]
    batch = collate(items)
    B = len(items)
    N = items[0].responses.shape[0]
    R_max = max(it.responses.shape[1] for it in items)
    T_max = max(it.responses.shape[2] for it in items)
    S_max = [max(it.stim.shape[d] for it in items) for d in range(items[0].stim.dim())]

    assert batch["stims"].shape == (B, *S_max)
    assert batch["responses"].shape == (B, N, R_max, T_max)
    assert batch["psth"].shape == (B, N, 1, T_max)
    assert batch["valid_mask"].shape == (B, N, R_max, T_max) and batch["valid_mask"].dtype == torch.bool
    for key in ("stims", "responses", "psth"):
        assert batch[key].dtype == torch.float32, key
    assert batch["stim_metas"] == [it.meta for it in items]

    # stimuli are zero-padded, never NaN; values kept in the top-left corner
    assert not torch.isnan(batch["stims"]).any()
    stim_pad = torch.ones_like(batch["stims"], dtype=torch.bool)
    resp_pad = torch.ones_like(batch["responses"], dtype=torch.bool)
    psth_pad = torch.ones_like(batch["psth"], dtype=torch.bool)
    for b, it in enumerate(items):
        corner = (b, *(slice(0, s) for s in it.stim.shape))
        torch.testing.assert_close(batch["stims"][corner], it.stim, rtol=0, atol=0)
        stim_pad[corner] = False
        corner = (b, *(slice(0, s) for s in it.responses.shape))
        torch.testing.assert_close(batch["responses"][corner], it.responses, rtol=0, atol=0, equal_nan=True)
        resp_pad[corner] = False
        corner = (b, *(slice(0, s) for s in it.psth.shape))
        torch.testing.assert_close(batch["psth"][corner], it.psth, rtol=0, atol=0, equal_nan=True)
        psth_pad[corner] = False
    assert (batch["stims"][stim_pad] == 0).all()
    assert torch.isnan(batch["responses"][resp_pad]).all()
    assert torch.isnan(batch["psth"][psth_pad]).all()

    # NaN is the only mask
    assert torch.equal(batch["valid_mask"], ~torch.isnan(batch["responses"]))
    # NaN padding along R and T leaves the PSTH what the metrics compute from the padded responses
    torch.testing.assert_close(batch["psth"], M.psth(batch["responses"]), rtol=1e-6, atol=1e-6, equal_nan=True)

    # the items themselves are untouched
    for (stim, resp, ps), it in zip(before, items):
        assert torch.equal(stim, it.stim)
        torch.testing.assert_close(it.responses, resp, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(it.psth, ps, rtol=0, atol=0, equal_nan=True)
