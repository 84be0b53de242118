"""Forward passes: prompted texts in, one unnormalised float32 vector per text out.

Two backends share one small interface (`embed`) so the adapter never cares which kind of model it
drives: a decoder LLM through transformers (left padding, last-token pooling, as bge-en-icl) and a
sentence-transformers encoder (its own pooling) for encoder baselines.
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from evalharness.encoders.attention import AttentionError, attends_causally
from evalharness.prompts import PromptedText, special_layout, tokenize_prompted

#: Bumped whenever a change here alters the floats a model produces (batching, packing, masks):
#: part of the embedding cache's namespace, so vectors from older code are never mixed with new ones
#: (they differ in the last bits, enough to flip a classifier's decision and move a score).
NUMERICS_REVISION = 3

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """fp16 on a CPU is slow and inexact, so the reference casts to float there; we do the same."""
    if dtype == "auto":
        return (
            torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        )
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(DTYPES)}")
    if device == "cpu" and dtype != "float32":
        logger.warning("dtype=%s requested on CPU; using float32 as the reference implementation does", dtype)
        return torch.float32
    return DTYPES[dtype]


class Backend(Protocol):
    tokens_encoded: int

    def embed(self, items: Sequence[PromptedText], batch_size: int) -> np.ndarray: ...

    def count_tokens(self, items: Sequence[PromptedText]) -> list[int]: ...


@dataclass(frozen=True)
class Replica:
    device: str
    model: Any


class DecoderBackend:
    """A transformers AutoModel with last-token pooling over left-padded batches."""

    def __init__(
        self,
        path: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        query_max_length: int = 512,
        passage_max_length: int = 512,
        trust_remote_code: bool = False,
        prefix_cache: bool | None = None,
        max_tokens_per_batch: int = 16384,
        devices: Sequence[str] = (),
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.device = resolve_device(devices[0] if devices else device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
        self.tokenizer.padding_side = "left"
        self.model = model or AutoModel.from_pretrained(
            path, revision=revision, dtype=self.dtype, trust_remote_code=trust_remote_code
        )
        self.model.to(self.device).eval()
        self.replicas = self._replicas([resolve_device(d) for d in devices] or [self.device])
        self._lock = threading.Lock()
        self.layout = special_layout(self.tokenizer)
        pad = self.tokenizer.pad_token_id
        if pad is None:  # the reference pads with unk when there is no pad token
            pad = (
                self.tokenizer.unk_token_id if self.tokenizer.unk_token_id is not None else self.layout.eos_id
            )
        self.pad_id = int(pad)
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.causal = attends_causally(self.model, self.device)
        if prefix_cache and not self.causal:  # cached prefix states would never see the query
            raise AttentionError(
                f"{path} attends bidirectionally, so a cached examples prefix would never see the query "
                "and every few-shot vector would be wrong; drop model.prefix_cache=true (the default, "
                "null, encodes every text of such a model whole)"
            )
        if not self.causal:
            logger.info("%s attends bidirectionally: every text is encoded whole (no prefix cache)", path)
        self.prefix_cache = prefix_cache is not False and self.causal
        # custom 4D masks reach sdpa/eager attention as given; other kernels get the expanded path
        self._packing = getattr(self.model.config, "_attn_implementation", None) in ("sdpa", "eager")
        self._prefix_kvs: dict[str, tuple[tuple[int, ...], Any]] = {}  # device -> (prefix ids, cache)
        # transformers 5.24 renamed the forward argument past_key_values -> cache
        params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.max_tokens_per_batch = max_tokens_per_batch
        self.tokens_encoded = 0  # real (non-pad) tokens that went through the model
        self.padded_tokens = 0  # pad positions computed alongside them
        self.n_truncated = 0
        # forward passes per (code path, device); every path gives the same vectors, so only this
        # says which one ran: "uncached", "prefix", "packed" or "expanded"
        self.forwards: Counter[tuple[str, str]] = Counter()

    def _replicas(self, devices: Sequence[str]) -> list[Replica]:
        """One model per device (data parallel). Several CPU "devices" share one model object:
        inference does not mutate it, and it makes the multi-device path testable on a CPU."""
        models: dict[str, Any] = {self.device: self.model}
        for d in devices:
            if d not in models:
                models[d] = copy.deepcopy(self.model).to(d).eval()
        return [Replica(d, models[d]) for d in devices]

    def tokenize(self, items: Sequence[PromptedText]) -> list[list[int]]:
        tok = tokenize_prompted(
            self.tokenizer,
            items,
            query_max_length=self.query_max_length,
            passage_max_length=self.passage_max_length,
            layout=self.layout,
        )
        self.n_truncated += tok.n_truncated
        return tok.input_ids

    def count_tokens(self, items: Sequence[PromptedText]) -> list[int]:
        return [len(ids) for ids in self.tokenize(items)]

    def _dispatch(self, batches: Sequence[list[int]], work: Callable[[Replica, list[int]], None]) -> None:
        """Run `work` on every batch; with several devices each replica takes the next batch as it
        frees up (a batch's result does not depend on which device ran it, so order is kept)."""

        def worker(replica: Replica) -> None:
            with torch.inference_mode():
                while True:
                    with self._lock:
                        batch = next(pending, None)
                    if batch is None:
                        return
                    work(replica, batch)

        pending = iter(batches)
        if len(self.replicas) == 1:
            worker(self.replicas[0])
            return
        with ThreadPoolExecutor(len(self.replicas)) as pool:
            list(pool.map(worker, self.replicas))  # re-raises a worker's exception

    def _count(self, real: int, padded: int, path: str, device: str) -> None:
        with self._lock:
            self.tokens_encoded += real
            self.padded_tokens += padded
            self.forwards[path, device] += 1

    def embed_ids(self, sequences: Sequence[Sequence[int]], batch_size: int) -> np.ndarray:
        """Sort by length (less padding), run left-padded batches, take the last position, restore order."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        out = np.empty((len(sequences), self.model.config.hidden_size), dtype=np.float32)
        batches = [
            [order[j] for j in b]
            for b in token_batches([len(sequences[i]) for i in order], batch_size, self.max_tokens_per_batch)
        ]

        def work(replica: Replica, idx: list[int]) -> None:
            width = max(len(sequences[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = sequences[i]
                ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq) :] = 1
            # explicit positions so left padding cannot shift a text's positions (matters for
            # absolute-position models; a no-op for RoPE up to rounding)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            result = replica.model(
                input_ids=ids.to(replica.device),
                attention_mask=mask.to(replica.device),
                position_ids=positions.to(replica.device),
                use_cache=False,  # no KV cache to build: it would dominate peak memory
            )
            out[idx] = result.last_hidden_state[:, -1].float().cpu().numpy()
            self._count(int(mask.sum()), int(mask.numel() - mask.sum()), "uncached", replica.device)

        self._dispatch(batches, work)
        return out

    def embed(self, items: Sequence[PromptedText], batch_size: int) -> np.ndarray:
        """Queries that share a prefix (the examples, and the instruction wrapper) run it once."""
        sequences = self.tokenize(items)
        if not self.prefix_cache:
            return self.embed_ids(sequences, batch_size)
        out = np.empty((len(items), self.model.config.hidden_size), dtype=np.float32)
        plain: list[int] = []
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            (groups.setdefault(item.prefix, []) if item.is_query else plain).append(i)
        for idx in groups.values():
            shared = common_prefix_length([sequences[i] for i in idx])
            if len(idx) < 2 or shared < MIN_SHARED_TOKENS:
                plain.extend(idx)
                continue
            try:
                out[idx] = self.embed_with_prefix(
                    sequences[idx[0]][:shared], [sequences[i][shared:] for i in idx], batch_size
                )
            except (TypeError, ValueError, NotImplementedError, AttributeError) as err:
                logger.warning(
                    "%s cannot continue from a cached prefix (%s); using the uncached path",
                    type(self.model).__name__,
                    err,
                )
                self.prefix_cache = False
                plain.extend(idx)
        if plain:
            out[plain] = self.embed_ids([sequences[i] for i in plain], batch_size)
        return out

    def embed_with_prefix(
        self, prefix: Sequence[int], rests: Sequence[Sequence[int]], batch_size: int
    ) -> np.ndarray:
        """Run `prefix` once per device, then every continuation on top of its key/values.

        Packed (the default): a batch's continuations are laid end to end in one row over the
        batch-1 prefix cache, with a block-diagonal causal mask and positions that restart after
        the prefix for each of them — no padding, and the prefix's keys/values are never copied per
        row. Where the attention implementation cannot take such a mask (flash attention) or a
        sliding window would apply, the prefix cache is expanded to a right-padded batch instead.
        Either way each row's last token sees exactly what it would see after the full prompt."""
        if self._packing and self._packable(len(prefix) + max(map(len, rests))):
            try:
                return self._continue_packed(prefix, rests, batch_size)
            except torch.OutOfMemoryError:
                raise  # a smaller batch is the fix, not the other path
            except (TypeError, ValueError, RuntimeError) as err:
                logger.warning(
                    "%s cannot take packed continuations (%s); expanding the prefix cache per batch",
                    type(self.model).__name__,
                    err,
                )
                self._packing = False
        return self._continue_expanded(prefix, rests, batch_size)

    def _packable(self, total_length: int) -> bool:
        """A custom 4D mask replaces the model's own mask, sliding window included."""
        config = self.model.config
        window = getattr(config, "sliding_window", None)
        uses_window = window is not None and getattr(config, "use_sliding_window", True)
        return not (uses_window and total_length > window)

    def clear_prefix_cache(self) -> None:
        """Drop the key/values kept from the last prefix (memory back; the next call recomputes it)."""
        self._prefix_kvs.clear()

    def _prefix_kv(self, replica: Replica, prefix: Sequence[int]) -> Any:
        """The prefix's key/values on this replica, computed once and kept until another prefix
        comes (a task encodes its queries in several calls, all with the same prefix)."""
        key = tuple(prefix)
        held = self._prefix_kvs.get(replica.device)
        if held is not None and held[0] == key:
            return held[1]
        self._prefix_kvs.pop(replica.device, None)  # free the old one before building the new one
        first = replica.model(
            input_ids=torch.tensor([list(prefix)], device=replica.device),
            position_ids=torch.arange(len(prefix), device=replica.device).unsqueeze(0),
            use_cache=True,
        )
        kv = first.get("cache") or first.past_key_values
        self._prefix_kvs[replica.device] = (key, kv)
        self._count(len(prefix), 0, "prefix", replica.device)
        return kv

    def _continue_packed(
        self, prefix: Sequence[int], rests: Sequence[Sequence[int]], batch_size: int
    ) -> np.ndarray:
        n_prefix = len(prefix)
        out = np.empty((len(rests), self.model.config.hidden_size), dtype=np.float32)
        batches = pack_batches(
            [len(r) for r in rests], batch_size, min(PACK_TOKENS, self.max_tokens_per_batch)
        )

        def work(replica: Replica, idx: list[int]) -> None:
            kv = copy.deepcopy(self._prefix_kv(replica, prefix))  # the forward appends to it
            lengths = [len(rests[i]) for i in idx]
            ids = torch.tensor([[t for i in idx for t in rests[i]]], device=replica.device)
            segment = torch.repeat_interleave(torch.arange(len(idx)), torch.tensor(lengths))
            offset = torch.cat([torch.arange(n) for n in lengths])
            total = len(segment)
            allowed = torch.ones((total, n_prefix + total), dtype=torch.bool)
            allowed[:, n_prefix:] = (segment[:, None] == segment[None, :]) & (
                offset[None, :] <= offset[:, None]
            )
            dtype = replica.model.dtype
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
            hidden = replica.model(
                input_ids=ids,
                attention_mask=mask[None, None].to(replica.device),
                position_ids=(n_prefix + offset).unsqueeze(0).to(replica.device),
                use_cache=True,
                **{self._cache_kwarg: kv},
            ).last_hidden_state[0]
            ends = torch.tensor(lengths).cumsum(0) - 1
            out[idx] = hidden[ends.to(replica.device)].float().cpu().numpy()
            self._count(total, 0, "packed", replica.device)

        self._dispatch(batches, work)
        return out

    def _continue_expanded(
        self, prefix: Sequence[int], rests: Sequence[Sequence[int]], batch_size: int
    ) -> np.ndarray:
        """Continuations right-padded with explicit positions after the prefix, so the last real
        token of each row sits at its own length - 1."""
        n_prefix = len(prefix)
        order = sorted(range(len(rests)), key=lambda i: -len(rests[i]))
        out = np.empty((len(rests), self.model.config.hidden_size), dtype=np.float32)
        # the cached prefix is expanded to every row, so it counts against the memory budget too
        lengths_sorted = [len(rests[i]) for i in order]
        batches = [
            [order[j] for j in b]
            for b in token_batches(lengths_sorted, batch_size, self.max_tokens_per_batch, extra=n_prefix)
        ]

        def work(replica: Replica, idx: list[int]) -> None:
            cache = copy.deepcopy(self._prefix_kv(replica, prefix))
            width = max(len(rests[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), n_prefix + width), dtype=torch.long)
            mask[:, :n_prefix] = 1
            lengths = torch.tensor([len(rests[i]) for i in idx])
            for row, i in enumerate(idx):
                ids[row, : len(rests[i])] = torch.tensor(rests[i], dtype=torch.long)
                mask[row, n_prefix : n_prefix + len(rests[i])] = 1
            cache.batch_repeat_interleave(len(idx))
            pos = (n_prefix + torch.arange(width)).unsqueeze(0).expand(len(idx), -1)
            hidden = replica.model(
                input_ids=ids.to(replica.device),
                attention_mask=mask.to(replica.device),
                position_ids=pos.to(replica.device),
                use_cache=True,
                **{self._cache_kwarg: cache},
            ).last_hidden_state
            last = hidden[torch.arange(len(idx)), (lengths - 1).to(replica.device)]
            out[idx] = last.float().cpu().numpy()
            self._count(int(lengths.sum()), int(len(idx) * width - lengths.sum()), "expanded", replica.device)

        self._dispatch(batches, work)
        return out


# Packed continuations attend block-diagonally, so the masked-out part of a pack's attention grows
# with its square; at a few hundred tokens it is still small next to the matmuls a pack saves.
PACK_TOKENS = 512


def pack_batches(lengths: Sequence[int], max_count: int, max_tokens: int) -> list[list[int]]:
    """Indices of `lengths` grouped, longest first, into packs of at most `max_count` texts and
    `max_tokens` tokens (a single longer text forms its own pack)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    packs: list[list[int]] = []
    tokens = 0
    for i in order:
        if packs and len(packs[-1]) < max_count and tokens + lengths[i] <= max_tokens:
            packs[-1].append(i)
            tokens += lengths[i]
        else:
            packs.append([i])
            tokens = lengths[i]
    return packs


def token_batches(
    lengths_desc: Sequence[int], max_count: int, max_tokens: int, extra: int = 0, max_padding: float = 0.1
) -> list[list[int]]:
    """Positions of `lengths_desc` (sorted longest first) grouped so that each batch holds at most
    `max_count` rows, `rows x (longest + extra)` stays within `max_tokens` (long texts get small
    batches, short ones large ones) and pad positions stay under `max_padding` of the batch — on a
    large corpus many texts share a length, so batches stay full where it matters. A single
    over-long text still forms its own batch."""
    batches: list[list[int]] = []
    i = 0
    while i < len(lengths_desc):
        # `extra` (a cached prefix expanded to every row) counts against memory, but padding is
        # judged on the tokens actually computed
        rows = max(1, min(max_count, max_tokens // max(lengths_desc[i] + extra, 1)))
        width = lengths_desc[i]
        end, real = i + 1, lengths_desc[i]
        while end < min(i + rows, len(lengths_desc)):
            new_real = real + lengths_desc[end]
            if (end + 1 - i) * width - new_real > max_padding * (end + 1 - i) * width:
                break
            real, end = new_real, end + 1
        batches.append(list(range(i, end)))
        i = end
    return batches


MIN_SHARED_TOKENS = 8  # below this, a cached prefix saves less than its bookkeeping costs


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens shared by all sequences, leaving each at least its last token (the one we pool)."""
    if not sequences:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences[1:]):
        n += 1
    return n


