"""Evaluating generated videos against real ones: one evaluator, every metric, one typed result.

An ``Evaluator`` holds what a run needs once: the pose extractor, the skeleton autoencoder, the I3D
and the per-content cache. ``records(clips, side)`` decodes each video once (in chunks), extracts
its keypoints and I3D statistics (cached per video content, network and protocol) and keeps what
the metrics need per clip (``ClipResult``); ``score(real, fake)`` turns two lists of records into a
value, an interval and counts per metric and scope. A benchmark records the real side ONCE and
scores every method against it; ``evaluate(real_dir, fake_dir)`` is that for two folders and
returns a ``metrics.results.EvaluationResult`` (written by ``write_result`` as JSON and CSV).

Before any network is loaded or any frame decoded, both sides' headers are compared
(``metrics.inputs``): a property that changes a number and differs is refused, naming the property
and the clips, unless the protocol converts it or the caller allows it; either is recorded.

Metrics are the ids of ``metrics.registry.REGISTRY``. fgd, div, bas and fvd are built in here;
every other metric is a ``metrics.registry.ClipMetric`` (the hook): ``record`` builds the inputs it
``needs`` (frames, audio, the reference image, the real clip's frames, keypoints) from the same
decoding pass, calls its ``clip`` once per video and computation group and caches the result per
video content; ``metric`` reduces the clips of a scope with its ``reduce``. A metric whose weights
the user did not give (``MissingWeights``) is left out with its message (``Evaluator.unavailable``),
never shown under its published label.

Bad input (a corrupt or truncated video, a clip shorter than a window, NaN keypoints, no audio)
raises an error naming the file, or, with ``on_error="skip"``, is skipped and listed in the
result's ``skipped`` block. Nothing is dropped silently.

Under a launch of several processes (``accelerate launch -m metrics compute ...``, or ``--processes
N``), each process records its share of the clips and the records are gathered in the clips' order
(``metrics.distributed``): the values are those of one process; the main process scores and writes.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from metrics.beats import BAS
from metrics.dataset import ClipRecord, find_clips, is_dataset
from metrics.distributed import SAME_IN_EVERY_PROCESS, SINGLE, Processes
from metrics.diversity import Diversity
from metrics.fgd import FGD, skeleton_windows
from metrics.fvd import FVD
from metrics.i3d import I3DNetworkError
from metrics.inputs import (NAMED_CLIPS, SKELETON_METRICS, ClipProperties, Finding, InputMismatchError, InputReport,
                             check_inputs, clip_properties, normalise_allow, pairing_counts)
from metrics.io.cache import VideoCache, file_hash
from metrics.io.video import CHUNK_FRAMES, VideoReader, probe_video
from metrics.pose.dwpose import DWPose, DWPoseModelError
from metrics.pose.extraction import cached_keypoints, check_frame_count, keypoint_cache, store_keypoints
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol, preset_of
from metrics.registry import (BUILT_IN, DEFAULT_METRICS, REGISTRY, ClipInputs, ClipMetric, ClipValues, MissingWeights,
                              check_weight_names, load_clip_metric, normalise_metrics)
from metrics.results import (COVARIANCE, SQRT_METHOD, EvaluationResult, Provenance, Score, Scores, Side, SkippedClip,
                             format_score, metric_label, package_versions, produced_by, write_result)
from metrics.skeleton import NoBodyError, visible_share
from metrics.skeleton_ae import AutoencoderFileError
from metrics.stats import GaussianStats

logger = logging.getLogger(__name__)

ALL_METRICS = BUILT_IN          # the four built in here (fgd, div, bas, fvd); every id: metrics.registry.METRIC_IDS
DEFAULT_CACHE = Path.home() / ".cache" / "imac-bench"
PRESET_METRIC = {m: spec.preset_group for m, spec in REGISTRY.items()}   # metrics.protocol's names

__all__ = ["ALL_METRICS", "DEFAULT_CACHE", "DEFAULT_METRICS", "ClipError", "ClipResult", "Evaluator", "evaluate", "format_table",
           "make_extractor", "metric_score", "normalise_metrics", "write_result"]


def make_extractor(name: str = "toy", dwpose_detector: str | None = None, dwpose_pose: str | None = None,
                   device: str = "cpu"):
    """A pose extractor by name: ``toy`` (the toy corpus' markers) or ``dwpose`` (two ONNX files)."""
    if name == "toy":
        return ToyMarkerPose()
    if name == "dwpose":
        if not (dwpose_detector and dwpose_pose):
            raise ValueError("the dwpose extractor needs --dwpose-detector yolox_l.onnx and --dwpose-pose "
                             "dw-ll_ucoco_384.onnx (local paths)")

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
        return DWPose(dwpose_detector, dwpose_pose, providers=providers)
    raise ValueError(f"unknown pose extractor {name!r}: use 'toy' or 'dwpose'")


@dataclass
class ClipResult:
    """What one clip contributes to the metrics (small: no frames, no keypoints)."""

    clip: ClipRecord
    side: str                                   # "real" | "fake"
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)
    fgd_features: np.ndarray | None = None      # latent features of its windows (FGD; Div "latent")
    div_input: np.ndarray | None = None         # what Diversity takes (latent features or the l1div sequence)
    fvd_stats: GaussianStats | None = None
    bas: float | None = None
    bas_frames: int | None = None               # frames the BAS was scored on (its weight, bas_clip_weight)
    visible: float | None = None                # share of skeleton points seen
    no_body: str | None = None                  # a generated clip with no body found: why (left out of SKELETON_METRICS)
    values: dict | None = None                  # hook metrics: computation name -> the arrays its ``clip`` gave

    def clip_values(self, computation: str) -> ClipValues:
        """What a hook metric's computation gave this clip, for its ``reduce``."""
        return ClipValues(self.clip.identity or "", self.clip.clip_id or "", (self.values or {})[computation])


# Errors of a network or its file (the I3D archive, the skeleton autoencoder, the DWPose ONNX models)
# met while recording a clip: the clip is not at fault, so they stop the run, naming the file, even
# with on_error="skip".
NETWORK_ERRORS = (I3DNetworkError, AutoencoderFileError, DWPoseModelError)


class ClipError(ValueError):
    pass


def _bounds(interval) -> tuple[float, float]:
    """(low, high) of an interval: a (low, high) tuple or an object with ``low`` and ``high``."""
    if hasattr(interval, "low"):
        return float(interval.low), float(interval.high)
    low, high = interval
    return float(low), float(high)


def metric_score(metric, paired: bool = False, **counts: int) -> Score:
    """A metric object's value and interval (``compute``, ``interval``; ``paired``: a Fréchet distance's
    interval with generated clip i and real clip i as one unit) as a ``Score`` with ``counts``."""
    low, high = _bounds(metric.interval(paired=True) if paired else metric.interval())
    return Score(float(metric.compute()), low, high, counts, tuple(getattr(metric, "warnings", ())))


