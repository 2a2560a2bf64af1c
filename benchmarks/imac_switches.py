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
  windows (a ratio near 1: no jump at the joins), and the same on the upper-body keypoints the toy
  extractor finds in the videos (the real test videos' beside them); each beside the range of the same
  ratio at every other position of the windows (``join_profile``): the joins are "within the range seen
  inside windows" when their ratio lies among those;
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
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chunk_drift import SCORE, UPPER_BODY, markdown, method_table  # noqa: E402

from bench.runner import clip_seed, conform_frames  # noqa: E402
from imac.config import SAMPLING_KEYS, load_config, with_sampling_overrides  # noqa: E402
from imac.frames import frames_to_tensor  # noqa: E402
from imac.pipeline import IMACPipeline, motion_windows  # noqa: E402
from metrics.cli import existing_folder  # noqa: E402
from metrics.dataset import find_clips  # noqa: E402
from metrics.io.video import read_video, write_video  # noqa: E402
from metrics.pose.toy import ToyMarkerPose  # noqa: E402

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


def join_ratios(series: np.ndarray, joins: list[int], exclude: tuple[set, set] = (set(), set())
                ) -> tuple[float, float]:
    """(speed ratio, jerk ratio) of ``series`` (F, D; NaN where a value is missing) at ``joins``: the mean
    |first difference| over the differences that cross a join (frame j - 1 -> j) and the mean |third
    difference| over those whose four frames straddle one, each divided by the same mean over the other
    differences (less ``exclude``'s speed and jerk indices). A difference's size is the mean over the
    dimensions present in both frames; NaN without joins."""
    speed = _mean_abs(np.diff(series, axis=0))                       # speed[f]: frame f -> f + 1
    jerk = _mean_abs(np.diff(series, n=3, axis=0))                   # jerk[f]: frames f .. f + 3
    at = ({j - 1 for j in joins if 0 < j < len(series)},
          {f for j in joins if 0 < j < len(series) for f in range(j - 3, j) if 0 <= f < len(jerk)})
    ratios = []
    for values, chosen, excluded in zip((speed, jerk), at, exclude):
        at_join = [values[f] for f in sorted(chosen)]
        inside = [v for f, v in enumerate(values) if f not in chosen and f not in excluded]
        ratios.append(_ratio(at_join, inside))
    return ratios[0], ratios[1]


def _mean_abs(differences: np.ndarray) -> np.ndarray:
    """Per row, the mean |value| over the finite ones (NaN when none is)."""
    finite = np.isfinite(differences)
    counts = finite.sum(axis=1)
    total = np.where(finite, np.abs(differences), 0.0).sum(axis=1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _ratio(at_join: list[float], inside: list[float]) -> float:
    at_join = [v for v in at_join if np.isfinite(v)]
    inside = [v for v in inside if np.isfinite(v)]
    if not at_join or not inside or np.mean(inside) == 0:
        return float("nan")
    return float(np.mean(at_join) / np.mean(inside))


def join_profile(series: np.ndarray, window: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """The window joins' ``join_ratios`` (2,) and the same at every in-window position (P - 5, 2), P =
    window - overlap the frames between two joins: row k places pseudo-joins k + 3 frames after each
    window's first new frame (positions 3 .. P - 3, whose third differences touch no real join), the real
    joins' differences left out of both sides. What the joins give is "within the range seen inside
    windows" when it lies among the rows'."""
    starts = [keep for _, _, keep in motion_windows(len(series), window, overlap)]
    joins = starts[1:]
    real = join_ratios(series, joins)
    exclude = ({j - 1 for j in joins}, {f for j in joins for f in range(j - 3, j)})
    pseudo = [join_ratios(series, [start + k for start in starts if start + k < len(series)], exclude)
              for k in range(3, window - overlap - 2)]
    return np.array(real), np.array(pseudo).reshape(-1, 2)


def profile_summary(real: np.ndarray, pseudo: np.ndarray) -> str:
    """"joins 1.21 (in-window 0.95 [0.71, 1.40], above 62% of them)" for one column of ``join_profile``
    averaged over clips (NaN rows left out)."""
    pseudo = pseudo[np.isfinite(pseudo)]
    if not np.isfinite(real) or not len(pseudo):
        return "-"
    above = float(np.mean(pseudo < real))
    return (f"{real:.2f} (in-window {np.median(pseudo):.2f} [{pseudo.min():.2f}, {pseudo.max():.2f}], "
            f"above {100 * above:.0f}% of them)")


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
    parser.add_argument("--run", type=existing_folder, required=True,
                        help="an imac-bench run folder with IMAC trained in it")
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
    window = trained.stage1.motion_frames
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
        started, profiles = time.perf_counter(), []
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
                profiles.append(join_profile(motion, window, base.config.motion.window_overlap))
        seconds[name] = (time.perf_counter() - started) / max(len(clips), 1)
        continuity[name] = averaged(profiles)
        continuity[f"{name}, keypoints"] = keypoint_profile(out / name, clips, window, base.config.motion.window_overlap)
        tables[name] = method_table(out / name, base.config.video.frames, 6)
        print(f"{name}: {seconds[name]:.1f} s per clip", file=sys.stderr, flush=True)
    if (args.run / "gt").is_dir():
        tables["real (gt)"] = method_table(args.run / "gt", base.config.video.frames, 6)
        continuity["real (gt), keypoints"] = keypoint_profile(args.run / "gt", clips, window, 0)
    print(f"Sampled with the run's seed {seed}" + (" (--seed)" if args.seed is not None else "")
          + (f", every variant with --set {' '.join(sets)}" if sets else "") + ".\n")
    print(markdown(tables, 6))
    print(f"\nAt the {window}-frame motion window joins, over those inside windows (`join_profile`; averaged over "
          "the clips; in brackets the same at every in-window position):\n")
    print("| variant | speed at joins / inside | jerk at joins / inside | s per clip |\n|---|---|---|---|")
    for name, (real, pseudo) in continuity.items():
        cells = [profile_summary(real[k], pseudo[:, k]) for k in range(2)]
        print(f"| {name} | {cells[0]} | {cells[1]} | "
              f"{f'{seconds[name]:.1f}' if name in seconds else '-'} |")
    return 0


def averaged(profiles: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``join_profile``s of several clips averaged (NaN-aware; clips of equal window)."""
    if not profiles:
        return np.full(2, np.nan), np.full((1, 2), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # (a position no clip reaches: NaN)
        return (np.nanmean([real for real, _ in profiles], axis=0),
                np.nanmean(np.stack([pseudo for _, pseudo in profiles]), axis=0))


def keypoint_profile(folder: Path, clips, window: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """``join_profile`` of the toy extractor's upper-body points (x, y in pixels; missing where the score is
    below 0.3) in ``folder``'s videos of ``clips``, averaged over the clips."""
    pose, profiles = ToyMarkerPose(), []
    for clip in clips:
        path = folder / clip.identity / f"{clip.clip_id}.mp4"
        if not path.is_file():
            continue
        keypoints = pose(read_video(path))[:, UPPER_BODY]
        points = np.where(keypoints[..., 2:] >= SCORE, keypoints[..., :2], np.nan).reshape(len(keypoints), -1)
        profiles.append(join_profile(points, window, overlap))
    return averaged(profiles)


if __name__ == "__main__":
    sys.exit(main())
