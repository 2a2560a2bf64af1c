"""Finding the clips to evaluate: a dataset folder (with ``manifest.jsonl``) or a folder of videos.

Generated videos are laid out as ``<dir>/<identity>/<clip_id>.mp4`` (the audio muxed in), the
layout the benchmark writes; real videos are either the same layout or a dataset in the
project's format, of which one split is used. This module reads only what the metrics need from a
manifest; ``imac validate DIR`` checks a dataset fully.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class VideoClip:
    identity: str
    clip_id: str
    video: Path
    audio: Path | None = None       # a wav; None: the video's own audio track
    keypoints: Path | None = None   # ground-truth keypoints npz, when the dataset has them

    @property
    def key(self) -> tuple[str, str]:
        return (self.identity, self.clip_id)

    @property
    def label(self) -> str:
        return f"{self.identity}/{self.clip_id}" if self.identity else self.clip_id


class FolderError(ValueError):
    """A folder that holds no usable clips, or a manifest line that cannot be used."""


def _from_manifest(root: Path, split: str | None) -> list[VideoClip]:
    clips = []
    for number, line in enumerate((root / "manifest.jsonl").read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if split is not None and entry["split"] != split:
                continue
            clips.append(VideoClip(
                str(entry["identity"]), str(entry["clip_id"]), root / entry["video"],
                root / entry["audio"] if entry.get("audio") else None,
                root / entry["keypoints"] if entry.get("keypoints") else None))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise FolderError(f"{root / 'manifest.jsonl'} line {number}: cannot read the clip ({error!r}); "
                              f"check the dataset with `imac validate {root}`") from None
    return clips


def _from_videos(root: Path) -> list[VideoClip]:
    clips = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and not path.name.startswith("."):
            relative = path.relative_to(root)
            identity = relative.parts[0] if len(relative.parts) > 1 else ""
            wav = path.with_suffix(".wav")
            clips.append(VideoClip(identity, path.stem, path, wav if wav.is_file() else None))
    return clips


def find_clips(root: str | Path, split: str | None = "test") -> list[VideoClip]:
    """Clips of a dataset folder (its ``split``; None for all) or of a folder of videos, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FolderError(f"{root}: no such folder")
    clips = _from_manifest(root, split) if (root / "manifest.jsonl").is_file() else _from_videos(root)
    if not clips:
        what = f"no '{split}' clips in its manifest" if (root / "manifest.jsonl").is_file() else "no videos"
        raise FolderError(f"{root}: {what} (expected <identity>/<clip_id>.mp4 or a dataset with manifest.jsonl)")
    keys = [c.key for c in clips]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise FolderError(f"{root}: the same identity/clip appears twice: {duplicates[:5]}")
    return sorted(clips, key=lambda c: c.key)
