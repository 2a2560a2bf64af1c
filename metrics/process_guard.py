"""Run a command as a process group that ends with the process that started it.

``subprocess.run(argv, timeout=...)`` kills the command's first process only. A shell script's or
``conda run``'s child, or a tool's own worker, keeps running (holding a GPU, writing a file) after a
timeout, a Ctrl-C handled by the caller, or the caller's death, while the caller goes on to the next
clip. ``run_guarded`` runs the command through this file as a script::

    python -I process_guard.py PARENT_PID GRACE_SECONDS -- COMMAND...

The guard starts COMMAND in a new session (a process group of its own) and waits for it. Its exit
status is the command's (a command killed by signal N kills the guard by N). When the guard is told to
stop (SIGTERM, SIGINT, SIGHUP), and on Linux when its parent dies however it dies (SIGKILL, the OOM
killer: ``prctl(PR_SET_PDEATHSIG)``), it ends the command and every process of its group: SIGTERM, then
SIGKILL after GRACE_SECONDS. A command that ends by itself is not followed further: processes it left
running in the background are its own.

Standard library only: the guard runs as a script, without the package (``-I``: nor the user's site).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

# The guard's only output when the command cannot start, with status 127 (a shell's "not found").
_CANNOT_RUN = "process_guard: cannot run:"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def end_with_parent(parent: int, number: int = signal.SIGTERM) -> bool:
    """Ask Linux to send this process signal ``number`` when its parent ``parent`` (a pid) dies
    (``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing is asked). False when the parent is already gone:
    the request came too late to be kept, and the caller should end itself."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(number), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return os.getppid() == parent


def end_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to ``process``'s group (it leads one: ``start_new_session``), then SIGKILL to what is
    left of the group after ``grace`` seconds; reaps ``process``."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, number)
        except (ProcessLookupError, PermissionError):    # the group is gone
            pass
        if number == signal.SIGTERM:
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
    process.wait()


class _Stopped(Exception):
    """The guard was told to stop while its command ran."""


def _guard(parent: int, grace: float, command: list[str]) -> int:
    state: dict = {"child": None, "signal": None}

    def stop(number: int, frame) -> None:
        # Only a flag and an exception: waiting here could deadlock on the Popen.wait it interrupted.
        if state["signal"] is None:
            state["signal"] = number
            if state["child"] is not None:
                raise _Stopped
        # later signals: the first one's ending is under way

    for number in _STOP_SIGNALS:
        signal.signal(number, stop)
    if not end_with_parent(parent):
        return 128 + signal.SIGTERM
    try:
        try:
            state["child"] = subprocess.Popen(command, start_new_session=True)
        except OSError as error:
            print(f"{_CANNOT_RUN} {error.errno} {error.strerror}", file=sys.stderr)
            return 127
        if state["signal"] is not None:         # it came while the command was being started
            raise _Stopped
        status = state["child"].wait()
    except _Stopped:
        end_group(state["child"], grace)
        return 128 + state["signal"]
    if status < 0:                  # killed by a signal: end the same way, for the caller to see
        try:
            signal.signal(-status, signal.SIG_DFL)
        except (OSError, ValueError):             # SIGKILL's cannot be set, nor needs to be
            pass
        os.kill(os.getpid(), -status)
    return status if status >= 0 else 128 - status


def guarded(argv: Sequence[str], grace: float) -> list[str]:
    """The argument list that runs ``argv`` under the guard, for a child of this process."""
    return [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid()), f"{grace:g}", "--", *argv]


def _tail(file, limit: int) -> str:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - limit))
    return file.read().decode("utf-8", "replace")


def run_guarded(argv: Sequence[str], *, cwd: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None, timeout: float | None = None,
                grace: float = 5.0, tail_bytes: int = 16384) -> subprocess.CompletedProcess:
    """Run ``argv`` under the guard and wait for it, like ``subprocess.run``, but on a timeout or an
    exception while waiting (Ctrl-C, ``SystemExit`` from a SIGTERM handler) the command's whole process
    group is ended (SIGTERM, SIGKILL after ``grace`` s) before the exception goes on; and if this
    process dies, the guard ends the group (Linux).

    Returns ``returncode`` (negative: the signal that killed the command) and the last ``tail_bytes``
    bytes of ``stdout`` and ``stderr`` (decoded as UTF-8, undecodable bytes replaced): the output goes to
    temporary files, so a talkative command costs no memory, and a background process left holding the
    output does not keep the call waiting. Raises ``OSError`` when the command cannot start (not found,
    not executable, no such ``cwd``) and ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
    argv = [str(arg) for arg in argv]
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(guarded(argv, grace), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr)
        try:
            process.wait(timeout)
        except BaseException:
            process.terminate()
            try:
                process.wait(grace + 5)
            except subprocess.TimeoutExpired:       # a guard that does not end: the group may outlive it
                process.kill()
                process.wait()
            raise
        out, err = _tail(stdout, tail_bytes), _tail(stderr, tail_bytes)
    if process.returncode == 127 and err.startswith(_CANNOT_RUN):
        number, _, reason = err[len(_CANNOT_RUN):].strip().partition(" ")
        raise OSError(int(number) if number.lstrip("-").isdigit() else 0, reason, argv[0])
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit("usage: process_guard.py PARENT_PID GRACE_SECONDS -- COMMAND...")
    sys.exit(_guard(int(sys.argv[1]), float(sys.argv[2]), sys.argv[4:]))
