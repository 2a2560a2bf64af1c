"""A small SMPL-X-like upper body: joints, rest skeleton, forward kinematics and projection.

The joint set and order follow SMPL-X's upper body (spine1-3, neck, collars, head, shoulders,
elbows, wrists) and its 15 finger joints per hand (index, middle, pinky, ring, thumb; three each).
The pelvis is the fixed root; pose parameters are the axis-angle rotations of the 43 other joints,
so a frame's pose is a 129-vector, laid out like the 39 + 90 upper-body + hand parameters that
co-speech gesture datasets use.

Axes follow SMPL: x to the subject's left, y up, z forward (towards the camera). At zero pose the
arms are stretched sideways (a T-pose) with the palms facing the camera and the fingers spread in
the frontal plane, so that a frontal camera sees them (unlike SMPL-X, whose T-pose palms face down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from metrics.pose import wholebody as wb
from metrics.pose.toy_markers import PHALANX_RATIOS

FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X order of the hand joints

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
) + tuple(
    f"{side}_{finger}{i}" for side in ("left", "right") for finger in FINGER_ORDER for i in (1, 2, 3)
)
POSED_JOINT_NAMES = JOINT_NAMES[1:]  # the pelvis is the fixed root
NUM_POSE_PARAMS = 3 * len(POSED_JOINT_NAMES)  # 129
EXPRESSION_DIM = 100

_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}


def _parent_name(name: str) -> str | None:
    if name == "pelvis":
        return None
    chain = {"spine1": "pelvis", "spine2": "spine1", "spine3": "spine2", "neck": "spine3", "head": "neck"}
    if name in chain:
        return chain[name]
    side, part = name.split("_", 1)
    arm = {"collar": "spine3", "shoulder": f"{side}_collar", "elbow": f"{side}_shoulder",
           "wrist": f"{side}_elbow"}
    if part in arm:
        return arm[part]
    finger, level = part[:-1], int(part[-1])
    return f"{side}_wrist" if level == 1 else f"{side}_{finger}{level - 1}"


PARENTS = np.array([-1 if _parent_name(n) is None else _INDEX[_parent_name(n)] for n in JOINT_NAMES])


def joint_index(name: str) -> int:
    return _INDEX[name]


@dataclass(frozen=True)
class BodyShape:
    """Proportions of one identity, as multipliers of the average body (1.0 = average)."""

    torso: float = 1.0
    shoulder_width: float = 1.0
    arm: float = 1.0
    head: float = 1.0
    hand: float = 1.4  # hands are drawn larger than life so fingers stay visible in small frames


# Finger bases relative to the left wrist at zero pose (x along the arm, y up, palm facing +z),
# and the direction the finger points in the frontal plane (degrees from +x towards +y).
_FINGER_BASES = {
    "thumb": ((0.030, 0.030, 0.010), 50.0, 0.095),
    "index": ((0.085, 0.027, 0.0), 12.0, 0.085),
    "middle": ((0.090, 0.008, 0.0), 0.0, 0.092),
    "ring": ((0.085, -0.011, 0.0), -10.0, 0.085),
    "pinky": ((0.077, -0.028, 0.0), -22.0, 0.068),
}


def rest_offsets(shape: BodyShape) -> np.ndarray:
    """Offsets (J, 3) in metres of each joint from its parent at zero pose, and of each fingertip
    from its third joint in ``fingertip_offsets``."""
    offsets = np.zeros((len(JOINT_NAMES), 3))
    t, s, a, h = shape.torso, shape.shoulder_width, shape.arm, shape.hand
    offsets[_INDEX["spine1"]] = (0.0, 0.10 * t, 0.0)
    offsets[_INDEX["spine2"]] = (0.0, 0.13 * t, 0.0)
    offsets[_INDEX["spine3"]] = (0.0, 0.06 * t, 0.0)
    offsets[_INDEX["neck"]] = (0.0, 0.20 * t, 0.0)
    offsets[_INDEX["head"]] = (0.0, 0.09 * shape.head, 0.0)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        offsets[_INDEX[f"{side}_collar"]] = (sign * 0.07 * s, 0.13 * t, 0.0)
        offsets[_INDEX[f"{side}_shoulder"]] = (sign * 0.11 * s, 0.03 * t, 0.0)
        offsets[_INDEX[f"{side}_elbow"]] = (sign * 0.27 * a, 0.0, 0.0)
        offsets[_INDEX[f"{side}_wrist"]] = (sign * 0.25 * a, 0.0, 0.0)
        for finger, (base, angle, length) in _FINGER_BASES.items():
            direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle)), 0.0])
            offsets[_INDEX[f"{side}_{finger}1"]] = np.array(base) * h * (sign, 1.0, 1.0)
            for level, ratio in zip((2, 3), PHALANX_RATIOS[:2]):
                offsets[_INDEX[f"{side}_{finger}{level}"]] = direction * length * ratio * h * (sign, 1.0, 1.0)
    return offsets


def fingertip_offsets(shape: BodyShape) -> dict[str, np.ndarray]:
    """Offset of each fingertip from its third joint at zero pose, keyed by "left_index" etc."""
    tips = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for finger, (_, angle, length) in _FINGER_BASES.items():
            direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle)), 0.0])
            tips[f"{side}_{finger}"] = direction * length * PHALANX_RATIOS[2] * shape.hand * (sign, 1.0, 1.0)
    return tips


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3)."""
    flat = axis_angle.reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(axis_angle.shape[:-1] + (3, 3))


