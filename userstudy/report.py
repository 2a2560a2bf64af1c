"""Markdown rendering of an analysis: the paper-style points table and the one-page report.

Pure functions from a ``StudyAnalysis`` to text; ``analyze.write_analysis`` writes them.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from scipy import stats

from userstudy.analysis import StudyAnalysis
from userstudy.cli import count, version
from userstudy.figures import P_FLOOR, format_p
from userstudy.nonparametric import LIBRARIES, adjustment_name, software
from userstudy.pairwise import MIN_BOOTSTRAP_PARTICIPANTS
from userstudy.schema import criterion_slug


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is one letter per column, l or r."""
    align = align or "l" + "r" * (len(header) - 1)
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def p_text(p: float) -> str:
    """A p-value in scientific notation, as the paper's Tables 6/7 print it; ``< 1e-15`` below ``P_FLOOR``."""
    if pd.isna(p):
        return "n/a"
    return f"< {P_FLOOR:.0e}" if p < P_FLOOR else f"{p:.2e}"


def points_table(analysis: StudyAnalysis) -> str:
    """Tables 4/5: mean points, methods as rows, criteria as columns, best per column in bold."""
    points = analysis.points
    rows = []
    for method in points.index:
        row = [method]
        for criterion in points.columns:
            value = points.loc[method, criterion]
            if pd.isna(value):
                row.append("–")
                continue
            best = round(points[criterion].max(), 2) == round(value, 2)
            row.append(f"**{value:.2f}**" if best else f"{value:.2f}")
        rows.append(row)
    return markdown_table(["Method"] + list(points.columns), rows)


def points_markdown(analysis: StudyAnalysis) -> str:
    ks = sorted({int(k) for k in analysis.rankings.data["k"].unique()})
    k_text = " or ".join(str(k) for k in ks)
    return ("Mean points per method and criterion (rank 1 of k = k points, ..., rank k = 1 point; "
            f"k = {k_text}; higher is better). Best per column in bold. {analysis.sample()}.\n\n"
            + points_table(analysis))


def _order_reading(analysis: StudyAnalysis, criterion: str) -> str:
    column = analysis.points[criterion].dropna().sort_values(ascending=False)
    return ", ".join(f"{m} ({v:.2f})" for m, v in column.items())


def _pair_reading(pairs: pd.DataFrame, p_col: str, value_a: str, value_b: str, alpha: float,
                  higher_is_better: bool = True) -> str:
    """``a > c (p 1.2e-05), b > c (p 0.003); not significant: a vs b (p 0.41)``.

    ``higher_is_better=False`` for values where less is better (a mean rank, 1 = best).
    """
    significant, not_significant = [], []
    for _, pair in pairs.iterrows():
        p = pair[p_col]
        if not pd.isna(p) and p < alpha:
            a_better = pair[value_a] > pair[value_b] if higher_is_better else pair[value_a] < pair[value_b]
            better, worse = ((pair["group_a"], pair["group_b"]) if a_better
                             else (pair["group_b"], pair["group_a"]))
            significant.append(f"{better} > {worse} (p {format_p(p)})")
        else:
            not_significant.append(f"{pair['group_a']} vs {pair['group_b']} (p {format_p(p)})")
    parts = []
    if significant:
        parts.append("; ".join(significant))
    if not_significant:
        parts.append(("not significant: " if significant else "no pair differs significantly: ")
                     + "; ".join(not_significant))
    return "; ".join(parts)


