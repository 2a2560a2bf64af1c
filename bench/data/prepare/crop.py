"""The square crop of a clip: one fixed box for the whole video, then a resize to the target resolution.

The paper's pipeline renders the fitted body mesh into a binary mask per frame, takes the largest
person box over the video, keeps its width, pads its height to a square, and crops every frame of
the video with that same box before resizing (e.g. to 512 x 512). Here the person box can come from

- per-frame masks (:func:`person_box_from_masks`, the paper's way),
- whole-body keypoints (:func:`person_box_from_keypoints`, COCO-WholeBody from DWPose), or
- face boxes (:func:`person_box_from_faces`, a fallback for talking-head clips when neither of the
  above is available),

and :func:`square_crop_box` turns it into the square, integer-pixel crop box that
:func:`crop_frame` and :func:`crop_keypoints` apply to frames and keypoints.

Conventions: coordinates are pixels of the source frame, ``x`` to the right and ``y`` down; a box's
``x1``/``y1`` are exclusive edges, so a mask pixel at column ``c`` spans ``[c, c + 1)``. A crop box
of side ``side`` maps to a ``size`` x ``size`` image; keypoints, whose integer coordinates are
pixel centres, by ``x' = (x - x0 + 0.5) * size / side - 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np



@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: ``x0``/``y0`` the top-left edges, ``x1``/``y1`` the exclusive far edges."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"box edges must be finite numbers, got {values}")
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"box needs x0 <= x1 and y0 <= y1, got {values}")

    @property
    def width(self) -> float:
        """The horizontal extent ``x1 - x0``."""
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        """The vertical extent ``y1 - y0``."""
        return self.y1 - self.y0

    @property
    def centre(self) -> tuple[float, float]:
        """The centre point ``(cx, cy)``."""
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    def to_list(self) -> list[float]:
        """The edges as ``[x0, y0, x1, y1]`` plain floats (for JSON manifests)."""
        return [float(self.x0), float(self.y0), float(self.x1), float(self.y1)]


# ----------------------------------------------------------------------------------------------
# validation helpers


def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """The keypoints as a float array of shape ``(F, K, 3)`` (x, y, score), or a ValueError."""
    array = np.asarray(keypoints)
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[1] == 0:
        raise ValueError(f"keypoints must have shape (frames, points, 3) as (x, y, score), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"keypoints must be numeric, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _check_size(size: int) -> int:
    """The output resolution as a positive int, or a ValueError."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _check_frame_size(frame_width: int, frame_height: int) -> tuple[int, int]:
    """The frame dimensions as positive ints, or a ValueError."""
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError(f"frame size must be positive, got {frame_width} x {frame_height}")
    return int(frame_width), int(frame_height)


