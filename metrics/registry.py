"""Every metric of the suite in one table, and the hook a new per-clip metric plugs into.

``REGISTRY`` holds one ``MetricSpec`` per metric id: its display label, its better direction, which
protocol presets set it, whether it needs the real side, whether the real videos get their own
value (the ``gt`` row), whether its interval pairs generated clip i with real clip i, whether it
is in the default selection, and, for a metric computed clip by clip through the hook below, where
its implementation lives (``"module:Class"``, imported only when the metric is selected). Ids,
labels and directions everywhere (``metrics.results``, ``metrics.evaluate``, ``bench``) come from
here; nothing else lists metric ids.

The hook (``ClipMetric``): how a metric plugs in
=================================================

A metric that is computed per clip and then reduced over clips (HKC, HKV, the chunk joins; lip
sync Sync-C/Sync-D; FID on frames, PSNR, SSIM, LPIPS; CSIM) is a subclass of ``ClipMetric`` in
its own module, plus one entry in ``REGISTRY`` naming it. Its constants are fields of
``metrics.protocol.Protocol`` (so they are in every result and in the digest) and the class READS
them from ``self.protocol``. The evaluator (``metrics.evaluate.Evaluator``) does the rest: it
decodes each video once, builds the ``ClipInputs`` the metric asks for (``needs``), calls
``clip(inputs)`` once per video (every clip: the real ones too, for the ``gt`` and noise-floor rows
and two-sided metrics) and caches what it returns per video content (``metrics.io.cache``,
keyed by the metric id, ``weights_id``, the protocol's version and digest, and the content of every
other file the inputs came from), reduces the clips of each scope with ``reduce(real, fake)`` to a
value, an interval over clips and paired differences between methods, and writes the provenance
card from ``describe()``.

Contract of a ``ClipMetric`` subclass:

``__init__(self, protocol, weights=None, device="cpu")``
    Load what the metric needs once. ``weights``: the local path the user gave for the metric's
    ``MetricSpec.weights`` option (None when not given). Without weights the metric either raises
    ``MissingWeights`` (the evaluator then skips it with the message, never failing the run) or
    runs a stand-in and sets ``pretrained = False`` (its label gets a star: ``Sync-C*``; a
    stand-in is never shown under the published label). A network or weight file that fails
    raises ``ValueError`` naming the file (add its error class to ``metrics.evaluate.NETWORK_ERRORS``
    if it must stop the run even with ``on_error="skip"``).
``needs``: a frozenset of the inputs ``clip`` reads, among
    ``"frames"``     uint8 (F, H, W, 3) RGB, the whole video (F frames, H x W pixels): held in memory,
                     F x H x W x 3 bytes; a metric that reads the frames in order needs instead
    ``"frame_chunks"`` a function returning an iterator over the video's frames in order, as uint8
                     chunks (n, H, W, 3) of at most ``metrics.io.video.CHUNK_BUDGET`` bytes (it decodes
                     the file again on each call): memory stays one chunk whatever the video's length;
    ``"audio"``      float32 mono (S,) at ``protocol.audio_sample_rate`` Hz (the clip's wav, else its
                     audio track, else the real clip's speech); set ``MetricSpec.audio=True`` so that
                     the input check compares the audio before anything runs;
    ``"reference"``  uint8 (H, W, 3): the reference image of generation, i.e. frame 0 of the REAL clip
                     (for a real clip, or a generated one without a real clip of the same identity and
                     clip id: its own frame 0);
    ``"truth"``      uint8 (F', H, W, 3): the real clip's frames (for a generated clip; for a real clip
                     its own frames; a generated clip without a real one is an error naming it).
                     F' may differ from F: compare min(F, F') frames; a metric that reads them in
                     step with the clip's own frames needs instead
    ``"truth_chunks"`` a function returning an iterator over the same frames in chunks, each resized
                     as ``truth`` is (it decodes the real clip again on each call; pair them with the
                     clip's own ``frame_chunks`` by ``metrics.frame_quality.paired_chunks``);
    ``"keypoints"``  float (F, 133, 3) COCO-WholeBody x, y (pixels), score (the extractor FGD uses).
    Only what is named is decoded or loaded; a metric needing none of "frames"/"frame_chunks"/"truth"/"truth_chunks"
    costs no decoding once the keypoints are cached.
``computation``: a name shared by metrics computed together (default: the metric id). Metrics with
    the same ``computation`` (Sync-C and Sync-D; PSNR and SSIM; HKC and HKV) subclass one base that
    defines ``needs`` and ``clip``: the evaluator calls ``clip`` once per video for the group and
    caches its output once; each metric's ``reduce`` picks its own values.
``weights_id``: a short id of the network and its weights' hash (None: weight-free), in the cache key
    and the card.
``pretrained``: None (weight-free), True (the published weights), False (a stand-in: label gets "*").
``clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]``
    The clip's values or features as named numpy arrays (scalars as 0-d arrays): what is cached.
    Pure in its inputs. Bad input raises ``ValueError`` naming ``inputs.source`` (the clip is then
    skipped and listed with ``on_error="skip"``, else the run stops naming it).
``reduce(self, real: list[ClipValues], fake: list[ClipValues]) -> SetMetric``
    The set-level value of one scope. ``real`` is [] for a one-sided metric. The returned object
    must offer ``compute() -> float``, ``interval(paired=False) -> (low, high)`` (NaN, NaN when
    none), ``clip_statistic(paired=False) -> metrics.intervals.ClipStatistic`` (what the interval
    and the paired differences between methods resample: clip i of two methods must be the same
    test clip), ``name`` (the label), ``protocol`` and optionally ``warnings`` (list of str).
    ``ClipMean`` is that for a mean of one per-clip scalar (linear: jackknife = Student t);
    ``metrics.stats.FrechetMetric`` (with ``parts = {True: [GaussianStats...], False: [...]}``) for a
    Fréchet distance of per-clip feature statistics (FID on frames: store ``GaussianStats.state_dict()``
    per clip, rebuild with ``GaussianStats.from_state_dict``).
``counts(self, real, fake) -> dict[str, int]``: what a value rests on (default: clips per side).
``describe(self) -> dict``: the provenance card's ``features`` and ``input`` texts (and anything
    else among ``metrics.results.Provenance``'s fields: ``frames_per_clip``, ``covariance``).

Set ``MetricSpec.paired=True`` when the generated clip i answers the real clip i and the statistic
takes one group of pairs (``clip_statistic(paired=True)``); otherwise differences between methods
are still paired (same clips for both methods), the interval is over clips.

``docs/adding-a-metric.md`` walks through adding one, with the tests each metric needs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metrics.intervals import ClipStatistic

INPUTS = ("frames", "frame_chunks", "audio", "reference", "truth", "truth_chunks", "keypoints")


@dataclass(frozen=True)
class MetricSpec:
    """A metric's stable id (the key in results and ``--metrics``), its display label, its better
    direction, and how the evaluator and the report treat it.

    ``preset_group``: the metric name ``metrics.protocol`` presets use for it (presets of one group
    set its fields). ``two_sided``: it compares with the real videos (no value without them).
    ``reference``: the real test videos get their own value (the ``gt`` row), read beside the
    methods'. ``paired``: its interval pairs generated clip i with real clip i when they answer each
    other. ``default``: in the default and CI selections (weight-free or with a labelled stand-in).
    ``implementation``: ``"module:Class"`` of a ``ClipMetric`` (None: built into the evaluator:
    fgd, div, bas, fvd). ``weights``: the name of the option giving its local weight file (None:
    weight-free). ``audio``: it hears the speech (the input check compares the audio of both sides).
    ``unit``: the unit of a value, for the README and cards. ``partner_pixels``: how it reads the real
    clip's pixels beside a generated clip's ("": not at all, or at any size; "resized": the real image
    is resized to the generated frames' size (area interpolation), a conversion the result states;
    "equal": compared pixel to pixel, so a size mismatch is refused unless allowed, and then resized the
    same way).
    """

    id: str
    label: str
    lower_is_better: bool
    name: str
    preset_group: str
    two_sided: bool = False
    reference: bool = False
    paired: bool = False
    default: bool = False
    implementation: str | None = None
    weights: str | None = None
    audio: bool = False
    unit: str = ""
    partner_pixels: str = ""

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"


def _specs(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {spec.id: spec for spec in specs}


# The canonical order of columns. New metrics: add a line here (and their protocol fields).
REGISTRY: dict[str, MetricSpec] = _specs(
    MetricSpec("fgd", "FGD", True, "Fréchet gesture distance", "FGD", two_sided=True, paired=True, default=True),
    MetricSpec("div", "Div", False, "diversity", "Diversity", reference=True, default=True),
    MetricSpec("bas", "BAS", False, "beat alignment score", "BAS", reference=True, default=True, audio=True),
    MetricSpec("fvd", "FVD", True, "Fréchet video distance", "FVD", two_sided=True, paired=True, default=True),
    MetricSpec("hkc", "HKC", False, "hand keypoint confidence", "Hands", reference=True, default=True,
               implementation="metrics.hands:HandKeypointConfidence", unit="detector score in [0, 1]"),
    MetricSpec("hkv", "HKV", False, "hand keypoint variance", "Hands", reference=True, default=True,
               implementation="metrics.hands:HandKeypointVariance", unit="squared shoulder widths"),
    MetricSpec("joins_app", "Join-A", True, "appearance jump at chunk joins", "Chunk joins", reference=True,
               default=True, implementation="metrics.chunk_joins:AppearanceJoins",
               unit="ratio (1.0: seamless)", partner_pixels="resized"),
    MetricSpec("joins_motion", "Join-M", True, "motion jump at chunk joins", "Chunk joins", reference=True,
               default=True, implementation="metrics.chunk_joins:MotionJoins", unit="ratio (1.0: seamless)",
               partner_pixels="resized"),
    MetricSpec("drift", "Drift", True, "drift from the reference image", "Chunk joins", reference=True,
               default=True, implementation="metrics.chunk_joins:ReferenceDrift",
               unit="grey levels (0-255) per second", partner_pixels="resized"),
    # PSNR, SSIM and LPIPS compare a clip with its real clip frame by frame: the real videos have no value of
    # their own (against themselves: 100 dB, 1, 0 by construction), so no GT value and no noise floor.
    # Not in the default selection: they need weights (a metric without its file is left out with a
    # message), or, PSNR and SSIM, the real clip's frames for every generated clip (CI time).
    MetricSpec("sync_c", "Sync-C", False, "lip-sync confidence (LSE-C)", "Lip sync", reference=True,
               implementation="metrics.lipsync:LipSyncConfidence", weights="syncnet", audio=True),
    MetricSpec("sync_d", "Sync-D", True, "lip-sync distance (LSE-D)", "Lip sync", reference=True,
               implementation="metrics.lipsync:LipSyncDistance", weights="syncnet", audio=True),
    MetricSpec("psnr", "PSNR", False, "peak signal-to-noise ratio", "Frame quality", paired=True,
               implementation="metrics.frame_quality:PeakSignalToNoise", unit="dB", partner_pixels="equal"),
    MetricSpec("ssim", "SSIM", False, "structural similarity", "Frame quality", paired=True,
               implementation="metrics.frame_quality:StructuralSimilarity", partner_pixels="equal"),
    MetricSpec("lpips", "LPIPS", True, "learned perceptual image patch similarity", "Frame quality",
               paired=True, implementation="metrics.frame_quality:PerceptualDistance",
               weights="lpips", partner_pixels="equal"),
    MetricSpec("fid", "FID", True, "Fréchet inception distance on frames", "Frame quality", two_sided=True,
               implementation="metrics.frame_quality:FrechetInceptionDistance", weights="inception"),
    MetricSpec("csim", "CSIM", False, "identity cosine similarity (ArcFace)", "Identity", reference=True,
               implementation="metrics.frame_quality:IdentitySimilarity", weights="arcface", partner_pixels="resized"),
)

METRIC_IDS: tuple[str, ...] = tuple(REGISTRY)
DEFAULT_METRICS: tuple[str, ...] = tuple(m for m, spec in REGISTRY.items() if spec.default)
BUILT_IN: tuple[str, ...] = tuple(m for m, spec in REGISTRY.items() if spec.implementation is None)
PRESET_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(spec.preset_group for spec in REGISTRY.values()))


def spec_of(metric: str) -> MetricSpec:
    """The ``MetricSpec`` of a metric id; ``ValueError`` naming the known ids otherwise."""
    if metric not in REGISTRY:
        raise ValueError(f"unknown metric id {metric!r}; ids: {', '.join(METRIC_IDS)}")
    return REGISTRY[metric]


#: Weight names given elsewhere than ``weights``: the option each has, for a refusal to point to.
OWN_OPTIONS = {"i3d": "--i3d (bench config: i3d)", "fvd": "--i3d (bench config: i3d)",
               "fgd": "--fgd-ae (bench config: fgd_autoencoder)", "fgd_ae": "--fgd-ae (bench config: fgd_autoencoder)",
               "div": "--fgd-ae (bench config: fgd_autoencoder)",
               "dwpose": "--dwpose-detector and --dwpose-pose (bench config: dwpose_detector, dwpose_pose)"}


def weight_names() -> list[str]:
    """The names the hook metrics' weight files go by (``MetricSpec.weights``: syncnet, lpips, ...)."""
    return sorted({spec.weights for spec in REGISTRY.values() if spec.weights})


