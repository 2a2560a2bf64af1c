"""Re-encoding a study's videos at one constant bitrate: sizes stop telling methods apart."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from userstudy.encoding import EncodingError, reencode_constant_bitrate
from userstudy.make_study import main as make_study_main
from userstudy.study import load_study

FRAMES, SIDE, RATE = 25, 64, 16000


def write_clip(path: Path, content: str, fps: int = 25, frames: int = FRAMES) -> None:
    """``frames`` frames at ``fps`` (one second by default) with a 220 Hz tone of one second: random
    noise (costly to encode) or a slow flat fade (cheap)."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=RATE)
        for i in range(frames):
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


def frame_times(path: Path) -> tuple[list[float], Fraction, int]:
    """PyAV reading the file back: each decoded video frame's time in seconds, the video stream's
    average rate, and the number of decoded audio samples."""
    with av.open(str(path)) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
        rate = container.streams.video[0].average_rate
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    return times, rate, samples


def test_reencoded_frames_advance_at_the_source_rate_and_keep_the_sound(tmp_path):
    # 15 fps (not x264's or the code's default 25): 30 frames = 2 s, frame i at i / 15 s
    source, out = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    write_clip(source, "flat", fps=15, frames=30)
    reencode_constant_bitrate(source, out, 300)
    times, rate, samples = frame_times(out)
    assert rate == 15
    assert times == pytest.approx([i / 15 for i in range(30)], abs=1e-3)   # was all 0 (PyAV 18, pts None)
    assert samples >= RATE                                                 # the second of sound is kept


def test_the_reported_rate_is_file_size_over_duration(tmp_path, caplog):
    # Two 2-second videos (30 frames at 15 fps); the log's kB/s is each file's size over 2 s.
    for method in ("p", "q"):
        write_clip(tmp_path / method / "c1.mp4", "noise" if method == "p" else "flat", fps=15, frames=30)
    study = tmp_path / "study"
    with caplog.at_level("INFO", logger="userstudy"):
        assert make_study_main(["--out", str(study), "--method", f"p={tmp_path / 'p'}", "--method",
                                f"q={tmp_path / 'q'}", "--constant-bitrate", "200", "--seed", "k"]) == 0
    rates = sorted(path.stat().st_size / 2.0 / 1000 for path in (study / "videos").rglob("*.mp4"))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("re-encoded")]
    low, high = map(float, re.search(r"([\d.]+) to ([\d.]+) kB per second", line).groups())
    assert (low, high) == (pytest.approx(rates[0], abs=0.06), pytest.approx(rates[1], abs=0.06))
    # about 200 kbit/s of video and 96 of sound: 37 kB/s, not thousands (every frame at time 0 did that)
    assert 25 < low <= high < 60


def test_constant_bitrate_makes_every_container_an_mp4(tmp_path):
    # a WebM (VP9 + Opus) beside an MP4: both are re-encoded, the WebM into an MP4 that the study names
    write_clip(tmp_path / "a" / "c1.mp4", "flat")
    with av.open(str(tmp_path / "a" / "c1.mp4")) as reader, \
            av.open(str(tmp_path / "c1.webm"), "w") as writer:       # the same pictures and sound, as WebM
        video, audio = writer.add_stream("libvpx-vp9", rate=25), writer.add_stream("libopus", rate=48000)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        for frame in reader.decode(video=0):
            for packet in video.encode(frame.reformat(format="yuv420p")):
                writer.mux(packet)
        for packet in video.encode():
            writer.mux(packet)
        tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(48000) / 48000)).astype(np.float32)
        for start in range(0, tone.size, 960):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 960].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for packet in audio.encode(frame):
                writer.mux(packet)
        for packet in audio.encode():
            writer.mux(packet)
    (tmp_path / "b").mkdir()
    (tmp_path / "c1.webm").rename(tmp_path / "b" / "c1.webm")
    study = tmp_path / "study"
    assert make_study_main(["--out", str(study), "--method", f"a={tmp_path / 'a'}", "--method",
                            f"b={tmp_path / 'b'}", "--constant-bitrate", "300", "--seed", "k"]) == 0
    assert load_study(study).trials[0].videos["b"].endswith("/c1.mp4")
    assert not list(study.rglob("*.webm"))
    for path in (study / "videos").rglob("*.mp4"):
        with av.open(str(path)) as reader:
            assert reader.format.name.startswith("mov,mp4") and reader.streams.video[0].codec_context.name == "h264"


