"""MYA (Make-Your-Anchor reimplementation) as a benchmark method: audio -> 2D pose -> pose images ->
a pose-guided latent diffusion generator that also sees the reference frame -> frames.

What is kept of Make-Your-Anchor and what is simplified: ``bench.baselines.pose_guided`` (the model
and its options, the ``mya`` section); its training and model folder:
``bench.baselines.pose_guided_training``; the audio -> pose model, shared with S2G:
``bench.baselines.keypoint_motion`` (options under ``motion``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from bench.baselines.keypoint_motion import KeypointMotion, shared_folder, shared_model_changes, shared_motion_training
from bench.baselines.pose_guided import DTYPES, MYAGenerator, MYAOptions, render_frames
from bench.baselines.pose_guided_training import GENERATOR_FOLDER, check_generator, train_or_load_generator
from bench.methods.base import (BenchContext, Method, check_model_of_videos, check_shared_vae_size, made_videos,
                                reference_keypoints)
from imac.models.loading import load_pretrained
from bench.side_by_side import Training
from metrics.dataset import ClipRecord
from metrics.device import resolve_device


def load_vae(context: BenchContext) -> AutoencoderKL:
    """The run's shared tiny VAE (``BenchContext.shared_vae``), frozen, in eval mode."""
    if context.shared_vae is None:
        raise ValueError("mya: the run gives no VAE (BenchContext.shared_vae)")
    return load_pretrained(AutoencoderKL, context.shared_vae(), local_files_only=True).requires_grad_(False).eval()


class MYAMethod(Method):
    name = "mya"
    label = "MYA (reimplementation)"
    kind = "model"
    # Its trainers are data-parallel (``context.processes``, ``metrics.training``): under a launch every
    # process prepares at once and the main one writes the model folders.
    prepares_together = True

    def __init__(self) -> None:
        self.options: MYAOptions | None = None
        self.model: MYAGenerator | None = None
        self.vae: AutoencoderKL | None = None
        self.motion = None
        self.pose_extractor = None
        self.device = torch.device("cpu")

    def needs_shared_vae(self, context: BenchContext) -> bool:
        return True

    def side_trainings(self, context: BenchContext) -> list[Training]:
        options = MYAOptions.from_dict(context.options, self.name)
        training = shared_motion_training(context, options.motion_options(f"{self.name}.motion"))
        return [training] if training is not None else []

    def check_folder(self, context: BenchContext) -> None:
        """Refuse a run folder whose generator was trained with other settings (``check_generator``; unless
        ``model:`` gives one), or holding MYA videos made with other models than this run's: another keypoint
        motion model (``keypoint_motion.shared_model_changes``) or a shared VAE trained with other settings
        (``context.check_shared_vae``), and a resolution that is not the shared VAE's
        (``check_shared_vae_size``). Reads cards, trains nothing."""
        options = MYAOptions.from_dict(context.options, self.name)
        check_shared_vae_size(context, options.resolution, self.name, "resolution")
        videos = made_videos(context)
        if not options.model:       # before anything trains (the shared models, side by side), not after
            check_generator(Path(context.work_dir) / GENERATOR_FOLDER, options, videos)
        if videos is None:
            return
        motion_options = options.motion_options(f"{self.name}.motion")
        check_model_of_videos(videos, "a keypoint motion model", lambda: shared_model_changes(context, motion_options))
        if context.check_shared_vae is not None:
            context.check_shared_vae()

    def made_with(self, context: BenchContext) -> dict[str, Any]:
        """The generator's and the keypoint model's options (defaults filled in) and that model's folder
        (the generator's training card and the shared VAE are compared by ``check_folder``)."""
        options = MYAOptions.from_dict(context.options, self.name)
        motion_options = options.motion_options(f"{self.name}.motion")
        return {"options": replace(options, motion={}), "motion": motion_options,
                "motion_model": shared_folder(context, motion_options).name}

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        options = MYAOptions.from_dict(context.options, self.name)
        motion_options = options.motion_options(f"{self.name}.motion")
        self.options = options
        self.device = torch.device(resolve_device(context.device))
        self.pose_extractor = context.pose_extractor
        self.vae = load_vae(context).to(self.device)
        model, facts = train_or_load_generator(context, options, self.vae, self.device)
        self.model = model.eval()
        if options.dtype != "float32":   # sampling only; training is float32
            self.model, self.vae = self.model.to(DTYPES[options.dtype]), self.vae.to(DTYPES[options.dtype])
        self.motion = KeypointMotion.train_or_load_shared(context, motion_options)
        return {**facts, "resolution": options.resolution, "sample_steps": options.sample_steps,
                "window": options.window, "overlap": options.overlap,
                "motion": dict(getattr(self.motion, "facts", None) or {})}

    @torch.no_grad()
    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        if self.model is None or self.motion is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        reference = clip.first_frame()
        audio = clip.load_audio()
        keypoints = self.motion.sample(audio, clip.num_frames, clip.fps,
                                       reference_keypoints(clip, self.pose_extractor), seed)
        return self.render(reference, np.asarray(keypoints, np.float32), seed)

    @torch.no_grad()
    def render(self, reference: np.ndarray, keypoints: np.ndarray, seed: int) -> np.ndarray:
        """Frames (F, R, R, 3) uint8 of the person in ``reference`` (H, W, 3) posed as ``keypoints`` (F, 133, 3)."""
        if self.model is None or self.vae is None or self.options is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        return render_frames(self.model, self.vae, self.options, reference, keypoints, seed, self.device)
