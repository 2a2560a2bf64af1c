"""Sampling: chunk schedule, output length for any audio length, model folder round trip, CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from imac.audio_features import load_hubert
from imac.cli import main
from imac.frames import NonFiniteError, frames_to_tensor
from imac.models.motion import smooth_over_time
from imac.models.system import ChunkSample
from imac.config import VideoConfig, kept_steps
from imac.models import system
from imac.models.video import (correlated_frame_noise, first_step_gain, motion_sampling_scheduler,
                               start_from_frame, video_sampling_scheduler)
from imac.pipeline import IMACPipeline, chunk_starts, motion_windows
from imac.training.trainer import build_stage_model
from metrics.io.audio import write_wav
from metrics.io.video import probe_video, read_video_audio
from tests.imac_fixtures import RESOLUTION, make_corpus, make_vae, tiny_config


@given(total=st.integers(1, 400), chunk=st.integers(2, 40))
def test_chunks_cover_every_frame_and_start_on_a_generated_frame(total, chunk):
    starts = chunk_starts(total, chunk)
    assert starts[0] == 0
    covered_until = min(chunk, total)
    for previous, start in zip(starts, starts[1:]):
        assert previous < start <= previous + chunk - 1      # the reference is the previous chunk's frame
        assert start <= covered_until - 1
        covered_until = start + chunk
    assert covered_until >= total
    if total >= chunk:
        assert starts[-1] + chunk == total                   # no frame beyond the audio
    with pytest.raises(ValueError):
        chunk_starts(total, 1)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("imac")
    config = tiny_config(make_corpus(root / "toy"), make_vae(root / "vae"), root / "run")
    torch.manual_seed(0)
    model = build_stage_model(config, "stage2", pose_dim=129, hubert_dim=16, normalization=None).eval()
    return IMACPipeline(config, model, load_hubert(tiny=True), "tiny-seed0", "stage2")


def reference_image():
    return torch.rand(3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(0)) * 2 - 1


def speech(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("seconds, rate", [(0.3, 16000), (1.0, 16000), (1.7, 22050)])
def test_output_has_duration_times_fps_frames(pipeline, seconds, rate):
    sample = pipeline(reference_image(), speech(seconds, rate), rate, generator=torch.Generator().manual_seed(0))
    expected = int(np.floor(seconds * 25 + 1e-6))
    assert sample.frames.shape == (expected, RESOLUTION, RESOLUTION, 3) and sample.frames.dtype == np.uint8
    assert sample.pose.shape == (expected, 129) and sample.expression.shape == (expected, 100)
    assert len(sample.audio) == int(round(seconds * 16000))  # resampled to 16 kHz when needed


def test_each_chunk_starts_from_the_last_frame_of_the_previous_one(pipeline, monkeypatch):
    pipeline = _with(pipeline, video__chunk_reference="last_frame", video__sample_strength=1.0)  # the paper's chunks
    references, counter = [], iter(range(1000))

    def fake_chunk(reference, motion_features, steps, guidance_scale, generator=None, scheduler=None, **kwargs):
        assert kwargs == {}                      # the paper's defaults: no anchor, no latent hand-over
        references.append(reference.clone())
        chunk = next(counter)
        frames = torch.arange(motion_features.shape[1], dtype=torch.float32)[:, None, None, None] / 100 + chunk
        return ChunkSample(frames.expand(-1, 3, RESOLUTION, RESOLUTION), torch.zeros(motion_features.shape[1], 4, 2, 2))

    monkeypatch.setattr(pipeline.model, "sample_chunk", fake_chunk)
    features = torch.zeros(1, 40, 8)
    video = pipeline.sample_video(reference_image()[None][0], features)
    starts = chunk_starts(40, 16)  # [0, 15, 24]
    assert starts == [0, 15, 24] and len(references) == 3
    torch.testing.assert_close(references[0][0], reference_image())
    for k, start in enumerate(starts[1:], start=1):
        torch.testing.assert_close(references[k][0], video[start])  # generated frame, kept as it was
    values = video[:, 0, 0, 0]
    # frames 0..15 from chunk 0, 16..24 from chunk 1 (offsets 1..9), 25..39 from chunk 2 (offsets 1..15)
    expected = [0 + f / 100 for f in range(16)] + [1 + f / 100 for f in range(1, 10)] + \
               [2 + f / 100 for f in range(1, 16)]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-6)


def test_a_stream_makes_each_chunk_when_it_is_read_with_the_frames_of_the_chunk_schedule(pipeline, monkeypatch):
    pipeline = _with(pipeline, video__chunk_reference="last_frame", video__sample_strength=1.0)
    made, counter = [], iter(range(1000))

    def fake_chunk(reference, motion_features, steps, guidance_scale, generator=None, scheduler=None, **kwargs):
        chunk = next(counter)
        made.append(chunk)
        frames = torch.arange(motion_features.shape[1], dtype=torch.float32)[:, None, None, None] / 100 + chunk
        return ChunkSample(frames.expand(-1, 3, RESOLUTION, RESOLUTION) - 0.5, torch.zeros(16, 4, 2, 2))

    monkeypatch.setattr(pipeline.model, "sample_chunk", fake_chunk)
    stream = pipeline.stream(reference_image(), speech(1.6), 16000, torch.Generator().manual_seed(0))
    assert stream.num_frames == 40 and made == []            # the motion is sampled, no video chunk yet
    sizes = []
    for chunk in stream.chunks:
        assert len(made) == len(sizes) + 1                    # one chunk made per chunk read
        sizes.append(len(chunk))
        assert chunk.dtype == np.uint8 and chunk.shape[1:] == (RESOLUTION, RESOLUTION, 3)
        values = chunk[:, 0, 0, 0] if len(sizes) == 1 else np.concatenate([values, chunk[:, 0, 0, 0]])
    # chunk_starts(40, 16) = [0, 15, 24]: frames 0..15 of chunk 0, offsets 1..9 of chunk 1, 1..15 of chunk 2
    assert sizes == [16, 9, 15]
    levels = ([0 + f / 100 for f in range(16)] + [1 + f / 100 for f in range(1, 10)]
              + [2 + f / 100 for f in range(1, 16)])
    np.testing.assert_array_equal(values, [min(255, round((v - 0.5 + 1) * 127.5)) for v in levels])


def test_a_stream_gives_the_frames_of_a_whole_sample_with_the_same_draws(pipeline):
    audio = speech(2.2)                                       # 55 frames: four chunks, the last one early
    whole = pipeline(reference_image(), audio, 16000, torch.Generator().manual_seed(5))
    stream = pipeline.stream(reference_image(), audio, 16000, torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(whole.pose, stream.pose)
    np.testing.assert_array_equal(whole.frames, np.stack(list(stream.frames)))
    assert len(whole.frames) == stream.num_frames == 55


def test_a_chunk_of_nan_frames_is_refused_naming_it(pipeline, monkeypatch):
    # an fp16 overflow (or a sampler step on a negative rounding error) gives NaN latents: written as uint8
    # they were black frames without a word
    counter = iter(range(1000))

    def fake_chunk(reference, motion_features, steps, guidance_scale, generator=None, scheduler=None, **kwargs):
        frames = torch.zeros(motion_features.shape[1], 3, RESOLUTION, RESOLUTION)
        if next(counter) == 1:
            frames[3:5] = float("nan")
        return ChunkSample(frames, torch.zeros(motion_features.shape[1], 4, 2, 2))

    monkeypatch.setattr(pipeline.model, "sample_chunk", fake_chunk)
    nan = 2 * 3 * RESOLUTION * RESOLUTION
    with pytest.raises(NonFiniteError, match=rf"^IMAC's video chunk 2 of 3 \(frames 15 to 30; 4 steps, guidance 1.0, "
                                             rf"sampling precision no\): {nan} of {16 * nan // 2} values are NaN"):
        pipeline.sample_video(reference_image(), torch.zeros(1, 40, 8), steps=4, guidance_scale=1.0)


def _with(pipeline, **video):
    """The same model and weights, sampled with other ``video`` settings."""
    config = copy.deepcopy(pipeline.config)
    for key, value in video.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return IMACPipeline(config, pipeline.model, pipeline.hubert, pipeline.hubert_id, "stage2")


def test_anchored_chunks_keep_the_first_reference_for_the_encoder_and_clip(pipeline, monkeypatch):
    anchored = _with(pipeline, video__chunk_reference="anchored", video__sample_strength=1.0)  # 2 steps a chunk
    contexts, denoised = [], []
    real_context, real_denoise = anchored.model.video_context, anchored.model.denoise

    def spy_context(reference, generator=None):
        contexts.append(reference.clone())
        return real_context(reference, generator)

    def spy_denoise(noisy, timesteps, reference_latents, image_embedding, motion_features, scale, first=None):
        denoised.append((reference_latents.clone(), image_embedding.clone(), None if first is None else first.clone()))
        return real_denoise(noisy, timesteps, reference_latents, image_embedding, motion_features, scale, first)

    monkeypatch.setattr(anchored.model, "video_context", spy_context)
    monkeypatch.setattr(anchored.model, "denoise", spy_denoise)
    video = anchored.sample_video(reference_image(), torch.zeros(1, 40, pipeline.model.video_feature_width),
                                  torch.Generator().manual_seed(0), steps=2)
    assert len(contexts) == 1                                     # the original reference, once
    torch.testing.assert_close(contexts[0][0], reference_image())
    steps_per_chunk = 2
    first_chunk, later = denoised[0], denoised[steps_per_chunk:]
    assert first_chunk[2] is None and len(later) == 2 * steps_per_chunk
    for reference_latents, embedding, first in later:             # chunks 2 and 3
        torch.testing.assert_close(reference_latents, first_chunk[0])   # the anchor's latents
        torch.testing.assert_close(embedding, first_chunk[1])           # the anchor's CLIP embedding
        assert first is not None and not torch.allclose(first, first_chunk[0])   # the last frame's latent
    assert video.shape == (40, 3, RESOLUTION, RESOLUTION) and torch.isfinite(video).all()


def test_latent_handover_gives_the_next_chunk_the_last_latent(pipeline, monkeypatch):
    handover = _with(pipeline, video__handover="latent")
    calls = []
    real_chunk = handover.model.sample_chunk

    def spy_chunk(reference, motion_features, steps, guidance_scale, generator=None, **kwargs):
        sample = real_chunk(reference, motion_features, steps, guidance_scale, generator, **kwargs)
        calls.append((kwargs.get("first_frame_latents"), sample.latents))
        return sample

    monkeypatch.setattr(handover.model, "sample_chunk", spy_chunk)
    handover.sample_video(reference_image(), torch.zeros(1, 40, pipeline.model.video_feature_width),
                          torch.Generator().manual_seed(0), steps=2)
    starts = chunk_starts(40, 16)          # [0, 15, 24]
    assert calls[0][0] is None
    for k in (1, 2):                       # chunk k starts on frame starts[k]: the previous chunk's latent there
        torch.testing.assert_close(calls[k][0][0], calls[k - 1][1][starts[k] - starts[k - 1]])


@pytest.mark.parametrize("spacing, expected", [
    # Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps Are Flawed", Table 2 (1000
    # training steps, 10 sample steps; 1-indexed there, so trailing's 100 ... 1000 are 99 ... 999 here)
    ("leading", [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]),
    ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
])
def test_video_sample_spacing_sets_the_denoising_timesteps(pipeline, monkeypatch, spacing, expected):
    spaced = _with(pipeline, video__sample_spacing=spacing, video__sample_strength=1.0)
    seen, real_denoise = [], spaced.model.denoise

    def spy_denoise(noisy, timesteps, *args):
        seen.append(int(timesteps[0]))
        return real_denoise(noisy, timesteps, *args)

    monkeypatch.setattr(spaced.model, "denoise", spy_denoise)
    spaced.sample_video(reference_image(), torch.zeros(1, 16, pipeline.model.video_feature_width),
                        torch.Generator().manual_seed(0), steps=10)
    assert seen == expected
    assert pipeline.model.video_scheduler.config.timestep_spacing == "leading"   # training's own, untouched


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [2, 7, 10, 50])
@pytest.mark.parametrize("strength", [1.0, 0.75, 0.5, 0.3, 0.1])
def test_strength_keeps_the_steps_diffusers_image_to_image_keeps(spacing, steps, strength):
    scheduler = video_sampling_scheduler(VideoConfig(sample_spacing=spacing))
    scheduler.set_timesteps(steps)
    if int(steps * strength) < 1:
        with pytest.raises(ValueError, match=r"video.sample_strength .* keeps no step"):
            kept_steps(steps, strength)
        return
    # the reference: diffusers' own image-to-image pipeline's choice of timesteps for a strength
    expected, count = StableDiffusionImg2ImgPipeline.get_timesteps(SimpleNamespace(scheduler=scheduler), steps,
                                                                   strength, "cpu")
    frame, noise = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 5, 3, 3)
    _, timesteps = start_from_frame(scheduler, frame, noise, strength)
    assert timesteps.tolist() == expected.tolist() and kept_steps(steps, strength) == count


def test_start_from_frame_is_the_frame_on_every_frame_noised_to_the_first_kept_timestep():
    scheduler = video_sampling_scheduler(VideoConfig(sample_spacing="trailing"))
    scheduler.set_timesteps(10)
    frame, noise = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 5, 3, 3)
    start, timesteps = start_from_frame(scheduler, frame, noise, 0.5)
    assert timesteps.tolist() == [499, 399, 299, 199, 99]       # trailing's last 5 of 10 (Lin et al. 2024, Table 2)
    abar = float(scheduler.alphas_cumprod[499])
    for f in range(5):                                           # q(x_t | x_0): sqrt(abar) x_0 + sqrt(1 - abar) noise
        torch.testing.assert_close(start[:, :, f], abar ** 0.5 * frame + (1 - abar) ** 0.5 * noise[:, :, f])


@pytest.mark.parametrize("strength_from", ["reference", "first_frame"])
def test_chunks_at_a_strength_start_from_the_chosen_frame(pipeline, monkeypatch, strength_from):
    strong = _with(pipeline, video__chunk_reference="anchored", video__sample_strength=0.5,
                   video__strength_from=strength_from, video__sample_spacing="trailing")
    starts, denoised = [], []
    real_start, real_denoise = system.start_from_frame, strong.model.denoise

    def spy_start(scheduler, frame_latents, noise, strength):
        latents, timesteps = real_start(scheduler, frame_latents, noise, strength)
        starts.append((frame_latents.clone(), latents.clone()))
        return latents, timesteps

    def spy_denoise(noisy, timesteps, reference_latents, image_embedding, motion_features, scale, first=None):
        denoised.append((noisy.clone(), int(timesteps[0]), reference_latents.clone(),
                         None if first is None else first.clone()))
        return real_denoise(noisy, timesteps, reference_latents, image_embedding, motion_features, scale, first)

    monkeypatch.setattr(system, "start_from_frame", spy_start)
    monkeypatch.setattr(strong.model, "denoise", spy_denoise)
    video = strong.sample_video(reference_image(), torch.zeros(1, 40, pipeline.model.video_feature_width),
                                torch.Generator().manual_seed(0), steps=4, guidance_scale=1.0)
    assert len(starts) == 3 and [t for _, t, _, _ in denoised] == [499, 249] * 3   # trailing 999, 749, 499, 249
    for chunk, (frame, latents) in enumerate(starts):
        noisy, _, reference_latents, first = denoised[2 * chunk]
        torch.testing.assert_close(noisy, latents)               # the chunk's first step starts there
        chosen = reference_latents if strength_from == "reference" or first is None else first
        torch.testing.assert_close(frame, chosen)
    if strength_from == "reference":   # anchored: the original reference's latents in every chunk
        torch.testing.assert_close(starts[2][0], starts[0][0])
    else:                              # a later chunk's first frame: the previous chunk's last frame
        assert not torch.allclose(starts[2][0], starts[0][0])
    assert video.shape == (40, 3, RESOLUTION, RESOLUTION) and torch.isfinite(video).all()


@pytest.mark.parametrize("correlation", [0.25, 0.5, 0.9])
def test_correlated_frame_noise_has_the_asked_correlation_between_frames_and_unit_variance(correlation):
    generator = torch.Generator().manual_seed(0)
    independent, shared = torch.randn(1, 4, 3, 64, 64, generator=generator), torch.randn(1, 4, 1, 64, 64,
                                                                                         generator=generator)
    noise = correlated_frame_noise(independent, shared, correlation).numpy()
    frames = noise[0].transpose(1, 0, 2, 3).reshape(3, -1)          # (F, values)
    pearson = np.corrcoef(frames)                                   # numpy's, over 16,384 values a frame
    assert np.allclose(pearson[np.triu_indices(3, 1)], correlation, atol=0.03)
    assert np.allclose(frames.std(axis=1), 1.0, atol=0.02)


def test_correlated_frame_noise_at_its_ends_and_out_of_range():
    independent, shared = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 1, 2, 2)
    assert correlated_frame_noise(independent, shared, 0.0) is independent         # the paper's draw, untouched
    torch.testing.assert_close(correlated_frame_noise(independent, shared, 1.0), shared.expand_as(independent))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="noise correlation must be in"):
            correlated_frame_noise(independent, shared, bad)


def test_noise_correlation_starts_each_chunk_from_the_mixed_draw(pipeline, monkeypatch):
    seen = []
    real_denoise = pipeline.model.denoise

    def spy_denoise(noisy, *args, **kwargs):
        seen.append(noisy.clone())
        return real_denoise(noisy, *args, **kwargs)

    monkeypatch.setattr(pipeline.model, "denoise", spy_denoise)
    features = torch.zeros(1, 16, pipeline.model.video_feature_width)
    for correlation in (0.0, 1.0, 0.5):
        mixed = _with(pipeline, video__noise_correlation=correlation, video__sample_strength=1.0,
                      video__sample_spacing="trailing")
        mixed.sample_video(reference_image(), features, torch.Generator().manual_seed(3), steps=2,
                           guidance_scale=1.0)
    independent, shared_only, half = seen[0], seen[2], seen[4]          # each chunk's first step (2 steps a chunk)
    # the draws, in order: the context's VAE posterior sample, the frames' own noise, then the shared map
    generator = torch.Generator().manual_seed(3)
    pipeline.model.video_context(reference_image()[None], generator)
    own = torch.randn(independent.shape, generator=generator)
    shared = torch.randn((*independent.shape[:2], 1, *independent.shape[3:]), generator=generator)
    torch.testing.assert_close(independent, own)                         # 0: the draw of the paper, unchanged
    torch.testing.assert_close(shared_only, shared.expand_as(own))       # 1: one map on every frame
    torch.testing.assert_close(half, 0.5 ** 0.5 * (own + shared))


def test_guidance_zero_runs_the_unconditional_branch_alone(pipeline, monkeypatch):
    """g = 0 is u + 0 (c - u) = u: one UNet call a step, the same frames as the two-branch formula at a g
    too small to move u in float32, and not the conditional branch's (g = 1)."""
    batches = []
    real_denoise = pipeline.model.denoise

    def spy_denoise(noisy, *args, **kwargs):
        batches.append(noisy.shape[0])
        return real_denoise(noisy, *args, **kwargs)

    monkeypatch.setattr(pipeline.model, "denoise", spy_denoise)
    features = torch.randn(1, 16, pipeline.model.video_feature_width, generator=torch.Generator().manual_seed(4))

    def frames(guidance):
        batches.clear()
        return pipeline.model.sample_chunk(reference_image()[None], features, 2, guidance,
                                           torch.Generator().manual_seed(5)).frames

    alone = frames(0.0)
    assert batches == [1, 1]
    both = frames(1e-30)
    assert batches == [2, 2]
    torch.testing.assert_close(alone, both)
    assert (alone - frames(1.0)).abs().max() > 1e-3


