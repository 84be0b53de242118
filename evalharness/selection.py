"""Which splits and subsets of a result file make up a task's score.

A result file often holds more than its benchmark scores: mteb writes every split and subset it
evaluated (AmazonCounterfactualClassification: validation and test x en, de, en-ext, ja), published
files keep old splits (SciFact test + train), and a benchmark narrows tasks (MTEB(eng, v1) scores
AmazonCounterfactual on en/test and STS17 on en-en only). Averaging everything a file holds gives
numbers nobody published (AmazonCounterfactual 61.28 where MTEB(eng, v1) says 63.64), so each task
is scored on one selection, taken from the first of:

1. the run manifest's task entry (`splits`, `subsets`: what the runner evaluated);
2. the manifest's `config.benchmark` (an mteb benchmark's task filters, the run's own
   `benchmark.subsets` / `benchmark.splits` / `benchmark.languages`, else each task's defaults, which
   is what the runner evaluates for offline-mini and custom task lists);
3. the report's `--benchmark NAME` (folders without manifests: plain mteb caches, published files);
   tasks outside that benchmark are left out;
4. the task's own mteb metadata (its eval_splits and every hf_subset), with a note saying so.

The filtering itself is mteb's: a task object built with the selection's `eval_splits` /
`hf_subsets` and `TaskResult.validate_and_filter_scores`, the same call `Benchmark.get_score` makes.
A selected split or subset that a file lacks makes the task's score missing (mteb gives NaN), not a
mean over fewer parts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from mteb.results import TaskResult

from evalharness.taskinfo import _registry, aggregate_children

logger = logging.getLogger(__name__)

MANIFEST, RUN_BENCHMARK, OPTION, DEFAULTS, EVERYTHING = (
    "manifest", "run benchmark", "--benchmark", "task defaults", "everything",
)  # fmt: skip
Pair = tuple[str, str]  # (split, subset)


@dataclass(frozen=True)
class Selection:
    """One task's scored splits and subsets, and where that choice came from.

    `splits` / `subsets` are None for tasks mteb does not know (AIR-Bench datasets): every part of
    the file is kept. `in_benchmark` is False for a task that `--benchmark` does not contain."""

    splits: tuple[str, ...] | None
    subsets: tuple[str, ...] | None
    source: str
    benchmark: str = ""
    in_benchmark: bool = True
    all_subsets: bool = False  # the task's every subset (the label says "all N subsets")

    @property
    def label(self) -> str:
        """What a number is made of, for the per-task table: "test · en", "validation, test · all 4
        subsets", "test" (a task without subsets)."""
        if self.splits is None or self.subsets is None:
            return "every split in the file"
        splits = ", ".join(self.splits)
        if tuple(self.subsets) == ("default",):
            return splits
        if len(self.subsets) <= 3:
            return f"{splits} · {', '.join(self.subsets)}"
        return f"{splits} · {'all ' if self.all_subsets else ''}{len(self.subsets)} subsets"


# ---------------------------------------------------------------------------------------------
# mteb lookups (cached: a report calls them once per result file)
# ---------------------------------------------------------------------------------------------


def known_task(name: str) -> bool:
    return name in _registry()


@functools.cache
def _task(
    name: str,
    splits: tuple[str, ...] | None = None,
    subsets: tuple[str, ...] | None = None,
    languages: tuple[str, ...] | None = None,
) -> Any:
    """An mteb task object narrowed as the runner narrows it (`mteb.get_task` with the same arguments),
    so its eval_splits / hf_subsets are exactly what a run scores. No data is loaded."""
    import mteb

    _registry()  # offline tasks registered
    return mteb.get_task(
        name,
        languages=list(languages) if languages else None,
        eval_splits=list(splits) if splits else None,
        hf_subsets=list(subsets) if subsets else None,
    )


Overrides = tuple[tuple[str, tuple[str, ...]], ...]  # a hashable task -> list mapping


def _frozen(mapping: Mapping[str, Sequence[str]] | None) -> Overrides:
    return tuple(sorted((str(k), tuple(v)) for k, v in (mapping or {}).items()))


@functools.cache
def _filters(
    benchmark: str, subsets: Overrides = (), splits: Overrides = ()
) -> dict[str, dict[str, list[str]]]:
    """Per task, the benchmark's filters with the run's own per-task overrides: the runner's
    `task_filters`, so the report scores what the run evaluated."""
    from evalharness.tasks.resolve import task_filters

    return task_filters(benchmark, dict(subsets), dict(splits))


@functools.cache
def benchmark_members(name: str) -> frozenset[str]:
    """The tasks of a benchmark, with the sub-tasks of its aggregate tasks (result folders hold
    CQADupstack's 12 forums, the benchmark names CQADupstackRetrieval)."""
    from evalharness.tasks.resolve import benchmark_task_names

    names = set(benchmark_task_names(name))
    return frozenset(names | {sub for parent in names for sub in aggregate_children(parent)})


def check_benchmark(name: str) -> None:
    """Raise the runner's error (with close matches) for a benchmark name mteb does not know."""
    benchmark_members(name)


# ---------------------------------------------------------------------------------------------
# Choosing and applying a selection
# ---------------------------------------------------------------------------------------------


def _of(task: Any, source: str, benchmark: str = "", in_benchmark: bool = True) -> Selection:
    every = set(_registry()[task.metadata.name].metadata.hf_subsets)
    subsets = tuple(task.hf_subsets)
    complete = len(every) > 1 and set(subsets) == every
    return Selection(tuple(task.eval_splits), subsets, source, benchmark, in_benchmark, complete)


