"""Frame quality and identity of generated videos: PSNR, SSIM, LPIPS and FID on frames, and CSIM.

What co-speech and audio-driven human video papers since 2024 report beside FGD/Div/BAS/FVD
(EchoMimicV2, CyberHost, Hallo2, StableAvatar...), none with released code. Each function here is
per clip, on the frames a reader gives (``metrics.io.video``); set-level reductions combine the
per-clip results. Conventions (each changes the number; reports state them):

- **Frames**: uint8 RGB ``(F, H, W, 3)``. Reference metrics (PSNR, SSIM, LPIPS) compare frame ``t``
  of the generated clip with frame ``t`` of the ground-truth clip; both must have the same shape
  (a generator whose output size differs must be resized by the caller, which the report states).
  Clips of different lengths are compared over the first ``min(F_gen, F_truth)`` frames.
- **PSNR** (dB): per frame ``10 log10(255^2 / MSE)``, MSE over all pixels and the three RGB
  channels (scikit-image ``peak_signal_noise_ratio`` with ``data_range=255``); a frame identical to
  its ground truth (MSE 0, infinite PSNR) counts as ``PSNR_CAP_DB`` (100 dB) so that means and
  intervals stay finite. Per clip: the mean over frames of the per-frame PSNR (not the PSNR of the
  clip's mean MSE).
- **SSIM**: scikit-image ``structural_similarity`` with ``data_range=255`` on each frame, per-frame
  mean over the SSIM map's valid region (the window inside the frame) and, for RGB, over the three
  channels; per clip the mean over frames. Presets (``SSIM_PRESETS``): ``"gaussian"`` (default:
  Wang et al., IEEE TIP 2004, and their MATLAB ``ssim_index``: 11 x 11 Gaussian window, sigma 1.5,
  population (biased) statistics, K1 = 0.01, K2 = 0.03) and ``"uniform7"`` (scikit-image's
  defaults: 7 x 7 uniform window, sample statistics), each on ``"rgb"`` or ``"grey"`` (luma
  ``0.2125 R + 0.7154 G + 0.0721 B``, scikit-image ``rgb2gray``, scaled to 0..255).
- **LPIPS** (Zhang et al., CVPR 2018): ``metrics.lpips``; per frame, per clip the mean. Lower is
  better.
- **FID on frames**: pool3 features of ``metrics.inception`` on every ``frame_stride``-th frame
  (default 1: every frame), per clip; the set's FID is the Fréchet distance between the pooled
  generated and pooled real frames with the unbiased covariance (``np.cov``, as pytorch-fid), by
  :func:`frechet_distance_of_features` (no 2048 x 2048 matrix while a side has fewer frames) or,
  from ``GaussianStats``, ``metrics.frechet`` (:func:`frame_fid`). Without the published weights
  it is "FID*".
- **CSIM**: cosine similarity of ArcFace embeddings (``metrics.arcface``) between the reference
  image's face and each generated frame's face, as a function of time; per clip the mean over the
  frames where a face was found (frames without one are counted, not scored). A video that copies
  the reference (the ``static`` control) scores the maximum by construction.

Set level: PSNR, SSIM, LPIPS and CSIM are the mean over clips of the per-clip means (each clip
weighs the same, whatever its length).

The evaluator's hook classes at the end (``PeakSignalToNoise`` and ``StructuralSimilarity``, one
cached computation; ``PerceptualDistance``; ``FrechetInceptionDistance``; ``IdentitySimilarity``)
wrap these functions for ``metrics.registry`` and read their constants from the protocol
(``PROTOCOL_DEFAULTS`` until it has the fields). docs/frame-quality.md has the whole account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from metrics.frechet import frechet_distance, frechet_distance_of_centred
from metrics.intervals import ClipStatistic
from metrics.registry import (
    ClipInputs,
    ClipMean,
    ClipMetric,
    ClipValues,
    MissingWeights,
)
from metrics.stats import FrechetMetric, GaussianStats, covariance_divisor

__all__ = [
    "PSNR_CAP_DB",
    "SSIM_PRESETS",
    "ClipIdentity",
    "SSIMSettings",
    "clip_fid_stats",
    "csim_clip",
    "frame_fid",
    "frechet_distance_of_features",
    "lpips_clip",
    "mean_over_clips",
    "psnr_clip",
    "psnr_frames",
    "ssim_clip",
    "ssim_frames",
]

PSNR_CAP_DB = 100.0
DATA_RANGE = 255.0


@dataclass(frozen=True)
class SSIMSettings:
    """How SSIM is computed (scikit-image ``structural_similarity`` arguments, see module docstring)."""

    gaussian_weights: bool
    win_size: int | None          # None: the Gaussian's own 11 x 11 (sigma 1.5, truncate 3.5)
    use_sample_covariance: bool
    colour: str                   # "rgb" (channel_axis, mean over channels) or "grey"

    def describe(self) -> str:
        window = ("11x11 Gaussian window, sigma 1.5, population statistics" if self.gaussian_weights
                  else f"{self.win_size}x{self.win_size} uniform window, "
                       f"{'sample' if self.use_sample_covariance else 'population'} statistics")
        return (f"SSIM (scikit-image structural_similarity), data_range 255, {window}, K1 0.01, K2 0.03, "
                f"{'RGB (mean over channels)' if self.colour == 'rgb' else 'grey (rgb2gray luma)'}, "
                "mean over the valid region of each frame, then over frames")


SSIM_PRESETS: dict[str, SSIMSettings] = {
    "gaussian": SSIMSettings(gaussian_weights=True, win_size=None, use_sample_covariance=False, colour="rgb"),
    "gaussian-grey": SSIMSettings(gaussian_weights=True, win_size=None, use_sample_covariance=False,
                                  colour="grey"),
    "uniform7": SSIMSettings(gaussian_weights=False, win_size=7, use_sample_covariance=True, colour="rgb"),
    "uniform7-grey": SSIMSettings(gaussian_weights=False, win_size=7, use_sample_covariance=True, colour="grey"),
}


def _check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB in [0, 255], got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be (F, H, W, 3) RGB, got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} has no frames")
    return frames


def _paired(frames: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generated and ground-truth frames, checked, cut to the shorter clip."""
    frames, truth = _check_frames(frames, "frames"), _check_frames(truth, "ground-truth frames")
    if frames.shape[1:] != truth.shape[1:]:
        raise ValueError(f"frames {frames.shape[1:3]} and ground-truth frames {truth.shape[1:3]} differ in size: "
                         "reference metrics compare pixel to pixel (resize one side first)")
    count = min(len(frames), len(truth))
    return frames[:count], truth[:count]


