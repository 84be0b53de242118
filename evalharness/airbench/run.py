"""AIR-Bench datasets as tasks of a runner cell: search, score, file results, write the submission.

`AirBenchDataset` is the `RunTask` (evalharness.tasks.interface) of one dataset. Per cell (`run`):
  1. the dataset's example set (file / seeded dev sample / none) and the AIR-Bench instruction;
  2. air-benchmark's own `Evaluator` loads the data, calls `ICLRetriever` once (dev and test queries
     together, corpus once) and writes one search-result file per split in the layout its submission
     script zips: `<results_dir>/air-bench/<org>__<model>/<revision>/<retriever>/NoReranker/<type>/
     <domain>/<lang>_<dataset>_<split>.json` (outside `results/`, whose JSON files are mteb results);
  3. the splits with qrels (dev; test qrels are private) are scored with air-benchmark's
     `Evaluator.compute_metrics` (pytrec_eval) and filed as an mteb `TaskResult` in the cell's
     experiment folder, main score nDCG@10 (QA) or Recall@10 (Long-Doc), every metric kept;
  4. the runner records the manifest entry this returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from air_benchmark.evaluation_utils import Evaluator
from mteb.results import TaskResult

from evalharness import per_item
from evalharness.airbench.data import LocalDataLoader, make_loader
from evalharness.airbench.examples import (
    AirBenchFileExamples,
    build_example_set,
    pool_size,
    sampled_split_problems,
)
from evalharness.airbench.retriever import ICLRetriever, check_search
from evalharness.airbench.tasks import (
    BENCHMARK_NAME,
    AirBenchError,
    AirTask,
    is_airbench_task,
    run_splits,
    select_tasks,
)
from evalharness.instructions import AIRBENCH_INSTRUCTION, applied_instruction
from evalharness.tasks.interface import CellContext

logger = logging.getLogger(__name__)

SEARCH_DIR = "air-bench"
RERANKER = "NoReranker"


# --------------------------------------------------------------------------------------------------
# Names and checks (before any model loads)
# --------------------------------------------------------------------------------------------------


def benchmark_task_names(cfg: Any) -> list[str]:
    """The task names `benchmark.airbench` selects (raises AirBenchError listing valid values)."""
    ab = cfg.benchmark.airbench
    tasks = select_tasks(ab.version, ab.task_types, ab.domains, ab.languages, ab.datasets, ab.splits)
    return [t.name for t in tasks]


def uses_airbench(cfg: Any) -> bool:
    return cfg.benchmark.name == BENCHMARK_NAME or any(is_airbench_task(n) for n in cfg.benchmark.tasks)


def _config_problems(ab: Any) -> list[str]:
    problems = check_search(ab.search)
    if not isinstance(ab.search_top_k, int) or ab.search_top_k < 1:
        problems.append(f"benchmark.airbench.search_top_k={ab.search_top_k!r}; use a positive integer")
    bad_splits = [s for s in ab.score_splits if s not in ("dev", "test")]
    if bad_splits:
        problems.append(f"benchmark.airbench.score_splits={list(ab.score_splits)}; use dev and/or test")
    for task_type, metric in ab.main_scores.items():
        if "_at_" not in metric or metric.rsplit("_at_", 1)[1] not in {str(k) for k in ab.k_values}:
            problems.append(
                f"benchmark.airbench.main_scores.{task_type}={metric!r} is not computed with "
                f"k_values={list(ab.k_values)}; use e.g. ndcg_at_10 or recall_at_10 with 10 in k_values"
            )
    return problems


def _offline_without_data(ab: Any) -> list[str]:
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if offline and not ab.data_dir and not ab.cache_dir:
        return [
            "AIR-Bench data would come from the hub, but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; "
            "set benchmark.airbench.data_dir to local copies of the datasets (docs/airbench.md, section 'Offline')"
        ]
    return []


def _example_problems(cfg: Any, tasks: Sequence[AirTask], cells: Sequence[Any], loader: Any) -> list[str]:
    few_shot = [c for c in cells if c.shots != 0]
    strategy = cfg.examples.strategy
    if not few_shot or strategy == "none":
        return []
    if strategy == "file":
        root = cfg.examples.root
        if not root or not Path(root).is_dir():
            return [f"examples.root={root!r} is not a folder; point it at the AIR-Bench example files"]
        problems: list[str] = []
        for cell in few_shot:
            problems += AirBenchFileExamples(root, cell.shots).check(t.name for t in tasks)
        return problems
    if strategy not in ("train", "knn"):
        return [
            f"examples.strategy={strategy!r} is not available for AIR-Bench; use none, file, train or knn"
        ]
    problems = []
    shots = max(c.shots for c in few_shot)
    for task in tasks:
        split_problems = sampled_split_problems(
            task, cfg.examples.split, run_splits(task, cfg.benchmark.airbench.splits)
        )
        if split_problems:
            problems += split_problems
            continue
        try:
            size = pool_size(loader, task, cfg.examples.split)
        except (AirBenchError, OSError, ValueError) as err:
            problems.append(f"task {task.name}: cannot read its {cfg.examples.split} split: {err}")
            continue
        if size < shots and not (strategy == "train" and cfg.examples.cap):
            problems.append(
                f"task {task.name}: shots={shots} but its {cfg.examples.split} split has only {size} "
                "queries with a relevant passage; lower shots or set examples.cap=true"
            )
    return problems


def check(cfg: Any, tasks: Sequence[AirTask], cells: Sequence[Any]) -> list[str]:
    """Every problem with an AIR-Bench run that can be found before the model loads (never raises):
    settings, data files, example files; examples sampled from a split only once its data is there."""
    ab = cfg.benchmark.airbench
    problems = _config_problems(ab) + _offline_without_data(ab)
    loaders: dict[str, Any] = {}
    data_problems: list[str] = []
    for task in tasks:
        if task.version not in loaders:
            try:
                loaders[task.version] = make_loader(task.version, ab.data_dir, ab.cache_dir)
            except AirBenchError as err:
                return [*problems, str(err)]
        splits = run_splits(task, ab.splits)
        if not splits:
            data_problems.append(
                f"task {task.name}: has splits {', '.join(task.splits)}, none of benchmark.airbench.splits="
                f"{list(ab.splits)}"
            )
        loader = loaders[task.version]
        if isinstance(loader, LocalDataLoader):
            data_problems += loader.missing_files(task, splits, ab.score_splits)
    problems += data_problems
    if cfg.examples.strategy in ("train", "knn") and problems:
        return problems  # sampled examples need the data the problems above are about
    for version, loader in loaders.items():
        problems += _example_problems(cfg, [t for t in tasks if t.version == version], cells, loader)
    return problems


# --------------------------------------------------------------------------------------------------
# One dataset of one cell
# --------------------------------------------------------------------------------------------------


def settings_fingerprint(cfg: Any) -> str:
    """AIR-Bench settings that change scores or rankings but not the cell folder; a result made with
    other values is redone rather than reused."""
    ab = cfg.benchmark.airbench
    payload = {
        "search_top_k": ab.search_top_k,
        "k_values": list(ab.k_values),
        "main_scores": dict(ab.main_scores),
        "instruction": ab.instruction,
        "examples_split": cfg.examples.split,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def instruction_for(cfg: Any, name: str, table: dict[str, str]) -> tuple[str, str]:
    """(instruction, source): a per-task entry of the instruction override file, then
    benchmark.airbench.instruction, then the paper's single AIR-Bench instruction."""
    if name in table:
        return table[name], "override"
    if cfg.benchmark.airbench.instruction:
        return cfg.benchmark.airbench.instruction, "override"
    return AIRBENCH_INSTRUCTION, "table7"


