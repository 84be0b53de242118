"""The training promises of docs/training.md, each pinned by a fast check on tiny data that
needs neither a training run nor the reference's virtualenv: the collator's order of draws against
FlagEmbedding's `_create_batch_data` written out by hand, the configured caps and budget, the loss the
Trainer computes (pooling, temperature, in-batch negatives by type, distillation, the cross-device
gather) against a by-hand computation on a toy decoder, resume determinism of batches and layouts,
mining that never returns a positive, and one dataset per step on every device."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evalharness.prompts import get_template
from evalharness.train.collator import ICLCollator
from evalharness.train.data import Dataset, DeviceBatch, StepBatches, TrainRow

INSTRUCTION = "Given a question, retrieve passages that answer it"
TEMPLATE = get_template("bge-icl")


@pytest.fixture(scope="module")
def tokenizer(smollm2_config):
    """SmolLM2's tokenizer alone (the collator needs no model)."""
    from transformers import AutoTokenizer

    from evalharness.encoders.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source(smollm2_config.source))
    tok.padding_side = "left"
    return tok


def _collator(tokenizer, **kw) -> ICLCollator:
    opts = {"query_max_length": 512, "passage_max_length": 512, "max_examples": 3, "group_size": 3,
            "prefix_max_tokens": 10**6, "seed": 0, **kw}  # fmt: skip
    return ICLCollator(tokenizer, TEMPLATE, **opts)


def _rows(kind: str = "retrieval", n: int = 8, scores: bool = False) -> list[TrainRow]:
    """Rows with 1-3 positives and 1, 2 or 4 negatives (fewer, as many as and more than a group of 3
    needs), each passage with its own teacher score."""
    rows = []
    for i in range(n):
        pos = tuple(f"answer {i}.{j} about topic {i % 3}" for j in range(1 + i % 3))
        neg = tuple(f"wrong passage {i}.{j}" for j in range((1, 2, 4)[i % 3]))
        rows.append(
            TrainRow(f"question {i} about topic {i % 3}?", pos, neg, INSTRUCTION, kind,
                     category=f"topic {i % 3}" if kind == "clustering" else None, source=f"{kind}:{i}",
                     pos_scores=tuple(10.0 * i + j for j in range(len(pos))) if scores else (),
                     neg_scores=tuple(10.0 * i + 5 + j for j in range(len(neg))) if scores else ())
        )  # fmt: skip
    return rows


# -- 1. the reference's order of draws ----------------------------------------------------------------


def _reference_draws(rows: list[TrainRow], seed: int, group: int, most: int):
    """FlagEmbedding 1.4.2's `_create_batch_data`, its random draws only, in its own words: row by row
    `random.choice(list(range(len(pos))))` then `random.sample` of the negatives (the index list repeated
    `ceil((group - 1) / len(neg))` times when short); then query by query `random.choice([0..most])`
    and, only when that is > 0, `random.sample(range(len(rows)), min(k + 1, len(rows)))`, the query's
    own row removed, the first k kept."""
    rng = random.Random(seed)
    picks = []
    for row in rows:
        pos = rng.choice(list(range(len(row.pos))))
        everything = list(range(len(row.neg)))
        if len(row.neg) < group - 1:
            negs = rng.sample(everything * math.ceil((group - 1) / len(row.neg)), group - 1)
        else:
            negs = rng.sample(everything, group - 1)
        picks.append((pos, negs))
    examples = []
    for i in range(len(rows)):
        k = rng.choice(list(range(most + 1)))
        chosen: list[int] = []
        if k > 0:
            chosen = rng.sample(list(range(len(rows))), min(k + 1, len(rows)))
            if i in chosen:
                chosen.remove(i)
            chosen = chosen[:k]
        examples.append(chosen)
    return picks, examples


