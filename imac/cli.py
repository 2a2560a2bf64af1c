"""The imac command line of the reference model.

    imac validate DATASET [--level files|full]      # check a dataset before training on it
    imac train vae --config tiny                     # tiny config only: its small VAE on the corpus
    imac train stage1|stage2 --config CONFIG [key.sub=value ...]
    imac sample --model DIR --reference IMG --audio WAV --out OUT.mp4

CONFIG is a packaged config (tiny, i2vgenxl) or a YAML path; key.sub=value overrides (YAML values)
may stand anywhere after the stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from imac import __version__
from imac.config import IMACConfig, MotionConfig, VideoConfig, least_strength, load_config
from imac.frames import describe_preparation, read_image, reference_tensor
from metrics.cli import (SEED_RANGE, CommandParser, add_command, help_texts, int_in, option_type, package_version,
                         run_command)
from metrics.dataset import read_manifest, validate_dataset
from metrics.device import resolve_device
from metrics.distributed import current_processes, launch_place
from metrics.io.audio import READABLE, audio_info, load_audio
from metrics.io.files import check_file_target, save_npz_atomic
from metrics.io.video import write_video

# imac.pipeline, imac.training.trainer and imac.training.autoencoder are imported in the handlers that
# use them: they load diffusers and transformers. Measured (wall, best of 4, `python -c "import ..."` on
# the 2-core dev machine under load): imac.cli 5.5 s; with imac.pipeline 12.1 s, with
# imac.training.trainer 11.5 s, with imac.training.autoencoder 9.9 s (`python -X importtime` puts the
# difference in diffusers and transformers). torch itself already comes with the metrics package.


def validate_command(dataset: Path, level: str = "full") -> int:
    """Print every problem of a dataset (exit 1) or a one-line summary (exit 0)."""
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
    parser.add_argument("dataset", type=Path, help="dataset folder (manifest.jsonl)")
    parser.add_argument("--level", choices=("files", "full"), default="full",
                        help="files: referenced files exist; full: also frame counts, fps, values")


def _validate(args: argparse.Namespace) -> int:
    return validate_command(args.dataset, args.level)


def _train(args: argparse.Namespace) -> int:
    # what an interruption before the end keeps: the stages resume from a checkpoint, the VAE is not saved
    args.resumable = ("the tiny VAE is written only when it finishes: the rerun trains it from the start"
                      if args.stage == "vae" else "rerun the same command to resume from the last checkpoint "
                      "(every train.save_every steps; the steps since it are trained again)")
    config = load_config(args.config, args.overrides)
    if args.stage == "vae":
        return _train_vae(config, args)
    from imac.training.trainer import train  # diffusers: see the note at the top

    place = launch_place()
    main_process = place is None or place[0] == 0        # under accelerate launch the main process says it, once
    if main_process and args.stage == "stage2":
        init = config.stage2.init_from
        print(f"stage2: from the stage-1 model {init} (stage2.init_from)" if init else
              "stage2: without a stage-1 model (stage2.init_from=null: the w/o-first-stage ablation)")
    result = train(config, args.stage, progress=not args.quiet, max_steps=args.max_steps)
    if main_process:
        print(f"{args.stage}: {training_summary(result)}; model: {result.model_dir}; log: {result.log}")
    return 0


def training_summary(result) -> str:
    """What a training run did: its steps (and where a resumed run started) and its last logged losses."""
    ran = result.steps - result.first_step
    if ran == 0:
        return f"already trained to step {result.steps}, nothing to do"
    said = (f"{ran} step{'s' * (ran != 1)}" if result.first_step == 0 else
            (f"step {result.steps}" if ran == 1 else f"steps {result.first_step + 1}-{result.steps}")
            + f" (resumed at step {result.first_step})")
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    window = f"{result.last_window} step{'s' * (result.last_window != 1)}"
    return f"{said} in {result.seconds:.0f} s (mean of the last {window}: {losses})"


def _train_vae(config: IMACConfig, args: argparse.Namespace) -> int:
    from imac.training.autoencoder import tiny_vae_training, train_autoencoder  # diffusers: see the top

    if config.video.pretrained or not config.video.vae:
        raise ValueError("this config uses a pretrained VAE (video.pretrained); nothing to train")
    try:
        latent = config.video.unet.get("sample_size")       # the tiny UNet's latent grid (16)
        settings = tiny_vae_training(config.data.resolution, *([int(latent)] if latent else []))
    except ValueError as error:
        raise ValueError(f"data.resolution: {error}") from None
    if args.max_steps:
        settings["steps"] = args.max_steps
    steps = settings["steps"]
    keys = {override.partition("=")[0].strip() for override in args.overrides}
    if "train.output" in keys and "video.vae" not in keys:      # the VAE is a path of its own
        print(f"note: the VAE is written to video.vae ({config.video.vae}), not under train.output "
              f"({config.train.output}); stage 2 reads it from video.vae: give video.vae=DIR to put it elsewhere",
              file=sys.stderr)
    # under `accelerate launch`, every process trains its block of each global batch and the main one writes
    # (before, each trained a VAE of its own and the second to finish found the folder taken)
    processes = current_processes()
    summary = train_autoencoder(config.data.root, config.video.vae, seed=config.train.seed,
                                progress=not args.quiet, overwrite=args.overwrite,
                                device=resolve_device(config.train.device), processes=processes, **settings)
    if processes.is_main:
        print(f"vae: {steps} steps in {summary['seconds']:.0f} s, final loss {summary['final_loss']:.4f}, "
              f"scaling factor {summary['scaling_factor']:.3f}"
              + (f", {processes.world} processes" if processes.distributed else "")
              + f"; written to {config.video.vae}")
    return 0


# AAC's sampling rates: speech at one of them is muxed at its own rate, any other at the model's
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
SWITCHES = (("video", "chunk_reference", "chunk_reference"), ("video", "handover", "handover"),
            ("video", "sample_spacing", "sample_spacing"), ("video", "sample_strength", "strength"),
            ("video", "strength_from", "strength_from"), ("video", "noise_correlation", "noise_correlation"),
            ("motion", "window_overlap", "window_overlap"), ("motion", "smooth_sigma", "smooth_sigma"))


def _check_sample_options(args: argparse.Namespace) -> str:
    """The options that need no model (their numbers are argparse's, within the ranges of the config
    fields they override): one line naming the option. Returns the device to use."""
    device = resolve_device(args.device)        # a GPU torch does not see is named here, not by the first layer
    for option, path in (("--reference", args.reference), ("--audio", args.audio)):
        if not path.is_file():
            raise FileNotFoundError(f"{option} {path}: " + ("a folder, not a file" if path.is_dir() else "no such file"))
    if args.out.is_dir():
        raise IsADirectoryError(f"--out {args.out}: a folder; give the .mp4 file to write")
    _blamed("--out", check_file_target, args.out, "video", suffixes=(".mp4",))
    _blamed("--out", check_file_target, Path(args.out).with_suffix(".motion.npz"), "motion")
    return device


def _sample_config(args: argparse.Namespace) -> tuple[IMACConfig, int, int]:
    """(config, video steps, steps each chunk runs): the model folder's config (read from its card, no
    weights loaded) with the sampling switches given on the command line, checked against it."""
    from imac.models.video import VIDEO_TRAIN_TIMESTEPS
    from imac.pipeline import check_video_steps, read_model_card

    config, card = _blamed("--model", read_model_card, args.model)
    if card["stage"] != "stage2":
        raise ValueError(f"--model {args.model}: a stage-1 (motion only) model folder; sampling videos needs "
                         "the stage-2 model (<output>/stage2/model)")
    if args.window_overlap is not None and args.window_overlap >= config.stage1.motion_frames:
        raise ValueError(f"--window-overlap {args.window_overlap}: must be shorter than the model's motion window "
                         f"(stage1.motion_frames {config.stage1.motion_frames})")
    for section, name, option in SWITCHES:
        value = getattr(args, option)
        if value is not None:       # a sampling switch: the trained weights serve any of its values
            setattr(getattr(config, section), name, value)
    steps = args.steps or config.video.sample_steps
    try:
        kept = check_video_steps(config, steps)
    except ValueError:
        strength = config.video.sample_strength
        given = [f"--strength {args.strength}" if args.strength is not None
                 else f"the model's video.sample_strength {strength:g}",
                 f"--steps {steps}" if args.steps else f"the model's video.sample_steps {steps}"]
        fewest = next((n for n in range(steps + 1, VIDEO_TRAIN_TIMESTEPS + 1) if int(n * strength) >= 1), None)
        least = least_strength(steps)
        raise ValueError(f"{given[0]} with {given[1]} keeps no step (int(steps x strength) = 0): give "
                         f"--strength {least:g}" + (" or more" if least < 1 else "")
                         + (f", or --steps {fewest} or more" if fewest is not None else "")) from None
    return config, steps, kept


def motion_words(motion) -> str:
    """How the motion is sampled, for the line ``imac sample`` prints: steps, window overlap, smoothing;
    or that the model has no motion branch (``motion.enabled`` false: the "w/o motion" ablation)."""
    if not motion.enabled:
        return "no motion branch (motion.enabled false: the speech reaches the video through the encoders only)"
    smoothing = f"sigma {motion.smooth_sigma:g} frames" if motion.smooth_sigma > 0 else "no"
    return (f"motion: {motion.sample_steps} steps, windows overlap {motion.window_overlap} frames, smoothed over "
            f"time: {smoothing}")


def _blamed(option: str, call, *args, **kwargs):
    """``call(*args, **kwargs)``; its OSError or ValueError (which names the file) said with ``option`` first."""
    try:
        return call(*args, **kwargs)
    except (OSError, ValueError) as error:
        message = str(error)
        if message.startswith(option):
            raise
        try:
            blamed = type(error)(f"{option} {message}")
        except TypeError:           # an error class with other arguments
            blamed = ValueError(f"{option} {message}")
        raise blamed from None


def _sample(args: argparse.Namespace) -> int:
    from imac.audio_features import frame_count
    from imac.pipeline import IMACPipeline

    # every argument and input file is checked before the model loads (seconds to minutes)
    device = _check_sample_options(args)
    config, steps, kept = _sample_config(args)
    size, rate = config.data.resolution, config.audio.sample_rate
    image = _blamed("--reference", read_image, args.reference)
    reference = _blamed("--reference", reference_tensor, image, size)
    info = _blamed("--audio", audio_info, args.audio)
    audio = _blamed("--audio", load_audio, args.audio, rate)
    try:
        frames = frame_count(len(audio), rate, config.fps)       # as the pipeline counts them
    except ValueError:
        raise ValueError(f"--audio {args.audio}: {len(audio) / rate:.3f} s of audio, shorter than one "
                         f"video frame (1/{config.fps:g} s)") from None
    mux_rate = info.samplerate if info.samplerate in AAC_RATES else rate
    muxed = audio if mux_rate == rate else _blamed("--audio", load_audio, args.audio, mux_rate)
    strength = config.video.sample_strength
    start = "pure noise" if strength == 1 else (f"the {config.video.strength_from.replace('_', ' ')} noised to "
                                                f"strength {strength:g} ({kept} of the {steps} steps)")
    guidance = config.video.guidance_scale if args.guidance_scale is None else args.guidance_scale
    correlation = config.video.noise_correlation
    noise = f" (noise correlated {correlation:g} between frames)" if correlation > 0 else ""
    channels = "mono" if info.channels == 1 else f"{info.channels} channels averaged to mono"
    resampled = "" if info.samplerate == rate else f", resampled to {rate} Hz for the model"
    # what is done to the inputs, said even with --quiet (which hides the progress bars only)
    print(f"reference {args.reference}: {''.join(f'{note}; ' for note in image.notes)}"
          f"{describe_preparation(image.width, image.height, size)} (the model's data.resolution)\n"
          f"audio {args.audio}: {len(audio) / rate:.2f} s at {info.samplerate} Hz, {channels}{resampled} "
          f"-> {frames} frames at {config.fps:g} fps; muxed into the video as mono AAC at {mux_rate} Hz\nsampling: {steps} video steps ({config.video.sample_spacing} spacing) from "
          f"{start}{noise}, guidance {guidance:g}, seed {args.seed}; chunks: reference "
          f"{config.video.chunk_reference}, hand-over {config.video.handover}; " + motion_words(config.motion)
          + f"; device {device}" + (" (a GPU is there: --device cuda)" if device == "cpu" and torch.cuda.is_available()
                                    else ""), flush=True)
    pipeline = _blamed("--model", IMACPipeline.from_pretrained, args.model, device=device)
    pipeline.config = config
    generator = torch.Generator(device=pipeline.device).manual_seed(args.seed)
    # the frames go to the encoder chunk by chunk as they are made: memory does not grow with the video
    sample = pipeline.stream(reference.to(pipeline.device), audio, rate, generator=generator,
                             progress=not args.quiet, guidance_scale=guidance, steps=steps)
    try:          # a failed write leaves no video file, finished or not (metrics.io.files.atomic_path)
        write_video(args.out, sample.frames, sample.fps, audio=muxed, sample_rate=mux_rate)
    except BaseException:
        sample.chunks.close()          # the chunks' progress bar ends before the error is said
        raise
    if sample.pose is not None:
        motion_path = Path(args.out).with_suffix(".motion.npz")
        save_npz_atomic(motion_path, pose=sample.pose.astype(np.float32),
                        expression=sample.expression.astype(np.float32))
    print(f"{args.out}: {sample.num_frames} frames at {sample.fps:g} fps ({sample.num_frames / sample.fps:.2f} s)")
    return 0


def build_parser() -> CommandParser:
    parser = CommandParser(prog="imac", **help_texts(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version(__version__)}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = add_command(commands, "validate", "check a dataset folder against the format",
                           handler=_validate, wraps="metrics.dataset.validate_dataset")
    add_validate_arguments(validate)

    train = add_command(commands, "train", "train the tiny VAE, stage 1 (motion) or stage 2 (all)",
                        handler=_train, intermixed=True,
                        wraps="imac.training.trainer.train; vae: imac.training.autoencoder.train_autoencoder")
    train.add_argument("stage", choices=("vae", "stage1", "stage2"),
                       help="what to train: stage1/stage2 into train.output/<stage>; vae into video.vae (its own path)")
    train.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value",
                       help="config overrides (YAML values), e.g. stage2.lr=1e-4 data.root=DIR")
    train.add_argument("--config", required=True, help="packaged config name (tiny, i2vgenxl) or YAML path")
    train.add_argument("--max-steps", type=int_in(1), default=None,
                       help="stop after this many steps (default: stage1.steps or stage2.steps of the config; vae: "
                       "the tiny VAE's own count, imac.training.autoencoder.TINY_VAE_STEPS)")
    train.add_argument("--overwrite", action="store_true", help="vae: replace an existing VAE folder")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    sample = add_command(commands, "sample", "generate a video from a reference image and speech",
                         handler=_sample, wraps="imac.pipeline.IMACPipeline")
    sample.add_argument("--model", required=True, type=Path, help="a stage-2 model folder")
    sample.add_argument("--reference", required=True, type=Path, help="reference image (png/jpg)")
    sample.add_argument("--audio", required=True, type=Path,
                        help=f"speech ({READABLE}; mixed to mono and resampled as needed)")
    sample.add_argument("--out", required=True, type=Path, help="output mp4 (motion saved beside it)")
    sample.add_argument("--seed", type=int_in(*SEED_RANGE), default=0, help="random seed of the sampling")
    sample.add_argument("--steps", type=option_type(VideoConfig, "sample_steps"), default=None,
                        help="video denoising steps (default: the model's video.sample_steps; tiny 10, i2vgenxl 50)")
    sample.add_argument("--guidance-scale", type=option_type(VideoConfig, "guidance_scale"), default=None,
                        help="video classifier-free guidance; 1 turns it off and halves the time, 0 samples "
                             "unconditionally, also at half the time (default: the model's video.guidance_scale; "
                             "tiny 1.0, i2vgenxl 3.5; larger values push the samples out of range and end in NaN frames)")
    sample.add_argument("--chunk-reference", choices=("last_frame", "anchored"), default=None,
                        help="what a later chunk takes from the original reference: last_frame (the paper: "
                             "nothing) or anchored (reference encoder and CLIP) (default: the model's "
                             "video.chunk_reference)")
    sample.add_argument("--handover", choices=("decoded", "latent"), default=None,
                        help="the last frame handed to the next chunk decoded and re-encoded (the paper) or as "
                             "its latent (default: the model's video.handover)")
    sample.add_argument("--sample-spacing", choices=("leading", "trailing", "linspace"), default=None,
                        help="DDIM timestep spacing of the video: leading (the I2VGen-XL release), trailing "
                             "(starts from pure noise at t = 999) or linspace (evenly from 999 to 0) (default: the "
                             "model's video.sample_spacing; "
                             "tiny trailing, i2vgenxl leading)")
    sample.add_argument("--strength", type=option_type(VideoConfig, "sample_strength"), default=None,
                        help="start each chunk from a frame noised this far, in (0, 1], and run that part of the "
                             "steps (SDEdit; 1: from pure noise, the paper) (default: the model's "
                             "video.sample_strength; tiny 0.5, i2vgenxl 1)")
    sample.add_argument("--strength-from", choices=("reference", "first_frame"), default=None,
                        help="the frame a chunk starts from when --strength < 1: the reference image (the "
                             "reference encoder's) or the chunk's first frame (default: the model's "
                             "video.strength_from)")
    sample.add_argument("--noise-correlation", type=option_type(VideoConfig, "noise_correlation"), default=None,
                        help="correlation of a chunk's starting noise between its frames, 0 to 1 (0: each "
                             "frame its own, the paper; 1: one noise map for all) (default: the model's "
                             "video.noise_correlation; 0 in tiny and i2vgenxl)")
    sample.add_argument("--window-overlap", type=option_type(MotionConfig, "window_overlap"), default=None,
                        help="frames each motion window continues from the previous one (0: independent "
                             "windows; fewer than the model's stage1.motion_frames) (default: the model's "
                             "motion.window_overlap)")
    sample.add_argument("--smooth-sigma", type=option_type(MotionConfig, "smooth_sigma"), default=None,
                        help="smooth the sampled motion over time with a Gaussian of this sigma, in frames, before "
                             "the video sees it (0: as sampled, the paper) (default: the model's "
                             "motion.smooth_sigma; tiny 5, i2vgenxl 0)")
    sample.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (a GPU if torch sees one); the "
                        "line printed before sampling names it (default: cpu)")
    sample.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
