"""The answer store: one SQLite database per study (``study.db``), with ``rankings.csv`` as its export.

Standard library only (``sqlite3``). What it promises, and how:

- *one row per answer*: a table of submissions (one "Save results" of one trial: a unique
  submission id, the participant, the trial, a digest of the answer, the time) and a table of
  answers (criterion, method, rank, shown position), indexed by participant;
- *a transaction per submission*: ``BEGIN IMMEDIATE`` ... ``COMMIT`` in WAL mode with
  ``synchronous=FULL``, so a save is complete or absent, and the server acknowledges it only after
  the commit is on disk. A ``kill -9`` or a power cut loses no acknowledged answer;
- *no answer twice, no false acknowledgement*: the submission id is unique. The same id sent again
  with the same answer (a retry after a lost reply) is reported as a duplicate and stores nothing;
  the same id with a different answer, or from another participant or trial, raises
  ``SubmissionConflict`` (the server answers 409): a success always means "this exact answer is
  stored";
- *participants with a secret*: each participant has a resume token, kept as its SHA-256 only;
- ``rankings.csv`` (``schema.SERVER_COLUMNS``, today's exact format, rows in the order they were
  saved) is rewritten atomically after every save and at start-up, so it is never older than the
  last acknowledged save, except after a crash, until the next start. The database is the truth; the
  CSV is what ``analyze`` and other tools read;
- *pairwise answers* (a preference between two videos per criterion) are rows of the table
  ``preferences`` under the same submissions, exported to ``pairwise.csv`` (``PAIRWISE_COLUMNS``,
  the format ``userstudy.pairwise`` reads) in the same way;
- *consent*: the time each participant agreed to the study's consent text (table ``consents``);
- *migration*: a study folder with a ``rankings.csv`` written by an earlier server (which kept no
  database) is imported into a new ``study.db`` at start-up; an incomplete last line that a crash
  left in that file is moved to ``rankings.csv.torn-<time>`` first, and the rest of a submission cut
  short to ``rankings.csv.incomplete-<time>`` (given ``expected_rows``).

Several server processes on one folder are safe (SQLite's locking, a busy timeout of 30 s).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from userstudy.files import atomic_path
from userstudy.schema import SERVER_COLUMNS

# The columns of pairwise.csv: what userstudy.pairwise reads, plus where video a was shown (1 = left)
# and the submission.
PAIRWISE_COLUMNS = ("participant", "trial", "criterion", "method_a", "method_b", "kind", "preference",
                    "a_position", "submission", "submitted_at")

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2   # 2: preferences and consents (tables added; a version-1 database is upgraded)
SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT,              -- NULL: imported from an old rankings.csv, claimed at first resume
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    participant TEXT NOT NULL,
    trial TEXT NOT NULL,
    digest TEXT NOT NULL,           -- SHA-256 of the un-blinded answer: tells a retry from a change
    submitted_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_by_participant ON submissions (participant, trial, seq);
CREATE TABLE IF NOT EXISTS answers (
    submission INTEGER NOT NULL REFERENCES submissions (seq),
    criterion TEXT NOT NULL,
    method TEXT NOT NULL,
    rank INTEGER NOT NULL,
    position INTEGER,
    UNIQUE (submission, criterion, method)
);
CREATE TABLE IF NOT EXISTS preferences (
    submission INTEGER NOT NULL REFERENCES submissions (seq),
    criterion TEXT NOT NULL,
    method_a TEXT NOT NULL,
    method_b TEXT NOT NULL,
    kind TEXT NOT NULL,             -- compare, or match (a = the video with the clip's own speech)
    preference INTEGER NOT NULL,    -- positive: video a preferred; 0: equal
    a_position INTEGER NOT NULL,    -- where video a was shown: 1 = left, 2 = right
    UNIQUE (submission, criterion)
);
CREATE TABLE IF NOT EXISTS consents (
    participant TEXT PRIMARY KEY,
    consented_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS video_reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    participant TEXT NOT NULL,
    trial TEXT NOT NULL,
    method TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    UNIQUE (participant, trial, method)
);
"""


