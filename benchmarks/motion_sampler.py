"""Is the motion a trained IMAC samples like the real motion? Its motion sampler's settings side by side.

    .venv/bin/python benchmarks/motion_sampler.py --model RUN/work/imac/stage2/model --data RUN/data \
        [--features RUN/work/imac/features] [--split test] [--variants trailing,trailing+clip4,leading]
        [--steps 25] [--seed 0]

For each clip of ``--split`` the motion branch samples pose and expression from the clip's speech
(``IMACPipeline.sample_motion``: 80-frame windows, the model's ``motion.window_overlap``) with each
variant of the DDIM sampler (``motion.sample_spacing`` and ``motion.sample_clip``: "trailing+clip4" is
trailing spacing with the clean-motion estimate clipped to +-4), and compares the frames of normalised
pose (the units the model works in: each dimension standardised with the training set's statistics)
with the clips' real pose:

- ``std``: the standard deviation over all frames and dimensions (the real pose's is the scale);
- ``max |x|``: the largest value (real normalised pose stays within a few units);
- ``speed``: the mean absolute change per frame, divided by the real pose's;
- ``FD``: the Fréchet distance between the per-frame pose vectors of the samples and of the real clips
  (``metrics.frechet_distance``; the row "real (train split)" is the floor: the train clips' real pose
  against the same real clips).

A sampler whose first step amplifies the predicted noise's error (``imac.models.video.first_step_gain``)
gives a ``std`` and ``FD`` orders of magnitude above the real ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imac_switches import join_profile  # noqa: E402
from motion_use import model_arguments, open_model  # noqa: E402

from imac.models.video import first_step_gain, motion_sampling_scheduler  # noqa: E402
from imac.training.trainer import load_clip_arrays  # noqa: E402
from metrics.cli import int_in  # noqa: E402
from metrics.frechet import frechet_distance  # noqa: E402

SPACINGS = ("trailing", "leading", "linspace")


SUFFIXES = {"clip": ("sample_clip", float), "smooth": ("smooth_sigma", float), "overlap": ("window_overlap", int)}


def parse_variant(text: str) -> dict[str, object]:
    """"trailing" -> {"sample_spacing": "trailing"}; "leading+clip4+smooth5+overlap16" also sets
    ``sample_clip`` 4, ``smooth_sigma`` 5 and ``window_overlap`` 16 (``MotionConfig`` fields; each
    number finite and > 0; a field not given keeps 0: no clipping, no smoothing, independent windows)."""
    spacing, *suffixes = text.split("+")
    usage = f"SPACING[+clipX][+smoothS][+overlapK], SPACING one of {', '.join(SPACINGS)}"
    if spacing not in SPACINGS:
        raise argparse.ArgumentTypeError(f"variant {text!r}: {usage}")
    settings: dict[str, object] = {"sample_spacing": spacing, "sample_clip": 0.0, "smooth_sigma": 0.0,
                                   "window_overlap": 0}
    for suffix in suffixes:
        name = next((n for n in SUFFIXES if suffix.startswith(n)), None)
        if name is None:
            raise argparse.ArgumentTypeError(f"variant {text!r}: {usage}")
        field, kind = SUFFIXES[name]
        try:
            value = kind(suffix[len(name):])
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"variant {text!r}: {name} needs one finite number > 0 ({usage})")
        settings[field] = value
    return settings


def pose_statistics(sampled: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """(N, P) sampled and (M, P) real normalised pose frames -> std, max |x|, FD (see the module doc)."""
    def gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = x.astype(np.float64)
        return x.mean(0), np.cov(x, rowvar=False)
    return {"std": float(sampled.std()), "max": float(np.abs(sampled).max()),
            "fd": frechet_distance(*gaussian(sampled), *gaussian(real))}


def mean_speed(clips: list[np.ndarray]) -> float:
    """Mean |x[f+1] - x[f]| over the frames and dimensions of every clip."""
    return float(np.mean(np.concatenate([np.abs(np.diff(c, axis=0)).ravel() for c in clips])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model_arguments(parser, "an IMAC model folder (stage 1 or 2)", "test")
    parser.add_argument("--variants", type=lambda s: [parse_variant(v) for v in s.split(",")],
                        default=[parse_variant(v) for v in ("trailing", "trailing+clip4", "leading", "linspace")],
                        help="comma-separated SPACING[+clipX][+smoothS][+overlapK] (clip the clean-motion "
                             "estimate to +-X, smooth over time with sigma S frames, windows overlapping K "
                             "frames) (default: trailing,trailing+clip4,leading,linspace)")
    parser.add_argument("--steps", type=int_in(1, 1000), default=None,
                        help="DDIM steps (default: the model's motion.sample_steps)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pipeline, dataset = open_model(parser, args)
    config = pipeline.config
    if args.steps:
        config.motion.sample_steps = args.steps
    clips = load_clip_arrays(config, dataset, pipeline.features, with_frames=False, progress=False, split=args.split)
    train = load_clip_arrays(config, dataset, pipeline.features, with_frames=False, progress=False, split="train")
    motion = pipeline.model.motion

    def normalised(clip) -> np.ndarray:
        pose = torch.from_numpy(np.ascontiguousarray(clip.pose)).to(pipeline.device)
        expression = torch.from_numpy(np.ascontiguousarray(clip.expression)).to(pipeline.device)
        return motion.normalize(pose, expression)[0].cpu().numpy()

    real = [normalised(c) for c in clips]
    real_frames = np.concatenate(real)
    real_speed = mean_speed(real)
    print(f"{args.model}: motion sampled for the speech of {len(clips)} {args.split} clips "
          f"({len(real_frames)} frames), {config.motion.sample_steps} DDIM steps, seed {args.seed}")
    print()
    print("| sampler | first-step gain | std | max abs | speed / real | FD to real | speed at joins / inside | s |")
    print("|---|---|---|---|---|---|---|---|")
    floor = pose_statistics(np.concatenate([normalised(c) for c in train]), real_frames)
    print(f"| real (train split) | - | {floor['std']:.3g} | {floor['max']:.3g} | "
          f"{mean_speed([normalised(c) for c in train]) / real_speed:.3g} | {floor['fd']:.4g} | - | - |")
    print(f"| real ({args.split} split) | - | {real_frames.std():.3g} | {np.abs(real_frames).max():.3g} | 1 | 0 | - "
          "| - |")
    window = config.stage1.motion_frames
    for settings in args.variants:
        config.motion = dataclasses.replace(config.motion, **settings)
        gain = first_step_gain(motion_sampling_scheduler(config.motion), config.motion.sample_steps)
        generator = torch.Generator(pipeline.device).manual_seed(args.seed)
        start = time.perf_counter()
        sampled = [pipeline.sample_motion(c.mfcc, c.hubert, generator)[0][0].cpu().numpy() for c in clips]
        seconds = time.perf_counter() - start
        stats = pose_statistics(np.concatenate(sampled), real_frames)
        joins = np.nanmean([join_profile(s, window, config.motion.window_overlap)[0][0] for s in sampled])
        name = "+".join([str(settings["sample_spacing"])] + [f"{n}{settings[f]:g}" for n, (f, _) in SUFFIXES.items()
                                                            if settings[f]])
        print(f"| {name} | {gain:.3g} | {stats['std']:.3g} | {stats['max']:.3g} | "
              f"{mean_speed(sampled) / real_speed:.3g} | {stats['fd']:.4g} | {joins:.3g} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
