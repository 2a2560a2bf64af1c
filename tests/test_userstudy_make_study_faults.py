"""Faults of make-study found by a new user's trial: two files of one name, --constant-bitrate on an odd
size and its timing (a variable frame rate, late sound, AAC priming), and match trials of unequal length.

Every expected value comes from how the test builds its files (a flash frame and a click at known
times, known sizes and lengths), and every measurement is ffmpeg's (the imageio-ffmpeg binary:
``showinfo``/``ashowinfo`` timestamps, decoded samples), not the code under test.
"""

from __future__ import annotations

import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from userstudy_data.media import write_video

from userstudy.make_study import main as make_study_main
from userstudy.make_study import make_study_from_run

av = pytest.importorskip("av", reason="PyAV writes the test's videos")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg measures the videos")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RATE = 16000


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FFMPEG, "-nostdin", "-hide_banner", *args], capture_output=True, check=True, timeout=60)


def frames_measured(path: Path) -> list[tuple[float, float]]:
    """ffmpeg's (time in seconds, mean luma) of every decoded frame of the video stream."""
    err = ffmpeg("-copyts", "-i", str(path), "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-").stderr.decode()
    return [(float(t), float(m)) for t, m in re.findall(r"pts_time:(\S+).*?mean:\[(\d+)", err)]


def sound_measured(path: Path) -> tuple[float, np.ndarray]:
    """ffmpeg's time (seconds) of the first decoded audio sample and the samples (mono, 16 kHz)."""
    run = ffmpeg("-copyts", "-i", str(path), "-map", "0:a:0", "-af", "ashowinfo", "-ac", "1", "-ar", str(RATE),
                 "-f", "f32le", "-")
    return float(re.search(rb"pts_time:(\S+)", run.stderr).group(1)), np.frombuffer(run.stdout, np.float32)


def flash_time(path: Path) -> float:
    """When the bright frame is shown (seconds, ffmpeg)."""
    return next(t for t, luma in frames_measured(path) if luma > 128)


def click_time(path: Path) -> float:
    """When the click starts (seconds, ffmpeg): the first sample above 0.1."""
    start, samples = sound_measured(path)
    return start + int(np.flatnonzero(np.abs(samples) > 0.1)[0]) / RATE


