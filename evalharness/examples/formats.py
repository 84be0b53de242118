"""Reading few-shot example files in the reference formats, and finding a task's file in a folder.

These are the fixed per-task sets shipped with bge-en-icl (v1 CSVs, v2 JSON lists, AIR-Bench JSONL) that
the "file" strategy uses. `find_example_file` repairs the CQADupstack / case / version name mismatches
that make FlagEmbedding's own runner silently fall back to zero-shot. Texts are read verbatim, and every
problem raises `ExampleError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalharness.examples.base import Example, ExampleError
from evalharness.jsonl import numbered_json_lines

EXAMPLE_SUFFIXES = (".json", ".jsonl", ".csv")

# mteb's CQADupstack sub-tasks share one example file: v2 `CQADupstackRetrieval.json`, v1 `CQADupstack.csv`
# (v1's `CQADupstackRetrieval.csv` is header-only). FlagEmbedding looks up the sub-task name and misses.
CQADUPSTACK_SUBTASKS = tuple(
    f"CQADupstack{forum}Retrieval"
    for forum in (
        "Android",
        "English",
        "Gaming",
        "Gis",
        "Mathematica",
        "Physics",
        "Programmers",
        "Stats",
        "Tex",
        "Unix",
        "Webmasters",
        "Wordpress",
    )
)
_CQADUPSTACK_NAMES = frozenset((*CQADUPSTACK_SUBTASKS, "CQADupstackRetrieval"))
_CQADUPSTACK_FILES = ("CQADupstackRetrieval", "CQADupstack")
_VERSION_SUFFIX = re.compile(r"\.v\d+$")


# --------------------------------------------------------------------------------------------------
# Example files
# --------------------------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    """UTF-8 text of `path` (a BOM is dropped so it cannot end up in the first header name)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ExampleError(f"cannot read example file {path}: {err}; check the path") from err
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ExampleError(
            f"{path.name}:{line}: not valid UTF-8 (byte 0x{data[err.start]:02x}); re-save {path} as UTF-8"
        ) from err


