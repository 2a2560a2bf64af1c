"""Do the metrics order known controls correctly? A check to run on any dataset (the toy corpus first).

The clips of each identity are split in two halves (alternating by clip id). Half A is the
reference ("real"); three candidates are made from half B and compared with it:
- ``real (other half)``: half B as it is: different real clips of the same speakers;
- ``static``: every clip of half B reduced to its first frame, repeated, with its own audio;
- ``shuffled audio``: half B's videos with the audio of another clip of half B.
Expected: the other real half has the lowest FGD and FVD; static has the lowest Diversity and
BAS; matched audio has a higher BAS than shuffled audio. Every check is printed with its numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from metrics.dataset import ClipRecord, find_clips
from metrics.evaluate import ALL_METRICS, evaluate, make_extractor
from metrics.fgd_training import train_fgd_autoencoder
from metrics.io.audio import SAMPLE_RATE, write_wav
from metrics.io.files import link_or_copy, write_json_atomic, write_text_atomic
from metrics.io.video import VideoReader, write_video
from metrics.protocol import Protocol

CANDIDATES = ("real (other half)", "static", "shuffled audio")
_NAMES = {"fgd": "FGD", "div": "Diversity", "bas": "BAS"}   # metric ids -> this report's names (FVD: its label)


def split_halves(clips: list[ClipRecord]) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Alternate each identity's clips (sorted by id) between half A and half B."""
    a, b = [], []
    for identity in sorted({c.identity for c in clips}):
        mine = sorted((c for c in clips if c.identity == identity), key=lambda c: c.clip_id)
        a.extend(mine[0::2])
        b.extend(mine[1::2])
    if not a or not b:
        raise ValueError("the sanity check needs at least 2 clips (per identity) to split in halves")
    return a, b


def build_controls(data_dir: str | Path, out_dir: str | Path, sample_rate: int = SAMPLE_RATE) -> dict[str, Path]:
    """Write the reference and candidate folders; returns {name: folder}."""
    out_dir = Path(out_dir)
    half_a, half_b = split_halves(find_clips(data_dir, split=None))
    folders = {"reference": out_dir / "reference", "real (other half)": out_dir / "real_other_half",
               "static": out_dir / "static", "shuffled audio": out_dir / "shuffled_audio"}
    for clip in half_a:
        link_or_copy(clip.video, folders["reference"] / clip.identity / f"{clip.clip_id}.mp4", symbolic=True)
        if clip.audio:
            link_or_copy(clip.audio, folders["reference"] / clip.identity / f"{clip.clip_id}.wav", symbolic=True)
    audios = [c.load_audio(sample_rate) for c in half_b]
    for k, clip in enumerate(half_b):
        base = f"{clip.identity}/{clip.clip_id}"
        link_or_copy(clip.video, folders["real (other half)"] / f"{base}.mp4", symbolic=True)
        write_wav(folders["real (other half)"] / f"{base}.wav", audios[k], sample_rate)
        with VideoReader(clip.video) as reader:
            first = next(iter(reader))
            count, fps = reader.info.num_frames, reader.info.fps
        static = folders["static"] / f"{base}.mp4"
        if not static.exists():
            write_video(static, (first for _ in range(count)), fps, audio=audios[k], sample_rate=sample_rate)
        write_wav(folders["static"] / f"{base}.wav", audios[k], sample_rate)
        link_or_copy(clip.video, folders["shuffled audio"] / f"{base}.mp4", symbolic=True)
        other = audios[(k + 1) % len(half_b)]
        length = len(audios[k])
        other = np.resize(other, length) if len(other) < length else other[:length]  # tile a short one
        write_wav(folders["shuffled audio"] / f"{base}.wav", other, sample_rate)
    return folders


def check_orderings(tables: dict[str, dict], metrics: tuple[str, ...] = ALL_METRICS) -> list[dict]:
    """The expected orderings of the requested metrics, each with its numbers and whether it holds.

    A requested metric missing from a table counts as NaN, so its check fails (never skipped).
    """
    def value(candidate: str, metric: str) -> float:
        entry = tables[candidate].get(metric)
        return float("nan") if entry is None else entry["value"]

    fvd = "FVD" if "FVD" in tables["static"] else "FVD*"
    checks = [
        ("fgd", "FGD", "real (other half)", "static"),
        ("fvd", fvd, "real (other half)", "static"),
        ("div", "Diversity", "static", "real (other half)"),
        ("div", "Diversity", "static", "shuffled audio"),
        ("bas", "BAS", "shuffled audio", "real (other half)"),
        ("bas", "BAS", "static", "real (other half)"),
    ]
    out = []
    for key, metric, low, high in checks:
        if key not in metrics:
            continue
        a, b = value(low, metric), value(high, metric)
        out.append({"metric": metric, "expected": f"{low} < {high}", "low": a, "high": b, "holds": bool(a < b)})
    return out


