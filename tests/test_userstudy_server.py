"""The study server on loopback: blinding, submissions (good and malformed), concurrency, restarts,
path traversal. Servers bind to 127.0.0.1 on an OS-chosen port; request loops are bounded in count
and time."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pandas as pd
import pytest
from userstudy_data.helpers import CRITERIA, METHODS, get_json, make_study, post_json, request, video_bytes

from userstudy.rankings import load_rankings
from userstudy.schema import SERVER_COLUMNS
from userstudy.serve import make_server, serve_in_thread
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
    ids = {post_json(port_of(server), "/api/participants", {})[1]["participant"] for _ in range(5)}
    assert len(ids) == 5 and all(re.fullmatch(r"P-[A-Z2-9]{8}", i) for i in ids)


def test_plan_is_blinded_randomised_and_stable(server, study_dir):
    port = port_of(server)
    status, plan = get_json(port, "/api/plan?participant=alice")
    assert status == 200
    text = json.dumps(plan)
    for method in METHODS:  # neither method names nor file paths reach the page
        assert method not in text
    assert "videos/" not in text
    assert get_json(port, "/api/plan?participant=alice")[1] == plan  # the same page when coming back
    orders, positions = set(), set()
    study = load_study(study_dir)
    for i in range(30):
        planned = participant_plan(study, f"p{i}")
        orders.add(tuple(p.trial.id for p in planned))
        positions.add(tuple(m for _, m in planned[0].shown))
    assert len(orders) > 1 and len(positions) > 1  # order and positions really vary


def test_media_serves_the_right_file_with_ranges(server, study_dir):
    port = port_of(server)
    plan = get_json(port, "/api/plan?participant=bob")[1]
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


def test_submission_is_unblinded_into_the_analysis_format(server, study_dir):
    port = port_of(server)
    plan = get_json(port, "/api/plan?participant=carol")[1]
    first = plan["trials"][0]
    ranking = answer(first, reverse=True)
    status, reply = post_json(port, "/api/submit", {"participant": "carol", "trial": first["trial"],
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
    again = get_json(port, "/api/plan?participant=carol")[1]["trials"][0]
    assert again["saved"] == ranking
    checked = load_rankings(study_dir / "rankings.csv")
    assert checked.blocks() == len(CRITERIA)


def test_a_retried_submission_is_stored_once(server, study_dir):
    port = port_of(server)
    first = get_json(port, "/api/plan?participant=dan")[1]["trials"][0]
    payload = {"participant": "dan", "trial": first["trial"], "submission": "retry-123456",
               "rankings": answer(first)}
    replies = [post_json(port, "/api/submit", payload) for _ in range(3)]
    assert [status for status, _ in replies] == [200, 200, 200]
    assert [reply["duplicate"] for _, reply in replies] == [False, True, True]
    assert len(read_csv(study_dir)) == len(CRITERIA) * len(METHODS)


def test_a_later_save_of_the_same_trial_counts(server, study_dir):
    port = port_of(server)
    first = get_json(port, "/api/plan?participant=erin")[1]["trials"][0]
    for i, reverse in enumerate([False, True]):
        payload = {"participant": "erin", "trial": first["trial"], "submission": f"erin-save-{i}",
                   "rankings": answer(first, reverse)}
        assert post_json(port, "/api/submit", payload)[0] == 200
    assert get_json(port, "/api/plan?participant=erin")[1]["trials"][0]["saved"] == answer(first, True)
    checked = load_rankings(study_dir / "rankings.csv")
    assert checked.blocks() == len(CRITERIA) and len(checked.superseded) == len(CRITERIA)


def malformed_cases(trial: dict) -> list[tuple[str, object, str]]:
    ids = [v["id"] for v in trial["videos"]]
    good = {"participant": "fay", "trial": trial["trial"], "rankings": {c: ids for c in CRITERIA}}
    return [
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
    first = get_json(port, "/api/plan?participant=fay")[1]["trials"][0]
    for name, payload, message in malformed_cases(first):
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


# -- many participants at once --------------------------------------------------------------------


def test_concurrent_submissions_are_all_kept_once(server, study_dir):
    port = port_of(server)
    participants = [f"c{i:02d}" for i in range(24)]
    plans = {p: get_json(port, f"/api/plan?participant={p}")[1] for p in participants}
    payloads = [{"participant": p, "trial": t["trial"], "submission": f"{p}-{t['trial']}-0000",
                 "rankings": answer(t, reverse=(i % 2 == 1))}
                for p in participants for i, t in enumerate(plans[p]["trials"])]
    # every submission is sent twice at once (a double click, a retry): 144 requests, 72 answers
    requests = payloads + payloads[::-1]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(post_json, port, "/api/submit", p) for p in requests]
        done, pending = wait(futures, timeout=60)
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


# -- restarts -------------------------------------------------------------------------------------


def test_answers_survive_a_restart_in_process(study_dir):
    first = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(first)
    plan = get_json(port_of(first), "/api/plan?participant=gus")[1]
    for trial in plan["trials"][:2]:
        payload = {"participant": "gus", "trial": trial["trial"], "rankings": answer(trial)}
        assert post_json(port_of(first), "/api/submit", payload)[0] == 200
    first.shutdown()
    first.server_close()

    second = make_server(study_dir, "127.0.0.1", 0)
    serve_in_thread(second)
    try:
        again = get_json(port_of(second), "/api/plan?participant=gus")[1]
        assert [t["saved"] is not None for t in again["trials"]] == [True, True, False]
        last = again["trials"][2]
        assert post_json(port_of(second), "/api/submit", {"participant": "gus", "trial": last["trial"],
                                                           "rankings": answer(last)})[0] == 200
    finally:
        second.shutdown()
        second.server_close()
    assert load_rankings(study_dir / "rankings.csv").blocks() == 3 * len(CRITERIA)


def start_process(study_dir: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "userstudy.serve", "--study", str(study_dir),
                                "--port", "0", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/; ..."
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        process.kill()
        raise AssertionError(f"no address in {line!r}: {process.stderr.read()}")
    return process, int(match.group(1))


def test_acknowledged_answers_survive_a_killed_server(study_dir):
    process, port = start_process(study_dir)
    try:
        acknowledged = []
        for i in range(6):
            participant = f"k{i}"
            trial = get_json(port, f"/api/plan?participant={participant}")[1]["trials"][0]
            payload = {"participant": participant, "trial": trial["trial"], "submission": f"kill-test-{i}",
                       "rankings": answer(trial)}
            status, _ = post_json(port, "/api/submit", payload)
            assert status == 200
            acknowledged.append(payload["submission"])
    finally:
        process.send_signal(signal.SIGKILL)  # no clean shutdown
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    process, port = start_process(study_dir)
    try:
        assert get_json(port, "/api/plan?participant=k3")[1]["trials"][0]["saved"] is not None
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    assert set(read_csv(study_dir)["submission"]) == set(acknowledged)


def test_a_torn_last_line_is_set_aside_at_start(study_dir):
    store = AnswerStore(study_dir / "rankings.csv")
    row = ("hal", "t1", CRITERIA[0], "imac", 1, 1, "torn-test-1", "2025-01-01T00:00:00Z")
    assert store.append([row], "torn-test-1")
    with open(study_dir / "rankings.csv", "a") as handle:
        handle.write("hal,t1,visual qu")  # a write cut off by a crash, never acknowledged
    recovered = AnswerStore(study_dir / "rankings.csv")
    assert recovered.recovered is not None and recovered.recovered.read_text() == "hal,t1,visual qu"
    assert (study_dir / "rankings.csv").read_text().endswith("torn-test-1,2025-01-01T00:00:00Z\n")
    assert recovered.has_submission("torn-test-1")


def test_a_foreign_rankings_file_is_refused(study_dir):
    (study_dir / "rankings.csv").write_text("participant,trial,criterion,method,rank\n")
    with pytest.raises(StoreError, match="columns"):
        make_server(study_dir, "127.0.0.1", 0)