def _text_field(obj: Mapping[str, Any], key: str, where: str, fix: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise ExampleError(f"{where}: {key!r} must be a string, got {type(value).__name__}; {fix}")
    if not value.strip():
        raise ExampleError(f"{where}: {key!r} is empty; {fix}")
    return value


def _example_from_object(obj: Any, where: str, source: str) -> Example:
    """One JSON / JSONL record: {query, response | pos, [instruct]} (AIR-Bench files use `pos`)."""
    fix = 'each record must look like {"query": "...", "response": "..."} (or "pos" instead of "response")'
    if not isinstance(obj, dict):
        raise ExampleError(f"{where}: expected a JSON object, got {type(obj).__name__}; {fix}")
    if "query" not in obj:
        raise ExampleError(f"{where}: missing key 'query'; {fix}")
    if "response" in obj and "pos" in obj and obj["response"] != obj["pos"]:
        raise ExampleError(f"{where}: has both 'response' and 'pos' with different values; keep one")
    resp_key = "response" if "response" in obj else "pos" if "pos" in obj else None
    if resp_key is None:
        raise ExampleError(f"{where}: missing key 'response' (or 'pos'); {fix}")
    instruction = None
    for key in ("instruct", "instruction"):  # bge-en-icl uses `instruct`; accept the obvious spelling too
        if obj.get(key) is not None:
            if not isinstance(obj[key], str):
                raise ExampleError(
                    f"{where}: {key!r} must be a string, got {type(obj[key]).__name__}; fix or drop it"
                )
            if instruction is not None and instruction != obj[key]:
                raise ExampleError(f"{where}: 'instruct' and 'instruction' differ; keep one")
            instruction = obj[key]
    return Example(
        query=_text_field(obj, "query", where, fix),
        response=_text_field(obj, resp_key, where, fix),
        instruction=instruction,
        source=source,
    )


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _load_csv(path: Path, text: str) -> list[Example]:
    """v1 files: header of two column names (first = query, second = response), then one pair per row.
    Header names vary by task type and some carry stray whitespace ('pos ', 'label\\t'), so only the
    column count is checked."""
    name = path.name
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # long passages; the default (128 KiB) would reject legitimate rows
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        examples: list[Example] = []
        header: list[str] | None = None
        end_of_previous = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise ExampleError(
                    f"{name}:{end_of_previous + 1}: malformed CSV ({err}); check the quoting on that line"
                ) from err
            line = end_of_previous + 1
            end_of_previous = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if header is None:
                header = [col.strip() for col in row]
                if len(header) != 2 or not all(header) or any(re.search(r"\s", col) for col in header):
                    raise ExampleError(
                        f"{name}:{line}: expected a header of exactly two column names "
                        f"(e.g. 'query,response'), got {row!r}; add or fix the header line"
                    )
                continue
            if len(row) != 2:
                raise ExampleError(
                    f"{name}:{line}: expected 2 columns ({header[0]},{header[1]}), got {len(row)}; "
                    "quote fields that contain commas"
                )
            fix = "fill in both columns or delete the row"
            for col, value in zip(header, row, strict=True):
                if not value.strip():
                    raise ExampleError(f"{name}:{line}: column {col!r} is empty; {fix}")
            examples.append(Example(query=row[0], response=row[1], source=f"{name}:{line}"))
    finally:
        csv.field_size_limit(old_limit)
    if header is None:
        raise ExampleError(f"{name}: file is empty; add a header line such as 'query,response' and examples")
    return examples


def _load_json_list(path: Path, text: str) -> list[Example]:
    """v2 files: a JSON list of {query, response}. Parsed element by element so that errors can name the
    line of the offending element (v2 files are often a single line, so the source uses the index)."""
    name = path.name
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")
    fix = 'the file must be a JSON list: [{"query": "...", "response": "..."}, ...]'

    def syntax_error(err: json.JSONDecodeError) -> ExampleError:
        return ExampleError(f"{name}:{err.lineno}: invalid JSON ({err.msg}); fix the JSON syntax there")

    pos = ws.match(text, 0).end()
    if pos == len(text):
        raise ExampleError(f"{name}: file is empty; {fix}")
    if text[pos] != "[":
        try:
            value, _ = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise syntax_error(err) from err
        raise ExampleError(
            f"{name}:{_line_of(text, pos)}: top level is {type(value).__name__}, not a list; {fix}"
        )
    pos = ws.match(text, pos + 1).end()
    examples: list[Example] = []
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise syntax_error(err) from err
            index = len(examples)
            where = f"{name}:{_line_of(text, pos)} (element {index})"
            examples.append(_example_from_object(obj, where, source=f"{name}:{index}"))
            pos = ws.match(text, end).end()
            if pos < len(text) and text[pos] == ",":
                pos = ws.match(text, pos + 1).end()
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise ExampleError(
                f"{name}:{_line_of(text, pos)}: invalid JSON (expected ',' or ']'); fix the JSON syntax there"
            )
    if ws.match(text, pos).end() != len(text):
        raise ExampleError(
            f"{name}:{_line_of(text, pos)}: extra data after the closing ']'; remove it ({fix})"
        )
    return examples


def _load_jsonl(path: Path, text: str) -> list[Example]:
    """AIR-Bench files: one {query, pos} (or {query, response}) object per line."""
    name = path.name
    lines = numbered_json_lines(
        text.splitlines(),
        lambda n, err: ExampleError(
            f"{name}:{n}: invalid JSON ({err.msg}); each line must be one JSON object"
        ),
    )
    return [_example_from_object(obj, f"{name}:{n}", source=f"{name}:{n}") for n, obj in lines]


def load_example_file(path: str | Path) -> list[Example]:
    """Read one example file into `Example`s, texts verbatim (no stripping, no unescaping: literal
    backslash-n sequences in the reference files are what the published runs saw).

    Formats, chosen by suffix:
      - `.csv`: header of two column names, then (query, response) rows; a header-only file gives [].
      - `.json`: a list of {"query", "response", ["instruct"]} objects.
      - `.jsonl`: one {"query", "pos" | "response", ["instruct"]} object per line.
    `Example.source` is "<filename>:<line>" (CSV, JSONL) or "<filename>:<index>" (JSON list).
    """
    path = Path(path)
    if path.suffix not in EXAMPLE_SUFFIXES:
        raise ExampleError(
            f"unsupported example file {path.name!r}; use one of {', '.join(EXAMPLE_SUFFIXES)}"
        )
    if not path.is_file():
        raise ExampleError(f"example file {path} does not exist; check the path")
    text = _decode(path)
    if path.suffix == ".csv":
        return _load_csv(path, text)
    if path.suffix == ".json":
        return _load_json_list(path, text)
    return _load_jsonl(path, text)


def _candidate_names(task_name: str) -> list[str]:
    """File stems to try for a task, most specific first."""
    names = [task_name]
    if task_name in _CQADUPSTACK_NAMES:
        names += [n for n in _CQADUPSTACK_FILES if n not in names]
    stripped = _VERSION_SUFFIX.sub("", task_name)
    if stripped not in names:
        names.append(stripped)
    return names


def find_example_file(root: str | Path, task_name: str) -> Path:
    """The example file for `task_name` in folder `root`.

    Tries `<name>.json`, `.jsonl`, `.csv` for the task name, then for CQADupstack (any sub-task)
    `CQADupstackRetrieval` and `CQADupstack`, then the name without a `.vN` suffix; each name exactly,
    then case-folded (AIR-Bench example files write `100k`, the datasets `100K`). When several files
    match, the first non-empty one wins, so the header-only v1 `CQADupstackRetrieval.csv` never shadows
    `CQADupstack.csv`.
    """
    root = Path(root)
    if not root.is_dir():
        raise ExampleError(
            f"example folder {root} does not exist; pass the folder that holds <task>.json files"
        )
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in EXAMPLE_SUFFIXES)
    by_folded: dict[str, list[Path]] = {}
    for p in files:
        by_folded.setdefault(p.name.casefold(), []).append(p)

    tried: list[str] = []
    found: list[Path] = []
    for stem in _candidate_names(task_name):
        for suffix in EXAMPLE_SUFFIXES:
            fname = stem + suffix
            tried.append(fname)
            exact = root / fname
            matches = [exact] if exact.is_file() else by_folded.get(fname.casefold(), [])
            found.extend(m for m in matches if m not in found)
    if len(found) == 1:
        return found[0]
    for candidate in found:
        if load_example_file(candidate):
            return candidate
    if found:
        return found[0]

    available = [p.name for p in files]
    stems = {p.stem: p.name for p in files}
    close = [stems[s] for s in difflib.get_close_matches(task_name, list(stems), n=5, cutoff=0.6)]
    msg = f"no example file for task {task_name!r} in {root}: tried {', '.join(tried)}"
    if close:
        msg += f"; close matches: {', '.join(close)}"
    shown = ", ".join(available[:30]) + (f", ... ({len(available)} in all)" if len(available) > 30 else "")
    msg += f"; available: {shown or 'none'}"
    msg += (
        f". Add {task_name}.json (or rename the right file to that name), "
        "or run this task with strategy 'none'"
    )
    raise ExampleError(msg)
