"""A run folder over reruns (found by a trial of interrupted and resumed runs): a damaged video is made
again, a rerun given fewer methods says which rows it leaves out, run.json and generation.json that do not
read say what to do, and one process at a time works in an output folder (``imac-bench run --out``,
``imac-bench data prepare --out``, ``imac train``'s stage folder)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main as bench_main
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from bench.runner import test_clips as real_test_clips
from metrics.io.files import FolderBusyError, hold_folder

HOLDER = ("import sys, time\nfrom metrics.io.files import hold_folder\n"
          "lock = hold_folder(sys.argv[1], 'test holder')\nprint('held', flush=True)\ntime.sleep(120)\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=2, clips=3, test_clips=2, size=64), progress=False)
    return root


@pytest.fixture
def bas_config(tmp_path) -> Path:
    config = tmp_path / "bas.yaml"          # BAS alone: copies of the real videos pass every control check
    config.write_text("metrics: [bas]\nmethods: {}\n")
    return config


@pytest.fixture
def official(corpus, tmp_path) -> Path:
    """A folder of external videos: copies of the real test clips."""
    folder = tmp_path / "official"
    for clip in real_test_clips(corpus):
        (folder / clip.identity).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.video, folder / clip.identity / f"{clip.clip_id}.mp4")
    return folder


def run(corpus: Path, out: Path, *options: str) -> int:
    return bench_main(["run", "--data", str(corpus), "--out", str(out), "--quiet", "--no-plots", *options])


def rows(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["methods"]


@pytest.fixture
def holder():
    """Start another process holding a folder's lock (``hold_folder``); killed at the end of the test."""
    started = []

    def hold(folder: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                                   cwd=Path(__file__).resolve().parents[1])
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


# -- a damaged video ---------------------------------------------------------------------------------


