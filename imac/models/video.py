"""The video branch's parts: I2VGen-XL UNet, VAE, CLIP image encoder, text context, schedulers.

Real configuration: everything from a local I2VGen-XL folder (``unet/``, ``vae/``, ``image_encoder/``,
``text_encoder/`` + ``tokenizer/`` for the prompt, loaded with ``local_files_only``). Tiny
configuration: a random UNet and CLIP image encoder from the config's keyword arguments and a small
VAE trained on the corpus (``imac train vae``). The scheduler is the release's DDIM setting:
squaredcos_cap_v2 betas rescaled to zero terminal SNR, v-prediction, leading timestep spacing.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, I2VGenXLUNet
from torch.utils.checkpoint import checkpoint
from transformers import (
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    PretrainedConfig,
)

from imac.config import MotionConfig, VideoConfig, kept_steps
from imac.models.loading import load_pretrained
from metrics.io.bounded import read_json

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


VIDEO_TRAIN_TIMESTEPS = 1000      # the video schedule's timesteps (the I2VGen-XL release's)


def video_scheduler(num_train_timesteps: int = VIDEO_TRAIN_TIMESTEPS) -> DDIMScheduler:
    """The I2VGen-XL release's sampling/training schedule."""
    return DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         rescale_betas_zero_snr=True, prediction_type="v_prediction",
                         timestep_spacing="leading", clip_sample=False, set_alpha_to_one=True,
                         steps_offset=1)


def video_sampling_scheduler(config: VideoConfig) -> DDIMScheduler:
    """The video branch's DDIM sampler: ``video_scheduler``'s betas and prediction with
    ``config.sample_spacing`` (the release's "leading", or "trailing": the first step at t = 999)."""
    return DDIMScheduler.from_config(video_scheduler().config, timestep_spacing=config.sample_spacing)


