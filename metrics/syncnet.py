"""SyncNet, the audio-visual synchronisation network behind Sync-C / Sync-D (LSE-C / LSE-D).

The network of Chung & Zisserman, "Out of time: automated lip sync in the wild" (ACCV 2016
workshops), in the layout of joonson/syncnet_python's ``SyncNetModel.S`` (commit
6efbb1c305c23f47a62b09cf4215a8ac45e97d49), so that its published weights file
``syncnet_v2.model`` loads into it key for key. Two towers map a 0.2 s window to an embedding:

- audio (``netcnnaud`` + ``netfcaud``): an MFCC window ``(N, 1, 13, 20)`` (13 coefficients x 20
  frames at 100 Hz) through six 3x3 2-D convolutions (64, 192, 384, 256, 256 channels, each with
  batch norm and ReLU; max pools (1,1)/(1,1), (3,3)/(1,2) and (3,3)/(2,2)), a (5,4) convolution to
  512 x 1 x 1, then Linear 512 -> 512, BatchNorm1d, ReLU, Linear 512 -> 1024;
- video (``netcnnlip`` + ``netfclip``): five frames of a 224x224 face crop ``(N, 3, 5, 224, 224)``,
  **BGR** channel order, values 0..255 unnormalised (what ``cv2.imread`` gives: the published
  weights were trained on that), through a (5,7,7)/(1,2,2) 3-D convolution to 96 channels, then
  (1,5,5), three (1,3,3) and a final (1,6,6) convolution (256, 256, 256, 256, 512 channels; batch
  norm and ReLU each; three (1,3,3)/(1,2,2) max pools) to 512 x 1 x 1 x 1, then the same MLP head.

The sequence indices inside each ``nn.Sequential`` (which name the state-dict keys, e.g.
``netcnnlip.18.weight``) are the published ones. Every width can be reduced by
:class:`SyncNetConfig` (same layers, fewer channels): the toy benchmark trains such a stand-in
(:mod:`metrics.lipsync_training`), and its scores are labelled Sync-C* / Sync-D*.

The weights file is what ``torch.save(state_dict)`` writes: a mapping from those keys to tensors
(``syncnet_v2.model`` predates torch 1.6, so it is the legacy non-zip format; both are read). It
is read with ``torch.load(weights_only=True)`` after its size (and a zip archive's declared
records) are checked against :data:`MAX_SYNCNET_BYTES`, so a hostile file can neither run code nor
make the loader allocate more than that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from metrics.io.files import atomic_path, file_sha256
from metrics.io.weights import as_state_dict, load_state_dict_strict, read_state_dict

# The published syncnet_v2.model holds about 13.6 M float32 parameters plus batch-norm statistics
# (about 55 MB); 512 MiB leaves room for a float64 copy and refuses anything absurd.
MAX_SYNCNET_BYTES = 512 << 20
PUBLISHED_FILE_NAME = "syncnet_v2.model"
# The layout a weights file must have, as errors name it.
LAYOUT = f"syncnet_python's SyncNetModel.S ({PUBLISHED_FILE_NAME})"
# Inputs the layer structure fixes (the last convolutions must see 1x1 maps).
MFCC_COEFFICIENTS = 13
MFCC_WINDOW = 20
VIDEO_WINDOW = 5
CROP_SIZE = 224


@dataclass(frozen=True)
class SyncNetConfig:
    """Channel widths of the two towers. The defaults are the published network's.

    ``audio_channels``: the six convolutions of the audio tower; ``lip_channels``: the six 3-D
    convolutions of the video tower; ``hidden``: the MLP heads' hidden width; ``embedding``: the
    embedding size both towers output.
    """

    audio_channels: tuple[int, int, int, int, int, int] = (64, 192, 384, 256, 256, 512)
    lip_channels: tuple[int, int, int, int, int, int] = (96, 256, 256, 256, 256, 512)
    hidden: int = 512
    embedding: int = 1024

    @classmethod
    def reduced(cls, divisor: int) -> SyncNetConfig:
        """The published widths divided by ``divisor`` (at least 1 channel each)."""
        base = cls()
        shrink = lambda value: max(1, value // divisor)
        return cls(tuple(map(shrink, base.audio_channels)), tuple(map(shrink, base.lip_channels)),
                   shrink(base.hidden), shrink(base.embedding))

    @property
    def is_published(self) -> bool:
        """Whether these are the widths of ``syncnet_v2.model``."""
        return self == SyncNetConfig()

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


class SyncNetFileError(ValueError):
    """A file that is not SyncNet weights of the expected layout (the message names the file)."""


def _conv_bn(conv: nn.Module, channels: int, dims: int) -> list[nn.Module]:
    norm = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    return [conv, norm, nn.ReLU(inplace=True)]


def _audio_tower(c: tuple[int, ...]) -> nn.Sequential:
    # Indices 0..20 as published: conv/bn/relu triples with max pools after the 1st, 2nd and 5th.
    layers: list[nn.Module] = []
    layers += _conv_bn(nn.Conv2d(1, c[0], 3, 1, 1), c[0], 2) + [nn.MaxPool2d(1, 1)]
    layers += _conv_bn(nn.Conv2d(c[0], c[1], 3, 1, 1), c[1], 2) + [nn.MaxPool2d(3, (1, 2))]
    layers += _conv_bn(nn.Conv2d(c[1], c[2], 3, padding=1), c[2], 2)
    layers += _conv_bn(nn.Conv2d(c[2], c[3], 3, padding=1), c[3], 2)
    layers += _conv_bn(nn.Conv2d(c[3], c[4], 3, padding=1), c[4], 2) + [nn.MaxPool2d(3, 2)]
    layers += _conv_bn(nn.Conv2d(c[4], c[5], (5, 4)), c[5], 2)
    return nn.Sequential(*layers)


def _lip_tower(c: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    layers += _conv_bn(nn.Conv3d(3, c[0], (5, 7, 7), (1, 2, 2)), c[0], 3) + [nn.MaxPool3d((1, 3, 3), (1, 2, 2))]
    layers += _conv_bn(nn.Conv3d(c[0], c[1], (1, 5, 5), (1, 2, 2), (0, 1, 1)), c[1], 3)
    layers += [nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))]
    layers += _conv_bn(nn.Conv3d(c[1], c[2], (1, 3, 3), padding=(0, 1, 1)), c[2], 3)
    layers += _conv_bn(nn.Conv3d(c[2], c[3], (1, 3, 3), padding=(0, 1, 1)), c[3], 3)
    layers += _conv_bn(nn.Conv3d(c[3], c[4], (1, 3, 3), padding=(0, 1, 1)), c[4], 3) + [nn.MaxPool3d((1, 3, 3), (1, 2, 2))]
    layers += _conv_bn(nn.Conv3d(c[4], c[5], (1, 6, 6)), c[5], 3)
    return nn.Sequential(*layers)


def _head(width_in: int, hidden: int, embedding: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, embedding))


class SyncNet(nn.Module):
    """The two-tower SyncNet (see the module docstring for the layers and input conventions)."""

    def __init__(self, config: SyncNetConfig = SyncNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.netcnnaud = _audio_tower(config.audio_channels)
        self.netfcaud = _head(config.audio_channels[-1], config.hidden, config.embedding)
        self.netfclip = _head(config.lip_channels[-1], config.hidden, config.embedding)
        self.netcnnlip = _lip_tower(config.lip_channels)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 13, 20)`` MFCC windows -> ``(N, embedding)``."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 5, 224, 224)`` BGR 0..255 float windows -> ``(N, embedding)``."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def _shape(state: Mapping[str, torch.Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise SyncNetFileError(f"{path}: no {key!r}: not SyncNet weights in the syncnet_python layout "
                               f"(SyncNetModel.S; has {sorted(state)[:6]}...)")
    return tuple(state[key].shape)


def config_from_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike = "<state dict>") -> SyncNetConfig:
    """The widths a SyncNet state dict was saved with, read from its convolution and linear shapes.

    Raises :class:`SyncNetFileError` naming ``path`` when a key the layout needs is missing.
    """
    path = Path(path)
    audio = tuple(_shape(state, f"netcnnaud.{i}.weight", path)[0] for i in (0, 4, 8, 11, 14, 18))
    lip = tuple(_shape(state, f"netcnnlip.{i}.weight", path)[0] for i in (0, 4, 8, 11, 14, 18))
    hidden, _ = _shape(state, "netfcaud.0.weight", path)
    embedding, _ = _shape(state, "netfcaud.3.weight", path)
    return SyncNetConfig(audio, lip, hidden, embedding)  # type: ignore[arg-type]


def _published_keys(state: object, path: Path) -> dict[str, torch.Tensor]:
    """A state dict read from a SyncNet file with the published keys: one saved under
    ``"state_dict"`` is unwrapped, and keys prefixed ``__S__.`` (a state dict of syncnet_python's
    ``SyncNetInstance``) are accepted without it."""
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    state = as_state_dict(state, path, LAYOUT, SyncNetFileError)
    return {key.removeprefix("__S__."): value for key, value in state.items()}


@dataclass(frozen=True)
class LoadedSyncNet:
    """A SyncNet in eval mode with where it came from: ``sha12`` (of the file), ``config``, and
    ``published`` (the published layout's widths and not marked as a stand-in: its scores may be
    shown as Sync-C / Sync-D; otherwise they are Sync-C* / Sync-D*)."""

    network: SyncNet
    path: str
    sha12: str
    published: bool

    @property
    def weights_id(self) -> str:
        kind = "syncnet_v2" if self.published else "syncnet-standin"
        return f"{kind}:{self.sha12}"


def load_syncnet(path: str | os.PathLike, device: str | torch.device = "cpu", standin: bool | None = None,
                 max_bytes: int = MAX_SYNCNET_BYTES) -> LoadedSyncNet:
    """Load SyncNet weights (``syncnet_v2.model`` or a file of the same layout) for evaluation.

    The widths are read from the tensors' shapes, so a reduced-width stand-in of the same layer
    structure loads too. ``standin``: whether to label the scores with a star; by default a file
    of other than the published widths, or one with a ``<file>.standin.json`` beside it (what
    :func:`save_syncnet` writes for a model trained here), is a stand-in.

    Raises ``FileNotFoundError``; :class:`SyncNetFileError` (a ValueError naming the file) for a
    file too large, unreadable without running code, not a state dict, or not of SyncNet's layout.
    """
    path = Path(path)
    state = read_state_dict(path, max_bytes, "SyncNet", error=SyncNetFileError,
                            hint=f"syncnet_python's download_model.sh fetches {PUBLISHED_FILE_NAME}")
    state = _published_keys(state, path)
    config = config_from_state_dict(state, path)
    network = SyncNet(config)
    load_state_dict_strict(network, state, path, LAYOUT, error=SyncNetFileError)
    if standin is None:
        standin = not config.is_published or standin_card_path(path).is_file()
    return LoadedSyncNet(network.to(device).eval(), str(path), file_sha256(path)[:12], not standin)


def standin_card_path(path: str | os.PathLike) -> Path:
    """Where :func:`save_syncnet` writes the card that marks a weights file as a stand-in."""
    path = Path(path)
    return path.with_name(path.name + ".standin.json")


def save_syncnet(network: SyncNet, path: str | os.PathLike) -> str:
    """Write ``network``'s state dict in the published file format (``torch.save`` of the state
    dict), atomically; returns the first 12 hex digits of the file's SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return file_sha256(path)[:12]
