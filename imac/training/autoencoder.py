"""Training a small ``diffusers.AutoencoderKL`` on the frames of a dataset (the tiny configuration).

The real IMAC configuration uses the pretrained Stable-Diffusion-2.1 VAE of I2VGen-XL. The tiny
CPU configuration has no pretrained VAE to borrow, so it trains its own on the toy corpus:
``TINY_VAE_KWARGS`` (three blocks, /4, 4 latent channels: 64x64 frames -> 16x16x4 latents),
trained from random initialisation for ``TINY_VAE_STEPS`` Adam steps at ``TINY_VAE_LR`` with the
settings of ``TINY_VAE_TRAINING`` (``tiny_vae_training(resolution)``: the same for 32- or 128-px frames, one
block fewer or more, to the same latents):

    summary = train_autoencoder("data/toy", "runs/tiny_vae", **TINY_VAE_TRAINING)
    vae = AutoencoderKL.from_pretrained("runs/tiny_vae")

All frames of the training split are decoded once, at the working resolution, and held in
memory (the toy corpus is small); batches are drawn from them at random. The loss is the
reconstruction error (L1 by default; optionally weighted towards saturated pixels, i.e. the toy
corpus' keypoint markers, which a plain pixel loss learns last) plus ``kl_weight`` times the KL
divergence of the posterior from N(0, 1), in the scale of Latent Diffusion's convention
(per-frame sums; here both terms are divided by the number of pixel values, so ``kl_weight``
means the same as there). When training
ends, the latent scaling factor (1 / std of the posterior-mode latents of a sample of frames) is
stored in the model's config, so that ``latents * vae.config.scaling_factor`` has unit variance
as the diffusion model expects. The model folder appears atomically, with ``training.json``
(the loss curve, settings, time and frames used) beside the weights.

Every process of a launch (``accelerate launch``, ``torchrun``) can train it together, data-parallel
on ``metrics.training``'s conventions: the same global batches, each process a block of each, the
loss curve of one process to float rounding; the main process writes the folder.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from torch import nn
from tqdm import tqdm

from imac.frames import frames_to_tensor, tensor_to_frames
from imac.training.windows import open_dataset, video_chunks_to_tensor
from metrics.distributed import SINGLE, Processes
from metrics.io.files import atomic_folder, write_json_atomic
from metrics.training import DataParallel

# The tiny configuration's VAE: 64x64x3 frames -> 16x16x4 latents, 648k parameters. Measured with
# benchmarks/tiny_vae_quality.py: wider full-resolution blocks (32-64-64, 921k) cost 2.4x the time per
# step for no better marker fidelity; a narrower one (16-32-32, 234k) learns the hand markers slower.
TINY_VAE_KWARGS: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "block_out_channels": (16, 32, 64),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
    "mid_block_add_attention": False,
}
TINY_VAE_RESOLUTION = 64
TINY_LATENT_SIZE = 16           # the tiny UNet's latent grid (imac/configs/tiny.yaml: video.unet.sample_size)
TINY_VAE_RESOLUTIONS = (32, 64, 128)
TINY_VAE_STEPS = 1000
TINY_VAE_LR = 1e-3
TINY_VAE_BATCH_SIZE = 8
# Without it an L1-trained VAE learns the toy corpus' small keypoint markers last (none is found
# in its reconstructions after 500 steps); with it they come first.
TINY_VAE_CHROMA_WEIGHT = 100.0
TINY_VAE_KL_WEIGHT = 1e-6
# The tiny configuration's training: train_autoencoder(root, out_dir, **TINY_VAE_TRAINING). Every
# training setting is spelled out (none left to train_autoencoder's defaults), so that a run folder's
# VAE can be compared with what this version would train (bench.runner.SharedModels.check_vae).
TINY_VAE_TRAINING: dict[str, Any] = {
    "vae_kwargs": TINY_VAE_KWARGS, "resolution": TINY_VAE_RESOLUTION, "steps": TINY_VAE_STEPS,
    "batch_size": TINY_VAE_BATCH_SIZE, "lr": TINY_VAE_LR, "kl_weight": TINY_VAE_KL_WEIGHT,
    "reconstruction": "l1", "chroma_weight": TINY_VAE_CHROMA_WEIGHT,
}



def tiny_vae_kwargs(resolution: int, latent_size: int = TINY_LATENT_SIZE) -> dict[str, Any]:
    """The tiny VAE's architecture for frames of ``resolution`` pixels a side: as many blocks as take it to
    ``latent_size`` (each block after the first halves the side), the widths halving from 64 towards the
    full-resolution block, so every level costs about the same per frame. 64 px: ``TINY_VAE_KWARGS``
    (16-32-64, /4); 128 px: 8-16-32-64 (/8), the same 16 x 16 x 4 latents from the toy corpus' own frames.

    ValueError naming the sizes when ``resolution`` is not ``latent_size`` times 2, 4 or 8.
    """
    levels = {latent_size * 2 ** k: k + 1 for k in (1, 2, 3)}     # 16: TINY_VAE_RESOLUTIONS
    if resolution not in levels:
        raise ValueError(f"the tiny VAE takes frames of {', '.join(map(str, levels))} px to {latent_size} x "
                         f"{latent_size} latents, not {resolution} px")
    widths = tuple(64 >> (levels[resolution] - 1 - i) for i in range(levels[resolution]))
    return dict(TINY_VAE_KWARGS, down_block_types=("DownEncoderBlock2D",) * len(widths),
                up_block_types=("UpDecoderBlock2D",) * len(widths), block_out_channels=widths,
                sample_size=resolution)


def tiny_vae_training(resolution: int = TINY_VAE_RESOLUTION, latent_size: int = TINY_LATENT_SIZE) -> dict[str, Any]:
    """``TINY_VAE_TRAINING`` for frames of ``resolution`` px (``tiny_vae_kwargs``). Above 64 px the batch
    holds as many pixels as ``TINY_VAE_BATCH_SIZE`` frames of 64 px hold twice over (4 frames of 128 px:
    the same time per step as 8 of 64 px on a 2-core CPU; measured, README "The frame size")."""
    if resolution == TINY_VAE_RESOLUTION and latent_size == TINY_LATENT_SIZE:
        return dict(TINY_VAE_TRAINING)
    batch_size = TINY_VAE_BATCH_SIZE if resolution <= TINY_VAE_RESOLUTION else \
        max(1, 2 * TINY_VAE_BATCH_SIZE * TINY_VAE_RESOLUTION ** 2 // resolution ** 2)
    return dict(TINY_VAE_TRAINING, vae_kwargs=tiny_vae_kwargs(resolution, latent_size), resolution=resolution,
                batch_size=batch_size)


TRAINING_CARD = "training.json"
RECONSTRUCTION_LOSSES = ("l1", "mse")
SCALING_SAMPLE_FRAMES = 1024


# -- data ----------------------------------------------------------------------------------------


def load_split_frames(dataset_root: str | os.PathLike, split: str, resolution: int,
                      progress: bool = False) -> tuple[torch.Tensor, int]:
    """All frames of a split as one tensor (N, 3, resolution, resolution) in [-1, 1], and the clip count.

    ValueError naming the dataset when the split has no clips or no frames.
    """
    dataset = open_dataset(dataset_root, level="files")
    records = dataset.split(split)
    if not records:
        raise ValueError(f"dataset {dataset.root} has no {split!r} clips to train the autoencoder on")
    # each clip decoded and resized a chunk at a time: never whole at full size, nor in float32
    chunks = [video_chunks_to_tensor(record.video, resolution)
              for record in tqdm(records, desc=f"loading {split} frames", unit="clip", disable=not progress)]
    frames = torch.cat(chunks)
    if len(frames) == 0:
        raise ValueError(f"dataset {dataset.root}: the {split!r} clips hold no frames")
    return frames, len(records)


# -- the model and its loss ----------------------------------------------------------------------


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def chroma_weights(batch: torch.Tensor, chroma_weight: float) -> torch.Tensor:
    """Per-pixel loss weights (N, 1, H, W): 1 + chroma_weight * chroma**2 of images in [-1, 1].

    Chroma is max - min channel, in [0, 1]. The toy corpus' keypoint markers are its only
    saturated pixels (its scene stays at chroma <= 0.35, markers reach 1).
    """
    chroma = (batch.amax(dim=1, keepdim=True) - batch.amin(dim=1, keepdim=True)) / 2.0
    return 1.0 + chroma_weight * chroma.square()


def reconstruction_error(decoded: torch.Tensor, batch: torch.Tensor, reconstruction: str = "l1",
                         chroma_weight: float = 0.0, weight_mean: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 or squared error per pixel value, weighted by ``chroma_weights`` when chroma_weight > 0.

    The weighted error is sum(error x weight) / sum(weight), here as the two means' ratio;
    ``weight_mean`` replaces the denominator's mean (a process of a data-parallel launch, whose batch
    is a block of the global batch, divides by the global batch's mean weight)."""
    if reconstruction == "l1":
        error = (decoded - batch).abs()
    elif reconstruction == "mse":
        error = (decoded - batch).square()
    else:
        raise ValueError(f"reconstruction must be one of {RECONSTRUCTION_LOSSES}, got {reconstruction!r}")
    if chroma_weight == 0:
        return error.mean()
    weights = chroma_weights(batch, chroma_weight)
    return (error * weights).mean() / (weights.mean() if weight_mean is None else weight_mean)


