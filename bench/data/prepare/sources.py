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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from scenedetect import ContentDetector, SceneManager
from scenedetect.detector import SceneDetector

from bench.data.prepare.faces import Face, FaceDetector, sample_frame_indices
from bench.data.prepare.jumpcuts import JumpCutSettings, jump_cut_detector
from bench.data.prepare.scene_stream import PresentedFrames
from metrics.io import bounded
from metrics.io.audio import SAMPLE_RATE, write_wav
from metrics.io.files import write_json_atomic
from metrics.io.video import (DisplayMatrix, NoAudioTrackError, VideoReader, display_matrix, display_rotation,
                              frame_times, probe_video, read_video_audio_timed, write_video)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# other video files a raw folder may hold, not read (said so, with the remux that makes them readable)
OTHER_VIDEO_SUFFIXES = (".mts", ".m2ts", ".ts", ".3gp", ".mpg", ".mpeg", ".wmv", ".flv", ".vob")
# Candidate clips are intermediate files at the source's resolution, encoded again when cropped:
# x264's veryfast preset at crf 13 matches the default preset at crf 18 in PSNR (40.7 vs 40.9 dB on
# the 720p frames of benchmarks/prepare_speed.py) in 0.6x the time, with files 18% larger.
CANDIDATE_PRESET = "veryfast"
CANDIDATE_CRF = 13
STATE_VERSION = 2      # 2: candidates at square pixels and even sizes (1 kept a source's sample aspect ratio)

# What decoding a damaged file raises: PyAV's errors, and ours (ValueError) from metrics.io.video.
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
    """The scene split: PySceneDetect's content detector (``threshold`` on the HSV content change
    between frames) for shot changes, and its adaptive detector for jump cuts inside a shot
    (``jump_cuts``, ``bench.data.prepare.jumpcuts``; None: shot changes only);
    ``min_scene_seconds`` the shortest scene either may cut out."""

    threshold: float = 27.0
    min_scene_seconds: float = 0.6
    jump_cuts: JumpCutSettings | None = JumpCutSettings()


@dataclass(frozen=True)
class SceneCuts:
    """Where a source is split, as presented-frame indices (0 excluded): ``shot`` changes found by
    the content detector, and ``jump`` cuts inside a shot that only the adaptive detector found."""

    shot: list[int]
    jump: list[int]

    @property
    def all(self) -> list[int]:
        return sorted(self.shot + self.jump)


class SourceNameClash(ValueError):
    """Raw videos whose names map to one source name, so that their clips would share clip ids."""


