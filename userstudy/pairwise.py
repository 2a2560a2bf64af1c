"""Pairwise studies: Bradley-Terry strengths on an Elo-like scale, win rates, and matched-speech shares.

The analysis the GENEA leaderboard uses for pairwise preference studies. The answers file
(``pairwise.csv``) is long format, one row per answer:

- required: ``participant``, ``trial``, ``criterion``, ``method_a``, ``method_b``, ``preference``:
  an integer from -2 to 2, positive when video a is preferred (2: clearly, 1: slightly), 0 for
  "equal"; a three-level study (left / equal / right) uses -1, 0, 1;
- optional: ``kind``: ``compare`` (default: two methods' videos of one clip) or ``match`` (one
  method, video a with the clip's own speech and video b with another clip's speech, so
  ``method_a`` = ``method_b``: the sound-gesture synchronisation test); ``submission`` and
  ``submitted_at`` (the server writes them). Other columns are ignored.

Checked against the study file when there is one (``check_pairwise(..., study=...)``): a row with
a trial, kind, method or criterion the study does not have for it, or a preference outside the
study's scale (3 levels: -1, 0, 1), is an error naming its lines, the field and the file, as every
other problem of the file is; nothing is dropped silently.

Conventions that change the numbers:

- one answer per participant, trial and criterion: the server appends every save, and an answer
  saved again replaces the earlier one (the latest ``submitted_at``, equal times going to the later
  row; the rule of the rankings' resubmissions), so a repeated row counts once. The replaced
  answers are listed (``latest_answers``, ``PairwiseAnalysis.superseded``);
- the strength level is not used by Bradley-Terry: a preference counts as a win, ``equal`` as half
  a win for each side (as Elo does with a draw);
- strengths are fitted by maximum likelihood with choix (``ilsr_pairwise_dense``, Maystre &
  Grossglauser's I-LSR on the matrix of wins). When some method never loses (or never wins) to the
  rest (``mle_exists``: the graph of wins is not strongly connected), the maximum-likelihood
  strengths are infinite; the fit is then regularised (choix's ``alpha``, default 0.01) and the
  table says so;
- Elo scale: ``elo = 1000 + 400 log10(e) (theta - mean theta)``, so a difference of 400 points
  means 10:1 odds of being preferred; the mean rating is 1000;
- intervals: percentile bootstrap resampling *participants* with replacement (their answers are
  not independent of each other), refitting each resample. With one participant every resample is
  the same and the interval (zero width) is undefined; below ``MIN_BOOTSTRAP_PARTICIPANTS`` it is
  unstable. The table gives the number (``participants``) and the report says so.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import choix
import numpy as np
import pandas as pd
from scipy import stats

from userstudy.progress import Progress
from userstudy.rankings import RankingsError, _found, _where, grouped_problems, read_csv_table
from userstudy.study import PREFERENCE_LEVELS, STUDY_FILE, Study

PAIRWISE_COLUMNS = ("participant", "trial", "criterion", "method_a", "method_b", "preference")
# One answer: a participant's preference on one trial and criterion. Saved again, the latest counts.
ANSWER_KEY = ("participant", "trial", "criterion")
SUPERSEDED_COLUMNS = ["participant", "trial", "criterion", "submission", "submitted_at", "lines"]
KINDS = ("compare", "match")
ELO_BASE, ELO_SCALE = 1000.0, 400.0 / math.log(10.0)
DEFAULT_REGULARIZATION = 0.01
# Below this many participants a participant-bootstrap interval is unstable: n participants give at
# most C(2n-1, n) different resamples (4 give 35), and one participant gives a single resample, so
# the interval has zero width and is undefined as a measure of uncertainty.
MIN_BOOTSTRAP_PARTICIPANTS = 5

logger = logging.getLogger(__name__)


class PairwiseError(RankingsError):
    """Pairwise answers that cannot be analysed; ``problems`` lists every reason with its lines."""

    noun = "the pairwise answers"


def is_pairwise_table(columns) -> bool:
    """Whether a table's columns are those of pairwise answers (``method_a``/``method_b``/``preference``)."""
    return {"method_a", "method_b", "preference"} <= set(columns)


