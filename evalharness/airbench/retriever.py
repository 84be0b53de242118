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
QUERY_BLOCK = 1024  # queries per pass over the corpus


def check_search(method: str) -> list[str]:
    """Problems with a search method name (faiss must be importable); never raises."""
    if method not in SEARCH_METHODS:
        return [f"benchmark.airbench.search={method!r}; use one of {', '.join(SEARCH_METHODS)}"]
    if method == "faiss" and importlib.util.find_spec("faiss") is None:
        return [
            "benchmark.airbench.search=faiss but faiss is not installed; pip install faiss-cpu (or faiss-gpu)"
        ]
    return []


def _order(scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by descending score, equal scores by ascending document index (deterministic)."""
    order = np.lexsort((idx, -scores), axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(idx, order, axis=1)


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products over query blocks x corpus tiles with a running top-k (torch on CPU:
    multi-threaded matmul and top-k, about 2x numpy's argpartition alone). Memory stays near
    SCORE_BLOCK scores and the corpus is streamed once per QUERY_BLOCK queries, which matters on
    corpora of millions of passages. Scores are exact; which of several documents tied exactly at the
    k-th score is kept is unspecified, as with faiss."""
    import torch

    n_docs = docs.shape[0]
    k = min(k, n_docs)
    d_block = max(k, SCORE_BLOCK // QUERY_BLOCK)
    corpus = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32))
    out_scores, out_idx = [], []
    for qs in range(0, queries.shape[0], QUERY_BLOCK):
        q = torch.from_numpy(np.ascontiguousarray(queries[qs : qs + QUERY_BLOCK], dtype=np.float32))
        best_s = q.new_empty((q.shape[0], 0))
        best_i = torch.empty((q.shape[0], 0), dtype=torch.long)
        for ds in range(0, n_docs, d_block):
            tile = q @ corpus[ds : ds + d_block].T
            s, i = torch.topk(tile, min(k, tile.shape[1]), dim=1)
            best_s, best_i = torch.cat([best_s, s], dim=1), torch.cat([best_i, i + ds], dim=1)
            if best_s.shape[1] > k:
                best_s, j = torch.topk(best_s, k, dim=1)
                best_i = torch.gather(best_i, 1, j)
        s_np, i_np = _order(best_s.numpy(), best_i.numpy())
        out_scores.append(s_np)
        out_idx.append(i_np)
    if not out_scores:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
    return np.concatenate(out_scores), np.concatenate(out_idx)


def faiss_search(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same search with a flat inner-product faiss index (exact; faster on large corpora)."""
    import faiss

    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, docs.shape[0]))
    return _order(scores, idx)


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
