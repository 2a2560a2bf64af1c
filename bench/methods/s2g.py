"""S2G (reimplementation): keypoints sampled from speech, then the reference image warped to them.

S2G (He et al., "Co-Speech Gesture Video Generation via Motion-Decoupled Diffusion Model", CVPR
2024) decouples motion from appearance: a transformer diffusion model generates motion keypoints
from the audio, and the reference image is warped to each frame by thin-plate-spline (TPS)
transformations defined by those keypoints. Visual control is explicit: every frame is the
reference image moved by keypoints, nothing else.

What this reimplementation keeps:

- audio-conditioned transformer diffusion over keypoint sequences, sampled window by window (here
  IMAC's own motion model and audio features, ``bench.baselines.keypoint_motion``, trained on the
  run's train split);
- TPS warping of the reference image from the reference frame's keypoints to each generated
  frame's keypoints (``bench.baselines.tps``).

What it simplifies:

- Keypoints: S2G learns its own keypoints without supervision (those of a TPS motion model,
  trained by reconstructing video frames), groups them into several TPS transformations that a
  dense-motion network blends per pixel with occlusion masks, and warps feature maps of an
  encoder-decoder. Here the keypoints are the dataset's COCO-WholeBody keypoints (or the run's
  pose extractor's) and ONE TPS warps the image's pixels directly. Its control points are the
  modelled points scored >= ``score_threshold`` in the reference keypoints, minus any closer than
  ``min_point_gap`` pixels to an earlier one (COCO-WholeBody's hand roots repeat the wrists), plus
  the image's corners and edge midpoints held in place (``border_anchors``), with smoothing
  ``regularization``.
- No refinement network: S2G repaints regions the warp gets wrong (occluded and revealed areas,
  hands) with a learned network; here whatever the TPS drags there stays (e.g. a hand moving
  over the torso drags torso pixels along).
- No optimal motion selection: S2G picks the motion of each segment of a long video so that
  consecutive segments join coherently; here windows are sampled independently (as IMAC does)
  and only the keypoint model's temporal smoothing softens the joins.
- One keypoint model for all training speakers, where S2G trains per speaker: the generated motion
  is of an average body, so it is retargeted to the reference frame's body before warping
  (``keypoint_motion.retarget``: the reference's bone lengths, the generated bone directions);
  without that, the warp would stretch each speaker to the average proportions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from bench.methods.base import BenchContext, Method, reference_keypoints
from metrics.dataset import ClipRecord
from bench.baselines.keypoint_motion import KeypointMotion, KeypointMotionOptions, retarget
from bench.baselines.tps import tps_warp


@dataclass
class S2GOptions:
    """The warp's settings; every other key of the ``s2g`` section goes to ``KeypointMotionOptions``."""

    regularization: float = 1.0       # TPS lambda (pixel units): smooths the warp around close points
    min_point_gap: float = 1.0        # pixels: a control point this close to a kept one is dropped
    border_anchors: bool = True       # fix the corners and edge midpoints of the image

    @classmethod
    def split(cls, values: dict[str, Any] | None, where: str = "s2g") -> tuple[S2GOptions, KeypointMotionOptions]:
        """This method's options and the keypoint model's from one config mapping; unknown keys are an error."""
        values = dict(values or {})
        own = {f.name for f in fields(cls)}
        motion_keys = {f.name for f in fields(KeypointMotionOptions)}
        unknown = sorted(set(values) - own - motion_keys)
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(own | motion_keys))})")
        mine = {k: v for k, v in values.items() if k in own}
        for name, value in mine.items():
            expected = bool if name == "border_anchors" else (int, float)
            if not isinstance(value, expected) or (expected != bool and isinstance(value, bool)):
                raise ValueError(f"{where}: option {name} must be a {'boolean' if expected is bool else 'number'}, "
                                 f"got {value!r}")
        options = cls(**mine)
        if options.regularization < 0 or options.min_point_gap < 0:
            raise ValueError(f"{where}: regularization and min_point_gap must be >= 0")
        motion = KeypointMotionOptions.from_dict({k: v for k, v in values.items() if k in motion_keys}, where)
        return options, motion


