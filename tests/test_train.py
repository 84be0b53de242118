"""Few-shot contrastive training (issue 14, first slice): the collator feeds the model exactly what the
evaluation encodes, the loss is InfoNCE as written by hand, examples come from other rows in the
paper's proportions, bad inputs stop before the model loads, and a trained folder is evaluated by
`evalharness run`."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mteb.types import PromptType

from evalharness.encoders import ICLEncoder
from evalharness.examples import Example, FixedExamples
from evalharness.prompts import get_template
from evalharness.train.collator import ICLCollator
from evalharness.train.config import TrainConfig
from evalharness.train.data import TrainDataError, TrainRow
from evalharness.train.loss import info_nce
from evalharness.train.run import train, validate
from tests import local_tasks
from tests.configs import run_config

INSTRUCTION = "Given a question, retrieve passages that answer it"
ROWS = [
    TrainRow(f"question number {i} about topic {i % 3}?", (f"answer {i}: a passage about topic {i % 3}.",),
             (f"unrelated text {i}", f"another negative {i}"), INSTRUCTION, "retrieval", source=f"rows:{i}")
    for i in range(12)
]  # fmt: skip


@pytest.fixture(autouse=True)
def _register_local_tasks():
    local_tasks.register()


def _collator(backend, **kw) -> ICLCollator:
    opts = {"query_max_length": backend.query_max_length, "passage_max_length": backend.passage_max_length,
            "max_examples": 3, "group_size": 3, "seed": 0, **kw}  # fmt: skip
    return ICLCollator(backend.tokenizer, get_template("bge-icl"), **opts)


# -- the collator feeds what the evaluation encodes -------------------------------------------------


def test_collator_token_ids_equal_what_the_evaluation_encodes(smollm2_config, smollm2_backend):
    collator = _collator(smollm2_backend)
    row = ROWS[0]
    shots = (Example(ROWS[1].query, ROWS[1].pos[0]), Example(ROWS[2].query, ROWS[2].pos[0]))
    rendered = [collator.example_text(ROWS[j], ROWS[j].pos[0]) for j in (1, 2)]
    collator._examples = lambda batch, i, responses, most: rendered if i == 0 else []  # draws: below

    batch = collator([ROWS[:3]])
    meta = local_tasks.LocalRetrieval.metadata
    encoder = ICLEncoder(
        smollm2_config,
        examples=FixedExamples({meta.name: shots}, "file"),
        instructions={meta.name: INSTRUCTION},
        backend=smollm2_backend,
    )
    (query_item,) = encoder.prompted_texts([row.query], meta, PromptType.query)
    passage_items = encoder.prompted_texts([row.pos[0]], meta, PromptType.document)
    (expected_query,) = smollm2_backend.tokenize([query_item])
    (expected_pos,) = smollm2_backend.tokenize(passage_items)

    def row_ids(ids, mask, r):
        return ids[r][mask[r].bool()].tolist()

    assert row_ids(batch["query_input_ids"], batch["query_attention_mask"], 0) == expected_query
    assert row_ids(batch["passage_input_ids"], batch["passage_attention_mask"], 0) == expected_pos
    assert batch["query_attention_mask"][0, -1] == 1  # left padding: the last position is EOS
    assert expected_query[-1] == smollm2_backend.layout.eos_id
    assert batch["n_examples"].tolist() == [2, 0, 0]
    assert batch["passage_input_ids"].shape[0] == 3 * 3  # group_size passages per query


def test_symmetric_rows_prompt_their_passages_too(smollm2_backend):
    collator = _collator(smollm2_backend, max_examples=0)
    sts = TrainRow(
        "A man plays guitar.", ("Someone is playing a guitar.",), (), "Retrieve similar text", "sts"
    )
    assert collator.passage_item(sts, sts.pos[0]).text == (
        "<instruct>Retrieve similar text\n<query>Someone is playing a guitar.\n<response>"
    )
    assert collator.passage_item(ROWS[0], "raw").text == "raw"


# -- InfoNCE by hand --------------------------------------------------------------------------------


def _hand_loss(q, p, tau, in_batch):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    group = len(p) // len(q)
    losses = []
    for i in range(len(q)):
        cand = range(len(p)) if in_batch else range(i * group, (i + 1) * group)
        logits = np.array([q[i] @ p[j] / tau for j in cand])
        target = i * group if in_batch else 0
        pos = list(cand).index(target) if in_batch else 0
        losses.append(-logits[pos] + math.log(np.exp(logits - logits.max()).sum()) + logits.max())
    return float(np.mean(losses))


@pytest.mark.parametrize("in_batch", [True, False])
def test_info_nce_equals_a_hand_computation(in_batch):
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(3, 5)), rng.normal(size=(3 * 4, 5))  # 3 queries, 1 positive + 3 negatives each
    got = info_nce(torch.tensor(q), torch.tensor(p), temperature=0.05, in_batch=in_batch).item()
    assert got == pytest.approx(_hand_loss(q, p, 0.05, in_batch), rel=1e-6)
    assert got != pytest.approx(_hand_loss(q, p, 0.05, not in_batch), rel=1e-3)  # the variants differ


def test_distillation_adds_the_cross_entropy_against_the_teachers_group_distribution():
    """FlagEmbedding's kl_div: -mean(sum(softmax(teacher) * log_softmax(own group's scores / tau)))
    on top of the contrastive term, for both the in-batch and the group-only variant."""
    rng = np.random.default_rng(1)
    q, p, t = rng.normal(size=(3, 5)), rng.normal(size=(3 * 4, 5)), rng.normal(size=(3, 4)) * 3
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    pn = (p / np.linalg.norm(p, axis=1, keepdims=True)).reshape(3, 4, 5)
    own = np.einsum("bd,bgd->bg", qn, pn) / 0.05
    log_student = own - own.max(1, keepdims=True)
    log_student -= np.log(np.exp(log_student).sum(1, keepdims=True))
    teacher = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    kd = -(teacher * log_student).sum(1).mean()
    for in_batch in (True, False):
        got = info_nce(torch.tensor(q), torch.tensor(p), temperature=0.05, in_batch=in_batch,
                       teacher_scores=torch.tensor(t)).item()  # fmt: skip
        assert got == pytest.approx(_hand_loss(q, p, 0.05, in_batch) + kd, rel=1e-6)


def test_teacher_scores_travel_with_the_passages_the_collator_picks(smollm2_backend):
    rows = [
        TrainRow(r.query, r.pos, (*r.neg, f"third negative {i}"), r.prompt, r.type, source=r.source,
                 pos_scores=(10.0 + i,), neg_scores=(i + 0.1, i + 0.2, i + 0.3))
        for i, r in enumerate(ROWS[:4])
    ]  # fmt: skip
    collator = _collator(smollm2_backend, group_size=3, teacher_scores=True)
    batch = collator([rows])
    for i, row in enumerate(rows):
        scores = batch["teacher_scores"][i].tolist()
        assert scores[0] == 10.0 + i and len(set(scores[1:])) == 2  # positive first, 2 distinct negatives
        for g, score in enumerate(scores[1:], start=1):
            ids, mask = batch["passage_input_ids"][i * 3 + g], batch["passage_attention_mask"][i * 3 + g]
            scored = row.neg[round((score - i) * 10) - 1]  # the passage this score belongs to
            assert ids[mask.bool()].tolist() == collator._ids([collator.passage_item(row, scored)])[0]


# -- examples: how many, from where ------------------------------------------------------------------


def test_about_five_sixths_of_queries_carry_examples_never_their_own_row(smollm2_backend):
    collator = _collator(smollm2_backend, max_examples=5, group_size=1, seed=1)
    drawn = []
    for _ in range(60):
        for i in range(len(ROWS)):
            examples = collator._examples(ROWS, i, [r.pos[0] for r in ROWS], 5)
            assert all(ROWS[i].query not in e for e in examples)  # never the row itself
            assert all(any(r.query in e for r in ROWS) for e in examples)  # from the batch
            drawn.append(len(examples))
    counts = np.bincount(drawn, minlength=6)
    assert set(drawn) == set(range(6))  # k ~ U{0..5}
    assert (counts > 0).mean() == 1 and abs((np.array(drawn) > 0).mean() - 5 / 6) < 0.04


def test_a_zero_shot_warm_phase_holds_examples_back_for_its_steps_only(smollm2_backend):
    from evalharness.train.data import DeviceBatch

    collator = _collator(smollm2_backend, max_examples=3, group_size=1, zero_shot_steps=2)
    warm = [collator([DeviceBatch(ROWS, step)])["n_examples"].tolist() for step in (0, 1)]
    after = [collator([DeviceBatch(ROWS, step)])["n_examples"].tolist() for step in (2, 3)]
    assert warm == [[0] * len(ROWS)] * 2
    assert all(sum(n) > 0 for n in after)


def test_a_budget_without_room_warns_and_the_counts_say_zero(smollm2_backend, caplog):
    with caplog.at_level(logging.WARNING, logger="evalharness"):
        collator = _collator(smollm2_backend, max_examples=5, prefix_max_tokens=0)
    assert any(
        "leaves no room for examples" in r.getMessage() and "#1158" in r.getMessage() for r in caplog.records
    )
    batch = collator([ROWS[:6]])
    assert batch["n_examples"].tolist() == [0] * 6
    assert collator.examples_per_query == {0: 6}


# -- bad input, before any model loads ---------------------------------------------------------------


def _jsonl(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _row(**kw) -> str:
    return json.dumps(
        {"query": "q?", "pos": ["p"], "neg": ["n"], "prompt": INSTRUCTION, "type": "normal", **kw}
    )


BAD = [
    ("no-pos", lambda t: {"data": {"files": [_jsonl(t, "a.jsonl", [_row(), _row(pos=[])])]}},
     ["a.jsonl:2: 'pos' has no non-empty text; every row needs a positive passage"]),
    ("empty-query", lambda t: {"data": {"files": [_jsonl(t, "b.jsonl", [_row(query="  ")])]}},
     ["b.jsonl:1: 'query' is missing or empty"]),
    ("unknown-type", lambda t: {"data": {"files": [_jsonl(t, "c.jsonl", [_row(type="ranking")])]}},
     ["c.jsonl:1: unknown type 'ranking'; use one of"]),
    ("not-jsonl", lambda t: {"data": {"files": [_jsonl(t, "d.jsonl", [_row(), "[1, 2"])]}},
     ["d.jsonl:2: not a JSON object", "training files are JSONL"]),
    ("overlaps-evaluated-split", lambda t: {"data": {"tasks": ["OfflineChatterbotRetrieval"], "split": "test"}},
     ["is an evaluated split of OfflineChatterbotRetrieval", "train on its train split"]),
    ("rows-repeat-evaluated-texts", lambda t: {"data": {"files": [_jsonl(t, "e.jsonl", [
        _row(query=q) for q, _ in local_tasks.TEST_QUERIES.values()])], "check_against": ["LocalRetrieval"]}},
     ["4 training row(s) of e (e.g. ", "e.jsonl:1) repeat texts of LocalRetrieval's evaluated split 'test'"]),
    ("group-size-unfillable", lambda t: {"group_size": 4, "data": {"files": [_jsonl(t, "f.jsonl", [_row(neg=[])])]}},
     ["cannot fill group_size=4 (1 positive + 3 negatives)", "set group_size=1"]),
    ("scores-misaligned", lambda t: {"data": {"files": [_jsonl(t, "g.jsonl", [_row(neg_scores=[1, 2])])]}},
     ["g.jsonl:1: 'neg_scores' must be a list of numbers, one per 'neg' passage (1)"]),
    ("unknown-switch-values", lambda t: {"positive": "last", "class_group": "each", "example_cut": "middle",
                                         "query_truncation": "left", "prompt_passages": ["sts", "summary"],
                                         "symmetric_batch_size": 0, "example_query_max_tokens": 0,
                                         "data": {"files": [_jsonl(t, "s.jsonl", [_row()])]}},
     ["positive='last'; use one of random, first", "class_group='each'; use one of labels, fill",
      "example_cut='middle'; use one of wrapped, raw", "query_truncation='left'; use one of query, joint",
      "prompt_passages has unknown type(s) ['summary']", "symmetric_batch_size=0; use 1 or more",
      "example_query_max_tokens=0; use 1 or more"]),
    ("distill-without-scores", lambda t: {"knowledge_distillation": True,
                                          "data": {"files": [_jsonl(t, "h.jsonl", [_row(pos_scores=[3])])]}},
     ["h: 1 row(s) without teacher scores (e.g. ", "h.jsonl:1); knowledge_distillation=true needs"]),
    ("mine-with-mteb-backend", lambda t: {"mine": {"model": "mteb", "negatives": 2},
                                          "data": {"files": [_jsonl(t, "m.jsonl", [_row()])]}},
     ["mine.model: backend=mteb runs mteb's own wrapper, for evaluation only"]),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_training_input_is_one_clear_error_before_the_model_loads(
    tmp_path, smollm2_config, overrides, words
):
    cfg = _train_cfg(tmp_path, smollm2_config, **overrides(tmp_path))
    with pytest.raises(TrainDataError) as err:
        validate(cfg)
    for w in words:
        assert w in str(err.value)


# -- end to end ---------------------------------------------------------------------------------------


def _train_cfg(tmp_path, model_config, **overrides) -> TrainConfig:
    from omegaconf import OmegaConf

    base = OmegaConf.structured(TrainConfig)
    base.model = OmegaConf.structured(model_config)
    defaults = {
        "output_dir": str(tmp_path / "trained"),
        "data": {"tasks": [], "files": []},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "layers": [-1]},
        "batch_size": 4, "group_size": 2, "max_examples": 2, "example_query_max_tokens": 32, "prefix_max_tokens": 128,
        "max_steps": 2, "learning_rate": 1e-3, "save_steps": 100, "logging_steps": 1, "report_to": ["none"],
    }  # fmt: skip
    return OmegaConf.to_object(OmegaConf.merge(base, defaults, overrides))


def test_a_tiny_training_run_writes_a_folder_that_evalharness_run_evaluates(
    tmp_path, smollm2_config, smollm2_backend
):
    from evalharness.encoders.backends import DecoderBackend
    from evalharness.prompts import PromptedText
    from evalharness.runner import run

    rows = [json.loads(_row(query=r.query, pos=list(r.pos), neg=list(r.neg))) for r in ROWS[:8]]
    data = _jsonl(tmp_path, "train.jsonl", [json.dumps(r) for r in rows])
    cfg = _train_cfg(tmp_path, smollm2_config, data={"files": [data]})
    out = train(cfg)

    manifest = json.loads((out / "evalharness_train.json").read_text())
    assert manifest["stats"]["steps"] == 2 and math.isfinite(manifest["stats"]["train_loss"])
    assert manifest["data"]["train"] and manifest["base_model"]["name"] == smollm2_config.name
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "model.safetensors").is_file()
    assert sum(int(k) * n for k, n in manifest["stats"]["examples_per_query"].items()) > 0
    # the tokens/s the logs show count exactly the real tokens of the batches the two steps trained on
    from evalharness.train.run import make_collator

    plan = validate(cfg)
    again = make_collator(cfg, smollm2_backend.tokenizer, plan.template)
    masks = [again([plan.batches[i]]) for i in (0, 1)]
    want = sum(int(b["query_attention_mask"].sum() + b["passage_attention_mask"].sum()) for b in masks)
    assert manifest["stats"]["tokens"] == want and manifest["stats"]["tokens_per_second"] > 0
    import pandas as pd

    curve = pd.read_csv(out / "train_log.csv")  # logging_steps=1: one row per step
    assert curve["step"].tolist() == [1, 2] and curve["loss"].notna().all()
    assert {"learning_rate", "tokens_per_second", "examples_per_query", "queries_with_examples"} <= set(
        curve.columns
    )

    trained = DecoderBackend(str(out), dtype="float32", device="cpu")
    probe = [PromptedText("", "a passage about topic 1.", "", False)]
    before, after = smollm2_backend.embed(probe, 1)[0], trained.embed(probe, 1)[0]
    assert not np.allclose(before, after, atol=1e-4)  # the merged weights changed the vectors

    eval_cfg = run_config(
        trained_model_config(smollm2_config, out, manifest["revision"]),
        {"benchmark": {"name": "custom", "tasks": ["LocalRetrieval"]}, "results_dir": str(tmp_path / "res"),
         "shots": [0], "embedding_cache": None},
        {},
    )  # fmt: skip
    (record,) = run(eval_cfg)
    assert record.main_score is not None and 0 <= record.main_score <= 1
    (result_dir,) = (tmp_path / "res").glob("results/*/*/experiments/*")
    assert (
        result_dir.parts[-4] == "HuggingFaceTB__SmolLM2-135M-Instruct-icl"
        and result_dir.parts[-3] == manifest["revision"]
    )


def trained_model_config(base, out: Path, revision: str):
    import dataclasses

    return dataclasses.replace(base, name=base.name + "-icl", source=str(out), revision=revision)


# -- cross-device negatives: two real processes equal one ----------------------------------------


def test_two_gloo_processes_with_cross_device_negatives_match_one_process(tmp_path):
    import os
    import subprocess
    import sys

    from tests.workers import ddp_loss

    out = tmp_path / "ddp.json"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "tests.workers.ddp_loss", str(out)],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())

    queries, passages = ddp_loss.data()
    model = ddp_loss.encoder()
    loss = info_nce(model(queries), model(passages), temperature=0.05, in_batch=True)
    loss.backward()
    assert got["world"] == 2
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-6)
    np.testing.assert_allclose(np.array(got["grad"]), model.weight.grad.numpy(), rtol=1e-5, atol=1e-7)
    # without the gather each process would only see its own passages: a different loss
    half = info_nce(model(queries[:2]), model(passages[:6]), temperature=0.05, in_batch=True).item()
    assert half != pytest.approx(loss.item(), rel=1e-3)


def _tiny_decoder(folder: Path, tokenizer_source: str) -> str:
    """A 2-layer random Llama with SmolLM2's tokenizer: the real training path at a tiny cost."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_two_processes_train_on_one_dataset_per_step(tmp_path, smollm2_config):
    """Under torchrun, every optimizer step gives both devices a batch of the same dataset (so
    cross-device negatives and examples never mix datasets), and an epoch uses each full step once."""
    import dataclasses
    import os
    import subprocess
    import sys

    from evalharness.encoders.loading import resolve_source

    model = dataclasses.asdict(smollm2_config) | {
        "source": _tiny_decoder(tmp_path / "tiny", resolve_source(smollm2_config.source)),
        "revision": None,
    }
    files = [
        _jsonl(tmp_path, f"{name}.jsonl", [_row(query=f"{name} question {i}?", pos=[f"{name} answer {i}"])
                                           for i in range(rows)])
        for name, rows in (("alpha", 8), ("beta", 12))
    ]  # fmt: skip
    cfg = {"model": model, "output_dir": str(tmp_path / "out"), "data": {"files": files}, "batch_size": 2,
           "group_size": 2, "max_examples": 1, "epochs": 2, "save_steps": 100, "report_to": ["none"],
           "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj"], "layers": [-1]}}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "tests.workers.ddp_train", json.dumps(cfg), str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    a, b = ranks[0]["batches"], ranks[1]["batches"]
    # alpha: 8 rows = 2 steps of 2 x 2; beta: 12 rows = 3 steps; 2 epochs
    assert len(a) == len(b) == 10
    assert ranks[0]["steps"] == ranks[1]["steps"] == list(range(10))
    dataset = lambda batch: {Path(s.split(":")[0]).stem for s in batch}  # noqa: E731
    for step_a, step_b in zip(a, b, strict=True):
        assert dataset(step_a) == dataset(step_b) and len(dataset(step_a)) == 1  # one dataset per step
        assert not set(step_a) & set(step_b)  # the devices hold different rows
    for epoch in (slice(0, 5), slice(5, 10)):
        used = [s for batch in a[epoch] + b[epoch] for s in batch]
        assert len(used) == len(set(used)) == 20  # every row once per epoch
    assert a[:5] != a[5:]  # each epoch draws a new order
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()


