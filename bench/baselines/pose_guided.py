"""Make-Your-Anchor (MYA, Huang et al., CVPR 2024) reimplemented at the scale of the toy corpus.

This module holds the model: its options (the ``mya`` section of a bench config), the pose-guided
generator network and its sampling (batch-overlapped temporal denoising, ``render_frames``); its
training data, training and model folder are in ``bench.baselines.pose_guided_training``, and the
benchmark method that chains them is ``bench.methods.mya``.

The pipeline: audio -> 2D pose (the same audio-to-keypoint model as the S2G baseline,
``bench.baselines.keypoint_motion``, options under ``motion``) -> pose images
(``bench.baselines.pose_images``, DWPose style) -> a pose-guided latent diffusion generator that
also sees the reference frame -> frames, all frames of a clip denoised together by MYA's
batch-overlapped temporal denoising.

What this reimplementation keeps of MYA:

- frame-wise training of a structure-guided latent diffusion model: a UNet trained on single
  frames to turn a rendered body structure into the person's appearance, the structure entering
  through a small convolutional encoder (ControlNet-like guidance; here its features are
  concatenated to the UNet's input, which a convolution makes equivalent to adding them after
  ``conv_in``);
- the "2D UNet extended to 3D without additional training": at sampling, every self-attention
  layer of the frame-wise UNet attends over the tokens of all frames of the window being
  denoised (``WindowAttentionProcessor``); trained weights are used unchanged;
- batch-overlapped temporal denoising: at every denoising step all ``num_frames`` latents are cut
  into windows of ``window`` frames overlapping by ``overlap``, each window is denoised as one
  batch, and the predictions of a frame that lies in two windows are averaged before the
  scheduler step (``overlapping_windows``, ``average_window_predictions``); so a clip of any
  length comes out as one consistent sequence. The initial noise comes from the seed; by
  default (``shared_noise``) one noise map serves every frame, so that what the pose does not
  move stays put.

What it simplifies, and why:

- structure: MYA renders 3D body meshes (SMPL-X) driven by an audio-to-motion model; here the
  structure is a 2D COCO-WholeBody pose image predicted from audio, as in the other
  pose-driven methods of the benchmark;
- appearance: MYA binds one anchor's appearance into the weights (a two-stage training that ends
  by fine-tuning on a one-minute video of the target anchor). Here one model
  is trained on the train clips of the corpus (or of ``context.identities``) and the appearance
  comes from the reference frame, given twice: its latents concatenated to the noisy latents
  channel-wise (where the background and clothes are), and its latents as tokens for the UNet's
  cross-attention ("reference attention", what can move: hands, sleeves). There is no
  per-identity fine-tuning stage; restricting ``context.identities`` to one speaker trains the
  closest equivalent;
- no identity-specific face enhancement: MYA re-generates the face region with a model
  specialised on the anchor's face; at 64 pixels a face is a few pixels wide, so it is left out;
- the backbone is a small ``diffusers.UNet2DConditionModel`` trained from scratch (MYA starts from
  a pretrained Stable Diffusion UNet), no classifier-free guidance (the conditions here are dense,
  and guidance would double the sampling cost), DDIM sampling with v-prediction on a zero-terminal-SNR
  schedule with trailing timesteps (so the first step starts from pure noise).

The toy defaults fit the embedded benchmark (4 speakers x 6 train clips, 64 px) on one CPU thread:
600 training steps of 16 frames after encoding the ~3000 train frames, about 2-2.5 minutes in all;
10 DDIM steps in 16-frame windows overlapping by 4, about 75 s for the ~920 frames of the 8 test
clips (audio-to-pose, pose images and VAE decoding included).

The generator is a ``diffusers`` ``ModelMixin`` (``MYAGenerator``): it saves as a folder of
``config.json`` + safetensors. ``MYAMethod.prepare`` trains it into ``work_dir/generator``
(``pose_guided_training.train_or_load_generator``: written to a hidden sibling and renamed into
place once complete, with ``mya.json`` written last: a folder without it is never loaded) or loads
it from there, and trains or loads the audio-to-pose model (shared with S2G) beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from tqdm import tqdm

from bench.baselines.keypoint_motion import KeypointMotionOptions
from bench.baselines.pose_images import keypoints_to_square, render_pose_images
from imac.frames import check_finite, frames_to_tensor, tensor_to_frames
from imac.models.video import decode_latents, encode_latents
from metrics.options import build_options

PREDICTION_TYPES = ("v_prediction", "epsilon")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# The toy UNet (1.4 M parameters with the encoders): 16x16x4 latents (64-pixel frames) down to
# 4x4, attention only at 4x4, where the window's cross-frame attention and the reference attention
# are cheap. On one CPU thread: 3.5 ms a frame per denoising step in 16-frame windows, 0.15-0.2 s a
# training step of 16 frames; attention at 8x8 as well would double both.
DEFAULT_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64, 64],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "attention_head_dim": 32,
    "norm_num_groups": 8,
}
# Options that change the trained generator (the others only change sampling).
TRAINING_OPTIONS = ("resolution", "unet", "pose_widths", "pose_features", "reference_token_stride",
                    "score_threshold", "prediction_type", "steps", "batch_size", "lr", "warmup_steps",
                    "reference_first_prob")


# -- options -------------------------------------------------------------------------------------


@dataclass
class MYAOptions:
    """The ``mya`` section of a bench config (toy defaults)."""

    resolution: int = 64                  # frames are generated at resolution x resolution
    unet: dict[str, Any] = field(default_factory=dict)   # UNet2DConditionModel kwargs over DEFAULT_UNET
    pose_widths: list[int] = field(default_factory=lambda: [16, 32, 32])   # pose encoder's conv widths
    pose_features: int = 8                # pose channels concatenated to the UNet's input
    reference_token_stride: int = 2       # reference latents -> tokens: one per stride x stride patch
    score_threshold: float = 0.3          # keypoints under it are not drawn
    prediction_type: str = "v_prediction"
    steps: int = 600                      # training steps
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    reference_first_prob: float = 0.5     # training reference: the clip's first frame, else a random one
    sample_steps: int = 10                # DDIM steps
    window: int = 16                      # frames denoised together
    overlap: int = 4                      # frames shared by consecutive windows
    shared_noise: bool = True             # one initial noise for every frame of a clip
    decode_chunk: int = 32                # frames per VAE decode
    dtype: str = "float32"                # sampling dtype (training is float32)
    model: str | None = None              # a finished generator folder: skip training
    motion: dict[str, Any] = field(default_factory=dict)  # KeypointMotionOptions (audio -> pose)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "mya") -> MYAOptions:
        """Options from a config section (``metrics.options``): an unknown key, a value of the wrong type
        or out of range is an error naming ``where`` and the key; ``motion`` is checked as
        ``KeypointMotionOptions`` (section ``<where>.motion``)."""
        options = build_options(cls, values, where)
        options.check(where)
        options.motion_options(f"{where}.motion")
        return options

    def motion_options(self, where: str = "mya.motion") -> KeypointMotionOptions:
        """The audio-to-pose model's options (the ``motion`` mapping, kept as given)."""
        return KeypointMotionOptions.from_dict(self.motion, where)

    @property
    def unet_kwargs(self) -> dict[str, Any]:
        return {**DEFAULT_UNET, **self.unet}

    def check(self, where: str = "mya") -> None:
        problems = []
        for name in ("resolution", "pose_features", "reference_token_stride", "steps", "batch_size",
                     "sample_steps", "window", "decode_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0:
            problems.append(f"overlap must be an integer >= 0, got {self.overlap!r}")
        elif isinstance(self.window, int) and self.overlap >= self.window:
            problems.append(f"overlap ({self.overlap}) must be smaller than window ({self.window})")
        if self.prediction_type not in PREDICTION_TYPES:
            problems.append(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not 0.0 <= self.reference_first_prob <= 1.0:
            problems.append(f"reference_first_prob must be in [0, 1], got {self.reference_first_prob!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            problems.append(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if not self.pose_widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                                           for w in self.pose_widths):
            problems.append(f"pose_widths must be a list of positive integers, got {self.pose_widths!r}")
        if not isinstance(self.unet, dict) or not isinstance(self.motion, dict):
            problems.append("unet and motion must be mappings")
        if problems:
            raise ValueError(f"{where}: " + "; ".join(problems))

    def training_settings(self) -> dict[str, Any]:
        """The options that shape the trained generator, as its card stores them (JSON values)."""
        values = asdict(self)
        values["unet"] = self.unet_kwargs
        return json.loads(json.dumps({name: values[name] for name in TRAINING_OPTIONS}))


# -- the generator -------------------------------------------------------------------------------


class WindowAttentionProcessor:
    """Self-attention over all frames of a window: MYA's training-free "3D" extension of the UNet.

    The UNet runs on a window of ``num_frames`` consecutive frames as a batch (B * num_frames, N, C);
    for self-attention the tokens of the window's frames are joined into one sequence
    (B, num_frames * N, C), so each frame attends to every frame of its window. Cross-attention
    (to the reference tokens), and everything with ``num_frames == 1`` (training), is the
    ordinary attention.
    """

    def __init__(self) -> None:
        self.attention = AttnProcessor2_0()

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 num_frames: int = 1) -> torch.Tensor:
        if encoder_hidden_states is not None or num_frames == 1 or hidden_states.ndim != 3:
            return self.attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch_frames, tokens, channels = hidden_states.shape
        if batch_frames % num_frames:
            raise ValueError(f"batch of {batch_frames} is not a whole number of {num_frames}-frame windows")
        joined = hidden_states.reshape(batch_frames // num_frames, num_frames * tokens, channels)
        out = self.attention(attn, joined, None, attention_mask, temb)
        return out.reshape(batch_frames, tokens, out.shape[-1])


class PoseEncoder(nn.Module):
    """Pose images (B, 3, H, W) in [0, 1] -> features (B, out_channels, H / 2**downsample, W / 2**downsample).

    One 3x3 convolution per width (the first ``downsample`` of them with stride 2, which still
    sees every pixel of a one-pixel line), each followed by SiLU, then a 3x3 convolution to
    ``out_channels``.
    """

    def __init__(self, widths: tuple[int, ...], out_channels: int, downsample: int) -> None:
        super().__init__()
        if len(widths) < downsample:
            raise ValueError(f"pose_widths {list(widths)}: need at least {downsample} widths to "
                             f"downsample {2 ** downsample}x to the latents")
        layers: list[nn.Module] = []
        channels = 3
        for k, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1, stride=2 if k < downsample else 1), nn.SiLU()]
            channels = width
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pose_images: torch.Tensor) -> torch.Tensor:
        return self.layers(pose_images)


