"""Implicit motion-audio coupling: what IMAC adds to the video UNet.

Every spatial cross-attention layer (``attn2`` under ``.attentions.``) of I2VGen-XL's UNet gets an
attention processor that returns

    attn2(h, context)  +  MotionAttention(h, motion of frame f +- w)  +  Reference(level of h)

- the first term is diffusers' ordinary cross-attention to the CLIP image / text / first-frame
  context, unchanged;
- the second is a per-frame cross-attention to the motion branch's representation: the layer's own
  query projection, its OWN key/value projections, and a zero-initialised output projection, so
  that frame f attends to the motion features of frames f-w..f+w (edge frames repeated);
- the third is the reference encoder's feature map at that layer's resolution, through a
  zero-initialised 1x1 projection to the layer's width: "added right after the cross-attention".

With ``video.motion_map`` > 0 (not the paper's; README, "The IMAC model": "Where the motion
lands") the motion term also carries a spatial part: each frame's normalised pose through a linear
layer to a small feature map over the latent grid (``MotionMap``), average-pooled to each level and
added through a zero-initialised 1x1 projection, so the motion can say WHERE (an arm's pixels) and
not only what, which one attended vector per frame cannot.

Both added terms start at exactly zero, so a freshly coupled pretrained UNet computes what it
computed before. The per-call tensors (motion tokens, reference maps, number of frames, the
per-sample motion scale used for classifier-free guidance) travel in ``Coupling.state``, set by
``Coupling.prepare`` before each UNet call: diffusers drops unknown ``cross_attention_kwargs``.
The state stays set after the call because gradient checkpointing recomputes the layers during
backward. ``unet.set_default_attn_processor()`` (and xformers / fused QKV) would remove the
processors: call ``Coupling.install(unet)`` again after any of those.

The coupling's parameters live in this ``ModelMixin`` (saved as its own folder), not in the UNet,
so the UNet's state dict keeps the I2VGen-XL layout.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

_LAYER = re.compile(r"^(down_blocks\.(\d+)|mid_block|up_blocks\.(\d+))\.attentions\..*\.attn2$")


@dataclass(frozen=True)
class CoupledLayer:
    name: str    # module path of the attn2 layer inside the UNet
    width: int   # the layer's hidden width (query dim)
    heads: int
    level: int   # resolution level: 0 = the latent resolution, each level halves it


def coupled_layers(unet: nn.Module) -> list[CoupledLayer]:
    """The UNet's spatial cross-attention layers, in module order, with width and resolution level."""
    levels = len(unet.config.block_out_channels)
    layers = []
    for name, module in unet.named_modules():
        match = _LAYER.match(name)
        if not match:
            continue
        if match.group(2) is not None:
            level = int(match.group(2))
        elif match.group(3) is not None:
            level = levels - 1 - int(match.group(3))
        else:
            level = levels - 1
        layers.append(CoupledLayer(name, module.to_q.in_features, module.heads, level))
    if not layers:
        raise ValueError("the UNet has no spatial cross-attention layers to couple")
    return layers


