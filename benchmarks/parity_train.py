"""Training parity with FlagEmbedding 1.4.2's ICL fine-tuning: same rows, same random draws, same strings,
token ids, teacher scores and losses.

    python -m benchmarks.parity_train            # builds the reference virtualenv once (a few minutes)

For every row type (retrieval with several positives and teacher scores, STS, binary and 4-way
classification, clustering; rows cast from the packaged offline tasks' train splits, one retrieval
query long enough to be cut), under two budgets (`paper`: the `train=paper` preset's 2048 / 512 /
256 / 256, and `cut`: budgets small enough to cut queries, passages and examples), for several seeds:

- the reference (`benchmarks/flag_train_worker.py`, in its own virtualenv) seeds Python's `random`
  with the seed and runs `DecoderOnlyEmbedderICLSameDatasetTrainDataset._create_batch_data` and
  `AbsEmbedderSameDatasetCollator`, then `BiDecoderOnlyEmbedderICLModel`'s loss on seeded embeddings;
- ours builds the batch with `train=paper`'s collator (`make_collator`) from `random.Random(seed)`,
  tokenises it with `tokenize_prompted`, and computes `info_nce` on the same embeddings.

The tokenizer is SmolLM2's vocabulary with bge-en-icl's special tokens and a Mistral-style
post-processor (BOS + text + EOS), i.e. what the reference's `add_eos_token=True` gives on Mistral;
SmolLM2's own fast tokenizer ignores that flag and would train the reference without an EOS.
Exit status 1 when any case differs.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH_DIR, ensure_reference_venv

SPECIAL_TOKENS = ["<instruct>", "<query>", "<response>"]
#: (query_max_len, passage_max_len, example_query_max_len, example_passage_max_len, train_group_size)
SETTINGS = {"paper": (2048, 512, 256, 256, 8), "cut": (560, 24, 16, 8, 4)}
TYPES = ("normal", "symmetric_sts", "symmetric_class", "symmetric_class_4way", "symmetric_clustering")
BATCH = 8


def parity_tokenizer(dest: Path = BENCH_DIR / "parity-tokenizer") -> Path:
    """SmolLM2's tokenizer + bge-en-icl's special tokens + BOS/EOS post-processing, readable by
    transformers 4 (the reference) and 5 (ours)."""
    if (dest / "tokenizer.json").is_file():
        return dest
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from evalharness.encoders.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("offline:smollm2-135m"))
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    bos, eos = tok.bos_token, tok.eos_token
    tok._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tok.convert_tokens_to_ids(bos)), (eos, tok.convert_tokens_to_ids(eos))],
    )
    tok.save_pretrained(dest)
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers 4 does not know TokenizersBackend
    config.pop("backend", None)
    config["additional_special_tokens"] = config.pop("extra_special_tokens", SPECIAL_TOKENS)
    config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return dest


def parity_rows() -> dict[str, list[dict[str, Any]]]:
    """FlagEmbedding JSONL rows of every type, cast from the offline tasks' train splits."""
    import mteb

    from evalharness.examples import task_example_pool
    from evalharness.instructions import load_instructions, resolve_instruction
    from evalharness.tasks.offline import register_offline_tasks, scale

    register_offline_tasks()
    table = load_instructions()
    with scale("full"):
        pools, prompts = {}, {}
        for name in ("OfflineChatterbotRetrieval", "OfflineLeeSTS", "OfflinePangLeePolarityClassification",
                     "OfflineMiniNewsgroupsClustering"):  # fmt: skip
            task = mteb.get_task(name)
            pools[name] = task_example_pool(task, "train")
            prompts[name] = resolve_instruction(task.metadata, table)[0]
    gen = random.Random(0)
    chat, sts = pools["OfflineChatterbotRetrieval"], pools["OfflineLeeSTS"]
    polarity, news = pools["OfflinePangLeePolarityClassification"], pools["OfflineMiniNewsgroupsClustering"]
    long_query = " ".join(e.query for e in news[:16])  # long enough to be cut at query_max_len 560

    retrieval = []
    for i in range(BATCH):
        pos = [chat[i].response] + ([chat[i + 40].response] if i % 2 else [])  # half with two positives
        neg = [chat[i + 10 + j].response for j in range(3)]
        retrieval.append({
            "query": long_query if i == 0 else chat[i].query, "pos": pos, "neg": neg,
            "pos_scores": [round(gen.uniform(2, 9), 3) for _ in pos],
            "neg_scores": [round(gen.uniform(-4, 3), 3) for _ in neg],
            "prompt": prompts["OfflineChatterbotRetrieval"], "type": "normal",
        })  # fmt: skip
    symmetric_sts = [
        {"query": sts[i].query, "pos": [sts[i].response], "neg": [sts[i + 20].response, sts[i + 30].response],
         "prompt": prompts["OfflineLeeSTS"], "type": "symmetric_sts"}
        for i in range(BATCH)
    ]  # fmt: skip
    labels = sorted({e.response for e in polarity})
    binary = [
        {"query": e.query, "pos": [e.response], "neg": [x for x in labels if x != e.response],
         "prompt": prompts["OfflinePangLeePolarityClassification"], "type": "symmetric_class"}
        for e in polarity[:BATCH]
    ]  # fmt: skip
    four = labels + sorted({e.response for e in news})
    mixed = [*polarity[BATCH : BATCH + BATCH // 2], *news[: BATCH // 2]]
    four_way = [
        {"query": e.query, "pos": [e.response], "neg": [x for x in four if x != e.response],
         "prompt": "Classify the text as a movie review's sentiment or a newsgroup's topic", "type": "symmetric_class"}
        for e in mixed
    ]  # fmt: skip
    clustering = []
    for e in news[:BATCH]:
        same = [x.query for x in news[BATCH:] if x.response == e.response]
        other = [x.query for x in news[BATCH:] if x.response != e.response]
        clustering.append({
            "query": e.query, "pos": [same[0]], "neg": other[:3], "category": e.response,
            "prompt": prompts["OfflineMiniNewsgroupsClustering"], "type": "symmetric_clustering",
        })  # fmt: skip
    return {"normal": retrieval, "symmetric_sts": symmetric_sts, "symmetric_class": binary,
            "symmetric_class_4way": four_way, "symmetric_clustering": clustering}  # fmt: skip


def paper_config(setting: str, distill: bool) -> Any:
    """`train=paper` (the preset file as shipped) with this setting's budgets."""
    from omegaconf import OmegaConf

    from evalharness.config import CONF_DIR
    from evalharness.train.config import TrainConfig

    q, p, eq, ep, group = SETTINGS[setting]
    preset = OmegaConf.load(Path(CONF_DIR) / "train" / "paper.yaml")
    overrides = {
        "model": {"query_max_length": q, "passage_max_length": p},
        "example_query_max_tokens": eq, "example_passage_max_tokens": ep, "group_size": group,
        "prefix_max_tokens": q - 512, "knowledge_distillation": distill,
    }  # fmt: skip
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), preset, overrides))


