"""One comparison from many runs: arms, per-neuron scores averaged over seeds, paired statistics.

An *arm* is everything in a run's config except its seeds and where it ran (device, threads, name):
runs that differ only in seed are replicates of one arm. Arms are labelled by the keys that vary
across the runs: the front-end, model and dataset names first, then any other key that varies
independently of those names (e.g. ``trainer.lr`` in a learning-rate sweep; ``frontend.lr`` is not
shown, as it only follows the front-end); a key a run's config lacks (``dataset.path`` of a synthetic
dataset) is left out of its label, and counts as null when telling arms apart. Each arm is compared
with its baseline arm: the arm equal to it except for matching the baseline selector
(``frontend=native`` by default). A run whose config.yaml cannot be read belongs to no arm.

CIs (``ci_low``, ``ci_high``) resample test stimuli and neurons (``strf_runner.results.stats``), from the
runs' test predictions scored against the dataset file they trained on. Where those cannot be had (a run
without test predictions, a dataset file not here), the CI resamples neurons only; ``ci_resamples`` says
which, ``ci_note`` why. The neuron-only CI is always kept as ``neuron_ci_low`` / ``neuron_ci_high``.

A cross-validated run (a CV dir) is one run whose score is the pooled out-of-fold cc_norm; runs.csv and
arms.csv then also give the mean (SD) of its folds' own test scores (``fold_mean_cc_norm``,
``fold_sd_cc_norm``), and folds.csv one row per fold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from strf_runner.data.selection import select_neuron_indices
from strf_runner.errors import ResultsError, StrfRunnerWarning
from strf_runner.identity import DEVICE_KEYS, SEED_KEYS, volatile
from strf_runner.results.collect import RunRecord
from strf_runner.results.ensemble import ArmStimuli, DatasetCache, Ensemble, arm_stimuli, ensemble_of
from strf_runner.results.stats import (
    NEURONS_ONLY,
    STIMULI_AND_NEURONS,
    ArmScores,
    PairedComparison,
    paired_comparison,
    stimulus_test,
    summarise_scores,
    two_level_ci,
)
from strf_runner.results.summary import number

NAME_KEYS = ("frontend.name", "model.name", "dataset.name")
SHORT = {"frontend.name": "frontend", "model.name": "model", "dataset.name": "dataset"}
NOT_ARM = SEED_KEYS | DEVICE_KEYS  # and every volatile key
# not config keys: what the runs trained and were scored on, in an arm's label only where runs differ in it
DATA_KEY, NEURONS_KEY = "data", "neurons"
FOLD_COLUMNS = ["arm", "seed", "fold", "test_stimuli", "test_mean_cc_norm", "best_epoch", "epochs_run", "path"]
COMPARISON_COLUMNS = [
    "arm", "baseline", "n_pairs", "mean_diff", "ci_low", "ci_high", "ci_resamples", "neuron_ci_low", "neuron_ci_high",
    "wilcoxon_p", "frac_improved", "n_stimuli", "stimulus_corr_diff", "stimulus_p", "stimuli_improved", "ci_note",
]


@dataclass
class Aggregate:
    """Everything a sweep report shows.

    runs: one row per run dir (status, arm, seed, scores, error; no arm for a run without a readable
    config). arms: one row per arm (CI columns: see the module docstring).
    comparisons: one row per arm with a baseline (``COMPARISON_COLUMNS``). per_neuron: arm x neuron, cc_norm
    averaged over the arm's finished seeds (NaN where invalid in every seed). baselines: arm -> its baseline arm.
    neurons: the named neuron selection every score is restricted to, or None. folds: one row per fold
    of each cross-validated run (``FOLD_COLUMNS``; empty without one).
    """

    runs: pd.DataFrame
    arms: pd.DataFrame
    comparisons: pd.DataFrame
    per_neuron: pd.DataFrame
    baselines: dict[str, str]
    label_keys: list[str]
    neurons: str | None = None
    folds: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=FOLD_COLUMNS))


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def label_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The config keys that name arms: name keys that vary (or, if none varies, the front-end and
    model names), then other keys that vary among runs sharing the same names."""
    keys = sorted(k for k in {k for c in configs for k in c} - NOT_ARM if not volatile(k))
    varying = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    names = [k for k in NAME_KEYS if k in varying] or [k for k in NAME_KEYS[:2] if any(k in c for c in configs)]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in configs:
        groups.setdefault(tuple(repr(c.get(k)) for k in NAME_KEYS), []).append(c)
    independent = [
        k for k in varying
        if k not in NAME_KEYS and any(len({repr(c.get(k)) for c in g}) > 1 for g in groups.values())
    ]
    return names + independent