def test_a_strength_that_keeps_no_step_is_refused_before_any_chunk(pipeline, monkeypatch):
    weak = _with(pipeline, video__sample_strength=0.05)
    monkeypatch.setattr(weak.model, "sample_chunk", lambda *a, **k: pytest.fail("sampled a chunk"))
    with pytest.raises(ValueError, match=r"video.sample_strength 0.05 keeps no step of 10 .* at least 0.1"):
        weak.sample_video(reference_image(), torch.zeros(1, 40, pipeline.model.video_feature_width), steps=10)


@given(total=st.integers(1, 300), window=st.integers(2, 90), overlap=st.integers(0, 89))
def test_motion_windows_cover_every_frame_once_as_new(total, window, overlap):
    if overlap >= window:
        with pytest.raises(ValueError):
            motion_windows(total, window, overlap)
        return
    windows = motion_windows(total, window, overlap)
    new = [f for start, stop, keep in windows for f in range(keep, stop)]
    assert new == list(range(total))                               # each frame new exactly once, in order
    for (start, stop, keep), previous in zip(windows[1:], windows):
        assert stop - start <= window and keep == previous[1]
        assert keep - start == min(overlap, previous[1] - previous[0])   # the given frames: the previous tail
    assert windows[0][0] == windows[0][2] == 0


