"""Beats and the beat alignment score (BAS), with the rules of the published variants.

One clip's score, step by step (every constant is a ``Protocol`` field; presets name the peers'):

1. Motion: the beat points of the normalised skeleton, resampled to ``bas_fps`` (``beat_positions``).
2. Per-point speed (``joint_speeds``): ``central`` differences (one-sided at the ends, as
   ``np.gradient`` and EMAGE), ``backward`` (0 at frame 0, AIST++/mint) or ``forward`` (one frame
   fewer, Bailando), in units per second.
3. Optional per-point normalisation (``normalise_speeds``): divided by each point's mean speed,
   over the clip (``clip_mean``) or given (``given_mean``: e.g. the training set's, as EMAGE's
   ``mean_vel_smplxflame_30.npy``).
4. The curves whose minima are beats (``speed_curves``): the mean over points (``mean``), or every
   point on its own (``each``, EMAGE); optionally Gaussian-smoothed in time (sigma in frames).
5. Edges: ``ignore_edges`` seconds are cut from both ends of the curves AND of the audio (samples
   ``[e / fps * sr, (F - e) / fps * sr)``), and beat times count from the cut (``trim_edges``).
6. Motion beats (``beat_frames``): ``prominent_minima`` (scipy ``find_peaks`` on the negated curve
   with a prominence and a minimum gap: a still speaker's jitter gives no beat) or ``local_minima``
   (scipy ``argrelextrema(np.less, order)``, the peers' rule); then, with ``motion_beat_threshold``,
   only minima where the curve is above the threshold.
7. Audio beats (``audio_beats``): librosa ``onsets`` (onset_detect), ``beat_track`` on the onset
   strength (mint), or ``percussive_beat_track`` (the same on the percussive part of an HPSS, with
   a median-aggregated onset strength: Bailando). Times use the real sample rate: one published
   implementation converts 16 kHz onset frames with librosa's default 22050 Hz, shrinking every
   beat time by a factor 0.73; this one does not.
8. ``beat_alignment_score`` per curve: mean over the source beats of exp(-d^2 / (2 sigma^2)), d the
   distance to the nearest target beat. ``motion_to_audio`` (AIST++) takes motion beats as the
   source; ``audio_to_motion`` (EMAGE, Bailando) the audio beats. The clip's score is the mean over
   curves (``each``: over points, a point without beats counting 0, as EMAGE).

No beats: a clip with no source beats scores 0 (nothing is aligned), and so does each source beat
when there is no target beat at all (infinite distance). Both rules make a still video score
worst; the peers raise or divide by zero there instead.

The dataset value is the mean of the clips' scores, or (``bas_clip_weight="frames"``, EMAGE) their
mean weighted by the frames each was scored on.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema, find_peaks

from metrics.intervals import ClipStatistic
from metrics.io.audio import resample
from metrics.protocol import Protocol
from metrics.skeleton import skeleton_sequence

# -- audio beats ---------------------------------------------------------------------------------

def _mono(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"wav must be mono (samples,), got {wav.shape}")
    return wav


def speech_beats(wav: np.ndarray, sr: int, hop_length: int = 512) -> np.ndarray:
    """Onset times (seconds) of a mono waveform: ``librosa.onset.onset_detect`` (default settings)."""
    import librosa  # imported here: its first use compiles with numba, keep it off import paths

    wav = _mono(wav)
    if wav.size < hop_length * 4 or not np.any(wav):
        return np.zeros(0)
    onsets = librosa.onset.onset_detect(y=wav, sr=sr, hop_length=hop_length, units="frames")
    return librosa.frames_to_time(onsets, sr=sr, hop_length=hop_length).astype(np.float64)


def tracked_beats(wav: np.ndarray, sr: int, hop_length: int, start_bpm: float,
                  percussive: bool = False) -> np.ndarray:
    """Beat times (seconds) from ``librosa.beat.beat_track`` (tightness 100) on the onset strength.

    ``percussive``: the onset strength (median over frequency bands) of the percussive part of
    ``librosa.effects.hpss``, as Bailando's music features; else of the waveform, as mint's.
    """
    import librosa

    wav = _mono(wav)
    if wav.size < hop_length * 4 or not np.any(wav):
        return np.zeros(0)
    if percussive:
        _, wav = librosa.effects.hpss(wav)
        envelope = librosa.onset.onset_strength(y=wav, sr=sr, hop_length=hop_length, aggregate=np.median)
    else:
        envelope = librosa.onset.onset_strength(y=wav, sr=sr, hop_length=hop_length)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop_length,
                                        start_bpm=start_bpm, tightness=100)
    return librosa.frames_to_time(np.asarray(frames, dtype=int), sr=sr, hop_length=hop_length).astype(np.float64)


def audio_beats(wav: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Audio beat times (seconds) of a mono waveform at ``protocol.audio_sample_rate``, by its rule."""
    sr, hop = protocol.audio_sample_rate, protocol.onset_hop_length
    if protocol.audio_beat_rule == "onsets":
        return speech_beats(wav, sr, hop)
    return tracked_beats(wav, sr, hop, protocol.beat_track_start_bpm,
                         percussive=protocol.audio_beat_rule == "percussive_beat_track")


