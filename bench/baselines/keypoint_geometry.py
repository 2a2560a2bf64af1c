"""COCO-WholeBody keypoints as the keypoint motion model sees them: which points, normalised how,
placed on a reference frame and retargeted to its body.

- ``KEYPOINT_POINTS`` are the candidate points: the upper body (nose, eyes, ears, shoulders,
  elbows, wrists, hips), the 68 face landmarks and both hands. ``HEAD_POINTS`` (nose, eyes, ears,
  face landmarks) go to the model's expression stream, ``BODY_POINTS`` (body and hands) to its pose
  stream. ``modelled_points`` keeps those that training keypoints provide (score >=
  ``threshold`` in at least ``MIN_VISIBLE_SHARE`` of the frames). Feet and legs are never modelled
  (co-speech videos are upper-body shots).
- Coordinates are normalised per clip as the metrics do (``metrics.skeleton``): centred on the
  clip's median neck (midpoint of the shoulders), in units of its median shoulder width; gaps in a
  clip are interpolated in time (``fill_missing``) (``normalised_clip``).
- Sampled motion is placed on the reference frame: neck on the reference's neck, scaled by the
  reference's shoulder width (``reference_placement``); ``retarget`` further gives it the
  reference's bone lengths (``SKELETON_BONES``).
"""

from __future__ import annotations

import numpy as np

from metrics.pose import wholebody as wb
from metrics.skeleton import SkeletonError, fill_missing, normalise

MIN_VISIBLE_SHARE = 0.05

HEAD_POINTS: tuple[int, ...] = (*range(0, 5), *wb.FACE)               # nose, eyes, ears, 68 landmarks
BODY_POINTS: tuple[int, ...] = (*range(5, 13), *wb.LEFT_HAND, *wb.RIGHT_HAND)  # shoulders..hips, hands
KEYPOINT_POINTS: tuple[int, ...] = tuple(sorted(HEAD_POINTS + BODY_POINTS))