def list_sources(raw_dir: str | os.PathLike, leave_out: Sequence[Path] = ()) -> list[Path]:
    """The video files under ``raw_dir`` (recursively, by suffix; not in hidden folders), sorted by relative
    path; none under the folders ``leave_out`` (what a run writes inside the raw folder: not sources).

    Raises ``SourceNameClash`` (naming the files) when two of them have the same ``source_name``
    (``talk 1.mp4`` and ``talk_1.mp4``, ``a/b.mp4`` and ``a__b.mp4``, ``talk.mp4`` and
    ``talk.mov``), compared without case so that their clip files cannot overwrite each other on a
    case-insensitive file system either.
    """
    root = Path(raw_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of raw videos")
    sources = sorted((p for p in _entries(root, leave_out) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
                     key=lambda p: p.relative_to(root).as_posix())
    check_source_names(root, sources)
    return sources


def passed_over(raw_dir: str | os.PathLike, leave_out: Sequence[Path] = ()) -> list[str]:
    """What ``list_sources`` does not take that looks like a video, in words: a name with a video suffix
    that is no readable file (a broken link, a link that loops), and a video of a format it does not read
    (``OTHER_VIDEO_SUFFIXES``: an .MTS of a camcorder, a .3gp of a phone)."""
    root = Path(raw_dir)
    said = []
    for path in sorted(_entries(root, leave_out)):
        suffix, name = path.suffix.lower(), path.relative_to(root).as_posix()
        if suffix in VIDEO_SUFFIXES and not path.is_file() and not path.is_dir():
            said.append(f"{name}: a broken or looping link")
        elif suffix in OTHER_VIDEO_SUFFIXES and path.is_file():
            said.append(f"{name}: {suffix} is not read (remux it: ffmpeg -i {path.name} -c copy {path.stem}.mp4; "
                        "re-encode if that fails)")
    return said


def _entries(root: Path, leave_out: Sequence[Path]) -> Iterator[Path]:
    """The entries under ``root`` (not entering linked folders), but for hidden ones (or in hidden folders:
    ``.ipynb_checkpoints`` holds copies) and those under ``leave_out``."""
    left_out = [os.path.realpath(folder) for folder in leave_out]
    for path in root.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        real = os.path.realpath(path)        # (does not raise on a link that loops, as resolve() does)
        if any(real == folder or real.startswith(folder + os.sep) for folder in left_out):
            continue
        yield path


def check_source_names(raw_dir: Path, sources: list[Path]) -> None:
    """``SourceNameClash`` when two ``sources`` have the same ``source_name`` (ignoring case)."""
    first: dict[str, Path] = {}
    clashes: list[str] = []
    for source in sources:
        name = source_name(raw_dir, source)
        other = first.setdefault(name.casefold(), source)
        if other != source:
            clashes.append(f"'{other.relative_to(raw_dir)}' and '{source.relative_to(raw_dir)}' -> {name!r}")
    if clashes:
        raise SourceNameClash(
            f"{raw_dir}: {len(clashes)} video(s) map to the source name of another, so their clip ids "
            f"({'; '.join(clashes[:5])}{'; ...' if len(clashes) > 5 else ''}) would overwrite each other: "
            "rename one of each pair (names keep letters, digits, '.', '-' and '_'; '/' becomes '__')")


def source_name(raw_dir: Path, source: Path) -> str:
    """A file-name-safe name of a source: its path relative to ``raw_dir`` without the suffix, with
    path separators turned into ``__`` and runs of other characters into ``_``.

    Several paths can map to one name; ``list_sources`` refuses such a folder (``SourceNameClash``).
    """
    relative = source.relative_to(raw_dir).with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", relative.replace("/", "__")).strip("_") or "video"


def clip_id(source: str, scene_index: int, piece: int | None = None) -> str:
    """The id of scene ``scene_index`` of source ``source``: ``<source>_s003``, or ``<source>_s003p1``
    for piece 1 of a scene cut into pieces (``--max-seconds``)."""
    return f"{source}_s{scene_index:03d}" + (f"p{piece}" if piece is not None else "")


def split_long_scenes(scenes: list[Scene], max_frames: int | None) -> list[tuple[int, int | None, Scene]]:
    """``(scene index, piece index or None, frames)`` of every clip: a scene longer than
    ``max_frames`` is cut into the fewest equal pieces that fit (None: no limit)."""
    clips: list[tuple[int, int | None, Scene]] = []
    for index, scene in enumerate(scenes):
        if max_frames is None or scene.num_frames <= max_frames:
            clips.append((index, None, scene))
            continue
        pieces = -(-scene.num_frames // max_frames)
        edges = [scene.start + round(k * scene.num_frames / pieces) for k in range(pieces + 1)]
        clips += [(index, k, Scene(a, b)) for k, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
    return clips


def file_signature(path: Path) -> str:
    """Size and modification time: a changed source is measured again, an unchanged one never."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def detect_cuts(path: Path, fps: float, settings: SceneSettings) -> list[int]:
    """Source frame indices where a new scene starts (0 excluded): shot changes and, unless
    ``settings.jump_cuts`` is None, jump cuts (``detect_scene_cuts`` tells them apart)."""
    return detect_scene_cuts(path, fps, settings).all


def detect_scene_cuts(path: Path, fps: float, settings: SceneSettings) -> SceneCuts:
    """Shot changes (PySceneDetect's ``ContentDetector``) and jump cuts (its ``AdaptiveDetector``,
    ``bench.data.prepare.jumpcuts``) of a source, in one decoding pass.

    An index counts the frames a player presents (``metrics.io.video``'s indices): PySceneDetect is
    fed those frames by position (``PresentedFrames``), since its own backend numbers frames by
    time x nominal rate, which on a variable-rate or edit-listed file is not their position.
    A hard cut usually fires both detectors: an adaptive cut closer than ``min_scene_seconds`` to
    a shot change is that shot change, not a jump cut.
    """
    min_len = max(1, int(round(settings.min_scene_seconds * fps)))
    shot = _RecordedCuts(ContentDetector(threshold=settings.threshold, min_scene_len=min_len))
    detectors = [shot]
    jump = None
    if settings.jump_cuts is not None:
        jump = _RecordedCuts(jump_cut_detector(min_len, settings.jump_cuts))
        detectors.append(jump)
    video = PresentedFrames(path, fps)
    try:
        manager = SceneManager()
        for detector in detectors:
            manager.add_detector(detector)
        manager.detect_scenes(video=video)
    finally:
        video.close()
    shots = sorted(set(shot.cuts) - {0})
    jumps = [] if jump is None else sorted(
        cut for cut in set(jump.cuts) - {0} if all(abs(cut - other) >= min_len for other in shots))
    return SceneCuts(shots, jumps)


class _RecordedCuts(SceneDetector):
    """A PySceneDetect detector that keeps the frame numbers of the cuts it reports, so that cuts
    of several detectors sharing one ``SceneManager`` (one decoding pass) can be told apart."""

    def __init__(self, inner: SceneDetector) -> None:
        super().__init__()
        self.inner = inner
        self.cuts: list[int] = []

    def _record(self, cuts: list) -> list:
        self.cuts += [int(cut.frame_num) for cut in cuts]
        return cuts

    def process_frame(self, timecode, frame_img):
        return self._record(self.inner.process_frame(timecode, frame_img))

    def post_process(self, timecode):
        return self._record(self.inner.post_process(timecode))

    @property
    def event_buffer_length(self) -> int:
        return self.inner.event_buffer_length

    @property
    def stats_manager(self):
        return self.inner.stats_manager

    @stats_manager.setter
    def stats_manager(self, value) -> None:
        self.inner.stats_manager = value

    def get_metrics(self) -> list[str]:
        return self.inner.get_metrics()


def read_frame_times(path: Path) -> np.ndarray:
    """Presentation time in seconds of every frame a player presents, in order: shape (F,).

    ``metrics.io.video.frame_times`` (from the packets, no decoding; frames an edit list hides are
    not there); ``ValueError`` when the video has no frame.
    """
    times = frame_times(path)
    if len(times) == 0:
        raise ValueError(f"{path}: no video frames")
    return times


MAX_SAMPLE_ASPECT = 4.0     # pixels shown at most 4x as wide as tall, or as narrow (video's SARs: up to 2)


def square_pixel_size(width: int, height: int, sample_aspect_ratio: str | None) -> tuple[int, int]:
    """The stored frame size shown with square pixels: the width times the sample aspect ratio (ffmpeg's
    ``scale=iw*sar:ih``), then each side rounded down to even (H.264 in 4:2:0 needs even sizes).
    ValueError for a ratio beyond ``MAX_SAMPLE_ASPECT`` either way (a header's 16:1 widened a 32 KB
    video of 1024 x 1024 frames to 16384 x 1024)."""
    numerator, denominator = (int(part) for part in (sample_aspect_ratio or "1:1").split(":"))
    if numerator > 0 and denominator > 0 and not 1 / MAX_SAMPLE_ASPECT <= numerator / denominator <= MAX_SAMPLE_ASPECT:
        raise ValueError(f"a sample aspect ratio of {numerator}:{denominator} (pixels shown "
                         f"{numerator / denominator:.3g} times as wide as stored): beyond 1:{MAX_SAMPLE_ASPECT:g} "
                         f"to {MAX_SAMPLE_ASPECT:g}:1, not a camera's; re-encode it with square pixels (setsar=1)")
    shown = width * numerator / denominator if numerator > 0 and denominator > 0 else width
    return int(round(shown)) // 2 * 2, height // 2 * 2


def square_pixel_frames(frames: Iterator[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Stored frames (H, W, 3) at ``size`` (width, height of ``square_pixel_size``): resized where the
    pixels are not square (area when shrinking, cubic when widening), else cut to even by their last
    column and row."""
    width, height = size
    for frame in frames:
        stored_height, stored_width = frame.shape[:2]
        if 0 <= stored_width - width <= 1 and 0 <= stored_height - height <= 1:
            yield np.ascontiguousarray(frame[:height, :width])
        else:
            shrink = width * height < stored_width * stored_height
            yield cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def upright_frames(frames: Iterator[np.ndarray], matrix: DisplayMatrix) -> Iterator[np.ndarray]:
    """The frames turned and mirrored as a player shows them (``matrix``: the file's display matrix)."""
    for frame in frames:
        yield matrix.apply(frame) if matrix != DisplayMatrix() else frame


def audio_start_time(path: Path) -> float:
    """Presentation time in seconds of the first audio sample a player plays, on the clock of
    ``read_frame_times`` (``metrics.io.video.read_video_audio_timed``)."""
    return read_video_audio_timed(path, SAMPLE_RATE).start


@dataclass(frozen=True)
class Timeline:
    """A source resampled to a constant frame rate: output frame k, at time ``start + k / fps``,
    shows the source frame nearest in time (``source_index[k]``).

    For a constant-rate source at its own rate this is the identity; a variable-rate recording (a
    phone's) becomes evenly spaced frames that stay in sync with its audio; another ``fps``
    (30 -> 25) drops or repeats frames.
    """

    fps: float
    start: float
    source_index: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.source_index)


def make_timeline(times: np.ndarray, fps: float) -> Timeline:
    """The constant-rate timeline at ``fps`` over source frames shown at ``times`` (seconds, sorted)."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0:
        raise ValueError("a timeline needs the times of at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    count = max(1, int(round((times[-1] - times[0]) * fps)) + 1)
    targets = times[0] + np.arange(count) / fps
    after = np.clip(np.searchsorted(times, targets), 0, len(times) - 1)
    before = np.clip(after - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[before] - targets) <= np.abs(times[after] - targets), before, after)
    return Timeline(float(fps), float(times[0]), nearest.astype(np.int64))


def scenes_on_timeline(cuts: list[int], timeline: Timeline) -> list[Scene]:
    """The scenes (source frames split at ``cuts``) as ranges of output frames: an output frame
    belongs to the scene of the source frame it shows, so no clip holds a frame of another scene."""
    scene_of = np.searchsorted(np.asarray(sorted(cuts), dtype=np.int64), timeline.source_index, side="right")
    edges = [0] + [int(k) for k in np.flatnonzero(np.diff(scene_of)) + 1] + [timeline.num_frames]
    return [Scene(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def resampled_frames(frames: Iterator[np.ndarray], source_index: np.ndarray) -> Iterator[np.ndarray]:
    """The output frames: source frames (streamed, in order) picked, skipped or repeated by ``source_index``."""
    current, position = None, -1
    for wanted in source_index:
        while position < wanted:
            current = next(frames, None)
            if current is None:
                raise ValueError(f"the video decodes to {position + 1} frames, fewer than its packets list "
                                 f"(frame {int(wanted)}, counting from 0, is wanted): it is cut short or damaged")
            position += 1
        yield current


def detect_scenes(path: Path, timeline: Timeline, settings: SceneSettings, source_fps: float) -> list[Scene]:
    """Scenes of a video as ranges of its timeline's frames (consecutive, covering all of them)."""
    return scenes_on_timeline(detect_cuts(path, source_fps, settings), timeline)


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


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object saved by an earlier run, or None when absent or unreadable (the work is redone);
    a file too large or nested too deeply (``metrics.io.bounded.read_json``) is unreadable too."""
    try:
        value = bounded.read_json(path)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def load_state(path: Path) -> dict[str, Any] | None:
    """A source's saved state, or None when absent, unreadable or of another version."""
    state = read_json(path)
    return state if state is not None and state.get("version") == STATE_VERSION else None


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
            raise ValueError(f"the video ended at output frame {scene.start + offset}, inside a scene ending at "
                             f"{scene.end}")
        if offset in samples:
            sampled[offset] = frame
        yield frame


def _skip(frames: Iterator[np.ndarray], count: int) -> None:
    for _ in range(count):
        next(frames, None)


def measure_source(source: Path, name: str, workspace: Workspace, detector: FaceDetector,
                   scene_settings: SceneSettings, min_seconds: float, samples_per_second: float,
                   max_samples: int, digest: str, previous: dict[str, Any] | None = None,
                   fps: float | None = None, max_seconds: float | None = None) -> dict[str, Any]:
    """Split ``source`` into scenes, write the candidate clips of scenes of at least ``min_seconds``,
    detect faces on sampled frames; return (and save) the source's state.

    The split is at shot changes and jump cuts (``detect_scene_cuts``); the state keeps both lists
    (``shot_cuts``, ``jump_cuts``: source frame indices) so that the report can count them.

    Frames are shown with square pixels at an even size (``square_pixel_size``: a camcorder's
    anamorphic 16:9 widened, an odd last column or row cut), turned upright and unmirrored as ffmpeg shows them (``display_matrix``), resampled to a constant ``fps`` by their
    timestamps (``Timeline``; None: the source's average rate), and each clip's audio is cut at its
    first and last frame's times.

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
        track = read_video_audio_timed(source, SAMPLE_RATE, partial=True)   # a cut file keeps its scenes before
        audio = track.samples
        if audio.size == 0:
            raise ValueError("the audio track is empty")
        times = read_frame_times(source)
        rotation, matrix = display_rotation(source), display_matrix(source)
        timeline = make_timeline(times, fps or info.fps)
        audio_offset = timeline.start - track.start
        square = square_pixel_size(info.width, info.height, info.sample_aspect_ratio)
        cuts = detect_scene_cuts(source, info.fps, scene_settings)
        scenes = scenes_on_timeline(cuts.all, timeline)
    except (*DECODE_ERRORS, FileNotFoundError) as error:
        state.update(status="unreadable", error=str(error).replace(str(source), source.name),
                     **({"no_audio": True} if isinstance(error, NoAudioTrackError) else {}))
        write_json_atomic(path, state)
        return state
    targets = timeline.start + np.arange(timeline.num_frames) / timeline.fps
    width, height = (square[1], square[0]) if matrix.transpose else square
    state.update(fps=timeline.fps, num_frames=timeline.num_frames, width=width, height=height, rotation=rotation,
                 mirrored=matrix.mirrored,
                 stored_size=[info.width, info.height], sample_aspect_ratio=info.sample_aspect_ratio or "1:1",
                 seconds=timeline.num_frames / timeline.fps, source_fps=info.fps, source_frames=len(times),
                 max_timing_error=round(float(np.max(np.abs(times[timeline.source_index] - targets))), 4),
                 audio_offset=round(audio_offset, 4), audio_gaps=[list(gap) for gap in track.gaps],
                 **({"audio_broken_at": round(track.broken_at, 3), "audio_broken_by": track.broken_by}
                    if track.broken_at is not None else {}),
                 scenes=[[s.start, s.end] for s in scenes],
                 shot_cuts=cuts.shot, jump_cuts=cuts.jump)
    write_json_atomic(path, state)
    try:
        with VideoReader(source) as video:
            frames = resampled_frames(upright_frames(square_pixel_frames(iter(video), square), matrix),
                                      timeline.source_index)
            max_frames = None if max_seconds is None else max(1, int(max_seconds * timeline.fps))
            for index, piece, scene in split_long_scenes(scenes, max_frames):
                clip = clip_id(name, index, piece)
                entry = {"scene": index, "piece": piece, "start": scene.start, "end": scene.end,
                         "seconds": scene.num_frames / timeline.fps}
                if clip in reusable and reusable[clip].get("start") == scene.start \
                        and reusable[clip].get("end") == scene.end:
                    _skip(frames, scene.num_frames)
                    entry = reusable[clip]
                elif entry["seconds"] < min_seconds:
                    _skip(frames, scene.num_frames)
                    entry["measured"] = False
                else:
                    entry.update(_measure_clip(frames, scene, clip, audio, audio_offset, timeline.fps, workspace,
                                               detector, samples_per_second, max_samples))
                state["clips"][clip] = entry
                write_json_atomic(path, state)
    except DECODE_ERRORS as error:
        state.update(status="failed", error=str(error).replace(str(source), source.name))
        write_json_atomic(path, state)
        return state
    state["status"] = "done"
    write_json_atomic(path, state)
    return state


def clip_audio_samples(audio: np.ndarray, audio_offset: float, scene: Scene, fps: float) -> tuple[np.ndarray, int]:
    """The samples of ``audio`` (16 kHz, sample 0 at the audio's start) under the scene's frames, and
    how many were missing (before the audio's start or after its end: filled with silence).

    ``audio_offset`` is the time of output frame 0 minus the time of the first audio sample.
    """
    first = int(round((audio_offset + scene.start / fps) * SAMPLE_RATE))
    last = int(round((audio_offset + scene.end / fps) * SAMPLE_RATE))
    before = max(0, -first)
    piece = audio[max(0, first):max(0, last)]
    after = last - first - before - len(piece)
    return np.pad(piece, (before, max(0, after))), before + max(0, after)


def _measure_clip(frames: Iterator[np.ndarray], scene: Scene, clip: str, audio: np.ndarray, audio_offset: float,
                  fps: float, workspace: Workspace, detector: FaceDetector, samples_per_second: float,
                  max_samples: int) -> dict[str, Any]:
    """Write one scene's candidate video and wav, and detect faces on its sampled frames."""
    samples = sample_frame_indices(scene.num_frames, fps, samples_per_second, max_samples)
    sampled: dict[int, np.ndarray] = {}
    clip_audio, missing = clip_audio_samples(audio, audio_offset, scene, fps)
    write_video(workspace.candidate_video(clip), _scene_frames(frames, scene, set(samples), sampled), fps,
                audio=clip_audio, sample_rate=SAMPLE_RATE, crf=CANDIDATE_CRF, preset=CANDIDATE_PRESET)
    write_wav(workspace.candidate_audio(clip), clip_audio, SAMPLE_RATE)
    faces = {str(offset): [face.to_list() for face in detector(sampled[offset])] for offset in samples}
    return {"measured": True, "sample_frames": samples, "faces": faces,
            "audio_missing_seconds": round(max(0, missing) / SAMPLE_RATE, 3)}


def clip_faces(entry: dict[str, Any]) -> list[list[Face]]:
    """The faces found on each sampled frame of a measured clip, in frame order."""
    return [[Face.from_list(values) for values in entry["faces"][str(offset)]] for offset in entry["sample_frames"]]