def read_pairwise(path: str | os.PathLike, study: Study | None = None) -> pd.DataFrame:
    """Read ``pairwise.csv`` as text, indexed by line number (header = line 1), and check it
    (``check_pairwise``, against ``study`` when given). Raises ``FileNotFoundError`` or
    ``PairwiseError`` naming the file (and the lines)."""
    table = read_csv_table(path, PairwiseError, skip_blank_lines=False)
    table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    return check_pairwise(table, source=str(path), study=study)


def check_pairwise(table: pd.DataFrame, source: str | None = None, study: Study | None = None) -> pd.DataFrame:
    """Check pairwise answers; returns them with ``preference`` as int and ``kind`` filled in.

    Problems (all at once, with lines): a missing column, an empty line or field, a preference
    that is not an integer from -2 to 2, an unknown kind, a ``compare`` row with the same method
    twice, a ``match`` row with two methods. With ``study`` (the study the answers belong to), also
    every row that does not fit it (``study_problems``): an unknown trial, method or criterion, a
    preference outside the study's scale. Raises ``PairwiseError``.

    Every row is kept: an answer saved twice is resolved by ``latest_answers`` (which
    ``analyze_pairwise`` applies).
    """
    missing = [c for c in PAIRWISE_COLUMNS if c not in table.columns]
    if missing:
        raise PairwiseError([f"missing column(s) {', '.join(missing)} (required: {', '.join(PAIRWISE_COLUMNS)})"],
                            source)
    if len(table) == 0:
        raise PairwiseError(["no rows: the file has a header but no answers"], source)
    table = table.astype(object).where(table.notna(), "").astype(str).apply(lambda c: c.str.strip())
    problems = []
    blank = (table == "").all(axis=1)
    if blank.any():
        problems.append(f"{_where(table.index, table.index[blank])}: empty line")
    if "kind" not in table:
        table["kind"] = "compare"
    table.loc[(table["kind"] == "") & ~blank, "kind"] = "compare"
    for column in PAIRWISE_COLUMNS:
        empty = (table[column] == "") & ~blank
        if empty.any():
            problems.append(f"{_where(table.index, table.index[empty])}: {column} is empty")
    preference = pd.to_numeric(table["preference"], errors="coerce")
    bad = (table["preference"] != "") & ~preference.isin([-2, -1, 0, 1, 2])
    if bad.any():
        problems.append(f"{_where(table.index, table.index[bad])}: preference must be an integer from -2 to 2 "
                        f"({_found(table, bad, 'preference')})")
    kind = ~table["kind"].isin(KINDS) & ~blank
    if kind.any():
        problems.append(f"{_where(table.index, table.index[kind])}: kind must be one of {', '.join(KINDS)}")
    same = (table["kind"] == "compare") & (table["method_a"] == table["method_b"]) & (table["method_a"] != "")
    if same.any():
        problems.append(f"{_where(table.index, table.index[same])}: a 'compare' answer needs two different methods")
    differ = (table["kind"] == "match") & (table["method_a"] != table["method_b"])
    if differ.any():
        problems.append(f"{_where(table.index, table.index[differ])}: a 'match' answer compares one method's "
                        "videos with matched and mismatched speech: method_a and method_b must be the same")
    if study is not None:
        fit = ~blank & ~bad & ~kind & (table[list(PAIRWISE_COLUMNS)] != "").all(axis=1)
        problems += study_problems(table[fit].assign(preference=preference[fit].astype(int)), study)
    if problems:
        raise PairwiseError(problems, source)
    return table.assign(preference=preference.astype(int))