def test_the_collator_draws_positives_negatives_then_examples_as_the_reference_does(tokenizer):
    rows = _rows(scores=True)
    collator = _collator(tokenizer, teacher_scores=True)
    ks = []
    for seed in range(12):
        picks, examples = _reference_draws(rows, seed, group=3, most=3)
        collator.rng = random.Random(seed)
        queries, passages, teacher, n_examples = collator.build(rows, 3)
        for i, (row, (p, negs)) in enumerate(zip(rows, picks, strict=True)):
            assert [x.body for x in passages[i * 3 : (i + 1) * 3]] == [
                row.pos[p],
                *(row.neg[j] for j in negs),
            ]
            assert teacher[i] == [row.pos_scores[p], *(row.neg_scores[j] for j in negs)]
            shown = [collator.example_text(rows[j], rows[j].pos[picks[j][0]]) for j in examples[i]]
            assert queries[i].prefix == collator._prefix(shown)  # the drawn rows, in the drawn order
            assert n_examples[i] == len(examples[i])
        ks += n_examples
    assert set(ks) == {0, 1, 2, 3}  # every k of U{0..3} occurs, k = 0 among draws that follow it


# -- 2. example caps and the prefix budget, as configured -------------------------------------------------


def _train_config(tmp_path: Path, model_config, **overrides):
    from omegaconf import OmegaConf

    from evalharness.train.config import TrainConfig

    base = OmegaConf.structured(TrainConfig)
    base.model = OmegaConf.structured(model_config)
    defaults = {"output_dir": str(tmp_path / "trained"), "data": {"tasks": [], "files": []},
                "report_to": ["none"], "max_examples": 3, "group_size": 3}  # fmt: skip
    return OmegaConf.to_object(OmegaConf.merge(base, defaults, overrides))


def test_the_configured_example_caps_and_prefix_budget_reach_the_collator(
    tmp_path, smollm2_config, tokenizer
):
    from evalharness.train.run import make_collator

    rows = _rows(n=6)
    words = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731

    def prefix_length(examples: list[str]) -> int:
        return len(tokenizer(TEMPLATE.example_separator.join(examples) + TEMPLATE.prefix_end)["input_ids"])

    caps = {"example_query_max_tokens": 24, "example_passage_max_tokens": 4}
    cut = _collator(tokenizer, **caps)
    one = max(prefix_length([cut.example_text(r, r.pos[0])]) for r in rows)  # any one example fits ...
    assert min(prefix_length([cut.example_text(a, a.pos[0]), cut.example_text(b, b.pos[0])])
               for a in rows for b in rows if a is not b) > one  # ... two never do  # fmt: skip
    collator = make_collator(_train_config(tmp_path, smollm2_config, prefix_max_tokens=one, **caps), tokenizer,
                             TEMPLATE)  # fmt: skip
    row = rows[5]
    query, response = words(f"<instruct>{INSTRUCTION}\n<query>{row.query}"), words(row.pos[0])
    assert len(query) > 24 and len(response) > 4  # both are cut
    assert collator.example_text(row, row.pos[0]) == (
        tokenizer.decode(query[:24]) + "\n<response>" + tokenizer.decode(response[:4])
    )
    counts = set()
    for seed in range(30):
        collator.rng = random.Random(seed)
        queries, _, _, n_examples = collator.build(rows, 3)
        counts |= set(n_examples)
        assert all(len(tokenizer(q.prefix)["input_ids"]) <= one for q in queries if q.prefix)
    assert counts == {0, 1}  # k ~ U{0..3} drawn, at most one example kept by the budget


# -- the loss the Trainer computes, on a toy decoder -------------------------------------------------------


