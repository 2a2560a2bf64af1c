"""Co-speech motion for the toy corpus: pose and expression parameters that follow the speech.

The coupling is the one gesture research describes, and deliberately weak and many-to-many:
- gesture strokes (the fastest part of a movement, a peak of wrist speed) land near stressed
  syllables, after an identity-specific lag and with jitter; some stresses get no stroke and some
  unstressed syllables get one;
- during pauses longer than ``rest_pause_seconds`` the arms return to a rest pose;
- the head nods on stresses, the brows rise on stresses, the mouth opens with loudness;
- everything else (hand shapes, gesture targets, sway, blinks) is random.

Arms are driven by a few angles per arm (shoulder elevation / swing / twist, elbow flexion and
twist, wrist flexion and deviation, one curl per finger) that move between targets along
minimum-jerk transitions centred on the stroke times; the angles become the axis-angle pose
parameters of ``bench.data.toy.body``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from bench.data.toy import body
from bench.data.toy.speech import Speech, frame_loudness

# Angles of one arm, in this order (radians; written for the left arm, mirrored for the right).
ARM_ANGLES = (
    "shoulder_elevation", "shoulder_swing", "shoulder_twist", "elbow_flexion", "elbow_twist",
    "wrist_flexion", "wrist_deviation", "curl_thumb", "curl_index", "curl_middle", "curl_ring", "curl_pinky",
)
_A = {name: i for i, name in enumerate(ARM_ANGLES)}

REST_STANDING = np.array([-1.30, -0.15, 0.3, 1.0, 1.0, 0.1, 0.0, 0.3, 0.35, 0.35, 0.4, 0.45])
REST_SITTING = np.array([-1.10, -0.55, 0.5, 1.25, 0.3, 0.1, 0.0, 0.3, 0.4, 0.4, 0.45, 0.5])
GESTURE_CENTRE = np.array([-0.85, -0.45, 0.8, 1.55, 0.0, 0.0, 0.0])
GESTURE_SPREAD = np.array([0.35, 0.30, 0.35, 0.45, 0.45, 0.35, 0.20])
HAND_SHAPES = {  # finger curls: thumb, index, middle, ring, pinky
    "open": (0.05, 0.05, 0.05, 0.05, 0.05),
    "relaxed": (0.3, 0.45, 0.5, 0.55, 0.6),
    "point": (0.7, 0.0, 1.3, 1.35, 1.4),
    "precision": (0.7, 0.8, 0.25, 0.2, 0.2),
}


@dataclass(frozen=True)
class GestureStyle:
    """How one identity gestures."""

    amplitude: float = 1.0            # scales the spread of gesture targets
    dominant_hand: str = "right"
    lag_seconds: float = 0.05         # stroke time after the stressed syllable's onset
    jitter_seconds: float = 0.07      # standard deviation of the stroke time
    stroke_probability: float = 0.8   # for a stressed syllable
    unstressed_stroke_probability: float = 0.08
    stroke_seconds: float = 0.4       # duration of one transition (tempo)
    rest_pause_seconds: float = 0.5   # pauses at least this long send the arms to rest
    sitting: bool = False


@dataclass(frozen=True)
class Stroke:
    time: float   # seconds: the centre of the transition, where the wrist is fastest
    arm: str      # "left" | "right"
    target: tuple[float, ...]  # arm angles
    duration: float


def min_jerk(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile from 0 to 1 on x in [0, 1] (clipped outside)."""
    x = np.clip(x, 0.0, 1.0)
    return x ** 3 * (10 - 15 * x + 6 * x ** 2)


def _gesture_target(rng: np.random.Generator, style: GestureStyle) -> np.ndarray:
    arm = GESTURE_CENTRE + style.amplitude * GESTURE_SPREAD * rng.uniform(-1.0, 1.0, GESTURE_CENTRE.size)
    shape = list(HAND_SHAPES)[rng.choice(len(HAND_SHAPES), p=(0.35, 0.35, 0.15, 0.15))]
    curls = np.array(HAND_SHAPES[shape]) + rng.normal(0.0, 0.08, 5)
    return np.concatenate([arm, np.clip(curls, 0.0, 1.5)])


