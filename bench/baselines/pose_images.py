"""COCO-WholeBody keypoints drawn as pose images, the way DWPose / OpenPose render them.

Pose-guided generators (ControlNet's OpenPose model, Make-Your-Anchor, AnimateAnyone) are
conditioned on an image of the skeleton rather than on coordinates. This module draws such images
from keypoints (F, 133, 3) (x, y in pixels of the video frame, score; see
``metrics.pose.wholebody``): on a black canvas,

- the body: 17 OpenPose limbs (a virtual neck, the midpoint of the shoulders, joins the head,
  arms and hips), each in its own fully saturated hue, then its joints as discs;
- the feet: ankle to toes and heel, in the colour of the leg;
- each hand: its 20 bones (wrist -> base -> ... -> tip of every finger) in a rainbow of hues,
  then its 21 joints as blue dots;
- the face: its 68 landmarks as white dots.

Points whose score is under ``score_threshold`` are not drawn, nor any limb or bone that ends at
one. Later strokes cover earlier ones (body, then hands, then face). There is no antialiasing:
a pixel is painted when its centre lies within half a stroke width of the segment (or within the
radius of the dot), so the same keypoints always give the same image. Pixel centres are at
integer coordinates, as the keypoint files and the toy pose extractor count them.

Stroke sizes are fractions of the image's shorter side (OpenPose's 4-pixel limbs on 512-pixel
images would vanish on the toy corpus' 64-pixel frames): ``PoseStyle``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from metrics.pose import wholebody as wb

NECK = wb.NUM_KEYPOINTS   # index of the virtual neck appended after the 133 points

# OpenPose's body limbs on the COCO-WholeBody indices (+ the virtual neck).
BODY_LIMBS: tuple[tuple[int, int], ...] = (
    (NECK, 6), (NECK, 5), (6, 8), (8, 10), (5, 7), (7, 9),        # shoulders and arms
    (NECK, 12), (12, 14), (14, 16), (NECK, 11), (11, 13), (13, 15),  # hips and legs
    (NECK, 0), (0, 2), (2, 4), (0, 1), (1, 3),                     # head
)
BODY_JOINTS: tuple[int, ...] = (*range(0, 17), NECK)
# Feet: ankle -> big toe, small toe, heel (each side).
FOOT_LIMBS: tuple[tuple[int, int], ...] = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
# The bones of one hand, in hand-local indices (0 the wrist, 1 + 4f .. 4 + 4f the finger f).
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    pair for finger in range(5)
    for pair in ((0, 1 + 4 * finger), (1 + 4 * finger, 2 + 4 * finger),
                 (2 + 4 * finger, 3 + 4 * finger), (3 + 4 * finger, 4 + 4 * finger)))

HAND_JOINT_COLOUR = (0, 0, 255)
FACE_COLOUR = (255, 255, 255)
DEFAULT_SCORE_THRESHOLD = 0.3


@dataclass(frozen=True)
class PoseStyle:
    """Stroke sizes as fractions of the image's shorter side (64 px: 2-px limbs, 1-px hand bones)."""

    limb_width: float = 1.0 / 32.0
    joint_radius: float = 1.0 / 40.0
    hand_width: float = 1.0 / 64.0
    hand_joint_radius: float = 1.0 / 128.0
    face_radius: float = 1.0 / 128.0


def hue_colour(fraction: float) -> tuple[int, int, int]:
    """The fully saturated, full-value 8-bit RGB colour at ``fraction`` of the hue circle."""
    r, g, b = colorsys.hsv_to_rgb(fraction % 1.0, 1.0, 1.0)
    return int(round(255 * r)), int(round(255 * g)), int(round(255 * b))


BODY_LIMB_COLOURS = tuple(hue_colour(k / len(BODY_LIMBS)) for k in range(len(BODY_LIMBS)))
BODY_JOINT_COLOURS = tuple(hue_colour(k / len(BODY_JOINTS)) for k in range(len(BODY_JOINTS)))
FOOT_LIMB_COLOURS = (BODY_LIMB_COLOURS[11],) * 3 + (BODY_LIMB_COLOURS[8],) * 3   # left leg, right leg
HAND_BONE_COLOURS = tuple(hue_colour(k / len(HAND_BONES)) for k in range(len(HAND_BONES)))


def with_neck(keypoints: np.ndarray) -> np.ndarray:
    """(133, 3) -> (134, 3): the virtual neck (midpoint of the shoulders, score the lower of theirs)."""
    left, right = keypoints[5], keypoints[6]
    neck = np.array([(left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2])],
                    dtype=keypoints.dtype)
    return np.concatenate([keypoints, neck[None]], axis=0)


def keypoints_to_square(keypoints: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Keypoints of a ``height`` x ``width`` frame in the pixels of its centre square resized to ``size``.

    The same geometry as ``imac.frames.frames_to_tensor`` (centre crop, then a resize with
    pixel centres aligned); scores are kept. Works on any (..., 3) array.
    """
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    scale = size / side
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - left + 0.5) * scale - 0.5
    out[..., 1] = (out[..., 1] - top + 0.5) * scale - 0.5
    return out


def segment_distance(xs: np.ndarray, ys: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance from the points (xs, ys) (broadcastable arrays) to the segment start -> end ((x, y) pairs).

    A segment whose ends coincide is a point.
    """
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    px, py = xs - float(start[0]), ys - float(start[1])
    length2 = dx * dx + dy * dy
    t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0) if length2 > 1e-12 else 0.0
    return np.hypot(px - t * dx, py - t * dy)


