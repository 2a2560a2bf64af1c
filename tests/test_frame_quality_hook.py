"""The frame quality and identity metrics through the evaluator's hook (metrics.registry.ClipMetric):
per-clip values equal the plain functions, reductions are the stated means / distance, missing
weights are skipped with a message naming the option, stand-ins are labelled with a star.

The registry entries these classes need are the evaluator owner's to add; until then the tests
register the proposed ones themselves (``SPECS`` below)."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import frame_quality as fq
from metrics import registry
from metrics.frechet import frechet_distance
from metrics.protocol import Protocol
from metrics.registry import ClipInputs, ClipValues, MetricSpec, MissingWeights
from tests.test_arcface import StubDetector, moved_template, write_arcface
from tests.test_lpips import save_standin

SPECS = {
    "psnr": MetricSpec("psnr", "PSNR", False, "peak signal-to-noise ratio", "Frame quality", reference=True,
                       paired=True, implementation="metrics.frame_quality:PeakSignalToNoise", unit="dB"),
    "ssim": MetricSpec("ssim", "SSIM", False, "structural similarity", "Frame quality", reference=True,
                       paired=True, implementation="metrics.frame_quality:StructuralSimilarity"),
    "lpips": MetricSpec("lpips", "LPIPS", True, "learned perceptual image patch similarity", "Frame quality",
                        reference=True, paired=True, implementation="metrics.frame_quality:PerceptualDistance",
                        weights="lpips"),
    "fid": MetricSpec("fid", "FID", True, "Fréchet inception distance on frames", "Frame quality", two_sided=True,
                      implementation="metrics.frame_quality:FrechetInceptionDistance", weights="inception"),
    "csim": MetricSpec("csim", "CSIM", False, "identity cosine similarity (ArcFace)", "Identity", reference=True,
                       implementation="metrics.frame_quality:IdentitySimilarity", weights="arcface"),
}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for key, spec in SPECS.items():
        if key not in registry.REGISTRY:
            monkeypatch.setitem(registry.REGISTRY, key, spec)


def inputs(frames, side="fake", truth=None, reference=None, source="clip.mp4"):
    return ClipInputs(source=source, side=side, fps=25.0, size=(frames.shape[2], frames.shape[1]), frames=frames,
                      truth=truth, reference=reference)


def clips(metric, pairs):
    return [ClipValues("a", f"c{k}", metric.clip(inputs(f, truth=t))) for k, (f, t) in enumerate(pairs)]


def test_psnr_and_ssim_share_one_computation_and_reduce_to_the_mean_over_clips():
    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8) for n in (3, 5)]
    fake = [np.clip(t + rng.integers(-30, 31, t.shape), 0, 255).astype(np.uint8) for t in truth]
    fake[1] = fake[1][:4]                                       # shorter than its real clip: 4 frames compared
    psnr, ssim = fq.PeakSignalToNoise(Protocol()), fq.StructuralSimilarity(Protocol())
    assert psnr.computation_name == ssim.computation_name == "psnr_ssim"
    values = clips(psnr, zip(fake, truth))
    assert values[1].values["psnr"].shape == (4,)
    np.testing.assert_allclose(values[0].values["ssim"], fq.ssim_frames(fake[0], truth[0]))
    expected = np.mean([fq.psnr_clip(f, t) for f, t in zip(fake, truth)])
    assert psnr.reduce([], values).compute() == pytest.approx(expected)
    assert ssim.reduce([], values).compute() == pytest.approx(np.mean([fq.ssim_clip(f, t) for f, t in zip(fake, truth)]))
    real = psnr.clip(inputs(truth[0], side="real", truth=truth[0]))
    assert (real["psnr"] == fq.PSNR_CAP_DB).all() and (real["ssim"] == 1).all()
    with pytest.raises(ValueError, match=r"clip\.mp4.*differ in size"):
        psnr.clip(inputs(fake[0][:, :20], truth=truth[0]))


def test_fid_hook_without_weights_is_fid_star_and_reduces_to_the_pooled_distance():
    metric = fq.FrechetInceptionDistance(Protocol())
    assert metric.pretrained is False and metric.label == "FID*"
    rng = np.random.default_rng(1)
    table = {}

    def features(frames):           # a cheap stand-in for the network: 16-d, one row per frame
        return np.stack([table.setdefault(f.tobytes(), rng.normal(size=16)) for f in frames])

    metric.features = features
    videos = {side: [rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8) for _ in range(2)] for side in ("r", "f")}
    real = [ClipValues("a", f"c{k}", metric.clip(inputs(v, side="real"))) for k, v in enumerate(videos["r"])]
    fake = [ClipValues("a", f"c{k}", metric.clip(inputs(v))) for k, v in enumerate(videos["f"])]
    a = np.concatenate([features(v) for v in videos["r"]])
    b = np.concatenate([features(v) for v in videos["f"]])
    expected = frechet_distance(b.mean(0), np.cov(b, rowvar=False), a.mean(0), np.cov(a, rowvar=False))
    result = metric.reduce(real, fake)
    assert result.compute() == pytest.approx(expected, rel=1e-5)            # features are cached as float32
    low, high = metric.reduce(real, fake).interval()
    assert np.isfinite(low) and np.isfinite(high) and low <= high
    general = fq.frame_fid(result.parts[True], result.parts[False])           # the GaussianStats route
    assert general == pytest.approx(expected, rel=1e-5)
    assert metric.counts(real, fake)["n_fake_frames"] == 6


def test_lpips_and_csim_without_weights_are_skipped_with_the_option_named():
    with pytest.raises(MissingWeights, match="--weights lpips=DIR"):
        fq.PerceptualDistance(Protocol())
    with pytest.raises(MissingWeights, match="--weights arcface=PATH"):
        fq.IdentitySimilarity(Protocol())


def test_lpips_hook_matches_the_function(tmp_path):
    save_standin(tmp_path, "alex")
    metric = fq.PerceptualDistance(Protocol(), weights=str(tmp_path))
    # stand-in files in the published layout, not the published files: trained, but starred
    assert metric.pretrained and metric.published is False and metric.label == "LPIPS*"
    assert metric.weights_id.startswith("lpips-alex-v0.1:")
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    fake = np.clip(truth + rng.integers(-40, 41, truth.shape), 0, 255).astype(np.uint8)
    values = clips(metric, [(fake, truth)])
    np.testing.assert_allclose(values[0].values["lpips"], metric.network(fake, truth))
    assert metric.reduce([], values).compute() == pytest.approx(values[0].values["lpips"].mean())


def test_csim_hook_records_per_frame_values_and_face_failures(tmp_path):
    path, _ = write_arcface(tmp_path / "arcface.onnx")
    metric = fq.IdentitySimilarity(Protocol(), weights=str(path))
    metric.embedder.detector = StubDetector(moved_template(0.1, 1.2, (30.0, 30.0)))
    rng = np.random.default_rng(3)
    frames = rng.integers(1, 256, (4, 200, 200, 3), dtype=np.uint8)
    frames[2, 0, 0] = 0
    values = metric.clip(inputs(frames, reference=frames[0].copy()))
    assert values["per_frame"][0] == pytest.approx(1.0) and np.isnan(values["per_frame"][2])
    assert int(values["frames_without_face"]) == 1 and bool(values["reference_found"])
    result = metric.reduce([], [ClipValues("a", "c0", values)])
    assert result.compute() == pytest.approx(np.nanmean(values["per_frame"]))


def test_the_proposed_registry_entries_name_loadable_classes():
    """``load_clip_metric`` finds each class from its ``implementation`` string; weight-free ones load,
    the others say which option they need."""
    for metric in ("psnr", "ssim"):
        assert registry.load_clip_metric(metric, Protocol()).id == metric
    for metric, option in (("lpips", "lpips"), ("csim", "arcface")):
        with pytest.raises(MissingWeights, match=f"--weights {option}="):
            registry.load_clip_metric(metric, Protocol())
