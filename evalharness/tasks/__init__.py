"""mteb tasks of the harness. `offline` holds the "offline-mini" benchmark built from package data
(one module per task); `resolve` turns names into task instances. Both this package and `resolve`
import `offline`, never the reverse."""

from evalharness.tasks.offline import (
    BENCHMARK_NAME,
    OFFLINE_MINI_TASKS,
    OFFLINE_TASK_CLASSES,
    SCALE_ENV_VAR,
    SCALES,
    OfflineChatterbotRetrieval,
    OfflineDataMissingError,
    OfflineLeeSTS,
    OfflineMiniNewsgroupsClustering,
    OfflinePangLeePolarityClassification,
    OfflineRottenTomatoesPairClassification,
    clear_cache,
    get_scale,
    offline_mini_benchmark,
    register_offline_tasks,
    set_scale,
)

__all__ = [
    "BENCHMARK_NAME",
    "OFFLINE_MINI_TASKS",
    "OFFLINE_TASK_CLASSES",
    "SCALES",
    "SCALE_ENV_VAR",
    "OfflineChatterbotRetrieval",
    "OfflineDataMissingError",
    "OfflineLeeSTS",
    "OfflineMiniNewsgroupsClustering",
    "OfflinePangLeePolarityClassification",
    "OfflineRottenTomatoesPairClassification",
    "clear_cache",
    "get_scale",
    "offline_mini_benchmark",
    "register_offline_tasks",
    "set_scale",
]
