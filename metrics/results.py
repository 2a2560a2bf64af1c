"""Typed results of the metrics: a score per metric and scope, a provenance card per metric, and the
document ``python -m metrics compute`` writes (``EvaluationResult``, schema-versioned JSON).

Metrics are keyed by stable ids (``fgd``, ``div``, ``bas``, ``fvd``, ``hkc``, ... : the ids of
``metrics.registry.REGISTRY``, the names of ``--metrics``); what a table shows is a separate display
label (``metric_label``: ``FVD*`` for an FVD from an untrained I3D, which is never comparable with
published FVDs; a hook metric computed by a stand-in network likewise gets a star). Scopes are ``all`` and
``identity:NAME``. A value that is not a number (NaN: no interval from one clip) is written as null.

Every score's provenance card says what produced it: the protocol and the preset that set the
metric's fields, the network and the hash of its weights, how the input was resized or resampled,
frames per clip or window, N on each side, the covariance divisor and the square-root route of a
Fréchet distance, the package versions, and what the inputs needed (``metrics.inputs``).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import math
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from metrics.inputs import InputReport
from metrics.io.bounded import read_json
from metrics.io.fields import real, require_object, schema_problem, typed_field
from metrics.io.files import write_json_atomic, write_text_atomic
from metrics.registry import METRIC_IDS, REGISTRY, MetricSpec

SCHEMA_VERSION = 2
EVALUATION_SCHEMA = "metrics-evaluation"
# Ids, labels and directions of every metric: metrics.registry (one table), re-exported here.
METRICS: dict[str, MetricSpec] = REGISTRY

# How a Fréchet distance's trace term is computed (metrics.frechet.trace_sqrt_product).
SQRT_METHOD = ("tr((S1 S2)^1/2) as the sum of square roots of eigvalsh(L^T S2 L), S1 = L L^T (Cholesky; "
               "the symmetric square root of S1 when it is singular), negative eigenvalues clipped")
COVARIANCE = {"unbiased": "unbiased, divided by N - 1", "biased": "biased, divided by N"}
PACKAGES = ("imac-bench", "numpy", "scipy", "torch", "librosa", "av", "onnxruntime", "safetensors")


def metric_label(metric: str, pretrained_i3d: bool | None = True, pretrained: bool | None = None) -> str:
    """The display label of a metric id: ``FVD*`` for an FVD whose I3D is not the published one
    (``pretrained_i3d`` False: a stand-in, or a file that is not the published one); ``<label>*`` for a
    hook metric whose network is a stand-in or not the published file (``pretrained`` False)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric id {metric!r}; ids: {', '.join(METRIC_IDS)}")
    if (metric == "fvd" and pretrained_i3d is False) or (metric != "fvd" and pretrained is False):
        return METRICS[metric].label + "*"
    return METRICS[metric].label


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of the installed packages a number depends on (absent ones left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


# The packages whose source a revision describes (``source_revision``'s "-dirty").
SOURCE_PACKAGES = ("metrics", "imac", "bench", "userstudy")


@lru_cache(maxsize=1)
def source_revision() -> str | None:
    """The git commit of the project source this process runs (``checkout_revision`` of the folder
    holding the packages)."""
    return checkout_revision(Path(__file__).resolve().parent.parent)


def checkout_revision(root: Path) -> str | None:
    """The git commit checked out at ``root``, ``git describe --dirty``'s way: the full hash, with
    "-dirty" when a tracked file of ``SOURCE_PACKAGES`` differs from it; None when ``root`` is not the top
    of a git checkout (an installed wheel, whose version is in ``package_versions``, even one inside
    another checkout), or git is absent or refuses the folder."""
    root = Path(root).resolve()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    commit = git("rev-parse", "--verify", "HEAD")
    if not top or not commit or Path(top).resolve() != root:      # (a wheel inside another checkout: not ours)
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PACKAGES)
    return commit + ("-dirty" if changed else "") if changed is not None else commit


