"""Rank-based tests for comparing methods: Kruskal-Wallis + Dunn, and Friedman + Nemenyi / Conover.

DataFrame in, DataFrame (or Series) out. The numbers come from the libraries that compute them:

- ``kruskal_wallis``: ``scipy.stats.kruskal``;
- ``dunn``: p-values from ``scikit_posthocs.posthoc_dunn``;
- ``friedman``: ``scipy.stats.friedmanchisquare`` (k >= 3);
- ``nemenyi_friedman``: ``scikit_posthocs.posthoc_nemenyi_friedman``;
- ``conover_friedman``: ``scikit_posthocs.posthoc_conover_friedman``;
- ``adjust_p_values``: ``statsmodels.stats.multitest.multipletests``.

The package's own code computes only what they do not give: the statistics reported beside the
p-values (Dunn's signed z, Nemenyi's q, Conover's t, the mean ranks and rank sums: scikit-posthocs
returns p-values alone), Kendall's W, Friedman's test for k = 2 (scipy needs k >= 3), the checks
that blocks are complete (scikit-posthocs 0.17 silently drops incomplete blocks) and the handling
of missing values. The tests compare every number with an independent reference (the Hollander &
Wolfe example, the textbook formulas written as loops, scipy).

- ``kruskal_wallis`` and ``dunn`` treat every value as an independent observation of its group.
  That is the seed paper's analysis (its Tables 6/7 and Figures 8/9), kept so it can be
  reproduced; for ranking data it overstates significance, because the k ranks of one block are
  a permutation, not k independent draws.
- ``friedman`` (with Kendall's W) and its post-hoc tests ``nemenyi_friedman`` and
  ``conover_friedman`` compare the methods within blocks, which is the design of a ranking study.

Missing values (NaN): ``kruskal_wallis`` and ``dunn`` leave those rows out, as scipy's
``nan_policy="omit"`` does, and say how many (``n_omitted``); the Friedman family refuses them,
naming the rows, since a block without one of its values is no longer a complete block.

Pairwise results are long tables, one row per pair (``group_a``, ``group_b``), two-sided p-values;
``pairs_to_matrix`` turns a p column into the symmetric k x k matrix (diagonal 1).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import scikit_posthocs
from scipy import stats
from statsmodels.stats.multitest import multipletests

P_ADJUST_METHODS = ("none", "bonferroni", "holm", "fdr_bh")

# Which library computes which number of the report (``software``): the names of their distributions.
LIBRARIES = {
    "scipy": "Kruskal-Wallis, Friedman, the studentized range",
    "scikit-posthocs": "Dunn's p (ties corrected), Nemenyi's and Conover's p",
    "statsmodels": "the p-value adjustments",
    "pandas": "the tables",
}


def software() -> dict[str, str]:
    """The installed version of each library of ``LIBRARIES`` (``unknown`` when not found), for the
    report to say what produced its numbers."""
    from importlib import metadata

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def adjust_p_values(p_values, method: str | None) -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons (statsmodels ``multipletests``).

    ``method``: ``None``/``"none"``, ``"bonferroni"``, ``"holm"`` (Holm's step-down, controls the
    family-wise error), ``"fdr_bh"`` (Benjamini-Hochberg, controls the false discovery rate); the
    names are statsmodels'. NaN p-values stay NaN and do not count in the family.
    """
    if method not in (None,) + P_ADJUST_METHODS:
        raise ValueError(f"unknown p-value adjustment {method!r}; choose one of {', '.join(P_ADJUST_METHODS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if method in (None, "none") or not ok.any():
        out[ok] = p[ok]
        return out
    out[ok] = multipletests(p[ok], method=method)[1]
    return out


def adjustment_name(p_adjust: str | None) -> str:
    """How an adjustment is named in files and reports: ``holm-adjusted``, ``unadjusted``."""
    return "unadjusted" if p_adjust in (None, "none") else f"{p_adjust}-adjusted"


def _groups(data: pd.DataFrame, group_col: str, groups: list | None) -> list:
    present = list(pd.unique(data[group_col]))
    if groups is None:
        return sorted(present)
    unknown = [g for g in present if g not in groups]
    if unknown:
        raise ValueError(f"groups {unknown} are in the data but not in the given order {groups}")
    return [g for g in groups if g in present]


def _tie_sum(values: np.ndarray) -> float:
    """Sum over groups of tied values of t^3 - t."""
    _, counts = np.unique(values, return_counts=True)
    return float(np.sum(counts.astype(float) ** 3 - counts))


def omit_missing(data: pd.DataFrame, val_col: str, group_col: str) -> tuple[pd.DataFrame, int]:
    """The rows with a value and a group, and how many were left out (as scipy's ``nan_policy="omit"``).

    A value that is not a number (text) is an error naming its rows, not a missing value.
    """
    values = pd.to_numeric(data[val_col], errors="coerce")
    text = values.isna() & data[val_col].notna()
    if text.any():
        rows = data.index[text][:10].tolist()
        raise ValueError(f"{val_col!r} is not a number in row(s) {rows}: e.g. {data.loc[text, val_col].iloc[0]!r}")
    keep = values.notna() & data[group_col].notna()
    return data[keep].assign(**{val_col: values[keep].astype(float)}), int((~keep).sum())


def kruskal_wallis(data: pd.DataFrame, val_col: str, group_col: str) -> pd.Series:
    """Kruskal-Wallis H test that all groups come from one distribution (scipy ``stats.kruskal``).

    Rows without a value (NaN) are left out, as scipy's ``nan_policy="omit"`` does, and counted in
    ``n_omitted``. Returns ``H`` (tie-corrected), ``df`` (k - 1), ``p`` (chi-square approximation),
    ``n`` (observations used), ``n_omitted`` and ``k``. When every value is the same the statistic
    is undefined: H and p are NaN (there is nothing to rank).
    """
    used, omitted = omit_missing(data, val_col, group_col)
    groups = pd.unique(used[group_col])
    k = len(groups)
    if k < 2:
        raise ValueError(f"Kruskal-Wallis needs at least two groups with values in {group_col!r}, found {k}")
    samples = [used.loc[used[group_col] == g, val_col].to_numpy() for g in groups]
    values = used[val_col].to_numpy()
    if np.all(values == values[0]):
        h = p = np.nan       # scipy 1.17 returns NaN with a warning here, older releases raise
    else:
        h, p = stats.kruskal(*samples)
    return pd.Series({"H": float(h), "df": k - 1, "p": float(p), "n": len(values), "n_omitted": omitted, "k": k})


def dunn(data: pd.DataFrame, val_col: str, group_col: str, p_adjust: str | None = None,
         groups: list | None = None) -> pd.DataFrame:
    """Dunn's (1964) pairwise test after Kruskal-Wallis, on the ranks of all observations pooled.

    ``p``: two-sided, from ``scikit_posthocs.posthoc_dunn`` (as scikit-posthocs, FSA and PMCMRplus
    report; R's dunn.test reports the one-sided half); ``p_adjusted``: ``p`` adjusted over the
    k(k-1)/2 pairs with ``p_adjust`` (statsmodels). ``z`` (which scikit-posthocs does not return) is
    (mean rank a - mean rank b) / sqrt((N(N+1)/12 - sum(t^3 - t)/(12(N-1))) (1/n_a + 1/n_b)),
    positive when group a has the larger values. Rows without a value (NaN) are left out, as in
    ``kruskal_wallis``. When every value is the same, z and p are undefined (NaN).
    """
    data, _ = omit_missing(data, val_col, group_col)
    order = _groups(data, group_col, groups)
    values = data[val_col].to_numpy(dtype=float)
    n = values.size
    ranks = pd.Series(stats.rankdata(values)).groupby(data[group_col].to_numpy())
    mean_rank, size = ranks.mean(), ranks.size()
    variance = n * (n + 1) / 12.0 - _tie_sum(values) / (12.0 * (n - 1)) if n > 1 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # 0/0 when every value is the same: NaN
        p_matrix = scikit_posthocs.posthoc_dunn(data[[val_col, group_col]], val_col=val_col, group_col=group_col,
                                                p_adjust=None)
    rows = []
    for a, b in itertools.combinations(order, 2):
        se = np.sqrt(variance * (1.0 / size[a] + 1.0 / size[b]))
        z = (mean_rank[a] - mean_rank[b]) / se if se > 0 else np.nan
        rows.append({"group_a": a, "group_b": b, "mean_rank_a": mean_rank[a], "mean_rank_b": mean_rank[b],
                     "z": z, "p": float(p_matrix.loc[a, b]) if se > 0 else np.nan})
    pairs = pd.DataFrame(rows, columns=["group_a", "group_b", "mean_rank_a", "mean_rank_b", "z", "p"])
    pairs["p_adjusted"] = adjust_p_values(pairs["p"], p_adjust)
    return pairs


def block_matrix(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                 groups: list | None = None) -> pd.DataFrame:
    """The blocks x groups matrix of a complete block design (one value per block and group).

    Raises ``ValueError`` naming the rows without a value (NaN), the blocks where a group appears
    twice and the blocks where a group is missing: the Friedman family of tests is defined on
    complete blocks only (scikit-posthocs 0.17 would silently drop incomplete ones).
    """
    block_cols = [block_col] if isinstance(block_col, str) else list(block_col)
    values = pd.to_numeric(data[val_col], errors="coerce")
    if values.isna().any():
        rows = data.index[values.isna()][:10].tolist()
        raise ValueError(f"{int(values.isna().sum())} row(s) without a numeric {val_col!r} (e.g. rows {rows}): "
                         "a block missing a value is incomplete; drop those blocks or fill the values")
    data = data.assign(**{val_col: values.astype(float)})
    order = _groups(data, group_col, groups)
    counts = data.groupby(block_cols + [group_col]).size()
    if (counts > 1).any():
        bad = counts[counts > 1].index[:5].tolist()
        raise ValueError(f"a group appears more than once in a block: {bad}")
    matrix = data.pivot_table(index=block_cols, columns=group_col, values=val_col, aggfunc="first")
    matrix = matrix.reindex(columns=order)
    incomplete = matrix.isna().any(axis=1)
    if incomplete.any():
        raise ValueError(f"{int(incomplete.sum())} incomplete block(s), e.g. "
                         f"{matrix.index[incomplete][:5].tolist()}: every block needs every group")
    return matrix


def _friedman_two_groups(matrix: np.ndarray) -> tuple[float, float]:
    """Friedman's statistic for k = 2, which scipy does not compute: with mid-ranks inside each
    block, chi2 = 12 / (n k (k+1)) sum R_j^2 - 3 n (k+1), divided by the tie correction
    1 - sum(t^3 - t) / (n (k^3 - k)); it equals the sign test's (wins - losses)^2 / untied blocks."""
    n, k = matrix.shape
    ranks = stats.rankdata(matrix, axis=1)
    chi2 = 12.0 / (n * k * (k + 1)) * np.sum(ranks.sum(axis=0) ** 2) - 3.0 * n * (k + 1)
    correction = 1.0 - sum(_tie_sum(row) for row in matrix) / (n * (k**3 - k))
    if correction <= 0:
        return np.nan, np.nan
    chi2 /= correction
    return chi2, float(stats.chi2.sf(chi2, k - 1))


def friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str]) -> pd.Series:
    """Friedman's test of k related samples (complete blocks), with Kendall's W as effect size.

    ``chi2`` (tie-corrected Friedman statistic) and ``p`` (chi-square approximation, df k - 1) are
    scipy's ``friedmanchisquare`` for k >= 3 (scipy refuses k = 2; see ``_friedman_two_groups``).
    ``W`` (Kendall's coefficient of concordance, chi2 / (n (k - 1)): 0 = no agreement between
    blocks, 1 = every block orders the groups the same way), ``n_blocks`` and ``k``. When every
    block is all ties the statistic is undefined (NaN).
    """
    matrix = block_matrix(data, val_col, group_col, block_col).to_numpy(dtype=float)
    n, k = matrix.shape
    if k < 2:
        raise ValueError(f"Friedman's test needs at least two groups, found {k}")
    if k == 2:
        chi2, p = _friedman_two_groups(matrix)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # every block all ties: NaN
            result = stats.friedmanchisquare(*matrix.T)
        chi2, p = float(result.statistic), float(result.pvalue)
    return pd.Series({"chi2": chi2, "df": k - 1, "p": p, "W": chi2 / (n * (k - 1)), "n_blocks": n, "k": k})


