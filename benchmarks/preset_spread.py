"""How far apart the presets put the same videos: every preset that can run without published
weights, on the generated videos of one benchmark run folder.

    .venv/bin/python benchmarks/preset_spread.py --run runs/bench [--methods imac,s2g,mya,static,gt] [--metrics fvd,bas,div]

For each method folder of the run (``<run>/<method>/<identity>/<clip>.mp4``) and each preset, the
method is scored against the run's real test clips (``<run>/data``, split test) with
``metrics.evaluate.evaluate`` under ``metrics.protocol.get_protocol(PRESET)``; the run's own
skeleton autoencoder (``<run>/work/fgd_autoencoder``) and the untrained I3D stand-in (seed 0) are
used, so FVD is FVD* here: the spread between FVD presets it shows comes from their resize and
covariance rules alone. Presets left out: ``styleganv`` (it needs StyleGAN-V's i3d_torchscript.pt,
which resizes inside). Keypoints and I3D features come from the run's cache where they are there.

Prints, per metric, a table of methods x presets (value and the method's rank among the methods
in that preset's column), then per method the ratio (Fréchet distances) or the difference
(BAS, Div) between the presets' extremes, and whether any preset orders the methods differently
from the default. A preset that refuses a clip (e.g. EMAGE's BAS trims 2 s at each end, so a clip
under 4 s has no beats left) is reported with its message.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from metrics.evaluate import evaluate
from metrics.protocol import get_protocol
from metrics.results import METRICS, format_score

PRESETS = {"fvd": ("imac-bench", "videogpt", "cdfvd"),
           "bas": ("imac-bench", "emage", "aist", "bailando"),
           "div": ("imac-bench", "emage-l1div")}
DEFAULT_METHODS = ("imac", "s2g", "mya", "static", "gt")


def score(run: Path, method: str, metric: str, preset: str):
    """(value, Score or None, message) of one method under one preset."""
    try:
        result = evaluate(run / "data", run / method, metrics=(metric,), protocol=get_protocol(preset),
                          autoencoder=run / "work" / "fgd_autoencoder", cache_dir=run / "cache", split="test",
                          on_error="skip")
    except (ValueError, RuntimeError) as error:
        return None, str(error).splitlines()[0]
    table = result.scores.get("all", {})
    skipped = f"{len(result.skipped)} clip(s) skipped" if result.skipped else ""
    return table.get(metric), skipped


def ranks(values: dict[str, float], lower_is_better: bool) -> dict[str, int]:
    """1 = best; NaN last."""
    order = sorted(values, key=lambda m: (np.isnan(values[m]), values[m] if lower_is_better else -values[m]))
    return {m: k + 1 for k, m in enumerate(order)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a benchmark run folder (imac-bench run --out)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="method folders of the run")
    parser.add_argument("--metrics", default=",".join(PRESETS), help="of " + ", ".join(PRESETS))
    args = parser.parse_args(argv)
    unknown = [m for m in args.metrics.split(",") if m not in PRESETS]
    if unknown:
        parser.error(f"--metrics: {', '.join(unknown)}: not one of {', '.join(PRESETS)}")
    methods = [m for m in args.methods.split(",") if (args.run / m).is_dir()]
    if not (args.run / "data").is_dir() or not methods:
        print(f"{args.run}: not a benchmark run folder (needs data/ and method folders)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    for metric in args.metrics.split(","):
        presets = PRESETS[metric]
        spec = METRICS[metric]
        values: dict[str, dict[str, float]] = {p: {} for p in presets}
        cells: dict[str, dict[str, str]] = {m: {} for m in methods}
        for preset in presets:
            for method in methods:
                found, note = score(args.run, method, metric, preset)
                values[preset][method] = float("nan") if found is None else found.value
                text = note if found is None else " ".join(format_score(found)) + (f" ({note})" if note else "")
                cells[method][preset] = text
        rank = {p: ranks(values[p], spec.lower_is_better) for p in presets}
        print(f"\n### {spec.label}{'*' if metric == 'fvd' else ''} ({'lower' if spec.lower_is_better else 'higher'} "
              "is better): value [95% interval] (rank)\n")
        print("| method | " + " | ".join(presets) + " | spread |")
        print("|---|" + "---|" * (len(presets) + 1))
        for method in methods:
            row = [values[p][method] for p in presets]
            finite = [v for v in row if np.isfinite(v)]
            if len(finite) < 2:
                spread = ""
            elif metric == "fvd" and min(finite) > 0:
                spread = f"max/min {max(finite) / min(finite):.2f}"
            else:
                spread = f"max-min {max(finite) - min(finite):.4g}"
            print(f"| {method} | " + " | ".join(f"{cells[method][p]} ({rank[p][method]})" for p in presets)
                  + f" | {spread} |")
        default = sorted(methods, key=rank[presets[0]].get)
        reordered = [p for p in presets[1:] if sorted(methods, key=rank[p].get) != default]
        print(f"\norder under {presets[0]}: {' < '.join(default) if spec.lower_is_better else ' > '.join(default)}"
              f"; presets that order the methods differently: {', '.join(reordered) or 'none'}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
