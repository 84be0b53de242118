"""Hard-negative mining for rows without negatives, as FlagEmbedding's `hn_mine` does it: embed every
query (zero-shot, with its instruction, as the evaluation prompts it) and a candidate corpus (every
positive and negative of the dataset, raw), rank the corpus per query, and sample negatives from a
rank range after dropping the row's positives; when the range holds too few, the rest is sampled from
the whole corpus (the reference's fallback)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from evalharness.prompts import PromptedText, PromptTemplate
from evalharness.train.data import Dataset

logger = logging.getLogger(__name__)


def _unit(vecs: np.ndarray) -> np.ndarray:
    return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def mine_hard_negatives(
    dataset: Dataset,
    backend: Any,
    template: PromptTemplate,
    *,
    negatives: int,
    rank_range: Sequence[int] = (2, 100),
    seed: int = 0,
    batch_size: int = 16,
) -> Dataset:
    """A copy of `dataset` whose rows without negatives get `negatives` mined ones (rows that have
    some keep theirs)."""
    todo = [i for i, r in enumerate(dataset.rows) if not r.neg]
    if not todo or negatives <= 0:
        return dataset
    corpus = list(dict.fromkeys(t for r in dataset.rows for t in (*r.pos, *r.neg)))
    queries = [
        PromptedText(
            "", template.wrap_query(dataset.rows[i].query, dataset.rows[i].prompt), template.suffix, True
        )
        for i in todo
    ]
    q = _unit(np.asarray(backend.embed(queries, batch_size), dtype=np.float32))
    c = _unit(
        np.asarray(
            backend.embed([PromptedText("", t, "", False) for t in corpus], batch_size), dtype=np.float32
        )
    )
    order = np.argsort(-(q @ c.T), axis=1, kind="stable")
    lo, hi = int(rank_range[0]), int(rank_range[1])
    rng = random.Random(seed)
    rows = list(dataset.rows)
    short = 0
    for n, i in enumerate(todo):
        row = rows[i]
        banned = {*row.pos, row.query}
        ranked = [corpus[j] for j in order[n, lo:hi] if corpus[j] not in banned]
        picked = rng.sample(ranked, min(negatives, len(ranked)))
        if len(picked) < negatives:
            short += 1
            rest = [t for t in corpus if t not in banned and t not in picked]
            picked += rng.sample(rest, min(negatives - len(picked), len(rest)))
        rows[i] = replace(row, neg=tuple(picked))
    if short:
        logger.warning(
            "%s: %d row(s) had fewer than %d candidates in ranks %d-%d; the rest were sampled from the "
            "whole corpus, as the reference does",
            dataset.name, short, negatives, lo, hi,
        )  # fmt: skip
    return Dataset(dataset.name, rows)