def _mean_ranks(matrix: pd.DataFrame, best_first: bool) -> pd.Series:
    values = matrix.to_numpy(dtype=float)
    ranks = stats.rankdata(-values if best_first else values, axis=1)
    return pd.Series(ranks.mean(axis=0), index=matrix.columns)


def nemenyi_friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                     groups: list | None = None) -> pd.DataFrame:
    """Nemenyi's all-pairs test after Friedman (Demsar 2006): family-wise error controlled by the
    studentized range, so the p-values need no further adjustment.

    ``p``: ``scikit_posthocs.posthoc_nemenyi_friedman`` on the complete blocks. Beside it (not
    returned by scikit-posthocs): ``q`` = |mean rank a - mean rank b| / sqrt(k(k+1) / (6n)), so that
    p = P(Q_k,inf >= q sqrt(2)), and ``mean_rank_a`` / ``mean_rank_b``: the mean within-block rank,
    1 = the largest value of the block (for points: the best, as a participant's rank 1), ties
    mid-ranked, so it lies in 1..k.
    """
    matrix = block_matrix(data, val_col, group_col, block_col, groups)
    n, k = matrix.shape
    mean_rank = _mean_ranks(matrix, best_first=True)
    p_matrix = scikit_posthocs.posthoc_nemenyi_friedman(matrix.reset_index(drop=True))
    se = np.sqrt(k * (k + 1) / (6.0 * n))
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        rows.append({"group_a": a, "group_b": b, "mean_rank_a": mean_rank[a], "mean_rank_b": mean_rank[b],
                     "q": abs(mean_rank[a] - mean_rank[b]) / se, "p": float(p_matrix.loc[a, b])})
    return pd.DataFrame(rows, columns=["group_a", "group_b", "mean_rank_a", "mean_rank_b", "q", "p"])


