"""A results folder (ours or a plain mteb ResultCache) -> one tidy pandas DataFrame, plus what is missing.

mteb's ResultCache layout is the source of truth: `results/<org>__<model>/<revision>/[experiments/<name>/]
<Task>.json`, read with mteb's own `TaskResult.from_disk` (which also upgrades old mteb formats). Our run
manifest next to the task files adds the cell settings (shots, strategy, seed, template, set) and the
benchmark; without one (plain mteb runs, or a manifest lost) the settings are parsed back from mteb's
experiment folder name (`examples_train__seed_0__shots_3__template_bge-icl`), and a folder without
experiments loads with those columns empty.

Every row is kept (every metric, split and subset), and `selected` marks the rows a task's score is made
of: the splits and subsets its benchmark scores (evalharness.selection: the manifest's record, the run's
benchmark, the report's `--benchmark`, else the task's mteb defaults). `Results.selections` says, per cell
and task, which selection that was and what the file lacked.

A results folder is often incomplete (a sweep still running, a crashed cell, a task that never ran), so
nothing here raises on a bad or missing file: every problem becomes one line in `Results.problems`, and
the frame holds what exists.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mteb.results import TaskResult

from evalharness import cells, per_item
from evalharness import manifest as manifest_schema
from evalharness import selection as sel
from evalharness.selection import SELECTION_COLUMNS
from evalharness.taskinfo import main_score_name, task_type
from evalharness.taskinfo import parse_airbench as parse_airbench  # part of this module's API

logger = logging.getLogger(__name__)

COLUMNS = [
    "model", "revision", "experiment", "shots", "strategy", "seed", "template", "set_id", "benchmark",
    "task", "task_type", "split", "subset", "metric", "score", "is_main", "selected",
]  # fmt: skip
#: What identifies one evaluated cell (one experiment folder) of one model.
CELL_COLUMNS = ["model", "revision", "experiment", "shots", "strategy", "seed", "template", "set_id"]
_NOT_TASK_FILES = {"model_meta.json", "manifest.json"}
ITEM_FRAME_COLUMNS = [*CELL_COLUMNS, *per_item.ITEM_COLUMNS]
MISSING_COLUMNS = [*CELL_COLUMNS, "task", "reason"]
EXPERIMENT_FRAME_COLUMNS = [*CELL_COLUMNS, *per_item.EXPERIMENT_COLUMNS]
#: per cell and task, its kept rankings file (evalharness.rankings) and the examples its cell used
RANKING_COLUMNS = [*CELL_COLUMNS, "task", "file", "examples"]


@dataclass
class Results:
    """Every metric of every result file in a folder, the problems met while reading it, and per cell
    and task the split/subset selection its score uses (evalharness.selection.SELECTION_COLUMNS)."""

    scores: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    selections: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SELECTION_COLUMNS))
    #: what each task's main score is made of (evalharness.per_item): one row per query / pair /
    #: experiment of the selected parts, for the report's confidence intervals and tests
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ITEM_FRAME_COLUMNS))
    #: per cell and task without per-item values, why (the report says so instead of a CI)
    items_missing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MISSING_COLUMNS))
    rankings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RANKING_COLUMNS))
    #: classification by test item: each experiment's score per part (how much the train sample moves it)
    experiments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXPERIMENT_FRAME_COLUMNS))

    def main(self, selected_only: bool = True) -> pd.DataFrame:
        """The rows of each task's main score (the number leaderboards rank by), by default only on the
        splits and subsets the task's benchmark scores."""
        keep = self.scores["is_main"] & (self.scores["selected"] | (not selected_only))
        return self.scores[keep].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Reading a folder
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        problems.append(f"unreadable {path}: {err}")
        return None


