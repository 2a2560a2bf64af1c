"""The COCO-WholeBody 133-keypoint layout that DWPose outputs and every keypoint file of the project uses.

Keypoints are stored as (frames, 133, 3): x, y in pixels (origin at the top-left corner, x right,
y down) and a score in [0, 1]. A score of 0 means "not present" (the point is not detected, or the
source of the keypoints has no such point).
"""

from __future__ import annotations

import functools

NUM_KEYPOINTS = 133

BODY_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
FOOT_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
# COCO-WholeBody hands: wrist, then 4 points per finger from the base to the tip.
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND_POINT_NAMES = ("wrist",) + tuple(f"{finger}{i}" for finger in FINGERS for i in range(1, 5))

BODY = range(0, 17)
FEET = range(17, 23)
FACE = range(23, 91)  # the 68 iBUG face landmarks
LEFT_HAND = range(91, 112)
RIGHT_HAND = range(112, 133)

# Indices inside the 68 face landmarks (iBUG order), offset by FACE.start in the 133 layout.
FACE_MOUTH_LEFT_CORNER = FACE.start + 54   # subject's left = image right for a frontal face
FACE_MOUTH_RIGHT_CORNER = FACE.start + 48
FACE_UPPER_LIP_TOP = FACE.start + 51
FACE_LOWER_LIP_BOTTOM = FACE.start + 57


@functools.lru_cache(maxsize=1)
def keypoint_names() -> tuple[str, ...]:
    """Names of the 133 points in file order."""
    face = tuple(f"face_{i}" for i in range(68))
    left = tuple(f"left_hand_{n}" for n in HAND_POINT_NAMES)
    right = tuple(f"right_hand_{n}" for n in HAND_POINT_NAMES)
    names = BODY_NAMES + FOOT_NAMES + face + left + right
    assert len(names) == NUM_KEYPOINTS
    return names


def index_of(name: str) -> int:
    """Index of a named point in the 133 layout, e.g. ``index_of("left_wrist") == 9``."""
    try:
        return keypoint_names().index(name)
    except ValueError:
        raise KeyError(f"unknown COCO-WholeBody keypoint {name!r}") from None


def hand_index(side: str, finger: str | None, joint: int = 0) -> int:
    """Index of a hand point: ``hand_index("left", None)`` is the wrist, ``hand_index("right", "index", 4)`` a tip."""
    start = {"left": LEFT_HAND.start, "right": RIGHT_HAND.start}[side]
    if finger is None:
        return start
    if not 1 <= joint <= 4:
        raise ValueError(f"finger joint must be 1..4 (base to tip), got {joint}")
    return start + 1 + FINGERS.index(finger) * 4 + (joint - 1)
