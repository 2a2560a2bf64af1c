"""Streaming video I/O with PyAV: probing, frame-by-frame reading, and atomic mp4 writing.

Frames are uint8 RGB arrays of shape (H, W, 3). Nothing here holds a whole video in memory
except ``read_video``, the convenience for small files: ``VideoReader`` decodes on demand and
``write_video`` encodes frames as they come from any iterable (a generator that renders them,
for instance).

Frame indices count the frames a player presents, in presentation order, from 0. Every path here
agrees on them: ``probe_video``'s count, iteration, ``VideoReader.read``, and ``frame_times`` (the
presentation time of each). What a player presents is not always every frame the file stores:

- an edit list (mp4/mov; what ``ffmpeg -ss ... -c copy`` writes) may hide frames that are stored
  only because later frames are predicted from them. FFmpeg's demuxer marks their packets
  "discard" and the decoder drops them; they are neither counted, nor read, nor timed here (the
  container's own frame count, ``stream.frames``, includes them, so it is not used);
- B-frames are stored in decoding order: presentation order is the order of their timestamps;
- a file that starts inside a group of pictures (a capture or cut that lost its first keyframe, or
  whose first keyframe is damaged) stores frames no decoder can rebuild: the packets before the
  first keyframe are neither counted, nor decoded, nor timed, so the video starts at its first
  decodable frame, as a player's does (an edit list that cuts the end hides frames the same way
  as one that cuts the start: tests/test_media_cut_files.py);
- timestamps may start below 0 (MPEG-TS, a stream copied from the middle of a recording): those
  frames are shown, and their times stay on the container's clock (negative);
- a variable-frame-rate recording (a phone's) has no frame at ``i / fps``: ``frame_times`` gives
  each frame's own time, and ``fps`` is only the container's average rate.

A file that stores fewer video packets than its header lists (an mp4 written with its header first,
then cut short by a copy or a download) reads as far as it goes; ``VideoInfo.truncated`` says so, and
the metrics refuse it (it would read as a shorter clip), while data preparation keeps what is there.

For the constant-frame-rate files this project writes, frame ``i`` is shown at ``i / fps``.

About the audio track (AAC): the encoder works on frames of 1024 samples and adds "priming"
samples at the start. The mp4 muxer records both in an edit list and the track's duration, so
``read_video_audio`` gets the signal back without a delay, and cuts the padding of the last AAC
frame off using the duration the container records. A file written by another tool may record no
duration; its audio then reads back up to one AAC frame longer (64 ms at 16 kHz), and players or
decoders that ignore edit lists see up to ~0.1 s more. Compare audio and video durations with a
tolerance of that order, never exactly.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from metrics.io.audio import SAMPLE_RATE
from metrics.io.files import atomic_path

# Codecs that understand the x264-style "crf" constant-quality option.
CRF_CODECS = frozenset({"libx264", "libx265"})
# Chroma-subsampled pixel formats need even sizes: (width must be even, height must be even).
SUBSAMPLED_PIX_FMTS = {"yuv420p": (True, True), "yuvj420p": (True, True), "nv12": (True, True),
                       "yuv422p": (True, False), "yuvj422p": (True, False)}

# Decoding chunks (``VideoReader.iter_chunks``, ``chunk_frames``): the evaluator and the keypoint
# extraction hand frames on CHUNK_FRAMES at a time, and no chunk holds more than CHUNK_BUDGET bytes of
# uint8 RGB frames, whatever size a file's frames are (a small file can hold 8192 x 8192 frames).
CHUNK_FRAMES = 64
CHUNK_BUDGET = 256 << 20    # 256 MiB: 64 frames up to 1.3 Mpx (1280 x 1024), 32 at 1080p, 4 at 4096 x 4096

_OPEN_ERRORS = (av.FFmpegError, OSError, UnicodeDecodeError)


def _said(error: BaseException) -> str:
    """FFmpeg's reason without PyAV's decoration: "Invalid data found when processing input", not
    "[Errno 1094995529] Invalid data found when processing input: '/path'" (the path is said once, first)."""
    if isinstance(error, (av.FFmpegError, OSError)) and error.strerror:
        return str(error.strerror)
    return str(error)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, read without decoding frames."""

    path: Path
    fps: float                   # the container's average rate (a variable-rate file: see frame_times)
    num_frames: int              # frames a player presents (an edit list's hidden frames not counted)
    width: int
    height: int
    duration: float              # seconds: num_frames / fps
    has_audio: bool
    audio_sample_rate: int | None
    # What else the headers say that changes how frames and sound are decoded (None: not recorded)
    pix_fmt: str | None = None               # e.g. yuv420p (chroma subsampling, bit depth)
    color_range: str | None = None           # "tv" (limited), "pc" (full); None: unspecified
    color_space: str | None = None           # the YUV matrix: "bt709", "bt470bg", ...; None: unspecified
    sample_aspect_ratio: str | None = None   # "num:den" of a pixel; None: unspecified (square)
    audio_channels: int | None = None
    audio_duration: float | None = None      # seconds the audio track records
    # the header's frame count and the packets the file holds (``truncated``); 0: the header states none
    declared_frames: int = 0
    stored_frames: int = 0

    @property
    def truncated(self) -> str | None:
        """Why the file is cut short, in words, when it holds fewer video packets than its header lists (an
        mp4 with its header first, cut by a copy or a download: it would read as a shorter clip); None else."""
        if self.declared_frames and self.stored_frames < self.declared_frames:
            return (f"truncated: its header lists {self.declared_frames} video frames and the file holds "
                    f"{self.stored_frames} ({self.stored_frames / self.declared_frames:.0%}); a copy or download "
                    "cut short? Make it again")
        return None


