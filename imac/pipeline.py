"""``IMACPipeline``: a trained IMAC model folder, and sampling from a reference image and speech.

The model folder (written by training, read by ``IMACPipeline.from_pretrained``)::

    imac.json              config, stage, pose width, HuBERT id, package version
    motion/                MotionModel (audio encoder, pose + expression encoders, normalisation)
    hubert/                the frozen HuBERT (transformers folder)
    unet/ vae/ image_encoder/ coupling/ text_context.safetensors     (stage 2 only)

Sampling (``__call__``): the audio's frame count is its duration times fps (floor); the audio is
split into ``stage1.motion_frames`` windows (80 in the paper) and motion is sampled per window; the
motion branch's features for every frame are read at t = 0 from that motion; the video is then
generated in chunks of ``video.frames`` (16), the last frame of each chunk being the reference of
the next (so consecutive chunks share that frame and each later chunk adds ``frames - 1`` new
ones; the last chunk starts earlier if needed so that it ends exactly on the audio's last frame,
and audio shorter than one chunk gets its motion features edge-padded and the chunk cut).
``stream`` is the same with each chunk made as its frames are read, so that a writer takes them as they
come and what sampling holds does not grow with the video's length (``imac sample``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, I2VGenXLUNet
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import CLIPVisionModelWithProjection
from transformers.utils import logging as transformers_logging

from imac import __version__
from imac.audio_features import AudioFeatures, load_hubert
from imac.config import IMACConfig, kept_steps
from imac.frames import check_finite, tensor_to_frames
from imac.models.coupling import Coupling
from imac.models.loading import load_pretrained
from imac.models.motion import MotionModel, smooth_over_time
from imac.models.system import IMACModel
from imac.models.video import (build_image_encoder, build_unet, build_vae, clip_statistics, encode_latents,
                               encode_prompt, motion_sampling_scheduler, motion_training_scheduler,
                               video_sampling_scheduler, video_scheduler, VIDEO_TRAIN_TIMESTEPS)
from metrics.io.audio import resample
from metrics.io.bounded import check_safetensors, read_json
from metrics.io.files import atomic_folder

MODEL_CARD = "imac.json"
MODEL_PARTS = ("motion", "hubert")                                  # every model folder
VIDEO_PARTS = ("unet", "vae", "image_encoder", "coupling", "text_context.safetensors")   # stage 2's too
STAGES = ("stage1", "stage2")
MODEL_FORMAT = "imac-model-1"       # imac.json's "format": what this version writes and reads


def read_model_card(folder: str | os.PathLike) -> tuple[IMACConfig, dict]:
    """(config, card) of a model folder written by ``IMACPipeline.save_pretrained``, read without loading
    any weights: what a caller checks its options against before the seconds to minutes of loading.

    Raises ``FileNotFoundError`` naming the folder for a folder without ``imac.json`` (pointing at
    ``<folder>/model`` when that is one) or without a part its stage has (``motion/``, ``hubert/``; in
    stage 2 also ``unet/``, ``vae/``, ``image_encoder/``, ``coupling/``, ``text_context.safetensors``: an
    incomplete copy), ``ValueError`` naming ``imac.json`` for a card that is not one, or of another
    ``format`` than ``MODEL_FORMAT`` (a folder of another version)."""
    folder = Path(folder)
    card_path = folder / MODEL_CARD
    if folder.is_file():
        raise NotADirectoryError(f"{folder}: a file; give the model folder (the one holding {MODEL_CARD})")
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such model folder")
    if not card_path.is_file():
        inside = folder / "model"     # a training stage's folder (runs/x/stage2) holds its model in model/
        hint = f"; the model trained there is {inside}" if (inside / MODEL_CARD).is_file() else ""
        raise FileNotFoundError(f"{folder}: not an IMAC model folder (no {MODEL_CARD}){hint}")
    card = read_json(card_path)   # a model folder may come from elsewhere: bounded, named if refused
    if not isinstance(card, dict) or not isinstance(card.get("config"), dict) or card.get("stage") not in STAGES:
        raise ValueError(f"{card_path}: not an IMAC model card (a JSON object with 'config' and 'stage' "
                         f"{' or '.join(STAGES)}, as save_pretrained writes)")
    if card.get("format") != MODEL_FORMAT:
        found = card.get("format")
        raise ValueError(f"{card_path}: " + (f"format {found!r}: written by another version of imac "
                                             f"({card.get('imac_version', 'not recorded')}); this one reads "
                                             f"{MODEL_FORMAT!r}" if found is not None else
                                             f"no 'format' field: not a model card save_pretrained wrote "
                                             f"(it writes format {MODEL_FORMAT!r})"))
    parts = MODEL_PARTS + (VIDEO_PARTS if card["stage"] == "stage2" else ())
    damage = {part: part_damage(folder / part) for part in parts}
    missing = [part + lack for part, lack in damage.items() if lack is not None]
    if missing:
        stage = card["stage"].replace("stage", "stage-")
        raise FileNotFoundError(f"{folder}: a {stage} model folder ({MODEL_CARD}) without {', '.join(missing)}: "
                                "an incomplete copy; copy the whole folder")
    return IMACConfig.from_dict(card["config"], where=f"{card_path} 'config'"), card


def part_damage(path: Path) -> str | None:
    """None when a model folder's part at ``path`` is there: a file for ``*.safetensors``, else a folder
    with its ``config.json`` and a weights file; otherwise what is missing, as a suffix of its name."""
    if path.suffix == ".safetensors":
        return None if path.is_file() else ""
    if not path.is_dir():
        return ""
    if not (path / "config.json").is_file():
        return "/config.json"
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return "/ weights (*.safetensors)"
    return None


def check_video_steps(config: IMACConfig, steps: int) -> int:
    """How many of ``steps`` video DDIM steps a chunk runs at ``config.video.sample_strength``
    (``kept_steps``). ``ValueError`` when they cannot run: more than the timesteps the video branch is
    trained on (the message names the steps), or none kept (it names ``video.sample_strength``)."""
    if steps > VIDEO_TRAIN_TIMESTEPS:
        raise ValueError(f"{steps} video steps: at most the {VIDEO_TRAIN_TIMESTEPS} timesteps the video branch "
                         "was trained on")
    return kept_steps(steps, config.video.sample_strength)


@contextmanager
def quiet_transformers():
    """transformers' per-file "Writing model shards" / "Loading weights" bars off, then restored."""
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def hubert_identity(config: IMACConfig) -> str:
    """A stable id of the configured HuBERT (cache key of the audio features)."""
    if config.audio.hubert == "tiny":
        return f"tiny-seed{config.audio.hubert_seed}"
    path = Path(config.audio.hubert)
    digest = hashlib.sha256()
    for item in sorted(path.glob("*")):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(str(item.stat().st_size).encode())
            if item.suffix == ".json":
                digest.update(item.read_bytes())
    return f"{path.name}-{digest.hexdigest()[:10]}"


