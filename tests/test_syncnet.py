"""SyncNet (metrics.syncnet): the published layout of syncnet_python's SyncNetModel.S, its loader and
the file format of syncnet_v2.model (a torch-saved state dict).

The layout is checked against a hand-written list of the published keys and shapes (read from
joonson/syncnet_python SyncNetModel.py at commit 6efbb1c305c23f47a62b09cf4215a8ac45e97d49; its
code is not used here). syncnet_python's own code loading a file this module wrote is checked by
the parity numbers in tests/test_lipsync.py.
"""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from metrics.syncnet import (
    SyncNet,
    SyncNetConfig,
    SyncNetFileError,
    config_from_state_dict,
    load_syncnet,
    save_syncnet,
    standin_card_path,
)

# (key prefix, weight shape) of every convolution / linear of syncnet_v2.model, from SyncNetModel.S.
PUBLISHED_WEIGHTS = {
    "netcnnaud.0": (64, 1, 3, 3), "netcnnaud.4": (192, 64, 3, 3), "netcnnaud.8": (384, 192, 3, 3),
    "netcnnaud.11": (256, 384, 3, 3), "netcnnaud.14": (256, 256, 3, 3), "netcnnaud.18": (512, 256, 5, 4),
    "netfcaud.0": (512, 512), "netfcaud.3": (1024, 512), "netfclip.0": (512, 512), "netfclip.3": (1024, 512),
    "netcnnlip.0": (96, 3, 5, 7, 7), "netcnnlip.4": (256, 96, 1, 5, 5), "netcnnlip.8": (256, 256, 1, 3, 3),
    "netcnnlip.11": (256, 256, 1, 3, 3), "netcnnlip.14": (256, 256, 1, 3, 3), "netcnnlip.18": (512, 256, 1, 6, 6),
}
PUBLISHED_NORMS = {"netcnnaud.1": 64, "netcnnaud.5": 192, "netcnnaud.9": 384, "netcnnaud.12": 256,
                   "netcnnaud.15": 256, "netcnnaud.19": 512, "netfcaud.1": 512, "netfclip.1": 512,
                   "netcnnlip.1": 96, "netcnnlip.5": 256, "netcnnlip.9": 256, "netcnnlip.12": 256,
                   "netcnnlip.15": 256, "netcnnlip.19": 512}
TINY = SyncNetConfig.reduced(16)


def test_published_layout_keys_and_shapes():
    state = SyncNet().state_dict()
    expected = {}
    for prefix, shape in PUBLISHED_WEIGHTS.items():
        expected[f"{prefix}.weight"] = shape
        expected[f"{prefix}.bias"] = (shape[0],)
    for prefix, width in PUBLISHED_NORMS.items():
        for name in ("weight", "bias", "running_mean", "running_var"):
            expected[f"{prefix}.{name}"] = (width,)
        expected[f"{prefix}.num_batches_tracked"] = ()
    assert {key: tuple(value.shape) for key, value in state.items()} == expected
    # 13,620,000-odd parameters, as the published file's ~54 MB of float32 says.
    assert sum(p.numel() for p in SyncNet().parameters()) == 13_631_616


def test_embedding_shapes_of_the_published_inputs():
    network = SyncNet(TINY).eval()
    with torch.no_grad():
        assert network.embed_audio(torch.randn(3, 1, 13, 20)).shape == (3, TINY.embedding)
        assert network.embed_video(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, TINY.embedding)


def test_tiny_model_saved_and_reloaded(tmp_path):
    torch.manual_seed(0)
    network = SyncNet(TINY).eval()
    for module in network.modules():      # non-trivial batch-norm statistics must travel too
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    path = tmp_path / "syncnet_v2.model"
    sha12 = save_syncnet(network, path)
    loaded = load_syncnet(path)
    assert loaded.sha12 == sha12 and loaded.network.config == TINY
    assert not loaded.published and loaded.weights_id == f"syncnet-standin:{sha12}"   # reduced width: a stand-in
    mfcc, video = torch.randn(2, 1, 13, 20), torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        assert torch.equal(loaded.network.embed_audio(mfcc), network.embed_audio(mfcc))
        assert torch.equal(loaded.network.embed_video(video), network.embed_video(video))


def test_published_widths_are_not_starred_unless_marked(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    state = {k: v for k, v in SyncNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)                                   # pre-0.4 files have no num_batches_tracked
    loaded = load_syncnet(path)
    assert loaded.published and loaded.weights_id.startswith("syncnet_v2:")
    standin_card_path(path).write_text("{}")
    assert not load_syncnet(path).published


def test_legacy_format_and_instance_prefix(tmp_path):
    network = SyncNet(TINY)
    path = tmp_path / "legacy.model"
    state = {f"__S__.{k}": v for k, v in network.state_dict().items()}
    torch.save(state, path, _use_new_zipfile_serialization=False)   # the pre-1.6 format of syncnet_v2.model
    assert not zipfile.is_zipfile(path)
    assert load_syncnet(path).network.config == TINY


def test_config_read_from_shapes():
    assert config_from_state_dict(SyncNet(TINY).state_dict()) == TINY
    assert config_from_state_dict(SyncNet().state_dict()).is_published


@pytest.mark.parametrize("case", ["missing-key", "wrong-shape", "extra-key", "not-a-dict", "pickle-code", "garbage"])
def test_wrong_files_name_the_file(tmp_path, case):
    path = tmp_path / f"{case}.model"
    state = SyncNet(TINY).state_dict()
    if case == "missing-key":
        del state["netcnnlip.4.weight"]
        torch.save(state, path)
    elif case == "wrong-shape":
        state["netfcaud.3.weight"] = torch.zeros(7, 3)
        torch.save(state, path)
    elif case == "extra-key":
        state["netextra.weight"] = torch.zeros(1)
        torch.save(state, path)
    elif case == "not-a-dict":
        torch.save([torch.zeros(1)], path)
    elif case == "pickle-code":
        path.write_bytes(pickle.dumps(print))        # a pickle that would call code: refused by weights_only
    else:
        path.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(SyncNetFileError) as error:
        load_syncnet(path)
    assert str(path) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_oversized_file_refused_before_reading(tmp_path):
    path = tmp_path / "big.model"
    save_syncnet(SyncNet(TINY), path)
    with pytest.raises(SyncNetFileError, match="refused"):
        load_syncnet(path, max_bytes=1000)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="download_model.sh"):
        load_syncnet("/nonexistent/syncnet_v2.model")
