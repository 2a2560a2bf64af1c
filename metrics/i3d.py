"""The I3D feature network of FVD: Inception-v1 I3D (Kinetics-400), 400-d pre-softmax logits.

FVD is defined on the Inception-v1 Inflated 3D ConvNet of Carreira & Zisserman (2017) trained on
Kinetics-400, with the **400 pre-softmax logits averaged over time** as the feature (never the
1024-d pool). No pip package ships its weights, so the user gives a local file, in one of the two
forms in use:

- ``i3d_pretrained_400.pt`` (VideoGPT / TATS): a state dict converted from the tf.hub module
  ``deepmind/i3d-kinetics-400``, for the PyTorch port of ``InceptionI3d`` (piergiaj's layout).
  :class:`InceptionI3d` here has exactly that layout, so the file loads with ``strict=True``.
- ``i3d_torchscript.pt`` (StyleGAN-V): a TorchScript export of the same tf.hub network, called as
  ``forward(x, rescale: bool, resize: bool, return_features: bool)``; ``return_features=True``
  returns the 400 pre-softmax logits (StyleGAN-V: "raw features before the softmax layer";
  MCVD / common_metrics_on_video_quality stack them into an (N, 400) array).

With no file, :func:`load_i3d` builds a seeded, untrained network: it runs the whole pipeline
offline, but an FVD computed with it is not FVD and callers must label it "FVD*".

Input convention (what changes the number; the protocol's ``fvd_resize`` and ``fvd_resolution``
choose it, :meth:`I3DFeatures.with_input` applies it):

- videos are uint8 RGB, (N, T, H, W, 3), values 0..255;
- frames are resized with ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
  antialias=False)``, as every PyTorch peer does, in one of the ways in use (``RESIZE_MODES``):
  ``"stretch"`` -- each frame to 224 x 224, aspect ratio not kept, no crop (TATS, cd-fvd; the
  default; the TensorFlow original stretches too, with ``tf.image.resize_bilinear``'s own pixel
  grid); ``"shorter-side-crop"`` -- the shorter side to 224, the longer to
  ``ceil(longer * (224 / shorter))``, then the centre 224 x 224 (VideoGPT,
  common_metrics_on_video_quality); ``"torchscript-internal"`` -- StyleGAN-V's archive gets the
  uint8 clips and rescales and resizes them itself (``rescale=True, resize=True``);
- values are mapped to [-1, 1] by ``x / 127.5 - 1``;
- T >= 9 frames (the network's temporal strides leave ceil(T / 8) steps for a 2-step average
  pool); FVD uses T = 16.

Float videos in [0, 1] are refused: feeding them where [0, 255] is expected is the classic FVD
mistake (it gives tiny, meaningless distances).

Weight files are checked against the checksums public sources state (``PUBLISHED_WEIGHTS``: git
blob ids of the copies committed to peer repositories; no peer states an md5 or sha256); a file
that differs is loaded, with a logged warning naming it and both hashes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.distributed import SAME_IN_EVERY_PROCESS
from metrics.io import weights
from metrics.io.files import file_sha256, update_digest_from_file
from metrics.io.video import chunk_frames

__all__ = [
    "FEATURE_DIM",
    "MIN_FRAMES",
    "PUBLISHED_WEIGHTS",
    "RESIZE_MODES",
    "RESOLUTION",
    "I3DFeatures",
    "InceptionI3d",
    "load_i3d",
    "preprocess",
]

logger = logging.getLogger(__name__)

FEATURE_DIM = 400
RESOLUTION = 224
# Conv3d_1a (stride 2), MaxPool3d_4a (stride 2) and MaxPool3d_5a (stride 2) leave ceil(T / 8)
# time steps for the final average pool over 2 steps: T >= 9.
MIN_FRAMES = 9

# How frames reach the network's size (the protocol's fvd_resize; the module docstring says who does which).
RESIZE_MODES = ("stretch", "shorter-side-crop", "torchscript-internal")
Resize = Literal["stretch", "shorter-side-crop", "torchscript-internal"]


def describe_input(resize: str, size: int = RESOLUTION) -> str:
    """One line for reports: how uint8 clips become the network's input under ``resize``."""
    if resize == "torchscript-internal":
        return ("uint8 RGB handed to the StyleGAN-V TorchScript as (N,3,T,H,W) with rescale=True, "
                "resize=True: resizing and scaling happen inside the archive")
    how = (f"each frame resized to {size}x{size} by bilinear interpolation (align_corners=False, no "
           "antialias, aspect not kept, no crop)" if resize == "stretch" else
           f"the shorter side resized to {size} by bilinear interpolation (align_corners=False, no "
           f"antialias), then the centre {size}x{size} crop")
    return f"uint8 RGB (N,T,H,W,3); {how}; x/127.5-1 to [-1,1]"


