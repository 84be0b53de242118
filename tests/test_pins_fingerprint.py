"""The cell fingerprint: a re-run with any setting that changes a score but not the folder name is
refused, one with a runtime-only setting reuses the results, and a setting the folder is named after
gets a folder of its own. The zero-shot cell uses no examples, so its fingerprint leaves the example
settings out: sweeps with other example sets (MTEB or AIR-Bench) share it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from evalharness.config import ModelConfig
from evalharness.plan import ConfigError, experiment_dir, validate
from evalharness.runner import run
from evalharness.store import AtomicResultCache
from tests import local_tasks
from tests.configs import run_config

# what a change of each model setting does to earlier results of the same folder
FINGERPRINTED = {  # changes the vectors: refused
    "source": "offline:elsewhere",
    "backend": "decoder",
    "dtype": "float16",
    "query_max_length": 64,
    "passage_max_length": 64,
    "normalize": False,
    "normalize_classification": True,
    "symmetric": "raw",
    "special_tokens": ["<sep>"],
    "trust_remote_code": True,
}
RUNTIME_ONLY = {  # how fast, on what: reused
    "device": "cpu",
    "devices": ["cpu", "cpu"],
    "batch_size": 3,
    "max_tokens_per_batch": 128,
    "prefix_cache": False,
}
IN_FOLDER = {  # part of the folder's path: a folder of its own
    "name": "org/another-name",
    "revision": "another-revision",
    "template": "bge-icl",  # the cell's template when `template` is unset
}
NOT_PINNED = {"meta"}  # ModelMeta fields (license, n_parameters): fingerprinted today, change no score

ZERO = "examples_none__shots_0__template_plain"
FILE1 = "examples_file__set_s1__shots_1__template_plain"
TRAIN1 = "examples_train__seed_0__shots_1__template_plain"
EXAMPLES = [
    {"query": "Capital city of Germany?", "response": "Berlin is the capital of Germany."},
    {"query": "Which language is known for readability?", "response": "Python is readable."},
]
INSTRUCTIONS = "LocalRetrieval: Find the passage that answers the question\n"


class ForbiddenBackend:
    """Stands in for the model: a forward pass means results were recomputed instead of reused."""

    tokens_encoded = 0

    def embed(self, *args, **kwargs):
        raise AssertionError("the model must not run")


@pytest.fixture(autouse=True)
def _register_local_tasks():
    local_tasks.register()


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, minilm_config, minilm_backend):
    """Two sweeps, each in a results folder of its own (so that neither relies on sharing the zero-shot
    cell, which the last test pins): file examples on LocalRetrieval, train-split examples on
    LocalDevClassification, 0 and 1 shot each."""
    local_tasks.register()
    root = tmp_path_factory.mktemp("fingerprint")
    (root / "examples").mkdir()
    (root / "examples" / "LocalRetrieval.json").write_text(json.dumps(EXAMPLES), encoding="utf-8")
    (root / "instructions.yaml").write_text(INSTRUCTIONS, encoding="utf-8")
    common = {
        "instructions": str(root / "instructions.yaml"),
        "embedding_cache": None,
        "shots": [0, 1],
    }
    bases = {
        "file": {
            **common,
            "results_dir": str(root / "out-file"),
            "benchmark": {"name": "custom", "tasks": ["LocalRetrieval"]},
            "examples": {"strategy": "file", "root": str(root / "examples"), "set_id": "s1"},
        },
        "train": {
            **common,
            "results_dir": str(root / "out-train"),
            "benchmark": {"name": "custom", "tasks": ["LocalDevClassification"]},
            "examples": {"strategy": "train", "split": "train"},
            "seed": 0,
        },
    }
    for base, few_shot in zip(bases.values(), (FILE1, TRAIN1), strict=True):
        run(run_config(minilm_config, base, {}), backend=minilm_backend)
        folders = {p.name for p in Path(base["results_dir"]).glob("results/*/*/experiments/*")}
        assert folders == {ZERO, few_shot}
    return root, bases


def test_every_model_setting_has_a_pinned_effect():
    """A new ModelConfig field must be put in one of the tables above (and so get a test)."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert fields == {*FINGERPRINTED, *RUNTIME_ONLY, *IN_FOLDER, *NOT_PINNED}


