"""Adam's step on the CPU: the per-tensor loop against ``foreach=True``, on the benchmark's own models.

    .venv/bin/python benchmarks/optimizer_step.py [--steps 20] [--repeats 3]

Every trainer of the project builds its Adam/AdamW with ``foreach=True`` (CUDA's default; on a CPU
torch's default is a Python loop over the parameter tensors). On CPUs the foreach ops run the same
per-tensor kernels in the same order, so the parameters must come out bit for bit the same: this
script checks that on the toy benchmark's models (the FGD skeleton autoencoder, the shared tiny VAE,
MYA's generator) with the same random gradients for both, and times ``optimizer.step()`` alone (the
forward and backward are the same work either way), the two alternated in one run, best of each.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import AutoencoderKL

from bench.baselines.pose_guided import MYAOptions, build_generator
from imac.training.autoencoder import TINY_VAE_KWARGS
from metrics.protocol import Protocol
from metrics.skeleton_ae import AutoencoderConfig, SkeletonAutoencoder


def models() -> dict[str, torch.nn.Module]:
    vae, protocol = AutoencoderKL(**TINY_VAE_KWARGS), Protocol()
    skeleton = AutoencoderConfig(points=len(protocol.skeleton_points), window=protocol.window)
    return {"FGD skeleton autoencoder": SkeletonAutoencoder(skeleton),
            "tiny VAE": vae,
            "MYA generator": build_generator(MYAOptions(), vae)}


def run(model: torch.nn.Module, foreach: bool, steps: int, weight_decay: float) -> tuple[list[torch.Tensor], float]:
    """Parameters after ``steps`` AdamW steps on seeded random gradients, and the seconds per step."""
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=weight_decay, foreach=foreach)
    generator = torch.Generator().manual_seed(1)
    seconds = 0.0
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=generator)
        began = time.perf_counter()
        optimizer.step()
        seconds += time.perf_counter() - began
    after = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, value in zip(model.parameters(), start):
            p.copy_(value)
    return after, seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, best of {args.repeats}\n")
    print("| model | parameters (tensors) | per-tensor loop (ms/step) | foreach (ms/step) | speed-up | same parameters |")
    print("|---|---|---|---|---|---|")
    for name, model in models().items():
        count = sum(p.numel() for p in model.parameters())
        tensors = len(list(model.parameters()))
        loop_s = fused_s = float("inf")
        for _ in range(args.repeats):          # alternated, best of each: the machine's other load
            loop, seconds = run(model, False, args.steps, 0.01)
            loop_s = min(loop_s, seconds)
            fused, seconds = run(model, True, args.steps, 0.01)
            fused_s = min(fused_s, seconds)
        same = all(torch.equal(a, b) for a, b in zip(loop, fused))
        print(f"| {name} | {count:,} ({tensors}) | {1e3 * loop_s:.2f} | {1e3 * fused_s:.2f} | "
              f"{loop_s / fused_s:.2f}x | {'bit for bit' if same else 'NO'} |")


if __name__ == "__main__":
    main()