# -- resume ----------------------------------------------------------------------------------------


def test_a_killed_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, smollm2_config):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    rows = [json.loads(_row(query=r.query, pos=list(r.pos), neg=list(r.neg))) for r in ROWS]
    data = _jsonl(tmp_path, "train.jsonl", [json.dumps(r) for r in rows])
    common = {"data": {"files": [data]}, "max_steps": 4, "save_steps": 2, "epochs": 2}

    straight = train(_train_cfg(tmp_path / "a", smollm2_config, **common))

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:  # after checkpoint-2 was written, mid-way to the next
                raise KeyboardInterrupt

    cfg = _train_cfg(tmp_path / "b", smollm2_config, **common)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Kill()])
    assert (Path(cfg.output_dir) / "checkpoints" / "checkpoint-2").is_dir()
    assert not (Path(cfg.output_dir) / "model.safetensors").exists()
    resumed = train(cfg)

    a, b = (
        load_file(straight / "adapter" / "adapter_model.safetensors"),
        load_file(resumed / "adapter" / "adapter_model.safetensors"),
    )
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    base = load_file(
        train(_train_cfg(tmp_path / "c", smollm2_config, **{**common, "max_steps": 2}))
        / "adapter"
        / "adapter_model.safetensors"
    )
    assert any(not torch.allclose(a[k], base[k], atol=1e-6) for k in a)  # steps 3-4 did change the weights


