"""LPIPS against the lpips package's own numbers on the same images and stand-in weights
(tests/fixtures/peers/lpips_richzhang.json), and its loaders on files of the published layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics import frame_quality as fq
from metrics import lpips as lp
from tests.frame_quality_fixtures import parity_images

PEER = json.loads((Path(__file__).parent / "fixtures" / "peers" / "lpips_richzhang.json").read_text())


def save_standin(folder: Path, net: str, seed: int = 18) -> tuple[Path, Path]:
    """Stand-in weights written in the published layouts: torchvision's trunk (with a classifier
    tensor, which is ignored) and the lpips package's lin layers."""
    model = lp.init_standin_lpips_(lp.LPIPS(net), seed)
    spec = lp.NETWORKS[net]
    trunk, lin = folder / spec["trunk_file"], folder / spec["lin_file"]
    state = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(state, trunk)
    torch.save({f"lin{k}.model.1.weight": layer.weight.detach().clone() for k, layer in enumerate(model.lins)}, lin)
    return trunk, lin


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_lpips_package(tmp_path, net):
    save_standin(tmp_path, net)
    distance = lp.load_lpips_folder(tmp_path, net, batch_size=2)
    assert distance.is_pretrained and distance.weights_id.startswith(f"lpips-{net}-v0.1:")
    values = fq.lpips_clip(parity_images(1, 3), parity_images(0, 3), distance)
    np.testing.assert_allclose(values, PEER["outputs"][net], rtol=1e-5, atol=1e-6)
    assert np.allclose(distance(parity_images(0, 2), parity_images(0, 2)), 0.0, atol=1e-7)


def test_lpips_loaders_name_wrong_files(tmp_path):
    trunk, lin = save_standin(tmp_path, "alex")
    wrong_lin = tmp_path / "wrong_lin.pth"
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, wrong_lin)
    with pytest.raises(ValueError, match=r"wrong_lin\.pth(.|\n)*missing keys \(4\)"):
        lp.load_lpips(trunk, wrong_lin)
    with pytest.raises(ValueError, match=r"alex\.pth(.|\n)*no 'features\.\*' tensors"):
        lp.load_lpips(lin, lin)                  # the lin file given as the trunk
    with pytest.raises(ValueError, match=r"alexnet-owt-7be5be79\.pth(.|\n)*wrong shapes"):
        lp.load_lpips(trunk, lin, net="vgg")     # AlexNet's trunk for VGG
    with pytest.raises(ValueError, match="needs both"):
        lp.load_lpips(trunk, None)
    (tmp_path / "vgg").mkdir()
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        lp.load_lpips_folder(tmp_path / "vgg", "vgg")


def test_lpips_files_are_read_bounded(tmp_path, monkeypatch):
    trunk, lin = save_standin(tmp_path, "alex")
    monkeypatch.setattr(lp, "MAX_LIN_BYTES", 100)
    with pytest.raises(ValueError, match=r"alex\.pth: refused"):
        lp.load_lpips(trunk, lin)


def test_without_files_lpips_is_a_labelled_standin():
    distance = lp.load_lpips(None, None)
    assert not distance.is_pretrained and distance.weights_id == "lpips-alex-standin-seed0"
    with pytest.raises(ValueError, match="one shape"):
        distance(parity_images(0, 2), parity_images(0, 3))
