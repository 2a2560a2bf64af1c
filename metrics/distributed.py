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
agent does), so a collective never waits forever on a dead process. A refusal of the main process in
the work it does first (``main_first``: a busy folder, a run folder of other settings) is told to the
others, which then end without a word of their own (``MainProcessFailed``); a collective whose peer
has gone away raises ``PeerProcessEnded``. ``relaunch`` ends with the main process's exit status and
one line for a process killed by a signal, instead of the launcher's traceback, and the processes it
starts end with it (``follow_launcher``).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

from metrics.process_guard import end_with_parent

T = TypeVar("T")
R = TypeVar("R")

# How long a process waits in a collective for the others. A process can wait while the main one trains a
# shared model (hours on real data), so far longer than torch's 30-minute default; a dead process is
# caught by the launcher, not by this timeout.
COLLECTIVE_TIMEOUT = timedelta(hours=24)

__all__ = ["COLLECTIVE_TIMEOUT", "LAUNCHER_ENV", "PEER_ENDED_STATUS", "SINGLE", "MainProcessFailed", "PeerProcessEnded",
           "Processes", "STOP_SIGNALS", "StopRequests", "Stopped", "close_at_exit",
           "current_processes", "follow_launcher", "launch_command", "launch_place", "one_process_argv", "peer_gone",
           "relaunch", "relaunched", "stop_on_signals", "stopped_anywhere", "without_option", "work_done"]


class MainProcessFailed(Exception):
    """Raised on the other processes of a launch when the main one failed in the work it does first
    (``Processes.main_first``); the main process reports the error itself, so this one says nothing."""


class PeerProcessEnded(RuntimeError):
    """A collective of ``Processes`` failed because another process of the launch went away (it ended
    with an error or was killed); that process's error, or the launcher, tells why."""


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

        with _collective("gather"):
            tagged = gather_object([(self.rank, mine)])
        by_rank = dict(tagged)
        return [by_rank[rank] for rank in range(self.world)]

    def broadcast(self, value: T) -> T:
        """The main process's ``value`` on every process (``accelerate.utils.broadcast_object_list``)."""
        if not self.distributed:
            return value
        from accelerate.utils import broadcast_object_list

        with _collective("broadcast"):
            return broadcast_object_list([value], from_process=0)[0]

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            import torch.distributed as dist

            with _collective("barrier"):
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
        """The main process runs the block first, then the others (which then find what it wrote).

        When the block fails on the main process (a refusal, an interruption), the others are told and
        raise ``MainProcessFailed`` instead of running it: one error, reported by the main process. The
        block must hold no collective that the waiting processes would have to join."""
        if not self.distributed:
            yield
            return
        if not self.is_main:
            failure = self.broadcast(None)
            if failure is not None:
                raise MainProcessFailed(f"the main process failed: {failure}")
            yield
            return
        try:
            yield
        except BaseException as error:
            try:
                self.broadcast(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
            except PeerProcessEnded:
                pass                     # no one left to tell
            raise
        self.broadcast(None)


SINGLE = Processes()


# what gloo says when the process at the other end of a connection has gone (its errors are plain RuntimeErrors)
PEER_GONE = ("Connection closed by peer", "Connection reset by peer")


def peer_gone(error: BaseException) -> bool:
    """Whether ``error`` is a collective's (``torch.distributed.DistError``: NCCL, the store) or gloo's
    failure because another process of the launch went away, e.g. in DDP's gradient all-reduce."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and isinstance(error, getattr(dist, "DistError", ())):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in PEER_GONE)


@contextmanager
def _collective(name: str) -> Iterator[None]:
    """Turn a collective's failure because a peer went away (gloo: "Connection closed by peer", NCCL:
    a ``DistBackendError``) into ``PeerProcessEnded``, which the command line tells in one line."""
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, PeerProcessEnded):
            raise
        first = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise PeerProcessEnded(f"another process of the launch ended while this one waited for it in a {name} "
                               f"({first[:200]})") from error


def launch_place() -> tuple[int, int] | None:
    """``(rank, world)`` of this process when a launcher started it as one of several (``RANK`` and
    ``WORLD_SIZE`` in the environment), else None; reads the environment only (no process group)."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return None
    return (rank, world) if world > 1 else None


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


