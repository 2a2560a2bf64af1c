"""Decoding chunks are bounded in bytes, not only in frames (``metrics.io.video.CHUNK_BUDGET``).

A small file can hold very large frames (72 KB of 4096 x 4096 gray frames): 64 such frames decoded at
once took 7.5 GB. A chunk now holds at most ``CHUNK_BUDGET`` bytes of frames, and the chunk size
changes no computed number: the frames, and the keypoints extracted from them, are those of one
whole-video read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from metrics.io.video import CHUNK_BUDGET, CHUNK_FRAMES, VideoReader, chunk_frames, read_video, write_video
from metrics.pose.extraction import video_keypoints
from metrics.pose.toy import ToyMarkerPose
from memory_measure import PEAK

MiB = 1 << 20
SIDE, FRAMES = 2048, 48          # 12 MiB a frame: 576 MiB for the 48 frames, 16 frames (192 MiB) a chunk
# Peak growth allowed while decoding: two chunks (the one the caller holds, the one being filled)
# plus a margin for the decoder's own frame buffers (x264 with threads) and the RGB conversion.
MARGIN = 256 * MiB
BOUND = 2 * CHUNK_BUDGET + MARGIN


def test_chunk_frames_is_bounded_by_bytes_and_unchanged_at_normal_sizes():
    assert chunk_frames(64 * 64 * 3) == CHUNK_FRAMES == 64        # the toy corpus: unchanged
    assert chunk_frames(1280 * 720 * 3) == 64
    assert chunk_frames(1920 * 1080 * 3) == 32                      # a power of two (DWPose's batches of 8)
    assert chunk_frames(4096 * 4096 * 3) == 4
    assert chunk_frames(16384 * 16384 * 3) == 1                     # one frame, even above the budget
    assert chunk_frames(10, most=7) == 7
    for frame_bytes in (1, 3 * MiB, 5 * MiB, 7 * MiB, 13 * MiB, 100 * MiB, 300 * MiB):
        n = chunk_frames(frame_bytes)
        assert 1 <= n <= 64 and n & (n - 1) == 0
        assert n == 1 or n * frame_bytes <= CHUNK_BUDGET
    with pytest.raises(ValueError):
        chunk_frames(100, most=0)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("small") / "clip.mp4"
    write_video(path, rng.integers(0, 256, (21, 48, 64, 3), dtype=np.uint8), 25)
    return path


@pytest.mark.parametrize("frames_per_chunk", [1, 2, 4, 8, 64])
def test_chunked_frames_equal_the_whole_video(small, frames_per_chunk):
    whole = read_video(small)
    with VideoReader(small) as reader:
        chunks = list(reader.iter_chunks(64, budget=frames_per_chunk * whole[0].nbytes))
    sizes = [len(chunk) for chunk in chunks]
    assert sizes[:-1] == [min(frames_per_chunk, 21)] * (len(sizes) - 1) and sum(sizes) == 21
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_a_small_budget_changes_no_keypoint(tmp_path, monkeypatch):
    from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
    from metrics.dataset import find_clips
    import metrics.io.video as video_module

    data = tmp_path / "toy"
    generate_toy_corpus(data, ToyCorpusConfig(seed=2, identities=1, clips=2, test_clips=1, size=64), progress=False)
    clip = find_clips(data, split=None)[0].video
    whole = ToyMarkerPose()(read_video(clip)).astype(np.float32)
    sizes = []

    class Recording(ToyMarkerPose):
        def __call__(self, frames):
            sizes.append(len(frames))
            return super().__call__(frames)

    default, _ = video_keypoints(clip, Recording())
    assert set(sizes[:-1]) == {64} or len(sizes) == 1
    sizes.clear()
    monkeypatch.setattr(video_module, "CHUNK_BUDGET", 3 * 64 * 64 * 3)   # 3 frames fit: chunks of 2
    chunked, _ = video_keypoints(clip, Recording())
    assert set(sizes[:-1]) == {2}
    np.testing.assert_array_equal(default, whole)
    np.testing.assert_array_equal(chunked, whole)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """48 frames of 2048 x 2048 (a few hundred KB on disk)."""
    folder = tmp_path_factory.mktemp("large") / "fake"
    path = folder / "ines" / "ines_002.mp4"
    path.parent.mkdir(parents=True)
    frame = np.full((SIDE, SIDE, 3), 128, np.uint8)
    frame[: SIDE // 2, : SIDE // 2] = (200, 40, 40)
    write_video(path, (frame for _ in range(FRAMES)), 25, preset="ultrafast")
    return folder, path


def _measuring(code: str) -> str:
    """A script that runs ``code`` (which sets ``decoded``) after its imports and prints the growth of
    its peak resident memory (``memory_measure.PEAK``) over the peak before ``code``, in bytes."""
    script = PEAK + textwrap.dedent("""
        import json, sys
        import numpy as np
        from metrics.dataset import find_clips
        from metrics.evaluate import Evaluator
        from metrics.pose.extraction import video_keypoints
        from metrics.protocol import Protocol

        class Zeros:          # a pose extractor that only counts: the decoding is what is measured
            extractor_id = "zeros"
            def __call__(self, frames):
                return np.zeros((len(frames), 133, 3), np.float32)

        folder, path = sys.argv[1], sys.argv[2]
        before = peak()
        """) + textwrap.dedent(code) + textwrap.dedent("""
        after = peak()
        print(json.dumps({"growth": after - before, "decoded": decoded}))
        """)
    return script


@pytest.mark.parametrize("path_name", ["video_keypoints", "Evaluator.decode"])
def test_decoding_large_frames_stays_within_the_budget(large, path_name):
    folder, path = large
    code = {
        "video_keypoints": "decoded = len(video_keypoints(path, Zeros())[0])",
        "Evaluator.decode": """
            clip = find_clips(folder, split=None)[0]
            decoded = len(Evaluator(("bas",), Protocol(), extractor=Zeros()).decode(clip)[0])
            """,
    }[path_name]
    run = subprocess.run([sys.executable, "-c", _measuring(code), str(folder), str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["decoded"] == FRAMES
    # the old 64-frame chunks held all 48 frames at once, twice (a list, then np.stack): > 1.1 GiB
    assert measured["growth"] < BOUND, (f"{path_name}: peak memory grew by {measured['growth'] / MiB:.0f} MiB "
                                        f"decoding {FRAMES} frames of {SIDE}x{SIDE}; bound {BOUND / MiB:.0f} MiB")


class RecordingFeatures:
    """An FVD extractor stand-in (the interface ``metrics.fvd`` documents) that records what each
    call is given; its feature of a clip is the clip's mean level per frame, so each clip's feature
    is independent of the batch it arrives in."""

    feature_id, is_pretrained, batch_size = "recording", False, 8

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []     # (clips, bytes) per call

    def __call__(self, videos: np.ndarray) -> np.ndarray:
        self.calls.append((len(videos), videos.nbytes))
        return videos.reshape(videos.shape[0], videos.shape[1], -1).mean(axis=2, dtype=np.float64)


@pytest.mark.parametrize("side", [16, 64])
def test_fvd_batches_are_bounded_in_bytes(monkeypatch, side):
    """FVD stacked 8 raw clips per network call whatever the frame size (128 frames of 4096 x 4096
    are 6.4 GB, twice over); a call now holds at most CHUNK_BUDGET bytes of frames or one clip, and
    every clip is still scored once, in order."""
    from metrics.fvd import FVD

    frame_bytes = side * side * 3
    budget = 3 * 16 * frame_bytes                     # room for 3 clips of 16 frames: batches of 2
    monkeypatch.setattr("metrics.io.video.CHUNK_BUDGET", budget)
    rng = np.random.default_rng(side)
    video = rng.integers(0, 256, (21 * 16 + 5, side, side, 3), dtype=np.uint8)   # 21 clips, 5 left over
    features = RecordingFeatures()
    stats = FVD(features).video_statistics((video[i : i + 10] for i in range(0, len(video), 10)), "v")
    assert [n for n, _ in features.calls] == [2] * 10 + [1]
    assert all(nbytes <= budget for _, nbytes in features.calls)
    # against a direct loop over the 21 clips
    direct = np.stack([video[16 * c : 16 * c + 16].reshape(16, -1).mean(axis=1) for c in range(21)])
    assert stats.count == 21
    np.testing.assert_allclose(stats.total, direct.sum(axis=0), rtol=1e-12)


def test_fvd_batches_are_unchanged_at_normal_sizes():
    from metrics.fvd import FVD

    features = RecordingFeatures()
    video = np.zeros((20 * 16, 128, 128, 3), np.uint8)
    FVD(features).video_statistics([video[:64], video[64:]], "v")
    assert [n for n, _ in features.calls] == [8, 8, 4]


class _Recording(torch.nn.Module):
    """A feature network stand-in: records the batch sizes it is given; its output for a frame is the
    frame's mean (per pair: the mean absolute difference), so each value is independent of its batch."""

    net = "alex"

    def __init__(self, width: int = 0) -> None:
        super().__init__()
        self.width, self.batches = width, []

    def forward(self, x, y=None):
        self.batches.append(len(x))
        if y is None:
            return x.mean(dim=(1, 2, 3))[:, None].repeat(1, self.width)
        return (x - y).abs().mean(dim=(1, 2, 3))


