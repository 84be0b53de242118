"""`evalharness train`: validate the config and the rows into a plan, then train and write the output.

Everything that can be checked is checked before the model loads, and all problems are reported at
once: the rows (file and line), their overlap with evaluated splits, the group size, the template.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.config import load_model_config
from evalharness.prompts import PromptTemplate, get_template
from evalharness.tasks.offline import scale as offline_scale
from evalharness.train.config import CHOICES, ROW_TYPES, TrainConfig
from evalharness.train.data import (
    Dataset,
    StepBatches,
    TrainDataError,
    check_disjoint,
    check_group_size,
    check_teacher_scores,
    load_datasets,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPlan:
    """What a validated config trains on: the datasets, their per-device batches step by step (each
    step `world_size` same-dataset batches, one per device) and the template."""

    datasets: list[Dataset]
    batches: StepBatches
    template: PromptTemplate


def world_size() -> int:
    """Processes of this run, as `torchrun` / `accelerate launch` announce them (read before the
    Trainer starts, so the steps can be laid out during validation)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def validate(cfg: TrainConfig) -> TrainPlan:
    problems: list[str] = []
    try:
        template = get_template(cfg.template or cfg.model.template)
    except ValueError as err:
        problems.append(str(err))
        template = get_template("bge-icl")
    for key, value, low in (("batch_size", cfg.batch_size, 1), ("group_size", cfg.group_size, 1),
                            ("max_examples", cfg.max_examples, 0)):  # fmt: skip
        if value < low:
            problems.append(f"{key}={value}; use {low} or more")
    if cfg.symmetric_batch_size is not None and cfg.symmetric_batch_size < 1:
        problems.append(
            f"symmetric_batch_size={cfg.symmetric_batch_size}; use 1 or more, or null (batch_size // 2)"
        )
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            problems.append(f"{key}={getattr(cfg, key)!r}; use one of {', '.join(allowed)}")
    unknown = sorted(set(cfg.prompt_passages) - set(ROW_TYPES.values()))
    if unknown:
        problems.append(
            f"prompt_passages has unknown type(s) {unknown}; use types of {sorted(set(ROW_TYPES.values()))}"
        )
    for key in ("example_query_max_tokens", "example_passage_max_tokens"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key}={getattr(cfg, key)}; use 1 or more")
    if cfg.example_cut == "wrapped":
        try:
            template.example_parts()
        except ValueError as err:
            problems.append(str(err))
    if cfg.temperature <= 0:
        problems.append(f"temperature={cfg.temperature}; it must be positive (the paper: 0.02)")
    datasets: list[Dataset] = []
    try:
        with offline_scale(cfg.data.scale):
            datasets, guard = load_datasets(cfg.data)
            if cfg.mine.negatives < cfg.group_size - 1:  # mined negatives fill the groups otherwise
                problems += check_group_size(datasets, cfg.group_size)
            problems += check_disjoint(datasets, guard)
            if cfg.knowledge_distillation:
                problems += check_teacher_scores(datasets, cfg.group_size)
    except (TrainDataError, KeyError, FileNotFoundError, ValueError) as err:
        problems.append(str(err).strip("'\""))
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        problems.append(f"output_dir={out} is a file; choose a folder")
    if cfg.knowledge_distillation and cfg.mine.negatives:
        problems.append(
            "knowledge_distillation=true with mine.negatives: mined negatives have no teacher scores; "
            "mine, score the rows with a reranker, then train on the scored JSONL"
        )
    if cfg.mine.negatives and len(cfg.mine.rank_range) != 2:
        problems.append(f"mine.rank_range={cfg.mine.rank_range}; give [first, last) ranks, e.g. [2, 100]")
    models = {"model": cfg.model}
    if cfg.mine.model:
        try:
            models["mine.model"] = load_model_config(cfg.mine.model)
        except ValueError as err:
            problems.append(f"mine.model: {err}")
    problems += [
        f"{key}: backend=mteb runs mteb's own wrapper, for evaluation only; train and mine with "
        "backend=decoder (or sentence-transformers for mining)"
        for key, m in models.items()
        if m.backend == "mteb"
    ]
    if problems:
        raise TrainDataError(problems, listed=True)
    batches = StepBatches(datasets, cfg.batch_size, cfg.seed, world_size(), cfg.symmetric_batch_size)
    return TrainPlan(datasets, batches, template)


