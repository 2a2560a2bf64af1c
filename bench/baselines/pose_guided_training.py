"""Training of the MYA reimplementation's generator (``bench.baselines.pose_guided``): its training
frames, the diffusion training loop and the model folder.

Training is frame-wise: every frame of the train clips (of ``context.identities`` when set) is
encoded once to VAE latents and drawn as a pose image; a step takes random target frames, each
with a reference frame from its clip (its first frame with ``reference_first_prob``, else any),
noises the target at uniform timesteps and regresses MYA's epsilon or v. The processes of a launch
can train it together, data-parallel (``metrics.training``: each takes its block of every global
batch, drawn as one process draws it). The trained generator lives in ``<work_dir>/generator``,
written by the main process to a hidden sibling and renamed into place once complete
(``metrics.io.files.atomic_folder``), its card ``mya.json`` (training settings, facts, losses)
written last, so a folder without it is never loaded; a folder trained with other settings is
refused rather than silently reused.
"""

from __future__ import annotations

import logging

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler
from torch import nn
from tqdm import tqdm

from bench.baselines.pose_guided import MYAGenerator, MYAOptions, build_generator, mya_scheduler
from bench.baselines.pose_images import keypoints_to_square, render_pose_images
from bench.methods.base import BenchContext
from imac.config import config_differences, listed
from imac.frames import frames_to_tensor
from imac.models.loading import load_pretrained
from imac.models.video import encode_latents
from imac.training.windows import bounded_frames_to_tensor
from metrics.distributed import SINGLE
from metrics.io.bounded import read_json
from metrics.io.files import atomic_folder, write_json_atomic
from metrics.io.video import CHUNK_FRAMES, VideoReader, probe_video
from metrics.pose.extraction import cached_keypoints, check_frame_count, store_keypoints
from metrics.training import DataParallel

logger = logging.getLogger(__name__)

GENERATOR_FOLDER = "generator"
GENERATOR_CARD = "mya.json"          # written last: its presence marks a finished model


# -- training data -------------------------------------------------------------------------------


@dataclass
class TrainingFrames:
    """Every frame of the training clips: target latents, pose images, and where its clip starts."""

    latents: torch.Tensor          # (N, C, h, w) scaled posterior-mode latents
    poses: torch.Tensor            # (N, 3, R, R) uint8 pose images
    clip_start: torch.Tensor       # (N,) index of the first frame of the frame's clip
    clip_length: torch.Tensor      # (N,)
    clips: int

    def __len__(self) -> int:
        return len(self.latents)


def clip_pixels(context: BenchContext, record, resolution: int) -> tuple[torch.Tensor, np.ndarray, int, int]:
    """A clip's frames at ``resolution`` ((F, 3, R, R), ``frames_to_tensor``), its keypoints (F, 133, 3),
    both cut to the shorter of the two, and the frames' height and width in pixels.

    The keypoints are the dataset's, else the run's pose extractor's (``context.pose_extractor``) through the
    run's keypoint cache (``context.keypoint_cache``). The video is decoded a chunk at a time
    (``VideoReader.iter_chunks``, within ``CHUNK_BUDGET`` bytes) and each chunk resized (and given to the
    pose extractor, as ``video_keypoints`` does) before the next is decoded, so the clip is never held whole
    at full size; each frame resizes alone, so the numbers are those of the whole clip, bit for bit.
    ValueError naming the video when fewer frames decode than its container declares
    (``check_frame_count``; nothing is cached then), or when there are neither keypoints nor an extractor."""
    keypoints = record.load_keypoints()
    extractor, declared = None, None
    if keypoints is None:
        if context.pose_extractor is None:
            raise ValueError(f"{record.label}: the dataset has no keypoints and no pose extractor was given")
        declared = probe_video(record.video).num_frames
        keypoints = cached_keypoints(context.keypoint_cache, record.video, declared)
        extractor = context.pose_extractor if keypoints is None else None
    pixels, extracted, decoded = [], [], 0
    with VideoReader(record.video) as reader:
        height, width = reader.info.height, reader.info.width
        for chunk in reader.iter_chunks(CHUNK_FRAMES):
            height, width = chunk.shape[1:3]
            decoded += len(chunk)
            pixels.append(bounded_frames_to_tensor(chunk, resolution))
            if extractor is not None:
                extracted.append(extractor(chunk))
            del chunk                                 # before the next is decoded
    if declared is not None:      # a truncated file is refused, and nothing of it cached
        check_frame_count(record.video, decoded, declared)
    if extractor is not None:
        keypoints = store_keypoints(context.keypoint_cache, record.video, np.concatenate(extracted), record.fps,
                                    decoded)
    keypoints = keypoints[:decoded]
    if not pixels:
        pixels.append(frames_to_tensor(np.zeros((0, height, width, 3), np.uint8), resolution))
    pixels = pixels[0] if len(pixels) == 1 else torch.cat(pixels)
    return pixels[:len(keypoints)], keypoints, int(height), int(width)