def conover_friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                     p_adjust: str | None = None, groups: list | None = None) -> pd.DataFrame:
    """Conover's (1999) all-pairs test after Friedman: a t test on the within-block rank sums.

    ``p``: two-sided, ``scikit_posthocs.posthoc_conover_friedman`` (unadjusted) on the complete
    blocks; ``p_adjusted``: over the pairs with ``p_adjust`` (statsmodels). Beside it (not returned
    by scikit-posthocs): ``t`` = |R_a - R_b| / sqrt(2 (n A - sum_j R_j^2) / ((n - 1)(k - 1))) with A
    the sum of the squared within-block ranks and R_j the rank sums (``rank_sum_a``/``_b``, rank 1
    = the smallest value), df = (n - 1)(k - 1). More powerful than Nemenyi, hence the adjustment.
    When every block orders the groups the same way, t is infinite and p is 0.
    """
    matrix = block_matrix(data, val_col, group_col, block_col, groups)
    n, k = matrix.shape
    ranks = stats.rankdata(matrix.to_numpy(dtype=float), axis=1)
    rank_sum = pd.Series(ranks.sum(axis=0), index=matrix.columns)
    df = (n - 1) * (k - 1)
    spread = n * np.sum(ranks**2) - np.sum(rank_sum.to_numpy() ** 2)
    se = np.sqrt(2.0 * spread / df) if df > 0 else np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # identical blocks: t = d/0
        p_matrix = scikit_posthocs.posthoc_conover_friedman(matrix.reset_index(drop=True), p_adjust=None)
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        difference = abs(rank_sum[a] - rank_sum[b])
        t = difference / se if se > 0 else (np.inf if difference > 0 else np.nan)
        rows.append({"group_a": a, "group_b": b, "rank_sum_a": rank_sum[a], "rank_sum_b": rank_sum[b],
                     "t": t, "df": df, "p": float(p_matrix.loc[a, b])})
    pairs = pd.DataFrame(rows, columns=["group_a", "group_b", "rank_sum_a", "rank_sum_b", "t", "df", "p"])
    pairs["p_adjusted"] = adjust_p_values(pairs["p"], p_adjust)
    return pairs


def pairs_to_matrix(pairs: pd.DataFrame, p_col: str, groups: list) -> pd.DataFrame:
    """The symmetric k x k matrix of a pairwise table's ``p_col`` (diagonal 1)."""
    matrix = pd.DataFrame(np.eye(len(groups)), index=list(groups), columns=list(groups))
    for _, pair in pairs.iterrows():
        matrix.loc[pair["group_a"], pair["group_b"]] = pair[p_col]
        matrix.loc[pair["group_b"], pair["group_a"]] = pair[p_col]
    return matrix