class MYAGenerator(ModelMixin, ConfigMixin):
    """The pose- and reference-conditioned denoiser.

    UNet(noisy latents | reference latents | pose features, t, context = reference tokens).
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, latent_size: int = 16, pose_widths: tuple[int, ...] = (16, 32, 32),
                 pose_features: int = 8, pose_downsample: int = 2, reference_token_stride: int = 2,
                 unet_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        unet_kwargs = {**DEFAULT_UNET, **(unet_kwargs or {})}
        context_dim = unet_kwargs["cross_attention_dim"]
        if latent_size % reference_token_stride:
            raise ValueError(f"reference_token_stride {reference_token_stride} does not divide the latent "
                             f"size {latent_size}")
        tokens = (latent_size // reference_token_stride) ** 2
        self.pose_encoder = PoseEncoder(tuple(pose_widths), pose_features, pose_downsample)
        self.reference_encoder = nn.Conv2d(latent_channels, context_dim, reference_token_stride,
                                           stride=reference_token_stride)
        self.reference_position = nn.Parameter(torch.zeros(1, tokens, context_dim))
        self.unet = UNet2DConditionModel(sample_size=latent_size, in_channels=2 * latent_channels + pose_features,
                                         out_channels=latent_channels, **unet_kwargs)
        self.unet.set_attn_processor(WindowAttentionProcessor())

    def reference_tokens(self, reference_latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) reference latents -> (B, tokens, cross_attention_dim) for cross-attention."""
        tokens = self.reference_encoder(reference_latents).flatten(2).transpose(1, 2)
        return tokens + self.reference_position

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, pose_features: torch.Tensor,
                reference_latents: torch.Tensor, reference_tokens: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        """The model output (epsilon or v) for (B, C, h, w) noisy latents.

        ``pose_features``: ``pose_encoder`` of the frames' pose images; reference latents and
        tokens are per frame (B, ...) or one for all (1, ...). With ``num_frames`` > 1 the batch
        is B / num_frames windows of consecutive frames, which self-attention joins.
        """
        batch = noisy_latents.shape[0]
        reference_latents = reference_latents.expand(batch, -1, -1, -1)
        reference_tokens = reference_tokens.expand(batch, -1, -1)
        sample = torch.cat([noisy_latents, reference_latents, pose_features], dim=1)
        timesteps = torch.as_tensor(timesteps, device=sample.device).expand(batch)
        return self.unet(sample, timesteps, encoder_hidden_states=reference_tokens,
                         cross_attention_kwargs={"num_frames": num_frames}).sample


