"""`imac-bench run --generated` and `--out`: bad input is one line naming the option, before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.cli import main as bench_main
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from bench.runner import test_clips as real_test_clips
from metrics.io.video import VideoReader, write_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=2, clips=3, test_clips=2, size=64), progress=False)
    return root


def run(corpus: Path, out: Path, *options: str) -> int:
    return bench_main(["run", "--data", str(corpus), "--out", str(out), "--quiet", "--no-plots", *options])


def test_generated_name_also_in_methods_is_refused_not_silently_replaced(corpus, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    assert run(corpus, tmp_path / "r", "--methods", "s2g", "--generated", f"s2g={videos}") == 2
    err = capsys.readouterr().err
    assert f"--generated s2g={videos}: s2g is also in --methods" in err
    assert not (tmp_path / "r").exists()


def test_missing_generated_folder_leaves_no_run_folder(corpus, tmp_path, capsys):
    assert run(corpus, tmp_path / "r", "--generated", f"x={tmp_path / 'nodir'}") == 2
    assert f"--generated x={tmp_path / 'nodir'}: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_bad_generated_folder_is_named_at_once(corpus, tmp_path, capsys):
    """A missing folder and an empty one: both named in one refusal (the first alone was named, and the
    empty one only on the next run, after the run folder was made); nothing is created."""
    (tmp_path / "empty" / "alice").mkdir(parents=True)
    assert run(corpus, tmp_path / "r", "--generated", f"x={tmp_path / 'nodir'}",
               "--generated", f"y={tmp_path / 'empty'}") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "2 problems" in err
    assert f"--generated x={tmp_path / 'nodir'}: no such folder" in err
    assert f"--generated y={tmp_path / 'empty'}: an empty folder" in err
    assert not (tmp_path / "r").exists()


def test_every_incomplete_generated_folder_is_named_at_once(corpus, tmp_path, capsys):
    """Two folders, neither with the test clips' videos: each named (the first alone was)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("x")
    assert run(corpus, tmp_path / "r", "--generated", f"a={tmp_path / 'a'}", "--generated", f"b={tmp_path / 'b'}") == 2
    err = capsys.readouterr().err.strip()
    assert "2 problems" in err and f"{tmp_path / 'a'}/" in err and f"{tmp_path / 'b'}/" in err
    assert err.count(".mp4: missing") == 2


