"""The percentile bootstrap over clips that the metrics used up to protocol 1.1, kept for comparison.

The metrics' intervals are now ``metrics.intervals`` (clip jackknife with a second-order
correction). Resampling clips WITH replacement repeats clips, which biases a Fréchet distance
upwards and a pairwise diversity downwards, so these intervals can exclude their own estimate;
``benchmarks/interval_coverage.py`` measures both side by side. Clips, not windows or frames, are
resampled; for two-sample metrics (FGD, FVD) the real and the generated clips independently.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_interval(statistic: Callable[..., float], sizes: tuple[int, ...], samples: int, seed: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of ``statistic(*index_arrays)`` over resamples of each group.

    ``sizes`` gives the number of clips of each group; every resample draws that many indices
    with replacement from each group. Returns (nan, nan) when a group has fewer than 2 clips or
    ``samples`` is 0: an interval from one clip would be a false promise.
    """
    if samples <= 0 or min(sizes) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*(rng.integers(0, n, n) for n in sizes)) for _ in range(samples)])
    alpha = (1.0 - confidence) / 2
    return (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
