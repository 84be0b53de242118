"""Per-item values (evalharness/per_item.py): what each task's main score is made of, kept beside the
mteb result. Their means (or correlations, or best APs) must give back mteb's own main scores, and a
kill while they are written must leave nothing that a re-run trusts."""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import numpy as np
import pytest
from datasets import Dataset
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from evalharness import per_item, store
from evalharness.plan import validate
from evalharness.runner import Runner
from evalharness.tasks.offline import OfflineRottenTomatoesPairClassification
from tests import local_tasks
from tests.configs import run_config

TOP_RANKED = {
    "q1": ["d1", "d2", "d7", "d3"],
    "q2": ["d3", "d4", "d1"],
    "q3": ["d6", "d5", "d8"],
    "q4": ["d5", "d8"],
}


class LocalReranking(AbsTaskRetrieval):
    """A reranking task as mteb 2 has them: retrieval over each query's own top-ranked candidates,
    main score MAP@1000."""

    metadata = TaskMetadata(
        name="LocalReranking",
        type="Reranking",
        main_score="map_at_1000",
        dataset={"path": "local/reranking", "revision": "1"},
        prompt={"query": "Given a question, rerank passages that answer it"},
        **local_tasks.COMMON,
    )

    def load_data(self, num_proc=None, **kwargs):
        if self.data_loaded:
            return
        split = local_tasks._retrieval_split(local_tasks.TEST_QUERIES)
        corpus = Dataset.from_list([{"id": k, "title": "", "text": v} for k, v in local_tasks.DOCS.items()])
        self.dataset = {"default": {"test": RetrievalSplitData(corpus=corpus, queries=split["queries"],
                                                               relevant_docs=split["relevant_docs"],
                                                               top_ranked=TOP_RANKED)}}  # fmt: skip
        self.data_loaded = True


class LocalTwoSplitPairClassification(OfflineRottenTomatoesPairClassification):
    """The offline pair-classification data, evaluated on two splits: each split's pairs must be filed
    under that split (mteb's pair-classification scoring is not told which part it scores)."""

    metadata = OfflineRottenTomatoesPairClassification.metadata.model_copy(
        update={"name": "LocalTwoSplitPairClassification", "eval_splits": ["test", "train"]}
    )


