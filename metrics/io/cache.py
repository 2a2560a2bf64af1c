"""A cache of per-video results (keypoints, I3D statistics): one file per video and key.

Pose extraction and I3D features are the slow parts of the metrics, and a benchmark evaluates
the same real videos against many methods. A cached result is keyed by the video's content hash
(a re-generated video is processed again, a moved one is not) and by what produced it: the
extractor or feature network id (which includes a hash of its weights) and the protocol version.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from metrics.io.bounded import BoundedReadError, load_npz
from metrics.io.files import file_in_the_way, file_sha256, save_npz_atomic

logger = logging.getLogger(__name__)

_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content (memoised per path, size and modification time)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path, chunk)
    return _HASHES[key]


def check_cache_root(root: str | Path) -> Path:
    """``root`` as a Path, when it is a folder or can be made one (missing folders are made on the first
    store). ``NotADirectoryError`` naming the file in the way otherwise: ``root`` itself, or a parent."""
    root = Path(root)
    blocker = file_in_the_way(root)
    if blocker is not None:
        raise NotADirectoryError(f"cache folder {root}: " + ("a file, not a folder" if blocker == root else
                                                             f"{blocker} is a file, so it cannot be made"))
    return root


class VideoCache:
    """``load(video)`` -> dict of arrays or None; ``store(video, **arrays)``.

    ``variant``: what else the entry depends on besides the video's content and the cache's key (a
    per-clip metric's other inputs: the hashes of the real clip and the wav it read, the method's
    hints), as text; its hash becomes part of the file name ("" = none)."""

    def __init__(self, root: str | Path, *key: str):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(key))
        self.directory = Path(root) / safe

    def path_for(self, video: str | Path, variant: str = "") -> Path:
        suffix = f"-{hashlib.sha256(variant.encode()).hexdigest()[:16]}" if variant else ""
        return self.directory / f"{file_hash(video)[:32]}{suffix}.npz"

    def load(self, video: str | Path, variant: str = "") -> dict[str, np.ndarray] | None:
        path = self.path_for(video, variant)
        if not path.is_file():
            return None
        try:
            return load_npz(path)
        except BoundedReadError as error:
            # A damaged or foreign cache entry is not the user's data: compute the result again.
            logger.warning("%s; ignoring the cached entry", error)
            return None

    def store(self, video: str | Path, variant: str = "", **arrays: np.ndarray) -> None:
        save_npz_atomic(self.path_for(video, variant), **arrays)
