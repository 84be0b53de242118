"""Which mteb tasks a run evaluates, and where their data comes from.

Names resolve through mteb's own registries (benchmarks and tasks), with close-match suggestions on a
typo. A task whose hub dataset was copied to `local_root/<org>__<name>` (or to a directory named in
a mapping file) is re-pointed there, so mteb's own loader reads it offline.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class TaskResolutionError(ValueError):
    """Unknown task or benchmark names, or a broken local-snapshot setup."""


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def known_benchmarks() -> list[str]:
    import mteb

    from evalharness.tasks.offline import BENCHMARK_NAME

    names = [BENCHMARK_NAME]
    for b in mteb.get_benchmarks():
        names.append(b.name)
        names.extend(getattr(b, "aliases", None) or [])
    return names


def benchmark_task_names(name: str) -> list[str]:
    import mteb

    from evalharness.tasks.offline import BENCHMARK_NAME, OFFLINE_MINI_TASKS

    if name == BENCHMARK_NAME:
        return list(OFFLINE_MINI_TASKS)
    try:
        bench = mteb.get_benchmark(name)
    except (KeyError, ValueError) as err:
        raise TaskResolutionError(
            f"unknown benchmark {name!r}.{_suggest(name, known_benchmarks())} "
            "List them with `python -c 'import mteb; print([b.name for b in mteb.get_benchmarks()])'`."
        ) from err
    return [t.metadata.name for t in bench.tasks]


def benchmark_task_filters(name: str | None) -> dict[str, dict[str, list[str]]]:
    """The splits and subsets a benchmark evaluates per task (e.g. only `en` of AmazonReviews, the
    `dev` split of MSMARCO); a bare `mteb.get_task` would evaluate every language."""
    import mteb

    from evalharness.tasks.offline import BENCHMARK_NAME

    if not name or name in (BENCHMARK_NAME, "custom"):
        return {}
    try:
        bench = mteb.get_benchmark(name)
    except (KeyError, ValueError):
        return {}
    return {
        t.metadata.name: {"eval_splits": list(t.eval_splits), "hf_subsets": list(t.hf_subsets)}
        for t in bench.tasks
    }


def check_task_names(names: Sequence[str]) -> list[str]:
    """One message per unknown task name (all of them, not just the first). AIR-Bench dataset names
    (`AIRBench_24.04_qa_wiki_en`, see evalharness/airbench) are task names too."""
    from mteb.get_tasks import _TASKS_REGISTRY

    from evalharness.airbench import is_airbench_task
    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    return [
        f"unknown task {n!r}.{_suggest(n, _known_names(n, _TASKS_REGISTRY))} "
        "List tasks with `evalharness tasks BENCHMARK`."
        for n in names
        if n not in _TASKS_REGISTRY and not is_airbench_task(n)
    ]


def _known_names(name: str, registry: Iterable[str]) -> list[str]:
    """Names to suggest from: AIR-Bench datasets for a name that looks like one, else mteb's tasks."""
    from evalharness.airbench.tasks import PREFIX, all_tasks

    return list(all_tasks()) if name.startswith(PREFIX) else list(registry)


def _task_type(name: str) -> str:
    """mteb's task type, or 'AIR-Bench QA' / 'AIR-Bench Long-Doc' for AIR-Bench datasets."""
    import mteb

    from evalharness.airbench import task_type_label

    return task_type_label(name) or mteb.get_task(name).metadata.type


def select_task_names(
    benchmark: str | None,
    tasks: Sequence[str] = (),
    task_types: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """Task names from a benchmark and/or an explicit list, filtered by type; order preserved."""
    names = list(tasks) if tasks else benchmark_task_names(benchmark or "")
    problems = check_task_names([*names, *exclude])
    if problems:
        raise TaskResolutionError("\n".join(problems))
    if task_types:
        names = [n for n in names if _task_type(n) in set(task_types)]
    names = [n for n in names if n not in set(exclude)]
    if not names:
        raise TaskResolutionError(
            f"no tasks left for benchmark={benchmark!r} tasks={list(tasks)} task_types={list(task_types)}; "
            "check the filters"
        )
    return names


def snapshot_dir(task: Any, local_root: str | Path | None, mapping: Mapping[str, str] | None) -> Path | None:
    """The local copy of a task's hub dataset, if the user provided one."""
    if mapping and task.metadata.name in mapping:
        path = Path(mapping[task.metadata.name]).expanduser()
        if not path.is_dir():
            raise TaskResolutionError(
                f"task {task.metadata.name}: mapped snapshot directory {path} does not exist; fix the mapping"
            )
        return path
    hub_path = (task.metadata.dataset or {}).get("path")
    if local_root is None or not hub_path:
        return None
    path = Path(local_root).expanduser() / hub_path.replace("/", "__")
    return path if path.is_dir() else None


def check_unique_ids(directory: Path) -> None:
    """Duplicate ids in a snapshot's JSONL files would silently drop or merge documents inside the
    datasets loader; refuse them with the file, the id and the line."""
    import json

    for path in sorted(directory.rglob("*.jsonl")):
        seen: dict[str, int] = {}
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise TaskResolutionError(
                        f"{path}:{line_no}: not valid JSON ({err.msg}); fix or remove the line"
                    ) from err
                key = row.get("_id", row.get("id")) if isinstance(row, dict) else None
                if key is None:
                    continue
                if str(key) in seen:
                    raise TaskResolutionError(
                        f"{path}:{line_no}: duplicate id {key!r} (first on line {seen[str(key)]}); ids must be unique"
                    )
                seen[str(key)] = line_no


def repoint(task: Any, directory: Path) -> Any:
    """Make mteb's default loader read `directory` instead of the hub.

    The override lives on the instance; mteb's `unload_data` reverts instance metadata after a run,
    so call this again before every evaluation of the same instance."""
    dataset = {**task.metadata.dataset, "path": str(directory)}
    task.metadata = task.metadata.model_copy(update={"dataset": dataset})
    return task


def load_tasks(
    names: Sequence[str],
    *,
    local_root: str | Path | None = None,
    mapping: Mapping[str, str] | None = None,
    filters: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    languages: Sequence[str] | None = None,
) -> list[Any]:
    """Fresh task instances (data not loaded), narrowed to the benchmark's splits/subsets or to
    `languages`, and re-pointed at local snapshots where present."""
    import mteb

    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    if local_root is not None and not Path(local_root).expanduser().is_dir():
        raise TaskResolutionError(f"tasks.local_root={local_root} is not a directory; create it or unset it")
    out = []
    for name in names:
        task = mteb.get_task(name, languages=languages or None, **(filters or {}).get(name, {}))
        directory = snapshot_dir(task, local_root, mapping)
        if directory is not None:
            logger.info("%s: reading the local snapshot %s", name, directory)
            check_unique_ids(directory)
            repoint(task, directory)
        out.append(task)
    return out
