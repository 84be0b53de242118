"""Published numbers next to ours: the paper's tables (evalharness/data/published.yaml) and a local copy
of mteb's results repository (read by evalharness.reference).

Kept apart from the comparison itself because it is all about lining our frames up with someone else's:
the paper's conditions (zero-shot / few-shot / published) per setting, its AIR-Bench domain layout
(Tables 2 and 3), in-domain flags, and notes where ours is another measurement (main metric, splits).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalharness import selection as sel
from evalharness.comparison import (
    MEAN_TASKS,
    MEAN_TYPES,
    N_TASKS,
    Comparison,
    summary,
    task_labels,
    task_table,
)
from evalharness.reference import mteb1_main_score, reference_scores
from evalharness.results import Results
from evalharness.taskinfo import main_score_name, parse_airbench, task_type, type_key

#: The paper's tables are MTEB(eng, v1) as mteb 1.x scored it.
PAPER_BENCHMARK = "MTEB(eng, v1)"


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
    order = sorted(table.index, key=lambda ix: (type_key(ix[0]), ix[1]))
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
