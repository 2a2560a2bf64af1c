"""A study's videos are read before it is made (userstudy.playable): a file cut short, which a player
would play in part or without sound, is refused naming it, by make_study and by make_study_from_run."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest
from userstudy_data.media import tagged_video, write_video

from userstudy.make_study import make_study
from userstudy.playable import Playable, playable, trial_problems
from userstudy.study import StudyError

FRAMES = 40


def faststart(source: Path, out: Path) -> Path:
    """``source`` remuxed with its index first (``movflags=faststart``), as web videos are written."""
    with av.open(str(source)) as reader, av.open(str(out), "w", format="mp4",
                                                 options={"movflags": "faststart"}) as writer:
        streams = {s.index: writer.add_stream_from_template(s) for s in reader.streams}
        for packet in reader.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                writer.mux(packet)
    return out


def cut(source: Path, out: Path, fraction: float) -> Path:
    data = source.read_bytes()
    out.write_bytes(data[:int(len(data) * fraction)])
    return out


@pytest.fixture
def whole(tmp_path) -> Path:
    write_video(tmp_path / "source.mp4", shade=80, tone=300.0, frames=FRAMES)
    return faststart(tmp_path / "source.mp4", tmp_path / "whole.mp4")


def test_a_whole_video_plays(whole):
    assert playable(whole) == Playable((), FRAMES, True)


def test_a_video_cut_after_its_index_is_cut_short_naming_the_packets(whole, tmp_path):
    found = playable(cut(whole, tmp_path / "cut.mp4", 0.6))
    video = next(p for p in found.problems if " video frames " in p)
    there = int(video.split()[2])
    assert video == f"cut short: {there} of the {FRAMES} video frames its index lists are there"
    assert 0 < there < FRAMES and found.frames == there


def test_a_last_packet_cut_in_half_is_a_damaged_packet(whole, tmp_path):
    # everything else is there (each stream within the slack of its length): the demuxer's mark tells
    with av.open(str(whole)) as reader:
        position, size, kind = max((p.pos, p.size, p.stream.type) for p in reader.demux() if p.size)
    found = playable(cut(whole, tmp_path / "cut.mp4", (position + size // 2) / whole.stat().st_size))
    assert len(found.problems) == 1 and found.problems[0].startswith(f"a damaged {kind} packet at ")


def test_a_video_cut_before_its_index_and_a_file_that_is_no_video_cannot_be_opened(tmp_path):
    write_video(tmp_path / "source.mp4", shade=80, tone=300.0, frames=FRAMES)   # index last: cut, no index
    for path in (cut(tmp_path / "source.mp4", tmp_path / "cut.mp4", 0.5), tmp_path / "text.mp4"):
        path.write_bytes(path.read_bytes() if path.name == "cut.mp4" else b"not a video")
        found = playable(path)
        assert len(found.problems) == 1 and found.problems[0].startswith("cannot be opened (")


def test_a_silent_video_beside_speaking_ones_is_named(tmp_path):
    files = {m: tmp_path / f"{m}.mp4" for m in ("a", "b", "c")}
    for method, path in files.items():
        path.write_bytes(tagged_video(method, sound=method != "b"))
    problems = trial_problems(files)
    assert len(problems) == 1 and problems[0].startswith(f"{files['b']}: has no sound, where a's video of the same "
                                                         "trial has it: participants would compare")
    assert trial_problems({m: files[m] for m in ("b",)}) == []          # silent alone: nothing to compare


def test_make_study_refuses_a_cut_video_naming_it_and_writes_nothing(whole, tmp_path):
    for method in ("a", "b"):
        (tmp_path / method).mkdir()
        (tmp_path / method / "t1.mp4").write_bytes(whole.read_bytes())
    cut(whole, tmp_path / "b" / "t1.mp4", 0.6)
    with pytest.raises(StudyError) as error:
        make_study(tmp_path / "study", {m: tmp_path / m for m in ("a", "b")}, seed="s")
    assert error.value.problems[0].startswith(f"{tmp_path / 'b' / 't1.mp4'}: cut short: ")
    assert not (tmp_path / "study").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _encode(path: Path, video_codec: str, audio_codec: str, frames: int = 25, sound_frames: int | None = None) -> Path:
    """A clip of ``frames`` at 25 fps with a tone of ``sound_frames`` frames' length (default: as long), in the
    container of ``path``'s suffix."""
    import numpy as np

    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(audio_codec, rate=48000)
        audio.layout = "mono"
        for i in range(frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 5 * i % 256, np.uint8), "rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        tone = (0.1 * np.sin(np.arange(48000 * (sound_frames or frames) // 25) / 10)).astype(np.float32)
        step = 960
        for start in range(0, tone.size, step):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + step].copy(),
                                               format="fltp" if audio_codec != "pcm_s16le" else "flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def test_a_whole_mov_with_pcm_sound_plays(tmp_path):
    # the index of PCM sound counts samples, not packets: only the video's frames are counted
    assert playable(_encode(tmp_path / "camera.mov", "libx264", "pcm_s16le")).problems == ()


