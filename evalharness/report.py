"""Leaderboard-style comparison of zero- vs few-shot runs: tables, deltas, Borda rank, published numbers.

The aggregation follows the paper (and mteb's MTEB(eng, v1)): a task's score is the mean of its main
score over the splits and subsets its benchmark scores (`evalharness.selection`, then mteb's
`TaskResult.get_score`); the sub-tasks of an mteb aggregate task
(CQADupstack's 12 forums) are averaged into that one task first; a type mean is the mean over its tasks;
the overall "mean (tasks)" is the mean over all tasks (the paper's "Avg. (56)") and "mean (types)" the
mean of the type means (mteb's `Mean(TaskType)`). Seeds of one setting are averaged per task. Borda
ranks use mteb's own `_get_borda_rank`, with every model x setting as one leaderboard entry.

Rendering (Markdown, HTML, PNG) is at the end; `write_report` is the one call the CLI makes.
"""

from __future__ import annotations

import base64
import functools
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evalharness import selection as sel
from evalharness.reference import mteb1_main_score, our_metrics, reference_scores
from evalharness.results import (
    AIRBENCH_TYPES,
    Results,
    aggregate_children,
    aggregate_parents,
    load,
    main_score_name,
    parse_airbench,
    task_type,
)

#: The paper's tables are MTEB(eng, v1) as mteb 1.x scored it.
PAPER_BENCHMARK = "MTEB(eng, v1)"

#: Paper Table 1's column order; other types follow alphabetically.
TYPE_ORDER = [
    "Retrieval", "Reranking", "Clustering", "PairClassification", "Classification", "STS", "Summarization",
    "AIR-Bench QA", "AIR-Bench Long-Doc",
]  # fmt: skip
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
    cells["cell"] = cells["model"] + "|" + cells["revision"] + "|" + cells["experiment"]
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


def _cell_key(frame: pd.DataFrame) -> pd.Series:
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
    keys = set(zip(_cell_key(gaps), gaps["task"], strict=True))
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
    sels = selections[selections["in_benchmark"]].assign(cell=lambda d: _cell_key(d))
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
    main = main.assign(cell=_cell_key(main))
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


def _type_key(task_type_: str) -> tuple[int, str]:
    return (TYPE_ORDER.index(task_type_) if task_type_ in TYPE_ORDER else len(TYPE_ORDER), task_type_)


