"""Co-speech motion for the toy corpus: pose and expression parameters that follow the speech.

The coupling is the one gesture research describes, made tight in timing and loose in form: a
gesture's apex (where the moving hand arrives and stops) lands on a stressed syllable, near its
vowel (Loehr 2004; Leonard & Cummins 2011), and between strokes the hand beats along with the
syllables.
- Timing: every arrival of an arm (a stroke's apex, a beat, the return to rest) falls on a
  syllable, at its onset plus the identity's ``lag_seconds``, with ``jitter_seconds`` of jitter:
  15-20 ms for most speakers, 250 ms for one (``mara``), whose gestures barely follow her speech
  (the floor of a beat metric).
- Form, many-to-many: strokes land on stressed syllables with an identity-specific probability (a
  few on unstressed ones); which hands gesture is drawn per phrase (the dominant one, both, or the
  other one); stroke targets (arm angles), hand shapes and beat directions are random. The same
  speech never determines one gesture.
- Continuity: a gesturing arm never holds still between arrivals. It leaves rest on a phrase's
  first syllable, goes from arrival to arrival (a beat on a syllable in between when the next
  stroke is far), and sinks back to rest across a long pause, arriving as the next phrase starts.
  The moments where the gesturing slows to a stop are therefore the arrivals.
- Shape: every movement ramps up and down over ``RAMP_SECONDS`` and covers about the same
  distance per second in the camera's view (``TRAVEL_SPEED`` shoulder widths per second, times the
  identity's amplitude), so the speed dips to zero at an arrival with the same shape on both
  sides and the dip sits on it, not beside it.
- The head nods and the brows rise on stresses, the mouth opens with loudness; everything else
  (trunk sway, blinks, small noise on every angle) is random.

Arms are driven by a few angles per arm (shoulder elevation / swing / twist, elbow flexion and
twist, wrist flexion and deviation, one curl per finger) that move along straight lines between
targets; the angles become the axis-angle pose parameters of ``bench.data.toy.body``.
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
# Directions of a beat's movement (standard deviations per angle): mostly up-down of the arm and
# forearm, the movements a frontal camera sees.
BEAT_DIRECTION_SPREAD = np.array([0.35, 0.15, 0.10, 0.45, 0.10, 0.20, 0.10])
HAND_SHAPES = {  # finger curls: thumb, index, middle, ring, pinky
    "open": (0.05, 0.05, 0.05, 0.05, 0.05),
    "relaxed": (0.3, 0.45, 0.5, 0.55, 0.6),
    "point": (0.7, 0.0, 1.3, 1.35, 1.4),
    "precision": (0.7, 0.8, 0.25, 0.2, 0.2),
}
HANDS = (("dominant",), ("dominant", "other"), ("other",))   # who gestures in a phrase
HANDS_PROBABILITIES = (0.75, 0.13, 0.12)
RAMP_SECONDS = 0.25         # every movement speeds up over this long and slows down over this long
TRAVEL_SPEED = 1.0          # shoulder widths per second, in view (elbow and wrist), at amplitude 1
CANDIDATES = 4              # targets drawn per arrival, the one that fits the travel kept
SPACING = (0.75, 1.5)       # arrivals at least, and (syllables allowing) at most, this many stroke_seconds apart
ARM_NOISE, SWAY, NOD = 0.015, 0.03, 0.12   # radians: noise on the arm angles, trunk sway, head nod


@dataclass(frozen=True)
class GestureStyle:
    """How one identity gestures."""

    amplitude: float = 1.0            # scales the spread of gesture targets and the arm's speed
    dominant_hand: str = "right"
    lag_seconds: float = 0.05         # arrivals after the syllable's onset (on its vowel)
    jitter_seconds: float = 0.015     # standard deviation of the arrival times
    stroke_probability: float = 0.8   # for a stressed syllable
    unstressed_stroke_probability: float = 0.08
    stroke_seconds: float = 0.4       # tempo: arrivals at least 0.75x and (beats) at most 1.5x this apart
    rest_pause_seconds: float = 0.5   # pauses at least this long send the arms to rest
    sitting: bool = False


@dataclass(frozen=True)
class Stroke:
    time: float    # seconds: the apex, where the hand arrives at the stroke's target
    syllable: int  # index of the (usually stressed) syllable it lands on


@dataclass(frozen=True)
class Arrival:
    """A moment one arm arrives somewhere and its speed dips to zero."""

    time: float
    target: tuple[float, ...]   # arm angles (12)
    kind: str                   # "stroke" | "beat" | "rest"


@dataclass(frozen=True)
class GesturePlan:
    phrases: list[list[int]]             # syllable indices per phrase
    hands: list[tuple[str, ...]]         # "left" / "right" gesturing in each phrase
    strokes: list[Stroke]
    keys: list[list[float]]              # arrival times of each phrase ("leave rest", strokes, beats)


def _gesture_target(rng: np.random.Generator, style: GestureStyle) -> np.ndarray:
    arm = GESTURE_CENTRE + style.amplitude * GESTURE_SPREAD * rng.uniform(-1.0, 1.0, GESTURE_CENTRE.size)
    shape = list(HAND_SHAPES)[rng.choice(len(HAND_SHAPES), p=(0.35, 0.35, 0.15, 0.15))]
    curls = np.array(HAND_SHAPES[shape]) + rng.normal(0.0, 0.08, 5)
    return np.concatenate([arm, np.clip(curls, 0.0, 1.5)])


def _beat_target(rng: np.random.Generator, around: np.ndarray, style: GestureStyle) -> np.ndarray:
    """A beat: the arm moves on from where it is in a random (mostly up-down) direction, the hand
    shape loosely kept."""
    arm = around[:7] + style.amplitude * BEAT_DIRECTION_SPREAD * rng.normal(0.0, 1.0, 7)
    return np.concatenate([arm, np.clip(around[7:] + rng.normal(0.0, 0.05, 5), 0.0, 1.5)])


def syllable_times(rng: np.random.Generator, speech: Speech, style: GestureStyle) -> np.ndarray:
    """The time an arrival on each syllable falls: onset + lag + jitter (seconds)."""
    onsets = np.array([s.onset for s in speech.syllables])
    return onsets + style.lag_seconds + rng.normal(0.0, style.jitter_seconds, onsets.size)


def phrases(speech: Speech, style: GestureStyle) -> list[list[int]]:
    """Syllable indices of each phrase: the runs between pauses long enough to rest in."""
    groups: list[list[int]] = []
    long_pauses = [p for p in speech.pauses if p[1] - p[0] >= style.rest_pause_seconds]
    for i, syllable in enumerate(speech.syllables):
        if not groups or any(speech.syllables[i - 1].onset < p[0] and p[1] <= syllable.onset + 1e-9
                             for p in long_pauses):
            groups.append([])
        groups[-1].append(i)
    return groups


def plan_strokes(rng: np.random.Generator, speech: Speech, style: GestureStyle, times: np.ndarray) -> list[Stroke]:
    """Stroke apexes: on stressed syllables (and a few unstressed ones), one per beat of tempo."""
    strokes: list[Stroke] = []
    for i, syllable in enumerate(speech.syllables):
        p = style.stroke_probability if syllable.stressed else style.unstressed_stroke_probability
        if rng.random() >= p:
            continue
        if strokes and abs(times[i] - strokes[-1].time) < 0.8 * style.stroke_seconds:
            continue  # too close to the previous apex
        strokes.append(Stroke(float(times[i]), i))
    return strokes


def _fill_gaps(keys: list[float], candidates: np.ndarray, shortest: float, longest: float) -> list[float]:
    """``keys`` with times from ``candidates`` added wherever a gap exceeds ``longest``: the latest
    candidate within ``longest`` (else the earliest after it), at least ``shortest`` from both
    neighbours."""
    filled = [keys[0]]
    for end in keys[1:]:
        while end - filled[-1] > longest:
            usable = candidates[(candidates >= filled[-1] + shortest) & (candidates <= end - shortest)]
            if usable.size == 0:
                break
            near = usable[usable <= filled[-1] + longest]
            filled.append(float(near.max() if near.size else usable.min()))
        filled.append(end)
    return filled


def plan_gestures(rng: np.random.Generator, speech: Speech, style: GestureStyle, duration: float) -> GesturePlan:
    """When the arms arrive somewhere: per phrase, the hands that gesture and their arrival times.

    A phrase's arrivals: it leaves rest on the first syllable (unless a stroke lands there), its
    strokes, and beats on syllables between them so that no movement lasts longer than
    ``1.5 * stroke_seconds`` (where the syllables allow). Arrivals are at least
    ``0.75 * stroke_seconds`` apart.
    """
    times = syllable_times(rng, speech, style)
    groups = phrases(speech, style)
    # The arms are at rest when a clip starts: a stroke needs its preparation inside the clip.
    strokes = [s for s in plan_strokes(rng, speech, style, times) if s.time >= style.stroke_seconds]
    other = {"left": "right", "right": "left"}[style.dominant_hand]
    names = {"dominant": style.dominant_hand, "other": other}
    hands = [tuple(names[h] for h in HANDS[rng.choice(len(HANDS), p=HANDS_PROBABILITIES)]) for _ in groups]
    shortest, longest = SPACING[0] * style.stroke_seconds, SPACING[1] * style.stroke_seconds
    keys = []
    for g, group in enumerate(groups):
        candidates = np.sort(times[group])
        apexes = sorted(s.time for s in strokes if s.syllable in group)
        leave = float(candidates[0])
        own = apexes if apexes and apexes[0] - leave < shortest else [leave, *apexes]
        following = float(np.sort(times[groups[g + 1]])[0]) if g + 1 < len(groups) else duration
        keys.append(_fill_gaps(own + [following], candidates, shortest, longest)[:-1])
    # Loose timing can bring arrivals together or across a phrase's end: keep them in order, apart.
    last = -np.inf
    for g, own in enumerate(keys):
        end = keys[g + 1][0] if g + 1 < len(keys) and keys[g + 1] else duration
        kept = []
        for time in own:
            if time - last >= 0.5 * shortest and end - time >= 0.5 * shortest:
                kept.append(time)
                last = time
        keys[g] = kept
    return GesturePlan(groups, hands, strokes, keys)


_REFERENCE_OFFSETS = body.rest_offsets(body.BodyShape())
_SHOULDER_WIDTH = 2 * abs(_REFERENCE_OFFSETS[body.joint_index("left_collar"), 0]
                          + _REFERENCE_OFFSETS[body.joint_index("left_shoulder"), 0])   # metres


def _elbow_and_wrist(angles: np.ndarray) -> np.ndarray:
    """Frontal-view (x, y) positions (K, 2, 2) of the left elbow and wrist, relative to the
    shoulder, of the reference body for arm angles (K, 12) (the trunk at rest: only the shoulder
    and elbow rotations move them; the same chain as ``body.forward_kinematics``)."""
    shoulder = Rotation.from_euler("ZYX", angles[:, [_A["shoulder_elevation"], _A["shoulder_swing"],
                                                      _A["shoulder_twist"]]])
    elbow = Rotation.from_euler("YX", np.stack([-angles[:, _A["elbow_flexion"]], angles[:, _A["elbow_twist"]]], 1))
    at_elbow = shoulder.apply(_REFERENCE_OFFSETS[body.joint_index("left_elbow")])
    at_wrist = at_elbow + (shoulder * elbow).apply(_REFERENCE_OFFSETS[body.joint_index("left_wrist")])
    return np.stack([at_elbow, at_wrist], axis=1)[:, :, :2]


def visible_travel(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How far the elbow and wrist move in the camera's view (the mean of the two, in shoulder
    widths) from arm angles ``before`` (12,) to each of ``after`` (K, 12), on the reference body."""
    points = _elbow_and_wrist(np.concatenate([before[None], np.atleast_2d(after)]))
    return np.linalg.norm(points[1:] - points[:1], axis=-1).mean(axis=1) / _SHOULDER_WIDTH