def motion_windows(features: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, F, D) -> (B * F, 2 radius + 1, D): for each frame the features of its neighbours.

    Edge frames repeat the first/last frame; frame f of batch b is row b * F + f, the order of
    the UNet's (batch x frames) axis.
    """
    batch, frames, dim = features.shape
    if radius == 0:
        return features.reshape(batch * frames, 1, dim)
    index = torch.arange(frames, device=features.device)[:, None] + torch.arange(-radius, radius + 1,
                                                                               device=features.device)
    index = index.clamp(0, frames - 1)
    return features[:, index].reshape(batch * frames, 2 * radius + 1, dim)


def _groups(channels: int) -> int:
    return math.gcd(32, channels)


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.GroupNorm(_groups(channels_in), channels_in), nn.SiLU(),
            nn.Conv2d(channels_in, channels_out, 3, padding=1),
            nn.GroupNorm(_groups(channels_out), channels_out), nn.SiLU(),
            nn.Conv2d(channels_out, channels_out, 3, padding=1))
        self.skip = nn.Identity() if channels_in == channels_out else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class ReferenceEncoder(nn.Module):
    """Residual conv modules on the reference image's VAE latent: one feature map per UNet level."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        previous = widths[0]
        for index, width in enumerate(widths):
            self.blocks.append(ResidualBlock(previous, width))
            if index < len(widths) - 1:
                self.downsamples.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
            previous = width

    def forward(self, latents: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv_in(latents)
        maps = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            maps.append(x)
            if index < len(self.downsamples):
                x = self.downsamples[index](x)
        return maps


class MotionAttention(nn.Module):
    """Per-frame cross-attention to motion tokens with its own K/V and a zero-initialised output."""

    def __init__(self, width: int, heads: int, context_width: int, tokens: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_k = nn.Linear(context_width, width, bias=False)
        self.to_v = nn.Linear(context_width, width, bias=False)
        self.to_out = nn.Linear(width, width)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        self.offset = nn.Parameter(torch.randn(tokens, context_width) * 0.02)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """query: (B*F, N, inner) from the layer's own to_q; tokens: (B*F, K, context) -> (B*F, N, width)."""
        tokens = tokens + self.offset.to(tokens.dtype)
        key, value = self.to_k(tokens), self.to_v(tokens)

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(query), split(key.to(query.dtype)), split(value.to(query.dtype)))
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        return self.to_out(out)


class MotionMap(nn.Module):
    """Each frame's pose -> a ``channels`` x ``size`` x ``size`` map over the latent grid, and its
    average-pooled halvings (rounded up) for the UNet's coarser levels.

    A linear layer writes the map (so the pose can place things anywhere on the grid), a residual
    3x3 convolution smooths it; other latent sizes than ``size`` are reached by bilinear resizing.
    """

    def __init__(self, pose_width: int, channels: int, size: int) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.linear = nn.Linear(pose_width, channels * size * size)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, pose: torch.Tensor, latent_hw: tuple[int, int], levels: int) -> list[torch.Tensor]:
        """(N, pose_width) -> ``levels`` maps (N, channels, h / 2**level, w / 2**level), (h, w) = latent_hw."""
        x = self.linear(pose).view(pose.shape[0], self.channels, self.size, self.size)
        if tuple(latent_hw) != (self.size, self.size):
            x = F.interpolate(x, size=tuple(latent_hw), mode="bilinear", align_corners=False)
        x = x + self.conv(F.silu(x))
        maps = [x]
        for _ in range(1, levels):     # ceil, as the UNet's stride-2 downsampling: 9 -> 5 -> 3
            maps.append(F.avg_pool2d(maps[-1], 2, ceil_mode=True))
        return maps


@dataclass
class CouplingState:
    num_frames: int
    motion_tokens: torch.Tensor | None      # (B*F, K, context_width)
    motion_scale: torch.Tensor | None       # (B*F, 1, 1): 0 drops the motion term (CFG, dropout)
    reference_maps: list[torch.Tensor] | None  # per level (B, C_level, h, w)
    motion_maps: list[torch.Tensor] | None = None  # per level (B*F, C_map, h, w): ``MotionMap``