def search_root(cfg: Any, meta: Any) -> Path:
    """The folder air-benchmark's `output_dir` points at for this model (one retriever per cell)."""
    return Path(cfg.results_dir).expanduser() / SEARCH_DIR / meta.model_name_as_path() / str(meta.revision)


def retriever_name(meta: Any) -> str:
    return f"{meta.name.split('/')[-1]}__{meta.experiment_name or 'default'}"


def search_file(root: Path, retriever: str, task: AirTask, split: str) -> Path:
    """Where air-benchmark's Evaluator writes (and its zip script reads) one split's rankings."""
    return (
        root
        / retriever
        / RERANKER
        / task.task_type
        / task.domain
        / f"{task.language}_{task.dataset}_{split}.json"
    )


def score_split(
    loader: Any, task: AirTask, split: str, rankings: dict, k_values: Sequence[int], main: str
) -> tuple[dict[str, float], dict[str, Any]]:
    """air-benchmark's metrics (nDCG, MAP, Recall, Precision, MRR at each k) for one split, and the
    main metric's per-query values (pytrec_eval on the same qrels and rankings, as air-benchmark's
    own evaluation computes before averaging)."""
    qrels_raw = loader.load_qrels(task.task_type, task.domain, task.language, task.dataset, split=split)
    qrels = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in dict(qrels_raw).items()}
    run = {q: docs for q, docs in rankings.items() if q in qrels}
    if len(run) < len(rankings):
        logger.warning(
            "%s %s: %d ranked queries have no qrels and are not scored",
            task.name,
            split,
            len(rankings) - len(run),
        )
    if not run:
        raise AirBenchError(f"task {task.name}: none of the {split} queries has qrels; check the qrels file")
    metrics = Evaluator.compute_metrics(qrels=qrels, search_results=run, k_values=list(k_values))
    measure = per_item.pytrec_measure(main)
    if measure is None:
        return metrics, {}
    import pytrec_eval

    base, _, k = measure.rpartition("_")
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {f"{base}.{k}"}).evaluate(run)
    return metrics, per_item.retrieval_part(split, "default", per_query, main)


