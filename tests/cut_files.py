"""Videos as web tools write them: an mp4 with its header (moov) first, so that a copy cut short still opens."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_faststart_cut(path: Path, frames: np.ndarray, keep: float = 2 / 3, fps: int = 25) -> Path:
    """``frames`` (F, H, W, 3) uint8 encoded by PyAV (libx264, ``movflags=faststart``) to ``path``, then cut to
    the first ``keep`` of its bytes: the header still lists F frames, the file holds fewer."""
    whole = path.with_name(path.name + ".whole.mp4")
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
