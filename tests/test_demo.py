"""The demo is what the code produces: repeat runs give the same scores and leave the committed
`results/demo` byte for byte as it was, on any x86-64 host (pinned kernels); a changed result is
written and named."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalharness import kernels
from evalharness.demo import run_demo, same_content, snapshot_files

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "results" / "demo"


def _all_files(root: Path) -> dict[str, bytes]:
    """What git tracks: lock files (`.<Task>.lock`, ignored by .gitignore) are the runner's own."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def _main_scores(root: Path) -> dict[str, float]:
    return {
        str(p.relative_to(root)): json.loads(p.read_text())["scores"]["test"][0]["main_score"]
        for p in sorted(root.glob("results/*/*/experiments/*/*.json"))
        if p.name not in ("manifest.json", "model_meta.json")
    }


@pytest.fixture(scope="module")
def minilm_demo(tmp_path_factory):
    """The demo's minilm half, run twice into one folder."""
    root = tmp_path_factory.mktemp("demo")
    run_demo(root, ["minilm"], [0, 1])
    first = _all_files(root)
    _, text = run_demo(root, ["minilm"], [0, 1])
    return root, first, text


def test_two_demo_runs_give_identical_scores_and_files(minilm_demo):
    root, first, text = minilm_demo
    assert len(_main_scores(root)) == 10  # 5 tasks x 2 cells
    assert _all_files(root) == first  # results, manifests, report, csv, plots: byte for byte
    assert "every result is identical to the one already in" in text


def test_a_changed_result_is_written_and_named(minilm_demo, tmp_path):
    root, _, _ = minilm_demo
    copy = tmp_path / "demo"
    shutil.copytree(root, copy)
    (target,) = copy.glob("results/*/*/experiments/*shots_0*/OfflineLeeSTS.json")
    true_score = json.loads(target.read_text())["scores"]["test"][0]["main_score"]
    data = json.loads(target.read_text())
    data["scores"]["test"][0]["main_score"] = 0.123  # a stale or tampered number
    target.write_text(json.dumps(data))
    _, text = run_demo(copy, ["minilm"], [0])
    assert json.loads(target.read_text())["scores"]["test"][0]["main_score"] == true_score
    assert "file(s) changed" in text and "OfflineLeeSTS.json" in text


def test_same_content_ignores_only_run_statistics():
    old = json.dumps({"scores": {"test": [{"main_score": 0.5}]}, "evaluation_time": 1.0, "date": 1}).encode()
    assert same_content(old, json.dumps({"scores": {"test": [{"main_score": 0.5}]}, "evaluation_time": 9.0,
                                         "date": 2}).encode(), "T.json")  # fmt: skip
    assert not same_content(old, json.dumps({"scores": {"test": [{"main_score": 0.51}]}}).encode(), "T.json")
    assert not same_content(b"a,b\n1,2\n", b"a,b\n1,3\n", "scores.csv")
    # a fresh install's newer library versions are provenance, like the git revision; numbers are not
    manifest = {"versions": {"transformers": "5.24.0"}, "tasks": {"T": {"main_score": 0.5}}}
    newer = {"versions": {"transformers": "5.25.0"}, "tasks": {"T": {"main_score": 0.5}}}
    assert same_content(json.dumps(manifest).encode(), json.dumps(newer).encode(), "manifest.json")
    moved = {"versions": {"transformers": "5.25.0"}, "tasks": {"T": {"main_score": 0.51}}}
    assert not same_content(json.dumps(manifest).encode(), json.dumps(moved).encode(), "manifest.json")
    settings = {"task": "T", "version": {"transformers": "5.24.0"}, "splits": ["test"]}
    line = json.dumps(settings) + "\n"
    assert same_content(line.encode(), line.replace("5.24.0", "5.25.0").encode(), "run_settings.jsonl")
    assert not same_content(line.encode(), line.replace('"test"', '"dev"').encode(), "run_settings.jsonl")
    config = {"config": {"airbench": {"version": "AIR-Bench_24.04"}}}  # "version" elsewhere is content
    other = {"config": {"airbench": {"version": "AIR-Bench_24.05"}}}
    assert not same_content(json.dumps(config).encode(), json.dumps(other).encode(), "manifest.json")


@pytest.mark.slow
@pytest.mark.skipif(
    not kernels.can_pin(),
    reason="results/demo was computed with the pinned AVX2 kernels, which this CPU cannot run (x86-64 "
    "with AVX2 and FMA needed); here the last digits may differ",
)
def test_the_committed_demo_is_what_the_code_produces(tmp_path):
    """A fresh run of the whole demo over a copy of results/demo changes no file: what `make demo` on
    a clean checkout does, on any x86-64 host, and why `git status` stays clean after it. It runs the
    command itself (`evalharness demo`), so the kernels are pinned however pytest was started."""
    copy = tmp_path / "results" / "demo"
    shutil.copytree(COMMITTED, copy)
    before = _all_files(copy)
    done = subprocess.run(  # the report names the folder as `make demo` does: results/demo
        [sys.executable, "-m", "evalharness.cli", "demo", "--models", "minilm", "smollm2-135m"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CPU kernels: pinned to AVX2" in done.stdout
    changed = sorted(k for k, v in _all_files(copy).items() if before.get(k) != v)
    assert changed == [], done.stdout[-3000:]
    assert snapshot_files(copy).keys() == snapshot_files(COMMITTED).keys()


def test_the_committed_trained_model_results_come_from_the_current_preset():
    """The trained model's demo results are not recomputed here (that means training it, minutes of
    CPU); they are filed under the revision that names the offline preset's digest, so results of an
    older preset cannot pass for the current one."""
    from evalharness.config import load_model_config
    from evalharness.train.offline import preset_digest

    config = load_model_config("smollm2-135m-icl")
    folder = COMMITTED / "results" / config.name.replace("/", "__")
    assert [p.name for p in folder.iterdir() if p.is_dir()] == [f"train-offline-{preset_digest()}"]
    assert load_model_config("smollm2-135m-icl").revision == f"train-offline-{preset_digest()}"


def test_the_demo_drops_results_of_an_older_revision_of_its_models(tmp_path, capsys):
    """A changed preset gives the trained model a new revision: the demo keeps only the current one's
    results, so the report never shows an older preset's numbers beside the new ones."""
    from evalharness.demo import prune_other_revisions

    folder = tmp_path / "results" / "org__model"
    for rev in ("train-offline-old", "train-offline-new"):
        (folder / rev / "experiments").mkdir(parents=True)
    (tmp_path / "results" / "other__model" / "rev1").mkdir(parents=True)
    assert prune_other_revisions(tmp_path, "org/model", "train-offline-new") == [folder / "train-offline-old"]
    assert sorted(p.name for p in folder.iterdir()) == ["train-offline-new"]
    assert (tmp_path / "results" / "other__model" / "rev1").is_dir()  # other models are not touched
    assert "older revision of org/model" in capsys.readouterr().out
    # nothing is removed while the current revision has no results (a run that failed early)
    assert prune_other_revisions(tmp_path, "org/model", "train-offline-newer") == []
