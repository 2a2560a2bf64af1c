"""The ranking web page and its server (standard library only: http.server, threading, sqlite3).

    python -m userstudy serve --study DIR [--host 127.0.0.1] [--port 8000] [--quiet]
        [--max-connections 256] [--max-per-client 32] [--request-timeout 20]

(``python -m userstudy.serve`` is the same command.)

Routes (nothing else is served; no URL is ever mapped onto the file system directly):

    GET  /                                     the page (userstudy/web/index.html)
    GET  /static/study.js, /static/study.css   its script and style (a fixed list)
    GET  /api/study                            title, instructions, criteria, number of trials
    POST /api/participants                     {} -> a new participant id and its resume token;
                                               {"participant": ID} -> register an id given by the
                                               URL (crowdsourcing platforms); 409 if it exists;
                                               "consent": true is required when the study has a
                                               consent text
    GET  /api/plan?participant=ID              the participant's trials in order, blinded videos, and
         (header X-Resume-Token: TOKEN)        the answers already saved (to come back); 404 for an
                                               unknown id, 403 for a wrong token
    GET  /media/ID/TRIAL/VIDEO_ID              one blinded video (or VIDEO_ID ``reference``), with
                                               HTTP ranges so that seeking works
    POST /api/submit                           {"participant", "token", "trial", "submission",
                                                "rankings": {criterion: [video ids, best first]}}
                                               or, for a pairwise trial, "preferences":
                                               {criterion: -2..2, positive = the left video}
    POST /api/report                           {"participant", "token", "trial", "video"}: this video
                                               does not play

A submission is checked (participant id and token, trial, every criterion ranked, each ranking a
permutation of that trial's video ids; a pairwise trial's preference on each of its criteria, one
of the study's levels), un-blinded with the participant's plan, and stored by
``store.AnswerStore`` (SQLite, one transaction per submission; ``rankings.csv`` and
``pairwise.csv`` are its exports). Once every trial is saved, the plan and the reply carry the
study's completion code. A
2xx reply means "this exact answer is stored": a submission id already stored with another answer
gets 409. Malformed requests get a 4xx with a message, never a 500.

Connections are limited in number (in all and per client address) and in time (a request must
arrive within ``request_timeout``; a reply that stalls longer than ``send_timeout`` is dropped), so
stalled connections cannot lock participants out. The server binds to 127.0.0.1 unless told
otherwise; it has no TLS: for remote participants put it behind a reverse proxy (README).

Why the standard library and not a web framework: ``serve`` must run anywhere the study folder is
copied, from the same install as the analysis, and what a framework would add here (routing for
eight routes, ranges) is short and tested; what it would not add is the defence against stalled
connections (uvicorn resets its keep-alive timer on every byte received), which is here.

The Python API: ``serve`` (what the command does: serve until interrupted), ``make_server`` and
``serve_in_thread`` (a server to start and stop yourself). Requests and saves are logged at INFO
on the ``userstudy.serve`` logger.
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import logging
import mimetypes
import os
import re
import secrets
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from userstudy import cli
from userstudy.store import AnswerStore, StoreError, SubmissionConflict, token_digest
from userstudy.study import (
    PREFERENCE_LEVELS,
    STUDY_FILE,
    VIDEO_SUFFIXES,
    Study,
    StudyError,
    is_valid_id,
    load_study,
    new_participant_id,
    participant_plan,
    planned_trial,
)

WEB = Path(__file__).with_name("web")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/static/study.js": ("study.js", "text/javascript; charset=utf-8"),
         "/static/study.css": ("study.css", "text/css; charset=utf-8")}
DATABASE_FILE = "study.db"
PAIRWISE_FILE = "pairwise.csv"
MAX_BODY = 64 * 1024
# Every pattern is matched whole (fullmatch): a suffix such as a newline cannot slip past.
SUBMISSION_PATTERN = re.compile(r"[A-Za-z0-9-]{8,64}")
CONTENT_LENGTH_PATTERN = re.compile(r"[0-9]{1,10}")
RANGE_PATTERN = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")
TOKEN_HEADER = "X-Resume-Token"
TOKEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CHUNK = 256 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How many connections the server holds and for how long (seconds).

    ``max_per_client`` counts connections from one address: behind a reverse proxy every
    participant comes from the proxy's address, so set it to ``max_connections`` there and let the
    proxy limit clients.
    """

    max_connections: int = 256
    max_per_client: int = 32
    request_timeout: float = 20.0   # to receive a request's line, headers and body
    send_timeout: float = 60.0      # that one write of a reply may stall

    def __post_init__(self):
        if self.max_connections < 1 or self.max_per_client < 1:
            raise ValueError(f"connection limits must be at least 1, got {self}")
        if self.request_timeout <= 0 or self.send_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got {self}")