def test_overlapping_motion_windows_continue_the_previous_tail(pipeline):
    overlapping = _with(pipeline, motion__window_overlap=20, stage1__motion_frames=40)
    rng = np.random.default_rng(0)
    mfcc = rng.standard_normal((100, 13)).astype(np.float32)
    hubert = rng.standard_normal((100, 16)).astype(np.float32)
    pose, expression, features = overlapping.sample_motion(mfcc, hubert, torch.Generator().manual_seed(0))
    assert pose.shape[:2] == expression.shape[:2] == features.shape[:2] == (1, 100)
    # a known prefix comes back exactly, and the rest is sampled: a direct call on a toy signal
    motion = overlapping.model.motion
    known = torch.linspace(-1, 1, 10)[None, :, None].expand(1, 10, 129 + 100).contiguous()
    scheduler = motion_sampling_scheduler(overlapping.config.motion)
    p, e = motion.sample(torch.from_numpy(mfcc[None, :30]), torch.from_numpy(hubert[None, :30]), scheduler, 3,
                         torch.Generator().manual_seed(0), known)
    torch.testing.assert_close(torch.cat([p, e], -1)[:, :10], known)
    assert not torch.allclose(p[:, 10:], known[:, :1, :129].expand(1, 20, 129))
    with pytest.raises(ValueError, match="does not fit"):
        motion.sample(torch.from_numpy(mfcc[None, :5]), torch.from_numpy(hubert[None, :5]), scheduler, 3, None, known)