def train(cfg: TrainConfig, plan: TrainPlan | None = None, *, callbacks: list[Any] | None = None) -> Path:
    """Train, resume from the last checkpoint in `output_dir` if there is one, write the output.
    `callbacks`: transformers TrainerCallbacks (trackers, early stopping, tests' kill switches)."""
    from transformers.trainer_utils import get_last_checkpoint

    from evalharness.train.trainer import (
        ContrastiveTrainer,
        load_model,
        training_arguments,
        write_output,
    )

    plan = plan or validate(cfg)
    if cfg.mine.negatives:
        plan = _with_mined_negatives(cfg, plan)
    model, tokenizer = load_model(cfg)
    collator = make_collator(cfg, tokenizer, plan.template)
    args = training_arguments(cfg)
    trainer = ContrastiveTrainer(
        model=model,
        args=args,
        train_dataset=plan.batches,
        data_collator=collator,
        temperature=cfg.temperature,
        cross_device=cfg.cross_device_negatives,
        callbacks=callbacks,
    )
    checkpoint_dir = Path(args.output_dir)
    last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last:
        logger.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    counts = collator.examples_per_query
    total = sum(counts.values()) or 1
    stats = {
        "steps": result.global_step,
        "tokens": trainer.tokens,  # this process's, unpadded
        "tokens_per_second": round(trainer.tokens / max(result.metrics.get("train_runtime", 0.0), 1e-9), 1),
        "train_loss": result.training_loss,
        "examples_per_query": {str(k): n for k, n in sorted(counts.items())},
        "queries_with_examples": round(1 - counts.get(0, 0) / total, 4),
        "rows": {ds.name: len(ds.rows) for ds in plan.datasets},
        "steps_per_epoch": plan.batches.steps_per_epoch,
    }
    if trainer.is_world_process_zero():
        out = write_output(cfg, trainer.model, tokenizer, plan.datasets, stats)
        write_log(trainer.state.log_history, out / "train_log.csv")
        return out
    return Path(cfg.output_dir)


def write_log(history: list[dict[str, Any]], path: Path) -> None:
    """The loss curve, learning rate, tokens/s and examples per query at every logging step, as CSV
    (what the trackers get, for runs with `report_to=[none]`)."""
    import pandas as pd

    rows = [h for h in history if "loss" in h]
    pd.DataFrame(rows).to_csv(path, index=False)


def make_collator(cfg: TrainConfig, tokenizer: Any, template: PromptTemplate) -> Any:
    from evalharness.train.collator import ICLCollator

    return ICLCollator(
        tokenizer,
        template,
        query_max_length=cfg.model.query_max_length,
        passage_max_length=cfg.model.passage_max_length,
        max_examples=cfg.max_examples,
        example_query_max_tokens=cfg.example_query_max_tokens,
        example_passage_max_tokens=cfg.example_passage_max_tokens,
        example_cut=cfg.example_cut,
        prefix_max_tokens=cfg.prefix_max_tokens,
        query_truncation=cfg.query_truncation,
        group_size=cfg.group_size,
        class_group=cfg.class_group,
        positive=cfg.positive,
        prompt_passages=list(cfg.prompt_passages),
        seed=cfg.seed,
        teacher_scores=cfg.knowledge_distillation,
        zero_shot_steps=cfg.zero_shot_steps,
    )


def _with_mined_negatives(cfg: TrainConfig, plan: TrainPlan) -> TrainPlan:
    """Mine with the chosen embedder (or the base model), then rebuild the steps from the new rows."""
    import dataclasses

    from evalharness.encoders.loading import load_backend
    from evalharness.train.mine import mine_hard_negatives

    model_cfg = load_model_config(cfg.mine.model) if cfg.mine.model else cfg.model
    backend = load_backend(model_cfg)
    datasets = [
        mine_hard_negatives(
            ds, backend, get_template(model_cfg.template), negatives=cfg.mine.negatives,
            rank_range=cfg.mine.rank_range, seed=cfg.seed, batch_size=model_cfg.batch_size,
        )
        for ds in plan.datasets
    ]  # fmt: skip
    del backend
    batches = StepBatches(
        datasets, cfg.batch_size, cfg.seed, plan.batches.world_size, cfg.symmetric_batch_size
    )
    return dataclasses.replace(plan, datasets=datasets, batches=batches)
