"""Published numbers for any model: a local copy of mteb's results repository as the reference.

The repository (github.com/embeddings-benchmark/results) holds `results/<org>__<model>/<revision>/<Task>.json`
per model, written by every mteb version since 1.0; `TaskResult.from_disk` upgrades the old formats.
Three things make a naive comparison unfair, and each is handled here:

- **splits and subsets**: the reference is scored on exactly the selection our column uses for the task
  (evalharness.selection, mteb's `validate_and_filter_scores`), never on everything its file holds;
- **revision**: our revision's folder if the reference has it; otherwise the only folder, or the latest by
  the result files' dates, and the report says which;
- **metric names**: mteb 2 changed some main scores (Reranking `map` -> `map_at_1000`, MindSmallReranking
  -> `max_over_subqueries_map_at_1000`; every other type of MTEB(eng, v1) kept its metric, see
  `MTEB1_MAIN_SCORES`). A reference file's main score is identified by the metric whose value it equals;
  where it is not ours, our files are read on the reference's metric if they hold it, else the row is
  marked with both names.

Scores are x100 like the rest of the report; reference files that store percentages (some "external"
folders) are recognised by a main score above 1 and scaled back.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mteb.results import TaskResult

from evalharness import selection as sel
from evalharness.results import Results, _flatten
from evalharness.taskinfo import aggregate_children, aggregate_parents, main_score_name, task_type

logger = logging.getLogger(__name__)

#: Task type -> the main score mteb 1.x files hold, where mteb 2 uses another (checked against the
#: installed mteb by tests/test_report_reference.py for every task of MTEB(eng, v1)). 1.x
#: PairClassification's "ap" is the max over similarity functions, i.e. 2.x `max_ap`, and 1.x STS /
#: Summarization `cos_sim` spearman is 2.x `cosine_spearman` (mteb's upgrade renames both).
MTEB1_MAIN_SCORES = {"Reranking": "map"}
#: 1.x metric names (as flattened from old files) -> their mteb 2 names; the same numbers.
RENAMED = {"cos_sim.spearman": "cosine_spearman", "max.ap": "max_ap", "cos_sim.ap": "cosine_ap"}


def mteb1_main_score(task: str) -> str | None:
    """The main score of `task` as mteb 1.x wrote it (the paper's tables come from 1.x)."""
    return MTEB1_MAIN_SCORES.get(task_type(task), main_score_name(task))


# ---------------------------------------------------------------------------------------------
# Finding a model and a revision
# ---------------------------------------------------------------------------------------------


@dataclass
class RefModel:
    """Where a model's reference results are: its revision folder (None: not in the reference) and a
    note when that is not our revision."""

    name: str
    folder: Path | None
    revision: str = ""
    note: str = ""


def models_root(repo: Path) -> Path:
    """The folder of `<org>__<model>` folders: the repository's `results/`, or `repo` itself."""
    return repo / "results" if (repo / "results").is_dir() else repo


def _revisions(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.is_dir() and any(p.glob("*.json")))


def _date(folder: Path) -> tuple[int, float]:
    """When a revision's results were written, for picking the latest: the newest `date` its result
    files record (recent mteb writes one), else the newest file time. Folders with a recorded date come
    first: a fresh clone gives every file the clone's time, so file times only decide between folders
    without any recorded date."""
    dates, times = [], []
    for path in folder.glob("*.json"):
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("date")
        except (OSError, json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, int | float):
            dates.append(float(value))
        times.append(path.stat().st_mtime)
    return (1, max(dates)) if dates else (0, max(times, default=0.0))


def find_model(repo: Path, model: str, revision: str) -> RefModel:
    """The reference folder for our `model` at `revision` (see the module docstring for the choice)."""
    model_dir = models_root(repo) / model.replace("/", "__")
    if not model_dir.is_dir():
        return RefModel(model, None, note=f"{model}: not in the reference (no folder {model_dir})")
    revisions = _revisions(model_dir)
    if not revisions:
        return RefModel(model, None, note=f"{model}: {model_dir} holds no result files")
    exact = [r for r in revisions if r.name == revision]
    if exact:
        return RefModel(model, exact[0], revision)
    if len(revisions) == 1:
        chosen, why = revisions[0], "the only one there"
    else:
        chosen = max(revisions, key=_date)
        why = f"the latest by result date of {len(revisions)}: {', '.join(r.name for r in revisions)}"
    note = (
        f"{model}: the reference has no revision {revision!r} (ours); used {chosen.name!r} ({why}), so the "
        "weights may differ"
    )
    return RefModel(model, chosen, chosen.name, note)


# ---------------------------------------------------------------------------------------------
# Scoring one reference file with our selection
# ---------------------------------------------------------------------------------------------


@dataclass
class RefScore:
    """One task of the reference: score (x100, NaN if missing), the metric its main score is, and why
    it is missing or what was adjusted."""

    score: float
    metric: str = ""
    notes: list[str] = field(default_factory=list)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def ref_metric(entry: Mapping[str, Any], ours: str | None, task: str) -> tuple[str, float] | None:
    """(metric name, value) of one reference score entry's main score: the metric whose value equals
    `main_score` (ours or mteb 1.x's first); for old files without `main_score`, ours or 1.x's metric."""
    flat = {RENAMED.get(k, k): v for k, v in _flatten(entry)}
    main = entry.get("main_score")
    preferred = [m for m in (ours, mteb1_main_score(task)) if m]
    if main is None or (isinstance(main, float) and math.isnan(main)):
        found = [m for m in preferred if m in flat]
        return (found[0], flat[found[0]]) if found else None
    same = [k for k, v in flat.items() if _close(v, float(main))]
    named = [m for m in preferred if m in same] or same or ["main_score"]
    return named[0], float(main)


def score_file(path: Path, selection: sel.Selection, ours_metric: str | None) -> RefScore:
    """The reference's score for one task on our selection (mean over the selected parts, x100)."""
    try:
        result = TaskResult.from_disk(path)
    except Exception as err:  # a broken reference file is a note, not a crash
        return RefScore(math.nan, notes=[f"unreadable {path.name}: {type(err).__name__}: {err}"])
    chosen, missing = sel.apply(result, selection)
    if missing:
        parts = ", ".join(f"{s}/{u}" for s, u in missing)
        return RefScore(math.nan, notes=[f"the reference has no score for {parts}"])
    values, metrics, scaled = [], set(), False
    for split, entries in result.scores.items():
        for entry in entries:
            if (split, entry.get("hf_subset", "default")) not in chosen:
                continue
            found = ref_metric(entry, ours_metric, result.task_name)
            if found is None:
                return RefScore(math.nan, notes=[f"{split}/{entry.get('hf_subset')} has no main score"])
            name, value = found
            if abs(value) > 1.0:  # stored as a percentage
                value, scaled = value / 100, True
            values.append(value)
            metrics.add(name)
    if not values:
        return RefScore(math.nan, notes=["no selected split/subset"])
    notes = ["stored x100 in the file"] if scaled else []
    return RefScore(100 * sum(values) / len(values), " / ".join(sorted(metrics)), notes)


def _selection_of(row: Mapping[str, Any]) -> sel.Selection:
    if row["splits"] is None:
        return sel.Selection(None, None, sel.EVERYTHING)
    return sel.Selection(tuple(row["splits"]), tuple(row["subsets"]), row["source"], row["benchmark"])


def _task_score(folder: Path, task: str, selection: sel.Selection, ours_metric: str | None) -> RefScore:
    path = folder / f"{task}.json"
    if not path.exists():
        return RefScore(math.nan, notes=["not in the reference"])
    return score_file(path, selection, ours_metric)


# ---------------------------------------------------------------------------------------------
# Our side: the metric our numbers are, and our files read on another metric
# ---------------------------------------------------------------------------------------------


def our_metrics(results: Results) -> dict[str, str]:
    """Task (aggregate sub-tasks under their parent) -> the main metric of our files."""
    main = results.main()
    names = main.assign(task=main["task"].map(lambda t: aggregate_parents().get(t, t)))
    return names.groupby("task")["metric"].first().to_dict()


def ours_on_metric(results: Results, cells: Sequence[str], task: str, metric: str) -> float:
    """Our score (x100, mean over `cells`) for `task` on `metric` instead of the main score, over the same
    selected parts; NaN unless every selected part of every cell has that metric."""
    frame = results.scores
    frame = frame[frame["selected"] & (frame["task"] == task)]
    key = frame["model"] + "|" + frame["revision"] + "|" + frame["experiment"]
    per_cell = []
    for cell in cells:
        mine = frame[key == cell]
        parts = mine[mine["is_main"]][["split", "subset"]].drop_duplicates()
        on = mine[mine["metric"] == metric]
        if parts.empty or len(on) != len(parts):
            return math.nan
        per_cell.append(on["score"].mean())
    return 100 * sum(per_cell) / len(per_cell) if per_cell else math.nan


# ---------------------------------------------------------------------------------------------
# Everything for one report
# ---------------------------------------------------------------------------------------------

REF_COLUMNS = [
    "column",
    "task",
    "task_type",
    "reference",
    "ref_metric",
    "ours_metric",
    "ours_on_ref_metric",
    "note",
]


def _column_rows(
    folder: Path, results: Results, cells: list[str], metrics: Mapping[str, str], column: str
) -> list[dict[str, Any]]:
    """Reference scores for one of our columns, per task, aggregate sub-tasks averaged into their parent
    (or the parent's own file, which is how the repository often stores CQADupstack)."""
    sels = results.selections
    sels = sels[
        (sels["model"] + "|" + sels["revision"] + "|" + sels["experiment"]).isin(cells) & sels["in_benchmark"]
    ]
    first = sels.drop_duplicates("task").set_index("task")
    rows, parents = [], aggregate_parents()
    for parent in dict.fromkeys(parents.get(t, t) for t in first.index):
        if not sel.known_task(parent):
            continue  # AIR-Bench datasets and tasks mteb does not know are not in the repository
        ours = metrics.get(parent)
        children = [c for c in aggregate_children(parent) if c in first.index]
        if children and not (folder / f"{parent}.json").exists():
            parts = [
                _task_score(
                    folder, c, _selection_of(first.loc[c]) if c in first.index else sel.choose(c), ours
                )
                for c in aggregate_children(parent)
            ]
            score = sum(p.score for p in parts) / len(parts)
            ref = RefScore(score, " / ".join(sorted({p.metric for p in parts if p.metric})),
                           sorted({n for p in parts for n in p.notes}))  # fmt: skip
        else:
            selection = sel.choose(parent) if children else _selection_of(first.loc[parent])
            ref = _task_score(folder, parent, selection, ours)
        alt = math.nan
        if ref.metric and ours and ref.metric != ours and not children:
            alt = ours_on_metric(results, cells, parent, ref.metric)
        rows.append({"column": column, "task": parent, "task_type": task_type(parent), "reference": ref.score,
                     "ref_metric": ref.metric, "ours_metric": ours or "", "ours_on_ref_metric": alt,
                     "note": "; ".join(ref.notes)})  # fmt: skip
    return rows


def reference_scores(
    repo: str | Path, results: Results, columns: pd.DataFrame, seed_scores: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """The reference's score for every task of every one of our columns (`columns`: column, model_name,
    revision; `seed_scores`: column, cell), on the column's selection. Returns a long frame
    (REF_COLUMNS) and notes: models not found, revisions used instead of ours."""
    repo = Path(repo)
    if not repo.is_dir():
        raise FileNotFoundError(
            f"reference folder {repo} does not exist (expected a copy of mteb's results repository)"
        )
    metrics, rows, notes = our_metrics(results), [], []
    found: dict[tuple[str, str], RefModel] = {}
    for col in columns.itertuples():
        key = (col.model_name, col.revision)
        if key not in found:
            found[key] = find_model(repo, col.model_name, col.revision)
            if found[key].note:
                notes.append(found[key].note)
        ref = found[key]
        if ref.folder is None:
            continue
        cells = list(dict.fromkeys(seed_scores.loc[seed_scores["column"] == col.column, "cell"]))
        rows += _column_rows(ref.folder, results, cells, metrics, col.column)
    return pd.DataFrame(rows, columns=REF_COLUMNS), notes
