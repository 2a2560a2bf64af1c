"""The metric formulas against independent references: scipy, numpy and direct loops."""

import numpy as np
import pytest
import scipy.linalg

from metrics.beats import beat_alignment_score, beats_from_speed, kinetic_speed
from metrics.bootstrap import bootstrap_interval
from metrics.diversity import l1_diversity, mean_pairwise_distance
from metrics.frechet import frechet_distance
from metrics.protocol import Protocol, get_protocol, preset_of
from metrics.stats import GaussianStats, frechet_from_parts


def scipy_frechet(mu1, s1, mu2, s2):
    """The pytorch-fid route, written for current SciPy (no ``disp`` argument)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_gaussian(rng, d, n):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d)
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


@pytest.mark.parametrize("d", [1, 5, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, s1 = random_gaussian(rng, d, 4 * d + 10)
    mu2, s2 = random_gaussian(rng, d, 4 * d + 10)
    ours, ref = frechet_distance(mu1, s1, mu2, s2), scipy_frechet(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_known_values_and_invariants():
    # Two 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    mu, s = random_gaussian(rng, 10, 50)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    mu2, s2 = random_gaussian(rng, 10, 50)
    assert frechet_distance(mu, s, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu, s), rel=1e-9)


def test_frechet_distance_handles_singular_covariances():
    rng = np.random.default_rng(1)
    d = 50
    a, b = rng.normal(size=(10, d)), rng.normal(size=(12, d)) + 0.5  # N < d: rank-deficient
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    value = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    assert np.isfinite(value) and value > 0
    # scipy's route on the same input, where it still works, agrees to a loose tolerance.
    assert value == pytest.approx(scipy_frechet(a.mean(0), s1, b.mean(0), s2), rel=1e-4)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_gaussian_stats_match_numpy_and_merge():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=(300, 7))
    stats = GaussianStats(7)
    for batch in np.array_split(x, 7):
        stats.update(batch)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance("unbiased"), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.covariance("biased"), np.cov(x, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    left, right = GaussianStats(7).update(x[:120]), GaussianStats(7).update(x[120:])
    merged = left.merge(right)
    np.testing.assert_allclose(merged.covariance(), stats.covariance(), rtol=1e-10)
    again = GaussianStats.from_state_dict(stats.state_dict())
    np.testing.assert_array_equal(again.outer, stats.outer)
    with pytest.raises(ValueError, match="dimension"):
        GaussianStats(3).merge(stats)
    with pytest.raises(ValueError, match="NaN"):
        GaussianStats(2).update(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        GaussianStats(2).update(np.ones((1, 2))).covariance()


def test_frechet_from_parts_equals_pooled_features():
    rng = np.random.default_rng(3)
    real = [rng.normal(size=(20, 4)) for _ in range(3)]
    fake = [rng.normal(0.3, 1.2, size=(15, 4)) for _ in range(4)]
    value = frechet_from_parts([GaussianStats(4).update(r) for r in real], [GaussianStats(4).update(f) for f in fake],
                               "unbiased")
    a, b = np.concatenate(real), np.concatenate(fake)
    assert value == pytest.approx(scipy_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)),
                                  rel=1e-6)


@pytest.mark.parametrize("form", ["vectors", "matrices"])
def test_frechet_of_subsets_with_fewer_vectors_than_dimensions_equals_scipy(form):
    """Fewer pooled vectors than dimensions (the FVD of a benchmark: a few I3D clips per video in
    400-d) takes the factor route; parts that kept their vectors and parts restored from a saved
    d x d matrix both give scipy's sqrtm distance of the pooled features, whole and subsets."""
    rng = np.random.default_rng(11)
    d = 40
    real = [rng.normal(size=(3, d)) @ rng.normal(size=(d, d)) / 6 for _ in range(6)]
    fake = [rng.normal(0.2, 1.3, size=(int(rng.integers(2, 5)), d)) for _ in range(7)]

    def parts(clips):
        stats = [GaussianStats(d).update(c) for c in clips]
        if form == "matrices":
            for p in stats:
                p.outer  # fold the vectors into the matrix, as a state saved in that form
            stats = [GaussianStats.from_state_dict(p.state_dict()) for p in stats]
            assert all(p._outer is not None for p in stats)
        return stats

    real_parts, fake_parts = parts(real), parts(fake)
    for r_index, f_index in [(np.arange(6), np.arange(7)), (np.array([0, 2, 5]), np.array([1, 3, 4, 6]))]:
        a, b = np.concatenate([real[i] for i in r_index]), np.concatenate([fake[i] for i in f_index])
        assert len(a) < d and len(b) < d
        for estimator, bias in (("unbiased", False), ("biased", True)):
            expected = scipy_frechet(a.mean(0), np.cov(a, rowvar=False, bias=bias),
                                     b.mean(0), np.cov(b, rowvar=False, bias=bias))
            value = frechet_from_parts(real_parts, fake_parts, estimator, r_index, f_index)
            assert value == pytest.approx(expected, rel=1e-6)


