"""The study server on loopback: blinding, submissions (good and malformed), concurrency, restarts,
path traversal. Servers bind to 127.0.0.1 on an OS-chosen port; request loops are bounded in count
and time."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pandas as pd
import pytest
from userstudy_data.helpers import (
    CRITERIA,
    METHODS,
    get_json,
    get_plan,
    join,
    make_study,
    post_json,
    request,
    video_bytes,
)

from userstudy.rankings import load_rankings
from userstudy.schema import SERVER_COLUMNS
from userstudy.serve import Limits, make_server, serve_in_thread
from userstudy.store import AnswerStore, StoreError
from userstudy.study import StudyError, load_study, participant_plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study_dir(tmp_path) -> Path:
    return make_study(tmp_path)


@pytest.fixture
def server(study_dir):
    server = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


def port_of(server) -> int:
    return server.server_address[1]


def answer(plan_trial: dict, reverse: bool = False) -> dict:
    """Rank a planned trial's videos in shown order (or reversed) on every criterion."""
    ids = [v["id"] for v in plan_trial["videos"]]
    return {c: ids[::-1] if reverse else ids for c in CRITERIA}


def plan_of(port: int, participant: str) -> tuple[str, dict]:
    """Register ``participant`` (as a platform's URL would) and return (token, plan)."""
    token = join(port, participant)
    status, plan = get_plan(port, participant, token)
    assert status == 200, plan
    return token, plan


def read_csv(study_dir: Path) -> pd.DataFrame:
    return pd.read_csv(study_dir / "rankings.csv", dtype=str, keep_default_na=False)


# -- the page and the plan ------------------------------------------------------------------------


