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


def launch_two_cpu_processes(*argv: str, timeout: float = 240):
    """``accelerate launch`` of ``argv`` (a script and its arguments, or ``-m module ...``) as 2 CPU processes
    (gloo, 1 thread each, on a free port); the finished ``subprocess.CompletedProcess``, output captured.
    ``--multi_gpu`` starts torch.distributed's processes; the trainers run them on the CPU."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(port), *argv], env=env, capture_output=True, text=True, timeout=timeout)
