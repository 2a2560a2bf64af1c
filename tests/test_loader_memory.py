"""Loaders that resize a user's video decode it a chunk at a time (``metrics.io.video.CHUNK_BUDGET``).

``preload_frames``, ``TrainingWindows.read_frames``, ``load_split_frames`` (the VAE's training frames) and
MYA's ``load_training_frames`` decoded the whole clip at full size and converted all of it to float32
before resizing it down (a 44 KB mp4 of 64 frames of 2048 x 2048 took 4 GB for a 0.8 MB result);
``conform_frames`` resized a generated clip up to the real clip's size all at once in float32 (16 frames of
128 px -> 2048 px: 2.3 GB); the contact sheet enlarged every picked frame twice (32 frames of 4096 px:
6.8 GB). Each frame resizes alone, so every result is, bit for bit, the old whole-clip computation (written
out here), whatever the chunk size; and a child process's peak memory stays within two chunks and a margin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import metrics.io.video as video_module
from imac.frames import frames_to_tensor, tensor_to_frames
from metrics.io.video import CHUNK_BUDGET, read_video, write_video
from memory_measure import PEAK

MiB = 1 << 20
SIDE, FRAMES = 2048, 48          # 12 MiB a frame (48 MiB in float32): 576 MiB for the 48 frames
BOUND = 2 * CHUNK_BUDGET + 256 * MiB     # as tests/test_decode_memory.py: two chunks and a margin


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """21 non-square frames of noise (the centre square is cropped, then resized)."""
    path = tmp_path_factory.mktemp("small") / "clip.mp4"
    write_video(path, np.random.default_rng(7).integers(0, 256, (21, 48, 64, 3), dtype=np.uint8), 25)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus

    root = tmp_path_factory.mktemp("toy") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(seed=4, identities=2, clips=2, test_clips=1, size=64), progress=False)
    return root


def small_budget(monkeypatch, frame_bytes: int) -> None:
    """Chunks of 4 frames, float32 groups of 1 frame (5 uint8 frames fit the budget, not 2 float32 ones)."""
    monkeypatch.setattr(video_module, "CHUNK_BUDGET", 5 * frame_bytes)


# -- equal to the whole-clip computation -----------------------------------------------------------


@pytest.mark.parametrize("budget", ["default", "small"])
@pytest.mark.parametrize("resolution", [32, 48, 80])     # shrunk, used as is, enlarged
def test_preload_frames_equals_the_whole_clip(small, monkeypatch, budget, resolution):
    from imac.training.windows import preload_frames

    whole = tensor_to_frames(frames_to_tensor(read_video(small), resolution))
    if budget == "small":
        small_budget(monkeypatch, 48 * 64 * 3)
    preloaded = preload_frames(SimpleNamespace(video=small), resolution)
    assert preloaded.dtype == np.uint8 and preloaded.shape == (21, resolution, resolution, 3)
    np.testing.assert_array_equal(preloaded, whole)


@pytest.mark.parametrize("budget", ["default", "small"])
def test_read_frames_of_a_window_equals_the_whole_clip(small, monkeypatch, budget):
    from imac.training.windows import TrainingWindows

    frames = read_video(small)
    if budget == "small":
        monkeypatch.setattr(video_module, "CHUNK_BUDGET", 3 * frames[0].nbytes)    # reads of 2 frames
    windows = SimpleNamespace(resolution=32)
    clip = SimpleNamespace(frames=None, record=SimpleNamespace(video=small))
    for start, stop in ((0, 16), (3, 10), (5, 21), (20, 21), (7, 7)):
        got = TrainingWindows.read_frames(windows, clip, start, stop)
        assert torch.equal(got, frames_to_tensor(frames[start:stop], 32)), (start, stop)
    with pytest.raises(ValueError, match=r"clip.mp4: frames 15..25 not all decodable"):
        TrainingWindows.read_frames(windows, clip, 15, 25)
    with pytest.raises(ValueError, match="beyond the last frame"):
        TrainingWindows.read_frames(windows, clip, 30, 40)


@pytest.mark.parametrize("budget", ["default", "small"])
def test_load_split_frames_equals_the_whole_clips(corpus, monkeypatch, budget):
    from imac.training.autoencoder import load_split_frames
    from metrics.dataset import Dataset

    records = Dataset.open(corpus, level="files").split("train")
    whole = torch.cat([frames_to_tensor(read_video(record.video), 32) for record in records])
    if budget == "small":
        small_budget(monkeypatch, 64 * 64 * 3)
    frames, clips = load_split_frames(corpus, "train", 32)
    assert clips == len(records) == 2
    assert torch.equal(frames, whole)


def _fake_encode(calls):
    def encode(vae, x, sample):
        calls.append(len(x))
        return x[:, :, ::4, ::4] * 1.5
    return encode


def _old_training_frames(context, options, encode):
    """MYA's ``load_training_frames`` as it was: the whole clip decoded, then resized."""
    from bench.baselines.pose_images import keypoints_to_square, render_pose_images

    latents, poses, starts, lengths, offset = [], [], [], [], 0
    for record in context.dataset().select("train", context.identities):
        frames = read_video(record.video)
        keypoints = record.load_keypoints()          # the dataset's, else the extractor's over the whole clip
        keypoints = (context.pose_extractor(frames) if keypoints is None else keypoints)[:len(frames)]
        frames = frames[:len(keypoints)]
        pixels = frames_to_tensor(frames, options.resolution)
        latents.append(torch.cat([encode(None, part, sample=False).float() for part in pixels.split(64)]))
        square = keypoints_to_square(keypoints, frames.shape[1], frames.shape[2], options.resolution)
        images = render_pose_images(square, options.resolution, options.resolution, options.score_threshold)
        poses.append(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
        starts.append(torch.full((len(frames),), offset))
        lengths.append(torch.full((len(frames),), len(frames)))
        offset += len(frames)
    return torch.cat(latents), torch.cat(poses), torch.cat(starts), torch.cat(lengths)


@pytest.mark.parametrize("keypoints", ["dataset", "extracted", "cut"])
def test_mya_training_frames_equal_the_whole_clips(corpus, tmp_path, monkeypatch, keypoints):
    """From the dataset's keypoint files, from the pose extractor (through the keypoint cache), and with
    keypoint files shorter than their clips (the frames are cut to them); chunks of 4 frames."""
    import bench.baselines.pose_guided_training as pgt
    from bench.baselines.pose_guided import MYAOptions
    from metrics.dataset import Dataset
    from metrics.pose.extraction import cached_keypoints, keypoint_cache
    from metrics.pose.toy import ToyMarkerPose

    records = Dataset.open(corpus, level="files").select("train", None)

    def load(record):
        if keypoints == "extracted":
            return lambda: None
        return (lambda: record.load_keypoints()[:-5]) if keypoints == "cut" else record.load_keypoints

    def context(cache):
        wrapped = [SimpleNamespace(video=r.video, label=r.label, fps=r.fps, load_keypoints=load(r)) for r in records]
        return SimpleNamespace(dataset=lambda: SimpleNamespace(select=lambda split, identities: wrapped),
                               identities=None, progress=False, pose_extractor=ToyMarkerPose(),
                               keypoint_cache=keypoint_cache(tmp_path / cache, "toy", "1"))

    options = MYAOptions(resolution=32)
    old_calls, calls = [], []
    old = _old_training_frames(context("old"), options, _fake_encode(old_calls))
    monkeypatch.setattr(pgt, "encode_latents", _fake_encode(calls))
    small_budget(monkeypatch, 64 * 64 * 3)
    new = pgt.load_training_frames(context("new"), options, None, torch.device("cpu"))
    for name, expected in zip(("latents", "poses", "clip_start", "clip_length"), old):
        assert torch.equal(getattr(new, name), expected), name
    assert new.clips == 2 and calls == old_calls             # the VAE's batches are the old ones
    if keypoints == "extracted":                             # extracted once and cached, as before
        for record in records:
            stored = cached_keypoints(keypoint_cache(tmp_path / "new", "toy", "1"), record.video, record.num_frames)
            np.testing.assert_array_equal(stored, ToyMarkerPose()(read_video(record.video)))


def _old_conform(frames, clip):
    """``conform_frames`` as it was: the whole clip resized in float32, then its length fitted."""
    changes = {}
    if frames.shape[1:3] != (clip.height, clip.width):
        changes["resized_from"] = [int(frames.shape[2]), int(frames.shape[1])]
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(clip.height, clip.width), mode="bilinear", align_corners=False, antialias=True)
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if len(frames) != clip.num_frames:
        changes["frames_generated"] = int(len(frames))
        if len(frames) > clip.num_frames:
            frames = frames[:clip.num_frames]
        else:
            frames = np.concatenate([frames, np.repeat(frames[-1:], clip.num_frames - len(frames), axis=0)])
    return frames, changes


