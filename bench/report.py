"""``imac-bench report``: a run's results as tables (CSV, JSON, Markdown) and plots.

``report.md`` follows the paper's Tables 2 and 3 (one row per method, FGD / Div / BAS / FVD with
arrows for the better direction, the best method in bold), with what the paper leaves out: the
95% bootstrap interval and the clip counts of every number, the controls, a table per speaker
identity, and the protocol block that produced the numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from metrics.beats import motion_beats, speech_beats
from metrics.io.audio import load_audio
from metrics.io.cache import VideoCache
from metrics.io.files import atomic_path, write_json_atomic, write_text_atomic
from metrics.io.video import VideoReader, read_video_audio
from metrics.pose.toy import ToyMarkerPose
from metrics.protocol import Protocol

# Fewer test clips than this and "shuffled < gt on BAS" is reported but does not fail a run: BAS
# separates matched from shuffled speech weakly (toy corpus, 40 clips: matched wins in 62% of clips).
MIN_CLIPS_BAS_ORDER = 8

# metric name in results -> (column title, True if lower is better)
COLUMNS = {"FGD": ("FGD", True), "Diversity": ("Div", False), "BAS": ("BAS", False),
           "FVD": ("FVD", True), "FVD*": ("FVD*", True)}


def load_results(run: str | Path) -> dict:
    path = Path(run) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `imac-bench run --out {run}` first)")
    results = json.loads(path.read_text())
    results["control_checks"] = control_checks(results)   # by this version's rules
    return results


def metric_value(results: dict, method: str, metric: str, scope: str = "all") -> float:
    entry = results["methods"][method]["results"].get(scope, {}).get(metric)
    return float("nan") if entry is None or entry["value"] is None else float(entry["value"])


def present_metrics(results: dict) -> list[str]:
    found = {m for method in results["methods"].values() for table in method["results"].values() for m in table}
    return [m for m in COLUMNS if m in found]


def control_checks(results: dict, scope: str = "all") -> list[dict]:
    """The orderings the controls must show, each with its numbers and whether it holds.

    gt best on FGD and FVD; static lowest on Diversity and BAS (strictly below the real videos and
    the shuffled ones, never above a method); shuffled audio below gt on BAS. A missing control
    number counts as a failure; a method without a score gives ``holds: None`` (its row is flagged).
    """
    methods = results["methods"]
    if not all(c in methods for c in ("gt", "static", "shuffled")):
        return []
    others = [m for m in methods if m not in ("gt", "static", "shuffled")]
    fvd = "FVD" if any("FVD" in t for t in methods["gt"]["results"].values()) else "FVD*"
    checks = []

    def add(metric: str, low: str, high: str, strict: bool = True) -> None:
        a, b = metric_value(results, low, metric, scope), metric_value(results, high, metric, scope)
        holds = bool(a < b) if strict else bool(a <= b)
        method = next((m for m in (low, high) if m in others), None)
        if method is not None and (math.isnan(a) or math.isnan(b)):
            holds = None   # the method has no score (flagged in its row): nothing to compare
        checks.append({"metric": metric, "expected": f"{low} {'<' if strict else '<='} {high}", "low": a,
                       "high": b, "holds": holds})

    present = present_metrics(results)
    for metric in ("FGD", fvd):
        if metric in present:
            add(metric, "gt", "static")
            for other in others:
                add(metric, "gt", other, strict=False)
    for metric in ("Diversity", "BAS"):
        if metric in present:
            add(metric, "static", "gt")
            add(metric, "static", "shuffled")
            for other in others:
                add(metric, "static", other, strict=False)
    if "BAS" in present:
        add("BAS", "shuffled", "gt")
        clips = methods["gt"]["results"].get(scope, {}).get("BAS", {}).get("n_clips", 0)
        if clips < MIN_CLIPS_BAS_ORDER:
            checks[-1]["gating"] = False
            checks[-1]["note"] = (f"not gating with {clips} test clips (fewer than {MIN_CLIPS_BAS_ORDER}): on the "
                                  "toy corpus matched audio beats shuffled audio in only 62% of clips")
    for check in checks:
        check.setdefault("gating", True)
    return checks


def failed_checks(results: dict) -> list[dict]:
    """The control checks that fail and count (a method without a score or a non-gating check does not)."""
    return [c for c in results.get("control_checks") or [] if c["holds"] is False and c.get("gating", True)]


def table_rows(results: dict) -> list[dict]:
    """Long format: one row per method x scope x metric, with the interval and the counts."""
    rows = []
    for name, method in results["methods"].items():
        for scope, table in method["results"].items():
            for metric, entry in table.items():
                counts = {k: v for k, v in entry.items() if k not in ("value", "ci_low", "ci_high")}
                rows.append({"method": name, "label": method["label"], "kind": method["kind"],
                             "scope": scope, "metric": metric, "value": entry["value"],
                             "ci_low": entry["ci_low"], "ci_high": entry["ci_high"],
                             "n_clips": counts.get("n_fake_clips", counts.get("n_clips")),
                             "counts": " ".join(f"{k}={v}" for k, v in counts.items()),
                             "protocol": results["protocol_label"]})
    return rows


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def _label(results: dict, name: str) -> str:
    method = results["methods"][name]
    flags = []
    if method.get("skipped"):
        flags.append(f"{len(method['skipped'])} clip(s) missing")
    unscored = method.get("unscored") or {}
    if "*" in unscored:
        flags.append("no clip could be scored")
    elif unscored:
        flags.append(f"{len(unscored)} clip(s) unscorable")
    return method["label"] + "".join(f" ⚠ {flag}" for flag in flags)


def markdown_table(results: dict, scope: str = "all", methods: list[str] | None = None) -> str:
    """Methods as rows, metrics as columns: value, then [95% CI] and n; the best method in bold."""
    metrics = present_metrics(results)
    methods = methods or list(results["methods"])
    candidates = [m for m in methods if results["methods"][m]["kind"] != "control"]
    best = {}
    for metric in metrics:
        values = {m: metric_value(results, m, metric, scope) for m in candidates}
        values = {m: v for m, v in values.items() if not math.isnan(v)}
        if len(values) >= 2:
            pick = min if COLUMNS[metric][1] else max
            best[metric] = pick(values, key=values.get)
    head = "| method | " + " | ".join(f"{COLUMNS[m][0]} {'↓' if COLUMNS[m][1] else '↑'}" for m in metrics) + " | clips |"
    lines = [head, "|---|" + "---|" * (len(metrics) + 1)]
    for name in methods:
        cells = []
        clips = ""
        for metric in metrics:
            entry = results["methods"][name]["results"].get(scope, {}).get(metric)
            if entry is None:
                cells.append("")
                continue
            text = _fmt(entry["value"])
            if best.get(metric) == name:
                text = f"**{text}**"
            cells.append(f"{text} [{_fmt(entry['ci_low'])}, {_fmt(entry['ci_high'])}]")
            clips = clips or str(entry.get("n_fake_clips", entry.get("n_clips", "")))
        kind = results["methods"][name]["kind"]
        label = _label(results, name) + (" *(control)*" if kind == "control" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {clips} |")
    return "\n".join(lines)


def protocol_block(results: dict) -> str:
    run = results["run"]
    i3d = results.get("i3d")
    ae = results.get("skeleton_autoencoder")
    lines = ["```",
             f"protocol        {results['protocol_label']}",
             f"pose extractor  {results['pose_extractor']}",
             f"skeleton AE     {ae['checkpoint_hash'] if ae else 'n/a'} (FGD and Div are comparable only under it)",
             f"I3D             {i3d['feature_id'] + ('' if i3d['pretrained'] else '  UNTRAINED stand-in: FVD* is not comparable with published FVD') if i3d else 'n/a'}",
             f"data            {run['data']}  ({len(run['test_clips'])} test clips"
             + (f"; identities {', '.join(run['identities'])}" if run.get("identities") else "") + ")",
             f"seed            {run['seed']}    device {run['device']}    bench {results['bench_version']}"
             f"    package {results['package_version']}",
             f"environment     python {results['environment']['python']}, torch {results['environment']['torch']}"
             f" ({results['environment']['torch_threads']} threads)",
             "```"]
    return "\n".join(lines)


def markdown_report(results: dict, plots: list[str]) -> str:
    methods = list(results["methods"])
    identities = sorted({s.split(":", 1)[1] for m in results["methods"].values() for s in m["results"]
                         if s.startswith("identity:")})
    lines = ["# Benchmark report", "",
             f"Every method generated a video for each of the {len(results['run']['test_clips'])} test clips "
             "from the clip's first frame and its speech; all are scored against the real test videos with "
             "the protocol below. Each number is followed by its 95% bootstrap interval over clips; "
             "↓ lower is better, ↑ higher is better (Div and BAS are best read next to the real videos' "
             "row, gt). The best non-control method is in bold. The intervals are percentile "
             "bootstrap intervals over clips: with few clips (the per-identity tables) they are indicative "
             "only, and for FGD and Div, whose resamples repeat clips, they can even exclude the value.", "",
             "## All identities", "", markdown_table(results, "all", methods), ""]
    for identity in identities:
        lines += [f"## Identity: {identity}", "", markdown_table(results, f"identity:{identity}", methods), ""]
    checks = results.get("control_checks") or []
    if checks:
        lines += ["## Control checks (do the metrics order known answers correctly?)", "",
                  "| check | values | holds |", "|---|---|---|"]
        for c in checks:
            verdict = {True: "yes", False: "**NO**", None: "n/a (no score)"}[c["holds"]]
            if c.get("note"):
                verdict += f" ({c['note']})"
            lines.append(f"| {c['metric']}: {c['expected']} | {_fmt(c['low'])} vs {_fmt(c['high'])} | {verdict} |")
        lines.append("")
    lines += ["## Methods", "", "| method | kind | facts |", "|---|---|---|"]
    for name, method in results["methods"].items():
        facts = method.get("facts") or {}
        short = {k: v for k, v in facts.items() if not isinstance(v, (dict, list))}
        lines.append(f"| {method['label']} | {method['kind']} | "
                     + ", ".join(f"{k}: {v}" for k, v in short.items()) + " |")
        for label, reason in (method.get("skipped") or {}).items():
            lines.append(f"| ⚠ {label} | skipped | {reason} |")
        for label, reason in (method.get("unscored") or {}).items():
            lines.append(f"| ⚠ {method['label']}: {label} | not scored | {reason} |")
    lines += ["", "## Protocol", "", protocol_block(results), ""]
    timings = results.get("timings_s") or {}
    if timings:
        lines += ["## Timings (seconds)", "", ", ".join(f"{k} {v}" for k, v in timings.items()), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def format_terminal(results: dict) -> str:
    metrics = present_metrics(results)
    lines = [results["protocol_label"], f"{'method':<46}" + "".join(f"{COLUMNS[m][0]:>12}" for m in metrics)]
    for name, method in results["methods"].items():
        lines.append(f"{_label(results, name)[:45]:<46}"
                     + "".join(f"{_fmt(metric_value(results, name, m)):>12}" for m in metrics))
    failed = failed_checks(results)
    loose = [c for c in results.get("control_checks") or [] if c["holds"] is False and not c.get("gating", True)]
    lines.append("control checks: " + ("all hold" if not failed else
                                       "FAILED: " + "; ".join(f"{c['metric']} {c['expected']}" for c in failed))
                 + "".join(f" (not gating, fails: {c['metric']} {c['expected']}: {c['note']})" for c in loose))
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(path: Path, write) -> Path:
    """``write(file)`` a PNG to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        write(temporary)
    return path


