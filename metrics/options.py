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
"""

from __future__ import annotations

import dataclasses
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
    names = [f.name for f in dataclasses.fields(kind) if f.init]
    unknown = sorted(set(values) - set(names), key=str)
    if unknown:
        raise _KeyProblem(where, f"unknown key(s) {', '.join(map(str, unknown))} "
                                 f"(known: {', '.join(sorted(names))})")
    built = {name: _checked(hints[name], value, f"{where}.{name}" if where else name)
             for name, value in values.items()}
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
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _KeyProblem(key, f"expected a string, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _KeyProblem(key, f"expected a list, got {value!r}")
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
    """PyYAML's safe loader, reading numbers in exponent notation as YAML 1.2 does: ``1e-4``, ``5E3``
    and ``2.5e4`` are floats (YAML 1.1, which PyYAML follows, wants a dot and a signed exponent,
    ``1.0e-4``, and reads the others as strings: ``lr: 1e-4`` would be the text '1e-4')."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)`` (with YAML 1.2's exponent numbers: ``_Loader``), bounded: refused (``OptionsError`` starting with ``where``) when
    not valid YAML, nested too deep for the parser, or expanding to more than ``MAX_YAML_VALUES``
    values once its aliases are followed (checked on the composed nodes, before anything is built).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, where) > MAX_YAML_VALUES:
            raise OptionsError(f"{where}: refused: more than {MAX_YAML_VALUES} values once its aliases (*name) "
                               "are followed; options need far fewer (an alias bomb?)")
        return loader.construct_document(node)
    except RecursionError:
        raise OptionsError(f"{where}: refused: YAML nested too deeply") from None
    except yaml.YAMLError as error:
        raise OptionsError(f"{where}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a YAML file (empty file: {}); ``OptionsError`` naming the file otherwise.

    Bounded like ``parse_yaml``, and the file may have at most ``MAX_YAML_BYTES`` (4 MiB).
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
        return {}
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
