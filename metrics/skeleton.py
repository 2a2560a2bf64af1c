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


class NoBodyError(SkeletonError):
    """Well-formed keypoints in which no body is found: a shoulder never visible, or shoulders of zero
    width. Of a generated clip this is the clip's own failure (the person lost), not a broken input:
    the metrics that need a skeleton leave the clip out and say so, the others score it. ``reason``: the
    finding alone (no file name, no hint), for a sentence that lists such clips."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def check_keypoints(keypoints: np.ndarray, source: str = "keypoints") -> np.ndarray:
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (wb.NUM_KEYPOINTS, 3):
        raise SkeletonError(f"{source}: keypoints must be (frames, 133, 3), got {keypoints.shape}")
    finite = np.isfinite(keypoints).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise SkeletonError(f"{source}: NaN or inf keypoints in {bad.size} frames (first: frame {bad[0]})")
    return keypoints


def visible_share(keypoints: np.ndarray, points, threshold: float) -> float:
    """The share of ``points`` over all frames of ``keypoints`` (F, 133, 3) with a score >= ``threshold``."""
    return float(np.mean(np.asarray(keypoints)[:, list(points), 2] >= threshold))


def _anchor(index: int) -> int | None:
    if index in wb.LEFT_HAND and index != wb.LEFT_HAND.start:
        return wb.LEFT_HAND.start
    if index in wb.RIGHT_HAND and index != wb.RIGHT_HAND.start:
        return wb.RIGHT_HAND.start
    return None


def fill_missing(keypoints: np.ndarray, threshold: float, points=None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (F, P, 2) of ``points`` (default all 133) with missing ones filled, and the shoulders (F, 2, 2).

    Only the points asked for (and what they fall back on) are touched, so long sequences stay cheap.
    """
    points = list(range(wb.NUM_KEYPOINTS)) if points is None else list(points)
    frames = np.arange(len(keypoints))
    visible = keypoints[..., 2] >= threshold

    def filled(point: int) -> np.ndarray | None:
        xy = keypoints[:, point, :2].astype(np.float64)
        seen = visible[:, point]
        if seen.all():
            return xy
        if not seen.any():
            return None
        return np.stack([np.interp(frames, frames[seen], xy[seen, axis]) for axis in range(2)], axis=1)

    shoulders = [filled(LEFT_SHOULDER), filled(RIGHT_SHOULDER)]
    if shoulders[0] is None or shoulders[1] is None:
        reason = "a shoulder is never visible: cannot normalise the skeleton"
        raise NoBodyError(f"{reason} (on real videos, use --extractor dwpose with its two ONNX files: the default "
                          "toy extractor reads only the toy corpus' colour markers)", reason)
    neck = (shoulders[0] + shoulders[1]) / 2
    out = np.empty((len(keypoints), len(points), 2))
    done: dict[int, np.ndarray] = {LEFT_SHOULDER: shoulders[0], RIGHT_SHOULDER: shoulders[1]}
    for column, point in enumerate(points):
        if point not in done:
            xy = filled(point)
            if xy is None:
                anchor = _anchor(point)
                if anchor is not None and anchor not in done:
                    anchor_xy = filled(anchor)
                    done[anchor] = neck if anchor_xy is None else anchor_xy
                xy = done[anchor] if anchor is not None else neck
            done[point] = xy
        out[:, column] = done[point]
    return out, np.stack(shoulders, axis=1)


def normalise(xy: np.ndarray, shoulders: np.ndarray) -> np.ndarray:
    """Centre on the median neck and scale by the median shoulder width of the clip.

    ``xy`` (F, P, 2) positions, ``shoulders`` (F, 2, 2) the left and right shoulder positions.
    """
    neck = shoulders.mean(axis=1)
    width = np.median(np.linalg.norm(shoulders[:, 0] - shoulders[:, 1], axis=-1))
    if width <= 1e-6:
        raise NoBodyError("shoulder width is zero: cannot normalise the skeleton")
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
    points = list(points)
    try:
        xy, shoulders = fill_missing(keypoints, threshold, points)
        xy = normalise(xy, shoulders)
    except NoBodyError as error:
        raise NoBodyError(f"{source}: {error}", error.reason) from None
    except SkeletonError as error:
        raise SkeletonError(f"{source}: {error}") from None
    return resample(xy, fps, target_fps), visible_share(keypoints, points, threshold)


def windows(sequence: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(n, window, ...) overlapping windows; none when the sequence is shorter than a window."""
    if len(sequence) < window:
        return np.zeros((0, window) + sequence.shape[1:], dtype=sequence.dtype)
    starts = range(0, len(sequence) - window + 1, stride)
    return np.stack([sequence[s:s + window] for s in starts])
