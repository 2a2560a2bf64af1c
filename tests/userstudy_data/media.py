"""Short real videos for the userstudy tests (PyAV): H.264 pictures with an AAC tone as "speech"."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np


def write_video(path: Path, shade: int, tone: float | None, frozen: bool = False, frames: int = 8, fps: int = 16,
                size: int = 64, rate: int = 16000, title: str | None = None, pix_fmt: str = "yuv420p") -> None:
    """A 0.5 s H.264 + AAC clip: a bar sweeping across a grey field (or standing still: a frozen
    video), with a tone of ``tone`` Hz as its speech (None: no sound); ``title`` in its metadata. An odd
    ``size`` needs ``pix_fmt`` "yuv444p" (x264 takes no odd size in 4:2:0)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        if title is not None:
            container.metadata["title"] = title
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = pix_fmt
        if tone is not None:
            audio = container.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for i in range(frames):
            image = np.full((size, size, 3), shade, dtype=np.uint8)
            x = 0 if frozen else i * (size // frames)
            image[:, x:x + size // frames] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if tone is None:
            return
        samples = (0.2 * np.sin(2 * np.pi * tone * np.arange(rate * frames // fps) / rate)).astype(np.float32)
        for start in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def decoded(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Every video frame (RGB) and the whole audio track of a file, decoded."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = [f.to_ndarray().ravel() for f in container.decode(audio=0)] if container.streams.audio else []
    return frames, np.concatenate(audio) if audio else np.zeros(0, np.float32)


@functools.lru_cache(maxsize=None)
def tagged_video(tag: str, sound: bool = True) -> bytes:
    """The bytes of a real, playable 2-frame clip (``write_video``, 16 px; a tone, or no sound) that carry
    ``tag`` (its title): made once per tag, different for different tags, so a test can tell which file it
    was served."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tagged.mp4"
        write_video(path, shade=96, tone=440.0 if sound else None, frames=2, size=16, title=tag)
        data = path.read_bytes()
    assert tag.encode() in data
    return data
