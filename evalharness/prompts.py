"""Prompt templates and the token-budget rules that turn (examples, instruction, text) into model input.

The default template reproduces FlagEmbedding's `ICLLLMEmbedder` byte for byte (see the bge-en-icl
method reference): each example is `<instruct>{instruction}\\n<query>{query}\\n<response>{response}`,
examples are joined by a blank line and followed by one, the query is
`<instruct>{instruction}\\n<query>{query}` and the suffix is `\\n<response>`. Passages stay raw.

Tokenisation follows the reference too, because it decides which tokens the model sees:
the example prefix is never truncated, only the instruction-wrapped query is cut to the query budget
(then decoded back to text and re-tokenised together with prefix and suffix), passages are cut to the
passage budget, and every sequence ends with EOS whether or not the tokenizer adds one.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from evalharness.errors import EvalharnessError
from evalharness.examples import Example

PLACEHOLDERS = ("instruction", "query", "response")


class PromptError(EvalharnessError, ValueError):
    """A template or prompt input that cannot work; the message names the fix."""


def _placeholders(fmt: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None}
    except ValueError as err:  # unbalanced braces
        raise PromptError(
            f"format string {fmt!r} is not a valid template: {err}. Escape literal braces as {{{{ }}}}."
        ) from err


@dataclass(frozen=True)
class PromptTemplate:
    """How examples, the task instruction and a query are laid out as text."""

    name: str
    query_format: str = "<instruct>{instruction}\n<query>{query}"
    example_format: str = "<instruct>{instruction}\n<query>{query}\n<response>{response}"
    suffix: str = "\n<response>"
    example_separator: str = "\n\n"
    prefix_end: str = "\n\n"

    def __post_init__(self) -> None:
        for attr, required in (("query_format", {"query"}), ("example_format", {"query", "response"})):
            fmt = getattr(self, attr)
            names = _placeholders(fmt)
            unknown = sorted(names - set(PLACEHOLDERS))
            if unknown:
                raise PromptError(
                    f"template {self.name!r}: {attr} uses unknown placeholder(s) "
                    f"{', '.join('{' + u + '}' for u in unknown)}; allowed: "
                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )
            missing = sorted(required - names)
            if missing:
                raise PromptError(
                    f"template {self.name!r}: {attr} {fmt!r} lacks "
                    f"{', '.join('{' + m + '}' for m in missing)}; add it so the text reaches the model"
                )
            if "response" in names and attr == "query_format":
                raise PromptError(f"template {self.name!r}: query_format cannot use {{response}}")

    def instruction_uses(self, with_examples: bool) -> list[str]:
        """Where the task instruction reaches the model ("query", "examples"), so that manifests and
        `evalharness prompt` record an instruction only when it was applied (`plain` uses none)."""
        uses = ["query"] if "instruction" in _placeholders(self.query_format) else []
        if with_examples and "instruction" in _placeholders(self.example_format):
            uses.append("examples")
        return uses

    def render_example(self, example: Example, instruction: str) -> str:
        own = example.instruction if example.instruction is not None else instruction
        return self.example_format.format(instruction=own, query=example.query, response=example.response)

    def example_parts(self) -> tuple[str, str]:
        """The example format's literal text between `{query}` and `{response}`, and after
        `{response}` (bge-icl: "\\n<response>" and ""), so that training can cut the instruction-wrapped
        example query as FlagEmbedding does and put the example back together around it."""
        parsed = list(string.Formatter().parse(self.example_format))
        names = [name for _, name, _, _ in parsed if name is not None]
        if names.count("query") != 1 or names.count("response") != 1:
            raise PromptError(
                f"template {self.name!r}: example_cut=wrapped needs an example_format with one {{query}} and "
                "one {response}; use example_cut=raw"
            )
        q, r = names.index("query"), names.index("response")
        if r != q + 1:
            raise PromptError(
                f"template {self.name!r}: example_cut=wrapped needs {{response}} right after {{query}} with "
                "only literal text between them; use example_cut=raw"
            )
        fields = [i for i, (_, name, _, _) in enumerate(parsed) if name is not None]
        between = parsed[fields[r]][0]  # the literal in front of {response}
        after = "".join(lit for lit, _, _, _ in parsed[fields[r] + 1 :])
        return between, after

    def example_query(self, query: str, instruction: str) -> str:
        """An example's text up to the end of its query (bge-icl: the instruction-wrapped query, what
        FlagEmbedding cuts to `example_query_max_len`)."""
        between, _ = self.example_parts()
        head = self.example_format.format(instruction=instruction, query=query, response="\x00").split(
            "\x00"
        )[0]
        return head[: len(head) - len(between)]

    def render_prefix(self, examples: Sequence[Example], instruction: str) -> str:
        """The shared part in front of every query of a task (empty for zero-shot)."""
        if not examples:
            return ""
        rendered = [self.render_example(e, instruction) for e in examples]
        return self.example_separator.join(rendered) + self.prefix_end

    def wrap_query(self, query: str, instruction: str) -> str:
        return self.query_format.format(instruction=instruction, query=query)

    def render_query(self, query: str, instruction: str, examples: Sequence[Example] = ()) -> str:
        """The full query text as the reference builds it (before tokenisation and truncation)."""
        return self.render_prefix(examples, instruction) + self.wrap_query(query, instruction) + self.suffix


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(name="bge-icl"),
        # FlagICLModel with query_instruction_for_retrieval=None (its tutorial's mode): the query is
        # not wrapped, the examples still carry an instruction (their own, else the task's).
        PromptTemplate(name="no-instruction", query_format="{query}"),
        PromptTemplate(
            name="e5",
            query_format="Instruct: {instruction}\nQuery: {query}",
            example_format="Instruct: {instruction}\nQuery: {query}\nResponse: {response}",
            suffix="",
        ),
        # Qwen3-Embedding's documented query format (no space after "Query:")
        PromptTemplate(
            name="qwen3",
            query_format="Instruct: {instruction}\nQuery:{query}",
            example_format="Instruct: {instruction}\nQuery:{query}\nResponse:{response}",
            suffix="",
        ),
        PromptTemplate(name="plain", query_format="{query}", example_format="{query}\n{response}", suffix=""),
    )
}


def get_template(spec: str | Mapping[str, Any] | PromptTemplate) -> PromptTemplate:
    """A template by name, or a custom one from config fields.

    Literal backslash-n in config strings becomes a newline, as the reference does for its format
    strings (never for example texts)."""
    if isinstance(spec, PromptTemplate):
        return spec
    if isinstance(spec, str):
        if spec not in TEMPLATES:
            import difflib

            close = difflib.get_close_matches(spec, TEMPLATES, n=2)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise PromptError(f"unknown template {spec!r}; known: {', '.join(TEMPLATES)}.{hint}")
        return TEMPLATES[spec]
    fields = {
        k: (v.replace("\\n", "\n") if isinstance(v, str) and k != "name" else v) for k, v in spec.items()
    }
    allowed = set(PromptTemplate.__dataclass_fields__)
    extra = sorted(set(fields) - allowed)
    if extra:
        raise PromptError(f"custom template has unknown field(s) {extra}; allowed: {sorted(allowed)}")
    base = TEMPLATES.get(str(fields.pop("base", "bge-icl")), TEMPLATES["bge-icl"])
    return replace(base, **{"name": "custom", **fields})


# ---------------------------------------------------------------------------------------------
# Tokenisation with the reference's budgets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptedText:
    """One text ready for a backend: the shared prefix, the per-text body and the suffix.

    For a query the body is the instruction-wrapped query; for a passage it is the raw text and
    prefix and suffix are empty. `max_length` replaces the query budget for a query-shaped text that
    is cut to another budget (training's instruction-wrapped STS/clustering passages)."""

    prefix: str
    body: str
    suffix: str
    is_query: bool
    max_length: int | None = None

    @property
    def text(self) -> str:
        return self.prefix + self.body + self.suffix


@dataclass
class SpecialLayout:
    """Which special tokens the tokenizer puts around a text, and the end token every sequence closes
    with: the tokenizer's own trailing token where it appends one (Qwen3-Embedding's <|endoftext|>,
    which its authors and mteb pool, although its eos_token is <|im_end|>), else EOS, appended as
    FlagEmbedding does for bge-en-icl's Mistral tokenizer, which appends nothing."""

    lead: list[int]
    trail: list[int]
    eos_id: int

    @property
    def closing(self) -> list[int]:
        return self.trail if self.trail else [self.eos_id]


def special_layout(tokenizer: Any) -> SpecialLayout:
    """Find the tokenizer's own leading/trailing special tokens by comparing with and without them."""
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise PromptError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no EOS token; last-token pooling "
            "needs one. Set eos_token in the tokenizer config."
        )
    probe = "evalharness probe"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return SpecialLayout(lead=list(full[:i]), trail=list(full[i + len(plain) :]), eos_id=eos_id)
    return SpecialLayout(lead=[], trail=[], eos_id=eos_id)


