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

from evalharness.errors import EvalharnessError

logger = logging.getLogger(__name__)


class TaskResolutionError(EvalharnessError, ValueError):
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


def task_filters(
    benchmark: str | None,
    subsets: Mapping[str, Sequence[str]] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """Per task, the splits and subsets to score: the benchmark's, replaced task by task by the user's
    `benchmark.subsets` / `benchmark.splits` (so `benchmark=custom benchmark.subsets={STS17: [en-en]}`
    scores STS17 as MTEB(eng, v1) does)."""
    filters = {name: dict(f) for name, f in benchmark_task_filters(benchmark).items()}
    for name, chosen in (subsets or {}).items():
        filters.setdefault(name, {})["hf_subsets"] = list(chosen)
    for name, chosen in (splits or {}).items():
        filters.setdefault(name, {})["eval_splits"] = list(chosen)
    return filters


def check_selection(
    names: Sequence[str],
    subsets: Mapping[str, Sequence[str]] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """One message per `benchmark.subsets` / `benchmark.splits` entry that names a task outside the run
    or a subset/split the task does not have (mteb would fail on it deep inside data loading)."""
    import mteb

    problems = []
    for key, chosen_by_task, attr in (("subsets", subsets, "hf_subsets"), ("splits", splits, "eval_splits")):
        for name, chosen in (chosen_by_task or {}).items():
            if name not in names:
                problems.append(
                    f"benchmark.{key} names {name!r}, which is not a task of this run; "
                    f"its tasks: {', '.join(names)}"
                )
                continue
            known = list(getattr(mteb.get_task(name).metadata, attr))
            unknown = [c for c in chosen if c not in known]
            if unknown or not chosen:
                problems.append(
                    f"benchmark.{key}: {name} has no {attr.replace('hf_', '').replace('eval_', '')} "
                    f"{', '.join(map(repr, unknown)) or '(empty list)'}; it has {', '.join(known)}"
                )
    return problems


def selection(task: Any) -> dict[str, list[str]]:
    """What a task instance will be scored on; part of every result's identity (a re-run with another
    selection must not reuse the earlier result)."""
    return {"splits": list(task.eval_splits), "subsets": list(task.hf_subsets)}


def reads_hub_data(task: Any) -> bool:
    """Whether mteb's own loader fetches the task's dataset from the hub: true for mteb's tasks unless
    re-pointed at a local folder, false for tasks with their own loader (offline-mini, tests)."""
    loader_module = getattr(type(task).load_data, "__module__", "") or ""
    path = (task.metadata.dataset or {}).get("path")
    return loader_module.startswith("mteb.") and bool(path) and not Path(str(path)).is_dir()


def hub_is_offline() -> bool:
    from datasets import config as datasets_config
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE or datasets_config.HF_HUB_OFFLINE)


def snapshot_hint(task: Any, local_root: str | Path | None) -> str:
    """The exact commands that make a hub task readable offline."""
    dataset = task.metadata.dataset or {}
    repo, revision = dataset.get("path"), dataset.get("revision")
    folder = f"{local_root or 'DIR'}/{str(repo).replace('/', '__')}"
    rev = f", revision={revision!r}" if revision else ""
    return (
        f"on a machine with hub access run `huggingface_hub.snapshot_download({repo!r}, repo_type='dataset'"
        f"{rev}, local_dir={folder!r})` and pass tasks.local_root={local_root or 'DIR'} "
        f"(or tasks.mapping={{{task.metadata.name}: {folder}}}); or run with hub access "
        "(unset HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) to download it into the datasets cache"
    )


def check_hub_data(task: Any) -> str | None:
    """With the hub out of reach, a task whose data is neither local nor in the datasets cache would
    fail inside mteb with a 40-line ConnectionError after the model loaded; say so now."""
    if not reads_hub_data(task) or not hub_is_offline():
        return None
    import datasets

    dataset = task.metadata.dataset
    try:
        datasets.load_dataset_builder(dataset["path"], revision=dataset.get("revision"))
    except ConnectionError:
        return (
            f"task {task.metadata.name}: its dataset {dataset['path']} (revision {dataset.get('revision')}) "
            "is not on this machine and the hub is offline; " + snapshot_hint(task, None)
        )
    except Exception:  # reachable from the cache (a missing config name etc. is not our concern)
        return None
    return None


def snapshot_subsets(task: Any, directory: Path) -> list[str] | None:
    """The subsets a local snapshot of a multilingual task holds: its configs, or for mteb's
    "fast loading" tasks (one default config, a `lang` column) the languages in it. None: unknown."""
    import datasets

    try:
        if getattr(task, "fast_loading", False):
            data = datasets.load_dataset(str(directory))
            return sorted({lang for split in data.values() for lang in split.unique("lang")})
        return datasets.get_dataset_config_names(str(directory))
    except Exception as err:  # unreadable layouts are left to mteb's loader, which names the file
        logger.debug("could not list the subsets of %s: %s", directory, err)
        return None


def check_snapshot_subsets(task: Any, directory: Path) -> str | None:
    """A snapshot that lacks subsets the run scores fails here, before any model loads, with what it
    holds and how to select it (mteb would stop deep inside with `KeyError: 'ko-ko'`)."""
    if not task.metadata.is_multilingual:
        return None
    held = snapshot_subsets(task, directory)
    if held is None:
        return None
    missing = [s for s in task.hf_subsets if s not in held]
    if not missing:
        return None
    keep = [s for s in task.hf_subsets if s in held]
    choice = f"benchmark.subsets={{{task.metadata.name}: [{', '.join(keep or held)}]}}"
    return (
        f"task {task.metadata.name}: the snapshot {directory} holds subsets {', '.join(held) or '(none)'} "
        f"but this run scores {', '.join(task.hf_subsets)} (missing {', '.join(missing)}); select what it "
        f"holds with {choice}, or copy the missing subsets into the snapshot"
    )


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
    if local_root is None or not hub_path or not reads_hub_data(task):
        return None
    path = Path(local_root).expanduser() / hub_path.replace("/", "__")
    if not path.is_dir():
        raise TaskResolutionError(
            f"task {task.metadata.name}: tasks.local_root={local_root} has no folder {path.name}; "
            + snapshot_hint(task, local_root)
        )
    return path


def check_unique_ids(directory: Path) -> None:
    """Duplicate ids in a snapshot's JSONL files would silently drop or merge documents inside the
    datasets loader; refuse them with the file, the id and the line."""
    from evalharness.jsonl import numbered_json_lines

    for path in sorted(directory.rglob("*.jsonl")):
        seen: dict[str, int] = {}
        with path.open(encoding="utf-8") as f:
            lines = numbered_json_lines(
                f,
                lambda n, err, path=path: TaskResolutionError(
                    f"{path}:{n}: not valid JSON ({err.msg}); fix or remove the line"
                ),
            )
            for line_no, row in lines:
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
    check_data: bool = False,
) -> list[Any]:
    """Fresh task instances (data not loaded), narrowed to the benchmark's splits/subsets (see
    `task_filters`) or to `languages`, and re-pointed at local snapshots where present.

    `check_data` also checks that every task's data can be read (a local snapshot holding the subsets
    scored, or hub data reachable), raising one error that lists every task that cannot."""
    import mteb

    from evalharness.tasks.offline import register_offline_tasks

    register_offline_tasks()
    if local_root is not None and not Path(local_root).expanduser().is_dir():
        raise TaskResolutionError(f"tasks.local_root={local_root} is not a directory; create it or unset it")
    out, problems = [], []
    for name in names:
        task = mteb.get_task(name, languages=languages or None, **(filters or {}).get(name, {}))
        try:
            directory = snapshot_dir(task, local_root, mapping)
        except TaskResolutionError as err:
            problems.append(str(err))
            continue
        if directory is not None:
            logger.info("%s: reading the local snapshot %s", name, directory)
            problem = None
            if check_data:  # reads every file once, at validation; execution trusts it
                check_unique_ids(directory)
                problem = check_snapshot_subsets(task, directory)
            repoint(task, directory)
        else:
            problem = check_hub_data(task) if check_data else None
        if problem:
            problems.append(problem)
        out.append(task)
    if problems:
        raise TaskResolutionError("\n".join(problems))
    return out