def test_gaussian_stats_state_round_trips_and_rejects_foreign_arrays():
    rng = np.random.default_rng(12)
    compact = GaussianStats(6).update(rng.normal(size=(2, 6)))
    again = GaussianStats.from_state_dict(compact.state_dict())
    np.testing.assert_array_equal(again.outer, compact.outer)
    assert again.count == 2
    with pytest.raises(ValueError, match="rows"):
        GaussianStats.from_state_dict({"count": np.array(3), "total": np.zeros(6), "rows": np.zeros((2, 6))})
    with pytest.raises(ValueError, match="outer"):
        GaussianStats.from_state_dict({"count": np.array(3), "total": np.zeros(6), "outer": np.zeros((5, 6))})
    with pytest.raises(ValueError, match="GaussianStats"):
        GaussianStats.from_state_dict({"count": np.array(3)})


def direct_bas(source, target, sigma):
    if len(source) == 0 or len(target) == 0:
        return 0.0
    total = 0.0
    for s in source:
        d = min(abs(s - t) for t in target)
        total += np.exp(-d * d / (2 * sigma * sigma))
    return total / len(source)


def test_beat_alignment_score_matches_a_direct_loop_in_both_directions():
    rng = np.random.default_rng(4)
    for _ in range(20):
        motion, audio = np.sort(rng.uniform(0, 10, rng.integers(1, 15))), rng.uniform(0, 10, rng.integers(1, 40))
        sigma = rng.uniform(0.03, 0.5)
        assert beat_alignment_score(motion, audio, sigma, "motion_to_audio") == pytest.approx(direct_bas(motion, audio, sigma))
        assert beat_alignment_score(motion, audio, sigma, "audio_to_motion") == pytest.approx(direct_bas(audio, motion, sigma))


def test_beat_alignment_score_edge_cases():
    assert beat_alignment_score([1.0, 2.0], [1.0, 2.0], 0.1) == pytest.approx(1.0)
    # No beats on either side: nothing is aligned, the score is 0 (a still video scores worst).
    assert beat_alignment_score([], [1.0, 2.0], 0.1, "motion_to_audio") == 0.0
    assert beat_alignment_score([1.0], [], 0.1, "motion_to_audio") == 0.0
    assert beat_alignment_score([], [], 0.1, "audio_to_motion") == 0.0
    with pytest.raises(ValueError, match="direction"):
        beat_alignment_score([1.0], [1.0], 0.1, "sideways")
    with pytest.raises(ValueError, match="sigma"):
        beat_alignment_score([1.0], [1.0], 0.0)


