"""Hand keypoint confidence (HKC) and hand keypoint variance (HKV) of generated videos.

Sources. CyberHost (Lin et al., arXiv 2409.01876, Sec. 4.1) introduced both for audio-driven
talking-body video: HKC, the average confidence the pose estimator gives the hand keypoints, as a
measure of hand quality (malformed or blurred hands get low scores), and HKV, the variance of the
hand keypoints' positions, as a measure of how much the hands move (richness of hand motion).
EchoMimicV2 (Meng et al., arXiv 2411.10061, Sec. 4) reports both "following CyberHost". Both papers
define them in words only and neither released code: users ask for it in antgroup/echomimic_v2
issue #167 and Wan-Video/Wan2.2 issue #342 (unanswered there), including how frames where a hand is
not detected are handled. The readings implemented here, and why:

- The keypoints are COCO-WholeBody's 42 hand points (91-111 left, 112-132 right; the protocol's
  ``hand_points``) from the extractor FGD uses (DWPose on real videos, as both papers use).
- HKC of a clip = the mean of the extractor's score over every frame and every hand point,
  INCLUDING points the extractor scores below the visibility threshold (a hand that is not found or
  is malformed is exactly what lowers the confidence; leaving those out would reward missing hands).
  The set's HKC is the mean over clips. Range [0, 1], higher is better.
- HKV of a clip = for each hand point, the variance over the frames where it is visible (score >=
  ``visibility_threshold``) of its position, summed over x and y (the trace of the point's 2 x 2
  covariance, divided by the frame count: population variance); averaged over the points visible in
  at least ``hkv_min_frames`` frames. A point is never interpolated (a filled-in hand would invent
  motion). ``hkv_space``: "normalised" divides positions by the clip's median shoulder width, so
  HKV is in squared shoulder widths and does not depend on the resolution or the speaker's distance
  (the default: comparable across data sets); "pixels" keeps pixels (squared pixels: the papers'
  likely unit; numbers then depend on the video size, preset ``cyberhost``). A clip where no hand
  point is visible long enough has no HKV (NaN, left out of the mean and counted in a warning).
  Higher means more hand motion; it is not "better" beyond the real videos' own value (read it
  next to the ``gt`` row: a jittering hand also has a high HKV).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metrics.registry import ClipInputs, ClipMean, ClipMetric, ClipValues
from metrics.skeleton import LEFT_SHOULDER, RIGHT_SHOULDER, check_keypoints


def hand_keypoint_confidence(keypoints: np.ndarray, points: Sequence[int]) -> float:
    """HKC of one clip: the mean score of ``points`` over all frames.

    ``keypoints``: (F, 133, 3) x, y in pixels and score in [0, 1]; F >= 1. Returns a float in [0, 1]."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or len(keypoints) == 0:
        raise ValueError(f"keypoints must be (frames >= 1, points, 3), got {keypoints.shape}")
    return float(keypoints[:, list(points), 2].mean())


def shoulder_width(keypoints: np.ndarray, threshold: float) -> float:
    """The clip's median shoulder width in pixels over frames where both shoulders are visible;
    NaN when they never are."""
    both = (keypoints[:, LEFT_SHOULDER, 2] >= threshold) & (keypoints[:, RIGHT_SHOULDER, 2] >= threshold)
    if not both.any():
        return float("nan")
    widths = np.linalg.norm(keypoints[both, LEFT_SHOULDER, :2] - keypoints[both, RIGHT_SHOULDER, :2], axis=-1)
    return float(np.median(widths))


def hand_keypoint_variance(keypoints: np.ndarray, points: Sequence[int], threshold: float, min_frames: int = 2,
                           scale: float = 1.0) -> float:
    """HKV of one clip: per point, var(x) + var(y) over its visible frames (population variance),
    averaged over the points visible in at least ``min_frames`` frames; positions divided by
    ``scale`` first (pixels / scale; e.g. the shoulder width). Units: (pixels / scale)^2. NaN when
    no point is visible in ``min_frames`` frames."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    values = []
    for point in points:
        seen = keypoints[:, point, 2] >= threshold
        if seen.sum() < max(min_frames, 1):
            continue
        xy = keypoints[seen, point, :2] / scale
        values.append(float(xy.var(axis=0).sum()))
    return float(np.mean(values)) if values else float("nan")


class _HandMetric(ClipMetric):
    """HKC and HKV from one pass over a clip's keypoints (one cached computation)."""

    computation = "hands"
    needs = frozenset({"keypoints"})

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        p = self.protocol
        keypoints = check_keypoints(inputs.keypoints, inputs.source)
        if len(keypoints) == 0:
            raise ValueError(f"{inputs.source}: no frames")
        points = list(p.hand_points)
        scale = 1.0
        if p.hkv_space == "normalised":
            scale = shoulder_width(keypoints, p.visibility_threshold)
        hkv = (float("nan") if not np.isfinite(scale) or scale <= 1e-6 else
               hand_keypoint_variance(keypoints, points, p.visibility_threshold, p.hkv_min_frames, scale))
        return {"hkc": np.float64(hand_keypoint_confidence(keypoints, points)), "hkv": np.float64(hkv),
                "visible": np.float64(np.mean(keypoints[:, points, 2] >= p.visibility_threshold))}

    def describe(self) -> dict:
        p = self.protocol
        return {"input": f"{len(p.hand_points)} COCO-WholeBody hand points (91-132) of the pose extractor"}


class HandKeypointConfidence(_HandMetric):
    id = "hkc"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar("hkc") for c in fake], lower=0.0, upper=1.0)

    def describe(self) -> dict:
        return {**super().describe(), "features": "mean extractor score of the hand points over all frames "
                                                  "(undetected points included), mean over clips"}


class HandKeypointVariance(_HandMetric):
    id = "hkv"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar("hkv") for c in fake], lower=0.0)

    def describe(self) -> dict:
        p = self.protocol
        unit = "squared shoulder widths" if p.hkv_space == "normalised" else "squared pixels"
        return {**super().describe(),
                "features": f"variance over visible frames (score >= {p.visibility_threshold:g}, at least "
                            f"{p.hkv_min_frames}) of each hand point's x and y, summed, mean over points, in {unit}; "
                            "mean over clips"}

