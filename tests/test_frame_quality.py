"""PSNR, SSIM and FID on frames against independent references: the formulas written out as loops,
and pytorch-fid's own numbers on the same images and stand-in weights (tests/fixtures/peers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics import frame_quality as fq
from metrics import inception
from metrics.frechet import frechet_distance
from metrics.protocol import Protocol
from tests.frame_quality_fixtures import parity_images

PEERS = Path(__file__).parent / "fixtures" / "peers"


def random_frames(seed: int, shape=(3, 20, 24, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- PSNR ------------------------------------------------------------------------------------------


def test_psnr_is_the_formula_per_frame_and_caps_identical_frames():
    truth = random_frames(0)
    frames = truth.copy()
    frames[0] = np.clip(truth[0].astype(int) + 7, 0, 255)
    frames[2] = random_frames(1)[2]
    values = fq.psnr_frames(frames, truth)
    for t in (0, 2):
        mse = np.mean((frames[t].astype(np.float64) - truth[t]) ** 2)
        assert values[t] == pytest.approx(10 * math.log10(255.0 ** 2 / mse), rel=1e-12)
    assert values[1] == fq.PSNR_CAP_DB
    assert fq.psnr_clip(frames, truth) == pytest.approx(values.mean())


def test_reference_metrics_compare_the_common_frames_and_refuse_other_sizes():
    truth = random_frames(0, (5, 20, 24, 3))
    assert fq.psnr_frames(truth[:3], truth).shape == (3,)
    with pytest.raises(ValueError, match="differ in size"):
        fq.psnr_frames(random_frames(0, (3, 20, 20, 3)), truth)
    with pytest.raises(TypeError, match="uint8"):
        fq.ssim_frames(truth.astype(np.float32), truth)
    with pytest.raises(ValueError, match="unknown SSIM preset"):
        fq.ssim_frames(truth, truth, preset="wang")


# -- SSIM ------------------------------------------------------------------------------------------


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def ssim_by_loop(x: np.ndarray, y: np.ndarray, window: np.ndarray, sample: bool) -> float:
    """Wang et al. (2004), eq. 13, at every position where the whole window lies in the image,
    averaged: written out from the paper, window by window."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = window.shape[0]
    n = window.size
    values = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            a, b = x[i:i + k, j:j + k], y[i:i + k, j:j + k]
            ma, mb = (window * a).sum(), (window * b).sum()
            va, vb = (window * (a - ma) ** 2).sum(), (window * (b - mb) ** 2).sum()
            cov = (window * (a - ma) * (b - mb)).sum()
            if sample:
                va, vb, cov = va * n / (n - 1), vb * n / (n - 1), cov * n / (n - 1)
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


@pytest.mark.parametrize("preset, window, sample", [
    ("gaussian", gaussian_window(), False),
    ("uniform7", np.full((7, 7), 1 / 49), True),
])
def test_ssim_matches_the_formula_written_out(preset, window, sample):
    truth = random_frames(2, (2, 18, 21, 3))
    noise = np.random.default_rng(3).integers(-40, 41, truth.shape)
    frames = np.clip(truth.astype(int) + noise, 0, 255).astype(np.uint8)
    values = fq.ssim_frames(frames, truth, preset)
    for t in range(2):
        x, y = truth[t].astype(np.float64), frames[t].astype(np.float64)
        expected = np.mean([ssim_by_loop(x[..., c], y[..., c], window, sample) for c in range(3)])
        assert values[t] == pytest.approx(expected, abs=1e-10)
    grey = fq.ssim_frames(frames, truth, preset + "-grey")
    luma = np.array([0.2125, 0.7154, 0.0721])
    expected = ssim_by_loop(truth[0] @ luma, frames[0] @ luma, window, sample)
    assert grey[0] == pytest.approx(expected, abs=1e-10)


def test_ssim_of_identical_frames_is_one_and_decreases_with_noise():
    truth = random_frames(4, (1, 32, 32, 3))
    assert fq.ssim_clip(truth, truth) == pytest.approx(1.0)
    rng = np.random.default_rng(5)
    scores = [fq.ssim_clip(np.clip(truth + rng.normal(0, s, truth.shape), 0, 255).astype(np.uint8), truth)
              for s in (5, 20, 60)]
    assert scores[0] > scores[1] > scores[2]


# -- FID on frames ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parity_weights(tmp_path_factory) -> Path:
    """The stand-in weights of the recorded pytorch-fid run, saved in the published layout."""
    path = tmp_path_factory.mktemp("inception") / "standin_inception.pth"
    state = inception.init_standin_(inception.FIDInceptionV3(), 2015).state_dict()
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    return path


