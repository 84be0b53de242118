"""evalharness.stats: paired bootstrap CIs and permutation p-values for a Δ between two settings,
checked on synthetic data with a known shift, against scipy's and sklearn's own results on the same
input, and for Holm's correction and the pooled Δ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import average_precision_score

from evalharness.stats import KINDS, Delta, Sample, holm, paired_delta, pooled_delta, score, task_seed


def _queries(n: int, shift: float, seed: int, spread: float = 0.25, noise: float = 0.05):
    """Per-query scores of a baseline b and of a = b + shift + noise (queries differ by `spread`)."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0.5, spread, n)
    return b + shift + rng.normal(0, noise, n), b


def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


# ---------------------------------------------------------------------------------------------
# "mean" tasks: a known shift, no shift, scipy's own numbers, pairing
# ---------------------------------------------------------------------------------------------


def test_known_shift_is_found():
    a, b = _queries(300, 0.05, seed=1)
    d = paired_delta(Sample("mean", a), Sample("mean", b), resamples=1000)
    assert d.delta == pytest.approx(np.mean(a) - np.mean(b))
    assert d.low < 0.05 < d.high
    assert d.low > 0
    assert d.p_value < 0.01
    assert (d.n, d.confidence, d.distribution.shape) == (300, 0.95, (1000,))


def test_identical_settings_and_no_shift():
    a, _ = _queries(50, 0.0, seed=2)
    same = paired_delta(Sample("mean", a), Sample("mean", a.copy()))
    assert (same.delta, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)

    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 0.2, 200), rng.normal(0.5, 0.2, 200)  # two draws of one distribution
    d = paired_delta(Sample("mean", x), Sample("mean", y), resamples=1000, seed=0)
    assert d.low < 0 < d.high
    assert d.p_value > 0.05


def test_matches_scipy_on_the_same_input():
    a, b = _queries(120, 0.02, seed=4)
    d = paired_delta(Sample("mean", a), Sample("mean", b), resamples=500, seed=7)
    boot = sps.bootstrap(
        (a, b),
        _mean_diff,
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=500,
        confidence_level=0.95,
        rng=np.random.default_rng(7),
    )
    perm = sps.permutation_test(
        (a, b),
        _mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=500,
        rng=np.random.default_rng(7),
    )
    np.testing.assert_allclose(d.distribution, boot.bootstrap_distribution, rtol=0, atol=1e-12)
    assert d.low == pytest.approx(boot.confidence_interval.low, abs=1e-12)
    assert d.high == pytest.approx(boot.confidence_interval.high, abs=1e-12)
    assert d.p_value == pytest.approx(perm.pvalue, abs=1e-12)


def test_pairing_finds_a_small_consistent_shift_that_unpaired_analysis_misses():
    a, b = _queries(200, 0.02, seed=5, spread=0.3, noise=0.01)  # queries vary 15x more than the shift
    d = paired_delta(Sample("mean", a), Sample("mean", b), resamples=1000)
    assert d.low > 0 and d.p_value < 0.01

    unpaired = sps.bootstrap(
        (a, b), _mean_diff, method="percentile", n_resamples=1000, rng=np.random.default_rng(0)
    )
    independent = sps.permutation_test((a, b), _mean_diff, n_resamples=1000, rng=np.random.default_rng(0))
    assert unpaired.confidence_interval.low < 0 < unpaired.confidence_interval.high
    assert independent.pvalue > 0.05


def test_few_experiments_get_scipys_exact_test():
    """10 classification experiments: 2**10 sign patterns, so 1024 resamples enumerate them all and
    a gain in every experiment has the smallest two-sided p, 2 / 1024."""
    rng = np.random.default_rng(6)
    b = rng.uniform(0.6, 0.8, 10)
    d = paired_delta(Sample("mean", b + rng.uniform(0.01, 0.02, 10)), Sample("mean", b), resamples=1024)
    assert d.p_value == pytest.approx(2 / 1024)


def test_same_seed_same_result_other_seed_other_resamples():
    a, b = _queries(80, 0.01, seed=8)
    first, again = (
        paired_delta(Sample("mean", a), Sample("mean", b), resamples=300, seed=11) for _ in range(2)
    )
    assert np.array_equal(first.distribution, again.distribution)
    assert (first.low, first.high, first.p_value) == (again.low, again.high, again.p_value)
    other = paired_delta(Sample("mean", a), Sample("mean", b), resamples=300, seed=12)
    assert not np.array_equal(first.distribution, other.distribution)


# ---------------------------------------------------------------------------------------------
# STS (correlations), pair classification (max AP), several parts
# ---------------------------------------------------------------------------------------------


