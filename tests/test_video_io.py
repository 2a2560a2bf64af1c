"""Video, audio and atomic-file I/O: round trips, streaming, ranges, and no partial files on errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from metrics.io.audio import audio_duration, load_audio, write_wav
from metrics.io.files import atomic_path, save_npz_atomic, write_json_atomic, write_text_atomic
from metrics.io.video import (VideoReader, frame_times, probe_video, read_video, read_video_audio, read_video_audio_timed,
                              write_video)

FPS = 25
NUM_FRAMES = 30
HEIGHT, WIDTH = 48, 64
SAMPLE_RATE = 16000


def pattern_frames(num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A horizontal gradient in red, a vertical one in green, and a per-frame level in blue."""
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, width).astype(np.uint8)[None, None, :]
    frames[..., 1] = np.linspace(0, 255, height).astype(np.uint8)[None, :, None]
    frames[..., 2] = (np.arange(num_frames) * 255 // max(num_frames - 1, 1)).astype(np.uint8)[:, None, None]
    return frames


def tone_and_noise(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A 1 kHz tone with some low-passed noise: something an AAC encoder keeps well."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    noise = np.convolve(np.random.default_rng(seed).standard_normal(len(t)), np.ones(8) / 8, mode="same")
    return (0.4 * np.sin(2 * np.pi * 1000 * t) + 0.1 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A video with audio written once for the read-back tests."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = pattern_frames()
    audio = tone_and_noise(NUM_FRAMES / FPS)
    write_video(path, (frame for frame in frames), FPS, audio=audio, sample_rate=SAMPLE_RATE)
    return path, frames, audio


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# -- video ---------------------------------------------------------------------------------------


def test_probe_reports_what_was_written(written):
    path, _, _ = written
    info = probe_video(path)
    assert info.num_frames == NUM_FRAMES
    assert info.fps == pytest.approx(FPS)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.duration == pytest.approx(NUM_FRAMES / FPS)
    assert info.has_audio and info.audio_sample_rate == SAMPLE_RATE


def test_frames_read_back_close_to_written(written):
    path, frames, _ = written
    decoded = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(np.int16) - frames.astype(np.int16))
    assert error.mean() < 3.0, error.mean()
    # Each frame is its own frame: the per-frame blue level comes back in order.
    assert np.abs(decoded[..., 2].mean(axis=(1, 2)) - frames[..., 2].mean(axis=(1, 2))).max() < 4


def test_audio_track_reads_back(written):
    path, _, audio = written
    decoded = read_video_audio(path, SAMPLE_RATE)
    assert decoded.dtype == np.float32
    # The recorded duration cuts the padding of the last AAC frame; allow an AAC frame either way.
    assert abs(len(decoded) / SAMPLE_RATE - NUM_FRAMES / FPS) <= 1024 / SAMPLE_RATE
    n = min(len(decoded), len(audio))
    assert np.corrcoef(decoded[:n], audio[:n])[0, 1] > 0.9
    lags = np.correlate(decoded[:n], audio[:n], mode="full")
    assert abs(int(np.argmax(lags)) - (n - 1)) <= 2   # no priming delay left


def test_audio_track_resampled_on_read(written):
    path, _, _ = written
    decoded = read_video_audio(path, 8000)
    assert abs(len(decoded) / 8000 - NUM_FRAMES / FPS) <= 0.1


def test_video_without_audio(tmp_path):
    path = write_video(tmp_path / "silent.mp4", pattern_frames(5), 10)
    assert not probe_video(path).has_audio
    assert probe_video(path).audio_sample_rate is None
    with pytest.raises(ValueError, match="silent.mp4.*no audio"):
        read_video_audio(path)


def test_streaming_iteration_matches_read_video(written):
    path, _, _ = written
    whole = read_video(path)
    with VideoReader(path) as video:
        assert len(video) == NUM_FRAMES
        streamed = list(video)
        chunks = list(video.iter_chunks(7))
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in streamed)
    np.testing.assert_array_equal(np.stack(streamed), whole)
    assert [len(chunk) for chunk in chunks] == [7, 7, 7, 7, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_read_range_matches_slicing(written):
    path, _, _ = written
    whole = read_video(path)
    with VideoReader(path) as video:
        for start, stop in [(0, 1), (0, 30), (5, 12), (17, 18), (29, 30), (25, 40), (3, 3)]:
            np.testing.assert_array_equal(video.read(start, stop), whole[start:stop])
        with pytest.raises(ValueError, match="beyond the last frame"):
            video.read(30, 31)


def test_frames_at_gives_the_picked_frames_converted_and_stops_at_the_last(written):
    """Against read_video's whole array indexed; repeated and unordered indices; convert sees each picked
    frame once; an index past the end is absent; decoding stops at the last index wanted."""
    path, _, _ = written
    whole = read_video(path)
    seen = []
    with VideoReader(path) as video:
        picked = video.frames_at([12, 0, 29, 12])
        assert sorted(picked) == [0, 12, 29]
        for index, frame in picked.items():
            np.testing.assert_array_equal(frame, whole[index])
        sums = video.frames_at(np.array([3, 7]), lambda frame: seen.append(1) or int(frame.sum()))
        assert sums == {3: int(whole[3].sum()), 7: int(whole[7].sum())} and len(seen) == 2
        assert sorted(video.frames_at([5, NUM_FRAMES, NUM_FRAMES + 3])) == [5]
        assert video.frames_at([]) == {}
        decoded, frames_from = [], video._frames_from

        def counted(start):
            for frame in frames_from(start):
                decoded.append(1)
                yield frame

        video._frames_from = counted
        video.frames_at([4])
        assert len(decoded) == 5                               # frames 0..4, not the other 25


def test_read_range_with_seeking_over_many_keyframes(tmp_path):
    """A file with a keyframe every 5 frames and B-frames: seeking must land on exact indices."""
    path = tmp_path / "gop.mp4"
    frames = pattern_frames(40, 32, 32)
    frames[..., 0] = (np.arange(40) * 6)[:, None, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.gop_size = 5
        stream.options = {"crf": "18", "bf": "2"}
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 20)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    whole = read_video(path)
    assert len(whole) == 40
    with VideoReader(path) as video:
        for start in range(0, 40, 3):
            np.testing.assert_array_equal(video.read(start, start + 6), whole[start:start + 6])


def test_closing_the_reader_mid_iteration_is_an_error_not_a_crash(written):
    # PyAV segfaults when a decoder is resumed after its container closed; the reader guards it.
    path, _, _ = written
    video = VideoReader(path)
    frames = iter(video)
    next(frames)
    video.close()
    with pytest.raises(ValueError, match="closed during an iteration"):
        next(frames)


_CLOSE_FROM_ANOTHER_THREAD = textwrap.dedent("""
    import json, random, sys, threading, time
    import numpy as np
    from metrics.io.video import VideoReader, write_video
    path = sys.argv[1]
    write_video(path, np.random.default_rng(0).integers(0, 256, (120, 96, 96, 3), dtype=np.uint8), 25)
    outcomes = []
    for round_ in range(100):
        video = VideoReader(path)
        def consume():
            try:
                outcomes.append(sum(1 for _ in video))
            except ValueError as error:
                outcomes.append(str(error))
        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(random.Random(round_).uniform(0, 0.05))
        video.close()
        thread.join()
    print(json.dumps(outcomes))
""")


def test_closing_the_reader_from_another_thread_waits_for_the_decoding_step(tmp_path):
    # A close() from another thread between the reader's "still open?" check and its next decoding
    # step crashed the interpreter (segmentation fault, 5 runs in 5 before the lock); now every
    # iteration either finishes (all 120 frames) or ends with the reader's ValueError.
    done = subprocess.run([sys.executable, "-c", _CLOSE_FROM_ANOTHER_THREAD, str(tmp_path / "clip.mp4")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = json.loads(done.stdout)
    assert len(outcomes) == 100
    for outcome in outcomes:
        assert outcome == 120 or "closed during an iteration" in outcome, outcome


def test_frame_count_by_packets_when_the_container_has_none(tmp_path):
    # Matroska records no frame count (stream.frames == 0): probe_video counts packets instead.
    path = write_video(tmp_path / "clip.mkv", pattern_frames(13, 16, 16), FPS)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    assert probe_video(path).num_frames == 13
    assert len(read_video(path)) == 13


def test_fractional_fps(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", pattern_frames(6, 16, 16), 30000 / 1001)
    assert probe_video(path).fps == pytest.approx(30000 / 1001, rel=1e-6)


def test_odd_size_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match=r"odd.mp4.*33x32.*even"):
        write_video(tmp_path / "odd.mp4", pattern_frames(3, 32, 33), FPS)
    assert leftovers(tmp_path) == []


def test_mismatched_frame_shape_names_the_frame(tmp_path):
    frames = [np.zeros((32, 32, 3), np.uint8)] * 4 + [np.zeros((32, 34, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"shape.mp4: frame 4: shape \(32, 34, 3\)"):
        write_video(tmp_path / "shape.mp4", frames, FPS)
    assert leftovers(tmp_path) == []


def test_float_frames_refused(tmp_path):
    with pytest.raises(ValueError, match="frame 0: dtype float"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 16, 16, 3)), FPS)


def test_crash_mid_write_leaves_no_file(tmp_path):
    def frames_then_crash():
        yield from pattern_frames(8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_video(tmp_path / "crash.mp4", frames_then_crash(), FPS, audio=tone_and_noise(1.0))
    assert leftovers(tmp_path) == []


def test_crash_mid_write_keeps_the_previous_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4", pattern_frames(4), FPS)
    before = path.read_bytes()

    def frames_then_crash():
        yield from pattern_frames(8)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_video(path, frames_then_crash(), FPS)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == ["clip.mp4"]


def test_probe_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        probe_video(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="garbage.mp4"):
        probe_video(garbage)
    wav = write_wav(tmp_path / "sound.wav", np.zeros(1600), SAMPLE_RATE)
    with pytest.raises(ValueError, match="sound.wav.*no video stream"):
        probe_video(wav)


def test_bad_audio_refused(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_video(tmp_path / "a.mp4", pattern_frames(2), FPS, audio=np.array([0.0, np.nan, 0.1]))
    with pytest.raises(ValueError, match="mono"):
        write_video(tmp_path / "a.mp4", pattern_frames(2), FPS, audio=np.zeros((100, 2)))
    assert leftovers(tmp_path) == []


# -- audio ---------------------------------------------------------------------------------------


def test_wav_round_trip(tmp_path):
    audio = tone_and_noise(0.5)
    path = write_wav(tmp_path / "a.wav", audio, SAMPLE_RATE)
    assert soundfile.info(str(path)).subtype == "PCM_16"
    assert audio_duration(path) == pytest.approx(0.5)
    loaded = load_audio(path, SAMPLE_RATE)
    assert loaded.dtype == np.float32 and loaded.shape == audio.shape
    assert np.abs(loaded - audio).max() < 1e-4   # 16-bit quantisation


def test_wav_clips_and_refuses_non_finite(tmp_path):
    path = write_wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5]), SAMPLE_RATE)
    np.testing.assert_allclose(load_audio(path, SAMPLE_RATE), [1.0, -1.0, 0.5], atol=1e-4)
    with pytest.raises(ValueError, match=r"bad.wav: 1 non-finite"):
        write_wav(tmp_path / "bad.wav", np.array([0.0, np.inf]), SAMPLE_RATE)
    assert not (tmp_path / "bad.wav").exists()


def test_a_float_file_holding_nan_is_refused_on_reading_naming_it_and_the_time(tmp_path):
    """Was: read as is, spread over the clip by resampling, and caught only after the model had loaded."""
    import soundfile
    samples = np.zeros((16000, 2), dtype=np.float32)
    samples[8000:8003, 1] = np.nan                           # 0.5 s into the right channel: 3 samples
    soundfile.write(str(tmp_path / "nan.wav"), samples, 16000, subtype="FLOAT")
    with pytest.raises(ValueError) as refused:
        load_audio(tmp_path / "nan.wav", SAMPLE_RATE)
    assert str(refused.value) == (f"{tmp_path / 'nan.wav'}: 3 non-finite (NaN or infinite) audio samples, the first "
                                  "at 0.500 s: a damaged or wrongly exported file")


def test_load_audio_resamples_and_mixes_down(tmp_path):
    rate = 22050
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone * 0.5], axis=1)
    path = write_wav(tmp_path / "stereo.wav", stereo, rate)
    loaded = load_audio(path, 16000)
    assert len(loaded) == 16000
    # Independently: read the file, mix, resample with the exact ratio 16000/22050 = 320/441.
    raw, _ = soundfile.read(str(path), dtype="float32")
    expected = resample_poly(raw.mean(axis=1).astype(np.float64), 320, 441)
    np.testing.assert_allclose(loaded, expected, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(loaded))
    assert np.fft.rfftfreq(len(loaded), 1 / 16000)[np.argmax(spectrum)] == pytest.approx(440, abs=1)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        load_audio(tmp_path / "nothing.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....garbage")
    with pytest.raises(ValueError, match="broken.wav"):
        load_audio(broken)
    with pytest.raises(ValueError, match="broken.wav"):
        audio_duration(broken)


def test_audio_longer_than_its_bound_is_refused_from_the_header_before_decoding(tmp_path, monkeypatch):
    # a 2.8 MB FLAC of an hour's silence (48 kHz stereo) decoded to 3.8 GB: the header's length is checked first
    import metrics.io.audio as audio_io

    path = write_wav(tmp_path / "stereo.wav", np.zeros((16000, 2)), 16000)        # 1 s, 2 channels: 32000
    monkeypatch.setattr(audio_io, "MAX_AUDIO_SAMPLES", 31999)
    monkeypatch.setattr(audio_io.soundfile, "read", lambda *args, **kwargs: pytest.fail("decoded"))
    with pytest.raises(ValueError) as refused:
        load_audio(path)
    assert str(refused.value).startswith(f"{path}: refused: 1 s of 2-channel audio at 16000 Hz by its header, more "
                                         "than the 31999 samples an audio file may decode to")
    monkeypatch.undo()
    assert len(load_audio(path)) == 16000


def test_audio_cut_short_is_read_as_far_as_it_goes_and_said(tmp_path, caplog):
    # imac sample said "1.50 s" from the header of a cut wav and made 0.2 s of video without a word
    path = write_wav(tmp_path / "speech.wav", 0.5 * np.sin(np.arange(24000) / 10), 16000)   # 1.5 s, 16-bit mono
    whole = path.read_bytes()
    path.write_bytes(whole[:44 + 2 * 8000])             # the 44-byte header and 0.5 s of the samples
    with caplog.at_level("WARNING", logger="metrics.io.audio"):
        assert len(load_audio(path)) == 8000
    assert f"{path}: 0.50 s of audio decode, where its header states 1.50 s: a file cut short?" in caplog.text
    caplog.clear()
    path.write_bytes(whole)
    with caplog.at_level("WARNING", logger="metrics.io.audio"):
        assert len(load_audio(path)) == 24000
    assert caplog.text == ""


# -- atomic files ---------------------------------------------------------------------------------


def test_atomic_path_keeps_suffix_and_replaces(tmp_path):
    target = tmp_path / "sub" / "dir" / "clip.mp4"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        assert temporary.suffix == ".mp4" and temporary.name.startswith(".clip.mp4.tmp-")
        temporary.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert leftovers(target.parent) == ["clip.mp4"]


def test_atomic_path_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(KeyError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise KeyError("interrupted")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == ["out.json"]


def test_a_failed_write_leaves_its_folder_to_a_writer_about_to_write_there(tmp_path):
    """Two writers into one new folder (parallel ranks writing one speaker's clips): the first makes the
    folder, the second is given its path; the first fails before the second has created its file. The
    second's file must still be written (removing the folder "made for" the failed write pulled it away)."""
    folder = tmp_path / "run" / "method" / "anna"
    first, second = atomic_path(folder / "c0.mp4"), atomic_path(folder / "c1.mp4")
    first.__enter__()                                   # makes run/method/anna
    other = second.__enter__()                          # a path in it; its writer has not opened it yet
    full = OSError(28, "No space left on device")
    assert first.__exit__(OSError, full, None) is False           # the first write fails and re-raises
    other.write_text("c1")
    second.__exit__(None, None, None)
    assert sorted(os.listdir(folder)) == ["c1.mp4"] and (folder / "c1.mp4").read_text() == "c1"


def test_atomic_writers(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    write_text_atomic(tmp_path / "b.txt", "hello\n")
    assert (tmp_path / "b.txt").read_text() == "hello\n"
    save_npz_atomic(tmp_path / "c.npz", pose=np.ones((2, 3)), names=np.array(["a", "b"]))
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["pose"], np.ones((2, 3)))
        assert list(npz["names"]) == ["a", "b"]
    with pytest.raises(ValueError, match="pickle"):
        save_npz_atomic(tmp_path / "d.npz", bad=np.array([{}], dtype=object))
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "e.json", {"x": object()})
    assert leftovers(tmp_path) == ["a.json", "b.txt", "c.npz"]


def _moving_pattern(frames: int = 98, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for t in range(frames):
        r = np.hypot(x - size / 2 - 18 * np.sin(t / 7), y - size / 2 - 12 * np.cos(t / 5))
        out.append(np.stack([128 + 100 * np.sin(r / 3 - t / 4), 128 + 80 * np.cos(x / 5 + t / 9),
                             128 + 60 * np.sin((x + y) / 6 - t / 3)], -1).clip(0, 255).astype(np.uint8))
    return np.stack(out)


def test_the_same_frames_encode_to_the_same_bytes(tmp_path):
    # x264's AVX-512 functions wrote 11 different files in 12 encodes of these frames on an AVX-512 CPU
    # (so two runs of one benchmark scored different videos); a benchmark's scores repeat only if its
    # videos do
    frames = _moving_pattern()
    rng = np.random.default_rng(0)
    files = set()
    for index in range(6):
        churn = [rng.integers(0, 256, int(rng.integers(1000, 300000)), dtype=np.uint8) for _ in range(5)]
        files.add(write_video(tmp_path / f"{index}.mp4", frames, 25).read_bytes())
        del churn
    assert len(files) == 1


def test_x264_is_limited_to_avx2_exactly_where_the_cpu_has_avx512():
    from metrics.io.video import x264_asm
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from independently")
    flags = {f for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
             for f in line.partition(":")[2].split()}
    assert x264_asm() == ("AVX2" if "avx512f" in flags else None)


def test_a_file_that_is_not_a_video_is_said_in_ffmpeg_words_once_without_errno_noise(tmp_path):
    """Was: "cannot open video: [Errno 1094995529] Invalid data found when processing input: '<path>'"
    (the path twice, and AVERROR_INVALIDDATA's number). The reason is FFmpeg's text for that code."""
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for read in (probe_video, read_video):
        with pytest.raises(ValueError) as refused:
            read(path)
        assert str(refused.value) == f"{path}: cannot open video: Invalid data found when processing input"


def test_matroska_with_b_frames_keeps_each_frame_time(tmp_path):
    # Matroska stores no decode timestamps: the demuxer leaves them out on the first packets of a stream
    # with B-frames, and the reader took the times for incomplete and spaced the frames evenly (0.49 s off
    # here); the presentation times alone place the frames
    from tests.test_dataset_paths import STEPS_MS

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.options = "yuv420p", {"bf": "2"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, t in enumerate(STEPS_MS):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 2 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert [p.dts for p in container.demux(video=0)][0] is None
    with VideoReader(path) as video:
        np.testing.assert_allclose(video.frame_times(), STEPS_MS / 1000, atol=1e-9)
        whole = read_video(path)
        np.testing.assert_array_equal(video.read(70, 74), whole[70:74])


def test_a_picture_stream_listed_before_the_video_is_not_read_as_it(tmp_path):
    # a Matroska file may hold its cover as a video stream of one picture, listed first: the reader took
    # it for the video (1 frame); ffmpeg picks the default stream
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the file")
    from PIL import Image

    source = write_video(tmp_path / "source.mp4", pattern_frames(), FPS)
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "cover.png")
    covered = tmp_path / "covered.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(source), "-i",
                    str(tmp_path / "cover.png"), "-map", "1", "-map", "0", "-c", "copy", "-c:v:0", "png",
                    str(covered)], check=True, timeout=60)
    with av.open(str(covered)) as container:
        assert container.streams.video[0].codec_context.name == "png"
    assert probe_video(covered).num_frames == NUM_FRAMES
    np.testing.assert_array_equal(read_video(covered), read_video(source))


