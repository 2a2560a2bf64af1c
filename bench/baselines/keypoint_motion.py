"""Audio -> 2D keypoint motion: a diffusion model over COCO-WholeBody keypoint sequences.

The motion branch of the S2G reimplementation (``bench.baselines.s2g``), also used by the MYA
reimplementation to drive its pose images. It is IMAC's ``MotionModel`` (audio encoder + two
transformer streams, epsilon-prediction DDPM training, DDIM sampling) trained on keypoints
instead of SMPL-X parameters, with IMAC's frozen audio features (MFCC + HuBERT, one row per video
frame; the tiny random HuBERT unless ``hubert`` names a local folder); no new network is written
here. Which points, their normalisation, placement and retargeting: ``keypoint_geometry``; the
training clips: ``keypoint_data``.

What is modelled:

- A trained model keeps the candidate points (``keypoint_geometry.KEYPOINT_POINTS``) that its
  training keypoints provide (``modelled_points``); ``KeypointMotion.points`` lists them. Points a
  dataset does not provide are never modelled as data: the toy corpus's keypoint files have no
  ears and only 4 of the face landmarks (mouth corners and lips), so a model trained on them has
  57 points; with the toy marker extractor (datasets without keypoint files) the head is the nose
  alone.
- The pose stream gets the x, y of the modelled body and hand points, the expression stream those
  of the head (nose, eyes, ears, face landmarks): the head moves with its own rhythm (lips with
  syllables) and IMAC's expression stream is the part meant for it. Each stream models the first
  ``components`` principal axes of its coordinates (``LinearBasis``; the toy corpus's 100 body and
  hand coordinates have 99.9 % of their variance in 15): a small network learns those in a few
  hundred steps, while on the raw coordinates (more than its width) it cannot even represent the
  noise to predict. With no head point, the expression stream is one constant zero channel.

Sampled motion is placed on the reference frame: neck on the reference's neck, scaled by the
reference's shoulder width (``keypoint_geometry.reference_placement``).

Diffusion settings that matter for a model trained for seconds on a CPU:

- ``beta_schedule="linear"``, not IMAC's ``squaredcos_cap_v2``: DDIM's first step from t = 999
  multiplies the error of the predicted noise by sqrt(alphabar_prev / alphabar_999), about 3000
  for squaredcos_cap_v2 with 10 trailing steps and 2.6 for the linear schedule;
- ``sample_clip``: DDIM's estimate of the clean motion is clipped to +-3 standard deviations, so
  that the early, noisy steps cannot throw the sample out of the range the network was trained on;
- ``smoothing``: the sampled motion is smoothed in time (Gaussian, sigma 2 frames, over the whole
  clip, window boundaries included). The toy-sized model leaves frame-to-frame jitter about ten
  times the real motion's speed; after smoothing, its wrist speed and spread are close to the
  real test clips' (measured on the embedded benchmark).

Training takes random windows of ``window`` frames (clips shorter than one are skipped); sampling
goes window by window, like ``IMACPipeline.sample_motion``, with one seeded generator, so the same
seed gives the same keypoints. Under a launch of several processes preparing together
(``BenchContext.processes``) training is data-parallel (``metrics.training``: every process takes its
block of each global batch of windows and diffusion draws; dropout draws per process) and the
main process writes the folder. The model folder (``train_or_load``: ``<work_dir>/keypoint_motion``;
``train_or_load_shared``, as S2G and MYA use it: ``<work>/keypoint_motion-<hash of the training key>``) holds
``keypoint_motion.json`` (points, options, HuBERT id, training facts), ``bases.npz`` (the principal
axes) and ``motion/`` (the ``MotionModel``); it is written atomically, and a later
``train_or_load`` with the same training settings loads it instead of training again.
"""

from __future__ import annotations

import logging

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler
from scipy.ndimage import gaussian_filter1d
from torch import nn
from tqdm import tqdm

