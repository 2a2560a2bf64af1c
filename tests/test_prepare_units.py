"""The pure parts of data preparation: frame sampling, the split by source, speakers files, statistics."""

from __future__ import annotations

import itertools

import pytest

from bench.data.prepare.faces import Face, frontal_face_fraction, make_face_detector, sample_frame_indices, \
    several_faces_fraction
from bench.data.prepare.sources import clip_id, source_name
from bench.data.prepare.speakers import read_speaker_counts
from bench.data.prepare.split import split_by_source, statistics_markdown, statistics_rows


@pytest.mark.parametrize("frames,fps", [(1, 25), (10, 25), (100, 25), (250, 30), (100000, 25)])
def test_samples_are_inside_the_clip_sorted_and_capped(frames, fps):
    samples = sample_frame_indices(frames, fps, samples_per_second=2, max_samples=24)
    assert samples == sorted(set(samples)) and 0 <= samples[0] and samples[-1] < frames
    assert 1 <= len(samples) <= min(24, frames)
    assert len(samples) == min(24, frames, max(1, round(frames / fps * 2)))


def test_samples_avoid_the_clip_ends():
    samples = sample_frame_indices(100, 25, samples_per_second=2)   # 8 samples, one per 12.5 frames
    assert samples[0] == 6 and samples[-1] == 93


def test_face_fractions_count_confident_faces_only():
    samples = [[Face(0, 0, 1, 1, 5.0)], [Face(0, 0, 1, 1, 5.0), Face(2, 2, 3, 3, 2.0)], [], [Face(0, 0, 1, 1, 2.5)]]
    assert frontal_face_fraction(samples, 3.0) == 0.25 * 2
    assert frontal_face_fraction(samples, 2.0) == 0.75
    assert several_faces_fraction(samples, 3.0) == 0.0
    assert several_faces_fraction(samples, 2.0) == 0.25
    assert frontal_face_fraction([], 1.0) == 0.0


def test_face_detector_names_and_model_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        make_face_detector("yolo")
    with pytest.raises(ValueError, match="--face-model"):
        make_face_detector("mediapipe")
    bad = tmp_path / "cascade.xml"
    bad.write_text("<not a cascade/>")
    with pytest.raises(ValueError, match="cascade.xml: not a readable OpenCV cascade file"):
        make_face_detector("opencv-cascade", bad)


def test_source_names_are_safe_and_unique(tmp_path):
    raw = tmp_path
    names = {source_name(raw, raw / p) for p in ("a/talk 1.mp4", "b/talk 1.mp4", "talk 1.mp4", "x/y/z.MOV")}
    assert len(names) == 4
    assert source_name(raw, raw / "a" / "talk 1.mp4") == "a__talk_1"
    assert clip_id("a__talk_1", 7) == "a__talk_1_s007"


# -- the split ---------------------------------------------------------------------------------------


def _no_source_on_both_sides(test, sources):
    return set(test) <= set(sources)


def test_split_reaches_the_fraction_with_whole_sources():
    seconds = {f"rec{i:02d}": 60.0 * (i + 1) for i in range(12)}
    result = split_by_source(seconds, 0.2, "alice", seed=3)
    test = sum(seconds[s] for s in result.test_sources)
    assert test >= 0.2 * sum(seconds.values())
    # dropping the last test source taken would fall short: no source more than needed
    assert result.test_sources and result.warning is None
    assert 0 < len(result.test_sources) < len(seconds)


def test_split_is_stable_and_seeded():
    seconds = {f"rec{i}": 100.0 for i in range(10)}
    a = split_by_source(seconds, 0.3, "alice", seed=0)
    assert a == split_by_source(dict(reversed(list(seconds.items()))), 0.3, "alice", seed=0)
    others = {split_by_source(seconds, 0.3, "alice", seed=s).test_sources for s in range(6)}
    assert len(others) > 1
    # adding a source keeps the earlier choices unless the fraction is already reached with them
    more = dict(seconds, rec_new=100.0)
    b = split_by_source(more, 0.3, "alice", seed=0)
    assert len(set(a.test_sources) & set(b.test_sources)) >= len(a.test_sources) - 1


def test_split_always_leaves_a_train_source_and_warns_for_one():
    assert split_by_source({"a": 10.0, "b": 1.0}, 0.99, "x").test_sources in (("a",), ("b",))
    single = split_by_source({"only": 100.0}, 0.1, "x")
    assert single.test_sources == () and "only one source" in single.warning
    assert split_by_source({"a": 1.0, "b": 1.0}, 0.0, "x").test_sources == ()


