"""AIR-Bench datasets as named tasks: one (version, task type, domain, language, dataset) = one task.

air-benchmark organises its data as nested tables and runs a whole benchmark at once; the harness runs
one dataset at a time (per-dataset examples, resumable results, one mteb result file each), so every
dataset gets a path-safe task name, e.g. `AIRBench_24.04_qa_wiki_en` or
`AIRBench_24.04_long-doc_arxiv_en_gpt3`. The names are built from air-benchmark's own `BenchmarkTable`,
so they always match the installed package. Selection problems (unknown version, task type, domain,
language, dataset or split, or a combination that selects nothing) are reported all at once, each
with the valid values.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evalharness.errors import EvalharnessError

PREFIX = "AIRBench_"
BENCHMARK_NAME = "air-bench"
VERSION_PREFIX = "AIR-Bench_"
TASK_TYPE_LABELS = {"qa": "AIR-Bench QA", "long-doc": "AIR-Bench Long-Doc"}
SPLITS = ("dev", "test")
DEFAULT_MAIN_SCORES = {"qa": "ndcg_at_10", "long-doc": "recall_at_10"}

# AIR-Bench language codes -> the mteb language-script codes a TaskResult carries
LANGUAGE_SCRIPTS = {
    "ar": "ara-Arab", "bn": "ben-Beng", "de": "deu-Latn", "en": "eng-Latn", "es": "spa-Latn",
    "fa": "fas-Arab", "fr": "fra-Latn", "hi": "hin-Deva", "id": "ind-Latn", "ja": "jpn-Jpan",
    "ko": "kor-Hang", "ru": "rus-Cyrl", "zh": "cmn-Hans",
}  # fmt: skip


class AirBenchError(EvalharnessError, ValueError):
    """A problem with the AIR-Bench configuration, data or examples; the message says how to fix it."""


@dataclass(frozen=True)
class TaskMeta:
    """What the encoder adapter reads from an mteb TaskMetadata: the name (instruction and example
    lookup), the type (normalisation policy) and the prompt (instruction fallback, unused here)."""

    name: str
    type: str = "Retrieval"
    prompt: str | None = None


@dataclass(frozen=True)
class AirTask:
    """One AIR-Bench dataset of one benchmark version."""

    version: str
    task_type: str
    domain: str
    language: str
    dataset: str
    splits: tuple[str, ...]

    @property
    def name(self) -> str:
        short = self.version.removeprefix(VERSION_PREFIX)
        parts = [short, self.task_type, self.domain, self.language]
        if self.dataset != "default":
            parts.append(self.dataset)
        return PREFIX + "_".join(parts)

    @property
    def label(self) -> str:
        """The benchmark's own way of naming the dataset, for messages."""
        return f"{self.version}/{self.task_type}/{self.domain}/{self.language}/{self.dataset}"

    @property
    def type_label(self) -> str:
        return TASK_TYPE_LABELS.get(self.task_type, f"AIR-Bench {self.task_type}")

    @property
    def language_script(self) -> str:
        return LANGUAGE_SCRIPTS.get(self.language, self.language)

    @property
    def metadata(self) -> TaskMeta:
        return TaskMeta(self.name)


def _table() -> dict[str, Any]:
    try:
        from air_benchmark.tasks import BenchmarkTable
    except ImportError as err:
        raise AirBenchError(
            "air-benchmark is not installed; `make setup` installs it, or "
            "pip install --no-deps air-benchmark==0.1.0 pytrec-eval-terrier rich"
        ) from err
    return BenchmarkTable


@functools.cache
def all_tasks() -> dict[str, AirTask]:
    """Every dataset of every installed AIR-Bench version, by task name, in the benchmark's order."""
    out: dict[str, AirTask] = {}
    for version, types in _table().items():
        for task_type, domains in types.items():
            for domain, languages in domains.items():
                for language, datasets in languages.items():
                    for dataset, info in datasets.items():
                        task = AirTask(version, task_type, domain, language, dataset, tuple(info["splits"]))
                        out[task.name] = task
    return out


def versions() -> list[str]:
    return sorted(_table())


def is_airbench_task(name: str) -> bool:
    """Cheap for other names: air-benchmark is only imported for names that look like ours."""
    return name.startswith(PREFIX) and name in all_tasks()


