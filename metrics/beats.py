"""Beats and the beat alignment score (BAS).

- ``speech_beats``: onsets of the speech (librosa's onset detection at the protocol's sample rate
  and hop length), in seconds. Times are converted with the real sample rate: one published
  implementation converts 16 kHz onset frames with librosa's default 22050 Hz, shrinking every
  beat time by a factor 0.73; this one does not.
- ``motion_beats``: moments where the gesturing slows to a stop: local minima of the kinetic
  speed (mean speed of the beat points, in shoulder widths per second, lightly smoothed) that dip
  at least ``prominence`` below the speeds around them. The prominence keeps a still speaker (or
  a static video with jittering keypoints) from producing beats out of noise.
- ``beat_alignment_score``: mean over the source beats of exp(-d^2 / (2 sigma^2)), d the distance
  to the nearest target beat. ``motion_to_audio`` (Li et al. 2021, AIST++) takes motion beats as
  the source; ``audio_to_motion`` (EMAGE/BEAT) takes the audio beats.

No beats: a clip with no source beats scores 0 (nothing is aligned), and so does each source beat
when there is no target beat at all (infinite distance). Both rules make a still video score
worst, which is what the metric should do; they are part of the protocol.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from metrics.bootstrap import bootstrap_interval
from metrics.io.audio import resample
from metrics.protocol import Protocol
from metrics.skeleton import skeleton_sequence


def speech_beats(wav: np.ndarray, sr: int, hop_length: int = 512) -> np.ndarray:
    """Onset times (seconds) of a mono waveform."""
    import librosa  # imported here: its first use compiles with numba, keep it off import paths

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"wav must be mono (samples,), got {wav.shape}")
    if wav.size < hop_length * 4 or not np.any(wav):
        return np.zeros(0)
    onsets = librosa.onset.onset_detect(y=wav, sr=sr, hop_length=hop_length, units="frames")
    return librosa.frames_to_time(onsets, sr=sr, hop_length=hop_length).astype(np.float64)


def kinetic_speed(positions: np.ndarray, fps: float, smoothing: float) -> np.ndarray:
    """Mean speed of the points per frame (F,), from central differences of (F, P, 2) positions."""
    if len(positions) < 3:
        return np.zeros(len(positions))
    velocity = np.gradient(positions, axis=0) * fps
    speed = np.linalg.norm(velocity, axis=-1).mean(axis=1)
    return gaussian_filter1d(speed, smoothing) if smoothing > 0 else speed


def beats_from_speed(speed: np.ndarray, fps: float, prominence: float, min_gap: float,
                     ignore_edges: float = 0.0) -> np.ndarray:
    """Times (seconds) of the prominent local minima of a speed curve."""
    distance = max(1, int(round(min_gap * fps)))
    minima, _ = find_peaks(-speed, prominence=prominence, distance=distance)
    times = minima / fps
    duration = (len(speed) - 1) / fps
    return times[(times >= ignore_edges) & (times <= duration - ignore_edges)]


def motion_beats(keypoints: np.ndarray, fps: float, protocol: Protocol | None = None) -> np.ndarray:
    """Motion beat times (seconds) of COCO-WholeBody keypoints (F, 133, 3) at ``fps``."""
    protocol = protocol or Protocol()
    positions, _ = skeleton_sequence(keypoints, fps, protocol.beat_points, protocol.visibility_threshold,
                                     protocol.fps)
    speed = kinetic_speed(positions, protocol.fps, protocol.motion_smoothing)
    return beats_from_speed(speed, protocol.fps, protocol.motion_beat_prominence,
                            protocol.motion_beat_min_gap, protocol.ignore_edges)


def beat_alignment_score(motion_beats: np.ndarray, audio_beats: np.ndarray, sigma: float,
                         direction: str = "motion_to_audio") -> float:
    """Mean over source beats of exp(-d^2 / (2 sigma^2)), d = distance to the nearest target beat."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 seconds, got {sigma}")
    motion_beats, audio_beats = np.asarray(motion_beats, float).ravel(), np.asarray(audio_beats, float).ravel()
    if direction == "motion_to_audio":
        source, target = motion_beats, audio_beats
    elif direction == "audio_to_motion":
        source, target = audio_beats, motion_beats
    else:
        raise ValueError(f"direction must be 'motion_to_audio' or 'audio_to_motion', got {direction!r}")
    if source.size == 0 or target.size == 0:
        return 0.0
    target = np.sort(target)
    # Nearest target of each source beat by binary search: O((n + m) log m).
    right = np.clip(np.searchsorted(target, source), 0, target.size - 1)
    left = np.clip(right - 1, 0, target.size - 1)
    distance = np.minimum(np.abs(source - target[left]), np.abs(source - target[right]))
    return float(np.mean(np.exp(-distance ** 2 / (2 * sigma ** 2))))


class BAS:
    """Accumulates per-clip beat alignment scores (``update``) and averages them (``compute``).

    The dataset score is the mean of the clips' scores (each clip weighs the same, as in AIST++).
    """

    name = "BAS"
    higher_is_better = True

    def __init__(self, protocol: Protocol | None = None):
        self.protocol = protocol or Protocol()
        self.scores: list[float] = []

    def score(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sr: int) -> float:
        """The BAS of one clip from its keypoints and its audio."""
        if sr != self.protocol.audio_sample_rate:
            wav = resample(np.asarray(wav, dtype=np.float32), sr, self.protocol.audio_sample_rate)
        audio = speech_beats(wav, self.protocol.audio_sample_rate, self.protocol.onset_hop_length)
        motion = motion_beats(keypoints, fps, self.protocol)
        return beat_alignment_score(motion, audio, self.protocol.bas_sigma, self.protocol.bas_direction)

    def update(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sr: int) -> float:
        value = self.score(keypoints, fps, wav, sr)
        self.scores.append(value)
        return value

    def compute(self) -> float:
        if not self.scores:
            raise ValueError("BAS needs clips, got none")
        return float(np.mean(self.scores))

    def interval(self) -> tuple[float, float]:
        scores = np.array(self.scores)
        return bootstrap_interval(lambda i: float(scores[i].mean()), (len(scores),),
                                  self.protocol.bootstrap_samples, self.protocol.bootstrap_seed,
                                  self.protocol.confidence)
