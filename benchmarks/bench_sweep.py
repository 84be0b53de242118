"""A shot sweep {0, 1, 3, 5} on a retrieval task through our Runner (mteb.evaluate end to end).

Three ways to run the same four settings with the same weights:

- **sweep**: one Runner for all settings; its embedding cache encodes the corpus once (in memory:
  `embedding_cache=None`, so no earlier run's on-disk vectors are reused), and the decoder backend runs
  each setting's shared prompt prefix once (KV cache);
- **separate**: a fresh Runner per setting (the corpus is encoded again for every setting), prefix
  cache still on;
- **separate, no caches**: a fresh Runner per setting with the prefix cache off as well — what the
  reference implementation computes.

The token lower bound is what any correct evaluation has to run through the model: every distinct
corpus text once, and per setting the prompt prefix that all its queries share (the examples and the
instruction wrapper, measured in tokens) once plus each query's remaining tokens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import TASK, ForwardRecorder, log, table
from evalharness.encoders.backends import common_prefix_length

VARIANTS = ("sweep", "separate", "separate, no caches")


class _Recorder:
    """Records every batch of prompted texts that reaches the backend (the cache's misses)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.calls: list[list[Any]] = []
        self._embed = backend.embed

        def embed(items, batch_size):
            self.calls.append(list(items))
            return self._embed(items, batch_size)

        backend.embed = embed

    def close(self) -> None:
        del self.backend.embed  # the class's method again


def lower_bound(backend: Any, calls: list[list[Any]]) -> dict[str, int]:
    """Corpus tokens (distinct passages, once) + per setting (distinct prefix) the shared tokens once
    and every query's tokens beyond them."""
    passages = {it for call in calls for it in call if not it.is_query}
    groups: dict[str, set[Any]] = {}
    for call in calls:
        for it in call:
            if it.is_query:
                groups.setdefault(it.prefix, set()).add(it)
    corpus = sum(map(len, backend.tokenize(sorted(passages, key=lambda it: it.body))))
    queries = 0
    per_setting = {}
    for prefix, items in groups.items():
        seqs = backend.tokenize(sorted(items, key=lambda it: it.body))
        shared = common_prefix_length(seqs)
        tokens = shared + sum(len(s) - shared for s in seqs)
        per_setting[prefix[:40]] = tokens
        queries += tokens
    return {"corpus": corpus, "queries": queries, "total": corpus + queries, "n_settings": len(groups)}


def run(shots: tuple[int, ...] = (0, 1, 3, 5), batch_size: int = 16, scale: str = "mini") -> dict[str, Any]:
    from benchmarks.common import sibling_backend
    from evalharness.config import BenchmarkConfig, ExamplesConfig, RunConfig, load_model_config
    from evalharness.encoders.loading import load_backend
    from evalharness.runner import Runner, validate

    model = load_model_config("smollm2-135m", batch_size=batch_size, dtype="float32", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="evalharness-bench-sweep-"))

    def config(name: str) -> RunConfig:
        return RunConfig(
            model=model,
            benchmark=BenchmarkConfig(name="custom", tasks=[TASK], scale=scale),
            examples=ExamplesConfig(strategy="train"),
            shots=list(shots),
            seed=0,
            results_dir=str(tmp / name),
            overwrite=True,
            embedding_cache=None,
        )

    names, cells = validate(config("sweep"))
    cached = load_backend(model)
    uncached = sibling_backend(
        cached, prefix_cache=False, max_tokens_per_batch=getattr(cached, "max_tokens_per_batch", 16384)
    )
    hooks = ForwardRecorder(cached.model)  # the same model object serves both backends

    measured: dict[str, dict[str, Any]] = {}
    item_sets: dict[str, set] = {}
    for variant in VARIANTS:
        backend = uncached if variant == "separate, no caches" else cached
        recorder = _Recorder(backend)
        tokens0, padded0 = backend.tokens_encoded, getattr(backend, "padded_tokens", 0)
        hooks.reset()
        log(f"[sweep] {variant}: {len(cells)} settings of {TASK} ({scale})")
        start, cpu_start = time.perf_counter(), time.process_time()
        if variant == "sweep":
            records = Runner(config(variant), backend=backend).run(names, cells)
        else:
            records = [
                r for cell in cells for r in Runner(config(variant), backend=backend).run(names, [cell])
            ]
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        recorder.close()
        item_sets[variant] = {it for call in recorder.calls for it in call}
        measured[variant] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "tokens": backend.tokens_encoded - tokens0,
            "padded": getattr(backend, "padded_tokens", 0) - padded0,
            "hook_real": hooks.real,
            "hook_padded": hooks.padded,
            "forwards": hooks.forwards,
            "texts_embedded": sum(len(c) for c in recorder.calls),
            "scores": {r.cell.shots: r.main_score for r in records},
            "calls": recorder.calls,
        }
        log(f"[sweep] {variant}: {wall:.1f} s, {measured[variant]['tokens']:,} tokens")
    hooks.close()

    bound = lower_bound(cached, measured["sweep"]["calls"])
    base = measured["sweep"]
    rows = []
    for variant in VARIANTS:
        m = measured[variant]
        rows.append(
            [
                variant,
                m["wall_s"],
                f"{m['wall_s'] / base['wall_s']:.2f}x",
                f"{m['cpu_s'] / base['cpu_s']:.2f}x",
                m["tokens"],
                f"{m['tokens'] / bound['total']:.2f}x",
                m["texts_embedded"],
                f"{100 * m['padded'] / max(1, m['padded'] + m['tokens']):.1f}%",
                " ".join(f"{m['scores'][k]:.4f}" for k in sorted(m["scores"])),
            ]
        )
    text = table(
        [
            "variant",
            "wall s",
            "time / sweep",
            "CPU time / sweep",
            "tokens encoded",
            "tokens / lower bound",
            "texts embedded",
            "padded",
            f"nDCG@10 at k={','.join(map(str, sorted(shots)))}",
        ],
        rows,
    )
    text += (
        f"\n\ntoken lower bound: {bound['total']:,} = corpus {bound['corpus']:,} (once) + queries "
        f"{bound['queries']:,} ({bound['n_settings']} settings: shared prefix once + per-query tokens)"
    )
    for m in measured.values():
        del m["calls"]
    return {
        "variants": measured,
        "lower_bound": bound,
        "same_texts_in_every_variant": len({frozenset(s) for s in item_sets.values()}) == 1,
        "speedup_vs_separate": measured["separate"]["wall_s"] / base["wall_s"],
        "speedup_vs_separate_no_caches": measured["separate, no caches"]["wall_s"] / base["wall_s"],
        "cpu_speedup_vs_separate": measured["separate"]["cpu_s"] / base["cpu_s"],
        "cpu_speedup_vs_separate_no_caches": measured["separate, no caches"]["cpu_s"] / base["cpu_s"],
        "tokens_vs_lower_bound": base["tokens"] / bound["total"],
        "table": text,
        "scale": scale,
        "batch_size": batch_size,
    }


if __name__ == "__main__":
    print(run()["table"])