def write_timed(path: Path, times: list[Fraction], flash: Fraction, seconds: float, click: float | None) -> None:
    """H.264 frames shown at ``times`` (multiples of 1/25 s: a variable rate when unevenly spaced), dark but
    for a bright one at ``flash``; with ``click`` (seconds), an AAC track of ``seconds`` of silence with a
    20 ms 1 kHz click there."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=RATE) if click is not None else None
        for time in times:
            image = np.full((48, 64, 3), 230 if time == flash else 30, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(time * 25), Fraction(1, 25)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is None:
            return
        sound = np.zeros(int(seconds * RATE), np.float32)
        at = int(click * RATE)
        sound[at:at + RATE // 50] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE // 50) / RATE)
        for start in range(0, sound.size, 1024):
            frame = av.AudioFrame.from_ndarray(sound[None, start:start + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts = RATE, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def reencoded(tmp_path: Path, source: Path) -> Path:
    """``source`` re-encoded by make-study --constant-bitrate beside a plain clip of another method."""
    for method in ("a", "b"):
        (tmp_path / method).mkdir(exist_ok=True)
    write_video(tmp_path / "a" / f"{source.stem}.mp4", 90, 440.0)
    source.rename(tmp_path / "b" / source.name)
    study = tmp_path / "study"
    assert make_study_main(["--out", str(study), "--method", f"a={tmp_path / 'a'}", "--method",
                            f"b={tmp_path / 'b'}", "--constant-bitrate", "300", "--seed", "k"]) == 0
    return study / "videos" / "b" / f"{source.stem}.mp4"


def test_two_files_of_one_name_for_a_method_are_refused_naming_both(tmp_path, capsys):
    write_video(tmp_path / "a" / "clip_000.mp4", 90, 440.0)
    write_video(tmp_path / "b" / "clip_000.mp4", 120, 440.0)
    (tmp_path / "b" / "clip_000.webm").write_bytes((tmp_path / "b" / "clip_000.mp4").read_bytes())
    code = make_study_main(["--out", str(tmp_path / "study"), "--method", f"a={tmp_path / 'a'}",
                            "--method", f"b={tmp_path / 'b'}"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1                       # one line, as every refusal
    assert str(tmp_path / "b" / "clip_000.mp4") in err and str(tmp_path / "b" / "clip_000.webm") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]       # nothing written


def test_an_odd_sized_video_is_reencoded_cut_by_its_last_column_and_row(tmp_path):
    # 127 x 97 (VP8 + Vorbis, as the trial made it), a white column at x = 125, the last but one
    (tmp_path / "b").mkdir()
    source = tmp_path / "t1.webm"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=127x97:d=1:r=25", "-f", "lavfi", "-i", "sine=f=440:d=1",
           "-vf", "drawbox=x=125:y=0:w=1:h=97:c=white:t=fill", "-c:v", "libvpx", "-b:v", "2M", "-c:a", "libvorbis",
           str(source))
    out = reencoded(tmp_path, source)
    run = ffmpeg("-i", str(out), "-map", "0:v:0", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-")
    assert re.search(rb"Video: h264.*? 126x96", run.stderr)                # 127 // 2 * 2 by 97 // 2 * 2
    picture = np.frombuffer(run.stdout, np.uint8).reshape(96, 126)
    assert picture[:, 125].mean() > 150 and picture[:, 120].mean() < 40   # cut, not resized: the column stays


def test_a_variable_frame_rate_video_keeps_its_timing(tmp_path):
    # 3 s at one frame per 0.12 s, then 25 fps to 5 s; the flash and the click both at 3.00 s
    times = [Fraction(3 * i, 25) for i in range(25)] + [Fraction(75 + i, 25) for i in range(50)]
    source = tmp_path / "t1.mp4"
    write_timed(source, times, Fraction(3), 5.0, click=3.0)
    assert flash_time(source) == pytest.approx(3.0, abs=1e-3)            # the construction, as ffmpeg reads it
    out = reencoded(tmp_path, source)
    shown = frames_measured(out)
    # resampled to a constant rate: each frame shows the source frame nearest its time, so the flash is
    # where 3.00 s is the nearest source time (was at 1.58 s: frame i at i / rate)
    source_times = np.array([float(t) for t in times])
    nearest = [float(source_times[np.argmin(np.abs(source_times - t))]) for t, _ in shown]
    assert [luma > 128 for _, luma in shown] == [t == 3.0 for t in nearest] and 3.0 in nearest
    steps = np.diff([t for t, _ in shown])
    assert steps.max() - steps.min() < 1e-3                                # a constant rate
    assert click_time(out) == pytest.approx(3.0, abs=0.005)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_the_sound_starts_where_it_started(tmp_path, offset):
    # a 25 fps picture with the flash at 1.00 s; a click 0.20 s into a WAV put `offset` s late (ffmpeg -itsoffset)
    picture, wav, source = tmp_path / "picture.mp4", tmp_path / "speech.wav", tmp_path / "t1.mp4"
    write_timed(picture, [Fraction(i, 25) for i in range(50)], Fraction(1), 2.0, click=None)
    sound = np.zeros(int(1.5 * RATE), np.float32)
    sound[int(0.2 * RATE):int(0.2 * RATE) + 320] = 0.5
    with av.open(str(wav), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE)
        frame = av.AudioFrame.from_ndarray((sound * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    ffmpeg("-i", str(picture), "-itsoffset", str(offset), "-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", str(source))
    assert click_time(source) == pytest.approx(0.2 + offset, abs=0.005)   # the construction, as ffmpeg reads it
    out = reencoded(tmp_path, source)
    assert click_time(out) == pytest.approx(0.2 + offset, abs=0.005)      # was 0.264 s: pts None, priming
    assert flash_time(out) == pytest.approx(1.0, abs=0.001)


def fake_run(root: Path, lengths: dict[str, int]) -> Path:
    """A run with two methods; speaker 'ana' has a clip of each of ``lengths`` frames at 16 fps, speech as long."""
    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"methods": ["imac", "s2g", "gt", "static", "shuffled"]}))
    for m, method in enumerate(["imac", "s2g"]):
        for c, (clip, frames) in enumerate(lengths.items()):
            write_video(run / method / "ana" / f"{clip}.mp4", 50 + 80 * m + 25 * c, 300 + 200 * c, frames=frames)
    return run


def seconds(path: Path) -> float:
    """The file's length as ffmpeg reports it (``Duration``), in seconds."""
    h, m, s = re.search(rb"Duration: (\d+):(\d+):([\d.]+)", ffmpeg("-i", str(path), "-f", "null", "-").stderr).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_match_trials_play_equally_long_with_the_whole_speech(tmp_path):
    # 0.5, 0.75, 0.625 and 1 s: the other clip is the nearest at least as long; c04, the longest, has none
    lengths = {"c01": 8, "c02": 12, "c03": 10, "c04": 16}
    nearest = {"c01": "c03", "c02": "c04", "c03": "c02"}
    run = fake_run(tmp_path, lengths)
    study = make_study_from_run(tmp_path / "study", run, match_trials=6, seed="m")
    matches = [t for t in study.trials if t.kind == "match"]
    assert sorted((t.method, t.clip) for t in matches) == [(m, f"ana/{c}") for m in ("imac", "s2g") for c in nearest]
    for trial in matches:
        clip = trial.clip.split("/")[1]
        matched, mismatched = study.file(trial.videos["matched"]), study.file(trial.videos["mismatched"])
        assert mismatched.name == f"{clip}.speech-under-{nearest[clip]}.mp4"
        assert seconds(mismatched) == seconds(matched)                     # the same length
        _, speech = sound_measured(mismatched)
        assert len(speech) / RATE == pytest.approx(lengths[clip] / 16, abs=0.002)   # the whole speech
        assert len(frames_measured(mismatched)) >= lengths[clip] - 2      # the picture to the end (B-frames: 2)
    with pytest.raises(Exception, match=r"7 asked, but 3 drawn clips whose speaker has another clip x 2 methods"):
        make_study_from_run(tmp_path / "more", run, match_trials=7, seed="m")


