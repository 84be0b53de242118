"""An mteb task as a `RunTask`: scored by `mteb.evaluate` into the cell's ResultCache folder.

The plan resolves each task once (name, benchmark filters, local snapshot, data checks) into an
instance that is never loaded; every cell evaluates a copy of it, so cells never share loaded data
or the instance state mteb's `unload_data` resets, and nothing is resolved again."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness import per_item, rankings, store
from evalharness.tasks.interface import CellContext
from evalharness.tasks.resolve import selection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MtebTask:
    """A resolved mteb task: `resolved` is its checked, unloaded instance."""

    resolved: Any

    @property
    def name(self) -> str:
        return self.resolved.metadata.name

    @property
    def selection(self) -> dict[str, list[str]]:
        """The splits and subsets this run scores the task on."""
        return selection(self.resolved)

    def instance(self) -> Any:
        """A fresh, unloaded copy to evaluate or to draw examples from."""
        return copy.deepcopy(self.resolved)

    @classmethod
    def check(cls, cfg: Any, tasks: Sequence[MtebTask], cells: Sequence[Any]) -> list[str]:
        """Example sources of the few-shot cells: the files of strategy `file`, the pools of the
        sampled strategies (at the largest shot count)."""
        from evalharness.examples import ExampleError, build_example_set

        few_shot = [c for c in cells if c.shots != 0]
        names = [t.name for t in tasks]
        if not few_shot:
            return []
        problems: list[str] = []
        if cfg.examples.strategy == "file":
            if not cfg.examples.root or not Path(cfg.examples.root).is_dir():
                return [
                    f"examples.root={cfg.examples.root!r} is not a folder; point it at the per-task example files"
                ]
            for cell in few_shot:
                problems += build_example_set("file", shots=cell.shots, root=cfg.examples.root).check(names)
        elif cfg.examples.strategy in ("train", "knn"):
            try:
                example_set = build_example_set(
                    cfg.examples.strategy,
                    shots=max(c.shots for c in few_shot),
                    seed=0,
                    tasks=[t.instance() for t in tasks],
                    split=cfg.examples.split,
                    cap=cfg.examples.cap,
                )
            except ExampleError as err:
                return [str(err)]
            check = getattr(example_set, "check", None)
            if check and cfg.examples.strategy == "train":
                problems += list(check(names))
        return problems

    def reuse_problems(self, exp_dir: Path) -> list[str]:
        """A finished result scored on other splits or subsets than this run (AmazonCounterfactual run
        under benchmark=custom, all 4 subsets x 2 splits, then under MTEB(eng, v1), en/test, would
        report 61.28 for 63.64)."""
        result = store.read_result(exp_dir / f"{self.name}.json", warn=False)  # corrupt: is_done says so
        wanted = store.selection_pairs(self.selection)
        if result is None or (held := store.scored_pairs(result)) == wanted:
            return []
        return [
            f"{exp_dir}: {self.name} was scored on {store.describe(held)} but this run scores "
            f"{store.describe(wanted)}, so its result cannot be reused; use overwrite=true to "
            f"redo it, another results_dir, or the earlier selection ({store.selector(self.name, held)})"
        ]

    def is_done(self, cfg: Any, exp_dir: Path, entry: Mapping[str, Any] | None) -> bool:
        if not (
            entry
            and entry.get("status") == "done"
            and per_item.files_present(exp_dir, entry)
            and rankings.files_present(exp_dir, entry)
        ):
            return False
        result = store.read_result(exp_dir / f"{self.name}.json")
        # another process may have written it with another selection since the run's start
        return result is not None and store.scored_pairs(result) == store.selection_pairs(self.selection)

    def run(self, ctx: CellContext) -> dict[str, Any]:
        import mteb
        from mteb.models.search_wrappers import SearchEncoderWrapper

        from evalharness.examples import build_example_set

        cfg, cell, name = ctx.cfg, ctx.cell, self.name
        task = self.instance()
        examples = build_example_set(
            cell.strategy,
            shots=cell.shots,
            seed=cell.seed or 0,
            root=cfg.examples.root,
            tasks={name: task},
            split=cfg.examples.split,
            cap=cfg.examples.cap,
        )
        encoder = ctx.encoder(examples)
        ctx.before_encode()
        # retrieval scores the corpus in chunks of this many documents (top-k merged per chunk),
        # so memory holds one chunk's vectors, not the corpus's
        model = SearchEncoderWrapper(encoder, corpus_chunk_size=cfg.corpus_chunk_size)
        with per_item.capture(task) as record, rankings.capture(task) as ranked:
            result = mteb.evaluate(
                model,
                task,
                cache=ctx.results,
                overwrite_strategy="always",
                co2_tracker=False,
                show_progress_bar=False,
                encode_kwargs={"batch_size": cfg.model.batch_size},
            )
        (task_result,) = result.task_results
        # after the result, before the manifest entry that makes the task done
        kept = per_item.write(ctx.exp_dir, per_item.from_result(record, task_result))
        used = examples.used().get(name, [])
        if ranked is not None:
            rankings.attach_examples(ranked, getattr(encoder, "carried", {}).get(name), used)
        ranked_file = rankings.write(ctx.exp_dir, ranked)
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
            **encoder.instruction_record(task.metadata, bool(used)),
            "examples": used,
            "empty_texts": empty,
            "cache": ctx.cache.stats(),
            **per_item.manifest_fields(kept, record),
            **({"rankings": ranked_file} if ranked_file else {}),
        }
