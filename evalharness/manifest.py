"""The run -> report contract: `manifest.json` of a cell's experiment folder, as typed models.

The runner writes one per cell (the cell's settings and fingerprint, the resolved config, versions,
and per task an entry: status, main score, the splits and subsets scored, the instruction and examples
used, where the per-item values and rankings are); the report reads it back through the same models.
Entries keep the keys each task type adds (AIR-Bench adds its own), so the models allow extra keys and
type the ones the report relies on.

`schema_version` says which contract a file follows: 2 since the field exists; a file without it was
written before (version 1: the same keys) and still loads. A file from a newer evalharness is refused
with a message instead of being half understood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION = 2
FILE = "manifest.json"


class TaskEntry(BaseModel):
    """One task of a cell. `status` "done" means its result (and per-item / rankings files) are on disk."""

    model_config = ConfigDict(extra="allow")

    status: str
    task_type: str | None = None
    main_score_name: str | None = None
    main_score: float | None = None
    splits: list[str] | None = None  # what the run evaluated (None: the task's defaults)
    subsets: list[str] | None = None
    instruction: str | None = None
    instruction_source: str | None = None
    instruction_used_in: list[str] = []
    examples: list[dict[str, Any]] = []
    per_item: str | None = None  # relative to the experiment folder
    per_item_missing: str | None = None
    rankings: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry as written (the keys it had, none added)."""
        return self.model_dump(exclude_unset=True)


class CellRecord(BaseModel):
    """The cell's settings (evalharness.plan.Cell; the runner writes all of them, a hand-made folder
    may not)."""

    shots: int | None = None
    strategy: str | None = None
    seed: int | None = None
    template: str | None = None
    set_id: str | None = None


class Manifest(BaseModel):
    """One cell's manifest."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = 1
    cell: CellRecord | None = None
    fingerprint: str | None = None
    model: str | None = None
    config: dict[str, Any] = {}
    tasks: dict[str, TaskEntry] = {}


class ManifestError(ValueError):
    """A manifest that does not follow the contract (the message names the file and the field)."""


def parse(raw: Any, where: str | Path = "manifest") -> Manifest:
    """A manifest from its JSON object; ManifestError naming the field where it breaks the contract."""
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{where}: {field}: {first['msg']} ({err.error_count()} problem(s))") from None
    if manifest.schema_version > SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {manifest.schema_version} is newer than this evalharness reads "
            f"({SCHEMA_VERSION}); upgrade evalharness to report on it"
        )
    return manifest


def load(path: Path) -> Manifest:
    """`path`'s manifest (ManifestError for JSON that breaks the contract; OSError / JSONDecodeError as
    json raises them)."""
    return parse(json.loads(path.read_text(encoding="utf-8")), path)


def check_entry(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """A task entry about to be written: it must follow the contract the report reads."""
    parse({"tasks": {name: entry}}, f"the entry of {name}")
    return entry
