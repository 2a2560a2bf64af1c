"""Both sides must match: each input property that changes a number is equal, converted, or refused
before any decoding, naming the property and the clips; what was converted or allowed is recorded."""

from __future__ import annotations

import dataclasses
import shutil

import av
import numpy as np
import pytest

from metrics.dataset import ClipRecord
from metrics.evaluate import evaluate
from metrics.inputs import (ClipProperties, InputMismatchError, InputReport, check_inputs, clip_properties,
                            normalise_allow)
from metrics.io.audio import write_wav
from metrics.io.video import probe_video, write_video
from metrics.protocol import Protocol

ALL = ("fgd", "div", "bas", "fvd")


def props(clip: str = "a/a_0", side: str = "real", **changes) -> ClipProperties:
    base = ClipProperties(clip=clip, side=side, width=64, height=64, fps=25.0, num_frames=100, pixel_format="yuv420p",
                          colour_range="tv", colour_matrix="bt601", sample_aspect_ratio="1:1", rotation=0,
                          audio_source="wav", audio_rate=16000, audio_channels=1, audio_duration=4.0)
    return dataclasses.replace(base, **changes)


def sides(**fake_changes) -> tuple[list[ClipProperties], list[ClipProperties]]:
    real = [props("a/a_0"), props("a/a_1")]
    fake = [props("a/a_0", "fake", **fake_changes), props("a/a_1", "fake", **fake_changes)]
    return real, fake


# -- one test per property: refused (naming it and the clips), then allowed and recorded --------------


@pytest.mark.parametrize("name, change, metrics", [
    ("frame_size", {"width": 128, "height": 128}, ("fvd",)),
    ("frame_rate", {"fps": 30.0, "num_frames": 120}, ("fvd",)),
    # PSNR, SSIM and LPIPS pair frame i with frame i: at 30 fps against 25 other moments (before: not checked)
    ("frame_rate", {"fps": 30.0, "num_frames": 120}, ("psnr", "ssim", "lpips")),
    ("duration", {"num_frames": 80}, ALL),
    ("pixel_format", {"pixel_format": "yuv444p"}, ALL),
    ("colour_range", {"colour_range": "pc"}, ALL),
    ("colour_matrix", {"colour_matrix": "bt709"}, ALL),
    ("sample_aspect_ratio", {"sample_aspect_ratio": "4:3"}, ALL),
    ("rotation", {"rotation": 90}, ALL),
    ("audio_duration", {"audio_duration": 3.0}, ("bas",)),
    ("frame_timing", {"uneven_timing": "frame 49 is shown 2.450 s after the first, 0.495 s later than ..."}, ALL),
])
def test_a_differing_property_is_refused_naming_it_and_the_clips_unless_allowed(name, change, metrics):
    real, fake = sides(**change)
    protocol = Protocol(bas_audio="generated") if name.startswith("audio") else Protocol()   # its own sound read
    with pytest.raises(InputMismatchError) as error:
        check_inputs(real, fake, metrics, protocol)
    message = str(error.value)
    assert name in message and "a/a_0" in message and f"--allow-mismatch {name}" in message
    report = check_inputs(real, fake, metrics, protocol, allow=[name])
    allowed = [f for f in report.findings if f.property == name and f.action == "allowed"]
    assert allowed and set(allowed[0].metrics) == set(metrics)
    assert any(name in line for line in report.for_metric(metrics[0]))


def test_equal_sides_need_nothing():
    real, fake = sides()
    report = check_inputs(real, fake, ALL, Protocol())
    assert report.findings == ()
    assert report.values["fake"]["frame_size"] == ["64x64"]


def test_a_side_with_no_clip_read_is_not_compared():
    # every generated header unreadable (skipped): the sides were "compared" with an empty one, and a
    # folder of truncated videos was refused as "frame_size differs (real 64x64 ...; generated )"
    real, _ = sides()
    report = check_inputs(real, [], ALL, Protocol())
    assert report.findings == () and report.values["fake"]["frame_size"] == []
    assert check_inputs([], real, ("div",), Protocol()).findings == ()


