"""A command run under ``metrics.process_guard`` ends with everything it started: on a timeout, on an
exception in the caller (Ctrl-C), and (Linux) on the caller's death by SIGKILL. What it returns and
raises is what ``subprocess.run`` returns and raises for the same command (the reference)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from metrics.process_guard import run_guarded

REPO = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc; the subreaper and the parent-death signal are Linux's")

# A command whose own child (a background sleep, as a shell script's python or conda run's child) holds on.
STARTS_A_CHILD = "sleep 60 & echo $! > child.pid; wait"


def _running(pid: int) -> bool:
    """Whether ``pid`` runs: it exists and is not a zombie (an orphan's reaper may be slow or absent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _child_pid(folder: Path, seconds: float = 20.0) -> int:
    written = folder / "child.pid"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if written.is_file() and written.read_text().strip():
            return int(written.read_text())
        time.sleep(0.05)
    raise AssertionError("the command did not start its child")


def _ends(pid: int, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not _running(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)         # leave nothing behind for the other tests
    return False


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "echo out; echo err >&2; exit 3"],
    ["sh", "-c", "echo out; kill -9 $$"],
    ["sh", "-c", "kill -SEGV $$"],
    [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'caf\\xe9 \\xff' * 5000)"],
    ["sh", "-c", "exit 0"],
])
def test_status_and_output_are_those_subprocess_run_gives(argv):
    reference = subprocess.run(argv, capture_output=True)
    done = run_guarded(argv, tail_bytes=1000)
    assert done.returncode == reference.returncode
    assert done.stdout == reference.stdout[-1000:].decode("utf-8", "replace")
    assert done.stderr == reference.stderr[-1000:].decode("utf-8", "replace")


@pytest.mark.parametrize("argv, cwd", [
    (["no-such-command-anywhere"], None),
    (["sh", "-c", "exit 0"], "/no/such/folder"),
    ([__file__], None),                                 # not executable
])
def test_a_command_that_cannot_start_raises_the_oserror_subprocess_run_raises(argv, cwd):
    with pytest.raises(OSError) as expected:
        subprocess.run(argv, cwd=cwd)
    with pytest.raises(OSError) as raised:
        run_guarded(argv, cwd=cwd)
    assert (raised.value.errno, raised.value.strerror) == (expected.value.errno, expected.value.strerror)