def _data_section(analysis: StudyAnalysis) -> list[str]:
    checked = analysis.rankings
    data = checked.data
    lines = ["## Data", ""]
    lines.append(f"- participants: **{len(checked.participants)}**; trials: **{len(checked.trials)}**; "
                 f"criteria: {len(checked.criteria)}; methods: {', '.join(analysis.methods)}")
    lines.append(f"- blocks used (one block = one participant's ranking of one trial on one criterion): "
                 f"**{checked.blocks()}**, answers (rows): {len(data)}")
    lines.append("")
    rows = [[c, str(checked.blocks(c)), str(len(analysis.methods_of(c))),
             str(data.loc[data["criterion"] == c, "participant"].nunique()),
             str(data.loc[data["criterion"] == c, "trial"].nunique())] for c in checked.criteria]
    lines.append(markdown_table(["criterion", "blocks used", "methods (k)", "participants", "trials"], rows))
    dropped = checked.dropped_blocks
    if len(dropped):
        lines.append(f"**Blocks dropped: {len(dropped)}** (incomplete, set aside on request). Every one:")
        lines.append("")
        lines.append(markdown_table(["participant", "trial", "criterion", "reason", "where"],
                                    dropped[["participant", "trial", "criterion", "reason", "lines"]]
                                    .astype(str).values.tolist(), "lllll"))
    else:
        lines.append("Blocks dropped: none.")
        lines.append("")
    superseded = checked.superseded
    if len(superseded):
        lines.append(f"**Resubmissions: {len(superseded)}** earlier saves of a block were replaced by a "
                     "later save of the same block (the latest counts). The replaced saves:")
        lines.append("")
        lines.append(markdown_table(["participant", "trial", "criterion", "submission", "submitted_at", "where"],
                                    superseded.astype(str).values.tolist(), "llllll"))
    else:
        lines.append("Resubmissions replaced: none.")
        lines.append("")
    if analysis.pairwise is not None:
        replaced = len(analysis.pairwise.superseded)
        lines.append("Pairwise answers replaced by a later answer of the same participant: "
                     + (f"**{replaced}** (listed under Pairwise trials)." if replaced else "none."))
        lines.append("")
    untouched = checked.untouched_blocks
    if "position" in data:
        expected = sum(1 / math.factorial(len(analysis.methods_of(c))) * checked.blocks(c)
                       for c in checked.criteria)
        lines.append(f"Untouched blocks (final ranking = the order shown): {len(untouched)} of "
                     f"{checked.blocks()}; about {expected:.1f} expected by chance (1/k! each).")
        flagged = unlikely_untouched(analysis)
        if len(flagged):
            lines.append(" Participants with more untouched blocks than chance explains (binomial p < 0.001): "
                         + ", ".join(f"{r.participant} ({r.untouched} of {r.blocks})" for r in flagged.itertuples())
                         + ". Their answers are kept; check whether they ranked at all.")
        else:
            lines.append(" No participant has more untouched blocks than chance explains (binomial p < 0.001).")
        lines.append("")
    else:
        lines += ["Untouched blocks (final ranking = the order shown): not checked, the rankings file has no "
                  "`position` column (the server writes it; a hand-made file may add it).", ""]
    return lines


