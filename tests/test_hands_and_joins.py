"""HKC, HKV and the chunk joins: each per-clip function against a direct loop or hand-computed values,
the seam detector on synthetic videos with known seams, and the set-level mean's interval."""

import math

import numpy as np
import pytest
from scipy import stats

from metrics import chunk_joins as cj
from metrics.hands import (
    hand_keypoint_confidence,
    hand_keypoint_variance,
    shoulder_width,
)
from metrics.protocol import Protocol, get_protocol
from metrics.registry import REGISTRY, ClipMean, normalise_metrics

# -- HKC / HKV ------------------------------------------------------------------------------------


def test_hkc_is_the_mean_score_of_the_hand_points_counting_undetected_ones():
    keypoints = np.zeros((2, 133, 3))
    keypoints[0, 91, 2], keypoints[0, 92, 2] = 0.9, 0.1     # frame 0: one good, one poor point
    keypoints[1, 91, 2], keypoints[1, 92, 2] = 0.5, 0.0     # frame 1: one middling, one undetected
    keypoints[:, 0, 2] = 1.0                                # a body point: not a hand point, ignored
    # by hand: (0.9 + 0.1 + 0.5 + 0.0) / 4 = 0.375
    assert hand_keypoint_confidence(keypoints, [91, 92]) == pytest.approx(0.375)


def test_hkv_by_hand_on_two_points():
    keypoints = np.zeros((4, 133, 3))
    # point 91 visible in all 4 frames at x = 0, 2, 4, 6 (y fixed): var(x) = mean of (3, 1, 1, 3)^2 = 5
    keypoints[:, 91, 0] = [0, 2, 4, 6]
    keypoints[:, 91, 2] = 1.0
    # point 92 visible in frames 0 and 1 only, at (0, 0) and (2, 2): var x = 1, var y = 1 -> 2;
    # frames 2 and 3 are far away but invisible, so they must not count
    keypoints[:, 92, :2] = [[0, 0], [2, 2], [100, 100], [-50, 7]]
    keypoints[:, 92, 2] = [0.9, 0.8, 0.1, 0.0]
    # point 93 visible in 1 frame only: left out (fewer than 2 frames)
    keypoints[0, 93] = [5, 5, 1.0]
    assert hand_keypoint_variance(keypoints, [91, 92, 93], threshold=0.3) == pytest.approx((5 + 2) / 2)
    # in units of a scale of 2 pixels the variance divides by 4
    assert hand_keypoint_variance(keypoints, [91, 92, 93], 0.3, scale=2.0) == pytest.approx(3.5 / 4)
    assert math.isnan(hand_keypoint_variance(keypoints, [93], 0.3))


def test_hkv_matches_a_direct_loop_on_random_keypoints():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform(0, 100, (30, 133, 3))
    keypoints[..., 2] = rng.uniform(0, 1, (30, 133))
    points = list(range(91, 133))
    total, used = 0.0, 0
    for point in points:
        xs = [keypoints[f, point, 0] for f in range(30) if keypoints[f, point, 2] >= 0.3]
        ys = [keypoints[f, point, 1] for f in range(30) if keypoints[f, point, 2] >= 0.3]
        if len(xs) < 2:
            continue
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        total += sum((x - mx) ** 2 for x in xs) / len(xs) + sum((y - my) ** 2 for y in ys) / len(ys)
        used += 1
    assert hand_keypoint_variance(keypoints, points, 0.3) == pytest.approx(total / used, rel=1e-12)


def test_shoulder_width_is_the_median_over_frames_with_both_shoulders():
    keypoints = np.zeros((3, 133, 3))
    keypoints[:, 5, :] = [[0, 0, 1], [0, 0, 1], [0, 0, 0.1]]
    keypoints[:, 6, :] = [[3, 4, 1], [6, 8, 1], [60, 80, 1]]      # widths 5, 10; frame 2 not seen
    assert shoulder_width(keypoints, 0.3) == pytest.approx(7.5)


# -- chunk joins ----------------------------------------------------------------------------------


def test_frame_differences_and_reference_distances_match_direct_loops():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 3, 4, 3), dtype=np.uint8)
    for t in range(4):
        expected = sum(abs(int(frames[t + 1, y, x, c]) - int(frames[t, y, x, c]))
                       for y in range(3) for x in range(4) for c in range(3)) / 36
        assert cj.frame_differences(frames)[t] == pytest.approx(expected)
    reference = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    for t in range(5):
        expected = sum(abs(int(frames[t, y, x, c]) - int(reference[y, x, c]))
                       for y in range(3) for x in range(4) for c in range(3)) / 36
        assert cj.reference_distances(frames, reference)[t] == pytest.approx(expected)


