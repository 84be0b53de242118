"""How sure each Borda rank is (evalharness/rank_uncertainty.py): entries resampled on the same units
(paired), scores recomputed from the per-item values, ranks taken by mteb's Borda. A consistent tiny
gain on every query keeps its rank in every resample (an unpaired resampling would flip it half the
time); two entries that differ only by noise trade places."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mteb.results import TaskResult

from evalharness import per_item
from evalharness.comparison import borda, compare
from evalharness.rank_uncertainty import rank_stability, with_stability
from evalharness.reporting import build_report
from evalharness.results import load
from tests.test_report_selection import result_for

N = 40


def _cell(root, shots: int, values: np.ndarray) -> None:
    exp = f"examples_{'none' if shots == 0 else 'train'}__seed_0__shots_{shots}__template_plain"
    folder = root / "results" / "org__ours" / "r1" / "experiments" / exp
    (folder / "per_item").mkdir(parents=True)
    mean = float(np.mean(values))
    result: TaskResult = result_for("SciFact", {"test": {"default": mean}})
    result.to_disk(folder / "SciFact.json")
    data = {"format": per_item.FORMAT, "task": "SciFact", "metric": "ndcg_at_10", "kind": "mean", "unit": "query",
            "parts": [{"split": "test", "subset": "default", "ids": [f"q{i:02d}" for i in range(N)],
                       "values": [float(v) for v in values]}]}  # fmt: skip
    (folder / "per_item" / "SciFact.json").write_text(json.dumps(data), encoding="utf-8")
    manifest = {"cell": {"shots": shots, "strategy": "none" if shots == 0 else "train", "seed": 0,
                         "template": "plain", "set_id": None},
                "model": "org/ours", "config": {"benchmark": {"name": "MTEB(eng, v1)"}},
                "tasks": {"SciFact": {"status": "done", "per_item": "per_item/SciFact.json"}}}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture
def four(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.7, N)  # queries differ by far more than the settings
    noise = rng.normal(0, 0.15, N)
    _cell(tmp_path, 0, base)  # C
    _cell(tmp_path, 1, base + 0.01)  # B: +0.01 on every query
    _cell(tmp_path, 2, base + 0.2)  # A
    _cell(tmp_path, 3, base + noise - noise.mean() + 0.003)  # D: C plus noise
    return tmp_path


def test_paired_resamples_keep_a_consistent_gain_and_let_noise_trade_places(four):
    results = load(four)
    comp = compare(results)
    frame, resampled, n_tasks = rank_stability(results, comp, resamples=500)
    assert (resampled, n_tasks) == (1, 1)
    by_setting = frame.set_index("setting")
    observed = borda(comp).set_index("setting")["rank"]
    a, b, c, d = "2-shot train seed 0", "1-shot train seed 0", "0-shot", "3-shot train seed 0"
    assert list(observed[[a, b, d, c]]) == [1, 2, 3, 4]
    for setting in (a,):
        assert by_setting.loc[setting, "kept_rank"] == 1.0
        assert (by_setting.loc[setting, "rank_low"], by_setting.loc[setting, "rank_high"]) == (1, 1)
    # B over C in every resample: B is never below C, whatever D does
    assert by_setting.loc[b, "rank_high"] <= 3 and by_setting.loc[c, "rank_low"] >= 3
    # D is C plus noise: it moves between ranks 2 and 4 in a good share of resamples
    assert 0.05 < by_setting.loc[d, "kept_rank"] < 0.95
    assert by_setting.loc[d, "rank_low"] == 2 and by_setting.loc[d, "rank_high"] == 4


def test_unpaired_resampling_would_not_keep_the_consistent_gain(four):
    """The reason pairing matters, measured on the same data: resampling B's and C's queries
    independently flips their order in a large share of resamples."""
    values = {s: np.asarray(per_item.read(f)["parts"][0]["values"])
              for s, f in ((f.parent.parent.name, f) for f in four.glob("results/*/*/experiments/*/per_item/*.json"))}  # fmt: skip
    b = values["examples_train__seed_0__shots_1__template_plain"]
    c = values["examples_none__seed_0__shots_0__template_plain"]
    rng = np.random.default_rng(0)
    flips = np.mean([b[rng.integers(0, N, N)].mean() < c[rng.integers(0, N, N)].mean() for _ in range(500)])
    assert flips > 0.3


def test_the_report_shows_it_beside_the_borda_rank(four, tmp_path):
    results = load(four)
    table, note = with_stability(results, compare(results), confidence=0.9, resamples=300)
    assert list(table.columns[-2:]) == ["same rank", "rank 90% range"]
    assert table.set_index("setting").loc["2-shot train seed 0", "same rank"] == "100%"
    assert "300 paired resamples" in note and "1 of 1 tasks resampled" in note
    rep = build_report(four, resamples=300)
    assert "same rank" in rep.borda.columns and rep.borda_note
    none = build_report(four, confidence=0)  # --ci 0: no statistics, a plain Borda table
    assert "same rank" not in none.borda.columns and not none.borda_note
