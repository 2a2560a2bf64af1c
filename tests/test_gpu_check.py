"""benchmarks/gpu_check.py keeps working: the real configuration's code path at a reduced size on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
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
