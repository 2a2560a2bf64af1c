"""The Fréchet distance between two Gaussians, the core of FGD and FVD.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The trace term only needs the eigenvalues of a symmetric positive semi-definite matrix similar to
S1 S2 (L^T S2 L with S1 = L L^T), whose square roots sum to tr((S1 S2)^(1/2)). A Cholesky factor
and one symmetric eigenvalue call replace the general matrix square root (``scipy.linalg.sqrtm``)
that pytorch-fid and clean-fid use: faster, real by construction, and well defined for singular
covariances (fewer samples than dimensions: the symmetric square root replaces the Cholesky
factor), where tiny negative eigenvalues from rounding are clipped to zero.
"""

from __future__ import annotations

import numpy as np


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via its eigendecomposition (negatives clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2.

    With a factor S1 = L L^T (Cholesky), S1 S2 is similar to the symmetric L^T S2 L, whose
    eigenvalues (values only: the cheapest symmetric eigensolver call) give the trace. A singular
    S1 (fewer samples than dimensions) has no Cholesky factor; its symmetric square root takes the
    place of L, at the cost of a full eigendecomposition.
    """
    try:
        factor = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:
        factor = _symmetric_sqrt(sigma1)
    middle = factor.T @ sigma2 @ factor
    middle = (middle + middle.T) / 2  # exact symmetry for eigvalsh
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance (squared, as FID/FVD/FGD report it) between N(mu1, S1) and N(mu2, S2), float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    for name, array in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} has NaN or inf values")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def frechet_distance_of_centred(mu1: np.ndarray, centred1: np.ndarray, divisor1: float,
                                mu2: np.ndarray, centred2: np.ndarray, divisor2: float) -> float:
    """The Fréchet distance of ``frechet_distance`` with each covariance given as a factor:
    S1 = A^T A / divisor1 and S2 = B^T B / divisor2, ``centred1`` = A ``(r1, d)``, ``centred2`` = B
    ``(r2, d)`` (the centred feature rows, or any factor of the centred scatter matrix).

    No d x d matrix is formed: S1 S2 = A^T (A B^T) B / (divisor1 divisor2) has the non-zero
    eigenvalues of (A B^T)(A B^T)^T / (divisor1 divisor2), so tr((S1 S2)^(1/2)) is the sum of the
    singular values (the nuclear norm) of the r1 x r2 matrix A B^T over sqrt(divisor1 divisor2),
    and tr(S1) = |A|_F^2 / divisor1. Cost O(r1 r2 d): far below the two d x d eigendecompositions
    of the singular case when r1, r2 < d (every resample of an interval over few clips).
    Raises ValueError for a divisor below 1 or shapes that do not match.
    """
    a, b = np.asarray(centred1, np.float64), np.asarray(centred2, np.float64)
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    d = mu1.shape[0]
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != d or b.shape[1] != d or mu2.shape != (d,):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, A {a.shape}, mu2 {mu2.shape}, B {b.shape}")
    if divisor1 < 1 or divisor2 < 1:
        raise ValueError(f"covariance divisors must be at least 1, got {divisor1} and {divisor2}")
    trace_sqrt = 0.0
    if a.size and b.size:
        trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(divisor1 * divisor2)
    diff = mu1 - mu2
    traces = np.einsum("ij,ij->", a, a) / divisor1 + np.einsum("ij,ij->", b, b) / divisor2
    value = diff @ diff + traces - 2.0 * trace_sqrt
    return float(max(value, 0.0))
