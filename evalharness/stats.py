"""Is a k-shot gain over 0-shot real? Confidence intervals and p-values for a Δ between two settings.

A Δ on one task is a difference of two scores computed on the same units (queries, STS pairs,
classification experiments), so the analysis is *paired*: every bootstrap resample and every
permutation keeps a unit's two scores together. The units differ far more from each other (easy vs
hard queries) than the settings differ on one unit, and pairing removes that between-unit variance;
an unpaired analysis would call most real few-shot gains noise.

For each Δ, `paired_delta` gives a bootstrap CI (scipy.stats.bootstrap, paired) and a two-sided
p-value from a paired permutation test (scipy.stats.permutation_test, swapping a unit's two
values), both with a fixed seed so that a report is reproducible. The statistic is the task's own
score (`score`: mean nDCG, Spearman, max AP ...), recomputed on each resample, so the CI is for
the Δ that the report prints rather than for a proxy.

CIs are *percentile* intervals, because a percentile interval is a function of the bootstrap
distribution alone: the distributions of several tasks, averaged resample by resample, give the
distribution of their mean Δ, and `pooled_delta` reads its CI the same way (BCa would need
per-task acceleration terms that do not combine).

Testing 56 tasks at 5% finds about three "significant" gains by chance, so `holm` adjusts the
p-values across tasks (Holm's step-down controls the family-wise error rate under any dependence
between tasks, and is uniformly more powerful than Bonferroni).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from evalharness import ap_ranking

KINDS = ("mean", "spearman", "pearson", "max_ap")
_MAX_CELLS = 2**25  # array elements per batch of resamples (~256 MB of float64); scipy pays per batch


@dataclass(frozen=True, eq=False)
class Sample:
    """One setting's per-item data for one task, units aligned with another setting's (same order).

    `kind` says how the task turns units into its score: "mean" (per-query nDCG, per-experiment
    accuracy: the mean of `values`), "spearman"/"pearson" (STS: the correlation of predicted
    similarities `values` with `gold`), "max_ap" (pair classification, mteb's max_ap: the best over
    the columns of `values` (n, F) of the average precision of 0-1 `gold`, each column multiplied by
    its entry of `signs`, -1 for distances). `parts` says which (split, subset) part each unit is
    in, since mteb averages a task's parts rather than pooling their units."""

    kind: str
    values: np.ndarray
    gold: np.ndarray | None = None
    parts: np.ndarray | None = None
    signs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Sample kind {self.kind!r} is not one of {KINDS}")
        values = np.asarray(self.values, dtype=float)
        if values.ndim != (2 if self.kind == "max_ap" else 1):
            raise ValueError(f"{self.kind} values must be {'(n, F)' if self.kind == 'max_ap' else '(n,)'}")
        object.__setattr__(self, "values", values)
        n = len(values)
        if self.kind == "mean" and self.gold is not None:
            raise ValueError("gold is for the correlation and max_ap kinds; a 'mean' score needs none")
        if self.kind != "mean":
            if self.gold is None:
                raise ValueError(f"{self.kind} needs gold (one per unit)")
            object.__setattr__(self, "gold", _per_unit(self.gold, n, "gold", float))
        if self.parts is not None:
            object.__setattr__(self, "parts", _per_unit(self.parts, n, "parts", int))
        signs = tuple(float(s) for s in self.signs)
        if self.kind == "max_ap" and (not signs or len(signs) != values.shape[1] or set(signs) - {1.0, -1.0}):
            raise ValueError(f"max_ap needs one sign (+1 or -1) per column: {values.shape[1]} columns")
        if self.kind != "max_ap" and signs:
            raise ValueError("signs are for the max_ap kind only")
        object.__setattr__(self, "signs", signs)

    @property
    def n(self) -> int:
        return len(self.values)


