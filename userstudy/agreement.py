"""Metric-human agreement: do the objective metrics of a benchmark run order the methods as the
study's participants do?

The run's ``results.json`` (``imac-bench run`` writes it; read here as plain JSON, bounded, since
userstudy imports nothing of the project) holds one score per method, metric and scope: ``all``
(every clip of the run) and ``identity:NAME`` (one speaker's clips). For each criterion of the study
and each metric, ``metric_agreement`` gives Kendall's tau-b (``scipy.stats.kendalltau``) between

- the participants' mean points per method (the paper's Tables 4/5; check trials and excluded
  participants left out), and
- the metric's value per method, *oriented so that larger is better* (a lower-is-better metric such
  as FGD or FVD is negated), so tau > 0 means the metric agrees with people and tau = 1 that it
  orders the methods exactly as they do,

on the same methods (those of the study that the results file scores) and the same clips: the
``all`` row uses every study trial, an ``identity:NAME`` row the trials of that speaker's clips
(``clip`` in ``study.json``, ``identity/clip_id``) against the run's score for that speaker.

Intervals: percentile bootstrap resampling **participants** with replacement (the human side is
the uncertain one; a run's metric values are fixed numbers here, their own intervals are in the
results file) and recomputing the mean points and tau each time. With k methods tau takes only
k(k-1)/2 + 1 values (k = 3: -1, -1/3, 1/3, 1) and its p-value cannot be small: read it as a
description of the order, not a test, unless the study compares many methods.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from userstudy.jsonfile import JSONFileError, read_json
from userstudy.progress import Progress
from userstudy.schema import CRITERION, METHOD, PARTICIPANT, TRIAL

RESULTS_FILE = "results.json"
MAX_RESULTS_BYTES = 32 * 1024 * 1024
# Better direction of the metric ids imac-bench writes (metrics.registry; a test keeps them equal).
# A metric not listed here is taken as higher-is-better, and the table says so.
LOWER_IS_BETTER = {"fgd": True, "div": False, "bas": False, "fvd": True, "hkc": False, "hkv": False,
                   "joins_app": True, "joins_motion": True, "drift": True, "sync_c": False, "sync_d": True,
                   "psnr": False, "ssim": False, "lpips": True, "fid": True, "csim": False}
AGREEMENT_COLUMNS = ["criterion", "scope", "metric", "label", "direction", "methods", "tau", "p", "tau_low",
                     "tau_high", "undefined_share", "bootstrap", "resampled", "participants", "methods_without_value"]


logger = logging.getLogger(__name__)


class ResultsFileError(ValueError):
    """A results file that cannot be used; the message names the file and the field."""


def read_results(path: str | os.PathLike) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, str]]:
    """The scores of a run's ``results.json``: scope -> metric -> method -> value, and metric -> label.

    A value that is null (not a number: e.g. no clip could be scored) is left out. Raises
    ``ResultsFileError`` naming the file and the field for a file that is refused (over 32 MiB,
    nested too deeply, not JSON) or not shaped like a results file.
    """
    path = Path(path)
    if path.is_dir():
        held = " (it holds results.json: give that file)" if (path / RESULTS_FILE).is_file() else ""
        raise ResultsFileError(f"{path}: is a folder, not a results file{held}")
    try:
        document = read_json(path, max_bytes=MAX_RESULTS_BYTES)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file") from None
    except JSONFileError as error:
        raise ResultsFileError(str(error)) from None
    methods = document.get("methods") if isinstance(document, dict) else None
    if not isinstance(methods, dict) or not methods:
        raise ResultsFileError(f"{path}: 'methods' must map each method to its scores (is it a run's results.json?)")
    labels = document.get("labels") if isinstance(document.get("labels"), dict) else {}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for method, entry in methods.items():
        by_scope = entry.get("scores") if isinstance(entry, dict) else None
        if not isinstance(by_scope, dict):
            raise ResultsFileError(f"{path}: methods.{method}.scores must be an object of scopes")
        for scope, metrics in by_scope.items():
            if not isinstance(metrics, dict):
                raise ResultsFileError(f"{path}: methods.{method}.scores.{scope} must be an object of metrics")
            for metric, score in metrics.items():
                value = score.get("value") if isinstance(score, dict) else None
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ResultsFileError(f"{path}: methods.{method}.scores.{scope}.{metric}.value must be a "
                                           f"number or null, got {value!r}")
                scores.setdefault(scope, {}).setdefault(metric, {})[method] = float(value)
    return scores, {m: str(v) for m, v in labels.items()}


def _cell_sums(data: pd.DataFrame, participants: list[str], methods: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per participant and method: the sum of points and the number of answers (arrays P x k)."""
    sums = data.pivot_table(index=PARTICIPANT, columns=METHOD, values="points", aggfunc="sum")
    counts = data.pivot_table(index=PARTICIPANT, columns=METHOD, values="points", aggfunc="count")
    sums = sums.reindex(index=participants, columns=methods).fillna(0.0).to_numpy()
    counts = counts.reindex(index=participants, columns=methods).fillna(0.0).to_numpy()
    return sums, counts


