"""A shot sweep {0, 1, 3, 5} on a retrieval task through our Runner (mteb.evaluate end to end).

Three ways to run the same four settings with the same weights:

- **sweep**: one Runner for all settings; its embedding cache encodes the corpus once (in memory:
  `embedding_cache=None`, so no earlier run's on-disk vectors are reused), and the decoder backend runs
  each setting's shared prompt prefix once (KV cache);
- **separate**: a fresh Runner per setting (the corpus is encoded again for every setting), prefix
  cache still on;
- **separate, no caches**: a fresh Runner per setting with the prefix cache off as well — what the
  reference implementation computes.

The task (`task=`, `--sweep-task` in benchmarks/run.py):

- **realistic** (default): `BenchChatterbotDistractorRetrieval` (benchmarks/sweep_task.py): 60
  chatterbot test questions over a corpus of 1,123 passages (the task's 823 answers plus 300
  distractor passages from the other offline tasks, at most 64 words each), about 19x the queries, as
  real retrieval tasks have (SciFact 5,183 passages / 300 queries); about 26k corpus tokens;
- **mini**: `OfflineChatterbotRetrieval` at mini scale (120 short answers for 40 queries: a corpus
  smaller than the query side, so caching it can save at most about 2.2x).

The token lower bound is what any correct evaluation has to run through the model: every distinct
corpus text once, and per setting the prompt prefix that all its queries share (the examples and the
instruction wrapper, measured in tokens) once plus each query's remaining tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import TASK, ForwardRecorder, log, table
from benchmarks.sweep_task import REALISTIC, SweepTaskSpec, build, registered, task_class
from evalharness.encoders.backends import common_prefix_length

VARIANTS = ("sweep", "separate", "separate, no caches")
TASKS = ("realistic", "mini")


@dataclass
class SweepTask:
    """The benchmark's task: its name for the Runner, the offline scale, what it holds, and a context
    in which the Runner can find it by name."""

    kind: str
    name: str
    scale: str
    corpus: list[str]  # the distinct test-corpus texts (what any evaluation has to encode once)
    queries: list[str]  # the test query texts
    composition: str  # what the corpus is made of, for the table
    sizes: dict[str, Any] = field(default_factory=dict)
    context: Any = field(default_factory=contextlib.nullcontext)


def sweep_task(kind: str = "realistic", spec: SweepTaskSpec = REALISTIC) -> SweepTask:
    if kind == "mini":
        from evalharness.tasks.offline import OfflineChatterbotRetrieval

        data = OfflineChatterbotRetrieval(scale="mini").splits()
        corpus = [d["text"] for d in data["corpus"]]
        return SweepTask(
            kind=kind,
            name=TASK,
            scale="mini",
            corpus=list(dict.fromkeys(corpus)),
            queries=[q["text"] for q in data["test"]["queries"]],
            composition=f"{len(corpus)} chatterbot answers (mini scale, at most 40 words)",
        )
    if kind != "realistic":
        raise ValueError(f"unknown sweep task {kind!r}; use one of {', '.join(TASKS)}")
    data = build(spec)
    sizes = data["sizes"]
    sources = ", ".join(
        f"{k} {v}" for k, v in sorted(sizes["distractor_sources"].items(), key=lambda kv: -kv[1])
    )
    excluded = ", ".join(f"{v} {k}" for k, v in sizes["distractors_excluded"].items())
    composition = (
        f"{sizes['relevant_answers']} relevant + {sizes['answers'] - sizes['relevant_answers']} other chatterbot "
        f"answers + {sizes['distractors']} distractors ({sources}), at most {sizes['max_words']} words"
        + (f"; distractor texts left out: {excluded}" if excluded else "")
    )
    cls = task_class(spec)
    return SweepTask(
        kind=kind,
        name=cls.metadata.name,
        # the offline tasks' scale setting (the Runner sets it); this task has one size per spec,
        # and its questions come from the full-scale chatterbot task
        scale="full",
        corpus=list(dict.fromkeys(d["text"] for d in data["test"]["corpus"])),
        queries=[q["text"] for q in data["test"]["queries"]],
        composition=composition,
        sizes=sizes,
        context=registered(cls),
    )


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


def lower_bound(backend: Any, calls: list[list[Any]], corpus: Sequence[str]) -> dict[str, Any]:
    """Corpus tokens (every distinct text of the task's corpus, once) + per setting (distinct prompt
    prefix, in the order the sweep ran them) the shared tokens once and every query's tokens beyond
    them. The corpus side comes from the task's data, the query side from the prompted queries the
    sweep sent (their prefix holds the examples); `passages_as_embedded` checks that the sweep embedded
    exactly the task's corpus."""
    from evalharness.prompts import PromptedText

    passages = [PromptedText("", text, "", is_query=False) for text in dict.fromkeys(corpus)]
    embedded = {it for call in calls for it in call if not it.is_query}
    groups: dict[str, set[Any]] = {}
    for call in calls:
        for it in call:
            if it.is_query:
                groups.setdefault(it.prefix, set()).add(it)
    corpus_tokens = sum(map(len, backend.tokenize(passages)))
    per_setting, prefix_tokens, query_counts = [], [], []
    for items in groups.values():
        seqs = backend.tokenize(sorted(items, key=lambda it: it.body))
        shared = common_prefix_length(seqs)
        per_setting.append(shared + sum(len(s) - shared for s in seqs))
        prefix_tokens.append(shared)
        query_counts.append(len(items))
    queries = sum(per_setting)
    return {
        "corpus": corpus_tokens,
        "queries": queries,
        "total": corpus_tokens + queries,
        "n_settings": len(groups),
        "per_setting": per_setting,
        "shared_prefix_tokens": prefix_tokens,
        "queries_per_setting": query_counts,
        "passages": len(passages),
        "passages_as_embedded": embedded == set(passages),
    }