def test_binds_to_loopback_and_serves_the_page(server):
    assert server.server_address[0] == "127.0.0.1"
    status, headers, body = request(port_of(server), "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="announcer"' in body and b"aria-live" in body
    for asset in ("/static/study.js", "/static/study.css"):
        assert request(port_of(server), "GET", asset)[0] == 200
    status, study = get_json(port_of(server), "/api/study")
    assert [c["name"] for c in study["criteria"]] == list(CRITERIA) and study["trials"] == 3


def test_new_participant_ids_are_fresh(server):
    replies = [post_json(port_of(server), "/api/participants", {}) for _ in range(5)]
    assert {status for status, _ in replies} == {201}
    ids = {reply["participant"] for _, reply in replies}
    assert len(ids) == 5 and all(re.fullmatch(r"P-[A-Z2-9]{8}", i) for i in ids)
    tokens = {reply["token"] for _, reply in replies}
    assert len(tokens) == 5 and all(re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", t) for t in tokens)


def test_plan_is_blinded_randomised_and_stable(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "alice")
    text = json.dumps(plan)
    for method in METHODS:  # neither method names nor file paths reach the page
        assert method not in text
    assert "videos/" not in text
    assert get_plan(port, "alice", token)[1] == plan  # the same page when coming back
    orders, positions = set(), set()
    study = load_study(study_dir)
    for i in range(30):
        planned = participant_plan(study, f"p{i}")
        orders.add(tuple(p.trial.id for p in planned))
        positions.add(tuple(m for _, m in planned[0].shown))
    assert len(orders) > 1 and len(positions) > 1  # order and positions really vary


def test_media_serves_the_right_file_with_ranges(server, study_dir):
    port = port_of(server)
    plan = plan_of(port, "bob")[1]
    planned = participant_plan(load_study(study_dir), "bob")
    for trial, expected in zip(plan["trials"], planned):
        for video in trial["videos"]:
            method = expected.method_of(video["id"])
            status, headers, body = request(port, "GET", video["url"])
            assert status == 200 and body == video_bytes(method, trial["trial"])
            assert headers["Content-Type"] == "video/mp4" and headers["Accept-Ranges"] == "bytes"
    url = plan["trials"][0]["videos"][0]["url"]
    full = request(port, "GET", url)[2]
    status, headers, body = request(port, "GET", url, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == full[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(full)}"
    status, _, body = request(port, "GET", url, headers={"Range": "bytes=-5"})
    assert status == 206 and body == full[-5:]
    assert request(port, "GET", url, headers={"Range": f"bytes={len(full) + 5}-"})[0] == 416
    status, headers, body = request(port, "HEAD", url)
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(full)


# -- submissions ----------------------------------------------------------------------------------


def test_an_unknown_participant_is_told_so_before_the_answer_is_checked(server):
    """Before, a save or a report from an id the server never registered got 400 "rank each of the videos
    ... exactly once" (the videos of a plan made up for the unknown id), not the README's 404."""
    port = port_of(server)
    token, plan = plan_of(port, "dana")
    first = plan["trials"][0]
    for path, payload in (("/api/submit", {"participant": "ghost", "token": token, "trial": first["trial"],
                                           "submission": "sub-00000009", "rankings": answer(first)}),
                          ("/api/report", {"participant": "ghost", "token": token, "trial": first["trial"],
                                           "video": first["videos"][0]["id"]})):
        status, reply = post_json(port, path, payload)
        assert status == 404 and reply["unknown"] is True and "no participant has the id 'ghost'" in reply["error"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_http_methods_get_a_json_405_naming_the_methods_used(server, method):
    """Before, http.server's own HTML "501 Unsupported method"."""
    status, headers, body = request(port_of(server), method, "/api/submit", b"{}", {"Content-Length": "2"})
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"error": f"{method} is not used by the study's server (GET, HEAD, POST)"}


def test_submission_is_unblinded_into_the_analysis_format(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "carol")
    first = plan["trials"][0]
    ranking = answer(first, reverse=True)
    status, reply = post_json(port, "/api/submit", {"participant": "carol", "token": token, "trial": first["trial"],
                                                     "submission": "sub-00000001", "rankings": ranking})
    assert status == 200 and reply["saved"] and not reply["duplicate"]
    table = read_csv(study_dir)
    assert list(table.columns) == list(SERVER_COLUMNS)
    assert len(table) == len(CRITERIA) * len(METHODS)
    planned = next(p for p in participant_plan(load_study(study_dir), "carol") if p.trial.id == first["trial"])
    for criterion in CRITERIA:
        rows = table[table["criterion"] == criterion]
        expected = [planned.method_of(b) for b in ranking[criterion]]
        assert rows.sort_values("rank")["method"].tolist() == expected
        # shown order reversed: the video shown last was ranked first
        assert rows.set_index("method")["position"].astype(int).to_dict() == {
            m: planned.position_of(m) for m in METHODS}
    assert set(table["submission"]) == {"sub-00000001"} and set(table["participant"]) == {"carol"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", table["submitted_at"][0])
    # the page gets the saved answer back, in blinded ids
    again = get_plan(port, "carol", token)[1]["trials"][0]
    assert again["saved"] == ranking
    checked = load_rankings(study_dir / "rankings.csv")
    assert checked.blocks() == len(CRITERIA)


def test_a_retried_submission_is_stored_once(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "dan")
    first = plan["trials"][0]
    payload = {"participant": "dan", "token": token, "trial": first["trial"], "submission": "retry-123456",
               "rankings": answer(first)}
    replies = [post_json(port, "/api/submit", payload) for _ in range(3)]
    assert [status for status, _ in replies] == [200, 200, 200]
    assert [reply["duplicate"] for _, reply in replies] == [False, True, True]
    assert len(read_csv(study_dir)) == len(CRITERIA) * len(METHODS)


def test_a_later_save_of_the_same_trial_counts(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "erin")
    first = plan["trials"][0]
    for i, reverse in enumerate([False, True]):
        payload = {"participant": "erin", "token": token, "trial": first["trial"], "submission": f"erin-save-{i}",
                   "rankings": answer(first, reverse)}
        assert post_json(port, "/api/submit", payload)[0] == 200
    assert get_plan(port, "erin", token)[1]["trials"][0]["saved"] == answer(first, True)
    checked = load_rankings(study_dir / "rankings.csv")
    assert checked.blocks() == len(CRITERIA) and len(checked.superseded) == len(CRITERIA)


def malformed_cases(trial: dict, token: str) -> list[tuple[str, object, str]]:
    ids = [v["id"] for v in trial["videos"]]
    good = {"participant": "fay", "token": token, "trial": trial["trial"], "rankings": {c: ids for c in CRITERIA}}
    return [
        ("participant id with a newline", good | {"participant": "fay\n"}, "participant id"),
        ("trial id with a newline", good | {"trial": trial["trial"] + "\n"}, "unknown trial"),
        ("submission id with a newline", good | {"submission": "abcdefgh\n"}, "submission id"),
        ("not an object", [1, 2], "JSON object"),
        ("bad participant", good | {"participant": "../etc"}, "participant id"),
        ("no participant", {k: v for k, v in good.items() if k != "participant"}, "participant id"),
        ("unknown trial", good | {"trial": "nope"}, "unknown trial"),
        ("bad submission id", good | {"submission": "x"}, "submission id"),
        ("rankings not a map", good | {"rankings": ids}, "rankings must map"),
        ("missing criterion", good | {"rankings": {CRITERIA[0]: ids}}, f"not ranked: {CRITERIA[1]}"),
        ("unknown criterion", good | {"rankings": {**good["rankings"], "beauty": ids}}, "unknown: beauty"),
        ("incomplete ranking", good | {"rankings": {**good["rankings"], CRITERIA[0]: ids[:2]}}, "exactly once"),
        ("video twice", good | {"rankings": {**good["rankings"], CRITERIA[0]: [ids[0]] * 3}}, "exactly once"),
        ("foreign video id", good | {"rankings": {**good["rankings"], CRITERIA[1]: ids[:2] + ["ZZ"]}}, "exactly once"),
        ("method names instead of ids", good | {"rankings": {c: list(METHODS) for c in CRITERIA}}, "exactly once"),
    ]


def test_malformed_submissions_get_4xx_and_write_nothing(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "fay")
    first = plan["trials"][0]
    for name, payload, message in malformed_cases(first, token):
        status, reply = post_json(port, "/api/submit", payload)
        assert status == 400, name
        assert message in reply["error"], (name, reply)
    status, _, body = request(port, "POST", "/api/submit", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and b"not JSON" in body
    status, _, body = request(port, "POST", "/api/submit", b"{}", {"Content-Type": "text/plain"})
    assert status == 415
    status, _, body = request(port, "POST", "/api/submit", b"x" * 70_000, {"Content-Type": "application/json"})
    assert status == 413
    assert request(port, "GET", "/api/submit")[0] == 405
    assert request(port, "GET", "/api/plan?participant=%2E%2E")[0] == 400
    assert not (study_dir / "rankings.csv").exists()


# -- path traversal -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/study.json", "/rankings.csv", "/videos/imac/t1.mp4", "/../study.json", "/static/../study.json",
    "/static/%2e%2e/serve.py", "/static/..%2F..%2Fuserstudy%2Fserve.py", "/static/serve.py",
    "/static/study.js/../../study.json", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/media/alice/t1/..%2F..%2Fstudy.json", "/media/alice/..%2Fstudy.json/A/B", "/media/../../etc/passwd",
    "/media/alice/t1/reference", "/media/alice/t1/imac", "/web/index.html", "/static/%00study.js",
])
def test_no_path_reaches_a_file_outside_the_routes(server, path):
    study_json = (Path(server.study.root) / "study.json").read_bytes()
    status, _, body = request(port_of(server), "GET", path)
    assert status == 404, path
    assert study_json not in body and b"root:" not in body and b"def " not in body


def test_study_file_paths_cannot_leave_the_folder(tmp_path, study_dir):
    document = json.loads((study_dir / "study.json").read_text())
    (tmp_path / "secret.mp4").write_bytes(b"secret")
    document["trials"][0]["videos"]["imac"] = "../secret.mp4"
    (study_dir / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError, match="inside the study folder"):
        load_study(study_dir)
    os.symlink(tmp_path / "secret.mp4", study_dir / "videos" / "link.mp4")
    document["trials"][0]["videos"]["imac"] = "videos/link.mp4"
    (study_dir / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError, match="outside the study folder"):
        load_study(study_dir)


# -- many participants at once, a kill -9 mid-burst, a restart ------------------------------------


def test_concurrent_submissions_are_all_kept_once(server, study_dir):
    port = port_of(server)
    participants = [f"c{i:02d}" for i in range(24)]
    plans = {p: plan_of(port, p) for p in participants}
    payloads = [{"participant": p, "token": plans[p][0], "trial": t["trial"], "submission": f"{p}-{t['trial']}-0000",
                 "rankings": answer(t, reverse=(i % 2 == 1))}
                for p in participants for i, t in enumerate(plans[p][1]["trials"])]
    # every submission is sent twice at once (a double click, a retry): 144 requests, 72 answers
    requests = payloads + payloads[::-1]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(post_json, port, "/api/submit", p) for p in requests]
        _, pending = wait(futures, timeout=60)
    assert not pending and time.monotonic() - started < 60
    replies = [f.result() for f in futures]
    assert all(status == 200 for status, _ in replies)
    assert sum(not r["duplicate"] for _, r in replies) == len(payloads)
    table = read_csv(study_dir)
    assert len(table) == len(payloads) * len(CRITERIA) * len(METHODS)
    counts = table.groupby("submission").size()
    assert set(counts.index) == {p["submission"] for p in payloads}
    assert set(counts) == {len(CRITERIA) * len(METHODS)}
    text = (study_dir / "rankings.csv").read_text()
    assert text.count("participant,trial") == 1 and text.endswith("\n")
    checked = load_rankings(study_dir / "rankings.csv")
    assert checked.blocks() == len(payloads) * len(CRITERIA) and checked.superseded.empty


def test_answers_survive_a_restart_in_process(study_dir):
    first = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(first)
    token, plan = plan_of(port_of(first), "gus")
    for trial in plan["trials"][:2]:
        payload = {"participant": "gus", "token": token, "trial": trial["trial"], "rankings": answer(trial)}
        assert post_json(port_of(first), "/api/submit", payload)[0] == 200
    first.shutdown()
    first.server_close()

    second = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(second)
    try:
        again = get_plan(port_of(second), "gus", token)[1]
        assert [t["saved"] is not None for t in again["trials"]] == [True, True, False]
        last = again["trials"][2]
        assert post_json(port_of(second), "/api/submit", {"participant": "gus", "token": token,
                                                           "trial": last["trial"], "rankings": answer(last)})[0] == 200
    finally:
        second.shutdown()
        second.server_close()
    assert load_rankings(study_dir / "rankings.csv").blocks() == 3 * len(CRITERIA)


class ServerProcess:
    """``python -m userstudy.serve`` in a child process on a fixed port (so that clients find it again
    after a restart)."""

    def __init__(self, study_dir: Path, port: int = 0, options: tuple[str, ...] = ()):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "userstudy.serve", "--study", str(study_dir), "--port", str(port), "--quiet",
             *options],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/; ..."
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"no address in {line!r}: {self.process.communicate(timeout=10)[1]}")
        self.port = int(match.group(1))

    def stop(self, sig: int = signal.SIGTERM) -> str:
        self.process.send_signal(sig)
        _, errors = self.process.communicate(timeout=10)
        return errors