@contextlib.contextmanager
def _rewritten(path: Path, text: str):
    """`path` with other contents (same name and place) for the duration of one check."""
    before = path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(before, encoding="utf-8")


def _refused_folders(message: str) -> set[str]:
    return {n for n in (ZERO, FILE1, TRAIN1) if f"/{n} holds results made with different settings" in message}


REFUSED = [
    *[pytest.param("file", {"model": {k: v}}, {ZERO, FILE1}, id=f"model.{k}") for k, v in FINGERPRINTED.items()],
    pytest.param("file", {"benchmark": {"scale": "full"}}, {ZERO, FILE1}, id="benchmark.scale"),
    pytest.param("file", "instructions-contents", {ZERO, FILE1}, id="instructions-contents"),
    # example settings: the few-shot cell only (the zero-shot cell uses no examples)
    pytest.param("file", "example-file-contents", {FILE1}, id="examples.root-contents"),
    pytest.param("train", {"examples": {"split": "dev"}}, {TRAIN1}, id="examples.split"),
    pytest.param("train", {"examples": {"cap": True}}, {TRAIN1}, id="examples.cap"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "change", "refused"), REFUSED)
def test_a_changed_setting_refuses_the_cells_it_changes(earlier, minilm_config, base, change, refused):
    root, bases = earlier
    edits = {
        "instructions-contents": (root / "instructions.yaml", "LocalRetrieval: Another instruction\n"),
        "example-file-contents": (root / "examples" / "LocalRetrieval.json", json.dumps(EXAMPLES[::-1])),
    }
    with _rewritten(*edits[change]) if isinstance(change, str) else contextlib.nullcontext():
        cfg = run_config(minilm_config, bases[base], {} if isinstance(change, str) else change)
        with pytest.raises(ConfigError) as err:
            run(cfg, backend=ForbiddenBackend())
    assert _refused_folders(str(err.value)) == refused
    assert "Use overwrite=true to redo them, or another results_dir" in str(err.value)


RUNTIME = [
    *[pytest.param({"model": {k: v}}, id=f"model.{k}") for k, v in RUNTIME_ONLY.items()],
    pytest.param({"corpus_chunk_size": 2}, id="corpus_chunk_size"),
    # the same instructions and example file at another path: the fingerprint holds their contents
    pytest.param("moved-instructions", id="instructions-moved"),
]


@pytest.mark.parametrize("change", RUNTIME)
def test_a_setting_that_changes_no_score_reuses_every_result(earlier, minilm_config, tmp_path, change):
    root, bases = earlier
    if change == "moved-instructions":
        shutil.copy(root / "instructions.yaml", tmp_path / "instructions.yaml")
        change = {"instructions": str(tmp_path / "instructions.yaml")}
    for base in bases.values():
        records = run(run_config(minilm_config, base, change), backend=ForbiddenBackend())
        assert len(records) == 2 and all(r.skipped for r in records)


IN_FOLDER_CHANGES = [
    *[pytest.param("file", {"model": {k: v}}, {0, 1}, id=f"model.{k}") for k, v in IN_FOLDER.items()],
    pytest.param("file", {"template": "bge-icl"}, {0, 1}, id="template"),
    pytest.param("file", {"examples": {"set_id": "s2"}}, {1}, id="examples.set_id"),
    pytest.param("file", {"examples": {"strategy": "knn"}}, {1}, id="examples.strategy"),
    pytest.param("file", {"shots": [0, 2]}, {2}, id="shots"),
    pytest.param("train", {"seed": 1}, {1}, id="seed"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "change", "new_shots"), IN_FOLDER_CHANGES)
def test_a_setting_named_in_the_folder_gets_a_folder_of_its_own(
    earlier, minilm_config, base, change, new_shots
):
    """Neither refused nor reused: the cells it changes are planned into folders that do not exist."""
    root, bases = earlier
    cfg = run_config(minilm_config, bases[base], change)
    cells = validate(cfg).cells
    results = AtomicResultCache(Path(bases[base]["results_dir"]))
    new = {c.shots for c in cells if not experiment_dir(results, cfg, c).exists()}
    assert new == new_shots