def start_from_frame(scheduler: DDIMScheduler, frame_latents: torch.Tensor, noise: torch.Tensor,
                     strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SDEdit's start (Meng et al. 2022) for a video chunk: ``frame_latents`` (1, C, h, w) repeated over
    the frames of ``noise`` (1, C, F, h, w), noised to the first kept timestep, and the kept timesteps.

    ``scheduler`` has its timesteps set; of its N steps the last int(N x strength) are kept, as the
    ``strength`` of diffusers' image-to-image pipelines (``StableDiffusionImg2ImgPipeline.get_timesteps``)
    keeps them. Raises ``ValueError`` when that leaves no step (e.g. 10 steps at strength 0.05).
    """
    steps = len(scheduler.timesteps)
    timesteps = scheduler.timesteps[steps - kept_steps(steps, strength):]
    start = frame_latents[:, :, None].expand_as(noise).to(noise.dtype)
    return scheduler.add_noise(start, noise, timesteps[:1]), timesteps


def correlated_frame_noise(independent: torch.Tensor, shared: torch.Tensor, correlation: float) -> torch.Tensor:
    """A chunk's starting noise with frames correlated: sqrt(c) x ``shared`` (1, C, 1, h, w), one map
    for every frame, + sqrt(1 - c) x ``independent`` (1, C, F, h, w), each frame's own; for standard
    normal inputs every value stays standard normal and two frames' noises have correlation c
    (the mixed noise model of Ge et al. 2023, "Preserve Your Own Correlation", with c = a^2 / (1 + a^2)).
    c = 0: ``independent`` unchanged; 1: one noise map for every frame. Raises ``ValueError`` for
    c outside [0, 1]."""
    if not 0 <= correlation <= 1:
        raise ValueError(f"noise correlation must be in [0, 1], got {correlation}")
    if correlation == 0:
        return independent
    return correlation ** 0.5 * shared + (1 - correlation) ** 0.5 * independent


def motion_training_scheduler(config: MotionConfig) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                         prediction_type="epsilon", clip_sample=False)


def motion_sampling_scheduler(config: MotionConfig) -> DDIMScheduler:
    """The motion branch's DDIM sampler: ``config.sample_spacing`` and ``config.sample_clip``.

    With "trailing" spacing the first step starts at t = T - 1, where squaredcos_cap_v2's alpha-bar
    is about 1e-7: DDIM's clean-motion estimate (x_t - sqrt(1 - abar) eps) / sqrt(abar) multiplies
    the first noise prediction's error by sqrt(abar_prev / abar_t), thousands of times
    (``first_step_gain``). "leading" starts lower (at T - T/steps, where abar is larger; the sample
    then starts from a noise level the model never saw as pure noise), and ``sample_clip`` bounds
    the clean estimate to +-clip in normalised motion units (what DDIM's clip_sample does).
    """
    clip = config.sample_clip > 0
    return DDIMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                         prediction_type="epsilon", clip_sample=clip,
                         clip_sample_range=config.sample_clip if clip else 1.0, set_alpha_to_one=True,
                         timestep_spacing=config.sample_spacing)


def first_step_gain(scheduler: DDIMScheduler, steps: int) -> float:
    """How many times DDIM's first step multiplies an error of the predicted noise, in the sample it
    hands to the second step (epsilon prediction, eta 0): sqrt(abar_prev) sqrt(1 - abar_t) / sqrt(abar_t)
    - sqrt(1 - abar_prev), for the first two timesteps of ``scheduler.set_timesteps(steps)``."""
    scheduler.set_timesteps(steps)
    first, second = (int(t) for t in scheduler.timesteps[:2])
    abar = scheduler.alphas_cumprod.double()
    a_t, a_prev = abar[first], abar[second]
    return float(abs(a_prev.sqrt() * (1 - a_t).sqrt() / a_t.sqrt() - (1 - a_prev).sqrt()))


def _pretrained_folder(config: VideoConfig, sub: str) -> Path:
    path = Path(config.pretrained) / sub
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: missing (video.pretrained must be a local I2VGen-XL folder with "
                                f"{sub}/config.json)")
    return path


def check_video_config(config: VideoConfig) -> None:
    """The video branch's keyword arguments (``video.unet``, ``video.image_encoder``) as the classes take
    them, checked before any work by building both on the meta device (no memory): ``ValueError`` naming
    the section and each unknown key with the known ones, or the section and the classes' own complaint (a
    value of the wrong type, heads that do not divide the width...). A pretrained folder is read as it is."""
    if config.pretrained:
        return
    if not config.unet:
        raise ValueError("video.unet: give I2VGenXLUNet keyword arguments, or video.pretrained")
    sections = (("video.unet", config.unet, set(inspect.signature(I2VGenXLUNet.__init__).parameters) - {"self"},
                 lambda: I2VGenXLUNet(**config.unet)),
                ("video.image_encoder", config.image_encoder, set(CLIPVisionConfig().to_dict()),
                 lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**config.image_encoder))))
    for section, given, known, build in sections:
        unknown = sorted(set(given) - known)
        if unknown:     # (the keys every transformers config has are taken, and not listed)
            shown = sorted(known - set(PretrainedConfig().to_dict()))
            raise ValueError(f"{section}: unknown key(s) {', '.join(unknown)}; the keys: {', '.join(shown)}")
        try:
            with torch.device("meta"):
                build()
        except Exception as error:      # the library's own check, whatever its type: named by the section
            raise ValueError(f"{section}: {' '.join(str(error).split())}") from None


def build_unet(config: VideoConfig) -> I2VGenXLUNet:
    if config.pretrained:
        return load_pretrained(I2VGenXLUNet, _pretrained_folder(config, "unet"), local_files_only=True)
    if not config.unet:
        raise ValueError("video.unet: give I2VGenXLUNet keyword arguments, or video.pretrained")
    return I2VGenXLUNet(**config.unet)


def build_vae(config: VideoConfig) -> AutoencoderKL:
    if config.pretrained:
        path = _pretrained_folder(config, "vae")
    elif config.vae:
        path = Path(config.vae)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no VAE here (video.vae); train one with `imac train vae`")
    else:
        raise ValueError("video.vae: give an AutoencoderKL folder (tiny: `imac train vae`), or video.pretrained")
    vae = load_pretrained(AutoencoderKL, path, local_files_only=True)
    return vae.requires_grad_(False).eval()


def build_image_encoder(config: VideoConfig, seed: int = 0) -> CLIPVisionModelWithProjection:
    if config.pretrained:
        encoder = load_pretrained(CLIPVisionModelWithProjection, _pretrained_folder(config, "image_encoder"),
                                  local_files_only=True)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.image_encoder))
    return encoder.requires_grad_(False).eval()


def encode_prompt(config: VideoConfig, cross_attention_dim: int) -> torch.Tensor:
    """(1, L, D) text context: the prompt through I2VGen-XL's CLIP text encoder, or (1, 0, D) (tiny)."""
    if not config.pretrained:
        return torch.zeros(1, 0, cross_attention_dim)

    root = Path(config.pretrained)
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    text_encoder = load_pretrained(CLIPTextModel, _pretrained_folder(config, "text_encoder"), local_files_only=True)
    tokens = tokenizer([config.prompt], padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    with torch.no_grad():
        return text_encoder(tokens.input_ids).last_hidden_state.float()


def clip_statistics(config: VideoConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """CLIP normalisation of the image encoder (feature_extractor/preprocessor_config.json if present)."""
    if config.pretrained:
        path = Path(config.pretrained) / "feature_extractor" / "preprocessor_config.json"
        if path.is_file():
            values = read_json(path)   # bounded: a pretrained folder may come from elsewhere
            if not isinstance(values, dict):
                raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")
            return tuple(values.get("image_mean", CLIP_MEAN)), tuple(values.get("image_std", CLIP_STD))
    return CLIP_MEAN, CLIP_STD


def clip_image_embedding(image_encoder: CLIPVisionModelWithProjection, images: torch.Tensor,
                         mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 1, projection_dim) CLIP image embedding."""
    size = image_encoder.config.image_size
    pixels = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    pixels = (pixels + 1) / 2
    mean_t = torch.tensor(mean, device=images.device)[None, :, None, None]
    std_t = torch.tensor(std, device=images.device)[None, :, None, None]
    pixels = ((pixels - mean_t) / std_t).to(image_encoder.dtype)
    return image_encoder(pixel_values=pixels).image_embeds[:, None, :]


def encode_latents(vae: AutoencoderKL, images: torch.Tensor, sample: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, C, h, w) scaled latents."""
    distribution = vae.encode(images.to(vae.dtype)).latent_dist
    latents = distribution.sample(generator) if sample else distribution.mode()
    return latents * vae.config.scaling_factor


def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """(N, C, h, w) scaled latents -> (N, 3, H, W) in [-1, 1], decoded ``chunk`` frames at a time."""
    frames = [vae.decode(part.to(vae.dtype) / vae.config.scaling_factor).sample
              for part in latents.split(chunk)]
    return torch.cat(frames).float().clamp(-1, 1)


def image_condition(reference_latents: torch.Tensor, num_frames: int) -> torch.Tensor:
    """I2VGen-XL's image latents: frame 0 the reference latent, frame k>0 the constant k/(F-1).

    (B, C, h, w) -> (B, C, F, h, w).
    """
    first = reference_latents[:, :, None]
    masks = [torch.ones_like(first) * ((k + 1) / (num_frames - 1)) for k in range(num_frames - 1)]
    return torch.cat([first, *masks], dim=2)


def enable_block_checkpointing(unet: I2VGenXLUNet) -> None:
    """Gradient checkpointing for the UNet by wrapping each down/mid/up block's forward.

    ``I2VGenXLUNet.enable_gradient_checkpointing`` raises (unsupported), so every block's forward
    runs under ``torch.utils.checkpoint`` (non-reentrant) while the module is training.
    """
    blocks = [*unet.down_blocks, *([unet.mid_block] if unet.mid_block is not None else []), *unet.up_blocks]
    for block in blocks:
        if getattr(block, "_imac_checkpointed", False):
            continue
        original = block.forward

        def forward(*args, _original=original, _block=block, **kwargs):
            if _block.training and torch.is_grad_enabled():
                return checkpoint(_original, *args, use_reentrant=False, **kwargs)
            return _original(*args, **kwargs)

        block.forward = forward
        block._imac_checkpointed = True
