"""``imac-bench report``: a run's ``results.json`` as tables (CSV, Markdown, LaTeX) and plots.

``report.md`` follows the paper's Tables 2 and 3 (one row per method, FGD / Div / BAS / FVD with
arrows for the better direction, the best method in bold), with what the paper leaves out: the
95% interval and the clip counts of every number, the controls and their checks, a table per
speaker identity, every metric's provenance card, what the inputs needed, and the protocol block.
Everything is read from the typed ``results.json`` (``bench.results``); nothing parses a table.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.results import BenchResults, ControlCheck, read_results
from metrics.beats import motion_beats, speech_beats
from metrics.io.audio import load_audio
from metrics.io.files import atomic_path, write_text_atomic
from metrics.io.video import VideoReader, probe_video, read_video_audio
from metrics.pose.extraction import cached_keypoints, keypoint_cache, video_keypoints
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol
from metrics.registry import REGISTRY
from metrics.results import METRICS, Score, decimals, format_score, number, weights_id

# Fewer test clips than this and "shuffled < gt on BAS" is reported but does not fail a run. On the
# toy corpus v2 the mean check has 100% power at 4 clips (benchmarks/toy_bas_power.py: matched minus
# shuffled BAS +0.374 +- 0.115 per clip over 240 clips); with fewer, one weakly coupled clip decides.
MIN_CLIPS_BAS_ORDER = 4
CONTROL_ROWS = ("gt", "noise-floor", "static", "shuffled")
CANDIDATE_KINDS = ("model", "external")


def load_results(run: str | Path) -> BenchResults:
    """A run's ``results.json``, with its control checks made again by this version's rules."""
    results = read_results(Path(run) / "results.json")
    results.control_checks = control_checks(results)
    return results


def arrow(metric: str) -> str:
    return "↓" if METRICS[metric].lower_is_better else "↑"


DIV_BELOW_STATIC = ("not gating: below static, a method's poses vary less across clips than the clips' reference "
                    "frames do (a collapse toward one pose), which says something of the method, not of the metric")


def control_checks(results: BenchResults, scope: str = "all") -> list[ControlCheck]:
    """The orderings the controls must show, each with its numbers and whether it holds.

    - FGD, FVD: the real-vs-real noise floor below static (gating); at or below each method
      (reported, not gating: a method below the floor is closer to the test videos than other real
      clips of the same speakers are, at another N; far below it suggests copying);
    - Diversity, BAS: static below the real test videos (gt) (gating) and never above a method
      (gating for BAS, where static scores 0; reported for Diversity: static's Diversity is that of
      the test clips' reference frames, and a method whose poses vary less across clips, one that
      collapses toward one pose, is below it: a finding about the method, not a broken metric);
    - BAS: the shuffled-audio control below gt (gating from ``MIN_CLIPS_BAS_ORDER`` test clips);
    - HKV: static below gt and never above a method (a still frame has no hand motion).

    HKC, the chunk joins and drift have no gating order: the static control wins them by
    construction (a still real frame; nothing changes, so no seam and no drift), see the README.

    A missing control number counts as a failure; a method without a score gives ``holds: None``.
    Without every control row no check can be made (``missing_controls``; a run always has them): [],
    and the report and ``imac-bench check`` say so.
    """
    methods = results.methods
    if missing_controls(results):
        return []
    others = [m for m in methods if methods[m].kind in CANDIDATE_KINDS]
    present = results.scored_metrics()
    checks: list[ControlCheck] = []

    def add(metric: str, low: str, high: str, strict: bool = True, gating: bool = True, note: str = "") -> None:
        a, b = results.value(low, metric, scope), results.value(high, metric, scope)
        holds = bool(a < b) if strict else bool(a <= b)
        if any(m in others for m in (low, high)) and (math.isnan(a) or math.isnan(b)):
            holds = None   # the method has no score (flagged in its row): nothing to compare
        checks.append(ControlCheck(f"{metric}:{low}{'<' if strict else '<='}{high}", metric, low, high, strict,
                                   a, b, holds, gating, note))

    for metric in ("fgd", "fvd"):
        if metric in present:
            add(metric, "noise-floor", "static")
            for other in others:
                add(metric, "noise-floor", other, strict=False, gating=False,
                    note="not gating: below the floor is closer to the test videos than other real clips are")
    for metric in ("div", "bas"):
        if metric in present:
            add(metric, "static", "gt")
            for other in others:
                if metric == "div":
                    add(metric, "static", other, strict=False, gating=False, note=DIV_BELOW_STATIC)
                else:
                    add(metric, "static", other, strict=False)
    if "hkv" in present:
        add("hkv", "static", "gt")
        for other in others:
            add("hkv", "static", other, strict=False)
    if "bas" in present:
        score = methods["gt"].scores.get(scope, {}).get("bas")
        clips = score.clips if score is not None else 0
        gating = (clips or 0) >= MIN_CLIPS_BAS_ORDER
        add("bas", "shuffled", "gt", gating=gating,
            note="" if gating else f"not gating with {clips} test clips (fewer than {MIN_CLIPS_BAS_ORDER}): "
                                   "too few for the check to have power")
    return checks


def missing_controls(results: BenchResults) -> list[str]:
    """The control rows (``CONTROL_ROWS``) that ``results`` lacks: no control check can be made without them."""
    return [name for name in CONTROL_ROWS if name not in results.methods]


def failed_checks(results: BenchResults) -> list[ControlCheck]:
    """The control checks that fail and count (a method without a score or a non-gating check does not)."""
    return results.failed_checks()


def table_rows(results: BenchResults) -> list[dict]:
    """Long format: one row per method x scope x metric, with the interval and the counts."""
    rows = []
    for name, method in results.methods.items():
        for scope, table in method.scores.items():
            for metric, score in table.items():
                rows.append({"method": name, "label": method.label, "kind": method.kind, "scope": scope,
                             "metric": metric, "metric_label": results.label(metric), "value": number(score.value),
                             "ci_low": number(score.ci_low), "ci_high": number(score.ci_high),
                             "n_clips": score.clips,
                             "counts": " ".join(f"{k}={v}" for k, v in score.counts.items()),
                             "protocol": results.protocol_label,
                             "weights": weights_id(method.provenance, metric)})
    return rows


def _fmt(value: float | None) -> str:
    """One number alone (a check's values, a difference): four significant digits (``decimals``)."""
    value = number(value)
    return "n/a" if value is None else f"{value:.{decimals(value)}f}"


def _fmt_interval(estimate: float | None, low: float | None, high: float | None) -> tuple[str, str]:
    """An estimate and its interval with one precision (the estimate's)."""
    return format_score(Score(_nan(estimate), _nan(low), _nan(high), {"n_clips": 2}))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _in_scope(labels, scope: str) -> list[str]:
    """The ``identity/clip`` labels of ``labels`` that a table of ``scope`` covers (``all``, ``identity:NAME``)."""
    if not scope.startswith("identity:"):
        return list(labels)
    return [label for label in labels if label.startswith(scope.removeprefix("identity:") + "/")]


def _label(results: BenchResults, name: str, scope: str = "all") -> str:
    """The method's label, flagged with its missing and unscorable clips of ``scope`` (an identity's table
    flags only that identity's clips)."""
    method = results.methods[name]
    flags = []
    skipped, unscored = _in_scope(method.skipped, scope), _in_scope([c for c in method.unscored if c != "*"], scope)
    if skipped:
        flags.append(f"{len(skipped)} clip(s) skipped")     # (missing or unreadable: the reasons under Methods)
    if "*" in method.unscored:
        flags.append("no clip could be scored")
    elif unscored:
        flags.append(f"{len(unscored)} clip(s) unscorable")
    no_body = _in_scope(list(method.no_body), scope)
    if no_body:
        flags.append(f"{len(no_body)} clip(s) without a body")     # left out of FGD, Div and BAS only
    return method.label + "".join(f" ⚠ {flag}" for flag in flags)


def _cell(score: Score | None, bold: bool, latex: bool = False) -> str:
    if score is None:
        return ""
    value, interval = format_score(score)
    if latex:
        value = f"\\textbf{{{value}}}" if bold else value
        return f"{value} {{\\scriptsize {_latex_escape(interval)}}}" if interval else value
    return f"{f'**{value}**' if bold else value} {interval}".strip()


def separable_best(results: BenchResults, metric: str, scope: str = "all") -> str | None:
    """The method to print in bold on ``metric``: the best candidate, but only when its paired
    difference to EVERY other candidate with a value excludes 0 in its favour (``results.paired``,
    scope ``all``); None otherwise (a tie the data cannot separate, a single method, another scope)."""
    if scope != "all":
        return None
    values = {m: results.value(m, metric, scope) for m, r in results.methods.items() if r.kind in CANDIDATE_KINDS}
    values = {m: v for m, v in values.items() if not math.isnan(v)}
    if len(values) < 2:
        return None
    lower = METRICS[metric].lower_is_better
    best = (min if lower else max)(values, key=values.get)
    for other in values:
        if other == best:
            continue
        row = next((r for r in results.paired if r["metric"] == metric and {r["a"], r["b"]} == {best, other}), None)
        if row is None or row.get("low") is None or row.get("high") is None:
            return None
        low, high = (row["low"], row["high"]) if row["a"] == best else (-row["high"], -row["low"])
        if not (high < 0 if lower else low > 0):      # best - other must be separable, in the better direction
            return None
    return best


def md_cell(text: object) -> str:
    """``text`` as one Markdown table cell: a ``|`` escaped (a label such as ``IMAC | v2``, set by a methods
    file, moved every number of its row one column on) and line breaks made spaces."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _row_label(results: BenchResults, name: str, scope: str = "all") -> str:
    kind = results.methods[name].kind
    return _label(results, name, scope) + {"control": " *(control)*", "reference": " *(reference)*"}.get(kind, "")


def clip_counts(table: Mapping[str, Score]) -> str:
    """The clips a row's scores rest on: "4", or "3-4" where they differ between metrics (a clip with no
    body found counts for FVD* and not for FGD); "" without counts."""
    counts = sorted({score.clips for score in table.values() if score.clips is not None})
    return "" if not counts else str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def markdown_table(results: BenchResults, scope: str = "all", methods: list[str] | None = None) -> str:
    """Methods as rows, metrics as columns: value and [95% interval] with one precision per cell, and
    the clips; in bold only a method whose paired differences to all others are separable."""
    metrics = results.scored_metrics()
    methods = methods or list(results.methods)
    best = {metric: separable_best(results, metric, scope) for metric in metrics}
    head = "| method | " + " | ".join(f"{results.label(m)} {arrow(m)}" for m in metrics) + " | clips |"
    lines = [head, "|---|" + "---|" * (len(metrics) + 1)]
    for name in methods:
        table = results.methods[name].scores.get(scope, {})
        cells = [_cell(table.get(metric), best.get(metric) == name) for metric in metrics]
        lines.append(f"| {md_cell(_row_label(results, name, scope))} | " + " | ".join(cells)
                     + f" | {clip_counts(table)} |")
    return "\n".join(lines)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def latex_table(results: BenchResults, scope: str = "all") -> str:
    """The table of ``scope`` as a LaTeX ``tabular`` (booktabs): the methods, a rule, then the
    reference and the controls; the same cells as ``markdown_table`` (bold only where separable),
    the interval in small type, the protocol label and FVD* warning in the caption comment."""
    metrics = results.scored_metrics()
    best = {metric: separable_best(results, metric, scope) for metric in metrics}
    arrows = {"↓": r"$\downarrow$", "↑": r"$\uparrow$"}
    lines = [f"% imac-bench report table ({scope}); needs \\usepackage{{booktabs}}",
             f"% protocol: {results.protocol_label}",
             *[f"% {line}" for line in _caveats(results)],
             r"\begin{tabular}{l" + "c" * len(metrics) + "r}", r"\toprule",
             "Method & " + " & ".join(f"{_latex_escape(results.label(m))} {arrows[arrow(m)]}" for m in metrics)
             + r" & Clips \\", r"\midrule"]
    previous = None
    for name, method in results.methods.items():
        group = "method" if method.kind in CANDIDATE_KINDS else "control"
        if previous == "method" and group == "control":
            lines.append(r"\midrule")
        previous = group
        table = method.scores.get(scope, {})
        cells = [_cell(table.get(metric), best.get(metric) == name, latex=True) for metric in metrics]
        clips = clip_counts(table).replace("-", "--")
        label = _latex_escape(_label(results, name, scope).replace("⚠", "(!)"))
        lines.append(f"{label} & " + " & ".join(cells) + f" & {clips} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _caveats(results: BenchResults) -> list[str]:
    """What a reader must know before comparing these numbers with others (FVD* first)."""
    notes = []
    left_out = results.run.get("left_out") or []
    if left_out:
        notes.append(f"Not in this table: {', '.join(left_out)}, whose videos are in the run folder (made by an "
                     "earlier run); this run was not given them.")
    if "fvd" in results.scored_metrics() and results.label("fvd").endswith("*"):
        notes.append("FVD* is computed with an UNTRAINED I3D stand-in (no published weights given): it orders "
                     "videos of this run only and is not comparable with any published FVD.")
    stand_ins = [results.label(m) for m in results.scored_metrics()
                 if m != "fvd" and results.label(m).endswith("*")]
    if stand_ins:
        notes.append(f"{', '.join(stand_ins)} are computed with stand-in networks (no published weights given): they "
                     "order videos of this run only and are not comparable with published numbers.")
    left_out = results.networks.get("unavailable_metrics") or {}
    if left_out:
        notes.append("Left out (weights not given): " + "; ".join(f"{REGISTRY[m].label}: {why}"
                                                                   for m, why in left_out.items()) + ".")
    if any(m in REGISTRY and REGISTRY[m].implementation and "Chunk" in REGISTRY[m].preset_group
           for m in results.scored_metrics()):
        notes.append("Join-A / Join-M: 1.0 is seamless (no periodic seam found); the still control has 1.0 and Drift 0 "
                     "by construction. HKV is read against GT's (more is not better beyond it).")
    if "fgd" in results.scored_metrics() or "div" in results.scored_metrics():
        ae = results.networks.get("skeleton_autoencoder") or {}
        notes.append(f"FGD and Div are comparable only under the same skeleton autoencoder "
                     f"({ae.get('checkpoint_hash', 'n/a')}) and pose extractor ({results.networks.get('pose_extractor')}).")
    return notes


def protocol_block(results: BenchResults) -> str:
    run, env, networks = results.run, results.environment, results.networks
    i3d = networks.get("i3d")
    ae = networks.get("skeleton_autoencoder")
    lines = ["```",
             f"protocol        {results.protocol_label}",
             f"pose extractor  {networks.get('pose_extractor')}",
             f"skeleton AE     {ae['checkpoint_hash'] if ae else 'n/a'} (FGD and Div are comparable only under it)",
             f"I3D             {i3d['feature_id'] + ('' if i3d['pretrained'] else '  UNTRAINED stand-in: FVD* is not comparable with published FVD') if i3d else 'n/a'}",
             f"data            {run['data']}  ({len(run['test_clips'])} test clips"
             + (f"; identities {', '.join(run['identities'])}" if run.get("identities") else "") + ")",
             f"seed            {run['seed']}    device {run['device']}    bench {results.bench_version}"
             f"    package {results.package_version}    results schema {results.schema_version}",
             f"environment     python {env.get('python')}, torch {env.get('torch')} ({env.get('torch_threads')} threads)"
             + (f", CPU {env['cpu'] or '?'} ({env.get('cpu_capability')})" if "cpu" in env else ""),
             *([f"produced by     {env['command']}", f"                started {env.get('started_utc')} UTC, source "
                f"{env.get('revision') or 'not a git checkout (see the package version)'}"] if env.get("command") else []),
             "```"]
    return "\n".join(lines)


def provenance_section(results: BenchResults) -> list[str]:
    """Each metric's provenance card (from the first row that has it) and the N of every row."""
    lines = ["## Provenance of each metric", ""]
    for metric in results.scored_metrics():
        card = next((m.provenance[metric] for m in results.methods.values() if metric in m.provenance), None)
        if card is None:
            continue
        lines.append(f"- **{card.label}** ({METRICS[metric].name}): {card.features}; {card.summary()}"
                     + (f"; square root: {card.sqrt_method}" if card.sqrt_method else "")
                     + (f"; training data {card.training_data_hash}" if card.training_data_hash else ""))
    packages = next((c.packages for m in results.methods.values() for c in m.provenance.values()), {})
    if packages:
        lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    lines += ["", "| row | " + " | ".join(f"N {results.label(m)} (real / generated)" for m in results.scored_metrics())
              + " |", "|---|" + "---|" * len(results.scored_metrics())]
    for name, method in results.methods.items():
        cells = []
        for metric in results.scored_metrics():
            card = method.provenance.get(metric)
            cells.append("" if card is None else f"{'-' if card.n_real is None else card.n_real} / {card.n_fake}")
        lines.append(f"| {md_cell(method.label)} | " + " | ".join(cells) + " |")
    return lines + [""]