def arm_label(config: dict[str, Any], keys: list[str]) -> str:
    """'frontend=leaf trainer.lr=0.001': the run's value of each label key it has."""
    return " ".join(f"{SHORT.get(k, k)}={_value(config[k])}" for k in keys if k in config)


def arm_labels(configs: list[dict[str, Any]], keys: list[str]) -> list[str | None]:
    """Each run's arm label: runs equal on every label key (a missing key counting as null, as in
    ``config_hash``) share the first one's label. None for a run without a config."""
    first: dict[tuple[str, ...], str] = {}
    return [
        first.setdefault(tuple(repr(c.get(k)) for k in keys), arm_label(c, keys)) if c else None for c in configs
    ]


def parse_selector(selector: str) -> tuple[str, str]:
    """'frontend=native' -> ('frontend.name', 'native'); 'trainer.lr=0.001' -> as given."""
    key, sep, value = selector.partition("=")
    if not sep or not key or not value:
        raise ResultsError(f"baseline selector {selector!r} must look like KEY=VALUE, e.g. frontend=native")
    long = {v: k for k, v in SHORT.items()}.get(key, key)
    return long, value


def aggregate(runs: list[RunRecord], baseline: str = "frontend=native", neurons: str | None = None) -> Aggregate:
    """Group runs into arms and compute the sweep's tables (see ``Aggregate``).

    neurons: a named selection (``valid73`` on NS1) to score every arm on those neurons only, chosen
    from the metadata of the dataset file the runs trained on; None: every neuron.
    """
    if not runs:
        raise ResultsError("no run directories found (a run dir holds the config.yaml every run writes first)")
    datasets = DatasetCache()
    keep = None if neurons is None else _selected_ids(runs, neurons, datasets)
    configs, keys = _arm_configs(runs)
    labels = arm_labels(configs, keys)
    order = [label for label in dict.fromkeys(labels) if label is not None]
    run_rows = [_run_row(r, label) for r, label in zip(runs, labels)]

    per_neuron_cols: dict[str, pd.Series] = {}
    tested: dict[str, ArmStimuli | str] = {}
    arm_rows = []
    for arm in order:
        members = [r for r, label in zip(runs, labels) if label == arm]
        finished = [r for r in members if r.status == "finished"]
        scores = _mean_over_seeds(finished, keep)
        if scores is not None:
            per_neuron_cols[arm] = scores
        tested[arm] = arm_stimuli(finished, datasets) if finished else ""
        ensemble = ensemble_of(finished, datasets) if len(finished) > 1 else Ensemble(len(finished))
        arm_rows.append({**_arm_row(arm, members, finished, scores, keys, keep, tested[arm]),
                         **_ensemble_columns(ensemble, keep),
                         "ci_note": tested[arm] if isinstance(tested[arm], str) else ""})

    base_key, base_value = parse_selector(baseline)
    baselines = _baselines(configs, labels, keys, base_key, base_value)
    comparisons = []
    for arm, base in baselines.items():
        if arm == base or arm not in per_neuron_cols or base not in per_neuron_cols:
            continue
        a, b = per_neuron_cols[arm].align(per_neuron_cols[base], join="outer")
        comparisons.append({"arm": arm, "baseline": base,
                            **_paired_columns(a, b, paired_comparison(a.to_numpy(), b.to_numpy()),
                                              tested[arm], tested[base])})

    per_neuron = pd.DataFrame(
        [{"arm": arm, "neuron": nid, "cc_norm": v} for arm, s in per_neuron_cols.items() for nid, v in s.items()],
        columns=["arm", "neuron", "cc_norm"],
    )
    return Aggregate(
        runs=pd.DataFrame(run_rows),
        arms=pd.DataFrame(arm_rows),
        comparisons=pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS),
        per_neuron=per_neuron,
        baselines={a: b for a, b in baselines.items() if a != b and {a, b} <= per_neuron_cols.keys()},
        label_keys=keys,
        neurons=neurons,
        folds=pd.DataFrame([row for r, label in zip(runs, labels) for row in _fold_rows(r, label)],
                           columns=FOLD_COLUMNS),
    )