def _attention_section(analysis: StudyAnalysis) -> list[str]:
    attention = analysis.attention
    if attention is None and analysis.no_check_trials:
        return ["## Attention checks", "", "None: the study file has no check trials, so no participant is "
                "excluded (`make-study --frozen-checks N --repeat-checks N` adds them).", ""]
    if attention is None:
        return (["## Attention checks", "", "Not applied: no study file was given or found beside the answers, so "
                 "check trials (if the study had any) are analysed as ordinary trials and no participant is "
                 "excluded. Give the study folder (`--study DIR`).", ""] if analysis.unchecked else [])
    results, people = attention.results, attention.participants
    lines = ["## Attention checks and exclusions", ""]
    kinds = {"last": 0, "repeat": 0}
    for check in attention.checks.values():
        kinds[check.kind] += 1
    lines.append(f"The study has {count(len(attention.checks), 'check trial')}: {kinds['last']} with a broken video "
                 f"that must be ranked last, {kinds['repeat']} repeating another trial (passed when the mean "
                 f"Kendall tau with the original is at least {attention.repeat_min_tau:g}). Check trials are "
                 "not part of any statistic below.")
    lines.append("")
    failed = int((~results["passed"].astype(bool)).sum()) if len(results) else 0
    lines.append(f"Rule: a participant who failed more than {count(attention.max_failed, 'check')} is excluded from "
                 f"every statistic. Answers to checks: {len(results)}, failed: {failed}; participants checked: "
                 f"{len(people)}; **excluded: {len(attention.excluded)}**.")
    lines.append("")
    heavy = attention.heavy_exclusion(len(analysis.rankings.participants) + len(attention.excluded))
    if heavy:
        lines += [f"**Warning: {heavy}.**", ""]
    if attention.excluded:
        rows = [[r.participant, str(r.checks_answered), str(r.checks_failed), r.reason]
                for r in people[people["excluded"]].itertuples()]
        lines.append(markdown_table(["excluded participant", "checks answered", "failed", "why"], rows, "lrrl"))
    kept_failing = people[~people["excluded"] & (people["checks_failed"] > 0)] if len(people) else people
    if len(kept_failing):
        lines.append("Kept although they failed a check (within the rule): "
                     + "; ".join(f"{r.participant} ({r.reason})" for r in kept_failing.itertuples()) + ".")
        lines.append("")
    unscored = attention.unscored
    if len(unscored):
        lines.append("Checks answered but not scorable (a repeat whose original trial the participant did not "
                     "answer): " + "; ".join(f"{r.participant} (trial {r.trial}, a repeat of {r.of})"
                                              for r in unscored.itertuples()) + ".")
        lines.append("")
    unchecked = sorted(set(analysis.rankings.participants) - set(people["participant"])
                       - set(unscored["participant"]))
    if unchecked:
        lines.append(f"Participants who answered no check (kept): {len(unchecked)} ({', '.join(unchecked[:20])}"
                     + (", ..." if len(unchecked) > 20 else "") + ").")
        lines.append("")
    lines.append("Every answer to a check is in `attention_checks.csv`; the rule's outcome per participant in "
                 "`exclusions.csv`.")
    lines.append("")
    return lines


def unlikely_untouched(analysis: StudyAnalysis, threshold: float = 0.001) -> pd.DataFrame:
    """Participants with more untouched blocks than chance explains: a one-sided binomial test of
    their count against the rate 1/k! at which an honest ranking equals the shown order."""
    checked = analysis.rankings
    data, untouched = checked.data, checked.untouched_blocks
    blocks = data.drop_duplicates(["participant", "trial", "criterion"])
    rows = []
    for participant, own in blocks.groupby("participant"):
        chance = float(np.mean([1 / math.factorial(int(k)) for k in own["k"]]))
        count = int((untouched["participant"] == participant).sum())
        p = float(stats.binom.sf(count - 1, len(own), chance)) if count else 1.0
        if p < threshold:
            rows.append({"participant": participant, "untouched": count, "blocks": len(own), "p": p})
    return pd.DataFrame(rows, columns=["participant", "untouched", "blocks", "p"])


def software_line() -> str:
    """What computed the numbers: this package's version and each library's (``nonparametric.LIBRARIES``)."""
    versions = software()
    return (f"Computed by userstudy {version()} (imac-bench) with "
            + "; ".join(f"{name} {versions[name]} ({what})" for name, what in LIBRARIES.items()) + ".")