def inputs_section(results: BenchResults) -> list[str]:
    """What each row's inputs needed: converted as the protocol says, or allowed to differ."""
    lines = []
    for method in results.methods.values():
        for finding in method.inputs.findings:
            lines.append(f"| {md_cell(method.label)} | {finding.property} | {finding.action} | "
                         f"{'/'.join(finding.metrics)} | {md_cell(finding.detail)} |")
    if not lines:
        return ["## Inputs", "", "Every property that changes a number is equal on both sides; nothing was "
                "converted or allowed.", ""]
    return ["## Inputs (converted or allowed)", "", "| row | property | action | metrics | detail |",
            "|---|---|---|---|---|", *lines, ""]


def paired_section(results: BenchResults) -> list[str]:
    """Paired differences between methods (``metrics.differences``), when the run has two or more."""
    if not results.paired:
        return []
    lines = ["## Differences between methods (paired on the same test clips)", "",
             "A level interval also carries how hard the test clips happen to be, which both methods share; "
             "the difference is resampled in pairs, so that cancels. Overlapping level intervals do not mean "
             "that two methods are indistinguishable.", "",
             "| a - b | metric | difference | 95% interval | clips | reading |", "|---|---|---|---|---|---|"]
    for row in results.paired:
        a, b = (results.methods[n].label if n in results.methods else n for n in (row["a"], row["b"]))
        estimate, interval = _fmt_interval(row.get("estimate"), row.get("low"), row.get("high"))
        lines.append(f"| {md_cell(a)} - {md_cell(b)} | {results.label(row['metric'])} | {estimate} | {interval} | "
                     f"{row.get('pairs', '')} | {md_cell(row.get('sentence', ''))} |")
    return lines + [""]


