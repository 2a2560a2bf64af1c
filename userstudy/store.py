"""The answer store: the study's append-only ``rankings.csv``, written so that no saved answer is lost.

Standard library only. Guarantees, and how:

- *atomic*: one submission (every criterion of one trial) is one ``os.write`` of complete lines on
  a file opened with ``O_APPEND``, under a thread lock and an ``flock`` (two server processes on one
  study are safe too); if the write fails half-way the file is cut back to its previous size;
- *durable*: the server answers "saved" only after ``fsync`` (and, for a new file, an fsync of the
  folder), so an answer acknowledged before a crash or restart is on disk;
- *no duplicates*: each submission carries an id; a retried request with an id already in the
  file is acknowledged without writing again;
- *restart*: the file is the only state. It is re-read (incrementally) to know each participant's
  saved answers; a last line left incomplete by a crash mid-write (never acknowledged) is moved to
  ``rankings.csv.torn-<time>`` at start-up rather than left to corrupt the CSV.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import threading
import time
from pathlib import Path

from userstudy.schema import SERVER_COLUMNS

try:
    import fcntl
except ImportError:  # not on Windows: the thread lock alone then guards a single server process
    fcntl = None

logger = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The answers file cannot be used by the server (e.g. it has other columns)."""


def csv_lines(rows: list[tuple]) -> str:
    """Rows as CSV text with ``\\n`` line ends (the same dialect as pandas' ``to_csv``)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


HEADER = csv_lines([SERVER_COLUMNS])


class AnswerStore:
    """Appends submissions to ``path`` and indexes the latest answer per participant, trial, criterion."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._offset = 0
        self._submissions: set[str] = set()
        # (participant, trial) -> criterion -> (submission, {method: rank})
        self._latest: dict[tuple[str, str], dict[str, tuple[str, dict[str, int]]]] = {}
        self.recovered: Path | None = None
        with self._lock:
            self.recovered = self._recover_torn_tail()
            self._refresh()

    def _recover_torn_tail(self) -> Path | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, "rb+") as handle:
            if fcntl:
                fcntl.flock(handle, fcntl.LOCK_EX)
            data = handle.read()
            if data.endswith(b"\n"):
                return None
            keep = data.rfind(b"\n") + 1
            torn = self.path.with_name(f"{self.path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}")
            torn.write_bytes(data[keep:])
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        logger.warning("an incomplete last line of %s (a write interrupted before it was acknowledged) was "
                       "moved to %s", self.path, torn)
        return torn

    def _refresh(self) -> None:
        """Index the lines appended since the last look (by this or another process)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            return
        lines = complete.decode("utf-8").splitlines()
        if self._offset == 0:
            header, lines = lines[0], lines[1:]
            if header != HEADER.rstrip("\n"):
                raise StoreError(f"{self.path} starts with the columns {header!r}; the server appends "
                                 f"{','.join(SERVER_COLUMNS)}. Move the file away or start a new study folder.")
        columns = {name: i for i, name in enumerate(SERVER_COLUMNS)}
        for row in csv.reader(lines):
            if len(row) != len(SERVER_COLUMNS):
                continue  # not ours to judge here; the analysis reports malformed lines by number
            participant, trial = row[columns["participant"]], row[columns["trial"]]
            criterion = row[columns["criterion"]]
            submission = row[columns["submission"]]
            self._submissions.add(submission)
            answers = self._latest.setdefault((participant, trial), {})
            if criterion not in answers or answers[criterion][0] != submission:
                answers[criterion] = (submission, {})
            try:
                answers[criterion][1][row[columns["method"]]] = int(row[columns["rank"]])
            except ValueError:
                continue
        self._offset += len(complete)

    def append(self, rows: list[tuple], submission: str) -> bool:
        """Append one submission's rows (in ``SERVER_COLUMNS`` order) durably.

        Returns False, writing nothing, when ``submission`` is already stored (a retry).
        """
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if fcntl:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._refresh()
                if submission in self._submissions:
                    return False
                size = os.fstat(fd).st_size
                data = ((HEADER if size == 0 else "") + csv_lines(rows)).encode("utf-8")
                try:
                    written = 0
                    while written < len(data):
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, size)  # no torn line for the next reader
                    raise
                if created:
                    # The new file's name must reach the disk too, not only its content.
                    directory = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(directory)
                    finally:
                        os.close(directory)
                self._refresh()
                return True
            finally:
                if fcntl:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def saved(self, participant: str) -> dict[str, dict[str, list[str]]]:
        """The participant's latest saved answers: trial -> criterion -> methods, best first."""
        with self._lock:
            self._refresh()
            return {trial: {criterion: sorted(ranks, key=ranks.get) for criterion, (_, ranks) in answers.items()}
                    for (p, trial), answers in self._latest.items() if p == participant}

    def has_submission(self, submission: str) -> bool:
        with self._lock:
            self._refresh()
            return submission in self._submissions