def _comparable(network) -> bool:
    """Whether a feature network's numbers compare with published ones: trained, and (when its file was
    checked against the published one) that file; else the metric is starred."""
    return bool(network.is_pretrained) and getattr(network, "published", None) is not False


def _hash_of(feature_id: str) -> str | None:
    """The weight hash inside an I3D feature id (``name:<sha12>``), or None."""
    return feature_id.rpartition(":")[2] if ":" in feature_id else None


class Evaluator:
    """The networks and the cache of one run; clips in (``records``), scores out (``score``)."""

    #: Decoding a video for both its keypoints and its I3D statistics runs the pose extractor on a second
    #: thread (the same numbers; ``benchmarks/metrics_speed.py`` times both ways). False: one thread.
    pose_beside_i3d: bool = True

    def __init__(self, metrics: Sequence[str], protocol: Protocol, extractor=None, autoencoder=None,
                 i3d=None, cache_dir: str | Path | None = None, autoencoder_info: dict | None = None,
                 processes: Processes = SINGLE, clip_metrics: dict[str, ClipMetric] | None = None,
                 unavailable: dict[str, str] | None = None):
        self.unavailable = dict(unavailable or {})      # metric id -> why it is left out (weights not given)
        self.metrics = tuple(m for m in normalise_metrics(metrics) if m not in self.unavailable)
        self.clip_metrics = {m: c for m, c in (clip_metrics or {}).items() if m in self.metrics}
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.protocol = protocol
        self.processes = processes      # ``records`` shares the clips among them (metrics.distributed)
        self.extractor = extractor
        self.autoencoder = autoencoder
        self.autoencoder_info = autoencoder_info
        self.i3d = i3d
        self.fvd = FVD(i3d, protocol) if i3d is not None else None
        self.keypoint_cache = self.fvd_cache = None
        if cache_dir is not None:
            if extractor is not None:
                self.keypoint_cache = keypoint_cache(cache_dir, extractor.extractor_id, protocol.version)
            if i3d is not None:
                # keyed by the FVD fields only: rescoring under another BAS or FGD setting reuses the I3D
                self.fvd_cache = VideoCache(cache_dir, "i3d", i3d.feature_id, protocol.version,
                                            protocol.digest_of("fvd_"))

    @classmethod
    def load(cls, metrics: Sequence[str], protocol: Protocol, *, autoencoder: str | Path | None = None,
             i3d=None, i3d_seed: int = 0, extractor="toy", dwpose_detector: str | None = None,
             dwpose_pose: str | None = None, device: str = "cpu", cache_dir: str | Path | None = None,
             processes: Processes = SINGLE, weights: dict[str, str | None] | None = None) -> Evaluator:
        """Load each network the metrics need, once (in every process of a launch: ``processes``).

        ``weights``: local weight files of the hook metrics by their ``MetricSpec.weights`` name
        (e.g. {"syncnet": PATH}); a metric whose file is not given and has no stand-in is left out
        with its message (``unavailable``).

        ``autoencoder``: a skeleton autoencoder folder (fgd, div). ``i3d``: a local weight file, None
        for the untrained stand-in (FVD*), or a feature object (``feature_id``, ``is_pretrained``,
        ``__call__(videos) -> (N, 400)``). ``extractor``: "toy", "dwpose" (with the two ONNX paths)
        or an extractor object.
        """
        metrics = normalise_metrics(metrics)
        check_weight_names(weights)
        clip_metrics, unavailable = {}, {}
        for metric in metrics:
            if REGISTRY[metric].implementation is None:
                continue
            try:
                clip_metrics[metric] = load_clip_metric(metric, protocol, weights, device)
            except MissingWeights as error:
                unavailable[metric] = str(error)
                logger.warning("%s left out: %s", REGISTRY[metric].label, error, extra=SAME_IN_EVERY_PROCESS)
        model = info = None
        if "fgd" in metrics or "div" in metrics:
            if autoencoder is None:
                raise ValueError("FGD and Diversity need a skeleton autoencoder (--fgd-ae DIR); "
                                 "train one with `python -m metrics train-fgd-ae --data DATASET --out DIR`")
            from metrics.skeleton_ae import load_autoencoder   # torch: only when a metric needs it

            model, meta = load_autoencoder(autoencoder, device)
            info = {"path": str(autoencoder), "checkpoint_hash": meta["checkpoint_hash"],
                    "training_data_hash": meta["training"]["training_data_hash"]}
        features = None
        if "fvd" in metrics:
            if callable(i3d):
                features = i3d
            else:
                from metrics.i3d import load_i3d   # torch

                features = load_i3d(i3d, device=device, seed=i3d_seed)
        pose = None
        if any(m in metrics for m in SKELETON_METRICS) or any("keypoints" in c.needs for c in clip_metrics.values()):
            pose = (make_extractor(extractor, dwpose_detector, dwpose_pose, device) if isinstance(extractor, str)
                    else extractor)
        return cls(metrics, protocol, pose, model, features, cache_dir, info, processes, clip_metrics, unavailable)

    # -- one clip ----------------------------------------------------------------------------------

    @property
    def needs_keypoints(self) -> bool:
        return (any(m in self.metrics for m in SKELETON_METRICS)
                or any("keypoints" in c.needs for c in self.clip_metrics.values()))

    def keypoints_and_fvd(self, clip: ClipRecord, want_keypoints: bool | None = None, want_fvd: bool | None = None
                          ) -> tuple[np.ndarray | None, float, tuple[int, int], GaussianStats | None]:
        """Decode the video once: keypoints (cached) and, if asked, the FVD statistics."""
        keypoints, fps, size, fvd_stats, _ = self.decode(clip, want_keypoints, want_fvd)
        return keypoints, fps, size, fvd_stats

    def decode(self, clip: ClipRecord, want_keypoints: bool | None = None, want_fvd: bool | None = None,
               want_frames: bool = False
               ) -> tuple[np.ndarray | None, float, tuple[int, int], GaussianStats | None, np.ndarray | None]:
        """Decode the video at most once: keypoints (cached), the FVD statistics (cached) and, with
        ``want_frames``, every frame (F, H, W, 3) uint8 for the hook metrics (not cached)."""
        want_keypoints = self.needs_keypoints if want_keypoints is None else want_keypoints
        want_fvd = ("fvd" in self.metrics) if want_fvd is None else want_fvd
        info = probe_video(clip.video)
        keypoints = fvd_stats = None
        if want_keypoints:
            keypoints = cached_keypoints(self.keypoint_cache, clip.video, info.num_frames)
        if want_fvd and self.fvd_cache is not None:
            cached = self.fvd_cache.load(clip.video)
            try:
                fvd_stats = None if cached is None else GaussianStats.from_state_dict(cached)
            except ValueError as error:     # a damaged entry is not the user's data: compute it again
                logger.warning("%s: cached I3D statistics ignored: %s", clip.video, error)
        extract = want_keypoints and keypoints is None
        compute_fvd = want_fvd and fvd_stats is None
        kept: list[np.ndarray] = []
        if extract or compute_fvd or want_frames:
            parts: list[Future | np.ndarray] = []
            decoded = [0]
            # The pose extractor runs on a second thread, beside I3D (``pose_beside_i3d``): the toy
            # extractor's numpy holds one core while I3D's convolutions (which release the GIL) use the
            # others, and each computes exactly what it computes alone (keypoints kept in frame order).
            beside = extract and compute_fvd and self.pose_beside_i3d
            with VideoReader(clip.video) as reader, ThreadPoolExecutor(1) if beside else nullcontext() as pool:
                def chunks():
                    for chunk in reader.iter_chunks(CHUNK_FRAMES):   # fewer frames when large: CHUNK_BUDGET
                        decoded[0] += len(chunk)
                        if extract and beside:
                            if len(parts) >= 2:        # one chunk extracted, one queued, this one read: a slow
                                parts[-2].result()     # extractor (DWPose on a CPU) holds no long video's frames
                            parts.append(pool.submit(self.extractor, chunk))
                        elif extract:
                            parts.append(self.extractor(chunk))
                        if want_frames:
                            kept.append(chunk)
                        yield chunk
                stream = chunks()
                try:
                    if compute_fvd:   # (with fvd_clips="first" it stops reading after the first clip)
                        fvd_stats = self.fvd.video_statistics(stream, str(clip.video))
                    if extract or want_frames or not compute_fvd:
                        for _ in stream:   # the rest of the video, for its keypoints (or frames)
                            pass
                except BaseException:      # (I3D failed, or Ctrl-C): drop the queued chunk, raise at once
                    for part in parts:
                        if isinstance(part, Future):
                            part.cancel()
                    raise
                parts = [part.result() if beside else part for part in parts]   # (an extractor's error is raised here)
            whole = extract or want_frames or getattr(self.protocol, "fvd_clips", "non-overlapping") != "first"
            if whole:
                check_frame_count(clip.video, decoded[0], info.num_frames, ClipError)
            if compute_fvd and self.fvd_cache is not None:
                self.fvd_cache.store(clip.video, **fvd_stats.state_dict())
            if extract:   # float32 as the cache holds them: a first run and a cached one score the same numbers
                keypoints = store_keypoints(self.keypoint_cache, clip.video, np.concatenate(parts), info.fps,
                                            info.num_frames)
        frames = np.concatenate(kept) if want_frames and kept else None
        return keypoints, info.fps, (info.width, info.height), fvd_stats, frames

    def keypoints(self, clip: ClipRecord) -> tuple[np.ndarray, float]:
        """The clip's keypoints (F, 133, 3) and fps: from the cache, else extracted (and cached)."""
        keypoints, fps, _, _ = self.keypoints_and_fvd(clip, want_keypoints=True, want_fvd=False)
        return keypoints, fps

    def clip_bas(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sample_rate: int) -> tuple[float, int]:
        """The BAS of one clip's motion with a waveform, and the frames it was scored on."""
        scorer = BAS(self.protocol)
        clip = getattr(scorer, "clip", None)
        if clip is not None:
            value, frames = clip(keypoints, fps, wav, sample_rate)
            return float(value), int(frames)
        return float(scorer.score(keypoints, fps, wav, sample_rate)), len(keypoints)

    # -- hook metrics (metrics.registry.ClipMetric) ------------------------------------------------

    def computations(self) -> dict[str, ClipMetric]:
        """One hook metric per computation group among the selected ones (its ``clip`` serves the group)."""
        groups: dict[str, ClipMetric] = {}
        for metric in self.clip_metrics.values():
            groups.setdefault(metric.computation_name, metric)
        return groups

    def _clip_cache(self, metric: ClipMetric) -> VideoCache | None:
        if self.cache_dir is None:
            return None
        return VideoCache(self.cache_dir, f"clip-{metric.computation_name}", metric.weights_id or "weight-free",
                          self.protocol.version, self.protocol.digest)

    def _variant(self, metric: ClipMetric, clip: ClipRecord, partner: ClipRecord | None, hints: dict) -> str:
        """The cache variant of a hook metric's per-clip output: the other files it read and the hints."""
        other = {}
        if metric.needs & {"reference", "truth", "truth_chunks"} and partner is not None:
            other["real"] = file_hash(partner.video)
        if "audio" in metric.needs:
            source = clip.audio or (partner.audio if partner is not None else None)
            other["audio"] = file_hash(source) if source is not None else "track"
        if hints:
            other["hints"] = hints
        return json.dumps(other, sort_keys=True, default=str) if other else ""

    def cached_clip_values(self, clip: ClipRecord, partner: ClipRecord | None, hints: dict | None = None
                           ) -> tuple[dict, list]:
        """The hook computations' cached outputs for one clip, and the computations still to run
        (name, metric, cache, cache variant)."""
        hints = dict(hints or {})
        values: dict = {}
        pending = []
        for name, metric in self.computations().items():
            cache, variant = self._clip_cache(metric), self._variant(metric, clip, partner, hints)
            cached = cache.load(clip.video, variant) if cache is not None else None
            if cached is not None:
                values[name] = cached
            else:
                pending.append((name, metric, cache, variant))
        return values, pending

    @staticmethod
    def _needs_own_frames(pending: list, partner: ClipRecord | None) -> bool:
        """Whether a pending computation needs the clip's whole frames (``frames``, or a real clip's own as
        ``truth``): decoded beside its keypoints then. Chunked needs decode the file again, a chunk at a time."""
        needs = frozenset().union(*(metric.needs for _, metric, _, _ in pending)) if pending else frozenset()
        return "frames" in needs or (partner is None and "truth" in needs)

    def clip_metric_values(self, clip: ClipRecord, side: str, partner: ClipRecord | None, keypoints, fps: float,
                           size: tuple[int, int], hints: dict | None = None, frames: np.ndarray | None = None,
                           found: tuple[dict, list] | None = None) -> dict:
        """Every selected hook computation's output for one clip (from the cache, else computed and cached).
        ``frames``: the clip's decoded frames when the caller has them (else they are decoded here,
        only if a computation that needs them is not cached); ``found``: ``cached_clip_values``'s answer."""
        hints = dict(hints or {})
        values, pending = found if found is not None else self.cached_clip_values(clip, partner, hints)
        if not pending:
            return values
        needs = frozenset().union(*(metric.needs for _, metric, _, _ in pending))
        if frames is None and self._needs_own_frames(pending, partner):
            frames = self.decode(clip, want_keypoints=False, want_fvd=False, want_frames=True)[4]
        # the clip's own decoded frame 0 (its size, and a real clip's reference), without its other frames
        own = (frames if frames is not None else clip.first_frame()[None]
               if needs & {"reference", "truth", "truth_chunks"} else None)
        rate = self.protocol.audio_sample_rate
        own_chunks = ((lambda: (frames[i:i + CHUNK_FRAMES] for i in range(0, len(frames), CHUNK_FRAMES)))
                      if frames is not None else (lambda: video_chunks(clip.video)))   # decoded already, or again
        truth_chunks = None
        if "truth_chunks" in needs:     # the real clip's frames, resized as fit_size does, a chunk at a time
            truth_chunks = ((lambda: (fit_size(chunk, own) for chunk in video_chunks(partner.video)))
                            if partner is not None else own_chunks if side == "real" else None)
        inputs = ClipInputs(
            source=str(clip.video), side=side, fps=fps, size=size,
            frames=frames if "frames" in needs else None,
            frame_chunks=own_chunks if "frame_chunks" in needs else None,
            truth_chunks=truth_chunks,
            audio=_clip_audio(clip, partner, rate) if "audio" in needs else None,
            sample_rate=rate if "audio" in needs else 0,
            reference=(fit_size(partner.first_frame(), own) if partner is not None else own[0])
            if "reference" in needs else None,
            truth=(fit_video(partner.video, own) if partner is not None
                   else (frames if side == "real" else None)) if "truth" in needs else None,
            keypoints=keypoints if "keypoints" in needs else None, hints=hints)
        if ("truth" in needs and inputs.truth is None) or ("truth_chunks" in needs and truth_chunks is None):
            needing = [m.spec.label for _, m, _, _ in pending if m.needs & {"truth", "truth_chunks"}]
            raise ClipError(f"{clip.video}: no real clip with the same identity/clip_id to compare with "
                            f"({', '.join(needing)} need it)")
        for name, metric, cache, variant in pending:
            output = {key: np.asarray(value) for key, value in metric.clip(inputs).items()}
            if cache is not None:
                cache.store(clip.video, variant, **output)
            values[name] = output
        return values

    def record(self, clip: ClipRecord, side: str, partner: ClipRecord | None = None, hints: dict | None = None
               ) -> ClipResult:
        """What one clip contributes to every selected metric (``hints``: what its method states about
        how it was made, for the hook metrics; e.g. ``chunk_period``)."""
        found = self.cached_clip_values(clip, partner, hints) if self.clip_metrics else ({}, [])
        want_frames = self._needs_own_frames(found[1], partner)      # decoded in the same pass as the keypoints
        keypoints, fps, size, fvd_stats, frames = self.decode(clip, want_frames=want_frames)
        rec = ClipResult(clip, side, fps, size, fvd_stats=fvd_stats)
        source = str(clip.video)
        try:
            self._record_skeleton(rec, keypoints, partner)
        except NoBodyError as error:
            if side == "real":      # a real clip without a body is a broken input, not a result
                raise
            # a generated clip that lost the person: the skeleton metrics leave it out and say so
            # (``body_scored``, the scores' warnings); the others score it
            rec.no_body = error.reason
            rec.fgd_features = rec.div_input = rec.bas = rec.bas_frames = None
            rec.visible = visible_share(keypoints, self.protocol.skeleton_points, self.protocol.visibility_threshold)
        if self.clip_metrics:
            rec.values = self.clip_metric_values(clip, side, partner, keypoints, fps, size, hints, frames, found)
        return rec

    def _record_skeleton(self, rec: ClipResult, keypoints: np.ndarray | None, partner: ClipRecord | None) -> None:
        """``rec``'s FGD features, Diversity input and BAS from the clip's keypoints (those selected).
        Raises ``NoBodyError`` when the keypoints show no body, ``ClipError`` for a clip shorter than
        one FGD window."""
        if keypoints is None:
            return
        clip, fps, source = rec.clip, rec.fps, str(rec.clip.video)
        if "fgd" in self.metrics or "div" in self.metrics:
            windows, rec.visible = skeleton_windows(keypoints, fps, self.protocol, source)
            if len(windows) == 0:
                raise ClipError(f"{source}: {len(keypoints)} frames at {fps:g} fps is shorter than one "
                                f"{self.protocol.window}-frame window at {self.protocol.fps:g} fps")
            rec.fgd_features = self.autoencoder.features(windows)
            rec.div_input = rec.fgd_features
            if getattr(self.protocol, "diversity_kind", "latent") == "l1div" and "div" in self.metrics:
                from metrics.diversity import diversity_sequence

                rec.div_input = diversity_sequence(keypoints, fps, self.protocol, source)
        if "bas" in self.metrics:
            rate = self.protocol.audio_sample_rate
            rec.bas, rec.bas_frames = self.clip_bas(keypoints, fps, self.bas_audio(clip, rec.side, partner, rate),
                                                    rate)

    def bas_audio(self, clip: ClipRecord, side: str, partner: ClipRecord | None, sample_rate: int) -> np.ndarray:
        """The speech BAS scores ``clip``'s motion against, mono at ``sample_rate``: under ``bas_audio:
        real`` a generated clip with a real partner takes the partner's (the condition, read as the real
        side reads it: no codec between the two sides); otherwise the clip's own (its wav or track)."""
        if side == "fake" and partner is not None and self.protocol.bas_audio == "real":
            return partner.load_audio(sample_rate)
        return _clip_audio(clip, partner, sample_rate)

    def records(self, clips: Sequence[ClipRecord], side: str, *, partners: dict | None = None,
                on_error: str = "raise", progress: Callable[[str], None] | None = None, hints: dict | None = None
                ) -> tuple[list[ClipResult], list[SkippedClip]]:
        """Every clip of one side as a ``ClipResult`` (``partners``: key -> real clip, for the audio of a
        generated clip that has none, and the reference image and frames of the hook metrics; ``hints``:
        what the clips' method states, for the hook metrics). ``on_error="skip"`` lists bad clips
        instead of raising.

        With several processes (``self.processes``) this is a collective: each process records its
        share of ``clips`` and every process gets all the records and skipped clips in ``clips``' order."""
        processes = self.processes
        who = f"process {processes.rank}: " if processes.distributed else ""

        def outcome(numbered: tuple[int, ClipRecord]) -> ClipResult | SkippedClip:
            number_, clip = numbered
            if progress:
                progress(f"{who}[{number_}/{len(clips)}] {side} {clip.label}")
            try:
                return self.record(clip, side, (partners or {}).get(clip.key), hints)
            except NETWORK_ERRORS:
                raise
            except (ValueError, OSError) as error:
                if on_error == "raise":
                    raise ClipError(f"{side} clip {clip.label}: {error}") from error
                return SkippedClip(side, clip.label, str(clip.video), str(error))

        outcomes = processes.map(list(enumerate(clips, start=1)), outcome)
        records = [o for o in outcomes if isinstance(o, ClipResult)]
        skipped = [o for o in outcomes if isinstance(o, SkippedClip)]
        return records, skipped

    # -- inputs ------------------------------------------------------------------------------------

    def properties(self, clips: Sequence[ClipRecord], side: str, on_error: str = "raise"
                   ) -> tuple[list[ClipRecord], list[ClipProperties], list[SkippedClip]]:
        """The clips whose headers read, their properties, and the skipped ones (``on_error="skip"``)."""
        kept, props, skipped = [], [], []
        for clip in clips:
            try:
                props.append(clip_properties(clip, side, audio=any(REGISTRY[m].audio for m in self.metrics)))
                kept.append(clip)
            except (ValueError, OSError) as error:
                if on_error == "raise":
                    raise ClipError(f"{side} clip {clip.label}: {error}") from error
                skipped.append(SkippedClip(side, clip.label, str(clip.video), str(error)))
        return kept, props, skipped

    def check_inputs(self, real: Sequence[ClipProperties], fake: Sequence[ClipProperties],
                     allow: Iterable[str] = (), clips: tuple[Sequence[str], Sequence[str]] | None = None
                     ) -> InputReport:
        """``metrics.inputs.check_inputs`` for this evaluator's metrics and protocol."""
        return check_inputs(real, fake, self.metrics, self.protocol, allow, clips)

    # -- scores ------------------------------------------------------------------------------------

    def metric(self, metric: str, real: Sequence[ClipResult], fake: Sequence[ClipResult]):
        """The metric object (``FGD``, ``Diversity``, ``BAS``, ``FVD``) holding these clips in this order,
        or None when they cannot give a value (no clip on a side it needs, fewer than 2 windows). A skeleton
        metric holds only the generated clips with a body (``body_scored``)."""
        fake = self.body_scored(metric, fake)
        if metric == "fgd" and real and fake:
            value = FGD(self.autoencoder, self.protocol)
            for side, group in ((True, real), (False, fake)):
                for r in group:
                    value.update_features(r.fgd_features, side)
            return value
        if metric == "div" and sum(len(r.fgd_features) for r in fake) >= 2:
            value = Diversity(self.protocol)
            for r in fake:
                value.update(r.div_input, r.clip.identity or "")
            return value
        if metric == "bas" and fake:
            value = BAS(self.protocol)
            value.scores = [r.bas for r in fake]
            value.weights = [r.bas_frames for r in fake]
            return value
        if metric == "fvd" and real and fake:
            value = FVD(self.i3d, self.protocol)
            value.parts = {True: [r.fvd_stats for r in real], False: [r.fvd_stats for r in fake]}
            return value
        if metric in self.clip_metrics and fake and (real or not REGISTRY[metric].two_sided):
            hook = self.clip_metrics[metric]
            name = hook.computation_name
            value = hook.reduce([r.clip_values(name) for r in real] if REGISTRY[metric].two_sided else [],
                                [r.clip_values(name) for r in fake])
            return None if getattr(value, "valid", 1) == 0 else value
        return None

    @staticmethod
    def body_scored(metric: str, records: Sequence[ClipResult]) -> list[ClipResult]:
        """The records ``metric`` scores: for a skeleton metric (FGD, Div, BAS: ``SKELETON_METRICS``) those
        in which a body was found (``ClipResult.no_body`` None), for any other metric all of them."""
        if metric in SKELETON_METRICS:
            return [r for r in records if r.no_body is None]
        return list(records)

    @staticmethod
    def paired(real: Sequence[ClipResult], fake: Sequence[ClipResult]) -> bool:
        """Whether the generated clip i answers the real clip i for every i (the same clips, in order)."""
        return bool(real) and [r.clip.key for r in real] == [r.clip.key for r in fake]

    def counts(self, metric: str, real: Sequence[ClipResult], fake: Sequence[ClipResult]) -> dict[str, int]:
        """What a metric's value rests on: clips, windows, I3D clips (a hook metric: its ``counts``)."""
        fake = self.body_scored(metric, fake)
        if metric in self.clip_metrics:
            hook = self.clip_metrics[metric]
            name = hook.computation_name
            return hook.counts([r.clip_values(name) for r in real] if REGISTRY[metric].two_sided else [],
                               [r.clip_values(name) for r in fake])
        if metric == "fgd":
            return {"n_real_clips": len(real), "n_fake_clips": len(fake),
                    "n_real_windows": sum(len(r.fgd_features) for r in real),
                    "n_fake_windows": sum(len(r.fgd_features) for r in fake)}
        if metric == "div":     # one-sided: the clips of the side scored (a method's, or the real videos' own)
            return {"n_clips": len(fake), "n_windows": sum(len(r.fgd_features) for r in fake)}
        if metric == "bas":
            return {"n_clips": len(fake)}
        return {"n_real_clips": len(real), "n_fake_clips": len(fake),
                "n_real_i3d_clips": sum(r.fvd_stats.count for r in real),
                "n_fake_i3d_clips": sum(r.fvd_stats.count for r in fake)}

    def table(self, real: Sequence[ClipResult], fake: Sequence[ClipResult], metrics: Sequence[str] | None = None
              ) -> dict[str, Score]:
        """Every requested metric of ``fake`` against ``real`` over one set of clips (one scope). The
        interval of FGD and FVD is paired when the generated clips answer the real ones one to one."""
        table: dict[str, Score] = {}
        for metric in (self.metrics if metrics is None else metrics):
            value = self.metric(metric, real, fake)
            if value is not None:
                scored = self.body_scored(metric, fake)
                score = metric_score(value, self.paired(real, scored) and REGISTRY[metric].paired,
                                     **self.counts(metric, real, fake))
                left_out = (no_body_warning(self.label(metric), fake, len(scored)) if metric in SKELETON_METRICS
                            else None)
                table[metric] = replace(score, warnings=(*score.warnings, left_out)) if left_out else score
        return table

    def score(self, real: Sequence[ClipResult], fake: Sequence[ClipResult], metrics: Sequence[str] | None = None
              ) -> Scores:
        """``table`` over all clips (scope ``all``) and per identity of the generated side."""
        scores = {"all": self.table(real, fake, metrics)}
        for identity in sorted({r.clip.identity for r in fake if r.clip.identity}):
            scores[f"identity:{identity}"] = self.table([r for r in real if r.clip.identity == identity],
                                                        [r for r in fake if r.clip.identity == identity], metrics)
        return scores

    def reference(self, real: Sequence[ClipResult]) -> Scores:
        """The real videos' own values of the metrics that have one (``MetricSpec.reference``: Diversity,
        BAS, HKC, ...): what generated videos' values are read against."""
        return self.score([], real, [m for m in self.metrics if REGISTRY[m].reference])

    # -- provenance --------------------------------------------------------------------------------

    def label(self, metric: str) -> str:
        if metric in self.clip_metrics:
            return self.clip_metrics[metric].label
        return metric_label(metric, None if self.i3d is None else _comparable(self.i3d))

    def provenance(self, n_real: int | None, n_fake: int | None, inputs: InputReport | None = None,
                   paired: bool = False, without_body: int = 0) -> dict[str, Provenance]:
        """The provenance card of every metric of this evaluator, for these clip counts and inputs
        (``paired``: the Fréchet distances' intervals pair generated clip i with real clip i;
        ``without_body``: generated clips with no body found, left out of the skeleton metrics, whose
        cards count the others and, when some are left out, their FGD interval is unpaired)."""
        cards = {}
        for m in self.metrics:
            lost = without_body if m in SKELETON_METRICS and n_fake is not None else 0
            cards[m] = self._card(m, n_real, None if n_fake is None else n_fake - lost, inputs or InputReport(),
                                  paired and not lost)
        return cards

    def _interval(self, metric: str, paired: bool) -> str:
        p = self.protocol
        how = f"{p.confidence:.0%} interval over clips (metrics.intervals, seed {p.bootstrap_seed})"
        if REGISTRY[metric].two_sided:
            return how + ("; paired: generated clip i and real clip i resampled together" if paired
                          else "; real and generated clips resampled as two samples")
        return how + ("; clips resampled within each identity" if metric == "div" else "")

    def _card(self, metric: str, n_real: int | None, n_fake: int | None, inputs: InputReport,
              paired: bool = False) -> Provenance:
        p = self.protocol
        pose = getattr(self.extractor, "extractor_id", None)
        skeleton = (f"keypoints ({len(p.skeleton_points)} points, score >= {p.visibility_threshold:g}) resampled "
                    f"to {p.fps:g} fps and normalised per clip (neck centre, shoulder width)")
        common = dict(metric=metric, label=self.label(metric), protocol=p.label,
                      preset=preset_of(p, PRESET_METRIC[metric]), packages=package_versions(),
                      conversions=inputs.for_metric(metric), n_real=n_real if REGISTRY[metric].two_sided else None,
                      n_fake=n_fake, interval=self._interval(metric, paired))
        if metric in self.clip_metrics:
            hook = self.clip_metrics[metric]
            about = dict(hook.describe())
            extra = {k: about[k] for k in ("frames_per_clip", "covariance", "sqrt_method") if k in about}
            weights_hash = hook.weights_id.rpartition(":")[2] if hook.weights_id and ":" in hook.weights_id else None
            return Provenance(**common, features=about.get("features", REGISTRY[metric].name), weights=hook.weights,
                              weights_hash=weights_hash, pretrained=hook.pretrained, published=hook.published,
                              pose_extractor=pose if "keypoints" in hook.needs else None, input=about.get("input", ""),
                              **extra)
        ae = self.autoencoder_info or {}
        value = ("; the value is FD-infinity (distances at subsets of N extrapolated to 1/N = 0, metrics.fd_infinity)"
                 if getattr(p, "frechet_extrapolation", None) == "fd_infinity" else "")
        if metric in ("fgd", "div"):
            latent = metric == "fgd" or getattr(p, "diversity_kind", "latent") == "latent"
            return Provenance(
                **common, features=("latent features of the skeleton autoencoder" if latent
                                    else "normalised skeleton sequences (EMAGE L1div)") + (value if metric == "fgd" else ""),
                weights=ae.get("path") if latent else None, weights_hash=ae.get("checkpoint_hash") if latent else None,
                training_data_hash=ae.get("training_data_hash") if latent else None, pose_extractor=pose,
                input=f"{skeleton}; {p.window}-frame windows every {p.stride} frames" if latent else skeleton,
                frames_per_clip=p.window if latent else None,
                covariance=COVARIANCE[p.covariance] if metric == "fgd" else None,
                sqrt_method=SQRT_METHOD if metric == "fgd" else None)
        if metric == "bas":
            bas_fps = getattr(p, "bas_fps", p.fps)
            return Provenance(
                **common, features=f"motion beats of {len(p.beat_points)} beat points against audio beats "
                f"({getattr(p, 'audio_beat_rule', 'onsets')}), {p.bas_direction}, sigma {p.bas_sigma:g} s",
                pose_extractor=pose, input=f"beat points resampled to {bas_fps:g} fps; audio mono at "
                f"{p.audio_sample_rate} Hz; {speech_sources(inputs, p.bas_audio)}")
        fvd = self.fvd
        feature_id = getattr(self.i3d, "feature_id", None)
        estimator = getattr(fvd, "covariance_estimator", p.covariance)
        return Provenance(
            **common, features="400-d pre-softmax I3D logits of every clip" + value, weights=feature_id,
            weights_hash=_hash_of(feature_id) if feature_id else None, pretrained=bool(self.i3d.is_pretrained),
            published=getattr(self.i3d, "published", None),
            input=getattr(fvd.i3d, "preprocessing", None) or f"the feature object's own ({type(self.i3d).__name__})",
            frames_per_clip=p.fvd_frames, covariance=COVARIANCE[estimator], sqrt_method=SQRT_METHOD)

    def networks(self) -> dict:
        """The ids of the networks behind the features (for result headers)."""
        networks = {"pose_extractor": getattr(self.extractor, "extractor_id", None),
                    "skeleton_autoencoder": self.autoencoder_info,
                    "i3d": None if self.i3d is None else {"feature_id": self.i3d.feature_id,
                                                          "pretrained": bool(self.i3d.is_pretrained),
                                                          "published": getattr(self.i3d, "published", None)}}
        if self.clip_metrics:
            networks["clip_metrics"] = {m: {"weights": c.weights_id, "pretrained": c.pretrained,
                                            "published": c.published, "label": c.label}
                                        for m, c in self.clip_metrics.items()}
        if self.unavailable:
            networks["unavailable_metrics"] = dict(self.unavailable)
        return networks


