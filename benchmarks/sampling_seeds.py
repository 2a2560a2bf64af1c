"""How much a finished run's scores move with the sampling seed alone: each method's test videos made
again from the run's trained models with other seeds, scored like the run.

    .venv/bin/python benchmarks/sampling_seeds.py --run RUN --methods imac,s2g,mya --seeds 1,2,3

A run samples each test clip once, with the seed ``bench.runner.clip_seed(run seed, clip)``; its
intervals cover the choice of test clips, not that draw. This script gives every method of ``--methods``
the seeds of ``--seeds`` instead of the run's (each clip's seed is ``clip_seed(N, clip)``, as a run with
``--seed N`` would draw it), with the SAME trained models (nothing trains: the run must be finished,
its models are loaded and checked as a resumed run checks them), writes the videos to
``<out>/seed-<N>/<method>/<identity>/<clip_id>.mp4`` (resumable: a written video is kept), scores them
with the run's protocol, skeleton autoencoder, pose extractor and I3D, and prints, per metric, each
method's value at the run's seed (its own videos, scored again here) and at every other seed, their
mean and range, beside the controls that draw nothing (the static frame: one value at every seed), and
each method's paired difference from the static control at every seed (``bench.scoring.paired_differences``:
method - static over the clips both could score, with its 95% interval and, when a clip is missing from
either, how many pairs it rests on): whether drawing motion beats not drawing any is a question of the
pairs, not of two level intervals.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from bench.config import config_from_dict
from bench.methods import CONTROLS, make_method
from bench.methods.base import Method
from bench.runner import (RunMismatchError, RunPlan, RunSettings, SharedModels, check_made_with, clip_seed,
                          conform_frames, data_root, previous_key, read_run_file, run_device, test_clips)
from bench.scoring import RunScorer, paired_differences
from metrics.distributed import SINGLE
from metrics.evaluate import Evaluator
from metrics.io.audio import SAMPLE_RATE
from metrics.io.video import write_video
from metrics.options import OptionsError
from metrics.protocol import get_protocol
from metrics.registry import normalise_metrics

DEFAULT_METRICS = "fgd,div,bas,fvd"
STILL = ("static",)          # controls that draw nothing: one value whatever the seed


class SeedsError(ValueError):
    """A run folder or an option this script cannot use (one line, exit 2)."""


def load_run(run: Path, methods: list[str], metrics: list[str], device: str = "cpu",
             custom: dict[str, Callable[[], Method]] | None = None) -> RunPlan:
    """The plan of the finished run in ``run`` (its ``run.json``: data, seed, speakers, config) for
    ``methods``, scored with ``metrics``; reads the folder and writes nothing in it. ``SeedsError``
    when the folder is no finished run of these methods."""
    path = run / "run.json"
    if not path.is_file():
        raise SeedsError(f"{path}: no such file: give the folder of a finished `imac-bench run`")
    try:
        recorded = read_run_file(path)
        key = previous_key(recorded, path)
        scoring = recorded.get("scoring") or {}
        config = config_from_dict({**(key.get("config") or {}), "metrics": metrics,
                                   "protocol": scoring.get("protocol", "imac-bench")}, str(path))
    except (ValueError, OptionsError) as error:
        raise SeedsError(str(error)) from None
    settings = RunSettings(methods=methods, out=run, data=Path(key["data"]) if key.get("data") else None,
                           identities=key.get("identities"), device=device, seed=int(key.get("seed") or 0),
                           config=config, progress=False, custom=custom)
    if json.loads(json.dumps(settings.resume_key(config))) != key:
        raise SeedsError(f"{path}: written by another version of the run settings; run `imac-bench run` on "
                         "it again first")
    data = data_root(settings, run)
    clips = tuple(test_clips(data, settings.identities))
    protocol = get_protocol(config.protocol)
    made = [make_method(name, custom) for name in methods]
    for method in made:
        missing = [c.label for c in clips if not (run / method.name / c.identity / f"{c.clip_id}.mp4").is_file()]
        if missing:
            raise SeedsError(f"{run / method.name}: {len(missing)} of the {len(clips)} test videos are missing "
                             f"(e.g. {missing[0]}): finish the run first (imac-bench run --out {run})")
    shared = SharedModels(run, data, config, protocol, run_device(device, SINGLE), settings.seed,
                          progress=False)
    return RunPlan(settings=settings, config=config, out=run, data=data, device=shared.device, protocol=protocol,
                   clips=clips, methods=tuple(made), shared=shared)


def sample_seed(plan: RunPlan, method: Method, seed: int, out: Path, prepared: set[str]) -> tuple[int, float]:
    """Write ``method``'s video of every test clip made with ``clip_seed(seed, clip)`` under
    ``out/seed-<seed>/<method>``, keeping those already there; (videos made, seconds). The method is
    prepared (its trained models loaded) before its first video; ``prepared`` holds the names done."""
    made, started = 0, time.perf_counter()
    for clip in tqdm(plan.clips, desc=f"{method.name}, seed {seed}", unit="clip", file=sys.stderr):
        target = out / f"seed-{seed}" / method.name / clip.identity / f"{clip.clip_id}.mp4"
        if target.is_file():
            continue
        if method.name not in prepared:
            method.prepare(plan.context(method))           # loads the run's trained models
            prepared.add(method.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if method.writes_files:
            method.write(clip, target, clip_seed(seed, clip))
        else:
            frames, _ = conform_frames(method.generate(clip, clip_seed(seed, clip)), clip)
            write_video(target, frames, clip.fps, audio=clip.load_audio(), sample_rate=SAMPLE_RATE)
        made += 1
    return made, time.perf_counter() - started


def make_evaluator(plan: RunPlan, cache: Path) -> Evaluator:
    """The run's metrics with its skeleton autoencoder (checked, never trained here), pose extractor and I3D."""
    autoencoder = None
    if any(m in plan.config.metrics for m in ("fgd", "div")):
        autoencoder = plan.config.fgd_autoencoder or plan.out / "work" / "fgd_autoencoder"
        if not (Path(autoencoder) / "config.json").is_file():
            raise SeedsError(f"{autoencoder}: no skeleton autoencoder: finish the run first")
        if not plan.config.fgd_autoencoder:
            plan.shared.check_fgd_autoencoder()
    return Evaluator.load(plan.config.metrics, plan.protocol, autoencoder=autoencoder, i3d=plan.config.i3d,
                          extractor=plan.shared.pose_extractor(), device=plan.device, cache_dir=cache,
                          weights=dict(plan.config.weights))


