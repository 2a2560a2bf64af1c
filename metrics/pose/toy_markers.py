"""The colour code of the toy corpus: which hue marks which body point.

The toy renderer (``bench.data.toy``) paints these markers and the toy pose extractor
(``metrics.pose.toy``) reads them back; this module is the contract between the two and imports
neither. Markers are fully saturated, bright colours (chroma 1: max - min of the RGB channels, over 255);
everything else the renderer paints (background, clothes, skin, hair) stays at or below
``MAX_SCENE_CHROMA`` so it never reads as a marker.

- One "trunk" hue marks the nose, both shoulders and both hips: they never overlap and their
  vertical order (nose above shoulders above hips) tells them apart; left and right by x.
- Elbows and wrists have a hue each (they cross the body's midline during gestures).
- Each finger is drawn as a line from its base (COCO-WholeBody point 1) to its tip (point 4) in the
  finger's hue; the hue is shared by both hands, which are told apart by the nearest wrist.
- Skin hues (about 10-45 degrees) are left free.
"""

from __future__ import annotations

TRUNK_HUE = 175.0
ELBOW_HUES = {"left": 77.5, "right": 272.5}
WRIST_HUES = {"left": 240.0, "right": 110.0}
FINGER_HUES = {"thumb": 45.0, "index": 207.5, "middle": 337.5, "ring": 142.5, "pinky": 305.0}

# Where points 2 and 3 of a finger lie along the drawn line, as fractions of its length from the
# base: the toy body's phalanx lengths are in the ratio 0.45 : 0.30 : 0.25.
PHALANX_RATIOS = (0.45, 0.30, 0.25)
FINGER_POINT_FRACTIONS = (0.0, 0.45, 0.75, 1.0)

# Sizes as fractions of the (square) frame side.
MARKER_RADIUS_FRACTION = 1.0 / 42.0
FINGER_WIDTH_FRACTION = 1.0 / 40.0
FINGER_LENGTH_FRACTION = 0.12   # a typical finger as drawn (the confidence of a finger is its mass)
HAND_REACH_FRACTION = 0.30      # no fingertip is further than this from its wrist

MAX_SCENE_CHROMA = 0.35


def all_marker_hues() -> dict[str, float]:
    """Every hue of the code by name, e.g. ``{"trunk": 175.0, "left_elbow": 77.5, ...}``."""
    hues = {"trunk": TRUNK_HUE}
    hues.update({f"{side}_elbow": h for side, h in ELBOW_HUES.items()})
    hues.update({f"{side}_wrist": h for side, h in WRIST_HUES.items()})
    hues.update({f"finger_{name}": h for name, h in FINGER_HUES.items()})
    return hues


def hue_to_rgb(hue_degrees: float) -> tuple[int, int, int]:
    """The fully saturated, full-value sRGB colour of a hue, as 8-bit integers."""
    h = (hue_degrees % 360.0) / 60.0
    sector = int(h)
    frac = h - sector
    rising, falling = frac, 1.0 - frac
    rgb = [
        (1.0, rising, 0.0), (falling, 1.0, 0.0), (0.0, 1.0, rising),
        (0.0, falling, 1.0), (rising, 0.0, 1.0), (1.0, 0.0, falling),
    ][sector]
    return tuple(int(round(255 * c)) for c in rgb)
