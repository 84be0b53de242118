"""Each query's ranking, kept beside a retrieval or reranking result so that a few-shot run can be
read query by query: which queries did the examples help or hurt, and what were they?

File: `<experiment folder>/rankings/<Task>.json`, written atomically after the task's result and
before the manifest entry that names it (a task whose file is missing is run again). Format
`evalharness-rankings/1`:

    {"format": "evalharness-rankings/1", "task": "...", "depth": 100,
     "parts": [{"split": "test", "subset": "default",
                "ids": [query id, ...], "texts": [query text, ...],
                "docs": [[doc id, ...], ...], "scores": [[score, ...], ...],   # top `depth`, best first
                "first_relevant": [rank or null, ...],  # 1-based, among everything mteb ranked
                "examples": [[index into the manifest entry's "examples", ...] or null, ...]}]}

The rankings are mteb's own: the `results` its retrieval evaluator scored (what `prediction_folder`
would save), taken from the task's `task_specific_scores` hook on the one instance being evaluated,
cut to the `depth` best documents (mteb keeps up to 1000 per query; ties broken by document id).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness import store

FORMAT = "evalharness-rankings/1"
FOLDER = "rankings"
DEPTH = 100  # documents kept per query: enough for any nDCG/recall cut-off a report shows


@dataclass
class Rankings:
    """The rankings of one task, part by part, while mteb evaluates it."""

    task: str
    depth: int = DEPTH
    parts: list[dict[str, Any]] = field(default_factory=list)
    _texts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "task": self.task, "depth": self.depth, "parts": self.parts}


def path(exp_dir: Path, task: str) -> Path:
    return exp_dir / FOLDER / f"{task}.json"


def _query_text(value: Any) -> str:
    """mteb 2.x queries are strings, or conversations (lists of turns) for a few tasks."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "\n".join(t.get("content", str(t)) if isinstance(t, Mapping) else str(t) for t in value)
    return str(value)


def first_relevant(ranked: Sequence[str], relevant: Mapping[str, Any]) -> int | None:
    """The 1-based rank of the first document the qrels call relevant (score > 0), or None."""
    for rank, doc in enumerate(ranked, 1):
        if float(relevant.get(doc, 0) or 0) > 0:
            return rank
    return None


def part(
    split: str,
    subset: str,
    results: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, Any]],
    texts: Mapping[str, str],
    depth: int = DEPTH,
) -> dict[str, Any]:
    """One part from mteb's `results` (query -> document -> score) and its qrels."""
    ids = sorted(results)
    docs, scores, first = [], [], []
    for q in ids:
        ranked = sorted(results[q].items(), key=lambda kv: (-float(kv[1]), kv[0]))
        docs.append([d for d, _ in ranked[:depth]])
        scores.append([float(s) for _, s in ranked[:depth]])
        first.append(first_relevant([d for d, _ in ranked], qrels.get(q, {})))
    return {"split": split, "subset": subset, "ids": ids, "texts": [texts.get(q, "") for q in ids],
            "docs": docs, "scores": scores, "first_relevant": first}  # fmt: skip


def _is_retrieval(task: Any) -> bool:
    from mteb.abstasks import AbsTaskRetrieval

    return isinstance(task, AbsTaskRetrieval)


@contextlib.contextmanager
def capture(task: Any, depth: int = DEPTH) -> Iterator[Rankings | None]:
    """Keep the rankings of a retrieval or reranking `task` while mteb evaluates it (within the block);
    None for other task types."""
    if not _is_retrieval(task):
        yield None
        return
    kept = Rankings(task.metadata.name, depth)
    evaluate_subset, specific = task._evaluate_subset, task.task_specific_scores

    def _evaluate_subset(model, data_split, *args, hf_split, hf_subset, **kwargs):
        queries = data_split["queries"]
        texts = queries["text"] if "text" in queries.column_names else [""] * len(queries)  # image queries
        kept._texts[(hf_split, hf_subset)] = {
            str(q): _query_text(t) for q, t in zip(queries["id"], texts, strict=True)
        }
        return evaluate_subset(model, data_split, *args, hf_split=hf_split, hf_subset=hf_subset, **kwargs)

    def task_specific_scores(scores, qrels, results, hf_split, hf_subset):
        texts = kept._texts.get((hf_split, hf_subset), {})
        kept.parts.append(part(hf_split, hf_subset, results, qrels, texts, depth))
        return specific(scores, qrels, results, hf_split=hf_split, hf_subset=hf_subset)

    task._evaluate_subset, task.task_specific_scores = _evaluate_subset, task_specific_scores
    try:
        yield kept
    finally:
        for name in ("task_specific_scores", "_evaluate_subset"):
            task.__dict__.pop(name, None)


def attach_examples(
    kept: Rankings, carried: Mapping[str, Sequence[Any]] | None, used: Sequence[Mapping[str, Any]]
) -> None:
    """Per query, which of the cell's examples (the manifest entry's `examples`, by index) its prompt
    carried: the same ones for every query of a `train`/`file` cell, its own for `knn`."""
    index = {(e.get("query"), e.get("response")): i for i, e in enumerate(used)}
    for p in kept.parts:
        p["examples"] = [
            None
            if carried is None or text not in carried
            else [index.get((ex.query, ex.response)) for ex in carried[text]]
            for text in p["texts"]
        ]


def write(exp_dir: Path, kept: Rankings | None) -> str | None:
    """Write the rankings file (atomically); its path relative to `exp_dir`, or None."""
    if kept is None or not kept.parts:
        return None
    target = path(exp_dir, kept.task)
    store.write_json_atomic(target, kept.as_json())
    return str(target.relative_to(exp_dir))


def read(file: str | Path) -> dict[str, Any]:
    """A rankings file as written; raises ValueError for a file of another format."""
    import json

    data = json.loads(Path(file).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{file}: not an {FORMAT} file (format {data.get('format')!r})")
    return data


def files_present(exp_dir: Path, entry: Mapping[str, Any]) -> bool:
    """A done entry that names a rankings file is only done if the file is there."""
    rel = entry.get("rankings")
    return not rel or (exp_dir / rel).exists()
