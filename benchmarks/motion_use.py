"""Does a trained IMAC's video branch use the motion? Its video loss with each window's own motion
against the same windows with another window's motion.

    .venv/bin/python benchmarks/motion_use.py --model RUN/work/imac/stage2/model --data RUN/data \
        [--features RUN/work/imac/features] [--windows 64] [--split train]

For each of N motion windows of the dataset (``stage2.motion_frames`` frames with a random
``video.frames`` video window inside, as stage 2 trains; drawn with ``--seed``) L_LDM (the mean squared
error of the predicted v) is computed three times with the same video frames, noise and timestep:

- ``own``: the window's pose, expression and speech (as in training);
- ``other``: the pose, expression and speech of the next window in the list (another clip or time);
- ``unconditional``: the classifier-free guidance branch (CLIP embedding and motion term dropped).

A video branch that draws the gestures it is given has ``own`` clearly below ``other``; ``other`` -
``own`` is printed with its 95% interval over windows (paired t, ``scipy.stats.ttest_rel``). The
``unconditional`` - ``own`` gap is the scale: what all the conditions together are worth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from imac.pipeline import IMACPipeline
from imac.training.trainer import load_clip_arrays
from imac.training.windows import TrainingWindows
from metrics.cli import _one_line, int_in
from metrics.dataset import Dataset


def window_losses(pipeline: IMACPipeline, windows: TrainingWindows, picks: list[int], seed: int
                  ) -> dict[str, np.ndarray]:
    """(N,) video losses per condition for windows ``picks``; window i's ``other`` motion is picks[i + 1]'s."""
    model = pipeline.model
    items = [windows[(index, seed + n)] for n, index in enumerate(picks)]
    motion_keys = ("pose", "expression", "mfcc", "hubert")
    losses: dict[str, list[float]] = {"own": [], "other": [], "unconditional": []}
    saved_dropout = model.condition_dropout
    try:
        with torch.no_grad():
            for n, item in enumerate(items):
                other = items[(n + 1) % len(items)]
                batches = {"own": item, "other": {**item, **{k: other[k] for k in motion_keys}},
                           "unconditional": item}
                for name, batch in batches.items():
                    model.condition_dropout = 1.0 if name == "unconditional" else 0.0
                    batch = {k: v[None].to(pipeline.device) for k, v in batch.items()}
                    # the per-sample seed fixes the noise, timestep and VAE draws: the same for all three
                    losses[name].append(float(model(batch, "stage2")["video_loss"]))
    finally:
        model.condition_dropout = saved_dropout
    return {name: np.array(values) for name, values in losses.items()}


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b and its 95% interval (paired t)."""
    interval = stats.ttest_rel(a, b).confidence_interval(0.95)
    return float(np.mean(a - b)), float(interval.low), float(interval.high)


def model_arguments(parser: argparse.ArgumentParser, model_help: str, split: str) -> None:
    """--model, --data, --features and --split (default ``split``), as this script and motion_sampler.py take them."""
    parser.add_argument("--model", type=Path, required=True, help=model_help)
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder (manifest.jsonl)")
    parser.add_argument("--features", type=Path, default=None, help="audio feature cache (default: none, computed)")
    parser.add_argument("--split", default=split, choices=("train", "test"))


def open_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[IMACPipeline, Dataset]:
    """The model and dataset of ``model_arguments``, every identity of the dataset selected; a missing or
    foreign model folder, or a folder without a manifest, is the parser's one-line error."""
    try:
        pipeline = IMACPipeline.from_pretrained(args.model, feature_cache=args.features)
        dataset = Dataset.open(args.data)
    except (OSError, ValueError) as error:
        parser.error(_one_line(error))
    pipeline.config.data.identities = None
    return pipeline, dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    model_arguments(parser, "an IMAC stage-2 model folder", "train")
    parser.add_argument("--windows", type=int_in(2, 100_000), default=64, help="how many windows (2 or more)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pipeline, dataset = open_model(parser, args)
    if pipeline.model.unet is None:
        parser.error(f"{args.model}: a stage-1 model has no video branch")
    config = pipeline.config
    clips = load_clip_arrays(config, dataset, pipeline.features, with_frames=True, progress=False, split=args.split)
    windows = TrainingWindows(clips, config.stage2.motion_frames, config.video.frames, config.data.resolution,
                              seed=args.seed)
    rng = np.random.default_rng(args.seed)
    picks = [int(i) for i in rng.permutation(len(windows))[:args.windows]]
    torch.manual_seed(args.seed)
    losses = window_losses(pipeline, windows, picks, args.seed)
    print(f"{args.model}: video loss (L_LDM) on {len(picks)} {args.split} windows of {len(clips)} clips")
    for name, values in losses.items():
        print(f"  {name:>13}: {values.mean():.5f}")
    for name in ("other", "unconditional"):
        mean, low, high = paired(losses[name], losses["own"])
        print(f"  {name} - own: {mean:+.2e} [{low:+.2e}, {high:+.2e}] ({100 * mean / losses['own'].mean():+.3f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