def check_weight_names(weights: Mapping[str, Any] | None) -> None:
    """``ValueError`` naming each name of ``weights`` that no metric reads (a typo, or a network that has its
    own option: ``OWN_OPTIONS``), with the names that are read; a weight file given under a wrong name would
    otherwise be ignored and the metric computed by its stand-in or left out."""
    known = weight_names()
    unknown = [name for name in (weights or {}) if name not in known]
    if unknown:
        said = [f"{name!r}" + (f" (give it with {OWN_OPTIONS[name.lower()]})" if name.lower() in OWN_OPTIONS else "")
                for name in unknown]
        raise ValueError(f"weights: {', '.join(said)}: no metric reads weights under "
                         f"{'that name' if len(unknown) == 1 else 'those names'}; the names are "
                         f"{', '.join(known)} (e.g. --weights syncnet=syncnet_v2.model)")


def normalise_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    """Metric ids, lower-cased and deduplicated, in the given order ("a,b" or a list); an unknown id
    raises ``ValueError`` naming it and the known ones."""
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    metrics = tuple(dict.fromkeys(m.strip().lower() for m in metrics if m.strip()))
    unknown = [m for m in metrics if m not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {', '.join(METRIC_IDS)}")
    return metrics


# -- the hook ----------------------------------------------------------------------------------------


class MissingWeights(ValueError):
    """A metric needs a weight file the user did not give: the evaluator skips it with this message."""


@dataclass(frozen=True)
class ClipInputs:
    """What a ``ClipMetric.clip`` may read about one video (only the fields in its ``needs`` are set).

    Shapes: ``frames`` uint8 (F, H, W, 3) RGB; ``frame_chunks()`` iterates over the same frames in
    uint8 chunks (n, H, W, 3); ``audio`` float32 (S,) mono at ``sample_rate`` Hz;
    ``reference`` uint8 (H, W, 3), frame 0 of the real clip; ``truth`` uint8 (F', H, W, 3), the real
    clip's frames; ``truth_chunks()`` iterates over the same frames in chunks, each resized to this
    video's size as ``truth`` is; ``keypoints`` (F, 133, 3) COCO-WholeBody x, y in pixels and score. ``fps``: frames
    per second of the video. ``hints``: what the caller knows about how the video was made (e.g. a
    method's ``chunk_period`` and ``chunk_offset`` in frames; {} for real videos), part of the cache
    key. ``source``: the video path, for error messages. ``side``: "real" or "fake"."""

    source: str
    side: str
    fps: float
    size: tuple[int, int]                      # (width, height) in pixels
    frames: np.ndarray | None = None
    frame_chunks: Callable[[], Iterator[np.ndarray]] | None = None
    audio: np.ndarray | None = None
    sample_rate: int = 0
    reference: np.ndarray | None = None
    truth: np.ndarray | None = None
    truth_chunks: Callable[[], Iterator[np.ndarray]] | None = None
    keypoints: np.ndarray | None = None
    hints: Mapping[str, Any] = field(default_factory=dict)

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        """The video's frames (``name`` "frames") or the real clip's (``name`` "truth") in order, in chunks:
        from ``frame_chunks`` / ``truth_chunks`` when given, else the whole ``frames`` / ``truth`` array as
        one chunk. ``ValueError`` naming ``source`` when neither is given."""
        streamed = getattr(self, f"{'frame' if name == 'frames' else name}_chunks")
        if streamed is not None:
            return streamed()
        whole = getattr(self, name)
        if whole is None:
            raise ValueError(f"{self.source}: no {name} given (needs names {name} or its chunks)")
        return iter((whole,))


@dataclass(frozen=True)
class ClipValues:
    """One clip's output of ``ClipMetric.clip`` with the clip's identity and id (for groups and pairs)."""

    identity: str
    clip_id: str
    values: Mapping[str, np.ndarray]

    def scalar(self, name: str) -> float:
        """``values[name]`` as a float (a 0-d or 1-element array)."""
        return float(np.asarray(self.values[name]).reshape(-1)[0])


class ClipMetric:
    """Base of a metric computed per clip through the hook (contract: the module docstring)."""

    id: str = ""
    computation: str = ""            # "" = the metric id
    needs: frozenset[str] = frozenset()
    pretrained: bool | None = None
    published: bool | None = None    # False: trained weights, but not the published file (starred too)
    weights_id: str | None = None

    def __init__(self, protocol, weights: str | None = None, device: str = "cpu") -> None:
        self.protocol = protocol
        self.weights = weights
        self.device = device

    @property
    def spec(self) -> MetricSpec:
        return REGISTRY[self.id]

    @property
    def computation_name(self) -> str:
        return self.computation or self.id

    @property
    def label(self) -> str:
        """The display label: the registry's, with a star for a stand-in network (``pretrained`` False) or
        weights that are not the published file (``published`` False): not comparable with published numbers."""
        return self.spec.label + ("*" if self.pretrained is False or self.published is False else "")

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} (metric {self.id!r}) does not implement clip(), which "
                                  "every ClipMetric must (the hook's contract above)")

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        raise NotImplementedError(f"{type(self).__name__} (metric {self.id!r}) does not implement reduce(), which "
                                  "every ClipMetric must (the hook's contract above)")

    def counts(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> dict[str, int]:
        if self.spec.two_sided:
            return {"n_real_clips": len(real), "n_fake_clips": len(fake)}
        return {"n_clips": len(fake)}

    def describe(self) -> dict[str, Any]:
        return {"features": self.spec.name, "input": ""}


def load_clip_metric(metric: str, protocol, weights: Mapping[str, str | None] | None = None,
                     device: str = "cpu") -> ClipMetric:
    """The ``ClipMetric`` of a registered metric id, constructed with the protocol, its weight file
    (``weights[spec.weights]``) and the device. Raises ``MissingWeights`` (skip it, with the
    message) or ``ValueError`` (a bad weight file, naming it)."""
    spec = spec_of(metric)
    if spec.implementation is None:
        raise ValueError(f"{metric} is built into metrics.evaluate, not a ClipMetric")
    module, _, name = spec.implementation.partition(":")
    cls = getattr(importlib.import_module(module), name)
    path = (weights or {}).get(spec.weights) if spec.weights else None
    return cls(protocol, weights=path, device=device)


class ClipMean:
    """The mean over clips of one per-clip scalar, with the jackknife interval of a mean (exactly the
    Student t interval; no second-order part) cut to ``[lower, upper]``, and its clip statistic for
    paired differences. A clip whose value is NaN (nothing to measure, e.g. no hand ever seen) keeps
    its place (so clip i of two methods stays the same test clip in paired differences) but adds
    nothing to any mean; ``dropped`` counts them and ``warnings`` says so.
    """

    higher_is_better = False

    def __init__(self, name: str, protocol, values: Sequence[float], lower: float = -math.inf,
                 upper: float = math.inf) -> None:
        self.name = name
        self.protocol = protocol
        self.values = np.asarray(values, dtype=np.float64).reshape(-1)
        self.dropped = int((~np.isfinite(self.values)).sum())
        self.lower, self.upper = lower, upper

    @property
    def valid(self) -> int:
        """Clips with a value."""
        return int(len(self.values) - self.dropped)

    @property
    def warnings(self) -> list[str]:
        return [f"{self.dropped} clip(s) without a value (nothing to measure) left out"] if self.dropped else []

    def _mean(self, index: np.ndarray) -> float:
        kept = self.values[index]
        kept = kept[np.isfinite(kept)]
        if len(kept) == 0:
            raise ValueError(f"{self.name}: no clip of this subset has a value")
        return float(kept.mean())

    def compute(self) -> float:
        return self._mean(np.arange(len(self.values)))

    def clip_statistic(self, paired: bool = False) -> ClipStatistic:
        """The mean over the clips kept (one group of every clip, NaN ones included and ignored)."""
        return ClipStatistic(self._mean, (len(self.values),), ("clips",), second_order=False, lower=self.lower,
                             upper=self.upper)

    def interval(self, paired: bool = False) -> tuple[float, float]:
        estimate = self.clip_statistic().interval(self.protocol.interval_half_samples, self.protocol.bootstrap_seed,
                                                  self.protocol.confidence)
        return estimate.bounds
