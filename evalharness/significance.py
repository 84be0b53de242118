"""Is each Δ of the report real? Paired CIs and tests per task, Holm across tasks, pooled per type.

For every column with a baseline column (the same model's baseline-shot setting, as the Δ table
pairs them), and every task both scored, the per-item values of `Results.items` are aligned unit by
unit (query, pair, experiment) and handed to `evalharness.stats.paired_delta`. Seeds of one setting:
for a "mean" score the seeds' values are averaged per unit first (the mean of seed scores is the
score of those averages); for correlation and max-AP scores each seed is compared on its own and the
seeds' bootstrap distributions are averaged. An aggregate task (CQADupstack) pools its sub-tasks the
same way. A pooled row has no permutation test; its p-value is the bootstrap's two-sided tail mass
(say so where it is shown). Units that are a handful of experiments (clustering's 10 v-measures) get a
paired t-interval and t-test instead (`evalharness.t_interval`): a percentile bootstrap over 10 units is
too narrow. Classification scored by accuracy has test items as units (`evalharness.per_item`), and
its row also gives the SD of the Δ over mteb's experiments (`train_sd`: how much the choice of train
sample moves it).

CIs and verdicts agree by construction. Holm adjusts the p-values of one column across its m tested
tasks, and the per-task CIs of that column are read at the Bonferroni level 1 - alpha/m (`ci_level`),
so they are simultaneous for the family the verdict is about: a t-interval or a bootstrap-p row whose CI
excludes 0 has p < alpha/m, hence a Holm p < alpha. Holm's step-down is less strict than Bonferroni's,
so a marked Δ may still have a CI that touches 0 (the intro says so). The one way the two can part is a
permutation-tested row whose bootstrap interval excludes 0 while the exact-under-the-null permutation
test does not reject: that row's note says so. Type and overall rows average the tasks' bootstrap
distributions (`stats.pooled_delta`) and read their CI at the nominal level: each is one quantity, not
a family. Where a statistic cannot be computed the row says why instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalharness import per_item, stats, t_interval
from evalharness.comparison import MEAN_TASKS, Comparison, baseline_columns, cell_key, column_labels, wide
from evalharness.results import Results
from evalharness.taskinfo import aggregate_children, benchmark_of_type, type_key

TASK_COLUMNS = ["column", "baseline", "task", "task_type", "delta", "low", "high", "ci_level", "p", "p_holm",
                "significant", "n", "unit", "test", "train_sd", "note"]  # fmt: skip
POOLED_COLUMNS = ["column", "baseline", "group", "delta", "low", "high", "n_tasks"]
SEED_COLUMNS = ["column", "task", "n_seeds", "mean", "std", "per_seed"]
PERMUTATION, BOOTSTRAP, T_TEST = "permutation", "bootstrap", "t"
_PLURAL = {"query": "queries", "pair": "pairs", "item": "test items", "experiment": "experiments"}
DISAGREE = (
    "the bootstrap CI excludes 0 but the permutation test does not reject at this level: too few or too "
    "skewed units for the interval; the test decides"
)


@dataclass
class Significance:
    """Per task and per type/overall, for each column against its baseline (Δ, CI in score x100)."""

    tasks: pd.DataFrame
    pooled: pd.DataFrame
    seeds: pd.DataFrame
    confidence: float
    resamples: int
    notes: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        return _alpha(self.confidence)


def _alpha(confidence: float) -> float:
    """1 - confidence without the float residue (1 - 0.95 is 0.05000000000000004, which would mark p = 0.05)."""
    return round(1 - confidence, 12)


class ItemSamples:
    """Per-item values by (cell, task), turned into aligned `stats.Sample`s on demand."""

    def __init__(self, results: Results) -> None:
        items = results.items
        self.groups = {
            key: g for key, g in items.assign(cell=cell_key(items)).groupby(["cell", "task"], sort=False)
        }
        missing = results.items_missing
        self.reasons = dict(
            zip(zip(cell_key(missing), missing["task"], strict=True), missing["reason"], strict=True)
        )

    def get(self, cell: str, task: str) -> tuple[pd.DataFrame | None, str]:
        group = self.groups.get((cell, task))
        if group is None:
            return None, self.reasons.get((cell, task), per_item.NO_FILE)
        return group, ""


def aligned_sample(
    group: pd.DataFrame, keys: pd.MultiIndex, mean_of: Sequence[pd.DataFrame] = ()
) -> stats.Sample:
    """`group`'s values in the order of `keys` ((split, subset, item)); `mean_of`: several seeds'
    groups whose values are averaged per unit ("mean" kind only)."""
    kind = group["kind"].iloc[0]
    frames = list(mean_of) or [group]
    if kind == "max_ap":
        columns = list(dict.fromkeys(group["column"]))
        wide = group.pivot_table(
            index=["split", "subset", "item"], columns="column", values="value", sort=False
        )
        values = wide.loc[keys, columns].to_numpy()
        signs = tuple(per_item.SIGNS[c] for c in columns)
    else:
        values = np.mean(
            [f.set_index(["split", "subset", "item"])["value"].loc[keys].to_numpy() for f in frames], 0
        )
        signs = ()
    gold = None if kind == "mean" else _unit_frame(group)["gold"].loc[keys].to_numpy()
    part_keys = list(zip(keys.get_level_values(0), keys.get_level_values(1), strict=True))
    part_of = {p: i for i, p in enumerate(dict.fromkeys(part_keys))}
    parts = np.array([part_of[p] for p in part_keys])
    return stats.Sample(kind, values, gold, parts, signs)


def _unit_frame(group: pd.DataFrame) -> pd.DataFrame:
    """One row per unit (max_ap rows repeat a unit once per scoring function)."""
    return group.drop_duplicates(["split", "subset", "item"]).set_index(["split", "subset", "item"])


def unit_keys(group: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(group[["split", "subset", "item"]].drop_duplicates()).sort_values()


def _compare_task(
    samples: ItemSamples,
    a_cells: Sequence[str],
    b_cells: Sequence[str],
    task: str,
    conf: float,
    resamples: int,
) -> tuple[list[stats.Delta], str, str, str]:
    """The Δ (one, or several to pool) of one task, the unit, and why not where there is none."""
    a = [samples.get(c, task) for c in a_cells]
    b = [samples.get(c, task) for c in b_cells]
    for group, reason in [*a, *b]:
        if group is None:
            return [], "", "", reason
    a_groups, b_groups = [g for g, _ in a], [g for g, _ in b]
    kinds = {g["kind"].iloc[0] for g in [*a_groups, *b_groups]}
    metrics = {g["metric"].iloc[0] for g in [*a_groups, *b_groups]}
    unit = a_groups[0]["unit"].iloc[0]
    if len(kinds) > 1 or len(metrics) > 1:
        return [], unit, "", f"the settings keep different metrics ({', '.join(sorted(metrics))})"
    keys = unit_keys(a_groups[0])
    if any(not unit_keys(g).equals(keys) for g in [*a_groups, *b_groups]):
        return [], unit, "", f"the settings were scored on different {_PLURAL.get(unit, unit)}"
    try:
        return _paired(a_groups, b_groups, keys, kinds.pop(), stats.task_seed(task), conf, resamples, unit)
    except ValueError as err:  # e.g. gold scores that differ between the settings: not the same units
        return [], unit, "", f"no paired comparison: {err}"


def _paired(
    a_groups: list[pd.DataFrame],
    b_groups: list[pd.DataFrame],
    keys: pd.MultiIndex,
    kind: str,
    seed: int,
    conf: float,
    resamples: int,
    unit: str,
) -> tuple[list[stats.Delta], str, str, str]:
    """A mean score averages the seeds per unit (then one paired test); a correlation or AP score
    compares each seed with the one baseline, for `_pool` to average."""
    if kind == "mean" and unit == "experiment":  # a handful of units: see evalharness.t_interval
        d = t_interval.paired_t_delta(
            aligned_sample(a_groups[0], keys, a_groups), aligned_sample(b_groups[0], keys, b_groups),
            confidence=conf, resamples=resamples, seed=seed,
        )  # fmt: skip
        return [d], unit, T_TEST if d.method == "t" else PERMUTATION, ""
    if kind == "mean" or (len(a_groups) == 1 and len(b_groups) == 1):
        d = stats.paired_delta(
            aligned_sample(a_groups[0], keys, a_groups if kind == "mean" else ()),
            aligned_sample(b_groups[0], keys, b_groups if kind == "mean" else ()),
            confidence=conf, resamples=resamples, seed=seed,
        )  # fmt: skip
        return [d], unit, PERMUTATION, ""
    if len(b_groups) > 1:
        return [], unit, "", f"the baseline has several seeds and a {kind} score: no paired test"
    base = aligned_sample(b_groups[0], keys)
    return [
        stats.paired_delta(aligned_sample(g, keys), base, confidence=conf, resamples=resamples, seed=seed)
        for g in a_groups
    ], unit, BOOTSTRAP, ""  # fmt: skip


def _pool(deltas: Sequence[stats.Delta], confidence: float) -> stats.Delta:
    """Several Δs (seeds, sub-tasks) as one: their mean, with the averaged bootstrap distribution."""
    if len(deltas) == 1:
        return deltas[0]
    distribution = np.mean([d.distribution for d in deltas], axis=0)
    mean, low, high = stats.pooled_delta(deltas, confidence)
    return stats.Delta(mean, low, high, bootstrap_p(distribution), deltas[0].n, confidence, distribution)


def bootstrap_p(distribution: np.ndarray) -> float:
    """Two-sided tail mass of a bootstrap distribution beyond 0: below alpha exactly when the
    percentile CI at 1 - alpha excludes 0 (up to the quantile's interpolation)."""
    tail = min(np.mean(distribution <= 0), np.mean(distribution >= 0))
    return float(min(1.0, 2 * tail))


def significance(
    results: Results, comp: Comparison, baseline: int = 0, *, confidence: float = 0.95, resamples: int = 1000
) -> Significance:
    """Every Δ of the comparison with its CI and test (see the module docstring)."""
    base_cols, _ = baseline_columns(comp, baseline)
    samples = ItemSamples(results)
    seeds = comp.seed_scores
    cells = seeds.groupby(["column", "task"], sort=False)["cell"].agg(list).to_dict()
    rows, kept = [], {}
    for column, base_col in base_cols.items():
        for task, task_type_ in comp.scores.loc[
            comp.scores["column"] == column, ["task", "task_type"]
        ].itertuples(index=False):
            row = {"column": column, "baseline": base_col, "task": task, "task_type": task_type_}
            a_cells, b_cells = cells.get((column, task), []), cells.get((base_col, task), [])
            if not b_cells:
                rows.append({**row, "note": f"no {baseline}-shot score for this task"})
                continue
            subtasks = aggregate_children(task) or [task]
            found = [_compare_task(samples, a_cells, b_cells, t, confidence, resamples) for t in subtasks]
            reasons = [why for _, _, _, why in found if why]
            if reasons:
                rows.append({**row, "note": reasons[0]})
                continue
            deltas = [d for ds, _, _, _ in found for d in ds]
            test = found[0][2] if len(deltas) == 1 else BOOTSTRAP
            pooled = _pool(deltas, confidence)
            if np.isnan(pooled.delta):
                rows.append(
                    {**row, "note": "the score is undefined on these units (e.g. constant predictions)"}
                )
                continue
            kept[(column, task)] = pooled
            n_units = sum(ds[0].n for ds, _, _, _ in found)  # seeds share units; sub-tasks add theirs
            rows.append(
                {**row, "delta": 100 * pooled.delta, "p": pooled.p_value, "n": n_units, "unit": found[0][1],
                 "test": test, "train_sd": _train_sd(results, a_cells, b_cells, task), "note": ""}
            )  # fmt: skip
    tasks = pd.DataFrame(rows, columns=TASK_COLUMNS)
    _family_verdicts(tasks, kept, confidence)
    return Significance(tasks, _pooled(tasks, kept, confidence), _seeds(seeds), confidence, resamples)


def _family_verdicts(tasks: pd.DataFrame, kept: dict, confidence: float) -> None:
    """Per column: Holm over its m tested tasks, CIs at the Bonferroni level 1 - alpha/m, and a note
    where a CI excludes 0 but the verdict is "not significant" (see the module docstring)."""
    alpha = _alpha(confidence)
    for column, group in tasks.groupby("column", sort=False):
        tested = group[group["p"].notna()]
        if tested.empty:
            continue
        level = 1 - alpha / len(tested)
        tasks.loc[tested.index, "p_holm"] = stats.holm(list(tested["p"]))
        tasks.loc[tested.index, "ci_level"] = level
        for index, task in zip(tested.index, tested["task"], strict=True):
            low, high = stats.interval(kept[(column, task)], level)
            tasks.loc[index, ["low", "high"]] = [100 * low, 100 * high]
    tasks["significant"] = tasks["p_holm"].lt(alpha)
    excludes = (tasks["low"].gt(0) | tasks["high"].lt(0)) & ~tasks["significant"]
    tasks.loc[excludes, "note"] = DISAGREE


def _train_sd(results: Results, a_cells: Sequence[str], b_cells: Sequence[str], task: str) -> float:
    """Classification by test item: the SD (x100) over mteb's experiments of the Δ, each experiment's
    accuracy averaged over the setting's seeds and the task's parts; NaN where none are kept."""
    frame = results.experiments
    if frame.empty:
        return np.nan
    frame = frame[frame["task"] == task].assign(cell=lambda f: cell_key(f))

    def per_experiment(cells: Sequence[str]) -> pd.Series:
        mine = frame[frame["cell"].isin(cells)]
        return (
            mine.groupby(["split", "subset", "experiment_no"])["value"].mean().groupby("experiment_no").mean()
        )

    a, b = per_experiment(a_cells), per_experiment(b_cells)
    if len(a) < 2 or not a.index.equals(b.index):
        return np.nan
    return float(100 * (a - b).std(ddof=1))


def _pooled(tasks: pd.DataFrame, kept: dict, confidence: float) -> pd.DataFrame:
    rows = []
    for (column, base_col), group in tasks.groupby(["column", "baseline"], sort=False):
        have = group[group["delta"].notna()]
        if have.empty:
            continue
        by_type = sorted(have.groupby("task_type", sort=False), key=lambda kv: type_key(kv[0]))
        mteb = have[have["task_type"].map(benchmark_of_type) == "MTEB"]
        for label, sub in [*by_type, (MEAN_TASKS, mteb if not mteb.empty else have)]:
            deltas = [kept[(column, t)] for t in sub["task"]]
            mean, low, high = stats.pooled_delta(deltas, confidence)
            rows.append({"column": column, "baseline": base_col, "group": label, "delta": 100 * mean,
                         "low": 100 * low, "high": 100 * high, "n_tasks": len(deltas)})  # fmt: skip
    return pd.DataFrame(rows, columns=POOLED_COLUMNS)


def _seeds(seed_scores: pd.DataFrame) -> pd.DataFrame:
    """Settings run with several seeds: each task's mean ± standard deviation over seeds, and the
    per-seed scores."""
    rows = []
    for (column, task), group in seed_scores.groupby(["column", "task"], sort=False):
        if group["seed"].nunique() < 2:
            continue
        ordered = group.sort_values("seed")
        rows.append({"column": column, "task": task, "n_seeds": len(ordered), "mean": ordered["score"].mean(),
                     "std": ordered["score"].std(ddof=1),
                     "per_seed": ", ".join(f"{int(s)}: {v:.2f}" for s, v in zip(ordered["seed"], ordered["score"],
                                                                               strict=True))})  # fmt: skip
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


# ---------------------------------------------------------------------------------------------
# What the report shows: one text per cell, columns as the Δ tables have them
# ---------------------------------------------------------------------------------------------


def _interval(delta: float, low: float, high: float) -> str:
    return f"{delta:+.2f} [{low:+.2f}, {high:+.2f}]"


def task_texts(sig: Significance, comp: Comparison) -> pd.DataFrame:
    """Per task x column: "Δ [low, high] p=… *" (p Holm-adjusted, * where below alpha), or why not."""
    if sig.tasks.empty:
        return pd.DataFrame()
    texts = []
    for row in sig.tasks.itertuples():
        if pd.isna(row.delta):
            texts.append(f"no CI: {row.note}")
            continue
        mark = " *" if row.significant else ""
        test = {BOOTSTRAP: " (bootstrap p)", T_TEST: f" (t-test, n={row.n:g})"}.get(row.test, "")
        text = f"{_interval(row.delta, row.low, row.high)} p={row.p_holm:.4g}{test}{mark}"
        if not pd.isna(row.train_sd):
            text += f", train-sample SD {row.train_sd:.2f}"
        if row.note:
            text += f" — {row.note}"
        texts.append(text)
    return wide(comp, sig.tasks.assign(text=texts), "text")


def pooled_texts(sig: Significance, comp: Comparison) -> pd.DataFrame:
    """Per type (and over all tasks) x column: the mean Δ of the tasks with a CI, its CI, how many."""
    if sig.pooled.empty:
        return pd.DataFrame()
    frame = sig.pooled.assign(
        text=[
            f"{_interval(r.delta, r.low, r.high)} ({r.n_tasks} task{'s' if r.n_tasks != 1 else ''})"
            for r in sig.pooled.itertuples()
        ]
    )
    table = frame.set_index(["group", "column"])["text"].unstack("column")
    groups = sorted((g for g in table.index if g != MEAN_TASKS), key=type_key) + [MEAN_TASKS]
    cols = [c for c in comp.columns["column"] if c in table.columns]
    table = table.reindex(index=pd.Index(groups, name="type"), columns=cols).fillna("—")
    table.columns = column_labels(comp, cols)
    return table


def seed_texts(sig: Significance, comp: Comparison) -> pd.DataFrame:
    """Settings with several seeds: per task "mean ± std (seed: score, ...)"."""
    if sig.seeds.empty:
        return pd.DataFrame()
    types = comp.scores.drop_duplicates("task").set_index("task")["task_type"]
    frame = sig.seeds.assign(
        task_type=sig.seeds["task"].map(types),
        text=[f"{r.mean:.2f} ± {r.std:.2f} ({r.per_seed})" for r in sig.seeds.itertuples()],
    )
    return wide(comp, frame, "text")


def no_ci_reasons(sig: Significance) -> str:
    """Why Δs have no CI, each reason with how many Δs it concerns."""
    missing = sig.tasks[sig.tasks["delta"].isna()]
    counts = missing["note"].value_counts(sort=False)
    return "; ".join(f"{reason} ({n} of {len(sig.tasks)} Δs)" for reason, n in counts.items())


def intro(sig: Significance) -> str:
    level = f"{100 * sig.confidence:g}%"
    return (
        f"Δ vs the baseline (×100). Per task: a paired CI over the task's units (queries, pairs, test items; "
        f"{sig.resamples} resamples, scipy.stats.bootstrap, percentile) and the p-value of a paired permutation test "
        "(scipy.stats.permutation_test), Holm-adjusted across each column's tasks; * marks an adjusted p < "
        f"{sig.alpha:.2g}. CIs and marks agree: a task's CI is read at the Bonferroni level for its column's m tasks "
        f"(1 − α/m with α = {sig.alpha:.2g}; `ci_level` in significance.csv), so a CI that excludes 0 is significant "
        "after the adjustment too, while Holm, less strict than Bonferroni, may mark a Δ whose CI touches 0. "
        "Units that are mteb's experiments (clustering: 10) are too few for a bootstrap: those rows use a paired "
        "t-interval and t-test (scipy.stats.t), and with n = 10 only large Δs can be told from noise. "
        "Classification's units are its test items (per item, the share of mteb's experiments that got it right; "
        "their mean is the accuracy), and its train-sample SD is the spread of the Δ over those experiments, i.e. "
        "over the train samples the classifiers were fit on. Seeds of a setting: a mean score (nDCG, accuracy) is "
        "averaged over the seeds unit by unit and tested once; a correlation or AP score is compared seed by seed "
        "and the seeds' bootstrap distributions averaged, as an aggregate task (CQADupstack) averages its "
        "sub-tasks'; those rows show a bootstrap p. Type and overall rows average the tasks' bootstrap "
        f"distributions, each with a {level} CI. Unadjusted p-values are in significance.csv."
    )