def test_fid_and_lpips_batches_are_bounded_in_bytes(monkeypatch):
    """FID's Inception and LPIPS take full-size frames (FID resizes inside the network, LPIPS not at
    all): their batches (16 frames, 8 pairs) are now cut to CHUNK_BUDGET bytes of float32 input, and
    every frame's value is unchanged and in place."""
    from metrics.inception import FEATURE_DIM, InceptionFeatures
    from metrics.lpips import LPIPSDistance

    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    truth = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    float_bytes = 32 * 32 * 3 * 4
    direct = frames.reshape(20, -1).mean(axis=1) / 255.0
    direct_pairs = np.abs(frames.astype(float) - truth).reshape(20, -1).mean(axis=1) / 255.0 * 2
    for budget, fid_batch, lpips_batch in ((1 << 30, 16, 8), (5 * float_bytes, 4, 2)):
        monkeypatch.setattr("metrics.io.video.CHUNK_BUDGET", budget)
        fid = InceptionFeatures(_Recording(FEATURE_DIM), feature_id="recording", is_pretrained=False)
        np.testing.assert_allclose(fid(frames)[:, 0], direct, rtol=1e-6)
        assert max(fid.network.batches) == fid_batch and sum(fid.network.batches) == 20
        lpips = LPIPSDistance(_Recording(), weights_id="recording", is_pretrained=False)
        np.testing.assert_allclose(lpips(frames, truth), direct_pairs, rtol=1e-5)
        assert max(lpips.network.batches) == lpips_batch and sum(lpips.network.batches) == 20


