"""Tests for the sweep comparison figure and its atomic PNG writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from strf_runner.analysis.sweep_figure import comparison_figure
from strf_runner.atomic import save_png

BASE = "frontend=native model=linear"
LEAF = "frontend=leaf model=linear"
MEL = "frontend=mel model=linear"
ARMS = [BASE, LEAF, MEL]
NEURONS = [f"n{k:02d}" for k in range(20)]
NAN_AT = {BASE: {"n03", "n11"}, LEAF: {"n05"}, MEL: {"n03", "n17"}}


def make_per_neuron() -> pd.DataFrame:
    """3 arms x 20 neurons, a few NaNs; the baseline's rows come in reversed neuron order."""
    rng = np.random.default_rng(1)
    rows = []
    for shift, arm in enumerate(ARMS):
        neurons = NEURONS[::-1] if arm == BASE else NEURONS
        for neuron in neurons:
            value = np.nan if neuron in NAN_AT[arm] else 0.3 + 0.05 * shift + 0.1 * rng.standard_normal()
            rows.append({"arm": arm, "neuron": neuron, "cc_norm": value})
    return pd.DataFrame(rows)


def make_arms() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arm": ARMS,
            "n_params": [1200, 5400, 1500],
            "mean_cc_norm": [0.30, 0.35, 0.40],
            "sd_cc_norm": [0.02, np.nan, 0.01],
        }
    )


BASELINES = {arm: BASE for arm in ARMS}


def test_axes_count_with_and_without_arms():
    per_neuron = make_per_neuron()
    fig = comparison_figure(per_neuron, BASELINES, make_arms())
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    assert len(comparison_figure(per_neuron, BASELINES).axes) == 3
    assert len(comparison_figure(per_neuron, {LEAF: BASE}).axes) == 2
    assert len(comparison_figure(per_neuron, {}).axes) == 1


def test_box_panel_has_one_box_per_arm_in_order():
    box = comparison_figure(make_per_neuron(), BASELINES, make_arms()).axes[0]
    labels = [t.get_text().replace("\n", " ") for t in box.get_xticklabels()]
    assert labels == ARMS
    assert box.get_ylabel() == "test cc_norm"
    strips = box.collections
    assert len(strips) == len(ARMS)
    for arm, strip in zip(ARMS, strips):
        assert len(strip.get_offsets()) == len(NEURONS) - len(NAN_AT[arm])


def test_box_strip_jitter_is_deterministic():
    first = comparison_figure(make_per_neuron(), BASELINES).axes[0].collections[1].get_offsets()
    second = comparison_figure(make_per_neuron(), BASELINES).axes[0].collections[1].get_offsets()
    np.testing.assert_array_equal(first, second)


def test_scatter_panels_pair_neurons_by_id():
    per_neuron = make_per_neuron()
    value = {(row.arm, row.neuron): row.cc_norm for row in per_neuron.itertuples()}
    fig = comparison_figure(per_neuron, BASELINES, make_arms())
    for ax, arm in zip(fig.axes[1:3], [LEAF, MEL]):
        both = [n for n in NEURONS if n not in NAN_AT[BASE] | NAN_AT[arm]]
        x = np.array([value[BASE, n] for n in both])
        y = np.array([value[arm, n] for n in both])
        offsets = np.asarray(ax.collections[0].get_offsets())
        np.testing.assert_allclose(offsets, np.column_stack([x, y]))
        assert ax.get_title().replace("\n", " ") == f"{arm} vs {BASE}"
        assert ax.get_xlim() == ax.get_ylim()
        diff = np.mean(y - x)
        above = 100 * np.mean(y > x)
        texts = " ".join(t.get_text() for t in ax.texts)
        assert f"{diff:+.3f}" in texts and f"{above:.0f}%" in texts


def test_scatter_panels_say_what_their_ci_resampled():
    comparisons = pd.DataFrame({"arm": [LEAF, MEL], "ci_low": [0.01, -0.02], "ci_high": [0.09, 0.03],
                                "ci_resamples": ["stimuli and neurons", "neurons only"]})
    fig = comparison_figure(make_per_neuron(), BASELINES, comparisons=comparisons)
    texts = [" ".join(t.get_text() for t in ax.texts) for ax in fig.axes[1:3]]
    assert "95% CI [+0.010, +0.090], resampling stimuli and neurons" in texts[0]
    assert "95% CI [-0.020, +0.030], resampling neurons only" in texts[1]
    plain = comparison_figure(make_per_neuron(), BASELINES)
    assert all("CI" not in t.get_text() for ax in plain.axes[1:3] for t in ax.texts)


def test_capacity_panel_is_log_with_one_point_per_arm():
    capacity = comparison_figure(make_per_neuron(), BASELINES, make_arms()).axes[3]
    assert capacity.get_xscale() == "log"
    points = np.asarray(capacity.collections[-1].get_offsets())
    np.testing.assert_allclose(points, make_arms()[["n_params", "mean_cc_norm"]].to_numpy())
    assert [t.get_text().replace("\n", " ") for t in capacity.texts] == ARMS


def test_save_png_writes_atomically(tmp_path):
    fig = comparison_figure(make_per_neuron(), BASELINES, make_arms())
    target = tmp_path / "sweep.png"
    assert save_png(fig, target, dpi=40) == target
    assert target.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.png"]


@pytest.mark.parametrize("column", ["arm", "neuron", "cc_norm"])
def test_missing_column_raises(column):
    with pytest.raises(ValueError, match=rf"lacks required column\(s\): {column} "):
        comparison_figure(make_per_neuron().drop(columns=column), BASELINES)


def test_missing_arms_column_raises():
    with pytest.raises(ValueError, match=r"arms lacks required column\(s\): n_params "):
        comparison_figure(make_per_neuron(), BASELINES, make_arms().drop(columns="n_params"))


def test_empty_table_raises():
    with pytest.raises(ValueError, match="empty"):
        comparison_figure(make_per_neuron().iloc[:0], BASELINES)


def test_unknown_baseline_raises():
    with pytest.raises(ValueError, match="frontend=gone"):
        comparison_figure(make_per_neuron(), {LEAF: "frontend=gone"})


def test_duplicate_rows_raise():
    per_neuron = make_per_neuron()
    with pytest.raises(ValueError, match="duplicate"):
        comparison_figure(pd.concat([per_neuron, per_neuron.iloc[:1]]), BASELINES)
