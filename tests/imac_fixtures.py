"""Shared builders for the IMAC model tests: a tiny corpus, a random tiny VAE, a tiny config."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from imac.config import IMACConfig, load_config
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus

RESOLUTION = 32
SMALL_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 3,
             "up_block_types": ["UpDecoderBlock2D"] * 3, "block_out_channels": [8, 16, 16],
             "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 8, "sample_size": RESOLUTION,
             "mid_block_add_attention": False}


def make_corpus(root: Path) -> Path:
    generate_toy_corpus(root, ToyCorpusConfig(identities=1, clips=3, test_clips=1, size=64,
                                              min_seconds=3.6, max_seconds=4.0), progress=False)
    return root


def make_vae(root: Path) -> Path:
    torch.manual_seed(0)
    AutoencoderKL(**SMALL_VAE).save_pretrained(root)
    return root


def tiny_config(corpus: Path, vae: Path, output: Path, overrides: list[str] = ()) -> IMACConfig:
    """The packaged tiny config, shrunk further for tests (32 px, 2 denoising steps)."""
    return load_config("tiny", [
        f"data.root={corpus}", f"data.resolution={RESOLUTION}", f"video.vae={vae}",
        f"train.output={output}", "video.unet.sample_size=8", "motion.sample_steps=2",
        "video.sample_steps=2", "video.guidance_scale=3.5", "stage1.batch_size=4", "stage2.batch_size=2", "stage2.init_from=null",
        "train.log_every=1", "train.save_every=1000", *overrides])
