"""One way for tests to build a typed RunConfig: the schema, a model config, the test's defaults,
then the case's overrides (merged as Hydra would, so wrong keys and types fail the same way)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from evalharness.config import ModelConfig, RunConfig


def run_config(model_config: ModelConfig, defaults: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    base = OmegaConf.structured(RunConfig)
    base.model = OmegaConf.structured(model_config)
    return OmegaConf.to_object(OmegaConf.merge(base, defaults, overrides))  # type: ignore[return-value]
