"""imac config overrides: a wrong ``key.sub=value`` is named by its text and key, not blamed on the YAML file."""

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
                                             (".5e-1", 0.05), ("-3e-5", -3e-5)])
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