def test_frame_size_and_rate_are_converted_for_the_skeleton_metrics():
    real, fake = sides(width=128, height=128, fps=50.0, num_frames=200)
    report = check_inputs(real, fake, ("fgd", "div", "bas"), Protocol())
    found = {(f.property, f.metrics) for f in report.findings}
    assert ("frame_size", ("fgd", "div", "bas")) in found
    assert {m for p, ms in found if p == "frame_rate" for m in ms} == {"fgd", "div", "bas"}
    assert all(f.action == "converted" for f in report.findings)
    assert "resampled to 25 fps" in " ".join(report.for_metric("fgd"))


def test_hkv_in_pixels_needs_equal_frame_sizes_and_in_shoulder_widths_does_not():
    """Under the cyberhost preset (hkv_space: pixels) the same clips upscaled 2x scored 2.25x the real videos'
    HKV with nothing said (a new user's finding); in shoulder widths (the default) the size cancels."""
    real, fake = sides(width=128, height=128)
    with pytest.raises(InputMismatchError, match=r"frame_size differs .*HKV in pixels \(hkv_space: pixels\) grows "
                                                 r"with the square of the frame size") as error:
        check_inputs(real, fake, ("hkv",), Protocol(hkv_space="pixels"))
    assert "HKV" in str(error.value)
    assert check_inputs(real, fake, ("hkv",), Protocol()).findings == ()
    report = check_inputs(real, fake, ("hkv",), Protocol(hkv_space="pixels"), allow=["frame_size"])
    assert [(f.property, f.action, f.metrics) for f in report.findings] == [("frame_size", "allowed", ("hkv",))]


def test_audio_rate_and_channels_are_converted_for_bas_only():
    real, fake = sides(audio_rate=44100, audio_channels=2, audio_duration=3.0)
    # bas_audio real (default): the paired generated clips' own sound is never read, so nothing about it
    assert check_inputs(real, fake, ("bas", "fvd"), Protocol()).findings == ()
    real, fake = sides(audio_rate=44100, audio_channels=2)
    report = check_inputs(real, fake, ("bas", "fvd"), Protocol(bas_audio="generated"))
    assert {f.property for f in report.findings} == {"audio_rate", "audio_channels"}
    assert "44100 Hz resampled to 16000 Hz" in " ".join(report.for_metric("bas"))
    assert report.for_metric("fvd") == ()


def test_generated_clips_without_sound_take_their_partner_speech_or_are_refused():
    real, fake = sides(audio_source=None, audio_rate=None, audio_channels=None, audio_duration=None)
    assert check_inputs(real, fake, ("bas",), Protocol()).findings == ()     # bas_audio real: the partner's
    report = check_inputs(real, fake, ("bas",), Protocol(bas_audio="generated"))
    assert [f.property for f in report.findings] == ["audio_missing"]
    orphan = [props("b/b_9", "fake", audio_source=None, audio_rate=None, audio_duration=None)]
    for protocol in (Protocol(), Protocol(bas_audio="generated")):
        with pytest.raises(InputMismatchError, match=r"audio_missing.*b/b_9"):
            check_inputs(real, orphan, ("bas",), protocol)
    voiced_orphan = [props("a/a_0", "fake"), props("a/a_9", "fake", audio_source="track"), props("a/a_8", "fake")]
    report = check_inputs(real, voiced_orphan, ("bas",), Protocol())
    assert [f.property for f in report.findings] == ["bas_audio"]          # a/a_8 reads a wav beside it
    assert "a/a_9" in report.findings[0].detail and "a/a_8" not in report.findings[0].detail


def test_unknown_allowed_property_is_named():
    assert normalise_allow(["resolution", "fps"]) == {"frame_size", "frame_rate"}
    with pytest.raises(ValueError, match="colour"):
        normalise_allow(["colour"])


# -- from real files: the header reader, and evaluate refusing before any network is loaded -----------


def _clip(folder, name, frames, fps=25, pix_fmt="yuv420p", wav_seconds=None):
    video = folder / "a" / f"{name}.mp4"
    write_video(video, frames, fps, pix_fmt=pix_fmt)
    audio = None
    if wav_seconds is not None:
        audio = write_wav(video.with_suffix(".wav"), np.zeros(int(wav_seconds * 16000)) + 0.01, 16000)
    return ClipRecord(identity="a", clip_id=name, video=video, audio=audio)


