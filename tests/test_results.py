"""Loading results folders (ours and plain mteb) into the tidy frame; problems reported, not raised.

`write_fixture` builds the hand-made folder that test_report.py and the notebook test also use: two
models x two shot settings x three tasks of two types, one of them CQADupstack as its 12 sub-tasks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mteb
import pandas as pd
import pytest
from mteb.results import TaskResult

from evalharness.plan import Cell
from evalharness.results import COLUMNS, cell_from_experiment, load, parse_airbench

MODELS = {"BAAI/bge-en-icl": "rev1", "org/other-model": "r0"}
CQA = [f"CQADupstack{f}Retrieval" for f in (
    "Android", "English", "Gaming", "Gis", "Mathematica", "Physics", "Programmers", "Stats", "Tex", "Unix",
    "Webmasters", "Wordpress",
)]  # fmt: skip
CELLS = {0: Cell(0, "none", None, "bge-icl"), 3: Cell(3, "file", None, "bge-icl", "v1")}
# main scores (0-1) per (model, shots): CQADupstack sub-task i gets base + step * i
SCORES = {
    ("BAAI/bge-en-icl", 0): {"cqa": (0.30, 0.01), "SciFact": 0.60, "STS12": 0.80},
    ("BAAI/bge-en-icl", 3): {"cqa": (0.40, 0.01), "SciFact": 0.62, "STS12": 0.81},
    ("org/other-model", 0): {"cqa": (0.50, 0.0), "SciFact": 0.55, "STS12": 0.85},
    ("org/other-model", 3): {"cqa": (0.45, 0.0), "SciFact": 0.60, "STS12": 0.86},
}


def experiment_name(cell: Cell) -> str:
    """mteb's experiment folder name: sorted `key_value` pairs joined by `__`."""
    return "__".join(f"{k}_{v}" for k, v in sorted(cell.experiment_kwargs().items()))


def task_result(name: str, score: float) -> TaskResult:
    task = mteb.get_task(name)
    entry = {task.metadata.main_score: score, "main_score": score, "extra_metric": score / 2}
    return TaskResult.from_task_results(task, {"test": {"default": entry}}, evaluation_time=1.0)


def cell_dir(root: Path, model: str, shots: int, cell: Cell | None = None) -> Path:
    rev = MODELS[model]
    name = experiment_name(cell or CELLS[shots])
    return root / "results" / model.replace("/", "__") / rev / "experiments" / name


def write_cell(root: Path, model: str, cell: Cell, tasks: dict[str, float]) -> Path:
    """One experiment folder of ours: a task file per task (main score `tasks[name]`), model_meta.json
    and a manifest that marks every task done."""
    folder = cell_dir(root, model, cell.shots, cell)
    folder.mkdir(parents=True)
    manifest = {
        "cell": {**cell.__dict__},
        "model": model,
        "config": {"benchmark": {"name": "fixture"}},
        "tasks": {},
    }
    for name, score in tasks.items():
        task_result(name, score).to_disk(folder / f"{name}.json")
        manifest["tasks"][name] = {"status": "done", "main_score": score}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder / "model_meta.json").write_text(json.dumps({"name": model, "revision": MODELS[model]}))
    return folder


def write_fixture(root: Path) -> Path:
    """Our layout: task files, model_meta.json and manifest.json in one experiment folder per cell."""
    for (model, shots), scores in SCORES.items():
        base, step = scores["cqa"]
        tasks = {name: base + step * i for i, name in enumerate(CQA)}
        tasks.update(SciFact=scores["SciFact"], STS12=scores["STS12"])
        write_cell(root, model, CELLS[shots], tasks)
    return root


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("results"))


def test_tidy_frame_has_every_cell_task_and_metric(fixture_dir):
    loaded = load(fixture_dir)
    assert loaded.problems == []
    df = loaded.scores
    assert list(df.columns) == COLUMNS
    main = loaded.main()
    assert len(main) == 2 * 2 * 14  # models x cells x (12 sub-tasks + 2)
    assert set(df["metric"]) == {"ndcg_at_10", "cosine_spearman", "extra_metric"}
    assert df.groupby(["model", "experiment", "task"]).size().eq(2).all()  # main + extra, no duplicate
    row = main[(main["task"] == "STS12") & (main["shots"] == 3) & (main["model"] == "BAAI/bge-en-icl")].iloc[
        0
    ]
    assert (row["strategy"], row["template"], row["set_id"], row["benchmark"]) == (
        "file",
        "bge-icl",
        "v1",
        "fixture",
    )
    assert (row["task_type"], row["split"], row["subset"], row["metric"]) == (
        "STS",
        "test",
        "default",
        "cosine_spearman",
    )
    assert row["score"] == pytest.approx(0.81)
    assert row["revision"] == "rev1"


