"""The contract between the ranking page, the analysis and other tools: columns and criteria.

Standard library only, because the server (which must not need pandas) and the analysis both use
it. ``rankings.csv`` is long format, one row per (participant, trial, criterion, method):

- required: ``participant``, ``trial``, ``criterion``, ``method``, ``rank`` (1 = best, whole numbers
  1..k where k is the number of methods ranked on that criterion);
- optional: ``position`` (1-based place where the method's video was shown, left to right),
  ``submission`` (id of one "Save results"; a block saved again later is a resubmission and the
  latest one counts), ``submitted_at`` (ISO 8601 UTC time of that save). Other columns are kept
  and ignored.
"""

from __future__ import annotations

import re

PARTICIPANT, TRIAL, CRITERION, METHOD, RANK = "participant", "trial", "criterion", "method", "rank"
POSITION, SUBMISSION, SUBMITTED_AT = "position", "submission", "submitted_at"

REQUIRED_COLUMNS: tuple[str, ...] = (PARTICIPANT, TRIAL, CRITERION, METHOD, RANK)
# The order in which the server writes its rows; analysis accepts any order of columns.
SERVER_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + (POSITION, SUBMISSION, SUBMITTED_AT)

# One ranking: a participant orders every method's video of one trial on one criterion.
BLOCK_COLUMNS: tuple[str, ...] = (PARTICIPANT, TRIAL, CRITERION)

# The four criteria of the seed paper's study, in the order of its tables.
PAPER_CRITERIA: tuple[str, ...] = (
    "identity preservation",
    "visual quality",
    "temporal consistency",
    "sound-video synchronization",
)

# The question shown with each criterion on the ranking page (a study file may override them).
PAPER_QUESTIONS: dict[str, str] = {
    "identity preservation": "Which video best preserves the identity of the person in the reference?",
    "visual quality": "Which video has the best visual quality (sharp, free of artefacts)?",
    "temporal consistency": "Which video is the most temporally consistent (no flicker, no jumps)?",
    "sound-video synchronization": "In which video do the lips and gestures best match the speech?",
}


def criterion_slug(criterion: str) -> str:
    """The file-name form of a criterion: ``"sound-video synchronization"`` -> ``sound_video_synchronization``.

    Lower case; every run of characters other than ASCII letters and digits becomes one ``_``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", criterion.lower()).strip("_")
    if not slug:
        raise ValueError(f"criterion {criterion!r} has no letter or digit to name a file by")
    return slug


def order_criteria(criteria: list[str] | tuple[str, ...]) -> list[str]:
    """The paper's criteria first in the paper's order, then any others in the order given."""
    present = list(dict.fromkeys(criteria))
    paper = [c for c in PAPER_CRITERIA if c in present]
    return paper + [c for c in present if c not in PAPER_CRITERIA]


def check_slugs(criteria: list[str]) -> None:
    """Two criteria that would share a file name (``a b`` and ``a-b``) are refused, not overwritten."""
    seen: dict[str, str] = {}
    for criterion in criteria:
        slug = criterion_slug(criterion)
        if slug in seen:
            raise ValueError(f"criteria {seen[slug]!r} and {criterion!r} would both be written as "
                             f"*_{slug}.csv; rename one")
        seen[slug] = criterion
