"""The speakers of the toy corpus: appearance, body proportions, voice and gesture style.

Four hand-made identities cover both postures, both dominant hands and a range of gesture
amplitude and tempo. Three gesture in time with their speech (arrivals within 15-20 ms of a
syllable's onset + lag); the fourth, ``mara``, is loosely timed (250 ms of jitter), so a beat metric
scores her real videos at chance: the floor of the table. More identities are drawn at random from
the seed when asked for, all in time with their speech.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from bench.data.toy.body import BodyShape, Camera
from bench.data.toy.gestures import GestureStyle
from bench.data.toy.render import Appearance
from bench.data.toy.speech import SpeechStyle
from metrics.pose.toy_markers import MAX_SCENE_CHROMA


@dataclass(frozen=True)
class Identity:
    name: str
    shape: BodyShape
    appearance: Appearance
    speech: SpeechStyle
    gesture: GestureStyle

    @property
    def sitting(self) -> bool:
        return self.gesture.sitting

    def camera(self, size: int) -> Camera:
        # Standing speakers are framed from the hips up; sitting ones a little closer.
        if self.sitting:
            return Camera(size, pixels_per_metre=132.0, centre_y=0.40)
        return Camera(size, pixels_per_metre=112.0, centre_y=0.30)

    def describe(self) -> dict:
        """Everything that defines the identity, for the corpus card."""
        return {"name": self.name, "posture": "sitting" if self.sitting else "standing",
                "shape": asdict(self.shape), "appearance": asdict(self.appearance),
                "speech": asdict(self.speech), "gesture": asdict(self.gesture)}


PRESETS = (
    Identity(
        "ines",
        BodyShape(torso=0.95, shoulder_width=0.92, arm=0.97, head=1.0),
        Appearance((205, 190, 165), (170, 155, 135), (150, 175, 190), (0.62, 0.08, 0.9, 0.3),
                   (70, 105, 110), (230, 190, 160), (70, 45, 30), None),
        SpeechStyle(pitch_hz=210.0, syllables_per_second=4.6),
        GestureStyle(amplitude=1.1, dominant_hand="right", lag_seconds=0.05, jitter_seconds=0.015,
                     stroke_seconds=0.38),
    ),
    Identity(
        "omar",
        BodyShape(torso=1.05, shoulder_width=1.1, arm=1.03, head=1.05),
        Appearance((140, 150, 165), (100, 108, 120), (185, 180, 160), (0.08, 0.12, 0.3, 0.42),
                   (120, 70, 75), (180, 130, 100), (35, 30, 28), (125, 100, 75)),
        SpeechStyle(pitch_hz=115.0, syllables_per_second=4.2, stress_probability=0.28),
        GestureStyle(amplitude=0.9, dominant_hand="left", lag_seconds=0.065, jitter_seconds=0.02,
                     stroke_seconds=0.45, sitting=True),
    ),
    Identity(
        "kenji",
        BodyShape(torso=1.0, shoulder_width=1.0, arm=1.0, head=0.95),
        Appearance((160, 175, 150), (120, 135, 115), (110, 110, 120), (0.1, 0.55, 0.3, 0.9),
                   (100, 105, 60), (215, 175, 140), (25, 25, 30), None),
        SpeechStyle(pitch_hz=130.0, syllables_per_second=5.2, stress_probability=0.33),
        GestureStyle(amplitude=1.3, dominant_hand="right", lag_seconds=0.045, jitter_seconds=0.015,
                     stroke_seconds=0.32),
    ),
    Identity(
        "mara",
        BodyShape(torso=0.92, shoulder_width=0.95, arm=0.95, head=0.98),
        Appearance((200, 200, 205), (165, 165, 172), (210, 195, 170), (0.66, 0.15, 0.92, 0.45),
                   (85, 75, 100), (240, 205, 180), (130, 90, 55), (110, 95, 85)),
        SpeechStyle(pitch_hz=190.0, syllables_per_second=3.8, stress_probability=0.3),
        GestureStyle(amplitude=1.0, dominant_hand="right", lag_seconds=0.07, jitter_seconds=0.25,
                     stroke_seconds=0.5, sitting=True),
    ),
)


def _muted_colour(rng: np.random.Generator, value: tuple[float, float], saturation: tuple[float, float]):
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value))
    return (int(255 * r), int(255 * g), int(255 * b))


def _skin_colour(rng: np.random.Generator):
    hue, saturation, value = rng.uniform(0.05, 0.09), rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.95)
    # chroma is saturation * value (+ 1/255 of rounding): a bright skin is kept within the scene's limit
    saturation = min(saturation, (MAX_SCENE_CHROMA - 1 / 255) / value)
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (int(255 * r), int(255 * g), int(255 * b))


def random_identity(rng: np.random.Generator, name: str) -> Identity:
    """An identity drawn at random within the ranges the presets span."""
    sitting = bool(rng.random() < 0.5)
    top = _muted_colour(rng, (0.55, 0.85), (0.05, 0.25))
    appearance = Appearance(
        top, tuple(int(c * 0.8) for c in top), _muted_colour(rng, (0.4, 0.9), (0.05, 0.3)),
        (float(rng.uniform(0.05, 0.6)), 0.08, float(rng.uniform(0.65, 0.95)), 0.35),
        _muted_colour(rng, (0.25, 0.6), (0.1, 0.4)),
        _skin_colour(rng),
        _muted_colour(rng, (0.1, 0.5), (0.1, 0.4)),
        _muted_colour(rng, (0.3, 0.55), (0.1, 0.35)) if sitting else None,
    )
    return Identity(
        name,
        BodyShape(torso=rng.uniform(0.9, 1.08), shoulder_width=rng.uniform(0.88, 1.12),
                  arm=rng.uniform(0.93, 1.05), head=rng.uniform(0.93, 1.07)),
        appearance,
        SpeechStyle(pitch_hz=float(rng.uniform(100, 230)), syllables_per_second=float(rng.uniform(3.6, 5.4))),
        GestureStyle(amplitude=float(rng.uniform(0.8, 1.3)), dominant_hand=str(rng.choice(["left", "right"])),
                     lag_seconds=float(rng.uniform(0.04, 0.07)), jitter_seconds=float(rng.uniform(0.01, 0.03)),
                     stroke_seconds=float(rng.uniform(0.3, 0.5)), sitting=sitting),
    )


def scene_chroma(appearance: Appearance) -> float:
    """The highest chroma (max - min channel, over 255) among an appearance's colours."""
    colours = [c for c in (appearance.background_top, appearance.background_bottom, appearance.prop,
                           appearance.shirt, appearance.skin, appearance.hair, appearance.desk) if c is not None]
    return max((max(c) - min(c)) / 255.0 for c in colours)


def make_identities(count: int, seed: int) -> list[Identity]:
    """The first ``count`` identities: the presets, then random ones from the seed."""
    if count < 1:
        raise ValueError(f"need at least one identity, got {count}")
    identities = list(PRESETS[:count])
    for k in range(len(identities), count):
        identities.append(random_identity(np.random.default_rng([seed, 1000 + k]), f"speaker{k:02d}"))
    for identity in identities:
        if scene_chroma(identity.appearance) > MAX_SCENE_CHROMA:
            raise ValueError(f"identity {identity.name}: scene colours too saturated (chroma) for the marker code")
    return identities
