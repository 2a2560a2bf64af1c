"""Short real videos for the userstudy tests (PyAV): H.264 pictures with an AAC tone as "speech"."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, shade: int, tone: float, frozen: bool = False, frames: int = 8, fps: int = 16,
                size: int = 64, rate: int = 16000) -> None:
    """A 0.5 s H.264 + AAC clip: a bar sweeping across a grey field (or standing still: a frozen
    video), with a tone of ``tone`` Hz as its speech."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
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
