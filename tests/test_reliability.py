"""Bad input fails early and clearly; crashes, kills and concurrent runs never corrupt results; runs
are reproducible; numerics and odd inputs have defined behaviour."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from evalharness.config import RunConfig
from evalharness.plan import ConfigError, validate
from evalharness.runner import Runner, run
from tests import local_tasks
from tests.configs import run_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _register_local_tasks():
    local_tasks.register()


class ForbiddenBackend:
    """Stands in for the model: any forward pass means an error was found too late."""

    tokens_encoded = 0

    def embed(self, *args, **kwargs):
        raise AssertionError("the model must not run for bad input")


def _cfg(tmp_path, minilm_config, **overrides) -> RunConfig:
    return run_config(
        minilm_config,
        {
            "benchmark": {"name": "custom", "tasks": ["LocalRetrieval"]},
            "results_dir": str(tmp_path / "out"),
            "shots": [0, 1],
            "embedding_cache": None,
        },
        overrides,
    )


def _examples(tmp_path, name: str, content: bytes) -> str:
    root = tmp_path / "examples"
    root.mkdir(exist_ok=True)
    (root / name).write_bytes(content)
    return str(root)


def _snapshot(tmp_path, corpus_lines: list[str]) -> str:
    d = tmp_path / "snap" / "mteb__scifact" / "corpus"
    d.mkdir(parents=True)
    (d / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n")
    return str(tmp_path / "snap")


# (id, overrides builder, expected message fragment). Each fragment holds words that only the check
# itself writes (what is wrong and the fix), never just an echo of the input value or of a path: an
# echo would also match an unrelated error about the same value (see the test's own guard).
BAD_INPUTS = [
    ("shots-not-int", lambda t: {"shots": [0, "x"]}, "every value must be an integer (e.g. shots=[0,1,3])"),
    ("shots-negative", lambda t: {"shots": [-2]}, "is invalid; use 0 or more (-1: all examples of a file)"),
    ("template-unknown", lambda t: {"template": "bge"}, "unknown template 'bge'; known: bge-icl"),
    ("strategy-unknown", lambda t: {"examples": {"strategy": "random"}}, "examples.strategy='random'; use one of none, file, train, knn"),
    ("scale-unknown", lambda t: {"benchmark": {"scale": "huge"}}, "benchmark.scale='huge'; use mini or full"),
    ("benchmark-unknown", lambda t: {"benchmark": {"name": "MTEB(eng, v9)", "tasks": []}}, "unknown benchmark 'MTEB(eng, v9)'. Did you mean"),
    ("task-unknown", lambda t: {"benchmark": {"tasks": ["LocalRetreival"]}}, "unknown task 'LocalRetreival'. Did you mean 'LocalRetrieval'"),
    ("task-filter-empty", lambda t: {"benchmark": {"task_types": ["BitextMining"]}}, "no tasks left for benchmark="),
    ("instructions-missing", lambda t: {"instructions": str(t / "nope.yaml")}, "does not exist. Give a YAML or JSON file that maps mteb task names"),
    ("examples-root-missing", lambda t: {"examples": {"strategy": "file", "root": str(t / "none")}}, "is not a folder; point it at the per-task example files"),
    ("example-file-missing", lambda t: {"examples": {"strategy": "file", "root": _examples(t, "Other.csv", b"q,r\na,b\n")}}, "no example file for task 'LocalRetrieval'"),
    ("example-row-malformed", lambda t: {"examples": {"strategy": "file", "root": _examples(t, "LocalRetrieval.csv", b'query,pos\n"a","b"\n"x","y","z"\n')}}, "LocalRetrieval.csv:3: expected 2 columns (query,pos), got 3"),
    ("example-pool-too-small", lambda t: {"shots": [2], "examples": {"strategy": "file", "root": _examples(t, "LocalRetrieval.csv", b"query,pos\na,b\n")}}, "has only 1 examples; lower shots or add examples"),
    ("example-not-utf8", lambda t: {"examples": {"strategy": "file", "root": _examples(t, "LocalRetrieval.csv", b"query,pos\ncaf\xe9,b\n")}}, "LocalRetrieval.csv:2: not valid UTF-8 (byte 0xe9)"),
    ("example-query-equals-response", lambda t: {"examples": {"strategy": "file", "root": _examples(t, "LocalRetrieval.json", b'[{"query": "same", "response": "same"}]')}}, "has examples whose query equals the response"),
    ("train-pool-too-small", lambda t: {"shots": [5]}, "cannot sample 5 examples from a pool of 3"),
    ("train-split-is-evaluated", lambda t: {"examples": {"split": "test"}}, "is one of its eval_splits"),
    ("local-root-missing", lambda t: {"tasks": {"local_root": str(t / "nowhere")}}, "is not a directory; create it or unset it"),
    ("mapping-dir-missing", lambda t: {"tasks": {"mapping": {"LocalRetrieval": str(t / "gone")}}}, "does not exist; fix the mapping"),
    ("snapshot-duplicate-ids", lambda t: {"benchmark": {"tasks": ["SciFact"]}, "tasks": {"local_root": _snapshot(t, ['{"_id": "d1", "text": "a"}', '{"_id": "d1", "text": "b"}'])}}, "corpus.jsonl:2: duplicate id 'd1' (first on line 1)"),
    ("airbench-version-unknown", lambda t: _air(t, version="AIR-Bench_24.06"), "unknown AIR-Bench version 'AIR-Bench_24.06'; valid versions:"),
    ("airbench-domain-unknown", lambda t: _air(t, domains=["cooking"]), "unknown AIR-Bench domain 'cooking' for AIR-Bench_24.04; valid domains:"),
    ("airbench-language-unknown", lambda t: _air(t, languages=["xx"]), "unknown AIR-Bench language 'xx' for AIR-Bench_24.04; valid languages:"),
    ("results-dir-is-a-file", lambda t: {"results_dir": str(_file(t / "results.txt"))}, "is a file, not a folder; choose another results_dir"),
    ("model-name-without-organization", lambda t: {"model": {"name": "my-embedder"}}, "must be in the format 'organization/model_name'; e.g. model.name=my-org/"),
]  # fmt: skip


def _air(tmp_path: Path, **airbench) -> dict:
    return {
        "benchmark": {"name": "air-bench", "tasks": [], "airbench": {"data_dir": str(tmp_path), **airbench}}
    }


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    ("overrides", "message"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_reported_before_anything_is_loaded_or_written(
    tmp_path, minilm_config, overrides, message
):
    given = overrides(tmp_path)
    # the fragment must be the check's own words: neither the input nor the test's folder holds it
    assert message not in repr(given) and message not in str(tmp_path)
    cfg = _cfg(tmp_path, minilm_config, **given)
    with pytest.raises(ConfigError) as err:
        run(cfg, backend=ForbiddenBackend())
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_all_problems_are_reported_at_once(tmp_path, minilm_config):
    cfg = _cfg(
        tmp_path, minilm_config, shots=[0, "x"], template="bge", benchmark={"tasks": ["LocalRetreival"]}
    )
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("- ") for line in lines)


def test_invalid_model_settings_fail_when_the_config_is_built(minilm_config):
    with pytest.raises(ValueError, match="model.backend='onnx'"):
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(minilm_config), {"backend": "onnx"}))


def test_stale_results_from_other_settings_are_refused(tmp_path, minilm_config, minilm_backend):
    run(_cfg(tmp_path, minilm_config, shots=[0]), backend=minilm_backend)
    changed = _cfg(tmp_path, minilm_config, shots=[0], model={"passage_max_length": 64})
    with pytest.raises(ConfigError, match="different settings"):
        run(changed, backend=ForbiddenBackend())


def test_a_corrupt_result_file_is_reported_and_redone(tmp_path, minilm_config, minilm_backend, caplog):
    cfg = _cfg(tmp_path, minilm_config, shots=[0])
    (first,) = run(cfg, backend=minilm_backend)
    (result,) = (tmp_path / "out").glob("results/*/*/experiments/*/LocalRetrieval.json")
    result.write_text(result.read_text()[:50])  # truncated
    (again,) = run(cfg, backend=minilm_backend)
    assert not again.skipped and again.main_score == first.main_score
    assert "is corrupt" in caplog.text
    json.loads(result.read_text())


# -- numerics and input hygiene ---------------------------------------------------------------


class NonFiniteBackend:
    """One component of the first vector is NaN, +inf or -inf (float16 overflow gives either)."""

    tokens_encoded = 0

    def __init__(self, value: float) -> None:
        self.value = value

    def embed(self, items, batch_size):
        out = np.ones((len(items), 4), dtype=np.float32)
        out[0, 0] = self.value
        return out


class ConstantBackend:
    tokens_encoded = 0

    def embed(self, items, batch_size):
        return np.ones((len(items), 4), dtype=np.float32)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (NonFiniteBackend(np.nan), "the model produced NaN/inf embeddings"),
        (NonFiniteBackend(np.inf), "the model produced NaN/inf embeddings"),
        (NonFiniteBackend(-np.inf), "the model produced NaN/inf embeddings"),
        (ConstantBackend(), "every text got the same embedding"),
    ],
    ids=["nan", "+inf", "-inf", "constant"],
)
def test_broken_vectors_stop_the_task_and_write_no_score(tmp_path, minilm_config, backend, message):
    with pytest.raises(FloatingPointError, match=message):
        run(_cfg(tmp_path, minilm_config, shots=[0]), backend=backend)
    assert not list((tmp_path / "out").glob("results/**/LocalRetrieval.json"))


def test_empty_passage_is_encoded_and_long_texts_are_counted(smollm2_config, smollm2_backend):
    from mteb.types import PromptType

    from evalharness.encoders import ICLEncoder

    enc = ICLEncoder(smollm2_config, backend=smollm2_backend)
    before = smollm2_backend.n_truncated
    vecs = enc.encode(
        [{"text": ["", "   ", "word " * 2000]}],
        task_metadata=local_tasks.LocalRetrieval.metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )
    assert np.isfinite(vecs).all() and vecs.shape[0] == 3
    assert smollm2_backend.n_truncated == before + 1  # recorded per task in the manifest


# -- reproducibility ---------------------------------------------------------------------------

# timings, and run statistics that legitimately depend on what an earlier (killed) run had cached
VOLATILE = {
    "evaluation_time", "evaluation_phases", "date", "kg_co2_emissions", "wall_time_s", "cache",
    "config", "git_revision", "tokens_encoded", "n_truncated",
}  # fmt: skip


def _stable(obj):
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _result_files(root: Path) -> dict[str, object]:
    out = {}
    for f in sorted(root.glob("results/*/*/experiments/*/*.json")):
        if f.name != "model_meta.json":
            # canonical text, so that NaN metrics compare equal (NaN != NaN as floats)
            out[str(f.relative_to(root))] = json.dumps(_stable(json.loads(f.read_text())), sort_keys=True)
    return out


def test_fixed_seed_sweep_is_reproducible(tmp_path, minilm_config, minilm_backend):
    for name in ("a", "b"):
        cfg = _cfg(
            tmp_path / name,
            minilm_config,
            shots=[0, 2],
            seed=[3],
            benchmark={"tasks": ["LocalRetrieval", "LocalClassification"]},
        )
        Runner(validate(cfg), backend=minilm_backend).run()
    a, b = _result_files(tmp_path / "a" / "out"), _result_files(tmp_path / "b" / "out")
    assert len(a) == 6 and a == b  # 2 cells x (2 tasks + manifest)


# -- kills and concurrency -----------------------------------------------------------------------

BOGUS = 0.123456  # a score no run here produces


def test_a_kill_mid_write_leaves_nothing_that_a_rerun_trusts(tmp_path, minilm_config, minilm_backend):
    """The state a SIGKILL inside the atomic writes leaves, made on purpose (a real kill almost never
    lands there): the task's staging folders, one holding a whole staged result and one a truncated
    one, and a manifest temp file that already lists the task as done. The re-run removes them all,
    computes the task, and none of their content reaches a result file, the manifest or the report."""
    from mteb.results import TaskResult

    from evalharness.results import load

    cfg = _cfg(tmp_path, minilm_config, shots=[0], benchmark={"tasks": ["LocalRetrieval", "LocalSTS"]})
    plan = validate(cfg)

    def killed_in_sts(cell, task):
        if task == "LocalSTS":
            raise RuntimeError("simulated kill")

    with pytest.raises(RuntimeError, match="simulated kill"):
        Runner(plan, backend=minilm_backend, raise_inside=killed_in_sts).run()
    root = tmp_path / "out"
    (exp_dir,) = root.glob("results/*/*/experiments/*")
    assert not (exp_dir / "LocalSTS.json").exists()
    # what AtomicResultCache had staged (the same layout below the staging folder) when the kill came
    bogus = TaskResult.from_task_results(
        local_tasks.LocalSTS(),
        {"test": {"default": {"cosine_spearman": BOGUS, "main_score": BOGUS}}},
        evaluation_time=1.0,
    )
    staged = []
    for truncate in (False, True):
        staging = Path(tempfile.mkdtemp(dir=exp_dir, prefix=".staging-LocalSTS-"))
        path = staging / exp_dir.relative_to(root) / "LocalSTS.json"
        path.parent.mkdir(parents=True)
        bogus.to_disk(path)
        if truncate:
            path.write_text(path.read_text()[:60])
        staged.append(staging)
    manifest = json.loads((exp_dir / "manifest.json").read_text())
    assert set(manifest["tasks"]) == {"LocalRetrieval"}
    claimed = {
        **manifest["tasks"]["LocalRetrieval"],
        "main_score": BOGUS,
        "main_score_name": "cosine_spearman",
    }
    (exp_dir / "manifest.json.k1ll3d.tmp").write_text(
        json.dumps({**manifest, "tasks": {**manifest["tasks"], "LocalSTS": claimed}})
    )

    records = Runner(plan, backend=minilm_backend).run()
    assert [(r.task, r.skipped) for r in records] == [("LocalRetrieval", True), ("LocalSTS", False)]
    assert not list(root.rglob(".staging-*")) and not list(root.rglob("*.tmp"))
    score = records[1].main_score
    assert score is not None and score != pytest.approx(BOGUS)
    assert TaskResult.from_disk(exp_dir / "LocalSTS.json").get_score() == pytest.approx(score)
    entry = json.loads((exp_dir / "manifest.json").read_text())["tasks"]["LocalSTS"]
    assert entry["main_score"] == pytest.approx(score)
    report = load(root)
    sts = report.main().query("task == 'LocalSTS'")
    assert report.problems == [] and list(sts["score"]) == [pytest.approx(score)]


# -- kills and concurrency (real subprocesses) ---------------------------------------------------


def _cli(args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "evalharness.cli", "run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


SWEEP = ["model=minilm", "benchmark=offline-mini", "shots=[0,1]", "embedding_cache=null"]


def test_killed_run_resumes_to_the_same_results(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = _cli([*SWEEP, f"results_dir={killed}"])
    deadline = time.monotonic() + 300
    while not list(killed.glob("results/*/*/experiments/*/Offline*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let it get into the next task
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(list(killed.glob("results/*/*/experiments/*/Offline*.json")))
    assert 1 <= n_before < 10
    resumed = _cli([*SWEEP, f"results_dir={killed}"])
    reference = _cli([*SWEEP, f"results_dir={clean}"])
    for p in (resumed, reference):
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
    assert not list(killed.rglob(".staging-*")) and not list(killed.rglob("*.tmp"))
    assert _result_files(killed) == _result_files(clean)


def test_two_concurrent_runs_on_one_results_folder(tmp_path):
    out = tmp_path / "shared"
    procs = [_cli([*SWEEP, f"results_dir={out}", "benchmark.tasks=[OfflineLeeSTS,OfflineChatterbotRetrieval]"])
             for _ in range(2)]  # fmt: skip
    logs = ""
    for p in procs:
        stdout, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        logs += stdout + err
    files = _result_files(out)
    manifests = {k: json.loads(v) for k, v in files.items() if k.endswith("manifest.json")}
    assert len(files) == 6 and len(manifests) == 2
    for m in manifests.values():
        assert set(m["tasks"]) == {"OfflineLeeSTS", "OfflineChatterbotRetrieval"}
    # 2 cells x 2 tasks: each computed by one process and found done by the other
    computed = re.findall(r"\] cell \d+/\d+ (shots=\S+ .*?) \| (\w+): ", logs)
    skipped = re.findall(r"\] (shots=\S+ .*?) (\w+): done earlier, skipped", logs)
    assert len(computed) == len(set(computed)) == 4, logs[-3000:]
    assert sorted(skipped) == sorted(computed)


class SlowWordsBackend:
    """Bag-of-words vectors (deterministic, no model), slowly: one (cell, task) lasts long enough that
    a second runner started at the same moment reaches it while the first still computes it."""

    tokens_encoded = 0

    def embed(self, items, batch_size):
        time.sleep(0.2)
        out = np.zeros((len(items), 64), dtype=np.float32)
        for i, item in enumerate(items):
            for word in re.findall(r"\w+", item.text.lower()):
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
        return out


def test_concurrent_runners_compute_each_cell_and_task_exactly_once(tmp_path, minilm_config):
    """Two runners on one results folder, started together: every (cell, task) is computed by one of
    them, and the other waits for it and finds it done (the per-task lock, then the manifest re-read)."""
    cfg = _cfg(tmp_path, minilm_config, shots=[0, 1], benchmark={"tasks": ["LocalRetrieval", "LocalSTS"]})
    plan = validate(cfg)
    names, cells = plan.names, plan.cells
    start = threading.Barrier(2, timeout=60)
    records: list[list] = [[], []]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            records[i] = Runner(plan, backend=SlowWordsBackend()).run()
        except BaseException as err:  # re-raised below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    units = Counter((cell, name) for cell in cells for name in names)
    computed = Counter((r.cell, r.task) for rs in records for r in rs if not r.skipped)
    skipped = Counter((r.cell, r.task) for rs in records for r in rs if r.skipped)
    assert computed == units and skipped == units  # once each, and once found done
    for exp_dir in (tmp_path / "out").glob("results/*/*/experiments/*"):
        manifest = json.loads((exp_dir / "manifest.json").read_text())
        assert set(manifest["tasks"]) == set(names)
