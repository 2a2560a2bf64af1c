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
from metrics.registry import PRESET_GROUPS

PROTOCOL_VERSION = "imac-bench-metrics-1.4"


def _default_skeleton_points() -> tuple[int, ...]:
    body = tuple(wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow",
                                           "right_elbow", "left_wrist", "right_wrist"))
    return body + tuple(wb.LEFT_HAND) + tuple(wb.RIGHT_HAND)


def _default_beat_points() -> tuple[int, ...]:
    return tuple(wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow",
                                          "right_elbow", "left_wrist", "right_wrist"))


def _default_hand_points() -> tuple[int, ...]:
    return tuple(wb.LEFT_HAND) + tuple(wb.RIGHT_HAND)


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _needed_by(name: str, value, needed: bool, reader: str) -> None:
    """A field is set exactly when the chosen rule reads it: else the number would ignore it."""
    if needed and value is None:
        raise ValueError(f"{name} is needed by {reader}; got None")
    if not needed and value is not None:
        raise ValueError(f"{name} is read only by {reader}; set it to None here (got {value!r})")


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
    # Diversity: "latent" = mean distance over all pairs of windows' latent features (the seed
    # paper); "l1div" = EMAGE's L1div of the skeleton sequences (fields of the other kind: None).
    diversity_kind: str = "latent"
    diversity_distance: str | None = "l2"      # latent: "l2" (Euclidean) or "l1" (city block)
    diversity_max_windows: int | None = 2000   # latent: all pairs among at most this many windows (seeded subset)
    diversity_pairs: str = "within_identity"   # within each identity, averaged ("all": pooled, 1.0)
    # -- beats (BAS) --------------------------------------------------------------------------
    # The steps and their order are in metrics/beats.py; a field a rule does not read is None.
    beat_points: tuple[int, ...] = field(default_factory=_default_beat_points)
    bas_fps: float = 25.0                 # beat points resampled to this rate (the peers' rules count frames)
    bas_direction: str = "motion_to_audio"     # or "audio_to_motion": which beats are averaged over
    bas_sigma: float = 0.05               # seconds
    audio_sample_rate: int = SAMPLE_RATE  # the audio is resampled to this rate before its beats
    audio_beat_rule: str = "onsets"       # "onsets" | "beat_track" | "percussive_beat_track" (librosa)
    onset_hop_length: int = 512           # hop of librosa's onset envelope, in samples
    beat_track_start_bpm: float | None = None  # beat_track rules: librosa's start_bpm
    motion_speed: str = "central"         # per-point speed by "central", "backward" or "forward" differences
    motion_speed_normalisation: str = "none"   # "none" | "clip_mean" | "given_mean" (per point)
    motion_joint_mean_speed: tuple[float, ...] = ()   # given_mean: one mean speed per beat point
    motion_joints: str = "mean"           # "mean": beats of the mean speed; "each": per point, scores averaged
    motion_smoothing: float = 2.0         # Gaussian sigma in frames on the speed curve (0: none)
    motion_beat_rule: str = "prominent_minima"  # or "local_minima" (scipy argrelextrema)
    motion_beat_prominence: float | None = 0.1  # prominent_minima: shoulder widths / s a minimum dips below its sides
    motion_beat_min_gap: float | None = 0.2     # prominent_minima: seconds between motion beats
    motion_beat_order: int | None = None        # local_minima: frames on each side
    motion_beat_threshold: float | None = None  # a minimum is a beat only where the curve is above this
    ignore_edges: float = 0.0             # seconds cut from both ends of the motion and the audio (EMAGE: 2 s)
    bas_clip_weight: str = "clip"         # dataset value: mean over clips ("clip") or weighted by scored frames
    # "real": a generated clip is scored against its real clip's speech (the condition; as every peer reads
    # the test set's audio file); "generated": against the generated file's own sound (its AAC track)
    bas_audio: str = "real"
    # -- FVD ----------------------------------------------------------------------------------
    # Read by metrics/fvd.py (clips, frames, covariance) and metrics/i3d.py (resize, resolution).
    fvd_frames: int = 16                  # frames per I3D clip (>= 9: the I3D's temporal strides)
    fvd_resolution: int = 224             # the network's frame size; the Kinetics I3D takes 224 only
    fvd_value_range: str = "[0,255] -> [-1,1]"   # uint8 -> x / 127.5 - 1, the only supported mapping
    fvd_clips: str = "non-overlapping"    # every non-overlapping clip of every video, or "first" of each
    fvd_resize: str = "stretch"           # "stretch" (each frame to 224x224, aspect not kept; TATS),
    #   "shorter-side-crop" (shorter side to 224, centre crop; VideoGPT), "torchscript-internal"
    #   (StyleGAN-V's i3d_torchscript.pt rescales and resizes the uint8 clips itself)
    fvd_covariance: str = "unbiased"      # FVD's own divisor: "unbiased" /(N-1) or "biased" /N (StyleGAN-V)
    # -- hands (HKC, HKV; metrics/hands.py) ---------------------------------------------------
    hand_points: tuple[int, ...] = field(default_factory=_default_hand_points)   # COCO-WholeBody 91-132
    hkv_space: str = "normalised"         # HKV positions in shoulder widths ("normalised") or "pixels"
    hkv_min_frames: int = 2               # HKV: a hand point counts when visible in at least this many frames
    # -- chunk joins and drift (metrics/chunk_joins.py) ---------------------------------------
    join_period_source: str = "detect"    # detected from the video; "facts_or_detect": a method's stated period first
    join_min_period: int = 8              # candidate chunk periods, frames (below 8: x264's mini-GOP rhythm)
    join_max_period: int = 32
    join_min_boundaries: int = 3          # a candidate needs this many boundaries in the clip
    join_detection_z: float = 8.0         # robust z a periodic excess must exceed to count as seams
    join_min_change: float = 0.5          # grey levels: a still clip (mean frame change below) has no seams,
    #                                       and a seam must raise the boundaries' lower quartile by this much
    # -- lip sync (Sync-C, Sync-D; metrics/lipsync.py LipSyncSettings: syncnet_python's defaults) --
    lipsync_vshift: int = 15              # offsets searched: -vshift .. vshift frames
    lipsync_crop_scale: float = 0.40
    lipsync_smooth_kernel: int = 13       # median filter of the face box, frames (odd)
    lipsync_pad_value: int = 110
    lipsync_track_iou: float = 0.5
    lipsync_max_missed: int = 25          # frames a face track may go without a detection
    lipsync_min_track: int = 100          # a track needs more detections than this
    lipsync_min_face_size: float = 100.0  # mean face box side, pixels
    lipsync_face_confidence: float | None = None   # None: the face detector's own default
    lipsync_face_min_fraction: float = 0.05
    lipsync_batch_size: int = 20
    # -- frame quality and identity (metrics/frame_quality.py) -------------------------------
    ssim_preset: str = "gaussian"         # metrics.frame_quality.SSIM_PRESETS
    lpips_network: str = "alex"           # "alex" | "vgg"
    fid_frame_stride: int = 1             # FID on frames: every k-th frame of each video
    fid_covariance: str = "unbiased"      # /(N - 1), as pytorch-fid's np.cov; or "biased"
    csim_frame_stride: int = 1            # CSIM: every k-th generated frame
    # -- confidence intervals (metrics/intervals.py; PROTOCOL.md "Confidence intervals") ------
    # Clip-level jackknife, its second-order bias removed with random half-samples of the clips.
    interval_half_samples: int = 200      # half-samples per interval (0: the plain jackknife)
    bootstrap_seed: int = 0               # seeds the half-samples, FD-infinity's subsets, Diversity's window subset
    confidence: float = 0.95
    # -- Fréchet extrapolation (FGD, FVD; metrics/fd_infinity.py) ----------------------------
    frechet_extrapolation: str = "none"   # "none" or "fd_infinity" (Chong & Forsyth 2020: N -> infinity)

    def __post_init__(self) -> None:
        self._check_intervals()
        self._check_beats()
        if self.covariance not in ("unbiased", "biased"):
            raise ValueError(f"covariance must be unbiased or biased, got {self.covariance!r}")
        self._check_diversity()
        if self.window < 8 or self.stride < 1:
            raise ValueError("window must be >= 8 frames and stride >= 1")
        self._check_fvd()
        self._check_hands_and_joins()
        self._check_frames_and_lipsync()

    def _check_hands_and_joins(self) -> None:
        """Refuse HKC/HKV and chunk-join values no code implements (naming the field)."""
        _choice("hkv_space", self.hkv_space, ("normalised", "pixels"))
        _choice("join_period_source", self.join_period_source, ("facts_or_detect", "detect"))
        if not self.hand_points or any(not 0 <= int(p) < wb.NUM_KEYPOINTS for p in self.hand_points):
            raise ValueError(f"hand_points must be COCO-WholeBody indices 0-{wb.NUM_KEYPOINTS - 1}, got {self.hand_points!r}")
        if int(self.hkv_min_frames) < 2:
            raise ValueError(f"hkv_min_frames must be >= 2 (a variance needs 2 frames), got {self.hkv_min_frames!r}")
        if not 2 <= int(self.join_min_period) <= int(self.join_max_period):
            raise ValueError("join_min_period and join_max_period must satisfy 2 <= min <= max, got "
                             f"{self.join_min_period!r}, {self.join_max_period!r}")
        if int(self.join_min_boundaries) < 2:
            raise ValueError(f"join_min_boundaries must be >= 2, got {self.join_min_boundaries!r}")
        if not self.join_detection_z > 0:
            raise ValueError(f"join_detection_z must be > 0, got {self.join_detection_z!r}")
        if not self.join_min_change >= 0:
            raise ValueError(f"join_min_change must be >= 0 grey levels, got {self.join_min_change!r}")

    def _check_frames_and_lipsync(self) -> None:
        """Refuse frame-quality choices no code implements (naming the field); the lip-sync fields are
        checked by ``metrics.lipsync.LipSyncSettings`` when the metric is loaded."""
        _choice("ssim_preset", self.ssim_preset, ("gaussian", "gaussian-grey", "uniform7", "uniform7-grey"))
        _choice("lpips_network", self.lpips_network, ("alex", "vgg"))
        _choice("fid_covariance", self.fid_covariance, ("unbiased", "biased"))
        for name in ("fid_frame_stride", "csim_frame_stride"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def _check_intervals(self) -> None:
        """Refuse interval and extrapolation settings no code implements (naming the field)."""
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if int(self.interval_half_samples) < 0 or int(self.interval_half_samples) == 1:
            raise ValueError(f"interval_half_samples must be 0 or >= 2, got {self.interval_half_samples!r}")
        _choice("frechet_extrapolation", self.frechet_extrapolation, ("none", "fd_infinity"))

    def _check_fvd(self) -> None:
        """Refuse FVD values no code implements (naming the field); metrics/fvd.py says who reads each."""
        if int(self.fvd_frames) < 9:  # metrics.i3d.MIN_FRAMES (not imported: torch is heavy)
            raise ValueError("fvd_frames must be >= 9 (the I3D's temporal strides leave ceil(T / 8) steps "
                             f"for its 2-step average pool); got {self.fvd_frames}")
        if self.fvd_resolution != 224:
            raise ValueError("fvd_resolution: the Kinetics-400 I3D takes 224 x 224 frames only (its last "
                             f"pool is 7 x 7 on a /32 map; other sizes are not FVD); got {self.fvd_resolution!r}")
        if self.fvd_value_range != "[0,255] -> [-1,1]":
            raise ValueError("fvd_value_range: only '[0,255] -> [-1,1]' is supported (uint8 video, x / 127.5 - 1: "
                             f"the range the I3D was trained on); got {self.fvd_value_range!r}")
        _choice("fvd_clips", self.fvd_clips, ("non-overlapping", "first"))
        _choice("fvd_resize", self.fvd_resize, ("stretch", "shorter-side-crop", "torchscript-internal"))
        _choice("fvd_covariance", self.fvd_covariance, ("unbiased", "biased"))

    def _check_diversity(self) -> None:
        """Refuse unknown Diversity choices and fields the chosen kind would not read (naming the field)."""
        _choice("diversity_kind", self.diversity_kind, ("latent", "l1div"))
        _choice("diversity_pairs", self.diversity_pairs, ("within_identity", "all"))
        latent = self.diversity_kind == "latent"
        _needed_by("diversity_distance", self.diversity_distance, latent, "diversity_kind='latent'")
        _needed_by("diversity_max_windows", self.diversity_max_windows, latent, "diversity_kind='latent'")
        if latent:
            _choice("diversity_distance", self.diversity_distance, ("l2", "l1"))
            if int(self.diversity_max_windows) < 2:
                raise ValueError(f"diversity_max_windows must be >= 2, got {self.diversity_max_windows}")

    def _check_beats(self) -> None:
        """Refuse unknown BAS choices, bad values, and fields the chosen rules would not read."""
        _choice("bas_direction", self.bas_direction, ("motion_to_audio", "audio_to_motion"))
        _choice("audio_beat_rule", self.audio_beat_rule, ("onsets", "beat_track", "percussive_beat_track"))
        _choice("motion_speed", self.motion_speed, ("central", "backward", "forward"))
        _choice("motion_speed_normalisation", self.motion_speed_normalisation, ("none", "clip_mean", "given_mean"))
        _choice("motion_joints", self.motion_joints, ("mean", "each"))
        _choice("motion_beat_rule", self.motion_beat_rule, ("prominent_minima", "local_minima"))
        _choice("bas_clip_weight", self.bas_clip_weight, ("clip", "frames"))
        _choice("bas_audio", self.bas_audio, ("real", "generated"))
        for name in ("bas_fps", "bas_sigma", "audio_sample_rate", "onset_hop_length"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("motion_smoothing", "ignore_edges"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        tracking = self.audio_beat_rule != "onsets"
        _needed_by("beat_track_start_bpm", self.beat_track_start_bpm, tracking,
                   "audio_beat_rule 'beat_track' or 'percussive_beat_track' (librosa's default is 120)")
        prominent = self.motion_beat_rule == "prominent_minima"
        _needed_by("motion_beat_prominence", self.motion_beat_prominence, prominent,
                   "motion_beat_rule='prominent_minima'")
        _needed_by("motion_beat_min_gap", self.motion_beat_min_gap, prominent, "motion_beat_rule='prominent_minima'")
        _needed_by("motion_beat_order", self.motion_beat_order, not prominent, "motion_beat_rule='local_minima'")
        if not prominent and int(self.motion_beat_order) < 1:
            raise ValueError(f"motion_beat_order must be >= 1 frame, got {self.motion_beat_order}")
        given = self.motion_speed_normalisation == "given_mean"
        if given and len(self.motion_joint_mean_speed) != len(self.beat_points):
            raise ValueError(f"motion_joint_mean_speed: motion_speed_normalisation='given_mean' needs one mean "
                             f"speed per beat point ({len(self.beat_points)}), got {len(self.motion_joint_mean_speed)}")
        if given and min(self.motion_joint_mean_speed) <= 0:
            raise ValueError("motion_joint_mean_speed: every mean speed must be > 0")
        if not given and self.motion_joint_mean_speed:
            raise ValueError("motion_joint_mean_speed is read only with motion_speed_normalisation='given_mean'; "
                             "leave it empty or set that normalisation")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        """A short hash of every field: equal digests, comparable numbers."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def digest_of(self, prefix: str) -> str:
        """A short hash of the fields named ``prefix``... (e.g. "fvd_": what a cached I3D statistic depends
        on), so that a cache of one metric's features outlives a change to another metric's fields."""
        fields = {k: v for k, v in self.to_dict().items() if k.startswith(prefix)}
        if not fields:
            raise ValueError(f"no protocol field starts with {prefix!r}")
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.version}, {self.digest})"

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


# Each preset belongs to one metric and sets only that metric's fields, on top of the default
# (``imac-bench``). Presets of different metrics combine: ``videogpt+emage``.
PRESET_METRICS = PRESET_GROUPS       # metrics.registry: each metric's preset group


@dataclass(frozen=True)
class Preset:
    """A named published variant of one metric: the fields it sets and the peer it reproduces."""

    metric: str
    fields: dict
    source: str

    def __post_init__(self) -> None:
        if self.metric not in PRESET_METRICS:
            raise ValueError(f"a preset's metric must be one of {', '.join(PRESET_METRICS)}, got {self.metric!r}")


PRESETS: dict[str, Preset] = {
    # BAS presets set every BAS field but beat_points (the peers' joints have no COCO-WholeBody
    # counterpart; PROTOCOL.md says what each rule is fed) and the per-point mean speeds.
    "aist": Preset("BAS", {
        "bas_fps": 60.0, "bas_direction": "motion_to_audio", "bas_sigma": 3 / 60,
        "audio_sample_rate": 60 * 512, "audio_beat_rule": "beat_track", "onset_hop_length": 512,
        "beat_track_start_bpm": 120.0, "motion_speed": "backward", "motion_speed_normalisation": "none",
        "motion_joints": "mean", "motion_smoothing": 0.0, "motion_beat_rule": "local_minima",
        "motion_beat_prominence": None, "motion_beat_min_gap": None, "motion_beat_order": 10,
        "motion_beat_threshold": None, "ignore_edges": 0.0, "bas_clip_weight": "clip",
        "bas_audio": "real"},
        "AIST++ BeatAlign, google-research/mint tools/calculate_beat_scores.py (motion_peak_onehot, "
        "alignment_score) and tools/preprocessing.py (cache_audio_features) at 83d64b9 (PR #41)"),
    "bailando": Preset("BAS", {
        "bas_fps": 60.0, "bas_direction": "audio_to_motion", "bas_sigma": 3 / 60,
        "audio_sample_rate": 60 * 512, "audio_beat_rule": "percussive_beat_track", "onset_hop_length": 512,
        "beat_track_start_bpm": 120.0, "motion_speed": "forward", "motion_speed_normalisation": "none",
        "motion_joints": "mean", "motion_smoothing": 5.0, "motion_beat_rule": "local_minima",
        "motion_beat_prominence": None, "motion_beat_min_gap": None, "motion_beat_order": 1,
        "motion_beat_threshold": None, "ignore_edges": 0.0, "bas_clip_weight": "clip",
        "bas_audio": "real"},
        "Bailando, lisiyao21/Bailando utils/beat_align_score.py (calc_db, BA) and extractor.py "
        "(FeatureExtractor.get_hpss, get_onset_strength, get_onset_beat) at cc90b98"),
    "emage": Preset("BAS", {
        "bas_fps": 30.0, "bas_direction": "audio_to_motion", "bas_sigma": 0.3,
        "audio_sample_rate": 16000, "audio_beat_rule": "onsets", "onset_hop_length": 512,
        "beat_track_start_bpm": None, "motion_speed": "central", "motion_speed_normalisation": "clip_mean",
        "motion_joints": "each", "motion_smoothing": 0.0, "motion_beat_rule": "local_minima",
        "motion_beat_prominence": None, "motion_beat_min_gap": None, "motion_beat_order": 7,
        "motion_beat_threshold": 0.1, "ignore_edges": 2.0, "bas_clip_weight": "frames",
        "bas_audio": "real"},
        "EMAGE BC, PantoMatrix/PantoMatrix emage_evaltools/mertic.py (BC.load_audio, BC.load_motion, "
        "BC.compute, BC.avg) at 0bbb03d, as train_emage_audio.py's evaluation_fn calls it"),
    "emage-l1div": Preset("Diversity", {
        "diversity_kind": "l1div", "diversity_distance": None, "diversity_max_windows": None,
        "diversity_pairs": "all"},
        "EMAGE L1div, PantoMatrix/PantoMatrix emage_evaltools/mertic.py (L1div.compute, L1div.avg) at 0bbb03d"),
    "toy-faces": Preset("Lip sync", {
        "lipsync_min_track": 24, "lipsync_min_face_size": 12.0, "lipsync_face_confidence": 0.0},
        "not a peer: the toy corpus's drawn faces (about 20 px in 128-px frames, clips of 3.6-6 s), which "
        "syncnet_python's run_pipeline.py defaults (tracks of more than 100 detections, faces over 100 px) "
        "would all skip; the same values as metrics.lipsync.TOY_SETTINGS, which the toy Sync-C* stand-in "
        "is trained with"),
    "cyberhost": Preset("Hands", {"hkv_space": "pixels", "hkv_min_frames": 2},
        "CyberHost (arXiv 2409.01876, Sec. 4.1) and EchoMimicV2 (arXiv 2411.10061, Sec. 4): HKV in pixels, the "
        "papers' likely unit (both define HKC/HKV in words only and released no code; metrics/hands.py)"),
    # FVD presets set every FVD field but fvd_clips (which clips of a video are taken is each peer's
    # data loader's business, not its FVD code's). What was compared with each peer: PROTOCOL.md,
    # tests/test_fvd_presets.py, tests/fixtures/peers/fvd_*.json.
    "videogpt": Preset("FVD", {
        "fvd_frames": 16, "fvd_resolution": 224, "fvd_value_range": "[0,255] -> [-1,1]",
        "fvd_resize": "shorter-side-crop", "fvd_covariance": "unbiased"},
        "VideoGPT, wilson1yan/VideoGPT videogpt/fvd/fvd.py (preprocess with videogpt/data.py preprocess, "
        "frechet_distance: TF-GAN trace sqrt) at 733d2b1; the same as JunyaoHu/common_metrics_on_video_quality "
        "fvd/videogpt/fvd.py (preprocess, frechet_distance) at 5f75173"),
    "tats": Preset("FVD", {
        "fvd_frames": 16, "fvd_resolution": 224, "fvd_value_range": "[0,255] -> [-1,1]",
        "fvd_resize": "stretch", "fvd_covariance": "unbiased"},
        "TATS, songweige/TATS tats/fvd/fvd.py (preprocess, frechet_distance: TF-GAN trace sqrt) at 03bbce1; "
        "the imac-bench default"),
    "styleganv": Preset("FVD", {
        "fvd_frames": 16, "fvd_resolution": 224, "fvd_value_range": "[0,255] -> [-1,1]",
        "fvd_resize": "torchscript-internal", "fvd_covariance": "biased"},
        "StyleGAN-V fvd2048_16f, universome/stylegan-v src/metrics/metric_main.py (fvd2048_16f), "
        "src/metrics/frechet_video_distance.py (compute_fvd) and src/metrics/metric_utils.py (FeatureStats) "
        "at 3fecd69; needs its i3d_torchscript.pt, which rescales and resizes inside (not compared)"),
    "cdfvd": Preset("FVD", {
        "fvd_frames": 16, "fvd_resolution": 224, "fvd_value_range": "[0,255] -> [-1,1]",
        "fvd_resize": "stretch", "fvd_covariance": "biased"},
        "cd-fvd's I3D path, songweige/content-debiased-fvd cdfvd/third_party/i3d/utils.py (preprocess_i3d), "
        "cdfvd/fvd.py (get_i3d_logits, cdfvd.compute_fvd_from_stats) and cdfvd/utils/metric_utils.py "
        "(FeatureStats) at a1e037a; its VideoMAE features (cdfvd(model='videomae')) are out of scope"),
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
