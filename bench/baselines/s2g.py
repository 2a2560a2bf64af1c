"""S2G (reimplementation): keypoints sampled from speech, then the reference image warped to them.

This module holds the warp (its settings, control points, border anchors) and the loading of the
``s2g`` options section; the method itself (``bench.methods.s2g``) chains the keypoint model,
``keypoint_geometry.retarget`` and ``warp_video``.

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
  (``keypoint_geometry.retarget``: the reference's bone lengths, the generated bone directions);
  without that, the warp would stretch each speaker to the average proportions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from bench.baselines.keypoint_motion import KeypointMotionOptions
from bench.baselines.tps import tps_warp
from metrics.options import build_options


@dataclass
class S2GOptions:
    """The warp's settings; every other key of the ``s2g`` section goes to ``KeypointMotionOptions``."""

    regularization: float = 1.0       # TPS lambda (pixel units): smooths the warp around close points
    min_point_gap: float = 1.0        # pixels: a control point this close to a kept one is dropped
    border_anchors: bool = True       # fix the corners and edge midpoints of the image

    @classmethod
    def split(cls, values: dict[str, Any] | None, where: str = "s2g") -> tuple[S2GOptions, KeypointMotionOptions]:
        """This method's options and the keypoint model's from one config section (``metrics.options``):
        a key of neither, a value of the wrong type or out of range is an error naming ``where`` and the key."""
        section = build_options(S2GSection, values, where)
        options = cls(**{f.name: getattr(section, f.name) for f in fields(cls)})
        options.check(where)
        motion = KeypointMotionOptions(**{f.name: getattr(section, f.name) for f in fields(KeypointMotionOptions)})
        motion.check(where)
        return options, motion

    def check(self, where: str = "s2g") -> None:
        if self.regularization < 0 or self.min_point_gap < 0:
            raise ValueError(f"{where}: regularization and min_point_gap must be >= 0")


@dataclass
class S2GSection(S2GOptions, KeypointMotionOptions):
    """Every key of the ``s2g`` section: the warp's (``S2GOptions``) and the keypoint model's."""


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
    frames = np.empty((len(keypoints), *image.shape), np.uint8)     # filled in place: no list + stack copy
    for index, generated in enumerate(keypoints):
        key = (generated[:, 2] >= threshold).tobytes()
        if key not in chosen_by_scores:
            chosen_by_scores[key] = control_points(reference, generated, points, threshold, options.min_point_gap)
        frames[index] = warp_to_keypoints(image, reference, generated, chosen_by_scores[key], options)
    return frames
