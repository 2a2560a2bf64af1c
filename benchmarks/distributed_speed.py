"""Wall-clock time of an ``imac-bench run`` with 1 process and with N (``--processes N``), same values.

    .venv/bin/python benchmarks/distributed_speed.py [--config toy-ci] [--methods imac,s2g,mya]
        [--processes 1,2] [--identities a,b] [--out runs/distributed-speed] [--trained-from-first]

Each count of processes runs the whole benchmark in a fresh run folder (``<out>/p<N>``), 1 torch thread
per process, and the script prints one table: the wall time of the command (process start-up, imports
and the launcher included), the run's own ``timings_s`` split into training (method preparation and the
shared models: done by the main process, the others waiting), generation and scoring (shared among the
processes), and whether every metric value equals the 1-process run's (``tests/test_distributed_run.py``
asserts the same on a micro run).

``--trained-from-first``: the runs after the first start from a copy of its run folder without its
videos, per-clip records, results and cache (the trained models, the corpus and ``run.json`` kept), so
they time generation and scoring alone: what spreading the clips over processes speeds up.

The numbers are this machine's: on the shared 2-core development machine other jobs run beside it,
so the ratio says how much two processes can gain here, not what 8 GPUs gain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KEPT = ("run.json", "data", "work")          # what --trained-from-first copies
DROPPED_IN_WORK = ("generation.json", "method.json")


def run(config: str, methods: str, processes: int, out: Path, identities: str | None) -> float:
    command = [sys.executable, "-m", "bench", "run", "--config", config, "--methods", methods, "--out", str(out),
               "--threads", "1", "--quiet", "--no-plots", "--processes", str(processes)]
    if identities:
        command += ["--identities", identities]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):       # 3: a control check failed; the timing still stands
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def copy_trained(first: Path, out: Path) -> None:
    """``first`` without its videos, per-clip records, results and cache, into ``out``."""
    out.mkdir(parents=True)
    for name in KEPT:
        source = first / name
        if source.is_dir():
            shutil.copytree(source, out / name, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, out / name)
    for path in (out / "work").glob("*/*"):
        if path.name in DROPPED_IN_WORK or path.name.startswith("generation.process-"):
            path.unlink()


def split_timings(results: dict) -> dict[str, float]:
    """Training (the shared models, the side-by-side trainings, each method's ``prepare``), generation (the rest of ``generate:<m>``)
    and scoring (``score:*``) in seconds, from ``results.json``."""
    parts = {"training": 0.0, "generation": 0.0, "scoring": 0.0}
    for key, value in results["timings_s"].items():
        if key in ("vae", "fgd_autoencoder", "side_by_side"):
            parts["training"] += value
        elif key.startswith("generate:"):
            method = results["methods"].get(key.partition(":")[2], {})
            prepare = float((method.get("facts") or {}).get("prepare_seconds") or 0.0)
            parts["training"] += min(prepare, value)
            parts["generation"] += value - min(prepare, value)
        elif key.startswith("score:"):
            parts["scoring"] += value
    return {k: round(v, 1) for k, v in parts.items()}


def metric_values(results: dict) -> dict:
    return {"methods": {name: m["scores"] for name, m in results["methods"].items()}, "paired": results["paired"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="toy-ci", help="bench config (default: toy-ci)")
    parser.add_argument("--methods", default="imac,s2g,mya", help="methods (default: imac,s2g,mya)")
    parser.add_argument("--processes", default="1,2", help="counts of processes, the first is the reference")
    parser.add_argument("--identities", default=None, help="speakers (default: all of the config's corpus)")
    parser.add_argument("--out", type=Path, default=Path("runs/distributed-speed"), help="folder of the runs")
    parser.add_argument("--trained-from-first", action="store_true",
                        help="later runs reuse the first run's trained models (time generation and scoring)")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    if args.out.exists():
        shutil.rmtree(args.out)
    rows, reference = [], None
    for index, n in enumerate(counts):
        out = args.out / f"p{n}"
        if index and args.trained_from_first:
            copy_trained(args.out / f"p{counts[0]}", out)
        wall = run(args.config, args.methods, n, out, args.identities)
        results = json.loads((out / "results.json").read_text())
        reference = reference or metric_values(results)
        parts = split_timings(results)
        rows.append({"processes": n, "wall_s": round(wall, 1), "run_total_s": results["timings_s"]["total"], **parts,
                     "same_values": metric_values(results) == reference})
    first = rows[0]["wall_s"]
    print(f"config {args.config}, methods {args.methods}" + (f", identities {args.identities}" if args.identities else "")
          + (", later runs reuse the first run's trained models" if args.trained_from_first else ""))
    print("| processes | wall (s) | run total (s) | training (s) | generation (s) | scoring (s) | wall vs 1 | same values |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['wall_s']} | {row['run_total_s']} | {row['training']} | {row['generation']} "
              f"| {row['scoring']} | {first / row['wall_s']:.2f}x | {row['same_values']} |")


if __name__ == "__main__":
    main()
