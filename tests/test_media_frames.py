"""The frames a player shows: every path that counts, seeks, iterates or times frames, and the audio
under them, agrees with an independent decoder on files with edit lists, B-frames, negative
timestamps and variable frame rates.

The files are built here with PyAV: x264 with B-frames (3) and a keyframe every 12 frames (so ranged
reads seek), a 16 kHz AAC track with short beeps at known frames' times, and two shots (a hard cut
from red to blue). Each frame carries its index as 8 black/white blocks (in Gray code, so that one
block changes from a frame to the next, which no scene or jump-cut detector takes for a cut), so
*which* frames come back is checked, not only how many. What a player shows is what the ffmpeg binary of the imageio-ffmpeg
wheel decodes (its own demuxer and edit-list handling, raw RGB out, timestamps from its showinfo
filter), never the code under test; each shape also says by hand which of the frames it stores a
player shows (from its edit list), and ffmpeg's answer is checked against that first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the independent decoder (pip install imageio-ffmpeg)")

from bench.data.prepare.sources import (SceneSettings, Workspace, audio_start_time, detect_cuts, measure_source,
                                        read_frame_times)
from metrics.io.video import (VideoReader, frame_times, probe_video, read_video, read_video_audio,
                              read_video_audio_timed)
from tests.frame_index_fixtures import SIDE, ffmpeg, ffmpeg_frames, ffmpeg_times, index_shown, indexed_picture

RATE = 16000
SHOT_COLOURS = ((200, 60, 40), (40, 80, 200))      # red, then blue: a hard cut between the shots


# -- the files -------------------------------------------------------------------------------------


def picture(index: int, shot: int) -> np.ndarray:
    """The shot's colour above, the frame index's Gray code as 8 blocks below."""
    return indexed_picture(index, SHOT_COLOURS[shot])


@dataclass(frozen=True)
class Shape:
    """A file shape. ``ticks``: each stored frame's time in ``time_base`` units before any shift;
    ``cut``: the first stored frame of the second shot; ``shift``: seconds every packet is moved
    earlier by a stream-copy remux (what ``ffmpeg -ss ... -c copy`` writes); ``shown``: the stored
    frames a player shows, worked out by hand; ``beeps``: stored frames whose time a beep starts at."""

    name: str
    ticks: tuple[int, ...]
    time_base: Fraction
    cut: int
    shown: tuple[int, ...]
    beeps: tuple[int, ...]
    suffix: str = ".mp4"
    shift_frames: int = 0
    muxer: dict = field(default_factory=dict)
    source_muxer: dict = field(default_factory=dict)

    @property
    def shift(self) -> float:
        return float(self.ticks[self.shift_frames] * self.time_base)

    def time(self, stored: int) -> float:
        """When a player shows stored frame ``stored`` (seconds, the container's clock)."""
        return float(self.ticks[stored] * self.time_base) - self.shift


def _phone_ticks(count: int) -> tuple[int, ...]:
    # time base 1/600 as phones write it; 30 fps with every fifth interval doubled (25 fps on average)
    return tuple(int(t) for t in np.r_[0, np.cumsum(np.tile([20, 20, 20, 20, 40], count // 5 + 1))][:count])


CONSTANT = tuple(range(50))
PHONE = _phone_ticks(150)
STEPS = tuple(int(t) for t in np.r_[np.arange(50) * 50, 2450 + np.arange(1, 51) * 30])   # ms
SHAPES = [
    # what the project writes: constant rate, B-frames (x264 in mp4 stores them with an edit list
    # that only delays presentation and hides nothing)
    Shape("constant-rate", CONSTANT, Fraction(1, 25), cut=25, shown=CONSTANT, beeps=(10, 25)),
    # stream copy from 0.2 s: the edit list hides the first 5 of 50 frames; a player shows 45
    Shape("edit-list", CONSTANT, Fraction(1, 25), cut=25, shown=CONSTANT[5:], beeps=(10, 25), shift_frames=5),
    # the same copy into MPEG-TS: no edit list, timestamps from -0.2 s, all 50 frames shown
    Shape("negative-timestamps", CONSTANT, Fraction(1, 25), cut=25, shown=CONSTANT, beeps=(10, 25),
          suffix=".ts", shift_frames=5, muxer={"avoid_negative_ts": "disabled"}),
    # a phone recording: time base 1/600, a hard cut at 4.000 s, which is frame 100
    Shape("variable-rate-phone", PHONE, Fraction(1, 600), cut=100, shown=tuple(range(150)), beeps=(10, 100),
          source_muxer={"video_track_timescale": "600"}),
    # 50 frames 50 ms apart, then 50 frames 30 ms apart, a cut at frame 70
    Shape("variable-rate-steps", STEPS, Fraction(1, 1000), cut=70, shown=tuple(range(100)), beeps=(10, 70)),
    # the phone recording copied from its 8th frame (0.2667 s): an edit list on a variable rate
    Shape("variable-rate-edit-list", PHONE, Fraction(1, 600), cut=100, shown=tuple(range(7, 150)),
          beeps=(10, 100), shift_frames=7, muxer={"video_track_timescale": "600"},
          source_muxer={"video_track_timescale": "600"}),
]


def beep_signal(shape: Shape) -> np.ndarray:
    """The stored audio (from the first stored frame's time): 20 ms 1 kHz beeps at the beep frames."""
    seconds = float(shape.ticks[-1] * shape.time_base) + 0.5
    audio = np.zeros(int(seconds * RATE), np.float32)
    for stored in shape.beeps:
        start = int(round(float(shape.ticks[stored] * shape.time_base) * RATE))
        audio[start:start + 320] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(320) / RATE)
    return audio


def encode(path: Path, shape: Shape) -> None:
    container = av.open(str(path), "w", options=dict(shape.source_muxer))
    video = container.add_stream("libx264", rate=25)
    video.width = video.height = SIDE
    video.pix_fmt = "yuv420p"
    video.codec_context.time_base = video.time_base = shape.time_base
    video.codec_context.gop_size = 12
    video.options = {"crf": "12", "bf": "3"}
    sound = container.add_stream("aac", rate=RATE)
    sound.layout = "mono"
    for index, tick in enumerate(shape.ticks):
        frame = av.VideoFrame.from_ndarray(picture(index, int(index >= shape.cut)), format="rgb24")
        frame.pts, frame.time_base = tick, shape.time_base
        container.mux(video.encode(frame))
    container.mux(video.encode(None))
    audio = beep_signal(shape)
    for start in range(0, len(audio), 1024):
        frame = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
        container.mux(sound.encode(frame))
    container.mux(sound.encode(None))
    container.close()


def copy_shifted(source: Path, target: Path, seconds: float, muxer: dict) -> None:
    """Remux every packet ``seconds`` earlier, as a stream copy that starts part-way writes it."""
    with av.open(str(source)) as inside, av.open(str(target), "w", options=dict(muxer)) as outside:
        streams = {stream.index: outside.add_stream_from_template(stream) for stream in inside.streams}
        for packet in inside.demux():
            if packet.dts is None:
                continue                            # the flush packet
            delta = int(round(seconds / packet.stream.time_base))
            packet.pts, packet.dts = packet.pts - delta, packet.dts - delta
            packet.stream = streams[packet.stream.index]
            outside.mux(packet)


# -- the independent decoder -----------------------------------------------------------------------


def ffmpeg_audio(path: Path) -> np.ndarray:
    out = ffmpeg("-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(RATE),
                 "-f", "f32le", "-").stdout
    return np.frombuffer(out, np.float32)


@dataclass
class Built:
    shape: Shape
    path: Path
    indices: list[int]          # the stored index of every frame ffmpeg shows, in order
    times: np.ndarray           # when ffmpeg shows them
    audio: np.ndarray           # the audio ffmpeg plays (16 kHz mono)
    audio_start: float          # when its first sample plays


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Built]:
    folder = tmp_path_factory.mktemp("shapes")
    files = {}
    for shape in SHAPES:
        path = folder / f"{shape.name}{shape.suffix}"
        if shape.shift_frames:
            encode(folder / f"{shape.name}.source.mp4", shape)
            copy_shifted(folder / f"{shape.name}.source.mp4", path, shape.shift, shape.muxer)
        else:
            encode(path, shape)
        files[shape.name] = Built(shape, path, [index_shown(frame) for frame in ffmpeg_frames(path)],
                                  ffmpeg_times(path, "v"), ffmpeg_audio(path), float(ffmpeg_times(path, "a")[0]))
    return files


@pytest.fixture(params=[shape.name for shape in SHAPES])
def case(request, built) -> Built:
    return built[request.param]


def test_the_independent_decoder_shows_what_the_edit_list_says(case):
    # the reference itself, against the shapes' hand-made expectations
    assert case.indices == list(case.shape.shown)
    np.testing.assert_allclose(case.times, [case.shape.time(i) for i in case.shape.shown], atol=2e-5)


# -- the matrix: every path against every shape -------------------------------------------------------


def test_probe_counts_the_frames_a_player_shows(case):
    assert probe_video(case.path).num_frames == len(case.indices)


def test_iteration_gives_the_frames_a_player_shows(case):
    with VideoReader(case.path) as video:
        assert len(video) == len(case.indices)
        assert [index_shown(frame) for frame in video] == case.indices
        chunks = list(video.iter_chunks(7))
        assert [len(chunk) for chunk in chunks[:-1]] == [7] * (len(chunks) - 1)
        assert [index_shown(frame) for chunk in chunks for frame in chunk] == case.indices
    assert [index_shown(frame) for frame in read_video(case.path)] == case.indices


def test_read_ranges_give_the_frames_a_player_shows(case):
    count = len(case.indices)
    with VideoReader(case.path) as video:
        # every start (seeks to the keyframe before it, hidden keyframes included), short windows
        for start in range(count):
            window = video.read(start, start + 3)
            assert [index_shown(frame) for frame in window] == case.indices[start:start + 3], start
        whole = video.read(0, count + 10)                  # stop is clipped to the end
        assert [index_shown(frame) for frame in whole] == case.indices
        with pytest.raises(ValueError, match="beyond the last frame"):
            video.read(count, count + 1)


def test_frame_times_are_the_times_a_player_shows_them(case):
    np.testing.assert_allclose(frame_times(case.path), case.times, atol=2e-5)
    np.testing.assert_allclose(read_frame_times(case.path), case.times, atol=2e-5)
    with VideoReader(case.path) as video:
        np.testing.assert_allclose(video.frame_times(), case.times, atol=2e-5)


def test_scene_cut_is_at_the_first_frame_of_the_new_shot(case):
    # PySceneDetect's own frame numbers are time x its nominal rate: 120 instead of 100 on the phone
    # recording, 308 of 100 frames on the steps; every number shifted by an edit list
    info = probe_video(case.path)
    assert detect_cuts(case.path, info.fps, SceneSettings()) == [case.indices.index(case.shape.cut)]


def test_audio_is_what_a_player_plays_and_starts_when_it_does(case):
    track = read_video_audio_timed(case.path)
    assert track.start == pytest.approx(case.audio_start, abs=2e-5)
    assert audio_start_time(case.path) == pytest.approx(case.audio_start, abs=2e-5)
    assert abs(len(track.samples) - len(case.audio)) <= 1024        # ffmpeg keeps the last AAC frame's padding
    common = min(len(track.samples), len(case.audio))
    np.testing.assert_allclose(track.samples[:common], case.audio[:common], atol=1e-4)
    # from the first frame on: the case's own times say how much sound comes before (or after) that frame
    lead = int(round((case.audio_start - case.times[0]) * RATE))
    expected = track.samples[-lead:] if lead < 0 else np.concatenate([np.zeros(lead, np.float32), track.samples])
    np.testing.assert_array_equal(read_video_audio(case.path), expected)


def beep_onsets(samples: np.ndarray) -> list[float]:
    """Seconds into ``samples`` where each beep starts."""
    loud = np.flatnonzero(np.abs(samples) > 0.4)
    if len(loud) == 0:
        return []
    starts = loud[np.r_[True, np.diff(loud) > RATE // 20]]
    return [float(start) / RATE for start in starts]


def test_candidate_clips_hold_their_shot_and_the_sound_under_it(case, tmp_path):
    """Preparation on every shape (no source dropped): the scenes split at the cut, each candidate
    clip holds the frames of its own shot resampled to 25 fps by time, and its sound is in sync."""
    workspace = Workspace(tmp_path / "prepare")
    state = measure_source(case.path, "source", workspace, lambda frame: [], SceneSettings(), min_seconds=0.5,
                           samples_per_second=1.0, max_samples=2, digest="test", fps=25)
    assert state["status"] == "done", state.get("error")
    assert state["source_frames"] == len(case.indices)
    # the 25 fps timeline, worked out here: output frame k (at t0 + k/25) shows the nearest frame in time
    t0 = case.times[0]
    count = int(round((case.times[-1] - t0) * 25)) + 1
    nearest = [case.indices[int(np.argmin(np.abs(case.times - (t0 + k / 25))))] for k in range(count)]
    first_of_second_shot = next(k for k, stored in enumerate(nearest) if stored >= case.shape.cut)
    assert state["scenes"] == [[0, first_of_second_shot], [first_of_second_shot, count]]
    beep_times = {case.shape.time(stored) for stored in case.shape.beeps}
    for clip, (start, end) in zip(sorted(state["clips"]), state["scenes"]):
        frames = ffmpeg_frames(workspace.candidate_video(clip))
        assert [index_shown(frame) for frame in frames] == nearest[start:end], clip
        # the sound: every beep inside the clip, at its time from the clip's first frame
        samples, rate = soundfile.read(workspace.candidate_audio(clip), dtype="float32")
        clip_start = t0 + start / 25
        expected = sorted(t - clip_start for t in beep_times if 0 <= t - clip_start < (end - start) / 25 - 0.02)
        np.testing.assert_allclose(beep_onsets(samples), expected, atol=3e-3, err_msg=clip)


# -- the cases users found -------------------------------------------------------------------------


def test_metrics_read_a_stream_copied_file_without_calling_it_truncated(built, tmp_path):
    # `python -m metrics compute` stopped with "decoded 45 frames, the container says 50"
    from metrics.dataset import find_clips
    from metrics.evaluate import Evaluator
    from metrics.pose.toy import ToyMarkerPose
    from metrics.protocol import Protocol

    fake = tmp_path / "fake" / "someone"
    fake.mkdir(parents=True)
    (fake / "clip.mp4").write_bytes(built["edit-list"].path.read_bytes())
    clip, = find_clips(tmp_path / "fake")
    keypoints, fps = Evaluator(("bas",), Protocol(), extractor=ToyMarkerPose()).keypoints(clip)
    assert len(keypoints) == 45 and fps == 25


def test_pyscenedetect_detectors_see_frames_by_position(built):
    # any of PySceneDetect's detectors (the histogram one here) gets the presented frames numbered
    # by position through PresentedFrames: the phone recording's cut is frame 100, not 4.0 s x 30
    from scenedetect import HistogramDetector, SceneManager

    from bench.data.prepare.scene_stream import PresentedFrames

    for name, cut in (("variable-rate-phone", 100), ("variable-rate-edit-list", 93)):
        video = PresentedFrames(built[name].path)
        manager = SceneManager()
        manager.add_detector(HistogramDetector())
        manager.detect_scenes(video=video)
        video.close()
        assert [int(start.frame_num) for start, _ in manager.get_scene_list()] == [0, cut]
        assert video.frame_number == 0              # closed: it reads from the start again