def test_videos_of_one_trial_that_differ_in_size_or_length_are_warned_about(tmp_path, caplog):
    """Sizes and lengths measured by ffprobe beside the warning; before, such a trial was taken silently."""
    write_video(tmp_path / "a" / "t1.mp4", 90, 440.0)                       # 64 px, 8 frames at 16 fps
    write_video(tmp_path / "b" / "t1.mp4", 120, 440.0, size=96)
    write_video(tmp_path / "c" / "t1.mp4", 150, 440.0, frames=24)
    for method in "abc":
        write_video(tmp_path / method / "t2.mp4", 100, 440.0)
    measured = {}
    for method in "abc":
        err = ffmpeg("-i", str(tmp_path / method / "t1.mp4"), "-f", "null", "-").stderr.decode()
        measured[method] = tuple(int(x) for x in re.search(r"Video: .*?, (\d+)x(\d+)[, \[]", err).groups())
    assert measured == {"a": (64, 64), "b": (96, 96), "c": (64, 64)}
    last_frame = {m: frames_measured(tmp_path / m / "t1.mp4")[-1][0] for m in "abc"}    # + 1/16 s: the end
    with caplog.at_level("WARNING", logger="userstudy"):
        code = make_study_main(["--out", str(tmp_path / "study"), "--criteria", "visual quality"]
                               + [f"--method={m}={tmp_path / m}" for m in "abc"])
    assert code == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith("2 differences in the videos of one trial")
    assert (f"picture sizes differ: {tmp_path / 'a' / 't1.mp4'} 64x64, {tmp_path / 'b' / 't1.mp4'} 96x96, "
            f"{tmp_path / 'c' / 't1.mp4'} 64x64") in warned[0]
    lengths = re.search(r"lengths differ: .*a/t1\.mp4 ([\d.]+) s, .*b/t1\.mp4 ([\d.]+) s, .*c/t1\.mp4 ([\d.]+) s",
                        warned[0])
    assert lengths and [float(x) for x in lengths.groups()] == pytest.approx(
        [last_frame[m] + 1 / 16 for m in "abc"], abs=0.006)
    assert "t2.mp4" not in warned[0]


