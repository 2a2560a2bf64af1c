"""The rank tests of userstudy against a published example and independent implementations.

userstudy.nonparametric calls scipy, scikit-posthocs and statsmodels; the references here are
independent of them: Hollander & Wolfe's mucociliary example (Kruskal-Wallis H, p; Dunn |z|, p) and
the textbook formulas written as plain loops over the data (mid-ranks counted value by value, Dunn's
z, Friedman's chi2 with its tie correction, Nemenyi's studentized range, Conover's t, Holm /
Benjamini-Hochberg / Bonferroni step by step).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats

from userstudy.nonparametric import (
    adjust_p_values,
    block_matrix,
    conover_friedman,
    dunn,
    friedman,
    kruskal_wallis,
    nemenyi_friedman,
    pairs_to_matrix,
)
from userstudy.rankings import check_rankings, mean_points
from userstudy.simulate import simulate_rankings

def mid_ranks(values) -> list[float]:
    """Mid-ranks by counting: a value's rank is 1 + the values below it + half the others equal to it."""
    return [sum(w < v for w in values) + (sum(w == v for w in values) + 1) / 2 for v in values]


def dunn_by_loop(groups: dict[str, list[float]]) -> dict[tuple[str, str], tuple[float, float]]:
    """Dunn's z and two-sided p per pair, from the formula."""
    pooled = [v for values in groups.values() for v in values]
    ranks = mid_ranks(pooled)
    n = len(pooled)
    ties = sum(c**3 - c for c in (pooled.count(v) for v in set(pooled)))
    variance = n * (n + 1) / 12 - ties / (12 * (n - 1))
    mean_rank, start = {}, 0
    for name, values in groups.items():
        mean_rank[name] = sum(ranks[start:start + len(values)]) / len(values)
        start += len(values)
    out = {}
    for a, b in itertools.combinations(groups, 2):
        z = (mean_rank[a] - mean_rank[b]) / (variance * (1 / len(groups[a]) + 1 / len(groups[b]))) ** 0.5
        out[(a, b)] = (z, 2 * stats.norm.sf(abs(z)))
    return out


def block_ranks(matrix: np.ndarray) -> np.ndarray:
    return np.array([mid_ranks(list(row)) for row in matrix])


def friedman_by_loop(matrix: np.ndarray) -> tuple[float, float]:
    """Friedman's chi2 with the tie correction, and its chi-square p."""
    n, k = matrix.shape
    sums = block_ranks(matrix).sum(axis=0)
    chi2 = 12 / (n * k * (k + 1)) * sum(r * r for r in sums) - 3 * n * (k + 1)
    ties = sum(c**3 - c for row in matrix for c in (list(row).count(v) for v in set(row)))
    chi2 /= 1 - ties / (n * (k**3 - k))
    return chi2, stats.chi2.sf(chi2, k - 1)


def nemenyi_by_loop(matrix: np.ndarray) -> np.ndarray:
    """Nemenyi's p per pair: P(Q_k,inf >= sqrt(2) |mean rank a - mean rank b| / sqrt(k(k+1)/(6n)))."""
    n, k = matrix.shape
    mean = block_ranks(matrix).mean(axis=0)
    p = np.eye(k)
    for i, j in itertools.combinations(range(k), 2):
        q = abs(mean[i] - mean[j]) / (k * (k + 1) / (6 * n)) ** 0.5
        p[i, j] = p[j, i] = stats.studentized_range.sf(q * 2**0.5, k, np.inf)
    return p


def conover_by_loop(matrix: np.ndarray) -> np.ndarray:
    """Conover's two-sided p per pair: t = |R_a - R_b| / sqrt(2 (n A - sum R^2) / ((n-1)(k-1)))."""
    n, k = matrix.shape
    ranks = block_ranks(matrix)
    sums, a = ranks.sum(axis=0), (ranks**2).sum()
    df = (n - 1) * (k - 1)
    se = (2 * (n * a - sum(r * r for r in sums)) / df) ** 0.5
    p = np.eye(k)
    for i, j in itertools.combinations(range(k), 2):
        p[i, j] = p[j, i] = 2 * stats.t.sf(abs(sums[i] - sums[j]) / se, df)
    return p


