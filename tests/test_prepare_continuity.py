"""The person's continuity between consecutive frames (``bench.data.prepare.continuity``): keypoints
or masks in which the person jumps (a cut the scene split missed, a tracker that changed person)
drop the clip, named with the frame. Every expected frame is where the test put the jump."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from bench.data.prepare.continuity import box_jumps, keypoint_jumps, mask_boxes
from bench.data.prepare.pipeline import PrepareOptions, prepare_dataset
from metrics.io.video import write_video

FPS = 25


def person_keypoints(frames: int, x_of, hand_swing: float = 0.0, seed: int = 0) -> np.ndarray:
    """COCO-WholeBody-shaped keypoints (F, 133, 3) of a person 200 pixels tall standing at ``x_of(frame)``:
    a fixed random layout of the 133 points, the right hand's 21 points (112..132) swinging
    ``hand_swing`` pixels from one frame to the next (a fast gesture), and 10 points never confident
    (score 0) that wander anywhere."""
    rng = np.random.default_rng(seed)
    layout = rng.uniform([-50, 0], [50, 200], (133, 2))
    keypoints = np.zeros((frames, 133, 3))
    for frame in range(frames):
        keypoints[frame, :, :2] = layout + [x_of(frame), 20]
        keypoints[frame, 112:, 0] += hand_swing * (frame % 2)
        keypoints[frame, :, 2] = 0.9
    lost = rng.choice(112, 10, replace=False)
    keypoints[:, lost, :2] = rng.uniform(0, 1000, (frames, 10, 2))
    keypoints[:, lost, 2] = 0.0
    return keypoints


def test_a_drifting_person_with_fast_gestures_has_no_jump():
    keypoints = person_keypoints(80, lambda f: 100 + 1.0 * f, hand_swing=30)
    assert keypoint_jumps(keypoints) == []


def test_a_jump_of_the_person_is_found_at_its_frame():
    # 40 pixels (a fifth of the person) between frames 36 and 37, on top of the drift and the gestures
    keypoints = person_keypoints(80, lambda f: 100 + f + (40 if f >= 37 else 0), hand_swing=30)
    (jump,) = keypoint_jumps(keypoints)
    assert jump.frame == 37 and jump.what == "keypoints"
    assert jump.amount == pytest.approx(41 / 200, abs=0.02)      # the drift's pixel included; size ~ 200
    assert "between frames 36 and 37" in jump.describe()


def test_a_tracker_that_changes_person_is_found_at_its_frame():
    one, other = person_keypoints(80, lambda f: 100 + f, seed=1), person_keypoints(80, lambda f: 400 - f, seed=2)
    swapped = np.concatenate([one[:60], other[60:]])
    assert [jump.frame for jump in keypoint_jumps(swapped)] == [60]


def test_frames_where_few_points_are_confident_do_not_shrink_the_person():
    # six points (an eye's, within 8 pixels) move with the person; on frames 20-21 only they are
    # confident and they jitter 3 pixels: that is 3 / 200 of the person, not 3 / 8 of the eye
    keypoints = person_keypoints(40, lambda f: 100 + f)
    eye = np.arange(60, 66)
    keypoints[:, eye, :2] = np.array([[100 + f, 60] for f in range(40)])[:, None] \
        + np.random.default_rng(3).uniform(0, 8, (6, 2))
    keypoints[20:22, :, 2] = 0.0
    keypoints[20:22, eye, 2] = 0.9
    keypoints[21, eye, 0] += 3
    assert keypoint_jumps(keypoints) == []


def test_frames_without_enough_confident_points_are_not_compared():
    keypoints = person_keypoints(20, lambda f: 100 + (300 if f >= 10 else 0))
    keypoints[10, :, 2] = 0.0                      # the person is lost on the frame after the jump
    keypoints[9, 5:, 2] = 0.0                      # and only 5 points are confident on the frame before
    assert [jump.frame for jump in keypoint_jumps(keypoints)] == []
    keypoints[9, 5:, 2] = 0.9
    keypoints[11:, :, 2] = 0.9
    assert [jump.frame for jump in keypoint_jumps(keypoints)] == []    # 9 -> 10 lost, 10 -> 11 lost
    keypoints[10, :, 2] = 0.9
    assert [jump.frame for jump in keypoint_jumps(keypoints)] == [10]


def test_box_jumps_and_size_changes():
    boxes = np.array([[100 + f, 50, 200 + f, 250] for f in range(40)], dtype=float)   # 100 x 200, drifting
    boxes[25:, [0, 2]] += 30                                                           # a 30-pixel jump at 25
    boxes[33:] = [[boxes[32, 0] - 50, -50, boxes[32, 2] + 50, 350]] * 7               # a zoom about the centre: 2x
    boxes[12] = np.nan                                                                 # no box on frame 12
    jumps = box_jumps(boxes)
    assert [(jump.frame, jump.what) for jump in jumps] == [(25, "box"), (33, "size")]
    assert jumps[0].amount == pytest.approx(31 / 200)
    assert jumps[1].amount == pytest.approx(2.0)


def test_mask_boxes_by_hand():
    masks = np.zeros((3, 10, 12), bool)
    masks[0, 2:5, 3:7] = True
    masks[2, 9, 11] = True
    boxes = mask_boxes(list(masks))
    np.testing.assert_array_equal(boxes[0], [3, 2, 7, 5])
    assert np.isnan(boxes[1]).all()
    np.testing.assert_array_equal(boxes[2], [11, 9, 12, 10])


# -- in the pipeline ---------------------------------------------------------------------------------

FRAMES, JUMP = 100, 60
FACE_W, FACE_H, TOP = 110, 129, 50


def _x(frame: int) -> int:
    return 40 + frame // 2         # the portrait drifts half a pixel per frame: no cut in the picture


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    image = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    portrait = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (FACE_W, FACE_H), interpolation=cv2.INTER_AREA)

    def frames():
        for frame in range(FRAMES):
            picture = np.full((240, 320, 3), (70, 90, 110), np.uint8)
            picture[TOP:TOP + FACE_H, _x(frame):_x(frame) + FACE_W] = portrait
            yield picture

    folder = tmp_path_factory.mktemp("raw")
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(FRAMES * 16000 // FPS) / 16000)
    write_video(folder / "talk.mp4", frames(), FPS, audio=tone.astype(np.float32), crf=12)
    return folder


def _dropped(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "prepare" / "grace" / "dropped.csv", newline="") as f:
        return {row["clip_id"]: (row["stage"], row["reason"]) for row in csv.DictReader(f)}


def test_prepare_drops_a_clip_whose_keypoints_or_masks_jump_and_names_the_frame(raw_dir, tmp_path):
    out = tmp_path / "out"
    keypoints_dir, masks_dir = tmp_path / "keypoints", tmp_path / "masks"
    keypoints_dir.mkdir()
    masks_dir.mkdir()
    # keypoints over the portrait, until a tracker follows someone 150 pixels to the right from frame JUMP
    keypoints = person_keypoints(FRAMES, lambda f: _x(f) + FACE_W / 2 + (150 if f >= JUMP else 0)).astype(np.float32)
    np.savez(keypoints_dir / "talk_s000.npz", keypoints=keypoints)
    options = dict(identity="grace", size=64, min_seconds=2.0, keypoints=str(keypoints_dir))
    summary = prepare_dataset(raw_dir, out, PrepareOptions(**options), progress=False, log=lambda _: None)
    assert summary.scenes == 1 and summary.kept == 0 and summary.person_jumps == [("talk_s000", JUMP)]
    stage, reason = _dropped(out)["talk_s000"]
    assert stage == "continuity"
    assert reason.startswith("talk_s000: the person jumps between frames 59 and 60 (median keypoint")
    report = (out / "prepare" / "grace" / "report.md").read_text()
    assert "1 clip(s) dropped where the person jumps by more than 0.1 of its size (`talk_s000` at frame 60)" in report
    # the check turned off: the same clip is kept and cropped
    summary = prepare_dataset(raw_dir, out, PrepareOptions(**options, max_person_jump=0), progress=False,
                              log=lambda _: None)
    assert summary.kept == 1 and summary.person_jumps == []
    assert "person continuity: not checked" in (out / "prepare" / "grace" / "report.md").read_text()
    # masks (which come first) whose person box jumps 80 pixels at frame 41
    masks = np.zeros((FRAMES, 240, 320), bool)
    for frame in range(FRAMES):
        x = _x(frame) + (80 if frame >= 41 else 0)
        masks[frame, TOP:TOP + 180, x:x + FACE_W] = True
    np.savez_compressed(masks_dir / "talk_s000.npz", masks=masks)
    summary = prepare_dataset(raw_dir, out, PrepareOptions(**options, masks=str(masks_dir)), progress=False,
                              log=lambda _: None)
    assert summary.person_jumps == [("talk_s000", 41)]
    assert _dropped(out)["talk_s000"][1].startswith("talk_s000: the person jumps between frames 40 and 41 (box centre")
