"""Are the pinned CPU kernels the same on other CPUs, and what do they cost?

    python -m benchmarks.bench_kernels            # about 1 minute; 10 more with qemu (see below)

Fingerprints (hashes of the exact bytes) of what the demo's results rest on: SmolLM2 and MiniLM
embeddings, a float32 BLAS product, numpy's exp, a scikit-learn logistic regression. Each is computed in
a fresh process, with this CPU's own kernels and with `evalharness.kernels.pinned_env()`. Where
`qemu-x86_64` is installed (Debian: `apt-get install qemu-user`), the same runs are repeated on emulated
CPUs that *are* other CPUs as far as every library's dispatcher can tell (CPUID says so): an AMD EPYC
Rome and an Intel Haswell, both AVX2 without AVX-512. Emulated floating point is IEEE-exact, so equal
hashes there mean equal bits on such a host. The speed rows time SmolLM2's forward pass, native vs
pinned, in alternating fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from benchmarks.common import log

PROBE = r"""
import hashlib, json, os, sys, time
import numpy as np, torch
from sklearn.linear_model import LogisticRegression

def h(x):
    x = x.detach().contiguous().numpy() if isinstance(x, torch.Tensor) else x
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:10]

out = {"torch": torch.backends.cpu.get_cpu_capability()}
from evalharness.encoders.loading import resolve_source
from transformers import AutoModel, AutoTokenizer
path = resolve_source("offline:smollm2-135m")
tok = AutoTokenizer.from_pretrained(path)
tok.padding_side = "left"
model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
if sys.argv[1] == "speed":
    ids = torch.randint(0, 40000, (16, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(input_ids=ids)
        t = time.perf_counter()
        for _ in range(3):
            model(input_ids=ids)
    print(json.dumps({"tokens_per_s": 3 * ids.numel() / (time.perf_counter() - t)}))
    raise SystemExit
texts = ["<instruct>Classify the sentiment of a review\n<query>a fine, moving film\n<response>",
         "the movie was dull and far too long", "What is the capital of France?"]
enc = tok(texts, padding=True, return_tensors="pt")
with torch.no_grad():
    out["smollm2"] = h(model(**enc).last_hidden_state[:, -1])
from sentence_transformers import SentenceTransformer
out["minilm"] = h(SentenceTransformer(resolve_source("offline:minilm"), device="cpu").encode(texts))
rng = np.random.default_rng(0)
x = rng.standard_normal((300, 64))
y = (x[:, 0] + 0.3 * rng.standard_normal(300) > 0).astype(int)
out["blas_f32"] = h(x.astype(np.float32) @ x.T.astype(np.float32))
out["numpy_exp"] = h(np.exp(x))
out["logreg"] = h(LogisticRegression(max_iter=200).fit(x, y).coef_)
print(json.dumps(out))
"""


def _child(mode: str, pinned: bool, cpu: str | None) -> dict:
    from evalharness.kernels import PINNED_SETTINGS, pinned_env

    env = pinned_env() if pinned else {
        k: v for k, v in os.environ.items() if k not in (*PINNED_SETTINGS, "NPY_DISABLE_CPU_FEATURES")
    }  # fmt: skip
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-c", PROBE, mode]
    if cpu:
        command = ["qemu-x86_64", "-cpu", cpu, *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-emulation", action="store_true", help="skip the qemu rows")
    parser.add_argument(
        "--rounds", type=int, default=3, help="speed: fresh processes per setting (0: no speed rows)"
    )
    args = parser.parse_args(argv)

    cpus: list[str | None] = [None]
    if not args.no_emulation and shutil.which("qemu-x86_64"):
        cpus += ["EPYC-Rome", "Haswell"]
    elif not args.no_emulation:
        log("qemu-x86_64 not found: native rows only (apt-get install qemu-user for the emulated CPUs)")
    rows = []
    for cpu in cpus:
        for pinned in (False, True):
            log(f"fingerprint: {cpu or 'this CPU'}, {'pinned' if pinned else 'own kernels'} ...")
            rows.append(
                {
                    "cpu": cpu or "this CPU",
                    "kernels": "pinned" if pinned else "own",
                    **_child("hash", pinned, cpu),
                }
            )
    reference = next(r for r in rows if r["cpu"] == "this CPU" and r["kernels"] == "pinned")
    keys = ["smollm2", "minilm", "blas_f32", "numpy_exp", "logreg"]
    lines = [
        "| CPU | kernels | torch ISA | " + " | ".join(keys) + " | all equal to this CPU pinned |",
        "|" + "---|" * (len(keys) + 4),
    ]
    for r in rows:
        same = all(r[k] == reference[k] for k in keys)
        lines.append(
            f"| {r['cpu']} | {r['kernels']} | {r['torch']} | "
            + " | ".join(r[k] for k in keys)
            + f" | {'yes' if same else 'no'} |"
        )
    speed: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for pinned in (False, True):
            speed[pinned].append(_child("speed", pinned, None)["tokens_per_s"])
    if args.rounds:
        native, pinned_speed = statistics.median(speed[False]), statistics.median(speed[True])
        lines += [
            "",
            f"SmolLM2 forward (16 x 128 tokens, median of {args.rounds} fresh processes each): own kernels "
            f"{native:.0f} tokens/s, pinned {pinned_speed:.0f} tokens/s ({pinned_speed / native:.2f}x)",
        ]
    log("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
