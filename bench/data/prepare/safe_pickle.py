"""Reading pickles from other tools (SHOW's fits, TalkNet's scores) without running their code,
and without letting a small file take all the memory or time.

A pickle can name any importable function and have it called while loading; these files come
from other people's pipelines, so they are read with an unpickler that only rebuilds numpy
arrays, numpy scalars and plain containers (dict, list, tuple, set, str, numbers, bytes,
``collections.OrderedDict``). Any other object (a torch tensor, a custom class, ``os.system``...)
is refused before it is created.

Running no code is not enough: a 35-byte pickle can ask for ``bytearray(2**30)``, a 49-byte one
for an object array of 2**29 elements, and a few kB of nested memo references describe a
structure of 2**100 elements that ``np.asarray`` or ``str`` would try to expand. So loading is
bounded (``PickleLimits``), with every cost checked *before* the object is built:

* a budget of bytes for the whole load: every object the file creates (strings, containers, memo
  entries, stack marks) and every allowed call (arrays from a shape and dtype, ``bytes(n)``,
  ``list(x)``...) is charged its size first, and the file is refused as soon as the total would
  pass ``budget_bytes`` (by default the larger of 128 MiB and 32 x the file's size: a genuine
  pickle of arrays, numbers and small dicts needs 1 to 20 x its size);
* dict and set keys are limited to str, bytes, bool, None and ints below 2**60 in magnitude (no
  tuples or floats, whose hashes can be made to collide or to cost a walk through a shared
  structure each time);
* once loaded, the structure is walked once (each object visited once): its *expanded* size
  (every shared reference counted in full, as ``np.asarray``, ``json.dumps`` or ``str`` would see
  it) must stay within the budget, its nesting within ``max_depth`` levels, and it may not
  contain itself.

The pure-Python unpickler of the standard library does the decoding (it reads only from an
in-memory view of the file, so a claimed length larger than the file allocates nothing).
"""

from __future__ import annotations

import builtins
import collections
import importlib
import math
import mmap
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class PickleReadError(ValueError):
    """A pickle that cannot be read, holds an object type that is not allowed, or is over a limit."""


@dataclass(frozen=True)
class PickleLimits:
    """What loading one pickle file may cost; a file over a limit is refused (``PickleReadError``).

    ``max_file_bytes``: the largest file read at all. ``budget_bytes``: the bytes the load may
    allocate in total, and the largest expanded size of the result (None: the larger of
    ``min_budget_bytes`` and ``budget_per_file_byte`` x the file size). ``max_depth``: the deepest
    nesting of containers in the result.
    """

    max_file_bytes: int = 4 << 30
    budget_bytes: int | None = None
    min_budget_bytes: int = 128 << 20
    budget_per_file_byte: int = 32
    max_depth: int = 100

    def budget_for(self, file_bytes: int) -> int:
        """The byte budget of a file of ``file_bytes`` bytes."""
        if self.budget_bytes is not None:
            return self.budget_bytes
        return max(self.min_budget_bytes, self.budget_per_file_byte * file_bytes)


def _numpy_core(module_tail: str, name: str) -> Any:
    """``numpy._core.<module_tail>.<name>`` (numpy 2), else ``numpy.core.<module_tail>.<name>``."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module_tail}"), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"numpy has no {module_tail}.{name}")


_TEXT_ENCODINGS = ("latin1", "iso88591", "utf8", "ascii")


def _plain_encoding(encoding: Any) -> bool:
    return isinstance(encoding, str) and len(encoding) <= 32 and \
        encoding.replace("-", "").replace("_", "").lower() in _TEXT_ENCODINGS


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if not isinstance(encoding, str) or \
            encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
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
_SEQUENCES = (list, tuple, set, frozenset, dict, str, bytes, bytearray)
_MAX_KEY_INT = 1 << 60
_MAX_DTYPE_TEXT = 256
_OBJECT_BYTES = 32          # what a number or other small object is charged
_SLOT_BYTES = 8             # a reference on the stack or in a container


class _Refused(Exception):
    """Internal: the file breaks a limit or a rule (turned into a PickleReadError naming it)."""


def _describe(obj: Any) -> str:
    """A short description of an object from the file, never expanding it (``str`` of a shared
    structure could be exponentially long)."""
    if isinstance(obj, (str, bytes)):
        return repr(obj[:40]) + ("..." if len(obj) > 40 else "")
    if isinstance(obj, (bool, float, complex)) or obj is None or \
            (isinstance(obj, int) and obj.bit_length() < 200):
        return repr(obj)
    return f"a {type(obj).__name__}"


def _shape_elements(shape: Any) -> int:
    """The element count of an array shape from a pickle (a tuple of ints >= 0)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) > 64 or \
            not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise _Refused(f"an array shape that is not a tuple of at most 64 ints >= 0 ({_describe(shape)})")
    return math.prod(int(n) for n in shape)


