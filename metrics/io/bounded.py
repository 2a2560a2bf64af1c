"""Reading files the project did not write itself, bounded in what they may make it allocate.

A dataset, a cache folder or a downloaded model folder can hold a damaged or crafted file, and a
few bytes can ask for gigabytes: a compressed npz member of zeros expands about 1000x, and its
header may declare any shape (numpy allocates the whole array before reading a byte of it); JSON
nested a million deep ends in a RecursionError; a torch archive lists records of any size. Each
reader here checks what a file declares against a limit BEFORE allocating it, and refuses the file
with an error naming it (a ``ValueError``, so the callers' usual handling applies).

The limits are generous enough for real inputs (numbers in each constant's comment) and can be
passed explicitly where the caller knows more (the expected shape of one clip's array).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# What one npz file may hold in all, in bytes of its arrays once read: 2 GiB. The largest real
# arrays of the project fit with room to spare: the COCO-WholeBody keypoints of a 1-hour clip at
# 60 fps, (216000, 133, 3) float64, are 690 MB; its SMPL-X pose and expression (216000, 165 + 100)
# float64 are 458 MB; a 1-hour clip's HuBERT features (50 Hz x 1024 float32) are 737 MB.
MAX_ARRAY_BYTES = 2 << 30
# The longest .npy header numpy itself reads without being told otherwise.
MAX_HEADER_BYTES = 10_000
# A JSON file the project reads (a model card, a config, one manifest line): 64 MiB. A manifest
# line is about 400 bytes and a model card a few KB; this only stops a file from being absurd.
MAX_JSON_BYTES = 64 << 20
# The longest integer a JSON file of the project may hold: a 64-bit seed has 20 digits.
MAX_JSON_INT_DIGITS = 100
# What a torch archive (zip) may unpack to: 16 GiB, above a full I2VGen-XL checkpoint in float32
# (its UNet alone is about 5.7 GB). Callers that know their network pass less (I3D: 1 GiB).
MAX_ARCHIVE_BYTES = 16 << 30


class BoundedReadError(ValueError):
    """A file refused before it could allocate too much, or unreadable; the message names it."""


def _size(nbytes: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


# -- npz -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayHeader:
    """What an npz member declares, read from its .npy header alone."""

    name: str             # the array's name (the member's name without ".npy")
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    nbytes: int           # bytes of the array once read: prod(shape) * itemsize
    stored_bytes: int     # bytes the zip says the member unpacks to (header and data)
    header_bytes: int     # bytes of the .npy magic and header


def _read_header(handle: Any, name: str, stored_bytes: int) -> ArrayHeader:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle, MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle, MAX_HEADER_BYTES)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here (1.0 and 2.0 are)")
    nbytes = math.prod(shape) * dtype.itemsize
    return ArrayHeader(name, tuple(shape), dtype, fortran_order, nbytes, stored_bytes, handle.tell())


def _member_name(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def read_npz_headers(path: str | os.PathLike) -> dict[str, ArrayHeader]:
    """The header of every array of an npz file, without reading any array's data.

    Raises ``BoundedReadError`` naming the file (and member) for a file that is not an npz or a
    member whose header does not parse; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return {header.name: header for header in _headers(archive, path, None)}
    except zipfile.BadZipFile as error:
        raise BoundedReadError(f"{path}: not an npz file ({error})") from None


def _headers(archive: zipfile.ZipFile, path: Path, wanted: set[str] | None) -> Iterable[ArrayHeader]:
    for info in archive.infolist():
        name = _member_name(info.filename)
        if not info.filename.endswith(".npy") or (wanted is not None and name not in wanted):
            continue
        try:
            with archive.open(info) as handle:
                yield _read_header(handle, name, info.file_size)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError) as error:
            raise BoundedReadError(f"{path}: array {name!r}: unreadable header ({error})") from None


def _check_header(path: Path, header: ArrayHeader) -> str:
    """Refuse (``BoundedReadError``) an array that holds Python objects or declares more than its member
    holds; returns how to name it in a message."""
    what = f"{path}: array {header.name!r} ({header.shape} {header.dtype})"
    if header.dtype.hasobject:
        raise BoundedReadError(f"{what}: refused: holds Python objects, which would need pickle")
    if header.nbytes > header.stored_bytes - header.header_bytes:
        raise BoundedReadError(f"{what}: refused: declares {_size(header.nbytes)} but the member "
                               f"holds {_size(max(0, header.stored_bytes - header.header_bytes))}")
    return what


