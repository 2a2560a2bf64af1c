"""The mismatched video of a matched-versus-mismatched speech trial: one clip's picture with another
clip's speech, muxed without re-encoding (PyAV stream copy).

GENEA's appropriateness test plays the same speech under two motions: one generated from that
speech, one generated from another clip's. ``dub(video, speech, out)`` makes the second from a
benchmark run: the frames of ``video`` (a method's video of clip c') with the audio of ``speech``
(the method's video of clip c, whose own file is the matched video). The picture is cut at the length
of the matched video's picture, so the two videos of a trial play equally long; ``make_study`` takes as
c' a clip at least as long as c (``picture_seconds``), so that c's speech plays to its end under it.
Packets are copied as they are (no decoding), so the picture and the sound are bit for bit the
sources'. PyAV is imported only here, when a study asks for match trials.
"""

from __future__ import annotations

import os
from pathlib import Path

from userstudy.files import atomic_path
from userstudy.playable import moving_picture


class DubbingError(ValueError):
    """A source that cannot be dubbed (no video or no audio stream, unreadable); names the file."""


def _seconds(stream, container) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else float("inf")


def picture_seconds(path: str | os.PathLike) -> float:
    """The length in seconds of ``path``'s picture (its video stream's, as the header gives it; else the
    file's; inf when neither is known). Raises ``DubbingError`` naming the file: unreadable, no video."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = moving_picture(container)
            if stream is None:
                raise DubbingError(f"{path}: no video stream")
            return _seconds(stream, container)
    except (av.FFmpegError, OSError) as error:
        raise DubbingError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None


def dub(video: str | os.PathLike, speech: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (mp4): the video stream of ``video`` with the audio stream of ``speech``. The picture
    is cut (at a packet boundary) at the length of ``speech``'s own picture, or of its sound when it has
    none, so that ``out`` plays as long as ``speech`` does; the sound is whole, unless ``video``'s picture
    is the shorter: then both are cut at its end. Raises ``DubbingError`` naming the file."""
    import av

    video, speech, out = Path(video), Path(speech), Path(out)
    try:
        picture, sound = av.open(str(video)), av.open(str(speech))
    except (av.FFmpegError, OSError) as error:
        raise DubbingError(f"cannot open the sources of a dubbed video ({error})") from None
    with picture, sound:
        source_video = moving_picture(picture)
        if source_video is None:
            raise DubbingError(f"{video}: no video stream")
        if not sound.streams.audio:
            raise DubbingError(f"{speech}: no audio stream, so no speech to put under another clip's video "
                               "(a run's videos carry their speech; these do not)")
        source_audio = sound.streams.audio[0]
        own_picture = moving_picture(sound)
        length = _seconds(own_picture, sound) if own_picture is not None else _seconds(source_audio, sound)
        frames = _seconds(source_video, picture)
        limits = {source_video: min(length, frames), source_audio: frames if frames < length else float("inf")}
        with atomic_path(out) as temporary:
            with av.open(str(temporary), "w", format="mp4") as target:
                streams = {source_video: target.add_stream_from_template(source_video),
                           source_audio: target.add_stream_from_template(source_audio)}
                for container, stream in ((picture, source_video), (sound, source_audio)):
                    for packet in container.demux(stream):
                        if packet.dts is None:          # the demuxer's final empty packet
                            continue
                        if packet.pts is not None and packet.pts * stream.time_base >= limits[stream]:
                            break
                        packet.stream = streams[stream]
                        target.mux(packet)
    return out