def _arm_configs(runs: list[RunRecord]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each run's config as arms see it, and the label keys. Runs that trained on different data (the
    ``data`` each records) or scored different neuron sets are never pooled: where the runs differ in
    these, ``data=<digest>`` and then ``neurons=<count>:<digest>`` join the configs and the label keys,
    and a warning says so. A run that records no data (it failed before starting, or predates data
    digests) carries no data key."""
    configs = [dict(r.config) for r in runs]
    digests = [r.data() if c else None for r, c in zip(runs, configs)]
    if len({d for d in digests if d is not None}) > 1:
        for c, d in zip(configs, digests):
            if d is not None:
                c[DATA_KEY] = d
        warnings.warn(f"the runs trained on {len({d for d in digests if d is not None})} different datasets "
                      f"({', '.join(sorted({d for d in digests if d is not None}))}): their arms are told apart by "
                      "data=<content digest>, and only arms on the same data are compared", StrfRunnerWarning,
                      stacklevel=3)
    keys = label_keys([c for c in configs if c])
    keys += [DATA_KEY] if any(DATA_KEY in c for c in configs) and DATA_KEY not in keys else []
    sets = [_neuron_set(r) for r in runs]
    mixed: dict[str | None, set[str]] = {}
    for label, found in zip(arm_labels(configs, keys), sets):
        if label is not None and found is not None:
            mixed.setdefault(label, set()).add(found)
    if any(len(v) > 1 for v in mixed.values()):
        for c, found in zip(configs, sets):
            if found is not None:
                c[NEURONS_KEY] = found
        warnings.warn(f"runs of one arm scored different neuron sets ({', '.join(sorted(set().union(*mixed.values())))}"
                      "): their arms are told apart by neurons=<count>:<digest of the ids>", StrfRunnerWarning,
                      stacklevel=3)
        keys.append(NEURONS_KEY)
    return configs, keys


def _neuron_set(r: RunRecord) -> str | None:
    """'12:3fa2c1' for a finished run's neuron ids (count, then a digest of the sorted ids); None otherwise."""
    if r.status != "finished":
        return None
    ids = sorted(r.neurons()["id"].astype(str))
    return f"{len(ids)}:{hashlib.sha256(chr(10).join(ids).encode()).hexdigest()[:6]}"


def _run_row(r: RunRecord, arm: str | None) -> dict[str, Any]:
    s = r.summary
    row = {"arm": arm, "seed": r.seed, "status": r.status, "test_mean_cc_norm": math.nan,
           "test_median_cc_norm": math.nan, "best_val": math.nan, "n_params": None, "wall_time_s": math.nan,
           "reused_from": "", "error": r.error, "path": str(r.path)}
    if s is not None:
        row.update(test_mean_cc_norm=s.test_mean_cc_norm, test_median_cc_norm=s.test_median_cc_norm,
                   best_val=number(s.best_score), n_params=s.n_params, wall_time_s=s.wall_time_s,
                   reused_from=s.reused_from or "")
        if s.is_cv:
            row.update(fold_mean_cc_norm=s.fold_mean_cc_norm, fold_sd_cc_norm=s.fold_sd_cc_norm)
    return row


def _fold_rows(r: RunRecord, arm: str | None) -> list[dict[str, Any]]:
    """folds.csv's rows of a finished cross-validated run (none for any other run)."""
    if r.status != "finished" or not r.summary.is_cv or r.summary.folds is None:
        return []
    tests = [" ".join(map(str, a.get("test", []))) for a in r.summary.cv.assignment]
    return [{"arm": arm, "seed": r.seed, "fold": f.fold, "test_stimuli": tests[f.fold] if f.fold < len(tests) else "",
             "test_mean_cc_norm": number(f.test_mean_cc_norm), "best_epoch": f.best_epoch,
             "epochs_run": f.epochs_run, "path": str(r.path / f.path)} for f in r.summary.folds]


