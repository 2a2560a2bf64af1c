"""From COCO-WholeBody keypoints to the normalised skeleton sequences the gesture metrics use.

Steps, each a small function (the constants come from the ``Protocol``):
1. ``fill_missing``: points below the visibility threshold are filled by linear interpolation in
   time from the frames where they are visible; a point never visible in a clip takes the position
   of its anchor (the wrist for a hand point, the shoulders' midpoint for a body point).
2. ``normalise``: centred on the clip's median shoulder midpoint ("neck") and divided by the clip's
   median shoulder width, so units are shoulder widths and a speaker's distance to the camera
   does not matter, while their movement (sway, drift) does.
3. ``resample``: linear interpolation to the protocol's frame rate.
4. ``windows``: overlapping windows of ``window`` frames every ``stride`` frames.
"""

from __future__ import annotations

import numpy as np

from metrics.pose import wholebody as wb

LEFT_SHOULDER, RIGHT_SHOULDER = wb.index_of("left_shoulder"), wb.index_of("right_shoulder")


class SkeletonError(ValueError):
    """Keypoints that cannot give a skeleton (no shoulders, NaN, wrong shape)."""


def check_keypoints(keypoints: np.ndarray, source: str = "keypoints") -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (wb.NUM_KEYPOINTS, 3):
        raise SkeletonError(f"{source}: keypoints must be (frames, 133, 3), got {keypoints.shape}")
    if not np.isfinite(keypoints).all():
        bad = np.flatnonzero(~np.isfinite(keypoints).all(axis=(1, 2)))
        raise SkeletonError(f"{source}: NaN or inf keypoints in {bad.size} frames (first: frame {bad[0]})")
    return keypoints


def _anchor(index: int) -> int | None:
    if index in wb.LEFT_HAND and index != wb.LEFT_HAND.start:
        return wb.LEFT_HAND.start
    if index in wb.RIGHT_HAND and index != wb.RIGHT_HAND.start:
        return wb.RIGHT_HAND.start
    return None


def fill_missing(keypoints: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """Positions (F, 133, 2) with missing points filled, and the share of points that were visible."""
    xy = keypoints[..., :2].copy()
    visible = keypoints[..., 2] >= threshold
    frames = np.arange(len(keypoints))
    shoulders_seen = visible[:, LEFT_SHOULDER] & visible[:, RIGHT_SHOULDER]
    if not shoulders_seen.any():
        raise SkeletonError("the shoulders are never visible: cannot normalise the skeleton")
    for point in (LEFT_SHOULDER, RIGHT_SHOULDER):
        seen = visible[:, point]
        for axis in range(2):
            xy[:, point, axis] = np.interp(frames, frames[seen], xy[seen, point, axis])
    neck = (xy[:, LEFT_SHOULDER] + xy[:, RIGHT_SHOULDER]) / 2
    # Wrists (hand point 0 = the body wrist) first, so hand points can fall back on them.
    order = sorted(range(wb.NUM_KEYPOINTS), key=lambda p: _anchor(p) is not None)
    for point in order:
        if point in (LEFT_SHOULDER, RIGHT_SHOULDER):
            continue
        seen = visible[:, point]
        if seen.all():
            continue
        if seen.any():
            for axis in range(2):
                xy[:, point, axis] = np.interp(frames, frames[seen], xy[seen, point, axis])
        else:
            anchor = _anchor(point)
            xy[:, point] = xy[:, anchor] if anchor is not None else neck
    return xy, float(visible.mean())


def normalise(xy: np.ndarray) -> np.ndarray:
    """Centre on the median neck and scale by the median shoulder width of the clip."""
    neck = (xy[:, LEFT_SHOULDER] + xy[:, RIGHT_SHOULDER]) / 2
    width = np.median(np.linalg.norm(xy[:, LEFT_SHOULDER] - xy[:, RIGHT_SHOULDER], axis=-1))
    if width <= 1e-6:
        raise SkeletonError("shoulder width is zero: cannot normalise the skeleton")
    return (xy - np.median(neck, axis=0)) / width


def resample(sequence: np.ndarray, from_fps: float, to_fps: float) -> np.ndarray:
    """Linear resampling of a (F, ...) sequence in time."""
    if abs(from_fps - to_fps) < 1e-9:
        return sequence
    duration = (len(sequence) - 1) / from_fps
    count = int(np.floor(duration * to_fps + 1e-9)) + 1
    source_t = np.arange(len(sequence)) / from_fps
    target_t = np.arange(count) / to_fps
    flat = sequence.reshape(len(sequence), -1)
    out = np.stack([np.interp(target_t, source_t, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape((count,) + sequence.shape[1:])


def skeleton_sequence(keypoints: np.ndarray, fps: float, points, threshold: float, target_fps: float,
                      source: str = "keypoints") -> tuple[np.ndarray, float]:
    """Normalised positions (F', P, 2) of the chosen points at ``target_fps``, and the visible share."""
    keypoints = check_keypoints(keypoints, source)
    try:
        xy, visible = fill_missing(keypoints, threshold)
        xy = normalise(xy)
    except SkeletonError as error:
        raise SkeletonError(f"{source}: {error}") from None
    chosen = xy[:, list(points)]
    return resample(chosen, fps, target_fps), float(np.mean(keypoints[:, list(points), 2] >= threshold))


def windows(sequence: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(n, window, ...) overlapping windows; none when the sequence is shorter than a window."""
    if len(sequence) < window:
        return np.zeros((0, window) + sequence.shape[1:], dtype=sequence.dtype)
    starts = range(0, len(sequence) - window + 1, stride)
    return np.stack([sequence[s:s + window] for s in starts])
