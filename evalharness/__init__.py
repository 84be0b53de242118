"""evalharness: few-shot (in-context) evaluation of text embedders on MTEB and AIR-Bench.

The Python API (`evalharness.api`, loaded on first use so that `import evalharness` stays light):
`evaluate`, `report`, `train`, `load_model` / `ICLEncoder` (for `mteb.evaluate`), and `run_config` /
`compose`, which build the typed configs the command line builds.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["ICLEncoder", "compose", "evaluate", "load_model", "report", "run_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "ICLEncoder":
        from evalharness.encoders import ICLEncoder

        return ICLEncoder
    if name in __all__:
        from evalharness import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalharness' has no attribute {name!r}")
