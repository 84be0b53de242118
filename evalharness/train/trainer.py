"""transformers' Trainer, extended by a loss and a collator: the loop, gradient accumulation, mixed
precision, checkpoints, resume, DDP/DeepSpeed (through `accelerate launch` / `torchrun`) and trackers
are the library's. What is ours: last-token embeddings of left-padded batches (as the decoder backend
pools), InfoNCE, and an output folder that `evalharness run` evaluates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from evalharness.train.config import MANIFEST, TrainConfig
from evalharness.train.data import StepBatches
from evalharness.train.loss import info_nce

logger = logging.getLogger(__name__)


def last_token(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The final hidden state at the last position: every row's EOS under left padding. Positions
    start at each text's first real token, as the decoder backend passes them."""
    positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False)
    return out.last_hidden_state[:, -1]


class ContrastiveTrainer(Trainer):
    """A Trainer whose loss is InfoNCE over one same-dataset batch per step."""

    def __init__(self, *args: Any, temperature: float, cross_device: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.cross_device = cross_device
        self.tokens = 0  # real (unpadded) query and passage tokens this process has trained on
        self._since: tuple[float, int] | None = None  # (time, tokens) at the previous log

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not isinstance(dataset, StepBatches):
            return super()._get_train_sampler(train_dataset)
        if dataset.world_size != self.args.world_size:
            raise RuntimeError(
                f"the steps were laid out for {dataset.world_size} process(es) but this run has "
                f"{self.args.world_size}; validate inside the launched processes"
            )
        return StepSampler(len(dataset))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        in_batch = bool(inputs.get("in_batch_negatives", True))
        if self._since is None:  # the clock of the first tokens/s starts with the first batch
            self._since = (time.perf_counter(), self.tokens)
        if model.training:
            self.tokens += int(inputs["query_attention_mask"].sum() + inputs["passage_attention_mask"].sum())
        q = last_token(model, inputs["query_input_ids"], inputs["query_attention_mask"])
        p = last_token(model, inputs["passage_input_ids"], inputs["passage_attention_mask"])
        loss = info_nce(
            q,
            p,
            temperature=self.temperature,
            in_batch=in_batch,
            cross_device=self.cross_device and in_batch,
            teacher_scores=inputs.get("teacher_scores"),
        )
        return (loss, {"query_embeddings": q}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Adds this process's training tokens per second since the last log, and how many examples
        the queries carried so far (a zero here is the #1158 trap)."""
        now = time.perf_counter()
        if self._since is not None and now > self._since[0] and "loss" in logs:
            logs["tokens_per_second"] = round((self.tokens - self._since[1]) / (now - self._since[0]), 1)
        self._since = (now, self.tokens)
        counts = getattr(self.data_collator, "examples_per_query", None)
        if counts:
            total = sum(counts.values())
            logs["examples_per_query"] = round(sum(k * n for k, n in counts.items()) / total, 3)
            logs["queries_with_examples"] = round(1 - counts.get(0, 0) / total, 3)
        super().log(logs, *args, **kwargs)


class StepSampler(torch.utils.data.Sampler[int]):
    """The current epoch's batches in step order, each step's W batches consecutive. accelerate
    shards a dataloader by handing batch i to process i % W, so every device gets its batch of the
    same step: one dataset per step across devices. The Trainer calls `set_epoch`."""

    def __init__(self, n_batches: int) -> None:
        self.n_batches, self.epoch = n_batches, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        return iter(range(self.epoch * self.n_batches, (self.epoch + 1) * self.n_batches))


def _lora_layers(layers: list[int], n_layers: int) -> list[int] | None:
    if not layers:
        return None
    return sorted({layer if layer >= 0 else n_layers + layer for layer in layers})


def load_model(cfg: TrainConfig) -> tuple[Any, Any]:
    """The base decoder (AutoModel, as the backend loads it) with LoRA adapters, and its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer, set_seed

    from evalharness.encoders.backends import resolve_device, resolve_dtype
    from evalharness.encoders.loading import resolve_source

    path = resolve_source(cfg.model.source)
    revision = None if Path(path).exists() else cfg.model.revision
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    tokenizer.padding_side = "left"
    dtype = resolve_dtype(cfg.model.dtype, resolve_device(cfg.model.device))
    model = AutoModel.from_pretrained(path, revision=revision, dtype=dtype)
    modules_to_save = None
    missing = [t for t in cfg.model.special_tokens if t not in tokenizer.get_vocab()]
    if missing:  # the reference adds <instruct>/<query>/<response>; their new rows must be trained
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
        model.resize_token_embeddings(len(tokenizer))
        modules_to_save = ["embed_tokens"]
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        layers_to_transform=_lora_layers(list(cfg.lora.layers), model.config.num_hidden_layers),
        layers_pattern="layers" if cfg.lora.layers else None,  # AutoModel names them layers.N
        modules_to_save=modules_to_save,
    )
    set_seed(cfg.seed)  # LoRA's initial weights: the same seed gives the same run
    model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, tokenizer


def _digest(datasets: list[Any]) -> dict[str, str]:
    out = {}
    for ds in datasets:
        h = hashlib.sha256()
        for r in ds.rows:
            h.update(json.dumps([r.query, r.pos, r.neg, r.prompt, r.type], ensure_ascii=False).encode())
        out[ds.name] = h.hexdigest()[:16]
    return out


def _preset() -> str | None:
    """The `train=` preset Hydra composed (None outside `evalharness train`)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("train") if HydraConfig.initialized() else None


def training_arguments(cfg: TrainConfig) -> Any:
    from transformers import TrainingArguments

    from evalharness.encoders.backends import resolve_device

    cpu = resolve_device(cfg.model.device) == "cpu"
    # transformers 5 renamed it (the old name warns); 4.x knows only the old one
    fields = TrainingArguments.__dataclass_fields__
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    )
    return TrainingArguments(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"),
        per_device_train_batch_size=1,  # one same-dataset batch per device and step
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_steps,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        seed=cfg.seed,
        **{checkpointing: cfg.gradient_checkpointing},
        remove_unused_columns=False,
        dataloader_drop_last=False,
        use_cpu=cpu,
        **dict(cfg.extra_args),
    )


def write_output(
    cfg: TrainConfig, model: Any, tokenizer: Any, datasets: list[Any], stats: dict[str, Any]
) -> Path:
    """The adapter, the merged checkpoint (what the decoder backend loads) with a tokenizer that appends
    EOS, what made it, and what others need to load it (`publish`: sentence-transformers files and a
    model card)."""
    from evalharness.provenance import package_versions
    from evalharness.train.publish import eos_appending, instructions_of, publish

    out = Path(cfg.output_dir)
    model.save_pretrained(out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out)
    eos_appending(tokenizer).save_pretrained(out)
    config = dataclasses.asdict(cfg)
    manifest = {
        "base_model": {"name": cfg.model.name, "source": cfg.model.source, "revision": cfg.model.revision},
        "preset": _preset(),
        "config": config,
        "data": _digest(datasets),
        "instructions": instructions_of(datasets),
        "versions": package_versions(),
        "stats": stats,
    }
    revision = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:12]
    manifest["revision"] = revision
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    publish(out, cfg, manifest, merged.config.hidden_size)
    return out


def eval_command(cfg: TrainConfig, out: Path) -> str:
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    from evalharness.train.publish import trained_model_name

    name = trained_model_name(cfg)
    return (
        f"evalharness run model.source={out} model.name={name} model.revision={manifest['revision']} "
        f"model.template={cfg.template or cfg.model.template} model.meta={{adapted_from: {cfg.model.name}}}"
    )