def write_odd_sized(path: Path) -> None:
    """A playable H.264 (4:4:4) + AAC clip 1 px wide: no 4:2:0 picture holds it (an odd size of 2 px or
    more is cut to even by its last column or row, tests/test_userstudy_make_study_faults.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 1
        video.pix_fmt = "yuv444p"
        audio = container.add_stream("aac", rate=RATE)
        for i in range(4):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((1, 1, 3), 40 * i, np.uint8), "rgb24")):
                container.mux(packet)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, RATE // 4), np.float32), format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*video.encode(), *audio.encode(frame), *audio.encode()]:
            container.mux(packet)


def test_a_video_that_cannot_be_reencoded_is_named_as_the_user_gave_it(tmp_path, capsys):
    write_clip(tmp_path / "a" / "c1.mp4", "flat")
    write_odd_sized(tmp_path / "b" / "c1.mp4")          # plays (make_study reads every file), cannot be re-encoded
    study = tmp_path / "study"
    assert make_study_main(["--out", str(study), "--method", f"a={tmp_path / 'a'}", "--method",
                            f"b={tmp_path / 'b'}", "--constant-bitrate", "300"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m userstudy.make_study: error: {tmp_path / 'b' / 'c1.mp4'}: cannot be "
                          "re-encoded (")
    assert ".tmp-" not in err and len(err.splitlines()) == 1 and not study.exists()


def _ffmpeg_rgb(ffmpeg: str, path: Path) -> np.ndarray:
    import subprocess
    raw = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(path), "-frames:v", "1", "-pix_fmt",
                          "rgb24", "-f", "rawvideo", "-"], check=True, capture_output=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(48, 64, 3).astype(float)


@pytest.mark.parametrize("source", ["full-range", "rotated", "mirrored", "non-square"])
def test_a_stimulus_looks_as_its_source_or_is_refused(tmp_path, source):
    # the re-encode showed a full-range source contrast-stretched (mean level 100.2 -> 96.4 in ffmpeg's
    # decode), and dropped a display matrix and a sample aspect ratio: the stimulus looked other than the
    # video the study was made of. The reference is ffmpeg's own decode of the source
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg makes the sources and decodes them")
    import subprocess

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    made = tmp_path / "made.mp4"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=25:duration=1", "-vf", "scale=out_range=pc", "-pix_fmt", "yuvj420p",
                    "-color_range", "pc", str(made)], check=True, timeout=60)
    tag = {"full-range": [], "rotated": ["-display_rotation", "90"], "mirrored": ["-display_hflip"]}.get(source)
    path = tmp_path / f"{source}.mp4"
    if tag is not None:
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", *tag, "-i", str(made), "-c", "copy", str(path)],
                       check=True, timeout=60)
    else:
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(made), "-vf", "setsar=2/1", "-pix_fmt",
                        "yuv420p", str(path)], check=True, timeout=60)
    out = tmp_path / "out.mp4"
    if source == "full-range":
        reencode_constant_bitrate(path, out, 800)
        assert np.abs(_ffmpeg_rgb(ffmpeg, out) - _ffmpeg_rgb(ffmpeg, path)).mean() < 1.5
        return
    said = {"rotated": "a display matrix", "mirrored": "a display matrix", "non-square": "non-square pixels "
            "(sample aspect ratio 2:1)"}[source]
    with pytest.raises(EncodingError, match=f"^{re.escape(str(path))}: {re.escape(said)}.*leave out --constant-bitrate"):
        reencode_constant_bitrate(path, out, 800)
    assert not out.exists()
