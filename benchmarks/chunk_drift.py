"""Does a generated video hold up chunk after chunk? Body points found and drift, per 16-frame chunk.

    .venv/bin/python benchmarks/chunk_drift.py RUN_DIR [--methods imac,mya,gt] [--chunks 6] [--chunk 16] [--flicker]

RUN_DIR is an ``imac-bench run`` folder (``<method>/<identity>/<clip_id>.mp4``). For every method
and every video, chunk c (1-based) is frames 15(c-1) .. 15(c-1)+15, the chunks of the IMAC sampler
(each later chunk starts on the previous one's last frame; ``--chunk`` sets the length). Per chunk:

- found: the mean, over the chunk's frames and the 7 upper-body points (nose, shoulders, elbows,
  wrists), of [toy marker extractor score >= 0.3] (``metrics.pose.toy.ToyMarkerPose``);
- drift: the mean over pixels and channels of |the chunk's mean frame - frame 0|, in uint8 levels
  at the video's own resolution.

With ``--flicker`` a second table says how much the found points jump between frames: over every pair
of consecutive frames of the method's videos and every upper-body point found in both, the median
distance the point moves (pixels at the video's resolution) and the share of moves over 3 pixels.
Real gestures move a point smoothly, a fraction of a pixel a frame at 25 fps; a generator whose markers
flicker (grain, a marker found in one place and then another) moves them more with no gesture, which
FGD can take for motion. Beside them, the wrist spread says how far the arms travel: per video, for each
wrist found in 2 frames or more, sqrt(var(x) + var(y)) of its positions (pixels), averaged over the
wrists and then over the videos; a gesture moves the wrists by several pixels, flicker by about its step.

Each cell is the mean over the method's videos that reach that chunk (the count is printed). The
``gt`` method folder holds the real test videos, so its row is the floor of both measures: real
videos move, so their drift is not 0. The definition is fixed here so that the model's changes are
judged against one yardstick; the table is markdown, for the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from metrics.cli import int_in
from metrics.io.video import read_video
from metrics.pose import wholebody as wb
from metrics.pose.toy import ToyMarkerPose

UPPER_BODY = tuple(wb.index_of(n) for n in ("nose", "left_shoulder", "right_shoulder", "left_elbow",
                                             "right_elbow", "left_wrist", "right_wrist"))
SCORE = 0.3


def chunk_bounds(num_frames: int, chunk: int, count: int) -> list[tuple[int, int]]:
    """[start, stop) of chunks 1..count that fit in ``num_frames`` (chunk c starts at (chunk-1)(c-1))."""
    bounds = []
    for c in range(count):
        start = (chunk - 1) * c
        if start + chunk > num_frames:
            break
        bounds.append((start, start + chunk))
    return bounds


def found_share(keypoints: np.ndarray) -> float:
    """Share of (frame, upper-body point) pairs with score >= 0.3; keypoints (F, 133, 3)."""
    return float((keypoints[:, UPPER_BODY, 2] >= SCORE).mean())


def drift(frames: np.ndarray, first: np.ndarray) -> float:
    """Mean |mean frame of ``frames`` (F, H, W, 3) - ``first`` (H, W, 3)| in uint8 levels."""
    return float(np.abs(frames.astype(np.float64).mean(axis=0) - first.astype(np.float64)).mean())


JUMP = 3.0   # pixels: a move between two frames this large is a jump, not a gesture at 25 fps


def point_steps(keypoints: np.ndarray) -> np.ndarray:
    """The distances (pixels) each upper-body point moves between consecutive frames, over the pairs
    where it is found (score >= 0.3) in both frames; keypoints (F, 133, 3) -> (n,)."""
    points = keypoints[:, UPPER_BODY]
    both = (points[1:, :, 2] >= SCORE) & (points[:-1, :, 2] >= SCORE)
    return np.linalg.norm(np.diff(points[:, :, :2].astype(np.float64), axis=0), axis=-1)[both]


WRISTS = tuple(wb.index_of(n) for n in ("left_wrist", "right_wrist"))


def wrist_spread(keypoints: np.ndarray) -> float:
    """How far the wrists travel in one video: for each wrist found (score >= 0.3) in at least 2 frames,
    sqrt(var(x) + var(y)) over those frames (pixels), averaged over such wrists; NaN when there is none.
    keypoints (F, 133, 3). A still arm has 0; flicker adds a little, a gesture a lot."""
    spreads = []
    for point in WRISTS:
        found = keypoints[:, point, 2] >= SCORE
        if found.sum() >= 2:
            xy = keypoints[found, point, :2].astype(np.float64)
            spreads.append(float(np.sqrt(xy.var(axis=0).sum())))
    return float(np.mean(spreads)) if spreads else float("nan")


def flicker_summary(steps: list[np.ndarray]) -> tuple[float, float, int]:
    """(median step in pixels, share of steps over ``JUMP``, number of steps) of the ``point_steps`` of
    a method's videos, pooled; NaNs when no point is found in two consecutive frames."""
    pooled = np.concatenate(steps) if steps else np.zeros(0)
    if pooled.size == 0:
        return float("nan"), float("nan"), 0
    return float(np.median(pooled)), float((pooled > JUMP).mean()), int(pooled.size)