@torch.no_grad()
def load_training_frames(context: BenchContext, options: MYAOptions, vae: AutoencoderKL,
                         device: torch.device) -> TrainingFrames:
    """Latents and pose images of every train-split frame (of ``context.identities`` when set)."""
    dataset = context.dataset()
    records = dataset.select("train", context.identities)
    latents, poses, starts, lengths = [], [], [], []
    offset = 0
    for record in tqdm(records, desc="mya: encoding train frames", unit="clip", disable=not context.progress):
        pixels, keypoints, height, width = clip_pixels(context, record, options.resolution)
        latents.append(torch.cat([encode_latents(vae, part.to(device), sample=False).float().cpu()
                                  for part in pixels.split(64)]))
        square = keypoints_to_square(keypoints, height, width, options.resolution)
        images = render_pose_images(square, options.resolution, options.resolution, options.score_threshold)
        poses.append(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
        starts.append(torch.full((len(pixels),), offset))
        lengths.append(torch.full((len(pixels),), len(pixels)))
        offset += len(pixels)
    return TrainingFrames(torch.cat(latents), torch.cat(poses), torch.cat(starts), torch.cat(lengths), len(records))


# -- training ------------------------------------------------------------------------------------


def training_batch(data: TrainingFrames, batch_size: int, reference_first_prob: float,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, reference) frame indices: the reference is from the target's clip, its first frame or any."""
    target = torch.randint(len(data), (batch_size,), generator=generator)
    offset = (torch.rand(batch_size, generator=generator) * data.clip_length[target]).long()
    first = torch.rand(batch_size, generator=generator) < reference_first_prob
    reference = data.clip_start[target] + torch.where(first, torch.zeros_like(offset), offset)
    return target, reference


class GeneratorLoss(nn.Module):
    """The generator's diffusion loss on noised latents as a module's forward (DistributedDataParallel
    averages the gradients of what runs through its wrapper's forward)."""

    def __init__(self, model: MYAGenerator) -> None:
        super().__init__()
        self.model = model

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, poses: torch.Tensor,
                reference_latents: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        pose_features = self.model.pose_encoder(poses.float() / 255.0)
        output = self.model(noisy, timesteps, pose_features, reference_latents,
                            self.model.reference_tokens(reference_latents))
        return F.mse_loss(output, goal)


def diffusion_loss(model: MYAGenerator | nn.Module, scheduler: DDIMScheduler, data: TrainingFrames,
                   target: torch.Tensor, reference: torch.Tensor, generator: torch.Generator,
                   device: torch.device, rows: slice | None = None) -> torch.Tensor:
    """Mean squared error of the model's epsilon or v on one batch, at uniformly drawn timesteps.

    ``model``: the generator or its ``GeneratorLoss`` (wrapped for data-parallel training). ``rows``:
    the batch is a global batch of which this process trains these rows; the noise and timesteps are
    drawn for the whole global batch, as one process draws them."""
    clean = data.latents[target].to(device)
    noise = torch.randn(clean.shape, generator=generator).to(device)
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (len(target),), generator=generator).to(device)
    if rows is not None:
        clean, noise, timesteps, target, reference = (x[rows] for x in (clean, noise, timesteps, target, reference))
    noisy = scheduler.add_noise(clean, noise, timesteps)
    goal = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(clean, noise, timesteps)
    reference_latents = data.latents[reference].to(device)
    step_loss = model if not isinstance(model, MYAGenerator) else GeneratorLoss(model)
    return step_loss(noisy, timesteps, data.poses[target].to(device), reference_latents, goal)


