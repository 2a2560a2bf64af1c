"""Measuring a source that starts inside a group of pictures (its first keyframe lost, as a capture
or a cut that began mid-GOP): the scene split and the candidate clip start at the first frame a
player shows, and the sound under each frame stays the sound recorded with it.

The source is built here: frames carrying their index as Gray-coded blocks (a keyframe every 12,
3 B-frames), a 16 kHz track with a 1 kHz beep at stored frame BEEP's time, then a stream copy
without the first video packet. Expected values come from the construction: a player shows stored
frames 12..49 (the ffmpeg binary of the imageio-ffmpeg wheel is asked too), the beep plays
(BEEP - 12) / 25 s into the candidate clip.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the independent decoder (pip install imageio-ffmpeg)")

from bench.data.prepare.sources import SceneSettings, Workspace, measure_source
from metrics.io.video import read_video
from tests.frame_index_fixtures import SIDE, ffmpeg_frames, index_shown, indexed_picture

FRAMES, GOP, FPS, RATE, BEEP = 50, 12, 25, 16000, 30


def picture(index: int) -> np.ndarray:
    return indexed_picture(index, (60, 110, 150))


def build(folder: Path) -> Path:
    source, cut = folder / "whole.mp4", folder / "cut.mp4"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "12", "bf": "3", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        sound = container.add_stream("aac", rate=RATE)
        sound.layout = "mono"
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(picture(index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        audio = np.zeros(int((FRAMES / FPS + 0.2) * RATE), np.float32)
        start = BEEP * RATE // FPS
        audio[start:start + 320] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(320) / RATE)
        for first in range(0, len(audio), 1024):
            chunk = av.AudioFrame.from_ndarray(audio[None, first:first + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = RATE, first, Fraction(1, RATE)
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    with av.open(str(source)) as inside, av.open(str(cut), "w") as outside:
        streams = {stream.index: outside.add_stream_from_template(stream) for stream in inside.streams}
        first_video = True
        for packet in inside.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video" and first_video:
                first_video = False                    # the keyframe of the first group, lost
                continue
            packet.stream = streams[packet.stream.index]
            outside.mux(packet)
    return cut


def test_a_source_cut_inside_its_first_group_is_measured_from_its_first_decodable_frame(tmp_path):
    path = build(tmp_path)
    shown = read_video(path)            # checked against ffmpeg below, not trusted alone
    player = [index_shown(frame) for frame in ffmpeg_frames(path)]
    assert player == list(range(GOP, FRAMES))
    assert [index_shown(frame) for frame in shown] == player
    workspace = Workspace(tmp_path / "work")
    state = measure_source(path, "cut", workspace, lambda frame: [], SceneSettings(), min_seconds=0.5,
                           samples_per_second=2.0, max_samples=4, digest="test")
    assert state["status"] == "done", state.get("error")
    assert state["source_frames"] == FRAMES - GOP and state["scenes"] == [[0, FRAMES - GOP]]
    candidate = read_video(workspace.candidate_video("cut_s000"))
    assert [index_shown(frame) for frame in candidate] == player
    samples, rate = soundfile.read(workspace.candidate_audio("cut_s000"))
    beep_at = int(np.argmax(np.abs(samples) > 0.4)) / rate
    assert beep_at == pytest.approx((BEEP - GOP) / FPS, abs=1 / FPS)