@linux_only
def test_a_timeout_ends_the_processes_the_command_started(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_guarded(["sh", "-c", STARTS_A_CHILD], cwd=tmp_path, timeout=1, grace=2)
    assert _ends(_child_pid(tmp_path), seconds=3)          # subprocess.run(..., timeout=1) leaves it running


@linux_only
@pytest.mark.parametrize("leaves", ["setsid", "timeout 600"])
def test_a_timeout_ends_the_processes_that_left_the_commands_group(tmp_path, leaves):
    """``setsid`` and coreutils ``timeout`` put their child in a group of its own: the guard, their
    subreaper, still finds and ends it."""
    with pytest.raises(subprocess.TimeoutExpired):
        run_guarded(["sh", "-c", f"{leaves} sh -c 'echo $$ > child.pid; exec sleep 60' & wait"], cwd=tmp_path,
                    timeout=1, grace=2)
    assert _ends(_child_pid(tmp_path), seconds=3)


@linux_only
def test_a_guard_killed_outright_has_its_commands_processes_ended(tmp_path):
    done = run_guarded(["sh", "-c", "sleep 60 & echo $! > child.pid; kill -9 $PPID; wait"], cwd=tmp_path, grace=2)
    assert done.returncode == -signal.SIGKILL
    assert "the guard ended with status -9 before its command" in done.stderr
    assert _ends(_child_pid(tmp_path), seconds=3)


@linux_only
def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_guarded(["sh", "-c", "trap '' TERM; " + STARTS_A_CHILD], cwd=tmp_path, timeout=1, grace=1)
    assert _ends(_child_pid(tmp_path), seconds=3)


@linux_only
def test_a_command_that_ends_by_itself_is_not_followed_nor_waited_for(tmp_path):
    done = run_guarded(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $! > child.pid; echo started"], cwd=tmp_path,
                       timeout=30)
    assert (done.returncode, done.stdout) == (0, "started\n")
    child = _child_pid(tmp_path)
    assert _running(child)                  # its own background process, left alone
    os.kill(child, signal.SIGKILL)


CALLER = """
import signal, sys
from pathlib import Path
from metrics.process_guard import run_guarded
# as a terminal's foreground job has them: a non-interactive shell's background job (CI) ignores both
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
if "nohup" in sys.argv[3:]:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
done = run_guarded(["sh", "-c", sys.argv[1]], cwd=sys.argv[2], grace=30 if "patient" in sys.argv[3:] else 5)
Path(sys.argv[2], "status").write_text(str(done.returncode))
"""


def _caller(tmp_path: Path, command: str, *more: str) -> subprocess.Popen:
    """A process running ``command`` under the guard, in a process group of its own in this session (as
    a shell's foreground job: Ctrl-C and Ctrl-Z go to that group)."""
    return subprocess.Popen([sys.executable, "-c", CALLER, command, str(tmp_path), *more], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL, process_group=0)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


@linux_only
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_the_callers_end_ends_the_command_and_its_processes(tmp_path, how):
    """SIGKILL: nothing runs in the caller, the guard hears of it from Linux (parent-death signal).
    SIGINT: ``KeyboardInterrupt`` in the caller's wait, which ends the guard."""
    caller = _caller(tmp_path, STARTS_A_CHILD)
    child = _child_pid(tmp_path)
    caller.send_signal(getattr(signal, how))
    caller.wait(30)
    assert _ends(child)


@linux_only
@pytest.mark.parametrize("how", ["SIGQUIT", "SIGKILL"])
def test_a_signal_to_the_callers_group_that_kills_it_outright_ends_the_command(tmp_path, how):
    """Ctrl-\\ (SIGQUIT), ``kill -9 %1``: the caller's whole process group dies at once; the guard, in a
    session of its own, outlives it and ends the command."""
    caller = _caller(tmp_path, STARTS_A_CHILD)
    child = _child_pid(tmp_path)
    os.killpg(caller.pid, getattr(signal, how))
    caller.wait(30)
    assert _ends(child)


@linux_only
def test_a_second_interruption_kills_at_once_what_ignores_sigterm_outside_the_group(tmp_path):
    """Ctrl-C twice: the first asks (SIGTERM, a 30 s grace here), the second kills, also a process that
    left the command's group and ignores SIGTERM."""
    caller = _caller(tmp_path, "setsid sh -c 'trap \"\" TERM; echo $$ > child.pid; exec sleep 60' & wait", "patient")
    child = _child_pid(tmp_path)
    caller.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert _running(child)                                   # it ignores the request
    caller.send_signal(signal.SIGINT)
    caller.wait(30)
    assert _ends(child, seconds=5)                           # well before the grace's 30 s


def test_run_guarded_refuses_what_subprocess_would_take_otherwise(tmp_path):
    for argv in ([], "echo", b"echo"):
        with pytest.raises(ValueError, match="non-empty list"):
            run_guarded(argv)
    with pytest.raises(ValueError, match="tail_bytes"):
        run_guarded(["true"], tail_bytes=-1)
    assert run_guarded(["sh", "-c", "echo output"], tail_bytes=0).stdout == ""
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        run_guarded(["sleep", "30"], timeout=0.5, grace=1)
    assert raised.value.cmd == ["sleep", "30"]


@linux_only
def test_a_hang_up_the_caller_ignores_is_ignored_and_the_command_finishes(tmp_path):
    caller = _caller(tmp_path, "sleep 2 & echo $! > child.pid; wait; exit 7", "nohup")
    _child_pid(tmp_path)
    os.killpg(caller.pid, signal.SIGHUP)
    assert caller.wait(30) == 0
    assert (tmp_path / "status").read_text() == "7"


@linux_only
def test_ctrl_z_stops_the_command_with_its_caller_and_fg_continues_it(tmp_path):
    caller = _caller(tmp_path, STARTS_A_CHILD)
    child = _child_pid(tmp_path)
    def settles(expected: set[str], pid: int = child) -> bool:
        end = time.monotonic() + 20
        while _state(pid) not in expected and time.monotonic() < end:
            time.sleep(0.05)
        return _state(pid) in expected

    try:
        os.killpg(caller.pid, signal.SIGTSTP)
        assert settles({"T"}) and settles({"T"}, caller.pid)
        os.killpg(caller.pid, signal.SIGCONT)
        assert settles({"S", "R"})
    finally:
        os.killpg(caller.pid, signal.SIGCONT)
        caller.terminate()
        caller.wait(30)
    assert _ends(child)


def test_the_guard_reports_a_signal_death_without_dying_of_it(tmp_path):
    """The command's death by SIGSEGV is told on the status pipe; the guard itself exits (no core dump of
    its own in place of the command's)."""
    from metrics.process_guard import guarded
    read, write = os.pipe()
    guard = subprocess.run(guarded(["sh", "-c", "kill -SEGV $$"], 1.0, write), pass_fds=(write,), cwd=tmp_path)
    os.close(write)
    with os.fdopen(read) as status:
        assert status.read().splitlines()[-1] == f"ended {-signal.SIGSEGV}"
    assert guard.returncode == 128 + signal.SIGSEGV


@linux_only
def test_output_held_open_by_a_process_the_command_left_does_not_keep_the_call_waiting(tmp_path):
    done = run_guarded(["sh", "-c", "sleep 60 & echo $! > child.pid; echo started"], cwd=tmp_path, timeout=30)
    assert (done.returncode, done.stdout) == (0, "started\n")
    os.kill(_child_pid(tmp_path), signal.SIGKILL)


@linux_only
def test_a_command_method_ends_what_its_command_started_at_its_timeout(tmp_path):
    from bench.methods.command import CommandMethod, CommandSpec
    from bench.methods.external import ExternalVideoError
    from metrics.dataset import ClipRecord
    clip = ClipRecord("anna", "test", "c0", video=tmp_path / "c0.mp4", audio=tmp_path / "c0.wav", fps=25.0,
                      num_frames=5, width=16, height=16)
    (tmp_path / "work" / "inputs" / "anna").mkdir(parents=True)
    (tmp_path / "work" / "inputs" / "anna" / "c0.png").write_bytes(b"")
    method = CommandMethod(CommandSpec("tool", "sh -c '" + STARTS_A_CHILD + "' {out}", cwd=str(tmp_path), timeout=1))
    method.prepare(SimpleNamespace(work_dir=tmp_path / "work"))
    with pytest.raises(ExternalVideoError, match=r"tool on anna/c0: the command did not finish within 1 s"):
        method.write(clip, tmp_path / "run" / "tool" / "anna" / "c0.mp4", seed=0)
    assert _ends(_child_pid(tmp_path), seconds=8)
    assert not (tmp_path / "run" / "tool" / "anna" / "c0.mp4").exists()
    assert np.all([not name.startswith(".") for name in os.listdir(tmp_path / "run" / "tool" / "anna")])
