"""Execute a plan: cells (shots x strategy x seed) over tasks -> results + one manifest per cell.

The plan (evalharness.plan) has checked and resolved everything; this module only runs it. A cell
is one experiment folder in mteb's ResultCache layout. The model loads once per run (lazily, so a
finished sweep loads nothing) and passage embeddings are shared between cells, so a shot sweep
encodes each corpus once. Results are written atomically one task at a time (evalharness.store),
which is what makes a killed run resumable.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from omegaconf import OmegaConf

from evalharness import kernels, store
from evalharness import manifest as manifest_schema
from evalharness.config import RunConfig
from evalharness.encoders.cache import EmbeddingCache
from evalharness.encoders.icl import ICLEncoder
from evalharness.encoders.mteb_model import MtebModelEncoder
from evalharness.plan import Cell, PlannedCell, RunPlan, validate
from evalharness.provenance import git_revision, package_versions
from evalharness.tasks.interface import CellContext, RunTask, main_score
from evalharness.tasks.offline import set_scale

logger = logging.getLogger(__name__)


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
    from evalharness.paths import cache_dir

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

    def __init__(self, plan: RunPlan, *, backend: Any = None, raise_inside: Any = None) -> None:
        self.plan = plan
        self.cfg = plan.cfg
        self.backend = backend
        self.cache = make_embedding_cache(self.cfg)
        self.instructions = plan.instructions
        self.results = store.AtomicResultCache(Path(self.cfg.results_dir).expanduser())
        self.records: list[TaskRecord] = []
        self._raise_inside = raise_inside  # test hook: simulate a crash inside a cell

    def _encoder(self, cell: Cell, examples: Any) -> ICLEncoder | MtebModelEncoder:
        # backend=mteb: mteb's own wrapper of the model, behind the same encoder interface
        kind = MtebModelEncoder if self.cfg.model.backend == "mteb" else ICLEncoder
        return kind(
            self.cfg.model,
            examples=examples,
            instructions=self.instructions,
            template=cell.template,
            experiment_kwargs=cell.experiment_kwargs(),
            backend=self.backend,
            cache=self.cache,
        )

    def _load_manifest(self, planned: PlannedCell) -> dict[str, Any]:
        path = planned.exp_dir / store.MANIFEST
        fresh = {
            "schema_version": manifest_schema.SCHEMA_VERSION,
            "cell": dataclasses.asdict(planned.cell),
            "fingerprint": planned.fingerprint,
            "tasks": {},
        }
        if not path.exists() or self.cfg.overwrite:
            return fresh
        manifest = store.read_manifest(path.parent)
        if not manifest:
            logger.warning("%s is unreadable; the cell's tasks will be re-run", path)
            return fresh
        return manifest

    def run(self) -> list[TaskRecord]:
        set_scale(self.cfg.benchmark.scale)
        tasks, cells = self.plan.tasks, self.plan.planned
        manifests = [self._load_manifest(p) for p in cells]
        total = len(tasks) * len(cells)
        started = time.monotonic()
        done_units = 0
        for ci, (planned, manifest) in enumerate(zip(cells, manifests, strict=True), 1):
            cell, exp_dir = planned.cell, planned.exp_dir
            manifest.update(
                {
                    "schema_version": manifest_schema.SCHEMA_VERSION,
                    "model": self.cfg.model.name,
                    "config": OmegaConf.to_container(OmegaConf.structured(self.cfg), resolve=True),
                    "versions": package_versions(),
                    "git_revision": git_revision(),
                    "cpu_kernels": kernels.describe(),
                }
            )
            exp_dir.mkdir(parents=True, exist_ok=True)
            for task in tasks:
                done_units += 1
                name = task.name
                # one process per (cell, task) at a time: a concurrent run on the same results folder
                # waits here, then finds the task done instead of computing and writing it twice
                with FileLock(str(exp_dir / f".{name}.lock")):
                    store.remove_leftovers(exp_dir, f".staging-{name}-*")
                    entry = (
                        store.read_manifest(exp_dir).get("tasks", {}).get(name)
                        if not self.cfg.overwrite
                        else None
                    )
                    if task.is_done(self.cfg, exp_dir, entry):
                        logger.info(
                            "[%d/%d] %s %s: done earlier, skipped", done_units, total, cell.label, name
                        )
                        self.records.append(self._record(cell, name, entry, skipped=True))
                        continue
                    t0 = time.monotonic()
                    tokens0 = getattr(self.backend, "tokens_encoded", 0)
                    truncated0 = getattr(self.backend, "n_truncated", 0)
                    entry = self._run_task(planned, task)
                    entry["wall_time_s"] = round(time.monotonic() - t0, 3)
                    # the backend's counters span the run; the manifest wants this task's share
                    entry["tokens_encoded"] = getattr(self.backend, "tokens_encoded", 0) - tokens0
                    entry["n_truncated"] = getattr(self.backend, "n_truncated", 0) - truncated0
                    manifest = store.merge_manifest(
                        exp_dir, manifest, name, manifest_schema.check_entry(entry, name),
                        keep_disk=not self.cfg.overwrite,
                    )  # fmt: skip
                self.records.append(self._record(cell, name, entry, skipped=False))
                elapsed = time.monotonic() - started
                eta = elapsed / done_units * (total - done_units)
                logger.info(
                    "[%d/%d] cell %d/%d %s | %s: %s=%s (%.1fs; elapsed %.0fs, ETA %.0fs)",
                    done_units, total, ci, len(cells), cell.label, name, entry["main_score_name"],
                    _fmt_score(main_score(entry)), entry["wall_time_s"], elapsed, eta,
                )  # fmt: skip
        return self.records

    def _run_task(self, planned: PlannedCell, task: RunTask) -> dict[str, Any]:
        encoders: list[ICLEncoder | MtebModelEncoder] = []

        def encoder(examples: Any) -> ICLEncoder | MtebModelEncoder:
            encoders.append(self._encoder(planned.cell, examples))
            return encoders[-1]

        def before_encode() -> None:
            if self._raise_inside is not None:
                self._raise_inside(planned.cell, task.name)

        ctx = CellContext(
            cfg=self.cfg,
            cell=planned.cell,
            exp_dir=planned.exp_dir,
            results=self.results,
            instructions=self.instructions,
            cache=self.cache,
            encoder=encoder,
            before_encode=before_encode,
        )
        entry = task.run(ctx)
        # the backend a task's encoder loaded serves every later cell
        self.backend = next((e._backend for e in reversed(encoders) if e._backend), self.backend)
        return entry

    def _record(self, cell: Cell, name: str, entry: Mapping[str, Any], skipped: bool) -> TaskRecord:
        meta = self._encoder(cell, None).mteb_model_meta
        return TaskRecord(
            model=self.cfg.model.name,
            experiment=meta.experiment_name or "",
            cell=cell,
            task=name,
            task_type=entry.get("task_type", ""),
            main_score=main_score(entry),
            skipped=skipped,
            wall_time_s=entry.get("wall_time_s", 0.0),
            tokens_encoded=entry.get("tokens_encoded", 0),
        )


def _fmt_score(score: float | None) -> str:
    return "n/a (test split: submission written)" if score is None else f"{score:.4f}"


def _exit_on_sigterm() -> None:
    """SIGTERM (a scheduler's pre-emption, `kill`) unwinds like Ctrl-C, so the current task is
    abandoned with its staging files removed instead of being cut off mid-write."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(SystemExit(128 + signum)))


def run(cfg: RunConfig, *, backend: Any = None, plan: RunPlan | None = None) -> list[TaskRecord]:
    """Validate everything (unless `plan` is what `validate(cfg)` returned), then run every cell of
    `cfg` for its model."""
    plan = plan if plan is not None else validate(cfg)
    logger.info(
        "%s: %d task(s) x %d cell(s) -> %s",
        cfg.model.name,
        len(plan.tasks),
        len(plan.planned),
        Path(cfg.results_dir).resolve(),
    )
    _exit_on_sigterm()
    return Runner(plan, backend=backend).run()