def test_motion_beats_are_the_stops_after_movements():
    fps = 25.0
    t = np.arange(250) / fps
    # A joint moving back and forth: speed |cos|, stops at multiples of 0.5 s after t=0.25.
    x = np.sin(2 * np.pi * 1.0 * t)
    positions = np.stack([x, np.zeros_like(x)], -1)[:, None, :]
    speed = kinetic_speed(positions, fps, smoothing=1.0)
    beats = beats_from_speed(speed, fps, prominence=0.5, min_gap=0.2)
    expected = np.arange(0.25, 9.9, 0.5)
    assert len(beats) == len(expected)
    np.testing.assert_allclose(beats, expected, atol=0.041)
    # A still joint with small jitter gives no beat.
    still = positions * 0 + np.random.default_rng(0).normal(0, 0.002, positions.shape)
    assert len(beats_from_speed(kinetic_speed(still, fps, 2.0), fps, prominence=0.1, min_gap=0.2)) == 0


def test_diversity_formulas_match_brute_force():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 6))
    brute = np.mean([np.linalg.norm(x[i] - x[j]) for i in range(30) for j in range(i + 1, 30)])
    assert mean_pairwise_distance(x) == pytest.approx(brute, rel=1e-9)
    seq = rng.normal(size=(40, 5, 2))
    # EMAGE's L1div: the SUM over coordinates of |x - mean over frames|, divided by the frames.
    assert l1_diversity([seq]) == pytest.approx(np.abs(seq - seq.mean(0)).sum() / len(seq))
    assert mean_pairwise_distance(np.ones((5, 3))) == 0.0
    with pytest.raises(ValueError):
        mean_pairwise_distance(np.ones((1, 3)))


def test_diversity_pairs_within_identity_or_pooled():
    from metrics.diversity import Diversity

    rng = np.random.default_rng(6)
    clips = {"a": [rng.normal(size=(4, 3)), rng.normal(size=(5, 3))], "b": [rng.normal(loc=10.0, size=(6, 3))]}

    def brute(rows):
        return np.mean([np.linalg.norm(rows[i] - rows[j]) for i in range(len(rows)) for j in range(i + 1, len(rows))])

    within, pooled = Diversity(Protocol()), Diversity(Protocol(diversity_pairs="all"))
    for identity, parts in clips.items():
        for part in parts:
            within.update(part, identity)
            pooled.update(part, identity)
    expected = np.mean([brute(np.concatenate(clips["a"])), brute(clips["b"][0])])
    assert within.compute() == pytest.approx(expected, rel=1e-9)
    assert pooled.compute() == pytest.approx(brute(np.concatenate(clips["a"] + clips["b"])), rel=1e-9)
    assert pooled.compute() > 2 * within.compute()      # the far-apart speaker inflates pooled pairs
    with pytest.raises(ValueError, match="diversity_pairs"):
        Protocol(diversity_pairs="between")


def test_bootstrap_interval_is_reproducible_and_covers_the_mean():
    rng = np.random.default_rng(6)
    data = rng.normal(10.0, 1.0, 200)
    stat = lambda i: float(data[i].mean())
    low, high = bootstrap_interval(stat, (200,), 300, seed=1)
    assert (low, high) == bootstrap_interval(stat, (200,), 300, seed=1)
    assert low < data.mean() < high and high - low < 0.5
    assert all(np.isnan(v) for v in bootstrap_interval(stat, (1,), 300, seed=1))


def test_protocol_presets_and_digest():
    aist, emage = get_protocol("aist"), get_protocol("emage")
    assert aist.bas_direction == "motion_to_audio" and aist.bas_sigma == 0.05
    assert emage.bas_direction == "audio_to_motion" and emage.bas_sigma == 0.3
    assert emage.name == "imac-bench+emage" and preset_of(emage, "BAS") == "emage"
    assert preset_of(emage, "FVD") == "imac-bench" and get_protocol() == Protocol()
    assert Protocol().digest == Protocol.from_dict(Protocol().to_dict()).digest
    custom = get_protocol("imac-bench", bas_sigma=0.1)
    assert custom.name == "imac-bench+custom" and custom.digest != Protocol().digest
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        get_protocol("nope")
    with pytest.raises(ValueError, match="'aist' and 'emage' both set BAS"):
        get_protocol("aist+emage")
    with pytest.raises(ValueError):
        Protocol(bas_direction="both")


