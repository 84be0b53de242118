"""Which CPU float kernels a process computes with, and how to hold them to one path so that a CPU
result is the same, bit for bit, on every x86-64 CPU with AVX2.

PyTorch's vectorised kernels (softmax, activations, norms), MKL (torch's matrix products and vector
math), oneDNN, numpy's SIMD loops (exp, log, ...) and OpenBLAS (numpy, scipy, scikit-learn) each pick
a code path for the CPU they find when they load. The AVX-512 and AVX2 paths round differently, so the
same model and data give embeddings that differ in the last bits, and that is enough to flip a
logistic-regression decision or a tied rank: the committed demo once read +7.50 on an AVX-512 host
and +7.81 on an AVX2 one. Holding every library to its AVX2 path (which every x86-64 server CPU of the
last decade has) makes the numbers identical across hosts. OpenBLAS also
takes a different path single-threaded, so it runs with one thread (it only serves the small
scikit-learn and scipy work; torch keeps its threads: its results were the same with 1 to 8).

MKL picks its code by CPU vendor as well as instruction set (its AVX2 branch gave other last bits on an
Intel CPU than on an AMD one), so it runs its `COMPATIBLE` branch, the one it documents as giving the
same results on Intel and non-Intel processors. That branch is the expensive part of the pin: SmolLM2's
forward pass runs at 45% of its native speed (the ATen, oneDNN, numpy and OpenBLAS pins cost 4%).

The libraries read these settings when they load, so they must be in the environment before the
process imports torch or numpy: `pinned_env()` for a child process, `run_pinned()` to run a command
of ours in one.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from typing import Any

#: The instruction set every library is held to.
PINNED_ISA = "avx2"
#: Set in a pinned environment, so that a process (and its children) can tell it was started pinned.
MARK = "EVALHARNESS_CPU_KERNELS"

#: What a pinned environment sets (and numpy's NPY_DISABLE_CPU_FEATURES, which depends on its build).
PINNED_SETTINGS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels
    "MKL_CBWR": "COMPATIBLE",  # MKL (torch's matrix products and vector math): vendor-neutral branch
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (torch's mkldnn operators)
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS behind numpy, scipy and scikit-learn
    "OPENBLAS_NUM_THREADS": "1",
    MARK: PINNED_ISA,
}


def _numpy_features() -> tuple[dict[str, bool], list[str]]:
    """numpy's CPU feature table and the SIMD targets it was built to dispatch to."""
    try:
        from numpy._core import _multiarray_umath as umath  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import _multiarray_umath as umath
    return dict(umath.__cpu_features__), list(umath.__cpu_dispatch__)


def can_pin() -> bool:
    """Whether this CPU can run the pinned path: x86-64 with AVX2 and FMA."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    features, _ = _numpy_features()
    return bool(features.get("AVX2")) and bool(features.get("FMA3"))


def pinned_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with every library held to its AVX2 path."""
    env = dict(os.environ if base is None else base)
    env.update(PINNED_SETTINGS)
    _, dispatch = _numpy_features()
    above_avx2 = [t for t in dispatch if t.startswith("AVX512") or t in ("X86_V4", "AVX10")]
    if above_avx2:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(above_avx2)
    return env


def is_pinned(env: Mapping[str, str] | None = None) -> bool:
    """Whether `env` (default: this process's) carries every pinned setting."""
    env = os.environ if env is None else env
    return all(env.get(k) == v for k, v in PINNED_SETTINGS.items())


def describe() -> dict[str, Any]:
    """What a result records about the CPU kernels that computed it (stable across runs on one setup:
    torch's capability is always read, not only once something happened to import torch, which made
    the first cell of a process record less than the others)."""
    import torch

    return {
        "pinned": os.environ.get(MARK) if is_pinned() else None,
        "torch": torch.backends.cpu.get_cpu_capability(),
    }


def run_pinned(argv: Sequence[str]) -> int:
    """Run `evalharness *argv` in a child process with the pinned environment; its exit status.

    A child rather than exec: this process has loaded numpy already, and callers of `cli.main` (tests,
    notebooks) keep their own process."""
    import subprocess

    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.run([sys.executable, "-m", "evalharness.cli", *argv], env=pinned_env()).returncode