def study_problems(answers: pd.DataFrame, study: Study) -> list[str]:
    """Pairwise answers that do not fit the study file, each naming the lines, the field, the value
    and the file: a trial that is not one of its trials, or not a pairwise one; a kind other than
    the trial's; a method that is not the study's, or not one of the trial's two; a criterion the
    trial does not ask; a preference outside the study's scale (``preference_levels``: 3 levels are
    -1, 0, 1). ``answers``: rows with every field filled in and ``preference`` an integer."""
    path = study.root / STUDY_FILE
    trials = {t.id: t for t in study.trials}
    levels = PREFERENCE_LEVELS[study.preference_levels]
    found = []
    for row in answers.itertuples():
        label, trial = row.Index, trials.get(row.trial)
        if trial is None:
            found.append((label, f"trial {row.trial!r} is not a trial of {path}"))
            continue
        if not trial.pairwise:
            found.append((label, f"trial {row.trial!r} is a ranking trial of {path}, not a pairwise one"))
            continue
        if row.kind != trial.kind:
            found.append((label, f"kind {row.kind!r} is not that of trial {row.trial!r}, a {trial.kind!r} trial "
                                 f"of {path}"))
        unknown = [(f, m) for f, m in (("method_a", row.method_a), ("method_b", row.method_b))
                   if m not in study.methods]
        for field, method in unknown:
            found.append((label, f"{field} {method!r} is not a method of {path} ({', '.join(study.methods)})"))
        pair = trial.pair(study.methods)
        if not unknown and sorted((row.method_a, row.method_b)) != sorted(pair):
            found.append((label, f"method_a, method_b {row.method_a!r}, {row.method_b!r} are not the methods of "
                                 f"trial {row.trial!r} in {path} ({pair[0]!r}, {pair[1]!r})"))
        asked = study.criteria_of(trial)
        if row.criterion not in asked:
            found.append((label, f"criterion {row.criterion!r} is not asked by trial {row.trial!r} in {path} "
                                 f"(it asks: {', '.join(asked)})"))
        if row.preference not in levels:
            found.append((label, f"preference {row.preference} is outside the scale of {path} "
                                 f"({study.preference_levels} levels: {', '.join(map(str, levels))})"))
    return grouped_problems(answers.index, found)