def _wide(comp: Comparison, long: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """Rows (task_type, task) in MTEB type order; columns MultiIndex (model, setting) in display order."""
    table = long.set_index(["task_type", "task", "column"])[value].unstack("column")
    order = sorted(table.index, key=lambda ix: (_type_key(ix[0]), ix[1]))
    cols = [c for c in comp.columns["column"] if c in table.columns]
    table = table.reindex(index=pd.MultiIndex.from_tuples(order, names=["type", "task"]), columns=cols)
    lookup = comp.columns.set_index("column")
    table.columns = pd.MultiIndex.from_tuples(
        [(lookup.loc[c, "model"], lookup.loc[c, "setting"]) for c in cols], names=["model", "setting"]
    )
    return table


def task_table(comp: Comparison) -> pd.DataFrame:
    """Per-task scores: rows grouped by type, columns model x setting."""
    return _wide(comp, comp.scores)


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
    mteb_only = ~types.isin(list(AIRBENCH_TYPES.values()))
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


def deltas(comp: Comparison, baseline: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """Per-task Δ = score − the same model's `baseline`-shot score (same template where there is one).
    Returns a long frame (column, task, task_type, score, delta) without the baseline columns, and the
    models that have no baseline."""
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
    scores = comp.scores.set_index(["column", "task"])["score"]
    rows = comp.scores[comp.scores["column"].isin(base_cols)].copy()
    rows["baseline"] = [
        scores.get((base_cols[c], t), math.nan) for c, t in zip(rows["column"], rows["task"], strict=True)
    ]
    rows["delta"] = rows["score"] - rows["baseline"]
    return rows, notes


def borda(comp: Comparison) -> pd.DataFrame:
    """Borda rank of every model x setting as mteb's leaderboard computes it (`_get_borda_rank`: per
    task, n − rank points with average ranks for ties; a missing task earns nothing; points ranked with
    method="min"), with the means it is shown next to."""
    import polars as pl
    from mteb.benchmarks._create_table import _get_borda_rank

    table = task_table(comp)
    if table.empty:
        return pd.DataFrame()
    by_column = table.T
    tasks = [f"t{i}" for i in range(by_column.shape[1])]  # polars column names must be plain strings
    frame = pl.from_pandas(pd.DataFrame(by_column.to_numpy(), columns=tasks)).fill_nan(None)
    ranks = frame.select(_get_borda_rank(tasks)).to_series().to_list()
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


# ---------------------------------------------------------------------------------------------
# Published numbers (evalharness/data/published.yaml)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """The paper's numbers as long frames: `tasks` (Tables 8, 9), `categories` (Table 1), `airbench`
    (Tables 2, 3); each row model, condition (zero-shot / few-shot / published), data, table, and the
    task or category with its score. `in_domain` maps model -> task -> "full" | "public"."""

    tasks: pd.DataFrame
    categories: pd.DataFrame
    airbench: pd.DataFrame
    in_domain: dict[str, dict[str, str]]
    aliases: dict[str, str]

    def canonical(self, model: str) -> str:
        return self.aliases.get(model, model)

    def models(self) -> set[str]:
        return set(self.tasks["model"]) | set(self.categories["model"]) | set(self.airbench["model"])


@functools.cache
def load_published() -> Published:
    data = yaml.safe_load(files("evalharness.data").joinpath("published.yaml").read_text(encoding="utf-8"))
    tasks, cats, air = [], [], []
    for key, table in data["tables"].items():
        if table["kind"] == "mteb_tasks":
            for task, values in table["rows"].items():
                for (model, cond), value in zip(table["columns"], values, strict=True):
                    tasks.append((model, cond, table["data"], key, task, task_type(task), float(value)))
        else:
            target = cats if table["kind"] == "mteb_categories" else air
            for model, cond, train_data, *values in table["rows"]:
                for column, value in zip(table["columns"], values, strict=True):
                    target.append((model, cond, train_data, key, column, float(value)))
    in_domain = {
        model: {task: kind for kind, names in groups.items() for task in names}
        for model, groups in data["in_domain"].items()
    }
    aliases = {alias: name for name, names in data.get("aliases", {}).items() for alias in names}
    head = ["model", "condition", "data", "table"]
    return Published(
        pd.DataFrame(tasks, columns=[*head, "task", "task_type", "score"]),
        pd.DataFrame(cats, columns=[*head, "category", "score"]),
        pd.DataFrame(air, columns=[*head, "domain", "score"]),
        in_domain,
        aliases,
    )


def published_task_table(pub: Published, model: str, data: str | None = None) -> pd.DataFrame:
    """One model's per-dataset figures (Tables 8/9) as a per-task table: rows (type, task), columns
    conditions; `data` picks the training-data variant where a model has both."""
    rows = pub.tasks[pub.tasks["model"] == pub.canonical(model)]
    if data:
        rows = rows[rows["data"] == data]
    table = rows.pivot_table(index=["task_type", "task"], columns="condition", values="score")
    order = sorted(table.index, key=lambda ix: (_type_key(ix[0]), ix[1]))
    return table.reindex(pd.MultiIndex.from_tuples(order, names=["type", "task"]))


def _paper_condition(shots: Any, available: Sequence[str]) -> str | None:
    if "published" in available:
        return "published"
    if shots is None or pd.isna(shots):
        return None
    return "zero-shot" if int(shots) == 0 else "few-shot"


@dataclass
class ReferenceSection:
    model: str
    tasks: pd.DataFrame  # rows (type, task); in-domain flag, then per setting: ours, paper, Δ
    categories: pd.DataFrame  # rows types + mean; per setting: ours, paper (same tasks), Δ, paper Table 1
    airbench: pd.DataFrame  # rows (table, domain); per setting: ours, paper, Δ (or the paper's alone)


def _airbench_domains(scores: pd.Series) -> pd.DataFrame:
    """Our AIR-Bench English task scores -> the paper's layout: Table 2 (QA) per domain, Table 3
    (Long-Doc) per domain as the mean of its datasets; "Average" is the mean over datasets, as in the
    paper (Long-Doc Avg. (15) is not the mean of the four domain means)."""
    rows = []
    for (_, task), score in scores.items():
        air = parse_airbench(task)
        if air and air["language"] == "en":
            table = "table2" if air["task_type"] == "qa" else "table3"
            rows.append({"table": table, "domain": air["domain"], "score": score, "version": air["version"]})
    frame = pd.DataFrame(rows, columns=["table", "domain", "score", "version"])
    per_domain = frame.groupby(["table", "domain"], sort=False)["score"].mean()
    average = frame.groupby("table", sort=False)["score"].mean()
    average.index = pd.MultiIndex.from_tuples([(t, "Average") for t in average.index])
    return (
        pd.concat([per_domain, average])
        .to_frame("score")
        .assign(
            versions=lambda d: [
                ", ".join(sorted(set(frame.loc[frame.table == t, "version"]))) for t, _ in d.index
            ]
        )
    )


def _metric_note(ours: str | None, theirs: str | None, who: str) -> str:
    return f"ours {ours} vs {who} {theirs}" if ours and theirs and ours != theirs else ""


def _paper_notes(comp: Comparison, index: pd.Index, paper: pd.DataFrame) -> list[str]:
    """Per task row, where ours and the paper's number are not the same measurement: another main
    metric (mteb 2 Reranking `map_at_1000` vs 1.x `map`) or other splits/subsets than MTEB(eng, v1)'s."""
    labels = task_labels(comp, index)
    notes = []
    for (kind, task), label in zip(index, labels, strict=True):
        if (kind, task) not in paper.index or parse_airbench(task):
            notes.append("")
            continue
        parts = [
            _metric_note(comp.metrics.get(task) or main_score_name(task), mteb1_main_score(task), "paper")
        ]
        theirs = sel.choose(task, option=PAPER_BENCHMARK).label
        if label and label != theirs:
            parts.append(f"ours {label} vs paper {theirs}")
        notes.append("; ".join(p for p in parts if p))
    return notes


def reference(comp: Comparison, pub: Published | None = None) -> tuple[list[ReferenceSection], str]:
    """Our scores next to the paper's for every model the published data covers, with differences and
    in-domain flags. Our 0-shot settings are compared with the paper's zero-shot figures, every other
    shot count with its few-shot figures (and models without examples with their single figure).
    Returns the sections and a note on coverage."""
    pub = pub or load_published()
    known = pub.models()
    sections = []
    ours_all = task_table(comp)
    is_air = ours_all.index.get_level_values("task").map(lambda t: parse_airbench(t) is not None)
    versions: set[str] = set()
    for model, group in comp.columns.groupby("model", sort=False):
        name = pub.canonical(group["model_name"].iloc[0])
        if name not in known:
            continue
        paper = published_task_table(pub, name)
        ours = ours_all.xs(model, axis=1, level="model")
        mteb_ours, air_ours = ours[~is_air], ours[is_air]
        in_domain = pub.in_domain.get(name, {})
        task_parts: dict[tuple[str, str], pd.Series] = {}
        cat_parts: dict[tuple[str, str], pd.Series] = {}
        air_parts: dict[tuple[str, str], pd.Series] = {}
        air_rows = pub.airbench[pub.airbench["model"] == name]
        air_paper = air_rows.set_index(["table", "domain", "condition"])["score"].unstack("condition")
        air_paper = air_paper.reindex(
            list(dict.fromkeys(zip(air_rows["table"], air_rows["domain"], strict=True)))
        )
        air_paper.index.names = ["paper table", "domain"]
        air_paper = air_paper[[c for c in ("zero-shot", "few-shot", "published") if c in air_paper.columns]]
        for row in group.itertuples():
            ours_s = mteb_ours[row.setting]
            task_parts[(row.setting, "ours")] = ours_s
            cat_parts[(row.setting, "ours")] = summary(ours_s.to_frame()).iloc[:, 0]
            cond = _paper_condition(row.shots, list(paper.columns))
            if cond in paper.columns:
                paper_s = paper[cond].reindex(ours_s.index)
                task_parts[(row.setting, f"paper {cond}")] = paper_s
                task_parts[(row.setting, "Δ")] = ours_s - paper_s
                same = summary(paper_s.where(ours_s.notna()).to_frame()).iloc[:, 0]
                cat_parts[(row.setting, f"paper {cond} (same tasks)")] = same
                cat_parts[(row.setting, "Δ")] = (cat_parts[(row.setting, "ours")] - same).drop(N_TASKS)
                table1 = pub.categories[
                    (pub.categories["model"] == name) & (pub.categories["condition"] == cond)
                ]
                t1 = table1.set_index("category")["score"].rename({"Average": MEAN_TASKS})
                cat_parts[(row.setting, f"paper {cond} Table 1")] = t1.reindex(same.index.drop(N_TASKS))
            if not air_ours.empty and air_ours[row.setting].notna().any():
                domains = _airbench_domains(air_ours[row.setting])
                versions.update(v for vs in domains["versions"] for v in vs.split(", ") if v)
                air_parts[(row.setting, "ours")] = domains["score"]
                cond = _paper_condition(row.shots, list(air_paper.columns))
                if cond in air_paper.columns:
                    paper_air = air_paper[cond].reindex(domains.index)
                    air_parts[(row.setting, f"paper {cond}")] = paper_air
                    air_parts[(row.setting, "Δ")] = domains["score"] - paper_air
        tasks = pd.DataFrame(task_parts).dropna(how="all")
        if not tasks.empty:
            tasks.insert(0, ("", "in-domain"), [in_domain.get(t, "") for _, t in tasks.index])
            tasks.insert(0, ("", "note"), _paper_notes(comp, tasks.index, paper))
            tasks.insert(0, ("", "scored on"), task_labels(comp, tasks.index).to_numpy())
        cats = pd.DataFrame(cat_parts).drop(index=[MEAN_TYPES], errors="ignore").dropna(how="all")
        air = pd.DataFrame(air_parts) if air_parts else air_paper
        sections.append(ReferenceSection(model, tasks, cats, air))
    note = (
        f"Published figures (paper Tables 1, 2, 3, 8, 9) cover {len(known)} models; "
        f"{len(sections)} of the models here {'is' if len(sections) == 1 else 'are'} among them. "
        "Our 0-shot columns are compared with the paper's zero-shot figures, other shot counts with its "
        "few-shot figures (all examples of each task's fixed set). In-domain: `full` = in bge-en-icl's "
        "full training data, `public` = in the public E5 data (by dataset name)."
    )
    if versions - {"24.04"}:
        note += (
            f" AIR-Bench: ours on {', '.join(sorted(versions))} (locally scored dev split), the paper on "
            "24.04 test, so those differences compare different queries."
        )
    note += (
        f" The paper's figures are {PAPER_BENCHMARK} as mteb 1.x scored it; *note* marks rows where ours is "
        "another measurement: another main metric (mteb 2 scores Reranking by map_at_1000, 1.x by map) or "
        f"other splits/subsets than {PAPER_BENCHMARK}'s."
    )
    return sections, note


# ---------------------------------------------------------------------------------------------
# Published numbers for any model: a local copy of mteb's results repository (evalharness.reference)
# ---------------------------------------------------------------------------------------------


def _ref_note(row: Any) -> str:
    """What differs between our number and the reference's for one task, in words."""
    parts = []
    if (
        isinstance(row.ref_metric, str)
        and row.ref_metric
        and row.ours_metric
        and row.ref_metric != row.ours_metric
    ):
        if not pd.isna(row.ours_on_ref_metric):
            parts.append(f"both {row.ref_metric} (our main score is {row.ours_metric})")
        else:
            parts.append(_metric_note(row.ours_metric, row.ref_metric, "ref"))
    if row.note:
        parts.append(row.note)
    return "; ".join(parts)


def results_reference(
    comp: Comparison, results: Results, repo: str | Path
) -> tuple[list[ReferenceSection], str]:
    """Our columns next to the reference repository's numbers for the same model, per task and per type
    (means over the tasks both have), on the same splits and subsets, with the difference."""
    long, notes = reference_scores(repo, results, comp.columns, comp.seed_scores)
    ours_all = task_table(comp)
    sections = []
    for model, group in comp.columns.groupby("model", sort=False):
        mine = long[long["column"].isin(group["column"])]
        if mine.empty:
            continue
        ours = ours_all.xs(model, axis=1, level="model")
        index = ours.index[ours.index.get_level_values("task").isin(set(mine["task"]))]
        task_parts: dict[tuple[str, str], pd.Series] = {}
        cat_parts: dict[tuple[str, str], pd.Series] = {}
        task_notes: dict[str, list[str]] = {}
        for row in group.itertuples():
            rows = mine[mine["column"] == row.column].set_index("task")
            ref_s = pd.Series([rows["reference"].get(t, math.nan) for _, t in index], index=index)
            alt = pd.Series([rows["ours_on_ref_metric"].get(t, math.nan) for _, t in index], index=index)
            ours_s = alt.where(alt.notna(), ours[row.setting].reindex(index))
            for r in rows.reset_index().itertuples():
                task_notes.setdefault(r.task, []).append(_ref_note(r))
            task_parts[(row.setting, "ours")] = ours_s
            task_parts[(row.setting, "reference")] = ref_s
            task_parts[(row.setting, "Δ")] = ours_s - ref_s
            both = ours_s.notna() & ref_s.notna()
            mean_ours = summary(ours_s.where(both).to_frame()).iloc[:, 0]
            mean_ref = summary(ref_s.where(both).to_frame()).iloc[:, 0]
            cat_parts[(row.setting, "ours (same tasks)")] = mean_ours
            cat_parts[(row.setting, "reference (same tasks)")] = mean_ref.drop(N_TASKS)
            cat_parts[(row.setting, "Δ")] = (mean_ours - mean_ref).drop(N_TASKS)
        tasks = pd.DataFrame(task_parts)
        tasks.insert(
            0,
            ("", "note"),
            [" | ".join(dict.fromkeys(n for n in task_notes.get(t, []) if n)) for _, t in index],
        )
        tasks.insert(0, ("", "scored on"), task_labels(comp, index).to_numpy())
        order = next(iter(cat_parts.values())).index  # MTEB type order, then the means (not alphabetical)
        cats = (
            pd.DataFrame(cat_parts).reindex(order).drop(index=[MEAN_TYPES], errors="ignore").dropna(how="all")
        )
        sections.append(ReferenceSection(model, tasks, cats, pd.DataFrame()))
    note = (
        f"Reference: mteb results repository `{repo}` (models matched by name, `<org>__<model>`). Each task "
        "of the reference is scored on the same splits and subsets as our column; per-type means are over the "
        "tasks both have. *note* names a different main metric (mteb 1.x files score Reranking by map, mteb 2 "
        "by map_at_1000: where our files hold the reference's metric both are read on it, else the row is "
        "marked with both names) and what the reference lacks."
    )
    if notes:
        note += " " + " ".join(f"{n}." for n in notes)
    return sections, note


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "—"
    if isinstance(value, int | np.integer):
        return str(value)
    return f"{value:.2f}"


def _fmt_delta(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    if round(value, 2) == 0:
        return "0.00"
    return f"▲ +{value:.2f}" if value > 0 else f"▼ −{abs(value):.2f}"


def _is_delta(col: Any) -> bool:
    return (col[-1] if isinstance(col, tuple) else col) in ("Δ",) or str(col).startswith("Δ")


def _cell_text(value: Any, row: Any, is_delta: bool) -> str:
    if row == N_TASKS and not isinstance(value, str):  # the task count under the means
        return "—" if value is None or pd.isna(value) else str(int(value))
    return _fmt_delta(value) if is_delta and not isinstance(value, str) else _fmt(value)


def _flat(table: pd.DataFrame, delta: bool = False) -> pd.DataFrame:
    """Strings for Markdown: numbers to 2 decimals, Δ with its sign marked, counts as integers. Built
    column by column into a new frame, so a one-column table (a single model's zero-shot folder) works
    as well as a wide one."""
    names = [
        " ".join(str(p).split("/")[-1] for p in c if str(p)) if isinstance(c, tuple) else str(c)
        for c in table.columns
    ]
    data = {
        i: [
            _cell_text(v, row, delta or _is_delta(col))
            for v, row in zip(table[col].astype(object), table.index, strict=True)
        ]
        for i, col in enumerate(table.columns)
    }
    out = pd.DataFrame(data, index=table.index, dtype=object)
    out.columns = names
    return out.reset_index()


def _md(table: pd.DataFrame, delta: bool = False) -> str:
    if table is None or table.empty:
        return "_nothing to show_"
    flat = _flat(table, delta)
    n_index = table.index.nlevels
    text = [all(isinstance(v, str) for v in table[c]) for c in table.columns]  # notes, labels: left
    align = ["left"] * n_index + ["left" if t else "right" for t in text]
    return flat.to_markdown(index=False, disable_numparse=True, colalign=align)


def _html_table(table: pd.DataFrame, delta: bool = False, uid: str = "t") -> str:
    if table is None or table.empty:
        return "<p><em>nothing to show</em></p>"

    def cell_class(value: Any, is_d: bool) -> str:
        if not is_d or isinstance(value, str) or value is None or pd.isna(value) or round(value, 2) == 0:
            return ""
        return "color: #0a7d28; font-weight: 600" if value > 0 else "color: #b3261e; font-weight: 600"

    # a fixed id per table (pandas picks a random one), so the same results give the same page
    styler = table.style.set_uuid(uid).format(lambda v: _fmt(v) if not isinstance(v, str) else html.escape(v))
    for col in table.columns:
        is_d = delta or _is_delta(col)
        if is_d:
            styler = styler.format(_fmt_delta, subset=[col])
        styler = styler.map(lambda v, d=is_d: cell_class(v, d), subset=[col])
    if N_TASKS in table.index:
        styler = styler.format(
            lambda v: "" if pd.isna(v) else str(int(v)), subset=pd.IndexSlice[[N_TASKS], :]
        )
    return styler.to_html()


@dataclass
class Report:
    """Everything one report shows, so Markdown and HTML render the same content."""

    results_dir: str
    baseline: int
    results: Results
    comparison: Comparison
    tasks: pd.DataFrame
    summary: pd.DataFrame
    delta_tasks: pd.DataFrame
    delta_summary: pd.DataFrame
    borda: pd.DataFrame
    notes: list[str]
    reference: list[ReferenceSection] | None = None
    reference_note: str = ""
    plots: dict[str, Path] = field(default_factory=dict)
    task_labels: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    selection_notes: list[str] = field(default_factory=list)
    repo_reference: list[tuple[str, list[ReferenceSection], str]] = field(default_factory=list)


def references(reference: str | Sequence[str] | None) -> tuple[bool, list[Path]]:
    """`--reference` values -> (the paper's tables?, results-repository folders). "none" means nothing;
    any other value than "paper" must be an existing folder."""
    values = [reference] if isinstance(reference, str) else list(reference or [])
    values = [v for v in values if v and v != "none"]
    repos = [Path(v) for v in values if v != "paper"]
    for repo in repos:
        if not repo.is_dir():
            raise FileNotFoundError(
                f"--reference {repo}: not 'paper' and no such folder (expected a copy of mteb's results "
                "repository, e.g. `git clone https://github.com/embeddings-benchmark/results`)"
            )
    return "paper" in values, repos


def build_report(
    results_dir: str | Path,
    baseline: int = 0,
    reference_set: str | Sequence[str] | None = None,
    benchmark: str | None = None,
) -> Report:
    """Load, compare and tabulate one results folder. `reference_set`: "paper" and/or paths of mteb
    results repositories; `benchmark`: the mteb benchmark whose splits and subsets score cells that
    record none (see evalharness.selection)."""
    paper, repos = references(reference_set)
    if benchmark:
        sel.check_benchmark(benchmark)
    results = load(results_dir, benchmark)
    comp = compare(results)
    table = task_table(comp)
    delta_long, notes = deltas(comp, baseline)
    delta_tasks = _wide(comp, delta_long, "delta") if not delta_long.empty else pd.DataFrame()
    # Δ of the means over the same tasks: the mean of the per-task Δ
    delta_summary = summary(delta_tasks).drop(index=[N_TASKS]) if not delta_tasks.empty else pd.DataFrame()
    info, warnings = sel.notes(results.selections)
    refs, ref_note = reference(comp) if paper and not comp.empty else (None, "")
    repo_refs = (
        [(str(repo), *results_reference(comp, results, repo)) for repo in repos] if not comp.empty else []
    )
    return Report(
        str(results_dir),
        baseline,
        results,
        comp,
        table,
        summary(table),
        delta_tasks,
        delta_summary,
        borda(comp),
        [*warnings, *notes],
        refs,
        ref_note,
        task_labels=task_labels(comp, table.index) if not table.empty else pd.Series(dtype=object),
        selection_notes=info,
        repo_reference=repo_refs,
    )


_INTRO = (
    "Main score ×100 per task on the splits and subsets its benchmark scores (*scored on*; see *Splits and "
    "subsets*): mteb's `TaskResult.validate_and_filter_scores` with the benchmark's task, then the mean over "
    "those parts (`get_score`). Sub-tasks of an mteb aggregate task (CQADupstack's 12 forums) are averaged "
    "into one task first, as the paper does; seeds of one setting are averaged. *mean (tasks)* is the mean "
    "over tasks (the paper's Avg., mteb `Mean(Task)`), *mean (types)* the mean of the type means (mteb "
    "`Mean(TaskType)`)."
)
_PLOT_TITLES = {
    "score_vs_shots": "Score vs shots per task type",
    "delta_per_task": "Per-task Δ vs the baseline",
    "heatmap": "Task × setting heat map",
}


def _sections(rep: Report) -> list[tuple[str, str, Any, bool]]:
    """(level, title, table or text, is Δ) in report order."""
    out: list[tuple[str, str, Any, bool]] = [
        ("##", "Summary (MTEB-style)", rep.summary, False),
        (
            "##",
            "Borda rank (every model × setting as one leaderboard entry)",
            rep.borda.set_index(["rank", "model", "setting"]) if not rep.borda.empty else rep.borda,
            False,
        ),
        ("##", f"Δ vs {rep.baseline}-shot, per type (mean of per-task Δ)", rep.delta_summary, True),
        ("##", "Per task", _labelled(rep.tasks, rep.task_labels), False),
        ("##", f"Δ vs {rep.baseline}-shot, per task", rep.delta_tasks, True),
    ]
    if rep.reference is not None:
        out.append(("##", "Published numbers (paper)", rep.reference_note, False))
        for sec in rep.reference:
            out.append(
                ("###", f"{sec.model}: per task (in-domain = in the model's training data)", sec.tasks, False)
            )
            out.append(("###", f"{sec.model}: per type vs the paper", sec.categories, False))
            if not sec.airbench.empty:
                out.append(
                    (
                        "###",
                        f"{sec.model}: AIR-Bench (paper: 24.04 test)",
                        sec.airbench,
                        False,
                    )
                )
    for repo, sections, note in rep.repo_reference:
        out.append(("##", f"Published numbers (mteb results: {repo})", note, False))
        for sec in sections:
            out.append(("###", f"{sec.model}: per task vs the reference", sec.tasks, False))
            out.append(("###", f"{sec.model}: per type vs the reference (same tasks)", sec.categories, False))
    return out


def _labelled(table: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """The per-task table with its "scored on" column (split · subset) in front, for display only (the
    numeric table feeds the means and plots)."""
    if table.empty or labels.empty:
        return table
    out = table.copy()
    out.insert(0, ("", "scored on"), labels.reindex(table.index).fillna("").to_numpy())
    return out


def _problems(rep: Report) -> list[str]:
    return [*rep.comparison.problems, *rep.notes]


def render_markdown(rep: Report, image_dir: str = "plots") -> str:
    lines = [f"# evalharness report: `{rep.results_dir}`", "", _INTRO, ""]
    if rep.comparison.empty:
        lines += ["_no results found_", ""]
    problems = _problems(rep)
    if problems:
        lines += ["## Missing or partial results", "", *[f"- {p}" for p in problems], ""]
    if rep.selection_notes:
        lines += ["## Splits and subsets", "", *[f"- {n}" for n in rep.selection_notes], ""]
    if not rep.comparison.empty:
        for level, title, body, is_delta in _sections(rep):
            text = body if isinstance(body, str) else _md(body, is_delta)
            lines += [f"{level} {title}", "", text, ""]
        if rep.plots:
            lines += ["## Plots", ""]
            lines += [f"![{_PLOT_TITLES.get(k, k)}]({image_dir}/{p.name})" for k, p in rep.plots.items()]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th.row_heading { text-align: left; }
.problems li { color: #8a4b00; } img { max-width: 100%; border: 1px solid #e0e0e0; margin: 0.5rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def render_html(rep: Report) -> str:
    """One self-contained page: inline CSS, tables, and the plots as base64 data URIs (no links)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>evalharness report: {esc(rep.results_dir)}</title><style>{_CSS}</style></head><body>",
        f"<h1>evalharness report: <code>{esc(rep.results_dir)}</code></h1>",
        f"<p>{esc(_INTRO).replace('`', '')}</p>",
    ]
    if rep.comparison.empty:
        parts.append("<p><em>no results found</em></p>")
    problems = _problems(rep)
    if problems:
        parts.append("<h2>Missing or partial results</h2><ul class='problems'>")
        parts += [f"<li>{esc(p)}</li>" for p in problems]
        parts.append("</ul>")
    if rep.selection_notes:
        parts.append("<h2>Splits and subsets</h2><ul>")
        parts += [f"<li>{esc(n)}</li>" for n in rep.selection_notes]
        parts.append("</ul>")
    if not rep.comparison.empty:
        for n, (level, title, body, is_delta) in enumerate(_sections(rep)):
            tag = "h2" if level == "##" else "h3"
            parts.append(f"<{tag}>{esc(title)}</{tag}>")
            parts.append(
                f"<p>{esc(body)}</p>" if isinstance(body, str) else _html_table(body, is_delta, f"s{n}")
            )
        if rep.plots:
            parts.append("<h2>Plots</h2>")
            for key, path in rep.plots.items():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                title = esc(_PLOT_TITLES.get(key, key))
                parts.append(
                    f'<figure><img alt="{title}" src="data:image/png;base64,{data}"><figcaption>{title}</figcaption></figure>'
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    baseline: int = 0,
    reference: str | Sequence[str] | None = None,
    plots: bool = True,
    benchmark: str | None = None,
) -> tuple[Path, str]:
    """Write report.md, report.html, scores.csv (the main scores on the selected splits and subsets,
    tidy) and plots/*.png into `out_dir` (default: the results folder). `reference`: "paper" and/or
    folders of mteb's results repository; `benchmark`: see `build_report`. Returns the Markdown path and
    text."""
    from evalharness import plots as plotting

    rep = build_report(results_dir, baseline, reference, benchmark)
    out = Path(out_dir or results_dir)
    out.mkdir(parents=True, exist_ok=True)
    if plots and not rep.comparison.empty:
        rep.plots = plotting.save_all(rep, out / "plots")
    text = render_markdown(rep)
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    (out / "report.html").write_text(render_html(rep), encoding="utf-8")
    rep.results.main().drop(columns=["is_main", "selected"]).to_csv(out / "scores.csv", index=False)
    return path, text
