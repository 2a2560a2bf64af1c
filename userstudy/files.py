"""Atomic file (and folder) writing for the package's outputs (standard library only).

A file appears under its final name complete or not at all: it is written to a hidden temporary
file in the same folder, flushed to disk, and renamed onto the final name. A folder made in one go
(a study folder of ``make-study``) is built the same way: in a hidden temporary folder beside it,
renamed onto the final name at the end (``atomic_folder``), removed on failure. Other tools read the
analysis outputs by name, so a half-written ``kruskal.csv`` must never exist. (The package stands
alone, so it does not borrow the project's ``metrics.io.files``; this is a small copy of its
naming and clean-up, for files only.)

A writer killed with ``kill -9`` cannot remove its temporary file, so the first write of a process
into a folder removes the leftovers there instead (``remove_stale_temporaries``). A temporary name
says which writer made it (``.kruskal.csv.tmp-<host>-<pid>-<token>.csv``: a hash of the host name
and the process id; a folder's has no suffix), so a leftover is removed when its writer's process
no longer runs on this host, and one from another host (a shared file system) or of the older form without host and pid
only once untouched for ``STALE_SECONDS``. A live writer's file is never removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A leftover whose writer is not known to be dead (another host, the older form) is removed only
# once untouched this long: far longer than any write of the package takes.
STALE_SECONDS = 6 * 3600

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# .<name>.tmp-[<host>-<pid>-]<token><suffix>; the older form has no host and pid.
_TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-)?"
                             r"(?P<token>[0-9a-f]{8})(?P<suffix>(?:\.[^./]*)?)$")
_cleaned_folders: set[str] = set()


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` that keeps its suffix and names its writer:
    ``kruskal.csv`` -> ``.kruskal.csv.tmp-<host>-<pid>-ab12cd34.csv``."""
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


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
    """Whether the leftover file ``entry`` belongs to no live writer (see the module doc)."""
    if match["suffix"] and not match["name"].endswith(match["suffix"]):
        return False       # not a name this module makes (the suffix repeats the final name's)
    if match["host"] == _HOST and match["pid"] is not None and int(match["pid"]) > 0:
        return not _process_alive(int(match["pid"]))
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False       # gone already


def remove_stale_temporaries(folder: str | os.PathLike, once: bool = False) -> list[Path]:
    """Remove the temporary files in ``folder`` left by writers that died; return them.

    Only files named as this module names them are considered, and a live writer's file is kept.
    With ``once``, a folder already cleaned by this process is not scanned again.
    """
    key = os.path.abspath(folder)
    if once and key in _cleaned_folders:
        return []
    _cleaned_folders.add(key)
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(key))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _TEMPORARY_NAME.match(entry.name)
        if match is None or not _is_stale(entry, match, now):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                if match["suffix"] or match["host"] is None:
                    continue   # atomic_folder names folders with host and pid and no suffix
                shutil.rmtree(entry.path)
            elif entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            else:
                continue
        except OSError:
            continue       # cleaned by another process first, or not ours to remove
        removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    The first write of this process into a folder removes dead writers' leftovers there first.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, once=True)
    temporary = temporary_sibling(final)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty hidden folder beside ``path`` to build in; on success it is renamed onto
    ``path``, on error (or an interrupt) it is removed with what it holds, so ``path`` is complete
    or absent. ``path`` must not exist, or be an empty folder (``FileExistsError`` otherwise).

    The first write of this process beside it removes dead writers' leftover folders first.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, once=True)
    temporary = final.with_name(f".{final.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")
    temporary.mkdir()
    try:
        yield temporary
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()  # an empty folder made for the purpose is replaced (Windows renames onto none)
        if final.exists() or final.is_symlink():
            raise FileExistsError(errno.EEXIST, "exists already (and is not an empty folder)", str(final))
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


# The names an analysis wrote into its output folder, one per line, so that the next analysis into the same
# folder removes those it does not write again (``record_outputs``).
OUTPUTS_FILE = "analysis_files.txt"


def record_outputs(folder: str | os.PathLike, written: list[Path]) -> list[Path]:
    """After an analysis has written ``written`` into ``folder``: remove the files the previous analysis
    there listed in ``OUTPUTS_FILE`` and this one did not write (a re-run with other options would otherwise
    leave an earlier ``exclusions.csv`` or ``conover_*.csv`` beside files that contradict it), then list
    this one's. Only names the package wrote are ever removed; returns the removed paths."""
    folder = Path(folder)
    names = sorted({Path(path).name for path in written})
    listing = folder / OUTPUTS_FILE
    removed = []
    try:
        previous = listing.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        previous = []
    for name in previous:
        if not name or name in names or name == OUTPUTS_FILE or "/" in name or name.startswith("."):
            continue
        stale = folder / name
        if stale.is_file():
            stale.unlink()
            removed.append(stale)
    write_text_atomic(listing, "".join(f"{name}\n" for name in names))
    return removed
