"""Re-encoding a study's videos at one constant bitrate, so that file sizes do not group videos by method.

The blinding of a study hides method names, not files: two methods' encoders leave videos of very
different sizes (167-265 kB against 59-105 kB in one benchmark run), which a participant who looks at
the network panel can group across trials. ``reencode_constant_bitrate`` re-encodes a video with
x264 in constant-bitrate mode (HRD ``nal-hrd=cbr``: the encoder pads with filler data up to the rate,
``minrate = maxrate = bitrate``) and AAC at a fixed audio rate, so that videos of equal duration
come out of about equal size whatever their content. A video whose content needs more than the rate
exceeds it; ``reencode_folder`` reports the spread of bytes per second so the user can raise it.

PyAV (already what the server's dubbing uses) is imported only here, when a study asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from userstudy.files import atomic_path
from userstudy.playable import moving_picture


class EncodingError(ValueError):
    """A video that cannot be re-encoded (unreadable, no video stream); names the file."""


def frame_rate(average_rate: Fraction | None) -> Fraction:
    """The frame rate (frames per second) to re-encode at: the source stream's average rate, or 25
    when the file does not give one (None or 0)."""
    return Fraction(average_rate) if average_rate else Fraction(25)


def reencode_constant_bitrate(source: str | os.PathLike, out: str | os.PathLike, video_kbps: int,
                              audio_kbps: int = 96, shown_as: str | os.PathLike | None = None) -> Path:
    """Write ``out`` (mp4, atomically): ``source``'s frames as H.264 at ``video_kbps`` kbit/s constant
    bitrate (yuv420p, the source's frame rate and size) and its first audio stream, if any, as AAC at
    ``audio_kbps``. ``out`` may be ``source`` (replaced when done).

    The frames keep their order and are timed at the source's average frame rate: frame i is shown
    at i / rate seconds (constant frame rate, as ``force-cfr`` asks of x264); the sound starts at 0.
    Raises ``EncodingError`` naming the file (``shown_as``, default ``source``: a study built in a
    temporary folder names the file as the user will find it)."""
    import av

    if video_kbps <= 0 or audio_kbps <= 0:
        raise EncodingError(f"bitrates must be positive, got video {video_kbps} and audio {audio_kbps} kbit/s")
    source, out = Path(source), Path(out)
    name = source if shown_as is None else shown_as
    try:
        with av.open(str(source)) as reader, atomic_path(out) as temporary:
            video_in = moving_picture(reader)
            if video_in is None:
                raise EncodingError(f"{name}: no video stream")
            audio_in = reader.streams.audio[0] if reader.streams.audio else None
            rate = frame_rate(video_in.average_rate)
            with av.open(str(temporary), "w", format="mp4") as writer:
                video_out = writer.add_stream("libx264", rate=rate)
                video_out.width, video_out.height = video_in.width, video_in.height
                video_out.pix_fmt = "yuv420p"
                video_out.bit_rate = video_kbps * 1000
                video_out.options = {"x264-params": "nal-hrd=cbr:force-cfr=1" + _x264_asm(), "minrate": f"{video_kbps}k",
                                     "maxrate": f"{video_kbps}k", "bufsize": f"{video_kbps}k"}
                audio_out = None
                if audio_in is not None:                  # every stream before the first packet is muxed
                    audio_out = writer.add_stream("aac", rate=audio_in.rate)
                    audio_out.bit_rate = audio_kbps * 1000
                for index, frame in enumerate(reader.decode(video_in)):
                    frame = frame.reformat(format="yuv420p")
                    # A frame without pts is not numbered by PyAV 18: every frame came out at time 0.
                    # Number them in units of 1 / rate (the sound's frames, without pts, are numbered).
                    frame.pts, frame.time_base = index, 1 / rate
                    for packet in video_out.encode(frame):
                        writer.mux(packet)
                for packet in video_out.encode():
                    writer.mux(packet)
                if audio_in is not None and audio_out is not None:
                    reader.seek(0)
                    for frame in reader.decode(audio_in):
                        frame.pts = None
                        for packet in audio_out.encode(frame):
                            writer.mux(packet)
                    for packet in audio_out.encode():
                        writer.mux(packet)
    except (av.FFmpegError, OSError) as error:
        # FFmpeg's message names the file it read (here maybe a temporary copy): keep only its reason
        raise EncodingError(f"{name}: cannot be re-encoded ({error.strerror or error})") from None
    return out


def _x264_asm() -> str:
    """``":asm=AVX2"`` on a CPU with AVX-512, else "": x264's AVX-512 functions write other bytes from
    one encode of the same frames to the next (measured on an AVX-512 AMD EPYC; metrics.io.video's
    ``x264_asm`` has the figures), and a study's stimuli should be the same files when made again."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return ""
    return ":asm=AVX2" if features.get("AVX512F") else ""


@dataclass(frozen=True)
class BitrateSpread:
    """Bytes per second of the re-encoded videos: the smallest, the largest and their ratio."""

    videos: int
    smallest: float
    largest: float

    @property
    def ratio(self) -> float:
        return self.largest / self.smallest if self.smallest > 0 else float("inf")


def _seconds(path: Path) -> float:
    """The duration of ``path``'s video in seconds: its video stream's, else the container's (0 if unknown)."""
    import av

    with av.open(str(path)) as reader:
        stream = moving_picture(reader)
        if stream is not None and stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return (reader.duration or 0) / 1_000_000


def reencode_folder(folder: str | os.PathLike, video_kbps: int, audio_kbps: int = 96,
                    names: Mapping[Path, str | os.PathLike] | None = None) -> BitrateSpread:
    """Re-encode every ``*.mp4`` under ``folder`` in place (each atomically, sorted by path) and return
    the spread of bytes per second (file size over the video's duration) over them. Raises
    ``EncodingError`` naming a file that fails (the videos re-encoded before it stay re-encoded:
    running it again is safe); ``names`` maps a video's path (``folder / ...``) to its name in that
    message (default: the path; a study built in a temporary folder names the user's file instead)."""
    paths = sorted(Path(folder).rglob("*.mp4"))
    rates = []
    for path in paths:
        reencode_constant_bitrate(path, path, video_kbps, audio_kbps, shown_as=(names or {}).get(path))
        seconds = _seconds(path)
        if seconds > 0:
            rates.append(path.stat().st_size / seconds)
    if not rates:
        return BitrateSpread(0, float("nan"), float("nan"))
    return BitrateSpread(len(rates), min(rates), max(rates))
