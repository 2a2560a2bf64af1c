"""Whether the IMAC model trained earlier in a run folder (``work/<method>/<stage>``) is this run's, and
which config keys the run sets itself.

A rerun reuses a trained stage only when it was trained with the run's configuration, as the stage's
``config.yaml`` says; what does not change what is trained (``RUNTIME_KEYS``, the sampling switches)
and where a folder is (``LOCATION_KEYS``) do not count. The run gives every IMAC variant its folder, data,
stage 1 and VAE (``RUN_KEYS``): an ``overrides`` entry of the bench config's ``imac`` section may not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from imac.config import SAMPLING_KEYS, IMACConfig, config_differences, flat_config, listed
from metrics.options import read_yaml

# Keys that do not change what is trained (the device, logging, memory use, a label): a model trained
# earlier in the run folder is reused whatever they are (and the sampling switches, SAMPLING_KEYS, apply
# to a trained model).
RUNTIME_KEYS = ("name", "train.device", "train.num_workers", "train.save_every", "train.log_every",
                "train.gradient_checkpointing")
# Keys that name a folder: where it is does not count (a run folder may move), whether one is given does
# (with or without stage 1, a pretrained I2VGen-XL or the tiny networks, HuBERT's weights or the tiny one).
LOCATION_KEYS = ("train.output", "data.root", "data.feature_cache", "stage1.init_from", "stage2.init_from",
                 "video.vae", "video.pretrained", "audio.hubert")

# keys the run gives every variant, which an ``overrides`` entry would take from it
RUN_KEYS = {"train.output": "each variant trains in its own folder of the run; an override would give all of them one "
                            "folder, and the second variant would find the first one's models",
            "data.root": "the run's dataset, --data",
            "data.identities": "the run's --identities",
            "stage2.init_from": "each variant's own stage 1 (imac-no-stage1 and imac-no-motion train without one)",
            "video.vae": "the run's tiny VAE, shared by every method that needs one (a config with video.pretrained "
                         "loads its own)"}


def overridden_run_key(override: str) -> str | None:
    """The key of ``RUN_KEYS`` that ``override`` ("key.sub=value") sets, directly or inside a mapping given to
    a section (``train={output: DIR}``); None if none."""
    key, _, value = override.partition("=")
    key = key.strip()
    if key in RUN_KEYS:
        return key
    for run_key in RUN_KEYS:
        if run_key.startswith(key + "."):
            try:
                given = yaml.safe_load(value)
            except yaml.YAMLError:
                return None             # the config loader names it
            for part in run_key[len(key) + 1:].split("."):
                if not isinstance(given, dict) or part not in given:
                    break
                given = given[part]
            else:
                return run_key
    return None


def _locations_blurred(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value if key not in LOCATION_KEYS or value in (None, "tiny") else "<a folder>"
            for key, value in values.items()}


def check_trained_with(stage_dir: Path, config: IMACConfig) -> None:
    """Refuse a run folder whose ``stage_dir`` (``work/<method>/<stage>``, finished or interrupted) was
    trained with settings other than ``config``'s, as its ``config.yaml`` says: the run would score or
    go on training another model. Not compared: ``RUNTIME_KEYS``, ``SAMPLING_KEYS``, the places of
    ``LOCATION_KEYS``; for stage 1 the video branch and stage 2; for a stage 2 without stage 1 (both
    sides: the w/o-motion and w/o-first-stage ablations) stage 1's settings. A key the file lacks (a
    version before it) counts as changed. Raises ValueError naming the keys; a folder without
    ``config.yaml`` (nothing trained there) passes."""
    saved_path = stage_dir / "config.yaml"
    if not saved_path.is_file():
        return
    here = stage_dir.parent.parent.parent           # <out>/work/<method>/<stage>
    advice = f"this run folder holds that model's results; give a new --out to run this configuration (not {here})"
    try:
        saved = flat_config(read_yaml(saved_path))
    except (OSError, ValueError) as error:
        raise ValueError(f"{saved_path}: cannot compare the model trained in this run folder with this "
                         f"run's configuration ({error}); {advice}") from None
    now = flat_config(config.to_dict())
    ignore = RUNTIME_KEYS + SAMPLING_KEYS
    if stage_dir.name == "stage1":
        ignore += ("video.", "stage2.")
    elif saved.get("stage2.init_from") is None and now.get("stage2.init_from") is None:
        ignore += ("stage1.",)
    changes = config_differences(_locations_blurred(saved), _locations_blurred(now), ignore)
    if changes:
        raise ValueError(f"{stage_dir}: trained earlier in this run folder with another configuration "
                         f"({listed(changes)}); {advice}")