def _per_unit(array: np.ndarray, n: int, name: str, dtype: type) -> np.ndarray:
    """Per-unit arrays fail at construction, where the mistake is, not in a resample."""
    out = np.asarray(array, dtype=dtype)
    if out.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per unit; got {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class Delta:
    """Δ = score(a) - score(b) on one task, with its bootstrap CI and permutation p-value.

    `distribution` (one Δ per bootstrap resample) is kept so that `pooled_delta` can average tasks and
    `interval` can read the CI at another level. `method` says how the CI is read: "percentile" (of the
    distribution) or "t" (Δ ± t quantile x `se` with `df` degrees of freedom: evalharness.t_interval)."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int
    confidence: float
    distribution: np.ndarray
    method: str = "percentile"
    se: float = math.nan
    df: float = math.nan


def interval(d: Delta, confidence: float) -> tuple[float, float]:
    """The Δ's CI at `confidence`, read the way its method reads it (a family of Δs reads its CIs at
    a Bonferroni level, 1 - alpha/m: see evalharness.significance)."""
    if d.method == "t":
        if d.se == 0 or math.isnan(d.se):
            return d.delta, d.delta
        half = float(stats.t.ppf(1 - (1 - confidence) / 2, d.df)) * d.se
        return d.delta - half, d.delta + half
    if np.all(d.distribution == d.delta):  # identical settings, a single unit: a collapsed CI
        return d.delta, d.delta
    return _percentile_ci(d.distribution, confidence)


# ---------------------------------------------------------------------------------------------
# The task's score, per part
# ---------------------------------------------------------------------------------------------


def score(sample: Sample) -> float:
    """The task's score: the mean over parts of the part's statistic (mteb averages a task's splits/subsets).

    NaN when a part's statistic is undefined (constant predictions, a part without positives)."""
    return float(np.mean(_part_scores(sample)))


def _part_scores(sample: Sample) -> np.ndarray:
    parts = _parts(sample)
    labels = np.unique(parts)
    if sample.kind == "max_ap":
        return ap_ranking.ranking(sample.values, sample.signs, sample.gold, parts, labels).max_ap(
            np.ones(sample.n)
        )
    stat = _statistic(sample.kind)
    gold = sample.gold if sample.gold is not None else np.zeros(sample.n)
    return np.array([stat(sample.values[parts == p], gold[parts == p]) for p in labels])


def _parts(sample: Sample) -> np.ndarray:
    return sample.parts if sample.parts is not None else np.zeros(sample.n, dtype=int)


def _statistic(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """One part's mean or correlation on 1-d units; NaN, not an exception, where it is undefined,
    because a bootstrap resample may well draw a part with constant values (or none of its units)."""
    if kind == "mean":
        return lambda values, gold: float(np.mean(values)) if len(values) else math.nan
    corr = stats.spearmanr if kind == "spearman" else stats.pearsonr
    return lambda values, gold: _correlation(corr, values, gold)


def _correlation(corr: Callable, values: np.ndarray, gold: np.ndarray) -> float:
    if len(values) < 2 or np.ptp(values) == 0 or np.ptp(gold) == 0:
        return math.nan  # scipy would warn and return NaN; checking first keeps the loops quiet
    return float(corr(values, gold).statistic)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without its 'Mean of empty slice' warning for an all-NaN resample (which stays NaN)."""
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, x, 0.0).sum(axis=axis) / ok.sum(axis=axis)


# ---------------------------------------------------------------------------------------------
# Δ statistics as scipy calls them: on resampled arrays, a part left out where it is undefined
# ---------------------------------------------------------------------------------------------


def _mean_delta(d: np.ndarray, parts: np.ndarray, labels: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorized Δ for "mean" tasks: d = a - b per unit, (..., n); the mask-based mean per part keeps
    whole batches of resamples in one numpy call. A part that a resample does not draw is left out."""
    d, parts = np.moveaxis(d, axis, -1), np.moveaxis(np.broadcast_to(parts, d.shape), axis, -1)
    per_part = []
    for label in labels:
        mask = parts == label
        with np.errstate(invalid="ignore", divide="ignore"):
            per_part.append(np.where(mask, d, 0.0).sum(axis=-1) / mask.sum(axis=-1))
    return _nanmean(np.stack(per_part), axis=0)


def _correlation_delta(
    kind: str,
    a_values: np.ndarray,
    b_values: np.ndarray,
    gold: np.ndarray,
    parts: np.ndarray,
    labels: np.ndarray,
) -> float:
    """Δ of a correlation on one resample (scipy loops): per part, a's minus b's, then the mean over
    the parts where both are defined (a degenerate resample of a part drops that part)."""
    stat = _statistic(kind)
    per_part = []
    for label in labels:
        mask = parts == label
        per_part.append(stat(a_values[mask], gold[mask]) - stat(b_values[mask], gold[mask]))
    return float(_nanmean(np.asarray(per_part), axis=0))


def _correlation_rows(kind: str, values: np.ndarray, gold: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman / Pearson of each row of (..., n) arrays at once: Pearson's r of the (average) ranks
    for Spearman, as scipy.stats.spearmanr computes it; NaN for a row with constant values. One call
    for a whole batch of resamples instead of one scipy call per resample (a 1,000-pair STS task's
    2,000 resamples and permutations took 3 s that way)."""
    values, gold = np.broadcast_arrays(np.moveaxis(values, axis, -1), np.moveaxis(gold, axis, -1))
    if kind == "spearman":
        values, gold = stats.rankdata(values, axis=-1), stats.rankdata(gold, axis=-1)
    v = values - values.mean(axis=-1, keepdims=True)
    g = gold - gold.mean(axis=-1, keepdims=True)
    denom = np.sqrt((v * v).sum(axis=-1) * (g * g).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (v * g).sum(axis=-1) / denom
    return np.where(denom > 0, np.clip(r, -1.0, 1.0), np.nan)


def _vectorized(a: Sample) -> bool:
    """Mean scores and correlations of a one-part task are computed for whole batches of resamples
    at once. max_ap stays one resample per call: its batched form (`ap_ranking.Ranking.max_ap` on (B, n)
    weights, same results) moves a (B, n) array per scoring function and measured 1.6x slower."""
    return a.kind == "mean" or (a.kind != "max_ap" and len(np.unique(_parts(a))) == 1)


def _bootstrap_problem(a: Sample, b: Sample) -> tuple[list[np.ndarray], Callable]:
    """(data, statistic) for scipy.stats.bootstrap(paired=True): the units' (a, b, [gold], parts), or
    for max_ap the unit indices, which an ap_ranking.Ranking of each setting scores as counts."""
    parts = _parts(a)
    labels = np.unique(parts)
    if a.kind == "mean":

        def mean_statistic(a_v: np.ndarray, b_v: np.ndarray, parts: np.ndarray, axis: int = -1) -> np.ndarray:
            return _mean_delta(a_v - b_v, parts, labels, axis)

        return [a.values, b.values, parts], mean_statistic
    if a.kind == "max_ap":
        rank_a, rank_b = (ap_ranking.ranking(s.values, s.signs, s.gold, parts, labels) for s in (a, b))

        def ap_statistic(units: np.ndarray, axis: int = -1) -> np.ndarray:
            counts = ap_ranking.counts(np.moveaxis(units, axis, -1), a.n)
            return _nanmean(rank_a.max_ap(counts) - rank_b.max_ap(counts), axis=0)

        return [np.arange(a.n)], ap_statistic

    if _vectorized(a):

        def rows_statistic(a_v: np.ndarray, b_v: np.ndarray, gold: np.ndarray, axis: int = -1) -> np.ndarray:
            return _correlation_rows(a.kind, a_v, gold, axis) - _correlation_rows(a.kind, b_v, gold, axis)

        return [a.values, b.values, a.gold], rows_statistic

    def correlation_statistic(a_v: np.ndarray, b_v: np.ndarray, gold: np.ndarray, parts: np.ndarray) -> float:
        return _correlation_delta(a.kind, a_v, b_v, gold, parts, labels)

    return [a.values, b.values, a.gold, parts], correlation_statistic


def _common_scale(sample: Sample) -> np.ndarray:
    """The values on a scale two settings share, per part, without changing the setting's score:
    ranks for Spearman and max AP (both depend on the order alone; ties stay ties), z-scores for
    Pearson (invariant to an affine map). A permutation swaps a unit's value between the settings,
    which only makes sense on a common scale: a 3-shot prompt moves all of a model's cosines up, and
    mixing raw cosines of both settings made the test of a large STS gain say "noise". Mean scores
    (nDCG, accuracy) share a scale already."""
    if sample.kind == "mean":
        return sample.values
    parts = _parts(sample)
    out = np.empty_like(sample.values)
    for label in np.unique(parts):
        mask = parts == label
        part = sample.values[mask]
        if sample.kind == "pearson":
            spread = part.std()
            out[mask] = (part - part.mean()) / spread if spread > 0 else 0.0
        else:
            out[mask] = stats.rankdata(part, axis=0)
    return out


def _permutation_statistic(a: Sample, b: Sample) -> Callable:
    """statistic(i_a, i_b[, axis]) for scipy.stats.permutation_test on *row indices* into the stacked
    rows of a and b (on a common scale: `_common_scale`): swapping two indices swaps a unit's whole row (max_ap's rows are (F,) vectors,
    which scipy's "samples" permutation of 1-d data could not keep together). gold and parts stay."""
    parts = _parts(a)
    labels = np.unique(parts)
    table = np.concatenate([_common_scale(a), _common_scale(b)])
    if a.kind == "mean":
        return lambda i_a, i_b, axis=-1: _mean_delta(table[i_a] - table[i_b], parts, labels, axis)
    if a.kind == "max_ap":
        ranking = ap_ranking.ranking(table, a.signs, np.tile(a.gold, 2), np.tile(parts, 2), labels)

        def statistic(i_a: np.ndarray, i_b: np.ndarray, axis: int = -1) -> np.ndarray:
            w_a, w_b = (ap_ranking.counts(np.moveaxis(i, axis, -1), len(table)) for i in (i_a, i_b))
            return _nanmean(ranking.max_ap(w_a) - ranking.max_ap(w_b), axis=0)

        return statistic
    if _vectorized(a):
        return lambda i_a, i_b, axis=-1: (
            _correlation_rows(a.kind, table[i_a], a.gold, axis)
            - _correlation_rows(a.kind, table[i_b], a.gold, axis)
        )
    return lambda i_a, i_b: _correlation_delta(a.kind, table[i_a], table[i_b], a.gold, parts, labels)


# ---------------------------------------------------------------------------------------------
# One Δ
# ---------------------------------------------------------------------------------------------


def paired_delta(
    a: Sample, b: Sample, *, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> Delta:
    """Paired: the same units are resampled for both settings (scipy.stats.bootstrap with paired=True
    over (a.values, b.values, gold, parts)), statistic = score on the resample of a minus that of b;
    p-value from scipy.stats.permutation_test with permutation_type="samples" (swaps a's and b's value
    of a unit), same statistic. Raises ValueError with a clear message if a and b differ in kind,
    length, gold or parts. (max_ap resamples unit indices instead, scored as counts: see ap_ranking.Ranking.)

    Degenerate cases give an answer, not an error: identical settings (a normal case) are Δ 0, CI
    [0, 0], p 1; a single unit is its Δ with a collapsed CI and p 1 (what both resampling schemes give
    on one unit); an undefined score (constant predictions) makes everything NaN. Resamples in which
    a part's statistic is undefined leave that part out, and resamples undefined in every part are
    left out of the CI. scipy tests exactly when 2**n <= resamples (e.g. 10 experiments at 1024).

    For pooling several tasks with `pooled_delta`, give each task its own seed (`task_seed`):
    resamples drawn with one seed for tasks of equal size are the same draws, not independent ones."""
    check_pair(a, b)
    n = a.n
    observed = score(a) - score(b)
    if _identical(a, b):
        return Delta(0.0, 0.0, 0.0, 1.0, n, confidence, np.zeros(resamples))
    if math.isnan(observed):
        return Delta(math.nan, math.nan, math.nan, math.nan, n, confidence, np.full(resamples, math.nan))
    if n < 2:
        return Delta(observed, observed, observed, 1.0, n, confidence, np.full(resamples, observed))
    distribution = _bootstrap(a, b, confidence, resamples, seed)
    low, high = _percentile_ci(distribution, confidence)
    return Delta(observed, low, high, _permutation_p(a, b, resamples, seed), n, confidence, distribution)


def task_seed(task: str, seed: int = 0) -> int:
    """A seed per task, stable across runs and machines (unlike hash()), so that pooled tasks are
    resampled independently while every report still draws the same resamples."""
    return zlib.crc32(f"{seed}:{task}".encode())


def check_pair(a: Sample, b: Sample) -> None:
    """Only two settings scored on the same units, gold and parts have a paired Δ."""
    if a.kind != b.kind:
        raise ValueError(f"cannot pair a {a.kind!r} sample with a {b.kind!r} sample")
    if a.n != b.n:
        raise ValueError(f"paired samples need the same units: {a.n} vs {b.n}")
    if not _same(a.gold, b.gold):
        raise ValueError("paired samples have different gold: they are not scored on the same units")
    if not _same(a.parts, b.parts):
        raise ValueError("paired samples have different parts: their units are not aligned")
    if a.values.shape != b.values.shape or a.signs != b.signs:  # a unit's rows must be swappable
        raise ValueError("max_ap samples need the same similarity columns (shape and signs)")


def _same(x: np.ndarray | None, y: np.ndarray | None) -> bool:
    return (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))


def _identical(a: Sample, b: Sample) -> bool:
    return np.array_equal(a.values, b.values)


def _batch(n: int, arrays: int, resamples: int) -> int | None:
    """Resamples per scipy batch: all at once unless that would hold more than _MAX_CELLS elements
    (a 100k-pair task's 1000 resamples would take gigabytes)."""
    per_resample = max(1, n * arrays)
    return None if per_resample * resamples <= _MAX_CELLS else max(1, _MAX_CELLS // per_resample)


def _bootstrap(a: Sample, b: Sample, confidence: float, resamples: int, seed: int) -> np.ndarray:
    data, statistic = _bootstrap_problem(a, b)
    with warnings.catch_warnings():  # NaN resamples: scipy warns that its CI is NaN; ours omits them
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            data,
            statistic,
            paired=True,
            vectorized=_vectorized(a),
            confidence_level=confidence,
            n_resamples=resamples,
            batch=_batch(a.n, len(data), resamples),
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return np.asarray(result.bootstrap_distribution, dtype=float)


def _permutation_p(a: Sample, b: Sample, resamples: int, seed: int) -> float:
    units = np.arange(a.n)
    result = stats.permutation_test(
        (units, units + a.n),
        _permutation_statistic(a, b),
        permutation_type="samples",
        vectorized=_vectorized(a),
        n_resamples=resamples,
        batch=_batch(a.n, 2, resamples),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def _percentile_ci(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    """scipy.stats.bootstrap's percentile interval (the same scipy.stats.quantile call), skipping NaN
    resamples; shared by one task and the pooled mean so that both read their CI the same way."""
    alpha = (1 - confidence) / 2
    low, high = stats.quantile(distribution, np.array([alpha, 1 - alpha]), nan_policy="omit")
    return float(low), float(high)


def resampled_scores(sample: Sample, units: np.ndarray) -> np.ndarray:
    """The task's score on each row of `units` ((B, n) unit indices drawn with replacement), NaN where
    undefined; parts a resample does not draw are left out, as in `paired_delta`. Several settings
    given the same `units` are resampled *paired* (the report's Borda rank uncertainty)."""
    parts = _parts(sample)
    labels = np.unique(parts)
    rows = max(1, _MAX_CELLS // max(1, sample.n))
    out = []
    for start in range(0, len(units), rows):
        chunk = np.asarray(units[start : start + rows], dtype=int)
        if sample.kind == "mean":
            out.append(_mean_delta(sample.values[chunk], parts[chunk], labels))
        elif sample.kind == "max_ap":
            ranking = ap_ranking.ranking(sample.values, sample.signs, sample.gold, parts, labels)
            out.append(_nanmean(ranking.max_ap(ap_ranking.counts(chunk, sample.n)), axis=0))
        elif len(labels) == 1:
            out.append(_correlation_rows(sample.kind, sample.values[chunk], sample.gold[chunk]))
        else:
            stat = _statistic(sample.kind)
            out.append(
                np.array([
                    _nanmean(np.array([stat(sample.values[r][parts[r] == p], sample.gold[r][parts[r] == p])
                                       for p in labels]), axis=0)
                    for r in chunk
                ])
            )  # fmt: skip
    return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------------------------
# Many Δs: across tasks
# ---------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (scipy has no Holm; this is the standard step-down formula),
    order kept, NaN kept as NaN (a task without a test is not one of the m hypotheses)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(steps)  # an adjusted p is never below a smaller p's
    return out.tolist()


def pooled_delta(deltas: Sequence[Delta], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean Δ over tasks, low, high): the tasks' bootstrap distributions averaged resample by resample
    (each task resampled independently), percentile CI of that mean.

    A task whose Δ is undefined makes the pooled Δ undefined; leave it out of `deltas` instead."""
    if not deltas:
        raise ValueError("pooled_delta needs at least one Δ")
    lengths = {len(d.distribution) for d in deltas}
    if len(lengths) != 1:
        raise ValueError(f"pooled Δs need the same number of resamples; got {sorted(lengths)}")
    mean = float(np.mean([d.delta for d in deltas]))
    low, high = _percentile_ci(np.mean([d.distribution for d in deltas], axis=0), confidence)
    return mean, low, high