def load_npz(path: str | os.PathLike, names: Iterable[str] | None = None, optional: Iterable[str] = (),
             max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """The arrays of an npz file, each checked from its header before it is read.

    ``names``: the arrays that must be there (None: every array of the file); ``optional``: more
    arrays to read when present. Before any data is read, every array to be read must declare a
    shape and dtype that (1) hold no Python objects (that would need pickle, which is never
    allowed), (2) add up to at most ``max_bytes`` (default ``MAX_ARRAY_BYTES``, 2 GiB) for the
    file, and (3) fit in what the zip says the member unpacks to (a header cannot ask for more
    than its data). So a crafted file costs at most ``max_bytes``, whatever it declares or its
    compression expands to (a zip member is never read past its declared size).

    Raises ``BoundedReadError`` (a ``ValueError``) naming the file and the array: refused,
    missing, or unreadable; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    required = None if names is None else list(names)
    wanted = None if required is None else set(required) | set(optional)
    try:
        with zipfile.ZipFile(path) as archive:
            headers = list(_headers(archive, path, wanted))
            present = {header.name for header in headers}
            missing = [name for name in (required or []) if name not in present]
            if missing:
                have = ", ".join(sorted(_member_name(n) for n in archive.namelist())) or "none"
                raise BoundedReadError(f"{path}: no array {', '.join(map(repr, missing))} (has {have})")
            total = 0
            for header in headers:
                what = _check_header(path, header)
                total += header.nbytes
                if total > max_bytes:
                    raise BoundedReadError(f"{what}: refused: the arrays read from this file would take "
                                           f"{_size(total)}, more than the limit of {_size(max_bytes)}")
            arrays = {}
            for header in headers:
                try:
                    with archive.open(f"{header.name}.npy") as handle:
                        arrays[header.name] = np.lib.format.read_array(handle, allow_pickle=False,
                                                                       max_header_size=MAX_HEADER_BYTES)
                except (ValueError, EOFError, OSError, zipfile.BadZipFile) as error:
                    raise BoundedReadError(f"{path}: array {header.name!r}: unreadable ({error})") from None
            return arrays
    except zipfile.BadZipFile as error:
        raise BoundedReadError(f"{path}: not an npz file ({error})") from None


def iter_npz_rows(path: str | os.PathLike, name: str, block_bytes: int = 64 << 20,
                  max_bytes: int = MAX_ARRAY_BYTES) -> Iterator[np.ndarray]:
    """The array ``name`` of an npz file in blocks of whole rows (its first axis), in order, without
    ever holding more than about ``block_bytes`` of it (at least one row): for checks that scan an
    array once (finiteness) and must not allocate what a crafted file declares.

    Its header is checked first, as ``load_npz`` checks it: no Python objects, no more declared than
    the member holds, at most ``max_bytes`` in all (what reading it costs in time). A Fortran-ordered
    or 0-d array, rare and small, comes whole (within the same ``max_bytes``).

    Raises ``BoundedReadError`` naming the file and the array: refused, missing or unreadable;
    ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            header = next(iter(list(_headers(archive, path, {name}))), None)
            if header is None:
                raise BoundedReadError(f"{path}: no array {name!r}")
            what = _check_header(path, header)
            if header.nbytes > max_bytes:
                raise BoundedReadError(f"{what}: refused: {_size(header.nbytes)}, more than the limit of "
                                       f"{_size(max_bytes)}")
            if header.fortran_order or not header.shape:
                yield load_npz(path, (name,), max_bytes=max_bytes)[name]
                return
            row_shape = header.shape[1:]
            row_bytes = math.prod(row_shape) * header.dtype.itemsize
            rows_per_block = max(1, block_bytes // max(1, row_bytes))
            try:
                with archive.open(f"{name}.npy") as handle:
                    handle.read(header.header_bytes)          # the .npy magic and header, already read
                    for start in range(0, header.shape[0], rows_per_block):
                        rows = min(rows_per_block, header.shape[0] - start)
                        data = handle.read(rows * row_bytes)
                        if len(data) != rows * row_bytes:
                            raise EOFError(f"ends after {start * row_bytes + len(data)} of {header.nbytes} bytes")
                        yield np.frombuffer(data, header.dtype).reshape(rows, *row_shape)
            except (ValueError, EOFError, OSError, zipfile.BadZipFile) as error:
                raise BoundedReadError(f"{path}: array {name!r}: unreadable ({error})") from None
    except zipfile.BadZipFile as error:
        raise BoundedReadError(f"{path}: not an npz file ({error})") from None


# -- JSON ------------------------------------------------------------------------------------------


class LongIntegerError(ValueError):
    """An integer of a JSON text longer than ``MAX_JSON_INT_DIGITS`` (``json_int``)."""


def json_int(text: str) -> int:
    """``json.loads``'s ``parse_int``: ``int(text)``, refusing (``LongIntegerError``) an integer longer than
    ``MAX_JSON_INT_DIGITS`` digits, which Python would either refuse without naming the file or, below
    its own limit, convert in quadratic time."""
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise LongIntegerError(f"refused: an integer of {digits} digits (at most {MAX_JSON_INT_DIGITS} are read)")
    return int(text)


class DuplicateKeyError(ValueError):
    """A JSON object naming one key twice (``unique_keys``)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object as a dict, refusing (``DuplicateKeyError``) a key
    given twice, which ``json`` would resolve silently by keeping the last value."""
    seen = dict(pairs)
    if len(seen) != len(pairs):
        names = [key for key, _ in pairs]
        twice = next(key for key in names if names.count(key) > 1)
        raise DuplicateKeyError(f"refused: the key {twice!r} appears twice in one object (JSON readers keep "
                                "either value: say it once)")
    return seen


def parse_json(text: str | bytes, where: str) -> Any:
    """``json.loads(text)``, with a nesting too deep for the parser, an integer longer than
    ``MAX_JSON_INT_DIGITS`` or a key given twice in one object reported like any invalid JSON:
    ``BoundedReadError`` starting with ``where`` (json's own RecursionError would be a traceback, Python's
    limit on converting long integers a message naming no file, and a repeated key is silently resolved
    by keeping its last value). A UTF-8 byte order mark is read past, as ``json.loads`` reads bytes."""
    if isinstance(text, str):
        text = text.removeprefix("\ufeff")
    try:
        return json.loads(text, parse_int=json_int, object_pairs_hook=unique_keys)
    except DuplicateKeyError as error:
        raise BoundedReadError(f"{where}: {error}") from None
    except RecursionError:
        raise BoundedReadError(f"{where}: refused: JSON nested too deeply") from None
    except LongIntegerError as error:
        raise BoundedReadError(f"{where}: {error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BoundedReadError(f"{where}: not valid JSON ({error})") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The content of a JSON file of at most ``max_bytes`` (default 64 MiB).

    Raises ``BoundedReadError`` naming the file for a larger file, invalid UTF-8 or JSON, or
    nesting too deep for the parser; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BoundedReadError(f"{path}: refused: {_size(size)}, more than the {_size(max_bytes)} "
                               "a JSON file of the project may have")
    return parse_json(path.read_bytes(), str(path))


# -- torch archives --------------------------------------------------------------------------------


def check_zip_archive(path: str | os.PathLike, max_bytes: int = MAX_ARCHIVE_BYTES) -> bool:
    """Whether ``path`` is a zip archive (what ``torch.save`` and TorchScript write); if it is, its
    members must unpack to at most ``max_bytes`` in all (default 16 GiB), else ``BoundedReadError``.

    torch reads a record of an archive into memory at the size the zip directory declares, and a
    deflated record can declare far more than the file holds; checking the directory first bounds
    what loading may allocate. The tensors of ``torch.load(weights_only=True)`` are views of those
    records, and its unpickler builds nothing but tensors, numbers, strings and plain containers
    from the pickle's own bytes, so the archive's declared size bounds the whole load.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BoundedReadError(f"{path}: refused: {_size(size)}, more than the limit of {_size(max_bytes)}")
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise BoundedReadError(f"{path}: not a readable archive ({error})") from None
    if unpacked > max_bytes:
        raise BoundedReadError(f"{path}: refused: its records unpack to {_size(unpacked)}, more than the "
                               f"limit of {_size(max_bytes)}")
    return True


# -- model folders ---------------------------------------------------------------------------------

# The files diffusers and transformers read a network's weights from (single or sharded, any variant):
# diffusion_pytorch_model*.safetensors / .bin, model*.safetensors, pytorch_model*.bin.
WEIGHT_FILE_PREFIXES = ("diffusion_pytorch_model", "model", "pytorch_model")
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin")
# What a network may hold beyond its stored tensors (buffers a file may leave out): 1 Mi elements.
MODEL_SLACK_ELEMENTS = 1 << 20
# Whatever its files: at most 8 Gi parameters (32 GiB in float32; I2VGen-XL's UNet has 1.4 G) in at most
# 100,000 tensors (the UNet has about 1,700), so that even building the shapes stays quick.
MAX_MODEL_ELEMENTS = 8 << 30
MAX_MODEL_TENSORS = 100_000


def weight_file_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the files directly in ``folder`` that a loader reads weights from (``WEIGHT_FILE_PREFIXES``
    with ``WEIGHT_FILE_SUFFIXES``; other files, an optimizer state say, do not count)."""
    return sum(path.stat().st_size for path in Path(folder).iterdir()
               if path.is_file() and path.name.startswith(WEIGHT_FILE_PREFIXES)
               and path.name.endswith(WEIGHT_FILE_SUFFIXES))


def check_model_fits_weights(build: Callable[[], Any], folder: str | os.PathLike) -> int:
    """Refuse a model folder whose config describes a larger network than its weight files can hold.

    ``build()`` makes the network (a ``torch.nn.Module``) from the folder's config, the way loading
    will; it runs on PyTorch's meta device, where tensors have shapes but no storage, so a damaged or
    crafted ``config.json`` (a width of 200,000: a 160 GB layer) is refused before the real build would
    allocate it. Every stored element takes at least one byte (float8; 2 for float16, 4 for float32),
    so a network of N elements (its state_dict's) needs weight files (``weight_file_bytes``) of at
    least N bytes; up to ``MODEL_SLACK_ELEMENTS`` more are allowed, and never more than
    ``MAX_MODEL_ELEMENTS`` in ``MAX_MODEL_TENSORS`` tensors: the build stops as soon as it passes
    either (a config of ten million layers is refused in the time of the first few thousand).
    Returns N. Raises ``BoundedReadError`` naming the folder.
    """
    import torch  # the only reader here that needs torch
    from torch.nn.modules import module as torch_module

    folder = Path(folder)
    stored = weight_file_bytes(folder)
    limit = min(stored + MODEL_SLACK_ELEMENTS, MAX_MODEL_ELEMENTS)
    built = {"elements": 0, "tensors": 0}

    def refuse(what: str) -> BoundedReadError:
        return BoundedReadError(f"{folder}: refused: its config describes a network of {what}, more than "
                                f"its weight files ({_size(stored)}) can hold (at most {limit:,} parameters in "
                                f"{MAX_MODEL_TENSORS:,} tensors): a damaged or mismatched config.json")

    def count(_module, _name, tensor):
        if tensor is not None:
            built["elements"] += tensor.numel()
            built["tensors"] += 1
            if built["elements"] > limit:
                raise refuse(f"over {limit:,} parameters")
            if built["tensors"] > MAX_MODEL_TENSORS:
                raise refuse(f"over {MAX_MODEL_TENSORS:,} tensors")

    hooks = [torch_module.register_module_parameter_registration_hook(count),
             torch_module.register_module_buffer_registration_hook(count)]
    try:
        with torch.device("meta"):
            network = build()
    finally:
        for hook in hooks:
            hook.remove()
    elements = sum(tensor.numel() for tensor in network.state_dict().values())
    if elements > limit:
        raise refuse(f"{elements:,} parameters")
    return elements


# -- safetensors -----------------------------------------------------------------------------------

MAX_SAFETENSORS_HEADER = 100 << 20     # the format's own limit on its JSON header (100 MB)


def check_safetensors(path: str | os.PathLike) -> int:
    """Refuse a safetensors file that is cut short (an interrupted copy or download) or whose header is not
    the format's: an 8-byte little-endian header length, that many bytes of JSON giving each tensor's
    ``data_offsets`` into the data that follows. Reads the header only. Returns the bytes the header
    describes; raises ``BoundedReadError`` naming the file and saying what is wrong (the loaders' own
    message for a truncated file names neither the cause nor the size)."""
    path = Path(path)
    header, length, size = _safetensors_header(path)
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)):
            raise BoundedReadError(f"{path}: not a safetensors file: tensor {name!r} has no data_offsets")
        end = max(end, offsets[1])
    if 8 + length + end > size:
        raise BoundedReadError(f"{path}: truncated: its header describes {8 + length + end:,} bytes, the file has "
                               f"{size:,} (an interrupted copy or download; copy it again)")
    return 8 + length + end


def safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape as a safetensors file's header declares it (the header alone is read);
    ``BoundedReadError`` naming the file when it is not one."""
    path = Path(path)
    shapes = {}
    for name, entry in _safetensors_header(path)[0].items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
            raise BoundedReadError(f"{path}: not a safetensors file: tensor {name!r} has no shape")
        shapes[name] = tuple(shape)
    return shapes


def _safetensors_header(path: Path) -> tuple[dict, int, int]:
    """(header, header length, file size) of a safetensors file, bounded; ``BoundedReadError`` naming it."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise BoundedReadError(f"{path}: not a safetensors file: {size} bytes, shorter than its 8-byte header "
                                   "length (an empty or truncated file)")
        length = int.from_bytes(head, "little")
        if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
            raise BoundedReadError(f"{path}: not a safetensors file, or truncated: its header says {length:,} bytes "
                                   f"of header, the file has {size:,} bytes in all")
        header = parse_json(handle.read(length), str(path))
    if not isinstance(header, dict):
        raise BoundedReadError(f"{path}: not a safetensors file: its header is not a JSON object")
    return header, length, size
