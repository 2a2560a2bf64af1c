"""The three command lines (imac-bench, imac, python -m metrics): one style, typed options sections."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import metrics.cli
from bench.cli import build_parser as bench_parser
from bench.cli import main as bench_main
from bench.data.prepare.pipeline import PrepareOptions
from imac.cli import build_parser as imac_parser
from imac.cli import main as imac_main
from metrics.cli import ComputeOptions, load_compute_options, package_version
from metrics.cli import build_parser as metrics_parser
from metrics.cli import main as metrics_main
from metrics.options import OptionsError
from metrics.protocol import get_protocol

DATA_COMMANDS = ("toy", "validate", "prepare", "preview", "speakers")


# -- options sections -------------------------------------------------------------------------------


def test_prepare_options_name_the_section_and_the_key():
    assert PrepareOptions.from_values({"identity": "grace", "size": 64, "test_sources": ["a"]}) == \
        PrepareOptions(identity="grace", size=64, test_sources=("a",))
    with pytest.raises(OptionsError, match=r"^prepare: unknown key\(s\) sise "):
        PrepareOptions.from_values({"identity": "grace", "sise": 64})
    with pytest.raises(OptionsError, match=r"^prepare: size: expected an integer, got 'big'"):
        PrepareOptions.from_values({"identity": "grace", "size": "big"})
    with pytest.raises(OptionsError, match=r"^prepare: size: must be >= 16 and <= 4096, got 7"):
        PrepareOptions.from_values({"identity": "grace", "size": 7})
    with pytest.raises(OptionsError, match=r"^prepare: size: must be even, got 17"):
        PrepareOptions.from_values({"identity": "grace", "size": 17})
    # a direct construction checks the same declared ranges as the loader
    with pytest.raises(OptionsError, match=r"^prepare: min_frontal_fraction: must be >= 0 and <= 1, got 2.0"):
        PrepareOptions(identity="grace", min_frontal_fraction=2.0)
    with pytest.raises(OptionsError, match=r"^prepare: face_confidence: must be a finite number, got nan"):
        PrepareOptions(identity="grace", face_confidence=float("nan"))


def test_prepare_command_line_refuses_a_bad_range_in_one_line(tmp_path, capsys):
    code = bench_main(["data", "prepare", str(tmp_path), "--identity", "grace", "--out", str(tmp_path / "ds"),
                       "--size", "17"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "imac-bench data prepare: error: prepare: size: must be even" in err


def test_metrics_compute_options_name_the_section_and_the_key():
    assert load_compute_options({"metrics": ["bas"], "i3d_seed": 3}) == ComputeOptions(metrics=["bas"], i3d_seed=3)
    with pytest.raises(OptionsError, match=r"^metrics compute: unknown key\(s\) metrcs "):
        load_compute_options({"metrcs": ["fgd"]})
    with pytest.raises(OptionsError, match=r"^metrics compute: i3d_seed: expected an integer, got 'x'"):
        load_compute_options({"i3d_seed": "x"})
    with pytest.raises(OptionsError, match=r"^metrics compute: protocol: unknown preset .nope."):
        load_compute_options({"protocol": "nope"})


@pytest.mark.parametrize("text, named", [("splt: test\n", "unknown key(s) splt"),
                                         ("skip_bad: 3\n", "skip_bad: expected true/false"),
                                         ("metrics: fgd, bas\n", "metrics: expected a list, got 'fgd, bas' (in YAML "
                                          "a list is [fgd, bas])")])
def test_metrics_compute_options_file_is_checked(tmp_path, capsys, text, named):
    options = tmp_path / "compute.yaml"
    options.write_text(text)
    assert metrics_main(["compute", "--fake", str(tmp_path), "--options", str(options)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"metrics compute ({options}): {named}" in err


def test_metrics_compute_flags_override_the_options_file(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_evaluate(real, fake, **kwargs):
        seen.update(kwargs, real=real, fake=fake)
        return {}

    monkeypatch.setattr(metrics.cli, "evaluate", fake_evaluate)
    monkeypatch.setattr(metrics.cli, "format_table", lambda result: "table")
    options = tmp_path / "compute.yaml"
    options.write_text("metrics: [bas]\ni3d_seed: 5\nsplit: all\ncache: none\n")
    code = metrics_main(["compute", "--fake", str(tmp_path), "--options", str(options), "--i3d-seed", "7",
                         "--quiet"])
    assert code == 0 and capsys.readouterr().out.strip() == "table"
    assert seen["metrics"] == ["bas"] and seen["i3d_seed"] == 7      # the file, then the flag
    assert seen["split"] is None and seen["cache_dir"] is None       # all -> None, "none" -> no cache
    assert seen["protocol"] == get_protocol("imac-bench")


# -- one style --------------------------------------------------------------------------------------


@pytest.mark.parametrize("main, prog", [(bench_main, "imac-bench"), (imac_main, "imac"),
                                        (metrics_main, "python -m metrics")])
def test_version(main, prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {package_version('0.1.0')}"


def test_python_m_metrics_version():
    done = subprocess.run([sys.executable, "-m", "metrics", "--version"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("python -m metrics ")


def test_bench_help_lists_the_data_subcommands(capsys):
    with pytest.raises(SystemExit):
        bench_main(["--help"])
    assert "datasets: toy, validate, prepare, preview, speakers" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_main(["data", "--help"])
    out = capsys.readouterr().out
    assert all(f"\n    {name} " in out for name in DATA_COMMANDS)


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


@pytest.mark.parametrize("build", [bench_parser, imac_parser, metrics_parser])
def test_help_shows_every_default_without_markup_or_repeats(build):
    for parser in _parsers(build()):
        text = parser.format_help()
        assert "``" not in text, parser.prog
        if parser.description:
            assert text.count(parser.description.splitlines()[0]) == 1, parser.prog
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.required or isinstance(
                    action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            assert "default" in formatter._get_help_string(action), (parser.prog, action.option_strings)


@pytest.mark.parametrize("build", [bench_parser, imac_parser, metrics_parser])
def test_a_flag_is_off_unless_given_also_a_no_flag(build):
    """--no-jump-cuts read "(default: on)", its dest's True: a flag's default is whether it is given."""
    for parser in _parsers(build()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) and action.help:
                assert formatter._get_help_string(action).endswith("(default: off)") or \
                    "default" in action.help.lower(), (parser.prog, action.option_strings)


@pytest.mark.parametrize("main, argv", [(bench_main, ["run", "--bogus"]), (imac_main, ["sample", "--seed", "x"]),
                                        (metrics_main, ["compute"])])
def test_a_bad_option_is_one_line(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "error:" in err


@pytest.mark.parametrize("main, argv, named", [
    (bench_main, ["run", "--methods", "static", "--device", "cuda:7", "--out", "{tmp}/r"], "device 'cuda:7'"),
    (bench_main, ["run", "--methods", "static", "--threads", "-1", "--out", "{tmp}/r"], "--threads -1"),
    (metrics_main, ["compute", "--real", "{tmp}", "--fake", "{tmp}", "--device", "cuda:7"], "device 'cuda:7'"),
    (metrics_main, ["sanity", "--data", "{tmp}", "--out", "{tmp}/s", "--device", "cuda:7"], "device 'cuda:7'"),
    (imac_main, ["sample", "--model", "{tmp}", "--reference", "{tmp}/a.png", "--audio", "{tmp}/a.wav", "--out",
                 "{tmp}/r.mp4", "--device", "cuda"], "device 'cuda'"),
])
def test_a_device_or_thread_count_that_cannot_be_used_is_named_before_any_work(main, argv, named, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)       # as on this project's CI machines
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv", [["train", "stage1", "--config", "tiny", "stage1.nope=1"],
                                  ["train", "stage1", "stage1.nope=1", "--config", "tiny", "--quiet"]])
def test_imac_train_refuses_an_unknown_override_key(argv, capsys):
    assert imac_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "imac train: error:" in err and "stage1: unknown key(s) nope" in err


def test_imac_train_vae_refuses_a_frame_size_the_tiny_vae_does_not_take(tmp_path, capsys):
    # 96 px cannot be halved to the tiny UNet's 16 x 16 latents: refused in one line before any frame is read
    assert imac_main(["train", "vae", "--config", "tiny", f"video.vae={tmp_path / 'vae'}", "data.resolution=96"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.resolution: the tiny VAE takes frames of 32, 64, 128 px" in err
    assert "not 96 px" in err and not (tmp_path / "vae").exists()


def test_imac_overrides_belong_to_train_only(capsys):
    with pytest.raises(SystemExit) as exit_:
        imac_main(["validate", "somewhere", "a.b=1"])
    assert exit_.value.code == 2 and "unrecognized arguments: a.b=1" in capsys.readouterr().err


def test_a_list_of_problems_is_one_line_without_a_stray_separator():
    from metrics.cli import _one_line

    error = ValueError("data/toy: 2 problem(s) in the dataset:\n  a/a_1: video: missing\n  b/b_1: audio: empty\n")
    assert _one_line(error) == "data/toy: 2 problem(s) in the dataset: a/a_1: video: missing; b/b_1: audio: empty"
    assert _one_line(ValueError("first\nsecond;")) == "first; second;" and _one_line(ValueError("")) == "ValueError"


def test_metrics_compute_refuses_a_result_path_it_cannot_write_before_any_work(tmp_path, capsys):
    (tmp_path / "result.json").mkdir()
    # --real and --fake are not there: the output is checked first, so the error is about it
    assert metrics_main(["compute", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                         "--out", str(tmp_path / "result"), "--cache", "none"]) == 2
    assert capsys.readouterr().err == (f"python -m metrics compute: error: {tmp_path / 'result.json'} is a folder; "
                                       "give the path of the result file to write\n")


@pytest.mark.parametrize("cache, said", [("afile", "cache folder {tmp}/afile: a file, not a folder"),
                                         ("afile/sub", "cache folder {tmp}/afile/sub: {tmp}/afile is a file, so it "
                                                       "cannot be made")])
def test_a_cache_folder_that_is_a_file_is_named_before_any_work(tmp_path, capsys, cache, said):
    (tmp_path / "afile").write_text("")
    # --real and --fake do not exist: the cache is checked first, so the error is about it, not a clip
    assert metrics_main(["compute", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                         "--cache", str(tmp_path / cache)]) == 2
    assert capsys.readouterr().err == f"python -m metrics compute: error: {said.format(tmp=tmp_path)}\n"


@pytest.mark.parametrize("argv, said", [(["--i3d", "{tmp}/none.pt"], "--i3d {tmp}/none.pt: no such file or folder"),
                                        (["--weights", "lpips={tmp}/x"], "--weights lpips {tmp}/x: no such file or folder")])
def test_a_weight_path_that_does_not_exist_is_named_even_when_its_metric_is_not_selected(tmp_path, capsys, argv, said):
    argv = [part.format(tmp=tmp_path) for part in argv]
    assert metrics_main(["compute", "--real", str(tmp_path), "--fake", str(tmp_path), "--metrics", "bas",
                         "--cache", "none", *argv]) == 2
    assert capsys.readouterr().err == f"python -m metrics compute: error: {said.format(tmp=tmp_path)}\n"


@pytest.mark.parametrize("given, said", [
    ("fvd={tmp}/i3d.pt", "weights: 'fvd' (give it with --i3d (bench config: i3d)): no metric reads weights under that "
                         "name; the names are arcface, inception, lpips, syncnet (e.g. --weights syncnet=syncnet_v2.model)"),
    ("incepton={tmp}/i3d.pt,sycnet={tmp}/i3d.pt", "weights: 'incepton', 'sycnet': no metric reads weights under those names"),
])
def test_a_weight_file_under_a_name_no_metric_reads_is_refused_not_ignored(tmp_path, capsys, given, said):
    """Before, --weights fvd=FILE (or a typo) was ignored: the run went on with the stand-ins (FVD*, FID*)."""
    (tmp_path / "i3d.pt").write_bytes(b"x")
    assert metrics_main(["compute", "--real", str(tmp_path), "--fake", str(tmp_path), "--metrics", "fvd,fid",
                         "--cache", "none", "--weights", given.format(tmp=tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"python -m metrics compute: error: {said}")


def test_a_closed_pipe_on_stdout_ends_the_command_quietly(capfd):
    # `imac-bench data prepare ... | head` printed "error: [Errno 32] Broken pipe" once head had its lines
    import os

    def handler(args):
        raise BrokenPipeError(32, "Broken pipe")

    parser = argparse.ArgumentParser(prog="tool")
    parser.set_defaults(handler=handler)
    saved = os.dup(1)
    try:
        assert metrics.cli.run_command(parser, []) == 141
    finally:
        os.dup2(saved, 1)          # run_command pointed stdout at /dev/null
        os.close(saved)
    assert "error" not in capfd.readouterr().err


def test_train_fgd_ae_never_replaces_an_autoencoder_without_overwrite(tmp_path, monkeypatch, capsys):
    # it silently replaced a 1000-step autoencoder with a 5-step one: every FGD after it changed scale
    from safetensors.torch import save_file
    import torch

    out = tmp_path / "fgd_ae"
    out.mkdir()
    (out / "config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, str(out / "model.safetensors"))
    import hashlib
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()[:12]
    trained = []
    monkeypatch.setattr(metrics.cli, "train_fgd_autoencoder",
                        lambda *args, **kwargs: trained.append(args) or ("new", {"training_windows": 1, "first_l1": 1.0,
                                                                                 "final_l1": 0.5}))
    argv = ["train-fgd-ae", "--data", str(tmp_path), "--out", str(out), "--quiet"]
    assert metrics_main(argv) == 2
    assert capsys.readouterr().err == (f"python -m metrics train-fgd-ae: error: {out}: holds a skeleton autoencoder "
                                       f"(checkpoint {digest}); FGD and Diversity compare only under one checkpoint: "
                                       "give another --out, or --overwrite to replace it\n")
    assert not trained
    assert metrics_main(argv + ["--overwrite"]) == 0 and len(trained) == 1


def test_compute_options_help_lists_the_keys_its_loader_takes():
    """The help said "the setting flags' names", yet `processes: 2` (a flag) is refused by the loader: the
    keys it lists are each taken by load_compute_options, and processes is not among them."""
    import re

    from metrics.cli import build_parser, load_compute_options
    from metrics.options import OptionsError

    parser = build_parser()
    compute = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("compute"))
    text = " ".join(next(a.help for a in compute._actions if "--options" in a.option_strings).split())
    listed = re.search(r"e\.g\. fgd_ae: DIR: ([a-z0-9_, ]+);", text).group(1).split(", ")
    assert "fgd_ae" in listed and "processes" not in listed
    with pytest.raises(OptionsError, match="unknown key"):
        load_compute_options({"processes": 2})
    for key in listed:
        with pytest.raises(OptionsError) as error:
            load_compute_options({key: object()})           # a wrong value: refused for its value, not its key
        assert "unknown key" not in str(error.value), key


def test_an_unknown_argument_after_a_subcommand_points_to_its_help(capsys):
    """Before: "imac-bench: error: unrecognized arguments: --bogus (see imac-bench --help)", the top-level
    help, which does not list run's options."""
    with pytest.raises(SystemExit) as exit_:
        bench_main(["run", "--bogus"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == ("imac-bench run: error: unrecognized arguments: --bogus "
                                               "(see imac-bench run --help)")


def test_the_python_api_refuses_a_weight_name_no_metric_reads_too():
    from metrics.evaluate import Evaluator
    from metrics.protocol import Protocol

    with pytest.raises(ValueError, match=r"weights: 'syncnet_v2': no metric reads weights under that name; the "
                                         r"names are arcface, inception, lpips, syncnet"):
        Evaluator.load(("bas",), Protocol(), weights={"syncnet_v2": "x"})