def direct_gaussian_smoothing(x: np.ndarray, sigma: float) -> np.ndarray:
    """(F, D) smoothed over F by a direct loop: Gaussian weights out to round(4 sigma) frames, normalised,
    a frame beyond either end read as the end frame."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    out = np.zeros(x.shape, np.float64)
    for f in range(len(x)):
        for weight, offset in zip(weights, offsets):
            out[f] += weight * x[min(max(f + offset, 0), len(x) - 1)]
    return out


@pytest.mark.parametrize("frames, sigma", [(40, 1.5), (30, 5.0), (6, 2.0)])
def test_smooth_over_time_is_a_truncated_gaussian_with_the_ends_held(frames, sigma):
    motion = torch.from_numpy(np.random.default_rng(0).standard_normal((2, frames, 3)).astype(np.float32))
    smoothed = smooth_over_time(motion, sigma)
    assert smoothed.shape == motion.shape and smoothed.dtype == motion.dtype
    for b in range(2):
        np.testing.assert_allclose(smoothed[b].numpy(), direct_gaussian_smoothing(motion[b].numpy(), sigma),
                                   atol=1e-5)
    constant = torch.full((1, frames, 2), 0.7)
    torch.testing.assert_close(smooth_over_time(constant, sigma), constant)     # nothing leaks in at the ends
    assert smooth_over_time(motion, 0.0) is motion
    with pytest.raises(ValueError, match="0 or more frames"):
        smooth_over_time(motion, -1.0)


def test_smoothing_is_applied_to_the_sampled_motion_and_the_video_sees_the_smoothed_motion(pipeline):
    rng = np.random.default_rng(1)
    mfcc = rng.standard_normal((100, 13)).astype(np.float32)
    hubert = rng.standard_normal((100, 16)).astype(np.float32)
    raw = _with(pipeline, motion__smooth_sigma=0.0, stage1__motion_frames=40)
    smooth = _with(pipeline, motion__smooth_sigma=3.0, stage1__motion_frames=40)
    pose, expression, _ = raw.sample_motion(mfcc, hubert, torch.Generator().manual_seed(0))
    s_pose, s_expression, s_features = smooth.sample_motion(mfcc, hubert, torch.Generator().manual_seed(0))
    for sampled, smoothed in ((pose, s_pose), (expression, s_expression)):      # the same draws, smoothed
        np.testing.assert_allclose(smoothed[0].numpy(), direct_gaussian_smoothing(sampled[0].numpy(), 3.0),
                                   atol=1e-5)
    assert np.abs(np.diff(s_pose[0].numpy(), axis=0)).mean() < 0.5 * np.abs(np.diff(pose[0].numpy(), axis=0)).mean()
    # the features of each 40-frame window are computed from the smoothed motion over that window
    for start, stop, _ in motion_windows(100, 40, 0):
        with torch.no_grad():
            expected = smooth.model.video_features(s_pose[:, start:stop], s_expression[:, start:stop],
                                                   torch.from_numpy(mfcc[None, start:stop]),
                                                   torch.from_numpy(hubert[None, start:stop]))
        torch.testing.assert_close(s_features[:, start:stop], expected)


def test_first_step_gain_of_the_motion_sampler():
    from imac.config import MotionConfig

    # squaredcos_cap_v2 by its formula (Nichol & Dhariwal 2021): abar(t) = prod of (1 - beta_i),
    # beta_i = min(1 - f((i + 1) / T) / f(i / T), 0.999), f(x) = cos((x + 0.008) / 1.008 * pi / 2)^2
    T = 1000
    f = lambda x: np.cos((x + 0.008) / 1.008 * np.pi / 2) ** 2                     # noqa: E731
    abar = np.cumprod([1 - min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])

    def gain(first, second):
        return abs(np.sqrt(abar[second]) * np.sqrt(1 - abar[first]) / np.sqrt(abar[first]) - np.sqrt(1 - abar[second]))

    trailing = first_step_gain(motion_sampling_scheduler(MotionConfig(sample_spacing="trailing")), 10)
    leading = first_step_gain(motion_sampling_scheduler(MotionConfig(sample_spacing="leading")), 10)
    assert trailing == pytest.approx(gain(999, 899), rel=1e-4) and trailing > 1000
    assert leading == pytest.approx(gain(900, 800), rel=1e-4) and leading < 10
    clipped = motion_sampling_scheduler(MotionConfig(sample_clip=3.0))
    assert clipped.config.clip_sample and clipped.config.clip_sample_range == 3.0


def test_wrong_reference_size_and_stage1_models_are_refused(pipeline):
    with pytest.raises(ValueError, match=f"reference image must be \\(3, {RESOLUTION}, {RESOLUTION}\\)"):
        pipeline(torch.zeros(3, 20, 20), speech(0.5), 16000)
    with pytest.raises(ValueError, match="shorter than one video frame"):
        pipeline(reference_image(), np.zeros(100, np.float32), 16000)


def test_a_model_with_a_motion_map_samples_and_round_trips(tmp_path):
    config = tiny_config(make_corpus(tmp_path / "toy"), make_vae(tmp_path / "vae"), tmp_path / "run",
                         ["video.motion_map=3"])
    torch.manual_seed(0)
    model = build_stage_model(config, "stage2", pose_dim=129, hubert_dim=16, normalization=None).eval()
    with torch.no_grad():
        for conv in model.coupling.motion_map_out:     # as if trained: the map reaches the UNet
            conv.weight.normal_(0, 0.1)
    pipeline = IMACPipeline(config, model, load_hubert(tiny=True), "tiny-seed0", "stage2")
    loaded = IMACPipeline.from_pretrained(pipeline.save_pretrained(tmp_path / "model"))
    assert loaded.model.coupling.config.motion_map_channels == 3 and loaded.model.video_feature_width == loaded.model.motion.feature_width + 129
    audio = speech(0.8)
    a = pipeline(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    b = loaded(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    assert a.frames.shape == (20, RESOLUTION, RESOLUTION, 3)
    assert np.abs(a.frames.astype(int) - b.frames).max() <= 2


def test_model_folder_round_trip_gives_identical_outputs(pipeline, tmp_path):
    folder = pipeline.save_pretrained(tmp_path / "model")
    loaded = IMACPipeline.from_pretrained(folder)
    audio = speech(0.8)
    a = pipeline(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    b = loaded(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    for name, tensor in pipeline.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    # Identical weights; kernels may differ in the last float bit, which the first DDIM steps
    # (divided by sqrt(alpha_bar) near 0) amplify, so whole samples are compared with a tolerance.
    args = (torch.randn(1, 20, 129), torch.randn(1, 20, 100), torch.randn(1, 20, 13), torch.randn(1, 20, 16),
            torch.tensor([999]))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.motion(*args).features, pipeline.model.motion(*args).features,
                                   rtol=0, atol=1e-5)
    assert np.abs(a.frames.astype(int) - b.frames).max() <= 2
    np.testing.assert_allclose(a.pose, b.pose, atol=0.05)
    # Saving again replaces the folder as a whole.
    pipeline.save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(FileNotFoundError, match=f"not an IMAC model folder .*; the model trained there is {re.escape(str(folder))}$"):
        IMACPipeline.from_pretrained(tmp_path)                 # a stage's folder: its model/ is named
    with pytest.raises(FileNotFoundError, match=r"not an IMAC model folder \(no imac.json\)$"):
        IMACPipeline.from_pretrained(tmp_path / "model" / "unet")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(tmp_path / 'modle'))}: no such model folder$"):
        IMACPipeline.from_pretrained(tmp_path / "modle")       # a typo: not "no imac.json"


def test_cli_sample_writes_video_with_audio_and_motion(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")  # not square: cropped
    write_wav(tmp_path / "speech.wav", speech(1.3, 22050), 22050)
    out = tmp_path / "out.mp4"
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out       # --quiet hides the progress bars, not what is done to the inputs
    assert "80x48 -> centre square 48x48" in said and ("1.30 s at 22050 Hz, mono, resampled to 16000 Hz for the "
                                                       "model -> 32 frames") in said
    info = probe_video(out)
    assert info.num_frames == 32 and info.width == RESOLUTION and info.fps == 25
    assert (info.audio_sample_rate, info.audio_channels) == (22050, 1)     # the speech at its own rate
    audio = read_video_audio(out)
    assert abs(len(audio) / 16000 - 1.3) < 0.03  # the input speech, muxed in
    motion = np.load(out.with_suffix(".motion.npz"))
    assert motion["pose"].shape == (32, 129)

    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "empty.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    assert "empty.wav" in capsys.readouterr().err
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "nope.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_cli_sample_hands_the_encoder_a_stream_of_the_frames_a_whole_sample_has(pipeline, tmp_path, monkeypatch):
    import imac.cli

    model = pipeline.save_pretrained(tmp_path / "model")
    image = (reference_image().permute(1, 2, 0).numpy() * 127.5 + 127.5).round().astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "ref.png")                   # the model's size: no resizing
    write_wav(tmp_path / "speech.wav", speech(1.3), 16000)
    handed = {}
    real_write = imac.cli.write_video

    def spy_write(path, frames, *args, **kwargs):
        handed["type"] = type(frames)
        handed["frames"] = list(frames)
        return real_write(path, handed["frames"], *args, **kwargs)

    monkeypatch.setattr(imac.cli, "write_video", spy_write)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "out.mp4"), "--quiet", "--seed", "3"]) == 0
    assert not issubclass(handed["type"], (np.ndarray, list, tuple))   # made as the encoder reads them
    loaded = IMACPipeline.from_pretrained(model)
    whole = loaded(frames_to_tensor(image[None], RESOLUTION)[0], speech(1.3), 16000, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(np.stack(handed["frames"]), whole.frames)


def test_cli_sample_failing_while_it_writes_ends_the_chunks_first_and_leaves_no_file(pipeline, tmp_path,
                                                                                      monkeypatch, capsys):
    import imac.cli

    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((RESOLUTION, RESOLUTION, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(1.6), 16000)        # 40 frames: 3 chunks

    real_write = imac.cli.write_video

    def full_disk(path, frames, *args, **kwargs):                 # the disk fills in the second chunk
        def until_full():
            for index, frame in enumerate(frames):
                if index == 20:
                    raise OSError(28, "No space left on device")
                yield frame
        return real_write(path, until_full(), *args, **kwargs)

    monkeypatch.setattr(imac.cli, "write_video", full_disk)
    out = tmp_path / "new" / "dir" / "out.mp4"
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # the progress bar ended (its last state on a line of its own) before the error's line, which ends the output
    assert err.endswith("\nimac sample: error: [Errno 28] No space left on device\n"), err[-300:]
    assert os.listdir(out.parent) == []         # no video, no temporary file, no motion file


def test_cli_sample_says_what_it_does_and_blames_the_right_file(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(0.7, 44100), 44100)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "out.mp4"), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    # 80 x 48: the centre 48 x 48 square (32 px of width cut), then resized to the model's side
    assert f"80x48 -> centre square 48x48 (crop 32 px of width, 0 px of height) -> shrunk to {RESOLUTION}x" in out
    assert ("0.70 s at 44100 Hz, mono, resampled to 16000 Hz for the model -> 17 frames at 25 fps; muxed into "
            "the video as mono AAC at 44100 Hz") in out
    assert pipeline.config.video.sample_strength == 0.5            # the tiny config's
    assert (f"sampling: 2 video steps ({pipeline.config.video.sample_spacing} spacing) from the reference noised "
            f"to strength 0.5 (1 of the 2 steps), guidance {pipeline.config.video.guidance_scale:g}") in out

    stage1 = IMACPipeline(pipeline.config, build_stage_model(pipeline.config, "stage1", 129, 16, None),
                          pipeline.hubert, "tiny-seed0", "stage1").save_pretrained(tmp_path / "stage1")
    assert main(["sample", "--model", str(stage1), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--model {stage1}: a stage-1 (motion only) model folder" in err and "speech.wav" not in err

    # --strength out of (0, 1] is argparse's (below); one that keeps no step is named with --steps
    args = ["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
            str(tmp_path / "speech.wav"), "--out", str(tmp_path / "y.mp4"), "--quiet"]
    assert main([*args, "--strength", "0.3", "--steps", "3"]) == 2
    # int(3 x 0.3) = 0; int(3 x 0.334) = 1 and int(4 x 0.3) = 1: the least strength and the fewest steps that keep one
    assert ("--strength 0.3 with --steps 3 keeps no step (int(steps x strength) = 0): give --strength 0.334 or more, "
            "or --steps 4 or more") in capsys.readouterr().err
    assert main([*args, "--strength", "0.0005", "--steps", "2"]) == 2   # no step count up to 1000 keeps one
    assert ("--strength 0.0005 with --steps 2 keeps no step (int(steps x strength) = 0): give --strength 0.5 or "
            "more\n") in capsys.readouterr().err
    assert main([*args, "--steps", "1"]) == 2      # the model's strength 0.5 keeps none of 1 step
    assert ("the model's video.sample_strength 0.5 with --steps 1 keeps no step (int(steps x strength) = 0): give "
            "--strength 1, or --steps 2 or more") in capsys.readouterr().err
    assert main([*args, "--strength", "1", "--strength-from", "first_frame", "--steps", "2"]) == 0
    assert "2 video steps (trailing spacing) from pure noise, guidance" in capsys.readouterr().out
    assert main([*args, "--noise-correlation", "0.5", "--steps", "2"]) == 0
    assert "(1 of the 2 steps) (noise correlated 0.5 between frames), guidance" in capsys.readouterr().out
    assert main([*args, "--smooth-sigma", "0", "--steps", "2"]) == 0
    assert "steps, windows overlap 0 frames, smoothed over time: no; device cpu\n" in capsys.readouterr().out
    assert main([*args, "--smooth-sigma", "2.5", "--steps", "2"]) == 0
    assert "smoothed over time: sigma 2.5 frames" in capsys.readouterr().out
    assert not (tmp_path / "x.mp4").exists() and (tmp_path / "y.mp4").is_file()

    # each input's problem said with its option; a sideways photo said to be turned upright
    (tmp_path / "notes.wav").write_text("not audio\n" * 20)
    assert main([*args[:5], "--audio", str(tmp_path / "notes.wav"), *args[7:]]) == 2
    err = capsys.readouterr().err
    assert f"--audio {tmp_path / 'notes.wav'}: cannot read audio header" in err and "WAV, FLAC" in err
    exif = Image.Exif()
    exif[0x0112] = 8                         # shown rotated 90 degrees counter-clockwise
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "side.png", exif=exif)
    assert main([*args[:4], str(tmp_path / "side.png"), *args[5:], "--steps", "2"]) == 0
    assert ("side.png: turned upright by its EXIF orientation (80x48 stored); 48x80 -> centre square 48x48 (crop 0 px "
            "of width, 32 px of height)") in capsys.readouterr().out
    weights = next((model / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])
    assert main([*args, "--steps", "2"]) == 2
    assert f"--model {weights}: truncated: its header describes" in capsys.readouterr().err


def test_read_only_frames_convert_without_a_torch_warning():
    frames = np.full((1, 8, 8, 3), 255, np.uint8)
    frames.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = frames_to_tensor(frames, 4)
    assert x.shape == (1, 3, 4, 4) and torch.all(x == 1.0)


def test_sampling_overrides_change_only_sampling_keys():
    from imac.config import OptionsError, load_config, with_sampling_overrides

    config = load_config("tiny")
    changed = with_sampling_overrides(config, ["video.chunk_reference=anchored", "motion.window_overlap=16",
                                               "stage1.steps=3", "video.frames=8"])
    assert (changed.video.chunk_reference, changed.motion.window_overlap) == ("anchored", 16)
    assert (changed.stage1.steps, changed.video.frames) == (config.stage1.steps, config.video.frames)   # training keys
    with pytest.raises(OptionsError, match="video.handover: expected one of 'decoded', 'latent'"):
        with_sampling_overrides(config, ["video.handover=lat"])


# The ranges are the config fields' (video.sample_steps 1..1000, the video schedule's timesteps;
# video.guidance_scale 0..50; video.sample_strength (0, 1]; ...), written out here by hand.
@pytest.mark.parametrize("option, value, said", [
    ("--steps", "0", "0 is outside 1..1000"),
    ("--steps", "-1", "-1 is outside 1..1000"),
    ("--steps", "1001", "1001 is outside 1..1000"),
    ("--steps", "2.5", "'2.5' is not an integer"),
    ("--guidance-scale", "-2", "-2 is outside 0 to 50"),
    ("--guidance-scale", "inf", "'inf' is not a finite number"),
    ("--guidance-scale", "1e30", "1e+30 is outside 0 to 50"),
    ("--guidance-scale", "nan", "'nan' is not a finite number"),
    ("--strength", "0", "must be > 0 and <= 1, got 0"),
    ("--strength", "1.5", "must be > 0 and <= 1, got 1.5"),
    ("--noise-correlation", "1.5", "1.5 is outside 0 to 1"),
    ("--smooth-sigma", "-1", "-1 is outside 0 to 250"),
    ("--smooth-sigma", "251", "251 is outside 0 to 250"),
    ("--smooth-sigma", "nan", "'nan' is not a finite number"),
    ("--window-overlap", "-1", "-1 is less than 0"),
    ("--seed", "-1", "-1 is outside 0..9223372036854775807"),
])
def test_cli_sample_numbers_are_checked_by_argparse(tmp_path, capsys, option, value, said):
    # refused by argparse, in one line, before any file or model folder is looked at (there is none here)
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--model", str(tmp_path / "none"), "--reference", "r.png", "--audio", "a.wav",
              "--out", str(tmp_path / "x.mp4"), option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and f"argument {option}: {said}" in err, err


@pytest.mark.parametrize("argv, said", [
    (["--window-overlap", "-5"], "imac sample: error: argument --window-overlap: -5 is less than 0"),
    (["--reference", "{tmp}"], "imac sample: error: --reference {tmp}: a folder, not a file"),
    (["--audio", "{tmp}/none.wav"], "imac sample: error: --audio {tmp}/none.wav: no such file"),
    (["--out", "{tmp}"], "imac sample: error: --out {tmp}: a folder; give the .mp4 file to write"),
])
def test_cli_sample_checks_its_arguments_before_the_model_folder(tmp_path, capsys, argv, said):
    (tmp_path / "r.png").write_bytes(b"")
    (tmp_path / "a.wav").write_bytes(b"")
    base = {"--model": str(tmp_path / "none"), "--reference": str(tmp_path / "r.png"),
            "--audio": str(tmp_path / "a.wav"), "--out": str(tmp_path / "x.mp4")}
    base.update(zip(argv[::2], (a.replace("{tmp}", str(tmp_path)) for a in argv[1::2])))
    # there is no model folder: the error must be about the argument, given before it is looked at
    try:
        status = main(["sample", *(part for pair in base.items() for part in pair)])
    except SystemExit as exit:           # argparse's refusal
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(said.replace("{tmp}", str(tmp_path))) and err.count("\n") == 1, err


def test_cli_sample_refuses_an_overlap_as_long_as_the_models_motion_window(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(0.5), 16000)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--window-overlap", "80"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("imac sample: error: --window-overlap 80: must be shorter than the model's motion window "
                            "(stage1.motion_frames 80)\n")
    assert "reference" not in captured.out and not (tmp_path / "x.mp4").exists()    # nothing read or written


def card_only(model, folder):
    """``model``'s folder with every weights file EMPTY: its card and configs read, no network loads."""
    import shutil

    shutil.copytree(model, folder)
    for weights in [*folder.glob("*/*.safetensors"), *folder.glob("*/*.bin"), *folder.glob("*.safetensors")]:
        weights.write_bytes(b"")
    return folder