from bench.baselines.keypoint_data import motion_arrays, training_clips
from bench.baselines.keypoint_geometry import BODY_POINTS, HEAD_POINTS, modelled_points, reference_placement
from bench.methods.base import BenchContext
from bench.side_by_side import Training
from imac.audio_features import AudioFeatures, load_hubert
from imac.config import AudioConfig, IMACConfig, MotionConfig, config_differences, flat_config
from imac.frames import check_finite
from imac.models import noise as draws
from imac.models.loading import load_pretrained
from imac.models.motion import MotionModel
from imac.models.video import motion_sampling_scheduler, motion_training_scheduler
from imac.pipeline import hubert_identity, quiet_transformers
from imac.training.windows import window_positions
from metrics.device import resolve_device
from metrics.distributed import SAME_IN_EVERY_PROCESS
from metrics.io.audio import SAMPLE_RATE
from metrics.io.bounded import load_npz, read_json
from metrics.io.files import atomic_folder
from metrics.options import build_options
from metrics.pose import wholebody as wb
from metrics.skeleton import LEFT_SHOULDER, RIGHT_SHOULDER
from metrics.training import DataParallel

logger = logging.getLogger(__name__)

FORMAT = "keypoint-motion-1"
CARD = "keypoint_motion.json"
BASES = "bases.npz"
FOLDER = "keypoint_motion"

# Options that change nothing in training: a model trained with other values is still the same model.
SAMPLING_OPTIONS = ("sample_steps", "sample_clip", "smoothing")


@dataclass
class KeypointMotionOptions:
    """Model, training and sampling settings; the defaults are sized for the toy benchmark on one CPU thread."""

    window: int = 80                  # frames per training window and per sampling window
    steps: int = 500                  # optimiser steps
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    width: int = 64                   # transformer width of each stream
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    audio_width: int = 64             # fused audio feature width
    mfcc_width: int = 32
    mfcc_heads: int = 2
    n_mfcc: int = 13
    hubert: str = "tiny"              # "tiny" (random tiny HuBERT) or a local HuBERT folder
    hubert_seed: int = 0
    train_timesteps: int = 1000
    beta_schedule: str = "linear"    # see the module docstring: not squaredcos_cap_v2
    components: int = 16              # principal axes per stream (0: the raw coordinates)
    sample_steps: int = 10            # DDIM steps per sampling window
    sample_clip: float = 3.0          # clip DDIM's clean-motion estimate to +-this many stds (0: off)
    smoothing: float = 2.0            # Gaussian sigma in frames over sampled motion (0: off)
    score_threshold: float = 0.3      # keypoints scored below this are missing

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "keypoint motion") -> KeypointMotionOptions:
        """Options from a config mapping (``metrics.options``): an unknown key, a value of the wrong type
        or out of range is an error naming ``where`` and the key."""
        options = build_options(cls, values, where)
        options.check(where)
        return options

    def check(self, where: str = "keypoint motion") -> None:
        positive = ("window", "steps", "batch_size", "width", "layers", "heads", "audio_width", "mfcc_width",
                    "mfcc_heads", "n_mfcc", "train_timesteps", "sample_steps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{where}: option {name} must be > 0, got {getattr(self, name)}")
        if self.components < 0 or self.sample_clip < 0 or self.smoothing < 0:
            raise ValueError(f"{where}: components, sample_clip and smoothing must be >= 0")
        if self.lr <= 0 or not 0.0 <= self.dropout < 1.0 or not 0.0 < self.score_threshold <= 1.0:
            raise ValueError(f"{where}: need lr > 0, 0 <= dropout < 1 and 0 < score_threshold <= 1 "
                             f"(got {self.lr}, {self.dropout}, {self.score_threshold})")
        if self.sample_steps > self.train_timesteps:
            raise ValueError(f"{where}: sample_steps ({self.sample_steps}) exceeds train_timesteps "
                             f"({self.train_timesteps})")


