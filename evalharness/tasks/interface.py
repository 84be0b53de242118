"""The one interface the runner sees for everything it scores: an mteb task or an AIR-Bench dataset.

A plan holds `RunTask`s; the runner asks each one whether a cell already holds its result
(`is_done`), runs it (`run`, which returns the task's manifest entry) and reads its main score from
that entry. What differs between the two kinds (mteb's evaluate and ResultCache; air-benchmark's
evaluator, dev scoring and submission files) stays behind this interface, so neither the runner nor
the results reader has a special case. Checks that need every task of a kind at once (AIR-Bench's
data loaders are per benchmark version; an example set spans tasks) are a classmethod, `check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import mteb

    from evalharness.config import RunConfig
    from evalharness.encoders.cache import EmbeddingCache
    from evalharness.encoders.icl import ICLEncoder
    from evalharness.encoders.mteb_model import MtebModelEncoder


@dataclass
class CellContext:
    """What one task needs to run in one cell. `encoder(examples)` builds the cell's encoder over the
    run's shared backend and passage cache; `before_encode` is the runner's crash hook for tests."""

    cfg: RunConfig
    cell: Any  # evalharness.plan.Cell
    exp_dir: Path
    results: mteb.ResultCache
    instructions: Mapping[str, str]
    cache: EmbeddingCache
    encoder: Callable[[Any], ICLEncoder | MtebModelEncoder]  # one interface: backend=mteb's is the second
    before_encode: Callable[[], None]


class RunTask(Protocol):
    """One thing a cell scores, resolved once by the plan."""

    name: str

    @classmethod
    def check(cls, cfg: RunConfig, tasks: Sequence[Any], cells: Sequence[Any]) -> list[str]:
        """Every problem with these tasks (all of this kind in the run) found before a model loads."""
        ...

    def reuse_problems(self, exp_dir: Path) -> list[str]:
        """Why a result already in `exp_dir` must not be reused by this run (refused at validation)."""
        ...

    def is_done(self, cfg: RunConfig, exp_dir: Path, entry: Mapping[str, Any] | None) -> bool:
        """Whether the cell's manifest `entry` and the files beside it are this task's finished result."""
        ...

    def run(self, ctx: CellContext) -> dict[str, Any]:
        """Score the task in one cell, file its result, and return its manifest entry."""
        ...


def main_score(entry: Mapping[str, Any]) -> float | None:
    """A finished task's main score, as its manifest entry records it (None: nothing scored locally,
    e.g. an AIR-Bench test split, written as a submission)."""
    return entry.get("main_score")
