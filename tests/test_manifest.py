"""The dataset format: a valid tiny dataset opens; every kind of bad input is reported by clip and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from metrics.dataset import (
    Dataset,
    DatasetError,
    Problem,
    check_clip,
    read_manifest,
    validate_dataset,
    write_manifest,
)
from metrics.io.audio import write_wav
from metrics.io.files import save_npz_atomic
from metrics.io.video import VideoReader, write_video

FPS = 25
NUM_FRAMES = 10
SIZE = 32
SAMPLE_RATE = 16000
JOINTS = 4
IDENTITIES = ("alice", "bob")
CLIPS = ("clip_000", "clip_001")


# -- building datasets ---------------------------------------------------------------------------


def clip_stem(root: Path, identity: str, clip_id: str) -> Path:
    return root / identity / clip_id


def write_clip_video(root: Path, identity: str, clip_id: str, num_frames: int = NUM_FRAMES,
                     fps: float = FPS) -> None:
    level = np.linspace(0, 255, num_frames).astype(np.uint8)
    frames = np.broadcast_to(level[:, None, None, None], (num_frames, SIZE, SIZE, 3))
    write_video(clip_stem(root, identity, clip_id).with_suffix(".mp4"), frames, fps)


def write_clip_audio(root: Path, identity: str, clip_id: str, seconds: float = NUM_FRAMES / FPS) -> None:
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    write_wav(clip_stem(root, identity, clip_id).with_suffix(".wav"), 0.3 * np.sin(2 * np.pi * 220 * t),
              SAMPLE_RATE)


def write_clip_motion(root: Path, identity: str, clip_id: str, pose: np.ndarray | None = None,
                      expression: np.ndarray | None = None, **more: np.ndarray) -> None:
    rng = np.random.default_rng(len(identity) + len(clip_id))
    pose = rng.normal(0, 0.1, (NUM_FRAMES, 3 * JOINTS)) if pose is None else pose
    expression = rng.normal(0, 0.5, (NUM_FRAMES, 100)) if expression is None else expression
    arrays = {"pose": pose, "expression": expression,
              "joint_names": np.array([f"joint_{j}" for j in range(JOINTS)]), **more}
    save_npz_atomic(f"{clip_stem(root, identity, clip_id)}.motion.npz", **arrays)


def write_clip_keypoints(root: Path, identity: str, clip_id: str, keypoints: np.ndarray | None = None) -> None:
    if keypoints is None:
        keypoints = np.random.default_rng(0).uniform(0, SIZE, (NUM_FRAMES, 133, 3))
    save_npz_atomic(f"{clip_stem(root, identity, clip_id)}.keypoints.npz", keypoints=keypoints)


def manifest_line(identity: str, clip_id: str, split: str) -> dict:
    stem = f"{identity}/{clip_id}"
    return {"identity": identity, "split": split, "clip_id": clip_id, "video": f"{stem}.mp4",
            "audio": f"{stem}.wav", "motion": f"{stem}.motion.npz", "keypoints": f"{stem}.keypoints.npz",
            "fps": FPS, "num_frames": NUM_FRAMES, "width": SIZE, "height": SIZE}


def build_dataset(root: Path) -> Path:
    """2 identities x 2 clips (the first train, the second test), 10 frames of 32x32 at 25 fps."""
    lines = []
    for identity in IDENTITIES:
        for index, clip_id in enumerate(CLIPS):
            write_clip_video(root, identity, clip_id)
            write_clip_audio(root, identity, clip_id)
            write_clip_motion(root, identity, clip_id)
            write_clip_keypoints(root, identity, clip_id)
            lines.append(manifest_line(identity, clip_id, "train" if index == 0 else "test"))
    write_manifest(root, lines)
    return root


def read_lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]


def write_raw_lines(root: Path, lines: list[dict | str]) -> None:
    """Write manifest lines as they are (write_manifest would refuse the invalid ones)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (root / "manifest.jsonl").write_text(text)


def edit_line(root: Path, identity: str, clip_id: str, /, **changes) -> None:
    """Change fields of one clip's manifest line; a value of ``...`` removes the field."""
    lines = read_lines(root)
    for line in lines:
        if (line["identity"], line["clip_id"]) == (identity, clip_id):
            for name, value in changes.items():
                if value is ...:
                    del line[name]
                else:
                    line[name] = value
    write_raw_lines(root, lines)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("pristine") / "dataset")


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    """A fresh copy of the valid dataset for a test to break."""
    return Path(shutil.copytree(pristine, tmp_path / "dataset"))


