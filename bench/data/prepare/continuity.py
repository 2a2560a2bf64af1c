"""The person's continuity between consecutive frames: a clip in which the person jumps is not one take.

The scene split finds cuts from the picture (``bench.data.prepare.jumpcuts``); what it cannot see
is a jump of the person that changes little of the picture (a short stretch removed from a talk,
the speaker small in the frame) or a tracker that swaps people (DWPose's keypoints, or a mask,
that follow someone else from one frame on). Both show as the person moving, between two
consecutive frames, by more than a person moves in 1/25 s. The crop stage checks every clip for
which it has per-frame data, before cropping it:

- keypoints (COCO-WholeBody, (F, 133, 3), given or from DWPose): the *median* displacement of the
  points confident in both frames, as a fraction of the person's size (the median over the clip's
  frames of the larger side of the box around each frame's confident points: one size per clip, so
  a frame where only a hand is confident does not make a tiny person). The median follows the head
  and trunk; a fast hand (a gesture, which may cross a tenth of the person in one frame) moves a
  few of the 133 points only;
- masks, or boxes (a face tracked on every frame): the shift of the centre as a fraction of the size,
  or a change of size by more than ``max_size_change`` times.

``max_jump`` 0.1 of the person's size per frame is 2.5 sizes per second at 25 fps: a talking
person's head and trunk move far slower (a head turn moves the face points a few hundredths per
frame), while the 40-pixel jump of a 130-pixel person that removing 3 s of a slow drift gives is
0.3. It is a guess at a safe margin, not a value measured on a corpus.

A clip with a jump is dropped and named with the frame (``dropped.csv``, stage "continuity"), not
split: its motion fit and keypoints were made on the whole candidate clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SHARED_POINTS = 5            # fewer confident points in both frames: the pair is not compared
DEFAULT_MAX_JUMP = 0.1
DEFAULT_MAX_SIZE_CHANGE = 1.5


class PersonJumpError(ValueError):
    """A clip in which the person jumps between consecutive frames (``jumps``, the first named)."""

    def __init__(self, clip: str, jumps: list[Discontinuity]) -> None:
        more = f" (and {len(jumps) - 1} more jump(s))" if len(jumps) > 1 else ""
        super().__init__(f"{clip}: {jumps[0].describe()}{more}: a cut the scene split missed or a tracker "
                         "that changed person; dropped, not split (its motion fit and keypoints cover the whole clip)")
        self.clip = clip
        self.jumps = jumps


@dataclass(frozen=True)
class Discontinuity:
    """The person jumps between frames ``frame - 1`` and ``frame`` of a clip: by ``amount`` (a
    fraction of the person's size, or a size ratio for ``what`` "size"), seen on ``what``, where at
    most ``limit`` was allowed."""

    frame: int
    amount: float
    what: str                    # "keypoints", "box" or "size"
    limit: float

    def describe(self) -> str:
        if self.what == "size":
            return (f"the person's size changes {self.amount:.2f}x between frames {self.frame - 1} and "
                    f"{self.frame} (at most {self.limit:g}x)")
        how = "median keypoint" if self.what == "keypoints" else "box centre"
        return (f"the person jumps between frames {self.frame - 1} and {self.frame} ({how} moved "
                f"{self.amount:.2f} of the person's size; at most {self.limit:g})")


def keypoint_jumps(keypoints: np.ndarray, score_threshold: float = 0.3, max_jump: float = DEFAULT_MAX_JUMP) -> list[Discontinuity]:
    """Frames where the median displacement of the keypoints confident in both consecutive frames
    exceeds ``max_jump`` times the person's size (the median over frames of the larger side of the
    box around a frame's confident points). ``keypoints`` is (F, K, 3): x, y in pixels and a
    score; frames and pairs with fewer than ``MIN_SHARED_POINTS`` confident points are not used."""
    array = np.asarray(keypoints, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"keypoints must be (F, K, 3), got {array.shape}")
    confident = (array[..., 2] >= score_threshold) & np.isfinite(array[..., :2]).all(axis=2)
    sides = [float((points.max(axis=0) - points.min(axis=0)).max())
             for points in (array[frame, confident[frame], :2] for frame in range(len(array)))
             if len(points) >= MIN_SHARED_POINTS]
    size = float(np.median(sides)) if sides else 0.0
    if size <= 0:
        return []
    jumps = []
    for frame in range(1, len(array)):
        shared = confident[frame - 1] & confident[frame]
        if shared.sum() < MIN_SHARED_POINTS:
            continue
        before, after = array[frame - 1, shared, :2], array[frame, shared, :2]
        moved = float(np.median(np.linalg.norm(after - before, axis=1))) / size
        if moved > max_jump:
            jumps.append(Discontinuity(frame, moved, "keypoints", max_jump))
    return jumps


def box_jumps(boxes: np.ndarray, max_jump: float = DEFAULT_MAX_JUMP, max_size_change: float = DEFAULT_MAX_SIZE_CHANGE) -> list[Discontinuity]:
    """Frames where the person's box (``boxes`` (F, 4): x0, y0, x1, y1; a row of NaN where there is
    none) moves its centre by more than ``max_jump`` of its size (the larger side, averaged over
    the two frames), or changes its size (square root of its area) by more than ``max_size_change``
    times, between consecutive frames."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (F, 4), got {array.shape}")
    jumps = []
    for frame in range(1, len(array)):
        before, after = array[frame - 1], array[frame]
        if not (np.isfinite(before).all() and np.isfinite(after).all()):
            continue
        sides = [max(box[2] - box[0], box[3] - box[1]) for box in (before, after)]
        areas = [(box[2] - box[0]) * (box[3] - box[1]) for box in (before, after)]
        if min(sides) <= 0 or min(areas) <= 0:
            continue
        shift = float(np.hypot((after[0] + after[2] - before[0] - before[2]) / 2,
                               (after[1] + after[3] - before[1] - before[3]) / 2)) / (sum(sides) / 2)
        change = float(np.sqrt(max(areas) / min(areas)))
        if shift > max_jump:
            jumps.append(Discontinuity(frame, shift, "box", max_jump))
        elif change > max_size_change:
            jumps.append(Discontinuity(frame, change, "size", max_size_change))
    return jumps


def mask_boxes(masks: list[np.ndarray]) -> np.ndarray:
    """The box (x0, y0, x1, y1; exclusive far edges) of each mask's nonzero pixels, NaN where a mask is empty: (F, 4)."""
    boxes = np.full((len(masks), 4), np.nan)
    for index, mask in enumerate(masks):
        nonzero = np.asarray(mask) != 0
        cols, rows = np.flatnonzero(nonzero.any(axis=0)), np.flatnonzero(nonzero.any(axis=1))
        if cols.size:
            boxes[index] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes
