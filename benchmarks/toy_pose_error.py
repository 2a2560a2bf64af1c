"""Error of the toy pose extractor against the toy corpus' ground-truth keypoints, in pixels.

    .venv/bin/python benchmarks/toy_pose_error.py [--clips 2] [--size 128]

For every preset identity, renders clips of the toy corpus, and measures the extractor on
(a) the rendered frames, (b) the same frames after the corpus' mp4 encoding (H.264, yuv420p,
crf 18) and decoding, (c) the decoded frames blurred with a 1-pixel Gaussian (a stand-in for the
softness of generated frames). Prints a markdown table: median and 95th percentile of the
distance between extracted and true points with score >= --min-score (0.5), and the share of true points found.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from bench.data.toy.corpus import ToyCorpusConfig, make_clip
from bench.data.toy.identities import make_identities
from bench.data.toy.render import FrameRenderer
from metrics.pose import wholebody as wb
from metrics.pose.toy import ToyMarkerPose
from metrics.io.video import read_video, write_video

PARTS = {
    "body (nose, shoulders, elbows, wrists, hips)": [wb.index_of(n) for n in (
        "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip")],
    "hands (2 x 21 points)": list(wb.LEFT_HAND) + list(wb.RIGHT_HAND),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2, help="clips per identity")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--min-score", type=float, default=0.5, help="count points found at this score")
    args = parser.parse_args()
    config = ToyCorpusConfig(size=args.size)
    extractor = ToyMarkerPose()
    results = {condition: {part: [[], 0, 0] for part in PARTS} for condition in ("render", "mp4", "mp4 + blur 1px")}
    frames_seen, seconds = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, identity in enumerate(make_identities(4, seed=0)):
            renderer = FrameRenderer(identity.shape, identity.appearance, identity.camera(config.size))
            for c in range(args.clips):
                clip = make_clip(identity, i, c, config)
                rendered = renderer.render(clip["pose"], clip["expression"])
                path = Path(tmp) / f"{identity.name}_{c}.mp4"
                write_video(path, rendered, config.fps)
                decoded = read_video(path)
                blurred = ndimage.gaussian_filter(decoded.astype(np.float32), sigma=(0, 1, 1, 0))
                conditions = {"render": rendered, "mp4": decoded,
                              "mp4 + blur 1px": blurred.round().clip(0, 255).astype(np.uint8)}
                truth = clip["keypoints"]
                for condition, frames in conditions.items():
                    start = time.perf_counter()
                    found = extractor(frames)
                    seconds += time.perf_counter() - start
                    frames_seen += len(frames)
                    for part, index in PARTS.items():
                        t, f = truth[:, index], found[:, index]
                        ok = (t[..., 2] > 0) & (f[..., 2] >= args.min_score)
                        err = np.linalg.norm(f[..., :2] - t[..., :2], axis=-1)[ok]
                        entry = results[condition][part]
                        entry[0].append(err)
                        entry[1] += ok.sum()
                        entry[2] += (t[..., 2] > 0).sum()
    print(f"Toy pose extractor ({extractor.extractor_id}) vs ground truth, {args.size}x{args.size} frames, "
          f"4 identities x {args.clips} clips, {frames_seen // 3} frames per condition")
    print()
    print(f"| frames | points | median error (px) | 95th pct (px) | found (score >= {args.min_score}) |")
    print("|---|---|---|---|---|")
    for condition, parts in results.items():
        for part, (errs, found_count, total) in parts.items():
            err = np.concatenate(errs)
            print(f"| {condition} | {part} | {np.median(err):.2f} | {np.percentile(err, 95):.2f} | "
                  f"{found_count / total:.1%} |")
    print()
    print(f"extraction speed: {1000 * seconds / frames_seen:.1f} ms per frame (one process)")


if __name__ == "__main__":
    main()
