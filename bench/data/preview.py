"""A contact sheet of a dataset: a strip of frames per identity with its keypoints drawn on top.

The quickest way to see that a dataset (the toy corpus, or one prepared from real videos) looks
right: identities, framing, and whether the keypoint files line up with the pictures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from metrics.dataset import Dataset
from metrics.io.files import atomic_path, check_file_target
from metrics.pose import wholebody as wb

_PART_COLOURS = ((wb.BODY, (255, 255, 255)), (wb.FACE, (255, 220, 0)),
                 (wb.LEFT_HAND, (255, 80, 80)), (wb.RIGHT_HAND, (80, 160, 255)))


LABEL_HEIGHT = 12     # pixels of the caption box drawn over each row's top-left corner
MAX_FRAMES_PER_ROW = 24
TILE_SIDE = 128       # a tile's longer side is at most TILE_SIDE x ``scale`` pixels (``_tile_size``)


def _labelled(row: np.ndarray, text: str) -> np.ndarray:
    """``row`` with ``text`` in white on a black box over its top-left corner (PIL's built-in font);
    the sheet keeps its size."""
    image = Image.fromarray(row)
    draw = ImageDraw.Draw(image)
    right = min(row.shape[1], int(draw.textlength(text)) + 6)
    draw.rectangle((0, 0, right - 1, LABEL_HEIGHT - 1), fill=(0, 0, 0))
    draw.text((3, 0), text, fill=(255, 255, 255))
    return np.asarray(image)


def _checked_keypoints(clip) -> np.ndarray | None:
    """The clip's keypoints, or None; ``ValueError`` naming the file when they are not (F, 133, 3) with F
    the clip's frame count (a file shorter than the clip would leave frames without keypoints)."""
    keypoints = clip.load_keypoints()
    if keypoints is None:
        return None
    if keypoints.ndim != 3 or keypoints.shape[1:] != (wb.NUM_KEYPOINTS, 3):
        raise ValueError(f"{clip.keypoints}: array 'keypoints' has shape {keypoints.shape}, "
                         f"expected (frames, {wb.NUM_KEYPOINTS}, 3)")
    if len(keypoints) != clip.num_frames:
        raise ValueError(f"{clip.keypoints}: {len(keypoints)} frame(s) of keypoints, the clip "
                         f"{clip.clip_id} has {clip.num_frames}")
    return keypoints


def _tile_size(width: int, height: int, scale: int) -> tuple[int, int, bool]:
    """A tile's (width, height) for frames of ``width`` x ``height`` at ``scale``, and whether the frame is
    enlarged (nearest pixel) rather than shrunk (``cv2.INTER_AREA``). The frame enlarged ``scale`` times while
    its longer side stays within ``TILE_SIDE`` x ``scale`` px (the toy corpus's 64 and 128 px clips: twice
    their size); a larger frame enlarged fewer whole times, or shrunk to that side when larger still (a
    4096 px frame enlarged twice was a 200 MB tile)."""
    most, longest = TILE_SIDE * scale, max(width, height)
    times = min(scale, most // longest)
    if times >= 1:
        return width * times, height * times, True
    shrink = most / longest
    return max(1, round(width * shrink)), max(1, round(height * shrink)), False


def _tile(frame: np.ndarray, width: int, height: int, enlarged: bool) -> Image.Image:
    if enlarged:
        return Image.fromarray(frame).resize((width, height), Image.NEAREST)
    import cv2     # (here: ``imac-bench`` imports this module at start)

    return Image.fromarray(cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=cv2.INTER_AREA))


def contact_sheet(dataset: Dataset, frames_per_row: int = 6, split: str = "test", scale: int = 2,
                  min_score: float = 0.3) -> Image.Image:
    """One row per identity: evenly spaced frames of its first clip of ``split``, keypoints overlaid,
    under a caption naming the identity, the clip, its split and length. Each tile is its frame enlarged
    ``scale`` times, or less for frames over ``TILE_SIDE`` px (``_tile_size``)."""
    if not 1 <= frames_per_row <= MAX_FRAMES_PER_ROW:
        raise ValueError(f"frames_per_row must be in 1..{MAX_FRAMES_PER_ROW}, got {frames_per_row}")
    rows = []
    for identity in dataset.identities:
        clips = dataset.by_identity(identity, split) or dataset.by_identity(identity)
        clip = clips[0]
        picks = np.linspace(0, clip.num_frames - 1, frames_per_row).round().astype(int)
        keypoints = _checked_keypoints(clip)
        width, height, enlarged = _tile_size(clip.width, clip.height, scale)
        # keypoints scaled as the frame: by the whole number of times it is enlarged, else by the shrink
        scale_x, scale_y = (width // clip.width, height // clip.height) if enlarged else \
            (width / clip.width, height / clip.height)
        with clip.open_video() as video:       # each picked frame made a tile as it comes (never all whole)
            tiles_of = video.frames_at(picks, lambda frame: _tile(frame, width, height, enlarged))
        missing = [int(i) for i in picks if i not in tiles_of]
        if missing:
            raise ValueError(f"{clip.video}: no frame {missing[0]}: the video is shorter than the "
                             f"{clip.num_frames} frames the manifest gives clip {clip.clip_id}")
        tiles = []
        for index in picks:
            tile = tiles_of[index].copy()
            if keypoints is not None:
                draw = ImageDraw.Draw(tile)
                for part, colour in _PART_COLOURS:
                    for x, y, score in keypoints[index, part.start:part.stop]:
                        if score >= min_score:
                            cx, cy = (x + 0.5) * scale_x, (y + 0.5) * scale_y
                            draw.ellipse((cx - 1, cy - 1, cx + 1, cy + 1), outline=(0, 0, 0), fill=colour)
            tiles.append(np.asarray(tile))
        row = np.concatenate(tiles, axis=1)
        caption = (f"{identity} | {clip.clip_id} ({clip.split}, {clip.num_frames / clip.fps:.1f} s) | "
                   f"frames {', '.join(str(int(i)) for i in picks)}")
        rows.append(_labelled(row, caption))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return Image.fromarray(np.concatenate(rows, axis=0))


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_contact_sheet(dataset_root: str | Path, out_path: str | Path, **options) -> Path:
    """Write ``contact_sheet`` of the dataset to ``out_path`` in the format its suffix names (``IMAGE_FORMATS``:
    .png, .jpg/.jpeg, .webp); ``ValueError`` for another suffix, ``IsADirectoryError`` for a path that is a
    folder and ``NotADirectoryError`` for one under a file, before any work."""
    image_format = IMAGE_FORMATS.get(Path(out_path).suffix.lower())
    if image_format is None:
        raise ValueError(f"{out_path}: the sheet is written as an image named by its suffix "
                         f"({', '.join(IMAGE_FORMATS)}), not {Path(out_path).suffix or 'no suffix'}")
    check_file_target(out_path, "image")
    sheet = contact_sheet(Dataset.open(dataset_root, level="files"), **options)
    with atomic_path(out_path) as temporary:
        sheet.save(temporary, format=image_format)
    return Path(out_path)
