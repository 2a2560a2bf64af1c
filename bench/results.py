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
    timings_s      seconds per step of the invocation that wrote the file (a resumed run: only what it did,
                   steps found done 0; a method's training time stays in its facts), each counted once: a shared model trained inside a method's step (the
                   tiny VAE, when the first method asks for it) under its own key (``vae``), not in the
                   method's ``generate:<name>``; the trainings a CPU run does first, side by side, under
                   ``side_by_side`` (``bench.side_by_side``; their own seconds are in the facts); ``total`` the whole run
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
from metrics.io.fields import real, require_object, schema_problem, typed_field
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
    # generated clips in which no body was found: left out of the skeleton metrics (FGD, Div, BAS) only
    no_body: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "note": self.note,
                "scores": scores_to_dict(self.scores),
                "provenance": {m: card.to_dict() for m, card in self.provenance.items()},
                "inputs": self.inputs.to_dict(), "facts": _clean(dict(self.facts)),
                "generation": _clean(dict(self.generation)), "skipped": dict(self.skipped),
                "unscored": dict(self.unscored), **({"no_body": dict(self.no_body)} if self.no_body else {})}

    @classmethod
    def from_dict(cls, data: Mapping, where: str) -> MethodResult:
        if require_object(data, where).get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data.get('kind')!r}")
        return cls(name=typed_field(data, "name", str, where), label=typed_field(data, "label", str, where),
                   kind=data["kind"], note=typed_field(data, "note", str, where, ""),
                   scores=scores_from_dict(typed_field(data, "scores", dict, where, {}), f"{where}: scores"),
                   provenance={m: Provenance.from_dict(c, f"{where}: provenance: {m}")
                               for m, c in typed_field(data, "provenance", dict, where, {}).items()},
                   inputs=InputReport.from_dict(typed_field(data, "inputs", dict, where, None), f"{where}: inputs"),
                   facts=typed_field(data, "facts", dict, where, {}),
                   generation=typed_field(data, "generation", dict, where, {}),
                   skipped=_texts(data, "skipped", where), unscored=_texts(data, "unscored", where),
                   no_body=_texts(data, "no_body", where))


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
    def from_dict(cls, data: Mapping, where: str = "control check") -> ControlCheck:
        text = {key: typed_field(data, key, str, where) for key in ("id", "metric", "low", "high")}
        return cls(text["id"], text["metric"], text["low"], text["high"], typed_field(data, "strict", bool, where),
                   real(data.get("low_value"), f"{where}: low_value"),
                   real(data.get("high_value"), f"{where}: high_value"),
                   typed_field(data, "holds", bool, where, None), typed_field(data, "gating", bool, where, True),
                   typed_field(data, "note", str, where, ""))


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
        """The display label of a metric id in this run (``FVD*`` for the untrained I3D or an I3D file that is
        not the published one; a star too for a hook metric computed by a stand-in network or unpublished
        weights)."""
        i3d = self.networks.get("i3d") or {}
        hook = (self.networks.get("clip_metrics") or {}).get(metric) or {}
        # (published False: trained weights, but not the published file: starred as a stand-in is)
        i3d_comparable = i3d.get("pretrained", True) and i3d.get("published") is not False if i3d else True
        return metric_label(metric, i3d_comparable, False if hook.get("published") is False else hook.get("pretrained"))

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
        metrics = typed_field(data, "metrics", list, where)
        unknown = [m for m in metrics if not isinstance(m, str) or m not in METRICS]
        if unknown:
            raise ValueError(f"{where}: metrics: unknown metric id {unknown[0]!r} (ids: {', '.join(METRICS)})")
        run = typed_field(data, "run", dict, where)
        for key, kind in (("data", str), ("seed", int), ("device", str)):
            typed_field(run, key, kind, f"{where}: run")
        for key, items in (("test_clips", typed_field(run, "test_clips", list, f"{where}: run")),
                           ("identities", typed_field(run, "identities", list, f"{where}: run", []))):
            if not all(isinstance(item, str) for item in items):
                raise ValueError(f"{where}: run: {key}: expected a list of strings")
        typed_field(run, "config", dict, f"{where}: run", None)
        _check_networks(typed_field(data, "networks", dict, where, {}), f"{where}: networks")
        paired = typed_field(data, "paired", list, where, [])
        for i, entry in enumerate(paired):
            _check_paired(entry, f"{where}: paired[{i}]")
        timings = typed_field(data, "timings_s", dict, where, {})
        return cls(run=run, protocol=typed_field(data, "protocol", dict, where),
                   protocol_label=typed_field(data, "protocol_label", str, where), metrics=tuple(metrics),
                   methods=_methods(typed_field(data, "methods", dict, where), f"{where}: methods"),
                   networks=data.get("networks") or {},
                   control_checks=[ControlCheck.from_dict(c, f"{where}: control_checks[{i}]")
                                   for i, c in enumerate(typed_field(data, "control_checks", list, where, []))],
                   paired=list(paired), timings_s={k: real(v, f"{where}: timings_s: {k}") for k, v in timings.items()},
                   environment=typed_field(data, "environment", dict, where, {}),
                   bench_version=typed_field(data, "bench_version", str, where, ""),
                   package_version=typed_field(data, "package_version", str, where, ""),
                   schema_version=data["schema_version"])


