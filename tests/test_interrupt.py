"""Ctrl-C in a command: one line on stderr (saying whether a rerun resumes) and exit status 130, no traceback."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

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
    (imac.cli.main, (imac.cli, "load_config"), ["train", "stage1", "--config", "tiny"], "imac train: interrupted; "
     "rerun the same command to resume from the last checkpoint (every train.save_every steps; the steps since it are "
     "trained again)"),
    (imac.cli.main, (imac.cli, "load_config"), ["train", "vae", "--config", "tiny"], "imac train: interrupted; the "
     "tiny VAE is written only when it finishes: the rerun trains it from the start"),
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


# -- Ctrl-C while a command's modules load (torch, scipy, diffusers: seconds) ------------------------

ROOT = Path(__file__).resolve().parent.parent


class _InterruptOnImport:
    """A meta path finder that raises ``error()`` when ``name`` is imported (Ctrl-C mid-import)."""

    def __init__(self, name: str, error=KeyboardInterrupt) -> None:
        self.name, self.error = name, error

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise self.error()
        return None


def _extension_interrupted() -> ImportError:
    """What a pybind11 extension (onnxruntime) raises when Ctrl-C lands in its initialisation."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        error = ImportError("initialization failed")
        error.__cause__ = interrupt
        return error


@pytest.mark.parametrize("entry, module, line", [
    ("imac.__main__", "imac.cli", "imac: interrupted"),
    ("bench.__main__", "bench.cli", "imac-bench: interrupted"),
    ("metrics.__main__", "metrics.cli", "python -m metrics: interrupted"),
])
def test_ctrl_c_while_the_command_line_module_loads_is_one_line_and_status_130(entry, module, line, monkeypatch,
                                                                               capsys):
    main = importlib.import_module(entry).main
    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(sys, "meta_path", [_InterruptOnImport(module), *sys.meta_path])
    assert _call(main, ["--version"]) == 130
    assert capsys.readouterr().err == line + "\n"


def test_an_extension_interrupted_in_its_initialisation_is_an_interruption_and_other_import_errors_are_not(
        monkeypatch, capsys):
    from imac.__main__ import main

    monkeypatch.delitem(sys.modules, "imac.cli")
    monkeypatch.setattr(sys, "meta_path", [_InterruptOnImport("imac.cli", _extension_interrupted), *sys.meta_path])
    assert _call(main, ["--version"]) == 130
    assert capsys.readouterr().err == "imac: interrupted\n"
    monkeypatch.setattr(sys, "meta_path", [_InterruptOnImport("imac.cli", lambda: ImportError("no onnxruntime")),
                                           *sys.meta_path[1:]])
    with pytest.raises(ImportError, match="no onnxruntime"):
        main(["--version"])


def test_the_console_scripts_are_the_guarded_entry_points():
    tomllib = pytest.importorskip("tomllib")      # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"imac-bench": "bench.__main__:main", "imac": "imac.__main__:main"}


def test_the_entry_points_load_nothing_slow_before_their_guard():
    code = ("import sys; import imac.__main__, bench.__main__, metrics.__main__; "
            "print(sorted(m for m in ('numpy', 'scipy', 'torch', 'imac.cli', 'bench.cli', 'metrics.cli') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_a_real_sigint_during_the_import_ends_the_process_with_one_line_and_130():
    # the process sends itself SIGINT as imac.cli starts loading, then runs `imac --version`. Python's own
    # handler is put back first: a process started in the background of a non-interactive shell (CI
    # runners, `cmd &`) inherits SIGINT ignored, and then no interrupt arrives at all.
    code = textwrap.dedent('''
        import os, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        class Finder:
            def find_spec(self, fullname, path=None, target=None):
                if fullname == "imac.cli":
                    os.kill(os.getpid(), signal.SIGINT)
                return None
        sys.meta_path.insert(0, Finder())
        from imac.__main__ import main
        sys.exit(main(["--version"]))
    ''')
    ended = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (ended.returncode, ended.stderr, ended.stdout) == (130, "imac: interrupted\n", "")


@pytest.mark.parametrize("interrupted", [True, False])
def test_an_interrupt_a_library_swallows_while_loading_is_still_an_interruption(tmp_path, interrupted):
    """numpy interrupted in its initialisation swallows the KeyboardInterrupt and fails later with an
    AttributeError (seen in a user's try): after a recorded SIGINT any error of the import is the
    interrupt; without one, the error is a real one and keeps its traceback."""
    (tmp_path / "swallowing_cli.py").write_text(textwrap.dedent(f'''
        import os, signal
        if {interrupted}:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(100000))          # the handler runs between bytecodes
            except KeyboardInterrupt:
                pass
        raise AttributeError("module 'numpy._core' has no attribute '_multiarray_umath'")
    '''))
    code = textwrap.dedent(f'''
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.path.insert(0, {str(tmp_path)!r})
        from metrics.entry_point import run_entry_point
        sys.exit(run_entry_point("swallowing_cli", "prog", []))
    ''')
    ended = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if interrupted:
        assert (ended.returncode, ended.stderr) == (130, "prog: interrupted\n")
    else:
        assert ended.returncode == 1 and ended.stderr.rstrip().endswith("_multiarray_umath'")
