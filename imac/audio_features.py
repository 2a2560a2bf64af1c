"""The frozen audio features of IMAC: MFCCs and HuBERT hidden states, one row per video frame.

IMAC conditions every video frame on two views of the speech around it:

- ``mfcc``: ``n_mfcc`` (13) mel-frequency cepstral coefficients. The STFT hop is one video frame
  (``round(sample_rate / fps)`` samples) with ``center=True``, so STFT frame ``i`` is centred on
  the start of video frame ``i`` and there is exactly one MFCC frame per video frame.
- ``hubert``: the last hidden state of a HuBERT model, 50 Hz for 16 kHz audio (hop 320 samples),
  linearly interpolated in time to the video frame count (``align_corners=False``: both sequences
  are treated as covering the same span, each frame at the centre of its cell).

Both arrays have ``num_frames`` rows, which by default is the number of whole video frames the
audio covers (``frame_count``). They are not trained: the trainable parts of the audio branch (the
self-attention over MFCCs and the fusion layer) take these arrays as input, which is what makes
caching them worthwhile.

The MFCCs reproduce ``librosa.feature.mfcc`` with the same hop and FFT size (periodic Hann
window, zero padding, power spectrum, librosa's Slaney mel filterbank with 128 bands,
``power_to_db`` with ``top_db=80`` over the whole clip, orthonormal DCT-II) but are computed
here with ``torch.stft`` and numpy: the first call of a ``librosa.feature`` function compiles
numba code, which can take tens of seconds per process, while ``librosa.filters.mel`` is plain
numpy.

``AudioFeatures`` bundles one HuBERT model with the MFCC settings. With a ``cache_dir``, the
features of a file are stored as ``cache_dir/<safe id>/<sha256 of the file bytes>_<num_frames or
'all'>.npz``: the id names the MFCC size, the HuBERT model (``hubert_id``, chosen by the caller),
the sample rate and the frame rate, so changing any of them, or the audio itself, misses the
cache rather than returning stale features.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers

from imac.models.loading import load_pretrained
from metrics.io.audio import SAMPLE_RATE, load_audio, resample
from metrics.io.bounded import load_npz, read_json
from metrics.io.files import file_sha256, save_npz_atomic

N_MELS = 128
MIN_N_FFT = 2048
TOP_DB = 80.0
AMIN = 1e-10
HUBERT_RECEPTIVE_FIELD = 400  # samples: the shortest input the conv feature encoder accepts
NORMALIZE_EPSILON = 1e-7  # as in Wav2Vec2FeatureExtractor's zero-mean unit-variance normalisation
PREPROCESSOR_CONFIG = "preprocessor_config.json"
STFT_BLOCK_FRAMES = 1024  # STFT frames computed at once: bounds memory on long clips

# What np.load raises on a missing, truncated or foreign file.
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


# -- alignment -----------------------------------------------------------------------------------


def frame_count(num_samples: int, sample_rate: int, fps: float) -> int:
    """The number of whole video frames that ``num_samples`` of audio at ``sample_rate`` cover.

    A tolerance of 1e-6 frame keeps an audio track that lasts exactly ``n / fps`` seconds at
    ``n`` frames despite floating-point rounding.
    """
    if sample_rate <= 0 or fps <= 0:
        raise ValueError(f"sample rate and fps must be positive, got {sample_rate} and {fps}")
    count = math.floor(num_samples * fps / sample_rate + 1e-6)
    if count <= 0:
        raise ValueError(f"audio is shorter than one video frame: {num_samples} samples at "
                         f"{sample_rate} Hz last less than 1/{fps:g} s")
    return count


def fit_frames(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut ``frames`` (T, D) to ``num_frames`` rows, or pad it by repeating its last row."""
    if len(frames) >= num_frames:
        return frames[:num_frames]
    padding = np.repeat(frames[-1:], num_frames - len(frames), axis=0)
    return np.concatenate([frames, padding], axis=0)


def _check_num_frames(num_frames: int) -> int:
    if int(num_frames) != num_frames or num_frames <= 0:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    return int(num_frames)


