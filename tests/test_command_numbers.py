"""Numbers on the command lines of python -m metrics and imac-bench data: checked by argparse against
their ranges (one type, metrics.cli.NumberIn, the ranges declared once), shown in the help; and
python -m metrics compute --out given a folder writes inside it.

The expected messages and ranges are written here by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import build_parser as bench_parser
from bench.cli import main as bench_main
from bench.data.prepare.pipeline import PrepareOptions
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from imac.cli import build_parser as imac_parser
from metrics.cli import NumberIn, result_file
from metrics.cli import build_parser as metrics_parser
from metrics.cli import main as metrics_main
from metrics.fgd_training import train_fgd_autoencoder
from metrics.options import OptionsError
from metrics.skeleton_ae import AutoencoderConfig, load_autoencoder
from tests.test_cli import _parsers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "corpus"
    generate_toy_corpus(out, ToyCorpusConfig(identities=1, clips=2, test_clips=1, size=64), progress=False)
    return out


# -- refused by argparse, in one line, before any work ---------------------------------------------


@pytest.mark.parametrize("argv, said", [
    (["train-fgd-ae", "--steps", "0"], "argument --steps: 0 is less than 1"),
    (["train-fgd-ae", "--steps", "-5"], "argument --steps: -5 is less than 1"),
    (["train-fgd-ae", "--steps", "1e3"], "argument --steps: '1e3' is not an integer"),
    (["train-fgd-ae", "--latent", "-4"], "argument --latent: -4 is outside 1..4096"),
    (["train-fgd-ae", "--latent", "0"], "argument --latent: 0 is outside 1..4096"),
    (["train-fgd-ae", "--latent", "4097"], "argument --latent: 4097 is outside 1..4096"),
    (["train-fgd-ae", "--seed", "-1"], "argument --seed: -1 is outside 0..9223372036854775807"),
    (["sanity", "--steps", "0"], "argument --steps: 0 is less than 1"),
])
def test_metrics_training_numbers_are_checked_by_argparse(argv, said, corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        metrics_main([*argv, "--data", str(corpus), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and said in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, said", [
    (["--processes", "0"], "argument --processes: 0 is less than 1"),
    (["--i3d-seed", "-1"], "argument --i3d-seed: -1 is outside 0..9223372036854775807"),
])
def test_metrics_compute_numbers_are_checked_by_argparse(argv, said, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        metrics_main(["compute", "--fake", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and said in err


def test_the_compute_options_file_takes_the_same_seed_range(tmp_path, capsys):
    options = tmp_path / "options.yaml"
    options.write_text("i3d_seed: -3\n")
    assert metrics_main(["compute", "--fake", str(tmp_path), "--options", str(options)]) == 2
    err = capsys.readouterr().err
    assert "i3d_seed: must be >= 0 and <= 9223372036854775807, got -3" in err


@pytest.mark.parametrize("argv, said", [
    (["--fps", "inf"], "argument --fps: 'inf' is not a finite number"),
    (["--fps", "0"], "argument --fps: must be > 0 and <= 1000, got 0"),
    (["--size", "8"], "argument --size: 8 is outside 16..4096"),
    (["--test-fraction", "1"], "argument --test-fraction: must be >= 0 and < 1, got 1"),
    (["--workers", "0"], "argument --workers: 0 is less than 1"),
    (["--face-confidence", "nan"], "argument --face-confidence: 'nan' is not a finite number"),
    (["--min-face-size", "0"], "argument --min-face-size: must be > 0 and <= 1, got 0"),
    (["--samples-per-second", "0"], "argument --samples-per-second: must be > 0, got 0"),
    (["--scene-threshold", "300"], "argument --scene-threshold: 300 is outside 0 to 255"),
    (["--crop-margin", "-0.5"], "argument --crop-margin: -0.5 is less than 0"),
    (["--seed", "-1"], "argument --seed: -1 is less than 0"),
])
def test_prepare_numbers_are_checked_by_argparse(argv, said, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_main(["data", "prepare", str(tmp_path), "--identity", "grace", "--out", str(tmp_path / "ds"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and said in err
    assert not (tmp_path / "ds").exists()


def test_the_benchmark_seed_is_checked_by_argparse(tmp_path, capsys):
    for seed in ("-1", str(2 ** 32)):       # IMAC trains with it: numpy's seeds are 32-bit
        with pytest.raises(SystemExit) as exit_:
            bench_main(["run", "--methods", "s2g", "--out", str(tmp_path / "run"), "--seed", seed])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"argument --seed: {seed} is outside 0..4294967295" in err
        assert not (tmp_path / "run").exists()


def test_speakers_fraction_is_checked_by_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_main(["data", "speakers", str(tmp_path), "--out", str(tmp_path / "s.csv"),
                    "--min-speaking-fraction", "2"])
    assert exit_.value.code == 2 and "argument --min-speaking-fraction: 2 is outside 0 to 1" in capsys.readouterr().err


def test_the_bounds_themselves_are_accepted():
    args = metrics_parser().parse_args(["train-fgd-ae", "--data", "d", "--out", "o", "--steps", "1", "--latent", "4096",
                                        "--seed", str(2 ** 63 - 1)])
    assert (args.steps, args.latent, args.seed) == (1, 4096, 2 ** 63 - 1)
    args = metrics_parser().parse_args(["train-fgd-ae", "--data", "d", "--out", "o", "--latent", "1"])
    assert args.latent == 1


def test_prepare_options_from_a_file_take_the_declared_ranges_too():
    # test_fraction 1 was refused only after every source had been measured (split_by_source)
    with pytest.raises(OptionsError, match=r"^prepare: test_fraction: must be >= 0 and < 1, got 1.0"):
        PrepareOptions.from_values({"identity": "grace", "test_fraction": 1.0})
    with pytest.raises(OptionsError, match=r"^prepare: fps: must be a finite number, got inf"):
        PrepareOptions(identity="grace", fps=float("inf"))


# -- the help states them --------------------------------------------------------------------------


@pytest.mark.parametrize("build", [bench_parser, imac_parser, metrics_parser])
def test_every_numeric_option_is_ranged_and_its_help_says_the_range(build):
    for parser in _parsers(build()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.type in (int, float) and parser.prog.startswith(("python -m metrics", "imac-bench data")):
                pytest.fail(f"{parser.prog} {action.option_strings}: a number without a range")
            if isinstance(action.type, NumberIn) and action.type.range_text:
                assert action.type.range_text in formatter._get_help_string(action), (parser.prog, action.dest)


def test_train_fgd_ae_help_gives_ranges_and_defaults():
    train = next(p for p in _parsers(metrics_parser()) if p.prog.endswith("train-fgd-ae"))
    text = " ".join(train.format_help().split())
    assert "training steps (>= 1; default: 1000)" in text
    assert "(1..4096; default: 64)" in text and "random seed (0..9223372036854775807; default: 0)" in text


# -- the library refuses them too, before reading any data ------------------------------------------


@pytest.mark.parametrize("kwargs, said", [({"steps": 0}, "steps must be an integer >= 1, got 0"),
                                          ({"latent": 0}, "latent must be an integer in 1..4096, got 0"),
                                          ({"latent": -4}, "latent must be an integer in 1..4096, got -4"),
                                          ({"seed": -1}, "seed must be an integer in 0..")])
def test_train_fgd_autoencoder_refuses_before_reading_the_data(kwargs, said, tmp_path):
    with pytest.raises(ValueError, match="^" + said):
        train_fgd_autoencoder(tmp_path / "no such dataset", tmp_path / "ae", **kwargs)
    assert not (tmp_path / "ae").exists()


def test_autoencoder_config_refuses_a_size_its_loader_would_refuse():
    with pytest.raises(ValueError, match="latent must be an integer in 1..4096, got 0"):
        AutoencoderConfig(points=5, window=8, latent=0)


def test_the_smallest_latent_gives_a_checkpoint_that_loads(corpus, tmp_path, capsys):
    out = tmp_path / "ae"
    assert metrics_main(["train-fgd-ae", "--data", str(corpus), "--out", str(out), "--steps", "1", "--latent", "1",
                         "--keypoints", "dataset", "--cache", "none", "--quiet"]) == 0
    model, meta = load_autoencoder(out)
    assert model.config.latent == 1 and meta["model"]["latent"] == 1


def test_train_fgd_ae_refuses_an_output_that_is_a_file_before_training(corpus, tmp_path, capsys):
    (tmp_path / "ae").write_text("")
    assert metrics_main(["train-fgd-ae", "--data", str(corpus), "--out", str(tmp_path / "ae"), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"python -m metrics train-fgd-ae: error: {tmp_path / 'ae' / 'config.json'}: "
                                       f"{tmp_path / 'ae'} is a file, so the autoencoder folder cannot be written "
                                       "there\n")


# -- compute --out: a folder gets the files inside --------------------------------------------------


@pytest.mark.parametrize("text, expected", [("run/x.json", "run/x.json"), ("run/x", "run/x"),
                                            ("new/", "new/evaluation.json"), ("existing", "existing/evaluation.json")])
def test_result_file_of_out(text, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    assert result_file(text) == Path(expected)


def test_compute_out_given_a_folder_writes_inside_it(corpus, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    assert metrics_main(["compute", "--real", str(corpus), "--fake", str(corpus), "--metrics", "bas", "--split", "all",
                         "--out", str(out), "--cache", "none", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]           # no results.json beside it
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.csv", "evaluation.json"]
    assert "bas" in json.loads((out / "evaluation.json").read_text())["scores"]["all"]
    assert f"written {out / 'evaluation.json'} and {out / 'evaluation.csv'}" in capsys.readouterr().out
