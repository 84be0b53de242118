"""Validate once: a run config -> one immutable `RunPlan` that the runner executes.

Everything that can be checked is checked here, before any model loads, and every problem is
reported at once (`ConfigError`, one line each, with its fix). Task names resolve to `RunTask`s
(evalharness.tasks.interface) once: an mteb task or an AIR-Bench dataset; this is the only place
that tells the two apart. Each cell gets its experiment folder and settings fingerprint here, and
results already in those folders that this run must not reuse are refused here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mteb

from evalharness import cells, store
from evalharness.config import RunConfig
from evalharness.encoders import mteb_model
from evalharness.encoders.icl import ICLEncoder
from evalharness.encoders.loading import build_model_meta
from evalharness.errors import EvalharnessError
from evalharness.examples import STRATEGIES
from evalharness.instructions import load_instructions
from evalharness.prompts import get_template
from evalharness.provenance import file_digest
from evalharness.tasks.interface import RunTask
from evalharness.tasks.mteb_task import MtebTask
from evalharness.tasks.offline import scale as offline_scale
from evalharness.tasks.resolve import (
    check_selection,
    check_task_names,
    load_tasks,
    select_task_names,
    task_filters,
)


class ConfigError(EvalharnessError, ValueError):
    """Every problem found before any model loads, one per line, each with its fix."""

    listed = True


@dataclass(frozen=True)
class Cell:
    """One experiment: a shot count, how examples are chosen, the seed and the template."""

    shots: int
    strategy: str
    seed: int | None
    template: str
    set_id: str | None = None

    def experiment_kwargs(self) -> dict[str, Any]:
        """What mteb names the experiment folder after (evalharness.cells, which also reads it back)."""
        return cells.experiment_kwargs(self.shots, self.strategy, self.seed, self.template, self.set_id)

    @property
    def label(self) -> str:
        seed = f" seed={self.seed}" if self.seed is not None else ""
        return f"shots={self.shots} examples={self.strategy}{seed} template={self.template}"


@dataclass(frozen=True)
class PlannedCell:
    """A cell with where its results go and the fingerprint its folder must carry."""

    cell: Cell
    exp_dir: Path
    fingerprint: str


@dataclass(frozen=True)
class RunPlan:
    """What `validate` returns and `Runner` executes: the config, the resolved tasks, the cells."""

    cfg: RunConfig
    tasks: tuple[RunTask, ...]
    planned: tuple[PlannedCell, ...]
    instructions: Mapping[str, str] = field(default_factory=dict)  # task -> instruction, loaded once

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def cells(self) -> list[Cell]:
        return [p.cell for p in self.planned]


def _as_int_list(value: Any, key: str, problems: list[str]) -> list[int]:
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            problems.append(f"{key}={value!r}: every value must be an integer (e.g. {key}=[0,1,3])")
            return []
        out.append(v)
    return list(dict.fromkeys(out))


def plan_cells(cfg: RunConfig, problems: list[str] | None = None) -> list[Cell]:
    """Zero-shot is one cell whatever the strategy and seeds; seeds only multiply sampled strategies."""
    problems = [] if problems is None else problems
    try:
        template = get_template(cfg.template or cfg.model.template).name
    except ValueError as err:
        problems.append(str(err))
        template = str(cfg.template or cfg.model.template)
    strategy = cfg.examples.strategy
    shots = _as_int_list(cfg.shots, "shots", problems)
    seeds = _as_int_list(cfg.seed, "seed", problems)
    cells: list[Cell] = []
    for k in shots:
        if k < -1:
            problems.append(f"shots={k} is invalid; use 0 or more (-1: all examples of a file)")
        elif k == 0 or strategy == "none":
            cells.append(Cell(0, "none", None, template))
        elif strategy in ("train", "knn"):
            cells.extend(Cell(k, strategy, s, template) for s in seeds)
        else:
            cells.append(Cell(k, strategy, None, template, cfg.examples.set_id))
    return list(dict.fromkeys(cells))


def model_meta_problems(model: Any) -> list[str]:
    """mteb files results under a ModelMeta, whose rules (an `organization/name` name, typed meta
    fields) would otherwise fail at the first result, as a pydantic traceback."""
    try:
        build_model_meta(model)
    except ValueError as err:  # pydantic's ValidationError
        errors = getattr(err, "errors", None)
        if not callable(errors):
            return [f"model: {err}"]
        out = []
        for e in errors():
            field = ".".join(str(x) for x in e.get("loc", ())) or "meta"
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            if field == "name":
                out.append(
                    f"model.name={model.name!r}: {msg}; e.g. model.name=my-org/{model.name.split('/')[-1]}"
                )
            else:
                out.append(f"model.meta.{field}: {msg}")
        return out
    return []


def cell_fingerprint(cfg: RunConfig, cell: Cell) -> str:
    """Everything that changes a score but not the folder name: a re-run with a different value must
    not silently reuse the old results."""
    model = dataclasses.asdict(cfg.model)
    for runtime_only in ("device", "devices", "batch_size", "max_tokens_per_batch", "prefix_cache"):
        model.pop(runtime_only, None)
    payload = {
        "model": model,
        # which splits and subsets each task scores is not here: it is checked per task against the
        # result file itself (RunTask.reuse_problems), so one cell can hold tasks of several runs
        "cell": dataclasses.asdict(cell),
        # a zero-shot cell uses no examples, so example settings must not split or block it
        "examples": None
        if cell.shots == 0
        else {**dataclasses.asdict(cfg.examples), "root_digest": file_digest(cfg.examples.root)},
        "instructions": file_digest(cfg.instructions),
        "scale": cfg.benchmark.scale,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def experiment_dir(results: mteb.ResultCache, cfg: RunConfig, cell: Cell) -> Path:
    """The cell's experiment folder (mteb names it after the model meta's experiment kwargs)."""
    meta = build_model_meta(cfg.model, cell.experiment_kwargs(), loader=ICLEncoder)
    return results.get_task_result_path(task_name="x", model_name=meta).parent


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


def _task_names(cfg: RunConfig) -> list[str]:
    """`benchmark=air-bench-*` selects AIR-Bench datasets with benchmark.airbench; anything else
    (including explicit benchmark.tasks, which may name AIR-Bench datasets) resolves as before."""
    from evalharness.airbench import BENCHMARK_NAME

    if cfg.benchmark.name == BENCHMARK_NAME and not cfg.benchmark.tasks:
        from evalharness.airbench.run import benchmark_task_names

        names = benchmark_task_names(cfg)
        return [n for n in names if n not in set(cfg.benchmark.exclude)]
    return select_task_names(
        cfg.benchmark.name if not cfg.benchmark.tasks else None,
        cfg.benchmark.tasks,
        cfg.benchmark.task_types,
        cfg.benchmark.exclude,
    )


def load_run_tasks(cfg: RunConfig, names: Sequence[str]) -> list[Any]:
    """mteb task instances as this run scores them: the benchmark's (or the user's) splits and
    subsets, its languages, re-pointed at local snapshots, their data checked readable (once: every
    cell evaluates a copy of these)."""
    b = cfg.benchmark
    return load_tasks(
        names,
        local_root=cfg.tasks.local_root,
        mapping=cfg.tasks.mapping,
        filters=task_filters(b.name, b.subsets, b.splits),
        languages=b.languages,
        check_data=True,
    )


def resolve_tasks(cfg: RunConfig, names: Sequence[str], problems: list[str]) -> list[RunTask]:
    """Names -> RunTasks in the run's order: AIR-Bench datasets and mteb tasks (snapshot folders and
    their subsets, hub data when offline, duplicate ids are checked here, before any data loads)."""
    from evalharness.airbench import is_airbench_task

    air = {n for n in names if is_airbench_task(n)}
    mteb_names = [n for n in names if n not in air]
    problems += check_selection(mteb_names, cfg.benchmark.subsets, cfg.benchmark.splits)
    problems += [f"tasks.mapping: {p}" for p in check_task_names(list(cfg.tasks.mapping))]
    if problems:
        return []
    resolved: dict[str, RunTask] = {}
    if mteb_names:
        try:
            resolved |= {t.metadata.name: MtebTask(t) for t in load_run_tasks(cfg, mteb_names)}
        except ValueError as err:
            problems += str(err).splitlines()
            return []
    if air:
        from evalharness.airbench import get_task
        from evalharness.airbench.run import AirBenchDataset

        resolved |= {n: AirBenchDataset(get_task(n)) for n in air}
    return [resolved[n] for n in names]


def check_tasks(cfg: RunConfig, tasks: Sequence[RunTask], cells: Sequence[Cell]) -> list[str]:
    """Each kind of task checks all of its tasks at once (shared data loaders, one example set)."""
    problems: list[str] = []
    for kind in dict.fromkeys(type(t) for t in tasks):
        problems += kind.check(cfg, [t for t in tasks if type(t) is kind], cells)
    return problems


# ---------------------------------------------------------------------------------------------
# Results already on disk
# ---------------------------------------------------------------------------------------------


def earlier_results_problems(
    cfg: RunConfig, tasks: Sequence[RunTask], planned: Sequence[PlannedCell]
) -> list[str]:
    """Results in `results_dir` that this run would wrongly reuse: a cell folder made with other
    settings (fingerprint), or a finished task whose result this run must not reuse (another split
    or subset selection). Nothing is reused or refused with overwrite=true."""
    if cfg.overwrite or not Path(cfg.results_dir).expanduser().is_dir():
        return []
    problems = []
    for p in planned:
        manifest = store.read_manifest(p.exp_dir)
        if manifest and manifest.get("fingerprint") != p.fingerprint:
            problems.append(
                f"{p.exp_dir} holds results made with different settings (fingerprint "
                f"{manifest.get('fingerprint')} != {p.fingerprint}: model, examples, instructions or scale "
                "changed). Use overwrite=true to redo them, or another results_dir."
            )
            continue
        for task in tasks:
            problems += task.reuse_problems(p.exp_dir)
    return problems


def _results_dir_problems(cfg: RunConfig) -> list[str]:
    results = Path(cfg.results_dir)
    if results.exists() and not results.is_dir():
        return [f"results_dir={results} is a file, not a folder; choose another results_dir"]
    if results.exists() and not os.access(results, os.W_OK):
        return [f"results_dir={results} is not writable; choose another results_dir"]
    return []


def _backend_task_problems(cfg: RunConfig, names: Sequence[str]) -> list[str]:
    """AIR-Bench datasets are encoded by our retriever with our instruction, which mteb's own
    wrappers (backend=mteb) would not apply: they take their instruction from mteb task metadata."""
    from evalharness.airbench import is_airbench_task

    air = [n for n in names if is_airbench_task(n)] if cfg.model.backend == "mteb" else []
    if not air:
        return []
    return [
        f"backend=mteb evaluates mteb tasks only, not the AIR-Bench datasets {', '.join(air)} (mteb's "
        "wrappers take their instruction from mteb task metadata, which these lack); drop them, or run "
        "the model with backend=decoder or backend=sentence-transformers"
    ]


def validate(cfg: RunConfig) -> RunPlan:
    """Resolve every name and example source into the plan, or raise ConfigError with all problems
    at once. No model is loaded here."""
    problems: list[str] = []
    if cfg.examples.strategy not in STRATEGIES:
        problems.append(f"examples.strategy={cfg.examples.strategy!r}; use one of {', '.join(STRATEGIES)}")
    cells = plan_cells(cfg, problems)
    problems += model_meta_problems(cfg.model)
    if cfg.model.backend == "mteb":
        few_shot = any(c.shots != 0 for c in cells)
        problems += mteb_model.config_problems(cfg.model, few_shot=few_shot, strategy=cfg.examples.strategy)
    if cfg.benchmark.scale not in ("mini", "full"):
        problems.append(f"benchmark.scale={cfg.benchmark.scale!r}; use mini or full")
    names: list[str] = []
    try:
        names = _task_names(cfg)
    except ValueError as err:
        problems.append(str(err))
    problems += _backend_task_problems(cfg, names)
    instructions: dict[str, str] = {}
    try:
        instructions = load_instructions(cfg.instructions)
    except ValueError as err:
        problems.append(str(err))
    tasks: list[RunTask] = []
    if names and not problems:
        # offline tasks read their data at the run's scale, examples drawn for checks included
        with offline_scale(cfg.benchmark.scale):
            tasks = resolve_tasks(cfg, names, problems)
            if tasks and not problems:
                problems += check_tasks(cfg, tasks, cells)
    problems += _results_dir_problems(cfg)
    planned: list[PlannedCell] = []
    if not problems:
        results = store.ResultLayout(Path(cfg.results_dir).expanduser())
        planned = [PlannedCell(c, experiment_dir(results, cfg, c), cell_fingerprint(cfg, c)) for c in cells]
        problems += earlier_results_problems(cfg, tasks, planned)
    if problems:
        raise ConfigError(problems)
    return RunPlan(cfg, tuple(tasks), tuple(planned), instructions)
