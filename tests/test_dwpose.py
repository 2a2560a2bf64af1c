"""The DWPose pipeline: its maths against hand computations and direct references, and the whole
extractor on tiny fake ONNX models whose outputs are known.

The fake models are written as ONNX protobuf bytes by a minimal encoder below, so the tests need
neither the ``onnx`` package nor torch's exporter. Each fake output is a constant plus a mask
times one input pixel, ``out = base + mask * factor * input[:, c, y, x]``: the constant places the
detections or SimCC peaks, and the probed pixel checks what the pipeline fed the model (the
letterbox content and channel order for the detector, the crop, normalisation and channel order
for the pose model).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics.pose import dwpose as dw
from metrics.pose import wholebody as wb

# --------------------------------------------------------------------------- a minimal ONNX writer
# Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto,
# TypeProto, TensorShapeProto, OperatorSetIdProto).


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    """A protobuf field: an int as a varint, str / bytes (also sub-messages) length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    data_type = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()  # ONNX raw_data is little-endian
    return b"".join([_field(1, d) for d in array.shape] + [_field(2, data_type), _field(8, name), _field(9, raw)])


def _value_info(name: str, shape: tuple) -> bytes:
    dims = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in shape)
    tensor_type = _field(1, 1) + _field(2, dims)  # elem_type FLOAT, shape
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _node(op_type: str, inputs: list[str], outputs: list[str]) -> bytes:
    return b"".join([_field(1, i) for i in inputs] + [_field(2, o) for o in outputs] + [_field(4, op_type)])


def write_probe_model(path: Path, input_shape: tuple, outputs: list[dict]) -> Path:
    """An ONNX model with one input ``x`` and, per output spec, ``base + mask * factor * x[:, c, y, x]``.

    A spec has ``name``, ``base`` and ``mask`` (float32 arrays of the output's shape with batch 1),
    ``pixel`` (c, y, x), ``factor``, and optionally ``shape`` (the declared output shape).
    """
    nodes, initializers = [], [_tensor("axes", np.array([1, 2, 3], np.int64)),
                               _tensor("flat", np.array([-1, 1, 1], np.int64))]
    for k, spec in enumerate(outputs):
        c, y, x = spec["pixel"]
        initializers += [_tensor(f"starts{k}", np.array([c, y, x], np.int64)),
                         _tensor(f"ends{k}", np.array([c + 1, y + 1, x + 1], np.int64)),
                         _tensor(f"factor{k}", np.array(spec["factor"], np.float32)),
                         _tensor(f"mask{k}", spec["mask"].astype(np.float32)),
                         _tensor(f"base{k}", spec["base"].astype(np.float32))]
        nodes += [_node("Slice", ["x", f"starts{k}", f"ends{k}", "axes"], [f"pixel{k}"]),
                  _node("Reshape", [f"pixel{k}", "flat"], [f"probe{k}"]),
                  _node("Mul", [f"probe{k}", f"factor{k}"], [f"scaled{k}"]),
                  _node("Mul", [f"scaled{k}", f"mask{k}"], [f"masked{k}"]),
                  _node("Add", [f"masked{k}", f"base{k}"], [spec["name"]])]
    graph = b"".join([_field(1, n) for n in nodes] + [_field(2, "fake")]
                     + [_field(5, t) for t in initializers] + [_field(11, _value_info("x", input_shape))]
                     + [_field(12, _value_info(s["name"], s.get("shape", s["base"].shape))) for s in outputs])
    opset = _field(1, "") + _field(2, 13)
    path.write_bytes(_field(1, 8) + _field(2, "imac-bench tests") + _field(7, graph) + _field(8, opset))
    return path


# --------------------------------------------------------------------------- fake DWPose models

