"""``python -m userstudy <command>``: the same commands as ``python -m userstudy.<module>``, their help,
the version, and logging."""

from __future__ import annotations

import argparse
import http.client
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from userstudy_data.media import tagged_video
from userstudy_data.helpers import make_study

from userstudy import analyze, cli
from userstudy.__main__ import build_parser as top_parser
from userstudy.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def command_parser(name: str) -> argparse.ArgumentParser:
    return importlib.import_module(cli.COMMANDS[name].module).build_parser(f"python -m userstudy {name}")


def test_version():
    version = run("userstudy", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"python -m userstudy {cli.version()}"
    assert cli.version() != ""


def plain(text: str) -> str:
    return " ".join(text.split())


def test_top_level_help_lists_every_command_once():
    text = top_parser().format_help()
    for name, spec in cli.COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\b", text, re.MULTILINE), name
        assert plain(text).count(spec.summary) == 1
    with pytest.raises(SystemExit) as exit_code:
        main(["no-such-command"])
    assert exit_code.value.code == 2


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_option_shows_its_default_and_help_is_plain_text(name):
    parser = command_parser(name)
    text = parser.format_help()
    assert parser.prog == f"python -m userstudy {name}"
    assert "``" not in text
    assert plain(text).count(cli.COMMANDS[name].summary) == 1  # the description, once
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS:
            continue
        assert "(default" in formatter._get_help_string(action), (name, action.option_strings)


def test_package_and_module_routes_write_the_same_files(tmp_path):
    csv = tmp_path / "r.csv"
    simulated = run("userstudy", "simulate", "--methods", "a,b,c", "--participants", "4", "--trials", "3",
                    "--out", str(csv), "--seed", "2")
    assert simulated.returncode == 0, simulated.stderr
    assert "written to" in simulated.stderr  # progress is logged, on stderr
    analysed = run("userstudy", "analyze", str(csv), "--out", str(tmp_path / "package"))
    assert analysed.returncode == 0, analysed.stderr
    assert "4 participants, 3 trials, 48 blocks used" in analysed.stdout
    assert analyze.main([str(csv), "--out", str(tmp_path / "module")]) == 0  # python -m userstudy.analyze
    for path in (tmp_path / "package").iterdir():
        if path.name != "report.md":  # the report names the time of the analysis
            assert path.read_bytes() == (tmp_path / "module" / path.name).read_bytes(), path.name
    assert main(["analyze", str(tmp_path / "missing.csv")]) == 2


def test_simulate_prints_power_to_stdout(capsys):
    assert main(["simulate", "--methods", "a,b", "--participants", "3", "--trials", "2", "--power", "3"]) == 0
    table = capsys.readouterr().out
    assert "friedman" in table and "kruskal_wallis" in table


@pytest.mark.parametrize("argv, named", [
    (["simulate", "--methods", "a,b", "--power", "0"], "--power: 0 is outside 1..1000000"),
    (["simulate", "--methods", "a,b", "--power", "2", "--participants", "100000000"], "--participants"),
    (["simulate", "--methods", "a,b", "--power", "2", "--effect", "nan"], "finite"),
    (["simulate", "--methods", "a,b", "--power", "2", "--effect", "a=nan,b=inf"], "finite"),
    (["simulate", "--methods", "a,b", "--power", "2", "--trial-sd", "-1"], "--trial-sd"),
    (["serve", "--study", "s", "--port", "70000"], "--port: 70000 is outside 0..65535"),
    (["make-study", "--out", "st", "--method", "a=x", "--method", "b=y", "--constant-bitrate", "0"],
     "--constant-bitrate: 0 is outside"),          # was refused only after the study was written
])
def test_numbers_out_of_range_are_one_line_errors(argv, named, capsys):
    """A zero power run divided by zero, nan effects ranked one method first every time, a port past
    65535 raised OverflowError: each is now refused by the parser, naming the option."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and named in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err      # the error alone: argparse's own printed the usage first


@pytest.mark.parametrize("argv", [[], ["no-such-command"], ["analyze"], ["analyze", "r.csv", "--no-such-option"],
                                  ["make-study", "--out", "s", "--method", "imac"]])
def test_bad_options_are_one_line_naming_the_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    prog = " ".join(["python -m userstudy", *argv[:1]]) if argv[:1] != ["no-such-command"] else "python -m userstudy"
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"{prog}: error: ")
    assert err.endswith(f"(see {prog} --help)\n")


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_help_names_the_function_the_command_calls(name):
    text = command_parser(name).format_help()
    named = re.findall(r"^Python: ([\w.]+)$", text, re.MULTILINE)
    assert named == [cli.COMMANDS[name].function]
    module, function = named[0].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), function))
    also = re.findall(r"^Python, with --run: ([\w.]+)$", text, re.MULTILINE)
    assert also == (["userstudy.make_study.make_study_from_run"] if name == "make-study" else [])
    for named in also:
        module, function = named.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function))


def test_make_study_through_the_package(tmp_path):
    for method in ("a", "b"):
        (tmp_path / method).mkdir()
        (tmp_path / method / "t1.mp4").write_bytes(tagged_video(method))
    assert main(["make-study", "--out", str(tmp_path / "study"), "--method", f"a={tmp_path / 'a'}",
                 "--method", f"b={tmp_path / 'b'}", "--seed", "s1"]) == 0
    assert (tmp_path / "study" / "study.json").exists()
    assert main(["make-study", "--out", str(tmp_path / "other"), "--method", f"a={tmp_path / 'a'}",
                 "--method", f"b={tmp_path / 'b'}", "--references", str(tmp_path / "none")]) == 2


def test_serve_and_help_do_not_load_pandas():
    code = ("import sys; import userstudy.__main__, userstudy.serve, userstudy.make_study; "
            "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib', 'numpy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_serve_through_the_package_prints_its_address_and_logs_requests(tmp_path):
    study_dir = make_study(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "userstudy", "serve", "--study", str(study_dir), "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        connection.request("GET", "/api/study")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert '"GET /api/study HTTP/1.1" 200' in stderr  # the request log, at INFO


def test_logging_goes_through_the_package_loggers(tmp_path, caplog):
    csv = tmp_path / "r.csv"
    with caplog.at_level("INFO", logger="userstudy"):
        assert main(["simulate", "--methods", "a,b", "--participants", "2", "--trials", "2", "--out", str(csv)]) == 0
    assert any(r.name == "userstudy.simulate" and "written to" in r.getMessage() for r in caplog.records)
    assert len(pd.read_csv(csv)) == 2 * 2 * 4 * 2
