"""The typed results of a benchmark run: ``results.json``, written once by the runner, read by
``imac-bench report`` and ``imac-bench check`` (nothing parses a table back).

Document (``schema: "imac-bench-results"``, ``schema_version: 2``)::

    bench_version, package_version
    run            settings: out, data, seed, identities, device, config, test_clips
    protocol, protocol_label
    metrics        the metric ids scored (fgd, div, bas, fvd); labels: id -> display label (FVD* ...)
    networks       pose extractor id, skeleton autoencoder (path, checkpoint and training-data hashes), I3D
    methods        name -> MethodResult (in table order: the methods, then gt, noise-floor, static, shuffled)
    control_checks the orderings the controls must show (ControlCheck)
    paired         differences between methods paired on the same test clips (metrics.differences)
    timings_s      seconds per step, each counted once: a shared model trained inside a method's step (the
                   tiny VAE, when the first method asks for it) under its own key (``vae``), not in the
                   method's ``generate:<name>``; ``total`` the whole run
    environment

Metrics are keyed by ids, never by display names; scopes are ``all`` and ``identity:NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metrics.inputs import InputReport
from metrics.io.bounded import read_json
from metrics.io.files import write_json_atomic
from metrics.results import (METRICS, SCHEMA_VERSION, Provenance, Scores, metric_label, number, scores_from_dict,
                             scores_to_dict)

BENCH_SCHEMA = "imac-bench-results"
KINDS = ("model", "external", "control", "reference")


class OldSchemaError(ValueError):
    """A results file or baseline written by an earlier version (display names as keys, no schema)."""


def _clean(value: Any) -> Any:
    """NaN and inf -> None, recursively (JSON has neither)."""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class MethodResult:
    """One row of the tables: a method (or control) with its scores and how they were made."""

    name: str
    label: str
    kind: str                                   # model | external | control | reference
    scores: Scores = field(default_factory=dict)
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    inputs: InputReport = field(default_factory=InputReport)
    facts: Mapping[str, Any] = field(default_factory=dict)         # what the method said it did (method.json)
    generation: Mapping[str, Any] = field(default_factory=dict)    # per clip: seed, seconds, conversions
    skipped: Mapping[str, str] = field(default_factory=dict)       # clips not generated (--skip-missing)
    unscored: Mapping[str, str] = field(default_factory=dict)      # clips the metrics could not score; "*": none
    note: str = ""                                                  # what a control's row is

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "note": self.note,
                "scores": scores_to_dict(self.scores),
                "provenance": {m: card.to_dict() for m, card in self.provenance.items()},
                "inputs": self.inputs.to_dict(), "facts": _clean(dict(self.facts)),
                "generation": _clean(dict(self.generation)), "skipped": dict(self.skipped),
                "unscored": dict(self.unscored)}

    @classmethod
    def from_dict(cls, data: Mapping, where: str) -> MethodResult:
        if data.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data.get('kind')!r}")
        return cls(name=data["name"], label=data["label"], kind=data["kind"], note=data.get("note", ""),
                   scores=scores_from_dict(data.get("scores"), f"{where}: scores"),
                   provenance={m: Provenance.from_dict(c, f"{where}: provenance: {m}")
                               for m, c in (data.get("provenance") or {}).items()},
                   inputs=InputReport.from_dict(data.get("inputs")), facts=data.get("facts") or {},
                   generation=data.get("generation") or {}, skipped=data.get("skipped") or {},
                   unscored=data.get("unscored") or {})


@dataclass(frozen=True)
class ControlCheck:
    """An ordering the controls must show (``low`` below ``high`` on ``metric``), and whether it holds.

    ``holds`` is None when a method in it has no score (its row is flagged); a check that is not
    ``gating`` is reported but does not fail a run (``note`` says why).
    """

    id: str                 # stable: "<metric>:<low><op><high>", e.g. "fgd:noise-floor<static"
    metric: str
    low: str                # method names
    high: str
    strict: bool
    low_value: float
    high_value: float
    holds: bool | None
    gating: bool = True
    note: str = ""

    @property
    def expected(self) -> str:
        return f"{self.low} {'<' if self.strict else '<='} {self.high}"

    @property
    def fails(self) -> bool:
        """Whether this check fails the run."""
        return self.holds is False and self.gating

    def to_dict(self) -> dict:
        return {"id": self.id, "metric": self.metric, "low": self.low, "high": self.high, "strict": self.strict,
                "expected": self.expected, "low_value": number(self.low_value),
                "high_value": number(self.high_value), "holds": self.holds, "gating": self.gating,
                "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping) -> ControlCheck:
        return cls(data["id"], data["metric"], data["low"], data["high"], bool(data["strict"]),
                   float("nan") if data.get("low_value") is None else float(data["low_value"]),
                   float("nan") if data.get("high_value") is None else float(data["high_value"]),
                   data.get("holds"), bool(data.get("gating", True)), data.get("note", ""))


@dataclass
class BenchResults:
    """The whole ``results.json``."""

    run: Mapping[str, Any]
    protocol: Mapping[str, Any]
    protocol_label: str
    metrics: tuple[str, ...]
    methods: dict[str, MethodResult]
    networks: Mapping[str, Any] = field(default_factory=dict)
    control_checks: list[ControlCheck] = field(default_factory=list)
    paired: list[Mapping[str, Any]] = field(default_factory=list)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    bench_version: str = ""
    package_version: str = ""
    schema_version: int = SCHEMA_VERSION

    def label(self, metric: str) -> str:
        """The display label of a metric id in this run (``FVD*`` for the untrained I3D; a star too for
        a hook metric computed by a stand-in network)."""
        i3d = self.networks.get("i3d") or {}
        hook = (self.networks.get("clip_metrics") or {}).get(metric) or {}
        return metric_label(metric, i3d.get("pretrained", True) if i3d else True, hook.get("pretrained"))

    def value(self, method: str, metric: str, scope: str = "all") -> float:
        """A method's value (NaN when it has none)."""
        score = self.methods[method].scores.get(scope, {}).get(metric) if method in self.methods else None
        return float("nan") if score is None else score.value

    def scored_metrics(self) -> list[str]:
        """The metric ids some method has a score for, in the canonical order."""
        found = {m for method in self.methods.values() for table in method.scores.values() for m in table}
        return [m for m in METRICS if m in found]

    def failed_checks(self) -> list[ControlCheck]:
        return [c for c in self.control_checks if c.fails]

    def to_dict(self) -> dict:
        return {"schema": BENCH_SCHEMA, "schema_version": self.schema_version, "bench_version": self.bench_version,
                "package_version": self.package_version, "run": _clean(dict(self.run)),
                "protocol": dict(self.protocol), "protocol_label": self.protocol_label,
                "metrics": list(self.metrics), "labels": {m: self.label(m) for m in self.metrics},
                "networks": dict(self.networks),
                "methods": {name: method.to_dict() for name, method in self.methods.items()},
                "control_checks": [c.to_dict() for c in self.control_checks], "paired": _clean(list(self.paired)),
                "timings_s": dict(self.timings_s), "environment": dict(self.environment)}

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "results.json") -> BenchResults:
        check_bench_schema(data, where)
        return cls(run=data["run"], protocol=data["protocol"], protocol_label=data["protocol_label"],
                   metrics=tuple(data["metrics"]),
                   methods={name: MethodResult.from_dict(m, f"{where}: methods: {name}")
                            for name, m in data["methods"].items()},
                   networks=data.get("networks") or {},
                   control_checks=[ControlCheck.from_dict(c) for c in data.get("control_checks") or []],
                   paired=list(data.get("paired") or []), timings_s=data.get("timings_s") or {},
                   environment=data.get("environment") or {}, bench_version=data.get("bench_version", ""),
                   package_version=data.get("package_version", ""), schema_version=data["schema_version"])


