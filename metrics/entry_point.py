"""The first frame of every command (``imac``, ``imac-bench``, ``python -m metrics|imac|bench``): the
command-line module is imported inside a Ctrl-C guard, so that an interruption while torch, scipy or
diffusers load (seconds) ends as one line on stderr and exit status 130, as it does in a handler
(``metrics.cli.run_command``), not as a traceback.

Standard library only, and ``metrics/__init__`` loads nothing at import, so nothing slow runs before
the guard.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

INTERRUPTED = 130      # the shell's status of a process ended by SIGINT (128 + 2)


def run_entry_point(module: str, prog: str, argv: Sequence[str] | None = None) -> int:
    """``module.main(argv)``, with its import; a Ctrl-C anywhere in it is ``prog: interrupted`` and 130."""
    try:
        return importlib.import_module(module).main(argv)
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
