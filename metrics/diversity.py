"""Diversity of generated gestures; ``Protocol.diversity_kind`` chooses the definition.

``latent`` (the seed paper's definition, the default): the mean distance between the skeleton
autoencoder's latent features of all pairs of generated windows (pooled over clips; at most
``diversity_max_windows`` windows, a seeded subset beyond that), i.e. mean d(f_i, f_j) over
i < j with d Euclidean (``diversity_distance="l2"``) or city block (``"l1"``).

``l1div`` (EMAGE's L1div, preset ``emage-l1div``): each clip's normalised skeleton sequence
(F, P, 2) flattened to (F, C) rows; per clip the SUM over all rows and columns of
|x - mean over the clip's rows of x|; the value is the sum over clips divided by the total
number of rows (frames). It grows with the number of columns C = 2 P, so it is comparable only
under the same ``skeleton_points``.

Either way ``diversity_pairs="within_identity"`` (the default since protocol 1.1) computes the
value within each identity and averages the identities: pairs across speakers would measure how
different the speakers look, and a method that merely copies each reference image would score
high. ``diversity_pairs="all"`` pools every clip (protocol 1.0; EMAGE).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform

from metrics.intervals import ClipStatistic
from metrics.protocol import Protocol
from metrics.skeleton import skeleton_sequence


def mean_pairwise_distance(features: np.ndarray, distance: str = "l2") -> float:
    """Mean distance over all unordered pairs of rows (n >= 2): ``l2`` Euclidean or ``l1`` city block."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors, got {len(x)}")
    if distance == "l1":
        return float(pdist(x, "cityblock").mean())
    if distance != "l2":
        raise ValueError(f"diversity_distance must be l2 or l1, got {distance!r}")
    squared = np.sum(x ** 2, axis=1)
    gram = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    distances = np.sqrt(np.clip(gram, 0.0, None))
    upper = np.triu_indices(len(x), k=1)
    return float(distances[upper].mean())


