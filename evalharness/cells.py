"""A cell's name, both ways: the settings mteb names an experiment folder after, and those settings
read back from a folder name. The run writes the one and the report reads the other, so both use this
one table.

mteb names a model's experiment folder after its `ModelMeta.experiment_kwargs`, sorted, as
`key_value__key_value` (or `exp_<hash>` when the names would be long or odd: nothing to read back then;
our manifests record the cell as well).
"""

from __future__ import annotations

from typing import Any

#: our setting -> mteb's experiment kwarg
KWARGS = {"shots": "shots", "strategy": "examples", "seed": "seed", "template": "template", "set_id": "set"}
_SETTINGS = {kwarg: setting for setting, kwarg in KWARGS.items()}
_INTEGERS = ("shots", "seed")


def experiment_kwargs(
    shots: int, strategy: str, seed: int | None, template: str, set_id: str | None
) -> dict[str, Any]:
    """What mteb names the cell's experiment folder after (a seed and an example-set id only where set)."""
    settings = {"shots": shots, "strategy": strategy, "template": template, "seed": seed, "set_id": set_id}
    return {KWARGS[k]: v for k, v in settings.items() if v is not None and v != ""}


def settings_from_experiment(name: str) -> dict[str, Any]:
    """The cell's settings from an experiment folder name; {} for a hashed or foreign name."""
    cell: dict[str, Any] = {}
    for part in name.split("__") if name and not name.startswith("exp_") else []:
        key, _, value = part.partition("_")
        setting = _SETTINGS.get(key)
        if setting in _INTEGERS:
            try:
                cell[setting] = int(value)
            except ValueError:
                continue
        elif setting:
            cell[setting] = value
    return cell