# -- motion beats --------------------------------------------------------------------------------

def joint_speeds(positions: np.ndarray, fps: float, difference: str = "central") -> np.ndarray:
    """Per-point speed (F, P) in units per second of positions (F, P, D) at ``fps``.

    ``central``: (x[t+1] - x[t-1]) / 2, one-sided at both ends (F rows); ``backward``:
    x[t] - x[t-1] with 0 at frame 0 (F rows); ``forward``: x[t+1] - x[t] (F - 1 rows).
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3 or len(x) < 2:
        raise ValueError(f"positions must be (frames >= 2, points, dims), got {x.shape}")
    if difference == "central":
        velocity = np.gradient(x, axis=0)
    elif difference == "backward":
        velocity = np.concatenate([np.zeros_like(x[:1]), np.diff(x, axis=0)])
    elif difference == "forward":
        velocity = np.diff(x, axis=0)
    else:
        raise ValueError(f"motion_speed must be central, backward or forward, got {difference!r}")
    return np.linalg.norm(velocity, axis=-1) * fps


def normalise_speeds(speeds: np.ndarray, how: str = "none", mean_speed=()) -> np.ndarray:
    """Speeds (F, P) divided by each point's mean speed: over the clip (``clip_mean``; a point that
    never moves stays 0) or ``mean_speed`` (``given_mean``, P values); ``none`` leaves them."""
    if how == "none":
        return speeds
    if how == "clip_mean":
        mean = speeds.mean(axis=0)
        return np.divide(speeds, mean, out=np.zeros_like(speeds), where=mean > 0)
    if how == "given_mean":
        mean = np.asarray(mean_speed, dtype=np.float64)
        if mean.shape != (speeds.shape[1],):
            raise ValueError(f"motion_joint_mean_speed: need {speeds.shape[1]} values, got {mean.shape}")
        return speeds / mean
    raise ValueError(f"motion_speed_normalisation must be none, clip_mean or given_mean, got {how!r}")


def speed_curves(positions: np.ndarray, protocol: Protocol) -> np.ndarray:
    """The curves (F', C) whose minima are motion beats: steps 2-4 of the module docstring.

    ``positions`` (F, P, D) at ``protocol.bas_fps``; C = 1 (``mean``) or P (``each``).
    """
    if len(positions) < 3:   # too short for a minimum: flat curves, no beats
        return np.zeros((len(positions), 1 if protocol.motion_joints == "mean" else np.shape(positions)[1]))
    speeds = joint_speeds(positions, protocol.bas_fps, protocol.motion_speed)
    speeds = normalise_speeds(speeds, protocol.motion_speed_normalisation, protocol.motion_joint_mean_speed)
    curves = speeds.mean(axis=1, keepdims=True) if protocol.motion_joints == "mean" else speeds
    if protocol.motion_smoothing > 0:
        curves = gaussian_filter1d(curves, protocol.motion_smoothing, axis=0)
    return curves


def edge_frames(protocol: Protocol) -> int:
    """Frames cut at each end: ``ignore_edges`` seconds at ``bas_fps``."""
    return round(protocol.ignore_edges * protocol.bas_fps)


def trim_edges(curves: np.ndarray, wav: np.ndarray | None, num_frames: int, protocol: Protocol):
    """Step 5: curves[e : len - e] and the audio samples [e / fps * sr, (F - e) / fps * sr).

    ``num_frames`` is F, the motion's frame count (the audio is cut to the motion's span, as
    EMAGE's evaluation does). Raises ``ValueError`` naming ``ignore_edges`` when nothing is left.
    """
    e = edge_frames(protocol)
    if e == 0:
        return curves, wav
    if len(curves) - 2 * e < 2:
        raise ValueError(f"ignore_edges={protocol.ignore_edges:g} s cuts {e} frames at each end of a clip of "
                         f"{num_frames} frames at {protocol.bas_fps:g} fps: nothing is left to score")
    fps, sr = protocol.bas_fps, protocol.audio_sample_rate
    if wav is not None:
        wav = wav[int(e / fps * sr):int((num_frames - e) / fps * sr)]
    return curves[e:len(curves) - e], wav


def local_minima(curve: np.ndarray, order: int) -> np.ndarray:
    """Indices of strict local minima over ``order`` frames on each side (never the first or last)."""
    return argrelextrema(np.asarray(curve), np.less, order=order)[0]


def prominent_minima(curve: np.ndarray, fps: float, prominence: float, min_gap: float) -> np.ndarray:
    """Indices of the local minima that dip at least ``prominence`` below their sides, ``min_gap`` s apart."""
    distance = max(1, round(min_gap * fps))
    minima, _ = find_peaks(-np.asarray(curve), prominence=prominence, distance=distance)
    return minima


def beat_frames(curve: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Step 6: the motion beat frames of one curve (n,) at ``protocol.bas_fps``."""
    if len(curve) < 3:
        return np.zeros(0, dtype=int)
    if protocol.motion_beat_rule == "local_minima":
        frames = local_minima(curve, protocol.motion_beat_order)
    else:
        frames = prominent_minima(curve, protocol.bas_fps, protocol.motion_beat_prominence,
                                  protocol.motion_beat_min_gap)
    if protocol.motion_beat_threshold is not None:
        frames = frames[curve[frames] > protocol.motion_beat_threshold]
    return frames


def motion_beat_times(positions: np.ndarray, protocol: Protocol) -> list[np.ndarray]:
    """Motion beat times (seconds from the edge cut) of positions (F, P, D) at ``bas_fps``: one
    array per curve (one for ``mean``, one per point for ``each``)."""
    curves, _ = trim_edges(speed_curves(positions, protocol), None, len(positions), protocol)
    return [beat_frames(curve, protocol) / protocol.bas_fps for curve in curves.T]


# Kept for the default rule's callers: the mean central-difference speed, smoothed; its beats.
def kinetic_speed(positions: np.ndarray, fps: float, smoothing: float) -> np.ndarray:
    """Mean speed of the points per frame (F,), from central differences of (F, P, 2) positions."""
    if len(positions) < 3:
        return np.zeros(len(positions))
    speed = joint_speeds(positions, fps, "central").mean(axis=1)
    return gaussian_filter1d(speed, smoothing) if smoothing > 0 else speed


def beats_from_speed(speed: np.ndarray, fps: float, prominence: float, min_gap: float) -> np.ndarray:
    """Times (seconds) of the prominent local minima of a speed curve."""
    return prominent_minima(speed, fps, prominence, min_gap) / fps


# -- the score -----------------------------------------------------------------------------------

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


def alignment_of_beats(motion: list[np.ndarray], audio: np.ndarray, protocol: Protocol) -> float:
    """Step 8: the mean over motion-beat arrays (curves) of their ``beat_alignment_score``."""
    return float(np.mean([beat_alignment_score(m, audio, protocol.bas_sigma, protocol.bas_direction)
                          for m in motion]))


def clip_beat_alignment(positions: np.ndarray, wav: np.ndarray, protocol: Protocol) -> tuple[float, int]:
    """BAS of one clip and the frames it was scored on (its weight with ``bas_clip_weight="frames"``).

    ``positions`` (F, P, D) at ``protocol.bas_fps`` (any units: the rules use minima, or speeds
    normalised per point); ``wav`` mono at ``protocol.audio_sample_rate``.
    """
    curves, wav = trim_edges(speed_curves(positions, protocol), _mono(wav), len(positions), protocol)
    motion = [beat_frames(curve, protocol) / protocol.bas_fps for curve in curves.T]
    return alignment_of_beats(motion, audio_beats(wav, protocol), protocol), len(curves)


def beat_positions(keypoints: np.ndarray, fps: float, protocol: Protocol, source: str = "keypoints") -> np.ndarray:
    """Step 1: the normalised beat points (F', P, 2) of COCO-WholeBody keypoints (F, 133, 3) at ``bas_fps``."""
    positions, _ = skeleton_sequence(keypoints, fps, protocol.beat_points, protocol.visibility_threshold,
                                     protocol.bas_fps, source)
    return positions


def motion_beats(keypoints: np.ndarray, fps: float, protocol: Protocol | None = None) -> np.ndarray:
    """Motion beat times (seconds, sorted; with ``motion_joints="each"`` every point's) of
    COCO-WholeBody keypoints (F, 133, 3) at ``fps``: what a plot of the beats shows."""
    protocol = protocol or Protocol()
    times = motion_beat_times(beat_positions(keypoints, fps, protocol), protocol)
    return np.unique(np.concatenate(times)) if len(times) > 1 else times[0]


class BAS:
    """Accumulates per-clip beat alignment scores (``update``) and averages them (``compute``).

    The dataset score is the mean of the clips' scores (each clip weighs the same, as AIST++ and
    Bailando), or with ``bas_clip_weight="frames"`` (EMAGE) weighted by the frames each clip was
    scored on (``weights``, one per score).
    """

    name = "BAS"
    higher_is_better = True

    def __init__(self, protocol: Protocol | None = None):
        self.protocol = protocol or Protocol()
        self.scores: list[float] = []
        self.weights: list[int] = []

    def clip(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sr: int) -> tuple[float, int]:
        """The BAS of one clip from its keypoints (F, 133, 3) at ``fps`` and its mono audio at ``sr``
        Hz, and the frames (at ``bas_fps``) it was scored on."""
        if sr != self.protocol.audio_sample_rate:
            wav = resample(np.asarray(wav, dtype=np.float32), sr, self.protocol.audio_sample_rate)
        return clip_beat_alignment(beat_positions(keypoints, fps, self.protocol), wav, self.protocol)

    def score(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sr: int) -> float:
        """The BAS of one clip from its keypoints and its audio."""
        return self.clip(keypoints, fps, wav, sr)[0]

    def update(self, keypoints: np.ndarray, fps: float, wav: np.ndarray, sr: int) -> float:
        value, frames = self.clip(keypoints, fps, wav, sr)
        self.scores.append(value)
        self.weights.append(frames)
        return value

    def compute(self) -> float:
        if not self.scores:
            raise ValueError("BAS needs clips, got none")
        if self.protocol.bas_clip_weight == "clip":
            return float(np.mean(self.scores))
        if len(self.weights) != len(self.scores):
            raise ValueError("bas_clip_weight='frames' weighs each clip by the frames it was scored on: add "
                             f"clips with BAS.update, or set .weights beside .scores (got {len(self.weights)} "
                             f"weights for {len(self.scores)} scores)")
        return float(np.average(self.scores, weights=self.weights))

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the score hides: clips scoring exactly 0, in which no motion beat or no speech onset was
        found (a clip too short once its edges are cut, a still video, silent audio). Each counts as 0 in the
        mean, as the peers count it: told, so that a set of them is not read as gestures off the beat."""
        empty = [i for i, score in enumerate(self.scores) if score == 0.0]
        if not empty:
            return ()
        frames = [self.weights[i] for i in empty] if len(self.weights) == len(self.scores) else []
        seen = (f"; scored on {min(frames)}" + (f"-{max(frames)}" if max(frames) != min(frames) else "")
                + f" frames at {self.protocol.bas_fps:g} fps" if frames else "")
        return (f"{len(empty)} of {len(self.scores)} clips score exactly 0: no motion beat or no speech onset was "
                f"found in them (too short, a still video or silent audio{seen}); each counts as 0 in the mean, "
                "as the peers count them",)

    def interval(self) -> tuple[float, float]:
        """(low, high) confidence interval of ``compute()`` over clips (``metrics.intervals``): the
        jackknife of a mean (of a weighted mean with ``bas_clip_weight="frames"``), i.e. the
        Student t interval for clip weights, cut to [0, 1]."""
        estimate = self.clip_statistic().interval(self.protocol.interval_half_samples, self.protocol.bootstrap_seed,
                                                  self.protocol.confidence)
        return estimate.bounds

    def clip_statistic(self) -> ClipStatistic:
        """The dataset BAS as a function of subsets of clips (one group), a (weighted) mean: linear,
        so its jackknife needs no second-order correction."""
        if not self.scores:
            raise ValueError("BAS needs clips, got none")
        scores = np.asarray(self.scores, dtype=np.float64)
        if self.protocol.bas_clip_weight == "clip":
            weights = np.ones_like(scores)
        else:
            self.compute()      # its message when the weights do not match the scores
            weights = np.asarray(self.weights, dtype=np.float64)

        def bas(index: np.ndarray) -> float:
            if weights[index].sum() <= 0:
                raise ValueError("BAS: the clips kept were scored on no frames")
            return float(np.average(scores[index], weights=weights[index]))

        return ClipStatistic(bas, (len(scores),), ("clips",), second_order=False, lower=0.0, upper=1.0)
