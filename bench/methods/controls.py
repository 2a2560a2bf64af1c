"""Controls: known answers that validate the metrics on every run (how each is scored:
``bench.scoring``).

- ``gt``: the real test videos (linked, never re-encoded), the reference every method is scored
  against. Its row gives their own Diversity and BAS; it is never scored against itself (FGD and
  FVD would be 0 by construction). The real-vs-real noise floor (``noise-floor``) is a scoring-only
  row: other real clips of the same speakers against each other.
- ``static``: the reference frame repeated for the clip's length, with the clip's audio. No motion:
  the lowest Diversity and BAS a method can get, and an FGD and FVD above the noise floor.
- ``shuffled``: the real test videos with the audio of other test clips. Real motion that does not
  follow its speech: scored on BAS only (the one metric that hears the audio), below ``gt``'s. Its
  folder pairs each video with the next clip's audio (identity/clip order, tiled or cut to length);
  its BAS is computed against the speech of several other test clips and averaged (chance level for
  that motion; one partner alone made the control as noisy as the clip it happened to draw).

The audio a control is scored with lies beside the video as ``<clip_id>.wav``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.methods.base import BenchContext, Method
from metrics.dataset import ClipRecord
from metrics.io.audio import SAMPLE_RATE, write_wav
from metrics.io.files import link_or_copy


def link_file(source: Path, target: Path) -> None:
    """``target`` -> ``source`` as a symlink (a copy where links are refused), replacing ``target``."""
    link_or_copy(source, target, symbolic=True)


def fit_audio(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` tiled (if shorter) or cut to ``length`` samples."""
    if len(audio) == 0:
        raise ValueError("empty audio")
    return np.resize(audio, length) if len(audio) < length else audio[:length]


class GroundTruth(Method):
    name, label, kind, writes_files = "gt", "GT (real test videos)", "reference", True

    def write(self, clip: ClipRecord, out: Path, seed: int) -> dict[str, Any]:
        link_file(clip.audio, out.with_suffix(".wav"))
        link_file(clip.video, out)
        return {"linked": str(clip.video)}


class Static(Method):
    name, label, kind = "static", "Static (reference frame repeated)", "control"

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        frame = clip.first_frame()
        return np.broadcast_to(frame, (clip.num_frames, *frame.shape))


class ShuffledAudio(Method):
    name, label, kind, writes_files = "shuffled", "Shuffled (real video, another clip's audio)", "control", True

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        clips = sorted(context.test_clips, key=lambda c: (c.identity, c.clip_id))
        if len(clips) < 2:
            raise ValueError("the shuffled-audio control needs at least 2 test clips")
        self.partner = {clips[k].label: clips[(k + 1) % len(clips)] for k in range(len(clips))}
        return {"audio_from": {k: v.label for k, v in self.partner.items()}}

    def write(self, clip: ClipRecord, out: Path, seed: int) -> dict[str, Any]:
        other = self.partner[clip.label]
        rate = SAMPLE_RATE
        length = len(clip.load_audio(rate))
        write_wav(out.with_suffix(".wav"), fit_audio(other.load_audio(rate), length), rate)
        link_file(clip.video, out)
        return {"audio_from": other.label}
