"""The results folder on disk: atomic writes, mteb result files, cell manifests, and what a result
file holds.

Every write here appears all at once (staged, then renamed) so that a killed run never leaves a
truncated file that a re-run would trust; readers treat anything unreadable as not done."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mteb
from filelock import FileLock

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"

Pairs = set[tuple[str, str]]  # (split, subset)


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class AtomicResultCache(mteb.ResultCache):
    """mteb's ResultCache, but a task's files appear all at once (staged, then renamed), so a killed
    run never leaves a truncated result that a re-run would trust."""

    def save_to_cache(self, task_result, model_name, model_revision=None, *, encode_kwargs=None) -> None:
        final = self.get_task_result_path(
            task_name=task_result.task_name, model_name=model_name, model_revision=model_revision
        )
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            dir=final.parent, prefix=f".staging-{task_result.task_name}-"
        ) as tmp:
            staging = mteb.ResultCache(tmp)
            staging.save_to_cache(task_result, model_name, model_revision, encode_kwargs=encode_kwargs)
            staged = staging.get_task_result_path(
                task_name=task_result.task_name, model_name=model_name, model_revision=model_revision
            )
            for f in sorted(staged.parent.iterdir(), key=lambda p: p == staged):  # the result goes last
                if f.name == "run_settings.jsonl":
                    _replace_run_settings(final.parent / f.name, f, task_result.task_name)
                elif f.is_file():
                    os.replace(f, final.parent / f.name)


def _replace_run_settings(path: Path, staged: Path, task_name: str) -> None:
    """mteb appends a task's settings on every save; a task that is redone replaces its lines, so the
    file says how the results beside it were made, once, and does not grow with every re-run."""
    kept = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("task") == task_name:
                    continue
            except (json.JSONDecodeError, AttributeError):
                pass
            kept.append(line)
    new = staged.read_text(encoding="utf-8").splitlines()
    text = "".join(f"{line}\n" for line in [*kept, *new] if line.strip())
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_result(path: Path, *, warn: bool = True) -> mteb.TaskResult | None:
    """A finished task's result is trusted only if mteb can read it back; anything else is redone."""
    if not path.exists():
        return None
    try:
        return mteb.TaskResult.from_disk(path)
    except Exception as err:  # truncated JSON, wrong schema, ...: report and redo, never trust
        if warn:
            logger.warning(
                "%s is corrupt (%s: %s); the task will be run again", path, type(err).__name__, err
            )
        return None


def read_manifest(exp_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((exp_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def remove_leftovers(exp_dir: Path, pattern: str) -> None:
    """Staging folders and temp files of a killed process (callers hold the lock that guards them)."""
    import shutil

    for p in exp_dir.glob(pattern):
        logger.warning("removing %s left by an interrupted run", p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def merge_manifest(
    exp_dir: Path, manifest: dict[str, Any], name: str, entry: dict[str, Any], keep_disk: bool = True
) -> dict[str, Any]:
    """Add one task's entry to the manifest on disk, keeping entries other processes wrote meanwhile."""
    with FileLock(str(exp_dir / ".manifest.lock")):
        remove_leftovers(exp_dir, f"{MANIFEST}.*.tmp")
        on_disk = read_manifest(exp_dir) if keep_disk else {}
        tasks = {**on_disk.get("tasks", {}), **manifest.get("tasks", {}), name: entry}
        merged = {**manifest, "tasks": tasks}
        write_json_atomic(exp_dir / MANIFEST, merged)
    return merged


# ---------------------------------------------------------------------------------------------
# What a result file holds, against what a run scores
# ---------------------------------------------------------------------------------------------


def scored_pairs(result: mteb.TaskResult) -> Pairs:
    """The (split, subset) pairs a result file holds scores for."""
    return {
        (split, e.get("hf_subset", "default")) for split, entries in result.scores.items() for e in entries
    }


def selection_pairs(sel: Mapping[str, Sequence[str]]) -> Pairs:
    return {(sp, su) for sp in sel.get("splits", []) for su in sel.get("subsets", [])}


def _splits_and_subsets(pairs: Pairs) -> tuple[str, str]:
    return ", ".join(sorted({sp for sp, _ in pairs})), ", ".join(sorted({su for _, su in pairs}))


def describe(pairs: Pairs) -> str:
    splits, subsets = _splits_and_subsets(pairs)
    return f"splits {splits} x subsets {subsets}"


def selector(name: str, pairs: Pairs) -> str:
    splits, subsets = _splits_and_subsets(pairs)
    return f"benchmark.subsets={{{name}: [{subsets}]}} benchmark.splits={{{name}: [{splits}]}}"


class ResultLayout(mteb.ResultCache):
    """mteb's folder rules (where a model's, an experiment's, a task's result goes) without creating
    the folder, which mteb's ResultCache does on construction: validation must write nothing."""

    def __init__(self, cache_path: str | Path) -> None:  # no super().__init__: it would mkdir
        self.cache_path = Path(cache_path)