def test_velocity_kinks_match_a_direct_loop():
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(0, 50, (8, 133, 3))
    keypoints[..., 2] = 1.0
    keypoints[4, 10, 2] = 0.0                     # point 10 unseen in frame 4
    points = [9, 10]
    out = cj.velocity_kinks(keypoints, points, 0.3)
    assert math.isnan(out[0]) and math.isnan(out[-1])
    for t in range(1, 6):
        values = []
        for p in points:
            if all(keypoints[f, p, 2] >= 0.3 for f in range(t - 1, t + 3)):
                v = [keypoints[k + 1, p, :2] - keypoints[k, p, :2] for k in (t - 1, t, t + 1)]
                values.append(float(np.hypot(*(v[1] - (v[0] + v[2]) / 2))))
        assert out[t] == pytest.approx(sum(values) / len(values))


def test_a_position_jump_gives_the_full_kink_at_the_seam():
    keypoints = np.zeros((10, 133, 3))
    keypoints[:, 9, 0] = np.arange(10) * 2.0       # constant velocity: no kink
    keypoints[6:, 9, 0] += 5.0                     # a jump of 5 px between frames 5 and 6 (transition 5)
    keypoints[:, 9, 2] = 1.0
    out = cj.velocity_kinks(keypoints, [9], 0.3)
    assert out[5] == pytest.approx(5.0)
    assert out[4] == pytest.approx(2.5) and out[6] == pytest.approx(2.5)
    assert out[2] == pytest.approx(0.0) and out[7] == pytest.approx(0.0) and math.isnan(out[8])


def _smooth_video(frames: int, seed: int = 0) -> np.ndarray:
    """A 24 x 24 gradient drifting smoothly with a little pixel noise: no seams."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:24, 0:24]
    video = []
    for t in range(frames):
        shift = 6 * math.sin(t / 9.0) + 2 * math.sin(t / 3.7)
        image = 120 + 60 * np.sin((x + shift) / 5.0) + 20 * np.cos((y - shift / 2) / 4.0)
        image = image[..., None].repeat(3, -1) + rng.normal(0, 2.0, (24, 24, 3))
        video.append(np.clip(image, 0, 255))
    return np.round(video).astype(np.uint8)


def _with_seams(video: np.ndarray, period: int, offset: int, jump: float = 12.0, seed: int = 1) -> np.ndarray:
    """Each chunk after a seam at transition offset + k * period gets its own brightness offset."""
    rng = np.random.default_rng(seed)
    out = video.astype(np.float64)
    for boundary in range(offset, len(video) - 1, period):
        out[boundary + 1:] += rng.choice([-1, 1]) * jump
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_the_detector_finds_known_seams_and_a_seamless_video_gives_one():
    protocol = Protocol()
    args = (protocol.join_min_period, protocol.join_max_period, protocol.join_min_boundaries,
            protocol.join_detection_z)
    smooth = _smooth_video(150)
    d = cj.frame_differences(smooth)
    period, offset, z = cj.detect_period(d, *args)
    assert (period, offset) == (0, 0) and z < protocol.join_detection_z
    assert cj.join_ratio(d, period, offset) == 1.0
    # IMAC's layout: 16-frame chunks, each starting on the previous one's last frame, so seams at
    # transitions 15, 30, 45, ... (period 15, offset 15); and another layout, period 8 from 7
    for true_period, true_offset in ((15, 15), (8, 7), (20, 3)):
        seamed = cj.frame_differences(_with_seams(smooth, true_period, true_offset))
        period, offset, z = cj.detect_period(seamed, *args)
        assert (period, offset) == (true_period, true_offset), (true_period, true_offset, period, offset, z)
        # the ratio against the same boundaries computed directly
        boundary = [t for t in range(len(seamed)) if t >= true_offset and (t - true_offset) % true_period == 0]
        inside = np.mean([seamed[t] for t in boundary])
        outside = np.mean([seamed[t] for t in range(len(seamed)) if t not in boundary])
        assert cj.join_ratio(seamed, period, offset) == pytest.approx(inside / outside)
        assert inside / outside > 2.0


def test_one_large_gesture_at_a_candidate_boundary_makes_no_period():
    d = cj.frame_differences(_smooth_video(120, seed=4))
    d[30] += 40.0                                   # one big jump (a fast gesture), not a period
    protocol = Protocol()
    period, _, _ = cj.detect_period(d, protocol.join_min_period, protocol.join_max_period,
                                    protocol.join_min_boundaries, protocol.join_detection_z)
    assert period == 0


def test_a_still_video_is_seamless_and_does_not_drift():
    still = np.repeat(_smooth_video(1), 40, axis=0)
    values = cj.clip_joins(still, None, still[0], 25.0, {}, Protocol())
    assert values["ratio_appearance"] == 1.0 and values["period"] == 0
    assert values["drift"] == 0.0 and values["reference_distance"] == 0.0


def test_stated_period_is_used_only_when_the_protocol_takes_it():
    video = _with_seams(_smooth_video(150), 15, 15)
    hints = {"chunk_period": 15, "chunk_offset": 15}
    detected = cj.clip_joins(video, None, video[0], 25.0, hints, Protocol())
    assert detected["source"] == cj.SOURCE_DETECTED and detected["period"] == 15
    stated = cj.clip_joins(video, None, video[0], 25.0, hints, Protocol(join_period_source="facts_or_detect"))
    assert stated["source"] == cj.SOURCE_FACTS and (stated["period"], stated["offset"]) == (15, 15)
    with pytest.raises(ValueError, match="chunk_period"):
        cj.clip_joins(video, None, video[0], 25.0, {"chunk_period": "16"}, Protocol(join_period_source="facts_or_detect"))


def test_drift_slope_is_the_least_squares_slope_per_second():
    rng = np.random.default_rng(2)
    distances = np.linspace(0, 10, 50) + rng.normal(0, 0.5, 50)
    expected = np.polyfit(np.arange(50) / 25.0, distances, 1)[0]
    assert cj.drift_slope(distances, 25.0) == pytest.approx(expected, rel=1e-10)


# -- the set level ---------------------------------------------------------------------------------


def test_clip_mean_interval_is_the_student_t_interval_and_nan_clips_keep_their_place():
    values = [1.0, 2.0, 4.0, float("nan"), 3.5, 2.5]
    mean = ClipMean("X", Protocol(), values)
    finite = np.array([1.0, 2.0, 4.0, 3.5, 2.5])
    assert mean.compute() == pytest.approx(finite.mean())
    assert mean.dropped == 1 and mean.warnings
    # the jackknife of a mean over the 6 clips (a NaN clip adds nothing) is not exactly the t interval
    # of the 5 values, so compare with the clips that all have values
    whole = ClipMean("X", Protocol(), finite)
    low, high = whole.interval()
    half = stats.t.ppf(0.975, 4) * finite.std(ddof=1) / math.sqrt(5)
    assert (low, high) == pytest.approx((finite.mean() - half, finite.mean() + half))
    assert mean.clip_statistic().sizes == (6,)      # clip i stays clip i for paired differences


def test_registry_protocol_and_presets():
    assert normalise_metrics("FGD, hkc,hkc") == ("fgd", "hkc")
    with pytest.raises(ValueError, match="unknown metrics.*choose from"):
        normalise_metrics(["fgd", "sync-c?"])
    assert REGISTRY["hkv"].preset_group == "Hands" and not REGISTRY["hkv"].lower_is_better
    assert get_protocol("cyberhost").hkv_space == "pixels"
    assert get_protocol("cyberhost").digest != Protocol().digest
    for field, value in (("hkv_space", "metres"), ("join_period_source", "guess"), ("hkv_min_frames", 1),
                         ("join_min_period", 1), ("join_detection_z", 0.0), ("hand_points", (200,))):
        with pytest.raises(ValueError, match=field):
            Protocol(**{field: value})


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_frame_series_over_chunks_match_direct_loops(chunk):
    """The joins read a video chunk by chunk (its frames are never all held): the series from any chunk
    size are those of direct loops over the whole video, across the chunks' edges too."""
    rng = np.random.default_rng(chunk)
    frames = rng.integers(0, 256, (9, 3, 4, 3), dtype=np.uint8)
    reference = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    differences, distances = cj.frame_series((frames[i : i + chunk] for i in range(0, 9, chunk)), reference)
    direct_d = [np.mean([abs(int(a) - int(b)) for a, b in zip(frames[t + 1].ravel(), frames[t].ravel())])
                for t in range(8)]
    direct_r = [np.mean([abs(int(a) - int(b)) for a, b in zip(frames[t].ravel(), reference.ravel())])
                for t in range(9)]
    np.testing.assert_allclose(differences, direct_d, rtol=1e-12)
    np.testing.assert_allclose(distances, direct_r, rtol=1e-12)
    with pytest.raises(ValueError, match="the reference image is"):
        cj.frame_series([frames], reference[:2])


