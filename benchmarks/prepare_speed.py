"""How fast ``imac-bench data prepare`` turns raw video into dataset clips, stage by stage.

Synthetic recordings (Grace Hopper's portrait from matplotlib's sample data, on a textured, moving
background, a cut every few seconds) at a chosen resolution are prepared four times in one process:

1. the first run: scene split + candidate clips + faces (measuring), crops;
2. the same command again (everything is done: the cost of checking);
3. with ``--motion`` (SMPL-X fits made up here): the motion import and the manifest;
4. scene detection alone on one source, for the share of the first run it takes;
5. the first run again into a fresh folder with ``--workers N`` processes (default 2).

    .venv/bin/python benchmarks/prepare_speed.py [--sources 2] [--seconds 30] [--width 1280 --height 720]
                                                 [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np

from bench.data.prepare.pipeline import PrepareOptions, prepare_dataset
from bench.data.prepare.sources import SceneSettings, detect_cuts
from metrics.io.video import probe_video, write_video

FPS = 25


def synthetic_source(path: Path, seconds: float, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    portrait = cv2.cvtColor(cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
                            cv2.COLOR_BGR2RGB)
    side = height // 2
    face = cv2.resize(portrait, (side * portrait.shape[1] // portrait.shape[0], side), interpolation=cv2.INTER_AREA)
    texture = rng.integers(0, 40, (height, width + 64, 3), dtype=np.uint8)
    frames_total = int(seconds * FPS)
    cuts = np.cumsum(rng.uniform(3.5, 7.0, 64) * FPS).astype(int)

    def frames():
        scene = 0
        colour = rng.integers(40, 200, 3)
        for index in range(frames_total):
            if index >= cuts[scene]:
                scene += 1
                colour = rng.integers(40, 200, 3)
            shift = index % 64
            frame = (texture[:, shift:shift + width] + colour).clip(0, 255).astype(np.uint8)
            x = width // 2 - face.shape[1] // 2 + int(8 * np.sin(index / 7))
            frame[height // 6:height // 6 + face.shape[0], x:x + face.shape[1]] = face
            yield frame

    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.2 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 2.5 * t)) / 2).astype(np.float32)
    write_video(path, frames(), FPS, audio=audio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        raw, out, fits = root / "raw", root / "dataset", root / "fits"
        raw.mkdir()
        fits.mkdir()
        for k in range(args.sources):
            synthetic_source(raw / f"rec{k}.mp4", args.seconds, args.width, args.height, seed=k)
        video_seconds = args.sources * args.seconds
        options = PrepareOptions(identity="hopper", size=args.size, test_fraction=0.3)
        rows = []
        start = time.perf_counter()
        summary = prepare_dataset(raw, out, options, progress=False, log=lambda _: None)
        rows.append(("first run (measure + crop), 1 process", time.perf_counter() - start))
        start = time.perf_counter()
        prepare_dataset(raw, out, options, progress=False, log=lambda _: None)
        rows.append(("same command again", time.perf_counter() - start))
        for clip in summary.awaiting_motion:
            frames = probe_video(out / "hopper" / f"{clip}.mp4").num_frames
            np.savez(fits / f"{clip}.npz", poses=np.zeros((frames, 165), np.float32),
                     expression=np.zeros((frames, 100), np.float32))
        start = time.perf_counter()
        final = prepare_dataset(raw, out, PrepareOptions(identity="hopper", size=args.size, test_fraction=0.3,
                                                         motion=str(fits)), progress=False, log=lambda _: None)
        rows.append(("with --motion (import + manifest)", time.perf_counter() - start))
        info = probe_video(raw / "rec0.mp4")
        start = time.perf_counter()
        detect_cuts(raw / "rec0.mp4", info.fps, SceneSettings())
        scene_seconds = (time.perf_counter() - start) * args.sources
        start = time.perf_counter()
        prepare_dataset(raw, root / "parallel", PrepareOptions(identity="hopper", size=args.size, test_fraction=0.3,
                                                                workers=args.workers), progress=False, log=lambda _: None)
        rows.append((f"first run, --workers {args.workers}", time.perf_counter() - start))
        print(f"{args.sources} source(s) x {args.seconds:g} s at {args.width}x{args.height}, {FPS} fps -> "
              f"{args.size}px clips: {final.scenes} scenes, {final.kept} kept, {final.in_manifest} in the manifest")
        print("| step | wall s | video s per wall s |")
        print("|---|---:|---:|")
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} | {video_seconds / seconds:.1f} |")
        print(f"| of the first run: scene detection alone (x{args.sources}) | {scene_seconds:.1f} | "
              f"{video_seconds / scene_seconds:.1f} |")


if __name__ == "__main__":
    main()
