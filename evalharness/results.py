"""A results folder (ours or a plain mteb ResultCache) -> one tidy pandas DataFrame.

mteb's ResultCache layout is the source of truth: `results/<org>__<model>/<revision>/[experiments/<name>/]
<Task>.json`. Our run manifest next to the task files adds the cell settings (shots, strategy, seed,
template); folders without one (plain mteb runs) load with those columns empty.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from mteb.results import TaskResult

logger = logging.getLogger(__name__)

COLUMNS = [
    "model", "revision", "experiment", "shots", "strategy", "seed", "template", "task", "task_type",
    "split", "subset", "main_score",
]  # fmt: skip


def _task_type(name: str) -> str:
    import mteb

    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    try:
        return mteb.get_task(name).metadata.type
    except KeyError:
        return ""


def load_results(results_dir: str | Path) -> pd.DataFrame:
    """One row per (model, revision, experiment, task, split, subset) with the main score."""
    root = Path(results_dir) / "results"
    rows = []
    for task_file in sorted(root.glob("*/*/**/*.json")):
        if task_file.name in ("model_meta.json", "manifest.json") or task_file.name.startswith("."):
            continue
        rel = task_file.relative_to(root).parts
        model_dir, revision = rel[0], rel[1]
        experiment = rel[3] if len(rel) == 5 and rel[2] == "experiments" else ""
        manifest_path = task_file.parent / "manifest.json"
        cell = {}
        if manifest_path.exists():
            cell = json.loads(manifest_path.read_text(encoding="utf-8")).get("cell", {})
        try:
            result = TaskResult.from_disk(task_file)
        except Exception as err:  # a broken file is reported, not fatal for the other results
            logger.warning("skipping unreadable result %s: %s", task_file, err)
            continue
        meta_path = task_file.parent / "model_meta.json"
        model = (
            json.loads(meta_path.read_text())["name"] if meta_path.exists() else model_dir.replace("__", "/")
        )
        for split, entries in result.scores.items():
            for entry in entries:
                rows.append(
                    {
                        "model": model,
                        "revision": revision,
                        "experiment": experiment,
                        "shots": cell.get("shots"),
                        "strategy": cell.get("strategy"),
                        "seed": cell.get("seed"),
                        "template": cell.get("template"),
                        "task": result.task_name,
                        "task_type": _task_type(result.task_name),
                        "split": split,
                        "subset": entry.get("hf_subset", "default"),
                        "main_score": entry.get("main_score"),
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)