def run(
    shots: tuple[int, ...] = (0, 1, 3, 5),
    batch_size: int = 16,
    task: str = "realistic",
    spec: SweepTaskSpec = REALISTIC,
) -> dict[str, Any]:
    """The three variants on `task` ("realistic" or "mini"; `spec` sizes the realistic one)."""
    from benchmarks.common import sibling_backend
    from evalharness.config import BenchmarkConfig, ExamplesConfig, RunConfig, load_model_config
    from evalharness.encoders.loading import load_backend
    from evalharness.plan import validate
    from evalharness.runner import Runner

    bench = sweep_task(task, spec)
    model = load_model_config("smollm2-135m", batch_size=batch_size, dtype="float32", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="evalharness-bench-sweep-"))

    def config(name: str) -> RunConfig:
        return RunConfig(
            model=model,
            benchmark=BenchmarkConfig(name="custom", tasks=[bench.name], scale=bench.scale),
            examples=ExamplesConfig(strategy="train"),
            shots=list(shots),
            seed=0,
            results_dir=str(tmp / name),
            overwrite=True,
            embedding_cache=None,
        )

    measured: dict[str, dict[str, Any]] = {}
    item_sets: dict[str, set] = {}
    with bench.context:  # the Runner finds the task by name (mteb's task registry)
        cells = validate(config("sweep")).cells
        cached = load_backend(model)
        uncached = sibling_backend(
            cached, prefix_cache=False, max_tokens_per_batch=getattr(cached, "max_tokens_per_batch", 16384)
        )
        hooks = ForwardRecorder(cached.model)  # the same model object serves both backends
        for variant in VARIANTS:
            backend = uncached if variant == "separate, no caches" else cached
            recorder = _Recorder(backend)
            tokens0, padded0 = backend.tokens_encoded, getattr(backend, "padded_tokens", 0)
            hooks.reset()
            log(
                f"[sweep] {variant}: {len(cells)} settings of {bench.name} "
                f"({len(bench.queries)} queries, {len(bench.corpus)} passages)"
            )
            plan = validate(config(variant))
            start, cpu_start = time.perf_counter(), time.process_time()
            if variant == "sweep":
                records = Runner(plan, backend=backend).run()
            else:  # one Runner per cell: a plan of that cell alone
                records = [
                    r
                    for planned in plan.planned
                    for r in Runner(dataclasses.replace(plan, planned=(planned,)), backend=backend).run()
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

    bound = lower_bound(cached, measured["sweep"]["calls"], bench.corpus)
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
    shot_list = ",".join(map(str, sorted(shots)))
    text = table(
        [
            "task",
            "test queries",
            "passages",
            "passages / query",
            "corpus tokens",
            "query tokens (lower bound)",
            "corpus share of the lower bound",
        ],
        [
            [
                f"{bench.name} ({bench.kind})",
                len(bench.queries),
                len(bench.corpus),
                f"{len(bench.corpus) / len(bench.queries):.1f}x",
                bound["corpus"],
                f"{bound['queries']:,} ({bound['n_settings']} settings)",
                f"{100 * bound['corpus'] / bound['total']:.0f}%",
            ]
        ],
    )
    text += f"\n\ncorpus: {bench.composition}\n\n"
    text += table(
        [
            "variant",
            "wall s",
            "time / sweep",
            "CPU time / sweep",
            "tokens encoded",
            "tokens / lower bound",
            "texts embedded",
            "padded",
            f"nDCG@10 at k={shot_list}",
        ],
        rows,
    )
    text += (
        f"\n\ntoken lower bound: {bound['total']:,} = corpus {bound['corpus']:,} ({bound['passages']:,} "
        f"distinct passages, once) + queries {bound['queries']:,} ({bound['n_settings']} settings at "
        f"k={shot_list}: {' + '.join(f'{t:,}' for t in bound['per_setting'])}; each its shared prefix "
        f"once ({', '.join(map(str, bound['shared_prefix_tokens']))} tokens) + per-query tokens)"
    )
    if not bound["passages_as_embedded"]:
        text += "\nWARNING: the passages the sweep embedded are not exactly the task's corpus"
    for m in measured.values():
        del m["calls"]
    return {
        "task": bench.name,
        "task_kind": bench.kind,
        "task_sizes": {
            "queries": len(bench.queries),
            "passages": len(bench.corpus),
            "composition": bench.composition,
            **bench.sizes,
        },
        "shots": list(shots),
        "variants": measured,
        "lower_bound": bound,
        "same_texts_in_every_variant": len({frozenset(s) for s in item_sets.values()}) == 1,
        "speedup_vs_separate": measured["separate"]["wall_s"] / base["wall_s"],
        "speedup_vs_separate_no_caches": measured["separate, no caches"]["wall_s"] / base["wall_s"],
        "cpu_speedup_vs_separate": measured["separate"]["cpu_s"] / base["cpu_s"],
        "cpu_speedup_vs_separate_no_caches": measured["separate, no caches"]["cpu_s"] / base["cpu_s"],
        "tokens_vs_lower_bound": base["tokens"] / bound["total"],
        "table": text,
        "scale": bench.scale,
        "batch_size": batch_size,
    }


if __name__ == "__main__":
    print(run()["table"])
