"""Metric-human agreement (userstudy.agreement) and the study-wide analysis: Kendall's tau against a
count of concordant and discordant pairs, the participant bootstrap against a loop over resampled
answer tables, the metric directions against the project's registry, and analyze taking the
results file and the pairwise answers found in the study folder."""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from userstudy.agreement import LOWER_IS_BETTER, ResultsFileError, metric_agreement, read_results
from userstudy.analyze import analyze
from userstudy.rankings import check_rankings
from userstudy.simulate import simulate_rankings

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["imac", "s2g", "mya", "ablation"]


def test_directions_are_the_registrys():
    # userstudy may not import metrics; its copy of the directions is checked against the source.
    tree = ast.parse((ROOT / "metrics" / "registry.py").read_text())
    registry = {node.args[0].value: node.args[2].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MetricSpec"}
    assert registry == LOWER_IS_BETTER


def tau_b_by_counting(x, y) -> float:
    """Kendall's tau-b from its definition: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    concordant = discordant = tied_x = tied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tied_x += dx == 0
        tied_y += dy == 0
        concordant += dx * dy > 0
        discordant += dx * dy < 0
    n0 = len(x) * (len(x) - 1) / 2
    return (concordant - discordant) / np.sqrt((n0 - tied_x) * (n0 - tied_y))


def results_document(values: dict[str, dict[str, dict[str, float | None]]]) -> dict:
    """A results.json shaped as imac-bench writes it: methods -> scores -> scope -> metric -> value."""
    methods = {}
    for scope, metrics in values.items():
        for metric, by_method in metrics.items():
            for method, value in by_method.items():
                methods.setdefault(method, {"name": method, "scores": {}})["scores"].setdefault(scope, {})[metric] = {
                    "value": value, "ci_low": None, "ci_high": None, "counts": {}}
    return {"schema": "imac-bench-results", "metrics": ["fgd", "bas", "odd"], "labels": {"fgd": "FGD", "bas": "BAS"},
            "methods": methods}


@pytest.fixture(scope="module")
def study_data():
    table = simulate_rankings(METHODS, 12, 6, effect=0.4, criteria=["quality", "sync"], seed=5)
    return check_rankings(table).data


def test_tau_matches_a_count_of_pairs_with_the_metric_oriented(study_data):
    fgd = {"imac": 10.0, "s2g": 30.0, "mya": 20.0, "ablation": 25.0}     # lower is better
    bas = {"imac": 0.2, "s2g": 0.9, "mya": 0.4, "ablation": 0.4}         # higher is better, a tie
    odd = {"imac": 1.0, "s2g": 2.0, "mya": 3.0}                          # unknown: taken as higher-is-better
    scores = {"all": {"fgd": fgd, "bas": bas, "odd": odd}}
    table = metric_agreement(study_data, scores, {"fgd": "FGD"}, bootstrap=0)
    assert len(table) == 2 * 3
    for row in table.itertuples():
        own = study_data[study_data["criterion"] == row.criterion]
        methods = sorted(m for m in own["method"].unique() if m in scores["all"][row.metric])
        human = [own.loc[own["method"] == m, "points"].mean() for m in methods]
        sign = -1 if row.metric == "fgd" else 1
        metric = [sign * scores["all"][row.metric][m] for m in methods]
        assert row.tau == pytest.approx(tau_b_by_counting(human, metric), rel=1e-12)
        assert row.methods == len(methods)
    assert set(table.loc[table.metric == "odd", "direction"]) == {"higher is better (assumed)"}
    assert set(table.loc[table.metric == "fgd", "label"]) == {"FGD"}


def test_a_method_without_a_value_is_named_and_an_undefined_tau_says_why(study_data):
    """Before, a method missing from results.json was dropped with only the count of the others shown, and
    a metric equal for every method printed "Kendall's tau +nan"."""
    from userstudy.analysis import StudyAnalysis
    from userstudy.report import _agreement_section

    scores = {"all": {"fgd": {"imac": 10.0, "s2g": 30.0}, "div": {m: 5.0 for m in METHODS}}}
    table = metric_agreement(study_data, scores, bootstrap=0)
    fgd = table[table.metric == "fgd"].iloc[0]
    assert fgd["methods"] == 2 and fgd["methods_without_value"] == ",".join(sorted(set(METHODS) - {"imac", "s2g"}))
    div = table[table.metric == "div"].iloc[0]
    assert math.isnan(div["tau"]) and div["methods_without_value"] == ""
    shell = StudyAnalysis.__new__(StudyAnalysis)
    shell.agreement, shell.agreement_source = table, "results.json"
    text = "\n".join(_agreement_section(shell))
    assert f"| 2 (no value: {', '.join(sorted(set(METHODS) - {'imac', 's2g'}))}) |" in text
    assert "| n/a (all tied) |" in text


def test_the_interval_resamples_participants(study_data):
    fgd = {"imac": 10.0, "s2g": 30.0, "mya": 20.0, "ablation": 25.0}
    table = metric_agreement(study_data, {"all": {"fgd": fgd}}, bootstrap=60, level=0.9, seed=4)
    # the reference: redraw the same participants, rebuild the answer table, recompute the means
    participants = sorted(study_data["participant"].unique())
    rng = np.random.default_rng(4)
    draws = [rng.integers(0, len(participants), len(participants)) for _ in range(60)]
    for criterion in ("quality", "sync"):
        own = study_data[study_data["criterion"] == criterion]
        taus = []
        for draw in draws:
            resampled = pd.concat([own[own["participant"] == participants[i]] for i in draw])
            means = resampled.groupby("method")["points"].mean().reindex(sorted(fgd))
            taus.append(tau_b_by_counting(means.to_numpy(), [-fgd[m] for m in sorted(fgd)]))
        row = table[table.criterion == criterion].iloc[0]
        low, high = np.quantile(taus, [0.05, 0.95])
        assert (row.tau_low, row.tau_high) == pytest.approx((low, high), rel=1e-12)
        assert row.resampled == "participants" and row.bootstrap == 60


def test_results_files_are_read_bounded_and_named(tmp_path):
    good = tmp_path / "results.json"
    good.write_text(json.dumps(results_document({"all": {"fgd": {"imac": 1.5, "s2g": None}}})))
    scores, labels = read_results(good)
    assert scores == {"all": {"fgd": {"imac": 1.5}}} and labels["fgd"] == "FGD"   # null left out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(results_document({"all": {"fgd": {"imac": "1.5"}}})))
    with pytest.raises(ResultsFileError, match=r"bad.json: methods.imac.scores.all.fgd.value must be a number"):
        read_results(bad)
    deep = tmp_path / "deep.json"
    deep.write_text('{"methods": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ResultsFileError, match=r"deep.json: refused: JSON nested"):
        read_results(deep)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(ResultsFileError, match=r"empty.json: 'methods' must map each method"):
        read_results(empty)


def test_analyze_takes_the_results_file_and_pairwise_answers_of_the_study_folder(tmp_path):
    from test_userstudy_attention import QUALITY, SYNC, add_checks, rows
    from userstudy_data.helpers import make_study

    folder = make_study(tmp_path)
    add_checks(folder)
    document = json.loads((folder / "study.json").read_text())
    for trial in document["trials"]:
        trial["clip"] = f"{'ana' if trial['id'] in ('t1', 't2') else 'ben'}/{trial['id']}"
    first = document["trials"][0]["videos"]   # the pairwise answers below answer this compare trial
    document["trials"].append({"id": "x", "kind": "compare", "videos": {m: first[m] for m in ("imac", "s2g")}})
    (folder / "study.json").write_text(json.dumps(document))
    rng = np.random.default_rng(1)
    table = []
    for p in ["p1", "p2", "p3", "p4"]:
        for trial in ["t1", "t2", "t3", "q8"]:
            for criterion in (QUALITY, SYNC):
                order = ["imac", "s2g", "mya"] if trial in ("t1", "q8") else list(rng.permutation(["imac", "s2g", "mya"]))
                table += rows(p, trial, criterion, order)   # q8 repeats t1: ranked alike
        table += rows(p, "q7", SYNC, ["mya", "imac", "s2g"] if p == "p4" else ["imac", "s2g", "mya"])
        table += rows(p, "q7", QUALITY, ["mya", "imac", "s2g"])
    pd.DataFrame(table).to_csv(folder / "rankings.csv", index=False)
    fgd = {"imac": 1.0, "s2g": 3.0, "mya": 2.0}
    (folder / "results.json").write_text(json.dumps(results_document(
        {"all": {"fgd": fgd}, "identity:ana": {"fgd": fgd}, "identity:ben": {"fgd": fgd}})))
    pairwise = [{"participant": p, "trial": "x", "criterion": QUALITY, "method_a": "imac", "method_b": "s2g",
                 "kind": "compare", "preference": v} for p, v in [("p1", 1), ("p2", 1), ("p3", -1), ("p4", -1)]]
    pd.DataFrame(pairwise).to_csv(folder / "pairwise.csv", index=False)
    analysis = analyze(folder / "rankings.csv", tmp_path / "out", bootstrap=20)
    assert analysis.attention.excluded == ["p4"]
    # the agreement uses the rankings left after the exclusions, per scope
    agreement = pd.read_csv(tmp_path / "out" / "agreement.csv")
    assert sorted(set(agreement["scope"])) == ["all", "identity:ana", "identity:ben"]
    kept = pd.DataFrame(table)
    kept = kept[kept["participant"].isin(["p1", "p2", "p3"]) & kept["trial"].isin(["t1", "t2", "t3"])]
    for row in agreement.itertuples():
        own = kept[kept["criterion"] == row.criterion]
        if row.scope == "identity:ana":
            own = own[own["trial"].isin(["t1", "t2"])]
        elif row.scope == "identity:ben":
            own = own[own["trial"] == "t3"]
        means = (4 - own["rank"].astype(int)).groupby(own["method"]).mean().reindex(sorted(fgd))
        assert row.tau == pytest.approx(tau_b_by_counting(means.to_numpy(), [-fgd[m] for m in sorted(fgd)]))
    # the pairwise answers without the excluded participant: imac won 2 of 3
    rates = pd.read_csv(tmp_path / "out" / "win_rates.csv")
    assert rates.loc[0, ["method_a", "wins_a", "wins_b"]].tolist() == ["imac", 2, 1]
    assert (tmp_path / "out" / "bradley_terry.csv").is_file()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Pairwise trials" in report and "of the excluded participants are left out" in report
    assert "## Agreement of the metrics with the participants" in report and "FGD (↓)" in report
    # the pairwise answers analysed on their own: the same exclusion (it counted p4's answer, 2 wins of 4)
    from userstudy.analyze import main as analyze_main
    assert analyze_main([str(folder / "pairwise.csv"), "--out", str(tmp_path / "alone"), "--bootstrap", "20"]) == 0
    rates = pd.read_csv(tmp_path / "alone" / "win_rates.csv")
    assert rates.loc[0, ["method_a", "wins_a", "wins_b"]].tolist() == ["imac", 2, 1]
    assert "1 participant excluded: p4." in (tmp_path / "alone" / "report.md").read_text()