def _methods(data: Mapping, where: str) -> dict[str, MethodResult]:
    """The rows by method name; a row whose own ``name`` is another than its key is refused."""
    methods = {}
    for key, value in data.items():
        method = MethodResult.from_dict(value, f"{where}: {key}")
        if method.name != key:
            raise ValueError(f"{where}: {key}: name is {method.name!r}, not the row's key {key!r}")
        methods[key] = method
    return methods


def _check_paired(entry: Any, where: str) -> None:
    """One paired difference (``metrics.differences``): the methods, metric and scope named by strings,
    the estimate and its interval numbers (or null), the clip count an integer."""
    require_object(entry, where)
    for key in ("a", "b", "metric", "scope"):
        typed_field(entry, key, str, where)
    for key in ("estimate", "low", "high"):
        real(entry.get(key), f"{where}: {key}")
    pairs = typed_field(entry, "pairs", int, where, 0)
    if pairs < 0:
        raise ValueError(f"{where}: pairs: expected a count of clips (0 or more), got {pairs}")
    typed_field(entry, "confidence", float, where, None)
    typed_field(entry, "sentence", str, where, "")


def _check_networks(networks: Mapping, where: str) -> None:
    """The ``networks`` fields the report prints, checked: each network an object (I3D's with its
    ``feature_id`` and ``pretrained``), the pose extractor a string."""
    typed_field(networks, "pose_extractor", str, where, None)
    i3d = typed_field(networks, "i3d", dict, where, None)
    if i3d is not None:
        typed_field(i3d, "feature_id", str, f"{where}: i3d")
        typed_field(i3d, "pretrained", bool, f"{where}: i3d")
    autoencoder = typed_field(networks, "skeleton_autoencoder", dict, where, None)
    if autoencoder is not None:
        typed_field(autoencoder, "checkpoint_hash", str, f"{where}: skeleton_autoencoder")
    for metric, card in typed_field(networks, "clip_metrics", dict, where, {}).items():
        typed_field(require_object(card, f"{where}: clip_metrics: {metric}"), "pretrained", bool,
                    f"{where}: clip_metrics: {metric}", None)
    _texts(networks, "unavailable_metrics", where)


def _texts(data: Mapping, key: str, where: str) -> dict[str, str]:
    """A field mapping clip ids to reasons (``skipped``, ``unscored``, ``no_body``), checked."""
    table = typed_field(data, key, dict, where, {})
    bad = [k for k, v in table.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{where}: {key}: {bad[0]}: expected a string (the reason), got {table[bad[0]]!r}")
    return dict(table)


def check_bench_schema(data: Any, where: str) -> None:
    """Raise ``OldSchemaError`` (a file of an earlier version) or ``ValueError`` unless ``data`` is a
    results document of this schema version."""
    problem = schema_problem(data, BENCH_SCHEMA, SCHEMA_VERSION)
    if problem and problem != "older":
        raise ValueError(f"{where}: {problem}")
    if problem:
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
