"""Trainable audio encoder: MFCC -> one temporal self-attention layer; HuBERT features; fused.

The frozen parts (MFCC computation, HuBERT) run in ``imac.audio_features`` and arrive here as
per-frame arrays already aligned to the video frame count; this module learns only the MFCC
self-attention layer and the linear fusion of ``[mfcc_features, hubert_features]``.
"""

from __future__ import annotations

import torch
from torch import nn

from imac.models.embeddings import sinusoidal_embedding


class AudioEncoder(nn.Module):
    def __init__(self, n_mfcc: int, hubert_dim: int, mfcc_width: int, mfcc_heads: int, width: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.mfcc_in = nn.Linear(n_mfcc, mfcc_width)
        self.mfcc_attention = nn.TransformerEncoderLayer(
            mfcc_width, mfcc_heads, 4 * mfcc_width, dropout, batch_first=True, norm_first=True)
        self.fuse = nn.Linear(mfcc_width + hubert_dim, width)
        self.width = width

    def forward(self, mfcc: torch.Tensor, hubert: torch.Tensor) -> torch.Tensor:
        """(B, F, n_mfcc), (B, F, hubert_dim) -> (B, F, width)."""
        if mfcc.shape[:2] != hubert.shape[:2]:
            raise ValueError(f"MFCC frames {tuple(mfcc.shape[:2])} and HuBERT frames "
                             f"{tuple(hubert.shape[:2])} differ")
        x = self.mfcc_in(mfcc)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + sinusoidal_embedding(positions, x.shape[-1]).to(x.dtype)
        x = self.mfcc_attention(x)
        return self.fuse(torch.cat([x, hubert.to(x.dtype)], dim=-1))
