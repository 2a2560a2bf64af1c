"""Spreading per-clip work over the processes of a launch (``accelerate launch``, ``torchrun``).

Nothing here is a distribution engine: the processes are started by ``accelerate launch`` (or
``torch.distributed.run``, which ``--processes N`` calls on one machine), the process group is set
up by accelerate's ``PartialState`` (gloo on CPUs, NCCL on GPUs), and objects travel with
``accelerate.utils.gather_object`` / ``broadcast_object_list``. This module only fixes the project's
conventions on top of them:

- a list of clips is dealt out round-robin (``shard``: process ``r`` of ``n`` takes items
  ``r, r + n, r + 2n, ...``), so each process gets every speaker and about the same length of video;
- what the processes computed is gathered to every process and put back in the list's order
  (``map``), so the per-clip records a metric sees are in the single-process order and the sums are
  the same sums (an all-reduce of partial sums would change the order of the float additions);
- files are written by the main process (``is_main``); work that writes a shared file (generating
  the toy corpus) runs on the main process first (``main_first``), the others then loading what it
  wrote. Training is data-parallel, on ``metrics.training``'s conventions (every process draws each
  global batch as one process would and trains on its block; the main process writes the model),
  except a model with BatchNorm on CPU processes (no SyncBatchNorm there): the main process trains it.

A process that fails ends with an error; the launcher then stops the others (torchrun's elastic
agent does), so a collective never waits forever on a dead process.
"""

from __future__ import annotations

import atexit
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How long a process waits in a collective for the others. A process can wait while the main one trains a
# shared model (hours on real data), so far longer than torch's 30-minute default; a dead process is
# caught by the launcher, not by this timeout.
COLLECTIVE_TIMEOUT = timedelta(hours=24)

__all__ = ["COLLECTIVE_TIMEOUT", "SINGLE", "Processes", "close_at_exit", "current_processes", "launch_command",
           "relaunch", "without_option"]


@dataclass(frozen=True)
class Processes:
    """Where this process stands in a launch: ``rank`` of ``world`` processes (``local_rank`` on its
    machine). ``Processes()`` is one process alone: every method is then a no-op or the identity."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world or self.local_rank < 0:
            raise ValueError(f"process {self.rank} of {self.world} (local {self.local_rank}): need world >= 1 and "
                             "0 <= rank < world")

    @property
    def is_main(self) -> bool:
        """Whether this is the process that writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items``: ``items[rank::world]``."""
        return list(items[self.rank::self.world])

    def map(self, items: Sequence[T], function: Callable[[T], R]) -> list[R]:
        """``[function(item) for item in items]``, each process computing its ``shard`` and every
        process receiving the whole list in the order of ``items``. A collective: every process must
        call it with the same ``items`` (an exception in ``function`` ends this process)."""
        mine = [function(item) for item in self.shard(items)]
        if not self.distributed:
            return mine
        shares = self.gather_lists(mine)
        merged: list[Any] = [None] * len(items)
        for rank, share in enumerate(shares):
            merged[rank::self.world] = share
        return merged

    def gather_lists(self, mine: list) -> list[list]:
        """Every process's ``mine``, indexed by rank, on every process (``accelerate.utils.gather_object``)."""
        if not self.distributed:
            return [mine]
        from accelerate.utils import gather_object

        tagged = gather_object([(self.rank, mine)])
        by_rank = dict(tagged)
        return [by_rank[rank] for rank in range(self.world)]

    def broadcast(self, value: T) -> T:
        """The main process's ``value`` on every process (``accelerate.utils.broadcast_object_list``)."""
        if not self.distributed:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def end_together(self) -> None:
        """The last collective of a launched program's work: every process waits here until the main
        one has finished its own part (writing and scoring alone). A process that ends while another
        still uses the gloo group can abort as it exits ("terminate called without an active
        exception", SIGABRT, seen in CI after a launched benchmark's last line of work), so the
        processes end together; the group is then destroyed at exit (``close_at_exit``)."""
        self.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the block first, then the others (which then find what it wrote)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


SINGLE = Processes()


def current_processes() -> Processes:
    """The processes of the launch this process belongs to, with the process group set up through
    accelerate (``PartialState``); ``SINGLE`` when the process was not launched as one of several
    (no ``WORLD_SIZE`` above 1 in the environment)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return SINGLE
    import torch
    from accelerate import PartialState

    # accelerate takes a launch without GPUs for a multi-CPU one (gloo) only when told it is on CPUs
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    state = PartialState(cpu=cpu, timeout=COLLECTIVE_TIMEOUT)
    close_at_exit()
    return Processes(state.process_index, state.num_processes, state.local_process_index)


@functools.cache
def close_at_exit() -> None:
    """Have ``close_process_group`` run when the program ends (registered once per process)."""
    atexit.register(close_process_group)


def close_process_group() -> None:
    """Destroy torch.distributed's process group, if any (registered to run when a launched program
    ends). A gloo group left to the interpreter's teardown can abort the process as it exits:
    "terminate called without an active exception", SIGABRT (seen in CI on a launched benchmark's
    second process after its last line of work)."""
    dist = sys.modules.get("torch.distributed")      # never imported: no group (and no import at exit)
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch_command(module: str, argv: Sequence[str], processes: int) -> list[str]:
    """The command that runs ``python -m module argv`` as ``processes`` processes on this machine:
    ``torch.distributed.run --standalone`` (what ``accelerate launch --multi_gpu`` uses too)."""
    if processes < 1:
        raise ValueError(f"--processes {processes}: need 1 or more")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", module, *argv]


def relaunch(module: str, argv: Sequence[str], processes: int) -> int:
    """Run ``python -m module argv`` as ``processes`` processes on this machine and wait; returns the
    exit status (non-zero when a process failed: the launcher stops the others then)."""
    command = launch_command(module, argv, processes)
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise ValueError("--processes inside a launch: give either --processes N or accelerate launch / torchrun")
    return subprocess.call(command)


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (what a relaunched process must not see again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out

