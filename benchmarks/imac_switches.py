"""IMAC's sampling switches side by side, on one trained model and the same test clips and seeds.

    .venv/bin/python benchmarks/imac_switches.py --run runs/bench [--out runs/switches] [--variants a,b]

``--run`` is an ``imac-bench run`` folder whose IMAC was trained in the run (``work/imac/stage2/model``,
``data/``). Each variant is the model sampled with other ``imac.config.SAMPLING_KEYS`` (the weights
serve any of them), as the benchmark samples (the test clip's first frame, its speech, the run's
per-clip seed (``bench.runner.clip_seed``), the run's sample steps and guidance from ``run.json``, the
frames conformed to the real clip as the run does). The videos go to
``<out>/<variant>/<identity>/<clip>.mp4`` (a folder ``python -m metrics compute --fake`` and
``benchmarks/chunk_drift.py`` read), so FGD / FVD* of each variant come from the suite's own
evaluator. Printed per variant:

- per 16-frame chunk: body points found and drift from frame 0 (``benchmarks/chunk_drift.py``'s
  definitions), and the same for the real test videos (``<run>/gt``);
- motion continuity at the 80-frame window joins: the mean speed (|m[f+1] - m[f]|) and jerk (third
  difference) of the sampled normalised motion parameters across each join, against the same inside
  windows (a ratio near 1: no jump at the joins);
- seconds of sampling per clip.

``--set KEY=VALUE`` (repeatable) applies a sampling setting to every variant after the variant's own
(e.g. ``video.noise_correlation=0.5``); ``--seed`` samples with another run seed (each clip's seed is
``clip_seed(seed, clip)``), to tell a setting's effect from the sampling noise.

``--motion real`` hands the video branch each clip's real pose and expression (the dataset's, in the
model's normalised units) instead of the motion it samples from the speech: an oracle that tells the
video branch's limits apart from the motion branch's (the continuity columns then describe the real motion).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunk_drift import markdown, method_table  # noqa: E402

from bench.runner import clip_seed, conform_frames  # noqa: E402
from imac.config import SAMPLING_KEYS, load_config, with_sampling_overrides  # noqa: E402
from imac.frames import frames_to_tensor  # noqa: E402
from imac.pipeline import IMACPipeline, motion_windows  # noqa: E402
from metrics.dataset import find_clips  # noqa: E402
from metrics.io.video import write_video  # noqa: E402

VARIANTS = {
    "paper": [],
    "anchored": ["video.chunk_reference=anchored"],
    "latent": ["video.handover=latent"],
    "anchored+latent": ["video.chunk_reference=anchored", "video.handover=latent"],
    "overlap16": ["motion.window_overlap=16"],
    "clip3": ["motion.sample_clip=3.0"],
    "leading": ["motion.sample_spacing=leading"],
    "video-trailing": ["video.sample_spacing=trailing"],
    "anchored+video-trailing": ["video.chunk_reference=anchored", "video.sample_spacing=trailing"],
    "defaults": ["video.chunk_reference=anchored", "video.sample_spacing=trailing",      # the tiny config's
                 "motion.sample_spacing=leading", "video.sample_strength=0.5", "motion.smooth_sigma=5"],
    "from-noise": ["video.chunk_reference=anchored", "video.sample_spacing=trailing",    # the previous defaults
                   "motion.sample_spacing=leading"],
    "from-first-frame": ["video.chunk_reference=anchored", "video.sample_spacing=trailing",
                         "motion.sample_spacing=leading", "video.sample_strength=0.5",
                         "video.strength_from=first_frame", "motion.smooth_sigma=5"],
    "all": ["video.chunk_reference=anchored", "video.handover=latent", "motion.window_overlap=16",
            "motion.sample_clip=3.0"],
}


def join_continuity(motion: np.ndarray, window: int, overlap: int) -> tuple[float, float]:
    """(speed ratio, jerk ratio): mean |first difference| and |third difference| of ``motion`` (F, D)
    over the differences that cross a window join, divided by those inside windows; NaN without joins."""
    joins = [keep for _, _, keep in motion_windows(len(motion), window, overlap)][1:]
    speed = np.abs(np.diff(motion, axis=0)).mean(axis=1)            # speed[f]: frame f -> f + 1
    jerk = np.abs(np.diff(motion, n=3, axis=0)).mean(axis=1)        # jerk[f]: frames f .. f + 3
    at_speed = {j - 1 for j in joins if 0 < j < len(motion)}
    at_jerk = {f for j in joins for f in range(j - 3, j) if 0 <= f < len(jerk)}
    if not at_speed:
        return float("nan"), float("nan")
    inside_speed = [v for f, v in enumerate(speed) if f not in at_speed]
    inside_jerk = [v for f, v in enumerate(jerk) if f not in at_jerk]
    return (float(np.mean([speed[f] for f in at_speed]) / np.mean(inside_speed)),
            float(np.mean([jerk[f] for f in at_jerk]) / np.mean(inside_jerk)))


def real_motion(pipeline: IMACPipeline, clip):
    """A stand-in for ``pipeline.sample_motion`` that returns ``clip``'s real motion, normalised, over
    the speech's frames (the last frame repeated if the motion is shorter), and its features (per
    80-frame window, as the sampler computes them)."""
    arrays = clip.load_motion()

    def sample_motion(mfcc: np.ndarray, hubert: np.ndarray, generator=None):
        frames = len(mfcc)
        index = np.minimum(np.arange(frames), len(arrays["pose"]) - 1)
        motion = pipeline.model.motion
        pose, expression = (torch.from_numpy(np.asarray(arrays[k], np.float32)[index])[None].to(pipeline.device)
                            for k in ("pose", "expression"))
        pose, expression = motion.normalize(pose, expression)
        audio = [torch.from_numpy(np.ascontiguousarray(a))[None].to(pipeline.device) for a in (mfcc, hubert)]
        features = [pipeline.model.video_features(pose[:, start:stop], expression[:, start:stop],  # per window, as trained
                                                  audio[0][:, start:stop], audio[1][:, start:stop])
                    for start, stop, _ in motion_windows(frames, pipeline.config.stage1.motion_frames, 0)]
        return pose, expression, torch.cat(features, 1)
    return torch.no_grad()(sample_motion)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="an imac-bench run folder with IMAC trained in it")
    parser.add_argument("--out", type=Path, default=None, help="where the variants' videos go (default: <run>/switches)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--clips", type=int, default=0, help="only the first N test clips (0: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a sampling setting (imac.config.SAMPLING_KEYS) for every variant, after the "
                             "variant's own, e.g. video.noise_correlation=0.5 (repeatable)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the run seed the clips' sampling seeds come from (default: the run's, run.json)")
    parser.add_argument("--motion", choices=("sampled", "real"), default="sampled",
                        help="the motion the video is given: sampled from the speech (default) or the clip's real one")
    args = parser.parse_args(argv)
    sets = []
    for setting in args.set:
        key, equals, value = (part.strip() for part in setting.partition("="))
        if key not in SAMPLING_KEYS:
            parser.error(f"--set {setting}: not a sampling setting (one of {', '.join(SAMPLING_KEYS)})")
        sets.append(f"{key}{equals}{value}")
    try:                       # every value checked before the model loads; whether a strength keeps a step
        # depends on the run's steps, checked per variant below (here the schedule's 1000 stand in for them)
        with_sampling_overrides(load_config("tiny"), ["video.sample_steps=1000", *sets], "--set")
    except ValueError as error:
        parser.error(str(error))
    unknown = [name for name in args.variants.split(",") if name not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)} (of {', '.join(VARIANTS)})")
    model = args.run / "work" / "imac" / "stage2" / "model"
    settings = json.loads((args.run / "run.json").read_text())
    options = ((settings.get("config") or {}).get("methods") or {}).get("imac") or {}
    steps, guidance = options.get("sample_steps"), options.get("guidance_scale")
    seed = int(settings.get("seed", 0)) if args.seed is None else args.seed
    out = args.out or args.run / "switches"
    clips = find_clips(args.run / "data", split="test")
    clips = clips[:args.clips] if args.clips else clips
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    base = IMACPipeline.from_pretrained(model, feature_cache=args.run / "work" / "imac" / "features")
    trained = base.config
    tables, continuity, seconds = {}, {}, {}
    for name in args.variants.split(","):
        chosen = VARIANTS[name] + sets
        named = {o.partition("=")[0] for o in chosen}
        # unnamed: the paper's switches, and the run's steps and guidance (run.json) where it gives them
        try:                   # e.g. a strength that keeps none of the run's steps
            base.config = with_sampling_overrides(trained, chosen + [
                f"{k}={v}" for k, v in (("video.chunk_reference", "last_frame"), ("video.handover", "decoded"),
                                        ("motion.window_overlap", 0), ("motion.sample_clip", 0.0),
                                        ("motion.sample_spacing", "trailing"), ("video.sample_spacing", "leading"),
                                        ("video.sample_strength", 1.0), ("video.strength_from", "reference"),
                                        ("video.noise_correlation", 0.0), ("motion.smooth_sigma", 0.0),
                                        ("video.sample_steps", steps),
                                        ("video.guidance_scale", guidance))
                if k not in named and v is not None], f"variant {name}{' with --set' if sets else ''}")
        except ValueError as error:
            parser.error(str(error))
        started, ratios = time.perf_counter(), []
        for clip in clips:
            size, rate = base.config.data.resolution, base.config.audio.sample_rate
            reference = frames_to_tensor(clip.first_frame()[None], size)[0]
            generator = torch.Generator().manual_seed(clip_seed(seed, clip))
            if args.motion == "real":
                base.sample_motion = real_motion(base, clip)
            sample = base(reference, clip.load_audio(rate), rate, generator=generator,
                          guidance_scale=base.config.video.guidance_scale, steps=base.config.video.sample_steps)
            path = out / name / clip.identity / f"{clip.clip_id}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            frames, _ = conform_frames(sample.frames, clip)          # the real clip's size and length, as the run
            write_video(path, frames, sample.fps, audio=sample.audio, sample_rate=rate)
            if sample.pose is not None:
                motion = np.concatenate([sample.pose, sample.expression], axis=1)
                motion = (motion - motion.mean(0)) / (motion.std(0) + 1e-6)
                ratios.append(join_continuity(motion, base.config.stage1.motion_frames,
                                              base.config.motion.window_overlap))
        seconds[name] = (time.perf_counter() - started) / max(len(clips), 1)
        continuity[name] = np.nanmean(np.array(ratios), axis=0) if ratios else (float("nan"),) * 2
        tables[name] = method_table(out / name, base.config.video.frames, 6)
        print(f"{name}: {seconds[name]:.1f} s per clip", file=sys.stderr, flush=True)
    if (args.run / "gt").is_dir():
        tables["real (gt)"] = method_table(args.run / "gt", base.config.video.frames, 6)
    print(f"Sampled with the run's seed {seed}" + (" (--seed)" if args.seed is not None else "")
          + (f", every variant with --set {' '.join(sets)}" if sets else "") + ".\n")
    print(markdown(tables, 6))
    print("\n| variant | speed at joins / inside | jerk at joins / inside | s per clip |\n|---|---|---|---|")
    for name in continuity:
        speed, jerk = continuity[name]
        print(f"| {name} | {speed:.2f} | {jerk:.2f} | {seconds[name]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
