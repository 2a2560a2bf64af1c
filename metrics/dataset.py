"""THE dataset format: one clip record, the manifest reader and writer, validation, clip finding.

A dataset is a folder holding ``manifest.jsonl``: one JSON object per line, one line per clip::

    {"identity": "alice", "split": "train", "clip_id": "alice_000",
     "video": "alice/alice_000.mp4", "audio": "alice/alice_000.wav",
     "motion": "alice/alice_000.motion.npz", "keypoints": "alice/alice_000.keypoints.npz",
     "fps": 25, "num_frames": 120, "width": 128, "height": 128}

Fields:

- ``identity`` (str), ``clip_id`` (str): the speaker and the clip; (identity, clip_id) is unique.
- ``split``: ``"train"`` or ``"test"``.
- ``video`` (mp4), ``audio`` (wav), ``motion`` (npz), ``keypoints`` (npz, optional): paths
  relative to the folder, ``/``-separated, that stay inside it: ``..`` may not climb out of it, and
  a symbolic link on the way may not lead out of it either (to keep the media on another disk, link
  or move the whole dataset folder, not a part of it). A manifest comes from whoever made the
  dataset; these rules keep its reader from opening, training on or linking files elsewhere.
- ``fps`` (number > 0), ``num_frames``, ``width``, ``height`` (int > 0): of the video, whose rate is
  constant: frame i is shown at i / fps (a variable-frame-rate recording, a phone's, is refused by
  ``check_clip``; ``imac-bench data prepare`` makes such sources constant).
- any other field is kept, in ``ClipRecord.extra``.

The motion npz holds ``pose`` (F, 3J) axis-angle float, ``expression`` (F, 100) float and
optionally ``joint_names`` (J,) str; the keypoints npz holds ``keypoints`` (F, 133, 3): the
COCO-WholeBody x, y (pixels) and score of each frame. F is ``num_frames``; the audio lasts at
least as long as the video (``num_frames / fps``, less half a frame).

Validation reports every problem it finds, each naming the clip, the field and the file, rather
than stopping at the first: fixing a dataset takes one pass instead of one run per mistake.

Generated videos (the outputs of a method) mirror a dataset without a manifest:
``<dir>/<identity>/<clip_id>.mp4`` (the audio muxed in, or a wav beside it). ``find_clips`` reads
either kind of folder into the same ``ClipRecord``s; a record found in a folder of videos knows
only its identity, clip id, video and (optional) wav.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

from metrics.io.audio import SAMPLE_RATE, audio_duration, load_audio
from metrics.io.bounded import (ArrayHeader, DuplicateKeyError, LongIntegerError, iter_npz_rows, json_int, load_npz,
                                 read_npz_headers, unique_keys)
from metrics.io.files import write_text_atomic
from metrics.io.video import VideoReader, read_video_audio, uneven_frame, uneven_words

MANIFEST_NAME = "manifest.jsonl"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
SPLITS = ("train", "test")
LEVELS = ("files", "full")
EXPRESSION_DIM = 100
WHOLEBODY_KEYPOINTS = 133
FPS_RELATIVE_TOLERANCE = 1e-3
MAX_LISTED_PROBLEMS = 20
MAX_JOINT_NAMES_BYTES = 1 << 20   # SMPL-X's 55 joint names take a few KB

STRING_FIELDS = ("identity", "split", "clip_id")
PATH_FIELDS = ("video", "audio", "motion")
OPTIONAL_PATH_FIELDS = ("keypoints",)
INT_FIELDS = ("num_frames", "width", "height")
NUMBER_FIELDS = ("fps",)
REQUIRED_FIELDS = STRING_FIELDS + PATH_FIELDS + NUMBER_FIELDS + INT_FIELDS
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_PATH_FIELDS)

# What reading an npz (metrics.io.bounded.load_npz) raises on a missing, truncated, foreign or refused file.
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


# -- records and problems ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipRecord:
    """One clip: a manifest line (paths made absolute), or a video found in a folder of videos.

    A record read from a manifest has every field but ``keypoints`` (optional); one found in a
    folder of videos (``find_clips``) has ``identity``, ``clip_id``, ``video`` and, when a wav
    lies beside the video, ``audio``; the rest is None.
    """

    identity: str
    split: str | None = None
    clip_id: str = ""
    video: Path | None = None
    audio: Path | None = None         # a wav; None: the video's own audio track
    motion: Path | None = None
    fps: float | None = None
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    keypoints: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    root: Path | None = None          # the dataset folder, to show paths relative to it

    @property
    def duration(self) -> float:
        """Seconds of video: num_frames / fps."""
        return self.num_frames / self.fps

    @property
    def key(self) -> tuple[str, str]:
        return (self.identity, self.clip_id)

    @property
    def label(self) -> str:
        """``identity/clip_id`` (``clip_id`` alone for a video without an identity folder)."""
        return f"{self.identity}/{self.clip_id}" if self.identity else self.clip_id

    def relative(self, path: Path) -> str:
        """``path`` as written in the manifest (relative to the dataset folder) when possible."""
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(path)

    def to_manifest_dict(self) -> dict[str, Any]:
        """The manifest line of this record (paths still absolute; ``write_manifest`` relativises)."""
        line = dict(self.extra)
        line.update({"identity": self.identity, "split": self.split, "clip_id": self.clip_id,
                     "video": self.video, "audio": self.audio, "motion": self.motion,
                     "fps": self.fps, "num_frames": self.num_frames, "width": self.width,
                     "height": self.height})
        if self.keypoints is not None:
            line["keypoints"] = self.keypoints
        return line

    # -- the clip's files (I/O at the edge; each opens the file anew) --

    def load_audio(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The clip's speech as float32 mono at ``sample_rate``: its wav, else the video's audio track.

        Raises ``ValueError`` when there is neither.
        """
        if self.audio is not None:
            return load_audio(self.audio, sample_rate)
        return read_video_audio(self.video, sample_rate)

    def first_frame(self) -> np.ndarray:
        """The first frame of the video, (H, W, 3) uint8 (the reference image of generation)."""
        with VideoReader(self.video) as reader:
            return reader.read(0, 1)[0]

    def open_video(self) -> VideoReader:
        """A streaming reader of the clip's video (use it as a context manager)."""
        return VideoReader(self.video)

    def load_motion(self) -> dict[str, Any]:
        """``pose`` (F, 3J) and ``expression`` (F, 100) as float32; ``joint_names`` when stored."""
        arrays = load_npz(self.motion, ("pose", "expression"), optional=("joint_names",))
        motion: dict[str, Any] = {"pose": arrays["pose"].astype(np.float32),
                                  "expression": arrays["expression"].astype(np.float32)}
        if "joint_names" in arrays:
            motion["joint_names"] = [str(name) for name in arrays["joint_names"]]
        return motion

    def load_keypoints(self) -> np.ndarray | None:
        """COCO-WholeBody keypoints (F, 133, 3) float32 (x, y in pixels, score), or None if absent."""
        if self.keypoints is None:
            return None
        return load_npz(self.keypoints, ("keypoints",))["keypoints"].astype(np.float32)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which clip (or manifest line), which field, what."""

    clip: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.clip}: {self.field}: {self.message}"


class DatasetError(ValueError):
    """A dataset that does not follow the format; ``problems`` lists everything found wrong."""

    def __init__(self, problems: list[Problem], root: str | os.PathLike | None = None) -> None:
        self.problems = list(problems)
        self.root = Path(root) if root is not None else None
        super().__init__(format_problems(self.problems, self.root))


def format_problems(problems: list[Problem], root: Path | None = None) -> str:
    """A message listing the first ``MAX_LISTED_PROBLEMS`` problems and how many more there are."""
    where = f"{root}: " if root is not None else ""
    lines = [f"{where}{len(problems)} problem(s) in the dataset:"]
    lines += [f"  {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "\n".join(lines)


# -- the manifest --------------------------------------------------------------------------------


def _line_label(line_number: int) -> str:
    return f"{MANIFEST_NAME} line {line_number}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _field_problems(line: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each required field that is missing or of the wrong type or range."""
    problems = []
    for name in REQUIRED_FIELDS:
        if name not in line:
            problems.append((name, "missing required field"))
    for name in STRING_FIELDS + PATH_FIELDS:
        value = line.get(name)
        if name in line and (not isinstance(value, str) or not value.strip()):
            problems.append((name, f"must be a non-empty string, got {value!r}"))
    for name in ("identity", "clip_id"):
        value = line.get(name)
        # Both name output files (<run>/<method>/<identity>/<clip_id>.mp4): one folder level each.
        if isinstance(value, str) and (value in (".", "..") or any(c in value for c in "/\\\0")):
            problems.append((name, f"{value!r} cannot name a file: no '/', '\\', NUL, '.' or '..'"))
    for name in OPTIONAL_PATH_FIELDS:
        value = line.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append((name, f"must be a non-empty string or absent, got {value!r}"))
    for name in PATH_FIELDS + OPTIONAL_PATH_FIELDS:
        value = line.get(name)
        if isinstance(value, str) and value.strip():
            problem = _path_problem(value)
            if problem:
                problems.append((name, problem))
    if isinstance(line.get("split"), str) and line["split"] not in SPLITS:
        problems.append(("split", f"{line['split']!r} is not 'train' or 'test'"))
    for name in NUMBER_FIELDS:
        value = line.get(name)
        if name in line and not _is_number(value):
            problems.append((name, f"must be a finite number, got {value!r}"))
        elif name in line and value <= 0:
            problems.append((name, f"must be > 0, got {value!r}"))
    for name in INT_FIELDS:
        value = line.get(name)
        if name in line and not _is_int(value):
            problems.append((name, f"must be an integer, got {value!r}"))
        elif name in line and value <= 0:
            problems.append((name, f"must be > 0, got {value!r}"))
    return problems


