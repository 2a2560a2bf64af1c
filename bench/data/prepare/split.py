"""The train/test split by source video, and the dataset statistics table (the paper's Table 1).

The split assigns whole source videos to a split, never clips of one recording to both: clips
cut from one recording share its background, lighting and clothing, and a test clip whose
neighbour was trained on measures memory, not generalisation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


# The realised test share may differ from the asked one by this much (absolute) or half the asked
# fraction, whichever is larger, before a warning: whole recordings rarely add up exactly.
SHARE_TOLERANCE = 0.05


@dataclass(frozen=True)
class SplitResult:
    """Which sources are test sources, the seconds that realises on each side, and a warning when
    no honest split exists or the realised test share is far from the asked fraction."""

    test_sources: tuple[str, ...]
    warning: str | None = None
    train_seconds: float = 0.0
    test_seconds: float = 0.0

    @property
    def test_share(self) -> float:
        """The test seconds as a fraction of all (0 when there are none)."""
        total = self.train_seconds + self.test_seconds
        return self.test_seconds / total if total > 0 else 0.0


def _realised(seconds_per_source: Mapping[str, float], test: Iterable[str], identity: str,
              test_fraction: float | None, warning: str | None = None) -> SplitResult:
    """The split of ``test`` sources with its realised seconds, warning when the share is far from
    ``test_fraction`` (None: the sources were chosen by name, nothing was asked)."""
    test = tuple(sorted(test))
    test_seconds = float(sum(seconds_per_source[s] for s in test))
    train_seconds = float(sum(seconds_per_source.values())) - test_seconds
    result = SplitResult(test, warning, train_seconds, test_seconds)
    if warning is None and test_fraction is not None and test_fraction > 0 and len(seconds_per_source) > 1 \
            and abs(result.test_share - test_fraction) > max(SHARE_TOLERANCE, test_fraction / 2):
        sizes = ", ".join(f"{s} {seconds_per_source[s] / 3600:.3g} h" for s in sorted(seconds_per_source))
        result = SplitResult(test, f"{identity}: --test-fraction {test_fraction:g} asked, but whole source videos "
                                   f"give {result.test_share:.0%} of the hours to test ({test_seconds / 3600:.3g} h "
                                   f"of {(test_seconds + train_seconds) / 3600:.3g} h; sources: {sizes}); "
                                   "add recordings or choose them with --test-sources",
                             train_seconds, test_seconds)
    return result


def _order_key(seed: int, identity: str, source: str) -> str:
    return hashlib.sha256(f"{seed}:{identity}:{source}".encode()).hexdigest()


def split_by_source(seconds_per_source: Mapping[str, float], test_fraction: float, identity: str,
                    seed: int = 0, chosen: Iterable[str] = ()) -> SplitResult:
    """Pick test sources so that they hold at least ``test_fraction`` of the identity's seconds.

    Sources are taken in a pseudo-random order fixed by (seed, identity, source name), so adding a
    source does not reshuffle the others, until the test seconds reach the fraction; at least one
    source always stays in train. ``chosen`` names the test sources explicitly instead.
    With a single source there is no split without leakage: everything is train, with a warning.
    The result carries the realised train and test seconds, and a warning when the test share is
    far from ``test_fraction`` (by more than 0.05 or half the fraction): two sources can only give
    0%, or one source's share, whatever was asked.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    sources = sorted(seconds_per_source)
    chosen = tuple(chosen)
    if chosen:
        unknown = sorted(set(chosen) - set(sources))
        if unknown:
            raise ValueError(f"--test-sources: {', '.join(unknown)} not among the kept sources of "
                             f"{identity!r} ({', '.join(sources) or 'none'})")
        if set(chosen) == set(sources):
            raise ValueError(f"--test-sources names every source of {identity!r}: nothing would be left to train on")
        return _realised(seconds_per_source, chosen, identity, None)
    if test_fraction == 0.0 or not sources:
        return _realised(seconds_per_source, (), identity, None)
    if len(sources) == 1:
        return _realised(seconds_per_source, (), identity, test_fraction,
                         f"{identity}: only one source video ({sources[0]}): every clip is in train, "
                         "since splitting one recording's clips leaks it into the test set; "
                         "add recordings or pass --test-sources")
    total = sum(seconds_per_source.values())
    test: list[str] = []
    seconds = 0.0
    for source in sorted(sources, key=lambda s: _order_key(seed, identity, s)):
        if seconds >= test_fraction * total or len(test) == len(sources) - 1:
            break
        test.append(source)
        seconds += seconds_per_source[source]
    return _realised(seconds_per_source, test, identity, test_fraction)


def statistics_rows(lines: Iterable[Mapping[str, Any]], postures: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per identity of manifest lines: posture, resolution, clips, sources, hours (all,
    train, test), like the paper's Table 1."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for line in lines:
        groups[line["identity"]].append(line)
    rows = []
    for identity in sorted(groups):
        clips = groups[identity]
        hours = {split: sum(c["num_frames"] / c["fps"] for c in clips if c["split"] == split) / 3600
                 for split in ("train", "test")}
        resolutions = sorted({f"{c['width']}x{c['height']}" for c in clips})
        rates = sorted({float(c["fps"]) for c in clips})
        sources = {c.get("source", c["clip_id"]) for c in clips}
        rows.append({"identity": identity, "posture": postures.get(identity, "unknown"),
                     "resolution": ", ".join(resolutions), "fps": ", ".join(f"{r:g}" for r in rates),
                     "clips": len(clips),
                     "train_clips": sum(c["split"] == "train" for c in clips),
                     "test_clips": sum(c["split"] == "test" for c in clips),
                     "sources": len(sources), "hours": hours["train"] + hours["test"],
                     "train_hours": hours["train"], "test_hours": hours["test"]})
    return rows


def _hours(value: float) -> str:
    """Hours to two decimals, or to three significant digits below 0.1 h (a few minutes would
    print as 0.00 otherwise)."""
    if value == 0:
        return "0"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3g}"


def _share(test: float, total: float) -> str:
    return f"{test / total:.0%}" if total > 0 else "-"


def statistics_markdown(rows: list[dict[str, Any]]) -> str:
    """The statistics rows as a Markdown table with a total row."""
    header = ("| Identity | Posture | Resolution | FPS | Sources | Clips (train/test) | Hours | Train h | Test h "
              "| Test share | Minutes |\n"
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['identity']} | {r['posture']} | {r['resolution']} | {r['fps']} | {r['sources']} | "
        f"{r['clips']} ({r['train_clips']}/{r['test_clips']}) | {_hours(r['hours'])} | "
        f"{_hours(r['train_hours'])} | {_hours(r['test_hours'])} | {_share(r['test_hours'], r['hours'])} | "
        f"{r['hours'] * 60:.1f} |\n" for r in rows)
    if len(rows) > 1:
        total = {key: sum(r[key] for r in rows) for key in ("sources", "clips", "train_clips", "test_clips",
                                                            "hours", "train_hours", "test_hours")}
        body += (f"| **all** | | | | {total['sources']} | {total['clips']} ({total['train_clips']}/"
                 f"{total['test_clips']}) | {_hours(total['hours'])} | {_hours(total['train_hours'])} | "
                 f"{_hours(total['test_hours'])} | {_share(total['test_hours'], total['hours'])} | "
                 f"{total['hours'] * 60:.1f} |\n")
    return header + body
