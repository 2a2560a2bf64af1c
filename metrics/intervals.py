"""Confidence intervals over clips: a jackknife whose second-order bias is removed by half-samples.

The unit is the clip (windows or 16-frame pieces of one clip are not independent), and a subset of
clips is always drawn WITHOUT replacement. The percentile bootstrap this replaces resampled clips
with replacement; a resample then holds each clip about 0.63 times on average, and repeated clips
are not new information: they shrink the covariance's effective sample size, so a resampled
Fréchet distance sits above the distance it resamples (GT's FGD 0.0 came with [21.9, 432.8]), and
they add zero distances to the pairs of the diversity, which sits below (S2G's Div 15.7 came with
[9.5, 14.8]).

The interval targets the expectation of the statistic at the clip counts at hand. For a Fréchet
distance that is not the population distance: at N clips its estimate is biased upwards by a term
that shrinks like 1 / N (see ``metrics.fd_infinity``), so a Fréchet distance is only comparable
with another at the same N, and so is its interval. What the interval answers is "how much would
this number move with another draw of test clips under the same protocol and counts" — the
question behind every comparison at equal N.

The variance. Write the statistic as its Hoeffding expansion in the clips: a linear part (variance
A / n) and a quadratic part (variance q = B / n^2), which a Fréchet distance in d dimensions from
few clips is dominated by. Over subsets of m of the n clips, the variance of the statistic times
m / (n - m) is about

    v(m) = A / n + c(m) q,   c(m) = (n + m) / m,

(the linear part exactly, with the finite-population correction), while the variance to estimate
is A / n + q. The delete-one jackknife is v(n - 1), so it counts q about twice (Efron & Stein
1981: the jackknife variance is biased upwards, by its higher-order terms); random half-samples
give v(ceil(n / 2)), about A / n + 3 q. Two equations, two unknowns:

    V = v1 - (c1 - 1) (v2 - v1) / (c2 - c1),   v1 = jackknife, v2 = half-samples,

clamped to [v1 / c1, v1] (the values A, q >= 0 allow; on noisy data sets the lower clamp binds
often where the variance is all second order, which leaves V 10-25% above the truth there: a
conservative interval). For a linear statistic (a mean of per-clip scores) q = 0 and the
jackknife alone is exact: V = s^2 / n, the Student t interval. The interval
is the estimate +- t_{df} sqrt(V), df = clips - groups, cut to the statistic's range; for a
Fréchet distance it is built on the log scale (estimate * exp(+-t sqrt(V) / estimate)): its
spread grows with its value, so a symmetric interval is too short above a low estimate and misses
mostly on that side (coverage 0.91 instead of 0.95 in one test: 7% of misses above, 1% below).
Either way it contains its estimate. ``benchmarks/interval_coverage.py`` measures the coverage on
simulated data with a known value.

Groups. A statistic of several independent groups of clips (the real and the generated clips of
an unpaired Fréchet distance; the identities of a within-identity diversity) is jackknifed in
every group (Arvesen 1969) and half-sampled in all groups at once. When the groups are paired
clip by clip (the generated clip i answers the real clip i), they are one group of pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class IntervalEstimate:
    """An estimate with its confidence interval.

    ``se``: the standard error (sqrt of the variance estimate V); ``df``: the degrees of freedom of
    the t quantile (clips - groups). ``low`` and ``high`` are NaN when no interval can be given
    (a group with fewer than 2 clips, or a subset on which the statistic is undefined).
    """

    estimate: float
    low: float
    high: float
    se: float
    df: int
    confidence: float

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (False when it is NaN)."""
        return bool(self.low > 0 or self.high < 0)


def subset_variance_coefficient(n: int, m: int) -> float:
    """c(m) = (n + m) / m: how many times ``m / (n - m)`` x the variance over m-subsets of n units
    counts the quadratic part of the variance of the statistic of all n units."""
    if not 0 < m < n:
        raise ValueError(f"need 0 < m < n, got m={m}, n={n}")
    return (n + m) / m


def combine_variances(jackknife: float, half: float, n: int) -> float:
    """The second-order corrected variance V from the jackknife (v1) and half-sample (v2) variances.

    ``n`` is the number of units of the smallest group (it sets the coefficients c1 = c(n - 1),
    c2 = c(ceil(n / 2))); with n < 4 the two coincide or nearly do, and the jackknife is returned.
    ``half`` is already rescaled by m / (n - m). The result lies in [v1 / c1, v1].
    """
    if n < 4 or not np.isfinite(half):
        return jackknife
    c1 = subset_variance_coefficient(n, n - 1)
    c2 = subset_variance_coefficient(n, math.ceil(n / 2))
    corrected = jackknife - (c1 - 1.0) * (half - jackknife) / (c2 - c1)
    return float(np.clip(corrected, jackknife / c1, jackknife))


def _nan_interval(estimate: float, confidence: float) -> IntervalEstimate:
    return IntervalEstimate(float(estimate), float("nan"), float("nan"), float("nan"), 0, confidence)


def jackknife_variance(statistic: Callable[..., float], sizes: Sequence[int]) -> float:
    """Delete-one jackknife variance of ``statistic(*index_arrays)``, summed over the groups.

    Every clip of every group is left out once (the other groups whole); per group
    (n - 1) / n * sum_i (theta_(i) - mean)^2 (Arvesen 1969 for several groups). n_g >= 2.
    """
    full = [np.arange(int(n)) for n in sizes]
    variance = 0.0
    for g, n in enumerate(sizes):
        values = np.array([statistic(*full[:g], np.delete(full[g], i), *full[g + 1:]) for i in range(n)])
        variance += (n - 1) / n * float(np.sum((values - values.mean()) ** 2))
    return variance