def _step_to(before: np.ndarray, candidates: np.ndarray, travel: float, style: GestureStyle) -> np.ndarray:
    """Arm angles on the way from ``before`` towards one of ``candidates`` (K, 12) where the arm
    has travelled ``travel`` shoulder widths in view: the candidate that needs the least stretching
    or shrinking of its step and stays in the gesture space (its curls are kept)."""
    low = GESTURE_CENTRE - 1.5 * style.amplitude * GESTURE_SPREAD
    high = GESTURE_CENTRE + 1.5 * style.amplitude * GESTURE_SPREAD
    steps = candidates[:, :7] - before[:7]
    scales = travel / np.maximum(visible_travel(before, candidates), 1e-6)
    ends = before[:7] + scales[:, None] * steps
    outside = ((ends < low) | (ends > high)).any(axis=1)
    k = int(np.argmin(np.abs(np.log(scales)) + 10.0 * outside))
    end = np.concatenate([np.clip(ends[k], low, high), candidates[k, 7:]])
    moved = visible_travel(before, end)[0]   # the view is not linear in the angles: one secant step
    if moved > 1e-6:
        end[:7] = np.clip(before[:7] + (end[:7] - before[:7]) * travel / moved, low, high)
    return end


def plan_arrivals(rng: np.random.Generator, plan: GesturePlan, side: str, rest: np.ndarray, style: GestureStyle,
                  duration: float) -> list[Arrival]:
    """Where and when one arm arrives, in time order: it moves from each arrival to the next.

    In a phrase it gestures in, the arm leaves rest at the phrase's first arrival, goes to a new
    random target on each stroke and on from where it is on each beat, covering about
    ``TRAVEL_SPEED`` shoulder widths per second in view, and arrives back at rest when the next
    phrase starts (straight on into it if it gestures there too and that phrase starts with a
    stroke), or at the clip's end.
    """
    apexes = {s.time for s in plan.strokes}
    level = TRAVEL_SPEED * style.amplitude
    arrivals: list[Arrival] = []
    for g, keys in enumerate(plan.keys):
        if side not in plan.hands[g] or not keys:
            continue
        current = rest
        for k, time in enumerate(keys):
            if k == 0 and time not in apexes:
                if not arrivals or arrivals[-1].time < time:   # else it is at rest there, back from the last phrase
                    arrivals.append(Arrival(time, tuple(rest), "rest"))
                continue
            if k == 0 and arrivals and arrivals[-1].kind == "rest" and time - arrivals[-1].time > style.stroke_seconds:
                # from a rest held since an earlier phrase: leave it a stroke's length before
                arrivals.append(Arrival(time - style.stroke_seconds, tuple(rest), "rest"))
            if arrivals:
                span = time - arrivals[-1].time
                before = np.array(arrivals[-1].target)
            else:
                span, before = style.stroke_seconds, rest
            candidates = np.stack([_gesture_target(rng, style) if time in apexes or current is rest
                                   else _beat_target(rng, current, style) for _ in range(CANDIDATES)])
            travel = level * span * (1.0 - min(RAMP_SECONDS / span, 0.5))
            current = _step_to(before, candidates, travel, style)
            arrivals.append(Arrival(time, tuple(current), "stroke" if time in apexes else "beat"))
        later = [h for h in range(g + 1, len(plan.keys)) if plan.keys[h]]
        if later and side in plan.hands[later[0]] and plan.keys[later[0]][0] in apexes:
            continue                        # straight on into the next phrase's first stroke
        arrivals.append(Arrival(plan.keys[later[0]][0] if later else duration, tuple(rest), "rest"))
    return arrivals


