"""``bench.report.frame_strip``: the picked frames of each method's video, as decoded, one row each; large
frames shrunk to ``STRIP_TILE_HEIGHT`` (it once decoded every frame of every video at full size to draw six)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image

from bench.report import STRIP_TILE_HEIGHT, frame_strip
from metrics.io.video import read_video, write_video

LABEL_WIDTH = 150


def _run(tmp_path, sizes: dict[str, tuple[int, int]], frames: int = 20):
    rng = np.random.default_rng(0)
    for name, (height, width) in sizes.items():
        base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        video = np.stack([np.roll(np.kron(base, np.ones((8, 8, 1), np.uint8)), 4 * t, axis=1) for t in range(frames)])
        path = tmp_path / name / "ines" / "ines_000.mp4"
        path.parent.mkdir(parents=True)
        write_video(path, video, 25)
    results = SimpleNamespace(methods={name: SimpleNamespace(label=name.upper(), kind="model") for name in sizes})
    return results


def test_small_frames_are_drawn_as_decoded(tmp_path):
    results = _run(tmp_path, {"gt": (64, 96), "imac": (64, 96)})
    sheet = np.asarray(Image.open(frame_strip(tmp_path, results, "ines/ines_000", tmp_path / "s.png", count=4)))
    picks = [0, 6, 13, 19]                          # np.linspace(0, 19, 4) rounded
    for k, name in enumerate(("gt", "imac")):
        decoded = read_video(tmp_path / name / "ines" / "ines_000.mp4")
        expected = np.concatenate([decoded[i] for i in picks], axis=1)
        assert np.array_equal(sheet[64 * k : 64 * (k + 1), LABEL_WIDTH:], expected)


def test_large_frames_are_shrunk_and_rows_share_one_height(tmp_path):
    results = _run(tmp_path, {"gt": (512, 384), "imac": (128, 96)}, frames=8)
    sheet = np.asarray(Image.open(frame_strip(tmp_path, results, "ines/ines_000", tmp_path / "s.png", count=2)))
    height = STRIP_TILE_HEIGHT
    assert sheet.shape[0] == 2 * height
    big = read_video(tmp_path / "gt" / "ines" / "ines_000.mp4")
    expected = np.concatenate([cv2.resize(big[i], (192, height), interpolation=cv2.INTER_AREA) for i in (0, 7)], axis=1)
    assert np.array_equal(sheet[:height, LABEL_WIDTH : LABEL_WIDTH + 384], expected)
    small = read_video(tmp_path / "imac" / "ines" / "ines_000.mp4")
    enlarged = cv2.resize(small[7], (192, height), interpolation=cv2.INTER_AREA)
    assert np.array_equal(sheet[height:, LABEL_WIDTH + 192 : LABEL_WIDTH + 384], enlarged)
