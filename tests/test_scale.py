"""Scale-out paths: data-parallel encoding, chunked retrieval, and a Hydra multirun through the
submitit local launcher collected by `evalharness report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mteb
import numpy as np
from mteb.models.search_wrappers import SearchEncoderWrapper

from evalharness.encoders import ICLEncoder
from evalharness.encoders.backends import DecoderBackend
from evalharness.examples import Example
from evalharness.prompts import PromptedText, get_template
from tests import local_tasks

REPO = Path(__file__).resolve().parent.parent


def _items():
    tpl = get_template("bge-icl")
    rng = np.random.default_rng(1)
    passages = [" ".join(["token"] * int(n)) + f" {i}" for i, n in enumerate(rng.integers(1, 60, size=24))]
    prefix = tpl.render_prefix([Example("an example query", "its answer")], "Retrieve.")
    queries = [
        tpl.wrap_query(f"query number {i} " + "x " * int(n), "Retrieve.")
        for i, n in enumerate(rng.integers(1, 30, size=12))
    ]
    items = [PromptedText("", p, "", False) for p in passages] + [
        PromptedText(prefix, q, tpl.suffix, True) for q in queries
    ]
    order = rng.permutation(len(items))
    return [items[i] for i in order]


def test_two_workers_return_the_single_worker_vectors_in_input_order(smollm2_backend):
    two = DecoderBackend(
        "unused",
        devices=["cpu", "cpu"],
        model=smollm2_backend.model,
        tokenizer=smollm2_backend.tokenizer,
        dtype="float32",
    )
    assert len(two.replicas) == 2
    items = _items()
    single = smollm2_backend.embed(items, batch_size=3)
    parallel = two.embed(items, batch_size=3)
    np.testing.assert_array_equal(parallel, single)  # same batches, same kernels: bitwise equal
    assert two.tokens_encoded > 0


def test_chunked_retrieval_ranks_like_unchunked(tmp_path, minilm_config, minilm_backend):
    local_tasks.register()
    enc = ICLEncoder(minilm_config, backend=minilm_backend)
    runs = {}
    for chunk in (3, 50_000):  # 8 documents: three chunks vs one
        folder = tmp_path / f"chunk{chunk}"
        mteb.evaluate(
            SearchEncoderWrapper(enc, corpus_chunk_size=chunk),
            local_tasks.LocalRetrieval(),
            cache=None,
            prediction_folder=folder,
            co2_tracker=False,
            show_progress_bar=False,
        )
        (pred,) = folder.glob("*LocalRetrieval*.json")
        runs[chunk] = json.loads(pred.read_text())

    def rankings(p):
        preds = p.get("predictions", p)
        body = preds["default"]["test"] if "default" in preds else preds
        return {q: sorted(docs, key=lambda d: (-docs[d], d)) for q, docs in body.items()}

    chunked, whole = rankings(runs[3]), rankings(runs[50_000])
    assert len(whole) == len(local_tasks.TEST_QUERIES) and all(
        len(r) == len(local_tasks.DOCS) for r in whole.values()
    )
    assert chunked == whole


def test_submitit_local_multirun_then_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "evalharness.cli", "run", "-m", "hydra/launcher=submitit_local",
         "hydra.launcher.timeout_min=20", "model=minilm", "benchmark=custom", "benchmark.tasks=[OfflineLeeSTS]",
         "shots=0,1", "embedding_cache=null", f"results_dir={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    cells = sorted(p.parent.name for p in tmp_path.glob("results/*/*/experiments/*/OfflineLeeSTS.json"))
    assert cells == [
        "examples_none__shots_0__template_plain",
        "examples_train__seed_0__shots_1__template_plain",
    ]
    report = subprocess.run([sys.executable, "-m", "evalharness.cli", "report", str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report.md").read_text()
    assert "OfflineLeeSTS" in text and "0-shot" in text and "1-shot" in text