class RequestError(Exception):
    """A request to refuse with ``status`` and a message for the page (``extra``: more JSON fields)."""

    def __init__(self, status: HTTPStatus, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.extra = extra or {}


def complete_rows(study: Study, trial_id: str) -> int | None:
    """The rows of one complete ranking of trial ``trial_id`` in rankings.csv: its criteria x its videos
    (None for a trial the study does not have, or a pairwise one, whose answers go elsewhere)."""
    trial = study.trial(trial_id)
    if trial is None or trial.pairwise:
        return None
    return len(study.criteria_of(trial)) * len(trial.videos)


class StudyServer(ThreadingHTTPServer):
    """One study, one answer store, many participants at once (a thread per connection, limited)."""

    daemon_threads = True
    # Many participants may press "Save" in the same instant; the default backlog of 5 refuses some.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], study: Study, limits: Limits | None = None):
        self.study = study
        self.limits = limits or Limits()
        self.store = AnswerStore(study.root / DATABASE_FILE, study.rankings_path, study.root / PAIRWISE_FILE,
                                 expected_rows=lambda trial_id: complete_rows(study, trial_id))
        gone = sorted(self.store.answered_trials() - {trial.id for trial in study.trials})
        if gone:     # (the study file edited after answers came in: analyze refuses those rows)
            logger.warning("%s holds answers to %s that %s no longer has: %s; analyze will refuse their rows "
                           "(restore the trials, or start a new study folder)", self.store.path,
                           cli.count(len(gone), "trial"), study.root / STUDY_FILE, ", ".join(gone[:10])
                           + (" ..." if len(gone) > 10 else ""))
        self._slots = threading.Lock()
        self._active: dict[str, int] = {}
        self._refused_logged = 0.0
        try:
            super().__init__(address, StudyHandler)
        except BaseException:
            self.store.close()
            raise

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def connections(self) -> int:
        """Connections being served now."""
        with self._slots:
            return sum(self._active.values())

    def process_request(self, request, client_address) -> None:
        client = client_address[0]
        with self._slots:
            busy = (sum(self._active.values()) >= self.limits.max_connections
                    or self._active.get(client, 0) >= self.limits.max_per_client)
            if not busy:
                self._active[client] = self._active.get(client, 0) + 1
        if busy:
            return self._refuse(request, client)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(client)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, client: str) -> None:
        with self._slots:
            self._active[client] -= 1
            if not self._active[client]:
                del self._active[client]

    def _refuse(self, request: socket.socket, client: str) -> None:
        """Answer 503 at once on a connection over the limits (the accept loop never waits)."""
        body = b'{"error": "the server is busy; try again in a few seconds"}'
        try:
            request.settimeout(0.5)
            request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                            b"Retry-After: 5\r\nConnection: close\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass
        self.shutdown_request(request)
        now = time.monotonic()
        if now - self._refused_logged > 10:  # one line per 10 s, not one per refused connection
            self._refused_logged = now
            logger.warning("connection limits reached (%d in all, %d per client): refusing connections, "
                           "e.g. from %s", self.limits.max_connections, self.limits.max_per_client, client)

    def server_close(self) -> None:
        super().server_close()
        self.store.close()