def report_markdown(analysis: StudyAnalysis, source: str = "") -> str:
    """The one-page report: data, points, Kruskal-Wallis + Dunn (the paper), Friedman + post-hoc."""
    alpha = analysis.alpha
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# User study analysis", ""]
    lines.append(f"Input: `{source}`; analysed {now}. Pairwise p-values: {adjustment_name(analysis.p_adjust)}; "
                 f"alpha = {alpha:g}. All p-values are two-sided.")
    lines.append("")
    lines.append(software_line())
    lines.append("")
    lines += _data_section(analysis)
    lines += _attention_section(analysis)

    lines += ["## Mean points (the paper's Tables 4/5)", "", points_markdown(analysis)]
    for criterion in analysis.criteria:
        lines.append(f"- {criterion}: {_order_reading(analysis, criterion)}.")
    lines.append("")

    lines += ["## Kruskal-Wallis test per criterion (the paper's Tables 6/7)", ""]
    rows = [[c, str(int(r["n"])), str(int(r["k"])), f"{r['H']:.3f}", str(int(r["df"])), p_text(r["p"]),
             p_text(r["p_holm"])]
            for c, r in analysis.kruskal.iterrows()]
    lines.append(markdown_table(["criterion", "n", "k", "H", "df", "p", "p (Holm over criteria)"], rows))
    for criterion, r in analysis.kruskal.iterrows():
        if pd.isna(r["p"]):
            lines.append(f"- {criterion}: undefined (every answer has the same points).")
        elif r["p"] < alpha:
            lines.append(f"- {criterion}: the methods' points differ (H = {r['H']:.2f}, df {int(r['df'])}, "
                         f"p = {p_text(r['p'])} < {alpha:g}).")
        else:
            lines.append(f"- {criterion}: no significant difference (H = {r['H']:.2f}, df {int(r['df'])}, "
                         f"p = {p_text(r['p'])} ≥ {alpha:g}).")
    lines.append("")
    lines.append("Kruskal-Wallis and Dunn treat every answer as an independent observation. In a ranking "
                 "the k ranks of a block are a permutation of 1..k, not independent draws, so these "
                 "tests overstate significance: on complete rankings H is exactly Friedman's chi² times "
                 "(nk - 1) / (n(k - 1)), about k / (k - 1). They are here to reproduce the paper; the "
                 "Friedman analysis below is the one that fits the design.")
    lines.append("")

    lines += [f"## Dunn's pairwise test (the paper's Figures 8/9): {analysis.dunn_label()}", "",
              "![Dunn p-values per criterion](dunn.png)", ""]
    for criterion in analysis.criteria:
        pairs = analysis.dunn[criterion]
        rows = [[f"{p['group_a']} vs {p['group_b']}", f"{p['z']:.3f}", p_text(p["p"]), p_text(p["p_adjusted"]),
                 "yes" if p["p_adjusted"] < alpha else "no"] for _, p in pairs.iterrows()]
        lines.append(f"**{criterion}** (`dunn_{criterion_slug(criterion)}.csv`; z > 0: the first method has "
                     "more points)")
        lines.append("")
        lines.append(markdown_table(["pair", "z", "p", f"p ({adjustment_name(analysis.p_adjust)})",
                                     f"p < {alpha:g}"], rows))
        lines.append(f"Reading: {_pair_reading(pairs, 'p_adjusted', 'mean_rank_a', 'mean_rank_b', alpha)}.")
        lines.append("")

    lines += ["## Friedman test per criterion (within-subject; blocks = participant x trial)", ""]
    rows = [[c, str(int(r["n_blocks"])), str(int(r["k"])), f"{r['chi2']:.3f}", str(int(r["df"])), p_text(r["p"]),
             p_text(r["p_holm"]), f"{r['W']:.3f}"] for c, r in analysis.friedman.iterrows()]
    lines.append(markdown_table(["criterion", "blocks", "k", "chi²", "df", "p", "p (Holm over criteria)",
                                 "Kendall's W"], rows))
    for criterion, r in analysis.friedman.iterrows():
        verdict = ("the methods differ" if not pd.isna(r["p_holm"]) and r["p_holm"] < alpha
                   else "no significant difference")
        lines.append(f"- {criterion}: {verdict} (chi² = {r['chi2']:.2f}, df {int(r['df'])}, Holm p = "
                     f"{p_text(r['p_holm'])}); Kendall's W = {r['W']:.3f} (0 = the blocks do not agree "
                     "on an order, 1 = every block gives the same order).")
    lines.append("")
    lines += ["## Friedman test across clips (blocks = trials)", "",
              "Each trial is one block: each method's mean points over the participants who ranked it. The test "
              "above counts a clip that suits one method once per participant, so it speaks for these clips; "
              "where the clips differ in what suits them it finds differences that are not there (in 2000 "
              "simulated studies with none, 3 methods, 20 participants x 30 trials and `--trial-sd 0.5`, it gave "
              "p < 0.05 in 44.7%, this test in 4.4%). A claim that holds for other clips needs this one.", ""]
    across = analysis.friedman_by_trial
    rows = [[c, str(int(r["n_blocks"])), str(int(r["k"])), f"{r['chi2']:.3f}", str(int(r["df"])), p_text(r["p"]),
             p_text(r["p_holm"]), f"{r['W']:.3f}"] for c, r in across.iterrows()]
    lines.append(markdown_table(["criterion", "trials", "k", "chi²", "df", "p", "p (Holm over criteria)",
                                 "Kendall's W"], rows))
    for criterion, r in across.iterrows():
        verdict = ("the methods differ across clips" if not pd.isna(r["p_holm"]) and r["p_holm"] < alpha
                   else "no significant difference across clips")
        lines.append(f"- {criterion}: {verdict} (chi² = {r['chi2']:.2f}, df {int(r['df'])}, "
                     f"{int(r['n_blocks'])} trials, Holm p = {p_text(r['p_holm'])}).")
    lines.append("")

    name = "Nemenyi" if analysis.posthoc == "nemenyi" else "Conover"
    lines += [f"## {name} post-hoc test after Friedman: {analysis.posthoc_label()}", "",
              f"![{name} p-values per criterion]({analysis.posthoc}.png)", ""]
    p_col = analysis.posthoc_p_column()
    value = "mean_rank" if analysis.posthoc == "nemenyi" else "rank_sum"
    statistic = "q" if analysis.posthoc == "nemenyi" else "t"
    for criterion in analysis.criteria:
        pairs = analysis.friedman_posthoc[criterion]
        rows = [[f"{p['group_a']} vs {p['group_b']}", f"{p[f'{value}_a']:.3f}", f"{p[f'{value}_b']:.3f}",
                 f"{p[statistic]:.3f}", p_text(p[p_col]), "yes" if p[p_col] < alpha else "no"]
                for _, p in pairs.iterrows()]
        lines.append(f"**{criterion}** (`{analysis.posthoc}_{criterion_slug(criterion)}.csv`)")
        lines.append("")
        lines.append(markdown_table(["pair", f"{value.replace('_', ' ')} a", f"{value.replace('_', ' ')} b",
                                     statistic, "p", f"p < {alpha:g}"], rows))
        reading = _pair_reading(pairs, p_col, f"{value}_a", f"{value}_b", alpha,
                                higher_is_better=analysis.posthoc != "nemenyi")
        lines.append(f"Reading: {reading}.")
        lines.append("")

    lines += _pairwise_section(analysis)
    lines += _agreement_section(analysis)
    lines += ["## Files", "",
              "`points.csv`, `points.md`, `kruskal.csv`, `dunn_<criterion>.csv`, `dunn_pairs.csv`, "
              f"`dunn.png`, `friedman.csv`, `friedman_by_trial.csv`, `{analysis.posthoc}_<criterion>.csv`, "
              f"`{analysis.posthoc}_pairs.csv`, `{analysis.posthoc}.png`, "
              + ("`bradley_terry.csv`, `win_rates.csv`, `speech_match.csv`, " if analysis.pairwise is not None else "")
              + ("`agreement.csv`, " if analysis.agreement is not None else "")
              + ("`attention_checks.csv`, `exclusions.csv`, " if analysis.attention is not None else "")
              + "`report.md` (every CSV at full precision; a p-value below 1e-15 prints here as `< 1e-15`, as the "
              "studentized range's tail is not resolved below it: the CSVs hold the computed value, 0 where it "
              "underflowed). Criterion file names: "
              + ", ".join(f"{c} → `{criterion_slug(c)}`" for c in analysis.criteria) + ".", ""]
    return "\n".join(lines)


