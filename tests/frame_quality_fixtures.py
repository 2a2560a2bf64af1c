"""Deterministic inputs shared by the frame quality tests and the recorded peer runs.

The numbers in ``tests/fixtures/peers/fid_pytorch_fid.json`` and ``lpips_richzhang.json`` were made
by the peers on exactly these images (written as PNG, which is lossless) and stand-in weights; the
tests regenerate them here and compare.
"""

from __future__ import annotations

import numpy as np

PARITY_SHAPE = (48, 64)      # (height, width): non-square, smaller than 299, so the resize matters


def parity_images(seed: int, count: int, shape: tuple[int, int] = PARITY_SHAPE) -> np.ndarray:
    """``(count, H, W, 3)`` uint8 RGB: 8 x 8 pixel blocks of random colours plus per-pixel noise
    (+-24), from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    height, width = shape
    blocks = rng.integers(0, 256, (count, -(-height // 8), -(-width // 8), 3)).astype(np.int64)
    image = blocks.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width]
    noise = rng.integers(-24, 25, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)
