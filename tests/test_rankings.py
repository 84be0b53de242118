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


# -- the report's per-query view of the few-shot effect (evalharness/effect.py) -------------------


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    from evalharness.reporting import build_report

    cfg, _ = run
    return build_report(Path(cfg.results_dir), confidence=0, examples_effect=1)


def test_the_effect_view_lists_the_largest_per_query_changes_with_their_ranks(run, report):
    _, cells = run
    effect = report.examples_effect
    assert set(effect["task"]) <= {"LocalRetrieval", "OfflineChatterbotRetrieval"} and not effect.empty
    for task, rows in effect.groupby("task"):
        entry = {s: json.loads((cells[s] / "manifest.json").read_text())["tasks"][task] for s in "01"}
        values = {s: dict(zip(*[per_item.read(cells[s] / entry[s]["per_item"])["parts"][0][k]
                                for k in ("ids", "values")], strict=True)) for s in "01"}  # fmt: skip
        change = {q: 100 * (values["1"][q] - values["0"][q]) for q in values["0"]}
        gains = sorted((c for c in change.values() if c > 0), reverse=True)[:1]
        losses = sorted(c for c in change.values() if c < 0)[:1]
        assert sorted(rows["change"], reverse=True) == pytest.approx(gains + losses[::-1])
        ranks = {s: rankings.read(cells[s] / entry[s]["rankings"])["parts"][0] for s in "01"}
        for row in rows.itertuples():
            assert row.change == pytest.approx(change[row.query])
            for s, got in (("0", row.base_first_relevant), ("1", row.first_relevant)):
                part = ranks[s]
                assert got == part["first_relevant"][part["ids"].index(row.query)]
            assert row.text == ranks["1"]["texts"][ranks["1"]["ids"].index(row.query)]
            (example,) = entry["1"]["examples"]
            assert row.examples == [f"{example['query']} → {example['response']}"] and row.same_examples


def test_the_effect_view_is_in_both_report_pages_and_can_be_left_out(run, report):
    from evalharness.render import render_html, render_markdown
    from evalharness.reporting import build_report

    md, page = render_markdown(report), render_html(report)
    row = report.examples_effect.iloc[0]
    assert "## Which queries the examples helped or hurt (vs 0-shot)" in md
    assert f"{row['change']:+.1f}" in md and "Every query carried the same examples" in md
    assert '<table class="effect">' in page and row["text"].split()[0] in page
    cfg, _ = run
    bare = build_report(Path(cfg.results_dir), confidence=0, examples_effect=0)
    assert bare.examples_effect.empty and "Which queries" not in render_markdown(bare)
    with pytest.raises(ValueError, match="--examples-effect -1"):
        build_report(Path(cfg.results_dir), confidence=0, examples_effect=-1)
