"""Streaming mean and covariance of feature vectors, mergeable across processes.

FVD and FGD never hold all features: ``GaussianStats`` keeps the count, the float64 sum and the
float64 sum of outer products (the sufficient statistics, as StyleGAN-V does), so batches can be
added one at a time, partial statistics from several workers or GPUs can be merged (``merge``, or
``all_reduce`` over ``torch.distributed``), and per-clip statistics can be recombined for
confidence intervals over clips (``metrics.intervals``) and FD-infinity (``metrics.fd_infinity``)
without touching the features again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

from metrics.fd_infinity import Extrapolation, fd_infinity
from metrics.frechet import frechet_distance, frechet_distance_of_centred
from metrics.intervals import ClipStatistic


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
        self._factor: np.ndarray | None = None

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
        self._outer, self._rows, self._factor = np.asarray(value, dtype=np.float64), [], None

    def factor(self) -> np.ndarray:
        """G ``(r, d + 1)`` with G^T G = [[outer, total], [total^T, count]], r <= count.

        While the vectors are kept, G is the vectors with a column of ones (exact); else the
        factor comes from one eigendecomposition of that (d + 1) x (d + 1) matrix (eigenvalues
        below its rounding level dropped). Stacked factors of several accumulators are a factor of
        their merged statistics, which ``_Subsets`` centres for
        ``metrics.frechet.frechet_distance_of_centred``. Computed once and kept.
        """
        if self._factor is None:
            if self._outer is None:
                rows = np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim))
                self._factor = np.hstack([rows, np.ones((len(rows), 1))])
            else:
                augmented = np.empty((self.dim + 1, self.dim + 1))
                augmented[:-1, :-1], augmented[:-1, -1], augmented[-1, :-1] = self._outer, self.total, self.total
                augmented[-1, -1] = self.count
                values, vectors = np.linalg.eigh((augmented + augmented.T) / 2)
                keep = values > max(values[-1], 0.0) * (self.dim + 1) * np.finfo(np.float64).eps
                self._factor = (vectors[:, keep] * np.sqrt(values[keep])).T
        return self._factor

    @property
    def factor_rows(self) -> int:
        """The rows of ``factor()`` (an upper bound, min(count, d + 1), until a matrix's is computed)."""
        if self._factor is not None:
            return len(self._factor)
        return self.count if self._outer is None else min(self.count, self.dim + 1)

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
        self._factor = None
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
        self._factor = None
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
        denominator = covariance_divisor(self.count, estimator)
        mean = self.mean
        covariance = (self.outer - self.count * np.outer(mean, mean)) / denominator
        return (covariance + covariance.T) / 2

    def state_dict(self) -> dict[str, np.ndarray]:
        """count, total and either the kept vectors (``rows``, (count, d)) or ``outer`` (d, d)."""
        state = {"count": np.array(self.count), "total": self.total}
        if self._outer is None:
            state["rows"] = np.concatenate(self._rows) if self._rows else np.zeros((0, self.dim))
        else:
            state["outer"] = self._outer
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> GaussianStats:
        """The inverse of ``state_dict`` (either form). Raises ValueError when the arrays are
        missing or their shapes disagree with each other (a foreign or damaged file)."""
        try:
            total = np.asarray(state["total"], dtype=np.float64)
            count = int(np.asarray(state["count"]))
            rows = state.get("rows")
            matrix = np.asarray(rows if rows is not None else state["outer"], dtype=np.float64)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not the state of a GaussianStats: {error!r}") from None
        dim = len(total) if total.ndim == 1 else -1
        expected = (count, dim) if rows is not None else (dim, dim)
        if not (np.isfinite(total).all() and np.isfinite(matrix).all()):
            raise ValueError("not the state of a GaussianStats: NaN or inf values")
        if dim < 1 or count < 0 or matrix.shape != expected:
            raise ValueError(f"not the state of a GaussianStats: total {total.shape}, count {count}, "
                             f"{'rows' if rows is not None else 'outer'} {matrix.shape} (expected {expected})")
        stats = cls(dim)
        stats.count, stats.total = count, total.copy()
        if rows is not None:
            stats._rows = [matrix.copy()] if count else []
        else:
            stats.outer = matrix.copy()
        return stats


def frechet_from_parts(real: list[GaussianStats], fake: list[GaussianStats], estimator: str,
                       real_index=None, fake_index=None) -> float:
    """Fréchet distance between the pooled statistics of (a resample of) real and fake parts."""
    real_index = np.arange(len(real)) if real_index is None else real_index
    fake_index = np.arange(len(fake)) if fake_index is None else fake_index
    return subset_distance(_Subsets(real), _Subsets(fake), real_index, fake_index, estimator)


def subset_distance(real: _Subsets, fake: _Subsets, real_index: np.ndarray, fake_index: np.ndarray,
                    estimator: str) -> float:
    """The Fréchet distance between the pooled parts at ``real_index`` and at ``fake_index``.

    Where both pools have a factor of at most d rows (fewer feature vectors than dimensions: the
    FVD of a benchmark's clips, every resample of its interval) it is computed from the centred
    factors (``frechet_distance_of_centred``: an r1 x r2 singular value problem), else from the
    pooled covariances (``frechet_distance``: d x d eigenproblems). The two agree to rounding.
    """
    if max(real.rows(real_index), fake.rows(fake_index)) <= real.dim:
        (n1, m1, a1), (n2, m2, a2) = real.centred(real_index), fake.centred(fake_index)
        return frechet_distance_of_centred(m1, a1, covariance_divisor(n1, estimator), m2, a2,
                                           covariance_divisor(n2, estimator))
    (_, m1, s1), (_, m2, s2) = real.pooled(real_index, estimator), fake.pooled(fake_index, estimator)
    return frechet_distance(m1, s1, m2, s2)


def covariance_divisor(count: int, estimator: str) -> int:
    """The divisor of a covariance from ``count`` vectors: ``unbiased`` n - 1, ``biased`` n.
    Raises ValueError for another estimator or a divisor below 1."""
    if estimator not in ("unbiased", "biased"):
        raise ValueError(f"estimator must be 'unbiased' or 'biased', got {estimator!r}")
    divisor = count - 1 if estimator == "unbiased" else count
    if divisor < 1:
        raise ValueError(f"need at least {2 if estimator == 'unbiased' else 1} features, got {count}")
    return divisor


def sample_size_warning(n_real: int, n_fake: int, dim: int, metric: str = "Fréchet distance",
                        unit: str = "feature vectors") -> str | None:
    """A warning when a side has no more feature vectors than dimensions (n <= d), else None.

    ``n_real``, ``n_fake``: the feature vectors (windows, I3D clips) behind each side's covariance;
    ``dim``: their dimension. The rule: a covariance from n vectors has rank at most n - 1, so with
    n <= d it is singular and d - n + 1 of its directions have no variance at all. The distance is
    still defined (``metrics.frechet`` takes the symmetric route), but it is then dominated by its
    finite-sample bias, a term that shrinks like 1 / n and grows with d: it measures the counts as
    much as the methods, is comparable only with numbers at the same counts and dimension, and
    FD-infinity, whose fit assumes the 1 / n regime, is rough. The threshold is where that
    regime starts, not a guarantee above it: the bias shrinks gradually with n / d.
    """
    n = min(int(n_real), int(n_fake))
    if n > dim:
        return None
    return (f"{metric}: {n_real} real and {n_fake} generated {unit} in {dim} dimensions: with n <= d the "
            f"covariance is singular (rank <= n - 1 = {n - 1} < {dim}) and the distance is dominated by its "
            "finite-sample bias; compare it only with values at the same counts, or use more clips")


class _Subsets:
    """Pooled mean and covariance of subsets of per-clip statistics, from the full sums.

    A subset larger than half is pooled as the full sums minus the rest (a jackknife subset costs
    one part, not n): O(min(k, n - k) d^2) per subset.
    """

    def __init__(self, parts: list[GaussianStats]) -> None:
        self.parts = parts
        self.dim = parts[0].dim

    @functools.cached_property
    def full(self) -> GaussianStats:
        return GaussianStats.combine(self.parts, self.dim)

    def pooled(self, index: np.ndarray, estimator: str) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, mean, covariance) of the parts at ``index`` (distinct positions)."""
        index = np.asarray(index)
        if len(index) == len(self.parts):
            stats = self.full
        elif 2 * len(index) <= len(self.parts):
            stats = GaussianStats.combine((self.parts[i] for i in index), self.full.dim)
        else:
            rest = GaussianStats.combine((self.parts[i] for i in np.setdiff1d(np.arange(len(self.parts)), index)),
                                         self.full.dim)
            stats = GaussianStats(self.full.dim)
            stats.count = self.full.count - rest.count
            stats.total = self.full.total - rest.total
            stats.outer = self.full.outer - rest.outer
        return stats.count, stats.mean, stats.covariance(estimator)

    def rows(self, index: np.ndarray) -> int:
        """The rows of the stacked factors of the parts at ``index``."""
        return int(sum(self.parts[i].factor_rows for i in index))

    def centred(self, index: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, mean, A) of the parts at ``index`` with A^T A their pooled scatter matrix
        (count x the biased covariance): their stacked factors [Y z] (``GaussianStats.factor``)
        projected off z, A = Y - z (z^T Y) / n with n = z^T z = count."""
        stacked = np.concatenate([self.parts[i].factor() for i in index])
        count = int(sum(self.parts[i].count for i in index))
        if count == 0:
            raise ValueError("no features were added")
        y, z = stacked[:, :-1], stacked[:, -1]
        mean = (z @ y) / (z @ z)
        return count, mean, y - np.outer(z, mean)


