"""FGD: Fréchet distance between real and generated gestures in a skeleton autoencoder's latent space.

Each clip's keypoints become normalised skeleton windows (``metrics.skeleton``), the autoencoder
(``metrics.skeleton_ae``) encodes every window, and the latent features' statistics are
accumulated per clip, so the value and its bootstrap interval come from the same sufficient
statistics. ``FGD`` is the accumulating class; ``metrics.evaluate.evaluate`` scores two folders.
"""

from __future__ import annotations

import numpy as np

from metrics.protocol import Protocol
from metrics.skeleton import skeleton_sequence, windows
from metrics.skeleton_ae import SkeletonAutoencoder
from metrics.stats import FrechetMetric, GaussianStats


def skeleton_windows(keypoints: np.ndarray, fps: float, protocol: Protocol, source: str = "keypoints"
                     ) -> tuple[np.ndarray, float]:
    """Normalised skeleton windows (n, window, points, 2) of one clip and its visible-point share."""
    sequence, visible = skeleton_sequence(keypoints, fps, protocol.skeleton_points, protocol.visibility_threshold,
                                          protocol.fps, source)
    return windows(sequence, protocol.window, protocol.stride), visible


class FGD(FrechetMetric):
    """Accumulates latent statistics per clip (``update``) and computes FGD (``compute``, ``interval``)."""

    name = "FGD"
    unit = "skeleton windows"

    def __init__(self, autoencoder: SkeletonAutoencoder, protocol: Protocol | None = None):
        super().__init__(protocol or Protocol())
        self.autoencoder = autoencoder

    def features(self, keypoints: np.ndarray, fps: float, source: str = "keypoints") -> np.ndarray:
        clip_windows, _ = skeleton_windows(keypoints, fps, self.protocol, source)
        if len(clip_windows) == 0:
            raise ValueError(f"{source}: shorter than one {self.protocol.window}-frame window at "
                             f"{self.protocol.fps:g} fps")
        return self.autoencoder.features(clip_windows)

    def update_features(self, features: np.ndarray, real: bool) -> None:
        self.parts[real].append(GaussianStats(features.shape[1]).update(features))

    def update(self, keypoints: np.ndarray, fps: float, real: bool, source: str = "keypoints") -> None:
        """Add one clip's keypoints (F, 133, 3) at ``fps``, to the real or the generated side."""
        self.update_features(self.features(keypoints, fps, source), real)