def test_split_by_chosen_sources_and_its_errors():
    seconds = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert split_by_source(seconds, 0.05, "x", chosen=["c"]).test_sources == ("c",)
    with pytest.raises(ValueError, match="zz not among"):
        split_by_source(seconds, 0.05, "x", chosen=["zz"])
    with pytest.raises(ValueError, match="nothing would be left"):
        split_by_source(seconds, 0.05, "x", chosen=["a", "b", "c"])
    with pytest.raises(ValueError, match="test-fraction"):
        split_by_source(seconds, 1.0, "x")


def test_statistics_match_a_direct_sum():
    lines = [{"identity": ident, "split": split, "clip_id": f"{ident}{k}", "num_frames": n, "fps": 25,
              "width": 512, "height": 512, "source": f"src{k % 2}"}
             for (ident, split, n), k in zip(itertools.product(("a", "b"), ("train", "test"), (250, 500)),
                                             range(100))]
    rows = statistics_rows(lines, {"a": "standing"})
    by = {r["identity"]: r for r in rows}
    for ident in ("a", "b"):
        mine = [l for l in lines if l["identity"] == ident]
        assert by[ident]["hours"] == pytest.approx(sum(l["num_frames"] / 25 for l in mine) / 3600)
        assert by[ident]["test_clips"] == sum(l["split"] == "test" for l in mine)
    assert by["a"]["posture"] == "standing" and by["b"]["posture"] == "unknown"
    table = statistics_markdown(rows)
    assert table.count("\n") == 2 + 2 + 1 and "| **all** |" in table and "512x512" in table


# -- speakers file -----------------------------------------------------------------------------------