def anchor_index(stride: int, gx: int, gy: int) -> int:
    """Row of the YOLOX output for grid cell (gx, gy) of a stride (grids of 640 x 640, row by row)."""
    offset = {8: 0, 16: 80 * 80, 32: 80 * 80 + 40 * 40}[stride]
    return offset + gy * (640 // stride) + gx


# Image 400 wide x 200 high: letterbox ratio 1.6, resized to 640 x 320.
FRAME_H, FRAME_W = 200, 400
BLUE = (20, 200, 230)     # RGB: blue is high, so the BGR-fed detector's channel 0 probe reads 230
RED = (230, 200, 20)      # blue low: no detection, and the pose probe (blue) is negative
DET_PROBE = (0, 10, 10)   # detector reads channel 0 at letterbox pixel (10, 10), inside the image
A_BIG = anchor_index(32, 5, 3)      # the speaker: letterbox (112, 24, 240, 184) -> image (70, 15, 150, 115)
A_SMALL = anchor_index(8, 10, 10)   # most confident, small: (72, 72, 88, 88) -> (45, 45, 55, 55)
A_DUP = anchor_index(32, 6, 3)      # near-duplicate of the speaker, lower score: removed by NMS
A_WEAK = anchor_index(16, 30, 2)    # biggest box of all but score 0.2: under the threshold
BOX_BIG = (70.0, 15.0, 150.0, 115.0)
BOX_SMALL = (45.0, 45.0, 55.0, 55.0)


def detector_outputs(columns: int = 6, anchors: int = 8400) -> tuple[np.ndarray, np.ndarray]:
    base = np.zeros((1, anchors, columns), np.float32)
    mask = np.zeros_like(base)
    rows = {A_BIG: ([0.5, 0.25, math.log(4), math.log(5)], 1.0, 0.9),
            A_SMALL: ([0.0, 0.0, math.log(2), math.log(2)], 1.0, 0.95),
            A_DUP: ([-0.5, 0.25, math.log(4.2), math.log(5)], 0.9, 0.9),
            A_WEAK: ([0.0, 0.0, math.log(20), math.log(10)], 0.9, 0.25)}
    for row, (box, objectness, person) in rows.items():
        if row < anchors:
            base[0, row, :4] = box
            base[0, row, 5:6] = person
            mask[0, row, 4:5] = objectness  # objectness = mask * probe / 255
    return base, mask


POSE_PROBE = (2, 192, 144)  # the crop's centre pixel, blue channel after normalisation
POSE_PROBE_FACTOR = 0.25
PEAKS = {  # keypoint: (x bin, x value, y bin, y value); None = taken from the probe
    0: (288, None, 384, 0.9),
    1: (0, 0.7, 0, 0.6),
    2: (575, 0.3, 767, 0.8),
    3: (100, -0.1, 100, 0.9),   # a negative maximum: not found
    4: (10, 1.3, 20, 1.2),      # above 1: clipped
}


def pose_outputs(keypoints: int = 133) -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(0)
    base_x = np.full((1, keypoints, 576), 0.01, np.float32)
    base_y = np.full((1, keypoints, 768), 0.01, np.float32)
    mask_x = np.zeros_like(base_x)
    peaks = dict(PEAKS)
    for k in range(5, keypoints):
        peaks[k] = (int(rng.integers(576)), float(rng.uniform(0.05, 0.95)),
                    int(rng.integers(768)), float(rng.uniform(0.05, 0.95)))
    for k, (bx, vx, by, vy) in peaks.items():
        if k >= keypoints:
            continue
        if vx is not None and vx < 0:
            base_x[0, k] = -0.5
        if vx is None:  # the probe's value alone: below 0 (a red frame) means not found
            base_x[0, k] = -0.5
            base_x[0, k, bx] = 0.0
            mask_x[0, k, bx] = 1.0
        else:
            base_x[0, k, bx] = vx
        base_y[0, k, by] = vy
    x = {"name": "simcc_x", "base": base_x, "mask": mask_x, "pixel": POSE_PROBE, "factor": POSE_PROBE_FACTOR}
    y = {"name": "simcc_y", "base": base_y, "mask": np.zeros_like(base_y), "pixel": POSE_PROBE, "factor": 0.0}
    return x, y, peaks


def write_detector(path: Path, batch: str | int = "fixed", input_hw=(640, 640), columns=6, anchors=8400) -> Path:
    base, mask = detector_outputs(columns, anchors)
    b = {"fixed": 1, "dynamic": "N"}.get(batch, batch)
    return write_probe_model(path, (b, 3) + input_hw, [{
        "name": "output", "base": base, "mask": mask, "pixel": DET_PROBE, "factor": 1 / 255,
        "shape": (b, anchors, columns)}])


def write_pose(path: Path, batch: str | int = "fixed", keypoints=133, outputs=("x", "y")) -> Path:
    x, y, _ = pose_outputs(keypoints)
    b = {"fixed": 1, "dynamic": "N"}.get(batch, batch)
    specs = [{**{"x": x, "y": y}[o], "shape": (b,) + {"x": x, "y": y}[o]["base"].shape[1:]} for o in outputs]
    return write_probe_model(path, (b, 3, 384, 288), specs)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dwpose")
    return {"detector": write_detector(root / "det.onnx"), "pose": write_pose(root / "pose.onnx"),
            "detector_dyn": write_detector(root / "det_dyn.onnx", batch="dynamic"),
            "pose_dyn": write_pose(root / "pose_dyn.onnx", batch="dynamic"),
            "detector_2": write_detector(root / "det_2.onnx", batch=2),
            "pose_2": write_pose(root / "pose_2.onnx", batch=2)}


def frame(rgb, height=FRAME_H, width=FRAME_W) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def expected_keypoints(box, probe_value) -> np.ndarray:
    """The fake pose model's keypoints in the image, through the published formulas."""
    centre, scale = dw.box_to_centre_scale(np.array(box))
    _, _, peaks = pose_outputs()
    out = np.zeros((133, 3))
    for k, (bx, vx, by, vy) in peaks.items():
        vx = probe_value if vx is None else vx
        score = min(vx, vy)
        if score <= 0:
            continue
        out[k, 0] = bx / 2 / 288 * scale[0] + centre[0] - scale[0] / 2
        out[k, 1] = by / 2 / 384 * scale[1] + centre[1] - scale[1] / 2
        out[k, 2] = min(score, 1.0)
    return out


PROBE_BLUE = POSE_PROBE_FACTOR * (230 - 103.53) / 57.375  # 0.55107: blue 230, normalised
PROBE_RED = POSE_PROBE_FACTOR * (20 - 103.53) / 57.375    # -0.36396: blue 20


# --------------------------------------------------------------------------- the extractor end to end

def test_detector_box_through_letterbox_decoding_and_back_mapping(models):
    pose = dw.DWPose(models["detector"], models["pose"])
    boxes = pose.person_boxes(np.stack([frame(BLUE), frame(RED)]))
    # Hand computation for the speaker's anchor: stride 32, cell (5, 3), offsets (0.5, 0.25):
    # centre (5.5 * 32, 3.25 * 32) = (176, 104), size (4 * 32, 5 * 32) = (128, 160) in the
    # letterbox, i.e. (112, 24, 240, 184), divided by the ratio 640 / 400 = 1.6.
    np.testing.assert_allclose(boxes[0], BOX_BIG, atol=1e-4)
    # Red frame: blue is 20, every score is under 0.3, so the whole frame is the box.
    np.testing.assert_allclose(boxes[1], (0, 0, FRAME_W, FRAME_H))
    small = dw.DWPose(models["detector"], models["pose"], person="highest_score")
    np.testing.assert_allclose(small.person_boxes(frame(BLUE))[0], BOX_SMALL, atol=1e-4)


def test_a_pickled_extractor_opens_its_models_again_with_the_same_settings(models):
    # what a side-by-side training's worker process receives (bench.side_by_side): ONNX sessions do not pickle
    small = dw.DWPose(models["detector"], models["pose"], person="highest_score", batch_size=3)
    copy = pickle.loads(pickle.dumps(small))
    assert copy is not small and copy.extractor_id == small.extractor_id and copy.batch_size == 3
    np.testing.assert_allclose(copy.person_boxes(frame(BLUE))[0], BOX_SMALL, atol=1e-4)     # the hand-computed box


def test_detector_is_fed_bgr_unless_told_rgb(models):
    # The BLUE frame's red channel is 20: fed as RGB, the detector's channel-0 probe sees no person.
    rgb = dw.DWPose(models["detector"], models["pose"], detector_channel_order="rgb")
    np.testing.assert_allclose(rgb.person_boxes(frame(BLUE))[0], (0, 0, FRAME_W, FRAME_H))


def test_keypoints_of_the_fake_pose_model(models):
    keypoints = dw.DWPose(models["detector"], models["pose"])(np.stack([frame(BLUE), frame(RED)]))
    assert keypoints.shape == (2, 133, 3) and keypoints.dtype == np.float32
    speaker = keypoints[0]
    # Box (70, 15, 150, 115): centre (110, 65), scale (80, 100) * 1.25 = (100, 125), widened to
    # aspect 0.75: (100, 133.33). kp / (288, 384) * scale + centre - scale / 2:
    np.testing.assert_allclose(speaker[0], (110.0, 65.0, PROBE_BLUE), atol=1e-4)   # bins (288, 384)
    np.testing.assert_allclose(speaker[1], (60.0, -5 / 3, 0.6), atol=1e-4)         # bins (0, 0)
    np.testing.assert_allclose(speaker[2], (60 + 287.5 / 288 * 100, 383.5 / 384 * 400 / 3 - 5 / 3, 0.3), atol=1e-4)
    np.testing.assert_allclose(speaker[2, :2], (159.82639, 131.49306), atol=1e-4)
    np.testing.assert_array_equal(speaker[3], 0.0)                                  # negative maximum
    assert speaker[4, 2] == 1.0                                                     # 1.2 clipped
    np.testing.assert_allclose(speaker, expected_keypoints(BOX_BIG, PROBE_BLUE), atol=1e-3)
    # Red frame: whole-frame box (0, 0, 400, 200): centre (200, 100), scale (500, 666.67); the
    # probed blue channel normalises below 0, so keypoint 0 is absent.
    np.testing.assert_allclose(keypoints[1, 1], (-50.0, 100 - 1000 / 3, 0.6), atol=1e-4)
    np.testing.assert_array_equal(keypoints[1, 0], 0.0)
    np.testing.assert_allclose(keypoints[1], expected_keypoints((0, 0, FRAME_W, FRAME_H), PROBE_RED), atol=1e-3)


def test_pose_of_the_most_confident_person(models):
    keypoints = dw.DWPose(models["detector"], models["pose"], person="highest_score")(frame(BLUE))
    assert keypoints.shape == (1, 133, 3)
    np.testing.assert_allclose(keypoints[0, 0], (50.0, 50.0, PROBE_BLUE), atol=1e-4)
    np.testing.assert_allclose(keypoints[0], expected_keypoints(BOX_SMALL, PROBE_BLUE), atol=1e-3)


def test_dynamic_batch_models_give_the_same_keypoints(models):
    frames = np.stack([frame(BLUE), frame(RED), frame(BLUE)])
    fixed = dw.DWPose(models["detector"], models["pose"], batch_size=2)(frames)
    dynamic = dw.DWPose(models["detector_dyn"], models["pose_dyn"], batch_size=2)(frames)
    np.testing.assert_allclose(dynamic, fixed, atol=1e-5)
    # A fixed batch of 2 with 3 frames: the last call is padded and the padding dropped.
    fixed_two = dw.DWPose(models["detector_2"], models["pose_2"], batch_size=3)(frames)
    np.testing.assert_allclose(fixed_two, fixed, atol=1e-5)
    np.testing.assert_allclose(fixed[2], fixed[0])
    assert dw.DWPose(models["detector"], models["pose"])(frames[:0]).shape == (0, 133, 3)


# --------------------------------------------------------------------------- errors and identity

def test_missing_model_paths_are_named(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="detector.*nowhere_det.onnx"):
        dw.DWPose(tmp_path / "nowhere_det.onnx", models["pose"])
    with pytest.raises(FileNotFoundError, match="pose.*nowhere_pose.onnx"):
        dw.DWPose(models["detector"], tmp_path / "nowhere_pose.onnx")


def test_models_of_the_wrong_shape_are_refused(models, tmp_path):
    cases = [
        (write_detector(tmp_path / "det320.onnx", input_hw=(320, 320), anchors=2100), models["pose"],
         r"det320.onnx.*\(1, 3, 640, 640\)"),
        (write_detector(tmp_path / "det_boxes_only.onnx", columns=5), models["pose"], r"det_boxes_only.onnx.*8400"),
        (models["detector"], write_pose(tmp_path / "pose_one.onnx", outputs=("x",)), r"pose_one.onnx.*two SimCC"),
        (models["detector"], write_pose(tmp_path / "pose17.onnx", keypoints=17), r"pose17.onnx.*simcc_x.*133"),
    ]
    for detector, pose, message in cases:
        with pytest.raises(ValueError, match=message):
            dw.DWPose(detector, pose)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="garbage.onnx"):
        dw.DWPose(models["detector"], garbage)


