"""The MTEB encoder that turns any embedding model into a few-shot one.

mteb asks for vectors of texts with a task and a side (query, document, or none for symmetric
tasks); this adapter rewrites the query side exactly as bge-en-icl does (examples + instruction +
query + suffix) and hands the result to a backend. The weights load on the first `encode`, so every
config, example and instruction problem surfaces before any expensive work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.types import PromptType

from evalharness.config import ModelConfig
from evalharness.encoders.cache import EmbeddingCache
from evalharness.encoders.loading import build_model_meta, load_backend
from evalharness.examples import Example, ExampleSet
from evalharness.prompts import PromptedText, PromptTemplate, get_template

logger = logging.getLogger(__name__)

NO_NORMALISE_TYPES = {"Classification", "MultilabelClassification"}
ENCODE_CHUNK = 8192  # texts prompted, tokenised and encoded at a time


class ICLEncoder(AbsEncoder):
    """Few-shot MTEB encoder over a decoder LLM or a sentence-transformers model."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        examples: ExampleSet | None = None,
        instructions: Mapping[str, str] | None = None,
        template: str | Mapping[str, Any] | PromptTemplate | None = None,
        experiment_kwargs: Mapping[str, Any] | None = None,
        backend: Any = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        from evalharness.examples import FixedExamples
        from evalharness.instructions import load_instructions

        self.config = config
        self.template = get_template(template or config.template)
        self.examples = examples if examples is not None else FixedExamples({}, strategy="none")
        self.instructions = dict(instructions) if instructions is not None else load_instructions()
        self.mteb_model_meta = build_model_meta(config, experiment_kwargs, loader=type(self))
        self._backend = backend
        self.cache = cache
        self.encode_calls: list[dict[str, Any]] = []
        self.empty_texts: dict[str, int] = {}  # task -> empty or whitespace-only texts encoded
        # task -> query text -> the examples its prompt carried (the query side of asymmetric tasks)
        self.carried: dict[str, dict[str, tuple[Example, ...]]] = {}

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = load_backend(self.config)
        return self._backend

    @property
    def model(self) -> Any:  # AbsEncoder convention
        return self.backend

    # -- prompt construction ---------------------------------------------------------------

    def instruction_for(self, task_metadata: Any) -> tuple[str, str]:
        """(instruction, where it came from): Table 7, the user's override, or mteb's task prompt."""
        from evalharness.instructions import resolve_instruction

        return resolve_instruction(task_metadata, self.instructions)

    def instruction_record(self, task_metadata: Any, with_examples: bool) -> dict[str, Any]:
        """The manifest's record of the instruction: the string and its source where the template put
        it in front of the model."""
        from evalharness.instructions import applied_instruction

        instruction, source = self.instruction_for(task_metadata)
        return applied_instruction(self.template, instruction, source, with_examples)

    def is_query_side(self, prompt_type: PromptType | None) -> bool:
        if prompt_type is None:  # symmetric task: the reference treats every text as a query
            return self.config.symmetric == "prompt-all"
        return prompt_type == PromptType.query

    def prompted_texts(
        self,
        texts: Sequence[str],
        task_metadata: Any,
        prompt_type: PromptType | None,
        hf_split: str = "test",
    ) -> list[PromptedText]:
        # benchmark data hold empty texts (TweetSentimentExtraction's train split): the reference
        # encodes them (prompted on the query side, EOS alone on the passage side), so do we, and count
        empty = sum(1 for t in texts if not t or not t.strip())
        if empty:
            self.empty_texts[task_metadata.name] = self.empty_texts.get(task_metadata.name, 0) + empty
        if not self.is_query_side(prompt_type):
            return [PromptedText("", t, "", is_query=False) for t in texts]
        instruction, _ = self.instruction_for(task_metadata)
        per_text = self.examples.for_texts(task_metadata.name, texts, embed=self._embed_raw)
        if prompt_type == PromptType.query:
            self.carried.setdefault(task_metadata.name, {}).update(zip(texts, per_text, strict=True))
        prefixes: dict[tuple[Example, ...], str] = {}
        items = []
        for text, shots in zip(texts, per_text, strict=True):
            if shots not in prefixes:
                prefixes[shots] = self.template.render_prefix(shots, instruction)
            items.append(
                PromptedText(
                    prefixes[shots], self.template.wrap_query(text, instruction), self.template.suffix, True
                )
            )
        return items

    def _embed_raw(self, texts: list[str]) -> np.ndarray:
        """Unprompted, normalised vectors: what the `knn` example strategy compares."""
        vecs = self.backend.embed(
            [PromptedText("", t, "", is_query=False) for t in texts], self.config.batch_size
        )
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    # -- mteb interface --------------------------------------------------------------------

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = [t for batch in inputs for t in batch["text"]]
        batch_size = self.config.batch_size
        chunks = []
        query_side = False
        # streamed in chunks: memory holds one chunk's tokens, not the corpus's
        for start in range(0, len(texts), ENCODE_CHUNK):
            part = texts[start : start + ENCODE_CHUNK]
            items = self.prompted_texts(part, task_metadata, prompt_type, hf_split)
            query_side = query_side or (bool(items) and items[0].is_query)
            if self.cache is not None:
                vecs = self.cache.embed(items, lambda todo: self.backend.embed(todo, batch_size))
            else:
                vecs = self.backend.embed(items, batch_size)
            if not np.isfinite(vecs).all():
                raise FloatingPointError(
                    f"{task_metadata.name} ({hf_split}): the model produced NaN/inf embeddings "
                    f"(dtype={self.config.dtype}; in float16 long inputs can overflow); no score is written. "
                    "Try dtype=bfloat16 or float32."
                )
            chunks.append(np.asarray(vecs, dtype=np.float32))
        vecs = np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)
        if len(set(texts)) > 1 and float(np.ptp(vecs, axis=0).max()) == 0.0:
            raise FloatingPointError(
                f"{task_metadata.name} ({hf_split}): every text got the same embedding, so scores would be "
                "meaningless; no score is written. Check the model weights and the pooling position."
            )
        normalise = self.config.normalize and (
            task_metadata.type not in NO_NORMALISE_TYPES or self.config.normalize_classification
        )
        if normalise:
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self.encode_calls.append(
            {
                "task": task_metadata.name,
                "split": hf_split,
                "subset": hf_subset,
                "prompt_type": prompt_type.value if prompt_type else None,
                "n": len(texts),
                "query_side": query_side,
            }
        )
        return vecs.astype(np.float32)
