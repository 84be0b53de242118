"""Promises of the report's statistics that hold whatever the data (evalharness/significance.py):
per-item values of parts the benchmark does not score never enter a CI, the --ci level is the one
the CIs are read at, a CI that excludes 0 is never shown with a "not significant" verdict without
the reason in its row, and clustering's few experiments get a t-interval. Result and per-item files
are written by hand (with mteb's `TaskResult`), so every expected number is computed here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from evalharness import per_item, significance, stats
from evalharness.reporting import build_report
from tests.test_report_selection import V1, V1_PART, VALUES, our_cell

DEMO_DIR = Path(__file__).resolve().parent.parent / "results" / "demo"
N = 40  # queries per part
SHIFT, OFF = 0.05, -0.30  # the 1-shot cell: +5 on the scored part, -30 on every other part


def _values(score: float, seed: int) -> np.ndarray:
    """N per-query values with mean exactly `score` (so they agree with the result file)."""
    centred = np.random.default_rng(seed).normal(0, 0.15, N)
    return score + centred - centred.mean()


def _write_items(folder, shift: float, off: float) -> None:
    """SciFact's per-query values for both parts in the file (test: scored by MTEB(eng, v1); train: not)."""
    parts = []
    for split, subsets in VALUES["SciFact"].items():
        for subset, value in subsets.items():
            move = shift if (split, subset) == V1_PART["SciFact"] else off
            base = _values(value, seed=len(split))
            jitter = np.random.default_rng(7).normal(0, 0.02, N) if move else np.zeros(N)
            values = base + move + jitter - jitter.mean()
            parts.append({"split": split, "subset": subset, "ids": [f"q{i:02d}" for i in range(N)],
                          "values": list(values)})  # fmt: skip
    data = {"format": per_item.FORMAT, "task": "SciFact", "metric": "ndcg_at_10", "kind": "mean", "unit": "query",
            "parts": parts}  # fmt: skip
    (folder / "per_item").mkdir(exist_ok=True)
    (folder / "per_item" / "SciFact.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def two_cells(tmp_path):
    _write_items(our_cell(tmp_path, 0, {"name": V1}), 0.0, 0.0)
    _write_items(our_cell(tmp_path, 1, {"name": V1}, shift=SHIFT, off=OFF), SHIFT, OFF)
    return tmp_path


def _row(rep, task: str = "SciFact") -> pd.Series:
    return rep.significance.tasks.set_index("task").loc[task]


def test_only_the_scored_parts_per_item_values_enter_the_ci(two_cells):
    """The file holds test and train queries; MTEB(eng, v1) scores test: n is test's 40 queries and the
    Δ +5, as the Δ table has it (train's -30 would make it -12.5 over 80)."""
    rep = build_report(two_cells, resamples=300)
    row = _row(rep)
    assert row["n"] == N and row["delta"] == pytest.approx(100 * SHIFT, abs=1e-9)
    items = rep.results.items[rep.results.items["task"] == "SciFact"]
    assert set(zip(items["split"], items["subset"], strict=True)) == {V1_PART["SciFact"]}
    files = [
        per_item.read(f) for f in sorted(two_cells.glob("results/*/*/experiments/*/per_item/SciFact.json"))
    ]
    zero, few = ([p for p in d["parts"] if p["split"] == "test"][0]["values"] for d in files)
    d = stats.paired_delta(stats.Sample("mean", few, parts=np.zeros(N, int)),
                           stats.Sample("mean", zero, parts=np.zeros(N, int)),
                           resamples=300, seed=stats.task_seed("SciFact"))  # fmt: skip
    assert row["p"] == pytest.approx(d.p_value, abs=1e-12)
    assert (row["low"], row["high"]) == pytest.approx(
        tuple(100 * x for x in stats.interval(d, row["ci_level"]))
    )


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_the_ci_level_is_the_one_asked_for_adjusted_for_the_columns_tasks(two_cells, confidence):
    rep = build_report(two_cells, resamples=400, confidence=confidence)
    tested = rep.significance.tasks.dropna(subset=["p"])
    m = len(tested)
    assert m >= 1 and tested["ci_level"].eq(1 - (1 - confidence) / m).all()
    row = _row(rep)
    files = sorted(two_cells.glob("results/*/*/experiments/*/per_item/SciFact.json"))
    zero, few = ([p for p in per_item.read(f)["parts"] if p["split"] == "test"][0]["values"] for f in files)
    d = stats.paired_delta(stats.Sample("mean", few), stats.Sample("mean", zero), resamples=400,
                           seed=stats.task_seed("SciFact"))  # fmt: skip
    tail = (1 - confidence) / m / 2
    expected = np.percentile(d.distribution, [100 * tail, 100 * (1 - tail)])
    assert (row["low"], row["high"]) == pytest.approx(tuple(100 * expected), abs=1e-9)
    # the pooled rows are one quantity each: read at the level asked for
    overall = rep.significance.pooled.set_index("group").iloc[-1]
    assert overall["n_tasks"] == 1
    pooled = np.percentile(d.distribution, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    assert (overall["low"], overall["high"]) == pytest.approx(tuple(100 * pooled), abs=1e-9)
    assert rep.significance.alpha == pytest.approx(1 - confidence)
    assert row["significant"] == (row["p_holm"] < 1 - confidence)


def _disagreements(tasks: pd.DataFrame) -> pd.DataFrame:
    excludes = tasks["low"].gt(0) | tasks["high"].lt(0)
    return tasks[excludes & ~tasks["significant"].astype(bool)]


def test_a_ci_that_excludes_zero_beside_no_mark_says_why_in_its_row(two_cells):
    """The family: the column's tasks. Each row with a CI excluding 0 and no mark carries the reason,
    in the table and in the printed cell; with a t-interval or a bootstrap p such rows cannot occur."""
    for resamples in (200, 1000):
        tasks = build_report(two_cells, resamples=resamples).significance.tasks
        for _, row in _disagreements(tasks).iterrows():
            assert row["note"] == significance.DISAGREE and row["test"] == significance.PERMUTATION
    # a family built to disagree: tiny tasks whose bootstrap CI is narrower than the permutation test
    rng = np.random.default_rng(4)
    kept, rows = {}, []
    for i in range(6):
        b = rng.uniform(0, 1, 5)
        a = b + rng.uniform(0.05, 0.25, 5) * (1 if i < 3 else -1)
        d = stats.paired_delta(stats.Sample("mean", a), stats.Sample("mean", b), resamples=500, seed=i)
        kept[("c", f"t{i}")] = d
        rows.append({"column": "c", "task": f"t{i}", "delta": 100 * d.delta, "p": d.p_value,
                     "test": significance.PERMUTATION, "note": ""})  # fmt: skip
    tasks = pd.DataFrame(rows).reindex(columns=significance.TASK_COLUMNS)
    tasks["note"] = ""
    significance._family_verdicts(tasks, kept, 0.95)
    assert (tasks["ci_level"] == 1 - 0.05 / 6).all()
    shown = _disagreements(tasks)
    assert len(shown) > 0  # 5 units each: the bootstrap says "not 0", the permutation test cannot
    assert shown["note"].eq(significance.DISAGREE).all()
    assert tasks.loc[~tasks.index.isin(shown.index), "note"].eq("").all()


def test_the_committed_demo_report_has_no_unexplained_disagreement():
    tasks = pd.read_csv(DEMO_DIR / "significance.csv", keep_default_na=False, na_values=[""])
    assert {"ci_level", "train_sd"} <= set(tasks.columns)
    shown = _disagreements(tasks.dropna(subset=["low"]))
    assert shown["note"].eq(significance.DISAGREE).all()
    text = (DEMO_DIR / "report.md").read_text(encoding="utf-8")
    assert "CIs and marks agree" in text


def test_few_experiments_get_a_t_interval_that_agrees_with_the_t_test():
    """10 paired experiments: the CI is scipy's ttest_rel interval, and it excludes 0 exactly when
    the test's p is below 1 - level (one part); several parts add their variances."""
    rng = np.random.default_rng(9)
    for shift in (0.0, 0.01, 0.03):
        b = rng.uniform(0.3, 0.6, 10)
        a = b + shift + rng.normal(0, 0.02, 10)
        d = significance.t_interval.paired_t_delta(stats.Sample("mean", a), stats.Sample("mean", b), seed=1)
        ref = sps.ttest_rel(a, b)
        assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        for level in (0.95, 0.99):
            low, high = stats.interval(d, level)
            ci = ref.confidence_interval(level)
            assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)
            assert (low > 0 or high < 0) == (d.p_value < 1 - level)
    parts = np.repeat([0, 1], 10)
    a, b = rng.uniform(0.3, 0.6, 20), rng.uniform(0.3, 0.6, 20)
    d = significance.t_interval.paired_t_delta(
        stats.Sample("mean", a, parts=parts), stats.Sample("mean", b, parts=parts)
    )
    diffs = [a[parts == p] - b[parts == p] for p in (0, 1)]
    se = np.sqrt(sum(x.var(ddof=1) / 10 for x in diffs)) / 2
    assert d.delta == pytest.approx(np.mean([x.mean() for x in diffs]))
    assert d.se == pytest.approx(se)


def _classification_items(
    folder, mean: float, pattern: list[int], seed: int, experiments: list[float]
) -> None:
    """AmazonCounterfactualClassification per test item (shares of 10 experiments right, mean `mean`)
    for the part MTEB(eng, v1) scores, and an unscored part whose experiments are far off."""
    counts = np.random.default_rng(seed).permutation(np.resize(pattern, N))  # mean: the pattern's
    assert counts.mean() == pytest.approx(10 * mean) and counts.max() <= 10
    parts = [
        {"split": "test", "subset": "en", "ids": [str(i) for i in range(N)], "values": list(counts / 10),
         "experiments": experiments},
        {"split": "validation", "subset": "en", "ids": [str(i) for i in range(N)], "values": [0.0] * N,
         "experiments": [0.0] * 10},
    ]  # fmt: skip
    data = {"format": per_item.FORMAT, "task": "AmazonCounterfactualClassification", "metric": "accuracy",
            "kind": "mean", "unit": "item", "parts": parts}  # fmt: skip
    (folder / "per_item").mkdir(exist_ok=True)
    (folder / "per_item" / "AmazonCounterfactualClassification.json").write_text(json.dumps(data))


def test_classification_rows_have_test_items_as_units_and_the_train_sample_spread(tmp_path):
    """n is the test set's size, the test is the paired permutation test on the items, and train_sd
    is the SD over mteb's experiments of the experiment-wise Δ, from the scored part only."""
    zero_runs = [0.66, 0.71, 0.69, 0.74, 0.70, 0.68, 0.72, 0.70, 0.67, 0.73]
    few_runs = [0.73, 0.74, 0.77, 0.76, 0.75, 0.72, 0.78, 0.74, 0.75, 0.76]
    _classification_items(our_cell(tmp_path, 0, {"name": V1}), 0.70, [4, 6, 8, 10], 1, zero_runs)
    _classification_items(our_cell(tmp_path, 1, {"name": V1}, shift=SHIFT), 0.75, [5, 7, 8, 10], 2, few_runs)
    rep = build_report(tmp_path, resamples=300)
    row = _row(rep, "AmazonCounterfactualClassification")
    assert (row["unit"], row["n"], row["test"]) == ("item", N, significance.PERMUTATION)
    assert row["delta"] == pytest.approx(5.0, abs=1e-9)
    expected = 100 * np.std(np.subtract(few_runs, zero_runs), ddof=1)
    assert row["train_sd"] == pytest.approx(expected, abs=1e-9)
    text = rep.significance and significance.task_texts(rep.significance, rep.comparison)
    assert f"train-sample SD {expected:.2f}" in text.to_string()