@pytest.mark.parametrize("budget", ["default", "small"])
def test_conform_frames_equals_the_whole_clip(monkeypatch, budget):
    from bench.runner import conform_frames

    rng = np.random.default_rng(3)
    generated = rng.integers(0, 256, (9, 24, 32, 3), dtype=np.uint8)
    if budget == "small":
        monkeypatch.setattr(video_module, "CHUNK_BUDGET", 3 * 40 * 50 * 3 * 4)       # groups of 2 frames
    for height, width, num_frames in ((40, 50, 9), (40, 50, 5), (40, 50, 13), (12, 16, 9), (24, 32, 11),
                                      (24, 32, 4), (24, 32, 9), (40, 50, 1)):
        clip = SimpleNamespace(label="a/b", height=height, width=width, num_frames=num_frames)
        got, changes = conform_frames(generated, clip)
        expected, expected_changes = _old_conform(generated, clip)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert changes == expected_changes and list(changes) == list(expected_changes)


# -- the contact sheet ---------------------------------------------------------------------------------


def _old_contact_sheet(dataset, frames_per_row=6, split="test", scale=2, min_score=0.3):
    """``contact_sheet`` as it was (every tile the frame enlarged ``scale`` times)."""
    from bench.data.preview import _PART_COLOURS, _checked_keypoints, _labelled

    rows = []
    for identity in dataset.identities:
        clip = (dataset.by_identity(identity, split) or dataset.by_identity(identity))[0]
        picks = np.linspace(0, clip.num_frames - 1, frames_per_row).round().astype(int)
        keypoints = _checked_keypoints(clip)
        with clip.open_video() as video:
            frames = {i: frame for i, frame in enumerate(video) if i in set(picks)}
        tiles = []
        for index in picks:
            tile = Image.fromarray(frames[index]).resize((clip.width * scale, clip.height * scale), Image.NEAREST)
            if keypoints is not None:
                draw = ImageDraw.Draw(tile)
                for part, colour in _PART_COLOURS:
                    for x, y, score in keypoints[index, part.start:part.stop]:
                        if score >= min_score:
                            cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
                            draw.ellipse((cx - 1, cy - 1, cx + 1, cy + 1), outline=(0, 0, 0), fill=colour)
            tiles.append(np.asarray(tile))
        caption = (f"{identity} | {clip.clip_id} ({clip.split}, {clip.num_frames / clip.fps:.1f} s) | "
                   f"frames {', '.join(str(int(i)) for i in picks)}")
        rows.append(_labelled(np.concatenate(tiles, axis=1), caption))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)