def test_cli_sample_checks_the_inputs_against_the_model_card_before_loading_any_weights(pipeline, tmp_path, capsys):
    card = card_only(pipeline.save_pretrained(tmp_path / "model"), tmp_path / "card")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(0.5), 16000)
    write_wav(tmp_path / "tiny.wav", speech(0.01), 16000)             # 160 samples: 0.4 frames at 25 fps
    (tmp_path / "text.png").write_text("not an image")
    args = {"--model": str(card), "--reference": str(tmp_path / "ref.png"), "--audio": str(tmp_path / "speech.wav"),
            "--out": str(tmp_path / "x.mp4"), "--quiet": None}
    cases = [({"--steps": "2", "--strength": "0.3"}, "--strength 0.3 with --steps 2 keeps no step (int(steps x "
                                                     "strength) = 0): give --strength 0.5 or more, or --steps 4 or more"),
             ({"--window-overlap": "80"}, "--window-overlap 80: must be shorter than the model's motion window"),
             ({"--audio": str(tmp_path / "tiny.wav")}, f"--audio {tmp_path / 'tiny.wav'}: 0.010 s of audio, shorter "
                                                       "than one video frame (1/25 s)"),
             ({"--reference": str(tmp_path / "text.png")}, str(tmp_path / "text.png"))]
    for change, said in cases:
        argv = {**args, **change}
        assert main(["sample", *(x for k, v in argv.items() for x in (k, v) if x is not None)]) == 2, change
        captured = capsys.readouterr()
        # the input's error, not the (weightless) model folder's; one line; nothing written
        assert said in captured.err and captured.err.count("\n") == 1 and "config.json" not in captured.err, captured.err
        assert not (tmp_path / "x.mp4").exists()
    # the folder itself is what fails once every input passes
    assert main(["sample", *(x for k, v in args.items() for x in (k, v) if x is not None)]) == 2
    err = capsys.readouterr().err
    assert f"{card / 'motion'}" in err and "Traceback" not in err, err        # the loader names the empty weights


