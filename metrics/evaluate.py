"""Evaluating generated videos against real ones: one pass over the clips, every metric, one result.

``evaluate(real_dir, fake_dir, metrics=...)`` decodes every video once (in chunks), extracts its
keypoints (cached per video content, extractor and protocol), feeds the metrics, and returns a
result dictionary that carries the protocol, the feature networks' ids and, per metric and per
identity, the value, a bootstrap confidence interval and the counts it rests on. ``write_result``
writes it as JSON and CSV.

Bad input (a corrupt or truncated video, a clip shorter than a window, NaN keypoints, no audio)
raises an error naming the file, or, with ``on_error="skip"``, is skipped and listed in the
result's ``skipped`` block. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metrics.beats import BAS
from metrics.dataset import ClipRecord, find_clips
from metrics.diversity import Diversity
from metrics.fgd import FGD, skeleton_windows
from metrics.fvd import FVD
from metrics.i3d import load_i3d
from metrics.io.cache import VideoCache
from metrics.io.files import write_json_atomic, write_text_atomic
from metrics.io.video import VideoReader, probe_video
from metrics.pose.dwpose import DWPose
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol
from metrics.skeleton_ae import load_autoencoder
from metrics.stats import GaussianStats

ALL_METRICS = ("fgd", "div", "bas", "fvd")
DEFAULT_CACHE = Path.home() / ".cache" / "imac-bench"


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
    """What one clip contributes to the metrics."""

    clip: ClipRecord
    side: str                                   # "real" | "fake"
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)
    fgd_features: np.ndarray | None = None      # latent features of its windows
    fvd_stats: GaussianStats | None = None
    bas: float | None = None
    visible: float | None = None                # share of skeleton points seen
    extra: dict = field(default_factory=dict)


class ClipError(ValueError):
    pass


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


class Evaluator:
    """Holds the networks and the cache; ``record(clip, side)`` turns one clip into a ClipResult."""

    def __init__(self, metrics: Sequence[str], protocol: Protocol, extractor=None, autoencoder=None,
                 i3d=None, cache_dir: str | Path | None = None):
        self.metrics = tuple(metrics)
        self.protocol = protocol
        self.extractor = extractor
        self.autoencoder = autoencoder
        self.i3d = i3d
        self.fvd = FVD(i3d, protocol) if i3d is not None else None
        self.keypoint_cache = self.fvd_cache = None
        if cache_dir is not None:
            if extractor is not None:
                self.keypoint_cache = VideoCache(cache_dir, "keypoints", extractor.extractor_id, protocol.version)
            if i3d is not None:
                self.fvd_cache = VideoCache(cache_dir, "i3d", i3d.feature_id, protocol.version, protocol.digest)

    @property
    def needs_keypoints(self) -> bool:
        return any(m in self.metrics for m in ("fgd", "div", "bas"))

    def keypoints_and_fvd(self, clip: ClipRecord) -> tuple[np.ndarray | None, float, tuple[int, int], GaussianStats | None]:
        """Decode the video once: keypoints (cached) and, if asked, the FVD statistics."""
        info = probe_video(clip.video)
        keypoints = fvd_stats = None
        if self.needs_keypoints and self.keypoint_cache is not None:
            cached = self.keypoint_cache.load(clip.video)
            keypoints = None if cached is None else cached["keypoints"]
        if "fvd" in self.metrics and self.fvd_cache is not None:
            cached = self.fvd_cache.load(clip.video)
            fvd_stats = None if cached is None else GaussianStats.from_state_dict(cached)
        extract = self.needs_keypoints and keypoints is None
        want_fvd = "fvd" in self.metrics and fvd_stats is None
        if extract or want_fvd:
            parts: list[np.ndarray] = []
            decoded = [0]
            with VideoReader(clip.video) as reader:
                def chunks():
                    for chunk in reader.iter_chunks(64):
                        decoded[0] += len(chunk)
                        if extract:
                            parts.append(self.extractor(chunk))
                        yield chunk
                if want_fvd:
                    fvd_stats = self.fvd.video_statistics(chunks(), str(clip.video))
                else:
                    for _ in chunks():
                        pass
            if decoded[0] != info.num_frames:
                raise ClipError(f"{clip.video}: decoded {decoded[0]} frames, the container says "
                                f"{info.num_frames}: truncated or corrupt file")
            if want_fvd and self.fvd_cache is not None:
                self.fvd_cache.store(clip.video, **fvd_stats.state_dict())
            if extract:
                keypoints = np.concatenate(parts)
                if self.keypoint_cache is not None:
                    self.keypoint_cache.store(clip.video, keypoints=keypoints.astype(np.float32), fps=np.array(info.fps))
        return keypoints, info.fps, (info.width, info.height), fvd_stats

    def record(self, clip: ClipRecord, side: str, partner: ClipRecord | None = None) -> ClipResult:
        keypoints, fps, size, fvd_stats = self.keypoints_and_fvd(clip)
        rec = ClipResult(clip, side, fps, size, fvd_stats=fvd_stats)
        source = str(clip.video)
        if keypoints is not None and ("fgd" in self.metrics or "div" in self.metrics):
            windows, rec.visible = skeleton_windows(keypoints, fps, self.protocol, source)
            if len(windows) == 0:
                raise ClipError(f"{source}: {len(keypoints)} frames at {fps:g} fps is shorter than one "
                                f"{self.protocol.window}-frame window at {self.protocol.fps:g} fps")
            rec.fgd_features = self.autoencoder.features(windows)
        if keypoints is not None and "bas" in self.metrics:
            wav = _clip_audio(clip, partner, self.protocol.audio_sample_rate)
            rec.bas = BAS(self.protocol).score(keypoints, fps, wav, self.protocol.audio_sample_rate)
        return rec


def _summary(value: float, interval: tuple[float, float], **counts) -> dict:
    return {"value": value, "ci_low": interval[0], "ci_high": interval[1], **counts}


def metric_table(records: list[ClipResult], metrics: Sequence[str], protocol: Protocol, autoencoder, i3d) -> dict:
    """Every requested metric over a set of clip records (one scope: all clips, or one identity)."""
    real = [r for r in records if r.side == "real"]
    fake = [r for r in records if r.side == "fake"]
    table: dict[str, dict] = {}
    if "fgd" in metrics and real and fake:
        metric = FGD(autoencoder, protocol)
        for r in real + fake:
            metric.update_features(r.fgd_features, r.side == "real")
        table["FGD"] = _summary(metric.compute(), metric.interval(), n_real_clips=len(real), n_fake_clips=len(fake),
                                n_real_windows=sum(len(r.fgd_features) for r in real),
                                n_fake_windows=sum(len(r.fgd_features) for r in fake))
    if "div" in metrics and fake:
        metric = Diversity(protocol)
        for r in fake:
            metric.update(r.fgd_features, r.clip.identity or "")
        windows = sum(len(r.fgd_features) for r in fake)
        if windows >= 2:
            table["Diversity"] = _summary(metric.compute(), metric.interval(), n_fake_clips=len(fake),
                                          n_fake_windows=windows)
    if "bas" in metrics:
        for side, group in (("fake", fake), ("real", real)):
            if group:
                metric = BAS(protocol)
                metric.scores = [r.bas for r in group]
                name = "BAS" if side == "fake" else "BAS (real)"
                table[name] = _summary(metric.compute(), metric.interval(), n_clips=len(group))
    if "fvd" in metrics and real and fake:
        metric = FVD(i3d, protocol)
        metric.parts = {True: [r.fvd_stats for r in real], False: [r.fvd_stats for r in fake]}
        table[metric.name] = _summary(metric.compute(), metric.interval(), n_real_clips=len(real),
                                      n_fake_clips=len(fake),
                                      n_real_i3d_clips=sum(r.fvd_stats.count for r in real),
                                      n_fake_i3d_clips=sum(r.fvd_stats.count for r in fake))
    return table


def evaluate(real_dir: str | Path | None, fake_dir: str | Path, metrics: Sequence[str] = ALL_METRICS, *,
             protocol: Protocol | None = None, autoencoder: str | Path | None = None,
             i3d: str | Path | None = None, i3d_seed: int = 0, extractor="toy",
             dwpose_detector: str | None = None, dwpose_pose: str | None = None,
             cache_dir: str | Path | None = DEFAULT_CACHE, split: str | None = "test", on_error: str = "raise",
             allow_resolution_mismatch: bool = False, device: str = "cpu",
             progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate the generated videos of ``fake_dir`` against the real ones of ``real_dir``.

    ``metrics``: any of fgd, div, bas, fvd. ``autoencoder``: a skeleton autoencoder folder (needed by
    fgd and div). ``i3d``: a local I3D weight file, None for the untrained stand-in (FVD*), or a
    feature object (``feature_id``, ``is_pretrained``, ``__call__(videos) -> (N, 400)``).
    ``extractor``: "toy", "dwpose" (with the two ONNX paths) or an extractor object.
    ``on_error``: "raise" (default) or "skip" (skipped clips are listed in the result).
    """
    started = time.perf_counter()
    protocol = protocol or Protocol()
    metrics = tuple(dict.fromkeys(m.lower() for m in metrics))
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {', '.join(ALL_METRICS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    needs_real = any(m in metrics for m in ("fgd", "fvd"))
    if needs_real and real_dir is None:
        raise ValueError("FGD and FVD compare with real videos: give real_dir")
    fake_clips = find_clips(fake_dir, split=None)
    real_clips = find_clips(real_dir, split=split) if real_dir is not None else []

    model, ae_meta = None, None
    if "fgd" in metrics or "div" in metrics:
        if autoencoder is None:
            raise ValueError("FGD and Diversity need a skeleton autoencoder (--fgd-ae DIR); "
                             "train one with `python -m metrics train-fgd-ae --data DATASET --out DIR`")

        model, ae_meta = load_autoencoder(autoencoder, device)
    features = None
    if "fvd" in metrics:
        if callable(i3d):  # an I3DFeatures-like object: feature_id, is_pretrained, __call__(videos)
            features = i3d
        else:
            features = load_i3d(i3d, device=device, seed=i3d_seed)
    pose = None
    if any(m in metrics for m in ("fgd", "div", "bas")):
        pose = make_extractor(extractor, dwpose_detector, dwpose_pose, device) if isinstance(extractor, str) else extractor
    evaluator = Evaluator(metrics, protocol, pose, model, features, cache_dir)

    partners = {c.key: c for c in real_clips}
    records: list[ClipResult] = []
    skipped: list[dict] = []
    jobs = [(c, "real") for c in real_clips] + [(c, "fake") for c in fake_clips]
    for number, (clip, side) in enumerate(jobs, start=1):
        if progress:
            progress(f"[{number}/{len(jobs)}] {side} {clip.label}")
        try:
            records.append(evaluator.record(clip, side, partners.get(clip.key) if side == "fake" else None))
        except (ValueError, OSError) as error:
            if on_error == "raise":
                raise ClipError(f"{side} clip {clip.label}: {error}") from error
            skipped.append({"side": side, "clip": clip.label, "file": str(clip.video), "reason": str(error)})

    if "fvd" in metrics and not allow_resolution_mismatch:
        sizes = {side: sorted({r.size for r in records if r.side == side}) for side in ("real", "fake")}
        if sizes["real"] and sizes["fake"] and sizes["real"] != sizes["fake"]:
            raise ClipError(f"real videos are {sizes['real']} and generated ones {sizes['fake']} (width, height): "
                            "FVD resizes both to 224 but the result then depends on the mismatch; render at the "
                            "real resolution, or pass allow_resolution_mismatch / --allow-resolution-mismatch")
    for side in ("real", "fake"):
        if needs_real or side == "fake":
            if not any(r.side == side for r in records):
                raise ClipError(f"no usable {side} clips ({len(skipped)} skipped)")

    scopes = {"all": records}
    for identity in sorted({r.clip.identity for r in records if r.clip.identity}):
        scopes[f"identity:{identity}"] = [r for r in records if r.clip.identity == identity]
    results = {scope: metric_table(group, metrics, protocol, model, features) for scope, group in scopes.items()}
    visible = {side: [r.visible for r in records if r.side == side and r.visible is not None] for side in ("real", "fake")}
    return {
        "protocol": protocol.to_dict(),
        "protocol_label": protocol.label,
        "metrics_requested": list(metrics),
        "pose_extractor": getattr(pose, "extractor_id", None),
        "skeleton_autoencoder": None if ae_meta is None else {
            "path": str(autoencoder), "checkpoint_hash": ae_meta["checkpoint_hash"],
            "training_data_hash": ae_meta["training"]["training_data_hash"]},
        "i3d": None if features is None else {"feature_id": features.feature_id, "pretrained": features.is_pretrained},
        "real": {"path": None if real_dir is None else str(real_dir), "split": split,
                 "clips": sum(r.side == "real" for r in records)},
        "fake": {"path": str(fake_dir), "clips": sum(r.side == "fake" for r in records)},
        "keypoint_visibility": {side: (float(np.mean(v)) if v else None) for side, v in visible.items()},
        "results": results,
        "skipped": skipped,
        "environment": {"python": platform.python_version(), "seconds": round(time.perf_counter() - started, 1)},
    }


def result_rows(result: dict) -> list[dict]:
    rows = []
    for scope, table in result["results"].items():
        for name, entry in table.items():
            counts = {k: v for k, v in entry.items() if k not in ("value", "ci_low", "ci_high")}
            rows.append({"scope": scope, "metric": name, "value": entry["value"], "ci_low": entry["ci_low"],
                         "ci_high": entry["ci_high"], "counts": " ".join(f"{k}={v}" for k, v in counts.items()),
                         "protocol": result["protocol_label"]})
    return rows


def format_table(result: dict) -> str:
    """A plain-text table of the results with the protocol block, for the terminal."""
    lines = [f"protocol: {result['protocol_label']}",
             f"pose extractor: {result['pose_extractor']}"]
    if result["skeleton_autoencoder"]:
        lines.append(f"skeleton autoencoder: {result['skeleton_autoencoder']['checkpoint_hash']}")
    if result["i3d"]:
        i3d = result["i3d"]
        note = "" if i3d["pretrained"] else "  (untrained stand-in: FVD* is not comparable with published FVD)"
        lines.append(f"I3D: {i3d['feature_id']}{note}")
    lines.append(f"{'scope':<22}{'metric':<12}{'value':>12}  {'95% CI':<24}counts")
    for row in result_rows(result):
        ci = "" if math.isnan(row["ci_low"]) else f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
        lines.append(f"{row['scope']:<22}{row['metric']:<12}{row['value']:>12.4g}  {ci:<24}{row['counts']}")
    for skip in result["skipped"]:
        lines.append(f"skipped {skip['side']} {skip['file']}: {skip['reason']}")
    return "\n".join(lines)


def write_result(result: dict, path: str | Path) -> tuple[Path, Path]:
    """Write ``result`` as JSON at ``path`` (.json) and as CSV beside it; returns both paths."""
    path = Path(path)
    json_path = path if path.suffix == ".json" else path.with_suffix(".json")
    csv_path = json_path.with_suffix(".csv")

    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    write_json_atomic(json_path, clean(result))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["scope", "metric", "value", "ci_low", "ci_high", "counts", "protocol"])
    writer.writeheader()
    writer.writerows(result_rows(result))
    write_text_atomic(csv_path, buffer.getvalue())
    return json_path, csv_path
