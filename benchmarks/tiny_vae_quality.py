"""How well the tiny configuration's VAE keeps the toy corpus' pose markers, against training steps.

    .venv/bin/python benchmarks/tiny_vae_quality.py [--data data/toy] [--steps 1000]
        [--eval-at 250 500 1000] [--arch 16-32-64] [--loss l1] [--chroma-weight 100] [--lr 1e-3]
        [--batch-size 8] [--threads 2] [--stride 1]

Trains ``AutoencoderKL`` from scratch on the train split of a toy corpus with
``imac.training.autoencoder.train_autoencoder`` (defaults: ``TINY_VAE_TRAINING``; the learning
rate is constant, so the checkpoint at step s is the model a run of s steps gives) and, at each
of ``--eval-at``, reconstructs every (``--stride``-th) frame of the TEST split at the working
resolution (64 px) and runs the toy pose extractor on the reconstruction and on the
un-reconstructed 64-px frames. Prints a markdown row per checkpoint: training seconds so far
(loading included, evaluation excluded), PSNR, the share of body points (COCO indices 0..10)
and hand points (2 x 21) found with score >= 0.5 on the original and on the reconstruction, and
the median / 95th percentile distance (px at 64 px) between the points found on both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imac.frames import frames_to_tensor, tensor_to_frames
from metrics.dataset import Dataset
from imac.training.autoencoder import TINY_VAE_KWARGS, TINY_VAE_TRAINING, reconstruct, train_autoencoder
from metrics.pose import wholebody as wb
from metrics.pose.toy import ToyMarkerPose
from metrics.io.video import read_video

BODY = list(range(0, 11))
HANDS = list(wb.LEFT_HAND) + list(wb.RIGHT_HAND)


def _arch(block_out_channels: tuple[int, ...], groups: int, layers: int = 1) -> dict:
    return dict(TINY_VAE_KWARGS, block_out_channels=block_out_channels, norm_num_groups=groups,
                layers_per_block=layers)


ARCHITECTURES = {
    "16-32-64": TINY_VAE_KWARGS,  # the tiny configuration's
    "16-32-32": _arch((16, 32, 32), 8),
    "32-32-64": _arch((32, 32, 64), 16),
    "32-64-64": _arch((32, 64, 64), 16),
}


def test_frames(data: str, resolution: int, stride: int = 1) -> list[np.ndarray]:
    """Every ``stride``-th frame of each test clip at ``resolution`` (uint8): the un-reconstructed reference."""
    dataset = Dataset.open(data, level="files")
    return [tensor_to_frames(frames_to_tensor(read_video(r.video)[::stride], resolution))
            for r in dataset.split("test")]


def found(keypoints: np.ndarray, index: list[int], min_score: float) -> np.ndarray:
    return keypoints[:, index, 2] >= min_score


def evaluate(vae, clips: list[np.ndarray], reference: np.ndarray, resolution: int, min_score: float) -> dict:
    """PSNR, detection rates and keypoint distances of the reconstructions against the reference."""
    extractor = ToyMarkerPose()
    rebuilt = [reconstruct(vae, clip, resolution) for clip in clips]
    original, recon = np.concatenate(clips), np.concatenate(rebuilt)
    mse = np.mean((original.astype(np.float64) - recon) ** 2)
    keypoints = np.concatenate([extractor(clip) for clip in rebuilt])
    row = {"psnr": 10 * np.log10(255.0 ** 2 / mse)}
    for part, index in (("body", BODY), ("hands", HANDS)):
        ref_found, rec_found = found(reference, index, min_score), found(keypoints, index, min_score)
        both = ref_found & rec_found
        error = np.linalg.norm(keypoints[:, index, :2] - reference[:, index, :2], axis=-1)[both]
        row[f"{part}_orig"], row[f"{part}_recon"] = ref_found.mean(), rec_found.mean()
        row[f"{part}_kept"] = both.sum() / max(ref_found.sum(), 1)
        row[f"{part}_median"] = float(np.median(error)) if error.size else float("nan")
        row[f"{part}_p95"] = float(np.percentile(error, 95)) if error.size else float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--steps", type=int, default=TINY_VAE_TRAINING["steps"])
    parser.add_argument("--eval-at", type=int, nargs="*", default=None,
                        help="steps to evaluate (default: --steps)")
    parser.add_argument("--arch", choices=list(ARCHITECTURES), default="16-32-64")
    parser.add_argument("--loss", choices=("l1", "mse"), default=TINY_VAE_TRAINING["reconstruction"])
    parser.add_argument("--lr", type=float, default=TINY_VAE_TRAINING["lr"])
    parser.add_argument("--batch-size", type=int, default=TINY_VAE_TRAINING["batch_size"])
    parser.add_argument("--chroma-weight", type=float, default=TINY_VAE_TRAINING["chroma_weight"])
    parser.add_argument("--kl-weight", type=float, default=TINY_VAE_TRAINING["kl_weight"])
    parser.add_argument("--resolution", type=int, default=TINY_VAE_TRAINING["resolution"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stride", type=int, default=1, help="evaluate every stride-th test frame")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    eval_at = set(args.eval_at or [args.steps])

    clips = test_frames(args.data, args.resolution, args.stride)
    reference = np.concatenate([ToyMarkerPose()(clip) for clip in clips])
    kwargs = ARCHITECTURES[args.arch]
    print(f"arch {args.arch}, loss {args.loss}, chroma weight {args.chroma_weight}, lr {args.lr}, "
          f"batch {args.batch_size}, kl weight {args.kl_weight}, {args.threads} threads; "
          f"{len(reference)} test frames at {args.resolution} px (stride {args.stride})")
    print()
    print("| steps | train s (wall, incl. loading) | train s (CPU) | PSNR dB | body found orig / recon "
          "| body kept | body median px (p95) | hands found orig / recon | hands median px (p95) |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    spent = {"wall": 0.0, "cpu": 0.0}  # evaluation time, excluded from the training time
    started = {"wall": time.perf_counter(), "cpu": time.process_time()}

    def checkpoint(step: int, vae) -> None:
        if step not in eval_at:
            return
        wall, cpu = time.perf_counter(), time.process_time()
        train_wall = wall - started["wall"] - spent["wall"]
        train_cpu = cpu - started["cpu"] - spent["cpu"]
        r = evaluate(vae, clips, reference, args.resolution, args.min_score)
        print(f"| {step} | {train_wall:.0f} | {train_cpu:.0f} | {r['psnr']:.1f} "
              f"| {r['body_orig']:.1%} / {r['body_recon']:.1%} "
              f"| {r['body_kept']:.1%} | {r['body_median']:.2f} ({r['body_p95']:.2f}) "
              f"| {r['hands_orig']:.1%} / {r['hands_recon']:.1%} "
              f"| {r['hands_median']:.2f} ({r['hands_p95']:.2f}) |", flush=True)
        spent["wall"] += time.perf_counter() - wall
        spent["cpu"] += time.process_time() - cpu

    with tempfile.TemporaryDirectory() as tmp:
        summary = train_autoencoder(args.data, Path(tmp) / "vae", vae_kwargs=kwargs, resolution=args.resolution,
                                    steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                    kl_weight=args.kl_weight, seed=args.seed, reconstruction=args.loss,
                                    chroma_weight=args.chroma_weight,
                                    log_every=_gcd_log_every(eval_at), callback=checkpoint, progress=False)
    print()
    print(f"{summary['parameters']:,} parameters; {summary['frames']} train frames "
          f"(loading {summary['seconds_loading']:.0f} s); scaling factor {summary['scaling_factor']:.3f}; "
          f"final loss {summary['final_loss']:.4f}")


def _gcd_log_every(steps: set[int]) -> int:
    """A logging interval that lands on every evaluated step."""
    return int(np.gcd.reduce(sorted(steps)))


if __name__ == "__main__":
    main()
