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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from userstudy.files import atomic_path
from userstudy.playable import moving_picture


T = TypeVar("T")


class EncodingError(ValueError):
    """A video that cannot be re-encoded (unreadable, no video stream); names the file."""


def frame_rate(average_rate: Fraction | None) -> Fraction:
    """The frame rate (frames per second) to re-encode at: the source stream's average rate, or 25
    when the file does not give one (None or 0)."""
    return Fraction(average_rate) if average_rate else Fraction(25)


AUDIO_JUMP_S = 0.01   # a sound track whose frames jump by more than this (a gap, an overlap) is refused


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size (pixels) to encode ``width`` x ``height`` at: each side cut down to even, since
    H.264 in 4:2:0 (yuv420p) needs even sizes; an odd last column or row is cut, as
    ``bench.data.prepare`` does (``square_pixel_size``)."""
    return width // 2 * 2, height // 2 * 2


FULL_RANGE = 2      # FFmpeg's AVCOL_RANGE_JPEG: a frame whose levels span 0-255 (yuvj420p, a phone's, gbrp)


def even_frame(frame, width: int, height: int):
    """``frame`` (an ``av.VideoFrame``) in yuv420p at ``width`` x ``height`` (``even_size`` of its own):
    its last column and row cut when they are odd, nothing resized; in limited range, converted from full
    range when the source is (a plain reformat kept full-range levels, which the untagged output then
    showed as limited: contrast stretched)."""
    import av

    if (frame.width, frame.height) != (width, height):
        pixels = frame.to_ndarray(format="rgb24")[:height, :width]
        frame = av.VideoFrame.from_ndarray(pixels.copy(), format="rgb24")
    return frame.reformat(format="yuv420p", src_color_range="JPEG" if frame.color_range == FULL_RANGE else None,
                          dst_color_range="MPEG")


def shown_otherwise(stream, frame) -> str | None:
    """What a player does to ``frame`` (the first of the video ``stream``) that the re-encode would not keep:
    non-square pixels (a sample aspect ratio), a display matrix (turned or mirrored); None when neither."""
    ratio = stream.sample_aspect_ratio
    if ratio and ratio != 1:
        return (f"non-square pixels (sample aspect ratio {ratio.numerator}:{ratio.denominator}), which the re-encode "
                "would not keep: make them square first (ffmpeg -vf scale=iw*sar:ih,setsar=1)")
    if any(getattr(side.type, "name", "") == "DISPLAYMATRIX" for side in frame.side_data):
        return ("a display matrix (shown turned or mirrored), which the re-encode would not keep: turn the "
                "frames as shown first (ffmpeg re-encoding applies it)")
    return None


def constant_rate(timed: Iterable[tuple[Fraction, T]], rate: Fraction) -> Iterator[T]:
    """Items shown at ``timed``'s times (seconds, increasing) resampled to a constant ``rate``: output
    frame k, at ``t0 + k / rate`` (``t0``: the first item's time), is the item nearest in time (the
    earlier on a tie), up to round((last time - t0) * rate) + 1 frames: ``bench.data.prepare``'s
    ``make_timeline``, streamed. A constant-rate source at ``rate`` comes out as it is; a
    variable-rate one keeps every moment at its time, frames repeated or dropped."""
    first = previous = None
    index = 0
    for time, item in timed:
        if first is None:
            first = time
        while first + index / rate <= time:
            target = first + index / rate
            nearest = previous is not None and abs(previous[0] - target) <= abs(time - target)
            yield previous[1] if nearest else item
            index += 1
        previous = (time, item)
    if previous is not None:
        for _ in range(index, round((previous[0] - first) * rate) + 1):
            yield previous[1]


def _timed_frames(frames: Iterable, rate: Fraction) -> Iterator[tuple[Fraction, object]]:
    """Each decoded frame with its time (seconds); a frame without one is put 1 / ``rate`` after the last."""
    time = None
    for frame in frames:
        if frame.pts is not None and frame.time_base is not None:
            time = Fraction(frame.pts) * frame.time_base
        else:
            time = Fraction(0) if time is None else time + 1 / rate
        yield time, frame


def _first_time(path: Path, index: int) -> Fraction | None:
    """The time (seconds) of the first decoded frame of ``path``'s stream ``index`` (edit lists and the
    codec's priming applied, as a player shows it), or None when it has none. The file is opened afresh:
    a decoder seeked back to the start gives an AAC priming frame it skipped the first time."""
    import av

    with av.open(str(path)) as reader:
        for frame in reader.decode(reader.streams[index]):
            if frame.pts is not None and frame.time_base is not None:
                return Fraction(frame.pts) * frame.time_base
            return None
    return None


def _audio_frames(reader, stream, shift: Fraction, name: object) -> Iterator:
    """``stream``'s decoded frames timed on the output clock (source time + ``shift`` seconds), in samples
    from 0, numbered without a break (the encoder takes no gap). Raises ``EncodingError`` naming ``name``
    when the track jumps by more than ``AUDIO_JUMP_S`` (the sound could not stay in sync)."""
    expected = None
    for frame in reader.decode(stream):
        rate = frame.sample_rate
        if frame.pts is not None and frame.time_base is not None:
            at = round((Fraction(frame.pts) * frame.time_base + shift) * rate)
            if expected is None:
                expected = max(at, 0)
            elif abs(at - expected) > AUDIO_JUMP_S * rate:
                raise EncodingError(f"{name}: its sound jumps by {(at - expected) / rate:+.3f} s at "
                                    f"{float(Fraction(expected, rate) - shift):.3f} s (a gap or overlap in the "
                                    "track), so it cannot be re-encoded in sync; remux it first")
        expected = expected or 0
        frame.pts, frame.time_base = expected, Fraction(1, rate)
        expected += frame.samples
        yield frame


def reencode_constant_bitrate(source: str | os.PathLike, out: str | os.PathLike, video_kbps: int,
                              audio_kbps: int = 96, shown_as: str | os.PathLike | None = None) -> Path:
    """Write ``out`` (mp4, atomically): ``source``'s frames as H.264 at ``video_kbps`` kbit/s constant
    bitrate (yuv420p at the source's size, an odd last column or row cut: ``even_size``) and its first
    audio stream, if any, as AAC at ``audio_kbps``. ``out`` may be ``source`` (replaced when done).

    Timing (seconds) is the source's: the frames are resampled to the source's average frame rate by
    their timestamps (``constant_rate``: frame k shows the source frame nearest to the first frame's time
    + k / rate; a constant-rate source keeps every frame), and the sound starts where it started against
    the picture (to the sample; the AAC encoder's priming is in the file's edit list). The earlier of the
    two streams starts at 0, or the picture at its first frame time of the rate's grid at or after the
    sound's start. Raises ``EncodingError`` naming the file (``shown_as``, default ``source``: a study built
    in a temporary folder names the file as the user will find it): unreadable, no video stream, a
    picture under 2 x 2 pixels, a sound track with a gap, non-square pixels or a display matrix (which the
    output would not keep: ``shown_otherwise``). Full-range frames are converted to limited range."""
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
            width, height = even_size(video_in.width, video_in.height)
            if not width or not height:
                raise EncodingError(f"{name}: cannot be re-encoded (its picture is {video_in.width} x "
                                    f"{video_in.height} pixels; H.264 in 4:2:0 needs at least 2 x 2)")
            picture_start = _first_time(source, video_in.index) or Fraction(0)
            sound_start = _first_time(source, audio_in.index) if audio_in is not None else None
            # the picture's first frame on the output's frame grid, at or after the sound's start
            lead = max(0, -((sound_start - picture_start) * rate // 1)) if sound_start is not None else 0
            shift = Fraction(lead) / rate - picture_start          # source seconds -> output seconds
            with av.open(str(temporary), "w", format="mp4") as writer:
                video_out = writer.add_stream("libx264", rate=rate)
                video_out.width, video_out.height = width, height
                video_out.pix_fmt = "yuv420p"
                video_out.bit_rate = video_kbps * 1000
                video_out.options = {"x264-params": "nal-hrd=cbr:force-cfr=1" + _x264_asm(), "minrate": f"{video_kbps}k",
                                     "maxrate": f"{video_kbps}k", "bufsize": f"{video_kbps}k"}
                audio_out = None
                if audio_in is not None:                  # every stream before the first packet is muxed
                    audio_out = writer.add_stream("aac", rate=audio_in.rate)
                    audio_out.bit_rate = audio_kbps * 1000
                shown = constant_rate(_timed_frames(reader.decode(video_in), rate), rate)
                for index, frame in enumerate(shown, start=lead):
                    if index == lead and (problem := shown_otherwise(video_in, frame)):
                        raise EncodingError(f"{name}: {problem}, or leave out --constant-bitrate")
                    frame = even_frame(frame, width, height)
                    frame.pts, frame.time_base = index, 1 / rate
                    for packet in video_out.encode(frame):
                        writer.mux(packet)
                for packet in video_out.encode():
                    writer.mux(packet)
                if audio_in is not None and audio_out is not None:
                    with av.open(str(source)) as sound:        # afresh, as _first_time read it
                        for frame in _audio_frames(sound, sound.streams[audio_in.index], shift, name):
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