def reported(root: Path, clip: str, field: str, *fragments: str, level: str = "full") -> list[Problem]:
    """Assert that a problem of ``clip`` and ``field`` mentioning ``fragments`` is found and raised."""
    problems = validate_dataset(root, level=level)
    matching = [p for p in problems if p.clip == clip and p.field == field
                and all(fragment in str(p) for fragment in fragments)]
    assert matching, f"no problem for {clip}: {field} with {fragments}; got {[str(p) for p in problems]}"
    with pytest.raises(DatasetError) as raised:
        Dataset.open(root, level=level)
    assert raised.value.problems == problems
    assert f"{clip}: {field}: " in str(raised.value)
    return problems


# -- a valid dataset -----------------------------------------------------------------------------


def test_valid_dataset_has_no_problems(pristine):
    assert validate_dataset(pristine) == []
    assert validate_dataset(pristine, level="files") == []


def test_valid_dataset_opens(pristine):
    data = Dataset.open(pristine)
    assert len(data) == 4 and len(list(data)) == 4
    assert data.identities == ["alice", "bob"]
    assert [r.clip_id for r in data.split("train")] == ["clip_000", "clip_000"]
    assert [r.key for r in data.by_identity("bob")] == [("bob", "clip_000"), ("bob", "clip_001")]
    assert [r.key for r in data.by_identity("alice", split="test")] == [("alice", "clip_001")]
    with pytest.raises(KeyError, match="carol"):
        data.by_identity("carol")
    with pytest.raises(ValueError, match="dev"):
        data.split("dev")

    record = data.clips[0]
    assert record.video.is_absolute() and record.video == pristine.absolute() / "alice/clip_000.mp4"
    assert record.duration == pytest.approx(NUM_FRAMES / FPS)
    assert record.extra == {}
    motion = record.load_motion()
    assert motion["pose"].shape == (NUM_FRAMES, 3 * JOINTS) and motion["pose"].dtype == np.float32
    assert motion["expression"].shape == (NUM_FRAMES, 100) and motion["expression"].dtype == np.float32
    assert motion["joint_names"] == [f"joint_{j}" for j in range(JOINTS)]
    assert record.load_keypoints().shape == (NUM_FRAMES, 133, 3)
    assert len(record.load_audio()) == NUM_FRAMES * SAMPLE_RATE // FPS
    with record.open_video() as video:
        assert isinstance(video, VideoReader)
        assert len(video) == NUM_FRAMES and next(iter(video)).shape == (SIZE, SIZE, 3)


def test_manifest_is_relative_and_sorted(pristine):
    first = (pristine / "manifest.jsonl").read_text().splitlines()[0]
    assert list(json.loads(first)) == sorted(json.loads(first))
    assert json.loads(first)["video"] == "alice/clip_000.mp4"


def test_write_manifest_round_trips_records_and_paths(dataset):
    records = read_manifest(dataset)
    # Absolute Path objects (in records and in plain dicts) are written relative to the folder.
    line = manifest_line("alice", "clip_000", "train")
    line["video"] = dataset / "alice" / "clip_000.mp4"
    line["notes"] = dataset / "alice" / "notes.txt"
    before = read_lines(dataset)
    path = write_manifest(dataset, [line, *records[1:]])
    assert path == dataset.absolute() / "manifest.jsonl"
    after = read_lines(dataset)
    assert after[0] == {**before[0], "notes": "alice/notes.txt"}
    assert after[1:] == before[1:]
    assert validate_dataset(dataset) == []


def test_write_manifest_refuses_invalid_lines(tmp_path):
    bad = manifest_line("alice", "clip_000", "dev")
    with pytest.raises(DatasetError, match="alice/clip_000: split"):
        write_manifest(tmp_path, [bad])
    with pytest.raises(ValueError, match="not inside the dataset folder"):
        write_manifest(tmp_path / "a", [{**manifest_line("alice", "c", "train"), "video": tmp_path / "b" / "v.mp4"}])
    assert not (tmp_path / "manifest.jsonl").exists()


def test_extra_fields_kept(dataset):
    edit_line(dataset, "bob", "clip_001", speaker_gender="m", events="bob/clip_001.events.json", tags=[1, 2])
    assert validate_dataset(dataset) == []
    record = next(r for r in Dataset.open(dataset) if r.key == ("bob", "clip_001"))
    assert record.extra == {"speaker_gender": "m", "events": "bob/clip_001.events.json", "tags": [1, 2]}


