"""Typed access to the fields of a JSON document the project reads back (a results file, a baseline).

Such a file may have been edited by hand or written by another version: a field of the wrong JSON
type must end in one ``ValueError`` line naming the file and the field (``where: key: expected a
number, got a string 'abc'``), never a ``KeyError`` or ``AttributeError`` traceback, and never a
silent conversion (``"354.1"`` or ``true`` read as a score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_MISSING = object()
_NAMES = {dict: "an object", list: "a list", str: "a string", float: "a number", int: "an integer",
          bool: "true/false", type(None): "null"}


def json_kind(value: Any) -> str:
    """How a decoded JSON value reads in an error: "a string 'abc'", "a list", "null"."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool) or value is None:
        return "true/false" if isinstance(value, bool) else "null"
    if isinstance(value, (int, float)):
        return f"a number {value!r}"
    text = repr(value)
    return f"a string {text if len(text) <= 40 else text[:37] + '...'}" if isinstance(value, str) else type(value).__name__


def require_object(data: Any, where: str) -> Mapping:
    """``data`` if it is a JSON object; ``ValueError`` naming ``where`` otherwise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {json_kind(data)}")
    return data


def typed_field(data: Mapping, key: str, kind: type | tuple[type, ...], where: str, default: Any = _MISSING) -> Any:
    """``data[key]`` checked to be of ``kind`` (``dict``, ``list``, ``str``, ``bool``; ``float``
    means any JSON number, never true/false). A missing key, or null, gives ``default`` when one is
    given and a ``ValueError`` ("missing field") otherwise."""
    require_object(data, where)
    value = data.get(key)
    if value is None:
        if default is _MISSING:
            raise ValueError(f"{where}: missing field {key!r}")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    accepted = tuple(Mapping if k is dict else (int, float) if k is float else k for k in kinds)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, accepted):
        expected = " or ".join(_NAMES.get(k, k.__name__) for k in kinds)
        raise ValueError(f"{where}: {key}: expected {expected}, got {json_kind(value)}")
    return value


def real(value: Any, where: str) -> float:
    """A JSON number (or null, for NaN) as a float; a string, true/false, an infinite number (Python's
    ``Infinity``, or ``1e400``, which parses as one) or anything else is a ``ValueError`` naming ``where``
    (``float("354.1")`` would read a hand-edited string silently; an infinite baseline passes every run)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number or null, got {json_kind(value)}")
    try:
        number = float(value)
    except OverflowError:                  # an integer beyond a float's range
        number = math.inf
    if math.isinf(number):
        raise ValueError(f"{where}: expected a finite number or null, got {value!r:.40}")
    return number


def schema_problem(data: Any, schema: str, version: int) -> str:
    """Why ``data`` is not a document of ``schema`` at ``version`` ("" when it is): "older" (no
    schema field, or an earlier integer version), or a sentence for a newer version or another kind
    of document."""
    if not isinstance(data, Mapping):
        return f"expected an object, got {json_kind(data)}"
    found, found_version = data.get("schema"), data.get("schema_version")
    if found is None:
        return "older"
    if found != schema:
        return f"a {found!r} document, not a {schema!r} one" if isinstance(found, str) else \
            f"schema: expected a string, got {json_kind(found)}"
    if isinstance(found_version, bool) or not isinstance(found_version, int):
        return f"schema_version: expected an integer, got {json_kind(found_version)}"
    if found_version < version:
        return "older"
    if found_version > version:
        return (f"written by a newer version (schema {schema!r} version {found_version}; this one reads version "
                f"{version}): upgrade the package to read it")
    return ""