def test_cli_sample_names_a_damaged_model_folder_and_an_unwritable_out(pipeline, tmp_path, capsys, monkeypatch):
    import shutil

    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(0.5), 16000)
    base = ["sample", "--reference", str(tmp_path / "ref.png"), "--audio", str(tmp_path / "speech.wav"), "--quiet"]
    damaged = tmp_path / "damaged"
    shutil.copytree(model, damaged)
    shutil.rmtree(damaged / "unet")
    (damaged / "text_context.safetensors").unlink()
    assert main([*base, "--model", str(damaged), "--out", str(tmp_path / "x.mp4")]) == 2
    assert (f"--model {damaged}: a stage-2 model folder (imac.json) without unet, text_context.safetensors: an "
            "incomplete copy") in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="without unet, text_context.safetensors"):
        IMACPipeline.from_pretrained(damaged)
    # each part as the loader needs it, named before any weight is read
    for name, damage, said in [("file", lambda f: (shutil.rmtree(f / "unet"), (f / "unet").write_bytes(b"")), "unet"),
                               ("noconfig", lambda f: (f / "vae" / "config.json").unlink(), "vae/config.json"),
                               ("noweights", lambda f: [w.unlink() for w in (f / "coupling").glob("*.safetensors")],
                                "coupling/ weights (*.safetensors)")]:
        folder = tmp_path / name
        shutil.copytree(model, folder)
        damage(folder)
        with pytest.raises(FileNotFoundError, match=re.escape(f"model folder (imac.json) without {said}: an incomplete")):
            IMACPipeline.from_pretrained(folder)
        shutil.rmtree(folder)
    with pytest.raises(NotADirectoryError, match="imac.json: a file; give the model folder"):
        IMACPipeline.from_pretrained(model / "imac.json")
    card = json.loads((model / "imac.json").read_text())
    card["config"]["video"]["bogus_key"] = 1
    shutil.copytree(model, tmp_path / "bogus")
    (tmp_path / "bogus" / "imac.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'bogus' / 'imac.json'} 'config'") + ".*bogus_key"):
        IMACPipeline.from_pretrained(tmp_path / "bogus")
    for format_, said in [("imac-model-2", "format 'imac-model-2': written by another version of imac"),
                          (None, "no 'format' field: not a model card save_pretrained wrote")]:
        other = {key: value for key, value in card.items() if key != "format"}
        other["config"]["video"].pop("bogus_key", None)
        (tmp_path / "bogus" / "imac.json").write_text(json.dumps({**other, **({"format": format_} if format_ else {})}))
        assert main([*base, "--model", str(tmp_path / "bogus"), "--out", str(tmp_path / "x.mp4")]) == 2
        assert capsys.readouterr().err.startswith(f"imac sample: error: --model {tmp_path / 'bogus' / 'imac.json'}: "
                                                  f"{said}")
    shutil.rmtree(tmp_path / "bogus")
    for out, said in [("x.wav", "x.wav: the video must be a name ending in .mp4"),
                      ("x", "x: the video must be a name ending in .mp4"),
                      (".mp4", ".mp4: the video must be a name ending in .mp4")]:
        assert main([*base, "--model", str(model), "--out", str(tmp_path / out)]) == 2
        assert f"--out {tmp_path / said}" in capsys.readouterr().err
    # a folder no file can be created in (a read-only file system, say) is named before any work
    import metrics.io.files as files

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    assert main([*base, "--model", str(model), "--out", str(tmp_path / "new" / "x.mp4")]) == 2
    assert (f"--out {tmp_path / 'new' / 'x.mp4'}: cannot create files in {tmp_path} (Read-only file system), so the "
            "video cannot be written there") in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "model", "ref.png", "speech.wav"]
    with pytest.raises(SystemExit):
        main([*base, "--model", str(model), "--out", str(tmp_path / "x.mp4"), "--seed", str(2 ** 64)])
    assert "argument --seed: 18446744073709551616 is outside 0..9223372036854775807" in capsys.readouterr().err


