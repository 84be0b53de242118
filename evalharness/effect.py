"""Which queries the examples helped or hurt: per retrieval task and few-shot setting, the queries whose
main metric moved most against the same model's baseline-shot setting, with their text, the examples
their prompt carried and the rank of the first relevant document before and after.

Everything comes from the results folder: the per-query values (evalharness.per_item) give the
change, the kept rankings (evalharness.rankings) the text, ranks and examples; a task without kept
rankings (results from elsewhere, or written before rankings were kept) is left out, and said so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from evalharness import rankings
from evalharness.comparison import Comparison, baseline_columns, cell_key
from evalharness.results import Results

logger = logging.getLogger(__name__)

EFFECT_COLUMNS = [
    "column", "baseline", "task", "metric", "split", "subset", "query", "text", "change", "value",
    "base_value", "first_relevant", "base_first_relevant", "examples", "same_examples",
]  # fmt: skip


def _ranked(file: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(split, subset, query) -> its text, first relevant rank and example indices."""
    out = {}
    for part in rankings.read(file)["parts"]:
        examples = part.get("examples") or [None] * len(part["ids"])
        for q, text, first, ex in zip(
            part["ids"], part["texts"], part["first_relevant"], examples, strict=True
        ):
            out[(part["split"], part["subset"], q)] = {"text": text, "first": first, "examples": ex}
    return out


def _example_texts(indices: Sequence[int] | None, used: Sequence[Mapping[str, Any]]) -> list[str]:
    if indices is None:
        return []
    return [f"{used[i].get('query', '')} → {used[i].get('response', '')}" for i in indices if i is not None]


def examples_effect(results: Results, comp: Comparison, baseline: int = 0, n: int = 5) -> pd.DataFrame:
    """Per (setting, task): the `n` queries with the largest gains and the `n` with the largest losses
    (changes of 0 left out), largest first, in score x100. One row per query (EFFECT_COLUMNS)."""
    if n <= 0 or results.rankings.empty or comp.empty:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    base_cols, _ = baseline_columns(comp, baseline)
    cells = comp.seed_scores.drop_duplicates("cell").set_index("cell")["column"]
    items = results.items[results.items["unit"] == "query"]
    items = items.assign(cell=cell_key(items))
    ranked = results.rankings.assign(cell=cell_key(results.rankings)).set_index(["cell", "task"])
    by_column = {column: list(group.index) for column, group in cells.groupby(cells)}
    rows: list[dict[str, Any]] = []
    for (cell, task), group in items.groupby(["cell", "task"], sort=False):
        column = cells.get(cell)
        if column not in base_cols or (cell, task) not in ranked.index:
            continue
        base_cell = next((c for c in by_column.get(base_cols[column], []) if (c, task) in ranked.index), None)
        if base_cell is None:
            continue
        base = items[(items["cell"] == base_cell) & (items["task"] == task)]
        key = ["split", "subset", "item"]
        joined = group.merge(base[[*key, "value"]], on=key, suffixes=("", "_base"))
        joined["change"] = 100 * (joined["value"] - joined["value_base"])
        moved = joined[joined["change"] != 0]
        picked = pd.concat([moved.nlargest(n, "change").query("change > 0"),
                            moved.nsmallest(n, "change").query("change < 0")])  # fmt: skip
        if picked.empty:
            continue
        try:
            mine = _ranked(ranked.loc[(cell, task), "file"])
            theirs = _ranked(ranked.loc[(base_cell, task), "file"])
        except (OSError, ValueError, KeyError, TypeError) as err:  # a damaged file costs its task only
            logger.warning(
                "%s %s: unreadable rankings (%s: %s); left out", column, task, type(err).__name__, err
            )
            continue
        used = ranked.loc[(cell, task), "examples"]
        shared = len({tuple(v["examples"] or ()) for v in mine.values()}) <= 1
        for row in picked.itertuples():
            here = mine.get((row.split, row.subset, row.item), {})
            there = theirs.get((row.split, row.subset, row.item), {})
            rows.append({
                "column": column, "baseline": base_cols[column], "task": task, "metric": row.metric,
                "split": row.split, "subset": row.subset, "query": row.item, "text": here.get("text", ""),
                "change": row.change, "value": 100 * row.value, "base_value": 100 * row.value_base,
                "first_relevant": here.get("first"), "base_first_relevant": there.get("first"),
                "examples": _example_texts(here.get("examples"), used), "same_examples": shared,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def _rank(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def effect_groups(effect: pd.DataFrame) -> list[tuple[str, list[str], pd.DataFrame]]:
    """Per (setting, task): a title, the examples every query carried (when they were the same for
    all), and the display table (Δ, query, first relevant rank before → after, per-query examples)."""
    out = []
    for (column, base, task), group in effect.groupby(["column", "baseline", "task"], sort=False):
        shared = bool(group["same_examples"].iloc[0])
        metric = group["metric"].iloc[0]
        table = pd.DataFrame({
            f"Δ {metric} (×100)": group["change"].map(lambda v: f"{v:+.1f}"),
            "query": group["text"].map(_short),
            "first relevant rank": [f"{_rank(b)} → {_rank(a)}" for b, a in
                                    zip(group["base_first_relevant"], group["first_relevant"], strict=True)],
        })  # fmt: skip
        if not shared:
            table["examples it carried"] = group["examples"].map(
                lambda ex: " · ".join(_short(e, 80) for e in ex)
            )
        title = f"{column} vs {base.split(' · ')[-1]}: {task}"
        examples = [_short(e, 200) for e in group["examples"].iloc[0]] if shared else []
        out.append((title, examples, table.reset_index(drop=True)))
    return out
