"""Reading a JSON file that someone else wrote, within bounds (standard library only).

``study.json``, a run's ``run.json`` and its ``results.json`` come from other people and other
tools. ``json.loads`` on such a file would read a file of any size into memory and, on a file
nested thousands of levels deep, end in a ``RecursionError`` traceback. ``read_json`` refuses a
file over ``max_bytes`` before reading it and a nesting deeper than ``max_depth`` before parsing,
naming the file. (The package stands alone, so this is its own small helper, not the project's
``metrics.io.bounded``.)
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 100     # a 64-bit seed has 20 digits; Python itself refuses past 4300, naming no file
# A JSON string (with its escapes): brackets inside strings do not nest anything.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JSONFileError(ValueError):
    """A JSON file that is refused or cannot be read; the message starts with the file."""


class _LongInteger(ValueError):
    pass


def _int(text: str) -> int:
    """``json.loads``'s ``parse_int``: at most ``MAX_INT_DIGITS`` digits."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _LongInteger(f"refused: an integer of {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: a key given twice in one object is refused, not resolved by
    keeping its last value (a second ``"seed"`` in study.json would reshuffle every participant's plan)."""
    seen = dict(pairs)
    if len(seen) != len(pairs):
        names = [key for key, _ in pairs]
        twice = next(key for key in names if names.count(key) > 1)
        raise _DuplicateKey(f"refused: the key {twice!r} appears twice in one object (say it once)")
    return seen


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (0 for a scalar), strings ignored."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def read_json(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed content of the JSON file ``path``.

    Raises ``FileNotFoundError`` for a missing file (also when a part of its path is a file), and
    ``JSONFileError`` naming the file for a folder, a file that cannot be read, or one larger than
    ``max_bytes``, nested deeper than ``max_depth``, holding an integer of more than ``MAX_INT_DIGITS``
    digits or a key twice in one object, not UTF-8 (a byte order mark is read past) or not valid JSON.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except NotADirectoryError:   # study.json/study.json: a file where a folder should be
        raise FileNotFoundError(errno.ENOENT, "no such file (a part of its path is a file)", str(path)) from None
    if path.is_dir():
        raise JSONFileError(f"{path}: is a folder, not a JSON file")
    if size > max_bytes:
        raise JSONFileError(f"{path}: refused: {_size(size)}, more than the {_size(max_bytes)} this file may have")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)   # the file may have grown since stat
    except FileNotFoundError:
        raise
    except OSError as error:                    # no permission, a device that fails
        raise JSONFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > max_bytes:
        raise JSONFileError(f"{path}: refused: more than the {_size(max_bytes)} this file may have")
    try:
        text = data.decode("utf-8-sig")         # a byte order mark (a Windows editor's) is read past
    except UnicodeDecodeError as error:
        raise JSONFileError(f"{path}: not valid JSON: not UTF-8 ({error})") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONFileError(f"{path}: refused: JSON nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text, parse_int=_int, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise JSONFileError(f"{path}: not valid JSON: {error}") from None
    except _DuplicateKey as error:
        raise JSONFileError(f"{path}: {error}") from None
    except _LongInteger as error:
        raise JSONFileError(f"{path}: {error}") from None
    except RecursionError:   # not reached within max_depth; kept so no traceback can escape
        raise JSONFileError(f"{path}: refused: JSON nested too deeply") from None
