"""Pose extractor for videos of the toy corpus: reads the colour markers back into keypoints.

The toy corpus paints its joints with the colour code of ``metrics.pose.toy_markers``; this
extractor finds each colour and returns COCO-WholeBody keypoints (frames, 133, 3) with a
confidence per point, the same interface as the DWPose extractor for real videos. It works on
blurred or faded frames, as generated videos are, because a marker is found by its hue among
pixels that are much more colourful than anything else in the scene, and its confidence falls
with the colour mass found. Points the code does not mark (ears, eyes, face, feet) get score 0.

It is a measuring instrument for the toy world only: it knows nothing of real people.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from metrics.pose import toy_markers as mk
from metrics.pose import wholebody as wb

EXTRACTOR_ID = "toy-markers-v1"

_HUE_TOLERANCE = 16.0     # degrees: membership falls linearly to 0 at this hue distance
_CHROMA_FLOOR = 0.38      # scene colours stay at or below 0.35 (MAX_SCENE_CHROMA)
_CHROMA_FULL = 0.60       # pixels at or above this chroma count fully


def rgb_to_hue_chroma(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360) and chroma (max - min channel) in [0, 1] of uint8 RGB pixels."""
    rgb = frames.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = rgb.max(-1)
    chroma = high - rgb.min(-1)
    safe = np.where(chroma > 1e-6, chroma, 1.0)
    hue = np.where(high == r, ((g - b) / safe) % 6.0, np.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return (60.0 * hue) % 360.0, chroma


def hue_membership(hue: np.ndarray, chroma: np.ndarray, target: float) -> np.ndarray:
    """How much each pixel looks like a marker of hue ``target``, in [0, 1]."""
    distance = np.abs((hue - target + 180.0) % 360.0 - 180.0)
    hue_weight = np.clip(1.0 - distance / _HUE_TOLERANCE, 0.0, 1.0)
    chroma_weight = np.clip((chroma - _CHROMA_FLOOR) / (_CHROMA_FULL - _CHROMA_FLOOR), 0.0, 1.0)
    return hue_weight * chroma_weight


class _Colourful:
    """The pixels of a frame colourful enough to belong to a marker (chroma above the floor).

    Every other pixel has membership 0 for every hue, so memberships are computed on these pixels
    only and scattered into a frame of zeros (the same values as computing them everywhere).
    """

    def __init__(self, hue: np.ndarray, chroma: np.ndarray) -> None:
        self.shape = hue.shape
        self.index = np.flatnonzero(chroma > _CHROMA_FLOOR)
        self.hue = hue.ravel()[self.index]
        self.chroma = chroma.ravel()[self.index]

    def membership(self, target: float) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.result_type(self.hue, self.chroma, np.float32))
        out.ravel()[self.index] = hue_membership(self.hue, self.chroma, target)
        return out


def _blobs(membership: np.ndarray, min_mass: float) -> list[tuple[np.ndarray, float]]:
    """Centroids (x, y) and masses of the connected colour blobs, heaviest first.

    The mass and centre of each label are ``np.bincount`` sums over the pixels in raster order, as
    ``ndimage.sum`` and ``ndimage.center_of_mass`` compute them.
    """
    labels, count = ndimage.label(membership > 0.05)
    if count == 0:
        return []
    flat = labels.ravel()
    weights = membership.ravel().astype(np.float64)
    masses = np.bincount(flat, weights, count + 1)[1:]
    rows, cols = _pixel_grid(membership.shape, np.float64).reshape(2, -1)
    centre_rows = np.bincount(flat, weights * rows, count + 1)[1:] / masses
    centre_cols = np.bincount(flat, weights * cols, count + 1)[1:] / masses
    blobs = [(np.array([c, r]), float(m)) for r, c, m in zip(centre_rows, centre_cols, masses) if m >= min_mass]
    return sorted(blobs, key=lambda b: -b[1])


