"""The server's pairwise trials (compare two methods; matched versus mismatched speech), the consent
text and the completion code, over HTTP on 127.0.0.1. The un-blinded answers are checked against the
participant's plan read directly (which video was shown left)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from userstudy_data.helpers import get_plan, post_json, request

from userstudy.pairwise import analyze_pairwise, read_pairwise
from userstudy.serve import make_server, serve_in_thread
from userstudy.store import PAIRWISE_COLUMNS
from userstudy.study import StudyError, load_study, planned_trial

CONSENT = "You will watch short videos.\nYour answers are kept anonymous."
SYNC = "sound-video synchronization"


def write_study(root: Path, **extra) -> Path:
    folder = root / "study"
    for name in ("a1", "b1", "c1", "a2", "b2", "imac_own", "imac_other"):
        path = folder / "videos" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"video {name}|".encode() * 20)
    document = {
        "title": "Pairwise test", "seed": "s", "methods": ["imac", "s2g", "mya"],
        "criteria": ["visual quality", SYNC],
        "consent": CONSENT, "completion_code": "C0DE42", "completion_url": "https://example.org/done?cc=C0DE42",
        "preference_levels": 5, "play_through": False,
        "trials": [
            {"id": "r1", "videos": {"imac": "videos/a1.mp4", "s2g": "videos/b1.mp4", "mya": "videos/c1.mp4"}},
            {"id": "p1", "kind": "compare", "videos": {"mya": "videos/c1.mp4", "imac": "videos/a2.mp4"}},
            {"id": "p2", "kind": "compare", "videos": {"imac": "videos/a1.mp4", "s2g": "videos/b2.mp4"}},
            {"id": "m1", "kind": "match", "method": "imac", "criteria": [SYNC],
             "videos": {"matched": "videos/imac_own.mp4", "mismatched": "videos/imac_other.mp4"}},
        ],
    }
    document.update(extra)
    (folder / "study.json").write_text(json.dumps(document))
    return folder


@pytest.fixture
def served(tmp_path):
    folder = write_study(tmp_path)
    server = make_server(folder, "127.0.0.1", 0)
    serve_in_thread(server)
    yield server, server.server_address[1], folder
    server.shutdown()
    server.server_close()


def register(port: int, participant: str) -> str:
    status, reply = post_json(port, "/api/participants", {"participant": participant, "consent": True})
    assert status == 201, reply
    return reply["token"]


def test_consent_is_required_and_recorded(served):
    server, port, _ = served
    status, reply = post_json(port, "/api/participants", {"participant": "alice"})
    assert status == 400 and reply["consent_required"] and "consent" in reply["error"]
    status, reply = post_json(port, "/api/participants", {"participant": "alice", "consent": "yes"})
    assert status == 400
    register(port, "alice")
    assert list(server.store.consents()) == ["alice"]
    _, study = 0, json.loads(request(port, "GET", "/api/study")[2])
    assert study["consent"] == CONSENT and study["preference_levels"] == 5 and study["play_through"] is False


def test_pairwise_answers_are_unblinded_by_the_shown_sides(served):
    server, port, folder = served
    study = load_study(folder)
    token = register(port, "bob")
    status, plan = get_plan(port, "bob", token)
    assert status == 200
    by_id = {t["trial"]: t for t in plan["trials"]}
    assert by_id["p1"]["kind"] == by_id["m1"]["kind"] == "pairwise" and by_id["r1"]["kind"] == "rank"
    assert len(by_id["p1"]["videos"]) == 2 and by_id["m1"]["criteria"] == [SYNC]
    assert by_id["p1"]["criteria"] == ["visual quality", SYNC]
    answers = {"p1": {"visual quality": 2, SYNC: -1}, "p2": {"visual quality": 0, SYNC: 1}, "m1": {SYNC: 2}}
    for trial, preferences in answers.items():
        status, reply = post_json(port, "/api/submit", {"participant": "bob", "token": token, "trial": trial,
                                                        "submission": f"sub-{trial}-0001", "preferences": preferences})
        assert status == 200 and reply["saved"] and not reply["duplicate"], reply
        assert not reply["complete"] and "completion" not in reply      # the ranking trial is not saved yet
    table = pd.read_csv(folder / "pairwise.csv", dtype=str, keep_default_na=False)
    assert tuple(table.columns) == PAIRWISE_COLUMNS
    for row in table.itertuples():
        planned = planned_trial(study, "bob", row.trial)
        left_slot = planned.shown[0][1]
        first_slot = planned.trial.slots(study.methods)[0]        # video a
        left_value = answers[row.trial][row.criterion]
        expected = left_value if left_slot == first_slot else -left_value
        assert int(row.preference) == expected
        assert int(row.a_position) == (1 if left_slot == first_slot else 2)
        if row.trial == "p1":   # a = the first of the study's methods: imac before mya
            assert (row.method_a, row.method_b, row.kind) == ("imac", "mya", "compare")
        if row.trial == "m1":
            assert (row.method_a, row.method_b, row.kind) == ("imac", "imac", "match")
    # the file is what the pairwise analysis reads: the matched video was picked whenever shown left
    analysis = analyze_pairwise(read_pairwise(folder / "pairwise.csv"), bootstrap=0)
    match = analysis.speech_match.set_index("method").loc["imac"]
    assert match["answers"] == 1 and match["picked_matched"] == int(int(table[table.trial == "m1"].preference.iloc[0]) > 0)
    # the plan gives the saved answers back as the page holds them (for the left video)
    _, plan = get_plan(port, "bob", token)
    assert {t["trial"]: t["saved"] for t in plan["trials"] if t["kind"] == "pairwise"} == answers


def test_bad_preferences_are_refused_and_a_changed_retry_is_409(served):
    _, port, _ = served
    token = register(port, "carol")
    base = {"participant": "carol", "token": token, "trial": "p1", "submission": "sub-carol-0001"}
    for preferences, message in [({"visual quality": 3, SYNC: 0}, "one of -2, -1, 0, 1, 2"),
                                 ({"visual quality": 1.0, SYNC: 0}, "got 1.0"),
                                 ({"visual quality": True, SYNC: 0}, "got True"),
                                 ({"visual quality": 1}, "preferences must give each of"),
                                 ([1, 2], "preferences must give each of")]:
        status, reply = post_json(port, "/api/submit", base | {"preferences": preferences})
        assert status == 400 and message in reply["error"], (preferences, reply)
    status, reply = post_json(port, "/api/submit", base | {"trial": "r1", "preferences": {"visual quality": 1, SYNC: 1}})
    assert status == 400
    good = base | {"preferences": {"visual quality": 1, SYNC: 0}}
    assert post_json(port, "/api/submit", good)[0] == 200
    status, reply = post_json(port, "/api/submit", good)
    assert status == 200 and reply["duplicate"]
    status, reply = post_json(port, "/api/submit", base | {"preferences": {"visual quality": -1, SYNC: 0}})
    assert status == 409 and reply["conflict"]
    status, reply = post_json(port, "/api/submit", base | {"trial": "p2", "preferences": {"visual quality": 1, SYNC: 0}})
    assert status == 409


def test_the_completion_code_comes_once_every_trial_is_saved(served):
    _, port, folder = served
    study = load_study(folder)
    token = register(port, "dan")
    for trial in ("p1", "p2", "m1"):
        preferences = {c: 0 for c in study.criteria_of(study.trial(trial))}
        post_json(port, "/api/submit", {"participant": "dan", "token": token, "trial": trial, "preferences": preferences})
    _, plan = get_plan(port, "dan", token)
    assert plan["complete"] is False and "completion" not in plan
    ids = [v["id"] for v in next(t for t in plan["trials"] if t["trial"] == "r1")["videos"]]
    status, reply = post_json(port, "/api/submit", {"participant": "dan", "token": token, "trial": "r1",
                                                    "rankings": {"visual quality": ids, SYNC: ids}})
    assert status == 200 and reply["complete"]
    assert reply["completion"] == {"code": "C0DE42", "url": "https://example.org/done?cc=C0DE42"}
    _, plan = get_plan(port, "dan", token)
    assert plan["completion"]["code"] == "C0DE42"


def test_a_match_video_report_names_the_method_and_the_speech(served):
    server, port, _ = served
    token = register(port, "erin")
    _, plan = get_plan(port, "erin", token)
    videos = next(t for t in plan["trials"] if t["trial"] == "m1")["videos"]
    for video in videos:
        status, _ = post_json(port, "/api/report", {"participant": "erin", "token": token, "trial": "m1",
                                                    "video": video["id"]})
        assert status == 200
    assert sorted(r[2] for r in server.store.video_reports()) == ["imac (matched speech)", "imac (mismatched speech)"]


@pytest.mark.parametrize("change, message", [
    ({"trials": [{"id": "p", "kind": "compare", "videos": {"imac": "videos/a1.mp4"}}]}, "two of the study's methods"),
    ({"trials": [{"id": "m", "kind": "match", "method": "nope",
                  "videos": {"matched": "videos/a1.mp4", "mismatched": "videos/b1.mp4"}}]}, "names the method"),
    ({"trials": [{"id": "m", "kind": "match", "method": "imac", "videos": {"own": "videos/a1.mp4",
                                                                            "other": "videos/b1.mp4"}}]}, "'matched'"),
    ({"trials": [{"id": "p", "kind": "pair", "videos": {}}]}, "kind must be one of rank, compare, match"),
    ({"preference_levels": 4}, "preference_levels: 3"),
    ({"completion_url": "javascript:alert(1)"}, "completion_url: an http(s) address"),
    ({"play_through": "yes"}, "'play_through' must be true or false"),
])
def test_bad_pairwise_study_files_are_named(tmp_path, change, message):
    folder = write_study(tmp_path, **change)
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_study(folder)


def test_a_database_of_the_first_schema_is_upgraded_in_place(tmp_path):
    """study.db from before pairwise answers (schema 1, no preferences or consents table) opens, keeps
    its answers and gains the new tables."""
    import sqlite3

    from userstudy.store import AnswerStore

    store = AnswerStore(tmp_path / "study.db", tmp_path / "rankings.csv")
    rows = [("ann", "t1", "q", m, r, r, "sub-ann-00001", "2026-01-01T00:00:00Z") for r, m in enumerate("abc", 1)]
    assert store.append(rows, "sub-ann-00001")
    store.close()
    db = sqlite3.connect(tmp_path / "study.db")
    db.executescript("DROP TABLE preferences; DROP TABLE consents; PRAGMA user_version = 1;")
    db.close()
    store = AnswerStore(tmp_path / "study.db", tmp_path / "rankings.csv", tmp_path / "pairwise.csv")
    assert store.saved("ann") == {"t1": {"q": ["a", "b", "c"]}}
    store.consent("ann", "2026-01-02T00:00:00Z")
    assert store.consents() == {"ann": "2026-01-02T00:00:00Z"}
    assert sqlite3.connect(tmp_path / "study.db").execute("PRAGMA user_version").fetchone()[0] == 2
    store.close()


def test_an_answer_saved_again_is_kept_by_the_server_and_counted_once_by_the_analysis(served, tmp_path, capsys):
    from userstudy import analyze as analyze_command

    server, port, folder = served
    study = load_study(folder)
    token = register(port, "dan")
    saves = [{"visual quality": 2, SYNC: -1}, {"visual quality": -1, SYNC: 0}]   # for the left video
    for number, preferences in enumerate(saves):
        status, reply = post_json(port, "/api/submit", {"participant": "dan", "token": token, "trial": "p1",
                                                        "submission": f"sub-dan-000{number}",
                                                        "preferences": preferences})
        assert status == 200 and reply["saved"], reply
    table = pd.read_csv(folder / "pairwise.csv", dtype=str, keep_default_na=False)
    assert len(table) == 4                                   # the server keeps both saves (its history)
    # what the analysis must count: the second save, un-blinded with the plan read directly
    planned = planned_trial(study, "dan", "p1")
    a_left = planned.shown[0][1] == planned.trial.slots(study.methods)[0]
    quality_for_a = -1 if a_left else 1
    code = analyze_command.main([str(folder / "pairwise.csv"), "--out", str(tmp_path / "out"), "--bootstrap", "0"])
    assert code == 0, capsys.readouterr().err
    assert "1 participant, 2 answers (2 replaced by a later answer)" in capsys.readouterr().out
    rates = pd.read_csv(tmp_path / "out" / "win_rates.csv").set_index("criterion")
    assert rates.loc["visual quality", ["answers", "wins_a", "wins_b", "ties"]].tolist() == (
        [1, 1, 0, 0] if quality_for_a > 0 else [1, 0, 1, 0])
    assert rates.loc[SYNC, ["answers", "wins_a", "wins_b", "ties"]].tolist() == [1, 0, 0, 1]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Answers replaced: 2**" in report and "sub-dan-0000" in report


def test_serve_takes_the_study_json_for_its_folder(tmp_path):
    folder = write_study(tmp_path)
    server = make_server(folder / "study.json", "127.0.0.1", 0)
    try:
        assert server.study.root == folder.resolve()
    finally:
        server.server_close()
    with pytest.raises(StudyError, match=r"consent.txt: is a file, not a study folder"):
        (folder / "consent.txt").write_text(CONSENT)
        make_server(folder / "consent.txt", "127.0.0.1", 0)
