"""Few-shot query encoding: ours with the shared-prefix KV cache, ours without it, and FlagEmbedding's
FlagICLModel (the reference, in its own virtualenv), on the same queries, examples and weights.

The reference builds `prefix + "<instruct>{instruction}\\n<query>{query}" + suffix` and only ends with
EOS if the tokenizer adds one (SmolLM2's does not); we always end with EOS. So that both sides see the
same token ids, the reference gets `suffix = "\\n<response>" + eos_token` (the EOS token's own text,
which the tokenizer maps to the EOS id); the benchmark checks that the token sequences the reference's
model received equal ours, then compares the vectors.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    BENCH_DIR,
    ForwardRecorder,
    ReferenceWorker,
    load_backend,
    log,
    model_dir,
    reference_model_dir,
    retrieval_data,
    sample_examples,
    sibling_backend,
    table,
)
from evalharness.encoders.backends import common_prefix_length


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _timed(
    backend: Any, items: list, batch_size: int, repeats: int, keep_prefix: bool = False
) -> tuple[float, np.ndarray, dict]:
    """Median wall time of `repeats` timed calls after one untimed warm-up batch, plus counters and
    the median CPU time of this process (less sensitive than wall time to other processes' load).

    The backend keeps a prefix's key/values across calls; unless `keep_prefix`, every timed call
    starts without them, so it pays for its prefix once as a task with these queries would."""
    backend.embed(items[:batch_size], batch_size)
    times, cpu, vecs, counts = [], [], None, {}
    for _ in range(repeats):
        if not keep_prefix and hasattr(backend, "clear_prefix_cache"):
            backend.clear_prefix_cache()
        tokens0, padded0 = backend.tokens_encoded, getattr(backend, "padded_tokens", 0)
        start, cpu_start = time.perf_counter(), time.process_time()
        vecs = backend.embed(items, batch_size)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        counts = {
            "tokens": backend.tokens_encoded - tokens0,
            "padded": getattr(backend, "padded_tokens", 0) - padded0,
            "cpu_s": statistics.median(cpu),
        }
    return statistics.median(times), vecs, counts


def run(
    n_queries: int = 96,
    batch_size: int = 8,
    shots: tuple[int, ...] = (0, 1, 3, 5, 8),
    repeats: int = 3,
    scale: str = "full",
) -> dict[str, Any]:
    from evalharness.prompts import PromptedText, get_template

    # the full-scale task: enough test queries, and examples from its own (disjoint) train split
    data = retrieval_data(scale)
    instruction = data["instruction"]
    queries = [q["text"] for q in data["test"]["queries"]][:n_queries]
    examples = sample_examples(max(shots), scale=scale)
    template = get_template("bge-icl")

    cached = load_backend(prefix_cache=True)
    uncached = sibling_backend(cached, prefix_cache=False)
    eos_text = cached.tokenizer.convert_ids_to_tokens(cached.layout.eos_id)

    log(
        f"[queries] {n_queries} queries, k in {list(shots)}, batch size {batch_size}; per k: FlagICLModel, ours, ours uncached"
    )
    ref = ReferenceWorker(
        {
            "model_dir": str(reference_model_dir(model_dir())),
            "instruction": instruction,
            "queries": queries,
            "examples": [
                {"instruct": instruction, "query": e.query, "response": e.response} for e in examples
            ],
            "batch_size": batch_size,
            "suffix": template.suffix + eos_text,
            "query_max_length": cached.query_max_length,
            "threads": torch.get_num_threads(),
        },
        BENCH_DIR / "queries",
    )
    rows, out = [], []
    for k in shots:
        prefix = template.render_prefix(examples[:k], instruction)
        items = [
            PromptedText(prefix, template.wrap_query(q, instruction), template.suffix, True) for q in queries
        ]
        ids = cached.tokenize(items)
        r = ref.encode(k)
        shared = common_prefix_length(ids)
        rec = ForwardRecorder(cached.model)
        t_cached, v_cached, c_cached = _timed(cached, items, batch_size, repeats)
        rec_fraction = rec.padded_fraction
        rec.close()
        t_kept, _, _ = _timed(cached, items, batch_size, repeats, keep_prefix=True)
        t_uncached, v_uncached, c_uncached = _timed(uncached, items, batch_size, 1)
        same_tokens = Counter(map(tuple, r["sequences"])) == Counter(map(tuple, ids))
        ref_vecs = _normalise(r["vectors"])
        cos = (_normalise(v_cached) * ref_vecs).sum(axis=1)
        cos_unc = (_normalise(v_uncached) * ref_vecs).sum(axis=1)
        max_abs = float(np.abs(_normalise(v_cached) - ref_vecs).max())
        ref_qps = n_queries / r["wall_s"]
        ref_qps_np = n_queries / (r["wall_s"] - r["probe_s"])
        qps, qps_unc = n_queries / t_cached, n_queries / t_uncached
        qps_kept = n_queries / t_kept
        res = {
            "k": k,
            "prefix_tokens": shared,
            "mean_tokens_per_query": sum(map(len, ids)) / len(ids),
            "ours_cached_qps": qps,
            "ours_uncached_qps": qps_unc,
            "ours_prefix_kept_qps": qps_kept,
            "reference_qps": ref_qps,
            "reference_qps_without_probe": ref_qps_np,
            "speedup_vs_reference": qps / ref_qps_np,
            "cpu_speedup_vs_reference": (r["cpu_s"] - r["probe_cpu_s"]) / c_cached["cpu_s"],
            "cpu_speedup_vs_uncached": c_uncached["cpu_s"] / c_cached["cpu_s"],
            "speedup_vs_reference_as_run": qps / ref_qps,
            "speedup_vs_uncached": qps / qps_unc,
            "uncached_vs_reference": qps_unc / ref_qps_np,
            "tokens_cached": c_cached["tokens"],
            "tokens_uncached": c_uncached["tokens"],
            "padded_fraction_cached": c_cached["padded"] / max(1, c_cached["padded"] + c_cached["tokens"]),
            "padded_fraction_cached_hooks": rec_fraction,
            "padded_fraction_uncached": c_uncached["padded"]
            / max(1, c_uncached["padded"] + c_uncached["tokens"]),
            "identical_tokens": same_tokens,
            "min_cosine_cached_vs_reference": float(cos.min()),
            "min_cosine_uncached_vs_reference": float(cos_unc.min()),
            "max_abs_diff_cached_vs_reference": max_abs,
        }
        out.append(res)
        rows.append(
            [
                k,
                shared,
                round(res["mean_tokens_per_query"]),
                qps,
                qps_kept,
                qps_unc,
                ref_qps_np,
                ref_qps,
                f"{res['speedup_vs_reference']:.1f}x",
                f"{res['cpu_speedup_vs_reference']:.1f}x",
                f"{res['speedup_vs_uncached']:.1f}x",
                f"{res['uncached_vs_reference']:.2f}x",
                f"{res['tokens_cached']:,} / {res['tokens_uncached']:,}",
                f"{100 * res['padded_fraction_cached']:.0f}% / {100 * res['padded_fraction_uncached']:.0f}%",
                "yes" if same_tokens else "NO",
                f"{min(cos.min(), cos_unc.min()):.6f}",
                f"{max_abs:.1e}",
            ]
        )
        log(
            f"[queries] k={k}: ours {qps:.2f} q/s, uncached {qps_unc:.2f} q/s, reference {ref_qps_np:.2f} q/s"
        )
    ref.close()
    text = table(
        [
            "k",
            "prefix tok",
            "tok/query",
            "ours q/s",
            "(prefix kept from an earlier call)",
            "ours uncached q/s",
            "FlagICLModel q/s",
            "(as run, with probe)",
            "ours / FlagICLModel",
            "(CPU time)",
            "ours / uncached",
            "uncached / FlagICLModel",
            "tokens encoded (ours / uncached)",
            "padded (ours / uncached)",
            "same token ids",
            "min cosine vs ref",
            "max |Δ| (normalised)",
        ],
        rows,
    )
    return {
        "settings": out,
        "n_queries": n_queries,
        "batch_size": batch_size,
        "scale": scale,
        "examples": [{"query": e.query, "response": e.response} for e in examples],
        "repeats_ours_cached": repeats,
        "reference": ref.info,
        "table": text,
    }


if __name__ == "__main__":
    import sys

    result = run(n_queries=int(sys.argv[1]) if len(sys.argv) > 1 else 96)
    print(result["table"])
