"""Attention checks: scoring the trials with a known answer, and the rule that excludes participants.

A study file marks its check trials (``userstudy.study``: ``"check": {"kind": "last" | "repeat", ...}``).
Here each participant's answers to them are scored, and the participants who fail too many are
excluded from the analysis, each with the reason. The check trials themselves never enter the
statistics: their videos are broken on purpose (``last``) or repeat another trial (``repeat``).

- ``last``: passed when the broken video (the slot of the check's ``method``) has rank k, the
  last, on every criterion of the check that the participant answered.
- ``repeat``: passed when the mean, over the check's criteria, of Kendall's tau-b between the
  participant's ranking of the repeat and of the original trial (the same methods, shown under
  fresh ids and positions) is at least ``repeat_min_tau``. For k = 3, tau is 1 for the same
  order, 1/3 for one adjacent swap, -1 for the reverse; a participant who ranks at random has a
  mean tau of 0.

The rule: a participant with more than ``max_failed`` failed checks is excluded. A participant
who answered no check is kept, and counted as unchecked in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from userstudy.schema import CRITERION, METHOD, PARTICIPANT, RANK, TRIAL
from userstudy.study import AttentionCheck

RESULT_COLUMNS = ["participant", "trial", "kind", "criteria", "score", "passed", "detail"]
# AttentionSummary.heavy_exclusion warns above this share of the participants excluded, or below this many left.
HEAVY_EXCLUSION = 0.25
FEW_LEFT = 5
EXCLUSION_COLUMNS = ["participant", "checks_answered", "checks_failed", "excluded", "reason"]
UNSCORED_COLUMNS = ["participant", "trial", "of"]


@dataclass
class AttentionSummary:
    """The scored checks (``results``: one row per participant and check trial answered) and the
    rule's outcome per participant who answered a check (``participants``)."""

    checks: dict[str, AttentionCheck]
    results: pd.DataFrame
    participants: pd.DataFrame
    max_failed: int
    repeat_min_tau: float
    # repeats answered but not scorable (participant, trial, of): the original trial was not answered on
    # any of the repeat's criteria; such a participant is not counted as one who answered no check
    unscored: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=UNSCORED_COLUMNS))

    @property
    def excluded(self) -> list[str]:
        rows = self.participants
        return sorted(rows.loc[rows["excluded"], "participant"]) if len(rows) else []

    def heavy_exclusion(self, participants: int) -> str:
        """A warning when the rule excluded more than ``HEAVY_EXCLUSION`` of the ``participants`` who
        answered (or fewer than ``FEW_LEFT`` are left), saying how many of the excluded failed repeat checks
        alone: an attentive participant fails those too when the methods are close; "" otherwise."""
        excluded = self.excluded
        if not excluded or (len(excluded) <= HEAVY_EXCLUSION * participants
                            and participants - len(excluded) >= FEW_LEFT):
            return ""
        failed = self.results[~self.results["passed"].astype(bool)]
        only_repeats = sum(1 for person in excluded
                           if set(failed.loc[failed["participant"] == person, "kind"]) == {"repeat"})
        words = (f"the attention checks excluded {len(excluded)} of {participants} participants, leaving "
                 f"{participants - len(excluded)}")
        if only_repeats:
            words += (f"; {only_repeats} of them failed repeat checks alone, which attentive participants fail too "
                      f"when the methods are close (mean tau >= {self.repeat_min_tau:g} asked; see the README's "
                      "attention checks): review --max-failed-checks and --repeat-min-tau before reading the tests")
        return words


def _criteria_of(check: AttentionCheck, answered: list[str]) -> list[str]:
    return [c for c in (check.criteria or answered) if c in answered]


