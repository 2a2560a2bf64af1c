"""Sinusoidal embeddings of timesteps and frame positions (pure functions)."""

from __future__ import annotations

import math

import torch


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) numbers -> (N, dim) [sin | cos] features with geometric frequencies (float32).

    ``dim`` odd gets one zero column at the end.
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / max(half, 1)
    angles = values.float()[:, None] * torch.exp(exponent)[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding
