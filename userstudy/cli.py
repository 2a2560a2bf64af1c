"""What the userstudy commands share: their names and summaries, the help format, logging, the version,
and the form of their errors (``fail``, ``problems_message``).

Standard library only: ``python -m userstudy serve`` and ``python -m userstudy --help`` must not
load pandas or scipy. Each command is defined once, in its module (``build_parser`` and ``main``);
``python -m userstudy <command>`` and ``python -m userstudy.<module>`` both call that ``main``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

DISTRIBUTION = "imac-bench"


class Command(NamedTuple):
    module: str
    summary: str
    function: str       # the Python function the command is a thin layer over, named in its --help
    run_function: str = ""   # the one it calls with --run instead (make-study), named beside it


COMMANDS: dict[str, Command] = {
    "simulate": Command("userstudy.simulate",
                        "Write a synthetic rankings CSV with known differences, or estimate the power "
                        "of a study design.", "userstudy.simulate.simulate"),
    "analyze": Command("userstudy.analyze", "Tables, tests and a report from a rankings CSV.",
                       "userstudy.analyze.analyze"),
    "make-study": Command("userstudy.make_study", "Make a study folder from one folder of videos per method, "
                          "or from a benchmark run folder.", "userstudy.make_study.make_study",
                          "userstudy.make_study.make_study_from_run"),
    "serve": Command("userstudy.serve", "Serve a study's ranking page and collect the answers.",
                     "userstudy.serve.serve"),
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: ``(default: 0.05)``, or ``(default: off)`` for a
    flag. An option whose default needs words (it is computed, or there is none) says so in its
    help text, which then already holds ``(default``."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Each line of a description or epilog filled alone (the epilog's lines stay lines)."""
        return "\n".join(super(HelpFormatter, self)._fill_text(line, width, indent) for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or action.default is None or "(default" in text):
            return text
        if action.default is False and action.nargs == 0:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line on stderr, ``PROG: error: MESSAGE (see PROG --help)``,
    with exit status 2 (argparse's own prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_parser(command: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The empty parser of ``command``, named as the user typed it (``python -m userstudy analyze``); its
    help ends with the Python function the command calls."""
    spec = COMMANDS[command]
    return ArgumentParser(prog=prog or f"python -m {spec.module}", description=spec.summary,
                          epilog=f"Python: {spec.function}" + (f"\nPython, with --run: {spec.run_function}"
                                                                if spec.run_function else ""),
                          formatter_class=HelpFormatter)


def configure_logging(quiet: bool = False) -> None:
    """Progress on stderr as plain lines; ``quiet`` keeps only warnings and errors."""
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("userstudy").setLevel(level)


def fail(error: object, prog: str | None = None) -> int:
    """Report a command's error on stderr as argparse reports a bad option, ``PROG: error: ...``
    (``python -m userstudy analyze: error: rankings.csv: no such file``), or ``error: ...`` without
    ``prog``; returns the exit status 2. The message names the file first when a file is the cause."""
    print(f"{prog}: error: {error}" if prog else f"error: {error}", file=sys.stderr)
    return 2


MAX_PROBLEMS_SHOWN = 200


def problems_message(problems: list[str], source: object, noun: str) -> str:
    """The message of an error listing problems (of a rankings file, a study file, ...):
    ``SOURCE: PROBLEM`` on one line for a single problem; otherwise ``SOURCE: N problems in NOUN:``
    and one ``  - PROBLEM`` line each (at most ``MAX_PROBLEMS_SHOWN``)."""
    where = f"{source}: " if source else ""
    if len(problems) == 1:
        return f"{where}{problems[0]}"
    shown = [f"  - {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    return f"{where}{len(problems)} problems in {noun}:\n" + "\n".join(shown)


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The first existing part of the folders above ``path`` when it is a file (so nothing can be
    written at ``path``: ``runs/r.csv/out``), else None."""
    for parent in Path(path).parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "participant")`` -> ``1 participant``; ``count(3, "participant")`` -> ``3 participants``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def interruptible(main):
    """``main`` of a command, ending on Ctrl-C with one line on stderr and exit status 130, and on a closed
    pipe on stdout (``| head``) quietly with exit status 141 (128 + SIGPIPE, as a shell reports a command
    the pipe ended), not a traceback."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:      # the reader went away: no error of the command's (the exit's flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # would fail again)
            return 141
    return run


def names(text: str) -> list[str]:
    """An argparse type: a comma-separated list, ``"a, b,,c"`` -> ``["a", "b", "c"]``; a list with no
    name (``""``, ``","``) is an error, never taken for the option's default."""
    found = [name.strip() for name in text.split(",") if name.strip()]
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing: give comma-separated names")
    return found


def _in_range(convert, noun: str, low, high, open_: bool = False):
    """An argparse type: ``convert(text)``, finite and in [low, high] (``open_``: in (low, high)), else a
    message naming the range."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        inside = low < value < high if open_ else low <= value <= high
        if not (math.isfinite(value) and inside):
            if open_:
                raise argparse.ArgumentTypeError(f"{text} is not strictly between {low:g} and {high:g}")
            bounds = f"{low}..{high}" if convert is int else f"{low:g}..{high:g}"
            raise argparse.ArgumentTypeError(f"{text} is outside {bounds}")
        return value
    return parse


def int_in(low: int, high: int):
    """An argparse type: an integer in [low, high]."""
    return _in_range(int, "an integer", low, high)


def float_in(low: float, high: float):
    """An argparse type: a finite number in [low, high]."""
    return _in_range(float, "a number", low, high)


def float_between(low: float, high: float):
    """An argparse type: a finite number strictly between ``low`` and ``high`` (a level or alpha in (0, 1))."""
    return _in_range(float, "a number", low, high, open_=True)


def version() -> str:
    """The installed version of the project's distribution, or ``unknown`` when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
