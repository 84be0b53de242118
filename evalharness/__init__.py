"""evalharness: few-shot (in-context) evaluation of text embedders on MTEB and AIR-Bench."""

__version__ = "0.1.0"
