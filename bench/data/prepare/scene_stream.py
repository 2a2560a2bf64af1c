"""PySceneDetect's input made of the frames a player presents, numbered by their position.

PySceneDetect's own PyAV backend numbers a frame by its time times the stream's nominal rate, not
by its position: on a variable-frame-rate recording (a phone's) a cut at the 100th frame comes
back as frame 120, and on a file whose edit list hides its first frames every number is shifted.
``PresentedFrames`` feeds PySceneDetect's ``SceneManager`` (its detectors, downscaling and
minimum scene length unchanged) with ``metrics.io.video.VideoReader``'s frames, so a cut's
``frame_num`` is the position of the first frame of the new scene among the frames a player
presents: the index every other path of the project uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from scenedetect import FrameTimecode
from scenedetect.video_stream import SeekError, VideoStream

from metrics.io.video import VideoReader


class PresentedFrames(VideoStream):
    """A ``scenedetect.VideoStream`` over ``VideoReader``'s frames (BGR, as PySceneDetect's detectors
    expect); ``position`` is the frame's index as a ``FrameTimecode`` at ``rate`` frames per second
    (the rate only turns seconds, such as a minimum scene length, into frames).

    Only reading from the start is supported (``seek(0)`` or ``reset``), which is all
    ``SceneManager.detect_scenes`` needs.
    """

    BACKEND_NAME = "imac-presented-frames"

    def __init__(self, path: str | os.PathLike, rate: float | Fraction | None = None) -> None:
        super().__init__()
        self._path = Path(path)
        self._reader = VideoReader(self._path)
        self._rate = Fraction(rate if rate is not None else self._reader.info.fps).limit_denominator(1001)
        self._frames: Iterator[np.ndarray] | None = None
        self._number = 0          # frames read so far: the last one read is frame _number - 1

    # -- what the stream is ------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return str(self._path)

    @property
    def name(self) -> str:
        return self._path.stem

    @property
    def is_seekable(self) -> bool:
        return False

    @property
    def frame_rate(self) -> Fraction:
        return self._rate

    @property
    def duration(self) -> FrameTimecode:
        return FrameTimecode(len(self._reader), fps=self._rate)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._reader.info.width, self._reader.info.height

    @property
    def aspect_ratio(self) -> float:
        ratio = self._reader.info.sample_aspect_ratio
        if not ratio:
            return 1.0
        numerator, denominator = (int(part) for part in ratio.split(":"))
        return numerator / denominator if numerator > 0 and denominator > 0 else 1.0

    # -- where it is -------------------------------------------------------------------------------

    @property
    def position(self) -> FrameTimecode:
        return FrameTimecode(max(0, self._number - 1), fps=self._rate)

    @property
    def position_ms(self) -> float:
        return float(self.position.seconds * 1000.0)

    @property
    def frame_number(self) -> int:
        return self._number

    # -- reading -----------------------------------------------------------------------------------

    def read(self, decode: bool = True) -> np.ndarray | bool:
        if self._frames is None:
            self._frames = iter(self._reader)
        frame = next(self._frames, None)
        if frame is None:
            return False
        self._number += 1
        return np.ascontiguousarray(frame[..., ::-1]) if decode else True

    def reset(self) -> None:
        self._reader.close()
        self._frames, self._number = None, 0

    def seek(self, target: FrameTimecode | float | int | str) -> None:
        if FrameTimecode(target, fps=self._rate).frame_num != 0:
            raise SeekError(f"{self._path}: PresentedFrames reads from the start only")
        self.reset()

    def close(self) -> None:
        """Close the decoder (the stream reads from the start again if read on)."""
        self.reset()
