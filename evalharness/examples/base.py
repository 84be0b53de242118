"""The interface every few-shot example source implements, and what they all share.

Interface used by the encoder adapter (evalharness/encoders/icl.py):
  - `Example`: one demonstration.
  - `ExampleSet.for_texts(task_name, texts, embed)`: the examples to put in front of each text.
  - `ExampleSet.used()`: the examples actually handed out, per task, for the run manifest.

Every user-facing problem raises `ExampleError` with a message naming the problem and the fix, because
a silently missing example file turns a few-shot run into a zero-shot run without any visible sign.

Kept apart from the readers, pools and strategies so that each of them (and `evalharness.prompts`,
which needs `Example`) can import these names without importing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from evalharness.errors import EvalharnessError

Embed = Callable[[list[str]], np.ndarray]
"""Raw (unprompted) text -> L2-normalised vectors; only the per-query `knn` strategy needs it."""


@dataclass(frozen=True)
class Example:
    """One demonstration. `instruction` overrides the task's instruction for this example only,
    as bge-en-icl's `set_examples` honours an example's own `instruct` key."""

    query: str
    response: str
    instruction: str | None = None
    source: str = ""  # where it came from, e.g. "Banking77.csv:3" or "train:42"; goes into the manifest

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


class ExampleSet(Protocol):
    strategy: str

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]: ...

    def used(self) -> dict[str, list[dict]]: ...


class ExampleError(EvalharnessError, ValueError):
    """A problem with few-shot examples that the user has to fix (bad file, missing file, too few
    examples, leakage). The message always names the problem and the fix."""


STRATEGIES = ("none", "file", "train", "knn")