# -- hard-negative mining ----------------------------------------------------------------------------


class LookupBackend:
    """Vectors we control: each text's vector is looked up, so the expected ranking is exact."""

    def __init__(self, table):
        self.table = table

    def embed(self, items, batch_size):
        return np.array([self.table[it.text] for it in items], dtype=np.float32)


def _mining_case():
    from evalharness.train.data import Dataset

    rng = np.random.default_rng(3)
    rows = [TrainRow(f"q{i}", (f"p{i}",), (), "inst", "retrieval", source=f"m:{i}") for i in range(3)]
    rows.append(TrainRow("q3", ("p3",), tuple(f"n{j}" for j in range(6)), "inst", "retrieval", source="m:3"))
    texts = [*(f"q{i}" for i in range(4)), *(f"p{i}" for i in range(4)), *(f"n{j}" for j in range(6))]
    return Dataset("mine", rows), {t: rng.normal(size=8) for t in texts}


def test_mined_negatives_come_from_the_rank_range_without_positives():
    from evalharness.train.mine import mine_hard_negatives

    dataset, table = _mining_case()
    mined = mine_hard_negatives(
        dataset, LookupBackend(table), get_template("plain"), negatives=2, rank_range=(1, 5)
    )
    corpus = [*(f"p{i}" for i in range(4)), *(f"n{j}" for j in range(6))]
    unit = {t: v / np.linalg.norm(v) for t, v in table.items()}
    for row in mined.rows[:3]:
        ranked = sorted(corpus, key=lambda t: -float(unit[row.query] @ unit[t]))  # independent exact search
        allowed = [t for t in ranked[1:5] if t not in row.pos]
        assert len(row.neg) == 2 and set(row.neg) <= set(allowed) and row.pos[0] not in row.neg
    assert mined.rows[3] == dataset.rows[3]  # rows with negatives keep theirs
    again = mine_hard_negatives(
        dataset, LookupBackend(table), get_template("plain"), negatives=2, rank_range=(1, 5)
    )
    assert again.rows == mined.rows  # seeded


