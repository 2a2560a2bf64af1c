"""Deterministic inputs of the lip-sync tests, regenerated on every run (nothing stored).

- :func:`standin_state_dict`: SyncNet weights in the published layout (``syncnet_v2.model``'s keys
  and shapes) drawn from ``torch.manual_seed``-seeded generators, in state-dict order; the peer
  parity numbers in ``tests/test_lipsync.py`` were computed by syncnet_python's own code on
  exactly these weights.
- :func:`parity_clip`: a 224x224 face-like clip (skin ellipse, eyes, a mouth whose opening follows
  the audio's loudness two frames late) at 25 fps and its 16 kHz audio (int16-exact float32).

Both use only torch's CPU generator and numpy's PCG64, whose streams are fixed across versions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from metrics.syncnet import SyncNet, SyncNetConfig

PARITY_SEED = 1234
PARITY_FRAMES = 30


def standin_state_dict(config: SyncNetConfig | None = None, seed: int = PARITY_SEED) -> dict[str, torch.Tensor]:
    """Random weights of ``config``'s SyncNet, keys in ``SyncNet(config).state_dict()`` order.

    Convolution and linear weights ~ N(0, 1 / fan_in) (the first video convolution scaled by
    1/128 since it reads 0..255 pixels, the first audio one by 1/10 for MFCCs of about +-20);
    biases ~ 0.1 N(0, 1), plus one vector 0.5 N(0, 1) added to both heads' last biases; batch norms: weight 1 + 0.1 N, bias 0.1 N, running mean 0.1 N, running
    variance U(0.5, 1.5).
    """
    config = config or SyncNetConfig()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    template = SyncNet(config).state_dict()
    out = {}
    for key, value in template.items():
        shape = value.shape
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long)
            continue
        normal = torch.randn(shape, generator=generator)
        module_is_norm = key.rsplit(".", 1)[0] + ".running_var" in template
        if key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith(("running_mean", "bias")):
            out[key] = 0.1 * normal
        elif module_is_norm:
            out[key] = 1.0 + 0.1 * normal
        else:
            fan_in = math.prod(shape[1:])
            scale = 1.0 / math.sqrt(fan_in)
            if key == "netcnnlip.0.weight":
                scale /= 128.0
            elif key == "netcnnaud.0.weight":
                scale /= 10.0
            out[key] = scale * normal
    # One shared offset added by both heads' last layers: the two embeddings then live around the
    # same point, and the zero vectors past the ends (syncnet_python's padding) are far from both,
    # so the smallest mean distance lies inside the shift range, as with trained weights.
    shared = 0.5 * torch.randn(config.embedding, generator=generator)
    out["netfcaud.3.bias"] = out["netfcaud.3.bias"] + shared
    out["netfclip.3.bias"] = out["netfclip.3.bias"] + shared
    return out


def parity_clip(frames: int = PARITY_FRAMES, seed: int = PARITY_SEED, lag: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (F, 224, 224, 3) uint8 RGB, audio (F * 640,) float32 at 16 kHz)``.

    The audio: a 150 Hz buzz with harmonics, amplitude-modulated by syllables of random length,
    plus a little noise, quantised to 16-bit steps (so a 16-bit PCM file holds it exactly). The
    video: a face whose mouth height follows the audio's frame loudness ``lag`` frames late.
    """
    rng = np.random.default_rng(seed)
    samples = frames * 640
    t = np.arange(samples) / 16000.0
    envelope = np.zeros(samples)
    position = 0
    while position < samples:
        length = int(rng.integers(1600, 4800))
        envelope[position:position + length] = np.sin(np.linspace(0, np.pi, min(length, samples - position)))
        position += length + int(rng.integers(0, 1600))
    voice = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 6))
    audio = 0.25 * envelope * voice + 0.01 * rng.standard_normal(samples)
    audio = (np.clip(np.round(audio * 32768), -32768, 32767) / 32768).astype(np.float32)
    loudness = np.sqrt((audio.reshape(frames, 640).astype(np.float64) ** 2).mean(axis=1))
    loudness /= loudness.max()
    video = np.empty((frames, 224, 224, 3), np.uint8)
    for n in range(frames):
        image = np.full((224, 224, 3), (60, 80, 110), np.uint8)
        cv2.ellipse(image, (112, 104), (70, 92), 0, 0, 360, (224, 172, 140), -1)
        for x in (84, 140):
            cv2.circle(image, (x, 84), 9, (40, 30, 30), -1)
        opening = 4 + round(30 * loudness[max(0, n - lag)])
        cv2.ellipse(image, (112, 160), (28, opening // 2 + 2), 0, 0, 360, (120, 40, 50), -1)
        video[n] = image
    return video, audio