def _valid_scores(r: RunRecord, keep: set[str] | None) -> pd.Series:
    """A run's per-neuron cc_norm by neuron id, NaN where invalid, cut to ``keep`` (None: every neuron)."""
    t = r.neurons()
    scores = t["cc_norm"].where(t["valid"].astype(bool)).set_axis(t["id"].astype(str))
    return scores if keep is None else scores[scores.index.isin(keep)]


def _mean_over_seeds(finished: list[RunRecord], keep: set[str] | None = None) -> pd.Series | None:
    """Per-neuron cc_norm (index: neuron id) averaged over the finished seeds where valid."""
    if not finished:
        return None
    return pd.concat([_valid_scores(r, keep) for r in finished], axis=1).mean(axis=1, skipna=True)


def _selected_ids(runs: list[RunRecord], neurons: str, datasets: DatasetCache) -> set[str]:
    """The ids of the named neuron selection, from the metadata of the runs' dataset file."""
    finished = [r for r in runs if r.status == "finished" and r.summary.dataset is not None]
    if not finished:
        raise ResultsError(f"--neurons {neurons}: no finished run says which dataset file it trained on")
    d = finished[0].summary.dataset
    content = datasets.get(d.path, d.sha256, finished[0].summary.view or "spectrogram")
    chosen = select_neuron_indices(content.neuron_meta, content.neuron_ids, neurons, key="--neurons")
    return {content.neuron_ids[i] for i in chosen}


def _arm_row(
    arm: str, members: list[RunRecord], finished: list[RunRecord], scores: pd.Series | None, keys: list[str],
    keep: set[str] | None, tested: ArmStimuli | str,
) -> dict[str, Any]:
    first = members[0].config
    if keep is None:
        seed_means = np.array([r.summary.test_mean_cc_norm for r in finished], dtype=float)
    else:
        seed_means = np.array([_valid_scores(r, keep).mean() for r in finished], dtype=float)
    seed_means = seed_means[np.isfinite(seed_means)]
    summary = summarise_scores(scores.to_numpy() if scores is not None else np.array([]))
    params = sorted({r.summary.n_params for r in finished if r.summary.n_params is not None})
    return {
        "arm": arm,
        **{SHORT.get(k, k): first.get(k) for k in NAME_KEYS},
        "runs": len(finished),
        "failed": sum(r.status == "failed" for r in members),
        "unfinished": sum(r.status == "unfinished" for r in members),
        "corrupt": sum(r.status == "corrupt" for r in members),
        "seeds": " ".join(str(r.seed) for r in finished),
        "mean_cc_norm": summary.mean,
        **_arm_ci(scores, summary, tested),
        "median_cc_norm": summary.median,
        "n_valid": summary.n_valid,
        "seed_mean": float(seed_means.mean()) if seed_means.size else math.nan,
        "seed_sd": float(seed_means.std(ddof=1)) if seed_means.size > 1 else math.nan,
        "n_params": params[0] if len(params) == 1 else (params or None),
        "wall_time_s": float(np.mean([r.summary.wall_time_s for r in finished])) if finished else math.nan,
        **({"fold_mean_cc_norm": float(np.mean([number(r.summary.fold_mean_cc_norm) for r in finished]))}
           if keep is None and any(r.summary.is_cv for r in finished) else {}),
    }


def _arm_ci(scores: pd.Series | None, summary: ArmScores, tested: ArmStimuli | str) -> dict[str, Any]:
    """An arm's CI columns: two-level over test stimuli and neurons where its runs' test predictions can be
    scored again (``tested``), else over neurons only (``tested`` then says why); none without finished runs."""
    neuron = {"neuron_ci_low": summary.ci_low, "neuron_ci_high": summary.ci_high}
    if scores is None:
        return {"ci_low": math.nan, "ci_high": math.nan, "ci_resamples": "", "n_stimuli": math.nan, **neuron}
    if isinstance(tested, str):
        return {"ci_low": summary.ci_low, "ci_high": summary.ci_high, "ci_resamples": NEURONS_ONLY,
                "n_stimuli": math.nan, **neuron}
    pool = list(scores.index[np.isfinite(scores.to_numpy())])
    low, high = two_level_ci([tested.select(pool)])
    return {"ci_low": low, "ci_high": high, "ci_resamples": STIMULI_AND_NEURONS, "n_stimuli": len(tested.stimuli),
            **neuron}


