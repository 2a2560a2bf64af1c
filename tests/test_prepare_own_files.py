"""``imac-bench data prepare`` touches only what it made: the files of its own clips (found by a new-user
trial that lost files: a dotted source name, raw videos kept in the identity's folder, ``--identity ..``),
and takes as sources only the raw videos (not a dataset written inside the raw folder); what it passes
over that looks like a video, it names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.data.prepare.pipeline import OptionsError, prepare_dataset
from metrics.dataset import read_manifest, validate_dataset
from metrics.io.video import write_video
from tests.test_prepare_pipeline import FPS, _audio, _fit_npz, _frames, _options, _portrait


def _prepare(raw: Path, out: Path, motion: Path | None = None, **changes):
    options = _options(test_fraction=0.0, **({"motion": str(motion)} if motion else {}), **changes)
    return prepare_dataset(raw, out, options, progress=False, log=lambda _: None)


@pytest.fixture
def one_source(tmp_path) -> Path:
    """A raw folder of one talking portrait (100 frames, one scene) named with dots, as dated files are."""
    raw = tmp_path / "raw"
    write_video(raw / "lecture.2024-01-05.mp4", _frames([((60, 20, 90), [100], 100)], _portrait()), FPS,
                audio=_audio(100))
    return raw


def test_a_source_name_with_dots_keeps_its_clip_files(one_source, tmp_path):
    # the stale-file sweep took "lecture" for the clip id of lecture.2024-01-05_s000.mp4 and deleted
    # the files the manifest had just listed
    motion = tmp_path / "fits"
    motion.mkdir()
    _fit_npz(motion / "lecture.2024-01-05_s000.npz", 100)
    out = tmp_path / "dataset"
    (out / "grace").mkdir(parents=True)
    (out / "grace" / "notes.mp4").write_bytes(b"the user's own")          # not prepare's: left alone
    summary = _prepare(one_source, out, motion)
    assert summary.in_manifest == 1
    assert [r.clip_id for r in read_manifest(out)] == ["lecture.2024-01-05_s000"]
    assert validate_dataset(out) == []
    assert sorted(p.name for p in (out / "grace").iterdir()) == [
        "lecture.2024-01-05_s000.motion.npz", "lecture.2024-01-05_s000.mp4", "lecture.2024-01-05_s000.wav",
        "notes.mp4"]


def test_raw_videos_in_the_folder_it_writes_are_refused_and_kept(one_source, tmp_path):
    out = tmp_path / "dataset"
    kept = out / "grace"
    kept.mkdir(parents=True)
    shutil.copy(one_source / "lecture.2024-01-05.mp4", kept / "talk1.mp4")
    with pytest.raises(ValueError, match=r"the raw videos lie in .*grace, where this run writes"):
        _prepare(kept, out)
    with pytest.raises(ValueError, match=r"the raw videos and --out are one folder"):
        _prepare(one_source, one_source)
    assert (kept / "talk1.mp4").is_file()


@pytest.mark.parametrize("identity", ["..", ".", "a/b", "a\\b", " "])
def test_an_identity_that_is_no_folder_name_inside_out_is_refused(identity):
    with pytest.raises(OptionsError, match=r"identity: must be a name of a folder inside --out"):
        _options(identity=identity)


def test_a_dataset_written_inside_the_raw_folder_is_not_taken_as_raw_videos(one_source, tmp_path):
    # the second run took the first one's clip and candidate as two more sources (the same footage three
    # times, spread over both splits)
    out = one_source / "dataset"
    first = _prepare(one_source, out)
    second = _prepare(one_source, out)
    assert first.sources == second.sources == 1
    assert any("lie(s) inside" in warning for warning in second.warnings)
    # a raw folder that holds this run's workspace, not --out (raw = out/prepare): its candidates are left out
    with pytest.raises(FileNotFoundError, match=r"no video files .*, but for what this run writes inside it"):
        _prepare(out / "prepare", out)


def test_a_looping_link_is_named_with_a_dataset_inside_the_raw_folder(one_source, tmp_path):
    (one_source / "loop.mp4").symlink_to(one_source / "loop.mp4")      # Path.resolve raises on it
    (one_source / ".ipynb_checkpoints").mkdir()
    (one_source / ".ipynb_checkpoints" / "copy.mp4").write_bytes(b"")   # in a hidden folder: not a source
    summary = _prepare(one_source, one_source / "dataset")
    assert summary.sources == 1
    assert [w for w in summary.warnings if "passed over" in w] == [
        f"{one_source}: passed over: loop.mp4: a broken or looping link"]


def test_what_looks_like_a_video_but_is_not_read_is_named(one_source, tmp_path):
    (one_source / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (one_source / "camcorder.MTS").write_bytes(b"\x47" * 188)
    (one_source / "notes.txt").write_text("not a video")
    summary = _prepare(one_source, tmp_path / "dataset")
    passed = [w for w in summary.warnings if "passed over" in w]
    assert len(passed) == 2
    assert "camcorder.MTS: .mts is not read (remux it: ffmpeg -i camcorder.MTS -c copy camcorder.mp4" in passed[0]
    assert "gone.mp4: a broken or looping link" in passed[1]


def test_a_source_without_sound_is_named_as_such_not_as_damaged(one_source, tmp_path, capsys):
    # a silent screen recording was counted among the "unreadable or damaged" sources
    from bench.cli import main as bench_main

    write_video(one_source / "silent.mp4", _frames([((60, 20, 90), [100], 100)], _portrait()), FPS)   # no audio
    (one_source / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "dataset"
    summary = _prepare(one_source, out)
    assert summary.silent == ["silent"] and [source for source, _ in summary.unreadable] == ["broken"]
    report = (out / "prepare" / "grace" / "report.md").read_text()
    assert "- sources: 3 source(s) (1 unreadable or damaged, 1 without sound)" in report
    assert "- `silent`" in report.split("## Sources without sound")[1]
    capsys.readouterr()
    assert bench_main(["data", "prepare", str(one_source), "--identity", "grace", "--out", str(out), "--size", "64",
                       "--quiet"]) in (0, 1)
    assert "grace: 3 source(s) (1 unreadable or damaged, 1 without sound)" in capsys.readouterr().out