def test_a_webm_cut_short_is_found_by_the_length_its_header_gives(tmp_path):
    whole = _encode(tmp_path / "whole.webm", "libvpx-vp9", "libopus", frames=50)
    assert playable(whole) == Playable((), 50, True)
    found = playable(cut(whole, tmp_path / "cut.webm", 0.5))
    assert len(found.problems) == 1 and re.fullmatch(r"cut short: it ends at 1\.\d\d s of the 2\.0\d s its header gives",
                                                    found.problems[0]), found.problems


def test_a_webm_whose_sound_ends_before_its_picture_plays(tmp_path):
    # WebM gives no length per stream: the file's last packet is held against the file's length, not each stream
    assert playable(_encode(tmp_path / "short_sound.webm", "libvpx-vp9", "libopus", frames=50,
                            sound_frames=25)).problems == ()


def test_a_cover_picture_is_not_the_video(whole, tmp_path):
    # what `yt-dlp --embed-thumbnail` writes: a second video stream of one picture, marked attached_pic
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the cover")
    import subprocess

    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "cover.png")
    covered = tmp_path / "covered.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(whole), "-i",
                    str(tmp_path / "cover.png"), "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:1",
                    "attached_pic", str(covered)], check=True, timeout=60)
    with av.open(str(covered)) as reader:
        assert [s.type for s in reader.streams].count("video") == 2
    assert playable(covered) == Playable((), FRAMES, True)


def test_a_cover_picture_listed_first_is_not_the_video_of_any_step(whole, tmp_path):
    # a Matroska file may list its cover picture first (ffmpeg -map 1 -map 0), as a stream of one picture:
    # the checks and the re-encoding took it for the video; ffmpeg and players take the default stream
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the cover")
    import subprocess

    import numpy as np
    from PIL import Image

    from userstudy.encoding import reencode_constant_bitrate

    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "cover.png")
    covered = tmp_path / "covered.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(whole), "-i",
                    str(tmp_path / "cover.png"), "-map", "1", "-map", "0", "-c", "copy", "-c:v:0", "png",
                    "-disposition:v:0", "attached_pic", str(covered)], check=True, timeout=60)
    with av.open(str(covered)) as reader:      # Matroska keeps no attached_pic mark: one png picture, first
        assert [(s.type, s.codec_context.name) for s in reader.streams][:2] == [("video", "png"), ("video", "h264")]
    assert playable(covered) == Playable((), FRAMES, True)
    encoded = reencode_constant_bitrate(covered, tmp_path / "encoded.mp4", video_kbps=200)
    with av.open(str(encoded)) as reader:
        assert [s.type for s in reader.streams] == ["video", "audio"]
        assert sum(1 for _ in reader.decode(video=0)) == FRAMES