class ToyDecoder(torch.nn.Module):
    """The hidden state at position t is the sum over the real tokens up to t of a token embedding
    plus a position embedding (positions as given, else 0..width-1 as transformers' default): the last
    position's state names the whole text and where its positions started."""

    def __init__(self, vocab: int, dim: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tokens, self.positions = torch.nn.Embedding(vocab, dim), torch.nn.Embedding(1024, dim)

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=False):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        h = (self.tokens(input_ids) + self.positions(position_ids)) * attention_mask[..., None]
        return SimpleNamespace(last_hidden_state=h.cumsum(dim=1))

    def by_hand(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """Each text's vector from its own unpadded ids, positions 0..n-1."""
        tok, pos = (
            self.tokens.weight.detach().double().numpy(),
            self.positions.weight.detach().double().numpy(),
        )
        out = []
        for row, m in zip(ids, mask, strict=True):
            real = row[m.bool()].tolist()
            out.append(sum(tok[t] + pos[k] for k, t in enumerate(real)))
        return np.array(out)


def _hand_info_nce(q, p, tau, in_batch, teacher=None):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    group = len(p) // len(q)
    loss = 0.0
    for i in range(len(q)):
        cand = list(range(len(p))) if in_batch else list(range(i * group, (i + 1) * group))
        logits = np.array([q[i] @ p[j] for j in cand]) / tau
        loss += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[cand.index(i * group)]
        if teacher is not None:
            own = np.array([q[i] @ p[j] for j in range(i * group, (i + 1) * group)]) / tau
            log_student = own - own.max() - np.log(np.exp(own - own.max()).sum())
            target = np.exp(teacher[i] - teacher[i].max())
            loss -= (target / target.sum() * log_student).sum()
    return loss / len(q)


def _trainer(temperature: float, cross_device: bool = True):
    """The Trainer's loss method on its own state (no model load, no arguments)."""
    from evalharness.train.trainer import ContrastiveTrainer

    trainer = ContrastiveTrainer.__new__(ContrastiveTrainer)
    trainer.temperature, trainer.cross_device, trainer.tokens, trainer._since = (
        temperature,
        cross_device,
        0,
        None,
    )
    return trainer


def _vectors(model, batch):
    return (model.by_hand(batch["query_input_ids"], batch["query_attention_mask"]),
            model.by_hand(batch["passage_input_ids"], batch["passage_attention_mask"]))  # fmt: skip


def test_training_vectors_are_the_last_tokens_state_with_positions_from_the_first_real_token(tokenizer):
    from evalharness.train.trainer import last_token

    model = ToyDecoder(len(tokenizer))
    batch = _collator(tokenizer)([_rows(n=4)])
    assert len(set(batch["query_attention_mask"].sum(1).tolist())) > 1  # left padding is part of the check
    q_hand, p_hand = _vectors(model, batch)
    with torch.no_grad():
        q = last_token(model, batch["query_input_ids"], batch["query_attention_mask"]).double().numpy()
        p = last_token(model, batch["passage_input_ids"], batch["passage_attention_mask"]).double().numpy()
    np.testing.assert_allclose(q, q_hand, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(p, p_hand, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["retrieval", "sts", "classification", "clustering"])
def test_in_batch_negatives_for_retrieval_batches_only_own_group_for_the_others(tokenizer, kind):
    model = ToyDecoder(len(tokenizer))
    batch = _collator(tokenizer, group_size=2)([_rows(kind, n=4)])
    assert batch["in_batch_negatives"] is (kind == "retrieval")
    q, p = _vectors(model, batch)
    with torch.no_grad():
        got = _trainer(0.05).compute_loss(model, batch).item()
    assert got == pytest.approx(_hand_info_nce(q, p, 0.05, in_batch=kind == "retrieval"), rel=1e-5)
    assert got != pytest.approx(_hand_info_nce(q, p, 0.05, in_batch=kind != "retrieval"), rel=1e-3)


@pytest.mark.parametrize("temperature", [0.02, 0.1])
def test_the_loss_divides_cosines_by_the_configured_temperature(tokenizer, temperature):
    model = ToyDecoder(len(tokenizer))
    batch = _collator(tokenizer)([_rows(n=4)])
    q, p = _vectors(model, batch)
    with torch.no_grad():
        got = _trainer(temperature).compute_loss(model, batch).item()
    assert got == pytest.approx(_hand_info_nce(q, p, temperature, in_batch=True), rel=1e-5)
    other = 0.1 if temperature == 0.02 else 0.02
    assert got != pytest.approx(_hand_info_nce(q, p, other, in_batch=True), rel=1e-3)


def test_the_trainer_adds_distillation_on_the_teacher_scores_of_the_passages_it_scores(tokenizer):
    """FlagEmbedding's kl_div: each group's teacher scores (the collator's picks, positive first)
    against the student's own-group scores / temperature; the teacher's softmax takes no temperature."""
    model = ToyDecoder(len(tokenizer))
    rows = [
        TrainRow(r.query, r.pos, r.neg, r.prompt, r.type, source=r.source,
                 pos_scores=tuple(3.0 - j for j in range(len(r.pos))),
                 neg_scores=tuple(0.4 * j - 1 for j in range(len(r.neg))))
        for r in _rows(n=4)
    ]  # fmt: skip
    collator = _collator(tokenizer, teacher_scores=True)
    batch = collator([rows])
    score_of = [  # every passage a row can show -> its teacher score
        {tuple(collator._ids([collator.passage_item(r, t)])[0]): s
         for t, s in zip((*r.pos, *r.neg), (*r.pos_scores, *r.neg_scores), strict=True)}
        for r in rows
    ]  # fmt: skip
    ids, mask = batch["passage_input_ids"], batch["passage_attention_mask"]
    teacher = np.array(
        [
            [score_of[i][tuple(ids[i * 3 + g][mask[i * 3 + g].bool()].tolist())] for g in range(3)]
            for i in range(4)
        ]
    )
    assert (teacher[:, 0] >= 1).all() and (teacher[:, 1:] < 1).all()  # each group's positive first
    np.testing.assert_allclose(batch["teacher_scores"].numpy(), teacher, rtol=1e-6)  # float32
    q, p = _vectors(model, batch)
    with torch.no_grad():
        got = _trainer(0.05).compute_loss(model, batch).item()
    assert got == pytest.approx(_hand_info_nce(q, p, 0.05, True, teacher), rel=1e-5)
    assert got != pytest.approx(_hand_info_nce(q, p, 0.05, True, teacher / 0.05), rel=1e-3)


def test_retrieval_batches_are_scored_against_every_devices_passages(tokenizer, monkeypatch):
    """A stand-in for a second device: the gather appends its rows. Retrieval batches are scored
    against the gathered batch (with the Trainer's cross_device on), other types never gather."""
    from evalharness.train import loss as loss_module

    extra = {}

    def gather(t):  # this device's rows first (rank 0), then the other device's
        other = torch.randn(t.shape, generator=torch.Generator().manual_seed(len(extra) + 1))
        other = extra.setdefault(tuple(t.shape), torch.nn.functional.normalize(other, dim=-1))
        return torch.cat([t, other.to(t.dtype)], dim=0)

    monkeypatch.setattr(loss_module, "_gather", gather)
    model = ToyDecoder(len(tokenizer))
    for kind, cross_device, gathered in (("retrieval", True, True), ("retrieval", False, False),
                                         ("classification", True, False)):  # fmt: skip
        extra.clear()
        batch = _collator(tokenizer, group_size=2)([_rows(kind, n=4)])
        q, p = _vectors(model, batch)
        with torch.no_grad():
            got = _trainer(0.05, cross_device).compute_loss(model, batch).item()
        if gathered:
            q_all = np.concatenate([q, extra[(4, 16)].double().numpy()])
            p_all = np.concatenate([p, extra[(8, 16)].double().numpy()])
            assert got == pytest.approx(_hand_info_nce(q_all, p_all, 0.05, in_batch=True), rel=1e-5)
        else:
            assert not extra
            assert got == pytest.approx(_hand_info_nce(q, p, 0.05, in_batch=kind == "retrieval"), rel=1e-5)


@pytest.mark.parametrize(("temperature", "cross_device"), [(0.037, False), (0.11, True)])
def test_train_hands_the_configured_temperature_and_cross_device_switch_to_the_trainer(
    tmp_path, smollm2_config, tokenizer, monkeypatch, temperature, cross_device
):
    import json

    from evalharness.train import run as run_module
    from evalharness.train import trainer as trainer_module

    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"query": f"q{i}?", "pos": [f"p{i}"], "neg": [f"n{i}"],
                                          "prompt": INSTRUCTION, "type": "normal"}) for i in range(4)))  # fmt: skip
    cfg = _train_config(tmp_path, smollm2_config, temperature=temperature, cross_device_negatives=cross_device,
                        group_size=2, batch_size=2, data={"files": [str(data)]})  # fmt: skip
    seen = {}

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(trainer_module, "load_model", lambda cfg: (ToyDecoder(len(tokenizer)), tokenizer))
    monkeypatch.setattr(trainer_module, "ContrastiveTrainer", record)
    with pytest.raises(Stop):
        run_module.train(cfg)
    assert seen["temperature"] == temperature and seen["cross_device"] is cross_device


