"""Whether a decoder attends causally: the shared-prefix KV cache is exact only then.

gte-Qwen2 with its authors' code, LLM2Vec and NV-Embed attend both ways, so the states of a cached
examples prefix would never see the query. A 2-token probe on the loaded model decides; a model that
says otherwise in its config could be wrong, a forward pass cannot.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from evalharness.errors import EvalharnessError

logger = logging.getLogger(__name__)


class AttentionError(EvalharnessError, ValueError):
    """A setting the model's attention cannot honour (the prefix cache on a bidirectional model)."""


def attends_causally(model: Any, device: str) -> bool:
    """Whether the first position ignores what follows (a causal decoder's does; gte-Qwen2's own code,
    LLM2Vec, NV-Embed attend both ways): the prefix cache is exact only then. A model the 2-token probe
    cannot run is taken as causal (the cached path falls back on its own errors)."""
    ids = torch.tensor([[1, 2], [1, 3]], device=device)
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                        position_ids=torch.tensor([[0, 1], [0, 1]], device=device)).last_hidden_state  # fmt: skip
    except Exception as err:  # noqa: BLE001 - any model's code
        logger.debug("attention probe failed (%s); assuming causal attention", err)
        return True
    first = out[:, 0].float()
    return bool(torch.allclose(first[0], first[1], rtol=1e-3, atol=1e-4 * float(first.abs().max()) + 1e-6))
