"""What a failed ``accelerate launch`` / torchrun said, without the other processes' reaction.

torchrun names the first process that failed under "Root Cause"; the other processes' tracebacks
(prefixed ``[rankN]:``: a closed connection, SIGTERM) fill the end of stderr and hide why the run
failed, while the failed process's own lines (prefixed, or a command's one-line error) stay.
"""

from __future__ import annotations

import re


def failed_launch(stderr: str, tail: int = 3000) -> str:
    """The last ``tail`` characters of ``stderr`` without the lines of the ranks that did not fail first."""
    causes = re.findall(r"Root Cause.*?rank\s*:\s*(\d+)", stderr, flags=re.S)
    if not causes:
        return stderr[-tail:]
    others = re.compile(rf"\[rank(?!{causes[0]}\])\d+\]")
    kept = "\n".join(line for line in stderr.splitlines() if not others.match(line))
    return f"(root cause: rank {causes[0]}; the other ranks' lines left out)\n" + kept[-tail:]
