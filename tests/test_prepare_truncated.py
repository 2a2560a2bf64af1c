"""A source cut short (a copy that stopped, a download broken off) keeps the scenes before the cut.

The source is the pipeline tests' four-scene recording (14 s; scenes of 100, 50, 100 and 100 frames)
made faststart (its index first, then the packets), then cut. Before, any cut that reached the sound
made the whole source unreadable ("cannot decode the audio track"), and the video's break was told
as "the video ended at frame 212, before frame 212" (found by a new-user trial)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.data.prepare.pipeline import prepare_dataset
from metrics.io.video import write_video
from tests.test_prepare_pipeline import FPS, SCENES_A, _audio, _frames, _options, _portrait

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg makes the source faststart")


@pytest.fixture(scope="module")
def faststart(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("source")
    total = sum(count for _, _, count in SCENES_A)
    plain = write_video(folder / "talk.mp4", _frames(SCENES_A, _portrait()), FPS, audio=_audio(total))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(plain), "-c", "copy",
                    "-movflags", "+faststart", str(folder / "fast.mp4")], check=True, timeout=60)
    return (folder / "fast.mp4").read_bytes()


def _prepare_cut(faststart: bytes, fraction: float, tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "talk.mp4").write_bytes(faststart[:int(len(faststart) * fraction)])
    return prepare_dataset(raw, tmp_path / "out", _options(test_fraction=0.0), progress=False, log=lambda _: None)


def test_a_source_cut_inside_its_video_keeps_the_scenes_before_the_cut(faststart, tmp_path):
    summary = _prepare_cut(faststart, 0.7, tmp_path)
    (source, reason), = summary.unreadable
    # 215 of the 350 packets are left; the decoder gives 212 frames of them (it holds the last B-frames)
    assert (source, reason) == ("talk", "failed part-way (2 scene(s) before the error kept): the video decodes to "
                                "212 frames, fewer than its packets list (frame 212, counting from 0, is wanted): "
                                "it is cut short or damaged")
    assert [d.clip_id for d in summary.decisions] == ["talk_s000", "talk_s001"]
    assert summary.kept == 1                                         # scene 1 (scene 2 is 2 s, too short)


def test_a_source_whose_sound_breaks_off_keeps_its_scenes_and_says_where(faststart, tmp_path):
    summary = _prepare_cut(faststart, 0.97, tmp_path)
    assert summary.unreadable == []
    broken, = [w for w in summary.warnings if "the sound stops decoding" in w]
    seconds = float(broken.split("stops decoding at ")[1].split(" s")[0])
    assert 12.0 < seconds < 14.0 and "cut short or damaged" in broken
    assert [d.clip_id for d in summary.decisions] == ["talk_s000", "talk_s001", "talk_s002", "talk_s003"]
    assert summary.kept == 1
