"""Differences between two methods on the same test clips: estimate, interval, and plain words.

Two methods' level intervals can overlap although one method is better on nearly every clip: a
level interval also carries how hard the test clips happen to be, which both methods share. The
difference is therefore resampled in pairs: every subset of the jackknife and of the half-samples
(``metrics.intervals``) keeps the SAME clips for both methods, and for FGD and FVD the same real
clips too, so what the clips share cancels. This is the paired bootstrap's design without its
repeated clips, whose bias (``metrics.intervals``) would not cancel between two methods.

``paired_difference`` works on two ``ClipStatistic``s; ``compare_methods`` on two metric objects
(``FGD``, ``FVD``, ``Diversity``, ``BAS``) holding the same test clips in the same order;
``describe_differences`` turns a table of ``Difference``s into sentences for a report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from metrics.intervals import ClipStatistic, IntervalEstimate, jackknife_interval
from metrics.results import decimals
from metrics.stats import FrechetMetric


@dataclass(frozen=True)
class Difference:
    """metric(method_a) - metric(method_b) on the same ``clips`` test clips, with its interval.

    ``low``/``high`` are NaN when no interval can be given (fewer than 2 clips).
    """

    metric: str
    method_a: str
    method_b: str
    estimate: float
    low: float
    high: float
    clips: int
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or below 0: the methods differ on this metric."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self) | {"excludes_zero": self.excludes_zero}


def paired_difference(statistic_a: ClipStatistic, statistic_b: ClipStatistic, *, half_samples: int = 200,
                      seed: int = 0, confidence: float = 0.95) -> IntervalEstimate:
    """Interval of a - b, both statistics evaluated on the same subsets of clips.

    The two statistics must be aligned clip by clip: the same groups with the same sizes (raises
    ValueError otherwise). The second-order correction is used when either statistic needs it.
    """
    if statistic_a.groups != statistic_b.groups or statistic_a.sizes != statistic_b.sizes:
        raise ValueError("the two methods do not hold the same clips: groups "
                         f"{dict(zip(statistic_a.groups, statistic_a.sizes))} and "
                         f"{dict(zip(statistic_b.groups, statistic_b.sizes))}")
    return jackknife_interval(lambda *index: statistic_a.function(*index) - statistic_b.function(*index),
                              statistic_a.sizes, half_samples=half_samples, seed=seed, confidence=confidence,
                              second_order=statistic_a.second_order or statistic_b.second_order)


def _same_real_side(metric_a: FrechetMetric, metric_b: FrechetMetric) -> bool:
    real_a, real_b = metric_a.parts[True], metric_b.parts[True]
    return len(real_a) == len(real_b) and all(
        a is b or (a.count == b.count and np.array_equal(a.total, b.total)) for a, b in zip(real_a, real_b))


def compare_methods(metric_a, metric_b, method_a: str, method_b: str, *, paired: bool = True) -> Difference:
    """The ``Difference`` metric_a - metric_b of two metric objects of the same class.

    Both must hold the same test clips in the same order: clip i of one method and clip i of the
    other answer the same test clip (for Diversity, with the same identities). FGD and FVD must
    share their real side (checked), and ``paired`` (default) makes real clip i and generated
    clip i one unit, as ``FrechetMetric.interval(paired=True)``; ``paired=False`` resamples the
    real and the generated clips as two groups, still the same indices for both methods. The
    interval settings (half-samples, seed, confidence) are metric_a's protocol's.
    """
    if type(metric_a) is not type(metric_b):
        raise ValueError(f"cannot compare a {type(metric_a).__name__} with a {type(metric_b).__name__}")
    if isinstance(metric_a, FrechetMetric):
        if not _same_real_side(metric_a, metric_b):
            raise ValueError(f"{metric_a.name}: the two methods are scored against different real clips")
        statistics = metric_a.clip_statistic(paired), metric_b.clip_statistic(paired)
    else:
        statistics = metric_a.clip_statistic(), metric_b.clip_statistic()
    protocol = metric_a.protocol
    estimate = paired_difference(*statistics, half_samples=protocol.interval_half_samples,
                                 seed=protocol.bootstrap_seed, confidence=protocol.confidence)
    sizes = dict(zip(statistics[0].groups, statistics[0].sizes))
    clips = sizes["generated"] if "generated" in sizes else sum(sizes.values())
    return Difference(metric_a.name, method_a, method_b, estimate.estimate, estimate.low, estimate.high, clips,
                      estimate.confidence)


def _numbers(estimate: float, low: float, high: float, digits: int) -> str:
    """The estimate to ``digits`` significant digits and its bounds with the same decimals (one precision)."""
    places = decimals(estimate, digits)
    return f"{estimate:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def describe_difference(difference: Difference, digits: int = 3) -> str:
    """One sentence: which method has the lower / higher value, or that they are not distinguishable.

    "IMAC has lower FGD than S2G (difference -120 [-200, -40], 95% interval, 8 clips)." /
    "With 8 clips, S2G and MYA are not distinguishable on FGD (difference 41.0 [-90.0, 170.0])."
    ``digits``: significant digits of the difference; its bounds take the same decimals.
    """
    d = difference
    if math.isnan(d.low) or math.isnan(d.high):
        return (f"With {d.clips} clip{'s' if d.clips != 1 else ''}, {d.method_a} and {d.method_b} cannot be "
                f"compared on {d.metric} (no interval from fewer than 2 clips).")
    numbers = f"difference {_numbers(d.estimate, d.low, d.high, digits)}"
    if not d.excludes_zero:
        return (f"With {d.clips} clips, {d.method_a} and {d.method_b} are not distinguishable on {d.metric} "
                f"({numbers}).")
    side = "lower" if d.high < 0 else "higher"
    return (f"{d.method_a} has {side} {d.metric} than {d.method_b} ({numbers}, "
            f"{d.confidence:.0%} interval, {d.clips} clips).")


def describe_differences(differences: Iterable[Difference], digits: int = 3) -> list[str]:
    """``describe_difference`` of each row of a table of differences, in its order."""
    return [describe_difference(d, digits) for d in differences]