def warnings_section(results: BenchResults) -> list[str]:
    """The metrics' own warnings on the all-identities numbers (e.g. too few clips for the dimension)."""
    lines = []
    for method in results.methods.values():
        for metric, score in method.scores.get("all", {}).items():
            lines += [f"- {method.label}, {results.label(metric)}: {w}" for w in score.warnings]
    return ["Warnings on these numbers:", "", *lines, ""] if lines else []


def checks_section(results: BenchResults) -> list[str]:
    checks = results.control_checks
    title = "## Control checks (do the metrics order known answers correctly?)"
    missing = missing_controls(results)
    if missing:
        return [title, "", f"**The control checks could not be made**: {_no_controls(missing)}.", ""]
    if not checks:
        return []
    lines = [title, "",
             "| check | values | holds |", "|---|---|---|"]
    for c in checks:
        verdict = {True: "yes", False: "**NO**" if c.gating else "no", None: "n/a (no score)"}[c.holds]
        if c.note and c.holds is not True:
            verdict += f" ({c.note})"
        lines.append(f"| {results.label(c.metric)}: {c.expected} | {_fmt(c.low_value)} vs {_fmt(c.high_value)} "
                     f"| {verdict} |")
    return lines + [""]


def _no_controls(missing: list[str]) -> str:
    return (f"the results have no {', '.join(missing)} row{'s' if len(missing) > 1 else ''} (every run scores "
            f"{', '.join(CONTROL_ROWS)}: was results.json edited?)")


