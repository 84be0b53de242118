"""Few-shot contrastive training (the other half of bge-en-icl): rows -> same-dataset batches -> a
collator that renders k in-batch examples per query with the evaluation's prompt code -> InfoNCE
through transformers' Trainer (+ peft LoRA) -> an output folder `evalharness run` evaluates.

Modules: `config` (typed configs), `data` (rows: FlagEmbedding JSONL or task train splits, checks),
`collator` (prompts and token ids, the same as evaluation), `loss` (InfoNCE, cross-device negatives),
`trainer` (the Trainer subclass, model loading, output folder)."""
