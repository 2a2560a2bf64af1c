"""The S2G reimplementation: thin-plate splines, the audio -> keypoint model, the method."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import RBFInterpolator

from bench.baselines.keypoint_geometry import KEYPOINT_POINTS, reference_placement, retarget
from bench.baselines.keypoint_motion import KeypointMotion, KeypointMotionOptions
from bench.baselines.s2g import S2GOptions, control_points
from bench.baselines.tps import tps_fit, tps_transform, tps_warp
from bench.methods.base import BenchContext, reference_keypoints
from bench.methods.s2g import S2GMethod
from metrics.dataset import ClipRecord, Dataset
from metrics.pose import wholebody as wb
from tests.imac_fixtures import make_corpus

# A model that trains in about a second: the point is the plumbing, not the motion.
TINY_OPTIONS = {"steps": 4, "window": 32, "batch_size": 2, "width": 32, "heads": 2, "layers": 1,
                "audio_width": 32, "mfcc_width": 16, "sample_steps": 3}


# -- thin-plate splines --------------------------------------------------------------------------


def _points(seed: int, count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.uniform(0.0, 64.0, (count, 2))
    return source, source + rng.normal(0.0, 4.0, source.shape)


@pytest.mark.parametrize("regularization", [0.0, 2.5])
def test_tps_matches_scipy_thin_plate_rbf(regularization):
    source, target = _points(0)
    queries = np.random.default_rng(1).uniform(-20.0, 84.0, (200, 2))
    reference = RBFInterpolator(source, target, kernel="thin_plate_spline", degree=1, smoothing=regularization)
    params = tps_fit(source, target, regularization)
    np.testing.assert_allclose(tps_transform(params, queries), reference(queries), atol=1e-8)


def test_tps_is_exact_at_the_control_points():
    source, target = _points(2, count=30)
    np.testing.assert_allclose(tps_transform(tps_fit(source, target), source), target, atol=1e-8)


def test_tps_reproduces_an_affine_map_everywhere():
    source, _ = _points(3)
    matrix, shift = np.array([[1.1, 0.2], [-0.3, 0.9]]), np.array([4.0, -2.0])
    params = tps_fit(source, source @ matrix.T + shift)
    queries = np.random.default_rng(4).uniform(-50.0, 100.0, (50, 2))
    np.testing.assert_allclose(tps_transform(params, queries), queries @ matrix.T + shift, atol=1e-8)


def test_identity_warp_returns_the_image():
    image = np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    source, _ = _points(6)
    np.testing.assert_array_equal(tps_warp(image, source, source), image)


def test_translating_every_point_translates_the_content():
    image = np.random.default_rng(7).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    source, _ = _points(8)
    warped = tps_warp(image, source, source + np.array([3.0, 2.0]))
    # Content at (x, y) moves to (x + 3, y + 2); the strip it leaves repeats the border.
    assert np.abs(warped[2:, 3:].astype(int) - image[:-2, :-3]).max() <= 1
    assert np.abs(warped[0, 5:].astype(int) - image[0, 2:-3]).max() <= 1


def test_tps_errors_name_the_problem():
    source, target = _points(9)
    with pytest.raises(ValueError, match="at least 3"):
        tps_fit(source[:2], target[:2])
    line = np.stack([np.arange(5.0), 2.0 * np.arange(5.0) + 1.0], axis=1)
    with pytest.raises(ValueError, match="collinear"):
        tps_fit(line, line + 1.0)
    with pytest.raises(ValueError, match="collinear"):
        tps_fit(line, line, regularization=1.0)   # no lambda fixes an undetermined affine part
    twice = np.concatenate([source, source[:1]])
    with pytest.raises(ValueError, match="coincide"):
        tps_fit(twice, np.concatenate([target, target[:1] + 1.0]))
    tps_fit(twice, np.concatenate([target, target[:1] + 1.0]), regularization=1.0)  # smoothing copes
    broken = source.copy()
    broken[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tps_fit(broken, target)
    with pytest.raises(ValueError, match="differ in number"):
        tps_fit(source, target[:-1])
    with pytest.raises(ValueError, match="regularization"):
        tps_fit(source, target, regularization=-1.0)
    with pytest.raises(ValueError, match="uint8"):
        tps_warp(np.zeros((8, 8, 3), np.float32), source, target)


# -- the keypoint motion model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


def _context(corpus: Path, work: Path, options=None) -> BenchContext:
    return BenchContext(data_root=corpus, work_dir=work, options=dict(TINY_OPTIONS if options is None else options),
                        progress=False)


@pytest.fixture(scope="module")
def trained(corpus, work) -> KeypointMotion:
    return KeypointMotion.train_or_load_shared(_context(corpus, work / "s2g"), TINY_OPTIONS)


@pytest.fixture(scope="module")
def test_clip(corpus) -> ClipRecord:
    return Dataset.open(corpus, level="files").split("test")[0]


def _sample(model: KeypointMotion, clip: ClipRecord, seed: int) -> np.ndarray:
    return model.sample(clip.load_audio(), clip.num_frames, clip.fps, reference_keypoints(clip), seed)


def test_options_reject_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match="stepz"):
        KeypointMotionOptions.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="steps"):
        KeypointMotionOptions.from_dict({"steps": "many"})
    with pytest.raises(ValueError, match="window"):
        KeypointMotionOptions.from_dict({"window": 0})
    assert KeypointMotionOptions.from_dict({"lr": 1}).lr == 1.0


@pytest.mark.parametrize("changes", [{}, {"layers": 3, "dropout": 0.0, "mfcc_heads": 1, "components": 0},
                                     {"n_mfcc": 20, "mfcc_width": 8, "audio_width": 16, "heads": 4}])
def test_every_keypoint_motion_parameter_gets_a_gradient_at_every_step(changes):
    """Data-parallel training wraps the model without DDP's search for unused parameters (a parameter
    without a gradient would stop the launch at the next step): every one must get a gradient, read
    here from the parameters themselves after a step's loss."""
    import torch

    from bench.baselines.keypoint_motion import _motion_config, _MotionLoss, motion_model
    from imac.models.video import motion_training_scheduler
    options = dataclasses.replace(KeypointMotionOptions.from_dict(TINY_OPTIONS), **changes)
    pose_dim, head_dim, hubert_dim = (options.components or 40), (options.components or 12), 24
    model = motion_model(options, pose_dim, head_dim, hubert_dim).train()
    generator = torch.Generator().manual_seed(0)
    batch = [torch.randn(2, options.window, width, generator=generator)
             for width in (pose_dim, head_dim, options.n_mfcc, hubert_dim)]
    step_loss = _MotionLoss(model, motion_training_scheduler(_motion_config(options)))
    step_loss(*batch, generator).backward()
    assert [name for name, parameter in model.named_parameters()
            if parameter.requires_grad and parameter.grad is None] == []


