"""benchmarks/imac_switches.py: the real-motion oracle hands the video branch the clip's own motion; --set."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from imac.audio_features import load_hubert
from imac.pipeline import IMACPipeline
from imac.training.trainer import build_stage_model
from tests.imac_fixtures import make_corpus, make_vae, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import imac_switches  # noqa: E402


def test_real_motion_is_the_clips_motion_over_the_speechs_frames(tmp_path):
    config = tiny_config(make_corpus(tmp_path / "toy"), make_vae(tmp_path / "vae"), tmp_path / "run",
                         ["video.motion_map=2", "stage1.motion_frames=24"])
    torch.manual_seed(0)
    model = build_stage_model(config, "stage2", pose_dim=6, hubert_dim=16, normalization=None).eval()
    model.motion.pose_mean.fill_(0.5)
    model.motion.pose_std.fill_(2.0)
    pipeline = IMACPipeline(config, model, load_hubert(tiny=True), "tiny-seed0", "stage2")
    rng = np.random.default_rng(0)
    real = {"pose": rng.normal(size=(30, 6)).astype(np.float32),
            "expression": rng.normal(size=(30, 100)).astype(np.float32)}
    clip = SimpleNamespace(load_motion=lambda: real)
    mfcc, hubert = rng.normal(size=(40, 13)).astype(np.float32), rng.normal(size=(40, 16)).astype(np.float32)
    pose, expression, features = imac_switches.real_motion(pipeline, clip)(mfcc, hubert)
    assert pose.shape == (1, 40, 6) and expression.shape == (1, 40, 100)
    expected = np.concatenate([real["pose"], np.repeat(real["pose"][-1:], 10, axis=0)])   # the last frame held
    np.testing.assert_allclose(pose[0].numpy(), (expected - 0.5) / 2.0, rtol=1e-6)
    assert features.shape == (1, 40, model.video_feature_width)
    # per 24-frame window as the sampler computes them: frames 24..39 are the second window's
    with torch.no_grad():
        second = model.video_features(pose[:, 24:], expression[:, 24:], torch.from_numpy(mfcc[None, 24:]),
                                      torch.from_numpy(hubert[None, 24:]))
    torch.testing.assert_close(features[:, 24:], second)
    np.testing.assert_allclose(features[0, :, -6:].numpy(), pose[0].numpy())    # the map's pose


def test_set_refuses_a_setting_the_weights_fixed(tmp_path, capsys):
    with pytest.raises(SystemExit):
        imac_switches.main(["--run", str(tmp_path), "--set", "video.noise_correlation=0.5",
                            "--set", "stage2.steps=3"])
    err = capsys.readouterr().err
    assert "--set stage2.steps=3: not a sampling setting" in err and "video.noise_correlation" in err
