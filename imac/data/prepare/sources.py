"""Raw source videos: finding them, splitting them into scenes, and measuring each scene once.

Measuring a source decodes it once, from start to end: every scene long enough to become a clip
is written as an uncropped *candidate* clip (video with its audio, at the source's resolution and
frame rate: the file external tools such as SHOW, TalkNet or DWPose are run on) plus its 16 kHz
mono wav, and the faces of a few sampled frames of every scene are detected. The results go into
a JSON state file per source, rewritten after every clip, so an interruption or a decoding error
half-way through a source keeps every clip finished before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from imac.data.prepare.faces import Face, FaceDetector, sample_frame_indices
from metrics.audio import write_wav
from metrics.files import write_json_atomic
from metrics.video import VideoReader, probe_video, read_video_audio, write_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
AUDIO_RATE = 16000
# Candidate clips are intermediate files at the source's resolution, encoded again when cropped:
# x264's veryfast preset at crf 13 matches the default preset at crf 18 in PSNR (40.7 vs 40.9 dB on
# the 720p frames of benchmarks/prepare_speed.py) in 0.6x the time, with files 18% larger.
CANDIDATE_PRESET = "veryfast"
CANDIDATE_CRF = 13
STATE_VERSION = 1

# What decoding a damaged file raises: PyAV's errors, and ours (ValueError) from metrics.video.
DECODE_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError, RuntimeError)


@dataclass(frozen=True)
class Scene:
    """Frames [start, end) of a source video between two detected cuts."""

    start: int
    end: int

    @property
    def num_frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SceneSettings:
    """PySceneDetect's content detector: ``threshold`` on the HSV content change between frames,
    ``min_scene_seconds`` the shortest scene it may cut out."""

    threshold: float = 27.0
    min_scene_seconds: float = 0.6


def list_sources(raw_dir: str | os.PathLike) -> list[Path]:
    """The video files under ``raw_dir`` (recursively, by suffix), sorted by relative path."""
    root = Path(raw_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of raw videos")
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: p.relative_to(root).as_posix())


def source_name(raw_dir: Path, source: Path) -> str:
    """A file-name-safe, unique name of a source: its path relative to ``raw_dir`` without the
    suffix, with path separators and odd characters turned into ``_``."""
    relative = source.relative_to(raw_dir).with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", relative.replace("/", "__")).strip("_") or "video"


def clip_id(source: str, scene_index: int) -> str:
    """The id of scene ``scene_index`` of source ``source``: ``<source>_s003``."""
    return f"{source}_s{scene_index:03d}"


def file_signature(path: Path) -> str:
    """Size and modification time: a changed source is measured again, an unchanged one never."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def detect_scenes(path: Path, num_frames: int, fps: float, settings: SceneSettings) -> list[Scene]:
    """Scenes of a video with PySceneDetect's ``ContentDetector`` (PyAV backend, as the rest of the
    project decodes): consecutive, covering frames [0, num_frames)."""
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.backends.pyav import VideoStreamAv

    min_len = max(1, int(round(settings.min_scene_seconds * fps)))
    # suppress_output keeps ffmpeg's own logging off (PySceneDetect's detect() turns it on, and the
    # encoder then prints its statistics for every clip); single-threaded decoding is what PyAV
    # asks for with that setting.
    video = VideoStreamAv(str(path), threading_mode="NONE", suppress_output=True)
    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=settings.threshold, min_scene_len=min_len))
    manager.detect_scenes(video=video)
    found = manager.get_scene_list()
    cuts = sorted({int(start.frame_num) for start, _ in found} - {0})
    edges = [0] + [c for c in cuts if 0 < c < num_frames] + [num_frames]
    return [Scene(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


# -- measuring a source ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """Where the preparation of one identity keeps its state and candidate clips."""

    root: Path          # <out>/prepare/<identity>

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    def state_path(self, source: str) -> Path:
        return self.sources / f"{source}.json"

    def candidate_video(self, clip: str) -> Path:
        return self.candidates / f"{clip}.mp4"

    def candidate_audio(self, clip: str) -> Path:
        return self.candidates / f"{clip}.wav"


def load_state(path: Path) -> dict[str, Any] | None:
    """A source's saved state, or None when absent or unreadable (it is then measured again)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else None


def state_is_current(state: dict[str, Any] | None, signature: str, digest: str) -> bool:
    """Whether ``state`` was measured from this very file with these settings and is complete."""
    return (state is not None and state.get("signature") == signature and state.get("settings") == digest
            and state.get("status") in ("done", "unreadable", "failed"))


def _scene_frames(frames: Iterator[np.ndarray], scene: Scene, samples: set[int],
                  sampled: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    """The frames of ``scene`` from the source's frame iterator, keeping the sampled ones aside."""
    for offset in range(scene.num_frames):
        frame = next(frames, None)
        if frame is None:
            raise ValueError(f"the video ended at frame {scene.start + offset}, inside a scene ending at {scene.end}")
        if offset in samples:
            sampled[offset] = frame
        yield frame


def _skip(frames: Iterator[np.ndarray], count: int) -> None:
    for _ in range(count):
        next(frames, None)


def measure_source(source: Path, name: str, workspace: Workspace, detector: FaceDetector,
                   scene_settings: SceneSettings, min_seconds: float, samples_per_second: float,
                   max_samples: int, digest: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Split ``source`` into scenes, write the candidate clips of scenes of at least ``min_seconds``,
    detect faces on sampled frames; return (and save) the source's state.

    An unreadable file gives a state with status ``unreadable``; a decoding error part-way gives
    status ``failed`` with every clip measured before the error kept. ``previous`` is an interrupted
    measurement of the same file with the same settings: its finished clips are reused, not re-encoded.
    """
    reusable = {}
    if previous is not None and previous.get("signature") == file_signature(source) \
            and previous.get("settings") == digest:
        reusable = {clip: entry for clip, entry in previous.get("clips", {}).items()
                    if not entry.get("measured") or (workspace.candidate_video(clip).is_file()
                                                     and workspace.candidate_audio(clip).is_file())}
    state: dict[str, Any] = {"version": STATE_VERSION, "source": name, "path": str(source),
                             "signature": file_signature(source), "settings": digest, "status": "measuring",
                             "clips": {}}
    path = workspace.state_path(name)
    try:
        info = probe_video(source)
        if info.num_frames <= 0:
            raise ValueError("no video frames")
        audio = read_video_audio(source, AUDIO_RATE)
        if audio.size == 0:
            raise ValueError("the audio track is empty")
        scenes = detect_scenes(source, info.num_frames, info.fps, scene_settings)
    except (*DECODE_ERRORS, FileNotFoundError) as error:
        state.update(status="unreadable", error=str(error).replace(str(source), source.name))
        write_json_atomic(path, state)
        return state
    state.update(fps=info.fps, num_frames=info.num_frames, width=info.width, height=info.height,
                 seconds=info.num_frames / info.fps, scenes=[[s.start, s.end] for s in scenes])
    write_json_atomic(path, state)
    try:
        with VideoReader(source) as video:
            frames = iter(video)
            for index, scene in enumerate(scenes):
                clip = clip_id(name, index)
                entry = {"scene": index, "start": scene.start, "end": scene.end,
                         "seconds": scene.num_frames / info.fps}
                if clip in reusable and reusable[clip].get("start") == scene.start \
                        and reusable[clip].get("end") == scene.end:
                    _skip(frames, scene.num_frames)
                    entry = reusable[clip]
                elif entry["seconds"] < min_seconds:
                    _skip(frames, scene.num_frames)
                    entry["measured"] = False
                else:
                    entry.update(_measure_clip(frames, scene, clip, audio, info.fps, workspace, detector,
                                               samples_per_second, max_samples))
                state["clips"][clip] = entry
                write_json_atomic(path, state)
    except DECODE_ERRORS as error:
        state.update(status="failed", error=str(error).replace(str(source), source.name))
        write_json_atomic(path, state)
        return state
    state["status"] = "done"
    write_json_atomic(path, state)
    return state


def _measure_clip(frames: Iterator[np.ndarray], scene: Scene, clip: str, audio: np.ndarray, fps: float,
                  workspace: Workspace, detector: FaceDetector, samples_per_second: float,
                  max_samples: int) -> dict[str, Any]:
    """Write one scene's candidate video and wav, and detect faces on its sampled frames."""
    samples = sample_frame_indices(scene.num_frames, fps, samples_per_second, max_samples)
    sampled: dict[int, np.ndarray] = {}
    first = int(round(scene.start / fps * AUDIO_RATE))
    last = int(round(scene.end / fps * AUDIO_RATE))
    clip_audio = audio[first:last]
    missing = last - first - len(clip_audio)
    if missing > 0:   # the audio track ends before the video: pad with silence, and say how much
        clip_audio = np.pad(clip_audio, (0, missing))
    write_video(workspace.candidate_video(clip), _scene_frames(frames, scene, set(samples), sampled), fps,
                audio=clip_audio, sample_rate=AUDIO_RATE, crf=CANDIDATE_CRF, preset=CANDIDATE_PRESET)
    write_wav(workspace.candidate_audio(clip), clip_audio, AUDIO_RATE)
    faces = {str(offset): [face.to_list() for face in detector(sampled[offset])] for offset in samples}
    return {"measured": True, "sample_frames": samples, "faces": faces,
            "audio_missing_seconds": round(max(0, missing) / AUDIO_RATE, 3)}


def clip_faces(entry: dict[str, Any]) -> list[list[Face]]:
    """The faces found on each sampled frame of a measured clip, in frame order."""
    return [[Face.from_list(values) for values in entry["faces"][str(offset)]] for offset in entry["sample_frames"]]
