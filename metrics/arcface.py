"""ArcFace face embeddings for CSIM (identity similarity), on onnxruntime with local ONNX files.

CSIM, as audio-driven portrait and body video papers report it, is the cosine similarity between
the ArcFace embedding (Deng et al., CVPR 2019) of the reference image's face and that of each
generated frame's face. The embedding network in use is insightface's recognition ONNX, e.g.
``w600k_r50.onnx`` of the ``buffalo_l`` pack (ResNet-50 trained on WebFace600K): input
``(N, 3, 112, 112)`` float32 RGB, output ``(N, 512)``. The insightface package downloads its
models and compiles extensions, so this module runs the ONNX file on onnxruntime directly (like
``metrics.pose.dwpose``), with the conventions of insightface's ``ArcFaceONNX`` and
``face_align.norm_crop`` (github.com/deepinsight/insightface, python-package/insightface):

- **Faces and landmarks**: the project's one face detector (``metrics.faces``, MTCNN by default)
  gives a box and five landmarks (left eye, right eye, nose tip, left and right mouth corner, left
  and right in the image), in the order of insightface's detector. The most confident face at or
  above the detector's default confidence is used; a frame without one has no embedding.
- **Alignment**: the least-squares similarity transform (rotation, uniform scale, translation; no
  reflection: Umeyama, IEEE TPAMI 1991) taking the five landmarks to the ArcFace template
  :data:`ARCFACE_TEMPLATE` (112 x 112 pixel coordinates; insightface's ``arcface_dst``), then
  ``cv2.warpAffine`` to 112 x 112, bilinear, black outside the frame.
- **Input**: RGB, ``(x - 127.5) / 127.5``, NCHW float32 (insightface's values for these models;
  models exported from MXNet that normalise inside the graph take mean 0 and std 1: pass
  ``input_mean=0, input_std=1``).
- **Similarity**: cosine of the two embeddings (each divided by its L2 norm), in [-1, 1].

Loading checks the file's size (at most ``MAX_ONNX_BYTES``) before onnxruntime reads it, and the
declared input (3 x 112 x 112) and a probe run's output (N x D); errors name the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from metrics.io.files import file_sha256

__all__ = ["ARCFACE_TEMPLATE", "ArcFace", "ArcFaceModelError", "FaceEmbedder", "align_face",
           "similarity_transform"]

INPUT_SIZE = 112
# The five landmark positions of an aligned 112 x 112 ArcFace crop (x, y in pixels), in the order
# left eye, right eye, nose tip, left mouth corner, right mouth corner (insightface arcface_dst).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
INPUT_MEAN = 127.5
INPUT_STD = 127.5
# w600k_r50.onnx is 174 MB and insightface's largest recognition model (glintr100) 261 MB.
MAX_ONNX_BYTES = 1 << 30

PREPROCESSING = ("the most confident face's 5 landmarks -> least-squares similarity transform to the ArcFace "
                 "112x112 template, cv2.warpAffine bilinear, black border; RGB (x - 127.5) / 127.5, NCHW")


class ArcFaceModelError(ValueError):
    """An ArcFace ONNX file that does not load, is not of the expected layout, or fails while running;
    the message names the file."""


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` matrix of the similarity transform (rotation, uniform scale, translation, no
    reflection) that maps the ``(K, 2)`` points ``source`` onto ``target`` with the least sum of
    squared errors (Umeyama 1991, the closed form from the SVD of the points' cross-covariance).

    Raises ``ValueError`` for mismatched shapes, fewer than 2 points or coincident source points.
    """
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (K >= 2, 2) point sets of one shape, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var <= 1e-12:
        raise ValueError("the source points coincide: no similarity transform")
    cross = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(cross)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:      # the best orthogonal map would reflect: flip the last axis
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((singular * sign).sum() / src_var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 crop of ``image`` (uint8 ``(H, W, 3)``) whose five ``landmarks``
    ``(5, 2)`` (x, y pixels, template order) land on :data:`ARCFACE_TEMPLATE` (scaled by
    ``size / 112``): the similarity transform of :func:`similarity_transform`, warped bilinearly,
    black outside the image."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"ArcFace alignment needs 5 landmarks (5, 2), got {points.shape}")
    matrix = similarity_transform(points, ARCFACE_TEMPLATE * (size / INPUT_SIZE))
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class ArcFace:
    """An ArcFace recognition ONNX on onnxruntime: aligned uint8 RGB crops ``(N, 112, 112, 3)`` ->
    float64 embeddings ``(N, D)`` (D = 512 for insightface's models), not normalised.

    ``path``: the local ``.onnx`` file (e.g. buffalo_l's ``w600k_r50.onnx``). ``input_mean`` /
    ``input_std``: the input normalisation (module docstring). ``threads``: onnxruntime's threads.
    Attributes: ``weights_id`` (``arcface:<sha12>``), ``dim``, ``path``. A model whose input is not
    ``(N, 3, 112, 112)``, or whose probe output is not ``(1, D)``, raises :class:`ArcFaceModelError`
    naming the file; ``FileNotFoundError`` for a missing file.
    """

    def __init__(self, path: str | os.PathLike, input_mean: float = INPUT_MEAN, input_std: float = INPUT_STD,
                 threads: int = 1, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ArcFace ONNX file not found: {self.path}")
        size = self.path.stat().st_size
        if size > MAX_ONNX_BYTES:
            raise ArcFaceModelError(f"{self.path}: refused: {size / 2**20:.0f} MiB, more than the "
                                    f"{MAX_ONNX_BYTES >> 20} MiB an ArcFace model may have")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.path), options,
                                                 providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a file it cannot read
            raise ArcFaceModelError(f"{self.path}: not a readable ONNX model ({str(error).splitlines()[0]})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or list(inputs[0].shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]:
            got = [tuple(i.shape) for i in inputs]
            raise ArcFaceModelError(f"{self.path}: an ArcFace model takes one (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) "
                                    f"input, this one takes {got}")
        self._input = inputs[0].name
        batch = inputs[0].shape[0]
        self._batch = batch if isinstance(batch, int) and batch > 0 else None     # None: any batch size
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        probe = self._run(np.zeros((self._batch or 1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))
        self.dim = int(probe.shape[1])
        self.weights_id = f"arcface:{file_sha256(self.path)[:12]}"

    def _run(self, crops: np.ndarray) -> np.ndarray:
        blob = ((crops.astype(np.float32) - self.input_mean) / self.input_std).transpose(0, 3, 1, 2)
        try:
            out = self._session.run(None, {self._input: np.ascontiguousarray(blob, dtype=np.float32)})[0]
        except Exception as error:  # noqa: BLE001 - any failure of the model: name the file
            raise ArcFaceModelError(f"{self.path}: the ArcFace model failed on input {blob.shape}: "
                                    f"{str(error).splitlines()[0]}") from None
        out = np.asarray(out)
        if out.ndim != 2 or out.shape[0] != len(crops):
            raise ArcFaceModelError(f"{self.path}: the ArcFace model returned {out.shape} for {len(crops)} faces, "
                                    "expected (faces, embedding size): is it a recognition model?")
        return out.astype(np.float64)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"ArcFace takes uint8 aligned crops (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), "
                             f"got {crops.dtype} {crops.shape}")
        if self._batch is None:
            return self._run(crops)
        out = []
        for start in range(0, len(crops), self._batch):
            part = crops[start:start + self._batch]
            padded = np.concatenate([part, np.zeros((self._batch - len(part),) + part.shape[1:], np.uint8)])
            out.append(self._run(padded)[:len(part)])
        return np.concatenate(out) if out else np.empty((0, self.dim))


class FaceEmbedder:
    """Face detection (the project's one detector), ArcFace alignment and embedding in one call.

    ``embed(image)``: uint8 RGB ``(H, W, 3)`` -> the ``(D,)`` embedding of its most confident face
    (confidence at least ``min_confidence``, default the detector's own), or None when it has none.
    ``detector``: a ``metrics.faces`` detector that gives landmarks (default: MTCNN,
    ``make_face_detector("mtcnn")``); one without landmarks raises ``ValueError``.
    """

    def __init__(self, arcface: ArcFace, detector=None, min_confidence: float | None = None) -> None:
        if detector is None:
            from metrics.faces import make_face_detector

            detector = make_face_detector("mtcnn")
        self.arcface = arcface
        self.detector = detector
        self.min_confidence = float(detector.default_confidence if min_confidence is None else min_confidence)

    def face_crop(self, image: np.ndarray) -> np.ndarray | None:
        """The aligned 112 x 112 crop of the image's most confident face, or None."""
        faces = [f for f in self.detector(image) if f.confidence >= self.min_confidence]
        if not faces:
            return None
        best = max(faces, key=lambda f: f.confidence)
        if best.landmarks is None:
            raise ValueError(f"the face detector {getattr(self.detector, 'name', '?')} gives no landmarks: "
                             "ArcFace alignment needs the five points (use mtcnn)")
        return align_face(image, np.asarray(best.landmarks))

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        crop = self.face_crop(image)
        return None if crop is None else self.arcface(crop[None])[0]

    def describe(self) -> dict:
        detector = self.detector.describe() if hasattr(self.detector, "describe") else {}
        return {"embedding": self.arcface.weights_id, "detector": detector, "min_confidence": self.min_confidence,
                "input": PREPROCESSING}
