"""Kept rankings (evalharness/rankings.py): each retrieval query's ranking, as mteb scored it, beside the
result. They must be the rankings behind mteb's own per-query scores, name the examples each query
carried, and a missing file must make the task run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytrec_eval

from evalharness import per_item, rankings
from evalharness.plan import validate
from evalharness.runner import Runner
from tests import local_tasks
from tests.configs import run_config

TASKS = ["LocalRetrieval", "OfflineChatterbotRetrieval", "LocalSTS"]


def _cfg(tmp: Path, minilm_config, **overrides):
    return run_config(
        minilm_config,
        {"benchmark": {"name": "custom", "tasks": TASKS}, "results_dir": str(tmp / "out"),
         "shots": [0, 1], "examples": {"strategy": "train"}, "seed": 0, "embedding_cache": None},
        overrides,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, minilm_config, minilm_backend):
    local_tasks.register()
    tmp = tmp_path_factory.mktemp("rankings")
    cfg = _cfg(tmp, minilm_config)
    Runner(validate(cfg), backend=minilm_backend).run()
    cells = {p.name.split("__shots_")[1][0]: p for p in (tmp / "out").glob("results/*/*/experiments/*")}
    return cfg, cells


def _qrels(name: str) -> dict[str, dict[str, int]]:
    import mteb

    task = mteb.get_task(name)
    task.load_data()
    rel = task.dataset["default"]["test"]["relevant_docs"]
    return {q: {d: int(s) for d, s in docs.items()} for q, docs in rel.items()}


def _texts(name: str) -> dict[str, str]:
    import mteb

    task = mteb.get_task(name)
    task.load_data()
    queries = task.dataset["default"]["test"]["queries"]
    return dict(zip(queries["id"], queries["text"], strict=True))


@pytest.mark.parametrize("shots", ["0", "1"])
@pytest.mark.parametrize("name", ["LocalRetrieval", "OfflineChatterbotRetrieval"])
def test_kept_rankings_are_the_ones_behind_mtebs_per_query_scores(run, name, shots):
    _, cells = run
    exp_dir = cells[shots]
    entry = json.loads((exp_dir / "manifest.json").read_text())["tasks"][name]
    assert entry["rankings"] == f"rankings/{name}.json"
    data = rankings.read(exp_dir / entry["rankings"])
    (part,) = data["parts"]
    qrels = _qrels(name)
    run_ = {
        q: dict(zip(d, s, strict=True))
        for q, d, s in zip(part["ids"], part["docs"], part["scores"], strict=True)
    }
    ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run_)
    (values,) = per_item.read(exp_dir / entry["per_item"])["parts"]
    assert values["ids"] == part["ids"]
    for q, value in zip(values["ids"], values["values"], strict=True):
        assert ndcg[q]["ndcg_cut_10"] == pytest.approx(value, abs=1e-9), q
    texts = _texts(name)
    assert part["texts"] == [texts[q] for q in part["ids"]]
    for q, docs, first in zip(part["ids"], part["docs"], part["first_relevant"], strict=True):
        hits = [r for r, d in enumerate(docs, 1) if qrels[q].get(d, 0) > 0]
        assert first == (hits[0] if hits else first), q  # beyond the kept depth it may be larger
        assert hits or first is None or first > len(docs)
    assert all(a >= b for s in part["scores"] for a, b in zip(s, s[1:], strict=False))  # best first


def test_each_query_names_the_examples_its_prompt_carried(run):
    _, cells = run
    for shots, want in (("0", []), ("1", [0])):
        entry = json.loads((cells[shots] / "manifest.json").read_text())["tasks"]["LocalRetrieval"]
        (part,) = rankings.read(cells[shots] / entry["rankings"])["parts"]
        assert part["examples"] == [want] * len(part["ids"])
        assert len(entry["examples"]) == len(want)


def test_only_ranking_tasks_keep_rankings(run):
    _, cells = run
    entry = json.loads((cells["0"] / "manifest.json").read_text())["tasks"]["LocalSTS"]
    assert "rankings" not in entry and not rankings.path(cells["0"], "LocalSTS").exists()


def test_a_missing_rankings_file_makes_the_task_run_again(run, minilm_backend):
    cfg, cells = run
    file = rankings.path(cells["1"], "LocalRetrieval")
    before = json.loads(file.read_text())
    file.unlink()
    records = Runner(validate(cfg), backend=minilm_backend).run()
    redone = {(r.cell.shots, r.task) for r in records if not r.skipped}
    assert redone == {(1, "LocalRetrieval")}
    assert json.loads(file.read_text()) == before


def test_first_relevant_rank():
    assert rankings.first_relevant(["a", "b", "c"], {"c": 1, "a": 0}) == 3
    assert rankings.first_relevant(["a", "b"], {"z": 1}) is None
