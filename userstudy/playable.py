"""Whether a study's video files will play to their end, read before a study is made of them.

A video cut short on its way (a copy interrupted, a disk that filled while a run wrote it) can still
be served: a player shows what is there and stops early, or plays without sound. In a ranking study
that is a trial the participants judge on a broken file, and nothing in their answers says so. An
MP4 file keeps an index of every stream's packets (the ``moov`` box): cut before the index, the file
does not open; with the index first ("faststart"), it opens and its last packets are missing; cut
inside the index, a stream can vanish (the sound, in a file measured here: a 1% cut turned the
audio track into an unknown data stream). ``playable`` reads the packets (demuxing, no decoding: a
few milliseconds a file) and compares them with what the header lists: the video frames of the index,
and where each stream ends against the length the header gives.

PyAV (already what the server's dubbing uses) is imported only when a file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


END_SLACK_S = 0.1      # a stream may end this much before the length its header gives (an audio codec's last frame)


@dataclass(frozen=True)
class Playable:
    """What ``playable`` found in a file: ``problems`` (empty: it plays to its end, as far as its
    header tells), the video packets read and whether it has a sound stream."""

    problems: tuple[str, ...]
    frames: int
    sound: bool


def _listed_end(stream, container_seconds: float | None) -> float | None:
    """Seconds at which ``stream`` ends by the file's header: its start and length (an MP4 index, a
    fragmented MP4's), else the container's length (a WebM header's); None when the file gives none."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    return container_seconds


def playable(path: str | os.PathLike) -> Playable:
    """Read every packet of ``path`` (demuxing, no decoding) and compare what is there with what the
    header lists: a file that does not open, has no video stream or no video packet, fails while being
    read, holds fewer video frames than its index lists (MP4, MOV: ``frames``), or whose video or sound
    ends more than ``END_SLACK_S`` before the length its header gives (MP4, MOV, fragmented MP4, WebM) is a
    problem, described without the path (the caller names the file). An Ogg file states no length, so a cut
    one is not found. Raises nothing for a bad file."""
    import av

    try:
        reader = av.open(str(Path(path)))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        said = getattr(error, "strerror", None) or error          # FFmpeg's words, without the path again
        return Playable((f"cannot be opened ({said}): cut short before its index, or not a video",), 0, False)
    with reader:       # (a stream is not read once its file is closed: PyAV then crashes the process)
        seconds = reader.duration / 1_000_000 if reader.duration else None
        kinds = {s.index: s.type for s in reader.streams}
        listed = {s.index: (s.frames, _listed_end(s, seconds)) for s in reader.streams if s.type in ("video", "audio")}
        video = min((index for index, kind in kinds.items() if kind == "video"), default=None)
        sound = "audio" in kinds.values()
        if video is None:
            return Playable(("has no video stream",), 0, sound)
        frames, ends = 0, dict.fromkeys(listed, 0.0)
        try:
            for packet in reader.demux():
                index = packet.stream.index
                if not packet.size or index not in listed:
                    continue
                frames += index == video
                if packet.pts is not None:
                    ends[index] = max(ends[index], float((packet.pts + (packet.duration or 0)) * packet.time_base))
        except (av.FFmpegError, OSError) as error:
            said = getattr(error, "strerror", None) or error
            return Playable((f"fails while being read ({said}): damaged or cut short",), frames, sound)
    problems = []
    for index, (count, end) in listed.items():
        if index == video and count and frames < count:
            problems.append(f"cut short: {frames} of the {count} video frames its index lists are there")
        elif end is not None and ends[index] < end - END_SLACK_S:
            problems.append(f"cut short: its {kinds[index]} ends at {ends[index]:.2f} s of the {end:.2f} s its "
                            "header gives")
    if not frames:
        problems.append("holds no video frame")
    return Playable(tuple(problems), frames, sound)


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
                     "the same trial has it: participants would compare a silent video with speaking ones; put the "
                     "clip's speech into it (ffmpeg -i VIDEO -i SPEECH.wav -c:v copy -c:a aac OUT.mp4), or make it "
                     "again if a cut took its sound"
                     for method, result in found.items() if not result.sound and not result.problems]
    return problems
