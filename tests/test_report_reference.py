"""Issue 12, item 9: a local copy of mteb's results repository as the reference, like with like.

The reference folder is built here in the repository's layout (`results/<org>__<model>/<revision>/<Task>.json`)
with files in the formats the real repository holds: mteb 2 (`TaskResult.to_disk`), mteb 1.12 (flat
`scores` with `map` as the Reranking main score), mteb 1.1 (`mteb_dataset_name`, no `main_score`) and an
"external" folder whose file stores percentages and has no mteb version.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path

import mteb
import pytest
from mteb.results import TaskResult

from evalharness.reference import MTEB1_MAIN_SCORES, find_model, mteb1_main_score, ref_metric
from evalharness.reporting import MEAN_TASKS, N_TASKS, build_report

V1 = "MTEB(eng, v1)"
ZERO = "0-shot"
# ours (0-1) per task: (split, subset) -> {metric: value}; main metric first
OURS = {
    "SciFact": {("test", "default"): {"ndcg_at_10": 0.65}, ("train", "default"): {"ndcg_at_10": 0.75}},
    "AmazonCounterfactualClassification": {
        (sp, su): {"accuracy": 0.70 if (sp, su) == ("test", "en") else 0.30}
        for sp in ("validation", "test")
        for su in ("en", "de", "en-ext", "ja")
    },
    "SciDocsRR": {("test", "default"): {"map_at_1000": 0.78, "mrr_at_10": 0.90}},
    "AskUbuntuDupQuestions": {
        ("test", "default"): {"map_at_1000": 0.60, "map": 0.62}
    },  # also holds 1.x's map
    "MindSmallReranking": {("test", "default"): {"max_over_subqueries_map_at_1000": 0.31}},
    "STS12": {("test", "default"): {"cosine_spearman": 0.99}},  # not in the reference
}


def _result(task: str, parts: dict, scale: float = 1.0) -> TaskResult:
    scores: dict = {}
    for (split, subset), metrics in parts.items():
        main = next(iter(metrics.values()))
        scores.setdefault(split, {})[subset] = {**metrics, "main_score": main * scale}
    return TaskResult.from_task_results(mteb.get_task(task), scores, evaluation_time=1.0)


def ours_folder(root: Path, model: str = "org/ours", revision: str = "r1") -> Path:
    folder = (
        root
        / "results"
        / model.replace("/", "__")
        / revision
        / "experiments"
        / "examples_none__shots_0__template_plain"
    )
    folder.mkdir(parents=True)
    for task, parts in OURS.items():
        _result(task, parts).to_disk(folder / f"{task}.json")
    manifest = {
        "cell": {"shots": 0, "strategy": "none", "seed": None, "template": "plain", "set_id": None},
        "model": model,
        "config": {"benchmark": {"name": V1}},
        "tasks": {task: {"status": "done"} for task in OURS},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def reference_folder(
    root: Path, model: str = "org__ours", revision: str = "external", date: float | None = None
) -> Path:
    """One revision folder of a results repository, in four file formats."""
    folder = root / "results" / model / revision
    folder.mkdir(parents=True)
    sci = _result(
        "SciFact", {("test", "default"): {"ndcg_at_10": 0.70}, ("train", "default"): {"ndcg_at_10": 0.90}}
    )
    amazon = _result("AmazonCounterfactualClassification", {
        (sp, su): {"accuracy": 0.72 if (sp, su) == ("test", "en") else 0.95}
        for sp in ("validation", "test") for su in ("en", "de", "en-ext", "ja")
    })  # fmt: skip
    for result in (sci, amazon):  # mteb 2 format
        if date is not None:
            result.date = datetime.datetime.fromtimestamp(date, tz=datetime.UTC)
        result.to_disk(folder / f"{result.task_name}.json")
    # mteb 1.1: no `scores`, no `main_score`, Reranking by `map`
    (folder / "SciDocsRR.json").write_text(json.dumps({
        "dataset_revision": "d3c5e1fc0b855ab6097bf1cda04dd73947d7caab", "mteb_dataset_name": "SciDocsRR",
        "mteb_version": "1.1.1", "test": {"map": 0.80, "mrr": 0.93, "evaluation_time": 10.0},
    }))  # fmt: skip
    # mteb 1.12: flat scores, main_score = map
    (folder / "AskUbuntuDupQuestions.json").write_text(json.dumps({
        "dataset_revision": "2000358ca161889fa9c082cb41daa8dcfb161a54", "evaluation_time": 11.3, "mteb_version": "1.12.41",
        "scores": {"test": [{"hf_subset": "default", "languages": ["eng-Latn"], "main_score": 0.64, "map": 0.64, "mrr": 0.75}]},
        "task_name": "AskUbuntuDupQuestions",
    }))  # fmt: skip
    # an "external" file: no mteb version, percentages
    (folder / "MindSmallReranking.json").write_text(json.dumps({
        "dataset_revision": "59042f120c80e8afa9cdbb224f67076cec0fc9a7", "task_name": "MindSmallReranking",
        "evaluation_time": None, "mteb_version": None,
        "scores": {"test": [{"hf_subset": "default", "languages": ["eng-Latn"], "main_score": 30.5974, "map": 30.5974, "mrr": 31.397}]},
    }))  # fmt: skip
    return root


def test_mteb1_main_scores_differ_from_the_installed_mteb_only_for_reranking():
    """Every task type of MTEB(eng, v1) in the installed mteb against what 1.x files hold as main score:
    only Reranking changed (map -> map_at_1000; MindSmallReranking's max over sub-queries)."""
    changed = {}
    for task in mteb.get_benchmark(V1).tasks:
        name, now = task.metadata.name, task.metadata.main_score
        if mteb1_main_score(name) != now:
            changed[name] = (task.metadata.type, now, mteb1_main_score(name))
    assert changed == {
        "AskUbuntuDupQuestions": ("Reranking", "map_at_1000", "map"),
        "MindSmallReranking": ("Reranking", "max_over_subqueries_map_at_1000", "map"),
        "SciDocsRR": ("Reranking", "map_at_1000", "map"),
        "StackOverflowDupQuestions": ("Reranking", "map_at_1000", "map"),
    }
    assert MTEB1_MAIN_SCORES == {"Reranking": "map"}
    # the metric a file's main score is, found by value; old files without one fall back to 1.x's name
    assert ref_metric({"main_score": 0.6, "map": 0.6, "mrr": 0.7}, "map_at_1000", "SciDocsRR") == ("map", 0.6)
    assert (
        ref_metric({"main_score": 0.6, "map": 0.6, "map_at_1000": 0.6}, "map_at_1000", "SciDocsRR")[0]
        == "map_at_1000"
    )
    assert ref_metric({"main_score": None, "map": 0.8}, "map_at_1000", "SciDocsRR") == ("map", 0.8)


@pytest.fixture
def side_by_side(tmp_path):
    ours_folder(tmp_path / "ours")
    reference_folder(tmp_path / "ref")
    rep = build_report(tmp_path / "ours", reference_set=[str(tmp_path / "ref")])
    ((repo, sections, note),) = rep.repo_reference
    (section,) = sections
    return rep, section, note


def test_reference_is_scored_on_our_splits_and_subsets(side_by_side):
    rep, section, _ = side_by_side
    tasks = section.tasks
    assert tasks.loc[("Retrieval", "SciFact"), (ZERO, "ours")] == pytest.approx(65.0)
    assert tasks.loc[("Retrieval", "SciFact"), (ZERO, "reference")] == pytest.approx(
        70.0
    )  # test only, not (70+90)/2
    assert tasks.loc[("Retrieval", "SciFact"), (ZERO, "Δ")] == pytest.approx(-5.0)
    amazon = ("Classification", "AmazonCounterfactualClassification")
    assert tasks.loc[amazon, (ZERO, "reference")] == pytest.approx(72.0)  # en/test, as our column
    assert tasks.loc[amazon, (ZERO, "Δ")] == pytest.approx(-2.0)
    assert tasks.loc[amazon, ("", "scored on")] == "test · en"


def test_a_metric_renamed_in_mteb2_is_read_on_the_same_metric_or_marked(side_by_side):
    _, section, note = side_by_side
    tasks = section.tasks
    # 1.1 file without main_score: its map against our map_at_1000, marked with both names
    sci = ("Reranking", "SciDocsRR")
    assert tasks.loc[sci, (ZERO, "reference")] == pytest.approx(80.0)
    assert tasks.loc[sci, (ZERO, "ours")] == pytest.approx(78.0)
    assert tasks.loc[sci, ("", "note")] == "ours map_at_1000 vs ref map"
    # our file holds map too: both read on it
    ask = ("Reranking", "AskUbuntuDupQuestions")
    assert tasks.loc[ask, (ZERO, "ours")] == pytest.approx(62.0)
    assert tasks.loc[ask, (ZERO, "reference")] == pytest.approx(64.0)
    assert tasks.loc[ask, ("", "note")] == "both map (our main score is map_at_1000)"
    # a percentage file with no mteb version: scaled, and still marked
    mind = ("Reranking", "MindSmallReranking")
    assert tasks.loc[mind, (ZERO, "reference")] == pytest.approx(30.5974)
    assert (
        tasks.loc[mind, ("", "note")]
        == "ours max_over_subqueries_map_at_1000 vs ref map; stored x100 in the file"
    )
    assert tasks.loc[("Retrieval", "SciFact"), ("", "note")] == ""


def test_per_type_means_are_over_the_same_tasks_with_the_difference(side_by_side):
    _, section, _ = side_by_side
    cats = section.categories
    ours_rr, ref_rr = (78.0 + 62.0 + 31.0) / 3, (80.0 + 64.0 + 30.5974) / 3
    assert cats.loc["Reranking", (ZERO, "ours (same tasks)")] == pytest.approx(ours_rr)
    assert cats.loc["Reranking", (ZERO, "reference (same tasks)")] == pytest.approx(ref_rr)
    assert cats.loc["Reranking", (ZERO, "Δ")] == pytest.approx(ours_rr - ref_rr)
    assert cats.loc[MEAN_TASKS, (ZERO, "Δ")] == pytest.approx(
        (-5 - 2 + (78 - 80) + (62 - 64) + (31 - 30.5974)) / 5
    )
    assert cats.loc[N_TASKS, (ZERO, "ours (same tasks)")] == 5  # STS12: ours only, left out of both
    assert list(cats.index) == ["Retrieval", "Reranking", "Classification", MEAN_TASKS, N_TASKS]  # MTEB order
    assert section.tasks.loc[("STS", "STS12"), ("", "note")] == "not in the reference"
    assert math.isnan(section.tasks.loc[("STS", "STS12"), (ZERO, "Δ")])


def test_revision_choice_is_noted(tmp_path, side_by_side):
    _, _, note = side_by_side
    assert "org/ours: the reference has no revision 'r1' (ours); used 'external' (the only one there)" in note
    ref = tmp_path / "two"
    reference_folder(ref, revision="aaa", date=1_700_000_000.0)
    reference_folder(ref, revision="bbb", date=1_600_000_000.0)
    chosen = find_model(ref, "org/ours", "r1")
    assert chosen.revision == "aaa" and "the latest by result date of 2: aaa, bbb" in chosen.note
    reference_folder(ref, revision="r1")
    exact = find_model(ref, "org/ours", "r1")
    assert (exact.revision, exact.note) == ("r1", "")
    assert find_model(ref, "org/absent", "r1").folder is None


def test_report_renders_the_reference_sections_and_the_cli_accepts_both_references(tmp_path, capsys):
    from evalharness.cli import main

    ours_folder(tmp_path / "ours")
    reference_folder(tmp_path / "ref")
    out = tmp_path / "out"
    assert (
        main(
            [
                "report",
                str(tmp_path / "ours"),
                "--reference",
                str(tmp_path / "ref"),
                "--reference",
                "paper",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = (out / "report.md").read_text(encoding="utf-8")
    assert f"## Published numbers (mteb results: {tmp_path / 'ref'})" in text
    assert (
        "### org/ours: per task vs the reference" in text
        and "### org/ours: per type vs the reference (same tasks)" in text
    )
    assert re.search(
        r"\| Reranking +\| SciDocsRR +\| test +\| ours map_at_1000 vs ref map +\| +78\.00 \| +80\.00 \| +▼ −2\.00 \|",
        text,
    )
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "ours map_at_1000 vs ref map" in page and "per type vs the reference" in page
    capsys.readouterr()
    assert main(["report", str(tmp_path / "ours"), "--reference", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_the_paper_section_marks_other_metrics_and_other_splits(tmp_path):
    folder = tmp_path / "results" / "BAAI__bge-en-icl" / "rev"
    folder.mkdir(parents=True)
    for task in ("SciDocsRR", "AmazonCounterfactualClassification"):
        _result(task, OURS[task]).to_disk(folder / f"{task}.json")
    rep = build_report(
        tmp_path, reference_set="paper"
    )  # no benchmark: task defaults for AmazonCounterfactual
    tasks = rep.reference[0].tasks
    assert tasks.loc[("Reranking", "SciDocsRR"), ("", "note")] == "ours map_at_1000 vs paper map"
    assert tasks.loc[("Classification", "AmazonCounterfactualClassification"), ("", "note")] == (
        "ours validation, test · all 4 subsets vs paper test · en"
    )
    same = build_report(tmp_path, reference_set="paper", benchmark=V1).reference[0].tasks
    amazon = ("Classification", "AmazonCounterfactualClassification")
    assert same.loc[amazon, ("", "note")] == "" and same.loc[amazon, ("", "scored on")] == "test · en"
    assert same.loc[amazon, ("default", "ours")] == pytest.approx(70.0)
