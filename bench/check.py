"""``imac-bench check``: a run's results against a committed baseline (the CI regression).

A baseline folder holds ``results.json`` (a run's typed results, ``bench.results``: what is
compared), ``metrics.csv`` and ``report.md`` (for people reading a diff) and ``tolerances.yaml``::

    protocol: imac-bench (imac-bench-metrics-1.0, 1a2b3c4d)   # must match the run's protocol label
    scopes: [all]              # which scopes are compared (all; identity:NAME; or "*" for every one);
                               # each one listed must have scores in the baseline
    default: {abs: 0.0, rel: 0.0}
    metrics:                   # by metric id (metrics.registry); a value may move by max(abs, rel * |baseline|)
      fgd: {abs: 0.5, rel: 0.1}

    trained:                   # optional: the methods trained in the run (kind "model")
      default: {abs: 0.0, rel: 0.5}
      metrics: {div: {rel: 1.0}}
      may_be_undefined: [hkv]  # a score of these that is undefined on one side is a note, not a failure

Every baseline score (method x scope x metric) of a compared scope must be in the run, within
tolerance; the run's control checks must hold (and be made: a run without a control row fails
against a baseline with control checks). The scores of methods trained in the run (kind
``model``) use the ``trained`` margins (over the top level's, key by key; the wider of the two) when the file has them and
the run's CPU or thread count is not the baseline's (or is not recorded): the same seeded training on a CPU
with other vector instructions or BLAS kernels rounds differently and ends in other weights (like
another seed), while the real videos' and the controls' scores move only as far as the metrics' own
trained network (the skeleton autoencoder of FGD) does. A method absent from the run fails whatever
the margins; a run on another CPU than the baseline's is said in the notes. Scores the run has and
the baseline lacks are listed but do not fail. A run that scored other test clips (or another toy corpus)
than the baseline fails with that one reason: it is another bench config or dataset. A baseline or run of an older schema (display names such as ``FVD*`` as keys, a
``metrics.csv`` without ``results.json``) is refused with a message saying how to regenerate it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.report import control_checks, load_results, markdown_report, metrics_csv, missing_controls
from bench.results import BenchResults, OldSchemaError, write_results
from imac.config import config_differences, flat_config, listed
from metrics.io.files import write_text_atomic
from metrics.options import OptionsError, read_yaml
from metrics.results import METRIC_IDS

Key = tuple[str, str, str]        # (method, scope, metric id)


@dataclass
class Difference:
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def score_table(results: BenchResults) -> dict[Key, float]:
    """Every score of a run as (method, scope, metric id) -> value."""
    return {(name, scope, metric): score.value for name, method in results.methods.items()
            for scope, table in method.scores.items() for metric, score in table.items()}


def read_baseline(baseline: Path) -> BenchResults:
    """The baseline's results.json; ``OldSchemaError`` for a baseline of an earlier version."""
    path = baseline / "results.json"
    if not path.is_file():
        if (baseline / "metrics.csv").is_file():
            raise OldSchemaError(f"{baseline}: a baseline of an older schema (metrics.csv keyed by display names, "
                                 "no results.json); this version compares results.json: regenerate it with "
                                 f"`imac-bench check --update --baseline {baseline} --run RUN`")
        raise FileNotFoundError(f"{path}: missing (write a baseline with `imac-bench check --update`)")
    try:
        return load_results(baseline)
    except OldSchemaError as error:
        raise OldSchemaError(f"{error}; or regenerate the baseline with `imac-bench check --update --baseline "
                             f"{baseline} --run RUN`") from None


TOLERANCES_CONTENT = ("a mapping of protocol, scopes, default, metrics and trained, e.g. "
                      "`default: {abs: 0.0, rel: 0.05}` (every number may move by 5%); "
                      "`default: {abs: 0, rel: 0}` for an exact comparison")


