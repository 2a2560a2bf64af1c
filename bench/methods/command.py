"""Methods the bench runs as a command once per test clip (``--methods-file``).

A methods file (YAML) defines command methods::

    methods:
      s2g-official:
        label: S2G (official code)
        command: python inference.py --image {reference} --audio {audio} --out {out}
        cwd: /path/to/S2G            # optional: where the command runs (relative: to the methods file)
        env: {CUDA_VISIBLE_DEVICES: "0"}   # optional: strings (or integers) added to the environment
        timeout: 3600                # optional, seconds per clip

The bench runs the command once per test clip. Placeholders: ``{reference}`` (a PNG of the first
frame of the real clip), ``{audio}`` (the clip's wav), ``{out}`` (the mp4 to write), ``{identity}``,
``{clip_id}``, ``{fps}``, ``{num_frames}``, ``{width}``, ``{height}``, and ``{local_rank}``: the bench
process's rank on its machine under a launch of several (0 in one process), so that
``env CUDA_VISIBLE_DEVICES={local_rank} python infer.py ...`` gives each process's commands its own
GPU. Values are shell-quoted and the command runs without a shell. Under a launch the command's
environment lacks the launcher's variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...:
``metrics.distributed.outside_launch``): a command using torch.distributed or accelerate starts on its
own instead of waiting to join the bench's processes.

The command must exit 0 and leave a readable video at ``{out}``; the file is written under a temporary
name (``metrics.io.files.atomic_path``) and moved into place only then, so a failed or interrupted
command never leaves a video the bench would take as finished, and the leftover of a killed run is
removed by the next write into that folder. The command runs under
``metrics.process_guard``: a timeout, a Ctrl-C, a SIGTERM or the death of the bench (SIGKILL included)
ends it and every process it started (SIGTERM, SIGKILL 5 s later; a second Ctrl-C kills at once);
Ctrl-Z stops it with the bench; its standard input is empty. A failure is told with the command's last
lines of output, as a terminal would show them (no colour codes; a line over 300 characters keeps its
start and its end).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import string
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from bench.methods import BUILTIN, CONTROLS, check_method_name
from bench.methods.base import Method
from bench.methods.external import ExternalVideoError, check_video
from bench.scoring import NOISE_FLOOR
from metrics.dataset import ClipRecord
from metrics.distributed import local_rank, outside_launch
from metrics.io.files import atomic_path
from metrics.options import read_yaml
from metrics.process_guard import run_guarded

PLACEHOLDERS = ("reference", "audio", "out", "identity", "clip_id", "fps", "num_frames", "width", "height",
                "local_rank")
# Escape sequences (colours, cursor moves) and control characters of a command's output, left out of messages.
_CONTROLS = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class CommandSpec:
    name: str
    command: str
    label: str = ""
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None


def parse_methods_file(path: str | Path) -> dict[str, CommandSpec]:
    """The command methods of a YAML methods file; errors name the file and the method."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the methods file ({error})") from error
    methods = data.get("methods") if isinstance(data, dict) else None
    if not isinstance(methods, dict) or not methods:
        raise ValueError(f"{path}: expected a 'methods:' mapping of name -> {{command: ...}}")
    specs = {}
    allowed = {"command", "label", "cwd", "env", "timeout"}
    for name, entry in methods.items():
        where = f"{path}: method {name!r}"
        if not isinstance(name, str):                # YAML's true, 1, 2024-01-01 ...
            raise ValueError(f"{path}: methods: {name!r} is not a name (quote it in the YAML)")
        check_method_name(name, f"{path}: methods")
        if name in BUILTIN or name in CONTROLS or name == NOISE_FLOOR:
            raise ValueError(f"{where}: a method the bench has already (built in, or a control it runs on every "
                             f"run): give yours another name (e.g. {name}-command)")
        if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
            raise ValueError(f"{where}: needs a 'command' string")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
        label = entry.get("label")
        if label is not None and not isinstance(label, str):
            raise ValueError(f"{where}: label must be a string, got {label!r}")
        if "\0" in entry["command"]:
            raise ValueError(f"{where}: the command holds a NUL character")
        fields_used = _placeholders(entry["command"])
        bad = sorted(fields_used - set(PLACEHOLDERS))
        if bad:
            raise ValueError(f"{where}: unknown placeholder(s) {', '.join('{' + b + '}' for b in bad)} "
                             f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
        if "out" not in fields_used:
            raise ValueError(f"{where}: the command must write {{out}}")
        try:
            format_command(entry["command"], {field: "x" for field in PLACEHOLDERS})
        except ValueError as error:                  # shlex: an unclosed quote, a dangling escape
            raise ValueError(f"{where}: the command does not split into arguments as a shell would: {error}") from None
        env = entry.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError(f"{where}: env must be a mapping of NAME: value, got {env!r}")
        for key, value in env.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                raise ValueError(f"{where}: env: {key!r} cannot name an environment variable")
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValueError(f"{where}: env {key}: {value!r} is not a string (quote it in the YAML: "
                                 f"'{key}: \"...\"')")
            if "\0" in str(value):
                raise ValueError(f"{where}: env {key}: the value holds a NUL character")
        cwd = entry.get("cwd")
        if cwd is not None:
            if not isinstance(cwd, str) or not cwd:
                raise ValueError(f"{where}: cwd must be a folder's path, got {cwd!r}")
            cwd = str((path.parent / Path(cwd).expanduser()).absolute())    # relative: to the methods file
            if not Path(cwd).is_dir():
                raise ValueError(f"{where}: cwd {cwd} is not a folder")
        timeout = entry.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise ValueError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
        specs[name] = CommandSpec(name, entry["command"], entry.get("label") or f"{name} (command)",
                                       cwd, {str(k): str(v) for k, v in env.items()}, timeout)
    return specs


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def format_command(template: str, values: dict[str, Any]) -> list[str]:
    """The argument list of ``template`` with shell-quoted placeholder values, split like a shell."""
    quoted = {key: shlex.quote(str(value)) for key, value in values.items()}
    return shlex.split(template.format(**quoted))


class CommandMethod(Method):
    """Runs a user's command once per test clip."""

    kind, writes_files = "external", True

    def __init__(self, spec: CommandSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.label = spec.label

    @property
    def source(self) -> dict[str, Any]:
        """What its videos are made from (run.json keeps it: a rerun with another command is refused)."""
        return {"command": self.spec.command, "cwd": self.spec.cwd}

    def prepare(self, context) -> dict[str, Any]:
        self.inputs = Path(context.work_dir) / "inputs"
        return self.source

    def write(self, clip: ClipRecord, out: Path, seed: int) -> dict[str, Any]:
        reference = self.inputs / clip.identity / f"{clip.clip_id}.png"
        if not reference.is_file():
            with atomic_path(reference) as temporary:
                Image.fromarray(clip.first_frame()).save(temporary)
        with atomic_path(out) as temporary:
            argv = self._run(clip, reference, temporary)
            if not temporary.is_file():     # (check_video would name the hidden temporary file "missing")
                raise ExternalVideoError(f"{self.name} on {clip.label}: the command exited with 0 but wrote no "
                                         f"video to its {{out}} ({temporary.name}): {shlex.join(argv)}")
            check_video(temporary)
        return {"command": shlex.join(argv)}

    def _run(self, clip: ClipRecord, reference: Path, temporary: Path) -> list[str]:
        """Run the command for ``clip`` writing ``temporary``; its argument list."""
        values = {"reference": reference.resolve(), "audio": Path(clip.audio).resolve(), "out": temporary.resolve(),
                  "identity": clip.identity, "clip_id": clip.clip_id, "fps": f"{clip.fps:g}",
                  "num_frames": clip.num_frames, "width": clip.width, "height": clip.height,
                  "local_rank": local_rank()}
        argv = format_command(self.spec.command, values)
        try:
            done = run_guarded(argv, cwd=self.spec.cwd, env={**outside_launch(os.environ), **self.spec.env},
                               timeout=self.spec.timeout)
        except OSError as error:
            raise ExternalVideoError(f"{self.name} on {clip.label}: the command failed to run ({error}): "
                                     f"{shlex.join(argv)}") from error
        except subprocess.TimeoutExpired as error:
            raise ExternalVideoError(f"{self.name} on {clip.label}: the command did not finish within "
                                     f"{self.spec.timeout:g} s and was ended, with the processes it started: "
                                     f"{shlex.join(argv)}") from error
        if done.returncode != 0:
            tail = output_tail(done.stderr) or output_tail(done.stdout)
            what = "the process watching the command" if getattr(done, "guard_lost", False) else "the command"
            raise ExternalVideoError(f"{self.name} on {clip.label}: {what} {ended_how(done.returncode)}: "
                                     f"{shlex.join(argv)}" + "".join(f"\n{line}" for line in tail))
        return argv


def ended_how(returncode: int) -> str:
    """``exited with N``, or ``was killed by SIGNAME`` for a negative ``returncode`` (``subprocess``'s)."""
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def output_tail(text: str, lines: int = 5, width: int = 300) -> list[str]:
    """The last ``lines`` non-blank lines of a command's output as a terminal leaves them: a line
    rewritten with carriage returns (a progress bar) is its last version; escape sequences (colours)
    and control characters are left out; a line over ``width`` characters keeps its start and its end."""
    shown = []
    for line in text.split("\n"):
        line = _CONTROLS.sub("", line.rstrip("\r").rpartition("\r")[2]).strip()
        if line:
            head = (width - 3) // 2
            shown.append(line if len(line) <= width else f"{line[:head]} … {line[head + 3 - width:]}")
    return shown[-lines:]
