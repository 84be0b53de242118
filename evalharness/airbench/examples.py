"""Few-shot examples for AIR-Bench datasets: bge-en-icl's example files, or a seeded sample of a split
that is not evaluated.

The reference runner has no hook for examples at all (it wraps `AIRBench` with a generic retriever),
so the mapping from dataset to example file is done here. bge-en-icl ships one JSONL file per dataset
(`{query, pos}`, 3 lines each): `qa/{domain}.jsonl` and `long-doc/{domain}-{dataset}.jsonl`, with
lower-case `k` in names where the datasets write `K` (`pubmed_100k-200k_1`), which
`evalharness.examples.find_example_file` folds. All sets return examples through the same
`ExampleSet` interface as MTEB runs, keyed by the AIR-Bench task name, so the manifest shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalharness.airbench.tasks import AirTask, get_task
from evalharness.examples import (
    Example,
    ExampleError,
    ExampleSet,
    FileExamples,
    FixedExamples,
    KnnExamples,
    PerTaskExamples,
    check_disjoint,
    find_example_file,
    sample_examples,
)

STRATEGIES = ("none", "file", "train", "knn")


def file_keys(task: AirTask) -> list[str]:
    """Example-file stems for a dataset, most specific first. The reference files are English only and
    carry no language in their names, so the bare stem is used for English datasets only: English
    demonstrations in front of, say, Chinese queries would be a different experiment."""
    stem = task.domain if task.task_type == "qa" else f"{task.domain}-{task.dataset}"
    keys = [f"{stem}-{task.language}", f"{stem}_{task.language}"]
    if task.language == "en":
        keys.append(stem)
    return keys


class AirBenchFileExamples(PerTaskExamples):
    """One fixed example set per dataset from a folder of example files: `root/{task type}/` (the
    reference layout, e.g. FlagEmbedding's `examples/bge-en-icl/AIR-Bench`) or `root` itself. The first
    `shots` examples of the file are used (-1: all), as for MTEB's file strategy."""

    def __init__(self, root: str | Path, shots: int, strategy: str = "file") -> None:
        self.root = Path(root)
        self.shots = shots
        self.strategy = strategy
        self._files: dict[str, tuple[FileExamples, str]] = {}
        self._used: dict[str, tuple[Example, ...]] = {}

    def _locate(self, name: str) -> tuple[FileExamples, str]:
        if name in self._files:
            return self._files[name]
        task = get_task(name)
        folders = [d for d in (self.root / task.task_type, self.root) if d.is_dir()]
        if not folders:
            raise ExampleError(
                f"task {name}: example folder {self.root} does not exist; point examples.root at the "
                "folder that holds qa/ and long-doc/ (or the .jsonl files themselves)"
            )
        for folder in folders:
            for key in file_keys(task):
                try:
                    find_example_file(folder, key)
                except ExampleError:
                    continue
                self._files[name] = (FileExamples(folder, self.shots, self.strategy), key)
                return self._files[name]
        stems = "{" + ",".join(file_keys(task)) + "}.jsonl"
        available = sorted(p.name for f in folders for p in f.iterdir() if p.suffix in (".jsonl", ".json"))
        raise ExampleError(
            f"task {name}: no example file {stems} (case-insensitive; .json/.csv too) in "
            f"{' or '.join(str(f) for f in folders)}; available: {', '.join(available) or 'none'}. "
            "Add the file, or run with examples=none"
        )

    def examples(self, name: str) -> tuple[Example, ...]:
        if self.shots == 0:
            return ()
        files, key = self._locate(name)
        try:
            return files.examples(key)
        except ExampleError as err:
            raise ExampleError(f"task {name} (example file {key}): {err}") from err


# --------------------------------------------------------------------------------------------------
# Examples from a non-evaluated split (24.05 QA: dev, when only test is evaluated)
# --------------------------------------------------------------------------------------------------


def _best_positive(qrels: dict[str, dict[str, int]]) -> dict[str, str]:
    """Per query, its most relevant document (ties: the smallest id), as the MTEB train pools do."""
    best = {}
    for qid, docs in qrels.items():
        positives = [(-int(rel), str(doc)) for doc, rel in docs.items() if int(rel) > 0]
        if positives:
            best[str(qid)] = min(positives)[1]
    return best


def pool_size(loader: Any, task: AirTask, split: str) -> int:
    """How many queries of `split` have a relevant document (without reading the corpus)."""
    args = (task.task_type, task.domain, task.language, task.dataset)
    queries = loader.load_queries(*args, split=split)
    best = _best_positive(dict(loader.load_qrels(*args, split=split)))
    return sum(1 for qid, text in queries.items() if str(qid) in best and str(text).strip())


def split_pool(loader: Any, task: AirTask, split: str) -> list[Example]:
    """Every (query, its most relevant passage) pair of `split`, in query-file order."""
    args = (task.task_type, task.domain, task.language, task.dataset)
    queries = loader.load_queries(*args, split=split)
    best = _best_positive(dict(loader.load_qrels(*args, split=split)))
    corpus = loader.load_corpus(*args)
    out = []
    for qid, text in queries.items():
        doc = best.get(str(qid))
        passage = corpus[doc]["text"] if doc is not None and doc in corpus else None
        if isinstance(text, str) and text.strip() and isinstance(passage, str) and passage.strip():
            out.append(Example(text, passage, source=f"{split}:{qid}"))
    return out


def sampled_split_problems(task: AirTask, split: str, eval_splits: Sequence[str]) -> list[str]:
    """Why `split` cannot provide examples for `task` (empty list: it can)."""
    if split in eval_splits:
        return [
            f"task {task.name}: examples.split={split!r} is evaluated in this run "
            f"(splits {', '.join(eval_splits)}); evaluate only the other split "
            "(benchmark.airbench.splits=[test]) or use examples=file"
        ]
    if split not in task.splits:
        hint = ""
        if task.version == "AIR-Bench_24.04":
            hint = (
                " (24.04 has only test splits, and 24.05's dev queries were taken from 24.04's test "
                "queries, so they cannot serve as 24.04 examples either)"
            )
        return [
            f"task {task.name}: has no {split!r} split to take examples from (it has "
            f"{', '.join(task.splits)}){hint}; use examples=file (bge-en-icl's AIR-Bench files) or "
            "examples=none"
        ]
    return []


def build_example_set(
    strategy: str,
    *,
    task: AirTask,
    shots: int,
    seed: int,
    loader: Any,
    eval_splits: Sequence[str],
    root: str | None = None,
    split: str = "dev",
    cap: bool = False,
) -> ExampleSet:
    """The example set of one cell for one AIR-Bench dataset (examples chosen once, then fixed)."""
    if strategy == "none" or shots == 0:
        return FixedExamples({}, "none")
    if strategy == "file":
        if not root:
            raise ExampleError("examples=file needs examples.root: the AIR-Bench example folder")
        return AirBenchFileExamples(root, shots)
    if strategy not in ("train", "knn"):
        raise ExampleError(f"unknown example strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    problems = sampled_split_problems(task, split, eval_splits)
    if problems:
        raise ExampleError(problems[0])
    pool = split_pool(loader, task, split)
    args = (task.task_type, task.domain, task.language, task.dataset)
    evaluated = [t for s in eval_splits for t in loader.load_queries(*args, split=s).values()]
    if strategy == "knn":
        seen = {t.strip() for t in evaluated}
        pool = [ex for ex in pool if ex.query.strip() not in seen and ex.response.strip() not in seen]
        return KnnExamples({task.name: pool}, shots)
    try:
        chosen = sample_examples(pool, shots, seed, cap=cap)
    except ExampleError as err:
        raise ExampleError(f"task {task.name}, split {split!r}: {err}") from err
    check_disjoint(chosen, evaluated, task.name, "+".join(eval_splits))
    return FixedExamples({task.name: chosen}, "train")