def test_bad_frames_and_settings_are_refused(models):
    pose = dw.DWPose(models["detector"], models["pose"])
    for bad in (np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                np.zeros((1, 2, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 4), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            pose(bad)
    with pytest.raises(ValueError, match="person"):
        dw.DWPose(models["detector"], models["pose"], person="first")
    with pytest.raises(ValueError, match="channel"):
        dw.DWPose(models["detector"], models["pose"], detector_channel_order="hsv")


def test_extractor_id_follows_the_weights_and_settings(models, tmp_path):
    detector = tmp_path / "det.onnx"
    detector.write_bytes(models["detector"].read_bytes())
    pose = write_pose(tmp_path / "pose.onnx")
    first = dw.DWPose(detector, pose).extractor_id
    digest = hashlib.sha256(detector.read_bytes() + pose.read_bytes()).hexdigest()[:12]
    assert first == f"dwpose-onnx-v1:{digest}"
    # Other weights (here the pose model with one peak moved) give another id.
    x, y, _ = pose_outputs()
    x["base"][0, 1] = np.roll(x["base"][0, 1], 5)
    write_probe_model(pose, (1, 3, 384, 288), [x, y])
    second = dw.DWPose(detector, pose).extractor_id
    assert second != first and second.startswith("dwpose-onnx-v1:")
    # A setting that changes the keypoints is named in the id.
    assert dw.DWPose(detector, pose, person="highest_score").extractor_id == second + "+person=highest_score"
    assert dw.DWPose(detector, pose, batch_size=3, providers=["CPUExecutionProvider"]).extractor_id == second


# --------------------------------------------------------------------------- pure functions

def test_letterbox_landscape_and_portrait():
    landscape = frame((10, 20, 30), height=360, width=1280)
    padded, ratio = dw.letterbox(landscape)
    assert ratio == 0.5 and padded.shape == (640, 640, 3) and padded.dtype == np.uint8
    assert (padded[:180] == (10, 20, 30)).all() and (padded[180:] == 114).all()

    portrait = np.random.default_rng(1).integers(0, 256, (480, 320, 3), dtype=np.uint8)
    padded, ratio = dw.letterbox(portrait)
    assert ratio == pytest.approx(4 / 3)
    # int(320 * 4/3) = 426 columns of image, then padding; all 640 rows are image.
    assert (padded[:, 426:] == 114).all() and not (padded[:, 425] == 114).all()
    # Enlarging, cv2's INTER_LINEAR and PIL's bilinear agree: compare with PIL in float.
    for c in range(3):
        reference = np.asarray(Image.fromarray(portrait[..., c].astype(np.float32), mode="F")
                               .resize((426, 640), Image.BILINEAR))
        assert np.abs(padded[:, :426, c].astype(np.float32) - reference).max() <= 0.5 + 1e-3


def test_resize_shrinking_follows_cv2_not_pil():
    # Halving with half-pixel centres samples between each pair of pixels: their mean, no wider filter.
    image = np.arange(4 * 8, dtype=np.float32).reshape(4, 8, 1) ** 1.5
    half = dw.resize_bilinear(image, 4, 2)[..., 0]
    pairs = image[..., 0].reshape(2, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(half, pairs, rtol=1e-6)
    # Shrinking 3 -> 2: positions (0 + 0.5) * 1.5 - 0.5 = 0.25 and 1.75.
    row = np.array([[[0.0], [10.0], [40.0]]], np.float32)
    np.testing.assert_allclose(dw.resize_bilinear(row, 2, 1)[0, :, 0], [2.5, 32.5])


def test_centre_and_scale_with_padding_and_aspect():
    centre, scale = dw.box_to_centre_scale(np.array([10, 20, 110, 220]))
    np.testing.assert_allclose(centre, (60, 120))
    np.testing.assert_allclose(scale, (187.5, 250))          # (125, 250): too narrow, widened to 0.75
    centre, scale = dw.box_to_centre_scale(np.array([0, 0, 200, 100]))
    np.testing.assert_allclose(centre, (100, 50))
    np.testing.assert_allclose(scale, (250, 1000 / 3))        # (250, 125): too low, heightened
    _, scale = dw.box_to_centre_scale(np.array([0, 0, 200, 100]), aspect_ratio=None)
    np.testing.assert_allclose(scale, (250, 125))


def _three_point_warp(centre, scale, output_size):
    """mmpose's get_warp_matrix (no rotation): three point pairs, solved for the affine map."""
    w, h = output_size
    src = np.array([centre, centre + (0, -scale[0] / 2), centre + (-scale[0] / 2, -scale[0] / 2)])
    dst = np.array([(w / 2, h / 2), (w / 2, h / 2 - w / 2), (0, h / 2 - w / 2)])
    return np.linalg.solve(np.hstack([src, np.ones((3, 1))]), dst).T


def test_affine_matrix_maps_the_region_onto_the_model_input():
    for box in ([10, 20, 110, 220], [0, 0, 200, 100], [-5.5, 3.25, 40.0, 17.0]):
        centre, scale = dw.box_to_centre_scale(np.array(box, float))
        matrix = dw.affine_matrix(centre, scale, (288, 384))
        np.testing.assert_allclose(matrix, _three_point_warp(centre, scale, (288, 384)), atol=1e-9)
        corners = np.array([[*(centre - scale / 2), 1.0], [*(centre + scale / 2), 1.0]])
        np.testing.assert_allclose(corners @ matrix.T, [[0, 0], [288, 384]], atol=1e-9)
        # keypoints_to_image is its inverse.
        points = np.array([[0.0, 0.0], [144.0, 192.0], [287.5, 383.5]])
        back = dw.keypoints_to_image(points, centre, scale)
        np.testing.assert_allclose(np.hstack([back, np.ones((3, 1))]) @ matrix.T, points, atol=1e-9)


def test_warp_affine_against_a_pixel_loop():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 255, (7, 9, 3)).astype(np.float32)
    matrix = dw.affine_matrix(np.array([6.3, 2.2]), np.array([7.0, 9.0]), (6, 8))  # partly outside
    out = dw.warp_affine(image, matrix, (6, 8))
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    reference = np.zeros((8, 6, 3))
    for y in range(8):
        for x in range(6):
            sx, sy, _ = inverse @ (x, y, 1)
            x0, y0 = math.floor(sx), math.floor(sy)
            for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                    if 0 <= yy < 7 and 0 <= xx < 9:
                        reference[y, x] += wy * wx * image[yy, xx]
    np.testing.assert_allclose(out, reference, atol=1e-3)


def _brute_force_nms(boxes, scores, threshold, offset):
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + offset)
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + offset)
        area = lambda r: (r[2] - r[0] + offset) * (r[3] - r[1] + offset)  # noqa: E731
        return iw * ih / (area(a) + area(b) - iw * ih)
    kept = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def test_nms_against_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        xy = rng.uniform(0, 100, (n, 2))
        boxes = np.hstack([xy, xy + rng.uniform(2, 40, (n, 2))])
        scores = rng.uniform(0, 1, n)
        for threshold in (0.1, 0.45, 0.7):
            for offset in (1.0, 0.0):
                kept = dw.nms(boxes, scores, threshold, pixel_offset=offset)
                assert kept.tolist() == _brute_force_nms(boxes, scores, threshold, offset)
    assert dw.nms(np.zeros((0, 4)), np.zeros(0), 0.45).tolist() == []