def border_points(height: int, width: int) -> np.ndarray:
    """The 4 corners and 4 edge midpoints of an image, (8, 2) x, y in pixels."""
    xs, ys = (0.0, (width - 1) / 2, width - 1.0), (0.0, (height - 1) / 2, height - 1.0)
    return np.array([(x, y) for y in ys for x in xs if (x, y) != (xs[1], ys[1])])


def control_points(reference: np.ndarray, generated: np.ndarray, points: tuple[int, ...], threshold: float,
                   min_gap: float) -> list[int]:
    """The points that steer the warp: scored >= ``threshold`` in both keypoint sets (133, 3), in the
    order of ``points``, each more than 0 and at least ``min_gap`` pixels (in the reference) from every
    earlier kept one (COCO-WholeBody's hand roots repeat the body's wrists, for one)."""
    candidates = [p for p in points if reference[p, 2] >= threshold and generated[p, 2] >= threshold]
    xy = reference[candidates, :2].astype(np.float64)
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    kept: list[int] = []
    for k in range(len(candidates)):
        if all(gaps[k, j] >= min_gap and gaps[k, j] > 0 for j in kept):
            kept.append(k)
    return [candidates[k] for k in kept]


def warp_to_keypoints(image: np.ndarray, reference: np.ndarray, generated: np.ndarray, chosen: list[int],
                      options: S2GOptions) -> np.ndarray:
    """``image`` (H, W, 3) uint8 warped from its keypoints ``reference`` to ``generated`` (both (133, 3))
    by the ``chosen`` points (``control_points``) and the border anchors."""
    source, target = reference[chosen, :2].astype(np.float64), generated[chosen, :2].astype(np.float64)
    if options.border_anchors:
        anchors = border_points(*image.shape[:2])
        source, target = np.concatenate([source, anchors]), np.concatenate([target, anchors])
    if len(source) < 3:
        return image.copy()   # nothing to steer by: the reference unchanged
    return tps_warp(image, source, target, options.regularization)


def warp_video(image: np.ndarray, reference: np.ndarray, keypoints: np.ndarray, points: tuple[int, ...],
               threshold: float, options: S2GOptions) -> np.ndarray:
    """(F, H, W, 3) uint8: ``image`` warped to each frame of ``keypoints`` (F, 133, 3)."""
    chosen_by_scores: dict[bytes, list[int]] = {}   # frames with the same confident points share a choice
    frames = []
    for generated in keypoints:
        key = (generated[:, 2] >= threshold).tobytes()
        if key not in chosen_by_scores:
            chosen_by_scores[key] = control_points(reference, generated, points, threshold, options.min_point_gap)
        frames.append(warp_to_keypoints(image, reference, generated, chosen_by_scores[key], options))
    return np.stack(frames)


class S2GMethod(Method):
    name = "s2g"
    label = "S2G (reimplementation)"
    kind = "model"

    def __init__(self) -> None:
        self.model: KeypointMotion | None = None
        self.options = S2GOptions()
        self.pose_extractor = None
        self.last_seconds: float | None = None

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        self.options, motion_options = S2GOptions.split(context.options, self.name)
        self.pose_extractor = context.pose_extractor
        self.model = KeypointMotion.train_or_load_shared(context, motion_options)
        facts = self.model.facts
        return {"model": str(self.model.folder), "trained": facts.get("trained"), "steps": facts.get("steps"),
                "training_seconds": facts.get("seconds"), "parameters": self.model.parameter_count,
                "points": len(self.model.points), "regularization": self.options.regularization}

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        started = time.perf_counter()
        image = clip.first_frame()
        reference = reference_keypoints(clip, self.pose_extractor)
        keypoints = self.model.sample(clip.load_audio(), clip.num_frames, clip.fps, reference, seed)
        keypoints = retarget(keypoints, reference, self.model.options.score_threshold)
        frames = warp_video(image, reference, keypoints, self.model.points, self.model.options.score_threshold,
                            self.options)
        self.last_seconds = time.perf_counter() - started
        return frames
