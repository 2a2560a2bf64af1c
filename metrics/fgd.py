"""FGD: Fréchet distance between real and generated gestures in a skeleton autoencoder's latent space.

Each clip's keypoints become normalised skeleton windows (``metrics.skeleton``), the autoencoder
(``metrics.skeleton_ae``) encodes every window, and the latent features' statistics are
accumulated per clip, so the value and its bootstrap interval come from the same sufficient
statistics. ``FGD`` is the accumulating class; ``fgd`` the one-call function on two folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metrics.bootstrap import bootstrap_interval
from metrics.protocol import Protocol
from metrics.skeleton import skeleton_sequence, windows
from metrics.skeleton_ae import SkeletonAutoencoder
from metrics.stats import GaussianStats, frechet_from_parts


def skeleton_windows(keypoints: np.ndarray, fps: float, protocol: Protocol, source: str = "keypoints"
                     ) -> tuple[np.ndarray, float]:
    """Normalised skeleton windows (n, window, points, 2) of one clip and its visible-point share."""
    sequence, visible = skeleton_sequence(keypoints, fps, protocol.skeleton_points, protocol.visibility_threshold,
                                          protocol.fps, source)
    return windows(sequence, protocol.window, protocol.stride), visible


class FGD:
    """Accumulates latent statistics per clip (``update``) and computes FGD (``compute``)."""

    name = "FGD"
    higher_is_better = False

    def __init__(self, autoencoder: SkeletonAutoencoder, protocol: Protocol | None = None):
        self.autoencoder = autoencoder
        self.protocol = protocol or Protocol()
        self.parts: dict[bool, list[GaussianStats]] = {True: [], False: []}

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

    def compute(self) -> float:
        self._check()
        return frechet_from_parts(self.parts[True], self.parts[False], self.protocol.covariance)

    def interval(self) -> tuple[float, float]:
        self._check()
        real, fake = self.parts[True], self.parts[False]
        return bootstrap_interval(
            lambda r, f: frechet_from_parts(real, fake, self.protocol.covariance, r, f),
            (len(real), len(fake)), self.protocol.bootstrap_samples, self.protocol.bootstrap_seed,
            self.protocol.confidence)

    def _check(self) -> None:
        for real, side in ((True, "real"), (False, "generated")):
            if sum(p.count for p in self.parts[real]) < 2:
                raise ValueError(f"FGD needs at least 2 {side} windows, got {sum(p.count for p in self.parts[real])}")


def fgd(real_dir: str | Path, fake_dir: str | Path, autoencoder: str | Path, **options) -> dict:
    """FGD of two folders (see ``metrics.evaluate.evaluate`` for the options)."""
    from metrics.evaluate import evaluate

    return evaluate(real_dir, fake_dir, metrics=("fgd",), autoencoder=autoencoder, **options)
