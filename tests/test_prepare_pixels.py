"""``imac-bench data prepare`` shows its sources as a player does: square pixels (a source with a sample
aspect ratio, a camcorder's anamorphic 16:9, was cropped as stored, the face squeezed to 0.69 of its
width) and even sizes (an odd-sized source was taken for damaged). The reference is ffmpeg's own
``scale=iw*sar:ih``, run on the same file (found by a new-user trial)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.data.prepare.pipeline import prepare_dataset
from bench.data.prepare.sources import square_pixel_size
from metrics.io.video import probe_video, read_video, write_video
from tests.test_prepare_pipeline import FPS, _audio, _frames, _options, _portrait

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the sources and the reference")


def _ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True,
                   timeout=120)


@pytest.fixture(scope="module")
def portrait_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    return write_video(folder / "talk.mp4", _frames([((60, 20, 90), [100], 100)], _portrait()), FPS,
                       audio=_audio(100))


def _candidate(raw: Path, out: Path) -> Path:
    prepare_dataset(raw, out, _options(test_fraction=0.0), progress=False, log=lambda _: None)
    candidate, = (out / "prepare" / "grace" / "candidates").glob("*.mp4")
    return candidate


def test_square_pixel_size_is_ffmpegs_width_times_the_sample_aspect_ratio_made_even():
    assert square_pixel_size(352, 288, "16:11") == (512, 288)      # 352 x 16 / 11, the trial's camcorder
    assert square_pixel_size(720, 576, "64:45") == (1024, 576)     # PAL anamorphic 16:9
    assert square_pixel_size(351, 287, None) == (350, 286)
    assert square_pixel_size(64, 64, "0:1") == (64, 64)            # unknown: square


def test_an_anamorphic_source_is_widened_as_ffmpeg_shows_it(portrait_source, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    stored = raw / "anamorphic.mp4"          # 64x64 stored as 32x64 with pixels twice as wide as tall
    _ffmpeg("-i", str(portrait_source), "-vf", "scale=32:64,setsar=2/1", "-c:a", "copy", str(stored))
    assert (probe_video(stored).width, probe_video(stored).sample_aspect_ratio) == (32, "2:1")
    shown = tmp_path / "shown.mp4"           # what a player shows: ffmpeg's own widening
    _ffmpeg("-i", str(stored), "-vf", "scale=iw*sar:ih,setsar=1", "-an", str(shown))
    candidate = read_video(_candidate(raw, tmp_path / "dataset"))
    reference = read_video(shown)
    assert candidate.shape == reference.shape == (100, 64, 64, 3)
    # the two scalers and the two encodings differ by a few levels (1.97 when written)
    difference = np.abs(candidate.astype(float) - reference.astype(float)).mean()
    assert difference < 4.0, difference


def test_an_odd_sized_source_loses_its_last_column_and_row_not_its_clips(portrait_source, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _ffmpeg("-i", str(portrait_source), "-vf", "scale=63:63", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a",
            "copy", str(raw / "odd.mp4"))
    candidate = _candidate(raw, tmp_path / "dataset")
    assert (probe_video(candidate).width, probe_video(candidate).height) == (62, 62)
    np.testing.assert_allclose(read_video(candidate).mean(), read_video(raw / "odd.mp4")[:, :62, :62].mean(),
                               atol=2.0)


def test_a_mirrored_source_is_shown_as_ffmpeg_shows_it(portrait_source, tmp_path):
    # a display matrix that mirrors (-display_hflip: a selfie camera's) was read as half a turn, the
    # picture upside down, and the clip dropped for its face
    raw = tmp_path / "raw"
    raw.mkdir()
    mirrored_store = tmp_path / "mirrored.mp4"
    _ffmpeg("-i", str(portrait_source), "-vf", "hflip", "-c:a", "copy", str(mirrored_store))
    tagged = raw / "selfie.mp4"
    _ffmpeg("-display_hflip", "-i", str(mirrored_store), "-c", "copy", str(tagged))
    shown = tmp_path / "shown.mp4"
    _ffmpeg("-i", str(tagged), "-an", str(shown))      # ffmpeg applies the matrix as it decodes
    candidate = read_video(_candidate(raw, tmp_path / "dataset"))
    reference = read_video(shown)
    assert candidate.shape == reference.shape
    assert np.abs(candidate.astype(float) - reference.astype(float)).mean() < 4.0
    assert np.abs(candidate.astype(float) - reference[:, ::-1, ::-1].astype(float)).mean() > 10.0


@pytest.mark.parametrize("how", ["odd stored width widened by one", "ratio set by the container"])
def test_other_ways_to_store_non_square_pixels_are_shown_as_ffmpeg_shows_them(how, portrait_source, tmp_path):
    # 63x64 at 64:63 widens to 64x64, one column more than stored (it was cropped, then refused as odd);
    # a ratio in the Matroska header over a 1:1 bitstream is the one ffmpeg uses (it was read from the codec)
    raw = tmp_path / "raw"
    raw.mkdir()
    if how.startswith("odd"):
        stored = raw / "odd.mp4"
        _ffmpeg("-i", str(portrait_source), "-vf", "scale=63:64,setsar=64/63", "-c:v", "libx264", "-pix_fmt",
                "yuv444p", "-c:a", "copy", str(stored))
        size = (64, 64)
    else:
        stored = raw / "tagged.mkv"
        _ffmpeg("-i", str(portrait_source), "-c", "copy", "-aspect", "2:1", str(stored))
        size = (480, 240)          # 320x240 shown at 2:1
    shown = tmp_path / "shown.mp4"
    _ffmpeg("-i", str(stored), "-vf", "scale=iw*sar:ih,setsar=1", "-an", "-pix_fmt", "yuv420p", str(shown))
    reference = read_video(shown)
    assert reference.shape[1:3] == (size[1], size[0])
    candidate = read_video(_candidate(raw, tmp_path / "dataset"))
    assert candidate.shape == reference.shape
    assert np.abs(candidate.astype(float) - reference.astype(float)).mean() < 4.0


def test_square_pixel_size_refuses_a_ratio_no_camera_has():
    assert square_pixel_size(64, 64, "4:1") == (256, 64)
    assert square_pixel_size(64, 64, "1:4") == (16, 64)
    for ratio in ("16:1", "1:16", "65535:1"):
        with pytest.raises(ValueError, match=f"a sample aspect ratio of {ratio}"):
            square_pixel_size(1024, 1024, ratio)


def test_a_source_with_an_absurd_sample_aspect_ratio_is_named_not_widened(portrait_source, tmp_path):
    """A header's 16:1 widened a 1024 x 1024 video to 16384 x 1024 frames; now the source is listed as
    unreadable with the ratio, and the others are prepared."""
    raw = tmp_path / "raw"
    raw.mkdir()
    _ffmpeg("-i", str(portrait_source), "-vf", "setsar=16/1", "-c:a", "copy", str(raw / "wide.mp4"))
    shutil.copy(portrait_source, raw / "talk.mp4")
    summary = prepare_dataset(raw, tmp_path / "dataset", _options(test_fraction=0.0), progress=False,
                              log=lambda _: None)
    (source, error), = summary.unreadable
    assert source == "wide" and "a sample aspect ratio of 16:1" in error and "setsar=1" in error
    assert list((tmp_path / "dataset" / "prepare" / "grace" / "candidates").glob("talk*.mp4"))
