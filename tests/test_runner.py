"""Sweeps through the runner: folders and manifests, parity with a direct mteb.evaluate, corpus
encoded once, resume after a crash, early errors, local snapshots and Hydra multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mteb
import pytest

from evalharness.config import RunConfig, load_model_config
from evalharness.encoders import ICLEncoder
from evalharness.plan import Cell, ConfigError, plan_cells, validate
from evalharness.runner import Runner, run
from tests import local_tasks
from tests.configs import run_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _register_local_tasks():
    local_tasks.register()


def _cfg(tmp_path, model_config, **overrides) -> RunConfig:
    return run_config(
        model_config,
        {
            "benchmark": {"name": "custom", "tasks": ["LocalRetrieval"]},
            "results_dir": str(tmp_path),
            "shots": [0, 2],
            "embedding_cache": None,  # in-memory: each test starts cold
        },
        overrides,
    )


def _experiment_dirs(results_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in results_dir.glob("results/*/*/experiments/*") if p.is_dir()}


def test_plan_cells_zero_shot_once_and_seeds_only_for_sampling(tmp_path, smollm2_config):
    cfg = _cfg(tmp_path, smollm2_config, shots=[0, 1, 0, 3], seed=[0, 1])
    assert plan_cells(cfg) == [
        Cell(0, "none", None, "bge-icl"),
        Cell(1, "train", 0, "bge-icl"), Cell(1, "train", 1, "bge-icl"),
        Cell(3, "train", 0, "bge-icl"), Cell(3, "train", 1, "bge-icl"),
    ]  # fmt: skip


def test_sweep_writes_cells_and_manifests_and_encodes_corpus_once(tmp_path, smollm2_config, smollm2_backend):
    cfg = _cfg(tmp_path, smollm2_config)
    plan = validate(cfg)
    runner = Runner(plan, backend=smollm2_backend)
    calls = []
    original = smollm2_backend.embed

    def counting(items, batch_size):
        calls.append([it for it in items if not it.is_query])
        return original(items, batch_size)

    smollm2_backend.embed = counting
    try:
        records = runner.run()
    finally:
        del smollm2_backend.embed
    dirs = _experiment_dirs(tmp_path)
    assert sorted(dirs) == [
        "examples_none__shots_0__template_bge-icl",
        "examples_train__seed_0__shots_2__template_bge-icl",
    ]
    for d in dirs.values():
        assert sorted(p.name for p in d.iterdir() if p.suffix == ".json") == [
            "LocalRetrieval.json", "manifest.json", "model_meta.json",
        ]  # fmt: skip
    manifest = json.loads(
        (dirs["examples_train__seed_0__shots_2__template_bge-icl"] / "manifest.json").read_text()
    )
    task = manifest["tasks"]["LocalRetrieval"]
    assert manifest["cell"] == {
        "shots": 2,
        "strategy": "train",
        "seed": 0,
        "template": "bge-icl",
        "set_id": None,
    }
    assert len(task["examples"]) == 2 and all(e["source"].startswith("train:") for e in task["examples"])
    assert {e["query"] for e in task["examples"]} <= {q for q, _ in local_tasks.TRAIN_QUERIES.values()}
    assert task["tokens_encoded"] > 0 and task["wall_time_s"] > 0
    assert manifest["config"]["model"]["name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {"mteb", "torch", "transformers"} <= set(manifest["versions"])
    # the corpus went through the model exactly once for the whole sweep
    passages = [p.body for call in calls for p in call]
    assert sorted(passages) == sorted(local_tasks.DOCS.values())

    # the 0-shot cell equals a direct mteb.evaluate of the same adapter
    direct = mteb.evaluate(
        ICLEncoder(smollm2_config, backend=smollm2_backend),
        local_tasks.LocalRetrieval(),
        cache=None,
        co2_tracker=False,
        show_progress_bar=False,
    )
    zero = next(r for r in records if r.cell.shots == 0)
    assert zero.main_score == pytest.approx(direct.task_results[0].get_score(), abs=1e-6)


def _scores(results_dir: Path) -> dict[str, dict]:
    out = {}
    for name, d in _experiment_dirs(results_dir).items():
        for f in d.glob("Local*.json"):
            out[f"{name}/{f.name}"] = json.loads(f.read_text())["scores"]
    return out


def test_resume_after_a_crash_in_the_second_cell(tmp_path, smollm2_config, smollm2_backend):
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    cfg = _cfg(crashed, smollm2_config, benchmark={"tasks": ["LocalRetrieval", "LocalSTS"]})
    plan = validate(cfg)

    def boom(cell, task):
        if cell.shots == 2 and task == "LocalSTS":
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(plan, backend=smollm2_backend, raise_inside=boom).run()
    assert not list(crashed.rglob("*.tmp")) and not list(crashed.rglob(".staging-*"))
    rerun = Runner(plan, backend=smollm2_backend).run()
    assert [(r.cell.shots, r.task, r.skipped) for r in rerun] == [
        (0, "LocalRetrieval", True), (0, "LocalSTS", True), (2, "LocalRetrieval", True), (2, "LocalSTS", False),
    ]  # fmt: skip
    Runner(
        validate(_cfg(clean, smollm2_config, benchmark={"tasks": ["LocalRetrieval", "LocalSTS"]})),
        backend=smollm2_backend,
    ).run()
    assert _scores(crashed) == _scores(clean)


def test_changed_settings_are_not_silently_reused(tmp_path, smollm2_config, smollm2_backend):
    cfg = _cfg(tmp_path, smollm2_config, shots=[0])
    run(cfg, backend=smollm2_backend)
    changed = _cfg(tmp_path, load_model_config("smollm2-135m", query_max_length=64), shots=[0])
    with pytest.raises(ConfigError, match="different settings"):
        run(changed, backend=smollm2_backend)
    again = run(
        _cfg(tmp_path, load_model_config("smollm2-135m", query_max_length=64), shots=[0], overwrite=True),
        backend=smollm2_backend,
    )
    assert not again[0].skipped


def test_unknown_task_is_one_clear_error_with_suggestion(tmp_path, smollm2_config):
    cfg = _cfg(tmp_path, smollm2_config, benchmark={"tasks": ["SciFactt", "LocalRetrieval"]})
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).count("\n") == 0 and "unknown task 'SciFactt'. Did you mean 'SciFact'" in str(
        err.value
    )
    assert not (tmp_path / "results").exists()


def _cli(*args, cwd=REPO, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "evalharness.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_config_typo_fails_at_start_with_hydras_message(tmp_path):
    proc = _cli("run", "model=minilm", "benchmark.nmae=offline-mini", f"results_dir={tmp_path}")
    assert proc.returncode != 0
    assert "Key 'nmae' not in 'BenchmarkConfig'" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_bad_values_are_all_reported_before_any_model_loads(tmp_path):
    proc = _cli(
        "run", "model=minilm", "benchmark.tasks=[OfflineLeeSTSS]", "shots=[0,x]", f"results_dir={tmp_path}"
    )
    assert proc.returncode != 0
    assert "shots=[0, 'x']: every value must be an integer" in proc.stderr
    assert "unknown task 'OfflineLeeSTSS'. Did you mean 'OfflineLeeSTS'" in proc.stderr


def _write_scifact_snapshot(root: Path) -> None:
    """A tiny copy of mteb/scifact in the hub layout that mteb's retrieval loader reads."""
    d = root / "mteb__scifact"
    for sub in ("corpus", "queries", "qrels"):
        (d / sub).mkdir(parents=True)
    docs = {
        "d1": "Vitamin D lowers the risk of fractures.",
        "d2": "Smoking causes lung cancer.",
        "d3": "Exercise improves heart health.",
        "d4": "Sleep deprivation impairs memory.",
    }
    queries = {
        "q1": ("Smoking leads to cancer of the lung.", "d2"),
        "q2": ("Lack of sleep hurts memory.", "d4"),
    }
    (d / "corpus" / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    (d / "queries" / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": t}) + "\n" for k, (t, _) in queries.items())
    )
    (d / "qrels" / "test.jsonl").write_text(
        "".join(
            json.dumps({"query-id": k, "corpus-id": doc, "score": 1}) + "\n"
            for k, (_, doc) in queries.items()
        )
    )
    (d / "README.md").write_text(
        "---\nconfigs:\n- config_name: corpus\n  data_files: [{split: corpus, path: corpus/corpus.jsonl}]\n"
        "- config_name: queries\n  data_files: [{split: queries, path: queries/queries.jsonl}]\n"
        "- config_name: default\n  data_files: [{split: test, path: qrels/test.jsonl}]\n---\n"
    )


def test_builtin_task_from_a_local_snapshot_through_evalharness_run(tmp_path):
    _write_scifact_snapshot(tmp_path / "snapshots")
    out = tmp_path / "out"
    proc = _cli(
        "run",
        "model=minilm",
        "benchmark=custom",
        "benchmark.tasks=[SciFact]",
        "shots=[0]",
        f"tasks.local_root={tmp_path / 'snapshots'}",
        f"results_dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.glob("results/*/*/experiments/*/SciFact.json")
    scores = json.loads(result.read_text())["scores"]["test"][0]
    assert scores["ndcg_at_10"] == pytest.approx(1.0)  # both toy queries find their document first


def test_hydra_multirun_with_joblib_launcher_runs_two_cells(tmp_path, minilm_backend):
    """Two joblib jobs, one cell each, whose scores, fingerprints and examples equal the same command's
    cells run in this process, and whose job folders name their own shot count."""
    from hydra import compose, initialize_config_dir
    from mteb.results import TaskResult
    from omegaconf import OmegaConf

    from evalharness.config import CONF_DIR, register_configs

    common = ["model=minilm", "benchmark=custom", "benchmark.tasks=[OfflineLeeSTS]"]
    sweep = tmp_path / "sweep"
    proc = _cli("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *common, "shots=0,1",
                f"results_dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = _experiment_dirs(sweep)
    assert sorted(dirs) == [
        "examples_none__shots_0__template_plain",
        "examples_train__seed_0__shots_1__template_plain",
    ]
    jobs = sorted(sweep.glob("hydra/multirun-*/*/.hydra/overrides.yaml"))
    assert sorted(next(line for line in p.read_text().splitlines() if "shots=" in line).strip("- ")
                  for p in jobs) == ["shots=0", "shots=1"]  # fmt: skip

    register_configs()
    local = tmp_path / "in-process"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*common, "shots=[0,1]", f"results_dir={local}"])
    expected = {r.experiment: r.main_score for r in run(OmegaConf.to_object(cfg), backend=minilm_backend)}
    assert sorted(expected) == sorted(dirs)
    for name, folder in dirs.items():
        assert TaskResult.from_disk(folder / "OfflineLeeSTS.json").get_score() == pytest.approx(
            expected[name], abs=1e-6
        )
        ours = json.loads((folder / "manifest.json").read_text())
        theirs = json.loads(_experiment_dirs(local)[name].joinpath("manifest.json").read_text())
        assert ours["fingerprint"] == theirs["fingerprint"]
        assert ours["tasks"]["OfflineLeeSTS"]["examples"] == theirs["tasks"]["OfflineLeeSTS"]["examples"]
        assert len(ours["tasks"]["OfflineLeeSTS"]["examples"]) == (1 if "shots_1" in name else 0)