def test_the_evaluator_gives_the_joins_chunks_not_the_whole_video(tmp_path, monkeypatch):
    """The default selection's joins and drift once made the evaluator hold every clip's decoded frames
    (a 59 KB video of 128 frames at 2048 x 2048: 3.6 GB; 1.0 GB now, the pose extractor's); now no
    whole video is decoded for them, and the values are those of the whole-array computation."""
    from metrics.evaluate import Evaluator, evaluate
    from metrics.io.video import read_video, write_video

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    video = np.repeat(base, 40, axis=0)
    video[::16] = 255 - video[::16]                       # a seam every 16 frames
    path = tmp_path / "fake" / "ines" / "ines_000.mp4"
    path.parent.mkdir(parents=True)
    write_video(path, video, 25)
    asked = []
    decode = Evaluator.decode

    def spy(self, clip, *args, **kwargs):
        asked.append(kwargs.get("want_frames", False))
        return decode(self, clip, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "decode", spy)
    result = evaluate(None, tmp_path / "fake", ["joins_app", "drift"], cache_dir=None, split=None)
    assert asked and not any(asked)
    frames = read_video(path)
    whole = cj.clip_joins(frames, None, frames[0], 25.0, {}, Protocol())
    assert result.scores["all"]["joins_app"].value == pytest.approx(whole["ratio_appearance"], rel=1e-12)
    assert result.scores["all"]["drift"].value == pytest.approx(whole["drift"], rel=1e-12)
    assert whole["period"] > 0 and whole["ratio_appearance"] > 1.5     # a seam is found: not a trivial 1.0