def coverage(results: BenchResults) -> str:
    """" Not every one did: ..." naming each method with clips it did not generate (``--skip-missing``) or
    that the metrics could not score, with the counts; "" when every method has every clip. (Before, the
    report's first sentence said every method generated every clip whatever the run had skipped.)"""
    count = len(results.run["test_clips"])
    missing = [f"{m.label} has {count - len(m.skipped)} of {count}" for m in results.methods.values() if m.skipped]
    unscored = [f"{m.label} {'every clip' if '*' in m.unscored else len(m.unscored)}"
                for m in results.methods.values() if m.unscored]
    words = ""
    if missing:
        words += (f" Not every one did: {'; '.join(missing)} (clips without a video skipped, --skip-missing), and "
                  "a method's numbers rest on the clips it has.")
    if unscored:
        words += (f" Clips the metrics could not score (left out of every metric of that row, listed under "
                  f"Methods): {'; '.join(unscored)}.")
    lost = [f"{m.label} {len(m.no_body)}" for m in results.methods.values() if m.no_body]
    if lost:
        words += (f" Generated clips in which no body was found (left out of FGD, Div and BAS only, which then read "
                  f"better than the method is; scored on the other metrics; listed under Methods): {'; '.join(lost)}.")
    return words


def markdown_report(results: BenchResults, plots: list[str]) -> str:
    methods = list(results.methods)
    identities = sorted({s.split(":", 1)[1] for m in results.methods.values() for s in m.scores
                         if s.startswith("identity:")})
    external = [m.label for m in results.methods.values() if m.kind == "external"]
    made = ("from the clip's first frame and its speech" if not external else ": the bench made its own methods' "
            f"from the clip's first frame and its speech, and {', '.join(external)} came from outside the bench "
            "(a command given that frame and speech, or a folder of videos made as their makers chose)")
    count, shortfall = len(results.run["test_clips"]), coverage(results)
    lines = ["# Benchmark report", "",
             f"{'Every method was to generate' if shortfall else 'Every method generated'} a video for each of the "
             f"{count} test clips{'' if external else ' '}{made}; all are scored against the real test videos with "
             f"the protocol below.{shortfall} Each number is followed by its 95% interval over clips; ↓ lower is better, "
             "↑ higher is better. Read Div and BAS next to the real videos' own (GT), and FGD and FVD next to "
             "the real-vs-real noise floor (other real clips of the same speakers; a Fréchet distance depends "
             "on N, so compare at equal N). A method is in bold only where its paired differences to every "
             "other method exclude 0 (see the differences below); with no bold, the data separate none.", ""]
    lines += [f"> {note}" for note in _caveats(results)] + [""]
    lines += ["## All identities", "", markdown_table(results, "all", methods), ""]
    lines += warnings_section(results)
    for identity in identities:
        clips = sum(1 for c in results.run["test_clips"] if c.split("/", 1)[0] == identity)
        lines += [f"## Identity: {identity}", "",
                  f"*{clips} test clip(s) of this speaker: descriptive only. Intervals from so few clips are wide "
                  "(none from 1 clip), Fréchet distances from few clips are biased upwards, and nothing is in bold "
                  "(differences are paired over all identities).*", "",
                  markdown_table(results, f"identity:{identity}", methods), ""]
    lines += checks_section(results)
    lines += paired_section(results)
    lines += ["## Methods", "", "| method | kind | facts |", "|---|---|---|"]
    for method in results.methods.values():
        facts = {k: v for k, v in method.facts.items() if not isinstance(v, (dict, list))}
        about = ", ".join(f"{k}: {v}" for k, v in facts.items())
        lines.append(f"| {md_cell(method.label)} | {method.kind} | " + md_cell(method.note or about) + " |")
        for label, reason in method.skipped.items():
            lines.append(f"| ⚠ {md_cell(label)} | skipped | {md_cell(reason)} |")
        for label, reason in method.unscored.items():
            lines.append(f"| ⚠ {md_cell(method.label)}: {md_cell(label)} | not scored | {md_cell(reason)} |")
        for label, reason in method.no_body.items():
            lines.append(f"| ⚠ {md_cell(method.label)}: {md_cell(label)} | not scored on FGD, Div, BAS | "
                         f"{md_cell(reason)} |")
    lines += [""] + provenance_section(results) + inputs_section(results)
    lines += ["## Protocol", "", protocol_block(results), ""]
    if results.timings_s:
        lines += ["## Timings (seconds)", "", "Of the invocation that wrote these results: a resumed run counts "
                  "only what it did (steps found done count 0; each method's training time is in its facts, "
                  "`prepare_seconds`).", "", ", ".join(f"{k} {v}" for k, v in results.timings_s.items()), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def format_terminal(results: BenchResults) -> str:
    metrics = results.scored_metrics()
    width = max((len(_label(results, name)) for name in results.methods), default=6) + 1   # labels whole
    lines = [results.protocol_label, f"{'method':<{width}}" + "".join(f"{results.label(m):>12}" for m in metrics)]
    for name in results.methods:
        lines.append(f"{_label(results, name):<{width}}"
                     + "".join(f"{_fmt(results.value(name, m)):>12}" for m in metrics))
    failed = results.failed_checks()
    loose = [c for c in results.control_checks if c.holds is False and not c.gating]
    missing = missing_controls(results)
    if missing:
        lines.append(f"control checks: COULD NOT BE MADE: {_no_controls(missing)}")
        return "\n".join(lines)
    lines.append("control checks: " + ("all hold" if not failed else
                                       "FAILED: " + "; ".join(f"{c.metric} {c.expected}" for c in failed))
                 + "".join(f" (not gating, fails: {c.metric} {c.expected}: {c.note})" for c in loose))
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(path: Path, write) -> Path:
    """``write(file)`` a PNG to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        write(temporary)
    return path


def _save_figure(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        return _save_png(path, lambda file: fig.savefig(file, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_metric_bars(results: BenchResults, path: Path) -> Path:
    """One panel per metric: a bar per method for each identity, with the 95% interval."""
    plt = _pyplot()
    metrics = results.scored_metrics()
    methods = list(results.methods)
    scopes = ["all"] + sorted({s for m in results.methods.values() for s in m.scores if s != "all"})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes[0], metrics):
        for k, name in enumerate(methods):
            values, low, high = [], [], []
            for scope in scopes:
                score = results.methods[name].scores.get(scope, {}).get(metric)
                v = np.nan if score is None else score.value
                values.append(v)
                low.append(0 if score is None or math.isnan(score.ci_low) else max(v - score.ci_low, 0))
                high.append(0 if score is None or math.isnan(score.ci_high) else max(score.ci_high - v, 0))
            x = np.arange(len(scopes)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, values, width, yerr=[low, high], capsize=2, label=_legend_label(results, name),
                   **_bar_style(results, name, k))
        ax.set_xticks(np.arange(len(scopes)), [s.replace("identity:", "") for s in scopes], rotation=30)
        ax.set_title(f"{results.label(metric)} {arrow(metric)}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False)
    fig.suptitle("95% intervals over clips; hatched grey bars are the reference and the controls", fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)


def _legend_label(results: BenchResults, name: str) -> str:
    """A row's label for a legend: its display label, controls marked, cut at the first parenthesis."""
    method = results.methods[name]
    short = method.label.split(" (", 1)[0]
    return short + {"control": " (control)", "reference": " (reference)"}.get(method.kind, "")


_CONTROL_GREYS = ("0.35", "0.55", "0.7", "0.85")


def _bar_style(results: BenchResults, name: str, index: int) -> dict:
    """Methods in colour, the reference and the controls in hatched greys, so no control reads as a method."""
    method = results.methods[name]
    if method.kind in CANDIDATE_KINDS:
        return {"color": f"C{index % 10}"}
    controls = [n for n, m in results.methods.items() if m.kind not in CANDIDATE_KINDS]
    return {"color": _CONTROL_GREYS[controls.index(name) % len(_CONTROL_GREYS)], "hatch": "//",
            "edgecolor": "0.2", "linewidth": 0.5}


def _video_path(run: Path, method: str, label: str) -> Path:
    identity, clip_id = label.split("/", 1)
    return run / method / identity / f"{clip_id}.mp4"


STRIP_TILE_HEIGHT = 256     # px: larger frames are shrunk (area) for the strip; the toy's 128 px stay as they are


def frame_strip(run: Path, results: BenchResults, clip: str, path: Path, count: int = 6) -> Path:
    """A grid: one row per method, ``count`` frames at the same times of the same clip, each tile as
    tall as the first method's frames (at most ``STRIP_TILE_HEIGHT`` px). Only the picked frames of a
    video are held (a video of large frames is decoded one frame at a time)."""
    rows = []
    names = [m for m in results.methods if _video_path(run, m, clip).is_file()]
    height = None
    for name in names:
        video = _video_path(run, name, clip)
        with VideoReader(video) as reader:
            picks = np.linspace(0, len(reader) - 1, count).round().astype(int)
            frames = reader.frames_at(picks)
        if len(frames) < len(set(picks.tolist())):
            raise ValueError(f"{video}: fewer frames decoded than its header's {len(reader)}")
        height = height or min(STRIP_TILE_HEIGHT, frames[int(picks[0])].shape[0])
        rows.append(np.concatenate([_tile(frames[int(i)], height) for i in picks], axis=1))
    label_width = 150
    sheet = Image.new("RGB", (label_width + max(row.shape[1] for row in rows), height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, row) in enumerate(zip(names, rows)):
        sheet.paste(Image.fromarray(row), (label_width, k * height))
        draw.text((4, k * height + height // 2 - 6), _legend_label(results, name), fill="black")
    return _save_png(path, lambda file: sheet.save(file, format="PNG"))


def _tile(frame: np.ndarray, height: int) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 at ``height`` px, its aspect kept (area interpolation); as it is when
    already that tall."""
    if frame.shape[0] == height:
        return frame
    import cv2

    width = max(1, round(frame.shape[1] * height / frame.shape[0]))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def beat_timeline(run: Path, results: BenchResults, clip: str, path: Path) -> Path:
    """Speech onsets and each method's motion beats on one clip's time axis. Keypoints come from the
    run's cache (the scoring extracted them); uncached ones are extracted only for the toy extractor."""
    plt = _pyplot()
    protocol = Protocol.from_dict(results.protocol)
    pose = results.networks.get("pose_extractor") or ""
    cache = keypoint_cache(run / "cache", pose, protocol.version)
    extractor = None
    if pose.startswith("toy"):
        extractor = ToyMarkerPose()
    gt = _video_path(run, "gt", clip)
    wav_path = gt.with_suffix(".wav")
    rate = protocol.audio_sample_rate
    wav = load_audio(wav_path, rate) if wav_path.exists() else read_video_audio(gt, rate)
    onsets = speech_beats(wav, rate, protocol.onset_hop_length)
    names = [m for m in results.methods if _video_path(run, m, clip).is_file()]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.4))
    ax.vlines(onsets, -0.5, len(names) - 0.5, colors="0.75", linewidth=1, label="speech onsets")
    for k, name in enumerate(names):
        video = _video_path(run, name, clip)
        try:
            info = probe_video(video)
            keypoints, fps = cached_keypoints(cache, video, info.num_frames), info.fps
            if keypoints is None and extractor is not None:
                keypoints, fps = video_keypoints(video, extractor)
        except ValueError as error:     # (a truncated or unreadable video: said on its row, named in the run)
            said = str(error).replace(str(video), str(video.relative_to(run)))
            ax.text(0.0, k, f"  {said}"[:110], va="center", fontsize=8, color="crimson")
            continue
        if keypoints is None:
            ax.text(0.0, k, "  keypoints not cached", va="center", fontsize=8, color="crimson")
            continue
        try:
            beats = motion_beats(keypoints, fps, protocol)
        except ValueError:
            ax.text(0.0, k, "  no body found", va="center", fontsize=8, color="crimson")
            continue
        ax.plot(beats, np.full(len(beats), k), "|", markersize=14, markeredgewidth=2)
    ax.set_yticks(range(len(names)), [_legend_label(results, n) for n in names])
    ax.set_xlabel("seconds")
    ax.set_title(f"beat alignment on {clip}: motion beats per method vs speech onsets (grey)")
    fig.tight_layout()
    return _save_figure(fig, path)


def metrics_csv(results: BenchResults) -> str:
    buffer = io.StringIO()
    fields = ["method", "label", "kind", "scope", "metric", "metric_label", "value", "ci_low", "ci_high", "n_clips",
              "counts", "protocol", "weights"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(results))
    return buffer.getvalue()


def missing_videos(run: Path, results: BenchResults) -> str:
    """Why the plots drawn from videos (frames, beats) cannot be made from ``run`` ("" when they can):
    they show the first test clip, and need its real video (gt) and a method's."""
    clips = results.run["test_clips"]
    if not clips:
        return "the results list no test clip"
    if not _video_path(run, "gt", clips[0]).is_file():
        return (f"{_video_path(run, 'gt', clips[0])} is missing (a results.json copied without the run's videos?); "
                "the tables are made from results.json alone")
    return ""


def write_report(run: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write metrics.csv, report.md and the plots of a run from its results.json; returns their paths.
    The frame and beat plots need the run's videos: without them (``missing_videos``) they are left
    out, and the caller says why."""
    run = Path(run)
    results = load_results(run)
    with_videos = plots and not missing_videos(run, results)
    made = ["plots/metrics.png"] * plots + ["plots/frames.png", "plots/beats.png"] * with_videos
    # every text is made before any file is written: a results.json the tables cannot show leaves the old files
    texts = {"csv": (run / "metrics.csv", metrics_csv(results)), "latex": (run / "report.tex", latex_table(results)),
             "report": (run / "report.md", markdown_report(results, made))}
    paths: dict[str, Path] = {}
    if plots:
        paths["bars"] = plot_metric_bars(results, run / "plots" / "metrics.png")
    if with_videos:
        clip = results.run["test_clips"][0]
        paths["strip"] = frame_strip(run, results, clip, run / "plots" / "frames.png")
        paths["beats"] = beat_timeline(run, results, clip, run / "plots" / "beats.png")
    for key, (path, text) in texts.items():
        paths[key] = write_text_atomic(path, text)
    return paths
