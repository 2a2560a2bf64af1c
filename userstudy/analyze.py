"""Analysis of a ranking study: the paper's tables and tests, and the within-subject analysis beside them.

    python -m userstudy analyze rankings.csv [--out DIR] [--p-adjust holm] [--alpha 0.05]
                                [--posthoc nemenyi|conover] [--methods a,b,c] [--drop-incomplete]

(``python -m userstudy.analyze`` is the same command.)

Writes to DIR (default: ``<rankings>_analysis`` next to the input); the names are fixed because
other tools read them:

- ``points.csv`` / ``points.md``: mean points per method and criterion (the paper's Tables 4/5);
- ``kruskal.csv``: Kruskal-Wallis H, df, p per criterion (Tables 6/7), plus Holm across criteria;
- ``dunn_<criterion>.csv``: k x k two-sided Dunn p-values, adjusted as asked (named in the top-left
  cell); ``dunn_pairs.csv``: the same pairs with z; ``dunn.png``: the heatmaps (Figures 8/9);
- ``friedman.csv``: Friedman chi2, df, p, Holm p across criteria and Kendall's W per criterion
  (blocks = participant x trial); ``nemenyi_<criterion>.csv`` (or ``conover_<criterion>.csv``),
  ``<posthoc>_pairs.csv`` and ``<posthoc>.png`` (its heatmaps, drawn like Dunn's);
- every CSV keeps full precision (the shortest text that reads back as the same float);
- ``attention_checks.csv`` and ``exclusions.csv`` (when the study has attention checks): each
  participant's answer to each check trial, and who was excluded and why;
- ``report.md``: all of it on one page, with what was used, dropped, superseded or excluded.

Attention checks come from the study file (``--study DIR``; by default the ``study.json`` beside
the rankings file, where the server writes it): check trials are scored (``userstudy.attention``)
and left out of the statistics, and a participant who failed more than ``--max-failed-checks`` of
them is left out entirely.

A pairwise study's answers (``pairwise.csv``: ``method_a``, ``method_b``, ``preference``; see
``userstudy.pairwise``) are recognised by their columns and get ``bradley_terry.csv`` (Elo-like
ratings with participant-bootstrap intervals: ``--bootstrap``, ``--level``, ``--seed``),
``win_rates.csv``, ``speech_match.csv`` and ``report.md`` instead (``analyze_pairwise_csv``).
A study with ranking and pairwise trials has both files in its folder: the analysis of
``rankings.csv`` takes the ``pairwise.csv`` beside it (or ``--pairwise FILE``) too, with the same
exclusions, and writes those three files and a section of ``report.md`` beside the ranking tables.

Metric-human agreement (``userstudy.agreement``): with a run's ``results.json`` (``--results
FILE``; by default the ``results.json`` in the study folder, which ``make-study --run`` copies
there), ``agreement.csv`` and a section of ``report.md`` give Kendall's tau per criterion and
metric between the mean points and the metric's values on the same methods and clips, with
participant-bootstrap intervals (``--bootstrap``, ``--level``, ``--seed``).

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
from userstudy.attention import attention_summary
from userstudy.figures import dunn_heatmaps, posthoc_heatmaps
from userstudy.files import write_bytes_atomic, write_text_atomic
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
from userstudy.rankings import CheckedRankings, RankingsError, load_rankings, mean_points
from userstudy.pairwise import PairwiseAnalysis, analyze_pairwise, is_pairwise_table, read_pairwise
from userstudy.report import pairwise_report_markdown, points_markdown, report_markdown
from userstudy.schema import CRITERION, METHOD, PARTICIPANT, TRIAL, criterion_slug
from userstudy.study import STUDY_FILE, AttentionCheck, StudyError, load_study

logger = logging.getLogger(__name__)


def method_order(checked: CheckedRankings, methods: list[str] | None) -> list[str]:
    """The display order: the given one (which must name exactly the methods in the data) or sorted."""
    present = sorted({m for ms in checked.methods.values() for m in ms})
    if methods is None:
        return present
    missing, unknown = [m for m in present if m not in methods], [m for m in methods if m not in present]
    if missing or unknown or len(set(methods)) != len(methods):
        raise ValueError(f"--methods must list each method of the data once: the data has {present}"
                         + (f"; not listed: {missing}" if missing else "")
                         + (f"; not in the data: {unknown}" if unknown else ""))
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
    participants. ``bootstrap``, ``level``, ``seed``: the intervals of both.
    """
    attention = None
    if checks:
        attention = attention_summary(checked.data, checks, max_failed_checks, repeat_min_tau)
        data = checked.data
        keep = ~data[TRIAL].isin(set(checks)) & ~data[PARTICIPANT].isin(set(attention.excluded))
        checked = checked.subset(keep)
    if p_adjust not in P_ADJUST_METHODS:
        raise ValueError(f"p_adjust {p_adjust!r}: choose one of {', '.join(P_ADJUST_METHODS)}")
    if posthoc not in POSTHOC_TESTS:
        raise ValueError(f"posthoc {posthoc!r}: choose one of {', '.join(POSTHOC_TESTS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    order = method_order(checked, methods)
    data = checked.data
    kruskal_rows, friedman_rows, dunn_pairs, posthoc_pairs = [], [], {}, {}
    for criterion in checked.criteria:
        rows = data[data[CRITERION] == criterion]
        present = present_methods(order, checked.methods[criterion])
        kruskal_rows.append(kruskal_wallis(rows, "points", METHOD).rename(criterion))
        dunn_pairs[criterion] = dunn(rows, "points", METHOD, p_adjust=p_adjust, groups=present)
        friedman_rows.append(friedman(rows, "points", METHOD, [PARTICIPANT, TRIAL]).rename(criterion))
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
    for table in (kruskal_table, friedman_table):
        table.index.name = CRITERION
    agreement = None
    if results is not None:
        agreement = metric_agreement(data, results[0], results[1], clips, bootstrap, level, seed)
    pairwise, pairwise_excluded = None, 0
    if pairwise_answers is not None:
        excluded = set(attention.excluded) if attention is not None else set()
        keep = ~pairwise_answers["participant"].isin(excluded)
        pairwise_excluded = int((~keep).sum())
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
    )