def relaunch(module: str, argv: Sequence[str], processes: int, prog: str | None = None) -> int:
    """Run ``python -m module argv`` as ``processes`` processes on this machine (``launch_command``'s
    torchrun, run in this process) and wait; returns the exit status: 0, else the main process's (that
    of the first process to fail when the main one did not). The processes report their own errors; a
    process killed by a signal (out of memory: SIGKILL) is told in one line, prefixed ``prog``. The
    launcher's own lines (its traceback of a failed process) are not shown."""
    command = launch_command(module, argv, processes)
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise ValueError("--processes inside a launch: give either --processes N or accelerate launch / torchrun")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # the launcher's per-process log folders go with the launch (left to it, one torchelastic_* per launch
    # stays in the temporary folder for good)
    with tempfile.TemporaryDirectory(prefix="torchelastic_") as logs, _quiet_launcher(), _marked_launch():
        arguments = parse_args([f"--log-dir={logs}", *command[command.index("torch.distributed.run") + 1:]])
        try:
            run(arguments)
        except ChildFailedError as error:
            return _launch_status(error.failures, processes, prog or module)
        except SignalException as error:     # the launcher was interrupted (Ctrl-C, a job's SIGTERM)
            if int(error.sigval) != signal.SIGINT:            # (Ctrl-C reaches the processes, which say it)
                print(f"{prog or module}: stopped by {_signal_name(int(error.sigval))}; finished work is kept, "
                      "rerun the same command to resume", file=sys.stderr)
            return 128 + int(error.sigval)
    return 0


# The ``extra`` of a log record that every process of a launch makes alike (about a weights file, or the
# inputs all of them read): only the main process's is shown (``told_by_main``).
SAME_IN_EVERY_PROCESS = {"same_in_every_process": True}


def _not_same_in_every_process(record: logging.LogRecord) -> bool:
    return not getattr(record, "same_in_every_process", False)


def told_by_main(handlers: Sequence[logging.Handler]) -> None:
    """In a process of a launch other than the main one, ``handlers`` drop the records marked
    ``SAME_IN_EVERY_PROCESS``: the main process shows them, once for the launch."""
    place = launch_place()
    if place is None or place[0] == 0:
        return
    for handler in handlers:
        handler.addFilter(_not_same_in_every_process)


# Set by ``relaunch`` for the processes it starts: the launcher's pid. They end when it ends
# (``follow_launcher``), and leave the telling of a failure to it (``relaunched``).
LAUNCHER_ENV = "IMAC_LAUNCHER_PID"

# The exit status of a process that stopped because another one of a ``relaunch`` ended: not a cause.
PEER_ENDED_STATUS = 75


# What a launcher puts in the environment of its processes (torchrun's agent, ``accelerate launch``,
# ``relaunch``), beyond settings such as OMP_NUM_THREADS: a command a process runs is not of the launch.
_LAUNCH_VARIABLES = frozenset({"RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "ROLE_NAME", "WORLD_SIZE",
                               "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "MASTER_ADDR",
                               "MASTER_PORT", LAUNCHER_ENV})
_LAUNCH_PREFIXES = ("TORCHELASTIC_", "ACCELERATE_", "FSDP_")


def outside_launch(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a command this process starts: in a process of a launch (``launch_place``), less
    the launcher's variables (rank, world size, rendezvous address, torchrun's and accelerate's settings),
    so that a command using torch.distributed or accelerate is not taken for one more process of this
    launch (it would wait for a rendezvous that never comes); outside a launch, unchanged."""
    if launch_place() is None:
        return dict(environ)
    return {key: value for key, value in environ.items()
            if key not in _LAUNCH_VARIABLES and not key.startswith(_LAUNCH_PREFIXES)}


def local_rank() -> int:
    """This process's rank on its machine in a launch (``LOCAL_RANK``), 0 outside one."""
    value = os.environ.get("LOCAL_RANK", "0")
    return int(value) if launch_place() is not None and value.isdigit() else 0


@contextmanager
def _marked_launch() -> Iterator[None]:
    """``LAUNCHER_ENV`` in the environment the launched processes inherit, for the launch only."""
    before = os.environ.get(LAUNCHER_ENV)
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LAUNCHER_ENV, None)
        else:
            os.environ[LAUNCHER_ENV] = before


def relaunched() -> bool:
    """Whether this process is one of a ``relaunch`` (``--processes N``), whose launcher tells failures."""
    return launch_place() is not None and bool(os.environ.get(LAUNCHER_ENV))


