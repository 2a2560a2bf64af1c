"""The mismatched video of a match trial: one clip's picture under another clip's speech, copied
packet for packet (checked by decoding the result and both sources), and make-study --run's match
trials built from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from userstudy_data.media import decoded, write_video

from userstudy.dubbing import DubbingError, dub
from userstudy.make_study import make_study_from_run
from userstudy.study import StudyError

pytest.importorskip("av", reason="PyAV writes and reads the test's videos")


def test_the_dubbed_video_has_one_clips_picture_and_the_others_speech(tmp_path):
    write_video(tmp_path / "own.mp4", 60, 220)
    write_video(tmp_path / "other.mp4", 180, 880, frames=12)     # longer: cut to the speech
    dub(tmp_path / "other.mp4", tmp_path / "own.mp4", tmp_path / "dubbed.mp4")
    frames, audio = decoded(tmp_path / "dubbed.mp4")
    other_frames, _ = decoded(tmp_path / "other.mp4")
    _, own_audio = decoded(tmp_path / "own.mp4")
    assert len(frames) == 8                                          # 0.5 s of the 0.75 s picture
    for ours, theirs in zip(frames, other_frames):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(audio, own_audio)                  # the speech, bit for bit


def test_a_source_without_speech_is_named(tmp_path):
    import av

    silent = tmp_path / "silent.mp4"
    with av.open(str(silent), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(DubbingError, match=rf"{silent}: no audio stream"):
        dub(silent, silent, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def fake_run(root: Path, clips=("c01", "c02")) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"methods": ["imac", "s2g", "gt", "static", "shuffled"]}))
    for m, method in enumerate(["imac", "s2g"]):
        for c, clip in enumerate(clips):
            write_video(run / method / "ana" / f"{clip}.mp4", 50 + 80 * m + 25 * c, 300 + 200 * c)
    return run


def test_match_trials_from_a_run(tmp_path):
    run = fake_run(tmp_path)
    study = make_study_from_run(tmp_path / "study", run, match_trials=2, seed="m")
    matches = [t for t in study.trials if t.kind == "match"]
    assert sorted(t.method for t in matches) == ["imac", "s2g"]                       # the methods in turn
    for trial in matches:
        assert trial.criteria == ("sound-video synchronization",)
        identity, clip = trial.clip.split("/")
        other = "c02" if clip == "c01" else "c01"
        matched_frames, matched_audio = decoded(study.file(trial.videos["matched"]))
        frames, audio = decoded(study.file(trial.videos["mismatched"]))
        source_frames, _ = decoded(run / trial.method / identity / f"{other}.mp4")
        np.testing.assert_array_equal(audio, matched_audio)                          # the same speech
        np.testing.assert_array_equal(frames[0], source_frames[0])                   # another clip's motion
        assert not np.array_equal(frames[3], matched_frames[3])


def test_match_trials_need_two_clips_of_a_speaker(tmp_path):
    run = fake_run(tmp_path, clips=("c01",))
    with pytest.raises(StudyError, match=r"match trials: 'ana' has a single clip of 'imac'"):
        make_study_from_run(tmp_path / "study", run, match_trials=1, seed="m")


def test_match_trials_never_repeat_a_methods_clip(tmp_path):
    run = fake_run(tmp_path)
    # 2 clips of 'ana', each with another clip, x 2 methods: 4 different match trials at most
    study = make_study_from_run(tmp_path / "study", run, match_trials=4, seed="m")
    matches = [(t.method, t.clip) for t in study.trials if t.kind == "match"]
    assert sorted(matches) == [("imac", "ana/c01"), ("imac", "ana/c02"), ("s2g", "ana/c01"), ("s2g", "ana/c02")]
    with pytest.raises(StudyError, match=r"match trials \(--match-trials\): 5 asked, .* at most 4 different"):
        make_study_from_run(tmp_path / "more", run, match_trials=5, seed="m")
