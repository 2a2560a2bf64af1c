"""Pairwise studies: Bradley-Terry strengths on an Elo-like scale, win rates, and matched-speech shares.

The analysis the GENEA leaderboard uses for pairwise preference studies. The answers file
(``pairwise.csv``) is long format, one row per answer:

- required: ``participant``, ``trial``, ``criterion``, ``method_a``, ``method_b``, ``preference``:
  an integer from -2 to 2, positive when video a is preferred (2: clearly, 1: slightly), 0 for
  "equal"; a three-level study (left / equal / right) uses -1, 0, 1;
- optional: ``kind``: ``compare`` (default: two methods' videos of one clip) or ``match`` (one
  method, video a with the clip's own speech and video b with another clip's speech, so
  ``method_a`` = ``method_b``: the sound-gesture synchronisation test). Other columns are ignored.

Conventions that change the numbers:

- the strength level is not used by Bradley-Terry: a preference counts as a win, ``equal`` as half
  a win for each side (as Elo does with a draw);
- strengths are fitted by maximum likelihood with choix (``ilsr_pairwise_dense``, Maystre &
  Grossglauser's I-LSR on the matrix of wins). When some method never loses (or never wins) to the
  rest, the maximum-likelihood strengths are infinite; the fit is then regularised (choix's
  ``alpha``, default 0.01) and the table says so;
- Elo scale: ``elo = 1000 + 400 log10(e) (theta - mean theta)``, so a difference of 400 points
  means 10:1 odds of being preferred; the mean rating is 1000;
- intervals: percentile bootstrap resampling *participants* with replacement (their answers are
  not independent of each other), refitting each resample.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import choix
import numpy as np
import pandas as pd
from scipy import stats

from userstudy.rankings import RankingsError, _where

PAIRWISE_COLUMNS = ("participant", "trial", "criterion", "method_a", "method_b", "preference")
KINDS = ("compare", "match")
ELO_BASE, ELO_SCALE = 1000.0, 400.0 / math.log(10.0)
DEFAULT_REGULARIZATION = 0.01


class PairwiseError(RankingsError):
    """Pairwise answers that cannot be analysed; ``problems`` lists every reason with its lines."""


def is_pairwise_table(columns) -> bool:
    """Whether a table's columns are those of pairwise answers (``method_a``/``method_b``/``preference``)."""
    return {"method_a", "method_b", "preference"} <= set(columns)


