"""The FVD I3D network: published weight layout, strict loading, features, preprocessing (stretch and
shorter side + centre crop), the TorchScript calls, and the published weights' checksums.

No real weights can be had offline, so the layout is checked against a hand-written list of the
keys and shapes of VideoGPT / TATS ``i3d_pretrained_400.pt`` (names from TATS
``tats/fvd/convert_tf_pretrained.py``, shapes from the channel widths of ``tats/fvd/pytorch_i3d.py``),
and StyleGAN-V's TorchScript archive is replaced by a scripted stand-in with its call signature
that reports what it was given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings

import numpy as np
import pytest
import torch

from metrics.i3d import (
    FEATURE_DIM,
    MIN_FRAMES,
    PUBLISHED_WEIGHTS,
    I3DFeatures,
    InceptionI3d,
    git_blob_sha1,
    init_untrained_,
    is_torchscript_archive,
    load_i3d,
    preprocess,
    published_state_dict_keys,
    shorter_side_size,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch on one thread while this module runs: on a busy 2-core machine its two threads spun
    against each other and the full-size I3D forwards took 3-4x longer (tests/test_fvd_presets.py too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A dozen and a half entries of the published file, written out by hand.
PUBLISHED_SHAPES = {
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.running_var": (64,),
    "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Conv3d_2c_3x3.bn.bias": (192,),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_3c.b2b.conv3d.weight": (96, 32, 3, 3, 3),
    "Mixed_4b.b0.conv3d.weight": (192, 480, 1, 1, 1),
    "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
    "Mixed_5b.b2a.bn.running_mean": (32,),
    "Mixed_5b.b2b.conv3d.weight": (128, 32, 3, 3, 3),
    "Mixed_5c.b0.conv3d.weight": (384, 832, 1, 1, 1),
    "Mixed_5c.b1b.bn.weight": (384,),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}
MIXED = ["Mixed_3b", "Mixed_3c"] + [f"Mixed_4{c}" for c in "bcdef"] + ["Mixed_5b", "Mixed_5c"]
BRANCHES = ["b0", "b1a", "b1b", "b2a", "b2b", "b3b"]  # b3a is the max pool: no parameters


def published_key_set() -> set[str]:
    """Every key of the converted file: conv weight + 4 BatchNorm tensors per unit, and the logits conv."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"] + [f"{m}.{b}" for m in MIXED for b in BRANCHES]
    tensors = ("conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
    keys = {f"{u}.{t}" for u in units for t in tensors}
    return keys | {"logits.conv3d.weight", "logits.conv3d.bias"}


def random_published_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """A plain dict with the published keys only (no num_batches_tracked, no metadata), random values."""
    model = init_untrained_(InceptionI3d(), seed)
    generator = torch.Generator().manual_seed(seed + 1000)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            value = 0.5 + torch.rand(value.shape, generator=generator)
        elif ".bn." in key or key == "logits.conv3d.bias":
            value = value + 0.1 * torch.randn(value.shape, generator=generator)
        state[key] = value.clone()
    return state


def sha12(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def random_videos(n: int, t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ layout, loading


def test_module_has_the_published_layout():
    model = InceptionI3d()
    state = model.state_dict()
    keys = published_state_dict_keys(model)
    assert len(keys) == 287
    assert set(keys) == published_key_set()
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("logits.bn") for k in state)
    # Only num_batches_tracked comes on top of the published keys.
    assert {k for k in state if k not in keys} == {k for k in state if k.endswith("num_batches_tracked")}


def test_state_dict_file_loads_strictly_and_gives_the_network_output(tmp_path):
    state = random_published_state_dict(seed=5)
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, path)
    assert not is_torchscript_archive(path)

    features = load_i3d(str(path), device="cpu", batch_size=2)
    assert features.is_pretrained
    assert features.feature_id == f"i3d-tats-400:{sha12(path)}"
    loaded = features.network.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key

    # The extractor is InceptionI3d(preprocess(videos)) in float64.
    videos = random_videos(1, MIN_FRAMES, 48, 64)
    out = features(videos)
    reference = InceptionI3d().eval()
    reference.load_state_dict(state, strict=False)
    with torch.no_grad():
        expected = reference(preprocess(videos)).double().numpy()
    assert out.dtype == np.float64 and out.shape == (1, FEATURE_DIM)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    # A file saved from a PyTorch module (with num_batches_tracked and metadata) loads too.
    saved_from_module = tmp_path / "from_module.pt"
    torch.save(features.network.state_dict(), saved_from_module)
    assert load_i3d(saved_from_module).feature_id == f"i3d-tats-400:{sha12(saved_from_module)}"


def test_state_dict_mismatches_are_listed_with_the_path(tmp_path):
    state = random_published_state_dict(seed=1)
    broken = dict(state)
    del broken["Mixed_4c.b1b.conv3d.weight"]
    broken["Mixed_4c.b1c.conv3d.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(broken, path)
    with pytest.raises(ValueError) as error:
        load_i3d(path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys (1): Mixed_4c.b1b.conv3d.weight" in message
    assert "unexpected keys (1): Mixed_4c.b1c.conv3d.weight" in message

    wrong_shape = dict(state)
    wrong_shape["logits.conv3d.weight"] = torch.zeros(600, 1024, 1, 1, 1)  # the Kinetics-600 head
    torch.save(wrong_shape, path)
    with pytest.raises(ValueError, match=r"wrong shapes \(1\): logits.conv3d.weight \(600, 1024, 1, 1, 1\)"):
        load_i3d(path)

    prefixed = {f"module.{k}": v for k, v in state.items()}
    torch.save(prefixed, path)
    with pytest.raises(ValueError, match="DataParallel prefix"):
        load_i3d(path)

    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_i3d(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "i3d_pretrained_400.pt"
    with pytest.raises(FileNotFoundError, match=str(path)):
        load_i3d(str(path))


# ------------------------------------------------------------------------------ features


def test_untrained_features_shape_determinism_and_seed():
    a = load_i3d(None, seed=0, batch_size=2)
    assert a.feature_id == "i3d-untrained-seed0" and not a.is_pretrained
    a_again = load_i3d(None, seed=0, batch_size=2)
    b = load_i3d(None, seed=1, batch_size=2)
    state_a, state_again, state_b = (f.network.state_dict() for f in (a, a_again, b))
    assert all(torch.equal(state_a[k], state_again[k]) for k in state_a)
    assert not torch.equal(state_a["Mixed_4d.b1b.conv3d.weight"], state_b["Mixed_4d.b1b.conv3d.weight"])

    videos = random_videos(2, MIN_FRAMES, 40, 56, seed=3)
    out = a(videos)
    assert out.shape == (2, FEATURE_DIM) and out.dtype == np.float64
    assert np.isfinite(out).all() and out.std() > 0
    assert not np.allclose(out[0], out[1])
    np.testing.assert_array_equal(a_again(videos), out)  # same seed, same features
    assert not np.allclose(b(videos[:1]), out[:1], atol=1e-2)


def test_device_dtype_and_input_checks():
    features = load_i3d(None, device="cpu", dtype=torch.float64)
    assert next(features.network.parameters()).dtype == torch.float64
    assert features.device == torch.device("cpu")
    with pytest.raises(ValueError, match=f"at least {MIN_FRAMES} frames"):
        features(random_videos(1, MIN_FRAMES - 1, 16, 16))
    with pytest.raises(TypeError, match="uint8"):
        features(np.zeros((1, MIN_FRAMES, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"T>=9"):
        features.network(torch.zeros(1, 3, 8, 224, 224, dtype=torch.float64))
    assert features(np.zeros((0, MIN_FRAMES, 16, 16, 3), np.uint8)).shape == (0, FEATURE_DIM)


@pytest.mark.parametrize("size", [200, 256])
def test_network_refuses_inputs_that_are_not_224(size):
    # 256 would give a 2x2 map of logits, 200 a vector from another receptive field.
    model = InceptionI3d().eval()
    with torch.no_grad(), pytest.raises(ValueError, match=f"224x224 frames, got {size}x{size}"):
        model(torch.zeros(1, 3, MIN_FRAMES, size, size))


# ------------------------------------------------------------------------------ preprocessing


def test_preprocess_value_map_and_layout():
    video = np.zeros((1, 3, 4, 4, 3), np.uint8)
    video[0, 0] = 0
    video[0, 1] = 255
    video[0, 2, ..., 0], video[0, 2, ..., 1], video[0, 2, ..., 2] = 127, 128, 60
    x = preprocess(video)
    assert x.dtype == torch.float32 and x.shape == (1, 3, 3, 224, 224)
    # (to float rounding: the resize kernel's arithmetic depends on the thread count)
    assert torch.allclose(x[0, :, 0], torch.tensor(-1.0), atol=1e-6)
    assert torch.allclose(x[0, :, 1], torch.tensor(1.0), atol=1e-6)
    low, high = x[0, 0, 2].mean().item(), x[0, 1, 2].mean().item()
    assert low == pytest.approx(127 / 127.5 - 1, abs=1e-6)
    assert high == pytest.approx(128 / 127.5 - 1, abs=1e-6)
    assert (low + high) / 2 == pytest.approx(0.0, abs=1e-6)  # 127.5 is the midpoint
    assert x[0, 2, 2].mean().item() == pytest.approx(60 / 127.5 - 1, abs=1e-6)  # channels stay in RGB order


@pytest.mark.parametrize("height, width", [(64, 64), (256, 320), (224, 224)])
def test_preprocess_resizes_to_224(height, width):
    videos = random_videos(2, 3, height, width)
    x = preprocess(videos)
    assert x.shape == (2, 3, 3, 224, 224)
    assert -1.0 <= x.min().item() and x.max().item() <= 1.0
    frame = torch.from_numpy(videos[1, 2]).permute(2, 0, 1)[None].float()
    resized = torch.nn.functional.interpolate(frame, size=(224, 224), mode="bilinear", align_corners=False)
    reference = resized[0] / 127.5 - 1
    torch.testing.assert_close(x[1, :, 2], reference)
    # A constant frame stays constant.
    flat = preprocess(np.full((1, 1, height, width, 3), 200, np.uint8))
    torch.testing.assert_close(flat, torch.full_like(flat, 200 / 127.5 - 1))


def test_preprocess_refuses_floats_unless_flagged():
    unit = np.random.default_rng(0).random((1, 2, 8, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\] data"):
        preprocess(unit)
    with pytest.raises(ValueError, match="refused"):
        preprocess(unit * 255)
    with pytest.raises(ValueError, match="span"):
        preprocess(unit * 255, already_in_minus1_1=True)
    signed = torch.from_numpy(unit * 2 - 1)
    x = preprocess(signed, already_in_minus1_1=True)
    assert x.shape == (1, 3, 2, 224, 224)
    assert x.min().item() >= -1.0 and x.max().item() <= 1.0
    with pytest.warns(UserWarning, match="no negative value"):
        preprocess(unit, already_in_minus1_1=True)
    with pytest.raises(ValueError, match="channels last"):
        preprocess(np.zeros((1, 3, 2, 8, 8), np.uint8))


# ------------------------------------------------------------------------------ TorchScript


class StyleGanVI3dStandIn(torch.nn.Module):
    """The call signature of StyleGAN-V's i3d_torchscript.pt; the output reports what came in.

    Columns: 0-4 the input shape (N, C, T, H, W), 5-7 rescale / resize / return_features,
    8 is-uint8, 9-11 per-channel means, 12.. per-frame means of channel 0.
    """

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        n = x.shape[0]
        xf = x.to(torch.float32)
        out = torch.zeros(n, 400)
        for i in range(5):
            out[:, i] = float(x.shape[i])
        out[:, 5] = 1.0 if rescale else 0.0
        out[:, 6] = 1.0 if resize else 0.0
        out[:, 7] = 1.0 if return_features else 0.0
        out[:, 8] = 1.0 if x.dtype == torch.uint8 else 0.0
        out[:, 9:12] = xf.flatten(2).mean(dim=2)
        t = x.shape[2]
        out[:, 12 : 12 + t] = xf[:, 0].flatten(2).mean(dim=2)
        return out


def coded_videos(n: int = 3, t: int = MIN_FRAMES, h: int = 20, w: int = 28) -> np.ndarray:
    """Constant frames: red = 10 * frame + clip, green = 200, blue = 0."""
    videos = np.zeros((n, t, h, w, 3), np.uint8)
    for i in range(n):
        for j in range(t):
            videos[i, j, ..., 0] = 10 * j + i
    videos[..., 1] = 200
    return videos


@pytest.fixture()
def torchscript_file(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the published archive is one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(StyleGanVI3dStandIn()).save(str(path))
    return path


def test_torchscript_suite_call_gets_preprocessed_float_and_no_rescale(torchscript_file):
    assert is_torchscript_archive(torchscript_file)
    features = load_i3d(torchscript_file, batch_size=2)
    assert isinstance(features, I3DFeatures) and features.is_pretrained
    assert features.feature_id == f"i3d-stylegan-v-torchscript:{sha12(torchscript_file)}"
    videos = coded_videos()
    out = features(videos)
    assert out.shape == (3, FEATURE_DIM) and out.dtype == np.float64
    # (N, C, T, H, W) as the archive saw it: batches of 2 and 1 clips, resized to 224.
    seen = [[2, 3, MIN_FRAMES, 224, 224]] * 2 + [[1, 3, MIN_FRAMES, 224, 224]]
    np.testing.assert_array_equal(out[:, :5], seen)
    # rescale=False, resize=False, return_features=True, float input
    np.testing.assert_array_equal(out[:, 5:9], [[0, 0, 1, 0]] * 3)
    np.testing.assert_allclose(out[:, 10:12], [[200 / 127.5 - 1, -1.0]] * 3, atol=1e-6)
    frames = 10 * np.arange(MIN_FRAMES)[None, :] + np.arange(3)[:, None]  # clips in order across batches
    np.testing.assert_allclose(out[:, 12 : 12 + MIN_FRAMES], frames / 127.5 - 1, atol=1e-6)


def test_torchscript_internal_resize_gets_raw_uint8_with_rescale_and_resize(torchscript_file):
    features = load_i3d(torchscript_file, batch_size=2).with_input(resize="torchscript-internal")
    assert features.feature_id == f"i3d-stylegan-v-torchscript:{sha12(torchscript_file)}"
    assert "inside the archive" in features.preprocessing
    out = features(coded_videos())
    np.testing.assert_array_equal(out[:, 1:5], [[3, MIN_FRAMES, 20, 28]] * 3)  # (N, C, T, H, W), not resized
    np.testing.assert_array_equal(out[:, 5:9], [[1, 1, 1, 1]] * 3)  # rescale, resize, return_features, uint8
    np.testing.assert_allclose(out[:, 10:12], [[200, 0]] * 3)
    frames = 10 * np.arange(MIN_FRAMES)[None, :] + np.arange(3)[:, None]
    np.testing.assert_allclose(out[:, 12 : 12 + MIN_FRAMES], frames)
    with pytest.raises(ValueError, match="float32"):
        load_i3d(torchscript_file, dtype=torch.float16).with_input(resize="torchscript-internal")


def test_torchscript_internal_resize_is_refused_for_a_state_dict_network():
    features = load_i3d(None)
    with pytest.raises(ValueError, match=r"fvd_resize='torchscript-internal'.*i3d-untrained-seed0"):
        features.with_input(resize="torchscript-internal")
    with pytest.raises(ValueError, match="fvd_resize must be one of"):
        features.with_input(resize="nearest")
    cropped = features.with_input(resize="shorter-side-crop")
    assert cropped.network is features.network and "centre 224x224 crop" in cropped.preprocessing


# ------------------------------------------------------------------------------ shorter side + centre crop


@pytest.mark.parametrize("height, width, expected", [
    (36, 48, (224, 299)), (48, 36, (299, 224)), (224, 400, (224, 400)),
    (64, 64, (224, 224)), (100, 100, (225, 224)),  # 100 * (224 / 100) = 224.00000000000003: as VideoGPT
])
def test_shorter_side_size(height, width, expected):
    assert shorter_side_size(height, width) == expected


def test_preprocess_shorter_side_crop_is_a_centre_crop_of_the_scaled_frame():
    videos = random_videos(2, 3, 36, 48, seed=4)
    x = preprocess(videos, resize="shorter-side-crop")
    assert x.shape == (2, 3, 3, 224, 224)
    frame = torch.from_numpy(videos[1, 2]).permute(2, 0, 1)[None].float()
    scaled = torch.nn.functional.interpolate(frame, size=(224, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[1, :, 2], scaled[0, :, :, 37:261] / 127.5 - 1)  # (299 - 224) // 2 = 37
    assert not torch.allclose(x, preprocess(videos))  # not the stretched frame
    with pytest.raises(ValueError, match="inside StyleGAN-V's archive"):
        preprocess(videos, resize="torchscript-internal")


# ------------------------------------------------------------------------------ published checksums


def test_git_blob_sha1_is_gits_object_id(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object hello.txt


def test_a_weight_file_that_differs_from_the_published_one_is_loaded_with_a_warning(tmp_path, caplog, monkeypatch):
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(random_published_state_dict(seed=2), path)
    with caplog.at_level(logging.WARNING, logger="metrics.i3d"):
        features = load_i3d(path)
    assert features.is_pretrained and features.published is False
    (record,) = [r for r in caplog.records if r.name == "metrics.i3d"]
    message = record.getMessage()
    published = PUBLISHED_WEIGHTS["module"]
    assert str(path) in message and published.file in message
    assert git_blob_sha1(path) in message and published.git_blob_sha1 in message
    assert "songweige/TATS" in message
    # and the result says so, not only the log: starred, with the card's reason (it read "FVD", pretrained)
    from metrics.evaluate import Evaluator
    from metrics.protocol import Protocol

    evaluator = Evaluator.load(("fvd",), Protocol(), i3d=path)
    card = evaluator.provenance(2, 2)["fvd"]
    assert evaluator.label("fvd") == card.label == "FVD*" and card.published is False
    assert "NOT the published weight file (its hash differs)" in card.summary()
    assert evaluator.networks()["i3d"]["published"] is False

    # The published file (here: its checksum made to be this file's) loads without a warning.
    monkeypatch.setitem(PUBLISHED_WEIGHTS, "module", dataclasses.replace(published, git_blob_sha1=git_blob_sha1(path)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="metrics.i3d"):
        assert load_i3d(path).published is True
    assert not [r for r in caplog.records if r.name == "metrics.i3d"]
    assert Evaluator.load(("fvd",), Protocol(), i3d=path).label("fvd") == "FVD"


def test_a_torchscript_file_is_checked_against_the_published_archive(torchscript_file, caplog):
    with caplog.at_level(logging.WARNING, logger="metrics.i3d"):
        load_i3d(torchscript_file)
    (record,) = [r for r in caplog.records if r.name == "metrics.i3d"]
    assert "i3d_torchscript.pt" in record.getMessage()
    assert PUBLISHED_WEIGHTS["torchscript"].git_blob_sha1 in record.getMessage()


@pytest.mark.parametrize("size", [(9, 14, 15), (8, 16, 16), (5, 7, 12)])
@pytest.mark.parametrize("kernel,stride", [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 3, 3), (1, 2, 2)),
                                           ((2, 2, 2), (2, 2, 2)), ((3, 3, 3), (2, 2, 2))])
def test_convolutions_and_pools_pad_as_tensorflow_same(size, kernel, stride):
    """Each convolution and pool equals the operation on the input zero-padded by TensorFlow's "SAME"
    rule (output ceil(n / s), total padding max((out - 1) s + k - n, 0), the odd pixel after),
    written here from that rule; pools see ReLU outputs (>= 0), as in the network."""
    from metrics.i3d import MaxPool3dSame, Unit3D

    pads = []
    for n, k, s in zip(size, kernel, stride):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    padding = (*pads[2], *pads[1], *pads[0])
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    unit = Unit3D(3, 4, kernel, stride, batch_norm=False, relu=False).eval()
    with torch.no_grad():
        expected = torch.nn.functional.conv3d(torch.nn.functional.pad(x, padding), unit.conv3d.weight, None, stride)
        torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-6)
        pooled = torch.nn.functional.max_pool3d(torch.nn.functional.pad(x, padding), kernel, stride)
        assert torch.equal(MaxPool3dSame(kernel, stride)(x), pooled)
        assert torch.equal(MaxPool3dSame(kernel, stride)(x.contiguous(memory_format=torch.channels_last_3d)), pooled)