def _square_side(box: Box) -> float:
    """The side of a square box, or a ValueError when the box is not a non-empty square."""
    if box.width <= 0 or not math.isclose(box.width, box.height, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(f"the crop box must be a non-empty square, got {box.width} x {box.height} ({box.to_list()})")
    return box.width


def _round_half_up(value: float) -> int:
    """``value`` rounded to the nearest int, halves upwards (no banker's rounding)."""
    return int(math.floor(value + 0.5))


# ----------------------------------------------------------------------------------------------
# the person box


def person_box_from_keypoints(keypoints: np.ndarray, score_threshold: float = 0.3,
                              points: Sequence[int] | None = None) -> Box | None:
    """The box around every confident keypoint of every frame, or None when no point is confident.

    ``keypoints`` is ``(F, K, 3)``: x, y in pixels and a score per point (COCO-WholeBody from DWPose
    has K = 133; its scores are not probabilities and may exceed 1, so only ``score >= threshold``
    is used, never an upper bound). ``points`` restricts the box to those point indices (e.g. the
    body and hands without the feet); by default all points count. Points with non-finite
    coordinates are ignored. Keypoints are positions, not pixels, so the box edges are the
    extreme coordinates themselves (no ``+ 1``).
    """
    array = _check_keypoints(keypoints)
    if points is not None:
        index = np.asarray(list(points), dtype=np.int64)
        if index.size == 0:
            raise ValueError("points must name at least one keypoint index")
        if index.min() < -array.shape[1] or index.max() >= array.shape[1]:
            raise ValueError(f"points must be indices below {array.shape[1]}, got {index.tolist()}")
        array = array[:, index]
    xy = array[..., :2].reshape(-1, 2)
    score = array[..., 2].reshape(-1)
    keep = (score >= score_threshold) & np.isfinite(xy).all(axis=1)
    if not keep.any():
        return None
    chosen = xy[keep]
    x0, y0 = chosen.min(axis=0)
    x1, y1 = chosen.max(axis=0)
    return Box(float(x0), float(y0), float(x1), float(y1))


def _mask_extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of the nonzero pixels of one 2-D mask (exclusive far edges), or None if empty."""
    nonzero = mask != 0
    cols = np.flatnonzero(nonzero.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(nonzero.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def person_box_from_masks(masks: Iterable[np.ndarray]) -> Box | None:
    """The box around the nonzero pixels of all masks together, or None when every mask is empty.

    ``masks`` yields one ``(H, W)`` bool or integer mask per frame (e.g. the rendered body mesh);
    they are read one at a time, so a generator over a long video never holds more than one frame.
    Edges: ``x0`` is the leftmost nonzero column, ``x1`` the rightmost plus one (likewise rows).
    All masks must have the same shape.
    """
    extent: list[int] | None = None
    shape: tuple[int, ...] | None = None
    for number, mask in enumerate(masks):
        array = np.asarray(mask)
        if array.ndim != 2:
            raise ValueError(f"mask {number} must be 2-D (H, W), got shape {array.shape}")
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise ValueError(f"mask {number} has shape {array.shape}, the earlier masks {shape}")
        found = _mask_extent(array)
        if found is None:
            continue
        if extent is None:
            extent = list(found)
        else:
            extent = [min(extent[0], found[0]), min(extent[1], found[1]),
                      max(extent[2], found[2]), max(extent[3], found[3])]
    if extent is None:
        return None
    return Box(*(float(v) for v in extent))


def person_box_from_faces(face_boxes: Sequence[Box], frame_width: int, frame_height: int,
                          width_factor: float = 3.0, top_factor: float = 0.6) -> Box | None:
    """A guessed person box from face boxes alone: the FALLBACK when there are neither keypoints nor masks.

    Meant for talking-head clips, where the speaker's body continues below the face down to the
    frame's bottom edge. The box is

    - horizontally: centred on the union of the faces, ``width_factor`` x the largest face width
      wide, but no wider than the frame is tall (a guess should never make the square crop reach
      outside the frame), and never narrower than the union of the faces itself;
    - vertically: from the top of the faces minus ``top_factor`` x the largest face height (the
      hair) down to the bottom of the frame;

    clipped to the frame. ``face_boxes`` may be anything with ``x0, y0, x1, y1`` (e.g. detected
    faces). None when there are no faces or the clipped box is empty.
    """
    frame_width, frame_height = _check_frame_size(frame_width, frame_height)
    if width_factor <= 0 or top_factor < 0:
        raise ValueError(f"need width_factor > 0 and top_factor >= 0, got {width_factor}, {top_factor}")
    faces = list(face_boxes)
    if not faces:
        return None
    ux0 = min(f.x0 for f in faces)
    uy0 = min(f.y0 for f in faces)
    ux1 = max(f.x1 for f in faces)
    face_width = max(f.x1 - f.x0 for f in faces)
    face_height = max(f.y1 - f.y0 for f in faces)
    width = max(min(width_factor * face_width, float(frame_height)), ux1 - ux0)
    cx = (ux0 + ux1) / 2.0
    x0 = max(0.0, cx - width / 2.0)
    x1 = min(float(frame_width), cx + width / 2.0)
    y0 = max(0.0, uy0 - top_factor * face_height)
    y1 = float(frame_height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(float(x0), float(y0), float(x1), float(y1))


# ----------------------------------------------------------------------------------------------
# the square crop box


def _place_along_axis(centre: float, side: int, frame_extent: int) -> int:
    """The integer start of a ``side``-long span centred on ``centre``, moved to lie inside
    ``[0, frame_extent)`` when it fits, or to cover the whole extent when it does not (so it
    reaches outside only by what it must, on the side where the person is)."""
    start = _round_half_up(centre - side / 2.0)
    if side <= frame_extent:
        return min(max(start, 0), frame_extent - side)
    return min(max(start, frame_extent - side), 0)


def square_crop_side(person: Box, frame_width: int, frame_height: int, margin: float = 0.05) -> int:
    """The side in whole pixels of the square crop around ``person``.

    The person box grows by ``margin`` x its width on the left and on the right and by ``margin``
    x its height at the top and at the bottom; the side is the larger grown extent (the paper keeps
    the width and pads the height to a square). When that is larger than the frame's shorter side,
    the margins give way first: the side shrinks to the shorter side, but never below the person's
    own larger extent (a person wider than the frame is tall keeps their width, and the rows above
    and below the frame are padded).
    """
    frame_width, frame_height = _check_frame_size(frame_width, frame_height)
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    grown = _round_half_up(max(person.width, person.height) * (1.0 + 2.0 * margin))
    shorter = min(frame_width, frame_height)
    side = grown if grown <= shorter else max(shorter, math.ceil(max(person.width, person.height) - 1e-9))
    if side < 1:
        raise ValueError(f"the person box {person.to_list()} is too small for a crop (side {side})")
    return int(side)


def square_crop_box(person: Box, frame_width: int, frame_height: int, margin: float = 0.05) -> Box:
    """The square crop box for a clip: the person box plus margins, made square, on a whole-pixel grid.

    The side is :func:`square_crop_side`. The square is centred on the person, then moved (never
    shrunk) to lie inside the frame along each axis where it fits; along an axis where it is longer
    than the frame (only when the person is), it covers the whole frame and reaches outside only by
    the difference, which :func:`crop_frame` pads. All four edges are whole numbers, so every frame
    of the clip is cut on exactly the same pixel grid. A 176 x 144 talking head whose face fallback
    box spans the frame's height gets a 144-pixel square inside the frame, not a padded 191-pixel one.
    """
    frame_width, frame_height = _check_frame_size(frame_width, frame_height)
    side = square_crop_side(person, frame_width, frame_height, margin)
    cx, cy = person.centre
    x0 = _place_along_axis(cx, side, frame_width)
    y0 = _place_along_axis(cy, side, frame_height)
    return Box(float(x0), float(y0), float(x0 + side), float(y0 + side))


def padding(box: Box, frame_width: int, frame_height: int) -> tuple[int, int, int, int]:
    """Pixels of ``box`` outside the frame on the left, top, right and bottom (0 where inside)."""
    return (int(max(0.0, -box.x0)), int(max(0.0, -box.y0)), int(max(0.0, box.x1 - frame_width)),
            int(max(0.0, box.y1 - frame_height)))


def upscale_factor(box: Box, size: int) -> float:
    """How much a crop of ``box`` is enlarged to ``size`` x ``size``: ``size / side`` (> 1: upscaled)."""
    return _check_size(size) / _square_side(box)


# ----------------------------------------------------------------------------------------------
# applying the crop


def _integer_edges(box: Box) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of a square box with whole-pixel edges, or a ValueError."""
    side = _square_side(box)
    values = (box.x0, box.y0, box.x1, box.y1)
    if not all(float(v).is_integer() for v in values):
        raise ValueError(f"the crop box needs whole-pixel edges (see square_crop_box), got {box.to_list()}")
    return int(box.x0), int(box.y0), int(side)


def _cut_box(frame: np.ndarray, box: Box, pad_value: int = 0) -> np.ndarray:
    """The ``side`` x ``side`` pixels of ``frame`` under a square whole-pixel box, ``pad_value`` outside the frame."""
    x0, y0, side = _integer_edges(box)
    height, width = frame.shape[:2]
    out = np.full((side, side) + frame.shape[2:], pad_value, dtype=frame.dtype)
    src_x0, src_x1 = max(x0, 0), min(x0 + side, width)
    src_y0, src_y1 = max(y0, 0), min(y0 + side, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        out[src_y0 - y0:src_y1 - y0, src_x0 - x0:src_x1 - x0] = frame[src_y0:src_y1, src_x0:src_x1]
    return out


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 image resized to ``size`` x ``size``: INTER_AREA to shrink, INTER_CUBIC (clipped) to enlarge."""
    side = image.shape[0]
    if size == side:
        return image
    if size < side:
        resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    else:
        enlarged = cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        resized = np.clip(np.rint(enlarged), 0, 255).astype(np.uint8)
    return resized.reshape((size, size) + image.shape[2:])


def crop_frame(frame: np.ndarray, box: Box, size: int, pad_value: int = 0) -> np.ndarray:
    """One frame cut to the square crop box and resized to ``size`` x ``size``: a ``(size, size, C)`` uint8 image.

    ``frame`` is ``(H, W, C)`` uint8 (RGB or BGR, kept as is); ``box`` a square with whole-pixel
    edges (from :func:`square_crop_box`). The cut is exact, parts of the box outside the frame are
    filled with ``pad_value``; then it is shrunk with ``cv2.INTER_AREA`` or enlarged with
    ``cv2.INTER_CUBIC`` (clipped back to 0..255). With ``size`` equal to the box side the result is
    the cut itself.
    """
    size = _check_size(size)
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] == 0:
        raise ValueError(f"frame must have shape (H, W, C), got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got dtype {array.dtype}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
    return _resize_square(_cut_box(array, box, int(pad_value)), size)


def crop_keypoints(keypoints: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Keypoints moved into the ``size`` x ``size`` crop, as float32 ``(F, K, 3)``.

    Integer coordinates are pixel centres (the dataset format's convention), so the mapping is
    ``x' = (x - x0 + 0.5) * size / side - 0.5`` (and the same for y): the box's outer edge
    ``x0 - 0.5`` maps to the crop's outer edge ``-0.5``, and a point keeps its place in the picture
    whatever the resize. With ``size == side`` it is ``x - x0``.

    Every point is transformed, whatever its score (a score-0 point stays consistent); scores are
    kept unchanged. Points outside the box land outside the crop.
    """
    size = _check_size(size)
    array = _check_keypoints(keypoints)
    side = _square_side(box)
    scale = size / side
    out = array.copy()
    out[..., 0] = (array[..., 0] - box.x0 + 0.5) * scale - 0.5
    out[..., 1] = (array[..., 1] - box.y0 + 0.5) * scale - 0.5
    return out.astype(np.float32)