def plan_strokes(rng: np.random.Generator, speech: Speech, style: GestureStyle) -> list[Stroke]:
    """Gesture strokes for a speech: near stresses, after the identity's lag, with jitter."""
    strokes: list[Stroke] = []
    other = {"left": "right", "right": "left"}
    last_time = -np.inf
    for syllable in speech.syllables:
        p = style.stroke_probability if syllable.stressed else style.unstressed_stroke_probability
        if rng.random() >= p:
            continue
        time = syllable.onset + style.lag_seconds + rng.normal(0.0, style.jitter_seconds)
        if time - last_time < 0.8 * style.stroke_seconds:
            continue  # the previous stroke is still under way
        draw = rng.random()
        arms = [style.dominant_hand] if draw < 0.75 else [other[style.dominant_hand]] if draw < 0.87 else ["left", "right"]
        duration = style.stroke_seconds * rng.uniform(0.8, 1.2)
        for arm in arms:
            strokes.append(Stroke(float(time), arm, tuple(_gesture_target(rng, style)), float(duration)))
        last_time = time
    return strokes


def _arm_trajectory(
    times: np.ndarray, rest: np.ndarray, strokes: list[Stroke], rests: list[tuple[float, float]], style: GestureStyle
) -> np.ndarray:
    """Angles (F, 12) of one arm: minimum-jerk transitions between successive targets.

    Each transition overwrites the trajectory from its start on, starting from wherever the arm is
    at that moment, so overlapping transitions blend smoothly.
    """
    events = [(s.time, np.array(s.target), s.duration) for s in strokes]
    events += [(t, rest, d) for t, d in rests]
    trajectory = np.tile(rest, (times.size, 1))
    for centre, target, duration in sorted(events, key=lambda e: e[0]):
        start_time = centre - duration / 2
        start_frame = int(np.searchsorted(times, start_time))
        if start_frame >= times.size:
            continue
        start_value = trajectory[start_frame].copy()
        after = slice(start_frame, None)
        s = min_jerk((times[after] - start_time) / duration)[:, None]
        trajectory[after] = start_value + (target - start_value) * s
    return trajectory


def _rest_transitions(speech: Speech, style: GestureStyle, duration: float) -> list[tuple[float, float]]:
    """(centre time, duration) of the returns to rest in long pauses."""
    transitions = []
    for start, end in speech.pauses[1:]:
        if end - start >= style.rest_pause_seconds:
            transitions.append((start + 0.35 * (end - start), min(0.6, 0.6 * (end - start))))
    return transitions


def _arm_pose_params(angles: np.ndarray, side: str) -> dict[str, np.ndarray]:
    """Axis-angle (F, 3) per joint of one arm from its angles (F, 12)."""
    a = angles
    zeros = np.zeros(len(a))
    params = {
        "shoulder": Rotation.from_euler(
            "ZYX", np.stack([a[:, _A["shoulder_elevation"]], a[:, _A["shoulder_swing"]], a[:, _A["shoulder_twist"]]], 1)
        ).as_rotvec(),
        "elbow": Rotation.from_euler(
            "YX", np.stack([-a[:, _A["elbow_flexion"]], a[:, _A["elbow_twist"]]], 1)
        ).as_rotvec(),
        "wrist": Rotation.from_euler(
            "YZ", np.stack([-a[:, _A["wrist_flexion"]], a[:, _A["wrist_deviation"]]], 1)
        ).as_rotvec(),
    }
    for finger in body.FINGER_ORDER:
        curl = a[:, _A[f"curl_{finger}"]]
        # The curl bends every phalanx towards the palm (+z), the thumb across it.
        for level, share in zip((1, 2, 3), (0.35, 0.35, 0.30)):
            axis = np.stack([zeros, -np.ones_like(curl), zeros], 1)
            if finger == "thumb":
                axis = np.stack([0.5 * np.ones_like(curl), -np.ones_like(curl), zeros], 1) / np.sqrt(1.25)
            params[f"{finger}{level}"] = axis * (curl * share)[:, None]
    if side == "right":  # mirror through the x = 0 plane: (x, y, z) -> (x, -y, -z) for rotations
        params = {k: v * np.array([1.0, -1.0, -1.0]) for k, v in params.items()}
    return params


