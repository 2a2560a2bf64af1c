"""Frame/tensor conversions (imac.frames) and VAE training (imac.training.autoencoder), on CPU."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from imac.frames import NonFiniteError, frames_to_tensor, load_image, tensor_to_frames
from metrics.dataset import Dataset, write_manifest
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from imac.training.autoencoder import (TINY_VAE_KWARGS, TINY_VAE_RESOLUTIONS, TINY_VAE_TRAINING, TRAINING_CARD,
                                       chroma_weights, count_parameters, reconstruct, reconstruction_error,
                                       tiny_vae_kwargs, tiny_vae_training, train_autoencoder)

# A very small VAE (3 blocks, /4) for the training tests; 32 px frames -> 8x8x4 latents.
SMALL_VAE = dict(TINY_VAE_KWARGS, block_out_channels=(8, 8, 16), norm_num_groups=4, sample_size=32)
RESOLUTION = 32
STEPS = 30


def random_frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- frames_to_tensor / tensor_to_frames ---------------------------------------------------------


def test_round_trip_is_exact_at_the_same_size():
    frames = random_frames((3, 12, 12, 3))
    x = frames_to_tensor(frames, 12)
    assert x.shape == (3, 3, 12, 12) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(tensor_to_frames(x), frames)


def test_tensor_to_frames_clamps_and_rounds():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    frames = tensor_to_frames(x)
    assert frames.shape == (1, 1, 5, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0, 0, :, 0], [0, 0, 128, 255, 255])  # 127.5 rounds half to even


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_tensor_to_frames_refuses_nan_and_infinite_values_counting_them(bad):
    # cast to uint8 they would be black or arbitrary pixels without a word
    x = torch.zeros(2, 3, 4, 5)
    x[1, 2, 3, 4] = bad
    x[0, 0, 0, 0] = bad
    with pytest.raises(NonFiniteError, match=r"^MYA's frames: 2 of 120 values are NaN or infinite$"):
        tensor_to_frames(x, "MYA's frames")


@pytest.mark.parametrize("shape, rows, cols", [((2, 10, 16, 3), slice(0, 10), slice(3, 13)),
                                               ((2, 17, 11, 3), slice(3, 14), slice(0, 11))])
def test_center_crop_takes_the_centre_square(shape, rows, cols):
    frames = random_frames(shape, seed=1)
    side = min(shape[1:3])
    np.testing.assert_array_equal(tensor_to_frames(frames_to_tensor(frames, side)), frames[:, rows, cols])


def test_downscale_matches_pil_bilinear():
    # PIL's BILINEAR resize filters with the same support as antialiased bilinear interpolation.
    smooth = np.kron(random_frames((1, 16, 16, 3), seed=2), np.ones((1, 4, 4, 1), np.uint8))  # 64x64
    ours = tensor_to_frames(frames_to_tensor(smooth, 24))[0].astype(int)
    pil = np.asarray(Image.fromarray(smooth[0]).resize((24, 24), Image.BILINEAR)).astype(int)
    assert np.abs(ours - pil).max() <= 1


def test_constant_frames_stay_constant_when_resized():
    frames = np.full((1, 40, 60, 3), (10, 200, 99), np.uint8)
    out = tensor_to_frames(frames_to_tensor(frames, 16))
    assert out.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(out, np.broadcast_to(frames[:, :16, :16], out.shape))


@pytest.mark.parametrize("frames, message", [
    (np.zeros((8, 8, 3), np.uint8), "shape"),
    (np.zeros((1, 8, 8, 4), np.uint8), "shape"),
    (np.zeros((1, 8, 8, 3), np.float32), "uint8"),
])
def test_frames_to_tensor_rejects_bad_frames(frames, message):
    with pytest.raises(ValueError, match=message):
        frames_to_tensor(frames, 8)


def test_tensor_to_frames_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        tensor_to_frames(torch.zeros(1, 4, 8, 8))


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_frames_to_tensor_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        frames_to_tensor(np.zeros((1, 8, 8, 3), np.uint8), size)


# -- load_image ----------------------------------------------------------------------------------


def test_load_image_rgb_grayscale_rgba_and_crop(tmp_path):
    rgb = random_frames((1, 20, 30, 3), seed=3)[0]
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    image = load_image(tmp_path / "wide.png", 20)
    assert image.shape == (3, 20, 20)
    np.testing.assert_array_equal(tensor_to_frames(image[None])[0], rgb[:, 5:25])

    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    gray = load_image(tmp_path / "gray.png", 10)
    assert gray.shape == (3, 10, 10)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])

    rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(tensor_to_frames(load_image(tmp_path / "alpha.png", 20)[None])[0], rgb[:, 5:25])


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png", 8)
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(tmp_path / "broken.jpg", 8)


# -- the model and its loss ----------------------------------------------------------------------


def test_tiny_vae_is_small_and_divides_by_four():
    vae = AutoencoderKL(**TINY_VAE_KWARGS)
    assert count_parameters(vae) < 1_000_000
    assert all(c % TINY_VAE_KWARGS["norm_num_groups"] == 0 for c in TINY_VAE_KWARGS["block_out_channels"])
    assert TINY_VAE_TRAINING["vae_kwargs"] is TINY_VAE_KWARGS
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert latents.shape == (1, 4, 16, 16)


@pytest.mark.parametrize("resolution, widths", [(32, (32, 64)), (64, (16, 32, 64)), (128, (8, 16, 32, 64))])
def test_the_tiny_vae_takes_each_frame_size_to_the_same_latent_grid(resolution, widths):
    kwargs = tiny_vae_kwargs(resolution)
    assert kwargs["block_out_channels"] == widths and kwargs["sample_size"] == resolution
    if resolution == 64:
        assert kwargs == TINY_VAE_KWARGS and tiny_vae_training(64) == TINY_VAE_TRAINING
    vae = AutoencoderKL(**kwargs)
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, resolution, resolution)).latent_dist.mode()
        decoded = vae.decode(latents).sample
    assert latents.shape == (1, 4, 16, 16) and decoded.shape == (1, 3, resolution, resolution)
    training = tiny_vae_training(resolution)
    assert training["vae_kwargs"] == kwargs and training["resolution"] == resolution
    # as many pixels a batch as 8 frames of 64 px at most twice over: 128 px, 4 frames
    assert training["batch_size"] == {32: 8, 64: 8, 128: 4}[resolution]
    with pytest.raises(ValueError, match=r"takes frames of 32, 64, 128 px to 16 x 16 latents, not 96 px"):
        tiny_vae_kwargs(96)


def test_the_bench_config_knows_the_tiny_vae_sizes():
    from bench.config import VAE_RESOLUTIONS

    assert VAE_RESOLUTIONS == TINY_VAE_RESOLUTIONS


def test_chroma_weights_favour_saturated_pixels():
    gray, red = torch.zeros(3), torch.tensor([1.0, -1.0, -1.0])  # chroma 0 and 1
    batch = torch.stack([gray, red], dim=1).view(1, 3, 1, 2)
    torch.testing.assert_close(chroma_weights(batch, 10.0), torch.tensor([[[[1.0, 11.0]]]]))
    decoded = batch + torch.tensor([0.5, 0.1]).view(1, 1, 1, 2)
    assert float(reconstruction_error(decoded, batch, "l1")) == pytest.approx(0.3)
    assert float(reconstruction_error(decoded, batch, "mse")) == pytest.approx(0.13)
    assert float(reconstruction_error(decoded, batch, "l1", 10.0)) == pytest.approx((0.5 + 11 * 0.1) / 12)
    with pytest.raises(ValueError, match="reconstruction"):
        reconstruction_error(decoded, batch, "huber")


# -- train_autoencoder ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    config = ToyCorpusConfig(identities=1, clips=2, test_clips=1, size=64, min_seconds=3.2, max_seconds=3.2)
    generate_toy_corpus(root, config, progress=False)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One thread: faster for so small a model, and immune to OpenMP barriers stalling on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("runs") / "vae"
    summary = train_autoencoder(corpus, out_dir, vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=STEPS,
                                batch_size=8, lr=2e-3, log_every=1, progress=False)
    return out_dir, summary


def test_training_lowers_the_loss(trained):
    _, summary = trained
    losses = [point["loss"] for point in summary["loss_curve"]]
    assert len(losses) == STEPS and all(math.isfinite(loss) for loss in losses)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_summary_and_training_card(trained):
    out_dir, summary = trained
    card = json.loads((out_dir / TRAINING_CARD).read_text())
    assert card == json.loads(json.dumps(summary))
    assert summary["steps"] == STEPS and summary["resolution"] == RESOLUTION
    assert summary["clips"] == 1 and summary["frames"] == 80
    assert summary["seconds"] > 0 and summary["settings"]["batch_size"] == 8
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_saved_model_reloads_with_its_scaling_factor(trained, corpus):
    out_dir, summary = trained
    vae = AutoencoderKL.from_pretrained(out_dir).eval()
    factor = vae.config.scaling_factor
    assert math.isfinite(factor) and factor > 0 and factor == pytest.approx(summary["scaling_factor"])
    assert count_parameters(vae) == summary["parameters"]
    again = AutoencoderKL.from_pretrained(out_dir).eval()
    x = frames_to_tensor(random_frames((2, RESOLUTION, RESOLUTION, 3), seed=4), RESOLUTION)
    with torch.no_grad():
        latents = vae.encode(x).latent_dist.mode()
        assert latents.shape == (2, 4, RESOLUTION // 4, RESOLUTION // 4)
        assert torch.equal(vae.decode(latents).sample, again.decode(again.encode(x).latent_dist.mode()).sample)
    frames = random_frames((3, 48, 48, 3), seed=5)
    rebuilt = reconstruct(vae, frames, RESOLUTION)
    assert rebuilt.shape == (3, RESOLUTION, RESOLUTION, 3) and rebuilt.dtype == np.uint8


def test_refuses_a_non_empty_out_dir_unless_overwrite(trained, corpus, tmp_path):
    out_dir, _ = trained
    with pytest.raises(FileExistsError, match="not empty"):
        train_autoencoder(corpus, out_dir, vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=1, progress=False)
    target = tmp_path / "vae"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    summary = train_autoencoder(corpus, target, vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=2,
                                batch_size=2, progress=False, overwrite=True)
    assert not (target / "stale.txt").exists() and (target / TRAINING_CARD).is_file()
    assert summary["steps"] == 2


def test_accepts_an_empty_out_dir(corpus, tmp_path):
    (tmp_path / "empty").mkdir()
    train_autoencoder(corpus, tmp_path / "empty", vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=1,
                      batch_size=2, progress=False)
    assert (tmp_path / "empty" / "config.json").is_file()


@pytest.mark.parametrize("settings", [{"steps": 0}, {"batch_size": 0}, {"lr": 0.0}, {"kl_weight": -1.0},
                                      {"chroma_weight": -1.0}, {"reconstruction": "l2"}])
def test_rejects_bad_settings_before_loading(settings, tmp_path):
    kwargs = dict(vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=1) | settings
    with pytest.raises(ValueError):
        train_autoencoder(tmp_path / "no_such_dataset", tmp_path / "vae", progress=False, **kwargs)


def test_empty_split_names_the_dataset(corpus, tmp_path):
    root = tmp_path / "all_test"
    shutil.copytree(corpus, root)
    records = [replace(record, split="test", root=root,
                       **{name: root / getattr(record, name).relative_to(corpus)
                          for name in ("video", "audio", "motion", "keypoints")})
               for record in Dataset.open(corpus, level="files")]
    write_manifest(root, records)
    with pytest.raises(ValueError, match=f"{root.name}.*no 'train' clips"):
        train_autoencoder(root, tmp_path / "vae", vae_kwargs=SMALL_VAE, resolution=RESOLUTION, steps=1,
                          progress=False)
