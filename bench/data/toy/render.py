"""Drawing the toy body into small square RGB frames.

A flat cartoon: background with a prop, torso, head with eyes, brows and a mouth that opens,
arms, palms and fingers. Joints carry the colour markers of ``metrics.pose.toy_markers`` so the toy
pose extractor can read them back. Frames are drawn at twice the size and box-downsampled, which
anti-aliases the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from bench.data.toy import body
from metrics.pose import toy_markers as mk

RGB = tuple[int, int, int]
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Appearance:
    """How one identity looks. Scene colours stay within ``MAX_SCENE_CHROMA`` of the marker code."""

    background_top: RGB
    background_bottom: RGB
    prop: RGB                       # a picture / window rectangle on the wall
    prop_box: tuple[float, float, float, float]  # left, top, right, bottom as fractions of the frame
    shirt: RGB
    skin: RGB
    hair: RGB
    desk: RGB | None                # a desk in front of the lower body when sitting


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def background(appearance: Appearance, size: int) -> Image.Image:
    """The static background of an identity at the drawing resolution."""
    big = size * SUPERSAMPLE
    ramp = np.linspace(0.0, 1.0, big)[:, None, None]
    top = np.array(appearance.background_top, dtype=np.float64)
    bottom = np.array(appearance.background_bottom, dtype=np.float64)
    pixels = np.broadcast_to(top + (bottom - top) * ramp, (big, big, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    draw = ImageDraw.Draw(image)
    left, top_, right, bottom_ = (int(v * big) for v in appearance.prop_box)
    draw.rectangle((left, top_, right, bottom_), fill=appearance.prop, outline=_shade(appearance.prop, 0.7),
                   width=max(1, big // 64))
    return image


class FrameRenderer:
    """Draws frames of one identity: ``render(pose, expression)`` -> (F, size, size, 3) uint8."""

    def __init__(self, shape: body.BodyShape, appearance: Appearance, camera: body.Camera):
        self.shape = shape
        self.appearance = appearance
        self.camera = camera
        self.size = camera.size
        self._background = background(appearance, self.size)
        big = self.size * SUPERSAMPLE
        self._draw_camera = body.Camera(big, camera.pixels_per_metre, camera.centre_x, camera.centre_y)
        self.marker_radius = big * mk.MARKER_RADIUS_FRACTION
        self.finger_width = max(1, int(round(big * mk.FINGER_WIDTH_FRACTION)))

    def render(self, pose: np.ndarray, expression: np.ndarray) -> np.ndarray:
        kin = body.forward_kinematics(pose, self.shape)
        frames = np.empty((pose.shape[0], self.size, self.size, 3), dtype=np.uint8)
        for f in range(pose.shape[0]):
            frames[f] = self._render_frame(kin, f, expression[f])
        return frames

    def iter_render(self, pose: np.ndarray, expression: np.ndarray, chunk: int = 32):
        """Frames one at a time, drawn in chunks (for streaming straight into a video writer)."""
        for start in range(0, pose.shape[0], chunk):
            yield from self.render(pose[start:start + chunk], expression[start:start + chunk])

    # -- drawing --------------------------------------------------------------------------------
    def _px(self, point: np.ndarray) -> tuple[float, float]:
        # PIL draws a shape centred on (x, y) over the pixels centred on (x - 0.5, y - 0.5); after
        # the box downsampling, drawing at 2p + 1 puts the shape on small-pixel coordinate p, the
        # convention of the keypoints (integer = pixel centre).
        u, v = self._draw_camera.project(point)
        return float(u) + SUPERSAMPLE / 2, float(v) + SUPERSAMPLE / 2

    def _metres(self, metres: float) -> float:
        return self._draw_camera.metres_to_pixels(metres)

    def _disc(self, draw: ImageDraw.ImageDraw, centre, radius: float, fill: RGB) -> None:
        x, y = centre
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)

    def _marker(self, draw: ImageDraw.ImageDraw, centre, hue: float) -> None:
        self._disc(draw, centre, self.marker_radius, mk.hue_to_rgb(hue))

    def _render_frame(self, kin: dict, f: int, expression: np.ndarray) -> np.ndarray:
        a = self.appearance
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        joints = kin["joints"][f]
        J = body.joint_index
        big = self.size * SUPERSAMPLE

        shoulders = {s: self._px(joints[J(f"{s}_shoulder")]) for s in ("left", "right")}
        hips = {s: self._px(np.array(body.HIP_OFFSETS[s])) for s in ("left", "right")}
        if a.desk is not None:  # a chair back behind the sitter
            cx = (shoulders["left"][0] + shoulders["right"][0]) / 2
            half = self._metres(0.24)
            top = shoulders["left"][1] - self._metres(0.05)
            draw.rounded_rectangle((cx - half, top, cx + half, big), radius=int(self._metres(0.05)),
                                   fill=_shade(a.desk, 0.55))
        # Torso, widening a little to the hips and running out of the frame.
        out = self._metres(0.05)
        torso = [shoulders["right"], shoulders["left"], (hips["left"][0] + out, hips["left"][1]),
                 (hips["left"][0] + out, big), (hips["right"][0] - out, big), (hips["right"][0] - out, hips["right"][1])]
        draw.polygon(torso, fill=a.shirt)
        # Neck and head.
        neck, head = self._px(joints[J("neck")]), self._px(joints[J("head")])
        draw.line((neck, head), fill=_shade(a.skin, 0.9), width=int(self._metres(0.07 * self.shape.head)))
        self._draw_head(draw, kin, f, expression)
        if a.desk is None:
            for side in ("left", "right"):
                self._marker(draw, hips[side], mk.TRUNK_HUE)
        if a.desk is not None:
            desk_top = hips["left"][1] - self._metres(0.12)
            draw.rectangle((0, desk_top, big, big), fill=a.desk)
            draw.line(((0, desk_top), (big, desk_top)), fill=_shade(a.desk, 1.25), width=max(1, big // 80))
        # Arms, the one further from the camera first.
        order = sorted(("left", "right"), key=lambda s: joints[J(f"{s}_wrist")][2])
        for side in order:
            self._draw_arm(draw, kin, f, side)
        return np.asarray(image.reduce(SUPERSAMPLE))

    def _draw_head(self, draw: ImageDraw.ImageDraw, kin: dict, f: int, expression: np.ndarray) -> None:
        a, shape = self.appearance, self.shape
        head_rot = kin["rotations"][f, body.joint_index("head")]
        head_pos = kin["joints"][f, body.joint_index("head")]
        centre = self._px(head_pos + head_rot @ (np.array([0.0, 0.06, 0.0]) * shape.head))
        rx, ry = self._metres(0.075 * shape.head), self._metres(0.095 * shape.head)
        hair_c = (centre[0], centre[1] - self._metres(0.02 * shape.head))
        draw.ellipse((hair_c[0] - rx * 1.08, hair_c[1] - ry * 1.05, hair_c[0] + rx * 1.08, hair_c[1] + ry), fill=a.hair)
        draw.ellipse((centre[0] - rx, centre[1] - ry * 0.85, centre[0] + rx, centre[1] + ry), fill=a.skin)

        def face(name: str) -> tuple[float, float]:
            offset = np.array(body.FACE_POINTS[name]) * shape.head
            return self._px(head_pos + head_rot @ offset)

        eye_r = self._metres(0.011 * shape.head)
        openness = 1.0 - np.clip(expression[3], 0.0, 1.0)
        brow_lift = self._metres(0.012 * shape.head) * np.clip(expression[1], -0.5, 1.5)
        for side in ("left", "right"):
            x, y = face(f"{side}_eye")
            draw.ellipse((x - eye_r, y - eye_r * max(openness, 0.15), x + eye_r, y + eye_r * max(openness, 0.15)),
                         fill=(40, 30, 30))
            by = y - self._metres(0.022 * shape.head) - brow_lift
            draw.line(((x - eye_r * 1.5, by), (x + eye_r * 1.5, by)), fill=_shade(a.hair, 0.8),
                      width=max(1, int(eye_r * 0.7)))
        (lx, ly), (rx_, ry_) = face("mouth_left"), face("mouth_right")
        mx, my = face("mouth_centre")
        gap = self._metres(1.0) * float(body.mouth_opening_metres(expression[None], shape)[0])
        smile = self._metres(0.006 * shape.head) * np.clip(expression[2], -1.0, 1.5)
        lip = self._metres(0.004 * shape.head)
        draw.polygon([(rx_, ry_ - smile), (mx, my - lip - gap / 2), (lx, ly - smile), (mx, my + lip + gap / 2)],
                     fill=(120, 45, 50))
        self._marker(draw, face("nose"), mk.TRUNK_HUE)

    def _draw_arm(self, draw: ImageDraw.ImageDraw, kin: dict, f: int, side: str) -> None:
        a = self.appearance
        joints = kin["joints"][f]
        J = body.joint_index
        shoulder, elbow, wrist = (self._px(joints[J(f"{side}_{p}")]) for p in ("shoulder", "elbow", "wrist"))
        sleeve = _shade(a.shirt, 0.85)
        upper_w, fore_w = int(self._metres(0.085)), int(self._metres(0.07))
        draw.line((shoulder, elbow), fill=sleeve, width=upper_w)
        self._marker(draw, shoulder, mk.TRUNK_HUE)
        self._disc(draw, elbow, upper_w / 2, sleeve)
        draw.line((elbow, wrist), fill=sleeve, width=fore_w)
        self._marker(draw, elbow, mk.ELBOW_HUES[side])
        # Palm: wrist, thumb base, index base, pinky base.
        palm = [wrist] + [self._px(joints[J(f"{side}_{n}1")]) for n in ("thumb", "index", "middle", "ring", "pinky")]
        draw.polygon(palm, fill=a.skin)
        self._marker(draw, wrist, mk.WRIST_HUES[side])
        for finger in ("thumb", "pinky", "ring", "middle", "index"):
            chain = [self._px(joints[J(f"{side}_{finger}{level}")]) for level in (1, 2, 3)]
            chain.append(self._px(kin["fingertips"][f"{side}_{finger}"][f]))
            draw.line(chain, fill=mk.hue_to_rgb(mk.FINGER_HUES[finger]), width=self.finger_width, joint="curve")