def _path_problem(value: str) -> str | None:
    """Why the manifest path ``value`` cannot name a file inside the dataset folder, or None.

    Decided on the text alone (no file is looked at): absolute (``/x``, ``C:\\x``, ``\\\\server\\x``), a
    NUL byte, or a ``..`` that climbs above the folder (``a/../../x``; ``a/../x`` stays inside).
    A backslash counts as a separator here, as it does on Windows, so that no manifest escapes on
    any system.
    """
    if "\0" in value:
        return f"path {value!r} holds a NUL byte, which no file name can"
    if Path(value).is_absolute() or PureWindowsPath(value).anchor:
        return f"path {value!r} must be relative to the dataset folder"
    if posixpath.normpath(value.replace("\\", "/")).split("/")[0] == "..":
        return f"path {value!r} leads outside the dataset folder ('..' climbs above it)"
    return None


class _Containment:
    """Where a manifest's paths really lead: symbolic links followed, as opening the file follows them.

    ``outside(path)`` (``path``: the dataset folder / a manifest path) is the real location of
    ``path``, its symbolic links resolved, when that lies outside the folder's real location, else
    None. Each folder is resolved once, so a manifest of many clips in a few folders costs one
    ``lstat`` per file.
    """

    def __init__(self, root: Path) -> None:
        self.real_root = Path(os.path.realpath(root))
        self._real_folders: dict[Path, Path] = {}

    def outside(self, path: Path) -> Path | None:
        if path.name in ("", ".", ".."):
            real = Path(os.path.realpath(path))
        else:
            folder = self._real_folders.get(path.parent)
            if folder is None:
                folder = self._real_folders[path.parent] = Path(os.path.realpath(path.parent))
            real = folder / path.name
            if real.is_symlink():
                real = Path(os.path.realpath(real))
        return None if real.is_relative_to(self.real_root) else real


