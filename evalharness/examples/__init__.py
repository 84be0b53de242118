"""Few-shot example sources: which (query, response) pairs go in front of a task's queries.

The package has one module per job; everything the rest of the code base uses is re-exported here, so
`from evalharness.examples import X` is the import to use:
  - `base`:       the shared interface and names: `Example` (one demonstration), `ExampleSet` (what the
                  encoder adapter calls: `for_texts`, `used`), `ExampleError` (every user-facing problem,
                  with a message naming the problem and the fix), `STRATEGIES`, `Embed`.
  - `formats`:    reading example files in the reference formats (v1 CSV, v2 JSON list, AIR-Bench JSONL)
                  with `load_example_file`, and finding a task's file with `find_example_file` (which
                  folds the CQADupstack / case / version name mismatches).
  - `pools`:      example pools drawn from an mteb task's non-evaluated splits (`task_example_pool`), the
                  texts of a split (`split_texts`) and the checks that keep examples off the evaluated
                  split (`check_disjoint`).
  - `strategies`: the selection strategies "none", "file", "train" and "knn" (`FixedExamples`,
                  `FileExamples`, `TrainExamples`, `KnnExamples`, `sample_examples`) and
                  `build_example_set`, which picks one for a run configuration.

Dependencies run one way: base <- formats, pools <- strategies.
"""

from evalharness.examples.base import STRATEGIES, Embed, Example, ExampleError, ExampleSet
from evalharness.examples.formats import (
    CQADUPSTACK_SUBTASKS,
    EXAMPLE_SUFFIXES,
    find_example_file,
    load_example_file,
)
from evalharness.examples.pools import check_disjoint, split_texts, task_example_pool
from evalharness.examples.strategies import (
    FileExamples,
    FixedExamples,
    KnnExamples,
    PerTaskExamples,
    TrainExamples,
    build_example_set,
    sample_examples,
)

__all__ = [
    "CQADUPSTACK_SUBTASKS",
    "EXAMPLE_SUFFIXES",
    "STRATEGIES",
    "Embed",
    "Example",
    "ExampleError",
    "ExampleSet",
    "FileExamples",
    "FixedExamples",
    "KnnExamples",
    "PerTaskExamples",
    "TrainExamples",
    "build_example_set",
    "check_disjoint",
    "find_example_file",
    "load_example_file",
    "sample_examples",
    "split_texts",
    "task_example_pool",
]