def test_decode_yolox_by_hand():
    prediction = np.zeros((8400, 7))
    prediction[anchor_index(16, 3, 7)] = [0.25, -0.5, math.log(3), 0.0, 0.8, 0.5, 0.9]
    boxes, scores = dw.decode_yolox(prediction)
    assert boxes.shape == (8400, 4) and scores.shape == (8400, 2)
    # centre ((0.25 + 3) * 16, (-0.5 + 7) * 16) = (52, 104), size (48, 16)
    np.testing.assert_allclose(boxes[anchor_index(16, 3, 7)], (28, 96, 76, 112))
    np.testing.assert_allclose(scores[anchor_index(16, 3, 7)], (0.4, 0.72))
    np.testing.assert_allclose(boxes[0], (-4, -4, 4, 4))  # cell (0, 0) of stride 8, zero offsets
    np.testing.assert_allclose(boxes[8399], (592, 592, 624, 624))  # cell (19, 19) of stride 32
    with pytest.raises(ValueError, match="8400"):
        dw.decode_yolox(np.zeros((100, 6)))


def test_person_detection_and_whole_image_fallback():
    prediction = np.zeros((8400, 7))
    prediction[anchor_index(8, 2, 2), :4] = [0, 0, 1, 1]
    prediction[anchor_index(8, 2, 2), 4:] = [1.0, 0.1, 0.9]  # a confident non-person (class 1)
    boxes, scores = dw.detect_persons(prediction, ratio=2.0)
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    np.testing.assert_allclose(dw.select_person(boxes, scores, (480, 640)), (0, 0, 640, 480))
    prediction[anchor_index(8, 2, 2), 4:] = [1.0, 0.9, 0.1]
    boxes, scores = dw.detect_persons(prediction, ratio=2.0)
    centre, size = 2 * 8 / 2, math.e * 8 / 2  # cell (2, 2) of stride 8, size e cells; ratio 2
    np.testing.assert_allclose(boxes, [[centre - size / 2, centre - size / 2, centre + size / 2, centre + size / 2]])
    np.testing.assert_allclose(scores, [0.9])