def test_the_toy_corpus_contact_sheet_is_unchanged(corpus):
    from bench.data.preview import contact_sheet
    from metrics.dataset import Dataset

    dataset = Dataset.open(corpus, level="files")
    for frames_per_row, scale in ((6, 2), (3, 1), (24, 2), (5, 3)):
        sheet = np.asarray(contact_sheet(dataset, frames_per_row=frames_per_row, scale=scale))
        np.testing.assert_array_equal(sheet, _old_contact_sheet(dataset, frames_per_row, scale=scale))
        assert ((sheet == (255, 80, 80)).all(-1)).any()       # the keypoints are drawn


def test_large_frames_make_tiles_of_a_bounded_size(tmp_path):
    """Frames over TILE_SIDE px are enlarged fewer times (whole times) or shrunk (INTER_AREA); the keypoints
    are drawn where the frame's point went."""
    import cv2

    from bench.data.preview import TILE_SIDE, _tile_size, contact_sheet
    from metrics.io.video import VideoReader

    assert _tile_size(64, 64, 2) == (128, 128, True) and _tile_size(128, 96, 2) == (256, 192, True)
    assert _tile_size(200, 100, 2) == (200, 100, True) and _tile_size(100, 60, 3) == (300, 180, True)
    assert _tile_size(150, 100, 3) == (300, 200, True)                 # twice: 3 times is over 384 px
    assert _tile_size(1024, 768, 2) == (256, 192, False) and _tile_size(4096, 4096, 2) == (256, 256, False)
    assert TILE_SIDE * 2 == 256
    frame = np.zeros((384, 512, 3), np.uint8)
    frame[:, 256:] = 200
    path = tmp_path / "large.mp4"
    write_video(path, [frame] * 4, 25)
    keypoints = np.zeros((4, 133, 3), np.float32)
    keypoints[:, 91] = (255.5, 127.5, 1.0)                   # a left-hand point: drawn in (255, 80, 80)
    clip = SimpleNamespace(num_frames=4, width=512, height=384, fps=25.0, split="test", clip_id="c", video=path,
                           open_video=lambda: VideoReader(path), load_keypoints=lambda: keypoints)
    dataset = SimpleNamespace(identities=["a"], by_identity=lambda identity, split=None: [clip])
    sheet = np.asarray(contact_sheet(dataset, frames_per_row=2))
    assert sheet.shape == (192, 2 * 256, 3)
    tile = sheet[20:, 256:]                                  # below the caption, the second tile
    shrunk = cv2.resize(read_video(path)[3], (256, 192), interpolation=cv2.INTER_AREA)[20:]
    red = (tile == (255, 80, 80)).all(-1)
    ys, xs = np.nonzero(red)
    assert red.any() and abs(xs.mean() - 128) <= 1 and abs(ys.mean() + 20 - 64) <= 1   # (256, 128) / 2
    away = np.ones(tile.shape[:2], bool)
    away[40:90, 110:150] = False
    np.testing.assert_array_equal(tile[away], shrunk[away])