def _clip_label(line: Mapping[str, Any], line_number: int) -> str:
    identity, clip_id = line.get("identity"), line.get("clip_id")
    if isinstance(identity, str) and identity and isinstance(clip_id, str) and clip_id:
        return f"{identity}/{clip_id}"
    return _line_label(line_number)


def _record_from_line(line: Mapping[str, Any], root: Path) -> ClipRecord:
    keypoints = line.get("keypoints")
    return ClipRecord(
        identity=line["identity"], split=line["split"], clip_id=line["clip_id"],
        video=root / line["video"], audio=root / line["audio"], motion=root / line["motion"],
        keypoints=root / keypoints if keypoints is not None else None,
        fps=float(line["fps"]), num_frames=int(line["num_frames"]),
        width=int(line["width"]), height=int(line["height"]),
        extra={name: value for name, value in line.items() if name not in KNOWN_FIELDS},
        root=root,
    )


def _output_key(key: tuple[str, str]) -> tuple[str, str]:
    """What a case-insensitive, normalisation-insensitive file system (macOS, Windows) makes of
    ``(identity, clip_id)`` as the path ``<identity>/<clip_id>.mp4``: two clips with one key would
    overwrite each other's outputs there."""
    return tuple(unicodedata.normalize("NFC", part).casefold() for part in key)


