"""Where evalharness keeps what it builds: converted weights, trained offline models, embeddings.

Apart from the model loaders so that the trainer of the offline model (which the loaders call) can
find its output folder without importing them back."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Converted weights and embedding caches live here ($EVALHARNESS_CACHE, else ~/.cache/evalharness)."""
    root = os.environ.get("EVALHARNESS_CACHE") or Path.home() / ".cache" / "evalharness"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
