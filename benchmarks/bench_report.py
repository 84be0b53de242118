"""What the report's statistics cost: `build_report` with and without the paired CIs and tests, side
by side in one process, on the committed demo and on a synthetic MTEB(eng, v1)-sized folder.

The synthetic folder has one model, 4 settings (0, 1, 3, 5 shots) x the 67 task files of MTEB(eng, v1)
(56 tasks, CQADupstack's 12 forums as one), each with an mteb result on the benchmark's splits and
subsets and a per-item file of realistic size: 1,000 queries per retrieval / reranking task, 10
experiments per classification / clustering task, 1,000 STS pairs, 2,000 pair-classification pairs
with mteb's 5 scoring functions, 100 summaries.

    python -m benchmarks.bench_report [--resamples 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, log, table

SHOTS = (0, 1, 3, 5)
UNITS = {"Retrieval": 1000, "Reranking": 1000, "Classification": 10, "Clustering": 10, "STS": 1000,
         "PairClassification": 2000, "Summarization": 100}  # fmt: skip
MODEL, REVISION = "org/synthetic-icl", "r1"


def _part(
    kind: str, n: int, shift: float, rng: np.random.Generator, split: str, subset: str, task: str
) -> dict:
    """One part's values; its gold (scores, labels) belongs to the task, the same in every setting."""
    ids = [str(i) for i in range(n)]
    if kind == "mean":
        values = np.clip(rng.beta(2, 2, n) + shift + rng.normal(0, 0.05, n), 0, 1)
        return {"split": split, "subset": subset, "ids": ids, "values": values.tolist()}
    task_rng = np.random.default_rng(zlib.crc32(f"{task}/{split}/{subset}".encode()))
    gold = task_rng.uniform(0, 1, n) if kind == "spearman" else task_rng.integers(0, 2, n).astype(float)
    noise = rng.normal(0, 1 - min(0.9, 0.4 + shift), (n, 5) if kind == "max_ap" else n)
    values = (gold[:, None] if kind == "max_ap" else gold) + noise
    return {"split": split, "subset": subset, "ids": ids, "values": values.tolist(), "gold": gold.tolist()}


def write_synthetic(root: Path, seed: int = 0) -> Path:
    """The synthetic results folder (see the module docstring)."""
    import mteb
    from mteb.results import TaskResult

    from evalharness import per_item
    from evalharness.plan import Cell

    rng = np.random.default_rng(seed)
    tasks = mteb.get_benchmark("MTEB(eng, v1)").tasks
    for shots in SHOTS:
        cell = Cell(shots, "none" if shots == 0 else "train", None if shots == 0 else 0, "bge-icl")
        name = "__".join(f"{k}_{v}" for k, v in sorted(cell.experiment_kwargs().items()))
        folder = root / "results" / MODEL.replace("/", "__") / REVISION / "experiments" / name
        (folder / per_item.FOLDER).mkdir(parents=True)
        manifest = {"cell": cell.__dict__, "model": MODEL, "tasks": {},
                    "config": {"benchmark": {"name": "MTEB(eng, v1)"}}}  # fmt: skip
        for task in tasks:
            meta = task.metadata
            kind = {"STS": "spearman", "Summarization": "spearman", "PairClassification": "max_ap"}.get(
                meta.type, "mean"
            )
            parts = [
                _part(kind, UNITS.get(meta.type, 100), 0.004 * shots, rng, split, subset, meta.name)
                for split in task.eval_splits
                for subset in task.hf_subsets
            ]
            unit = (
                "pair"
                if kind != "mean"
                else "experiment"
                if meta.type in ("Classification", "Clustering")
                else "query"
            )
            record = per_item.Record(meta.name, meta.main_score, kind, unit, parts=parts)
            if kind == "max_ap":
                record.columns, record.signs = list(per_item.SIGNS), list(per_item.SIGNS.values())
            scores = {split: {} for split in task.eval_splits}
            for part in parts:
                score = float(np.mean(part["values"])) if kind == "mean" else 0.5 + 0.004 * shots
                scores[part["split"]][part["subset"]] = {meta.main_score: score, "main_score": score}
            TaskResult.from_task_results(task, scores, evaluation_time=1.0).to_disk(
                folder / f"{meta.name}.json"
            )
            rel = per_item.write(folder, record)
            manifest["tasks"][meta.name] = {
                "status": "done",
                "per_item": rel,
                "main_score_name": meta.main_score,
            }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (folder / "model_meta.json").write_text(json.dumps({"name": MODEL, "revision": REVISION}))
    return root


def _time(results_dir: Path, confidence: float, resamples: int) -> float:
    from evalharness.reporting import build_report

    start = time.perf_counter()
    build_report(results_dir, confidence=confidence, resamples=resamples)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalharness-bench-report-") as tmp:
        log("writing the synthetic 56-task x 4-setting folder ...")
        synthetic = write_synthetic(Path(tmp))
        rows = []
        for label, folder in (("committed demo (3 models x 3 settings x 5 tasks)", REPO / "results" / "demo"),
                              ("synthetic MTEB(eng, v1): 56 tasks x 4 settings", synthetic)):  # fmt: skip
            plain = min(_time(folder, 0, args.resamples) for _ in range(args.repeats))
            with_stats = min(_time(folder, 0.95, args.resamples) for _ in range(args.repeats))
            rows.append([label, plain, with_stats, with_stats - plain, with_stats / plain])
            log(f"{label}: {plain:.2f} s without, {with_stats:.2f} s with statistics")
    print(table(["results", "report, no CIs (s)", f"with CIs, {args.resamples} resamples (s)", "extra (s)",
                 "ratio"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
