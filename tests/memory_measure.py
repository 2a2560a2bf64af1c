"""The lines a measuring child script starts with: ``peak()``, its peak resident memory in bytes
(``benchmarks/peak_memory.py``: VmHWM, since ``ru_maxrss`` carries the forking pytest process's peak)."""

from __future__ import annotations

import textwrap
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

PEAK = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(BENCHMARKS)!r})
    from peak_memory import peak_rss_bytes as peak
    """)
