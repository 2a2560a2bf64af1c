"""Per-clip active-speaker counts from an external detector (TalkNet, the paper's choice).

The file is a CSV with a header and one row per candidate clip::

    clip_id,speakers
    talk01_s000,1
    talk01_s002,2

``speakers`` is the number of distinct people who speak in the clip; only clips with exactly one
are kept. Lines starting with ``#`` are comments; other columns are ignored.

From TalkNet-ASD: run its demo on each candidate clip (``prepare/<identity>/candidates/*.mp4``);
for each clip it writes ``pywork/tracks.pckl`` (face tracks) and ``pywork/scores.pckl`` (one score
per frame and track, > 0 meaning speaking). Count the tracks that speak (score > 0, smoothed over
a few frames) on a meaningful share of their frames, and write that count as ``speakers``.
Clips missing from the file are decided by the face-count fallback, and the report says how many.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


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
