"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018) in the layout of the ``lpips`` package (github.com/richzhang/PerceptualSimilarity).

The distance between two images: both go through an ImageNet classifier's convolutional trunk
(AlexNet, the package's default, or VGG-16); at five ReLU outputs the feature vector of each pixel
is divided by its L2 norm (plus 1e-10), the squared difference of the two images' unit vectors is
weighted per channel by a learned non-negative 1x1 convolution (the ``lin`` layers, calibrated on
human judgements), averaged over the layer's pixels, and the five averages are summed. Lower is
more similar; 0 for identical images.

The ``lpips`` package needs torchvision (which does not import beside this project's CPU torch)
and downloads the trunk at run time, so :class:`LPIPS` here is written from that description with
torchvision's ``features`` indices, and reads two local files:

- the trunk: torchvision's ImageNet weights, ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``
  (their ``features.*`` tensors; ``classifier.*`` is ignored);
- the ``lin`` layers: the lpips package's ``weights/v0.1/alex.pth`` or ``vgg.pth`` (keys
  ``lin0.model.1.weight`` .. ``lin4.model.1.weight``), shipped inside its wheel.

Input convention (the package's, v0.1): uint8 RGB frames / 255, ``2 x - 1`` to [-1, 1], then the
package's ScalingLayer ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188) and scale (0.458,
0.448, 0.450) per RGB channel; no resize (the distance is computed at the frames' own size).
Taps: AlexNet relu1..relu5 (features 1, 4, 7, 9, 11; channels 64, 192, 384, 256, 256); VGG-16
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (features 3, 8, 15, 22, 29; 64, 128, 256, 512, 512).

Files are recognised by their SHA-256 prefixes where a name states one (torch.hub's naming rule) and
by the digests of the package's files (:data:`PUBLISHED_LIN_SHA256`); others are used with a logged
warning. Without files, :func:`load_lpips` builds seeded stand-in weights: its distance is "LPIPS*".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metrics.distributed import SAME_IN_EVERY_PROCESS
from metrics.inception import init_standin_
from metrics.io.files import file_sha256
from metrics.io.video import chunk_frames
from metrics.io.weights import as_state_dict, load_state_dict_strict, read_state_dict

__all__ = ["LPIPS", "NETWORKS", "LPIPSDistance", "init_standin_lpips_", "load_lpips", "load_lpips_folder"]

logger = logging.getLogger(__name__)

# torchvision ``features`` layer lists:
# ("conv", in, out, kernel, stride, padding) | ("relu",) | ("pool", kernel, stride)
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2), ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
         ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)]