class Coupling(ModelMixin, ConfigMixin):
    """Motion cross-attention and reference residuals for every spatial cross-attention layer.

    The motion features it is given are ``motion_width`` numbers per frame, of which the last
    ``pose_width`` are the frame's normalised pose when ``motion_map_channels`` > 0 (the source of the
    spatial motion map, ``map_size`` x ``map_size``: the latent grid); the attention sees all of them.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, layer_names: list[str], layer_widths: list[int], layer_heads: list[int],
                 layer_levels: list[int], motion_width: int, context_width: int = 64, motion_window: int = 1,
                 reference_widths: list[int] | None = (32, 64), latent_channels: int = 4,
                 pose_width: int = 0, motion_map_channels: int = 0, map_size: int = 0) -> None:
        super().__init__()
        tokens = 2 * motion_window + 1
        self.motion_proj = nn.Sequential(nn.Linear(motion_width, context_width), nn.LayerNorm(context_width))
        self.motion_attention = nn.ModuleList(
            MotionAttention(width, heads, context_width, tokens) for width, heads in zip(layer_widths, layer_heads))
        self.motion_map = self.motion_map_out = None
        if motion_map_channels:
            if not 0 < pose_width < motion_width or map_size < 1:
                raise ValueError(f"a motion map needs the pose's width inside the motion features' ({pose_width} of "
                                 f"{motion_width}) and the latent grid's size ({map_size})")
            self.motion_map = MotionMap(pose_width, motion_map_channels, map_size)
            self.motion_map_out = nn.ModuleList(nn.Conv2d(motion_map_channels, width, 1) for width in layer_widths)
            for conv in self.motion_map_out:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        if reference_widths:
            levels = max(layer_levels) + 1
            if len(reference_widths) < levels:
                raise ValueError(f"video.reference_widths has {len(reference_widths)} entries; the UNet's "
                                 f"cross-attention layers span {levels} resolution levels")
            self.reference_encoder = ReferenceEncoder(latent_channels, list(reference_widths[:levels]))
            self.reference_out = nn.ModuleList(
                nn.Conv2d(reference_widths[level], width, 1) for width, level in zip(layer_widths, layer_levels))
            for conv in self.reference_out:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        else:
            self.reference_encoder = None
            self.reference_out = None
        self.state: CouplingState | None = None

    @classmethod
    def for_unet(cls, unet: nn.Module, motion_width: int, context_width: int, motion_window: int,
                 reference_widths: list[int] | None, pose_width: int = 0, motion_map_channels: int = 0,
                 map_size: int = 0) -> Coupling:
        """The coupling of ``unet``'s layers; with ``motion_map_channels`` > 0 the motion features are
        ``motion_width`` numbers ending in ``pose_width`` of pose, and the latent grid is ``map_size`` square."""
        layers = coupled_layers(unet)
        return cls([l.name for l in layers], [l.width for l in layers], [l.heads for l in layers],
                   [l.level for l in layers], motion_width, context_width, motion_window,
                   list(reference_widths) if reference_widths else None, unet.config.in_channels,
                   pose_width if motion_map_channels else 0, motion_map_channels, map_size if motion_map_channels else 0)

    def install(self, unet: nn.Module) -> None:
        """Put this coupling's processor on each of the UNet's spatial cross-attention layers."""
        names = [l.name for l in coupled_layers(unet)]
        if names != list(self.config.layer_names):
            raise ValueError("this coupling was built for another UNet layout "
                             f"({len(self.config.layer_names)} layers, the UNet has {len(names)})")
        for index, name in enumerate(names):
            unet.get_submodule(name).set_processor(CoupledCrossAttnProcessor(self, index))

    def prepare(self, num_frames: int, motion_features: torch.Tensor | None,
                reference_latents: torch.Tensor | None, motion_scale: torch.Tensor | None = None) -> None:
        """Set the tensors of the next UNet call.

        motion_features (B, F, motion_width) for the F video frames; reference_latents (B, C, h, w)
        the VAE latent of the reference image (its h, w are the latent grid's); motion_scale (B,) 1
        keeps, 0 drops the motion term (the spatial motion map with it).
        """
        tokens = scale = motion_maps = None
        if motion_features is not None:
            if motion_features.shape[1] != num_frames:
                raise ValueError(f"motion features cover {motion_features.shape[1]} frames, the video {num_frames}")
            tokens = motion_windows(self.motion_proj(motion_features), self.config.motion_window)
            if motion_scale is not None:
                scale = motion_scale.to(tokens.dtype).repeat_interleave(num_frames)[:, None, None]
            if self.motion_map is not None:
                if reference_latents is None:
                    raise ValueError("the spatial motion map needs the reference latents (their latent grid)")
                pose = motion_features[..., -self.config.pose_width:].flatten(0, 1)
                motion_maps = self.motion_map(pose, reference_latents.shape[-2:], max(self.config.layer_levels) + 1)
        maps = None
        if self.reference_encoder is not None and reference_latents is not None:
            maps = self.reference_encoder(reference_latents)
        self.state = CouplingState(num_frames, tokens, scale, maps, motion_maps)

    def residual(self, index: int, attn: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """What layer ``index`` adds to its cross-attention output (None: nothing)."""
        state = self.state
        if state is None:
            raise RuntimeError("Coupling.prepare must be called before the coupled UNet runs")
        added = None
        if state.motion_tokens is not None:
            added = self.motion_attention[index](attn.to_q(hidden_states), state.motion_tokens)
            if state.motion_maps is not None:
                spatial = self.motion_map_out[index](state.motion_maps[self.config.layer_levels[index]])
                spatial = spatial.flatten(2).transpose(1, 2)
                if spatial.shape != added.shape:
                    raise ValueError(f"motion map {tuple(spatial.shape)} does not match layer "
                                     f"{self.config.layer_names[index]} {tuple(added.shape)}: reference latents "
                                     "must have the video latents' height and width")
                added = added + spatial.to(added.dtype)
            if state.motion_scale is not None:
                added = added * state.motion_scale
        if state.reference_maps is not None:
            level = self.config.layer_levels[index]
            reference = self.reference_out[index](state.reference_maps[level])
            batch, channels = reference.shape[:2]
            reference = reference.flatten(2).transpose(1, 2).repeat_interleave(state.num_frames, dim=0)
            if reference.shape != hidden_states.shape:
                raise ValueError(f"reference residual {tuple(reference.shape)} does not match layer "
                                 f"{self.config.layer_names[index]} {tuple(hidden_states.shape)}: "
                                 "reference latents must have the video latents' height and width")
            added = reference if added is None else added + reference
        return added


class CoupledCrossAttnProcessor:
    """diffusers' scaled-dot-product cross-attention plus the coupling's residual for one layer.

    A plain object (not an ``nn.Module``) so that the coupling's parameters are not registered
    inside the UNet.
    """

    def __init__(self, coupling: Coupling, index: int) -> None:
        self.coupling = coupling
        self.index = index
        self.base = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        added = self.coupling.residual(self.index, attn, hidden_states)
        return out if added is None else out + added.to(out.dtype)