def test_cli_sample_says_the_frames_it_writes_and_takes_device_auto(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    # 18,560 samples at 16 kHz: 1.16 s, 29 frames at 25 fps, where 18560 / 16000 * 25 rounds to 28.999999...
    write_wav(tmp_path / "speech.wav", speech(18560 / 16000), 16000)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--steps", "2", "--quiet",
                 "--device", "auto"]) == 0
    assert "-> 29 frames at 25 fps" in capsys.readouterr().out
    assert probe_video(tmp_path / "x.mp4").num_frames == 29 == (18560 * 25) // 16000


def test_sample_strength_is_a_sampling_key_within_its_range():
    from imac.config import OptionsError, load_config, with_sampling_overrides

    config = load_config("tiny")
    changed = with_sampling_overrides(config, ["video.sample_strength=0.8", "video.strength_from=first_frame"])
    assert (changed.video.sample_strength, changed.video.strength_from) == (0.8, "first_frame")
    assert load_config("i2vgenxl").video.sample_strength == 1.0                 # the release: from pure noise
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(OptionsError, match="video.sample_strength"):
            load_config("tiny", [f"video.sample_strength={bad}"])
    with pytest.raises(OptionsError, match="video.strength_from: expected one of 'reference', 'first_frame'"):
        load_config("tiny", ["video.strength_from=last"])
    # a strength that keeps none of the config's steps is refused with the config, before any training
    with pytest.raises(OptionsError, match=r"video.sample_strength 0.05 keeps no step of 10 .* at least 0.1 "):
        load_config("tiny", ["video.sample_strength=0.05"])
    with pytest.raises(OptionsError, match=r"video.sample_steps: must be >= 1 and <= 1000, got 1001"):
        load_config("tiny", ["video.sample_steps=1001"])
    with pytest.raises(OptionsError, match=r"keeps no step of 3 .* at least 0.334 "):
        load_config("tiny", ["video.sample_strength=0.333", "video.sample_steps=3"])


