"""Speed and memory of the metrics, measured side by side in one run.

    .venv/bin/python benchmarks/metrics_speed.py [--fvd-clips 50,500] [--skip-fvd]

1. Fréchet distance: the project's symmetric eigenvalue route vs the scipy ``sqrtm`` route
   (pytorch-fid's, written for current SciPy) at d = 400 and d = 2048, same inputs, best of 3.
2. BAS over one hour of 25 fps keypoints (90,000 frames): motion beats + alignment with
   speech beats given (the audio onset detection is librosa's and not timed here).
3. The I3D forward (untrained, 224 px, batches of 4 clips of 16 frames): the network and its input
   in the contiguous layout vs the channels-last 3-D layout that ``metrics.i3d.I3DFeatures`` uses,
   same weights and inputs, best of 3; seconds per clip and the largest logit difference.
4. The interval of a Fréchet distance over clips (jackknife + 200 half-samples, what every FVD and
   FGD of a benchmark table carries) with fewer vectors than dimensions (8 clips a side, 6 vectors
   each, d = 400: a benchmark's FVD): each subset's distance from pooled d x d covariances vs from
   the centred factors (``metrics.stats.subset_distance``); seconds and the largest relative
   difference of estimate and bounds.
5. FVD feature extraction: peak resident memory of a fresh process that runs the FVD accumulator
   (untrained I3D, CPU) over N videos of 16 frames streamed from disk, for each N; and its
   throughput in clips per second.
6. Recording a video's keypoints and I3D statistics (``Evaluator.decode``, what scoring does per
   video): the toy pose extractor on a second thread beside I3D (``Evaluator.pose_beside_i3d``, the
   default) vs both on one thread, on the test videos of a toy corpus (2 speakers, 128 px, as the
   benchmark's), alternating which goes first, best of 2; seconds per video and whether the keypoints
   and statistics are identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg


def scipy_route(mu1, s1, mu2, s2) -> float:
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def best_of(function, repeats: int = 3) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def frechet_benchmark() -> list[str]:
    from metrics.frechet import frechet_distance

    lines = ["| d | project (s) | scipy sqrtm (s) | speed-up | relative difference |", "|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for d in (400, 2048):
        feats = [rng.normal(size=(3 * d, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) for _ in range(2)]
        mus = [f.mean(0) for f in feats]
        sigmas = [np.cov(f, rowvar=False) for f in feats]
        ours_t, ours = best_of(lambda: frechet_distance(mus[0], sigmas[0], mus[1], sigmas[1]))
        ref_t, ref = best_of(lambda: scipy_route(mus[0], sigmas[0], mus[1], sigmas[1]))
        lines.append(f"| {d} | {ours_t:.3f} | {ref_t:.3f} | {ref_t / ours_t:.1f}x | {abs(ours - ref) / abs(ref):.1e} |")
    return lines


def bas_benchmark() -> str:
    from metrics.beats import beat_alignment_score, motion_beats
    from metrics.pose import wholebody as wb

    fps, frames = 25.0, 25 * 3600
    rng = np.random.default_rng(1)
    t = np.arange(frames) / fps
    keypoints = np.zeros((frames, wb.NUM_KEYPOINTS, 3), dtype=np.float32)
    keypoints[..., 2] = 1.0
    keypoints[:, wb.index_of("left_shoulder"), :2] = (80, 50)
    keypoints[:, wb.index_of("right_shoulder"), :2] = (50, 50)
    for name in ("left_wrist", "right_wrist", "left_elbow", "right_elbow"):
        phase = rng.uniform(0, 6.28)
        keypoints[:, wb.index_of(name), 0] = 64 + 10 * np.sin(2 * np.pi * 0.8 * t + phase)
        keypoints[:, wb.index_of(name), 1] = 90 + 5 * np.cos(2 * np.pi * 1.3 * t + phase)
    audio = np.sort(rng.uniform(0, 3600, 3600 * 4))
    start = time.perf_counter()
    beats = motion_beats(keypoints, fps)
    score = beat_alignment_score(beats, audio, 0.05)
    seconds = time.perf_counter() - start
    return (f"BAS over one hour of 25 fps keypoints (90,000 frames, {len(beats)} motion beats, {len(audio)} "
            f"speech beats): {seconds:.2f} s (score {score:.3f})")


def i3d_layout_benchmark(repeats: int = 3) -> list[str]:
    import torch

    from metrics.i3d import InceptionI3d, init_untrained_

    network = init_untrained_(InceptionI3d(), 0).eval()
    clips = torch.rand(4, 3, 16, 224, 224, generator=torch.Generator().manual_seed(3)) * 2 - 1
    lines = ["| I3D layout | seconds per clip | max logit difference |", "|---|---|---|"]
    with torch.no_grad():
        plain_t, plain = best_of(lambda: network(clips), repeats)
        network = network.to(memory_format=torch.channels_last_3d)
        last = clips.contiguous(memory_format=torch.channels_last_3d)
        last_t, fast = best_of(lambda: network(last), repeats)
    lines.append(f"| contiguous (N, C, T, H, W) | {plain_t / len(clips):.3f} | |")
    lines.append(f"| channels-last 3-D (I3DFeatures) | {last_t / len(clips):.3f} | "
                 f"{float((fast - plain).abs().max()):.1e} of {float(plain.abs().max()):.2f} |")
    lines.append(f"\nspeed-up {plain_t / last_t:.2f}x ({torch.get_num_threads()} torch threads)")
    return lines


FVD_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(sys.argv[3])))
from peak_memory import peak_rss_bytes
from metrics.fvd import FVD
from metrics.i3d import load_i3d
paths = sorted(Path(sys.argv[1]).glob("*.mp4"))[: int(sys.argv[2])]
metric = FVD(load_i3d(None, batch_size=8))
start = time.perf_counter()
for path in paths:
    metric.update_file(path, real=True)
seconds = time.perf_counter() - start
print(json.dumps({"videos": len(paths), "seconds": seconds,
                  "peak_rss_mb": peak_rss_bytes() / 2**20}))
"""


