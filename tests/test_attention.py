"""Bidirectional decoders (issue 23, first slice): the prefix KV cache is exact only for causal
attention, so a model whose attention is bidirectional (gte-Qwen2 with its own code, LLM2Vec,
NV-Embed) is detected and encoded whole. Tested with a tiny model loaded through
`trust_remote_code` from a module this test writes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

MODULE = '''
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class BidiConfig(PretrainedConfig):
    model_type = "evalharness-bidi-test"

    def __init__(self, vocab_size=49152, hidden_size=16, **kwargs):
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        super().__init__(**kwargs)


class BidiModel(PreTrainedModel):
    """Token + position embeddings and one encoder layer: every position attends to every other."""

    config_class = BidiConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(4096, config.hidden_size)
        self.layer = nn.TransformerEncoderLayer(config.hidden_size, 2, 32, dropout=0.0, batch_first=True)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, use_cache=None, **kwargs):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.embed(input_ids) + self.position(position_ids)
        pad = None if attention_mask is None else ~attention_mask.bool()
        return BaseModelOutput(last_hidden_state=self.layer(x, src_key_padding_mask=pad))
'''


@pytest.fixture(scope="module")
def bidi_dir(tmp_path_factory, smollm2_backend):
    """A local model folder whose config maps AutoModel to the module above (remote code)."""
    import importlib.util
    import sys

    folder = tmp_path_factory.mktemp("bidi")
    (folder / "modeling_bidi.py").write_text(MODULE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("modeling_bidi", folder / "modeling_bidi.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_bidi"] = module
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    config = module.BidiConfig()
    config.auto_map = {"AutoConfig": "modeling_bidi.BidiConfig", "AutoModel": "modeling_bidi.BidiModel"}
    module.BidiModel(config).save_pretrained(folder)
    smollm2_backend.tokenizer.save_pretrained(folder)
    del sys.modules["modeling_bidi"]
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _items():
    from evalharness.examples import Example
    from evalharness.prompts import PromptedText, get_template

    template = get_template("bge-icl")
    prefix = template.render_prefix(
        [Example("what is a noun?", "A word that names a thing.")], "Retrieve answers"
    )
    queries = ["how do plants make food?", "who wrote the odyssey?", "why is the sky blue?"]
    return [
        PromptedText(prefix, template.wrap_query(q, "Retrieve answers"), template.suffix, True)
        for q in queries
    ]


def test_cached_prefix_states_of_a_bidirectional_model_are_not_its_full_sequence_states(bidi_dir):
    """Why the cache must go: the prefix's hidden states change once the query follows them."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(bidi_dir, trust_remote_code=True).eval()
    prefix, query = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[9, 10, 11]])
    with torch.no_grad():
        alone = model(input_ids=prefix).last_hidden_state
        in_full = model(input_ids=torch.cat([prefix, query], dim=1)).last_hidden_state[:, :4]
    assert not torch.allclose(alone, in_full, atol=1e-3)


def test_a_bidirectional_model_is_detected_and_encoded_whole(bidi_dir):
    from evalharness.encoders.backends import DecoderBackend

    backend = DecoderBackend(str(bidi_dir), dtype="float32", device="cpu", trust_remote_code=True)
    assert backend.causal is False and backend.prefix_cache is False
    items = _items()
    got = backend.embed(items, 8)
    assert {path for path, _ in backend.forwards} == {"uncached"}  # never the prefix cache nor packing
    with torch.no_grad():  # each text alone, full sequence, no padding
        want = np.stack([
            backend.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()
            for ids in backend.tokenize(items)
        ])  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_asking_for_the_prefix_cache_on_a_bidirectional_model_is_refused(bidi_dir):
    from evalharness.encoders.attention import AttentionError
    from evalharness.encoders.backends import DecoderBackend

    with pytest.raises(AttentionError, match="attends bidirectionally.*drop model.prefix_cache=true"):
        DecoderBackend(
            str(bidi_dir), dtype="float32", device="cpu", trust_remote_code=True, prefix_cache=True
        )
    off = DecoderBackend(
        str(bidi_dir), dtype="float32", device="cpu", trust_remote_code=True, prefix_cache=False
    )
    assert off.prefix_cache is False


def test_the_run_config_leaves_the_prefix_cache_to_the_model_by_default():
    from evalharness.config import ModelConfig

    assert ModelConfig(name="m", source="m").prefix_cache is None


def test_a_causal_decoder_keeps_its_prefix_cache(smollm2_backend):
    from evalharness.encoders.backends import attends_causally

    assert attends_causally(smollm2_backend.model, "cpu") and smollm2_backend.prefix_cache


def test_the_bundled_gte_qwen2_config_runs_its_authors_code():
    from evalharness.config import load_model_config

    assert load_model_config("gte-qwen2-7b-instruct").trust_remote_code is True
