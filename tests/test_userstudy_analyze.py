"""``python -m userstudy.analyze`` and ``userstudy.simulate``: the files other tools read, checked
against scipy / scikit-posthocs / statsmodels recomputed from the CSV itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from userstudy import analyze, simulate
from userstudy.schema import PAPER_CRITERIA, criterion_slug

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """A simulated paper-sized study (3 methods, 20 participants, 30 trials) analysed once."""
    folder = tmp_path_factory.mktemp("study")
    csv = folder / "rankings.csv"
    assert simulate.main(["--methods", "ours,s2g,mya", "--participants", "20", "--trials", "30",
                          "--out", str(csv), "--seed", "3", "--effect", "ours=0.3,s2g=0.2,mya=0"]) == 0
    out = folder / "analysis"
    assert analyze.main([str(csv), "--out", str(out), "--p-adjust", "holm", "--alpha", "0.05"]) == 0
    return csv, out, pd.read_csv(csv)


def points(table: pd.DataFrame) -> pd.DataFrame:
    k = table.groupby(["participant", "trial", "criterion"])["method"].transform("size")
    return table.assign(points=k + 1 - table["rank"])


def test_simulated_csv_is_the_analysis_format(study):
    _, _, table = study
    assert list(table.columns) == ["participant", "trial", "criterion", "method", "rank", "position"]
    assert len(table) == 20 * 30 * 4 * 3
    assert set(table["criterion"]) == set(PAPER_CRITERIA)
    blocks = table.groupby(["participant", "trial", "criterion"])
    assert (blocks["rank"].apply(sorted).apply(tuple) == (1, 2, 3)).all()
    # positions are a permutation per participant and trial, the same for every criterion
    assert (blocks["position"].apply(sorted).apply(tuple) == (1, 2, 3)).all()
    assert table.groupby(["participant", "trial", "method"])["position"].nunique().max() == 1


def test_fixed_file_names(study):
    _, out, _ = study
    slugs = [criterion_slug(c) for c in PAPER_CRITERIA]
    expected = {"points.csv", "points.md", "kruskal.csv", "friedman.csv", "friedman_by_trial.csv", "dunn.png",
                "nemenyi.png", "report.md", "analysis_files.txt",
                "dunn_pairs.csv", "nemenyi_pairs.csv"}
    expected |= {f"dunn_{s}.csv" for s in slugs} | {f"nemenyi_{s}.csv" for s in slugs}
    assert {p.name for p in out.iterdir()} == expected
    assert "dunn_sound_video_synchronization.csv" in expected


def test_a_second_analysis_into_the_same_folder_leaves_none_of_the_first_one_s_files_it_does_not_write(study):
    """Before, a re-run with --posthoc conover left the first run's nemenyi_* beside the new conover_*
    (and a re-run without the study file, the earlier exclusions.csv contradicting the new report)."""
    csv, out, _ = study
    first = {p.name for p in out.iterdir()}
    assert "nemenyi_pairs.csv" in first
    assert (out / "analysis_files.txt").read_text().splitlines() == sorted(first - {"analysis_files.txt"})
    (out / "my notes.txt").write_text("mine")
    assert analyze.main([str(csv), "--out", str(out), "--posthoc", "conover", "--quiet"]) == 0
    second = {p.name for p in out.iterdir()}
    assert not any(name.startswith("nemenyi") for name in second)
    assert {"conover_pairs.csv", "conover.png", "my notes.txt"} <= second
    assert second - {"my notes.txt"} == {n.replace("nemenyi", "conover") for n in first}
    assert analyze.main([str(csv), "--out", str(out), "--quiet"]) == 0        # back as the fixture left it
    assert {p.name for p in out.iterdir()} == first | {"my notes.txt"}
    (out / "my notes.txt").unlink()


def test_points_table_and_markdown(study):
    _, out, table = study
    ours = pd.read_csv(out / "points.csv", index_col=0)
    direct = points(table).groupby(["method", "criterion"])["points"].mean().unstack()
    assert list(ours.columns) == list(PAPER_CRITERIA)
    assert list(ours.index) == ["mya", "ours", "s2g"]
    np.testing.assert_allclose(ours.to_numpy(), direct.loc[ours.index, ours.columns].to_numpy(), rtol=1e-14, atol=0)
    markdown = (out / "points.md").read_text()
    for criterion in PAPER_CRITERIA:
        best = ours[criterion].idxmax()
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {best} |"))
        column = 1 + list(ours.columns).index(criterion)
        assert row.split("|")[column + 1].strip() == f"**{ours.loc[best, criterion]:.2f}**"
    assert markdown.count("**") == 2 * len(PAPER_CRITERIA)  # one bold cell per column here


def test_kruskal_csv_matches_scipy(study):
    _, out, table = study
    kruskal = pd.read_csv(out / "kruskal.csv", dtype={"p": str, "p_holm": str})
    assert list(kruskal.columns) == ["criterion", "n", "k", "H", "df", "p", "p_holm", "participants", "excluded_participants"]
    assert all(float(p) > 0 for p in kruskal["p"])   # full precision, not rounded to 6 digits
    scored = points(table)
    for _, row in kruskal.iterrows():
        rows = scored[scored["criterion"] == row["criterion"]]
        reference = stats.kruskal(*[g["points"] for _, g in rows.groupby("method")])
        assert row["H"] == pytest.approx(reference.statistic, rel=1e-6)
        assert float(row["p"]) == pytest.approx(reference.pvalue, rel=1e-6)
        assert row["df"] == 2 and row["n"] == 1800
        assert row["participants"] == rows["participant"].nunique() == 20 and pd.isna(row["excluded_participants"])
    holm = multipletests(kruskal["p"].astype(float), method="holm")[1]
    np.testing.assert_allclose(kruskal["p_holm"].astype(float), holm, rtol=1e-6)


def test_dunn_matrices_match_scikit_posthocs(study):
    _, out, table = study
    scored = points(table)
    for criterion in PAPER_CRITERIA:
        path = out / f"dunn_{criterion_slug(criterion)}.csv"
        header = path.read_text().splitlines()[0]
        assert "Dunn two-sided p, holm-adjusted" in header
        ours = pd.read_csv(path, index_col=0)
        assert list(ours.index) == list(ours.columns) == ["mya", "ours", "s2g"]
        reference = sp.posthoc_dunn(scored[scored["criterion"] == criterion], val_col="points",
                                    group_col="method", p_adjust="holm")
        np.testing.assert_allclose(ours.to_numpy(), reference.loc[ours.index, ours.columns].to_numpy(),
                                   rtol=1e-6)
        assert (np.diag(ours.to_numpy()) == 1).all()


def test_friedman_csv_matches_scipy_with_holm_across_criteria(study):
    _, out, table = study
    friedman = pd.read_csv(out / "friedman.csv", dtype={"p": str})
    assert list(friedman.columns) == ["criterion", "blocks", "k", "chi2", "df", "p", "p_holm", "kendalls_w", "participants",
                                      "excluded_participants"]
    assert all(float(p) > 0 for p in friedman["p"])
    for _, row in friedman.iterrows():
        matrix = table[table["criterion"] == row["criterion"]].pivot_table(
            index=["participant", "trial"], columns="method", values="rank")
        reference = stats.friedmanchisquare(*matrix.to_numpy().T)
        assert row["chi2"] == pytest.approx(reference.statistic, rel=1e-6)
        assert float(row["p"]) == pytest.approx(reference.pvalue, rel=1e-6)
        assert row["blocks"] == 600
        assert row["kendalls_w"] == pytest.approx(reference.statistic / (600 * 2), abs=1e-6)
    np.testing.assert_allclose(friedman["p_holm"], multipletests(friedman["p"].astype(float), method="holm")[1],
                               rtol=1e-6)


def test_friedman_across_clips_has_the_trials_as_blocks_and_matches_scipy_on_their_mean_points(study):
    _, out, table = study
    across = pd.read_csv(out / "friedman_by_trial.csv", dtype={"p": str})
    assert list(across.columns) == ["criterion", "trials", "k", "chi2", "df", "p", "p_holm", "kendalls_w",
                                    "participants", "excluded_participants"]
    table = points(table)
    for _, row in across.iterrows():
        rows = table[table["criterion"] == row["criterion"]]
        means = {}                         # a plain loop: each trial's mean points per method
        for (trial, method), group in rows.groupby(["trial", "method"]):
            means.setdefault(trial, {})[method] = sum(group["points"]) / len(group)
        matrix = [[means[t][m] for m in sorted(means[t])] for t in sorted(means)]
        reference = stats.friedmanchisquare(*np.array(matrix).T)
        assert row["trials"] == 30 and row["chi2"] == pytest.approx(reference.statistic, rel=1e-9)
        assert float(row["p"]) == pytest.approx(reference.pvalue, rel=1e-9)
    np.testing.assert_allclose(across["p_holm"], multipletests(across["p"].astype(float), method="holm")[1], rtol=1e-9)
    report = (out / "report.md").read_text()
    assert "## Friedman test across clips (blocks = trials)" in report and "30 trials, Holm p" in report


def test_clips_that_suit_some_methods_make_the_participant_x_trial_test_find_differences_not_the_by_trial_one():
    """No difference between the methods, but each trial's videos have their own quality, shared by every
    participant (the simulator's default --trial-sd 0.5): the participant x trial blocks count a clip once
    per participant and reject far above alpha; the trials as blocks keep alpha (measured with 2000 studies:
    44.7% and 4.4%; README). Before, the analysis and the README offered the first as the test of this design."""
    power = simulate.estimate_power(["a", "b", "c"], 20, 30, effect=0.0, replicates=300, trial_sd=0.5,
                                    seed=11).set_index("test")["power"]
    assert power["friedman"] > 0.3 and power["kruskal_wallis"] > 0.4
    assert power["friedman_by_trial"] < 0.09        # 0.05 + 3 binomial standard errors of 300 studies


def test_nemenyi_matrices_match_scikit_posthocs(study):
    _, out, table = study
    for criterion in PAPER_CRITERIA:
        ours = pd.read_csv(out / f"nemenyi_{criterion_slug(criterion)}.csv", index_col=0)
        assert "Nemenyi" in ours.index.name
        matrix = table[table["criterion"] == criterion].pivot_table(
            index=["participant", "trial"], columns="method", values="rank")
        reference = sp.posthoc_nemenyi_friedman(-matrix.reset_index(drop=True))
        np.testing.assert_allclose(ours.to_numpy(), reference.loc[ours.index, ours.columns].to_numpy(), rtol=1e-5)


def test_nemenyi_mean_rank_is_the_participants_mean_rank(study):
    """The "mean rank" of the Nemenyi table is a rank (1 = best; the mean of the rank column for
    complete rankings), not mean points; the reading names the method with the smaller one better."""
    _, out, table = study
    pairs = pd.read_csv(out / "nemenyi_pairs.csv")
    for _, pair in pairs.iterrows():
        rows = table[table["criterion"] == pair["criterion"]]
        mean_rank = rows.groupby("method")["rank"].mean()
        assert pair["mean_rank_a"] == pytest.approx(mean_rank[pair["method_a"]], rel=1e-12)
        assert pair["mean_rank_b"] == pytest.approx(mean_rank[pair["method_b"]], rel=1e-12)
    report = (out / "report.md").read_text()
    nemenyi = report[report.index("## Nemenyi"):]
    significant = pairs[pairs["p"] < 0.05]
    assert len(significant)  # the simulated effect is large enough for at least one pair
    for _, pair in significant.iterrows():
        better, worse = ((pair["method_a"], pair["method_b"]) if pair["mean_rank_a"] < pair["mean_rank_b"]
                         else (pair["method_b"], pair["method_a"]))
        assert f"{better} > {worse}" in nemenyi


@pytest.mark.parametrize("name", ["dunn.png", "nemenyi.png"])
def test_heatmaps_are_pngs(study, name):
    _, out, _ = study
    data = (out / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 600 and height > 600   # four panels, readable at 150 dpi


def test_machine_readable_files_keep_full_precision(study):
    """No CSV is rounded: each p-value reads back as exactly the float the analysis computed."""
    _, out, table = study
    from userstudy.analyze import analyze_rankings
    from userstudy.rankings import check_rankings

    analysis = analyze_rankings(check_rankings(table))
    kruskal = pd.read_csv(out / "kruskal.csv", index_col="criterion")
    friedman = pd.read_csv(out / "friedman.csv", index_col="criterion")
    for criterion in PAPER_CRITERIA:
        assert kruskal.loc[criterion, "p"] == analysis.kruskal.loc[criterion, "p"]
        assert kruskal.loc[criterion, "H"] == analysis.kruskal.loc[criterion, "H"]
        assert friedman.loc[criterion, "chi2"] == analysis.friedman.loc[criterion, "chi2"]
        assert friedman.loc[criterion, "kendalls_w"] == analysis.friedman.loc[criterion, "W"]
    pairs = pd.read_csv(out / "nemenyi_pairs.csv")
    ours = pd.concat([p.assign(criterion=c) for c, p in analysis.friedman_posthoc.items()], ignore_index=True)
    assert pairs["p"].tolist() == ours["p"].tolist()
    points = pd.read_csv(out / "points.csv", index_col=0)
    assert (points.to_numpy() == analysis.points.loc[points.index, points.columns].to_numpy()).all()


def test_report_has_the_study_and_a_reading_per_result(study):
    _, out, _ = study
    report = (out / "report.md").read_text()
    assert "participants: **20**; trials: **30**" in report
    assert "**2400**" in report and "Blocks dropped: none." in report
    assert "Resubmissions replaced: none." in report
    assert "![Dunn p-values per criterion](dunn.png)" in report
    assert "![Nemenyi p-values per criterion](nemenyi.png)" in report
    for criterion in PAPER_CRITERIA:
        assert f"- {criterion}: the methods' points differ" in report or f"- {criterion}: no significant" in report
        assert report.count(f"**{criterion}**") == 2  # Dunn and Nemenyi sections
    assert report.count("Reading: ") == 8
    assert "Kendall's W" in report and "Holm" in report


def test_conover_unadjusted_and_method_order(tmp_path):
    csv = tmp_path / "r.csv"
    simulate.main(["--methods", "a,b,c,d,e", "--participants", "5", "--trials", "4", "--out", str(csv),
                   "--criteria", "realism,lip sync", "--seed", "1"])
    out = tmp_path / "out"
    assert analyze.main([str(csv), "--out", str(out), "--p-adjust", "none", "--posthoc", "conover",
                         "--methods", "e,d,c,b,a"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"conover_realism.csv", "conover_lip_sync.csv", "dunn_realism.csv", "dunn_lip_sync.csv"} <= names
    dunn = pd.read_csv(out / "dunn_lip_sync.csv", index_col=0)
    assert list(dunn.index) == ["e", "d", "c", "b", "a"] and "unadjusted" in dunn.index.name
    conover = pd.read_csv(out / "conover_realism.csv", index_col=0)
    table = pd.read_csv(csv)
    matrix = table[table["criterion"] == "realism"].pivot_table(index=["participant", "trial"],
                                                                 columns="method", values="rank")
    reference = sp.posthoc_conover_friedman(-matrix.reset_index(drop=True), p_adjust=None)
    np.testing.assert_allclose(conover.to_numpy(), reference.loc[conover.index, conover.columns].to_numpy(),
                               rtol=1e-5)
    assert list(pd.read_csv(out / "kruskal.csv")["criterion"]) == ["realism", "lip sync"]


def test_bad_input_exits_2_with_the_lines(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("participant,trial,criterion,method,rank\np1,t1,q,a,1\np1,t1,q,b,1\np1,t1,q,c,5\n")
    assert analyze.main([str(csv), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "lines 2, 3:" in error and "rank 1 is given 2 times" in error
    assert "line 4:" in error and "rank 5 is outside 1..3" in error
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert analyze.main([str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_dropped_blocks_are_listed_in_the_report(tmp_path):
    table = simulate.simulate_rankings(["a", "b", "c"], 4, 3, criteria=["q1", "q2"], seed=2)
    drop = [5, 30, 31]  # one row of two blocks
    keys = {tuple(table.loc[i, ["participant", "trial", "criterion"]]) for i in drop}
    csv = tmp_path / "r.csv"
    table.drop(index=drop).to_csv(csv, index=False)
    assert analyze.main([str(csv), "--out", str(tmp_path / "out")]) == 2
    assert analyze.main([str(csv), "--out", str(tmp_path / "out"), "--drop-incomplete"]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"**Blocks dropped: {len(keys)}**" in report
    for participant, trial, criterion in keys:
        assert f"| {participant} | {trial} | {criterion} | incomplete: no rank for" in report
    friedman = pd.read_csv(tmp_path / "out" / "friedman.csv").set_index("criterion")
    assert friedman["blocks"].sum() == 4 * 3 * 2 - len(keys)


def test_power_estimate_separates_no_effect_from_a_large_one():
    none = simulate.estimate_power(["a", "b", "c"], 5, 4, effect=0.0, replicates=40, trial_sd=0.0, seed=0)
    large = simulate.estimate_power(["a", "b", "c"], 5, 4, effect=1.0, replicates=40, seed=0)
    assert none.set_index("test").loc["friedman", "power"] <= 0.2
    assert large.set_index("test").loc["friedman", "power"] >= 0.9


def test_simulate_effect_forms():
    assert simulate.parse_effect("0.5") == 0.5
    assert simulate.parse_effect("a=1, b=0.5") == {"a": 1.0, "b": 0.5}
    per_criterion = simulate.simulate_rankings(["a", "b"], 30, 10, {"q1": {"a": 5.0}, "q2": {"b": 5.0}},
                                               criteria=["q1", "q2"], trial_sd=0.0)
    first = per_criterion[per_criterion["rank"] == 1].groupby("criterion")["method"].agg(lambda m: m.mode()[0])
    assert first.to_dict() == {"q1": "a", "q2": "b"}
    with pytest.raises(ValueError, match="not among"):
        simulate.simulate_rankings(["a", "b"], 2, 2, {"z": 1.0})


def test_simulate_bounds_the_study_before_allocating(monkeypatch):
    # participants x trials x criteria x methods, counted by hand: 5 x 4 x 2 x 3 = 120 rows
    monkeypatch.setattr(simulate, "MAX_ROWS", 120)
    assert len(simulate.simulate_rankings(["a", "b", "c"], 5, 4, criteria=["q1", "q2"])) == 120
    monkeypatch.setattr(simulate, "MAX_ROWS", 119)

    def no_allocation(*args, **kwargs):
        raise AssertionError("random numbers drawn before the size was checked")

    monkeypatch.setattr(simulate.np.random, "default_rng", no_allocation)
    with pytest.raises(ValueError, match=r"^participants x trials x criteria x methods = 5 x 4 x 2 x 3 = 120 rows; "
                                         r"a simulated study has at most 119 \(give fewer"):
        simulate.simulate_rankings(["a", "b", "c"], 5, 4, criteria=["q1", "q2"])
    with pytest.raises(ValueError, match="= 5 x 4 x 1 x 3 = 60 rows"):   # --power: one criterion a study
        monkeypatch.setattr(simulate, "MAX_ROWS", 59)
        simulate.estimate_power(["a", "b", "c"], 5, 4, replicates=3)


def test_simulate_refuses_no_criterion_or_one_named_twice():
    with pytest.raises(ValueError, match="^criteria: the list is empty"):
        simulate.simulate_rankings(["a", "b"], 2, 2, criteria=[])
    with pytest.raises(ValueError, match="^criteria: q given more than once"):
        simulate.simulate_rankings(["a", "b"], 2, 2, criteria=["q", "q"])


def test_command_line_modules_run(tmp_path):
    csv = tmp_path / "r.csv"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)

    simulated = run("userstudy.simulate", "--methods", "a,b,c", "--participants", "4", "--trials", "3",
                    "--out", str(csv))
    assert simulated.returncode == 0, simulated.stderr
    analysed = run("userstudy.analyze", str(csv))
    assert analysed.returncode == 0, analysed.stderr
    assert (tmp_path / "r_analysis" / "report.md").exists()
    assert "4 participants, 3 trials, 48 blocks used" in analysed.stdout


def test_the_title_of_a_one_criterion_figure_stays_inside_it(tmp_path, monkeypatch):
    """A one-criterion, two-method figure is narrow: its title (and the N line under it) used to run off both
    edges. Checked with matplotlib's own text extents after drawing."""
    from matplotlib.figure import Figure

    csv = tmp_path / "r.csv"
    assert simulate.main(["--methods", "a,b", "--criteria", "realism", "--participants", "5", "--trials", "4",
                          "--out", str(csv)]) == 0
    seen = []
    save = Figure.savefig

    def checked(self, *args, **kwargs):
        save(self, *args, **kwargs)
        title = self._suptitle.get_window_extent(self.canvas.get_renderer())
        seen.append((title.x0, title.x1, self.bbox.x0, self.bbox.x1, self._suptitle.get_text()))

    monkeypatch.setattr(Figure, "savefig", checked)
    assert analyze.main([str(csv), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert len(seen) == 2
    for x0, x1, left, right, text in seen:
        assert left <= x0 and x1 <= right, text
        assert "N = 5 participants, 4 trials" in text.replace("\n", " ")


def test_the_heatmaps_shade_significance_at_the_study_s_alpha():
    """Before, the bins were fixed at 0.05: with --alpha 0.01 a p of 0.021 was shaded "p < 0.05" beside a
    report saying it is not significant."""
    from matplotlib.colors import BoundaryNorm

    from userstudy.figures import p_bins

    for alpha, labels in ((0.01, ("p < 0.001", "p < 0.01", "p ≥ 0.01 (n.s.)")),
                          (0.05, ("p < 0.001", "p < 0.01", "p < 0.05", "p ≥ 0.05 (n.s.)")),
                          (0.1, ("p < 0.001", "p < 0.01", "p < 0.05", "p < 0.1", "p ≥ 0.1 (n.s.)"))):
        bins, said, colours = p_bins(alpha)
        assert said == labels and len(colours) == len(labels) == len(bins) - 1
        norm = BoundaryNorm(bins, len(colours))
        for p in (0.0004, 0.021, 0.07, alpha, 0.5):
            shaded = colours[int(norm(p))]
            assert (shaded == colours[-1]) == (p >= alpha), (alpha, p)   # n.s. exactly where the report says no
