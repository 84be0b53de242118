"""The rendered prompt must equal the reference format byte for byte, and tokenisation must follow
the reference's budgets (prefix never cut, query cut to its budget, passages to theirs, EOS once)."""

from __future__ import annotations

import pytest

from evalharness.examples import Example
from evalharness.prompts import (
    PromptedText,
    PromptError,
    PromptTemplate,
    get_template,
    special_layout,
    tokenize_prompted,
)

BANKING = "Given a online banking query, find the corresponding intents."
BGE = get_template("bge-icl")


def test_zero_shot_query():
    assert BGE.render_query("How do I top up my card?", BANKING) == (
        "<instruct>Given a online banking query, find the corresponding intents.\n"
        "<query>How do I top up my card?\n<response>"
    )


def test_one_shot_query():
    ex = [Example("What is my money worth in other countries?", "exchange_rate")]
    assert BGE.render_query("How do I top up my card?", BANKING, ex) == (
        "<instruct>Given a online banking query, find the corresponding intents.\n"
        "<query>What is my money worth in other countries?\n<response>exchange_rate\n\n"
        "<instruct>Given a online banking query, find the corresponding intents.\n"
        "<query>How do I top up my card?\n<response>"
    )


def test_two_shot_matches_reference_rendering():
    """The Banking77 two-shot string printed in the bge-en-icl method reference."""
    ex = [
        Example("What is my money worth in other countries?", "exchange_rate"),
        Example("What can I do if my card still hasn't arrived after 2 weeks?", "card_arrival"),
    ]
    expected = (
        "<instruct>Given a online banking query, find the corresponding intents.\n<query>What is my money worth in "
        "other countries?\n<response>exchange_rate\n\n<instruct>Given a online banking query, find the "
        "corresponding intents.\n<query>What can I do if my card still hasn't arrived after 2 weeks?\n<response>"
        "card_arrival\n\n<instruct>Given a online banking query, find the corresponding intents.\n<query>How do I "
        "top up my card?\n<response>"
    )
    assert BGE.render_query("How do I top up my card?", BANKING, ex) == expected


def test_three_shot_query_and_prefix():
    ex = [Example("a", "1"), Example("b", "2"), Example("c", "3")]
    assert BGE.render_prefix(ex, "T.") == (
        "<instruct>T.\n<query>a\n<response>1\n\n<instruct>T.\n<query>b\n<response>2\n\n"
        "<instruct>T.\n<query>c\n<response>3\n\n"
    )
    assert (
        BGE.render_query("q", "T.", ex) == BGE.render_prefix(ex, "T.") + "<instruct>T.\n<query>q\n<response>"
    )


def test_example_with_its_own_instruction():
    web = "Given a web search query, retrieve relevant passages that answer the query."
    ex = [
        Example("what is a virtual interface", "A virtual interface is a software-defined abstraction.", web)
    ]
    assert BGE.render_query(
        "summit define", "Given a question, retrieve passages that answer the question.", ex
    ) == (
        f"<instruct>{web}\n<query>what is a virtual interface\n<response>A virtual interface is a "
        "software-defined abstraction.\n\n<instruct>Given a question, retrieve passages that answer the "
        "question.\n<query>summit define\n<response>"
    )


def test_no_instruction_template_leaves_query_raw():
    web = "Given a web search query, retrieve relevant passages that answer the query."
    tpl = get_template("no-instruction")
    ex = [Example("what is a virtual interface", "A virtual interface.", web)]
    assert tpl.render_query("summit define", "ignored for the query", ex) == (
        f"<instruct>{web}\n<query>what is a virtual interface\n<response>A virtual interface.\n\n"
        "summit define\n<response>"
    )


def test_e5_template():
    assert get_template("e5").render_query("q", "Do it") == "Instruct: Do it\nQuery: q"


def test_example_texts_keep_literal_backslash_n():
    ex = [Example("line\\nbreak", "x")]
    assert "line\\nbreak" in BGE.render_prefix(ex, "T")


