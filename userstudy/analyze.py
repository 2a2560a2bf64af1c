"""Analysis of a ranking study: the paper's tables and tests, and the within-subject analysis beside them.

    python -m userstudy analyze rankings.csv [--out DIR] [--p-adjust holm] [--alpha 0.05]
                                [--posthoc nemenyi|conover] [--methods a,b,c] [--drop-incomplete]
                                [--study DIR | --no-study] [--pairwise FILE | --no-pairwise]
                                [--results FILE | --no-results] [--bootstrap 1000] [--quiet]

(``python -m userstudy.analyze`` is the same command.)

Writes to DIR (default: ``<rankings>_analysis`` next to the input); the names are fixed because
other tools read them:

- ``points.csv`` / ``points.md``: mean points per method and criterion (the paper's Tables 4/5);
- ``kruskal.csv``: Kruskal-Wallis H, df, p per criterion (Tables 6/7), plus Holm across criteria, the
  participants per criterion and how many the attention checks excluded (``friedman.csv`` too; the
  figures' titles say N and the exclusion rule);
- ``dunn_<criterion>.csv``: k x k two-sided Dunn p-values, adjusted as asked (named in the top-left
  cell); ``dunn_pairs.csv``: the same pairs with z; ``dunn.png``: the heatmaps (Figures 8/9);
- ``friedman.csv``: Friedman chi2, df, p, Holm p across criteria and Kendall's W per criterion
  (blocks = participant x trial); ``friedman_by_trial.csv``: the same with the trials as blocks (each
  method's mean points per trial: the test across clips, ``userstudy.rankings.by_trial``); ``nemenyi_<criterion>.csv`` (or ``conover_<criterion>.csv``),
  ``<posthoc>_pairs.csv`` and ``<posthoc>.png`` (its heatmaps, drawn like Dunn's);
- every CSV keeps full precision (the shortest text that reads back as the same float);
- ``attention_checks.csv`` and ``exclusions.csv`` (when the study has attention checks): each
  participant's answer to each check trial, and who was excluded and why;
- ``report.md``: all of it on one page, with what was used, dropped, superseded or excluded.

Attention checks come from the study file (``--study DIR``, or its ``study.json``; by default the
``study.json`` beside the rankings file, where the server writes it; ``--no-study``: none): check
trials are scored (``userstudy.attention``) and left out of the statistics, and a participant who
failed more than ``--max-failed-checks`` of them is left out entirely. The answers are checked
against the study file too: a row naming a trial, method or criterion the study does not have (for
that trial), or a preference outside its scale, is an error naming the file, its lines and the
field, like every other problem of an answers file.

A pairwise study's answers (``pairwise.csv``: ``method_a``, ``method_b``, ``preference``; see
``userstudy.pairwise``) are recognised by their columns and get ``bradley_terry.csv`` (Elo-like
ratings with participant-bootstrap intervals: ``--bootstrap``, ``--level``, ``--seed``),
``win_rates.csv``, ``speech_match.csv`` and ``report.md`` instead (``analyze_pairwise_csv``).
A study with ranking and pairwise trials has both files in its folder: the analysis of
``rankings.csv`` takes the ``pairwise.csv`` beside it (or ``--pairwise FILE``) too, with the same
exclusions, and writes those three files and a section of ``report.md`` beside the ranking tables
(``--no-pairwise``: the rankings alone). A pairwise answer saved again replaces the earlier one,
as a ranking's resubmission does, and the report lists the replaced answers.

Metric-human agreement (``userstudy.agreement``): with a run's ``results.json`` (``--results
FILE``; by default the ``results.json`` in the study folder, which ``make-study --run`` copies
there), ``agreement.csv`` and a section of ``report.md`` give Kendall's tau per criterion and
metric between the mean points and the metric's values on the same methods and clips, with
participant-bootstrap intervals (``--bootstrap``, ``--level``, ``--seed``; ``--no-results``: none).
A bootstrap that runs for more than a few seconds logs its progress on stderr (``--quiet``: not).

Errors are one line, ``python -m userstudy analyze: error: FILE: what is wrong`` (a list of the
file's problems under it when there are several), and the exit status is 2.

The Python API: ``analyze`` (what the command does), ``analyze_rankings`` (the computation, no
I/O) and ``write_analysis`` (the files). The result type is ``userstudy.analysis.StudyAnalysis``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import pandas as pd

from userstudy import cli
from userstudy.agreement import RESULTS_FILE, ResultsFileError, metric_agreement, read_results
from userstudy.analysis import POSTHOC_TESTS, StudyAnalysis, present_methods
from userstudy.attention import AttentionSummary, attention_summary
from userstudy.figures import dunn_heatmaps, posthoc_heatmaps
from userstudy.files import record_outputs, write_bytes_atomic, write_text_atomic
from userstudy.nonparametric import (
    P_ADJUST_METHODS,
    adjust_p_values,
    conover_friedman,
    dunn,
    friedman,
    kruskal_wallis,
    nemenyi_friedman,
    pairs_to_matrix,
)
from userstudy.rankings import (CheckedRankings, RankingsError, by_trial, folder_problem, load_rankings,
                                mean_points)
from userstudy.pairwise import (
    MIN_BOOTSTRAP_PARTICIPANTS,
    PairwiseAnalysis,
    analyze_pairwise,
    is_pairwise_table,
    latest_answers,
    read_pairwise,
)
from userstudy.report import pairwise_report_markdown, points_markdown, report_markdown
from userstudy.schema import CRITERION, METHOD, PARTICIPANT, TRIAL, check_slugs, criterion_slug
from userstudy.study import STUDY_FILE, AttentionCheck, StudyError, load_study, study_folder

logger = logging.getLogger(__name__)
MAX_BOOTSTRAP = 1_000_000     # resamples on the command line (each refits every criterion)


def method_order(checked: CheckedRankings, methods: list[str] | None) -> list[str]:
    """The display order: the given one (which must name exactly the methods in the data) or sorted."""
    present = sorted({m for ms in checked.methods.values() for m in ms})
    if methods is None:
        return present
    missing, unknown = [m for m in present if m not in methods], [m for m in methods if m not in present]
    if missing or unknown or len(set(methods)) != len(methods):
        raise ValueError(f"--methods must list each method of the data once: the data has {present}"
                         + (f"; not listed: {missing}" if missing else "")
                         + (f"; not in the data: {unknown}" if unknown else "")
                         + (f"; listed more than once: {sorted({m for m in methods if methods.count(m) > 1})}"
                            if len(set(methods)) != len(methods) else ""))
    return list(methods)


def analyze_rankings(checked: CheckedRankings, p_adjust: str = "holm", alpha: float = 0.05,
                     posthoc: str = "nemenyi", methods: list[str] | None = None,
                     checks: dict[str, AttentionCheck] | None = None, max_failed_checks: int = 0,
                     repeat_min_tau: float = 0.5, results: tuple[dict, dict] | None = None,
                     clips: dict[str, str] | None = None, pairwise_answers: pd.DataFrame | None = None,
                     bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> StudyAnalysis:
    """Run every test of the report on checked rankings (no I/O).

    ``checks`` (trial id -> check, e.g. ``attention_checks(load_study(...))``): the check trials are
    scored and set aside, and the participants who failed more than ``max_failed_checks`` are
    excluded before any statistic (``userstudy.attention``). ``results`` (``agreement.read_results``)
    and ``clips`` (trial -> ``identity/clip``): the metric-human agreement. ``pairwise_answers``
    (``pairwise.check_pairwise``): the study's pairwise trials, analysed without the excluded
    participants (each participant's latest answer per trial and criterion: ``pairwise.latest_answers``).
    ``bootstrap``, ``level``, ``seed``: the intervals of both.
    """
    attention = None
    if checks:
        attention = attention_summary(checked.data, checks, max_failed_checks, repeat_min_tau)
        data = checked.data
        keep = ~data[TRIAL].isin(set(checks)) & ~data[PARTICIPANT].isin(set(attention.excluded))
        if not keep.any():
            raise RankingsError([nothing_left(attention, data)])
        checked = checked.subset(keep)
    if p_adjust not in P_ADJUST_METHODS:
        raise ValueError(f"p_adjust {p_adjust!r}: choose one of {', '.join(P_ADJUST_METHODS)}")
    if posthoc not in POSTHOC_TESTS:
        raise ValueError(f"posthoc {posthoc!r}: choose one of {', '.join(POSTHOC_TESTS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    order = method_order(checked, methods)
    data = checked.data
    kruskal_rows, friedman_rows, trial_rows, dunn_pairs, posthoc_pairs = [], [], [], {}, {}
    for criterion in checked.criteria:
        rows = data[data[CRITERION] == criterion]
        present = present_methods(order, checked.methods[criterion])
        kruskal_rows.append(kruskal_wallis(rows, "points", METHOD).rename(criterion))
        dunn_pairs[criterion] = dunn(rows, "points", METHOD, p_adjust=p_adjust, groups=present)
        friedman_rows.append(friedman(rows, "points", METHOD, [PARTICIPANT, TRIAL]).rename(criterion))
        trial_rows.append(friedman(by_trial(rows), "points", METHOD, TRIAL).rename(criterion))
        if posthoc == "nemenyi":
            posthoc_pairs[criterion] = nemenyi_friedman(rows, "points", METHOD, [PARTICIPANT, TRIAL],
                                                        groups=present)
        else:
            posthoc_pairs[criterion] = conover_friedman(rows, "points", METHOD, [PARTICIPANT, TRIAL],
                                                        p_adjust=p_adjust, groups=present)
    kruskal_table = pd.DataFrame(kruskal_rows)
    # The criteria are separate omnibus tests of one study: Holm keeps their family-wise error.
    kruskal_table["p_holm"] = adjust_p_values(kruskal_table["p"], "holm")
    friedman_table = pd.DataFrame(friedman_rows)
    friedman_table["p_holm"] = adjust_p_values(friedman_table["p"], "holm")
    trial_table = pd.DataFrame(trial_rows)
    trial_table["p_holm"] = adjust_p_values(trial_table["p"], "holm")
    for table in (kruskal_table, friedman_table, trial_table):
        table.index.name = CRITERION
    agreement = None
    if results is not None:
        agreement = metric_agreement(data, results[0], results[1], clips, bootstrap, level, seed)
    pairwise, pairwise_excluded = None, 0
    if pairwise_answers is not None:
        excluded = set(attention.excluded) if attention is not None else set()
        latest, _ = latest_answers(pairwise_answers)
        pairwise_excluded = int(latest["participant"].isin(excluded).sum())
        keep = ~pairwise_answers["participant"].isin(excluded)
        if keep.any():
            pairwise = analyze_pairwise(pairwise_answers[keep], None, bootstrap, level, seed)
    return StudyAnalysis(
        agreement=agreement, pairwise=pairwise, pairwise_excluded=pairwise_excluded,
        rankings=checked, methods=order, p_adjust=p_adjust, alpha=alpha, posthoc=posthoc,
        points=mean_points(data, checked.criteria, order),
        kruskal=kruskal_table[["n", "k", "H", "df", "p", "p_holm"]].astype({"n": int, "k": int, "df": int}),
        dunn=dunn_pairs,
        friedman=friedman_table[["n_blocks", "k", "chi2", "df", "p", "p_holm", "W"]].astype(
            {"n_blocks": int, "k": int, "df": int}),
        friedman_posthoc=posthoc_pairs,
        attention=attention,
        friedman_by_trial=trial_table[["n_blocks", "k", "chi2", "df", "p", "p_holm", "W"]].astype(
            {"n_blocks": int, "k": int, "df": int}),
    )



def nothing_left(attention: AttentionSummary, data: pd.DataFrame) -> str:
    """Why no ranking is left for the statistics once the check trials and the excluded participants are set
    aside: who was excluded and for what (every excluded participant, with the failed checks)."""
    excluded = attention.participants[attention.participants["excluded"]]
    others = sorted(set(data[PARTICIPANT]) - set(excluded["participant"]))
    words = ("no ranking is left once the attention checks' trials and the excluded participants are set aside: "
             f"{cli.count(len(excluded), 'participant')} excluded by the rule (more than "
             f"{attention.max_failed} failed {'check' if attention.max_failed == 1 else 'checks'}; "
             "--max-failed-checks, --repeat-min-tau)")
    if others:
        words += f"; {cli.count(len(others), 'other participant')} answered only check trials ({', '.join(others)})"
    return words + "".join(f"\n  {row.participant}: {row.reason}" for row in excluded.itertuples())


def attention_checks(study) -> dict[str, AttentionCheck]:
    """The study's check trials: trial id -> its check."""
    return {t.id: t.check for t in study.trials if t.check is not None}


# -- files -----------------------------------------------------------------------------------------


def _full(value: float) -> str:
    """A number at full precision (the shortest text that reads back as the same float): other tools
    read these files, so nothing is rounded."""
    return "" if pd.isna(value) else repr(float(value))


def _with_sample(table: pd.DataFrame, analysis: StudyAnalysis) -> pd.DataFrame:
    """``table`` (one row per criterion) with who it rests on, for a file read apart from ``report.md``:
    the participants per criterion, and how many the attention checks excluded (empty: none applied)."""
    excluded = analysis.excluded_count
    return table.assign(participants=[analysis.criterion_participants(c) for c in table["criterion"]],
                        excluded_participants="" if excluded is None else excluded)


def kruskal_csv(analysis: StudyAnalysis) -> str:
    table = analysis.kruskal.reset_index()
    table = table.assign(H=table["H"].map(_full), p=table["p"].map(_full), p_holm=table["p_holm"].map(_full))
    return _with_sample(table, analysis).to_csv(index=False)


def friedman_csv(analysis: StudyAnalysis, blocks: str = "blocks") -> str:
    """``friedman.csv`` (blocks = participant x trial), or with ``blocks="trials"`` ``friedman_by_trial.csv``."""
    source = analysis.friedman if blocks == "blocks" else analysis.friedman_by_trial
    table = source.reset_index().rename(columns={"n_blocks": blocks, "W": "kendalls_w"})
    table = table.assign(chi2=table["chi2"].map(_full), p=table["p"].map(_full),
                         p_holm=table["p_holm"].map(_full), kendalls_w=table["kendalls_w"].map(_full))
    return _with_sample(table, analysis).to_csv(index=False)


def matrix_csv(matrix: pd.DataFrame, label: str) -> str:
    """A k x k p-value matrix whose top-left cell says what the values are."""
    table = matrix.map(_full)
    table.index.name = label
    return table.to_csv()


def pairs_csv(pairs: dict[str, pd.DataFrame]) -> str:
    table = pd.concat([p.assign(criterion=c) for c, p in pairs.items()], ignore_index=True)
    table = table.rename(columns={"group_a": "method_a", "group_b": "method_b"})
    first = ["criterion", "method_a", "method_b"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.to_csv(index=False)   # full precision: other tools read it


def write_analysis(analysis: StudyAnalysis, out_dir: str | Path, source: str = "") -> list[Path]:
    """Write every output file of the analysis into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_text_atomic(out / "points.csv", analysis.points.to_csv()),   # full precision: other tools read it
        write_text_atomic(out / "points.md", points_markdown(analysis)),
        write_text_atomic(out / "kruskal.csv", kruskal_csv(analysis)),
        write_text_atomic(out / "friedman.csv", friedman_csv(analysis)),
        write_text_atomic(out / "friedman_by_trial.csv", friedman_csv(analysis, "trials")),
        write_text_atomic(out / "dunn_pairs.csv", pairs_csv(analysis.dunn)),
        write_text_atomic(out / f"{analysis.posthoc}_pairs.csv", pairs_csv(analysis.friedman_posthoc)),
    ]
    for criterion in analysis.criteria:
        slug, methods = criterion_slug(criterion), analysis.methods_of(criterion)
        dunn_matrix = pairs_to_matrix(analysis.dunn[criterion], "p_adjusted", methods)
        written.append(write_text_atomic(out / f"dunn_{slug}.csv", matrix_csv(dunn_matrix, analysis.dunn_label())))
        posthoc_matrix = pairs_to_matrix(analysis.friedman_posthoc[criterion], analysis.posthoc_p_column(), methods)
        written.append(write_text_atomic(out / f"{analysis.posthoc}_{slug}.csv",
                                         matrix_csv(posthoc_matrix, analysis.posthoc_label())))
    if analysis.attention is not None:
        written.append(write_text_atomic(out / "attention_checks.csv",
                                         analysis.attention.results.to_csv(index=False)))
        written.append(write_text_atomic(out / "exclusions.csv",
                                         analysis.attention.participants.to_csv(index=False)))
    if analysis.agreement is not None:
        written.append(write_text_atomic(out / "agreement.csv", analysis.agreement.to_csv(index=False)))
    if analysis.pairwise is not None:
        written += write_pairwise_tables(analysis.pairwise, out)
    written.append(write_bytes_atomic(out / "dunn.png", dunn_heatmaps(analysis)))
    written.append(write_bytes_atomic(out / f"{analysis.posthoc}.png", posthoc_heatmaps(analysis)))
    written.append(write_text_atomic(out / "report.md", report_markdown(analysis, source)))
    for stale in record_outputs(out, written):
        logger.info("removed %s: the earlier analysis in %s wrote it, this one does not", stale.name, out)
    return written


def default_out_dir(rankings_csv: str | Path) -> Path:
    """Where the analysis goes unless told: ``<rankings>_analysis`` next to the rankings file."""
    rankings_csv = Path(rankings_csv).resolve() if Path(rankings_csv).name in ("", ".", "..") else Path(rankings_csv)
    return rankings_csv.with_name(f"{rankings_csv.stem}_analysis")


def default_study_dir(rankings_csv: str | Path) -> Path | None:
    """The study folder of a rankings file: the folder holding it, if it holds a study file."""
    folder = Path(rankings_csv).parent
    return folder if (folder / STUDY_FILE).is_file() else None


def check_input_file(path: str | Path) -> Path:
    """The answers file to analyse, refused before any work: ``FileNotFoundError`` when it does not
    exist, ``RankingsError`` naming it when it is a folder (and what it holds)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.is_dir():
        raise RankingsError([folder_problem(path)], str(path))
    return path


def check_out_dir(out_dir: str | Path) -> Path:
    """The output folder, refused before any work when it exists as a file (``ValueError`` naming it)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file; the analysis writes its files into a folder (--out DIR)")
    blocker = cli.file_in_the_way(out)
    if blocker is not None:
        raise ValueError(f"{blocker}: is a file, so the output folder {out} cannot be made (--out DIR)")
    return out


def write_pairwise_tables(analysis: PairwiseAnalysis, out: Path) -> list[Path]:
    """``bradley_terry.csv``, ``win_rates.csv`` and ``speech_match.csv`` (full precision)."""
    return [write_text_atomic(out / "bradley_terry.csv", analysis.strengths.to_csv(index=False)),
            write_text_atomic(out / "win_rates.csv", analysis.win_rates.to_csv(index=False)),
            write_text_atomic(out / "speech_match.csv", analysis.speech_match.to_csv(index=False))]


def analyze(rankings_csv: str | Path, out_dir: str | Path | None = None, p_adjust: str = "holm",
            alpha: float = 0.05, posthoc: str = "nemenyi", methods: list[str] | None = None,
            drop_incomplete: bool = False, study_dir: str | Path | bool | None = None, max_failed_checks: int = 0,
            repeat_min_tau: float = 0.5, results: str | Path | bool | None = None,
            pairwise: str | Path | bool | None = None,
            bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> StudyAnalysis:
    """Read, check, analyse and write into ``out_dir`` (default: ``default_out_dir``): the command.

    ``study_dir``: the study folder (or its ``study.json``) whose attention checks apply and
    against which the answers are checked (default: ``default_study_dir``; only its
    ``study.json`` is read). ``results``: a run's results file for the metric-human agreement
    (default: ``results.json`` in the study folder, if there). ``pairwise``: the study's pairwise
    answers (default: ``pairwise.csv`` beside the rankings, if there). ``False`` for any of the
    three: none, not even the default. Raises ``RankingsError`` / ``PairwiseError`` (every problem
    of a file, with its lines), ``StudyError`` (a study file that cannot be read), ``ResultsFileError``
    (a results file), ``ValueError`` (a bad option) or ``FileNotFoundError``; nothing is written then.
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more resamples, got {bootstrap}")
    rankings_csv = check_input_file(rankings_csv)
    out_dir = check_out_dir(out_dir if out_dir is not None else default_out_dir(rankings_csv))
    if study_dir is None:
        study_dir = default_study_dir(rankings_csv)
    study_dir = study_folder(study_dir) if study_dir is not None and study_dir is not False else None
    study = load_study(study_dir, check_files=False) if study_dir is not None else None
    checks = attention_checks(study) if study is not None else None
    if results is None and study_dir is not None and (study_dir / RESULTS_FILE).is_file():
        results = study_dir / RESULTS_FILE
    results = results if results is not False else None
    scores = read_results(results) if results is not None else None
    clips = {t.id: t.clip for t in study.trials if t.clip} if study is not None else None
    if pairwise is None and (rankings_csv.parent / "pairwise.csv").is_file():
        pairwise = rankings_csv.parent / "pairwise.csv"
    pairwise = pairwise if pairwise is not False else None
    pairwise_answers = read_pairwise(check_input_file(pairwise), study) if pairwise is not None else None
    if checks:
        logger.info("%s in %s", cli.count(len(checks), "attention check trial"), study_dir / STUDY_FILE)
    checked = load_rankings(rankings_csv, drop_incomplete=drop_incomplete, study=study)
    try:
        check_slugs(checked.criteria)
    except ValueError as error:
        raise RankingsError([str(error)], str(rankings_csv)) from None
    analysis = analyze_rankings(checked, p_adjust=p_adjust, alpha=alpha, posthoc=posthoc, methods=methods,
                                checks=checks, max_failed_checks=max_failed_checks, repeat_min_tau=repeat_min_tau,
                                results=scores, clips=clips, pairwise_answers=pairwise_answers,
                                bootstrap=bootstrap, level=level, seed=seed)
    analysis.agreement_source = str(results) if results is not None else ""
    analysis.pairwise_source = str(pairwise) if pairwise is not None else ""
    analysis.unchecked = study is None
    analysis.no_check_trials = study is not None and not checks
    if study is None:
        logger.warning(NO_STUDY_WARNING, rankings_csv)
    written = write_analysis(analysis, out_dir, source=str(rankings_csv))
    logger.info("%d files written to %s", len(written), out_dir)
    return analysis


NO_STUDY_WARNING = ("%s: no study file given (--study) or found beside it: attention checks are not applied, so "
                    "check trials (if the study had any) are analysed as ordinary ones and no participant is "
                    "excluded")


def pairwise_exclusions(pairwise_csv: Path, study, max_failed_checks: int, repeat_min_tau: float
                        ) -> tuple[set[str], str]:
    """The participants that the study's attention checks exclude, scored from the rankings file beside the
    pairwise answers (the check trials are ranking trials), and a sentence saying so for the report;
    (set(), sentence) when they cannot be applied (no study, no checks, no rankings file), with a warning."""
    if study is None:
        logger.warning(NO_STUDY_WARNING, pairwise_csv)
        return set(), "Attention checks: not applied (no study file)."
    checks = attention_checks(study)
    if not checks:
        return set(), ""
    rankings = pairwise_csv.parent / "rankings.csv"
    if not rankings.is_file():
        logger.warning("%s: the study has attention checks, but no rankings.csv beside the answers to score them "
                       "from: no participant is excluded", pairwise_csv)
        return set(), "Attention checks: not applied (no rankings.csv beside the answers to score them from)."
    summary = attention_summary(load_rankings(rankings, study=study).data, checks, max_failed_checks, repeat_min_tau)
    excluded = set(summary.excluded)
    return excluded, (f"Attention checks (scored from `{rankings}`): {cli.count(len(excluded), 'participant')} "
                      "excluded" + (f": {', '.join(sorted(excluded))}." if excluded else "."))


def analyze_pairwise_csv(pairwise_csv: str | Path, out_dir: str | Path | None = None,
                         methods: list[str] | None = None, bootstrap: int = 1000, level: float = 0.95,
                         seed: int = 0, study_dir: str | Path | bool | None = None, max_failed_checks: int = 0,
                         repeat_min_tau: float = 0.5) -> PairwiseAnalysis:
    """Read, check, analyse and write a pairwise study (``userstudy.pairwise``) into ``out_dir``.

    ``study_dir``: the study folder (or its ``study.json``) the answers are checked against
    (default: ``default_study_dir``; ``False``: none). Its attention checks, scored from the
    ``rankings.csv`` beside the answers, exclude participants as ``analyze`` does
    (``pairwise_exclusions``). Writes ``bradley_terry.csv``, ``win_rates.csv``, ``speech_match.csv``
    (full precision) and ``report.md``. Raises ``PairwiseError`` (every problem, with lines),
    ``RankingsError``, ``StudyError``, ``FileNotFoundError`` or ``ValueError``.
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more resamples, got {bootstrap}")
    pairwise_csv = check_input_file(pairwise_csv)
    out = check_out_dir(out_dir if out_dir is not None else default_out_dir(pairwise_csv))
    if study_dir is None:
        study_dir = default_study_dir(pairwise_csv)
    study = (load_study(study_folder(study_dir), check_files=False)
             if study_dir is not None and study_dir is not False else None)
    answers = read_pairwise(pairwise_csv, study)
    excluded, said = pairwise_exclusions(pairwise_csv, study, max_failed_checks, repeat_min_tau)
    kept = answers[~answers["participant"].isin(excluded)]
    if kept.empty:
        raise ValueError(f"{pairwise_csv}: every participant is excluded by the attention checks ({said})")
    analysis = analyze_pairwise(kept, methods, bootstrap, level, seed)
    out.mkdir(parents=True, exist_ok=True)
    written = write_pairwise_tables(analysis, out) + [
        write_text_atomic(out / "report.md", pairwise_report_markdown(analysis, str(pairwise_csv), said))]
    for stale in record_outputs(out, written):
        logger.info("removed %s: the earlier analysis in %s wrote it, this one does not", stale.name, out)
    logger.info("%d files written to %s", len(written), out)
    return analysis


def is_pairwise_file(path: str | Path) -> bool:
    """Whether a CSV file's header is that of pairwise answers."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return is_pairwise_table([h.strip() for h in header])


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("analyze", prog)
    parser.add_argument("rankings", type=Path,
                        help="long-format rankings CSV, or pairwise answers (see userstudy/README.md)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: <rankings>_analysis next to the rankings file)")
    parser.add_argument("--p-adjust", default="holm", choices=P_ADJUST_METHODS,
                        help="adjustment of the pairwise p-values within a criterion")
    parser.add_argument("--alpha", type=cli.float_between(0, 1), default=0.05,
                        help="significance level of the readings, in (0, 1)")
    parser.add_argument("--posthoc", default="nemenyi", choices=POSTHOC_TESTS, help="post-hoc test after Friedman")
    parser.add_argument("--methods", type=cli.names, metavar="A,B,C",
                        help="display order of the methods, comma-separated, each method once (default: sorted)")
    parser.add_argument("--drop-incomplete", action="store_true",
                        help="set aside blocks that miss a method (each is listed in report.md) "
                             "instead of stopping with an error")
    parser.add_argument("--bootstrap", type=cli.int_in(0, MAX_BOOTSTRAP), default=1000, metavar="N",
                        help="bootstrap resamples of the participants, for the Bradley-Terry rating and the "
                             "metric-agreement intervals; 0 to " + f"{MAX_BOOTSTRAP} (0: no intervals)")
    parser.add_argument("--level", type=cli.float_between(0, 1), default=0.95,
                        help="level of the bootstrap intervals, in (0, 1)")
    parser.add_argument("--seed", type=cli.int_in(0, 2 ** 63 - 1), default=0, help="seed of the bootstrap (0 to 2^63-1)")
    found = parser.add_mutually_exclusive_group()
    found.add_argument("--results", type=Path, metavar="FILE",
                       help="a benchmark run's results.json: Kendall's tau between each metric and the "
                            "rankings (default: results.json in the study folder, if there)")
    found.add_argument("--no-results", action="store_true",
                       help="no metric-human agreement, even with a results.json in the study folder")
    found = parser.add_mutually_exclusive_group()
    found.add_argument("--pairwise", type=Path, metavar="FILE",
                       help="the study's pairwise answers, analysed with the rankings (default: "
                            "pairwise.csv beside the rankings file, if there)")
    found.add_argument("--no-pairwise", action="store_true",
                       help="the rankings alone, even with a pairwise.csv beside them")
    found = parser.add_mutually_exclusive_group()
    found.add_argument("--study", type=Path, metavar="DIR",
                       help="study folder (or its study.json): its attention checks apply, and the answers "
                            "must fit its trials, methods, criteria and preference scale (default: the "
                            "answers file's folder, if it holds a study.json)")
    found.add_argument("--no-study", action="store_true",
                       help="no study file, even with a study.json beside the answers: no attention checks, "
                            "no check of the answers against it")
    parser.add_argument("--max-failed-checks", type=cli.int_in(0, 10 ** 6), default=0, metavar="N",
                        help="exclude a participant who failed more than N attention checks")
    parser.add_argument("--repeat-min-tau", type=cli.float_in(-1, 1), default=0.5, metavar="TAU",
                        help="a repeated trial passes when its mean Kendall tau with the original is at least TAU (-1 to 1)")
    parser.add_argument("--quiet", action="store_true",
                        help="log only warnings and errors, not the progress of the bootstrap")
    return parser


def _interval(low: float, high: float) -> str:
    return "" if pd.isna(low) else f" ({low:.0f} to {high:.0f})"


def _print_pairwise(pairwise: PairwiseAnalysis, prefix: str) -> None:
    """The Bradley-Terry lines of the summary, and what makes their intervals undefined or unstable."""
    for r in pairwise.strengths.itertuples():
        print(f"  {prefix}{r.criterion}: {r.method} Elo {r.elo:.0f}{_interval(r.elo_low, r.elo_high)}")
    for criterion, n in pairwise.few_participants().items():
        state = "undefined" if n == 1 else "unstable"
        print(f"  {prefix}{criterion}: the intervals are {state} with {cli.count(n, 'participant')} "
              f"(see report.md; {MIN_BOOTSTRAP_PARTICIPANTS} or more are needed)")


@cli.interruptible
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    cli.configure_logging(quiet=args.quiet)
    study = False if args.no_study else args.study
    try:
        if is_pairwise_file(args.rankings):
            for flag, value in (("--pairwise", args.pairwise), ("--results", args.results)):
                if value is not None:
                    parser.error(f"{flag} goes with a rankings file; {args.rankings} holds pairwise answers")
            out = args.out if args.out is not None else default_out_dir(args.rankings)
            pairwise = analyze_pairwise_csv(args.rankings, out, args.methods, args.bootstrap, args.level, args.seed,
                                            study_dir=study, max_failed_checks=args.max_failed_checks,
                                            repeat_min_tau=args.repeat_min_tau)
            answers = pairwise.answers
            print(f"pairwise study: {cli.count(answers['participant'].nunique(), 'participant')}, "
                  f"{cli.count(len(answers), 'answer')} ({len(pairwise.superseded)} replaced by a later answer) "
                  f"-> {out}/report.md")
            _print_pairwise(pairwise, "")
            return 0
        out = args.out if args.out is not None else default_out_dir(args.rankings)
        analysis = analyze(args.rankings, out, args.p_adjust, args.alpha, args.posthoc, args.methods,
                           args.drop_incomplete, study, args.max_failed_checks, args.repeat_min_tau,
                           False if args.no_results else args.results, False if args.no_pairwise else args.pairwise,
                           args.bootstrap, args.level, args.seed)
    except FileNotFoundError as error:
        return cli.fail(f"{error.filename}: no such file", parser.prog)
    except (RankingsError, StudyError, ResultsFileError, ValueError) as error:
        return cli.fail(error, parser.prog)
    except OSError as error:   # a folder that cannot be written, a disk that is full
        return cli.fail(f"{error.filename}: {error.strerror or error}", parser.prog)
    checked = analysis.rankings
    print(f"{cli.count(len(checked.participants), 'participant')}, {cli.count(len(checked.trials), 'trial')}, "
          f"{cli.count(checked.blocks(), 'block')} used ({len(checked.dropped_blocks)} dropped, "
          f"{len(checked.superseded)} superseded resubmissions) -> {out}/report.md")
    if analysis.attention is not None:
        excluded = analysis.attention.excluded
        print(f"  attention checks: {len(analysis.attention.results)} answered, "
              f"{int((~analysis.attention.results['passed'].astype(bool)).sum())} failed; "
              f"{cli.count(len(excluded), 'participant')} excluded" + (f": {', '.join(excluded)}" if excluded else ""))
        heavy = analysis.attention.heavy_exclusion(len(checked.participants) + len(excluded))
        if heavy:
            print(f"  warning: {heavy}")
    for criterion, row in analysis.friedman.iterrows():
        across = analysis.friedman_by_trial.loc[criterion]
        print(f"  {criterion}: Kruskal-Wallis p = {analysis.kruskal.loc[criterion, 'p']:.3e}; "
              f"Friedman p = {row['p']:.3e} (Holm {row['p_holm']:.3e}), Kendall's W = {row['W']:.3f}; "
              f"across clips (blocks = trials) p = {across['p']:.3e} (Holm {across['p_holm']:.3e})")
    if analysis.pairwise is not None:
        print(f"  pairwise: {cli.count(len(analysis.pairwise.answers), 'answer')} "
              f"({len(analysis.pairwise.superseded)} replaced by a later answer)")
        _print_pairwise(analysis.pairwise, "pairwise, ")
    if analysis.agreement is not None:
        shown = analysis.agreement[analysis.agreement["scope"] == "all"]
        for r in shown.itertuples():
            interval = "" if pd.isna(r.tau_low) else f" ({r.tau_low:+.2f} to {r.tau_high:+.2f})"
            tau = "n/a (the mean points or the metric's values all tied)" if pd.isna(r.tau) else f"{r.tau:+.2f}"
            left = f" (no value for {r.methods_without_value})" if r.methods_without_value else ""
            print(f"  agreement, {r.criterion} vs {r.label}: Kendall's tau {tau}{interval}, {r.methods} methods{left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