def get_task(name: str) -> AirTask:
    tasks = all_tasks()
    if name not in tasks:
        close = difflib.get_close_matches(name, list(tasks), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise AirBenchError(f"unknown AIR-Bench task {name!r}.{hint}")
    return tasks[name]


def task_type_label(name: str) -> str | None:
    """'AIR-Bench QA' / 'AIR-Bench Long-Doc' for an AIR-Bench task name, None for any other name (what a
    results table can use as the task type, since these tasks are not in mteb's registry)."""
    task = all_tasks().get(name) if name.startswith(PREFIX) else None
    return task.type_label if task else None


def default_main_score(name: str) -> str | None:
    """The metric the paper reports for an AIR-Bench task name (QA nDCG@10, Long-Doc Recall@10), None
    for other names; a run's benchmark.airbench.main_scores may choose others (its manifest says)."""
    task = all_tasks().get(name) if name.startswith(PREFIX) else None
    return DEFAULT_MAIN_SCORES.get(task.task_type) if task else None


def normalise_version(version: str) -> str:
    """'24.04' and 'AIR-Bench_24.04' both name version AIR-Bench_24.04."""
    v = str(version).strip()
    return v if v.startswith(VERSION_PREFIX) else VERSION_PREFIX + v


def _unknown(kind: str, values: Iterable[str], valid: Sequence[str], where: str) -> list[str]:
    problems = []
    for value in values:
        if value not in valid:
            close = difflib.get_close_matches(value, list(valid), n=2, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(
                f"unknown AIR-Bench {kind} {value!r} for {where}{hint}; valid {kind}s: {', '.join(valid)}"
            )
    return problems


def _distinct(values: Iterable[str]) -> list[str]:
    return sorted(dict.fromkeys(values))


def select_tasks(
    version: str,
    task_types: Sequence[str] = (),
    domains: Sequence[str] = (),
    languages: Sequence[str] = (),
    datasets: Sequence[str] = (),
    splits: Sequence[str] = (),
) -> list[AirTask]:
    """The datasets of `version` that match every non-empty filter and have at least one of `splits`.

    Raises `AirBenchError` listing every unknown value with the valid ones, or the combinations that
    exist when the filters together select nothing."""
    version = normalise_version(version)
    if version not in _table():
        raise AirBenchError(
            f"unknown AIR-Bench version {version!r}; valid versions: {', '.join(versions())} "
            "(set benchmark.airbench.version)"
        )
    pool = [t for t in all_tasks().values() if t.version == version]
    lowered = {
        "task type": [v.lower() for v in task_types],
        "domain": [v.lower() for v in domains],
        "language": [v.lower() for v in languages],
        "split": [v.lower() for v in splits],
    }
    valid = {
        "task type": _distinct(t.task_type for t in pool),
        "domain": _distinct(t.domain for t in pool),
        "language": _distinct(t.language for t in pool),
        "split": _distinct(s for t in pool for s in t.splits),
    }
    problems: list[str] = []
    for kind, values in lowered.items():
        problems += _unknown(kind, values, valid[kind], version)
    # dataset names keep their case (pubmed_100K-200K_1) but are matched case-insensitively
    by_folded = {t.dataset.casefold(): t.dataset for t in pool}
    problems += _unknown(
        "dataset",
        [d for d in datasets if d.casefold() not in by_folded],
        _distinct(by_folded.values()),
        version,
    )
    if problems:
        raise AirBenchError("\n".join(problems))
    wanted_datasets = {by_folded[d.casefold()] for d in datasets}
    chosen = [
        t
        for t in pool
        if (not lowered["task type"] or t.task_type in lowered["task type"])
        and (not lowered["domain"] or t.domain in lowered["domain"])
        and (not lowered["language"] or t.language in lowered["language"])
        and (not wanted_datasets or t.dataset in wanted_datasets)
        and (not lowered["split"] or set(t.splits) & set(lowered["split"]))
    ]
    if not chosen:
        combos = _distinct(f"{t.task_type}/{t.domain}/{t.language} ({', '.join(t.splits)})" for t in pool)
        raise AirBenchError(
            f"no {version} dataset matches task_types={list(task_types)} domains={list(domains)} "
            f"languages={list(languages)} datasets={list(datasets)} splits={list(splits)}; "
            f"what {version} has: {'; '.join(combos)}"
        )
    return chosen


def run_splits(task: AirTask, splits: Sequence[str]) -> list[str]:
    """The splits of `task` a run evaluates: the requested ones it has (all of its splits if none)."""
    wanted = [s.lower() for s in splits] or list(SPLITS)
    return [s for s in task.splits if s in wanted]
