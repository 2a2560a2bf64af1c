"""Lip sync: Sync-C and Sync-D (LSE-C / LSE-D), the SyncNet evaluation Wav2Lip and its followers use.

Source of the procedure: joonson/syncnet_python at commit 6efbb1c305c23f47a62b09cf4215a8ac45e97d49
(``run_pipeline.py``: face detection, tracking and cropping; ``SyncNetInstance.evaluate``: the
offset search), which Wav2Lip's ``evaluation/scores_LSE`` scripts call unchanged. Reimplemented
here; what differs is listed in ``docs/lipsync.md``. The steps, for one clip:

1. **25 fps.** Frames are resampled to 25 fps by nearest frame (syncnet_python converts with
   ``ffmpeg -r 25``); the audio is mono 16 kHz (:data:`AUDIO_RATE`), 640 samples per video frame.
2. **Faces.** The project's one face detector (:mod:`metrics.faces`, MTCNN on onnxruntime) on every
   frame, NOT syncnet_python's S3FD (``sfd_face.pth``): boxes differ a little between detectors, and
   with them the crop, so numbers can differ from S3FD-based ones.
3. **Tracks** (``track_shot``): detections are chained while consecutive ones overlap with IoU >
   0.5 and at most 25 frames apart; a track needs more than ``min_track`` detections (100, i.e. 4 s,
   in syncnet_python) and a mean box side over ``min_face_size`` pixels (100); its boxes are
   linearly interpolated over the frames it misses.
4. **Crops** (``crop_video``): per frame the box's half-side ``s = max(w, h) / 2`` and centre, each
   median-filtered over 13 frames (``scipy.signal.medfilt``, zero-padded ends as there); the frame
   padded by ``int(s (1 + 2 c))`` pixels of value 110, the window rows ``[y - s, y + s (1 + 2 c))``,
   columns ``[x - s (1 + c), x + s (1 + c))`` with crop scale ``c = 0.4`` (so the crop reaches
   below the chin), resized to 224x224 with bilinear ``cv2.resize``.
5. **Offsets** (``SyncNetInstance.evaluate``, :func:`sync_offsets`): MFCCs (:func:`mfcc`) of the
   track's audio; one video embedding per 5-frame window starting at frame ``i`` and one audio
   embedding of MFCC frames ``4i .. 4i + 19``, for ``i < min(F, samples // 640) - 5``; for each
   offset ``k`` in ``-15 .. 15`` frames the mean over windows of the Euclidean distance between the
   video embedding ``i`` and the audio embedding ``i + k`` (a zero vector past either end, as there);
   **Sync-D** = the smallest mean distance, the **offset** found = minus its ``k`` (syncnet_python's
   sign: positive when the audio leads), **Sync-C** = median of the 31 mean distances minus the
   smallest.

A clip with several face tracks scores the mean of its tracks (Wav2Lip's script prints one line per
track). A clip without a track has no value (NaN), counted as a failure with the reason; every
clip reports the frames in which no face was found and the offset found. Set-level: the mean over
the clips that have a value (:func:`reduce_lip_sync`; through the evaluator, ``ClipMean``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import scipy.fft
import scipy.signal
import torch

from metrics.faces import Face, FaceDetector, make_face_detector
from metrics.registry import (
    ClipInputs,
    ClipMean,
    ClipMetric,
    ClipValues,
    MissingWeights,
)
from metrics.syncnet import (
    CROP_SIZE,
    MFCC_WINDOW,
    VIDEO_WINDOW,
    LoadedSyncNet,
    SyncNet,
    load_syncnet,
)

VIDEO_FPS = 25                       # SyncNet's frame rate
AUDIO_RATE = 16000                   # SyncNet's audio sample rate
SAMPLES_PER_FRAME = AUDIO_RATE // VIDEO_FPS   # 640
MFCC_PER_FRAME = 4                   # 100 Hz MFCCs per 25 fps frame

# python_speech_features.mfcc's defaults (version 0.6), which SyncNetInstance.evaluate relies on.
MFCC_WINDOW_SAMPLES = 400            # 25 ms
MFCC_STEP_SAMPLES = 160              # 10 ms
MFCC_FFT = 512
MFCC_FILTERS = 26
MFCC_COEFFICIENTS = 13
MFCC_PREEMPHASIS = 0.97
MFCC_LIFTER = 22
INT16_SCALE = 32768.0                # syncnet_python reads 16-bit PCM as integers: MFCC c0 depends on it


@dataclass(frozen=True)
class LipSyncSettings:
    """The pipeline's constants; the defaults are syncnet_python's (``run_pipeline.py`` options,
    ``run_syncnet.py --vshift 15``).

    ``face_confidence``: the detector's threshold (None: the detector's own default; MTCNN log-odds
    3.0, p = 0.953; S3FD there uses p >= 0.9). ``face_min_fraction``: the smallest face the
    detector searches for, as a fraction of the frame's shorter side. ``toy`` settings
    (:data:`TOY_SETTINGS`) admit the toy corpus's small faces and short clips.
    """

    vshift: int = 15                 # offsets searched: -vshift .. vshift frames
    crop_scale: float = 0.40
    smooth_kernel: int = 13          # median filter of box size and centre, frames (odd)
    pad_value: int = 110
    track_iou: float = 0.5
    max_missed: int = 25             # frames a track may go without a detection
    min_track: int = 100             # a track needs MORE detections than this
    min_face_size: float = 100.0     # mean box side (pixels of the frame) a track needs to exceed
    face_confidence: float | None = None
    face_min_fraction: float = 0.05
    batch_size: int = 20

    def __post_init__(self) -> None:
        if self.vshift < 1 or self.smooth_kernel < 1 or self.smooth_kernel % 2 == 0:
            raise ValueError(f"lip sync: vshift must be >= 1 and smooth_kernel odd, got {self.vshift}, "
                             f"{self.smooth_kernel}")
        if not 0 < self.track_iou < 1 or self.min_track < self.smooth_kernel - 1 or self.crop_scale < 0:
            raise ValueError("lip sync: track_iou in (0, 1), min_track >= smooth_kernel - 1 (shorter tracks "
                             "would be median-filtered to zero) and crop_scale >= 0 are required")

    @classmethod
    def from_protocol(cls, protocol: Any) -> LipSyncSettings:
        """The settings named ``lipsync_<field>`` on a ``metrics.protocol.Protocol`` (a field it
        lacks keeps this class's default)."""
        values = {name: getattr(protocol, f"lipsync_{name}") for name in cls.__dataclass_fields__
                  if hasattr(protocol, f"lipsync_{name}")}
        return cls(**values)


# The toy corpus (128 px frames, faces about 20 px, clips of 3.6-6 s): faces down to 12 px, tracks
# of more than 24 detections (1 s), MTCNN's face probability >= 0.5 (its toy faces score log-odds
# 1.7 to 6.6). Everything else as syncnet_python.
TOY_SETTINGS = LipSyncSettings(min_track=24, min_face_size=12.0, face_confidence=0.0)


# -- audio front end -------------------------------------------------------------------------------


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(filters: int = MFCC_FILTERS, fft_size: int = MFCC_FFT, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """``(filters, fft_size // 2 + 1)`` triangular filters on FFT bins, as python_speech_features
    builds them: edges equally spaced on the HTK mel scale from 0 Hz to Nyquist, each edge rounded
    DOWN to an FFT bin (``floor((fft_size + 1) f / sample_rate)``), unnormalised triangles of peak 1.
    (librosa's filters are continuous and area-normalised, so its MFCCs differ.)"""
    edges_mel = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), filters + 2)
    edges = np.floor((fft_size + 1) * _mel_to_hz(edges_mel) / sample_rate).astype(np.int64)
    bank = np.zeros((filters, fft_size // 2 + 1))
    for j in range(filters):
        low, centre, high = edges[j], edges[j + 1], edges[j + 2]
        rising = np.arange(low, centre)
        bank[j, rising] = (rising - low) / (centre - low)
        falling = np.arange(centre, high)
        bank[j, falling] = (high - falling) / (high - centre)
    return bank


def mfcc(samples: np.ndarray) -> np.ndarray:
    """MFCCs ``(T, 13)`` at 100 Hz of mono 16 kHz audio, equal to ``python_speech_features.mfcc(x,
    16000)`` with its defaults (v0.6) on the 16-bit integer samples syncnet_python reads.

    ``samples``: float (S,) in [-1, 1] (scaled by 32768 to int16 units, rounded and clipped as a
    16-bit PCM file holds them) or int16 (used as they are). Steps: pre-emphasis 0.97; frames of 400
    samples every 160, the last one zero-padded, ``T = 1 + ceil((S - 400) / 160)`` (1 if S <= 400);
    rectangular window; power spectrum ``|rfft_512|^2 / 512``; 26 mel filters
    (:func:`mel_filterbank`); natural log (zeros -> float eps); orthonormal DCT-II, first 13;
    sinusoidal lifter 22; coefficient 0 replaced by the log of the frame's total power.
    """
    signal = np.asarray(samples)
    if signal.ndim != 1:
        raise ValueError(f"mfcc: audio must be mono (S,), got shape {signal.shape}")
    if signal.dtype != np.int16:
        signal = np.clip(np.round(signal.astype(np.float64) * INT16_SCALE), -32768, 32767)
    signal = signal.astype(np.float64)
    emphasised = np.concatenate([signal[:1], signal[1:] - MFCC_PREEMPHASIS * signal[:-1]])
    count = len(emphasised)
    frames = 1 if count <= MFCC_WINDOW_SAMPLES else 1 + math.ceil((count - MFCC_WINDOW_SAMPLES) / MFCC_STEP_SAMPLES)
    padded = np.zeros((frames - 1) * MFCC_STEP_SAMPLES + MFCC_WINDOW_SAMPLES)
    padded[:count] = emphasised
    starts = np.arange(frames)[:, None] * MFCC_STEP_SAMPLES
    windows = padded[starts + np.arange(MFCC_WINDOW_SAMPLES)[None, :]]
    power = np.abs(np.fft.rfft(windows, MFCC_FFT)) ** 2 / MFCC_FFT
    tiny = np.finfo(np.float64).eps
    energy = power.sum(axis=1)
    energy[energy == 0] = tiny
    banks = power @ mel_filterbank().T
    banks[banks == 0] = tiny
    cepstra = scipy.fft.dct(np.log(banks), type=2, axis=1, norm="ortho")[:, :MFCC_COEFFICIENTS]
    cepstra *= 1.0 + (MFCC_LIFTER / 2.0) * np.sin(np.pi * np.arange(MFCC_COEFFICIENTS) / MFCC_LIFTER)
    cepstra[:, 0] = np.log(energy)
    return cepstra


# -- the offset search -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    """SyncNet's answer for one face track: ``min_distance`` (Sync-D), ``confidence`` (Sync-C),
    ``offset`` (frames; positive: the audio leads the video), ``mean_distances`` ``(2 vshift + 1,)``
    the mean distance at each shift ``k = -vshift .. vshift``, ``windows`` the 5-frame windows used."""

    min_distance: float
    confidence: float
    offset: int
    mean_distances: np.ndarray
    windows: int


def _embed(network: SyncNet, crops: np.ndarray, cepstra: np.ndarray, windows: int, batch_size: int,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    video = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1]))      # RGB -> BGR, as cv2.imread gives
    audio = torch.from_numpy(cepstra.T.astype(np.float32))                 # (13, T)
    video_out, audio_out = [], []
    with torch.no_grad():
        for start in range(0, windows, batch_size):
            index = range(start, min(windows, start + batch_size))
            clips = torch.stack([video[i:i + VIDEO_WINDOW] for i in index])              # (B, 5, H, W, 3)
            clips = clips.permute(0, 4, 1, 2, 3).to(device=device, dtype=torch.float32)  # (B, 3, 5, H, W)
            video_out.append(network.embed_video(clips).cpu())
            mels = torch.stack([audio[:, MFCC_PER_FRAME * i:MFCC_PER_FRAME * i + MFCC_WINDOW] for i in index])
            audio_out.append(network.embed_audio(mels[:, None].to(device)).cpu())
    return torch.cat(video_out), torch.cat(audio_out)


def shift_distances(video: torch.Tensor, audio: torch.Tensor, vshift: int) -> np.ndarray:
    """``(N, 2 vshift + 1)`` distances between video embedding ``i`` and audio embedding ``i + k``
    for ``k = -vshift .. vshift`` (a zero vector where ``i + k`` is outside ``0 .. N-1``), as
    ``torch.nn.functional.pairwise_distance`` computes them (``||v - a + 1e-6||``)."""
    count, width = video.shape
    padded = torch.cat([audio.new_zeros(vshift, width), audio, audio.new_zeros(vshift, width)])
    rows = []
    for i in range(count):
        rows.append(torch.nn.functional.pairwise_distance(video[i].expand(2 * vshift + 1, width),
                                                          padded[i:i + 2 * vshift + 1]))
    return torch.stack(rows).double().numpy()


def sync_offsets(network: SyncNet, crops: np.ndarray, audio: np.ndarray, vshift: int = 15,
                 batch_size: int = 20, device: str | torch.device = "cpu") -> SyncResult:
    """Sync-D, Sync-C and the offset of one face track (``SyncNetInstance.evaluate``).

    ``crops``: uint8 ``(F, 224, 224, 3)`` RGB face crops at 25 fps; ``audio``: mono 16 kHz (float in
    [-1, 1] or int16) of the same span. Uses ``min(F, S // 640) - 5`` windows (syncnet_python
    leaves the last possible one out too). Raises ``ValueError`` for crops of another size or a
    track too short for one window.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise ValueError(f"sync_offsets: crops must be (F, {CROP_SIZE}, {CROP_SIZE}, 3), got {crops.shape}")
    length = min(len(crops), len(audio) // SAMPLES_PER_FRAME)
    windows = length - VIDEO_WINDOW
    if windows < 1:
        raise ValueError(f"sync_offsets: {len(crops)} frames and {len(audio)} audio samples hold no "
                         f"window of {VIDEO_WINDOW + 1} frames")
    device = torch.device(device)
    video, voice = _embed(network, crops, mfcc(audio), windows, batch_size, device)
    distances = shift_distances(video, voice, vshift)
    means = distances.mean(axis=0)
    best = int(np.argmin(means))
    median = float(np.sort(means)[(len(means) - 1) // 2])     # torch.median: the lower middle value
    return SyncResult(float(means[best]), median - float(means[best]), vshift - best, means, windows)


# -- faces: detection, tracks, crops ---------------------------------------------------------------


def to_video_rate(frames: np.ndarray, fps: float) -> np.ndarray:
    """Frames resampled to 25 fps by nearest frame in time (frame ``round(k fps / 25)`` for the k-th
    output frame, over the clip's duration). Identity at 25 fps."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if abs(fps - VIDEO_FPS) < 1e-9:
        return frames
    count = math.floor(len(frames) * VIDEO_FPS / fps + 1e-9)
    index = np.minimum(np.floor(np.arange(count) * fps / VIDEO_FPS + 0.5).astype(np.int64), len(frames) - 1)
    return frames[index]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FaceTrack:
    """One face followed over frames ``first .. first + len(boxes) - 1``: ``boxes`` ``(n, 4)``
    ``x0, y0, x1, y1`` pixels, interpolated where the detector missed; ``detections`` the frames
    where it found the face."""

    first: int
    boxes: np.ndarray
    detections: int

    @property
    def frames(self) -> range:
        return range(self.first, self.first + len(self.boxes))


def face_tracks(detections: Sequence[Sequence[Face]], settings: LipSyncSettings = LipSyncSettings()) -> list[FaceTrack]:
    """Chain per-frame faces into tracks (syncnet_python's ``track_shot``).

    A track starts at the first face left; a later face joins it when it is at most
    ``max_missed`` frames after the track's last face and overlaps it with IoU > ``track_iou`` (one
    face per frame, in the detector's order); the track ends at the first frame too far away.
    Kept: tracks of more than ``min_track`` faces whose interpolated boxes have a mean width or
    height over ``min_face_size``. (syncnet_python removes faces from the list it iterates, which
    can skip a second face in the same frame; here every face is considered.)
    """
    left = [list(faces) for faces in detections]
    tracks = []
    while True:
        chain: list[tuple[int, Face]] = []
        for frame, faces in enumerate(left):
            if chain and frame - chain[-1][0] > settings.max_missed:
                break
            for face in faces:
                if not chain or (frame > chain[-1][0] and box_iou(_box(face), _box(chain[-1][1])) > settings.track_iou):
                    chain.append((frame, face))
                    faces.remove(face)
                    break
        if not chain:
            return tracks
        if len(chain) <= settings.min_track:
            continue
        frames = np.array([frame for frame, _ in chain])
        boxes = np.array([_box(face) for _, face in chain], dtype=np.float64)
        span = np.arange(frames[0], frames[-1] + 1)
        filled = np.stack([np.interp(span, frames, boxes[:, j]) for j in range(4)], axis=1)
        if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > settings.min_face_size:
            tracks.append(FaceTrack(int(frames[0]), filled, len(chain)))


def _box(face: Face) -> tuple[float, float, float, float]:
    return (face.x0, face.y0, face.x1, face.y1)


def crop_track(frames: np.ndarray, track: FaceTrack, settings: LipSyncSettings = LipSyncSettings()) -> np.ndarray:
    """uint8 ``(n, 224, 224, 3)`` crops of a track (syncnet_python's ``crop_video``, see the module
    docstring, step 4), in the frames' channel order."""
    boxes = track.boxes
    half = scipy.signal.medfilt(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2,
                                settings.smooth_kernel)
    centre_y = scipy.signal.medfilt((boxes[:, 1] + boxes[:, 3]) / 2, settings.smooth_kernel)
    centre_x = scipy.signal.medfilt((boxes[:, 0] + boxes[:, 2]) / 2, settings.smooth_kernel)
    scale = settings.crop_scale
    out = np.empty((len(boxes), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for n, frame_index in enumerate(track.frames):
        s = float(half[n])
        pad = int(s * (1 + 2 * scale))
        padded = np.pad(frames[frame_index], ((pad, pad), (pad, pad), (0, 0)), constant_values=settings.pad_value)
        y, x = centre_y[n] + pad, centre_x[n] + pad
        face = padded[int(y - s):int(y + s * (1 + 2 * scale)), int(x - s * (1 + scale)):int(x + s * (1 + scale))]
        if face.size == 0:
            raise ValueError(f"crop_track: empty crop at frame {frame_index} (box half-side {s:.1f} px)")
        out[n] = cv2.resize(face, (CROP_SIZE, CROP_SIZE))
    return out


def detect_faces(frames: np.ndarray, detector: FaceDetector, confidence: float | None = None) -> list[list[Face]]:
    """The faces ``detector`` finds in each frame with at least ``confidence`` (None: its default)."""
    threshold = detector.default_confidence if confidence is None else confidence
    return [[face for face in detector(frame) if face.confidence >= threshold] for frame in frames]


# -- one clip and a set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LipSyncRecord:
    """One clip's lip sync. ``min_distance`` (Sync-D) and ``confidence`` (Sync-C): the mean over its
    face tracks, NaN when it has none; ``offset``: the offset (frames at 25 fps) of its longest
    track (0 when none; positive: the audio leads); ``frames``: frames at 25 fps;
    ``frames_with_face``: frames where the detector found a face; ``detection_failures``: frames
    without one; ``tracks``: face tracks scored; ``failure``: why there is no value (None if there
    is one); ``face_source``: what found the faces."""

    min_distance: float
    confidence: float
    offset: int
    frames: int
    frames_with_face: int
    tracks: int
    failure: str | None = None
    face_source: str = "mtcnn"
    per_track: tuple[SyncResult, ...] = field(default=(), repr=False)

    @property
    def detection_failures(self) -> int:
        return self.frames - self.frames_with_face

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The record as 0-d arrays (what the evaluator caches)."""
        return {"distance": np.float64(self.min_distance), "confidence": np.float64(self.confidence),
                "offset": np.int64(self.offset), "frames": np.int64(self.frames),
                "frames_with_face": np.int64(self.frames_with_face), "tracks": np.int64(self.tracks)}


def lip_sync_clip(frames: np.ndarray, fps: float, audio: np.ndarray, syncnet: SyncNet | LoadedSyncNet,
                  detector: FaceDetector | None = None, settings: LipSyncSettings = LipSyncSettings(),
                  face_boxes: np.ndarray | None = None, device: str | torch.device = "cpu") -> LipSyncRecord:
    """Sync-C / Sync-D of one clip through the whole pipeline (module docstring, steps 1-5).

    ``frames``: uint8 ``(F, H, W, 3)`` RGB; ``fps``: their rate; ``audio``: float32 mono at 16 kHz
    from the clip's first frame. ``detector``: a :mod:`metrics.faces` detector (default: MTCNN).
    ``face_boxes``: ``(F, 4)`` boxes at the clip's own frame rate to use instead of a detector (one
    track over the whole clip; the toy corpus's metadata), labelled ``face_source="given boxes"``.
    Raises ``ValueError`` for frames that are not ``(F, H, W, 3)`` uint8 or audio that is not mono.
    """
    network = syncnet.network if isinstance(syncnet, LoadedSyncNet) else syncnet
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"lip sync: frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"lip sync: audio must be mono (S,), got shape {audio.shape}")
    video = to_video_rate(frames, fps)
    if face_boxes is not None:
        boxes = to_video_rate(np.asarray(face_boxes, dtype=np.float64), fps)
        tracks = [FaceTrack(0, boxes, len(boxes))]
        found, source = len(boxes), "given boxes"
    else:
        own = detector is None
        detector = detector or make_face_detector("mtcnn", min_face_fraction=settings.face_min_fraction)
        try:
            faces = detect_faces(video, detector, settings.face_confidence)
        finally:
            if own:
                detector.close()
        tracks = face_tracks(faces, settings)
        found, source = sum(1 for frame_faces in faces if frame_faces), detector.name
    results = []
    for track in tracks:
        crops = crop_track(video, track, settings)
        span = audio[track.first * SAMPLES_PER_FRAME:(track.first + len(track.boxes)) * SAMPLES_PER_FRAME]
        try:
            results.append(sync_offsets(network, crops, span, settings.vshift, settings.batch_size, device))
        except ValueError:
            continue                   # a track whose audio ends before one window: not scored
    if not results:
        reason = "no face track" if not tracks else "no face track with audio for one window"
        return LipSyncRecord(math.nan, math.nan, 0, len(video), found, 0, reason, source)
    longest = max(results, key=lambda r: r.windows)
    return LipSyncRecord(float(np.mean([r.min_distance for r in results])),
                         float(np.mean([r.confidence for r in results])), longest.offset, len(video), found,
                         len(results), None, source, tuple(results))


@dataclass(frozen=True)
class LipSyncSummary:
    """Set-level lip sync: ``sync_c`` / ``sync_d`` the means over the clips with a value, ``clips``
    all clips, ``scored`` those with a value, ``failures`` the reason of each clip without one,
    ``detection_failures`` frames without a face over all clips, ``offsets`` how many clips were
    found at each offset."""

    sync_c: float
    sync_d: float
    clips: int
    scored: int
    failures: dict[str, int]
    detection_failures: int
    offsets: dict[int, int]


def reduce_lip_sync(records: Sequence[LipSyncRecord]) -> LipSyncSummary:
    """The set-level Sync-C / Sync-D of per-clip records (means over the clips with a value)."""
    scored = [r for r in records if r.failure is None]
    failures: dict[str, int] = {}
    for record in records:
        if record.failure is not None:
            failures[record.failure] = failures.get(record.failure, 0) + 1
    offsets: dict[int, int] = {}
    for record in scored:
        offsets[record.offset] = offsets.get(record.offset, 0) + 1
    mean = (lambda values: float(np.mean(values)) if values else math.nan)
    return LipSyncSummary(mean([r.confidence for r in scored]), mean([r.min_distance for r in scored]), len(records),
                          len(scored), failures, sum(r.detection_failures for r in records), dict(sorted(offsets.items())))


# -- the evaluator's hook (metrics.registry.ClipMetric) --------------------------------------------


class _LipSync(ClipMetric):
    """Shared by Sync-C and Sync-D: one SyncNet pass per clip gives both (the same ``clip`` output).

    ``weights``: the local path of ``syncnet_v2.model`` (Sync-C / Sync-D) or of a stand-in trained
    by :func:`metrics.lipsync_training.train_syncnet_standin` (Sync-C* / Sync-D*). Settings come
    from the protocol's ``lipsync_*`` fields (:meth:`LipSyncSettings.from_protocol`).
    """

    computation = "syncnet"           # one SyncNet pass per video gives both values (cached once)
    needs = frozenset({"frames", "audio"})
    value_name = ""
    published_label = ""

    @property
    def label(self) -> str:
        """The registry's label (this module's until the registry lists it), starred for a stand-in."""
        from metrics.registry import REGISTRY
        base = REGISTRY[self.id].label if self.id in REGISTRY else self.published_label
        return base + ("*" if self.pretrained is False else "")

    def __init__(self, protocol, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(protocol, weights, device)
        if weights is None:
            raise MissingWeights(f"{self.published_label} needs SyncNet weights (syncnet_python's syncnet_v2.model, or a "
                                 "stand-in trained on the toy corpus): give --weights syncnet=PATH")
        self.syncnet = load_syncnet(weights, device)
        self.pretrained = self.syncnet.published
        self.weights_id = self.syncnet.weights_id
        self.settings = LipSyncSettings.from_protocol(protocol)
        self._detector: FaceDetector | None = None

    def clip(self, inputs: ClipInputs) -> dict[str, np.ndarray]:
        if inputs.sample_rate != AUDIO_RATE:
            raise ValueError(f"{inputs.source}: lip sync needs 16 kHz audio, got {inputs.sample_rate} Hz")
        if self._detector is None:
            self._detector = make_face_detector("mtcnn", min_face_fraction=self.settings.face_min_fraction)
        try:
            record = lip_sync_clip(inputs.frames, inputs.fps, inputs.audio, self.syncnet, self._detector,
                                   self.settings, device=self.device)
        except ValueError as error:
            raise ValueError(f"{inputs.source}: {error}") from None
        return record.to_arrays()

    def reduce(self, real: Sequence[ClipValues], fake: Sequence[ClipValues]) -> ClipMean:
        return ClipMean(self.label, self.protocol, [c.scalar(self.value_name) for c in fake], lower=0.0)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"features": f"SyncNet ({self.weights_id}) audio-visual distances over offsets -{s.vshift}..{s.vshift}",
                "input": (f"25 fps; MTCNN face tracks (IoU > {s.track_iou}, > {s.min_track} detections, faces over "
                          f"{s.min_face_size:g} px); crop scale {s.crop_scale}, 224x224; 13 MFCCs at 100 Hz of "
                          "16 kHz audio")}


class LipSyncConfidence(_LipSync):
    """Sync-C (LSE-C): median minus smallest mean SyncNet distance over offsets; higher is better."""

    id = "sync_c"
    value_name = "confidence"
    published_label = "Sync-C"


class LipSyncDistance(_LipSync):
    """Sync-D (LSE-D): the smallest mean SyncNet distance over offsets; lower is better."""

    id = "sync_d"
    value_name = "distance"
    published_label = "Sync-D"