def score_folder(evaluator: Evaluator, plan: RunPlan, folder: Path, name: str):
    """``folder/name``'s videos against the run's real test videos: {metric: Score} over all clips, and
    the clips left unscored (by every metric, or, with no body found, by FGD, Div and BAS)."""
    scored = RunScorer.for_dataset(evaluator, plan.data, plan.clips, folder).method(name)
    return scored.scores.get("all", {}), {**scored.unscored, **scored.no_body}


def against_still(evaluator: Evaluator, plan: RunPlan, folder: Path, name: str, still: str = STILL[0]
                  ) -> dict[str, dict]:
    """``folder/name``'s videos minus the run's ``still`` control, paired over the test clips both could score:
    {metric: ``paired_differences``' row (estimate, low, high, pairs)}."""
    scorer = RunScorer.for_dataset(evaluator, plan.data, plan.clips, folder)
    scorer.method(name)
    control = RunScorer.for_dataset(evaluator, plan.data, plan.clips, plan.out)
    control.method(still)
    scorer.fake_records[still] = control.fake_records[still]
    return {row["metric"]: row for row in paired_differences(scorer, [name, still])}


def difference_table(differences: dict[str, dict[int, dict]], label: str, seeds: list[int], run_seed: int,
                     clips: int) -> str:
    """A markdown table of one metric's paired differences from the static control: a row per method,
    a column per seed, "estimate [low, high]", followed by "(N of ``clips`` clips)" when the pairs are fewer
    than the test clips (a clip one of the two could not score): then the estimate is the difference on
    those clips, not the difference of the two values of the table above."""
    head = [f"{s} (the run's)" if s == run_seed else str(s) for s in seeds]
    lines = [f"| {label}: method - static control, paired | " + " | ".join(head) + " |", "|---" * (len(seeds) + 1) + "|"]
    for name, by_seed in differences.items():
        cells = []
        for seed in seeds:
            row = by_seed.get(seed)
            if row is None:
                cells.append("-")
                continue
            short = f" ({row['pairs']} of {clips} clips)" if row["pairs"] < clips else ""
            cells.append(f"{row['estimate']:.4g} [{row['low']:.4g}, {row['high']:.4g}]{short}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(values: dict[str, dict[int, object]], label: str, seeds: list[int], run_seed: int) -> str:
    """A markdown table of one metric (``label``): a row per method, a column per seed, mean and range."""
    head = [f"{s} (the run's)" if s == run_seed else str(s) for s in seeds]
    lines = [f"| {label} | " + " | ".join(head) + " | mean | range |", "|---" * (len(seeds) + 3) + "|"]
    for name, by_seed in values.items():
        cells, numbers = [], []
        for seed in seeds:
            score = by_seed.get(seed)
            value = getattr(score, "value", float("nan"))
            numbers.append(value)
            cells.append("-" if score is None else f"{value:.4g}")
        finite = [v for v in numbers if v == v]
        mean = f"{sum(finite) / len(finite):.4g}" if finite else "-"
        spread = f"{min(finite):.4g} to {max(finite):.4g}" if finite else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} | {spread} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, custom: dict[str, Callable[[], Method]] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished imac-bench run folder")
    parser.add_argument("--methods", required=True, help="its methods to sample again, e.g. imac,s2g,mya")
    parser.add_argument("--seeds", required=True, help="run seeds to draw the clips' sampling seeds from, e.g. 1,2,3")
    parser.add_argument("--metrics", default=DEFAULT_METRICS, help=f"what to score (default {DEFAULT_METRICS})")
    parser.add_argument("--out", type=Path, default=None, help="where the videos go (default: <run>/sampling_seeds)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: expected integers separated by commas")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not seeds or not methods:
        parser.error("--seeds and --methods each need at least one entry")
    controls = [m for m in methods if m in CONTROLS]
    if controls:
        parser.error(f"--methods: {', '.join(controls)} is a control; the controls are scored on every call")
    try:
        metrics = list(normalise_metrics(args.metrics.split(",")))
        plan = load_run(args.run, methods, metrics, args.device, custom)
        for method in plan.methods:          # the trained models are the run's videos' (as a resumed run checks)
            try:
                check_made_with(method, plan.context(method))
            except RunMismatchError as error:   # other seeds would be drawn otherwise than the run's own videos
                said = str(error).split(": give a new --out")[0]
                raise SeedsError(f"{said}: this version would sample {method.name} otherwise than the run did; "
                                 "make the run again with this version (imac-bench run --out NEW) first") from None
        out = args.out or args.run / "sampling_seeds"
        evaluator = make_evaluator(plan, out / "cache")
    except (ValueError, RunMismatchError) as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.WARNING)
    run_seed = plan.settings.seed
    all_seeds = [run_seed] + [s for s in seeds if s != run_seed]
    values: dict[str, dict[str, dict[int, object]]] = {m: {} for m in metrics}
    differences: dict[str, dict[str, dict[int, dict]]] = {m: {} for m in metrics}
    notes, prepared = [], set()
    for method in plan.methods:
        for seed in all_seeds:
            if seed != run_seed:
                made, seconds = sample_seed(plan, method, seed, out, prepared)
                if made:
                    notes.append(f"{method.name}, seed {seed}: {made} videos in {seconds:.0f} s")
            scores, unscored = score_folder(evaluator, plan, plan.out if seed == run_seed else out / f"seed-{seed}",
                                            method.name)
            still = against_still(evaluator, plan, plan.out if seed == run_seed else out / f"seed-{seed}", method.name)
            for metric in metrics:
                values[metric].setdefault(method.label, {})[seed] = scores.get(metric)
                if metric in still:
                    differences[metric].setdefault(method.label, {})[seed] = still[metric]
            if unscored:
                notes.append(f"{method.name}, seed {seed}: {len(unscored)} clip(s) unscored")
    for name in STILL:
        scores, _ = score_folder(evaluator, plan, plan.out, name)
        for metric in metrics:
            if metric in scores:
                values[metric][make_method(name).label + " (draws nothing)"] = {s: scores[metric] for s in all_seeds}
    print(f"Run {plan.out} (run seed {run_seed}), {len(plan.clips)} test clips; the other columns: each clip "
          f"sampled with clip_seed(N, clip), the run's trained models; protocol {plan.config.protocol}.\n")
    for metric in metrics:
        print(table(values[metric], evaluator.label(metric), all_seeds, run_seed) + "\n")
        if differences[metric]:
            print(difference_table(differences[metric], evaluator.label(metric), all_seeds, run_seed,
                                   len(plan.clips)) + "\n")
    for note in notes:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
