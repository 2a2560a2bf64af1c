"""IMAC networks: shapes, zero-initialised coupling, gradients, configs (tiny, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imac.config import ConfigError, IMACConfig, load_config
from imac.models.audio_encoder import AudioEncoder
from imac.models.coupling import Coupling, ReferenceEncoder, coupled_layers, motion_windows
from imac.models.motion import MotionModel
from imac.models.system import gather_frames
from imac.models.video import build_unet, image_condition
from imac.pipeline import build_motion


@pytest.fixture(scope="module")
def config() -> IMACConfig:
    return load_config("tiny")


@pytest.fixture()
def unet(config):
    torch.manual_seed(0)
    return build_unet(config.video).eval()


def unet_inputs(batch=2, frames=4, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(batch, 4, frames, size, size, generator=g),
                timestep=torch.tensor([10, 500][:batch]), fps=torch.full((batch,), 25.0),
                image_latents=torch.randn(batch, 4, frames, size, size, generator=g),
                image_embeddings=torch.randn(batch, 1, 32, generator=g),
                encoder_hidden_states=torch.zeros(batch, 0, 32))


def test_audio_encoder_shapes():
    encoder = AudioEncoder(n_mfcc=13, hubert_dim=16, mfcc_width=8, mfcc_heads=2, width=24)
    out = encoder(torch.randn(3, 20, 13), torch.randn(3, 20, 16))
    assert out.shape == (3, 20, 24)
    with pytest.raises(ValueError, match="frames"):
        encoder(torch.randn(3, 20, 13), torch.randn(3, 19, 16))


def test_motion_model_shapes_and_normalisation_round_trip():
    model = MotionModel(pose_dim=9, expression_dim=5, n_mfcc=13, hubert_dim=16, width=16, heads=2, audio_width=8,
                        mfcc_width=8)
    out = model(torch.randn(2, 30, 9), torch.randn(2, 30, 5), torch.randn(2, 30, 13), torch.randn(2, 30, 16),
                torch.tensor([3, 700]))
    assert out.pose_noise.shape == (2, 30, 9) and out.expression_noise.shape == (2, 30, 5)
    assert out.features.shape == (2, 30, 32) == (2, 30, model.feature_width)
    rng = np.random.default_rng(0)
    pose, expression = rng.normal(3, 2, (500, 9)), rng.normal(-1, 0.5, (500, 5))
    model.set_normalization(pose, expression)
    normal_pose, normal_expression = model.normalize(torch.tensor(pose, dtype=torch.float32),
                                                     torch.tensor(expression, dtype=torch.float32))
    assert abs(float(normal_pose.mean())) < 1e-4 and abs(float(normal_pose.std()) - 1) < 1e-2
    back, _ = model.denormalize(normal_pose, normal_expression)
    np.testing.assert_allclose(back.numpy(), pose, atol=1e-4)


def _fit_noise_prediction(stream, scales: torch.Tensor, timesteps: list[int], steps: int
                          ) -> tuple[dict[int, float], torch.Tensor]:
    """Train ``stream`` to predict the noise of Gaussian motion N(0, diag(scales^2)) at ``timesteps``
    (squaredcos_cap_v2, no audio); its noise-prediction MSE per timestep on fresh draws."""
    from diffusers import DDPMScheduler
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(stream.parameters(), lr=3e-3)
    dims = len(scales)

    def draw(t: int, batch: int = 32):
        motion = torch.randn(batch, 8, dims, generator=generator) * scales
        noise = torch.randn(batch, 8, dims, generator=generator)
        steps_ = torch.full((batch,), t)
        return scheduler.add_noise(motion, noise, steps_), noise, steps_

    audio = torch.zeros(32, 8, 4)
    for step in range(steps):
        noisy, noise, t = draw(timesteps[step % len(timesteps)])
        loss = torch.nn.functional.mse_loss(stream(noisy, audio, t)[0], noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    errors = {}
    with torch.no_grad():
        for t in timesteps:
            noisy, noise, steps_ = draw(t, 256)
            errors[t] = float(((stream(noisy, torch.zeros(256, 8, 4), steps_)[0] - noise) ** 2).mean())
    return errors, scheduler.alphas_cumprod


def test_a_motion_stream_narrower_than_its_motion_learns_the_noise_with_the_skip():
    """24 motion numbers through 8 hidden channels. Reference: for Gaussian motion the least possible
    noise-prediction error of dimension d at step t is abar s_d^2 / (abar s_d^2 + 1 - abar) (the
    variance of the noise given the noisy value), and a prediction confined to 8 dimensions (no skip)
    errs by at least (24 - 8) / 24 of the noise's variance at t = 999, where the noisy motion is the
    noise (rank bound)."""
    from imac.models.motion import MotionStream
    scales = torch.linspace(0.5, 1.5, 24)
    timesteps = [999, 700]
    results = {}
    for skip in (False, True):
        torch.manual_seed(0)
        stream = MotionStream(24, audio_width=4, width=8, layers=1, heads=2, dropout=0.0, noise_skip=skip)
        results[skip], abar = _fit_noise_prediction(stream, scales, timesteps, steps=300)
    for t in timesteps:
        a = float(abar[t])
        least = float(torch.mean(a * scales ** 2 / (a * scales ** 2 + 1 - a)))
        assert least - 0.02 < results[True][t] < least + 0.03, (t, results[True][t], least)
    assert results[False][999] >= (24 - 8) / 24 - 0.03          # the rank bound (sampling error of 256 draws)
    assert results[True][999] < 0.05


def test_the_default_motion_sampler_does_not_amplify_its_first_step():
    """The default DDIM spacing of the motion (leading) passes the predicted noise's error on about 1:1;
    trailing would multiply it by over a thousand (the gain itself is checked against the cosine
    schedule's formula in test_imac_sampling.py)."""
    from imac.config import MotionConfig
    from imac.models.video import first_step_gain, motion_sampling_scheduler
    config = MotionConfig()
    assert config.sample_spacing == "leading" and config.noise_skip
    assert first_step_gain(motion_sampling_scheduler(config), config.sample_steps) < 1.1


def test_without_motion_the_encoders_ignore_the_motion_input():
    torch.manual_seed(0)
    model = MotionModel(pose_dim=9, expression_dim=5, width=16, heads=2, use_motion=False).eval()
    audio = torch.randn(1, 10, 13), torch.randn(1, 10, 16)
    t = torch.tensor([5])
    a = model(torch.randn(1, 10, 9), torch.randn(1, 10, 5), *audio, t).features
    b = model(torch.randn(1, 10, 9), torch.randn(1, 10, 5), *audio, t).features
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="no motion loss"):
        model.loss(torch.zeros(1, 10, 9), torch.zeros(1, 10, 5), *audio, scheduler=None)


