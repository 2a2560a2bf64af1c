"""Training a SyncNet stand-in on a dataset's training split: what the toy benchmark's Sync-C* /
Sync-D* are measured with (no published weights can be had offline, and an untrained SyncNet
orders nothing).

The stand-in has the published layer structure (:class:`metrics.syncnet.SyncNet`) at reduced width
(:meth:`SyncNetConfig.reduced`, default 1/16) and sees exactly what evaluation feeds it: the face
tracks and 224x224 crops of :func:`metrics.lipsync.lip_sync_clip` (MTCNN, :data:`TOY_SETTINGS`
by default) and the MFCCs of :func:`metrics.lipsync.mfcc`. Two losses on the Euclidean distance
``d`` of a 5-frame video window's and a 0.2 s audio window's embeddings:

- ``multiway`` (default; Chung, Chung & Zisserman, "Perfect match: improved cross-modal embeddings
  for audio-visual synchronisation", ICASSP 2019): each video window picks its in-sync audio
  window among those shifted by 2 to 15 frames either way in the same track, a cross-entropy on
  ``-d``. It is what SyncNet's evaluation asks (the in-sync shift must be the closest), and each
  costly video window is compared with up to 29 cheap audio windows;
- ``contrastive`` (the 2016 paper): genuine or false (shifted 2 to 15 frames) pairs, half each,
  ``y d^2 + (1 - y) max(margin - d, 0)^2``.

A plain seeded Adam loop on one process, like the FGD skeleton autoencoder's
(:func:`metrics.skeleton_ae.train_autoencoder`).

The weights are saved in ``syncnet_v2.model``'s file format (so the same loader reads them) with a
card ``<file>.standin.json`` beside it (training data hash, settings, losses) that marks them as a
stand-in: their scores are shown as Sync-C* / Sync-D*, never as Sync-C / Sync-D.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from metrics.dataset import find_clips
from metrics.faces import FaceDetector, make_face_detector
from metrics.io.files import write_json_atomic
from metrics.io.video import read_video
from metrics.lipsync import (
    AUDIO_RATE,
    MFCC_PER_FRAME,
    SAMPLES_PER_FRAME,
    TOY_SETTINGS,
    LipSyncSettings,
    crop_track,
    detect_faces,
    face_tracks,
    mfcc,
    to_video_rate,
)
from metrics.syncnet import (
    MFCC_WINDOW,
    VIDEO_WINDOW,
    SyncNet,
    SyncNetConfig,
    save_syncnet,
    standin_card_path,
)


@dataclass(frozen=True)
class SyncTrainingConfig:
    """``width_divisor``: the published widths divided by this; ``loss``: ``"multiway"`` (each video
    window picks its audio among the windows shifted by ``min_shift`` .. ``max_shift`` frames either
    way, cross-entropy on negative distances) or ``"contrastive"`` (the 2016 paper's pairs, half
    genuine, half shifted, with ``margin`` in embedding distance units); ``batch_size``: video
    windows per step."""

    width_divisor: int = 16
    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    loss: str = "multiway"
    margin: float = 10.0
    min_shift: int = 2
    max_shift: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in ("multiway", "contrastive"):
            raise ValueError(f"loss must be 'multiway' or 'contrastive', got {self.loss!r}")
        if not 1 <= self.min_shift <= self.max_shift or self.steps < 1 or self.batch_size < 2:
            raise ValueError("need 1 <= min_shift <= max_shift, steps >= 1 and batch_size >= 2")


@dataclass
class TrackData:
    """One face track ready for training: crops uint8 ``(n, 224, 224, 3)`` RGB at 25 fps and the
    MFCCs ``(T, 13)`` of its audio."""

    crops: np.ndarray
    cepstra: np.ndarray
    source: str

    @property
    def windows(self) -> int:
        """5-frame windows, as evaluation counts them: ``min(frames, audio frames) - 5`` (``T + 1``
        MFCC frames per 4 video frames: ``T = 4 n - 1`` for ``n * 640`` samples)."""
        return min(len(self.crops), (len(self.cepstra) + 1) // MFCC_PER_FRAME) - VIDEO_WINDOW


def clip_tracks(frames: np.ndarray, fps: float, audio: np.ndarray, detector: FaceDetector,
                settings: LipSyncSettings = TOY_SETTINGS, source: str = "") -> list[TrackData]:
    """The face tracks of one clip as :class:`TrackData` (the evaluation pipeline's steps 1-4)."""
    video = to_video_rate(frames, fps)
    tracks = face_tracks(detect_faces(video, detector, settings.face_confidence), settings)
    out = []
    for track in tracks:
        span = audio[track.first * SAMPLES_PER_FRAME:(track.first + len(track.boxes)) * SAMPLES_PER_FRAME]
        data = TrackData(crop_track(video, track, settings), mfcc(span), source)
        if data.windows > 2 * 2:
            out.append(data)
    return out


def training_tracks(data_dir: str | os.PathLike, split: str = "train", settings: LipSyncSettings = TOY_SETTINGS,
                    detector: FaceDetector | None = None,
                    progress: Callable[[str], None] | None = None) -> list[TrackData]:
    """The face tracks of every clip of a dataset split (manifest format of ``metrics.dataset``)."""
    clips = find_clips(data_dir, split=split)
    detector = detector or make_face_detector("mtcnn", min_face_fraction=settings.face_min_fraction)
    tracks = []
    for number, clip in enumerate(clips, start=1):
        if progress:
            progress(f"[{number}/{len(clips)}] face tracks of {clip.label}")
        frames = read_video(clip.video)
        tracks += clip_tracks(frames, float(clip.fps or 25), clip.load_audio(AUDIO_RATE), detector, settings,
                              str(clip.video))
    if not tracks:
        raise ValueError(f"{data_dir}: no face track in the {split} split to train SyncNet on")
    return tracks


def tracks_hash(tracks: list[TrackData]) -> str:
    """Hash of the training crops and MFCCs: which data a stand-in was trained on."""
    digest = hashlib.sha256()
    for track in tracks:
        digest.update(np.ascontiguousarray(track.crops).tobytes())
        digest.update(np.ascontiguousarray(track.cepstra, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def contrastive_loss(video: torch.Tensor, audio: torch.Tensor, genuine: torch.Tensor, margin: float) -> torch.Tensor:
    """The SyncNet paper's loss, mean over pairs: ``d^2`` for genuine pairs (``genuine`` 1),
    ``max(margin - d, 0)^2`` for false ones (0), ``d`` the Euclidean distance of the embeddings."""
    distance = torch.nn.functional.pairwise_distance(video, audio)
    return (genuine * distance ** 2 + (1 - genuine) * torch.clamp(margin - distance, min=0) ** 2).mean()


def multiway_loss(video: torch.Tensor, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of picking the in-sync audio window among the shifted ones by distance
    (Chung et al., "Perfect match", ICASSP 2019): ``video`` ``(B, E)``, ``audio`` ``(B, K, E)`` with
    the in-sync window at index 0, ``mask`` ``(B, K)`` True where a candidate exists."""
    distance = torch.linalg.vector_norm(video[:, None, :] - audio, dim=-1)
    logits = (-distance).masked_fill(~mask, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(video), dtype=torch.long))


def _video_window(track: TrackData, start: int) -> np.ndarray:
    return track.crops[start:start + VIDEO_WINDOW, :, :, ::-1]      # RGB -> BGR, as evaluation feeds it


def _audio_window(track: TrackData, start: int) -> np.ndarray:
    return track.cepstra[MFCC_PER_FRAME * start:MFCC_PER_FRAME * start + MFCC_WINDOW].T


def _to_video(windows: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(windows))).permute(0, 4, 1, 2, 3).float()


def _pair_batch(tracks: list[TrackData], config: SyncTrainingConfig, rng: np.random.Generator):
    videos, audios, labels = [], [], []
    for k in range(config.batch_size):
        track = tracks[rng.integers(len(tracks))]
        start = int(rng.integers(track.windows))
        target = start
        if k % 2:                                  # a false pair: the audio from elsewhere in the track
            shifts = [s for s in range(config.min_shift, config.max_shift + 1) for s in (s, -s)
                      if 0 <= start + s < track.windows]
            target = start + shifts[rng.integers(len(shifts))] if shifts else start
        videos.append(_video_window(track, start))
        audios.append(_audio_window(track, target))
        labels.append(float(target == start))
    audio = torch.from_numpy(np.stack(audios).astype(np.float32))[:, None]
    return _to_video(videos), audio, torch.tensor(labels)


def _multiway_batch(tracks: list[TrackData], config: SyncTrainingConfig, rng: np.random.Generator):
    shifts = [0] + [s for s in range(config.min_shift, config.max_shift + 1) for s in (s, -s)]
    videos, audios, masks = [], [], []
    for _ in range(config.batch_size):
        track = tracks[rng.integers(len(tracks))]
        start = int(rng.integers(track.windows))
        videos.append(_video_window(track, start))
        present = [0 <= start + s < track.windows for s in shifts]
        audios.append(np.stack([_audio_window(track, start + s if ok else start) for s, ok in zip(shifts, present)]))
        masks.append(present)
    audio = torch.from_numpy(np.stack(audios).astype(np.float32))          # (B, K, 13, 20)
    return _to_video(videos), audio, torch.tensor(masks)


def train_syncnet(tracks: list[TrackData], config: SyncTrainingConfig = SyncTrainingConfig(),
                  progress: Callable[[int, float], None] | None = None) -> tuple[SyncNet, dict]:
    """Train a reduced-width SyncNet on face tracks; returns (network in eval mode, training info).

    Raises ``ValueError`` when no track holds enough windows for a false pair."""
    usable = [t for t in tracks if t.windows > config.min_shift]
    if not usable:
        raise ValueError("no face track long enough to train SyncNet on")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = SyncNet(SyncNetConfig.reduced(config.width_divisor))
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate, foreach=True)
    network.train()
    losses = []
    for step in range(config.steps):
        if config.loss == "multiway":
            video, audio, mask = _multiway_batch(usable, config, rng)
            embedded = network.embed_audio(audio.flatten(0, 1)[:, None]).unflatten(0, audio.shape[:2])
            loss = multiway_loss(network.embed_video(video), embedded, mask)
        else:
            video, audio, genuine = _pair_batch(usable, config, rng)
            loss = contrastive_loss(network.embed_video(video), network.embed_audio(audio), genuine, config.margin)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
    tail = max(1, len(losses) // 10)
    info = {"config": asdict(config), "network": network.config.to_dict(), "tracks": len(usable),
            "windows": int(sum(t.windows for t in usable)), "training_data_hash": tracks_hash(usable),
            "first_loss": losses[0], "last_loss_mean": float(np.mean(losses[-tail:]))}
    return network.eval(), info


def train_syncnet_standin(data_dir: str | os.PathLike, out_path: str | os.PathLike,
                          config: SyncTrainingConfig = SyncTrainingConfig(), split: str = "train",
                          settings: LipSyncSettings = TOY_SETTINGS,
                          progress: Callable[[str], None] | None = None) -> tuple[str, dict]:
    """Train a stand-in on ``data_dir``'s ``split`` and save it to ``out_path`` (the published file
    format) with its card ``<out_path>.standin.json``; returns (sha12 of the weights, card)."""
    tracks = training_tracks(data_dir, split, settings, progress=progress)

    def report(step: int, loss: float) -> None:
        if progress and (step % 50 == 0 or step == config.steps - 1):
            progress(f"step {step + 1}/{config.steps}  contrastive loss {loss:.3f}")

    network, info = train_syncnet(tracks, config, report)
    sha12 = save_syncnet(network, out_path)
    card = {"standin": True, "label": "Sync-C* / Sync-D* (a SyncNet trained here, not syncnet_v2.model)",
            "weights_sha12": sha12, "data": str(data_dir), "split": split,
            "face_settings": asdict(settings), "training": info}
    write_json_atomic(standin_card_path(out_path), card)
    return sha12, card