def test_header_properties_of_real_files(tmp_path):
    frames = np.full((20, 32, 48, 3), 100, np.uint8)
    plain = _clip(tmp_path, "plain", frames, wav_seconds=0.8)
    full = _clip(tmp_path, "full", frames, pix_fmt="yuv444p")
    p = clip_properties(plain, "real")
    assert (p.width, p.height, p.fps, p.num_frames, p.pixel_format) == (48, 32, 25.0, 20, "yuv420p")
    assert (p.colour_range, p.colour_matrix, p.sample_aspect_ratio, p.rotation) == ("tv", "bt601", "1:1", 0)
    assert (p.audio_source, p.audio_rate, p.audio_channels, p.audio_duration) == ("wav", 16000, 1, 0.8)
    assert clip_properties(full, "fake", audio=False).pixel_format == "yuv444p"
    jpeg = tmp_path / "a" / "jpeg.mp4"
    container = av.open(str(jpeg), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 48, 32, "yuvj420p"
    for frame in frames[:5]:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    assert probe_video(jpeg).color_range == "pc"
    assert clip_properties(ClipRecord(identity="a", clip_id="jpeg", video=jpeg), "fake").colour_range == "pc"


@pytest.mark.parametrize("options, shown", [(["-display_vflip"], "mirrored upside down"),
                                            (["-display_hflip"], "mirrored left to right"),
                                            (["-display_rotation", "90", "-display_hflip"], "mirrored across a diagonal"),
                                            (["-display_rotation", "180"], "180")])
def test_a_mirroring_display_matrix_is_named_not_read_as_a_turn(tmp_path, options, shown):
    # PyAV reads -display_vflip as no rotation at all and -display_hflip as a turn of 180: a generator
    # storing its frames upside down with a vflip tag was scored upside down without a word. The
    # reference: ffmpeg wrote the matrix (and shows the frames by it, tests/test_video_io.py)
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the display matrix")
    import subprocess

    plain = _clip(tmp_path, "plain", np.full((10, 32, 48, 3), 100, np.uint8), wav_seconds=0.4)
    tagged = tmp_path / "a" / "tagged.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", *options, "-i",
                    str(plain.video), "-c", "copy", str(tagged)], check=True, timeout=60)
    p = clip_properties(ClipRecord(identity="a", clip_id="plain", video=tagged, audio=plain.audio), "fake")
    assert p.value("rotation") == shown
    with pytest.raises(InputMismatchError, match=rf"rotation differs \(real 0 .*; generated {shown} "):
        check_inputs([clip_properties(plain, "real")], [p], ALL, Protocol())


class NeverLoaded:
    """An I3D stand-in that fails if anything is computed with it."""

    feature_id, is_pretrained, batch_size = "never", False, 4

    def __call__(self, videos):
        raise AssertionError("the input check must refuse before any video is decoded")


def test_evaluate_refuses_from_the_headers_before_decoding(tmp_path):
    frames = np.zeros((40, 32, 32, 3), np.uint8)
    real, fake = tmp_path / "real", tmp_path / "fake"
    _clip(real, "a_0", frames, wav_seconds=1.6)
    _clip(fake, "a_0", frames, fps=20, wav_seconds=2.0)
    with pytest.raises(InputMismatchError, match=r"frame_rate differs.*a/a_0"):
        evaluate(real, fake, metrics=("fvd",), i3d=NeverLoaded(), cache_dir=None, split=None)
    shutil.rmtree(fake)
    _clip(fake, "a_0", frames[:30], wav_seconds=1.2)
    with pytest.raises(InputMismatchError, match=r"duration differs.*a/a_0 \(30 frames"):
        evaluate(real, fake, metrics=("fvd",), i3d=NeverLoaded(), cache_dir=None, split=None)


