"""A trained output folder is a model others can load (issue 22, part 3): sentence-transformers gives
the vectors `evalharness run` computes for the same strings, its tokenizer ends texts with EOS by
itself, and its model card says how it was made and how to use it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalharness.examples import Example
from evalharness.prompts import PromptedText, get_template
from evalharness.train.data import Dataset, TrainRow

INSTRUCTION = "Given a question, retrieve passages that answer it"


@pytest.fixture(scope="module")
def published(tmp_path_factory, smollm2_config):
    """The folder `write_output` writes for SmolLM2 + fresh LoRA adapters (B = 0: the base weights,
    the real layout)."""
    from omegaconf import OmegaConf

    from evalharness.train.config import TrainConfig
    from evalharness.train.trainer import load_model, write_output

    out = tmp_path_factory.mktemp("published") / "model"
    base = OmegaConf.structured(TrainConfig)
    base.model = OmegaConf.structured(smollm2_config)
    cfg = OmegaConf.to_object(
        OmegaConf.merge(base, {"output_dir": str(out), "lora": {"r": 4, "layers": [-1]}})
    )
    model, tokenizer = load_model(cfg)
    rows = [TrainRow(f"question {i}?", (f"answer {i}",), (), INSTRUCTION, "retrieval") for i in range(4)]
    stats = {"steps": 0, "train_loss": 0.0, "rows": {"train": 4}, "queries_with_examples": 0.0}
    return write_output(cfg, model, tokenizer, [Dataset("train", rows)], stats), cfg


def _items():
    template = get_template("bge-icl")
    examples = [Example("what is a noun?", "A word that names a thing."), Example("what is 2+2?", "Four.")]
    queries = ["how do plants make food?", "who wrote the odyssey, and when was it written down?"]
    items = [
        PromptedText(template.render_prefix(examples[:k], INSTRUCTION), template.wrap_query(q, INSTRUCTION),
                     template.suffix, True)
        for k in (0, 2) for q in queries
    ]  # fmt: skip
    items.append(PromptedText("", "Photosynthesis turns light, water and CO2 into sugar.", "", False))
    return items


def test_sentence_transformers_gives_the_vectors_evalharness_run_uses(published, smollm2_backend):
    from sentence_transformers import SentenceTransformer

    from evalharness.encoders.backends import DecoderBackend

    out, _ = published
    items = _items()
    ours = DecoderBackend(str(out), dtype="float32", device="cpu")
    assert ours.tokenize(items) == smollm2_backend.tokenize(items)  # EOS once, as before
    want = ours.embed(items, 8)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    st = SentenceTransformer(str(out), device="cpu")
    got = st.encode([it.text for it in items], batch_size=8)  # one padded batch of 5 lengths
    assert np.linalg.norm(got, axis=1) == pytest.approx(1.0, abs=1e-5)  # the Normalize module
    assert (got * want).sum(1).min() >= 0.99999
    # the prompt named after the training dataset is the zero-shot query's head
    zero_shot = st.encode(["how do plants make food?" + "\n<response>"], prompt_name="train")
    assert float(zero_shot[0] @ want[0]) >= 0.99999


def test_the_saved_tokenizer_appends_eos_itself(published):
    from transformers import AutoTokenizer

    out, _ = published
    tok = AutoTokenizer.from_pretrained(out)
    plain = tok("a text", add_special_tokens=False)["input_ids"]
    assert tok("a text")["input_ids"] == [*plain, tok.eos_token_id]


def test_the_model_card_says_what_it_is_how_it_was_made_and_how_to_load_it(published):
    out, cfg = published
    card = (out / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((out / "evalharness_train.json").read_text(encoding="utf-8"))
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    assert manifest["revision"] in card and manifest["data"]["train"] in card
    assert "<instruct>{instruction}\\n<query>{query}" in card and "`\\n<response>`" in card
    assert (
        f"<instruct>{INSTRUCTION}\n<query>what is gradient descent?\n<response>" in card
    )  # a rendered query
    assert INSTRUCTION in card and "SentenceTransformer(PATH)" in card and "FlagICLModel(PATH" in card
    assert f"r={cfg.lora.r}" in card and f"| temperature | {cfg.temperature} |" in card
    modules = json.loads((out / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_lasttoken"] is True


def test_an_evalharness_run_writes_its_scores_into_the_card_and_a_later_run_replaces_them(
    published, tmp_path
):
    from evalharness.train.publish import record_evaluation

    out, _ = published
    assert "Not evaluated yet" in (out / "README.md").read_text(encoding="utf-8")
    first = "| task | shots=0 |\n|---|---|\n| LocalRetrieval | 12.5 |"
    assert record_evaluation(str(out), first, "results/a") == out / "README.md"
    assert record_evaluation(str(out), first.replace("12.5", "47.25"), "results/b") == out / "README.md"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "47.25" in card and "results/b" in card and "12.5" not in card and "Not evaluated yet" not in card
    assert (
        card.index("## Evaluation") < card.index("47.25")
        and card.count("<!-- evalharness:evaluation -->") == 1
    )
    (tmp_path / "plain").mkdir()  # a folder evalharness did not train: left alone
    assert record_evaluation(str(tmp_path / "plain"), first, "results/a") is None
