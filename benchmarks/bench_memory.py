"""Padded tokens and peak memory as the corpus grows 1x, 4x, 16x.

The corpus is drawn from every text the offline tasks ship (chatterbot answers and questions, Pang &
Lee sentences, newsgroup posts, Lee documents, Rotten Tomatoes plots and reviews: 1 to a few hundred
tokens): the 16 (batch size) longest texts in every size, plus texts taken evenly over the whole
length range of the others, so the three corpora have the same length distribution: what changes is
only how many texts there are. Passages are truncated to the token length of the shortest of those 16
(`passage_max_length`), so that every size forms the same largest batch, 16 x that length, and none
larger: without the cut the largest batch grows with the corpus (1,480 / 1,845 / 2,400 positions at
1x / 4x / 16x) because the padding bound splits the 16 longest texts (121 to 251 tokens) while a
bigger corpus has more texts of one length to fill a batch, and activations follow rows x width.

Each size runs in a fresh process: load the model, warm up on one batch of short texts, touch every
weight, then embed the corpus through the embedding cache as the encoder does (`EmbeddingCache.embed`
-> `DecoderBackend.embed`). The weights are memory-mapped from the safetensors file, so a token's row
of the input-embedding table becomes resident the first time the token is seen: without the touch a
bigger corpus (more distinct tokens) is charged with up to vocab x hidden x 4 bytes (108 MiB here) of
clean file pages (+40 / +64 / +90 MiB at 1x / 4x / 16x) that are the model's, not the corpus's.

The children run with glibc's mmap threshold fixed at 128 KiB (`MALLOC_MMAP_THRESHOLD_`, unless set
already): by default glibc raises the threshold to the largest block freed, so after the model load
every activation lands in the heap and the step's peak depends on the heap's layout (+-25 MiB between
identical runs: 69 to 118 MiB); with it fixed, activations are mapped and unmapped as they are
allocated and freed, and the peak is what the step allocates (56.2 to 56.7 MiB over six runs). It
costs time (16x: about 55 s instead of 39 s here), so the embed s column is not a speed figure.
Columns: the process's peak RSS (`ru_maxrss`, model and warm-up included; it varies by about
+-100 MiB between identical processes with the C allocator's layout), the embedding step's own peak
above the memory in use before it (VmHWM after a reset through /proc/self/clear_refs), and the memory
still in use after it (after `malloc_trim`, with the vectors alive) minus before: what the corpus
costs to keep, to compare with the embedding matrix (texts x hidden x 4 bytes).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import REPO, ForwardRecorder, log, table, task_texts

SIZES = (1, 4, 16)


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
        texts += task_texts(cls(scale="full").splits())
    cut = {" ".join(t.split()[:max_words]) for t in texts if t.strip()}
    return sorted(cut, key=lambda t: (-len(t), t))


def corpus(base: int, multiple: int, max_words: int, head: int = 16) -> list[str]:
    """`base x multiple` texts: the `head` longest texts of the pool (the same in every size, so the
    largest batch, and with it the activation memory, is the same at every size), then texts taken
    evenly over the whole length range of the rest."""
    pool = corpus_pool(max_words)
    top, rest = pool[:head], pool[head:]
    need = base * max(SIZES) - head
    if len(rest) < need:
        raise RuntimeError(f"only {len(pool)} distinct texts for a {need + head}-text corpus; lower --base")
    count = base * multiple - head
    return top + [rest[round(i * (len(rest) - 1) / max(1, count - 1))] for i in range(count)]


def status_kib(field: str) -> int:
    """VmRSS (resident now), VmHWM (peak resident) or RssFile (resident file pages) of this process,
    in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def live_kib() -> int:
    """Resident memory once Python's garbage and the C allocator's free pages are given back: what
    is still in use, without the heap that freed activations leave behind."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return status_kib("VmRSS")


def child(multiple: int, base: int, max_words: int, batch_size: int) -> dict[str, Any]:
    """One corpus size in this process."""
    import torch

    from benchmarks.common import load_backend, sibling_backend
    from evalharness.encoders.cache import EmbeddingCache
    from evalharness.prompts import PromptedText

    texts = corpus(base, multiple, max_words, head=batch_size)
    items = [PromptedText("", t, "", is_query=False) for t in texts]
    backend = load_backend()
    # the head texts all reach `cut` tokens, so they form one full batch (batch x cut) at every size
    cut = min(backend.count_tokens(items[:batch_size]))
    backend = sibling_backend(backend, passage_max_length=cut)
    # the same warm-up in every process (first kernel calls, lazy initialisation)
    backend.embed([PromptedText("", t, "", is_query=False) for t in texts[-batch_size:]], batch_size)
    with torch.inference_mode():  # page in every memory-mapped weight (see the module docstring)
        for p in backend.model.parameters():
            p.sum()
    live_before = live_kib()
    file_before = status_kib("RssFile")
    peak_warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    was_reset = reset_peak()
    tokens0, padded0 = backend.tokens_encoded, getattr(backend, "padded_tokens", 0)
    hooks = ForwardRecorder(backend.model)
    cache = EmbeddingCache()
    start = time.perf_counter()
    vectors = cache.embed(items, lambda todo: backend.embed(todo, batch_size))
    wall = time.perf_counter() - start
    step_peak = status_kib("VmHWM")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    live_after = live_kib()  # the vectors and the cache are still referenced here
    file_after = status_kib("RssFile")
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
        "passage_max_length": cut,
        "truncated": backend.n_truncated,
        "wall_s": wall,
        "peak_reset": was_reset,
        "live_before_mib": live_before / 1024,
        "peak_after_warmup_mib": peak_warm / 1024,
        "peak_mib": peak / 1024,
        "step_peak_above_live_mib": (step_peak - live_before) / 1024,
        "live_growth_mib": (live_after - live_before) / 1024,
        "file_pages_growth_mib": (file_after - file_before) / 1024,
        "embedding_matrix_mib": vectors.nbytes / 2**20,
        "text_mib": sum(len(t.encode()) for t in texts) / 2**20,
        "cache_entries": len(cache),
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
            env={"MALLOC_MMAP_THRESHOLD_": "131072", **os.environ, "PYTHONWARNINGS": "ignore"},
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@result ")][-1]
        results.append(json.loads(line.removeprefix("@@result ")))
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
                r["peak_mib"],
                r["step_peak_above_live_mib"],
                r["live_growth_mib"],
                r["embedding_matrix_mib"],
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
            "process peak RSS MiB",
            "embed-step peak above start MiB",
            "live memory added MiB",
            "embedding matrix MiB",
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