PREPROCESSING = describe_input("stretch")


# --------------------------------------------------------------------------------------------
# The network


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis as (before, after): output length ceil(size / stride).

    The total is ``max(kernel - stride, 0)`` when ``stride`` divides ``size``, otherwise
    ``max(kernel - size % stride, 0)``; the odd pixel goes after, as in TensorFlow and piergiaj's
    port. It depends on the input size, so it is computed at every call.
    """
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _split_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]
                ) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``x`` with the asymmetric part of its "SAME" padding applied, and the symmetric part per axis.

    The symmetric part is left to the convolution or pooling (its own ``padding``), which saves a
    padded copy of every activation; the odd pixel (after) is padded here with zeros. For a
    convolution the result is that of zero-padding everything here; a pool pads its symmetric part
    with -inf (:class:`MaxPool3dSame` says why that is the same).
    """
    pads = [same_padding(s, k, st) for s, k, st in zip(x.shape[-3:], kernel, stride)]
    symmetric = tuple(before for before, _ in pads)
    extra = [after - before for before, after in pads]
    if any(extra):
        # F.pad takes the last axis first.
        x = F.pad(x, (0, extra[2], 0, extra[1], 0, extra[0]))
    return x, symmetric  # type: ignore[return-value]


class Unit3D(nn.Module):
    """Conv3d ("same" padding) + optional BatchNorm3d + optional ReLU; parameters ``conv3d``, ``bn``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        bias: bool = False,
        relu: bool = True,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.relu = relu
        # Padding is applied in forward, from the input size (TensorFlow "SAME").
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, padding = _split_same(x, self.kernel, self.stride)
        x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, padding)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TensorFlow "SAME" padding (no parameters).

    The symmetric part of the padding is max_pool3d's (-inf, as in TensorFlow), the odd pixel after
    is a zero: every pool of the network follows a ReLU, so the inputs are >= 0 and the result is
    the same.
    """

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, padding = _split_same(x, self.kernel, self.stride)
        return F.max_pool3d(x, self.kernel, self.stride, padding)


