"""How sure is a Borda rank? The share of paired resamples in which each entry keeps its rank.

mteb's leaderboard ranks entries by Borda count over tasks and shows one rank; with a few hundred
queries per task, a rank between entries a point apart is often a coin flip (mteb PR #5117 asked for
rank uncertainty). Here every task's units (queries, pairs, test items, experiments) are resampled
with replacement, *the same draws for every entry* (entries are scored on the same units, so the
resample keeps their pairing, as the report's Δ CIs do), each entry's task score is recomputed from
its per-item values (`stats.resampled_scores`; seeds averaged, an aggregate task's sub-tasks averaged,
as the score table does), and the Borda rank is taken again with mteb's own `_get_borda_rank`.

Per entry: the share of resamples in which its rank equals the observed one, and the range its rank
takes in the central `confidence` share of resamples. A task without aligned per-item values for
every entry (results from elsewhere) keeps its observed scores in every resample, and the table says
how many tasks were resampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evalharness import stats
from evalharness.comparison import Comparison, borda, borda_ranks, task_table
from evalharness.results import Results
from evalharness.significance import ItemSamples, aligned_sample, unit_keys
from evalharness.taskinfo import aggregate_children

COLUMNS = ["model", "setting", "kept_rank", "rank_low", "rank_high"]


def _task_draws(
    samples: ItemSamples, cells: dict, columns: Sequence[str], task: str, resamples: int
) -> np.ndarray | None:
    """(resamples, entries) scores x100 of one task, or None if some entry lacks aligned values."""
    per_column = np.zeros((resamples, len(columns)))
    subtasks = aggregate_children(task) or [task]
    for sub in subtasks:
        groups = []
        for column in columns:
            found = [samples.get(cell, sub)[0] for cell in cells.get((column, task), [])]
            if not found or any(g is None for g in found):
                return None
            groups.append(found)
        keys = unit_keys(groups[0][0])
        if any(not unit_keys(g).equals(keys) for gs in groups for g in gs):
            return None
        kinds = {g["kind"].iloc[0] for gs in groups for g in gs}
        if len(kinds) != 1:
            return None
        units = np.random.default_rng(stats.task_seed(sub)).integers(0, len(keys), (resamples, len(keys)))
        for j, found in enumerate(groups):
            seeds = [stats.resampled_scores(aligned_sample(g, keys), units) for g in found]
            per_column[:, j] += 100 * np.mean(seeds, axis=0) / len(subtasks)
    return per_column


def rank_stability(
    results: Results, comp: Comparison, *, confidence: float = 0.95, resamples: int = 1000
) -> tuple[pd.DataFrame, int, int]:
    """Per Borda entry (model, setting): `kept_rank`, the share of resamples with its observed rank,
    and `rank_low` / `rank_high`, its rank's central `confidence` range; with how many of how many
    tasks were resampled."""
    table = task_table(comp)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS), 0, 0
    columns = [c for c in comp.columns["column"] if c in set(comp.scores["column"])]
    observed = table.to_numpy().T  # entries x tasks, in `columns` order
    samples = ItemSamples(results)
    cells = comp.seed_scores.groupby(["column", "task"], sort=False)["cell"].agg(list).to_dict()
    draws = np.repeat(observed[None], resamples, axis=0)  # resamples x entries x tasks
    resampled = 0
    for t, (_, task) in enumerate(table.index):
        present = [c for c, v in zip(columns, observed[:, t], strict=True) if not np.isnan(v)]
        task_draws = _task_draws(samples, cells, present, task, resamples) if present else None
        if task_draws is None:
            continue
        resampled += 1
        for j, column in enumerate(present):
            draws[:, columns.index(column), t] = task_draws[:, j]
    base = np.asarray(borda_ranks(observed))
    ranks = (
        np.stack([borda_ranks(d) for d in draws]) if resampled else np.repeat(base[None], resamples, axis=0)
    )
    tail = (1 - confidence) / 2
    labels = table.columns
    frame = pd.DataFrame(
        {
            "model": labels.get_level_values("model"),
            "setting": labels.get_level_values("setting"),
            "kept_rank": (ranks == base[None]).mean(axis=0),
            "rank_low": np.quantile(ranks, tail, axis=0, method="lower").astype(int),
            "rank_high": np.quantile(ranks, 1 - tail, axis=0, method="higher").astype(int),
        }
    )
    return frame, resampled, len(table.index)


def with_stability(
    results: Results, comp: Comparison, *, confidence: float, resamples: int
) -> tuple[pd.DataFrame, str]:
    """The Borda table (`comparison.borda`) with each entry's rank stability, and a note saying how."""
    table = borda(comp)
    if table.empty or not confidence:
        return table, ""
    stability, resampled, n_tasks = rank_stability(results, comp, confidence=confidence, resamples=resamples)
    out = table.merge(stability, on=["model", "setting"], how="left")
    level = f"{100 * confidence:g}%"
    out["same rank"] = [f"{100 * v:.0f}%" for v in out.pop("kept_rank")]
    out[f"rank {level} range"] = [
        f"{lo}" if lo == hi else f"{lo}–{hi}"
        for lo, hi in zip(out.pop("rank_low"), out.pop("rank_high"), strict=True)
    ]
    note = (
        f"same rank: the share of {resamples} paired resamples of every task's units (the same draws for every "
        f"entry) in which the entry keeps its Borda rank; rank {level} range: the ranks it takes in the central "
        f"{level} of them; {resampled} of {n_tasks} tasks resampled (the others have no per-item values for "
        "every entry and keep their scores)."
    )
    return out, note