def _parse_lines(lines: Iterable[tuple[int, str]], root: Path,
                 containment: _Containment | None = None) -> tuple[list[ClipRecord], list[Problem]]:
    """Records and problems (in line order) of (line number, JSON text) pairs; blank lines are skipped.

    Two lines with one (identity, clip_id) are refused, and so are two whose ids differ only in
    case (or Unicode normalisation): their output files would be one file on macOS or Windows.
    A path that leaves ``root`` is refused: by its text always (``_path_problem``), and, given
    ``containment`` (reading a manifest from disk), through a symbolic link on its way.
    """
    records: list[ClipRecord] = []
    problems: list[Problem] = []
    first_line_of: dict[tuple[str, str], int] = {}
    first_of_output: dict[tuple[str, str], tuple[int, ClipRecord]] = {}
    for line_number, text in lines:
        if not text.strip():
            continue  # blank lines (a trailing newline, spacing) are allowed
        try:
            line = json.loads(text, parse_int=json_int, object_pairs_hook=unique_keys)
        except DuplicateKeyError as error:     # ("video" twice: json keeps the last without a word)
            problems.append(Problem(_line_label(line_number), "json", str(error)))
            continue
        except json.JSONDecodeError as error:
            problems.append(Problem(_line_label(line_number), "json",
                                    f"invalid JSON: {error.msg} at column {error.colno}"))
            continue
        except LongIntegerError as error:
            problems.append(Problem(_line_label(line_number), "json", str(error)))
            continue
        except RecursionError:          # json's parser recurses per level: "[[[[..." a million deep
            problems.append(Problem(_line_label(line_number), "json", "invalid JSON: nested too deeply"))
            continue
        if not isinstance(line, dict):
            problems.append(Problem(_line_label(line_number), "json",
                                    f"expected a JSON object, got {type(line).__name__}"))
            continue
        label = _clip_label(line, line_number)
        field_problems = _field_problems(line)
        problems += [Problem(label, name, f"{message} ({_line_label(line_number)})")
                     for name, message in field_problems]
        if field_problems:
            continue
        record = _record_from_line(line, root)
        if containment is not None:
            escapes = [(name, real) for name, path in _referenced_files(record)
                       if (real := containment.outside(path)) is not None]
            problems += [Problem(label, name, f"path {line[name]!r} leads outside the dataset folder through a "
                                 f"symbolic link (to {real}) ({_line_label(line_number)})") for name, real in escapes]
            if escapes:
                continue
        if record.key in first_line_of:
            problems.append(Problem(label, "clip_id", f"duplicate (identity, clip_id): "
                                    f"{_line_label(line_number)} repeats line {first_line_of[record.key]}"))
            continue
        first_line_of[record.key] = line_number
        output_key = _output_key(record.key)
        if output_key in first_of_output:
            first_number, first = first_of_output[output_key]
            problems.append(Problem(label, "clip_id", f"{first.label!r} ({_line_label(first_number)}) and "
                                    f"{record.label!r} ({_line_label(line_number)}) differ only in case: their "
                                    "files would overwrite each other on a case-insensitive file system"))
            continue
        first_of_output[output_key] = (line_number, record)
        records.append(record)
    return records, problems


def _parse_manifest(root: str | os.PathLike) -> tuple[list[ClipRecord], list[Problem]]:
    root = Path(root).absolute()
    if root.is_file():          # the manifest, or another file, given for the dataset's folder
        said = "the manifest" if root.name == MANIFEST_NAME else "a file"
        return [], [Problem(str(root), "dataset", f"{said}, not a dataset folder: give the folder that holds "
                                                  f"{MANIFEST_NAME} ({root.parent})")]
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        found = "a folder, not a file" if manifest.is_dir() else "file not found (is this a dataset folder?)"
        return [], [Problem(str(manifest), "manifest", found)]
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], [Problem(str(manifest), "manifest", f"cannot read: {error}")]
    records, problems = _parse_lines(enumerate(text.splitlines(), start=1), root, _Containment(root))
    if not records and not problems:
        problems.append(Problem(str(manifest), "manifest", "no clips"))
    return records, problems


def read_manifest(root: str | os.PathLike) -> list[ClipRecord]:
    """The clips of ``root/manifest.jsonl``, after checking its lines (not the clips' contents).

    Raises ``DatasetError`` listing every problem of the manifest, each naming the clip (or the
    line), the field and ``manifest.jsonl line N``: among them a path that leads outside ``root``
    (by ``..`` or through a symbolic link).
    """
    records, problems = _parse_manifest(root)
    if problems:
        raise DatasetError(problems, root)
    return records


