"""What a task's main score is made of: its per-query, per-pair or per-experiment values, kept beside
the mteb result so that the report can say whether a Δ between two settings is more than noise.

File: `<experiment folder>/per_item/<Task>.json`, written atomically after the task's result (the
manifest entry, written last, names it; a task whose file is missing is run again). Format
`evalharness-per-item/1`:

    {"format": "evalharness-per-item/1", "task": "...", "metric": "ndcg_at_10",
     "kind": "mean" | "spearman" | "pearson" | "max_ap",
     "unit": "query" | "pair" | "item" | "experiment",
     "columns": [...], "signs": [...],                      # max_ap only: one column per scoring function
     "parts": [{"split": "test", "subset": "default", "ids": [...], "values": [...], "gold": [...],
                "experiments": [...]}]}                      # unit "item" only

- **mean** (retrieval and reranking: mteb's per-query pytrec_eval values, from the task's own
  `task_specific_scores` hook; AIR-Bench: pytrec_eval on the same qrels and rankings; clustering:
  mteb's per-experiment `v_measures`): a part's score is the mean of its values.
- **mean over test items** (classification scored by accuracy): mteb fits `n_experiments` classifiers,
  each on another small train sample, and scores each on the *same* test set. Per test item the value
  is the share of experiments that classified it correctly (from each experiment's predictions, via
  the task's `_calculate_scores`); their mean is the mean of the experiments' accuracies, mteb's main
  score. The units are then the test set's items, which is what test-set sampling varies; the
  experiments' accuracies stay in `experiments` (the spread the choice of train sample adds).
  Classification scored otherwise (F1, AP: not a mean over items), multilabel and cross-validated
  tasks keep mteb's `scores_per_experiment` (unit "experiment").
- **spearman / pearson** (STS): `values` are the predicted similarities of the main metric's scoring
  function, `gold` the normalised gold scores; a part's score is their correlation.
- **max_ap** (pair classification): `values` holds one column per scoring function, `gold` the labels;
  a part's score is the best average precision over the columns, as mteb's `max_ap`.

A task's score is the mean over its parts (its splits x subsets), as mteb's. mteb rounds a main score
to 5 decimals; the values here are unrounded, so their mean equals the main score after that rounding.
The hooks wrap methods on the one task instance being evaluated (mteb's override points for
subclasses), never mteb's classes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness import store

FORMAT = "evalharness-per-item/1"
FOLDER = "per_item"

# mteb / AIR-Bench metric name -> pytrec_eval measure of the same value
_PYTREC = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall", "precision_at": "P",
           "hit_rate_at": "success"}  # fmt: skip
_CORRELATION = re.compile(r"^(cosine|manhattan|euclidean|dot|similarity)_(spearman|pearson)$")
# mteb's STS evaluator output key per scoring function
_STS_KEYS = {"cosine": "cosine_scores", "manhattan": "manhattan_distances", "euclidean": "euclidean_distances",
             "dot": "dot_scores", "similarity": "similarity_scores"}  # fmt: skip
# mteb's pair-classification scoring functions: (name, output key, higher = more similar)
_PAIR_FUNCTIONS = (
    ("similarity", "similarity_scores", True),
    ("cosine", "cosine_scores", True),
    ("manhattan", "manhattan_distances", False),
    ("euclidean", "euclidean_distances", False),
    ("dot", "dot_scores", True),
)


#: sign per pair-classification scoring function: -1 where a lower value means more similar
SIGNS = {name: 1.0 if higher else -1.0 for name, _, higher in _PAIR_FUNCTIONS}


def path(exp_dir: Path, task: str) -> Path:
    return exp_dir / FOLDER / f"{task}.json"


def pytrec_measure(metric: str) -> str | None:
    """`ndcg_at_10` -> `ndcg_cut_10` (the per-query key pytrec_eval reports); None if it has none."""
    name, _, k = metric.rpartition("_")
    measure = _PYTREC.get(name)
    return f"{measure}_{k}" if measure and k.isdigit() else None


@dataclass
class Record:
    """Per-item values of one task, collected part by part while mteb evaluates it."""

    task: str
    metric: str
    kind: str
    unit: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    signs: list[float] = field(default_factory=list)
    missing: str | None = None  # why there are no per-item values (then `parts` is empty)
    # unit "item": per (split, subset), each experiment's 0/1 correctness per test item, in order
    correct: dict[tuple[str, str], list[list[int]]] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        out = {"format": FORMAT, "task": self.task, "metric": self.metric, "kind": self.kind,
               "unit": self.unit, "parts": self.parts}  # fmt: skip
        if self.kind == "max_ap":
            out |= {"columns": self.columns, "signs": self.signs}
        return out


def retrieval_part(
    split: str, subset: str, per_query: Mapping[str, Mapping[str, float]], metric: str
) -> dict:
    """One part from pytrec_eval's per-query output (mteb's `all_scores`, or our own AIR-Bench run)."""
    measure = pytrec_measure(metric)
    ids = sorted(per_query)
    return {
        "split": split,
        "subset": subset,
        "ids": ids,
        "values": [float(per_query[q][measure]) for q in ids],
    }


def _retrieval_hook(task: Any, record: Record) -> None:
    original = task.task_specific_scores

    def task_specific_scores(scores, qrels, results, hf_split, hf_subset):
        record.parts.append(retrieval_part(hf_split, hf_subset, scores, record.metric))
        return original(scores, qrels, results, hf_split=hf_split, hf_subset=hf_subset)

    task.task_specific_scores = task_specific_scores


def _current_part_hook(task: Any) -> dict[str, str]:
    """STS and pair classification score a part without being told which one: remember it here."""
    current: dict[str, str] = {}
    original = task._evaluate_subset

    def _evaluate_subset(*args, hf_split, hf_subset, **kwargs):
        current.update(split=hf_split, subset=hf_subset)
        return original(*args, hf_split=hf_split, hf_subset=hf_subset, **kwargs)

    task._evaluate_subset = _evaluate_subset
    return current


def _sts_hook(task: Any, record: Record, function: str) -> None:
    current = _current_part_hook(task)
    original = task._calculate_scores

    def _calculate_scores(scores, normalized_scores):
        predicted = [float(x) for x in scores[_STS_KEYS[function]]]
        record.parts.append({**current, "ids": [str(i) for i in range(len(predicted))], "values": predicted,
                             "gold": [float(x) for x in normalized_scores]})  # fmt: skip
        return original(scores, normalized_scores)

    task._calculate_scores = _calculate_scores


def _pair_hook(task: Any, record: Record) -> None:
    current = _current_part_hook(task)
    original = task._compute_metrics
    record.columns = [name for name, _, _ in _PAIR_FUNCTIONS]
    record.signs = [SIGNS[name] for name, _, _ in _PAIR_FUNCTIONS]

    def _compute_metrics(similarity_scores, labels):
        columns = [[float(x) for x in similarity_scores[key]] for _, key, _ in _PAIR_FUNCTIONS]
        rows = [list(r) for r in zip(*columns, strict=True)]
        record.parts.append({**current, "ids": [str(i) for i in range(len(rows))], "values": rows,
                             "gold": [int(x) for x in labels]})  # fmt: skip
        return original(similarity_scores, labels)

    task._compute_metrics = _compute_metrics


def _classification_hook(task: Any, record: Record) -> None:
    """Each experiment's predictions on the test items, as correct / not (the test set is the same
    for every experiment of a part, so a test item has one value per experiment)."""
    current = _current_part_hook(task)
    original = task._calculate_scores

    def _calculate_scores(y_test, y_pred):
        correct = [int(t == p) for t, p in zip(list(y_test), list(y_pred), strict=True)]
        record.correct.setdefault((current["split"], current["subset"]), []).append(correct)
        return original(y_test, y_pred)

    task._calculate_scores = _calculate_scores


def _per_test_item(task: Any, metric: str) -> bool:
    """Classification whose main score is a mean over test items scored by every experiment."""
    from mteb.abstasks import AbsTaskClassification, AbsTaskMultilabelClassification

    return (
        metric == "accuracy"
        and isinstance(task, AbsTaskClassification)
        and not isinstance(task, AbsTaskMultilabelClassification)
        and not getattr(task, "is_cross_validation", False)
    )


def _family(task: Any) -> str:
    from mteb.abstasks import (
        AbsTaskClassification,
        AbsTaskClustering,
        AbsTaskPairClassification,
        AbsTaskRetrieval,
        AbsTaskSTS,
    )

    for cls, name in ((AbsTaskRetrieval, "retrieval"), (AbsTaskSTS, "sts"),
                      (AbsTaskPairClassification, "pair"), (AbsTaskClassification, "classification"),
                      (AbsTaskClustering, "clustering")):  # fmt: skip
        if isinstance(task, cls):
            return name
    legacy = type(task).__mro__  # mteb's older clustering class keeps per-experiment v_measures too
    return "clustering" if any("Clustering" in c.__name__ for c in legacy) else "other"


@contextlib.contextmanager
def capture(task: Any) -> Iterator[Record]:
    """Record the per-item values of `task`'s main metric while mteb evaluates it (within the block).
    Types without per-item values, or main metrics they cannot rebuild, get a Record saying why."""
    metric = task.metadata.main_score
    family = _family(task)
    record = Record(task.metadata.name, metric, "mean", "query")
    correlation = _CORRELATION.match(metric)
    if family == "retrieval":
        if pytrec_measure(metric) is None:
            record.missing = f"main score {metric} has no per-query value in mteb's pytrec_eval output"
        else:
            _retrieval_hook(task, record)
    elif family == "sts" and correlation:
        record.kind, record.unit = correlation.group(2), "pair"
        _sts_hook(task, record, correlation.group(1))
    elif family == "pair" and metric == "max_ap":
        record.kind, record.unit = "max_ap", "pair"
        _pair_hook(task, record)
    elif family == "classification" and _per_test_item(task, metric):
        record.unit = "item"  # assembled from the experiments' predictions in `from_result`
        _classification_hook(task, record)
    elif family in ("classification", "clustering"):
        record.unit = "experiment"  # read from the result file: see `from_result`
    else:
        record.missing = f"{task.metadata.type} tasks with main score {metric}: no per-item values kept"
    try:
        yield record
    finally:
        for name in ("task_specific_scores", "_evaluate_subset", "_calculate_scores", "_compute_metrics"):
            task.__dict__.pop(name, None)  # the instance's own methods again


def from_result(record: Record, result: Any) -> Record:
    """Classification and clustering: mteb keeps each experiment's score in the result itself
    (`scores_per_experiment`, `v_measures`); copy the main metric's values out of it. Classification
    by test item: each item's share of correct experiments, beside the experiments' accuracies."""
    if record.unit == "item" and not record.missing:
        return _test_items(record, result)
    if record.unit != "experiment" or record.missing:
        return record
    for split, entries in result.scores.items():
        for entry in entries:
            values = _experiment_values(entry, record.metric)
            if values is None:
                record.parts, record.missing = [], f"the result has no per-experiment {record.metric}"
                return record
            record.parts.append({"split": split, "subset": entry.get("hf_subset", "default"),
                                 "ids": [str(i) for i in range(len(values))], "values": values})  # fmt: skip
    return record


def _test_items(record: Record, result: Any) -> Record:
    for split, entries in result.scores.items():
        for entry in entries:
            subset = entry.get("hf_subset", "default")
            runs = record.correct.get((split, subset))
            if not runs or len({len(r) for r in runs}) != 1:
                record.parts, record.missing = [], f"no per-test-item predictions for {split}/{subset}"
                return record
            table = [[float(c) for c in run] for run in runs]
            per_item = [sum(column) / len(table) for column in zip(*table, strict=True)]
            record.parts.append({"split": split, "subset": subset, "ids": [str(i) for i in range(len(per_item))],
                                 "values": per_item,
                                 "experiments": [sum(run) / len(run) for run in table]})  # fmt: skip
    return record


def _experiment_values(entry: Mapping[str, Any], metric: str) -> list[float] | None:
    per_experiment = entry.get("scores_per_experiment")
    if isinstance(per_experiment, list) and per_experiment and all(metric in e for e in per_experiment):
        return [float(e[metric]) for e in per_experiment]
    plural = entry.get(f"{metric}s")  # clustering: v_measure -> v_measures {"Level 0": [...]} (or a list)
    if isinstance(plural, Mapping) and len(plural) == 1:
        (plural,) = plural.values()
    if isinstance(plural, list) and plural and all(isinstance(v, int | float) for v in plural):
        return [float(v) for v in plural]
    return None  # hierarchical clustering (several levels) and the like: no one list of values


def write(exp_dir: Path, record: Record) -> str | None:
    """Write the task's per-item file (atomically); its path relative to `exp_dir`, or None (with
    `record.missing` saying why) when there is nothing to keep."""
    if record.missing or not record.parts:
        record.missing = record.missing or "mteb reported no per-item values for this task"
        return None
    target = path(exp_dir, record.task)
    store.write_json_atomic(target, record.as_json())
    return str(target.relative_to(exp_dir))


def read(file: Path) -> dict[str, Any]:
    """A per-item file as written; raises ValueError for a file of another format."""
    import json

    data = json.loads(file.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{file}: not an {FORMAT} file (format {data.get('format')!r})")
    return data


def manifest_fields(rel: str | None, record: Record) -> dict[str, Any]:
    """What the manifest entry says about the task's per-item values."""
    return {"per_item": rel} if rel else {"per_item": None, "per_item_missing": record.missing}


