"""Run a command so that it ends, with every process it started, when the process that started it says so
or dies.

``subprocess.run(argv, timeout=...)`` kills the command's first process only. A shell script's or
``conda run``'s child, or a tool's own worker, keeps running (holding a GPU, writing a file) after a
timeout, a Ctrl-C handled by the caller, or the caller's death, while the caller goes on to the next
clip. ``run_guarded`` runs the command through this file as a script::

    python -I -S process_guard.py PARENT_PID GRACE_SECONDS STATUS_FD -- COMMAND...

The guard runs in a session of its own (a signal to the caller's process group, ``kill -9 %1``
included, does not take it down with the caller) and starts COMMAND in another new session, then waits
for it, following the caller meanwhile. On Linux it is the subreaper of what the command starts
(``PR_SET_CHILD_SUBREAPER``), so a process that leaves the command's group (``setsid``, coreutils
``timeout``, a daemon's double fork) stays its descendant. When the guard is told to stop (SIGTERM,
SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM; one the caller ignored stays ignored), and when its
caller dies however it dies (SIGKILL, the OOM killer: ``PR_SET_PDEATHSIG`` on Linux, and its parent
pid, checked four times a second, everywhere), it ends the command's group and every descendant:
SIGTERM (and SIGCONT, for a stopped one), then SIGKILL after GRACE_SECONDS, or at once when told to stop
a second time, again until none is left (5 s at most). While the caller is stopped (Ctrl-Z; Linux) the
command's group is stopped, and continued with it. A command that ends by itself is not followed
further: processes it left running are its own.

The guard tells the caller on STATUS_FD the command's process group (``pid N``) and how it ended:
``ended STATUS`` (negative: the signal that killed it; the guard exits 128 + N rather than die of it,
so that no core dump of the guard's replaces the command's), or ``stopped N`` when signal N told the
guard to end it. A guard killed outright (SIGKILL) says neither, and ``run_guarded`` ends the group.

Standard library only: the guard runs as a script, without the package (``-I -S``: nor any site-packages).
"""


import _signal

_STOP_NAMES = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
if __name__ == "__main__":
    # Until the guard's own handlers are set, a request to stop is kept for them: raised as
    # KeyboardInterrupt in the middle of the imports below, it would end the guard with a traceback.
    # (``_signal``, the built-in module under ``signal``: importing ``signal`` itself takes milliseconds.)
    _EARLY_STOPS: list[int] = []
    for _name in _STOP_NAMES:
        if hasattr(_signal, _name) and _signal.getsignal(getattr(_signal, _name)) != _signal.SIG_IGN:
            _signal.signal(getattr(_signal, _name), lambda number, frame: _EARLY_STOPS.append(number))

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402

# The guard's only output when the command cannot start, with status 127 (a shell's "not found").
_CANNOT_RUN = "process_guard: cannot run:"
_STOP_SIGNALS = tuple(getattr(signal, name) for name in _STOP_NAMES if hasattr(signal, name))
_LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _prctl(option: int, value: int) -> None:
    if _LINUX:
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def end_with_parent(parent: int, number: int = signal.SIGTERM) -> bool:
    """Ask Linux to send this process signal ``number`` when its parent ``parent`` (a pid) dies
    (``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing is asked). False when the parent is already gone:
    the request came too late to be kept, and the caller should end itself."""
    _prctl(PR_SET_PDEATHSIG, int(number))
    return os.getppid() == parent