def test_i3d_preprocessing_converts_large_frames_a_group_at_a_time(monkeypatch):
    """preprocess converted a whole batch of clips to float32 before resizing (16 frames of 4096 x 4096:
    3.2 GB); now a group of frames at a time within CHUNK_BUDGET, with the same result whatever the
    grouping (each frame resizes alone), and bounded memory (a child process, 32 frames of 2048 x 2048:
    the old code grew by their 1.6 GB of float32)."""
    import metrics.io.video as video_module
    from metrics.i3d import preprocess

    rng = np.random.default_rng(4)
    clips = rng.integers(0, 256, (2, 9, 60, 84, 3), dtype=np.uint8)
    whole = {resize: preprocess(clips, resize=resize) for resize in ("stretch", "shorter-side-crop")}
    monkeypatch.setattr(video_module, "CHUNK_BUDGET", 3 * 60 * 84 * 3 * 4)       # groups of 2 frames
    for resize, expected in whole.items():
        assert torch.equal(preprocess(clips, resize=resize), expected)
    script = PEAK + textwrap.dedent("""
        import json
        import numpy as np
        from metrics.i3d import preprocess
        clips = np.full((2, 16, 2048, 2048, 3), 7, np.uint8)
        before = peak()
        out = preprocess(clips)
        after = peak()
        print(json.dumps({"growth": after - before, "shape": list(out.shape)}))
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["shape"] == [2, 3, 16, 224, 224]
    assert measured["growth"] < 2 * CHUNK_BUDGET + MARGIN, measured["growth"] / MiB