@dataclass(frozen=True)
class LinearBasis:
    """Principal axes of one stream's coordinates (D,): the stream models ``(x - mean) @ axes`` (K,).

    Keypoint coordinates are strongly correlated (a hand's 21 points move together), so few axes
    hold nearly all of their variance; modelling those is an easier diffusion problem for a small
    network, and ``MotionModel``'s normalisation then whitens them. With no coordinates (D = 0)
    the stream is one constant zero channel.
    """

    mean: np.ndarray   # (D,)
    axes: np.ndarray   # (D, K), orthonormal columns

    @classmethod
    def fit(cls, values: np.ndarray, components: int) -> LinearBasis:
        """The first ``components`` principal axes of ``values`` (N, D); all D coordinates when 0."""
        values = np.asarray(values, dtype=np.float64)
        dims = values.shape[1]
        if dims == 0:
            return cls(np.zeros(0, np.float32), np.zeros((0, 1), np.float32))
        if components == 0:
            return cls(np.zeros(dims, np.float32), np.eye(dims, dtype=np.float32))
        mean = values.mean(axis=0)
        _, _, right = np.linalg.svd(values - mean, full_matrices=False)
        return cls(mean.astype(np.float32), right[:min(components, len(right))].T.astype(np.float32))

    def encode(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) @ self.axes).astype(np.float32)

    def decode(self, coefficients: np.ndarray) -> np.ndarray:
        return (coefficients @ self.axes.T + self.mean).astype(np.float32)


# -- the model -----------------------------------------------------------------------------------


class _MotionLoss(nn.Module):
    """The diffusion loss of normalised windows as a module's forward (DistributedDataParallel
    averages the gradients of what runs through its wrapper's forward)."""

    def __init__(self, motion: MotionModel, scheduler) -> None:
        super().__init__()
        self.motion, self.scheduler = motion, scheduler

    def forward(self, pose: torch.Tensor, head: torch.Tensor, mfcc: torch.Tensor, hubert: torch.Tensor,
                generator: draws.Generators) -> torch.Tensor:
        pose, head = self.motion.normalize(pose, head)
        return self.motion.loss(pose, head, mfcc, hubert, self.scheduler, generator)


