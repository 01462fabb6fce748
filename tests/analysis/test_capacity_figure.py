"""The capacity figure: a readouts x front-ends heatmap and the gains over the baseline, from a sweep's tables."""

from __future__ import annotations

import pandas as pd
import pytest

from strf_runner.analysis.capacity_figure import capacity_figure, has_capacity_grid


def tables(readouts=("linear", "statenet"), frontends=("native", "leaf", "mel")):
    arms = pd.DataFrame([{"arm": f"frontend={f} model={m}", "frontend": f, "model": m, "mean_cc_norm": 0.5 + 0.01 * k}
                         for k, (m, f) in enumerate((m, f) for m in readouts for f in frontends)])
    comparisons = pd.DataFrame([{"arm": f"frontend={f} model={m}", "baseline": f"frontend=native model={m}",
                                 "mean_diff": 0.1, "ci_low": 0.05, "ci_high": 0.15}
                                for m in readouts for f in frontends if f != "native"])
    return arms, comparisons


def test_heatmap_holds_every_pair_and_the_gains_every_comparison():
    arms, comparisons = tables()
    fig = capacity_figure(arms, comparisons)
    heat, gains = fig.axes[0], fig.axes[1]
    cells = sorted(float(t.get_text()) for t in heat.texts)
    assert cells == sorted(round(v, 3) for v in arms["mean_cc_norm"])
    assert [t.get_text() for t in heat.get_xticklabels()] == ["native", "leaf", "mel"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["linear", "statenet"]
    points = [line for line in gains.lines if line.get_marker() == "o"]
    assert len(points) == len(comparisons) == 4
    assert {t.get_text() for t in gains.get_legend().get_texts()} == {"leaf", "mel"}


def test_a_missing_pair_is_blank_not_an_error():
    arms, comparisons = tables()
    arms = arms[arms["arm"] != "frontend=mel model=statenet"]
    comparisons = comparisons[comparisons["arm"] != "frontend=mel model=statenet"]
    assert len(capacity_figure(arms, comparisons).axes[0].texts) == 5


def test_what_is_not_a_grid_is_refused():
    arms, comparisons = tables(readouts=("linear",))
    assert not has_capacity_grid(arms)
    with pytest.raises(ValueError, match=">= 2 front-ends with >= 2 readouts"):
        capacity_figure(arms, comparisons)
    with pytest.raises(ValueError, match="lacks the column"):
        capacity_figure(arms.drop(columns="model"), comparisons)