def test_generated_folder_that_is_a_file_is_named(corpus, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert run(corpus, tmp_path / "r", "--generated", f"x={tmp_path / 'afile'}") == 2
    assert f"--generated x={tmp_path / 'afile'}: a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_control_named_in_generated_names_generated(corpus, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    assert run(corpus, tmp_path / "r", "--generated", f"gt={videos}") == 2
    err = capsys.readouterr().err
    assert "--generated: gt: the controls run on every run" in err and "--methods" not in err
    assert run(corpus, tmp_path / "r", "--methods", "static") == 2
    assert "--methods: static: the controls run on every run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_that_is_a_file_is_named(corpus, tmp_path, capsys, below):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = afile / below if below else afile
    assert run(corpus, out, "--methods", "s2g") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--out {out}: {'a file' if not below else f'{afile} is a file'}, not a folder; give a folder")
    assert "Errno" not in err and afile.read_text() == "x"


def test_header_mismatch_does_not_suggest_an_option_run_lacks(corpus, tmp_path, capsys):
    """A generated clip longer than its real one: refused, pointing at what imac-bench run offers."""
    folder = tmp_path / "official"
    for clip in real_test_clips(corpus):
        with VideoReader(clip.video) as reader:
            frames = np.stack(list(reader))
            fps = reader.info.fps
        target = folder / clip.identity / f"{clip.clip_id}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_video(target, np.concatenate([frames, frames]), fps)      # twice the length
    assert run(corpus, tmp_path / "r", "--generated", f"x={folder}") == 2
    err = capsys.readouterr().err
    assert f"--generated x={folder}:" in err and "duration differs" in err
    assert "--allow-mismatch duration)" not in err and "allow='duration'" not in err
    assert "python -m metrics compute --allow-mismatch duration" in err


def test_videos_that_are_not_test_clips_are_listed_not_silently_ignored(corpus, tmp_path, caplog):
    """The run's test clips copied, plus a train clip and another speaker's video: the run scores the test
    clips, warns about the two others and records them in the method's facts."""
    import json
    import shutil

    from metrics.dataset import Dataset
    folder = tmp_path / "official"
    for clip in real_test_clips(corpus):
        (folder / clip.identity).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.video, folder / clip.identity / f"{clip.clip_id}.mp4")
    train = Dataset.open(corpus, level="files").select("train")[0]
    shutil.copyfile(train.video, folder / train.identity / f"{train.clip_id}.mp4")
    (folder / "zed").mkdir()
    shutil.copyfile(train.video, folder / "zed" / "zed_000.mp4")
    config = tmp_path / "bas.yaml"        # BAS alone: a copy of the real videos passes every control check
    config.write_text("metrics: [bas]\nmethods: {}\n")
    with caplog.at_level("WARNING", logger="bench.methods.external"):
        assert run(corpus, tmp_path / "r", "--generated", f"x={folder}", "--config", str(config)) == 0
    unused = sorted([f"{train.identity}/{train.clip_id}", "zed/zed_000"])
    assert f"2 video(s) are not test clips of this run and are not scored: {', '.join(unused)}" in caplog.text
    facts = json.loads((tmp_path / "r" / "work" / "x" / "method.json").read_text())
    assert facts["not_test_clips"] == unused


def test_a_missing_clip_says_what_stands_in_its_place(tmp_path):
    # a WebM of the clip (metrics compute reads it; imac-bench run reads MP4) and a flat folder were
    # reported as plain "missing"
    from bench.methods.external import ExternalVideoError, GeneratedFolder
    from metrics.dataset import ClipRecord

    clip = ClipRecord(identity="ines", clip_id="ines_002", video=tmp_path / "real.mp4")
    (tmp_path / "webm" / "ines").mkdir(parents=True)
    (tmp_path / "webm" / "ines" / "ines_002.webm").write_bytes(b"")
    (tmp_path / "webm" / "ines" / "ines_002.keypoints.npz").write_bytes(b"")    # not a video: not named
    with pytest.raises(ExternalVideoError, match=r"ines_002.mp4: missing; found ines_002.webm: imac-bench run reads "
                                                 r"MP4 files \(remux it: ffmpeg -i ines_002.webm -c copy ines_002.mp4"):
        GeneratedFolder("mine", tmp_path / "webm").write(clip, tmp_path / "out.mp4", 0)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "ines_002.mp4").write_bytes(b"")
    with pytest.raises(ExternalVideoError, match=r"missing; found ines_002.mp4 at the folder's top level: the layout "
                                                 r"is <identity>/<clip_id>.mp4"):
        GeneratedFolder("mine", tmp_path / "flat").write(clip, tmp_path / "out.mp4", 0)
    (tmp_path / "none").mkdir()
    with pytest.raises(ExternalVideoError, match=r"ines_002.mp4: missing$"):
        GeneratedFolder("mine", tmp_path / "none").write(clip, tmp_path / "out.mp4", 0)
    # before the run works (every clip at once, not the first a process reaches): the first missing one
    # with what stands in its place, and how many of the test clips have none
    (tmp_path / "webm" / "ines" / "ines_003.mp4").write_bytes(b"")
    clips = [clip, *(ClipRecord(identity="ines", clip_id=f"ines_00{i}", video=tmp_path / "real.mp4") for i in (3, 4))]
    with pytest.raises(ExternalVideoError, match=r"ines_002.mp4: missing; found ines_002.webm: .*; 2 of the 3 test "
                                                 r"clips have no video: ines/ines_002, ines/ines_004 \(give them, or "
                                                 r"--skip-missing"):
        GeneratedFolder("mine", tmp_path / "webm").check_complete(clips)
    GeneratedFolder("mine", tmp_path / "webm").check_complete(clips[1:2])       # all there: nothing to say


