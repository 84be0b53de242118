"""A trained output folder loads in FlagEmbedding's `FlagICLModel` and in sentence-transformers, and
both give the vectors `evalharness run` computes for the same query, examples and instruction.

    python -m benchmarks.check_published [--model DIR]

DIR is an `evalharness train` output folder (default: the offline trained model, built into the cache
on first use). A folder written before the publishing step existed is republished into a copy
(`.cache/bench/published`, weights linked). The reference runs in its own virtualenv
(`benchmarks/flag_worker.py`, transformers 4) with its default suffix and no EOS of our own: the
folder's tokenizer appends it, as bge-en-icl's does. Queries: the offline retrieval task's test
queries; examples: the `train` strategy's seeded examples; k = 0 and 3.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCH_DIR,
    ReferenceWorker,
    log,
    reference_model_dir,
    retrieval_data,
    sample_examples,
)


def published_folder(source: Path, dest: Path = BENCH_DIR / "published") -> Path:
    """`source` itself if it has the publishing step's files, else a republished copy."""
    if (source / "modules.json").is_file():
        return source
    from transformers import AutoTokenizer

    from evalharness.train.publish import config_from_manifest, eos_appending, publish
    from evalharness.train.trainer import MANIFEST

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in source.iterdir():
        if f.suffix == ".safetensors":
            (dest / f.name).symlink_to(f.resolve())
        elif f.is_file():
            shutil.copy2(f, dest / f.name)
    manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    cfg = config_from_manifest(manifest)
    eos_appending(AutoTokenizer.from_pretrained(source)).save_pretrained(dest)
    hidden = json.loads((source / "config.json").read_text(encoding="utf-8"))["hidden_size"]
    publish(dest, cfg, manifest, hidden)
    return dest


def run(model: Path, shots: tuple[int, ...] = (0, 3), n_queries: int = 16) -> list[dict[str, Any]]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from evalharness.encoders.backends import DecoderBackend
    from evalharness.prompts import PromptedText, get_template

    folder = published_folder(model)
    data = retrieval_data("mini")
    instruction = data["instruction"]
    queries = [q["text"] for q in data["test"]["queries"]][:n_queries]
    examples = sample_examples(max(shots))
    template = get_template("bge-icl")
    ours = DecoderBackend(str(folder), dtype="float32", device="cpu")
    st = SentenceTransformer(str(folder), device="cpu")
    tf4 = BENCH_DIR / "published-tf4"
    shutil.rmtree(
        tf4, ignore_errors=True
    )  # reference_model_dir keeps existing weight links: never stale ones
    ref = ReferenceWorker(
        {
            "model_dir": str(reference_model_dir(str(folder), tf4)),
            "instruction": instruction,
            "queries": queries,
            "examples": [
                {"instruct": instruction, "query": e.query, "response": e.response} for e in examples
            ],
            "batch_size": 8,
            "suffix": template.suffix,  # FlagICLModel's default; the tokenizer adds EOS
            "query_max_length": ours.query_max_length,
        },
        BENCH_DIR / "published-check",
    )
    rows = []
    try:
        for k in shots:
            prefix = template.render_prefix(examples[:k], instruction)
            items = [
                PromptedText(prefix, template.wrap_query(q, instruction), template.suffix, True)
                for q in queries
            ]
            ids = ours.tokenize(items)
            want = ours.embed(items, 8)
            want /= np.linalg.norm(want, axis=1, keepdims=True)
            r = ref.encode(k)
            flag = r["vectors"] / np.linalg.norm(r["vectors"], axis=1, keepdims=True)
            st_vecs = st.encode([it.text for it in items], batch_size=8)
            rows.append({
                "k": k, "queries": len(queries),
                "same_ids": sorted(map(tuple, r["sequences"])) == sorted(map(tuple, ids)),
                "flag_cos": float((flag * want).sum(1).min()), "st_cos": float((st_vecs * want).sum(1).min()),
            })  # fmt: skip
    finally:
        ref.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="an evalharness train output folder (default: the offline model)")
    args = parser.parse_args(argv)
    if args.model:
        model = Path(args.model)
    else:
        from evalharness.train.offline import trained_offline_model

        model = Path(trained_offline_model())
    log(f"checking {model}")
    rows = run(model)
    print(
        "| k | queries | FlagICLModel token ids = ours | min cos FlagICLModel vs ours | min cos sentence-transformers vs ours |"
    )
    print("|---:|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['k']} | {r['queries']} | {'yes' if r['same_ids'] else 'NO'} | {r['flag_cos']:.7f} | {r['st_cos']:.7f} |"
        )
    ok = all(r["same_ids"] and r["flag_cos"] >= 0.99999 and r["st_cos"] >= 0.99999 for r in rows)
    print("\nthe folder loads in FlagICLModel and sentence-transformers with the vectors evalharness uses" if ok
          else "\nDIFFERENT vectors")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
