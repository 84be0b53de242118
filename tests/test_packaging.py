"""`pip install` gives a working tool: every imported package is declared, and a wheel installed into a
fresh virtualenv outside the checkout finds its configs and scores what the editable install scores."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from evalharness.config import CONF_DIR

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "evalharness"

#: Imported only where a user asks for them, and installed apart: air-benchmark with --no-deps (its
#: pytrec-eval requirement does not build; pytrec-eval-terrier provides the module), faiss optional.
OPTIONAL_IMPORTS = {"air_benchmark", "faiss"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"evalharness", "__future__"}


def test_every_directly_imported_package_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_normalise(re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0]) for r in project["dependencies"]}
    providers = packages_distributions()
    undeclared = {}
    for module in sorted(_imported_modules() - OPTIONAL_IMPORTS):
        dists = {_normalise(d) for d in providers.get(module, [])}
        assert dists, f"{module} is imported but no installed distribution provides it"
        if not dists & declared:
            undeclared[module] = sorted(dists)
    assert undeclared == {}, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def _scores(results: Path) -> dict[str, float]:
    return {
        p.parent.name: json.loads(p.read_text())["scores"]["test"][0]["main_score"]
        for p in results.rglob("OfflineLeeSTS.json")
        if p.parent.name != "per_item"
    }


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_runs_from_anywhere(tmp_path):
    """Build the wheel, install it into a fresh virtualenv that borrows this one's dependencies (not its
    editable evalharness), and run the CLI from a folder that is not the checkout."""
    source, dist = tmp_path / "source", tmp_path / "dist"  # a copy: an in-tree build leaves build/ behind
    shutil.copytree(PACKAGE, source / "evalharness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = dist.glob("evalharness-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"evalharness/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert configs and configs <= shipped, sorted(configs - shipped)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # a path line, so the dependencies load from here but this venv's .pth files (the editable
    # install's finder among them) are not processed
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)

    def cli(exe: Path | str, *args: str, cache: str) -> str:
        done = subprocess.run(
            [str(exe), *args], cwd=elsewhere, env={**env, "EVALHARNESS_CACHE": str(tmp_path / cache)},
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, f"{exe} {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run(
        [python, "-c", "import evalharness.config as c; print(c.__file__); print(c.CONF_DIR)"],
        cwd=elsewhere, env=env, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the wheel's copy, not the checkout

    installed = venv / "bin" / "evalharness"
    assert "smollm2-135m" in cli(installed, "models", cache="c-wheel")
    run = ["model=minilm", "benchmark=custom", "benchmark.tasks=[OfflineLeeSTS]", "shots=[0,1]"]
    cli(installed, "run", *run, "results_dir=from-wheel", cache="c-wheel")
    report = cli(installed, "report", "from-wheel", cache="c-wheel")
    assert "OfflineLeeSTS" in report and (elsewhere / "from-wheel" / "report.md").is_file()
    manifest = json.loads(next((elsewhere / "from-wheel").rglob("manifest.json")).read_text())
    assert manifest["git_revision"] is None  # an installed package has no checkout to name

    editable = Path(sys.executable).parent / "evalharness"
    cli(editable, "run", *run, "results_dir=from-checkout", cache="c-checkout")
    wheel_scores = _scores(elsewhere / "from-wheel")
    assert len(wheel_scores) == 2  # the 0- and the 1-shot cell
    assert wheel_scores == _scores(elsewhere / "from-checkout")
