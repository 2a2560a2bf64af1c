"""metrics.pose.extraction: one way to read a video's keypoints through the run's cache, for the scorer,
the FGD autoencoder's training, the S2G/MYA reimplementations' training data and the report's plots."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from metrics.io.files import save_npz_atomic
from metrics.io.video import read_video, write_video
from metrics.pose.extraction import cached_keypoints, check_frame_count, keypoint_cache, video_keypoints
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol


class Counting(ToyMarkerPose):
    def __init__(self):
        super().__init__()
        self.frames = 0

    def __call__(self, frames):
        self.frames += len(frames)
        return super().__call__(frames)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
    from metrics.dataset import find_clips

    data = tmp_path_factory.mktemp("toy") / "toy"
    generate_toy_corpus(data, ToyCorpusConfig(seed=3, identities=1, clips=2, test_clips=1, size=64), progress=False)
    return find_clips(data, split="train")[0]


def test_extraction_equals_the_extractor_on_the_whole_video_and_is_read_back(video, tmp_path):
    frames = read_video(video.video)
    direct = ToyMarkerPose()(frames).astype(np.float32)            # one call over every decoded frame
    cache = keypoint_cache(tmp_path, "toy-markers-v1", Protocol().version)
    extractor = Counting()
    first, fps = video_keypoints(video.video, extractor, cache)
    again, _ = video_keypoints(video.video, extractor, cache)
    np.testing.assert_array_equal(first, direct)
    np.testing.assert_array_equal(again, direct)
    assert extractor.frames == len(frames) and fps == pytest.approx(video.fps)   # the second read is the cache's


@pytest.mark.parametrize("damage", ["layout", "short", "nan", "text"])
def test_a_damaged_entry_is_extracted_again(video, tmp_path, caplog, damage):
    cache = keypoint_cache(tmp_path, "toy-markers-v1", Protocol().version)
    stored, _ = video_keypoints(video.video, ToyMarkerPose(), cache)
    nan = stored.copy()
    nan[2, 5, 0] = np.nan
    damaged = {"layout": np.zeros((len(stored), 17, 3), np.float32), "short": stored[:-3], "nan": nan,
               "text": np.array(["x"] * stored.size).reshape(stored.shape)}[damage]
    save_npz_atomic(cache.path_for(video.video), keypoints=damaged, fps=np.array(25.0))
    extractor = Counting()
    with caplog.at_level(logging.WARNING):
        again, _ = video_keypoints(video.video, extractor, cache)
    assert extractor.frames == len(stored) and "cached keypoints ignored" in caplog.text
    np.testing.assert_array_equal(again, stored)
    assert cached_keypoints(cache, video.video, len(stored)) is not None      # and stored whole again


def test_a_truncated_video_is_refused_naming_it(video, tmp_path):
    """A file cut short whose index (moved to the front) still declares every frame: fewer decode."""
    import av

    from bench.baselines.pose_guided_training import clip_pixels
    from bench.methods.base import BenchContext
    from metrics.io.video import probe_video

    frames = read_video(video.video)
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    data = whole.read_bytes()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    decoded, declared = len(read_video(truncated)), probe_video(truncated).num_frames
    assert 0 < decoded < declared
    message = rf"cut.mp4: decoded {decoded} frames, the container says {declared}: truncated or corrupt file"
    cache = keypoint_cache(tmp_path / "c", "toy", "1")
    with pytest.raises(ValueError, match=message):
        video_keypoints(truncated, ToyMarkerPose(), cache)
    record = SimpleNamespace(load_keypoints=lambda: None, video=truncated, label="x/cut", fps=25.0)
    context = BenchContext(data_root=tmp_path, work_dir=tmp_path / "w", pose_extractor=ToyMarkerPose(),
                           keypoint_cache=cache)
    with pytest.raises(ValueError, match=message):        # MYA's training data: the same refusal
        clip_pixels(context, record, 32)
    assert not any((tmp_path / "c").rglob("*.npz"))          # nothing of the short read is cached
    with pytest.raises(ValueError, match="v.mp4: no frames"):
        check_frame_count("v.mp4", 0, 0)


def test_the_baselines_training_data_reads_what_the_autoencoders_training_extracted(video, tmp_path):
    """A dataset without keypoint files: S2G's and MYA's training data take the keypoints the run's cache
    holds (the FGD autoencoder's training and the scoring extract into it) instead of extracting again."""
    from bench.baselines.keypoint_data import clip_keypoints as motion_keypoints
    from bench.baselines.pose_guided_training import clip_pixels
    from bench.methods.base import BenchContext

    cache = keypoint_cache(tmp_path / "cache", "toy-markers-v1", Protocol().version)
    expected, _ = video_keypoints(video.video, ToyMarkerPose(), cache)
    record = SimpleNamespace(load_keypoints=lambda: None, video=video.video, label=video.label, fps=video.fps,
                             num_frames=video.num_frames)
    extractor = Counting()
    context = BenchContext(data_root=tmp_path, work_dir=tmp_path / "work", pose_extractor=extractor,
                           keypoint_cache=cache)
    np.testing.assert_array_equal(motion_keypoints(context, record), expected)
    np.testing.assert_array_equal(clip_pixels(context, record, 32)[1], expected)
    assert extractor.frames == 0
    # without the run's cache they extract, and get the same keypoints
    alone = BenchContext(data_root=tmp_path, work_dir=tmp_path / "work", pose_extractor=extractor)
    np.testing.assert_array_equal(motion_keypoints(alone, record), expected)
    np.testing.assert_array_equal(clip_pixels(alone, record, 32)[1], expected)
    assert extractor.frames == 2 * len(expected)


def test_an_extractor_of_the_wrong_frame_count_fails_loudly(video, tmp_path):
    class Short(ToyMarkerPose):
        def __call__(self, frames):
            return super().__call__(frames)[:-1]

    frames = read_video(video.video)
    write_video(tmp_path / "v.mp4", frames, video.fps)
    with pytest.raises(ValueError, match=r"v.mp4: the pose extractor gave keypoints of shape \(\d+, 133, 3\)"):
        video_keypoints(tmp_path / "v.mp4", Short(), keypoint_cache(tmp_path / "c", "short", "1"))
    assert not any((tmp_path / "c").rglob("*.npz"))