# -- 5. resume: a batch and an epoch's layout depend on the seed alone ----------------------------------


def test_a_batch_is_drawn_the_same_whatever_the_collator_built_before(tokenizer):
    rows = _rows(n=8)
    fresh = _collator(tokenizer)([DeviceBatch(rows[:4], 3)])
    used = _collator(tokenizer)
    for step, part in enumerate((rows[4:], rows[2:6], rows[:4])):  # a run that got here the long way
        used([DeviceBatch(part, step)])
    again = used([DeviceBatch(rows[:4], 3)])
    assert fresh.keys() == again.keys()
    for key, value in fresh.items():
        assert torch.equal(value, again[key]) if torch.is_tensor(value) else value == again[key], key


def _datasets() -> list[Dataset]:
    def rows(name: str, kind: str, n: int) -> list[TrainRow]:
        return [
            TrainRow(f"{name} q{i}", (f"{name} p{i}",), (), "i", kind, source=f"{name}:{i}") for i in range(n)
        ]

    return [Dataset("alpha", rows("alpha", "retrieval", 10)), Dataset("beta", rows("beta", "sts", 9)),
            Dataset("gamma", rows("gamma", "retrieval", 14))]  # fmt: skip


def test_every_epochs_layout_is_the_same_in_a_restarted_process():
    first = StepBatches(_datasets(), 2, seed=7, world_size=2)
    n = len(first)
    want = [first[i] for i in range(3 * n)]
    restarted = StepBatches(_datasets(), 2, seed=7, world_size=2)
    for i in reversed(range(3 * n)):  # asked in another order, as a resumed run asks
        assert restarted[i] == want[i], i
    assert [b.rows for b in want[:n]] != [b.rows for b in want[n : 2 * n]]  # each epoch its own layout


