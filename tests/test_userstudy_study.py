"""Study folders: make_study from folders of videos per method, study.json checks, participant plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from userstudy_data.media import tagged_video
from userstudy_data.helpers import METHODS, make_study

from userstudy import make_study as make_study_cli
from userstudy.schema import PAPER_CRITERIA
from userstudy.study import BLIND_LETTERS, StudyError, load_study, participant_plan

ROOT = Path(__file__).resolve().parents[1]


def test_make_study_command_copies_videos_and_writes_the_study_file(tmp_path, capsys):
    for method in ("ours", "base"):
        (tmp_path / "gen" / method).mkdir(parents=True)
        for name in ("clip_a", "clip_b"):
            (tmp_path / "gen" / method / f"{name}.mp4").write_bytes(tagged_video(f"{method}/{name}"))
    (tmp_path / "refs").mkdir()
    for name in ("clip_a", "clip_b"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "refs" / f"{name}.png")
    code = make_study_cli.main(["--out", str(tmp_path / "study"), "--method", f"ours={tmp_path / 'gen/ours'}",
                                "--method", f"base={tmp_path / 'gen/base'}", "--references", str(tmp_path / "refs"),
                                "--title", "My study"])
    assert code == 0, capsys.readouterr().err
    study = load_study(tmp_path / "study")
    assert study.title == "My study" and study.methods == ("ours", "base")
    assert [c.name for c in study.criteria] == list(PAPER_CRITERIA)
    assert [t.id for t in study.trials] == ["clip_a", "clip_b"]
    trial = study.trials[1]
    assert study.file(trial.videos["base"]).read_bytes() == tagged_video("base/clip_b")
    assert trial.reference == "references/clip_b.png"
    # a second run must not overwrite the study (its seed keys every participant's plan)
    assert make_study_cli.main(["--out", str(tmp_path / "study"), "--method", f"ours={tmp_path / 'gen/ours'}",
                                "--method", f"base={tmp_path / 'gen/base'}"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_make_study_lists_videos_missing_for_a_method(tmp_path):
    for method, names in (("a", ["t1", "t2", "t3"]), ("b", ["t1", "t3"]), ("c", ["t1"])):
        (tmp_path / method).mkdir()
        for name in names:
            (tmp_path / method / f"{name}.mp4").write_bytes(b"v")
    with pytest.raises(StudyError) as error:
        make_study_cli.make_study(tmp_path / "study", {m: tmp_path / m for m in "abc"})
    assert error.value.problems == ["video 't2' is missing for b, c", "video 't3' is missing for c"]
    assert not (tmp_path / "study" / "study.json").exists()


def test_a_video_that_is_a_folder_or_a_broken_link_is_named(tmp_path):
    for method in "abc":
        (tmp_path / method).mkdir()
        (tmp_path / method / "t0.mp4").write_bytes(tagged_video(method))
    (tmp_path / "a" / "t1.mp4").write_bytes(tagged_video("a1"))
    (tmp_path / "b" / "t1.mp4").mkdir()
    (tmp_path / "c" / "t1.mp4").symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(StudyError) as error:
        make_study_cli.make_study(tmp_path / "study", {m: tmp_path / m for m in "abc"})
    assert error.value.problems == [f"video 't1' is missing for b, c ({tmp_path / 'b' / 't1.mp4'} is a folder or a "
                                    f"broken link; {tmp_path / 'c' / 't1.mp4'} is a folder or a broken link)"]


def test_make_study_refuses_no_criterion_or_clashing_ones_and_names_no_hidden_folder(tmp_path):
    for method in "ab":
        (tmp_path / method).mkdir()
        (tmp_path / method / "t1.mp4").write_bytes(tagged_video(method))
    folders = {m: tmp_path / m for m in "ab"}
    for criteria, said in (([], "criteria (--criteria): the list is empty; give at least one criterion"),
                           (["a", "A"], "criteria (--criteria): names must differ in their letters and digits, "
                                        "got ['a', 'A']")):
        with pytest.raises(StudyError) as error:   # [] was taken for the paper's four
            make_study_cli.make_study(tmp_path / "study", folders, criteria=criteria)
        assert error.value.problems[0].startswith(said) and ".tmp-" not in str(error.value)
    # a problem that only the check of the built study file finds names --out's study.json
    with pytest.raises(StudyError) as error:
        make_study_cli.make_study(tmp_path / "study", folders, completion_url="ftp://x")
    assert str(error.value) == f"{tmp_path / 'study' / 'study.json'}: completion_url: an http(s) address, got 'ftp://x'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_study_file_problems_are_all_reported(tmp_path):
    folder = make_study(tmp_path)
    document = json.loads((folder / "study.json").read_text())
    document["trials"][0]["videos"].pop("mya")
    document["trials"][1]["id"] = document["trials"][2]["id"]
    document["trials"][2]["videos"]["s2g"] = "videos/none.mp4"
    document["criteria"] = ["visual quality", "Visual Quality"]
    (folder / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError) as error:
        load_study(folder)
    text = "\n".join(error.value.problems)
    assert "missing ['mya']" in text and "id repeats" in text and "does not exist" in text
    assert "criteria: names must differ" in text
    (folder / "study.json").write_text("{oops")
    with pytest.raises(StudyError, match="not valid JSON"):
        load_study(folder)


def test_plans_blind_each_trial_afresh(tmp_path):
    study = load_study(make_study(tmp_path, trials=6))
    plan = participant_plan(study, "P-1")
    assert sorted(p.trial.id for p in plan) == sorted(t.id for t in study.trials)
    for planned in plan:
        ids = [b for b, _ in planned.shown]
        assert sorted(m for _, m in planned.shown) == sorted(METHODS)
        assert len(set(ids)) == len(METHODS) and set(ids) <= set(BLIND_LETTERS)
        for method in METHODS:
            assert planned.method_of(planned.blind_id_of(method)) == method
    # the id a method gets changes from trial to trial, so ids carry nothing across trials
    assert len({p.blind_id_of("imac") for p in plan}) > 1


def test_plans_are_the_same_in_another_process(tmp_path):
    folder = make_study(tmp_path, trials=5)
    here = [(p.trial.id, p.shown) for p in participant_plan(load_study(folder), "P-XYZ")]
    code = ("import json, sys; from userstudy.study import load_study, participant_plan; "
            "print(json.dumps([(p.trial.id, p.shown) for p in participant_plan(load_study(sys.argv[1]), 'P-XYZ')]))")
    other = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == json.loads(json.dumps(here))


def test_an_unknown_key_is_named_with_its_section(tmp_path):
    folder = make_study(tmp_path)
    document = json.loads((folder / "study.json").read_text())
    document["titel"] = document.pop("title")
    document["trials"][1]["refrence"] = "references/t2.png"
    document["criteria"][0]["questoin"] = "Which is best?"
    (folder / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError) as error:
        load_study(folder)
    message = str(error.value)
    assert ("study.json: unknown key 'titel' (known: completion_code, completion_url, consent, criteria, "
            "instructions, methods, play_through, preference_levels, seed, title, trials)") in message
    assert ("trials[1] ('t2'): unknown key 'refrence' (known: check, clip, criteria, id, kind, method, "
            "reference, videos)") in message
    assert "criteria[0]: unknown key 'questoin' (known: name, question)" in message
    assert len(error.value.problems) == 3


def test_a_value_of_the_wrong_type_is_named_with_its_section(tmp_path):
    folder = make_study(tmp_path)
    good = json.loads((folder / "study.json").read_text())
    for section, key, value in [("study.json", "seed", [5]), ("study.json", "methods", "imac"),
                                ("study.json", "title", ["My", "study"]), ("study.json", "criteria", "visual quality"),
                                ("trials[0] ('t1')", "reference", 5), ("trials[0] ('t1')", "videos", ["a.mp4"]),
                                ("criteria[1]", "question", None)]:
        document = json.loads(json.dumps(good))
        entry = {"study.json": document, "trials[0] ('t1')": document["trials"][0],
                 "criteria[1]": document["criteria"][1]}[section]
        entry[key] = value
        (folder / "study.json").write_text(json.dumps(document))
        with pytest.raises(StudyError) as error:
            load_study(folder)
        assert f"{section}: {key!r} must be " in str(error.value), (section, key)
        assert error.value.problems == [p for p in error.value.problems if key in p], error.value.problems
    # a trial field of the wrong type, and a reference of null (no reference), which is allowed
    document = json.loads(json.dumps(good))
    document["trials"][0]["id"] = 7
    document["trials"][1]["reference"] = None
    (folder / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError) as error:
        load_study(folder)
    assert error.value.problems == ["trials[0] (7): 'id' must be a string, got 7 (a number)"]
    document["trials"][0]["id"] = "t1"
    (folder / "study.json").write_text(json.dumps(document))
    assert load_study(folder).trials[1].reference is None


def test_an_integer_seed_keys_the_same_plans_as_its_decimal_text(tmp_path):
    folder = make_study(tmp_path)
    document = json.loads((folder / "study.json").read_text())
    plans = []
    for seed in (1234, "1234"):
        document["seed"] = seed
        (folder / "study.json").write_text(json.dumps(document))
        plans.append(participant_plan(load_study(folder), "p01"))
    assert plans[0] == plans[1]