def build_generator(options: MYAOptions, vae: AutoencoderKL) -> MYAGenerator:
    downsample_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if options.resolution % downsample_factor:
        raise ValueError(f"resolution {options.resolution} is not a multiple of the VAE's downsampling "
                         f"{downsample_factor}")
    return MYAGenerator(latent_channels=vae.config.latent_channels,
                        latent_size=options.resolution // downsample_factor,
                        pose_widths=tuple(options.pose_widths), pose_features=options.pose_features,
                        pose_downsample=int(math.log2(downsample_factor)),
                        reference_token_stride=options.reference_token_stride, unet_kwargs=options.unet_kwargs)


def mya_scheduler(prediction_type: str = "v_prediction", num_train_timesteps: int = 1000) -> DDIMScheduler:
    """DDIM, cosine betas; for v-prediction rescaled to zero terminal SNR, trailing timesteps."""
    return DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         rescale_betas_zero_snr=prediction_type == "v_prediction",
                         prediction_type=prediction_type, timestep_spacing="trailing",
                         clip_sample=False, set_alpha_to_one=True)


def pose_tensor(pose_images: np.ndarray) -> torch.Tensor:
    """uint8 pose images (F, H, W, 3) -> float (F, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pose_images)).permute(0, 3, 1, 2).float() / 255.0


# -- batch-overlapped temporal denoising ---------------------------------------------------------


def overlapping_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the windows covering frames 0..num_frames-1.

    Consecutive windows share exactly ``overlap`` frames; every window holds ``window`` frames
    but the last, which stops at the clip's end (and still holds more than ``overlap``). A clip
    of at most ``window`` frames is one window.
    """
    if num_frames < 1 or window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need num_frames >= 1, window >= 1 and 0 <= overlap < window; got "
                         f"{num_frames}, {window}, {overlap}")
    stride = window - overlap
    windows = [(0, min(window, num_frames))]
    while windows[-1][1] < num_frames:
        start = windows[-1][0] + stride
        windows.append((start, min(start + window, num_frames)))
    return windows


