"""The first frame of every command (``imac``, ``imac-bench``, ``python -m metrics|imac|bench``): the
command-line module is imported inside a Ctrl-C guard, so that an interruption while torch, scipy or
diffusers load (seconds) ends as one line on stderr and exit status 130, as it does in a handler
(``metrics.cli.run_command``), not as a traceback.

Standard library only, and ``metrics/__init__`` loads nothing at import, so nothing slow runs before
the guard.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence

INTERRUPTED = 130      # the shell's status of a process ended by SIGINT (128 + 2)


def run_entry_point(module: str, prog: str, argv: Sequence[str] | None = None) -> int:
    """``module.main(argv)``, with its import; a Ctrl-C anywhere in it is ``prog: interrupted`` and 130.

    While the module loads, SIGINT is recorded as well as raised: an interrupt that lands inside a
    library's own initialisation can surface as another error (numpy's AttributeError or a
    RecursionError, measured), and any error after a recorded interrupt is the interrupt. An abort
    inside C++ (pybind11 terminating on the KeyboardInterrupt) ends the process before Python can say
    anything.
    """
    received: list[int] = []

    def record(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:          # not when SIGINT is ignored or handled elsewhere
        signal.signal(signal.SIGINT, record)
    try:
        loaded = importlib.import_module(module)
    except BaseException as error:
        if not (received or _interrupted(error)):
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
    try:
        return loaded.main(argv)
    except (KeyboardInterrupt, ImportError) as error:
        # A C extension interrupted in its initialisation raises ImportError from the KeyboardInterrupt
        # (pybind11's "initialization failed": onnxruntime, measured); any other ImportError is a real one.
        if not _interrupted(error):
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED


def _interrupted(error: BaseException | None) -> bool:
    """Whether ``error`` is a KeyboardInterrupt or was raised from (or while handling) one."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
