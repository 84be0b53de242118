"""Reference side of the training parity check: FlagEmbedding's ICL batch construction and loss.

Executed by the reference virtualenv's python (transformers<5), never imported by evalharness:

    .cache/bench/flag-venv/bin/python benchmarks/flag_train_worker.py job.json out.json

For every case of `job.json` (rows as a column batch, the data arguments, a seed, embeddings) it seeds
Python's global `random` with the case's seed, calls
`DecoderOnlyEmbedderICLSameDatasetTrainDataset._create_batch_data` on the rows, tokenises the result
with `AbsEmbedderSameDatasetCollator` (what the Trainer feeds the model), and computes the loss of
`BiDecoderOnlyEmbedderICLModel.forward` on the given embeddings (normalised, as `normalize_embeddings`
does). The dataset object is made without its `__init__` (which loads files from disk); its `args`,
`tokenizer`, `prefix` and `suffix` are set as `__init__` sets them.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path


def main(job_path: str, out_path: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))

    import numpy as np
    import torch
    import torch.nn.functional as F
    from FlagEmbedding.finetune.embedder.decoder_only.icl.arguments import DecoderOnlyEmbedderICLDataArguments
    from FlagEmbedding.finetune.embedder.decoder_only.icl.dataset import (
        AbsEmbedderSameDatasetCollator,
        DecoderOnlyEmbedderICLSameDatasetTrainDataset,
    )
    from FlagEmbedding.finetune.embedder.decoder_only.icl.modeling import BiDecoderOnlyEmbedderICLModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer"])
    tokenizer.padding_side = "left"  # as the reference's runner sets it
    results = []
    for case in job["cases"]:
        args = DecoderOnlyEmbedderICLDataArguments(train_data=[job["data_file"]], **case["args"])
        dataset = DecoderOnlyEmbedderICLSameDatasetTrainDataset.__new__(
            DecoderOnlyEmbedderICLSameDatasetTrainDataset
        )
        dataset.args, dataset.tokenizer, dataset.shuffle_ratio = args, tokenizer, args.shuffle_ratio
        dataset.suffix = tokenizer(f"{args.icl_suffix_str}{tokenizer.eos_token}", add_special_tokens=False)[
            "input_ids"
        ]
        dataset.prefix = tokenizer(f"{tokenizer.bos_token}", add_special_tokens=False)["input_ids"]

        random.seed(case["seed"])
        queries, passages, teacher = dataset._create_batch_data(case["batch"])
        collator = AbsEmbedderSameDatasetCollator(
            tokenizer, query_max_len=args.query_max_len, passage_max_len=args.passage_max_len,
            padding=True, return_tensors="pt",
        )  # fmt: skip
        features = collator([(queries, passages, teacher, not case["in_batch"])])

        def unpadded(inputs):
            return [
                ids[mask.bool()].tolist()
                for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True)
            ]

        q_ids, p_ids = unpadded(features["queries"]), unpadded(features["passages"])
        loss = None
        emb = np.load(case["embeddings"])
        if emb["q"].shape[0] == len(queries) and emb["p"].shape[0] == len(passages):
            model = BiDecoderOnlyEmbedderICLModel(torch.nn.Identity(), temperature=case["temperature"])
            model.encode = lambda reps: F.normalize(reps, dim=-1)
            model.train()
            out = model(
                queries=torch.tensor(emb["q"]),
                passages=torch.tensor(emb["p"]),
                teacher_scores=features["teacher_scores"],
                no_in_batch_neg_flag=features["no_in_batch_neg_flag"],
            )
            loss = float(out.loss)
        results.append(
            {
                "queries": queries,
                "passages": passages,
                "teacher": teacher,
                "q_ids": q_ids,
                "p_ids": p_ids,
                "loss": loss,
            }
        )
    Path(out_path).write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
