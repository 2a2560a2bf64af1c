"""Audio I/O: mono float waveforms at a chosen sample rate, 16-bit PCM wav files.

Speech features and beat alignment work on mono float32 at a fixed rate (16 kHz by default), so
``load_audio`` returns exactly that whatever the file holds; resampling uses a polyphase filter
with the exact rational ratio of the two rates.
"""

from __future__ import annotations

import logging
import os
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from metrics.io import SAMPLE_RATE
from metrics.io.files import atomic_path

logger = logging.getLogger(__name__)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (n, channels) array; a 1-d array is returned unchanged."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-d signal from ``from_rate`` to ``to_rate`` Hz (polyphase, exact ratio)."""
    if from_rate == to_rate:
        return samples
    ratio = Fraction(int(to_rate), int(from_rate))
    return resample_poly(samples, ratio.numerator, ratio.denominator)


MAX_AUDIO_SAMPLES = 1 << 28    # samples x channels a file may decode to: 1 GiB of float32 (46 min of 48 kHz
                               # stereo, 4.6 h of 16 kHz mono); the mono resampling then takes about twice that
SHORT_DECODE = 0.99            # a file decoding to less than this share of the samples its header states: said


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file (``READABLE``: wav, flac, ogg, mp3) as float32 mono in [-1, 1] at ``sample_rate``
    Hz. FileNotFoundError / ValueError naming the file (an empty one, another format, one holding NaN or
    infinite samples, or one whose header states more than ``MAX_AUDIO_SAMPLES`` samples x channels: a 2.8 MB
    FLAC of an hour's silence decoded to 3.8 GB, said so). A file that decodes to fewer samples than its
    header states (cut short) is read as far as it goes, with a warning naming both lengths."""
    path = Path(path)
    header = audio_info(path)                       # FileNotFoundError / ValueError naming the file
    stated = int(header.frames) * int(header.channels)
    if header.frames > 0 and stated > MAX_AUDIO_SAMPLES:
        seconds = header.frames / header.samplerate
        most = MAX_AUDIO_SAMPLES / header.channels / header.samplerate
        raise ValueError(f"{path}: refused: {seconds:.0f} s of {header.channels}-channel audio at {header.samplerate} "
                         f"Hz by its header, more than the {MAX_AUDIO_SAMPLES} samples an audio file may decode to "
                         f"({most / 60:.0f} min at this rate and channel count); cut it, or downmix it to mono, first")
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.SoundFileError, RuntimeError, OSError) as error:
        raise ValueError(f"{path}: cannot read audio: {_unreadable(path, error)}") from error
    stated = max(header.frames, _wav_stated_frames(path))
    if 0 < len(samples) < SHORT_DECODE * stated:
        logger.warning("%s: %.2f s of audio decode, where its header states %.2f s: a file cut short? It is read "
                       "as far as it goes", path, len(samples) / file_rate, stated / header.samplerate)
    finite = np.isfinite(samples)
    if not finite.all():          # a float file can hold them; resampling would spread them over the whole clip
        first = int(np.argmin(finite.reshape(len(samples), -1).all(axis=1)))
        raise ValueError(f"{path}: {int((~finite).sum())} non-finite (NaN or infinite) audio samples, the first at "
                         f"{first / file_rate:.3f} s: a damaged or wrongly exported file")
    mono = resample(to_mono(samples).astype(np.float64), file_rate, sample_rate)
    # Resampling can overshoot a full-scale signal slightly (Gibbs ringing).
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def _wav_stated_frames(path: Path) -> int:
    """The frames a PCM wav's data chunk states (the standard library's ``wave`` reads the size as written;
    libsndfile's header cuts it to the bytes present); 0 for another file or format."""
    if path.suffix.lower() != ".wav":
        return 0
    try:
        with wave.open(str(path), "rb") as stated:
            return int(stated.getnframes())
    except (wave.Error, EOFError, OSError):
        return 0


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
