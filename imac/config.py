"""The configuration of the IMAC model, its training and its sampling: one YAML file, typed.

A config file has the sections of ``IMACConfig`` (``data``, ``audio``, ``motion``, ``video``,
``stage1``, ``stage2``, ``train``); every key is checked against the dataclasses below, so a typo
is an error that names it rather than a silently ignored setting. Two configs ship with the
package (``imac/configs``): ``tiny`` (CPU, random tiny networks, the toy corpus) and ``i2vgenxl``
(the paper's settings on a GPU, pretrained I2VGen-XL and HuBERT from local folders). Either is
named by its stem (``--config tiny``) or given as a path; ``key.sub=value`` overrides follow.

Nothing in the model code hard-codes a device, a dtype or a size: they all come from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from metrics.io.audio import SAMPLE_RATE
from metrics.io.files import write_text_atomic
from metrics.options import (OptionsError, apply_overrides, build_options, options_to_dict, ranged, read_yaml,
                             resolve_named_file)

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    root: str = "data/toy"            # dataset folder (manifest.jsonl)
    identities: list[str] | None = None  # train on these speakers only (None: all)
    resolution: int = ranged(64, ge=8)  # square video side in pixels fed to the VAE
    feature_cache: str | None = None  # folder for cached audio features (None: <output>/features)


@dataclass
class AudioConfig:
    sample_rate: int = ranged(SAMPLE_RATE, ge=8000)   # Hz (HuBERT: 16 kHz)
    n_mfcc: int = ranged(13, ge=1)
    hubert: str = "tiny"              # a local HuBERT folder, or "tiny" (random tiny HuBERT)
    hubert_seed: int = 0
    mfcc_width: int = ranged(32, ge=1)  # width of the MFCC self-attention layer
    mfcc_heads: int = ranged(2, ge=1)
    width: int = ranged(64, ge=1)     # fused audio feature width per frame


MAX_SMOOTH_SIGMA = 250.0   # frames (10 s at 25 fps): bounds the smoothing kernel (8 sigma + 1 values)
# Classifier-free guidance: published video models use 1 to about 15 (I2VGen-XL's default 9); far
# beyond, the guided noise estimate leaves the range the sampler is built for and frames end in NaN.
MAX_GUIDANCE = 50.0


@dataclass
class MotionConfig:
    enabled: bool = True              # False: the "w/o motion" ablation (audio only through the encoders)
    expression_dim: int = ranged(100, ge=1)
    width: int = ranged(64, ge=1)     # transformer width of each encoder (pose, expression)
    layers: int = ranged(2, ge=1)
    heads: int = ranged(4, ge=1)
    dropout: float = ranged(0.1, ge=0, lt=1)
    # The noise prediction also gets the noisy motion through a per-dimension gate of the timestep
    # (``imac.models.motion.MotionStream``): without it a stream narrower than its motion (tiny:
    # width 64 < 129 pose numbers) cannot predict the noise, and sampled motion explodes (README,
    # "The motion sampler"). False: the plain encoder (model folders written before it load as that).
    noise_skip: bool = True
    train_timesteps: int = ranged(1000, ge=1)
    beta_schedule: str = "squaredcos_cap_v2"
    sample_steps: int = ranged(25, ge=1)
    # Sampling only (a trained model samples with any of these; ``imac.models.video`` says why):
    sample_spacing: Literal["leading", "trailing", "linspace"] = "leading"   # DDIM timestep spacing
    sample_clip: float = ranged(0.0, ge=0)  # > 0: clip DDIM's clean-motion estimate to +-this (normalised units)
    window_overlap: int = ranged(0, ge=0)   # > 0: each 80-frame window continues the previous one's last frames
    # > 0: the sampled motion (normalised) smoothed over time with a Gaussian of this sigma, in frames, before
    # the video sees it (``imac.models.motion.smooth_over_time``); 0: as sampled (the paper)
    smooth_sigma: float = ranged(0.0, ge=0, le=MAX_SMOOTH_SIGMA)


@dataclass
class VideoConfig:
    pretrained: str | None = None     # an I2VGen-XL folder (unet/, vae/, image_encoder/, text_encoder/, tokenizer/)
    unet: dict[str, Any] = field(default_factory=dict)           # I2VGenXLUNet kwargs when not pretrained
    vae: str | None = None            # an AutoencoderKL folder when not pretrained (tiny: trained on the corpus)
    image_encoder: dict[str, Any] = field(default_factory=dict)  # CLIPVisionConfig kwargs when not pretrained
    prompt: str = ""                  # text prompt encoded once with I2VGen-XL's text encoder (pretrained only)
    reference_encoder: bool = True    # False: the "w/o reference encoder" ablation
    reference_widths: list[int] = field(default_factory=lambda: [32, 64])  # per UNet resolution level
    motion_window: int = ranged(1, ge=0)    # frame f attends to motion frames f-w .. f+w
    motion_context_width: int = ranged(64, ge=1)
    # > 0: channels of a spatial motion map: each frame's normalised pose -> a map over the latent
    # grid added at every coupled layer (``imac.models.coupling.MotionMap``; not the paper's). 0: off.
    motion_map: int = ranged(0, ge=0)
    guidance_scale: float = ranged(3.5, ge=0, le=MAX_GUIDANCE)
    condition_dropout: float = ranged(0.1, ge=0, le=1)  # training probability of the unconditional branch
    sample_steps: int = ranged(25, ge=1, le=1000)   # at most the video schedule's 1000 training timesteps
    sample_precision: Literal["no", "fp16", "bf16"] = "no"   # autocast of video sampling (CUDA only)
    # DDIM timestep spacing of video sampling. "leading" (the I2VGen-XL release's scheduler) starts
    # at t = 1000 - 1000/steps + 1, a noise level that still holds some signal, from pure noise;
    # "trailing" starts at t = 999, the pure noise that zero-SNR training covers (Lin et al. 2024,
    # "Common Diffusion Noise Schedules and Sample Steps Are Flawed", sec. 3.3). Training is unchanged.
    sample_spacing: Literal["leading", "trailing", "linspace"] = "leading"
    # < 1: each chunk starts from a frame's latent repeated over the chunk's frames and noised to the
    # schedule's point ``sample_strength`` of the way from clean to pure noise, and runs only that part
    # of the ``sample_steps`` (SDEdit, Meng et al. 2022; the ``strength`` of diffusers' image-to-image
    # pipelines: int(sample_steps x strength) steps). The frame: ``strength_from``, "reference" (the
    # reference encoder's image: the original reference when anchored) or "first_frame" (the chunk's
    # image condition). 1: from pure noise (the paper, the release).
    sample_strength: float = ranged(1.0, gt=0, le=1)
    strength_from: Literal["reference", "first_frame"] = "reference"
    # The correlation c of a chunk's starting noise between its frames: each frame's noise is
    # sqrt(c) x one map shared by the chunk + sqrt(1 - c) x its own (``correlated_frame_noise``; the
    # mixed noise of Ge et al. 2023). 0: independent (the paper, the release); 1: one map for all.
    noise_correlation: float = ranged(0.0, ge=0, le=1)
    # Chunked sampling: each chunk after the first starts on the previous chunk's last frame.
    # "last_frame" (the paper): that frame is the chunk's whole reference (image condition, reference
    # encoder, CLIP); "anchored": it is the image condition only, while the reference encoder and
    # CLIP keep the original reference image, so appearance cannot drift with the chunks.
    # Default "anchored", chosen by measurement (README, "Sampling switches": the drift from the
    # reference levels off instead of growing chunk after chunk); "last_frame" is the paper's.
    chunk_reference: Literal["last_frame", "anchored"] = "anchored"
    # How the last frame is handed to the next chunk: "decoded" (decoded to pixels and encoded again,
    # the paper) or "latent" (its sampled latent, with no VAE round trip).
    handover: Literal["decoded", "latent"] = "decoded"
    frames: int = ranged(16, ge=2)    # video chunk length (stage 2 window and sampling chunk)


@dataclass
class StageConfig:
    steps: int = ranged(1000, ge=1)
    batch_size: int = ranged(8, ge=1)
    lr: float = ranged(1e-4, gt=0)
    motion_frames: int = ranged(80, ge=1)  # "slow" window: the motion branch sees this many frames
    init_from: str | None = None      # stage 2: the stage-1 model folder (None: the "w/o first stage" ablation)
    motion_loss_weight: float = ranged(1.0, ge=0)
    # > 0: the model folder holds an exponential moving average of the trained weights (diffusers'
    # EMAModel: decay min(ema_decay, (1 + n) / (10 + n)) after n updates); 0: the last weights.
    ema_decay: float = ranged(0.0, ge=0, lt=1)


@dataclass
class TrainConfig:
    output: str = "runs/imac-tiny"
    device: str = "auto"              # auto | cpu | cuda | cuda:N (accelerate picks the rank's GPU)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"   # CUDA only; ignored on CPU
    gradient_checkpointing: bool = False
    gradient_accumulation: int = ranged(1, ge=1)
    weight_decay: float = ranged(0.0, ge=0)
    grad_clip: float = ranged(1.0, ge=0)   # 0: off
    save_every: int = ranged(500, ge=1)
    log_every: int = ranged(10, ge=1)
    num_workers: int = ranged(0, ge=0)
    seed: int = ranged(0, ge=0, le=2 ** 32 - 1)   # numpy's seeds (accelerate's set_seed) are 32-bit


@dataclass
class IMACConfig:
    name: str = "tiny"
    fps: float = ranged(25.0, ge=1)
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-5, batch_size=1))
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return options_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "imac config") -> IMACConfig:
        """The config of a mapping; ``OptionsError`` naming ``where`` and the key (unknown, wrong type,
        out of range, or at odds with another key: ``check_consistency``)."""
        return check_consistency(build_options(cls, values, where), where)


def kept_steps(steps: int, strength: float) -> int:
    """How many of ``steps`` DDIM steps a sample at ``strength`` (0, 1] runs: int(steps x strength), as
    diffusers' image-to-image pipelines count them. Raises ``ValueError`` naming ``video.sample_strength``
    when none is left (e.g. 10 steps at 0.05)."""
    kept = min(int(steps * strength), steps)
    if kept < 1:
        raise ValueError(f"video.sample_strength {strength} keeps no step of {steps} (int(steps x strength) "
                         f"= 0): raise it to at least {least_strength(steps):g} or sample with more steps")
    return kept


def least_strength(steps: int) -> float:
    """The smallest strength of 3 decimals that keeps a step of ``steps`` (1/steps rounded up)."""
    least = math.ceil(1000 / steps) / 1000
    return least if int(steps * least) >= 1 else least + 0.001


def check_consistency(config: IMACConfig, where: str) -> IMACConfig:
    """``config`` if its windows and widths fit together (one key against another), else ``OptionsError`` naming ``where`` and the
    keys: stage 2's video window lies inside its motion window (``stage2.motion_frames >= video.frames``),
    the motion and MFCC attention widths split into their heads, a video sample at ``video.sample_strength``
    keeps at least one of ``video.sample_steps`` (``kept_steps``), and a motion window's overlap with the
    previous one is shorter than the window."""
    if config.stage2.motion_frames < config.video.frames:
        raise OptionsError(f"{where}: stage2.motion_frames ({config.stage2.motion_frames}) must be >= video.frames "
                           f"({config.video.frames}): the video window lies inside the motion window")
    for section, width, heads in (("motion", "width", "heads"), ("audio", "mfcc_width", "mfcc_heads")):
        values = getattr(config, section)
        if getattr(values, width) % getattr(values, heads):
            raise OptionsError(f"{where}: {section}.{width} ({getattr(values, width)}) must be a multiple of "
                               f"{section}.{heads} ({getattr(values, heads)}): attention splits the width into heads")
    try:
        kept_steps(config.video.sample_steps, config.video.sample_strength)
    except ValueError as error:
        raise OptionsError(f"{where}: {error} (video.sample_steps)") from None
    if config.motion.window_overlap >= config.stage1.motion_frames:
        raise OptionsError(f"{where}: motion.window_overlap ({config.motion.window_overlap}) must be shorter than "
                           f"the motion window stage1.motion_frames ({config.stage1.motion_frames})")
    return config


ConfigError = OptionsError   # the name this module's users know


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A packaged config by stem (``tiny``) or a YAML path; a clear error lists the packaged ones."""
    return resolve_named_file(name_or_path, CONFIG_DIR, "config")


