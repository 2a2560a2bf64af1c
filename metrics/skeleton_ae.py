"""The skeleton autoencoder whose latent space FGD and Diversity are measured in.

A temporal convolutional encoder/decoder of the HalfEmbeddingNet family (BEAT, DiffSHEG): two
convolutions (kernel 3) with batch norm and LeakyReLU(0.2), a strided convolution (kernel 4,
stride 2), one more convolution, then a linear layer to the latent vector; the decoder mirrors it.
Input: windows of normalised 2-D skeletons (window, points, 2) from ``metrics.skeleton``. It is
trained on the training split's keypoints (``python -m metrics train-fgd-ae``) and saved as
``config.json`` + ``model.safetensors`` with the hash of its training data, so every FGD says which
autoencoder produced it: FGDs are comparable only under the same checkpoint hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from metrics.distributed import SINGLE, Processes
from metrics.io.bounded import BoundedReadError, check_safetensors, read_json
from metrics.io.files import atomic_path, file_sha256, write_json_atomic
from metrics.training import DataParallel

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class AutoencoderConfig:
    """The autoencoder's shape; each an int in 1..``CONFIG_LIMITS[name]`` (ValueError otherwise, naming it)."""

    points: int          # skeleton points per frame
    window: int          # frames per window (even)
    hidden: int = 128
    latent: int = 64     # the dimension FGD and Diversity are measured in

    def __post_init__(self) -> None:
        for name, limit in CONFIG_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ValueError(f"autoencoder {name} must be an integer in 1..{limit}, got {value!r}")


def _block(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    padding = (kernel - stride) // 2 if stride > 1 else kernel // 2
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, stride, padding), nn.BatchNorm1d(cout), nn.LeakyReLU(0.2))


class SkeletonAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if config.window % 2:
            raise ValueError(f"window must be even, got {config.window}")
        self.config = config
        channels, hidden, half = 2 * config.points, config.hidden, config.window // 2
        self.encoder = nn.Sequential(_block(channels, hidden, 3), _block(hidden, hidden, 3),
                                     _block(hidden, hidden, 4, stride=2), _block(hidden, hidden, 3))
        self.to_latent = nn.Linear(hidden * half, config.latent)
        self.from_latent = nn.Linear(config.latent, hidden * half)
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(hidden, hidden, 4, 2, 1), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
            _block(hidden, hidden, 3), nn.Conv1d(hidden, channels, 3, 1, 1))

    def _channels_first(self, windows: torch.Tensor) -> torch.Tensor:
        batch, frames = windows.shape[:2]
        if windows.shape[1:] != (self.config.window, self.config.points, 2):
            raise ValueError(f"windows must be (batch, {self.config.window}, {self.config.points}, 2), "
                             f"got {tuple(windows.shape)}")
        return windows.reshape(batch, frames, -1).transpose(1, 2)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """Latent features (batch, latent) of skeleton windows (batch, window, points, 2)."""
        hidden = self.encoder(self._channels_first(windows))
        return self.to_latent(hidden.flatten(1))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        half = self.config.window // 2
        hidden = self.from_latent(latent).reshape(len(latent), self.config.hidden, half)
        out = self.decoder(hidden)
        return out.transpose(1, 2).reshape(len(latent), self.config.window, self.config.points, 2)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(windows))

    @torch.no_grad()
    def features(self, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Latent features (n, latent) float64 of windows (n, window, points, 2), in eval mode."""
        self.eval()
        device = next(self.parameters()).device
        out = [self.encode(torch.as_tensor(windows[i:i + batch_size], dtype=torch.float32, device=device))
               for i in range(0, len(windows), batch_size)]
        if not out:
            return np.zeros((0, self.config.latent))
        return torch.cat(out).double().cpu().numpy()


def data_hash(windows: np.ndarray) -> str:
    """Hash of the training windows (float32 bytes): which data an autoencoder was trained on."""
    return hashlib.sha256(np.ascontiguousarray(windows, dtype=np.float32).tobytes()).hexdigest()[:16]


TRAINING_BATCH_SIZE = 64        # ``train_autoencoder``'s defaults (a run folder's autoencoder is compared with them)
TRAINING_LEARNING_RATE = 1e-3


def train_autoencoder(windows: np.ndarray, config: AutoencoderConfig, steps: int = 2000,
                      batch_size: int = TRAINING_BATCH_SIZE, learning_rate: float = TRAINING_LEARNING_RATE,
                      seed: int = 0, progress=None, processes: Processes = SINGLE,
                      device: str = "cpu") -> tuple[SkeletonAutoencoder, dict]:
    """Train on windows (n, window, points, 2) with an L1 reconstruction loss; returns (model, info).

    ``processes``: every process of a launch on GPUs calls this together and trains data-parallel
    (``metrics.training``: each its block of every global batch, its BatchNorm layers converted to
    SyncBatchNorm so that they normalise with the global batch's statistics); ``device`` is then each
    process's GPU. SyncBatchNorm runs on GPUs only, so CPU processes cannot train it together
    (ValueError; ``metrics.fgd_training`` has the main process train it alone). ``steps`` < 1 is a
    ValueError (no step would leave an untrained model).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if len(windows) < 2:
        raise ValueError(f"need at least 2 training windows, got {len(windows)}")
    parallel = DataParallel(processes, device)
    if not parallel.can_sync_batchnorm():
        raise ValueError("the skeleton autoencoder's BatchNorm needs GPUs to train on several processes "
                         "(SyncBatchNorm); train it on one process")
    size = min(batch_size, len(windows))
    parallel.check_batch(size)
    rows = parallel.part(size)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SkeletonAutoencoder(config).to(parallel.device)
    data = torch.as_tensor(windows, dtype=torch.float32)
    step_model = parallel.wrap(model, sync_batchnorm=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True)
    model.train()
    losses = []
    for step in range(steps):
        index = torch.randint(len(data), (size,), generator=generator)
        batch = data[index[rows]].to(parallel.device) if parallel.distributed else data[index]
        loss = torch.nn.functional.l1_loss(step_model(batch), batch)
        optimiser.zero_grad()
        parallel.scale(loss, size).backward()
        optimiser.step()
        losses.append(parallel.mean(parallel.scale(loss.detach(), size))[0])
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    with torch.no_grad():
        sample = data[:1024].to(parallel.device)
        final = float(torch.nn.functional.l1_loss(model(sample), sample))
    info = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
            "training_windows": int(len(windows)), "training_data_hash": data_hash(windows),
            "final_l1": final, "first_l1": losses[0]}
    if parallel.distributed:
        info["processes"] = processes.world
    return model.cpu(), info


def save_autoencoder(model: SkeletonAutoencoder, directory: str | Path, info: dict) -> str:
    """Write config.json + model.safetensors; returns the checkpoint hash (of the weights file)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_NAME) as temporary:
        save_file(state, str(temporary))
    checkpoint = checkpoint_hash(directory)
    write_json_atomic(directory / CONFIG_NAME, {"model": asdict(model.config), "training": info,
                                                "checkpoint_hash": checkpoint})
    return checkpoint


def checkpoint_hash(directory: str | Path) -> str:
    return file_sha256(Path(directory) / WEIGHTS_NAME)[:12]


class AutoencoderFileError(ValueError):
    """A skeleton autoencoder folder whose config.json or model.safetensors is not a checkpoint of
    this model (the message names the file)."""


# The largest config a checkpoint may ask for: bounds the model built before its weights are read.
CONFIG_LIMITS = {"points": 1024, "window": 4096, "hidden": 4096, "latent": 4096}
MAX_CONFIG_BYTES = 1 << 20


def _read_config(path: Path) -> tuple[AutoencoderConfig, dict]:
    """The model config and the whole content of a checkpoint's config.json, checked."""
    try:
        meta = read_json(path, max_bytes=MAX_CONFIG_BYTES)   # too large, too deep or not JSON: named
    except BoundedReadError as error:
        raise AutoencoderFileError(f"{error}; not a checkpoint config") from None
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, dict):
        raise AutoencoderFileError(f"{path}: no 'model' section (the autoencoder's points, window, hidden, latent)")
    unknown = sorted(set(model) - set(CONFIG_LIMITS))
    if unknown or not {"points", "window"} <= set(model):
        raise AutoencoderFileError(f"{path}: 'model' must have points and window (and hidden, latent), "
                                   f"got {sorted(model)}")
    for name, value in model.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CONFIG_LIMITS[name]:
            raise AutoencoderFileError(f"{path}: model.{name} must be an int in [1, {CONFIG_LIMITS[name]}], "
                                       f"got {value!r}")
    if model["window"] % 2:
        raise AutoencoderFileError(f"{path}: model.window must be even, got {model['window']}")
    return AutoencoderConfig(**model), meta


