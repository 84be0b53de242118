"""The offline demo: the packaged models and SmolLM2 trained by `evalharness train`'s offline preset
(base vs trained, side by side), zero- vs few-shot on offline-mini, then the report.

The demo's results are committed (`results/demo`), so they must be what the code produces and a
repeat run must leave them untouched, on any host. Three things make that hold:

- every cell is recomputed with an in-memory embedding cache, so no vector comes from what other runs
  (older code, other batch shapes) left in the shared on-disk cache: such vectors differ in the last
  bits, enough to flip a classifier's decision (the demo's SmolLM2 0-shot Pang & Lee score once moved
  by 0.16 points that way);
- `evalharness demo` runs with the float kernels pinned (`evalharness/kernels.py`), so the numbers are
  the same on every x86-64 host with AVX2, not only on CPUs that round like the one that made them;
- files whose content is unchanged apart from run statistics (timings, dates, cache counters, the git
  revision) are put back byte for byte, so `git status` stays clean when the science did not change,
  and any change in a score, an example or a setting is written and shows up in the diff.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: MiniLM (an encoder baseline), SmolLM2 as shipped, SmolLM2 after the offline training preset (trained
#: into the cache on first use).
DEMO_MODELS = ("minilm", "smollm2-135m", "smollm2-135m-icl")

#: Keys that differ between identical runs: timings, dates, cache statistics and where the code came
#: from (the git revision, and the library versions a fresh install picks: a new transformers release
#: changes the manifests' `versions` and mteb's run_settings `version`, not a number; the numbers
#: themselves are compared, so a release that moves one still shows).
VOLATILE = frozenset(
    {
        "evaluation_time", "evaluation_phases", "date", "kg_co2_emissions", "wall_time_s", "cache",
        "tokens_encoded", "git_revision", "versions",
    }
)  # fmt: skip
#: Keys volatile only in one kind of file (a generic name elsewhere, e.g. an AIR-Bench config's version).
VOLATILE_IN = {"run_settings.jsonl": frozenset({"version"})}


def _stable(obj: Any, extra: frozenset[str] = frozenset()) -> Any:
    if isinstance(obj, dict):
        return {k: _stable(v, extra) for k, v in obj.items() if k not in VOLATILE and k not in extra}
    if isinstance(obj, list):
        return [_stable(v, extra) for v in obj]
    return obj


def _canonical(obj: Any, name: str) -> Any:
    """mteb writes ModelMeta's `training_datasets` set in hash order, which changes from process to
    process; its order carries no meaning."""
    if name == "model_meta.json" and isinstance(obj, dict) and isinstance(obj.get("training_datasets"), list):
        return {**obj, "training_datasets": sorted(obj["training_datasets"])}
    return obj


def same_content(old: bytes, new: bytes, name: str) -> bool:
    """Whether two versions of a result-folder file say the same thing (JSON: apart from VOLATILE keys)."""
    if old == new:
        return True
    if not name.endswith((".json", ".jsonl")):
        return False
    try:
        decode = (
            (lambda b: [json.loads(x) for x in b.decode().splitlines() if x.strip()])
            if name.endswith(".jsonl")
            else (lambda b: json.loads(b.decode()))
        )
        extra = VOLATILE_IN.get(name, frozenset())
        return _stable(_canonical(decode(old), name), extra) == _stable(_canonical(decode(new), name), extra)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def snapshot_files(root: Path) -> dict[Path, bytes]:
    """Every file of a results folder, by path relative to it (the demo's folder is small)."""
    base = root / "results"
    if not base.is_dir():
        return {}
    # lock files and staging folders are the runner's own business
    return {
        p.relative_to(root): p.read_bytes()
        for p in base.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(base).parts)
    }


def restore_unchanged(root: Path, before: dict[Path, bytes]) -> tuple[int, list[str]]:
    """Put back the earlier bytes of every file that says the same as before. Returns (files kept,
    files changed)."""
    kept, changed = 0, []
    for rel, new in sorted(snapshot_files(root).items()):
        old = before.get(rel)
        if old is not None and same_content(old, new, rel.name):
            if old != new:
                (root / rel).write_bytes(old)
            kept += 1
        else:
            changed.append(str(rel))
    return kept, changed


def prune_other_revisions(root: Path, name: str, revision: str | None) -> list[Path]:
    """Remove a demo model's results filed under another revision than the current one: a changed
    training preset gives the trained model a new revision, and the demo shows what the code produces
    now, not what an older preset did."""
    folder = root / "results" / name.replace("/", "__")
    if not revision or not (folder / revision).is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_dir() and p.name != revision]
    for path in stale:
        print(f"removing {path}: results of an older revision of {name}", flush=True)
        shutil.rmtree(path)
    return stale


def run_demo(results_dir: str | Path, models: Sequence[str], shots: Sequence[int]) -> tuple[Path, str]:
    """Run the demo into `results_dir` and write its report; returns the report's path and text."""
    from evalharness.api import run_config
    from evalharness.reporting import write_report
    from evalharness.runner import run

    root = Path(results_dir)
    before = snapshot_files(root)
    t0 = time.monotonic()
    for model in models:
        run_cfg = run_config(
            model,
            ["benchmark=offline-mini", "examples=train"],
            shots=list(shots),
            seed=0,
            results_dir=str(root),
            embedding_cache=None,  # see the module docstring
            overwrite=True,  # recomputed every time; unchanged files are put back below
        )
        print(
            f"== {model}: offline-mini, shots {list(shots)}, examples sampled from train (seed 0)", flush=True
        )
        run(run_cfg)
        prune_other_revisions(root, run_cfg.model.name, run_cfg.model.revision)
    kept, changed = restore_unchanged(root, before)
    path, text = write_report(root, baseline=0)
    elapsed = time.monotonic() - t0
    if before and not changed:
        summary = f"every result is identical to the one already in {root} ({kept} files kept as they were)"
    elif before:
        summary = (
            f"{len(changed)} file(s) changed in {root}: "
            + ", ".join(changed[:8])
            + (" ..." if len(changed) > 8 else "")
        )
    else:
        summary = f"results written to {root}"
    return path, f"{text}\n{summary}\n{_kernels_line()}\n({elapsed:.0f}s)"


def _kernels_line() -> str:
    from evalharness import kernels

    found = kernels.describe()
    if found["pinned"]:
        return f"CPU kernels: pinned to {found['pinned'].upper()} (the same numbers on every x86-64 host)"
    return (
        f"CPU kernels: this host's own ({found.get('torch', '?')}), not the pinned AVX2 path the committed "
        "results were computed with: the last digits may differ from theirs"
    )
