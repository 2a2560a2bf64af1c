"""benchmarks/imac_switches.py: the real-motion oracle hands the video branch the clip's own motion; --set."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from imac.audio_features import load_hubert
from imac.config import load_config
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


@pytest.mark.parametrize("arguments, message", [
    (["--set", "stage2.steps=3"], "--set stage2.steps=3: not a sampling setting"),
    (["--set", "video.noise_correlation=2"], "must be >= 0 and <= 1, got 2"),
    (["--set", "video.noise_correlation=abc"], "expected a number, got 'abc'"),
    (["--set", "video.noise_correlation"], "expected key.sub=value"),
    (["--variants", "defaults,nope"], "--variants: unknown nope"),
])
def test_bad_settings_are_refused_in_a_line_before_the_model_loads(tmp_path, capsys, monkeypatch, arguments, message):
    monkeypatch.setattr(imac_switches.IMACPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(SystemExit) as stopped:
        imac_switches.main(["--run", str(tmp_path), "--set", "video.noise_correlation=0.5", *arguments])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and message in err and "Traceback" not in err


class Sampled(Exception):
    pass


def test_set_reaches_the_sampler_with_steps_guidance_and_spaces(tmp_path, monkeypatch, capsys):
    """--set is what the variant samples with, the run's steps and guidance too when it names them, and a
    key written with spaces is the same key (the variant's defaults must not undo it)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "data").symlink_to(make_corpus(tmp_path / "toy"))
    (run / "run.json").write_text('{"seed": 0, "config": {"methods": {"imac": {"sample_steps": 10, '
                                  '"guidance_scale": 1.0}}}}')
    seen = []

    class Stub:
        config = load_config("tiny")

        def __call__(self, *args, steps=None, guidance_scale=None, **kwargs):
            seen.append((steps, guidance_scale, self.config.video.noise_correlation,
                         self.config.video.sample_strength))
            raise Sampled

    monkeypatch.setattr(imac_switches.IMACPipeline, "from_pretrained", lambda *a, **k: Stub())
    for sets in ([], ["video.sample_steps=4", "video.guidance_scale=2.5", " video.noise_correlation = 0.5 "]):
        with pytest.raises(Sampled):
            imac_switches.main(["--run", str(run), "--variants", "defaults", *[a for s in sets for a in ("--set", s)]])
    assert seen == [(10, 1.0, 0.0, 0.5), (4, 2.5, 0.5, 0.5)]
    # a strength that keeps none of the run's 10 steps: one line, before any clip is sampled
    with pytest.raises(SystemExit):
        imac_switches.main(["--run", str(run), "--variants", "defaults", "--set", "video.sample_strength=0.05"])
    assert len(seen) == 2
    assert "video.sample_strength 0.05 keeps no step of 10" in capsys.readouterr().err
    # one that keeps a step of the config's 10 but none of the run's 3 is refused with the run's steps
    (run / "run.json").write_text('{"seed": 0, "config": {"methods": {"imac": {"sample_steps": 3}}}}')
    with pytest.raises(SystemExit):
        imac_switches.main(["--run", str(run), "--variants", "defaults", "--set", "video.sample_strength=0.2"])
    assert len(seen) == 2
    assert "variant defaults with --set: video.sample_strength 0.2 keeps no step of 3" in capsys.readouterr().err


def test_join_ratios_match_a_direct_loop_with_missing_values():
    rng = np.random.default_rng(4)
    series = rng.normal(size=(50, 3))
    series[7, 1] = np.nan                       # a point the extractor missed in one frame
    joins = [20, 40]
    speed_at, speed_in, jerk_at, jerk_in = [], [], [], []
    for f in range(49):
        present = [abs(series[f + 1, d] - series[f, d]) for d in range(3)
                   if np.isfinite(series[f + 1, d]) and np.isfinite(series[f, d])]
        (speed_at if f + 1 in joins else speed_in).append(sum(present) / len(present))
    for f in range(47):
        present = [abs(series[f + 3, d] - 3 * series[f + 2, d] + 3 * series[f + 1, d] - series[f, d])
                   for d in range(3) if all(np.isfinite(series[f + k, d]) for k in range(4))]
        (jerk_at if any(f < j <= f + 3 for j in joins) else jerk_in).append(sum(present) / len(present))
    speed, jerk = imac_switches.join_ratios(series, joins)
    assert speed == pytest.approx(np.mean(speed_at) / np.mean(speed_in))
    assert jerk == pytest.approx(np.mean(jerk_at) / np.mean(jerk_in))


def test_a_jump_at_the_joins_stands_out_of_the_in_window_range_and_a_smooth_signal_does_not():
    frames, window = 400, 80
    t = np.arange(frames)[:, None]
    smooth = np.sin(2 * np.pi * t / 37.0) + 0.3 * np.cos(2 * np.pi * t / 11.0)
    real, pseudo = imac_switches.join_profile(smooth, window, 0)
    assert pseudo.shape == (window - 5, 2)
    for k in range(2):
        assert pseudo[:, k].min() <= real[k] <= pseudo[:, k].max()
    jumped = smooth + 3.0 * (t // window)       # a step at every window join
    real, pseudo = imac_switches.join_profile(jumped, window, 0)
    assert (real > pseudo.max(axis=0)).all()
    assert "above 100% of them" in imac_switches.profile_summary(real[0], pseudo[:, 0])
    # windows overlapping 16 frames: a join every 64 frames (at 80, 144, ...), positions 3 .. 61 between them
    joins = [keep for _, _, keep in imac_switches.motion_windows(frames, window, 16)][1:]
    assert joins[:3] == [80, 144, 208]
    jumped = smooth + 3.0 * np.searchsorted(joins, t[:, 0], side="right")[:, None]
    real, pseudo = imac_switches.join_profile(jumped, window, 16)
    assert pseudo.shape == (64 - 5, 2) and (real > pseudo.max(axis=0)).all()