def score_checks(data: pd.DataFrame, checks: dict[str, AttentionCheck],
                 repeat_min_tau: float = 0.5) -> pd.DataFrame:
    """Score each participant's answers to the check trials.

    ``data``: checked rankings (``CheckedRankings.data``: participant, trial, criterion, method,
    rank, k). ``checks``: trial id -> its check. Returns one row per (participant, check trial)
    with at least one answered criterion of the check: ``criteria`` (those scored, ``; ``-joined),
    ``score`` (``last``: the number of those criteria where the broken video was last; ``repeat``:
    the mean Kendall tau-b), ``passed`` and a ``detail`` in words. A repeat whose original trial
    the participant did not answer on a criterion is not scored on it.
    """
    rows = []
    blocks = {key: group.set_index(METHOD)[RANK] for key, group in
              data[data[TRIAL].isin(set(checks) | {c.of for c in checks.values() if c.of})]
              .groupby([PARTICIPANT, TRIAL, CRITERION], sort=True)}
    answered: dict[tuple[str, str], list[str]] = {}
    for participant, trial, criterion in blocks:
        answered.setdefault((participant, trial), []).append(criterion)
    for (participant, trial), criteria in sorted(answered.items()):
        check = checks.get(trial)
        if check is None:
            continue
        if check.kind == "last":
            scored = _criteria_of(check, criteria)
            ranks = {c: (int(blocks[participant, trial, c][check.method]), len(blocks[participant, trial, c]))
                     for c in scored}
            wrong = [f"ranked {r} of {k} on {c}" for c, (r, k) in ranks.items() if r != k]
            if not scored:
                continue
            rows.append({"participant": participant, "trial": trial, "kind": "last", "criteria": "; ".join(scored),
                         "score": float(len(scored) - len(wrong)), "passed": not wrong,
                         "detail": (f"the broken video (slot of {check.method!r}) "
                                    + ("was last on each criterion" if not wrong else "; ".join(wrong)))})
        else:
            scored = [c for c in _criteria_of(check, criteria) if (participant, check.of, c) in blocks]
            if not scored:
                continue
            taus = {}
            for c in scored:
                repeat, original = blocks[participant, trial, c], blocks[participant, check.of, c]
                methods = sorted(original.index)
                taus[c] = float(stats.kendalltau(original[methods].to_numpy(), repeat[methods].to_numpy()).statistic)
            mean = sum(taus.values()) / len(taus)
            rows.append({"participant": participant, "trial": trial, "kind": "repeat", "criteria": "; ".join(scored),
                         "score": mean, "passed": mean >= repeat_min_tau,
                         "detail": f"repeat of {check.of!r}: mean Kendall tau {mean:.3f} "
                                   f"({'>=' if mean >= repeat_min_tau else '<'} {repeat_min_tau:g}; "
                                   + ", ".join(f"{c} {t:.3f}" for c, t in taus.items()) + ")"})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def unscored_repeats(data: pd.DataFrame, checks: dict[str, AttentionCheck], results: pd.DataFrame) -> pd.DataFrame:
    """The repeat checks a participant answered that ``score_checks`` could not score (``results`` has no
    row for them: the original trial was not answered on any of the repeat's criteria), one row
    (participant, trial, of) each."""
    repeats = {trial for trial, check in checks.items() if check.kind == "repeat"}
    answered = data.loc[data[TRIAL].isin(repeats), [PARTICIPANT, TRIAL]].drop_duplicates()
    scored = set(zip(results["participant"], results["trial"]))
    rows = [{"participant": p, "trial": t, "of": checks[t].of} for p, t in sorted(map(tuple, answered.to_numpy()))
            if (p, t) not in scored]
    return pd.DataFrame(rows, columns=UNSCORED_COLUMNS)


def apply_exclusion_rule(results: pd.DataFrame, max_failed: int = 0) -> pd.DataFrame:
    """One row per participant with a scored check: how many were answered and failed, whether the
    participant is excluded (more than ``max_failed`` failed) and why (the failed checks' details)."""
    if max_failed < 0:
        raise ValueError(f"max_failed must be 0 or more, got {max_failed}")
    rows = []
    for participant, own in results.groupby("participant", sort=True):
        failed = own[~own["passed"].astype(bool)]
        excluded = len(failed) > max_failed
        reason = "; ".join(f"trial {r.trial} ({r.kind}): {r.detail}" for r in failed.itertuples())
        if excluded:
            reason = f"failed {len(failed)} of {len(own)} checks (more than {max_failed} allowed): {reason}"
        rows.append({"participant": participant, "checks_answered": len(own), "checks_failed": len(failed),
                     "excluded": excluded, "reason": reason})
    return pd.DataFrame(rows, columns=EXCLUSION_COLUMNS).astype({"excluded": bool})


def attention_summary(data: pd.DataFrame, checks: dict[str, AttentionCheck], max_failed: int = 0,
                      repeat_min_tau: float = 0.5) -> AttentionSummary:
    """``score_checks`` then ``apply_exclusion_rule``."""
    if not -1.0 <= repeat_min_tau <= 1.0:
        raise ValueError(f"repeat_min_tau is a Kendall tau, between -1 and 1; got {repeat_min_tau}")
    results = score_checks(data, checks, repeat_min_tau)
    unscored = unscored_repeats(data, checks, results)
    return AttentionSummary(checks, results, apply_exclusion_rule(results, max_failed), max_failed, repeat_min_tau,
                            unscored)
