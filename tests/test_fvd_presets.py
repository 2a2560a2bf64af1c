"""FVD presets against the peers' own code, stage by stage, and every FVD field read or refused.

The numbers in ``tests/fixtures/peers/fvd_*.json`` were produced by running each peer's code
outside the project (the fixture's ``how`` says what ran, its ``commit`` at which revision) on the
deterministic inputs rebuilt here: two 16-frame 36 x 48 uint8 clips, stand-in I3D weights in the
published key layout, seeded 400-d features. Each test runs ours on the same input and compares:

- (a) preprocessing: per-frame means and selected values of the (2, 3, 16, 224, 224) tensor, 1e-5;
- (b) the I3D forward with the stand-in weights on one 9-frame clip: the 400 logits, 1e-4;
- (c) the Fréchet step on N = 20 (fewer samples than dimensions) and N = 600 features, relative 1e-3;
- StyleGAN-V: its ``fvd2048_16f`` run end to end with a recording stand-in archive (its real
  network and internal resize are in ``i3d_torchscript.pt``, which cannot be had offline).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.fvd import FVD
from metrics.i3d import (
    I3DFeatures,
    InceptionI3d,
    load_i3d,
    load_state_dict_strict,
    preprocess,
    published_state_dict_keys,
)
from metrics.protocol import PRESETS, Protocol, get_protocol, preset_of
from metrics.stats import GaussianStats

FIXTURES = Path(__file__).parent / "fixtures" / "peers"
PEER_PRESETS = ("videogpt", "tats", "styleganv", "cdfvd")


def peer(preset: str) -> dict:
    return json.loads((FIXTURES / f"fvd_{preset}.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch and BLAS on one thread while this module runs: on a busy 2-core machine their spinning
    threads competed, and made the I3D forward 3-4x and the 400 x 400 eigenproblems 10-40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        import threadpoolctl  # installed with scikit-learn, which librosa needs
    except ImportError:  # then BLAS keeps its threads
        yield
    else:
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ the inputs (as the fixtures' "inputs")


def clips(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (2, 16, 36, 48, 3), dtype=np.uint8)


def frechet_features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.5, 3.0, 400)
    mix = rng.standard_normal((400, 400)) / math.sqrt(400)
    real = (rng.standard_normal((n, 400)) * scale) @ mix
    fake = (rng.standard_normal((n, 400)) * scale * 1.2) @ mix + 0.25
    return real.astype(np.float32), fake.astype(np.float32)


def standin_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("conv3d.weight"):
            value = torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
        elif key.endswith("bn.weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=generator)
        else:
            value = 0.1 * torch.randn(shape, generator=generator)
        out[key] = value
    return out


def input_checksum(v: np.ndarray) -> dict:
    return {"shape": list(v.shape), "sum": int(v.astype(np.int64).sum()),
            "first": [int(a) for a in v.reshape(-1)[:8]], "last": [int(a) for a in v.reshape(-1)[-8:]]}


class RecordingI3d(torch.nn.Module):
    """The call signature of StyleGAN-V's i3d_torchscript.pt; the output says what came in.

    Columns 0-3 the input's (C, T, H, W), 4-6 rescale / resize / return_features, 7 is-uint8,
    8-55 the per-(channel, frame) means of the input as it arrived, 56-399 those means times a
    seeded matrix (so that the features vary with the content).
    """

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.register_buffer("projection", torch.randn(48, 344, generator=generator) / 8)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        n = x.shape[0]
        out = torch.zeros(n, 400)
        for i in range(4):
            out[:, i] = float(x.shape[i + 1])
        out[:, 4] = 1.0 if rescale else 0.0
        out[:, 5] = 1.0 if resize else 0.0
        out[:, 6] = 1.0 if return_features else 0.0
        out[:, 7] = 1.0 if x.dtype == torch.uint8 else 0.0
        means = x.to(torch.float32).flatten(3).mean(dim=3).flatten(1)[:, :48]
        out[:, 8:8 + means.shape[1]] = means
        out[:, 56:] = means @ self.projection[: means.shape[1]]
        return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The recording stand-in saved as a TorchScript archive and loaded as one (``load_i3d``)."""
    path = tmp_path_factory.mktemp("fvd") / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the published archive is one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(RecordingI3d()).save(str(path))
    return load_i3d(path, batch_size=4)


def fvd_value(archive, protocol: Protocol, real: np.ndarray, fake: np.ndarray) -> tuple[float, FVD]:
    """FVD of ``real`` against ``fake`` videos under ``protocol``, with the loaded stand-in archive."""
    metric = FVD(archive, protocol)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute(), metric


# ------------------------------------------------------------------------------ the presets