def attention_checks(study) -> dict[str, AttentionCheck]:
    """The study's check trials: trial id -> its check."""
    return {t.id: t.check for t in study.trials if t.check is not None}


# -- files -----------------------------------------------------------------------------------------


def _full(value: float) -> str:
    """A number at full precision (the shortest text that reads back as the same float): other tools
    read these files, so nothing is rounded."""
    return "" if pd.isna(value) else repr(float(value))


def kruskal_csv(analysis: StudyAnalysis) -> str:
    table = analysis.kruskal.reset_index()
    table = table.assign(H=table["H"].map(_full), p=table["p"].map(_full), p_holm=table["p_holm"].map(_full))
    return table.to_csv(index=False)


def friedman_csv(analysis: StudyAnalysis) -> str:
    table = analysis.friedman.reset_index().rename(columns={"n_blocks": "blocks", "W": "kendalls_w"})
    table = table.assign(chi2=table["chi2"].map(_full), p=table["p"].map(_full),
                         p_holm=table["p_holm"].map(_full), kendalls_w=table["kendalls_w"].map(_full))
    return table.to_csv(index=False)


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
    return written


def check_slugs(criteria: list[str]) -> None:
    """Two criteria that would share a file name (``a b`` and ``a-b``) are refused, not overwritten."""
    seen: dict[str, str] = {}
    for criterion in criteria:
        slug = criterion_slug(criterion)
        if slug in seen:
            raise ValueError(f"criteria {seen[slug]!r} and {criterion!r} would both be written as "
                             f"*_{slug}.csv; rename one")
        seen[slug] = criterion


def default_out_dir(rankings_csv: str | Path) -> Path:
    """Where the analysis goes unless told: ``<rankings>_analysis`` next to the rankings file."""
    rankings_csv = Path(rankings_csv)
    return rankings_csv.with_name(f"{rankings_csv.stem}_analysis")


def default_study_dir(rankings_csv: str | Path) -> Path | None:
    """The study folder of a rankings file: the folder holding it, if it holds a study file."""
    folder = Path(rankings_csv).parent
    return folder if (folder / STUDY_FILE).is_file() else None