def clip_pair_sums(features: np.ndarray, clip_of_row: np.ndarray, clips: int, distance: str = "l2"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Distances between windows summed per pair of clips, for the diversity of any subset of clips.

    ``features`` (W, d): windows; ``clip_of_row`` (W,): the clip (0..clips - 1) of each window.
    Returns ``sums`` (clips, clips): sums[a, b] = sum of d(x_i, x_j) over ORDERED pairs of distinct
    windows i of clip a and j of clip b (the diagonal: pairs inside a clip), and ``counts``, the
    number of such pairs (w_a w_b; w_a (w_a - 1) on the diagonal). ``diversity_of_clips`` then gives
    the mean pairwise distance of the windows of any subset of clips in O(k^2), with no pair of a
    window with itself (what resampling clips with replacement added).
    """
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(clip_of_row)
    if distance == "l1":
        matrix = squareform(pdist(x, "cityblock"))
    elif distance == "l2":
        squared = np.sum(x ** 2, axis=1)    # the Gram route of mean_pairwise_distance
        matrix = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0, None))
        np.fill_diagonal(matrix, 0.0)
    else:
        raise ValueError(f"diversity_distance must be l2 or l1, got {distance!r}")
    onehot = np.zeros((len(x), clips))
    onehot[np.arange(len(x)), labels] = 1.0
    windows = onehot.sum(axis=0)
    return onehot.T @ matrix @ onehot, np.outer(windows, windows) - np.diag(windows)


def diversity_of_clips(sums: np.ndarray, counts: np.ndarray, index: np.ndarray) -> float:
    """Mean pairwise distance of the windows of the clips ``index`` (distinct), from ``clip_pair_sums``.

    Raises ValueError when those clips hold fewer than 2 windows.
    """
    index = np.asarray(index)
    pairs = counts[np.ix_(index, index)].sum()
    if pairs <= 0:
        raise ValueError("Diversity needs at least 2 windows")
    return float(sums[np.ix_(index, index)].sum() / pairs)


def l1_deviation(sequence: np.ndarray) -> tuple[float, int]:
    """(sum over rows and columns of |x - mean over rows of x|, rows) of one clip (F, ...) flattened to (F, C)."""
    x = np.asarray(sequence, dtype=np.float64)
    x = x.reshape(len(x), -1)
    return float(np.abs(x - x.mean(axis=0)).sum()), len(x)


def l1_diversity(sequences) -> float:
    """EMAGE's L1div over clips (each (F_i, ...)): total absolute deviation from each clip's own
    mean, divided by the total number of frames."""
    parts = [l1_deviation(s) for s in sequences]
    rows = sum(r for _, r in parts)
    if rows == 0:
        raise ValueError("L1div needs frames, got none")
    return sum(s for s, _ in parts) / rows


def diversity_sequence(keypoints: np.ndarray, fps: float, protocol: Protocol, source: str = "keypoints") -> np.ndarray:
    """What ``l1div`` takes from a clip: the normalised ``skeleton_points`` (F', P, 2) at ``protocol.fps``."""
    sequence, _ = skeleton_sequence(keypoints, fps, protocol.skeleton_points, protocol.visibility_threshold,
                                    protocol.fps, source)
    return sequence


class Diversity:
    """Accumulates generated clips (``update``) and computes the diversity (``compute``)."""

    name = "Diversity"
    higher_is_better = True

    def __init__(self, protocol: Protocol | None = None):
        self.protocol = protocol or Protocol()
        self.clips: list[np.ndarray] = []     # latent: (windows, latent); l1div: [deviation sum, frames]
        self.groups: list[str] = []           # the identity of each clip

    def update(self, clip: np.ndarray, group: str = "") -> None:
        """Add one generated clip of identity ``group``: its window features (windows, latent) for
        ``latent``, its skeleton sequence (frames, points, dims) (``diversity_sequence``) for ``l1div``."""
        clip = np.asarray(clip, dtype=np.float64)
        if self.protocol.diversity_kind == "latent":
            if clip.ndim != 2:
                raise ValueError(f"diversity_kind='latent' takes window features (windows, latent), got {clip.shape}")
            self.clips.append(clip)
        else:
            if clip.ndim != 3:
                raise ValueError("diversity_kind='l1div' takes the clip's skeleton sequence (frames, points, "
                                 f"dims) from diversity_sequence, got {clip.shape}")
            self.clips.append(np.array(l1_deviation(clip)))
        self.groups.append(group)

    def _value(self, index) -> float:
        chosen = [self.clips[i] for i in index]
        if self.protocol.diversity_pairs == "all":
            return self._pooled(chosen)
        groups: dict[str, list[np.ndarray]] = {}
        for i in index:
            groups.setdefault(self.groups[i], []).append(self.clips[i])
        values = [self._pooled(parts) for parts in groups.values() if self._enough(parts)]
        if not values:
            raise ValueError("Diversity needs at least 2 windows of one identity")
        return float(np.mean(values))

    def _enough(self, parts: list[np.ndarray]) -> bool:
        if self.protocol.diversity_kind == "l1div":
            return sum(p[1] for p in parts) > 0
        return sum(len(p) for p in parts) >= 2

    def _pooled(self, parts: list[np.ndarray]) -> float:
        if self.protocol.diversity_kind == "l1div":
            total = np.sum(parts, axis=0)
            if total[1] == 0:
                raise ValueError("L1div needs frames, got none")
            return float(total[0] / total[1])
        pooled = np.concatenate(parts)
        limit = self.protocol.diversity_max_windows
        if len(pooled) > limit:
            rng = np.random.default_rng(self.protocol.bootstrap_seed)
            pooled = pooled[np.sort(rng.choice(len(pooled), limit, replace=False))]
        return mean_pairwise_distance(pooled, self.protocol.diversity_distance)

    def compute(self) -> float:
        if not self.clips:
            raise ValueError("Diversity needs generated clips, got none")
        return self._value(range(len(self.clips)))

    def interval(self) -> tuple[float, float]:
        """(low, high) confidence interval of ``compute()`` over clips (``metrics.intervals``): the
        clips of each identity are left out / half-sampled within it (the identities are fixed)."""
        estimate = self.clip_statistic().interval(self.protocol.interval_half_samples, self.protocol.bootstrap_seed,
                                                  self.protocol.confidence)
        return estimate.bounds

    def clip_statistic(self) -> ClipStatistic:
        """The diversity as a function of subsets of clips, one group per identity (one group "all"
        with ``diversity_pairs="all"``). ``latent``: from ``clip_pair_sums`` of the windows
        ``compute`` uses (the same seeded subset beyond ``diversity_max_windows``), so no window is
        paired with itself; ``l1div``: the ratio of the kept clips' deviation sums to their frames."""
        if not self.clips:
            raise ValueError("Diversity needs generated clips, got none")
        if self.protocol.diversity_pairs == "all":
            members = {"all": list(range(len(self.clips)))}
        else:
            members = {}
            for i, group in enumerate(self.groups):
                members.setdefault(group, []).append(i)
        values = [self._group_statistic(index) for index in members.values()]

        def diversity(*indices: np.ndarray) -> float:
            kept = [value(index) for value, index in zip(values, indices)]
            kept = [v for v in kept if v is not None]
            if not kept:
                raise ValueError("Diversity needs at least 2 windows of one identity")
            return float(np.mean(kept))

        return ClipStatistic(diversity, tuple(len(m) for m in members.values()), tuple(members),
                             second_order=self.protocol.diversity_kind == "latent", lower=0.0)

    def _group_statistic(self, members: list[int]):
        """value(index) -> the diversity of the clips ``members[index]`` of one group, or None when
        they are too few to have one (such a group is left out of the mean, as in ``compute``)."""
        if self.protocol.diversity_kind == "l1div":
            totals = np.array([self.clips[i] for i in members])
            return lambda index: (float(totals[index, 0].sum() / totals[index, 1].sum())
                                  if totals[index, 1].sum() > 0 else None)
        rows = np.concatenate([np.full(len(self.clips[i]), k) for k, i in enumerate(members)])
        pooled = np.concatenate([self.clips[i] for i in members])
        limit = self.protocol.diversity_max_windows
        if len(pooled) > limit:     # the subset _pooled takes
            keep = np.sort(np.random.default_rng(self.protocol.bootstrap_seed).choice(len(pooled), limit, replace=False))
            pooled, rows = pooled[keep], rows[keep]
        sums, counts = clip_pair_sums(pooled, rows, len(members), self.protocol.diversity_distance)
        return lambda index: (diversity_of_clips(sums, counts, index) if counts[np.ix_(index, index)].sum() > 0
                              else None)