def frechet_interval_benchmark(clips: int = 8, vectors: int = 6, d: int = 400) -> list[str]:
    from metrics.frechet import frechet_distance
    from metrics.intervals import jackknife_interval
    from metrics.stats import GaussianStats, _Subsets, subset_distance

    rng = np.random.default_rng(3)
    sides = [_Subsets([GaussianStats(d).update(rng.normal(shift, 1.0, size=(vectors, d))) for _ in range(clips)])
             for shift in (0.0, 0.1)]

    def pooled(r, f):
        (_, m1, s1), (_, m2, s2) = sides[0].pooled(r, "unbiased"), sides[1].pooled(f, "unbiased")
        return frechet_distance(m1, s1, m2, s2)

    def factors(r, f):
        return subset_distance(sides[0], sides[1], r, f, "unbiased")

    routes = {}
    for name, statistic in (("pooled d x d covariances", pooled), ("centred factors (project)", factors)):
        start = time.perf_counter()
        interval = jackknife_interval(statistic, [clips, clips], half_samples=200, lower=0.0, log_scale=True)
        routes[name] = (time.perf_counter() - start, np.array([interval.estimate, interval.low, interval.high]))
    (slow, first), (fast, second) = routes.values()
    lines = [f"| route ({clips} clips x {vectors} vectors a side, d = {d}) | seconds | estimate [interval] |",
             "|---|---|---|"]
    for name, (seconds, values) in routes.items():
        lines.append(f"| {name} | {seconds:.2f} | {values[0]:.4f} [{values[1]:.4f}, {values[2]:.4f}] |")
    lines.append(f"\n{slow / fast:.0f}x; largest relative difference {np.max(np.abs(first - second) / np.abs(first)):.1e}")
    return lines


