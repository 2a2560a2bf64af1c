"""Intervals over clips, paired differences, FD-infinity and the sample-size warning (metrics.intervals,
metrics.differences, metrics.fd_infinity, metrics.stats), against closed forms, scipy and direct loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from metrics.beats import BAS
from metrics.differences import (
    Difference,
    compare_methods,
    describe_difference,
    describe_differences,
    paired_difference,
)
from metrics.diversity import (
    Diversity,
    clip_pair_sums,
    diversity_of_clips,
    mean_pairwise_distance,
)
from metrics.fd_infinity import extrapolate_to_infinity, fd_infinity
from metrics.frechet import frechet_distance
from metrics.intervals import (
    ClipStatistic,
    combine_variances,
    half_sample_variance,
    jackknife_interval,
    jackknife_variance,
    subset_variance_coefficient,
    t_interval,
)
from metrics.protocol import Protocol
from metrics.stats import (
    FrechetMetric,
    GaussianStats,
    frechet_from_parts,
    sample_size_warning,
)


class FD(FrechetMetric):
    name = "FGD"
    unit = "windows"


def frechet_metric(real, fake, protocol: Protocol | None = None) -> FD:
    metric = FD(protocol or Protocol())
    dim = real[0].shape[1]
    metric.parts = {True: [GaussianStats(dim).update(c) for c in real],
                    False: [GaussianStats(dim).update(c) for c in fake]}
    return metric


def clips(rng, n, windows, dim, mean=0.0, scale=1.0):
    """n clips of ``windows`` feature vectors, half of the variance shared within a clip."""
    shared = rng.normal(size=(n, 1, dim)) * math.sqrt(0.5)
    return [mean + scale * (s + rng.normal(size=(windows, dim)) * math.sqrt(0.5)) for s in shared]


# -- the variance and the interval ---------------------------------------------------------------------

def test_jackknife_variance_is_a_direct_leave_one_out_loop():
    rng = np.random.default_rng(0)
    x, y = rng.gamma(2.0, size=15), rng.gamma(3.0, size=9)
    ratio = lambda i, j: float(x[i].mean() / y[j].mean())    # two groups, nonlinear
    expected = 0.0
    for values, n in (([ratio(np.delete(np.arange(15), k), np.arange(9)) for k in range(15)], 15),
                      ([ratio(np.arange(15), np.delete(np.arange(9), k)) for k in range(9)], 9)):
        expected += (n - 1) / n * sum((v - np.mean(values)) ** 2 for v in values)
    assert jackknife_variance(ratio, (15, 9)) == pytest.approx(expected, rel=1e-12)
    # a mean: s^2 / n exactly
    assert jackknife_variance(lambda i: float(x[i].mean()), (15,)) == pytest.approx(x.var(ddof=1) / 15, rel=1e-12)


def test_half_sample_variance_of_a_mean_estimates_its_variance():
    x = np.random.default_rng(1).normal(size=40)
    value = half_sample_variance(lambda i: float(x[i].mean()), (40,), 4000, seed=0)
    assert value == pytest.approx(x.var(ddof=1) / 40, rel=0.08)


def test_combine_variances_solves_for_the_linear_and_quadratic_parts():
    n, linear, quadratic = 32, 3.0, 5.0
    c1, c2 = subset_variance_coefficient(n, n - 1), subset_variance_coefficient(n, 16)
    assert (c1, c2) == (pytest.approx(63 / 31), 3.0)
    v1, v2 = linear + c1 * quadratic, linear + c2 * quadratic
    assert combine_variances(v1, v2, n) == pytest.approx(linear + quadratic, rel=1e-12)
    assert combine_variances(v1, 100.0, n) == pytest.approx(v1 / c1)     # clamped: A, q >= 0
    assert combine_variances(v1, 0.0, n) == pytest.approx(v1)
    assert combine_variances(v1, v2, 3) == v1                             # too few clips: the jackknife


def test_second_order_correction_on_a_degenerate_statistic():
    """|mean of x|^2 with E x = 0 in k dimensions is all quadratic: Var = 2 k / n^2 (closed form), the
    regime of a Fréchet distance between equal distributions. The jackknife counts it about twice;
    the corrected variance is near it (a little above: the clamp at v1 / c1 binds on noisy data sets)."""
    n, k, datasets = 40, 10, 100
    rng = np.random.default_rng(2)
    jack, corrected = [], []
    for seed in range(datasets):
        x = rng.normal(size=(n, k))
        statistic = lambda i, x=x: float(np.sum(x[i].mean(axis=0) ** 2))
        v1 = jackknife_variance(statistic, (n,))
        jack.append(v1)
        corrected.append(combine_variances(v1, half_sample_variance(statistic, (n,), 200, seed=seed), n))
    truth = 2.0 * k / n ** 2
    assert 1.7 < np.mean(jack) / truth < 2.3
    assert 0.9 < np.mean(corrected) / truth < 1.35


def test_log_scale_interval_of_a_distance():
    t = scipy_stats.t.ppf(0.975, 10)
    result = t_interval(4.0, 0.25, 10, log_scale=True)           # r = t * 0.5 / 4
    r = t * 0.5 / 4.0
    assert result.bounds == (pytest.approx(4.0 * math.exp(-r)), pytest.approx(4.0 * math.exp(r)))
    assert result.high - 4.0 > 4.0 - result.low > 0             # right-skewed, contains the estimate
    at_one = t_interval(t, 1.0, 10, log_scale=True)               # r = 1: the two upper arms meet
    assert at_one.high == pytest.approx(math.e * t)
    near_zero = t_interval(1e-14, 1e-26, 10, log_scale=True)      # rounding noise around 0 stays tiny
    assert 0 < near_zero.low < 1e-14 < near_zero.high < 1e-12
    assert t_interval(0.0, 1.0, 10, log_scale=True).bounds == (pytest.approx(-t), pytest.approx(t))


def test_bas_interval_is_the_student_t_interval():
    scores = np.random.default_rng(3).uniform(0.2, 0.9, size=12)
    metric = BAS(Protocol())
    metric.scores = list(scores)
    low, high = scipy_stats.t.interval(0.95, 11, loc=scores.mean(), scale=scipy_stats.sem(scores))
    assert metric.interval() == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    one = BAS(Protocol())
    one.scores = [0.5]
    assert all(math.isnan(v) for v in one.interval())


def test_intervals_contain_their_estimates_and_a_copied_real_side_is_zero():
    """The toy benchmark printed GT's FGD 0.0000 [21.9, 432.8] and S2G's Div 15.739 [9.546, 14.804]."""
    rng = np.random.default_rng(4)
    real = clips(rng, 8, 9, 16)
    gt = frechet_metric(real, [c.copy() for c in real])
    assert gt.compute() == pytest.approx(0.0, abs=1e-9)
    low, high = gt.interval(paired=True)
    assert low == 0.0 and high < 1e-6
    low, high = gt.interval()                        # unpaired: the sides are taken as independent
    assert low == 0.0 <= high
    method = frechet_metric(real, clips(rng, 8, 9, 16, mean=0.5, scale=1.3))
    for paired in (False, True):
        low, high = method.interval(paired)
        assert 0 < low < method.compute() < high
    diversity = Diversity(Protocol())
    for i, c in enumerate(clips(rng, 8, 9, 16)):
        diversity.update(c, "ab"[i % 2])
    low, high = diversity.interval()
    assert low < diversity.compute() < high


# -- the statistics resampled are the metrics' own ---------------------------------------------------------

def test_frechet_subsets_equal_frechet_from_parts():
    rng = np.random.default_rng(5)
    metric = frechet_metric(clips(rng, 10, 3, 6), clips(rng, 10, 3, 6, mean=0.3))
    real, fake = metric.parts[True], metric.parts[False]
    statistic = metric.clip_statistic().function
    for r, f in ((np.arange(10), np.arange(10)), (np.arange(1, 10), np.arange(10)),     # the complement route
                 (np.array([0, 2, 5, 7, 8, 9]), np.array([1, 3, 4, 6, 9])), (np.array([2, 4]), np.array([0, 9]))):
        assert statistic(r, f) == pytest.approx(frechet_from_parts(real, fake, "unbiased", r, f), rel=1e-9)
    assert metric.clip_statistic(paired=True).function(np.array([1, 4, 6])) == pytest.approx(
        frechet_from_parts(real, fake, "unbiased", [1, 4, 6], [1, 4, 6]), rel=1e-9)
    with pytest.raises(ValueError, match="as many real as generated"):
        frechet_metric(clips(rng, 4, 3, 6), clips(rng, 5, 3, 6)).clip_statistic(paired=True)


@pytest.mark.parametrize("distance", ["l2", "l1"])
def test_clip_pair_sums_give_the_mean_pairwise_distance_of_any_subset(distance):
    rng = np.random.default_rng(6)
    parts = [rng.normal(size=(k, 5)) for k in (3, 1, 4, 2, 3)]
    rows = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    sums, counts = clip_pair_sums(np.concatenate(parts), rows, len(parts), distance)
    for index in ([0, 1, 2, 3, 4], [0, 2], [1, 3], [2]):
        expected = mean_pairwise_distance(np.concatenate([parts[i] for i in index]), distance)
        assert diversity_of_clips(sums, counts, np.array(index)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 windows"):
        diversity_of_clips(sums, counts, np.array([1]))


@pytest.mark.parametrize("pairs, limit", [("within_identity", 2000), ("all", 2000), ("within_identity", 7)])
def test_diversity_clip_statistic_of_all_clips_is_compute(pairs, limit):
    rng = np.random.default_rng(7)
    metric = Diversity(Protocol(diversity_pairs=pairs, diversity_max_windows=limit))
    for i, c in enumerate(clips(rng, 6, 3, 4)):
        metric.update(c, "ab"[i % 2])
    statistic = metric.clip_statistic()
    assert statistic.groups == (("a", "b") if pairs == "within_identity" else ("all",))
    assert statistic.function(*(np.arange(n) for n in statistic.sizes)) == pytest.approx(metric.compute(), rel=1e-12)


# -- coverage (benchmarks/interval_coverage.py measures it at 500 replicates) ------------------------------

def test_coverage_of_the_intervals_stays_in_band():
    """100 seeded data sets per statistic, known values: FD's expectation at N (Monte Carlo),
    Diversity's in closed form, BAS's mean; nominal 95%."""
    rng = np.random.default_rng(8)
    n, windows, dim = 24, 4, 8
    protocol = Protocol(interval_half_samples=100)

    def fd_draw():
        return frechet_metric(clips(rng, n, windows, dim), clips(rng, n, windows, dim, mean=0.4, scale=1.2), protocol)

    target = np.mean([fd_draw().compute() for _ in range(1000)])      # E[FD_N], standard error ~1% of a width
    covered = {"FD": 0, "Diversity": 0, "BAS": 0}
    norm = math.sqrt(2) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))
    inside, total = n * windows * (windows - 1) / 2, n * windows * (n * windows - 1) / 2
    diversity_target = norm * (inside * 1.0 + (total - inside) * math.sqrt(2)) / total
    for _ in range(100):
        low, high = fd_draw().interval()
        covered["FD"] += low <= target <= high
        diversity = Diversity(protocol)
        for c in clips(rng, n, windows, dim):
            diversity.update(c)
        low, high = diversity.interval()
        covered["Diversity"] += low <= diversity_target <= high
        bas = BAS(protocol)
        bas.scores = list(np.where(rng.random(n) < 0.15, 0.0, rng.beta(4, 3, n)))
        low, high = bas.interval()
        covered["BAS"] += low <= 0.85 * 4 / 7 <= high
    for name, count in covered.items():
        assert 88 <= count <= 99, (name, count)


# -- paired differences and their sentences ----------------------------------------------------------------

def test_paired_difference_of_bas_is_the_paired_t_interval():
    rng = np.random.default_rng(9)
    a, b = rng.uniform(0.3, 0.9, 10), rng.uniform(0.2, 0.8, 10)
    metrics = []
    for scores in (a, b):
        metric = BAS(Protocol())
        metric.scores = list(scores)
        metrics.append(metric)
    difference = compare_methods(*metrics, "A", "B")
    low, high = scipy_stats.t.interval(0.95, 9, loc=(a - b).mean(), scale=scipy_stats.sem(a - b))
    assert (difference.estimate, difference.low, difference.high) == (
        pytest.approx((a - b).mean()), pytest.approx(low), pytest.approx(high))
    assert difference.clips == 10


def test_paired_difference_of_fgd_is_a_direct_jackknife_loop_on_shared_clips():
    rng = np.random.default_rng(10)
    real = clips(rng, 7, 3, 5)
    a = frechet_metric(real, clips(rng, 7, 3, 5, mean=0.2))
    b = frechet_metric(real, clips(rng, 7, 3, 5, mean=0.6))
    b.parts[True] = a.parts[True]
    protocol = Protocol(interval_half_samples=0)      # the plain jackknife: a direct loop is exact
    a.protocol = b.protocol = protocol

    def difference(index):
        return (frechet_from_parts(a.parts[True], a.parts[False], "unbiased", index, index)
                - frechet_from_parts(b.parts[True], b.parts[False], "unbiased", index, index))

    values = [difference(np.delete(np.arange(7), k)) for k in range(7)]
    variance = 6 / 7 * sum((v - np.mean(values)) ** 2 for v in values)
    estimate = difference(np.arange(7))
    half_width = scipy_stats.t.ppf(0.975, 6) * math.sqrt(variance)
    result = compare_methods(a, b, "A", "B")
    assert (result.estimate, result.low, result.high) == (
        pytest.approx(estimate, rel=1e-9), pytest.approx(estimate - half_width, rel=1e-9),
        pytest.approx(estimate + half_width, rel=1e-9))
    other_real = frechet_metric(clips(rng, 7, 3, 5), clips(rng, 7, 3, 5))
    with pytest.raises(ValueError, match="different real clips"):
        compare_methods(a, other_real, "A", "C")


def test_paired_difference_cancels_what_the_clips_share():
    """Clip difficulty shared by two methods: their level intervals overlap, the difference does not."""
    rng = np.random.default_rng(11)
    difficulty = rng.uniform(0.1, 0.9, 16)
    a, b = BAS(Protocol()), BAS(Protocol())
    a.scores = list(difficulty + 0.05 + rng.normal(0, 0.005, 16))
    b.scores = list(difficulty)
    assert a.interval()[0] < b.interval()[1]           # the levels overlap
    difference = compare_methods(a, b, "A", "B")
    assert difference.excludes_zero and difference.low > 0.04
    stat_a, stat_b = a.clip_statistic(), ClipStatistic(lambda i: 0.0, (15,), ("clips",))
    with pytest.raises(ValueError, match="do not hold the same clips"):
        paired_difference(stat_a, stat_b)


def test_difference_sentences():
    rows = [Difference("FGD", "IMAC", "S2G", -120.0, -200.0, -40.0, 8, 0.95),
            Difference("FGD", "S2G", "MYA", 41.0, -90.0, 170.0, 8, 0.95),
            Difference("BAS", "IMAC", "MYA", 0.081, 0.012, 0.15, 8, 0.95),
            Difference("FGD", "S2G", "MYA", 5.0, float("nan"), float("nan"), 1, 0.95)]
    assert describe_differences(rows) == [
        "IMAC has lower FGD than S2G (difference -120 [-200, -40], 95% interval, 8 clips).",
        "With 8 clips, S2G and MYA are not distinguishable on FGD (difference 41.0 [-90.0, 170.0]).",
        "IMAC has higher BAS than MYA (difference 0.0810 [0.0120, 0.1500], 95% interval, 8 clips).",
        "With 1 clip, S2G and MYA cannot be compared on FGD (no interval from fewer than 2 clips)."]
    assert rows[0].to_dict()["excludes_zero"] and not rows[1].excludes_zero
    assert describe_difference(rows[0], digits=2) == \
        "IMAC has lower FGD than S2G (difference -120 [-200, -40], 95% interval, 8 clips)."
    assert describe_difference(rows[2], digits=2) == \
        "IMAC has higher BAS than MYA (difference 0.081 [0.012, 0.150], 95% interval, 8 clips)."


# -- FD-infinity ------------------------------------------------------------------------------------------

def test_extrapolate_to_infinity_recovers_a_line_in_one_over_n():
    sizes = [10, 20, 40, 80]
    assert extrapolate_to_infinity(sizes, [3.0 + 50.0 / n for n in sizes]) == (pytest.approx(3.0), pytest.approx(50.0))
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        extrapolate_to_infinity([8, 8], [1.0, 2.0])


def test_fd_infinity_on_gaussians_of_known_distance():
    """N(0, I) against N(mu, s^2 I) in d = 16: the distance is |mu|^2 + d (1 - s)^2 (closed form)."""
    dim, n, windows = 16, 40, 2
    mu = np.zeros(dim)
    mu[0] = 1.0
    truth = 1.0 + dim * (1 - 1.2) ** 2
    assert frechet_distance(np.zeros(dim), np.eye(dim), mu, 1.44 * np.eye(dim)) == pytest.approx(truth)
    plain, extrapolated = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        metric = frechet_metric([rng.normal(size=(windows, dim)) for _ in range(n)],
                                [mu + 1.2 * rng.normal(size=(windows, dim)) for _ in range(n)],
                                Protocol(frechet_extrapolation="fd_infinity"))
        plain.append(frechet_from_parts(metric.parts[True], metric.parts[False], "unbiased"))
        extrapolated.append(metric.compute())
        assert extrapolated[-1] == metric.extrapolation().value
    assert np.mean(plain) - truth > 2.0                          # 80 vectors a side: clearly biased
    assert abs(np.mean(extrapolated) - truth) < 0.3


def test_fd_infinity_subsets_and_seed():
    calls = []

    def distance(r, f):
        calls.append((len(r), len(f)))
        return 1.0 + 10.0 / (len(r) + len(f))

    result = fd_infinity(distance, 10, 20, seed=3)
    assert result.value == pytest.approx(1.0) and result.slope == pytest.approx(10.0)
    assert calls[0] == (5, 10) and calls[-1] == (10, 20) and len(calls) == 5 * 4 + 1
    assert fd_infinity(distance, 10, 20, seed=3) == result
    with pytest.raises(ValueError, match="distinct sizes"):
        fd_infinity(distance, 2, 2)


# -- the sample-size warning and the protocol fields -------------------------------------------------------

def test_sample_size_warning():
    assert sample_size_warning(500, 450, 400, "FVD") is None
    message = sample_size_warning(42, 400, 400, "FVD", "16-frame clips")
    assert message.startswith("FVD: 42 real and 400 generated 16-frame clips in 400 dimensions")
    assert "singular" in message and "rank <= n - 1 = 41" in message
    rng = np.random.default_rng(12)
    small = frechet_metric(clips(rng, 7, 6, 64), clips(rng, 7, 6, 64))
    assert len(small.warnings) == 1 and "42 real and 42 generated windows in 64 dimensions" in small.warnings[0]
    assert frechet_metric(clips(rng, 20, 6, 64), clips(rng, 20, 6, 64)).warnings == []


def test_protocol_interval_fields():
    with pytest.raises(ValueError, match="frechet_extrapolation"):
        Protocol(frechet_extrapolation="richardson")
    with pytest.raises(ValueError, match="interval_half_samples"):
        Protocol(interval_half_samples=1)
    with pytest.raises(ValueError, match="confidence"):
        Protocol(confidence=95)
    x = np.arange(6.0)
    plain = jackknife_interval(lambda i: float(x[i].mean()), (6,), half_samples=0)
    assert plain.bounds == pytest.approx(scipy_stats.t.interval(0.95, 5, loc=2.5, scale=scipy_stats.sem(x)))
