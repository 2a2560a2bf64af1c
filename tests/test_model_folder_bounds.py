"""A model folder from elsewhere whose config.json asks for a far larger network than its weights:
refused before anything is built at full size (``imac.models.loading.load_pretrained``)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from diffusers import AutoencoderKL
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from imac.models.loading import load_pretrained
from imac.models.motion import MotionModel
from metrics.io.bounded import BoundedReadError, check_model_fits_weights


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def tiny_motion(folder):
    model = MotionModel(pose_dim=9, expression_dim=5, n_mfcc=13, hubert_dim=16, width=16, heads=2, audio_width=8)
    model.save_pretrained(folder)
    return model


def test_an_intact_folder_loads_as_saved_and_its_size_is_the_networks(tmp_path):
    model = tiny_motion(tmp_path / "motion")
    loaded = load_pretrained(MotionModel, tmp_path / "motion")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # the count on the meta device is the real network's (built normally here)
    counted = check_model_fits_weights(lambda: MotionModel.from_config(MotionModel.load_config(tmp_path / "motion")),
                                       tmp_path / "motion")
    assert counted == sum(t.numel() for t in model.state_dict().values())


def test_a_width_the_weights_cannot_hold_is_refused_naming_the_folder(tmp_path):
    tiny_motion(tmp_path / "motion")
    edit_config(tmp_path / "motion", width=200_000)      # a 160 GB layer if built
    with pytest.raises(BoundedReadError, match=r"motion: refused: its config describes a network of over [\d,]+ "
                                               r"parameters, more than its weight files \(.*\) can hold"):
        load_pretrained(MotionModel, tmp_path / "motion")


def test_diffusers_and_transformers_parts_are_checked_too(tmp_path):
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4).save_pretrained(tmp_path / "vae")
    load_pretrained(AutoencoderKL, tmp_path / "vae")
    edit_config(tmp_path / "vae", block_out_channels=[8192], norm_num_groups=4)
    with pytest.raises(BoundedReadError, match="vae: refused"):
        load_pretrained(AutoencoderKL, tmp_path / "vae")

    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    load_pretrained(CLIPVisionModelWithProjection, tmp_path / "clip")
    edit_config(tmp_path / "clip", intermediate_size=10**8)
    with pytest.raises(BoundedReadError, match="clip: refused"):
        load_pretrained(CLIPVisionModelWithProjection, tmp_path / "clip")


def test_a_folder_without_weights_is_refused(tmp_path):
    tiny_motion(tmp_path / "motion")
    for weights in (tmp_path / "motion").glob("*.safetensors"):
        weights.unlink()
    edit_config(tmp_path / "motion", width=4096)          # 2 x 4096^2 x layers: beyond the slack
    with pytest.raises(BoundedReadError, match=r"weight files \(0 bytes\)"):
        load_pretrained(MotionModel, tmp_path / "motion")


def test_only_the_files_a_loader_reads_count_as_weights(tmp_path):
    tiny_motion(tmp_path / "motion")
    edit_config(tmp_path / "motion", width=30_000)        # 11 GB if built
    for name in ("padding.bin", "optimizer.pt"):          # large files the loader never reads
        with open(tmp_path / "motion" / name, "wb") as handle:
            handle.truncate(200 << 30)                    # sparse: 200 GB apparent, nothing on disk
    with pytest.raises(BoundedReadError, match="motion: refused"):
        load_pretrained(MotionModel, tmp_path / "motion")


def test_a_config_of_millions_of_layers_stops_early(tmp_path):
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    edit_config(tmp_path / "clip", num_hidden_layers=10**7)   # tiny layers: the element count alone is small
    with pytest.raises(BoundedReadError, match=r"clip: refused: its config describes a network of over"):
        load_pretrained(CLIPVisionModelWithProjection, tmp_path / "clip")


def test_subfolder_and_local_files_only_reach_the_config_too(tmp_path):
    model = tiny_motion(tmp_path / "root" / "motion")
    loaded = load_pretrained(MotionModel, tmp_path / "root", subfolder="motion", local_files_only=True)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_a_missing_local_folder_is_named_not_looked_up_on_the_hub(tmp_path):
    # diffusers and transformers would take a path they cannot find for a hub id and report a network error
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'motion'}: no such model folder$"):
        load_pretrained(MotionModel, tmp_path / "motion")
    (tmp_path / "vae").mkdir()
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'vae'}: no config.json: not a saved model folder$"):
        load_pretrained(AutoencoderKL, tmp_path / "vae", local_files_only=True)
    for kind in (CLIPVisionModelWithProjection,):      # transformers too
        with pytest.raises(FileNotFoundError, match="no such model folder"):
            load_pretrained(kind, tmp_path / "image_encoder")


def _rewrite(path, edit):
    """Load a safetensors file, let ``edit`` change its dict of tensors, save it back."""
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_weights_missing_a_tensor_or_of_another_shape_are_named_with_the_file_and_tensor(tmp_path):
    """Was: diffusers' 'Cannot copy out of meta tensor' traceback naming neither file nor tensor."""
    weights = tmp_path / "motion" / "diffusion_pytorch_model.safetensors"
    name = sorted(tiny_motion(tmp_path / "motion").state_dict())[0]
    original = weights.read_bytes()
    _rewrite(weights, lambda tensors: tensors.pop(name))
    with pytest.raises(ValueError) as missing:
        load_pretrained(MotionModel, tmp_path / "motion")
    assert str(missing.value) == (f"{weights}: 1 tensor(s) of the network its config.json builds are not in the "
                                  f"weights, e.g. {name}: not the weights of this config, or a damaged copy")
    weights.write_bytes(original)
    _rewrite(weights, lambda tensors: tensors.update({name: torch.zeros(3, *tensors[name].shape)}))
    with pytest.raises(ValueError, match=rf"^{weights}: tensor {name} has shape \[3, [\d, ]+\], the network its "
                                         "config.json builds needs .*: config.json and the weights are of different"):
        load_pretrained(MotionModel, tmp_path / "motion")