def fvd_benchmark(counts: list[int]) -> list[str]:
    from metrics.io.video import write_video

    lines = ["| videos (16 frames, 128 px) | peak RSS (MB) | seconds | clips / s |", "|---|---|---|---|"]
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        base = rng.integers(0, 255, (16, 128, 128, 3), dtype=np.uint8)
        for k in range(max(counts)):
            write_video(Path(tmp) / f"v{k:04d}.mp4", np.roll(base, k, axis=2), 25)
        for count in counts:
            here = str(Path(__file__).resolve().parent)
            out = subprocess.run([sys.executable, "-c", FVD_CHILD, tmp, str(count), here],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            lines.append(f"| {r['videos']} | {r['peak_rss_mb']:.0f} | {r['seconds']:.0f} | {r['videos'] / r['seconds']:.2f} |")
    return lines


def _same_record(a: tuple, b: tuple) -> bool:
    """Two ``Evaluator.decode`` results with equal keypoints and equal I3D statistics (every array)."""
    stats_a, stats_b = a[3].state_dict(), b[3].state_dict()
    return np.array_equal(a[0], b[0]) and stats_a.keys() == stats_b.keys() and all(
        np.array_equal(np.asarray(stats_a[key]), np.asarray(stats_b[key])) for key in stats_a)


def pose_thread_benchmark(repeats: int = 2) -> list[str]:
    from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
    from metrics.dataset import find_clips
    from metrics.evaluate import Evaluator
    from metrics.i3d import load_i3d
    from metrics.pose.toy import ToyMarkerPose
    from metrics.protocol import get_protocol

    with tempfile.TemporaryDirectory() as folder:
        generate_toy_corpus(Path(folder) / "toy", ToyCorpusConfig(identities=2, clips=3, test_clips=2, size=128),
                            progress=False)
        clips = find_clips(Path(folder) / "toy", split="test")
        evaluator = Evaluator(("bas", "fvd"), get_protocol("imac-bench"), extractor=ToyMarkerPose(), i3d=load_i3d(None))
        times = {True: [], False: []}
        outputs = {}
        for repeat in range(repeats):
            for beside in ((True, False) if repeat % 2 == 0 else (False, True)):
                evaluator.pose_beside_i3d = beside
                start = time.perf_counter()
                outputs[beside] = [evaluator.decode(clip, want_keypoints=True, want_fvd=True) for clip in clips]
                times[beside].append(time.perf_counter() - start)
    same = all(_same_record(a, b) for a, b in zip(outputs[True], outputs[False]))
    one, two = min(times[False]) / len(clips), min(times[True]) / len(clips)
    return ["| pose extractor | seconds per video | speed-up | identical |", "|---|---|---|---|",
            f"| on the I3D's thread | {one:.2f} | 1.00x | (reference) |",
            f"| on a second thread (default) | {two:.2f} | {one / two:.2f}x | {same} |",
            f"({len(clips)} videos of {np.mean([len(o[0]) for o in outputs[True]]):.0f} frames, 128 px)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fvd-clips", default="50,500")
    parser.add_argument("--skip-fvd", action="store_true")
    parser.add_argument("--only-pose-thread", action="store_true", help="run section 6 alone")
    args = parser.parse_args()
    if args.only_pose_thread:
        print("\n".join(pose_thread_benchmark()))
        return
    print("\n".join(frechet_benchmark()))
    print()
    print(bas_benchmark())
    print()
    print("\n".join(i3d_layout_benchmark()))
    print()
    print("\n".join(frechet_interval_benchmark()))
    if not args.skip_fvd:
        print()
        print("\n".join(fvd_benchmark([int(c) for c in args.fvd_clips.split(",")])))
    print()
    print("\n".join(pose_thread_benchmark()))


if __name__ == "__main__":
    main()