def ours(
    tokenizer: Any, rows: list[dict[str, Any]], setting: str, seed: int, distill: bool
) -> dict[str, Any]:
    from evalharness.prompts import get_template, tokenize_prompted
    from evalharness.train.data import parse_row
    from evalharness.train.run import make_collator

    cfg = paper_config(setting, distill)
    collator = make_collator(cfg, tokenizer, get_template(cfg.model.template))
    batch = [parse_row(r, f"parity:{i}") for i, r in enumerate(rows)]
    collator.rng = random.Random(seed)  # the reference's global random, seeded the same
    queries, passages, teacher, n_examples = collator.build(batch, cfg.max_examples)
    budgets = {
        "query_max_length": cfg.model.query_max_length,
        "passage_max_length": cfg.model.passage_max_length,
    }
    tq = tokenize_prompted(tokenizer, queries, layout=collator.layout, **budgets)
    tp = tokenize_prompted(tokenizer, passages, layout=collator.layout, **budgets)
    return {
        "queries": tq.texts, "passages": tp.texts, "q_ids": tq.input_ids, "p_ids": tp.input_ids,
        "teacher": [s for group in teacher for s in group] if distill else None,
        "cut": (tq.n_truncated, tp.n_truncated), "examples": sum(n_examples), "in_batch": batch[0].type == "retrieval",
        "temperature": cfg.temperature,
    }  # fmt: skip