# FFmpeg's AVColorRange and AVColorSpace codes (libavutil/pixfmt.h) -> names; 0 / 2: unspecified.
_COLOR_RANGES = {1: "tv", 2: "pc"}
_COLOR_SPACES = {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
                 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c",
                 14: "ictcp"}


# -- reading ---------------------------------------------------------------------------------------


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    try:
        return av.open(str(path), "r")
    except _OPEN_ERRORS as error:
        raise ValueError(f"{path}: cannot open video: {_said(error)}") from error


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The video, as ffmpeg picks it (``av_find_best_stream``: the default stream first, then the one with
    frames): not a cover picture, which a Matroska file may list first as a picture stream of its own."""
    cover = av.stream.Disposition.attached_pic
    moving = [stream for stream in container.streams.video if not stream.disposition & cover]
    if not moving:
        raise ValueError(f"{path}: no video stream" + (" (only a cover picture)" if container.streams.video else ""))
    best = container.streams.best("video")
    return best if best in moving else moving[0]


def _frame_rate(stream: av.video.stream.VideoStream, path: Path) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    raise ValueError(f"{path}: the video stream records no frame rate")


@dataclass(frozen=True)
class _PacketTable:
    """What one demuxing pass (no decoding) says about the frames a player presents.

    ``count`` is the number of presented frames: the video packets that hold a frame and that the
    container does not mark "discard" (an edit list hides those). ``frame_pts`` are their
    presentation timestamps, sorted (presentation order), or None when some packet lacks one or
    two share one (a timestamp then names no single frame). ``keyframes`` are the (pts, dts) of all
    keyframe packets, hidden ones included (decoding starts there), sorted by pts; ``hidden_pts``
    the timestamps of the hidden packets. ``leading`` counts the packets stored before the first
    keyframe (in decoding order): a file that starts inside a group of pictures (a capture or cut
    that lost its first keyframe) cannot decode them, so they are hidden too and never sent to the
    decoder (0 when no packet is marked a keyframe: nothing is known then).
    """

    count: int
    time_base: Fraction | None
    frame_pts: list[int] | None
    keyframes: list[tuple[int, int]]
    hidden_pts: frozenset[int]
    leading: int = 0
    stored: int = 0          # every packet the file holds for the stream (hidden ones and empty samples too)
    declared: int = 0        # the frame count the header states (mp4/mov, avi; 0: not stated)


def _scan_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  path: Path) -> _PacketTable:
    """Demux (without decoding) every packet of ``stream``: see ``_PacketTable``."""
    packets = []                   # (pts, dts, keyframe, discard) of every packet holding data, in decoding order
    stored = 0                     # every packet the file stores for the stream (an empty sample too)
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None:
                continue  # the empty packet PyAV yields at the end of each stream, to flush the decoder
            stored += 1
            if packet.size == 0:
                continue
            packets.append((packet.pts, packet.dts, packet.is_keyframe, packet.is_discard))
    except av.FFmpegError as error:
        raise ValueError(f"{path}: cannot read video packets: {_said(error)}") from error
    declared = int(stream.frames or 0)     # the header's sample count (mp4/mov, avi; 0: not stated)
    leading = next((index for index, (*_, keyframe, _discard) in enumerate(packets) if keyframe), 0)
    count, presented, keyframes, hidden = 0, [], [], set()
    timestamps_complete = True
    for index, (pts, dts, keyframe, discard) in enumerate(packets):
        if pts is None:     # (a missing decode timestamp matters to seeking alone: Matroska with B-frames
            timestamps_complete = False     # leaves it out on its first packets)
        elif keyframe and dts is not None:
            keyframes.append((pts, dts))
        if discard or index < leading:
            if pts is not None:
                hidden.add(pts)
            continue
        count += 1
        presented.append(pts)
    frame_pts = None
    if timestamps_complete and len(set(presented)) == len(presented):
        frame_pts = sorted(presented)
    time_base = Fraction(stream.time_base) if stream.time_base else None
    # a timestamp both hidden and presented (an edit list that shows some media twice) is presented
    return _PacketTable(count, time_base, frame_pts, sorted(keyframes), frozenset(hidden - set(presented)), leading,
                        stored, declared)


def _probe(path: Path) -> tuple[VideoInfo, _PacketTable]:
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        fps = _frame_rate(stream, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        audio_streams = container.streams.audio
        audio_sample_rate = audio_streams[0].sample_rate if audio_streams else None
        decoding = _decoding_properties(stream, audio_streams[0] if audio_streams else None)
        table = _scan_packets(container, stream, path)
    finally:
        container.close()
    num_frames = table.count
    info = VideoInfo(path=path, fps=float(fps), num_frames=int(num_frames), width=int(width),
                     height=int(height), duration=float(num_frames / fps), has_audio=bool(audio_streams),
                     audio_sample_rate=int(audio_sample_rate) if audio_sample_rate else None, **decoding,
                     declared_frames=table.declared, stored_frames=table.stored)
    return info, table


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, size and audio track of a video, without decoding it.

    ``num_frames`` is the number of frames a player presents, counted by demuxing the file (no
    decoding): the packets of the video stream, less those an edit list hides (see the module
    docstring). ``fps`` is the container's average rate (for a variable-rate file, only that:
    ``frame_times`` has each frame's time). Raises ``FileNotFoundError`` or ``ValueError`` naming
    the file.
    """
    return _probe(Path(path))[0]


