"""Writers outside metrics.io.files' own helpers name their temporaries as it does, so what a killed
run leaves is removed by the next write: the bench's command methods (the reference image and the
video a command writes) and the trainer's checkpoints. External folders whose files would be one
clip on a case-insensitive file system are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from metrics.io import files

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.fixture
def clip(tmp_path):
    from metrics.dataset import ClipRecord
    from metrics.io.audio import write_wav
    from metrics.io.video import write_video
    write_video(tmp_path / "real" / "c0.mp4", np.full((5, 16, 16, 3), 90, np.uint8), 25)
    write_wav(tmp_path / "real" / "c0.wav", np.zeros(3200, np.float32), 16000)
    return ClipRecord("anna", "test", "c0", video=tmp_path / "real" / "c0.mp4", audio=tmp_path / "real" / "c0.wav",
                      fps=25.0, num_frames=5, width=16, height=16)


WRITE_VIDEO = (f"{sys.executable} -c \"import sys, numpy as np; from metrics.io.video import write_video; "
               "write_video(sys.argv[1], np.zeros((5, 16, 16, 3), np.uint8), 25); sys.exit(int(sys.argv[2]))\" "
               "{out} ")


@pytest.mark.parametrize("status", [0, 3])
def test_a_command_method_cleans_a_killed_runs_leftovers_and_leaves_none_itself(tmp_path, clip, status):
    from bench.methods.command import CommandMethod, CommandSpec
    from bench.methods.external import ExternalVideoError
    method = CommandMethod(CommandSpec("tool", WRITE_VIDEO + str(status), env={"PYTHONPATH": str(REPO)}))
    method.prepare(SimpleNamespace(work_dir=tmp_path / "work"))
    out = tmp_path / "run" / "tool" / "anna" / "c0.mp4"
    inputs = tmp_path / "work" / "inputs" / "anna"
    dead = _dead_pid()
    killed = {out.parent: f".c0.mp4.tmp-{files._HOST}-{dead}-0123abcd.mp4",
              inputs: f".c0.png.tmp-{files._HOST}-{dead}-0123abcd.png"}
    for folder, name in killed.items():
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"half written by a killed run")
    if status == 0:
        method.write(clip, out, seed=0)
        assert out.is_file() and (inputs / "c0.png").is_file()
    else:
        with pytest.raises(ExternalVideoError, match="exited with 3"):
            method.write(clip, out, seed=0)
        assert not out.exists()
    assert _hidden(out.parent) == [] and _hidden(inputs) == []


def test_an_external_folder_with_two_files_for_one_clip_is_refused_naming_them(tmp_path):
    from bench.methods.external import ExternalVideoError, GeneratedFolder, same_clip_files
    folder = tmp_path / "generated"
    names = ["anna/c0.mp4", "anna/C0.mp4", "Anna/c1.mp4", "anna/c1.mp4", "anna/c2.mp4", "anna/c2.wav", "bob/c0.mp4"]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    method = GeneratedFolder("other", folder)
    with pytest.raises(ExternalVideoError) as raised:
        method.check_inputs()                 # what prepare() checks first, before the run folder is made
    assert "'anna/C0.mp4' and 'anna/c0.mp4'" in str(raised.value)
    assert "'Anna/c1.mp4' and 'anna/c1.mp4'" in str(raised.value)
    assert "c2" not in str(raised.value) and "bob" not in str(raised.value)
    for name in ("anna/C0.mp4", "Anna/c1.mp4"):
        (folder / name).unlink()
    assert same_clip_files(folder) == []
    from types import SimpleNamespace
    clips = [SimpleNamespace(identity=i, clip_id=c) for i, c in (("anna", "c0"), ("anna", "c1"), ("anna", "c2"))]
    assert method.prepare(SimpleNamespace(test_clips=clips)) == {"folder": str(folder.resolve()),
                                                                 "not_test_clips": ["bob/c0"]}


def test_a_checkpoint_save_removes_a_killed_runs_temporary_folders(tmp_path):
    from accelerate import Accelerator
    from imac.training.trainer import _latest_checkpoint, _save_checkpoint
    folder = tmp_path / "checkpoints"
    dead = _dead_pid()
    leftovers = [f".step-4.tmp-{files._HOST}-{dead}-0123abcd", ".step-4.tmp", f".step-2.old-{files._HOST}-{dead}-0123abcd"]
    for name in leftovers:
        (folder / name).mkdir(parents=True)
        (folder / name / "random_states_0.pkl").write_bytes(b"half")
    (folder / "step-2").mkdir()
    (folder / "step-2" / "COMPLETE").write_text("2")
    live = folder / f".step-9.tmp-{files._HOST}-{os.getppid()}-0123abcd"     # another run, still alive
    live.mkdir()
    accelerator = Accelerator(cpu=True)
    _save_checkpoint(accelerator, folder, 4)
    assert _hidden(folder) == [live.name]
    assert sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) == ["step-2", "step-4"]
    assert _latest_checkpoint(folder) == (folder / "step-4", 4)
    assert (folder / "step-4" / "COMPLETE").read_text() == "4"