def _paired_columns(a: pd.Series, b: pd.Series, neuron: PairedComparison, tested_a: ArmStimuli | str,
                    tested_b: ArmStimuli | str) -> dict[str, Any]:
    """comparisons.csv's columns of an arm (per-neuron scores ``a``) against its baseline (``b``, the same
    neurons): the neuron-level comparison, the CI over test stimuli and neurons and the sign-flip test
    across stimuli where both arms' test predictions can be scored again on the same stimuli, else the
    neuron-only CI with the reason in ``ci_note``."""
    row = {**asdict(neuron), "neuron_ci_low": neuron.ci_low, "neuron_ci_high": neuron.ci_high}
    if isinstance(tested_a, str) or isinstance(tested_b, str) or not tested_a.same_test_set(tested_b):
        why = (f"arm: {tested_a}" if isinstance(tested_a, str) else f"baseline: {tested_b}"
               if isinstance(tested_b, str) else "the arm and its baseline were tested on different stimuli")
        return {**row, "ci_resamples": NEURONS_ONLY, "ci_note": why, "n_stimuli": math.nan,
                "stimulus_corr_diff": math.nan, "stimulus_p": math.nan, "stimuli_improved": math.nan}
    pool = list(a.index[np.isfinite(a.to_numpy()) & np.isfinite(b.to_numpy())])
    arm, base = tested_a.select(pool), tested_b.select(pool)
    low, high = two_level_ci([arm, base])
    test = stimulus_test(arm, base)
    return {**row, "ci_low": low, "ci_high": high, "ci_resamples": STIMULI_AND_NEURONS, "ci_note": "",
            "n_stimuli": test.n_stimuli, "stimulus_corr_diff": test.mean_diff, "stimulus_p": test.p,
            "stimuli_improved": test.frac_improved}


def _ensemble_columns(ensemble: Ensemble, keep: set[str] | None) -> dict[str, Any]:
    """arms.csv's columns for the arm's seed ensemble, on the neurons ``keep`` (None: all), its CI over test
    stimuli and neurons (NaN where it has none; ``ensemble_note`` says why)."""
    scores = ensemble.scores
    if scores is None:
        summary, low, high = summarise_scores(np.array([])), math.nan, math.nan
    else:
        chosen = scores[scores.index.isin(keep)] if keep is not None else scores
        summary = summarise_scores(chosen.to_numpy())
        pool = chosen.index[np.isfinite(chosen.to_numpy())]
        low, high = two_level_ci([[ensemble.stats.rows(scores.index.get_indexer(pool))]])
    return {
        "ensemble_runs": ensemble.members if scores is not None else 0,
        "ensemble_mean_cc_norm": summary.mean,
        "ensemble_ci_low": low,
        "ensemble_ci_high": high,
        "ensemble_median_cc_norm": summary.median,
        "ensemble_note": ensemble.why_not,
    }


def _baselines(
    configs: list[dict[str, Any]], labels: list[str | None], keys: list[str], base_key: str, base_value: str
) -> dict[str, str]:
    """arm -> the arm with the same label values except ``base_key`` = base_value (if it exists)."""
    by_values: dict[tuple, str] = {}
    values_of: dict[str, dict[str, str]] = {}
    for config, label in zip(configs, labels):
        if label is None:
            continue
        values = {k: _value(config.get(k)) for k in keys}
        values_of[label] = values
        by_values[tuple(sorted(values.items()))] = label
    out = {}
    for label, values in values_of.items():
        if base_key not in values:
            continue
        wanted = dict(values, **{base_key: base_value})
        base = by_values.get(tuple(sorted(wanted.items())))
        if base is not None:
            out[label] = base
    return out
