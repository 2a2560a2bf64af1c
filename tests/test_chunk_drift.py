"""benchmarks/chunk_drift.py: the per-chunk yardstick of long videos, checked against direct loops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import chunk_drift  # noqa: E402


def test_chunks_are_the_samplers_chunks():
    # IMAC's sampler: chunks of 16 frames starting 0, 15, 30, ... (each on the previous one's last frame)
    assert chunk_drift.chunk_bounds(100, 16, 6) == [(0, 16), (15, 31), (30, 46), (45, 61), (60, 76), (75, 91)]
    assert chunk_drift.chunk_bounds(40, 16, 6) == [(0, 16), (15, 31)]


def test_drift_and_found_match_direct_loops():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8)
    first = frames[0]
    expected = 0.0
    for y in range(4):
        for x in range(3):
            for ch in range(3):
                mean = sum(int(frames[f, y, x, ch]) for f in range(5)) / 5
                expected += abs(mean - int(first[y, x, ch]))
    assert abs(chunk_drift.drift(frames, first) - expected / 36) < 1e-12

    keypoints = np.zeros((2, 133, 3), np.float32)
    keypoints[0, [0, 5, 6], 2] = 0.9       # nose and shoulders in frame 0
    keypoints[1, 9, 2] = 0.3               # a wrist exactly at the threshold in frame 1
    keypoints[1, 20, 2] = 1.0              # a foot point: not an upper-body point
    assert chunk_drift.found_share(keypoints) == 4 / 14


def test_point_steps_match_a_direct_loop_over_points_found_in_both_frames():
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(0, 50, (6, 133, 3))
    keypoints[..., 2] = rng.uniform(0, 1, (6, 133))
    expected = []
    for f in range(5):
        for point in (0, 5, 6, 7, 8, 9, 10):          # nose, shoulders, elbows, wrists (COCO-WholeBody)
            if keypoints[f, point, 2] >= 0.3 and keypoints[f + 1, point, 2] >= 0.3:
                dx = keypoints[f + 1, point, 0] - keypoints[f, point, 0]
                dy = keypoints[f + 1, point, 1] - keypoints[f, point, 1]
                expected.append((dx * dx + dy * dy) ** 0.5)
    assert np.allclose(sorted(chunk_drift.point_steps(keypoints)), sorted(expected)) and len(expected) > 5
    still = np.zeros((4, 133, 3))
    still[:, :, 2] = 1.0
    assert np.all(chunk_drift.point_steps(still) == 0) and len(chunk_drift.point_steps(still)) == 3 * 7


def test_wrist_spread_is_the_found_positions_standard_deviation():
    rng = np.random.default_rng(2)
    keypoints = np.zeros((8, 133, 3))
    keypoints[:, :, :2] = rng.uniform(0, 64, (8, 133, 2))
    keypoints[:, 9, 2] = [1, 1, 0, 1, 0.3, 0, 1, 0.1]    # left wrist found in frames 0, 1, 3, 4, 6
    keypoints[:, 10, 2] = 0.0                            # right wrist never found: left out, not 0
    keypoints[:, 0, 2] = 1.0                             # the nose moves, but is not a wrist
    xs = [keypoints[f, 9, 0] for f in (0, 1, 3, 4, 6)]
    ys = [keypoints[f, 9, 1] for f in (0, 1, 3, 4, 6)]

    def variance(values):                                # population variance, by hand
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / len(values)

    expected = (variance(xs) + variance(ys)) ** 0.5
    assert abs(chunk_drift.wrist_spread(keypoints) - expected) < 1e-9
    keypoints[:, 10, 2] = 1.0
    keypoints[:, 10, :2] = [20.0, 30.0]                  # a still right wrist: spread 0, averaged in
    assert abs(chunk_drift.wrist_spread(keypoints) - expected / 2) < 1e-9
    keypoints[:, 9:11, 2] = 0.0
    assert np.isnan(chunk_drift.wrist_spread(keypoints))
    assert chunk_drift.spread_summary([float("nan"), 2.0, 4.0]) == (3.0, 2)