def frame_times(path: str | os.PathLike) -> np.ndarray:
    """Presentation time in seconds of every frame a player presents, in order: shape (num_frames,).

    Read from the packets' timestamps (no decoding), on the container's clock: the first frame
    is not necessarily at 0 (an MPEG-TS or a copied stream may start at any time, below 0
    included), and the audio track's times (``read_video_audio_timed``) are on the same clock.
    A stream whose packets lack timestamps (or repeat one) gets evenly spaced times from 0 at its
    average rate.
    """
    path = Path(path)
    info, table = _probe(path)
    return _times_of(table, info)


def uneven_frame(times: np.ndarray) -> tuple[int, float] | None:
    """The frame shown furthest from an even spacing, and by how many seconds, or None when every frame is
    within half a frame interval of it (a constant rate, up to the rounding of its timestamps).

    ``times``: (F,) presentation times in seconds, increasing (``metrics.io.video.frame_times``). The
    even spacing runs from the first frame's time to the last's in F - 1 equal steps.
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 3 or times[-1] <= times[0]:
        return None
    step = (times[-1] - times[0]) / (len(times) - 1)
    offsets = times - (times[0] + step * np.arange(len(times)))
    worst = int(np.argmax(np.abs(offsets)))
    return (worst, float(offsets[worst])) if abs(offsets[worst]) > 0.5 * step else None


def uneven_words(times: np.ndarray, frame: int) -> str:
    """Frame ``frame`` of ``times`` (as ``uneven_frame`` found it) against the even spacing it was held to, in
    words: "frame 49 is shown 2.450 s after the first, 0.495 s later than an even spacing of the 100 frames
    over 3.950 s puts it (1.955 s)"."""
    times = np.asarray(times, dtype=np.float64)
    span = times[-1] - times[0]
    shown, even = times[frame] - times[0], span * frame / (len(times) - 1)
    return (f"frame {frame} is shown {shown:.3f} s after the first, {abs(shown - even):.3f} s "
            f"{'later' if shown > even else 'earlier'} than an even spacing of the {len(times)} frames over "
            f"{span:.3f} s puts it ({even:.3f} s)")


def _times_of(table: _PacketTable, info: VideoInfo) -> np.ndarray:
    if table.frame_pts is None or table.time_base is None:
        return np.arange(table.count, dtype=np.float64) / info.fps
    return np.asarray(table.frame_pts, dtype=np.float64) * float(table.time_base)


def _decoding_properties(stream: av.video.stream.VideoStream, audio: av.audio.stream.AudioStream | None) -> dict:
    """Header fields that change how the frames and the sound decode (``VideoInfo``'s optional fields)."""
    context = stream.codec_context
    # the container's ratio first, then the bitstream's, as ffmpeg's av_guess_sample_aspect_ratio takes them
    ratio = stream.sample_aspect_ratio or context.sample_aspect_ratio
    audio_seconds = (float(audio.duration * audio.time_base) if audio is not None and audio.duration
                     and audio.time_base else None)
    return {"pix_fmt": context.pix_fmt, "color_range": _COLOR_RANGES.get(int(context.color_range or 0)),
            "color_space": _COLOR_SPACES.get(int(context.colorspace if context.colorspace is not None else 2)),
            "sample_aspect_ratio": f"{ratio.numerator}:{ratio.denominator}" if ratio else None,
            "audio_channels": int(audio.channels) if audio is not None else None,
            "audio_duration": audio_seconds}