def test_motion_windows_match_a_direct_loop():
    features = torch.randn(2, 7, 3)
    windows = motion_windows(features, 2)
    assert windows.shape == (14, 5, 3)
    for b in range(2):
        for f in range(7):
            for k, offset in enumerate(range(-2, 3)):
                source = min(max(f + offset, 0), 6)
                torch.testing.assert_close(windows[b * 7 + f, k], features[b, source])


def test_gather_frames_matches_slicing_and_refuses_windows_outside():
    features = torch.randn(3, 20, 4)
    starts = torch.tensor([0, 4, 15])
    out = gather_frames(features, starts, 5)
    for b, start in enumerate(starts.tolist()):
        torch.testing.assert_close(out[b], features[b, start:start + 5])
    with pytest.raises(ValueError, match="outside the motion window"):
        gather_frames(features, torch.tensor([0, 0, 16]), 5)


def test_coupled_layers_are_the_spatial_cross_attentions_with_their_levels(unet):
    layers = coupled_layers(unet)
    assert [l.name.split(".")[0] for l in layers] == ["down_blocks", "up_blocks", "up_blocks", "mid_block"]
    assert all(l.name.endswith("attn2") and ".attentions." in l.name for l in layers)
    assert {(l.width, l.level) for l in layers} == {(32, 0), (64, 1)}


def test_reference_encoder_gives_one_map_per_level():
    maps = ReferenceEncoder(4, [16, 32, 32])(torch.randn(2, 4, 9, 9))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 9, 9), (2, 32, 5, 5), (2, 32, 3, 3)]


