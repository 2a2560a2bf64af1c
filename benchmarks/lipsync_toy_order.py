"""Does a SyncNet stand-in trained on the toy corpus order the controls? Sync-C* / Sync-D* of the
test split for real audio, shuffled audio and a static frame, through the whole pipeline.

    .venv/bin/python benchmarks/lipsync_toy_order.py TOY_DIR [--model FILE] [--steps 200] [--out FILE]

TOY_DIR is a toy corpus (``imac-bench data toy --out TOY_DIR``). Without ``--model`` a stand-in is
trained on its train split (``metrics.lipsync_training.train_syncnet_standin``, default settings)
and saved to ``--out`` (default ``TOY_DIR/syncnet_standin.model``). Then for every test clip, in
identity/clip order as ``bench.methods.controls``:

- real: the clip's video and its own audio;
- shuffled: the clip's video with the NEXT test clip's audio (tiled or cut to length);
- static: the clip's frame 0 repeated for its length, with its own audio;

each through ``metrics.lipsync.lip_sync_clip`` (MTCNN, ``TOY_SETTINGS``). Prints one markdown row
per control (mean Sync-C*, Sync-D*, clips scored, frames without a face, offsets found) and each
clip's Sync-C*.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from metrics.dataset import find_clips
from metrics.faces import make_face_detector
from metrics.io.video import read_video
from metrics.lipsync import AUDIO_RATE, TOY_SETTINGS, lip_sync_clip, reduce_lip_sync
from metrics.lipsync_training import SyncTrainingConfig, train_syncnet_standin
from metrics.syncnet import load_syncnet


def fit(audio: np.ndarray, length: int) -> np.ndarray:
    return np.resize(audio, length) if len(audio) < length else audio[:length]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("toy_dir", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=SyncTrainingConfig().steps)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    model = args.model
    if model is None:
        model = args.out or args.toy_dir / "syncnet_standin.model"
        train_syncnet_standin(args.toy_dir, model, SyncTrainingConfig(steps=args.steps),
                              progress=lambda m: print(f"{time.time() - start:7.1f}s {m}", flush=True))
    syncnet = load_syncnet(model)
    print(f"model {model} ({syncnet.weights_id}, published: {syncnet.published})")
    clips = sorted(find_clips(args.toy_dir, split="test"), key=lambda c: (c.identity, c.clip_id))
    detector = make_face_detector("mtcnn", min_face_fraction=TOY_SETTINGS.face_min_fraction)
    data = [(read_video(c.video), c.load_audio(AUDIO_RATE), float(c.fps or 25)) for c in clips]
    rows = {"real": [], "shuffled": [], "static": []}
    for k, (frames, audio, fps) in enumerate(data):
        other = data[(k + 1) % len(data)][1]
        rows["real"].append(lip_sync_clip(frames, fps, audio, syncnet, detector, TOY_SETTINGS))
        rows["shuffled"].append(lip_sync_clip(frames, fps, fit(other, len(audio)), syncnet, detector, TOY_SETTINGS))
        still = np.broadcast_to(frames[0], frames.shape).copy()
        rows["static"].append(lip_sync_clip(still, fps, audio, syncnet, detector, TOY_SETTINGS))
    print("\n| control | Sync-C* | Sync-D* | clips scored | frames without a face | offsets found (offset: clips) |")
    print("|---|---|---|---|---|---|")
    for name, records in rows.items():
        s = reduce_lip_sync(records)
        print(f"| {name} | {s.sync_c:.3f} | {s.sync_d:.3f} | {s.scored}/{s.clips} | {s.detection_failures} | {s.offsets} |")
    for name, records in rows.items():
        print(f"{name:9s} Sync-C* per clip: {[round(r.confidence, 3) for r in records]}")
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
