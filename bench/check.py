"""``imac-bench check``: a run's metric table against a committed baseline (the CI regression).

A baseline folder holds ``metrics.csv`` (the long table of ``imac-bench report``), ``report.md``
and ``tolerances.yaml``::

    protocol: imac-bench (imac-bench-metrics-1.0, 1a2b3c4d)   # must match the run's protocol label
    scopes: [all]              # which scopes are compared (all; identity:NAME; or "*" for every one)
    default: {abs: 0.0, rel: 0.0}
    metrics:                   # a value may move by max(abs, rel * |baseline|)
      FGD: {abs: 0.5, rel: 0.1}

Every baseline row of a compared scope must be in the run, within tolerance; the run's control
checks must hold. Rows the run has and the baseline lacks are listed but do not fail.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.report import load_results, markdown_report, metrics_csv
from metrics.io.files import write_text_atomic


@dataclass
class Difference:
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def read_table(path: Path) -> dict[tuple[str, str, str], dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `imac-bench report` first)")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"method", "scope", "metric", "value", "protocol"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{path}: not a metrics table (needs columns {', '.join(sorted(needed))})")
    return {(r["method"], r["scope"], r["metric"]): r for r in rows}


def read_tolerances(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the tolerances of the baseline)")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"protocol", "scopes", "default", "metrics"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for name, entry in {"default": data.get("default", {}), **(data.get("metrics") or {})}.items():
        bad = sorted(set(entry or {}) - {"abs", "rel"})
        if bad:
            raise ValueError(f"{path}: {name}: unknown tolerance key(s) {', '.join(bad)} (use abs, rel)")
    return data


def _number(text: str) -> float:
    return float("nan") if text in ("", "None", "nan") else float(text)


def allowed_change(tolerances: dict, metric: str, baseline: float) -> float:
    entry = {**(tolerances.get("default") or {}), **((tolerances.get("metrics") or {}).get(metric) or {})}
    return max(float(entry.get("abs", 0.0)), float(entry.get("rel", 0.0)) * abs(baseline))


def compare(run_table: dict, baseline_table: dict, tolerances: dict, control_checks: list[dict] | None = None
            ) -> tuple[list[Difference], list[str]]:
    """(failures, notes): moved numbers, missing rows, a protocol change, failed control checks."""
    failures: list[Difference] = []
    notes: list[str] = []
    scopes = tolerances.get("scopes") or ["all"]

    def checked(key: tuple[str, str, str]) -> bool:
        return scopes == "*" or "*" in scopes or key[1] in scopes

    compared = [k for k in baseline_table if checked(k)]
    expected_protocol = tolerances.get("protocol")
    run_protocols = {r["protocol"] for r in run_table.values()}
    if expected_protocol and run_protocols and run_protocols != {expected_protocol}:
        failures.append(Difference("protocol", f"baseline {expected_protocol!r}, run {sorted(run_protocols)}: "
                                               "numbers under another protocol are not comparable"))
    for key in compared:
        name = "/".join(key)
        if key not in run_table:
            failures.append(Difference(name, "missing from the run"))
            continue
        old, new = _number(baseline_table[key]["value"]), _number(run_table[key]["value"])
        if math.isnan(old) and math.isnan(new):
            continue
        if math.isnan(old) != math.isnan(new):
            failures.append(Difference(name, f"baseline {old:.6g}, run {new:.6g}"))
            continue
        limit = allowed_change(tolerances, key[2], old)
        if abs(new - old) > limit:
            failures.append(Difference(name, f"baseline {old:.6g}, run {new:.6g}: moved {new - old:+.4g}, "
                                             f"tolerance ±{limit:.4g}"))
    extra = sorted(k for k in set(run_table) - set(baseline_table) if checked(k))
    if extra:
        notes.append(f"{len(extra)} row(s) in the run are not in the baseline: "
                     + ", ".join("/".join(k) for k in extra[:8]) + (" ..." if len(extra) > 8 else ""))
    for check in control_checks or []:
        if check["holds"] is False and check.get("gating", True):
            failures.append(Difference(f"control check {check['metric']}",
                                       f"expected {check['expected']}, got {check['low']:.4g} vs {check['high']:.4g}"))
    return failures, notes


def check_run(run: str | Path, baseline: str | Path) -> tuple[list[Difference], list[str]]:
    run, baseline = Path(run), Path(baseline)
    results = load_results(run)
    write_text_atomic(run / "metrics.csv", metrics_csv(results))
    return compare(read_table(run / "metrics.csv"), read_table(baseline / "metrics.csv"),
                   read_tolerances(baseline / "tolerances.yaml"), results.get("control_checks"))


DEFAULT_TOLERANCES = """\
# Tolerances of this baseline: a number may move by max(abs, rel * |baseline|) before
# `imac-bench check` fails. The toy benchmark is deterministic on one machine; these margins absorb
# the differences of other CPUs and library versions, not changes to a model or a metric.
protocol: {protocol}
scopes: [all]
default: {{abs: 0.0, rel: 0.05}}
metrics:
  FGD: {{abs: 0.05, rel: 0.10}}
  Diversity: {{abs: 0.05, rel: 0.10}}
  BAS: {{abs: 0.02, rel: 0.10}}
  BAS (real): {{abs: 0.02, rel: 0.10}}
  FVD: {{abs: 5.0, rel: 0.10}}
  FVD*: {{abs: 5.0, rel: 0.10}}
"""


def update_baseline(run: str | Path, baseline: str | Path) -> Path:
    """Copy a run's table and report into ``baseline`` (tolerances.yaml is kept, or written once)."""
    results = load_results(run)
    baseline = Path(baseline)
    baseline.mkdir(parents=True, exist_ok=True)
    write_text_atomic(baseline / "metrics.csv", metrics_csv(results))
    write_text_atomic(baseline / "report.md", markdown_report(results, []))
    tolerances = baseline / "tolerances.yaml"
    if not tolerances.is_file():
        write_text_atomic(tolerances, DEFAULT_TOLERANCES.format(protocol=json.dumps(results["protocol_label"])))
    return baseline
