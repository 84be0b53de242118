"""The pinned CPU kernels: every float library of the stack held to its AVX2 path (so a CPU result is
the same on any x86-64 host), the demo always pinned, and a run's manifest saying which kernels ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evalharness import kernels
from evalharness.cli import _wants_pinned_kernels

needs_pin = pytest.mark.skipif(not kernels.can_pin(), reason="this CPU has no AVX2+FMA path to pin to")

PROBE = """
import json, torch, numpy, scipy.linalg, sklearn.linear_model  # loads numpy's and scipy's OpenBLAS
from threadpoolctl import threadpool_info
from numpy._core import _multiarray_umath as umath
print(json.dumps({
    "torch": torch.backends.cpu.get_cpu_capability(),
    "numpy_above_avx2": sorted(k for k in umath.__cpu_dispatch__
                               if (k.startswith("AVX512") or k == "X86_V4") and umath.__cpu_features__.get(k)),
    "openblas": sorted({(i["architecture"], i["num_threads"]) for i in threadpool_info()
                        if i["internal_api"] == "openblas"}),
}))
"""


def _probe(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_pin
def test_the_pinned_environment_holds_every_library_to_its_avx2_path():
    found = _probe(kernels.pinned_env())
    assert found["torch"] == "AVX2"  # ATen's vectorised kernels
    assert found["numpy_above_avx2"] == []  # numpy's own SIMD loops (exp, log: they round differently)
    assert found["openblas"] and all(arch == "Haswell" for arch, _ in map(tuple, found["openblas"]))
    assert all(threads == 1 for _, threads in map(tuple, found["openblas"]))
    env = kernels.pinned_env()
    assert env["MKL_CBWR"] == "COMPATIBLE"  # MKL's only vendor-neutral branch (it reads nothing else back)
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert kernels.is_pinned(env) and not kernels.is_pinned({**env, "ATEN_CPU_CAPABILITY": "avx512"})


def test_the_demo_pins_its_kernels_unless_told_not_to():
    assert _wants_pinned_kernels(["demo"], 0)
    assert _wants_pinned_kernels(["-v", "demo", "--models", "minilm"], 1)
    assert not _wants_pinned_kernels(["demo", "--native-kernels"], 0)
    assert not _wants_pinned_kernels(["run", "model=minilm"], 0)
    assert _wants_pinned_kernels(["--pin-kernels", "run", "model=minilm"], 1)
    assert not _wants_pinned_kernels(["run", "model=minilm", "--pin-kernels"], 0)  # a Hydra override


@needs_pin
def test_a_run_records_the_kernels_that_computed_it(tmp_path):
    """`--pin-kernels` runs the command in a pinned child; the manifest says so, and an ordinary run's
    says it was not pinned (the results of the two may differ in the last bits on AVX-512 hosts)."""
    base = [sys.executable, "-m", "evalharness.cli"]
    args = ["model=minilm", "benchmark=custom", "benchmark.tasks=[OfflineLeeSTS]", "shots=[0]"]
    unpinned = (*kernels.PINNED_SETTINGS, "NPY_DISABLE_CPU_FEATURES")
    env = {k: v for k, v in os.environ.items() if k not in unpinned}  # however pytest itself was started
    for flag, folder in ((["--pin-kernels"], "pinned"), ([], "native")):
        subprocess.run(
            [*base, *flag, "run", *args, f"results_dir={tmp_path / folder}"], env=env, check=True,
            capture_output=True,
        )  # fmt: skip
    recorded = {
        folder: json.loads(next((tmp_path / folder).rglob("manifest.json")).read_text())["cpu_kernels"]
        for folder in ("pinned", "native")
    }
    assert recorded["pinned"] == {"pinned": "avx2", "torch": "AVX2"}
    assert recorded["native"]["pinned"] is None


def test_the_record_does_not_depend_on_what_the_process_imported_before():
    """The first cell of a process used to record no torch capability (torch not imported yet) and the
    others one: the committed demo's manifests then depended on import order."""
    code = "import json, sys; from evalharness import kernels; print(json.dumps(kernels.describe()), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    recorded, imported = out.rsplit(" ", 1)
    assert "torch" in json.loads(recorded) and imported.strip() == "True"
