"""A manifest's paths stay inside the dataset folder, and a variable-frame-rate video is named so.

A manifest comes from whoever made the dataset: a path that climbs out with ``..`` or leads out
through a symbolic link is refused, naming the clip, the field and the manifest line, by every
reader of the format (``read_manifest``, ``validate_dataset``, ``Dataset.open``, ``find_clips``,
``imac-bench data validate``, ``imac validate``, ``python -m metrics compute``), and ``write_manifest``
refuses to write one. The expected problems are written here by hand.

A variable-rate video is built here with known frame times (50 frames 50 ms apart, then 50 frames
30 ms apart), so where its frames really are is known without the code under test.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from bench.cli import main as bench_main
from imac.cli import main as imac_main
from metrics.cli import main as metrics_main
from metrics.dataset import (Dataset, DatasetError, FolderError, find_clips, read_manifest, validate_dataset,
                             write_manifest)
from metrics.io.video import uneven_frame
from tests.test_manifest import (FPS, NUM_FRAMES, build_dataset, edit_line, read_lines, write_clip_audio,
                                 write_clip_motion)

LINE_OF = {("alice", "clip_000"): 1, ("alice", "clip_001"): 2, ("bob", "clip_000"): 3, ("bob", "clip_001"): 4}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("pristine") / "dataset")


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    """A fresh copy of the valid dataset, beside a file outside it (``tmp_path/outside.mp4``)."""
    root = Path(shutil.copytree(pristine, tmp_path / "dataset"))
    shutil.copy(root / "alice" / "clip_000.mp4", tmp_path / "outside.mp4")
    return root


def only_problem(root: Path) -> str:
    problems = validate_dataset(root, level="files")
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


# -- '..' ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("video", "../outside.mp4"),
    ("audio", "alice/../../outside.mp4"),
    ("motion", "./../outside.mp4"),
    ("keypoints", "..\\outside.mp4"),          # a Windows separator: it would escape there
    ("video", ".."),
])
def test_a_path_climbing_out_of_the_folder_is_refused_naming_clip_field_and_line(dataset, field, value):
    edit_line(dataset, "bob", "clip_000", **{field: value})
    expected = (f"bob/clip_000: {field}: path {value!r} leads outside the dataset folder ('..' climbs above it) "
                f"(manifest.jsonl line {LINE_OF['bob', 'clip_000']})")
    assert only_problem(dataset) == expected
    for read in (read_manifest, Dataset.open, lambda root: find_clips(root, split=None)):
        with pytest.raises(DatasetError) as raised:
            read(dataset)
        assert expected in str(raised.value)


@pytest.mark.parametrize("value", ["alice/../bob/clip_000.mp4", "./bob/clip_000.mp4", "bob/./clip_000.mp4"])
def test_a_path_with_dots_that_stays_inside_is_accepted(dataset, value):
    edit_line(dataset, "bob", "clip_000", video=value)
    assert validate_dataset(dataset) == []
    record = next(r for r in read_manifest(dataset) if r.key == ("bob", "clip_000"))
    assert record.video.resolve() == (dataset / "bob" / "clip_000.mp4").resolve()


@pytest.mark.parametrize("value, said", [
    ("/etc/passwd", "must be relative to the dataset folder"),
    ("C:\\data\\x.mp4", "must be relative to the dataset folder"),
    ("\\\\server\\share\\x.mp4", "must be relative to the dataset folder"),
    ("bob/clip\x00.mp4", "holds a NUL byte"),
])
def test_absolute_windows_and_nul_paths_are_refused(dataset, value, said):
    edit_line(dataset, "alice", "clip_001", audio=value)
    problem = only_problem(dataset)
    assert problem.startswith("alice/clip_001: audio: ") and said in problem and "(manifest.jsonl line 2)" in problem


def test_write_manifest_refuses_a_path_that_climbs_out(dataset):
    lines = read_lines(dataset)
    lines[3]["motion"] = "../outside.npz"
    with pytest.raises(DatasetError, match=r"bob/clip_001: motion: path '../outside.npz' leads outside"):
        write_manifest(dataset, lines)
    assert read_lines(dataset)[3]["motion"] == "bob/clip_001.motion.npz"      # nothing written


# -- symbolic links --------------------------------------------------------------------------------


def test_a_symbolic_link_to_a_file_outside_is_refused(dataset, tmp_path):
    (dataset / "bob" / "clip_001.mp4").unlink()
    (dataset / "bob" / "clip_001.mp4").symlink_to(tmp_path / "outside.mp4")
    expected = (f"bob/clip_001: video: path 'bob/clip_001.mp4' leads outside the dataset folder through a "
                f"symbolic link (to {tmp_path.resolve() / 'outside.mp4'}) (manifest.jsonl line 4)")
    assert only_problem(dataset) == expected
    with pytest.raises(DatasetError, match="through a symbolic link"):
        Dataset.open(dataset)


def test_a_symbolic_link_to_a_folder_outside_is_refused(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(dataset / "bob", elsewhere)
    (dataset / "bob").symlink_to(elsewhere, target_is_directory=True)
    problems = validate_dataset(dataset, level="files")
    assert {(p.clip, p.field) for p in problems} == {(f"bob/{clip}", field) for clip in ("clip_000", "clip_001")
                                                    for field in ("video", "audio", "motion", "keypoints")}
    assert all("through a symbolic link" in str(p) for p in problems)


def test_links_that_stay_inside_and_a_linked_dataset_folder_are_accepted(dataset, tmp_path):
    (dataset / "bob" / "clip_001.wav").unlink()
    (dataset / "bob" / "clip_001.wav").symlink_to(Path("..") / "bob" / "clip_000.wav")   # a relative link inside
    (dataset / "media").symlink_to(dataset / "alice", target_is_directory=True)
    edit_line(dataset, "alice", "clip_000", video="media/clip_000.mp4")
    linked = tmp_path / "linked"
    linked.symlink_to(dataset, target_is_directory=True)          # the whole folder elsewhere: fine
    assert validate_dataset(dataset) == []
    assert validate_dataset(linked) == []


# -- the commands ----------------------------------------------------------------------------------


def test_every_command_reading_a_dataset_names_the_escaping_path(dataset, tmp_path, capsys):
    edit_line(dataset, "alice", "clip_001", motion="../../etc/passwd")
    said = ("alice/clip_001: motion: path '../../etc/passwd' leads outside the dataset folder ('..' climbs above it) "
            "(manifest.jsonl line 2)")
    assert bench_main(["data", "validate", str(dataset), "--level", "files"]) == 1
    assert said in capsys.readouterr().err
    assert imac_main(["validate", str(dataset)]) == 1
    assert said in capsys.readouterr().err
    assert metrics_main(["compute", "--real", str(dataset), "--fake", str(dataset), "--metrics", "bas",
                         "--cache", "none", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


# -- variable frame rate ---------------------------------------------------------------------------

# 50 frames 50 ms apart, then 50 frames 30 ms apart (ms): 100 frames over 3.95 s
STEPS_MS = np.r_[np.arange(50) * 50, 2450 + np.arange(1, 51) * 30]


def write_timed_video(path: Path, times_ms: np.ndarray, side: int = 32) -> None:
    """A video whose frame i is shown at ``times_ms[i]`` (time base 1 ms), written here with PyAV."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width = stream.height = side
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    for index, t in enumerate(times_ms):
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), index, np.uint8), format="rgb24")
        frame.pts, frame.time_base = int(t), Fraction(1, 1000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()


def test_uneven_frame_finds_the_frame_furthest_from_an_even_spacing():
    # by hand: an even spacing of 3950 / 99 ms; frame i <= 49 sits 10.101 * i ms late, so frame 49 by 494.9 ms
    frame, offset = uneven_frame(STEPS_MS / 1000)
    assert frame == 49 and offset == pytest.approx(2.450 - 49 * 3.950 / 99)
    # a phone's 30 fps with every fifth interval doubled (25 fps on average): frame 4 at 133 ms, not 160
    phone = np.r_[0, np.cumsum(np.tile([1, 1, 1, 1, 2], 20))][:100] / 30
    assert uneven_frame(phone) is not None
    # constant rates with timestamps rounded to a millisecond (29.97 and 30 fps) are constant
    for fps in (30000 / 1001, 30):
        assert uneven_frame(np.round(np.arange(300) * 1000 / fps) / 1000) is None
    assert uneven_frame(np.array([0.0, 0.04])) is None


def test_a_variable_rate_video_is_named_so_and_not_compared_by_its_average_rate(dataset):
    write_timed_video(dataset / "bob" / "clip_000.mp4", STEPS_MS)
    frames = len(STEPS_MS)
    write_clip_motion(dataset, "bob", "clip_000", pose=np.zeros((frames, 12)), expression=np.zeros((frames, 100)))
    (dataset / "bob" / "clip_000.keypoints.npz").unlink()
    edit_line(dataset, "bob", "clip_000", num_frames=frames, keypoints=...)
    write_clip_audio(dataset, "bob", "clip_000", seconds=4.0)
    problems = [str(p) for p in validate_dataset(dataset)]
    # frame 49 is shown at 2.450 s (49 x 50 ms); the 100 frames span 2.450 + 50 x 0.030 = 3.950 s, so an even
    # spacing puts frame 49 at 3.950 x 49 / 99 = 1.955 s, 0.495 s earlier (the furthest any frame is off)
    assert problems == [
        "bob/clip_000: video: variable frame rate: frames 30.0 to 50.0 ms apart: frame 49 is shown 2.450 s after "
        "the first, 0.495 s later than an even spacing of the 100 frames over 3.950 s puts it (1.955 s); the format "
        "needs a constant rate, frame i shown at i / fps (manifest fps 25; make one with imac-bench data prepare, "
        "which picks frames by their timestamps) (bob/clip_000.mp4)"]


def test_a_constant_rate_video_with_millisecond_timestamps_is_accepted(dataset):
    write_timed_video(dataset / "bob" / "clip_000.mp4", np.round(np.arange(NUM_FRAMES) * 1000 / FPS))
    assert validate_dataset(dataset) == []


def test_the_audio_message_says_what_it_compares_with(dataset):
    write_clip_audio(dataset, "alice", "clip_000", seconds=0.2)
    # 10 frames at 25 fps: 0.400 s; half a frame 0.020 s
    assert [str(p) for p in validate_dataset(dataset)] == [
        "alice/clip_000: audio: audio lasts 0.200 s, shorter than num_frames / fps = 10 / 25 = 0.400 s by more "
        "than half a frame (0.020 s) (alice/clip_000.wav)"]


def test_a_folder_of_videos_enters_linked_identity_folders_once_and_names_a_file_given_as_the_folder(tmp_path):
    # Path.rglob (Python 3.11) does not enter a linked folder: a folder of links to identity folders held
    # "no videos"; a link back to a folder above would go round for ever
    for identity in ("alice", "bob"):
        (tmp_path / "made" / identity).mkdir(parents=True)
        (tmp_path / "made" / identity / "clip_000.mp4").write_bytes(b"")
    (tmp_path / "linked").mkdir()
    for identity in ("alice", "bob"):
        (tmp_path / "linked" / identity).symlink_to(tmp_path / "made" / identity, target_is_directory=True)
    (tmp_path / "made" / "alice" / "up").symlink_to(tmp_path / "linked", target_is_directory=True)   # a loop
    (tmp_path / "made" / "bob" / "top").symlink_to(tmp_path, target_is_directory=True)   # above the root
    (tmp_path / "linked" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "linked" / ".ipynb_checkpoints" / "clip_000.mp4").write_bytes(b"")   # a hidden copy: passed over
    clips = find_clips(tmp_path / "linked", split=None)
    assert [clip.label for clip in clips] == ["alice/clip_000", "bob/clip_000"]
    with pytest.raises(FolderError, match=r"clip_000.mp4: a file, not a folder \(give the folder that holds"):
        find_clips(tmp_path / "made" / "alice" / "clip_000.mp4")
