"""Test-session settings.

Under pytest-xdist (``pytest -n auto``, the README's test command) each worker gets an equal share of
the CPU cores for torch and the BLAS under numpy/scipy, and so do the commands the tests start (the
environment variables are inherited): two workers on two cores run one thread each instead of
oversubscribing both. Tests that launch processes of their own carry ``xdist_group("launches")`` and
run one after another: ``--dist loadgroup`` (set in pyproject.toml) sends them to one worker. With
pytest >= 9 xdist's grouping did not take by itself (it renames ``item._nodeid``, which pytest 9 no
longer reads: the tests of the group were seen running on both workers at once, and each worker
waited for the other's); ``pytest_collection_modifyitems`` below puts the name where pytest 9 reads
it, and each of them also holds an exclusive lock file while it runs (``one_launch_at_a_time``),
should the grouping fail again. Each worker also
gets its own numba cache folder, filled before any test runs: on a fresh install two workers
compiling librosa's cached numba functions into the same folder at once crashed a worker
(segmentation fault in librosa.beat); filled first, the processes that a worker's tests launch (which
inherit the folder) only read it.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config) -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"imac-tests-numba-{os.getuid()}", worker))
    threads = str(max(1, (os.cpu_count() or 1) // int(workers)))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, threads)
    import torch
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    _compile_librosa_beats()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Give ``--dist loadgroup`` its groups back under pytest >= 9: xdist's worker (whose hook ran
    before this one) renamed each grouped item ``<nodeid>@<group>`` through ``item._nodeid``, which
    pytest 9 no longer reads; the same name is set where pytest 9 keeps it (``item._id``), so the
    scheduler sees the group and sends all of it to one worker. A no-op where the rename took."""
    for item in items:
        renamed = item.__dict__.get("_nodeid")
        if isinstance(renamed, str) and renamed != item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(renamed)


@pytest.fixture(autouse=True)
def one_launch_at_a_time(request):
    """Under xdist, a test marked ``xdist_group("launches")`` holds an exclusive lock on one file
    while it runs, so no two of them (each starting processes of its own) run at once."""
    marks = [m.args[0] if m.args else m.kwargs.get("name") for m in request.node.iter_markers("xdist_group")]
    if "launches" not in marks or not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import fcntl

    path = os.path.join(tempfile.gettempdir(), f"imac-tests-launches-{os.getuid()}.lock")
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compile_librosa_beats() -> None:
    """librosa's onset and beat trackers (numba, cache=True) run once on 2 s of noise."""
    import librosa
    import numpy as np

    rate = 16_000
    noise = np.random.default_rng(0).standard_normal(2 * rate).astype(np.float32)
    librosa.onset.onset_detect(y=noise, sr=rate)
    librosa.beat.beat_track(y=noise, sr=rate)