def _load_weights(model: SkeletonAutoencoder, path: Path) -> None:
    """The weights of ``path`` into ``model``, strictly: an error naming the file lists what differs."""
    try:
        check_safetensors(path)
    except (BoundedReadError, OSError) as error:
        raise AutoencoderFileError(str(error)) from None
    try:
        state = load_file(str(path))
    except Exception as error:   # safetensors raises its own SafetensorError (and OSError)
        raise AutoencoderFileError(f"{path}: not a safetensors file: {error}") from error
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})"
                 for key, value in expected.items() if key in state and state[key].shape != value.shape]
    if missing or unexpected or misshapen:
        raise AutoencoderFileError(
            f"{path}: does not match the autoencoder of its config.json: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shapes {misshapen[:5]}")
    model.load_state_dict(state, strict=True)


def load_autoencoder(directory: str | Path, device: str = "cpu") -> tuple[SkeletonAutoencoder, dict]:
    """Load a saved autoencoder; returns (model in eval mode, its config.json contents).

    Raises ``FileNotFoundError`` for a folder without the two files, ``AutoencoderFileError`` (a
    ValueError naming the file) for a config.json that is not a checkpoint config (or asks for a
    model over ``CONFIG_LIMITS``), a weights file that is not safetensors or does not match the
    config, and ValueError when the weights' hash differs from the recorded one.
    """
    directory = Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name}: not a skeleton autoencoder folder "
                                    f"(train one with `python -m metrics train-fgd-ae`)")
    config, meta = _read_config(directory / CONFIG_NAME)
    model = SkeletonAutoencoder(config)
    _load_weights(model, directory / WEIGHTS_NAME)
    actual = checkpoint_hash(directory)
    if meta.get("checkpoint_hash") != actual:
        raise ValueError(f"{directory}: weights hash {actual} differs from the recorded "
                         f"{meta.get('checkpoint_hash')}: the checkpoint was modified")
    return model.to(device).eval(), meta
