"""Progress of long loops (bootstrap resamples, power simulations) as plain log lines on stderr.

The commands log at INFO to stderr (``cli.configure_logging``); a loop that may run for more than a
few seconds says how far it is, at most one line every ``PROGRESS_SECONDS``, in the page's words:
``Bradley-Terry bootstrap: 400 of 1000 resamples``. A loop that ends sooner logs nothing, so short
analyses stay quiet. Standard library only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

PROGRESS_SECONDS = 2.0


class Progress:
    """Count the steps of a loop of ``total`` steps and log ``WHAT: DONE of TOTAL UNIT`` on ``logger``
    at INFO once ``every`` seconds (default ``PROGRESS_SECONDS``) have passed since the start or the
    last line, and a last line when the loop is done if any line was logged. ``clock`` (seconds) is
    for tests."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str = "",
                 every: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.logger, self.what, self.total, self.unit = logger, what, int(total), unit
        self.every = PROGRESS_SECONDS if every is None else every
        self.clock = clock
        self.done = 0
        self.lines = 0
        self._last = clock()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done, logging a line when it is time (or when all are done)."""
        self.done += steps
        now = self.clock()
        finished = self.done >= self.total
        if (finished and self.lines) or (not finished and now - self._last >= self.every):
            self._last = now
            self.lines += 1
            unit = f" {self.unit}" if self.unit else ""
            self.logger.info("%s: %d of %d%s%s", self.what, self.done, self.total, unit,
                             " (done)" if finished else "")