def test_empty_lines_ignored(dataset):
    lines = read_lines(dataset)
    write_raw_lines(dataset, ["", lines[0], "   ", *lines[1:], ""])
    assert validate_dataset(dataset) == []


def test_keypoints_optional(dataset):
    edit_line(dataset, "alice", "clip_000", keypoints=...)
    data = Dataset.open(dataset)
    assert data.clips[0].load_keypoints() is None


# -- bad manifests ------------------------------------------------------------------------------


def test_missing_manifest(tmp_path):
    with pytest.raises(DatasetError, match="manifest.jsonl: manifest: file not found"):
        read_manifest(tmp_path)
    assert [p.field for p in validate_dataset(tmp_path)] == ["manifest"]
    (tmp_path / "manifest.jsonl").mkdir()
    assert [str(p) for p in validate_dataset(tmp_path)] == [f"{tmp_path / 'manifest.jsonl'}: manifest: a folder, not a file"]


def test_invalid_json_line(dataset):
    lines = read_lines(dataset)
    write_raw_lines(dataset, [lines[0], lines[1], '{"identity": "carol", "split": ', *lines[2:]])
    reported(dataset, "manifest.jsonl line 3", "json", "invalid JSON")
    with pytest.raises(DatasetError, match="manifest.jsonl line 3: json"):
        read_manifest(dataset)


def test_line_not_an_object(dataset):
    write_raw_lines(dataset, [*read_lines(dataset), "[1, 2]"])
    reported(dataset, "manifest.jsonl line 5", "json", "expected a JSON object")


def test_missing_field(dataset):
    edit_line(dataset, "alice", "clip_001", fps=...)
    reported(dataset, "alice/clip_001", "fps", "missing required field", "line 2")


def test_missing_identity_names_the_line(dataset):
    edit_line(dataset, "bob", "clip_000", identity=...)
    reported(dataset, "manifest.jsonl line 3", "identity", "missing required field")


def test_bad_split(dataset):
    edit_line(dataset, "bob", "clip_000", split="dev")
    reported(dataset, "bob/clip_000", "split", "'dev'")


@pytest.mark.parametrize("name, value, fragment", [
    ("num_frames", "10", "must be an integer"),
    ("num_frames", 10.0, "must be an integer"),
    ("num_frames", 0, "must be > 0"),
    ("width", -32, "must be > 0"),
    ("height", True, "must be an integer"),
    ("fps", 0, "must be > 0"),
    ("fps", "25", "must be a finite number"),
    ("video", 3, "must be a non-empty string"),
    ("video", "/abs/clip.mp4", "must be relative"),
    ("clip_id", "", "must be a non-empty string"),
])
def test_wrong_type_or_range(dataset, name, value, fragment):
    edit_line(dataset, "alice", "clip_000", **{name: value})
    clip = "manifest.jsonl line 1" if name == "clip_id" else "alice/clip_000"
    reported(dataset, clip, name, fragment)


def test_duplicate_clip(dataset):
    lines = read_lines(dataset)
    write_raw_lines(dataset, [*lines, lines[1]])
    problems = reported(dataset, "alice/clip_001", "clip_id", "duplicate", "line 5", "line 2")
    assert len(problems) == 1


# -- bad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field, suffix", [("video", ".mp4"), ("audio", ".wav"), ("motion", ".motion.npz"),
                                           ("keypoints", ".keypoints.npz")])
def test_missing_file(dataset, field, suffix):
    (dataset / "bob" / f"clip_001{suffix}").unlink()
    for level in ("files", "full"):
        reported(dataset, "bob/clip_001", field, "file not found", f"bob/clip_001{suffix}", level=level)


def test_a_file_that_is_a_folder_is_named_so(dataset):
    (dataset / "bob" / "clip_001.motion.npz").unlink()
    (dataset / "bob" / "clip_001.motion.npz").mkdir()
    for level in ("files", "full"):
        reported(dataset, "bob/clip_001", "motion", "a folder, not a file", "bob/clip_001.motion.npz", level=level)


def test_the_manifest_given_for_its_folder_is_named_with_the_folder(dataset):
    # "data/toy/manifest.jsonl/manifest.jsonl: file not found (is this a dataset folder?)"
    manifest = dataset / "manifest.jsonl"
    assert validate_dataset(manifest) == [Problem(str(manifest), "dataset", "the manifest, not a dataset folder: give "
                                                  f"the folder that holds manifest.jsonl ({dataset})")]
    with pytest.raises(DatasetError, match="not a dataset folder"):
        Dataset.open(manifest)
    assert validate_dataset(dataset) == []