def _stat_fields(pid: int | str) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, parent pid, process group, ...);
    empty when the process is gone (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()
    except OSError:
        return []


def _live_processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process that is not a zombie (Linux ``/proc``)."""
    found = []
    for entry in os.scandir("/proc"):
        fields = _stat_fields(entry.name) if entry.name.isdigit() else []
        if len(fields) > 2 and fields[0] not in (b"Z", b"X"):
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def _left(group: int, root: int | None) -> tuple[bool, list[int]]:
    """Whether process group ``group`` has a live member, and the live descendants of ``root`` (Linux;
    elsewhere the group is asked with signal 0 and no descendant is known)."""
    if not _LINUX:
        return _signal_group(group, 0), []
    processes = _live_processes()
    children: dict[int, list[int]] = {}
    for pid, parent, _ in processes:
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root] if root is not None else []
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return any(pgrp == group for _, _, pgrp in processes), found


def _signal_group(group: int, number: int) -> bool:
    """``number`` to process group ``group``; False when the group has no process left."""
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        return False
    except PermissionError:          # a member became another user's: the others got it
        pass
    return True


def _signal_each(pids: Sequence[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def _reap() -> None:
    """Collect the exit of every finished child (the guard is the subreaper of the command's orphans)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait_until_gone(group: int, root: int | None, seconds: float, hurry=lambda: False) -> None:
    """Wait up to ``seconds`` (less once ``hurry()``) for ``group`` and the descendants of ``root`` to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not hurry():
        if root is not None:
            _reap()
        if _left(group, root) == (False, []):
            return
        time.sleep(0.05)


def _kill_until_gone(group: int, root: int | None, seconds: float) -> None:
    """SIGKILL to ``group`` and the descendants of ``root`` again and again, up to ``seconds``, until none
    is left: a process forked before it was killed is killed in the next round."""
    deadline = time.monotonic() + seconds
    while True:
        if root is not None:
            _reap()
        group_left, descendants = _left(group, root)
        if (not group_left and not descendants) or time.monotonic() >= deadline:
            return
        _signal_group(group, signal.SIGKILL)
        _signal_each(descendants, signal.SIGKILL)
        time.sleep(0.002)


def end_all(group: int, grace: float, root: int | None = None, hurry=lambda: False) -> None:
    """End process group ``group`` and, on Linux, every descendant of ``root`` (a subreaper: this
    process): SIGTERM and SIGCONT (a stopped process acts on SIGTERM once continued), then SIGKILL to
    what is left after ``grace`` seconds, or as soon as ``hurry()``, until none is left (5 s at most: a
    process that forks new sessions faster than the processes can be listed may outlast it)."""
    descendants = _left(group, root)[1]
    for number in (signal.SIGTERM, signal.SIGCONT):
        _signal_group(group, number)
        _signal_each(descendants, number)
    _wait_until_gone(group, root, grace, hurry)
    _kill_until_gone(group, root, 5.0)


def _process_state(pid: int) -> str:
    """The state letter of a process (``R``, ``S``, ``T`` stopped, ...; Linux), "" when unknown."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else ""


class _Stopped(Exception):
    """The guard was told to stop while its command ran."""


def _guard(parent: int, grace: float, status_fd: int, command: list[str], early: Sequence[int] = ()) -> int:
    """The guard's work (the module's docstring); ``early``: stop requests received before it began."""
    state: dict = {"child": None, "signal": early[0] if early else None, "done": False, "hurry": False}

    def stop(number: int, frame) -> None:
        # Only flags and an exception: waiting here could deadlock on the Popen.wait it interrupted.
        if state["signal"] is None and not state["done"]:
            state["signal"] = number
            if state["child"] is not None:
                raise _Stopped
        elif state["signal"] is not None:       # a second request while the first one's ending is under way
            state["hurry"] = True

    def pause(number: int, frame) -> None:        # Ctrl-Z: the command stops with the guard
        child = state["child"]
        if child is not None:
            _signal_group(child.pid, signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)       # stopped here until continued (fg)
        signal.signal(signal.SIGTSTP, pause)
        if child is not None:
            _signal_group(child.pid, signal.SIGCONT)

    for number in _STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:      # an ignored one stays ignored (nohup)
            signal.signal(number, stop)
    if state["signal"] is not None:
        return 128 + state["signal"]
    if hasattr(signal, "SIGTSTP") and signal.getsignal(signal.SIGTSTP) is not signal.SIG_IGN:
        signal.signal(signal.SIGTSTP, pause)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if not end_with_parent(parent):
        return 128 + signal.SIGTERM
    def tell(line: str) -> None:
        try:
            os.write(status_fd, f"{line}\n".encode())
        except OSError:              # the caller is gone (its death is a stop request of its own)
            pass

    def started() -> None:           # in the command's process, before its program: the guard has one thread
        tell(f"pid {os.getpid()}")   # told before the command runs, which may kill the guard at once

    try:
        try:
            child = subprocess.Popen(command, start_new_session=True, preexec_fn=started)
        except OSError as error:
            print(f"{_CANNOT_RUN} {error.errno} {error.strerror}", file=sys.stderr)
            return 127
        state["child"] = child
        if state["signal"] is not None:         # it came while the command was being started
            raise _Stopped
        code = _wait_following(child, parent, state)
        state["done"] = True
    except _Stopped:
        end_all(child.pid, grace, os.getpid(), lambda: state["hurry"])
        tell(f"stopped {state['signal']}")
        return 128 + state["signal"]
    tell(f"ended {code}")
    return code if code >= 0 else 128 - code        # not re-raised: no core dump of the guard's


def _wait_following(child: subprocess.Popen, parent: int, state: dict) -> int:
    """``child.wait()``, following the parent meanwhile (the guard runs in a session of its own, out of
    reach of a signal to the parent's process group, ``kill -9 %1`` included): its death is a request
    to stop (``getppid``: also where no parent-death signal exists); while it is stopped (Ctrl-Z, Linux)
    the command's group is stopped too."""
    stopped = False
    while True:
        try:
            return child.wait(0.25)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            if state["signal"] is None:
                state["signal"] = signal.SIGTERM
            raise _Stopped
        parent_stopped = _LINUX and _process_state(parent) == "T"
        if parent_stopped != stopped:
            _signal_group(child.pid, signal.SIGSTOP if parent_stopped else signal.SIGCONT)
            stopped = parent_stopped


def guarded(argv: Sequence[str], grace: float, status_fd: int) -> list[str]:
    """The argument list that runs ``argv`` under the guard, for a child of this process that inherits
    the pipe end ``status_fd``."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), f"{grace:g}", str(status_fd),
            "--", *argv]


class _Tail(threading.Thread):
    """The last ``limit`` bytes read from a pipe, read as they come (no disk, bounded memory)."""

    def __init__(self, pipe, limit: int) -> None:
        super().__init__(daemon=True, name="command output")
        self.pipe, self.limit, self.kept, self.lock = pipe, limit, bytearray(), threading.Lock()
        self.start()

    def run(self) -> None:
        with self.pipe:
            while chunk := self.pipe.read1(65536):
                with self.lock:
                    self.kept += chunk
                    del self.kept[:max(0, len(self.kept) - self.limit)]

    def text(self, until: float) -> str:
        """What was kept, after waiting until ``until`` (``time.monotonic``) at most for the end of the
        output (a process the command left running may hold the pipe: its later output is read, not kept)."""
        self.join(max(0.0, until - time.monotonic()))
        with self.lock:
            return bytes(self.kept).decode("utf-8", "replace")


def _read_status(fd: int) -> dict[str, int]:
    """``pid``, ``ended`` or ``stopped`` as the guard wrote them (it has ended: the pipe's writer is closed)."""
    with os.fdopen(fd, "rb") as pipe:
        lines = (pipe.read(4096) or b"").decode("ascii", "replace").splitlines()   # None: nothing yet
    return {key: int(value) for key, _, value in (line.partition(" ") for line in lines)
            if key in ("pid", "ended", "stopped") and value.lstrip("-").isdigit()}


def run_guarded(argv: Sequence[str], *, cwd: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None, timeout: float | None = None,
                grace: float = 5.0, tail_bytes: int = 16384) -> subprocess.CompletedProcess:
    """Run ``argv`` (a non-empty list) under the guard and wait for it, like ``subprocess.run``; but on a
    timeout or an exception while waiting (Ctrl-C, ``SystemExit`` from a SIGTERM handler) the command and
    every process it started are ended (SIGTERM, SIGKILL after ``grace`` s; a second exception while that
    is under way kills them at once) before the exception goes on; and if this process dies, the guard
    ends them. Standard input is empty.

    Returns ``returncode`` (negative: the signal that killed the command) and the last ``tail_bytes``
    bytes of ``stdout`` and ``stderr`` (decoded as UTF-8, undecodable bytes replaced): a talkative
    command costs neither memory nor disk, and a process it left running with the output open does not
    keep the call waiting. A guard killed outright is reported as its own death (negative status, a line
    on ``stderr``, ``guard_lost`` set on the result), its command's group ended from here. Raises
    ``OSError`` when the command cannot start (not found, not executable, no such ``cwd``),
    ``subprocess.TimeoutExpired`` (naming ``argv``) after ``timeout`` seconds, and ``ValueError`` for an
    empty or string ``argv`` or a negative ``tail_bytes`` or ``grace``."""
    if isinstance(argv, (str, bytes)) or not argv:
        raise ValueError(f"a command is a non-empty list of arguments, got {argv!r}")
    if tail_bytes < 0 or grace < 0:
        raise ValueError(f"tail_bytes and grace must be >= 0, got {tail_bytes} and {grace}")
    argv = [str(arg) for arg in argv]
    status_read, status_write = os.pipe()
    try:
        # the guard in a session of its own: a signal to this process's group (kill -9 %1) does not take
        # it down with this process; it follows this process instead (``_wait_following``)
        process = subprocess.Popen(guarded(argv, grace, status_write), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(status_write,),
                                   start_new_session=True)
    except BaseException:
        os.close(status_read)
        raise
    finally:
        os.close(status_write)
    tails = _Tail(process.stdout, tail_bytes), _Tail(process.stderr, tail_bytes)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _stop(process, status_read, grace)
        raise subprocess.TimeoutExpired(argv, timeout) from None
    except BaseException:
        _stop(process, status_read, grace)
        raise
    status = _read_status(status_read)
    until = time.monotonic() + 0.5
    out, err = (tail.text(until) for tail in tails)
    if process.returncode == 127 and not {"ended", "stopped"} & set(status) and err.startswith(_CANNOT_RUN):
        number, _, reason = err[len(_CANNOT_RUN):].strip().partition(" ")
        raise OSError(int(number) if number.lstrip("-").isdigit() else 0, reason, argv[0])
    if "ended" in status:
        code = status["ended"]
    elif "stopped" in status:                                 # told to stop (a hang-up): it ended them
        code = -status["stopped"]
    else:
        code = process.returncode
        if "pid" in status:                                   # the guard was killed under its command
            end_all(status["pid"], grace)
            err += (f"\nprocess_guard: the guard ended with status {code} before its command; the command's "
                    "processes were ended")
            lost = subprocess.CompletedProcess(argv, code, out, err)
            lost.guard_lost = True
            return lost
    return subprocess.CompletedProcess(argv, code, out, err)


def _stop(process: subprocess.Popen, status_read: int, grace: float) -> None:
    """End the guard, which ends its command, and wait for it. A second interruption meanwhile (Ctrl-C
    again) asks the guard a second time, which kills them at once; a third kills the guard too."""
    try:
        process.terminate()
        process.wait(grace + 10)
    except subprocess.TimeoutExpired:
        pass
    except BaseException:
        try:
            process.terminate()
            process.wait(10)
        except BaseException:
            pass
        finally:
            _kill_guard(process, status_read)
        raise
    _kill_guard(process, status_read)


def _kill_guard(process: subprocess.Popen, status_read: int) -> None:
    """The guard killed if it is still there, and the command's group with it."""
    running = process.poll() is None
    if running:
        os.set_blocking(status_read, False)       # the guard still holds the pipe: what it told so far
    group = _read_status(status_read).get("pid")
    if running:
        if group is not None:
            _signal_group(group, signal.SIGKILL)
        process.kill()
        process.wait()
    elif group is not None and _left(group, None)[0]:      # the guard was killed before it ended them
        end_all(group, 0.0)


def _main(arguments: list[str]) -> int:
    if len(arguments) < 5 or arguments[3] != "--":
        print("usage: process_guard.py PARENT_PID GRACE_SECONDS STATUS_FD -- COMMAND...", file=sys.stderr)
        return 2
    return _guard(int(arguments[0]), float(arguments[1]), int(arguments[2]), arguments[4:],
                  globals().get("_EARLY_STOPS", ()))


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except KeyboardInterrupt:          # Ctrl-C before the guard's own handlers were set: nothing started
        sys.exit(130)
