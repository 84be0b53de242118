"""Execute a plan: cells (shots x strategy x seed) over tasks -> mteb results + one manifest per cell.

A cell is one experiment folder in mteb's ResultCache layout. Everything that can be checked is
checked before the model loads. The model loads once per run (lazily, so a finished sweep loads
nothing) and passage embeddings are shared between cells, so a shot sweep encodes each corpus once.
Results are written atomically one task at a time, which is what makes a killed run resumable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mteb
from filelock import FileLock
from mteb.models.search_wrappers import SearchEncoderWrapper
from omegaconf import OmegaConf

from evalharness.config import RunConfig
from evalharness.encoders.cache import EmbeddingCache
from evalharness.encoders.icl import ICLEncoder
from evalharness.encoders.loading import build_model_meta
from evalharness.examples import STRATEGIES, ExampleError, build_example_set
from evalharness.instructions import applied_instruction, load_instructions, resolve_instruction
from evalharness.prompts import get_template
from evalharness.tasks.offline import set_scale
from evalharness.tasks.resolve import (
    check_selection,
    check_task_names,
    load_tasks,
    select_task_names,
    selection,
    task_filters,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ConfigError(ValueError):
    """Every problem found before any model loads, one per line, each with its fix."""


@dataclass(frozen=True)
class Cell:
    """One experiment: a shot count, how examples are chosen, the seed and the template."""

    shots: int
    strategy: str
    seed: int | None
    template: str
    set_id: str | None = None

    def experiment_kwargs(self) -> dict[str, Any]:
        """What mteb names the experiment folder after (sorted keys, `key_value__...`)."""
        kwargs: dict[str, Any] = {"shots": self.shots, "examples": self.strategy, "template": self.template}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.set_id:
            kwargs["set"] = self.set_id
        return kwargs

    @property
    def label(self) -> str:
        seed = f" seed={self.seed}" if self.seed is not None else ""
        return f"shots={self.shots} examples={self.strategy}{seed} template={self.template}"


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


def validate(cfg: RunConfig) -> tuple[list[str], list[Cell]]:
    """Resolve every name and example source; return (task names, cells) or raise ConfigError with
    all problems at once. No model is loaded here."""
    problems: list[str] = []
    if cfg.examples.strategy not in STRATEGIES:
        problems.append(f"examples.strategy={cfg.examples.strategy!r}; use one of {', '.join(STRATEGIES)}")
    cells = plan_cells(cfg, problems)
    problems += model_meta_problems(cfg.model)
    if cfg.benchmark.scale not in ("mini", "full"):
        problems.append(f"benchmark.scale={cfg.benchmark.scale!r}; use mini or full")
    names: list[str] = []
    try:
        names = _task_names(cfg)
    except ValueError as err:
        problems.append(str(err))
    try:
        load_instructions(cfg.instructions)
    except ValueError as err:
        problems.append(str(err))
    few_shot = [c for c in cells if c.shots != 0]
    air_names = [n for n in names if _is_airbench(n)]
    mteb_names = [n for n in names if n not in set(air_names)]
    if names and not problems:
        problems += check_selection(mteb_names, cfg.benchmark.subsets, cfg.benchmark.splits)
        problems += [f"tasks.mapping: {p}" for p in check_task_names(list(cfg.tasks.mapping))]
    chosen: dict[str, dict[str, list[str]]] = {}
    if mteb_names and not problems:
        try:  # snapshot folders and their subsets, hub data when offline, duplicate ids: before any
            # data or model loads
            chosen = selections(load_run_tasks(cfg, mteb_names, check_data=True))
        except ValueError as err:
            problems += str(err).splitlines()
    if air_names and not problems:
        problems += _airbench_check(cfg, air_names, cells)
    if mteb_names and few_shot and not problems:
        if cfg.examples.strategy == "file":
            if not cfg.examples.root or not Path(cfg.examples.root).is_dir():
                problems.append(
                    f"examples.root={cfg.examples.root!r} is not a folder; point it at the per-task example files"
                )
            else:
                for cell in few_shot:
                    problems += build_example_set("file", shots=cell.shots, root=cfg.examples.root).check(
                        mteb_names
                    )
        elif cfg.examples.strategy in ("train", "knn"):
            problems += _check_sampled(cfg, mteb_names, max(c.shots for c in few_shot))
    results = Path(cfg.results_dir)
    if results.exists() and not results.is_dir():
        problems.append(f"results_dir={results} is a file, not a folder; choose another results_dir")
    elif results.exists() and not os.access(results, os.W_OK):
        problems.append(f"results_dir={results} is not writable; choose another results_dir")
    if not problems:
        problems += earlier_results_problems(cfg, names, cells, chosen=chosen)
    if problems:
        raise ConfigError("\n".join(f"- {p}" for p in dict.fromkeys(problems)))
    return names, cells


def load_run_tasks(cfg: RunConfig, names: Sequence[str], *, check_data: bool = False) -> list[Any]:
    """Fresh mteb task instances as this run scores them: the benchmark's (or the user's) splits and
    subsets, its languages, re-pointed at local snapshots. One call, so validation and execution
    can never see different tasks."""
    b = cfg.benchmark
    return load_tasks(
        names,
        local_root=cfg.tasks.local_root,
        mapping=cfg.tasks.mapping,
        filters=task_filters(b.name, b.subsets, b.splits),
        languages=b.languages,
        check_data=check_data,
    )


def _check_sampled(cfg: RunConfig, names: Sequence[str], shots: int) -> list[str]:
    tasks = load_run_tasks(cfg, names)
    try:
        example_set = build_example_set(
            cfg.examples.strategy,
            shots=shots,
            seed=0,
            tasks=tasks,
            split=cfg.examples.split,
            cap=cfg.examples.cap,
        )
    except ExampleError as err:
        return [str(err)]
    check = getattr(example_set, "check", None)
    return list(check(names)) if check and cfg.examples.strategy == "train" else []


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "evalharness",
        "mteb",
        "torch",
        "transformers",
        "sentence-transformers",
        "datasets",
        "hydra-core",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cell_fingerprint(cfg: RunConfig, cell: Cell) -> str:
    """Everything that changes a score but not the folder name: a re-run with a different value must
    not silently reuse the old results."""
    model = dataclasses.asdict(cfg.model)
    for runtime_only in ("device", "devices", "batch_size", "max_tokens_per_batch", "prefix_cache"):
        model.pop(runtime_only, None)
    payload = {
        "model": model,
        # which splits and subsets each task scores is not here: it is checked per task against the
        # result file itself (earlier_results_problems), so one cell can hold tasks of several runs
        "cell": dataclasses.asdict(cell),
        # a zero-shot cell uses no examples, so example settings must not split or block it
        "examples": None
        if cell.shots == 0
        else {**dataclasses.asdict(cfg.examples), "root_digest": _file_digest(cfg.examples.root)},
        "instructions": _file_digest(cfg.instructions),
        "scale": cfg.benchmark.scale,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_result(path: Path, *, warn: bool = True) -> mteb.TaskResult | None:
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


def _read_manifest(exp_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((exp_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _remove_leftovers(exp_dir: Path, pattern: str) -> None:
    """Staging folders and temp files of a killed process (callers hold the lock that guards them)."""
    import shutil

    for p in exp_dir.glob(pattern):
        logger.warning("removing %s left by an interrupted run", p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _merge_manifest(
    exp_dir: Path, manifest: dict[str, Any], name: str, entry: dict[str, Any], keep_disk: bool = True
) -> dict[str, Any]:
    """Add one task's entry to the manifest on disk, keeping entries other processes wrote meanwhile."""
    with FileLock(str(exp_dir / ".manifest.lock")):
        _remove_leftovers(exp_dir, f"{MANIFEST}.*.tmp")
        on_disk = _read_manifest(exp_dir) if keep_disk else {}
        tasks = {**on_disk.get("tasks", {}), **manifest.get("tasks", {}), name: entry}
        merged = {**manifest, "tasks": tasks}
        write_json_atomic(exp_dir / MANIFEST, merged)
    return merged


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


