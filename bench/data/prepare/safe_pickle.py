"""Reading pickles from other tools (SHOW's fits, TalkNet's scores) without running their code.

A pickle can name any importable function and have it called while loading; these files come
from other people's pipelines, so they are read with an unpickler that only rebuilds numpy
arrays, numpy scalars and plain containers (dict, list, tuple, set, str, numbers, bytes,
``collections.OrderedDict``). Any other object (a torch tensor, a custom class, ``os.system``...)
is refused before it is created.
"""

from __future__ import annotations

import builtins
import collections
import importlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class PickleReadError(ValueError):
    """A pickle that cannot be read, or holds an object type that is not allowed."""


def _numpy_core(module_tail: str, name: str) -> Any:
    """``numpy._core.<module_tail>.<name>`` (numpy 2), else ``numpy.core.<module_tail>.<name>``."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module_tail}"), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"numpy has no {module_tail}.{name}")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_SAFE_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "float", "int", "complex", "str",
                  "bytes", "bytearray", "bool")

# (module, name) -> how to get the object; everything else is refused.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    **{(module, name): (lambda name=name: _numpy_core("multiarray", name))
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name in ("_reconstruct", "scalar")},
    **{(module, "_frombuffer"): (lambda: _numpy_core("numeric", "_frombuffer"))
       for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    **{(module, name): (lambda name=name: getattr(builtins, name))
       for module in ("builtins", "__builtin__") for name in _SAFE_BUILTINS},
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("_codecs", "encode"): lambda: _latin1_encode,
}

_CONVERT_HINT = "convert the file to npz (np.savez with numpy arrays) and use that instead"


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays and plain containers."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: Python 2 pickles of numpy arrays
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        getter = _ALLOWED_GLOBALS.get((module, name))
        if getter is None:
            raise PickleReadError(
                f"{self.source}: the pickle holds a forbidden object type {module}.{name}; only "
                f"numpy arrays, numbers, strings and plain containers are read from pickles: {_CONVERT_HINT}")
        return getter()

    def persistent_load(self, pid: Any) -> Any:
        raise PickleReadError(
            f"{self.source}: the pickle holds a forbidden object type (a persistent reference, as "
            f"torch.save writes): {_CONVERT_HINT}")


def load_pickle(path: str | os.PathLike) -> Any:
    """The object pickled in ``path``, rebuilt only from allowed types (``PickleReadError`` else)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, str(path)).load()
    except PickleReadError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, ImportError, UnicodeDecodeError) as error:
        raise PickleReadError(f"{path}: cannot read the pickle: {error}") from error