def _dtype_of(spec: Any) -> np.dtype:
    if isinstance(spec, np.dtype):
        return spec
    if isinstance(spec, (str, bytes)) and len(spec) <= _MAX_DTYPE_TEXT:
        try:
            return np.dtype(spec)
        except (TypeError, ValueError) as error:
            raise _Refused(f"not a dtype: {spec!r}: {error}") from error
    raise _Refused(f"an array dtype given as a {type(spec).__name__}")


def _check_key(key: Any) -> None:
    """Dict keys and set elements: only types whose hash is cheap and hard to make collide."""
    if key is None or isinstance(key, (str, bytes, bool)):
        return
    if isinstance(key, (int, np.integer)) and -_MAX_KEY_INT < int(key) < _MAX_KEY_INT:
        return
    raise _Refused(f"a dict key or set element {_describe(key)}; only str, bytes, bool, None and "
                   "ints below 2**60 are read")


class _BoundedUnpickler(pickle._Unpickler):
    """The standard pure-Python unpickler, restricted to allowed types and charged for every allocation."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, source: str, file_bytes: int, budget: int) -> None:
        super().__init__(file, encoding="latin1")  # latin1: Python 2 pickles of numpy arrays
        self.source = source
        self.file_bytes = file_bytes
        self.budget = budget
        self.spent = 0
        self._calls: dict[int, Callable[[tuple], int]] = {}
        for name in _SAFE_BUILTINS:
            self._calls[id(getattr(builtins, name))] = getattr(self, f"_cost_{name}")
        self._calls[id(collections.OrderedDict)] = self._cost_dict
        self._calls[id(_latin1_encode)] = self._cost_encode
        self._calls[id(np.dtype)] = self._cost_dtype
        self._calls[id(_numpy_core("multiarray", "_reconstruct"))] = self._cost_reconstruct
        self._calls[id(_numpy_core("multiarray", "scalar"))] = self._cost_scalar
        self._calls[id(_numpy_core("numeric", "_frombuffer"))] = self._cost_frombuffer

    # -- accounting ------------------------------------------------------------------------------

    def charge(self, nbytes: int, what: str) -> None:
        self.spent += int(nbytes)
        if self.spent > self.budget:
            raise _Refused(f"it would allocate more than {self.budget / 2**20:.0f} MiB "
                           f"(the budget for a {self.file_bytes}-byte file) at {what}")

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

    def checked_call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        """``func(*args)`` for an allowed function, charged its output's size before it runs."""
        if kwargs:
            raise _Refused(f"a call of {getattr(func, '__name__', func)} with keyword arguments")
        if not isinstance(args, tuple):
            raise _Refused(f"call arguments given as a {type(args).__name__}")
        cost = self._calls.get(id(func))
        if cost is None:   # np.ndarray itself, or anything pushed that is not a function
            raise _Refused(f"a call of {getattr(func, '__name__', type(func).__name__)}, which is not allowed")
        self.charge(cost(args), f"{getattr(func, '__name__', func)}()")
        return func(*args)

    # -- the cost of each allowed call (checked before the call) ---------------------------------

    @staticmethod
    def _one(args: tuple, name: str, most: int = 1) -> None:
        if len(args) > most:
            raise _Refused(f"{name}() with {len(args)} arguments")

    def _cost_container(self, args: tuple, name: str, keyed: bool = False) -> int:
        self._one(args, name)
        if not args:
            return 64
        items = args[0]
        if not isinstance(items, _SEQUENCES):
            raise _Refused(f"{name}() of a {type(items).__name__}")
        if keyed and not isinstance(items, (set, frozenset, dict)):
            for item in items:
                _check_key(item)
        return 64 + (4 if keyed else 1) * _SLOT_BYTES * len(items)

    def _cost_list(self, args: tuple) -> int:
        return self._cost_container(args, "list")

    def _cost_tuple(self, args: tuple) -> int:
        return self._cost_container(args, "tuple")

    def _cost_set(self, args: tuple) -> int:
        return self._cost_container(args, "set", keyed=True)

    def _cost_frozenset(self, args: tuple) -> int:
        return self._cost_container(args, "frozenset", keyed=True)

    def _cost_dict(self, args: tuple) -> int:
        self._one(args, "dict")
        if not args:
            return 64
        items = args[0]
        if isinstance(items, dict):
            return 64 + 4 * _SLOT_BYTES * len(items)
        if not isinstance(items, (list, tuple)):
            raise _Refused(f"dict() of a {type(items).__name__}")
        for pair in items:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise _Refused("dict() of items that are not pairs")
            _check_key(pair[0])
        return 64 + 4 * _SLOT_BYTES * len(items)

    def _cost_text(self, args: tuple, name: str) -> int:
        """bytes, bytearray and str: from text/bytes (+ a plain encoding), or (bytes only) a count or ints."""
        self._one(args, name, 3)
        if not args:
            return 64
        value = args[0]
        if len(args) > 1 and not all(_plain_encoding(a) for a in args[1:2]):
            raise _Refused(f"{name}() with encoding {_describe(args[1])}")
        if len(args) > 2 and args[2] not in ("strict", "replace", "ignore"):
            raise _Refused(f"{name}() with errors {_describe(args[2])}")
        if isinstance(value, (str, bytes, bytearray)):
            return 64 + 4 * len(value)
        if name != "str" and len(args) == 1:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return 64 + value               # bytes(n): n zero bytes, charged before they exist
            if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
                return 64 + len(value)
        raise _Refused(f"{name}() of a {type(value).__name__}")

    def _cost_bytes(self, args: tuple) -> int:
        return self._cost_text(args, "bytes")

    def _cost_bytearray(self, args: tuple) -> int:
        return self._cost_text(args, "bytearray")

    def _cost_str(self, args: tuple) -> int:
        return self._cost_text(args, "str")

    def _cost_number(self, args: tuple, name: str) -> int:
        self._one(args, name, 2)
        for value in args:
            if isinstance(value, (str, bytes, bytearray)):
                if len(value) > 5000:
                    raise _Refused(f"{name}() of a {len(value)}-character text")
            elif not isinstance(value, (int, float, complex, np.number)) or \
                    (isinstance(value, int) and value.bit_length() > 1 << 16):
                raise _Refused(f"{name}() of a {type(value).__name__}")
        return _OBJECT_BYTES

    def _cost_int(self, args: tuple) -> int:
        return self._cost_number(args, "int")

    def _cost_float(self, args: tuple) -> int:
        return self._cost_number(args, "float")

    def _cost_complex(self, args: tuple) -> int:
        return self._cost_number(args, "complex")

    def _cost_bool(self, args: tuple) -> int:
        return self._cost_number(args, "bool")

    def _cost_encode(self, args: tuple) -> int:
        if not args or not isinstance(args[0], str) or len(args) > 2 or \
                (len(args) == 2 and not _plain_encoding(args[1])):
            raise _Refused("_codecs.encode() of something other than a text and a plain encoding")
        return 64 + len(args[0])

    def _cost_dtype(self, args: tuple) -> int:
        self._one(args, "dtype", 3)
        if not args or isinstance(args[0], np.dtype):
            return 1024
        if not isinstance(args[0], (str, bytes)) or len(args[0]) > _MAX_DTYPE_TEXT:
            raise _Refused("dtype() of something other than a short text")
        return 1024

    def _cost_reconstruct(self, args: tuple) -> int:
        if len(args) != 3 or args[0] is not np.ndarray:
            raise _Refused("numpy _reconstruct() of something other than (ndarray, shape, dtype)")
        count = _shape_elements(args[1])
        return 128 + count * max(_dtype_of(args[2]).itemsize, 1)

    def _cost_scalar(self, args: tuple) -> int:
        if not 1 <= len(args) <= 2 or not isinstance(args[0], np.dtype):
            raise _Refused("numpy scalar() of something other than (dtype, data)")
        if len(args) == 2 and not args[0].hasobject and \
                (not isinstance(args[1], (bytes, str)) or len(args[1]) != args[0].itemsize):
            raise _Refused(f"a numpy scalar whose data does not have the {args[0].itemsize} bytes of its dtype")
        return _OBJECT_BYTES + args[0].itemsize

    def _cost_frombuffer(self, args: tuple) -> int:
        if len(args) != 4 or not isinstance(args[0], (bytes, bytearray)):
            raise _Refused("numpy _frombuffer() of something other than (buffer, dtype, shape, order)")
        dtype = _dtype_of(args[1])
        if dtype.hasobject or _shape_elements(args[2]) * dtype.itemsize != len(args[0]):
            raise _Refused("a numpy buffer whose size does not match its shape and dtype")
        return 128

    def check_array_state(self, array: np.ndarray, state: Any) -> int:
        """``ndarray.__setstate__``'s state: (version,) shape, dtype, is_fortran, data of that size."""
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("an array state that is not a 4- or 5-tuple")
        shape, dtype, data = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype):
            raise _Refused("an array state without a dtype")
        count = _shape_elements(shape)
        nbytes = count * max(dtype.itemsize, 1)
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                raise _Refused(f"an object array of {count} elements whose data is not a list of as many")
        elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize:
            raise _Refused(f"an array of shape {tuple(shape)} and dtype {dtype} whose data does not "
                           f"have its {count * dtype.itemsize} bytes")
        return 128 + nbytes

    # -- opcodes that need more than the standard library's code ---------------------------------

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = self.checked_call(stack[-1], args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self.checked_call(cls, args))
    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self.checked_call(cls, args, kwargs))
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: list) -> None:   # INST and OBJ
        self.append(self.checked_call(klass, tuple(args)))

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            self.charge(self.check_array_state(inst, state), "an array's data")
        elif isinstance(inst, np.dtype):
            if not isinstance(state, tuple) or len(state) > 9:
                raise _Refused("a dtype state that is not a tuple of at most 9 fields")
            fields = [len(part) for part in state if isinstance(part, (tuple, dict))]
            self.charge(1024 + 256 * sum(fields), "a dtype's state")
        else:
            raise _Refused(f"setting the state of a {type(inst).__name__}")
        inst.__setstate__(state)
    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self) -> None:
        size, = pickle.unpack("<Q", self.read(8))
        if size > self.file_bytes:
            raise _Refused(f"a {size}-byte bytearray in a {self.file_bytes}-byte file")
        self.charge(size + 64, "a bytearray")
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not list:
            raise _Refused(f"appending to a {type(target).__name__}")
        target.append(value)
    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not list:
            raise _Refused(f"appending to a {type(target).__name__}")
        target.extend(items)
    dispatch[pickle.APPENDS[0]] = load_appends

    def _set_items(self, items: list) -> None:
        target = self.stack[-1]
        if not isinstance(target, dict):   # dict or OrderedDict: never an array or a bytearray
            raise _Refused(f"setting items of a {type(target).__name__}")
        if len(items) % 2:
            raise _Refused("an odd number of dict items")
        self.charge(4 * _SLOT_BYTES * len(items), "dict items")
        for index in range(0, len(items), 2):
            _check_key(items[index])
            target[items[index]] = items[index + 1]

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items([key, value])
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        self._set_items(self.pop_mark())
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise _Refused(f"adding items to a {type(target).__name__}")
        for item in items:
            _check_key(item)
        self.charge(4 * _SLOT_BYTES * len(items), "set items")
        target.update(items)
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        for item in items:
            _check_key(item)
        self.charge(64 + 4 * _SLOT_BYTES * len(items), "a frozenset")
        self.append(frozenset(items))
    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def load_dict(self) -> None:
        items = self.pop_mark()
        self.append({})
        self._set_items(items)
    dispatch[pickle.DICT[0]] = load_dict


