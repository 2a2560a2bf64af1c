"""FVD: Fréchet distance between I3D features of real and generated video clips.

Protocol: every non-overlapping ``fvd_frames``-frame clip of every video (frames [0, 16),
[16, 32), ...; a remainder shorter than a clip is not used), each resized to 224 x 224 (bilinear)
and mapped from [0, 255] to [-1, 1], through the Inception-v1 I3D of Kinetics-400; the feature is
its 400-d pre-softmax logits. Videos are read in chunks, and features go into running sums per
video (``metrics.stats``): memory does not grow with the number of videos.

With the published I3D weights (``--i3d PATH``) the number is FVD. Without them (tests, the toy
benchmark) the network is a seeded, untrained I3D and the number is reported as **FVD***: it
measures a distance in a random network's feature space, is comparable only with other FVD*
numbers of the same seed, and must never be put next to published FVDs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from metrics.io.video import VideoReader
from metrics.protocol import Protocol
from metrics.stats import FrechetMetric, GaussianStats


class FVD(FrechetMetric):
    """Accumulates I3D statistics per video (``update``) and computes FVD (``compute``, ``interval``)."""

    unit = "16-frame clips"

    def __init__(self, i3d, protocol: Protocol | None = None):
        super().__init__(protocol or Protocol())
        self.i3d = i3d

    @property
    def name(self) -> str:
        return "FVD" if self.i3d.is_pretrained else "FVD*"

    def video_statistics(self, chunks: Iterable[np.ndarray], source: str = "video") -> GaussianStats:
        """Statistics of one video given as chunks of frames (n, H, W, 3) uint8, in order."""
        length, batch_size = self.protocol.fvd_frames, getattr(self.i3d, "batch_size", 8)
        stats, pending, clips = None, [], []
        for chunk in chunks:
            pending.extend(chunk)
            while len(pending) >= length:
                clips.append(np.stack(pending[:length]))
                del pending[:length]
                if len(clips) == batch_size:
                    stats = self._add(stats, clips)
                    clips = []
        if clips:
            stats = self._add(stats, clips)
        if stats is None:
            raise ValueError(f"{source}: shorter than one {length}-frame FVD clip")
        return stats

    def _add(self, stats: GaussianStats | None, clips: list[np.ndarray]) -> GaussianStats:
        features = self.i3d(np.stack(clips))
        stats = stats or GaussianStats(features.shape[1])
        return stats.update(features)

    def update(self, videos: np.ndarray, real: bool) -> None:
        """Add videos (N, T, H, W, 3) uint8 to the real or the generated side."""
        for video in np.asarray(videos):
            self.parts[real].append(self.video_statistics([video]))

    def update_file(self, path: str | Path, real: bool, chunk_frames: int = 64) -> None:
        """Add one video file, decoded in chunks."""
        with VideoReader(path) as reader:
            self.parts[real].append(self.video_statistics(reader.iter_chunks(chunk_frames), str(path)))