def check_bench_schema(data: Any, where: str) -> None:
    """Raise ``OldSchemaError`` (a file of an earlier version) or ``ValueError`` unless ``data`` is a
    results document of this schema version."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: not a JSON object")
    if data.get("schema") != BENCH_SCHEMA or data.get("schema_version") != SCHEMA_VERSION:
        found = (f"schema {data.get('schema')!r} version {data.get('schema_version')!r}" if "schema" in data
                 else f"no schema field (bench {data.get('bench_version', '?')}: results keyed by display names "
                      "such as 'FVD*' and 'BAS (real)', controls gt-against-itself)")
        raise OldSchemaError(f"{where}: written by an older imac-bench ({found}); this version reads "
                             f"{BENCH_SCHEMA!r} version {SCHEMA_VERSION}. Run `imac-bench run` again with the same "
                             "--out (finished videos are kept, only the scoring runs again)")


def read_results(path: str | Path) -> BenchResults:
    """``results.json`` as ``BenchResults``; errors name the file (``OldSchemaError`` for an older one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `imac-bench run --out {path.parent}` first)")
    return BenchResults.from_dict(read_json(path), str(path))   # not JSON, too large or deep: named


def write_results(path: str | Path, results: BenchResults) -> Path:
    """Write ``results`` atomically (NaN as null)."""
    return write_json_atomic(path, results.to_dict())
