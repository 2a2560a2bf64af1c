"""Training windows: the "slow-fast" sampling of the paper.

Every item is one long motion window of ``motion_frames`` consecutive frames (80 in the paper) of
one training clip: its raw pose and expression and its per-frame audio features. In stage 2 the
item also holds a random contiguous ``video_frames`` window (16) INSIDE it: those frames of the
video and their offset ``video_start`` in the motion window, so that the video branch gets only the
short window's frames and only the matching part of the motion branch's representation (computed
from the long window's audio and motion).

Clips shorter than the motion window are skipped (and counted). Windows start at every frame of
every clip with equal probability; an "epoch" is one window per start position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from imac.frames import frames_to_tensor, tensor_to_frames
from metrics.dataset import MANIFEST_NAME, ClipRecord, Dataset
from metrics.io.video import CHUNK_FRAMES, VideoReader, chunk_frames


@dataclass
class ClipArrays:
    """What training needs of one clip, aligned per frame."""

    record: ClipRecord
    pose: np.ndarray        # (F, P) float32
    expression: np.ndarray  # (F, E) float32
    mfcc: np.ndarray        # (F, n_mfcc)
    hubert: np.ndarray      # (F, H)
    frames: np.ndarray | None = None  # (F, S, S, 3) uint8 when preloaded at the training resolution

    @property
    def num_frames(self) -> int:
        return len(self.pose)


def window_positions(lengths: list[int], window: int) -> np.ndarray:
    """All (clip index, start) pairs of ``window``-frame windows over clips of ``lengths``."""
    pairs = [(index, start) for index, length in enumerate(lengths) for start in range(length - window + 1)]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def video_window_start(motion_frames: int, video_frames: int, rng: np.random.Generator) -> int:
    """A uniformly random start of a ``video_frames`` window inside a ``motion_frames`` window."""
    if video_frames > motion_frames:
        raise ValueError(f"the video window ({video_frames} frames) must fit in the motion window ({motion_frames})")
    return int(rng.integers(0, motion_frames - video_frames + 1))


def item_seed(seed: int, slot: int) -> int:
    """The seed of the item in global slot ``slot`` of a run seeded ``seed``: its video window offset
    and every random draw of its loss come from it, whichever process trains on it."""
    return int(np.random.default_rng((seed, slot)).integers(0, 2 ** 62))


class GlobalBatches(torch.utils.data.Sampler):
    """Batches of (window index, item seed) for one process, the same global batches for any number
    of processes.

    Micro-step m of the run (m = optimizer step x gradient accumulation + k) takes the global slots
    [m B N, (m + 1) B N) of an endless sequence of epochs (each a permutation of the windows seeded
    by (seed, epoch)); process r of N takes the B slots [m B N + r B, m B N + (r + 1) B). So one
    process with batch 2B and two with batch B train on the same windows with the same seeds
    (``item_seed``). Starts at micro-step ``start`` (a resumed run continues the sequence).
    """

    def __init__(self, size: int, batch_size: int, processes: int = 1, rank: int = 0, seed: int = 0,
                 start: int = 0) -> None:
        if size < 1 or batch_size < 1 or not 0 <= rank < processes:
            raise ValueError(f"need size >= 1, batch_size >= 1 and 0 <= rank < processes, got {size}, "
                             f"{batch_size}, {rank}, {processes}")
        self.size, self.batch_size, self.processes, self.rank = size, batch_size, processes, rank
        self.seed, self.start = seed, start
        self._epochs: dict[int, np.ndarray] = {}

    def _window(self, slot: int) -> int:
        epoch, position = divmod(slot, self.size)
        if epoch not in self._epochs:
            self._epochs = {epoch: np.random.default_rng((self.seed, epoch, 1)).permutation(self.size)}
        return int(self._epochs[epoch][position])

    def __iter__(self):
        step = self.start
        while True:
            first = step * self.batch_size * self.processes + self.rank * self.batch_size
            yield [(self._window(slot), item_seed(self.seed, slot)) for slot in range(first, first + self.batch_size)]
            step += 1


class TrainingWindows(TorchDataset):
    def __init__(self, clips: list[ClipArrays], motion_frames: int, video_frames: int | None = None,
                 resolution: int | None = None, seed: int = 0, setting: str = "the motion window") -> None:
        self.motion_frames = motion_frames
        self.video_frames = video_frames
        self.resolution = resolution
        self.seed = seed
        self.clips = [clip for clip in clips if clip.num_frames >= motion_frames]
        self.skipped = [clip.record.label for clip in clips if clip.num_frames < motion_frames]
        if not self.clips:
            longest = max((clip.num_frames for clip in clips), default=0)
            raise ValueError(f"no training clip has {motion_frames} frames ({setting}); the longest has {longest}: "
                             f"{len(self.skipped)} shorter clip(s) skipped; give {setting} of at most {longest}")
        self.positions = window_positions([c.num_frames for c in self.clips], motion_frames)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Window ``index`` drawn with ``seed`` (``GlobalBatches`` yields the pairs): its motion, audio
        features and, in stage 2, a video window at an offset drawn from the seed; ``seed`` goes into
        the item, for the loss's draws."""
        index, seed = key
        clip_index, start = self.positions[index]
        clip = self.clips[clip_index]
        stop = start + self.motion_frames
        item = {name: torch.from_numpy(np.ascontiguousarray(getattr(clip, name)[start:stop]))
                for name in ("pose", "expression", "mfcc", "hubert")}
        item["seed"] = torch.tensor(int(seed), dtype=torch.int64)
        if self.video_frames is not None:
            offset = video_window_start(self.motion_frames, self.video_frames, np.random.default_rng((seed, 0)))
            first = start + offset
            item["frames"] = self.read_frames(clip, first, first + self.video_frames)
            item["video_start"] = torch.tensor(offset)
        return item

    def read_frames(self, clip: ClipArrays, start: int, stop: int) -> torch.Tensor:
        if clip.frames is not None:
            frames = clip.frames[start:stop]
            if len(frames) != stop - start:
                raise ValueError(f"{clip.record.video}: frames {start}..{stop} not all decodable")
            return frames_to_tensor(frames, self.resolution)
        # read at most CHUNK_BUDGET bytes of frames at a time (one read unless the window's frames take more:
        # 16 frames beyond 2340 x 2340), each converted to float32 a group at a time (bounded_frames_to_tensor)
        parts, end = [], start
        with VideoReader(clip.record.video) as reader:
            step = chunk_frames(reader.info.height * reader.info.width * 3, max(1, stop - start))
            while True:
                frames = reader.read(end, min(stop, end + step))
                parts.append(bounded_frames_to_tensor(frames, self.resolution))
                end, got = end + len(frames), len(frames)
                del frames                      # before the next read
                if end >= stop or got < step or end >= len(reader):
                    break
        if end - start != stop - start:
            raise ValueError(f"{clip.record.video}: frames {start}..{stop} not all decodable")
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def bounded_frames_to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """``frames_to_tensor(frames, size)``, converting a group of frames at a time to float32, each group
    within ``metrics.io.video.CHUNK_BUDGET`` bytes of float32 (4 bytes a value: 16 frames of 2048 x 2048
    are 768 MiB at once). Each frame resizes alone: the same tensor, bit for bit, whatever the grouping."""
    if len(frames) == 0:
        return frames_to_tensor(frames, size)
    step = chunk_frames(frames[0].nbytes * 4, len(frames))
    if step >= len(frames):
        return frames_to_tensor(frames, size)
    return torch.cat([frames_to_tensor(frames[i:i + step], size) for i in range(0, len(frames), step)])