def read_pairwise(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``pairwise.csv`` as text, indexed by line number (header = line 1), and check it."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise PairwiseError(["the file is empty (no header line)"], str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PairwiseError([f"not a readable CSV file: {error}"], str(path)) from None
    table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    return check_pairwise(table, source=str(path))


def check_pairwise(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check pairwise answers; returns them with ``preference`` as int and ``kind`` filled in.

    Problems (all at once, with lines): a missing column, an empty field, a preference that is not
    an integer from -2 to 2, an unknown kind, a ``compare`` row with the same method twice, a
    ``match`` row with two methods. Raises ``PairwiseError``.
    """
    missing = [c for c in PAIRWISE_COLUMNS if c not in table.columns]
    if missing:
        raise PairwiseError([f"missing column(s) {', '.join(missing)} (required: {', '.join(PAIRWISE_COLUMNS)})"],
                            source)
    if len(table) == 0:
        raise PairwiseError(["no rows: the file has a header but no answers"], source)
    table = table.astype(object).where(table.notna(), "").astype(str).apply(lambda c: c.str.strip())
    if "kind" not in table:
        table["kind"] = "compare"
    table.loc[table["kind"] == "", "kind"] = "compare"
    problems = []
    for column in PAIRWISE_COLUMNS:
        empty = table[column] == ""
        if empty.any():
            problems.append(f"{_where(table.index, table.index[empty])}: {column} is empty")
    preference = pd.to_numeric(table["preference"], errors="coerce")
    bad = (table["preference"] != "") & ~preference.isin([-2, -1, 0, 1, 2])
    if bad.any():
        values = ", ".join(sorted({repr(v) for v in table.loc[bad, "preference"]})[:5])
        problems.append(f"{_where(table.index, table.index[bad])}: preference must be an integer from -2 to 2 "
                        f"(found {values})")
    kind = ~table["kind"].isin(KINDS)
    if kind.any():
        problems.append(f"{_where(table.index, table.index[kind])}: kind must be one of {', '.join(KINDS)}")
    same = (table["kind"] == "compare") & (table["method_a"] == table["method_b"]) & (table["method_a"] != "")
    if same.any():
        problems.append(f"{_where(table.index, table.index[same])}: a 'compare' answer needs two different methods")
    differ = (table["kind"] == "match") & (table["method_a"] != table["method_b"])
    if differ.any():
        problems.append(f"{_where(table.index, table.index[differ])}: a 'match' answer compares one method's "
                        "videos with matched and mismatched speech: method_a and method_b must be the same")
    if problems:
        raise PairwiseError(problems, source)
    return table.assign(preference=preference.astype(int))


def win_matrix(answers: pd.DataFrame, methods: list[str]) -> np.ndarray:
    """wins[i, j]: how often method i was preferred to method j (an ``equal`` is half a win each)."""
    index = {m: i for i, m in enumerate(methods)}
    wins = np.zeros((len(methods), len(methods)))
    a = answers["method_a"].map(index).to_numpy()
    b = answers["method_b"].map(index).to_numpy()
    score = np.sign(answers["preference"].to_numpy())
    np.add.at(wins, (a, b), np.where(score > 0, 1.0, np.where(score == 0, 0.5, 0.0)))
    np.add.at(wins, (b, a), np.where(score < 0, 1.0, np.where(score == 0, 0.5, 0.0)))
    return wins


def fit_strengths(wins: np.ndarray, regularization: float = DEFAULT_REGULARIZATION) -> tuple[np.ndarray, bool]:
    """Bradley-Terry log-strengths (mean 0) from a win matrix, and whether regularisation was needed.

    Maximum likelihood (choix ``ilsr_pairwise_dense``, alpha 0) when it is finite; otherwise
    (some group of methods never loses, or never wins, to the rest) the fit with choix's
    ``alpha = regularization``.
    """
    try:
        theta, regularized = choix.ilsr_pairwise_dense(wins, alpha=0.0, max_iter=1000), False
    except (ValueError, RuntimeError):
        theta, regularized = None, True
    if theta is None or not np.all(np.isfinite(theta)):
        theta, regularized = choix.ilsr_pairwise_dense(wins, alpha=regularization, max_iter=1000), True
    return theta - theta.mean(), regularized


def elo(theta: np.ndarray) -> np.ndarray:
    """Log-strengths on the Elo-like scale: 1000 + 400 log10(e) (theta - mean theta)."""
    theta = np.asarray(theta, dtype=float)
    return ELO_BASE + ELO_SCALE * (theta - theta.mean(axis=-1, keepdims=True))


@dataclass
class PairwiseAnalysis:
    """The results of ``analyze_pairwise``: per criterion, Bradley-Terry ratings and win rates; the
    matched-speech shares; and the settings."""

    answers: pd.DataFrame
    methods: list[str]
    strengths: pd.DataFrame      # criterion, method, theta, elo, elo_low, elo_high, answers, regularized
    win_rates: pd.DataFrame      # criterion, method_a, method_b, answers, wins_a, ties, win_rate_a
    speech_match: pd.DataFrame   # criterion, method, answers, picked_matched, ties, share, share_low, share_high, p
    bootstrap: int
    level: float
    seed: int


def bradley_terry(answers: pd.DataFrame, methods: list[str], bootstrap: int = 1000, level: float = 0.95,
                  seed: int = 0, regularization: float = DEFAULT_REGULARIZATION) -> pd.DataFrame:
    """Bradley-Terry ratings of ``compare`` answers (one criterion) with participant-bootstrap intervals.

    Returns one row per method: ``theta`` (log-strength, mean 0), ``elo``, ``elo_low``/``elo_high``
    (percentile interval at ``level`` from ``bootstrap`` resamples of the participants; NaN when
    ``bootstrap`` is 0), ``wins`` and ``comparisons`` of the method, and ``regularized`` (the
    point fit needed regularisation) and ``regularized_share`` (of the resamples).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    wins = win_matrix(answers, methods)
    theta, regularized = fit_strengths(wins, regularization)
    low = high = np.full(len(methods), np.nan)
    share = np.nan
    if bootstrap:
        participants = sorted(answers["participant"].unique())
        per_participant = [win_matrix(answers[answers["participant"] == p], methods) for p in participants]
        stacked = np.stack(per_participant)
        rng = np.random.default_rng(seed)
        draws, flags = np.empty((bootstrap, len(methods))), np.zeros(bootstrap, dtype=bool)
        for r in range(bootstrap):
            counts = np.bincount(rng.integers(0, len(participants), len(participants)), minlength=len(participants))
            draws[r], flags[r] = fit_strengths(np.tensordot(counts, stacked, axes=1), regularization)
        ratings = elo(draws)
        low, high = np.quantile(ratings, [(1 - level) / 2, (1 + level) / 2], axis=0)
        share = float(flags.mean())
    return pd.DataFrame({"method": methods, "theta": theta, "elo": elo(theta), "elo_low": low, "elo_high": high,
                         "wins": wins.sum(axis=1), "comparisons": wins.sum(axis=1) + wins.sum(axis=0),
                         "regularized": regularized, "regularized_share": share})


def win_rates(answers: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per pair of methods (a before b in ``methods``): answers, a's wins, ties, and a's win rate
    (wins plus half the ties, over the answers)."""
    wins = win_matrix(answers, methods)
    strict = win_matrix(answers[answers["preference"] != 0], methods)
    rows = []
    for i, a in enumerate(methods):
        for j in range(i + 1, len(methods)):
            total = wins[i, j] + wins[j, i]
            rows.append({"method_a": a, "method_b": methods[j], "answers": int(round(total)),
                         "wins_a": int(strict[i, j]), "wins_b": int(strict[j, i]),
                         "ties": int(round(total - strict[i, j] - strict[j, i])),
                         "win_rate_a": wins[i, j] / total if total else np.nan})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "answers", "wins_a", "wins_b", "ties", "win_rate_a"])


def speech_match(answers: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Matched-versus-mismatched speech (``match`` answers, video a has the right speech), per method.

    ``share``: the share of answers that pick the video with the right speech (an ``equal`` picks
    neither), with a Clopper-Pearson interval (``share_low``/``share_high``, scipy ``binomtest``);
    ``p``: two-sided binomial test, among the answers that pick a video, of picking the matched
    one half of the time (chance); ``mean_preference``: the mean preference for the matched video
    on the -2..2 scale (GENEA's appropriateness score when the scale has five levels).
    """
    rows = []
    for method, own in answers.groupby("method_a", sort=True):
        picked, ties, n = int((own["preference"] > 0).sum()), int((own["preference"] == 0).sum()), len(own)
        interval = stats.binomtest(picked, n).proportion_ci(confidence_level=level, method="exact")
        decided = n - ties
        p = stats.binomtest(picked, decided, 0.5).pvalue if decided else np.nan
        rows.append({"method": method, "answers": n, "picked_matched": picked, "ties": ties, "share": picked / n,
                     "share_low": interval.low, "share_high": interval.high, "p": p,
                     "mean_preference": float(own["preference"].mean())})
    return pd.DataFrame(rows, columns=["method", "answers", "picked_matched", "ties", "share", "share_low",
                                       "share_high", "p", "mean_preference"])


def analyze_pairwise(answers: pd.DataFrame, methods: list[str] | None = None, bootstrap: int = 1000,
                     level: float = 0.95, seed: int = 0,
                     regularization: float = DEFAULT_REGULARIZATION) -> PairwiseAnalysis:
    """Every table of a pairwise study, per criterion, from checked answers (``check_pairwise``)."""
    compare = answers[answers["kind"] == "compare"]
    present = sorted(set(compare["method_a"]) | set(compare["method_b"]))
    if methods is None:
        methods = present
    elif sorted(methods) != present or len(set(methods)) != len(methods):
        raise ValueError(f"methods must list each compared method once: the answers compare {present}")
    strengths, rates, matches = [], [], []
    for criterion in sorted(answers["criterion"].unique()):
        own = compare[compare["criterion"] == criterion]
        if len(own):
            in_criterion = [m for m in methods if m in set(own["method_a"]) | set(own["method_b"])]
            strengths.append(bradley_terry(own, in_criterion, bootstrap, level, seed, regularization)
                             .assign(criterion=criterion))
            rates.append(win_rates(own, in_criterion).assign(criterion=criterion))
        matched = answers[(answers["kind"] == "match") & (answers["criterion"] == criterion)]
        if len(matched):
            matches.append(speech_match(matched, level).assign(criterion=criterion))

    def first(frames, columns):
        if not frames:
            return pd.DataFrame(columns=["criterion"] + columns)
        table = pd.concat(frames, ignore_index=True)
        return table[["criterion"] + [c for c in table.columns if c != "criterion"]]

    return PairwiseAnalysis(
        answers=answers, methods=list(methods),
        strengths=first(strengths, ["method", "theta", "elo", "elo_low", "elo_high", "wins", "comparisons",
                                    "regularized", "regularized_share"]),
        win_rates=first(rates, ["method_a", "method_b", "answers", "wins_a", "wins_b", "ties", "win_rate_a"]),
        speech_match=first(matches, ["method", "answers", "picked_matched", "ties", "share", "share_low",
                                     "share_high", "p", "mean_preference"]),
        bootstrap=bootstrap, level=level, seed=seed)