def _check_samples(samples: np.ndarray) -> np.ndarray:
    """``samples`` as a 1-d float64 array; empty, multi-channel or non-finite audio is refused."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"audio must be a 1-d mono array, got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("audio is empty (0 samples)")
    if not np.issubdtype(samples.dtype, np.floating) and not np.issubdtype(samples.dtype, np.integer):
        raise ValueError(f"audio must hold numbers, got dtype {samples.dtype}")
    samples = samples.astype(np.float64)
    finite = np.isfinite(samples)
    if not finite.all():
        raise ValueError(f"{int((~finite).sum())} non-finite audio samples "
                         f"(first at sample {int(np.argmin(finite))})")
    return samples


# -- MFCC ----------------------------------------------------------------------------------------


def mfcc_hop(sample_rate: int, fps: float) -> int:
    """The STFT hop of the MFCCs: one video frame, rounded to whole samples."""
    return max(1, int(round(sample_rate / fps)))


def mfcc_n_fft(hop: int) -> int:
    """The FFT size for ``hop``: librosa's 2048 (128 ms at 16 kHz), or the next power of two >= 2 * hop
    when frames are longer than that (very low frame rates), so windows always overlap."""
    return max(MIN_N_FFT, 1 << (2 * hop - 1).bit_length())


@lru_cache(maxsize=16)
def _mel_filterbank(sample_rate: int, n_fft: int) -> torch.Tensor:
    """librosa's default (Slaney) mel filterbank, (N_MELS, n_fft // 2 + 1) float64."""
    # Imported here: librosa adds 0.9-1.3 s to an import of this module (measured after torch and
    # transformers are loaded) that callers needing only load_hubert or the cache key do not pay.
    import librosa.filters

    weights = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=N_MELS, dtype=np.float64)
    return torch.from_numpy(weights)