def _manifest_value(value: Any, root: Path, label: str, name: str) -> Any:
    """A JSON-ready value: paths relative to ``root`` (posix), numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    is_path_field = name in PATH_FIELDS + OPTIONAL_PATH_FIELDS and isinstance(value, str)
    if isinstance(value, os.PathLike) or is_path_field:
        path = Path(value)
        if not path.is_absolute():
            if not isinstance(value, os.PathLike):
                return path.as_posix()  # a string: already relative to the dataset folder
            path = path.absolute()  # a Path object: relative to the working directory
        try:
            return path.absolute().relative_to(root).as_posix()
        except ValueError:
            raise ValueError(f"{label}: {name}: {path} is not inside the dataset folder {root}") from None
    return value


def write_manifest(root: str | os.PathLike,
                   records_as_dicts: Iterable[Mapping[str, Any] | ClipRecord]) -> Path:
    """Write ``root/manifest.jsonl`` atomically from clip dicts (or ``ClipRecord``s); return its path.

    Path values (``Path`` objects, or strings in the path fields) are written relative to
    ``root``: a relative ``Path`` object is taken relative to the working directory, a relative
    string as already relative to ``root``. Keys are sorted. The lines are checked like ``read_manifest`` checks them and
    nothing is written if any is invalid (``DatasetError``).
    """
    root = Path(root).absolute()
    lines = []
    for index, record in enumerate(records_as_dicts):
        fields = record.to_manifest_dict() if isinstance(record, ClipRecord) else dict(record)
        label = _clip_label(fields, index + 1)
        line = {name: _manifest_value(value, root, label, name) for name, value in fields.items()}
        try:
            lines.append(json.dumps(line, sort_keys=True, ensure_ascii=False))
        except TypeError as error:
            raise ValueError(f"{label}: cannot write as JSON: {error}") from None
    # Check exactly the text that will be read back.
    _, problems = _parse_lines(enumerate(lines, start=1), root)
    if problems:
        raise DatasetError(problems, root)
    return write_text_atomic(root / MANIFEST_NAME, "".join(line + "\n" for line in lines))


# -- the clips' files ----------------------------------------------------------------------------


def _referenced_files(record: ClipRecord) -> list[tuple[str, Path]]:
    files = [("video", record.video), ("audio", record.audio), ("motion", record.motion)]
    if record.keypoints is not None:
        files.append(("keypoints", record.keypoints))
    return files


def _non_finite_message(name: str, blocks: Iterable[np.ndarray]) -> str | None:
    """None when every value of the array given as ``blocks`` of whole frames (in order) is finite,
    else how many NaN/inf it has and the first frame holding one."""
    nan = inf = 0
    first_frame, frame = None, 0
    for block in blocks:
        finite = np.isfinite(block)
        if not finite.all():
            nan, inf = nan + int(np.isnan(block).sum()), inf + int(np.isinf(block).sum())
            if first_frame is None:
                first_frame = frame + int(np.argmin(finite.reshape(len(block), -1).all(axis=1)))
        frame += len(block)
    if first_frame is None:
        return None
    return f"{name!r} has {nan} NaN and {inf} inf values (first at frame {first_frame})"


def _variable_rate_message(times: np.ndarray, frame: int, fps: float) -> str:
    intervals = np.diff(times)
    return (f"variable frame rate: frames {1000 * intervals.min():.1f} to {1000 * intervals.max():.1f} ms apart: "
            f"{uneven_words(times, frame)}; the format needs a constant rate, frame i shown at i / fps (manifest "
            f"fps {fps:g}; make one with imac-bench data prepare, which picks frames by their timestamps)")


# The frame counts a clip's files report, each as (what, count) under its file's field name; compared
# with the manifest's num_frames together by ``_frame_count_problems``.
FrameCounts = dict[str, list[tuple[str, int]]]


def _check_video(record: ClipRecord, counts: FrameCounts) -> list[str]:
    with VideoReader(record.video) as reader:     # probes (demuxes) once, decodes nothing
        info, times = reader.info, reader.frame_times()
    messages = []
    counts.setdefault("video", []).append(("frame count", info.num_frames))
    uneven = uneven_frame(times)
    if uneven is not None:
        # its header's rate is only an average: comparing it with the manifest's would say nothing true
        messages.append(_variable_rate_message(times, uneven[0], record.fps))
    elif abs(info.fps - record.fps) > FPS_RELATIVE_TOLERANCE * record.fps:
        messages.append(f"fps {info.fps:g} != manifest fps {record.fps:g}")
    if (info.width, info.height) != (record.width, record.height):
        messages.append(f"size {info.width}x{info.height} != manifest {record.width}x{record.height}")
    return messages


def _check_float_frames(path: Path, header: ArrayHeader, counts: list[tuple[str, int]]) -> list[str]:
    """Type and finiteness of one per-frame float array of the npz ``path`` (read in blocks of frames,
    never whole); its frame count, from its header, is added to ``counts``."""
    if not np.issubdtype(header.dtype, np.floating):
        return [f"{header.name!r} has dtype {header.dtype}, expected float"]
    non_finite = _non_finite_message(header.name, iter_npz_rows(path, header.name))   # raises for a refused array
    counts.append((f"{header.name!r} frame count", header.shape[0]))
    return [non_finite] if non_finite else []


def _check_motion(record: ClipRecord, counts: FrameCounts) -> list[str]:
    # Shapes and frame counts come from the headers and the values are scanned in blocks: a crafted
    # file (a few MB deflating to gigabytes) costs its reading time, not its size in memory.
    headers = read_npz_headers(record.motion)
    messages = [f"missing array {name!r}" for name in ("pose", "expression") if name not in headers]
    pose, expression = headers.get("pose"), headers.get("expression")
    if pose is not None:
        if len(pose.shape) != 2:
            messages.append(f"'pose' has shape {pose.shape}, expected (num_frames, 3 * joints)")
        else:
            messages += _check_float_frames(record.motion, pose, counts.setdefault("motion", []))
            if pose.shape[1] % 3:
                messages.append(f"'pose' width {pose.shape[1]} is not a multiple of 3 (axis-angle per joint)")
            if "joint_names" in headers:
                names = load_npz(record.motion, ("joint_names",), max_bytes=MAX_JOINT_NAMES_BYTES)["joint_names"]
                if 3 * len(names) != pose.shape[1]:
                    messages.append(f"'joint_names' has {len(names)} names but 'pose' has width "
                                    f"{pose.shape[1]} (expected 3 * {len(names)} = {3 * len(names)})")
    if expression is not None:
        if len(expression.shape) != 2 or expression.shape[1] != EXPRESSION_DIM:
            messages.append(f"'expression' has shape {expression.shape}, expected (num_frames, {EXPRESSION_DIM})")
        else:
            messages += _check_float_frames(record.motion, expression, counts.setdefault("motion", []))
    return messages


def _check_keypoints(record: ClipRecord, counts: FrameCounts) -> list[str]:
    headers = read_npz_headers(record.keypoints)
    keypoints = headers.get("keypoints")
    if keypoints is None:
        return [f"missing array 'keypoints' (has {', '.join(headers) or 'none'})"]
    expected = (record.num_frames, WHOLEBODY_KEYPOINTS, 3)
    if len(keypoints.shape) != 3 or keypoints.shape[1:] != expected[1:]:
        return [f"'keypoints' has shape {keypoints.shape}, expected (num_frames, 133, 3) = {expected}"]
    if not np.issubdtype(keypoints.dtype, np.number):
        return [f"'keypoints' has dtype {keypoints.dtype}, expected numbers"]
    non_finite = _non_finite_message("keypoints", iter_npz_rows(record.keypoints, "keypoints"))
    counts.setdefault("keypoints", []).append(("'keypoints' frame count", keypoints.shape[0]))
    return [non_finite] if non_finite else []


def _check_audio(record: ClipRecord, counts: FrameCounts) -> list[str]:
    seconds = audio_duration(record.audio)
    # Half a frame of slack: audio cut at the last frame's start rather than its end is fine.
    shortest = record.duration - 0.5 / record.fps
    if seconds < shortest:
        return [f"audio lasts {seconds:.3f} s, shorter than num_frames / fps = {record.num_frames} / "
                f"{record.fps:g} = {record.duration:.3f} s by more than half a frame ({0.5 / record.fps:.3f} s)"]
    return []


_CONTENT_CHECKS = {"video": _check_video, "motion": _check_motion, "keypoints": _check_keypoints,
                   "audio": _check_audio}


def check_clip(record: ClipRecord, level: str = "full") -> list[Problem]:
    """The problems of one clip's files.

    ``level="files"``: each referenced file exists. ``level="full"`` also opens them: video frame
    count, size and frame rate (constant: a variable-rate video is named so, not compared by its
    average rate); motion and keypoint shapes, frame counts and finiteness; audio length.
    A file that cannot be read is reported as a problem, never raised.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    problems = []
    counts: FrameCounts = {}
    files = dict(_referenced_files(record))
    for name, path in files.items():
        if not path.is_file():
            found = "a folder, not a file" if path.is_dir() else "file not found"
            problems.append(Problem(record.label, name, f"{found} ({record.relative(path)})"))
        elif level == "full" and name != "audio":      # the audio is judged by the agreed frame count
            problems += _content_problems(record, name, path, counts)
    if level == "full":
        agreed = _agreed_frames(record, counts)
        problems += _frame_count_problems(record, agreed, files, counts)
        if record.audio.is_file():
            problems += _content_problems(agreed, "audio", record.audio, counts)
    return problems