def _participant(value: object) -> str:
    if not is_valid_id(value):
        raise RequestError(HTTPStatus.BAD_REQUEST, "participant id: 1-64 letters, digits, '.', '_' or '-', "
                                                   "starting with a letter or digit")
    return value


def new_token() -> str:
    """A fresh resume token, e.g. ``K7M2-Q9XD-3HPA`` (60 random bits, letters and digits easy to read)."""
    letters = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(12))
    return "-".join(letters[i:i + 4] for i in range(0, 12, 4))


def normalise_token(value: object) -> str | None:
    """A token as typed (any case, spaces or dashes) in its canonical form, or None if it cannot be one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    letters = re.sub(r"[\s-]", "", value).upper()
    if len(letters) != 12 or not all(c in TOKEN_ALPHABET for c in letters):
        return None
    return "-".join(letters[i:i + 4] for i in range(0, 12, 4))


def check_pairwise_submission(study: Study, body: dict) -> tuple[str, str, str]:
    """The participant, trial and submission id of a pairwise trial's answer."""
    participant = _participant(body.get("participant"))
    submission = body.get("submission") or str(uuid.uuid4())
    if not isinstance(submission, str) or not SUBMISSION_PATTERN.fullmatch(submission):
        raise RequestError(HTTPStatus.BAD_REQUEST, "submission id: 8-64 letters, digits or '-'")
    return participant, body["trial"], submission


def check_submission(study: Study, body: object) -> tuple[str, str, str, dict[str, list[str]]]:
    """Validate a submission; returns (participant, trial, submission id, rankings by blinded id)."""
    if not isinstance(body, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    participant = _participant(body.get("participant"))
    trial_id = body.get("trial")
    if not is_valid_id(trial_id) or study.trial(trial_id) is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown trial {trial_id!r}")
    submission = body.get("submission") or str(uuid.uuid4())
    if not isinstance(submission, str) or not SUBMISSION_PATTERN.fullmatch(submission):
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
    if study.trial(trial_id).pairwise:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"trial {trial_id!r} is answered with preferences, not rankings")
    ids = sorted(b for b, _ in planned_trial(study, participant, trial_id).shown)
    for criterion in names:
        order = rankings[criterion]
        if (not isinstance(order, list) or not all(isinstance(b, str) for b in order)
                or sorted(order) != ids):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"{criterion}: rank each of the videos {', '.join(ids)} exactly once "
                               f"(got {order!r})"[:500])
    return participant, trial_id, submission, {c: list(rankings[c]) for c in names}


def check_preferences(study: Study, body: dict, participant: str, trial_id: str) -> dict[str, int]:
    """A pairwise trial's answer: criterion -> preference on the study's levels, positive = the left video."""
    preferences = body.get("preferences")
    names = study.criteria_of(study.trial(trial_id))
    levels = PREFERENCE_LEVELS[study.preference_levels]
    if not isinstance(preferences, dict) or sorted(preferences) != sorted(names):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"preferences must give each of {', '.join(names)} a value "
                           f"({', '.join(map(str, levels))}; positive = the left video)")
    for criterion in names:
        value = preferences[criterion]
        if type(value) is not int or value not in levels:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{criterion}: a preference is one of "
                               f"{', '.join(map(str, levels))}, got {value!r}"[:300])
    return {c: preferences[c] for c in names}


