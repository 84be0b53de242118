"""The documentation: the MkDocs site (mkdocs.yml, docs/) builds with `--strict` (a broken link or
anchor between pages fails it), its API page carries the docstrings of `evalharness.api`, and every
link of the README into docs/ leads to a page that exists."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _text(page: Path) -> str:
    """A built page as plain text: tags dropped, entities decoded, whitespace collapsed."""
    raw = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
    return re.sub(r"\s+", " ", html.unescape(raw))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs tools are in the dev extra: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "NO_MKDOCS_2_WARNING": "1",  # material's banner about its successor, not a build warning
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def test_the_site_builds_strict_with_every_page(site):
    pages = sorted(p.stem for p in (REPO / "docs").glob("*.md"))
    for name in pages:
        built = site / "index.html" if name == "index" else site / name / "index.html"
        assert built.is_file(), f"docs/{name}.md was not built"


def test_the_api_page_carries_the_docstrings_of_evalharness_api(site):
    text = _text(site / "api" / "index.html")
    assert "Evaluate model zero- and few-shot" in text  # evalharness.api.evaluate's first line
    for name in ("evaluate", "report", "train", "load_model", "run_config", "compose"):
        assert re.search(rf"\b{name}\b", text), name


def test_every_readme_link_into_docs_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)\s]*)?\)", readme)
    assert links, "the README links no docs page"
    missing = sorted({link for link in links if not (REPO / link).is_file()})
    assert not missing, f"README links to missing pages: {missing}"
    linked = {Path(link).name for link in links}
    unlinked = sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name not in linked)
    assert not unlinked, f"docs pages the README's Documentation list does not link: {unlinked}"
