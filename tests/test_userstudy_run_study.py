"""A study made from a benchmark run folder: run.json + <method>/<identity>/<clip_id>.mp4, nothing else."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from userstudy_data.media import tagged_video, write_video

from userstudy import make_study as make_study_command
from userstudy.make_study import RUN_CONTROLS, make_study_from_run
from userstudy.study import StudyError, load_study

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["imac", "s2g", "mya"]
IDENTITIES = {"alice": ["c01", "c02", "c03", "c04"], "bob": ["c01", "c05", "c06"]}


def fake_run(root: Path, methods=tuple(METHODS) + RUN_CONTROLS, skip=(), sound: bool = True) -> Path:
    """A run folder in the documented layout; each video (real, tiny: ``tagged_video``) names its method,
    identity and clip in its bytes."""
    run = root / "runs" / "bench"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"data": None, "seed": 0, "identities": None, "config": {},
                                              "methods": list(methods), "bench_version": 2}))
    for method in methods:
        for identity, clips in IDENTITIES.items():
            for clip in clips:
                if (method, identity, clip) in skip:
                    continue
                path = run / method / identity / f"{clip}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tagged_video(f"{method}/{identity}/{clip}", sound))
    (run / "work").mkdir()                     # other things a run holds are not read
    (run / "results.json").write_text("{}")
    return run


def test_the_controls_are_the_benchmarks():
    # userstudy may not import bench; its copy of the control names is checked against bench's source.
    tree = ast.parse((ROOT / "bench" / "methods" / "__init__.py").read_text())
    value = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "CONTROLS" for t in node.targets))
    assert ast.literal_eval(value) == RUN_CONTROLS


def test_a_study_from_a_run_draws_trials_per_identity_and_mixes_in_checks(tmp_path):
    run = fake_run(tmp_path)
    study = make_study_from_run(tmp_path / "study", run, trials_per_identity=2, frozen_checks=1, repeat_checks=1,
                                seed="s1")
    assert study.methods == tuple(METHODS)          # the controls are not methods of the study
    regular = [t for t in study.trials if t.check is None]
    checks = [t for t in study.trials if t.check is not None]
    assert len(regular) == 4 and len(checks) == 2
    assert sorted(t.clip.split("/")[0] for t in regular) == ["alice", "alice", "bob", "bob"]
    assert sorted(t.id for t in study.trials) == [f"t{i:03d}" for i in range(1, 7)]
    for trial in regular:
        for method in METHODS:
            assert study.file(trial.videos[method]).read_bytes() == tagged_video(f"{method}/{trial.clip}")
    frozen = next(t for t in checks if t.check.kind == "last")
    assert frozen.check.criteria == ("sound-video synchronization",)
    for method in METHODS:
        expected = "static" if method == frozen.check.method else method
        assert study.file(frozen.videos[method]).read_bytes() == tagged_video(f"{expected}/{frozen.clip}")
    repeat = next(t for t in checks if t.check.kind == "repeat")
    original = next(t for t in regular if t.id == repeat.check.of)
    assert original.clip == repeat.clip and original.videos == repeat.videos
    # the same seed draws the same study; the written study file loads as it was made
    again = make_study_from_run(tmp_path / "again", run, trials_per_identity=2, frozen_checks=1, repeat_checks=1,
                                seed="s1")
    assert [(t.id, t.clip, t.check) for t in again.trials] == [(t.id, t.clip, t.check) for t in study.trials]
    assert load_study(tmp_path / "study") == study


def test_a_run_study_refuses_what_it_cannot_use(tmp_path):
    run = fake_run(tmp_path, skip={("s2g", "bob", "c05"), ("mya", "bob", "c05")})
    with pytest.raises(StudyError) as error:
        make_study_from_run(tmp_path / "s", run)
    assert error.value.problems == ["clip bob/c05 is missing for s2g, mya"]
    with pytest.raises(StudyError, match="static are the run's controls"):
        make_study_from_run(tmp_path / "s", run, methods=["imac", "static"])
    with pytest.raises(StudyError, match=r"methods: nope not in .*run.json \(its methods: imac, s2g, mya\)"):
        make_study_from_run(tmp_path / "s", run, methods=["imac", "nope"])
    with pytest.raises(StudyError, match="identities: carol not in the run"):
        make_study_from_run(tmp_path / "s", run, methods=["imac", "s2g"], identities=["carol"])
    with pytest.raises(StudyError, match="is not among the study's criteria"):
        make_study_from_run(tmp_path / "s", run, methods=["imac", "s2g"], criteria=["visual quality"],
                            frozen_checks=1)
    with pytest.raises(StudyError, match="no such file"):
        make_study_from_run(tmp_path / "s", tmp_path)
    with pytest.raises(StudyError, match=r"^criteria \(--criteria\): the list is empty"):   # not the paper's four
        make_study_from_run(tmp_path / "s", run, methods=["imac", "s2g"], criteria=[])
    with pytest.raises(StudyError, match=r"^criteria \(--criteria\): names must differ .* got \['a', 'A'\]$"):
        make_study_from_run(tmp_path / "s", run, methods=["imac", "s2g"], criteria=["a", "A"])
    assert not (tmp_path / "s").exists()


def test_the_command_takes_a_run_and_points_a_method_folder_of_a_run_to_it(tmp_path, capsys):
    run = fake_run(tmp_path)
    code = make_study_command.main(["--out", str(tmp_path / "study"), "--run", str(run), "--methods", "imac,s2g",
                                    "--identities", "bob", "--frozen-checks", "1", "--seed", "x"])
    assert code == 0, capsys.readouterr().err
    study = load_study(tmp_path / "study")
    assert study.methods == ("imac", "s2g") and len(study.trials) == 4
    assert {t.clip for t in study.trials} == {"bob/c01", "bob/c05", "bob/c06"}
    # today's way, a method folder of the run, is told what to do instead of "no video"
    code = make_study_command.main(["--out", str(tmp_path / "other"), "--method", f"imac={run / 'imac'}",
                                    "--method", f"s2g={run / 's2g'}"])
    assert code == 2 and "make the study with --run RUN_FOLDER" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        make_study_command.main(["--out", str(tmp_path / "x"), "--method", f"imac={run / 'imac'}",
                                 "--method", f"s2g={run / 's2g'}", "--pairwise-trials", "1"])
    assert "--pairwise-trials only with --run" in capsys.readouterr().err


def test_no_trial_is_repeated_and_asking_for_more_names_the_most_possible(tmp_path):
    run = fake_run(tmp_path)
    # 7 clips (alice 4, bob 3) x 3 pairs of methods: 21 different compare trials, counted by hand
    study = make_study_from_run(tmp_path / "all", run, pairwise_trials=21, seed="p")
    compared = [(t.clip, tuple(sorted(t.videos))) for t in study.trials if t.kind == "compare"]
    assert len(compared) == 21 and len(set(compared)) == 21
    pairs = [pair for _, pair in compared]
    assert {pairs.count(p) for p in set(pairs)} == {7}            # each pair of methods equally often
    with pytest.raises(StudyError) as error:
        make_study_from_run(tmp_path / "more", run, pairwise_trials=22, seed="p")
    assert error.value.problems == ["pairwise trials (--pairwise-trials): 22 asked, but 7 drawn clips x 3 pairs of "
                                    "methods give at most 21 different trials (a pair is never asked twice on one clip)"]
    with pytest.raises(StudyError) as error:   # every drawn clip has another clip of its speaker: 7 x 3 methods
        make_study_from_run(tmp_path / "more", run, match_trials=22, seed="p")
    assert "match trials (--match-trials): 22 asked, but 7 drawn clips whose speaker has another clip x 3 " \
           "methods give at most 21 different trials" in str(error.value)
    with pytest.raises(StudyError) as error:
        make_study_from_run(tmp_path / "more", run, trials_per_identity=5, seed="p")
    assert str(error.value) == ("trials per identity (--trials-per-identity): 5 asked, but 'alice' has 4 clips, "
                                "'bob' has 3 clips (a clip is drawn once); at most 3")
    with pytest.raises(StudyError, match=r"'alice' has 4 clips \(a clip is drawn once\); at most 4$"):
        make_study_from_run(tmp_path / "more", run, identities=["alice"], trials_per_identity=5, seed="p")
    assert not (tmp_path / "more").exists()
    # the most possible per identity is accepted: every clip once
    study = make_study_from_run(tmp_path / "three", run, trials_per_identity=3, seed="p")
    clips = [t.clip for t in study.trials]
    assert len(clips) == 6 and len(set(clips)) == 6


def test_a_failed_build_leaves_nothing_and_an_existing_study_untouched(tmp_path, capsys):
    run = fake_run(tmp_path, sound=False)
    # one video plays but cannot be re-encoded (1 px wide: no 4:2:0)
    odd = next(run.glob("imac/*/*.mp4"))
    write_video(odd, shade=90, tone=None, frames=2, size=1, pix_fmt="yuv444p")
    # the videos are copied, then dubbing the match trial fails (no sound to dub with)
    with pytest.raises(StudyError, match="match trials: .*no audio stream"):
        make_study_from_run(tmp_path / "study", run, match_trials=1, seed="m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]          # no study, no hidden folder
    # re-encoding fails on the copied files: nothing is left either
    code = make_study_command.main(["--out", str(tmp_path / "study"), "--run", str(run), "--constant-bitrate", "500"])
    assert code == 2 and f"python -m userstudy.make_study: error: {odd}: cannot be re-encoded" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    make_study_from_run(tmp_path / "study", run, seed="m")
    before = {p: p.read_bytes() for p in (tmp_path / "study").rglob("*") if p.is_file()}
    with pytest.raises(StudyError, match="exists already"):
        make_study_from_run(tmp_path / "study", run, pairwise_trials=1, seed="other")
    assert {p: p.read_bytes() for p in (tmp_path / "study").rglob("*") if p.is_file()} == before
    # an empty folder made beforehand becomes the study
    (tmp_path / "empty").mkdir()
    assert len(make_study_from_run(tmp_path / "empty", run, seed="m").trials) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "runs", "study"]


def test_a_run_video_that_cannot_play_is_refused_naming_it(tmp_path):
    run = fake_run(tmp_path)
    broken = run / "static" / "alice" / sorted(p.name for p in (run / "static" / "alice").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:200])                          # cut before its index
    make_study_from_run(tmp_path / "plain", run, seed="s")                 # the static videos are not shown
    with pytest.raises(StudyError) as error:                               # ... until a frozen check shows them
        make_study_from_run(tmp_path / "study", run, frozen_checks=len(list(run.glob("static/*/*.mp4"))), seed="s")
    assert [p for p in error.value.problems if p.startswith(f"{broken}: cannot be opened (")]
    assert not (tmp_path / "study").exists()
