"""Frames that carry their own index, so that a test checks *which* frames a reader returns, not
only how many: a colour above and the index's Gray code as 8 black/white blocks (bit b: block b
white) in the bottom 16 rows. In Gray code one block changes from a frame to the next, which no
scene or jump-cut detector takes for a cut. Each test chooses the colour.

What a player shows is asked of an independent decoder, the ffmpeg binary of the imageio-ffmpeg
wheel (never the code under test): :func:`ffmpeg_frames`, :func:`ffmpeg_times`. Tests using them
skip without that wheel (``pytest.importorskip("imageio_ffmpeg")`` before importing this module).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

SIDE = 64      # pixels; the 8 blocks are 8 pixels wide


def indexed_picture(index: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A ``(SIDE, SIDE, 3)`` uint8 frame of ``colour`` carrying ``index`` (0..255) as Gray-coded blocks."""
    image = np.empty((SIDE, SIDE, 3), np.uint8)
    image[:] = colour
    code = index ^ (index >> 1)
    for bit in range(8):
        image[48:, bit * 8:(bit + 1) * 8] = 255 if (code >> bit) & 1 else 0
    return image


def index_shown(frame: np.ndarray) -> int:
    """The index a frame of :func:`indexed_picture` carries, read after lossy coding (block means)."""
    blocks = frame[52:60].astype(float).mean(axis=(0, 2)).reshape(8, 8).mean(axis=1) > 128
    index = code = sum(1 << bit for bit, white in enumerate(blocks) if white)
    while code := code >> 1:
        index ^= code
    return int(index)


def ffmpeg(*arguments: str) -> subprocess.CompletedProcess:
    """The ffmpeg binary of the imageio-ffmpeg wheel, run quietly to completion."""
    import imageio_ffmpeg

    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *arguments],
                          capture_output=True, check=True)


def ffmpeg_frames(path: Path) -> np.ndarray:
    """Every frame ffmpeg outputs, as it comes (no frame dropped or repeated to a rate), as
    ``(N, SIDE, SIDE, 3)`` RGB."""
    out = ffmpeg("-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                 "-f", "rawvideo", "-pix_fmt", "rgb24", "-").stdout
    return np.frombuffer(out, np.uint8).reshape(-1, SIDE, SIDE, 3)


def ffmpeg_times(path: Path, stream: str = "v") -> np.ndarray:
    """The presentation times ffmpeg's showinfo filter prints for the first video (``"v"``) or audio
    (``"a"``) stream, on the container's clock (-copyts)."""
    shown = "showinfo" if stream == "v" else "ashowinfo"
    log = ffmpeg("-copyts", "-i", str(path), "-map", f"0:{stream}:0", "-fps_mode", "passthrough",
                 f"-{'v' if stream == 'v' else 'a'}f", shown, "-f", "null", "-").stderr.decode()
    return np.array([float(value) for value in re.findall(r"pts_time:\s*(-?[0-9.e+-]+)", log)])
