"""Bench configurations: what a run measures and how much each method trains.

A bench config is a YAML file (``bench/configs/<name>.yaml`` or any path)::

    corpus: {identities: 4, clips: 8, test_clips: 2, size: 128, seed: 0}  # the toy corpus (no --data)
    metrics: [fgd, div, bas, fvd]
    protocol: imac-bench                 # a metrics protocol preset
    extractor: toy                       # toy | dwpose (with dwpose_detector / dwpose_pose paths)
    i3d: null                            # a local I3D weight file; null: the untrained stand-in (FVD*)
    fgd_autoencoder: null                # a trained skeleton autoencoder; null: trained on the train split
    fgd_autoencoder_steps: 400
    vae_steps: 400                       # the tiny VAE shared by imac (tiny config) and mya
    methods:                             # per-method options (each method documents its own)
      imac: {config: tiny, overrides: [stage1.steps=200]}
      s2g: {...}
      mya: {...}

Unknown keys are errors that name the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


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
    metrics: list[str] = field(default_factory=lambda: ["fgd", "div", "bas", "fvd"])
    protocol: str = "imac-bench"
    extractor: str = "toy"
    dwpose_detector: str | None = None
    dwpose_pose: str | None = None
    i3d: str | None = None
    fgd_autoencoder: str | None = None
    fgd_autoencoder_steps: int = 400
    vae_steps: int = 400
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_keys(values: dict, kind: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(kind)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")


def config_from_dict(values: dict[str, Any], where: str = "bench config") -> BenchConfig:
    values = dict(values or {})
    _check_keys(values, BenchConfig, where)
    corpus = values.pop("corpus", None) or {}
    if not isinstance(corpus, dict):
        raise ValueError(f"{where}: corpus must be a mapping")
    _check_keys(corpus, CorpusSettings, f"{where}: corpus")
    methods = values.get("methods") or {}
    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise ValueError(f"{where}: methods must map method names to option mappings")
    values["methods"] = methods
    return BenchConfig(corpus=CorpusSettings(**corpus), **values)


def resolve_config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such bench config")
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no bench config {name_or_path!r} (built in: {', '.join(names)}; or give a YAML path)")
    return candidate


def load_bench_config(name_or_path: str | Path = "toy") -> BenchConfig:
    path = resolve_config_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    values.setdefault("name", path.stem)
    return config_from_dict(values, str(path))
