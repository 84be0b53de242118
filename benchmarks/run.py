"""`make bench`: the three performance benchmarks of issue 6, one after the other, with a verdict per
target. Tables are printed and saved (markdown and JSON) under .cache/bench/results/.

    python -m benchmarks.run                      # everything (about 20 minutes on 2 CPU cores)
    python -m benchmarks.run --only queries       # queries | sweep | memory, comma-separated
    python -m benchmarks.run --queries 24         # fewer queries per setting (faster; the one-time
                                                  # prefix then weighs more in ours)
    python -m benchmarks.run --only sweep --sweep-task mini   # the sweep on the mini chatterbot task
                                                  # (default: realistic, a corpus ~19x the queries)

Timings are only meaningful on an otherwise idle machine: the load average is printed before and
after, and a warning is printed when other processes were competing for the cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time
import warnings

from benchmarks.common import BENCH_DIR, apply_threads, log, machine, save_json


def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have used, CPU seconds of this process and its finished children)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait
    own = sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )
    return busy, own


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="queries,sweep,memory")
    parser.add_argument("--queries", type=int, default=96, help="queries per shot setting (query benchmark)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of the query benchmark")
    parser.add_argument("--memory-base", type=int, default=48, help="texts in the 1x corpus")
    parser.add_argument(
        "--sweep-task",
        choices=("realistic", "mini"),
        default="realistic",
        help="task of the sweep benchmark: realistic (60 chatterbot queries over 1,123 passages with "
        "distractors, benchmarks/sweep_task.py) or mini (OfflineChatterbotRetrieval, 40 queries, 120 passages)",
    )
    parser.add_argument(
        "--sweep-shots", default="0,1,3,5", help="shot settings of the sweep benchmark, comma-separated"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for every side (default: one per core)"
    )
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("mteb", "evalharness", "transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # mteb's and the weight loader's progress bars

    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)
    apply_threads()
    info = machine()
    log(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; torch {info['torch']} "
        f"({info['torch_threads']} threads); load average {info['load_avg'][0]:.2f}"
    )
    started = time.perf_counter()
    busy0, own0 = _cpu_seconds()
    report: dict = {"machine": info}
    verdicts: list[str] = []

    if "queries" in only:
        from benchmarks import bench_queries

        q = bench_queries.run(n_queries=args.queries, batch_size=args.batch_size)
        report["queries"] = q
        log(
            "\n## Few-shot query encoding (queries/s; ours with and without the prefix cache, FlagICLModel)\n"
        )
        log(q["table"])
        five = next((s for s in q["settings"] if s["k"] == 5), None)
        if five:
            verdicts.append(
                f"5-shot queries/s >= 10x FlagICLModel: {five['speedup_vs_reference']:.1f}x "
                f"(as run, with its batch-size probe: {five['speedup_vs_reference_as_run']:.1f}x; "
                f"in CPU time: {five['cpu_speedup_vs_reference']:.1f}x) "
                f"-> {_verdict(five['speedup_vs_reference'] >= 10)}"
            )
        worst = min(
            min(s["min_cosine_cached_vs_reference"], s["min_cosine_uncached_vs_reference"])
            for s in q["settings"]
        )
        same = all(s["identical_tokens"] for s in q["settings"])
        verdicts.append(
            f"vectors match FlagICLModel on identical token ids (cosine >= 0.999): min cosine {worst:.6f}, "
            f"token ids identical at every k: {same} -> {_verdict(worst >= 0.999 and same)}"
        )

    if "sweep" in only:
        from benchmarks import bench_sweep

        shots = tuple(int(k) for k in args.sweep_shots.split(",") if k.strip())
        s = bench_sweep.run(shots=shots, task=args.sweep_task)
        report["sweep"] = s
        log(f"\n## Shot sweep {{{', '.join(map(str, shots))}}} on {s['task']} through the Runner\n")
        log(s["table"])
        sizes = s["task_sizes"]
        verdicts.append(
            f"sweep tokens within 1.3x of the lower bound ({s['task']}: {sizes['queries']} queries, "
            f"{sizes['passages']:,} passages, corpus {s['lower_bound']['corpus']:,} tokens; "
            f"k={','.join(map(str, shots))}): {s['tokens_vs_lower_bound']:.2f}x "
            f"-> {_verdict(s['tokens_vs_lower_bound'] <= 1.3)}"
        )
        verdicts.append(
            f"sweep >= 3x faster than separate settings without the corpus cache: "
            f"{s['speedup_vs_separate']:.2f}x (CPU time {s['cpu_speedup_vs_separate']:.2f}x) "
            f"-> {_verdict(s['speedup_vs_separate'] >= 3)}; without any cache (the reference's computation): "
            f"{s['speedup_vs_separate_no_caches']:.2f}x (CPU time {s['cpu_speedup_vs_separate_no_caches']:.2f}x) "
            f"-> {_verdict(s['speedup_vs_separate_no_caches'] >= 3)}"
        )

    if "memory" in only:
        from benchmarks import bench_memory

        m = bench_memory.run(base=args.memory_base)
        report["memory"] = m
        log("\n## Corpus growth: padded tokens and peak memory (one fresh process per size)\n")
        log(m["table"])
        worst_pad = max(r["padded_fraction"] for r in m["sizes"])
        verdicts.append(
            f"padded tokens < 10% of the tokens encoded, mixed-length corpus: worst {100 * worst_pad:.1f}% "
            f"-> {_verdict(worst_pad < 0.10)}"
        )
    if "queries" in report:
        worst_q = max(s["padded_fraction_cached"] for s in report["queries"]["settings"])
        verdicts.append(
            f"padded tokens < 10%, mixed-length queries on a cached prefix: worst {100 * worst_q:.1f}% "
            f"-> {_verdict(worst_q < 0.10)}"
        )
    if "sweep" in report:
        sw = report["sweep"]["variants"]["sweep"]
        frac = sw["padded"] / max(1, sw["padded"] + sw["tokens"])
        verdicts.append(f"padded tokens < 10%, the whole sweep: {100 * frac:.1f}% -> {_verdict(frac < 0.10)}")
    if "memory" in report:
        first, last = report["memory"]["sizes"][0], report["memory"]["sizes"][-1]
        peak = last["peak_mib"] - first["peak_mib"]
        step = last["step_peak_above_live_mib"] - first["step_peak_above_live_mib"]
        live = last["live_growth_mib"] - first["live_growth_mib"]
        matrix = last["embedding_matrix_mib"] - first["embedding_matrix_mib"]
        verdicts.append(
            f"memory 1x -> 16x: embedding matrix +{matrix:.1f} MiB; process peak {peak:+.0f} MiB (noise "
            f"+-100 MiB), embedding-step peak {step:+.0f} MiB, memory kept {live:+.0f} MiB "
            f"-> {_verdict(max(step, live) <= matrix + 16)} (peak grows by at most the matrix + 16 MiB)"
        )

    report["total_s"] = time.perf_counter() - started
    busy1, own1 = _cpu_seconds()
    # CPU time that other processes took while the benchmarks ran, as a share of the machine
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (report["total_s"] * (os.cpu_count() or 1))
    report["other_processes_cpu_share"] = others
    log("\n## Targets\n")
    for v in verdicts:
        log(f"- {v}")
    log(
        f"\ntotal {report['total_s'] / 60:.1f} min; other processes used {100 * others:.0f}% of the CPU meanwhile"
    )
    if others > 0.10:
        log(
            "WARNING: other processes were competing for the CPU; wall-clock timings (and with more "
            "than one torch thread, CPU times too) are unreliable: re-run on an idle machine, or with "
            "--threads 1"
        )
    report["verdicts"] = verdicts
    path = save_json("latest", report)
    md = BENCH_DIR / "results" / "latest.md"
    md.write_text(
        "\n\n".join(report[k]["table"] for k in ("queries", "sweep", "memory") if k in report)
        + "\n\n"
        + "\n".join(f"- {v}" for v in verdicts)
        + "\n",
        encoding="utf-8",
    )
    log(f"results: {path} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
