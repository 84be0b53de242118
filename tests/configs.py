"""One way for tests to build a typed RunConfig: through the public API's `run_config`, the one place
a config is composed (conf/config.yaml, then the model config, then the test's defaults and the
case's overrides, merged as Hydra would, so wrong keys and types fail the same way)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from evalharness.api import run_config as compose_run_config
from evalharness.config import ModelConfig, RunConfig


def run_config(model_config: ModelConfig, defaults: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    fields = OmegaConf.to_container(OmegaConf.merge(defaults, overrides))
    return compose_run_config(model_config, **fields)  # type: ignore[arg-type]