# -- bounded memory --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """48 frames of 2048 x 2048 (some 40 KB on disk)."""
    path = tmp_path_factory.mktemp("large") / "large.mp4"
    frame = np.full((SIDE, SIDE, 3), 128, np.uint8)
    frame[: SIDE // 2, : SIDE // 2] = (200, 40, 40)
    write_video(path, (frame for _ in range(FRAMES)), 25, preset="ultrafast")
    return path


MEASURED = {
    "preload_frames": """
        from imac.training.windows import preload_frames
        before = peak()
        out = preload_frames(SimpleNamespace(video=path), 64)
        """,
    "read_frames": """
        from imac.training.windows import TrainingWindows
        clip = SimpleNamespace(frames=None, record=SimpleNamespace(video=path))
        before = peak()
        out = TrainingWindows.read_frames(SimpleNamespace(resolution=64), clip, 20, 36)
        """,
    "conform_frames": """
        from bench.runner import conform_frames
        frames = np.random.default_rng(0).integers(0, 256, (16, 128, 128, 3), dtype=np.uint8)
        clip = SimpleNamespace(label="a/b", height=2048, width=2048, num_frames=16)
        before = peak()
        out = conform_frames(frames, clip)[0]
        """,
}


@pytest.mark.parametrize("name", list(MEASURED))
def test_large_frames_stay_within_the_budget(large, name):
    """The child's peak resident memory grows by less than two chunks and a margin. Measured before
    (64 frames for preload): preload_frames 4.0 GB, read_frames 1.0 GB, conform_frames 2.3 GB (16 frames
    of 2048 x 2048 are 192 MiB of uint8 output)."""
    script = PEAK + textwrap.dedent("""
        import json, sys
        from types import SimpleNamespace
        import numpy as np
        path = sys.argv[1]
        """) + textwrap.dedent(MEASURED[name]) + textwrap.dedent("""
        print(json.dumps({"growth": peak() - before, "shape": list(out.shape)}))
        """)
    run = subprocess.run([sys.executable, "-c", script, str(large)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["shape"] == {"preload_frames": [FRAMES, 64, 64, 3], "read_frames": [16, 3, 64, 64],
                                 "conform_frames": [16, SIDE, SIDE, 3]}[name]
    assert measured["growth"] < BOUND, (f"{name}: peak memory grew by {measured['growth'] / MiB:.0f} MiB; "
                                        f"bound {BOUND / MiB:.0f} MiB")
