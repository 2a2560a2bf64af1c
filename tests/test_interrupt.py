"""Ctrl-C in a command: one line on stderr (saying whether a rerun resumes) and exit status 130, no traceback."""

from __future__ import annotations

import pytest

import bench.cli
import bench.runner
import imac.cli
import metrics.cli
from userstudy import cli as userstudy_cli

RESUME = "interrupted; finished work is kept, rerun the same command to resume"


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _call(main, *args, **kwargs):
    try:
        return main(*args, **kwargs)
    except KeyboardInterrupt:     # uncaught, it would stop the whole test session
        pytest.fail("the KeyboardInterrupt escaped main")


@pytest.mark.parametrize("main, target, argv, line", [
    (bench.cli.main, (bench.runner, "run_benchmark"), ["run", "--methods", "static", "--out", "{tmp}/run"],
     f"imac-bench run: {RESUME}"),
    (bench.cli.main, (bench.cli, "generate_toy_corpus"), ["data", "toy", "--out", "{tmp}/toy"],
     f"imac-bench data toy: {RESUME}"),
    (bench.cli.main, (bench.cli, "prepare_command"), ["data", "prepare", "{tmp}", "--identity", "a", "--out", "{tmp}/p"],
     f"imac-bench data prepare: {RESUME}"),
    (bench.cli.main, (bench.cli, "save_contact_sheet"), ["data", "preview", "{tmp}", "--out", "{tmp}/sheet.png"],
     "imac-bench data preview: interrupted"),
    (metrics.cli.main, (metrics.cli, "get_protocol"), ["protocol"], "python -m metrics protocol: interrupted"),
    (metrics.cli.main, (metrics.cli, "evaluate"), ["compute", "--real", "{tmp}", "--fake", "{tmp}", "--cache", "{tmp}/c"],
     f"python -m metrics compute: {RESUME}"),     # the features computed so far are in the cache
    (metrics.cli.main, (metrics.cli, "evaluate"), ["compute", "--real", "{tmp}", "--fake", "{tmp}", "--cache", "none"],
     "python -m metrics compute: interrupted"),
    (imac.cli.main, (imac.cli, "load_config"), ["train", "stage1", "--config", "tiny"], f"imac train: {RESUME}"),
    (imac.cli.main, (imac.cli, "load_config"), ["train", "vae", "--config", "tiny"], "imac train: interrupted"),
    (imac.cli.main, (imac.cli, "validate_dataset"), ["validate", "{tmp}"], "imac validate: interrupted"),
])
def test_ctrl_c_is_one_line_and_status_130(main, target, argv, line, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(*target, _interrupt)
    assert _call(main, [a.replace("{tmp}", str(tmp_path)) for a in argv]) == 130
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert "Traceback" not in captured.out


def test_userstudy_main_is_interruptible(capsys):
    calls = []

    @userstudy_cli.interruptible
    def main(argv=None, prog=None):
        calls.append((argv, prog))
        raise KeyboardInterrupt

    assert _call(main, ["analyze"], prog="p") == 130 and calls == [(["analyze"], "p")]
    assert capsys.readouterr().err == "interrupted\n"
    assert userstudy_cli.interruptible(lambda: 3)() == 3       # a finished main keeps its status


def test_python_m_userstudy_simulate_ends_on_ctrl_c_with_one_line(monkeypatch, capsys):
    import userstudy.__main__ as userstudy_main
    import userstudy.simulate as simulate

    monkeypatch.setattr(simulate, "simulate", _interrupt)
    assert userstudy_main.main(["simulate", "--methods", "a,b,c", "--power", "10"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
