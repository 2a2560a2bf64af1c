"""The crop stage of one clip: the person's extent from the best source there is, then the square
crop of the candidate clip, resized (``bench.data.prepare.crop`` has the geometry).

Sources of the person's extent, first available wins: masks (``--masks``, the paper's way),
keypoints (``--keypoints``, or computed once with DWPose from ``--dwpose-detector/--dwpose-pose``),
the face fallback (the faces found while measuring, widened). Each job is a plain picklable value
so that clips can be cropped in worker processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.prepare import continuity
from bench.data.prepare import crop as cropping
from bench.data.prepare.sources import Workspace, clip_faces, file_signature, read_json
from metrics.io.audio import SAMPLE_RATE, load_audio
from metrics.io.bounded import BoundedReadError, load_npz
from metrics.io.files import save_npz_atomic, write_json_atomic
from metrics.io.video import VideoReader, write_video

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSettings:
    """What the crop of every clip depends on (from ``PrepareOptions``)."""

    size: int
    margin: float
    face_confidence: float
    keypoint_threshold: float
    masks: str | None = None
    keypoints: str | None = None
    dwpose_detector: str | None = None
    dwpose_pose: str | None = None
    max_person_jump: float | None = continuity.DEFAULT_MAX_JUMP   # None: no continuity check


@dataclass(frozen=True)
class CropJob:
    """One clip to crop: its measurement entry and its source's frame size and rate."""

    clip: str
    entry: dict[str, Any]
    width: int
    height: int
    fps: float
    workspace: Workspace
    clips_dir: Path
    settings: CropSettings


def crop_clip(job: CropJob) -> dict[str, Any] | None:
    """Crop the candidate clip to the output size, once (redone when its inputs change).

    Returns the crop record (``box``, ``person_box_source``, ``num_frames``, ``keypoints``...) or
    None when no person was found. Bad mask or keypoint files raise ``ValueError``; a person who
    jumps between consecutive frames of the keypoints or masks raises
    ``continuity.PersonJumpError`` (a ``ValueError`` naming the clip and the frame).
    """
    s = job.settings
    record_path = job.workspace.root / "crops" / f"{job.clip}.json"
    video_out = job.clips_dir / f"{job.clip}.mp4"
    person, source_label, keypoints, jumps = person_box(job)
    if person is None:
        return None
    if jumps:
        raise continuity.PersonJumpError(job.clip, jumps)
    box = cropping.square_crop_box(person, job.width, job.height, s.margin)
    record = {"box": box.to_list(), "person_box_source": source_label, "size": s.size,
              "candidate": file_signature(job.workspace.candidate_video(job.clip)),
              "keypoints": keypoints is not None, "audio": True}
    previous = read_json(record_path)
    if previous is not None and video_out.is_file() and {k: previous.get(k) for k in record} == record:
        return previous
    count = 0
    with VideoReader(job.workspace.candidate_video(job.clip)) as video:
        def frames():
            nonlocal count
            for frame in video:
                count += 1
                yield cropping.crop_frame(frame, box, s.size)

        # the clip's own 16 kHz wav (cut at its first and last frame's times) muxed in, in sync
        audio = load_audio(job.workspace.candidate_audio(job.clip), SAMPLE_RATE)
        write_video(video_out, frames(), job.fps, audio=audio, sample_rate=SAMPLE_RATE)
    if keypoints is not None:
        save_npz_atomic(job.clips_dir / f"{job.clip}.keypoints.npz",
                        keypoints=cropping.crop_keypoints(keypoints[:count], box, s.size))
    record["num_frames"] = count
    write_json_atomic(record_path, record)
    return record


def person_box(job: CropJob) -> tuple[cropping.Box | None, str, np.ndarray | None, list[continuity.Discontinuity]]:
    """The person's extent over the clip, which source gave it, the keypoints when there are some,
    and where the person jumps between consecutive frames of the masks or keypoints
    (``bench.data.prepare.continuity``; the sampled faces of the fallback are not consecutive, so
    not checked)."""
    s = job.settings
    num_frames = job.entry["end"] - job.entry["start"]
    checked = s.max_person_jump is not None
    if s.masks is not None:
        masks = mask_frames(Path(s.masks), job.clip, num_frames, (job.height, job.width))
        if masks is not None:
            jumps = continuity.box_jumps(continuity.mask_boxes(masks), s.max_person_jump) if checked else []
            return cropping.person_box_from_masks(masks), "masks", None, jumps
    keypoints, label = None, ""
    if s.keypoints is not None:
        keypoints, label = load_keypoints(Path(s.keypoints) / f"{job.clip}.npz", num_frames), "keypoints"
    if keypoints is None and s.dwpose_detector is not None:
        keypoints, label = dwpose_keypoints(job), "dwpose"
    if keypoints is not None:
        box = cropping.person_box_from_keypoints(keypoints, s.keypoint_threshold)
        if box is not None:
            jumps = continuity.keypoint_jumps(keypoints, s.keypoint_threshold, s.max_person_jump) if checked else []
            return box, label, keypoints, jumps
    faces = [max(frame, key=lambda f: f.confidence) for frame in clip_faces(job.entry) if frame]
    boxes = [cropping.Box(f.x0, f.y0, f.x1, f.y1) for f in faces if f.confidence >= s.face_confidence]
    return cropping.person_box_from_faces(boxes, job.width, job.height), "faces", None, []


