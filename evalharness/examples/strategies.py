"""The example-selection strategies: which examples each text of a task gets.

Strategies (see `build_example_set`):
  - "none":  zero-shot, every text gets no examples.
  - "file":  the fixed per-task sets shipped with bge-en-icl (v1 CSVs, v2 JSON lists, AIR-Bench JSONL),
             found with `find_example_file` (see `evalharness.examples.formats`).
  - "train": a fixed, seeded sample from a non-evaluated split of the task (the paper's "examples are
             sourced from training datasets"), checked to be disjoint from the evaluated split (pools
             from `evalharness.examples.pools`).
  - "knn":   per text, the nearest examples of that training pool (an ablation; the paper uses fixed sets).

All of them implement the `ExampleSet` interface of `evalharness.examples.base`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalharness.examples.base import STRATEGIES, Embed, Example, ExampleError, ExampleSet
from evalharness.examples.formats import find_example_file, load_example_file
from evalharness.examples.pools import (
    _eval_splits,
    _refuse_eval_split,
    _tasks_by_name,
    check_disjoint,
    split_texts,
    task_example_pool,
)

# --------------------------------------------------------------------------------------------------
# Example sets: fixed and file-based
# --------------------------------------------------------------------------------------------------


class FixedExamples:
    """The same examples in front of every text of a task (the paper's setting). A task without an
    entry runs zero-shot; `used()` still lists it (empty) so the manifest shows that it did."""

    def __init__(self, mapping: Mapping[str, Sequence[Example]], strategy: str) -> None:
        self.strategy = strategy
        self._mapping = {task: tuple(examples) for task, examples in mapping.items()}
        self._used: dict[str, tuple[Example, ...]] = {}

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        examples = self._mapping.get(task_name, ())
        self._used[task_name] = examples
        return [examples] * len(texts)

    def used(self) -> dict[str, list[dict]]:
        return {task: [ex.to_dict() for ex in examples] for task, examples in self._used.items()}


def _check_shots(shots: int, allow_all: bool) -> int:
    if not isinstance(shots, int) or isinstance(shots, bool):
        raise ExampleError(f"shots must be an integer, got {shots!r}")
    lowest = -1 if allow_all else 0
    if shots < lowest:
        hint = "use -1 for all examples in the file, 0 for none" if allow_all else "use 0 or more"
        raise ExampleError(f"shots={shots} is invalid; {hint}")
    return shots


class PerTaskExamples:
    """Bookkeeping shared by the example sets that give every text of a task the same examples:
    subclasses only say which examples a task gets (`examples`, raising `ExampleError`)."""

    strategy: str
    _used: dict[str, tuple[Example, ...]]

    def examples(self, task_name: str) -> tuple[Example, ...]:
        raise NotImplementedError

    def check(self, task_names: Iterable[str] | None = None) -> list[str]:
        """One message per problem over all tasks; never raises, so a validation pass can list all."""
        problems = []
        for task_name in list(getattr(self, "tasks", {})) if task_names is None else task_names:
            try:
                self.examples(task_name)
            except ExampleError as err:
                problems.append(str(err))
        return problems

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        examples = self.examples(task_name)
        self._used[task_name] = examples
        return [examples] * len(texts)

    def used(self) -> dict[str, list[dict]]:
        return {task: [ex.to_dict() for ex in examples] for task, examples in self._used.items()}


class FileExamples(PerTaskExamples):
    """Fixed per-task examples from a folder of example files (bge-en-icl's published sets).

    Files are loaded lazily (a run usually covers a subset of the folder) and cached. The first `shots`
    examples of the file are used, in file order; shots=-1 uses all of them, shots=0 none (no file
    needed). `check()` reports every problem without raising so that a pre-flight validation can list
    all of them at once; `for_texts` raises `ExampleError` for the same problems.
    """

    def __init__(self, root: str | Path, shots: int, strategy: str = "file") -> None:
        self.root = Path(root)
        self.shots = _check_shots(shots, allow_all=True)
        self.strategy = strategy
        self._files: dict[str, tuple[Path, list[Example]]] = {}
        self._used: dict[str, tuple[Example, ...]] = {}

    def _load(self, task_name: str) -> tuple[Path, list[Example]]:
        if task_name not in self._files:
            path = find_example_file(self.root, task_name)
            self._files[task_name] = (path, load_example_file(path))
        return self._files[task_name]

    def examples(self, task_name: str) -> tuple[Example, ...]:
        """The examples for `task_name`; raises `ExampleError` if the file is missing or too short."""
        if self.shots == 0:
            return ()
        try:
            path, pool = self._load(task_name)
        except ExampleError as err:
            raise ExampleError(
                str(err) if str(err).startswith("task ") else f"task {task_name}: {err}"
            ) from err
        if not pool:
            raise ExampleError(
                f"task {task_name}: {path.name} has no examples; add examples to it or run this task "
                "with strategy 'none'"
            )
        if self.shots > len(pool):
            raise ExampleError(
                f"task {task_name}: shots={self.shots} but {path.name} has only {len(pool)} examples; "
                "lower shots or add examples"
            )
        chosen = tuple(pool if self.shots == -1 else pool[: self.shots])
        identical = [ex.source for ex in chosen if ex.query.strip() == ex.response.strip()]
        if identical:
            # The early v2 JSON files had query == response (FlagEmbedding issue #1244): useless demos.
            raise ExampleError(
                f"task {task_name}: {path.name} has examples whose query equals the response "
                f"({', '.join(identical)}); use the corrected example files"
            )
        return chosen


def sample_examples(pool: Sequence[Example], k: int, seed: int, *, cap: bool = False) -> list[Example]:
    """`k` examples drawn without replacement with `numpy.random.default_rng(seed)`, in draw order.

    Seeded so that a run's examples are reproducible from (pool, k, seed). k larger than the pool is an
    error unless `cap=True`, in which case the whole pool is used (still in seeded order)."""
    k = _check_shots(k, allow_all=False)
    if k > len(pool):
        if not cap:
            raise ExampleError(
                f"cannot sample {k} examples from a pool of {len(pool)}; lower shots or pass cap=True "
                "to use the whole pool"
            )
        k = len(pool)
    rng = np.random.default_rng(seed)
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


# --------------------------------------------------------------------------------------------------
# Example sets from task data: fixed seeded sample, per-text nearest neighbours
# --------------------------------------------------------------------------------------------------


def _unknown_task(task_name: str, known: Iterable[str], cls: str) -> ExampleError:
    return ExampleError(
        f"task {task_name} was not given to {cls} (known: {', '.join(sorted(known)) or 'none'}); "
        "add it to the tasks the example set is built from"
    )


class TrainExamples(PerTaskExamples):
    """A fixed, seeded sample of `shots` examples per task from a non-evaluated split (default "train"),
    checked to share no text with any evaluated split. Built lazily per task, then fixed."""

    def __init__(
        self,
        tasks: Mapping[str, Any] | Iterable[Any],
        shots: int,
        seed: int,
        split: str = "train",
        cap: bool = False,
        strategy: str = "train",
    ) -> None:
        self.tasks = _tasks_by_name(tasks)
        self.shots = _check_shots(shots, allow_all=False)
        self.seed, self.split, self.cap, self.strategy = seed, split, cap, strategy
        _refuse_eval_split(self.tasks, split)
        self._chosen: dict[str, tuple[Example, ...]] = {}
        self._used: dict[str, tuple[Example, ...]] = {}

    def examples(self, task_name: str) -> tuple[Example, ...]:
        if task_name not in self.tasks:
            raise _unknown_task(task_name, self.tasks, "TrainExamples")
        if task_name not in self._chosen:
            task = self.tasks[task_name]
            if self.shots == 0:
                chosen: tuple[Example, ...] = ()
            else:
                pool = task_example_pool(task, self.split)
                try:
                    chosen = tuple(sample_examples(pool, self.shots, self.seed, cap=self.cap))
                except ExampleError as err:
                    raise ExampleError(f"task {task_name}, split {self.split!r}: {err}") from err
                for eval_split in _eval_splits(task):
                    check_disjoint(chosen, split_texts(task, eval_split), task_name, eval_split)
            self._chosen[task_name] = chosen
        return self._chosen[task_name]


class KnnExamples:
    """Per text, the `shots` pool examples whose query is most cosine-similar to the text (an ablation;
    bge-en-icl itself uses one fixed set per task).

    Pool embeddings are computed once per task with the `embed` passed to `for_texts`. An example whose
    query or response equals the text is skipped (it would hand the model the answer). Ties go to the
    earlier pool entry, so the choice is deterministic. A text that equals pool entries can get fewer
    than `shots` examples when the pool has no others.
    """

    chunk_size = 1024  # texts per similarity block; bounds memory at chunk_size x pool floats

    def __init__(self, pools: Mapping[str, Sequence[Example]], shots: int, strategy: str = "knn") -> None:
        self.pools = pools
        self.shots = _check_shots(shots, allow_all=False)
        self.strategy = strategy
        self._cache: dict[str, tuple[tuple[Example, ...], np.ndarray, dict[str, list[int]]]] = {}
        self._counts: dict[str, Counter[int]] = {}

    def _pool(
        self, task_name: str, embed: Embed
    ) -> tuple[tuple[Example, ...], np.ndarray, dict[str, list[int]]]:
        if task_name not in self._cache:
            if task_name not in self.pools:
                raise _unknown_task(task_name, self.pools, "KnnExamples")
            pool = tuple(self.pools[task_name])
            if len(pool) < self.shots:
                raise ExampleError(
                    f"task {task_name}: shots={self.shots} but the example pool has only {len(pool)} "
                    "examples; lower shots or use a larger split"
                )
            vectors = _embed(embed, [ex.query for ex in pool], task_name)
            same: dict[str, list[int]] = {}
            for i, ex in enumerate(pool):
                for text in {ex.query.strip(), ex.response.strip()}:
                    same.setdefault(text, []).append(i)
            self._cache[task_name] = (pool, vectors, same)
        return self._cache[task_name]

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        if embed is None:
            raise ExampleError(
                f"task {task_name}: strategy 'knn' needs the embed callable to compare texts with the "
                "example pool; pass embed to for_texts"
            )
        texts = list(texts)
        counts = self._counts.setdefault(task_name, Counter())
        if self.shots == 0 or not texts:
            return [()] * len(texts)
        pool, pool_vecs, same = self._pool(task_name, embed)
        text_vecs = _embed(embed, list(texts), task_name)
        out: list[tuple[Example, ...]] = []
        for start in range(0, len(texts), self.chunk_size):
            sims = text_vecs[start : start + self.chunk_size] @ pool_vecs.T
            for row, text in enumerate(texts[start : start + self.chunk_size]):
                picked = _top_k(sims[row], self.shots, same.get(text.strip(), ()))
                counts.update(picked)
                out.append(tuple(pool[i] for i in picked))
        return out

    def used(self) -> dict[str, list[dict]]:
        result: dict[str, list[dict]] = {}
        for task, counts in self._counts.items():
            pool = self._cache[task][0] if task in self._cache else ()
            result[task] = [{**pool[i].to_dict(), "count": counts[i]} for i in sorted(counts)]
        return result


def _embed(embed: Embed, texts: list[str], task_name: str) -> np.ndarray:
    """Embed and re-normalise (cheap, and guards against an embed that forgets to)."""
    vecs = np.asarray(embed(texts), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise ExampleError(
            f"task {task_name}: embed returned shape {vecs.shape} for {len(texts)} texts; it must return "
            "one vector per text"
        )
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)


def _top_k(sims: np.ndarray, k: int, excluded: Iterable[int]) -> list[int]:
    """Indices of the k largest similarities, ties to the lower index, `excluded` never chosen."""
    sims = sims.astype(np.float64, copy=True)
    excluded = list(excluded)
    sims[excluded] = -np.inf
    k = min(k, len(sims) - len(set(excluded)))
    if k <= 0:
        return []
    kth = np.partition(sims, len(sims) - k)[len(sims) - k]
    cand = np.flatnonzero(sims >= kth)  # every entry tied with the k-th best, so ties are settled below
    order = cand[np.lexsort((cand, -sims[cand]))]
    return [int(i) for i in order[:k] if np.isfinite(sims[i])]


class _TrainPools(Mapping[str, Sequence[Example]]):
    """Lazily built knn pools: a task's `split` examples minus any that repeat an evaluated text (a
    pool is large, so overlapping entries are dropped rather than refused)."""

    def __init__(self, tasks: Mapping[str, Any], split: str) -> None:
        self.tasks, self.split = tasks, split
        self._pools: dict[str, list[Example]] = {}

    def __getitem__(self, task_name: str) -> list[Example]:
        if task_name not in self._pools:
            task = self.tasks[task_name]
            evaluated: set[str] = set()
            for eval_split in _eval_splits(task):
                evaluated |= split_texts(task, eval_split)
            self._pools[task_name] = [
                ex
                for ex in task_example_pool(task, self.split)
                if ex.query.strip() not in evaluated and ex.response.strip() not in evaluated
            ]
        return self._pools[task_name]

    def __contains__(self, task_name: object) -> bool:
        return task_name in self.tasks  # without building the pool, as Mapping's default would

    def __iter__(self) -> Iterator[str]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


def build_example_set(
    strategy: str,
    *,
    shots: int,
    seed: int = 0,
    root: str | Path | None = None,
    tasks: Mapping[str, Any] | Iterable[Any] | None = None,
    split: str = "train",
    cap: bool = False,
) -> ExampleSet:
    """The example set for a run configuration.

    "none": zero-shot; "file": `FileExamples(root, shots)`; "train": `TrainExamples(tasks, shots, seed,
    split, cap)`; "knn": `KnnExamples` over the same per-task `split` pools (overlaps with the
    evaluated split dropped)."""
    if strategy == "none":
        return FixedExamples({}, "none")
    if strategy == "file":
        if root is None:
            raise ExampleError("strategy 'file' needs root: the folder holding the <task>.json/.csv files")
        return FileExamples(root, shots)
    if strategy in ("train", "knn"):
        if tasks is None:
            raise ExampleError(f"strategy {strategy!r} needs tasks: the mteb tasks to take examples from")
        by_name = _tasks_by_name(tasks)
        if strategy == "train":
            return TrainExamples(by_name, shots, seed, split=split, cap=cap)
        _refuse_eval_split(by_name, split)
        return KnnExamples(_TrainPools(by_name, split), shots)
    raise ExampleError(f"unknown example strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")