def task_result(task: AirTask, scores: dict[str, dict[str, float]], main: str, seconds: float) -> TaskResult:
    """An mteb TaskResult: loads with TaskResult.from_disk like any mteb result (the dataset version
    goes where mteb keeps the dataset revision)."""
    entries = {
        split: [
            {
                **metrics,
                "main_score": metrics[main],
                "hf_subset": "default",
                "languages": [task.language_script],
            }
        ]
        for split, metrics in scores.items()
    }
    return TaskResult(
        dataset_revision=task.version,
        task_name=task.name,
        mteb_version=package_version("mteb"),
        scores=entries,
        evaluation_time=seconds,
    )


def zip_command(root: Path, retriever: str, save_dir: Path) -> str:
    """air-benchmark's own script that packs a retriever's test-split files for the leaderboard."""
    return (
        f"python -m scripts.zip_results --results_dir {root.resolve()} --retriever_name {retriever} "
        f"--save_dir {save_dir.resolve()}"
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def run_task(task: AirTask, ctx: CellContext) -> dict[str, Any]:
    """Search, score and file one AIR-Bench dataset for one cell; the manifest entry for it."""
    cfg, ab, cell, name = ctx.cfg, ctx.cfg.benchmark.airbench, ctx.cell, task.name
    splits = run_splits(task, ab.splits)
    loader = make_loader(task.version, ab.data_dir, ab.cache_dir)
    examples = build_example_set(
        cell.strategy,
        task=task,
        shots=cell.shots,
        seed=cell.seed or 0,
        loader=loader,
        eval_splits=splits,
        root=cfg.examples.root,
        split=cfg.examples.split,
        cap=cfg.examples.cap,
    )
    encoder = ctx.encoder(examples)
    instruction, source = instruction_for(cfg, name, dict(ctx.instructions))
    encoder.instructions = {**encoder.instructions, name: instruction}
    meta = encoder.mteb_model_meta
    root, retriever = (
        search_root(cfg, meta),
        ICLRetriever(encoder, retriever_name(meta), search_top_k=ab.search_top_k, method=ab.search),
    )
    ctx.before_encode()
    t0 = time.monotonic()
    Evaluator(loader, overwrite=True)(
        task_type=task.task_type,
        domain=task.domain,
        language=task.language,
        dataset_name=task.dataset,
        splits=splits,
        search_results_save_dir=str(root),
        retriever=retriever,
        airbench_task=task,
    )
    files = {s: search_file(root, str(retriever), task, s) for s in splits}
    main = ab.main_scores.get(task.task_type, "ndcg_at_10")
    scored = {
        s: score_split(loader, task, s, Evaluator.load_search_results(str(files[s]))[1], ab.k_values, main)
        for s in splits
        if s in ab.score_splits
    }
    scores = {s: metrics for s, (metrics, _) in scored.items()}
    record = per_item.Record(name, main, "mean", "query", parts=[part for _, part in scored.values() if part])
    if not scores:
        record.missing = "no split with qrels was scored (test qrels are private)"
    elif len(record.parts) < len(scores):
        record.parts, record.missing = [], f"main score {main} has no per-query value in pytrec_eval's output"
    outputs = list(files.values())
    if scores:
        ctx.results.save_to_cache(
            task_result(task, scores, main, time.monotonic() - t0),
            meta,
            encode_kwargs={"batch_size": cfg.model.batch_size},
        )
        outputs.append(ctx.exp_dir / f"{name}.json")
    kept = per_item.write(ctx.exp_dir, record)
    if kept:
        outputs.append(ctx.exp_dir / kept)
    results_root = Path(cfg.results_dir).expanduser()
    first_scored = next(iter(scores.values()), None)
    return {
        "status": "done",
        "task_type": task.type_label,
        "main_score_name": main,
        "main_score": float(first_scored[main]) if first_scored else None,
        "scores": {s: {main: m[main]} for s, m in scores.items()},
        "airbench": {**dataclasses.asdict(task), "splits": splits, "scored_splits": list(scores)},
        "submission": {
            "search_results_dir": _relative(root, results_root),
            "retriever": str(retriever),
            "reranker": RERANKER,
            "test_files": [_relative(files[s], results_root) for s in splits if s == "test"],
            "zip_command": zip_command(root, str(retriever), results_root / SEARCH_DIR / "zipped"),
        },
        "outputs": [_relative(p, results_root) for p in outputs],
        "airbench_fingerprint": settings_fingerprint(cfg),
        **applied_instruction(encoder.template, instruction, source, bool(examples.used().get(name))),
        "examples": examples.used().get(name, []),
        **per_item.manifest_fields(kept, record),
        "n_corpus": retriever.stats.get("n_corpus"),
        "n_queries": retriever.stats.get("n_queries"),
        "search": ab.search,
        "search_top_k": ab.search_top_k,
        "cache": ctx.cache.stats(),
    }


def is_done(cfg: Any, entry: Mapping[str, Any] | None) -> bool:
    """A finished dataset: marked done with today's AIR-Bench settings and every output on disk."""
    if not entry or entry.get("status") != "done":
        return False
    if entry.get("airbench_fingerprint") != settings_fingerprint(cfg):
        logger.info(
            "AIR-Bench settings changed since %s was run; running it again",
            entry.get("airbench", {}).get("dataset"),
        )
        return False
    results_root = Path(cfg.results_dir).expanduser()
    return all((results_root / p).exists() for p in entry.get("outputs", []))


@dataclass(frozen=True)
class AirBenchDataset:
    """One AIR-Bench dataset as a `RunTask`: searched and scored here, filed as an mteb result."""

    task: AirTask

    @property
    def name(self) -> str:
        return self.task.name

    @classmethod
    def check(cls, cfg: Any, tasks: Sequence[AirBenchDataset], cells: Sequence[Any]) -> list[str]:
        return check(cfg, [t.task for t in tasks], cells)

    def reuse_problems(self, exp_dir: Path) -> list[str]:
        return []  # settings that change scores are in the entry's fingerprint: is_done redoes it

    def is_done(self, cfg: Any, exp_dir: Path, entry: Mapping[str, Any] | None) -> bool:
        return is_done(cfg, entry)

    def run(self, ctx: CellContext) -> dict[str, Any]:
        return run_task(self.task, ctx)