# -- the zero-shot cell is shared by sweeps with other example sets, AIR-Bench included ----------------

AIR_VERSION = "AIR-Bench_24.05"
AIR_TASK = f"AIRBench_{AIR_VERSION.removeprefix('AIR-Bench_')}_qa_finance_en"


def _air_data(root: Path) -> Path:
    """A one-dataset AIR-Bench 24.05 QA copy (finance, en) with a scored dev split."""
    corpus = {"f1": "Interest rates are set by the central bank.", "f2": "Bonds pay periodic interest."}
    queries = {"fd1": ("Who sets interest rates?", "f1"), "fd2": ("What do bonds pay?", "f2")}
    base = root / "AIR-Bench__qa_finance_en" / AIR_VERSION / "default"
    qrels = root / "AIR-Bench__qrels-qa_finance_en-dev" / AIR_VERSION / "default"
    base.mkdir(parents=True)
    qrels.mkdir(parents=True)

    def jsonl(path: Path, rows: list[dict]) -> None:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    jsonl(base / "corpus.jsonl", [{"id": k, "text": v} for k, v in corpus.items()])
    jsonl(base / "dev_queries.jsonl", [{"id": k, "text": t} for k, (t, _) in queries.items()])
    jsonl(
        qrels / "dev_qrels.jsonl", [{"qid": k, "docid": d, "relevance": 1} for k, (_, d) in queries.items()]
    )
    return root


def test_zero_shot_cell_is_shared_by_mteb_and_airbench_runs_with_other_examples(
    earlier, minilm_config, minilm_backend, tmp_path
):
    """docs/airbench.md: a results folder of its own is a choice, not a need. The train-examples
    sweep and an AIR-Bench sweep with its own example files add their zero-shot tasks to the zero-shot
    folder of the file-examples sweep; a re-run with yet other example files reuses all of it."""
    root, bases = earlier
    shutil.copytree(root / "out-file", tmp_path / "out")
    zero = next((tmp_path / "out").glob(f"results/*/*/experiments/{ZERO}"))
    fingerprint = json.loads((zero / "manifest.json").read_text())["fingerprint"]
    train = {**bases["train"], "results_dir": str(tmp_path / "out"), "shots": [0]}
    (record,) = run(run_config(minilm_config, train, {}), backend=minilm_backend)
    assert record.task == "LocalDevClassification" and not record.skipped
    air = {
        "results_dir": str(tmp_path / "out"),
        "instructions": str(root / "instructions.yaml"),
        "embedding_cache": None,
        "shots": [0],
        "benchmark": {
            "name": "air-bench",
            "airbench": {
                "version": AIR_VERSION,
                "task_types": ["qa"],
                "domains": ["finance"],
                "languages": ["en"],
                "splits": ["dev"],
                "data_dir": str(_air_data(tmp_path / "air")),
            },
        },
        "examples": {
            "strategy": "file",
            "root": str(Path(__file__).parent / "data" / "airbench" / "examples"),
        },
    }
    (record,) = run(run_config(minilm_config, air, {}), backend=minilm_backend)
    assert record.task == AIR_TASK and not record.skipped and record.main_score is not None
    manifest = json.loads((zero / "manifest.json").read_text())
    assert manifest["fingerprint"] == fingerprint
    assert set(manifest["tasks"]) == {"LocalRetrieval", "LocalDevClassification", AIR_TASK}
    assert manifest["tasks"][AIR_TASK]["examples"] == []
    # yet another example set (and strategy): nothing is recomputed, MTEB or AIR-Bench
    other = {"examples": {"strategy": "file", "root": str(root / "examples"), "set_id": "other"}}
    (again,) = run(run_config(minilm_config, air, other), backend=ForbiddenBackend())
    assert again.skipped
    mteb_zero = {**bases["file"], "results_dir": str(tmp_path / "out"), "shots": [0]}
    (mteb_again,) = run(run_config(minilm_config, mteb_zero, other), backend=ForbiddenBackend())
    assert mteb_again.skipped
