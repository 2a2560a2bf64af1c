"""Rank-based tests for comparing methods: Kruskal-Wallis + Dunn, and Friedman + Nemenyi / Conover.

Small pure functions, DataFrame in and DataFrame (or Series) out, written from the textbook
formulas so that each can be checked against an independent implementation (scipy,
scikit-posthocs, statsmodels, published examples):

- ``kruskal_wallis`` and ``dunn`` treat every value as an independent observation of its group.
  That is the seed paper's analysis (its Tables 6/7 and Figures 8/9), kept so it can be
  reproduced; for ranking data it overstates significance, because the k ranks of one block are
  a permutation, not k independent draws.
- ``friedman`` (with Kendall's W) and its post-hoc tests ``nemenyi_friedman`` and
  ``conover_friedman`` compare the methods within blocks, which is the design of a ranking study.

Pairwise results are long tables, one row per pair (``group_a``, ``group_b``), two-sided p-values;
``pairs_to_matrix`` turns a p column into the symmetric k x k matrix (diagonal 1).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

P_ADJUST_METHODS = ("none", "bonferroni", "holm", "fdr_bh")


def adjust_p_values(p_values, method: str | None) -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons.

    ``method``: ``None``/``"none"``, ``"bonferroni"``, ``"holm"`` (Holm's step-down, controls the
    family-wise error), ``"fdr_bh"`` (Benjamini-Hochberg, controls the false discovery rate); the
    names are statsmodels'. NaN p-values stay NaN and do not count in the family.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if method in (None, "none") or m == 0:
        out[ok] = q
        return out
    if method == "bonferroni":
        out[ok] = np.minimum(q * m, 1.0)
        return out
    order = np.argsort(q, kind="stable")
    if method == "holm":
        stepped = (m - np.arange(m)) * q[order]
        adjusted = np.minimum(np.maximum.accumulate(stepped), 1.0)
    elif method == "fdr_bh":
        stepped = q[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum(np.minimum.accumulate(stepped[::-1])[::-1], 1.0)
    else:
        raise ValueError(f"unknown p-value adjustment {method!r}; choose one of {', '.join(P_ADJUST_METHODS)}")
    result = np.empty(m)
    result[order] = adjusted
    out[ok] = result
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
    """The rows with a value and a group, and how many were left out (as scipy's ``nan_policy="omit"``)."""
    values = pd.to_numeric(data[val_col], errors="coerce")
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

    z = (mean rank a - mean rank b) / sqrt((N(N+1)/12 - sum(t^3 - t)/(12(N-1))) (1/n_a + 1/n_b)),
    positive when group a has the larger values. ``p`` is two-sided, 2 P(Z >= |z|) (as
    scikit-posthocs, FSA and PMCMRplus report; R's dunn.test reports the one-sided half), and
    ``p_adjusted`` is ``p`` adjusted over the k(k-1)/2 pairs with ``p_adjust``. Rows without a value
    (NaN) are left out, as in ``kruskal_wallis``.
    """
    data, _ = omit_missing(data, val_col, group_col)
    order = _groups(data, group_col, groups)
    values = data[val_col].to_numpy(dtype=float)
    n = values.size
    ranks = pd.Series(stats.rankdata(values)).groupby(data[group_col].to_numpy())
    mean_rank, size = ranks.mean(), ranks.size()
    variance = n * (n + 1) / 12.0 - _tie_sum(values) / (12.0 * (n - 1))
    rows = []
    for a, b in itertools.combinations(order, 2):
        difference = mean_rank[a] - mean_rank[b]
        se = np.sqrt(variance * (1.0 / size[a] + 1.0 / size[b]))
        z = difference / se if se > 0 else (0.0 if difference == 0 else np.sign(difference) * np.inf)
        rows.append({"group_a": a, "group_b": b, "mean_rank_a": mean_rank[a],
                     "mean_rank_b": mean_rank[b], "z": z, "p": 2.0 * stats.norm.sf(abs(z))})
    pairs = pd.DataFrame(rows, columns=["group_a", "group_b", "mean_rank_a", "mean_rank_b", "z", "p"])
    pairs["p_adjusted"] = adjust_p_values(pairs["p"], p_adjust)
    return pairs


def block_matrix(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                 groups: list | None = None) -> pd.DataFrame:
    """The blocks x groups matrix of a complete block design (one value per block and group).

    Raises ``ValueError`` naming the blocks where a group is missing or appears twice: the
    Friedman family of tests is defined on complete blocks only.
    """
    block_cols = [block_col] if isinstance(block_col, str) else list(block_col)
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


def friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str]) -> pd.Series:
    """Friedman's test of k related samples (complete blocks), with Kendall's W as effect size.

    Values are ranked within each block (ties get mid-ranks). Returns ``chi2`` (tie-corrected
    Friedman statistic), ``df`` (k - 1), ``p`` (chi-square approximation), ``W`` (Kendall's
    coefficient of concordance, chi2 / (n (k - 1)): 0 = no agreement between blocks, 1 = every
    block orders the groups the same way), ``n_blocks`` and ``k``.
    """
    matrix = block_matrix(data, val_col, group_col, block_col).to_numpy(dtype=float)
    n, k = matrix.shape
    if k < 2:
        raise ValueError(f"Friedman's test needs at least two groups, found {k}")
    ranks = stats.rankdata(matrix, axis=1)
    rank_sums = ranks.sum(axis=0)
    chi2 = 12.0 / (n * k * (k + 1)) * np.sum(rank_sums**2) - 3.0 * n * (k + 1)
    ties = sum(_tie_sum(row) for row in matrix)
    correction = 1.0 - ties / (n * (k**3 - k))
    chi2 = chi2 / correction if correction > 0 else np.nan
    p = stats.chi2.sf(chi2, k - 1) if np.isfinite(chi2) else np.nan
    return pd.Series({"chi2": chi2, "df": k - 1, "p": p, "W": chi2 / (n * (k - 1)),
                      "n_blocks": n, "k": k})


def nemenyi_friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                     groups: list | None = None) -> pd.DataFrame:
    """Nemenyi's all-pairs test after Friedman (Demsar 2006): family-wise error controlled by the
    studentized range, so the p-values need no further adjustment.

    q = |mean rank a - mean rank b| / sqrt(k(k+1) / (6n)); p = P(Q_k,inf >= q sqrt(2)).

    ``mean_rank_a`` / ``mean_rank_b``: the mean within-block rank, 1 = the largest value of the
    block (for points: the best, as a participant's rank 1), ties mid-ranked, so it lies in 1..k.
    (Ranked the other way it would equal the mean points on complete rankings, not a rank.)
    """
    matrix = block_matrix(data, val_col, group_col, block_col, groups)
    n, k = matrix.shape
    mean_rank = pd.Series(stats.rankdata(-matrix.to_numpy(dtype=float), axis=1).mean(axis=0),
                          index=matrix.columns)
    se = np.sqrt(k * (k + 1) / (6.0 * n))
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        q = abs(mean_rank[a] - mean_rank[b]) / se
        rows.append({"group_a": a, "group_b": b, "mean_rank_a": mean_rank[a], "mean_rank_b": mean_rank[b],
                     "q": q, "p": float(stats.studentized_range.sf(q * np.sqrt(2.0), k, np.inf))})
    return pd.DataFrame(rows, columns=["group_a", "group_b", "mean_rank_a", "mean_rank_b", "q", "p"])


def conover_friedman(data: pd.DataFrame, val_col: str, group_col: str, block_col: str | list[str],
                     p_adjust: str | None = None, groups: list | None = None) -> pd.DataFrame:
    """Conover's (1999) all-pairs test after Friedman: a t test on the within-block rank sums.

    t = |R_a - R_b| / sqrt(2 (n A - sum_j R_j^2) / ((n - 1)(k - 1))) with A the sum of the squared
    within-block ranks and R_j rank sums; df = (n - 1)(k - 1); ``p`` two-sided, ``p_adjusted``
    over the pairs with ``p_adjust``. More powerful than Nemenyi, hence the adjustment.
    """
    matrix = block_matrix(data, val_col, group_col, block_col, groups)
    n, k = matrix.shape
    ranks = stats.rankdata(matrix.to_numpy(dtype=float), axis=1)
    rank_sum = pd.Series(ranks.sum(axis=0), index=matrix.columns)
    df = (n - 1) * (k - 1)
    spread = n * np.sum(ranks**2) - np.sum(rank_sum.to_numpy() ** 2)
    se = np.sqrt(2.0 * spread / df) if df > 0 else np.nan
    rows = []
    for a, b in itertools.combinations(matrix.columns, 2):
        difference = abs(rank_sum[a] - rank_sum[b])
        if se > 0:
            t = difference / se
        else:
            # Every block ranks the groups identically: differences are certain, or exactly nil.
            t = np.inf if difference > 0 else 0.0
        rows.append({"group_a": a, "group_b": b, "rank_sum_a": rank_sum[a], "rank_sum_b": rank_sum[b],
                     "t": t, "df": df, "p": 2.0 * stats.t.sf(t, df) if df > 0 else np.nan})
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