def test_custom_template_from_config_turns_backslash_n_into_newline():
    tpl = get_template({"query_format": "Q: {query}\\nI: {instruction}", "suffix": "\\nA:"})
    assert tpl.render_query("x", "y") == "Q: x\nI: y\nA:"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_format": "<q>{query} {task}"}, "unknown placeholder(s) {task}"),
        ({"query_format": "<q>{instruction}"}, "lacks {query}"),
        ({"example_format": "{query}"}, "lacks {response}"),
        ({"query_format": "{query"}, "not a valid template"),
    ],
)
def test_bad_template_is_a_clear_error(kwargs, message):
    with pytest.raises(
        PromptError,
        match="(?s)"
        + message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{").replace("}", r"\}"),
    ):
        PromptTemplate(name="t", **kwargs)


def test_unknown_template_name_suggests_close_match():
    with pytest.raises(PromptError, match="Did you mean 'bge-icl'"):
        get_template("bge-icll")


# -- tokenisation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(smollm2_backend):
    return smollm2_backend.tokenizer


def _query_item(prefix: str, query: str) -> PromptedText:
    return PromptedText(prefix, BGE.wrap_query(query, BANKING), BGE.suffix, True)


def test_eos_appended_once_and_prefix_never_truncated(tok):
    prefix = BGE.render_prefix([Example("long example " * 200, "label")], BANKING)  # ~600 tokens
    item = _query_item(prefix, "how do I top up " * 100)
    out = tokenize_prompted(tok, [item], query_max_length=64, passage_max_length=32)
    ids = out.input_ids[0]
    assert ids[-1] == tok.eos_token_id and ids[-2] != tok.eos_token_id
    text = tok.decode(ids)
    assert text.startswith(prefix)  # the whole prefix survives
    assert text.endswith("\n<response>" + tok.eos_token)
    body_budget = 64 - len(tok("\n<response>", add_special_tokens=False)["input_ids"]) - 1
    wrapped = tok.decode(tok(item.body, add_special_tokens=False)["input_ids"][:body_budget])
    assert text == prefix + wrapped + "\n<response>" + tok.eos_token
    assert out.n_truncated == 1


def test_passage_cut_to_passage_budget(tok):
    out = tokenize_prompted(tok, [PromptedText("", "word " * 500, "", False)], passage_max_length=32)
    assert len(out.input_ids[0]) == 32 and out.input_ids[0][-1] == tok.eos_token_id


def test_short_texts_are_not_truncated(tok):
    item = _query_item("", "top up")
    out = tokenize_prompted(tok, [item, PromptedText("", "a passage", "", False)])
    assert out.n_truncated == 0
    assert tok.decode(out.input_ids[0]) == item.text + tok.eos_token
    assert tok.decode(out.input_ids[1]) == "a passage" + tok.eos_token


class _AddsBosEos:
    """A tokenizer that adds BOS and EOS itself (as bge-en-icl's does): EOS must not be doubled."""

    def __init__(self, inner):
        self.inner, self.eos_token_id, self.bos = inner, inner.eos_token_id, 1

    def __call__(self, text, add_special_tokens=True):
        ids = self.inner(text, add_special_tokens=False)["input_ids"]
        return {"input_ids": [self.bos, *ids, self.eos_token_id] if add_special_tokens else ids}

    def decode(self, ids):
        return self.inner.decode(ids)


def test_tokenizer_that_adds_bos_and_eos(tok):
    wrapped = _AddsBosEos(tok)
    layout = special_layout(wrapped)
    assert layout.lead == [1] and layout.trail == [tok.eos_token_id]
    ids = tokenize_prompted(
        wrapped, [PromptedText("", "word " * 100, "", False)], passage_max_length=16
    ).input_ids[0]
    assert len(ids) == 16 and ids[0] == 1 and ids[-1] == tok.eos_token_id and ids[-2] != tok.eos_token_id