def _charging(load: Callable[[Any], None], reference: bool) -> Callable[[Any], None]:
    """An opcode handler that also charges what it pushes: a slot, plus the object when it is new."""
    def run(self: _BoundedUnpickler) -> None:
        load(self)
        top = self.stack[-1]
        self.charge(_SLOT_BYTES if reference else _SLOT_BYTES + sys.getsizeof(top), "an object")
    return run


def _charging_fixed(load: Callable[[Any], None], nbytes: int) -> Callable[[Any], None]:
    def run(self: _BoundedUnpickler) -> None:
        self.charge(nbytes, "a memo entry or stack mark")
        load(self)
    return run


def _install_charges() -> None:
    table = _BoundedUnpickler.dispatch
    new_objects = ("INT BININT BININT1 BININT2 LONG LONG1 LONG4 STRING BINSTRING SHORT_BINSTRING UNICODE "
                   "BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 FLOAT BINFLOAT "
                   "NONE NEWTRUE NEWFALSE EMPTY_LIST EMPTY_DICT EMPTY_SET EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 "
                   "TUPLE3 LIST DICT FROZENSET").split()   # calls are charged by checked_call
    references = "GET BINGET LONG_BINGET DUP GLOBAL STACK_GLOBAL EXT1 EXT2 EXT4".split()
    fixed = {"MARK": 64, "PUT": 96, "BINPUT": 96, "LONG_BINPUT": 96, "MEMOIZE": 96}
    for names, wrap in ((new_objects, lambda f: _charging(f, False)),
                        (references, lambda f: _charging(f, True))):
        for name in names:
            code = getattr(pickle, name)[0]
            table[code] = wrap(table[code])
    for name, nbytes in fixed.items():
        code = getattr(pickle, name)[0]
        table[code] = _charging_fixed(table[code], nbytes)


