"""FVD: Fréchet distance between I3D features of real and generated video clips.

Every FVD field of the protocol is read here or by the code it names:

- ``fvd_clips`` and ``fvd_frames`` (here): ``"non-overlapping"`` takes every non-overlapping
  ``fvd_frames``-frame clip of every video (frames [0, 16), [16, 32), ...; a remainder shorter
  than a clip is not used), ``"first"`` only the clip from frame 0 of each video;
- ``fvd_resize`` and ``fvd_resolution`` (``metrics.i3d``, through ``I3DFeatures.with_input``): how
  frames reach the network's 224 x 224 (stretched, shorter side + centre crop, or inside
  StyleGAN-V's archive); ``fvd_value_range`` has one supported value, ``x / 127.5 - 1`` from
  uint8, applied by ``metrics.i3d.preprocess`` (the protocol refuses others);
- ``fvd_covariance`` (``metrics.stats.FrechetMetric.compute``): /(N - 1) or /N.

The feature is the Inception-v1 I3D's 400-d pre-softmax logits. Videos are read in chunks, and
features go into running sums per video (``metrics.stats``): memory does not grow with the number
of videos.

With the published I3D weights (``--i3d PATH``) the number is FVD. Without them (tests, the toy
benchmark) the network is a seeded, untrained I3D and the number is reported as **FVD***: it
measures a distance in a random network's feature space, is comparable only with other FVD*
numbers of the same seed, and must never be put next to published FVDs.

An extractor without ``with_input`` (a test stand-in with ``feature_id``, ``is_pretrained`` and
``__call__(videos)``) gets the raw uint8 clips and does its own preprocessing; ``fvd_resize`` and
``fvd_resolution`` do not reach it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from metrics.io.video import VideoReader, chunk_frames
from metrics.protocol import Protocol
from metrics.stats import FrechetMetric, GaussianStats


class FVD(FrechetMetric):
    """Accumulates I3D statistics per video (``update``) and computes FVD (``compute``, ``interval``).

    ``i3d`` is a :class:`metrics.i3d.I3DFeatures` (switched here to the protocol's ``fvd_resize``
    and ``fvd_resolution``; ValueError naming ``fvd_resize`` when the network cannot take it) or a
    stand-in callable. The covariance divisor is the protocol's ``fvd_covariance``.
    """

    def __init__(self, i3d, protocol: Protocol | None = None):
        super().__init__(protocol or Protocol())
        with_input = getattr(i3d, "with_input", None)
        if with_input is not None:
            i3d = with_input(resize=self.protocol.fvd_resize, size=self.protocol.fvd_resolution)
        self.i3d = i3d

    @property
    def unit(self) -> str:
        return f"{self.protocol.fvd_frames}-frame clips"

    @property
    def covariance_estimator(self) -> str:
        return self.protocol.fvd_covariance

    @property
    def name(self) -> str:
        return "FVD" if self.i3d.is_pretrained else "FVD*"

    def video_statistics(self, chunks: Iterable[np.ndarray], source: str = "video") -> GaussianStats:
        """Statistics of one video given as chunks of frames (n, H, W, 3) uint8, in order.

        The clips are those ``fvd_clips`` names (every non-overlapping ``fvd_frames``-frame clip,
        or the first one only, after which the remaining chunks are not read). They reach the
        network in batches of its ``batch_size`` clips (8 without one), fewer where the frames are
        large: a batch holds at most ``metrics.io.video.CHUNK_BUDGET`` bytes of uint8 frames (or one
        clip), since the frames are resized only inside the network (8 clips of 16 frames up to
        0.7 Mpx; above, a clip's features can differ by float rounding, about 1e-6 relative on a
        CPU, from those of a batch of 8). Raises ValueError naming
        ``source`` when the video is shorter than one clip.
        """
        length, most = self.protocol.fvd_frames, getattr(self.i3d, "batch_size", 8)
        wanted = 1 if self.protocol.fvd_clips == "first" else None
        stats, pending, clips, taken, batch_size = None, [], [], 0, most
        for chunk in chunks:
            pending.extend(chunk)
            while len(pending) >= length and taken != wanted:
                clips.append(np.stack(pending[:length]))
                del pending[:length]
                taken += 1
                if len(clips) == 1:     # clips per batch bounded in bytes, as decoding chunks are
                    batch_size = chunk_frames(clips[0].nbytes, most)
                if len(clips) >= batch_size:
                    stats = self._add(stats, clips)
                    clips = []
            if taken == wanted:
                break
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