def follow_launcher() -> None:
    """In a process of a launch: SIGTERM ends it as an exception (``SystemExit(143)``: ``finally`` blocks
    run, a command it waits for is ended with what it started: ``metrics.process_guard``), not at once;
    and in one of a ``relaunch``, on Linux, the launcher's death sends it SIGTERM (``PR_SET_PDEATHSIG``):
    a launcher killed by the OOM killer or a scheduler's SIGKILL leaves no run going on without it."""
    if launch_place() is None:
        return
    signal.signal(signal.SIGTERM, _stop)
    launcher = os.environ.get(LAUNCHER_ENV, "")
    if launcher.isdigit() and not end_with_parent(int(launcher)):
        _stop(signal.SIGTERM, None)         # it died before the request: nothing would tell us


def _stop(number: int, frame) -> None:
    raise SystemExit(128 + number)


def work_done() -> None:
    """In a process of a launch whose work is over, only the interpreter's exit left: SIGTERM (and
    SIGINT, unless it is ignored) now ends it at once with 128 + the signal, its output flushed. Raised
    inside an exit handler (``atexit``: the process group's ``close_process_group``, a library's),
    ``follow_launcher``'s exception or a KeyboardInterrupt would be printed as "Exception ignored in
    atexit callback" with a traceback, and the exit would go on."""
    if launch_place() is None:
        return
    signal.signal(signal.SIGTERM, _end_now)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _end_now)