def test_bad_reference_files_are_refused_naming_each(tmp_path, capsys):
    """A text file named .png, a JPEG cut short (Pillow's own encoder wrote it whole) and an MP4 cut short
    as references: each named; before, all three were copied into the study."""
    from PIL import Image

    for stem in ("t1", "t2", "t3", "t4"):
        for method in "ab":
            write_video(tmp_path / method / f"{stem}.mp4", 90, 440.0)
    refs = tmp_path / "refs"
    write_video(refs / "t1.mp4", 90, 440.0)
    (refs / "t2.png").write_text("x")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
        refs / "whole.jpg", quality=95)                    # noise: the cut falls in the picture data
    data = (refs / "whole.jpg").read_bytes()
    (refs / "t3.jpg").write_bytes(data[: len(data) // 2])
    (refs / "whole.jpg").unlink()
    data = (tmp_path / "a" / "t4.mp4").read_bytes()
    (refs / "t4.mp4").write_bytes(data[: len(data) // 2])
    code = make_study_main(["--out", str(tmp_path / "study"), f"--method=a={tmp_path / 'a'}",
                            f"--method=b={tmp_path / 'b'}", "--references", str(refs)])
    err = capsys.readouterr().err
    assert code == 2 and "3 problems" in err
    assert f"{refs / 't2.png'}: cannot be read as an image" in err
    assert f"{refs / 't3.jpg'}: cannot be read as an image (image file is truncated" in err
    assert f"{refs / 't4.mp4'}: " in err and str(refs / "t1.mp4") not in err
    assert not (tmp_path / "study").exists()


def test_an_identity_question_without_a_reference_is_warned_about(tmp_path, caplog):
    for method in "ab":
        write_video(tmp_path / method / "t1.mp4", 90, 440.0)
    methods = [f"--method={m}={tmp_path / m}" for m in "ab"]
    with caplog.at_level("WARNING", logger="userstudy"):
        assert make_study_main(["--out", str(tmp_path / "s1")] + methods) == 0
        assert make_study_main(["--out", str(tmp_path / "s2"), "--criteria", "visual quality"] + methods) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["'identity preservation' asks about the person in the reference, but the study shows no "
                      "reference: give --references DIR (a picture or video per trial, by the same name) or "
                      "--criteria without it"]
    question = json.loads((tmp_path / "s1" / "study.json").read_text())["criteria"]
    assert any("reference" in c["question"] for c in question)


def test_a_folder_study_gets_frozen_and_repeat_checks(tmp_path):
    """--frozen-checks / --repeat-checks without --run (before: refused, "only with --run"). The frozen
    video, measured by ffmpeg: every frame one picture, the source's first (mean luma), as many frames as the
    source, and the source's sound sample for sample (copied, not re-encoded)."""
    from userstudy.study import load_study

    for stem in ("t1", "t2", "t3"):
        for shade, method in ((90, "a"), (150, "b")):
            write_video(tmp_path / method / f"{stem}.mp4", shade, 440.0, frames=16)
    code = make_study_main(["--out", str(tmp_path / "study"), f"--method=a={tmp_path / 'a'}",
                            f"--method=b={tmp_path / 'b'}", "--frozen-checks", "1", "--repeat-checks", "2",
                            "--criteria", "visual quality,sound-video synchronization", "--seed", "s"])
    assert code == 0
    study = load_study(tmp_path / "study")
    checks = [t for t in study.trials if t.check is not None]
    assert len(study.trials) == 6 and sorted(t.check.kind for t in checks) == ["last", "repeat", "repeat"]
    # every id opaque, checks and trials alike: the page's requests carry the trial id (before, the checks'
    # alone were, beside trials named after their files: t1, t2, t3), and each trial keeps its file's name
    assert all(re.fullmatch(r"c[0-9a-f]{10}", t.id) for t in study.trials)
    assert sorted(t.clip for t in study.trials if t.check is None) == ["t1", "t2", "t3"]
    frozen = next(t for t in checks if t.check.kind == "last")
    assert frozen.check.criteria == ("sound-video synchronization",)
    slot = frozen.check.method
    original = next(t for t in study.trials if t.check is None and t.videos[slot] != frozen.videos[slot]
                    and all(t.videos[m] == frozen.videos[m] for m in t.videos if m != slot))
    source = tmp_path / slot / f"{original.clip}.mp4"
    made = tmp_path / "study" / frozen.videos[slot]
    source_frames, made_frames = frames_measured(source), frames_measured(made)
    assert len(made_frames) == len(source_frames) == 16
    assert made_frames[0][1] == pytest.approx(source_frames[0][1], abs=2)

    def checksums(path):     # ffmpeg's checksum of each decoded picture
        err = ffmpeg("-i", str(path), "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-").stderr.decode()
        return re.findall(r"checksum:([0-9A-F]+)", err)

    assert len(set(checksums(made))) == 1 and len(set(checksums(source))) > 1     # still; the source moves
    start, sound = sound_measured(source)
    made_start, made_sound = sound_measured(made)
    assert made_start == start and np.array_equal(made_sound, sound)
    repeats = [t for t in checks if t.check.kind == "repeat"]
    for repeat in repeats:
        assert repeat.videos == study.trial(repeat.check.of).videos