def vae_loss(vae: AutoencoderKL, batch: torch.Tensor, kl_weight: float, reconstruction: str = "l1",
             chroma_weight: float = 0.0, global_batch: GlobalBatch | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction term, KL term) of one batch in [-1, 1], with a sampled latent.

    The reconstruction term is the (weighted) mean per pixel value; the KL term is the per-frame
    KL sum divided by the pixel values of a frame, so that their ratio is Latent Diffusion's.
    ``global_batch``: ``batch`` is its block of a data-parallel process; the latent noise is then
    that block's rows of the global batch's draw (torch's global generator, in the same state on
    every process), and the weighted reconstruction divides by the global batch's mean weight.
    """
    posterior = vae.encode(batch).latent_dist
    if global_batch is None:
        latents = posterior.sample()
    else:
        noise = torch.randn((global_batch.size, *posterior.mean.shape[1:]), device=posterior.mean.device,
                            dtype=posterior.mean.dtype)[global_batch.rows]
        latents = posterior.mean + posterior.std * noise
    decoded = vae.decode(latents).sample
    weight_mean = global_batch.weight_mean if global_batch is not None else None
    rec = reconstruction_error(decoded, batch, reconstruction, chroma_weight, weight_mean)
    kl = posterior.kl().mean() / batch[0].numel()
    return rec + kl_weight * kl, rec, kl


@dataclass(frozen=True)
class GlobalBatch:
    """What a process of a data-parallel launch knows of the global batch its block belongs to."""

    size: int
    rows: slice
    weight_mean: torch.Tensor | None     # the global batch's mean chroma weight (None: unweighted)


class VAELoss(nn.Module):
    """``vae_loss`` as a module's forward, so that DistributedDataParallel averages its gradients."""

    def __init__(self, vae: AutoencoderKL, kl_weight: float, reconstruction: str, chroma_weight: float) -> None:
        super().__init__()
        self.vae = vae
        self.kl_weight, self.reconstruction, self.chroma_weight = kl_weight, reconstruction, chroma_weight

    def forward(self, batch: torch.Tensor, global_batch: GlobalBatch | None = None):
        return vae_loss(self.vae, batch, self.kl_weight, self.reconstruction, self.chroma_weight, global_batch)


