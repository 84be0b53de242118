"""One base for every failure we anticipate, carrying its problems as data.

A problem is what is wrong and how to fix it; where it concerns one config key it also names the key,
the value given and the values allowed, so that a program (the CLI, a notebook, a sweep driver) can act
on it without parsing the message. `EvalharnessError` holds one or more problems; its text is the one
message, or one "- " line per problem, as the CLI has always printed them. The CLI catches this base
(plus the few library errors it anticipates) and prints `error:` lines with exit status 2, no
traceback. Subclasses keep ValueError or RuntimeError as a second base, so callers that caught those
still do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem: `message` says what is wrong and the fix; `key`, `value`, `choices` name the config
    key, the value given and the values allowed where it is about one key."""

    message: str
    key: str | None = None
    value: Any = None
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return self.message


def choice_problem(key: str, value: Any, choices: Sequence[Any]) -> Problem:
    """`key=value` is not one of `choices`: the message every closed choice gives."""
    return Problem(f"{key}={value!r}; use one of {', '.join(map(str, choices))}", key, value, tuple(choices))


class EvalharnessError(Exception):
    """An anticipated failure: one problem or several, each a `Problem` (or a plain message). A
    `listed` error (validation: every problem found at once) prints its problems as "- " lines even
    when there is one."""

    listed: bool = False

    def __init__(
        self, problems: str | Problem | Iterable[str | Problem], *, listed: bool | None = None
    ) -> None:
        if isinstance(problems, str | Problem):
            problems = [problems]
        unique = dict.fromkeys(p if isinstance(p, Problem) else Problem(str(p)) for p in problems)
        self.problems: tuple[Problem, ...] = tuple(unique)
        if listed is not None:
            self.listed = listed
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1 and not self.listed:
            return self.problems[0].message
        return "\n".join(f"- {p.message}" for p in self.problems)


class ChoiceError(EvalharnessError, ValueError):
    """A closed choice out of range (`model.dtype=float17`), raised where the config is built."""

    def __init__(self, key: str, value: Any, choices: Sequence[Any]) -> None:
        super().__init__(choice_problem(key, value, choices))
