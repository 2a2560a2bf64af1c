"""The result of analysing a ranking study: what ``analyze.analyze_rankings`` computes, and what the
figure (``figures``), the report (``report``) and the files (``analyze.write_analysis``) are made from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from userstudy.attention import AttentionSummary
from userstudy.nonparametric import adjustment_name
from userstudy.rankings import CheckedRankings

POSTHOC_TESTS = ("nemenyi", "conover")


def present_methods(order: list[str], methods: list[str]) -> list[str]:
    """The methods of ``methods`` in the display ``order``."""
    present = set(methods)
    return [m for m in order if m in present]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class StudyAnalysis:
    """Everything ``analyze_rankings`` computed; ``write_analysis`` turns it into files."""

    rankings: CheckedRankings
    methods: list[str]
    p_adjust: str
    alpha: float
    posthoc: str                           # one of POSTHOC_TESTS
    points: pd.DataFrame                   # methods x criteria, mean points
    kruskal: pd.DataFrame                  # per criterion: n, k, H, df, p, p_holm
    dunn: dict[str, pd.DataFrame]          # per criterion: pairs with z, p, p_adjusted
    friedman: pd.DataFrame                 # per criterion: blocks, k, chi2, df, p, p_holm, W
    friedman_posthoc: dict[str, pd.DataFrame]
    # The attention checks scored and the participants excluded (None: the study has no checks, or
    # no study file was given). ``rankings`` is then what is left: no check trial, no excluded one.
    attention: AttentionSummary | None = None
    # Kendall's tau between the mean points and each metric of the run's results file
    # (``userstudy.agreement``; None: no results file), and the pairwise trials' analysis
    # (``userstudy.pairwise``; None: no pairwise answers), excluded participants left out of both.
    agreement: pd.DataFrame | None = None
    agreement_source: str = ""
    pairwise: object | None = None
    pairwise_excluded: int = 0
    pairwise_source: str = ""              # the pairwise answers' file, as the report names it
    unchecked: bool = False                # no study file: check trials could be neither scored nor set aside
    no_check_trials: bool = False          # a study file was read, and it has no check trials
    # Friedman with the trials as blocks (each method's mean points over the participants of a trial):
    # the test across clips, whose blocks are the sampled unit when each clip suits some methods more
    # (``userstudy.analyze.by_trial``); per criterion: trials, k, chi2, df, p, p_holm, W.
    friedman_by_trial: pd.DataFrame | None = None

    @property
    def criteria(self) -> list[str]:
        return self.rankings.criteria

    def sample(self) -> str:
        """Who the statistics rest on, for a figure or a file read apart from ``report.md``: "N = 18
        participants, 30 trials; 2 excluded (more than 0 failed checks)", or why none could be."""
        said = f"N = {_count(len(self.rankings.participants), 'participant')}, " \
               f"{_count(len(self.rankings.trials), 'trial')}"
        if self.attention is not None:
            return (f"{said} (check trials left out); {len(self.attention.excluded)} excluded (more than "
                    f"{_count(self.attention.max_failed, 'failed check')})")
        if self.no_check_trials:
            return f"{said}; no attention checks in the study, none excluded"
        return f"{said}; attention checks not applied (no study file), none excluded"

    def criterion_participants(self, criterion: str) -> int:
        """The participants who answered ``criterion`` (excluded ones left out)."""
        data = self.rankings.data
        return int(data.loc[data["criterion"] == criterion, "participant"].nunique())

    @property
    def excluded_count(self) -> int | None:
        """How many participants the attention checks excluded (None: no checks applied)."""
        return None if self.attention is None else len(self.attention.excluded)

    def methods_of(self, criterion: str) -> list[str]:
        return present_methods(self.methods, self.rankings.methods[criterion])

    def dunn_label(self) -> str:
        return f"Dunn two-sided p, {adjustment_name(self.p_adjust)}"

    def posthoc_label(self) -> str:
        if self.posthoc == "nemenyi":
            return "Nemenyi-Friedman p (studentized range, family-wise)"
        return f"Conover-Friedman two-sided p, {adjustment_name(self.p_adjust)}"

    def posthoc_p_column(self) -> str:
        """The p-value column of the post-hoc pairs: Nemenyi's needs no adjustment, Conover's is adjusted."""
        return "p" if self.posthoc == "nemenyi" else "p_adjusted"