@dataclass(frozen=True)
class DisplayMatrix:
    """How a player turns and mirrors the stored frames, from the file's display matrix (a phone's, or
    ffmpeg's ``-display_rotation`` / ``-display_hflip``), as ffmpeg applies it: a shown point is
    (x', y') = (a x + c y, b x + d y) for the matrix's first two columns [[a, b], [c, d]], rounded to
    the nearest quarter turn. Identity when the file has none."""

    transpose: bool = False         # a quarter turn: rows become columns
    flip_x: bool = False            # then mirrored left to right
    flip_y: bool = False            # then upside down

    @property
    def mirrored(self) -> bool:
        """Whether the picture is shown mirrored (the matrix's determinant is negative), not only turned."""
        return self.transpose == (self.flip_x == self.flip_y)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """A stored frame (H, W, C) as shown: (W, H, C) when ``transpose``."""
        shown = frame.transpose(1, 0, *range(2, frame.ndim)) if self.transpose else frame
        if self.flip_x:
            shown = shown[:, ::-1]
        if self.flip_y:
            shown = shown[::-1]
        return np.ascontiguousarray(shown)


def display_matrix(path: str | os.PathLike) -> DisplayMatrix:
    """The display matrix of a video's first frame (``DisplayMatrix``). Decodes the first frame only."""
    path = Path(path)
    container = _open_input(path)
    try:
        frame = next(container.decode(_video_stream(container, path)), None)
        data = [bytes(side) for side in (frame.side_data if frame is not None else ())
                if getattr(side.type, "name", "") == "DISPLAYMATRIX"]
    except av.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode the first frame: {_said(error)}") from error
    finally:
        container.close()
    if not data or len(data[0]) < 36:
        return DisplayMatrix()
    a, b, _, c, d = (int(value) for value in np.frombuffer(data[0][:20], "<i4"))   # 16.16 fixed point
    if abs(a) + abs(d) >= abs(b) + abs(c):
        return DisplayMatrix(False, a < 0, d < 0)
    return DisplayMatrix(True, c < 0, b < 0)


def display_rotation(path: str | os.PathLike) -> int:
    """Degrees (a multiple of 90) the first frame must turn counter-clockwise to be shown upright:
    the display matrix phones write instead of turning the picture. Decodes the first frame only;
    ``VideoReader`` returns frames as stored, NOT turned upright."""
    path = Path(path)
    container = _open_input(path)
    try:
        frame = next(container.decode(_video_stream(container, path)), None)
    except av.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode the first frame: {_said(error)}") from error
    finally:
        container.close()
    degrees = int(getattr(frame, "rotation", 0) or 0) if frame is not None else 0
    return (int(round(degrees / 90.0)) * 90) % 360


def _decoded_after(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   skipped: int) -> Iterator[av.VideoFrame]:
    """``container.decode(stream)``, less the first ``skipped`` packets holding data: those stored
    before the first keyframe, which no decoder can start from (VP9's raises, H.264's drops them)."""
    for packet in container.demux(stream):
        if skipped and packet.size:
            skipped -= 1
            continue
        yield from packet.decode()


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