def _tau(human: np.ndarray, metric: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # constant input: NaN
        result = stats.kendalltau(human, metric)
    return float(result.statistic), float(result.pvalue)


def metric_agreement(data: pd.DataFrame, scores: dict[str, dict[str, dict[str, float]]],
                     labels: dict[str, str] | None = None, clips: dict[str, str] | None = None,
                     bootstrap: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Kendall's tau between the study's mean points and each metric, per criterion and scope.

    ``data``: checked rankings (``participant``, ``trial``, ``criterion``, ``method``, ``points``),
    check trials and excluded participants already left out. ``scores``: ``read_results``.
    ``clips``: trial id -> ``identity/clip_id`` (from the study file), for the per-identity rows.
    Returns one row per (criterion, scope, metric) with ``AGREEMENT_COLUMNS``: ``methods`` the
    number compared (``methods_without_value``: the study's methods the results file gives no value of this
    metric, left out of the comparison and named), ``tau`` and its ``p`` (scipy; NaN when the points or the
    metric values are all equal), ``tau_low``/``tau_high`` the percentile
    interval at ``level`` from ``bootstrap`` resamples of the participants (``undefined_share``: of
    the resamples where tau was undefined, e.g. every method with equal points, left out;
    ``participants`` the number resampled: with one the interval is undefined, below
    ``pairwise.MIN_BOOTSTRAP_PARTICIPANTS`` unstable). The bootstrap logs its progress
    (``userstudy.progress``) when it runs for more than a few seconds.
    """
    labels = labels or {}
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    scopes: list[tuple[str, pd.DataFrame]] = [("all", data)]
    if clips:
        identity = data[TRIAL].map(lambda t: clips.get(t, "").split("/")[0] if "/" in clips.get(t, "") else None)
        for name in sorted(identity.dropna().unique()):
            scopes.append((f"identity:{name}", data[identity == name]))
    participants = sorted(data[PARTICIPANT].unique())
    rng = np.random.default_rng(seed)
    draws = [np.bincount(rng.integers(0, len(participants), len(participants)), minlength=len(participants))
             for _ in range(bootstrap)]
    tasks = []
    for criterion in list(dict.fromkeys(data[CRITERION])):
        for scope, subset in scopes:
            own = subset[subset[CRITERION] == criterion]
            for metric, values in sorted(scores.get(scope, {}).items()):
                methods = [m for m in sorted(own[METHOD].unique()) if m in values]
                if len(methods) >= 2:
                    without = [m for m in sorted(own[METHOD].unique()) if m not in values]
                    tasks.append((criterion, scope, own, metric, values, methods, without))
    progress = Progress(logger, "metric-agreement bootstrap", bootstrap * len(tasks), "resamples")
    rows = []
    for criterion, scope, own, metric, values, methods, without in tasks:
        lower = LOWER_IS_BETTER.get(metric)
        oriented = np.array([-values[m] if lower else values[m] for m in methods])
        sums, counts = _cell_sums(own[own[METHOD].isin(methods)], participants, methods)
        with np.errstate(invalid="ignore", divide="ignore"):
            human = sums.sum(axis=0) / counts.sum(axis=0)
        tau, p = _tau(human, oriented)
        taus = []
        for weights in draws:
            with np.errstate(invalid="ignore", divide="ignore"):
                resampled = weights @ sums / (weights @ counts)
            taus.append(_tau(resampled, oriented)[0] if np.all(np.isfinite(resampled)) else np.nan)
            progress.advance()
        taus = np.array(taus, dtype=float)
        defined = taus[~np.isnan(taus)]
        low, high = (np.quantile(defined, [(1 - level) / 2, (1 + level) / 2]) if defined.size
                     else (np.nan, np.nan))
        rows.append({"criterion": criterion, "scope": scope, "metric": metric,
                     "label": labels.get(metric, metric),
                     "direction": "lower is better" if lower else
                     ("higher is better" if lower is False else "higher is better (assumed)"),
                     "methods": len(methods), "tau": tau, "p": p, "tau_low": low, "tau_high": high,
                     "undefined_share": float(np.isnan(taus).mean()) if bootstrap else np.nan,
                     "bootstrap": bootstrap, "resampled": "participants",
                     "participants": len(participants), "methods_without_value": ",".join(without)})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