class InceptionBlock(nn.Module):
    """One "Mixed" block: four branches concatenated on channels.

    ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b) output channels; branch names as in piergiaj's port:
    b0 1x1x1; b1a 1x1x1 -> b1b 3x3x3; b2a 1x1x1 -> b2b 3x3x3; b3a max-pool 3x3x3 -> b3b 1x1x1.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], bn_eps: float = 1e-5) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0, bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, w1a, bn_eps=bn_eps)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, w2a, bn_eps=bn_eps)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b, bn_eps=bn_eps)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


# (name, input channels, branch widths) of the nine Mixed blocks, from the Kinetics I3D.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """Inception-v1 I3D whose ``state_dict`` has the layout of VideoGPT / TATS ``i3d_pretrained_400.pt``.

    Submodules, in order: ``Conv3d_1a_7x7`` (7x7x7, stride 2), ``MaxPool3d_2a_3x3`` (1x3x3, stride
    1x2x2), ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3``, ``MaxPool3d_3a_3x3`` (1x3x3, stride 1x2x2),
    ``Mixed_3b``, ``Mixed_3c``, ``MaxPool3d_4a_3x3`` (3x3x3, stride 2), ``Mixed_4b`` .. ``Mixed_4f``,
    ``MaxPool3d_5a_2x2`` (2x2x2, stride 2), ``Mixed_5b``, ``Mixed_5c``, then an average pool
    (2x7x7, stride 1, no padding) and ``logits`` (1x1x1 conv with bias, no BatchNorm, no ReLU).
    Every Conv3d uses "same" padding computed from the input size, as TensorFlow does. Each
    BatchNorm has weight, bias, running_mean, running_var (the published file has no
    ``num_batches_tracked``; :func:`load_i3d` accepts it either way).

    ``bn_eps`` is 1e-5 as in VideoGPT / TATS, who made and use the converted weights; the
    TensorFlow original (Sonnet ``BatchNorm``) used 1e-3.

    ``forward`` takes (N, 3, T, 224, 224) in [-1, 1], T >= 9 (other sizes are refused), and
    returns the (N, 400) logits (pre-softmax) averaged over the remaining time steps. In eval mode dropout does nothing and is
    left out.
    """

    def __init__(self, num_classes: int = FEATURE_DIM, in_channels: int = 3, *, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(*_MIXED["Mixed_3b"], bn_eps=bn_eps)
        self.Mixed_3c = InceptionBlock(*_MIXED["Mixed_3c"], bn_eps=bn_eps)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionBlock(*_MIXED["Mixed_4b"], bn_eps=bn_eps)
        self.Mixed_4c = InceptionBlock(*_MIXED["Mixed_4c"], bn_eps=bn_eps)
        self.Mixed_4d = InceptionBlock(*_MIXED["Mixed_4d"], bn_eps=bn_eps)
        self.Mixed_4e = InceptionBlock(*_MIXED["Mixed_4e"], bn_eps=bn_eps)
        self.Mixed_4f = InceptionBlock(*_MIXED["Mixed_4f"], bn_eps=bn_eps)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(*_MIXED["Mixed_5b"], bn_eps=bn_eps)
        self.Mixed_5c = InceptionBlock(*_MIXED["Mixed_5c"], bn_eps=bn_eps)
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.logits = Unit3D(
            self.Mixed_5c.out_channels, num_classes, batch_norm=False, bias=True, relu=False, bn_eps=bn_eps
        )
        self._trunk = [
            "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
            "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
            "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
        ]  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] < MIN_FRAMES:
            raise ValueError(f"InceptionI3d expects (N, C, T>={MIN_FRAMES}, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (RESOLUTION, RESOLUTION):
            # Larger inputs give a spatial map of logits, smaller ones a vector from another
            # receptive field: either way not the FVD feature.
            raise ValueError(
                f"InceptionI3d takes {RESOLUTION}x{RESOLUTION} frames, got {x.shape[-2]}x{x.shape[-1]} "
                "(resize with metrics.i3d.preprocess)"
            )
        for name in self._trunk:
            x = getattr(self, name)(x)
        x = self.logits(self.avg_pool(x))  # (N, classes, T', 1, 1)
        # VideoGPT / TATS: squeeze space, then average the logits over time.
        return x.flatten(2).mean(dim=2)


def published_state_dict_keys(model: InceptionI3d) -> list[str]:
    """The keys of ``model.state_dict()`` that the published file has (all but ``num_batches_tracked``)."""
    return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]


@torch.no_grad()
def init_untrained_(model: InceptionI3d, seed: int) -> InceptionI3d:
    """Deterministic random weights for ``seed``: He-normal convs, identity BatchNorm, zero biases.

    Drawn from one ``torch.Generator`` in the fixed order of ``named_parameters`` (same seed, same
    torch version -> same weights), so an untrained network is reproducible without global state.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            fan_in = module.weight[0].numel()
            gain = 1.0 if module is model.logits.conv3d else 2.0  # no ReLU after the logits
            w = torch.randn(module.weight.shape, generator=generator) * math.sqrt(gain / fan_in)
            module.weight.copy_(w)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm3d):
            module.weight.fill_(1.0)
            module.bias.zero_()
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
            module.num_batches_tracked.zero_()
    return model


# --------------------------------------------------------------------------------------------
# Preprocessing


