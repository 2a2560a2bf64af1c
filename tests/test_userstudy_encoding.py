"""Re-encoding a study's videos at one constant bitrate: sizes stop telling methods apart."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from userstudy.encoding import EncodingError, reencode_constant_bitrate
from userstudy.make_study import main as make_study_main

FRAMES, SIDE, RATE = 25, 64, 16000


def write_clip(path: Path, content: str) -> None:
    """One second at 25 fps with a 220 Hz tone: random noise (costly to encode) or a slow flat fade (cheap)."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=RATE)
        for i in range(FRAMES):
            image = (rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) if content == "noise"
                     else np.full((SIDE, SIDE, 3), 100 + i, np.uint8))
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(RATE) / RATE)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*audio.encode(frame), *audio.encode()]:
            container.mux(packet)


def streams(path: Path) -> tuple[int, int, str | None]:
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        audio = container.streams.audio[0] if container.streams.audio else None
        return frames, audio.rate if audio else 0, container.streams.video[0].codec_context.name


def test_constant_bitrate_makes_sizes_equal_and_keeps_frames_and_sound(tmp_path, caplog):
    for method, content in (("busy", "noise"), ("calm", "flat")):
        for clip in ("c1", "c2"):
            write_clip(tmp_path / method / f"{clip}.mp4", content)
    before = [(tmp_path / m / "c1.mp4").stat().st_size for m in ("busy", "calm")]
    assert before[0] > 3 * before[1]                                  # what the blinding leaks today
    study = tmp_path / "study"
    with caplog.at_level("INFO", logger="userstudy"):
        code = make_study_main(["--out", str(study), "--method", f"busy={tmp_path / 'busy'}",
                                "--method", f"calm={tmp_path / 'calm'}", "--constant-bitrate", "1000", "--seed", "k"])
    assert code == 0
    videos = sorted((study / "videos").rglob("*.mp4"))
    assert len(videos) == 4
    sizes = [v.stat().st_size for v in videos]
    assert max(sizes) / min(sizes) < 1.1
    for video in videos:
        assert streams(video) == (FRAMES, RATE, "h264")               # every frame, the sound, H.264
    # re-encoded while the study is built (in its hidden folder), and said in the log
    assert any("re-encoded 4 videos at 1000 kbit/s" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "calm", "study"]


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(EncodingError, match="bad.mp4"):
        reencode_constant_bitrate(bad, tmp_path / "out.mp4", 500)
    assert not (tmp_path / "out.mp4").exists()