# ---------------------------------------------------------------------------------------------
# Results already on disk
# ---------------------------------------------------------------------------------------------


def experiment_dir(results: mteb.ResultCache, cfg: RunConfig, cell: Cell) -> Path:
    """The cell's experiment folder (mteb names it after the model meta's experiment kwargs)."""
    meta = build_model_meta(cfg.model, cell.experiment_kwargs(), loader=ICLEncoder)
    return results.get_task_result_path(task_name="x", model_name=meta).parent


def selections(tasks: Sequence[Any]) -> dict[str, dict[str, list[str]]]:
    return {t.metadata.name: selection(t) for t in tasks}


def earlier_results_problems(
    cfg: RunConfig,
    names: Sequence[str],
    cells: Sequence[Cell],
    results: mteb.ResultCache | None = None,
    chosen: Mapping[str, Mapping[str, list[str]]] | None = None,
) -> list[str]:
    """Results in `results_dir` that this run would wrongly reuse: a cell folder made with other
    settings (fingerprint), or a finished task whose result file scores other splits or subsets than
    this run (AmazonCounterfactual run under benchmark=custom, all 4 subsets x 2 splits, then under
    MTEB(eng, v1), en/test, would report 61.28 for 63.64). Nothing is reused or refused with
    overwrite=true."""
    root = Path(cfg.results_dir).expanduser()
    if cfg.overwrite or not root.is_dir():
        return []
    results = results or AtomicResultCache(root)
    mteb_names = [n for n in names if not _is_airbench(n)]
    chosen = chosen if chosen is not None else selections(load_run_tasks(cfg, mteb_names))
    problems = []
    for cell in cells:
        exp_dir = experiment_dir(results, cfg, cell)
        manifest = _read_manifest(exp_dir)
        fingerprint = cell_fingerprint(cfg, cell)
        if manifest and manifest.get("fingerprint") != fingerprint:
            problems.append(
                f"{exp_dir} holds results made with different settings (fingerprint "
                f"{manifest.get('fingerprint')} != {fingerprint}: model, examples, instructions or scale "
                "changed). Use overwrite=true to redo them, or another results_dir."
            )
            continue
        for name in mteb_names:
            result = _read_result(exp_dir / f"{name}.json", warn=False)  # corrupt: the done-check says so
            wanted = _selection_pairs(chosen[name])
            if result is not None and (held := _scored_pairs(result)) != wanted:
                problems.append(
                    f"{exp_dir}: {name} was scored on {_describe(held)} but this run scores "
                    f"{_describe(wanted)}, so its result cannot be reused; use overwrite=true to "
                    f"redo it, another results_dir, or the earlier selection ({_selector(name, held)})"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass
class TaskRecord:
    model: str
    experiment: str
    cell: Cell
    task: str
    task_type: str
    main_score: float | None
    skipped: bool
    wall_time_s: float
    tokens_encoded: int


def make_embedding_cache(cfg: RunConfig) -> EmbeddingCache:
    """One cache per model configuration: the namespace holds every setting besides the text that
    changes a vector, so different dtypes or token budgets never share entries."""
    if cfg.embedding_cache is None:
        return EmbeddingCache()
    from evalharness.encoders.loading import cache_dir

    root = (
        cache_dir() / "embeddings"
        if cfg.embedding_cache == "auto"
        else Path(cfg.embedding_cache).expanduser()
    )
    from evalharness.encoders.backends import NUMERICS_REVISION

    m = cfg.model
    versions = package_versions()
    namespace = {
        "model": m.name, "revision": m.revision, "source": m.source, "backend": m.backend, "dtype": m.dtype,
        "query_max_length": m.query_max_length, "passage_max_length": m.passage_max_length,
        # the same text through other code or library versions gives other last bits
        "numerics": NUMERICS_REVISION,
        "libraries": {k: versions.get(k) for k in ("torch", "transformers", "sentence-transformers")},
    }  # fmt: skip
    return EmbeddingCache.on_disk(root, namespace)


class Runner:
    """One model, many cells. Keeps the backend and the passage-embedding cache across cells."""

    def __init__(self, cfg: RunConfig, *, backend: Any = None, raise_inside: Any = None) -> None:
        self.cfg = cfg
        self.backend = backend
        self.cache = make_embedding_cache(cfg)
        self.instructions = load_instructions(cfg.instructions)
        self.results = AtomicResultCache(Path(cfg.results_dir).expanduser())
        self.records: list[TaskRecord] = []
        self._raise_inside = raise_inside  # test hook: simulate a crash inside a cell

    def experiment_dir(self, cell: Cell) -> Path:
        return experiment_dir(self.results, self.cfg, cell)

    def _encoder(self, cell: Cell, examples: Any) -> ICLEncoder:
        return ICLEncoder(
            self.cfg.model,
            examples=examples,
            instructions=self.instructions,
            template=cell.template,
            experiment_kwargs=cell.experiment_kwargs(),
            backend=self.backend,
            cache=self.cache,
        )

    def _load_manifest(self, cell: Cell, fingerprint: str) -> dict[str, Any]:
        path = self.experiment_dir(cell) / MANIFEST
        fresh = {"cell": dataclasses.asdict(cell), "fingerprint": fingerprint, "tasks": {}}
        if not path.exists() or self.cfg.overwrite:
            return fresh
        manifest = _read_manifest(path.parent)
        if not manifest:
            logger.warning("%s is unreadable; the cell's tasks will be re-run", path)
            return fresh
        return manifest

    def run(self, names: Sequence[str], cells: Sequence[Cell]) -> list[TaskRecord]:
        set_scale(self.cfg.benchmark.scale)
        mteb_names = [n for n in names if not _is_airbench(n)]
        self.selections = selections(load_run_tasks(self.cfg, mteb_names))
        # stale results are found for every cell before any work starts (validate did the same for
        # runs through `run`; a Runner driven directly gets the same guarantee)
        problems = earlier_results_problems(self.cfg, names, cells, self.results, self.selections)
        if problems:
            raise ConfigError("\n".join(f"- {p}" for p in problems))
        manifests = [self._load_manifest(cell, cell_fingerprint(self.cfg, cell)) for cell in cells]
        total = len(names) * len(cells)
        started = time.monotonic()
        done_units = 0
        for ci, (cell, manifest) in enumerate(zip(cells, manifests, strict=True), 1):
            manifest.update(
                {
                    "model": self.cfg.model.name,
                    "config": OmegaConf.to_container(OmegaConf.structured(self.cfg), resolve=True),
                    "versions": package_versions(),
                    "git_revision": git_revision(),
                }
            )
            exp_dir = self.experiment_dir(cell)
            exp_dir.mkdir(parents=True, exist_ok=True)
            for name in names:
                done_units += 1
                # one process per (cell, task) at a time: a concurrent run on the same results folder
                # waits here, then finds the task done instead of computing and writing it twice
                with FileLock(str(exp_dir / f".{name}.lock")):
                    _remove_leftovers(exp_dir, f".staging-{name}-*")
                    entry = (
                        _read_manifest(exp_dir).get("tasks", {}).get(name) if not self.cfg.overwrite else None
                    )
                    if self._done_earlier(exp_dir, name, entry):
                        logger.info(
                            "[%d/%d] %s %s: done earlier, skipped", done_units, total, cell.label, name
                        )
                        self.records.append(self._record(cell, name, entry, skipped=True))
                        continue
                    t0 = time.monotonic()
                    tokens0 = getattr(self.backend, "tokens_encoded", 0)
                    truncated0 = getattr(self.backend, "n_truncated", 0)
                    entry = self._run_task(cell, name)
                    entry["wall_time_s"] = round(time.monotonic() - t0, 3)
                    # the backend's counters span the run; the manifest wants this task's share
                    entry["tokens_encoded"] = getattr(self.backend, "tokens_encoded", 0) - tokens0
                    entry["n_truncated"] = getattr(self.backend, "n_truncated", 0) - truncated0
                    manifest = _merge_manifest(
                        exp_dir, manifest, name, entry, keep_disk=not self.cfg.overwrite
                    )
                self.records.append(self._record(cell, name, entry, skipped=False))
                elapsed = time.monotonic() - started
                eta = elapsed / done_units * (total - done_units)
                logger.info(
                    "[%d/%d] cell %d/%d %s | %s: %s=%s (%.1fs; elapsed %.0fs, ETA %.0fs)",
                    done_units, total, ci, len(cells), cell.label, name, entry["main_score_name"],
                    _fmt_score(entry["main_score"]), entry["wall_time_s"], elapsed, eta,
                )  # fmt: skip
        return self.records

    def _done_earlier(self, exp_dir: Path, name: str, entry: Mapping[str, Any] | None) -> bool:
        if _is_airbench(name):
            from evalharness.airbench.run import is_done

            return is_done(self, dict(entry or {}))
        if not (entry and entry.get("status") == "done"):
            return False
        result = _read_result(exp_dir / f"{name}.json")
        # another process may have written it with another selection since the run's start
        return result is not None and _scored_pairs(result) == _selection_pairs(self.selections[name])

    def _run_task(self, cell: Cell, name: str) -> dict[str, Any]:
        if _is_airbench(name):  # an AIR-Bench dataset: searched and scored by evalharness/airbench
            from evalharness.airbench.run import run_task

            if self._raise_inside is not None:
                self._raise_inside(cell, name)
            return run_task(self, cell, name)
        (task,) = load_run_tasks(self.cfg, [name])
        examples = build_example_set(
            cell.strategy,
            shots=cell.shots,
            seed=cell.seed or 0,
            root=self.cfg.examples.root,
            tasks={name: task},
            split=self.cfg.examples.split,
            cap=self.cfg.examples.cap,
        )
        encoder = self._encoder(cell, examples)
        if self._raise_inside is not None:
            self._raise_inside(cell, name)
        # retrieval scores the corpus in chunks of this many documents (top-k merged per chunk),
        # so memory holds one chunk's vectors, not the corpus's
        model = SearchEncoderWrapper(encoder, corpus_chunk_size=self.cfg.corpus_chunk_size)
        result = mteb.evaluate(
            model,
            task,
            cache=self.results,
            overwrite_strategy="always",
            co2_tracker=False,
            show_progress_bar=False,
            encode_kwargs={"batch_size": self.cfg.model.batch_size},
        )
        self.backend = encoder._backend or self.backend
        (task_result,) = result.task_results
        instruction, source = resolve_instruction(task.metadata, self.instructions)
        used = examples.used().get(name, [])
        empty = encoder.empty_texts.get(name, 0)
        if empty:
            logger.warning(
                "%s: %d empty or whitespace-only text(s) in the data were encoded (as the reference "
                "does); the count is in the manifest", name, empty,
            )  # fmt: skip
        return {
            "status": "done",
            "task_type": task.metadata.type,
            "main_score_name": task.metadata.main_score,
            "main_score": float(task_result.get_score()),
            **selection(task),
            **applied_instruction(encoder.template, instruction, source, bool(used)),
            "examples": used,
            "empty_texts": empty,
            "cache": self.cache.stats(),
        }

    def _record(self, cell: Cell, name: str, entry: Mapping[str, Any], skipped: bool) -> TaskRecord:
        meta = self._encoder(cell, None).mteb_model_meta
        return TaskRecord(
            model=self.cfg.model.name,
            experiment=meta.experiment_name or "",
            cell=cell,
            task=name,
            task_type=entry.get("task_type", ""),
            main_score=entry.get("main_score"),
            skipped=skipped,
            wall_time_s=entry.get("wall_time_s", 0.0),
            tokens_encoded=entry.get("tokens_encoded", 0),
        )


# ---------------------------------------------------------------------------------------------
# AIR-Bench datasets as tasks of a cell (evalharness/airbench; imported only when used, so runs
# without air-benchmark installed are unaffected)
# ---------------------------------------------------------------------------------------------


Pairs = set[tuple[str, str]]  # (split, subset)


def _scored_pairs(result: mteb.TaskResult) -> Pairs:
    """The (split, subset) pairs a result file holds scores for."""
    return {
        (split, e.get("hf_subset", "default")) for split, entries in result.scores.items() for e in entries
    }


def _selection_pairs(sel: Mapping[str, Sequence[str]]) -> Pairs:
    return {(sp, su) for sp in sel.get("splits", []) for su in sel.get("subsets", [])}


def _splits_and_subsets(pairs: Pairs) -> tuple[str, str]:
    return ", ".join(sorted({sp for sp, _ in pairs})), ", ".join(sorted({su for _, su in pairs}))


def _describe(pairs: Pairs) -> str:
    splits, subsets = _splits_and_subsets(pairs)
    return f"splits {splits} x subsets {subsets}"


def _selector(name: str, pairs: Pairs) -> str:
    splits, subsets = _splits_and_subsets(pairs)
    return f"benchmark.subsets={{{name}: [{subsets}]}} benchmark.splits={{{name}: [{splits}]}}"


def _is_airbench(name: str) -> bool:
    from evalharness.airbench import is_airbench_task

    return is_airbench_task(name)


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


def _airbench_check(cfg: RunConfig, names: Sequence[str], cells: Sequence[Cell]) -> list[str]:
    from evalharness.airbench.run import check

    return check(cfg, names, cells)


def _fmt_score(score: float | None) -> str:
    return "n/a (test split: submission written)" if score is None else f"{score:.4f}"


def _exit_on_sigterm() -> None:
    """SIGTERM (a scheduler's pre-emption, `kill`) unwinds like Ctrl-C, so the current task is
    abandoned with its staging files removed instead of being cut off mid-write."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(SystemExit(128 + signum)))


def run(
    cfg: RunConfig, *, backend: Any = None, plan: tuple[list[str], list[Cell]] | None = None
) -> list[TaskRecord]:
    """Validate everything (unless `plan` is what `validate(cfg)` returned), then run every cell of
    `cfg` for its model."""
    names, cells = plan if plan is not None else validate(cfg)
    logger.info(
        "%s: %d task(s) x %d cell(s) -> %s",
        cfg.model.name,
        len(names),
        len(cells),
        Path(cfg.results_dir).resolve(),
    )
    _exit_on_sigterm()
    return Runner(cfg, backend=backend).run(names, cells)
