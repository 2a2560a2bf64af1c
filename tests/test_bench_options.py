"""The options sections of the built-in methods load through ``metrics.options``: an unknown key or a
value of the wrong type is an error naming the section and the key; values and keys are unchanged."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from bench.baselines.keypoint_motion import KeypointMotion, KeypointMotionOptions
from bench.baselines.pose_guided import MYAOptions
from bench.baselines.s2g import S2GOptions
from bench.methods.base import BenchContext
from bench.methods.imac_method import IMACOptions
from bench.methods.mya import MYAMethod
from bench.methods.s2g import S2GMethod
from metrics.options import OptionsError


def _context(tmp_path: Path, options: dict) -> BenchContext:
    return BenchContext(data_root=tmp_path / "no-data", work_dir=tmp_path / "work", options=options, progress=False)


# -- imac ----------------------------------------------------------------------------------------


def test_imac_names_an_unknown_key():
    with pytest.raises(OptionsError, match=r"imac: .*unknown key.*samples_steps"):
        IMACOptions.from_dict({"samples_steps": 3})


@pytest.mark.parametrize("key, value", [("sample_steps", "ten"), ("guidance_scale", "high"), ("overrides", "a=1"),
                                        ("config", 3), ("model", ["a"])])
def test_imac_names_a_wrong_type(key, value):
    with pytest.raises(OptionsError, match=rf"imac: {key}: expected"):
        IMACOptions.from_dict({key: value})


@pytest.mark.parametrize("key, value, bound", [("sample_steps", 0, ">= 1 and <= 1000"), ("sample_steps", 1001, ">= 1 and <= 1000"), ("guidance_scale", -0.5, ">= 0")])
def test_imac_names_a_value_out_of_range(key, value, bound):
    with pytest.raises(OptionsError, match=rf"^imac: {key}: must be {bound}, got {value}$"):
        IMACOptions.from_dict({key: value})


@pytest.mark.parametrize("override, key", [("train.output=/tmp/one", "train.output"), (" data.root = /data", "data.root"),
                                           ("train={output: /tmp/one, seed: 3}", "train.output"),
                                           ("data.identities=[ines]", "data.identities"),
                                           ("video={vae: /tmp/vae}", "video.vae"),
                                           ("stage2.init_from=/models/stage1", "stage2.init_from")])
def test_imac_refuses_an_override_of_what_the_run_sets(override, key):
    # every variant would train into one folder (and the second would find the first's models) or read other data
    with pytest.raises(OptionsError, match=rf"^imac: overrides: .*: the run sets {key} \("):
        IMACOptions.from_dict({"overrides": ["stage1.steps=2", override]})


def test_imac_takes_overrides_of_keys_the_run_leaves_alone():
    # the training seed (README, "The training seed"), a section's other keys, and a value that is no mapping
    for override in ("train.seed=1", "train={seed: 2, save_every: 10}", "video.sample_steps=5", "stage2={lr: 1e-4}"):
        assert IMACOptions.from_dict({"overrides": [override]}).overrides == [override]


def test_imac_defaults_and_values():
    assert IMACOptions.from_dict(None) == IMACOptions()
    options = IMACOptions.from_dict({"sample_steps": 5, "guidance_scale": 1, "overrides": ["stage1.steps=2"]})
    assert (options.sample_steps, options.guidance_scale, options.overrides) == (5, 1.0, ["stage1.steps=2"])


# -- s2g: its own keys and the keypoint model's in one section -----------------------------------


def test_s2g_names_an_unknown_key_and_lists_both_kinds_of_known_keys():
    with pytest.raises(ValueError, match=r"s2g: .*unknown key.*stepz") as error:
        S2GOptions.split({"stepz": 3})
    assert "regularization" in str(error.value) and "sample_steps" in str(error.value)


@pytest.mark.parametrize("key, value", [("border_anchors", 1), ("regularization", "big"), ("steps", "many"),
                                        ("lr", True), ("hubert", 3)])
def test_s2g_names_a_wrong_type(key, value):
    with pytest.raises(ValueError, match=rf"s2g: {key}: expected"):
        S2GOptions.split({key: value})


def test_s2g_range_checks_name_the_section():
    with pytest.raises(ValueError, match=r"s2g: regularization and min_point_gap must be >= 0"):
        S2GOptions.split({"regularization": -1.0})
    with pytest.raises(ValueError, match=r"s2g: option window must be > 0"):
        S2GOptions.split({"window": 0})


def test_s2g_section_splits_into_warp_and_keypoint_options():
    options, motion = S2GOptions.split({"regularization": 3, "border_anchors": False, "steps": 7, "lr": 1})
    assert asdict(options) == {"regularization": 3.0, "min_point_gap": 1.0, "border_anchors": False}
    assert motion == KeypointMotionOptions(steps=7, lr=1.0)
    assert S2GOptions.split(None) == (S2GOptions(), KeypointMotionOptions())


def test_s2g_method_names_its_section_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"s2g: .*unknown key.*tps_lambda"):
        S2GMethod().prepare(_context(tmp_path, {"tps_lambda": 2.0}))
    assert not (tmp_path / "work").exists()


# -- mya and its nested motion section -----------------------------------------------------------


def test_mya_names_an_unknown_key():
    with pytest.raises(ValueError, match=r"mya: .*unknown key.*windw"):
        MYAOptions.from_dict({"windw": 8})


@pytest.mark.parametrize("key, value, named", [("window", "16", "window"), ("lr", "fast", "lr"),
                                               ("shared_noise", 0, "shared_noise"), ("unet", [1], "unet"),
                                               ("pose_widths", [8, "x"], r"pose_widths\[1\]"),
                                               ("motion", 3, "motion")])
def test_mya_names_a_wrong_type(key, value, named):
    with pytest.raises(ValueError, match=rf"mya: {named}: expected"):
        MYAOptions.from_dict({key: value})


def test_mya_motion_names_an_unknown_key():
    with pytest.raises(ValueError, match=r"mya\.motion: .*unknown key.*stepz"):
        MYAOptions.from_dict({"motion": {"stepz": 3}})


@pytest.mark.parametrize("key, value", [("steps", "many"), ("smoothing", "on"), ("hubert", None)])
def test_mya_motion_names_a_wrong_type(key, value):
    with pytest.raises(ValueError, match=rf"mya\.motion: {key}: "):
        MYAOptions.from_dict({"motion": {key: value}})


def test_mya_range_checks_name_the_section():
    with pytest.raises(ValueError, match=r"mya: .*overlap \(4\) must be smaller than window \(4\)"):
        MYAOptions.from_dict({"window": 4, "overlap": 4})
    with pytest.raises(ValueError, match=r"mya\.motion: option window must be > 0"):
        MYAOptions.from_dict({"motion": {"window": 0}})


def test_mya_keeps_motion_as_given():
    options = MYAOptions.from_dict({"steps": 200, "motion": {"steps": 200, "lr": 1}})
    assert options.motion == {"steps": 200, "lr": 1}
    assert options.motion_options() == KeypointMotionOptions(steps=200, lr=1.0)
    assert MYAOptions.from_dict(None) == MYAOptions()


def test_mya_method_names_its_section_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match=r"mya\.motion: .*unknown key.*stepz"):
        MYAMethod().prepare(_context(tmp_path, {"motion": {"stepz": 1}}))


# -- what the options feed: the shared keypoint model's folder -----------------------------------


def test_shared_keypoint_model_folder_key_is_unchanged(tmp_path, monkeypatch):
    """The folder name hashes the training settings; these digests were those before the options moved
    to ``metrics.options`` (a changed digest would retrain every saved run's keypoint model)."""
    folders = []
    monkeypatch.setattr(KeypointMotion, "train_or_load",
                        classmethod(lambda cls, context, options, folder: folders.append(folder.name)))
    context = _context(tmp_path, {})
    KeypointMotion.train_or_load_shared(context, S2GOptions.split({})[1])
    KeypointMotion.train_or_load_shared(context, S2GOptions.split({"steps": 200})[1])
    KeypointMotion.train_or_load_shared(context, MYAOptions.from_dict({"motion": {"steps": 200}}).motion_options())
    assert folders == ["keypoint_motion-12b5eb76b7a3", "keypoint_motion-9c8e4b2c6826", "keypoint_motion-9c8e4b2c6826"]


@pytest.mark.parametrize("corpus, message", [
    ({"size": 100000}, "corpus: size must be in 64..1024, got 100000"),
    ({"clips": 3, "test_clips": 3}, "corpus: test_clips must be in 1..clips-1"),
    ({"seed": -1}, "corpus: seed must be in 0..4294967295, got -1"),
])
def test_the_corpus_section_is_bounded_and_named_before_any_work(corpus, message):
    from bench.config import config_from_dict
    with pytest.raises(OptionsError, match=f"^my.yaml: {message}"):
        config_from_dict({"corpus": corpus}, "my.yaml")
