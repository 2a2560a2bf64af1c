"""Chunk joins: the jump at the boundaries of a video generated in chunks, and the drift from the
reference image over time. No peer measures these (issue 18); the definitions are this project's.

A generator that works in chunks (IMAC: 16-frame chunks, each starting on the previous one's last
frame, so a new chunk every 15 frames; MYA's windows; S2G's segments) can leave a visible seam where
one chunk hands over to the next: a jump in appearance, or a kink in the motion. The measures:

- the appearance series ``d[t]`` (t = 0 .. F-2): the mean absolute difference between frames t and
  t + 1 over pixels and channels, in grey levels (0-255) (``frame_differences``);
- the motion series ``m[t]`` (t = 1 .. F-3): how far the velocity of transition t (frame t to t + 1)
  departs from the mean velocity of its neighbours, ``|v[t] - (v[t-1] + v[t+1]) / 2|``, averaged
  over the keypoints visible in frames t-1 .. t+2, in pixels per frame (``velocity_kinks``). A jump
  J at a seam gives m = J there (J / 2 at the neighbouring transitions); a smooth motion gives a
  second-order small m;
- the chunk boundaries: the transitions t = offset + k * period. The period and offset are taken
  from the method's facts when it states them (hints ``chunk_period``, ``chunk_offset``: what the
  runner passes for IMAC) and the protocol allows it (``join_period_source`` "facts_or_detect"),
  else detected from the appearance series (then from the motion series) by epoch folding
  (``detect_period``): for every candidate period P in [``join_min_period``, ``join_max_period``]
  and offset 1 <= o <= P with at least ``join_min_boundaries`` boundaries, a robust z score of the
  transitions at o + kP against all the others (``fold_statistic``: lower quartiles and the median
  absolute deviation, so neither one large gesture at a candidate boundary nor half the true period
  makes a period); the largest wins
  if it exceeds ``join_detection_z`` (a conservative bound: ~500 candidates are tried). A multiple
  of the true period holds fewer boundaries with the same quartile, so its z is smaller: the
  fundamental wins. A detected appearance period must also raise the boundaries' lower quartile by
  ``join_min_change`` grey levels (codec flicker is smaller), and a clip whose mean frame change is
  below ``join_min_change`` is still: no seams (x264's P/B-frame rhythm gives a still video
  periodic differences of a fraction of a grey level; periods below 8 frames are excluded for it).
  (Autocorrelation of ``d`` finds the period too, but not the offset; folding gives both.)
- per clip, ``join ratio = mean(series at boundaries) / mean(series elsewhere)``: 1.0 is seamless,
  2.0 is a boundary jump twice the typical frame-to-frame change. A clip with no detected period
  and no stated one has ratio 1.0 (no seam found; recorded as period 0), as has a clip that does
  not change at all (a still video: nothing to jump). The set's value is the mean over clips.
- drift: ``D[t]`` = mean absolute difference between frame t and the reference image (the real
  clip's frame 0, the image generation starts from), grey levels; the clip's drift is the
  least-squares slope of D over time in grey levels per second (``drift_slope``). Real speakers
  move, so the real videos' own drift is the yardstick (row ``gt``).

Expected order of the toy controls: the still control (``static``) has ratio 1.0 and drift 0 by
construction (it wins: it never changes); real videos (``gt``, ``shuffled``) have ratios near 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from metrics.registry import ClipInputs, ClipMean, ClipMetric, ClipValues

# what ``clip`` records as the period's origin
SOURCE_NONE, SOURCE_DETECTED, SOURCE_FACTS = 0, 1, 2


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """(F-1,) mean |frame[t+1] - frame[t]| over pixels and channels, in grey levels, of uint8
    frames (F, H, W, C); F >= 2."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"frames must be (F >= 2, H, W, C), got {frames.shape}")
    return frame_series([frames], frames[0])[0]


