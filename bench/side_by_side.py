"""The run's trainings that need nothing of each other, side by side on the CPU, one torch thread each.

On a CPU run of one process the small trainings a run starts with (the shared tiny VAE, each IMAC
variant's stage 1, the keypoint motion model of S2G and MYA, the skeleton autoencoder of FGD) need
nothing of one another. Most of them keep a second core busy for little (IMAC's stage 1 trains 1.15x
faster on two threads than on one, the keypoint motion and the skeleton autoencoder 1.1x and 1.06x):
the run gives each one thread and trains as many at once as it has threads (``torch.get_num_threads``,
the ``--threads`` of ``imac-bench run``), each in a worker process of its own. The weights are those
of one thread wherever they are trained: side by side, one after the other (one thread: in this
process) or on a machine with more cores; they do not depend on the core count.

A training's work is its own folder, written as it would be in place (its card last), so an
interrupted run resumes as before. One that fails stops the run with its error once the trainings
already running have finished (their work is kept); those not yet handed to a worker are not started.
A worker process ends within a second of the run's, however the run ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

HEARTBEAT_S = 60.0       # how often the waiting run says which trainings are still going


@dataclass(frozen=True)
class Training:
    """One training: ``target(**kwargs)`` (a module-level function: it is sent to a worker process),
    whose return value is handed back (it must pickle). ``key`` is the folder it writes (two methods
    asking for the same model give the same key, and it is trained once); ``name`` is what the log says."""

    key: str
    name: str
    target: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trained:
    """What a training returned and the seconds it took (its own, in its process)."""

    result: Any
    seconds: float


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _end_with(parent: int, every_s: float = 1.0) -> None:
    """In a worker process: end it when ``parent`` (the run) has ended, killed without a word (a
    SIGKILL, a SIGTERM), rather than let it train on into a run folder that a rerun may be using."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="watch the run", daemon=True).start()


def _train(training: Training) -> Trained:
    started = time.perf_counter()
    with one_thread():
        result = training.target(**training.kwargs)
    return Trained(result, round(time.perf_counter() - started, 1))


def unique(trainings: Sequence[Training]) -> list[Training]:
    """``trainings`` without repeats of a key (the first kept), in order."""
    seen: dict[str, Training] = {}
    for training in trainings:
        seen.setdefault(training.key, training)
    return list(seen.values())


def train_side_by_side(trainings: Sequence[Training], workers: int,
                       heartbeat_s: float = HEARTBEAT_S) -> dict[str, Trained]:
    """Run ``trainings`` (repeated keys once) on one torch thread each, ``workers`` at a time, started in
    the order given; returns what each returned by key. With ``workers`` 1 (or one training) they run
    here one after the other; else each in a worker process (spawned: a fresh torch), handed over as a
    worker frees. The first error is raised after the running trainings end, as the training raised it (the
    waiting ones are not started); a worker process that dies (killed, out of memory) takes the pool with
    it: RuntimeError naming the trainings it stopped. Interrupted (Ctrl-C), the workers are ended."""
    if workers < 1:
        raise ValueError(f"workers: at least 1, got {workers}")
    trainings = unique(trainings)
    done: dict[str, Trained] = {}
    if workers == 1 or len(trainings) <= 1:
        for training in trainings:
            logger.info("training %s (one thread)", training.name)
            done[training.key] = _train(training)
        return done
    width = min(workers, len(trainings))
    logger.info("training side by side, %d at a time on one thread each: %s", width,
                ", ".join(t.name for t in trainings))
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    error: BaseException | None = None
    broken: list[str] = []
    waiting = list(trainings)                  # handed to the pool only as a worker frees: never queued there
    with ProcessPoolExecutor(max_workers=width, mp_context=context, initializer=_end_with,
                             initargs=(os.getpid(),)) as pool:
        running: dict[Future, Training] = {}
        try:
            while waiting or running:
                while waiting and error is None and len(running) < width:
                    training = waiting.pop(0)
                    running[pool.submit(_train, training)] = training
                if not running:
                    break
                finished, _ = wait(running, timeout=heartbeat_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    training = running.pop(future)
                    try:
                        done[training.key] = future.result()
                    except BrokenProcessPool:            # every training then running ends so
                        broken.append(training.name)
                    except Exception as failure:         # noqa: BLE001 - raised below, once the others end
                        error = error or failure
                        logger.error("%s failed: %s", training.name, failure)
                    else:
                        logger.info("%s trained (%.0f s)", training.name, done[training.key].seconds)
                if broken and error is None:
                    error = RuntimeError(f"a worker process of the side-by-side trainings died (out of memory? "
                                         f"killed?) while training: {', '.join(broken)}; the finished ones are "
                                         "kept: run again to resume")
                if running and error is None:
                    logger.info("still training after %.0f s: %s%s", time.perf_counter() - started,
                                ", ".join(t.name for t in running.values()),
                                f" ({len(waiting)} waiting)" if waiting else "")
        except BaseException:                            # Ctrl-C: end the workers, start nothing more
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            raise
    if error is not None:
        raise error
    return done
