"""The ranking web page and its server (standard library only: http.server + threading).

    python -m userstudy serve --study DIR [--host 127.0.0.1] [--port 8000] [--quiet]

(``python -m userstudy.serve`` is the same command.)

Routes (nothing else is served; no URL is ever mapped onto the file system directly):

    GET  /                                     the page (userstudy/web/index.html)
    GET  /static/study.js, /static/study.css   its script and style (a fixed list)
    GET  /api/study                            title, instructions, criteria, number of trials
    POST /api/participants                     a new participant id
    GET  /api/plan?participant=ID              the participant's trials in order, blinded videos,
                                               and the answers already saved (to come back)
    GET  /media/ID/TRIAL/VIDEO_ID              one blinded video (or VIDEO_ID ``reference``), with
                                               HTTP ranges so that seeking works
    POST /api/submit                           {"participant", "trial", "submission",
                                                "rankings": {criterion: [video ids, best first]}}

A submission is checked (participant id, trial, every criterion ranked, each ranking a permutation
of that trial's video ids), un-blinded with the participant's plan, and appended to the study's
``rankings.csv`` by ``store.AnswerStore``; malformed ones get a 4xx with a message. The server
binds to 127.0.0.1 unless told otherwise: it has no authentication and no TLS.

The Python API: ``serve`` (what the command does: serve until interrupted), ``make_server`` and
``serve_in_thread`` (a server to start and stop yourself). Requests and saves are logged at INFO
on the ``userstudy.serve`` logger.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import re
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from userstudy import cli
from userstudy.store import AnswerStore, StoreError
from userstudy.study import (
    ID_PATTERN,
    VIDEO_SUFFIXES,
    Study,
    StudyError,
    load_study,
    new_participant_id,
    participant_plan,
    planned_trial,
)

WEB = Path(__file__).with_name("web")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/static/study.js": ("study.js", "text/javascript; charset=utf-8"),
         "/static/study.css": ("study.css", "text/css; charset=utf-8")}
MAX_BODY = 64 * 1024
SUBMISSION_PATTERN = re.compile(r"^[A-Za-z0-9-]{8,64}$")
CHUNK = 256 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")

logger = logging.getLogger(__name__)


class RequestError(Exception):
    """A request to refuse with ``status`` and a message for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class StudyServer(ThreadingHTTPServer):
    """One study, one answer store, many participants at once (a thread per request)."""

    daemon_threads = True
    # Many participants may press "Save" in the same instant; the default backlog of 5 refuses some.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], study: Study):
        self.study = study
        self.store = AnswerStore(study.rankings_path)
        super().__init__(address, StudyHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def _participant(value: object) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise RequestError(HTTPStatus.BAD_REQUEST, "participant id: 1-64 letters, digits, '.', '_' or '-', "
                                                   "starting with a letter or digit")
    return value


def check_submission(study: Study, body: object) -> tuple[str, str, str, dict[str, list[str]]]:
    """Validate a submission; returns (participant, trial, submission id, rankings by blinded id)."""
    if not isinstance(body, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    participant = _participant(body.get("participant"))
    trial_id = body.get("trial")
    if not isinstance(trial_id, str) or study.trial(trial_id) is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown trial {trial_id!r}")
    submission = body.get("submission") or str(uuid.uuid4())
    if not isinstance(submission, str) or not SUBMISSION_PATTERN.match(submission):
        raise RequestError(HTTPStatus.BAD_REQUEST, "submission id: 8-64 letters, digits or '-'")
    rankings = body.get("rankings")
    if not isinstance(rankings, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "rankings must map each criterion to a list of video ids")
    names = [c.name for c in study.criteria]
    missing = [c for c in names if c not in rankings]
    unknown = [c for c in rankings if c not in names]
    if missing or unknown:
        raise RequestError(HTTPStatus.BAD_REQUEST, "rank every criterion of the study"
                           + (f"; not ranked: {', '.join(missing)}" if missing else "")
                           + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""))
    ids = sorted(b for b, _ in planned_trial(study, participant, trial_id).shown)
    for criterion in names:
        order = rankings[criterion]
        if not isinstance(order, list) or sorted(map(str, order)) != ids or not all(isinstance(b, str) for b in order):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"{criterion}: rank each of the videos {', '.join(ids)} exactly once "
                               f"(got {order!r})")
    return participant, trial_id, submission, {c: list(rankings[c]) for c in names}


