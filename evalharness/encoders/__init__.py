"""Model adapters: the few-shot MTEB encoder, its backends and model loading."""

from evalharness.encoders.icl import ICLEncoder

__all__ = ["ICLEncoder"]