def test_clips_without_a_partner_are_refused_naming_them_and_counted_when_allowed():
    real = [props(c) for c in ("a/a_0", "a/a_1", "b/b_0")]
    fake = [props(c, "fake") for c in ("a/a_0", "c/c_9")]
    labels = ([p.clip for p in real], [p.clip for p in fake])
    with pytest.raises(InputMismatchError) as error:
        check_inputs(real, fake, ALL, Protocol(), clips=labels)
    message = str(error.value)
    assert "2 of 3 real clip(s) have no generated clip: a/a_1, b/b_0" in message
    assert "1 of 2 generated clip(s) have no real clip of the same identity/clip_id: c/c_9" in message
    assert "--allow-mismatch clips" in message
    report = check_inputs(real, fake, ALL, Protocol(), allow=["clips"], clips=labels)
    assert report.pairing == {"real": 3, "generated": 2, "paired": 1, "real_unpaired": 2, "generated_unpaired": 1}
    assert [(f.property, f.action) for f in report.findings] == [("clips", "allowed")]
    assert InputReport.from_dict(report.to_dict()) == report
    many = [f"a/a_{k}" for k in range(8)]
    with pytest.raises(InputMismatchError, match=r"8 of 8 real clip\(s\).*a/a_4 and 3 more"):
        check_inputs([], [], ("div",), Protocol(), clips=(many, ["z/z_0"]))
    paired = check_inputs(real, real, ALL, Protocol(), clips=(labels[0], labels[0]))
    assert paired.findings == () and paired.pairing["paired"] == 3 and paired.pairing["real_unpaired"] == 0
    assert "pairing" not in check_inputs(real, fake, ALL, Protocol()).to_dict()   # not asked: not checked


