"""What every benchmarked method is: something that turns (reference image, audio) into a video.

A method is prepared once per run (trained on the dataset's train split, or loaded) and then asked
for one video per test clip. Internal methods return frames and the runner writes them (with the
clip's audio muxed in, atomically); external methods write their own file.

The contract of ``generate``: ``clip.num_frames`` RGB uint8 frames (F, H, W, 3) at ``clip.fps``,
made from ``clip.reference_frame()`` (the first frame of the real test video) and ``clip.audio``.
Frames of another size are resized by the runner to the real clip's size (bilinear), and the run
records that it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TestClip:
    """One test clip of the dataset: the inputs a method gets and the real video it is compared with."""

    __test__ = False                  # not a pytest test class, despite its name

    identity: str
    clip_id: str
    video: Path                       # the real test video
    audio: Path                       # its speech (wav)
    fps: float
    num_frames: int
    width: int
    height: int
    keypoints: Path | None = None     # the dataset's keypoints npz (F, 133, 3), when it has one

    @property
    def label(self) -> str:
        return f"{self.identity}/{self.clip_id}"

    def reference_frame(self) -> np.ndarray:
        """The first frame of the real test video, (H, W, 3) uint8: every method's reference image."""
        from metrics.video import VideoReader

        with VideoReader(self.video) as reader:
            return reader.read(0, 1)[0]

    def load_audio(self, sample_rate: int = 16000) -> np.ndarray:
        """The clip's speech as float32 mono at ``sample_rate``."""
        from metrics.audio import load_audio

        return load_audio(self.audio, sample_rate)

    def reference_keypoints(self, extractor=None) -> np.ndarray:
        """COCO-WholeBody keypoints (133, 3) of the reference frame: the dataset's, else ``extractor``'s."""
        if self.keypoints is not None:
            with np.load(self.keypoints, allow_pickle=False) as npz:
                return npz["keypoints"][0].astype(np.float32)
        if extractor is None:
            raise ValueError(f"{self.label}: the dataset has no keypoints for this clip and no pose "
                             "extractor was given")
        return np.asarray(extractor(self.reference_frame()[None]), dtype=np.float32)[0]


@dataclass
class BenchContext:
    """What a method may use while it prepares: the data, its own folder, the device, its options."""

    data_root: Path                   # the dataset folder (manifest.jsonl)
    work_dir: Path                    # this method's folder for trained models and caches (resumable)
    device: str = "cpu"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)   # this method's section of the bench config
    identities: tuple[str, ...] | None = None                # restrict training to these speakers
    test_clips: tuple[TestClip, ...] = ()                    # every test clip of the run
    progress: bool = True
    pose_extractor: Any = None        # the run's pose extractor (for datasets without keypoints)
    shared_vae: Callable[[], Path] | None = None   # trains (once per run) or returns the run's tiny VAE
    log: Callable[[str], None] = print

    def dataset(self):
        from imac.data.manifest import Dataset

        return Dataset.open(self.data_root, level="files")


class Method:
    """Base class. ``name`` is the registry key, ``label`` the row name in tables."""

    name: str = ""
    label: str = ""
    kind: str = "model"               # "model" | "control" | "external"

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        """Train or load what the method needs (resumable); returns facts for the report."""
        return {}

    def generate(self, clip: TestClip, seed: int) -> np.ndarray:
        """The generated frames (F, H, W, 3) uint8 for one test clip (internal methods implement this)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither generate() nor write()")

    def write(self, clip: TestClip, out: Path, seed: int) -> dict[str, Any] | None:
        """Write the video of one test clip to ``out`` (atomically). Internal methods leave this to
        the runner (which calls ``generate``); external methods that write files override it and set
        ``writes_files``."""
        raise NotImplementedError(f"{type(self).__name__} sets writes_files but does not implement write()")

    writes_files: bool = False        # True when the method overrides ``write``