class StoreError(RuntimeError):
    """The study's answers cannot be used by the server (e.g. a rankings.csv with other columns)."""


class SubmissionConflict(StoreError):
    """A submission id already stored with another answer, participant or trial (HTTP 409)."""


@dataclass(frozen=True)
class Participant:
    id: str
    token_sha256: str | None


def token_digest(token: str) -> str:
    """The SHA-256 (hex) under which a resume token is kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def answer_digest(participant: str, trial: str, rows: Iterable[tuple]) -> str:
    """SHA-256 of a submission's content: participant, trial and each (criterion, method, rank).

    ``rows`` are in ``SERVER_COLUMNS`` order; their order, position and time do not count.
    """
    content = sorted((str(r[2]), str(r[3]), int(r[4])) for r in rows)
    text = json.dumps([participant, trial, content], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def csv_lines(rows: Iterable[tuple]) -> str:
    """Rows as CSV text with ``\\n`` line ends (the same dialect as pandas' ``to_csv``)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


HEADER = csv_lines([SERVER_COLUMNS])
PAIRWISE_HEADER = csv_lines([PAIRWISE_COLUMNS])


def preference_digest(participant: str, trial: str, rows: Iterable[tuple]) -> str:
    """SHA-256 of a pairwise submission's content: participant, trial and each (criterion, preference)."""
    content = sorted((str(r[2]), int(r[6])) for r in rows)
    text = json.dumps(["pairwise", participant, trial, content], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AnswerStore:
    """The answers of one study: ``db_path`` (SQLite) and its export ``csv_path``.

    Thread-safe: one connection, one lock; every public method is one transaction.
    Raises ``StoreError`` when the database or the CSV cannot be used.
    """

    def __init__(self, db_path: str | os.PathLike, csv_path: str | os.PathLike | None = None,
                 pairwise_path: str | os.PathLike | None = None,
                 expected_rows: Callable[[str], int | None] | None = None):
        # expected_rows(trial): the rows one complete submission of a trial has (criteria x videos; None:
        # unknown), so that an import sets aside a submission a crash cut short (``_import_csv``)
        self.expected_rows = expected_rows
        self.path = Path(db_path)
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.pairwise_path = Path(pairwise_path) if pairwise_path is not None else None
        self.recovered: Path | None = None
        self._lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._exported = -1
        self._check_csv_header()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer version of userstudy (schema {version}; "
                                 f"this one knows {SCHEMA_VERSION})")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable SQLite database ({error})") from None
        with self._lock:
            empty = self._db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == 0
        if empty and self.csv_path is not None and self.csv_path.exists():
            self._import_csv()
        self.export_csv()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- participants -----------------------------------------------------------------------------

    def participant(self, participant: str) -> Participant | None:
        with self._lock:
            row = self._db.execute("SELECT id, token_sha256 FROM participants WHERE id = ?",
                                   (participant,)).fetchone()
        return Participant(*row) if row else None

    def add_participant(self, participant: str, token_sha256: str, created_at: str) -> bool:
        """Register a participant; False (nothing changed) when the id exists."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO participants (id, token_sha256, created_at) "
                                      "VALUES (?, ?, ?)", (participant, token_sha256, created_at))
        return cursor.rowcount == 1

    def claim(self, participant: str, token_sha256: str) -> bool:
        """Give a token to a participant who has none (imported from an old CSV); False if one was set."""
        with self._lock:
            cursor = self._db.execute("UPDATE participants SET token_sha256 = ? WHERE id = ? AND "
                                      "token_sha256 IS NULL", (token_sha256, participant))
        return cursor.rowcount == 1

    # -- answers ----------------------------------------------------------------------------------

    def append(self, rows: list[tuple], submission: str) -> bool:
        """Store one submission's rows (``SERVER_COLUMNS`` order, one participant and trial) durably.

        Returns True when stored, False when this exact submission is already stored (a retry).
        Raises ``SubmissionConflict`` when the id is stored with another answer, participant or trial.
        """
        participant, trial = rows[0][0], rows[0][1]
        if any((r[0], r[1], r[6]) != (participant, trial, submission) for r in rows):
            raise ValueError("one submission is one participant's answer to one trial")
        return self._store(rows, submission, participant, trial, answer_digest(participant, trial, rows),
                           self._insert)

    def append_preferences(self, rows: list[tuple], submission: str) -> bool:
        """Store one pairwise submission's rows (``PAIRWISE_COLUMNS`` order) durably; as ``append``."""
        participant, trial = rows[0][0], rows[0][1]
        if any((r[0], r[1], r[8]) != (participant, trial, submission) for r in rows):
            raise ValueError("one submission is one participant's answer to one trial")
        return self._store(rows, submission, participant, trial, preference_digest(participant, trial, rows),
                           self._insert_preferences)

    def _store(self, rows, submission, participant, trial, digest, insert) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = insert(rows, submission, participant, trial, digest)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if seq is None:
            return False
        self.export_csv(through=seq)
        return True

    def _insert_preferences(self, rows: list[tuple], submission: str, participant: str, trial: str,
                            digest: str) -> int | None:
        seq = self._submission(submission, participant, trial, digest, rows[0][9])
        if seq is not None:
            self._db.executemany("INSERT INTO preferences (submission, criterion, method_a, method_b, kind, "
                                 "preference, a_position) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [(seq, r[2], r[3], r[4], r[5], int(r[6]), int(r[7])) for r in rows])
        return seq

    def _insert(self, rows: list[tuple], submission: str, participant: str, trial: str,
                digest: str) -> int | None:
        seq = self._submission(submission, participant, trial, digest, rows[0][7])
        if seq is not None:
            self._db.executemany("INSERT INTO answers (submission, criterion, method, rank, position) "
                                 "VALUES (?, ?, ?, ?, ?)", [(seq, r[2], r[3], int(r[4]), r[5]) for r in rows])
        return seq

    def _submission(self, submission: str, participant: str, trial: str, digest: str,
                    submitted_at: str) -> int | None:
        """Insert a submission's row and return its seq; None for a retry of a stored one."""
        known = self._db.execute("SELECT participant, trial, digest FROM submissions WHERE id = ?",
                                 (submission,)).fetchone()
        if known is not None:
            if known == (participant, trial, digest):
                return None
            what = ("another participant's" if known[0] != participant else
                    "another trial's" if known[1] != trial else "a different")
            raise SubmissionConflict(f"submission id {submission!r} is already stored with {what} answer; "
                                     "nothing was saved (send a changed answer under a new submission id)")
        self._db.execute("INSERT OR IGNORE INTO participants (id, token_sha256, created_at) VALUES (?, NULL, ?)",
                         (participant, submitted_at))
        return self._db.execute("INSERT INTO submissions (id, participant, trial, digest, submitted_at) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (submission, participant, trial, digest, submitted_at)).lastrowid

    def saved(self, participant: str) -> dict[str, dict[str, list[str]]]:
        """The participant's latest saved answers: trial -> criterion -> methods, best first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.trial, a.criterion, a.method, a.rank, s.seq FROM submissions s "
                "JOIN answers a ON a.submission = s.seq WHERE s.participant = ? ORDER BY s.seq",
                (participant,)).fetchall()
        latest: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
        for trial, criterion, method, rank, seq in rows:
            if latest.get((trial, criterion), (None,))[0] != seq:
                latest[(trial, criterion)] = (seq, {})
            latest[(trial, criterion)][1][method] = rank
        answers: dict[str, dict[str, list[str]]] = {}
        for (trial, criterion), (_, ranks) in latest.items():
            answers.setdefault(trial, {})[criterion] = sorted(ranks, key=ranks.get)
        return answers

    def saved_preferences(self, participant: str) -> dict[str, dict[str, int]]:
        """The participant's latest pairwise answers: trial -> criterion -> preference (positive: a)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.trial, p.criterion, p.preference FROM submissions s JOIN preferences p "
                "ON p.submission = s.seq WHERE s.participant = ? ORDER BY s.seq", (participant,)).fetchall()
        answers: dict[str, dict[str, int]] = {}
        for trial, criterion, preference in rows:   # later saves overwrite earlier ones
            answers.setdefault(trial, {})[criterion] = preference
        return answers

    def consent(self, participant: str, consented_at: str) -> None:
        """Record that a participant agreed to the study's consent text (the first time counts)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO consents (participant, consented_at) VALUES (?, ?)",
                             (participant, consented_at))

    def consents(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT participant, consented_at FROM consents").fetchall())

    def has_submission(self, submission: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM submissions WHERE id = ?", (submission,)).fetchone() is not None

    def submission_counts(self) -> dict[str, int]:
        """Submission id -> number of answer rows stored under it (for checks and tests)."""
        with self._lock:
            return dict(self._db.execute("SELECT s.id, COUNT(*) FROM submissions s JOIN answers a "
                                         "ON a.submission = s.seq GROUP BY s.id").fetchall())

    def answered_trials(self) -> set[str]:
        """The trials the stored submissions answer."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT trial FROM submissions").fetchall()}

    def report_video(self, participant: str, trial: str, method: str, reported_at: str) -> bool:
        """Record that a participant's video of ``method`` in ``trial`` does not play; False if already."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO video_reports (participant, trial, method, "
                                      "reported_at) VALUES (?, ?, ?, ?)", (participant, trial, method, reported_at))
        return cursor.rowcount == 1

    def video_reports(self) -> list[tuple[str, str, str, str]]:
        """Every (participant, trial, method, reported_at) report, oldest first."""
        with self._lock:
            return self._db.execute("SELECT participant, trial, method, reported_at FROM video_reports "
                                    "ORDER BY seq").fetchall()

    # -- the CSV export ---------------------------------------------------------------------------

    def rows(self) -> tuple[int, list[tuple]]:
        """(last submission seq, every answer row in ``SERVER_COLUMNS`` order, in the order saved)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                last = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM submissions").fetchone()[0]
                rows = self._db.execute(
                    "SELECT s.participant, s.trial, a.criterion, a.method, a.rank, a.position, s.id, "
                    "s.submitted_at FROM submissions s JOIN answers a ON a.submission = s.seq "
                    "ORDER BY s.seq, a.rowid").fetchall()
            finally:
                self._db.execute("COMMIT")
        return last, rows

    def preference_rows(self) -> list[tuple]:
        """Every pairwise answer row in ``PAIRWISE_COLUMNS`` order, in the order saved."""
        with self._lock:
            return self._db.execute(
                "SELECT s.participant, s.trial, p.criterion, p.method_a, p.method_b, p.kind, p.preference, "
                "p.a_position, s.id, s.submitted_at FROM submissions s JOIN preferences p "
                "ON p.submission = s.seq ORDER BY s.seq, p.rowid").fetchall()

    def export_csv(self, through: int | None = None) -> None:
        """Rewrite ``rankings.csv`` atomically from the database.

        With ``through``, do nothing if an export already covered submission ``through`` (saves that
        arrive together share one export).
        """
        if self.csv_path is None:
            return
        with self._export_lock:
            if through is not None and self._exported >= through:
                return
            last, rows = self.rows()
            if rows or self.csv_path.exists():
                with atomic_path(self.csv_path) as temporary:
                    temporary.write_text(HEADER + csv_lines(rows), encoding="utf-8")
            if self.pairwise_path is not None:
                preferences = self.preference_rows()
                if preferences or self.pairwise_path.exists():
                    with atomic_path(self.pairwise_path) as temporary:
                        temporary.write_text(PAIRWISE_HEADER + csv_lines(preferences), encoding="utf-8")
            self._exported = last

    def _check_csv_header(self) -> None:
        if self.csv_path is None or not self.csv_path.exists() or self.csv_path.stat().st_size == 0:
            return
        with open(self.csv_path, "rb") as handle:       # bytes: a text-mode readline would stop at a lone '\r'
            # utf-8-sig: a byte order mark (the file saved again by a spreadsheet) is read past
            header = handle.readline(64 * 1024).decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if header != HEADER.rstrip("\n"):
            raise StoreError(f"{self.csv_path} starts with the columns {header!r}; the server writes "
                             f"{','.join(SERVER_COLUMNS)}. Move the file away or start a new study folder.")

    def _set_aside_incomplete(self, groups: dict[str, list[tuple]]) -> None:
        """Remove from ``groups`` the submissions with fewer or more rows than their trial's complete answer
        (``expected_rows``): the earlier server appended a submission's rows one by one, so a crash left the
        lines before the torn one, an answer never acknowledged. Imported, the page showed the trial as saved
        with a video unranked, and ``analyze`` stopped at the incomplete block. They go to
        ``rankings.csv.incomplete-<time>`` (the server's columns), and a warning names it."""
        if self.expected_rows is None:
            return
        cut = {submission: rows for submission, rows in groups.items()
               if self.expected_rows(rows[0][1]) not in (None, len(rows))}
        if not cut:
            return
        aside = self.csv_path.with_name(f"{self.csv_path.name}.incomplete-{time.strftime('%Y%m%dT%H%M%S')}")
        aside.write_text(HEADER + csv_lines([row for rows in cut.values() for row in rows]), encoding="utf-8")
        for submission in cut:
            del groups[submission]
        logger.warning("%s: %d submission(s) with fewer or more rows than their trial's complete answer (a write "
                       "interrupted before it was acknowledged: %s) were not imported; their rows are in %s",
                       self.csv_path, len(cut), ", ".join(f"{rows[0][0]} on {rows[0][1]} ({len(rows)} of "
                                                          f"{self.expected_rows(rows[0][1])} rows)"
                                                          for rows in list(cut.values())[:5]), aside)

    def _import_csv(self) -> None:
        """Import a rankings.csv written by the earlier server (no database) into the new database."""
        data = self.csv_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            torn = self.csv_path.with_name(f"{self.csv_path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}")
            torn.write_bytes(data[keep:])
            data = data[:keep]
            with atomic_path(self.csv_path) as temporary:
                temporary.write_bytes(data)
            self.recovered = torn
            logger.warning("an incomplete last line of %s (a write interrupted before it was acknowledged) "
                           "was moved to %s", self.csv_path, torn)
        lines = data.decode("utf-8-sig").splitlines()[1:]
        groups: dict[str, list[tuple]] = {}
        problems = []
        for number, row in enumerate(csv.reader(lines), start=2):
            if len(row) != len(SERVER_COLUMNS) or not row[4].isdecimal() or not row[6]:
                problems.append(f"line {number}: {row!r}")
                continue
            groups.setdefault(row[6], []).append(tuple(row[:4]) + (int(row[4]), int(row[5]) if
                                                  row[5].isdecimal() else None) + tuple(row[6:]))
        if problems:
            raise StoreError(f"{self.csv_path}: cannot import lines the server did not write: "
                             + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self._set_aside_incomplete(groups)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for submission, rows in groups.items():
                    participant, trial = rows[0][0], rows[0][1]
                    self._insert(rows, submission, participant, trial, answer_digest(participant, trial, rows))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        logger.info("imported %d submissions from %s into %s", len(groups), self.csv_path, self.path)