def _from_benchmark(name: str, benchmark: Mapping[str, Any], source: str) -> Selection:
    bench = str(benchmark.get("name") or "")
    filters = _filters(bench, _frozen(benchmark.get("subsets")), _frozen(benchmark.get("splits")))
    chosen = filters.get(name, {})
    task = _task(
        name,
        tuple(chosen.get("eval_splits") or ()) or None,
        tuple(chosen.get("hf_subsets") or ()) or None,
        tuple(benchmark.get("languages") or ()) or None,
    )
    inside = source != OPTION or name in benchmark_members(bench)
    return _of(task, source, bench, inside)


def choose(
    name: str,
    entry: Mapping[str, Any] | None = None,
    benchmark: Mapping[str, Any] | None = None,
    option: str | None = None,
) -> Selection:
    """The selection for task `name` of one cell: its manifest entry, else the manifest's benchmark
    config, else the `--benchmark` option, else the task's defaults (see the module docstring)."""
    if not known_task(name):
        return Selection(None, None, EVERYTHING)
    if entry and entry.get("splits"):
        task = _task(name, tuple(entry["splits"]), tuple(entry.get("subsets") or ()) or None)
        return _of(task, MANIFEST, str((benchmark or {}).get("name") or ""))
    if benchmark and benchmark.get("name"):
        return _from_benchmark(name, benchmark, RUN_BENCHMARK)
    if option:
        return _from_benchmark(name, {"name": option}, OPTION)
    return _of(_task(name), DEFAULTS)


def _pairs(result: TaskResult) -> set[Pair]:
    return {
        (split, e.get("hf_subset", "default")) for split, entries in result.scores.items() for e in entries
    }


def apply(result: TaskResult, selection: Selection) -> tuple[set[Pair], list[Pair]]:
    """The (split, subset) parts of `result` that the selection scores, and the selected parts the file
    lacks, by mteb's own `validate_and_filter_scores` (which adds a NaN entry for each missing part)."""
    present = _pairs(result)
    if selection.splits is None or not selection.in_benchmark:
        return (present if selection.in_benchmark else set()), []
    task = _task(result.task_name, selection.splits, selection.subsets)
    wanted = _pairs(result.validate_and_filter_scores(task))
    return wanted & present, sorted(wanted - present)


# ---------------------------------------------------------------------------------------------
# What the report says about it
# ---------------------------------------------------------------------------------------------

SELECTION_COLUMNS = [
    "model", "revision", "experiment", "task", "splits", "subsets", "source", "benchmark", "label",
    "in_benchmark", "missing",
]  # fmt: skip


def record(
    base: Mapping[str, Any], task: str, selection: Selection, missing: Sequence[Pair]
) -> dict[str, Any]:
    """One row of `Results.selections`."""
    return {
        **{k: base[k] for k in ("model", "revision", "experiment")},
        "task": task,
        "splits": selection.splits,
        "subsets": selection.subsets,
        "source": selection.source,
        "benchmark": selection.benchmark,
        "label": selection.label,
        "in_benchmark": selection.in_benchmark,
        "missing": tuple(f"{split}/{subset}" for split, subset in missing),
    }


def _where(group: pd.DataFrame) -> str:
    """Which cells a note is about: "model (experiment)" for up to three, else a count."""
    cells = list(
        dict.fromkeys(
            f"{m} {e or '(no experiment)'}" for m, e in zip(group["model"], group["experiment"], strict=True)
        )
    )
    return (
        ", ".join(cells)
        if len(cells) <= 3
        else f"{len(cells)} cells of {', '.join(sorted(set(group['model'])))}"
    )


def notes(selections: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(what each task's numbers are made of, warnings). Warnings go to "Missing or partial results":
    cells scored on task defaults for want of a benchmark, and tasks `--benchmark` leaves out."""
    if selections.empty:
        return [], []
    info, warn = [], []
    for (source, bench), group in selections.groupby(["source", "benchmark"], sort=False):
        n = f"{len(group)} task result{'s' if len(group) != 1 else ''}"
        if source == MANIFEST:
            info.append(f"{n}: the splits and subsets the run manifest records as evaluated.")
        elif source == RUN_BENCHMARK:
            what = (
                f"benchmark {bench}'s splits and subsets"
                if _is_mteb_benchmark(bench)
                else f"each task's own eval_splits and subsets, as the run of benchmark {bench!r} evaluated them"
            )
            info.append(
                f"{n}: {what} (the manifest's run config, with its benchmark.subsets / splits / languages)."
            )
        elif source == OPTION:
            inside = group[group["in_benchmark"]]
            info.append(f"{len(inside)} task results: --benchmark {bench}'s splits and subsets.")
            outside = sorted(set(group.loc[~group["in_benchmark"], "task"]))
            if outside:
                warn.append(
                    f"--benchmark {bench}: {len(outside)} task{'s' if len(outside) != 1 else ''} of the folder "
                    f"{'are' if len(outside) != 1 else 'is'} not in it and left out: {', '.join(outside)}"
                )
        elif source == DEFAULTS:
            warn.append(
                f"{_where(group)}: no benchmark recorded (no manifest with one, no --benchmark), so {n} are scored "
                "on each task's own mteb defaults (its eval_splits and every hf_subset), which is not what a "
                'benchmark scores; `evalharness report DIR --benchmark "MTEB(eng, v1)"` scores them as that benchmark.'
            )
        else:
            info.append(
                f"{n} (tasks mteb does not know, e.g. AIR-Bench datasets): every split and subset in the file."
            )
    return info, warn


@functools.cache
def _is_mteb_benchmark(name: str) -> bool:
    from evalharness.tasks.resolve import benchmark_task_filters

    return bool(name) and bool(benchmark_task_filters(name))