class VideoReader:
    """Decode a video on demand: iterate frames, iterate chunks, or read a range of frames.

        with VideoReader("clip.mp4") as video:
            for frame in video:            # (H, W, 3) uint8 RGB, one at a time
                ...
            window = video.read(40, 56)    # frames 40..55 as (16, H, W, 3)

    Frame ``i`` is the ``i``-th frame a player presents, whichever path reads it (see the module
    docstring: edit lists, B-frames, negative timestamps, variable rates). Each iteration or
    ``read`` opens its own decoder, so several may be in progress at once; ``close`` (or leaving
    the ``with`` block) closes those still open. ``close`` may come from another thread: it waits
    for a decoding step in progress, and the iteration then ends with ``ValueError``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.info, self._table = _probe(self.path)
        self._containers: set[av.container.InputContainer] = set()
        self._lock = threading.RLock()   # a container is closed only between decoding steps

    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of each frame, shape (num_frames,): see ``frame_times``."""
        return _times_of(self._table, self.info)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every decoder still open (unfinished iterations end)."""
        with self._lock:
            for container in list(self._containers):
                container.close()
            self._containers.clear()

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames_from(0)

    def iter_chunks(self, size: int, budget: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive frames as arrays (n, H, W, 3): ``chunk_frames(frame bytes, size, budget)`` frames
        each (``size`` unless that many frames would take more than ``budget`` bytes, by default
        ``CHUNK_BUDGET``), only the last shorter. The frame size is that of the decoded frames, not
        the header's. Each chunk is filled in place (no second copy of it). ValueError naming the
        file when the frame size changes inside a chunk."""
        if size < 1:
            raise ValueError(f"{self.path}: chunk size must be >= 1, got {size}")
        frames = iter(self)
        try:
            for first in frames:
                count = chunk_frames(first.nbytes, size, budget)
                chunk = np.empty((count, *first.shape), first.dtype)
                chunk[0], filled, shape = first, 1, first.shape
                del first
                while filled < count and (frame := next(frames, None)) is not None:
                    if frame.shape != shape:
                        raise ValueError(f"{self.path}: the frame size changes from {shape[1]}x{shape[0]} to "
                                         f"{frame.shape[1]}x{frame.shape[0]} inside the video")
                    chunk[filled] = frame
                    filled += 1
                    del frame
                yield chunk if filled == count else chunk[:filled]
                del chunk
        finally:
            frames.close()   # releases the decoder now when the caller stops early

    def frames_at(self, indices: Iterable[int], convert: Callable[[np.ndarray], Any] | None = None) -> dict[int, Any]:
        """The frames numbered ``indices`` (from 0), each ``convert``ed as it is decoded (the (H, W, 3) uint8
        frame itself when ``convert`` is None), by frame number. Decoding goes from the first frame to the
        last index wanted, holding one frame beside those kept, so a few frames of a long video of large
        frames cost a few frames' memory. An index the video does not reach (a file shorter than its
        header says) is absent from the result: the caller says what that means."""
        wanted = {int(i) for i in indices}
        kept: dict[int, Any] = {}
        if not wanted:
            return kept
        decoding = self._frames_from(0)
        try:
            for index, frame in enumerate(itertools.islice(decoding, max(wanted) + 1)):
                if index in wanted:
                    kept[index] = frame if convert is None else convert(frame)
                del frame
        finally:
            decoding.close()  # releases the decoder now, not when garbage-collected
        return kept

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) as an array (n, H, W, 3); ``stop`` is clipped to the video's end."""
        if start < 0 or stop < start:
            raise ValueError(f"{self.path}: bad frame range [{start}, {stop})")
        if stop == start:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        decoding = self._frames_from(start)
        try:
            frames = list(itertools.islice(decoding, stop - start))
        finally:
            decoding.close()  # releases the decoder now, not when garbage-collected
        if not frames:
            raise ValueError(f"{self.path}: frame {start} is beyond the last frame "
                             f"(the video has {self.info.num_frames})")
        return np.stack(frames)

    # -- decoding -------------------------------------------------------------------------------

    def _open(self, seek_to: int | None = None) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        """A new container and its video stream (decoding on threads), seeked backward to the decode
        timestamp ``seek_to`` when given; ``close`` sees it only once it is ready."""
        container = _open_input(self.path)
        try:
            stream = _video_stream(container, self.path)
            stream.thread_type = "AUTO"
            if seek_to is not None:
                # at or before it whichever timestamp the demuxer compares, so the landing keyframe is
                # never after the wanted frame
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        except BaseException:
            container.close()
            raise
        with self._lock:
            self._containers.add(container)
        return container, stream

    def _guarded(self, container: av.container.InputContainer,
                 decoded: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """``decoded``, refusing to go on once ``close`` closed its container.

        PyAV crashes the interpreter (segmentation fault) when a decode iterator is resumed
        after its container was closed, so this is checked before every step, and the step holds
        the lock that ``close`` takes (a close from another thread waits for it).
        """
        hidden = self._table.hidden_pts
        while True:
            with self._lock:
                if container not in self._containers:
                    raise ValueError(f"{self.path}: the VideoReader was closed during an iteration")
                try:
                    frame = next(decoded, None)
                except av.FFmpegError as error:
                    raise ValueError(f"{self.path}: cannot decode the video: {_said(error)}") from error
            if frame is None:
                return
            if frame.pts is not None and frame.pts in hidden:
                continue  # a frame the edit list hides, should a decoder output it anyway
            yield frame

    def _release(self, container: av.container.InputContainer) -> None:
        with self._lock:
            if container in self._containers:
                self._containers.discard(container)
                container.close()

    def _frames_from(self, start: int) -> Iterator[np.ndarray]:
        if start > 0:
            seeked = self._frames_after_seek(start)
            if seeked is not None:
                return seeked
        return self._frames_decoded_from_beginning(start)

    def _frames_decoded_from_beginning(self, start: int) -> Iterator[np.ndarray]:
        container, stream = self._open()
        try:
            decoded = _decoded_after(container, stream, self._table.leading)
            for index, frame in enumerate(self._guarded(container, decoded)):
                if index >= start:
                    yield _to_rgb(frame)
        finally:
            self._release(container)

    def _frames_after_seek(self, start: int) -> Iterator[np.ndarray] | None:
        """Frames from ``start`` by seeking to the keyframe before it, or None when that is unsafe.

        The frame index of a decoded frame is the rank of its timestamp among the presented
        packets' (from the demux pass of ``_probe``), so it stays exact whatever the frame rate.
        Seeking may land on a keyframe an edit list hides (the decoder drops it and the frames
        after it that are hidden too). The first frame after the seek is checked; on any doubt the
        caller decodes from the beginning instead.
        """
        table = self._table
        if table.frame_pts is None or start >= len(table.frame_pts):
            return None
        target_pts = table.frame_pts[start]
        earlier = [dts for pts, dts in table.keyframes if pts <= target_pts]
        if not earlier:
            return None
        index_of = {pts: index for index, pts in enumerate(table.frame_pts)}
        container, stream = self._open(seek_to=earlier[-1])   # the keyframe's decode timestamp
        try:
            decoded = self._guarded(container, container.decode(stream))
            first = next(decoded, None)
        except BaseException:
            self._release(container)
            raise
        if first is None or first.pts not in index_of or index_of[first.pts] > start:
            self._release(container)
            return None
        frames = itertools.chain([first], decoded)
        return self._frames_indexed(container, frames, index_of, start)

    def _frames_indexed(self, container: av.container.InputContainer, decoded: Iterator[av.VideoFrame],
                        index_of: dict[int, int], start: int) -> Iterator[np.ndarray]:
        try:
            expected = start
            for frame in decoded:
                index = index_of.get(frame.pts)
                if index is None:
                    raise ValueError(f"{self.path}: decoded a frame with timestamp {frame.pts} that no "
                                     "packet has; read it without seeking (iterate from the start)")
                if index < start:
                    continue
                if index != expected:
                    raise ValueError(f"{self.path}: after seeking, frame {expected} was expected but "
                                     f"frame {index} came; the file's timestamps are inconsistent")
                expected += 1
                yield _to_rgb(frame)
        finally:
            self._release(container)


def chunk_frames(frame_bytes: int, most: int = CHUNK_FRAMES, budget: int | None = None) -> int:
    """Frames per decoding chunk for frames of ``frame_bytes`` bytes: ``most`` when they fit in
    ``budget`` bytes (default ``CHUNK_BUDGET``), else the largest power of two that fits (1 when even
    one frame does not).

    A power of two, so that wherever a chunk is cut the frames a consumer groups in batches of a
    power of two (DWPose's 8) are grouped as in ``most``-frame chunks, as long as one such batch
    fits: no computed number depends on the budget at those sizes (none ever does for per-frame or
    per-clip consumers: the toy extractor, FVD's clips)."""
    if most < 1:
        raise ValueError(f"chunk size must be >= 1, got {most}")
    fits = max(1, (CHUNK_BUDGET if budget is None else budget) // max(1, frame_bytes))
    return most if fits >= most else 1 << (fits.bit_length() - 1)


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a (small) video as one array (F, H, W, 3) uint8 RGB."""
    with VideoReader(path) as video:
        frames = list(video)
        if not frames:
            return np.zeros((0, video.info.height, video.info.width, 3), np.uint8)
    return np.stack(frames)


@dataclass(frozen=True)
class VideoAudio:
    """A video's audio track as decoded: float32 mono ``samples`` (n,) at ``sample_rate`` Hz, the
    first of them presented at ``start`` seconds on the container's clock (the clock of
    ``frame_times``: sample ``k`` plays with the frame shown at ``start + k / sample_rate``)."""

    samples: np.ndarray
    sample_rate: int
    start: float
    gaps: tuple[tuple[float, float], ...] = ()     # (seconds at, seconds of silence filled in) per gap
    broken_at: float | None = None     # ``partial``: the time the sound stops decoding at (None: whole)
    broken_by: str = ""                # ``partial``: why (FFmpeg's words)


class NoAudioTrackError(ValueError):
    """A video file without an audio track (``read_video_audio_timed``): readable, but silent."""


AUDIO_GAP_SECONDS = 0.04    # a frame's timestamp this much after the end of the sound before it: a gap


def read_video_audio_timed(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, partial: bool = False
                           ) -> VideoAudio:
    """The audio track of a video as float32 mono at ``sample_rate`` Hz, with the time of its first
    sample (``VideoAudio``).

    What is decoded is what a player plays: an edit list's hidden samples (the AAC encoder's
    priming, or the cut-off head of a stream copy) are dropped by the decoder, and ``start`` is
    the timestamp of the first sample it outputs (not the container's start time, which may
    count hidden samples). The signal is cut to the duration the container records for the
    track (which drops the padding of the last AAC frame); see the module docstring about AAC
    durations. A frame whose timestamp comes more than ``AUDIO_GAP_SECONDS`` after the end of the
    sound before it (a dropout of a browser or screen recording) is placed at its time, the gap
    filled with silence as a player leaves it (``gaps``): joined end to end, everything after it
    would play early. Raises ``ValueError`` naming the file when it has no audio track (a
    ``NoAudioTrackError``) or the track
    cannot be decoded; with ``partial``, a track that decodes for a while and then fails (a file cut
    short) gives what decoded before, and ``broken_at`` says where it stops.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        if not container.streams.audio:
            raise NoAudioTrackError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        pieces, start, written, gaps = [], None, 0, []

        def add(outputs) -> None:
            nonlocal written
            for out in outputs:
                pieces.append(out.to_ndarray()[0])
                written += len(pieces[-1])

        try:
            for frame in container.decode(stream):
                at = _audio_frame_time(frame, stream)
                if start is None:
                    start = at
                elif frame.pts is not None and at - start - written / sample_rate > AUDIO_GAP_SECONDS:
                    add(resampler.resample(None))       # what the resampler holds, then the silence
                    silence = max(0, int(round((at - start) * sample_rate)) - written)
                    pieces.append(np.zeros(silence, np.float32))
                    written += silence
                    gaps.append((round(at - silence / sample_rate, 3), round(silence / sample_rate, 3)))
                    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
                add(resampler.resample(frame))
            add(resampler.resample(None))
            broken_at, broken_by = None, ""
        except av.FFmpegError as error:
            if not (partial and written):
                raise ValueError(f"{path}: cannot decode the audio track: {_said(error)}") from error
            broken_at, broken_by = start + written / sample_rate, _said(error)
        recorded_seconds = (float(stream.duration * stream.time_base)
                            if stream.duration and stream.time_base else None)
    finally:
        container.close()
    samples = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    if recorded_seconds is not None:
        samples = samples[:int(round(recorded_seconds * sample_rate))]
    return VideoAudio(samples, int(sample_rate), 0.0 if start is None else start, tuple(gaps), broken_at, broken_by)


