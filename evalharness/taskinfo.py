"""What a task is, by name: its mteb type and main score, its aggregate group, its AIR-Bench fields.

Read from mteb's task registry (class attributes, so nothing is instantiated or downloaded), with the
offline tasks registered first; AIR-Bench datasets are not in the registry, so their names are parsed.
`TYPE_ORDER` / `type_key` put task types in the paper's column order. Kept apart from reading results
(evalharness.results), choosing splits (evalharness.selection), the report's tables and its plots, which
all need it and none of which it needs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any


@functools.cache
def _registry() -> Mapping[str, Any]:
    from mteb.get_tasks import _TASKS_REGISTRY

    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    return _TASKS_REGISTRY


AIRBENCH_PREFIX = "AIRBench_"
AIRBENCH_TYPES = {"qa": "AIR-Bench QA", "long-doc": "AIR-Bench Long-Doc"}


def parse_airbench(name: str) -> dict[str, str] | None:
    """Fields of an AIR-Bench task name as evalharness.airbench writes them
    (`AIRBench_24.04_qa_wiki_en`, `AIRBench_24.04_long-doc_arxiv_en_gpt3`); None for other names. Parsed
    here rather than imported, so reading results never needs air-benchmark installed."""
    if not name.startswith(AIRBENCH_PREFIX):
        return None
    parts = name.removeprefix(AIRBENCH_PREFIX).split("_", 4)
    if len(parts) < 4 or parts[1] not in AIRBENCH_TYPES:
        return None
    version, kind, domain, language = parts[:4]
    return {"version": version, "task_type": kind, "domain": domain, "language": language,
            "dataset": parts[4] if len(parts) == 5 else "default"}  # fmt: skip


def task_type(name: str) -> str:
    """The mteb task type ("Retrieval", "STS", ...; "AIR-Bench QA" / "AIR-Bench Long-Doc" for AIR-Bench
    datasets), or "" for a task nobody knows."""
    cls = _registry().get(name)
    if cls is not None:
        return cls.metadata.type
    air = parse_airbench(name)
    return AIRBENCH_TYPES[air["task_type"]] if air else ""


def main_score_name(name: str) -> str | None:
    cls = _registry().get(name)
    return cls.metadata.main_score if cls is not None else None


@functools.cache
def aggregate_parents() -> dict[str, str]:
    """Sub-task -> aggregate task, for every mteb aggregate task (CQADupstackRetrieval and its 12 forums,
    ...). The paper (and mteb's MTEB(eng, v1)) counts such a group as one task: its score is the mean of
    the sub-tasks, taken before any type or overall mean."""
    from mteb.abstasks.aggregated_task import AbsTaskAggregate

    parents: dict[str, str] = {}
    for name, cls in _registry().items():
        if isinstance(cls, type) and issubclass(cls, AbsTaskAggregate):
            for sub in cls.metadata.tasks:
                parents.setdefault(sub.metadata.name, name)
    return parents


def aggregate_children(parent: str) -> list[str]:
    return [sub for sub, p in aggregate_parents().items() if p == parent]


#: Paper Table 1's column order; other types follow alphabetically.
TYPE_ORDER = [
    "Retrieval", "Reranking", "Clustering", "PairClassification", "Classification", "STS", "Summarization",
    "AIR-Bench QA", "AIR-Bench Long-Doc",
]  # fmt: skip


def type_key(task_type_: str) -> tuple[int, str]:
    """Sort key of a task type: the order of `TYPE_ORDER`, then alphabetical."""
    return (TYPE_ORDER.index(task_type_) if task_type_ in TYPE_ORDER else len(TYPE_ORDER), task_type_)


def benchmark_of_type(task_type_: str) -> str:
    """Which benchmark family a task type belongs to ("AIR-Bench" or "MTEB"): the paper reports each
    family's own averages and never averages the two together."""
    return "AIR-Bench" if task_type_ in AIRBENCH_TYPES.values() else "MTEB"
