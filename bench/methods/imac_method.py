"""IMAC and its ablations (the paper's Table 3) as benchmark methods.

Each is the same code with configuration switches. With no trained model given (``model:`` in the
method's options), the bench trains it on the dataset's train split: stage 1 (motion) then stage 2
(video) into the method's work folder, resuming from the latest checkpoint of an interrupted run.
The tiny configuration needs a small VAE trained on the corpus; the run trains it once and shares
it (``BenchContext.shared_vae``). The real configuration (``config: i2vgenxl``) loads I2VGen-XL and
HuBERT from local folders instead.
"""

from __future__ import annotations

import json
import logging

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.methods.base import BenchContext, Method, check_shared_vae_size, made_videos
from bench.methods.imac_folder import RUN_KEYS, check_trained_with, overridden_run_key
from bench.side_by_side import Training
from imac.config import (SAMPLING_KEYS, SAMPLING_KEYS_ADDED, IMACConfig, flat_config, kept_steps, load_config,
                         with_sampling_of, with_sampling_overrides)
from imac.frames import frames_to_tensor
from imac.pipeline import MODEL_CARD, IMACPipeline
from imac.training.trainer import train
from metrics.dataset import ClipRecord
from metrics.io.bounded import read_json
from metrics.options import OptionsError, build_options, ranged

logger = logging.getLogger(__name__)

# name -> (label, config overrides, trains stage 1)
IMAC_VARIANTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "imac": ("IMAC", (), True),
    "imac-no-ref": ("IMAC w/o reference encoder", ("video.reference_encoder=false",), True),
    "imac-no-motion": ("IMAC w/o motion", ("motion.enabled=false", "stage2.init_from=null"), False),
    "imac-no-stage1": ("IMAC w/o first stage", ("stage2.init_from=null",), False),
    "imac-no-slowfast": ("IMAC w/o slow-fast", ("stage1.motion_frames=16", "stage2.motion_frames=16"), True),
}


@dataclass
class IMACOptions:
    """The ``imac`` section of a bench config (shared by the ablations)."""

    config: str = "tiny"                  # an imac config name or YAML path
    overrides: list[str] = field(default_factory=list)   # ``key.sub=value`` applied after the config's
    model: str | None = None              # a trained stage-2 model folder: skip training
    sample_steps: int | None = ranged(None, ge=1, le=1000)  # video DDIM steps at sampling (None: the config's)
    guidance_scale: float | None = ranged(None, ge=0)   # None: the config's

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "imac") -> IMACOptions:
        """Options from a config section (``metrics.options``): an unknown key, a value of the wrong
        type or out of range is an error naming ``where`` and the key; so is an override of a key the run sets
        itself (``RUN_KEYS``)."""
        options = build_options(cls, values, where)
        for override in options.overrides:
            key = overridden_run_key(override)
            if key is not None:
                raise OptionsError(f"{where}: overrides: {override!r}: the run sets {key} ({RUN_KEYS[key]})")
        return options