def test_model_keeps_the_points_the_corpus_provides(trained):
    assert trained.facts["trained"] == "now" and trained.facts["steps"] == TINY_OPTIONS["steps"]
    points = set(trained.points)
    assert points <= set(KEYPOINT_POINTS)
    assert {5, 6, 7, 8, 9, 10} | set(wb.LEFT_HAND) | set(wb.RIGHT_HAND) <= points
    assert not points & {3, 4}                      # the toy body has no ears
    assert len(points & set(wb.FACE)) == 4          # only the mouth of the 68 face landmarks


def test_samples_have_the_clip_length_and_scores_of_the_modelled_points(trained, test_clip):
    keypoints = _sample(trained, test_clip, seed=0)
    assert keypoints.shape == (test_clip.num_frames, wb.NUM_KEYPOINTS, 3) and keypoints.dtype == np.float32
    modelled = np.zeros(wb.NUM_KEYPOINTS, bool)
    modelled[list(trained.points)] = True
    assert (keypoints[:, modelled, 2] == 1.0).all()
    assert (keypoints[:, ~modelled] == 0.0).all()
    assert np.isfinite(keypoints).all()


def test_samples_sit_on_the_reference_body(trained, test_clip):
    reference = reference_keypoints(test_clip)
    keypoints = _sample(trained, test_clip, seed=0)
    neck, width = reference_placement(reference, 0.3)
    generated_neck = np.median(keypoints[:, [5, 6], :2].mean(axis=1), axis=0)
    generated_width = np.median(np.linalg.norm(keypoints[:, 5, :2] - keypoints[:, 6, :2], axis=-1))
    assert np.linalg.norm(generated_neck - neck) < 0.5 * width
    assert 0.6 < generated_width / width < 1.6


def test_same_seed_same_keypoints_other_seed_other_keypoints(trained, test_clip):
    first = _sample(trained, test_clip, seed=3)
    np.testing.assert_array_equal(first, _sample(trained, test_clip, seed=3))
    assert not np.allclose(first, _sample(trained, test_clip, seed=4))


def test_saved_model_reloads_to_identical_samples(trained, test_clip):
    loaded = KeypointMotion.load(trained.folder)
    assert loaded.points == trained.points
    np.testing.assert_array_equal(_sample(loaded, test_clip, seed=5), _sample(trained, test_clip, seed=5))


def test_methods_share_one_keypoint_model_per_training_settings(corpus, tmp_path):
    first = _context(corpus, tmp_path / "work" / "s2g", dict(TINY_OPTIONS, steps=2))
    second = _context(corpus, tmp_path / "work" / "mya", dict(TINY_OPTIONS, steps=2))
    a = KeypointMotion.train_or_load_shared(first, dict(TINY_OPTIONS, steps=2))
    b = KeypointMotion.train_or_load_shared(second, dict(TINY_OPTIONS, steps=2))
    assert a.folder == b.folder and a.folder.parent == tmp_path / "work"
    assert b.facts["trained"] == "earlier"
    c = KeypointMotion.train_or_load_shared(second, dict(TINY_OPTIONS, steps=3))
    assert c.folder != a.folder


