"""backend=mteb: an mteb-registered model evaluated through mteb's own wrapper, in our cells.

MiniLM's packaged weights are laid out as a hub cache (at the revision mteb pins for
sentence-transformers/all-MiniLM-L6-v2), so `mteb.get_model` loads the real registry entry offline.
The same weights are also registered under a test name behind mteb's InstructSentenceTransformerModel,
the wrapper that takes an instruction string, for the few-shot rule."""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import pytest
from mteb.models.instruct_wrapper import InstructSentenceTransformerModel
from mteb.models.model_implementations import MODEL_REGISTRY

from evalharness.config import load_model_config
from evalharness.encoders.loading import resolve_source
from evalharness.examples import Example
from evalharness.plan import ConfigError, validate
from evalharness.prompts import get_template
from evalharness.results import load
from evalharness.runner import Runner
from evalharness.tasks.offline import OfflineChatterbotRetrieval, OfflineLeeSTS
from tests.configs import run_config

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
INSTRUCT = "evalharness-test/minilm-instruct"
INSTRUCT_REVISION = "0123456789abcdef0123456789abcdef01234567"
TEMPLATE = "Instruct: {instruction}\nQuery: "
TASKS = {"OfflineLeeSTS": OfflineLeeSTS, "OfflineChatterbotRetrieval": OfflineChatterbotRetrieval}


def _hub_snapshot(root: Path, repo: str, revision: str, source: Path) -> None:
    """The hub cache layout huggingface_hub reads offline: snapshots/<revision>/ and refs/main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    for f in source.rglob("*"):
        if f.is_file():
            target = folder / "snapshots" / revision / f.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)


@pytest.fixture(scope="module", autouse=True)
def hub(tmp_path_factory):
    """MiniLM in a temporary hub cache under both names; the instruct name registered with mteb."""
    import huggingface_hub.constants

    root = tmp_path_factory.mktemp("hub")
    source = Path(resolve_source("offline:minilm"))
    _hub_snapshot(root, MINILM, mteb.get_model_meta(MINILM).revision, source)
    _hub_snapshot(root, INSTRUCT, INSTRUCT_REVISION, source)
    meta = mteb.get_model_meta(MINILM).model_copy(
        update={
            "name": INSTRUCT,
            "revision": INSTRUCT_REVISION,
            "loader": InstructSentenceTransformerModel,
            "loader_kwargs": {"instruction_template": TEMPLATE, "apply_instruction_to_passages": False},
            "use_instructions": True,
        }
    )
    MODEL_REGISTRY[INSTRUCT] = meta
    with pytest.MonkeyPatch.context() as mp:
        # huggingface_hub reads the cache folder from its constants, computed at import
        mp.setenv("HF_HUB_CACHE", str(root))
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
        yield root
    MODEL_REGISTRY.pop(INSTRUCT, None)


def _cfg(tmp_path, name: str, **overrides):
    return run_config(
        load_model_config("mteb", name=name),
        {
            "benchmark": {"name": "custom", "tasks": list(TASKS)},
            "results_dir": str(tmp_path),
            "embedding_cache": None,
            "examples": {"strategy": "train"},
            "shots": [0],
        },
        overrides,
    )


def _plain_mteb(model, name: str) -> float:
    """What a plain mteb run of the model scores on the task (the run's data scale)."""
    result = mteb.evaluate(
        model, TASKS[name](scale="mini"), cache=None, co2_tracker=False, show_progress_bar=False
    )
    return result.task_results[0].get_score()


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory):
    out = tmp_path_factory.mktemp("zero")
    records = Runner(validate(_cfg(out, MINILM))).run()
    return out, records


def test_zero_shot_scores_equal_a_plain_mteb_evaluate_of_the_same_model(zero_shot):
    out, records = zero_shot
    model = mteb.get_model(MINILM)
    assert {r.task for r in records} == set(TASKS)
    for r in records:
        assert not r.skipped
        assert r.main_score == pytest.approx(_plain_mteb(model, r.task), abs=1e-6), r.task


def test_results_land_in_the_cell_folder_and_the_report_reads_them(zero_shot):
    out, records = zero_shot
    revision = mteb.get_model_meta(MINILM).revision
    (cell,) = out.glob("results/*/*/experiments/*")
    assert cell.relative_to(out).parts[1:4] == (
        "sentence-transformers__all-MiniLM-L6-v2",
        revision,
        "experiments",
    )
    assert cell.name == "examples_none__shots_0__template_e5"
    assert {r.experiment for r in records} == {cell.name}
    assert sorted(p.name for p in cell.glob("Offline*.json")) == sorted(f"{t}.json" for t in TASKS)
    manifest = json.loads((cell / "manifest.json").read_text())
    assert manifest["config"]["model"]["backend"] == "mteb"
    assert manifest["config"]["model"]["source"] == MINILM  # follows model.name
    for name in TASKS:
        entry = manifest["tasks"][name]
        assert entry["mteb_wrapper"] == "SentenceTransformerEncoderWrapper"
        assert entry["examples_in_instruction"] is False and entry["instruction"] is None
    main = load(out).main()
    assert set(main["model"]) == {MINILM} and set(main["revision"]) == {revision}
    scores = dict(zip(main["task"], main["score"], strict=True))
    assert scores == pytest.approx({r.task: r.main_score for r in records}, abs=1e-6)


def test_a_rerun_skips_the_finished_cell_without_loading_the_model(zero_shot):
    out, _ = zero_shot
    runner = Runner(validate(_cfg(out, MINILM)))
    assert all(r.skipped for r in runner.run()) and runner.backend is None


