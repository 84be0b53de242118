"""The embedding cache and token-budget batching."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from evalharness.encoders.backends import token_batches
from evalharness.encoders.cache import EmbeddingCache, item_key
from evalharness.prompts import PromptedText


def _items(texts, query=False, prefix=""):
    return [PromptedText(prefix, t, "", query) for t in texts]


def _fake(items):
    return np.stack([np.full(4, float(len(it.text)), dtype=np.float32) for it in items])


def test_only_unseen_texts_are_computed_and_order_is_kept():
    cache, calls = EmbeddingCache(), []

    def compute(items):
        calls.append([it.body for it in items])
        return _fake(items)

    out = cache.embed(_items(["aa", "b", "aa"]), compute)
    assert calls == [["aa", "b"]] and out[:, 0].tolist() == [2, 1, 2]
    cache.embed(_items(["b", "ccc"]), compute)
    assert calls[-1] == ["ccc"] and cache.stats()["hits"] == 2


def test_key_separates_side_prefix_and_suffix():
    base = PromptedText("p", "text", "s", True)
    variants = [
        PromptedText("", "ptext", "s", True),
        PromptedText("p", "text", "s", False),
        PromptedText("p", "texts", "", True),
    ]
    assert len({item_key(v) for v in [base, *variants]}) == 4


def test_disk_cache_persists_across_instances(tmp_path):
    ns = {"model": "m", "revision": "r"}
    a = EmbeddingCache.on_disk(tmp_path, ns)
    a.embed(_items(["x", "yy"]), _fake)
    b = EmbeddingCache.on_disk(tmp_path, ns)
    out = b.embed(_items(["yy", "x"]), lambda items: pytest.fail("nothing should be recomputed"))
    assert out[:, 0].tolist() == [2, 1] and b.stats()["disk_hits"] == 2 and b.stats()["disk_bytes"] > 0
    other = EmbeddingCache.on_disk(tmp_path, {"model": "m", "revision": "other"})
    assert other.path != a.path  # another configuration never sees these vectors


def _writer(path, start):
    cache = EmbeddingCache(path, {"model": "m"})
    for i in range(start, start + 200, 10):
        cache.embed(_items([str(j) for j in range(i, i + 20)]), _fake)


def test_concurrent_writers_do_not_corrupt_the_cache(tmp_path):
    path = tmp_path / "shared.sqlite"
    EmbeddingCache(path, {"model": "m"})
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    reader = EmbeddingCache(path, {"model": "m"})
    texts = [str(j) for j in range(0, 310)]
    out = reader.embed(_items(texts), lambda items: pytest.fail(f"missing {[it.body for it in items][:5]}"))
    assert out[:, 0].tolist() == [float(len(t)) for t in texts]


def test_token_batches_respect_count_and_token_budget():
    lengths = [100, 90, 50, 10, 10, 10, 10, 10]
    batches = token_batches(lengths, max_count=4, max_tokens=200, max_padding=1.0)
    assert batches == [[0, 1], [2, 3, 4, 5], [6, 7]]
    # with the 10% padding bound, 90 still joins 100 (10 pad of 200) but 50 starts its own batch
    assert token_batches(lengths, max_count=4, max_tokens=200) == [[0, 1], [2], [3, 4, 5, 6], [7]]
    for b in batches:
        assert len(b) * lengths[b[0]] <= 200 or len(b) == 1
    assert token_batches([500], 4, 100) == [[0]]  # an over-long text still runs, alone
    assert token_batches([10, 10], 8, 100, extra=40) == [[0, 1]]


def test_padding_stays_small_on_mixed_lengths(smollm2_backend):
    rng = np.random.default_rng(0)
    words = ["word"] * 300
    texts = [" ".join(words[: int(n)]) for n in rng.integers(1, 120, size=64)]
    before_real, before_pad = smollm2_backend.tokens_encoded, smollm2_backend.padded_tokens
    smollm2_backend.embed(_items(texts), batch_size=16)
    real = smollm2_backend.tokens_encoded - before_real
    pad = smollm2_backend.padded_tokens - before_pad
    assert pad / (real + pad) < 0.10