@pytest.mark.parametrize("options", [["-display_rotation", "90"], ["-display_rotation", "180"],
                                     ["-display_rotation", "270"], ["-display_hflip"], ["-display_vflip"],
                                     ["-display_rotation", "90", "-display_hflip"],
                                     ["-display_rotation", "90", "-display_vflip"]])
def test_the_display_matrix_turns_and_mirrors_frames_as_ffmpeg_shows_them(options, tmp_path):
    # the reference: ffmpeg's own decode, which applies the matrix (autorotate); a mirrored matrix read as a
    # rotation alone (PyAV's frame.rotation gives -180 for -display_hflip) showed the picture upside down
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the matrix and shows the frames")
    from metrics.io.video import display_matrix

    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :16, :24] = 255                       # a corner, a stripe and a patch: no symmetry
    frames[:, 30:, 50:, 1] = 200
    frames[:, 20:28, :, 2] = 120
    stored = write_video(tmp_path / "stored.mp4", frames, FPS)
    tagged = tmp_path / "tagged.mp4"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", *options, "-i", str(stored), "-c", "copy", str(tagged)],
                   check=True, timeout=60)
    raw = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(tagged), "-frames:v", "1", "-pix_fmt",
                          "rgb24", "-f", "rawvideo", "-"], check=True, capture_output=True, timeout=60).stdout
    matrix = display_matrix(tagged)
    shown = matrix.apply(read_video(tagged)[0])
    np.testing.assert_array_equal(shown, np.frombuffer(raw, np.uint8).reshape(shown.shape))
    assert matrix.mirrored == ("-display_hflip" in options or "-display_vflip" in options)


