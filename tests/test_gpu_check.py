"""benchmarks/gpu_check.py keeps working: the real configuration's code path at a reduced size on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import I2VGenXLUNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny kernels: thread hand-offs would dominate on 2 shared cores
    yield
    torch.set_num_threads(threads)


def test_the_full_unet_settings_are_the_i2vgenxl_class_defaults():
    # diffusers wrote I2VGenXLUNet's defaults for the ali-vilab/i2vgen-xl release: ours must equal them.
    with torch.device("meta"):
        ours, defaults = I2VGenXLUNet(**gpu_check.UNET), I2VGenXLUNet()
    def settings(unet):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in unet.config.items() if not k.startswith("_")}

    assert settings(ours) == settings(defaults)
    assert sum(p.numel() for p in ours.parameters()) > 1.4e9


def test_reduced_check_runs_every_part_on_the_cpu(one_thread, tmp_path):
    report = gpu_check.main(["--size", "reduced", "--device", "cpu", "--steps", "1", "--json", str(tmp_path / "r.json"),
                             "--override", "video.frames=4", "--override", "stage1.motion_frames=8",
                             "--override", "stage2.motion_frames=8"])
    assert report["stage1"]["loss_finite"] and report["stage2"]["loss_finite"]
    assert report["stage2_video80"]["loss_finite"] and report["stage2_video80"]["peak_GiB"] is None
    assert report["build"]["stage2_built_on"] == "cpu"
    sampling = report["sampling"]
    # 1 and 3 chunks of 4 frames sharing their joins: 4 and 10 frames at 25 fps
    assert sampling["video"]["generated_seconds"] == [0.16, 0.4]
    assert sampling["motion"]["generated_seconds"] == [0.32, 0.96]
    assert (tmp_path / "r.json").is_file()


@pytest.fixture
def fresh_accelerator_state():
    # accelerate keeps one process-wide state whose mixed precision, once set, cannot change
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_the_configs_bf16_autocast_runs_training_and_sampling(one_thread, fresh_accelerator_state, tmp_path,
                                                              monkeypatch):
    # The i2vgenxl config trains and samples under bf16 autocast, which runs on CUDA only: a tensor
    # the code makes in float32 next to an autocast output fails there first. CPU autocast casts the
    # same matmul/conv/linear family to bf16, so a dtype mismatch of the model code shows here.
    import contextlib

    import transformers

    import imac.pipeline

    monkeypatch.setattr(imac.pipeline, "sampling_autocast", lambda device, precision: contextlib.nullcontext()
                        if precision == "no" else torch.autocast("cpu", dtype=torch.bfloat16))
    arch = gpu_check.architecture("reduced")
    config = gpu_check.random_weights_config(arch, tmp_path, [*arch["overrides"], "video.frames=4",
                                                              "stage1.motion_frames=8", "stage2.motion_frames=8"])
    assert (config.train.mixed_precision, config.video.sample_precision) == ("bf16", "bf16")
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    device, hubert_dim, built = torch.device("cpu"), arch["hubert"]["hidden_size"], {}
    stage1 = gpu_check.build_model(config, "stage1", hubert_dim, device, built)
    batch = gpu_check.random_batch(config, "stage1", None, hubert_dim, device)
    assert gpu_check.training_steps(accelerator, stage1, "stage1", batch, steps=1)["loss_finite"]

    stage2 = gpu_check.build_model(config, "stage2", hubert_dim, device, built)
    unet_dtypes = []   # autocast really ran: the UNet's output is bf16 in training and in sampling
    stage2.unet.register_forward_hook(lambda module, inputs, output: unet_dtypes.append(output[0].dtype))
    batch = gpu_check.random_batch(config, "stage2", config.video.frames, hubert_dim, device)
    assert gpu_check.training_steps(accelerator, stage2, "stage2", batch, steps=1)["loss_finite"]
    assert unet_dtypes and set(unet_dtypes) == {torch.bfloat16}
    unet_dtypes.clear()
    hubert = transformers.HubertModel(transformers.HubertConfig(**arch["hubert"])).eval()
    sampling = gpu_check.sampling_cost(config, accelerator.unwrap_model(stage2), hubert, device)  # raises on NaN
    assert sampling["precision"] == "bf16" and set(unet_dtypes) == {torch.bfloat16}


def test_unknown_size_is_refused():
    with pytest.raises(ValueError, match="--size must be full or reduced"):
        gpu_check.architecture("huge")


def test_sampling_memory_script_samples_both_ways_at_a_small_size():
    import sampling_memory

    threads = torch.get_num_threads()
    try:
        for way in sampling_memory.WAYS:
            result = sampling_memory.one(way, 0.7, 128, "cpu")   # gpu_check's reduced size
            assert result["frames"] == 17 and result["peak_MiB"] >= result["before_MiB"] > 0
    finally:
        torch.set_num_threads(threads)
