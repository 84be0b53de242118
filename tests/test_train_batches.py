"""Batch construction as FlagEmbedding's ICL training builds it (issue 22): each switch of
`TrainConfig` pinned on its own, and the whole against the reference's code where its virtualenv
exists (`benchmarks/parity_train.py`)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from evalharness.prompts import PromptError, get_template
from evalharness.train.collator import ICLCollator
from evalharness.train.data import Dataset, TrainRow, steps
from evalharness.train.loss import info_nce

INSTRUCTION = "Classify the sentiment of the given movie review"


def _collator(tokenizer, **kw) -> ICLCollator:
    template = get_template(kw.pop("template", "bge-icl"))
    opts = {"query_max_length": 512, "passage_max_length": 512, "max_examples": 3, "group_size": 4, **kw}
    return ICLCollator(tokenizer, template, **opts)


def _classification(labels: list[str], n: int = 6) -> list[TrainRow]:
    return [
        TrainRow(f"review {i}: the film was {'good' if i % 2 else 'dull'}", (labels[i % len(labels)],),
                 tuple(x for x in labels if x != labels[i % len(labels)]), INSTRUCTION, "classification",
                 source=f"c:{i}")
        for i in range(n)
    ]  # fmt: skip


def _ids_of(collator, batch, kind):
    ids, mask = batch[f"{kind}_input_ids"], batch[f"{kind}_attention_mask"]
    return [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]


# -- 1. which passages carry the instruction -------------------------------------------------------------


def test_classification_labels_stay_raw_while_sts_and_clustering_passages_are_prompted(smollm2_backend):
    tok = smollm2_backend.tokenizer
    row = _classification(["negative", "positive"])[0]
    sts = TrainRow("A man plays guitar.", ("Someone plays a guitar.",), (), "Retrieve similar text", "sts")
    cluster = TrainRow(
        "Rockets reach orbit.", ("The shuttle launched.",), (), "Identify the topic", "clustering"
    )
    default = _collator(tok)
    assert default.passage_item(row, "positive").text == "positive"
    assert default.passage_item(sts, "x").text == "<instruct>Retrieve similar text\n<query>x\n<response>"
    assert default.passage_item(cluster, "x").text == "<instruct>Identify the topic\n<query>x\n<response>"
    ours = _collator(tok, prompt_passages=["sts", "classification", "clustering"])
    assert ours.passage_item(row, "positive").text == f"<instruct>{INSTRUCTION}\n<query>positive\n<response>"
    batch = default(_classification(["negative", "positive"]))
    label_ids = {tuple(ids) for ids in _ids_of(default, batch, "passage")}
    assert label_ids == {
        tuple(default._ids([default.passage_item(row, x)])[0]) for x in ("negative", "positive")
    }


def test_prompted_passages_are_cut_to_the_passage_budget_not_the_querys(smollm2_backend):
    tok = smollm2_backend.tokenizer
    long = " ".join(f"word{i}" for i in range(200))
    sts = TrainRow("short query", (long,), (), "Retrieve similar text", "sts")
    collator = _collator(tok, passage_max_length=24, query_max_length=512, max_examples=0, group_size=1)
    (ids,) = _ids_of(collator, collator([[sts, sts]]), "passage")[:1]
    suffix = tok("\n<response>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 24  # the passage budget, all of it
    assert ids[-len(suffix) - 1 : -1] == suffix and ids[-1] == tok.eos_token_id  # suffix and EOS survive


# -- 2. classification groups sized by the labels ----------------------------------------------------------


@pytest.mark.parametrize(("labels", "group_size", "labels_group", "fill_group"),
                         [(["negative", "positive"], 4, 2, 4), (["a", "b", "c", "d"], 3, 3, 3),
                          (["a", "b", "c", "d"], 8, 4, 8)])  # fmt: skip
def test_a_classification_batch_has_one_passage_per_label_up_to_group_size(
    smollm2_backend, labels, group_size, labels_group, fill_group
):
    rows = _classification(labels)
    for mode, want in (("labels", labels_group), ("fill", fill_group)):
        collator = _collator(smollm2_backend.tokenizer, group_size=group_size, class_group=mode)
        batch = collator(rows)
        assert batch["passage_input_ids"].shape[0] == len(rows) * want
        groups = [_ids_of(collator, batch, "passage")[i * want : (i + 1) * want] for i in range(len(rows))]
        if mode == "labels":  # every label once: the positive, then each wrong label
            assert all(len({tuple(g) for g in group}) == want for group in groups)
    # at equal scores the binary task's loss is ln 2 with label-sized groups, ln 4 when filled to 4
    q = torch.ones(3, 8)
    assert info_nce(q, torch.ones(3 * 2, 8), in_batch=False).item() == pytest.approx(math.log(2), rel=1e-6)
    assert info_nce(q, torch.ones(3 * 4, 8), in_batch=False).item() == pytest.approx(math.log(4), rel=1e-6)


# -- 3. a positive drawn per row and step ------------------------------------------------------------------


def test_every_positive_of_a_row_trains_and_shows_as_its_example_response(smollm2_backend):
    tok = smollm2_backend.tokenizer
    rows = [
        TrainRow(f"question {i}?", tuple(f"answer {i}.{j}" for j in range(3)), (f"wrong {i}",), "Retrieve answers",
                 "retrieval", source=f"r:{i}", pos_scores=(10.0 + i, 20.0 + i, 30.0 + i), neg_scores=(0.5,))
        for i in range(4)
    ]  # fmt: skip
    for mode, want in (("random", {0, 1, 2}), ("first", {0})):
        collator = _collator(tok, group_size=2, positive=mode, teacher_scores=True, max_examples=3)
        seen = set()
        for seed in range(12):
            collator.rng = random.Random(seed)
            picks = [collator.pick(r, 2) for r in rows]
            collator.rng = random.Random(seed)
            queries, passages, teacher, _ = collator.build(rows, 3)
            for i, (p, _) in enumerate(picks):
                seen.add(p)
                assert passages[i * 2].text == rows[i].pos[p]  # the drawn positive is the group's first
                assert teacher[i][0] == rows[i].pos_scores[p]  # and its teacher score travels with it
                for q in queries:  # as an example, a row shows the positive it trains on this step
                    if f"<query>{rows[i].query}\n" in q.prefix:
                        assert f"<query>{rows[i].query}\n<response>{rows[i].pos[p]}" in q.prefix
        assert seen == want


# -- 4. symmetric datasets at half the batch -----------------------------------------------------------------


def test_sts_classification_and_clustering_datasets_take_half_the_batch_or_the_switch():
    def dataset(kind: str) -> Dataset:
        return Dataset(
            kind, [TrainRow(f"{kind} {i}", (f"p {i}",), (), "i", kind, source=str(i)) for i in range(48)]
        )

    data = [dataset(k) for k in ("retrieval", "sts", "classification", "clustering")]

    def sizes(**kw) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for step in steps(data, 8, seed=0, **kw):
            out.setdefault(step[0][0].type, set()).add(len(step[0]))
        return out

    assert sizes() == {"retrieval": {8}, "sts": {4}, "classification": {4}, "clustering": {4}}
    assert sizes(symmetric_batch_size=8) == {
        k: {8} for k in ("retrieval", "sts", "classification", "clustering")
    }
    assert sizes(symmetric_batch_size=6, world_size=2)["sts"] == {6}


# -- 5. example caps on the instruction-wrapped example query ----------------------------------------------


def test_wrapped_caps_cut_the_instruction_wrapped_example_query_raw_caps_the_text(smollm2_backend):
    tok = smollm2_backend.tokenizer
    row = TrainRow("a fairly long question about the history of the roman empire and its fall?",
                   ("an answer that is long enough to be cut somewhere in the middle of it",), (), INSTRUCTION,
                   "retrieval")  # fmt: skip
    wrapped = _collator(tok, example_query_max_tokens=12, example_passage_max_tokens=5, example_cut="wrapped")
    ids = tok(f"<instruct>{INSTRUCTION}\n<query>{row.query}", add_special_tokens=False)["input_ids"]
    response = tok.decode(tok(row.pos[0], add_special_tokens=False)["input_ids"][:5])
    assert wrapped.example_text(row, row.pos[0]) == tok.decode(ids[:12]) + "\n<response>" + response
    assert row.query[:10] not in wrapped.example_text(row, row.pos[0])  # the instruction took the 12 tokens

    raw = _collator(tok, example_query_max_tokens=12, example_passage_max_tokens=5, example_cut="raw")
    query = tok.decode(tok(row.query, add_special_tokens=False)["input_ids"][:12])
    assert (
        raw.example_text(row, row.pos[0]) == f"<instruct>{INSTRUCTION}\n<query>{query}\n<response>{response}"
    )


def test_wrapped_caps_need_a_template_whose_response_follows_the_query(smollm2_backend):
    from evalharness.prompts import PromptTemplate

    backwards = PromptTemplate("custom", example_format="{response} <- {query}")
    with pytest.raises(PromptError, match="example_cut=raw"):
        _collator(smollm2_backend.tokenizer, template=backwards)
    _collator(smollm2_backend.tokenizer, template=backwards, example_cut="raw")  # raw works with any


# -- the prefix budget and the query's truncation ------------------------------------------------------------


def test_the_prefix_budget_counts_the_tokenizers_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    from benchmarks.parity_train import parity_tokenizer

    tok = AutoTokenizer.from_pretrained(parity_tokenizer(tmp_path / "tok"))  # adds BOS and EOS
    rows = [
        TrainRow(f"question {i}?", (f"answer {i}",), (), "Retrieve answers", "retrieval") for i in range(2)
    ]
    collator = _collator(tok, max_examples=1, group_size=1)
    prefix = collator._prefix([collator.example_text(rows[1], rows[1].pos[0])])
    plain = len(tok(prefix, add_special_tokens=False)["input_ids"])
    assert len(tok(prefix)["input_ids"]) == plain + 2
    for budget, fits in ((plain + 1, False), (plain + 2, True)):
        collator.prefix_max_tokens = budget
        counts = set()
        for seed in range(20):  # k is 0 or 1; when 1, the example fits only if BOS and EOS fit too
            collator.rng = random.Random(seed)
            counts.add(collator.build(rows, 1)[3][0])
        assert counts == ({0, 1} if fits else {0})


def test_joint_truncation_cuts_examples_and_query_as_one_string_query_keeps_the_examples(smollm2_backend):
    tok = smollm2_backend.tokenizer
    long = " ".join(f"term{i}" for i in range(80))
    rows = [TrainRow(long if i == 0 else f"question {i}?", (f"answer {i}",), (), "Retrieve answers", "retrieval")
            for i in range(4)]  # fmt: skip
    examples = [_collator(tok).example_text(rows[1], "answer 1")]
    for mode in ("joint", "query"):
        collator = _collator(tok, query_max_length=64, query_truncation=mode)
        item = collator.query_item(rows[0], examples)
        (ids,) = collator._ids([item])
        text = tok.decode(ids[:-1])  # SmolLM2 adds no BOS; the last id is EOS
        assert text.endswith("\n<response>") and "term79" not in text
        if mode == "joint":  # one string cut from the right to the query budget: the query's tail goes
            assert len(ids) == 64 and text.startswith(examples[0])
        else:  # the prefix whole in front of the wrapped query, which alone is cut to the budget
            assert text.startswith(examples[0] + "\n\n<instruct>Retrieve answers\n<query>term0")
            prefix = len(tok(examples[0] + "\n\n", add_special_tokens=False)["input_ids"])
            assert abs(len(ids) - (prefix + 64)) <= 1  # (+-1: "\n\n" merges with what follows)
    full = _collator(tok, query_max_length=512, query_truncation="joint")
    (short,) = full._ids([full.query_item(rows[2], examples)])
    (same,) = _collator(tok, query_max_length=512)._ids([full.query_item(rows[2], examples)])
    assert short == same  # nothing to cut: both rules give the evaluation's ids


# -- the whole, against FlagEmbedding's code -----------------------------------------------------------------


def test_train_paper_batches_equal_flagembeddings_on_every_row_type():
    """`python -m benchmarks.parity_train`, where the reference's virtualenv exists (`make bench` builds
    it; it needs transformers 4, so it never runs in this environment)."""
    from benchmarks.common import REFERENCE_VENV

    if not (REFERENCE_VENV / ".bench-installed").is_file():
        pytest.skip("the reference virtualenv .cache/bench/flag-venv is absent (make bench builds it)")
    from benchmarks.parity_train import run

    results = run(seeds=2)
    assert {(r["setting"], r["type"]) for r in results} >= {
        ("paper", "normal"),
        ("cut", "symmetric_clustering"),
    }
    assert sum(r["queries_cut"] for r in results) and sum(r["passages_cut"] for r in results)  # budgets cut
    bad = [r for r in results if not (r["strings"] and r["ids"] and r["teacher"] and r["loss_diff"] <= 1e-6)]
    assert not bad
