"""``IMACModel``: both branches in one ``nn.Module`` — the training losses and the sampling steps.

One module so that ``accelerate`` (DDP) wraps everything that trains, and so that the same code
serves stage 1 (``video`` parts absent), stage 2 and sampling. Frozen parts (VAE, CLIP image
encoder) sit inside with ``requires_grad=False``.

Batches (``imac.training.windows``) hold raw (un-normalised) motion of the long "slow" window,
its per-frame audio features, and for stage 2 the frames of a short "fast" window inside it and
the window's offset:

    pose (B, Fm, P), expression (B, Fm, E), mfcc (B, Fm, n), hubert (B, Fm, H),
    frames (B, Fv, 3, S, S) in [-1, 1], video_start (B,) with 0 <= start <= Fm - Fv.

Classifier-free guidance on the video branch. The unconditional branch is: a zero CLIP image
embedding (as in I2VGen-XL) AND the motion cross-attention switched off (scale 0); the first-frame
VAE latents, the reference encoder's residuals and the text context are kept, so guidance
strengthens the image identity and the motion. Training drops both together with probability
``video.condition_dropout`` so that the unconditional branch is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import nn

from imac.models import noise as draws
from imac.models.coupling import Coupling
from imac.models.motion import MotionModel
from imac.models.video import (clip_image_embedding, correlated_frame_noise, decode_latents, encode_latents,
                               image_condition, start_from_frame)


def gather_frames(features: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """(B, Fm, D), (B,) -> (B, length, D): rows starts[b] .. starts[b] + length - 1 of each sample."""
    index = starts.long()[:, None] + torch.arange(length, device=features.device)[None, :]
    if int(index.max()) >= features.shape[1] or int(index.min()) < 0:
        raise ValueError(f"video window [{int(starts.min())}, {int(index.max()) + 1}) outside the motion "
                         f"window of {features.shape[1]} frames")
    return torch.gather(features, 1, index[:, :, None].expand(-1, -1, features.shape[-1]))


@dataclass(frozen=True)
class ChunkSample:
    """A sampled video chunk: ``frames`` (Fv, 3, S, S) in [-1, 1] and their ``latents`` (Fv, C, h, w)."""

    frames: torch.Tensor
    latents: torch.Tensor


class IMACModel(nn.Module):
    def __init__(self, motion: MotionModel, unet=None, vae=None, image_encoder=None,
                 coupling: Coupling | None = None, text_context: torch.Tensor | None = None,
                 motion_scheduler=None, video_scheduler=None, fps: float = 25.0,
                 condition_dropout: float = 0.1, motion_loss_weight: float = 1.0,
                 clip_mean=None, clip_std=None) -> None:
        super().__init__()
        self.motion = motion
        self.unet = unet
        self.vae = vae
        self.image_encoder = image_encoder
        self.coupling = coupling
        if text_context is not None:
            self.register_buffer("text_context", text_context, persistent=False)
        else:
            self.text_context = None
        self.motion_scheduler = motion_scheduler
        self.video_scheduler = video_scheduler
        self.fps = fps
        self.condition_dropout = condition_dropout
        self.motion_loss_weight = motion_loss_weight
        self.clip_stats = (clip_mean, clip_std) if clip_mean is not None else None
        if unet is not None and coupling is not None:
            coupling.install(unet)

    @property
    def has_video(self) -> bool:
        return self.unet is not None

    @property
    def video_feature_width(self) -> int:
        """Numbers per frame of ``video_features``: the motion representation's, plus the pose's with a motion map."""
        return self.coupling.config.motion_width if self.coupling is not None else self.motion.feature_width

    def trainable_modules(self, stage: str) -> list[nn.Module]:
        """Stage 1: the audio encoder and the motion encoders. Stage 2: also the UNet and the coupling."""
        if stage == "stage1":
            return [self.motion]
        return [self.motion, self.unet, self.coupling]

    def forward(self, batch: dict[str, torch.Tensor], stage: str = "stage2",
                generator: draws.Generators = None) -> dict[str, torch.Tensor]:
        """The stage's losses on ``batch``. Its draws come from ``generator``; a batch with per-sample
        ``seed``s (``imac.training.windows``) and no ``generator`` draws each sample from its own seed."""
        if generator is None and "seed" in batch:
            generator = draws.per_sample_generators(batch["seed"], batch["pose"].device)
        if stage == "stage1":
            pose, expression = self.motion.normalize(batch["pose"], batch["expression"])
            loss = self.motion.loss(pose, expression, batch["mfcc"], batch["hubert"], self.motion_scheduler, generator)
            return {"loss": loss, "motion_loss": loss.detach()}
        return self.stage2_losses(batch, generator)

    # -- stage 2 ---------------------------------------------------------------------------------

    def video_context(self, reference: torch.Tensor, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference images (B, 3, S, S) -> (scaled VAE latents (B, C, h, w), CLIP embedding (B, 1, D)).

        The latents are drawn from the VAE posterior (as I2VGen-XL does) with ``generator``.
        """
        with torch.no_grad():
            latents = encode_latents(self.vae, reference, generator=generator)
            mean, std = self.clip_stats or (None, None)
            kwargs = {"mean": mean, "std": std} if mean is not None else {}
            embedding = clip_image_embedding(self.image_encoder, reference, **kwargs)
        return latents, embedding

    def denoise(self, noisy: torch.Tensor, timesteps: torch.Tensor, reference_latents: torch.Tensor,
                image_embedding: torch.Tensor, motion_features: torch.Tensor | None,
                motion_scale: torch.Tensor | None, first_frame_latents: torch.Tensor | None = None) -> torch.Tensor:
        """One UNet call on (B, C, Fv, h, w) latents with all IMAC conditions; returns the v-prediction.

        ``reference_latents`` (B, C, h, w) feed the reference encoder and, unless
        ``first_frame_latents`` (B, C, h, w) are given, I2VGen-XL's image condition (the chunk's first
        frame); in training both are the window's first frame."""
        batch, _, frames = noisy.shape[:3]
        self.coupling.prepare(frames, motion_features, reference_latents, motion_scale)
        fps = torch.full((batch,), self.fps, device=noisy.device)
        text = self.text_context.to(noisy.dtype).expand(batch, -1, -1)
        first = reference_latents if first_frame_latents is None else first_frame_latents
        return self.unet(noisy, timesteps, fps=fps, image_latents=image_condition(first, frames),
                         image_embeddings=image_embedding.to(noisy.dtype), encoder_hidden_states=text).sample

    def video_features(self, pose: torch.Tensor | None, expression: torch.Tensor | None, mfcc: torch.Tensor,
                       hubert: torch.Tensor) -> torch.Tensor:
        """What the video branch is given for (B, F) frames of normalised motion and audio features:
        the motion branch's representation (B, F, motion width), followed by the pose (B, F, P) when the
        coupling draws a spatial motion map from it (``video.motion_map``; never in the w/o-motion ablation)."""
        features = self.motion.representation(pose, expression, mfcc, hubert)
        if self.coupling is None or not self.coupling.config.pose_width:
            return features
        if pose is None:
            raise ValueError("the spatial motion map needs the pose")
        return torch.cat([features, pose.to(features.dtype)], -1)

    def stage2_losses(self, batch: dict[str, torch.Tensor], generator: draws.Generators = None
                      ) -> dict[str, torch.Tensor]:
        if not self.has_video:
            raise ValueError("stage 2 needs the video branch")
        motion = self.motion
        pose, expression = motion.normalize(batch["pose"], batch["expression"])
        if motion.config.use_motion:
            motion_loss = motion.loss(pose, expression, batch["mfcc"], batch["hubert"], self.motion_scheduler, generator)
        else:
            motion_loss = pose.new_zeros(())
        features = self.video_features(pose, expression, batch["mfcc"], batch["hubert"])
        frames = batch["frames"]
        batch_size, video_frames = frames.shape[:2]
        features = gather_frames(features, batch["video_start"], video_frames)

        with torch.no_grad():
            each_frame = draws.repeat_each(generator, video_frames)
            latents = encode_latents(self.vae, frames.flatten(0, 1), generator=each_frame)
            latents = latents.unflatten(0, (batch_size, video_frames)).transpose(1, 2)  # (B, C, Fv, h, w)
        reference_latents = latents[:, :, 0]  # the window's first frame is its reference: already encoded
        with torch.no_grad():
            mean, std = self.clip_stats or (None, None)
            kwargs = {"mean": mean, "std": std} if mean is not None else {}
            image_embedding = clip_image_embedding(self.image_encoder, frames[:, 0], **kwargs)
        keep = (draws.rand(batch_size, generator, frames.device) >= self.condition_dropout)
        keep = keep.to(latents.dtype)
        image_embedding = image_embedding * keep[:, None, None]

        scheduler = self.video_scheduler
        noise = draws.randn(latents.shape, generator, latents.device, latents.dtype)
        timesteps = draws.randint(scheduler.config.num_train_timesteps, batch_size, generator, latents.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        target = scheduler.get_velocity(latents, noise, timesteps)
        prediction = self.denoise(noisy, timesteps, reference_latents, image_embedding, features, keep)
        video_loss = F.mse_loss(prediction.float(), target.float())
        loss = video_loss + self.motion_loss_weight * motion_loss
        return {"loss": loss, "video_loss": video_loss.detach(), "motion_loss": motion_loss.detach()}

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_chunk(self, reference: torch.Tensor, motion_features: torch.Tensor, steps: int,
                     guidance_scale: float, generator: torch.Generator | None = None, *,
                     context: tuple[torch.Tensor, torch.Tensor] | None = None,
                     first_frame_latents: torch.Tensor | None = None,
                     scheduler: DDIMScheduler | None = None, strength: float = 1.0,
                     strength_from: str = "reference", noise_correlation: float = 0.0) -> ChunkSample:
        """One video chunk: reference (1, 3, S, S), motion features (1, Fv, D) -> ``ChunkSample``.

        ``guidance_scale`` g: classifier-free guidance, u + g (c - u) of the unconditional and conditional
        v-predictions; 1 runs the conditional branch alone and 0 the unconditional one alone (one UNet
        call a step), any other g both.

        ``context``: (reference latents (1, C, h, w), CLIP embedding (1, 1, D)) for the reference
        encoder and CLIP, e.g. those of the original reference image (``video_context``); default:
        those of ``reference``. ``first_frame_latents`` (1, C, h, w): the image condition (the chunk's
        first frame) as a latent, e.g. the previous chunk's last latent; default: ``reference``'s.
        ``scheduler``: the DDIM sampler (``imac.models.video.video_sampling_scheduler``); default: the
        training schedule's own (the release's leading spacing). ``strength`` < 1: start from the
        latents of ``strength_from`` ("reference": the reference encoder's, "first_frame": the image
        condition's) repeated over the frames and noised to the last int(steps x strength) of the
        ``steps`` timesteps, and run those (``start_from_frame``; SDEdit); 1: from pure noise.
        ``noise_correlation`` > 0: that starting noise correlated between the frames
        (``correlated_frame_noise``; its shared map drawn after the frames' own).
        """
        reference_latents, image_embedding = context if context is not None else self.video_context(reference,
                                                                                                   generator)
        frames = motion_features.shape[1]
        height, width = reference_latents.shape[-2:]
        scheduler = scheduler or self.video_scheduler
        scheduler.set_timesteps(steps, device=reference.device)
        latents = torch.randn((1, reference_latents.shape[1], frames, height, width), device=reference.device,
                              dtype=reference_latents.dtype, generator=generator)
        if noise_correlation > 0:
            shared = torch.randn((1, latents.shape[1], 1, height, width), device=reference.device,
                                 dtype=latents.dtype, generator=generator)
            latents = correlated_frame_noise(latents, shared, noise_correlation)
        first = first_frame_latents
        timesteps = scheduler.timesteps
        if strength < 1:
            start = {"reference": reference_latents, "first_frame": reference_latents if first is None else first}
            if strength_from not in start:
                raise ValueError(f"strength_from must be one of {sorted(start)}, got {strength_from!r}")
            latents, timesteps = start_from_frame(scheduler, start[strength_from], latents, strength)
        guided = guidance_scale not in (0.0, 1.0)
        if guided:
            reference_latents = reference_latents.repeat(2, 1, 1, 1)
            first = None if first is None else first.repeat(2, 1, 1, 1)
            image_embedding = torch.cat([torch.zeros_like(image_embedding), image_embedding])
            motion_features = motion_features.repeat(2, 1, 1)
            scale = torch.tensor([0.0, 1.0], device=reference.device)
        elif guidance_scale == 0:       # u + 0 x (c - u) = u: the unconditional branch alone, one UNet call
            image_embedding = torch.zeros_like(image_embedding)
            scale = torch.zeros(1, device=reference.device)
        else:
            scale = None
        for t in timesteps:
            model_input = latents.repeat(2, 1, 1, 1, 1) if guided else latents
            prediction = self.denoise(model_input, t.expand(model_input.shape[0]), reference_latents,
                                      image_embedding, motion_features, scale, first)
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = unconditional + guidance_scale * (conditional - unconditional)
            latents = scheduler.step(prediction, t, latents, generator=generator).prev_sample
        latents = latents[0].transpose(0, 1)            # (Fv, C, h, w)
        return ChunkSample(decode_latents(self.vae, latents), latents)