def test_benchmark_tasks_keep_the_benchmarks_languages_and_splits():
    """MTEB(eng, v1) evaluates only the English subset of multilingual tasks and MSMARCO's dev split."""
    from evalharness.tasks.resolve import benchmark_task_filters, load_tasks

    names = ["AmazonReviewsClassification", "MSMARCO", "STS17"]
    tasks = load_tasks(names, filters=benchmark_task_filters("MTEB(eng, v1)"))
    assert [(t.hf_subsets, t.eval_splits) for t in tasks] == [
        (["en"], ["test"]),
        (["default"], ["dev"]),
        (["en-en"], ["test"]),
    ]
    assert len(load_tasks(["AmazonReviewsClassification"])[0].hf_subsets) == 6


def test_knn_examples_are_chosen_per_query(tmp_path, smollm2_config, smollm2_backend):
    cfg = _cfg(tmp_path, smollm2_config, shots=[1], examples={"strategy": "knn"})
    (record,) = run(cfg, backend=smollm2_backend)
    (manifest,) = tmp_path.glob("results/*/*/experiments/*knn*/manifest.json")
    used = json.loads(manifest.read_text())["tasks"]["LocalRetrieval"]["examples"]
    assert record.main_score is not None
    assert sum(e["count"] for e in used) == len(local_tasks.TEST_QUERIES)  # one example per test query
    assert {e["query"] for e in used} <= {q for q, _ in local_tasks.TRAIN_QUERIES.values()}