TASKS = [
    "LocalRetrieval", "LocalReranking", "LocalSTS", "LocalClassification", "OfflineChatterbotRetrieval",
    "OfflineLeeSTS", "OfflineMiniNewsgroupsClustering", "OfflineRottenTomatoesPairClassification",
    "OfflinePangLeePolarityClassification", "LocalTwoSplitSTS", "LocalTwoSplitPairClassification",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _register_local_tasks():
    from mteb.get_tasks import _TASKS_REGISTRY

    local_tasks.register()
    _TASKS_REGISTRY["LocalReranking"] = LocalReranking
    _TASKS_REGISTRY["LocalTwoSplitPairClassification"] = LocalTwoSplitPairClassification


def _cfg(tmp_path: Path, minilm_config, **overrides):
    return run_config(
        minilm_config,
        {"benchmark": {"name": "custom", "tasks": TASKS}, "results_dir": str(tmp_path / "out"),
         "shots": [0], "embedding_cache": None},
        overrides,
    )  # fmt: skip


def _part_score(data: dict, part: dict) -> float:
    """Each kind's statistic, computed here independently of the report's statistics."""
    if data["kind"] == "mean":
        return float(np.mean(part["values"]))
    if data["kind"] == "spearman":
        return float(spearmanr(part["values"], part["gold"]).statistic)
    assert data["kind"] == "max_ap"
    values = np.asarray(part["values"])
    return max(
        average_precision_score(part["gold"], values[:, j] * sign) for j, sign in enumerate(data["signs"])
    )


@pytest.fixture(scope="module")
def zero_shot_run(tmp_path_factory, minilm_config, minilm_backend):
    from mteb.get_tasks import _TASKS_REGISTRY

    local_tasks.register()
    _TASKS_REGISTRY["LocalReranking"] = LocalReranking
    _TASKS_REGISTRY["LocalTwoSplitPairClassification"] = LocalTwoSplitPairClassification
    tmp = tmp_path_factory.mktemp("per_item")
    records = Runner(validate(_cfg(tmp, minilm_config)), backend=minilm_backend).run()
    (exp_dir,) = (tmp / "out").glob("results/*/*/experiments/*")
    return exp_dir, records


def test_per_item_values_give_back_mtebs_main_scores(zero_shot_run):
    exp_dir, records = zero_shot_run
    manifest = json.loads((exp_dir / "manifest.json").read_text())
    kinds = {}
    for name in TASKS:
        result = mteb.TaskResult.from_disk(exp_dir / f"{name}.json")
        entry = manifest["tasks"][name]
        assert entry["per_item"] == f"per_item/{name}.json"
        data = per_item.read(exp_dir / entry["per_item"])
        kinds[name] = (data["kind"], data["unit"])
        assert data["metric"] == entry["main_score_name"]
        parts = {(p["split"], p["subset"]): p for p in data["parts"]}
        assert set(parts) == {(s, e["hf_subset"]) for s, entries in result.scores.items() for e in entries}
        for split, entries in result.scores.items():
            for e in entries:
                part = parts[(split, e["hf_subset"])]
                assert len(part["ids"]) == len(part["values"]) > 1
                ours = _part_score(data, part)
                if data["kind"] == "mean":  # mteb rounds these means (to 5 or 6 decimals)
                    assert ours == pytest.approx(e["main_score"], abs=5e-6), name
                    if data["unit"] == "query":  # pytrec_eval means, rounded to 5 decimals by mteb
                        assert round(ours, 5) == pytest.approx(e["main_score"], abs=1e-12), name
                else:
                    assert ours == pytest.approx(e["main_score"], abs=1e-6), name
        task_score = float(np.mean([_part_score(data, p) for p in data["parts"]]))
        assert task_score == pytest.approx(result.get_score(), abs=5e-6)
    assert kinds == {
        "LocalRetrieval": ("mean", "query"), "LocalReranking": ("mean", "query"),
        "LocalSTS": ("spearman", "pair"), "LocalClassification": ("mean", "item"),
        "OfflinePangLeePolarityClassification": ("mean", "item"),
        "LocalTwoSplitSTS": ("spearman", "pair"), "LocalTwoSplitPairClassification": ("max_ap", "pair"),
        "OfflineChatterbotRetrieval": ("mean", "query"), "OfflineLeeSTS": ("spearman", "pair"),
        "OfflineMiniNewsgroupsClustering": ("mean", "experiment"),
        "OfflineRottenTomatoesPairClassification": ("max_ap", "pair"),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["LocalClassification", "OfflinePangLeePolarityClassification"])
def test_classification_values_are_per_test_item_shares_of_correct_experiments(zero_shot_run, name):
    """Accuracy is a mean over the test set's items: per item, the share of mteb's experiments
    (classifiers fit on different train samples) that got it right; their mean is mteb's accuracy to
    1e-6, n is the test set's size, and each experiment's accuracy is kept beside them."""
    exp_dir, _ = zero_shot_run
    result = mteb.TaskResult.from_disk(exp_dir / f"{name}.json")
    data = per_item.read(exp_dir / "per_item" / f"{name}.json")
    task = mteb.get_task(name)
    task.load_data()
    for part in data["parts"]:
        (entry,) = [e for e in result.scores[part["split"]] if e["hf_subset"] == part["subset"]]
        split = task.dataset[part["split"]] if part["subset"] == "default" and part["split"] in task.dataset else (
            task.dataset[part["subset"]][part["split"]])  # fmt: skip
        runs = entry["scores_per_experiment"]
        assert (
            len(part["values"]) == len(split) and len(part["experiments"]) == len(runs) == task.n_experiments
        )
        assert part["experiments"] == pytest.approx([r["accuracy"] for r in runs], abs=1e-12)
        assert float(np.mean(part["values"])) == pytest.approx(entry["accuracy"], abs=1e-6)
        allowed = {i / len(runs) for i in range(len(runs) + 1)}
        assert set(np.round(part["values"], 12)) <= {round(a, 12) for a in allowed}
        if name.startswith("Offline"):  # per item, not one number repeated (the local task's 4 are all right)
            assert len(set(part["values"])) > 1


def test_retrieval_values_are_per_query_ndcg(zero_shot_run):
    """The values are the queries' own nDCG@10 (pytrec_eval over the run's rankings), not one number
    repeated: a query whose relevant passage ranks first scores 1."""
    exp_dir, _ = zero_shot_run
    data = per_item.read(exp_dir / "per_item" / "LocalRetrieval.json")
    (part,) = data["parts"]
    assert part["ids"] == sorted(local_tasks.TEST_QUERIES)
    assert all(0.0 <= v <= 1.0 for v in part["values"]) and max(part["values"]) == 1.0


def test_sts_pairs_reproduce_the_spearman(zero_shot_run):
    exp_dir, _ = zero_shot_run
    data = per_item.read(exp_dir / "per_item" / "LocalSTS.json")
    (part,) = data["parts"]
    gold = [s / 5 for *_, s in local_tasks.STS_TEST]  # mteb normalises gold scores to [0, 1]
    assert part["gold"] == pytest.approx(gold)
    result = mteb.TaskResult.from_disk(exp_dir / "LocalSTS.json")
    assert spearmanr(part["values"], part["gold"]).statistic == pytest.approx(result.get_score(), abs=1e-9)


def test_a_kill_while_writing_per_item_values_leaves_no_file_and_is_redone(
    tmp_path, monkeypatch, minilm_config, minilm_backend
):
    cfg = _cfg(tmp_path, minilm_config, benchmark={"name": "custom", "tasks": ["LocalRetrieval"]})
    plan = validate(cfg)
    real_dump = json.dump

    def dies_half_way(obj, f, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == per_item.FORMAT:
            f.write(json.dumps(obj)[:40])  # a partial file on its way to disk ...
            raise KeyboardInterrupt  # ... when the process is killed
        return real_dump(obj, f, **kwargs)

    monkeypatch.setattr(store.json, "dump", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        Runner(plan, backend=minilm_backend).run()
    (exp_dir,) = (tmp_path / "out").glob("results/*/*/experiments/*")
    assert (exp_dir / "LocalRetrieval.json").exists()  # mteb's result was written first ...
    assert list((exp_dir / per_item.FOLDER).iterdir()) == []  # ... no partial per-item file, no temp file
    assert "LocalRetrieval" not in store.read_manifest(exp_dir).get("tasks", {})  # ... so it is not done

    monkeypatch.setattr(store.json, "dump", real_dump)
    (record,) = Runner(plan, backend=minilm_backend).run()
    assert not record.skipped
    data = per_item.read(exp_dir / "per_item" / "LocalRetrieval.json")
    assert round(float(np.mean(data["parts"][0]["values"])), 5) == pytest.approx(record.main_score, abs=1e-12)

    # a done task whose per-item file went missing is redone, not trusted
    (exp_dir / "per_item" / "LocalRetrieval.json").unlink()
    (again,) = Runner(plan, backend=minilm_backend).run()
    assert not again.skipped and (exp_dir / "per_item" / "LocalRetrieval.json").exists()
    (done,) = Runner(plan, backend=minilm_backend).run()
    assert done.skipped


def test_experiment_values_or_why_not():
    """Classification scored otherwise than by accuracy keeps `scores_per_experiment`, clustering
    `v_measures` (one level); a task whose
    result has no such list (hierarchical clustering) gets a reason instead of a file."""
    from types import SimpleNamespace

    def result(entry):
        return SimpleNamespace(scores={"test": [{"hf_subset": "default", **entry}]})

    def record():
        return per_item.Record("T", "v_measure", "mean", "experiment")

    one = per_item.from_result(record(), result({"v_measures": {"Level 0": [0.5, 0.25]}}))
    assert one.parts[0]["values"] == [0.5, 0.25] and one.missing is None
    two = per_item.from_result(record(), result({"v_measures": {"Level 0": [0.5], "Level 1": [0.4]}}))
    assert two.parts == [] and two.missing == "the result has no per-experiment v_measure"
    assert per_item.write(Path("/nonexistent"), two) is None  # nothing written, the reason kept
    cls = per_item.from_result(
        per_item.Record("C", "accuracy", "mean", "experiment"),
        result({"scores_per_experiment": [{"accuracy": 0.75}, {"accuracy": 1.0}]}),
    )
    assert cls.parts[0]["values"] == [0.75, 1.0]
