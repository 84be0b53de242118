"""Typed configs of `evalharness train`, registered with Hydra's ConfigStore like the run's, so a typo
in any key of conf/train/*.yaml or an override fails at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalharness.config import ModelConfig

#: Row types (FlagEmbedding's names accepted as aliases) -> how a batch of them trains.
ROW_TYPES = {
    "retrieval": "retrieval", "normal": "retrieval",
    "sts": "sts", "symmetric_sts": "sts",
    "classification": "classification", "symmetric_class": "classification",
    "clustering": "clustering", "symmetric_clustering": "clustering",
}  # fmt: skip
#: What a trained output folder records about its making (config, data digests, stats, revision).
MANIFEST = "evalharness_train.json"
#: The paper uses in-batch negatives for retrieval only.
IN_BATCH_TYPES = ("retrieval",)
#: FlagEmbedding's `symmetric_*` types: their batches are `symmetric_batch_size` queries.
SYMMETRIC_TYPES = ("sts", "classification", "clustering")
#: Closed choices of the batch-construction switches (docs/training.md: "where we differ from FlagEmbedding").
CHOICES = {
    "positive": ("random", "first"),
    "class_group": ("labels", "fill"),
    "example_cut": ("wrapped", "raw"),
    "query_truncation": ("query", "joint"),
}


@dataclass
class TrainDataConfig:
    """Where rows come from. Each file is one dataset (every batch is drawn from one dataset)."""

    files: list[str] = field(default_factory=list)  # FlagEmbedding JSONL files or folders of *.jsonl
    tasks: list[str] = field(default_factory=list)  # mteb / offline tasks whose `split` becomes rows
    split: str = "train"  # never an evaluated split of those tasks (refused)
    max_rows: int | None = None  # per dataset, for quick runs
    scale: str = "full"  # offline tasks: all the packaged train data (their test splits stay disjoint)
    # refuse training rows whose query or positive occurs in these tasks' evaluated splits
    # (default: the tasks in `tasks`)
    check_against: list[str] = field(default_factory=list)


@dataclass
class LoraSettings:
    """peft LoRA. The paper: r=64, alpha=32; FlagEmbedding's README: r=32, alpha=64 (conf/train/)."""

    r: int = 64
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj", "up_proj", "gate_proj"]
    )
    layers: list[int] = field(default_factory=list)  # empty: every layer; negative: from the top (-1 = last)


@dataclass
class MineConfig:
    """Hard negatives for rows without any (FlagEmbedding's `hn_mine`): 0 = off."""

    negatives: int = 0  # per row; group_size - 1 fills the groups
    rank_range: list[int] = field(default_factory=lambda: [2, 100])  # sample from these ranks
    model: str | None = None  # a conf/model name (e.g. minilm) or YAML path; null: the base model


@dataclass
class TrainConfig:
    """One `evalharness train`: a base model, rows, the recipe and the engine's settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    mine: MineConfig = field(default_factory=MineConfig)
    output_dir: str = "outputs/train"
    template: str | None = None  # default: the model's (bge-icl)
    max_examples: int = 5  # k ~ U{0..max_examples} in-batch examples per query
    # a warm phase (not the paper's): queries of the first N steps carry no examples (with gradient
    # accumulation, N counts per-device batches)
    zero_shot_steps: int = 0
    # each example's query and response are cut to these (FlagEmbedding's example_query_max_len /
    # example_passage_max_len: packaged defaults 64 / 96, the paper 256 / 256)
    example_query_max_tokens: int = 64
    example_passage_max_tokens: int = 96
    # "wrapped": the instruction-wrapped example query is cut, then decoded (FlagEmbedding);
    # "raw": the query text is cut, then wrapped (the instruction is never cut)
    example_cut: str = "wrapped"
    # the examples' budget, counted with the tokenizer's special tokens (FlagEmbedding: query_max_len - 512)
    prefix_max_tokens: int = 1536
    # "query": examples kept whole, the instruction-wrapped query cut to model.query_max_length (what the
    # evaluation does); "joint": examples + query cut as one string from the right (FlagEmbedding's training)
    query_truncation: str = "query"
    group_size: int = 8  # passages per query: 1 positive + (group_size - 1) hard negatives
    # "labels": a classification batch has min(negatives of its first row + 1, group_size) passages per
    # query, so a binary task trains 1 positive + 1 negative (FlagEmbedding); "fill": group_size, the
    # row's negatives repeated
    class_group: str = "labels"
    # "random": each row's positive (and the response its examples show) drawn per step (FlagEmbedding);
    # "first": always pos[0]
    positive: str = "random"
    # row types whose passages are instruction-wrapped like queries (FlagEmbedding: STS and clustering;
    # classification labels stay raw), cut to model.passage_max_length
    prompt_passages: list[str] = field(default_factory=lambda: ["sts", "clustering"])
    temperature: float = 0.02
    # add FlagEmbedding's kl_div distillation from the rows' pos_scores/neg_scores (a reranker's)
    knowledge_distillation: bool = False
    cross_device_negatives: bool = True  # in-batch types: negatives from every device (all-gather)
    batch_size: int = 16  # queries per device and step
    # ... for STS, classification and clustering datasets; null: batch_size // 2 (FlagEmbedding)
    symmetric_batch_size: int | None = None
    learning_rate: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    warmup_steps: int = 0
    gradient_checkpointing: bool = False
    save_steps: int = 500
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])  # or wandb, mlflow, none
    seed: int = 0
    extra_args: dict[str, Any] = field(default_factory=dict)  # any other transformers TrainingArguments


def register_train_configs() -> None:
    from hydra.core.config_store import ConfigStore

    from evalharness.config import _open_maps

    ConfigStore.instance().store(name="train_base", node=_open_maps(TrainConfig))