def _audio_frame_time(frame: av.AudioFrame, stream: av.audio.stream.AudioStream) -> float:
    """Seconds of a decoded audio frame's first sample; the stream's start time when it has none."""
    time_base = frame.time_base or stream.time_base
    if frame.pts is not None and time_base:
        return float(frame.pts * time_base)
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def align_to_first_frame(samples: np.ndarray, sample_rate: int, audio_start: float, first_frame: float) -> np.ndarray:
    """``samples`` (n,) whose first plays at ``audio_start`` seconds, as the sound from the first frame on,
    which is shown at ``first_frame`` seconds (one clock): sample k of the result plays with the instant
    ``first_frame + k / sample_rate``. Sound before the first frame is dropped; a sound that starts after
    it gets the silence a player leaves before it. Rounded to whole samples."""
    lead = int(round((audio_start - first_frame) * sample_rate))
    if lead >= 0:
        return np.concatenate([np.zeros(lead, samples.dtype), samples]) if lead else samples
    return samples[-lead:]


def read_video_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The audio track of a video as float32 mono at ``sample_rate`` Hz, from its first frame on: shape (n,);
    sample k plays with the instant k / ``sample_rate`` seconds after the first frame is shown.

    The samples of ``read_video_audio_timed``, aligned by its start and ``frame_times`` (``align_to_first_frame``):
    a file whose sound starts before or after its first frame (a video stream trimmed and the sound copied,
    B-frames in AVI, FLV or fragmented MP4: first frame at 0.07-0.1 s, sound at 0) would otherwise put every
    beat of the sound that far from its frames. Raises ``ValueError`` naming the file when it has no audio
    track, no video stream, or a track that cannot be decoded.
    """
    track = read_video_audio_timed(path, sample_rate)
    times = frame_times(path)
    if not len(times):                   # no frame to align to: the sound as it plays
        return track.samples
    return align_to_first_frame(track.samples, sample_rate, track.start, float(times[0]))


# -- writing ---------------------------------------------------------------------------------------


def _frame_rate_fraction(fps: float | int | Fraction, path: Path) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: fps must be a positive number, got {fps!r}")
    # 1001 keeps NTSC rates exact (30000/1001) while turning 25.0 into 25/1.
    return Fraction(fps).limit_denominator(1001)


def _check_frame(frame: np.ndarray, index: int, shape: tuple[int, ...] | None, path: Path) -> None:
    if frame.dtype != np.uint8:
        raise ValueError(f"{path}: frame {index}: dtype {frame.dtype}, expected uint8 RGB")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{path}: frame {index}: shape {frame.shape}, expected (H, W, 3) RGB")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"{path}: frame {index}: shape {frame.shape} differs from the first frame's {shape}")


def _check_size_for_pix_fmt(width: int, height: int, pix_fmt: str, path: Path) -> None:
    even_width, even_height = SUBSAMPLED_PIX_FMTS.get(pix_fmt, (False, False))
    if (even_width and width % 2) or (even_height and height % 2):
        raise ValueError(f"{path}: frame size {width}x{height} must be even for pix_fmt {pix_fmt} "
                         "(chroma is subsampled); crop or pad the frames")


def _check_audio(audio: np.ndarray, sample_rate: int, path: Path) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"{path}: audio must be mono, shape (n,), got {audio.shape}")
    if audio.size == 0:
        raise ValueError(f"{path}: audio is empty; pass audio=None for a video without sound")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{path}: audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: audio has {int((~np.isfinite(audio)).sum())} non-finite samples")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"{path}: audio sample rate must be a positive integer, got {sample_rate!r}")
    return np.ascontiguousarray(audio, dtype=np.float32)


class _AudioTrack:
    """Feeds a mono signal to an AAC stream in encoder-sized frames, as far as asked."""

    def __init__(self, container: av.container.OutputContainer, samples: np.ndarray, sample_rate: int):
        self.container = container
        self.samples = samples
        self.sample_rate = sample_rate
        self.stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        # The frame size is known only once the encoder is open; the last frame may be shorter.
        self.stream.codec_context.open()
        self.frame_size = self.stream.codec_context.frame_size or 1024
        self.position = 0

    def write_until(self, seconds: float) -> None:
        """Encode the frames that start before ``seconds`` (to interleave audio with the video)."""
        self._write_until_sample(min(len(self.samples), int(math.ceil(seconds * self.sample_rate))))

    def _write_until_sample(self, end: int) -> None:
        while self.position < end:
            chunk = self.samples[self.position:self.position + self.frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.position
            frame.time_base = Fraction(1, self.sample_rate)
            self.position += len(chunk)
            self.container.mux(self.stream.encode(frame))

    def finish(self) -> None:
        self._write_until_sample(len(self.samples))
        self.container.mux(self.stream.encode(None))


def x264_asm() -> str | None:
    """x264's ``asm`` (instruction set) setting for this CPU: ``"AVX2"`` on a CPU with AVX-512, else
    None (x264 detects it).

    x264's AVX-512 functions (core 165, the libx264 in PyAV's wheels) do not repeat themselves: the
    same 98 frames of 64x64 encoded 20 times in one process gave 3-4 different files on an AVX-512
    AMD EPYC (up to 42 levels apart after decoding), so two runs of one benchmark scored different
    videos. Limited to AVX2 and below they gave one file in 40 encodes, the same bytes as x264's
    own choice where that repeats (a 128x128 clip), at the same speed; ``asm=0`` (plain C) also
    repeats but encodes 3x slower and differently. Every AVX-512 CPU has AVX2. The CPU's features
    come from numpy's run-time detection.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:           # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return None
    return "AVX2" if features.get("AVX512F") else None