def _vgg16() -> list[tuple]:
    layers, width = [], 3
    for stage, (channels, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        if stage:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers += [("conv", width, channels, 3, 1, 1), ("relu",)]
            width = channels
    return layers


NETWORKS: dict[str, dict] = {
    "alex": {"layers": _ALEX, "taps": (1, 4, 7, 9, 11), "channels": (64, 192, 384, 256, 256),
             "trunk_file": "alexnet-owt-7be5be79.pth", "trunk_sha256_prefix": "7be5be79", "lin_file": "alex.pth"},
    "vgg": {"layers": _vgg16(), "taps": (3, 8, 15, 22, 29), "channels": (64, 128, 256, 512, 512),
            "trunk_file": "vgg16-397923af.pth", "trunk_sha256_prefix": "397923af", "lin_file": "vgg.pth"},
}
# SHA-256 of lpips/weights/v0.1/{alex,vgg}.pth in github.com/richzhang/PerceptualSimilarity at
# 082bb24f84c091ea94de2867d34c4544f68e0963 (the same files as the lpips 0.1.4 wheel).
PUBLISHED_LIN_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10
MAX_TRUNK_BYTES = 1 << 30          # VGG-16 with its classifier is 553 MB in float32
MAX_LIN_BYTES = 1 << 20            # the lin files are 6-7 KB

PREPROCESSING = ("uint8 RGB (N,H,W,3) / 255, 2x-1, then (x - shift) / scale with shift (-0.030, -0.088, -0.188) "
                 "and scale (0.458, 0.448, 0.450) per RGB channel (lpips v0.1); no resize")


class LPIPS(nn.Module):
    """The LPIPS network: ``features`` (torchvision's indices of AlexNet or VGG-16) and ``lins``
    (five bias-free 1x1 convolutions to one channel).

    ``forward(a, b)``: two float ``(N, 3, H, W)`` batches in [-1, 1] -> ``(N,)`` distances.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETWORKS:
            raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(NETWORKS)}")
        self.net = net
        spec = NETWORKS[net]
        layers: list[nn.Module] = []
        for layer in spec["layers"]:
            if layer[0] == "conv":
                _, cin, cout, kernel, stride, padding = layer
                layers.append(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding))
            elif layer[0] == "relu":
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2d(kernel_size=layer[1], stride=layer[2]))
        self.features = nn.Sequential(*layers)
        self.taps = spec["taps"]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec["channels"])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def taps_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped ReLU outputs of a [-1, 1] batch (after the scaling layer)."""
        x = (x - self.shift) / self.scale
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
            if index == self.taps[-1]:
                break
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for lin, fa, fb in zip(self.lins, self.taps_of(a), self.taps_of(b)):
            ua = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            ub = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            total = total + lin((ua - ub) ** 2).mean(dim=(1, 2, 3))
        return total


@torch.no_grad()
def init_standin_lpips_(model: LPIPS, seed: int) -> LPIPS:
    """Seeded stand-in weights: the trunk by :func:`metrics.inception.init_standin_` (He-normal
    convolutions, zero biases), the ``lin`` weights U(0, 1) (non-negative, as trained ones are),
    both from ``numpy.random.default_rng(seed)``."""
    init_standin_(model.features, seed)
    rng = np.random.default_rng(seed + 1)
    for lin in model.lins:
        lin.weight.copy_(torch.from_numpy(rng.uniform(0.0, 1.0, tuple(lin.weight.shape)).astype(np.float32)))
    return model


class LPIPSDistance:
    """Callable: two uint8 RGB batches ``(N, H, W, 3)`` of the same shape -> float64 ``(N,)`` LPIPS.

    Attributes: ``net`` ("alex" | "vgg"), ``weights_id`` (``lpips-alex-v0.1:<trunk sha12>+<lin
    sha12>`` or ``lpips-alex-standin-seed<N>``), ``is_pretrained`` (False: "LPIPS*"), ``published`` (False:
    trained weights, but not both published files: "LPIPS*" too; None: a stand-in),
    ``preprocessing``, ``batch_size``, ``device``, ``source`` (the files, named in errors).
    """

    def __init__(self, network: LPIPS, *, weights_id: str, is_pretrained: bool, device: str | torch.device = "cpu",
                 batch_size: int = 8, source: str | None = None, published: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.network = network.to(self.device, torch.float32).eval()
        self.net = network.net
        self.weights_id = weights_id
        self.is_pretrained = is_pretrained
        self.published = published
        self.batch_size = int(batch_size)
        self.source = source or weights_id
        self.preprocessing = PREPROCESSING

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).to(torch.float32)
        return x / 255.0 * 2 - 1

    def __call__(self, frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
        frames, truth = np.asarray(frames), np.asarray(truth)
        for name, array in (("frames", frames), ("ground-truth frames", truth)):
            if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
                raise ValueError(f"LPIPS takes uint8 (N, H, W, 3) RGB {name}, got {array.dtype} {array.shape}")
        if frames.shape != truth.shape:
            raise ValueError(f"LPIPS compares frames of one shape, got {frames.shape} and {truth.shape}")
        out = np.empty(len(frames), np.float64)
        # pairs per batch bounded by the two float32 inputs' bytes (CHUNK_BUDGET): LPIPS runs at the frames'
        # own size, so 8 pairs of 2048 x 2048 took 5.5 GB; 8 up to 1.3 Mpx, 2 at 2048 x 2048
        size = chunk_frames(frames[0].nbytes * 8, self.batch_size) if len(frames) else self.batch_size
        with torch.no_grad():
            for start in range(0, len(frames), size):
                stop = start + size
                try:
                    values = self.network(self._tensor(frames[start:stop]), self._tensor(truth[start:stop]))
                except RuntimeError as error:      # e.g. frames smaller than the trunk's receptive field
                    raise ValueError(f"LPIPS ({self.net}) failed on frames of {frames.shape[1:3]}: "
                                     f"{str(error).splitlines()[0]}") from None
                out[start:start + len(values)] = values.to("cpu", torch.float64).numpy()
        return out


def _check_published(path: Path, digest: str, expected: str, what: str) -> bool:
    if digest.startswith(expected):
        return True
    logger.warning("%s is not the published %s (its SHA-256 starts %s, the published file's %s): "
                   "LPIPS values computed with it are not comparable with published ones.",
                   path, what, digest[:8], expected[:8], extra=SAME_IN_EVERY_PROCESS)
    return False


def load_lpips(trunk: str | os.PathLike | None, lin: str | os.PathLike | None, net: str = "alex",
               device: str | torch.device = "cpu", seed: int = 0, batch_size: int = 8) -> LPIPSDistance:
    """LPIPS from local files: ``trunk`` (torchvision's ImageNet state dict of the network,
    ``features.*`` keys; ``classifier.*`` ignored) and ``lin`` (the lpips package's
    ``weights/v0.1/<net>.pth``). Both None: seeded stand-in weights (``is_pretrained=False``,
    report "LPIPS*"); one without the other is refused.

    Files are read bounded (trunk at most 1 GiB, lin 1 MiB, checked before torch reads them) with
    ``torch.load(weights_only=True, map_location="cpu")`` (the lin files are legacy CUDA pickles)
    and loaded strictly. Errors name the file: ``FileNotFoundError``; ``ValueError`` for a file of
    another layout (keys listed), too large, or unreadable.
    """
    if net not in NETWORKS:
        raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(NETWORKS)}")
    spec = NETWORKS[net]
    model = LPIPS(net)
    if trunk is None and lin is None:
        init_standin_lpips_(model, seed)
        return LPIPSDistance(model, weights_id=f"lpips-{net}-standin-seed{seed}", is_pretrained=False,
                             device=device, batch_size=batch_size)
    if trunk is None or lin is None:
        raise ValueError(f"LPIPS needs both the trunk ({spec['trunk_file']}) and the lin layers "
                         f"({spec['lin_file']}), got only {trunk or lin}")
    trunk, lin = Path(trunk), Path(lin)
    trunk_state = read_state_dict(trunk, MAX_TRUNK_BYTES, f"torchvision {net} trunk")
    load_state_dict_strict(model.features, _prefixed(trunk_state, trunk, "features."), trunk,
                           f"torchvision's {spec['trunk_file']} (features.*)")
    lin_state = as_state_dict(read_state_dict(lin, MAX_LIN_BYTES, f"LPIPS {net} lin layers"), lin,
                              f"lpips' {spec['lin_file']}")
    renamed = {}
    for key, value in lin_state.items():
        parts = key.split(".")          # lin<k>.model.1.weight (the package's Sequential(Dropout, Conv2d))
        if len(parts) == 4 and parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[1:] == ["model", "1",
                                                                                                       "weight"]:
            renamed[f"{parts[0][3:]}.weight"] = value
        else:
            renamed[key] = value
    load_state_dict_strict(model.lins, renamed, lin, f"lpips' weights/v0.1/{spec['lin_file']} (lin<k>.model.1.weight)")
    trunk_digest, lin_digest = file_sha256(trunk), file_sha256(lin)
    published = [_check_published(trunk, trunk_digest, spec["trunk_sha256_prefix"],
                                  f"torchvision {spec['trunk_file']}"),
                 _check_published(lin, lin_digest, PUBLISHED_LIN_SHA256[net], f"lpips v0.1 {spec['lin_file']}")]
    return LPIPSDistance(model, weights_id=f"lpips-{net}-v0.1:{trunk_digest[:12]}+{lin_digest[:12]}",
                         is_pretrained=True, device=device, batch_size=batch_size, source=f"{trunk} + {lin}",
                         published=all(published))


def _prefixed(state: object, path: Path, prefix: str) -> object:
    """The tensors under ``prefix`` with it removed (``classifier.*`` and others dropped)."""
    if not isinstance(state, dict):
        return state
    kept = {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    if not kept:
        raise ValueError(f"{path}: no '{prefix}*' tensors (has {', '.join(list(map(str, state))[:6])}): "
                         "expected torchvision's ImageNet state dict of the trunk")
    return kept


def load_lpips_folder(folder: str | os.PathLike, net: str = "alex", device: str | torch.device = "cpu",
                      batch_size: int = 8) -> LPIPSDistance:
    """:func:`load_lpips` from one folder holding both files under their published names
    (``alexnet-owt-7be5be79.pth`` + ``alex.pth``, or ``vgg16-397923af.pth`` + ``vgg.pth``): the form
    of the ``--weights lpips=DIR`` option. ``FileNotFoundError`` names the missing file."""
    if net not in NETWORKS:
        raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(NETWORKS)}")
    folder = Path(folder)
    spec = NETWORKS[net]
    for name in (spec["trunk_file"], spec["lin_file"]):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"LPIPS weights folder {folder}: no {name} (it needs torchvision's "
                                    f"{spec['trunk_file']} and lpips' weights/v0.1/{spec['lin_file']})")
    return load_lpips(folder / spec["trunk_file"], folder / spec["lin_file"], net, device, batch_size=batch_size)