def draw_segments(canvas: np.ndarray, starts: np.ndarray, ends: np.ndarray, colours: np.ndarray,
                  widths: float | np.ndarray) -> np.ndarray:
    """Paint segments (S, 2) -> (S, 2) on ``canvas`` (H, W, 3) uint8 in place, in order (later on top).

    ``widths``: one stroke width in pixels, or one per segment. A pixel is painted when its centre
    is within width / 2 of the segment, the half-width being at least 0.5 (so a segment always
    paints the pixels its centre line passes through).
    """
    height, width_px = canvas.shape[:2]
    halves = np.maximum(np.broadcast_to(np.asarray(widths, np.float32), (len(starts),)) / 2.0, 0.5)
    for (ax, ay), (bx, by), colour, half in zip(np.asarray(starts, np.float64).tolist(),
                                                np.asarray(ends, np.float64).tolist(),
                                                np.asarray(colours, np.uint8), halves.tolist()):
        # Only the stroke's bounding box can be painted.
        x0, x1 = max(math.ceil(min(ax, bx) - half), 0), min(math.floor(max(ax, bx) + half), width_px - 1)
        y0, y1 = max(math.ceil(min(ay, by) - half), 0), min(math.floor(max(ay, by) + half), height - 1)
        if x0 > x1 or y0 > y1:
            continue
        xs = np.arange(x0, x1 + 1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1 + 1, dtype=np.float32)[:, None]
        inside = segment_distance(xs, ys, (ax, ay), (bx, by)) <= half
        canvas[y0:y1 + 1, x0:x1 + 1][inside] = colour
    return canvas


def _confident(points: np.ndarray, threshold: float) -> np.ndarray:
    return np.isfinite(points[:, :2]).all(axis=1) & (points[:, 2] >= threshold)


def pose_strokes(keypoints: np.ndarray, side: float, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 style: PoseStyle = PoseStyle()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The strokes of one pose in drawing order: starts (S, 2), ends (S, 2), colours (S, 3), widths (S,).

    Dots are segments whose ends coincide (width = their diameter). Only strokes whose points all
    have a score of at least ``score_threshold`` are kept.
    """
    points = with_neck(np.asarray(keypoints, dtype=np.float32))
    ok = _confident(points, score_threshold)
    strokes: list[tuple[int, int, tuple[int, int, int], float]] = []   # (from, to, colour, width)

    def lines(pairs, colours, width, offset=0):
        strokes.extend((a + offset, b + offset, c, width) for (a, b), c in zip(pairs, colours))

    def dots(indices, colours, radius):
        strokes.extend((i, i, c, 2 * radius) for i, c in zip(indices, colours))

    lines(BODY_LIMBS + FOOT_LIMBS, BODY_LIMB_COLOURS + FOOT_LIMB_COLOURS, style.limb_width * side)
    dots(BODY_JOINTS, BODY_JOINT_COLOURS, style.joint_radius * side)
    for hand in (wb.LEFT_HAND, wb.RIGHT_HAND):
        lines(HAND_BONES, HAND_BONE_COLOURS, style.hand_width * side, offset=hand.start)
        dots(hand, (HAND_JOINT_COLOUR,) * len(hand), style.hand_joint_radius * side)
    dots(wb.FACE, (FACE_COLOUR,) * len(wb.FACE), style.face_radius * side)

    kept = [(a, b, c, w) for a, b, c, w in strokes if ok[a] and ok[b]]
    starts = np.array([points[a, :2] for a, _, _, _ in kept], np.float32).reshape(-1, 2)
    ends = np.array([points[b, :2] for _, b, _, _ in kept], np.float32).reshape(-1, 2)
    colours = np.array([c for _, _, c, _ in kept], np.uint8).reshape(-1, 3)
    widths = np.array([w for _, _, _, w in kept], np.float32)
    return starts, ends, colours, widths


def render_pose(keypoints: np.ndarray, height: int, width: int,
                score_threshold: float = DEFAULT_SCORE_THRESHOLD, style: PoseStyle = PoseStyle()) -> np.ndarray:
    """One pose image (height, width, 3) uint8 of COCO-WholeBody keypoints (133, 3) in its pixels."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape != (wb.NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be ({wb.NUM_KEYPOINTS}, 3), got {keypoints.shape}")
    canvas = np.zeros((height, width, 3), np.uint8)
    return draw_segments(canvas, *pose_strokes(keypoints, float(min(height, width)), score_threshold, style))


def render_pose_images(keypoints: np.ndarray, height: int, width: int,
                       score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                       style: PoseStyle = PoseStyle()) -> np.ndarray:
    """Pose images (F, height, width, 3) uint8 of keypoints (F, 133, 3) given in the images' pixels."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (wb.NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be (frames, {wb.NUM_KEYPOINTS}, 3), got {keypoints.shape}")
    out = np.zeros((len(keypoints), height, width, 3), np.uint8)
    for f, frame in enumerate(keypoints):
        out[f] = render_pose(frame, height, width, score_threshold, style)
    return out
