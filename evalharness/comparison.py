"""One comparison of zero- vs few-shot runs: per task x column scores, the MTEB-style means, Δ vs a
baseline shot count and the Borda rank, as pandas frames (rendering is evalharness.render's job).

The aggregation follows the paper (and mteb's MTEB(eng, v1)): a task's score is the mean of its main
score over the splits and subsets its benchmark scores (`evalharness.selection`, then mteb's
`TaskResult.get_score`); the sub-tasks of an mteb aggregate task
(CQADupstack's 12 forums) are averaged into that one task first; a type mean is the mean over its tasks;
the overall "mean (tasks)" is the mean over all tasks (the paper's "Avg. (56)") and "mean (types)" the
mean of the type means (mteb's `Mean(TaskType)`). Seeds of one setting are averaged per task. Borda
ranks use mteb's own `_get_borda_rank`, with every model x setting as one leaderboard entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from evalharness.reference import our_metrics
from evalharness.results import Results
from evalharness.taskinfo import aggregate_children, aggregate_parents, benchmark_of_type, task_type, type_key

MEAN_TASKS, MEAN_TYPES, N_TASKS = "mean (tasks)", "mean (types)", "tasks"
SETTING = ["shots", "strategy", "template", "set_id"]


# ---------------------------------------------------------------------------------------------
# One comparison: per task x column scores, where a column is one model x setting
# ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Scores (x100) per column and task, after aggregate sub-tasks are merged and seeds averaged.

    `columns` has one row per column (model, setting, the setting's fields, revision), in display order;
    `scores` is long: column id, task, task_type, score, n_seeds; `seed_scores` keeps each seed;
    `selection` is long: column id, task, label (the splits and subsets the score is made of).
    """

    columns: pd.DataFrame
    scores: pd.DataFrame
    seed_scores: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    selection: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["column", "task", "label"]))
    metrics: dict[str, str] = field(default_factory=dict)  # task -> the main metric our files hold

    @property
    def empty(self) -> bool:
        return self.scores.empty


def _shots_order(shots: Any) -> float:
    """0, 1, 2, ..., then -1 ("all examples of the file"), then unknown."""
    if shots is None or pd.isna(shots):
        return math.inf
    return 1e6 if int(shots) < 0 else float(shots)


def _setting_label(row: pd.Series, seeds: Sequence[Any], show_template: bool) -> str:
    if row["shots"] is None or pd.isna(row["shots"]):
        return row["experiment"] or "default"
    shots = int(row["shots"])
    if shots == 0:
        label = "0-shot"
    else:
        label = f"{'all' if shots < 0 else shots}-shot {row['strategy'] or ''}".rstrip()
        if isinstance(row["set_id"], str) and row["set_id"]:
            label += f" {row['set_id']}"
        known = [int(s) for s in seeds if s is not None and not pd.isna(s)]
        if len(known) == 1:
            label += f" seed {known[0]}"
        elif known:
            label += f" {len(known)} seeds"
    if show_template and isinstance(row["template"], str):
        label += f" [{row['template']}]"
    return label


def _cell_table(main: pd.DataFrame) -> pd.DataFrame:
    """One row per result folder (cell) with its column id, model label and setting label."""
    cells = main[["model", "revision", "experiment", *SETTING, "seed", "benchmark"]].drop_duplicates().copy()
    cells["cell"] = cell_key(cells)
    revisions = cells.groupby("model")["revision"].nunique()
    cells["model_label"] = [
        f"{m}@{r}" if revisions[m] > 1 else m for m, r in zip(cells["model"], cells["revision"], strict=True)
    ]
    templates = cells.groupby("model_label")["template"].nunique()
    # a setting is everything but the seed; plain mteb folders (no settings) are their own setting
    key = pd.Series(
        ["|".join(map(str, row)) for row in cells[SETTING].itertuples(index=False)], index=cells.index
    )
    cells["setting_key"] = key.where(cells["shots"].notna(), "exp:" + cells["experiment"])
    cells["setting"] = ""
    for (_, _), group in cells.groupby(["model_label", "setting_key"], sort=False):
        first = group.iloc[0]
        label = _setting_label(first, list(group["seed"]), templates[first["model_label"]] > 1)
        cells.loc[group.index, "setting"] = label
    return cells