class ToyMarkerPose:
    """``ToyMarkerPose()(frames)`` -> keypoints (F, 133, 3) for uint8 RGB frames (F, H, W, 3)."""

    extractor_id = EXTRACTOR_ID

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (frames, height, width, 3), got {frames.dtype} {frames.shape}")
        out = np.zeros((frames.shape[0], wb.NUM_KEYPOINTS, 3), dtype=np.float32)
        for f, frame in enumerate(frames):
            out[f] = self.extract_frame(frame)
        return out

    def extract_frame(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        size = float(min(height, width))
        hue, chroma = rgb_to_hue_chroma(frame)
        colourful = _Colourful(hue, chroma)
        marker_area = np.pi * (size * mk.MARKER_RADIUS_FRACTION) ** 2
        keypoints = np.zeros((wb.NUM_KEYPOINTS, 3), dtype=np.float32)

        def put(index: int, xy: np.ndarray, score: float) -> None:
            if score > 0.0:
                keypoints[index] = (xy[0], xy[1], min(1.0, score))

        def single(hue_value: float) -> tuple[np.ndarray, float] | None:
            blobs = _blobs(colourful.membership(hue_value), 0.15 * marker_area)
            return (blobs[0][0], blobs[0][1] / (0.6 * marker_area)) if blobs else None

        self._trunk(colourful, marker_area, size, put)
        wrists = {}
        for side in ("left", "right"):
            for part, hues in (("elbow", mk.ELBOW_HUES), ("wrist", mk.WRIST_HUES)):
                found = single(hues[side])
                if found is not None:
                    put(wb.index_of(f"{side}_{part}"), *found)
                    if part == "wrist":
                        wrists[side] = found
                        put(wb.hand_index(side, None), *found)
        if wrists:
            self._fingers(colourful, wrists, size, put)
        return keypoints

    def _trunk(self, colourful, marker_area, size, put) -> None:
        """Nose, shoulders and hips share one hue: the top blob is the nose, then shoulders, then hips."""
        blobs = _blobs(colourful.membership(mk.TRUNK_HUE), 0.2 * marker_area)[:5]
        if not blobs:
            return
        blobs.sort(key=lambda b: b[0][1])  # top to bottom
        nose, rest = blobs[0], blobs[1:]
        put(wb.index_of("nose"), nose[0], nose[1] / (0.6 * marker_area))
        # Shoulders lie within a quarter frame below the nose; anything lower is a hip.
        shoulders = [b for b in rest if b[0][1] - nose[0][1] < 0.3 * size][:2]
        hips = [b for b in rest if b[0][1] - nose[0][1] >= 0.3 * size][:2]
        for group, part in ((shoulders, "shoulder"), (hips, "hip")):
            for xy, mass in group:
                # The subject's left is the image's right for a frontal speaker.
                side = "left" if xy[0] >= nose[0][0] else "right"
                if len(group) == 2:
                    side = "left" if xy[0] == max(b[0][0] for b in group) else "right"
                put(wb.index_of(f"{side}_{part}"), xy, mass / (0.6 * marker_area))

    def _fingers(self, colourful, wrists, size, put) -> None:
        """Each finger's pixels near its wrist, ordered by distance from it, give base, joints and tip.

        A finger's hue is shared by both hands: each connected piece of that colour goes to the
        wrist it comes closest to, so touching hands do not swap fingers pixel by pixel.
        """
        ys, xs = _pixel_grid(colourful.shape)
        reach = mk.HAND_REACH_FRACTION * size
        distance = {side: np.hypot(xs - xy[0], ys - xy[1]) for side, (xy, _) in wrists.items()}
        near_a_wrist = np.min(np.stack(list(distance.values())), axis=0) < reach
        expected_mass = mk.FINGER_LENGTH_FRACTION * mk.FINGER_WIDTH_FRACTION * size * size
        for finger, finger_hue in mk.FINGER_HUES.items():
            membership = colourful.membership(finger_hue) * near_a_wrist
            labels, count = ndimage.label(membership > 0.05)
            if count == 0:
                continue
            inside = labels > 0
            closest = {side: _minimum_per_label(d[inside], labels[inside], count) for side, d in distance.items()}
            owner = np.array([min(closest, key=lambda side: closest[side][k]) for k in range(count)])
            for side in wrists:
                mine = np.isin(labels, np.flatnonzero(owner == side) + 1)
                weights = membership[mine]
                if weights.sum() < 0.1 * expected_mass:
                    continue
                order = np.argsort(distance[side][mine], kind="stable")
                points = np.stack([xs[mine], ys[mine]], 1)[order]
                weights = weights[order]
                position = (np.cumsum(weights) - 0.5 * weights) / weights.sum()
                chain = _points_along(points, weights, position, mk.FINGER_POINT_FRACTIONS)
                score = weights.sum() / (0.3 * expected_mass)
                for level, xy in enumerate(chain, start=1):
                    put(wb.hand_index(side, finger, level), xy, score)


@functools.lru_cache(maxsize=4)
def _pixel_grid(shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
    """(2, H, W) row and column coordinates of every pixel of a frame of ``shape`` (read-only)."""
    grid = np.indices(shape, dtype=dtype)
    grid.flags.writeable = False
    return grid


def _minimum_per_label(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Minimum of ``values`` for each label 1..count (labels of the pixels in ``values``)."""
    out = np.full(count + 1, np.inf)
    np.minimum.at(out, labels, values)
    return out[1:]


def _points_along(points: np.ndarray, weights: np.ndarray, position: np.ndarray, fractions) -> list[np.ndarray]:
    """Points at arc-length fractions of a drawn line, from its pixels sorted along it.

    ``position`` is each pixel's cumulative mass fraction along the line (0 at the base, 1 at the
    tip). A point inside the line is the weighted mean of a band of pixels centred on it; an end
    point is extrapolated linearly from the two bands next to it, since a band at an end is
    one-sided.
    """
    band = 0.12

    def band_mean(centre: float) -> np.ndarray:
        inside = np.abs(position - centre) <= band / 2
        if not inside.any():
            inside = np.argsort(np.abs(position - centre))[:1]
        # np.average's arithmetic, without its checks (this runs about 30 times per frame)
        w = weights[inside]
        return np.multiply(points[inside], w[:, None]).sum(axis=0) / w.sum()

    out = []
    for fraction in fractions:
        if band / 2 < fraction < 1 - band / 2:
            out.append(band_mean(fraction))
            continue
        inward = 1.0 if fraction <= band / 2 else -1.0
        near = fraction + inward * band / 2
        far = near + inward * band
        a, b = band_mean(near), band_mean(far)
        out.append(a + (a - b) * (band / 2) / band)
    return out
