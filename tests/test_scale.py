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
import pytest
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


SUBMITIT_OVERRIDES = [
    "model=minilm",
    "benchmark=custom",
    "benchmark.tasks=[OfflineLeeSTS]",
    "embedding_cache=null",
]


def test_submitit_local_multirun_scores_equal_the_in_process_sweep_and_reach_the_report(
    tmp_path, minilm_backend
):
    """`-m hydra/launcher=submitit_local shots=0,1`: two submitit jobs (processes of their own), one cell
    each, whose scores, manifests and examples equal the same command's cells run in this process (so
    the launcher hands each job the command line's settings); `evalharness report` then shows those
    numbers in the cells' columns."""
    from hydra import compose, initialize_config_dir
    from mteb.results import TaskResult
    from omegaconf import OmegaConf

    from evalharness.config import CONF_DIR, register_configs
    from evalharness.runner import run as run_in_process
    from tests.test_report import _md_table

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "evalharness.cli", "run", "-m", "hydra/launcher=submitit_local",
         "hydra.launcher.timeout_min=20", *SUBMITIT_OVERRIDES, "shots=0,1", f"results_dir={sweep}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(sweep.glob("hydra/multirun-*/.submitit/*/*_result.pkl"))
    assert len(jobs) == 2 and len({p.parent.name for p in jobs}) == 2  # two jobs, two job ids
    cells = {p.parent.name: p.parent for p in sweep.glob("results/*/*/experiments/*/OfflineLeeSTS.json")}
    assert sorted(cells) == [
        "examples_none__shots_0__template_plain",
        "examples_train__seed_0__shots_1__template_plain",
    ]

    register_configs()
    local = tmp_path / "in-process"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*SUBMITIT_OVERRIDES, "shots=[0,1]", f"results_dir={local}"])
    records = run_in_process(OmegaConf.to_object(cfg), backend=minilm_backend)
    expected = {r.experiment: r.main_score for r in records}
    assert sorted(expected) == sorted(cells)
    for name, folder in cells.items():
        score = TaskResult.from_disk(folder / "OfflineLeeSTS.json").get_score()
        assert score == pytest.approx(expected[name], abs=1e-6), name
        ours = json.loads((folder / "manifest.json").read_text())
        (theirs,) = local.glob(f"results/*/*/experiments/{name}/manifest.json")
        theirs = json.loads(theirs.read_text())
        assert ours["fingerprint"] == theirs["fingerprint"]  # every setting that changes scores
        task, ref = ours["tasks"]["OfflineLeeSTS"], theirs["tasks"]["OfflineLeeSTS"]
        assert task["main_score"] == pytest.approx(score) and task["examples"] == ref["examples"]
        assert len(task["examples"]) == (1 if "shots_1" in name else 0)

    report = subprocess.run([sys.executable, "-m", "evalharness.cli", "report", str(sweep)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    row = _md_table((sweep / "report.md").read_text(), "Per task")["OfflineLeeSTS"]
    assert row["scored on"] == "test"
    zero = "examples_none__shots_0__template_plain"
    one = "examples_train__seed_0__shots_1__template_plain"
    assert float(row["all-MiniLM-L6-v2 0-shot"]) == pytest.approx(100 * expected[zero], abs=0.005)
    assert float(row["all-MiniLM-L6-v2 1-shot train seed 0"]) == pytest.approx(100 * expected[one], abs=0.005)