def _content_problems(record: ClipRecord, name: str, path: Path, counts: FrameCounts) -> list[Problem]:
    """The problems ``_CONTENT_CHECKS[name]`` finds in the file ``name`` (at ``path``) of ``record``."""
    try:
        messages = _CONTENT_CHECKS[name](record, counts)
    except (*_NPZ_ERRORS, RuntimeError, TypeError) as error:
        messages = [f"cannot read: {error}"]
    return [Problem(record.label, name, f"{message} ({record.relative(path)})") for message in messages]


def _agreed_frames(record: ClipRecord, counts: FrameCounts) -> ClipRecord:
    """``record`` with the frame count on which at least two of its files (video, motion, keypoints)
    all agree, when the manifest's differs: that line, not the files, is then wrong."""
    found = {count for reports in counts.values() for _, count in reports}
    if len(counts) >= 2 and len(found) == 1 and record.num_frames not in found:
        return dataclasses.replace(record, num_frames=found.pop())
    return record


def _frame_count_problems(record: ClipRecord, agreed: ClipRecord, files: dict[str, Path],
                          counts: FrameCounts) -> list[Problem]:
    """The frame counts of a clip's files against the manifest's ``num_frames``: one problem of the
    manifest's ``num_frames`` when the files agree on another count (``agreed``, ``_agreed_frames``:
    the files are right and each of them would otherwise be blamed), else one for each count that
    differs. ``files``: the clip's file paths by field name."""
    if agreed is not record:
        named = ", ".join(f"the {name} ({record.relative(path)})" for name, path in files.items() if name in counts)
        return [Problem(record.label, "num_frames", f"the manifest says {record.num_frames} frames, but {named} "
                        f"all have {agreed.num_frames}: correct num_frames in {MANIFEST_NAME}")]
    return [Problem(record.label, name, f"{what} {count} != num_frames {record.num_frames} "
                    f"({record.relative(files[name])})")
            for name, reports in counts.items() for what, count in reports if count != record.num_frames]


