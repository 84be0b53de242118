"""AIR-Bench (qa and long-doc, versions 24.04 and 24.05) with few-shot queries, as tasks of runner cells.

`evalharness run benchmark=air-bench-qa-en ...` selects datasets with `benchmark.airbench` (version,
task types, domains, languages, datasets, splits); each dataset is one task named like
`AIRBench_24.04_qa_wiki_en`. Per cell and dataset the runner calls `run_task`: an air-benchmark
`Retriever` over the harness's encoder ranks the corpus for the dev and test queries, air-benchmark's
evaluator scores the dev split (test qrels are private), dev scores are filed as an mteb `TaskResult`
in the cell's experiment folder, and the rankings are written in the layout of the benchmark's
submission zip.

Modules: `tasks` (names, selection, valid values), `data` (hub or local-file loading, LocalDataLoader),
`examples` (example files / seeded dev samples), `retriever` (ICLRetriever, exact or faiss search),
`run` (the runner's hooks: benchmark_task_names, check, run_task, is_done).
"""

# only the name registry here: it imports air-benchmark lazily, so MTEB-only installs import this
# package (the runner asks it about task names) without air-benchmark
from evalharness.airbench.tasks import (
    BENCHMARK_NAME,
    AirBenchError,
    AirTask,
    all_tasks,
    default_main_score,
    get_task,
    is_airbench_task,
    select_tasks,
    task_type_label,
)

__all__ = [
    "BENCHMARK_NAME",
    "AirBenchError",
    "AirTask",
    "all_tasks",
    "default_main_score",
    "get_task",
    "is_airbench_task",
    "select_tasks",
    "task_type_label",
]
