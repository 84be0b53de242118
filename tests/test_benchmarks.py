"""The benchmarks' own accounting: the numbers in docs/performance.md are only as good as the task
they run on, the lower bound they divide by and the counters they read, so those are checked here (the
timed runs themselves are `make bench`, not tests)."""

from __future__ import annotations

import mteb
import pytest

from benchmarks import bench_memory
from benchmarks.bench_sweep import lower_bound
from benchmarks.common import ForwardRecorder
from benchmarks.sweep_task import REALISTIC, build, registered, task_class
from evalharness.encoders.backends import common_prefix_length
from evalharness.prompts import PromptedText, get_template
from evalharness.tasks import offline


def test_sweep_task_has_a_real_retrieval_shape_and_the_chatterbot_qrels():
    data = build(REALISTIC)
    test, train = data["test"], data["train"]
    doc_text = {d["id"]: d["text"] for d in test["corpus"]}
    assert len(test["queries"]) == REALISTIC.queries
    assert len(doc_text) == len(test["corpus"]) >= 10 * len(test["queries"])  # ids are unique
    assert len(set(doc_text.values())) == len(doc_text)  # so are texts

    # every query keeps exactly its chatterbot answers as relevant passages
    base = offline._build_chatterbot("full")
    base_text = {d["id"]: d["text"] for d in base["corpus"]}
    for q in test["queries"]:
        ours = {doc_text[d] for d in test["relevant_docs"][q["id"]]}
        theirs = {
            offline._truncate(base_text[d], REALISTIC.max_words)
            for d in base["test"]["relevant_docs"][q["id"]]
        }
        assert ours == theirs
    relevant = {d for docs in test["relevant_docs"].values() for d in docs}
    distractors = [t for d, t in doc_text.items() if d.startswith("x")]
    assert len(distractors) == REALISTIC.distractors and not relevant & {
        d for d in doc_text if d.startswith("x")
    }
    for text in distractors:  # no distractor carries a relevant answer
        assert not any(offline._norm(doc_text[d]) in offline._norm(text).split(" ") for d in relevant)
    # the examples' pool is disjoint from the evaluated queries
    assert not {q["text"] for q in train["queries"]} & {q["text"] for q in test["queries"]}


def test_sweep_task_is_registered_only_for_the_benchmark():
    cls = task_class(REALISTIC)
    with pytest.raises(KeyError):
        mteb.get_task(cls.metadata.name)
    with registered(cls) as name:
        assert type(mteb.get_task(name)) is cls
    with pytest.raises(KeyError):
        mteb.get_task(cls.metadata.name)


def test_lower_bound_counts_the_corpus_once_and_each_prefix_once(smollm2_backend):
    tpl = get_template("bge-icl")
    corpus = ["Berlin is in Germany.", "Paris is in France.", "Rust is a language."]
    passages = [PromptedText("", t, "", False) for t in corpus]
    settings = []
    for prefix in ("", tpl.render_prefix([], "Find the answer.") + "extra shot text "):
        settings.append(
            [
                PromptedText(prefix, tpl.wrap_query(q, "Find the answer."), tpl.suffix, True)
                for q in ("Where is Berlin?", "What is Rust, the programming language?")
            ]
        )
    # the sweep sent every passage twice and every query of the first setting twice
    calls = [passages + settings[0], passages[:2] + settings[0], settings[1] + passages[2:]]
    bound = lower_bound(smollm2_backend, calls, corpus + corpus[:1])

    expected_corpus = sum(len(ids) for ids in smollm2_backend.tokenize(passages))
    expected_queries = 0
    for items in settings:
        ids = smollm2_backend.tokenize(items)
        shared = common_prefix_length(ids)
        expected_queries += shared + sum(len(s) - shared for s in ids)
    assert bound["corpus"] == expected_corpus
    assert bound["queries"] == expected_queries
    assert bound["total"] == expected_corpus + expected_queries
    assert bound["n_settings"] == 2 and bound["queries_per_setting"] == [2, 2]
    assert bound["passages_as_embedded"]
    assert not lower_bound(smollm2_backend, [settings[0]], corpus)["passages_as_embedded"]


def test_forward_recorder_agrees_with_the_backend_counters(smollm2_backend):
    """The benchmarks report padding from hooks on the model, independent of the backend's own
    counters: both must agree on packed continuations (4D masks) and on padded batches (2D)."""
    tpl = get_template("bge-icl")
    prefix = tpl.render_prefix([], "Recorder check.")
    items = [
        PromptedText(prefix, tpl.wrap_query(q, "Recorder check."), tpl.suffix, True)
        for q in ("one", "a much longer query than the first one", "mid query")
    ] + [PromptedText("", t, "", False) for t in ("a b c d e f g h i j k l", "a b c d e f g h i j k l m")]
    recorder = ForwardRecorder(smollm2_backend.model)
    try:
        real0, padded0 = smollm2_backend.tokens_encoded, smollm2_backend.padded_tokens
        smollm2_backend.embed(items, batch_size=8)
        real, padded = smollm2_backend.tokens_encoded - real0, smollm2_backend.padded_tokens - padded0
    finally:
        recorder.close()
    assert (recorder.real, recorder.padded) == (real, padded)
    assert padded > 0  # the passages (one token apart) share a left-padded batch; packs add none
    queries, passages = smollm2_backend.tokenize(items[:3]), smollm2_backend.tokenize(items[3:])
    shared = common_prefix_length(queries)  # the shared prefix runs once
    assert real == shared + sum(len(q) - shared for q in queries) + sum(map(len, passages))


def test_memory_corpus_sizes_share_their_longest_texts():
    sizes = {m: bench_memory.corpus(base=6, multiple=m, max_words=24, head=4) for m in (1, 4)}
    assert [len(sizes[m]) for m in (1, 4)] == [6, 24]
    assert sizes[1][:4] == sizes[4][:4]  # the same longest texts, hence the same largest batch
    assert len(set(sizes[4])) == 24
