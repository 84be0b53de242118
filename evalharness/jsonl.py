"""Numbered JSON lines: the one loop behind every JSONL reader here (example files, training rows,
snapshot id checks, AIR-Bench files), so each only says what a bad line means for its own file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def numbered_json_lines(
    lines: Iterable[str], bad_line: Callable[[int, json.JSONDecodeError], Exception]
) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed object) for every non-blank line; a line that is not JSON raises
    `bad_line(line_no, err)`, chained to the decode error."""
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise bad_line(line_no, err) from err
        yield line_no, obj
