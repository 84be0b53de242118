"""Tests for evalharness.examples: file formats, name mapping, example sets, pools from mteb task data."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from mteb import TaskMetadata
from mteb.abstasks import (
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskClusteringLegacy,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

from evalharness.examples import (
    CQADUPSTACK_SUBTASKS,
    Example,
    ExampleError,
    FileExamples,
    FixedExamples,
    KnnExamples,
    TrainExamples,
    build_example_set,
    check_disjoint,
    find_example_file,
    load_example_file,
    sample_examples,
    task_example_pool,
)
from tests import local_tasks

DATA = Path(__file__).parent / "data" / "examples"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- file formats


def test_csv_with_stray_space_in_header():
    assert load_example_file(DATA / "DBPedia.csv") == [
        Example(
            "Chefs with a show on the Food Network.",
            "Robert Irvine  Robert Irvine is a British celebrity chef.",
            source="DBPedia.csv:2",
        ),
        Example(
            "houses of the Russian parliament",
            "State Duma  The State Duma is the lower house.",
            source="DBPedia.csv:3",
        ),
        Example(
            "tango music instruments",
            "Tango music  Tango is a style of music in 2/4 or 4/4 time.",
            source="DBPedia.csv:4",
        ),
    ]


def test_csv_with_tab_in_header():
    assert load_example_file(DATA / "MTOPIntentClassification.csv") == [
        Example("When will my next alarm start", "GET_ALARM", source="MTOPIntentClassification.csv:2"),
        Example(
            "I need you to message Zachary Fletcher", "SEND_MESSAGE", source="MTOPIntentClassification.csv:3"
        ),
        Example("Will we get a frost this week?", "GET_WEATHER", source="MTOPIntentClassification.csv:4"),
    ]


def test_header_only_csv_is_empty():
    assert load_example_file(DATA / "CQADupstackRetrieval.csv") == []


def test_csv_keeps_text_verbatim_and_counts_lines_of_multiline_rows(tmp_path):
    path = write(
        tmp_path / "SummEval.csv",
        'sum1,sum2\n"first\nsecond",plain \\n stays\n\n  padded  ,"a, b"\n',
    )
    assert load_example_file(path) == [
        Example("first\nsecond", "plain \\n stays", source="SummEval.csv:2"),
        Example("  padded  ", "a, b", source="SummEval.csv:5"),
    ]


def test_json_list_with_optional_instruct():
    assert load_example_file(DATA / "STS12.json") == [
        Example(
            "A man is dancing on the ceiling.",
            "A man is dancing on the ceiling of a room.",
            source="STS12.json:0",
        ),
        Example(
            "Line one\\nline two",
            "Two lines",
            instruction="Retrieve semantically similar text.",
            source="STS12.json:1",
        ),
    ]


def test_jsonl_query_pos():
    assert load_example_file(DATA / "news.jsonl") == [
        Example(
            "Who's Bella got a crush on?",
            "Bella Thorne has crushes on Demi Lovato.\\nThe 19-year-old actress revealed it.",
            source="news.jsonl:1",
        ),
        Example(
            "What are the signs of catching H3N2?",
            "Aussie flu symptoms include a sudden fever.",
            source="news.jsonl:3",
        ),
    ]


def test_jsonl_query_response_and_instruct(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"query": "q", "response": "r", "instruct": "Do it."}\n')
    assert load_example_file(path) == [Example("q", "r", instruction="Do it.", source="x.jsonl:1")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "Bad.csv",
            'query,pos\n"a","b"\n"c","d","e"\n',
            "Bad.csv:3: expected 2 columns (query,pos), got 3; quote fields that contain commas",
        ),
        (
            "Bad.csv",
            'query,pos\n"a","b"\n"c",\n',
            "Bad.csv:3: column 'pos' is empty; fill in both columns or delete the row",
        ),
        (
            "Bad.csv",
            "query,pos,neg\na,b,c\n",
            "Bad.csv:1: expected a header of exactly two column names (e.g. 'query,response'), "
            "got ['query', 'pos', 'neg']; add or fix the header line",
        ),
        (
            "Bad.csv",
            '"A man is dancing.","A man dances."\n',
            "Bad.csv:1: expected a header of exactly two column names",
        ),
        (
            "Bad.jsonl",
            '{"query": "a", "pos": "b"}\n{"query": "c", "pos": "d"\n',
            "Bad.jsonl:2: invalid JSON (Expecting ',' delimiter); each line must be one JSON object",
        ),
        ("Bad.jsonl", '{"query": "a", "pos": "b"}\n{"pos": "d"}\n', "Bad.jsonl:2: missing key 'query'"),
        (
            "Bad.jsonl",
            '{"query": "a", "pos": ["b"]}\n',
            "Bad.jsonl:1: 'pos' must be a string, got list",
        ),
        ("Bad.jsonl", '{"query": "a"}\n', "Bad.jsonl:1: missing key 'response' (or 'pos')"),
        (
            "Bad.json",
            '[\n  {"query": "a", "response": "b"},\n  {"query": 3, "response": "d"}\n]\n',
            "Bad.json:3 (element 1): 'query' must be a string, got int",
        ),
        (
            "Bad.json",
            '[\n  {"query": "a", "response": "b"},\n  {"query": "c"\n]\n',
            "Bad.json:4: invalid JSON",
        ),
        ("Bad.json", '{"query": "a", "response": "b"}', "Bad.json:1: top level is dict, not a list"),
        ("Bad.csv", b'query,pos\n"caf\xe9","b"\n', "Bad.csv:2: not valid UTF-8 (byte 0xe9); re-save"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(ExampleError) as err:
        load_example_file(path)
    assert str(err.value).startswith(message)


def test_unsupported_suffix(tmp_path):
    with pytest.raises(
        ExampleError, match=r"unsupported example file 'x\.txt'; use one of \.json, \.jsonl, \.csv"
    ):
        load_example_file(write(tmp_path / "x.txt", "q,r\n"))


# ---------------------------------------------------------------------------- finding files


@pytest.mark.parametrize("task_name", [*CQADUPSTACK_SUBTASKS, "CQADupstackRetrieval"])
def test_cqadupstack_subtasks_skip_header_only_file(task_name):
    # DATA has the header-only v1 CQADupstackRetrieval.csv and the real CQADupstack.csv
    assert find_example_file(DATA, task_name) == DATA / "CQADupstack.csv"


def test_cqadupstack_prefers_v2_json(tmp_path):
    write(tmp_path / "CQADupstackRetrieval.json", '[{"query": "q", "response": "r"}]')
    write(tmp_path / "CQADupstack.csv", "query,positive\nq,r\n")
    assert find_example_file(tmp_path, "CQADupstackGisRetrieval") == tmp_path / "CQADupstackRetrieval.json"


def test_case_folded_and_version_stripped_names(tmp_path):
    write(tmp_path / "healthcare-pubmed_100k-200k_1.jsonl", '{"query": "q", "pos": "p"}\n')
    write(tmp_path / "STS22.json", '[{"query": "q", "response": "r"}]')
    assert (
        find_example_file(tmp_path, "healthcare-pubmed_100K-200K_1")
        == tmp_path / "healthcare-pubmed_100k-200k_1.jsonl"
    )
    assert find_example_file(tmp_path, "STS22.v2") == tmp_path / "STS22.json"
    assert find_example_file(tmp_path, "STS22") == tmp_path / "STS22.json"


def test_missing_file_lists_tried_names_and_alternatives(tmp_path):
    write(tmp_path / "Banking77Clasification.json", "[]")
    write(tmp_path / "STS12.json", "[]")
    with pytest.raises(ExampleError) as err:
        find_example_file(tmp_path, "Banking77Classification")
    assert str(err.value) == (
        f"no example file for task 'Banking77Classification' in {tmp_path}: tried "
        "Banking77Classification.json, Banking77Classification.jsonl, Banking77Classification.csv; "
        "close matches: Banking77Clasification.json; available: Banking77Clasification.json, STS12.json. "
        "Add Banking77Classification.json (or rename the right file to that name), "
        "or run this task with strategy 'none'"
    )


# ---------------------------------------------------------------------------- fixed / file example sets


def test_fixed_examples_same_tuple_per_text_and_zero_shot_for_unknown():
    ex = (Example("q", "r"), Example("q2", "r2"))
    fixed = FixedExamples({"A": list(ex)}, "custom")
    assert fixed.strategy == "custom"
    assert fixed.for_texts("A", ["x", "y", "z"]) == [ex, ex, ex]
    assert fixed.for_texts("B", ["x"]) == [()]
    assert fixed.used() == {
        "A": [
            {"query": "q", "response": "r", "instruction": None, "source": ""},
            {"query": "q2", "response": "r2", "instruction": None, "source": ""},
        ],
        "B": [],
    }


def test_file_examples_first_shots_and_all():
    two = FileExamples(DATA, shots=2)
    result = two.for_texts("MTOPIntentClassification", ["a", "b"])
    assert [tuple(e.response for e in exs) for exs in result] == [("GET_ALARM", "SEND_MESSAGE")] * 2
    assert [d["source"] for d in two.used()["MTOPIntentClassification"]] == [
        "MTOPIntentClassification.csv:2",
        "MTOPIntentClassification.csv:3",
    ]
    everything = FileExamples(DATA, shots=-1)
    assert len(everything.for_texts("DBPedia", ["a"])[0]) == 3
    assert FileExamples(DATA, shots=0).for_texts("NoSuchTask", ["a", "b"]) == [(), ()]


def test_file_examples_shots_larger_than_pool_check_and_raise():
    examples = FileExamples(DATA, shots=5)
    problems = examples.check(["DBPedia", "CQADupstackUnixRetrieval", "NoSuchTask", "STS12"])
    assert (
        problems[0]
        == "task DBPedia: shots=5 but DBPedia.csv has only 3 examples; lower shots or add examples"
    )
    assert problems[1] == (
        "task CQADupstackUnixRetrieval: shots=5 but CQADupstack.csv has only 2 examples; "
        "lower shots or add examples"
    )
    assert problems[2].startswith("task NoSuchTask: no example file for task 'NoSuchTask'")
    assert (
        problems[3] == "task STS12: shots=5 but STS12.json has only 2 examples; lower shots or add examples"
    )
    assert len(problems) == 4
    with pytest.raises(ExampleError, match=re.escape(problems[0])):
        examples.for_texts("DBPedia", ["x"])
    assert FileExamples(DATA, shots=2).check(["DBPedia", "STS12", "CQADupstackRetrieval"]) == []


def test_file_examples_empty_file_and_query_equals_response(tmp_path):
    write(tmp_path / "Empty.csv", "query,pos\n")
    write(tmp_path / "Same.json", '[{"query": "A man.", "response": "A man. "}]')
    assert FileExamples(tmp_path, shots=-1).check(["Empty", "Same"]) == [
        "task Empty: Empty.csv has no examples; add examples to it or run this task with strategy 'none'",
        "task Same: Same.json has examples whose query equals the response (Same.json:0); "
        "use the corrected example files",
    ]


def test_invalid_shots():
    with pytest.raises(
        ExampleError, match=r"shots=-2 is invalid; use -1 for all examples in the file, 0 for none"
    ):
        FileExamples(DATA, shots=-2)


# ---------------------------------------------------------------------------- sampling


def test_sampling_is_seeded_and_without_replacement():
    pool = [Example(f"q{i}", f"r{i}") for i in range(20)]
    first = sample_examples(pool, 5, seed=7)
    assert first == sample_examples(pool, 5, seed=7)
    expected = [pool[int(i)] for i in np.random.default_rng(7).choice(20, size=5, replace=False)]
    assert first == expected
    assert len(set(first)) == 5
    assert sample_examples(pool, 5, seed=8) != first


def test_sampling_more_than_pool():
    pool = [Example("a", "b"), Example("c", "d")]
    with pytest.raises(
        ExampleError, match=r"cannot sample 3 examples from a pool of 2; lower shots or pass cap=True"
    ):
        sample_examples(pool, 3, seed=0)
    assert sorted(sample_examples(pool, 3, seed=0, cap=True), key=lambda e: e.query) == pool


# ---------------------------------------------------------------------------- mteb tasks


def make_task(base, name, task_type, main_score, dataset, eval_splits=("test",), eval_langs=None, **attrs):
    """An mteb task whose load_data installs `dataset` (a callable, so every task gets fresh data)."""
    # the shared metadata of the tests' local tasks, with this task's splits and languages
    common = dict(local_tasks.COMMON, eval_splits=list(eval_splits), eval_langs=eval_langs or ["eng-Latn"])

    def load_data(self, num_proc=None, **kwargs):
        self.dataset = dataset()
        self.data_loaded = True

    metadata = TaskMetadata(
        name=name,
        type=task_type,
        main_score=main_score,
        dataset={"path": f"local/{name}", "revision": "v1"},
        **common,
    )
    cls = type(name, (base,), {"metadata": metadata, "load_data": load_data, **attrs})
    return cls()


LABELS = ClassLabel(names=["negative", "positive"])
CLS_FEATURES = Features({"text": Value("string"), "label": LABELS})


def classification_data():
    train = Dataset.from_dict(
        {"text": ["great film", "awful plot", "loved it", "boring", "fine acting"], "label": [1, 0, 1, 0, 1]},
        features=CLS_FEATURES,
    )
    test = Dataset.from_dict({"text": ["superb", "awful plot "], "label": [1, 0]}, features=CLS_FEATURES)
    return DatasetDict({"train": train, "test": test})


def classification_task(name="TinyClassification"):
    return make_task(AbsTaskClassification, name, "Classification", "accuracy", classification_data)


def retrieval_data():
    def split(queries, corpus, qrels):
        return RetrievalSplitData(
            corpus=Dataset.from_list(corpus),
            queries=Dataset.from_list(queries),
            relevant_docs=qrels,
            top_ranked=None,
        )

    corpus = [
        {"id": "d1", "title": "Paris", "text": "Paris is the capital of France."},
        {"id": "d2", "title": "", "text": "France is in Europe."},
        {"id": "d3", "title": "Rust", "text": "Rust is memory safe."},
        {"id": "d4", "title": "Python", "text": "Python is readable."},
    ]
    train = split(
        [
            {"id": "t1", "text": "capital of france"},
            {"id": "t2", "text": "safe systems language"},
            {"id": "t3", "text": "no positive"},
        ],
        corpus,
        {"t1": {"d2": 1, "d1": 2}, "t2": {"d4": 1, "d3": 1}, "t3": {"d1": 0}},
    )
    test = split([{"id": "q1", "text": "readable language"}], corpus, {"q1": {"d4": 1}})
    return {"default": {"train": train, "test": test}}


def retrieval_task():
    return make_task(AbsTaskRetrieval, "TinyRetrieval", "Retrieval", "ndcg_at_10", retrieval_data)


def sts_data():
    def rows(pairs):
        return Dataset.from_list([{"sentence1": a, "sentence2": b, "score": s} for a, b, s in pairs])

    return DatasetDict(
        {
            "train": rows([("A cat sits.", "A cat is sitting.", 4.5), ("A dog runs.", "Stocks fell.", 0.2)]),
            "test": rows([("A man sings.", "A man is singing.", 5.0)]),
        }
    )


def test_classification_pool_maps_classlabel_names():
    task = classification_task()
    assert task_example_pool(task, "train") == [
        Example("great film", "positive", source="train:0"),
        Example("awful plot", "negative", source="train:1"),
        Example("loved it", "positive", source="train:2"),
        Example("boring", "negative", source="train:3"),
        Example("fine acting", "positive", source="train:4"),
    ]
    assert task.data_loaded


def test_classification_pool_multilingual_custom_columns_and_string_labels():
    def data():
        return {
            "en": DatasetDict({"train": Dataset.from_dict({"sentence": ["hi"], "intent": ["greet"]})}),
            "de": DatasetDict({"train": Dataset.from_dict({"sentence": ["hallo"], "intent": ["greet"]})}),
        }

    task = make_task(
        AbsTaskClassification,
        "TinyMultiClassification",
        "Classification",
        "accuracy",
        data,
        eval_langs={"en": ["eng-Latn"], "de": ["deu-Latn"]},
        input_column_name="sentence",
        label_column_name="intent",
    )
    assert task_example_pool(task, "train") == [Example("hi", "greet", source="train:0")]
    assert task_example_pool(task, "train", subset="de") == [Example("hallo", "greet", source="train:0")]
    with pytest.raises(
        ExampleError, match=r"task TinyMultiClassification: no subset 'fr' \(available: en, de\)"
    ):
        task_example_pool(task, "train", subset="fr")


def test_retrieval_pool_takes_top_relevant_doc():
    assert task_example_pool(retrieval_task(), "train") == [
        Example("capital of france", "Paris Paris is the capital of France.", source="train:t1"),
        # d3 and d4 tie at score 1: the smaller doc id wins; empty title leaves no leading space
        Example("safe systems language", "Rust Rust is memory safe.", source="train:t2"),
    ]


def test_sts_pool():
    task = make_task(AbsTaskSTS, "TinySTS", "STS", "cosine_spearman", sts_data)
    assert task_example_pool(task, "train") == [
        Example("A cat sits.", "A cat is sitting.", source="train:0"),
        Example("A dog runs.", "Stocks fell.", source="train:1"),
    ]


def test_pair_classification_pool_keeps_positive_pairs_and_single_row_format():
    def data():
        return DatasetDict(
            {
                "train": Dataset.from_list(
                    [
                        {
                            "sentence1": ["a b", "c d", "e f"],
                            "sentence2": ["a b c", "x y", "e f g"],
                            "labels": [1, 0, 1],
                        }
                    ]
                ),
                "test": Dataset.from_list([{"sentence1": "p", "sentence2": "q", "labels": 1}]),
            }
        )

    task = make_task(AbsTaskPairClassification, "TinyPair", "PairClassification", "max_ap", data)
    assert task_example_pool(task, "train") == [
        Example("a b", "a b c", source="train:0.0"),
        Example("e f", "e f g", source="train:0.2"),
    ]
    assert task_example_pool(task, "test") == [Example("p", "q", source="test:0")]


def test_clustering_pools_fast_and_legacy():
    fast = make_task(
        AbsTaskClustering,
        "TinyClustering",
        "Clustering",
        "v_measure",
        lambda: DatasetDict(
            {
                "train": Dataset.from_dict(
                    {"sentences": ["quantum bits", "dna repair"], "labels": ["physics", "bio"]}
                )
            }
        ),
    )
    assert task_example_pool(fast, "train") == [
        Example("quantum bits", "physics", source="train:0"),
        Example("dna repair", "bio", source="train:1"),
    ]
    legacy = make_task(
        AbsTaskClusteringLegacy,
        "TinyClusteringLegacy",
        "Clustering",
        "v_measure",
        lambda: DatasetDict(
            {
                "train": Dataset.from_dict(
                    {"sentences": [["a", "b"], ["c"]], "labels": [[0, 1], [1]]},
                    features=Features(
                        {"sentences": List(Value("string")), "labels": List(ClassLabel(names=["x", "y"]))}
                    ),
                )
            }
        ),
    )
    assert task_example_pool(legacy, "train") == [
        Example("a", "x", source="train:0.0"),
        Example("b", "y", source="train:0.1"),
        Example("c", "y", source="train:1.0"),
    ]


def test_missing_split_and_unsupported_type():
    task = make_task(AbsTaskSTS, "TinySTS", "STS", "cosine_spearman", sts_data)
    with pytest.raises(ExampleError) as err:
        task_example_pool(task, "validation")
    assert str(err.value) == (
        "task TinySTS: no split 'validation' in subset 'default' (available splits: train, test); "
        "choose another split or use strategy 'file'"
    )
    summ = make_task(AbsTaskSTS, "TinySumm", "Summarization", "cosine_spearman", sts_data)
    with pytest.raises(
        ExampleError, match=r"task TinySumm: cannot take examples from the data of a Summarization"
    ):
        task_example_pool(summ, "train")


# ---------------------------------------------------------------------------- disjointness / train


def test_check_disjoint():
    ok = [Example("great film", "positive", source="train:0")]
    check_disjoint(ok, ["superb", "awful plot"], "T", "test")
    with pytest.raises(ExampleError) as err:
        check_disjoint(
            [*ok, Example(" awful plot", "negative", source="train:1")], ["awful plot "], "T", "test"
        )
    assert str(err.value) == (
        "task T: example(s) train:1 (query 'awful plot') also appear in the evaluated split 'test'; "
        "examples must come from a split other than the evaluated one (pick another split or seed, "
        "or use strategy 'file')"
    )


def test_check_disjoint_refuses_a_response_from_the_evaluated_split():
    """The answer side leaks too: a demonstration whose response is an evaluated text."""
    with pytest.raises(ExampleError) as err:
        check_disjoint([Example("great film", " awful plot", source="train:0")], ["awful plot"], "T", "test")
    assert "train:0 (response 'awful plot') also appear in the evaluated split 'test'" in str(err.value)


def sts_response_overlap_data():
    """STS train pairs whose *second* sentence (the example's response) is a test sentence."""

    def rows(pairs):
        return Dataset.from_list([{"sentence1": a, "sentence2": b, "score": s} for a, b, s in pairs])

    return DatasetDict(
        {
            "train": rows(
                [("A cat sits.", "A man is singing.", 4.5), ("A dog runs.", "A dog is running.", 4.8)]
            ),
            "test": rows(
                [("A man sings.", "A man is singing.", 5.0), ("Stocks fell.", "Markets drop.", 4.0)]
            ),
        }
    )


def test_train_and_knn_examples_refuse_a_response_that_is_an_evaluated_text():
    task = make_task(AbsTaskSTS, "TinyOverlapSTS", "STS", "cosine_spearman", sts_response_overlap_data)
    examples = TrainExamples([task], shots=2, seed=0)  # the whole pool: train:0's response is a test text
    assert examples.check() == [
        "task TinyOverlapSTS: example(s) train:0 (response 'A man is singing.') also appear in the evaluated "
        "split 'test'; examples must come from a split other than the evaluated one (pick another split or "
        "seed, or use strategy 'file')"
    ]
    # knn pools drop such an entry instead of refusing (a pool is large)
    knn = build_example_set("knn", shots=1, tasks=[task])
    assert [e.source for e in knn.pools["TinyOverlapSTS"]] == ["train:1"]


def test_train_examples_refuses_eval_split():
    with pytest.raises(ExampleError) as err:
        TrainExamples({"TinyClassification": classification_task()}, shots=2, seed=0, split="test")
    assert str(err.value) == (
        "task TinyClassification: split 'test' is one of its eval_splits (test); examples must come from a "
        "split other than the evaluated one: choose another split (e.g. 'train' or 'validation') or use "
        "strategy 'file'"
    )


def test_train_examples_fixed_seeded_sample():
    task = classification_task()
    pool = task_example_pool(classification_task(), "train")
    examples = TrainExamples(
        [task], shots=3, seed=0
    )  # seeds 0 and 3 avoid train:1, which repeats a test text
    chosen = examples.for_texts("TinyClassification", ["x", "y"])
    assert chosen[0] == chosen[1] == tuple(sample_examples(pool, 3, seed=0))
    assert [e.source for e in chosen[0]] == ["train:3", "train:4", "train:2"]
    assert examples.used()["TinyClassification"] == [e.to_dict() for e in chosen[0]]
    other = TrainExamples([classification_task()], shots=3, seed=3).for_texts("TinyClassification", ["x"])[0]
    assert other != chosen[0]
    with pytest.raises(
        ExampleError, match=r"task Other was not given to TrainExamples \(known: TinyClassification\)"
    ):
        examples.for_texts("Other", ["x"])


def test_train_examples_detect_overlap_with_eval_split():
    # "awful plot" (train:1) is also a test text ("awful plot " after strip); shots=5 takes the whole pool
    examples = TrainExamples([classification_task()], shots=5, seed=0)
    assert examples.check() == [
        "task TinyClassification: example(s) train:1 (query 'awful plot') also appear in the evaluated split "
        "'test'; examples must come from a split other than the evaluated one (pick another split or seed, "
        "or use strategy 'file')"
    ]
    with pytest.raises(ExampleError, match=r"train:1 \(query 'awful plot'\)"):
        examples.for_texts("TinyClassification", ["x"])


def test_train_examples_retrieval_checks_queries_and_small_pool():
    examples = TrainExamples([retrieval_task()], shots=3, seed=0)
    assert examples.check() == [
        "task TinyRetrieval, split 'train': cannot sample 3 examples from a pool of 2; lower shots or pass "
        "cap=True to use the whole pool"
    ]
    capped = TrainExamples([retrieval_task()], shots=3, seed=0, cap=True)
    # the corpus is shared with the test split (as in BEIR); only test queries count as overlap
    assert sorted(e.source for e in capped.for_texts("TinyRetrieval", ["q"])[0]) == ["train:t1", "train:t2"]


# ---------------------------------------------------------------------------- knn


def bow_embed(texts: list[str]) -> np.ndarray:
    """Bag-of-words hashing embed: texts sharing words are similar."""
    out = np.zeros((len(texts), 1024), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            out[i, zlib.crc32(word.encode()) % 1024] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


KNN_POOL = [
    Example("cheap flights to paris", "travel", source="p:0"),
    Example("best pasta recipe", "cooking", source="p:1"),
    Example("paris hotel deals", "travel", source="p:2"),
    Example("baking fresh bread", "cooking", source="p:3"),
    Example("football match tonight", "sports", source="p:4"),
]


def test_knn_picks_nearest_examples_per_text():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return bow_embed(texts)

    knn = KnnExamples({"T": KNN_POOL}, shots=2)
    result = knn.for_texts("T", ["paris flights and hotel", "bread and pasta recipe"], embed)
    # nearest first: "paris hotel deals" (cos 2/(2*sqrt 3) = 0.58) beats "cheap flights to paris" (2/4 = 0.5);
    # "best pasta recipe" (0.58) beats "baking fresh bread" (0.29)
    assert result == [(KNN_POOL[2], KNN_POOL[0]), (KNN_POOL[1], KNN_POOL[3])]
    # one word in common with "football match tonight" only; the second slot is a 0-similarity tie -> p:0
    assert knn.for_texts("T", ["tonight football"], embed) == [(KNN_POOL[4], KNN_POOL[0])]
    # the pool is embedded once, then only the texts
    assert calls == [
        [e.query for e in KNN_POOL],
        ["paris flights and hotel", "bread and pasta recipe"],
        ["tonight football"],
    ]
    used = knn.used()["T"]
    assert used[0] == {**KNN_POOL[0].to_dict(), "count": 2}
    assert [(d["source"], d["count"]) for d in used] == [
        ("p:0", 2),
        ("p:1", 1),
        ("p:2", 1),
        ("p:3", 1),
        ("p:4", 1),
    ]


def test_knn_excludes_identical_text_and_breaks_ties_by_pool_order():
    knn = KnnExamples({"T": KNN_POOL}, shots=2)
    # the text itself is in the pool: it is skipped; the next paris entry comes first, then a tie at 0
    # similarity among the rest goes to the earliest pool entry
    assert knn.for_texts("T", ["cheap flights to paris"], bow_embed) == [(KNN_POOL[2], KNN_POOL[1])]
    assert knn.for_texts("T", ["zzz"], bow_embed) == [(KNN_POOL[0], KNN_POOL[1])]


def test_knn_needs_embed_and_enough_examples():
    with pytest.raises(ExampleError, match=r"strategy 'knn' needs the embed callable"):
        KnnExamples({"T": KNN_POOL}, shots=2).for_texts("T", ["x"])
    with pytest.raises(ExampleError, match=r"task T: shots=6 but the example pool has only 5 examples"):
        KnnExamples({"T": KNN_POOL}, shots=6).for_texts("T", ["x"], bow_embed)


# ---------------------------------------------------------------------------- factory


def test_build_example_set_strategies():
    assert build_example_set("none", shots=3).for_texts("Any", ["a"]) == [()]
    file_set = build_example_set("file", shots=1, root=DATA)
    assert file_set.strategy == "file"
    assert file_set.for_texts("STS12", ["a"])[0][0].source == "STS12.json:0"
    train = build_example_set("train", shots=2, seed=3, tasks=[classification_task()])
    assert isinstance(train, TrainExamples) and train.strategy == "train"
    knn = build_example_set("knn", shots=1, tasks=[classification_task()])
    # the train entry "awful plot" repeats a test text, so it is dropped from the knn pool
    # the train entry "awful plot" repeats a test text, so it is dropped from the knn pool: the text then
    # shares no word with any pool entry and the tie goes to the first one
    assert knn.for_texts("TinyClassification", ["awful plot twist"], bow_embed) == [
        (Example("great film", "positive", source="train:0"),)
    ]
    assert knn.for_texts("TinyClassification", ["so boring"], bow_embed) == [
        (Example("boring", "negative", source="train:3"),)
    ]
    with pytest.raises(ExampleError, match=r"split 'test' is one of its eval_splits"):
        build_example_set("knn", shots=1, tasks=[classification_task()], split="test")
    with pytest.raises(ExampleError, match=r"strategy 'file' needs root"):
        build_example_set("file", shots=1)
    with pytest.raises(ExampleError) as err:
        build_example_set("random", shots=1)
    assert str(err.value) == "unknown example strategy 'random'; valid strategies: none, file, train, knn"
