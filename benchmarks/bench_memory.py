"""Padded tokens and peak memory as the corpus grows 1x, 4x, 16x.

The corpus is drawn from every text the offline tasks ship (chatterbot answers and questions, Pang &
Lee sentences, newsgroup posts, Lee documents, Rotten Tomatoes plots and reviews: 1 to a few hundred
tokens), sorted by length, thinned evenly to the 16x size, then taken every 16th / 4th / 1st text, so
the three corpora have the same length distribution and the same longest text: what changes is only
how many texts there are.

Each size runs in a fresh process: load the model, warm up on one batch of the longest texts, reset
the peak RSS to the current RSS (/proc/self/clear_refs), embed the corpus through the embedding cache
as the encoder does (`EmbeddingCache.embed` -> `DecoderBackend.embed`), and read the peak RSS
(VmHWM). "embed peak" is that peak above the RSS before the step: activations of the largest batch,
the tokenised corpus, the vectors. Its growth from 1x to 16x is compared with the growth of the
embedding matrix (texts x hidden x 4 bytes).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import REPO, ForwardRecorder, log, table

SIZES = (1, 4, 16)
_FIELDS = ("text", "sentences", "sentence1", "sentence2")


def _texts(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [
            t for k, v in obj.items() for t in ([v] if k in _FIELDS and isinstance(v, str) else _texts(v))
        ]
    if isinstance(obj, list):
        return [t for v in obj for t in _texts(v)]
    return []


def corpus_pool(max_words: int) -> list[str]:
    """Every distinct text of the offline tasks (full scale), cut to `max_words`, longest first."""
    from evalharness.tasks import offline

    texts: list[str] = []
    for cls in (
        offline.OfflineChatterbotRetrieval,
        offline.OfflinePangLeePolarityClassification,
        offline.OfflineMiniNewsgroupsClustering,
        offline.OfflineLeeSTS,
        offline.OfflineRottenTomatoesPairClassification,
    ):
        texts += _texts(cls(scale="full").splits())
    cut = {" ".join(t.split()[:max_words]) for t in texts if t.strip()}
    return sorted(cut, key=lambda t: (-len(t), t))


def corpus(base: int, multiple: int, max_words: int) -> list[str]:
    pool = corpus_pool(max_words)
    need = base * max(SIZES)
    if len(pool) < need:
        raise RuntimeError(f"only {len(pool)} distinct texts for a {need}-text corpus; lower --base")
    pool = pool[:: len(pool) // need][:need]  # evenly over the whole length range
    return pool[:: max(SIZES) // multiple]


def status_kib(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0), so that the peak measured next
    is the embedding step's own and not the model load's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(multiple: int, base: int, max_words: int, batch_size: int) -> dict[str, Any]:
    """One corpus size in this process."""
    from benchmarks.common import load_backend
    from evalharness.encoders.cache import EmbeddingCache
    from evalharness.prompts import PromptedText

    texts = corpus(base, multiple, max_words)
    backend = load_backend()
    items = [PromptedText("", t, "", is_query=False) for t in texts]
    # the same warm-up in every process: one batch of the longest texts of the largest corpus
    warm = corpus(base, max(SIZES), max_words)[:batch_size]
    backend.embed([PromptedText("", t, "", is_query=False) for t in warm], batch_size)
    gc.collect()
    was_reset = reset_peak()
    rss_before = status_kib("VmRSS")
    peak_before = status_kib("VmHWM")
    tokens0, padded0 = backend.tokens_encoded, getattr(backend, "padded_tokens", 0)
    hooks = ForwardRecorder(backend.model)
    cache = EmbeddingCache()
    start = time.perf_counter()
    vectors = cache.embed(items, lambda todo: backend.embed(todo, batch_size))
    wall = time.perf_counter() - start
    peak_after = status_kib("VmHWM")
    tokens = backend.tokens_encoded - tokens0
    padded = getattr(backend, "padded_tokens", 0) - padded0
    return {
        "multiple": multiple,
        "texts": len(texts),
        "tokens": tokens,
        "padded": padded,
        "padded_fraction": padded / max(1, tokens + padded),
        "padded_fraction_hooks": hooks.padded_fraction,
        "forwards": hooks.forwards,
        "max_positions_per_forward": hooks.max_positions,
        "wall_s": wall,
        "peak_reset": was_reset,
        "rss_before_mib": rss_before / 1024,
        "peak_before_mib": peak_before / 1024,
        "peak_mib": peak_after / 1024,
        "process_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "embed_peak_mib": (peak_after - rss_before) / 1024,
        "embedding_matrix_mib": vectors.nbytes / 2**20,
        "text_mib": sum(len(t.encode()) for t in texts) / 2**20,
    }


def run(base: int = 48, max_words: int = 96, batch_size: int = 16) -> dict[str, Any]:
    results = []
    for multiple in SIZES:
        log(f"[memory] corpus {multiple}x ({base * multiple} texts) in a fresh process")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_memory",
                "--child",
                str(multiple),
                str(base),
                str(max_words),
                str(batch_size),
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@result ")][-1]
        results.append(json.loads(line.removeprefix("@@result ")))
    first = results[0]
    rows = []
    for r in results:
        rows.append(
            [
                f"{r['multiple']}x",
                r["texts"],
                r["tokens"],
                f"{100 * r['padded_fraction']:.1f}%",
                r["max_positions_per_forward"],
                r["wall_s"],
                r["rss_before_mib"],
                r["embed_peak_mib"],
                r["embed_peak_mib"] - first["embed_peak_mib"],
                r["embedding_matrix_mib"] - first["embedding_matrix_mib"],
                r["text_mib"] - first["text_mib"],
            ]
        )
    text = table(
        [
            "corpus",
            "texts",
            "tokens",
            "padded / (real + padded)",
            "largest batch (positions)",
            "embed s",
            "RSS before MiB",
            "embed peak above it MiB",
            "its growth vs 1x MiB",
            "embedding matrix growth MiB",
            "text growth MiB",
        ],
        rows,
    )
    return {"sizes": results, "base": base, "max_words": max_words, "batch_size": batch_size, "table": text}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        m, b, w, bs = map(int, sys.argv[2:6])
        print("@@result " + json.dumps(child(m, b, w, bs)), flush=True)
    else:
        print(run()["table"])