def test_a_gap_in_the_audio_timestamps_is_silence_where_a_player_leaves_it(tmp_path):
    # a browser recording's dropout: 0.3 s of timestamps missing at 1.5 s. Joined end to end, the speech
    # after it played 0.3 s early; the reference is ffmpeg resampling by the timestamps (aresample async)
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the gap and decodes by it")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    speech = Path(__file__).parent / "fixtures" / "speech" / "thanks_for_having_me.wav"
    decoded = {}
    for name, shift in (("gap", "if(gte(T,1.5),PTS+0.3/TB,PTS)"), ("whole", "PTS")):
        path = tmp_path / f"{name}.mka"
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(speech), "-af",
                        f"atrim=0:3.7,asetpts='{shift}'", "-c:a", "libopus", str(path)], check=True, timeout=60)
        reference = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(path), "-af",
                                    "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
                                   check=True, capture_output=True, timeout=60).stdout
        decoded[name] = read_video_audio_timed(path, 16000), np.frombuffer(reference, np.float32)
    # (the stream of this Matroska file starts at 13 ms by its header and ffmpeg's output begins there;
    # the 13 ms before are ours alone; from there on the two are the same samples)
    for name, gaps in (("gap", 1), ("whole", 0)):
        read, reference = decoded[name]
        head = len(read.samples) - len(reference)
        assert 0 <= head <= 0.02 * 16000
        np.testing.assert_allclose(read.samples[head:], reference, atol=1e-6)
        assert len(read.gaps) == gaps
    assert decoded["gap"][0].gaps[0][0] == pytest.approx(1.5, abs=0.06) and decoded["gap"][0].gaps[0][1] == 0.3


