"""Report aggregates on uneven scores, where a mean differs from a median or a single pick: CQADupstack's
12 forums averaged into one task, and the seeds of one setting averaged per task ("3 seeds"), with each
seed's score kept beside the mean."""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import pytest
from mteb.results import TaskResult

from evalharness.plan import Cell
from evalharness.reporting import MEAN_TASKS, build_report, compare
from evalharness.results import load

MODEL, REVISION = "org/pins-model", "rev-pins"
FORUMS = [f"CQADupstack{f}Retrieval" for f in (
    "Android", "English", "Gaming", "Gis", "Mathematica", "Physics", "Programmers", "Stats", "Tex", "Unix",
    "Webmasters", "Wordpress",
)]  # fmt: skip


def _forums(low: float, high: float) -> dict[str, float]:
    """Eleven forums at `low`, one at `high`: mean = low + (high - low) / 12, median = low."""
    return {name: (high if i == 11 else low) for i, name in enumerate(FORUMS)}


ZERO = Cell(0, "none", None, "bge-icl")
SEEDS = {s: Cell(3, "train", s, "bge-icl") for s in (0, 1, 2)}
# main scores (0-1) per cell
SCORES = {
    ZERO: {**_forums(0.10, 0.70), "SciFact": 0.50},  # CQADupstack 15.0 (median 10.0)
    SEEDS[0]: {**_forums(0.10, 0.70), "SciFact": 0.20},  # CQADupstack 15.0
    SEEDS[1]: {**_forums(0.20, 0.20), "SciFact": 0.30},  # CQADupstack 20.0
    SEEDS[2]: {**_forums(0.30, 0.90), "SciFact": 0.70},  # CQADupstack 35.0
}
# x100, by hand: CQADupstack per seed 15, 20, 35 -> mean 70/3 (median 20); SciFact 20, 30, 70 -> 40 (median 30)
CQA_ZERO, CQA_SEEDS, CQA_3 = 15.0, [15.0, 20.0, 35.0], 70.0 / 3
SCIFACT_SEEDS, SCIFACT_3 = [20.0, 30.0, 70.0], 40.0


def _experiment(cell: Cell) -> str:
    return "__".join(f"{k}_{v}" for k, v in sorted(cell.experiment_kwargs().items()))


def _write(root: Path) -> Path:
    """mteb's ResultCache layout, one experiment folder (task files, model_meta, manifest) per cell."""
    for cell, scores in SCORES.items():
        folder = root / "results" / MODEL.replace("/", "__") / REVISION / "experiments" / _experiment(cell)
        folder.mkdir(parents=True)
        for name, score in scores.items():
            task = mteb.get_task(name)
            entry = {task.metadata.main_score: score, "main_score": score}
            TaskResult.from_task_results(task, {"test": {"default": entry}}, evaluation_time=1.0).to_disk(
                folder / f"{name}.json"
            )
        manifest = {
            "cell": {**cell.__dict__},
            "model": MODEL,
            "config": {"benchmark": {"name": "pins"}},
            "tasks": {name: {"status": "done", "main_score": s} for name, s in scores.items()},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (folder / "model_meta.json").write_text(json.dumps({"name": MODEL, "revision": REVISION}))
    return root


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("pins-report"))


def test_cqadupstack_is_the_mean_of_its_forums(results_dir):
    rep = build_report(results_dir)
    assert rep.results.problems == []
    score = rep.tasks.loc[("Retrieval", "CQADupstackRetrieval"), (MODEL, "0-shot")]
    assert score == pytest.approx(CQA_ZERO)  # not the median (10.0), not any one forum
    assert not any(name in {t for _, t in rep.tasks.index} for name in FORUMS)  # one task, not twelve
    assert rep.summary.loc[MEAN_TASKS, (MODEL, "0-shot")] == pytest.approx((CQA_ZERO + 50.0) / 2)


def test_seeds_of_one_setting_are_averaged_and_each_seed_is_kept(results_dir):
    comp = compare(load(results_dir))
    column = f"{MODEL} · 3-shot train 3 seeds"
    assert list(comp.columns["setting"]) == ["0-shot", "3-shot train 3 seeds"]
    mine = comp.scores[comp.scores["column"] == column].set_index("task")
    assert mine.loc["CQADupstackRetrieval", "score"] == pytest.approx(CQA_3)
    assert mine.loc["SciFact", "score"] == pytest.approx(SCIFACT_3)
    assert set(mine["n_seeds"]) == {3}
    per_seed = comp.seed_scores[comp.seed_scores["column"] == column].sort_values("seed")
    for task, expected in (("CQADupstackRetrieval", CQA_SEEDS), ("SciFact", SCIFACT_SEEDS)):
        rows = per_seed[per_seed["task"] == task]
        assert list(rows["seed"]) == [0, 1, 2]
        assert list(rows["score"]) == pytest.approx(expected)
    rep = build_report(results_dir)
    assert rep.tasks.loc[("Retrieval", "SciFact"), (MODEL, "3-shot train 3 seeds")] == pytest.approx(
        SCIFACT_3
    )
    assert rep.summary.loc[MEAN_TASKS, (MODEL, "3-shot train 3 seeds")] == pytest.approx(
        (CQA_3 + SCIFACT_3) / 2
    )