def _encode(container: av.container.OutputContainer, frames: Iterator[np.ndarray], first: np.ndarray,
            rate: Fraction, audio_track_args: tuple[np.ndarray, int] | None, crf: int, pix_fmt: str,
            codec: str, path: Path, preset: str | None = None) -> None:
    height, width = first.shape[:2]
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    if codec in CRF_CODECS:
        stream.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
    if codec == "libx264" and (asm := x264_asm()):
        stream.options = {**stream.options, "x264-params": f"asm={asm}"}
    audio = _AudioTrack(container, *audio_track_args) if audio_track_args is not None else None
    frame_time_base = 1 / rate
    for index, array in enumerate(itertools.chain([first], frames)):
        array = np.asarray(array)
        _check_frame(array, index, first.shape, path)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        frame.pts = index
        frame.time_base = frame_time_base
        container.mux(stream.encode(frame))
        if audio is not None:
            audio.write_until(float((index + 1) * frame_time_base))
    container.mux(stream.encode(None))
    if audio is not None:
        audio.finish()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: float | int,
                audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE, crf: int = 18,
                pix_fmt: str = "yuv420p", codec: str = "libx264", preset: str | None = None) -> Path:
    """Encode uint8 RGB frames (H, W, 3), streamed from any iterable, into a video file, atomically.

    ``audio`` (float mono in [-1, 1]) is muxed as an AAC track at ``sample_rate``, exactly as
    given: it is neither padded nor cut to the video's length. The file is written under a
    temporary name and renamed on success, so an error (in the encoder or in the frames'
    generator) never leaves a partial file under ``path``. With libx264 (the default) the same frames
    give the same bytes (``x264_asm``); libx265 does not repeat itself (three encodes of the same frames
    gave three files, even with one frame thread and no pool). ``preset`` is the x264/x265 speed preset
    (``veryfast`` ... ``veryslow``; None: the encoder's default, ``medium``). Returns ``path``.
    """
    path = Path(path)
    rate = _frame_rate_fraction(fps, path)
    audio_track_args = (_check_audio(audio, sample_rate, path), int(sample_rate)) if audio is not None else None
    frame_iterator = iter(frames)
    first = next(frame_iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    first = np.asarray(first)
    _check_frame(first, 0, None, path)
    _check_size_for_pix_fmt(first.shape[1], first.shape[0], pix_fmt, path)
    with atomic_path(path) as temporary:
        container = av.open(str(temporary), "w")
        try:
            _encode(container, frame_iterator, first, rate, audio_track_args, crf, pix_fmt, codec, path, preset)
        except BaseException:
            # Closing writes a trailer onto the partial file, which atomic_path then deletes;
            # an error while closing must not hide the original one.
            try:
                container.close()
            except Exception:
                pass
            raise
        container.close()
    return path
