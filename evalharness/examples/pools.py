"""Example pools drawn from an mteb task's own splits, and the checks that keep them off the evaluated split.

The "train" and "knn" strategies take examples from a non-evaluated split of the task (the paper's
"examples are sourced from training datasets"). `task_example_pool` turns one split of any supported task
family into (query, response) pairs; `split_texts` gives the texts of a split that an example must not
repeat, `check_disjoint` refuses examples that do, and `_refuse_eval_split` refuses drawing examples from
an evaluated split in the first place. `evalharness.train.data` uses the same pools and texts for
fine-tuning data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from evalharness.examples.base import Example, ExampleError

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


def split_texts(task: Any, split: str) -> set[str]:
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
