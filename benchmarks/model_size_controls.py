"""What the model's frame size alone costs on FGD: the controls of a run passed through IMAC's size.

    .venv/bin/python benchmarks/model_size_controls.py RUN_DIR [--out DIR] [--sources static,gt]

RUN_DIR is an ``imac-bench run`` folder with IMAC trained in it (``work/imac/stage2/config.yaml``,
``work/vae``, ``work/fgd_autoencoder``). IMAC generates frames at ``data.resolution`` pixels a side
(the tiny config: 64) through its VAE; the benchmark resizes them to the real clip's size (128 for the
toy corpus) before scoring, while the static control repeats the real reference frame at that size.
This script gives each source folder (``static``: the reference frame repeated; ``gt``: the real test
videos) the path IMAC's frames take, without any model in it:

- ``<source>-<N>px``: each frame to N x N (``imac.frames.frames_to_tensor``: centre square, antialiased
  bilinear) and back to the clip's size (the benchmark's ``conform_frames``);
- ``<source>-<N>px-vae``: the same with the run's VAE round trip at N px in between (encoded to the
  posterior's mode, decoded).

and scores every folder with FGD and Diversity under the run's skeleton autoencoder (as ``python -m
metrics compute --real RUN/data --fake DIR --metrics fgd,div --fgd-ae RUN/work/fgd_autoencoder``). A
copy of the reference at the model's size is what a generator that draws no motion at all would score
at best; real motion at that size is what one that draws the real motion would.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runner import conform_frames  # noqa: E402
from metrics.cli import existing_folder  # noqa: E402
from imac.frames import frames_to_tensor, tensor_to_frames  # noqa: E402
from imac.models.video import decode_latents, encode_latents  # noqa: E402
from metrics.dataset import Dataset  # noqa: E402
from metrics.io.video import read_video, write_video  # noqa: E402


def through_model_size(frames: np.ndarray, size: int, vae=None) -> np.ndarray:
    """uint8 frames (F, H, W, 3) -> (F, size, size, 3): resized to ``size`` and, with ``vae``, through its
    round trip (posterior mode)."""
    x = frames_to_tensor(frames, size)
    if vae is not None:
        with torch.no_grad():
            x = decode_latents(vae, encode_latents(vae, x, sample=False))
    return tensor_to_frames(x)


def write_folder(source: Path, target: Path, clips: dict, size: int, vae=None) -> int:
    """Every ``<identity>/<clip>.mp4`` of ``source`` through the model's size into ``target``; returns the
    number of videos written (those already there are kept)."""
    written = 0
    for path in sorted(source.glob("*/*.mp4")):
        out = target / path.parent.name / path.name
        if out.exists():
            continue
        clip = clips[f"{path.parent.name}/{path.stem}"]
        frames, _ = conform_frames(through_model_size(read_video(path), size, vae), clip)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_video(out, frames, clip.fps)
        written += 1
    return written


def score(run: Path, folder: Path) -> dict[str, float]:
    """FGD and Div of ``folder`` against the run's test videos, under the run's autoencoder."""
    from metrics.cli import main
    out = folder.with_suffix(".json")
    code = main(["compute", "--real", str(run / "data"), "--fake", str(folder), "--metrics", "fgd,div",
                 "--fgd-ae", str(run / "work" / "fgd_autoencoder"), "--cache", str(run / "cache"),
                 "--out", str(out)])
    if code != 0:
        raise SystemExit(f"scoring {folder} failed ({code})")
    with out.with_suffix(".csv").open(newline="") as rows:
        return {row["label"]: row for row in csv.DictReader(rows)
                if row["side"] == "generated" and row["scope"] == "all"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=existing_folder, help="an imac-bench run folder")
    parser.add_argument("--out", type=Path, default=None, help="where the folders go (default RUN/work/model_size)")
    parser.add_argument("--sources", default="static,gt", help="method folders of the run to pass through")
    args = parser.parse_args(argv)
    run = args.run
    config = yaml.safe_load((run / "work" / "imac" / "stage2" / "config.yaml").read_text())
    size = int(config["data"]["resolution"])
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(run / "work" / "vae").eval()
    clips = {clip.label: clip for clip in Dataset.open(run / "data").clips}
    out = args.out or run / "work" / "model_size"
    table = []
    for source in args.sources.split(","):
        for suffix, model in ((f"{size}px", None), (f"{size}px-vae", vae)):
            folder = out / f"{source}-{suffix}"
            print(f"{folder}: {write_folder(run / source, folder, clips, size, model)} videos written", flush=True)
            table.append((f"{source}, {suffix}", score(run, folder)))
    print("\n| folder | FGD | Div |\n|---|---|---|")
    for name, rows in table:
        fgd, div = rows["FGD"], rows["Div"]
        print(f"| {name} | {float(fgd['value']):.1f} [{float(fgd['ci_low']):.1f}, {float(fgd['ci_high']):.1f}] | "
              f"{float(div['value']):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