def test_select_person_rules():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 50, 20], [5, 5, 20, 20]], float)
    scores = np.array([0.9, 0.5, 0.95])
    np.testing.assert_array_equal(dw.select_person(boxes, scores, (100, 100)), boxes[1])
    np.testing.assert_array_equal(dw.select_person(boxes, scores, (100, 100), "highest_score"), boxes[2])


def test_decode_simcc_by_hand():
    simcc_x = np.full((1, 3, 8), 0.1)
    simcc_y = np.full((1, 3, 6), 0.1)
    simcc_x[0, 0, 5], simcc_y[0, 0, 2] = 0.9, 0.7   # score min(0.9, 0.7)
    simcc_x[0, 1, 0], simcc_y[0, 1, 5] = 0.4, 0.8
    simcc_x[0, 2], simcc_y[0, 2] = -0.3, 0.5        # max x below 0: location -1
    points, scores = dw.decode_simcc(simcc_x, simcc_y)
    np.testing.assert_allclose(points[0], [[2.5, 1.0], [0.0, 2.5], [-0.5, -0.5]])
    np.testing.assert_allclose(scores[0], [0.7, 0.4, -0.3])


def test_keypoints_to_image_by_hand():
    points = np.array([[[144.0, 192.0], [0.0, 0.0]], [[288.0, 384.0], [72.0, 96.0]]])
    centre = np.array([[110.0, 65.0], [0.0, 0.0]])
    scale = np.array([[100.0, 400 / 3], [288.0, 384.0]])
    np.testing.assert_allclose(dw.keypoints_to_image(points, centre, scale),
                               [[[110, 65], [60, 65 - 200 / 3]], [[144, 192], [-72, -96]]])


def test_layout_constants_match_the_wholebody_module():
    assert wb.NUM_KEYPOINTS == 133 and dw.POSE_INPUT_SIZE == (288, 384)