def validate_dataset(root: str | os.PathLike, level: str = "full") -> list[Problem]:
    """Every problem of a dataset folder: its manifest's, then each clip's (``check_clip``).

    Clips on valid manifest lines are checked even when other lines are invalid; when the
    manifest itself cannot be read, that is the only problem returned.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    records, problems = _parse_manifest(root)
    for record in records:
        problems += check_clip(record, level)
    return problems


# -- reading a valid dataset ---------------------------------------------------------------------


class Dataset:
    """A validated dataset: its clips, grouped by split and identity, and loaders for their files.

        dataset = Dataset.open("data/toy")          # DatasetError if anything is wrong
        for record in dataset.split("train"):
            motion = record.load_motion()            # {"pose": (F, 3J), "expression": (F, 100)}
    """

    def __init__(self, root: str | os.PathLike, clips: list[ClipRecord]) -> None:
        self.root = Path(root).absolute()
        self.clips = list(clips)

    @classmethod
    def open(cls, root: str | os.PathLike, level: str = "full") -> Dataset:
        """Validate ``root`` at ``level`` and open it; ``DatasetError`` lists every problem."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        records, problems = _parse_manifest(root)
        for record in records:
            problems += check_clip(record, level)
        if problems:
            raise DatasetError(problems, root)
        return cls(root, records)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.clips)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, {len(self.clips)} clips, {len(self.identities)} identities)"

    @property
    def identities(self) -> list[str]:
        return sorted({record.identity for record in self.clips})

    def split(self, name: str) -> list[ClipRecord]:
        """The clips of split ``name`` ("train" or "test"), in manifest order."""
        if name not in SPLITS:
            raise ValueError(f"{self.root}: split must be one of {SPLITS}, got {name!r}")
        return [record for record in self.clips if record.split == name]

    def select(self, split: str, identities: Iterable[str] | None = None,
               option: str = "identities") -> list[ClipRecord]:
        """The clips of ``split`` spoken by ``identities`` (None or empty: every speaker), in manifest order.

        Raises ``ValueError`` naming ``option`` and the unknown speakers, or saying that no clip is left.
        """
        clips = self.split(split)
        if identities:
            wanted = set(identities)
            unknown = sorted(wanted - set(self.identities))
            if unknown:
                raise ValueError(f"{option}: {', '.join(unknown)} not in {self.root} "
                                 f"(has {', '.join(self.identities)})")
            clips = [record for record in clips if record.identity in wanted]
        if not clips:
            speakers = f" of {', '.join(sorted(identities))}" if identities else ""
            raise ValueError(f"{self.root}: no {split} clips{speakers}")
        return clips

    def by_identity(self, identity: str, split: str | None = None) -> list[ClipRecord]:
        """The clips of one speaker, optionally of one split; KeyError for an unknown speaker."""
        if identity not in self.identities:
            raise KeyError(f"{self.root}: no identity {identity!r} (has {', '.join(self.identities)})")
        clips = self.split(split) if split is not None else self.clips
        return [record for record in clips if record.identity == identity]