def submission_rows(study: Study, participant: str, trial_id: str, submission: str,
                    rankings: dict[str, list[str]], submitted_at: str) -> list[tuple]:
    """Un-blind a checked submission into rows of ``schema.SERVER_COLUMNS``."""
    plan = planned_trial(study, participant, trial_id)
    rows = []
    for criterion in (c.name for c in study.criteria):
        for rank, blind_id in enumerate(rankings[criterion], start=1):
            method = plan.method_of(blind_id)
            rows.append((participant, trial_id, criterion, method, rank, plan.position_of(method),
                         submission, submitted_at))
    return rows


class StudyHandler(BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "userstudy"
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:
        logger.info("%s - - [%s] %s", self.address_string(), self.log_date_time_string(), format % args)

    def log_error(self, format: str, *args) -> None:
        logger.warning("%s - - [%s] %s", self.address_string(), self.log_date_time_string(), format % args)

    def _headers(self, status: HTTPStatus, content_type: str, length: int, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; object-src 'none'; frame-ancestors 'none'")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self._headers(status, content_type, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: object) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _route(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        # Decoded segments that could name another folder are refused outright, whatever the route.
        if any(s in (".", "..") or "/" in s or "\\" in s or "\x00" in s for s in segments):
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
        return segments, parse_qs(parts.query)

    def _dispatch(self, method: str) -> None:
        routes = POST_ROUTES if method == "POST" else GET_ROUTES
        try:
            segments, query = self._route()
            path = "/" + "/".join(segments)
            if method != "POST" and path in PAGES:
                return self._page(path)
            if method != "POST" and path == "/favicon.ico":
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")  # none: keeps logs clean
            key = "/media" if len(segments) == 4 and segments[0] == "media" else path
            handler = routes.get(key)
            if handler is None:
                other = GET_ROUTES.keys() | PAGES.keys() if method == "POST" else POST_ROUTES.keys()
                if key in other:
                    raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not used on {path}")
                raise RequestError(HTTPStatus.NOT_FOUND, "not found")
            handler(self, segments, query)
        except RequestError as error:
            if method == "POST":
                self.close_connection = True  # a body left unread must not be taken for a request
            self._error(error.status, str(error))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the browser gave up on a video request: nothing to answer
        except Exception:  # a bug must not leave the participant's page waiting
            logger.exception("internal error on %s %s", method, self.path)
            self.close_connection = True
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the answer was not saved")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- routes -----------------------------------------------------------------------------------

    def _page(self, path: str) -> None:
        name, content_type = PAGES[path]
        self._send(HTTPStatus.OK, (WEB / name).read_bytes(), content_type, {"Cache-Control": "no-cache"})

    def _study(self, segments, query) -> None:
        study = self.server.study
        self._json(HTTPStatus.OK, {
            "title": study.title, "instructions": study.instructions, "trials": len(study.trials),
            "methods": len(study.methods),
            "criteria": [{"name": c.name, "question": c.question} for c in study.criteria]})

    def _new_participant(self, segments, query) -> None:
        self._read_body()
        self._json(HTTPStatus.OK, {"participant": new_participant_id()})

    def _plan(self, segments, query) -> None:
        study = self.server.study
        participant = _participant((query.get("participant") or [None])[0])
        saved = self.server.store.saved(participant)
        trials = []
        for planned in participant_plan(study, participant):
            trial = planned.trial
            answer = saved.get(trial.id)
            base = f"/media/{participant}/{trial.id}/"
            trials.append({
                "trial": trial.id,
                "videos": [{"id": b, "url": base + b} for b, _ in planned.shown],
                "reference": {"url": base + "reference",
                              "kind": "video" if trial.reference.lower().endswith(VIDEO_SUFFIXES) else "image"}
                if trial.reference else None,
                "saved": {c: [planned.blind_id_of(m) for m in methods] for c, methods in answer.items()}
                if answer and set(answer) >= {c.name for c in study.criteria} else None,
            })
        self._json(HTTPStatus.OK, {"participant": participant, "trials": trials})

    def _media(self, segments, query) -> None:
        study = self.server.study
        _, participant, trial_id, video = segments
        _participant(participant)
        planned = planned_trial(study, participant, trial_id)
        if planned is None:
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
        if video == "reference":
            relative = planned.trial.reference
        else:
            method = planned.method_of(video)
            relative = planned.trial.videos[method] if method else None
        if relative is None:
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
        self._file(study.file(relative))

    def _file(self, path: Path) -> None:
        size = path.stat().st_size
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        start, end, status = 0, size - 1, HTTPStatus.OK
        ranged = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip()) if ranged else None
        if ranged and (match is None or match.groups() == ("", "")):
            raise RequestError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "unsupported range")
        if match:
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(size - int(last), 0), size - 1
            if start > end or start >= size:
                self._headers(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "text/plain", 0,
                              {"Content-Range": f"bytes */{size}"})
                return
            status = HTTPStatus.PARTIAL_CONTENT
        extra = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
        if status == HTTPStatus.PARTIAL_CONTENT:
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._headers(status, content_type, end - start + 1, extra)
        if self.command == "HEAD":
            return
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
            return b""
        if not length.isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
        return self.rfile.read(int(length))

    def _submit(self, segments, query) -> None:
        raw = self._read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the answer as application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}") from None
        study = self.server.study
        participant, trial_id, submission, rankings = check_submission(study, body)
        submitted_at = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        rows = submission_rows(study, participant, trial_id, submission, rankings, submitted_at)
        written = self.server.store.append(rows, submission)
        logger.info("%s: participant %s, trial %s, submission %s", "saved" if written else "already saved",
                    participant, trial_id, submission)
        self._json(HTTPStatus.OK, {"saved": True, "duplicate": not written, "submission": submission,
                                   "trial": trial_id, "rankings": rankings})