def adjusted_by_loop(p: list[float], method: str) -> list[float]:
    """Bonferroni, Holm's step-down or Benjamini-Hochberg's step-up, one p at a time."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    if method == "bonferroni":
        return [min(1.0, x * m) for x in p]
    if method == "holm":
        running = 0.0
        for step, i in enumerate(order):
            running = max(running, (m - step) * p[i])
            out[i] = min(1.0, running)
        return out
    running = 1.0
    for step in range(m - 1, -1, -1):   # fdr_bh
        i = order[step]
        running = min(running, p[i] * m / (step + 1))
        out[i] = running
    return out


# Hollander & Wolfe, mucociliary efficiency (three groups of subjects).
HW = {"x": [2.9, 3.0, 2.5, 2.6, 3.2], "y": [3.8, 2.7, 4.0, 2.4], "z": [2.8, 3.4, 3.7, 2.2, 2.0]}
HW_ABS_Z = {("x", "y"): 0.6414269806, ("x", "z"): 0.2267786838, ("y", "z"): 0.8552359741}
HW_P = {("x", "y"): 0.521245, ("x", "z"): 0.820596, ("y", "z"): 0.392421}


def hollander_wolfe() -> pd.DataFrame:
    return pd.DataFrame([(g, v) for g, values in HW.items() for v in values], columns=["group", "value"])


def test_kruskal_wallis_reproduces_hollander_wolfe():
    result = kruskal_wallis(hollander_wolfe(), "value", "group")
    assert result["H"] == pytest.approx(0.771429, abs=1e-6)
    assert result["df"] == 2
    assert result["p"] == pytest.approx(0.679965, abs=1e-6)


def test_dunn_reproduces_hollander_wolfe():
    pairs = dunn(hollander_wolfe(), "value", "group").set_index(["group_a", "group_b"])
    for pair, z in HW_ABS_Z.items():
        assert abs(pairs.loc[pair, "z"]) == pytest.approx(z, abs=1e-9)
        assert pairs.loc[pair, "p"] == pytest.approx(HW_P[pair], abs=1e-6)
    # x has the lower mean rank than y: the sign says which group has the larger values
    assert pairs.loc[("x", "y"), "z"] < 0 < pairs.loc[("y", "z"), "z"]


def simulated(seed: int, methods=("a", "b", "c", "d"), participants=6, trials=5, effect=0.4) -> pd.DataFrame:
    """One criterion of a simulated study, checked, with points."""
    table = simulate_rankings(list(methods), participants, trials, effect, criteria=["quality"], seed=seed)
    return check_rankings(table).data


@pytest.mark.parametrize("seed", range(5))
def test_kruskal_wallis_matches_scipy(seed):
    data = simulated(seed)
    ours = kruskal_wallis(data, "points", "method")
    reference = stats.kruskal(*[g["points"].to_numpy() for _, g in data.groupby("method")])
    assert ours["H"] == pytest.approx(reference.statistic, rel=1e-10)
    assert ours["p"] == pytest.approx(reference.pvalue, rel=1e-9)


def test_kruskal_wallis_all_identical_is_undefined_like_scipy():
    data = pd.DataFrame({"group": list("aabb"), "value": [1.0] * 4})
    ours = kruskal_wallis(data, "value", "group")
    assert np.isnan(ours["H"]) and np.isnan(ours["p"])
    # scipy 1.17 returns NaN with a warning; older releases raised ValueError. Either way: undefined.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = stats.kruskal([1.0, 1.0], [1.0, 1.0])
        except ValueError:
            return
    assert np.isnan(reference.statistic)


@pytest.mark.parametrize("p_adjust", [None, "bonferroni", "holm", "fdr_bh"])
@pytest.mark.parametrize("seed", range(3))
def test_dunn_matches_its_formula(seed, p_adjust):
    data = simulated(seed, effect=0.3)
    pairs = dunn(data, "points", "method", p_adjust=p_adjust)
    groups = {m: list(g["points"]) for m, g in data.groupby("method")}
    reference = dunn_by_loop(groups)
    raw = [reference[(a, b)][1] for a, b in zip(pairs["group_a"], pairs["group_b"])]
    expected = raw if p_adjust is None else adjusted_by_loop(raw, p_adjust)
    np.testing.assert_allclose(pairs["z"], [reference[(a, b)][0] for a, b in zip(pairs["group_a"], pairs["group_b"])],
                               rtol=1e-9)
    np.testing.assert_allclose(pairs["p"], raw, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(pairs["p_adjusted"], expected, rtol=1e-9, atol=1e-14)


def test_dunn_on_identical_values_is_undefined():
    data = pd.DataFrame({"group": list("aabbcc"), "value": [2.0] * 6})
    pairs = dunn(data, "value", "group", p_adjust="holm")
    assert pairs[["z", "p", "p_adjusted"]].isna().all().all()


@pytest.mark.parametrize("seed", range(5))
def test_friedman_matches_scipy(seed):
    data = simulated(seed)
    ours = friedman(data, "points", "method", ["participant", "trial"])
    matrix = block_matrix(data, "points", "method", ["participant", "trial"])
    chi2, p = friedman_by_loop(matrix.to_numpy())
    assert ours["chi2"] == pytest.approx(chi2, rel=1e-10)
    assert ours["p"] == pytest.approx(p, rel=1e-9)
    assert ours["n_blocks"] == 30 and ours["k"] == 4


def test_friedman_with_ties_matches_scipy():
    rng = np.random.default_rng(7)
    matrix = rng.integers(0, 3, (25, 4)).astype(float)   # many ties inside blocks
    long = pd.DataFrame(matrix).stack().rename("value").reset_index()
    long.columns = ["block", "group", "value"]
    ours = friedman(long, "value", "group", "block")
    chi2, p = friedman_by_loop(matrix)
    assert ours["chi2"] == pytest.approx(chi2, rel=1e-10)
    assert ours["p"] == pytest.approx(p, rel=1e-9)


def test_friedman_of_two_groups_is_the_sign_test_chi_square():
    """scipy needs k >= 3; for k = 2 Friedman's chi2 is (wins - losses)^2 / untied blocks."""
    rng = np.random.default_rng(11)
    matrix = rng.integers(0, 4, (30, 2)).astype(float)
    long = pd.DataFrame(matrix).stack().rename("value").reset_index()
    long.columns = ["block", "group", "value"]
    ours = friedman(long, "value", "group", "block")
    wins, losses = int((matrix[:, 0] > matrix[:, 1]).sum()), int((matrix[:, 0] < matrix[:, 1]).sum())
    assert ours["chi2"] == pytest.approx((wins - losses) ** 2 / (wins + losses), rel=1e-12)
    assert ours["p"] == pytest.approx(stats.chi2.sf((wins - losses) ** 2 / (wins + losses), 1), rel=1e-12)