@dataclass
class TokenizedPrompts:
    input_ids: list[list[int]]
    n_truncated: int = 0
    prefix_tokens: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # the string each item's ids were tokenised from


def tokenize_prompted(
    tokenizer: Any,
    items: Sequence[PromptedText],
    *,
    query_max_length: int = 512,
    passage_max_length: int = 512,
    layout: SpecialLayout | None = None,
) -> TokenizedPrompts:
    """Token ids per item, following FlagEmbedding's `encode_queries_single_device` / `encode_single_device`."""
    layout = layout or special_layout(tokenizer)
    closing = layout.closing
    out: list[list[int]] = []
    texts: list[str] = []
    n_truncated = 0
    prefix_tokens: dict[str, int] = {}
    suffix_len: dict[str, int] = {}
    for item in items:
        if item.is_query:
            if item.suffix not in suffix_len:
                suffix_len[item.suffix] = len(tokenizer(item.suffix, add_special_tokens=False)["input_ids"])
            limit = item.max_length or query_max_length
            budget = limit - len(layout.lead) - suffix_len[item.suffix] - len(closing)
            if budget <= 0:
                raise PromptError(
                    f"query_max_length={limit} leaves no room for the query after special tokens "
                    "and the suffix; raise query_max_length"
                )
            body_ids = tokenizer(item.body, add_special_tokens=False)["input_ids"]
            if len(body_ids) > budget:
                n_truncated += 1
            # the reference always decodes the (possibly cut) query back to text and re-tokenises it
            # together with prefix and suffix; we do the same so the model sees the same tokens
            body = tokenizer.decode(body_ids[:budget])
            text = item.prefix + body + item.suffix
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if item.prefix and item.prefix not in prefix_tokens:
                prefix_tokens[item.prefix] = len(
                    tokenizer(item.prefix, add_special_tokens=False)["input_ids"]
                )
        else:
            text = item.text
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            budget = passage_max_length - len(layout.lead) - len(closing)
            if len(ids) > budget:
                n_truncated += 1
                ids = ids[:budget]
        out.append([*layout.lead, *ids, *closing])
        texts.append(text)
    return TokenizedPrompts(input_ids=out, n_truncated=n_truncated, prefix_tokens=prefix_tokens, texts=texts)