_install_charges()


def _children(obj: Any) -> Any:
    if isinstance(obj, dict):
        return [item for pair in obj.items() for item in pair]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        return obj.ravel().tolist() if obj.dtype.names else list(obj.flat)
    return ()


def _own_size(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return 128 + obj.nbytes
    if isinstance(obj, (str, bytes, bytearray)):
        return 64 + len(obj)
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        return 64 + _SLOT_BYTES * len(obj) * (2 if isinstance(obj, dict) else 1)
    return _OBJECT_BYTES


def check_expanded(obj: Any, budget: int, max_depth: int) -> int:
    """The expanded size of ``obj`` (every shared reference counted in full), visiting each object once.

    Raises ``_Refused`` when it passes ``budget``, when containers nest deeper than ``max_depth``,
    or when a container contains itself.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    keep_alive: list[Any] = []      # the children lists of object arrays: their ids must stay unique
    # Each frame: [object, iterator over its children, running size].
    stack: list[list[Any]] = [[obj, iter(_children(obj)), _own_size(obj)]]
    in_progress.add(id(obj))
    while True:
        frame = stack[-1]
        child = next(frame[1], _DONE)
        if child is _DONE:
            stack.pop()
            key = id(frame[0])
            in_progress.discard(key)
            sizes[key] = frame[2]
            if not stack:
                return frame[2]
            parent = stack[-1]
            parent[2] += frame[2]
            if parent[2] > budget:
                raise _Refused(f"its content expands to more than {budget / 2**20:.0f} MiB "
                               "(shared references counted in full)")
            continue
        key = id(child)
        if key in sizes:
            frame[2] += sizes[key]
            if frame[2] > budget:
                raise _Refused(f"its content expands to more than {budget / 2**20:.0f} MiB "
                               "(shared references counted in full)")
            continue
        if key in in_progress:
            raise _Refused("a container that contains itself")
        children = _children(child)
        if not children:
            sizes[key] = _own_size(child)
            frame[2] += sizes[key]
            keep_alive.append(child)
            continue
        if len(stack) >= max_depth:
            raise _Refused(f"containers nested more than {max_depth} deep")
        keep_alive.append(child)
        in_progress.add(key)
        stack.append([child, iter(children), _own_size(child)])


_DONE = object()


def load_pickle(path: str | os.PathLike, limits: PickleLimits = PickleLimits()) -> Any:
    """The object pickled in ``path``, rebuilt only from allowed types and within ``limits``.

    Raises ``PickleReadError`` (naming the file and the reason) for a file that cannot be read, a
    forbidden type, or one over a limit of ``PickleLimits`` (see the module doc); nothing the file
    asks for is allocated before its size has been checked.
    """
    path = Path(path)
    try:
        file_bytes = path.stat().st_size
        if file_bytes > limits.max_file_bytes:
            raise _Refused(f"the file has {file_bytes} bytes, over the limit of {limits.max_file_bytes}")
        budget = limits.budget_for(file_bytes)
        with open(path, "rb") as handle:
            if file_bytes == 0:
                raise EOFError("the file is empty")
            # A view of the file: read(n) returns at most what is there, whatever n the file claims.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                unpickler = _BoundedUnpickler(view, str(path), file_bytes, budget)
                result = unpickler.load()
                del unpickler
        check_expanded(result, budget, limits.max_depth)
        return result
    except PickleReadError:
        raise
    except _Refused as error:
        raise PickleReadError(f"{path}: refused: {error}; if the file is genuine, raise the limit "
                              f"(PickleLimits) or {_CONVERT_HINT}") from None
    except (MemoryError, RecursionError) as error:
        raise PickleReadError(f"{path}: refused: loading it ran out of memory or nesting "
                              f"({type(error).__name__}): {_CONVERT_HINT}") from None
    except Exception as error:   # whatever a damaged or crafted file makes the decoder raise
        raise PickleReadError(f"{path}: cannot read the pickle: {type(error).__name__}: {error}") from error
