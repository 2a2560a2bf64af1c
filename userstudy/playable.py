"""Whether a study's video files will play to their end, read before a study is made of them.

A video cut short on its way (a copy interrupted, a disk that filled while a run wrote it) can still
be served: a player shows what is there and stops early, or plays without sound. In a ranking study
that is a trial the participants judge on a broken file, and nothing in their answers says so. An
MP4 file keeps an index of every stream's packets (the ``moov`` box): cut before the index, the file
does not open; with the index first ("faststart"), it opens and its last packets are missing; cut
inside the index, a stream can vanish (the sound, in a file measured here: a 1% cut turned the
audio track into an unknown data stream). ``playable`` reads the packets (demuxing, no decoding: a
few milliseconds a file) and compares their count per stream with the index's.

PyAV (already what the server's dubbing uses) is imported only when a file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Playable:
    """What ``playable`` found in a file: ``problems`` (empty: it plays to its end, as far as its
    index tells), the video packets read and whether it has a sound stream."""

    problems: tuple[str, ...]
    frames: int
    sound: bool


def playable(path: str | os.PathLike) -> Playable:
    """Read every packet of ``path``: a file that does not open, has no video stream or no video
    packet, fails while being read, or holds fewer packets of a stream than its index lists (stream
    ``frames``; formats without that count, as WebM, are checked only for opening and reading) is a
    problem, described without the path (the caller names the file). Raises nothing for a bad file."""
    import av

    try:
        reader = av.open(str(Path(path)))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        said = getattr(error, "strerror", None) or error          # FFmpeg's words, without the path again
        return Playable((f"cannot be opened ({said}): cut short before its index, or not a video",), 0, False)
    with reader:       # (a stream is not read once its file is closed: PyAV then crashes the process)
        listed = {s.index: (s.type, s.frames) for s in reader.streams}
        video = min((index for index, (kind, _) in listed.items() if kind == "video"), default=None)
        sound = any(kind == "audio" for kind, _ in listed.values())
        if video is None:
            return Playable(("has no video stream",), 0, sound)
        read = dict.fromkeys(listed, 0)
        try:
            for packet in reader.demux():
                if packet.size:
                    read[packet.stream.index] += 1
        except (av.FFmpegError, OSError) as error:
            said = getattr(error, "strerror", None) or error
            return Playable((f"fails while being read ({said}): damaged or cut short",), read[video], sound)
    problems = tuple(f"cut short: {read[index]} of the {frames} {kind} packets its index lists are there"
                     for index, (kind, frames) in listed.items()
                     if kind in ("video", "audio") and frames and read[index] < frames)
    if not read[video]:
        problems += ("holds no video frame",)
    return Playable(problems, read[video], sound)


def trial_problems(files: dict[str, Path], shown: dict[Path, str] | None = None) -> list[str]:
    """Problems of one trial's videos (``files``: method -> file): each file's own (``playable``), and a
    file without sound where another of the trial has it (the participants would compare a silent
    video with speaking ones). ``shown`` names the files as the user knows them (default: the path)."""
    shown = shown or {}
    found = {method: playable(path) for method, path in files.items()}
    problems = [f"{shown.get(files[method], files[method])}: {problem}"
                for method, result in found.items() for problem in result.problems]
    with_sound = [method for method, result in found.items() if result.sound]
    if with_sound:
        problems += [f"{shown.get(files[method], files[method])}: has no sound, where {with_sound[0]}'s video of "
                     f"the same trial has it (a sound track lost to a cut inside the file's index?)"
                     for method, result in found.items() if not result.sound and not result.problems]
    return problems