def test_presets_set_the_fvd_fields_their_peers_use():
    expected = {"videogpt": ("shorter-side-crop", "unbiased"), "tats": ("stretch", "unbiased"),
                "styleganv": ("torchscript-internal", "biased"), "cdfvd": ("stretch", "biased")}
    for name, (resize, covariance) in expected.items():
        protocol = get_protocol(name)
        assert (protocol.fvd_resize, protocol.fvd_covariance) == (resize, covariance)
        assert (protocol.fvd_frames, protocol.fvd_resolution) == (16, 224)
        assert protocol.fvd_clips == Protocol().fvd_clips  # the peers' loaders choose clips, not their FVD code
        assert PRESETS[name].metric == "FVD" and preset_of(protocol, "FVD") == name
        fixture = peer(name)
        assert fixture["commit"][:7] in PRESETS[name].source  # the source names the commit that was run
    assert "VideoMAE" in PRESETS["cdfvd"].source and "out of scope" in PRESETS["cdfvd"].source
    # The default is TATS's convention; the preset differs only by its name.
    default, tats = Protocol().to_dict(), get_protocol("tats").to_dict()
    assert {k for k in default if default[k] != tats[k]} == {"name"}
    assert get_protocol("videogpt+emage").name == "imac-bench+videogpt+emage"


@pytest.mark.parametrize("preset", PEER_PRESETS)
def test_fixture_inputs_are_what_the_peers_ran_on(preset):
    fixture = peer(preset)
    for key in ("repository", "commit", "file", "function", "how"):
        assert fixture[key], key
    checksum = fixture["input_checksum"]
    if preset == "styleganv":
        assert checksum == {"real": input_checksum(clips(0)), "fake": input_checksum(clips(1))}
    else:
        assert checksum == input_checksum(clips(0))


# ------------------------------------------------------------------------------ (a) preprocessing


@pytest.mark.parametrize("preset", ["videogpt", "tats", "cdfvd"])
def test_preprocessing_matches_the_peer(preset):
    expected = peer(preset)["preprocess"]["summary"]
    x = preprocess(clips(0), size=get_protocol(preset).fvd_resolution, resize=get_protocol(preset).fvd_resize)
    assert list(x.shape) == expected["shape"] and str(x.dtype) == f"torch.{expected['dtype']}"
    np.testing.assert_allclose(x.double().mean(dim=(3, 4)).numpy(), expected["frame_means"], rtol=0, atol=1e-5)
    for *position, value in expected["values"]:
        assert x[tuple(position)].item() == pytest.approx(value, abs=1e-5), position
    assert x.min().item() == pytest.approx(expected["min"], abs=1e-5)
    assert x.max().item() == pytest.approx(expected["max"], abs=1e-5)


def test_the_two_resize_conventions_differ_on_non_square_frames():
    stretched, cropped = (peer(p)["preprocess"]["summary"]["frame_means"] for p in ("tats", "videogpt"))
    assert np.abs(np.subtract(stretched, cropped)).max() > 0.01


# ------------------------------------------------------------------------------ (b) the I3D forward


@pytest.fixture(scope="module")
def our_logits():
    """Ours with the stand-in weights loaded strictly in the published layout (as ``load_i3d`` loads a
    file; test_i3d.py covers the file itself), on clip 0's frames 0-8 stretched to 224."""
    model = InceptionI3d()
    shapes = {k: tuple(model.state_dict()[k].shape) for k in published_state_dict_keys(model)}
    load_state_dict_strict(model, standin_state_dict(shapes, seed=400), "stand-in")
    features = I3DFeatures(model, feature_id="stand-in", is_pretrained=True, batch_size=1)
    return features(clips(0)[:1, :9])[0]


