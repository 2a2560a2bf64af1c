"""Running independent jobs (one per source, one per clip) in worker processes, or in this one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from tqdm import tqdm

Job = TypeVar("Job")


def run_jobs(function: Callable[[Job], Any], jobs: Sequence[Job], workers: int = 1, progress: bool = True,
             desc: str = "", unit: str = "job", label: Callable[[Job], str] = str,
             on_result: Callable[[Job, Any], None] | None = None) -> list[Any]:
    """``function(job)`` for every job, in order of the jobs; ``workers > 1`` runs them in that many
    processes (``function`` and the jobs must then be picklable). ``on_result`` sees each result as
    it arrives, in the main process. An exception in a job propagates once the pool has stopped."""
    results: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for index, job in enumerate(jobs):
                bar.set_postfix_str(label(job)[-30:])
                results[index] = function(job)
                if on_result is not None:
                    on_result(job, results[index])
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(function, job): index for index, job in enumerate(jobs)}
                for future in as_completed(futures):
                    index = futures[future]
                    results[index] = future.result()
                    if on_result is not None:
                        on_result(jobs[index], results[index])
                    bar.set_postfix_str(label(jobs[index])[-30:])
                    bar.update()
    finally:
        bar.close()
    return results
