"""Where a result came from: library versions, the code's git revision, digests of input files.

Both the run manifests and the training manifest record these, so they live apart from either."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from pathlib import Path


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "evalharness",
        "mteb",
        "torch",
        "transformers",
        "sentence-transformers",
        "datasets",
        "hydra-core",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def git_revision() -> str | None:
    """The checkout's commit; None for an installed package (a virtualenv inside some other repository
    must not lend that repository's commit)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def file_digest(path: str | None) -> str | None:
    """A file's or a folder's content (names and bytes), so an edited example or instruction file
    changes a cell's fingerprint."""
    if not path:
        return None
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
