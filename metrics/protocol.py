"""The evaluation protocol: every constant that changes a metric's number, named and versioned.

A ``Protocol`` is written into every result file and printed next to every number. Two results
are comparable only when their protocol blocks are equal (and, for FGD and Diversity, when the
skeleton autoencoder checkpoint hash is equal; for FVD, the I3D feature id). ``PROTOCOL.md``
beside this file explains each field and where it comes from.

Presets name the published variants where the peers differ (``PRESETS``). ``imac-bench`` is the
default; every other preset belongs to one metric, sets only that metric's fields on top of the
default, and presets of different metrics combine (``get_protocol("videogpt+emage")``). The
protocol's name lists the presets in it, and ``preset_of(protocol, metric)`` says which one
produced a metric's number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from metrics.io import SAMPLE_RATE
from metrics.pose import wholebody as wb

PROTOCOL_VERSION = "imac-bench-metrics-1.1"


def _default_skeleton_points() -> tuple[int, ...]:
    body = tuple(wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow",
                                           "right_elbow", "left_wrist", "right_wrist"))
    return body + tuple(wb.LEFT_HAND) + tuple(wb.RIGHT_HAND)


def _default_beat_points() -> tuple[int, ...]:
    return tuple(wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow",
                                          "right_elbow", "left_wrist", "right_wrist"))


@dataclass(frozen=True)
class Protocol:
    """All constants of the metrics. Change one and the protocol's name must change too."""

    name: str = "imac-bench"
    version: str = PROTOCOL_VERSION
    # -- skeletons (FGD, Diversity, BAS) ------------------------------------------------------
    skeleton_points: tuple[int, ...] = field(default_factory=_default_skeleton_points)
    visibility_threshold: float = 0.3     # keypoints below this score are missing
    fps: float = 25.0                     # keypoints are resampled to this rate
    # Normalisation per clip: centre = median over frames of the shoulders' midpoint ("neck"),
    # scale = median shoulder width, so positions are in shoulder widths.
    window: int = 32                      # frames per FGD / Diversity window (1.28 s at 25 fps)
    stride: int = 8                       # frames between window starts
    covariance: str = "unbiased"          # "unbiased" (/(N-1), like np.cov) or "biased" (/N)
    diversity_distance: str = "l2"        # Euclidean distance between latent features
    diversity_max_windows: int = 2000     # all pairs among at most this many windows (seeded subset)
    diversity_pairs: str = "within_identity"   # pairs within each identity, averaged ("all": pooled, 1.0)
    # -- beats (BAS) --------------------------------------------------------------------------
    beat_points: tuple[int, ...] = field(default_factory=_default_beat_points)
    bas_direction: str = "motion_to_audio"
    bas_sigma: float = 0.05               # seconds
    audio_sample_rate: int = SAMPLE_RATE
    onset_hop_length: int = 512           # librosa onset detection at audio_sample_rate
    motion_smoothing: float = 2.0         # Gaussian sigma in frames on the kinetic speed
    motion_beat_prominence: float = 0.1   # shoulder widths / s a speed minimum must dip below its sides
    motion_beat_min_gap: float = 0.2      # seconds between motion beats
    ignore_edges: float = 0.0             # seconds ignored at both ends of a clip (EMAGE: 2 s)
    # -- FVD ----------------------------------------------------------------------------------
    fvd_frames: int = 16                  # frames per I3D clip
    fvd_resolution: int = 224             # frames resized (bilinear) to this square size
    fvd_value_range: str = "[0,255] -> [-1,1]"
    fvd_clips: str = "non-overlapping"    # every non-overlapping clip of every video
    # -- confidence intervals -----------------------------------------------------------------
    bootstrap_samples: int = 200          # clip-level resampling
    bootstrap_seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.bas_direction not in ("motion_to_audio", "audio_to_motion"):
            raise ValueError(f"bas_direction must be motion_to_audio or audio_to_motion, got {self.bas_direction!r}")
        if self.covariance not in ("unbiased", "biased"):
            raise ValueError(f"covariance must be unbiased or biased, got {self.covariance!r}")
        if self.diversity_pairs not in ("within_identity", "all"):
            raise ValueError(f"diversity_pairs must be within_identity or all, got {self.diversity_pairs!r}")
        if self.window < 8 or self.stride < 1:
            raise ValueError("window must be >= 8 frames and stride >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        """A short hash of every field: equal digests, comparable numbers."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.version}, {self.digest})"

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


# Each preset belongs to one metric and sets only that metric's fields, on top of the default
# (``imac-bench``). Presets of different metrics combine: ``videogpt+emage``.
PRESET_METRICS = ("FGD", "Diversity", "BAS", "FVD")


@dataclass(frozen=True)
class Preset:
    """A named published variant of one metric: the fields it sets and the peer it reproduces."""

    metric: str
    fields: dict
    source: str


PRESETS: dict[str, Preset] = {
    "aist": Preset("BAS", {"bas_direction": "motion_to_audio", "bas_sigma": 0.05},
                   "Li et al. 2021 (AIST++): motion beats to the nearest audio beat, sigma 3 frames at 60 fps"),
    "emage": Preset("BAS", {"bas_direction": "audio_to_motion", "bas_sigma": 0.3},
                    "EMAGE / BEAT (PantoMatrix): audio beats to the nearest motion beat, sigma 0.3 s"),
}
DEFAULT_PRESET = "imac-bench"


def split_presets(name: str) -> tuple[str, ...]:
    """The presets named by ``name`` ("imac-bench", "videogpt", "videogpt+emage"), validated.

    Raises ``ValueError`` naming the unknown preset, or the two presets that set the same metric.
    """
    parts = tuple(part.strip() for part in str(name).split("+") if part.strip())
    if not parts:
        raise ValueError("protocol: name a preset (imac-bench or one of "
                         f"{', '.join(sorted(PRESETS))}, combined with '+')")
    if parts[0] == DEFAULT_PRESET:
        parts = parts[1:]
    seen: dict[str, str] = {}
    for part in parts:
        if part not in PRESETS:
            raise ValueError(f"protocol: unknown preset {part!r}; known: "
                             f"{', '.join([DEFAULT_PRESET, *sorted(PRESETS)])} (combine presets of "
                             "different metrics with '+')")
        metric = PRESETS[part].metric
        if metric in seen:
            raise ValueError(f"protocol: presets {seen[metric]!r} and {part!r} both set {metric}; keep one")
        seen[metric] = part
    return parts


def preset_of(protocol: Protocol, metric: str) -> str:
    """The preset that set ``metric``'s fields in ``protocol`` (``imac-bench`` when none did)."""
    for part in protocol.name.split("+"):
        if part in PRESETS and PRESETS[part].metric == metric:
            return part
    return DEFAULT_PRESET


def get_protocol(name: str = DEFAULT_PRESET, **overrides) -> Protocol:
    """The default protocol with the named presets applied ("videogpt+emage"), then ``overrides``.

    The protocol's name lists every preset in it ("imac-bench+videogpt+emage"); with overrides
    it gets a ``+custom`` suffix. Raises ``ValueError`` for an unknown or conflicting preset.
    """
    parts = split_presets(name)
    values: dict = {}
    for part in parts:
        values.update(PRESETS[part].fields)
    protocol = replace(Protocol(), name="+".join((DEFAULT_PRESET, *parts)), **values)
    if overrides:
        protocol = replace(protocol, name=f"{protocol.name}+custom", **overrides)
    return protocol
