"""The keypoint motion model's training data: keypoints and audio features of the train clips.

A clip's keypoints are the dataset's keypoint file, else the run's pose extractor over its video
(through the run's keypoint cache, which its scoring and the FGD autoencoder's training share). Its
audio features are IMAC's MFCC + HuBERT rows, one per video frame (cached under
``<work_dir>/features``). ``motion_arrays`` turns
them into the model's two streams: the body and hand coordinates (pose stream) and the head's
(expression stream), normalised per clip (``keypoint_geometry.normalised_clip``); a modelled point
a clip never shows takes its mean normalised position over the clips that show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines.keypoint_geometry import normalised_clip
from bench.methods.base import BenchContext
from imac.audio_features import AudioFeatures
from metrics.io.audio import SAMPLE_RATE
from metrics.pose.extraction import video_keypoints
from metrics.skeleton import SkeletonError


def clip_keypoints(context: BenchContext, record) -> np.ndarray:
    """The clip's keypoints: the dataset's file, else the run's pose extractor over the video (through the
    run's keypoint cache, ``context.keypoint_cache``)."""
    keypoints = record.load_keypoints()
    if keypoints is not None:
        return keypoints
    if context.pose_extractor is None:
        raise ValueError(f"{record.label}: the dataset has no keypoints for this clip and no pose extractor was given")
    return video_keypoints(record.video, context.pose_extractor, context.keypoint_cache)[0]


def training_clips(context: BenchContext, n_mfcc: int, hubert, hubert_id: str) -> list[dict[str, Any]]:
    """Keypoints and audio features of every training clip of the chosen speakers."""
    dataset = context.dataset()
    records = dataset.select("train", context.identities)
    features_by_fps: dict[float, AudioFeatures] = {}
    clips = []
    for record in records:
        if record.fps not in features_by_fps:
            features_by_fps[record.fps] = AudioFeatures(
                hubert, hubert_id=hubert_id, n_mfcc=n_mfcc, fps=record.fps,
                sample_rate=SAMPLE_RATE, cache_dir=Path(context.work_dir) / "features")
        features = features_by_fps[record.fps].from_file(record.audio, record.num_frames)
        keypoints = clip_keypoints(context, record)[:record.num_frames]
        clips.append({"label": record.label, "keypoints": keypoints, **features})
    return clips


def motion_arrays(clips: list[dict[str, Any]], pose_points: tuple[int, ...], head_points: tuple[int, ...],
                  threshold: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Per clip: pose (F, 2 * pose points) and head (F, 2 * head points) coordinates, audio features.

    Points a clip never shows take their mean over the clips that show them; clips without
    shoulders are skipped (their labels are returned)."""
    points = pose_points + head_points
    normalised, skipped = [], []
    for clip in clips:
        try:
            xy, shown = normalised_clip(clip["keypoints"], points, threshold)
        except SkeletonError:
            skipped.append(clip["label"])
            continue
        normalised.append((clip, xy, shown))
    if not normalised:
        return [], skipped
    sums = sum(xy.mean(axis=0) * shown[:, None] for _, xy, shown in normalised)
    counts = sum(shown.astype(np.float64) for _, _, shown in normalised)
    fallback = sums / np.maximum(counts, 1.0)[:, None]
    arrays = []
    for clip, xy, shown in normalised:
        xy = np.where(shown[None, :, None], xy, fallback[None].astype(np.float32))
        frames = len(xy)
        pose = xy[:, :len(pose_points)].reshape(frames, 2 * len(pose_points))
        head = xy[:, len(pose_points):].reshape(frames, 2 * len(head_points))
        arrays.append({"label": clip["label"], "pose": np.ascontiguousarray(pose, dtype=np.float32),
                       "head": np.ascontiguousarray(head, dtype=np.float32),
                       "mfcc": clip["mfcc"][:frames], "hubert": clip["hubert"][:frames]})
    return arrays, skipped