def shorter_side_size(height: int, width: int, size: int = RESOLUTION) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to ``size``; the longer side is rounded up.

    Written as VideoGPT's ``preprocess`` (videogpt/data.py) writes it, ``ceil(side * (size /
    shorter))`` in float64, so that the sizes agree where rounding decides: 36 x 48 -> 224 x 299,
    and a square 100 x 100 frame -> 225 x 224 (100 * (224 / 100) is 224.00000000000003), whose centre
    crop then drops the last row.
    """
    scale = size / min(height, width)
    if height < width:
        return size, math.ceil(width * scale)
    return math.ceil(height * scale), size


def resize_frames(frames: torch.Tensor, size: int = RESOLUTION, resize: str = "stretch") -> torch.Tensor:
    """Float frames (M, C, H, W) -> (M, C, size, size) by bilinear interpolation (no antialias).

    ``resize="stretch"``: straight to ``size`` x ``size`` (aspect not kept; TATS, cd-fvd).
    ``resize="shorter-side-crop"``: to :func:`shorter_side_size`, then the centre crop starting at
    ``(H' - size) // 2, (W' - size) // 2`` (VideoGPT, common_metrics_on_video_quality). Frames
    already ``size`` x ``size`` are returned as they are. Raises ValueError for another mode
    (``"torchscript-internal"`` resizes inside StyleGAN-V's archive, not here).
    """
    if resize not in ("stretch", "shorter-side-crop"):
        raise ValueError(f"fvd_resize {resize!r} is not done by preprocessing (one of 'stretch', "
                         "'shorter-side-crop'; 'torchscript-internal' resizes inside StyleGAN-V's archive)")
    h, w = frames.shape[-2:]
    if (h, w) == (size, size):
        return frames
    target = (size, size) if resize == "stretch" else shorter_side_size(h, w, size)
    frames = F.interpolate(frames, size=target, mode="bilinear", align_corners=False, antialias=False)
    if resize == "shorter-side-crop":
        top, left = (target[0] - size) // 2, (target[1] - size) // 2
        frames = frames[..., top : top + size, left : left + size]
    return frames


def preprocess(
    videos: np.ndarray | torch.Tensor,
    *,
    already_in_minus1_1: bool = False,
    size: int = RESOLUTION,
    resize: str = "stretch",
) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) RGB -> float32 (N, 3, T, size, size) in [-1, 1], on the input's device.

    Every frame is resized by :func:`resize_frames` (``resize``: ``"stretch"`` to ``size`` x
    ``size``, aspect not kept; ``"shorter-side-crop"``: shorter side to ``size``, centre crop),
    then mapped by ``x / 127.5 - 1`` (0 -> -1, 255 -> 1, 127.5 -> 0). Only uint8 is accepted, or
    float videos with ``already_in_minus1_1=True`` (then only resized). Float input without the
    flag is refused: [0, 1] data fed as [0, 255] data is the classic FVD mistake.
    """
    x = torch.from_numpy(np.ascontiguousarray(videos)) if isinstance(videos, np.ndarray) else videos
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"videos must be a numpy array or a torch tensor, got {type(videos).__name__}")
    if x.ndim != 5 or x.shape[-1] != 3:
        hint = ""
        if x.ndim == 5 and x.shape[1] == 3:
            hint = " (this looks like (N, 3, T, H, W): pass channels last)"
        elif x.ndim == 5 and x.shape[2] == 3:
            hint = " (this looks like (N, T, 3, H, W): pass channels last)"
        raise ValueError(f"videos must be (N, T, H, W, 3) RGB, got shape {tuple(x.shape)}{hint}")

    if x.dtype == torch.uint8:
        scale_to_unit = True
    elif x.is_floating_point():
        if not already_in_minus1_1:
            lo, hi = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
            if hi <= 1.0 and lo >= 0.0:
                raise ValueError(
                    f"float videos in [{lo:.3g}, {hi:.3g}] look like [0, 1] data; FVD needs uint8 "
                    "[0, 255] (feeding [0, 1] data gives tiny, meaningless FVDs): pass "
                    "(videos * 255).round().astype(np.uint8), or already_in_minus1_1=True if the "
                    "values are really in [-1, 1]"
                )
            raise ValueError(
                f"float videos (range [{lo:.3g}, {hi:.3g}]) are refused: pass uint8 [0, 255], or "
                "floats in [-1, 1] with already_in_minus1_1=True"
            )
        lo, hi = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
        if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(f"already_in_minus1_1=True but the values span [{lo:.3g}, {hi:.3g}]")
        if x.numel() and lo >= 0.0:
            warnings.warn(
                "videos flagged as [-1, 1] have no negative value: are they [0, 1] data?", stacklevel=2
            )
        scale_to_unit = False
    else:
        raise TypeError(f"videos must be uint8 (or float with already_in_minus1_1=True), got {x.dtype}")

    n, t, h, w, c = x.shape
    flat = x.reshape(n * t, h, w, c)
    # converted to float and resized a group of frames at a time, each group's float32 copy within
    # CHUNK_BUDGET (16 frames of 4096 x 4096 were 3.2 GB at once); each frame resizes alone, so the
    # result is the same whatever the grouping
    step = chunk_frames(h * w * c * 4, max(1, n * t))
    frames = torch.cat([resize_frames(flat[i : i + step].permute(0, 3, 1, 2).to(torch.float32), size, resize)
                        for i in range(0, n * t, step)]) if n * t else \
        resize_frames(flat.permute(0, 3, 1, 2).to(torch.float32), size, resize)     # (N*T, 3, size, size)
    if scale_to_unit:
        frames = frames / 127.5 - 1.0
    return frames.reshape(n, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()


# --------------------------------------------------------------------------------------------
# The feature extractor the FVD metric calls

NetworkKind = Literal["module", "torchscript"]


class I3DNetworkError(ValueError):
    """An I3D weight file whose network fails on a clip or returns other than (N, 400) logits.

    The message names the file (``source``); the CLI prints it as one line and exits with 2.
    """


class I3DFeatures:
    """Callable: uint8 videos (N, T, H, W, 3) -> float64 (N, 400) I3D logits, in batches, no grad.

    Attributes: ``feature_id`` (names the network and its weights: ``i3d-tats-400:<sha12>``,
    ``i3d-stylegan-v-torchscript:<sha12>``, ``i3d-untrained-seed<N>``; FVDs are only comparable
    under the same id and protocol), ``is_pretrained`` (False: the distance is "FVD*", not FVD),
    ``published`` (False: trained weights, but not the published file: "FVD*" too; None: a stand-in),
    ``kind`` (``"module"``: an :class:`InceptionI3d`; ``"torchscript"``: StyleGAN-V's archive, called
    with ``return_features=True``), ``resize`` and ``size`` (how clips reach the network, see the
    module docstring; :meth:`with_input` sets them from the protocol), ``preprocessing`` (that
    convention in words, for reports), ``device``, ``dtype``, ``batch_size``, ``source`` (the
    weight file, named by errors; the feature id when there is no file). Build it with
    :func:`load_i3d`. A network that fails on a batch, or returns anything but a (batch, 400)
    tensor, raises :class:`I3DNetworkError` naming ``source``.
    """

    def __init__(
        self,
        network: nn.Module | torch.jit.ScriptModule,
        *,
        feature_id: str,
        is_pretrained: bool,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
        kind: NetworkKind = "module",
        published: bool | None = None,
        resize: Resize = "stretch",
        size: int = RESOLUTION,
        source: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if kind not in ("module", "torchscript"):
            raise ValueError(f"kind must be 'module' or 'torchscript', got {kind!r}")
        if resize not in RESIZE_MODES:
            raise ValueError(f"fvd_resize must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
        if resize == "torchscript-internal" and kind != "torchscript":
            raise ValueError(
                f"fvd_resize='torchscript-internal' lets StyleGAN-V's i3d_torchscript.pt rescale and resize "
                f"the clips itself, but {feature_id} is not that archive: give --i3d the TorchScript file, "
                "or another FVD preset (--protocol videogpt: shorter-side crop; tats, the default, or cdfvd: "
                "stretch; Python: fvd_resize 'stretch' or 'shorter-side-crop')"
            )
        if resize == "torchscript-internal" and dtype != torch.float32:
            raise ValueError(
                "fvd_resize='torchscript-internal': the archive rescales inside, in float32; use dtype=torch.float32"
            )
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.feature_id = feature_id
        self.is_pretrained = is_pretrained
        self.published = published
        self.kind = kind
        self.resize = resize
        self.size = int(size)
        self.source = source or feature_id
        # An archive keeps its own float type; the torchscript-internal call feeds it uint8.
        if kind == "torchscript":
            network = network.to(device=self.device)
        else:
            # Channels-last 3-D layout: the convolutions and pools run about 1.4x faster on a CPU (the
            # same values to float rounding; benchmarks/metrics_speed.py).
            network = network.to(self.device, dtype, memory_format=torch.channels_last_3d)
        self.network = network.eval()
        self.preprocessing = describe_input(resize, self.size)

    def with_input(self, *, resize: Resize, size: int = RESOLUTION) -> I3DFeatures:
        """The same network (shared, not copied) fed by another input convention.

        ``resize`` and ``size`` are the protocol's ``fvd_resize`` and ``fvd_resolution`` (the FVD
        metric calls this with them). Raises ValueError, naming ``fvd_resize``, for
        ``"torchscript-internal"`` on a network that is not StyleGAN-V's archive.
        """
        return I3DFeatures(
            self.network, feature_id=self.feature_id, is_pretrained=self.is_pretrained, published=self.published,
            device=self.device, dtype=self.dtype, batch_size=self.batch_size, kind=self.kind, resize=resize, size=size,
            source=self.source,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"I3DFeatures(feature_id={self.feature_id!r}, is_pretrained={self.is_pretrained}, "
            f"resize={self.resize!r}, device={str(self.device)!r}, dtype={self.dtype}, "
            f"batch_size={self.batch_size})"
        )

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.resize == "torchscript-internal":
            # StyleGAN-V's fvd2048_16f call: uint8 [0, 255] as (N, C, T, H, W), scaled and resized inside.
            x = batch.permute(0, 4, 1, 2, 3).contiguous()
            return self._call_network(x, rescale=True, resize=True, return_features=True)
        x = preprocess(batch, size=self.size, resize=self.resize).to(self.dtype)
        if self.kind == "module":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if self.kind == "torchscript":
            # Already resized and in [-1, 1]: the archive must do neither again (the call with which
            # StyleGAN-V's authors matched the TensorFlow original, universome/fvd-comparison).
            return self._call_network(x, rescale=False, resize=False, return_features=True)
        return self._call_network(x)

    def _call_network(self, x: torch.Tensor, **kwargs: bool) -> torch.Tensor:
        """The network on ``x``; its failures (TorchScript raises RuntimeError with the archive's own
        traceback) become an :class:`I3DNetworkError` naming the weight file."""
        try:
            return self.network(x, **kwargs)
        except torch.cuda.OutOfMemoryError:
            raise       # not the file's fault: a smaller batch_size helps
        except Exception as error:
            raise I3DNetworkError(
                f"{self.source}: the I3D network failed on input {tuple(x.shape)} {x.dtype}: "
                f"{weights.last_line(error)} (is it the Kinetics-400 I3D of {self.feature_id.split(':')[0]}?)"
            ) from error

    def __call__(self, videos: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(videos, np.ndarray):
            videos = torch.from_numpy(np.ascontiguousarray(videos))
        if not isinstance(videos, torch.Tensor):
            raise TypeError(f"videos must be a numpy array or a torch tensor, got {type(videos).__name__}")
        if videos.dtype != torch.uint8:
            raise TypeError(
                f"I3DFeatures takes uint8 videos in [0, 255], got {videos.dtype} (convert [0, 1] floats "
                "with (v * 255).round() to uint8; see metrics.i3d.preprocess)"
            )
        if videos.ndim != 5 or videos.shape[-1] != 3:
            raise ValueError(f"videos must be (N, T, H, W, 3) RGB, got shape {tuple(videos.shape)}")
        if videos.shape[1] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per clip, got {videos.shape[1]}")
        out = np.empty((videos.shape[0], FEATURE_DIM), np.float64)
        with torch.no_grad():
            for start in range(0, videos.shape[0], self.batch_size):
                batch = videos[start : start + self.batch_size].to(self.device)
                logits = self._forward(batch)
                if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch.shape[0], FEATURE_DIM):
                    got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else f"a {type(logits).__name__}"
                    raise I3DNetworkError(
                        f"{self.source}: the I3D network returned {got} for {batch.shape[0]} clips, "
                        f"expected ({batch.shape[0]}, {FEATURE_DIM}) logits: is it the Kinetics-400 I3D?"
                    )
                out[start : start + batch.shape[0]] = logits.detach().to("cpu", torch.float64).numpy()
        return out


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class PublishedWeights:
    """A checksum that public sources state for a published weight file, and where they state it.

    No peer publishes an md5 or sha256 of the I3D files; what is public is git's
    object id of the copies committed to peer repositories (``git ls-tree`` lists it): the SHA-1 of
    ``b"blob <size>\\0"`` followed by the file's bytes (:func:`git_blob_sha1`).
    """

    file: str
    git_blob_sha1: str
    sources: tuple[str, ...]


PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {
    "module": PublishedWeights(
        "i3d_pretrained_400.pt",
        "a867b87ac3a9097d200598b1d48a1b890d8ec744",
        (
            ("github.com/songweige/TATS tats/fvd/i3d_pretrained_400.pt, added in "
             "26c33f5bb762f86589c0971e98d0c4565f9a7f63, the same blob at "
             "03bbce1daa3da7e9bff8221e9ec433df9484817f (cd-fvd downloads this file)"),
            ("github.com/JunyaoHu/common_metrics_on_video_quality fvd/videogpt/i3d_pretrained_400.pt at "
             "5f751734ce9cef4cd2dddb235726b75dff62a387 (the same blob)"),
        ),
    ),
    "torchscript": PublishedWeights(
        "i3d_torchscript.pt",
        "93daef59c7ae0e9e8f76225521407e60cbafa6aa",
        (
            ("github.com/JunyaoHu/common_metrics_on_video_quality fvd/styleganv/i3d_torchscript.pt at "
             "5f751734ce9cef4cd2dddb235726b75dff62a387: a copy of the file StyleGAN-V downloads from "
             "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt, for which StyleGAN-V states "
             "no checksum"),
        ),
    ),
}


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git's object id of a file's content: SHA-1 of ``b"blob <size in bytes>\\0"`` + the bytes (hex)."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    update_digest_from_file(digest, path)
    return digest.hexdigest()


def check_published_weights(path: str | os.PathLike, kind: NetworkKind) -> bool:
    """Whether ``path`` is the published file of its kind; if not, log a warning naming both hashes.

    A differing file is still used (a re-export or a fine-tune may be what the user means), but its
    FVDs are not the published network's: the warning says so, and the feature id carries the
    file's own hash.
    """
    published = PUBLISHED_WEIGHTS[kind]
    found = git_blob_sha1(path)
    if found == published.git_blob_sha1:
        return True
    logger.warning(
        "%s is not the published %s: its git blob SHA-1 is %s, the published file's is %s (%s). "
        "FVDs computed with it are not comparable with FVDs of the published weights.",
        path, published.file, found, published.git_blob_sha1, "; ".join(published.sources),
        extra=SAME_IN_EVERY_PROCESS,
    )
    return False


# What an I3D weight file may hold (its size, and what its zip records unpack to): 1 GiB. The
# network has 12.7 M parameters, so the published files are about 51 MB in float32.
MAX_I3D_BYTES = 1 << 30


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip with ``constants.pkl`` and ``code/``.

    ``torch.save`` writes zips too (since PyTorch 1.6), but with neither of those entries.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


# The layout a state-dict file must have, as errors name it.
LAYOUT = "i3d_pretrained_400.pt (the I3D of piergiaj/VideoGPT/TATS)"


def load_state_dict_strict(model: InceptionI3d, state_dict: object, path: str | os.PathLike) -> None:
    """Load ``state_dict`` strictly into ``model`` in the layout of ``i3d_pretrained_400.pt``
    (:func:`metrics.io.weights.load_state_dict_strict`: a ValueError naming ``path`` lists the
    missing, unexpected and misshapen keys; ``num_batches_tracked`` buffers may be missing)."""
    weights.load_state_dict_strict(model, state_dict, path, LAYOUT)


def _probe(features: I3DFeatures) -> None:
    """Call an archive once on one black clip of ``MIN_FRAMES`` frames, so that a file that is not
    the I3D (another signature, other than 400 outputs) is named at loading, before any clip is
    read (where an evaluator would blame the clip)."""
    x = torch.zeros((1, 3, MIN_FRAMES, features.size, features.size), dtype=features.dtype, device=features.device)
    with torch.no_grad():
        logits = features._call_network(x, rescale=False, resize=False, return_features=True)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (1, FEATURE_DIM):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else f"a {type(logits).__name__}"
        raise I3DNetworkError(
            f"{features.source}: the I3D archive returned {got} for one clip, expected (1, {FEATURE_DIM}) "
            "logits: is it StyleGAN-V's i3d_torchscript.pt?"
        )


def load_i3d(
    path: str | os.PathLike | None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 8,
    *,
    dtype: torch.dtype = torch.float32,
) -> I3DFeatures:
    """The I3D feature extractor of FVD, from a local weight file or, with ``path=None``, untrained.

    The extractor feeds the network the default input (``resize="stretch"``, 224); the FVD metric
    switches it to its protocol's ``fvd_resize`` / ``fvd_resolution`` with
    :meth:`I3DFeatures.with_input`.

    - A TorchScript archive (StyleGAN-V's ``i3d_torchscript.pt``, recognised by its content, not
      its name) is called with ``return_features=True``, which returns the 400 pre-softmax logits:
      with ``rescale=False, resize=False`` on clips preprocessed here (``stretch`` or
      ``shorter-side-crop``), or with ``rescale=True, resize=True`` on the uint8 clips under
      ``torchscript-internal`` (StyleGAN-V's ``fvd2048_16f``). ``feature_id``:
      ``i3d-stylegan-v-torchscript:<sha12>``.
    - Any other file is read with ``torch.load(weights_only=True)`` as a state dict and loaded
      strictly into :class:`InceptionI3d` (VideoGPT / TATS ``i3d_pretrained_400.pt``); a mismatch
      raises ValueError listing the missing / unexpected keys and the path. ``feature_id``:
      ``i3d-tats-400:<sha12>``.
    - ``path=None``: an untrained InceptionI3d with deterministic weights for ``seed``
      (``feature_id`` ``i3d-untrained-seed<N>``, ``is_pretrained=False``). Its distances are not
      FVD: callers must report them as "FVD*".

    ``<sha12>`` is the first 12 hex digits of the file's SHA-256. A file that is not the published
    one of its kind (:data:`PUBLISHED_WEIGHTS`) is loaded with a logged warning naming both
    hashes. ``device`` and ``dtype`` are where and in what precision the network runs; features
    are returned as float64.

    Errors name the file: ``FileNotFoundError``; ``ValueError`` for a file that is neither form or
    does not match the layout, or is larger (or whose zip records unpack to more) than
    ``MAX_I3D_BYTES`` (1 GiB), checked before torch reads it; :class:`I3DNetworkError` (a
    ValueError) for an archive that fails on, or returns other than (1, 400) for, one black probe
    clip at loading.
    """
    if path is None:
        network = init_untrained_(InceptionI3d(), seed)
        return I3DFeatures(
            network, feature_id=f"i3d-untrained-seed{seed}", is_pretrained=False,
            device=device, dtype=dtype, batch_size=batch_size,
        )  # fmt: skip

    # Before torch reads anything: a zip record can declare (and torch would allocate) any size.
    # torch.load(weights_only=True) then builds only tensors on those records and plain values
    # (no code runs); a pre-1.6 non-zip file is only bounded in size here.
    path = weights.check_weight_file(path, MAX_I3D_BYTES, "I3D")
    sha12 = file_sha256(path)[:12]

    if is_torchscript_archive(path):
        try:
            # torch >= 2.10 deprecates TorchScript, but StyleGAN-V published its I3D in that form.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                network = torch.jit.load(str(path), map_location=torch.device(device))
        except Exception as error:  # a corrupt archive: say which file
            raise ValueError(
                f"{path} looks like a TorchScript archive but torch.jit.load failed: {weights.last_line(error)}"
            ) from error
        published = check_published_weights(path, "torchscript")
        features = I3DFeatures(
            network, feature_id=f"i3d-stylegan-v-torchscript:{sha12}", is_pretrained=True, published=published,
            device=device, dtype=dtype, batch_size=batch_size, kind="torchscript", source=str(path),
        )  # fmt: skip
        _probe(features)
        return features

    state_dict = weights.read_state_dict(path, MAX_I3D_BYTES, "I3D (a TorchScript archive or a state dict)")
    network = InceptionI3d()
    load_state_dict_strict(network, state_dict, path)
    published = check_published_weights(path, "module")
    return I3DFeatures(
        network, feature_id=f"i3d-tats-400:{sha12}", is_pretrained=True, published=published,
        device=device, dtype=dtype, batch_size=batch_size, source=str(path),
    )  # fmt: skip