def latest_answers(answers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep each participant's latest answer per trial and criterion; return (kept rows, one row per
    replaced answer with ``SUPERSEDED_COLUMNS``).

    The rule of the rankings (``rankings._latest_submissions``): the latest answer is the one with
    the latest ``submitted_at`` (when the column is there; an answer without a readable time counts
    as older than any with one), equal times broken by the order of the rows, so an answer saved
    again (the server appends every save) replaces the earlier one, and a row repeated exactly
    counts once.
    """
    if answers.empty:
        return answers, pd.DataFrame(columns=SUPERSEDED_COLUMNS)
    if "submitted_at" in answers:
        times = pd.to_datetime(answers["submitted_at"].astype(str).str.strip(), utc=True, errors="coerce",
                               format="ISO8601")
    else:
        times = pd.Series(pd.NaT, index=answers.index, dtype="datetime64[ns, UTC]")
    order = pd.DataFrame({key: answers[key].to_numpy() for key in ANSWER_KEY})
    order["_time"], order["_row"] = times.to_numpy(), np.arange(len(answers))
    order = order.sort_values(["_time", "_row"], na_position="first", kind="stable")
    kept = np.zeros(len(answers), dtype=bool)
    kept[order.loc[~order.duplicated(list(ANSWER_KEY), keep="last"), "_row"].to_numpy()] = True
    old = answers[~kept]
    superseded = pd.DataFrame({
        "participant": old["participant"], "trial": old["trial"], "criterion": old["criterion"],
        "submission": old["submission"] if "submission" in old else "",
        "submitted_at": old["submitted_at"] if "submitted_at" in old else "",
        "lines": [_where(answers.index, [label]) for label in old.index]}, columns=SUPERSEDED_COLUMNS)
    return answers[kept], superseded.reset_index(drop=True)


def win_matrix(answers: pd.DataFrame, methods: list[str]) -> np.ndarray:
    """wins[i, j]: how often method i was preferred to method j (an ``equal`` is half a win each)."""
    index = {m: i for i, m in enumerate(methods)}
    wins = np.zeros((len(methods), len(methods)))
    # as integers even when there are no answers (an empty map is of float type)
    a = answers["method_a"].map(index).to_numpy(dtype=int)
    b = answers["method_b"].map(index).to_numpy(dtype=int)
    score = np.sign(answers["preference"].to_numpy())
    np.add.at(wins, (a, b), np.where(score > 0, 1.0, np.where(score == 0, 0.5, 0.0)))
    np.add.at(wins, (b, a), np.where(score < 0, 1.0, np.where(score == 0, 0.5, 0.0)))
    return wins


def mle_exists(wins: np.ndarray) -> bool:
    """Whether the Bradley-Terry maximum-likelihood strengths are finite (Zermelo's condition, Hunter
    2004): however the methods are split in two groups, each group beat the other at least once,
    i.e. the graph with an edge i -> j when ``wins[i, j] > 0`` is strongly connected."""
    beat = np.asarray(wins) > 0

    def reaches_all(edges: np.ndarray) -> bool:
        seen, stack = {0}, [0]
        while stack:
            for j in np.flatnonzero(edges[stack.pop()]):
                if j not in seen:
                    seen.add(int(j))
                    stack.append(int(j))
        return len(seen) == len(edges)

    return reaches_all(beat) and reaches_all(beat.T)


def fit_strengths(wins: np.ndarray, regularization: float = DEFAULT_REGULARIZATION) -> tuple[np.ndarray, bool]:
    """Bradley-Terry log-strengths (mean 0) from a win matrix, and whether regularisation was needed.

    Maximum likelihood (choix ``ilsr_pairwise_dense``, alpha 0) when it is finite; otherwise
    (some group of methods never loses, or never wins, to the rest: ``mle_exists`` is false) the fit
    with choix's ``alpha = regularization``. The unregularised fit is not attempted when the
    maximum-likelihood strengths are known to be infinite: it would run its 1000 iterations on
    numbers that are not finite (0.1 s each, with numpy's divide-by-zero warnings) to fail anyway.
    """
    theta, regularized = None, True
    if mle_exists(wins):
        try:
            # Kept as a guard: should the fit still meet a zero weight, numpy's divide and invalid
            # warnings are the expected sign of a case handled just below, not a problem to print.
            with np.errstate(divide="ignore", invalid="ignore"):
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

    answers: pd.DataFrame        # the answers used: each participant's latest per trial and criterion
    methods: list[str]
    strengths: pd.DataFrame      # criterion, method, theta, elo, elo_low, elo_high, wins, comparisons,
                                 # regularized, regularized_share, participants
    win_rates: pd.DataFrame      # criterion, method_a, method_b, answers, wins_a, ties, win_rate_a
    speech_match: pd.DataFrame   # criterion, method, answers, picked_matched, ties, share, share_low, share_high, p
    bootstrap: int
    level: float
    seed: int
    # The answers replaced by a later answer of the same participant to the same trial and
    # criterion (``latest_answers``: SUPERSEDED_COLUMNS), left out of every table.
    superseded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUPERSEDED_COLUMNS))

    def few_participants(self) -> dict[str, int]:
        """Criterion -> number of participants, for the criteria whose Bradley-Terry intervals rest on
        fewer than ``MIN_BOOTSTRAP_PARTICIPANTS`` participants (one: undefined; a few: unstable)."""
        if not self.bootstrap or not len(self.strengths):
            return {}
        counts = self.strengths.groupby("criterion", sort=False)["participants"].first()
        return {c: int(n) for c, n in counts.items() if n < MIN_BOOTSTRAP_PARTICIPANTS}


def bradley_terry(answers: pd.DataFrame, methods: list[str], bootstrap: int = 1000, level: float = 0.95,
                  seed: int = 0, regularization: float = DEFAULT_REGULARIZATION,
                  progress: Progress | None = None) -> pd.DataFrame:
    """Bradley-Terry ratings of ``compare`` answers (one criterion) with participant-bootstrap intervals.

    Returns one row per method: ``theta`` (log-strength, mean 0), ``elo``, ``elo_low``/``elo_high``
    (percentile interval at ``level`` from ``bootstrap`` resamples of the participants; NaN when
    ``bootstrap`` is 0), ``wins`` and ``comparisons`` of the method, ``regularized`` (the
    point fit needed regularisation), ``regularized_share`` (of the resamples) and
    ``participants`` (how many the resamples draw from: with one, every resample is the same and
    the interval has zero width; below ``MIN_BOOTSTRAP_PARTICIPANTS`` it is unstable).
    ``progress`` counts the resamples (``userstudy.progress``).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    wins = win_matrix(answers, methods)
    theta, regularized = fit_strengths(wins, regularization)
    low = high = np.full(len(methods), np.nan)
    share = np.nan
    participants = sorted(answers["participant"].unique())
    if bootstrap:
        per_participant = [win_matrix(answers[answers["participant"] == p], methods) for p in participants]
        stacked = np.stack(per_participant)
        rng = np.random.default_rng(seed)
        draws, flags = np.empty((bootstrap, len(methods))), np.zeros(bootstrap, dtype=bool)
        for r in range(bootstrap):
            counts = np.bincount(rng.integers(0, len(participants), len(participants)), minlength=len(participants))
            draws[r], flags[r] = fit_strengths(np.tensordot(counts, stacked, axes=1), regularization)
            if progress is not None:
                progress.advance()
        ratings = elo(draws)
        low, high = np.quantile(ratings, [(1 - level) / 2, (1 + level) / 2], axis=0)
        share = float(flags.mean())
    return pd.DataFrame({"method": methods, "theta": theta, "elo": elo(theta), "elo_low": low, "elo_high": high,
                         "wins": wins.sum(axis=1), "comparisons": wins.sum(axis=1) + wins.sum(axis=0),
                         "regularized": regularized, "regularized_share": share,
                         "participants": len(participants)})


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
    """Every table of a pairwise study, per criterion, from checked answers (``check_pairwise``).

    Each participant's latest answer per trial and criterion is used (``latest_answers``); the
    replaced ones are listed in the result's ``superseded``. The bootstrap logs its progress
    (``userstudy.progress``) when it runs for more than a few seconds.
    """
    answers, superseded = latest_answers(answers)
    compare = answers[answers["kind"] == "compare"]
    present = sorted(set(compare["method_a"]) | set(compare["method_b"]))
    if methods is None:
        methods = present
    elif sorted(methods) != present or len(set(methods)) != len(methods):
        raise ValueError(f"methods must list each compared method once: the answers compare {present}")
    criteria = sorted(answers["criterion"].unique())
    progress = Progress(logger, "Bradley-Terry bootstrap", bootstrap * compare["criterion"].nunique(), "resamples")
    strengths, rates, matches = [], [], []
    for criterion in criteria:
        own = compare[compare["criterion"] == criterion]
        if len(own):
            in_criterion = [m for m in methods if m in set(own["method_a"]) | set(own["method_b"])]
            strengths.append(bradley_terry(own, in_criterion, bootstrap, level, seed, regularization, progress)
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
                                    "regularized", "regularized_share", "participants"]),
        win_rates=first(rates, ["method_a", "method_b", "answers", "wins_a", "wins_b", "ties", "win_rate_a"]),
        speech_match=first(matches, ["method", "answers", "picked_matched", "ties", "share", "share_low",
                                     "share_high", "p", "mean_preference"]),
        bootstrap=bootstrap, level=level, seed=seed, superseded=superseded)