def test_files_level_does_not_open_files(dataset):
    (dataset / "bob" / "clip_001.motion.npz").write_bytes(b"garbage")
    assert validate_dataset(dataset, level="files") == []
    reported(dataset, "bob/clip_001", "motion", "cannot read")


def test_unreadable_video_is_a_problem(dataset):
    (dataset / "alice" / "clip_000.mp4").write_bytes(b"\x00" * 64)
    reported(dataset, "alice/clip_000", "video", "alice/clip_000.mp4")


def test_unreadable_audio_is_a_problem(dataset):
    (dataset / "alice" / "clip_000.wav").write_bytes(b"RIFF not really")
    reported(dataset, "alice/clip_000", "audio", "alice/clip_000.wav")


def test_video_frame_count_mismatch(dataset):
    write_clip_video(dataset, "alice", "clip_001", num_frames=9)
    reported(dataset, "alice/clip_001", "video", "frame count 9 != num_frames 10", "alice/clip_001.mp4")


@pytest.mark.parametrize("manifest_frames", [NUM_FRAMES - 2, NUM_FRAMES + 2])
def test_a_wrong_num_frames_in_the_manifest_is_blamed_once_not_on_every_file(dataset, manifest_frames):
    """The video, motion and keypoints all have 10 frames and the manifest says otherwise: the one
    problem is the manifest's num_frames (12 would also make the 0.4 s of audio 'too short')."""
    edit_line(dataset, "bob", "clip_001", num_frames=manifest_frames)
    problems = reported(dataset, "bob/clip_001", "num_frames", f"the manifest says {manifest_frames} frames",
                        "the video (bob/clip_001.mp4), the motion (bob/clip_001.motion.npz), the keypoints "
                        "(bob/clip_001.keypoints.npz) all have 10", "correct num_frames in manifest.jsonl")
    assert [(p.clip, p.field) for p in problems] == [("bob/clip_001", "num_frames")]


def test_video_fps_mismatch(dataset):
    write_clip_video(dataset, "bob", "clip_000", fps=30)
    reported(dataset, "bob/clip_000", "video", "fps 30 != manifest fps 25")


def test_video_size_mismatch(dataset):
    edit_line(dataset, "bob", "clip_000", width=64)
    reported(dataset, "bob/clip_000", "video", "size 32x32 != manifest 64x32")


def test_motion_frame_count_mismatch(dataset):
    write_clip_motion(dataset, "alice", "clip_000", pose=np.zeros((NUM_FRAMES - 1, 3 * JOINTS)))
    reported(dataset, "alice/clip_000", "motion", "'pose' frame count 9 != num_frames 10",
             "alice/clip_000.motion.npz")


def test_nan_in_motion(dataset):
    pose = np.zeros((NUM_FRAMES, 3 * JOINTS))
    pose[3, 1] = pose[6, 2] = np.nan
    write_clip_motion(dataset, "alice", "clip_000", pose=pose)
    reported(dataset, "alice/clip_000", "motion", "'pose' has 2 NaN and 0 inf", "first at frame 3")


def test_inf_in_expression(dataset):
    expression = np.zeros((NUM_FRAMES, 100))
    expression[7, 50] = -np.inf
    write_clip_motion(dataset, "bob", "clip_001", expression=expression)
    reported(dataset, "bob/clip_001", "motion", "'expression' has 0 NaN and 1 inf", "first at frame 7")


def test_expression_not_100_dimensional(dataset):
    write_clip_motion(dataset, "bob", "clip_001", expression=np.zeros((NUM_FRAMES, 50)))
    reported(dataset, "bob/clip_001", "motion", "'expression' has shape (10, 50)")


def test_missing_motion_array(dataset):
    save_npz_atomic(dataset / "bob" / "clip_001.motion.npz", pose=np.zeros((NUM_FRAMES, 3 * JOINTS)))
    reported(dataset, "bob/clip_001", "motion", "missing array 'expression'")


def test_pose_width_and_joint_names(dataset):
    write_clip_motion(dataset, "bob", "clip_001", pose=np.zeros((NUM_FRAMES, 3 * JOINTS + 1)))
    problems = reported(dataset, "bob/clip_001", "motion", "not a multiple of 3")
    assert any("'joint_names' has 4 names" in str(p) for p in problems)


