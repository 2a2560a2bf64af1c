"""The Inception-v3 feature network of FID: pool3 (2048-d) features in pytorch-fid's layout.

FID (Heusel et al., NeurIPS 2017) is the Fréchet distance between Gaussians fitted to the 2048-d
final average-pool ("pool3") activations of the TensorFlow Inception-v3 graph of 2015-12-05. The
PyTorch implementation the field cites, pytorch-fid (github.com/mseitzer/pytorch-fid,
``src/pytorch_fid/inception.py``), ports those weights to a state dict,
``pt_inception-2015-12-05-6726825d.pth``, for a torchvision ``Inception3`` (1008 classes, no
auxiliary head) whose blocks differ from torchvision's in three ways that change the numbers:

- the average pools inside the Mixed_5b..5d (A), 6b..6e (C) and 7b (E) blocks leave the padded
  zeros out of the mean (TensorFlow's behaviour: ``count_include_pad=False``);
- the pool branch of the last block, Mixed_7c, is a 3x3 **max** pool (stride 1, pad 1), not an
  average pool (a quirk of the TensorFlow graph that the port keeps);
- every convolution is bias-free and followed by BatchNorm with ``eps=0.001`` and a ReLU.

:class:`FIDInceptionV3` here is written from that description with the same module names, so the
published file loads into it with ``strict=True`` (its ``fc`` layer, 2048 -> 1008, is loaded but
not used for features).

Input convention (what changes the number):

- frames are uint8 RGB ``(N, H, W, 3)``, divided by 255 to [0, 1] (pytorch-fid's ``ToTensor``);
- each frame is resized to 299 x 299 with ``torch.nn.functional.interpolate(mode="bilinear",
  align_corners=False)``, no antialiasing (pytorch-fid's ``resize_input=True``): frames larger
  than 299 are subsampled without a low-pass filter, exactly as pytorch-fid does (clean-fid's
  point is that this differs from PIL's resize; we follow pytorch-fid);
- values are mapped to [-1, 1] by ``2 x - 1``;
- features: the output of Mixed_7c averaged over space (``AdaptiveAvgPool2d(1)``), float64.

The published file is recognised by its SHA-256: torch.hub names a checkpoint by the first 8 hex
digits of its SHA-256 (``-6726825d``), so a file whose digest starts otherwise is not the published
weights; it is still used, with a logged warning, and its feature id carries its own hash. With no
file, :func:`load_fid_inception` builds the same network with seeded stand-in weights
(:func:`init_standin_`): the pipeline runs offline, but its distance is not FID and callers label it
"FID*".
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.distributed import SAME_IN_EVERY_PROCESS
from metrics.io.files import file_sha256
from metrics.io.video import chunk_frames
from metrics.io.weights import load_state_dict_strict, read_state_dict

__all__ = [
    "FEATURE_DIM",
    "INPUT_SIZE",
    "PUBLISHED_FILE",
    "PUBLISHED_SHA256_PREFIX",
    "FIDInceptionV3",
    "InceptionFeatures",
    "init_standin_",
    "load_fid_inception",
]

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048
INPUT_SIZE = 299
NUM_CLASSES = 1008          # the TensorFlow graph's 1008-way classifier (1000 classes + unused slots)
BN_EPS = 0.001
PUBLISHED_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub's naming rule (check_hash): the file name carries the first hex digits of its SHA-256.
PUBLISHED_SHA256_PREFIX = "6726825d"
PUBLISHED_SOURCE = ("github.com/mseitzer/pytorch-fid release 'fid_weights', "
                    "src/pytorch_fid/inception.py FID_WEIGHTS_URL")
# What an Inception weight file may be (its size and what its zip records unpack to): 512 MiB. The
# network has 23.9 M parameters: about 96 MB in float32.
MAX_INCEPTION_BYTES = 512 << 20

PREPROCESSING = ("uint8 RGB (N,H,W,3) / 255; resized to 299x299 by bilinear interpolation "
                 "(align_corners=False, no antialias, aspect not kept); 2x-1 to [-1,1]")


# --------------------------------------------------------------------------------------------
# The network


class ConvBN(nn.Module):
    """Bias-free convolution, BatchNorm (eps 0.001), ReLU; state dict keys ``conv.*`` and ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _mean_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool: padded cells are not counted in the mean.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """Mixed_5b/5c/5d (35 x 35): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | mean pool -> 1x1."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), wide, deep, self.branch_pool(_mean_pool_3x3(x))], 1)


class BlockB(nn.Module):
    """Mixed_6a, the 35 -> 17 reduction: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), deep, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockC(nn.Module):
    """Mixed_6b..6e (17 x 17): factorised 7x7 convolutions (1x7 and 7x1), mean pool branch."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c = channels_7x7
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, c, 1)
        self.branch7x7_2 = ConvBN(c, c, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_channels, c, 1)
        self.branch7x7dbl_2 = ConvBN(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c, c, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_mean_pool_3x3(x))], 1)


class BlockD(nn.Module):
    """Mixed_7a, the 17 -> 8 reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.branch3x3_2(self.branch3x3_1(x))
        long = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([short, long, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockE(nn.Module):
    """Mixed_7b / 7c (8 x 8): split 1x3 / 3x1 branches; the pool branch is a mean pool (7b) or,
    in the FID graph's last block (7c), a 3x3 max pool."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("mean", "max"):
            raise ValueError(f"pool must be 'mean' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.branch3x3_1(x)
        split = torch.cat([self.branch3x3_2a(stem), self.branch3x3_2b(stem)], 1)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        deep_split = torch.cat([self.branch3x3dbl_3a(deep), self.branch3x3dbl_3b(deep)], 1)
        pooled = (_mean_pool_3x3(x) if self.pool == "mean"
                  else F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), split, deep_split, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 in the module layout of ``pt_inception-2015-12-05-6726825d.pth``.

    ``forward(x)``: float ``(N, 3, H, W)`` RGB in [0, 1] -> float ``(N, 2048)`` pool3 features
    (resized to 299 and scaled to [-1, 1] inside, as pytorch-fid's ``InceptionV3`` with its
    defaults). ``logits(x)``: the 1008 classifier outputs, for checks only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, channels_7x7=128)
        self.Mixed_6c = BlockC(768, channels_7x7=160)
        self.Mixed_6d = BlockC(768, channels_7x7=160)
        self.Mixed_6e = BlockC(768, channels_7x7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="mean")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Features of an input already at the network's scale: ``(N, 3, H, W)`` in [-1, 1]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images ``(N, 3, H, W)`` -> the network's input: 299 x 299 bilinear, ``2 x - 1``."""
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool3(self.prepare(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))


@torch.no_grad()
def init_standin_(model: nn.Module, seed: int) -> nn.Module:
    """Deterministic stand-in weights for ``seed``, the same on every platform and torch version.

    Drawn with NumPy's PCG64 (``numpy.random.default_rng(seed)``) in the order of
    ``model.state_dict()``: convolution and linear weights He-normal (``sqrt(2 / fan_in)``; linear
    ``sqrt(1 / fan_in)``), biases 0; BatchNorm scale U(0.8, 1.2), shift N(0, 0.1), running mean
    N(0, 0.1), running variance U(0.5, 1.5) (so that a wrong BatchNorm epsilon or a skipped
    statistic changes the output). Used for FID* (no weight file) and for the parity tests with
    pytorch-fid. Works on any module of convolutions, linear layers and BatchNorms.
    """
    rng = np.random.default_rng(seed)
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            continue
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        if isinstance(owner, nn.BatchNorm2d):
            if leaf == "weight":
                values = rng.uniform(0.8, 1.2, shape)
            elif leaf == "running_var":
                values = rng.uniform(0.5, 1.5, shape)
            else:                                   # bias, running_mean
                values = rng.normal(0.0, 0.1, shape)
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            gain = 1.0 if isinstance(owner, nn.Linear) else 2.0
            values = rng.standard_normal(shape) * math.sqrt(gain / fan_in)
        else:
            values = np.zeros(shape)
        tensor.copy_(torch.from_numpy(np.asarray(values, dtype=np.float32)))
    return model


# --------------------------------------------------------------------------------------------
# Features


class InceptionFeatures:
    """Callable: uint8 RGB frames ``(N, H, W, 3)`` -> float64 ``(N, 2048)`` pool3 features.

    Attributes: ``feature_id`` (``fid-inception-2015-12-05:<sha12>``, or
    ``fid-inception-standin-seed<N>``; FIDs are only comparable under the same id),
    ``is_pretrained`` (False: the distance is "FID*"), ``published`` (False: trained weights, but not the
    published file: "FID*" too; None: a stand-in), ``preprocessing`` (the input convention in
    words), ``device``, ``batch_size``, ``source`` (the weight file, named in errors). Build it with
    :func:`load_fid_inception`.
    """

    def __init__(self, network: FIDInceptionV3, *, feature_id: str, is_pretrained: bool,
                 device: str | torch.device = "cpu", batch_size: int = 16, source: str | None = None,
                 published: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.network = network.to(self.device, torch.float32).eval()
        self.feature_id = feature_id
        self.is_pretrained = is_pretrained
        self.published = published
        self.batch_size = int(batch_size)
        self.source = source or feature_id
        self.preprocessing = PREPROCESSING

    def __repr__(self) -> str:
        return (f"InceptionFeatures(feature_id={self.feature_id!r}, is_pretrained={self.is_pretrained}, "
                f"device={str(self.device)!r}, batch_size={self.batch_size})")

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise TypeError(f"InceptionFeatures takes uint8 frames in [0, 255], got {frames.dtype}")
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {frames.shape}")
        out = np.empty((frames.shape[0], FEATURE_DIM), np.float64)
        # frames per batch bounded by their float32 bytes (CHUNK_BUDGET): the network resizes them to 299
        # only inside, so 16 frames of 4096 x 4096 would be 3.2 GB, twice; 16 up to 1.3 Mpx
        size = chunk_frames(frames[0].nbytes * 4, self.batch_size) if len(frames) else self.batch_size
        with torch.no_grad():
            for start in range(0, frames.shape[0], size):
                batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + size]))
                x = batch.to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 255.0
                out[start:start + len(batch)] = self.network(x).to("cpu", torch.float64).numpy()
        return out


