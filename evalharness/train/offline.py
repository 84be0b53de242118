"""The offline trained model (`source: offline:smollm2-135m-icl`): SmolLM2-135M trained with the
offline preset (conf/train/offline.yaml), built once into the cache on first use, as the GGUF
conversion is. The folder is named by a digest of the resolved training config, so a changed preset
trains a new model instead of reusing an old one; a build killed midway resumes from its checkpoints.
Training runs as its own `evalharness train` process, so nothing it sets (global seeds, accelerate's
state) leaks into the run that asked for the model: a run that trains the model scores exactly as a
later run that finds it in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

from evalharness.train.config import TrainConfig

logger = logging.getLogger(__name__)

BASE_MODEL = "smollm2-135m"
PRESET = "offline"


def preset_config(output_dir: str | Path = "") -> TrainConfig:
    """What `evalharness train` composes by default (model smollm2-135m, train=offline), without
    Hydra: this runs inside `evalharness run`, where Hydra is already initialised."""
    from omegaconf import OmegaConf

    from evalharness.config import CONF_DIR, load_model_config

    base = OmegaConf.structured(TrainConfig)
    base.model = OmegaConf.structured(load_model_config(BASE_MODEL))
    preset = OmegaConf.load(CONF_DIR / "train" / f"{PRESET}.yaml")
    return OmegaConf.to_object(OmegaConf.merge(base, preset, {"output_dir": str(output_dir)}))


def preset_digest() -> str:
    config = dataclasses.asdict(preset_config())
    config.pop("output_dir")
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def trained_offline_model() -> str:
    """The trained folder, training it first if the cache lacks it (a few minutes on 2 cores)."""
    import subprocess
    import sys

    from filelock import FileLock

    from evalharness import kernels
    from evalharness.paths import cache_dir

    # trained with the pinned CPU kernels where the CPU has them, so that the cached model (and every
    # result of it) is the same on every such host, whoever triggers the training
    pin = kernels.can_pin()
    out = cache_dir() / "models" / f"{BASE_MODEL}-icl-{preset_digest()}-{'avx2' if pin else 'native'}"
    if (out / "config.json").is_file():
        return str(out)
    with FileLock(str(out) + ".lock"):
        if not (out / "config.json").is_file():
            building = out.with_name(out.name + ".partial")
            logger.info("training the offline ICL model once (conf/train/%s.yaml) into %s", PRESET, out)
            command = [
                sys.executable,
                "-m",
                "evalharness.cli",
                "train",
                f"train={PRESET}",
                f"output_dir={building}",
            ]
            env = kernels.pinned_env() if pin else None
            if subprocess.run(command, check=False, env=env).returncode != 0:
                raise RuntimeError(f"training the offline model failed: {' '.join(command)}")
            shutil.rmtree(building / "checkpoints", ignore_errors=True)
            shutil.rmtree(building / "hydra", ignore_errors=True)
            building.rename(out)
    return str(out)