def test_friedman_names_the_rows_without_a_value():
    data = simulated(0)
    data.loc[data.index[[3, 17]], "points"] = np.nan
    with pytest.raises(ValueError, match=rf"2 row\(s\) without a numeric 'points' \(e.g. rows \[{data.index[3]}, "
                                         rf"{data.index[17]}\]\)"):
        friedman(data, "points", "method", ["participant", "trial"])


def kendalls_w_by_loop(matrix: np.ndarray) -> float:
    """Kendall's W from its definition (no ties): S / (n^2 (k^3 - k) / 12), S the squared deviations
    of the rank sums from their mean."""
    n, k = matrix.shape
    ranks = np.array([[sorted(row).index(v) + 1 for v in row] for row in matrix])
    sums = ranks.sum(axis=0)
    s = sum((r - sums.mean()) ** 2 for r in sums)
    return s / (n**2 * (k**3 - k) / 12)


@pytest.mark.parametrize("seed", range(3))
def test_kendalls_w_matches_its_definition(seed):
    data = simulated(seed)
    ours = friedman(data, "points", "method", ["participant", "trial"])["W"]
    matrix = block_matrix(data, "points", "method", ["participant", "trial"]).to_numpy()
    assert ours == pytest.approx(kendalls_w_by_loop(matrix), rel=1e-12)