def test_disk_embedding_cache_makes_a_rerun_encode_nothing(tmp_path, smollm2_config, smollm2_backend):
    cache = tmp_path / "embeddings"
    first = run(_cfg(tmp_path / "a", smollm2_config, embedding_cache=str(cache)), backend=smollm2_backend)
    tokens = smollm2_backend.tokens_encoded
    again = run(_cfg(tmp_path / "b", smollm2_config, embedding_cache=str(cache)), backend=smollm2_backend)
    assert smollm2_backend.tokens_encoded == tokens  # every vector came from the disk cache
    assert [r.main_score for r in again] == [r.main_score for r in first]
    (manifest,) = (tmp_path / "b").glob("results/*/*/experiments/*shots_2*/manifest.json")
    stats = json.loads(manifest.read_text())["tasks"]["LocalRetrieval"]["cache"]
    assert stats["disk_hits"] > 0 and stats["disk_bytes"] > 0


class _Recording:
    """The backend, with the number of passages in each call kept."""

    def __init__(self, backend):
        self._backend, self.passage_calls = backend, []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def embed(self, items, batch_size):
        self.passage_calls.append(sum(not it.is_query for it in items))
        return self._backend.embed(items, batch_size)


def test_corpus_chunk_size_reaches_mtebs_corpus_search(tmp_path, minilm_config, minilm_backend):
    """corpus_chunk_size is what mteb's search encodes and scores at a time: the 8-document corpus in
    chunks of 3, 3 and 2 (one encode call each), with the score of a one-chunk search."""
    scores, calls = {}, {}
    for size in (3, 50_000):
        backend = _Recording(minilm_backend)
        cfg = _cfg(tmp_path / str(size), minilm_config, shots=[0], corpus_chunk_size=size)
        (record,) = Runner(validate(cfg), backend=backend).run()
        scores[size], calls[size] = record.main_score, [n for n in backend.passage_calls if n]
    assert sorted(calls[3]) == [2, 3, 3] and calls[50_000] == [len(local_tasks.DOCS)]
    assert scores[3] == pytest.approx(scores[50_000], abs=1e-9)