def test_compute_options_name_an_unknown_allowed_property(tmp_path, capsys):
    from metrics.cli import load_compute_options, main

    assert load_compute_options({"allow_mismatch": ["resolution", "frame_rate"]}).allow_mismatch == ["resolution",
                                                                                                     "frame_rate"]
    assert main(["compute", "--fake", str(tmp_path), "--allow-mismatch", "colour"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allow_mismatch" in err and "'colour'" in err


def test_a_variable_frame_rate_clip_is_found_from_its_packet_times(tmp_path):
    """Frames 50 ms apart, then 30 ms apart (written with PyAV, time base 1 ms): frame 49 is shown at
    49 x 50 ms = 2.450 s; a constant-rate clip of the same count has no uneven timing."""
    from tests.test_dataset_paths import STEPS_MS, write_timed_video

    write_timed_video(tmp_path / "vfr.mp4", STEPS_MS)
    write_timed_video(tmp_path / "cfr.mp4", np.arange(len(STEPS_MS)) * 40)
    uneven = clip_properties(ClipRecord("a", clip_id="vfr", video=tmp_path / "vfr.mp4"), "fake", audio=False)
    even = clip_properties(ClipRecord("a", clip_id="cfr", video=tmp_path / "cfr.mp4"), "fake", audio=False)
    # the 100 frames span 3.950 s: an even spacing puts frame 49 at 3.950 x 49 / 99 = 1.955 s
    assert uneven.uneven_timing == ("frame 49 is shown 2.450 s after the first, 0.495 s later than an even spacing "
                                    "of the 100 frames over 3.950 s puts it (1.955 s)")
    assert even.uneven_timing is None
    with pytest.raises(InputMismatchError, match=r"frame_timing: 1 clip\(s\) with a variable frame rate: fake a/vfr"):
        check_inputs([], [uneven], ("div",), Protocol())


@pytest.mark.parametrize("frames, rate", [(127, "8"), (130, "8"), (127, "6"), (131, "6"), (129, "12.5")])
def test_a_copy_at_another_rate_made_by_ffmpeg_is_of_the_real_clips_length(tmp_path, frames, rate):
    """ffmpeg's fps filter (the independent reference) makes the copy; each side is a whole number of its own
    frames, so the lengths differ by up to a frame of the slower rate (0.045-0.08 s here, more than one 25-fps
    frame): accepted for the metrics that resample the rate; 2 frames of that rate fewer are refused."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the independent converter")
    import subprocess

    real_path, copy = tmp_path / "real.mp4", tmp_path / "copy.mp4"
    write_video(real_path, (np.full((32, 32, 3), i, np.uint8) for i in range(frames)), fps=25)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(real_path),
                    "-vf", f"fps={rate}", str(copy)], check=True, timeout=60)
    real, fake = probe_video(real_path), probe_video(copy)
    assert fake.fps == float(rate) and abs(fake.duration - real.duration) <= 1 / float(rate)
    real_side = [props(fps=real.fps, num_frames=real.num_frames)]
    check_inputs(real_side, [props(side="fake", fps=fake.fps, num_frames=fake.num_frames)], ("fgd",), Protocol())
    with pytest.raises(InputMismatchError, match=r"duration differs"):
        check_inputs(real_side, [props(side="fake", fps=fake.fps, num_frames=fake.num_frames - 2)], ("fgd",),
                     Protocol())


@pytest.mark.parametrize("bas_audio, fake_sound", [("real", {}), ("generated", {"audio_source": None,
                                                                              "audio_rate": None,
                                                                              "audio_duration": None})])
def test_a_generated_clip_longer_than_its_real_clips_speech_is_named(bas_audio, fake_sound):
    # 25 frames at 6 fps: 4.17 s, within a 6-fps frame of the real 4.00 s (duration passes), read with the
    # real clip's 4.00 s of speech: 0.17 s of video without speech, more than AAC's 0.1 s of slack and one
    # frame of the real clip's rate (0.04 s), which a clip of the real rate could always pass it by
    real = [props(audio_duration=4.0)]
    fake = [props(side="fake", fps=6.0, num_frames=25, **fake_sound)]
    with pytest.raises(InputMismatchError, match=r"audio_duration differs.*fake a/a_0 \(4.00 s of its real clip's "
                                                 r"speech for 4.17 s of video\)"):
        check_inputs(real, fake, ("bas",), Protocol(bas_audio=bas_audio))
    for fps, frames in ((6.0, 24), (25.0, 101)):                     # 4.00 s; one 25-fps frame more: accepted
        check_inputs([props(audio_duration=3.92)] if fps == 25.0 else real,
                     [props(side="fake", fps=fps, num_frames=frames, **fake_sound)], ("bas",),
                     Protocol(bas_audio=bas_audio))


def test_a_generated_clip_is_held_to_its_own_real_clip_not_to_the_set_of_sizes():
    # real a_0 at 64x64 and a_1 at 128x128, generated the other way round: the same set of sizes on each side,
    # yet every pair differs (PSNR would compare a resized frame with no word of it)
    real = [props("a/a_0"), props("a/a_1", width=128, height=128)]
    fake = [props("a/a_0", "fake", width=128, height=128), props("a/a_1", "fake")]
    with pytest.raises(InputMismatchError, match=r"frame_size differs .*2 generated clip\(s\) unlike their real "
                                                 r"clip: a/a_0 \(real 64x64, generated 128x128\), a/a_1 "
                                                 r"\(real 128x128, generated 64x64\)"):
        check_inputs(real, fake, ("psnr",), Protocol())
    real = [props("a/a_0"), props("a/a_1", pixel_format="yuv444p")]
    fake = [props("a/a_0", "fake", pixel_format="yuv444p"), props("a/a_1", "fake")]
    with pytest.raises(InputMismatchError, match=r"pixel_format differs .*a/a_0 \(real yuv420p, generated yuv444p\)"):
        check_inputs(real, fake, ("fgd",), Protocol())


@pytest.mark.parametrize("size, stretched", [
    ((128, 128), False),    # twice the size, the same shape: converted (keypoints in shoulder widths)
    ((80, 64), True),       # 64x64 stretched to 80x64: x scaled 1.25, y not
    ((64, 62), True),       # 3% taller than wide
    ((64, 64), False),
])
def test_a_generated_clip_of_another_shape_is_refused_for_the_skeleton_metrics(size, stretched):
    real, fake = sides(width=size[0], height=size[1])
    metrics = ("fgd", "div", "bas", "drift")
    if not stretched:
        findings = check_inputs(real, fake, metrics, Protocol()).findings
        assert all(f.action == "converted" for f in findings)
        return
    with pytest.raises(InputMismatchError, match=r"frame_size differs \(2 generated clip\(s\) of another shape "
                                                 r"\(width / height\) than their real clip: a/a_0 \(real 64x64, "
                                                 rf"generated {size[0]}x{size[1]}\).*cannot undo a stretch"):
        check_inputs(real, fake, metrics, Protocol())
    # frames padded or cropped, not stretched: allowed, and recorded as allowed for each metric concerned
    report = check_inputs(real, fake, metrics, Protocol(), allow=["frame_size"])
    allowed = [f for f in report.findings if f.action == "allowed"]
    assert [set(f.metrics) for f in allowed] == [set(metrics)]


def test_sizes_rounded_to_even_pixels_keep_their_shape():
    # 1920x1080 scaled to 480 lines is 853.3 wide, written as 854 (0.08% wider): the same shape
    real = [props("a/a_0", width=1920, height=1080)]
    fake = [props("a/a_0", "fake", width=854, height=480), props("a/a_9", "fake", width=854, height=480)]
    report = check_inputs(real, fake, ("fgd",), Protocol())
    assert [f.property for f in report.findings] == ["frame_size"]
    assert report.findings[0].action == "converted"
    # an unpaired generated clip is held to the shapes of the real side
    with pytest.raises(InputMismatchError, match=r"a/a_9 \(640x640; no real clip has its shape\)"):
        check_inputs(real, [props("a/a_9", "fake", width=640, height=640)], ("fgd",), Protocol())


def test_clips_with_no_identity_folder_are_said_to_make_one_speaker_for_diversity():
    # a flat folder of videos: the label is the clip_id alone, and Diversity (per speaker) pools them
    real, _ = sides()
    flat = [props("a_0", "fake"), props("a_1", "fake")]
    report = check_inputs(real, flat, ("div", "fgd"), Protocol())
    finding, = [f for f in report.findings if f.property == "identity"]
    assert finding.metrics == ("div",) and finding.action == "converted"
    assert finding.detail.startswith("2 clip(s) with no identity folder (fake a_0, fake a_1): Diversity")
    assert [f for f in check_inputs(real, sides()[1], ("div",), Protocol()).findings if f.property == "identity"] == []


def test_an_unreadable_wav_is_refused_only_where_its_sound_is_heard(tmp_path):
    # a garbage wav beside a paired generated video blocked scoring, though BAS (bas_audio: real) takes the
    # real clip's speech and never reads it
    from metrics.io.video import write_video

    video = write_video(tmp_path / "a_0.mp4", np.zeros((10, 16, 16, 3), np.uint8), 25)
    (tmp_path / "a_0.wav").write_bytes(b"not a wav")
    read = clip_properties(ClipRecord("a", clip_id="a_0", video=video, audio=tmp_path / "a_0.wav"), "fake")
    assert read.audio_problem.startswith(f"{tmp_path / 'a_0.wav'}: cannot read the audio header")
    real, fake = sides(audio_problem=read.audio_problem, audio_rate=None, audio_channels=None, audio_duration=None)
    assert check_inputs(real, fake, ("bas", "fgd"), Protocol()).findings == ()
    for metrics, protocol in ((("bas",), Protocol(bas_audio="generated")), (("sync_c",), Protocol())):
        with pytest.raises(InputMismatchError, match=r"audio: 2 wav file\(s\) cannot be read: .*a_0.wav: cannot read"):
            check_inputs(real, fake, metrics, protocol)
    with pytest.raises(InputMismatchError, match=r"audio: 1 wav file\(s\) cannot be read"):   # a real clip's: heard
        check_inputs([props("a/a_0", audio_problem="a_0.wav: cannot read the audio header")], sides()[1][:1],
                     ("bas",), Protocol())


def test_a_generated_clip_without_a_real_one_measures_drift_from_its_own_first_frame_and_says_so():
    """`compute --fake DIR --metrics drift` (no real videos) measured drift from each generated clip's own
    frame 0 while its card said "the real clip's frame 0", and nothing else told (a new user's finding)."""
    real, fake = sides()
    assert check_inputs(real, fake, ("drift", "joins_app", "csim"), Protocol()).findings == ()
    report = check_inputs([], fake, ("drift", "joins_app", "csim", "bas"), Protocol())
    found = [f for f in report.findings if f.property == "reference_image"]
    assert [(f.action, f.metrics) for f in found] == [("converted", ("drift", "csim"))]
    assert "2 generated clip(s) with no real clip of the same identity/clip_id measured from their own first " \
           "frame, not the real clip's: a/a_0, a/a_1" in found[0].detail
    assert report.for_metric("joins_app") == ()


def test_clip_names_alike_in_other_unicode_forms_are_said_to_be_so():
    """`inés` written composed on one side and decomposed (as macOS names files) on the other: the refusal
    listed the same-looking name as missing on both sides, nothing more."""
    import unicodedata

    real = [props(unicodedata.normalize("NFC", "inés/c1"))]
    fake = [props(unicodedata.normalize("NFD", "inés/c1"), "fake")]
    with pytest.raises(InputMismatchError, match=r"1 pair\(s\) of names alike but written in other Unicode forms "
                                                 r"\(composed and decomposed accents; rename one side\): "
                                                 r"'in\\xe9s/c1' vs 'ine\\u0301s/c1'"):
        check_inputs(real, fake, ("bas",), Protocol(), clips=([p.clip for p in real], [p.clip for p in fake]))
