"""Pair classification's max AP over weighted units, for thousands of resamples without re-sorting.

Each scoring function's column is sorted once; a bootstrap resample is then unit counts and a
permutation a choice of rows, each scored in O(n) (sorting a 100k-pair task for each of thousands of
resamples takes minutes). A unit drawn twice is a tie with itself, so its count as weight gives exactly
the AP of the resampled array. Used by `evalharness.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Ranking:
    """max_ap over weighted units. Each column is sorted once; a bootstrap resample is then unit
    counts and a permutation a choice of rows, each scored in O(n) without sorting again (sorting a
    100k-pair task for each of thousands of resamples takes minutes). A unit drawn twice is a tie
    with itself, so its count as weight gives exactly the AP of the resampled array."""

    orders: tuple[np.ndarray, ...]  # per column: rows by descending signed score
    ends: tuple[np.ndarray, ...]  # per column: the last sorted position of each tied score
    labels: tuple[np.ndarray, ...]  # per column: 0-1 gold in that order
    masks: tuple[np.ndarray, ...]  # per part: which rows are in it

    def max_ap(self, weights: np.ndarray) -> np.ndarray:
        """Per part, the best column's AP with these row weights (NaN for a part without positives).
        `weights` (n,) gives (parts,); a batch (B, n) of resamples gives (parts, B) in one pass."""
        w = np.atleast_2d(weights)
        out = []
        for mask in self.masks:
            aps = np.stack(
                [
                    weighted_ap_rows(y, (w * mask)[:, o], e)
                    for o, e, y in zip(self.orders, self.ends, self.labels, strict=True)
                ]
            )
            out.append(np.where(np.isnan(aps).any(axis=0), np.nan, aps.max(axis=0)))
        result = np.stack(out)
        return result[:, 0] if np.ndim(weights) == 1 else result


def ranking(
    values: np.ndarray, signs: tuple[float, ...], gold: np.ndarray, parts: np.ndarray, labels: np.ndarray
) -> Ranking:
    orders, ends, ranked_labels = [], [], []
    for column, sign in zip(values.T, signs, strict=True):
        order = np.argsort(-sign * column, kind="stable")
        orders.append(order)
        ends.append(np.r_[np.flatnonzero(np.diff(column[order])), len(order) - 1])
        ranked_labels.append(gold[order])
    return Ranking(tuple(orders), tuple(ends), tuple(ranked_labels), tuple(parts == p for p in labels))


def weighted_ap_rows(labels: np.ndarray, weights: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """sklearn's average_precision_score (one threshold per distinct score) with sample weights, for
    each row of (B, n) weights over units already sorted; NaN (sklearn: 0 and a warning) without
    positives, which says nothing of a ranking."""
    hits = np.cumsum(weights * labels, axis=-1)[:, ends]
    seen = np.cumsum(weights, axis=-1)[:, ends]
    total = hits[:, -1] if hits.shape[1] else np.zeros(len(hits))
    gain = np.diff(hits, prepend=0.0, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(gain > 0, gain * hits / seen, 0.0).sum(axis=-1) / total
    return np.where(total > 0, ap, np.nan)


def counts(units: np.ndarray, n: int) -> np.ndarray:
    """How often each of n units is drawn, per row of a (B, k) batch of drawn indices (or one row)."""
    rows = np.atleast_2d(units).astype(int)
    offsets = np.arange(len(rows))[:, None] * n
    counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * n).reshape(len(rows), n)
    return counts[0] if np.ndim(units) == 1 else counts