def _pairwise_section(analysis: StudyAnalysis) -> list[str]:
    """The study's pairwise trials (Bradley-Terry, win rates, matched speech), as in the pairwise report."""
    if analysis.pairwise is None:
        return []
    source = analysis.pairwise_source or "pairwise.csv"
    text = pairwise_report_markdown(analysis.pairwise, source)
    body = text.split("\n", 1)[1].split("## Files")[0]
    excluded = (f" {count(analysis.pairwise_excluded, 'pairwise answer')} (one per trial and criterion) of the "
                "excluded participants are left out." if analysis.pairwise_excluded else "")
    return ["## Pairwise trials", "", f"The study's pairwise trials (`{source}`), analysed as the GENEA "
            "leaderboard does." + excluded] + [line.replace("## ", "### ", 1) if line.startswith("## ") else line
                                                for line in body.split("\n")]


def few_participants_note(participants: int, what: str) -> str:
    """Why a participant-bootstrap interval on so few participants says little (empty when enough)."""
    if participants == 1:
        return (f"**With 1 participant the {what} intervals are undefined**: every bootstrap resample is that "
                "participant's answers, so the interval has zero width and shows no uncertainty; read the "
                "estimates as a description of one person's answers.")
    if participants < MIN_BOOTSTRAP_PARTICIPANTS:
        resamples = math.comb(2 * participants - 1, participants)
        return (f"**With {participants} participants the {what} intervals are unstable**: a participant bootstrap "
                f"has at most {resamples} different resamples; collect at least {MIN_BOOTSTRAP_PARTICIPANTS} "
                "participants before reading them as uncertainty.")
    return ""