def _fit(motion: MotionModel, tensors: dict[str, list[torch.Tensor]], positions: np.ndarray,
         options: KeypointMotionOptions, seed: int, parallel: DataParallel, progress: bool) -> list[float]:
    """AdamW on random windows; returns the loss of every step (the global batch's under a launch).

    Each step's windows and diffusion draws are those of one process for the whole batch; a process of a
    launch keeps its block of them (``metrics.training``, ``imac.models.noise.BatchShard``). Dropout
    draws per process."""
    parallel.check_batch(options.batch_size, "keypoint motion batch_size")
    rows = parallel.part(options.batch_size)
    # every parameter gets a gradient at every step, whatever the options (they only size the model):
    # no search for unused ones (a graph traversal per step, and a warning from each process when none)
    step_loss = parallel.wrap(_MotionLoss(motion, motion_training_scheduler(_motion_config(options))))
    optimizer = torch.optim.AdamW(motion.parameters(), lr=options.lr, weight_decay=options.weight_decay,
                                  foreach=True)
    rng = np.random.default_rng(seed)
    generator = torch.Generator(parallel.device).manual_seed(seed)
    shard = draws.BatchShard(generator, options.batch_size, rows.start, rows.stop) if parallel.distributed else generator
    parallel.separate_global_streams(seed)
    losses = []
    bar = tqdm(range(options.steps), desc="keypoint motion", disable=not (progress and parallel.is_main), leave=False)
    for _ in bar:
        picks = positions[rng.integers(len(positions), size=options.batch_size)][rows]
        batch = {name: torch.stack([series[c][s:s + options.window] for c, s in picks])
                 for name, series in tensors.items()}
        loss = step_loss(batch["pose"], batch["head"], batch["mfcc"], batch["hubert"], shard)
        optimizer.zero_grad(set_to_none=True)
        parallel.scale(loss, options.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(motion.parameters(), options.grad_clip)
        optimizer.step()
        losses.append(parallel.mean(parallel.scale(loss.detach(), options.batch_size))[0])
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def _hubert_id(options: KeypointMotionOptions) -> str:
    if options.hubert == "tiny":
        return f"tiny-seed{options.hubert_seed}"
    return hubert_identity(IMACConfig(audio=AudioConfig(hubert=options.hubert)))


def _load_hubert(options: KeypointMotionOptions, device: str):
    if options.hubert == "tiny":
        return load_hubert(tiny=True, seed=options.hubert_seed, device=device)
    with quiet_transformers():
        return load_hubert(options.hubert, device=device)


def motion_model(options: KeypointMotionOptions, pose_dim: int, head_dim: int, hubert_dim: int) -> MotionModel:
    """The untrained keypoint motion model: IMAC's motion branch over ``pose_dim`` body and ``head_dim``
    head coordinates (principal components, or raw), sized by ``options``."""
    return MotionModel(pose_dim=pose_dim, expression_dim=head_dim, n_mfcc=options.n_mfcc, hubert_dim=hubert_dim,
                       mfcc_width=options.mfcc_width, mfcc_heads=options.mfcc_heads, audio_width=options.audio_width,
                       width=options.width, layers=options.layers, heads=options.heads, dropout=options.dropout)


def _motion_config(options: KeypointMotionOptions) -> MotionConfig:
    # trailing spacing (from t = 999), as measured for this model: with its linear schedule the first
    # step's gain is 2.6 (module doc), not IMAC's squaredcos_cap_v2 thousands; stated, so that IMAC's
    # default spacing does not move these baselines
    return MotionConfig(train_timesteps=options.train_timesteps, beta_schedule=options.beta_schedule,
                        sample_steps=options.sample_steps, sample_spacing="trailing")


def _sampling_scheduler(options: KeypointMotionOptions) -> DDIMScheduler:
    """IMAC's motion DDIM sampler, with the clean-motion estimate clipped when ``sample_clip`` > 0."""
    scheduler = motion_sampling_scheduler(_motion_config(options))
    if options.sample_clip <= 0:
        return scheduler
    return DDIMScheduler.from_config(scheduler.config, clip_sample=True, clip_sample_range=options.sample_clip)


def _training_key(context: BenchContext, options: KeypointMotionOptions) -> dict[str, Any]:
    """What a trained model depends on besides the data files: a saved model with another key is stale."""
    settings = {k: v for k, v in asdict(options).items() if k not in SAMPLING_OPTIONS}
    return {"options": settings, "seed": context.seed,
            "identities": sorted(context.identities) if context.identities else None}


def _saved_training_key(folder: Path) -> dict[str, Any] | None:
    """``{"key": training key}`` of the model saved in ``folder``; None when there is none. ValueError
    naming the card when it is not a JSON object."""
    if not (folder / CARD).is_file():
        return None
    card = read_json(folder / CARD)
    if not isinstance(card, dict):
        raise ValueError(f"{folder / CARD}: not a JSON object")
    return {"key": card.get("training_key")}


def shared_folder(context: BenchContext, options: KeypointMotionOptions) -> Path:
    """The folder of the model ``options`` key to in the run (``train_or_load_shared``): beside the
    methods' own, ``<work>/keypoint_motion-<hash of the training key>``."""
    text = json.dumps(_training_key(context, options), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Path(context.work_dir).parent / f"{FOLDER}-{digest}"


def _key_changes(saved: Any, key: dict[str, Any]) -> list[str]:
    """"key: old -> new" between a saved training key and this run's (options flattened)."""
    saved = flat_config(saved) if isinstance(saved, dict) else {"training_key": saved}
    return config_differences(saved, flat_config(json.loads(json.dumps(key, default=str))))


def shared_model_changes(context: BenchContext, options: KeypointMotionOptions) -> list[str]:
    """What differs between the shared model trained earlier in the run folder and the one ``options``
    key to (``shared_folder``); trains and loads nothing. [] when that folder holds a model of this
    training key. Else, its folder being absent (another key hashes to another folder), the changes
    from the nearest earlier model (``<work>/keypoint_motion-*``, prefixed with its folder's name), or
    one line saying that none is there. ValueError naming the card of one that cannot be read."""
    key, folder = _training_key(context, options), shared_folder(context, options)
    saved = _saved_training_key(folder)
    if saved is not None:
        return _key_changes(saved["key"], key)
    earlier = []
    for other in sorted(folder.parent.glob(f"{FOLDER}-*")):
        other_key = _saved_training_key(other)
        if other_key is not None:
            changes = _key_changes(other_key["key"], key)
            earlier.append([f"{other.name}: {change}" for change in changes])
    if not earlier:
        return [f"no model in {folder.name} (nor in another {FOLDER}-*)"]
    return min(earlier, key=len)


class KeypointMotion:
    """A trained audio -> keypoint model: ``train_or_load`` it, then ``sample`` keypoint videos."""

    def __init__(self, motion, options: KeypointMotionOptions, pose_points: tuple[int, ...],
                 head_points: tuple[int, ...], bases: tuple[LinearBasis, LinearBasis], hubert, hubert_id: str,
                 facts: dict[str, Any] | None = None, folder: Path | None = None) -> None:
        self.motion = motion.eval()
        self.options = options
        self.pose_points = tuple(int(p) for p in pose_points)
        self.head_points = tuple(int(p) for p in head_points)
        self.pose_basis, self.head_basis = bases
        self.hubert = hubert
        self.hubert_id = hubert_id
        self.facts = dict(facts or {})
        self.folder = folder
        self._features: dict[float, Any] = {}
        self.training_losses: list[float] = []     # of every step, when trained in this process (not saved)

    @property
    def points(self) -> tuple[int, ...]:
        """The modelled points (COCO-WholeBody indices): pose-stream points, then head points."""
        return self.pose_points + self.head_points

    @property
    def device(self) -> torch.device:
        return next(self.motion.parameters()).device

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.motion.parameters())

    def audio_features(self, fps: float, cache_dir: Path | None = None) -> AudioFeatures:
        """IMAC's MFCC + HuBERT features at ``fps`` (one ``AudioFeatures`` per frame rate)."""
        key = float(fps)
        if key not in self._features:
            self._features[key] = AudioFeatures(self.hubert, hubert_id=self.hubert_id, n_mfcc=self.options.n_mfcc,
                                                fps=key, sample_rate=SAMPLE_RATE, cache_dir=cache_dir)
        return self._features[key]

    # -- folder ----------------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike, training_key: dict[str, Any] | None = None) -> Path:
        """Write the model folder atomically (a complete folder replaces an older one)."""
        folder = Path(folder)
        with atomic_folder(folder) as temporary:
            self.motion.save_pretrained(temporary / "motion")
            np.savez(temporary / BASES, pose_mean=self.pose_basis.mean, pose_axes=self.pose_basis.axes,
                     head_mean=self.head_basis.mean, head_axes=self.head_basis.axes)
            card = {"format": FORMAT, "pose_points": list(self.pose_points), "head_points": list(self.head_points),
                    "options": asdict(self.options), "hubert_id": self.hubert_id, "training_key": training_key,
                    "facts": self.facts}
            (temporary / CARD).write_text(json.dumps(card, indent=2))
        self.folder = folder
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu",
             options: KeypointMotionOptions | None = None) -> KeypointMotion:
        """A saved model; of ``options``, only the sampling settings (``SAMPLING_OPTIONS``) are taken."""
        folder = Path(folder)
        if not (folder / CARD).is_file():
            raise FileNotFoundError(f"{folder}: not a keypoint motion model folder (no {CARD})")
        card = read_json(folder / CARD)
        if card.get("format") != FORMAT:
            raise ValueError(f"{folder}: format {card.get('format')!r}, expected {FORMAT!r}")
        saved = KeypointMotionOptions(**card["options"])
        if options is not None:
            options = replace(saved, **{name: getattr(options, name) for name in SAMPLING_OPTIONS})
        else:
            options = saved
        device = resolve_device(device)
        hubert_id = _hubert_id(options)
        if hubert_id != card["hubert_id"]:
            raise ValueError(f"{folder}: trained with HuBERT {card['hubert_id']}, but {options.hubert!r} "
                             f"is {hubert_id}")
        motion = load_pretrained(MotionModel, folder / "motion").to(device)
        npz = load_npz(folder / BASES, ("pose_mean", "pose_axes", "head_mean", "head_axes"))
        bases = (LinearBasis(npz["pose_mean"], npz["pose_axes"]), LinearBasis(npz["head_mean"], npz["head_axes"]))
        return cls(motion, options, tuple(card["pose_points"]), tuple(card["head_points"]), bases,
                   _load_hubert(options, device), hubert_id, card.get("facts"), folder)

    # -- training --------------------------------------------------------------------------------

    @classmethod
    def train_or_load(cls, context: BenchContext,
                      options: KeypointMotionOptions | dict[str, Any] | None = None,
                      folder: str | os.PathLike | None = None) -> KeypointMotion:
        """The model of ``folder`` (default ``context.work_dir / "keypoint_motion"``): loaded when it is
        there and was trained with the same settings, else trained on the train split
        (``context.identities`` only, if given)."""
        if not isinstance(options, KeypointMotionOptions):
            options = KeypointMotionOptions.from_dict(options)
        options.check()
        folder = Path(folder) if folder is not None else Path(context.work_dir) / FOLDER
        key = _training_key(context, options)
        processes = context.processes      # preparing together: the main process's view decides for all
        saved = processes.broadcast(_saved_training_key(folder) if processes.is_main else None)
        if saved is not None:
            if saved["key"] == key:
                model = cls.load(folder, context.device, options)
                model.facts["trained"] = "earlier"
                return model
            logger.info("%s: trained with other settings; training again", folder)
        return cls._train(context, options, folder, key)

    @classmethod
    def train_or_load_shared(cls, context: BenchContext,
                             options: KeypointMotionOptions | dict[str, Any] | None = None) -> KeypointMotion:
        """``train_or_load`` in a folder beside the methods' own (``<work>/keypoint_motion-<key hash>``),
        so that methods asking for the same model in one run (S2G and MYA by default) train it once."""
        if not isinstance(options, KeypointMotionOptions):
            options = KeypointMotionOptions.from_dict(options)
        folder = shared_folder(context, options)
        model = cls.train_or_load(context, options, folder)
        if str(folder) in context.trained_beside:      # trained by the runner first (``shared_motion_training``)
            model.facts["trained"] = "side by side (one thread)"
        return model

    @classmethod
    def _train(cls, context: BenchContext, options: KeypointMotionOptions, folder: Path,
               key: dict[str, Any]) -> KeypointMotion:
        started = time.perf_counter()
        parallel = DataParallel(context.processes, resolve_device(context.device))
        device = str(parallel.device)
        hubert = _load_hubert(options, device)
        torch.manual_seed(context.seed)
        hubert_id = _hubert_id(options)
        with context.processes.main_first():       # the main process fills the feature cache, the others read it
            clips = training_clips(context, options.n_mfcc, hubert, hubert_id)
        keypoints = [clip["keypoints"] for clip in clips]
        points = modelled_points(keypoints, options.score_threshold)
        pose_points = tuple(p for p in points if p in BODY_POINTS)
        head_points = tuple(p for p in points if p in HEAD_POINTS)
        if LEFT_SHOULDER not in pose_points or RIGHT_SHOULDER not in pose_points:
            raise ValueError("the training keypoints rarely show the shoulders: cannot normalise the motion")
        arrays, skipped = motion_arrays(clips, pose_points, head_points, options.score_threshold)
        long_enough = [a for a in arrays if len(a["pose"]) >= options.window]
        skipped += [a["label"] for a in arrays if len(a["pose"]) < options.window]
        if not long_enough:
            raise ValueError(f"no training clip has {options.window} frames (the window option) and usable "
                             f"keypoints; {len(skipped)} clip(s) skipped")
        if skipped:
            logger.warning(f"keypoint motion: {len(skipped)} training clip(s) skipped (shorter than "
                           f"{options.window} frames, or no shoulders): {', '.join(skipped[:5])}",
                           extra=SAME_IN_EVERY_PROCESS)

        bases = (LinearBasis.fit(np.concatenate([a["pose"] for a in long_enough]), options.components),
                 LinearBasis.fit(np.concatenate([a["head"] for a in long_enough]), options.components))
        for array in long_enough:
            array["pose"], array["head"] = bases[0].encode(array["pose"]), bases[1].encode(array["head"])
        motion = motion_model(options, bases[0].axes.shape[1], bases[1].axes.shape[1], int(hubert.config.hidden_size))
        motion.set_normalization(np.concatenate([a["pose"] for a in long_enough]),
                                 np.concatenate([a["head"] for a in long_enough]))
        motion = motion.to(device).train()
        tensors = {name: [torch.from_numpy(a[name]).to(device) for a in long_enough]
                   for name in ("pose", "head", "mfcc", "hubert")}
        positions = window_positions([len(a["pose"]) for a in long_enough], options.window)
        losses = _fit(motion, tensors, positions, options, context.seed, parallel, context.progress)
        seconds = time.perf_counter() - started
        facts = {"steps": options.steps, "seconds": round(seconds, 1), "clips": len(long_enough),
                 "skipped_clips": len(skipped), "points": len(points),
                 "final_loss": round(float(np.mean(losses[-50:])), 4),
                 "parameters": sum(p.numel() for p in motion.parameters())}
        model = cls(motion, options, pose_points, head_points, bases, hubert, hubert_id, facts)
        parallel.write_on_main(lambda: model.save(folder, key))
        model.folder = folder
        model.facts["trained"] = "now"
        model.training_losses = losses
        return model

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_normalised(self, mfcc: np.ndarray, hubert: np.ndarray, seed: int) -> np.ndarray:
        """Motion (F, len(points), 2) in shoulder widths around the neck, window by window."""
        device = self.device
        scheduler = _sampling_scheduler(self.options)
        generator = torch.Generator(device).manual_seed(int(seed))
        window = self.options.window
        poses, heads = [], []
        for start in range(0, len(mfcc), window):
            m = torch.from_numpy(np.ascontiguousarray(mfcc[start:start + window]))[None].to(device)
            h = torch.from_numpy(np.ascontiguousarray(hubert[start:start + window]))[None].to(device)
            pose, head = self.motion.sample(m, h, scheduler, self.options.sample_steps, generator)
            pose, head = self.motion.denormalize(pose, head)
            poses.append(pose[0].float().cpu().numpy())
            heads.append(head[0].float().cpu().numpy())
        pose = self.pose_basis.decode(np.concatenate(poses))
        head = self.head_basis.decode(np.concatenate(heads))
        xy = np.concatenate([pose, head], axis=1).reshape(len(mfcc), len(self.points), 2)
        check_finite(torch.from_numpy(xy), f"the keypoint motion model's sampled keypoints ({self.folder})",
                     f"the weights or the sampler settings ({self.options.sample_steps} steps) give no finite sample")
        if self.options.smoothing > 0:
            xy = gaussian_filter1d(xy, self.options.smoothing, axis=0, mode="nearest")
        return xy

    def sample(self, audio: np.ndarray, num_frames: int, fps: float, reference_keypoints: np.ndarray,
               seed: int) -> np.ndarray:
        """Keypoints (num_frames, 133, 3) for 16 kHz mono ``audio``, in the pixels of the reference frame.

        The motion's neck sits on the reference keypoints' neck, scaled by their shoulder width.
        Modelled points get score 1, the others 0 (and x = y = 0). The same seed gives the same
        keypoints.
        """
        neck, width = reference_placement(reference_keypoints, self.options.score_threshold)
        features = self.audio_features(fps).from_samples(np.asarray(audio), SAMPLE_RATE, num_frames)
        xy = self.sample_normalised(features["mfcc"], features["hubert"], seed)
        out = np.zeros((num_frames, wb.NUM_KEYPOINTS, 3), dtype=np.float32)
        out[:, list(self.points), :2] = xy * width + neck
        out[:, list(self.points), 2] = 1.0
        return out


