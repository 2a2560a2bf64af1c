"""What the userstudy commands share: their names and summaries, the help format, logging, the version.

Standard library only: ``python -m userstudy serve`` and ``python -m userstudy --help`` must not
load pandas or scipy. Each command is defined once, in its module (``build_parser`` and ``main``);
``python -m userstudy <command>`` and ``python -m userstudy.<module>`` both call that ``main``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
from importlib import metadata
from typing import NamedTuple

DISTRIBUTION = "imac-bench"


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "simulate": Command("userstudy.simulate",
                        "Write a synthetic rankings CSV with known differences, or estimate the power "
                        "of a study design."),
    "analyze": Command("userstudy.analyze", "Tables, tests and a report from a rankings CSV."),
    "make-study": Command("userstudy.make_study", "Make a study folder from one folder of videos per method, "
                          "or from a benchmark run folder."),
    "serve": Command("userstudy.serve", "Serve a study's ranking page and collect the answers."),
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: ``(default: 0.05)``, or ``(default: off)`` for a
    flag. An option whose default needs words (it is computed, or there is none) says so in its
    help text, which then already holds ``(default``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or action.default is None or "(default" in text):
            return text
        if action.default is False and action.nargs == 0:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def command_parser(command: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The empty parser of ``command``, named as the user typed it (``python -m userstudy analyze``)."""
    spec = COMMANDS[command]
    return argparse.ArgumentParser(prog=prog or f"python -m {spec.module}", description=spec.summary,
                                   formatter_class=HelpFormatter)


def configure_logging(quiet: bool = False) -> None:
    """Progress on stderr as plain lines; ``quiet`` keeps only warnings and errors."""
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("userstudy").setLevel(level)


def fail(error: object) -> int:
    """Report a command's error on stderr as ``error: ...``; returns the exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    return 2


def interruptible(main):
    """``main`` of a command, ending on Ctrl-C with one line on stderr and exit status 130, not a traceback."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return run


def names(text: str) -> list[str]:
    """A comma-separated list: ``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _in_range(convert, noun: str, low, high):
    """An argparse type: ``convert(text)``, finite and in [low, high], else a message naming the range."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not (math.isfinite(value) and low <= value <= high):
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


def version() -> str:
    """The installed version of the project's distribution, or ``unknown`` when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