def run_sanity(data_dir: str | Path, out_dir: str | Path, protocol: Protocol | None = None,
               autoencoder: str | Path | None = None, i3d: str | Path | None = None, extractor: str = "toy",
               ae_steps: int = 400, cache_dir: str | Path | None = None, metrics: tuple[str, ...] = ALL_METRICS,
               progress: Callable[[str], None] | None = None, dwpose_detector: str | Path | None = None,
               dwpose_pose: str | Path | None = None, device: str = "cpu") -> dict:
    """Build the controls, evaluate each against the reference, check the orderings; writes a report.

    ``extractor`` with ``dwpose_detector``/``dwpose_pose`` and ``device`` are as in ``make_extractor``.
    """
    protocol = protocol or Protocol()
    out_dir = Path(out_dir)
    folders = build_controls(data_dir, out_dir, protocol.audio_sample_rate)
    pose = make_extractor(extractor, dwpose_detector, dwpose_pose, device)
    if autoencoder is None and any(m in metrics for m in ("fgd", "div")):     # BAS and FVD need none
        autoencoder = out_dir / "fgd_autoencoder"
        if not (autoencoder / "model.safetensors").exists():
            if progress:
                progress(f"training the skeleton autoencoder on the train split of {data_dir} ({ae_steps} steps)")
            train_fgd_autoencoder(data_dir, autoencoder, protocol, pose, steps=ae_steps, cache_dir=cache_dir,
                                  progress=progress, device=device)
    tables, results = {}, {}
    for name in CANDIDATES:
        if progress:
            progress(f"evaluating {name}")
        result = evaluate(folders["reference"], folders[name], metrics=metrics, protocol=protocol,
                          autoencoder=autoencoder, i3d=i3d, extractor=pose, cache_dir=cache_dir, split=None,
                          device=device, paired=False)     # the candidates are the other half's clips
        results[name] = result
        tables[name] = {_NAMES.get(m, result.label(m)): s.to_dict() for m, s in result.scores["all"].items()}
    checks = check_orderings(tables, metrics)
    networks = results[CANDIDATES[0]].environment["networks"]
    report = {"protocol_label": protocol.label, "data": str(data_dir), "tables": tables, "checks": checks,
              "passed": all(c["holds"] for c in checks),
              "skeleton_autoencoder": networks["skeleton_autoencoder"],
              "i3d": networks["i3d"], "pose_extractor": pose.extractor_id}
    write_json_atomic(out_dir / "sanity.json", report)
    write_text_atomic(out_dir / "sanity.md", format_sanity(report))
    return report


def _cell(entry: dict | None) -> str:
    """A table cell: the value and its 95% interval (when it has one), 4 significant digits."""
    if entry is None:
        return ""
    value, low, high = entry.get("value"), entry.get("ci_low"), entry.get("ci_high")
    if value is None:
        return "n/a"
    return f"{value:.4g}" + ("" if low is None or high is None else f" [{low:.4g}, {high:.4g}]")


def _clip_counts(tables: dict[str, dict]) -> str:
    """"N: reference a clips; each candidate b clips." from the scores' counts."""
    for entry in tables[CANDIDATES[0]].values():
        counts = entry.get("counts") or {}
        if "n_real_clips" in counts:
            return f"N: reference {counts['n_real_clips']} clips; each candidate {counts['n_fake_clips']} clips."
    for entry in tables[CANDIDATES[0]].values():
        if "n_clips" in (entry.get("counts") or {}):
            return f"N: each candidate {entry['counts']['n_clips']} clips."
    return "N: not recorded."


def _interval_of(tables: dict[str, dict], candidate: str, metric: str) -> tuple[float, float] | None:
    entry = tables[candidate].get(metric) or {}
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return None if low is None or high is None else (low, high)


def format_sanity(report: dict) -> str:
    """``run_sanity``'s report in Markdown: each candidate's values with their 95% intervals over clips,
    the clip counts, and each expected ordering with its numbers, whether it holds on the estimates and
    whether the two intervals are apart (an ordering inside overlapping intervals is not established by
    data this size); the last line names the checks that fail."""
    tables = report["tables"]
    metrics = [m for m in ("FGD", "Diversity", "BAS", "FVD", "FVD*") if m in tables[CANDIDATES[0]]]
    autoencoder = report["skeleton_autoencoder"]     # None when neither FGD nor Diversity was asked
    lines = [f"# Metric sanity check on {report['data']}", "",
             f"Protocol {report['protocol_label']}; pose extractor {report['pose_extractor']}"
             + ("" if autoencoder is None else f"; skeleton autoencoder {autoencoder['checkpoint_hash']}")
             + ("" if report["i3d"] is None else f"; I3D {report['i3d']['feature_id']}"
                + ("" if report["i3d"]["pretrained"] else " (untrained stand-in: FVD*)")) + ".",
             "Reference: half A of each identity's clips; candidates made from half B. " + _clip_counts(tables),
             "Each value is followed by its 95% interval over clips.", "",
             "| candidate | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name in CANDIDATES:
        lines.append(f"| {name} | " + " | ".join(_cell(tables[name].get(m)) for m in metrics) + " |")
    lines += ["", "| check | values | holds | intervals |", "|---|---|---|---|"]
    for c in report["checks"]:
        low, high = c["expected"].split(" < ")
        a, b = _interval_of(tables, low, c["metric"]), _interval_of(tables, high, c["metric"])
        apart = "not given" if a is None or b is None else "apart" if a[1] < b[0] else "overlap"
        lines.append(f"| {c['metric']}: {c['expected']} | {c['low']:.4g} vs {c['high']:.4g} | "
                     f"{'yes' if c['holds'] else '**NO**'} | {apart} |")
    failed = [f"{c['metric']}: {c['expected']}" for c in report["checks"] if not c["holds"]]
    summary = (f"yes, {len(report['checks'])} of {len(report['checks'])}" if not failed else
               f"NO: {len(failed)} of {len(report['checks'])} fail ({'; '.join(failed)})")
    lines += ["", f"All checks pass: {summary}.", ""]
    return "\n".join(lines)
