"""Batches of rows -> token ids, with the evaluation's prompt code.

Each query gets k ~ U{0..max_examples} examples drawn from the other rows of its batch (never its own
row), rendered by the same `PromptTemplate` and tokenised by the same `tokenize_prompted` budget rules
as the decoder backend, so a trained model is evaluated on exactly the strings it learned from. Two
training-only rules come from the paper: each example's query and response are cut to
`example_max_tokens`, and examples are added only while the prefix stays within `prefix_max_tokens`
(FlagEmbedding's `query_max_len - 512`; when that budget is 0 it trains zero-shot without a word,
FlagEmbedding #1158 — here a warning says so and the counts show it).

Where the reference's training truncation differs from its inference truncation (it cuts
`prefix + query` from the right as one string), we train with the evaluation's rule: the prefix is
never cut, the instruction-wrapped query is cut to the query budget.
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
from evalharness.train.config import IN_BATCH_TYPES, SYMMETRIC_TYPES
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
        example_max_tokens: int = 256,
        prefix_max_tokens: int = 1536,
        group_size: int = 8,
        seed: int = 0,
        teacher_scores: bool = False,
        zero_shot_steps: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.max_examples = max_examples
        self.example_max_tokens = example_max_tokens
        self.prefix_max_tokens = prefix_max_tokens
        self.group_size = group_size
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

    # -- prompts ---------------------------------------------------------------------------------

    def _cut(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return (
            text
            if len(ids) <= self.example_max_tokens
            else self.tokenizer.decode(ids[: self.example_max_tokens])
        )

    def _examples(self, batch: Sequence[TrainRow], i: int, max_examples: int | None = None) -> list[Example]:
        """k+1 other rows drawn as the reference does (k+1 indices, the row's own removed, first k
        kept), added while the prefix fits its budget."""
        most = self.max_examples if max_examples is None else max_examples
        k = self.rng.randint(0, most) if most > 0 else 0
        others = [j for j in self.rng.sample(range(len(batch)), min(k + 1, len(batch))) if j != i][:k]
        chosen: list[Example] = []
        row = batch[i]
        for j in others:
            other = batch[j]
            response = other.category if other.type == "clustering" and other.category else other.pos[0]
            candidate = [*chosen, Example(self._cut(other.query), self._cut(response))]
            prefix = self.template.render_prefix(candidate, row.prompt)
            if len(self.tokenizer(prefix, add_special_tokens=False)["input_ids"]) > self.prefix_max_tokens:
                break
            chosen = candidate
        return chosen

    def query_item(self, row: TrainRow, examples: Sequence[Example]) -> PromptedText:
        prefix = self.template.render_prefix(examples, row.prompt)
        return PromptedText(
            prefix, self.template.wrap_query(row.query, row.prompt), self.template.suffix, True
        )

    def passage_item(self, row: TrainRow, text: str) -> PromptedText:
        """Raw + EOS, except for symmetric types, whose passages carry the instruction too."""
        if row.type in SYMMETRIC_TYPES:
            return PromptedText("", self.template.wrap_query(text, row.prompt), self.template.suffix, True)
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

        queries, passages, n_examples, teacher = [], [], [], []
        for i, row in enumerate(batch):
            examples = self._examples(batch, i, most)
            n_examples.append(len(examples))
            queries.append(self.query_item(row, examples))
            negatives = negatives_for(row, self.group_size - 1, self.rng)
            texts = [row.pos[0], *(row.neg[j] for j in negatives)]
            passages += [self.passage_item(row, t) for t in texts]
            if self.teacher_scores:
                teacher.append([row.pos_scores[0], *(row.neg_scores[j] for j in negatives)])
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
