"""The peak resident memory of this process, for the memory figures of the benchmarks and the tests.

``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's own address space), not
``getrusage().ru_maxrss``: Linux carries the forking parent's peak over ``exec`` into ``ru_maxrss``, so a
child started by a large process (pytest, a benchmark that imported torch) reports at least the parent's
peak, and a growth measured from it reads too small. Elsewhere (no ``/proc``): ``ru_maxrss``.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far, in bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024        # bytes on macOS, KiB on Linux
