"""Run by tests/test_train.py under `torchrun --nproc_per_node 2`: the real `evalharness train` path
(validate, Trainer, DDP over gloo, cross-device negatives) on a tiny model. Each process records the
rows of every batch its collator builds and writes them to `<out>/rank<r>.json`, so the test can check
that both devices train on the same dataset at every step."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from evalharness.train import collator as collator_module
from evalharness.train.config import TrainConfig
from evalharness.train.run import train, validate


def main(config: str, out: str) -> None:
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), json.loads(config)))
    seen: list[list[str]] = []
    steps: list[int] = []
    build = collator_module.ICLCollator.__call__

    def recording(self, features):
        seen.append([row.source for row in features[0].rows])
        steps.append(features[0].step)
        return build(self, features)

    collator_module.ICLCollator.__call__ = recording
    plan = validate(cfg)
    train(cfg, plan)
    rank = os.environ["RANK"]
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"batches": seen, "steps": steps, "world": plan.batches.world_size})
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