def average_window_predictions(num_frames: int, windows: list[tuple[int, int]],
                               predict: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """The per-frame mean of ``predict(start, end)`` (end - start, ...) over the windows holding each frame."""
    total: torch.Tensor | None = None
    count = torch.zeros(num_frames)
    for start, end in windows:
        prediction = predict(start, end)
        if total is None:
            total = torch.zeros((num_frames, *prediction.shape[1:]), dtype=torch.float32, device=prediction.device)
        total[start:end] += prediction.float()
        count[start:end] += 1
    if total is None or (count == 0).any():
        raise ValueError("the windows do not cover every frame")
    return total / count.to(total.device).view(-1, *([1] * (total.ndim - 1)))


@torch.no_grad()
def batch_overlapped_denoise(model: MYAGenerator, scheduler: DDIMScheduler, noise: torch.Tensor,
                             pose_features: torch.Tensor, reference_latents: torch.Tensor,
                             steps: int, window: int, overlap: int, progress: bool = False) -> torch.Tensor:
    """Denoise all (F, C, h, w) latents together: at every step, window by window, overlaps averaged."""

    num_frames = noise.shape[0]
    windows = overlapping_windows(num_frames, window, overlap)
    reference_tokens = model.reference_tokens(reference_latents)
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise * scheduler.init_noise_sigma
    for t in tqdm(scheduler.timesteps, desc="mya denoising", unit="step", disable=not progress):
        def predict(start: int, end: int) -> torch.Tensor:
            return model(latents[start:end], t, pose_features[start:end], reference_latents,
                         reference_tokens, num_frames=end - start)

        output = average_window_predictions(num_frames, windows, predict)
        latents = scheduler.step(output.to(latents.dtype), t, latents).prev_sample
    return latents


@torch.no_grad()
def render_frames(model: MYAGenerator, vae: AutoencoderKL, options: MYAOptions, reference: np.ndarray,
                  keypoints: np.ndarray, seed: int, device: torch.device) -> np.ndarray:
    """Frames (F, R, R, 3) uint8 of the person in ``reference`` (H, W, 3) posed as ``keypoints`` (F, 133, 3).

    Keypoints are in the reference frame's pixels; F is the number of frames generated. The
    initial noise comes from ``seed``; sampling runs in the dtype of ``model``.
    """
    dtype = next(model.parameters()).dtype
    size = options.resolution
    square = keypoints_to_square(keypoints, reference.shape[0], reference.shape[1], size)
    poses = pose_tensor(render_pose_images(square, size, size, options.score_threshold))
    pose_features = torch.cat([model.pose_encoder(part.to(device, dtype))
                               for part in poses.split(options.decode_chunk)])
    reference_latents = encode_latents(vae, frames_to_tensor(reference[None], size).to(device),
                                       sample=False).to(dtype)
    num_frames = len(keypoints)
    generator = torch.Generator().manual_seed(seed)
    shape = (1 if options.shared_noise else num_frames, *reference_latents.shape[1:])
    noise = torch.randn(shape, generator=generator).expand(num_frames, -1, -1, -1)
    latents = batch_overlapped_denoise(model, mya_scheduler(options.prediction_type),
                                       noise.to(device, dtype).contiguous(), pose_features,
                                       reference_latents, options.sample_steps, options.window, options.overlap)
    check_finite(latents, f"MYA's sampled latents ({options.sample_steps} steps, {options.dtype})",
                 "the weights or the sampler settings give no finite sample" if options.dtype == "float32" else
                 "sampling in float32 (mya.dtype float32) avoids an overflow of the reduced precision")
    return tensor_to_frames(decode_latents(vae, latents, chunk=options.decode_chunk), "MYA's frames")