def produced_by(command: Sequence[str] | str | None = None) -> dict[str, str | None]:
    """What a result records about the run that produced it, taken when the run starts: ``command`` (the
    command line, quoted as a shell reads it; default: this process's ``sys.argv``), ``started_utc`` (ISO
    8601, seconds) and ``revision`` (``source_revision``)."""
    if command is None:
        command = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    return {"command": command if isinstance(command, str) else shlex.join(command),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "revision": source_revision()}


def number(value: Any) -> float | None:
    """A float for JSON: NaN and inf become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _require(data: Mapping, key: str, where: str) -> Any:
    if key not in require_object(data, where):
        raise ValueError(f"{where}: missing field {key!r}")
    return data[key]


@dataclass(frozen=True)
class Score:
    """One metric's value on one scope, its 95% interval (NaN when none can be given) and counts."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    counts: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()      # e.g. too few clips for the feature dimension (metrics.stats)

    @property
    def clips(self) -> int | None:
        """The clips the value rests on (generated clips for a two-sided metric)."""
        return self.counts.get("n_fake_clips", self.counts.get("n_clips"))

    @property
    def interval_note(self) -> str:
        """Why there is no interval ("" when there is one)."""
        if not (math.isnan(self.ci_low) or math.isnan(self.ci_high)):
            return ""
        sides = [n for k, n in self.counts.items() if k in ("n_clips", "n_real_clips", "n_fake_clips")]
        fewest = min(sides) if sides else None
        if fewest is not None and fewest < 2:
            return f"no interval from {fewest} clip{'' if fewest == 1 else 's'}"
        return "no interval: the statistic is undefined on a subset of the clips"

    def to_dict(self) -> dict:
        data = {"value": number(self.value), "ci_low": number(self.ci_low), "ci_high": number(self.ci_high),
                "counts": dict(self.counts)}
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "score") -> Score:
        counts = typed_field(data, "counts", dict, where, {})
        bad = [k for k, v in counts.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(f"{where}: counts: {bad[0]}: expected a count (an integer, 0 or more), "
                             f"got {counts[bad[0]]!r}")
        warnings = typed_field(data, "warnings", list, where, [])
        if not all(isinstance(w, str) for w in warnings):
            raise ValueError(f"{where}: warnings: expected a list of strings")
        low, high = real(data.get("ci_low"), f"{where}: ci_low"), real(data.get("ci_high"), f"{where}: ci_high")
        if low > high:        # False with a NaN (null) bound
            raise ValueError(f"{where}: ci_low {low:g} is above ci_high {high:g}")
        return cls(real(_require(data, "value", where), f"{where}: value"), low, high,
                   {str(k): v for k, v in counts.items()}, tuple(warnings))


def decimals(value: float | None, significant: int = 4, most: int = 4) -> int:
    """Decimal places that show ``value`` to ``significant`` significant digits, at most ``most``.

    0 from 10**(significant - 1) up (1358.5 -> 0: "1358"), ``most`` for 0, NaN and values below
    10**(significant - 1 - most) (0.0001 -> 4: "0.0001")."""
    if value is None or not math.isfinite(value) or value == 0:
        return most
    return int(min(most, max(0, significant - 1 - math.floor(math.log10(abs(value))))))


def format_score(score: Score, significant: int = 4) -> tuple[str, str]:
    """A score as (value, interval) texts with ONE precision: the interval's bounds take the value's
    decimals (``decimals``), so a cell never mixes "251.0" with "92.990". Without an interval the
    second text says why (``Score.interval_note``). A NaN value is "n/a"."""
    value = number(score.value)
    if value is None:
        return "n/a", ""
    places = decimals(value, significant)
    note = score.interval_note
    interval = f"({note})" if note else f"[{score.ci_low:.{places}f}, {score.ci_high:.{places}f}]"
    return f"{value:.{places}f}", interval


Scores = dict[str, dict[str, Score]]      # scope -> metric id -> Score


def scores_to_dict(scores: Scores) -> dict:
    return {scope: {metric: score.to_dict() for metric, score in table.items()} for scope, table in scores.items()}


def scores_from_dict(data: Mapping | None, where: str) -> Scores:
    scores: Scores = {}
    for scope, table in (require_object(data, where) if data is not None else {}).items():
        require_object(table, f"{where}: {scope}")
        unknown = [m for m in table if m not in METRICS]
        if unknown:
            raise ValueError(f"{where}: {scope}: unknown metric id(s) {', '.join(map(repr, unknown))} (ids: "
                             f"{', '.join(METRIC_IDS)}; display names such as 'FVD*' are not keys)")
        scores[scope] = {m: Score.from_dict(entry, f"{where}: {scope}: {m}") for m, entry in table.items()}
    return scores


@dataclass(frozen=True)
class Provenance:
    """What produced a metric's number: the card printed beside it."""

    metric: str
    label: str                          # display label (FVD* for the untrained I3D)
    protocol: str                       # the protocol's label (name, version, digest)
    preset: str                         # metrics.protocol.preset_of(protocol, metric)
    features: str                       # what the distance or score is computed on
    weights: str | None = None          # the network behind the features (path or feature id)
    weights_hash: str | None = None     # the checkpoint hash (autoencoder) or weight file hash (I3D)
    pretrained: bool | None = None      # I3D: the published weights (False: FVD*)
    published: bool | None = None       # False: trained weights whose file is not the published one (starred)
    pose_extractor: str | None = None
    training_data_hash: str | None = None   # the autoencoder's training data
    input: str = ""                     # resize / crop / resampling of the metric's input
    frames_per_clip: int | None = None  # FVD: frames per I3D clip; FGD and Div: frames per window
    n_real: int | None = None           # clips on the real side
    n_fake: int | None = None           # clips on the generated side
    covariance: str | None = None       # Fréchet distances: the covariance divisor
    sqrt_method: str | None = None      # Fréchet distances: how the matrix square root's trace is taken
    interval: str = ""                  # what the confidence interval resamples (metrics.intervals)
    packages: Mapping[str, str] = field(default_factory=dict)
    conversions: tuple[str, ...] = ()   # what the inputs needed: converted or allowed (metrics.inputs)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["packages"], data["conversions"] = dict(self.packages), list(self.conversions)
        if self.published is None:      # (no published file to check against: left out, as results before it read)
            del data["published"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "provenance") -> Provenance:
        unknown = sorted(set(require_object(data, where)) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        for name in ("metric", "label", "protocol", "preset", "features"):
            _require(data, name, where)
        values = {}
        for name, spec in cls.__dataclass_fields__.items():
            if name not in data:
                continue
            kind = {"str": str, "int": int, "bool": bool, "Mapping[str, str]": dict, "tuple[str, ...]": list}[
                spec.type.removesuffix(" | None")]
            values[name] = typed_field(data, name, kind, where, None if spec.type.endswith("| None") else spec.default)
        values["packages"] = dict(typed_field(data, "packages", dict, where, {}))
        values["conversions"] = tuple(typed_field(data, "conversions", list, where, []))
        return cls(**values)

    def summary(self) -> str:
        """One line: preset, weights, input, frames, N, covariance."""
        parts = [f"preset {self.preset}"]
        if self.weights:
            parts.append(f"weights {self.weights}" + (f" ({self.weights_hash})" if self.weights_hash
                                                     and self.weights_hash not in self.weights else ""))
        if self.pretrained is False:
            parts.append("UNTRAINED stand-in: not comparable with published numbers")
        elif self.published is False:
            parts.append("NOT the published weight file (its hash differs): not comparable with published numbers")
        if self.frames_per_clip:
            parts.append(f"{self.frames_per_clip} frames per {'clip' if self.metric == 'fvd' else 'window'}")
        if self.n_real is not None or self.n_fake is not None:
            parts.append(f"N real {self.n_real if self.n_real is not None else '-'} / generated "
                         f"{self.n_fake if self.n_fake is not None else '-'}")
        if self.covariance:
            parts.append(f"covariance {self.covariance}")
        if self.input:
            parts.append(self.input)
        return "; ".join(parts)


@dataclass(frozen=True)
class SkippedClip:
    """A clip left out (``on_error="skip"``), and why; with ``metrics``, left out of those metrics only (a
    generated clip in which no body was found: of the skeleton metrics), scored on the others."""

    side: str
    clip: str
    file: str
    reason: str
    metrics: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = {"side": self.side, "clip": self.clip, "file": self.file, "reason": self.reason}
        return {**data, "metrics": list(self.metrics)} if self.metrics else data

    @classmethod
    def from_dict(cls, data: Mapping) -> SkippedClip:
        metrics = data.get("metrics", [])
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            raise ValueError(f"skipped clip {data.get('clip')!r}: metrics: expected a list of metric ids")
        return cls(data["side"], data["clip"], data["file"], data["reason"], tuple(metrics))


@dataclass(frozen=True)
class Side:
    """One side of a comparison: where its clips came from and how many were scored."""

    path: str | None
    clips: int
    split: str | None = None
    keypoint_visibility: float | None = None     # mean share of skeleton points seen
    #: the content scored: clip label -> {"video": SHA-256, "audio": SHA-256 of a wav read instead of the
    #: video's own track}; the same folder with replaced videos gives other numbers under other hashes
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def content_digest(self) -> str | None:
        """The first 12 hex digits of a SHA-256 over ``files`` (one line per clip, in label order): equal
        digests, the same bytes scored. None without ``files`` (a result written before they were kept)."""
        if not self.files:
            return None
        lines = "".join(f"{label}\t{json.dumps(dict(self.files[label]), sort_keys=True)}\n"
                        for label in sorted(self.files))
        return hashlib.sha256(lines.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"path": self.path, "clips": self.clips, "split": self.split,
                "keypoint_visibility": number(self.keypoint_visibility),
                "content_digest": self.content_digest, "files": {k: dict(v) for k, v in self.files.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> Side:
        return cls(data.get("path"), int(data.get("clips") or 0), data.get("split"), data.get("keypoint_visibility"),
                   data.get("files") or {})


@dataclass(frozen=True)
class EvaluationResult:
    """``metrics.evaluate.evaluate``'s result: generated videos against real ones.

    ``scores``: the generated side against the real one; ``reference``: the real videos' own
    Diversity and BAS (the values to read the generated ones against).
    """

    protocol: Mapping[str, Any]
    protocol_label: str
    metrics: tuple[str, ...]
    scores: Scores
    reference: Scores
    provenance: Mapping[str, Provenance]
    real: Side
    fake: Side
    inputs: InputReport = field(default_factory=InputReport)
    skipped: tuple[SkippedClip, ...] = ()
    environment: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def label(self, metric: str) -> str:
        card = self.provenance.get(metric)
        return card.label if card else metric_label(metric)

    def to_dict(self) -> dict:
        return {"schema": EVALUATION_SCHEMA, "schema_version": self.schema_version,
                "protocol": dict(self.protocol), "protocol_label": self.protocol_label,
                "metrics": list(self.metrics), "labels": {m: self.label(m) for m in self.metrics},
                "scores": scores_to_dict(self.scores), "reference": scores_to_dict(self.reference),
                "provenance": {m: card.to_dict() for m, card in self.provenance.items()},
                "real": self.real.to_dict(), "fake": self.fake.to_dict(), "inputs": self.inputs.to_dict(),
                "skipped": [s.to_dict() for s in self.skipped], "environment": dict(self.environment)}

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "result") -> EvaluationResult:
        check_schema(data, EVALUATION_SCHEMA, where)
        return cls(protocol=typed_field(data, "protocol", dict, where),
                   protocol_label=typed_field(data, "protocol_label", str, where),
                   metrics=tuple(typed_field(data, "metrics", list, where)),
                   scores=scores_from_dict(data.get("scores"), f"{where}: scores"),
                   reference=scores_from_dict(data.get("reference"), f"{where}: reference"),
                   provenance={m: Provenance.from_dict(c, f"{where}: provenance: {m}")
                               for m, c in (data.get("provenance") or {}).items()},
                   real=Side.from_dict(typed_field(data, "real", dict, where)),
                   fake=Side.from_dict(typed_field(data, "fake", dict, where)),
                   inputs=InputReport.from_dict(typed_field(data, "inputs", dict, where, None), f"{where}: inputs"),
                   skipped=tuple(SkippedClip.from_dict(s) for s in data.get("skipped") or []),
                   environment=data.get("environment") or {})


def check_schema(data: Any, schema: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless ``data`` is a document of ``schema``, this version."""
    problem = schema_problem(data, schema, SCHEMA_VERSION)
    if problem == "older":
        found = data.get("schema_version")
        raise ValueError(f"{where}: " + (f"schema {schema!r} version {found!r}" if data.get("schema") else
                                         "no schema field (written before schema 2)")
                         + f"; this version reads {schema!r} version {SCHEMA_VERSION} (metric ids such as "
                         "fgd/div/bas/fvd as keys, provenance per metric): compute it again with this version")
    if problem:
        raise ValueError(f"{where}: {problem}")


def result_rows(result: EvaluationResult) -> list[dict]:
    """Long format: one row per side x scope x metric (the CSV beside the JSON)."""
    rows = []
    for side, scores in (("generated", result.scores), ("real", result.reference)):
        for scope, table in scores.items():
            for metric, score in table.items():
                rows.append({"side": side, "scope": scope, "metric": metric, "label": result.label(metric),
                             "value": number(score.value), "ci_low": number(score.ci_low),
                             "ci_high": number(score.ci_high),
                             "counts": " ".join(f"{k}={v}" for k, v in score.counts.items()),
                             "protocol": result.protocol_label, "weights": weights_id(result.provenance, metric)})
    return rows


def weights_id(provenance: Mapping[str, Provenance], metric: str) -> str:
    """The network behind ``metric``'s number, for the CSV rows (a number is comparable with another only
    under the same weights): its card's ``weights_hash``, else its ``weights`` (an untrained stand-in's id,
    e.g. ``i3d-untrained-seed0``), else "" (a metric that reads no network)."""
    card = provenance.get(metric)
    return (card.weights_hash or card.weights or "") if card else ""


def result_paths(path: str | Path) -> tuple[Path, Path]:
    """The JSON and CSV files ``write_result`` writes for ``path``: ``path`` ending in .json (a name with another
    ending gets it: ``eval.v2`` -> ``eval.v2.json``, never ``eval.json``, which may be another result), and
    the same name with .csv; a name ending in .csv names the CSV (``out.csv`` -> ``out.json`` and ``out.csv``)."""
    path = Path(path)
    json_path = (path if path.suffix.lower() == ".json" else path.with_suffix(".json") if path.suffix.lower() == ".csv"
                 else path.with_name(path.name + ".json"))
    return json_path, json_path.with_suffix(".csv")


def write_result(result: EvaluationResult, path: str | Path) -> tuple[Path, Path]:
    """Write ``result`` as JSON at ``path`` (.json) and its rows as CSV beside it; returns both paths."""
    json_path, csv_path = result_paths(path)
    write_json_atomic(json_path, result.to_dict())
    buffer = io.StringIO()
    fields = ["side", "scope", "metric", "label", "value", "ci_low", "ci_high", "counts", "protocol", "weights"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result_rows(result))
    write_text_atomic(csv_path, buffer.getvalue())
    return json_path, csv_path


def read_result(path: str | Path) -> EvaluationResult:
    """An ``EvaluationResult`` from its JSON file; errors name the file (an older schema included,
    and a file too large or nested too deeply: ``metrics.io.bounded.read_json``)."""
    path = Path(path)
    return EvaluationResult.from_dict(read_json(path), str(path))
