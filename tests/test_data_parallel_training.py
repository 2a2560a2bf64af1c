"""The trainers the bench triggers, data-parallel on 2 CPU processes (accelerate launch --multi_gpu, gloo,
1 thread each) against one process with the same global batch: the tiny VAE, the keypoint motion model
of S2G/MYA and MYA's generator give one process's losses to 1e-5 relative (DDP sums gradients in
another order, so not bit for bit); the FGD skeleton autoencoder (BatchNorm, no SyncBatchNorm on CPUs)
is trained by the main process alone, bit for bit one process's; only the main process writes model
folders. The launch runs the four trainers once (tests/data_parallel_worker.py); each test reads its part.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from metrics.distributed import SINGLE, Processes
from metrics.training import DataParallel
from tests.data_parallel_worker import train_all
from tests.imac_fixtures import make_corpus, make_vae

# launches processes: one xdist worker runs these one after another (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("launches")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 85


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The four trainers in this process (1 torch and BLAS thread, as each launched process) and on 2
    launched processes: {"one": result, "two": [result of rank 0, of rank 1], "out": folder of the launch}."""
    root = tmp_path_factory.mktemp("data_parallel")
    make_corpus(root / "corpus")
    make_vae(root / "vae")
    out = root / "two"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("WORLD_SIZE", None)
    launched = subprocess.Popen(
        # --multi_gpu starts torch.distributed's processes; with no GPU visible they run on the CPU (gloo)
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), str(REPO / "tests" / "data_parallel_worker.py"), str(root), str(out)],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            one = train_all(root, root / "one", SINGLE)
    finally:
        torch.set_num_threads(threads)
    _, stderr = launched.communicate(timeout=TIMEOUT)
    assert launched.returncode == 0, stderr[-3000:]
    two = [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    return {"one": one, "two": two, "out": out}


@pytest.mark.parametrize("trainer", ["vae", "keypoint_motion", "mya"])
def test_two_processes_train_with_the_losses_of_one(runs, trainer):
    one, two = runs["one"][trainer], runs["two"]
    assert two[0]["world"] == 2
    assert len(one["losses"]) == 3
    for rank in (0, 1):             # every process logs the global batch's loss
        assert two[rank][trainer]["losses"] == pytest.approx(one["losses"], rel=1e-5)
    if trainer == "vae":
        for term in ("reconstruction", "kl"):
            assert two[0][trainer][term] == pytest.approx(one[term], rel=1e-5)
    else:                           # DDP keeps the processes' weights identical
        assert two[0][trainer]["weights"] == two[1][trainer]["weights"]


def test_the_skeleton_autoencoder_is_trained_by_the_main_process_alone_on_cpus(runs):
    """BatchNorm's statistics would be the block's on each process; torch's SyncBatchNorm needs GPUs."""
    one, two = runs["one"]["skeleton_ae"], runs["two"]
    assert two[0]["skeleton_ae"] == two[1]["skeleton_ae"] == one     # the same checkpoint, bit for bit


def test_only_the_main_process_writes_model_folders(runs):
    two, out = runs["two"], runs["out"]
    assert sorted(two[0]["writes"]) == ["save", "save_autoencoder", "save_autoencoder", "save_generator"]
    assert two[1]["writes"] == []
    for folder in ("vae", "keypoint_motion", "mya/generator", "skeleton_ae"):
        assert (out / folder).is_dir(), folder
    summary = json.loads((out / "vae" / "training.json").read_text())
    assert summary["settings"]["processes"] == 2
    assert [p.name for p in out.rglob(".*")] == []      # no second writer's leftovers


def test_blocks_and_weights_of_a_global_batch():
    """Process r of W takes rows [r B / W, (r + 1) B / W); its loss weight W n_r / B makes the mean of
    the W weighted block means the global mean, blocks of unequal size included."""
    values = torch.arange(7, dtype=torch.float64) ** 2
    for world in (1, 2, 3, 7):
        parts = [DataParallel(Processes(rank, world)) for rank in range(world)]
        rows = [p.part(len(values)) for p in parts]
        assert torch.cat([values[r] for r in rows]).tolist() == values.tolist()
        weighted = [p.weight(len(values)) * values[r].mean() for p, r in zip(parts, rows)]
        assert float(sum(weighted) / world) == pytest.approx(float(values.mean()), rel=1e-12)
    with pytest.raises(ValueError, match="smaller than the 3 processes"):
        DataParallel(Processes(0, 3)).check_batch(2)
    assert DataParallel(SINGLE).weight(5) == 1.0


def test_batchnorm_cannot_sync_on_cpu_processes():
    from torch import nn

    from metrics.skeleton_ae import AutoencoderConfig, train_autoencoder

    parallel = DataParallel(Processes(0, 2))
    assert not parallel.can_sync_batchnorm()
    assert DataParallel(Processes(0, 2), "cuda").device == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="needs GPUs"):
        parallel.wrap(nn.BatchNorm1d(3), sync_batchnorm=True)
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        train_autoencoder(torch.zeros(4, 8, 5, 2).numpy(), AutoencoderConfig(points=5, window=8), steps=1,
                          processes=Processes(0, 2))