def paired_chunks(frames: Iterable[np.ndarray], truth: Iterable[np.ndarray]
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Two frame streams in chunks (``(n, H, W, 3)`` each, of any lengths) as pairs of equal-length
    chunks, frame t with frame t, until the shorter stream ends (``min(F, F_truth)`` frames, as
    :func:`_paired`); only one chunk of each is held. Both iterators are closed at the end."""
    frames, truth = iter(frames), iter(truth)
    a = b = None
    try:
        while True:
            if a is None or len(a) == 0:
                a = next(frames, None)
            if b is None or len(b) == 0:
                b = next(truth, None)
            if a is None or b is None:
                return
            count = min(len(a), len(b))
            yield a[:count], b[:count]
            a, b = a[count:], b[count:]
    finally:
        for stream in (frames, truth):
            getattr(stream, "close", lambda: None)()


def per_frame_over_chunks(measures: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
                          frames: Iterable[np.ndarray], truth: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Each per-frame measure of paired uint8 frames (name -> ``psnr_frames``, ``ssim_frames``,
    ``lpips_clip``, ...) over two frame streams in chunks (:func:`paired_chunks`), concatenated: what
    each gives on the whole arrays, with one chunk of each stream in memory. ``ValueError`` when either
    stream has no frames."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in measures}
    for a, b in paired_chunks(frames, truth):
        for name, measure in measures.items():
            parts[name].append(measure(a, b))
    if not any(parts.values()):
        raise ValueError("frames or ground-truth frames: no frames")
    return {name: np.concatenate(values) for name, values in parts.items()}


# -- PSNR ------------------------------------------------------------------------------------------


def psnr_frames(frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB, ``(min(F, F_truth),)`` float64, of uint8 RGB ``(F, H, W, 3)`` frames
    against the ground truth; identical frames count :data:`PSNR_CAP_DB`. Raises ``TypeError`` /
    ``ValueError`` for frames that are not uint8 RGB of the same size."""
    from skimage.metrics import peak_signal_noise_ratio

    frames, truth = _paired(frames, truth)
    out = np.empty(len(frames), np.float64)
    for t in range(len(frames)):
        if np.array_equal(frames[t], truth[t]):
            out[t] = PSNR_CAP_DB
        else:
            out[t] = min(PSNR_CAP_DB, peak_signal_noise_ratio(truth[t], frames[t], data_range=DATA_RANGE))
    return out


def psnr_clip(frames: np.ndarray, truth: np.ndarray) -> float:
    """A clip's PSNR (dB): the mean over frames of :func:`psnr_frames`. Higher is better."""
    return float(psnr_frames(frames, truth).mean())


# -- SSIM ------------------------------------------------------------------------------------------


def _grey(frame: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray

    return rgb2gray(frame) * DATA_RANGE     # float64 in 0..255


def ssim_frames(frames: np.ndarray, truth: np.ndarray, preset: str = "gaussian") -> np.ndarray:
    """Per-frame SSIM, ``(min(F, F_truth),)`` float64 in [-1, 1], of uint8 RGB ``(F, H, W, 3)`` frames
    against the ground truth, under an :data:`SSIM_PRESETS` preset (module docstring). Raises
    ``ValueError`` for an unknown preset or frames smaller than the window (11 or 7 pixels)."""
    from skimage.metrics import structural_similarity

    if preset not in SSIM_PRESETS:
        raise ValueError(f"unknown SSIM preset {preset!r}; known: {', '.join(SSIM_PRESETS)}")
    settings = SSIM_PRESETS[preset]
    frames, truth = _paired(frames, truth)
    window = 11 if settings.gaussian_weights else settings.win_size
    if min(frames.shape[1:3]) < window:
        raise ValueError(f"SSIM needs frames of at least {window} x {window} pixels, got {frames.shape[1:3]}")
    kwargs = {"data_range": DATA_RANGE, "gaussian_weights": settings.gaussian_weights,
              "use_sample_covariance": settings.use_sample_covariance}
    if settings.gaussian_weights:
        kwargs["sigma"] = 1.5
    else:
        kwargs["win_size"] = settings.win_size
    out = np.empty(len(frames), np.float64)
    for t in range(len(frames)):
        if settings.colour == "grey":
            out[t] = structural_similarity(_grey(truth[t]), _grey(frames[t]), **kwargs)
        else:
            out[t] = structural_similarity(truth[t].astype(np.float64), frames[t].astype(np.float64),
                                           channel_axis=-1, **kwargs)
    return out


def ssim_clip(frames: np.ndarray, truth: np.ndarray, preset: str = "gaussian") -> float:
    """A clip's SSIM: the mean over frames of :func:`ssim_frames`. Higher is better."""
    return float(ssim_frames(frames, truth, preset).mean())


# -- LPIPS -----------------------------------------------------------------------------------------


def lpips_clip(frames: np.ndarray, truth: np.ndarray, network: Callable[[np.ndarray, np.ndarray], np.ndarray]
               ) -> np.ndarray:
    """Per-frame LPIPS ``(min(F, F_truth),)`` float64 (lower is better) of uint8 RGB frames against the
    ground truth, with ``network`` a :class:`metrics.lpips.LPIPS` (or any callable of two uint8
    ``(N, H, W, 3)`` arrays returning ``(N,)`` distances)."""
    frames, truth = _paired(frames, truth)
    values = np.asarray(network(frames, truth), np.float64)
    if values.shape != (len(frames),):
        raise ValueError(f"the LPIPS network returned shape {values.shape} for {len(frames)} frame pairs")
    return values


# -- FID on frames ---------------------------------------------------------------------------------


def clip_fid_stats(frames: np.ndarray, features: Callable[[np.ndarray], np.ndarray], frame_stride: int = 1,
                   dim: int = 2048) -> GaussianStats:
    """The Inception feature statistics of one clip's frames ``0, s, 2s, ...`` (``s = frame_stride``):
    a mergeable :class:`metrics.stats.GaussianStats` of ``dim`` (2048) dimensions. ``features`` is a
    :class:`metrics.inception.InceptionFeatures` (uint8 ``(N, H, W, 3)`` -> ``(N, dim)``)."""
    frames = _check_frames(frames, "frames")
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    return GaussianStats(dim).update(features(frames[::frame_stride]))


def frame_fid(real: Sequence[GaussianStats], generated: Sequence[GaussianStats]) -> float:
    """FID between the pooled frame statistics of the real and the generated clips (per-clip parts
    from :func:`clip_fid_stats`): Fréchet distance with the unbiased covariance (``n - 1``, as
    pytorch-fid's ``np.cov``). Needs at least two frames on each side; fewer frames than 2048 make
    the covariances singular (handled by ``metrics.frechet``, but the value is then dominated by
    the sample size: report N)."""
    if not real or not generated:
        raise ValueError("FID needs real and generated frames")
    dim = real[0].dim
    pooled_real, pooled_fake = GaussianStats.combine(real, dim), GaussianStats.combine(generated, dim)
    return frechet_distance(pooled_fake.mean, pooled_fake.covariance("unbiased"),
                            pooled_real.mean, pooled_real.covariance("unbiased"))


def frechet_distance_of_features(real: np.ndarray, fake: np.ndarray, covariance: str = "unbiased") -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature rows ``(n1, d)`` and
    ``(n2, d)`` (float64), with the ``unbiased`` (``/(n - 1)``) or ``biased`` (``/n``) covariance.

    Equal to ``metrics.frechet.frechet_distance`` of their means and covariances, computed without
    a d x d matrix when a side has fewer rows than dimensions (FID's 2048 against a few hundred
    frames): from the centred rows, by ``metrics.frechet.frechet_distance_of_centred``. Raises
    ``ValueError`` for fewer than 2 rows a side, different widths, or non-finite values.
    """
    a, b = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n1, d) and (n2, d), got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 feature rows a side, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or inf")
    c1, c2 = covariance_divisor(len(a), covariance), covariance_divisor(len(b), covariance)
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(a.mean(0), (a - a.mean(0)).T @ (a - a.mean(0)) / c1,
                                b.mean(0), (b - b.mean(0)).T @ (b - b.mean(0)) / c2)
    return frechet_distance_of_centred(a.mean(0), a - a.mean(0), c1, b.mean(0), b - b.mean(0), c2)


# -- CSIM ------------------------------------------------------------------------------------------


@dataclass
class ClipIdentity:
    """CSIM of one clip: ``per_frame`` ``(F,)`` cosine similarities to the reference face (NaN where no
    face was found in the frame), ``mean`` over the frames with a face (NaN when none had one),
    ``frames_without_face`` (their count), ``reference_found`` (False: no face in the reference
    image, every value NaN)."""

    per_frame: np.ndarray
    mean: float
    frames_without_face: int
    reference_found: bool = True
    notes: list[str] = field(default_factory=list)

    def over_time(self, bins: int) -> np.ndarray:
        """The per-frame CSIM averaged in ``bins`` equal slices of the clip, ``(bins,)`` (NaN for a
        slice without a face): how identity drifts over time."""
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        edges = np.linspace(0, len(self.per_frame), bins + 1).round().astype(int)
        out = np.full(bins, np.nan)
        for k in range(bins):
            part = self.per_frame[edges[k]:edges[k + 1]]
            part = part[np.isfinite(part)]
            if part.size:
                out[k] = part.mean()
        return out


def csim_clip(frames: np.ndarray, reference: np.ndarray, embedder, frame_stride: int = 1) -> ClipIdentity:
    """CSIM of one clip: cosine similarity between the ArcFace embedding of the ``reference`` image's
    face (uint8 RGB ``(H, W, 3)``) and that of each generated frame's face (``(F, H, W, 3)``;
    every ``frame_stride``-th frame, the others NaN). ``embedder`` is a
    :class:`metrics.arcface.FaceEmbedder` (detects the most confident face with the project's one
    face detector, aligns it to the ArcFace template, embeds it; None when no face). Higher is
    better, at most 1."""
    return csim_chunks((_check_frames(frames, "frames"),), reference, embedder, frame_stride)


def csim_chunks(chunks: Iterable[np.ndarray], reference: np.ndarray, embedder, frame_stride: int = 1) -> ClipIdentity:
    """:func:`csim_clip` of a clip given as consecutive uint8 chunks ``(n, H, W, 3)`` (a decoder's), one
    chunk held at a time; frame ``t`` counts from the clip's first frame, whatever the chunking."""
    reference = np.asarray(reference)
    if reference.dtype != np.uint8 or reference.ndim != 3 or reference.shape[-1] != 3:
        raise ValueError(f"the reference image must be uint8 (H, W, 3) RGB, got {reference.dtype} {reference.shape}")
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    anchor = embedder.embed(reference)
    if anchor is not None:
        anchor = anchor / np.linalg.norm(anchor)
    parts, missing, start = [], 0, 0
    for chunk in chunks:
        chunk = _check_frames(chunk, "frames")
        values = np.full(len(chunk), np.nan)
        for t in range(-start % frame_stride, len(chunk), frame_stride) if anchor is not None else ():
            vector = embedder.embed(chunk[t])
            if vector is None:
                missing += 1
                continue
            values[t] = float(anchor @ (vector / np.linalg.norm(vector)))
        parts.append(values)
        start += len(chunk)
    if not parts:
        raise ValueError("frames has no frames")
    per_frame = np.concatenate(parts)
    if anchor is None:
        return ClipIdentity(per_frame, float("nan"), len(per_frame), reference_found=False,
                            notes=["no face found in the reference image"])
    scored = per_frame[np.isfinite(per_frame)]
    return ClipIdentity(per_frame, float(scored.mean()) if scored.size else float("nan"), missing)


# -- set level -------------------------------------------------------------------------------------


def mean_over_clips(values: Sequence[float]) -> float:
    """The set's value of a per-clip metric: the mean over clips of their finite per-clip values
    (a clip without a value, NaN, is left out; NaN when none has one)."""
    array = np.asarray(values, np.float64)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else float("nan")


# -- the evaluator's hook (metrics.registry.ClipMetric; docs/adding-a-metric.md) -------------------

# The constants these metrics read from the protocol, with the values used while ``Protocol`` has no
# field of that name (the evaluator's owner adds the fields; each value is then in every result).
PROTOCOL_DEFAULTS = {
    "ssim_preset": "gaussian",        # one of SSIM_PRESETS
    "lpips_network": "alex",          # "alex" | "vgg"
    "fid_frame_stride": 1,            # FID on frames: every k-th frame of each video
    "fid_covariance": "unbiased",     # /(N - 1), as pytorch-fid's np.cov
    "csim_frame_stride": 1,           # CSIM: every k-th generated frame
}


def protocol_value(protocol, name: str):
    """``protocol.<name>``, or :data:`PROTOCOL_DEFAULTS` while the protocol has no such field."""
    return getattr(protocol, name, PROTOCOL_DEFAULTS[name])


def _need(inputs, *names: str) -> None:
    for name in names:
        if getattr(inputs, name) is None:
            raise ValueError(f"{inputs.source}: no {name} given to {', '.join(names)}-based frame quality")


def _real_frame_count(inputs: ClipInputs) -> int:
    """The frames a real clip compares with itself: min(F, F') of its frames and its truth, which for the
    evaluator's real clips are the same frames (one stream counted, not both); a caller's other truth counts."""
    if inputs.truth_chunks is None and inputs.truth is None:
        raise ValueError("no ground-truth frames given")
    own = sum(len(chunk) for chunk in inputs.chunks("frames"))
    if inputs.truth_chunks is inputs.frame_chunks and inputs.frame_chunks is not None:
        return own
    return min(own, sum(len(chunk) for chunk in inputs.chunks("truth")))


def _mean_of(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")



class ReferenceQuality(ClipMetric):
    """PSNR and SSIM against the real clip, from one pass over each video (one cached computation).

    ``clip``: ``{"psnr": (F,) dB, "ssim": (F,)}`` per frame over ``min(F, F')`` frames. A real
    clip is its own ground truth: its values are the maxima (``PSNR_CAP_DB``, 1) without
    computing them."""

    computation = "psnr_ssim"
    needs = frozenset({"frame_chunks", "truth_chunks"})

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        preset = protocol_value(self.protocol, "ssim_preset")
        try:
            if inputs.side == "real":        # its own truth: the maxima over its frames, decoded once to count
                count = _real_frame_count(inputs)
                return {"psnr": np.full(count, PSNR_CAP_DB), "ssim": np.ones(count)}
            return per_frame_over_chunks({"psnr": psnr_frames, "ssim": lambda a, b: ssim_frames(a, b, preset)},
                                         inputs.chunks("frames"), inputs.chunks("truth"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{inputs.source}: {error}") from None

    def describe(self) -> dict:
        return {"input": "uint8 RGB frames against the real clip's frame t (first min(F, F') frames)"}


class PeakSignalToNoise(ReferenceQuality):
    id = "psnr"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        return ClipMean(self.label, self.protocol, [_mean_of(c.values["psnr"]) for c in fake],
                                 lower=0.0, upper=PSNR_CAP_DB)

    def describe(self) -> dict:
        return {**super().describe(), "features": "PSNR per frame, 10 log10(255^2 / MSE) over RGB pixels "
                f"(scikit-image, data_range 255; identical frames {PSNR_CAP_DB:g} dB), mean over frames, "
                "mean over clips"}


class StructuralSimilarity(ReferenceQuality):
    id = "ssim"

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        return ClipMean(self.label, self.protocol, [_mean_of(c.values["ssim"]) for c in fake],
                                 lower=-1.0, upper=1.0)

    def describe(self) -> dict:
        settings = SSIM_PRESETS[protocol_value(self.protocol, "ssim_preset")]
        return {**super().describe(), "features": settings.describe() + ", mean over clips"}


class PerceptualDistance(ClipMetric):
    """LPIPS against the real clip, per frame. ``weights``: a folder with torchvision's trunk file and
    the lpips package's lin file under their published names (``metrics.lpips.load_lpips_folder``)."""

    id = "lpips"
    needs = frozenset({"frame_chunks", "truth_chunks"})

    def __init__(self, protocol, weights=None, device="cpu") -> None:
        super().__init__(protocol, weights, device)
        from metrics import lpips

        net = protocol_value(protocol, "lpips_network")
        if weights is None:
            spec = lpips.NETWORKS[net]
            raise MissingWeights(
                f"LPIPS needs local weights: give --weights lpips=DIR, a folder with torchvision's "
                f"{spec['trunk_file']} and the lpips package's weights/v0.1/{spec['lin_file']}")
        self.network = lpips.load_lpips_folder(weights, net, device)
        self.pretrained, self.weights_id, self.published = True, self.network.weights_id, self.network.published

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        try:
            if inputs.side == "real":
                return {"lpips": np.zeros(_real_frame_count(inputs))}
            return per_frame_over_chunks({"lpips": lambda a, b: lpips_clip(a, b, self.network)},
                                         inputs.chunks("frames"), inputs.chunks("truth"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{inputs.source}: {error}") from None

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        return ClipMean(self.label, self.protocol, [_mean_of(c.values["lpips"]) for c in fake],
                                 lower=0.0)

    def describe(self) -> dict:
        return {"features": f"LPIPS v0.1 ({self.network.net}) per frame against the real clip's frame t, "
                            "mean over frames, mean over clips",
                "input": self.network.preprocessing}


class FrameFID(FrechetMetric):
    """FID on frames as a ``metrics.stats.FrechetMetric`` that also keeps each clip's feature rows, so
    that the distance, its interval and its paired differences are computed by
    :func:`frechet_distance_of_features` (no 2048 x 2048 eigendecomposition while a side has fewer
    frames than 2048). FD-infinity (``frechet_extrapolation``) goes through the base class."""

    unit = "frames"

    def __init__(self, protocol, name: str, real: Sequence[np.ndarray], fake: Sequence[np.ndarray]) -> None:
        super().__init__(protocol)
        self.name = name
        self.rows = {True: [np.asarray(r, np.float64) for r in real], False: [np.asarray(f, np.float64) for f in fake]}
        for side, rows in self.rows.items():
            self.parts[side] = [GaussianStats(r.shape[1]).update(r) for r in rows]

    @property
    def covariance_estimator(self) -> str:
        return protocol_value(self.protocol, "fid_covariance")

    def _distance(self, real_index: np.ndarray, fake_index: np.ndarray) -> float:
        real = np.concatenate([self.rows[True][i] for i in real_index])
        fake = np.concatenate([self.rows[False][i] for i in fake_index])
        return frechet_distance_of_features(real, fake, self.covariance_estimator)

    def compute(self) -> float:
        if self.protocol.frechet_extrapolation != "none":
            return super().compute()
        self._check()
        return self._distance(np.arange(len(self.rows[True])), np.arange(len(self.rows[False])))

    def clip_statistic(self, paired: bool = False) -> ClipStatistic:
        if self.protocol.frechet_extrapolation != "none":
            return super().clip_statistic(paired)
        self._check()
        sizes = (len(self.rows[True]), len(self.rows[False]))
        if paired:
            if sizes[0] != sizes[1]:
                raise ValueError(f"{self.name}: paired clips need as many real as generated clips, got {sizes}")
            return ClipStatistic(lambda index: self._distance(index, index), (sizes[0],), ("pairs",), lower=0.0,
                                 log_scale=True)
        return ClipStatistic(self._distance, sizes, ("real", "generated"), lower=0.0, log_scale=True)


class FrechetInceptionDistance(ClipMetric):
    """FID on frames: per video the Inception pool3 features of every ``fid_frame_stride``-th frame
    (``{"features": (n, 2048) float32}``), reduced to the Fréchet distance of the pooled real and
    generated frames. ``weights``: ``pt_inception-2015-12-05-6726825d.pth``; without it the
    seeded stand-in network runs and the label is FID*."""

    id = "fid"
    needs = frozenset({"frame_chunks"})

    def __init__(self, protocol, weights=None, device="cpu") -> None:
        super().__init__(protocol, weights, device)
        from metrics.inception import load_fid_inception

        self.features = load_fid_inception(weights, device, seed=getattr(protocol, "bootstrap_seed", 0))
        self.pretrained, self.weights_id = self.features.is_pretrained, self.features.feature_id
        self.published = self.features.published

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        stride = int(protocol_value(self.protocol, "fid_frame_stride"))
        parts, start = [], 0
        try:
            for chunk in inputs.chunks("frames"):       # every stride-th frame of the clip, a chunk at a time
                chunk = _check_frames(chunk, "frames")
                picked = chunk[-start % stride::stride]
                if len(picked):
                    parts.append(self.features(picked).astype(np.float32))
                start += len(chunk)
            if not parts:
                raise ValueError("frames has no frames")
        except (TypeError, ValueError) as error:
            raise ValueError(f"{inputs.source}: {error}") from None
        return {"features": np.concatenate(parts)}

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        return FrameFID(self.protocol, self.label, [c.values["features"] for c in real],
                        [c.values["features"] for c in fake])

    def counts(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> dict[str, int]:
        return {"n_real_clips": len(real), "n_fake_clips": len(fake),
                "n_real_frames": sum(len(c.values["features"]) for c in real),
                "n_fake_frames": sum(len(c.values["features"]) for c in fake)}

    def describe(self) -> dict:
        stride = int(protocol_value(self.protocol, "fid_frame_stride"))
        return {"features": f"Inception-v3 pool3 (2048-d, pytorch-fid layout, {self.weights_id}) of every "
                            f"{'' if stride == 1 else f'{stride}-th '}frame, pooled over the set",
                "input": self.features.preprocessing,
                "covariance": protocol_value(self.protocol, "fid_covariance")}


class IdentitySimilarity(ClipMetric):
    """CSIM: ArcFace cosine similarity between the reference image's face and each frame's face.
    ``clip``: ``{"per_frame": (F,) (NaN: no face / frame skipped), "mean": (), "frames_without_face":
    (), "reference_found": ()}``. ``weights``: an insightface recognition ONNX (w600k_r50.onnx)."""

    id = "csim"
    needs = frozenset({"frame_chunks", "reference"})

    def __init__(self, protocol, weights=None, device="cpu") -> None:
        super().__init__(protocol, weights, device)
        if weights is None:
            raise MissingWeights("CSIM needs an ArcFace recognition ONNX: give --weights arcface=PATH "
                                          "(e.g. insightface buffalo_l's w600k_r50.onnx)")
        from metrics.arcface import ArcFace, FaceEmbedder

        self.embedder = FaceEmbedder(ArcFace(weights))
        self.pretrained, self.weights_id = True, self.embedder.arcface.weights_id

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        _need(inputs, "reference")
        try:
            result = csim_chunks(inputs.chunks("frames"), inputs.reference, self.embedder,
                                 int(protocol_value(self.protocol, "csim_frame_stride")))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{inputs.source}: {error}") from None
        return {"per_frame": result.per_frame, "mean": np.float64(result.mean),
                "frames_without_face": np.int64(result.frames_without_face),
                "reference_found": np.bool_(result.reference_found)}

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]):
        return ClipMean(self.label, self.protocol, [c.scalar("mean") for c in fake],
                                 lower=-1.0, upper=1.0)

    def describe(self) -> dict:
        return {"features": "cosine similarity of ArcFace embeddings, reference image's face vs each frame's "
                            "face, mean over frames with a face, mean over clips",
                "input": self.embedder.describe()["input"]}
