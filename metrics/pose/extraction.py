"""Keypoints of a video file, through the per-content cache (``metrics.io.cache.VideoCache``).

One implementation for every reader of a video's keypoints: the evaluator (``metrics.evaluate``),
the skeleton autoencoder's training windows (``metrics.fgd_training``), the benchmark's baselines and
its plots. What they share: the cache key (extractor id and protocol version), a cached entry used
only when it is a finite (frames, 133, 3) array of the video's length (a damaged or foreign entry is
extracted again, with a warning), keypoints as float32 whether or not the cache had them (a first run
and a rerun score the same numbers), and a truncated file refused rather than scored short.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from metrics.io.cache import VideoCache
from metrics.io.video import CHUNK_FRAMES, VideoReader, probe_video
from metrics.pose.wholebody import NUM_KEYPOINTS

logger = logging.getLogger(__name__)

CHUNK = CHUNK_FRAMES   # frames handed to the extractor at once, fewer when they would take more than
                       # metrics.io.video.CHUNK_BUDGET bytes (bounded memory on long videos and large frames)


def keypoint_cache(root: str | Path, extractor_id: str, protocol_version: str) -> VideoCache:
    """The keypoint cache under ``root`` for one extractor (its ``extractor_id``, which includes a hash
    of its weights) and protocol version."""
    return VideoCache(root, "keypoints", extractor_id, protocol_version)


def cached_keypoints(cache: VideoCache | None, video: str | Path, num_frames: int) -> np.ndarray | None:
    """The cached keypoints of ``video`` (num_frames, 133, 3) float32, or None when there are none or
    the entry is not a finite array of that shape (a damaged entry is not the user's data: it is
    logged and the keypoints are extracted again)."""
    if cache is None:
        return None
    entry = cache.load(video)
    if entry is None:
        return None
    keypoints = entry.get("keypoints")
    if not (isinstance(keypoints, np.ndarray) and keypoints.shape == (num_frames, NUM_KEYPOINTS, 3)
            and np.issubdtype(keypoints.dtype, np.number) and np.isfinite(keypoints).all()):
        logger.warning("%s: cached keypoints ignored: not a finite (%d frames, %d, 3) array", video, num_frames,
                       NUM_KEYPOINTS)
        return None
    return keypoints.astype(np.float32, copy=False)


def store_keypoints(cache: VideoCache | None, video: str | Path, keypoints: np.ndarray, fps: float,
                    num_frames: int) -> np.ndarray:
    """``keypoints`` as float32 (what the cache holds), stored for ``video`` when there is a cache.
    ValueError naming the file when they are not (num_frames, 133, 3): an extractor that dropped frames."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape != (num_frames, NUM_KEYPOINTS, 3):
        raise ValueError(f"{video}: the pose extractor gave keypoints of shape {keypoints.shape} for {num_frames} "
                         f"frames; expected ({num_frames}, {NUM_KEYPOINTS}, 3)")
    if cache is not None:
        cache.store(video, keypoints=keypoints, fps=np.array(fps))
    return keypoints


def video_keypoints(video: str | Path, extractor, cache: VideoCache | None = None) -> tuple[np.ndarray, float]:
    """Every frame's keypoints (F, 133, 3) float32 and the video's fps: from ``cache``, else extracted
    ``CHUNK`` frames at a time (fewer of large frames: ``VideoReader.iter_chunks``) and stored.
    ValueError naming the file when fewer frames decode than its container declares (a truncated or
    corrupt file)."""
    info = probe_video(video)
    keypoints = cached_keypoints(cache, video, info.num_frames)
    if keypoints is not None:
        return keypoints, info.fps
    parts, decoded = [], 0
    with VideoReader(video) as reader:
        for chunk in reader.iter_chunks(CHUNK):
            decoded += len(chunk)
            parts.append(extractor(chunk))
    check_frame_count(video, decoded, info.num_frames)
    return store_keypoints(cache, video, np.concatenate(parts), info.fps, decoded), info.fps


def check_frame_count(video: str | Path, decoded: int, declared: int,
                      error: type[ValueError] = ValueError) -> None:
    """``error`` naming ``video`` when ``decoded`` frames differ from the ``declared`` (the container's)
    count, or when there are none: a truncated or corrupt file is refused, not scored or trained on short."""
    if decoded != declared:
        raise error(f"{video}: decoded {decoded} frames, the container says {declared}: truncated or corrupt file")
    if decoded == 0:
        raise error(f"{video}: no frames")