class FrechetMetric:
    """Base of FGD and FVD: per-clip statistics on a real and a generated side, their Fréchet
    distance (``compute``; FD-infinity with ``frechet_extrapolation="fd_infinity"``), its
    confidence interval over clips (``interval``) and a warning for counts too small for the
    dimension (``warnings``).

    Subclasses set ``name``, ``unit`` (what one feature vector is, for messages) and ``protocol``.
    """

    higher_is_better = False
    unit = "features"

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.parts: dict[bool, list[GaussianStats]] = {True: [], False: []}

    @property
    def covariance_estimator(self) -> str:
        """The covariance divisor the protocol sets for this metric: its ``covariance`` field
        (FGD); FVD overrides this with ``fvd_covariance``. "unbiased" /(N - 1), "biased" /N."""
        return self.protocol.covariance

    def compute(self) -> float:
        """The Fréchet distance between the pooled real and generated statistics, with the
        covariance divided as ``covariance_estimator`` says. Raises ValueError with fewer than 2
        features on a side."""
        self._check()
        if self.protocol.frechet_extrapolation == "fd_infinity":    # metrics/fd_infinity.py
            return self.extrapolation().value
        return frechet_from_parts(self.parts[True], self.parts[False], self.covariance_estimator)

    # -- uncertainty (metrics/intervals.py, metrics/fd_infinity.py) ------------------------------

    def interval(self, paired: bool = False) -> tuple[float, float]:
        """(low, high) confidence interval of ``compute()`` over clips (``metrics.intervals``).

        ``paired``: the generated clip i answers the real clip i (same count, same order), and the
        pair is the unit; else the real and the generated clips are independent samples. Pairing
        keeps what the two sides share: a generated side that copies the real one has [0, 0].
        """
        estimate = self.clip_statistic(paired).interval(self.protocol.interval_half_samples,
                                                        self.protocol.bootstrap_seed, self.protocol.confidence)
        return estimate.bounds

    def clip_statistic(self, paired: bool = False) -> ClipStatistic:
        """The distance (or FD-infinity, as the protocol says) as a function of subsets of clips:
        one group of pairs (``paired``) or the groups "real" and "generated"."""
        self._check()
        real, fake = _Subsets(self.parts[True]), _Subsets(self.parts[False])
        estimator = self.covariance_estimator

        def distance(real_index: np.ndarray, fake_index: np.ndarray) -> float:
            return subset_distance(real, fake, real_index, fake_index, estimator)

        if self.protocol.frechet_extrapolation == "fd_infinity":
            plain = distance

            def distance(real_index: np.ndarray, fake_index: np.ndarray) -> float:
                return fd_infinity(lambda r, f: plain(real_index[r], fake_index[f]), len(real_index),
                                   len(fake_index), seed=self.protocol.bootstrap_seed).value

            shape = {"lower": -np.inf}          # an extrapolation may dip below 0
        else:
            shape = {"lower": 0.0, "log_scale": True}    # a distance: its spread grows with it
        if paired:
            if len(real.parts) != len(fake.parts):
                raise ValueError(f"{self.name}: paired clips need as many real as generated clips, got "
                                 f"{len(real.parts)} and {len(fake.parts)}")
            return ClipStatistic(lambda index: distance(index, index), (len(real.parts),), ("pairs",), **shape)
        return ClipStatistic(distance, (len(real.parts), len(fake.parts)), ("real", "generated"), **shape)

    def extrapolation(self) -> Extrapolation:
        """FD-infinity (``metrics.fd_infinity``): the distance at subsets of the clips of each side,
        fitted linear in 1 / N and extrapolated to 1 / N = 0; seeded by ``bootstrap_seed``."""
        self._check()
        real, fake = self.parts[True], self.parts[False]
        estimator = self.covariance_estimator
        return fd_infinity(lambda r, f: frechet_from_parts(real, fake, estimator, r, f), len(real), len(fake),
                           seed=self.protocol.bootstrap_seed)

    @property
    def warnings(self) -> list[str]:
        """Messages about counts too small for the dimension (``sample_size_warning``); [] when none."""
        sides = [self.parts[True], self.parts[False]]
        if not all(sides):
            return []
        counts = [sum(p.count for p in side) for side in sides]
        message = sample_size_warning(counts[0], counts[1], sides[0][0].dim, self.name, self.unit)
        return [message] if message else []

    def _check(self) -> None:
        for real, side in ((True, "real"), (False, "generated")):
            count = sum(p.count for p in self.parts[real])
            if count < 2:
                raise ValueError(f"{self.name} needs at least 2 {side} {self.unit}, got {count}")
