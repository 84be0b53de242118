"""Embeddings of prompted texts, kept across the cells of a sweep.

The vector of a text depends only on the model and the exact prompted text (prefix, body, suffix and
side), so that is the key: passages are identical in every shot setting and are encoded once per
sweep; zero-shot queries are shared between strategies. The owner of a cache must use it for one
model configuration only (the runner creates one per model).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from evalharness.prompts import PromptedText


def item_key(item: PromptedText) -> str:
    h = hashlib.sha256()
    for part in (item.prefix, item.body, item.suffix, "q" if item.is_query else "p"):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


class EmbeddingCache:
    """In-memory content-addressed store of unnormalised float32 vectors."""

    def __init__(self) -> None:
        self._vectors: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(
        self, items: Sequence[PromptedText], compute: Callable[[Sequence[PromptedText]], np.ndarray]
    ) -> np.ndarray:
        """Vectors for `items` in order; only the texts never seen before go to `compute` (in one call)."""
        keys = [item_key(it) for it in items]
        missing: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._vectors and k not in missing:
                missing[k] = i
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            fresh = compute([items[i] for i in missing.values()])
            for k, v in zip(missing, fresh, strict=True):
                self._vectors[k] = v
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys])

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._vectors), "hits": self.hits, "misses": self.misses}
