"""Task instructions: the strings bge-en-icl puts after `<instruct>` for each task.

bge-en-icl was evaluated with its own per-task instructions (paper Table 7, shipped verbatim in
`data/instructions.yaml`), not mteb's built-in task prompts, which differ (no trailing period,
TREC-COVID wording) and are missing for STS, SummEval and the v2 CQADupstack sub-tasks.

Interface:
  - `load_instructions(override_path)`: task name -> instruction, Table 7 plus a user's overrides.
  - `resolve_instruction(task_metadata, table)`: the instruction for one mteb task and where it
    came from, falling back to what mteb itself would use for a task that is not in the table.
  - `AIRBENCH_INSTRUCTION`: the single Table 7 instruction for every AIR-Bench dataset.
"""

from __future__ import annotations

import functools
import json
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from evalharness.errors import EvalharnessError

if TYPE_CHECKING:
    from collections.abc import Collection

    from mteb import TaskMetadata

logger = logging.getLogger(__name__)

Source = Literal["table7", "override", "mteb-task-prompt", "mteb-type-default"]


class InstructionError(EvalharnessError, ValueError):
    """An override file or task that yields no usable instruction; the message says how to fix it."""


@functools.cache
def _packaged() -> dict:
    text = resources.files("evalharness").joinpath("data/instructions.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


AIRBENCH_INSTRUCTION: str = _packaged()["air-bench"]


def _with_aliases(table: dict[str, str], explicit: Collection[str] = ()) -> dict[str, str]:
    """Give each v2 alias its v1 task's instruction unless the alias itself was set explicitly."""
    out = dict(table)
    for alias, target in _packaged()["aliases"].items():
        if alias not in explicit and target in out:
            out[alias] = out[target]
    return out


@functools.cache
def _table7() -> dict[str, str]:
    return _with_aliases(_packaged()["tasks"])


def _read_override(path: Path) -> dict[str, str]:
    fix = "Give a YAML or JSON file that maps mteb task names to instruction strings, e.g. 'ArguAna: ...'"
    if not path.is_file():
        raise InstructionError(f"Instruction override file {path} does not exist. {fix}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise InstructionError(f"Cannot parse instruction override file {path}: {e}. {fix}") from e
    if not isinstance(data, dict):
        raise InstructionError(
            f"Instruction override file {path} holds a {type(data).__name__}, not a mapping. {fix}"
        )
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise InstructionError(
            f"Instruction override file {path}: entries {bad!r} are not task name -> string "
            f"(quote instructions that YAML would read otherwise, and give every task a value). {fix}"
        )
    return data


def load_instructions(override_path: str | Path | None = None) -> dict[str, str]:
    """Task name -> instruction: Table 7 (with v2 aliases), then the override file's entries on top.

    Overriding a v1 task also changes its v2 aliases (e.g. `STS22` -> `STS22.v2`) unless the
    override names the alias too. Unknown names are kept (they may be local tasks) but logged,
    because a misspelt name would otherwise silently leave the Table 7 string in place.
    """
    table = dict(_packaged()["tasks"])
    override: dict[str, str] = {}
    if override_path is not None:
        override = _read_override(Path(override_path))
        _warn_unknown(override, Path(override_path))
        table.update(override)
    return _with_aliases(table, explicit=set(override))


def _warn_unknown(override: dict[str, str], path: Path) -> None:
    import mteb

    for name in override:
        if name in _table7():
            continue
        try:
            mteb.get_task(name)
        except KeyError:
            logger.warning("Instruction override file %s: %r is not an mteb task name.", path, name)


def resolve_instruction(task_metadata: TaskMetadata, table: dict[str, str]) -> tuple[str, Source]:
    """(instruction, source) for a task, in the order mteb's `AbsEncoder.get_instruction` uses with
    `prompts_dict=table` and `prompt_priority=(CUSTOM_PROMPT, DEFAULT_TASK_PROMPT)`:

    1. `table[task name]`: source "table7" if it is the packaged Table 7 string, else "override";
    2. mteb's task prompt (`metadata.prompt`, its "query" entry when it is a dict): "mteb-task-prompt";
    3. the prompt of the task's mteb abstract class (`AbsTask.abstask_prompt`): "mteb-type-default".

    It re-states that lookup instead of calling `get_instruction` because `get_instruction` does not
    say which source it used, and returns "" (not the class default) for a dict prompt without a
    "query" entry. tests/test_instructions.py checks the two agree on the benchmark tasks.
    An empty instruction is an error here, not a silent "" as in mteb.
    """
    name = task_metadata.name
    if name in table:
        return table[name], ("table7" if _table7().get(name) == table[name] else "override")
    prompt = task_metadata.prompt
    if isinstance(prompt, dict):
        prompt = prompt.get("query")
    if prompt:
        return prompt, "mteb-task-prompt"

    from mteb.abstasks.abstask import get_abstask_prompt

    default = get_abstask_prompt(name)
    if not default:
        raise InstructionError(
            f"No instruction for task {name!r}: it is not in the instruction table, has no mteb task "
            f"prompt, and its mteb task class defines no default. Add '{name}: <instruction>' to an "
            f"instruction override file."
        )
    return default, "mteb-type-default"


def applied_instruction(template: Any, instruction: str, source: str, with_examples: bool) -> dict[str, Any]:
    """The manifest's record of the instruction: the string and its source only where the template put
    it in front of the model (`plain` puts it nowhere, `no-instruction` only into the examples)."""
    uses = template.instruction_uses(with_examples)
    if not uses:
        return {"instruction": None, "instruction_source": None, "instruction_used_in": []}
    return {"instruction": instruction, "instruction_source": source, "instruction_used_in": uses}
