"""Sample a trained (tiny) IMAC model on toy test clips and check what the toy pose extractor sees.

    .venv/bin/python benchmarks/imac_toy_samples.py --model runs/imac-tiny/stage2/model \\
        [--data data/toy] [--clips 4] [--out runs/imac-tiny/samples] [--steps N]

For each of the first --clips test clips: the reference is the clip's first frame (at the model's
resolution), the audio is the clip's speech; the generated mp4 (audio muxed in) goes to --out. The
toy marker extractor (metrics.pose.toy) is run on the generated frames, on the real frames at the
same resolution, and on a uniform-noise control; the table gives the share of body points
(COCO-WholeBody 0..10) found with score >= 0.5, and for generated frames the median distance of the
found body points to the real video's at the same frame, in pixels. This is what an untrained /
briefly trained stand-in computes: a check that the pipeline produces bodies, not a quality claim.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from imac.frames import frames_to_tensor, tensor_to_frames
from metrics.dataset import Dataset
from imac.pipeline import IMACPipeline
from metrics.pose.toy import ToyMarkerPose
from metrics.io.video import read_video, write_video

BODY = slice(0, 11)


def body_found(keypoints: np.ndarray) -> float:
    return float((keypoints[:, BODY, 2] >= 0.5).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/imac-tiny/samples"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pipeline = IMACPipeline.from_pretrained(args.model)
    size = pipeline.config.data.resolution
    dataset = Dataset.open(args.data)
    extractor = ToyMarkerPose()
    rng = np.random.default_rng(args.seed)
    rows = []
    for record in dataset.split("test")[:args.clips]:
        real = tensor_to_frames(frames_to_tensor(read_video(record.video), size))
        reference = frames_to_tensor(real[:1], size)[0]
        audio = record.load_audio(pipeline.config.audio.sample_rate)
        started = time.perf_counter()
        sample = pipeline(reference, audio, pipeline.config.audio.sample_rate,
                          generator=torch.Generator().manual_seed(args.seed), steps=args.steps)
        seconds = time.perf_counter() - started
        out = args.out / record.identity / f"{record.clip_id}.mp4"
        write_video(out, sample.frames, sample.fps, audio=sample.audio,
                    sample_rate=pipeline.config.audio.sample_rate)
        frames = min(len(real), len(sample.frames))
        generated_kp = extractor(sample.frames[:frames])
        real_kp = extractor(real[:frames])
        noise_kp = extractor(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
        both = (generated_kp[:, BODY, 2] >= 0.5) & (real_kp[:, BODY, 2] >= 0.5)
        distance = np.linalg.norm(generated_kp[:, BODY, :2] - real_kp[:, BODY, :2], axis=-1)[both]
        rows.append((record.label, len(sample.frames), seconds, body_found(generated_kp), body_found(real_kp),
                     body_found(noise_kp), float(np.median(distance)) if distance.size else float("nan")))
        print(f"{record.label}: {len(sample.frames)} frames in {seconds:.0f} s -> {out}", flush=True)
    print()
    print("| clip | frames | seconds | body found: generated | real | noise | median body distance to real (px) |")
    print("|---|---|---|---|---|---|---|")
    for label, n, seconds, generated, real, noise, distance in rows:
        print(f"| {label} | {n} | {seconds:.0f} | {generated:.1%} | {real:.1%} | {noise:.1%} | {distance:.1f} |")


if __name__ == "__main__":
    main()
