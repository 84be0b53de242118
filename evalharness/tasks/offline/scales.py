"""The data scale of the offline tasks ("mini" or "full"), one knob for all of them.

It lives apart from the data code so that callers that only pick a scale (the runner, training) need
nothing else. ``"mini"`` (default) keeps every task small and its texts short, so that a 135M-parameter
decoder on 2 CPU cores can run zero-shot plus a couple of few-shot settings over all tasks in a few
minutes; ``"full"`` uses all the data (still small). Pick it with `set_scale`, the environment variable
``EVALHARNESS_OFFLINE_SCALE``, or per task instance (``OfflineLeeSTS(scale="full")``). The scale is
read when a task loads its data. Mini and full runs share task names and dataset revisions, so keep
their results apart (different result caches or experiment names). The sizes per scale are in
`evalharness.tasks.offline.common`.
"""

from __future__ import annotations

import contextlib
import os

SCALES = ("mini", "full")
SCALE_ENV_VAR = "EVALHARNESS_OFFLINE_SCALE"

_scale_override: str | None = None


def _check_scale(scale: str) -> str:
    scale = scale.strip().lower()
    if scale not in SCALES:
        raise ValueError(f"unknown offline task scale {scale!r}; expected one of {SCALES}")
    return scale


def set_scale(scale: str | None) -> None:
    """Set the data scale ("mini" or "full") for tasks that load afterwards; None clears the setting,
    so that the environment variable ``EVALHARNESS_OFFLINE_SCALE`` (default "mini") applies again."""
    global _scale_override
    _scale_override = None if scale is None else _check_scale(scale)


@contextlib.contextmanager
def scale(value: str | None):
    """`set_scale` for the duration of a block (training reads the full train splits; the run's
    setting is restored afterwards)."""
    global _scale_override
    previous = _scale_override
    set_scale(value)
    try:
        yield
    finally:
        _scale_override = previous


def get_scale() -> str:
    """The scale in force: `set_scale`'s, else ``$EVALHARNESS_OFFLINE_SCALE``, else "mini"."""
    if _scale_override is not None:
        return _scale_override
    return _check_scale(os.environ.get(SCALE_ENV_VAR) or "mini")