def _save_figure(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        return _save_png(path, lambda file: fig.savefig(file, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_metric_bars(results: dict, path: Path) -> Path:
    """One panel per metric: a bar per method for each identity, with the 95% interval."""
    plt = _pyplot()
    metrics = present_metrics(results)
    methods = list(results["methods"])
    scopes = ["all"] + sorted({s for m in results["methods"].values() for s in m["results"] if s != "all"})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes[0], metrics):
        for k, name in enumerate(methods):
            values, low, high = [], [], []
            for scope in scopes:
                entry = results["methods"][name]["results"].get(scope, {}).get(metric)
                v = np.nan if entry is None or entry["value"] is None else entry["value"]
                values.append(v)
                low.append(0 if entry is None or entry["ci_low"] is None else max(v - entry["ci_low"], 0))
                high.append(0 if entry is None or entry["ci_high"] is None else max(entry["ci_high"] - v, 0))
            x = np.arange(len(scopes)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, values, width, yerr=[low, high], capsize=2, label=name)
        ax.set_xticks(np.arange(len(scopes)), [s.replace("identity:", "") for s in scopes], rotation=30)
        ax.set_title(f"{COLUMNS[metric][0]} {'↓' if COLUMNS[metric][1] else '↑'}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save_figure(fig, path)


def _video_path(run: Path, method: str, label: str) -> Path:
    identity, clip_id = label.split("/", 1)
    return run / method / identity / f"{clip_id}.mp4"


def frame_strip(run: Path, results: dict, clip: str, path: Path, count: int = 6) -> Path:
    """A grid: one row per method, ``count`` frames at the same times of the same clip."""
    rows = []
    names = [m for m in results["methods"] if _video_path(run, m, clip).is_file()]
    for name in names:
        with VideoReader(_video_path(run, name, clip)) as reader:
            total = len(reader)
            picks = np.linspace(0, total - 1, count).round().astype(int)
            frames = reader.read(0, total)[picks]
        rows.append(np.concatenate(list(frames), axis=1))
    height = rows[0].shape[0]
    label_width = 150
    sheet = Image.new("RGB", (label_width + rows[0].shape[1], height * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, row) in enumerate(zip(names, rows)):
        sheet.paste(Image.fromarray(row), (label_width, k * height))
        draw.text((4, k * height + height // 2 - 6), name, fill="black")
    return _save_png(path, lambda file: sheet.save(file, format="PNG"))


def beat_timeline(run: Path, results: dict, clip: str, path: Path) -> Path:
    """Speech onsets and each method's motion beats on one clip's time axis. Keypoints come from the
    run's cache (the scoring extracted them); uncached ones are extracted only for the toy extractor."""
    plt = _pyplot()
    protocol = Protocol.from_dict(results["protocol"])
    cache = VideoCache(run / "cache", "keypoints", results["pose_extractor"], protocol.version)
    extractor = None
    if results["pose_extractor"].startswith("toy"):
        extractor = ToyMarkerPose()
    gt = _video_path(run, "gt", clip)
    wav_path = gt.with_suffix(".wav")
    rate = protocol.audio_sample_rate
    wav = load_audio(wav_path, rate) if wav_path.exists() else read_video_audio(gt, rate)
    onsets = speech_beats(wav, rate, protocol.onset_hop_length)
    names = [m for m in results["methods"] if _video_path(run, m, clip).is_file()]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.4))
    ax.vlines(onsets, -0.5, len(names) - 0.5, colors="0.75", linewidth=1, label="speech onsets")
    for k, name in enumerate(names):
        video = _video_path(run, name, clip)
        cached = cache.load(video)
        if cached is not None:
            keypoints, fps = cached["keypoints"], float(cached["fps"])
        elif extractor is not None:
            with VideoReader(video) as reader:
                keypoints, fps = extractor(reader.read(0, len(reader))), reader.info.fps
        else:
            ax.text(0.0, k, "  keypoints not cached", va="center", fontsize=8, color="crimson")
            continue
        try:
            beats = motion_beats(keypoints, fps, protocol)
        except ValueError:
            ax.text(0.0, k, "  no body found", va="center", fontsize=8, color="crimson")
            continue
        ax.plot(beats, np.full(len(beats), k), "|", markersize=14, markeredgewidth=2)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds")
    ax.set_title(f"beat alignment on {clip}: motion beats per method vs speech onsets (grey)")
    fig.tight_layout()
    return _save_figure(fig, path)


def metrics_csv(results: dict) -> str:
    buffer = io.StringIO()
    fields = ["method", "label", "kind", "scope", "metric", "value", "ci_low", "ci_high", "n_clips", "counts", "protocol"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(results))
    return buffer.getvalue()


def write_report(run: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write metrics.csv, metrics.json, report.md and the plots of a run; returns their paths."""
    run = Path(run)
    results = load_results(run)
    rows = table_rows(results)
    paths = {"csv": write_text_atomic(run / "metrics.csv", metrics_csv(results)),
             "json": write_json_atomic(run / "metrics.json", {"protocol_label": results["protocol_label"],
                                                               "protocol": results["protocol"], "rows": rows})}
    made: list[str] = []
    if plots:
        paths["bars"] = plot_metric_bars(results, run / "plots" / "metrics.png")
        made.append("plots/metrics.png")
        clip = results["run"]["test_clips"][0]
        paths["strip"] = frame_strip(run, results, clip, run / "plots" / "frames.png")
        made.append("plots/frames.png")
        paths["beats"] = beat_timeline(run, results, clip, run / "plots" / "beats.png")
        made.append("plots/beats.png")
    paths["report"] = write_text_atomic(run / "report.md", markdown_report(results, made))
    return paths