@lru_cache(maxsize=16)
def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II matrix of size ``n_in``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    matrix = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def _mel_power(samples: np.ndarray, sample_rate: int, hop: int, n_fft: int) -> np.ndarray:
    """Mel power spectrogram (N_MELS, 1 + len // hop) of a centred, zero-padded STFT."""
    padded = torch.from_numpy(np.pad(samples, n_fft // 2))
    num_stft_frames = 1 + len(samples) // hop
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    filterbank = _mel_filterbank(sample_rate, n_fft)
    blocks = []
    for first in range(0, num_stft_frames, STFT_BLOCK_FRAMES):
        last = min(first + STFT_BLOCK_FRAMES, num_stft_frames)
        segment = padded[first * hop:(last - 1) * hop + n_fft]
        spectrum = torch.stft(segment, n_fft=n_fft, hop_length=hop, window=window, center=False,
                              return_complex=True)
        blocks.append(filterbank @ spectrum.abs().square())
    return torch.cat(blocks, dim=1).numpy()


def mfcc_frames(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int,
                n_mfcc: int = 13) -> np.ndarray:
    """MFCCs of mono ``samples``, one per video frame: (num_frames, n_mfcc) float32.

    Matches ``librosa.feature.mfcc(y=samples, sr=sample_rate, n_mfcc=n_mfcc, hop_length=hop,
    n_fft=n_fft)`` with ``hop = mfcc_hop(sample_rate, fps)`` and ``n_fft = mfcc_n_fft(hop)``,
    transposed. The STFT yields ``1 + len(samples) // hop`` frames; missing frames repeat the
    last one, extra frames are cut.
    """
    samples = _check_samples(samples)
    num_frames = _check_num_frames(num_frames)
    if not 1 <= n_mfcc <= N_MELS:
        raise ValueError(f"n_mfcc must be between 1 and {N_MELS}, got {n_mfcc}")
    if sample_rate <= 0 or fps <= 0:
        raise ValueError(f"sample rate and fps must be positive, got {sample_rate} and {fps}")
    hop = mfcc_hop(sample_rate, fps)
    mel = _mel_power(samples, sample_rate, hop, mfcc_n_fft(hop))
    # librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80): the floor is relative to the
    # loudest bin of the whole clip.
    decibels = 10.0 * np.log10(np.maximum(mel, AMIN))
    decibels = np.maximum(decibels, decibels.max() - TOP_DB)
    coefficients = _dct_matrix(n_mfcc, N_MELS) @ decibels
    return fit_frames(coefficients.T, num_frames).astype(np.float32)


# -- HuBERT --------------------------------------------------------------------------------------


def tiny_hubert_config(**overrides) -> transformers.HubertConfig:
    """A HuBERT configuration small enough to run in milliseconds on a CPU, for tests.

    The convolutional feature encoder keeps HuBERT's kernels and strides, so the tiny model has
    the real receptive field (400 samples) and frame rate (50 Hz at 16 kHz).
    """
    settings = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    settings.update(overrides)
    return transformers.HubertConfig(**settings)


def _read_do_normalize(folder: Path) -> bool:
    """The ``do_normalize`` flag of the folder's feature extractor; False without one."""
    config_path = folder / PREPROCESSOR_CONFIG
    if not config_path.is_file():
        return False
    try:
        config = read_json(config_path)   # refused (too large, too deep, not JSON) naming the file
    except OSError as error:
        raise ValueError(f"{config_path}: cannot read the feature extractor settings: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    value = config.get("do_normalize", False)
    if not isinstance(value, bool):
        raise ValueError(f"{config_path}: do_normalize must be true or false, got {value!r}")
    return value


def load_hubert(path: str | os.PathLike | None = None, *, tiny: bool = False, seed: int = 0,
                device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> transformers.HubertModel:
    """A frozen HuBERT model in eval mode: from a local folder (``path``) or random and tiny.

    ``path`` is a folder as written by ``save_pretrained`` (``config.json`` and the weights);
    nothing is downloaded. ``tiny=True`` builds ``tiny_hubert_config()`` with random weights drawn
    from torch seed ``seed`` (the global random state is left untouched). Give exactly one of the
    two.

    The model is returned in eval mode (in train mode HuBERT masks spans of its input, SpecAugment
    style), with ``requires_grad`` off, on ``device`` and ``dtype``. Its attribute
    ``imac_do_normalize`` says whether the input audio is to be normalised to zero mean and unit
    variance, as read from ``preprocessor_config.json`` next to the weights (False when absent,
    and for the tiny model).
    """
    if (path is None) == (not tiny):
        raise ValueError("load_hubert needs exactly one of a model folder (path) or tiny=True")
    if tiny:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = transformers.HubertModel(tiny_hubert_config())
        do_normalize = False
    else:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: HuBERT model folder not found")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json in the HuBERT model folder")
        do_normalize = _read_do_normalize(folder)
        try:
            model = load_pretrained(transformers.HubertModel, folder, local_files_only=True)
        except OSError as error:
            raise OSError(f"{folder}: cannot load the HuBERT model: {error}") from error
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    model.imac_do_normalize = do_normalize
    return model


def _normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as Wav2Vec2FeatureExtractor(do_normalize=True) does."""
    return (samples - samples.mean()) / np.sqrt(samples.var() + NORMALIZE_EPSILON)


def hubert_frames(model: transformers.HubertModel, samples_16k: np.ndarray,
                  num_frames: int) -> np.ndarray:
    """HuBERT's last hidden state for 16 kHz mono audio, resampled in time to ``num_frames`` rows.

    Returns (num_frames, hidden_size) float32. The audio is normalised first when
    ``model.imac_do_normalize`` is set, then zero-padded to HuBERT's receptive field (400 samples)
    if shorter. The 50 Hz hidden states are linearly interpolated to ``num_frames`` with
    ``align_corners=False``.
    """
    samples = _check_samples(samples_16k)
    num_frames = _check_num_frames(num_frames)
    if getattr(model, "imac_do_normalize", False):
        samples = _normalize(samples)
    if len(samples) < HUBERT_RECEPTIVE_FIELD:
        samples = np.pad(samples, (0, HUBERT_RECEPTIVE_FIELD - len(samples)))
    parameter = next(model.parameters())
    inputs = torch.from_numpy(samples).to(device=parameter.device, dtype=parameter.dtype)[None]
    with torch.no_grad():
        hidden = model(inputs).last_hidden_state  # (1, T, H)
        hidden = hidden.float().transpose(1, 2)  # (1, H, T)
        aligned = torch.nn.functional.interpolate(hidden, size=num_frames, mode="linear",
                                                  align_corners=False)
    return aligned[0].T.cpu().numpy().astype(np.float32)


# -- features with a cache -----------------------------------------------------------------------


def _format_number(value: float) -> str:
    """``25.0`` -> ``"25"``, ``29.97`` -> ``"29.97"``; the full repr when ``:g`` would round."""
    short = f"{float(value):g}"
    return short if float(short) == float(value) else repr(float(value))


class AudioFeatures:
    """MFCC + HuBERT features per video frame for a fixed HuBERT model, optionally cached."""

    def __init__(self, hubert: transformers.HubertModel, *, hubert_id: str, n_mfcc: int = 13,
                 fps: float = 25.0, sample_rate: int = SAMPLE_RATE,
                 cache_dir: str | os.PathLike | None = None):
        if not hubert_id:
            raise ValueError("hubert_id must name the HuBERT model (it keys the cache)")
        if not 1 <= n_mfcc <= N_MELS:
            raise ValueError(f"n_mfcc must be between 1 and {N_MELS}, got {n_mfcc}")
        if fps <= 0 or sample_rate <= 0:
            raise ValueError(f"fps and sample rate must be positive, got {fps} and {sample_rate}")
        self.hubert = hubert
        self.hubert_id = str(hubert_id)
        self.n_mfcc = int(n_mfcc)
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def __repr__(self) -> str:
        return f"AudioFeatures({self.id!r}, cache_dir={self.cache_dir})"

    @property
    def id(self) -> str:
        """What the features depend on besides the audio: MFCC size, HuBERT model, rates."""
        return (f"mfcc{self.n_mfcc}-hubert:{self.hubert_id}-sr{self.sample_rate}"
                f"-fps{_format_number(self.fps)}")

    @property
    def safe_id(self) -> str:
        """``id`` as a folder name: unsafe characters replaced, plus a hash of the exact id."""
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", self.id)[:80]
        return f"{readable}-{hashlib.sha256(self.id.encode('utf-8')).hexdigest()[:12]}"

    @property
    def mfcc_dim(self) -> int:
        return self.n_mfcc

    @property
    def hubert_dim(self) -> int:
        return int(self.hubert.config.hidden_size)

    def from_samples(self, samples: np.ndarray, sample_rate: int,
                     num_frames: int | None = None) -> dict[str, np.ndarray]:
        """Features of 1-d mono ``samples`` at ``sample_rate``: ``{"mfcc": (F, n_mfcc), "hubert": (F, H)}``.

        The audio is resampled to ``self.sample_rate`` when needed. ``num_frames`` defaults to the
        number of whole video frames the audio covers (counted at its own rate).
        """
        samples = _check_samples(samples)
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        if num_frames is None:
            num_frames = frame_count(len(samples), sample_rate, self.fps)
        num_frames = _check_num_frames(num_frames)
        samples = resample(samples, int(sample_rate), self.sample_rate)
        return {
            "mfcc": mfcc_frames(samples, self.sample_rate, self.fps, num_frames, self.n_mfcc),
            "hubert": hubert_frames(self.hubert, samples, num_frames),
        }

    def from_file(self, path: str | os.PathLike,
                  num_frames: int | None = None) -> dict[str, np.ndarray]:
        """Features of an audio file, read from or written to the cache when there is one.

        ``num_frames`` defaults to the whole video frames the file covers, counted from its
        header (its own sample rate), so that it agrees with ``from_samples`` on the raw samples.
        Errors name the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: audio file not found")
        if num_frames is not None:
            try:
                num_frames = _check_num_frames(num_frames)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from error
        cache_file = None
        if self.cache_dir is not None:
            key = "all" if num_frames is None else str(num_frames)
            cache_file = self.cache_dir / self.safe_id / f"{file_sha256(path)}_{key}.npz"
            cached = self._read_cache(cache_file, num_frames)
            if cached is not None:
                return cached
        features = self._compute_file(path, num_frames)
        if cache_file is not None:
            save_npz_atomic(cache_file, **features)
        return features

    def _compute_file(self, path: Path, num_frames: int | None) -> dict[str, np.ndarray]:
        samples = load_audio(path, self.sample_rate)  # its errors already name the file
        try:
            samples = _check_samples(samples)
            if num_frames is None:
                info = soundfile.info(str(path))
                num_frames = frame_count(info.frames, info.samplerate, self.fps)
            return self.from_samples(samples, self.sample_rate, num_frames)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def _read_cache(self, cache_file: Path, num_frames: int | None) -> dict[str, np.ndarray] | None:
        """The cached features, or None when absent; a damaged file is reported and ignored."""
        if not cache_file.is_file():
            return None
        try:
            features = load_npz(cache_file, ("mfcc", "hubert"))
            self._check_cached(features, num_frames)
        except _NPZ_ERRORS as error:
            warnings.warn(f"{cache_file}: unusable cached audio features ({error}); recomputing",
                          RuntimeWarning, stacklevel=3)
            return None
        return features

    def _check_cached(self, features: dict[str, np.ndarray], num_frames: int | None) -> None:
        mfcc, hubert = features["mfcc"], features["hubert"]
        if mfcc.ndim != 2 or mfcc.shape[1] != self.n_mfcc:
            raise ValueError(f"mfcc has shape {mfcc.shape}, expected (F, {self.n_mfcc})")
        if hubert.shape != (len(mfcc), self.hubert_dim):
            raise ValueError(f"hubert has shape {hubert.shape}, expected ({len(mfcc)}, {self.hubert_dim})")
        if num_frames is not None and len(mfcc) != num_frames:
            raise ValueError(f"{len(mfcc)} frames, expected {num_frames}")
        for name, array in features.items():
            if array.dtype != np.float32 or not np.isfinite(array).all():
                raise ValueError(f"{name} is not finite float32")