_DWPOSE: dict[tuple[str, str], Any] = {}     # one DWPose per process and model pair


def dwpose_keypoints(job: CropJob) -> np.ndarray:
    """DWPose keypoints of the candidate clip, computed once and kept in ``prepare/<identity>/keypoints``."""
    from metrics.pose.dwpose import DWPose

    path = job.workspace.root / "keypoints" / f"{job.clip}.npz"
    if path.is_file():
        try:
            return load_npz(path, ("keypoints",))["keypoints"]
        except BoundedReadError as error:     # a damaged file of our own: compute it again
            logger.warning("%s; computing the keypoints again", error)
    key = (job.settings.dwpose_detector, job.settings.dwpose_pose)
    if key not in _DWPOSE:
        _DWPOSE[key] = DWPose(*key)
    with VideoReader(job.workspace.candidate_video(job.clip)) as video:
        keypoints = np.concatenate([_DWPOSE[key](chunk) for chunk in video.iter_chunks(16)])
    save_npz_atomic(path, keypoints=keypoints.astype(np.float32))
    return keypoints


def load_keypoints(path: Path, num_frames: int) -> np.ndarray | None:
    """A clip's keypoints file ``keypoints`` (F, 133, 3) in the candidate clip's pixels, or None if absent."""
    if not path.is_file():
        return None
    try:      # a refused or damaged npz raises BoundedReadError, a ValueError naming it
        keypoints = np.asarray(load_npz(path, ("keypoints",))["keypoints"], dtype=np.float32)
    except OSError as error:
        raise ValueError(f"{path}: cannot read 'keypoints': {error}") from None
    if keypoints.ndim != 3 or keypoints.shape[1:] != (133, 3) or len(keypoints) != num_frames:
        raise ValueError(f"{path}: keypoints must be ({num_frames}, 133, 3), got {keypoints.shape}")
    return keypoints


def mask_frames(folder: Path, clip: str, num_frames: int,
                size: tuple[int, int] | None = None) -> list[np.ndarray] | None:
    """The clip's person masks, one (H, W) array per frame, from ``<clip>.npz`` (``masks``) or a
    ``<clip>.mp4`` mask video (pixels brighter than half are the person); None if there is none.

    With ``size`` (the candidate's (H, W)), an npz may hold at most num_frames x H x W x 8 bytes
    (masks of the clip's size in any dtype up to float64), else the default 2 GiB of ``load_npz``, and
    masks of another (H, W) are refused (ValueError naming the file and both sizes; a mask video from
    its header, before decoding).
    """
    npz, video = folder / f"{clip}.npz", folder / f"{clip}.mp4"
    if npz.is_file():
        limit = {} if size is None else {"max_bytes": num_frames * size[0] * size[1] * 8}
        try:
            masks = np.asarray(load_npz(npz, ("masks",), **limit)["masks"])
        except OSError as error:
            raise ValueError(f"{npz}: cannot read 'masks': {error}") from None
        if masks.ndim != 3 or len(masks) != num_frames:
            raise ValueError(f"{npz}: masks must be ({num_frames}, H, W), got {masks.shape}")
        _check_mask_size(npz, clip, masks.shape[1:], size)
        return list(masks)
    if video.is_file():
        with VideoReader(video) as reader:
            if len(reader) != num_frames:
                raise ValueError(f"{video}: {len(reader)} mask frames, the clip has {num_frames}")
            _check_mask_size(video, clip, (reader.info.height, reader.info.width), size)
            return [frame.mean(axis=2) > 127 for frame in reader]
    return None


def _check_mask_size(path: Path, clip: str, found: tuple[int, ...], size: tuple[int, int] | None) -> None:
    """The masks' (H, W) is the candidate's: a box found in masks of another size would crop the wrong
    place (and a mask video of large frames would be decoded for nothing)."""
    if size is not None and tuple(found) != tuple(size):
        raise ValueError(f"{path}: masks of {found[1]}x{found[0]} pixels, the candidate clip {clip} is "
                         f"{size[1]}x{size[0]}: give masks of the candidate's frames")
