"""Heatmaps of pairwise p-values, one panel per criterion, in one PNG: Dunn's (the paper's Figures
8/9) and the within-subject post-hoc test's (Nemenyi or Conover after Friedman) drawn alike.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, so no global backend or figure
state is touched). scikit-posthocs' ``sign_plot`` is not used: it draws with seaborn at fixed
figure coordinates and cannot lay out a grid of criteria.

The colour scale is the usual significance bins, a sequential blue ramp that reads the same in
grey and to colour-blind readers, with every p-value also printed in its cell.
"""

from __future__ import annotations

import io
import math
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from userstudy.analysis import StudyAnalysis
from userstudy.nonparametric import pairs_to_matrix

# The conventional thresholds the heatmaps shade below the study's alpha, darkest first; the last bin,
# p >= alpha, is "n.s." (``p_bins``).
THRESHOLDS = (0.001, 0.01, 0.05)
SIGNIFICANT_COLOURS = ("#08306b", "#2171b5", "#6baed6", "#9ecae1", "#c6dbef")
NOT_SIGNIFICANT_COLOUR = "#eef3f8"
DARK_BINS = 2  # the first two colours need white text


def p_bins(alpha: float = 0.05) -> tuple[tuple[float, ...], tuple[str, ...], tuple[str, ...]]:
    """The heatmaps' bins for a study tested at ``alpha``: edges (0, the conventional thresholds below
    alpha, alpha, 1), a label per bin ("p < 0.01", ..., "p ≥ alpha (n.s.)") and a colour per bin, so that
    a cell shaded significant is one the report calls significant (before, the bins were fixed at 0.05:
    with ``--alpha 0.01`` a p of 0.021 was shaded "p < 0.05" and the report said "no")."""
    edges = tuple(t for t in THRESHOLDS if t < alpha) + (alpha,)
    labels = tuple(f"p < {t:g}" for t in edges) + (f"p ≥ {alpha:g} (n.s.)",)
    colours = SIGNIFICANT_COLOURS[:len(edges)] + (NOT_SIGNIFICANT_COLOUR,)
    return (0.0, *edges, 1.0), labels, colours


# p-values below this print as "< 1e-15": the studentized range's tail (Nemenyi) is 1 - cdf in doubles, so
# values under ~1e-15 are rounding (multiples of 1.1e-16) and 0.0 is an underflow, not a p of 0
P_FLOOR = 1e-15


def format_p(p: float) -> str:
    """Short p for a cell: 0.032, 4.1e-05, < 1e-15 (``P_FLOOR``)."""
    if np.isnan(p):
        return "n/a"
    if p < P_FLOOR:
        return f"< {P_FLOOR:.0e}"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def dunn_heatmaps(analysis: StudyAnalysis) -> bytes:
    """PNG bytes: a k x k heatmap of the Dunn p-values per criterion, method names on both axes."""
    return pairwise_heatmaps(analysis, analysis.dunn, "p_adjusted",
                             f"{analysis.dunn_label()} (pairwise, per criterion)")


def posthoc_heatmaps(analysis: StudyAnalysis) -> bytes:
    """PNG bytes: the same for the post-hoc test after Friedman (blocks = participant x trial)."""
    return pairwise_heatmaps(analysis, analysis.friedman_posthoc, analysis.posthoc_p_column(),
                             f"{analysis.posthoc_label()} (within-subject, per criterion)")


def pairwise_heatmaps(analysis: StudyAnalysis, pairs_by_criterion: dict, p_col: str, title: str) -> bytes:
    """PNG bytes: a k x k heatmap of ``p_col`` of each criterion's pairs, method names on both axes."""
    criteria = analysis.criteria
    columns = 2 if len(criteria) == 4 else min(len(criteria), 3)
    rows = math.ceil(len(criteria) / columns)
    k_max = max(len(analysis.methods_of(c)) for c in criteria)
    label_room = 0.09 * max(len(m) for m in analysis.methods)
    side = 0.75 * k_max + 1.2 + label_room
    figure = Figure(figsize=(columns * side + 1.6, rows * side + 0.9), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    bins, labels, colours = p_bins(analysis.alpha)
    cmap, norm = ListedColormap(colours), BoundaryNorm(bins, len(colours))
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for ax, criterion in zip(axes.ravel(), criteria):
        methods = analysis.methods_of(criterion)
        matrix = pairs_to_matrix(pairs_by_criterion[criterion], p_col, methods).to_numpy(dtype=float)
        shown = np.ma.masked_array(matrix, mask=np.eye(len(methods), dtype=bool))
        image = ax.imshow(shown, cmap=cmap, norm=norm)
        ax.set_facecolor("white")
        for i in range(len(methods)):
            for j in range(len(methods)):
                if i == j:
                    ax.text(j, i, "–", ha="center", va="center", color="0.5", fontsize=9)
                    continue
                dark = not np.isnan(matrix[i, j]) and np.digitize(matrix[i, j], bins[1:-1]) < DARK_BINS
                ax.text(j, i, format_p(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(methods)), methods)
        ax.set_xticks(np.arange(len(methods) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(methods) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        ax.set_title(criterion, fontsize=10)
    for ax in axes.ravel()[len(criteria):]:
        ax.set_visible(False)
    colourbar = figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7, ticks=[
        (a + b) / 2 for a, b in zip(bins[:-1], bins[1:])], spacing="uniform")
    colourbar.ax.set_yticklabels(labels, fontsize=8)
    colourbar.ax.invert_yaxis()
    # each line wrapped to the figure's width (about 11 characters an inch at 11 pt): a one-criterion figure
    # is narrow, and its title used to run off both edges
    per_line = max(24, int(figure.get_figwidth() * 11))
    figure.suptitle("\n".join(textwrap.fill(line, per_line, break_on_hyphens=False)
                               for line in (title, analysis.sample())), fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
