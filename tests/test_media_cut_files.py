"""Files cut at either end: an mp4 whose edit list hides its LAST frames, and files that start inside
a group of pictures (the first keyframe lost, as in a capture or a cut that began mid-GOP) or on
damaged data. What a player shows is what the ffmpeg binary of the imageio-ffmpeg wheel decodes
(never the code under test); each file also says by hand which stored frames it shows, and
ffmpeg's answer is checked against that first.

The end-cut files are built by hand, as MP4Box's ``-edits`` or a video editor writes them: an mp4
made with PyAV, whose edit list (``moov/trak/edts/elst``) gets a shorter segment duration (and a
later media time for the start-and-end cut), with the movie's duration to match. ``ffmpeg -t ...
-c copy`` does not write such a file: it stops copying packets at the time asked and records an
edit as long as what it copied (27 packets and a 1.08 s edit for ``-t 1`` on a 25 fps file with
B-frames), so nothing is hidden at the end.

What reading does with a file starting on frames it cannot decode (the first keyframe lost, or
its data damaged so that FFmpeg's parser no longer sees a keyframe there): the packets stored
before the first keyframe are neither counted nor sent to the decoder (H.264's decoder drops
them, VP9's fails on them), so every path starts at the first decodable frame, as a player does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the independent decoder (pip install imageio-ffmpeg)")

from metrics.io.video import VideoReader, frame_times, probe_video, read_video
from tests.frame_index_fixtures import SIDE, ffmpeg_frames, ffmpeg_times, index_shown, indexed_picture

FRAMES, GOP = 50, 12


# -- the frames ------------------------------------------------------------------------------------


def picture(index: int) -> np.ndarray:
    """A colour that changes with the frame above, the index's Gray code as 8 blocks below."""
    return indexed_picture(index, (40 + 3 * index, 90, 200 - 2 * index))