def test_too_few_candidates_in_range_are_filled_from_the_corpus_with_a_warning(caplog):
    from evalharness.train.mine import mine_hard_negatives

    dataset, table = _mining_case()
    with caplog.at_level(logging.WARNING, logger="evalharness"):
        mined = mine_hard_negatives(
            dataset, LookupBackend(table), get_template("plain"), negatives=4, rank_range=(0, 2)
        )
    assert all(len(r.neg) == 4 and r.pos[0] not in r.neg and len(set(r.neg)) == 4 for r in mined.rows[:3])
    assert any("sampled from the whole corpus" in r.getMessage() for r in caplog.records)


def test_mining_fills_groups_that_would_otherwise_be_refused(tmp_path, smollm2_config):
    data = _jsonl(tmp_path, "nn.jsonl", [_row(query=f"q{i}?", pos=[f"p{i}"], neg=[]) for i in range(4)])
    with pytest.raises(TrainDataError, match="cannot fill group_size=3"):
        validate(_train_cfg(tmp_path, smollm2_config, group_size=3, data={"files": [data]}))
    plan = validate(_train_cfg(tmp_path, smollm2_config, group_size=3, data={"files": [data]},
                               mine={"negatives": 2, "model": "minilm"}))  # fmt: skip
    assert [len(r.neg) for r in plan.datasets[0].rows] == [0, 0, 0, 0]  # mined in train(), after checks


