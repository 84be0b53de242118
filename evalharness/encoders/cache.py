"""Embeddings of prompted texts, kept across the cells of a sweep and across runs.

The vector of a text depends only on the model configuration and the exact prompted text (prefix,
body, suffix and side), so that is the key: passages are identical in every shot setting and are
encoded once per sweep; a re-run encodes nothing it has seen. Vectors are stored unnormalised, before
any per-task policy.

Two layers: a dict for the current process, and optionally an SQLite file per model configuration
(content-addressed rows, WAL journal, busy timeout), which several processes — Hydra multirun jobs on
one machine or on a shared filesystem — can read and write at the same time without corrupting it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalharness.prompts import PromptedText

logger = logging.getLogger(__name__)

_SQL_CHUNK = 500  # rows per SELECT ... IN (...), under SQLite's variable limit


def item_key(item: PromptedText) -> str:
    h = hashlib.sha256()
    for part in (item.prefix, item.body, item.suffix, "q" if item.is_query else "p"):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def namespace_id(namespace: Mapping[str, Any]) -> str:
    """Everything besides the text that decides a vector: model, revision, dtype, budgets, backend."""
    return hashlib.sha256(json.dumps(dict(namespace), sort_keys=True, default=str).encode()).hexdigest()[:16]


class EmbeddingCache:
    """Content-addressed store of float32 vectors; `path=None` keeps them in memory only."""

    def __init__(self, path: str | Path | None = None, namespace: Mapping[str, Any] | None = None) -> None:
        self._vectors: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self.path = Path(path) if path is not None else None
        self.namespace = dict(namespace or {})
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, data BLOB)"
                )
                db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('namespace', ?)",
                    (json.dumps(self.namespace, sort_keys=True, default=str),),
                )

    @classmethod
    def on_disk(cls, root: str | Path, namespace: Mapping[str, Any]) -> EmbeddingCache:
        return cls(Path(root) / f"{namespace_id(namespace)}.sqlite", namespace)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=120)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def __len__(self) -> int:
        return len(self._vectors)

    def _read_disk(self, keys: Sequence[str]) -> None:
        if self.path is None or not keys:
            return
        with self._connect() as db:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[start : start + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, dim, data in db.execute(
                    f"SELECT key, dim, data FROM vectors WHERE key IN ({marks})", chunk
                ):
                    vec = np.frombuffer(data, dtype=np.float32)
                    if vec.shape != (dim,) or not np.isfinite(vec).all():
                        logger.warning("ignoring a corrupt cache entry in %s", self.path)
                        continue
                    self._vectors[key] = vec
                    self.disk_hits += 1

    def _write_disk(self, rows: Mapping[str, np.ndarray]) -> None:
        if self.path is None or not rows:
            return
        with self._connect() as db:  # one transaction: all rows or none
            db.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)",
                [
                    (k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                    for k, v in rows.items()
                ],
            )

    def embed(
        self, items: Sequence[PromptedText], compute: Callable[[Sequence[PromptedText]], np.ndarray]
    ) -> np.ndarray:
        """Vectors for `items` in order; only texts never seen before go to `compute` (in one call)."""
        keys = [item_key(it) for it in items]
        unseen = [k for k in dict.fromkeys(keys) if k not in self._vectors]
        self._read_disk(unseen)
        missing: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._vectors and k not in missing:
                missing[k] = i
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            fresh = np.asarray(compute([items[i] for i in missing.values()]), dtype=np.float32)
            new = {k: fresh[j] for j, k in enumerate(missing)}
            if all(np.isfinite(v).all() for v in new.values()):  # never persist a broken vector
                self._write_disk(new)
            self._vectors.update(new)
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys])

    def disk_bytes(self) -> int:
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    def stats(self) -> dict[str, Any]:
        return {
            "entries": len(self._vectors),
            "hits": self.hits,
            "misses": self.misses,
            "disk_hits": self.disk_hits,
            "disk_bytes": self.disk_bytes(),
            "file": self.path.name if self.path else None,  # no machine paths in manifests
        }