def shared_motion_training(context: BenchContext, options: KeypointMotionOptions) -> Training | None:
    """``train_or_load_shared`` as a side-by-side training of the run (``bench.side_by_side``), unless the
    shared folder holds a model trained with these settings. Its context keeps what a worker process can be
    sent (the data, the pose extractor, the keypoint cache), not the run's callables, and shows no progress
    bar (the run says when it ends)."""
    options.check()
    folder = shared_folder(context, options)
    saved = _saved_training_key(folder)
    if saved is not None and saved["key"] == _training_key(context, options):
        return None
    sent = replace(context, shared_vae=None, check_shared_vae=None, trained_beside={}, progress=False)
    return Training(str(folder), f"the keypoint motion of S2G and MYA ({options.steps} steps)", train_shared_motion,
                    {"context": sent, "options": options})


def train_shared_motion(context: BenchContext, options: KeypointMotionOptions) -> dict[str, Any]:
    """``KeypointMotion.train_or_load_shared``'s facts (what a worker process sends back)."""
    return dict(KeypointMotion.train_or_load_shared(context, options).facts)


__all__ = ["FOLDER", "KeypointMotion", "KeypointMotionOptions", "LinearBasis", "shared_folder",
           "shared_model_changes", "shared_motion_training", "train_shared_motion"]