def fit_size(pixels: np.ndarray, frames: np.ndarray | None) -> np.ndarray:
    """A real clip's first frame (H, W, C) or frames (F, H, W, C), uint8, resized (``cv2.INTER_AREA``) to
    the generated ``frames``' (F, H', W', C) size when it differs; as it is otherwise. Reached only where
    the input check converted or allowed a frame-size mismatch (``metrics.inputs``: ``frame_size``)."""
    if frames is None or pixels.shape[-3:-1] == frames.shape[1:3]:
        return pixels
    import cv2

    height, width = frames.shape[1:3]
    if pixels.ndim == 3:
        return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in pixels])


def fit_video(path: str | Path, like: np.ndarray) -> np.ndarray:
    """The video at ``path`` (a real clip), uint8 (F, H, W, C), each frame resized as ``fit_size`` does to
    the size of ``like`` (F', H', W', C); decoded chunk by chunk (``CHUNK_BUDGET``), so that only the
    resized frames are held, once."""
    chunks = [fit_size(chunk, like) for chunk in video_chunks(path)]
    if not chunks:
        raise ClipError(f"{path}: no frames decoded")
    return np.concatenate(chunks)


def video_chunks(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of the video at ``path`` in order, uint8 chunks (n, H, W, 3) of at most
    ``metrics.io.video.CHUNK_BUDGET`` bytes (``ClipInputs.frame_chunks``); the file is closed when the
    iteration ends or is dropped."""
    with VideoReader(path) as reader:
        yield from reader.iter_chunks(CHUNK_FRAMES)


def _clip_audio(clip: ClipRecord, partner: ClipRecord | None, sample_rate: int) -> np.ndarray:
    try:
        return clip.load_audio(sample_rate)
    except ValueError:
        if clip.audio is not None:
            raise
        if partner is not None and partner.audio is not None:
            return partner.load_audio(sample_rate)
        raise ClipError(f"{clip.video}: no audio track, no wav beside it and no real clip with the same "
                        f"identity/clip_id to take the audio from (BAS needs the speech)") from None


def speech_sources(inputs: InputReport, bas_audio: str) -> str:
    """Where BAS read the speech, in words, from the sides' ``audio_source`` values: a wav beside the video or
    its AAC track (the codec moves onsets a little, so the two read differently: PROTOCOL.md)."""
    words = {"wav": "wav files", "track": "video sound tracks", "None": "no sound"}

    def said(side: str) -> str:
        return " and ".join(words.get(value, value) for value in inputs.values.get(side, {}).get("audio_source", []))

    real = said("real")
    fake = ("their real clip's speech, as the real side reads it (bas_audio real)" if bas_audio == "real"
            else f"their own {said('fake') or 'sound'} (bas_audio generated)")
    return (f"speech of the real clips from their {real}; " if real else "") + f"generated clips scored with {fake}"


def scored_files(records: Sequence[ClipResult]) -> dict[str, dict[str, str]]:
    """The SHA-256 of each clip's files (``Side.files``), label -> {"video": ..., "audio": ...}: its video
    and, when it has one, the wav beside it (read instead of the video's own track)."""
    return {r.clip.label: {"video": file_hash(r.clip.video),
                           **({"audio": file_hash(r.clip.audio)} if r.clip.audio is not None else {})}
            for r in records}


def without_body(fake: Sequence[ClipResult], metrics: Sequence[str]) -> list[SkippedClip]:
    """The generated clips with no body found, each as a ``SkippedClip`` left out of the selected skeleton
    metrics only (``SkippedClip.metrics``); none when no skeleton metric is selected."""
    left_out = tuple(m for m in metrics if m in SKELETON_METRICS)
    return [SkippedClip("fake", r.clip.label, str(r.clip.video), f"no body found: {r.no_body}", left_out)
            for r in fake if r.no_body is not None and left_out]


def no_body_warning(label: str, fake: Sequence[ClipResult], scored: int) -> str | None:
    """The sentence a skeleton metric's score carries when generated clips with no body found were left out
    of it (``ClipResult.no_body``); None when none was."""
    lost = [r for r in fake if r.no_body is not None]
    if not lost:
        return None
    named = ", ".join(r.clip.label for r in lost[:NAMED_CLIPS]) + (f" and {len(lost) - NAMED_CLIPS} more"
                                                                   if len(lost) > NAMED_CLIPS else "")
    return (f"{len(lost)} of {len(fake)} generated clips show no body ({named}: {lost[0].no_body}) "
            f"and are left out of {label}, which rests on the other {scored}: a method that loses the person "
            "reads better on it than it is; those clips are scored on the metrics that need no skeleton")


def _visibility(records: Sequence[ClipResult]) -> float | None:
    values = [r.visible for r in records if r.visible is not None]
    return float(np.mean(values)) if values else None


def evaluate(real_dir: str | Path | None, fake_dir: str | Path, metrics: Sequence[str] = ALL_METRICS, *,
             protocol: Protocol | None = None, autoencoder: str | Path | None = None,
             i3d: str | Path | None = None, i3d_seed: int = 0, extractor="toy",
             dwpose_detector: str | None = None, dwpose_pose: str | None = None,
             cache_dir: str | Path | None = DEFAULT_CACHE, split: str | None = "test", on_error: str = "raise",
             allow: Iterable[str] = (), allow_resolution_mismatch: bool = False, device: str = "cpu",
             progress: Callable[[str], None] | None = None, processes: Processes = SINGLE,
             weights: dict[str, str | None] | None = None, paired: bool = True,
             command: Sequence[str] | str | None = None) -> EvaluationResult | None:
    """Evaluate the generated videos of ``fake_dir`` against the real ones of ``real_dir``.

    ``metrics``: ids of ``metrics.registry.REGISTRY`` (default: the four built-in ones; the command
    line's default is ``DEFAULT_METRICS``, which adds the weight-free hook metrics). ``autoencoder``, ``i3d``, ``extractor``, ``weights``: as ``Evaluator.load``. ``on_error``: "raise" (default) or "skip" (skipped clips are listed).
    ``allow``: input properties allowed to differ between the sides (``metrics.inputs.ALLOWABLE``;
    ``allow_resolution_mismatch`` is ``allow=["frame_size"]``). The headers are compared before any
    network is loaded: ``metrics.inputs.InputMismatchError`` names a refused property and its clips.
    With real videos, a real clip without a generated one of the same identity/clip_id, or the other
    way round, is refused too unless ``allow`` has ``clips`` (then a warning says how many; the
    counts are in ``result.inputs.pairing``). ``paired=False``: the generated clips are not versions of
    the real ones (``metrics.sanity``'s controls, made of the other half of the real clips), so their
    labels are neither paired nor checked for partners.

    ``processes`` (``metrics.distributed.current_processes()`` under ``accelerate launch``): every
    process must call this with the same arguments; each records its share of the clips, the records
    are gathered in the single-process order, and the main process scores them and returns the result,
    identical to one process's; the other processes return None.

    ``command``: the command line recorded in ``result.environment`` with the start time and the source
    revision (``metrics.results.produced_by``; default: this process's ``sys.argv``).
    """
    started = time.perf_counter()
    produced = produced_by(command)
    protocol = protocol or Protocol()
    metrics = normalise_metrics(metrics)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    needs_real = any(REGISTRY[m].two_sided for m in metrics)
    if needs_real and real_dir is None:
        two_sided = ", ".join(REGISTRY[m].label for m in metrics if REGISTRY[m].two_sided)
        raise ValueError(f"{two_sided} compare with real videos: give the real videos or dataset (--real DIR "
                         "on the command line, real_dir in Python), or ask only for one-sided metrics (div,bas,...)")
    with processes.main_first():        # the same refusal on every process: told by the main one alone
        fake_clips = find_clips(fake_dir, split=None)
        real_clips = find_clips(real_dir, split=split) if real_dir is not None else []

        headers = Evaluator(metrics, protocol)          # no network: the header check comes first
        real_clips, real_props, skipped = headers.properties(real_clips, "real", on_error)
        fake_clips, fake_props, bad = headers.properties(fake_clips, "fake", on_error)
        skipped += bad
        # the clips that pair are those left to score: a clip skipped as unreadable leaves its partner unpaired
        found = (([c.label for c in real_clips], [c.label for c in fake_clips]) if real_dir is not None and paired
                 else None)
        allow = list(allow) + (["frame_size"] if allow_resolution_mismatch else [])
        try:
            inputs = headers.check_inputs(real_props, fake_props, allow, clips=found)
        except InputMismatchError as error:
            if not skipped:
                raise
            raise InputMismatchError(f"{error} (skipped as unreadable: {_skipped_words(skipped)})") from None
    for finding in inputs.findings:
        if finding.property == "clips" and processes.is_main:
            logger.warning("input %s", finding, extra=SAME_IN_EVERY_PROCESS)

    evaluator = Evaluator.load(metrics, protocol, autoencoder=autoencoder, i3d=i3d, i3d_seed=i3d_seed,
                               extractor=extractor, dwpose_detector=dwpose_detector, dwpose_pose=dwpose_pose,
                               device=device, cache_dir=cache_dir, processes=processes, weights=weights)
    real, bad = evaluator.records(real_clips, "real", on_error=on_error, progress=progress)
    skipped += bad
    fake, bad = evaluator.records(fake_clips, "fake", partners={c.key: c for c in real_clips}, on_error=on_error,
                                  progress=progress)
    skipped += bad
    with processes.main_first():        # every process holds the gathered records: the main one refuses
        for side, group in (("real", real), ("fake", fake)):
            if (needs_real or side == "fake") and not group:
                raise ClipError(f"no usable {side} clips ({len(skipped)} skipped)")
        if found is not None and len(real) + len(fake) < len(real_clips) + len(fake_clips):   # some failed to decode
            inputs = _decoded_pairing(inputs, real, fake, allow, skipped, processes.is_main, evaluator.metrics)
    if not processes.is_main:
        processes.end_together()
        return None
    no_body = without_body(fake, evaluator.metrics)
    result = EvaluationResult(
        protocol=protocol.to_dict(), protocol_label=protocol.label, metrics=evaluator.metrics,
        scores=evaluator.score(real, fake), reference=evaluator.reference(real) if real else {},
        provenance=evaluator.provenance(len(real), len(fake), inputs, evaluator.paired(real, fake), len(no_body)),
        real=Side(None if real_dir is None else str(real_dir), len(real), split if real_dir is not None and
                  is_dataset(real_dir) else None, _visibility(real), scored_files(real)),    # (a folder: no split)
        fake=Side(str(fake_dir), len(fake), None, _visibility(fake), scored_files(fake)),
        inputs=inputs, skipped=(*skipped, *no_body),
        environment={**produced, "python": platform.python_version(), "networks": evaluator.networks(),
                     "processes": processes.world, "seconds": round(time.perf_counter() - started, 1)})
    processes.end_together()
    return result


def _decoded_pairing(inputs: InputReport, real: Sequence[ClipResult], fake: Sequence[ClipResult], allow: Sequence[str],
                     skipped: Sequence[SkippedClip], main: bool, metrics: Sequence[str]) -> InputReport:
    """``inputs`` with the pairing of the clips decoded (some failed after their headers were read): a clip
    left unpaired is refused as ``clips`` is (the numbers would rest on a subset) unless that is allowed,
    and then recorded as allowed, in every metric's provenance."""
    pairing = pairing_counts([r.clip.label for r in real], [r.clip.label for r in fake])
    unpaired = pairing["real_unpaired"] + pairing["generated_unpaired"]
    if unpaired and "clips" not in normalise_allow(allow):
        raise InputMismatchError(f"clips: {unpaired} clip(s) left without a partner by clips that could not be scored "
                                 f"({_skipped_words(skipped)}): the numbers would describe other clips than the "
                                 "real side's; repair or regenerate them, or allow it (allow='clips', "
                                 "--allow-mismatch clips; what was decoded is in the cache)")
    if not unpaired:
        return replace(inputs, pairing=pairing)
    detail = (f"{pairing['paired']} paired clip(s) scored, {pairing['real_unpaired']} real and "
              f"{pairing['generated_unpaired']} generated unpaired by clips that could not be scored: "
              f"{_skipped_words(skipped)}")
    if main:
        logger.warning("input clips (allowed): %s", detail, extra=SAME_IN_EVERY_PROCESS)
    return replace(inputs, pairing=pairing,
                   findings=(*inputs.findings, Finding("clips", "allowed", tuple(metrics), detail)))


def _skipped_words(skipped: Sequence[SkippedClip]) -> str:
    shown = "; ".join(f"{skip.side} {skip.clip}: {skip.reason}" for skip in skipped[:NAMED_CLIPS])
    return shown + (f"; and {len(skipped) - NAMED_CLIPS} more" if len(skipped) > NAMED_CLIPS else "")


def format_table(result: EvaluationResult) -> str:
    """A plain-text table of the results with the protocol and each metric's provenance, for the terminal."""
    lines = [f"protocol: {result.protocol_label}"]
    pose = next((card.pose_extractor for card in result.provenance.values() if card.pose_extractor), None)
    if pose:
        lines.append(f"pose extractor: {pose}")
    for metric, card in result.provenance.items():
        lines.append(f"{card.label}: {card.summary()}")
    for name, side in (("generated", result.fake), ("real", result.real)):
        if side.content_digest:
            lines.append(f"{name} content: {side.clips} clip(s) from {side.path}, SHA-256 of their files "
                         f"{side.content_digest} (each file's hash in the result file)")
    for finding in result.inputs.findings:
        lines.append(f"input {finding}")
    lines.append(f"{'side':<10}{'scope':<22}{'metric':<8}{'value':>12}  {'95% CI':<27} counts")
    for side, scores in (("generated", result.scores), ("real", result.reference)):
        for scope, table in scores.items():
            for metric, score in table.items():
                shown, interval = format_score(score)
                counts = " ".join(f"{k}={v}" for k, v in score.counts.items())
                lines.append(f"{side:<10}{scope:<22}{result.label(metric):<8}{shown:>12}  {interval:<27} {counts}")
                lines += [f"  warning: {w}" for w in score.warnings]
    for skip in result.skipped:
        only = f" from {', '.join(result.label(m) for m in skip.metrics)}" if skip.metrics else ""
        lines.append(f"skipped {skip.side} {skip.file}{only}: {skip.reason}")
    for metric, why in ((result.environment.get("networks") or {}).get("unavailable_metrics") or {}).items():
        lines.append(f"metric {metric} left out: {why}")
    return "\n".join(lines)