def write_pairwise_tables(analysis: PairwiseAnalysis, out: Path) -> list[Path]:
    """``bradley_terry.csv``, ``win_rates.csv`` and ``speech_match.csv`` (full precision)."""
    return [write_text_atomic(out / "bradley_terry.csv", analysis.strengths.to_csv(index=False)),
            write_text_atomic(out / "win_rates.csv", analysis.win_rates.to_csv(index=False)),
            write_text_atomic(out / "speech_match.csv", analysis.speech_match.to_csv(index=False))]


def analyze(rankings_csv: str | Path, out_dir: str | Path | None = None, p_adjust: str = "holm",
            alpha: float = 0.05, posthoc: str = "nemenyi", methods: list[str] | None = None,
            drop_incomplete: bool = False, study_dir: str | Path | None = None, max_failed_checks: int = 0,
            repeat_min_tau: float = 0.5, results: str | Path | None = None, pairwise: str | Path | None = None,
            bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> StudyAnalysis:
    """Read, check, analyse and write into ``out_dir`` (default: ``default_out_dir``): the command.

    ``study_dir``: the study folder whose attention checks apply (default: ``default_study_dir``;
    only its ``study.json`` is read). ``results``: a run's results file for the metric-human
    agreement (default: ``results.json`` in the study folder, if there). ``pairwise``: the study's
    pairwise answers (default: ``pairwise.csv`` beside the rankings, if there). Raises
    ``RankingsError`` (every problem of the file, with its lines), ``StudyError`` (a study file that
    cannot be read), ``ResultsFileError`` (a results file), ``ValueError`` (a bad option) or
    ``FileNotFoundError``; nothing is written then.
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more resamples, got {bootstrap}")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(rankings_csv)
    study_dir = study_dir if study_dir is not None else default_study_dir(rankings_csv)
    study = load_study(study_dir, check_files=False) if study_dir is not None else None
    checks = attention_checks(study) if study is not None else None
    if results is None and study_dir is not None and (Path(study_dir) / RESULTS_FILE).is_file():
        results = Path(study_dir) / RESULTS_FILE
    scores = read_results(results) if results is not None else None
    clips = {t.id: t.clip for t in study.trials if t.clip} if study is not None else None
    if pairwise is None and (Path(rankings_csv).parent / "pairwise.csv").is_file():
        pairwise = Path(rankings_csv).parent / "pairwise.csv"
    pairwise_answers = read_pairwise(pairwise) if pairwise is not None else None
    if checks:
        logger.info("%d attention check trial(s) in %s", len(checks), Path(study_dir) / STUDY_FILE)
    checked = load_rankings(rankings_csv, drop_incomplete=drop_incomplete)
    try:
        check_slugs(checked.criteria)
    except ValueError as error:
        raise RankingsError([str(error)], str(rankings_csv)) from None
    analysis = analyze_rankings(checked, p_adjust=p_adjust, alpha=alpha, posthoc=posthoc, methods=methods,
                                checks=checks, max_failed_checks=max_failed_checks, repeat_min_tau=repeat_min_tau,
                                results=scores, clips=clips, pairwise_answers=pairwise_answers,
                                bootstrap=bootstrap, level=level, seed=seed)
    analysis.agreement_source = str(results) if results is not None else ""
    written = write_analysis(analysis, out_dir, source=str(rankings_csv))
    logger.info("%d files written to %s", len(written), out_dir)
    return analysis


def analyze_pairwise_csv(pairwise_csv: str | Path, out_dir: str | Path | None = None,
                         methods: list[str] | None = None, bootstrap: int = 1000, level: float = 0.95,
                         seed: int = 0) -> PairwiseAnalysis:
    """Read, check, analyse and write a pairwise study (``userstudy.pairwise``) into ``out_dir``.

    Writes ``bradley_terry.csv``, ``win_rates.csv``, ``speech_match.csv`` (full precision) and
    ``report.md``. Raises ``PairwiseError`` (every problem, with lines) or ``ValueError``.
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more resamples, got {bootstrap}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(pairwise_csv)
    analysis = analyze_pairwise(read_pairwise(pairwise_csv), methods, bootstrap, level, seed)
    out.mkdir(parents=True, exist_ok=True)
    written = write_pairwise_tables(analysis, out) + [
        write_text_atomic(out / "report.md", pairwise_report_markdown(analysis, str(pairwise_csv)))]
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
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the readings")
    parser.add_argument("--posthoc", default="nemenyi", choices=POSTHOC_TESTS, help="post-hoc test after Friedman")
    parser.add_argument("--methods", type=cli.names, metavar="A,B,C",
                        help="display order of the methods, comma-separated, each method once (default: sorted)")
    parser.add_argument("--drop-incomplete", action="store_true",
                        help="set aside blocks that miss a method (each is listed in report.md) "
                             "instead of stopping with an error")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples of the participants, for the Bradley-Terry rating and the "
                             "metric-agreement intervals")
    parser.add_argument("--level", type=float, default=0.95, help="level of the bootstrap intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="a benchmark run's results.json: Kendall's tau between each metric and the "
                             "rankings (default: results.json in the study folder, if there)")
    parser.add_argument("--pairwise", type=Path, metavar="FILE",
                        help="the study's pairwise answers, analysed with the rankings (default: "
                             "pairwise.csv beside the rankings file, if there)")
    parser.add_argument("--study", type=Path, metavar="DIR",
                        help="study folder whose study.json marks the attention checks (default: the "
                             "rankings file's folder, if it holds a study.json)")
    parser.add_argument("--max-failed-checks", type=int, default=0, metavar="N",
                        help="exclude a participant who failed more than N attention checks")
    parser.add_argument("--repeat-min-tau", type=float, default=0.5, metavar="TAU",
                        help="a repeated trial passes when its mean Kendall tau with the original is at least TAU")
    return parser