def load_fid_inception(path: str | os.PathLike | None, device: str | torch.device = "cpu", seed: int = 0,
                       batch_size: int = 16) -> InceptionFeatures:
    """The FID feature network from a local ``pt_inception-2015-12-05-6726825d.pth`` or, with
    ``path=None``, with seeded stand-in weights (:func:`init_standin_`).

    - A file is read bounded (at most ``MAX_INCEPTION_BYTES``, 512 MiB, checked before torch reads
      it) with ``torch.load(weights_only=True)`` and loaded strictly into :class:`FIDInceptionV3`.
      ``feature_id``: ``fid-inception-2015-12-05:<sha12>`` (first 12 hex digits of its SHA-256). A
      file whose SHA-256 does not start with ``6726825d`` (the published file's, from its name) is
      used with a logged warning: its FIDs are not comparable with published FIDs.
    - ``path=None``: ``feature_id`` ``fid-inception-standin-seed<N>``, ``is_pretrained=False``:
      callers must report the distance as "FID*".

    Errors name the file: ``FileNotFoundError``; ``ValueError`` for a file that is not a state dict
    of the published layout (missing / unexpected / misshapen keys listed), or too large.
    """
    if path is None:
        network = init_standin_(FIDInceptionV3(), seed)
        return InceptionFeatures(network, feature_id=f"fid-inception-standin-seed{seed}", is_pretrained=False,
                                 device=device, batch_size=batch_size)
    path = Path(path)
    state_dict = read_state_dict(path, MAX_INCEPTION_BYTES, "FID Inception-v3 (pytorch-fid)")
    network = FIDInceptionV3()
    load_state_dict_strict(network, state_dict, path, f"pytorch-fid's {PUBLISHED_FILE}")
    digest = file_sha256(path)
    published = digest.startswith(PUBLISHED_SHA256_PREFIX)
    if not published:
        logger.warning("%s is not the published %s: its SHA-256 starts %s, the published file's %s (%s). "
                       "FIDs computed with it are not comparable with published FIDs.",
                       path, PUBLISHED_FILE, digest[:8], PUBLISHED_SHA256_PREFIX, PUBLISHED_SOURCE,
                       extra=SAME_IN_EVERY_PROCESS)
    return InceptionFeatures(network, feature_id=f"fid-inception-2015-12-05:{digest[:12]}", is_pretrained=True,
                             device=device, batch_size=batch_size, source=str(path), published=published)