def test_a_corrupt_generated_video_is_refused_before_any_method_trains(corpus, tmp_path, capsys):
    """Before, S2G trained and generated every clip and only then was the cut file found (about ten minutes of
    the default run). Every unreadable one is named at once; nothing is made."""
    import shutil

    folder = tmp_path / "gen"
    clips = real_test_clips(corpus)
    for clip in clips:
        (folder / clip.identity).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.video, folder / clip.identity / f"{clip.clip_id}.mp4")
    for clip in clips[:2]:
        data = clip.video.read_bytes()
        (folder / clip.identity / f"{clip.clip_id}.mp4").write_bytes(data[: len(data) // 3])
    assert run(corpus, tmp_path / "r", "--methods", "s2g", "--generated", f"x={folder}") == 2
    err = capsys.readouterr().err
    assert "2 unreadable videos: " in err
    for clip in clips[:2]:
        assert f"{folder / clip.identity / clip.clip_id}.mp4: " in err
    assert not (tmp_path / "r" / "work" / "s2g").exists() and not (tmp_path / "r" / "s2g").exists()


def test_a_built_in_method_name_is_refused_for_external_videos(corpus, tmp_path, capsys):
    (tmp_path / "v").mkdir()
    assert run(corpus, tmp_path / "r", "--generated", f"s2g={tmp_path / 'v'}") == 2
    assert f"--generated s2g={tmp_path / 'v'}: s2g is a built-in method's name" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_clip_names_in_upper_case_or_twice_are_named(tmp_path):
    """ines_002.MP4 where ines_002.mp4 is read: said (before: plain "missing", the hint looked only at other
    containers); two files of one clip in a folder scored by metrics compute: both files named."""
    from bench.methods.external import ExternalVideoError, GeneratedFolder
    from metrics.dataset import ClipRecord, FolderError, find_clips

    clip = ClipRecord(identity="ines", clip_id="ines_002", video=tmp_path / "real.mp4")
    (tmp_path / "g" / "ines").mkdir(parents=True)
    (tmp_path / "g" / "ines" / "ines_002.MP4").write_bytes(b"")
    with pytest.raises(ExternalVideoError, match=r"ines_002.mp4: missing; found ines_002.MP4: imac-bench run reads "
                                                 r"<clip_id>.mp4, in lower case"):
        GeneratedFolder("mine", tmp_path / "g").write(clip, tmp_path / "out.mp4", 0)
    (tmp_path / "g" / "ines" / "ines_002.MP4").rename(tmp_path / "g" / "ines" / "ines_002.mp4")
    (tmp_path / "g" / "ines" / "ines_002.webm").write_bytes(b"")
    with pytest.raises(FolderError) as error:
        find_clips(tmp_path / "g")
    assert (f"the same identity/clip appears twice: ines/ines_002: {tmp_path / 'g' / 'ines' / 'ines_002.mp4'} and "
            f"{tmp_path / 'g' / 'ines' / 'ines_002.webm'}") in str(error.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_an_out_folder_that_cannot_be_made_is_named_as_out(corpus, tmp_path, capsys):
    """Before: "error: [Errno 2] No such file or directory: '/proc/...'", naming neither --out nor the run."""
    import shutil

    videos = tmp_path / "videos"
    for clip in real_test_clips(corpus):
        (videos / clip.identity).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip.video, videos / clip.identity / f"{clip.clip_id}.mp4")
    out = Path("/proc/imac-bench-test") / "run"
    assert run(corpus, out, "--generated", f"x={videos}") == 2
    assert capsys.readouterr().err == (f"imac-bench run: error: --out {out}: the run folder cannot be made or "
                                       "written there (No such file or directory: /proc/imac-bench-test); give "
                                       "another --out\n")