def spread_summary(spreads: list[float]) -> tuple[float, int]:
    """(mean ``wrist_spread`` over the videos that have one, how many have one); NaN and 0 for none."""
    kept = [s for s in spreads if np.isfinite(s)]
    return (float(np.mean(kept)), len(kept)) if kept else (float("nan"), 0)


def video_rows(path: Path, extractor, chunk: int, count: int, steps: list[np.ndarray] | None = None,
               spreads: list[float] | None = None) -> list[tuple[float, float]]:
    frames = read_video(path)
    keypoints = extractor(frames)
    if steps is not None:                    # the flicker and the reach, from the same extraction
        steps.append(point_steps(keypoints))
    if spreads is not None:
        spreads.append(wrist_spread(keypoints))
    return [(found_share(keypoints[a:b]), drift(frames[a:b], frames[0]))
            for a, b in chunk_bounds(len(frames), chunk, count)]


def method_table(folder: Path, chunk: int, count: int, steps: list[np.ndarray] | None = None,
                 spreads: list[float] | None = None) -> list[tuple[float, float, int]]:
    """Per chunk: (mean found, mean drift, number of videos) over the videos of one method folder;
    each video's ``point_steps`` appended to ``steps`` and its ``wrist_spread`` to ``spreads`` when
    they are given."""
    extractor = ToyMarkerPose()
    per_chunk: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    for path in sorted(folder.glob("*/*.mp4")):
        for index, row in enumerate(video_rows(path, extractor, chunk, count, steps, spreads)):
            per_chunk[index].append(row)
    return [(float(np.mean([r[0] for r in rows])), float(np.mean([r[1] for r in rows])), len(rows))
            for rows in per_chunk if rows]


def markdown(tables: dict[str, list[tuple[float, float, int]]], count: int) -> str:
    width = max((len(t) for t in tables.values()), default=0)
    lines = ["| method: found / drift | " + " | ".join(f"chunk {c + 1}" for c in range(min(width, count))) + " |",
             "|---|" + "---|" * min(width, count)]
    for name, rows in tables.items():
        cells = [f"{f:.2f} / {d:.1f} (n={n})" for f, d, n in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an imac-bench run folder")
    parser.add_argument("--methods", default="imac,mya,s2g,gt", help="method folders, comma-separated")
    parser.add_argument("--chunks", type=int_in(1, 10_000), default=6, help="chunks per video")
    parser.add_argument("--chunk", type=int_in(2, 10_000), default=16, help="frames per chunk (IMAC's video.frames)")
    parser.add_argument("--flicker", action="store_true",
                        help="also the found points' frame-to-frame steps: median and share over 3 px")
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        parser.error(f"{args.run}: no such run folder")
    tables, flickers = {}, {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        folder = args.run / name
        if not folder.is_dir():
            print(f"{folder}: no such method folder, skipped", file=sys.stderr)
            continue
        steps: list[np.ndarray] | None = [] if args.flicker else None
        spreads: list[float] | None = [] if args.flicker else None
        tables[name] = method_table(folder, args.chunk, args.chunks, steps, spreads)
        if steps is not None:
            flickers[name] = (*flicker_summary(steps), spread_summary(spreads))
    if not tables:
        parser.error(f"{args.run}: none of the method folders {args.methods} is there")
    print(markdown(tables, args.chunks))
    if args.flicker:
        print(f"\n| method | median step of a found point (px) | steps over {JUMP:g} px | steps "
              "| wrist spread (px) |\n|---|---|---|---|---|")
        for name, (median, jumps, count, (spread, videos)) in flickers.items():
            print(f"| {name} | {median:.3f} | {jumps:.3f} | {count} | {spread:.2f} (n={videos}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
