"""benchmarks/model_size_controls.py: the controls sent along IMAC's frame path (model size, back to the clip's)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import model_size_controls  # noqa: E402

from metrics.io.video import read_video, write_video  # noqa: E402


def test_model_size_is_an_antialiased_bilinear_downscale_like_pil():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)     # wider than high: centre square
    small = model_size_controls.through_model_size(frames, 48)
    assert small.shape == (2, 48, 48, 3) and small.dtype == np.uint8
    for frame, got in zip(frames, small):
        square = frame[:, 16:112]
        expected = np.asarray(Image.fromarray(square).resize((48, 48), Image.BILINEAR), np.int16)
        assert np.abs(got.astype(np.int16) - expected).max() <= 1


def test_folders_get_the_clips_size_and_length(tmp_path):
    source, target = tmp_path / "static", tmp_path / "out"
    gray = np.full((7, 32, 32, 3), 120, np.uint8)
    write_video(source / "ana" / "ana_001.mp4", gray, 25)
    clip = SimpleNamespace(label="ana/ana_001", height=32, width=32, num_frames=9, fps=25)
    assert model_size_controls.write_folder(source, target, {clip.label: clip}, 16) == 1
    out = read_video(target / "ana" / "ana_001.mp4")
    assert out.shape == (9, 32, 32, 3)                  # resized back; the last frame repeated to the clip's length
    assert np.abs(out.astype(int) - 120).max() <= 2      # a uniform frame stays uniform (codec rounding)
    assert model_size_controls.write_folder(source, target, {clip.label: clip}, 16) == 0   # kept on a rerun