def submit_until_acknowledged(current: dict, payload: dict, deadline: float) -> dict:
    """Send one submission until the server answers it (retrying through a kill and restart, as the page
    does: the same submission id). Returns the reply."""
    while time.monotonic() < deadline:
        try:
            status, reply = post_json(current["port"], "/api/submit", payload)
        except (OSError, ValueError, http.client.HTTPException):  # refused, reset, a reply cut off
            time.sleep(0.05)
            continue
        if status == 503:  # over the connection limits: the page tries again too
            time.sleep(0.05)
            continue
        assert status == 200, reply
        return reply
    raise AssertionError(f"submission {payload['submission']} never acknowledged")


def test_a_kill_9_mid_burst_loses_and_duplicates_nothing(study_dir):
    """The issue's test: 300 simultaneous submissions (100 participants x 3 trials) on 127.0.0.1, the
    server killed with SIGKILL once a third of them are acknowledged, restarted on the same port; every
    client retries until acknowledged. Every acknowledged answer is stored exactly once."""
    # One client address sends everything here, as a reverse proxy would: --max-per-client lifted.
    options = ("--max-connections", "256", "--max-per-client", "256")
    first = ServerProcess(study_dir, options=options)
    current = {"port": first.port}
    participants = [f"burst{i:03d}" for i in range(100)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        plans = dict(zip(participants, pool.map(lambda p: plan_of(current["port"], p), participants)))
    payloads = [{"participant": p, "token": plans[p][0], "trial": t["trial"],
                 "submission": f"{p}-{t['trial']}-burst", "rankings": answer(t, reverse=(i == 1))}
                for p in participants for i, t in enumerate(plans[p][1]["trials"])]
    assert len(payloads) == 300
    acknowledged: list[dict] = []
    killed = threading.Event()
    deadline = time.monotonic() + 60

    def client(payload):
        reply = submit_until_acknowledged(current, payload, deadline)
        acknowledged.append(reply)
        if len(acknowledged) >= 100 and not killed.is_set():
            killed.set()
        return reply

    second = None
    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            futures = [pool.submit(client, p) for p in payloads]
            assert killed.wait(timeout=30)
            first.stop(signal.SIGKILL)          # no clean shutdown, submissions in flight
            at_kill = len(acknowledged)
            second = ServerProcess(study_dir, port=current["port"], options=options)
            done, pending = wait(futures, timeout=max(1.0, deadline - time.monotonic()))
        assert not pending and time.monotonic() < deadline
        for future in done:
            future.result()
        assert at_kill < len(payloads)           # the kill really came mid-burst
        # Every answer is stored once: the submission ids in the database and the CSV are exactly the 300.
        store_check = AnswerStore(study_dir / "study.db")
        counts = store_check.submission_counts()
        store_check.close()
        assert sorted(counts) == sorted(p["submission"] for p in payloads)
        assert set(counts.values()) == {len(CRITERIA) * len(METHODS)}
        fresh = sum(not r["duplicate"] for r in acknowledged)
        print(f"acknowledged before the kill: {at_kill}; answered 'duplicate' (stored, reply lost): {300 - fresh}")
        assert len(acknowledged) == 300
        table = read_csv(study_dir)
        assert len(table) == 300 * len(CRITERIA) * len(METHODS)
        assert table.groupby("submission").size().to_dict() == counts
        # ... and each stored answer is the one that was sent (un-blinded through each plan)
        study = load_study(study_dir)
        payload = payloads[-1]
        planned = next(p for p in participant_plan(study, payload["participant"]) if p.trial.id == payload["trial"])
        rows = table[table["submission"] == payload["submission"]]
        for criterion in CRITERIA:
            methods = rows[rows["criterion"] == criterion].sort_values("rank")["method"].tolist()
            assert methods == [planned.method_of(b) for b in payload["rankings"][criterion]]
    finally:
        for process in (first, second):
            if process is not None and process.process.poll() is None:
                process.stop()


def test_acknowledged_answers_survive_a_killed_server(study_dir):
    process = ServerProcess(study_dir)
    acknowledged, tokens = [], {}
    try:
        for i in range(4):
            participant = f"k{i}"
            tokens[participant], plan = plan_of(process.port, participant)
            trial = plan["trials"][0]
            payload = {"participant": participant, "token": tokens[participant], "trial": trial["trial"],
                       "submission": f"kill-test-{i}", "rankings": answer(trial)}
            assert post_json(process.port, "/api/submit", payload)[0] == 200
            acknowledged.append(payload["submission"])
    finally:
        process.stop(signal.SIGKILL)
    process = ServerProcess(study_dir)
    try:
        assert get_plan(process.port, "k3", tokens["k3"])[1]["trials"][0]["saved"] is not None
        assert get_plan(process.port, "k3", tokens["k2"])[0] == 403   # another participant's token
    finally:
        process.stop()
    assert set(read_csv(study_dir)["submission"]) == set(acknowledged)


# -- honest replies: 2xx means "this exact answer is stored" ---------------------------------------


def test_a_changed_answer_under_an_old_submission_id_is_refused(server, study_dir):
    port = port_of(server)
    token, plan = plan_of(port, "ivy")
    trial = plan["trials"][0]
    payload = {"participant": "ivy", "token": token, "trial": trial["trial"], "submission": "ivy-save-0001",
               "rankings": answer(trial)}
    assert post_json(port, "/api/submit", payload)[0] == 200
    status, reply = post_json(port, "/api/submit", payload | {"rankings": answer(trial, reverse=True)})
    assert status == 409 and "different answer" in reply["error"] and reply["conflict"] is True
    # another participant reusing that id (for the same trial id)
    other_token, other_plan = plan_of(port, "jay")
    other = next(t for t in other_plan["trials"] if t["trial"] == trial["trial"])
    status, reply = post_json(port, "/api/submit", {"participant": "jay", "token": other_token,
                                                    "trial": trial["trial"], "submission": "ivy-save-0001",
                                                    "rankings": answer(other)})
    assert status == 409 and "another participant's" in reply["error"]
    # what is stored is the first answer, once, and the plan says so
    table = read_csv(study_dir)
    assert set(table["participant"]) == {"ivy"} and len(table) == len(CRITERIA) * len(METHODS)
    assert get_plan(port, "ivy", token)[1]["trials"][0]["saved"] == answer(trial)
    # the same answer again is a retry: 200, duplicate
    status, reply = post_json(port, "/api/submit", payload)
    assert status == 200 and reply["duplicate"] is True


def test_resume_tokens_and_unknown_ids(server):
    port = port_of(server)
    token = join(port, "kim")
    status, reply = post_json(port, "/api/participants", {"participant": "kim"})   # the id is taken
    assert status == 409 and reply["exists"] is True and "resume code" in reply["error"]
    status, reply = get_plan(port, "kimm", token)                                # a typo: not a new participant
    assert status == 404 and reply["unknown"] is True and "no participant" in reply["error"]
    assert get_plan(port, "kim", None)[0] == 403                                 # knowing the id is not enough
    assert get_plan(port, "kim", "AAAA-AAAA-AAAA")[0] == 403
    assert get_plan(port, "kim", token.lower().replace("-", " "))[0] == 200      # as typed by a person
    plan = get_plan(port, "kim", token)[1]
    trial = plan["trials"][0]
    status, reply = post_json(port, "/api/submit", {"participant": "kim", "token": "AAAA-AAAA-AAAA",
                                                    "trial": trial["trial"], "rankings": answer(trial)})
    assert status == 403
    status, reply = post_json(port, "/api/participants", {"participant": "bad id"})
    assert status == 400


def test_a_video_that_does_not_play_is_reported(server):
    port = port_of(server)
    token, plan = plan_of(port, "lea")
    trial = plan["trials"][1]
    video = trial["videos"][0]["id"]
    report = {"participant": "lea", "token": token, "trial": trial["trial"], "video": video}
    assert post_json(port, "/api/report", report) == (200, {"reported": True})
    assert post_json(port, "/api/report", report)[0] == 200                      # again: kept once
    assert post_json(port, "/api/report", report | {"video": "ZZ"})[0] == 400
    assert post_json(port, "/api/report", report | {"token": None})[0] == 403
    planned = next(p for p in participant_plan(server.study, "lea") if p.trial.id == trial["trial"])
    reports = server.store.video_reports()
    assert [(p, t, m) for p, t, m, _ in reports] == [("lea", trial["trial"], planned.method_of(video))]


# -- crafted requests get 4xx, never 500 ------------------------------------------------------------


def raw_exchange(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)   # all sent: a short body ends here
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_crafted_requests_get_4xx(server):
    port = port_of(server)
    token, plan = plan_of(port, "max")
    url = plan["trials"][0]["videos"][0]["url"]
    json_headers = {"Content-Type": "application/json"}
    cases = [
        ("30,000 nested [", request(port, "POST", "/api/submit", b"[" * 30_000, json_headers)),
        ("an integer of 5,000 digits", request(port, "POST", "/api/participants",
                                               b'{"participant": ' + b"1" * 5000 + b"}", json_headers)),
        ("Content-Length ²", raw_exchange(port, "POST /api/submit HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                                "application/json\r\nContent-Length: ²\r\n\r\n{}".encode())),
        ("Content-Length of 5,000 digits", raw_exchange(port, b"POST /api/submit HTTP/1.1\r\nHost: x\r\n"
                                                        b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}")),
        ("Range of 5,000 digits", request(port, "GET", url, headers={"Range": "bytes=" + "9" * 5000 + "-"})),
        ("a participant id with a newline", request(port, "GET", "/api/plan?participant=max%0A",
                                                     headers={"X-Resume-Token": token})),
        ("a media id with a newline", request(port, "GET", url.replace("/media/max/", "/media/max%0A/"))),
        ("bad percent-encoding", request(port, "GET", "/api/plan?participant=%ff%fe")),
        ("many query fields", request(port, "GET", "/api/plan?" + "&".join(f"a{i}=1" for i in range(100)))),
        ("a body shorter than its length", raw_exchange(port, b"POST /api/submit HTTP/1.1\r\nHost: x\r\n"
                                                        b"Content-Type: application/json\r\nContent-Length: 50"
                                                        b"\r\nConnection: close\r\n\r\n{}")),
    ]
    for name, reply in cases:
        status = reply[0] if isinstance(reply, tuple) else int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, (name, reply if isinstance(reply, bytes) else reply[2])
    assert get_plan(port, "max", token)[0] == 200      # and the server is still there


def test_stalled_connections_do_not_lock_participants_out(study_dir):
    """Slowloris: 40 connections from one address that trickle a byte at a time. Beyond the per-client
    limit they are refused at once (503); the ones admitted are cut at the request deadline however
    slowly they send; a participant from another address is served all along."""
    server = make_server(study_dir, "127.0.0.1", 0, Limits(max_connections=64, max_per_client=8, request_timeout=1.5))
    serve_in_thread(server)
    port = port_of(server)
    attackers = []
    try:
        for _ in range(40):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
            connection.sendall(b"GET /api/study HTTP/1.1\r\n")
            attackers.append(connection)
        started = time.monotonic()
        _, plan = plan_of(port, "nia")                  # from 127.0.0.1: served while they stall
        assert time.monotonic() - started < 1.0 and len(plan["trials"]) == 3
        time.sleep(0.3)
        for connection in attackers:                        # trickle: one byte at a time
            try:
                connection.sendall(b"X")
            except OSError:
                pass
        outcomes = []
        for connection in attackers:
            try:
                data = connection.recv(4096)
            except TimeoutError:
                data = b"still open"
            outcomes.append(data)
        elapsed = time.monotonic() - started
        refused = sum(o.startswith(b"HTTP/1.1 503") for o in outcomes)
        assert refused == 40 - 8, outcomes[:10]
        # the 8 admitted ones end (408 or closed) by the deadline, not when the client pleases
        assert all(o != b"still open" for o in outcomes) and elapsed < 4.0
        # a handler frees its slot just after closing the socket: the count falls within moments
        # (a single read can see the last slots still held; it failed CI once with 2)
        released_by = time.monotonic() + 1.0
        while server.connections() > 1 and time.monotonic() < released_by:
            time.sleep(0.01)
        assert server.connections() <= 1
    finally:
        for connection in attackers:
            connection.close()
        server.shutdown()
        server.server_close()


# -- the study folder at serve time ---------------------------------------------------------------


def test_a_video_replaced_by_a_link_outside_is_not_served(server, study_dir, tmp_path):
    port = port_of(server)
    _, plan = plan_of(port, "oli")
    url = plan["trials"][0]["videos"][0]["url"]
    method = participant_plan(server.study, "oli")[0].method_of(plan["trials"][0]["videos"][0]["id"])
    relative = participant_plan(server.study, "oli")[0].trial.videos[method]
    assert request(port, "GET", url)[0] == 200
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"secret bytes outside the study")
    target = study_dir / relative
    target.unlink()
    os.symlink(secret, target)                          # after the server started
    status, _, body = request(port, "GET", url)
    assert status == 404 and b"secret" not in body


@pytest.mark.parametrize("bad", ["nul", "loop"])
def test_a_study_file_with_a_nul_byte_or_a_link_loop_is_an_error(study_dir, bad):
    document = json.loads((study_dir / "study.json").read_text())
    if bad == "nul":
        document["trials"][0]["videos"]["imac"] = "videos/a\x00b.mp4"
    else:
        os.symlink(study_dir / "videos" / "loop2.mp4", study_dir / "videos" / "loop1.mp4")
        os.symlink(study_dir / "videos" / "loop1.mp4", study_dir / "videos" / "loop2.mp4")
        document["trials"][0]["videos"]["imac"] = "videos/loop1.mp4"
    (study_dir / "study.json").write_text(json.dumps(document))
    with pytest.raises(StudyError, match="cannot be opened|does not exist"):
        load_study(study_dir)
    result = subprocess.run([sys.executable, "-m", "userstudy.serve", "--study", str(study_dir), "--port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "error:" in result.stderr


# -- the database, its CSV export, and studies from before the database ------------------------------


def test_an_earlier_rankings_csv_is_imported_and_a_torn_line_set_aside(study_dir):
    rows = [("hal", "t1", CRITERIA[0], m, r, r, "old-save-1", "2025-01-01T00:00:00Z")
            for r, m in enumerate(METHODS, start=1)]
    rows += [("hal", "t1", CRITERIA[1], m, r, r, "old-save-1", "2025-01-01T00:00:00Z")
             for r, m in enumerate(reversed(METHODS), start=1)]
    text = ",".join(SERVER_COLUMNS) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (study_dir / "rankings.csv").write_text(text + "hal,t1,visual qu")   # a write cut off by a crash
    store = AnswerStore(study_dir / "study.db", study_dir / "rankings.csv")
    try:
        assert store.recovered is not None and store.recovered.read_text() == "hal,t1,visual qu"
        assert (study_dir / "rankings.csv").read_text() == text           # the export: the same file
        assert store.submission_counts() == {"old-save-1": 6}
        assert store.saved("hal") == {"t1": {CRITERIA[0]: list(METHODS), CRITERIA[1]: list(reversed(METHODS))}}
        assert store.participant("hal").token_sha256 is None              # claimed at the first resume
    finally:
        store.close()
    server = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        status, plan = get_plan(port_of(server), "hal", None)
        assert status == 200 and re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){2}", plan["token"])
        assert get_plan(port_of(server), "hal", None)[0] == 403            # claimed: now the token is needed
        assert get_plan(port_of(server), "hal", plan["token"])[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_an_earlier_rankings_csv_cut_inside_a_submission_imports_none_of_that_submission(study_dir, caplog):
    """The earlier server appended a submission's rows one by one: a crash left some of its lines complete
    before the torn one. Before, they were imported: the page showed the trial as saved with a video
    unranked, and analyze stopped at the incomplete block."""
    def save(who, submission, criteria):
        return [(who, "t1", c, m, r, r, submission, "2025-01-01T00:00:00Z")
                for c in criteria for r, m in enumerate(METHODS, start=1)]

    rows = save("hal", "old-save-1", CRITERIA) + save("ida", "old-save-2", CRITERIA)[:len(METHODS) + 1]
    text = ",".join(SERVER_COLUMNS) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (study_dir / "rankings.csv").write_text(text + "ida,t1,visual qu")
    server = make_server(study_dir, "127.0.0.1", 0)
    try:
        assert server.store.submission_counts() == {"old-save-1": len(CRITERIA) * len(METHODS)}
        assert server.store.saved("ida") == {} and set(server.store.saved("hal")) == {"t1"}
        aside = list(study_dir.glob("rankings.csv.incomplete-*"))
        assert len(aside) == 1 and aside[0].read_text().splitlines()[1:] == [
            ",".join(map(str, r)) for r in rows[-len(METHODS) - 1:]]
        assert f"ida on t1 ({len(METHODS) + 1} of {len(CRITERIA) * len(METHODS)} rows)" in caplog.text
    finally:
        server.server_close()


def test_a_rankings_csv_saved_again_with_a_byte_order_mark_is_read(study_dir):
    """Before, the server refused to start: "starts with the columns '\\ufeffparticipant,...'; the server
    writes participant,..." (two lists that look the same), while analyze read the same file."""
    rows = [("hal", "t1", c, m, r, r, "old-save-1", "2025-01-01T00:00:00Z")
            for c in CRITERIA for r, m in enumerate(METHODS, start=1)]
    text = ",".join(SERVER_COLUMNS) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (study_dir / "rankings.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    server = make_server(study_dir, "127.0.0.1", 0)
    try:
        assert server.store.submission_counts() == {"old-save-1": len(rows)}
        assert (study_dir / "rankings.csv").read_text() == text            # exported again, without the mark
    finally:
        server.server_close()
    (study_dir / "rankings.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())   # the export, saved again
    server = make_server(study_dir, "127.0.0.1", 0)                        # with its database now
    server.server_close()
    assert (study_dir / "rankings.csv").read_text() == text


def test_answers_to_a_trial_the_study_file_no_longer_has_are_warned_about_at_start(study_dir, caplog):
    """Before, the server started without a word, and analyze later stopped at "trial 't1' is not a trial"."""
    server = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        token, plan = plan_of(port_of(server), "eve")
        first = next(t for t in plan["trials"] if t["trial"] == "t1")
        assert post_json(port_of(server), "/api/submit", {"participant": "eve", "token": token, "trial": "t1",
                                                          "submission": "sub-00000077", "rankings": answer(first)})[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    document = json.loads((study_dir / "study.json").read_text())
    document["trials"] = [t for t in document["trials"] if t["id"] != "t1"]
    (study_dir / "study.json").write_text(json.dumps(document))
    with caplog.at_level("WARNING", logger="userstudy"):
        make_server(study_dir, "127.0.0.1", 0).server_close()
    assert f"{study_dir / 'study.db'} holds answers to 1 trial that {study_dir / 'study.json'} no longer has: t1" \
        in caplog.text


def test_a_foreign_rankings_file_is_refused(study_dir):
    (study_dir / "rankings.csv").write_text("participant,trial,criterion,method,rank\n")
    with pytest.raises(StoreError, match="columns"):
        make_server(study_dir, "127.0.0.1", 0)
    assert (study_dir / "rankings.csv").read_text() == "participant,trial,criterion,method,rank\n"


def test_a_foreign_header_is_quoted_as_it_is_even_with_a_lone_carriage_return(study_dir):
    """A header edited on a CRLF file ("rank\\r,note"): a text-mode readline stopped at the '\\r' and the
    refusal quoted "...,method,rank", hiding the extra column."""
    (study_dir / "rankings.csv").write_bytes(b"participant,trial,criterion,method,rank\r,note\n")
    with pytest.raises(StoreError) as error:
        make_server(study_dir, "127.0.0.1", 0)
    assert "starts with the columns 'participant,trial,criterion,method,rank\\r,note'" in str(error.value)