def files_present(exp_dir: Path, entry: Mapping[str, Any]) -> bool:
    """A done entry that names a per-item file is only done if the file is there."""
    rel = entry.get("per_item")
    return not rel or (exp_dir / rel).exists()


def selected_parts(parts: Sequence[dict[str, Any]], chosen: set[tuple[str, str]]) -> list[dict[str, Any]]:
    return [p for p in parts if (p["split"], p["subset"]) in chosen]


# ---------------------------------------------------------------------------------------------
# Reading back: the tidy per-item table of a results folder
# ---------------------------------------------------------------------------------------------

#: Per-item columns after the cell's columns (`evalharness.results.CELL_COLUMNS`): one row per item
#: (per item and scoring function for max_ap, `column` naming it; "" otherwise).
ITEM_COLUMNS = ["task", "split", "subset", "metric", "kind", "unit", "item", "column", "value", "gold"]
#: Classification by test item: each experiment's accuracy per part (the train-sample spread).
EXPERIMENT_COLUMNS = [
    "task",
    "split",
    "subset",
    "experiment_no",
    "value",
]  # not "experiment": the cell's folder
NO_FILE = "no per-item file (results from elsewhere, or written before evalharness kept per-item values)"


def frame(data: Mapping[str, Any], base: Mapping[str, Any], chosen: set[tuple[str, str]]) -> Any:
    """The selected parts of one per-item file as tidy rows (a DataFrame)."""
    import numpy as np
    import pandas as pd

    frames = []
    for part in selected_parts(data["parts"], chosen):
        ids = np.asarray(part["ids"], dtype=object)
        gold = np.asarray(part.get("gold") or [np.nan] * len(ids), dtype=float)
        values = np.asarray(part["values"], dtype=float)
        columns = data.get("columns") or [""]
        if values.ndim == 1:
            values = values[:, None]
        n, width = values.shape
        frames.append(
            pd.DataFrame(
                {
                    "task": data["task"],
                    "split": part["split"],
                    "subset": part["subset"],
                    "metric": data["metric"],
                    "kind": data["kind"],
                    "unit": data["unit"],
                    "item": np.repeat(ids, width),
                    "column": np.tile(np.asarray(columns, dtype=object), n),
                    "value": values.reshape(-1),
                    "gold": np.repeat(gold, width),
                }
            )  # fmt: skip
        )
    if not frames:
        return pd.DataFrame(columns=[*base, *ITEM_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    for key, value in reversed(list(base.items())):
        out.insert(0, key, value)
    return out


def experiment_frame(data: Mapping[str, Any], base: Mapping[str, Any], chosen: set[tuple[str, str]]) -> Any:
    """The selected parts' per-experiment scores kept beside per-test-item values (unit "item"), as
    tidy rows; empty for other units, whose items are the experiments themselves."""
    import pandas as pd

    rows = [
        {**base, "task": data["task"], "split": part["split"], "subset": part["subset"], "experiment_no": i,
         "value": float(v)}
        for part in selected_parts(data["parts"], chosen)
        for i, v in enumerate(part.get("experiments") or [])
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=[*base, *EXPERIMENT_COLUMNS])
