"""The broken video of an attention check in a study made from folders of videos: a method's video with its
picture frozen on its first frame, its sound kept.

A benchmark run has such videos of its own (its ``static`` control: the reference frame held for the
clip's length), and ``make_study_from_run`` shows them. A study made from folders (``make_study``) has
none, so ``freeze(video, out)`` makes one from the video shown in the check's slot: the first decoded
frame, encoded once per video packet of the source at the source's average frame rate (H.264, 4:2:0; an
odd last column or row cut), so it plays as long as the source; the sound stream copied packet for packet
(no re-encoding). A participant who watches it sees a still picture that talks: it must rank last on
sound-video synchronization. PyAV is imported only here, when a study asks for frozen checks.
"""

from __future__ import annotations

import os
from pathlib import Path

from userstudy.files import atomic_path
from userstudy.playable import moving_picture


class FreezeError(ValueError):
    """A source that cannot be frozen (unreadable, no video frame); names the file."""


def freeze(video: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (mp4): ``video``'s first frame held for as many frames as ``video``'s picture has, at its
    average frame rate, with ``video``'s sound streams copied as they are. Written atomically. Raises
    ``FreezeError`` naming ``video`` when it cannot be read or holds no video frame."""
    import av

    video, out = Path(video), Path(out)
    try:
        with av.open(str(video)) as source:
            stream = moving_picture(source)
            if stream is None:
                raise FreezeError(f"{video}: no video stream to freeze")
            rate = stream.average_rate or stream.guessed_rate
            first = next(source.decode(stream), None)
            if first is None or not rate:
                raise FreezeError(f"{video}: no video frame (or no frame rate) to freeze")
            picture = first.to_ndarray(format="rgb24")
        height, width = picture.shape[0] // 2 * 2, picture.shape[1] // 2 * 2     # 4:2:0 needs even sizes
        still = av.VideoFrame.from_ndarray(picture[:height, :width].copy(), format="rgb24")   # (contiguous)
        with atomic_path(out) as temporary, av.open(str(video)) as source, \
                av.open(str(temporary), "w", format="mp4") as target:
            stream = moving_picture(source)
            encoder = target.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            copies = {s: target.add_stream_from_template(s) for s in source.streams.audio}
            frames = 0
            for packet in source.demux(stream, *copies):     # one pass: a still frame per video packet,
                if packet.stream == stream:                  # the sound's packets copied as they come
                    if packet.size:
                        still.pts, frames = frames, frames + 1
                        for encoded in encoder.encode(still):
                            target.mux(encoded)
                elif packet.dts is not None:                 # (not the demuxer's final empty packet)
                    packet.stream = copies[packet.stream]
                    target.mux(packet)
            for encoded in encoder.encode(None):
                target.mux(encoded)
    except (av.FFmpegError, OSError) as error:
        raise FreezeError(f"{video}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    return out