def _end_now(number: int, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a write the signal interrupted, a closed pipe: ending regardless
            pass
    os._exit(128 + number)


class _Ended(NamedTuple):
    exitcode: int            # negative: the signal that ended it
    pid: int


def _launch_status(failures: dict, processes: int, prog: str) -> int:
    """The exit status of a launch whose ``failures`` (torchrun's, by rank: ``exitcode``, ``pid``) are
    given. A process killed from outside (a signal other than the SIGTERM / SIGINT the launcher sends the
    others once one has failed: SIGKILL when memory ran out) is the cause and is told in one line, the
    others having only stopped after it; otherwise the status of the lowest-ranked process that ended
    with an error of its own (the main process's when it failed: it has said why; not one that only
    stopped because another ended, ``PEER_ENDED_STATUS``); else 128 + the signal that stopped the
    lowest-ranked one, told in a line (but Ctrl-C, which the processes say)."""
    # (a launched process stopped by SIGTERM / SIGINT exits with 128 + the signal: ``follow_launcher``, Ctrl-C)
    failures = {rank: _Ended(-(failure.exitcode - 128) if failure.exitcode - 128 in (signal.SIGTERM, signal.SIGINT)
                             else failure.exitcode, failure.pid) for rank, failure in failures.items()}
    killed = {rank: failure for rank, failure in failures.items()
              if failure.exitcode < 0 and -failure.exitcode not in (signal.SIGTERM, signal.SIGINT)}
    for rank, failure in sorted(killed.items()):
        print(f"{prog}: process {rank + 1} of {processes} (pid {failure.pid}) was killed by "
              f"{_signal_name(-failure.exitcode)}{' (out of memory?)' if -failure.exitcode == signal.SIGKILL else ''}",
              file=sys.stderr)
    ended = {rank: failure for rank, failure in failures.items() if failure.exitcode > 0
             and failure.exitcode != PEER_ENDED_STATUS}
    stopped = {rank: failure for rank, failure in failures.items() if failure.exitcode < 0}
    rank = min(stopped, default=0)
    if not killed and not ended and stopped and stopped[rank].exitcode != -signal.SIGINT:   # (Ctrl-C: said)
        print(f"{prog}: process {rank + 1} of {processes} (pid {stopped[rank].pid}) was stopped by "
              f"{_signal_name(-stopped[rank].exitcode)}", file=sys.stderr)
    chosen = killed or ended or stopped or failures
    code = chosen[min(chosen)].exitcode
    if code == PEER_ENDED_STATUS:
        return 2
    return code if code > 0 else 128 - code


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# The signals that ask a command to stop other than Ctrl-C: SIGTERM (``kill``, a job scheduler's
# cancellation or preemption: SLURM sends it, then SIGKILL after its KillWait, 30 s by default) and SIGUSR1
# (the notice SLURM's ``--signal=USR1@<seconds>`` sends before a job's time limit).
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by signal ``number`` (one of ``STOP_SIGNALS``), not by Ctrl-C.

    A KeyboardInterrupt, so that what cleans up after Ctrl-C (temporary files, a command the process
    waits for and what it started) cleans up after it too; ``metrics.cli.run_command`` tells it in one
    line and ends with status 128 + ``number``. ``kept``: what the command wrote for a rerun when it
    stopped, as a clause of that line (e.g. "at step 120: its checkpoint is written (...)"), or ""."""

    def __init__(self, number: int, kept: str = "") -> None:
        super().__init__(number, kept)
        self.number, self.kept = number, kept

    @property
    def name(self) -> str:
        return _signal_name(self.number)


def _stop_numbers() -> list[int]:
    return [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: a stop signal (``STOP_SIGNALS``) raises ``Stopped`` in this process, as Ctrl-C raises
    KeyboardInterrupt, instead of ending it at once without a word (their default). A signal that is
    ignored or has a handler of its own keeps it; outside the main thread nothing changes. The handlers
    are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in _stop_numbers()}
    for number, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(number, _raise_stopped)
    try:
        yield
    finally:
        for number, handler in previous.items():
            if handler == signal.SIG_DFL:
                signal.signal(number, handler)


def _raise_stopped(number: int, frame) -> None:
    raise Stopped(number)


class StopRequests:
    """Within ``with StopRequests() as stops``: a stop signal (``STOP_SIGNALS``) is recorded in
    ``stops.number`` (the first one; 0: none) instead of acting, so that work can stop at a point of its
    own choosing (a training step's end, once its checkpoint is written) and raise ``Stopped`` itself.
    Leaving the block without an exception with a signal still recorded delivers it to the handler it had
    before (``signal.raise_signal``), so a stop is deferred, never lost. Outside the main thread it
    records nothing (signals reach the main thread only).

    ``interrupt=True`` records Ctrl-C (SIGINT) too, saying on stderr (the main process of a launch alone)
    that the work stops at its next stopping point; a second Ctrl-C acts at once, as Ctrl-C does outside."""

    def __init__(self, interrupt: bool = False) -> None:
        self.number = 0
        self.interrupt = interrupt
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for number in _stop_numbers() + ([signal.SIGINT] if self.interrupt else []):
                handler = signal.getsignal(number)
                if handler != signal.SIG_IGN:        # one ignored (nohup, a launcher's choice) stays ignored
                    self._previous[number] = handler
                    signal.signal(number, self._record)
        return self

    def _record(self, number: int, frame) -> None:
        if number == signal.SIGINT and self.number == signal.SIGINT:     # Ctrl-C again: at once
            previous = self._previous[number]
            if callable(previous):
                previous(number, frame)
            raise KeyboardInterrupt
        if number == signal.SIGINT and not self.number and os.environ.get("RANK", "0") == "0":
            print("Ctrl-C: stopping at this step's end, once its checkpoint is written (Ctrl-C again: at once, "
                  "and the steps since the last checkpoint are trained again)", file=sys.stderr, flush=True)
        self.number = self.number or number

    def __exit__(self, kind, error, traceback) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        pending, self.number = self.number, 0
        if pending and kind is None and pending in self._previous:
            signal.raise_signal(pending)


def stopped_anywhere(number: int, device: Any = "cpu") -> int:
    """``number`` (a signal a ``StopRequests`` recorded, 0: none) agreed over the processes of a launch: the
    largest any process recorded, so that every process stops at the same step (a stop signal reaches the
    processes at different moments). One all-reduce of one integer on ``device`` (the processes' device:
    NCCL reduces CUDA tensors only); in one process, ``number`` itself."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return number
    value = torch.tensor([number], dtype=torch.int64, device=device)
    with _collective("stop-signal all-reduce"):
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


@contextmanager
def _quiet_launcher() -> Iterator[None]:
    """Keep torchrun's elastic agent's log lines (a failed worker's summary, the closing signals sent to
    the others) off stderr while it runs: ``relaunch`` says what matters in its own words."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith("torch.distributed")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def one_process_argv(argv: Sequence[str], option: str) -> list[str]:
    """The command line of each relaunched process: ``argv`` without ``option`` and with ``option 1`` at
    its end, which argparse takes last, so an abbreviation of it (``--proc 2``, which argparse accepts)
    does not relaunch the launched processes again."""
    return [*without_option(argv, option), option, "1"]


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

