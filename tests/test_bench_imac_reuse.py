"""imac-bench run reuses an IMAC trained earlier in the run folder only if it was trained with the
configuration the run would train now (else its numbers would be another model's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.methods.base import BenchContext
from bench.methods.imac_method import IMACMethod, IMACOptions, check_trained_with
from imac.config import load_config, save_config

OPTIONS = {"config": "tiny", "overrides": ["stage2.steps=240"]}


def context(run: Path, options: dict | None = None) -> BenchContext:
    return BenchContext(data_root=run / "data", work_dir=run / "work" / "imac", options=options or OPTIONS,
                        shared_vae=lambda: run / "work" / "vae")


def trained_earlier(run: Path, stage: str, overrides: list[str]) -> Path:
    """A stage folder as the trainer leaves it: config.yaml beside model/imac.json."""
    folder = run / "work" / "imac" / stage
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "imac.json").write_text("{}")
    save_config(load_config("tiny", [f"data.root={run / 'data'}", f"train.output={run / 'work' / 'imac'}",
                                     "stage2.steps=240", *overrides]), folder / "config.yaml")
    return folder


def run_config(run: Path):
    return IMACMethod("imac").config(context(run), IMACOptions.from_dict(OPTIONS))


def test_a_model_trained_with_the_same_training_settings_is_reused(tmp_path):
    # where things are, the device and the sampling switches do not change the trained weights
    folder = trained_earlier(tmp_path, "stage2", ["train.device=cuda", "video.vae=elsewhere/vae",
                                                  "stage2.init_from=elsewhere/stage1/model",
                                                  "video.sample_steps=50", "video.handover=latent"])
    check_trained_with(folder, run_config(tmp_path))


def test_stage2_trained_with_another_video_setting_is_refused_naming_it(tmp_path):
    folder = trained_earlier(tmp_path, "stage2", ["video.motion_map=0"])
    with pytest.raises(ValueError, match=r"stage2/model: trained earlier in this run folder with another "
                                         r"configuration \(video.motion_map: 0 -> 8\); give a new --out .* remove "
                                         r".*work/imac/stage2 to train it again here"):
        check_trained_with(folder, run_config(tmp_path))


def test_stage1_ignores_the_video_branch_but_not_its_own_steps(tmp_path):
    check_trained_with(trained_earlier(tmp_path / "a", "stage1", ["video.motion_map=0", "stage2.lr=1e-3"]),
                       run_config(tmp_path / "a"))
    folder = trained_earlier(tmp_path / "b", "stage1", ["stage1.steps=7"])
    # stage 2 starts from stage 1: the whole method folder is to be trained again
    with pytest.raises(ValueError, match=r"\(stage1.steps: 7 -> 600\); .* remove \S*b/work/imac to train"):
        check_trained_with(folder, run_config(tmp_path / "b"))


def test_a_folder_without_its_config_passes(tmp_path):
    folder = tmp_path / "work" / "imac" / "stage2"
    folder.mkdir(parents=True)
    check_trained_with(folder, run_config(tmp_path))


def test_prepare_refuses_before_loading_the_stale_model(tmp_path):
    trained_earlier(tmp_path, "stage1", ["stage1.lr=0.5"])
    with pytest.raises(ValueError, match=r"stage1.lr: 0.5 -> 0.001"):
        IMACMethod("imac").prepare(context(tmp_path))
