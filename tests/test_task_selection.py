"""Which splits and subsets a run scores, where task data come from, and the errors a user meets first
(issue 12): per-task subset/split selection, snapshots lacking subsets, results never reused across
selections, the hub offline, exit status 2 without a traceback, empty benchmark texts, dotted model
names and the documented mapping line (docs/evaluating.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evalharness.config import CONF_DIR, RunConfig, available_models, load_model_config
from evalharness.plan import ConfigError
from evalharness.runner import run
from tests import local_tasks
from tests.configs import run_config
from tests.test_runner import _write_scifact_snapshot

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _register_local_tasks():
    local_tasks.register()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evalharness.cli", *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _cfg(tmp_path, model_config, **overrides) -> RunConfig:
    return run_config(
        model_config,
        {
            "benchmark": {"name": "custom", "tasks": ["LocalTwoSplitSTS"]},
            "results_dir": str(tmp_path / "out"),
            "shots": [0],
            "embedding_cache": None,
        },
        overrides,
    )


# -- model configs -----------------------------------------------------------------------------


def test_every_model_config_loads_and_the_models_command_lists_them(capsys):
    from evalharness.cli import main

    files = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    assert "qwen3-embedding-0.6b" in files  # a group name with a dot, not a file path
    assert {n: load_model_config(n).name for n in files}[
        "qwen3-embedding-0.6b"
    ] == "Qwen/Qwen3-Embedding-0.6B"
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == available_models() == files


# -- the mapping line of docs/evaluating.md ------------------------------------------------------


def test_the_docs_mapping_line_works_as_written(tmp_path):
    doc = (REPO / "docs" / "evaluating.md").read_text(encoding="utf-8")
    (line,) = set(re.findall(r"`(tasks\.mapping=\{SciFact: /data/scifact\})`", doc))
    _write_scifact_snapshot(tmp_path)
    mapping = line.replace("/data/scifact", str(tmp_path / "mteb__scifact"))
    out = tmp_path / "out"
    proc = _cli("run", "model=minilm", "benchmark=custom", "benchmark.tasks=[SciFact]", "shots=[0]",
                mapping, f"results_dir={out}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.glob("results/*/*/experiments/*/SciFact.json")
    assert json.loads(result.read_text())["scores"]["test"][0]["ndcg_at_10"] == pytest.approx(1.0)


# -- subsets of a multilingual task from a snapshot ---------------------------------------------

STS17_ROWS = {
    "en-en": [
        ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
        ("A dog runs in the park.", "A cat sleeps on the sofa.", 0.4),
        ("The sun is bright today.", "It is a sunny day.", 4.0),
        ("She is cooking dinner.", "The stock market fell.", 0.0),
    ],
    "es-es": [
        ("Un hombre toca la guitarra.", "Un hombre toca una guitarra.", 4.9),
        ("El perro corre.", "El gato duerme.", 0.5),
        ("Hace sol.", "El día es soleado.", 4.1),
    ],
}


def _sts17_snapshot(root: Path) -> Path:
    """Two of STS17's eleven subsets, in the hub layout mteb's fast loader reads (one file, `lang`)."""
    d = root / "mteb__sts17-crosslingual-sts"
    d.mkdir(parents=True)
    rows = [
        {"sentence1": a, "sentence2": b, "score": s, "lang": lang}
        for lang, pairs in STS17_ROWS.items()
        for a, b, s in pairs
    ]
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def test_a_snapshot_lacking_subsets_fails_early_and_the_selector_evaluates_it(tmp_path):
    root = _sts17_snapshot(tmp_path / "snap")
    out = tmp_path / "out"
    base = ["run", "model=minilm", "benchmark=custom", "benchmark.tasks=[STS17]", "shots=[0]",
            f"tasks.local_root={root}", f"results_dir={out}"]  # fmt: skip

    proc = _cli(*base)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "KeyError" not in proc.stderr
    assert "holds subsets en-en, es-es" in proc.stderr  # what the snapshot has ...
    assert "missing ko-ko, ar-ar" in proc.stderr  # ... what the run needs ...
    assert "benchmark.subsets={STS17: [en-en, es-es]}" in proc.stderr  # ... and how to select
    assert not out.exists()

    proc = _cli(*base, "benchmark.subsets={STS17: [en-en]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.glob("results/*/*/experiments/*/STS17.json")
    scores = json.loads(result.read_text())["scores"]
    assert [(split, e["hf_subset"]) for split, es in scores.items() for e in es] == [("test", "en-en")]
    (manifest,) = out.glob("results/*/*/experiments/*/manifest.json")
    entry = json.loads(manifest.read_text())["tasks"]["STS17"]
    assert (entry["splits"], entry["subsets"]) == (["test"], ["en-en"])

    # a second run asking for both subsets must not reuse the en-en-only result
    before = result.read_bytes()
    proc = _cli(*base, "benchmark.subsets={STS17: [en-en, es-es]}")
    assert proc.returncode == 2
    assert "STS17 was scored on splits test x subsets en-en but this run scores splits test x " \
        "subsets en-en, es-es" in proc.stderr  # fmt: skip
    assert "done earlier" not in proc.stderr + proc.stdout
    assert result.read_bytes() == before

    # MTEB(eng, v1) scores STS17 on en-en only: the same selection, so the result is reused
    proc = _cli(*base[:2], "benchmark=mteb-eng-v1", *base[3:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STS17: done earlier, skipped" in proc.stdout + proc.stderr
    assert result.read_bytes() == before


def test_unknown_subsets_and_splits_are_named_with_what_the_task_has(tmp_path, minilm_config):
    cfg = _cfg(
        tmp_path,
        minilm_config,
        benchmark={"tasks": ["LocalTwoSplitSTS"], "subsets": {"LocalTwoSplitSTS": ["xx"]},
                   "splits": {"LocalTwoSplitSTS": ["dev"], "LocalSTS": ["test"]}},
    )  # fmt: skip
    with pytest.raises(ConfigError) as err:
        run(cfg)
    text = str(err.value)
    assert "benchmark.subsets: LocalTwoSplitSTS has no subsets 'xx'; it has default" in text
    assert "benchmark.splits: LocalTwoSplitSTS has no splits 'dev'; it has validation, test" in text
    assert "benchmark.splits names 'LocalSTS', which is not a task of this run" in text
    assert not (tmp_path / "out").exists()


# -- results never reused across split selections -------------------------------------------------


def test_a_rerun_with_other_splits_never_reuses_the_earlier_result(tmp_path, minilm_config, minilm_backend):
    test_only = {"benchmark": {"tasks": ["LocalTwoSplitSTS"], "splits": {"LocalTwoSplitSTS": ["test"]}}}
    (first,) = run(_cfg(tmp_path, minilm_config, **test_only), backend=minilm_backend)
    (result,) = (tmp_path / "out").glob("results/*/*/experiments/*/LocalTwoSplitSTS.json")
    assert list(json.loads(result.read_text())["scores"]) == ["test"]
    before = result.read_bytes()

    with pytest.raises(ConfigError) as err:  # both splits now: the test-only file must not count
        run(_cfg(tmp_path, minilm_config), backend=minilm_backend)
    assert "scored on splits test x subsets default but this run scores splits test, validation" in str(
        err.value
    )
    assert "benchmark.splits={LocalTwoSplitSTS: [test]}" in str(err.value)  # the earlier selection
    assert result.read_bytes() == before

    (again,) = run(_cfg(tmp_path, minilm_config, **test_only), backend=minilm_backend)
    assert again.skipped and again.main_score == first.main_score

    (redone,) = run(_cfg(tmp_path, minilm_config, overwrite=True), backend=minilm_backend)
    assert not redone.skipped
    assert sorted(json.loads(result.read_text())["scores"]) == ["test", "validation"]


# -- empty texts inside benchmark data -------------------------------------------------------------


def test_a_symmetric_task_with_an_empty_text_finishes_and_records_the_count(
    tmp_path, minilm_config, minilm_backend, caplog
):
    splits = {"benchmark": {"tasks": ["LocalTwoSplitSTS"], "splits": {"LocalTwoSplitSTS": ["test"]}}}
    with caplog.at_level("WARNING", logger="evalharness"):
        (record,) = run(_cfg(tmp_path, minilm_config, **splits), backend=minilm_backend)
    assert record.main_score is not None
    (manifest,) = (tmp_path / "out").glob("results/*/*/experiments/*/manifest.json")
    assert json.loads(manifest.read_text())["tasks"]["LocalTwoSplitSTS"]["empty_texts"] == 1
    warnings = [r.getMessage() for r in caplog.records if "empty or whitespace-only" in r.getMessage()]
    assert warnings == ["LocalTwoSplitSTS: 1 empty or whitespace-only text(s) in the data were encoded "
                        "(as the reference does); the count is in the manifest"]  # fmt: skip


def test_an_empty_query_the_user_types_is_still_an_error(capsys):
    from evalharness.cli import main

    assert main(["prompt", "--task", "OfflineLeeSTS", "--query", "  ", "--no-tokenize"]) == 2
    assert "--query is empty or whitespace-only" in capsys.readouterr().err


# -- clear errors, exit status 2, nothing written ------------------------------------------------

FAILURES = [
    # (id, extra overrides (tmp -> list), words only the check writes)
    ("hub-offline-no-local-data", lambda t: [],
     ["task SciFact: its dataset mteb/scifact (revision", "is not on this machine and the hub is offline",
      "huggingface_hub.snapshot_download('mteb/scifact', repo_type='dataset', revision=",
      "tasks.local_root=DIR"]),
    ("local-root-lacks-the-task", lambda t: [f"tasks.local_root={_mkdir(t / 'snaps')}"],
     ["tasks.local_root={t}/snaps has no folder mteb__scifact",
      "local_dir='{t}/snaps/mteb__scifact'"]),
    ("results-dir-is-a-file", lambda t: [f"results_dir={_file(t / 'results.txt')}"],
     ["results_dir={t}/results.txt is a file, not a folder; choose another results_dir"]),
    # closed choices, checked when the config is composed: before Hydra, the task check or any model
    ("unknown-dtype", lambda t: ["model.dtype=float17"],
     ["- model.dtype='float17'; use one of auto, float32, float16, bfloat16"]),
    ("unknown-backend", lambda t: ["model.backend=onnx"],
     ["- model.backend='onnx'; use one of decoder, sentence-transformers, mteb"]),
]  # fmt: skip


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(("extra", "words"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_anticipated_failures_exit_2_without_a_traceback_and_write_nothing(tmp_path, extra, words):
    out = tmp_path / "out"
    args = ["run", "model=minilm", "benchmark=custom", "benchmark.tasks=[SciFact]", "shots=[0]",
            f"results_dir={out}", *map(str, extra(tmp_path))]  # fmt: skip
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: the run configuration has problems:\n- ")
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    for w in words:
        assert w.format(t=tmp_path) in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    results_file = tmp_path / "results.txt"
    assert not results_file.exists() or results_file.read_text() == "not a folder"


def test_verbose_shows_the_full_traceback(tmp_path):
    proc = _cli("-v", "run", "model=minilm", "benchmark=custom", "benchmark.tasks=[SciFact]", "shots=[0]",
                f"results_dir={tmp_path / 'out'}")  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "is not on this machine and the hub is offline" in proc.stderr


# -- the instruction recorded is the one applied ---------------------------------------------------


@pytest.mark.parametrize(
    ("template", "shots", "used_in"),
    [("plain", 1, []), ("no-instruction", 1, ["examples"]), ("no-instruction", 0, []),
     ("bge-icl", 1, ["query", "examples"]), ("e5", 0, ["query"])],
)  # fmt: skip
def test_the_manifest_records_an_instruction_only_where_the_template_applied_it(
    tmp_path, minilm_config, minilm_backend, template, shots, used_in
):
    cfg = _cfg(tmp_path, minilm_config, template=template, shots=[shots],
               benchmark={"tasks": ["LocalSTS"]})  # fmt: skip
    run(cfg, backend=minilm_backend)
    (manifest,) = (tmp_path / "out").glob("results/*/*/experiments/*/manifest.json")
    entry = json.loads(manifest.read_text())["tasks"]["LocalSTS"]
    assert entry["instruction_used_in"] == used_in
    if used_in:
        assert entry["instruction"] and entry["instruction_source"] == "mteb-type-default"
    else:
        assert entry["instruction"] is None and entry["instruction_source"] is None


def test_prompt_says_when_the_template_uses_no_instruction(capsys):
    from evalharness.cli import main

    args = ["prompt", "--task", "OfflineLeeSTS", "--query", "A text.", "--no-tokenize"]
    assert main([*args, "--template", "plain"]) == 0
    out = capsys.readouterr().out
    assert "instruction: none (template plain uses no task instruction)" in out
    assert main([*args, "--template", "bge-icl"]) == 0
    assert "instruction [" in capsys.readouterr().out