def learning_rate_factor(step: int, steps: int, warmup_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train_generator(model: MYAGenerator, data: TrainingFrames, options: MYAOptions, seed: int,
                    device: torch.device, progress: bool = False,
                    parallel: DataParallel | None = None) -> list[float]:
    """AdamW (linear warm-up, cosine decay), gradient norm clipped to 1; returns the loss of every step.

    ``parallel``: this process's share of data-parallel training (``metrics.training``): every process
    draws each global batch (frames, references, noise, timesteps) and trains on its block of it; the
    losses are the global batch's."""
    parallel = parallel or DataParallel(SINGLE, device)
    parallel.check_batch(options.batch_size, "mya batch_size")
    rows = parallel.part(options.batch_size) if parallel.distributed else None
    scheduler = mya_scheduler(options.prediction_type)
    step_loss = parallel.wrap(GeneratorLoss(model), find_unused_parameters=True)   # UNet options vary
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=0.0, foreach=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, options.steps, options.warmup_steps))
    model.train()
    losses = []
    bar = tqdm(range(options.steps), desc="mya: training generator", unit="step",
               disable=not (progress and parallel.is_main))
    for _ in bar:
        target, reference = training_batch(data, options.batch_size, options.reference_first_prob, generator)
        loss = diffusion_loss(step_loss, scheduler, data, target, reference, generator, device, rows)
        optimizer.zero_grad(set_to_none=True)
        parallel.scale(loss, options.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(parallel.mean(parallel.scale(loss.detach(), options.batch_size))[0])
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    model.eval()
    return losses


# -- the model folder ----------------------------------------------------------------------------


def generator_is_finished(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a completely saved generator (its card is written last)."""
    folder = Path(folder)
    return (folder / GENERATOR_CARD).is_file() and (folder / "config.json").is_file()


def save_generator(model: MYAGenerator, folder: Path, card: dict[str, Any]) -> None:
    """Save to a hidden sibling (weights, config, then the card), then rename it to ``folder``
    (``metrics.io.files.atomic_folder``).

    An unfinished ``folder`` left by an interrupted run is replaced.
    """
    with atomic_folder(folder) as staged:
        model.save_pretrained(staged)
        write_json_atomic(staged / GENERATOR_CARD, card)


def load_generator(folder: str | os.PathLike) -> tuple[MYAGenerator, dict[str, Any]]:
    """A finished generator (in eval mode) and its card; FileNotFoundError for an unfinished folder."""
    folder = Path(folder)
    if not generator_is_finished(folder):
        raise FileNotFoundError(f"{folder}: no finished MYA generator here (no {GENERATOR_CARD})")
    model = load_pretrained(MYAGenerator, folder)
    return model.eval(), read_generator_card(folder)


def read_generator_card(folder: str | os.PathLike) -> dict[str, Any]:
    """The card of a finished generator; ValueError naming it when it is not a JSON object (a given
    ``model:`` may come from elsewhere: read bounded)."""
    path = Path(folder) / GENERATOR_CARD
    card = read_json(path)
    if not isinstance(card, dict):
        raise ValueError(f"{path}: not a JSON object")
    return card


def _settings_view(settings: Any) -> dict[str, Any]:
    """Training settings as {"key": value}, the UNet's keywords one by one (``unet.<name>``)."""
    if not isinstance(settings, dict):
        return {"settings": settings}
    unet = settings.get("unet")
    view = {key: value for key, value in settings.items() if key != "unet" or not isinstance(unet, dict)}
    view.update({f"unet.{key}": value for key, value in (unet if isinstance(unet, dict) else {}).items()})
    return view


def generator_changes(folder: str | os.PathLike, options: MYAOptions) -> list[str]:
    """"key: old -> new" between the training settings of the finished generator in ``folder`` (its
    card) and ``options``'; [] when they match or no generator is finished there. Loads no weights."""
    if not generator_is_finished(folder):
        return []
    saved = read_generator_card(folder).get("settings")
    return config_differences(_settings_view(saved), _settings_view(options.training_settings()))


def check_generator(folder: str | os.PathLike, options: MYAOptions, videos: Path | None = None) -> None:
    """Refuse (ValueError naming ``folder`` and the changes) a finished generator in ``folder`` trained with
    other settings than ``options``' (``generator_changes``). ``videos``: the run's folder of videos made with
    it, if any (then only a new --out is advised: training again would mix two generators in one row)."""
    changes = generator_changes(folder, options)
    if changes:
        advice = (f"{videos} holds videos made with it: give a new --out to run these settings" if videos else
                  "remove the folder to train again, or give a new --out")
        raise ValueError(f"{folder}: trained with other settings than this run's mya options "
                         f"({listed(changes)}); {advice}")


def train_or_load_generator(context: BenchContext, options: MYAOptions, vae: AutoencoderKL,
                            device: torch.device) -> tuple[MYAGenerator, dict[str, Any]]:
    """The generator of ``options.model`` or ``work_dir/generator`` if finished, else trained and saved there.

    Under a launch of processes preparing together (``context.processes``) they train it data-parallel
    and the main process writes the folder (its view of the folder decides for all)."""
    folder = Path(options.model) if options.model else Path(context.work_dir) / GENERATOR_FOLDER
    processes = context.processes
    if options.model or processes.broadcast(generator_is_finished(folder) if processes.is_main else None):
        if not options.model:
            check_generator(folder, options)
        model, card = load_generator(folder)
        return model.to(device), {"generator": str(folder), "trained": "earlier", **card.get("facts", {})}
    if folder.exists() and processes.is_main:
        logger.info("mya: %s is unfinished (no %s); training again", folder, GENERATOR_CARD)
    started = time.perf_counter()
    data = load_training_frames(context, options, vae, device)
    loaded = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(context.seed)
        model = build_generator(options, vae).to(device)
    logger.info(f"mya: training the generator ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
                f"parameters) for {options.steps} steps on {len(data)} frames of {data.clips} clips")
    losses = train_generator(model, data, options, context.seed, device, context.progress,
                             DataParallel(processes, device))
    facts = {"parameters": sum(p.numel() for p in model.parameters()), "frames": len(data), "clips": data.clips,
             "steps": options.steps, "data_seconds": round(loaded - started, 1),
             "train_seconds": round(time.perf_counter() - loaded, 1),
             "first_loss": round(float(np.mean(losses[:20])), 5), "last_loss": round(float(np.mean(losses[-20:])), 5)}
    card = {"settings": options.training_settings(), "facts": facts, "losses": [round(x, 5) for x in losses]}
    DataParallel(processes, device).write_on_main(lambda: save_generator(model.cpu(), folder, card))
    return model.to(device), {"generator": str(folder), "trained": "now", **facts}
