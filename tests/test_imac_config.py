"""imac config overrides: a wrong ``key.sub=value`` is named by its text and key, not blamed on the YAML file;
a value out of its range is refused like one of the wrong type."""

from __future__ import annotations

import pytest
import yaml

from imac.cli import main
from imac.config import ConfigError, load_config, resolve_config_path, with_sampling_overrides


@pytest.mark.parametrize("override, problem", [
    ("stage1.steps=abc", "stage1.steps: expected an integer, got 'abc'"),
    ("stage1.stepz=3", "stage1: unknown key(s) stepz"),
    ("stagez.steps=3", "unknown key(s) stagez"),
    ("video.handover=lat", "video.handover: expected one of 'decoded', 'latent', got 'lat'"),
])
def test_a_wrong_override_is_named_not_the_file(override, problem):
    with pytest.raises(ConfigError) as raised:
        load_config("tiny", ["stage1.lr=0.5", override, "train.seed=3"])
    message = str(raised.value)
    assert message.startswith(f"override {override!r}: {problem}"), message
    assert "tiny.yaml" not in message and "stage1.lr=0.5" not in message and "train.seed" not in message


def test_the_command_line_names_the_override_in_one_line(capsys):
    assert main(["train", "stage1", "--config", "tiny", "stage1.steps=abc"]) == 2
    err = capsys.readouterr().err
    assert err == "imac train: error: override 'stage1.steps=abc': stage1.steps: expected an integer, got 'abc'\n"


def test_a_wrong_file_is_still_named_and_an_override_may_replace_its_bad_value(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"stage1": {"steps": "many"}, "train": {"seed": 1}}))
    with pytest.raises(ConfigError) as raised:
        load_config(path, ["train.seed=2"])
    assert str(raised.value).startswith(f"{path}: stage1.steps: expected an integer, got 'many'")
    assert load_config(path, ["stage1.steps=7"]).stage1.steps == 7


def test_sampling_overrides_name_the_wrong_one_with_their_section():
    config = load_config("tiny")
    with pytest.raises(ConfigError) as raised:
        with_sampling_overrides(config, ["video.guidance_scale=2", "motion.sample_clip=big"], "methods.imac: overrides")
    assert str(raised.value).startswith("methods.imac: overrides 'motion.sample_clip=big': motion.sample_clip: "
                                        "expected a number, got 'big'")


@pytest.mark.parametrize("written, number", [("1e-4", 1e-4), ("5E-4", 5e-4), ("2.5e3", 2500.0), ("1e+2", 100.0),
                                             (".5e-1", 0.05)])
def test_a_learning_rate_in_exponent_notation_is_a_number(tmp_path, written, number):
    # PyYAML (YAML 1.1) reads '1e-4' as a string; YAML 1.2 and Python read it as the number on the right
    assert load_config("tiny", [f"stage2.lr={written}"]).stage2.lr == number
    source = yaml.safe_load(resolve_config_path("tiny").read_text())
    source["stage1"]["lr"] = written                        # as a YAML file spells it: lr: 1e-4
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(source).replace(f"'{written}'", written))
    assert load_config(path).stage1.lr == number


@pytest.mark.parametrize("written", ["1e-4x", "e-4", "1e", "fast"])
def test_a_learning_rate_that_is_no_number_is_named(written):
    with pytest.raises(ConfigError, match=rf"stage2.lr: expected a number, got '{written}'"):
        load_config("tiny", [f"stage2.lr={written}"])



def test_a_negative_exponent_number_is_read_as_a_number_and_refused_as_a_learning_rate():
    # a string would be "expected a number"; the number -3e-5 is out of the learning rate's range
    with pytest.raises(ConfigError, match=r"stage2.lr: must be > 0, got -3e-05$"):
        load_config("tiny", ["stage2.lr=-3e-5"])


@pytest.mark.parametrize("override, problem", [
    ("stage1.steps=0", "stage1.steps: must be >= 1, got 0"),          # wrote an untrained model
    ("stage2.steps=-3", "stage2.steps: must be >= 1, got -3"),
    ("stage1.lr=-1e-3", "stage1.lr: must be > 0, got -0.001"),         # was torch's message without the key
    ("stage2.lr=0", "stage2.lr: must be > 0, got 0.0"),
    ("stage1.batch_size=0", "stage1.batch_size: must be >= 1, got 0"),
    ("stage2.ema_decay=1", "stage2.ema_decay: must be >= 0 and < 1, got 1.0"),
    ("video.condition_dropout=1.5", "video.condition_dropout: must be >= 0 and <= 1, got 1.5"),
    ("video.sample_steps=0", "video.sample_steps: must be >= 1 and <= 1000, got 0"),
    ("video.guidance_scale=-1", "video.guidance_scale: must be >= 0 and <= 50, got -1.0"),
    ("motion.dropout=1", "motion.dropout: must be >= 0 and < 1, got 1.0"),
    ("motion.window_overlap=-2", "motion.window_overlap: must be >= 0, got -2"),
    ("data.resolution=4", "data.resolution: must be >= 8, got 4"),
    ("train.save_every=0", "train.save_every: must be >= 1, got 0"),
    ("fps=0", "fps: must be >= 1, got 0.0"),
])
def test_a_value_out_of_range_is_named_with_its_bounds(override, problem):
    with pytest.raises(ConfigError) as raised:
        load_config("tiny", [override])
    assert str(raised.value) == f"override {override!r}: {problem}"