def forward_kinematics(pose: np.ndarray, shape: BodyShape) -> dict[str, np.ndarray]:
    """World positions of the joints and fingertips for poses (F, 129).

    Returns ``{"joints": (F, J, 3), "rotations": (F, J, 3, 3), "fingertips": {name: (F, 3)}}``
    with the pelvis at the origin.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != NUM_POSE_PARAMS:
        raise ValueError(f"pose must be (frames, {NUM_POSE_PARAMS}), got {pose.shape}")
    frames = pose.shape[0]
    local = np.concatenate([np.zeros((frames, 1, 3)), pose.reshape(frames, -1, 3)], axis=1)
    local_rot = axis_angle_to_matrix(local)
    offsets = rest_offsets(shape)
    rotations = np.empty_like(local_rot)
    joints = np.zeros((frames, len(JOINT_NAMES), 3))
    rotations[:, 0] = local_rot[:, 0]
    for j in range(1, len(JOINT_NAMES)):
        p = PARENTS[j]
        joints[:, j] = joints[:, p] + rotations[:, p] @ offsets[j]
        rotations[:, j] = rotations[:, p] @ local_rot[:, j]
    tips = {
        name: joints[:, _INDEX[f"{name}3"]] + rotations[:, _INDEX[f"{name}3"]] @ offset
        for name, offset in fingertip_offsets(shape).items()
    }
    return {"joints": joints, "rotations": rotations, "fingertips": tips}


@dataclass(frozen=True)
class Camera:
    """An orthographic frontal camera: world metres -> pixels of a square frame of ``size``."""

    size: int
    pixels_per_metre: float  # at size 128; scaled with the frame
    centre_x: float = 0.0    # world x shown at the frame's centre
    centre_y: float = 0.45   # world y shown at the frame's centre

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixel coordinates (x right, y down)."""
        scale = self.pixels_per_metre * self.size / 128.0
        u = self.size / 2.0 + scale * (points[..., 0] - self.centre_x)
        v = self.size / 2.0 - scale * (points[..., 1] - self.centre_y)
        return np.stack([u, v], axis=-1)

    def metres_to_pixels(self, metres: float) -> float:
        return metres * self.pixels_per_metre * self.size / 128.0