@torch.no_grad()
def encode_mode(vae: AutoencoderKL, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Posterior-mode latents (unscaled) of images (N, 3, H, W) in [-1, 1], in batches."""
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(x[i:i + batch_size].to(device)).latent_dist.mode().cpu()
                      for i in range(0, len(x), batch_size)])


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, frames: torch.Tensor, sample: int = SCALING_SAMPLE_FRAMES,
                          seed: int = 0) -> float:
    """1 / std of the posterior-mode latents of (at most) ``sample`` frames drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(frames), generator=generator)[:sample]
    std = float(encode_mode(vae, frames[index]).std())
    if not math.isfinite(std) or std <= 0:
        raise RuntimeError(f"latent std is {std}: the autoencoder's latents are degenerate")
    return 1.0 / std


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, frames_uint8: np.ndarray, resolution: int,
                batch_size: int = 64) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 through the VAE (posterior mode, then decode) at ``resolution``.

    Returns uint8 frames (F, resolution, resolution, 3).
    """
    x = frames_to_tensor(frames_uint8, resolution)
    device = next(vae.parameters()).device
    outputs = [vae.decode(vae.encode(x[i:i + batch_size].to(device)).latent_dist.mode()).sample.cpu()
               for i in range(0, len(x), batch_size)]
    if not outputs:
        return np.zeros((0, resolution, resolution, 3), np.uint8)
    return tensor_to_frames(torch.cat(outputs))


# -- the output folder ---------------------------------------------------------------------------


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``out_dir`` (before any training) unless ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; choose another output folder (video.vae), or replace it "
                              "(imac train vae --overwrite; overwrite=True in Python)")


def save_autoencoder(vae: AutoencoderKL, out_dir: Path, card: dict, overwrite: bool) -> None:
    """Save the weights, config and ``training.json`` to a hidden sibling, then move it to ``out_dir``."""
    with atomic_folder(out_dir) as staged:
        vae.save_pretrained(staged)
        write_json_atomic(staged / TRAINING_CARD, card)
        _check_out_dir(out_dir, overwrite)  # again: another process may have written there meanwhile


# -- training ------------------------------------------------------------------------------------


def _default_log_every(steps: int) -> int:
    return max(1, steps // 100)


def _run_callback(callback: Callable[[int, AutoencoderKL], None], step: int, vae: AutoencoderKL) -> None:
    vae.eval()
    with torch.no_grad():
        callback(step, vae)
    vae.train()


def _train_loop(vae: AutoencoderKL, frames: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                kl_weight: float, reconstruction: str, chroma_weight: float, log_every: int, seed: int,
                device: torch.device, progress: bool,
                callback: Callable[[int, AutoencoderKL], None] | None = None,
                parallel: DataParallel | None = None) -> list[dict[str, float]]:
    """Adam on random batches; returns the loss curve (means over each ``log_every`` steps).

    ``callback(step, vae)`` runs after each logged step, the model in eval mode and no gradients
    (on the main process of a launch). ``parallel``: this process's share of data-parallel training
    (``metrics.training``): every process draws the global batch's frames and keeps its block; the
    curve is the global batch's (the mean over the processes).
    """
    parallel = parallel or DataParallel(SINGLE, device)
    parallel.check_batch(batch_size)
    rows = parallel.part(batch_size)
    step_loss = parallel.wrap(VAELoss(vae, kl_weight, reconstruction, chroma_weight))
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    curve: list[dict[str, float]] = []
    sums = np.zeros(3)
    vae.train()
    bar = tqdm(range(1, steps + 1), desc="training VAE", unit="step", disable=not progress)
    for step in bar:
        index = torch.randint(len(frames), (batch_size,), generator=generator)
        if parallel.distributed:
            weight_mean = chroma_weights(frames[index].to(device), chroma_weight).mean() if chroma_weight else None
            loss, rec, kl = step_loss(frames[index[rows]].to(device), GlobalBatch(batch_size, rows, weight_mean))
        else:
            loss, rec, kl = step_loss(frames[index].to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"VAE loss is {loss.item()} at step {step}; lower the learning rate ({lr})")
        optimizer.zero_grad(set_to_none=True)
        parallel.scale(loss, batch_size).backward()
        optimizer.step()
        sums += parallel.mean(*(parallel.scale(value.detach(), batch_size) for value in (loss, rec, kl)))
        if step % log_every == 0 or step == steps:
            mean = sums / (step - (curve[-1]["step"] if curve else 0))
            curve.append({"step": step, "loss": float(mean[0]), "reconstruction": float(mean[1]),
                          "kl": float(mean[2])})
            bar.set_postfix(loss=f"{mean[0]:.4f}")
            sums[:] = 0
            if callback is not None and parallel.is_main:
                _run_callback(callback, step, vae)
    vae.eval()
    return curve


def _check_settings(steps: int, batch_size: int, lr: float, kl_weight: float, chroma_weight: float,
                    reconstruction: str) -> None:
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    if not lr > 0 or kl_weight < 0 or chroma_weight < 0:
        raise ValueError(f"need lr > 0, kl_weight >= 0, chroma_weight >= 0; "
                         f"got {lr}, {kl_weight}, {chroma_weight}")
    if reconstruction not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"reconstruction must be one of {RECONSTRUCTION_LOSSES}, got {reconstruction!r}")


def _json_ready(kwargs: dict) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in kwargs.items()}


def train_autoencoder(dataset_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                      vae_kwargs: dict, resolution: int = 64, steps: int, batch_size: int = 16,
                      lr: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0,
                      device: str | torch.device = "cpu", split: str = "train", progress: bool = True,
                      reconstruction: str = "l1", chroma_weight: float = 0.0,
                      log_every: int | None = None, overwrite: bool = False,
                      callback: Callable[[int, AutoencoderKL], None] | None = None,
                      processes: Processes = SINGLE) -> dict[str, Any]:
    """Train ``AutoencoderKL(**vae_kwargs)`` from scratch on a split's frames and save it to ``out_dir``.

    Returns the summary also written to ``out_dir/training.json``: the loss curve (mean loss,
    reconstruction and KL terms over every ``log_every`` steps), steps, seconds, resolution,
    settings, frames and clips used, parameter count and the latent scaling factor.

    ``reconstruction`` is ``"l1"`` or ``"mse"``; ``chroma_weight`` > 0 weighs each pixel's error
    by 1 + chroma_weight * chroma**2 (see ``chroma_weights``); ``log_every`` defaults to
    steps // 100. An existing non-empty ``out_dir`` is refused, before any training, unless
    ``overwrite``. ``callback(step, vae)``, if given, runs at every logged step (to evaluate
    checkpoints). The tiny configuration's settings are ``TINY_VAE_TRAINING``.

    ``processes``: every process of a launch calls this together and trains data-parallel
    (``metrics.training``: each takes its block of every global batch of ``batch_size`` frames; the
    loss curve is one process's, to float rounding); the main process alone writes ``out_dir`` and
    the others return once it is complete, with its summary. ``device``: a plain ``cuda`` is each
    process's own GPU.
    """
    _check_settings(steps, batch_size, lr, kl_weight, chroma_weight, reconstruction)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    started = time.perf_counter()
    frames, clips = load_split_frames(dataset_root, split, resolution, progress and processes.is_main)
    loaded = time.perf_counter()

    torch.manual_seed(seed)       # on every process: the same initial weights and the same latent noise
    parallel = DataParallel(processes, device)
    device = parallel.device
    vae = AutoencoderKL(**vae_kwargs).to(device)
    curve = _train_loop(vae, frames, steps=steps, batch_size=batch_size, lr=lr, kl_weight=kl_weight,
                        reconstruction=reconstruction, chroma_weight=chroma_weight,
                        log_every=log_every or _default_log_every(steps), seed=seed, device=device,
                        progress=progress and processes.is_main, callback=callback, parallel=parallel)
    trained = time.perf_counter()

    def write() -> dict[str, Any]:
        scaling_factor = latent_scaling_factor(vae, frames, seed=seed)
        vae.register_to_config(scaling_factor=scaling_factor)
        settings = {"vae_kwargs": _json_ready(vae_kwargs), "batch_size": batch_size, "lr": lr,
                    "kl_weight": kl_weight, "seed": seed, "reconstruction": reconstruction,
                    "chroma_weight": chroma_weight, "optimizer": "Adam", "device": str(device),
                    "torch_threads": torch.get_num_threads()}
        if processes.distributed:
            settings["processes"] = processes.world
        summary = {
            "dataset": str(Path(dataset_root).absolute()), "split": split,
            "clips": clips, "frames": len(frames), "resolution": resolution,
            "steps": steps, "seconds": round(time.perf_counter() - started, 2),
            "seconds_loading": round(loaded - started, 2), "seconds_training": round(trained - loaded, 2),
            "parameters": count_parameters(vae), "scaling_factor": scaling_factor,
            "settings": settings, "final_loss": curve[-1]["loss"], "loss_curve": curve,
        }
        save_autoencoder(vae.to("cpu"), out_dir, summary, overwrite)
        return summary

    return parallel.write_on_main(write)