@pytest.mark.parametrize("preset", ["videogpt", "tats", "cdfvd"])
def test_i3d_forward_matches_the_peers_network(preset, our_logits):
    forward = peer(preset)["forward"]
    assert forward["input_shape"] == [1, 3, 9, 224, 224] and forward["published_keys"] == 287
    np.testing.assert_allclose(our_logits, forward["logits"], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ (c) the Fréchet step


class GivenFeatures:
    """An extractor that is never called: the test sets the metric's statistics itself."""

    feature_id, is_pretrained, batch_size = "given", True, 1


@pytest.mark.parametrize("preset", PEER_PRESETS)
@pytest.mark.parametrize("n", [20, 600])
def test_frechet_step_matches_the_peer(preset, n):
    real, fake = frechet_features(n, n)
    fvd = FVD(GivenFeatures(), get_protocol(preset))  # the features are given: the Fréchet step alone
    fvd.parts = {True: [GaussianStats(400).update(real)], False: [GaussianStats(400).update(fake)]}
    values = peer(preset)["frechet"]["values"][str(n)]
    for precision, expected in values.items():
        assert fvd.compute() == pytest.approx(expected, rel=1e-3), precision


def test_covariance_divisor_is_what_separates_the_peers_at_small_n():
    twenty = {p: peer(p)["frechet"]["values"]["20"]["float32"] for p in PEER_PRESETS}
    assert twenty["videogpt"] == pytest.approx(twenty["tats"], rel=1e-4)        # both /(N - 1)
    assert twenty["styleganv"] == pytest.approx(twenty["cdfvd"], rel=1e-6)      # both /N
    assert twenty["videogpt"] > 1.04 * twenty["styleganv"]


# ------------------------------------------------------------------------------ StyleGAN-V's call


def test_styleganv_call_and_statistics_match_fvd2048_16f(archive):
    expected = peer("styleganv")["call"]
    value, metric = fvd_value(archive, get_protocol("styleganv"), clips(0), clips(1))
    # What the archive was handed: uint8 (N, C, T, H, W) at the video's own size, rescale and resize on.
    for call in expected["archive_calls"]:
        assert call == {"shape": [2, 3, 16, 36, 48], "dtype": "torch.uint8",
                        "kwargs": {"rescale": True, "resize": True, "return_features": True}}
    real = metric.parts[True]
    assert sum(p.count for p in real) == expected["num_items"][0] == 2
    pooled = GaussianStats.combine(real, 400)
    np.testing.assert_allclose(pooled.mean[:56], expected["real_mean_first56"], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(pooled.mean[:8], [3, 16, 36, 48, 1, 1, 1, 1])
    assert pooled.mean.sum() == pytest.approx(expected["real_mean_sum"], rel=1e-6)
    assert np.trace(pooled.covariance("biased")) == pytest.approx(expected["real_cov_trace"], rel=1e-5)
    assert value == pytest.approx(expected["fvd2048_16f"], rel=1e-3)


# ------------------------------------------------------------------------------ every FVD field: read or refused


def long_videos(seed: int) -> np.ndarray:
    """Two 32-frame videos (two 16-frame clips each) whose halves differ."""
    videos = np.random.default_rng(seed).integers(0, 256, (2, 32, 36, 48, 3), dtype=np.uint8)
    videos[:, 16:] //= 2
    return videos


def test_fvd_frames_changes_the_number_or_is_refused(archive):
    real, fake = long_videos(0), long_videos(1)
    sixteen, metric = fvd_value(archive, Protocol(), real, fake)
    twelve, shorter = fvd_value(archive, Protocol(fvd_frames=12), real, fake)
    assert twelve != pytest.approx(sixteen, rel=1e-6)
    assert sum(p.count for p in metric.parts[True]) == 4 and sum(p.count for p in shorter.parts[True]) == 4
    assert shorter.unit == "12-frame clips"
    with pytest.raises(ValueError, match=r"^fvd_frames must be >= 9"):
        Protocol(fvd_frames=8)


def test_fvd_clips_changes_the_number_or_is_refused(archive):
    real, fake = long_videos(0), long_videos(1)
    every, metric = fvd_value(archive, Protocol(), real, fake)
    first, firsts = fvd_value(archive, Protocol(fvd_clips="first"), real, fake)
    assert first != pytest.approx(every, rel=1e-6)
    assert [p.count for p in metric.parts[True]] == [2, 2] and [p.count for p in firsts.parts[True]] == [1, 1]
    with pytest.raises(ValueError, match=r"^fvd_clips must be one of"):
        Protocol(fvd_clips="random")


def test_fvd_resize_changes_the_number_or_is_refused(archive):
    real, fake = clips(0), clips(1)
    values = {resize: fvd_value(archive, Protocol(fvd_resize=resize), real, fake)[0]
              for resize in ("stretch", "shorter-side-crop", "torchscript-internal")}
    assert len({round(v, 6) for v in values.values()}) == 3, values
    with pytest.raises(ValueError, match=r"^fvd_resize must be one of"):
        Protocol(fvd_resize="nearest")
    # the archive is needed for it; the way out named is one the command line can take (a preset, not a field)
    with pytest.raises(ValueError, match=r"fvd_resize='torchscript-internal'.*or another FVD preset \(--protocol "
                                         r"videogpt: shorter-side crop; tats, the default, or cdfvd: stretch"):
        FVD(load_i3d(None), get_protocol("styleganv"))


def test_fvd_covariance_changes_the_number_or_is_refused(archive):
    unbiased, metric = fvd_value(archive, Protocol(), clips(0), clips(1))

    def with_protocol(protocol: Protocol) -> float:  # the same statistics, divided another way
        other = FVD(archive, protocol)
        other.parts = metric.parts
        return other.compute()

    assert with_protocol(Protocol(fvd_covariance="biased")) != pytest.approx(unbiased, rel=1e-6)
    # FVD's divisor is its own: FGD's ``covariance`` does not move it.
    assert with_protocol(Protocol(covariance="biased")) == pytest.approx(unbiased, rel=1e-12)
    with pytest.raises(ValueError, match=r"^fvd_covariance must be one of"):
        Protocol(fvd_covariance="shrunk")


def test_fvd_resolution_is_refused_unless_224():
    with pytest.raises(ValueError, match=r"^fvd_resolution: the Kinetics-400 I3D takes 224 x 224"):
        Protocol(fvd_resolution=112)
    with pytest.raises(ValueError, match=r"^fvd_resolution"):
        get_protocol("videogpt", fvd_resolution=256)


def test_fvd_value_range_is_refused_unless_uint8_to_minus1_1():
    with pytest.raises(ValueError, match=r"^fvd_value_range: only '\[0,255\] -> \[-1,1\]'"):
        Protocol(fvd_value_range="[0,1] -> [-1,1]")
