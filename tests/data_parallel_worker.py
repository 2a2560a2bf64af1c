"""The trainers the bench triggers, each on micro settings, for tests/test_data_parallel_training.py.

``train_all(root, out, processes)`` trains the tiny VAE, the keypoint motion model (S2G/MYA), MYA's
generator and the FGD skeleton autoencoder on the fixture corpus in ``root`` and returns their per-step
losses and model hashes. The test calls it in its own process (the reference) and launches this file
as a script on 2 processes (``accelerate launch --multi_gpu``), which writes what each process got to
``out/result-<rank>.json``, with the names of the model-writing functions that ran on that process.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch

# Small enough that one launch of the four trainers takes seconds. lr 1e-3, the trainers' own scale (the
# tiny VAE's and MYA's default; the keypoint model's is 2e-3): the losses drop by 7-54 % over the 3 steps
# and 2 processes still agree with one to 2.5e-7 relative (measured), far inside the test's 1e-5.
LR = 1e-3
VAE = {"resolution": 32, "steps": 3, "batch_size": 4, "lr": LR, "reconstruction": "l1", "chroma_weight": 100.0,
       "log_every": 1, "seed": 3}
KEYPOINT_MOTION = {"steps": 3, "window": 32, "batch_size": 4, "width": 32, "heads": 2, "layers": 1, "audio_width": 32,
                   "mfcc_width": 16, "sample_steps": 2, "lr": LR, "dropout": 0.0}
MYA = {"resolution": 32, "unet": {"block_out_channels": [16, 16], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                                  "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 16,
                                  "attention_head_dim": 8, "norm_num_groups": 8},
       "pose_widths": [8, 8], "pose_features": 4, "steps": 3, "batch_size": 4, "warmup_steps": 1, "lr": LR,
       "sample_steps": 2, "window": 8, "overlap": 3}
SKELETON_STEPS = 4


def state_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_all(root: Path, out: Path, processes) -> dict:

    import bench.baselines.pose_guided as pg
    import bench.baselines.pose_guided_training as pgt
    from bench.baselines.keypoint_motion import KeypointMotion
    from bench.methods.base import BenchContext
    from bench.methods.mya import load_vae
    from imac.training.autoencoder import train_autoencoder
    from metrics.fgd_training import train_fgd_autoencoder
    from metrics.protocol import Protocol
    from tests.imac_fixtures import SMALL_VAE

    corpus, fixture_vae = root / "corpus", root / "vae"
    result: dict = {"seconds": {}}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        result["seconds"][name] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()

    lap("imports")
    summary = train_autoencoder(corpus, out / "vae", vae_kwargs=SMALL_VAE, progress=False, processes=processes, **VAE)
    result["vae"] = {"losses": [point["loss"] for point in summary["loss_curve"]],
                     "reconstruction": [point["reconstruction"] for point in summary["loss_curve"]],
                     "kl": [point["kl"] for point in summary["loss_curve"]]}

    lap("vae")

    context = BenchContext(data_root=corpus, work_dir=out / "s2g", options=dict(KEYPOINT_MOTION), progress=False,
                           processes=processes)
    motion = KeypointMotion.train_or_load(context, KEYPOINT_MOTION, out / "keypoint_motion")
    result["keypoint_motion"] = {"losses": motion.training_losses, "weights": state_hash(motion.motion.state_dict())}

    lap("keypoint_motion")

    context = BenchContext(data_root=corpus, work_dir=out / "mya", options=dict(MYA), progress=False,
                           shared_vae=lambda: fixture_vae, processes=processes)
    options = pg.MYAOptions.from_dict(MYA)
    losses = []
    original = pgt.train_generator
    pgt.train_generator = lambda *args, **kwargs: losses.extend(original(*args, **kwargs)) or losses
    try:
        model, _ = pgt.train_or_load_generator(context, options, load_vae(context), torch.device("cpu"))
    finally:
        pgt.train_generator = original
    result["mya"] = {"losses": losses, "weights": state_hash(model.state_dict())}

    lap("mya")

    checkpoint, info = train_fgd_autoencoder(corpus, out / "skeleton_ae", Protocol(), keypoints="dataset",
                                             steps=SKELETON_STEPS, hidden=16, latent=8, processes=processes)
    result["skeleton_ae"] = {"checkpoint": checkpoint, "first_l1": info["first_l1"], "final_l1": info["final_l1"]}
    lap("skeleton_ae")
    return result


def _record_writes(writes: list[str]) -> None:
    """Note the name of every model-writing function that runs in this process."""
    import bench.baselines.pose_guided_training as pgt
    from bench.baselines import keypoint_motion
    from imac.training import autoencoder
    from metrics import fgd_training

    def recording(owner, name: str) -> None:
        original = getattr(owner, name)

        def write(*args, **kwargs):
            writes.append(name)
            return original(*args, **kwargs)

        setattr(owner, name, write)

    recording(autoencoder, "save_autoencoder")
    recording(keypoint_motion.KeypointMotion, "save")
    recording(pgt, "save_generator")
    recording(fgd_training, "save_autoencoder")


if __name__ == "__main__":
    began = time.perf_counter()
    from metrics.distributed import current_processes

    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    processes = current_processes()
    writes: list[str] = []
    _record_writes(writes)
    result = train_all(root, out, processes)
    result["writes"] = writes
    result["world"] = processes.world
    result["seconds"]["process"] = round(time.perf_counter() - began, 2)
    (out / f"result-{processes.rank}.json").write_text(json.dumps(result))
    processes.end_together()           # as the project's launched programs end: none while another works