def test_training_embeddings_equal_the_evaluation_backends_vectors(tmp_path, smollm2_config, smollm2_backend):
    """Same ids, same pooling, same positions: before any step (LoRA's B is zero) the vectors the loss
    sees are the vectors `evalharness run` computes, for padded queries and passages alike."""
    from evalharness.train.trainer import last_token, load_model

    model, tokenizer = load_model(_train_cfg(tmp_path, smollm2_config))
    collator = _collator(smollm2_backend, group_size=2, seed=6)  # queries of 4 lengths
    batch = collator([ROWS[:4]])
    with torch.no_grad():
        q = last_token(model, batch["query_input_ids"], batch["query_attention_mask"]).numpy()
        p = last_token(model, batch["passage_input_ids"], batch["passage_attention_mask"]).numpy()
    ids = [
        row[m.bool()].tolist()
        for row, m in zip(batch["query_input_ids"], batch["query_attention_mask"], strict=True)
    ]
    pids = [
        row[m.bool()].tolist()
        for row, m in zip(batch["passage_input_ids"], batch["passage_attention_mask"], strict=True)
    ]
    assert len({len(s) for s in ids}) > 1  # padded rows are part of the check
    for got, want in ((q, smollm2_backend.embed_ids(ids, 8)), (p, smollm2_backend.embed_ids(pids, 8))):
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() > 0.9999