def smooth_noise(rng: np.random.Generator, frames: int, sigma_frames: float, scale: float) -> np.ndarray:
    """Smooth random signal (frames,) with standard deviation about ``scale``."""
    x = gaussian_filter1d(rng.standard_normal(frames + 6 * int(sigma_frames)), sigma_frames)
    x = x[3 * int(sigma_frames):3 * int(sigma_frames) + frames]
    return scale * x / (x.std() + 1e-9)


def generate_motion(
    rng: np.random.Generator, speech: Speech, style: GestureStyle, fps: float, num_frames: int
) -> dict[str, np.ndarray]:
    """Pose (F, 129) axis-angle and expression (F, 100) for a speech, plus the strokes planned."""
    times = np.arange(num_frames) / fps
    strokes = plan_strokes(rng, speech, style)
    rest = REST_SITTING if style.sitting else REST_STANDING
    rests = _rest_transitions(speech, style, num_frames / fps)
    pose = np.zeros((num_frames, len(body.POSED_JOINT_NAMES), 3))
    index = {name: i for i, name in enumerate(body.POSED_JOINT_NAMES)}
    for side in ("left", "right"):
        side_rest = rest + np.concatenate([rng.normal(0.0, 0.04, 7), np.zeros(5)])
        angles = _arm_trajectory(times, side_rest, [s for s in strokes if s.arm == side], rests, style)
        angles[:, :7] += np.stack([smooth_noise(rng, num_frames, 12.0, 0.015) for _ in range(7)], 1)
        for joint, value in _arm_pose_params(angles, side).items():
            pose[:, index[f"{side}_{joint}"]] = value

    # Trunk and head: slow sway and breathing, a nod on every stress.
    sway = smooth_noise(rng, num_frames, 20.0, 0.03)
    for level, name in enumerate(("spine1", "spine2", "spine3")):
        pose[:, index[name], 2] = sway / 3
        pose[:, index[name], 0] = 0.01 * np.sin(2 * np.pi * 0.25 * times + level)
    nod = np.zeros(num_frames)
    brows = np.zeros(num_frames)
    for syllable in speech.syllables:
        if syllable.stressed:
            nod += 0.12 * np.exp(-0.5 * ((times - syllable.onset - 0.06) / 0.09) ** 2)
            brows += 0.8 * np.exp(-0.5 * ((times - syllable.onset) / 0.15) ** 2)
    pose[:, index["neck"], 0] = 0.4 * nod
    pose[:, index["head"], 0] = 0.6 * nod + smooth_noise(rng, num_frames, 15.0, 0.03)
    pose[:, index["head"], 1] = smooth_noise(rng, num_frames, 25.0, 0.08)
    pose[:, index["head"], 2] = smooth_noise(rng, num_frames, 25.0, 0.04)

    expression = np.zeros((num_frames, body.EXPRESSION_DIM))
    loudness = frame_loudness(speech.samples, fps, num_frames)
    expression[:, 0] = 1.1 * gaussian_filter1d(loudness, 0.8) ** 0.7
    expression[:, 1] = np.minimum(brows, 1.0) + smooth_noise(rng, num_frames, 10.0, 0.05)
    expression[:, 2] = 0.2 + smooth_noise(rng, num_frames, 40.0, 0.1)
    expression[:, 3] = _blinks(rng, times)
    mix = rng.normal(0.0, 0.2, 6)
    for k in range(4, body.EXPRESSION_DIM):
        expression[:, k] = smooth_noise(rng, num_frames, 6.0, 0.04 / (1 + (k - 4) / 8))
        if k < 10:
            expression[:, k] += mix[k - 4] * expression[:, 0]
    return {
        "pose": pose.reshape(num_frames, -1).astype(np.float32),
        "expression": expression.astype(np.float32),
        "strokes": strokes,
    }


def _blinks(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    closure = np.zeros(times.size)
    t = rng.uniform(0.5, 3.0)
    while t < times[-1] + 1:
        closure = np.maximum(closure, np.clip(1 - np.abs(times - t) / 0.08, 0, 1))
        t += rng.uniform(2.0, 5.0)
    return closure
