"""Training rows: FlagEmbedding's JSONL format, or rows built from a task's train split.

A row is `{query, pos: [..], neg: [..], prompt, type[, category]}`; one file is one dataset, and every
batch is drawn from one dataset (the paper's "same dataset throughout one training step"). Every
problem is found before the model loads: the file and line of a bad row, an unknown type, rows that
repeat an evaluated split's texts, a group size the negatives cannot fill.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness.jsonl import numbered_json_lines
from evalharness.train.config import ROW_TYPES, TrainDataConfig

logger = logging.getLogger(__name__)


class TrainDataError(ValueError):
    """A training input that cannot work; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class TrainRow:
    query: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    prompt: str
    type: str  # one of ROW_TYPES' values
    category: str | None = None  # clustering: the label an example's response shows
    source: str = ""  # file:line or task:split:id


@dataclass
class Dataset:
    """The rows of one source; batches never mix datasets."""

    name: str
    rows: list[TrainRow] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.rows[0].type if self.rows else "retrieval"


def _texts(value: Any, key: str, where: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainDataError(f"{where}: {key!r} must be a list of strings")
    texts = tuple(v for v in value if v.strip())
    if required and not texts:
        raise TrainDataError(f"{where}: {key!r} has no non-empty text; every row needs a positive passage")
    return texts


def parse_row(obj: Any, where: str, default_prompt: str | None = None) -> TrainRow:
    if not isinstance(obj, dict):
        raise TrainDataError(f"{where}: a row must be a JSON object with query, pos, neg, prompt, type")
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise TrainDataError(f"{where}: 'query' is missing or empty; every row needs a query text")
    kind = obj.get("type", "retrieval")
    if kind not in ROW_TYPES:
        raise TrainDataError(f"{where}: unknown type {kind!r}; use one of {', '.join(sorted(ROW_TYPES))}")
    prompt = obj.get("prompt", default_prompt)
    if not isinstance(prompt, str) or not prompt.strip():
        raise TrainDataError(f"{where}: 'prompt' (the task instruction) is missing or empty")
    return TrainRow(
        query=query,
        pos=_texts(obj.get("pos"), "pos", where, required=True),
        neg=_texts(obj.get("neg"), "neg", where, required=False),
        prompt=prompt,
        type=ROW_TYPES[kind],
        category=obj.get("category"),
        source=where,
    )


def read_jsonl(path: str | Path) -> Dataset:
    """One FlagEmbedding training file."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        lines = numbered_json_lines(
            f,
            lambda n, err: TrainDataError(
                f"{path}:{n}: not a JSON object ({err.msg}); training files are JSONL, one row per line"
            ),
        )
        rows = [parse_row(obj, f"{path}:{n}") for n, obj in lines]
    if not rows:
        raise TrainDataError(f"{path}: no rows; a training file holds one JSON row per line")
    kinds = sorted({r.type for r in rows})
    if len(kinds) > 1:
        raise TrainDataError(
            f"{path}: rows of several types ({', '.join(kinds)}); one file is one dataset of one type"
        )
    return Dataset(path.stem, rows)


def _files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(path.rglob("*.jsonl"))
        if not found:
            raise TrainDataError(f"data.files: {path} holds no *.jsonl training files")
        return found
    if not path.is_file():
        raise TrainDataError(f"data.files: {path} does not exist")
    return [path]


_TYPE_OF_TASK = {"Retrieval": "retrieval", "Reranking": "retrieval", "STS": "sts",
                 "PairClassification": "sts", "Classification": "classification",
                 "Clustering": "clustering"}  # fmt: skip


def rows_from_task(task: Any, split: str, instruction: str) -> Dataset:
    """A task's `split` as rows: the same (query, response) pairs the `train` example strategy draws,
    the response as the positive (for classification and clustering, the label, as in the reference's
    symmetric rows). No negatives: mine them, or train with in-batch negatives (group_size=1)."""
    from evalharness.examples import task_example_pool

    kind = _TYPE_OF_TASK.get(task.metadata.type, "retrieval")
    rows = [
        TrainRow(
            query=ex.query,
            pos=(ex.response,),
            neg=(),
            prompt=instruction,
            type=kind,
            category=ex.response if kind == "clustering" else None,
            source=f"{task.metadata.name}:{ex.source}",
        )
        for ex in task_example_pool(task, split)
    ]
    if not rows:
        raise TrainDataError(f"task {task.metadata.name}: split {split!r} gives no (query, positive) pairs")
    return Dataset(task.metadata.name, rows)


def check_disjoint(datasets: Sequence[Dataset], tasks: Iterable[Any]) -> list[str]:
    """Rows whose query or positive is a text of an evaluated split: training on them would make the
    evaluation in-domain in the worst way (mteb #1372: bge-en-icl's data holds ArguAna's test set)."""
    from evalharness.examples import _split_texts

    problems = []
    for task in tasks:
        for split in task.eval_splits:
            seen = _split_texts(task, split)
            for ds in datasets:
                clashes = [
                    r.source
                    for r in ds.rows
                    if r.query.strip() in seen or (r.pos and r.pos[0].strip() in seen)
                ]
                if clashes:
                    problems.append(
                        f"{len(clashes)} training row(s) of {ds.name} (e.g. {clashes[0]}) repeat texts of "
                        f"{task.metadata.name}'s evaluated split {split!r}; train on another split or drop them"
                    )
    return problems


def check_group_size(datasets: Sequence[Dataset], group_size: int) -> list[str]:
    """FlagEmbedding samples `group_size - 1` negatives per query, repeating a row's negatives when it
    has fewer; a row with none cannot fill a group, so such a config is refused (mine negatives, or
    group_size=1 for in-batch negatives only)."""
    if group_size <= 1:
        return []
    out = []
    for ds in datasets:
        empty = [r.source for r in ds.rows if not r.neg]
        if empty:
            out.append(
                f"{ds.name}: {len(empty)} row(s) without negatives (e.g. {empty[0]}) cannot fill "
                f"group_size={group_size} (1 positive + {group_size - 1} negatives); add 'neg' passages "
                "(hard-negative mining) or set group_size=1 to train with in-batch negatives only"
            )
    return out


def negatives_for(row: TrainRow, n: int, rng: random.Random) -> list[str]:
    """`n` negatives as the reference draws them: a sample without replacement when there are enough,
    else the row's negatives repeated and sampled."""
    if n <= 0:
        return []
    if len(row.neg) >= n:
        return rng.sample(list(row.neg), n)
    pool = list(row.neg) * (n // len(row.neg) + 1)
    return rng.sample(pool, n)


def load_datasets(cfg: TrainDataConfig) -> tuple[list[Dataset], list[Any]]:
    """Every dataset of the config, and the task objects whose evaluated splits rows must avoid."""
    import mteb

    from evalharness.instructions import load_instructions, resolve_instruction
    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    datasets = [read_jsonl(f) for spec in cfg.files for f in _files(spec)]
    table = load_instructions()
    tasks = {name: mteb.get_task(name) for name in dict.fromkeys([*cfg.tasks, *cfg.check_against])}
    for name in cfg.tasks:
        task = tasks[name]
        if cfg.split in task.eval_splits:
            raise TrainDataError(
                f"data.split={cfg.split!r} is an evaluated split of {name} ({', '.join(task.eval_splits)}); "
                "train on its train split"
            )
        instruction = resolve_instruction(task.metadata, table)[0]
        datasets.append(rows_from_task(task, cfg.split, instruction))
    if cfg.max_rows:
        for ds in datasets:
            ds.rows = ds.rows[: cfg.max_rows]
    guard = [tasks[n] for n in (cfg.check_against or cfg.tasks)]  # the same instances: data load once
    if not datasets:
        raise TrainDataError("no training data: set data.files (JSONL) and/or data.tasks")
    return datasets, guard


def batches(datasets: Sequence[Dataset], batch_size: int, seed: int) -> list[list[TrainRow]]:
    """One epoch of same-dataset batches in a seeded order (every dataset shuffled and cut into full
    batches, the batches interleaved); a dataset smaller than one batch gives one smaller batch. The
    Trainer repeats them for `epochs` (in a new order each epoch)."""
    rng = random.Random(seed)
    out: list[list[TrainRow]] = []
    for ds in datasets:
        rows = list(ds.rows)
        rng.shuffle(rows)
        size = min(batch_size, len(rows))
        out += [rows[i : i + size] for i in range(0, len(rows) - size + 1, size)]
    rng.shuffle(out)
    return out
