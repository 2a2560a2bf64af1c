"""The rank tests of userstudy against a published example and independent implementations.

References: Hollander & Wolfe's mucociliary example (Kruskal-Wallis H, p; Dunn |z|, p), scipy
(kruskal, friedmanchisquare), scikit-posthocs (posthoc_dunn, posthoc_nemenyi_friedman,
posthoc_conover_friedman), statsmodels (multipletests) and direct loops over the data.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

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
def test_dunn_matches_scikit_posthocs(seed, p_adjust):
    data = simulated(seed, effect=0.3)
    pairs = dunn(data, "points", "method", p_adjust=p_adjust)
    ours = pairs_to_matrix(pairs, "p_adjusted", sorted(data["method"].unique()))
    reference = sp.posthoc_dunn(data, val_col="points", group_col="method", p_adjust=p_adjust)
    pd.testing.assert_frame_equal(ours, reference.loc[ours.index, ours.columns], check_names=False,
                                  rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_friedman_matches_scipy(seed):
    data = simulated(seed)
    ours = friedman(data, "points", "method", ["participant", "trial"])
    matrix = block_matrix(data, "points", "method", ["participant", "trial"])
    reference = stats.friedmanchisquare(*matrix.to_numpy().T)
    assert ours["chi2"] == pytest.approx(reference.statistic, rel=1e-10)
    assert ours["p"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert ours["n_blocks"] == 30 and ours["k"] == 4


def test_friedman_with_ties_matches_scipy():
    rng = np.random.default_rng(7)
    matrix = rng.integers(0, 3, (25, 4)).astype(float)   # many ties inside blocks
    long = pd.DataFrame(matrix).stack().rename("value").reset_index()
    long.columns = ["block", "group", "value"]
    ours = friedman(long, "value", "group", "block")
    reference = stats.friedmanchisquare(*matrix.T)
    assert ours["chi2"] == pytest.approx(reference.statistic, rel=1e-10)
    assert ours["p"] == pytest.approx(reference.pvalue, rel=1e-9)


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
def test_nemenyi_friedman_matches_scikit_posthocs(seed):
    data = simulated(seed, effect=0.5)
    methods = sorted(data["method"].unique())
    ours = pairs_to_matrix(nemenyi_friedman(data, "points", "method", ["participant", "trial"]), "p", methods)
    matrix = block_matrix(data, "points", "method", ["participant", "trial"])
    reference = sp.posthoc_nemenyi_friedman(matrix.reset_index(drop=True))
    pd.testing.assert_frame_equal(ours, reference.loc[methods, methods], check_names=False, rtol=1e-7)


@pytest.mark.parametrize("p_adjust", [None, "holm"])
@pytest.mark.parametrize("seed", range(3))
def test_conover_friedman_matches_scikit_posthocs(seed, p_adjust):
    data = simulated(seed, effect=0.3)
    methods = sorted(data["method"].unique())
    pairs = conover_friedman(data, "points", "method", ["participant", "trial"], p_adjust=p_adjust)
    ours = pairs_to_matrix(pairs, "p_adjusted", methods)
    # the melted form, every argument by keyword (their positional order changed in 0.11)
    melted = data.assign(block=data["participant"] + "/" + data["trial"])
    reference = sp.posthoc_conover_friedman(melted, y_col="points", block_col="block", block_id_col="block",
                                            group_col="method", melted=True, p_adjust=p_adjust)
    pd.testing.assert_frame_equal(ours, reference.loc[methods, methods], check_names=False, rtol=1e-9)


@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
def test_p_adjustment_matches_statsmodels(method):
    p = np.random.default_rng(3).uniform(0, 0.2, 17)
    p[4] = p[9]  # a tie
    np.testing.assert_allclose(adjust_p_values(p, method), multipletests(p, method=method)[1], rtol=1e-12)


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
    # nan_policy="omit" and scikit-posthocs >= 0.17 are the references), and the 20 are counted.
    import scikit_posthocs as sp
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
    expected = sp.posthoc_dunn(with_nan, val_col="v", group_col="g", p_adjust=None)
    for row in pairs.itertuples():
        assert row.p == pytest.approx(expected.loc[row.group_a, row.group_b], rel=1e-9)
    assert pairs["z"].notna().all()
