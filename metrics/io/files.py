"""Atomic file and folder writing, and the one file hash.

Every writer of the project goes through ``atomic_path``: the content is written to a temporary
file in the same directory (so the final ``os.replace`` is a rename on one file system) and moved
onto the final name only once the writing succeeded. An interrupted run therefore never leaves a
truncated video, wav or npz that a later run would take for a finished one. Model folders do the
same with ``atomic_folder`` / ``replace_folder``.

A writer killed with ``kill -9`` (or a power cut) cannot remove its temporary file, so the helpers
clean up after dead writers instead: the first time a process writes into a folder, it removes the
leftovers there (``remove_stale_temporaries``). A temporary name says which writer made it
(``.clip.mp4.tmp-<host>-<pid>-<token>.mp4``: a hash of the host name and the process id), so a
leftover is removed when its writer's process no longer runs on this host, and a file from another
host (a shared file system) or of the older unnamed form only once untouched for
``STALE_SECONDS``. A live writer's file is never removed, whichever process writes next.

``file_sha256`` is the one hash of a file's bytes (cache keys, weight ids).

``hold_folder`` keeps a second process from working in an output folder at the same time (two
runs started into one ``--out`` both did all the work, and the last one's files won): an
exclusive lock on ``<folder>/.lock`` (``filelock``: ``flock`` on POSIX), which the system releases
when its process ends, however it ends, so a killed run leaves no lock to remove by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout


# A leftover whose writer is not known to be dead (another host, the older form) is removed only
# once untouched this long: longer than any single write of the project stays silent.
STALE_SECONDS = 6 * 3600

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# .<name>.<tmp|old>-[<host>-<pid>-]<token><suffix>; the older form has no host and pid.
_TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<tag>tmp|old)-(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-)?"
                             r"(?P<token>[0-9a-f]{8})(?P<suffix>(?:\.[^./]*)?)$")
_cleaned_folders: set[str] = set()


def _writer_token() -> str:
    """``<host>-<pid>-<random>``: who writes the temporary file, and a random part so names never clash."""
    return f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` that keeps its suffix: ``clip.mp4`` ->
    ``.clip.mp4.tmp-<host>-<pid>-ab12cd34.mp4``.

    The suffix is kept because some writers (PyAV, soundfile, numpy) choose the format from it.
    """
    return path.with_name(f".{path.name}.tmp-{_writer_token()}{path.suffix}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True        # it exists (another user's), or the check is impossible: assume alive
    return True


def _is_stale(entry: os.DirEntry, match: re.Match, now: float) -> bool:
    """Whether the leftover ``entry`` belongs to no live writer (see the module doc)."""
    suffix = match["suffix"]
    if match["tag"] == "tmp" and suffix and not match["name"].endswith(suffix):
        return False       # not a name this module makes (the suffix repeats the final name's)
    if match["tag"] == "old" and (suffix or not os.path.lexists(os.path.join(os.path.dirname(entry.path),
                                                                           match["name"]))):
        # A retired folder whose replacement is missing is the only copy left (a crash between
        # replace_folder's two renames): keep it for the user to recover.
        return False
    if match["host"] == _HOST and match["pid"] is not None and int(match["pid"]) > 0:
        return not _process_alive(int(match["pid"]))
    return now - _last_modified(entry) > STALE_SECONDS


def _last_modified(entry: os.DirEntry) -> float:
    """The newest modification time of a file, or of a folder and everything in it (a writer on
    another host may be rewriting files deep inside a temporary folder)."""
    try:
        newest = entry.stat(follow_symlinks=False).st_mtime
        if entry.is_dir(follow_symlinks=False):
            for root, folders, files in os.walk(entry.path):
                for name in folders + files:
                    try:
                        newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                    except FileNotFoundError:
                        continue
    except FileNotFoundError:
        return float("inf")   # gone already: nothing to remove
    return newest


def remove_stale_temporaries(folder: str | os.PathLike, once: bool = False) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` left by writers that died; return them.

    Only names this module makes (``.<name>.tmp-...``, ``.<name>.old-...``) are considered, and a
    live writer's file is kept (see the module doc). With ``once``, a folder already cleaned by this
    process is not scanned again (the writers call it so, before every write).
    """
    folder = Path(folder)
    key = os.path.abspath(folder)
    if once and key in _cleaned_folders:
        return []
    _cleaned_folders.add(key)
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _TEMPORARY_NAME.match(entry.name)
        if match is None or not _is_stale(entry, match, now):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue       # another process cleaned it first
        except OSError:
            continue       # not ours to force (permissions): leave it
        removed.append(Path(entry.path))
    return removed


def _remove_if_present(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    Parent directories of ``path`` are created, and stay when the write fails: another writer may have
    been given a path in them and not yet have created its file (parallel ranks writing one speaker's
    folder), and removing an empty folder would pull it from under that writer. The first write of this
    process into a folder removes the leftovers of dead writers there (``remove_stale_temporaries``).
    The exception of a failed write propagates.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, once=True)
    temporary = temporary_sibling(final)
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave the temp file behind.
        _remove_if_present(temporary)
        raise


def check_file_target(path: str | os.PathLike, what: str = "file", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any work, a path ``atomic_path`` could not write at the end: an existing folder
    (``IsADirectoryError``), a path under a file (``NotADirectoryError``), a folder this process cannot
    create files in (read-only file system, no permission: ``PermissionError``, tried by creating and
    removing an empty file in the nearest existing folder) or, given ``suffixes`` (lower case, with the
    dot), a name ending otherwise (``ValueError``). The message names the path and says it is for a
    ``what`` ("image", "result file"); nothing is left behind."""
    final = Path(path)
    if suffixes and (final.suffix.lower() not in suffixes or final.name.lower() in suffixes):
        raise ValueError(f"{final}: the {what} must be a name ending in {' or '.join(suffixes)}")
    if final.is_dir():
        raise IsADirectoryError(f"{final} is a folder; give the path of the {what} to write")
    blocking = next((parent for parent in final.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(f"{final}: {blocking} is a file, so the {what} cannot be written there")
    if blocking is not None:
        try:
            handle, probe = tempfile.mkstemp(dir=blocking, prefix=".write-check-")
        except OSError as error:
            raise PermissionError(f"{final}: cannot create files in {blocking} ({error.strerror}), so the "
                                  f"{what} cannot be written there") from None
        os.close(handle)
        _remove_if_present(Path(probe))
    return final


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The file that keeps ``folder`` from being a folder (``folder`` itself or one above it), or None when
    it is one or can be made one."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists():
            return None if part.is_dir() else part
    return None


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
    """A fresh hidden folder name next to ``path``: ``model`` -> ``.model.tmp-<host>-<pid>-ab12cd34``
    (``tag`` is ``tmp`` or ``old``)."""
    return path.with_name(f".{path.name}.{tag}-{_writer_token()}")


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
    folder is removed (the parent stays, as with ``atomic_path``) and ``target`` is untouched. Replacing
    follows ``replace_folder``. Leftovers of dead writers in the parent are removed first, as by ``atomic_path``.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, once=True)
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
    remove_stale_temporaries(target.parent, once=True)
    temporary = temporary_sibling(target)
    try:
        try:
            if symbolic:
                os.symlink(source.resolve(), temporary)
            else:
                os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        _remove_if_present(temporary)
        raise
    return target


# -- one process per output folder -----------------------------------------------------------------

LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"      # who holds the lock: read only to say so to the process refused


class FolderBusyError(OSError):
    """Another process holds the output folder's lock (``hold_folder``)."""


class FolderLock:
    """The lock ``hold_folder`` took; ``release()`` (or the end of a ``with`` block) lets it go."""

    def __init__(self, folder: Path, lock: FileLock) -> None:
        self.folder, self._lock = folder, lock

    def release(self) -> None:
        if self._lock.is_locked:
            try:
                _remove_if_present(self.folder / OWNER_NAME)
            except OSError:           # (a folder in its place: the lock is let go all the same)
                pass
            self._lock.release(force=True)

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_folder(folder: str | os.PathLike, what: str, wait: float = 0.0,
                waiting: Callable[[str], None] | None = None) -> FolderLock:
    """Make ``folder`` (and its parents) and lock it for this process: no other process (nor another
    ``hold_folder`` of this one) can hold it until ``release``, or until this process ends.

    ``what`` says who holds it ("imac-bench run"), for the message of the one refused; ``wait``: the
    seconds to wait for the lock (0: none, for a long run; a few for a short write that others take
    in turn; ``waiting`` is then told, in a line, whom it waits for). Raises ``FolderBusyError`` naming
    the folder and, when known, the process holding it (its id, host, command and start); ``OSError``
    naming the lock file when something in its place cannot be locked (a folder, a file it may not open)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_NAME, timeout=0)
    try:
        try:
            lock.acquire()
        except Timeout:
            if not wait:
                raise
            if waiting is not None:
                waiting(f"{folder}: {_holder(folder)} is working in this folder: waiting up to {wait:g} s")
            lock.acquire(timeout=wait)
    except Timeout:
        waited = f" (waited {wait:g} s)" if wait else ""
        raise FolderBusyError(f"{folder}: {_holder(folder)} is working in this folder{waited}: wait for it to end, "
                              "or use another folder") from None
    except OSError as error:
        raise OSError(f"{folder / LOCK_NAME}: cannot be locked ({error.strerror or error}): the lock of {folder} "
                      "(one process works there at a time); remove what is in its place if nothing holds it") from None
    owner = {"what": what, "pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        write_json_atomic(folder / OWNER_NAME, owner)
    except OSError:                   # it only names the holder to the process refused: not worth stopping for
        pass
    except BaseException:
        lock.release(force=True)
        raise
    return FolderLock(folder, lock)


def _holder(folder: Path) -> str:
    """Who holds ``folder``'s lock, in words, from its owner file (written just after the lock is taken)."""
    try:
        owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8")[:4096])
        return (f"another {owner['what']} (process {int(owner['pid'])} on {owner['host']}, started "
                f"{owner['started']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
