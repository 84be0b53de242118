"""Reference side of the query benchmark: FlagEmbedding's `FlagICLModel`, run in its own virtualenv.

Executed by the reference virtualenv's python (transformers<5), never imported by evalharness:

    .cache/bench/flag-venv/bin/python benchmarks/flag_worker.py job.json

`job.json` names the model directory, the instruction, the queries, the examples, the shot counts,
the batch size, the suffix and an output folder. The model loads once (`@@ready` line on stdout); then
each stdin line `{"k": k}` calls `set_examples` with the first k examples (k = 0: no examples),
encodes the queries once untimed (warm-up, first batch) and once timed with `encode_queries`, writes
`vectors_k{k}.npy` (L2-normalised, query order) and answers one `@@result {...}` line: the wall
time, the time of the reference's batch-size probe (its first batch runs twice: once to find a batch
size that fits, once for real), and the exact token sequences the model received. `{"quit": true}`
ends it. One process serves every k, so the benchmark can interleave reference and ours per k.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import numpy as np
    import torch
    import transformers
    from FlagEmbedding import FlagICLModel

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)

    load_start = time.perf_counter()
    model = FlagICLModel(
        job["model_dir"],
        use_fp16=False,
        query_instruction_for_retrieval=job["instruction"],
        examples_for_task=None,
        suffix=job["suffix"],
        devices="cpu",
        batch_size=job["batch_size"],
        query_max_length=job["query_max_length"],
        normalize_embeddings=True,
    )
    load_s = time.perf_counter() - load_start

    # every forward pass: its wall time and the unpadded token sequences it saw
    calls: list[dict] = []

    def pre_hook(_module, _args, kwargs):
        calls.append({"t0": time.perf_counter(), "c0": time.process_time()})

    def post_hook(_module, _args, kwargs, _output):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        calls[-1]["t1"] = time.perf_counter()
        calls[-1]["c1"] = time.process_time()
        calls[-1]["seqs"] = [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        calls[-1]["shape"] = list(ids.shape)

    model.model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    model.model.register_forward_hook(post_hook, with_kwargs=True)

    print(
        "@@ready "
        + json.dumps(
            {
                "load_s": load_s,
                "threads": torch.get_num_threads(),
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "FlagEmbedding": _version("FlagEmbedding"),
                },
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("quit"):
            break
        k = int(command["k"])
        model.set_examples(job["examples"][:k] if k else None)
        model.encode_queries(job["queries"][: job["batch_size"]], batch_size=job["batch_size"])  # warm-up
        calls.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        vecs = model.encode_queries(job["queries"], batch_size=job["batch_size"])
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        np.save(out / f"vectors_k{k}.npy", np.asarray(vecs, dtype=np.float32))
        forwards = [c["t1"] - c["t0"] for c in calls]
        # the first forward is the batch-size probe; the encode loop then runs that batch again
        result = {
            "k": k,
            "n_queries": len(job["queries"]),
            "wall_s": wall,
            "probe_s": forwards[0],
            "cpu_s": cpu,
            "probe_cpu_s": calls[0]["c1"] - calls[0]["c0"],
            "forward_s": sum(forwards),
            "n_forwards": len(forwards),
            "sequences": [s for c in calls[1:] for s in c["seqs"]],
            "prefix_chars": len(model.prefix),
        }
        print("@@result " + json.dumps(result), flush=True)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main(sys.argv[1])
