"""FD-infinity: the Fréchet distance extrapolated to infinitely many clips (Chong & Forsyth 2020).

A Fréchet distance estimated from N samples is biased upwards: the estimated means differ by
noise (E |m1 - m2|^2 = |mu1 - mu2|^2 + tr S1 / N1 + tr S2 / N2) and the estimated covariances
spread their eigenvalues, and both terms shrink like 1 / N. Chong & Forsyth ("Effectively Unbiased
FID and Inception Score and where to find them", CVPR 2020) observe that FID_N is very nearly
linear in 1 / N, evaluate it at several N (random subsets without replacement), fit a line in
1 / N and report its value at 1 / N = 0, FID-infinity; they use 15 sizes from 5,000 to 50,000
images, one subset each.

Here the unit is the clip: each point is the mean distance over ``FD_INFINITY_DRAWS`` random
subsets of a fraction f of the clips of each side (without replacement; the full set once), for
each f in ``FD_INFINITY_FRACTIONS``, and the line is fitted by least squares to every subset's
distance against 1 / (clips in the subset). Both sides are subsampled by the same fraction, so
both sides' bias terms scale together. The line is an asymptotic model: with fewer feature vectors
than dimensions in the smallest subsets the bias is not yet linear in 1 / N and FD-infinity is
rough (``metrics.stats.sample_size_warning``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

FD_INFINITY_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)   # of each side's clips, per point of the fit
FD_INFINITY_DRAWS = 4                                     # random subsets per fraction below 1


@dataclass(frozen=True)
class Extrapolation:
    """The fitted line d(N) = value + slope / N and the points it was fitted to.

    ``clips``: clips in each subset (real + generated, or pairs when paired); ``distances``: the
    Fréchet distance of each subset. ``value`` is the extrapolation to 1 / N = 0 (not clipped at 0:
    a slightly negative value says the two sides are indistinguishable at this precision).
    """

    value: float
    slope: float
    clips: tuple[int, ...]
    distances: tuple[float, ...]


def extrapolate_to_infinity(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of values = a + b / size; returns (a, b), a the value at 1 / size = 0.

    Raises ValueError with fewer than two distinct sizes.
    """
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or len(np.unique(x)) < 2:
        raise ValueError(f"need values at two or more distinct sizes, got sizes {list(sizes)}")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def subset_sizes(n: int, fractions: Sequence[float] = FD_INFINITY_FRACTIONS) -> list[int]:
    """Clips kept at each fraction: round(f n), at least 2."""
    return [max(2, round(f * n)) for f in fractions]


def fd_infinity(distance: Callable[[np.ndarray, np.ndarray], float], n_real: int, n_fake: int, *,
                paired: bool = False, fractions: Sequence[float] = FD_INFINITY_FRACTIONS,
                draws: int = FD_INFINITY_DRAWS, seed: int = 0) -> Extrapolation:
    """FD-infinity of ``distance(real_index, fake_index)``, the Fréchet distance of subsets of clips.

    For each fraction f, ``draws`` random subsets (one when f keeps every clip) of round(f n)
    clips of each side, drawn without replacement (``paired``: the same clips on both sides,
    which needs n_real == n_fake), seeded by ``seed``. Raises ValueError when the fractions give
    fewer than two distinct subset sizes (fewer than about 4 clips a side).
    """
    if paired and n_real != n_fake:
        raise ValueError(f"paired subsets need as many real as generated clips, got {n_real} and {n_fake}")
    rng = np.random.default_rng(seed)
    clips, distances = [], []
    for k_real, k_fake in zip(subset_sizes(n_real, fractions), subset_sizes(n_fake, fractions)):
        k_real, k_fake = min(k_real, n_real), min(k_fake, n_fake)
        repeats = 1 if (k_real, k_fake) == (n_real, n_fake) else draws
        for _ in range(repeats):
            real_index = np.sort(rng.choice(n_real, k_real, replace=False))
            fake_index = real_index if paired else np.sort(rng.choice(n_fake, k_fake, replace=False))
            clips.append(k_real if paired else k_real + k_fake)
            distances.append(float(distance(real_index, fake_index)))
    value, slope = extrapolate_to_infinity(clips, distances)
    return Extrapolation(value, slope, tuple(clips), tuple(distances))
