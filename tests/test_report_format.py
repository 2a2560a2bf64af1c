"""What a researcher reads: one precision per cell, a reason where an interval is missing, bold only
where the paired difference is separable, a LaTeX table, the metrics' warnings, plot legends."""

from __future__ import annotations

import json
import re

import pytest

from bench.report import (
    latex_table,
    write_report,
    markdown_report,
    markdown_table,
    plot_metric_bars,
    separable_best,
)
from bench.results import BenchResults, MethodResult, write_results
from metrics.results import Score, decimals, format_score


def test_decimals_give_four_significant_digits():
    # written out by hand: 4 significant digits, at most 4 decimals, none from 1000 up
    cases = {1358.5: 0, 251.0: 1, 92.99: 2, 6.029: 3, 0.6135: 4, 0.04: 4, 0.0: 4, -120.0: 1, 12345.0: 0}
    assert {v: decimals(v) for v in cases} == cases
    assert decimals(float("nan")) == 4 and decimals(None) == 4
    assert decimals(41.0, 3) == 1 and decimals(-120.0, 3) == 0


@pytest.mark.parametrize("score, text", [
    (Score(251.0, 92.99, 677.6, {"n_fake_clips": 4}), ("251.0", "[93.0, 677.6]")),
    (Score(1358.5, 234.1, 6854.4, {"n_fake_clips": 4}), ("1358", "[234, 6854]")),   # round-half-even: 1358
    (Score(0.6135, 0.4566, 1.0, {"n_clips": 4}), ("0.6135", "[0.4566, 1.0000]")),
    (Score(8.524, 6.2, 10.849, {"n_fake_clips": 4}), ("8.524", "[6.200, 10.849]")),
])
def test_one_precision_per_cell(score, text):
    assert format_score(score) == text
    value, interval = format_score(score)
    places = {len(part.split(".")[1]) if "." in part else 0 for part in re.findall(r"-?\d+(?:\.\d+)?", f"{value} {interval}")}
    assert len(places) == 1


def test_a_missing_interval_says_why():
    assert format_score(Score(1358.5, counts={"n_real_clips": 4, "n_fake_clips": 1})) == \
        ("1358", "(no interval from 1 clip)")
    assert format_score(Score(0.5, counts={"n_clips": 6}))[1] == \
        "(no interval: the statistic is undefined on a subset of the clips)"
    assert format_score(Score(float("nan"))) == ("n/a", "")


def test_warnings_round_trip_and_are_checked():
    score = Score(1.0, 0.5, 1.5, {"n_fake_clips": 7}, ("FVD from 7 clips in 400 dimensions",))
    assert Score.from_dict(score.to_dict()) == score
    assert "warnings" not in Score(1.0).to_dict()
    with pytest.raises(ValueError, match="fvd: warnings: expected a list, got a string 'no'"):
        Score.from_dict({"value": 1.0, "warnings": "no"}, "fvd")


@pytest.mark.parametrize("data, said", [
    ({"value": 322.0, "ci_low": 600.0, "ci_high": 100.0}, "fgd: ci_low 600 is above ci_high 100"),
    ({"value": 1.0, "counts": {"n_fake_clips": -8}}, "fgd: counts: n_fake_clips: expected a count (an integer, 0 "
                                                     "or more), got -8"),
])
def test_a_score_whose_interval_or_counts_cannot_be_is_refused(data, said):
    with pytest.raises(ValueError, match=re.escape(said)):
        Score.from_dict(data, "fgd")
    assert Score.from_dict({"value": 1.0, "ci_low": None, "ci_high": 0.5}, "fgd").ci_high == 0.5   # null: no bound


def test_a_method_row_named_otherwise_than_its_key_is_refused(tmp_path):
    rows = dict(a=("A", "model", {"fgd": _score(2.0)}), b=("B", "model", {"fgd": _score(3.0)}))
    data = _results([], **rows).to_dict()
    data["methods"]["a"]["name"] = "b"
    with pytest.raises(ValueError, match=re.escape("results.json: methods: a: name is 'b', not the row's key 'a'")):
        BenchResults.from_dict(data, "results.json")