# Face landmarks relative to the head joint (metres at head scale 1), in the head's frame.
FACE_POINTS = {
    "nose": (0.0, 0.035, 0.10),
    "left_eye": (0.033, 0.068, 0.085),
    "right_eye": (-0.033, 0.068, 0.085),
    "left_ear": (0.075, 0.045, 0.0),
    "right_ear": (-0.075, 0.045, 0.0),
    "mouth_left": (0.026, -0.005, 0.09),
    "mouth_right": (-0.026, -0.005, 0.09),
    "mouth_centre": (0.0, -0.005, 0.095),
}
HIP_OFFSETS = {"left": (0.09, -0.06, 0.0), "right": (-0.09, -0.06, 0.0)}


def face_point(kin: dict[str, np.ndarray], name: str, shape: BodyShape) -> np.ndarray:
    """World positions (F, 3) of a face landmark of ``FACE_POINTS``."""
    head = _INDEX["head"]
    offset = np.array(FACE_POINTS[name]) * shape.head
    return kin["joints"][:, head] + kin["rotations"][:, head] @ offset


def mouth_opening_metres(expression: np.ndarray, shape: BodyShape) -> np.ndarray:
    """Vertical lip gap (F,) driven by expression coefficient 0 (jaw / mouth open)."""
    return np.clip(expression[:, 0], 0.0, 1.5) * 0.028 * shape.head


def wholebody_keypoints(
    pose: np.ndarray, expression: np.ndarray, shape: BodyShape, camera: Camera, hips_visible: bool
) -> np.ndarray:
    """Ground-truth COCO-WholeBody keypoints (F, 133, 3) of the toy body in pixels.

    Points the toy body has get score 1 (0 when outside the frame, or hips hidden by a desk); the
    rest of the 133 (ears, feet, most face landmarks) get score 0.
    """
    kin = forward_kinematics(pose, shape)
    frames = pose.shape[0]
    world = np.zeros((frames, wb.NUM_KEYPOINTS, 3))
    present = np.zeros(wb.NUM_KEYPOINTS, dtype=bool)

    def put(index: int, points: np.ndarray) -> None:
        world[:, index] = points
        present[index] = True

    for name in ("nose", "left_eye", "right_eye"):
        put(wb.index_of(name), face_point(kin, name, shape))
    for side in ("left", "right"):
        for part in ("shoulder", "elbow", "wrist"):
            put(wb.index_of(f"{side}_{part}"), kin["joints"][:, _INDEX[f"{side}_{part}"]])
        if hips_visible:
            put(wb.index_of(f"{side}_hip"), np.broadcast_to(HIP_OFFSETS[side], (frames, 3)))
        put(wb.hand_index(side, None), kin["joints"][:, _INDEX[f"{side}_wrist"]])
        for finger in wb.FINGERS:
            for level in (1, 2, 3):
                put(wb.hand_index(side, finger, level), kin["joints"][:, _INDEX[f"{side}_{finger}{level}"]])
            put(wb.hand_index(side, finger, 4), kin["fingertips"][f"{side}_{finger}"])
    # Mouth: corners and the lip midpoints, opened by the expression.
    centre = face_point(kin, "mouth_centre", shape)
    up = kin["rotations"][:, _INDEX["head"]] @ np.array([0.0, 1.0, 0.0])
    gap = mouth_opening_metres(expression, shape)[:, None]
    put(wb.FACE_MOUTH_LEFT_CORNER, face_point(kin, "mouth_left", shape))
    put(wb.FACE_MOUTH_RIGHT_CORNER, face_point(kin, "mouth_right", shape))
    put(wb.FACE_UPPER_LIP_TOP, centre + up * (0.004 * shape.head + gap / 2))
    put(wb.FACE_LOWER_LIP_BOTTOM, centre - up * (0.004 * shape.head + gap / 2))

    pixels = camera.project(world)
    inside = (pixels >= 0).all(-1) & (pixels <= camera.size - 1).all(-1)
    score = (present[None, :] & inside).astype(np.float32)
    keypoints = np.concatenate([pixels, score[..., None]], axis=-1).astype(np.float32)
    keypoints[score == 0, :2] = 0.0
    return keypoints
