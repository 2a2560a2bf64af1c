"""Atomic file writing: a file appears under its final name complete or not at all.

Every writer of the project goes through ``atomic_path``: the content is written to a temporary
file in the same directory (so the final ``os.replace`` is a rename on one file system) and moved
onto the final name only once the writing succeeded. An interrupted run therefore never leaves a
truncated video, wav or npz that a later run would take for a finished one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` that keeps its suffix: ``clip.mp4`` -> ``.clip.mp4.tmp-ab12cd34.mp4``.

    The suffix is kept because some writers (PyAV, soundfile, numpy) choose the format from it.
    """
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}{path.suffix}")


def _remove_if_present(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    Parent directories of ``path`` are created. The exception of a failed write propagates.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(final)
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave the temp file behind.
        _remove_if_present(temporary)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically and return the path.

    The object is serialised before the file is opened, so an unserialisable object raises
    without touching the disk.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    return write_text_atomic(path, text)


def save_npz_atomic(path: str | os.PathLike, **arrays: Any) -> Path:
    """Save ``arrays`` with ``np.savez_compressed`` to ``path`` atomically and return the path.

    Object arrays are refused (they would need pickle to be read back, which the readers of the
    project never allow).
    """
    converted = {name: np.asarray(value) for name, value in arrays.items()}
    for name, array in converted.items():
        if array.dtype == object:
            raise ValueError(f"{path}: array {name!r} has dtype object, which needs pickle; "
                             "store strings as a fixed-width str array instead")
    with atomic_path(path) as temporary:
        # A file object, not the name: np.savez appends ".npz" to names that lack it.
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **converted)
    return Path(path)


def replace_folder(temporary: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move a finished folder into place; an older folder there is removed only afterwards."""
    import shutil

    temporary, target = Path(temporary), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    temporary.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return target


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike, symbolic: bool = False) -> Path:
    """Put ``source``'s content at ``target`` without rewriting it, replacing ``target`` atomically.

    A hard link by default (it survives moving or deleting the folder ``source`` is in), a symbolic
    link to the resolved ``source`` with ``symbolic``; a copy where the file system refuses links.
    """
    import shutil

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(target)
    try:
        if symbolic:
            os.symlink(source.resolve(), temporary)
        else:
            os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return target
