"""Atomic file and folder writing, and the one file hash.

Every writer of the project goes through ``atomic_path``: the content is written to a temporary
file in the same directory (so the final ``os.replace`` is a rename on one file system) and moved
onto the final name only once the writing succeeded. An interrupted run therefore never leaves a
truncated video, wav or npz that a later run would take for a finished one. Model folders do the
same with ``atomic_folder`` / ``replace_folder``.

``file_sha256`` is the one hash of a file's bytes (cache keys, weight ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
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


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 digest of a file's bytes, read ``chunk_size`` bytes at a time."""
    digest = hashlib.sha256()
    update_digest_from_file(digest, path, chunk_size)
    return digest.hexdigest()


def update_digest_from_file(digest: Any, path: str | os.PathLike, chunk_size: int = 1 << 20) -> None:
    """Feed a file's bytes, in chunks, into a ``hashlib`` object (for a digest over several files)."""
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)


def temporary_folder_sibling(path: Path, tag: str = "tmp") -> Path:
    """A fresh hidden folder name next to ``path``: ``model`` -> ``.model.tmp-ab12cd34``."""
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")


def replace_folder(temporary: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder ``temporary`` to ``target``; an older ``target`` is removed only afterwards.

    ``temporary`` must be on the file system of ``target`` (a sibling: ``temporary_folder_sibling``).
    An existing ``target`` (folder, empty or not, or file) is first renamed to a fresh hidden
    sibling (``.<name>.old-XXXXXXXX``), then ``temporary`` is renamed to ``target``, then the old
    one is deleted. Readers therefore see the old complete folder or the new complete one, never a
    mix; a crash between the two renames (two system calls) leaves no ``target`` and the previous
    version under the hidden ``.old-`` name, a crash afterwards leaves at most that hidden folder
    behind. If the second rename fails, the old folder is put back and the error propagates.
    """
    temporary, target = Path(temporary), Path(target)
    retired = None
    if target.exists() or target.is_symlink():
        retired = temporary_folder_sibling(target, "old")
        os.replace(target, retired)
    try:
        os.replace(temporary, target)
    except BaseException:
        if retired is not None:
            os.replace(retired, target)
        raise
    if retired is not None:
        if retired.is_dir() and not retired.is_symlink():
            shutil.rmtree(retired, ignore_errors=True)
        else:
            retired.unlink()
    return target


@contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh, empty, hidden sibling folder to write a model folder into; on success it replaces ``target``.

    The parent of ``target`` is created. On an exception (KeyboardInterrupt included) the temporary
    folder is removed and ``target`` is untouched. Replacing follows ``replace_folder``.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_folder_sibling(final)
    try:
        temporary.mkdir()
        yield temporary
        replace_folder(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike, symbolic: bool = False) -> Path:
    """Put ``source``'s content at ``target`` without rewriting it, replacing ``target`` atomically.

    A hard link by default (it survives moving or deleting the folder ``source`` is in), a symbolic
    link to the resolved ``source`` with ``symbolic``; a copy where the file system refuses links.
    """
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
