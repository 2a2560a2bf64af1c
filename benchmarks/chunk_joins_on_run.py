"""The chunk joins and drift of every row of a run folder under the current protocol, from its videos
(a quick look without re-scoring the whole run): per row, the mean over its clips of Join-A, Join-M
and Drift, and the clips where a period was found (with the period and offset).

    .venv/bin/python benchmarks/chunk_joins_on_run.py --run runs/toy-ci [--protocol imac-bench]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from metrics.chunk_joins import clip_joins
from metrics.cli import existing_folder, preset_names
from metrics.dataset import Dataset
from metrics.io.video import read_video
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import get_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=existing_folder, required=True, help="an imac-bench run folder")
    parser.add_argument("--protocol", type=preset_names, default="imac-bench", help="metric protocol (presets '+'-joined)")
    args = parser.parse_args()
    protocol = get_protocol(args.protocol)
    data = args.run / "data"
    if not (data / "manifest.jsonl").is_file():
        parser.error(f"{args.run}: not an imac-bench run folder (no data/manifest.jsonl)")
    clips = sorted(Dataset.open(data, level="files").split("test"), key=lambda c: c.key)
    rows = sorted(p.name for p in args.run.iterdir() if p.is_dir() and p.name not in ("data", "work", "cache", "plots"))
    pose = ToyMarkerPose()
    print(protocol.label)
    for row in rows:
        values, found = [], []
        for clip in clips:
            video = args.run / row / clip.identity / f"{clip.clip_id}.mp4"
            if not video.is_file():
                continue
            frames = read_video(video)
            joins = clip_joins(frames, pose(frames), clip.first_frame(), clip.fps, {}, protocol)
            values.append((joins["ratio_appearance"], joins["ratio_motion"], joins["drift"]))
            if joins["period"]:
                found.append(f"{clip.label}: period {joins['period']} offset {joins['offset']}")
        if values:
            mean = np.nanmean(np.array(values, dtype=float), axis=0)
            print(f"{row:<10} Join-A {mean[0]:.3f}  Join-M {mean[1]:.3f}  Drift {mean[2]:.4f}  "
                  f"({len(values)} clips; periods: {'; '.join(found) or 'none'})")


if __name__ == "__main__":
    main()