def test_kendalls_w_is_one_when_every_block_agrees():
    table = simulate_rankings(["a", "b", "c"], 4, 3, effect=1e6, criteria=["q"], trial_sd=0.0)
    data = check_rankings(table).data
    assert friedman(data, "points", "method", ["participant", "trial"])["W"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_nemenyi_friedman_matches_its_formula(seed):
    data = simulated(seed, effect=0.5)
    methods = sorted(data["method"].unique())
    ours = pairs_to_matrix(nemenyi_friedman(data, "points", "method", ["participant", "trial"]), "p", methods)
    matrix = block_matrix(data, "points", "method", ["participant", "trial"], methods)
    np.testing.assert_allclose(ours.to_numpy(), nemenyi_by_loop(matrix.to_numpy()), rtol=1e-7)


@pytest.mark.parametrize("p_adjust", [None, "holm"])
@pytest.mark.parametrize("seed", range(3))
def test_conover_friedman_matches_its_formula(seed, p_adjust):
    data = simulated(seed, effect=0.3)
    methods = sorted(data["method"].unique())
    pairs = conover_friedman(data, "points", "method", ["participant", "trial"], p_adjust=p_adjust)
    matrix = block_matrix(data, "points", "method", ["participant", "trial"], methods).to_numpy()
    raw = conover_by_loop(matrix)
    pair_index = list(itertools.combinations(range(len(methods)), 2))
    expected = [raw[i, j] for i, j in pair_index]
    if p_adjust is not None:
        expected = adjusted_by_loop(expected, p_adjust)
    np.testing.assert_allclose(pairs["p_adjusted"], expected, rtol=1e-9)
    # the melted form too, every argument by keyword (their positional order changed in 0.11)
    melted = data.assign(block=data["participant"] + "/" + data["trial"])
    library = sp.posthoc_conover_friedman(melted, y_col="points", block_col="block", block_id_col="block",
                                          group_col="method", melted=True, p_adjust=p_adjust)
    np.testing.assert_allclose([library.loc[methods[i], methods[j]] for i, j in pair_index], expected, rtol=1e-9)


@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
def test_p_adjustment_matches_the_step_by_step_procedure(method):
    p = np.random.default_rng(3).uniform(0, 0.2, 17)
    p[4] = p[9]  # a tie
    np.testing.assert_allclose(adjust_p_values(p, method), adjusted_by_loop(list(p), method), rtol=1e-12)


def test_p_adjustment_leaves_nan_out_of_the_family():
    adjusted = adjust_p_values([0.01, np.nan, 0.04], "holm")
    np.testing.assert_allclose(adjusted, [0.02, np.nan, 0.04])
    with pytest.raises(ValueError, match="unknown p-value adjustment"):
        adjust_p_values([0.1], "sidak-ish")


def test_mean_points_match_a_direct_loop():
    table = simulate_rankings(["a", "b", "c"], 3, 4, criteria=["q1", "q2"], seed=5)
    checked = check_rankings(table)
    ours = mean_points(checked.data)
    for method in ["a", "b", "c"]:
        for criterion in ["q1", "q2"]:
            points = [3 + 1 - int(row["rank"]) for _, row in table.iterrows()
                      if row["method"] == method and row["criterion"] == criterion]
            assert ours.loc[method, criterion] == pytest.approx(sum(points) / len(points))
    # every block hands out 3 + 2 + 1 points: the means of a criterion add up to 6
    assert ours.sum(axis=0).to_numpy() == pytest.approx([6.0, 6.0])


def test_simulated_differences_are_recovered():
    """A large effect ranks the methods in the order given; no effect leaves them close to even."""
    strong = check_rankings(simulate_rankings(["a", "b", "c"], 20, 30, effect=1.0, seed=1))
    assert list(mean_points(strong.data).mean(axis=1).sort_values(ascending=False).index) == ["a", "b", "c"]
    none = check_rankings(simulate_rankings(["a", "b", "c"], 20, 30, effect=0.0, trial_sd=0.0, seed=1))
    assert np.abs(mean_points(none.data).to_numpy() - 2.0).max() < 0.1


@pytest.mark.parametrize("k", [3, 5])
def test_kruskal_wallis_on_rankings_is_an_inflated_friedman(k):
    """Why the within-subject analysis: on complete rankings (no ties inside blocks), the paper's
    Kruskal-Wallis H is exactly Friedman's chi2 times (nk - 1) / (n(k - 1)), about k / (k - 1), on
    the same degrees of freedom: it overstates significance (1.5x the statistic for k = 3)."""
    data = check_rankings(simulate_rankings(list("abcde")[:k], 7, 4, effect=0.2, criteria=["q"], seed=k)).data
    n = 7 * 4
    h = kruskal_wallis(data, "points", "method")
    chi2 = friedman(data, "points", "method", ["participant", "trial"])
    assert h["H"] == pytest.approx(chi2["chi2"] * (n * k - 1) / (n * (k - 1)), rel=1e-10)
    assert h["p"] < chi2["p"]


def test_kruskal_wallis_rejects_a_true_null_too_often():
    """No difference between methods and no video effects: Friedman rejects at about alpha,
    Kruskal-Wallis on the pooled ranks far more often (100 simulated studies of 60 blocks)."""
    rejections = {"kw": 0, "friedman": 0}
    for seed in range(100):
        data = check_rankings(simulate_rankings(["a", "b", "c"], 10, 6, effect=0.0, trial_sd=0.0,
                                                criteria=["q"], seed=seed)).data
        rejections["kw"] += kruskal_wallis(data, "points", "method")["p"] < 0.05
        rejections["friedman"] += friedman(data, "points", "method", ["participant", "trial"])["p"] < 0.05
    assert rejections["friedman"] <= 11          # binomial(100, 0.05): P(> 11) < 0.005
    assert rejections["kw"] > rejections["friedman"]


def test_pairs_cover_every_pair_once():
    data = simulated(0, methods=("a", "b", "c", "d", "e"))
    pairs = dunn(data, "points", "method", groups=["e", "d", "c", "b", "a"])
    assert [tuple(p) for p in pairs[["group_a", "group_b"]].to_numpy()] == list(
        itertools.combinations(["e", "d", "c", "b", "a"], 2))


def test_missing_values_are_left_out_and_counted_not_turned_into_numbers():
    # 60 values and 20 rows without a value: the answer is the one on the 60 values (scipy's
    # nan_policy="omit" and Dunn's formula on the 60 values are the references), and the 20 are counted.
    from scipy import stats as scipy_stats

    from userstudy.nonparametric import dunn, kruskal_wallis

    rng = np.random.default_rng(0)
    values = pd.DataFrame({"v": rng.integers(1, 4, 60).astype(float), "g": np.repeat(["a", "b", "c"], 20)})
    values.loc[values["g"] == "a", "v"] += 0.5
    with_nan = pd.concat([values, pd.DataFrame({"v": np.nan, "g": np.tile(["a", "b"], 10)})], ignore_index=True)
    result = kruskal_wallis(with_nan, "v", "g")
    reference = scipy_stats.kruskal(*[with_nan.loc[with_nan["g"] == g, "v"] for g in "abc"], nan_policy="omit")
    assert (result["n"], result["n_omitted"]) == (60, 20)
    assert result["H"] == pytest.approx(reference.statistic, rel=1e-12) and result["H"] > 0
    assert result["p"] == pytest.approx(reference.pvalue, rel=1e-12)
    pairs = dunn(with_nan, "v", "g")
    expected = dunn_by_loop({g: list(values.loc[values["g"] == g, "v"]) for g in "abc"})
    for row in pairs.itertuples():
        assert row.z == pytest.approx(expected[(row.group_a, row.group_b)][0], rel=1e-9)
        assert row.p == pytest.approx(expected[(row.group_a, row.group_b)][1], rel=1e-9)


def test_text_in_the_value_column_is_named_not_dropped():
    data = pd.DataFrame({"v": [1.0, 2.0, "two", 3.0], "g": list("aabb")})
    with pytest.raises(ValueError, match=r"'v' is not a number in row\(s\) \[2\]: e.g. 'two'"):
        kruskal_wallis(data, "v", "g")


def test_a_p_value_under_the_floor_is_printed_as_a_bound_never_as_zero(tmp_path):
    """Rankings where every block orders the methods the same way: Nemenyi's p underflows to 0.0 (scipy's
    studentized range sf of q sqrt(2) is 1 - cdf in doubles). The report and the figure's cells say
    "< 1e-15"; the CSV keeps the computed 0.0."""
    from userstudy.analyze import analyze
    from userstudy.figures import format_p

    table = [{"participant": f"p{p}", "trial": f"t{t}", "criterion": "visual quality", "method": m, "rank": r}
             for p in range(20) for t in range(30) for r, m in enumerate(["a", "b", "c"], start=1)]
    csv = tmp_path / "rankings.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    analysis = analyze(csv, tmp_path / "out", study_dir=False)
    pairs = analysis.friedman_posthoc["visual quality"].set_index(["group_a", "group_b"])
    q = pairs.loc[("a", "c"), "q"]
    assert stats.studentized_range.sf(q * np.sqrt(2), 3, np.inf) == 0.0 == pairs.loc[("a", "c"), "p"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "0.00e+00" not in report and "(p 0.0e+00)" not in report
    assert "a > c (p < 1e-15)" in report
    assert pd.read_csv(tmp_path / "out" / "nemenyi_pairs.csv")["p"].min() == 0.0
    assert format_p(0.0) == "< 1e-15" and format_p(3e-16) == "< 1e-15" and format_p(2e-15) == "2.0e-15"
