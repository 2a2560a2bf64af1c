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
from dataclasses import dataclass, field
from pathlib import Path

from userstudy.study import VIDEO_SUFFIXES


END_SLACK_S = 0.1      # a stream may end this much before the length its header gives (an audio codec's last frame)


@dataclass(frozen=True)
class Playable:
    """What ``playable`` found in a file: ``problems`` (empty: it plays to its end, as far as its
    header tells), the video packets read and whether it has a sound stream."""

    problems: tuple[str, ...]
    frames: int
    sound: bool
    # informational (not compared): the picture's (width, height) in pixels as its stream gives it, and
    # where the video packets end (their last timestamp + its length), in seconds
    size: tuple[int, int] | None = field(default=None, compare=False)
    seconds: float | None = field(default=None, compare=False)


def _said(error: BaseException) -> object:
    """FFmpeg's words for ``error``, without the path it repeats."""
    return getattr(error, "strerror", None) or error


def moving_picture(reader):
    """The video stream of an open ``av`` container, as ffmpeg picks it (``av_find_best_stream``: the default
    stream first, then the one with frames): not a cover picture, which a Matroska file may list first as a
    picture stream of its own; None when there is none."""
    import av

    cover = av.stream.Disposition.attached_pic
    moving = [stream for stream in reader.streams.video if not stream.disposition & cover]
    best = reader.streams.best("video")
    return best if best in moving else next(iter(moving), None)


def _listed_end(stream) -> float | None:
    """Seconds at which ``stream`` ends by the file's index (MP4, MOV: its start and length); None when
    the file gives no length per stream (WebM, Ogg)."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    return None


def playable(path: str | os.PathLike) -> Playable:
    """Read every packet of ``path`` (demuxing, no decoding) and compare what is there with what the
    header lists. A problem (described without the path: the caller names the file): the file does not
    open, has no video stream or no video packet, fails while being read or holds a packet the demuxer
    marks damaged, holds fewer video frames than its index lists (MP4, MOV: ``frames``), or ends more than
    ``END_SLACK_S`` before the length its header gives: each stream against its own where the index gives
    one (MP4, MOV), else the file's last packet against the file's length (WebM, whose streams may end
    apart). Not found: a file that states no length (Ogg, a WebM written to a pipe, a fragmented MP4 cut
    between its fragments) cut short, and damage inside the picture or sound data (nothing is decoded).
    A cover picture (an attached picture stream) is not the video. Raises nothing for a bad file."""
    import av

    try:
        reader = av.open(str(Path(path)))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        return Playable((f"cannot be opened ({_said(error)}): cut short before its index, or not a video",), 0, False)
    with reader:       # (a stream is not read once its file is closed: PyAV then crashes the process)
        seconds = reader.duration / 1_000_000 if reader.duration else None
        picture = moving_picture(reader)
        media = {s.index: (s.type, s.frames, _listed_end(s)) for s in reader.streams
                 if s.type == "audio" or s == picture}
        sound = any(kind == "audio" for kind, _, _ in media.values())
        if picture is None:
            return Playable(("has no video stream",), 0, sound)
        video = picture.index
        size = (int(picture.codec_context.width), int(picture.codec_context.height)) \
            if picture.codec_context.width else None
        frames, ends, damaged = 0, dict.fromkeys(media, 0.0), None
        try:
            for packet in reader.demux():
                index = packet.stream.index
                if not packet.size or index not in media:
                    continue
                frames += index == video
                if packet.pts is not None:
                    ends[index] = max(ends[index], float((packet.pts + (packet.duration or 0)) * packet.time_base))
                if packet.is_corrupt and damaged is None:
                    damaged = f"a damaged {media[index][0]} packet at {ends[index]:.2f} s: cut short or damaged"
        except (av.FFmpegError, OSError) as error:
            return Playable((f"fails while being read ({_said(error)}): damaged or cut short",), frames, sound)
    problems = []
    for index, (kind, count, end) in media.items():
        if index == video and count and frames < count:
            problems.append(f"cut short: {frames} of the {count} video frames its index lists are there")
        elif end is not None and ends[index] < end - END_SLACK_S:
            problems.append(f"cut short: its {kind} ends at {ends[index]:.2f} s of the {end:.2f} s its index gives")
    unlisted = [index for index, (_, _, end) in media.items() if end is None]
    last = max((ends[index] for index in unlisted), default=None)
    if last is not None and seconds is not None and last < seconds - END_SLACK_S:
        problems.append(f"cut short: it ends at {last:.2f} s of the {seconds:.2f} s its header gives")
    if damaged and not problems:          # (a cut's last packet is one too: said once, as the cut)
        problems.append(damaged)
    if not frames:
        problems.append("holds no video frame")
    return Playable(tuple(problems), frames, sound, size, ends[video] or None)


DURATION_SLACK_S = 0.1     # the videos of one trial may differ this much in length before make-study warns


def trial_differences(files: dict[str, Path], found: dict[str, Playable]) -> list[str]:
    """What sets one trial's videos apart besides their content, in words naming the files: picture sizes
    or lengths (beyond ``DURATION_SLACK_S``) that differ. A participant can tell the methods apart by them
    (and judge a longer video on more), so make-study warns; re-encoding at a constant bitrate keeps both."""
    differences = []
    sizes = {method: result.size for method, result in found.items() if result.size}
    if len(set(sizes.values())) > 1:
        differences.append("picture sizes differ: " + ", ".join(f"{files[m]} {w}x{h}" for m, (w, h) in sizes.items()))
    seconds = {method: result.seconds for method, result in found.items() if result.seconds}
    if seconds and max(seconds.values()) - min(seconds.values()) > DURATION_SLACK_S:
        differences.append("lengths differ: " + ", ".join(f"{files[m]} {s:.2f} s" for m, s in seconds.items()))
    return differences


def trial_problems(files: dict[str, Path], differences: list[str] | None = None) -> list[str]:
    """Problems of one trial's videos (``files``: method -> file), each naming its file: each file's own
    (``playable``), and a file without sound where another of the trial has it (the participants would
    compare a silent video with speaking ones). ``differences``, when given, gets what else sets the
    videos apart (``trial_differences``: sizes, lengths), for a warning."""
    found = {method: playable(path) for method, path in files.items()}
    if differences is not None:
        differences += trial_differences(files, found)
    problems = [f"{files[method]}: {problem}" for method, result in found.items() for problem in result.problems]
    with_sound = [method for method, result in found.items() if result.sound]
    if with_sound:
        problems += [f"{files[method]}: has no sound, where {with_sound[0]}'s video of "
                     "the same trial has it: participants would compare a silent video with speaking ones; put the "
                     "clip's speech into it (ffmpeg -i VIDEO -i SPEECH.wav -c:v copy -c:a aac OUT.mp4), or make it "
                     "again if a cut took its sound"
                     for method, result in found.items() if not result.sound and not result.problems]
    return problems


IMAGE_PIXELS_MAX = 64_000_000     # a reference image over this many pixels is refused (not a portrait)


def reference_problems(path: str | os.PathLike) -> list[str]:
    """Problems of a trial's reference file, described without the path: a video's (``playable``), or an
    image that does not decode to its end (Pillow: a file that is not an image, or cut short) or holds more
    than ``IMAGE_PIXELS_MAX`` pixels (read from its header before decoding)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return list(playable(path).problems)
    try:
        with Image.open(path) as image:
            if image.width * image.height > IMAGE_PIXELS_MAX:
                return [f"an image of {image.width} x {image.height} pixels, more than {IMAGE_PIXELS_MAX:,}"]
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return [f"cannot be read as an image ({error}): not an image, or cut short"]
    return []
