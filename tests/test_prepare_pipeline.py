"""``imac-bench data prepare`` on short synthetic recordings made here.

The recordings are built from a real photograph (Grace Hopper's portrait, which matplotlib ships
as sample data) pasted on coloured backgrounds, so the real frontal-face detector (OpenCV's
bundled cascade) and the real scene detector (PySceneDetect) make the decisions:

- ``talk_a``: scene 0 one face (4 s), scene 1 one face but 2 s (too short), scene 2 two faces
  (4 s), scene 3 no face (4 s);
- ``talk_b``, ``talk_c``: one face, one scene each (4 s);
- ``corrupt.mp4``: not a video.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from bench.cli import main as bench_main
from metrics.dataset import read_manifest, validate_dataset
from bench.data.prepare import pipeline as pipeline_module
from bench.data.prepare import sources as sources_module
from bench.data.prepare.faces import CascadeFaceDetector
from bench.data.prepare.motion import SMPLX_JOINT_NAMES
from bench.data.prepare.pipeline import PrepareOptions, decide_clip, prepare_dataset
from bench.data.prepare.sources import SceneSettings, detect_scenes, make_timeline, read_frame_times
from metrics.io.video import probe_video, read_video, write_video

FPS = 25
HEIGHT, WIDTH = 240, 320
FACE_SIZE = (110, 129)            # width, height of the pasted portrait
SCENES_A = [((30, 60, 200), [105], 100), ((200, 180, 40), [105], 50),
            ((40, 160, 60), [20, 185], 100), ((120, 30, 30), [], 100)]


def _portrait() -> np.ndarray:
    image = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), FACE_SIZE, interpolation=cv2.INTER_AREA)


def _frames(scenes, portrait):
    for background, faces, count in scenes:
        for i in range(count):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[:] = background
            for x in faces:
                x += i % 3   # a little movement
                frame[40:40 + FACE_SIZE[1], x:x + FACE_SIZE[0]] = portrait
            yield frame


def _audio(frames: int) -> np.ndarray:
    t = np.arange(int(frames / FPS * 16000)) / 16000
    return (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    portrait = _portrait()
    total = sum(count for _, _, count in SCENES_A)
    write_video(folder / "talk_a.mp4", _frames(SCENES_A, portrait), FPS, audio=_audio(total))
    (folder / "more").mkdir()
    write_video(folder / "more" / "talk_b.mp4", _frames([((90, 90, 90), [105], 100)], portrait), FPS, audio=_audio(100))
    write_video(folder / "talk_c.mp4", _frames([((60, 20, 90), [100], 100)], portrait), FPS, audio=_audio(100))
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


def _fit_npz(path: Path, frames: int, seed: int = 0) -> None:
    """A per-clip SMPL-X fit in the AMASS-like layout: poses (F, 165), expression (F, 50)."""
    rng = np.random.default_rng(seed)
    np.savez(path, poses=rng.normal(0, 0.2, (frames, 165)).astype(np.float32),
             expression=rng.normal(0, 1, (frames, 50)).astype(np.float32))


@pytest.fixture(scope="module")
def motion_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fits")
    for seed, clip in enumerate(("talk_a_s000", "more__talk_b_s000", "talk_c_s000")):
        _fit_npz(folder / f"{clip}.npz", 100, seed)
    return folder


def _options(**changes) -> PrepareOptions:
    return PrepareOptions(**{"identity": "grace", "size": 64, "test_fraction": 0.3, **changes})


@pytest.fixture(scope="module")
def prepared(raw_dir, motion_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir)), progress=False, log=lambda _: None)
    return out, summary


def _record(out: Path, clip: str):
    """The manifest record of ``clip``."""
    return {r.clip_id: r for r in read_manifest(out)}[clip]


def _dropped(out: Path, identity: str = "grace") -> dict[str, tuple[str, str]]:
    with open(out / "prepare" / identity / "dropped.csv", newline="") as f:
        return {row["clip_id"] or row["source"]: (row["stage"], row["reason"]) for row in csv.DictReader(f)}


# -- stage decisions ------------------------------------------------------------------------------


def test_scene_detector_finds_the_cuts(raw_dir):
    info = probe_video(raw_dir / "talk_a.mp4")
    timeline = make_timeline(read_frame_times(raw_dir / "talk_a.mp4"), info.fps)
    np.testing.assert_array_equal(timeline.source_index, np.arange(350))   # constant rate: the identity
    scenes = detect_scenes(raw_dir / "talk_a.mp4", timeline, SceneSettings(), info.fps)
    assert [(s.start, s.end) for s in scenes] == [(0, 100), (100, 150), (150, 250), (250, 350)]


def test_each_stage_drops_the_clip_it_should(prepared):
    out, summary = prepared
    dropped = _dropped(out)
    assert dropped["talk_a_s001"][0] == "length" and "2.00 s < 3 s" in dropped["talk_a_s001"][1]
    assert dropped["talk_a_s002"][0] == "speakers" and "face-count fallback" in dropped["talk_a_s002"][1]
    assert dropped["talk_a_s003"][0] == "faces" and "0% of 8 sampled frames" in dropped["talk_a_s003"][1]
    assert dropped["corrupt"][0] == "source" and "corrupt.mp4" in dropped["corrupt"][1]
    assert summary.kept == 3 and summary.scenes == 6
    assert summary.unreadable[0][0] == "corrupt"


def test_manifest_holds_the_kept_clips_in_the_project_format(prepared):
    out, _ = prepared
    assert validate_dataset(out, level="full") == []
    records = {r.clip_id: r for r in read_manifest(out)}
    assert set(records) == {"talk_a_s000", "more__talk_b_s000", "talk_c_s000"}
    for record in records.values():
        assert (record.width, record.height, record.fps, record.num_frames) == (64, 64, FPS, 100)
        assert record.extra["speaker_check"] == "face-count"
        assert record.extra["person_box"] == "faces"
        assert read_video(record.video).shape == (100, 64, 64, 3)
        with np.load(record.motion) as motion:
            assert motion["pose"].shape == (100, 129) and motion["expression"].shape == (100, 100)
    # the scene's time range in its source is recorded
    assert records["talk_a_s000"].extra["start_seconds"] == 0.0
    assert records["talk_a_s000"].extra["end_seconds"] == 4.0


def test_motion_is_the_fit_reordered_and_padded(prepared, motion_dir):
    out, _ = prepared
    record = _record(out, "talk_c_s000")
    with np.load(motion_dir / "talk_c_s000.npz") as fit, np.load(record.motion) as motion:
        poses = fit["poses"].reshape(100, 55, 3)
        names = list(motion["joint_names"])
        assert names[0] == "spine1" and len(names) == 43
        for k, name in enumerate(names):
            np.testing.assert_array_equal(motion["pose"][:, 3 * k:3 * k + 3], poses[:, SMPLX_JOINT_NAMES.index(name)])
        np.testing.assert_array_equal(motion["expression"][:, :50], fit["expression"])
        assert not motion["expression"][:, 50:].any()


def test_audio_is_the_scene_of_the_source_at_16k(prepared, raw_dir):
    out, _ = prepared
    record = _record(out, "talk_a_s000")
    import soundfile

    samples, rate = soundfile.read(record.audio)
    assert rate == 16000 and samples.ndim == 1
    assert abs(len(samples) - 4 * 16000) <= 1
    expected = _audio(350)[:len(samples)]
    # AAC coding in the source: compare loosely, but sample-aligned (a shifted signal fails this)
    assert np.corrcoef(samples, expected)[0, 1] > 0.95


def test_split_keeps_each_source_on_one_side(prepared):
    out, _ = prepared
    records = read_manifest(out)
    sides = {}
    for record in records:
        sides.setdefault(record.extra["source"], set()).add(record.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {r.split for r in records} == {"train", "test"}


def test_statistics_add_up_from_the_manifest(prepared):
    out, _ = prepared
    rows = json.loads((out / "statistics.json").read_text())["rows"]
    records = read_manifest(out)
    (row,) = rows
    assert row["identity"] == "grace" and row["clips"] == len(records) and row["sources"] == 3
    assert row["hours"] == pytest.approx(sum(r.num_frames / r.fps for r in records) / 3600)
    assert row["test_hours"] == pytest.approx(sum(r.num_frames / r.fps for r in records if r.split == "test") / 3600)
    table = (out / "statistics.md").read_text()
    assert "| grace | unknown | 64x64 | 25 | 3 |" in table


def test_report_names_the_checks_that_decided(prepared):
    out, _ = prepared
    report = (out / "prepare" / "grace" / "report.md").read_text()
    assert "3 by the **face-count fallback**" in report
    assert "corrupt" in report and "mtcnn detector" in report


# -- resuming, re-deciding, external decisions ------------------------------------------------------


def _copy_dataset(prepared, tmp_path) -> Path:
    out = tmp_path / "dataset"
    shutil.copytree(prepared[0], out)
    return out


def test_rerun_redoes_nothing(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".mp4", ".wav", ".npz")}
    prepare_dataset(raw_dir, out, _options(motion=str(motion_dir)), progress=False, log=lambda _: None)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".mp4", ".wav", ".npz")}
    assert before == after


def test_changed_threshold_redecides_without_measuring_again(prepared, raw_dir, motion_dir, tmp_path, monkeypatch):
    out = _copy_dataset(prepared, tmp_path)
    monkeypatch.setattr(pipeline_module, "measure_source", lambda *a, **k: pytest.fail("measured again"))
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), max_several_faces_fraction=1.0),
                              progress=False, log=lambda _: None)
    # the two-face scene now passes the speaker check; it waits for its motion
    assert "talk_a_s002" in summary.awaiting_motion
    assert summary.kept == 4 and summary.in_manifest == 3


def test_stricter_filter_removes_outputs_of_clips_no_longer_kept(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    speakers = tmp_path / "speakers.csv"
    speakers.write_text("clip_id,speakers\nmore__talk_b_s000,2\n")
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), speakers=str(speakers)),
                              progress=False, log=lambda _: None)
    assert summary.in_manifest == 2
    assert sorted(r.clip_id for r in read_manifest(out)) == ["talk_a_s000", "talk_c_s000"]
    assert not list((out / "grace").glob("more__talk_b_s000.*"))
    assert sorted(p.name for p in (out / "grace").glob("*.mp4")) == ["talk_a_s000.mp4", "talk_c_s000.mp4"]


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the dataset outside ``prepare/`` (the manifest, statistics, clips), by content."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.relative_to(out).parts[0] != "prepare"}


def test_run_that_keeps_nothing_leaves_the_dataset_as_it_was(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    before = _snapshot(out)
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), face_confidence=1e9),
                              progress=False, log=lambda _: None)
    assert summary.kept == 0 and summary.in_manifest == 0
    assert _snapshot(out) == before and len(read_manifest(out)) == 3
    assert any("3 earlier clip(s) of it are left as they were" in w for w in summary.warnings)


def test_command_line_keeping_nothing_fails_and_loses_no_clip(prepared, raw_dir, tmp_path, capsys):
    out = _copy_dataset(prepared, tmp_path)
    before = _snapshot(out)
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(out), "--size", "64",
                       "--min-seconds", "30", "--quiet"])
    printed = capsys.readouterr()
    assert code == 1 and "no clip kept for grace" in printed.err
    assert "the dataset's 3 earlier clip(s) of it are left as they were" in printed.out
    assert _snapshot(out) == before


def _strip_prepare_fields(out: Path) -> None:
    """Make the manifest's lines look like clips prepare did not write (as the toy corpus's)."""
    lines = [json.loads(t) for t in (out / "manifest.jsonl").read_text().splitlines() if t.strip()]
    for line in lines:
        line.pop("speaker_check")
    (out / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_clips_prepare_did_not_make_are_replaced_only_when_asked(prepared, raw_dir, motion_dir, tmp_path, capsys):
    out = _copy_dataset(prepared, tmp_path)
    _strip_prepare_fields(out)
    before = _snapshot(out)
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(out), "--size", "64",
                       "--motion", str(motion_dir), "--test-fraction", "0.3", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(out / "manifest.jsonl") in err and "--replace-identity" in err and "'grace'" in err
    assert _snapshot(out) == before
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(out), "--size", "64",
                       "--motion", str(motion_dir), "--test-fraction", "0.3", "--quiet", "--replace-identity"])
    assert code == 0
    assert all(r.get("speaker_check") for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines()))


def test_speakers_file_overrides_the_fallback(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    speakers = tmp_path / "speakers.csv"
    speakers.write_text("# from TalkNet\nclip_id,speakers\ntalk_a_s002,1\nmore__talk_b_s000,2\ntalk_z_s000,1\n")
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), speakers=str(speakers)),
                              progress=False, log=lambda _: None)
    dropped = _dropped(out)
    assert dropped["more__talk_b_s000"] == ("speakers", "speakers file: 2 active speakers")
    # two faces, one speaker by the file: it passes the speaker check and the face filter
    assert "talk_a_s002" not in dropped and "talk_a_s002" in summary.awaiting_motion
    assert summary.speaker_checks == {"speakers-file": 1, "face-count": 2}
    assert any("1 clip id(s) that are not scenes" in w and "talk_z_s000" in w for w in summary.warnings)


def test_motion_with_the_wrong_length_is_refused_and_logged(prepared, raw_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    fits = tmp_path / "fits"
    fits.mkdir()
    _fit_npz(fits / "talk_a_s000.npz", 100)
    _fit_npz(fits / "talk_c_s000.npz", 97)
    summary = prepare_dataset(raw_dir, out, _options(motion=str(fits)), progress=False, log=lambda _: None)
    assert {r.clip_id for r in read_manifest(out)} == {"talk_a_s000"}
    stage, reason = _dropped(out)["talk_c_s000"]
    assert stage == "motion" and "97" in reason and "100" in reason
    assert summary.awaiting_motion == ["more__talk_b_s000"]
    assert (out / "prepare" / "grace" / "awaiting_motion.txt").read_text().strip().endswith("more__talk_b_s000.mp4")


def test_keypoints_decide_the_crop_and_are_carried_into_the_crop(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    keypoints_dir = tmp_path / "keypoints"
    keypoints_dir.mkdir()
    keypoints = np.zeros((100, 133, 3), np.float32)
    keypoints[:, :, 0], keypoints[:, :, 1], keypoints[:, :, 2] = 160.0, 120.0, 0.9
    keypoints[:, 0, :2] = (100.0, 60.0)      # the extent: x 100..220, y 60..200
    keypoints[:, 1, :2] = (220.0, 200.0)
    np.savez(keypoints_dir / "talk_c_s000.npz", keypoints=keypoints)
    prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), keypoints=str(keypoints_dir), crop_margin=0.0),
                    progress=False, log=lambda _: None)
    record = _record(out, "talk_c_s000")
    assert record.extra["person_box"] == "keypoints"
    # side 140 (the box's height), centred on the box: x 90..230, y 60..200
    assert record.extra["crop_box"] == [90.0, 60.0, 230.0, 200.0]
    with np.load(record.keypoints) as data:
        moved = data["keypoints"]
    scale = 64 / 140                                       # pixel centres: x' = (x - x0 + 0.5) s - 0.5
    np.testing.assert_allclose(moved[0, 0, :2], [10.5 * scale - 0.5, 0.5 * scale - 0.5], atol=1e-4)
    np.testing.assert_allclose(moved[0, 1, :2], [130.5 * scale - 0.5, 140.5 * scale - 0.5], atol=1e-4)
    assert validate_dataset(out, level="full") == []


def test_interrupted_measurement_keeps_finished_clips(raw_dir, tmp_path, monkeypatch):
    real = sources_module._measure_clip
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sources_module, "_measure_clip", interrupted)
    options = _options()
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw_dir, tmp_path / "out", options, progress=False, log=lambda _: None)
    first = tmp_path / "out" / "prepare" / "grace" / "candidates" / f"{calls[0]}.mp4"
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(sources_module, "_measure_clip", real)
    summary = prepare_dataset(raw_dir, tmp_path / "out", options, progress=False, log=lambda _: None)
    assert first.stat().st_mtime_ns == stamp            # reused, not encoded again
    assert summary.kept == 3


def test_other_identities_stay_in_the_manifest(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    fits = tmp_path / "fits2"
    shutil.copytree(motion_dir, fits)
    prepare_dataset(raw_dir, out, _options(identity="hopper", motion=str(fits), posture="sitting"),
                    progress=False, log=lambda _: None)
    identities = {r.identity for r in read_manifest(out)}
    assert identities == {"grace", "hopper"}
    table = (out / "statistics.md").read_text()
    assert "| hopper | sitting |" in table and "| **all** |" in table


# -- the command line -------------------------------------------------------------------------------


def test_command_line_prepares_and_reports(raw_dir, motion_dir, tmp_path, capsys):
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(tmp_path / "ds"),
                       "--size", "64", "--motion", str(motion_dir), "--test-fraction", "0.3", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    # the hard cuts between the scenes of talk_a are shot changes, not jump cuts
    assert "4 source(s) (1 unreadable or damaged), 6 scene(s) (0 jump cut(s) inside a shot, split there), 3 kept" \
        in printed
    assert "in the manifest: 3 clip(s)" in printed
    assert len(read_manifest(tmp_path / "ds")) == 3


def test_command_line_refuses_bad_input(raw_dir, tmp_path, capsys):
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(tmp_path / "ds"),
                       "--motion", str(tmp_path / "missing")])
    assert code == 2 and "--motion" in capsys.readouterr().err
    code = bench_main(["data", "prepare", str(tmp_path), "--identity", "grace", "--out", str(tmp_path / "ds")])
    assert code == 2 and "no video files" in capsys.readouterr().err


def test_command_line_says_why_no_clip_was_kept_and_fails(raw_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    code = bench_main(["data", "prepare", str(raw_dir), "--identity", "grace", "--out", str(out), "--size", "64",
                       "--min-seconds", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    # the six scenes of test_command_line_prepares_and_reports, each shorter than 30 s
    assert err == (f"imac-bench data prepare: no clip kept for grace: all 6 scene(s) dropped (length 6); each clip "
                   f"and why: {out / 'prepare' / 'grace' / 'dropped.csv'}\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(raw_dir / "corrupt.mp4", broken)
    assert bench_main(["data", "prepare", str(broken), "--identity", "grace", "--out", str(tmp_path / "ds2"),
                       "--quiet"]) == 1
    assert capsys.readouterr().err == ("imac-bench data prepare: no clip kept for grace: no scene found in 1 "
                                       "source(s) (1 unreadable or damaged)\n")


# -- pure decisions ---------------------------------------------------------------------------------


def _entry(faces_per_frame: list[list[float]], seconds: float = 4.0) -> dict:
    samples = list(range(len(faces_per_frame)))
    faces = {str(i): [[0, 0, 10, 10, c] for c in confidences] for i, confidences in enumerate(faces_per_frame)}
    return {"seconds": seconds, "measured": True, "sample_frames": samples, "faces": faces}


def test_decisions_follow_the_thresholds():
    options = _options(min_frontal_fraction=0.75, max_several_faces_fraction=0.25)
    # 3 of 4 frames with a confident face: kept at 0.75
    assert decide_clip("c", "s", _entry([[5.0], [5.0], [5.0], [1.0]]), options, None).kept
    # 2 of 4: dropped by the face filter
    d = decide_clip("c", "s", _entry([[5.0], [5.0], [1.0], []]), options, None)
    assert (d.kept, d.stage) == (False, "faces")
    # two confident faces in 2 of 4 frames (> 25%): dropped by the fallback
    d = decide_clip("c", "s", _entry([[5.0, 5.0], [5.0, 4.0], [5.0], [5.0]]), options, None)
    assert (d.kept, d.stage, d.speaker_check) == (False, "speakers", "face-count")
    # a second face below the confidence threshold is not a second face
    assert decide_clip("c", "s", _entry([[5.0, 1.0]] * 4), options, None).kept
    # the speakers file decides when it lists the clip
    d = decide_clip("c", "s", _entry([[5.0, 5.0]] * 4), options, {"c": 1})
    assert (d.kept, d.speaker_check) == (True, "speakers-file")
    assert decide_clip("c", "s", _entry([[5.0]] * 4), options, {"c": 0}).stage == "speakers"
    assert decide_clip("c", "s", _entry([[5.0]] * 4, seconds=2.9), options, None).stage == "length"


def test_cascade_finds_the_portrait_and_only_it():
    detector = CascadeFaceDetector()
    frame = next(_frames([((30, 60, 200), [105], 1)], _portrait()))
    (face,) = detector(frame)
    assert 105 <= face.x0 < face.x1 <= 215 and 40 <= face.y0 < face.y1 <= 169
    assert face.confidence >= 3.0
    assert detector(np.full((HEIGHT, WIDTH, 3), 127, np.uint8)) == []
    assert [f for f in detector(frame[::-1]) if f.confidence >= 3.0] == []   # upside down: no frontal face


def test_masks_decide_the_crop(prepared, raw_dir, motion_dir, tmp_path):
    out = _copy_dataset(prepared, tmp_path)
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    masks = np.zeros((100, HEIGHT, WIDTH), bool)
    masks[:, 50:230, 120:200] = True            # person x 120..200, y 50..230 (180 tall)
    masks[60, 50:230, 100:120] = True            # one frame with an arm out to x = 100
    np.savez_compressed(masks_dir / "talk_c_s000.npz", masks=masks)
    prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), masks=str(masks_dir), crop_margin=0.0),
                    progress=False, log=lambda _: None)
    record = _record(out, "talk_c_s000")
    assert record.extra["person_box"] == "masks"
    # union box x 100..200, y 50..230: side 180, centred on x = 150, shifted up into the frame
    assert record.extra["crop_box"] == [60.0, 50.0, 240.0, 230.0]


def test_dwpose_keypoints_are_computed_once_and_decide_the_crop(prepared, raw_dir, motion_dir, tmp_path):
    from bench.data.prepare.crop import person_box_from_keypoints, square_crop_box
    from tests.test_dwpose import write_detector, write_pose

    out = _copy_dataset(prepared, tmp_path)
    detector, pose = write_detector(tmp_path / "det.onnx"), write_pose(tmp_path / "pose.onnx")
    options = _options(motion=str(motion_dir), dwpose_detector=str(detector), dwpose_pose=str(pose))
    prepare_dataset(raw_dir, out, options, progress=False, log=lambda _: None)
    cached = out / "prepare" / "grace" / "keypoints" / "talk_c_s000.npz"
    with np.load(cached) as data:
        keypoints = data["keypoints"]
    assert keypoints.shape == (100, 133, 3)
    record = _record(out, "talk_c_s000")
    assert record.extra["person_box"] == "dwpose"
    expected = square_crop_box(person_box_from_keypoints(keypoints, 0.3), WIDTH, HEIGHT, 0.05)
    assert record.extra["crop_box"] == expected.to_list()
    stamp = cached.stat().st_mtime_ns
    prepare_dataset(raw_dir, out, options, progress=False, log=lambda _: None)
    assert cached.stat().st_mtime_ns == stamp


def _write_variable_rate(path: Path, times_ms: np.ndarray, audio: np.ndarray) -> None:
    """A video whose frame i (colour (25 (i % 10), 25 (i // 10), 0)) is shown at times_ms[i], with a
    16 kHz AAC track."""
    import av
    from fractions import Fraction

    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=25)
    video.width = video.height = 64
    video.pix_fmt, video.options = "yuv420p", {"crf": "1"}
    video.codec_context.time_base = Fraction(1, 1000)
    sound = _audio_stream(container)
    for i, t in enumerate(times_ms):
        colour = np.array([25 * (i % 10), 25 * (i // 10), 0], np.uint8)
        frame = av.VideoFrame.from_ndarray(np.broadcast_to(colour, (64, 64, 3)).copy(), format="rgb24")
        frame.pts, frame.time_base = int(t), Fraction(1, 1000)
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
    _mux_audio(container, sound, audio)
    container.close()


def _audio_stream(container):
    sound = container.add_stream("aac", rate=16000)
    sound.layout = "mono"
    return sound


def _mux_audio(container, sound, audio: np.ndarray) -> None:
    import av
    from fractions import Fraction

    for start in range(0, len(audio), 1024):
        frame = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
        for packet in sound.encode(frame):
            container.mux(packet)
    for packet in sound.encode(None):
        container.mux(packet)


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    # 50 frames 50 ms apart, then 50 frames 30 ms apart: by index, frame 50 would sit at 2.0 s at
    # 25 fps, but it is shown at 2.5 s
    times = np.r_[np.arange(50) * 50, 2450 + np.arange(1, 51) * 30].astype(float)
    audio = np.zeros(int(4.1 * 16000), np.float32)
    audio[40000:40040] = 0.9                                   # a click at 2.5 s, under frame 50
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_variable_rate(raw / "phone.mp4", times, audio)
    out = tmp_path / "out"
    # the colours jump every 10 frames: keep the scene detectors (shots and jump cuts) out of it
    prepare_dataset(raw, out, _options(fps=25, scene_threshold=255.0, jump_cuts=False), progress=False,
                    log=lambda _: None)
    state = json.loads((out / "prepare" / "grace" / "sources" / "phone.json").read_text())
    assert state["fps"] == 25 and state["num_frames"] == round(3.95 * 25) + 1 and state["source_frames"] == 100
    frames = read_video(out / "prepare" / "grace" / "candidates" / "phone_s000.mp4")
    centre = frames[:, 32, 32].astype(float)
    shown = (np.round(centre[:, 0] / 25) + 10 * np.round(centre[:, 1] / 25)).astype(int)
    expected = [int(np.argmin(np.abs(times - 1000 * k / 25))) for k in range(len(frames))]
    np.testing.assert_array_equal(shown, expected)
    import soundfile

    samples, _ = soundfile.read(out / "prepare" / "grace" / "candidates" / "phone_s000.wav")
    click_frame = int(np.argmax(np.abs(samples)) / 16000 * 25)   # 2.5 s: output frame 62
    # sound and picture stay together: the frame under the click is source frame 50 (shown from
    # 2.48 s) or its neighbour; resampling by index would show frame 62 there
    assert abs(shown[click_frame] - 50) <= 1


def test_a_phone_recording_stored_sideways_is_turned_upright(tmp_path):
    import av

    portrait = _portrait()
    upright = list(_frames([((30, 60, 200), [105], 100)], portrait))
    raw = tmp_path / "raw"
    raw.mkdir()
    container = av.open(str(raw / "phone.mp4"), "w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"   # stored turned clockwise
    stream.set_display_rotation(90)                                            # shown turned back
    sound = _audio_stream(container)
    for index, frame in enumerate(upright):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame, -1)), format="rgb24")
        frame.pts = index
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    _mux_audio(container, sound, _audio(100))
    container.close()
    out = tmp_path / "out"
    summary = prepare_dataset(raw, out, _options(), progress=False, log=lambda _: None)
    state = json.loads((out / "prepare" / "grace" / "sources" / "phone.json").read_text())
    assert (state["rotation"], state["width"], state["height"]) == (90, WIDTH, HEIGHT)
    assert summary.kept == 1                                       # the face was found: it is upright
    candidate = read_video(out / "prepare" / "grace" / "candidates" / "phone_s000.mp4")
    assert candidate.shape[1:] == (HEIGHT, WIDTH, 3)
    assert np.abs(candidate[10].astype(int) - upright[10]).mean() < 3


def test_worker_processes_give_the_same_dataset(prepared, raw_dir, motion_dir, tmp_path):
    out = tmp_path / "parallel"
    summary = prepare_dataset(raw_dir, out, _options(motion=str(motion_dir), workers=2), progress=False,
                              log=lambda _: None)
    assert summary.kept == prepared[1].kept and summary.dropped == prepared[1].dropped
    serial = {r.clip_id: r for r in read_manifest(prepared[0])}
    parallel = {r.clip_id: r for r in read_manifest(out)}
    assert serial.keys() == parallel.keys()
    for clip, record in parallel.items():
        assert record.extra == serial[clip].extra and record.split == serial[clip].split
        # the same frames went to the encoder; x264 in another process may round a few differently
        difference = np.abs(read_video(record.video).astype(int) - read_video(serial[clip].video))
        assert difference.mean() < 0.5
    assert _dropped(out) == _dropped(prepared[0])


def test_a_decoding_error_part_way_keeps_the_clips_before_it(raw_dir, tmp_path, monkeypatch):
    real = sources_module._measure_clip

    def failing(frames, scene, clip, *args, **kwargs):
        if clip == "talk_a_s002":
            raise ValueError("Invalid data found when processing input")
        return real(frames, scene, clip, *args, **kwargs)

    monkeypatch.setattr(sources_module, "_measure_clip", failing)
    summary = prepare_dataset(raw_dir, tmp_path / "out", _options(), progress=False, log=lambda _: None)
    state = json.loads((tmp_path / "out" / "prepare" / "grace" / "sources" / "talk_a.json").read_text())
    assert state["status"] == "failed" and "Invalid data" in state["error"]
    assert set(state["clips"]) == {"talk_a_s000", "talk_a_s001"}
    assert "talk_a_s000" in summary.awaiting_motion            # the clip before the error goes on
    assert ("talk_a", f"failed part-way (2 scene(s) before the error kept): {state['error']}") in summary.unreadable
    assert "talk_a" in (tmp_path / "out" / "prepare" / "grace" / "report.md").read_text()


def test_long_scenes_become_several_clips(raw_dir, tmp_path):
    summary = prepare_dataset(raw_dir, tmp_path / "out", _options(min_seconds=1.5, max_seconds=2.5),
                              progress=False, log=lambda _: None)
    # talk_b's 4 s scene: two clips of 2 s; talk_a's 2 s scene is now long enough and fits whole
    assert {"more__talk_b_s000p0", "more__talk_b_s000p1", "talk_a_s001"} <= set(summary.awaiting_motion)
    state = json.loads((tmp_path / "out" / "prepare" / "grace" / "sources" / "more__talk_b.json").read_text())
    assert [(e["start"], e["end"]) for e in state["clips"].values()] == [(0, 50), (50, 100)]
