"""Data-parallel training on the processes of a launch: the pieces every trainer of the project shares.

The trainers of the project (the skeleton autoencoder of FGD here, the tiny VAE in ``imac``, the
baselines' models in ``bench``) each have their own loss and sampling, and one way of running on
several processes, given by ``DataParallel``. Nothing here is a distribution engine: the processes are
started by ``accelerate launch`` / ``torchrun`` and their group set up by accelerate's ``PartialState``
(``metrics.distributed.current_processes``); gradients are averaged by torch's
``DistributedDataParallel`` (what ``Accelerator.prepare`` wraps a model in on several CPUs or GPUs,
used here without an ``Accelerator`` so that the process-wide ``AcceleratorState``, whose mixed
precision is then fixed, stays free for IMAC's own trainer in the same process).

The conventions that make N processes compute the losses of one process (up to the order of float
sums, so to about 1e-6 relative, not bit for bit):

- a step's global batch is drawn exactly as one process draws it: every process runs the same
  generator through the same draws (sample indices, noise, timesteps: for the whole global batch) and
  keeps its contiguous block of rows, ``part(size)`` (process r of W takes rows
  [r B / W, (r + 1) B / W));
- each process's loss is the mean over its block, times ``weight(size)`` = W n_r / B (``scale``), so
  that DDP's mean of the W gradients is the gradient of the global batch's mean loss, blocks of
  unequal size included; a loss that is not a mean over samples (a ratio of sums) is computed with the
  global batch's denominator (the trainer's business);
- what is logged is the mean over the processes of the weighted losses (``mean``): the global
  batch's loss;
- draws that happen inside a module (dropout) cannot take a block of the whole batch's draws; they
  come from each process's own stream (``separate_global_streams``): statistically the same training,
  not the same numbers;
- BatchNorm normalises with its batch's statistics: per process they are those of the block, not of
  the global batch. ``wrap(..., sync_batchnorm=True)`` converts it to torch's ``SyncBatchNorm``,
  which runs on GPUs only; on CPU processes a model with BatchNorm is trained by the main process
  alone (``can_sync_batchnorm`` says which; the skeleton autoencoder does that);
- only the main process writes the model folder; ``write_on_main`` runs the writing there and
  makes the others wait until it is complete.

With one process (``Processes()``) every method is the identity or a no-op: no wrapper, no
collective, no scaling, so a trainer run by one process computes exactly the numbers it computed
before it became data-parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from metrics.distributed import SINGLE, Processes

T = TypeVar("T")

__all__ = ["DataParallel"]


class DataParallel:
    """One process's share of data-parallel training: ``processes`` (its place in the launch) and the
    ``device`` it trains on (a CPU, or its own GPU ``cuda:<local rank>``)."""

    def __init__(self, processes: Processes = SINGLE, device: str | torch.device = "cpu") -> None:
        self.processes = processes
        self.device = torch.device(device)
        if processes.distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", processes.local_rank)

    @property
    def distributed(self) -> bool:
        return self.processes.distributed

    @property
    def is_main(self) -> bool:
        return self.processes.is_main

    @property
    def world(self) -> int:
        return self.processes.world

    # -- the global batch ----------------------------------------------------------------------------

    def check_batch(self, size: int, what: str = "batch_size") -> None:
        """A global batch must give every process at least one sample."""
        if size < self.world:
            raise ValueError(f"{what} {size} is smaller than the {self.world} processes of the launch: every "
                             "process needs at least one sample of each global batch")

    def part(self, size: int) -> slice:
        """This process's rows of a global batch of ``size``: [r size / W, (r + 1) size / W)."""
        rank, world = self.processes.rank, self.world
        return slice(rank * size // world, (rank + 1) * size // world)

    def weight(self, size: int) -> float:
        """W n_r / size: the factor of this process's mean loss that makes DDP's mean gradient the
        global batch's (1 for one process)."""
        part = self.part(size)
        return self.world * (part.stop - part.start) / size

    def scale(self, loss: torch.Tensor, size: int) -> torch.Tensor:
        """``loss`` (this process's mean over its rows of a global batch of ``size``) times ``weight``;
        ``loss`` itself for one process."""
        if not self.distributed:
            return loss
        return loss * self.weight(size)

    # -- the model -----------------------------------------------------------------------------------

    def can_sync_batchnorm(self) -> bool:
        """Whether BatchNorm can use the global batch's statistics here (torch's SyncBatchNorm: GPUs)."""
        return not self.distributed or self.device.type == "cuda"

    def wrap(self, module: nn.Module, sync_batchnorm: bool = False,
             find_unused_parameters: bool = False) -> nn.Module:
        """``module`` for training: itself for one process, else in torch's DistributedDataParallel
        (gradients averaged over the processes in ``backward``; the main process's parameters and
        buffers broadcast to the others). Its ``forward`` must compute the loss: DDP synchronises only
        what runs through the wrapper's forward. ``sync_batchnorm`` converts BatchNorm layers to
        SyncBatchNorm (GPUs only; ValueError on CPU processes)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if sync_batchnorm:
            if not self.can_sync_batchnorm():
                raise ValueError("BatchNorm with the global batch's statistics needs GPUs (torch's SyncBatchNorm); "
                                 "on CPU processes train the model on the main process alone")
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)

    def separate_global_streams(self, seed: int) -> None:
        """Give each process other than the main one its own stream of torch's global generator, seeded
        from (seed, rank), for the draws made inside modules (dropout masks); the main process keeps
        the stream of one process. No-op for one process."""
        if self.distributed and not self.is_main:
            stream = np.random.default_rng((int(seed), self.processes.rank, 7)).integers(0, 2 ** 62)
            torch.manual_seed(int(stream))

    # -- collectives ---------------------------------------------------------------------------------

    def mean(self, *values: torch.Tensor | float) -> list[float]:
        """Each value's mean over the processes (one all-reduce for all); ``float(value)`` for one process."""
        if not self.distributed:
            return [float(value.item() if isinstance(value, torch.Tensor) else value) for value in values]
        from accelerate.utils import reduce

        stacked = torch.tensor([float(v.detach().item() if isinstance(v, torch.Tensor) else v) for v in values],
                               dtype=torch.float64, device=self.device)
        return [float(v) for v in reduce(stacked, reduction="mean").cpu()]

    def write_on_main(self, write: Callable[[], T]) -> T:
        """``write()`` on the main process only (it writes the model folder); the others wait until it
        returns and receive its result."""
        result = write() if self.is_main else None
        return self.processes.broadcast(result)

    def barrier(self) -> None:
        self.processes.barrier()