def build_hubert(config: IMACConfig, device: torch.device | str = "cpu"):
    if config.audio.hubert == "tiny":
        return load_hubert(tiny=True, seed=config.audio.hubert_seed, device=device)
    with quiet_transformers():
        return load_hubert(config.audio.hubert, device=device)


def build_motion(config: IMACConfig, pose_dim: int, hubert_dim: int) -> MotionModel:
    a, m = config.audio, config.motion
    return MotionModel(pose_dim=pose_dim, expression_dim=m.expression_dim, n_mfcc=a.n_mfcc, hubert_dim=hubert_dim,
                       mfcc_width=a.mfcc_width, mfcc_heads=a.mfcc_heads, audio_width=a.width, width=m.width,
                       layers=m.layers, heads=m.heads, dropout=m.dropout, use_motion=m.enabled,
                       noise_skip=m.noise_skip)


def build_video_parts(config: IMACConfig, motion: MotionModel) -> dict:
    """Fresh video-branch parts: UNet (pretrained or random), VAE, image encoder, coupling, text context."""
    v = config.video
    torch.manual_seed(config.train.seed)
    unet = build_unet(v)
    vae = build_vae(v)
    # The w/o-motion ablation gets no map (from zeros it would only learn a constant spatial bias).
    motion_map = v.motion_map if motion.config.use_motion else 0
    pose_width = motion.config.pose_dim if motion_map else 0
    coupling = Coupling.for_unet(unet, motion.feature_width + pose_width, v.motion_context_width, v.motion_window,
                                 v.reference_widths if v.reference_encoder else None, pose_width, motion_map,
                                 config.data.resolution // 2 ** (len(vae.config.block_out_channels) - 1))
    return {"unet": unet, "vae": vae, "image_encoder": build_image_encoder(v, config.train.seed),
            "coupling": coupling, "text_context": encode_prompt(v, unet.config.cross_attention_dim)}


def assemble(config: IMACConfig, motion: MotionModel, video_parts: dict | None) -> IMACModel:
    parts = video_parts or {}
    mean, std = clip_statistics(config.video) if video_parts else (None, None)
    return IMACModel(motion, parts.get("unet"), parts.get("vae"), parts.get("image_encoder"), parts.get("coupling"),
                     parts.get("text_context"), motion_training_scheduler(config.motion),
                     video_scheduler() if video_parts else None, fps=config.fps,
                     condition_dropout=config.video.condition_dropout,
                     motion_loss_weight=config.stage2.motion_loss_weight, clip_mean=mean, clip_std=std)


@dataclass
class Sample:
    frames: np.ndarray        # (N, S, S, 3) uint8
    pose: np.ndarray | None   # (N, P) axis-angle (None for the w/o-motion ablation)
    expression: np.ndarray | None  # (N, E)
    audio: np.ndarray         # the 16 kHz mono audio that drove it
    fps: float


@dataclass
class SampleStream:
    """A ``Sample`` whose frames are made as they are read: ``chunks`` gives consecutive (n_i, S, S, 3)
    uint8 arrays, ``num_frames`` in all, once; ``frames`` the same one frame (S, S, 3) at a time."""
    chunks: Iterator[np.ndarray]
    num_frames: int
    pose: np.ndarray | None
    expression: np.ndarray | None
    audio: np.ndarray
    fps: float

    @property
    def frames(self) -> Iterator[np.ndarray]:
        return itertools.chain.from_iterable(self.chunks)


def _checked(path: Path) -> Path:
    """``path``, once ``metrics.io.bounded.check_safetensors`` found it whole (a truncated copy is named)."""
    check_safetensors(path)
    return path


def check_input_ranges(reference: torch.Tensor, audio: np.ndarray) -> None:
    """Refuse a reference image outside [-1, 1] (0-255 pixels, as an image file holds them: ``imac.frames.
    reference_tensor`` makes the model's) and audio that is not floating-point samples (int16 PCM as read raw;
    ``metrics.io.audio.load_audio`` gives float32 in [-1, 1]): the model would sample from them as they are,
    a washed-out video or a shout, without a word. ``ValueError`` naming the range found."""
    if not torch.is_floating_point(reference):
        raise ValueError(f"reference image must be floating-point values in [-1, 1], got {reference.dtype} "
                         "(imac.frames.reference_tensor makes one from an image)")
    low, high = float(reference.min()), float(reference.max())
    if low < -1.01 or high > 1.01:
        raise ValueError(f"reference image must be in [-1, 1], got values in [{low:g}, {high:g}] (0-255 pixels? "
                         "imac.frames.reference_tensor scales an image)")
    if not np.issubdtype(np.asarray(audio).dtype, np.floating):
        raise ValueError(f"audio must be floating-point samples (in [-1, 1]), got {np.asarray(audio).dtype} "
                         "(metrics.io.audio.load_audio reads a file as float32)")


class IMACPipeline:
    def __init__(self, config: IMACConfig, model: IMACModel, hubert, hubert_id: str, stage: str,
                 feature_cache: str | os.PathLike | None = None) -> None:
        self.config = config
        self.model = model
        self.hubert = hubert
        self.hubert_id = hubert_id
        self.stage = stage
        self.features = AudioFeatures(hubert, hubert_id=hubert_id, n_mfcc=config.audio.n_mfcc, fps=config.fps,
                                      sample_rate=config.audio.sample_rate, cache_dir=feature_cache)

    @property
    def device(self) -> torch.device:
        return next(self.model.motion.parameters()).device

    # -- folder ----------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model folder atomically (a complete folder replaces any older one)."""
        with quiet_transformers():
            return self._save(Path(folder))

    def _save(self, folder: Path) -> Path:
        folder = Path(folder)
        with atomic_folder(folder) as temporary:
            self._write(temporary)
        return folder

    def _write(self, temporary: Path) -> None:
        model = self.model
        model.motion.save_pretrained(temporary / "motion")
        self.hubert.save_pretrained(temporary / "hubert")
        (temporary / "hubert" / "preprocessor_config.json").write_text(
            json.dumps({"do_normalize": bool(getattr(self.hubert, "imac_do_normalize", False))}))
        if model.has_video:
            model.unet.save_pretrained(temporary / "unet")
            model.vae.save_pretrained(temporary / "vae")
            model.image_encoder.save_pretrained(temporary / "image_encoder")
            model.coupling.save_pretrained(temporary / "coupling")
            save_file({"text_context": model.text_context.detach().cpu().contiguous()},
                      str(temporary / "text_context.safetensors"))
        card = {"format": MODEL_FORMAT, "imac_version": __version__, "stage": self.stage,
                "hubert_id": self.hubert_id, "config": self.config.to_dict()}
        (temporary / MODEL_CARD).write_text(json.dumps(card, indent=2))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu",
                        feature_cache: str | os.PathLike | None = None) -> IMACPipeline:
        """Load a model folder written by ``save_pretrained`` (training writes ``<output>/<stage>/model``)."""
        with quiet_transformers():
            return cls._load(Path(folder), device, feature_cache)

    @classmethod
    def _load(cls, folder: Path, device, feature_cache) -> IMACPipeline:
        folder = Path(folder)
        config, card = read_model_card(folder)
        motion = load_pretrained(MotionModel, folder / "motion")
        hubert = load_hubert(folder / "hubert", device=device)
        video_parts = None
        if card["stage"] == "stage2":
            video_parts = {
                "unet": load_pretrained(I2VGenXLUNet, folder / "unet"),
                "vae": load_pretrained(AutoencoderKL, folder / "vae").requires_grad_(False).eval(),
                "image_encoder": load_pretrained(CLIPVisionModelWithProjection,
                                                 folder / "image_encoder").requires_grad_(False).eval(),
                "coupling": load_pretrained(Coupling, folder / "coupling"),
                "text_context": load_file(str(_checked(folder / "text_context.safetensors")))["text_context"],
            }
        model = assemble(config, motion, video_parts).to(device).eval()
        return cls(config, model, hubert, card["hubert_id"], card["stage"], feature_cache)

    # -- sampling --------------------------------------------------------------------------------

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array))[None].to(self.device)

    @torch.no_grad()
    def sample_motion(self, mfcc: np.ndarray, hubert: np.ndarray, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Motion and motion features for every frame, window by window ((1, N, ...) tensors, normalised).

        Windows of ``stage1.motion_frames``; with ``motion.window_overlap`` K > 0 each window after the
        first starts K frames before the previous one ends and continues its last K frames
        (``MotionModel.sample(known=...)``), so the motion has no jump at the joins. With
        ``motion.smooth_sigma`` > 0 the whole sampled motion is then smoothed over time
        (``smooth_over_time``), and the features are computed from the smoothed motion."""
        motion = self.model.motion
        scheduler = motion_sampling_scheduler(self.config.motion)
        poses, expressions, windows = [], [], []
        for start, stop, keep in motion_windows(len(mfcc), self.config.stage1.motion_frames,
                                                self.config.motion.window_overlap):
            m, h = self._tensor(mfcc[start:stop]), self._tensor(hubert[start:stop])
            known = None
            if keep > start:
                known = torch.cat([torch.cat(poses, 1), torch.cat(expressions, 1)], -1)[:, start - keep:]
            pose, expression = motion.sample(m, h, scheduler, self.config.motion.sample_steps, generator, known)
            poses.append(pose[:, keep - start:])
            expressions.append(expression[:, keep - start:])
            windows.append((start, stop, keep, pose, expression, m, h))
        sigma = self.config.motion.smooth_sigma
        pose_all, expression_all = (smooth_over_time(torch.cat(parts, 1), sigma) for parts in (poses, expressions))
        features = []
        for start, stop, keep, pose, expression, m, h in windows:
            if sigma > 0:            # the window's frames of the smoothed motion
                pose, expression = pose_all[:, start:stop], expression_all[:, start:stop]
            window_features = self.model.video_features(pose, expression, m, h)  # over the whole window, as trained
            features.append(window_features[:, keep - start:])
        return pose_all, expression_all, torch.cat(features, 1)

    @torch.no_grad()
    def __call__(self, reference: torch.Tensor, audio: np.ndarray, sample_rate: int,
                 generator: torch.Generator | None = None, progress: bool = False,
                 guidance_scale: float | None = None, steps: int | None = None) -> Sample:
        """Generate a video for ``reference`` (3, S, S) in [-1, 1] and mono ``audio`` at ``sample_rate``:
        ``stream``'s frames gathered into one (N, S, S, 3) uint8 array (N * S * S * 3 bytes)."""
        stream = self.stream(reference, audio, sample_rate, generator, progress, guidance_scale, steps)
        frames, done = np.empty((stream.num_frames, *reference.shape[-2:], 3), np.uint8), 0
        for chunk in stream.chunks:
            frames[done:done + len(chunk)] = chunk
            done += len(chunk)
        if done != stream.num_frames:
            raise RuntimeError(f"IMAC's chunks gave {done} frames for {stream.num_frames}")
        return Sample(frames, stream.pose, stream.expression, stream.audio, stream.fps)

    def stream(self, reference: torch.Tensor, audio: np.ndarray, sample_rate: int,
               generator: torch.Generator | None = None, progress: bool = False,
               guidance_scale: float | None = None, steps: int | None = None) -> SampleStream:
        """``__call__`` with the video made chunk by chunk as ``chunks`` is read: the motion is sampled
        here, each video chunk when it is asked for, so that what sampling holds does not grow with the
        video's length (the frames go to a writer as they are made: ``imac sample``). The same
        ``generator`` draws give the same frames as ``__call__``."""
        if not self.model.has_video:
            raise ValueError("this is a stage-1 (motion only) model; sampling videos needs a stage-2 model")
        size = self.config.data.resolution
        if tuple(reference.shape) != (3, size, size):
            raise ValueError(f"reference image must be (3, {size}, {size}) in [-1, 1], got {tuple(reference.shape)}")
        check_input_ranges(reference, audio)
        self.check_video_steps(steps or self.config.video.sample_steps)     # before the motion is sampled
        rate = self.config.audio.sample_rate
        if sample_rate != rate:  # resampled once: for the features and for the muxed track
            audio = resample(audio, sample_rate, rate).astype(np.float32)
        features = self.features.from_samples(audio, rate)
        num_frames = len(features["mfcc"])
        pose, expression, motion_features = self.sample_motion(features["mfcc"], features["hubert"], generator)
        check_finite(motion_features, "IMAC's sampled motion", f"the weights or the motion sampler's settings "
                     f"({self.config.motion.sample_steps} steps, spacing {self.config.motion.sample_spacing}) give "
                     "no finite sample")
        pose, expression = self.model.motion.denormalize(pose, expression)
        has_motion = self.model.motion.config.use_motion
        chunks = (tensor_to_frames(frames, "IMAC's frames") for frames in
                  self.video_chunks(reference, motion_features, generator, progress, guidance_scale, steps))
        return SampleStream(chunks, num_frames, pose[0].cpu().numpy() if has_motion else None,
                            expression[0].cpu().numpy() if has_motion else None, audio, self.config.fps)

    def check_video_steps(self, steps: int) -> int:
        """``check_video_steps`` with this pipeline's config."""
        return check_video_steps(self.config, steps)

    def sample_video(self, reference: torch.Tensor, motion_features: torch.Tensor,
                     generator: torch.Generator | None = None, progress: bool = False,
                     guidance_scale: float | None = None, steps: int | None = None) -> torch.Tensor:
        """Chunked video generation: (1, N, D) features -> (N, 3, S, S) float frames in [-1, 1] on the
        model's device (``video_chunks`` gathered)."""
        parts = self.video_chunks(reference, motion_features, generator, progress, guidance_scale, steps)
        video, done = torch.empty((motion_features.shape[1], 3, *reference.shape[-2:]), device=self.device), 0
        for part in parts:
            video[done:done + len(part)] = part
            done += len(part)
        return video

    def video_chunks(self, reference: torch.Tensor, motion_features: torch.Tensor,
                     generator: torch.Generator | None = None, progress: bool = False,
                     guidance_scale: float | None = None, steps: int | None = None) -> Iterator[torch.Tensor]:
        """Chunked video generation, one chunk at a time: (1, N, D) features -> consecutive
        (n_i, 3, S, S) float frames in [-1, 1] on the model's device, N frames in all.

        Each chunk yields its frames from its first new one (the first chunk: frame 0; a later one: the
        frame after its first, which is the previous chunk's) up to and including the next chunk's
        first frame, the frame the next chunk starts on; the last chunk's to frame N - 1. Only that
        frame (and its latent, with ``video.handover`` latent) is kept between chunks.
        """
        chunk = self.config.video.frames
        total = motion_features.shape[1]
        if total < chunk:  # shorter than one chunk: edge-pad the features, cut the frames
            pad = motion_features[:, -1:].expand(-1, chunk - total, -1)
            motion_features = torch.cat([motion_features, pad], dim=1)
        starts = chunk_starts(total, chunk)
        guidance = self.config.video.guidance_scale if guidance_scale is None else guidance_scale
        steps = steps or self.config.video.sample_steps
        strength = self.config.video.sample_strength
        self.check_video_steps(steps)
        current = reference[None].to(self.device)
        anchored = self.config.video.chunk_reference == "anchored"
        context = self.model.video_context(current, generator) if anchored else None
        handed = None           # the previous chunk's last latent (video.handover "latent")
        scheduler = video_sampling_scheduler(self.config.video)
        for index, start in enumerate(tqdm(starts, desc="video chunks", unit="chunk", disable=not progress)):
            options = {}                         # none: the paper's chunk (all from ``current``, pure noise)
            if strength < 1:
                options.update(strength=strength, strength_from=self.config.video.strength_from)
            if self.config.video.noise_correlation > 0:
                options["noise_correlation"] = self.config.video.noise_correlation
            if anchored:
                options["context"] = context
                if start > 0 and handed is None:
                    options["first_frame_latents"] = encode_latents(self.model.vae, current, generator=generator)
            if start > 0 and handed is not None:
                options["first_frame_latents"] = handed
            with sampling_autocast(self.device, self.config.video.sample_precision):
                sample = self.model.sample_chunk(current, motion_features[:, start:start + chunk], steps, guidance,
                                                 generator, scheduler=scheduler, **options)
            precision = self.config.video.sample_precision if self.device.type == "cuda" else "no"
            check_finite(sample.frames, f"IMAC's video chunk {index + 1} of {len(starts)} (frames "
                         f"{start} to {start + chunk - 1}; {steps} steps, guidance {guidance}, sampling precision "
                         f"{precision})", "sampling in float32 (video.sample_precision no) avoids an fp16 overflow"
                         if precision != "no" else "the weights or the sampler settings give no finite sample")
            frames = sample.frames.float()
            following = starts[index + 1] - start if index + 1 < len(starts) else None   # within this chunk
            if following is not None:  # the next chunk starts on this frame (chunk_starts): kept, not the chunk
                current = frames[following:following + 1].clone()
                if self.config.video.handover == "latent":
                    handed = sample.latents[following:following + 1].clone()
            stop = min(chunk, total - start) if following is None else following + 1
            yield frames[0 if start == 0 else 1:stop]


def sampling_autocast(device: torch.device, precision: str):
    """``torch.autocast`` in ``precision`` ("fp16", "bf16") on CUDA; a no-op on a CPU or with "no"."""
    if device.type != "cuda" or precision == "no":
        return nullcontext()
    return torch.autocast("cuda", dtype={"fp16": torch.float16, "bf16": torch.bfloat16}[precision])


def motion_windows(total: int, window: int, overlap: int = 0) -> list[tuple[int, int, int]]:
    """(start, stop, keep) of each motion window over ``total`` frames: the window samples frames
    [start, stop) and its frames from ``keep`` on are new (before ``keep``: the previous window's,
    given to it). Windows of ``window`` frames; each after the first starts ``overlap`` frames before
    the previous one's end; the last may be shorter. ``overlap`` 0: back to back, keep == start."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window {window}, overlap {overlap}")
    windows, end = [], 0
    while end < total:
        start = max(end - overlap, 0)
        stop = min(start + window, total)
        windows.append((start, stop, end))
        end = stop
    return windows


def chunk_starts(total: int, chunk: int) -> list[int]:
    """First frame of each chunk: 0, chunk-1, 2(chunk-1), ..., the last one ending at ``total``.

    Each later chunk starts on the last frame of the previous one (its reference); the final
    chunk starts earlier when needed so that it ends exactly at ``total`` (still on a generated
    frame, so its reference exists).
    """
    if chunk < 2:
        raise ValueError("video chunks need at least 2 frames")
    starts = [0]
    while starts[-1] + chunk < total:
        starts.append(min(starts[-1] + chunk - 1, total - chunk))
    return starts