class SentenceTransformerBackend:
    """A sentence-transformers model fed the same prompt text as the decoder.

    Encoders have short windows (MiniLM: 256 tokens), so a long example prefix would push the query
    itself out under right truncation; texts with an examples prefix are therefore truncated from the
    left, which keeps the query and drops the oldest example tokens instead. Texts without one are
    cut from the right, as sentence-transformers and mteb cut them."""

    def __init__(
        self, path: str, *, revision: str | None = None, device: str = "auto", model: Any = None
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        self.model = model or SentenceTransformer(path, revision=revision, device=self.device)
        self.tokens_encoded = 0
        self.n_truncated = 0

    def count_tokens(self, items: Sequence[PromptedText]) -> list[int]:
        tok = self.model.tokenizer
        return [len(tok(item.text, verbose=False)["input_ids"]) for item in items]

    def embed(self, items: Sequence[PromptedText], batch_size: int) -> np.ndarray:
        out = np.empty((len(items), self.model.get_embedding_dimension()), dtype=np.float32)
        limit = self.model.max_seq_length
        for keep_end in (True, False):
            idx = [i for i, item in enumerate(items) if bool(item.prefix) == keep_end]
            if not idx:
                continue
            texts = [items[i].text for i in idx]
            lengths = self.count_tokens([items[i] for i in idx])
            self.n_truncated += sum(n > limit for n in lengths)
            self.tokens_encoded += sum(min(n, limit) for n in lengths)
            tok = self.model.tokenizer
            previous = tok.truncation_side
            tok.truncation_side = "left" if keep_end else "right"
            try:
                vecs = self.model.encode(
                    texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
                )
            finally:
                tok.truncation_side = previous
            out[idx] = vecs.astype(np.float32)
        return out
