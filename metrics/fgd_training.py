"""Training the FGD skeleton autoencoder on a dataset's training split.

Keypoints come from the same pose extractor that evaluation uses (cached), so the autoencoder
sees the extractor's noise on both sides; ``keypoints="dataset"`` uses the dataset's own keypoint
files instead (ground truth, on the toy corpus).

Under a launch of several processes it trains data-parallel on GPUs (SyncBatchNorm) and on the main
process alone on CPUs (``train_fgd_autoencoder``); the main process writes the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from metrics.fgd import skeleton_windows
from metrics.dataset import find_clips, is_dataset
from metrics.distributed import SINGLE, Processes
from metrics.protocol import Protocol
from metrics.skeleton_ae import (CONFIG_LIMITS, TRAINING_BATCH_SIZE, TRAINING_LEARNING_RATE, AutoencoderConfig,
                                 save_autoencoder, train_autoencoder)
from metrics.io.bounded import load_npz
from metrics.io.video import probe_video
from metrics.pose.extraction import keypoint_cache, video_keypoints
from metrics.training import DataParallel


def training_windows(data_dir: str | Path, protocol: Protocol, extractor=None, keypoints: str = "extract",
                     split: str = "train", cache_dir: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> np.ndarray:
    """All skeleton windows of a split, (n, window, points, 2)."""
    clips = find_clips(data_dir, split=split)
    cache = keypoint_cache(cache_dir, extractor.extractor_id, protocol.version) if (cache_dir and extractor) else None
    out = []
    for number, clip in enumerate(clips, start=1):
        if progress:
            progress(f"[{number}/{len(clips)}] keypoints of {clip.label}")
        if keypoints == "dataset":
            if clip.keypoints is None:
                raise ValueError(f"{clip.label}: the dataset has no keypoints file for this clip; use keypoints='extract'")
            points = load_npz(clip.keypoints, ("keypoints",))["keypoints"]
            fps = probe_video(clip.video).fps
        else:
            points, fps = video_keypoints(clip.video, extractor, cache)
        clip_windows, _ = skeleton_windows(points, fps, protocol, str(clip.video))
        out.append(clip_windows)
    windows = np.concatenate(out) if out else np.zeros((0,))
    if len(windows) < 2:
        raise ValueError(f"{data_dir}: the {split} split gives {len(windows)} windows of {protocol.window} frames; "
                         "need at least 2")
    return windows.astype(np.float32)


LATENT, HIDDEN = 64, 128          # ``train_fgd_autoencoder``'s widths


def training_card(protocol: Protocol, steps: int, seed: int, extractor=None, latent: int = LATENT,
                  hidden: int = HIDDEN) -> dict:
    """The entries of the ``config.json`` that ``train_fgd_autoencoder`` writes (with these arguments and
    ``keypoints="extract"``) that say how it was trained: ``{"model": {...}, "training": {...}}``, to
    compare a saved autoencoder with (``bench.runner.card_changes``)."""
    return {"model": {"points": len(protocol.skeleton_points), "window": protocol.window, "hidden": hidden,
                      "latent": latent},
            "training": {"steps": steps, "batch_size": TRAINING_BATCH_SIZE, "learning_rate": TRAINING_LEARNING_RATE,
                         "seed": seed, "pose_extractor": getattr(extractor, "extractor_id", None)}}


def train_fgd_autoencoder(data_dir: str | Path, out_dir: str | Path, protocol: Protocol | None = None,
                          extractor=None, keypoints: str = "extract", split: str = "train", steps: int = 1000,
                          latent: int = LATENT, hidden: int = HIDDEN, seed: int = 0, cache_dir: str | Path | None = None,
                          progress: Callable[[str], None] | None = None, processes: Processes = SINGLE,
                          device: str = "cpu") -> tuple[str, dict]:
    """Train and save the autoencoder; returns (checkpoint hash, training info).

    One process trains on the CPU. ``processes``: every process of a launch calls this together. On
    GPUs (``device`` cuda: each process's own) they train it data-parallel with SyncBatchNorm
    (``metrics.skeleton_ae.train_autoencoder``); on CPU processes, where torch has no SyncBatchNorm and
    per-process BatchNorm statistics would not be the global batch's, the main process trains it alone
    (exactly as one process does) while the others wait. Either way the main process alone writes
    ``out_dir`` and every process returns its hash and info.

    Raises ``ValueError`` before any keypoint is extracted for ``steps`` < 1, a ``latent`` or ``hidden``
    outside ``metrics.skeleton_ae.CONFIG_LIMITS`` (a checkpoint that could not be loaded back) or a
    ``seed`` outside 0..2**64 - 1.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 64:   # torch's generators
        raise ValueError(f"seed must be an integer in 0..{2 ** 64 - 1}, got {seed!r}")
    for name, value in (("latent", latent), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CONFIG_LIMITS[name]:
            raise ValueError(f"{name} must be an integer in 1..{CONFIG_LIMITS[name]}, got {value!r}")
    parallel = DataParallel(processes, device)
    if processes.distributed and not parallel.can_sync_batchnorm():
        result = None
        if processes.is_main:
            result = train_fgd_autoencoder(data_dir, out_dir, protocol, extractor, keypoints, split, steps, latent,
                                           hidden, seed, cache_dir, progress)
        return processes.broadcast(result)
    protocol = protocol or Protocol()
    with processes.main_first():     # the main process extracts (and caches) the keypoints, the others read them
        windows = training_windows(data_dir, protocol, extractor, keypoints, split, cache_dir,
                                   progress if processes.is_main else None)
    config = AutoencoderConfig(points=len(protocol.skeleton_points), window=protocol.window, hidden=hidden, latent=latent)

    def report(step: int, loss: float) -> None:
        if progress and processes.is_main and (step % 100 == 0 or step == steps - 1):
            progress(f"step {step + 1}/{steps}  L1 {loss:.4f}")

    if processes.distributed:
        model, info = train_autoencoder(windows, config, steps=steps, seed=seed, progress=report,
                                        processes=processes, device=str(parallel.device))
    else:
        model, info = train_autoencoder(windows, config, steps=steps, seed=seed, progress=report)
    # a folder of videos has no splits: every clip in it trained the autoencoder (said, not "train")
    info.update({"data": str(data_dir), "split": split if is_dataset(data_dir) else "all (a folder of videos)",
                 "keypoints": keypoints,
                 "pose_extractor": getattr(extractor, "extractor_id", None) if keypoints == "extract" else "dataset",
                 "protocol": protocol.label})
    return parallel.write_on_main(lambda: (save_autoencoder(model, out_dir, info), info))
