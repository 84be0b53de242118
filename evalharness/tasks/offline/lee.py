"""OfflineLeeSTS: document similarity of the Lee news corpus (gensim 4.4.0 test data).

The reader (``lee.cor`` and the human similarity matrix), the builder (documents split so that test
and train pairs share none; mini test pairs spread over the score range) and the mteb task class.
"""

from __future__ import annotations

import random
from typing import Any

from mteb import TaskMetadata
from mteb.abstasks import AbsTaskSTS

from evalharness.tasks.offline.common import (
    _COMMON_METADATA,
    _GENSIM_DATA,
    GENSIM,
    SEED,
    _cached,
    _clean,
    _OfflineTask,
    _sizes,
    _truncate,
)


@_cached
def _lee() -> tuple[tuple[str, ...], tuple[tuple[float, ...], ...]]:
    """The 50 Lee documents and the 50x50 matrix of mean human similarity (upper triangle filled)."""
    docs = GENSIM.file(*_GENSIM_DATA, "lee.cor").read_text(encoding="latin-1").splitlines()
    docs = [_clean(d) for d in docs if d.strip()]
    rows = GENSIM.file(*_GENSIM_DATA, "similarities0-1.txt").read_text().splitlines()
    matrix = tuple(tuple(float(x) for x in row.split()) for row in rows if row.strip())
    if len(docs) != 50 or len(matrix) != 50 or any(len(r) != 50 for r in matrix):
        raise ValueError(f"unexpected Lee data: {len(docs)} documents, {len(matrix)} similarity rows")
    return tuple(docs), matrix


@_cached
def _build_lee(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflineLeeSTS", scale)
    docs, matrix = _lee()
    docs = [_truncate(d, cfg["words"]) for d in docs]
    order = list(range(len(docs)))
    random.Random(SEED).shuffle(order)
    test_docs, train_docs = sorted(order[: cfg["test_docs"]]), sorted(order[cfg["test_docs"] :])

    def pairs(ids: list[int]) -> list[dict[str, Any]]:
        return [
            {"sentence1": docs[i], "sentence2": docs[j], "score": matrix[i][j]}
            for a, i in enumerate(ids)
            for j in ids[a + 1 :]
        ]

    test = pairs(test_docs)
    if cfg["pairs"] is not None and cfg["pairs"] < len(test):
        test = _spread_by_score(test, cfg["pairs"])
    return {"test": test, "train": pairs(train_docs)}


def _spread_by_score(rows: list[dict[str, Any]], n: int, n_bins: int = 8) -> list[dict[str, Any]]:
    """n rows spread as evenly as possible over equal-width score bins (most Lee pairs score near the
    0.2 floor; a plain sample would hold few similar pairs). Seeded; keeps the input order."""
    rng = random.Random(SEED)
    lo = min(r["score"] for r in rows)
    hi = max(r["score"] for r in rows)
    width = (hi - lo) / n_bins or 1.0
    bins: list[list[int]] = [[] for _ in range(n_bins)]
    for idx, r in enumerate(rows):
        bins[min(int((r["score"] - lo) / width), n_bins - 1)].append(idx)
    for b in bins:
        rng.shuffle(b)
    chosen: list[int] = []
    while len(chosen) < n:
        for b in bins:
            if b and len(chosen) < n:
                chosen.append(b.pop())
    return [rows[i] for i in sorted(chosen)]


class OfflineLeeSTS(_OfflineTask, AbsTaskSTS):
    """Document similarity of Australian news articles (Lee, Pincombe & Welsh 2005).

    Source: gensim 4.4.0 (https://pypi.org/project/gensim/4.4.0/), test data files
    ``gensim/test/test_data/lee.cor`` (50 documents) and ``similarities0-1.txt`` (mean human
    similarity of every document pair, in [0, 1]; 1225 pairs). Licence: LGPL-2.1 (gensim, which
    redistributes the academic data set as test data). The documents are split into 36 test and 14
    train documents, so test and train pairs share no document. At mini scale the documents are cut
    to their first 40 words and 80 test pairs are chosen spread evenly over the score range (most
    pairs sit near the 0.2 floor; the even spread makes correlations higher than on all pairs: MiniLM
    0.79 mini vs 0.48 full); at full scale all 630 test pairs of untruncated documents are used.
    Train: all 91 pairs of the train documents.
    """

    metadata = TaskMetadata(
        name="OfflineLeeSTS",
        description="Score the similarity of two news articles; gold = mean human rating in [0, 1].",
        reference=GENSIM.pypi_url,
        dataset=GENSIM.dataset("gensim/test/test_data/lee.cor,gensim/test/test_data/similarities0-1.txt"),
        type="STS",
        main_score="cosine_spearman",
        date=("2001-01-01", "2005-12-31"),
        domains=["News", "Written"],
        license="https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        prompt="Retrieve news articles that are semantically similar to the given article",
        **_COMMON_METADATA,
    )
    min_score = 0
    max_score = 1
    _builder = staticmethod(_build_lee)