def frame_series(chunks: Iterable[np.ndarray], reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frame_differences`` (F-1,) and ``reference_distances`` (F,) of a video given as its uint8
    frames (F, H, W, C) in chunks (n, H, W, C), in order: one pass that holds one chunk and the
    previous frame, not the video (the same values as of the whole array). ValueError when a chunk
    is not (n, H, W, C) of ``reference``'s (H, W, C)."""
    reference = np.asarray(reference)
    ref = reference.astype(np.int16)
    differences, distances, previous = [], [], None
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 4 or chunk.shape[1:] != reference.shape:
            raise ValueError(f"the reference image is {reference.shape}, the frames {chunk.shape[1:]}")
        for frame in chunk:            # one frame at a time: no (n, H, W, C) int16 copy
            current = frame.astype(np.int16)
            if previous is not None:
                differences.append(np.abs(current - previous).mean())
            distances.append(np.abs(current - ref).mean())
            previous = current
    return np.array(differences, dtype=np.float64), np.array(distances, dtype=np.float64)


def velocity_kinks(keypoints: np.ndarray, points: Sequence[int], threshold: float) -> np.ndarray:
    """(F-1,) motion series indexed by transition t (frame t -> t+1): the mean over ``points``
    visible (score >= threshold) in frames t-1 .. t+2 of ``|v[t] - (v[t-1] + v[t+1]) / 2|``,
    v[t] = xy[t+1] - xy[t] (pixels per frame). NaN where t has no two neighbours (t = 0, F-2) or no
    point is visible throughout."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    frames = len(keypoints)
    out = np.full(max(frames - 1, 0), np.nan)
    if frames < 4:
        return out
    xy = keypoints[:, list(points), :2]
    seen = keypoints[:, list(points), 2] >= threshold
    v = xy[1:] - xy[:-1]                                     # (F-1, P, 2)
    kink = np.linalg.norm(v[1:-1] - (v[:-2] + v[2:]) / 2, axis=-1)     # transitions 1 .. F-3
    ok = seen[:-3] & seen[1:-2] & seen[2:-1] & seen[3:]      # frames t-1, t, t+1, t+2 for t = 1 .. F-3
    counts = ok.sum(axis=1)
    sums = np.where(ok, kink, 0.0).sum(axis=1)
    out[1:-1] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def boundary_mask(length: int, period: int, offset: int) -> np.ndarray:
    """(length,) bool: True at the transitions offset, offset + period, ... (offset >= 0)."""
    mask = np.zeros(length, dtype=bool)
    if period > 0:
        mask[offset::period] = True
    return mask


MAD_TO_SD = 1.4826           # median absolute deviation -> standard deviation of a normal sample
QUARTILE_SE = 1.3626         # the standard error of a normal sample's lower quartile is ~1.3626 sd / sqrt(n)


def fold_statistic(inside: np.ndarray, outside: np.ndarray) -> float:
    """How far the boundaries' values stand above the others, robustly: (q25(inside) - q25(outside))
    / (1.3626 * 1.4826 * MAD(outside) / sqrt(len(inside))), a z score of the boundaries' lower
    quartile under the outside spread. The lower quartile, because a seam raises EVERY boundary:
    a single large gesture at one candidate boundary does not move it, nor does a candidate at half
    the true period, where only every other boundary is a seam (with a mean or a median, both can
    win). inf when the outside has no spread and the quartiles differ, 0 when they are equal."""
    inside, outside = np.asarray(inside, float), np.asarray(outside, float)
    diff = float(np.quantile(inside, 0.25) - np.quantile(outside, 0.25))
    spread = MAD_TO_SD * float(np.median(np.abs(outside - np.median(outside))))
    se = QUARTILE_SE * spread / math.sqrt(len(inside))
    if se <= 0:
        return 0.0 if diff <= 0 else math.inf
    return diff / se


def detect_period(series: np.ndarray, min_period: int, max_period: int, min_boundaries: int,
                  threshold: float, min_excess: float = 0.0) -> tuple[int, int, float]:
    """(period, offset, z) of the strongest periodic excess in ``series`` by epoch folding (module
    docstring; ``fold_statistic``); (0, 0, best z) when none exceeds ``threshold`` or the winner's
    boundaries' lower quartile exceeds the others' by less than ``min_excess`` (in the series' unit).
    NaN entries are left out. Ties (a multiple of the period can match its z) go to the shorter period."""
    series = np.asarray(series, dtype=np.float64)
    valid = np.isfinite(series)
    best = (0, 0, -math.inf)
    for period in range(max(2, min_period), max_period + 1):
        for offset in range(1, period + 1):      # a seam at transition 0 (frame 0 -> 1) is offset P
            mask = boundary_mask(len(series), period, offset)
            inside, outside = series[mask & valid], series[~mask & valid]
            if len(inside) < min_boundaries or len(outside) < 2:
                continue
            t = fold_statistic(inside, outside)
            if t > best[2]:
                best = (period, offset, t)
    if best[2] > threshold:
        mask = boundary_mask(len(series), best[0], best[1])
        excess = np.quantile(series[mask & valid], 0.25) - np.quantile(series[~mask & valid], 0.25)
        if excess >= min_excess:
            return best
    return 0, 0, best[2] if math.isfinite(best[2]) else 0.0


def join_ratio(series: np.ndarray, period: int, offset: int, floor: float = 1e-9) -> float:
    """mean(series at the boundaries) / mean(series elsewhere), NaN entries left out; 1.0 without a
    period or when the series is ~0 elsewhere (nothing moves: no seam to see)."""
    series = np.asarray(series, dtype=np.float64)
    if period <= 0:
        return 1.0
    mask = boundary_mask(len(series), period, offset)
    valid = np.isfinite(series)
    inside, outside = series[mask & valid], series[~mask & valid]
    if len(inside) == 0 or len(outside) == 0:
        return 1.0
    base = outside.mean()
    if base <= floor:
        return 1.0 if inside.mean() <= floor else math.inf
    return float(inside.mean() / base)


def reference_distances(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(F,) mean |frame[t] - reference| over pixels and channels, grey levels; ``reference`` (H, W, C)
    must have the frames' size."""
    return frame_series([np.asarray(frames)], reference)[1]


def drift_slope(distances: np.ndarray, fps: float) -> float:
    """Least-squares slope of ``distances`` (F,) against time t / fps, in units per second; 0 for
    fewer than 2 frames."""
    distances = np.asarray(distances, dtype=np.float64)
    if len(distances) < 2:
        return 0.0
    seconds = np.arange(len(distances)) / fps
    centred = seconds - seconds.mean()
    return float((centred * (distances - distances.mean())).sum() / (centred ** 2).sum())


def stated_period(hints: Mapping, protocol) -> tuple[int, int] | None:
    """(period, offset) from a method's facts (``chunk_period``, ``chunk_offset``) when the protocol
    takes them; None otherwise. A bad value raises ValueError naming the hint."""
    if protocol.join_period_source != "facts_or_detect" or "chunk_period" not in hints:
        return None
    period, offset = hints["chunk_period"], hints.get("chunk_offset", 0)
    if not isinstance(period, int) or period < 2 or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"hints: chunk_period must be an int >= 2 and chunk_offset an int >= 0, got "
                         f"{period!r}, {offset!r}")
    return period, offset


def clip_joins(frames: np.ndarray | Iterable[np.ndarray], keypoints: np.ndarray | None, reference: np.ndarray,
               fps: float, hints: Mapping, protocol) -> dict[str, float]:
    """Every chunk-join value of one clip (the module docstring): ratios, the period, offset and
    where they came from (``SOURCE_*``), the detection statistic and the drift. ``frames``: uint8
    (F, H, W, C), or its chunks in order (``frame_series``); F >= 2."""
    p = protocol
    appearance, distances = frame_series([frames] if isinstance(frames, np.ndarray) else frames, reference)
    if len(distances) < 2:
        raise ValueError(f"the chunk joins need at least 2 frames, got {len(distances)}")
    motion = (velocity_kinks(keypoints, p.skeleton_points, p.visibility_threshold) if keypoints is not None
              else np.full(len(appearance), np.nan))
    stated = stated_period(hints, p)
    statistic = float("nan")
    still = float(appearance.mean()) < p.join_min_change     # nothing changes: no seam to see
    if still:
        period, offset, source = 0, 0, SOURCE_NONE
    elif stated is not None:
        (period, offset), source = stated, SOURCE_FACTS
    else:
        period, offset, statistic = detect_period(appearance, p.join_min_period, p.join_max_period,
                                                  p.join_min_boundaries, p.join_detection_z, p.join_min_change)
        if period == 0 and np.isfinite(motion).sum() > 2 * p.join_min_boundaries:
            period, offset, statistic = detect_period(motion, p.join_min_period, p.join_max_period,
                                                      p.join_min_boundaries, p.join_detection_z)
        source = SOURCE_DETECTED if period else SOURCE_NONE
    return {"ratio_appearance": join_ratio(appearance, period, offset),
            "ratio_motion": join_ratio(motion, period, offset) if np.isfinite(motion).any() else float("nan"),
            "period": period, "offset": offset, "source": source, "statistic": statistic,
            "drift": drift_slope(distances, fps), "reference_distance": float(distances.mean())}


class _JoinMetric(ClipMetric):
    """The three chunk-join values from one pass over a clip (one cached computation)."""

    computation = "chunk_joins"
    needs = frozenset({"frame_chunks", "keypoints", "reference"})

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        if inputs.frame_chunks is None:
            raise ValueError(f"{inputs.source}: the chunk joins need the video's frames")
        try:
            values = clip_joins(inputs.frame_chunks(), inputs.keypoints, inputs.reference, inputs.fps, inputs.hints,
                                self.protocol)
        except ValueError as error:
            if str(error).startswith(inputs.source):       # (a decoding error names the file)
                raise
            raise ValueError(f"{inputs.source}: {error}") from None
        return {name: np.asarray(value, dtype=np.float64) for name, value in values.items()}

    def counts(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> dict[str, int]:
        sources = [int(c.scalar("source")) for c in fake]
        return {"n_clips": len(fake), "n_period_detected": sources.count(SOURCE_DETECTED),
                "n_period_from_facts": sources.count(SOURCE_FACTS)}

    def _period_text(self) -> str:
        p = self.protocol
        taken = "the method's stated chunk period, else " if p.join_period_source == "facts_or_detect" else ""
        return (f"boundaries every period from {taken}epoch folding of the frame-difference series (periods "
                f"{p.join_min_period}-{p.join_max_period} frames, >= {p.join_min_boundaries} boundaries, robust z > "
                f"{p.join_detection_z:g}; none found: ratio 1.0)")


class AppearanceJoins(_JoinMetric):
    id = "joins_app"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar("ratio_appearance") for c in fake], lower=0.0)

    def describe(self) -> dict:
        return {"features": "mean |frame difference| at chunk boundaries / elsewhere, mean over clips",
                "input": self._period_text()}


class MotionJoins(_JoinMetric):
    id = "joins_motion"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar("ratio_motion") for c in fake], lower=0.0)

    def describe(self) -> dict:
        p = self.protocol
        return {"features": "mean keypoint velocity kink at chunk boundaries / elsewhere, mean over clips",
                "input": f"{len(p.skeleton_points)} skeleton points (score >= {p.visibility_threshold:g}); "
                         + self._period_text()}


class ReferenceDrift(_JoinMetric):
    id = "drift"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar("drift") for c in fake])

    def describe(self) -> dict:
        return {"features": "least-squares slope over time of the mean |frame - reference image| (grey levels "
                            "per second), mean over clips",
                "input": "reference image: the real clip's frame 0 (a generated clip without one: its own frame 0, "
                         "said under the conversions)"}