def _sts(n: int, seed: int, noise_a: float, noise_b: float):
    rng = np.random.default_rng(seed)
    gold = rng.normal(size=n)
    return gold + rng.normal(0, noise_a, n), gold + rng.normal(0, noise_b, n), gold


def test_spearman_score_and_delta():
    pred_a, pred_b, gold = _sts(300, seed=12, noise_a=0.5, noise_b=1.0)  # a draw near the truth
    a, b = Sample("spearman", pred_a, gold), Sample("spearman", pred_b, gold)
    assert score(a) == sps.spearmanr(pred_a, gold).statistic
    assert score(Sample("pearson", pred_a, gold)) == pytest.approx(
        sps.pearsonr(pred_a, gold).statistic, abs=1e-15
    )

    def rho(noise):  # Spearman's rho of a bivariate normal with Pearson r (Pearson 1907)
        return 6 / math.pi * math.asin(1 / math.sqrt(1 + noise**2) / 2)

    d = paired_delta(a, b, resamples=500)
    assert d.delta == pytest.approx(score(a) - score(b))
    assert d.low < rho(0.5) - rho(1.0) < d.high
    assert d.low > 0 and d.p_value < 0.01

    boot = sps.bootstrap(
        (pred_a, pred_b, gold),
        lambda x, y, g: sps.spearmanr(x, g).statistic - sps.spearmanr(y, g).statistic,
        paired=True,
        vectorized=False,
        method="percentile",
        n_resamples=500,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(d.distribution, boot.bootstrap_distribution, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["spearman", "pearson", "max_ap"])
def test_the_permutation_test_does_not_depend_on_each_settings_scale(kind):
    """A setting's score is unchanged by a monotone (Spearman, AP) or affine (Pearson) map of its
    similarities, and so must its test be: a few-shot prompt that shifts every cosine up is not
    evidence against a gain. Swapping raw values across settings on different scales gave a large
    STS loss p = 0.09 in the demo; on a common scale the same p comes out whatever each scale is."""
    parts = np.repeat([0, 1], [70, 50])
    if kind == "max_ap":
        (va, gold), (vb, _) = _pairs(120, seed=21, noise=1.0), _pairs(120, seed=21, noise=1.6)
        signs = (1.0, -1.0)
        rescaled = np.c_[np.exp(va[:, 0]) * 40 + 3, va[:, 1] * 0.01 - 7]  # monotone per column

        def sample(v):
            return Sample(kind, v, gold, parts=parts, signs=signs)
    else:
        va, vb, gold = _sts(120, seed=21, noise_a=0.6, noise_b=0.9)
        rescaled = va * 30 + 100 if kind == "pearson" else np.exp(va) * 30 + 100
        rescaled = rescaled + np.where(parts == 1, 50.0, 0.0)  # and per part

        def sample(v):
            return Sample(kind, v, gold, parts=parts)

    base = paired_delta(sample(va), sample(vb), resamples=400, seed=3)
    moved = paired_delta(sample(rescaled), sample(vb), resamples=400, seed=3)
    assert moved.delta == pytest.approx(base.delta, abs=1e-9)
    np.testing.assert_allclose(moved.distribution, base.distribution, rtol=0, atol=1e-9)
    assert moved.p_value == pytest.approx(base.p_value, abs=1e-12)


def test_a_gain_on_another_scale_is_found():
    """3-shot cosines all high and compressed, 0-shot spread out: the gain in Spearman is real."""
    va, vb, gold = _sts(80, seed=22, noise_a=0.4, noise_b=1.2)
    a = Sample("spearman", 0.9 + 0.001 * np.tanh(va), gold)  # compressed near 0.9, same order
    d = paired_delta(a, Sample("spearman", vb, gold), resamples=1000, seed=1)
    assert d.low > 0 and d.p_value < 0.01


def _pairs(n: int, seed: int, noise: float):
    """Pair classification: 0-1 labels, a cosine-like score (higher = similar, with ties) and a
    distance (lower = similar)."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=n) < 0.3).astype(float)
    similarity = np.round(labels + rng.normal(0, noise, n), 1)
    distance = -(labels + rng.normal(0, noise * 0.8, n))
    return np.c_[similarity, distance], labels


def _sklearn_max_ap(values, labels, signs):
    return max(average_precision_score(labels, values[:, j] * s) for j, s in enumerate(signs))


def test_max_ap_is_sklearns_best_column():
    values, labels = _pairs(400, seed=10, noise=1.0)
    signs = (1.0, -1.0)
    expected = _sklearn_max_ap(values, labels, signs)
    assert score(Sample("max_ap", values, labels, signs=signs)) == pytest.approx(expected, abs=1e-12)
    assert expected > average_precision_score(labels, values[:, 1])  # the sign matters for distances


def test_max_ap_resamples_equal_sklearn_on_the_resampled_arrays():
    """max_ap scores a resample as unit counts and a permutation as row weights; both must equal
    sklearn's AP of the resampled / permuted arrays, resample by resample."""
    (va, labels), (vb, _) = _pairs(150, seed=11, noise=1.0), _pairs(150, seed=11, noise=1.4)
    signs = (1.0, -1.0)
    d = paired_delta(
        Sample("max_ap", va, labels, signs=signs), Sample("max_ap", vb, labels, signs=signs), resamples=200
    )

    def sk_delta(units):
        i = units.astype(int)
        return _sklearn_max_ap(va[i], labels[i], signs) - _sklearn_max_ap(vb[i], labels[i], signs)

    boot = sps.bootstrap(
        (np.arange(150),),
        sk_delta,
        vectorized=False,
        method="percentile",
        n_resamples=200,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_allclose(d.distribution, boot.bootstrap_distribution, rtol=0, atol=1e-12)

    table = np.concatenate([va, vb])

    def sk_swapped(i_a, i_b):
        return _sklearn_max_ap(table[i_a], labels, signs) - _sklearn_max_ap(table[i_b], labels, signs)

    units = np.arange(150)
    perm = sps.permutation_test(
        (units, units + 150),
        sk_swapped,
        permutation_type="samples",
        n_resamples=200,
        rng=np.random.default_rng(0),
    )
    assert d.p_value == pytest.approx(perm.pvalue, abs=1e-12)
    assert d.delta == pytest.approx(sk_delta(np.arange(150.0)), abs=1e-12)


def test_parts_are_averaged_not_pooled():
    rng = np.random.default_rng(12)
    parts = np.repeat([0, 1, 2], [10, 50, 140])  # unequal sizes: pooling would weigh part 2 by 70%
    values = rng.normal([0.2, 0.5, 0.8], 0.1, (200, 3))[np.arange(200), parts]
    expected = np.mean([values[parts == p].mean() for p in range(3)])
    assert score(Sample("mean", values, parts=parts)) == pytest.approx(expected, abs=1e-15)
    assert abs(values.mean() - expected) > 0.05

    pred_a, pred_b, gold = _sts(200, seed=13, noise_a=0.3, noise_b=0.8)
    per_part = [sps.spearmanr(pred_a[parts == p], gold[parts == p]).statistic for p in range(3)]
    assert score(Sample("spearman", pred_a, gold, parts=parts)) == pytest.approx(np.mean(per_part), abs=1e-15)

    shift = np.where(parts == 0, 0.1, 0.0)  # only the small part improves: Δ = 0.1 / 3, not 0.1 / 20
    d = paired_delta(Sample("mean", values + shift, parts=parts), Sample("mean", values, parts=parts))
    assert d.delta == pytest.approx(0.1 / 3)
    assert d.low <= 0.1 / 3 <= d.high


def test_degenerate_cases_give_answers():
    one = paired_delta(Sample("mean", [0.7]), Sample("mean", [0.5]))
    assert (one.delta, one.low, one.high, one.p_value) == pytest.approx((0.2, 0.2, 0.2, 1.0))

    gold = np.arange(6.0)
    constant = paired_delta(Sample("pearson", np.ones(6), gold), Sample("pearson", np.ones(6), gold))
    assert (constant.delta, constant.p_value) == (0.0, 1.0)  # identical settings, even undefined ones
    undefined = paired_delta(Sample("pearson", np.ones(6), gold), Sample("pearson", gold, gold))
    assert math.isnan(undefined.delta) and math.isnan(undefined.p_value)

    # a 3-unit part: many resamples draw one value three times there (an undefined correlation)
    pred_a, pred_b, gold = _sts(43, seed=14, noise_a=0.3, noise_b=0.6)
    parts = np.repeat([0, 1], [40, 3])
    with np.errstate(all="raise"):
        d = paired_delta(
            Sample("pearson", pred_a, gold, parts=parts), Sample("pearson", pred_b, gold, parts=parts)
        )
    assert np.isfinite([d.delta, d.low, d.high, d.p_value]).all()
    assert not np.isnan(d.distribution).any()  # the 40-unit part is always defined

    # 4 units in one part: resamples undefined everywhere are NaN and left out of the CI
    g = np.array([0.0, 1.0, 2.0, 3.0])
    tiny = paired_delta(
        Sample("pearson", [0.1, 0.9, 2.2, 2.8], g), Sample("pearson", [0.5, 0.2, 2.9, 2.0], g), resamples=300
    )
    assert np.isnan(tiny.distribution).any() and np.isfinite([tiny.low, tiny.high]).all()


@pytest.mark.parametrize(
    "other, message",
    [
        (Sample("spearman", np.ones(5), np.arange(5.0)), "cannot pair"),
        (Sample("pearson", np.ones(4), np.arange(4.0)), "same units"),
        (Sample("pearson", np.ones(5), np.arange(5.0) + 1), "different gold"),
        (Sample("pearson", np.ones(5), np.arange(5.0), parts=[0, 0, 1, 1, 1]), "different parts"),
    ],
)
def test_unpaired_inputs_are_rejected(other, message):
    with pytest.raises(ValueError, match=message):
        paired_delta(Sample("pearson", np.arange(5.0), np.arange(5.0)), other)


def test_samples_are_checked_where_they_are_made():
    assert KINDS == ("mean", "spearman", "pearson", "max_ap")
    with pytest.raises(ValueError, match="not one of"):
        Sample("ndcg", np.ones(3))
    with pytest.raises(ValueError, match="needs gold"):
        Sample("spearman", np.ones(3))
    with pytest.raises(ValueError, match="one sign"):
        Sample("max_ap", np.ones((3, 2)), np.ones(3), signs=(1.0,))
    with pytest.raises(ValueError, match="parts must have shape"):
        Sample("mean", np.ones(3), parts=[0, 1])


# ---------------------------------------------------------------------------------------------
# Across tasks
# ---------------------------------------------------------------------------------------------


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, math.nan, 0.04, 0.03, 0.005])
    assert math.isnan(adjusted[1])
    assert [adjusted[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, 0.01]) == pytest.approx([0.02, 0.02])  # never below a smaller p's
    assert holm([0.6, 0.5]) == [1.0, 1.0]
    assert holm([]) == []


