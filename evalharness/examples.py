"""Few-shot example sources: which (query, response) pairs go in front of a task's queries.

Interface used by the encoder adapter (evalharness/encoders/icl.py):
  - `Example`: one demonstration.
  - `ExampleSet.for_texts(task_name, texts, embed)`: the examples to put in front of each text.
  - `ExampleSet.used()`: the examples actually handed out, per task, for the run manifest.

Strategies (see `build_example_set`):
  - "none":  zero-shot, every text gets no examples.
  - "file":  the fixed per-task sets shipped with bge-en-icl (v1 CSVs, v2 JSON lists, AIR-Bench JSONL),
             found with `find_example_file` (which repairs the CQADupstack / case / version name mismatches
             that make FlagEmbedding's own runner silently fall back to zero-shot).
  - "train": a fixed, seeded sample from a non-evaluated split of the task (the paper's "examples are
             sourced from training datasets"), checked to be disjoint from the evaluated split.
  - "knn":   per text, the nearest examples of that training pool (an ablation; the paper uses fixed sets).

Every user-facing problem raises `ExampleError` with a message naming the problem and the fix, because
a silently missing example file turns a few-shot run into a zero-shot run without any visible sign.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evalharness.jsonl import numbered_json_lines

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


class ExampleError(ValueError):
    """A problem with few-shot examples that the user has to fix (bad file, missing file, too few
    examples, leakage). The message always names the problem and the fix."""


STRATEGIES = ("none", "file", "train", "knn")
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


# --------------------------------------------------------------------------------------------------
# Example sets: fixed and file-based
# --------------------------------------------------------------------------------------------------


class FixedExamples:
    """The same examples in front of every text of a task (the paper's setting). A task without an
    entry runs zero-shot; `used()` still lists it (empty) so the manifest shows that it did."""

    def __init__(self, mapping: Mapping[str, Sequence[Example]], strategy: str) -> None:
        self.strategy = strategy
        self._mapping = {task: tuple(examples) for task, examples in mapping.items()}
        self._used: dict[str, tuple[Example, ...]] = {}

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        examples = self._mapping.get(task_name, ())
        self._used[task_name] = examples
        return [examples] * len(texts)

    def used(self) -> dict[str, list[dict]]:
        return {task: [ex.to_dict() for ex in examples] for task, examples in self._used.items()}


def _check_shots(shots: int, allow_all: bool) -> int:
    if not isinstance(shots, int) or isinstance(shots, bool):
        raise ExampleError(f"shots must be an integer, got {shots!r}")
    lowest = -1 if allow_all else 0
    if shots < lowest:
        hint = "use -1 for all examples in the file, 0 for none" if allow_all else "use 0 or more"
        raise ExampleError(f"shots={shots} is invalid; {hint}")
    return shots


class PerTaskExamples:
    """Bookkeeping shared by the example sets that give every text of a task the same examples:
    subclasses only say which examples a task gets (`examples`, raising `ExampleError`)."""

    strategy: str
    _used: dict[str, tuple[Example, ...]]

    def examples(self, task_name: str) -> tuple[Example, ...]:
        raise NotImplementedError

    def check(self, task_names: Iterable[str] | None = None) -> list[str]:
        """One message per problem over all tasks; never raises, so a validation pass can list all."""
        problems = []
        for task_name in list(getattr(self, "tasks", {})) if task_names is None else task_names:
            try:
                self.examples(task_name)
            except ExampleError as err:
                problems.append(str(err))
        return problems

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        examples = self.examples(task_name)
        self._used[task_name] = examples
        return [examples] * len(texts)

    def used(self) -> dict[str, list[dict]]:
        return {task: [ex.to_dict() for ex in examples] for task, examples in self._used.items()}


class FileExamples(PerTaskExamples):
    """Fixed per-task examples from a folder of example files (bge-en-icl's published sets).

    Files are loaded lazily (a run usually covers a subset of the folder) and cached. The first `shots`
    examples of the file are used, in file order; shots=-1 uses all of them, shots=0 none (no file
    needed). `check()` reports every problem without raising so that a pre-flight validation can list
    all of them at once; `for_texts` raises `ExampleError` for the same problems.
    """

    def __init__(self, root: str | Path, shots: int, strategy: str = "file") -> None:
        self.root = Path(root)
        self.shots = _check_shots(shots, allow_all=True)
        self.strategy = strategy
        self._files: dict[str, tuple[Path, list[Example]]] = {}
        self._used: dict[str, tuple[Example, ...]] = {}

    def _load(self, task_name: str) -> tuple[Path, list[Example]]:
        if task_name not in self._files:
            path = find_example_file(self.root, task_name)
            self._files[task_name] = (path, load_example_file(path))
        return self._files[task_name]

    def examples(self, task_name: str) -> tuple[Example, ...]:
        """The examples for `task_name`; raises `ExampleError` if the file is missing or too short."""
        if self.shots == 0:
            return ()
        try:
            path, pool = self._load(task_name)
        except ExampleError as err:
            raise ExampleError(
                str(err) if str(err).startswith("task ") else f"task {task_name}: {err}"
            ) from err
        if not pool:
            raise ExampleError(
                f"task {task_name}: {path.name} has no examples; add examples to it or run this task "
                "with strategy 'none'"
            )
        if self.shots > len(pool):
            raise ExampleError(
                f"task {task_name}: shots={self.shots} but {path.name} has only {len(pool)} examples; "
                "lower shots or add examples"
            )
        chosen = tuple(pool if self.shots == -1 else pool[: self.shots])
        identical = [ex.source for ex in chosen if ex.query.strip() == ex.response.strip()]
        if identical:
            # The early v2 JSON files had query == response (FlagEmbedding issue #1244): useless demos.
            raise ExampleError(
                f"task {task_name}: {path.name} has examples whose query equals the response "
                f"({', '.join(identical)}); use the corrected example files"
            )
        return chosen


def sample_examples(pool: Sequence[Example], k: int, seed: int, *, cap: bool = False) -> list[Example]:
    """`k` examples drawn without replacement with `numpy.random.default_rng(seed)`, in draw order.

    Seeded so that a run's examples are reproducible from (pool, k, seed). k larger than the pool is an
    error unless `cap=True`, in which case the whole pool is used (still in seeded order)."""
    k = _check_shots(k, allow_all=False)
    if k > len(pool):
        if not cap:
            raise ExampleError(
                f"cannot sample {k} examples from a pool of {len(pool)}; lower shots or pass cap=True "
                "to use the whole pool"
            )
        k = len(pool)
    rng = np.random.default_rng(seed)
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


# --------------------------------------------------------------------------------------------------
# Example pools from mteb task data
# --------------------------------------------------------------------------------------------------

_FAMILY = {
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "Clustering": "clustering",
    "STS": "sts",
    "PairClassification": "pair",
    "Retrieval": "retrieval",
    "Reranking": "retrieval",
    "InstructionRetrieval": "retrieval",
    "InstructionReranking": "retrieval",
}


def _task_name(task: Any) -> str:
    return task.metadata.name


def _family(task: Any) -> str:
    task_type = task.metadata.type
    if task_type not in _FAMILY:
        raise ExampleError(
            f"task {_task_name(task)}: cannot take examples from the data of a {task_type} task "
            f"(supported: {', '.join(sorted(_FAMILY))}); use strategy 'file' or 'none' for it"
        )
    return _FAMILY[task_type]


def _eval_splits(task: Any) -> list[str]:
    return list(getattr(task, "eval_splits", None) or task.metadata.eval_splits)


def _subsets(task: Any) -> dict[str, Mapping[str, Any]]:
    """`task.dataset` as {subset: {split: data}}, loading it first if needed.

    mteb stores monolingual non-retrieval data as {split: Dataset} and everything else (multilingual,
    and all retrieval data in the v2 format) as {subset: {split: ...}}."""
    if not getattr(task, "data_loaded", False):
        task.load_data()
    if _family(task) == "retrieval" and hasattr(task, "convert_v1_dataset_format_to_v2"):
        task.convert_v1_dataset_format_to_v2(num_proc=None)  # no-op for v2 data; mteb does it in evaluate()
    data = task.dataset
    if not isinstance(data, Mapping) or not data:
        raise ExampleError(
            f"task {_task_name(task)}: load_data() left no data in task.dataset; check the task"
        )
    if _family(task) == "retrieval":
        # {split: RetrievalSplitData} without a subset level is accepted by mteb's evaluate() too
        if any(isinstance(v, Mapping) and "corpus" in v for v in data.values()):
            return {"default": data}
        return dict(data)
    if all(isinstance(v, Mapping) for v in data.values()):
        return dict(data)
    return {"default": data}


def _split_data(task: Any, split: str, subset: str | None) -> Any:
    subsets = _subsets(task)
    name = _task_name(task)
    if subset is None:
        preferred = [s for s in (getattr(task, "hf_subsets", None) or []) if s in subsets]
        subset = preferred[0] if preferred else next(iter(subsets))
    elif subset not in subsets:
        raise ExampleError(
            f"task {name}: no subset {subset!r} (available: {', '.join(subsets)}); pass one of those"
        )
    splits = subsets[subset]
    if split not in splits:
        hint = " (mteb loads only a retrieval task's eval_splits)" if _family(task) == "retrieval" else ""
        raise ExampleError(
            f"task {name}: no split {split!r} in subset {subset!r} (available splits: "
            f"{', '.join(map(str, splits)) or 'none'}){hint}; choose another split or use strategy 'file'"
        )
    return splits[split]


def _columns(task: Any, data: Any, wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in data.column_names]
    if missing:
        raise ExampleError(
            f"task {_task_name(task)}: data has no column(s) {', '.join(missing)} "
            f"(columns: {', '.join(data.column_names)}); set the task's column name attributes"
        )


def _str_column(task: Any, attr: str, default: str) -> str:
    col = getattr(task, attr, default)
    if not isinstance(col, str):
        raise ExampleError(
            f"task {_task_name(task)}: {attr}={col!r} is not a single text column; "
            "only text tasks can provide examples"
        )
    return col


def _label_text(value: Any, feature: Any) -> str:
    """Label value -> text: ClassLabel ints become their names (the examples' responses are label
    names such as 'exchange_rate'), lists (multi-label) are joined."""
    if isinstance(value, list | tuple):
        inner = getattr(feature, "feature", None)
        return ", ".join(_label_text(v, inner) for v in value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and hasattr(feature, "int2str"):
        return str(feature.int2str(int(value)))
    return str(value)


def _good_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _classification_pool(task: Any, data: Any, split: str) -> list[Example]:
    text_col = _str_column(task, "input_column_name", "text")
    label_col = _str_column(task, "label_column_name", "label")
    _columns(task, data, [text_col, label_col])
    feature = data.features.get(label_col)
    out = []
    for i, (text, label) in enumerate(zip(data[text_col], data[label_col], strict=True)):
        if _good_text(text) and label is not None:
            out.append(Example(text, _label_text(label, feature), source=f"{split}:{i}"))
    return out


def _clustering_pool(task: Any, data: Any, split: str) -> list[Example]:
    """v2 ("fast") clustering stores one text per row; legacy clustering one cluster set (lists) per row.
    A hierarchical v2 label (a list per text) contributes its most specific (last) level."""
    text_col = _str_column(task, "input_column_name", "sentences")
    label_col = _str_column(task, "label_column_name", "labels")
    _columns(task, data, [text_col, label_col])
    feature = data.features.get(label_col)
    inner = getattr(feature, "feature", None)
    out = []
    for i, (text, label) in enumerate(zip(data[text_col], data[label_col], strict=True)):
        if isinstance(text, list):  # legacy: lists of texts and labels
            for j, (t, lab) in enumerate(zip(text, label, strict=True)):
                if _good_text(t) and lab is not None:
                    out.append(Example(t, _label_text(lab, inner), source=f"{split}:{i}.{j}"))
        elif _good_text(text) and label is not None and label != []:
            if isinstance(label, list):
                out.append(Example(text, _label_text(label[-1], inner), source=f"{split}:{i}"))
            else:
                out.append(Example(text, _label_text(label, feature), source=f"{split}:{i}"))
    return out


def _pair_columns(task: Any, family: str) -> tuple[str, str]:
    if family == "sts":
        cols = tuple(getattr(task, "column_names", ("sentence1", "sentence2")))
        if len(cols) != 2 or not all(isinstance(c, str) for c in cols):
            raise ExampleError(f"task {_task_name(task)}: column_names={cols!r} is not two text columns")
        return cols[0], cols[1]
    return (
        _str_column(task, "input1_column_name", "sentence1"),
        _str_column(task, "input2_column_name", "sentence2"),
    )


def _pair_pool(task: Any, data: Any, split: str, family: str) -> list[Example]:
    """STS: every (sentence1, sentence2) pair. PairClassification: positive pairs (label 1) only. Old
    pair-classification datasets keep the whole split in one row of lists; those are flattened."""
    c1, c2 = _pair_columns(task, family)
    label_col = _str_column(task, "label_column_name", "labels") if family == "pair" else None
    _columns(task, data, [c1, c2] + ([label_col] if label_col else []))
    n = len(data)
    firsts, seconds = list(data[c1]), list(data[c2])
    labels = list(data[label_col]) if label_col else [1] * n
    rows: Iterator[tuple[str, Any, Any, Any]]
    if n == 1 and isinstance(firsts[0], list):
        rows = (
            (f"{split}:0.{j}", a, b, lab)
            for j, (a, b, lab) in enumerate(
                zip(firsts[0], seconds[0], labels[0] if label_col else [1] * len(firsts[0]), strict=True)
            )
        )
    else:
        rows = (
            (f"{split}:{i}", a, b, lab)
            for i, (a, b, lab) in enumerate(zip(firsts, seconds, labels, strict=True))
        )
    return [
        Example(a, b, source=src) for src, a, b, lab in rows if _good_text(a) and _good_text(b) and lab == 1
    ]


def _retrieval_pool(task: Any, data: Mapping[str, Any], split: str) -> list[Example]:
    """Each query with a positive qrel -> (title + " " + text).strip() of its highest-scored relevant
    document (ties: smallest doc id), the same corpus text mteb hands the model."""
    best: dict[str, str] = {}
    for qid, docs in (data.get("relevant_docs") or {}).items():
        positives = [(-float(score), str(doc)) for doc, score in docs.items() if score > 0]
        if positives:
            best[str(qid)] = min(positives)[1]
    wanted = set(best.values())
    corpus = data["corpus"]
    rows = [i for i, doc_id in enumerate(corpus["id"]) if str(doc_id) in wanted]
    doc_text = {}
    for row in corpus.select(rows):
        text = f"{row.get('title') or ''} {row.get('text') or ''}".strip()
        if text:
            doc_text[str(row["id"])] = text
    out = []
    for row in data["queries"]:
        qid, text = str(row["id"]), row.get("text")
        if qid in best and best[qid] in doc_text and _good_text(text):
            out.append(Example(text, doc_text[best[qid]], source=f"{split}:{qid}"))
    return out


def task_example_pool(task: Any, split: str, subset: str | None = None) -> list[Example]:
    """All (query, response) pairs one split of an mteb task can provide, in dataset order.

    Classification: text -> label name; Clustering: text -> cluster label; STS: sentence1 -> sentence2;
    PairClassification: positive pairs only; Retrieval / Reranking: query -> its top relevant document.
    Multilingual tasks use `subset`, else the task's first hf_subset. Sources are "<split>:<id or row>".
    """
    family = _family(task)
    data = _split_data(task, split, subset)
    if family == "classification":
        return _classification_pool(task, data, split)
    if family == "clustering":
        return _clustering_pool(task, data, split)
    if family in ("sts", "pair"):
        return _pair_pool(task, data, split, family)
    return _retrieval_pool(task, data, split)


def _split_texts(task: Any, split: str) -> set[str]:
    """Stripped texts of `split` over all subsets that a few-shot example must not repeat: the queries
    of retrieval tasks (train and test share the corpus in BEIR, so documents may repeat), else every
    text the task encodes."""
    family = _family(task)
    texts: set[str] = set()

    def add(values: Iterable[Any]) -> None:
        for v in values:
            if isinstance(v, list):
                add(v)
            elif isinstance(v, str):
                texts.add(v.strip())

    for splits in _subsets(task).values():
        if split not in splits:
            continue
        data = splits[split]
        if family == "retrieval":
            add(data["queries"]["text"])
            continue
        if family == "classification":
            cols = [_str_column(task, "input_column_name", "text")]
        elif family == "clustering":
            cols = [_str_column(task, "input_column_name", "sentences")]
        else:
            cols = list(_pair_columns(task, family))
        for col in cols:
            if col in data.column_names:
                add(data[col])
    return texts


def check_disjoint(
    examples: Iterable[Example], eval_texts: Iterable[str], task_name: str, split: str
) -> None:
    """Raise if an example's query or response is (after strip) a text of the evaluated split: that
    would show the model the answer, or a near-copy of the test item, in its own prompt."""
    seen = {t.strip() for t in eval_texts}
    clashes = []
    for ex in examples:
        for side, text in (("query", ex.query), ("response", ex.response)):
            if text.strip() in seen:
                clashes.append(f"{ex.source or '?'} ({side} {text.strip()[:60]!r})")
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise ExampleError(
            f"task {task_name}: example(s) {'; '.join(clashes[:3])}{more} also appear in the evaluated "
            f"split {split!r}; examples must come from a split other than the evaluated one "
            "(pick another split or seed, or use strategy 'file')"
        )


# --------------------------------------------------------------------------------------------------
# Example sets from task data: fixed seeded sample, per-text nearest neighbours
# --------------------------------------------------------------------------------------------------


def _tasks_by_name(tasks: Mapping[str, Any] | Iterable[Any]) -> dict[str, Any]:
    if isinstance(tasks, Mapping):
        return dict(tasks)
    return {_task_name(t): t for t in tasks}


def _refuse_eval_split(tasks: Mapping[str, Any], split: str) -> None:
    problems = [
        f"task {name}: split {split!r} is one of its eval_splits ({', '.join(_eval_splits(task))})"
        for name, task in tasks.items()
        if split in _eval_splits(task)
    ]
    if problems:
        raise ExampleError(
            "; ".join(problems)
            + "; examples must come from a split other than the evaluated one: choose another split "
            "(e.g. 'train' or 'validation') or use strategy 'file'"
        )


def _unknown_task(task_name: str, known: Iterable[str], cls: str) -> ExampleError:
    return ExampleError(
        f"task {task_name} was not given to {cls} (known: {', '.join(sorted(known)) or 'none'}); "
        "add it to the tasks the example set is built from"
    )


class TrainExamples(PerTaskExamples):
    """A fixed, seeded sample of `shots` examples per task from a non-evaluated split (default "train"),
    checked to share no text with any evaluated split. Built lazily per task, then fixed."""

    def __init__(
        self,
        tasks: Mapping[str, Any] | Iterable[Any],
        shots: int,
        seed: int,
        split: str = "train",
        cap: bool = False,
        strategy: str = "train",
    ) -> None:
        self.tasks = _tasks_by_name(tasks)
        self.shots = _check_shots(shots, allow_all=False)
        self.seed, self.split, self.cap, self.strategy = seed, split, cap, strategy
        _refuse_eval_split(self.tasks, split)
        self._chosen: dict[str, tuple[Example, ...]] = {}
        self._used: dict[str, tuple[Example, ...]] = {}

    def examples(self, task_name: str) -> tuple[Example, ...]:
        if task_name not in self.tasks:
            raise _unknown_task(task_name, self.tasks, "TrainExamples")
        if task_name not in self._chosen:
            task = self.tasks[task_name]
            if self.shots == 0:
                chosen: tuple[Example, ...] = ()
            else:
                pool = task_example_pool(task, self.split)
                try:
                    chosen = tuple(sample_examples(pool, self.shots, self.seed, cap=self.cap))
                except ExampleError as err:
                    raise ExampleError(f"task {task_name}, split {self.split!r}: {err}") from err
                for eval_split in _eval_splits(task):
                    check_disjoint(chosen, _split_texts(task, eval_split), task_name, eval_split)
            self._chosen[task_name] = chosen
        return self._chosen[task_name]


class KnnExamples:
    """Per text, the `shots` pool examples whose query is most cosine-similar to the text (an ablation;
    bge-en-icl itself uses one fixed set per task).

    Pool embeddings are computed once per task with the `embed` passed to `for_texts`. An example whose
    query or response equals the text is skipped (it would hand the model the answer). Ties go to the
    earlier pool entry, so the choice is deterministic. A text that equals pool entries can get fewer
    than `shots` examples when the pool has no others.
    """

    chunk_size = 1024  # texts per similarity block; bounds memory at chunk_size x pool floats

    def __init__(self, pools: Mapping[str, Sequence[Example]], shots: int, strategy: str = "knn") -> None:
        self.pools = pools
        self.shots = _check_shots(shots, allow_all=False)
        self.strategy = strategy
        self._cache: dict[str, tuple[tuple[Example, ...], np.ndarray, dict[str, list[int]]]] = {}
        self._counts: dict[str, Counter[int]] = {}

    def _pool(
        self, task_name: str, embed: Embed
    ) -> tuple[tuple[Example, ...], np.ndarray, dict[str, list[int]]]:
        if task_name not in self._cache:
            if task_name not in self.pools:
                raise _unknown_task(task_name, self.pools, "KnnExamples")
            pool = tuple(self.pools[task_name])
            if len(pool) < self.shots:
                raise ExampleError(
                    f"task {task_name}: shots={self.shots} but the example pool has only {len(pool)} "
                    "examples; lower shots or use a larger split"
                )
            vectors = _embed(embed, [ex.query for ex in pool], task_name)
            same: dict[str, list[int]] = {}
            for i, ex in enumerate(pool):
                for text in {ex.query.strip(), ex.response.strip()}:
                    same.setdefault(text, []).append(i)
            self._cache[task_name] = (pool, vectors, same)
        return self._cache[task_name]

    def for_texts(
        self, task_name: str, texts: Sequence[str], embed: Embed | None = None
    ) -> list[tuple[Example, ...]]:
        if embed is None:
            raise ExampleError(
                f"task {task_name}: strategy 'knn' needs the embed callable to compare texts with the "
                "example pool; pass embed to for_texts"
            )
        texts = list(texts)
        counts = self._counts.setdefault(task_name, Counter())
        if self.shots == 0 or not texts:
            return [()] * len(texts)
        pool, pool_vecs, same = self._pool(task_name, embed)
        text_vecs = _embed(embed, list(texts), task_name)
        out: list[tuple[Example, ...]] = []
        for start in range(0, len(texts), self.chunk_size):
            sims = text_vecs[start : start + self.chunk_size] @ pool_vecs.T
            for row, text in enumerate(texts[start : start + self.chunk_size]):
                picked = _top_k(sims[row], self.shots, same.get(text.strip(), ()))
                counts.update(picked)
                out.append(tuple(pool[i] for i in picked))
        return out

    def used(self) -> dict[str, list[dict]]:
        result: dict[str, list[dict]] = {}
        for task, counts in self._counts.items():
            pool = self._cache[task][0] if task in self._cache else ()
            result[task] = [{**pool[i].to_dict(), "count": counts[i]} for i in sorted(counts)]
        return result


def _embed(embed: Embed, texts: list[str], task_name: str) -> np.ndarray:
    """Embed and re-normalise (cheap, and guards against an embed that forgets to)."""
    vecs = np.asarray(embed(texts), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise ExampleError(
            f"task {task_name}: embed returned shape {vecs.shape} for {len(texts)} texts; it must return "
            "one vector per text"
        )
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)


def _top_k(sims: np.ndarray, k: int, excluded: Iterable[int]) -> list[int]:
    """Indices of the k largest similarities, ties to the lower index, `excluded` never chosen."""
    sims = sims.astype(np.float64, copy=True)
    excluded = list(excluded)
    sims[excluded] = -np.inf
    k = min(k, len(sims) - len(set(excluded)))
    if k <= 0:
        return []
    kth = np.partition(sims, len(sims) - k)[len(sims) - k]
    cand = np.flatnonzero(sims >= kth)  # every entry tied with the k-th best, so ties are settled below
    order = cand[np.lexsort((cand, -sims[cand]))]
    return [int(i) for i in order[:k] if np.isfinite(sims[i])]


class _TrainPools(Mapping[str, Sequence[Example]]):
    """Lazily built knn pools: a task's `split` examples minus any that repeat an evaluated text (a
    pool is large, so overlapping entries are dropped rather than refused)."""

    def __init__(self, tasks: Mapping[str, Any], split: str) -> None:
        self.tasks, self.split = tasks, split
        self._pools: dict[str, list[Example]] = {}

    def __getitem__(self, task_name: str) -> list[Example]:
        if task_name not in self._pools:
            task = self.tasks[task_name]
            evaluated: set[str] = set()
            for eval_split in _eval_splits(task):
                evaluated |= _split_texts(task, eval_split)
            self._pools[task_name] = [
                ex
                for ex in task_example_pool(task, self.split)
                if ex.query.strip() not in evaluated and ex.response.strip() not in evaluated
            ]
        return self._pools[task_name]

    def __contains__(self, task_name: object) -> bool:
        return task_name in self.tasks  # without building the pool, as Mapping's default would

    def __iter__(self) -> Iterator[str]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


def build_example_set(
    strategy: str,
    *,
    shots: int,
    seed: int = 0,
    root: str | Path | None = None,
    tasks: Mapping[str, Any] | Iterable[Any] | None = None,
    split: str = "train",
    cap: bool = False,
) -> ExampleSet:
    """The example set for a run configuration.

    "none": zero-shot; "file": `FileExamples(root, shots)`; "train": `TrainExamples(tasks, shots, seed,
    split, cap)`; "knn": `KnnExamples` over the same per-task `split` pools (overlaps with the
    evaluated split dropped)."""
    if strategy == "none":
        return FixedExamples({}, "none")
    if strategy == "file":
        if root is None:
            raise ExampleError("strategy 'file' needs root: the folder holding the <task>.json/.csv files")
        return FileExamples(root, shots)
    if strategy in ("train", "knn"):
        if tasks is None:
            raise ExampleError(f"strategy {strategy!r} needs tasks: the mteb tasks to take examples from")
        by_name = _tasks_by_name(tasks)
        if strategy == "train":
            return TrainExamples(by_name, shots, seed, split=split, cap=cap)
        _refuse_eval_split(by_name, split)
        return KnnExamples(_TrainPools(by_name, split), shots)
    raise ExampleError(f"unknown example strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")
