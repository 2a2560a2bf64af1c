"""Audio I/O: mono float waveforms at a chosen sample rate, 16-bit PCM wav files.

Speech features and beat alignment work on mono float32 at a fixed rate (16 kHz by default), so
``load_audio`` returns exactly that whatever the file holds; resampling uses a polyphase filter
with the exact rational ratio of the two rates.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from metrics.io import SAMPLE_RATE
from metrics.io.files import atomic_path


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (n, channels) array; a 1-d array is returned unchanged."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-d signal from ``from_rate`` to ``to_rate`` Hz (polyphase, exact ratio)."""
    if from_rate == to_rate:
        return samples
    ratio = Fraction(int(to_rate), int(from_rate))
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file (``READABLE``: wav, flac, ogg, mp3) as float32 mono in [-1, 1] at ``sample_rate``
    Hz. FileNotFoundError / ValueError naming the file (an empty one, another format, or one holding NaN or
    infinite samples, said so)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.SoundFileError, RuntimeError, OSError) as error:
        raise ValueError(f"{path}: cannot read audio: {_unreadable(path, error)}") from error
    finite = np.isfinite(samples)
    if not finite.all():          # a float file can hold them; resampling would spread them over the whole clip
        first = int(np.argmin(finite.reshape(len(samples), -1).all(axis=1)))
        raise ValueError(f"{path}: {int((~finite).sum())} non-finite (NaN or infinite) audio samples, the first at "
                         f"{first / file_rate:.3f} s: a damaged or wrongly exported file")
    mono = resample(to_mono(samples).astype(np.float64), file_rate, sample_rate)
    # Resampling can overshoot a full-scale signal slightly (Gibbs ringing).
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write mono (n,) or multichannel (n, channels) float samples as a 16-bit PCM wav, atomically.

    Values beyond [-1, 1] are clipped; NaN or inf samples are refused (they would silently turn
    into full-scale clicks).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim not in (1, 2):
        raise ValueError(f"{path}: audio must be (n,) or (n, channels), got shape {samples.shape}")
    finite = np.isfinite(samples)
    if not finite.all():
        first = int(np.argmin(finite.reshape(len(samples), -1).all(axis=1)))
        raise ValueError(f"{path}: {int((~finite).sum())} non-finite audio samples "
                         f"(first at sample {first})")
    if sample_rate <= 0:
        raise ValueError(f"{path}: sample rate must be positive, got {sample_rate}")
    with atomic_path(path) as temporary:
        soundfile.write(str(temporary), np.clip(samples, -1.0, 1.0), int(sample_rate),
                        subtype="PCM_16", format="WAV")
    return Path(path)


READABLE = "WAV, FLAC, OGG (Vorbis, Opus) or MP3"      # what libsndfile (soundfile) decodes


READABLE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")


def _unreadable(path: Path, error: BaseException) -> str:
    """Why soundfile could not open ``path``, for the user: an empty file said as such, else the
    library's reason and the formats it reads (an .m4a or a video's sound is to be extracted first)."""
    if path.stat().st_size == 0:
        return "an empty file (0 bytes)"
    message = str(error).replace(f"Error opening {str(path)!r}: ", "")
    if path.suffix.lower() in READABLE_SUFFIXES:
        return f"{message} (a damaged file, or not the {path.suffix} its name says; audio is read as {READABLE})"
    return (f"{message} (audio files are read as {READABLE}; extract other audio first, e.g. "
            f"`ffmpeg -i {path.name} -ac 1 {path.stem}.wav`)")


def audio_info(path: str | os.PathLike):
    """An audio file's header (soundfile's ``info``: ``samplerate`` in Hz, ``channels``, ``frames`` in
    samples per channel), read without decoding; ``FileNotFoundError`` / ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        return soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, OSError) as error:
        raise ValueError(f"{path}: cannot read audio header: {_unreadable(path, error)}") from error


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds of an audio file, from its header (no decoding)."""
    info = audio_info(path)
    return info.frames / info.samplerate