def normalised_clip(keypoints: np.ndarray, points: tuple[int, ...], threshold: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(F, P, 2) positions of ``points`` in shoulder widths around the clip's median neck, and which
    of the points the clip ever shows (P,). Raises ``SkeletonError`` when a shoulder never shows."""
    xy, shoulders = fill_missing(keypoints, threshold, points)
    shown = (keypoints[:, list(points), 2] >= threshold).any(axis=0)
    return normalise(xy, shoulders).astype(np.float32), shown


def reference_placement(keypoints: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
    """The neck (2,) and shoulder width of one frame's keypoints (133, 3): where sampled motion goes."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (wb.NUM_KEYPOINTS, 3) or not np.isfinite(keypoints).all():
        raise ValueError(f"reference keypoints must be finite (133, 3), got shape {keypoints.shape}")
    try:
        _, shoulders = fill_missing(keypoints[None], threshold, [])
    except SkeletonError:
        raise ValueError(f"the reference frame shows no shoulders (score >= {threshold}): "
                         "cannot place the motion on it") from None
    width = float(np.linalg.norm(shoulders[0, 0] - shoulders[0, 1]))
    if width <= 1e-6:
        raise ValueError("the reference frame's shoulders coincide: cannot scale the motion to it")
    return shoulders[0].mean(axis=0), width


NECK = -1   # the shoulders' midpoint, as a parent in ``SKELETON_BONES``


def _skeleton_bones() -> tuple[tuple[int, int], ...]:
    """(child, parent) pairs from the neck outwards, parents first: shoulders, nose, arms, fingers."""
    bones = [(wb.index_of(f"{side}_shoulder"), NECK) for side in ("left", "right")]
    bones.append((wb.index_of("nose"), NECK))
    for side in ("left", "right"):
        shoulder, elbow, wrist = (wb.index_of(f"{side}_{part}") for part in ("shoulder", "elbow", "wrist"))
        root = wb.hand_index(side, None)
        bones += [(elbow, shoulder), (wrist, elbow), (root, wrist)]
        for finger in wb.FINGERS:
            chain = [root] + [wb.hand_index(side, finger, joint) for joint in range(1, 5)]
            bones += list(zip(chain[1:], chain[:-1]))
    return tuple(bones)


SKELETON_BONES = _skeleton_bones()


def retarget(keypoints: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """``keypoints`` (F, 133, 3) moved onto the reference frame's body (133, 3): bone lengths of the
    reference, bone directions of ``keypoints``.

    A motion model trained on several speakers generates an average body; warping a speaker's image
    to it would also stretch their limbs and torso. Starting from the generated neck, every bone of
    ``SKELETON_BONES`` keeps its generated direction and takes its reference length; the hips follow
    the shoulders rigidly (the rotation and scale that takes the reference shoulders to the new
    ones), and the head's other points (eyes, ears, face) keep their generated offsets from the new
    nose. A point missing (score < ``threshold``) in the reference keeps its generated offset from
    its parent (the neck, for a hip); scores are those of ``keypoints``.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float64)
    shoulders = [wb.index_of("left_shoulder"), wb.index_of("right_shoulder")]
    out = keypoints.copy()

    def position(array: np.ndarray, point: int) -> np.ndarray:
        return array[..., shoulders, :2].mean(axis=-2) if point == NECK else array[..., point, :2]

    def shown(array: np.ndarray, point: int) -> np.ndarray:
        return (array[..., shoulders, 2] >= threshold).all(-1) if point == NECK else array[..., point, 2] >= threshold

    new_positions = {NECK: position(keypoints, NECK)}
    for child, parent in SKELETON_BONES:
        generated = position(keypoints, child) - position(keypoints, parent)          # (F, 2)
        if shown(reference, child) and shown(reference, parent):
            length = np.linalg.norm(position(reference, child) - position(reference, parent))
            norms = np.linalg.norm(generated, axis=-1, keepdims=True)
            fallback = position(reference, child) - position(reference, parent)
            direction = np.where(norms > 1e-6, generated / np.maximum(norms, 1e-6),
                                 fallback / max(length, 1e-6))
            generated = direction * length
        present = (keypoints[:, child, 2] > 0)[:, None]
        new_positions[child] = np.where(present, new_positions[parent] + generated, keypoints[:, child, :2])
        out[:, child, :2] = new_positions[child]
    left, right = shoulders
    new_neck = new_positions[NECK]
    # Shoulder lines as complex numbers: the ratio new / reference is the rotation and scale.
    new_line = new_positions[left] - new_positions[right]
    reference_line = position(reference, left) - position(reference, right)
    rigid = bool(shown(reference, NECK)) and float(np.linalg.norm(reference_line)) > 1e-6
    turn = (new_line[:, 0] + 1j * new_line[:, 1]) / complex(*reference_line) if rigid else None
    for side in ("left", "right"):
        hip = wb.index_of(f"{side}_hip")
        if rigid and shown(reference, hip):
            offset = position(reference, hip) - position(reference, NECK)
            moved = turn * complex(*offset)
            out[:, hip, :2] = new_neck + np.stack([moved.real, moved.imag], axis=-1)
        else:
            out[:, hip, :2] = keypoints[:, hip, :2] - position(keypoints, NECK) + new_neck
    nose = wb.index_of("nose")
    for point in (*range(1, 5), *wb.FACE):
        out[:, point, :2] = keypoints[:, point, :2] - keypoints[:, nose, :2] + new_positions[nose]
    out[keypoints[..., 2] <= 0] = 0.0   # absent points stay (0, 0, 0)
    return out


def modelled_points(keypoints: list[np.ndarray], threshold: float) -> tuple[int, ...]:
    """The candidate points shown in at least ``MIN_VISIBLE_SHARE`` of all frames of ``keypoints``."""
    scores = np.concatenate([k[:, list(KEYPOINT_POINTS), 2] for k in keypoints], axis=0)
    share = (scores >= threshold).mean(axis=0)
    return tuple(p for p, s in zip(KEYPOINT_POINTS, share) if s >= MIN_VISIBLE_SHARE)


__all__ = ["BODY_POINTS", "HEAD_POINTS", "KEYPOINT_POINTS", "MIN_VISIBLE_SHARE", "NECK", "SKELETON_BONES",
           "modelled_points", "normalised_clip", "reference_placement", "retarget"]