def test_speakers_file_reads_counts_and_names_bad_rows(tmp_path):
    path = tmp_path / "speakers.csv"
    path.write_text("clip_id,speakers,notes\n# comment\nx_s000,1,ok\nx_s001,2,\n")
    assert read_speaker_counts(path) == {"x_s000": 1, "x_s001": 2}
    path.write_text("clip_id,speakers\nx_s000,one\n")
    with pytest.raises(ValueError, match=r"row 2 \(x_s000\): speakers must be a whole number"):
        read_speaker_counts(path)
    path.write_text("clip,count\nx,1\n")
    with pytest.raises(ValueError, match="missing: clip_id, speakers"):
        read_speaker_counts(path)
    path.write_text("clip_id,speakers\nx,1\nx,2\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_speaker_counts(path)


# -- TalkNet outputs ---------------------------------------------------------------------------------


def test_smoothing_matches_a_direct_loop():
    import numpy as np

    from bench.data.prepare.speakers import smoothed_scores

    scores = np.random.default_rng(0).normal(size=37)
    expected = [np.mean(scores[max(i - 2, 0):i + 3]) for i in range(37)]
    np.testing.assert_allclose(smoothed_scores(scores), expected)


def test_talknet_scores_become_speaker_counts(tmp_path, capsys):
    import pickle

    import numpy as np

    from bench.cli import main as bench_main
    from bench.data.prepare.speakers import speaking_tracks

    speaking = np.r_[np.full(30, 1.5), np.full(70, -2.0)]       # speaks on ~30% of its frames
    silent = np.full(100, -1.0)
    assert speaking_tracks([speaking, silent], 0.2) == 1
    assert speaking_tracks([speaking, speaking], 0.2) == 2
    assert speaking_tracks([speaking], 0.5) == 0
    for clip, tracks in (("a_s000", [speaking, silent]), ("a_s001", [speaking, speaking.copy()])):
        (tmp_path / "talknet" / clip / "pywork").mkdir(parents=True)
        with open(tmp_path / "talknet" / clip / "pywork" / "scores.pckl", "wb") as f:
            pickle.dump(tracks, f)
    assert bench_main(["data", "speakers", str(tmp_path / "talknet"), "--out", str(tmp_path / "s.csv")]) == 0
    assert read_speaker_counts(tmp_path / "s.csv") == {"a_s000": 1, "a_s001": 2}
    assert "2 clip(s): 1 with one speaker" in capsys.readouterr().out


def test_talknet_pickles_are_read_without_running_code(tmp_path):
    import pickle

    from bench.data.prepare.speakers import talknet_speaker_counts

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    (tmp_path / "t" / "c" / "pywork").mkdir(parents=True)
    (tmp_path / "t" / "c" / "pywork" / "scores.pckl").write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(ValueError, match="forbidden object type"):
        talknet_speaker_counts(tmp_path / "t")
    assert not marker.exists()


@pytest.mark.parametrize("broken, said", [([float("nan")] * 30, r"track 1: 30 of 30 scores are not finite "
                                                                  r"\(frames 0, 1, 2, 3, 4 \.\.\.\)"),
                                           ([1.0, float("inf"), 1.0], r"track 1: 1 of 3 scores are not finite \(frames 1\)"),
                                           (["yes", "no"], r"track 1: scores are not numbers")])
def test_a_talknet_track_of_non_numbers_is_named_not_counted_as_silent(tmp_path, broken, said):
    # compared as >= 0, a NaN track read as a silent person: a clip with two speakers would be kept
    import pickle

    from bench.data.prepare.speakers import talknet_speaker_counts

    (tmp_path / "t" / "c" / "pywork").mkdir(parents=True)
    (tmp_path / "t" / "c" / "pywork" / "scores.pckl").write_bytes(pickle.dumps([[1.0] * 30, broken]))
    with pytest.raises(ValueError, match=rf"c/pywork/scores.pckl: {said}"):
        talknet_speaker_counts(tmp_path / "t")


# -- the constant-rate timeline and the audio under a clip -------------------------------------------


def test_timeline_picks_the_nearest_frame_in_time():
    import numpy as np

    from bench.data.prepare.sources import make_timeline

    same = make_timeline(np.arange(100) / 25, 25)
    np.testing.assert_array_equal(same.source_index, np.arange(100))
    down = make_timeline(np.arange(120) / 30, 25)               # 4 s at 30 fps -> 25 fps
    assert down.num_frames == 100
    times = np.arange(120) / 30
    expected = [int(np.argmin(np.abs(times - k / 25))) for k in range(100)]
    np.testing.assert_array_equal(down.source_index, expected)
    offset = make_timeline(0.5 + np.arange(10) / 10, 10)        # a stream starting at 0.5 s
    assert offset.start == 0.5 and list(offset.source_index) == list(range(10))


def test_scenes_follow_the_frames_they_show():
    import numpy as np

    from bench.data.prepare.sources import Timeline, scenes_on_timeline

    timeline = Timeline(25.0, 0.0, np.array([0, 1, 1, 2, 4, 5, 6, 6, 7]))
    scenes = scenes_on_timeline([4, 7], timeline)
    assert [(s.start, s.end) for s in scenes] == [(0, 4), (4, 8), (8, 9)]
    assert [(s.start, s.end) for s in scenes_on_timeline([], timeline)] == [(0, 9)]


def test_clip_audio_is_cut_at_the_frames_times_with_gaps_filled():
    import numpy as np

    from bench.data.prepare.sources import Scene, clip_audio_samples

    audio = np.arange(16000 * 4, dtype=np.float32)
    piece, missing = clip_audio_samples(audio, 0.0, Scene(25, 50), 25)
    np.testing.assert_array_equal(piece, audio[16000:32000]) and missing == 0
    # the video starts 0.25 s after the audio: every cut moves 4000 samples later
    piece, missing = clip_audio_samples(audio, 0.25, Scene(25, 50), 25)
    np.testing.assert_array_equal(piece, audio[20000:36000])
    # the audio starts 0.5 s after the video: the first 0.5 s of the clip are silence
    piece, missing = clip_audio_samples(audio, -0.5, Scene(0, 25), 25)
    assert missing == 8000 and not piece[:8000].any() and np.array_equal(piece[8000:], audio[:8000])
    # past the end
    piece, missing = clip_audio_samples(audio, 0.0, Scene(75, 125), 25)
    assert len(piece) == 32000 and missing == 16000


def test_long_scenes_are_cut_into_the_fewest_equal_pieces():
    from bench.data.prepare.sources import Scene, clip_id, split_long_scenes

    scenes = [Scene(0, 100), Scene(100, 351), Scene(351, 600)]
    clips = split_long_scenes(scenes, 100)
    assert [(i, p, s.start, s.end) for i, p, s in clips] == [
        (0, None, 0, 100), (1, 0, 100, 184), (1, 1, 184, 267), (1, 2, 267, 351),
        (2, 0, 351, 434), (2, 1, 434, 517), (2, 2, 517, 600)]
    assert all(s.num_frames <= 100 for _, _, s in clips)
    # pieces tile each scene exactly
    assert sum(s.num_frames for _, _, s in clips) == 600
    assert [s for _, _, s in split_long_scenes(scenes, None)] == scenes
    assert clip_id("rec", 1, 2) == "rec_s001p2" and clip_id("rec", 1) == "rec_s001"
