"""PSNR, SSIM, LPIPS, FID and CSIM read a clip a chunk at a time (``ClipInputs.frame_chunks`` and
``truth_chunks``), not as whole arrays.

Before, the evaluator decoded the generated clip whole and the real clip whole (resized to the generated
size) for them: two copies of every frame, F x H x W x 3 bytes each, whatever the video's length. The
per-frame values must be those of the whole-clip computation, written out here with scikit-image and
numpy directly, whatever the chunk size; and a child process's memory grows by less than one clip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import metrics.evaluate as evaluate_module
import metrics.io.video as video_module
from metrics.dataset import find_clips
from metrics.evaluate import Evaluator
from metrics.frame_quality import csim_chunks, csim_clip, paired_chunks
from metrics.io.video import read_video, write_video
from metrics.protocol import Protocol
from memory_measure import PEAK

MiB = 1 << 20


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A real clip of 23 frames at 96 x 80 and a generated one of 21 frames at 48 x 40 (the real one is
    resized to it, as ``--allow-mismatch frame_size`` lets it), noise with some structure."""
    root = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (23, 10, 12, 3), dtype=np.uint8).repeat(8, axis=1).repeat(8, axis=2)
    write_video(root / "real" / "a" / "c1.mp4", base, 25, crf=0)
    small = base[:21, ::2, ::2]
    noisy = np.clip(small.astype(int) + rng.integers(-25, 26, small.shape), 0, 255).astype(np.uint8)
    write_video(root / "fake" / "a" / "c1.mp4", noisy, 25, crf=0)
    return root


def direct_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0 ** 2 / mse))


@pytest.fixture(scope="module")
def evaluator():
    """PSNR, SSIM and FID* (the stand-in Inception) on every 5th frame: frames 0, 5, 10, ... of the clip,
    whichever chunk they fall in."""
    return Evaluator.load(("psnr", "ssim", "fid"), Protocol(fid_frame_stride=5), cache_dir=None)


@pytest.mark.parametrize("chunk_frames", [64, 4, 1])
def test_psnr_ssim_and_fid_over_chunks_equal_the_whole_clip(folders, evaluator, monkeypatch, chunk_frames):
    import cv2

    monkeypatch.setattr(evaluate_module, "CHUNK_FRAMES", chunk_frames)
    real, fake = find_clips(folders / "real", split=None)[0], find_clips(folders / "fake", split=None)[0]
    values = evaluator.clip_metric_values(fake, "fake", real, None, 25.0, (48, 40))
    frames = read_video(fake.video)
    truth = np.stack([cv2.resize(f, (48, 40), interpolation=cv2.INTER_AREA) for f in read_video(real.video)])
    count = min(len(frames), len(truth))
    assert count == 21
    np.testing.assert_allclose(values["psnr_ssim"]["psnr"], [direct_psnr(frames[t], truth[t]) for t in range(count)],
                               rtol=1e-12)
    ssim = [structural_similarity(truth[t], frames[t], data_range=255, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, channel_axis=-1) for t in range(count)]
    np.testing.assert_allclose(values["psnr_ssim"]["ssim"], ssim, rtol=1e-12)
    features = evaluator.clip_metrics["fid"].features
    np.testing.assert_allclose(values["fid"]["features"], features(frames[::5]).astype(np.float32), rtol=1e-4,
                               atol=1e-5)
    # the real side: its own values at the maxima, over all of its frames
    own = evaluator.clip_metric_values(real, "real", None, None, 25.0, (96, 80))
    assert own["psnr_ssim"]["psnr"].shape == (23,) and (own["psnr_ssim"]["ssim"] == 1).all()


def test_paired_chunks_align_frame_t_with_frame_t_whatever_the_chunking():
    a = np.arange(11)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    b = a[:9] + 100
    streams = ([a[:3], a[3:4], a[4:11]], [b[:5], b[5:9]])
    pairs = list(paired_chunks(*streams))
    assert sum(len(x) for x, _ in pairs) == 9
    for x, y in pairs:
        np.testing.assert_array_equal(y, x + 100)


class NearestColour:
    """A stand-in face embedder: a frame's mean colour, None (no face) when the frame is dark."""

    def embed(self, image):
        mean = image.reshape(-1, 3).mean(axis=0)
        return None if mean.sum() < 60 else mean + 1.0


@pytest.mark.parametrize("stride", [1, 3])
def test_csim_over_chunks_equals_the_whole_clip(stride):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (17, 8, 8, 3), dtype=np.uint8)
    frames[[2, 9]] = 5                                        # no face in frames 2 and 9
    reference = frames[0]
    whole = csim_clip(frames, reference, NearestColour(), stride)
    chunked = csim_chunks([frames[:4], frames[4:5], frames[5:]], reference, NearestColour(), stride)
    anchor = NearestColour().embed(reference)
    expected = np.full(17, np.nan)
    for t in range(0, 17, stride):                             # written out: every stride-th frame from frame 0
        vector = NearestColour().embed(frames[t])
        if vector is not None:
            expected[t] = anchor @ vector / np.linalg.norm(anchor) / np.linalg.norm(vector)
    np.testing.assert_allclose(chunked.per_frame, expected, rtol=1e-12)
    np.testing.assert_allclose(whole.per_frame, expected, rtol=1e-12)
    assert chunked.frames_without_face == whole.frames_without_face == int(sum(t in (2, 9) for t in
                                                                               range(0, 17, stride)))


def test_psnr_and_ssim_of_a_long_clip_hold_less_than_one_clip(tmp_path):
    """120 frames of 512 x 512 (90 MiB a clip, decoded): the child's peak memory grows by less than one
    clip while PSNR and SSIM run on a generated clip against its real one, with 8 MiB chunks. Before, the
    evaluator held both clips whole (at least 180 MiB)."""
    side, count = 512, 120
    frame = np.full((side, side, 3), 128, np.uint8)
    frame[: side // 2, : side // 2] = (200, 40, 40)
    for name, shift in (("real", 0), ("fake", 9)):
        write_video(tmp_path / name / "a" / "c1.mp4", (np.roll(frame, shift + t % 7, axis=1) for t in range(count)),
                    25, preset="ultrafast")
    clip_bytes = count * side * side * 3
    script = PEAK + textwrap.dedent("""
        import json, sys
        from pathlib import Path
        import skimage.metrics  # noqa: F401 (imported before the measure)
        import metrics.io.video as video
        video.CHUNK_BUDGET = 8 << 20
        from metrics.dataset import find_clips
        from metrics.evaluate import Evaluator
        from metrics.protocol import Protocol
        root = Path(sys.argv[1])
        real, fake = find_clips(root / "real", split=None)[0], find_clips(root / "fake", split=None)[0]
        evaluator = Evaluator.load(("psnr", "ssim"), Protocol(), cache_dir=None)
        real.first_frame()
        before = peak()
        values = evaluator.clip_metric_values(fake, "fake", real, None, 25.0, (512, 512))
        print(json.dumps({"growth": peak() - before, "frames": len(values["psnr_ssim"]["psnr"])}))
        """)
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["frames"] == count
    assert measured["growth"] < clip_bytes, (f"peak memory grew by {measured['growth'] / MiB:.0f} MiB; one clip is "
                                             f"{clip_bytes / MiB:.0f} MiB")
    assert video_module.CHUNK_BUDGET == 256 * MiB          # (the child's setting stayed in the child)
