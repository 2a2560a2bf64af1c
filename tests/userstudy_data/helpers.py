"""Shared fixtures for the userstudy server and browser tests: a tiny study folder and an HTTP client.

Every server here binds to 127.0.0.1 with an OS-chosen port, and every request has a timeout.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from userstudy import make_study as make_study_command
from userstudy_data.media import tagged_video

METHODS = ("imac", "s2g", "mya")
CRITERIA = ("visual quality", "sound-video synchronization")
TIMEOUT = 10.0


def video_bytes(method: str, trial: str) -> bytes:
    """A real, playable tiny video (make_study reads every file) whose bytes say whose it is."""
    return tagged_video(f"video of {method} for {trial}")


def make_study(root: Path, trials: int = 3, criteria=CRITERIA, methods=METHODS, play_through: bool = False) -> Path:
    """A study folder made the documented way (make_study from one folder of videos per method)."""
    sources = root / "generated"
    for method in methods:
        (sources / method).mkdir(parents=True, exist_ok=True)
        for t in range(1, trials + 1):
            (sources / method / f"t{t}.mp4").write_bytes(video_bytes(method, f"t{t}"))
    folder = root / "study"
    # play_through off by default: the tests' clients never play a video to its end
    make_study_command.make_study(folder, {m: sources / m for m in methods}, criteria=list(criteria),
                                  title="Test study", seed="fixed-seed", play_through=play_through)
    return folder


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One raw HTTP request (the path is sent as given, not normalised)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(port: int, path: str) -> tuple[int, object]:
    status, _, body = request(port, "GET", path)
    return status, json.loads(body)


def post_json(port: int, path: str, payload: object) -> tuple[int, dict]:
    status, _, body = request(port, "POST", path, json.dumps(payload).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(body)


def join(port: int, participant: str | None = None) -> str:
    """Register a participant (a new id, or the one given, as from a platform's URL); returns the token."""
    status, reply = post_json(port, "/api/participants", {"participant": participant} if participant else {})
    assert status == 201, reply
    return reply["token"]


def get_plan(port: int, participant: str, token: str | None) -> tuple[int, dict]:
    """The participant's plan, asked with the resume token (None: without one)."""
    status, _, body = request(port, "GET", f"/api/plan?participant={participant}",
                              headers={"X-Resume-Token": token} if token else {})
    return status, json.loads(body)
