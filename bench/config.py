"""Bench configurations: what a run measures and how much each method trains.

A bench config is a YAML file (``bench/configs/<name>.yaml`` or any path)::

    corpus: {identities: 4, clips: 8, test_clips: 2, size: 128, seed: 0}  # the toy corpus (no --data)
    metrics: [fgd, div, bas, fvd, hkc, hkv, joins_app, joins_motion, drift]   # metrics.registry ids
    protocol: imac-bench                 # a metrics protocol preset
    weights: {}                          # local weight files of metrics that need them (syncnet: PATH, ...)
    syncnet_steps: 200                   # Sync-C*/Sync-D* without weights.syncnet: a stand-in trained here
    extractor: toy                       # toy | dwpose (with dwpose_detector / dwpose_pose paths)
    i3d: null                            # a local I3D weight file; null: the untrained stand-in (FVD*)
    fgd_autoencoder: null                # a trained skeleton autoencoder; null: trained on the train split
    fgd_autoencoder_steps: 400
    vae_steps: 400                       # the tiny VAE shared by imac (tiny config) and mya
    vae_resolution: 64                   # its frame size (32, 64 or 128 px: 16 x 16 latents); imac's
                                         # data.resolution and mya's resolution are to be the same
    methods:                             # per-method options (each method documents its own)
      imac: {config: tiny, overrides: [stage1.steps=200]}
      s2g: {...}
      mya: {...}

Unknown keys and values of the wrong type are errors that name the section and the key
(``metrics.options``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data.toy.corpus import ToyCorpusConfig
from metrics.options import OptionsError, build_options, options_to_dict, read_yaml, resolve_named_file
from metrics.protocol import split_presets
from metrics.registry import DEFAULT_METRICS, check_weight_names, normalise_metrics

CONFIG_DIR = Path(__file__).parent / "configs"
# The frame sizes of the shared tiny VAE (imac.training.autoencoder.TINY_VAE_RESOLUTIONS; not imported
# here: it loads diffusers, which a run of external methods never needs)
VAE_RESOLUTIONS = (32, 64, 128)


@dataclass
class CorpusSettings:
    identities: int = 4
    clips: int = 8
    test_clips: int = 2
    size: int = 128
    seed: int = 0


@dataclass
class BenchConfig:
    name: str = "toy"
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    protocol: str = "imac-bench"
    extractor: str = "toy"
    dwpose_detector: str | None = None
    dwpose_pose: str | None = None
    i3d: str | None = None
    fgd_autoencoder: str | None = None
    fgd_autoencoder_steps: int = 400
    vae_steps: int = 400
    vae_resolution: int = 64
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)   # hook metrics' weight files by MetricSpec.weights
    # Sync-C/Sync-D selected without ``weights.syncnet``: a reduced-width SyncNet of the published layers is
    # trained on the train split for this many steps (metrics.lipsync_training) and the columns are starred
    syncnet_steps: int = 200

    def to_dict(self) -> dict[str, Any]:
        return options_to_dict(self)


def config_from_dict(values: dict[str, Any], where: str = "bench config") -> BenchConfig:
    """A ``BenchConfig`` from a mapping; ``OptionsError`` names ``where``, the section and the key."""
    config = build_options(BenchConfig, values, where)
    try:
        split_presets(config.protocol)
    except ValueError as error:
        raise OptionsError(f"{where}: {error}") from None
    try:
        config.metrics = list(normalise_metrics(config.metrics))
    except ValueError as error:
        raise OptionsError(f"{where}: metrics: {error}") from None
    if not config.metrics:
        raise OptionsError(f"{where}: metrics: empty; name at least one (e.g. [fgd, div, bas, fvd])")
    try:
        check_weight_names(config.weights)
    except ValueError as error:
        raise OptionsError(f"{where}: {error}") from None
    corpus = config.corpus
    try:        # the toy corpus' own bounds, checked before any work and named as the config's keys
        ToyCorpusConfig(seed=corpus.seed, identities=corpus.identities, clips=corpus.clips,
                        test_clips=corpus.test_clips, size=corpus.size)
    except ValueError as error:
        said = re.sub(r"--([a-z]+(?:-[a-z]+)*)", lambda m: m.group(1).replace("-", "_"), str(error))
        raise OptionsError(f"{where}: corpus: {said}") from None
    if config.vae_resolution not in VAE_RESOLUTIONS:
        raise OptionsError(f"{where}: vae_resolution: {config.vae_resolution} px; the tiny VAE takes "
                           f"{', '.join(map(str, VAE_RESOLUTIONS))} px frames to 16 x 16 latents")
    return config


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A packaged bench config by stem (``toy``) or a YAML path."""
    return resolve_named_file(name_or_path, CONFIG_DIR, "bench config")


def load_bench_config(name_or_path: str | Path = "toy") -> BenchConfig:
    path = resolve_config_path(name_or_path)
    values = read_yaml(path)
    values.setdefault("name", path.stem)
    return config_from_dict(values, str(path))