def read_tolerances(path: Path) -> dict:
    """A baseline's ``tolerances.yaml`` (see the module docstring), every field checked; an empty file is
    refused (it would mean zero tolerance without saying so), as is one that is not a mapping."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the tolerances of the baseline)")
    try:
        data = read_yaml(path)
    except OptionsError as error:              # not YAML, or not a mapping: named, with what it should hold
        raise OptionsError(f"{error}; the tolerances of a baseline are {TOLERANCES_CONTENT}") from None
    if not data:
        raise ValueError(f"{path}: empty; the tolerances of a baseline are {TOLERANCES_CONTENT}")
    unknown = sorted(set(data) - {"protocol", "scopes", "default", "metrics", "trained"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)} (known: protocol, scopes, default, metrics, "
                         "trained)")
    trained = data.get("trained") or {}
    if not isinstance(trained, dict) or set(trained) - {"default", "metrics", "may_be_undefined"}:
        raise ValueError(f"{path}: trained: a mapping of default, metrics and may_be_undefined")
    data["scopes"] = _read_scopes(path, data.get("scopes"))
    _check_entries(path, data, "")
    _check_entries(path, trained, "trained: ")
    undefined = trained.get("may_be_undefined") or []
    if not isinstance(undefined, list) or any(name not in METRIC_IDS for name in undefined):
        raise ValueError(f"{path}: trained: may_be_undefined: a list of metric ids ({', '.join(METRIC_IDS)}), "
                         f"got {undefined!r}")
    return data


def _read_scopes(path: Path, scopes) -> list[str]:
    """``scopes:`` as a list (default ``[all]``); a value other than all, "*" or identity:NAME is refused."""
    listed = ["all"] if scopes is None else [scopes] if isinstance(scopes, str) else scopes
    if not isinstance(listed, list) or not listed:
        raise ValueError(f"{path}: scopes: a list of scopes (all, identity:NAME, \"*\"), got {scopes!r}")
    for scope in listed:
        if not (scope in ("all", "*") or isinstance(scope, str) and re.fullmatch(r"identity:\S+", scope)):
            raise ValueError(f"{path}: scopes: {scope!r} is not a scope (all, identity:NAME, or \"*\" for every one)")
    return listed


def _check_entries(path: Path, data: dict, where: str) -> None:
    """The ``default`` and ``metrics`` entries of a tolerances mapping (top level or ``trained``)."""
    for key in ("default", "metrics"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"{path}: {where}{key}: a mapping, got {data[key]!r} (e.g. {key}: "
                             + ("{abs: 0.0, rel: 0.05})" if key == "default" else "{fgd: {abs: 0.05, rel: 0.1}})"))
    for name, entry in (data.get("metrics") or {}).items():
        if not isinstance(entry or {}, dict):
            raise ValueError(f"{path}: {where}metrics: {name}: a mapping of abs and rel, got {entry!r} "
                             f"(e.g. {name}: {{rel: 0.1}})")
    old = [name for name in (data.get("metrics") or {}) if name not in METRIC_IDS]
    if old:
        raise ValueError(f"{path}: {where}metrics: {', '.join(map(repr, old))} not metric ids; use "
                         f"{', '.join(METRIC_IDS)} (an older schema keyed tolerances by display names: FGD -> fgd, "
                         "Diversity -> div, BAS and 'BAS (real)' -> bas, FVD and FVD* -> fvd)")
    for name, entry in {"default": data.get("default", {}), **(data.get("metrics") or {})}.items():
        bad = sorted(set(entry or {}) - {"abs", "rel"})
        if bad:
            raise ValueError(f"{path}: {where}{name}: unknown tolerance key(s) {', '.join(bad)} (use abs, rel)")
        for key, value in (entry or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{path}: {where}{name}: {key} must be a finite number >= 0, got {value!r}")


def allowed_change(tolerances: dict, metric: str, baseline: float, trained: bool = False) -> float:
    """max(abs, rel x |baseline|) of ``metric``'s entry: the top level's ``default`` then ``metrics``
    entry. For a trained method also the entry with the ``trained`` section's ``default`` then
    ``metrics`` entry over it (a key it does not give keeps the top level's value), and the wider of
    the two: the trained margins widen, never narrow (a trained ``abs: 0`` over the top level's
    ``fvd: {abs: 5.0}`` would leave a trained method less room than the controls)."""
    layers = [tolerances] + ([tolerances.get("trained") or {}] if trained else [])
    entry: dict = {}
    limits = []
    for layer in layers:
        entry.update(layer.get("default") or {})
        entry.update((layer.get("metrics") or {}).get(metric) or {})
        limits.append(max(float(entry.get("abs", 0.0)), float(entry.get("rel", 0.0)) * abs(baseline)))
    return max(limits)


def apart(moved: float, limit: float) -> tuple[str, str]:
    """``moved`` and ``limit`` (moved > limit) written with 4 significant digits, or as many more as it takes
    for the move to read larger than the tolerance (+0.0020001 against 0.002 read "moved +0.002,
    tolerance ±0.002")."""
    for digits in range(4, 18):
        said = f"{moved:.{digits}g}", f"{limit:.{digits}g}"
        if float(said[0]) > float(said[1]):
            return said
    return said


def _machine_words(cpus: list[tuple]) -> str:
    """What differs between the baseline's and the run's machine (CPU, its vector instructions, torch's
    threads, the CPU id), in words."""
    names = ("CPU", "vector instructions", "torch threads", "CPU id")
    differ = [name for name, old, new in zip(names, *cpus) if old != new or old is None]
    return ", ".join(differ) if differ else "machine"


def compare(run: BenchResults, baseline: BenchResults, tolerances: dict) -> tuple[list[Difference], list[str]]:
    """(failures, notes): moved numbers, missing scores, a protocol change, failed control checks."""
    failures: list[Difference] = []
    notes: list[str] = []
    scopes = tolerances.get("scopes") or ["all"]
    scopes = [scopes] if isinstance(scopes, str) else scopes

    def checked(key: Key) -> bool:
        return "*" in scopes or key[1] in scopes

    expected_protocol = tolerances.get("protocol") or baseline.protocol_label
    if run.protocol_label != expected_protocol:
        failures.append(Difference("protocol", f"baseline {expected_protocol!r}, run {run.protocol_label!r}: "
                                               "numbers under another protocol are not comparable"))
    other_data = _other_data(run, baseline)
    if other_data:
        failures.append(Difference("test clips", other_data))
        return failures, notes
    ours, theirs = score_table(run), score_table(baseline)
    in_baseline = sorted({key[1] for key in theirs})
    for scope in scopes:
        if scope != "*" and scope not in in_baseline:
            failures.append(Difference(f"scope {scope}", "no scores in the baseline, nothing to compare (its scopes: "
                                                         f"{', '.join(in_baseline) or 'none'})"))
    cpus = [(r.environment.get("cpu"), r.environment.get("cpu_capability"), r.environment.get("torch_threads"),
             r.environment.get("cpu_id")) for r in (baseline, run)]
    same_cpu = cpus[0] == cpus[1] and cpus[0][0] is not None and bool(cpus[0][3])
    if not same_cpu:
        said = [f"{cpu or 'not recorded'}" + (f" ({capability}, {threads} threads, id {ident or 'not recorded'})"
                                               if capability else "")
                for cpu, capability, threads, ident in cpus]
        notes.append(f"the baseline's CPU: {said[0]}; the run's: {said[1]} (other or not recorded: "
                     f"{_machine_words(cpus)}). On another CPU or thread count the same seeded training "
                     "can round differently and end in other weights: "
                     + ("the trained methods are compared with the trained margins" if tolerances.get("trained")
                        else "this baseline's tolerances have no trained margins, so their numbers may not repeat"))
    produced, produced_notes = produced_differently(run, baseline, same_cpu)
    failures += produced
    notes += produced_notes
    # on the baseline's own CPU a run repeats it exactly: the trained margins are not needed there
    use_trained = bool(tolerances.get("trained")) and not same_cpu
    trained = {name for name, method in baseline.methods.items() if method.kind == "model"} if use_trained else set()
    undefined_ok = set((tolerances.get("trained") or {}).get("may_be_undefined") or [])
    for key in (k for k in theirs if checked(k)):
        name = "/".join(key)
        old, new = theirs[key], ours.get(key, math.nan)
        if math.isnan(old) and math.isnan(new):
            continue
        if key not in ours:
            failures.append(Difference(name, "missing from the run"))
            continue
        if math.isnan(old) != math.isnan(new):
            if key[0] in trained and key[2] in undefined_ok:
                notes.append(f"{name}: baseline {old:.6g}, run {new:.6g} (undefined on one side; allowed for a "
                             "trained method by trained: may_be_undefined)")
            else:
                failures.append(Difference(name, f"baseline {old:.6g}, run {new:.6g}"))
            continue
        limit = allowed_change(tolerances, key[2], old, trained=key[0] in trained)
        if abs(new - old) > limit:
            moved, allowed = apart(abs(new - old), limit)
            failures.append(Difference(name, f"baseline {old:.6g}, run {new:.6g}: moved {'+' if new > old else '-'}"
                                             f"{moved}, tolerance ±{allowed}"))
    extra = sorted(k for k in set(ours) - set(theirs) if checked(k))
    if extra:
        notes.append(f"{len(extra)} score(s) in the run are not in the baseline: "
                     + ", ".join("/".join(k) for k in extra[:8]) + (" ..." if len(extra) > 8 else ""))
    missing = missing_controls(run)
    if missing and control_checks(baseline):
        failures.append(Difference("control checks", f"could not be made: the run has no {', '.join(missing)} "
                                                     "row(s) (the baseline has them)"))
    for check in run.failed_checks():
        failures.append(Difference(f"control check {check.id}", f"expected {check.expected}, got "
                                                                f"{check.low_value:.4g} vs {check.high_value:.4g}"))
    return failures, notes


# The counts of a score that the data and the clips scored fix (not a method's output): a run whose counts
# differ scored other clips (some unscored, skipped or cut), whatever its values.
CLIP_COUNTS = ("n_clips", "n_real_clips", "n_fake_clips")
# Config keys that give a weight file's path: where the file lies is no setting of the experiment (its hash,
# compared by ``produced_differently``, is).
WEIGHT_PATHS = ("fgd_autoencoder", "weights.")


def bench_config_differences(run: BenchResults, baseline: BenchResults, most: int = 6) -> str:
    """"key: baseline -> run" (``imac.config.config_differences`` on the ``flat_config`` of each) for each
    setting of the bench config both results record and give other values (a key only one of them has, from
    another version of the config, is left out; so are the config's name and where weight files lie,
    ``WEIGHT_PATHS``: their hashes are compared), at most ``most`` and a count of the rest; "" if none."""
    old, new = (flat_config(r.run.get("config") or {}) for r in (baseline, run))
    changed = config_differences(old, new, ignore=[*(old.keys() ^ new.keys()), "name", *WEIGHT_PATHS])
    return listed(changed, most) if changed else ""


def produced_differently(run: BenchResults, baseline: BenchResults, same_cpu: bool
                         ) -> tuple[list[Difference], list[str]]:
    """(failures, notes) about what produced the numbers rather than the numbers: the bench config's
    settings, the seed, the networks behind the features (pose extractor, I3D, the skeleton autoencoder)
    and the clip counts each score rests on. Before, a check compared the values alone, and a run of
    another config, autoencoder or seed, or one scored on fewer clips, "matched the baseline" wherever its
    numbers fell within the tolerances (FGD and Div are comparable only under one autoencoder).

    An autoencoder the run trained itself (no ``fgd_autoencoder`` given) may end in other weights on
    another CPU, as the trained methods do, whose videos may then be scored on other clips: there a
    different hash, or a trained method's other counts, is a note; on the baseline's own CPU a failure."""
    failures, notes = [], []
    changed = bench_config_differences(run, baseline)
    if changed:
        failures.append(Difference("config", f"the run's bench config differs from the baseline's ({changed})"
                                             ": its numbers are those of another experiment"))
    seeds = [r.run.get("seed") for r in (baseline, run)]
    if None not in seeds and seeds[0] != seeds[1]:
        failures.append(Difference("seed", f"baseline {seeds[0]}, run {seeds[1]}: another seed's numbers"))
    nets = [r.networks or {} for r in (baseline, run)]
    for name, value in (("pose extractor", lambda n: n.get("pose_extractor")),
                        ("I3D", lambda n: (n.get("i3d") or {}).get("feature_id"))):
        old, new = value(nets[0]), value(nets[1])
        if old is not None and new is not None and old != new:
            failures.append(Difference(name, f"baseline {old!r}, run {new!r}: features of another network"))
    hashes = [(n.get("skeleton_autoencoder") or {}).get("checkpoint_hash") for n in nets]
    if None not in hashes and hashes[0] != hashes[1]:
        trained_here = not (run.run.get("config") or {}).get("fgd_autoencoder")
        said = (f"baseline {hashes[0]}, run {hashes[1]}: FGD and Div are comparable only under one autoencoder")
        if trained_here and not same_cpu:
            notes.append(f"skeleton autoencoder: {said}; the run trained its own on another CPU, where the same "
                         "seeded training can end in other weights (its FGD and Div are held to the tolerances)")
        else:
            failures.append(Difference("skeleton autoencoder", said))
    cards = [{m: card for method in r.methods.values() for m, card in method.provenance.items()}
             for r in (baseline, run)]
    for metric in sorted(set(cards[0]) & set(cards[1]) - {"fgd", "div", "fvd"}):     # (those: above)
        old, new = cards[0][metric].weights_hash, cards[1][metric].weights_hash
        if old and new and old != new:
            failures.append(Difference(f"{metric} weights", f"baseline {old}, run {new}: another weight file"))
    for name, method in baseline.methods.items():
        other = run.methods.get(name)
        if other is None:
            continue
        for scope, table in method.scores.items():
            for metric, score in table.items():
                theirs = (other.scores.get(scope) or {}).get(metric)
                if theirs is None:
                    continue
                moved = [f"{key} {score.counts[key]} -> {theirs.counts[key]}" for key in CLIP_COUNTS
                         if key in score.counts and key in theirs.counts and score.counts[key] != theirs.counts[key]]
                if not moved:
                    continue
                said = f"rests on other clips ({', '.join(moved)})"
                if method.kind == "model" and not same_cpu:   # its videos are those of other weights there
                    notes.append(f"{name}/{scope}/{metric}: {said}; a method trained in the run, on another CPU, "
                                 "can make videos the metrics score on other clips")
                else:
                    failures.append(Difference(f"{name}/{scope}/{metric}", said))
    return failures, notes


def _other_data(run: BenchResults, baseline: BenchResults) -> str:
    """What differs between the clips the run and the baseline scored ("" when they are the same, or
    not recorded): a run of another bench config or dataset, whose numbers cannot be compared one by one."""
    other = _other_config(run, baseline)
    return other and f"{other}, whose numbers are not comparable; check the run against the baseline of its own config"


def _corpus(results: BenchResults):
    """The corpus a run scored: ``--data PATH`` when it was given one, else its config's embedded toy corpus
    settings (a run recorded before ``data_given`` was kept: its config's settings)."""
    if results.run.get("data_given"):
        return f"--data {results.run.get('data')}"
    return (results.run.get("config") or {}).get("corpus")


def _other_config(run: BenchResults, baseline: BenchResults) -> str:
    """The test clips or corpus the run and the baseline differ in, and their config names ("" if none)."""
    clips = [list(r.run.get("test_clips") or []) for r in (baseline, run)]
    corpora = [_corpus(r) for r in (baseline, run)]
    names = [(r.run.get("config") or {}).get("name") or "not recorded" for r in (baseline, run)]
    other_clips = all(clips) and clips[0] != clips[1]
    other_corpus = all(c is not None for c in corpora) and corpora[0] != corpora[1]
    if not (other_clips or other_corpus):
        return ""
    said = []
    if other_clips:
        said.append(f"the baseline scored {len(clips[0])} test clips, the run {len(clips[1])}"
                    + (f" ({len(set(clips[0]) ^ set(clips[1]))} not in both)" if len(clips[0]) == len(clips[1]) else ""))
    if other_corpus:
        said.append(f"the corpus differs (baseline {corpora[0]}, run {corpora[1]})")
    return f"{'; '.join(said)}: another bench config or dataset (baseline {names[0]!r}, run {names[1]!r})"


def check_run(run: str | Path, baseline: str | Path) -> tuple[list[Difference], list[str]]:
    """Compare a run's results.json with a baseline folder's (see the module docstring)."""
    run, baseline = Path(run), Path(baseline)
    if not baseline.is_dir():
        raise FileNotFoundError(f"{baseline}: no such baseline folder (one holds results.json and tolerances.yaml; "
                                "write one with `imac-bench check --update --baseline DIR --run RUN`)")
    tolerances = read_tolerances(baseline / "tolerances.yaml")
    return compare(load_results(run), read_baseline(baseline), tolerances)


DEFAULT_TOLERANCES = """\
# Tolerances of this baseline: a number may move by max(abs, rel * |baseline|) before
# `imac-bench check` fails. The toy benchmark is deterministic on one machine; these margins absorb
# the differences of other CPUs and library versions, not changes to a model or a metric.
# Metrics by id: fgd, div, bas, fvd (the real videos' own BAS, row gt, is a bas score too).
protocol: {protocol}
scopes: [all]
default: {{abs: 0.0, rel: 0.05}}
metrics:
  fgd: {{abs: 0.05, rel: 0.10}}
  div: {{abs: 0.05, rel: 0.10}}
  bas: {{abs: 0.02, rel: 0.10}}
  fvd: {{abs: 5.0, rel: 0.10}}
  hkc: {{abs: 0.02, rel: 0.10}}
  hkv: {{abs: 0.005, rel: 0.10}}
  joins_app: {{abs: 0.05, rel: 0.10}}
  joins_motion: {{abs: 0.05, rel: 0.10}}
  drift: {{abs: 0.5, rel: 0.20}}
"""


def replaced_config(results: BenchResults, baseline: Path) -> str:
    """How the run ``results`` is of another config than the baseline folder's results.json: other test
    clips or corpus (``_other_config``), another protocol, or a results.json that does not read (written by
    a newer version, or damaged): "" when the same, or when the baseline has none or one of an older schema
    (the update is what regenerates it)."""
    try:
        old = load_results(baseline) if (baseline / "results.json").is_file() else None
    except OldSchemaError:
        old = None
    except ValueError as error:   # a newer version's (an older checkout would downgrade it), or damaged
        return f"its results.json does not read ({error})"
    if old is None:
        return ""
    said = [_other_config(results, old)]
    changed = bench_config_differences(results, old)
    if changed:
        said.append(f"the bench config's settings differ ({changed})")
    if results.protocol_label != old.protocol_label:
        said.append(f"the protocol differs (baseline {old.protocol_label!r}, run {results.protocol_label!r})")
    return "; ".join(part for part in said if part)


def dropped_methods(results: BenchResults, baseline: Path) -> list[str]:
    """The methods the baseline folder's results.json has rows for and the run ``results`` has not (a run
    given fewer ``--methods``): their rows would leave the baseline, and no later check would guard
    them. [] when the baseline has no readable results.json."""
    try:
        old = load_results(baseline) if (baseline / "results.json").is_file() else None
    except ValueError:                       # (an older schema or a damaged file: replaced_config says it)
        return []
    return [] if old is None else [name for name in old.methods if name not in results.methods]


def undefined_scores(results: BenchResults) -> list[str]:
    """The scores a baseline made from ``results`` would not guard: each score that is undefined (null),
    and each metric of the run that a method of kind model or external has no score for at all
    ("method/scope/metric: why"). A baseline holding them passes any later run in which they are
    undefined again, so a broken metric or method would go unnoticed."""
    found = []
    for name, method in results.methods.items():
        if not method.scores and method.kind in ("model", "external"):
            found.append(f"{name}: no scores at all")
            continue
        reason = next(iter(method.unscored.values()), "")
        why = f" (its unscored clips: e.g. {reason})" if reason else ""
        if method.kind in ("model", "external"):
            found += [f"{name}/all/{metric}: no score{why}" for metric in results.metrics
                      if metric not in method.scores.get("all", {})]
        found += [f"{name}/{scope}/{metric}: undefined{why}" for scope, table in method.scores.items()
                  for metric, score in table.items() if math.isnan(score.value)]
    return found


def update_baseline(run: str | Path, baseline: str | Path, force: bool = False,
                    allow_undefined: bool = False, allow_failed_checks: bool = False,
                    allow_fewer_methods: bool = False) -> Path:
    """Copy a run's results.json, table and report into ``baseline`` (tolerances.yaml is kept, or
    written once; its ``protocol:`` line follows the new baseline's protocol label, since the run
    copied in is the new reference).

    A baseline of another config (other test clips, corpus or protocol: ``replaced_config``) is
    replaced only with ``force``; a run with undefined or missing scores (``undefined_scores``) is
    copied only with ``allow_undefined``, and one whose control checks fail (the metrics ordered a known
    answer wrongly: ``BenchResults.failed_checks``) only with ``allow_failed_checks``, and one without
    rows for some of the baseline's methods (``dropped_methods``) only with ``allow_fewer_methods``;
    without, ``ValueError`` says which.
    """
    results = load_results(run)
    baseline = Path(baseline)
    other = "" if force else replaced_config(results, baseline)
    if other:
        raise ValueError(f"{baseline}: not updated from {run}: {other}; its numbers would replace a baseline they "
                         "are not comparable with (update the baseline of the run's own config, or give --force "
                         "to replace this one)")
    dropped = [] if allow_fewer_methods else dropped_methods(results, baseline)
    if dropped:
        raise ValueError(f"{baseline}: not updated from {run}: the run has no rows for {len(dropped)} of the "
                         f"baseline's methods ({', '.join(dropped)}), which would leave the baseline unguarded "
                         "(run them too, or give --allow-fewer-methods to drop them from the baseline)")
    undefined = [] if allow_undefined else undefined_scores(results)
    if undefined:
        raise ValueError(f"{baseline}: not updated from {run}: {len(undefined)} score(s) undefined or missing, which "
                         "the baseline would then not guard: " + "; ".join(undefined[:4])
                         + (f"; and {len(undefined) - 4} more" if len(undefined) > 4 else "")
                         + " (fix the run, or give --allow-undefined to keep them undefined in the baseline)")
    failed = [] if allow_failed_checks else results.failed_checks()
    if failed:
        raise ValueError(f"{baseline}: not updated from {run}: {len(failed)} control check(s) fail, so the metrics "
                         "ordered a known answer wrongly and the baseline would hold that as correct: "
                         + "; ".join(f"{c.id}: expected {c.expected}, got {c.low_value:.4g} vs {c.high_value:.4g}"
                                     for c in failed[:4])
                         + " (fix the run, or give --allow-failed-checks to make it the baseline anyway)")
    baseline.mkdir(parents=True, exist_ok=True)
    write_results(baseline / "results.json", results)
    write_text_atomic(baseline / "metrics.csv", metrics_csv(results))
    write_text_atomic(baseline / "report.md", markdown_report(results, []))
    tolerances = baseline / "tolerances.yaml"
    if not tolerances.is_file():
        write_text_atomic(tolerances, DEFAULT_TOLERANCES.format(protocol=json.dumps(results.protocol_label)))
    else:
        text = tolerances.read_text()
        line = f"protocol: {json.dumps(results.protocol_label)}"
        updated = re.sub(r"(?m)^protocol:.*$", lambda _: line, text, count=1)
        if updated != text:
            write_text_atomic(tolerances, updated)
    return baseline