def _agreement_section(analysis: StudyAnalysis) -> list[str]:
    """Kendall's tau between the mean points and each metric of the run's results file."""
    table = analysis.agreement
    if table is None:
        return []
    lines = ["## Agreement of the metrics with the participants", ""]
    if not len(table):
        return lines + [f"The results file `{analysis.agreement_source}` scores fewer than two of the study's "
                        "methods on any metric: no agreement to report.", ""]
    level = "interval"
    lines.append(f"Results file: `{analysis.agreement_source}`. Kendall's tau-b (scipy) between the mean points per "
                 "method and the metric's value per method, the metric oriented so that larger is better (tau > 0: "
                 "the metric orders the methods as the participants do; 1: exactly). `all`: every study trial "
                 "against the run's score over all clips; `identity:NAME`: that speaker's trials against the "
                 f"run's score for that speaker. Intervals: percentile bootstrap over **participants** "
                 f"({int(table['bootstrap'].iloc[0])} resamples; the metric values are fixed). With k methods tau "
                 "takes only k(k-1)/2 + 1 values, so read it as a description of the order.")
    lines.append("")
    note = few_participants_note(int(table["participants"].iloc[0]), "agreement") if table["bootstrap"].iloc[0] else ""
    if note:
        lines += [note, ""]
    rows = [[r.criterion, r.scope, f"{r.label} ({'↓' if r.direction.startswith('lower') else '↑'})",
             str(r.methods) + (f" (no value: {r.methods_without_value.replace(',', ', ')})"
                               if isinstance(r.methods_without_value, str) and r.methods_without_value else ""),
             f"{r.tau:+.3f}" if not pd.isna(r.tau) else "n/a (all tied)",
             "n/a" if pd.isna(r.tau_low) else f"{r.tau_low:+.2f} to {r.tau_high:+.2f}", p_text(r.p)]
            for r in table.itertuples()]
    lines.append(markdown_table(["criterion", "scope", "metric", "methods", "tau", level, "p"], rows, "lllrrrr"))
    assumed = sorted(set(table.loc[table["direction"].str.contains("assumed"), "metric"]))
    if assumed:
        lines.append(f"Metrics of unknown direction, taken as higher-is-better: {', '.join(assumed)}.")
        lines.append("")
    return lines


