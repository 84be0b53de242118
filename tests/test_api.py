"""The public Python API (evalharness/api.py): the README's Python quickstart runs as written, the
encoder `load_model` gives `mteb.evaluate` scores what the `evaluate` cell scores, and every config is
composed in one place (`run_config` = what `evalharness run` composes for the same overrides)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evalharness import api
from evalharness.config import RunConfig

REPO = Path(__file__).resolve().parent.parent


def readme_python_quickstart() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text.split("The same from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_readmes_python_quickstart_runs_and_mteb_scores_what_the_cell_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = readme_python_quickstart()
    assert "evalharness.evaluate(" in code and "mteb.evaluate(" in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    main = namespace["results"].main()
    lee = main[main["task"] == "OfflineLeeSTS"].set_index("shots")["score"]
    assert sorted(lee.index) == [0, 2]
    out = tmp_path / "results" / "quick"
    for name in ("report.md", "report.html", "scores.csv", "significance.csv"):
        assert (out / name).is_file()
    sig = namespace["rep"].significance.tasks
    assert list(sig["task"]) == ["OfflineLeeSTS"] and sig["delta"].notna().all()
    # the 2-shot encoder inside a plain mteb.evaluate scores exactly the harness's 2-shot cell
    (task_result,) = namespace["scores"].task_results
    assert task_result.get_score() == pytest.approx(lee[2], abs=5e-6)  # mteb rounds the stored score


def test_run_config_is_what_the_command_line_composes():
    cfg = api.run_config("minilm", ["examples=knn", "model.batch_size=8"], shots=[0, 5], results_dir="r")
    assert isinstance(cfg, RunConfig)
    same = api.compose("config", ["model=minilm", "examples=knn", "model.batch_size=8", "shots=[0,5]",
                                  "results_dir=r"])  # fmt: skip
    assert cfg == same
    with pytest.raises(ValueError, match="model.dtype='float17'; use one of auto, float32"):
        api.run_config("minilm", ["model.dtype=float17"])
    with pytest.raises(Exception, match="nmae"):  # a typo in a key fails as Hydra fails it
        api.run_config("minilm", benchmark={"nmae": "x"})


def test_the_package_root_exports_the_api_lazily():
    import evalharness.reporting  # the module that builds reports is not named like the function

    assert evalharness.evaluate is api.evaluate and evalharness.report is api.report
    assert evalharness.ICLEncoder.__name__ == "ICLEncoder"
    assert set(evalharness.__all__) == {"ICLEncoder", "compose", "evaluate", "load_model", "report",
                                        "run_config", "train"}  # fmt: skip
    with pytest.raises(AttributeError):
        evalharness.nothing_here  # noqa: B018


def test_every_anticipated_failure_shares_one_base_and_carries_its_problems_as_data():
    from evalharness import errors
    from evalharness.airbench.tasks import AirBenchError
    from evalharness.encoders.attention import AttentionError
    from evalharness.encoders.loading import ModelLoadError
    from evalharness.examples import ExampleError
    from evalharness.instructions import InstructionError
    from evalharness.plan import ConfigError
    from evalharness.prompts import PromptError
    from evalharness.tasks.offline.common import OfflineDataMissingError
    from evalharness.tasks.resolve import TaskResolutionError
    from evalharness.train.data import TrainDataError

    for cls in (AirBenchError, AttentionError, ConfigError, ExampleError, InstructionError, ModelLoadError,
                OfflineDataMissingError, PromptError, TaskResolutionError, TrainDataError):  # fmt: skip
        assert issubclass(cls, errors.EvalharnessError), cls
    with pytest.raises(errors.ChoiceError) as caught:
        api.run_config("minilm", ["model.dtype=float17"])
    (problem,) = caught.value.problems
    assert (problem.key, problem.value, problem.choices) == ("model.dtype", "float17", ("auto", "float32",
                                                                                       "float16", "bfloat16"))  # fmt: skip
    listed = ConfigError(["a is wrong; fix a", "b is wrong; fix b", "a is wrong; fix a"])
    assert str(listed) == "- a is wrong; fix a\n- b is wrong; fix b"  # every problem once, listed
    assert [p.message for p in listed.problems] == ["a is wrong; fix a", "b is wrong; fix b"]
    assert str(ExampleError("one thing")) == "one thing" and isinstance(ExampleError("x"), ValueError)


def readme_cli_quickstart() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Usage\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("evalharness ")]


def test_the_readmes_cli_quickstart_runs_offline_as_written(tmp_path):
    """Every command of the README's Usage block, in order, in a fresh folder: exit 0, and each does
    what its comment says (the prompt shows its two examples, the sweep's cells are in the report)."""
    import os
    import shlex
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    lines = readme_cli_quickstart()
    assert [shlex.split(line)[1] for line in lines] == ["models", "tasks", "prompt", "run", "report"]
    outputs = []
    for line in lines:
        args = shlex.split(line)[1:]
        proc = subprocess.run([sys.executable, "-m", "evalharness.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    assert "minilm" in outputs[0] and "OfflineLeeSTS" in outputs[1]
    assert outputs[2].count("<instruct>") == 3  # two examples, then the query
    report = (tmp_path / "results" / "report.md").read_text(encoding="utf-8")
    assert "0-shot" in report and "2-shot train 2 seeds" in report  # seed=[0,1]: one column, two seeds