def test_evalharness_train_reports_bad_rows_with_exit_2_and_writes_nothing(tmp_path):
    import os
    import subprocess
    import sys

    data = _jsonl(tmp_path, "bad.jsonl", [_row(), _row(pos=[])])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "evalharness.cli", "train", f"data.files=[{data}]", "data.tasks=[]", f"output_dir={out}"],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the training configuration has problems:\n- ")
    assert "bad.jsonl:2: 'pos' has no non-empty text" in proc.stderr
    assert not out.exists()


# -- the offline trained model ---------------------------------------------------------------------


def test_the_offline_trained_model_is_the_default_train_command_and_its_revision_names_the_preset():
    """`offline:smollm2-135m-icl` trains exactly what a bare `evalharness train` would (composed by
    Hydra), and conf/model/smollm2-135m-icl.yaml files its results under the preset's digest, so a
    changed preset cannot reuse the results of the old one."""
    import dataclasses

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from evalharness.config import CONF_DIR, load_model_config, register_configs
    from evalharness.train.config import register_train_configs
    from evalharness.train.offline import preset_config, preset_digest

    register_configs()
    register_train_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = OmegaConf.to_object(compose(config_name="train_config"))
    assert dataclasses.replace(composed, output_dir="x") == preset_config("x")
    assert load_model_config("smollm2-135m-icl").revision == f"train-offline-{preset_digest()}"


def test_the_shipped_deepspeed_config_is_one_accelerate_reads_as_zero_stage_1():
    from accelerate.commands.config.config_args import load_config_from_file

    from evalharness.config import CONF_DIR

    config = load_config_from_file(str(CONF_DIR / "accelerate" / "deepspeed-zero1.yaml"))
    assert config.distributed_type == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == 1
    assert config.num_processes == 8 and config.mixed_precision == "bf16"