GET_ROUTES = {"/api/study": StudyHandler._study, "/api/plan": StudyHandler._plan, "/media": StudyHandler._media}
POST_ROUTES = {"/api/participants": StudyHandler._new_participant, "/api/submit": StudyHandler._submit}


def make_server(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> StudyServer:
    """A server for the study in ``study_dir`` bound to (host, port); port 0 lets the OS choose.

    Call ``serve_forever()`` on it (``shutdown()`` and ``server_close()`` to stop).
    """
    server = StudyServer((host, port), load_study(study_dir))
    if host not in LOOPBACK:
        logger.warning("listening on %s: anyone who can reach it can submit answers", host)
    return server


def serve_in_thread(server: StudyServer) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread (for tests and notebooks)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def describe(server: StudyServer) -> str:
    """``serving 'title' (3 trials x 3 methods, 4 criteria) at http://127.0.0.1:8000/; ...``"""
    study = server.study
    return (f"serving {study.title!r} ({len(study.trials)} trials x {len(study.methods)} methods, "
            f"{len(study.criteria)} criteria) at {server.url}; answers are appended to {study.rankings_path}")


def announce(server: StudyServer) -> None:
    logger.info("%s", describe(server))


def serve(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          ready: Callable[[StudyServer], None] = announce) -> None:
    """Serve the study in ``study_dir`` until interrupted (Ctrl-C): the command.

    ``ready`` is called with the server once it listens (by default it logs ``describe(server)``).
    Raises ``StudyError`` or ``StoreError`` when the study cannot be served, ``OSError`` when the
    address cannot be bound.
    """
    server = make_server(study_dir, host, port)
    try:
        ready(server)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("serve", prog)
    parser.add_argument("--study", type=Path, required=True, metavar="DIR", help="study folder (with study.json)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; the server has no login and no TLS")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--quiet", action="store_true", help="log only warnings and errors, not every request")
    return parser


def print_address(server: StudyServer) -> None:
    # The command's output, on stdout even with --quiet: with --port 0 it is how a caller learns the port.
    print(describe(server), flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.configure_logging(quiet=args.quiet)
    try:
        serve(args.study, args.host, args.port, ready=print_address)
    except (StudyError, StoreError) as error:
        return cli.fail(error)
    except OSError as error:
        return cli.fail(f"cannot listen on {args.host}:{args.port}: {error.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
