"""Typed options: the one loader of every options section in the project.

A section of options (a YAML config, a method's part of the bench config, a command's settings) is
a dataclass whose fields are the keys, with their types and defaults. ``build_options`` turns a
mapping into that dataclass and refuses, naming the section and the key, an unknown key (a typo
is an error, not a silently ignored setting), a value of the wrong type, or a value outside a
``Literal`` choice. Nested dataclasses are nested sections (``stage1.lr``); ``key.sub=value``
overrides (YAML values) apply on top of a mapping with ``apply_overrides``.

    @dataclass
    class Corpus:
        clips: int = 8
        size: int = 128

    build_options(Corpus, {"clips": 4}, "corpus")      # Corpus(clips=4, size=128)
    build_options(Corpus, {"clip": 4}, "corpus")       # OptionsError: corpus: unknown key(s) clip (known: clips, size)
    build_options(Corpus, {"size": "big"}, "corpus")   # OptionsError: corpus: size: expected an integer, got 'big'

Supported field types: bool, int, float (an int is accepted and converted), str, ``X | None``,
``Literal[...]``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, ``Any`` and dataclasses.

A number's range is part of its field (``ranged``); a value outside it is refused like a wrong type:

    @dataclass
    class Stage:
        steps: int = ranged(1000, ge=1)
        lr: float = ranged(1e-4, gt=0)

    build_options(Stage, {"steps": 0}, "stage1")      # OptionsError: stage1: steps: must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class OptionsError(ValueError):
    """Options that do not fit their section; the message names the section and the key."""


_BOUNDS = {"ge": (">=", lambda value, bound: value >= bound), "gt": (">", lambda value, bound: value > bound),
           "le": ("<=", lambda value, bound: value <= bound), "lt": ("<", lambda value, bound: value < bound)}


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Any:
    """A dataclass field with ``default`` whose numbers ``build_options`` keeps finite and within the
    bounds (``ge``: >=, ``gt``: >, ``le``: <=, ``lt``: <); ``None`` values (of an ``X | None`` field) pass."""
    bounds = {name: bound for name, bound in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if bound is not None}
    return dataclasses.field(default=default, metadata={"range": bounds})


def field_range(kind: type, name: str) -> dict[str, float]:
    """The bounds ``ranged`` gave the field ``name`` of the dataclass ``kind`` (``{"ge": 1}``; {} if none)."""
    return dict(next(f for f in dataclasses.fields(kind) if f.name == name).metadata.get("range", {}))


def range_problem(bounds: Mapping[str, float], value: Any) -> str | None:
    """What is wrong with the number ``value`` for ``bounds`` (``ranged``'s), or None: not finite, or
    outside them (``must be >= 1, got 0``). ``None`` passes."""
    if value is None or not bounds:
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if not all(_BOUNDS[name][1](value, bound) for name, bound in bounds.items()):
        wanted = " and ".join(f"{_BOUNDS[name][0]} {_bound_text(bound)}" for name, bound in bounds.items())
        return f"must be {wanted}, got {value!r}"
    return None


def _bound_text(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"    # an int whole: 2**63 - 1, not 9.22337e+18


def _check_range(bounds: Mapping[str, float], value: Any, key: str) -> None:
    problem = range_problem(bounds, value)
    if problem:
        raise _KeyProblem(key, problem)


def build_options(kind: type[T], values: Mapping[str, Any] | None, section: str) -> T:
    """``kind(**values)`` after checking every key and value against ``kind``'s fields.

    ``section`` names the options in messages (``"bench config toy.yaml"``, ``"methods.s2g"``);
    a nested key is named by its path (``stage1.lr``). Missing keys take the dataclass defaults.
    Raises ``OptionsError``: "SECTION: KEY: what is wrong".
    """
    try:
        return _build(kind, {} if values is None else values, "")
    except _KeyProblem as problem:
        where = f"{problem.key}: " if problem.key else ""
        raise OptionsError(f"{section}: {where}{problem.message}") from None


class _KeyProblem(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(key, message)
        self.key, self.message = key, message


def _build(kind: type[T], values: Any, where: str) -> T:
    if not isinstance(values, Mapping):
        raise _KeyProblem(where, f"expected a mapping of options, got {values!r}")
    hints = get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    names = list(fields)
    unknown = sorted(set(values) - set(names), key=str)
    if unknown:
        raise _KeyProblem(where, f"unknown key(s) {', '.join(map(str, unknown))} "
                                 f"(known: {', '.join(sorted(names))})")
    built = {}
    for name, value in values.items():
        key = f"{where}.{name}" if where else name
        built[name] = _checked(hints[name], value, key)
        _check_range(fields[name].metadata.get("range", {}), built[name], key)
    return kind(**built)


def _checked(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against the type ``hint`` (converted where lossless: int -> float)."""
    if hint is Any:
        return value
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) not in args:
                raise _KeyProblem(key, "may not be null")
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            return _checked(options[0], value, key)
        for option in options:
            try:
                return _checked(option, value, key)
            except _KeyProblem:
                continue
        raise _KeyProblem(key, f"expected {' or '.join(_describe(o) for o in options)}, got {value!r}")
    if value is None:
        raise _KeyProblem(key, "may not be null")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is Literal:
        if not any(value == choice and type(value) is type(choice) for choice in args):
            raise _KeyProblem(key, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _KeyProblem(key, f"expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _KeyProblem(key, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _KeyProblem(key, f"expected a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:
            raise _KeyProblem(key, f"too large for a number: {str(value)[:12]}... ({len(str(value))} digits)") from None
    if hint is str:
        if not isinstance(value, str):
            raise _KeyProblem(key, f"expected a string, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            hint_text = (f" (in YAML a list is [{', '.join(part.strip() for part in value.split(','))}])"
                         if isinstance(value, str) and "," in value else "")
            raise _KeyProblem(key, f"expected a list, got {value!r}{hint_text}")
        item = args[0] if args else Any
        items = [_checked(item, element, f"{key}[{index}]") for index, element in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise _KeyProblem(key, f"expected a mapping, got {value!r}")
        item = args[1] if len(args) == 2 else Any
        return {name: _checked(item, element, f"{key}.{name}") for name, element in value.items()}
    raise TypeError(f"{key}: options of type {hint!r} are not supported")


def _describe(hint: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin = get_origin(hint)
    return {list: "a list", tuple: "a list", dict: "a mapping"}.get(origin, getattr(hint, "__name__", str(hint)))


def apply_overrides(values: Mapping[str, Any], overrides: Iterable[str], section: str = "override") -> dict[str, Any]:
    """A copy of ``values`` with ``key.sub=value`` overrides applied (each value parsed as YAML)."""
    result = _deep_copy(values)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OptionsError(f"{section} {override!r}: expected key.sub=value")
        value = parse_yaml(text, f"{section} {override!r}: the value")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise OptionsError(f"{section} {override!r}: {part} is not a section")
        node[parts[-1]] = value
    return result


def _deep_copy(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in values.items()}


# A YAML file of options: at most 4 MiB (the packaged configs are a few KB), and at most 100,000
# values once every alias (``*name``) and merge (``<<: *name``) is followed. YAML aliases share
# one node, so a 1 KB "billion laughs" file expands to 10**9 values in whatever walks or copies
# it (merges expand while loading); a real config with anchors has a few hundred.
MAX_YAML_BYTES = 4 << 20
MAX_YAML_VALUES = 100_000


def _expanded_values(root: yaml.Node, where: str) -> int:
    """The number of values of the composed document ``root`` with every alias expanded (capped
    just above ``MAX_YAML_VALUES``); ``OptionsError`` for an alias that contains itself."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = ([item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(MAX_YAML_VALUES + 1, 1 + sum(sizes[id(child)] for child in children))
            continue
        if id(node) in open_nodes:
            raise OptionsError(f"{where}: refused: an alias refers to a node that contains it "
                               f"(line {node.start_mark.line + 1})")
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise OptionsError(f"{where}: refused: an alias refers to a node that contains it "
                                   f"(line {child.start_mark.line + 1})")
            stack.append((child, False))
    return sizes[id(root)]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the plain scalars resolved by YAML 1.2's core schema (YAML 1.2.2,
    10.3.2) instead of YAML 1.1's, which PyYAML follows: ``1e-4`` is a number (1.1: the text '1e-4');
    ``yes``, ``no``, ``on``, ``off``, ``1:30``, ``1_000`` and ``2001-12-14`` are text (1.1: true, false,
    true, false, 90, 1000 and a date); ``017`` is 17 (1.1: octal 15), ``0o17`` is 15 and ``0x1F`` 31.
    So ``lr: 1e-4`` is the number and ``mixed_precision: no`` the text it reads as."""

    yaml_implicit_resolvers: dict = {}

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        return int(text[2:] if base != 10 else text, base)


_CORE_SCALARS = [   # (tag, pattern, first characters) of YAML 1.2.2's core schema, 10.3.2 "Tag Resolution"
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+0123456789.")),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),      # merge keys (<<: *name) stay, as in PyYAML
]
for _tag, _pattern, _first in _CORE_SCALARS:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_core_int)


def _refuse_repeated_keys(root: yaml.Node, where: str) -> None:
    """``OptionsError`` naming the key and its two lines when a mapping of the composed document gives a
    key twice. YAML requires keys to be unique (YAML 1.2.2, 3.2.1.1); PyYAML keeps the last silently, so
    a second ``fgd:`` line further down a file would quietly replace the first. Merge keys (``<<``) may
    repeat, as PyYAML reads them."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in lines:
                        raise OptionsError(f"{where}: line {line}: the key {key.value!r} is given twice (first on "
                                           f"line {lines[key.tag, key.value]}); keep one")
                    lines[key.tag, key.value] = line
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)`` with YAML 1.2's plain scalars (``_Loader``: ``1e-4`` a number, ``no`` text), bounded: refused (``OptionsError`` starting with ``where``) when
    not valid YAML, nested too deep for the parser, expanding to more than ``MAX_YAML_VALUES``
    values once its aliases are followed (checked on the composed nodes, before anything is built),
    or giving a key twice in one mapping.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, where) > MAX_YAML_VALUES:
            raise OptionsError(f"{where}: refused: more than {MAX_YAML_VALUES} values once its aliases (*name) "
                               "are followed; options need far fewer (an alias bomb?)")
        _refuse_repeated_keys(node, where)
        return loader.construct_document(node)
    except RecursionError:
        raise OptionsError(f"{where}: refused: YAML nested too deeply") from None
    except yaml.YAMLError as error:
        raise OptionsError(f"{where}: not valid YAML: {error}") from None
    except OptionsError:
        raise
    except (ValueError, OverflowError) as error:      # a value its tag cannot build (!!int 1.5, 1 and 5000 zeros)
        raise OptionsError(f"{where}: not a valid YAML value: {error}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a YAML file; ``OptionsError`` naming the file otherwise.

    A file with no YAML document (empty, or comments only) is refused: taken as ``{}`` it silently gave
    every default, where the user meant some file of options (a truncated copy, the wrong file). A file
    holding ``{}`` is the way to ask for the defaults. Bounded like ``parse_yaml``, and the file may have at
    most ``MAX_YAML_BYTES`` (4 MiB).
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise OptionsError(f"{path}: refused: {size} bytes, more than the {MAX_YAML_BYTES} an options file may have")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise OptionsError(f"{path}: not valid YAML: not UTF-8 ({error})") from None
    values = parse_yaml(text, str(path))
    if values is None:
        raise OptionsError(f"{path}: empty: no options in it")
    if not isinstance(values, dict):
        raise OptionsError(f"{path}: expected a mapping of options, got {type(values).__name__}")
    return values


def resolve_named_file(name_or_path: str | os.PathLike, folder: Path, what: str) -> Path:
    """A YAML file given by path, or one packaged in ``folder`` named by its stem (``toy``).

    Raises ``FileNotFoundError`` listing the packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = folder / f"{name_or_path}.yaml"
    if path.suffix not in (".yaml", ".yml") and packaged.is_file():
        return packaged
    names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise FileNotFoundError(f"{name_or_path}: no such {what} file, and not a packaged {what} ({names})")


def options_to_dict(options: Any) -> dict[str, Any]:
    """The plain mapping of an options dataclass (what ``build_options`` reads back)."""
    return dataclasses.asdict(options)