@pytest.mark.parametrize("cut", ["-vf trim=start=0.6", "-bf 3 -f avi"], ids=["video-trimmed", "b-frames-in-avi"])
def test_a_video_s_sound_is_read_from_its_first_frame_on(tmp_path, cut):
    # A flash and a click at 2.0 s: trimming the video (the sound copied) moves the first frame to 0.6 s,
    # B-frames in AVI move it to 0.04 s, while the sound still starts at 0. Read from the sound's own
    # start, every beat was that far from its frame: BAS of trimmed clips against themselves fell from 0.91
    # to 0.45. The reference is the file's own clock, as ffmpeg presents it: the click plays at 2.0 s, and
    # where the file keeps them together (all but the AVI, whose muxer delays every frame by one), with the
    # frame of the flash.
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the files")
    from metrics.io.video import align_to_first_frame, read_video_audio, read_video_audio_timed

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source, cut_file = tmp_path / "source.mp4", tmp_path / ("cut.avi" if "avi" in cut else "cut.mp4")
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=black:size=64x64:rate=25:duration=4,drawbox=enable='between(t,2,2.04)':color=white:t=fill",
                    "-f", "lavfi", "-i", "aevalsrc='if(between(t,2,2.05),sin(2*PI*1000*t),0)':s=16000:d=4",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(source)],
                   check=True, timeout=60)
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(source), *cut.split(), "-c:v",
                    "mpeg4" if "avi" in cut else "libx264", "-c:a", "copy" if "avi" not in cut else "pcm_s16le",
                    str(cut_file)], check=True, timeout=60)
    for path in (source, cut_file):
        frames, times = read_video(path), frame_times(path)
        flash = int(np.argmax(frames.reshape(len(frames), -1).mean(axis=1)))
        click = int(np.argmax(np.abs(read_video_audio(path, 16000)) > 0.1))
        assert times[0] + click / 16000 == pytest.approx(2.0, abs=0.002), path.name
        together = path == source or "avi" not in cut
        assert together == (times[flash] == pytest.approx(2.0, abs=0.002)), path.name
        if together:
            assert abs(click / 16000 - flash / 25) < 0.002, (path.name, flash, click)
    track, first = read_video_audio_timed(cut_file, 16000), frame_times(cut_file)[0]
    assert first - track.start > 0.03                     # the files differ as the test means them to
    late = align_to_first_frame(np.ones(3, np.float32), 10, audio_start=0.2, first_frame=0.0)
    np.testing.assert_array_equal(late, [0, 0, 1, 1, 1])  # a late sound: the silence before it
