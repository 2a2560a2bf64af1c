"""imac-bench run reuses an IMAC trained earlier in the run folder only if it was trained with the
settings the run would train with now (else its numbers would be another model's)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bench.methods.base import BenchContext
from bench.methods.imac_folder import check_trained_with
from bench.methods.imac_method import IMACMethod, IMACOptions
from imac.config import load_config, save_config

OPTIONS = {"config": "tiny", "overrides": ["stage2.steps=240"]}


def context(run: Path, options: dict | None = None, name: str = "imac") -> BenchContext:
    return BenchContext(data_root=run / "data", work_dir=run / "work" / name, options=options or OPTIONS,
                        shared_vae=lambda: run / "work" / "vae")


def trained_earlier(run: Path, stage: str, overrides: list[str], finished: bool = True, name: str = "imac") -> Path:
    """A stage folder as the trainer leaves it: config.yaml (beside model/imac.json when finished)."""
    folder = run / "work" / name / stage
    folder.mkdir(parents=True)
    if finished:
        (folder / "model").mkdir()
        (folder / "model" / "imac.json").write_text("{}")
    save_config(load_config("tiny", [f"data.root={run / 'data'}", f"train.output={run / 'work' / name}",
                                     f"video.vae={run / 'work' / 'vae'}", f"stage2.init_from={folder.parent / 'stage1' / 'model'}",
                                     "stage2.steps=240", *overrides]), folder / "config.yaml")
    return folder


def run_config(run: Path, name: str = "imac"):
    return IMACMethod(name).config(context(run, name=name), IMACOptions.from_dict(OPTIONS))


def test_a_model_trained_with_the_same_training_settings_is_reused(tmp_path):
    # where things are, the device, logging, memory use and the sampling switches leave the weights as they are
    folder = trained_earlier(tmp_path, "stage2", ["train.device=cuda", "video.vae=elsewhere/vae",
                                                  "stage2.init_from=elsewhere/stage1/model", "data.root=moved",
                                                  "train.gradient_checkpointing=true", "name=renamed",
                                                  "video.sample_steps=50", "video.handover=latent"])
    check_trained_with(folder, run_config(tmp_path))


def test_stage2_trained_with_another_video_setting_is_refused_naming_it(tmp_path):
    folder = trained_earlier(tmp_path, "stage2", ["video.motion_map=0"])
    with pytest.raises(ValueError, match=r"stage2: trained earlier in this run folder with another configuration "
                                         r"\(video.motion_map: 0 -> 8\); this run folder holds that model's results; "
                                         r"give a new --out"):
        check_trained_with(folder, run_config(tmp_path))


def test_whether_a_folder_is_given_counts_though_where_it_is_does_not(tmp_path):
    folder = trained_earlier(tmp_path, "stage2", ["stage2.init_from=null"])     # trained without stage 1
    with pytest.raises(ValueError, match=r"stage2.init_from: None -> '<a folder>'"):
        check_trained_with(folder, run_config(tmp_path))


def test_stage1_ignores_the_video_branch_but_not_its_own_steps(tmp_path):
    check_trained_with(trained_earlier(tmp_path / "a", "stage1", ["video.motion_map=0", "stage2.lr=1e-3"]),
                       run_config(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"\(stage1.steps: 7 -> 600\)"):
        check_trained_with(trained_earlier(tmp_path / "b", "stage1", ["stage1.steps=7"]), run_config(tmp_path / "b"))


def test_a_stage2_without_stage1_ignores_stage1s_settings(tmp_path):
    # the w/o-first-stage ablation: its stage 2 never reads stage 1's steps or learning rate
    folder = trained_earlier(tmp_path, "stage2", ["stage2.init_from=null", "stage1.steps=7", "stage1.lr=0.5"],
                             name="imac-no-stage1")
    check_trained_with(folder, run_config(tmp_path, "imac-no-stage1"))


def test_a_key_the_saved_file_lacks_counts_as_changed(tmp_path):
    # a folder of a version before the key: its default today says nothing of how that model was trained
    folder = trained_earlier(tmp_path, "stage1", [])
    values = yaml.safe_load((folder / "config.yaml").read_text())
    del values["motion"]["noise_skip"]
    (folder / "config.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=r"motion.noise_skip: \(absent\) -> True"):
        check_trained_with(folder, run_config(tmp_path))


def test_an_unreadable_saved_config_is_refused_not_passed(tmp_path):
    folder = trained_earlier(tmp_path, "stage2", [])
    (folder / "config.yaml").write_text("video: [unclosed\n")
    with pytest.raises(ValueError, match=r"config.yaml: cannot compare the model trained in this run folder"):
        check_trained_with(folder, run_config(tmp_path))


def test_a_folder_without_its_config_passes(tmp_path):
    folder = tmp_path / "work" / "imac" / "stage2"
    folder.mkdir(parents=True)
    check_trained_with(folder, run_config(tmp_path))


def never_train_the_vae():
    raise AssertionError("check_folder asked for the run's VAE (that trains it)")


def test_check_folder_refuses_an_interrupted_stage_too(tmp_path):
    # interrupted before its model was written: resuming it with other settings would mix two trainings
    trained_earlier(tmp_path, "stage1", ["stage1.lr=0.5"], finished=False)
    with pytest.raises(ValueError, match=r"stage1.lr: 0.5 -> 0.001"):
        IMACMethod("imac").check_folder(replace(context(tmp_path), shared_vae=never_train_the_vae))
    trained_earlier(tmp_path / "same", "stage2", [])          # the same settings: passes, without the VAE
    IMACMethod("imac").check_folder(replace(context(tmp_path / "same"), shared_vae=never_train_the_vae))
    IMACMethod("imac").check_folder(context(tmp_path, {**OPTIONS, "model": str(tmp_path / "given")}))  # a given model


def test_identities_that_read_as_numbers_or_booleans_stay_names(tmp_path):
    ctx = BenchContext(data_root=tmp_path, work_dir=tmp_path / "work" / "imac", options=OPTIONS,
                       identities=("001", "yes", "null"), shared_vae=lambda: tmp_path / "vae")
    assert IMACMethod("imac").config(ctx, IMACOptions.from_dict(OPTIONS)).data.identities == ["001", "yes", "null"]


def test_videos_recorded_before_noise_correlation_read_as_the_independent_noise_they_were_made_with(tmp_path):
    from bench.methods.base import as_json, made_with_changes

    method = IMACMethod("imac")
    now = as_json(method.made_with(context(tmp_path)))                 # as method.json records it
    assert now["sampling"]["video.noise_correlation"] == 0.0          # the tiny config's
    older = {**now, "sampling": {k: v for k, v in now["sampling"].items() if k != "video.noise_correlation"}}
    assert made_with_changes(older, now) == ["sampling.video.noise_correlation: (absent) -> 0.0"]
    assert made_with_changes(method.recorded_made_with(older), now) == []       # independent noise: the same draws
    other = {**now, "sampling": {**now["sampling"], "video.noise_correlation": 0.5}}
    assert made_with_changes(method.recorded_made_with(other), now) == ["sampling.video.noise_correlation: 0.5 -> 0.0"]


def test_videos_recorded_before_motion_smoothing_read_as_unsmoothed_so_the_tiny_default_samples_again(tmp_path):
    from bench.methods.base import as_json, made_with_changes

    method = IMACMethod("imac")
    now = as_json(method.made_with(context(tmp_path)))
    assert now["sampling"]["motion.smooth_sigma"] == 5.0                # the tiny config's
    older = {**now, "sampling": {k: v for k, v in now["sampling"].items() if k != "motion.smooth_sigma"}}
    # made before the key existed: with the motion as sampled, which is not what the tiny config makes now
    assert made_with_changes(method.recorded_made_with(older), now) == ["sampling.motion.smooth_sigma: 0.0 -> 5.0"]