def test_second_train_or_load_loads(trained, corpus, work, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(KeypointMotion, "_train", classmethod(refuse))
    sampling_only = dict(TINY_OPTIONS, sample_steps=2, smoothing=0.0)
    loaded = KeypointMotion.train_or_load(_context(corpus, work), sampling_only, folder=trained.folder)
    assert loaded.facts["trained"] == "earlier"
    assert loaded.options.sample_steps == 2 and loaded.options.smoothing == 0.0
    with pytest.raises(AssertionError, match="trained again"):   # a training setting changed
        KeypointMotion.train_or_load(_context(corpus, work), dict(TINY_OPTIONS, steps=5),
                                     folder=trained.folder)


def test_retarget_gives_the_reference_bone_lengths(test_clip):
    reference = reference_keypoints(test_clip)
    neck = reference[[5, 6], :2].mean(axis=0)
    # The same pose, 1.4 times larger around the neck and moved: only its directions are kept.
    generated = reference.copy()
    generated[:, :2] = (reference[:, :2] - neck) * 1.4 + neck + np.array([5.0, -3.0])
    generated[reference[:, 2] <= 0] = 0.0
    moved = retarget(generated[None], reference, 0.3)[0]
    face = np.zeros(wb.NUM_KEYPOINTS, bool)
    face[[1, 2, 3, 4, *wb.FACE]] = True
    body = (reference[:, 2] > 0) & ~face
    np.testing.assert_allclose(moved[body, :2], reference[body, :2] + np.array([5.0, -3.0]), atol=1e-3)
    # The face keeps its generated shape (mouth opening), around the moved nose.
    shown_face = face & (reference[:, 2] > 0)
    np.testing.assert_allclose(moved[shown_face, :2] - moved[0, :2], generated[shown_face, :2] - generated[0, :2],
                               atol=1e-3)
    np.testing.assert_array_equal(moved[:, 2], generated[:, 2])


# -- the method ----------------------------------------------------------------------------------


def test_control_points_drop_the_hand_roots_that_repeat_the_wrists(test_clip):
    reference = reference_keypoints(test_clip)
    chosen = control_points(reference, reference, tuple(range(wb.NUM_KEYPOINTS)), 0.3, 1.0)
    assert 9 in chosen and 10 in chosen
    assert 91 not in chosen and 112 not in chosen
    assert all(reference[p, 2] >= 0.3 for p in chosen)


def test_s2g_generates_the_clip_length_at_the_clip_size(trained, corpus, work, test_clip):
    method = S2GMethod()
    facts = method.prepare(_context(corpus, work / "s2g"))
    assert facts["trained"] == "earlier" and facts["steps"] == TINY_OPTIONS["steps"]
    assert facts["parameters"] == trained.parameter_count and Path(facts["model"]).is_dir()
    frames = method.generate(test_clip, seed=0)
    assert frames.shape == (test_clip.num_frames, test_clip.height, test_clip.width, 3)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, method.generate(test_clip, seed=0))


def test_s2g_rejects_unknown_options(corpus, tmp_path):
    with pytest.raises(ValueError, match="tps_lambda"):
        S2GMethod().prepare(_context(corpus, tmp_path, dict(TINY_OPTIONS, tps_lambda=2.0)))
    with pytest.raises(ValueError, match="border_anchors"):
        S2GOptions.split({"border_anchors": 1})
    options, motion = S2GOptions.split({"regularization": 3, "steps": 7})
    assert options.regularization == 3 and motion.steps == 7 and dataclasses.is_dataclass(motion)


def test_the_keypoint_motion_samples_from_t_999_with_a_small_first_step_gain():
    """The baselines' motion sampler keeps its measured settings whatever IMAC's defaults: DDIM from
    t = 999 (trailing) on the linear schedule, whose first step at 10 steps multiplies the predicted
    noise's error by sqrt(abar_899) sqrt(1 - abar_999) / sqrt(abar_999) - sqrt(1 - abar_899)
    (computed here from the linear betas 1e-4 .. 2e-2 directly)."""
    from bench.baselines.keypoint_motion import _sampling_scheduler
    from imac.models.video import first_step_gain
    options = KeypointMotionOptions()
    assert options.beta_schedule == "linear" and options.sample_steps == 10
    scheduler = _sampling_scheduler(options)
    assert scheduler.config.timestep_spacing == "trailing"
    abar = np.cumprod(1 - np.linspace(1e-4, 2e-2, 1000))
    expected = np.sqrt(abar[899]) * np.sqrt(1 - abar[999]) / np.sqrt(abar[999]) - np.sqrt(1 - abar[899])
    assert first_step_gain(scheduler, 10) == pytest.approx(expected, rel=1e-3) and expected < 3