def test_main_score_per_task_equals_mteb_get_score(fixture_dir):
    main = load(fixture_dir).main()
    for path in fixture_dir.glob("results/*/*/experiments/*/SciFact.json"):
        ours = main[(main["experiment"] == path.parent.name) & (main["task"] == "SciFact")]
        ours = ours[ours["revision"] == path.parent.parent.parent.name]
        assert ours["score"].mean() == pytest.approx(TaskResult.from_disk(path).get_score())


def test_plain_mteb_folder_and_experiment_names_without_manifest(tmp_path):
    plain = tmp_path / "results" / "org__plain" / "abc"
    plain.mkdir(parents=True)
    task_result("SciFact", 0.5).to_disk(plain / "SciFact.json")
    exp = (
        tmp_path
        / "results"
        / "org__plain"
        / "abc"
        / "experiments"
        / "examples_train__seed_2__shots_4__template_e5"
    )
    exp.mkdir(parents=True)
    task_result("SciFact", 0.6).to_disk(exp / "SciFact.json")
    loaded = load(tmp_path)
    assert loaded.problems == []
    main = loaded.main().set_index("experiment")
    assert main.loc["", "model"] == "org/plain"
    assert pd.isna(main.loc["", "shots"]) and pd.isna(main.loc["", "template"])
    assert (main.loc[exp.name, "shots"], main.loc[exp.name, "seed"]) == (4, 2)
    assert (main.loc[exp.name, "strategy"], main.loc[exp.name, "template"]) == ("train", "e5")


def test_experiment_name_parsing():
    assert cell_from_experiment("examples_file__set_v1__shots_-1__template_bge-icl") == {
        "strategy": "file", "set_id": "v1", "shots": -1, "template": "bge-icl",
    }  # fmt: skip
    assert cell_from_experiment("exp_0123456789abcdef") == {}
    assert parse_airbench("AIRBench_24.04_long-doc_arxiv_en_gpt3")["dataset"] == "gpt3"
    assert parse_airbench("AIRBench_24.05_qa_wiki_en")["domain"] == "wiki"
    assert parse_airbench("SciFact") is None


def test_broken_and_unfinished_results_are_reported_and_the_rest_loads(fixture_dir, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(fixture_dir, root)
    folder = cell_dir(root, "org/other-model", 3)
    (folder / "STS12.json").write_text("{ not json", encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tasks"]["SciFact"]["status"] = "running"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "CQADupstackTexRetrieval.json").unlink()
    loaded = load(root)
    text = "\n".join(loaded.problems)
    assert "unreadable result" in text and "STS12.json" in text
    assert "SciFact did not finish (status 'running')" in text
    assert "CQADupstackTexRetrieval is done in the manifest but its result file is missing" in text
    assert len(loaded.main()) == 2 * 2 * 14 - 2


def test_missing_folder_is_a_clear_error_and_an_empty_one_a_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nope")
    loaded = load(tmp_path)
    assert loaded.scores.empty
    assert loaded.problems == [f"no result files under {tmp_path}"]


@pytest.mark.parametrize(
    "cell",
    [("shots", 0, "none", None, "bge-icl", None), ("shots", 3, "train", 2, "plain", None),
     ("shots", -1, "file", None, "bge-icl", "v1"), ("shots", 5, "knn", 0, "e5", None)],
    ids=["zero", "seeded", "file-set", "knn"],
)  # fmt: skip
def test_the_folder_mteb_names_after_a_cell_reads_back_as_that_cell(tmp_path, cell):
    """The run names a cell's folder through mteb (ModelMeta.experiment_kwargs -> ResultCache path); the
    report reads the cell back from that name with the same table (evalharness.cells)."""
    from mteb import ResultCache

    from evalharness.config import load_model_config
    from evalharness.plan import Cell, RunConfig, experiment_dir

    _, shots, strategy, seed, template, set_id = cell
    planned = Cell(shots, strategy, seed, template, set_id)
    cfg = RunConfig(model=load_model_config("minilm"))
    folder = experiment_dir(ResultCache(tmp_path), cfg, planned)
    expected = {"shots": shots, "strategy": strategy, "template": template}
    expected |= {"seed": seed} if seed is not None else {}
    expected |= {"set_id": set_id} if set_id else {}
    assert cell_from_experiment(folder.name) == expected