def _score(value, clips=4, *warnings):
    return Score(value, value - 1, value + 1, {"n_fake_clips": clips}, tuple(warnings))


def _results(paired: list[dict], **rows) -> BenchResults:
    methods = {name: MethodResult(name=name, label=label, kind=kind, scores={"all": scores})
               for name, (label, kind, scores) in rows.items()}
    return BenchResults(run={"test_clips": ["ines/ines_004", "ines/ines_005"], "data": "toy", "seed": 0, "device": "cpu"},
                        protocol={}, protocol_label="p (1.2, abc)",
                        metrics=("fgd", "bas"), methods=methods, paired=paired,
                        networks={"i3d": {"feature_id": "i3d-untrained-seed0", "pretrained": False}})


def _pair(a, b, metric, low, high):
    return {"a": a, "b": b, "metric": metric, "scope": "all", "estimate": (low + high) / 2, "low": low, "high": high}


def test_bold_only_where_the_paired_difference_is_separable():
    rows = dict(a=("A", "model", {"fgd": _score(2.0), "bas": _score(0.6)}),
                b=("B", "model", {"fgd": _score(3.0), "bas": _score(0.4)}),
                c=("C", "external", {"fgd": _score(5.0)}),
                gt=("GT", "reference", {"bas": _score(0.9)}))
    paired = [_pair("a", "b", "fgd", -1.5, -0.5), _pair("c", "a", "fgd", 1.0, 4.0),     # a beats both: separable
              _pair("a", "b", "bas", -0.1, 0.5)]                                        # BAS: not separable
    results = _results(paired, **rows)
    assert separable_best(results, "fgd") == "a" and separable_best(results, "bas") is None
    lines = markdown_table(results).splitlines()
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[2:]}
    assert cells["A"] == ["**2.000** [1.000, 3.000]", "0.6000 [-0.4000, 1.6000]"]
    assert cells["B"][0] == "3.000 [2.000, 4.000]" and "**" not in "".join(cells["B"] + cells["C"])
    assert cells["GT *(reference)*"] == ["", "0.9000 [-0.1000, 1.9000]"]
    # a difference in the wrong direction, a missing pair, or another scope: no bold
    assert separable_best(_results([_pair("a", "b", "fgd", 0.5, 1.5), _pair("c", "a", "fgd", 1.0, 4.0)], **rows),
                          "fgd") is None
    assert separable_best(_results(paired[:1], **rows), "fgd") is None
    assert separable_best(results, "fgd", scope="identity:ines") is None


def test_latex_table_and_report_caveats():
    rows = dict(a=("IMAC_v2 & co", "model", {"fgd": _score(2.0, 4, "FGD from 4 clips in 32 dimensions: biased")}),
                b=("B", "model", {"fgd": _score(3.0)}),
                static=("Static", "control", {"fgd": _score(9.0), "bas": _score(0.0), "fvd": _score(40.0)}))
    results = _results([_pair("a", "b", "fgd", -1.5, -0.5)], **rows)
    tex = latex_table(results)
    body = tex[tex.index(r"\begin{tabular}"):]
    assert body.startswith(r"\begin{tabular}{lcccr}") and body.rstrip().endswith(r"\end{tabular}")
    assert r"IMAC\_v2 \& co & \textbf{2.000} {\scriptsize [1.000, 3.000]}" in body
    # methods, a rule, then the controls
    assert body.index("B & 3.000") < body.index(r"\midrule", body.index("B & 3.000")) < body.index("Static &")
    assert body.count(r"\\") == 4 and body.count("&") == 4 * 4 + 1       # header + 3 rows; one escaped &
    assert "% protocol: p (1.2, abc)" in tex and r"FVD* $\downarrow$" in tex
    report = markdown_report(results, [])
    assert report.index("not comparable with any published FVD") < report.index("## All identities")
    assert "- IMAC_v2 & co, FGD: FGD from 4 clips in 32 dimensions: biased" in report
    assert "2 test clip(s) of this speaker: descriptive only" not in report     # no identity scope here