class IMACMethod(Method):
    kind = "model"
    # IMAC's trainer is an accelerate program: under a launch every process enters it together
    # (data-parallel, one process's losses: imac.training.windows.GlobalBatches); it writes from the
    # main process only.
    prepares_together = True

    def __init__(self, name: str = "imac") -> None:
        if name not in IMAC_VARIANTS:
            raise ValueError(f"unknown IMAC variant {name!r} (known: {', '.join(IMAC_VARIANTS)})")
        self.name = name
        self.label, self.switches, self.trains_stage1 = IMAC_VARIANTS[name]
        self.pipeline = None
        self.options: IMACOptions | None = None

    def config(self, context: BenchContext, options: IMACOptions) -> IMACConfig:
        """The imac config of this variant inside the run: data, output and VAE point into the run."""
        work = Path(context.work_dir)
        overrides = [f"data.root={context.data_root}", f"train.output={work}", f"train.seed={context.seed}",
                     f"train.device={context.device}", f"stage2.init_from={work / 'stage1' / 'model'}"]
        if context.identities:
            overrides.append(f"data.identities={json.dumps(list(context.identities))}")   # quoted: "001", "yes"
        if self.uses_shared_vae(context, options):
            overrides.append(f"video.vae={context.shared_vae()}")
        return load_config(options.config, overrides + list(options.overrides) + list(self.switches))

    def uses_shared_vae(self, context: BenchContext, options: IMACOptions) -> bool:
        """Whether the config takes the run's tiny VAE: the run gives one and the config, with the run's
        overrides and this variant's switches, loads no pretrained I2VGen-XL."""
        if context.shared_vae is None:
            return False
        return not load_config(options.config, list(options.overrides) + list(self.switches)).video.pretrained

    def needs_shared_vae(self, context: BenchContext) -> bool:
        options = IMACOptions.from_dict(context.options, self.name)
        return not options.model and self.uses_shared_vae(context, options)

    def side_trainings(self, context: BenchContext) -> list[Training]:
        """Stage 1 (it trains the motion branch alone: the VAE is not read) unless a ``model:`` is given, the
        variant has none, or it is trained."""
        options = IMACOptions.from_dict(context.options, self.name)
        if options.model or not self.trains_stage1:
            return []
        config = self.config(context, options)
        folder = Path(config.train.output) / "stage1"
        if (folder / "model" / "imac.json").is_file():
            return []
        return [Training(str(folder), f"{self.name}: stage 1 ({config.stage1.steps} steps)", train,
                         {"config": config, "stage": "stage1", "progress": False})]

    def check_folder(self, context: BenchContext) -> None:
        """Refuse, before any training, a run folder whose IMAC was trained otherwise (``check_trained_with``) or whose
        videos were made with a shared VAE trained otherwise (``context.check_shared_vae``), frames of another size
        than that VAE's (``check_shared_vae_size``), a sampling keeping no step (``kept_steps``); not a ``model:``."""
        options = IMACOptions.from_dict(context.options, self.name)
        if options.model:       # nothing trains: a sampling that keeps no step is refused at the first clip
            return
        # without the run's VAE folder: asking for it would train it here, in every process of a launch (where
        # it is does not count: video.vae is one of the LOCATION_KEYS); also what it samples with (``sampled_with``)
        config = self.config(replace(context, shared_vae=None), options)
        if self.uses_shared_vae(context, options):
            check_shared_vae_size(context, config.data.resolution, self.name, "data.resolution")
        steps = options.sample_steps or config.video.sample_steps
        try:       # refused here, before any training, rather than at the first clip
            kept_steps(steps, config.video.sample_strength)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error} (sample_steps {steps})") from None
        for stage in ("stage1", "stage2") if self.trains_stage1 else ("stage2",):
            check_trained_with(Path(config.train.output) / stage, config)
        if (context.check_shared_vae is not None and self.uses_shared_vae(context, options)
                and made_videos(context) is not None):
            context.check_shared_vae()

    def sampling_overrides(self, options: IMACOptions) -> list[str]:
        """The run's overrides and this variant's switches that apply to a trained model (``SAMPLING_KEYS``)."""
        return [o for o in [*options.overrides, *self.switches] if o.partition("=")[0].strip() in SAMPLING_KEYS]

    def made_with(self, context: BenchContext) -> dict[str, Any]:
        """The options (defaults filled in) and the sampling settings (``SAMPLING_KEYS``) the pipeline
        samples with (``sampling_config``). ValueError naming a given model's card when it cannot be read."""
        options = IMACOptions.from_dict(context.options, self.name)
        flat = flat_config(self.sampled_with(context, options).to_dict())
        return {"options": options, "sampling": {key: flat.get(key) for key in SAMPLING_KEYS}}

    def recorded_made_with(self, recorded: dict[str, Any]) -> dict[str, Any]:
        """``recorded`` with the sampling keys added since (``SAMPLING_KEYS_ADDED``) that it lacks filled
        in with the value its videos were made with."""
        sampling = recorded.get("sampling")
        if not isinstance(sampling, dict):
            return recorded
        return {**recorded, "sampling": {**{k: v for k, v in SAMPLING_KEYS_ADDED.items() if k not in sampling},
                                         **sampling}}

    def sampled_with(self, context: BenchContext, options: IMACOptions) -> IMACConfig:
        """The configuration whose ``SAMPLING_KEYS`` the pipeline samples with (``sampling_config``), read
        without loading or training anything. ValueError naming a given model's card when it cannot be read."""
        if options.model:
            card = Path(options.model) / MODEL_CARD
            try:
                config = IMACConfig.from_dict(read_json(card)["config"], str(card))
            except (OSError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{card}: cannot read the model's sampling settings ({error})") from None
            return self.sampling_config(config, context, options)
        # what sampling_config gives a model trained in the run: this configuration's settings
        return self.config(replace(context, shared_vae=None), options)

    def sampling_config(self, config: IMACConfig, context: BenchContext, options: IMACOptions) -> IMACConfig:
        """``config`` (the trained model's) with the settings it samples with in this run: a model trained in
        the run samples as this version's configuration says (``self.config``: the named config, the run's
        overrides and the variant's switches), so that a reused run folder samples as a fresh one would; a
        given ``model:`` samples with its own card's settings and the run's sampling overrides."""
        if options.model:
            return with_sampling_overrides(config, self.sampling_overrides(options), f"{self.name}: overrides")
        return with_sampling_of(config, self.config(replace(context, shared_vae=None), options))

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        options = IMACOptions.from_dict(context.options, self.name)
        self.options = options
        facts: dict[str, Any] = {"config": options.config, "switches": list(self.switches)}
        if options.model:
            model_dir = Path(options.model)
            facts["model"] = str(model_dir)
        else:
            config = self.config(context, options)
            stages = ("stage1", "stage2") if self.trains_stage1 else ("stage2",)
            for stage in stages:
                folder = Path(config.train.output) / stage
                beside = context.trained_beside.get(str(folder))
                if beside is not None:         # trained by the runner first, on one thread (``side_trainings``)
                    result, how = beside.result, {"trained": "side by side (one thread)"}
                elif (folder / "model" / "imac.json").is_file():
                    facts[stage] = {"model": str(folder / "model"), "trained": "earlier"}
                    continue
                else:
                    logger.info(f"{self.name}: training {stage} ({getattr(config, stage).steps} steps)")
                    result, how = train(config, stage, progress=context.progress), {}
                facts[stage] = {"model": str(result.model_dir), "steps": result.steps,
                                "seconds": round(result.seconds, 1), "losses": result.last_losses, **how}
            model_dir = Path(config.train.output) / "stage2" / "model"
        self.pipeline = IMACPipeline.from_pretrained(model_dir, device=context.device,
                                                     feature_cache=Path(context.work_dir) / "features")
        self.pipeline.config = self.sampling_config(self.pipeline.config, context, options)
        sampling = self.sampling_overrides(options)
        if sampling:
            facts["sampling"] = sampling
        facts["parameters"] = sum(p.numel() for p in self.pipeline.model.parameters())
        # Chunked sampling (imac.pipeline.chunk_starts): each chunk after the first starts on the previous
        # one's last frame, so a new chunk takes over every frames - 1 frames, at the transition from
        # frame (frames - 1) k to the next (the last chunk may start earlier). Read by the chunk joins.
        chunk = self.pipeline.config.video.frames
        facts["chunk_period"] = facts["chunk_offset"] = chunk - 1
        return facts

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        size = self.pipeline.config.data.resolution
        reference = frames_to_tensor(clip.first_frame()[None], size)[0].to(self.pipeline.device)
        rate = self.pipeline.config.audio.sample_rate
        generator = torch.Generator(self.pipeline.device).manual_seed(seed)
        sample = self.pipeline(reference, clip.load_audio(rate), rate, generator=generator,
                               guidance_scale=self.options.guidance_scale, steps=self.options.sample_steps)
        return sample.frames