def _read_manifest(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The cell's manifest read through its typed contract (evalharness.manifest), as the dict it was
    written as; None (and a problem) for one that is unreadable or breaks the contract."""
    if not path.exists():
        return None
    raw = _read_json(path, problems)
    if raw is None:
        return None
    try:
        parsed = manifest_schema.parse(raw, path)
    except manifest_schema.ManifestError as err:
        problems.append(f"unusable manifest: {err}")
        return None
    return {**raw, "tasks": {name: entry.as_dict() for name, entry in parsed.tasks.items()}}


def cell_from_experiment(name: str) -> dict[str, Any]:
    """Cell settings from an mteb experiment folder name (evalharness.cells reads what plan wrote)."""
    return cells.settings_from_experiment(name)


def _cell_folders(base: Path) -> Iterator[tuple[Path, str, str]]:
    """(folder, model folder name, experiment name) for each folder that holds task result files."""
    for model_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for rev_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield rev_dir, model_dir.name, ""
            exp_root = rev_dir / "experiments"
            if exp_root.is_dir():
                for exp in sorted(p for p in exp_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                    yield exp, model_dir.name, exp.name


def _flatten(entry: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric metrics of one score entry; nested dicts become dotted names, lists are skipped."""
    for key, value in entry.items():
        if key in ("main_score", "hf_subset", "languages", "mteb_version"):
            continue
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def _rows(
    result: TaskResult,
    base: dict[str, Any],
    problems: list[str],
    where: str,
    main_name: str | None,
    chosen: set[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Tidy rows of one result file; `chosen` holds the (split, subset) parts its score is made of."""
    main_name = main_name or main_score_name(result.task_name) or "main_score"
    rows = []
    for split, entries in result.scores.items():
        for entry in entries:
            subset = entry.get("hf_subset", "default")
            selected = (split, subset) in chosen
            main = entry.get("main_score")
            if main is None or (isinstance(main, float) and math.isnan(main)):
                if selected:
                    problems.append(f"{where}: {result.task_name} {split}/{subset} has no main score")
                main = math.nan
            common = {**base, "task": result.task_name, "task_type": task_type(result.task_name)}
            common.update(split=split, subset=subset, selected=selected)
            metrics = dict(_flatten(entry))
            metrics[main_name] = float(main)  # `main_score` is authoritative for the main metric
            rows += [
                {**common, "metric": m, "score": v, "is_main": m == main_name} for m, v in metrics.items()
            ]
    return rows


def _select(
    result: TaskResult,
    entry: Mapping[str, Any],
    bench: Mapping[str, Any] | None,
    option: str | None,
    where: str,
    problems: list[str],
) -> tuple[sel.Selection, set[tuple[str, str]], list[tuple[str, str]]]:
    """The task's selection (evalharness.selection.choose), the file's parts it keeps and the selected
    parts the file lacks; a selected part that is missing is a problem (the task gets no score)."""
    try:
        selection = sel.choose(result.task_name, entry, bench, option)
        chosen, missing = sel.apply(result, selection)
    except Exception as err:  # an odd file or task: score what the file holds, and say so
        problems.append(
            f"{where}: {result.task_name}: no split/subset selection ({type(err).__name__}: {err}); "
            "every split and subset in the file is used"
        )
        selection = sel.Selection(None, None, sel.EVERYTHING)
        chosen, missing = sel.apply(result, selection)
    if missing:
        parts = ", ".join(f"{split}/{subset}" for split, subset in missing)
        problems.append(
            f"{where}: {result.task_name} has no score for {parts} ({selection.label} scored, "
            f"{_source_words(selection)}); it is left out of the means"
        )
    return selection, chosen, missing


def _source_words(selection: sel.Selection) -> str:
    return {
        sel.MANIFEST: "as the run manifest records",
        sel.RUN_BENCHMARK: f"as benchmark {selection.benchmark} of the run does",
        sel.OPTION: f"as --benchmark {selection.benchmark} does",
        sel.DEFAULTS: "the task's mteb defaults",
    }.get(selection.source, "")


def load(results_dir: str | Path, benchmark: str | None = None) -> Results:
    """Read every task result under `results_dir` (the folder holding `results/`, or `results/` itself).

    `benchmark` (an mteb benchmark name) scores cells whose manifest names no benchmark (plain mteb
    folders, published result files) on that benchmark's splits and subsets, leaving out its other
    tasks. Raises FileNotFoundError only when the folder does not exist (and TaskResolutionError for a
    `benchmark` mteb does not know); anything else that is wrong (an unreadable file, a task a manifest
    lists as unfinished, a score that is NaN, a selected split the file lacks) is a line in `problems`.
    """
    if benchmark:
        sel.check_benchmark(benchmark)
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"results folder {root} does not exist (expected {root}/results/<org>__<model>/<revision>/...)"
        )
    base = root / "results" if (root / "results").is_dir() else root
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    selections: list[dict[str, Any]] = []
    items: list[pd.DataFrame] = []
    experiments: list[pd.DataFrame] = []
    missing_items: list[dict[str, Any]] = []
    ranked: list[dict[str, Any]] = []
    for folder, model_dir, experiment in _cell_folders(base):
        task_files = sorted(
            f for f in folder.glob("*.json") if f.name not in _NOT_TASK_FILES and not f.name.startswith(".")
        )
        manifest = _read_manifest(folder / manifest_schema.FILE, problems)
        if not task_files and not manifest:
            continue
        meta = (
            _read_json(folder / "model_meta.json", problems)
            if (folder / "model_meta.json").exists()
            else None
        )
        model = (meta or {}).get("name") or (manifest or {}).get("model") or model_dir.replace("__", "/", 1)
        cell = {**cell_from_experiment(experiment), **(manifest or {}).get("cell", {})}
        bench_cfg = ((manifest or {}).get("config") or {}).get("benchmark") or None
        bench_name = (bench_cfg or {}).get("name") or ""
        base_row = {
            "model": model,
            "revision": folder.relative_to(base).parts[1],
            "experiment": experiment,
            **{k: cell.get(k) for k in ("shots", "strategy", "seed", "template", "set_id")},
            "benchmark": bench_name or (benchmark or ""),
        }
        where = f"{model} {experiment or '(no experiment)'}"
        for name, entry in ((manifest or {}).get("tasks") or {}).items():
            if entry.get("status") != "done":
                problems.append(f"{where}: {name} did not finish (status {entry.get('status')!r})")
            elif not (folder / f"{name}.json").exists():
                problems.append(f"{where}: {name} is done in the manifest but its result file is missing")
        for task_file in task_files:
            try:
                result = TaskResult.from_disk(task_file)
            except Exception as err:  # any broken file is reported; the others still load
                problems.append(f"unreadable result {task_file}: {type(err).__name__}: {err}")
                continue
            entry = ((manifest or {}).get("tasks") or {}).get(result.task_name) or {}
            selection, chosen, missing = _select(result, entry, bench_cfg, benchmark, where, problems)
            selections.append(sel.record(base_row, result.task_name, selection, missing))
            rows += _rows(result, base_row, problems, where, entry.get("main_score_name"), chosen)
            cell_key = {k: base_row[k] for k in CELL_COLUMNS}
            found, reason = _items(folder, result.task_name, entry, cell_key, chosen, where, problems)
            if entry.get("rankings") and (folder / entry["rankings"]).exists():
                ranked.append({**cell_key, "task": result.task_name, "file": str(folder / entry["rankings"]),
                               "examples": entry.get("examples") or []})  # fmt: skip
            if found is not None:
                items.append(found[0])
                experiments.append(found[1])
            else:
                missing_items.append({**cell_key, "task": result.task_name, "reason": reason})
    if not rows:
        problems.append(f"no result files under {base}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["shots"] = frame["shots"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    frame["is_main"] = frame["is_main"].astype(bool)
    frame["selected"] = frame["selected"].astype(bool)
    for problem in problems:
        logger.warning("%s", problem)
    item_frame = pd.concat(items, ignore_index=True) if items else pd.DataFrame(columns=ITEM_FRAME_COLUMNS)
    return Results(
        frame,
        problems,
        pd.DataFrame(selections, columns=SELECTION_COLUMNS),
        item_frame,
        pd.DataFrame(missing_items, columns=MISSING_COLUMNS),
        pd.DataFrame(ranked, columns=RANKING_COLUMNS),
        pd.concat([e for e in experiments if len(e)], ignore_index=True)
        if any(len(e) for e in experiments)
        else pd.DataFrame(columns=EXPERIMENT_FRAME_COLUMNS),
    )


def _items(
    folder: Path,
    task: str,
    entry: Mapping[str, Any],
    cell_key: dict[str, Any],
    chosen: set[tuple[str, str]],
    where: str,
    problems: list[str],
) -> tuple[tuple[pd.DataFrame, pd.DataFrame] | None, str]:
    """The task's per-item rows and per-experiment rows (per_item.experiment_frame), or None and why
    there are none."""
    file = folder / entry["per_item"] if entry.get("per_item") else per_item.path(folder, task)
    if not file.exists():
        return None, entry.get("per_item_missing") or per_item.NO_FILE
    try:
        data = per_item.read(file)
        return (per_item.frame(data, cell_key, chosen), per_item.experiment_frame(data, cell_key, chosen)), ""
    except (OSError, ValueError, KeyError, TypeError) as err:
        problems.append(f"{where}: unreadable per-item file {file}: {type(err).__name__}: {err}")
        return None, f"unreadable per-item file ({type(err).__name__})"


def load_results(results_dir: str | Path, benchmark: str | None = None) -> pd.DataFrame:
    """The tidy frame alone (every metric, split and subset; `is_main` marks the main score, `selected`
    the parts the benchmark scores)."""
    return load(results_dir, benchmark).scores
