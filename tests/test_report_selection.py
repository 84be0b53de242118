"""Issue 12, items 7 and 8: each task is scored on its benchmark's splits and subsets, not on everything a
result file holds; a one-column folder renders; the heat map's colour-bar label stays inside its PNG.

Result files are written with mteb's own `TaskResult`, with more splits and subsets than MTEB(eng, v1)
scores (as mteb writes them, and as published result files hold them), and every expected number is
computed by hand from the values below.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import mteb
import numpy as np
import pandas as pd
import pytest
from mteb.results import TaskResult
from PIL import Image

from evalharness import plots
from evalharness import selection as sel
from evalharness.reporting import (
    MEAN_TASKS,
    N_TASKS,
    borda,
    build_report,
    compare,
    deltas,
    task_labels,
    task_table,
    write_report,
)
from evalharness.results import load

V1 = "MTEB(eng, v1)"
STS17_SUBSETS = list(mteb.get_task("STS17").metadata.hf_subsets)  # 11, en-en among them
# main score (0-1) per task, split, subset; only one part of each is what MTEB(eng, v1) scores
VALUES: dict[str, dict[str, dict[str, float]]] = {
    "AmazonCounterfactualClassification": {
        "test": {"en": 0.70, "de": 0.60, "en-ext": 0.50, "ja": 0.40},
        "validation": {"en": 0.80, "de": 0.30, "en-ext": 0.20, "ja": 0.10},
    },
    "SciFact": {"test": {"default": 0.65}, "train": {"default": 0.75}},
    "EmotionClassification": {"test": {"default": 0.40}, "validation": {"default": 0.50}},
    "STS17": {"test": {s: (0.88 if s == "en-en" else 0.05 * i) for i, s in enumerate(STS17_SUBSETS)}},
}
# by hand (x100): MTEB(eng, v1)'s part, every part in the file, and the task's own mteb defaults
V1_SCORES = {
    "AmazonCounterfactualClassification": 70.0,
    "SciFact": 65.0,
    "EmotionClassification": 40.0,
    "STS17": 88.0,
}
ALL_ROWS = {
    "AmazonCounterfactualClassification": 100 * 3.6 / 8,
    "SciFact": 70.0,
    "EmotionClassification": 45.0,
    "STS17": 100 * np.mean(list(VALUES["STS17"]["test"].values())),
}
DEFAULTS = {**ALL_ROWS, "SciFact": 65.0, "EmotionClassification": 40.0}  # defaults: test only for these two
V1_PART = {
    "AmazonCounterfactualClassification": ("test", "en"),
    "SciFact": ("test", "default"),
    "EmotionClassification": ("test", "default"),
    "STS17": ("test", "en-en"),
}


def result_for(
    task: str, values: dict[str, dict[str, float]], shift: float = 0.0, off: float = 0.0
) -> TaskResult:
    """An mteb TaskResult with every split/subset of `values`; `shift` is added to MTEB(eng, v1)'s part and
    `off` to every other part (so that the two means move in opposite directions)."""
    meta = mteb.get_task(task).metadata
    scores = {
        split: {
            subset: {
                meta.main_score: v + (shift if (split, subset) == V1_PART[task] else off),
                "main_score": v + (shift if (split, subset) == V1_PART[task] else off),
            }
            for subset, v in subsets.items()
        }
        for split, subsets in values.items()
    }
    return TaskResult.from_task_results(mteb.get_task(task), scores, evaluation_time=1.0)


def plain_folder(
    root: Path, model: str = "org__plain", rev: str = "r1", skip: tuple[tuple[str, str, str], ...] = ()
) -> Path:
    """A plain mteb ResultCache folder (no manifest): what published result files look like."""
    folder = root / "results" / model / rev
    folder.mkdir(parents=True)
    for task, values in VALUES.items():
        kept = {
            sp: {su: v for su, v in subs.items() if (task, sp, su) not in skip} for sp, subs in values.items()
        }
        result_for(task, kept).to_disk(folder / f"{task}.json")
    return root


def our_cell(
    root: Path, shots: int, benchmark: dict, entries: dict | None = None, shift: float = 0.0, off: float = 0.0
) -> Path:
    """One experiment folder of ours: result files plus a manifest whose config names `benchmark`."""
    exp = f"examples_{'none' if shots == 0 else 'train'}__seed_0__shots_{shots}__template_plain"
    folder = root / "results" / "org__ours" / "r1" / "experiments" / exp
    folder.mkdir(parents=True)
    tasks = {}
    for task, values in VALUES.items():
        result_for(task, values, shift, off).to_disk(folder / f"{task}.json")
        tasks[task] = {"status": "done", **(entries or {}).get(task, {})}
    manifest = {
        "cell": {
            "shots": shots,
            "strategy": "none" if shots == 0 else "train",
            "seed": 0,
            "template": "plain",
            "set_id": None,
        },
        "model": "org/ours",
        "config": {"benchmark": benchmark},
        "tasks": tasks,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def per_task(results) -> dict[str, float]:
    table = task_table(compare(results))
    return {task: table.loc[(kind, task)].iloc[0] for kind, task in table.index}


# ---------------------------------------------------------------------------------------------
# Item 7: the benchmark's splits and subsets
# ---------------------------------------------------------------------------------------------


def test_installed_mteb_eng_v1_scores_the_parts_these_tests_assume():
    """The selections below come from the installed mteb (offline), not from us."""
    tasks = {t.metadata.name: t for t in mteb.get_benchmark(V1).tasks}
    for task, (split, subset) in V1_PART.items():
        assert (list(tasks[task].eval_splits), list(tasks[task].hf_subsets)) == ([split], [subset]), task
        chosen = sel.choose(task, option=V1)
        assert (chosen.splits, chosen.subsets, chosen.source) == ((split,), (subset,), sel.OPTION)
    assert sel.choose("SciFact").splits == ("test",) and len(sel.choose("STS17").subsets) == 11


def test_benchmark_option_scores_only_its_split_and_subset(tmp_path):
    loaded = load(plain_folder(tmp_path), benchmark=V1)
    assert loaded.problems == []
    got = per_task(loaded)
    assert got == pytest.approx(V1_SCORES)
    for task, value in V1_SCORES.items():
        assert not math.isclose(value, ALL_ROWS[task])  # the old all-rows mean is another number
        # mteb's own selection and score give the same number
        path = tmp_path / "results" / "org__plain" / "r1" / f"{task}.json"
        bench_task = next(t for t in mteb.get_benchmark(V1).tasks if t.metadata.name == task)
        assert 100 * TaskResult.from_disk(path).validate_and_filter_scores(
            bench_task
        ).get_score() == pytest.approx(value)
    # every row stays in the tidy frame; `selected` marks exactly the benchmark's part
    main = loaded.main(selected_only=False)
    n_parts = sum(len(subs) for values in VALUES.values() for subs in values.values())
    assert len(main) == n_parts == 8 + 2 + 2 + 11
    chosen = main[main["selected"]]
    assert sorted(zip(chosen["task"], chosen["split"], chosen["subset"], strict=True)) == sorted(
        (t, *p) for t, p in V1_PART.items()
    )
    assert len(loaded.main()) == 4 and loaded.main()["selected"].all()


def test_the_run_benchmark_in_the_manifest_is_used_without_an_option(tmp_path):
    our_cell(tmp_path, 0, {"name": V1})
    assert per_task(load(tmp_path)) == pytest.approx(V1_SCORES)
    # and an option does not override what the run recorded
    assert per_task(load(tmp_path, benchmark="offline-mini")) == pytest.approx(V1_SCORES)


def test_manifest_entries_then_the_runs_own_subsets_and_splits_come_first(tmp_path):
    entries = {"STS17": {"splits": ["test"], "subsets": ["en-en", "en-de"]}}  # what the runner evaluated
    bench = {
        "name": "custom",
        "subsets": {"AmazonCounterfactualClassification": ["de"]},
        "splits": {"AmazonCounterfactualClassification": ["test"], "SciFact": ["train"]},
    }
    our_cell(tmp_path, 0, bench, entries)
    got = per_task(load(tmp_path, benchmark=V1))
    en_de = VALUES["STS17"]["test"]["en-de"]
    assert got["STS17"] == pytest.approx(100 * (0.88 + en_de) / 2)  # (a) the manifest entry
    assert got["AmazonCounterfactualClassification"] == pytest.approx(60.0)  # (b) benchmark.subsets/splits
    assert got["SciFact"] == pytest.approx(75.0)
    assert got["EmotionClassification"] == pytest.approx(40.0)  # (b) custom: the task's defaults
    sources = load(tmp_path).selections.set_index("task")["source"]
    assert sources["STS17"] == sel.MANIFEST and sources["SciFact"] == sel.RUN_BENCHMARK


def test_without_any_benchmark_the_task_defaults_are_used_and_the_report_says_so(tmp_path):
    root = plain_folder(tmp_path)
    assert per_task(load(root)) == pytest.approx(DEFAULTS)
    rep = build_report(root)
    labels = dict(zip([t for _, t in rep.tasks.index], rep.task_labels, strict=True))
    assert labels == {
        "AmazonCounterfactualClassification": "validation, test · all 4 subsets",
        "SciFact": "test",
        "EmotionClassification": "test",
        "STS17": "test · all 11 subsets",
    }
    path, text = write_report(root, tmp_path / "out")
    problems = text.split("## Missing or partial results")[1].split("\n## ")[0]
    assert "org/plain (no experiment): no benchmark recorded" in problems
    assert '--benchmark "MTEB(eng, v1)"' in problems


def test_report_files_tables_means_borda_and_delta_use_only_the_selected_rows(tmp_path):
    """3-shot is +5 on the benchmark's part and -20 everywhere else: on the selected rows it wins every
    task (Δ +5, Borda 1st); on all rows it would lose."""
    our_cell(tmp_path, 0, {"name": V1})
    our_cell(tmp_path, 3, {"name": V1}, shift=0.05, off=-0.20)
    rep = build_report(tmp_path)
    few = ("org/ours", "3-shot train seed 0")
    assert {t: rep.tasks.loc[(k, t), few] for k, t in rep.tasks.index} == pytest.approx(
        {t: v + 5 for t, v in V1_SCORES.items()}
    )
    assert rep.summary.loc[MEAN_TASKS, few] == pytest.approx(np.mean(list(V1_SCORES.values())) + 5)
    assert rep.summary.loc[N_TASKS, few] == 4
    long, _ = deltas(rep.comparison, 0)
    assert long["delta"].to_numpy() == pytest.approx([5.0] * 4)
    ranks = borda(rep.comparison).set_index("setting")["rank"]
    assert ranks["3-shot train seed 0"] == 1 and ranks["0-shot"] == 2
    path, text = write_report(tmp_path, tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "scores.csv", keep_default_na=False)
    assert len(csv) == 2 * 4 and set(zip(csv["task"], csv["split"], csv["subset"], strict=True)) == {
        (t, *p) for t, p in V1_PART.items()
    }
    assert re.search(
        r"\| Classification \| AmazonCounterfactualClassification \| test · en +\| +70\.00 \| +75\.00 \|",
        text,
    )
    assert re.search(r"\| STS +\| STS17 +\| test · en-en +\| +88\.00 \| +93\.00 \|", text)
    assert "MTEB(eng, v1)'s splits and subsets" in text.split("## Splits and subsets")[1]


def test_a_selected_part_missing_from_the_file_gives_no_score_and_is_named(tmp_path):
    root = plain_folder(tmp_path, skip=(("AmazonCounterfactualClassification", "test", "en"),))
    loaded = load(root, benchmark=V1)
    assert any(
        "AmazonCounterfactualClassification has no score for test/en" in p and "left out of the means" in p
        for p in loaded.problems
    )
    got = per_task(loaded)
    assert math.isnan(got["AmazonCounterfactualClassification"])  # as mteb: NaN, not the mean of the rest
    assert got["SciFact"] == pytest.approx(65.0)
    # one of several selected parts missing (task defaults: all 8): still no score, not the mean of 7
    partial = plain_folder(
        tmp_path / "partial", skip=(("AmazonCounterfactualClassification", "validation", "ja"),)
    )
    loaded = load(partial)
    assert math.isnan(per_task(loaded)["AmazonCounterfactualClassification"])
    assert any(
        "AmazonCounterfactualClassification has no score for validation/ja" in p for p in loaded.problems
    )


def test_tasks_outside_the_option_benchmark_are_left_out_and_named(tmp_path):
    root = plain_folder(tmp_path)
    folder = root / "results" / "org__plain" / "r1"
    TaskResult.from_task_results(
        mteb.get_task("OfflineLeeSTS"),
        {"test": {"default": {"cosine_spearman": 0.5, "main_score": 0.5}}},
        1.0,
    ).to_disk(folder / "OfflineLeeSTS.json")
    rep = build_report(root, benchmark=V1)
    assert "OfflineLeeSTS" not in {t for _, t in rep.tasks.index}
    assert any("1 task of the folder is not in it and left out: OfflineLeeSTS" in n for n in rep.notes)
    assert not load(root, benchmark=V1).scores.query("task == 'OfflineLeeSTS'")["selected"].any()


def test_columns_scored_on_different_parts_are_flagged(tmp_path):
    our_cell(tmp_path, 0, {"name": V1})
    plain_folder(tmp_path)  # task defaults
    comp = compare(load(tmp_path))
    labels = task_labels(comp)
    assert labels[("Retrieval", "SciFact")] == "test"  # the same for both
    assert (
        labels[("Classification", "AmazonCounterfactualClassification")]
        == "test · en | validation, test · all 4 subsets"
    )
    assert any(
        p.startswith("AmazonCounterfactualClassification is scored on different splits/subsets")
        for p in comp.problems
    )
    assert not any(p.startswith("SciFact is scored") for p in comp.problems)


def test_cli_benchmark_option_and_an_unknown_name(tmp_path, capsys):
    from evalharness.cli import main

    root = plain_folder(tmp_path)
    assert main(["report", str(root), "--benchmark", V1, "--out", str(tmp_path / "o")]) == 0
    assert re.search(r"SciFact +\| test +\| +65\.00", capsys.readouterr().out)
    assert main(["report", str(root), "--benchmark", "MTEB(eng, v9)"]) == 2
    assert "unknown benchmark 'MTEB(eng, v9)'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Item 8: one column, and the heat map's colour bar
# ---------------------------------------------------------------------------------------------


def test_a_one_column_folder_renders_markdown_and_html_with_its_numbers(tmp_path):
    root = plain_folder(tmp_path)
    path, text = write_report(root, tmp_path / "out", benchmark=V1)
    summary = text.split("## Summary (MTEB-style)")[1].split("\n## ")[0]
    assert re.search(r"\| Classification +\| +55\.00 \|", summary)  # (70 + 40) / 2
    assert re.search(r"\| mean \(tasks\) +\| +65\.75 \|", summary)  # (70 + 65 + 40 + 88) / 4
    assert re.search(r"\| tasks +\| +4 \|", summary)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.count("<table") == 3  # summary, Borda and per task (no 0-shot cell, so no Δ tables)
    assert ">65.75<" in page and ">88.00<" in page and ">test · en-en<" in page
    assert (tmp_path / "out" / "plots" / "heatmap.png").exists()


def test_heatmap_colour_bar_label_is_not_cut_at_the_edge(tmp_path):
    """One column and long task names: the label used to run past the right edge. Nothing drawn may
    touch the saved image's border."""
    index = pd.MultiIndex.from_tuples(
        [("Classification", n) for n in ("TweetSentimentExtractionClassification", "AmazonCounterfactualClassification",
                                         "ToxicConversationsClassification", "MassiveScenarioClassification")],
        names=["type", "task"],
    )  # fmt: skip
    columns = pd.MultiIndex.from_tuples(
        [("BAAI/bge-en-icl", "0-shot all-shot file v1 long label")], names=["model", "setting"]
    )
    from types import SimpleNamespace

    rep = SimpleNamespace(tasks=pd.DataFrame([[8.8], [19.6], [4.5], [32.5]], index=index, columns=columns),
                          delta_tasks=pd.DataFrame(), baseline=0)  # fmt: skip
    path = plots._save(
        plots.heatmap(rep.tasks, rep.delta_tasks, rep.baseline), tmp_path / "heatmap.png", "heatmap"
    )
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    border = np.concatenate(
        [pixels[:, :3].ravel(), pixels[:, -3:].ravel(), pixels[:3].ravel(), pixels[-3:].ravel()]
    )
    assert border.min() > 240, "something drawn touches the image border (cut off)"
    # and the label is in the image: dark pixels in the right-most 40 px column band
    assert (pixels[:, -40:] < 100).any()