def test_keypoints_wrong_shape(dataset):
    write_clip_keypoints(dataset, "alice", "clip_001", keypoints=np.zeros((NUM_FRAMES, 17, 3)))
    reported(dataset, "alice/clip_001", "keypoints", "shape (10, 17, 3)", "alice/clip_001.keypoints.npz")


def test_keypoints_frame_count_mismatch(dataset):
    write_clip_keypoints(dataset, "alice", "clip_001", keypoints=np.zeros((NUM_FRAMES + 2, 133, 3)))
    reported(dataset, "alice/clip_001", "keypoints", "frame count 12 != num_frames 10")


def test_keypoints_not_finite(dataset):
    keypoints = np.zeros((NUM_FRAMES, 133, 3))
    keypoints[4, 100, 0] = np.nan
    write_clip_keypoints(dataset, "alice", "clip_001", keypoints=keypoints)
    reported(dataset, "alice/clip_001", "keypoints", "1 NaN", "first at frame 4")


def test_audio_shorter_than_video(dataset):
    write_clip_audio(dataset, "bob", "clip_000", seconds=0.2)
    reported(dataset, "bob/clip_000", "audio", "0.200 s", "0.400 s", "bob/clip_000.wav")


def test_audio_shorter_by_less_than_half_a_frame_is_fine(dataset):
    write_clip_audio(dataset, "bob", "clip_000", seconds=NUM_FRAMES / FPS - 0.4 / FPS)
    assert validate_dataset(dataset) == []


def test_check_clip_on_one_record(dataset):
    write_clip_audio(dataset, "bob", "clip_000", seconds=0.2)
    record = next(r for r in read_manifest(dataset) if r.key == ("bob", "clip_000"))
    assert [p.field for p in check_clip(record)] == ["audio"]
    assert check_clip(record, level="files") == []
    with pytest.raises(ValueError, match="level"):
        check_clip(record, level="everything")


# -- many problems at once ------------------------------------------------------------------------


def test_all_problems_reported(dataset):
    lines = read_lines(dataset)
    lines[0]["split"] = "validation"                       # alice/clip_000: manifest field
    write_raw_lines(dataset, [*lines, "not json"])          # line 5
    (dataset / "alice" / "clip_001.motion.npz").unlink()    # alice/clip_001: missing file
    write_clip_video(dataset, "bob", "clip_000", num_frames=8)
    write_clip_audio(dataset, "bob", "clip_000", seconds=0.1)
    nan_pose = np.full((NUM_FRAMES, 3 * JOINTS), np.nan)
    write_clip_motion(dataset, "bob", "clip_001", pose=nan_pose, expression=np.zeros((NUM_FRAMES, 99)))

    problems = validate_dataset(dataset)
    found = {(p.clip, p.field) for p in problems}
    assert found == {("alice/clip_000", "split"), ("manifest.jsonl line 5", "json"),
                     ("alice/clip_001", "motion"), ("bob/clip_000", "video"), ("bob/clip_000", "audio"),
                     ("bob/clip_001", "motion")}
    # NaN pose and 99-d expression: two problems of one file, both listed.
    assert sum((p.clip, p.field) == ("bob/clip_001", "motion") for p in problems) == 2
    with pytest.raises(DatasetError) as raised:
        Dataset.open(dataset)
    assert raised.value.problems == problems
    for problem in problems:
        assert str(problem) in str(raised.value)


def test_long_problem_lists_are_shortened(dataset):
    lines = read_lines(dataset)
    write_raw_lines(dataset, [*lines, *["{broken"] * 30])
    with pytest.raises(DatasetError) as raised:
        read_manifest(dataset)
    assert len(raised.value.problems) == 30
    message = str(raised.value)
    assert "manifest.jsonl line 24: json" in message and "line 25: json" not in message
    assert message.rstrip().endswith("... and 10 more")


def test_write_manifest_takes_relative_path_objects_from_the_working_directory(dataset, monkeypatch):
    # A dataset written with a relative output folder (``--out data/toy``) must still name its
    # files relative to the dataset folder, not to the directory the command ran in.
    records = read_manifest(dataset)
    monkeypatch.chdir(dataset.parent)
    relative_root = Path(dataset.name)
    line = manifest_line("alice", "clip_000", "train")
    line["video"] = relative_root / "alice" / "clip_000.mp4"
    write_manifest(relative_root, [line, *records[1:]])
    assert read_lines(dataset)[0]["video"] == "alice/clip_000.mp4"
    assert validate_dataset(relative_root) == []
