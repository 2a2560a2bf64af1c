"""Thin-plate-spline (TPS) mappings of the plane and the image warp they drive.

A TPS fitted to control points ``source -> target`` (N of each, (x, y)) is the map

    f(p) = a_0 + a_x * x + a_y * y + sum_i w_i * U(|p - c_i|),   U(r) = r^2 log r   (U(0) = 0)

with centres ``c_i = source_i``, whose coefficients solve

    [ K + lambda I   P ] [ w ]   [ target ]
    [ P^T            0 ] [ a ] = [ 0      ],      K_ij = U(|c_i - c_j|),  P_i = (1, x_i, y_i).

With ``regularization`` lambda = 0 it interpolates (exact at the control points) and, among all
such maps, has the least bending energy; lambda > 0 trades exactness for smoothness. This is the
system ``scipy.interpolate.RBFInterpolator(kernel="thin_plate_spline", degree=1, smoothing=lambda)``
solves, so the two give the same map (the tests check it). Coordinates are pixels: x right, y down,
pixel centres at integers (as keypoint files count them). Lambda is in the units of K, i.e. it
depends on the image size.

``tps_warp`` moves an image's content from ``source_points`` to ``target_points`` by backward
mapping: every output pixel looks up where it comes from with the TPS fitted ``target -> source``
and reads the source image there (bilinear, coordinates clamped to the border).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVALUATION_CHUNK = 1 << 14   # query points per block: bounds the (M, N) kernel matrix in memory
_RELATIVE_TOLERANCE = 1e-9   # of the points' extent: closer is "the same point", flatter is "a line"


@dataclass(frozen=True)
class TPSParams:
    """A fitted thin-plate spline: centres (N, 2), kernel weights (N, 2), affine part (3, 2).

    The affine part acts on ``(1, (x - offset_x) / scale, (y - offset_y) / scale)``: centring and
    scaling the polynomial columns keeps the linear system well conditioned without changing the map.
    """

    centres: np.ndarray
    weights: np.ndarray
    affine: np.ndarray
    offset: np.ndarray   # (2,)
    scale: float


def thin_plate_kernel(squared_distance: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r from r^2 (= r^2 log(r^2) / 2, no square root), with U(0) = 0."""
    squared = np.asarray(squared_distance, dtype=np.float64)
    positive = squared > 0.0
    return np.where(positive, 0.5 * squared * np.log(np.where(positive, squared, 1.0)), 0.0)


def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(M, N) squared Euclidean distances between (M, 2) points and (N, 2) centres.

    Computed as |p|^2 + |c|^2 - 2 p.c (one matrix product: twice as fast as differences on large
    grids) around the centres' mean, so that the cancellation error stays ~1e-16 of the squared extent
    (exact zeros at the centres themselves are not guaranteed: ~1e-12 for pixel coordinates).
    """
    origin = centres.mean(axis=0)
    points, centres = points - origin, centres - origin
    squared = (points * points).sum(axis=1)[:, None] + (centres * centres).sum(axis=1)[None, :]
    return np.maximum(squared - 2.0 * points @ centres.T, 0.0)


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) points, got shape {points.shape}")
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name}: {int((~finite).sum())} point(s) with NaN or inf "
                         f"(first: point {int(np.argmin(finite))})")
    return points


def _check_geometry(points: np.ndarray, regularization: float) -> None:
    """Fewer than 3 points or all on a line: the affine part is undetermined (at any lambda).
    Two points at the same place: K has equal rows, solvable only with lambda > 0."""
    if len(points) < 3:
        raise ValueError(f"a thin-plate spline needs at least 3 control points, got {len(points)}")
    centred = points - points.mean(axis=0)
    extent = float(np.abs(centred).max())
    singular = np.linalg.svd(centred, compute_uv=False)
    if extent == 0.0 or singular[1] <= _RELATIVE_TOLERANCE * singular[0]:
        raise ValueError(f"the {len(points)} source points are collinear (or all equal): the thin-plate "
                         "spline's affine part is undetermined; add a point off their line")
    if regularization == 0.0:
        gaps = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
        gaps[np.diag_indices(len(points))] = np.inf
        first, second = np.unravel_index(np.argmin(gaps), gaps.shape)
        if gaps[first, second] <= _RELATIVE_TOLERANCE * extent:
            raise ValueError(f"source points {min(first, second)} and {max(first, second)} coincide at "
                             f"{points[first].tolist()}: drop one, or use regularization > 0")


def tps_fit(source_points: np.ndarray, target_points: np.ndarray, regularization: float = 0.0) -> TPSParams:
    """The thin-plate spline taking ``source_points`` (N, 2) to ``target_points`` (N, 2)."""
    source = _check_points(source_points, "source_points")
    target = _check_points(target_points, "target_points")
    if source.shape != target.shape:
        raise ValueError(f"source and target points differ in number: {len(source)} and {len(target)}")
    regularization = float(regularization)
    if not np.isfinite(regularization) or regularization < 0.0:
        raise ValueError(f"regularization must be a finite number >= 0, got {regularization}")
    _check_geometry(source, regularization)
    count = len(source)
    offset = source.mean(axis=0)
    scale = float(np.abs(source - offset).max())
    polynomial = np.concatenate([np.ones((count, 1)), (source - offset) / scale], axis=1)
    kernel = thin_plate_kernel(((source[:, None, :] - source[None, :, :]) ** 2).sum(axis=-1))
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel + regularization * np.eye(count)
    system[:count, count:] = polynomial
    system[count:, :count] = polynomial.T
    right = np.concatenate([target, np.zeros((3, 2))], axis=0)
    try:
        solution = np.linalg.solve(system, right)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"the thin-plate spline system of {count} points is singular ({error}); "
                         "use regularization > 0") from None
    return TPSParams(centres=source, weights=solution[:count], affine=solution[count:], offset=offset, scale=scale)


def tps_transform(params: TPSParams, points: np.ndarray) -> np.ndarray:
    """The fitted map at ``points`` (M, 2): (M, 2) float64."""
    points = _check_points(points, "points")
    out = np.empty_like(points)
    for first in range(0, len(points), EVALUATION_CHUNK):
        block = points[first:first + EVALUATION_CHUNK]
        kernel = thin_plate_kernel(squared_distances(block, params.centres))
        polynomial = np.concatenate([np.ones((len(block), 1)), (block - params.offset) / params.scale], axis=1)
        out[first:first + EVALUATION_CHUNK] = kernel @ params.weights + polynomial @ params.affine
    return out


def bilinear_sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) read at float pixel positions ``xy`` (..., 2), clamped to the border: (..., C) float64."""
    height, width = image.shape[:2]
    x = np.clip(xy[..., 0], 0.0, width - 1.0)
    y = np.clip(xy[..., 1], 0.0, height - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    pixels = image.astype(np.float64)
    top = pixels[y0, x0] * (1.0 - fx) + pixels[y0, x1] * fx
    bottom = pixels[y1, x0] * (1.0 - fx) + pixels[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def tps_warp(image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
             regularization: float = 0.0) -> np.ndarray:
    """``image`` (H, W, C) uint8 warped so that its content at ``source_points`` lands on ``target_points``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (height, width, channels), got {image.dtype} {image.shape}")
    backward = tps_fit(target_points, source_points, regularization)
    height, width = image.shape[:2]
    rows, columns = np.mgrid[0:height, 0:width]
    grid = np.stack([columns.ravel(), rows.ravel()], axis=1).astype(np.float64)
    where_from = tps_transform(backward, grid).reshape(height, width, 2)
    return np.clip(np.rint(bilinear_sample(image, where_from)), 0, 255).astype(np.uint8)