# short examples: MiniLM's window is 256 tokens, and the examples sit in front of every text
EXAMPLES = {
    "OfflineLeeSTS": [
        {"query": "The storm closed the main roads.", "response": "Heavy rain shut several highways."},
        {"query": "Talks on the ceasefire resumed.", "response": "Negotiators met again about the truce."},
    ],
    "OfflineChatterbotRetrieval": [
        {"query": "What is your favourite colour?", "response": "I like blue best."},
        {"query": "Do you sleep?", "response": "I never need to rest."},
    ],
}


def test_few_shot_puts_the_examples_into_the_wrappers_instruction(tmp_path):
    """The 2-shot cell equals a plain mteb run whose instruction template puts those same examples in
    front of the instruction; the zero-shot cell equals the plain wrapper."""
    root = tmp_path / "examples"
    root.mkdir()
    for name, rows in EXAMPLES.items():
        (root / f"{name}.json").write_text(json.dumps(rows))
    cfg = _cfg(tmp_path, INSTRUCT, shots=[0, 2], examples={"strategy": "file", "root": str(root)})
    records = Runner(validate(cfg)).run()
    by_cell = {(r.cell.shots, r.task): r.main_score for r in records}
    (cell,) = tmp_path.glob("results/*/*/experiments/*shots_2*")
    manifest = json.loads((cell / "manifest.json").read_text())
    template = get_template("e5")
    plain = mteb.get_model(INSTRUCT)
    for name in TASKS:
        entry = manifest["tasks"][name]
        assert [(e["query"], e["response"]) for e in entry["examples"]] == [
            (e["query"], e["response"]) for e in EXAMPLES[name]
        ]
        assert entry["examples_in_instruction"] is True
        assert entry["mteb_wrapper"] == "InstructSentenceTransformerModel"
        assert entry["instruction_formatted"] == TEMPLATE.format(instruction=entry["instruction"])
        assert entry["instruction_used_in"] == ["query", "examples"]
        shots = [Example(e["query"], e["response"]) for e in EXAMPLES[name]]

        def with_examples(instruction, prompt_type=None, shots=shots):
            return template.render_prefix(shots, instruction) + TEMPLATE.format(instruction=instruction)

        expected = _plain_mteb(mteb.get_model(INSTRUCT, instruction_template=with_examples), name)
        assert by_cell[(2, name)] == pytest.approx(expected, abs=1e-6), name
        assert by_cell[(0, name)] == pytest.approx(_plain_mteb(plain, name), abs=1e-6), name
        assert abs(by_cell[(2, name)] - by_cell[(0, name)]) > 1e-4  # the examples reached the model


def test_examples_that_fill_the_window_stop_the_task_instead_of_scoring_nan(tmp_path):
    """Two of Lee's documents in front of every text leave MiniLM's 256 tokens no room for the text:
    every vector is the same, which would score NaN; the task stops and writes no score."""
    cfg = _cfg(tmp_path, INSTRUCT, shots=[2], benchmark={"tasks": ["OfflineLeeSTS"]})
    with pytest.raises(FloatingPointError, match="every text got the same embedding"):
        Runner(validate(cfg)).run()
    assert not list(tmp_path.glob("results/*/*/experiments/*/OfflineLeeSTS.json"))


def test_shots_above_zero_only_for_wrappers_that_take_an_instruction(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(_cfg(tmp_path, MINILM, shots=[0, 1]))
    (problem,) = str(err.value).splitlines()
    assert "SentenceTransformerEncoderWrapper" in problem and "only 0-shot is possible" in problem
    plan = validate(_cfg(tmp_path, INSTRUCT, shots=[0, 1]))  # an instruction wrapper: accepted
    assert [c.shots for c in plan.cells] == [0, 1]
    with pytest.raises(ConfigError, match="examples=knn picks examples per query"):
        validate(_cfg(tmp_path, INSTRUCT, shots=[1], examples={"strategy": "knn"}))
    with pytest.raises(ConfigError, match=r"model\.dtype.*no effect"):
        validate(_cfg(tmp_path, MINILM, model={"dtype": "bfloat16"}))


def test_an_unknown_name_and_airbench_fail_at_validation_with_exit_2_and_no_traceback(tmp_path, capsys):
    from evalharness.cli import main

    out = tmp_path / "out"
    args = ["run", "model=mteb", "model.name=sentence-transformers/all-MiniLM-L6-v3", "benchmark=custom",
            "benchmark.tasks=[OfflineLeeSTS,AIRBench_24.04_qa_wiki_en]", "shots=[0]", f"results_dir={out}"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run configuration has problems:\n- ")
    assert "Traceback" not in err
    assert "'sentence-transformers/all-MiniLM-L6-v3' is not a model that mteb registers" in err
    assert "Did you mean sentence-transformers/all-MiniLM-L6-v2" in err
    assert "backend=mteb evaluates mteb tasks only, not the AIR-Bench datasets" in err
    assert not out.exists()


@pytest.mark.parametrize("model", ["model=mteb", "model=qwen3-embedding-0.6b"])
def test_a_model_the_offline_machine_does_not_have_is_an_error_that_says_how_to_get_it(
    tmp_path, capsys, monkeypatch, model
):
    """No hub and not in the hub cache: one `error:` line naming the download, no traceback, and no
    result or done manifest entry left behind."""
    from evalharness.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    name = ["model.name=sentence-transformers/all-MiniLM-L12-v2"] if model == "model=mteb" else []
    with pytest.raises(SystemExit) as exit_:
        main(["run", model, *name, "benchmark=custom", "benchmark.tasks=[OfflineLeeSTS]", "shots=[0]",
              f"results_dir={out}", "embedding_cache=null"])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model ") and "Traceback" not in err
    assert "hf download" in err and "model.source to a local folder" in err
    assert not list(out.rglob("OfflineLeeSTS.json"))
    assert not any(json.loads(m.read_text()).get("tasks") for m in out.rglob("manifest.json"))
