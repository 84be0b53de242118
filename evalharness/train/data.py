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

from evalharness.errors import EvalharnessError
from evalharness.jsonl import numbered_json_lines
from evalharness.train.config import ROW_TYPES, SYMMETRIC_TYPES, TrainDataConfig

logger = logging.getLogger(__name__)


class TrainDataError(EvalharnessError, ValueError):
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
    pos_scores: tuple[float, ...] = ()  # a teacher's (reranker's) scores, one per positive
    neg_scores: tuple[float, ...] = ()  # ... and one per negative: knowledge distillation


@dataclass
class Dataset:
    """The rows of one source; batches never mix datasets."""

    name: str
    rows: list[TrainRow] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.rows[0].type if self.rows else "retrieval"


def _texts(
    value: Any, scores: Any, key: str, where: str, *, required: bool
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """A row's passages and, when given, their teacher scores (`pos_scores` / `neg_scores`, one per
    passage); an empty passage is dropped together with its score."""
    if value is None and not required:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainDataError(f"{where}: {key!r} must be a list of strings")
    if scores is not None and (
        not isinstance(scores, list)
        or len(scores) != len(value)
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)
    ):
        raise TrainDataError(
            f"{where}: '{key}_scores' must be a list of numbers, one per {key!r} passage ({len(value)})"
        )
    keep = [i for i, v in enumerate(value) if v.strip()]
    if required and not keep:
        raise TrainDataError(f"{where}: {key!r} has no non-empty text; every row needs a positive passage")
    return tuple(value[i] for i in keep), tuple(float(scores[i]) for i in keep) if scores is not None else ()


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
    pos, pos_scores = _texts(obj.get("pos"), obj.get("pos_scores"), "pos", where, required=True)
    neg, neg_scores = _texts(obj.get("neg"), obj.get("neg_scores"), "neg", where, required=False)
    return TrainRow(
        query=query,
        pos=pos,
        neg=neg,
        prompt=prompt,
        type=ROW_TYPES[kind],
        category=obj.get("category"),
        source=where,
        pos_scores=pos_scores,
        neg_scores=neg_scores,
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
    from evalharness.examples import split_texts

    problems = []
    for task in tasks:
        for split in task.eval_splits:
            seen = split_texts(task, split)
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


def check_teacher_scores(datasets: Sequence[Dataset], group_size: int) -> list[str]:
    """Distillation needs a teacher score for every passage a group can hold."""
    out = []
    for ds in datasets:
        bare = [r.source for r in ds.rows if not r.pos_scores or (group_size > 1 and not r.neg_scores)]
        if bare:
            out.append(
                f"{ds.name}: {len(bare)} row(s) without teacher scores (e.g. {bare[0]}); "
                "knowledge_distillation=true needs 'pos_scores' and 'neg_scores' on every row (score the "
                "rows with a reranker first, e.g. FlagEmbedding's add_reranker_score), or set "
                "knowledge_distillation=false"
            )
    return out


def negatives_for(row: TrainRow, n: int, rng: random.Random) -> list[int]:
    """Indices of `n` negatives as the reference draws them: a sample without replacement when there
    are enough, else the row's negatives repeated and sampled."""
    if n <= 0:
        return []
    if len(row.neg) >= n:
        return rng.sample(range(len(row.neg)), n)
    pool = list(range(len(row.neg))) * -(-n // len(row.neg))  # ceil, as the reference: same draws
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


def batch_size_of(ds: Dataset, batch_size: int, symmetric_batch_size: int | None) -> int:
    """Queries per device for a dataset: FlagEmbedding halves the batch of its `symmetric_*` types."""
    if ds.type not in SYMMETRIC_TYPES:
        return batch_size
    return symmetric_batch_size if symmetric_batch_size is not None else max(1, batch_size // 2)


def steps(
    datasets: Sequence[Dataset],
    batch_size: int,
    seed: int | str,
    world_size: int = 1,
    *,
    symmetric_batch_size: int | None = None,
    quiet: bool = False,
) -> list[list[list[TrainRow]]]:
    """One epoch of optimizer steps: each step is `world_size` per-device batches of `batch_size` rows
    (`batch_size_of`: STS, classification and clustering datasets take `symmetric_batch_size`),
    all from one dataset (the paper's "same dataset throughout one training step", across devices too,
    so cross-device negatives and in-batch examples never mix datasets). Every dataset is shuffled and
    cut into full steps; the rows left over are dropped (as FlagEmbedding's SameDatasetTrainDataset
    drops them), and a dataset smaller than one step gives one step of smaller batches. The steps are
    interleaved in a seeded order (each epoch has its own seed)."""
    rng = random.Random(seed)
    out: list[list[list[TrainRow]]] = []
    for ds in datasets:
        rows = list(ds.rows)
        rng.shuffle(rows)
        size = min(batch_size_of(ds, batch_size, symmetric_batch_size), len(rows) // world_size)
        if size == 0:
            raise TrainDataError(
                f"{ds.name} has {len(rows)} row(s): too few for one batch on each of {world_size} devices"
            )
        width = size * world_size
        if len(rows) % width and not quiet:
            logger.info(
                "%s: %d row(s) left over after full steps go unused in each epoch (a new draw every epoch)",
                ds.name,
                len(rows) % width,
            )
        out += [
            [rows[i + d * size : i + (d + 1) * size] for d in range(world_size)]
            for i in range(0, len(rows) - width + 1, width)
        ]
    rng.shuffle(out)
    return out


@dataclass(frozen=True)
class DeviceBatch:
    """One device's rows for one optimizer step (0-based, counted over the whole run)."""

    rows: list[TrainRow]
    step: int


class StepBatches:
    """The Trainer's dataset: per-device batches addressed by (epoch, step, device), item
    `e * len + s * W + d` being device d's batch of step s in epoch e (the Trainer's batch size is 1
    batch per device). Every epoch lays its rows out anew with `steps` (as FlagEmbedding's
    `refresh_epoch` does), from the seed, so a resumed run sees what an uninterrupted one sees.
    Built during validation: epoch 0's layout is where a dataset too small for the devices is found."""

    def __init__(
        self,
        datasets: Sequence[Dataset],
        batch_size: int,
        seed: int,
        world_size: int = 1,
        symmetric_batch_size: int | None = None,
    ) -> None:
        self.datasets, self.batch_size, self.seed, self.world_size = (
            list(datasets),
            batch_size,
            seed,
            world_size,
        )
        self.symmetric_batch_size = symmetric_batch_size
        self._epochs: dict[int, list[list[TrainRow]]] = {}
        self.steps_per_epoch = len(self._epoch(0)) // world_size

    def _epoch(self, epoch: int) -> list[list[TrainRow]]:
        if epoch not in self._epochs:
            seed = self.seed if epoch == 0 else f"{self.seed}:{epoch}"
            layout = steps(
                self.datasets,
                self.batch_size,
                seed,
                self.world_size,
                symmetric_batch_size=self.symmetric_batch_size,
                quiet=epoch > 0,
            )
            self._epochs = {epoch: [batch for step in layout for batch in step]}  # keep one epoch
        return self._epochs[epoch]

    def __len__(self) -> int:
        return self.steps_per_epoch * self.world_size

    def __getitem__(self, i: int) -> DeviceBatch:
        epoch, position = divmod(i, len(self))
        return DeviceBatch(
            self._epoch(epoch)[position], epoch * self.steps_per_epoch + position // self.world_size
        )
