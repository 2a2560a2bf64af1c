"""The ``imac`` command line of the reference model.

    imac validate DATASET [--level files|full]      # check a dataset before training on it
    imac train vae --config tiny                     # tiny config only: its small VAE on the corpus
    imac train stage1|stage2 --config CONFIG [key.sub=value ...]
    imac sample --model DIR --reference IMG --audio WAV --out OUT.mp4

CONFIG is a packaged config (tiny, i2vgenxl) or a YAML path; overrides follow it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imac import __version__


def validate_command(dataset: Path, level: str = "full") -> int:
    """Print every problem of a dataset (exit 1) or a one-line summary (exit 0)."""
    from metrics.dataset import read_manifest, validate_dataset

    problems = validate_dataset(dataset, level=level)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{dataset}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    clips = read_manifest(dataset)
    identities = sorted({c.identity for c in clips})
    splits = {s: sum(c.split == s for c in clips) for s in ("train", "test")}
    print(f"{dataset}: ok, {len(clips)} clips ({splits['train']} train, {splits['test']} test), "
          f"{len(identities)} identities ({', '.join(identities)})")
    return 0


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--level", choices=("files", "full"), default="full",
                        help="files: referenced files exist; full: also frame counts, fps, values")


def train_command(args: argparse.Namespace) -> int:
    from imac.config import ConfigError, load_config

    try:
        config = load_config(args.config, args.overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f"imac train: {error}", file=sys.stderr)
        return 2
    if args.stage == "vae":
        return train_vae_command(config, args)
    from imac.training.trainer import train

    result = train(config, args.stage, progress=not args.quiet, max_steps=args.max_steps)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    print(f"{args.stage}: {result.steps} steps in {result.seconds:.0f} s ({losses}); "
          f"model: {result.model_dir}; log: {result.log}")
    return 0


def train_vae_command(config, args: argparse.Namespace) -> int:
    from imac.training.autoencoder import TINY_VAE_TRAINING, train_autoencoder

    if config.video.pretrained or not config.video.vae:
        print("imac train vae: this config uses a pretrained VAE (video.pretrained); nothing to train",
              file=sys.stderr)
        return 2
    settings = dict(TINY_VAE_TRAINING, resolution=config.data.resolution,
                    vae_kwargs=dict(TINY_VAE_TRAINING["vae_kwargs"], sample_size=config.data.resolution))
    if args.max_steps:
        settings["steps"] = args.max_steps
    steps = settings["steps"]
    summary = train_autoencoder(config.data.root, config.video.vae, seed=config.train.seed,
                                progress=not args.quiet, overwrite=args.overwrite, **settings)
    print(f"vae: {steps} steps in {summary['seconds']:.0f} s, final loss {summary['final_loss']:.4f}, "
          f"scaling factor {summary['scaling_factor']:.3f}; written to {config.video.vae}")
    return 0


def sample_command(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from imac.frames import load_image
    from imac.pipeline import IMACPipeline
    from metrics.io.audio import load_audio
    from metrics.io.files import save_npz_atomic
    from metrics.io.video import write_video

    try:
        pipeline = IMACPipeline.from_pretrained(args.model, device=args.device)
        size = pipeline.config.data.resolution
        reference = load_image(args.reference, size)
        audio = load_audio(args.audio, pipeline.config.audio.sample_rate)
        if audio.size == 0:
            raise ValueError(f"{args.audio}: the audio file is empty")
    except (FileNotFoundError, ValueError) as error:
        print(f"imac sample: {error}", file=sys.stderr)
        return 2
    generator = torch.Generator(device=pipeline.device).manual_seed(args.seed)
    try:
        sample = pipeline(reference.to(pipeline.device), audio, pipeline.config.audio.sample_rate,
                          generator=generator, progress=not args.quiet, guidance_scale=args.guidance_scale,
                          steps=args.steps)
    except ValueError as error:
        print(f"imac sample: {args.audio}: {error}", file=sys.stderr)
        return 2
    write_video(args.out, sample.frames, sample.fps, audio=sample.audio,
                sample_rate=pipeline.config.audio.sample_rate)
    if sample.pose is not None:
        motion_path = Path(args.out).with_suffix(".motion.npz")
        save_npz_atomic(motion_path, pose=sample.pose.astype(np.float32),
                        expression=sample.expression.astype(np.float32))
    print(f"{args.out}: {len(sample.frames)} frames at {sample.fps:g} fps ({len(sample.frames) / sample.fps:.2f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imac", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a dataset folder against the format")
    add_validate_arguments(validate)

    train = commands.add_parser("train", help="train the tiny VAE, stage 1 (motion) or stage 2 (all)")
    train.add_argument("stage", choices=("vae", "stage1", "stage2"))
    train.add_argument("--config", required=True, help="packaged config name (tiny, i2vgenxl) or YAML path")
    train.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (overrides the config)")
    train.add_argument("--overwrite", action="store_true", help="vae: replace an existing VAE folder")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    sample = commands.add_parser("sample", help="generate a video from a reference image and speech")
    sample.add_argument("--model", required=True, type=Path, help="a stage-2 model folder")
    sample.add_argument("--reference", required=True, type=Path, help="reference image (png/jpg)")
    sample.add_argument("--audio", required=True, type=Path, help="speech (wav/flac; resampled as needed)")
    sample.add_argument("--out", required=True, type=Path, help="output mp4 (motion saved beside it)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=None, help="video denoising steps (default: the config's)")
    sample.add_argument("--guidance-scale", type=float, default=None, help="video CFG scale (default: the config's)")
    sample.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    sample.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Config overrides (key.sub=value) may appear anywhere after ``imac train STAGE``.
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    rest = [item for item in extra if item not in overrides]
    if rest or (overrides and args.command != "train"):
        parser.error(f"unrecognized arguments: {' '.join(rest or overrides)}")
    args.overrides = overrides
    if args.command == "validate":
        return validate_command(args.dataset, args.level)
    if args.command == "train":
        return train_command(args)
    if args.command == "sample":
        return sample_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