@pytest.mark.parametrize("override", ["stage1.steps=1", "stage2.lr=1e-9", "video.guidance_scale=0",
                                      "video.condition_dropout=1", "train.grad_clip=0", "motion.window_overlap=79",
                                      "stage2.ema_decay=0.9999"])
def test_the_bounds_themselves_are_allowed(override):
    key, _, value = override.partition("=")
    section, name = key.split(".")
    assert getattr(getattr(load_config("tiny", [override]), section), name) == float(value)


def test_windows_that_do_not_fit_together_are_named_with_both_keys():
    with pytest.raises(ConfigError, match=r"tiny.yaml with stage2.motion_frames=8: stage2.motion_frames \(8\) "
                                          r"must be >= video.frames \(16\)"):
        load_config("tiny", ["stage2.motion_frames=8"])
    with pytest.raises(ConfigError, match=r"motion.window_overlap \(80\) must be shorter than the motion window "
                                          r"stage1.motion_frames \(80\)"):
        load_config("tiny", ["motion.window_overlap=80"])
    slow_fast_off = load_config("tiny", ["stage1.motion_frames=16", "stage2.motion_frames=16"])   # the ablation
    assert slow_fast_off.stage2.motion_frames == slow_fast_off.video.frames == 16
    with pytest.raises(ConfigError, match=r"model: motion.window_overlap \(80\) must be shorter"):
        with_sampling_overrides(load_config("tiny"), ["motion.window_overlap=80"], "model")


def test_training_with_zero_steps_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["train", "stage1", "--config", "tiny", f"train.output={tmp_path / 'out'}", "stage1.steps=0"]) == 2
    assert capsys.readouterr().err == ("imac train: error: override 'stage1.steps=0': stage1.steps: "
                                       "must be >= 1, got 0\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["tiny", "i2vgenxl"])
def test_the_packaged_configs_are_within_range(name):
    assert load_config(name).stage1.steps >= 1


@pytest.mark.parametrize("override, problem", [
    ("stage1.lr=.inf", "stage1.lr: must be a finite number, got inf"),       # trained into NaN weights
    ("stage2.lr=1e999", "stage2.lr: must be a finite number, got inf"),
    ("train.grad_clip=.inf", "train.grad_clip: must be a finite number, got inf"),
    ("stage1.lr=.nan", "stage1.lr: must be a finite number, got nan"),
    ("fps=0.001", "fps: must be >= 1, got 0.001"),                            # a 16 GiB mel filter bank
    ("audio.sample_rate=1", "audio.sample_rate: must be >= 8000, got 1"),
    ("train.mixed_precision=fp64", "train.mixed_precision: expected one of 'no', 'fp16', 'bf16', got 'fp64'"),
])
def test_infinite_and_unusable_values_are_refused(override, problem):
    with pytest.raises(ConfigError) as raised:
        load_config("tiny", [override])
    assert str(raised.value) == f"override {override!r}: {problem}"


@pytest.mark.parametrize("override, keys", [("motion.heads=3", r"motion.width \(64\) must be a multiple of motion.heads \(3\)"),
                                            ("audio.mfcc_heads=3", r"audio.mfcc_width \(32\) must be a multiple of "
                                                                   r"audio.mfcc_heads \(3\)")])
def test_attention_widths_that_do_not_split_into_heads_are_named(override, keys):
    with pytest.raises(ConfigError, match=keys):       # was torch's assertion traceback at the first layer
        load_config("tiny", [override])


@pytest.mark.parametrize("override", ["stage1.steps=!!int 1.5", "stage1.steps=1" + "0" * 5000])
def test_values_yaml_cannot_build_are_named_with_their_override(override):
    with pytest.raises(ConfigError) as raised:
        load_config("tiny", [override])
    assert str(raised.value).startswith(f"override {override!r}: the value: not a valid YAML value: ")


def test_an_integer_too_large_for_a_number_is_named():
    override = "stage2.lr=1" + "0" * 400                      # was OverflowError's traceback
    with pytest.raises(ConfigError) as raised:
        load_config("tiny", [override])
    assert str(raised.value) == f"override {override!r}: stage2.lr: too large for a number: 100000000000... (401 digits)"


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_max_steps_below_one_is_refused(steps, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "stage1", "--config", "tiny", "--max-steps", steps])
    assert exit_.value.code == 2 and f"argument --max-steps: {steps} is less than 1" in capsys.readouterr().err


def test_the_training_seed_is_within_numpys_32_bits():
    from metrics.options import OptionsError
    assert load_config("tiny", ["train.seed=4294967295"]).train.seed == 2 ** 32 - 1
    for bad in ("-1", "4294967296"):
        with pytest.raises((OptionsError, ValueError), match=r"train.seed: must be >= 0 and <= 4294967295"):
            load_config("tiny", [f"train.seed={bad}"])


def test_a_home_folder_in_a_path_key_is_expanded(monkeypatch, tmp_path):
    """Before: `train.output=~/x` (bash leaves the ~ of a key.sub=~/x word) wrote into a folder named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config("tiny", ["train.output=~/runs/x", "data.root=~/data", "video.vae=~/vae"])
    assert config.train.output == f"{tmp_path}/runs/x"
    assert config.data.root == f"{tmp_path}/data" and config.video.vae == f"{tmp_path}/vae"
    assert config.stage2.init_from == f"{tmp_path}/runs/x/stage1/model"       # {train.output} follows it
    assert load_config("tiny", ["train.output=runs/~x"]).train.output == "runs/~x"   # not at the start: kept
