"""An air-benchmark `Retriever` backed by the harness's encoder adapter, with exact or faiss search.

air-benchmark hands a retriever a corpus and the queries of one dataset (dev and test merged) and
expects the top-k documents per query. This one embeds passages raw and queries with instruction and
examples through `ICLEncoder` (so prompts, the shared-prefix cache, the embedding cache and the NaN
guard are the MTEB ones), then ranks by inner product of the normalised vectors (cosine). The
benchmark does not tell a retriever which dataset it is searching, so the harness passes the
`AirTask` as a keyword argument through `Evaluator.__call__(**kwargs)`: that is what selects the
dataset's examples and instruction.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from air_benchmark import Retriever
from mteb.types import PromptType

from evalharness.airbench.tasks import AirBenchError, AirTask

logger = logging.getLogger(__name__)

SEARCH_METHODS = ("exact", "faiss")
SCORE_BLOCK = 1 << 26  # query x document scores held at once by exact search (256 MiB of float32)


def check_search(method: str) -> list[str]:
    """Problems with a search method name (faiss must be importable); never raises."""
    if method not in SEARCH_METHODS:
        return [f"benchmark.airbench.search={method!r}; use one of {', '.join(SEARCH_METHODS)}"]
    if method == "faiss" and importlib.util.find_spec("faiss") is None:
        return [
            "benchmark.airbench.search=faiss but faiss is not installed; pip install faiss-cpu (or faiss-gpu)"
        ]
    return []


def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best columns by descending score, ties to the lower column (deterministic)."""
    n = scores.shape[1]
    if k < n:
        cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        cand = np.broadcast_to(np.arange(n), scores.shape).copy()
    cand_scores = np.take_along_axis(scores, cand, axis=1)
    order = np.lexsort((cand, -cand_scores), axis=1)
    idx = np.take_along_axis(cand, order, axis=1)
    return np.take_along_axis(scores, idx, axis=1), idx


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products, computed in query blocks so memory stays bounded for large corpora."""
    k = min(k, docs.shape[0])
    block = max(1, SCORE_BLOCK // max(1, docs.shape[0]))
    all_scores, all_idx = [], []
    for start in range(0, queries.shape[0], block):
        s, i = _top_k_rows(queries[start : start + block] @ docs.T, k)
        all_scores.append(s)
        all_idx.append(i)
    if not all_scores:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
    return np.concatenate(all_scores), np.concatenate(all_idx)


def faiss_search(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same search with a flat inner-product faiss index (exact; faster on large corpora)."""
    import faiss

    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, docs.shape[0]))
    return scores, idx


def search(
    q_vecs: np.ndarray,
    d_vecs: np.ndarray,
    q_ids: Sequence[str],
    d_ids: Sequence[str],
    top_k: int,
    method: str = "exact",
) -> dict[str, dict[str, float]]:
    """{query id: {doc id: score}} for the `top_k` best documents of each query."""
    if not len(d_ids) or not len(q_ids):
        return {qid: {} for qid in q_ids}
    run = faiss_search if method == "faiss" else exact_search
    scores, idx = run(q_vecs, d_vecs, top_k)
    return {
        qid: {d_ids[j]: float(s) for j, s in zip(row_idx, row_scores, strict=True) if j >= 0}
        for qid, row_idx, row_scores in zip(q_ids, idx, scores, strict=True)
    }


class ICLRetriever(Retriever):
    """air-benchmark retriever over an `ICLEncoder`. `str(retriever)` is the folder name air-benchmark
    files results under (and what the leaderboard shows), so each cell passes its own `name`."""

    def __init__(
        self,
        encoder: Any,
        name: str,
        *,
        search_top_k: int = 1000,
        method: str = "exact",
        corpus_chunk: int = 100_000,
    ) -> None:
        super().__init__(search_top_k)
        problems = check_search(method)
        if problems:
            raise AirBenchError(problems[0])
        self.encoder = encoder
        self.name = name
        self.method = method
        self.corpus_chunk = corpus_chunk
        self.stats: dict[str, int] = {}

    def __str__(self) -> str:
        return self.name

    def _embed(self, texts: list[str], task: AirTask, side: PromptType, split: str) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.corpus_chunk):
            chunk = texts[start : start + self.corpus_chunk]
            parts.append(
                self.encoder.encode(
                    [{"text": chunk}],
                    task_metadata=task.metadata,
                    hf_split=split,
                    hf_subset="default",
                    prompt_type=side,
                )
            )
            if len(texts) > self.corpus_chunk:
                logger.info("%s: %s %d/%d embedded", task.name, side.value, start + len(chunk), len(texts))
        return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)

    def __call__(
        self,
        corpus: Mapping[str, Mapping[str, Any]],
        queries: Mapping[str, str],
        airbench_task: AirTask | None = None,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        if airbench_task is None:
            raise AirBenchError(
                "ICLRetriever needs airbench_task=<AirTask> (passed through AIRBench.run / Evaluator "
                "kwargs): the benchmark does not say which dataset it is searching, and the examples and "
                "instruction depend on it"
            )
        d_ids = [str(d) for d in corpus]
        q_ids = [str(q) for q in queries]
        d_vecs = self._embed(
            [corpus[d]["text"] for d in corpus], airbench_task, PromptType.document, "corpus"
        )
        q_vecs = self._embed([queries[q] for q in queries], airbench_task, PromptType.query, "queries")
        self.stats = {"n_corpus": len(d_ids), "n_queries": len(q_ids)}
        return search(q_vecs, d_vecs, q_ids, d_ids, self.search_top_k, self.method)