def run(seeds: int = 3, work: Path | None = None) -> list[dict[str, Any]]:
    """Every case's comparison, one dict a case."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from evalharness.train.loss import info_nce

    python = ensure_reference_venv()
    tok_dir = parity_tokenizer()
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.padding_side = "left"
    rows = parity_rows()
    work = Path(work or tempfile.mkdtemp(prefix="parity-train-"))
    work.mkdir(parents=True, exist_ok=True)
    data_file = work / "rows.jsonl"  # the reference's arguments insist on an existing train_data path
    data_file.write_text("\n".join(json.dumps(r) for group in rows.values() for r in group) + "\n")
    cases, mine = [], []
    for setting, (q, p, eq, ep, group) in SETTINGS.items():
        for kind in TYPES:
            for seed in range(seeds):
                distill = kind == "normal" and seed % 2 == 0
                got = ours(tokenizer, rows[kind], setting, seed, distill)
                emb = np.random.default_rng(seed)
                q_emb = emb.normal(size=(len(got["q_ids"]), 32)).astype("float32")
                p_emb = emb.normal(size=(len(got["p_ids"]), 32)).astype("float32")
                path = work / f"emb-{setting}-{kind}-{seed}.npz"
                np.savez(path, q=q_emb, p=p_emb)
                teacher = torch.tensor(got["teacher"]).view(len(q_emb), -1) if distill else None
                got["loss"] = float(info_nce(torch.tensor(q_emb), torch.tensor(p_emb), temperature=got["temperature"],
                                             in_batch=got["in_batch"], teacher_scores=teacher))  # fmt: skip
                batch = {key: [r.get(key) for r in rows[kind]] for key in rows[kind][0]}
                if not distill:
                    batch.pop("pos_scores", None), batch.pop("neg_scores", None)
                args = {
                    "query_max_len": q, "passage_max_len": p, "example_query_max_len": eq,
                    "example_passage_max_len": ep, "train_group_size": group, "knowledge_distillation": distill,
                    "query_instruction_format": "<instruct>{}\n<query>{}", "icl_suffix_str": "\n<response>",
                }  # fmt: skip
                cases.append({"args": args, "seed": seed, "batch": batch, "in_batch": got["in_batch"],
                              "embeddings": str(path), "temperature": got["temperature"]})  # fmt: skip
                mine.append({"setting": setting, "type": kind, "seed": seed, "distill": distill, **got})
    job = work / "job.json"
    job.write_text(json.dumps({"tokenizer": str(tok_dir), "data_file": str(data_file), "cases": cases}))
    out = work / "reference.json"
    worker = Path(__file__).with_name("flag_train_worker.py")
    subprocess.run([str(python), str(worker), str(job), str(out)], check=True, env=_env())
    reference = json.loads(out.read_text(encoding="utf-8"))
    results = []
    for got, ref in zip(mine, reference, strict=True):
        # float32 losses of up to ~50 (cosine / 0.02): equal to 1e-6 relative
        loss_diff = (
            abs(got["loss"] - ref["loss"]) / max(1.0, abs(ref["loss"])) if ref["loss"] is not None else 1.0
        )
        results.append({
            "setting": got["setting"], "type": got["type"], "seed": got["seed"], "distill": got["distill"],
            "strings": got["queries"] == ref["queries"] and got["passages"] == ref["passages"],
            "ids": got["q_ids"] == ref["q_ids"] and got["p_ids"] == ref["p_ids"],
            "teacher": got["teacher"] == (ref["teacher"] if got["distill"] else None),
            "loss_diff": loss_diff, "queries_cut": got["cut"][0], "passages_cut": got["cut"][1],
            "group": len(got["p_ids"]) // len(got["q_ids"]), "examples": got["examples"],
        })  # fmt: skip
    return results


def _env() -> dict[str, str]:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    return env


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| setting | type | cases | group | examples | queries / passages cut | strings | ids | teacher "
             "| max rel. Δ loss |", "|---|---|---:|---:|---:|---:|---|---|---|---:|"]  # fmt: skip
    keys = dict.fromkeys((r["setting"], r["type"]) for r in results)
    for setting, kind in keys:
        rs = [r for r in results if (r["setting"], r["type"]) == (setting, kind)]
        lines.append(
            f"| {setting} | {kind} | {len(rs)} | {rs[0]['group']} | {sum(r['examples'] for r in rs)} | "
            f"{sum(r['queries_cut'] for r in rs)} / {sum(r['passages_cut'] for r in rs)} | "
            + " | ".join(
                "equal" if all(r[k] for r in rs) else "DIFFER" for k in ("strings", "ids", "teacher")
            )
            + f" | {max(r['loss_diff'] for r in rs):.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.seeds)
    print(table(results))
    bad = [r for r in results if not (r["strings"] and r["ids"] and r["teacher"] and r["loss_diff"] <= 1e-6)]
    print(
        f"\n{len(results) - len(bad)} of {len(results)} cases equal (strings, token ids, teacher scores, loss to 1e-6)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