def ramped(x: np.ndarray, rho: float) -> np.ndarray:
    """Progress from 0 to 1 on x in [0, 1] whose speed rises over the first ``rho`` of the way
    (a cubic ramp: zero speed and acceleration at the start), stays level, and falls over the last
    ``rho`` in mirror image (rho <= 0.5)."""
    x = np.clip(x, 0.0, 1.0)

    def integral(z):  # of the ramp 3z^2 - 2z^3 for z <= 1, then of 1
        return np.where(z <= 1.0, z ** 3 - z ** 4 / 2, z - 0.5)

    raw = rho * integral(x / rho) - rho * integral((1 - x) / rho) - x + rho * integral(1 / rho)
    return raw / (1.0 - rho)


def _arm_trajectory(times: np.ndarray, rest: np.ndarray, arrivals: list[Arrival], style: GestureStyle) -> np.ndarray:
    """Angles (F, 12) of one arm through its arrivals: a straight line in angle space from each
    arrival to the next, with the same ramps out of and into every arrival."""
    knots = [(a.time, np.array(a.target)) for a in arrivals]
    if not knots:
        return np.tile(rest, (times.size, 1))
    if arrivals[0].kind != "rest":   # the arm leaves rest a stroke's length before its first arrival
        knots.insert(0, (knots[0][0] - style.stroke_seconds, rest.copy()))
    t = np.array([k[0] for k in knots])
    p = np.stack([k[1] for k in knots])
    trajectory = np.tile(p[0], (times.size, 1))
    trajectory[times >= t[-1]] = p[-1]
    for k in range(len(knots) - 1):
        inside = (times >= t[k]) & (times < t[k + 1])
        span = t[k + 1] - t[k]
        progress = ramped((times[inside] - t[k]) / span, min(RAMP_SECONDS / span, 0.5))
        trajectory[inside] = p[k] + (p[k + 1] - p[k]) * progress[:, None]
    return trajectory


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
) -> dict:
    """Pose (F, 129) axis-angle and expression (F, 100) for a speech, with the plan behind them:
    ``strokes``, ``hands`` per phrase and ``arrivals`` (``(arm, Arrival)`` in time order)."""
    times = np.arange(num_frames) / fps
    duration = num_frames / fps
    plan = plan_gestures(rng, speech, style, duration)
    rest = REST_SITTING if style.sitting else REST_STANDING
    pose = np.zeros((num_frames, len(body.POSED_JOINT_NAMES), 3))
    index = {name: i for i, name in enumerate(body.POSED_JOINT_NAMES)}
    arrivals = {}
    for side in ("left", "right"):
        side_rest = rest + np.concatenate([rng.normal(0.0, 0.04, 7), np.zeros(5)])
        arrivals[side] = plan_arrivals(rng, plan, side, side_rest, style, duration)
        angles = _arm_trajectory(times, side_rest, arrivals[side], style)
        angles[:, :7] += np.stack([smooth_noise(rng, num_frames, 12.0, ARM_NOISE) for _ in range(7)], 1)
        for joint, value in _arm_pose_params(angles, side).items():
            pose[:, index[f"{side}_{joint}"]] = value

    # Trunk and head: slow sway and breathing, a nod on every stress.
    sway = smooth_noise(rng, num_frames, 20.0, SWAY)
    for level, name in enumerate(("spine1", "spine2", "spine3")):
        pose[:, index[name], 2] = sway / 3
        pose[:, index[name], 0] = 0.01 * np.sin(2 * np.pi * 0.25 * times + level)
    nod = np.zeros(num_frames)
    brows = np.zeros(num_frames)
    for syllable in speech.syllables:
        if syllable.stressed:
            nod += NOD * np.exp(-0.5 * ((times - syllable.onset - 0.06) / 0.09) ** 2)
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
        "strokes": plan.strokes,
        "hands": plan.hands,
        "arrivals": sorted(((side, a) for side, arm in arrivals.items() for a in arm), key=lambda p: (p[1].time, p[0])),
    }


def _blinks(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    closure = np.zeros(times.size)
    t = rng.uniform(0.5, 3.0)
    while t < times[-1] + 1:
        closure = np.maximum(closure, np.clip(1 - np.abs(times - t) / 0.08, 0, 1))
        t += rng.uniform(2.0, 5.0)
    return closure