def test_a_transformers_part_missing_a_tensor_is_refused_not_initialised_at_random(tmp_path):
    """Was: transformers filled the missing tensor at random and the run went on."""
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    name = "visual_projection.weight"
    _rewrite(tmp_path / "clip" / "model.safetensors", lambda tensors: tensors.pop(name))
    with pytest.raises(ValueError) as missing:
        load_pretrained(CLIPVisionModelWithProjection, tmp_path / "clip")
    assert str(missing.value) == (f"{tmp_path / 'clip'}: 1 tensor(s) of the network not in its weights, e.g. {name}: "
                                  "not the weights of this config.json, or a damaged copy")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_transformers_load_report_is_not_shown_beside_a_refusal_but_kept_otherwise(tmp_path):
    """transformers logs a report saying missing tensors "were newly initialized": beside our refusal
    that is untrue, so it is held back; a report of tensors the network lacks (loaded all the same)
    still reaches transformers' log."""
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    for name in ("missing", "extra"):
        CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / name)
    _rewrite(tmp_path / "missing" / "model.safetensors", lambda tensors: tensors.pop("visual_projection.weight"))
    _rewrite(tmp_path / "extra" / "model.safetensors",
             lambda tensors: tensors.__setitem__("head.weight", torch.zeros(2, 2)))
    records = _Records()
    log = logging.getLogger("transformers")
    log.addHandler(records)
    try:
        with pytest.raises(ValueError, match="1 tensor\\(s\\) of the network not in its weights"):
            load_pretrained(CLIPVisionModelWithProjection, tmp_path / "missing")
        assert not [m for m in records.messages if "LOAD REPORT" in m]
        load_pretrained(CLIPVisionModelWithProjection, tmp_path / "extra")
        reports = [m for m in records.messages if "LOAD REPORT" in m]
        assert len(reports) == 1 and "head.weight" in reports[0] and "UNEXPECTED" in reports[0]
    finally:
        log.removeHandler(records)


@pytest.mark.parametrize("changes, raised", [
    ({"width": "16"}, "TypeError"),                     # a width as text
    ({"heads": 3}, "AssertionError"),                   # heads that do not divide the width (16)
    ({"width": -16}, "RuntimeError"),                   # a negative size
])
def test_a_config_that_builds_no_network_is_named_not_a_traceback(tmp_path, changes, raised):
    """Before: torch's own error from deep in the build (a traceback through imac sample and imac train)."""
    tiny_motion(tmp_path / "motion")
    edit_config(tmp_path / "motion", **changes)
    config = tmp_path / "motion" / "config.json"
    with pytest.raises(ValueError, match=f"^{config}: no network can be built from its settings \\(a damaged or "
                                         f"edited config: {raised}: "):
        load_pretrained(MotionModel, tmp_path / "motion")
    config.write_text("[]")                             # JSON, not an object (before: "couldn't connect to the hub")
    with pytest.raises(ValueError, match=f"^{config}: a list, not a JSON object of settings$"):
        load_pretrained(MotionModel, tmp_path / "motion")
