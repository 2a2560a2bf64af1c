"""Videos made elsewhere: a folder of them (``--generated``), and the check every external video passes.

``--generated NAME=DIR``: ``DIR/<identity>/<clip_id>.mp4`` for every test clip, made by the
official code of a method (the bench's own output layout). Each video is checked (it opens, its
frames decode to the count its container states); a missing or unreadable one is an error naming
it, or with ``--skip-missing`` it is skipped, listed in the results and flagged in every table.
Two files that a case-insensitive file system would take for one clip (``anna/Clip1.mp4`` and
``anna/clip1.mp4``, ``Anna/c0.mp4`` and ``anna/c0.mp4``) are refused naming both: which one a
clip gets would depend on the file system the folder is read on.

Commands run once per test clip are ``bench.methods.command``.
"""

from __future__ import annotations

import glob
import logging
import unicodedata
from pathlib import Path
from typing import Any

from bench.methods.base import Method
from bench.methods.controls import link_file
from metrics.dataset import VIDEO_SUFFIXES, ClipRecord
from metrics.distributed import SAME_IN_EVERY_PROCESS
from metrics.io.files import file_sha256
from metrics.io.video import VideoReader, probe_video

logger = logging.getLogger(__name__)


class ExternalVideoError(ValueError):
    pass


def check_video(path: Path) -> None:
    """Raise ExternalVideoError naming ``path`` unless it is a video whose frames all decode."""
    if not path.is_file():
        raise ExternalVideoError(f"{path}: missing")
    try:
        info = probe_video(path)
        decoded = 0
        with VideoReader(path) as reader:
            for chunk in reader.iter_chunks(64):
                decoded += len(chunk)
    except (ValueError, OSError) as error:
        raise ExternalVideoError(f"{path}: unreadable video ({error})") from error
    if info.truncated:              # (its packets all decode: a file cut after its header reads as a short one)
        raise ExternalVideoError(f"{path}: {info.truncated}")
    if decoded != info.num_frames or decoded == 0:
        raise ExternalVideoError(f"{path}: decoded {decoded} frames, the container says {info.num_frames}: "
                                 "truncated or corrupt")


class GeneratedFolder(Method):
    """Videos a user generated elsewhere, in ``folder/<identity>/<clip_id>.mp4``."""

    kind, writes_files, uses_seed = "external", True, False

    def __init__(self, name: str, folder: str | Path, label: str | None = None) -> None:
        self.name = name
        self.folder = Path(folder)
        self.label = label or f"{name} (external videos)"
        self._readable: set[tuple[Path, int, int]] = set()   # (path, size, mtime) that check_video passed

    @property
    def source(self) -> dict[str, Any]:
        """What its videos are made from (run.json keeps it: a rerun from another folder is refused)."""
        return {"folder": str(self.folder.resolve())}

    def check_inputs(self) -> None:
        """The folder exists, holds a file, and holds no two files that are one clip on a case-insensitive
        file system (checked before the run folder is made, and again by ``prepare``)."""
        if not self.folder.is_dir():
            what = "a file, not a folder" if self.folder.exists() else "no such folder"
            raise ExternalVideoError(f"--generated {self.name}={self.folder}: {what}")
        if not any(path.is_file() for path in self.folder.rglob("*")):
            raise ExternalVideoError(f"--generated {self.name}={self.folder}: an empty folder (no videos in "
                                     "<identity>/<clip_id>.mp4)")
        clashes = same_clip_files(self.folder)
        if clashes:
            pairs = "; ".join(" and ".join(repr(path.relative_to(self.folder).as_posix()) for path in group)
                              for group in clashes)
            raise ExternalVideoError(f"--generated {self.name}={self.folder}: files that are one clip on a "
                                     f"case-insensitive file system: {pairs}; rename or remove all but one")

    def check_complete(self, clips) -> None:
        """``ExternalVideoError`` when a test clip of ``clips`` has no ``<identity>/<clip_id>.mp4`` in the
        folder: the first one named with what stands in its place (``look_alike``), and how many more;
        checked before the run trains or generates anything (``--skip-missing`` skips them instead)."""
        missing = [clip for clip in clips if not (self.folder / clip.identity / f"{clip.clip_id}.mp4").is_file()]
        if not missing:
            return
        hint = look_alike(self.folder, missing[0])
        more = (f"; {len(missing)} of the {len(clips)} test clips have no video: "
                + ", ".join(clip.label for clip in missing[:5]) + (" ..." if len(missing) > 5 else "")
                if len(missing) > 1 else "")
        raise ExternalVideoError(f"{self.folder / missing[0].identity / missing[0].clip_id}.mp4: missing"
                                 f"{'; ' + hint if hint else ''}{more} (give them, or --skip-missing to score the "
                                 "others, the missing ones flagged in every table)")

    def check_readable(self, clips) -> None:
        """``ExternalVideoError`` naming every video of a test clip of ``clips`` in the folder that does not
        decode to the frame count its container states (``check_video``); checked before the run trains or
        generates anything, so a corrupt file costs seconds, not the other methods' training."""
        present = [self.folder / clip.identity / f"{clip.clip_id}.mp4" for clip in clips]
        present = [path for path in present if path.is_file()]
        logger.info("--generated %s=%s: decoding its %d test videos", self.name, self.folder, len(present))
        problems = []
        for path in present:
            try:
                self._check_video(path)
            except ExternalVideoError as error:
                problems.append(str(error))
        if problems:
            raise ExternalVideoError(problems[0] if len(problems) == 1 else
                                     f"{len(problems)} unreadable videos: " + "; ".join(problems))

    def _check_video(self, path: Path) -> None:
        """``check_video``, once per file: a file that passed and has not changed since (size and mtime) is
        not decoded again (the up-front check, then the linking)."""
        stat = path.stat() if path.is_file() else None
        key = (path, stat.st_size, stat.st_mtime_ns) if stat else None
        if key is not None and key in self._readable:
            return
        check_video(path)
        if key is not None:
            self._readable.add(key)

    def prepare(self, context) -> dict[str, Any]:
        """Checks the folder; facts: the folder, and its videos that are not test clips of the run (another
        speaker, a train clip: ``not_test_clips``, not scored, with a warning)."""
        self.check_inputs()
        unused = unused_videos(self.folder, context.test_clips)
        if unused:
            logger.warning("--generated %s=%s: %d video(s) are not test clips of this run and are not scored: %s",
                           self.name, self.folder, len(unused), ", ".join(unused[:5]) + " ..." * (len(unused) > 5),
                           extra=SAME_IN_EVERY_PROCESS)
        return {**self.source, **({"not_test_clips": unused} if unused else {})}

    def write(self, clip: ClipRecord, out: Path, seed: int) -> dict[str, Any]:
        source = self.folder / clip.identity / f"{clip.clip_id}.mp4"
        if not source.is_file() and not source.is_symlink():
            hint = look_alike(self.folder, clip)
            if hint:
                raise ExternalVideoError(f"{source}: missing; {hint}")
        self._check_video(source)
        wav = source.with_suffix(".wav")
        if wav.is_file():
            link_file(wav, out.with_suffix(".wav"))
        link_file(source, out)
        # the bytes scored: a folder whose videos are replaced under the same names gives other numbers,
        # and the record says which content produced these
        return {"source": str(source), "sha256": file_sha256(source)}


