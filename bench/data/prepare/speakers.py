"""Per-clip active-speaker counts from an external detector (TalkNet, the paper's choice).

The file is a CSV with a header and one row per candidate clip::

    clip_id,speakers
    talk01_s000,1
    talk01_s002,2

``speakers`` is the number of distinct people who speak in the clip; only clips with exactly one
are kept. Lines starting with ``#`` are comments; other columns are ignored.

From TalkNet-ASD: run its demo on each candidate clip (``prepare/<identity>/candidates/*.mp4``),
``python demoTalkNet.py --videoFolder TALKNET_DIR --videoName <clip_id>``; for each clip it writes
``TALKNET_DIR/<clip_id>/pywork/scores.pckl``: one array per face track with a score per frame, >= 0
meaning speaking (after averaging over the frame and two on each side, as TalkNet's own
visualisation does). ``imac-bench data speakers TALKNET_DIR --out speakers.csv`` counts, per clip,
the tracks that speak on at least ``--min-speaking-fraction`` of their frames and writes the file.
A person whose face track breaks in two counts twice, which drops the clip: the error is on the
safe side. Clips missing from the file are decided by the face-count fallback, and the report
says how many.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from bench.data.prepare.safe_pickle import PickleReadError, load_pickle
from metrics.io.files import write_text_atomic

TALKNET_SMOOTHING = 2       # frames on each side averaged, as in TalkNet's demo visualisation


def read_speaker_counts(path: str | os.PathLike) -> dict[str, int]:
    """``{clip_id: speakers}`` from the CSV; errors name the file and the row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--speakers {path}: cannot read: {error}") from None
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(rows)
    missing = {"clip_id", "speakers"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"--speakers {path}: the header must name clip_id and speakers "
                         f"(missing: {', '.join(sorted(missing))})")
    counts: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        clip, value = (row.get("clip_id") or "").strip(), (row.get("speakers") or "").strip()
        if not clip:
            raise ValueError(f"--speakers {path} row {number}: empty clip_id")
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"--speakers {path} row {number} ({clip}): speakers must be a whole number, "
                             f"got {value!r}") from None
        if count < 0:
            raise ValueError(f"--speakers {path} row {number} ({clip}): speakers must be >= 0, got {count}")
        if clip in counts and counts[clip] != count:
            raise ValueError(f"--speakers {path} row {number}: {clip} is listed twice with different counts")
        counts[clip] = count
    return counts


def smoothed_scores(scores: np.ndarray, half_width: int = TALKNET_SMOOTHING) -> np.ndarray:
    """Each frame's score averaged with up to ``half_width`` frames on each side (clipped at the ends)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    cumulative = np.concatenate([[0.0], np.cumsum(scores)])
    index = np.arange(len(scores))
    low, high = np.maximum(index - half_width, 0), np.minimum(index + half_width + 1, len(scores))
    return (cumulative[high] - cumulative[low]) / np.maximum(high - low, 1)


def speaking_tracks(track_scores: list, min_speaking_fraction: float = 0.2) -> int:
    """How many face tracks speak (smoothed score >= 0) on at least ``min_speaking_fraction`` of their frames."""
    count = 0
    for scores in track_scores:
        smoothed = smoothed_scores(scores)
        if len(smoothed) and float(np.mean(smoothed >= 0)) >= min_speaking_fraction:
            count += 1
    return count


def track_scores(path: Path, number: int, scores) -> np.ndarray:
    """Track ``number``'s scores of ``path`` as a float array (frames,). A value that is not a number, or
    not finite, is a ValueError naming the file, the track and the frames: compared as ``>= 0``, a NaN
    reads as "not speaking", so a broken track would silently leave a second speaker uncounted and the
    clip kept."""
    try:
        values = np.asarray(scores, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: track {number}: scores are not numbers ({error})") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        frames = ", ".join(map(str, bad[:5])) + (" ..." if bad.size > 5 else "")
        raise ValueError(f"{path}: track {number}: {bad.size} of {values.size} scores are not finite (frames "
                         f"{frames}): TalkNet's output is damaged; run its demo on that clip again")
    return values


def talknet_speaker_counts(folder: str | os.PathLike, min_speaking_fraction: float = 0.2) -> dict[str, int]:
    """``{clip_id: speakers}`` from TalkNet demo outputs ``folder/<clip_id>/pywork/scores.pckl``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of TalkNet outputs")
    counts = {}
    for path in sorted(folder.glob("*/pywork/scores.pckl")):
        try:
            scores = load_pickle(path)
        except PickleReadError as error:
            raise ValueError(str(error)) from None
        if not isinstance(scores, (list, tuple)):
            raise ValueError(f"{path}: expected a list of per-track score arrays, got {type(scores).__name__}")
        counts[path.parent.parent.name] = speaking_tracks([track_scores(path, number, track)
                                                          for number, track in enumerate(scores)],
                                                         min_speaking_fraction)
    if not counts:
        raise FileNotFoundError(f"{folder}: no <clip_id>/pywork/scores.pckl inside (TalkNet's demo layout)")
    return counts


def write_speaker_counts(path: str | os.PathLike, counts: dict[str, int]) -> Path:
    """The speakers CSV (``clip_id,speakers``), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip_id", "speakers"])
    writer.writerows(sorted(counts.items()))
    return write_text_atomic(path, buffer.getvalue())
