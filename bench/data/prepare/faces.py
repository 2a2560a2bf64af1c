"""Frontal-face detection on sampled frames: the face filter and the face-count speaker fallback.

Two detectors, both taking their model from a local file, none downloaded:

- ``opencv-cascade`` (the default): OpenCV's Haar cascade ``haarcascade_frontalface_default.xml``,
  which ships inside the opencv-python 4.x wheel (``cv2.data.haarcascades``; the 5.0 wheels no longer
  carry it, hence the ``<5`` pin). It finds frontal faces only, which is what the filter wants: a
  side face is not found. Its confidence is the cascade's final-stage weight
  (``detectMultiScale3(..., outputRejectLevels=True)``), an unbounded score: about 4 to 6 for a
  clear frontal face at 100 px and more, which is why the default threshold is 3.
- ``mediapipe``: MediaPipe's BlazeFace through the Tasks API, the paper's choice. The MediaPipe
  wheels of 2026 (1.2.x) carry no model, and the last ones that did (0.10.21) need numpy < 2,
  so it takes ``--face-model blaze_face_short_range.tflite`` (a local file) and needs
  ``pip install mediapipe`` in the environment. Its confidence is a probability (threshold 0.5).
  MediaPipe requires opencv-contrib-python, which shares the ``cv2`` folder with this project's
  opencv-python: install it in an environment of its own or accept that the last install wins.
  Checked by hand (mediapipe 1.2.3, numpy 2.4, with the ``face_detection_short_range.tflite`` that
  the 0.10.21 wheel carried): the test portrait is found at confidence 0.80.

A clip is measured once (faces on frames sampled at ``samples_per_second``, at most
``max_samples``); the decisions are re-made from those measurements on every run, so changing a
threshold never needs the video decoded again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

DETECTORS = ("opencv-cascade", "mediapipe")
DEFAULT_CONFIDENCE = {"opencv-cascade": 3.0, "mediapipe": 0.5}
CASCADE_FILE = "haarcascade_frontalface_default.xml"
# MediaPipe faces below this confidence are not kept in the measurements (at 0 it returns dozens
# of overlapping guesses per frame); a --face-confidence below it would see none of them.
MEDIAPIPE_KEPT_CONFIDENCE = 0.1


@dataclass(frozen=True)
class Face:
    """One detected face: its box in pixels of the frame it was found in, and the confidence."""

    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float

    def to_list(self) -> list[float]:
        return [round(float(v), 3) for v in (self.x0, self.y0, self.x1, self.y1, self.confidence)]

    @classmethod
    def from_list(cls, values: list[float]) -> Face:
        return cls(*map(float, values))


class FaceDetector(Protocol):
    name: str
    default_confidence: float

    def __call__(self, frame: np.ndarray) -> list[Face]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def sample_frame_indices(num_frames: int, fps: float, samples_per_second: float = 2.0,
                         max_samples: int = 24) -> list[int]:
    """Evenly spaced frame indices inside a clip of ``num_frames``: the frames the faces are looked for in.

    ``samples_per_second`` of video, at most ``max_samples``, at least one; each sample sits in the
    middle of its stretch of the clip, so the first and last frames (near a scene cut, where a
    fade may linger) are not favoured.
    """
    if num_frames <= 0:
        raise ValueError(f"a clip needs frames, got num_frames={num_frames}")
    count = int(np.clip(round(num_frames / fps * samples_per_second), 1, max(1, max_samples)))
    count = min(count, num_frames)
    return sorted({int((k + 0.5) * num_frames / count) for k in range(count)})


class CascadeFaceDetector:
    """OpenCV's frontal-face Haar cascade, from the file inside the installed opencv-python wheel."""

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
        self._cv2 = cv2
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.min_neighbours = int(min_neighbours)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        gray = self._cv2.cvtColor(np.ascontiguousarray(frame), self._cv2.COLOR_RGB2GRAY)
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
    """MediaPipe BlazeFace (Tasks API) from a local ``.tflite`` model file."""

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
                              "pip install mediapipe, or use --face-detector opencv-cascade") from None
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


def make_face_detector(name: str, model: str | os.PathLike | None = None,
                       min_face_fraction: float = 0.05) -> FaceDetector:
    """The detector called ``name`` (one of ``DETECTORS``)."""
    if name == "opencv-cascade":
        return CascadeFaceDetector(model, min_face_fraction=min_face_fraction)
    if name == "mediapipe":
        return MediaPipeFaceDetector(model, min_face_fraction=min_face_fraction)
    raise ValueError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")


# -- decisions from the measured faces ------------------------------------------------------------


def confident_face_counts(samples: list[list[Face]], threshold: float) -> list[int]:
    """Per sampled frame, how many faces reach ``threshold``."""
    return [sum(face.confidence >= threshold for face in faces) for faces in samples]


def frontal_face_fraction(samples: list[list[Face]], threshold: float) -> float:
    """Fraction of the sampled frames showing at least one face with confidence >= ``threshold``."""
    if not samples:
        return 0.0
    return float(np.mean([count >= 1 for count in confident_face_counts(samples, threshold)]))


def several_faces_fraction(samples: list[list[Face]], threshold: float) -> float:
    """Fraction of the sampled frames showing two or more faces with confidence >= ``threshold``."""
    if not samples:
        return 0.0
    return float(np.mean([count >= 2 for count in confident_face_counts(samples, threshold)]))
