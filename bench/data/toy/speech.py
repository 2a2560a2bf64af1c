"""Speech-like audio for the toy corpus: phrases of syllables with stresses, pitch and pauses.

Not speech, but the structure gesture models and beat metrics care about: a voiced harmonic
source whose pitch declines over a phrase and rises on stressed syllables, vowel-like formant
colouring per syllable, short consonant noise at syllable onsets, syllable-rate loudness envelopes
with louder, longer stressed syllables, and pauses between phrases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from metrics.io.audio import SAMPLE_RATE


# (F1, F2) in Hz of a few vowels: the formant colouring of each syllable.
_VOWEL_FORMANTS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (640, 1190), (490, 1350))


@dataclass(frozen=True)
class SpeechStyle:
    """How one identity speaks."""

    pitch_hz: float = 120.0
    syllables_per_second: float = 4.5
    stress_probability: float = 0.3
    phrase_syllables: tuple[int, int] = (4, 10)
    pause_seconds: tuple[float, float] = (0.3, 0.8)


@dataclass(frozen=True)
class Syllable:
    onset: float      # seconds
    duration: float   # seconds
    stressed: bool
    amplitude: float


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray          # float32 mono at SAMPLE_RATE
    syllables: tuple[Syllable, ...]
    pauses: tuple[tuple[float, float], ...]  # (start, end) seconds of silence between phrases


def plan_syllables(rng: np.random.Generator, duration: float, style: SpeechStyle):
    """Syllable timing for ``duration`` seconds: phrases separated by pauses, >= 1 stress a phrase."""
    syllables: list[Syllable] = []
    pauses: list[tuple[float, float]] = []
    t = rng.uniform(0.15, 0.4)
    pauses.append((0.0, t))
    mean_length = 1.0 / style.syllables_per_second
    while t < duration - 0.5:
        count = int(rng.integers(style.phrase_syllables[0], style.phrase_syllables[1] + 1))
        stressed = rng.random(count) < style.stress_probability
        if not stressed.any():
            stressed[rng.integers(count)] = True
        for is_stressed in stressed:
            length = mean_length * rng.uniform(0.75, 1.25) * (1.3 if is_stressed else 1.0)
            if t + length > duration - 0.1:
                break
            amplitude = rng.uniform(0.85, 1.0) * (1.0 if is_stressed else rng.uniform(0.35, 0.55))
            syllables.append(Syllable(t, length, bool(is_stressed), float(amplitude)))
            t += length
        pause = rng.uniform(*style.pause_seconds)
        pauses.append((t, min(t + pause, duration)))
        t += pause
    return tuple(syllables), tuple(pauses)


def _syllable_envelope(n: int) -> np.ndarray:
    """Loudness shape of one syllable: quick rise, plateau, slower fall."""
    x = np.linspace(0.0, 1.0, n, endpoint=False)
    rise = np.clip(x / 0.2, 0.0, 1.0)
    fall = np.clip((1.0 - x) / 0.45, 0.0, 1.0)
    return (np.sin(0.5 * np.pi * np.minimum(rise, fall)) ** 2).astype(np.float64)


def _resonator(f0: float, bandwidth: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * f0 / sample_rate
    return np.array([1.0 - r]), np.array([1.0, -2 * r * np.cos(theta), r * r])


def synthesize_speech(rng: np.random.Generator, duration: float, style: SpeechStyle) -> Speech:
    """Speech-like audio of ``duration`` seconds at 16 kHz with its syllable plan."""
    syllables, pauses = plan_syllables(rng, duration, style)
    n = int(round(duration * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE

    # Pitch: declination within a phrase plus an accent bump on every stressed syllable.
    pitch = np.full(n, style.pitch_hz)
    for start, end in zip([p[1] for p in pauses[:-1]], [p[0] for p in pauses[1:]]):
        inside = (t >= start) & (t < end)
        pitch[inside] *= 1.08 - 0.16 * (t[inside] - start) / max(end - start, 1e-3)
    for s in syllables:
        if s.stressed:
            pitch *= 1.0 + 0.22 * np.exp(-0.5 * ((t - s.onset - 0.35 * s.duration) / (0.3 * s.duration)) ** 2)
    pitch *= 1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    harmonics = np.arange(1, int(4000 / style.pitch_hz) + 1)
    source = np.zeros(n)
    for k in harmonics:
        source += np.sin(k * phase) / k

    out = np.zeros(n)
    for s in syllables:
        a, b = int(s.onset * SAMPLE_RATE), min(n, int((s.onset + s.duration) * SAMPLE_RATE))
        if b - a < 16:
            continue
        f1, f2 = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))]
        voiced = np.zeros(b - a)
        for formant, gain in ((f1, 1.0), (f2, 0.5), (2600.0, 0.2)):
            num, den = _resonator(formant * rng.uniform(0.95, 1.05), 90.0, SAMPLE_RATE)
            voiced += gain * signal.lfilter(num, den, source[a:b])
        out[a:b] += s.amplitude * _syllable_envelope(b - a) * voiced / (np.abs(voiced).max() + 1e-9)
        # Consonant: a short burst of high-passed noise at the onset.
        burst = min(b - a, int(rng.uniform(0.015, 0.04) * SAMPLE_RATE))
        noise = signal.lfilter([1.0, -0.95], [1.0], rng.standard_normal(burst))
        out[a:a + burst] += 0.25 * s.amplitude * noise * np.hanning(burst) / (np.abs(noise).max() + 1e-9)

    out += 10 ** (-50 / 20) * rng.standard_normal(n)  # room noise
    out *= 0.7 / (np.abs(out).max() + 1e-9)
    return Speech(out.astype(np.float32), syllables, pauses)


def frame_loudness(samples: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """RMS loudness of the audio under each video frame (num_frames,), normalised to max 1."""
    hop = SAMPLE_RATE / fps
    rms = np.zeros(num_frames)
    for f in range(num_frames):
        window = samples[int(f * hop):int((f + 1) * hop)]
        rms[f] = np.sqrt(np.mean(window.astype(np.float64) ** 2)) if window.size else 0.0
    return rms / (rms.max() + 1e-9)