def look_alike(folder: Path, clip: ClipRecord) -> str | None:
    """What stands in ``folder`` where the clip's ``<identity>/<clip_id>.mp4`` is missing, in words: the clip
    in another container (imac-bench run reads MP4), or at the folder's top level; None when nothing is."""
    others = sorted(path.name for path in (folder / clip.identity).glob(f"{glob.escape(clip.clip_id)}.*")
                    if path.suffix.lower() in VIDEO_SUFFIXES and path.name != f"{clip.clip_id}.mp4" and path.is_file())
    if others and others[0].lower() == f"{clip.clip_id}.mp4":
        return f"found {others[0]}: imac-bench run reads <clip_id>.mp4, in lower case (rename it)"
    if others:
        return (f"found {others[0]}: imac-bench run reads MP4 files (remux it: ffmpeg -i {others[0]} -c copy "
                f"{clip.clip_id}.mp4; or score the folder as it is with python -m metrics compute)")
    flat = sorted(path.name for path in folder.glob(f"{glob.escape(clip.clip_id)}.*")
                  if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file())
    if flat:
        return f"found {flat[0]} at the folder's top level: the layout is <identity>/<clip_id>.mp4"
    return None


def unused_videos(folder: Path, clips) -> list[str]:
    """The ``<identity>/<clip_id>`` of the videos in ``folder`` that are none of ``clips``, sorted."""
    wanted = {(clip.identity, clip.clip_id) for clip in clips}
    return sorted(f"{path.parent.name}/{path.stem}" for path in folder.glob("*/*.mp4")
                  if path.is_file() and (path.parent.name, path.stem) not in wanted)


def same_clip_files(folder: Path) -> list[list[Path]]:
    """Groups of ``<identity>/<clip_id>.mp4`` files (and their ``.wav``) in ``folder`` that name one
    clip when names are compared as macOS and Windows compare them (case and Unicode normalisation
    ignored), each group sorted; empty when every clip has one file."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in folder.glob("*/*"):
        if path.suffix.lower() not in (".mp4", ".wav") or not path.is_file():
            continue
        key = tuple(unicodedata.normalize("NFC", part).casefold()
                    for part in (path.parent.name, path.stem, path.suffix))
        groups.setdefault(key, []).append(path)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)
