"""Streaming mean and covariance of feature vectors, mergeable across processes.

FVD and FGD never hold all features: ``GaussianStats`` keeps the count, the float64 sum and the
float64 sum of outer products (the sufficient statistics, as StyleGAN-V does), so batches can be
added one at a time, partial statistics from several workers or GPUs can be merged (``merge``, or
``all_reduce`` over ``torch.distributed``), and per-clip statistics can be recombined for
bootstrap confidence intervals without touching the features again.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from metrics.bootstrap import bootstrap_interval
from metrics.frechet import frechet_distance


class GaussianStats:
    """Sufficient statistics of a set of d-dimensional features.

    The sum of outer products is a d x d matrix (1.3 MB at d = 400); a benchmark keeps one
    accumulator per clip for its bootstrap, so while an accumulator has seen fewer than d / 2
    vectors it keeps the vectors themselves (less memory) and folds them into the matrix only when
    it grows past that or the matrix is needed.
    """

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.count = 0
        self.total = np.zeros(self.dim, dtype=np.float64)
        self._outer: np.ndarray | None = None
        self._rows: list[np.ndarray] = []

    @property
    def outer(self) -> np.ndarray:
        """The float64 sum of outer products x x^T (d, d)."""
        if self._outer is None:
            self._outer = np.zeros((self.dim, self.dim), dtype=np.float64)
            self._add_rows_to(self._outer)
            self._rows = []
        return self._outer

    @outer.setter
    def outer(self, value: np.ndarray) -> None:
        self._outer, self._rows = np.asarray(value, dtype=np.float64), []

    def _add_rows_to(self, matrix: np.ndarray) -> None:
        for rows in self._rows:
            matrix += rows.T @ rows

    def update(self, features: np.ndarray) -> GaussianStats:
        """Add a batch of features (n, d)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must be (n, {self.dim}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or inf")
        self.count += x.shape[0]
        self.total += x.sum(axis=0)
        if self._outer is None and self.count <= self.dim // 2:
            self._rows.append(x.copy())
        else:
            self.outer += x.T @ x
        return self

    def merge(self, other: GaussianStats) -> GaussianStats:
        """Add another accumulator's statistics to this one (in place) and return self."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        self.count += other.count
        self.total += other.total
        if other._outer is None:
            other._add_rows_to(self.outer)
        else:
            self.outer += other._outer
        return self

    @classmethod
    def combine(cls, parts: Iterable[GaussianStats], dim: int) -> GaussianStats:
        combined = cls(dim)
        for part in parts:
            combined.merge(part)
        return combined

    def all_reduce(self) -> GaussianStats:
        """Sum the statistics over all processes of an initialised ``torch.distributed`` group."""
        # torch is imported here, not at the top: it is most of ``import metrics`` (2.5 of 4.8 s,
        # python -X importtime -c "import metrics"), and single-process evaluation never needs it.
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        packed = torch.from_numpy(np.concatenate([[float(self.count)], self.total, self.outer.ravel()]))
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        values = packed.numpy()
        self.count = int(round(values[0]))
        self.total = values[1:1 + self.dim].copy()
        self.outer = values[1 + self.dim:].reshape(self.dim, self.dim).copy()
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise ValueError("no features were added")
        return self.total / self.count

    def covariance(self, estimator: str = "unbiased") -> np.ndarray:
        """Covariance: ``unbiased`` divides by n - 1 (like ``np.cov``), ``biased`` by n."""
        if estimator not in ("unbiased", "biased"):
            raise ValueError(f"estimator must be 'unbiased' or 'biased', got {estimator!r}")
        denominator = self.count - 1 if estimator == "unbiased" else self.count
        if denominator < 1:
            raise ValueError(f"need at least {2 if estimator == 'unbiased' else 1} features, got {self.count}")
        mean = self.mean
        covariance = (self.outer - self.count * np.outer(mean, mean)) / denominator
        return (covariance + covariance.T) / 2

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"count": np.array(self.count), "total": self.total, "outer": self.outer}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> GaussianStats:
        stats = cls(len(state["total"]))
        stats.count = int(state["count"])
        stats.total = np.array(state["total"], dtype=np.float64)
        stats.outer = np.array(state["outer"], dtype=np.float64)
        return stats


def frechet_from_parts(real: list[GaussianStats], fake: list[GaussianStats], estimator: str,
                       real_index=None, fake_index=None) -> float:
    """Fréchet distance between the pooled statistics of (a resample of) real and fake parts."""
    dim = (real or fake)[0].dim
    real_pool = GaussianStats.combine((real[i] for i in (range(len(real)) if real_index is None else real_index)), dim)
    fake_pool = GaussianStats.combine((fake[i] for i in (range(len(fake)) if fake_index is None else fake_index)), dim)
    return frechet_distance(real_pool.mean, real_pool.covariance(estimator),
                            fake_pool.mean, fake_pool.covariance(estimator))


class FrechetMetric:
    """Base of FGD and FVD: per-clip statistics on a real and a generated side, their Fréchet
    distance (``compute``) and its clip-level bootstrap interval (``interval``).

    Subclasses set ``name``, ``unit`` (what one feature vector is, for messages) and ``protocol``.
    """

    higher_is_better = False
    unit = "features"

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.parts: dict[bool, list[GaussianStats]] = {True: [], False: []}

    def compute(self) -> float:
        self._check()
        return frechet_from_parts(self.parts[True], self.parts[False], self.protocol.covariance)

    def interval(self) -> tuple[float, float]:
        self._check()
        real, fake = self.parts[True], self.parts[False]
        return bootstrap_interval(
            lambda r, f: frechet_from_parts(real, fake, self.protocol.covariance, r, f),
            (len(real), len(fake)), self.protocol.bootstrap_samples, self.protocol.bootstrap_seed,
            self.protocol.confidence)

    def _check(self) -> None:
        for real, side in ((True, "real"), (False, "generated")):
            count = sum(p.count for p in self.parts[real])
            if count < 2:
                raise ValueError(f"{self.name} needs at least 2 {side} {self.unit}, got {count}")