def test_fid_features_and_distance_match_pytorch_fid(parity_weights, caplog):
    peer = json.loads((PEERS / "fid_pytorch_fid.json").read_text())
    features = inception.load_fid_inception(parity_weights, batch_size=3)
    assert features.is_pretrained and features.feature_id.startswith("fid-inception-2015-12-05:")
    assert "is not the published" in caplog.text         # a stand-in file is named as such
    assert features.published is False                   # and the hook stars it: FID*, not FID
    hook = fq.FrechetInceptionDistance(Protocol(), weights=str(parity_weights))
    assert (hook.pretrained, hook.published, hook.label) == (True, False, "FID*")
    ours = {seed: features(parity_images(seed, 3)) for seed in (0, 1)}
    for seed in (0, 1):
        np.testing.assert_allclose(ours[seed][:, :8], peer["outputs"]["features_first8"][str(seed)],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours[seed].sum(axis=1), peer["outputs"]["features_sum"][str(seed)], rtol=1e-6)
    # the route without a 2048 x 2048 matrix (3 frames a side); the general route is checked against
    # it below, on fewer dimensions (a 2048-d eigendecomposition takes 10-20 s on this machine)
    assert fq.frechet_distance_of_features(ours[0], ours[1]) == pytest.approx(peer["outputs"]["fid"], rel=1e-5)


@pytest.mark.parametrize("n_real, n_fake, covariance", [(10, 15, "unbiased"), (7, 5, "biased"), (60, 70, "unbiased")])
def test_frechet_distance_of_features_equals_the_distance_of_the_fitted_gaussians(n_real, n_fake, covariance):
    rng = np.random.default_rng(n_real)
    mix = rng.normal(size=(40, 40)) / 6
    real = rng.normal(size=(n_real, 40)) @ mix
    fake = rng.normal(0.2, 1.3, size=(n_fake, 40)) @ mix
    ddof = 1 if covariance == "unbiased" else 0
    expected = frechet_distance(real.mean(0), np.cov(real, rowvar=False, ddof=ddof),
                                fake.mean(0), np.cov(fake, rowvar=False, ddof=ddof))
    # With singular covariances the eigen route sums square roots of rounding-level eigenvalues
    # (about 3e-8 relative here); the 40-digit value below sides with the singular-value route.
    assert fq.frechet_distance_of_features(real, fake, covariance) == pytest.approx(expected, rel=1e-7)
    with pytest.raises(ValueError, match="at least 2"):
        fq.frechet_distance_of_features(real[:1], fake)


def test_frechet_distance_of_few_features_matches_a_40_digit_computation():
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(10)
    mix = rng.normal(size=(40, 40)) / 6
    real, fake = rng.normal(size=(10, 40)) @ mix, rng.normal(0.2, 1.3, size=(15, 40)) @ mix
    with mpmath.workdps(40):
        a = mpmath.matrix((real - real.mean(0)).tolist())
        b = mpmath.matrix((fake - fake.mean(0)).tolist())
        trace_sqrt = sum(mpmath.svd_r(a * b.T, compute_uv=False)) / mpmath.sqrt(9 * 14)
        diff = real.mean(0) - fake.mean(0)
        exact = (float(diff @ diff) + sum(x ** 2 for x in a) / 9 + sum(x ** 2 for x in b) / 14 - 2 * trace_sqrt)
    assert fq.frechet_distance_of_features(real, fake) == pytest.approx(float(exact), rel=1e-13)


def test_frame_fid_is_the_frechet_distance_of_the_pooled_frames():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(40, 5)), rng.normal(0.3, 1.2, size=(30, 5))
    parts_real = [fq.clip_fid_stats(np.zeros((20, 2, 2, 3), np.uint8), lambda f, k=k: real[k * 20:(k + 1) * 20],
                                    dim=5) for k in range(2)]
    part_fake = fq.clip_fid_stats(np.zeros((60, 2, 2, 3), np.uint8), lambda f: fake[:len(f)], frame_stride=2, dim=5)
    assert part_fake.count == 30
    expected = frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
    assert fq.frame_fid(parts_real, [part_fake]) == pytest.approx(expected, rel=1e-10)


def test_inception_loader_names_a_wrong_file(tmp_path, parity_weights):
    state = torch.load(parity_weights, weights_only=True)
    broken = dict(state)
    del broken["Mixed_7c.branch_pool.conv.weight"]
    broken["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(1, 1, 1, 1)
    broken["aux.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"broken\.pth(.|\n)*missing keys \(1\): Mixed_7c(.|\n)*"
                                         r"unexpected keys \(1\): aux\.weight(.|\n)*wrong shapes"):
        inception.load_fid_inception(path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ValueError, match="garbage.pth"):
        inception.load_fid_inception(garbage)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        inception.load_fid_inception(tmp_path / "nowhere.pth")


def test_inception_loader_reads_bounded(tmp_path, monkeypatch, parity_weights):
    monkeypatch.setattr(inception, "MAX_INCEPTION_BYTES", 1 << 20)
    with pytest.raises(ValueError, match="refused"):
        inception.load_fid_inception(parity_weights)


def test_without_weights_the_network_is_a_labelled_standin():
    features = inception.load_fid_inception(None, seed=3)
    assert not features.is_pretrained and features.feature_id == "fid-inception-standin-seed3"
    with pytest.raises(TypeError, match="uint8"):
        features(np.zeros((1, 8, 8, 3), np.float32))