def test_zero_initialised_coupling_leaves_the_unet_output_unchanged(unet):
    inputs = unet_inputs()
    with torch.no_grad():
        before = unet(**inputs).sample
        coupling = Coupling.for_unet(unet, motion_width=12, context_width=16, motion_window=1,
                                     reference_widths=[8, 16])
        coupling.install(unet)
        coupling.prepare(4, torch.randn(2, 4, 12), torch.randn(2, 4, 8, 8), torch.ones(2))
        after = unet(**inputs).sample
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    # ... and once the zero-initialised projections are nonzero, both terms change it.
    with torch.no_grad():
        for module in [*coupling.motion_attention, *coupling.reference_out]:
            for parameter in (module.to_out.weight if hasattr(module, "to_out") else module.weight,):
                parameter.normal_(0, 0.1)
        coupling.prepare(4, torch.randn(2, 4, 12), None)
        motion_only = unet(**inputs).sample
        coupling.prepare(4, None, torch.randn(2, 4, 8, 8))
        reference_only = unet(**inputs).sample
    assert (motion_only - before).abs().max() > 1e-4
    assert (reference_only - before).abs().max() > 1e-4


def test_motion_scale_zero_drops_the_motion_term_per_sample(unet):
    coupling = Coupling.for_unet(unet, motion_width=12, context_width=16, motion_window=0, reference_widths=None)
    coupling.install(unet)
    for module in coupling.motion_attention:
        torch.nn.init.normal_(module.to_out.weight, 0, 0.1)
    inputs = unet_inputs()
    motion = torch.randn(2, 4, 12)
    with torch.no_grad():
        coupling.prepare(4, None, None)
        plain = unet(**inputs).sample
        coupling.prepare(4, motion, None, torch.tensor([0.0, 1.0]))
        mixed = unet(**inputs).sample
    torch.testing.assert_close(mixed[0], plain[0], rtol=0, atol=1e-6)
    assert (mixed[1] - plain[1]).abs().max() > 1e-4


def test_coupling_refuses_another_layout_and_mismatched_inputs(unet, config):
    coupling = Coupling.for_unet(unet, 12, 16, 1, [8, 16])
    other = build_unet(load_config("tiny", ["video.unet.layers_per_block=2"]).video)
    with pytest.raises(ValueError, match="another UNet layout"):
        coupling.install(other)
    with pytest.raises(ValueError, match="cover 3 frames"):
        coupling.prepare(4, torch.randn(2, 3, 12), None)
    coupling.install(unet)
    coupling.prepare(4, None, torch.randn(2, 4, 6, 6))
    with pytest.raises(ValueError, match="reference latents must have the video latents"):
        unet(**unet_inputs())
    with pytest.raises(ValueError, match="reference_widths"):
        Coupling.for_unet(unet, 12, 16, 1, [8])