def half_sample_variance(statistic: Callable[..., float], sizes: Sequence[int], samples: int, seed: int) -> float:
    """Variance of the statistic over ``samples`` random half-samples, times m / (n - m).

    Each half-sample keeps ceil(n_g / 2) clips of every group, without replacement (seeded); the
    rescaling uses the smallest group (n, m = ceil(n / 2)). For a linear statistic this estimates
    the variance of the full-sample statistic; see the module docstring for the quadratic part.
    """
    if samples < 2:
        raise ValueError(f"need at least 2 half-samples, got {samples}")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*(np.sort(rng.choice(n, math.ceil(n / 2), replace=False)) for n in sizes))
                       for _ in range(samples)])
    n = min(sizes)
    m = math.ceil(n / 2)
    return float(values.var(ddof=1)) * m / (n - m)


def t_interval(estimate: float, variance: float, df: int, confidence: float = 0.95, lower: float = -math.inf,
               upper: float = math.inf, log_scale: bool = False) -> IntervalEstimate:
    """estimate +- t sqrt(variance), t = t_{df}(0.5 + confidence / 2), cut to [lower, upper].

    ``log_scale`` (a positive statistic whose spread grows with it): the same interval for
    log(estimate), whose standard error is se / estimate by the delta method, mapped back:
    estimate * exp(+-r), r = t se / estimate. A right-skewed interval, never below 0. Where
    r > 1 the estimate is within noise of 0 and the log scale means nothing (r grows without
    bound as the estimate goes to 0): there the upper arm continues linearly from e * estimate,
    estimate + (e - 1) t se. An estimate <= 0 takes the linear interval.
    """
    se = math.sqrt(variance)
    t = float(scipy_stats.t.ppf(0.5 + confidence / 2, df))
    if log_scale and estimate > 0:
        ratio = t * se / estimate
        low = estimate * math.exp(-ratio)
        high = estimate * math.exp(ratio) if ratio <= 1 else estimate + (math.e - 1) * t * se
    else:
        low, high = estimate - t * se, estimate + t * se
    return IntervalEstimate(float(estimate), float(max(lower, low)), float(min(upper, high)), se, int(df), confidence)


def jackknife_interval(statistic: Callable[..., float], sizes: Sequence[int], *, half_samples: int = 200,
                       seed: int = 0, confidence: float = 0.95, second_order: bool = True,
                       lower: float = -math.inf, upper: float = math.inf, log_scale: bool = False
                       ) -> IntervalEstimate:
    """Confidence interval of ``statistic(*index_arrays)`` over the clips of each group.

    ``statistic`` takes one sorted int array per group (positions 0..n_g - 1 of the clips it keeps)
    and returns a float; ``sizes`` gives n_g. The estimate is the statistic of all clips. The
    variance is the delete-one jackknife's (``jackknife_variance``), corrected for its second-order
    bias with ``half_samples`` random half-samples (``half_sample_variance``, seeded by ``seed``;
    ``combine_variances``) when ``second_order`` is True and every group has at least 4 clips
    (False for a linear statistic such as a mean, where the jackknife is exact). The interval is
    ``t_interval`` with df = sum(sizes) - len(sizes) (on the log scale with ``log_scale``).
    ``lower`` / ``upper``: the statistic's range (0 for a distance), where the interval is cut.

    Cost: sum(sizes) + half_samples evaluations of the statistic. Returns NaN bounds when a group
    has fewer than 2 clips or the statistic raises ``ValueError`` on a subset.
    """
    sizes = [int(n) for n in sizes]
    if not sizes or not 0 < confidence < 1:
        raise ValueError(f"need at least one group and 0 < confidence < 1, got {sizes}, {confidence}")
    estimate = float(statistic(*(np.arange(n) for n in sizes)))
    if min(sizes) < 2:
        return _nan_interval(estimate, confidence)
    try:
        variance = jackknife_variance(statistic, sizes)
        if second_order and half_samples >= 2 and min(sizes) >= 4:
            variance = combine_variances(variance, half_sample_variance(statistic, sizes, half_samples, seed),
                                         min(sizes))
    except ValueError:
        return _nan_interval(estimate, confidence)
    return t_interval(estimate, variance, sum(sizes) - len(sizes), confidence, lower, upper, log_scale)


@dataclass(frozen=True)
class ClipStatistic:
    """A metric as a function of subsets of its clips: what its interval and its differences resample.

    ``function(*index_arrays)``: the metric on the clips kept, one sorted index array per group;
    ``sizes``: clips per group; ``groups``: the groups' names ("pairs", "real"/"generated", the
    identities), so that two statistics can be checked to be aligned clip by clip;
    ``second_order``: False for a (nearly) linear statistic (a mean or ratio of per-clip sums), whose
    jackknife needs no correction; ``lower``/``upper``: the metric's range; ``log_scale``: the
    interval is built for the log of the metric (a Fréchet distance: see ``t_interval``).
    """

    function: Callable[..., float]
    sizes: tuple[int, ...]
    groups: tuple[str, ...]
    second_order: bool = True
    lower: float = -math.inf
    upper: float = math.inf
    log_scale: bool = False

    def interval(self, half_samples: int = 200, seed: int = 0, confidence: float = 0.95) -> IntervalEstimate:
        """``jackknife_interval`` of this statistic."""
        return jackknife_interval(self.function, self.sizes, half_samples=half_samples, seed=seed,
                                  confidence=confidence, second_order=self.second_order, lower=self.lower,
                                  upper=self.upper, log_scale=self.log_scale)