def test_pooled_delta():
    shifts, sizes = (0.01, 0.03, 0.05), (150, 250, 400)
    deltas = []
    for i, (shift, n) in enumerate(zip(shifts, sizes, strict=True)):
        a, b = _queries(n, shift, seed=20 + i)
        deltas.append(
            paired_delta(Sample("mean", a), Sample("mean", b), resamples=1000, seed=task_seed(f"task{i}"))
        )
    mean, low, high = pooled_delta(deltas)
    assert mean == pytest.approx(np.mean([d.delta for d in deltas]))
    averaged = np.mean([d.distribution for d in deltas], axis=0)
    assert (low, high) == pytest.approx(tuple(np.percentile(averaged, [2.5, 97.5])), abs=1e-15)
    assert low < np.mean(shifts) < high
    assert high - low < min(d.high - d.low for d in deltas)  # three tasks pin the mean down better

    with pytest.raises(ValueError, match="same number of resamples"):
        pooled_delta([deltas[0], Delta(0.0, 0.0, 0.0, 1.0, 5, 0.95, np.zeros(10))])
    with pytest.raises(ValueError, match="at least one"):
        pooled_delta([])


def test_task_seeds_are_stable_and_distinct():
    assert task_seed("SciFact") == task_seed("SciFact")
    assert len({task_seed(t) for t in ("SciFact", "NFCorpus", "ArguAna")}) == 3
    assert task_seed("SciFact", 1) != task_seed("SciFact")