def test_motion_map_is_zero_at_start_then_places_the_pose_on_the_latent_grid(unet):
    """The spatial motion map (video.motion_map): zero-initialised like the other terms, drawn from the
    last pose_width numbers of the motion features only, pooled by 2 per level, dropped with the motion."""
    inputs = unet_inputs()
    plain = Coupling.for_unet(unet, 12, 16, 0, None)
    torch.manual_seed(1)
    mapped = Coupling.for_unet(unet, 12, 16, 0, None, pose_width=5, motion_map_channels=3, map_size=8)
    mapped.motion_attention.load_state_dict(plain.motion_attention.state_dict())
    mapped.motion_proj.load_state_dict(plain.motion_proj.state_dict())
    for module in plain.motion_attention:
        torch.nn.init.normal_(module.to_out.weight, 0, 0.1)
    mapped.motion_attention.load_state_dict(plain.motion_attention.state_dict())
    features, latents = torch.randn(2, 4, 12), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        plain.install(unet)
        plain.prepare(4, features, latents)
        before = unet(**inputs).sample
        mapped.install(unet)
        mapped.prepare(4, features, latents)
        torch.testing.assert_close(unet(**inputs).sample, before, rtol=0, atol=1e-6)  # zero-initialised out
        for conv in mapped.motion_map_out:
            torch.nn.init.normal_(conv.weight, 0, 0.1)
        mapped.prepare(4, features, latents)
        with_map = unet(**inputs).sample
        maps = mapped.state.motion_maps
        other_head = features.clone()
        other_head[..., :7] = torch.randn(2, 4, 7)                  # the representation part, not the pose
        mapped.prepare(4, other_head, latents)
        same_maps = mapped.state.motion_maps
        mapped.prepare(4, features, latents, torch.zeros(2))
        dropped = unet(**inputs).sample
    assert (with_map - before).abs().max() > 1e-4
    # the map: linear(pose) viewed as (3, 8, 8), plus conv(silu(.)), from the last 5 numbers per frame
    pose, F = features[..., -5:].flatten(0, 1), torch.nn.functional
    with torch.no_grad():
        grid = (pose @ mapped.motion_map.linear.weight.T + mapped.motion_map.linear.bias).view(8, 3, 8, 8)
        grid = grid + F.conv2d(F.silu(grid), mapped.motion_map.conv.weight, mapped.motion_map.conv.bias, padding=1)
    torch.testing.assert_close(maps[0], grid)
    blocks = grid.numpy().reshape(8, 3, 4, 2, 4, 2).mean(axis=(3, 5))  # mean of each 2 x 2 block
    np.testing.assert_allclose(maps[1].numpy(), blocks, rtol=1e-5, atol=1e-6)
    for a, b in zip(maps, same_maps):
        torch.testing.assert_close(a, b)
    # motion scale 0 drops the map with the rest of the motion term: the UNet computes what it computed
    plain.install(unet)
    with torch.no_grad():
        plain.prepare(4, None, latents)
        no_motion = unet(**inputs).sample
    torch.testing.assert_close(dropped, no_motion, rtol=0, atol=1e-6)
    # an odd latent grid (9 x 9): the levels round up as the UNet's downsampling does (9 -> 5), each
    # pooled cell the mean of the map's cells inside the grid
    odd_inputs = unet_inputs(size=9)
    mapped.install(unet)
    with torch.no_grad():
        mapped.prepare(4, features, torch.randn(2, 4, 9, 9))
        assert torch.isfinite(unet(**odd_inputs).sample).all()
    fine, coarse = mapped.state.motion_maps
    assert coarse.shape[-2:] == (5, 5)
    torch.testing.assert_close(coarse[..., 4, 4], fine[..., 8, 8])
    torch.testing.assert_close(coarse[..., 4, 1], fine[..., 8, 2:4].mean(-1))
    torch.testing.assert_close(coarse[..., 1, 1], fine[..., 2:4, 2:4].mean((-2, -1)))
    with torch.no_grad():
        mapped.prepare(4, features, torch.randn(2, 4, 6, 6))       # not the video latents' grid: named
        with pytest.raises(ValueError, match="motion map .* does not match layer"):
            unet(**inputs)
    with pytest.raises(ValueError, match="pose's width inside"):
        Coupling.for_unet(unet, 12, 16, 0, None, pose_width=12, motion_map_channels=3, map_size=8)
    with pytest.raises(ValueError, match="needs the reference latents"):
        mapped.prepare(4, features, None)


def test_image_condition_is_i2vgenxl_layout():
    latents = torch.randn(2, 4, 3, 3)
    condition = image_condition(latents, 5)
    assert condition.shape == (2, 4, 5, 3, 3)
    torch.testing.assert_close(condition[:, :, 0], latents)
    for k in range(1, 5):
        assert torch.all(condition[:, :, k] == k / 4)


def test_packaged_configs_load_and_typos_are_named():
    tiny = load_config("tiny")
    real = load_config("i2vgenxl")
    assert tiny.stage1.motion_frames == real.stage1.motion_frames == 80
    assert tiny.video.frames == real.video.frames == 16
    assert real.stage1.lr == 1e-4 and real.stage2.lr == 1e-5 and real.video.guidance_scale == 3.5
    assert real.data.resolution == 512
    assert load_config("tiny", ["stage1.lr=0.5", "video.reference_encoder=false"]).stage1.lr == 0.5
    with pytest.raises(ConfigError, match="stage1: unknown key.*lrr"):
        load_config("tiny", ["stage1.lrr=1"])
    with pytest.raises(ConfigError, match="stage1.steps: expected an integer"):
        load_config("tiny", ["stage1.steps=many"])
    with pytest.raises(FileNotFoundError, match="not a packaged config.*i2vgenxl, tiny"):
        load_config("nope")


def test_real_config_names_the_missing_pretrained_folder():
    config = load_config("i2vgenxl", ["video.pretrained=/nowhere/i2vgen-xl"])
    with pytest.raises(FileNotFoundError, match="/nowhere/i2vgen-xl/unet"):
        build_unet(config.video)


def test_motion_width_comes_from_the_config(config):
    model = build_motion(config, pose_dim=129, hubert_dim=16)
    assert model.feature_width == 2 * config.motion.width
    assert model.config.expression_dim == config.motion.expression_dim