def encode(path: Path, codec: str = "libx264") -> None:
    """FRAMES frames at 25 fps, a keyframe every GOP frames exactly (x264: 3 B-frames, closed GOPs)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = GOP
        if codec == "libx264":
            stream.options = {"crf": "12", "bf": "3", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        else:
            stream.options = {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(picture(index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# -- editing the mp4 edit list by hand ---------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int):
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position:position + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[position + 8:position + 16])[0], 16
        elif size == 0:
            size = end - position
        yield kind.decode("latin-1"), position + header, position + size
        position += size


def _box(data: bytes, path: list[str], start: int = 0, end: int | None = None) -> int:
    """The offset of the body of the only box at ``path`` (e.g. moov/trak/edts/elst)."""
    end = len(data) if end is None else end
    found = [(body, stop) for kind, body, stop in _boxes(data, start, end) if kind == path[0]]
    assert len(found) == 1, f"{path[0]}: {len(found)} boxes"
    body, stop = found[0]
    return body if len(path) == 1 else _box(data, path[1:], body, stop)


def cut_edit_list(source: Path, target: Path, first: int, count: int) -> None:
    """Rewrite the only track's edit to show ``count`` frames from stored frame ``first`` (25 fps)."""
    data = bytearray(source.read_bytes())
    movie = _box(data, ["moov", "mvhd"])
    media = _box(data, ["moov", "trak", "mdia", "mdhd"])
    edit = _box(data, ["moov", "trak", "edts", "elst"])
    assert data[movie] == data[media] == data[edit] == 0, "version 0 boxes expected"
    movie_scale = struct.unpack(">I", data[movie + 12:movie + 16])[0]
    media_scale = struct.unpack(">I", data[media + 12:media + 16])[0]
    entries, duration, media_time, rate = struct.unpack(">IIiI", data[edit + 4:edit + 20])
    assert entries == 1 and rate == 0x10000
    struct.pack_into(">Ii", data, edit + 8, count * movie_scale // 25, media_time + first * media_scale // 25)
    struct.pack_into(">I", data, movie + 16, count * movie_scale // 25)
    target.write_bytes(bytes(data))


# -- starting inside a group of pictures -------------------------------------------------------------


def remux_without_first_packets(source: Path, target: Path, dropped: int) -> None:
    """A stream copy that loses the first ``dropped`` packets (decoding order)."""
    with av.open(str(source)) as inside, av.open(str(target), "w") as outside:
        stream = outside.add_stream_from_template(inside.streams.video[0])
        number = 0
        for packet in inside.demux(inside.streams.video[0]):
            if packet.dts is None:
                continue                                   # the flush packet
            number += 1
            if number > dropped:
                packet.stream = stream
                outside.mux(packet)


def damage_first_packet(source: Path, target: Path) -> None:
    """A copy of ``source`` whose first video packet (still marked a keyframe) holds zeros after its
    first 8 bytes (an H.264 sample's length prefix and the start of its first unit)."""
    data = bytearray(source.read_bytes())
    with av.open(str(source)) as container:
        packet = next(container.demux(video=0))
        position, size = packet.pos, packet.size
    data[position + 8:position + size] = bytes(size - 8)
    target.write_bytes(bytes(data))


@dataclass(frozen=True)
class Case:
    name: str
    shown: tuple[int, ...]         # the stored frames a player shows, by hand


CASES = [
    # the edit list hides the last 10 of 50 frames
    Case("end-cut.mp4", tuple(range(40))),
    # it hides the first 5 and the last 8
    Case("both-ends-cut.mp4", tuple(range(5, 42))),
    # the first packet (the keyframe of the first group of 12) lost: the next group on
    Case("first-keyframe-lost.mp4", tuple(range(GOP, FRAMES))),
    # five packets lost, copied into MPEG-TS (SPS/PPS travel with the keyframes there)
    Case("first-packets-lost.ts", tuple(range(GOP, FRAMES))),
    # VP9 in WebM (no B-frames; its decoder fails on a frame without its keyframe)
    Case("first-keyframe-lost-vp9.webm", tuple(range(GOP, FRAMES))),
    # the first keyframe's data zeroed in place (its length prefix kept): the file is as long as
    # the source, and the first group cannot be decoded
    Case("first-keyframe-damaged.mp4", tuple(range(GOP, FRAMES))),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, list[int], np.ndarray]]:
    folder = tmp_path_factory.mktemp("cut")
    encode(folder / "source.mp4")
    encode(folder / "source.webm", "libvpx-vp9")
    cut_edit_list(folder / "source.mp4", folder / "end-cut.mp4", 0, 40)
    cut_edit_list(folder / "source.mp4", folder / "both-ends-cut.mp4", 5, 37)
    remux_without_first_packets(folder / "source.mp4", folder / "first-keyframe-lost.mp4", 1)
    remux_without_first_packets(folder / "source.mp4", folder / "first-packets-lost.ts", 5)
    remux_without_first_packets(folder / "source.webm", folder / "first-keyframe-lost-vp9.webm", 1)
    damage_first_packet(folder / "source.mp4", folder / "first-keyframe-damaged.mp4")
    built = {}
    for case in CASES:
        path = folder / case.name
        built[case.name] = (path, [index_shown(frame) for frame in ffmpeg_frames(path)], ffmpeg_times(path))
    return built


@pytest.fixture(params=[case.name for case in CASES])
def case(request, files):
    expected = next(case for case in CASES if case.name == request.param)
    path, indices, times = files[request.param]
    return expected, path, indices, times


def test_the_independent_decoder_shows_what_the_file_says(case):
    expected, _, indices, _ = case
    assert indices == list(expected.shown)


def test_probe_counts_the_frames_a_player_shows(case):
    expected, path, indices, _ = case
    assert probe_video(path).num_frames == len(indices)


def test_iteration_and_reading_give_the_frames_a_player_shows(case):
    _, path, indices, _ = case
    assert [index_shown(frame) for frame in read_video(path)] == indices
    with VideoReader(path) as video:
        count = len(indices)
        # ranges that seek, that start on the first and end on the last frame shown, and past it
        for start, stop in [(0, 3), (count // 2, count // 2 + 5), (count - 4, count), (count - 2, count + 10)]:
            assert [index_shown(frame) for frame in video.read(start, stop)] == indices[start:stop]
        with pytest.raises(ValueError, match="beyond the last frame"):
            video.read(count, count + 1)


def test_frame_times_are_when_a_player_shows_the_frames(case):
    _, path, indices, times = case
    assert len(times) == len(indices)
    np.testing.assert_allclose(frame_times(path), times, atol=2e-5)