def pairwise_report_markdown(analysis, source: str = "", checks: str = "") -> str:
    """The report of a pairwise study (``userstudy.pairwise.PairwiseAnalysis``): Bradley-Terry
    ratings with participant-bootstrap intervals, win rates, matched-speech shares, and the answers
    replaced by a later answer. ``checks``: what the attention checks did, in a sentence."""
    answers = analysis.answers
    level = f"{analysis.level:.0%}"
    lines = ["# Pairwise study analysis", "",
             f"Input: `{source}`; {count(answers['participant'].nunique(), 'participant')}, "
             f"{count(len(answers), 'answer')} "
             f"({count(int((answers['kind'] == 'compare').sum()), 'comparison')} of two methods, "
             f"{int((answers['kind'] == 'match').sum())} matched-versus-mismatched speech).", ""]
    if checks:
        lines += [checks, ""]
    superseded = analysis.superseded
    if len(superseded):
        lines.append(f"**Answers replaced: {len(superseded)}**: a participant answered the same trial and criterion "
                     "again, and the latest answer counts (latest `submitted_at`, then the later row; a row "
                     f"repeated exactly counts once). The replaced answers, left out of every table below:")
        lines.append("")
        lines.append(markdown_table(["participant", "trial", "criterion", "submission", "submitted_at", "where"],
                                    superseded.astype(str).values.tolist(), "llllll"))
    else:
        lines += ["Answers replaced by a later answer: none.", ""]
    if len(analysis.strengths):
        lines += ["## Bradley-Terry ratings (Elo-like scale)", "",
                  "A preference is a win, *equal* half a win for each side. Fitted by maximum likelihood (choix); "
                  "elo = 1000 + 400 log10(e) theta, so 400 points are 10:1 odds of being preferred. "
                  + (f"{level} intervals: percentile bootstrap over participants ({analysis.bootstrap} resamples, "
                     f"seed {analysis.seed})." if analysis.bootstrap else "No intervals (no bootstrap)."), ""]
        for criterion, own in analysis.strengths.groupby("criterion", sort=False):
            own = own.sort_values("elo", ascending=False)
            rows = [[r.method, f"{r.elo:.0f}", "n/a" if pd.isna(r.elo_low) else f"{r.elo_low:.0f} to {r.elo_high:.0f}",
                     f"{r.wins:g}", f"{r.comparisons:g}"] for r in own.itertuples()]
            lines += [f"**{criterion}**", "", markdown_table(["method", "Elo", f"{level} interval", "wins",
                                                              "comparisons"], rows)]
            note = few_participants_note(int(own["participants"].iloc[0]), "Bradley-Terry") if analysis.bootstrap else ""
            if note:
                lines += [note, ""]
            if own["regularized"].any():
                lines.append("Some method never lost (or never won) to the others: the maximum-likelihood strengths "
                             "are infinite, and these are regularised (choix alpha); read them as an order only.")
                lines.append("")
            share = own["regularized_share"].iloc[0]
            if not pd.isna(share) and share > 0:
                lines.append(f"{share:.0%} of the bootstrap resamples needed regularisation.")
                lines.append("")
        lines += ["## Win rates", "", "Per pair: answers, wins of each, ties, and the first method's win rate "
                  "(wins plus half the ties, over the answers).", ""]
        rows = [[r.criterion, f"{r.method_a} vs {r.method_b}", str(r.answers), str(r.wins_a), str(r.wins_b),
                 str(r.ties), f"{r.win_rate_a:.3f}"] for r in analysis.win_rates.itertuples()]
        lines.append(markdown_table(["criterion", "pair", "answers", "wins a", "wins b", "ties", "win rate a"], rows,
                                    "llrrrrr"))
    if len(analysis.speech_match):
        lines += ["## Matched versus mismatched speech", "",
                  "The share of answers that pick the video with the right speech (an *equal* picks neither), with "
                  f"its {level} Clopper-Pearson interval; p: two-sided binomial test of 1/2 among the answers that "
                  "picked a video; mean preference for the matched video on the -2..2 scale.", ""]
        rows = [[r.criterion, r.method, str(r.answers), str(r.ties), f"{r.share:.3f}",
                 f"{r.share_low:.3f} to {r.share_high:.3f}", p_text(r.p), f"{r.mean_preference:+.3f}"]
                for r in analysis.speech_match.itertuples()]
        lines.append(markdown_table(["criterion", "method", "answers", "ties", "picked matched", f"{level} interval",
                                     "p", "mean preference"], rows, "llrrrrrr"))
    lines += ["## Files", "", "`bradley_terry.csv`, `win_rates.csv`, `speech_match.csv`, `report.md`.", ""]
    return "\n".join(lines)