# ---------------------------------------------------------------------------------------------
# Scores on resamples (the Borda rank's uncertainty)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mean", "spearman", "pearson", "max_ap"])
@pytest.mark.parametrize("n_parts", [1, 2])
def test_resampled_scores_equal_the_score_of_the_resampled_arrays(kind, n_parts):
    from evalharness.stats import resampled_scores

    n = 60
    parts = np.repeat(np.arange(n_parts), n // n_parts)
    if kind == "max_ap":
        values, gold = _pairs(n, seed=30, noise=1.0)
        sample = Sample(kind, values, gold, parts=parts, signs=(1.0, -1.0))
    elif kind == "mean":
        values, _ = _queries(n, 0.0, seed=30)
        gold = None
        sample = Sample(kind, values, parts=parts)
    else:
        values, _, gold = _sts(n, seed=30, noise_a=0.5, noise_b=1.0)
        sample = Sample(kind, values, gold, parts=parts)
    assert resampled_scores(sample, np.arange(n)[None]) == pytest.approx([score(sample)], abs=1e-12)
    units = np.random.default_rng(1).integers(0, n, (25, n))
    expected = [
        score(Sample(kind, values[u], None if gold is None else gold[u], parts=parts[u], signs=sample.signs))
        if len(np.unique(parts[u])) == n_parts
        else math.nan
        for u in units
    ]
    got = resampled_scores(sample, units)
    drawn_all = ~np.isnan(expected)
    np.testing.assert_allclose(got[drawn_all], np.asarray(expected)[drawn_all], rtol=0, atol=1e-12)
