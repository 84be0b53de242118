"""What each training setting costs: seconds per optimizer step of `evalharness train` (the real
Trainer, collator and loss) for the offline preset and one change at a time, measured side by side in
one process on the same rows, with the ratio to the preset.

    python -m benchmarks.bench_train              # about 10 minutes on 2 CPU cores
    python -m benchmarks.bench_train --steps 6    # more steps per setting (steadier, slower)

The rows are OfflineChatterbotRetrieval's train pairs; for `group_size` > 1 each row gets other rows'
positives as its negatives (the packaged task has none). The first step of every setting is not
timed (allocation, first-call overheads).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from typing import Any

from benchmarks.common import apply_threads, log, machine, save_json

#: (label, overrides of the offline preset); each changes one thing.
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("offline preset, zero-shot steps", {"max_examples": 0}),
    ("+ examples, k ~ U{0..3} (the preset's last 16 steps)", {"max_examples": 3, "zero_shot_steps": 0}),
    ("+ examples, k ~ U{0..5}", {"max_examples": 5, "zero_shot_steps": 0}),
    ("LoRA on attention only (q/k/v/o)", {"max_examples": 0, "lora": {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}}),
    ("LoRA on all 30 layers", {"max_examples": 0, "lora": {"layers": []}}),
    ("group_size 4 (3 hard negatives)", {"max_examples": 0, "group_size": 4}),
    ("gradient checkpointing", {"max_examples": 0, "gradient_checkpointing": True}),
    ("batch 32", {"max_examples": 0, "batch_size": 32}),
]  # fmt: skip


def _with_negatives(datasets: list[Any], n: int) -> list[Any]:
    out = []
    for ds in datasets:
        rows, size = ds.rows, len(ds.rows)
        negs = [tuple(rows[(i + j + 1) % size].pos[0] for j in range(n)) for i in range(size)]
        out.append(
            dataclasses.replace(
                ds, rows=[dataclasses.replace(r, neg=g) for r, g in zip(rows, negs, strict=True)]
            )
        )
    return out


def time_setting(overrides: dict[str, Any], steps: int) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from transformers import TrainerCallback

    from evalharness.train.data import StepBatches
    from evalharness.train.offline import preset_config
    from evalharness.train.run import train, validate

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as out:
        base = OmegaConf.structured(preset_config(out))
        merged = {"max_steps": steps + 1, "save_steps": 10_000, "logging_steps": 10_000, "warmup_steps": 0}
        cfg = OmegaConf.to_object(OmegaConf.merge(base, overrides, merged))
        plan = validate(cfg) if cfg.group_size == 1 else None
        if plan is None:  # the packaged rows have no negatives: borrow other rows' positives
            cfg_one = dataclasses.replace(cfg, group_size=1)
            plan = validate(cfg_one)
            datasets = _with_negatives(plan.datasets, cfg.group_size - 1)
            batches = StepBatches(datasets, cfg.batch_size, cfg.seed, plan.batches.world_size)
            plan = dataclasses.replace(plan, datasets=datasets, batches=batches)
        clock = Clock()
        train(cfg, plan, callbacks=[clock])
        timed = clock.times[1:]
        return {"s_per_step": sum(timed) / len(timed), "steps_timed": len(timed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per setting")
    args = parser.parse_args(argv)
    apply_threads()
    log(f"machine: {machine()}")
    rows = []
    for label, overrides in SETTINGS:
        result = time_setting(overrides, args.steps)
        rows.append({"setting": label, **result})
        log(f"{label}: {result['s_per_step']:.2f} s/step")
    base = rows[0]["s_per_step"]
    lines = ["| setting | s / step | × preset (zero-shot steps) |", "|---|---:|---:|"]
    lines += [f"| {r['setting']} | {r['s_per_step']:.2f} | {r['s_per_step'] / base:.2f} |" for r in rows]
    table = "\n".join(lines)
    log(table)
    save_json("train", {"rows": rows, "machine": machine(), "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