def video_chunks_to_tensor(video, size: int, convert=None) -> torch.Tensor | np.ndarray:
    """``frames_to_tensor(read_video(video), size)`` (then ``convert``d when given), decoded chunk by chunk
    (``VideoReader.iter_chunks``, each chunk within ``CHUNK_BUDGET`` bytes) and each chunk resized before the
    next is decoded: the whole clip is never held at full size, nor in float32. Bit for bit the same result
    (each frame resizes alone)."""
    convert = convert or (lambda x: x)
    with VideoReader(video) as reader:
        parts = []
        for chunk in reader.iter_chunks(CHUNK_FRAMES):
            parts.append(convert(bounded_frames_to_tensor(chunk, size)))
            del chunk                           # before the next is decoded
        if not parts:    # no frame: what frames_to_tensor gives of read_video's empty (0, H, W, 3) array
            empty = np.zeros((0, reader.info.height, reader.info.width, 3), np.uint8)
            return convert(frames_to_tensor(empty, size))
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def preload_frames(record: ClipRecord, resolution: int) -> np.ndarray:
    """A clip's frames at the training resolution as uint8 (small datasets: decode once), decoded and
    resized a chunk at a time (``video_chunks_to_tensor``)."""
    return video_chunks_to_tensor(record.video, resolution, convert=tensor_to_frames)


def open_dataset(root, level: str = "full") -> Dataset:
    """The dataset at ``data.root`` (``metrics.dataset.Dataset.open``). A folder with no manifest there, or
    none at all, is a ``FileNotFoundError`` that names ``data.root`` and how to make one (the tiny config's
    ``data/toy`` is made by ``imac-bench data toy``, not shipped: a fresh clone has none)."""
    from pathlib import Path

    root = Path(root)
    if not (root / MANIFEST_NAME).exists() and not root.is_file():
        raise FileNotFoundError(f"data.root: {root} holds no dataset (no {MANIFEST_NAME}): make the toy corpus there "
                                f"with `imac-bench data toy --out {root}`, prepare one from videos with `imac-bench "
                                "data prepare`, or give data.root=DIR")
    return Dataset.open(root, level=level)
