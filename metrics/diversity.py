"""Diversity of generated gestures.

``latent`` (the seed paper's definition, the default): the average Euclidean distance between the
skeleton autoencoder's latent features of all pairs of generated windows (pooled over clips; at
most ``diversity_max_windows`` windows, a seeded subset beyond that), i.e. mean ||f_i - f_j||_2
over i < j, computed WITHIN each identity and averaged over the identities (protocol field
``diversity_pairs="within_identity"``, the default since protocol 1.1): pairs across speakers would
measure how different the speakers look, and a method that merely copies each reference image
would score high. ``diversity_pairs="all"`` pools every pair (protocol 1.0). ``l1div`` (EMAGE): per clip, the mean over frames and coordinates of |x - mean_t x| of
the normalised skeleton, averaged over clips.
"""

from __future__ import annotations


import numpy as np

from metrics.bootstrap import bootstrap_interval
from metrics.protocol import Protocol


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs of rows (n >= 2)."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors, got {len(x)}")
    squared = np.sum(x ** 2, axis=1)
    gram = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    distances = np.sqrt(np.clip(gram, 0.0, None))
    upper = np.triu_indices(len(x), k=1)
    return float(distances[upper].mean())


def l1_diversity(sequence: np.ndarray) -> float:
    """EMAGE's L1div of one clip: mean |x - mean over frames of x| over frames, points, axes."""
    return float(np.mean(np.abs(sequence - sequence.mean(axis=0, keepdims=True))))


class Diversity:
    """Accumulates generated clips' latent features (``update``) and computes the diversity."""

    name = "Diversity"
    higher_is_better = True

    def __init__(self, protocol: Protocol | None = None, kind: str = "latent"):
        if kind not in ("latent", "l1div"):
            raise ValueError(f"kind must be 'latent' or 'l1div', got {kind!r}")
        self.protocol = protocol or Protocol()
        self.kind = kind
        self.clips: list[np.ndarray] = []     # latent: (windows, latent) per clip; l1div: (1,) per clip
        self.groups: list[str] = []           # the identity of each clip

    def update(self, clip_features: np.ndarray, group: str = "") -> None:
        """Add one generated clip (of identity ``group``): its window features (latent), or its
        normalised sequence (l1div)."""
        self.groups.append(group)
        if self.kind == "latent":
            self.clips.append(np.asarray(clip_features, dtype=np.float64))
        else:
            self.clips.append(np.array([l1_diversity(clip_features)]))

    def _value(self, index) -> float:
        chosen = [self.clips[i] for i in index]
        if self.kind == "l1div":
            return float(np.mean([c[0] for c in chosen]))
        if self.protocol.diversity_pairs == "all":
            return self._pooled(chosen)
        groups: dict[str, list[np.ndarray]] = {}
        for i in index:
            groups.setdefault(self.groups[i], []).append(self.clips[i])
        values = [self._pooled(parts) for parts in groups.values() if sum(len(p) for p in parts) >= 2]
        if not values:
            raise ValueError("Diversity needs at least 2 windows of one identity")
        return float(np.mean(values))

    def _pooled(self, parts: list[np.ndarray]) -> float:
        pooled = np.concatenate(parts)
        limit = self.protocol.diversity_max_windows
        if len(pooled) > limit:
            rng = np.random.default_rng(self.protocol.bootstrap_seed)
            pooled = pooled[np.sort(rng.choice(len(pooled), limit, replace=False))]
        return mean_pairwise_distance(pooled)

    def compute(self) -> float:
        if not self.clips:
            raise ValueError("Diversity needs generated clips, got none")
        return self._value(range(len(self.clips)))

    def interval(self) -> tuple[float, float]:
        return bootstrap_interval(self._value, (len(self.clips),), self.protocol.bootstrap_samples,
                                  self.protocol.bootstrap_seed, self.protocol.confidence)

