"""Make-Your-Anchor reimplementation: pose images, the overlapping-window schedule, training, generation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from bench.baselines import pose_guided as pg
from bench.baselines import pose_guided_training as pgt
from bench.baselines import pose_images as pi
from bench.methods import mya
from bench.methods.base import BenchContext, reference_keypoints
from metrics.dataset import ClipRecord, Dataset
from imac.frames import NonFiniteError
from tests.imac_fixtures import make_corpus, make_vae

# A UNet of a few thousand parameters on the test VAE's 8x8 latents (32-pixel frames).
TINY_OPTIONS = {
    "resolution": 32,
    "unet": {"block_out_channels": [16, 16], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 16,
             "attention_head_dim": 8, "norm_num_groups": 8},
    "pose_widths": [8, 8], "pose_features": 4, "steps": 3, "batch_size": 4, "warmup_steps": 1,
    "sample_steps": 2, "window": 8, "overlap": 3,
}


# -- pose images ---------------------------------------------------------------------------------


def _two_points(score_b: float = 1.0) -> np.ndarray:
    keypoints = np.zeros((133, 3), np.float32)
    keypoints[5] = (10.0, 20.0, 1.0)      # left shoulder
    keypoints[7] = (30.0, 20.0, score_b)  # left elbow
    return keypoints


def _distance_to_horizontal_segment(x0: float, x1: float, y: float, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    along = np.clip(xs, x0, x1)
    return np.hypot(xs - along, ys - y)


def test_limb_paints_the_segment_and_nothing_else():
    size = 64
    style = pi.PoseStyle()
    image = pi.render_pose(_two_points(), size, size, style=style)
    painted = image.any(axis=-1)
    distance = _distance_to_horizontal_segment(10.0, 30.0, 20.0, size)
    half_width = style.limb_width * size / 2
    reach = max(half_width, style.joint_radius * size)
    assert painted[distance <= half_width].all()          # the whole stroke
    assert not painted[distance > reach + 1e-6].any()     # nothing off the limb and its two joints
    limb_colour = pi.BODY_LIMB_COLOURS[pi.BODY_LIMBS.index((5, 7))]
    assert tuple(image[20, 20]) == limb_colour            # mid-limb: the limb's colour
    assert painted[20, 10:31].all()


def test_low_score_points_are_not_drawn():
    size = 64
    style = pi.PoseStyle()
    image = pi.render_pose(_two_points(score_b=0.1), size, size, score_threshold=0.3, style=style)
    painted = image.any(axis=-1)
    ys, xs = np.mgrid[0:size, 0:size]
    near_shoulder = np.hypot(xs - 10.0, ys - 20.0) <= style.joint_radius * size
    assert painted[20, 10] and not painted[~near_shoulder].any()   # the shoulder's dot only
    assert not pi.render_pose(np.zeros((133, 3), np.float32), size, size).any()


def test_pose_images_are_deterministic_and_cover_hands():
    keypoints = np.zeros((2, 133, 3), np.float32)
    keypoints[:, 91] = (20.0, 20.0, 1.0)   # left hand wrist
    keypoints[:, 92] = (26.0, 20.0, 1.0)   # thumb base
    images = pi.render_pose_images(keypoints, 40, 40)
    assert images.shape == (2, 40, 40, 3) and images.dtype == np.uint8
    assert np.array_equal(images[0], images[1])
    assert tuple(images[0, 20, 23]) == pi.HAND_BONE_COLOURS[0]


def test_keypoints_to_square_follows_the_centre_crop():
    points = np.array([[[49.5, 29.5, 1.0], [20.0, 0.0, 0.5]]], np.float32)   # 100 x 60 frame
    square = pi.keypoints_to_square(points, height=60, width=100, size=30)
    np.testing.assert_allclose(square[0, 0], [14.5, 14.5, 1.0])              # centre stays the centre
    # The crop's top-left pixel centre (20, 0), halved: the centre of a 2x2 block lies at -0.25.
    np.testing.assert_allclose(square[0, 1], [-0.25, -0.25, 0.5])


# -- batch-overlapped temporal denoising ---------------------------------------------------------


@pytest.mark.parametrize("num_frames, window, overlap",
                         [(50, 16, 4), (16, 16, 4), (17, 16, 4), (5, 16, 4), (1, 4, 0), (30, 8, 0), (9, 3, 2)])
def test_windows_cover_every_frame_and_overlap_by_overlap(num_frames, window, overlap):
    windows = pg.overlapping_windows(num_frames, window, overlap)
    covered = sorted({f for start, end in windows for f in range(start, end)})
    assert covered == list(range(num_frames))
    assert windows[0][0] == 0 and windows[-1][1] == num_frames
    assert all(0 < end - start <= window for start, end in windows)
    for (_, end_a), (start_b, _) in zip(windows, windows[1:]):
        assert end_a - start_b == overlap
    if len(windows) > 1:
        assert windows[-1][1] - windows[-1][0] > overlap
    if num_frames <= window:
        assert windows == [(0, num_frames)]


def test_windows_reject_an_overlap_as_large_as_the_window():
    with pytest.raises(ValueError, match="overlap"):
        pg.overlapping_windows(20, 4, 4)


def test_averaging_on_overlaps_matches_a_direct_loop():
    num_frames, windows = 23, pg.overlapping_windows(23, 8, 3)
    generator = torch.Generator().manual_seed(0)
    predictions = {w: torch.randn(w[1] - w[0], 2, 3, generator=generator) for w in windows}
    averaged = pg.average_window_predictions(num_frames, windows, lambda s, e: predictions[(s, e)])
    for frame in range(num_frames):
        holding = [predictions[(s, e)][frame - s] for s, e in windows if s <= frame < e]
        torch.testing.assert_close(averaged[frame], sum(holding) / len(holding))


def test_window_attention_attends_over_the_window():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    attn.set_processor(pg.WindowAttentionProcessor())
    x = torch.randn(6, 5, 8)                               # 2 windows of 3 frames, 5 tokens each
    framewise = attn(x)
    joined = attn(x, num_frames=3)
    # Reference: softmax attention of every token over all tokens of its window, by hand.
    with torch.no_grad():
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        expected = []
        for w in range(2):
            qw, kw, vw = (t[3 * w:3 * w + 3].reshape(15, 2, 4).transpose(0, 1) for t in (q, k, v))
            weights = torch.softmax(qw @ kw.transpose(1, 2) / 2.0, dim=-1)
            expected.append((weights @ vw).transpose(0, 1).reshape(3, 5, 8))
        expected = attn.to_out[0](torch.cat(expected))
    torch.testing.assert_close(joined, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn(x, num_frames=1), framewise)
    assert not torch.allclose(joined, framewise)


# -- options -------------------------------------------------------------------------------------


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="windw"):
        pg.MYAOptions.from_dict({"windw": 8})
    with pytest.raises(ValueError, match="overlap"):
        pg.MYAOptions.from_dict({"window": 4, "overlap": 4})
    with pytest.raises(ValueError, match=r"mya\.motion: .*anything"):   # motion: the keypoint model's options
        pg.MYAOptions.from_dict({"motion": {"anything": 1}})
    options = pg.MYAOptions.from_dict({"unet": {"layers_per_block": 2}, "motion": {"steps": 7}})
    assert options.unet_kwargs["layers_per_block"] == 2 and options.unet_kwargs["cross_attention_dim"] == 64
    assert options.motion == {"steps": 7} and options.motion_options().steps == 7


# -- training, saving, generating ----------------------------------------------------------------


class FakeKeypointMotion:
    """Stands in for ``bench.baselines.keypoint_motion.KeypointMotion``: the reference pose, swaying with time."""

    def __init__(self, options):
        self.options = options

    @classmethod
    def train_or_load_shared(cls, context, options):
        return cls(options)

    def sample(self, audio, num_frames, fps, reference_keypoints, seed):
        keypoints = np.repeat(np.asarray(reference_keypoints, np.float32)[None], num_frames, axis=0)
        keypoints[:, 91:, 0] += 3.0 * np.sin(np.arange(num_frames) / fps * 4.0)[:, None]
        return keypoints


@pytest.fixture
def fake_motion(monkeypatch):
    monkeypatch.setattr(mya, "KeypointMotion", FakeKeypointMotion)
    return FakeKeypointMotion


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory) -> Path:
    return make_vae(tmp_path_factory.mktemp("vae"))


def _context(corpus: Path, vae_folder: Path, work: Path, options=None) -> BenchContext:
    return BenchContext(data_root=corpus, work_dir=work, options=dict(options or TINY_OPTIONS), progress=False,
                        shared_vae=lambda: vae_folder)


def _test_clip(corpus: Path) -> ClipRecord:
    return Dataset.open(corpus, level="files").split("test")[0]


@pytest.fixture(scope="module")
def trained(corpus, vae_folder, tmp_path_factory):
    work = tmp_path_factory.mktemp("mya")
    context = _context(corpus, vae_folder, work)
    options = pg.MYAOptions.from_dict(TINY_OPTIONS)
    vae = mya.load_vae(context)
    model, facts = pgt.train_or_load_generator(context, options, vae, torch.device("cpu"))
    return context, model, facts


def test_training_runs_and_saves_a_finished_model(trained):
    context, model, facts = trained
    folder = Path(context.work_dir) / pgt.GENERATOR_FOLDER
    assert facts["trained"] == "now" and facts["steps"] == 3 and np.isfinite(facts["last_loss"])
    assert pgt.generator_is_finished(folder)
    assert not [p for p in Path(context.work_dir).iterdir() if p.name.startswith(".")]   # no staging left
    reloaded, card = pgt.load_generator(folder)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], value)
    assert card["settings"] == pg.MYAOptions.from_dict(TINY_OPTIONS).training_settings()


def test_generate_returns_every_frame_and_reloads_to_the_same_outputs(trained, corpus, fake_motion):
    context, _, _ = trained
    clip = _test_clip(corpus)
    first = mya.MYAMethod()
    facts = first.prepare(context)
    assert facts["trained"] == "earlier"
    frames = first.generate(clip, seed=3)
    assert frames.shape == (clip.num_frames, 32, 32, 3) and frames.dtype == np.uint8
    assert clip.num_frames > TINY_OPTIONS["window"]            # several overlapping windows
    second = mya.MYAMethod()
    second.prepare(context)
    np.testing.assert_array_equal(second.generate(clip, seed=3), frames)
    assert not np.array_equal(second.generate(clip, seed=4), frames)


def test_short_clip_is_one_window(trained, corpus, fake_motion):
    context, _, _ = trained
    method = mya.MYAMethod()
    method.prepare(context)
    clip = _test_clip(corpus)
    keypoints = np.repeat(reference_keypoints(clip)[None], 3, axis=0)
    frames = method.render(clip.first_frame(), keypoints, seed=0)
    assert frames.shape == (3, 32, 32, 3)


def test_nan_latents_are_refused_not_written_as_black_frames(trained, corpus, fake_motion, monkeypatch):
    context, _, _ = trained
    method = mya.MYAMethod()
    method.prepare(context)
    clip = _test_clip(corpus)
    monkeypatch.setattr(pg, "batch_overlapped_denoise", lambda model, scheduler, noise, *args: noise * float("nan"))
    keypoints = np.repeat(reference_keypoints(clip)[None], 3, axis=0)
    with pytest.raises(NonFiniteError, match=r"MYA's sampled latents \(\d+ steps, float32\): (\d+) of \1 values"):
        method.render(clip.first_frame(), keypoints, seed=0)


def test_saved_model_with_other_settings_is_refused(trained, vae_folder):
    context, _, _ = trained
    options = pg.MYAOptions.from_dict({**TINY_OPTIONS, "steps": 4})
    with pytest.raises(ValueError, match="other settings"):
        pgt.train_or_load_generator(context, options, mya.load_vae(context), torch.device("cpu"))


def test_half_written_model_folder_is_not_finished(corpus, vae_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    folder = tmp_path / pgt.GENERATOR_FOLDER
    folder.mkdir()
    (folder / "config.json").write_text("{}")               # weights and card never written
    assert not pgt.generator_is_finished(folder)
    with pytest.raises(FileNotFoundError):
        pgt.load_generator(folder)
    context = _context(corpus, vae_folder, tmp_path, {**TINY_OPTIONS, "steps": 1})
    options = pg.MYAOptions.from_dict(context.options)
    _, facts = pgt.train_or_load_generator(context, options, mya.load_vae(context), torch.device("cpu"))
    assert facts["trained"] == "now" and "unfinished" in caplog.text
    assert pgt.generator_is_finished(folder)