def _collapse_aggregates(per_task: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """Replace the sub-tasks of an mteb aggregate task (CQADupstack forums) by their mean, per cell, as
    the paper does before any type mean. A group with a sub-task missing gets no score (mteb gives None
    too), and the gap is reported."""
    parents = aggregate_parents()
    is_sub = per_task["task"].map(parents).notna()
    subs, rest = per_task[is_sub].copy(), per_task[~is_sub]
    if subs.empty:
        return per_task
    subs["parent"] = subs["task"].map(parents)
    merged = []
    for (cell, parent), group in subs.groupby(["cell", "parent"], sort=False):
        if ((rest["cell"] == cell) & (rest["task"] == parent)).any():
            continue  # mteb also wrote the aggregate's own result file: it is the same mean
        children = aggregate_children(parent)
        missing = sorted(set(children) - set(group["task"]))
        score = group["score"].mean() if not missing else math.nan
        if missing:
            problems.append(
                f"{cell.replace('|', ' ')}: {parent} has {len(children) - len(missing)} of {len(children)} "
                f"sub-tasks (missing {', '.join(missing)}); it is left out of the means"
            )
        merged.append({"cell": cell, "task": parent, "task_type": task_type(parent), "score": score})
    return pd.concat([rest, pd.DataFrame(merged)], ignore_index=True)


def _missing_tasks(seed_scores: pd.DataFrame, columns: pd.DataFrame) -> list[str]:
    """Tasks that a column lacks although other runs of the same benchmark have them (a model run only
    on offline-mini is not charged with the tasks of another model's MTEB(eng, v1) run)."""
    scored = seed_scores.dropna(subset=["score"])
    by_benchmark = scored.groupby("benchmark")["task"].agg(set)
    problems = []
    for col in columns.itertuples():
        mine = seed_scores[seed_scores["column"] == col.column]
        expected = set().union(*(by_benchmark.get(b, set()) for b in mine["benchmark"].unique()))
        missing = sorted(expected - set(scored.loc[scored["column"] == col.column, "task"]))
        if missing:
            problems.append(
                f"{col.model} {col.setting}: no score for {len(missing)} of {len(expected)} tasks: "
                + ", ".join(missing)
            )
    return problems


def cell_key(frame: pd.DataFrame) -> pd.Series:
    """One cell (experiment folder) of a model, as one string: model|revision|experiment."""
    return frame["model"] + "|" + frame["revision"] + "|" + frame["experiment"]


def _per_task(main: pd.DataFrame, selections: pd.DataFrame) -> pd.DataFrame:
    """Per cell and task: the mean main score (x100) over the selected splits and subsets, as mteb's
    `get_score` on a `validate_and_filter_scores`-ed result; NaN where a selected part is missing (mteb
    gives NaN too) or the file holds none of them."""
    per_task = main.groupby(["cell", "task", "task_type"], sort=False)["score"].mean().mul(100).reset_index()
    if selections.empty:
        return per_task
    gaps = selections[selections["in_benchmark"] & (selections["missing"].map(len) > 0)]
    if gaps.empty:
        return per_task
    keys = set(zip(cell_key(gaps), gaps["task"], strict=True))
    hit = [(c, t) in keys for c, t in zip(per_task["cell"], per_task["task"], strict=True)]
    per_task.loc[hit, "score"] = math.nan
    have = set(zip(per_task["cell"], per_task["task"], strict=True))
    extra = [
        {"cell": c, "task": t, "task_type": task_type(t), "score": math.nan} for c, t in sorted(keys - have)
    ]
    return (
        pd.concat([per_task, pd.DataFrame(extra, columns=per_task.columns)], ignore_index=True)
        if extra
        else per_task
    )


def _selection_labels(selections: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per column and task (aggregate sub-tasks under their parent), the selection label(s) its score
    uses; several labels (seeds or sub-tasks scored differently) are joined with " | "."""
    if selections.empty:
        return pd.DataFrame(columns=["column", "task", "label"])
    sels = selections[selections["in_benchmark"]].assign(cell=lambda d: cell_key(d))
    sels = sels.merge(cells[["cell", "column"]], on="cell")
    sels["task"] = sels["task"].map(lambda t: aggregate_parents().get(t, t))
    return (
        sels.groupby(["column", "task"], sort=False)["label"]
        .agg(lambda labels: " | ".join(dict.fromkeys(labels)))
        .reset_index()
    )


def compare(results: Results) -> Comparison:
    """Build the comparison from loaded results (see `evalharness.results.load`): only the rows
    `selected` for each task (its benchmark's splits and subsets) count."""
    problems = list(results.problems)
    main = results.main()
    if main.empty:
        empty = pd.DataFrame(columns=["column", "task", "task_type", "score"])
        return Comparison(
            pd.DataFrame(columns=["column", "model", "setting", *SETTING, "revision"]), empty, empty, problems
        )
    cells = _cell_table(main)
    main = main.assign(cell=cell_key(main))
    per_task = _per_task(main, results.selections)
    per_task = _collapse_aggregates(per_task, problems)
    seed_scores = per_task.merge(cells, on="cell")
    seed_scores["column"] = seed_scores["model_label"] + " · " + seed_scores["setting"]
    scores = (
        seed_scores.groupby(["column", "task", "task_type"], sort=False)["score"]
        .agg(score="mean", n_seeds="count")
        .reset_index()
    )
    columns = (
        seed_scores.drop_duplicates("column")[
            ["column", "model_label", "setting", *SETTING, "model", "revision"]
        ]
        .rename(columns={"model": "model_name", "model_label": "model"})
        .assign(_order=lambda d: d["shots"].map(_shots_order))
        .sort_values(["model", "_order", "strategy", "template", "setting"], na_position="last")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    problems += _missing_tasks(seed_scores, columns)
    cells["column"] = cells["model_label"] + " · " + cells["setting"]
    labels = _selection_labels(results.selections, cells)
    problems += _mixed_selections(labels, columns)
    return Comparison(columns, scores, seed_scores, problems, labels, our_metrics(results))


def _mixed_selections(labels: pd.DataFrame, columns: pd.DataFrame) -> list[str]:
    """Tasks whose columns are scored on different splits or subsets: their numbers are not like with like."""
    problems = []
    names = columns.set_index("column")
    for task, group in labels.groupby("task", sort=False):
        by_label = group.groupby("label", sort=False)["column"].agg(list)
        if len(by_label) > 1:
            parts = [
                f"{label} ({', '.join(names.loc[c, 'model'] + ' ' + names.loc[c, 'setting'] for c in cols)})"
                for label, cols in by_label.items()
            ]
            problems.append(
                f"{task} is scored on different splits/subsets across columns: {'; '.join(parts)}"
            )
    return problems


def task_labels(comp: Comparison, index: pd.Index | None = None) -> pd.Series:
    """Per task (rows of `task_table`, or `index`): the split/subset label its numbers use, e.g.
    "test · en"; columns that differ are joined with " | " (and reported as a problem)."""
    index = task_table(comp).index if index is None else index
    joined = comp.selection.groupby("task", sort=False)["label"].agg(
        lambda labels: " | ".join(dict.fromkeys(label for many in labels for label in many.split(" | ")))
    )
    return pd.Series([joined.get(t, "") for _, t in index], index=index, name="scored on")


def wide(comp: Comparison, long: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """Rows (task_type, task) in MTEB type order; columns MultiIndex (model, setting) in display order."""
    table = long.set_index(["task_type", "task", "column"])[value].unstack("column")
    order = sorted(table.index, key=lambda ix: (type_key(ix[0]), ix[1]))
    cols = [c for c in comp.columns["column"] if c in table.columns]
    table = table.reindex(index=pd.MultiIndex.from_tuples(order, names=["type", "task"]), columns=cols)
    table.columns = column_labels(comp, cols)
    return table


def column_labels(comp: Comparison, cols: Sequence[str]) -> pd.MultiIndex:
    """Column ids -> the (model, setting) header every wide table shows."""
    lookup = comp.columns.set_index("column")
    return pd.MultiIndex.from_tuples(
        [(lookup.loc[c, "model"], lookup.loc[c, "setting"]) for c in cols], names=["model", "setting"]
    )


def task_table(comp: Comparison) -> pd.DataFrame:
    """Per-task scores: rows grouped by type, columns model x setting."""
    return wide(comp, comp.scores)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """MTEB-style summary of a per-task table: each type's mean over its tasks, the mean over all tasks
    (paper "Avg.", mteb `Mean(Task)`), the mean of type means (mteb `Mean(TaskType)`) and the task count
    (means over fewer tasks than another column are not comparable with it). AIR-Bench rows (the mean
    over their datasets, the paper's Avg.) stay out of the overall means when MTEB tasks are present:
    the paper never averages the two benchmarks together."""
    if table.empty:
        return table
    by_type = table.groupby(level="type", sort=False).mean()
    types = table.index.get_level_values("type")
    mteb_only = types.map(benchmark_of_type) == "MTEB"
    overall = table[mteb_only] if mteb_only.any() else table
    out = pd.concat(
        [
            by_type,
            overall.mean().to_frame(MEAN_TASKS).T,
            overall.groupby(level="type", sort=False).mean().mean().to_frame(MEAN_TYPES).T,
            overall.notna().sum().to_frame(N_TASKS).T,
        ]
    )
    out.index.name = "type"
    return out


def baseline_columns(comp: Comparison, baseline: int = 0) -> tuple[dict[str, str], list[str]]:
    """Each column's baseline column: the same model's `baseline`-shot column (same template where
    there is one); and the models that have none."""
    base_cols: dict[str, str] = {}
    notes = []
    for model, group in comp.columns.groupby("model", sort=False):
        at_base = group[group["shots"].notna() & (group["shots"] == baseline)]
        if at_base.empty:
            notes.append(f"{model}: no {baseline}-shot results, so no Δ")
            continue
        for row in group.itertuples():
            if row.column in set(at_base["column"]) or pd.isna(row.shots):
                continue
            same = at_base[at_base["template"] == row.template]
            base_cols[row.column] = (same if not same.empty else at_base)["column"].iloc[0]
    return base_cols, notes


def deltas(comp: Comparison, baseline: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """Per-task Δ = score − the same model's `baseline`-shot score (same template where there is one).
    Returns a long frame (column, task, task_type, score, delta) without the baseline columns, and the
    models that have no baseline."""
    base_cols, notes = baseline_columns(comp, baseline)
    scores = comp.scores.set_index(["column", "task"])["score"]
    rows = comp.scores[comp.scores["column"].isin(base_cols)].copy()
    rows["baseline"] = [
        scores.get((base_cols[c], t), math.nan) for c, t in zip(rows["column"], rows["task"], strict=True)
    ]
    rows["delta"] = rows["score"] - rows["baseline"]
    return rows, notes


def borda_ranks(scores: Any) -> list[int]:
    """mteb's Borda rank (`_get_borda_rank`: per task, n − rank points with average ranks for ties; a
    missing task earns nothing; points ranked with method="min") of each row of `scores` (entries x
    tasks, NaN = missing)."""
    import polars as pl
    from mteb.benchmarks._create_table import _get_borda_rank

    values = pd.DataFrame(scores).to_numpy()
    tasks = [f"t{i}" for i in range(values.shape[1])]  # polars column names must be plain strings
    frame = pl.from_pandas(pd.DataFrame(values, columns=tasks)).fill_nan(None)
    return frame.select(_get_borda_rank(tasks)).to_series().to_list()


def borda(comp: Comparison) -> pd.DataFrame:
    """Borda rank of every model x setting as mteb's leaderboard computes it (`borda_ranks`), with the
    means it is shown next to."""
    table = task_table(comp)
    if table.empty:
        return pd.DataFrame()
    by_column = table.T
    ranks = borda_ranks(by_column)
    sums = summary(table).T
    out = pd.DataFrame(
        {
            "rank": ranks,
            "model": by_column.index.get_level_values("model"),
            "setting": by_column.index.get_level_values("setting"),
            MEAN_TASKS: sums[MEAN_TASKS].to_numpy(),
            MEAN_TYPES: sums[MEAN_TYPES].to_numpy(),
            N_TASKS: sums[N_TASKS].astype(int).to_numpy(),
        }
    )
    return out.sort_values(["rank", MEAN_TASKS], ascending=[True, False]).reset_index(drop=True)
