"""Batches of rows -> token ids, with the evaluation's prompt code.

Each query gets k ~ U{0..max_examples} examples drawn from the other rows of its batch (never its own
row), rendered by the same `PromptTemplate` and tokenised by the same `tokenize_prompted` budget rules
as the decoder backend, so a trained model is evaluated on exactly the strings it learned from.

The batch is built as FlagEmbedding's ICL `_create_batch_data` builds it, draw for draw: first, row by
row, the positive (`positive=random`: one of the row's positives, FlagEmbedding's `random.choice`) and
`group - 1` negatives (sampled, repeated when a row has fewer); then, query by query, k and k+1 rows
(the query's own removed, the first k kept). Each example's (instruction-wrapped) query and response
are cut to their caps, and examples are added while the prefix, counted with the tokenizer's special
tokens, stays within `prefix_max_tokens` (FlagEmbedding's `query_max_len - 512`; when that budget is 0
it trains zero-shot without a word, FlagEmbedding #1158 — here a warning says so and the counts show
it). With the same seed the reference's global `random` and this collator's `rng` give the same
batches (`benchmarks/parity_train.py`). The switches where we may differ (docs/training.md: "where we differ from
FlagEmbedding and why") are `TrainConfig`'s `positive`, `class_group`, `prompt_passages`,
`example_cut` and `query_truncation`.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from evalharness.examples import Example
from evalharness.prompts import PromptedText, PromptTemplate, special_layout, tokenize_prompted
from evalharness.train.config import IN_BATCH_TYPES
from evalharness.train.data import DeviceBatch, TrainRow, negatives_for

logger = logging.getLogger(__name__)


class ICLCollator:
    """Callable for transformers' Trainer: a list holding one same-dataset batch -> tensors."""

    def __init__(
        self,
        tokenizer: Any,
        template: PromptTemplate,
        *,
        query_max_length: int,
        passage_max_length: int,
        max_examples: int = 5,
        example_query_max_tokens: int = 64,
        example_passage_max_tokens: int = 96,
        example_cut: str = "wrapped",
        prefix_max_tokens: int = 1536,
        query_truncation: str = "query",
        group_size: int = 8,
        class_group: str = "labels",
        positive: str = "random",
        prompt_passages: Sequence[str] = ("sts", "clustering"),
        seed: int = 0,
        teacher_scores: bool = False,
        zero_shot_steps: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.max_examples = max_examples
        self.example_caps = (example_query_max_tokens, example_passage_max_tokens)
        self.example_cut = example_cut
        self.between, self.after = template.example_parts() if example_cut == "wrapped" else ("", "")
        self.prefix_max_tokens = prefix_max_tokens
        self.query_truncation = query_truncation
        self.group_size = group_size
        self.class_group = class_group
        self.positive = positive
        self.prompt_passages = tuple(prompt_passages)
        self.seed = seed
        self.teacher_scores = teacher_scores
        self.zero_shot_steps = zero_shot_steps
        self.rng = random.Random(seed)
        self.layout = special_layout(tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:  # as the decoder backend: unk, else EOS
            pad = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else self.layout.eos_id
        self.pad_id = int(pad)
        self.examples_per_query: Counter[int] = Counter()  # k actually used -> queries
        if max_examples > 0 and prefix_max_tokens <= 0:
            logger.warning(
                "prefix_max_tokens=%d leaves no room for examples: every query trains zero-shot (the trap "
                "of FlagEmbedding #1158); raise prefix_max_tokens or set max_examples=0",
                prefix_max_tokens,
            )

    # -- draws -----------------------------------------------------------------------------------

    def group(self, batch: Sequence[TrainRow]) -> int:
        """Passages per query for this batch: FlagEmbedding sizes a classification batch by its first
        row's labels (`min(len(neg) + 1, train_group_size)`)."""
        if batch[0].type == "classification" and self.class_group == "labels":
            return max(1, min(len(batch[0].neg) + 1, self.group_size))
        return self.group_size

    def pick(self, row: TrainRow, group: int) -> tuple[int, list[int]]:
        """The positive's index and the negatives' indices, in the reference's order of draws."""
        pos = self.rng.choice(range(len(row.pos))) if self.positive == "random" else 0
        return pos, negatives_for(row, group - 1, self.rng)

    def _cut(self, text: str, cap: int, *, always_decode: bool) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids[:cap]) if always_decode or len(ids) > cap else text

    def example_text(self, row: TrainRow, response: str) -> str:
        """One example as the prefix shows it, with the example row's own instruction."""
        q_cap, r_cap = self.example_caps
        if self.example_cut == "wrapped":  # FlagEmbedding: decode(ids(wrapped query)[:cap]), always
            query = self._cut(self.template.example_query(row.query, row.prompt), q_cap, always_decode=True)
            return query + self.between + self._cut(response, r_cap, always_decode=True) + self.after
        cut = Example(
            self._cut(row.query, q_cap, always_decode=False),
            self._cut(response, r_cap, always_decode=False),
            instruction=row.prompt,
        )
        return self.template.render_example(cut, row.prompt)

    def _examples(self, batch: Sequence[TrainRow], i: int, responses: Sequence[str], most: int) -> list[str]:
        """k+1 other rows drawn as the reference does (k+1 indices, the row's own removed, first k
        kept), added while the prefix (with the tokenizer's special tokens) fits its budget."""
        k = self.rng.randint(0, most) if most > 0 else 0  # randint(0, 5) draws as random.choice(range(6))
        if k == 0:
            return []
        others = [j for j in self.rng.sample(range(len(batch)), min(k + 1, len(batch))) if j != i][:k]
        chosen: list[str] = []
        for j in others:
            candidate = [*chosen, self.example_text(batch[j], responses[j])]
            if len(self.tokenizer(self._prefix(candidate))["input_ids"]) > self.prefix_max_tokens:
                break
            chosen = candidate
        return chosen

    # -- prompts ---------------------------------------------------------------------------------

    def _prefix(self, examples: Sequence[str]) -> str:
        return self.template.example_separator.join(examples) + self.template.prefix_end if examples else ""

    def query_item(self, row: TrainRow, examples: Sequence[str]) -> PromptedText:
        """`query_truncation=query`: the prefix stays whole, the wrapped query is cut (the evaluation's
        rule); `joint`: prefix and query are cut as one string from the right (FlagEmbedding's)."""
        prefix, wrapped = self._prefix(examples), self.template.wrap_query(row.query, row.prompt)
        if self.query_truncation == "joint":
            return PromptedText("", prefix + wrapped, self.template.suffix, True)
        return PromptedText(prefix, wrapped, self.template.suffix, True)

    def passage_item(self, row: TrainRow, text: str) -> PromptedText:
        """Raw + EOS, except for the `prompt_passages` types, whose passages carry the instruction too
        (cut to the passage budget)."""
        if row.type in self.prompt_passages:
            wrapped = self.template.wrap_query(text, row.prompt)
            return PromptedText("", wrapped, self.template.suffix, True, max_length=self.passage_max_length)
        return PromptedText("", text, "", False)

    # -- tensors ---------------------------------------------------------------------------------

    def _pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left padding, as the backend encodes: the last position is every row's EOS."""
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for r, s in enumerate(sequences):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        return ids, mask

    def _ids(self, items: Sequence[PromptedText]) -> list[list[int]]:
        return tokenize_prompted(
            self.tokenizer,
            items,
            query_max_length=self.query_max_length,
            passage_max_length=self.passage_max_length,
            layout=self.layout,
        ).input_ids

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        item = features[0] if len(features) == 1 else None
        if isinstance(item, DeviceBatch):
            batch, step = list(item.rows), item.step
        else:  # a plain list of rows (or one list holding them)
            batch, step = list(item) if isinstance(item, list) else list(features), None
        # a zero-shot warm phase: the first steps teach plain embedding before examples cost 3x a step
        most = 0 if step is not None and step < self.zero_shot_steps else self.max_examples
        # the draw depends only on the seed and the batch, so a run resumed from a checkpoint gives the
        # same examples and negatives as one that never stopped
        self.rng = random.Random(f"{self.seed}:" + "|".join(r.source or r.query for r in batch))
        queries, passages, teacher, n_examples = self.build(batch, most)
        self.examples_per_query.update(n_examples)
        q_ids, q_mask = self._pad(self._ids(queries))
        p_ids, p_mask = self._pad(self._ids(passages))
        out = {
            "query_input_ids": q_ids,
            "query_attention_mask": q_mask,
            "passage_input_ids": p_ids,
            "passage_attention_mask": p_mask,
            "n_examples": torch.tensor(n_examples, dtype=torch.long),
            "in_batch_negatives": batch[0].type in IN_BATCH_TYPES,
        }
        if self.teacher_scores:  # [B, G], aligned with each query's group: positive, then negatives
            out["teacher_scores"] = torch.tensor(teacher, dtype=torch.float32)
        return out

    def build(
        self, batch: Sequence[TrainRow], most: int
    ) -> tuple[list[PromptedText], list[PromptedText], list[list[float]], list[int]]:
        """Queries, passages (group by group), teacher scores and examples per query, drawn from
        `self.rng` in FlagEmbedding's order: every row's positive and negatives, then every query's
        examples."""
        group = self.group(batch)
        picks = [self.pick(row, group) for row in batch]
        responses = [
            row.category if row.type == "clustering" and row.category else row.pos[p]
            for row, (p, _) in zip(batch, picks, strict=True)
        ]
        queries, passages, n_examples, teacher = [], [], [], []
        for row, (p, negatives) in zip(batch, picks, strict=True):
            texts = [row.pos[p], *(row.neg[j] for j in negatives)]
            passages += [self.passage_item(row, t) for t in texts]
            if self.teacher_scores:
                teacher.append([row.pos_scores[p], *(row.neg_scores[j] for j in negatives)])
        for i, row in enumerate(batch):
            examples = self._examples(batch, i, responses, most)
            n_examples.append(len(examples))
            queries.append(self.query_item(row, examples))
        return queries, passages, teacher, n_examples
