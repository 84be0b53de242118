"""Shared fixtures. Models load once per session: SmolLM2 takes ~1 s after its one-time conversion."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# mteb creates its default result cache at import; keep it out of the user's home during tests
os.environ.setdefault("MTEB_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "mteb"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm2_config():
    from evalharness.config import load_model_config

    return load_model_config("smollm2-135m", batch_size=4)


@pytest.fixture(scope="session")
def smollm2_backend(smollm2_config):
    from evalharness.encoders.loading import load_backend

    return load_backend(smollm2_config)


@pytest.fixture(scope="session")
def minilm_config():
    from evalharness.config import load_model_config

    return load_model_config("minilm")


@pytest.fixture(scope="session")
def minilm_backend(minilm_config):
    from evalharness.encoders.loading import load_backend

    return load_backend(minilm_config)
