"""A Δ over a handful of experiments (clustering's 10 v-measures): a paired t-interval and t-test.

A percentile bootstrap over 10 units is known to be too narrow (it behaves like a z-interval with the
sample SD, without the t quantile's widening, and a resample of 10 values has few distinct means), so a
CI that excludes 0 sat beside a permutation p well above 0.05 in the demo report. mteb's experiments
of one part are paired across settings (experiment i draws the same subsample in every setting), and
their Δs are close to normal, which is what a paired t-interval assumes; the interval and the test
are then one computation (`scipy.stats.ttest_rel`), so a CI excludes 0 exactly when p < 1 - level.

A task with several parts (splits x subsets) averages the parts' mean Δs, as mteb averages the parts'
scores: the standard error adds the parts' variances and the degrees of freedom are
Welch-Satterthwaite's; one part is exactly `ttest_rel`.

For pooling with other tasks (`stats.pooled_delta` averages distributions resample by resample) the
Δ carries draws from its t distribution (Δ + se·T_df), seeded like the bootstrap.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from evalharness import stats


def paired_t_delta(
    a: stats.Sample, b: stats.Sample, *, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> stats.Delta:
    """Δ = score(a) - score(b) of a "mean" task with a t-interval and two-sided t-test p-value.
    Identical settings are Δ 0, CI [0, 0], p 1; a constant non-zero Δ on every unit is that Δ with a
    collapsed CI and p 0; a part with a single unit (no variance) falls back to `stats.paired_delta`."""
    stats.check_pair(a, b)
    if a.kind != "mean":
        raise ValueError(f"a t-interval is for mean scores, not {a.kind!r}")
    parts = a.parts if a.parts is not None else np.zeros(a.n, dtype=int)
    diffs = [a.values[parts == p] - b.values[parts == p] for p in np.unique(parts)]
    if any(len(d) < 2 for d in diffs):
        return stats.paired_delta(a, b, confidence=confidence, resamples=resamples, seed=seed)
    means = np.array([d.mean() for d in diffs])
    variances = np.array([d.var(ddof=1) / len(d) for d in diffs])  # of each part's mean Δ
    delta = float(means.mean())
    se = float(math.sqrt(variances.sum()) / len(diffs))
    if se == 0:
        p = 1.0 if delta == 0 else 0.0
        return stats.Delta(
            delta, delta, delta, p, a.n, confidence, np.full(resamples, delta), "t", 0.0, math.inf
        )
    dof = float(
        variances.sum() ** 2 / sum(v**2 / (len(d) - 1) for v, d in zip(variances, diffs, strict=True))
    )
    p = float(2 * sps.t.sf(abs(delta) / se, dof))
    draws = delta + se * np.random.default_rng(seed).standard_t(dof, size=resamples)
    result = stats.Delta(delta, math.nan, math.nan, p, a.n, confidence, draws, "t", se, dof)
    low, high = stats.interval(result, confidence)
    return stats.Delta(delta, low, high, p, a.n, confidence, draws, "t", se, dof)