# -- finding the clips of a dataset or of a folder of videos -------------------------------------


class FolderError(ValueError):
    """A folder that holds no usable clips."""


def _files_under(root: Path) -> Iterator[Path]:
    """Every file under ``root``, entering linked folders (not a link back to a folder it is in, or to one
    above ``root``, which would go round for ever or take in the folders beside it) and passing over hidden
    ones (``.ipynb_checkpoints`` holds copies)."""
    top = os.path.realpath(root)
    for folder, subfolders, files in os.walk(root, followlinks=True):
        here = Path(folder)
        above = {os.path.realpath(parent) for parent in here.parents if root in parent.parents or parent == root}
        real = os.path.realpath(here)
        if real in above or (here != root and top.startswith(real.rstrip(os.sep) + os.sep)):   # a link above root
            subfolders[:] = []
            continue
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        yield from (here / name for name in files)


def _videos_in(root: Path) -> list[ClipRecord]:
    clips = []
    for path in sorted(_files_under(root)):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and not path.name.startswith("."):
            relative = path.relative_to(root)
            identity = relative.parts[0] if len(relative.parts) > 1 else ""
            wav = path.with_suffix(".wav")
            clips.append(ClipRecord(identity=identity, clip_id=path.stem, video=path,
                                    audio=wav if wav.is_file() else None, root=root))
    return clips


def is_dataset(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a dataset folder (it has a manifest, and so splits), not a folder of videos."""
    return (Path(root) / MANIFEST_NAME).is_file()


def find_clips(root: str | os.PathLike, split: str | None = "test") -> list[ClipRecord]:
    """The clips of a dataset folder (its ``split``; None for all) or of a folder of videos, sorted by key.

    A dataset's manifest is read with ``read_manifest`` (``DatasetError`` on a bad line); a folder
    of videos is laid out ``<identity>/<clip_id>.mp4`` (a wav beside a video is its audio).
    Raises ``FolderError`` for a missing folder, no clips, or the same identity/clip twice.
    """
    root = Path(root)
    if root.is_file():
        raise FolderError(f"{root}: a file, not a folder (give the folder that holds <identity>/<clip_id>.mp4, "
                          f"or a dataset with {MANIFEST_NAME})")
    if not root.is_dir():
        raise FolderError(f"{root}: no such folder")
    dataset = is_dataset(root)
    if dataset:
        clips = [record for record in read_manifest(root) if split is None or record.split == split]
    else:
        clips = _videos_in(root)
    if not clips:
        what = f"no '{split}' clips in its manifest" if dataset else "no videos"
        raise FolderError(f"{root}: {what} (expected <identity>/<clip_id>.mp4 or a dataset with {MANIFEST_NAME})")
    keys = [clip.key for clip in clips]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:      # each named with its files (e.g. a.mp4 beside a.webm), to remove all but one
        named = "; ".join(f"{'/'.join(key)}: " + " and ".join(str(clip.video) for clip in clips if clip.key == key)
                          for key in duplicates[:5])
        raise FolderError(f"{root}: the same identity/clip appears twice: {named}"
                          + (f" (and {len(duplicates) - 5} more)" if len(duplicates) > 5 else "")
                          + "; keep one file per clip")
    return sorted(clips, key=lambda clip: clip.key)