def load_config(name_or_path: str | os.PathLike, overrides: list[str] = ()) -> IMACConfig:
    """Read a config (packaged name or path) and apply ``key.sub=value`` overrides (YAML values).

    Raises ``OptionsError`` (``ConfigError``) naming the override, or else the file, and the key.
    """
    path = resolve_config_path(name_or_path)
    _check_overrides(overrides)
    values = with_output(expand_home(apply_overrides(read_yaml(path), overrides)))
    config = build_options(IMACConfig, values, str(path))
    return check_consistency(config, f"{path} with {' '.join(overrides)}" if overrides else str(path))


# The keys that name a folder. "~/x" in them is the home folder's x, as a shell would read it; an
# override `train.output=~/x` reaches the program unexpanded (bash expands ~ only at a word's start or
# after the = of an assignment), and was taken for a folder named "~" in the working directory.
PATH_KEYS = (("data", "root"), ("data", "feature_cache"), ("audio", "hubert"), ("video", "pretrained"),
             ("video", "vae"), ("stage1", "init_from"), ("stage2", "init_from"), ("train", "output"))


def expand_home(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with a leading ``~`` or ``~user`` in the ``PATH_KEYS`` expanded (``os.path.expanduser``)."""
    for section, key in PATH_KEYS:
        part = values.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str) and part[key].startswith("~"):
            values = {**values, section: {**part, key: os.path.expanduser(part[key])}}
    return values


OUTPUT_PLACEHOLDER = "{train.output}"


def with_output(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``{train.output}`` in any text value replaced by the config's ``train.output`` (after
    the overrides), so that the packaged configs' ``stage2.init_from: "{train.output}/stage1/model"`` and
    ``video.vae`` follow ``train.output=DIR``: written as a fixed path, stage 2 of a run moved elsewhere
    started from another run's stage 1 without a word."""
    output = (values.get("train") or {}).get("output") if isinstance(values.get("train"), dict) else None

    def filled(value):
        if isinstance(value, dict):
            return {key: filled(item) for key, item in value.items()}
        if isinstance(value, str) and OUTPUT_PLACEHOLDER in value and isinstance(output, str):
            return value.replace(OUTPUT_PLACEHOLDER, output)
        return value

    return filled(values)


def _check_overrides(overrides: Iterable[str], where: str = "override") -> None:
    """Check each ``key.sub=value`` override alone against the config's keys and types, so that a
    wrong one is named (``override 'stage1.steps=abc': stage1.steps: ...``), not the file it changes."""
    for override in overrides:
        build_options(IMACConfig, apply_overrides({}, [override], where), f"{where} {override!r}")


def save_config(config: IMACConfig, path: str | os.PathLike) -> Path:
    return write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


# Settings that only change how a trained model samples: they may differ from the ones it was
# trained with (``with_sampling_overrides``); every other key is fixed by the weights.
SAMPLING_KEYS = ("video.chunk_reference", "video.handover", "video.guidance_scale", "video.sample_steps",
                 "video.sample_precision", "video.sample_spacing", "video.sample_strength", "video.strength_from",
                 "video.noise_correlation",
                 "motion.window_overlap", "motion.sample_spacing", "motion.sample_clip", "motion.sample_steps",
                 "motion.smooth_sigma")
# Sampling keys added after model and run folders were written without them, with the value every sample
# of such a folder was made with (the behaviour before the key existed): a folder that lacks one is read
# as having that value, so its finished videos stay comparable with this version's.
SAMPLING_KEYS_ADDED = {"video.noise_correlation": 0.0, "motion.smooth_sigma": 0.0}


ABSENT = "(absent)"


def flat_config(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config's dict (``IMACConfig.to_dict`` or its YAML) as {"section.key": value}; the UNet's
    keyword arguments (``video.unet``) stay one value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(flat_config(value, f"{prefix}{key}.") if isinstance(value, dict) and key != "unet" else
                   {prefix + key: value})
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """"key: old -> new" for the keys of two ``flat_config`` dicts whose values differ, a key one of
    them lacks shown as (absent); ``ignore``: keys, or sections as a prefix ending in "."."""
    ignored = tuple(ignore)
    keys = [key for key in sorted(old.keys() | new.keys()) if old.get(key, ABSENT) != new.get(key, ABSENT)
            and not any(key == skip or (skip.endswith(".") and key.startswith(skip)) for skip in ignored)]
    return [f"{key}: {_shown(old, key)} -> {_shown(new, key)}" for key in keys]


def _shown(values: dict[str, Any], key: str) -> str:
    return repr(values[key]) if key in values else ABSENT


def listed(changes: list[str], most: int = 4) -> str:
    """At most ``most`` of ``changes``, and a count of the rest."""
    return ", ".join(changes[:most]) + (f" and {len(changes) - most} more" if len(changes) > most else "")


def with_sampling_of(config: IMACConfig, source: IMACConfig) -> IMACConfig:
    """``config`` (a trained model's) with every ``SAMPLING_KEYS`` value taken from ``source`` (e.g. the
    configuration it was trained from, as this version reads it): the weights are ``config``'s, the
    sampling ``source``'s."""
    values, taken = config.to_dict(), source.to_dict()
    for key in SAMPLING_KEYS:
        section, name = key.split(".")
        values[section][name] = taken[section][name]
    return IMACConfig.from_dict(values)


def with_sampling_overrides(config: IMACConfig, overrides: Iterable[str], where: str = "override") -> IMACConfig:
    """``config`` (a trained model's) with the ``key.sub=value`` overrides among ``SAMPLING_KEYS``
    applied; the others are ignored (they describe training, which the weights already fixed)."""
    chosen = [o for o in overrides if o.partition("=")[0].strip() in SAMPLING_KEYS]
    _check_overrides(chosen, where)
    return IMACConfig.from_dict(apply_overrides(config.to_dict(), chosen, where), where)