def test_skeleton_fill_normalise_resample():
    from metrics.pose import wholebody as wb
    from metrics.skeleton import SkeletonError, fill_missing, normalise, resample, skeleton_sequence, windows

    frames = 10
    kp = np.zeros((frames, wb.NUM_KEYPOINTS, 3))
    kp[:, wb.index_of("left_shoulder")] = (80, 40, 1)
    kp[:, wb.index_of("right_shoulder")] = (40, 40, 1)
    wrist = wb.index_of("left_wrist")
    kp[:, wrist, 0] = np.arange(frames) * 2.0
    kp[:, wrist, 1] = 70
    kp[:, wrist, 2] = 1
    kp[4:6, wrist, 2] = 0.1                      # missing for two frames: interpolated
    kp[:, wb.LEFT_HAND.start] = kp[:, wrist]     # the hand's wrist point
    tip = wb.hand_index("left", "index", 4)      # never visible: falls back on the hand's wrist
    xy, shoulders = fill_missing(kp, 0.3, [wrist, tip, wb.index_of("nose")])
    np.testing.assert_allclose(xy[:, 0, 0], np.arange(frames) * 2.0)
    np.testing.assert_allclose(xy[:, 1], xy[:, 0])
    np.testing.assert_allclose(xy[:, 2], np.tile([60.0, 40.0], (frames, 1)))  # the neck
    norm = normalise(xy, shoulders)
    np.testing.assert_allclose(norm[:, 2], 0.0)                      # the neck is the origin
    np.testing.assert_allclose(norm[0, 0], [(0 - 60) / 40, (70 - 40) / 40])  # shoulder width 40 px
    seq, visible = skeleton_sequence(kp, 50.0, [wrist], 0.3, 25.0)
    assert seq.shape == (5, 1, 2) and visible == pytest.approx(0.8)
    t = np.arange(7) / 3.0
    np.testing.assert_allclose(resample(np.sin(t)[:, None], 3.0, 5.0)[:, 0], np.interp(np.arange(11) / 5.0, t, np.sin(t)))
    assert windows(np.zeros((40, 2)), 32, 4).shape == (3, 32, 2)
    assert windows(np.zeros((20, 2)), 32, 4).shape == (0, 32, 2)
    kp[:, wb.index_of("right_shoulder"), 2] = 0
    with pytest.raises(SkeletonError, match="shoulder"):
        skeleton_sequence(kp, 25.0, [wrist], 0.3, 25.0, source="clip.mp4")


def _all_reduce_worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    rng = np.random.default_rng(rank)
    stats = GaussianStats(3).update(rng.normal(rank, 1.0, size=(10 + rank, 3)))
    stats.all_reduce()
    queue.put((rank, stats.count, stats.mean.tolist()))
    dist.destroy_process_group()


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_gaussian_stats_all_reduce_over_two_processes():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_all_reduce_worker, args=(r, port, queue)) for r in range(2)]
    for w in workers:
        w.start()
    results = sorted(queue.get(timeout=60) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    data = [np.random.default_rng(r).normal(r, 1.0, size=(10 + r, 3)) for r in range(2)]
    expected = np.concatenate(data).mean(0)
    for _, count, mean in results:
        assert count == 21
        np.testing.assert_allclose(mean, expected, rtol=1e-12)


def test_gaussian_stats_compact_parts_merge_exactly():
    """Per-clip accumulators with few vectors keep the vectors; pooling them equals numpy."""
    rng = np.random.default_rng(7)
    clips = [rng.normal(size=(int(rng.integers(1, 10)), 50)) for _ in range(30)]
    parts = [GaussianStats(50).update(c) for c in clips]
    assert all(p._outer is None for p in parts)  # compact: fewer than d / 2 vectors each
    pooled = GaussianStats.combine(parts, 50)
    x = np.concatenate(clips)
    np.testing.assert_allclose(pooled.covariance(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    grown = GaussianStats(50)
    for c in clips:
        grown.update(c)  # passes d / 2 on the way and switches to the matrix
    assert grown._outer is not None
    np.testing.assert_allclose(grown.outer, x.T @ x, rtol=1e-10)