@cli.interruptible
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.configure_logging()
    out = args.out if args.out is not None else default_out_dir(args.rankings)
    if is_pairwise_file(args.rankings):
        try:
            pairwise = analyze_pairwise_csv(args.rankings, out, args.methods, args.bootstrap, args.level, args.seed)
        except (RankingsError, ValueError) as error:
            return cli.fail(error)
        print(f"pairwise study: {pairwise.answers['participant'].nunique()} participants, "
              f"{len(pairwise.answers)} answers -> {out}/report.md")
        for r in pairwise.strengths.itertuples():
            print(f"  {r.criterion}: {r.method} Elo {r.elo:.0f} ({r.elo_low:.0f} to {r.elo_high:.0f})")
        return 0
    try:
        analysis = analyze(args.rankings, out, args.p_adjust, args.alpha, args.posthoc, args.methods,
                           args.drop_incomplete, args.study, args.max_failed_checks, args.repeat_min_tau,
                           args.results, args.pairwise, args.bootstrap, args.level, args.seed)
    except FileNotFoundError as error:
        return cli.fail(f"{error.filename}: no such file")
    except (RankingsError, StudyError, ResultsFileError, ValueError) as error:
        return cli.fail(error)
    checked = analysis.rankings
    print(f"{len(checked.participants)} participants, {len(checked.trials)} trials, "
          f"{checked.blocks()} blocks used ({len(checked.dropped_blocks)} dropped, "
          f"{len(checked.superseded)} superseded resubmissions) -> {out}/report.md")
    if analysis.attention is not None:
        excluded = analysis.attention.excluded
        print(f"  attention checks: {len(analysis.attention.results)} answered, "
              f"{int((~analysis.attention.results['passed'].astype(bool)).sum())} failed; "
              f"{len(excluded)} participant(s) excluded" + (f": {', '.join(excluded)}" if excluded else ""))
    for criterion, row in analysis.friedman.iterrows():
        print(f"  {criterion}: Kruskal-Wallis p = {analysis.kruskal.loc[criterion, 'p']:.3e}; "
              f"Friedman p = {row['p']:.3e} (Holm {row['p_holm']:.3e}), Kendall's W = {row['W']:.3f}")
    if analysis.pairwise is not None:
        for r in analysis.pairwise.strengths.itertuples():
            print(f"  pairwise, {r.criterion}: {r.method} Elo {r.elo:.0f} ({r.elo_low:.0f} to {r.elo_high:.0f})")
    if analysis.agreement is not None:
        shown = analysis.agreement[analysis.agreement["scope"] == "all"]
        for r in shown.itertuples():
            print(f"  agreement, {r.criterion} vs {r.label}: Kendall's tau {r.tau:+.2f} "
                  f"({r.tau_low:+.2f} to {r.tau_high:+.2f}, {r.methods} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