def preference_rows(study: Study, participant: str, trial_id: str, submission: str,
                    preferences: dict[str, int], submitted_at: str) -> list[tuple]:
    """Un-blind a checked pairwise answer into rows of ``store.PAIRWISE_COLUMNS``: the preference for
    video a (the trial's first slot), and where a was shown."""
    plan = planned_trial(study, participant, trial_id)
    trial = plan.trial
    method_a, method_b = trial.pair(study.methods)
    a_position = plan.position_of(trial.slots(study.methods)[0])
    sign = 1 if a_position == 1 else -1
    return [(participant, trial_id, criterion, method_a, method_b, trial.kind, sign * value, a_position,
             submission, submitted_at) for criterion, value in preferences.items()]


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


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class DeadlineReader(io.RawIOBase):
    """A socket reader that gives up when the handler's deadline passes, however slowly bytes trickle in.

    (A plain socket timeout bounds each wait, so a client sending one byte every few seconds could
    hold a connection, and its thread, for ever.)
    """

    def __init__(self, sock: socket.socket, handler: StudyHandler):
        super().__init__()
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class StudyHandler(BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "userstudy"
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.deadline = time.monotonic() + self.server.limits.request_timeout
        self.rfile.close()
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        # The clock for one request starts when the server waits for it (an idle keep-alive
        # connection is closed after request_timeout too).
        self.deadline = time.monotonic() + self.server.limits.request_timeout
        super().handle_one_request()

    def log_message(self, format: str, *args) -> None:
        logger.info("%s - - [%s] %s", self.address_string(), self.log_date_time_string(), format % args)

    def log_error(self, format: str, *args) -> None:
        logger.warning("%s - - [%s] %s", self.address_string(), self.log_date_time_string(), format % args)

    def _headers(self, status: HTTPStatus, content_type: str, length: int, extra: dict | None = None) -> None:
        self.connection.settimeout(self.server.limits.send_timeout)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; object-src 'none'; frame-ancestors 'none'")
        self.send_header("Referrer-Policy", "no-referrer")
        if self.close_connection:
            self.send_header("Connection", "close")
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

    def _error(self, status: HTTPStatus, message: str, extra: dict | None = None) -> None:
        self._json(status, {"error": message, **(extra or {})})

    def _route(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        segments = [unquote(s, errors="strict") for s in parts.path.split("/")[1:]]
        # Decoded segments that could name another folder are refused outright, whatever the route.
        if any(s in (".", "..") or "/" in s or "\\" in s or "\x00" in s for s in segments):
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
        return segments, parse_qs(parts.query, max_num_fields=20, errors="strict")

    def _dispatch(self, method: str) -> None:
        routes = POST_ROUTES if method == "POST" else GET_ROUTES
        try:
            try:
                segments, query = self._route()
            except (UnicodeDecodeError, ValueError):
                raise RequestError(HTTPStatus.BAD_REQUEST, "malformed URL") from None
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
            self._error(error.status, str(error), error.extra)
        except TimeoutError:
            self.close_connection = True
            try:
                self._error(HTTPStatus.REQUEST_TIMEOUT, "the request took too long to arrive")
            except OSError:
                pass
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

    def _other_method(self) -> None:
        """PUT, DELETE, PATCH, OPTIONS, TRACE: a 405 in the server's JSON, the connection closed (a body is
        left unread), not http.server's HTML "501 Unsupported method"."""
        self.close_connection = True
        self._send(HTTPStatus.METHOD_NOT_ALLOWED,
                   json.dumps({"error": f"{self.command} is not used by the study's server (GET, HEAD, POST)"}
                              ).encode("utf-8"),
                   "application/json; charset=utf-8", {"Cache-Control": "no-store", "Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _other_method

    # -- reading requests -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
            return b""
        if not CONTENT_LENGTH_PATTERN.fullmatch(length.strip()):
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if int(length) > MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        return body

    def _json_body(self, optional: bool = False) -> dict:
        raw = self._read_body()
        if optional and not raw:
            return {}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError as error:     # bad UTF-8, bad JSON, an integer past Python's 4300 digits
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}") from None
        except RecursionError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not JSON: nested too deeply") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _known(self, participant: str):
        """The stored participant, or a 404 saying that no participant has this id."""
        known = self.server.store.participant(participant)
        if known is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no participant has the id {participant!r}: check it, "
                               "or start as a new participant", {"unknown": True})
        return known

    def _known_sender(self, body: dict) -> None:
        """A submission's participant must exist before its answer is checked: an unknown id is told as
        such (404), not as a fault of the answer (it was a 400 "rank each of the videos ... exactly once",
        the videos of a plan the server made up for the unknown id)."""
        if is_valid_id(body.get("participant")):
            self._known(body["participant"])

    def _authorise(self, participant: str, token: object) -> str | None:
        """Check that ``token`` is the participant's resume token; returns a token issued now, if any.

        A participant imported from an old rankings.csv has no token yet: the first resume claims
        the id and gets one.
        """
        known = self._known(participant)
        if known.token_sha256 is None:
            issued = new_token()
            if self.server.store.claim(participant, token_digest(issued)):
                logger.info("participant %s (from an earlier rankings.csv) got a resume token", participant)
                return issued
            known = self.server.store.participant(participant)
        canonical = normalise_token(token)
        if canonical is None or not hmac.compare_digest(token_digest(canonical), known.token_sha256):
            raise RequestError(HTTPStatus.FORBIDDEN, f"wrong or missing resume code for participant {participant!r}",
                               {"token_required": True})
        return None

    # -- routes -----------------------------------------------------------------------------------

    def _page(self, path: str) -> None:
        name, content_type = PAGES[path]
        self._send(HTTPStatus.OK, (WEB / name).read_bytes(), content_type, {"Cache-Control": "no-cache"})

    def _study(self, segments, query) -> None:
        study = self.server.study
        self._json(HTTPStatus.OK, {
            "title": study.title, "instructions": study.instructions, "trials": len(study.trials),
            "methods": len(study.methods),
            "criteria": [{"name": c.name, "question": c.question} for c in study.criteria],
            "play_through": study.play_through, "consent": study.consent,
            "pairwise_trials": sum(t.pairwise for t in study.trials),
            "preference_levels": study.preference_levels})

    def _new_participant(self, segments, query) -> None:
        body = self._json_body(optional=True)
        if self.server.study.consent and body.get("consent") is not True:
            raise RequestError(HTTPStatus.BAD_REQUEST, "agree to the study's information and consent text "
                               "first (\"consent\": true)", {"consent_required": True})
        token = new_token()
        if "participant" in body:
            participant = _participant(body["participant"])
            if not self.server.store.add_participant(participant, token_digest(token), utc_now()):
                raise RequestError(HTTPStatus.CONFLICT, f"participant id {participant!r} has already started: "
                                   "enter your resume code to come back", {"exists": True})
        else:
            participant = new_participant_id()
            while not self.server.store.add_participant(participant, token_digest(token), utc_now()):
                participant = new_participant_id()
        if self.server.study.consent:
            self.server.store.consent(participant, utc_now())
        logger.info("new participant %s", participant)
        self._json(HTTPStatus.CREATED, {"participant": participant, "token": token})

    def _plan(self, segments, query) -> None:
        study = self.server.study
        participant = _participant((query.get("participant") or [None])[0])
        issued = self._authorise(participant, self.headers.get(TOKEN_HEADER))
        saved = self.server.store.saved(participant)
        preferred = self.server.store.saved_preferences(participant)
        trials = []
        for planned in participant_plan(study, participant):
            trial = planned.trial
            criteria = study.criteria_of(trial)
            base = f"/media/{participant}/{trial.id}/"
            entry = {
                "trial": trial.id, "kind": "pairwise" if trial.pairwise else "rank", "criteria": criteria,
                "videos": [{"id": b, "url": base + b} for b, _ in planned.shown],
                "reference": {"url": base + "reference",
                              "kind": "video" if trial.reference.lower().endswith(VIDEO_SUFFIXES) else "image"}
                if trial.reference else None,
                "saved": None,
            }
            if trial.pairwise:
                answer = preferred.get(trial.id)
                if answer and set(answer) >= set(criteria):
                    # stored for video a; the page's value is for the left video
                    sign = 1 if planned.position_of(trial.slots(study.methods)[0]) == 1 else -1
                    entry["saved"] = {c: sign * answer[c] for c in criteria}
            else:
                answer = saved.get(trial.id)
                if answer and set(answer) >= set(criteria):
                    entry["saved"] = {c: [planned.blind_id_of(m) for m in methods] for c, methods in answer.items()}
            trials.append(entry)
        reply = {"participant": participant, "trials": trials, **self._completion(participant)}
        if issued:
            reply["token"] = issued
        self._json(HTTPStatus.OK, reply)

    def _completion(self, participant: str) -> dict:
        """``{"complete": bool}``, with the study's completion code and address once every trial is saved."""
        study, store = self.server.study, self.server.store
        done = set(store.saved(participant)) | set(store.saved_preferences(participant))
        complete = all(t.id in done for t in study.trials)
        reply = {"complete": complete}
        if complete and (study.completion_code or study.completion_url):
            reply["completion"] = {"code": study.completion_code, "url": study.completion_url}
        return reply

    def _media(self, segments, query) -> None:
        study = self.server.study
        _, participant, trial_id, video = segments
        if not is_valid_id(participant) or not is_valid_id(trial_id):
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
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
        self._file(relative)

    def _file(self, relative: str) -> None:
        # Resolved and checked now, not only when the study was loaded: a file replaced by a link
        # that leads out of the folder is not served. O_NOFOLLOW: the checked name is what is opened.
        try:
            path = self.server.study.file(relative)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            logger.warning("%s is missing or leads outside the study folder: not served", relative)
            raise RequestError(HTTPStatus.NOT_FOUND, "not found") from None
        with open(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RequestError(HTTPStatus.NOT_FOUND, "not found")
            self._stream(handle, path.name, info.st_size)

    def _stream(self, handle, name: str, size: int) -> None:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        start, end, status = 0, size - 1, HTTPStatus.OK
        ranged = self.headers.get("Range")
        match = RANGE_PATTERN.fullmatch(ranged.strip()) if ranged else None
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
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            self.wfile.write(chunk)
            remaining -= len(chunk)

    def _submit(self, segments, query) -> None:
        body = self._json_body()
        self._known_sender(body)
        study = self.server.study
        trial = study.trial(body.get("trial")) if is_valid_id(body.get("trial")) else None
        if trial is not None and trial.pairwise:
            participant, trial_id, submission = check_pairwise_submission(study, body)
            preferences = check_preferences(study, body, participant, trial_id)
            self._authorise(participant, body.get("token"))
            rows = preference_rows(study, participant, trial_id, submission, preferences, utc_now())
            store, answer = self.server.store.append_preferences, {"preferences": preferences}
        else:
            participant, trial_id, submission, rankings = check_submission(study, body)
            self._authorise(participant, body.get("token"))
            rows = submission_rows(study, participant, trial_id, submission, rankings, utc_now())
            store, answer = self.server.store.append, {"rankings": rankings}
        try:
            written = store(rows, submission)
        except SubmissionConflict as error:
            logger.warning("refused: participant %s, trial %s: %s", participant, trial_id, error)
            raise RequestError(HTTPStatus.CONFLICT, str(error), {"conflict": True}) from None
        logger.info("%s: participant %s, trial %s, submission %s", "saved" if written else "already saved",
                    participant, trial_id, submission)
        self._json(HTTPStatus.OK, {"saved": True, "duplicate": not written, "submission": submission,
                                   "trial": trial_id, **answer, **self._completion(participant)})

    def _report(self, segments, query) -> None:
        body = self._json_body()
        participant = _participant(body.get("participant"))
        self._known(participant)
        trial_id, video = body.get("trial"), body.get("video")
        planned = planned_trial(self.server.study, participant, trial_id) if is_valid_id(trial_id) else None
        method = planned.method_of(video) if planned is not None and isinstance(video, str) else None
        if method is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"no video {video!r} in trial {trial_id!r}")
        self._authorise(participant, body.get("token"))
        trial = planned.trial
        if trial.kind == "match":   # the slot is matched / mismatched: record the method with it
            method = f"{trial.method} ({method} speech)"
        new = self.server.store.report_video(participant, trial_id, method, utc_now())
        logger.warning("participant %s reports that the video of %s in trial %s does not play%s", participant,
                       method, trial_id, "" if new else " (again)")
        self._json(HTTPStatus.OK, {"reported": True})


GET_ROUTES = {"/api/study": StudyHandler._study, "/api/plan": StudyHandler._plan, "/media": StudyHandler._media}
POST_ROUTES = {"/api/participants": StudyHandler._new_participant, "/api/submit": StudyHandler._submit,
               "/api/report": StudyHandler._report}


def make_server(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                limits: Limits | None = None) -> StudyServer:
    """A server for the study in ``study_dir`` (the folder, or its ``study.json``) bound to (host,
    port); port 0 lets the OS choose.

    Call ``serve_forever()`` on it (``shutdown()`` and ``server_close()`` to stop). Raises
    ``StudyError`` (the study file), ``StoreError`` (its answers) or ``OSError`` (the address).
    """
    server = StudyServer((host, port), load_study(study_dir), limits)
    if host not in LOOPBACK:
        logger.warning("listening on %s: anyone who can reach it can register and submit answers", host)
    return server


def serve_in_thread(server: StudyServer) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread (for tests and notebooks)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def describe(server: StudyServer) -> str:
    """``serving 'title' (3 trials x 3 methods, 4 criteria) at http://127.0.0.1:8000/; ...``"""
    study = server.study
    return (f"serving {study.title!r} ({cli.count(len(study.trials), 'trial')} x "
            f"{cli.count(len(study.methods), 'method')}, "
            f"{cli.count(len(study.criteria), 'criterion', 'criteria')}) at {server.url}; answers are stored in "
            f"{server.store.path} and exported to {study.rankings_path}")


def announce(server: StudyServer) -> None:
    logger.info("%s", describe(server))


def serve(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          ready: Callable[[StudyServer], None] = announce, limits: Limits | None = None) -> None:
    """Serve the study in ``study_dir`` until interrupted (Ctrl-C): the command.

    ``ready`` is called with the server once it listens (by default it logs ``describe(server)``).
    Raises ``StudyError`` or ``StoreError`` when the study cannot be served, ``OSError`` when the
    address cannot be bound.
    """
    server = make_server(study_dir, host, port, limits)
    try:
        ready(server)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("serve", prog)
    parser.add_argument("--study", type=Path, required=True, metavar="DIR",
                        help="study folder (with study.json; the study.json itself stands for its folder)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; the server has no login and no TLS")
    parser.add_argument("--port", type=cli.int_in(0, 65535), default=8000, help="port (0: any free port)")
    parser.add_argument("--quiet", action="store_true", help="log only warnings and errors, not every request")
    defaults = Limits()
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help="connections served at once; more are answered 503 at once")
    parser.add_argument("--max-per-client", type=int, default=defaults.max_per_client,
                        help="connections from one address; behind a reverse proxy set it to --max-connections")
    parser.add_argument("--request-timeout", type=float, default=defaults.request_timeout,
                        help="seconds a client has to send a whole request (line, headers, body)")
    return parser


def print_address(server: StudyServer) -> None:
    # The command's output, on stdout even with --quiet: with --port 0 it is how a caller learns the port.
    print(describe(server), flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    cli.configure_logging(quiet=args.quiet)
    try:
        limits = Limits(args.max_connections, args.max_per_client, args.request_timeout)
    except ValueError as error:
        return cli.fail(error, parser.prog)
    try:
        serve(args.study, args.host, args.port, ready=print_address, limits=limits)
    except (StudyError, StoreError) as error:
        return cli.fail(error, parser.prog)
    except OSError as error:
        if error.filename is not None:   # the study folder's files (study.db, rankings.csv), not the address
            return cli.fail(f"{error.filename}: {error.strerror or error}", parser.prog)
        return cli.fail(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}", parser.prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