# -- 8. mining never returns a positive -----------------------------------------------------------------


class LookupBackend:
    def __init__(self, table):
        self.table = table

    def embed(self, items, batch_size):
        return np.array([self.table[it.text] for it in items], dtype=np.float32)


@pytest.mark.parametrize(("rank_range", "negatives"), [((0, 4), 2), ((0, 3), 5), ((8, 8), 6)])
def test_mining_never_returns_any_of_a_rows_positives(rank_range, negatives):
    """Two positives that rank first for their query: neither is mined, from the rank range or from the
    corpus that fills a short range."""
    from evalharness.train.mine import mine_hard_negatives

    rng = np.random.default_rng(5)
    rows = [
        TrainRow(f"q{i}", (f"p{i}a", f"p{i}b"), (), "inst", "retrieval", source=f"m:{i}") for i in range(4)
    ]
    table = {}
    for i in range(4):
        base = rng.normal(size=8)
        table[f"q{i}"] = base
        table[f"p{i}a"], table[f"p{i}b"] = base + 0.01 * rng.normal(size=8), base + 0.02 * rng.normal(size=8)
    dataset = Dataset("mine", rows)
    mined = mine_hard_negatives(dataset, LookupBackend(table), get_template("plain"), negatives=negatives,
                                rank_range=rank_range)  # fmt: skip
    for row in mined.rows:
        assert len(row.neg) == negatives and len(set(row.neg)) == negatives
        assert not set(row.neg) & set(row.pos), row


# -- 9. one dataset per step, on every device --------------------------------------------------------------


def test_each_step_gives_every_device_a_batch_of_one_dataset_and_each_row_once_per_epoch():
    """The Trainer's order (`StepSampler`) sharded as accelerate shards it (batch i to process i % W)."""
    from evalharness.train.trainer import StepSampler

    batches = StepBatches(_datasets(), 2, seed=3, world_size=2)
    # alpha 10 rows: 2 steps of 2 x 2; beta (sts, half batch) 9 rows: 4 steps of 2 x 1; gamma 14: 3 steps
    assert batches.steps_per_epoch == 9
    sampler = StepSampler(len(batches))
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        order = list(sampler)
        devices = [order[d::2] for d in range(2)]
        used = []
        for step, (a, b) in enumerate(zip(*devices, strict=True)):
            first, second = batches[a], batches[b]
            assert first.step == second.step == epoch * 9 + step
            names = {r.source.split(":")[0] for r in (*first.rows, *second.rows)}
            assert len(names) == 1, (epoch, step, names)
            used += [r.source for r in (*first.rows, *second.rows)]
        assert len(used) == len(set(used)) == 8 + 8 + 12