def test_a_video_replaced_since_its_record_is_made_or_linked_again_and_recorded(corpus, official, bas_config,
                                                                                tmp_path, caplog):
    """Before, a --generated folder's video copied over was scored on the rerun under the first run's
    record (its sha256 named bytes that no longer produced the numbers), and a video of the run folder
    swapped by hand was scored as the built-in method's."""
    import hashlib

    out = tmp_path / "r"
    options = ("--generated", f"x={official}", "--config", str(bas_config))      # (the controls run too)
    assert run(corpus, out, *options) == 0
    first = real_test_clips(corpus)[0]
    source = official / first.identity / f"{first.clip_id}.mp4"
    static = out / "static" / first.identity / f"{first.clip_id}.mp4"
    made = static.read_bytes()
    shutil.copyfile(static, source)                  # copied over the folder's file: a still video of its length
    static.unlink()
    shutil.copyfile(first.video, static)             # swapped by hand: the real video
    with caplog.at_level("WARNING", logger="bench.runner"):
        assert run(corpus, out, *options) == 0
    generation = rows(out)["x"]["generation"][first.label]
    assert generation["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (out / "x" / first.identity / f"{first.clip_id}.mp4").read_bytes() == source.read_bytes()
    assert static.read_bytes() == made                                  # made again, as the seed makes it
    assert static.with_name(static.name + ".changed").read_bytes() == first.video.read_bytes()
    assert rows(out)["static"]["generation"][first.label]["sha256"] == hashlib.sha256(made).hexdigest()
    assert f"x, {first.label}: the video is not the one recorded (sha256 " in caplog.text
    # the folder's file is the user's: only the link is made again, and the warning says so (before: "making it
    # again", and the README said it was set aside as .changed)
    assert "linking it again, to be scored and recorded as it is now" in caplog.text
    assert not source.with_name(source.name + ".changed").exists()
    assert f"static, {first.label}: the video is not the one recorded" in caplog.text
    assert "making it again (the replaced file is now" in caplog.text


def test_a_video_damaged_after_the_run_is_made_again_and_the_damaged_file_kept(corpus, official, bas_config,
                                                                               tmp_path, caplog):
    # a video cut in half after the run: the rerun listed it unscored but never made it again
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    first = rows(out)["x"]
    clip = real_test_clips(corpus)[0]
    video = out / "x" / clip.identity / f"{clip.clip_id}.mp4"
    data = video.read_bytes()
    video.unlink()                                     # (it may be a link to the folder's file)
    video.write_bytes(data[:len(data) // 2])
    with caplog.at_level("WARNING", logger="bench.runner"):
        assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    again = rows(out)["x"]
    assert again["unscored"] == {} and again["scores"] == first["scores"]      # the first run's, all clips
    assert video.read_bytes() == (official / clip.identity / f"{clip.clip_id}.mp4").read_bytes()
    aside = video.with_name(video.name + ".damaged")
    assert aside.read_bytes() == data[:len(data) // 2]
    assert f"making it again (the damaged file is now {aside.name})" in caplog.text


def test_a_video_that_does_not_read_when_scored_is_listed_unscored(corpus, official, tmp_path):
    # what a damaged video the run did not make again (one damaged between generation and scoring) gets
    from bench.scoring import RunScorer
    from metrics.evaluate import Evaluator
    from metrics.protocol import get_protocol

    clips = real_test_clips(corpus)
    out = tmp_path / "r"
    shutil.copytree(official, out / "x")
    damaged = out / "x" / clips[0].identity / f"{clips[0].clip_id}.mp4"
    damaged.write_bytes(damaged.read_bytes()[:2000])
    scorer = RunScorer.for_dataset(Evaluator.load(["bas"], get_protocol("imac-bench")), corpus, clips, out)
    row = scorer.method("x")
    assert list(row.unscored) == [clips[0].label] and str(damaged) in row.unscored[clips[0].label]
    assert row.provenance["bas"].n_fake == len(clips) - 1


# -- fewer methods -----------------------------------------------------------------------------------


def test_a_rerun_with_fewer_methods_names_the_rows_it_leaves_out(corpus, official, bas_config, tmp_path, caplog):
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--generated", f"y={official}",
               "--config", str(bas_config)) == 0
    assert {"x", "y"} <= set(rows(out))
    with caplog.at_level("WARNING", logger="bench.runner"):
        assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    assert "x" in rows(out) and "y" not in rows(out)
    assert f"{out} also holds videos of y, which this run was not given: its results.json will have no row for it" \
        in caplog.text
    assert json.loads((out / "results.json").read_text())["run"]["left_out"] == ["y"]
    assert (out / "y").is_dir()                                                   # its videos are kept
    assert bench_main(["report", "--run", str(out), "--no-plots"]) == 0
    assert "Not in this table: y, whose videos are in the run folder" in (out / "report.md").read_text()


# -- run.json and generation.json that do not read ------------------------------------------------------


@pytest.mark.parametrize("damage, said", [
    (lambda text: text[:len(text) // 2], "not valid JSON"), (lambda text: "[1, 2]", "not a JSON object"),
    (lambda text: json.dumps({**json.loads(text), "methods": 3}), "methods: not a list of names")])
def test_a_run_file_that_does_not_read_says_what_deleting_it_costs(corpus, official, bas_config, tmp_path, capsys,
                                                                   damage, said):
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    (out / "run.json").write_text(damage((out / "run.json").read_text()))
    capsys.readouterr()
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert str(out / "run.json") in err and said in err and err.count("\n") == 1
    assert "put it back, or delete the folder to start again (or delete run.json alone to go on" in err


@pytest.mark.parametrize("content", [b"", b"[]"])
def test_a_generation_record_that_does_not_read_says_what_deleting_it_costs(corpus, official, bas_config, tmp_path,
                                                                            capsys, content):
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    record = out / "work" / "x" / "generation.json"
    record.write_bytes(content)
    capsys.readouterr()
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert str(record) in err and "delete it to go on: the videos are kept and their records lost" in err
    record.unlink()                                         # as the message says
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0


# -- one process per output folder -------------------------------------------------------------------


def test_hold_folder_refuses_a_second_holder_until_the_first_lets_go(tmp_path, holder):
    folder = tmp_path / "out"
    with hold_folder(folder, "first"):
        with pytest.raises(FolderBusyError, match=rf"^{folder}: another first \(process \d+ on .+, started .+\) is "
                                                  "working in this folder: wait for it to end, or use another folder$"):
            hold_folder(folder, "second")
    with hold_folder(folder, "second"):          # let go: taken again
        pass
    process = holder(folder)
    with pytest.raises(FolderBusyError, match=rf"another test holder \(process {process.pid} on .+\) is working in "
                                              r"this folder \(waited 0.2 s\)"):
        hold_folder(folder, "third", wait=0.2)
    process.kill()                                # the system lets a killed holder's lock go
    process.wait()
    with hold_folder(folder, "third", wait=10):
        pass


def test_a_second_run_into_a_folder_in_use_is_refused(corpus, official, bas_config, tmp_path, capsys, holder):
    # two runs started into one --out both did all the work; the last results.json won
    out = tmp_path / "r"
    process = holder(out)
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert f"{out}: another test holder (process {process.pid}" in err and "use another folder" in err
    assert not (out / "run.json").exists() and not (out / "x").exists()       # nothing done, nothing written
    process.kill()
    process.wait()
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    assert not (out / ".lock.owner").exists()                                 # let go at the end


def test_a_second_preparation_of_an_identity_is_refused_and_the_manifest_is_written_in_turn(tmp_path, holder,
                                                                                            monkeypatch):
    from bench.data.prepare import pipeline
    from metrics.io.video import write_video
    from tests.test_prepare_own_files import _prepare
    from tests.test_prepare_pipeline import FPS, _audio, _frames, _options, _portrait

    raw = tmp_path / "raw"
    write_video(raw / "talk.mp4", _frames([((60, 20, 90), [100], 100)], _portrait()), FPS, audio=_audio(100))
    out = tmp_path / "dataset"
    process = holder(out / "prepare" / "grace")     # another run of identity grace (the options' identity)
    with pytest.raises(FolderBusyError, match=rf"another test holder \(process {process.pid}"):
        _prepare(raw, out)
    process.kill()
    process.wait()
    process = holder(out)                           # another identity's run writing the manifest
    monkeypatch.setattr(pipeline, "MANIFEST_WAIT", 0.2)
    said = []
    with pytest.raises(FolderBusyError, match=rf"^{out}: another test holder .* \(waited 0.2 s\)"):
        pipeline.prepare_dataset(raw, out, _options(test_fraction=0.0), progress=False, log=said.append)
    assert said == [f"  {out}: another test holder (process {process.pid} on {socket.gethostname()}, started "
                    f"{json.loads((out / '.lock.owner').read_text())['started']}) is working in this folder: "
                    "waiting up to 0.2 s"]                   # said, not a silent wait
    assert not (out / "grace").exists()                      # found before any work
    process.kill()
    process.wait()
    assert _prepare(raw, out).sources == 1


def test_a_second_training_into_a_stage_folder_in_use_is_refused(tmp_path, holder):
    from imac.training.trainer import train
    from tests.imac_fixtures import make_corpus, make_vae, tiny_config

    config = tiny_config(make_corpus(tmp_path), make_vae(tmp_path), tmp_path / "train")
    process = holder(tmp_path / "train" / "stage1")
    with pytest.raises(FolderBusyError, match=rf"train/stage1: another test holder \(process {process.pid}"):
        train(config, "stage1", progress=False, max_steps=1)
    assert not (tmp_path / "train" / "stage1" / "checkpoints").exists()


def test_a_damaged_checkpoint_in_a_run_is_told_with_the_run_s_own_way_out(corpus, official, bas_config, tmp_path,
                                                                          capsys, monkeypatch):
    # the trainer's advice, "or give another train.output", names a key imac-bench run refuses
    import bench.runner
    from imac.training import trainer

    folder = tmp_path / "r" / "work" / "imac" / "stage1" / "checkpoints" / "step-5"

    def damaged(*args):
        raise trainer._damaged_checkpoint(folder, EOFError("Ran out of input"))

    monkeypatch.setattr(bench.runner, "_run", damaged)
    assert run(corpus, tmp_path / "r", "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert (f"{folder}: a damaged checkpoint (EOFError: Ran out of input); remove that folder to resume from the "
            "checkpoint before it, or use another --out") in err and "train.output" not in err


# -- found by a trial that tried to break the above ------------------------------------------------------


def test_a_generated_video_cut_short_with_a_readable_header_is_made_again(corpus, official, bas_config, tmp_path):
    # a copy cut short of a video whose index comes first (faststart) still opens: the rerun stopped on
    # "duration differs" every time instead of making it again
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg writes the faststart copy")
    from metrics.io.video import probe_video, read_video

    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    clip = real_test_clips(corpus)[0]
    video = out / "static" / clip.identity / f"{clip.clip_id}.mp4"       # the still control: frames the run wrote
    first = read_video(video)
    faststart = tmp_path / "faststart.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(video), "-c", "copy",
                    "-movflags", "faststart", str(faststart)], check=True, timeout=60)
    data = faststart.read_bytes()
    video.write_bytes(data[:len(data) // 2])
    assert 0 < probe_video(video).num_frames < len(first)                   # opens, and is short
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    np.testing.assert_array_equal(read_video(video), first)
    assert (video.parent / f"{video.name}.damaged").stat().st_size == len(data) // 2


def test_damage_set_aside_twice_keeps_both_and_a_link_is_linked_again(corpus, official, bas_config, tmp_path,
                                                                     capsys):
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    clip = real_test_clips(corpus)[0]
    video = out / "static" / clip.identity / f"{clip.clip_id}.mp4"
    for size in (200, 300):
        video.write_bytes(video.read_bytes()[:size])
        assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    assert {p.name: p.stat().st_size for p in video.parent.glob("*.damaged*")} == {
        f"{video.name}.damaged": 200, f"{video.name}.damaged-2": 300}
    source = official / clip.identity / f"{clip.clip_id}.mp4"             # a --generated link whose file is cut
    good = source.read_bytes()
    source.write_bytes(good[:200])
    linked = out / "x" / clip.identity / f"{clip.clip_id}.mp4"
    assert linked.is_symlink()
    capsys.readouterr()
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2   # the source,
    assert f"{source}: " in capsys.readouterr().err          # refused before any work (check_readable)
    assert not list(linked.parent.glob("*.damaged*"))                       # nothing renamed: it was a link
    source.write_bytes(good)
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    assert linked.read_bytes() == good


def test_a_generation_record_that_is_not_an_object_is_refused_with_advice(corpus, official, bas_config, tmp_path,
                                                                         capsys):
    out = tmp_path / "r"
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0
    record = out / "work" / "x" / "generation.json"
    record.write_text('{"ines/ines_001": 5}')
    capsys.readouterr()
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert f"{record}: ines/ines_001: not a record (a JSON object)" in err and "delete it to go on" in err


def test_something_in_the_lock_s_place_is_one_line_naming_it(corpus, official, bas_config, tmp_path, capsys):
    out = tmp_path / "r"
    (out / ".lock").mkdir(parents=True)
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 2
    err = capsys.readouterr().err
    assert f"{out / '.lock'}: cannot be locked (Is a directory)" in err and err.count("\n") == 1
    (out / ".lock").rmdir()
    (out / ".lock.owner").mkdir()                     # what only names the holder does not stop a run
    assert run(corpus, out, "--generated", f"x={official}", "--config", str(bas_config)) == 0


@pytest.mark.parametrize("wrong, right", [
    (["--identities", "NOBODY"], []),                                      # refused once the data is known
    (["--config", "s2g-typo.yaml"], ["--config", "s2g.yaml"]),           # refused by the method's options check
], ids=["identity", "method-option"])
def test_a_refused_run_leaves_nothing_that_refuses_the_corrected_command(corpus, tmp_path, capsys, monkeypatch,
                                                                         wrong, right):
    # run.json was written before these checks: the corrected command was then refused as "a run with
    # another identities / config" in a folder where nothing had run
    import bench.runner

    (tmp_path / "s2g-typo.yaml").write_text("metrics: [bas]\nmethods: {s2g: {stepz: 3}}\n")
    (tmp_path / "s2g.yaml").write_text("metrics: [bas]\nmethods: {s2g: {steps: 3}}\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert run(corpus, out, "--methods", "s2g", *wrong) == 2
    assert "error:" in capsys.readouterr().err
    assert not (out / "run.json").exists()
    trained = []          # the corrected command passes every check and goes on to train
    monkeypatch.setattr(bench.runner, "train_beside_first", lambda plan: trained.append(plan) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run(corpus, out, "--methods", "s2g", *right)
    assert trained and json.loads((out / "run.json").read_text())["methods"] == ["s2g"]