def test_the_least_strength_suggested_keeps_a_step_and_is_the_least_of_three_decimals():
    from fractions import Fraction

    from imac.config import least_strength

    for steps in range(1, 2001):
        least = least_strength(steps)
        assert kept_steps(steps, least) >= 1                    # raises when it keeps none
        # exact arithmetic: the 3-decimal value just below keeps none (1/steps rounded up to 3 decimals)
        below = Fraction(round(least * 1000) - 1, 1000)
        assert below * steps < 1 or below <= 0


def test_imac_sample_says_a_model_without_motion_samples_no_motion():
    """Before, a "w/o motion" model's sampling line listed 25 motion steps, window overlap and smoothing."""
    from imac.cli import motion_words
    from imac.config import MotionConfig

    assert motion_words(MotionConfig(sample_steps=7, window_overlap=20, smooth_sigma=2.0)) == (
        "motion: 7 steps, windows overlap 20 frames, smoothed over time: sigma 2 frames")
    words = motion_words(MotionConfig(enabled=False, sample_steps=7))
    assert words.startswith("no motion branch (motion.enabled false") and "steps" not in words


def test_the_pipeline_refuses_inputs_in_other_ranges():
    """Before: a reference of 0-255 pixels or int16 samples was sampled from as it was, without a word."""
    from imac.pipeline import check_input_ranges

    speech = np.zeros(1600, np.float32)
    check_input_ranges(torch.zeros(3, 8, 8).uniform_(-1, 1), speech)
    with pytest.raises(ValueError, match=r"in \[-1, 1\], got values in \[0, 255\] \(0-255 pixels\?"):
        check_input_ranges(torch.linspace(0, 255, 192).reshape(3, 8, 8), speech)
    with pytest.raises(ValueError, match="floating-point values in \\[-1, 1\\], got torch.uint8"):
        check_input_ranges(torch.zeros(3, 8, 8, dtype=torch.uint8), speech)
    with pytest.raises(ValueError, match="audio must be floating-point samples .*, got int16"):
        check_input_ranges(torch.zeros(3, 8, 8), speech.astype(np.int16))