def test_plot_legend_uses_labels_and_marks_controls(tmp_path, monkeypatch):
    import matplotlib.axes

    bars = []
    original = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar",
                        lambda self, *a, **k: bars.append(k) or original(self, *a, **k))
    rows = dict(imac=("IMAC", "model", {"fgd": _score(2.0)}),
                static=("Static (reference frame repeated)", "control", {"fgd": _score(9.0)}))
    path = plot_metric_bars(_results([], **rows), tmp_path / "m.png")
    assert path.stat().st_size > 1000
    assert [b["label"] for b in bars] == ["IMAC", "Static (control)"]
    assert "hatch" not in bars[0] and bars[1]["hatch"] == "//"


@pytest.mark.parametrize("field, value, said", [
    ("estimate", "x", "paired[0]: estimate: expected a number or null, got a string"),
    ("pairs", -2, "paired[0]: pairs: expected a count of clips (0 or more), got -2"),
    ("metric", 3, "paired[0]: metric: expected a string"),
])
def test_a_paired_difference_the_tables_cannot_show_is_named_and_nothing_is_rewritten(tmp_path, field, value, said):
    rows = dict(a=("A", "model", {"fgd": _score(2.0), "bas": _score(0.6)}),
                b=("B", "model", {"fgd": _score(3.0), "bas": _score(0.4)}))
    write_results(tmp_path / "results.json", _results([{**_pair("a", "b", "fgd", -1.5, -0.5), "pairs": 2}], **rows))
    write_report(tmp_path, plots=False)
    written = {name: (tmp_path / name).read_text() for name in ("metrics.csv", "report.tex", "report.md")}
    data = json.loads((tmp_path / "results.json").read_text())
    data["paired"][0][field] = value
    data["methods"]["a"]["scores"]["all"]["fgd"]["value"] = 999.0      # a change the tables would show
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(said)):
        write_report(tmp_path, plots=False)
    assert {name: (tmp_path / name).read_text() for name in written} == written


def test_the_report_says_which_videos_the_bench_did_not_make():
    rows = dict(a=("IMAC", "model", {"fgd": _score(2.0)}), mine=("mine (external videos)", "external",
                {"fgd": _score(3.0)}), static=("Static", "control", {"fgd": _score(9.0)}))
    report = markdown_report(_results([], **rows), [])
    assert ("test clips: the bench made its own methods' from the clip's first frame and its speech, and mine "
            "(external videos) came from outside the bench (a command given that frame and speech, or a folder of "
            "videos made as their makers chose); all are scored") in report
    del rows["mine"]
    assert "test clips from the clip's first frame and its speech; all are scored" in markdown_report(
        _results([], **rows), [])


def test_the_report_s_first_sentence_says_which_methods_lack_clips():
    """Before, it said "Every method generated a video for each of the 2 test clips" also when a method had
    skipped clips (--skip-missing) or none could be scored."""
    import dataclasses

    rows = dict(a=("IMAC", "model", {"fgd": _score(2.0)}), mine=("mine", "external", {"fgd": _score(3.0)}),
                bad=("Bad", "external", {}), static=("Static", "control", {"fgd": _score(9.0)}))
    results = _results([], **rows)
    assert markdown_report(results, []).split("\n")[2].startswith("Every method generated a video for each of the 2")
    methods = dict(results.methods)
    methods["mine"] = dataclasses.replace(methods["mine"], skipped={"ines/ines_005": "no video in the folder"})
    methods["bad"] = dataclasses.replace(methods["bad"], unscored={"*": "no body found in any clip"})
    first = markdown_report(dataclasses.replace(results, methods=methods), []).split("\n")[2]
    assert first.startswith("Every method was to generate a video for each of the 2 test clips")
    assert ("the protocol below. Not every one did: mine has 1 of 2 (clips without a video skipped, "
            "--skip-missing), and a method's numbers rest on the clips it has. Clips the metrics could not score (left out of every "
            "metric of that row, listed under Methods): Bad every clip.") in first
