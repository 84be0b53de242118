"""Typed configs. The same dataclasses back the Hydra config groups in conf/ (registered with
Hydra's ConfigStore by the runner), so a typo in a key or a wrong type fails at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

BACKENDS = ("decoder", "sentence-transformers")
SYMMETRIC_POLICIES = ("prompt-all", "raw")


@dataclass
class ModelConfig:
    """One embedding model and how to drive it.

    `source` is a hub id, a local directory, or `offline:<name>` for the models that PyPI packages
    ship (converted once into the cache directory). `name`/`revision` are what results are filed
    under, mteb-style; for hub models that mteb knows, its pinned revision is used when unset."""

    name: str = "???"
    source: str = "???"
    revision: str | None = None
    backend: str = "decoder"
    template: str = "bge-icl"
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 16
    query_max_length: int = 512
    passage_max_length: int = 512
    normalize: bool = True
    # FlagEmbedding's MTEB runner turns normalisation off for classification; we follow it.
    normalize_classification: bool = False
    # "prompt-all": every text of a symmetric task (classification, clustering, STS, pair
    # classification, summarisation) gets prefix + instruction, as the reference runner does.
    symmetric: str = "prompt-all"
    special_tokens: list[str] = field(default_factory=list)
    trust_remote_code: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # ModelMeta fields (n_parameters, license, ...)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"model.backend={self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.symmetric not in SYMMETRIC_POLICIES:
            raise ValueError(
                f"model.symmetric={self.symmetric!r}; use one of {', '.join(SYMMETRIC_POLICIES)}"
            )


def available_models() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def load_model_config(name_or_path: str, **overrides: Any) -> ModelConfig:
    """A model config by group name (conf/model/<name>.yaml) or YAML path, checked against the schema."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONF_DIR / "model" / f"{name_or_path}.yaml"
    if not path.is_file():
        import difflib

        known = available_models()
        close = difflib.get_close_matches(name_or_path, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name_or_path!r}; known: {', '.join(known)}.{hint}")
    schema = OmegaConf.structured(ModelConfig)
    merged = OmegaConf.merge(schema, OmegaConf.load(path), overrides)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
