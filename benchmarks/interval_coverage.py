"""Coverage of the confidence intervals over clips, on simulated data whose value is known.

    .venv/bin/python benchmarks/interval_coverage.py [--replicates 500] [--workers 2] [--json OUT]

For each statistic and setting, ``--replicates`` independent data sets are drawn; each gets the
project's interval (``metrics.intervals``: clip jackknife, second-order corrected by 200
half-samples, t quantile, on the log scale for a Fréchet distance) and, for comparison, the plain
clip jackknife (same scale) and the percentile
bootstrap with replacement that the project used before (``metrics.bootstrap``, 200 resamples).
Coverage is the share of data sets whose interval contains the known value; nominal 0.95.

What "known value" means. A Fréchet distance estimated from N clips is biased upwards by a term
that shrinks like 1 / N (``metrics.fd_infinity``), so no interval built from those N clips alone
covers the population distance at small N. What a user comparing methods at the same N needs is
the spread of the number over draws of the test clips, so the target is the expectation of the
estimator at that N, E[FD_N], computed here by Monte Carlo over 2,000 further data sets (its
standard error is printed; it is below 1% of the interval widths). The population distance (closed
form) is printed beside it, with FD-infinity's mean over the data sets. The diversity's target is
its expectation at N too (the mean pairwise distance is unbiased for pairs, but the share of pairs
inside one clip changes with N), in closed form; BAS's is the mean of its per-clip scores.

Simulated data.
- FD, d = 64 (FGD-like): 8 windows per clip; half of a window's variance is its clip's (windows of
  a clip are correlated, so the clip is the unit). Real windows ~ N(0, S), S with eigenvalues
  k^-0.7 in a random basis; "method" windows ~ N(mu, S') with S' the same basis, eigenvalues scaled
  by lognormal(0, 0.5) factors, |mu| = 1; "match" windows ~ N(0, S) (a method that reproduces
  the data: population FD 0, the regime of GT, where the variance is all second order).
  Unpaired: real and generated clips independent and resampled as two groups (the CLI's case).
  "population FD 0", paired (clip i of each side one unit, the benchmark's case).
- FD, d = 400 (FVD-like): one feature per clip (StyleGAN-V's one 16-frame clip per video), same
  construction; every N here has fewer vectors than dimensions (singular covariances).
- FD difference: FD(real, method) - FD(real, method B) on the same clips, paired (method B: another
  draw of scale factors and mean shift), d = 64.
- Diversity: d = 64, isotropic, 8 windows per clip (half the variance the clip's), two identities
  with scales 1 and 1.5, N/2 clips each; pairs within identity (the default protocol).
- BAS: per-clip scores, 0 with probability 0.15 (no beats), else Beta(4, 3).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")      # one BLAS thread per worker process
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import functools
import json
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.special import gammaln

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.beats import BAS
from metrics.bootstrap import bootstrap_interval
from metrics.diversity import Diversity, clip_pair_sums
from metrics.fd_infinity import fd_infinity
from metrics.frechet import frechet_distance
from metrics.intervals import (
    combine_variances,
    half_sample_variance,
    jackknife_variance,
    t_interval,
)
from metrics.protocol import Protocol
from metrics.stats import FrechetMetric, GaussianStats

PROTOCOL = Protocol()
HALF_SAMPLES = PROTOCOL.interval_half_samples
BOOTSTRAP_SAMPLES = 200
TARGET_DRAWS = 2000
CLIP_SHARE = 0.5          # share of a window's variance that is its clip's
MEAN_SHIFT, SCALE_SPREAD = 1.0, 0.5    # a method's mean offset and log-sd of its variance factors
COMPARED = 100            # replicates that also get the old bootstrap and FD-infinity


# -- simulated populations ------------------------------------------------------------------------

@functools.cache
def populations(d: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(mean, covariance) of the real windows and of the generated windows of each kind."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    spectrum = np.arange(1, d + 1) ** -0.7
    out = {"real": (np.zeros(d), (basis * spectrum) @ basis.T), "match": (np.zeros(d), (basis * spectrum) @ basis.T)}
    for name in ("method", "method B"):
        scaled = spectrum * np.exp(rng.normal(0.0, SCALE_SPREAD, d))
        shift = rng.normal(size=d)
        out[name] = (MEAN_SHIFT * shift / np.linalg.norm(shift), (basis * scaled) @ basis.T)
    return out


@functools.cache
def cholesky_factor(d: int, seed: int, name: str) -> np.ndarray:
    return np.linalg.cholesky(populations(d, seed)[name][1]).T


def draw_clips(mean: np.ndarray, factor: np.ndarray, clips: int, windows: int, rng) -> np.ndarray:
    """(clips, windows, d) features ~ N(mean, factor^T factor): a clip effect (CLIP_SHARE of the
    variance) plus window noise."""
    d = len(mean)
    shared = rng.normal(size=(clips, 1, d)) @ factor * math.sqrt(CLIP_SHARE if windows > 1 else 0.0)
    own = rng.normal(size=(clips, windows, d)) @ factor * math.sqrt(1.0 - CLIP_SHARE if windows > 1 else 1.0)
    return mean + shared + own


class FastFrechet:
    """The Fréchet distance of (multi)sets of clips of two simulated sides, the value
    ``FrechetMetric`` gives (unbiased covariance), computed faster: from per-clip sums in d-space
    when there are more vectors than dimensions (a set of more than half the clips as the full sums
    minus the rest), else in sample space (tr (S1 S2)^1/2 is the nuclear norm of the centred
    cross-Gram matrix / sqrt((n1 - 1)(n2 - 1)))."""

    def __init__(self, real: np.ndarray, fake: np.ndarray) -> None:
        self.windows, self.dim = real.shape[1], real.shape[2]
        self.sample_space = max(len(real), len(fake)) * self.windows < self.dim
        if self.sample_space:
            x1, x2 = real.reshape(-1, self.dim), fake.reshape(-1, self.dim)
            self.g11, self.g22, self.g12 = x1 @ x1.T, x2 @ x2.T, x1 @ x2.T
        else:
            self.sums = []
            for side in (real, fake):
                totals, outers = side.sum(axis=1), np.einsum("nwi,nwj->nij", side, side).reshape(len(side), -1)
                self.sums.append((totals, outers, totals.sum(axis=0), outers.sum(axis=0)))

    def _moments(self, side: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        totals, outers, total, outer = self.sums[side]
        clips = len(totals)
        if len(index) == clips and len(np.unique(index)) == clips:
            pass
        elif 2 * len(index) > clips and len(np.unique(index)) == len(index):
            rest = np.setdiff1d(np.arange(clips), index)
            total, outer = total - totals[rest].sum(axis=0), outer - outers[rest].sum(axis=0)
        else:
            k = np.bincount(index, minlength=clips).astype(np.float64)
            total, outer = k @ totals, k @ outers
        n = self.windows * len(index)
        mean = total / n
        return mean, (outer.reshape(self.dim, self.dim) - n * np.outer(mean, mean)) / (n - 1)

    def __call__(self, real_index: np.ndarray, fake_index: np.ndarray) -> float:
        if not self.sample_space:
            return frechet_distance(*self._moments(0, real_index), *self._moments(1, fake_index))
        r1 = (np.asarray(real_index)[:, None] * self.windows + np.arange(self.windows)).ravel()
        r2 = (np.asarray(fake_index)[:, None] * self.windows + np.arange(self.windows)).ravel()
        n1, n2 = len(r1), len(r2)
        g11, g22, cross = self.g11[np.ix_(r1, r1)], self.g22[np.ix_(r2, r2)], self.g12[np.ix_(r1, r2)]
        trace1 = (np.trace(g11) - g11.sum() / n1) / (n1 - 1)
        trace2 = (np.trace(g22) - g22.sum() / n2) / (n2 - 1)
        mean_gap = g11.sum() / n1 ** 2 + g22.sum() / n2 ** 2 - 2 * cross.sum() / (n1 * n2)
        centred = cross - cross.mean(axis=1, keepdims=True) - cross.mean(axis=0, keepdims=True) + cross.mean()
        square = centred @ centred.T if n1 <= n2 else centred.T @ centred
        nuclear = np.sqrt(np.clip(np.linalg.eigvalsh(square), 0.0, None)).sum() / math.sqrt((n1 - 1) * (n2 - 1))
        return float(max(mean_gap + trace1 + trace2 - 2 * nuclear, 0.0))


def check_fast_frechet() -> None:
    """FastFrechet equals FrechetMetric on subsets (both routes; 1e-6: the singular covariances of
    the sample-space cases cost the eigen route about 1e-8), or the benchmark measures nothing."""
    rng = np.random.default_rng(0)
    for d, windows in ((64, 8), (40, 1)):
        real, fake = rng.normal(size=(12, windows, d)), rng.normal(0.2, 1.3, size=(12, windows, d))
        metric = FrechetMetric(PROTOCOL)
        metric.name = "FD"
        metric.parts = {True: [GaussianStats(d).update(c) for c in real], False: [GaussianStats(d).update(c) for c in fake]}
        statistic, fast = metric.clip_statistic().function, FastFrechet(real, fake)
        for index in (np.arange(12), np.arange(1, 12), np.array([0, 3, 5, 7, 8, 11])):
            assert math.isclose(fast(index, index[::-1].copy()), statistic(index, index), rel_tol=1e-6), (d, index)


# -- one replicate of each statistic -----------------------------------------------------------------

def intervals(statistic, sizes: tuple[int, ...], second_order: bool, lower: float, rng, compare: bool,
              old=None, log_scale: bool = False) -> dict[str, tuple[float, float, float]]:
    """(estimate, low, high) of the project's interval, the plain jackknife and (``compare``) the
    old bootstrap (``old``: its (statistic, sizes) when they differ from the new ones)."""
    estimate = statistic(*(np.arange(n) for n in sizes))
    df = sum(sizes) - len(sizes)
    jackknife = jackknife_variance(statistic, sizes)
    variance = jackknife
    if second_order:
        half = half_sample_variance(statistic, sizes, HALF_SAMPLES, int(rng.integers(2 ** 31)))
        variance = combine_variances(jackknife, half, min(sizes))
    out = {}
    for name, v in (("interval", variance), ("jackknife", jackknife)):
        result = t_interval(estimate, v, df, PROTOCOL.confidence, lower, log_scale=log_scale)
        out[name] = (estimate, result.low, result.high)
    if compare:
        old_statistic, old_sizes = old or (statistic, sizes)
        out["bootstrap"] = (estimate, *bootstrap_interval(old_statistic, old_sizes, BOOTSTRAP_SAMPLES,
                                                          int(rng.integers(2 ** 31)), PROTOCOL.confidence))
    return out


def frechet_sides(cell: dict, rng) -> list[np.ndarray]:
    """The real clips, the generated clips, and (difference cells) method B's clips."""
    pops, d, seed = populations(cell["d"], cell["population_seed"]), cell["d"], cell["population_seed"]
    names = ["real", cell["fake"]] + (["method B"] if cell.get("difference") else [])
    return [draw_clips(pops[name][0], cholesky_factor(d, seed, name), cell["n"], cell["windows"], rng)
            for name in names]


def frechet_replicate(cell: dict, rng, compare: bool) -> dict:
    n = cell["n"]
    sides = frechet_sides(cell, rng)
    fast = FastFrechet(sides[0], sides[1])
    if cell.get("difference"):
        other = FastFrechet(sides[0], sides[2])
        statistic = lambda index: fast(index, index) - other(index, index)
        result = intervals(statistic, (n,), True, -math.inf, rng, compare)      # old: a paired bootstrap
    elif cell["paired"]:
        result = intervals(lambda index: fast(index, index), (n,), True, 0.0, rng, compare, old=(fast, (n, n)),
                           log_scale=True)
    else:
        result = intervals(fast, (n, n), True, 0.0, rng, compare, log_scale=True)
    if compare and cell.get("fd_infinity"):
        result["fd_infinity"] = fd_infinity(fast, n, n, seed=int(rng.integers(2 ** 31))).value
    return result


def frechet_target(cell: dict, rng) -> float:
    sides = frechet_sides(cell, rng)
    everything = np.arange(cell["n"])
    value = FastFrechet(sides[0], sides[1])(everything, everything)
    if cell.get("difference"):
        value -= FastFrechet(sides[0], sides[2])(everything, everything)
    return value


def diversity_replicate(cell: dict, rng, compare: bool) -> dict:
    n, windows, d = cell["n"], cell["windows"], cell["d"]
    metric = Diversity(PROTOCOL)
    per_identity = {}
    for identity, scale in (("a", 1.0), ("b", 1.5)):
        clips = draw_clips(np.zeros(d), scale * np.eye(d), n // 2, windows, rng)
        for clip in clips:
            metric.update(clip, identity)
        rows = np.repeat(np.arange(len(clips)), windows)
        per_identity[identity] = clip_pair_sums(clips.reshape(-1, d), rows, len(clips), "l2")
    statistic = metric.clip_statistic()

    def old(index: np.ndarray) -> float:
        """The previous Diversity on a resample with replacement of all clips (identities a, b
        alternate in blocks of n / 2): duplicated clips pair windows with their copies."""
        values = []
        for g, (sums, counts) in enumerate(per_identity.values()):
            k = np.bincount(index[(index >= g * n // 2) & (index < (g + 1) * n // 2)] - g * n // 2,
                            minlength=n // 2).astype(np.float64)
            w = k @ np.full(n // 2, windows)
            if w >= 2:
                values.append(k @ sums @ k / (w * w - w))
        return float(np.mean(values))

    return intervals(statistic.function, statistic.sizes, True, 0.0, rng, compare, old=(old, (n,)))


def diversity_target(cell: dict) -> float:
    """E[Div_N] in closed form: E|Z| = sigma sqrt(2) Gamma((d+1)/2) / Gamma(d/2) for Z ~ N(0, sigma^2 I_d),
    a pair inside one clip differing by N(0, 2 (1 - CLIP_SHARE) s^2 I), across clips by N(0, 2 s^2 I)."""
    n, w, d = cell["n"] // 2, cell["windows"], cell["d"]
    norm = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    inside = n * w * (w - 1) / 2
    total = n * w * (n * w - 1) / 2
    values = []
    for scale in (1.0, 1.5):
        within = norm * math.sqrt(2 * (1 - CLIP_SHARE)) * scale
        across = norm * math.sqrt(2) * scale
        values.append((inside * within + (total - inside) * across) / total)
    return float(np.mean(values))


def diversity_population(cell: dict) -> float:
    d = cell["d"]
    norm = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    return float(np.mean([norm * math.sqrt(2) * s for s in (1.0, 1.5)]))


BAS_ZERO, BAS_A, BAS_B = 0.15, 4.0, 3.0


def bas_replicate(cell: dict, rng, compare: bool) -> dict:
    n = cell["n"]
    metric = BAS(PROTOCOL)
    metric.scores = list(np.where(rng.random(n) < BAS_ZERO, 0.0, rng.beta(BAS_A, BAS_B, n)))
    statistic = metric.clip_statistic()
    return intervals(statistic.function, statistic.sizes, False, 0.0, rng, compare)


# -- cells, workers, table -------------------------------------------------------------------------

def cells() -> list[dict]:
    out = []
    for d, windows in ((64, 8), (400, 1)):
        for n in (8, 32, 128):
            out.append({"statistic": "FD", "setting": f"d={d}, {windows} per clip, unpaired", "d": d,
                        "windows": windows, "n": n, "fake": "method", "paired": False, "fd_infinity": True,
                        "population_seed": 1})
    for n in (8, 32, 128):
        out.append({"statistic": "FD", "setting": "d=64, 8 per clip, paired, population FD 0", "d": 64,
                    "windows": 8, "n": n, "fake": "match", "paired": True, "population_seed": 1})
    for n in (8, 32, 128):
        out.append({"statistic": "FD difference", "setting": "d=64, 8 per clip, paired", "d": 64, "windows": 8,
                    "n": n, "fake": "method", "paired": True, "difference": True, "population_seed": 1})
    for n in (8, 32, 128):
        out.append({"statistic": "Diversity", "setting": "d=64, 8 per clip, 2 identities", "d": 64, "windows": 8,
                    "n": n})
    for n in (8, 32, 128):
        out.append({"statistic": "BAS", "setting": "15% zeros, else Beta(4, 3)", "n": n})
    return out


def run_chunk(job: tuple[int, int, int, int]) -> tuple[int, str, list]:
    """Replicates (kind "replicate") or target draws (kind "target") ``start..stop`` of cell ``i``."""
    i, kind, start, stop = job
    cell = cells()[i]
    out = []
    for r in range(start, stop):
        rng = np.random.default_rng([i, r, 0 if kind == "replicate" else 1])
        compare = r < COMPARED
        if kind == "target":
            out.append(frechet_target(cell, rng))
        elif cell["statistic"] in ("FD", "FD difference"):
            out.append(frechet_replicate(cell, rng, compare))
        elif cell["statistic"] == "Diversity":
            out.append(diversity_replicate(cell, rng, compare))
        else:
            out.append(bas_replicate(cell, rng, compare))
    return i, kind, out


def known_values(cell: dict, targets: list[float]) -> tuple[float, float, float]:
    """(E at N, its standard error, population value)."""
    if cell["statistic"] == "Diversity":
        return diversity_target(cell), 0.0, diversity_population(cell)
    if cell["statistic"] == "BAS":
        mean = (1 - BAS_ZERO) * BAS_A / (BAS_A + BAS_B)
        return mean, 0.0, mean
    pops = populations(cell["d"], cell["population_seed"])
    population = frechet_distance(*pops["real"], *pops[cell["fake"]])
    if cell.get("difference"):
        population -= frechet_distance(*pops["real"], *pops["method B"])
    values = np.asarray(targets)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), population


def summarise(cell: dict, replicates: list[dict], targets: list[float]) -> dict:
    target, target_se, population = known_values(cell, targets)
    estimates = np.array([r["interval"][0] for r in replicates])
    row = {k: cell[k] for k in ("statistic", "setting", "n")}
    row.update(target=target, target_se=target_se, population=population, replicates=len(replicates),
               sd=float(estimates.std(ddof=1)))
    for name in ("interval", "jackknife", "bootstrap"):
        bounds = np.array([r[name] for r in replicates if name in r])
        if not bounds.size:
            continue
        row[f"{name}_coverage"] = float(np.mean((bounds[:, 1] <= target) & (target <= bounds[:, 2])))
        row[f"{name}_contains_estimate"] = float(np.mean((bounds[:, 1] <= bounds[:, 0]) & (bounds[:, 0] <= bounds[:, 2])))
        row[f"{name}_width"] = float(np.mean(bounds[:, 2] - bounds[:, 1]))
    if "fd_infinity" in replicates[0]:
        row["fd_infinity_mean"] = float(np.mean([r["fd_infinity"] for r in replicates if "fd_infinity" in r]))
        row["fd_n_mean"] = float(np.mean([r["interval"][0] for r in replicates if "fd_infinity" in r]))
    return row


def markdown(rows: list[dict]) -> str:
    lines = [("| statistic | setting | N | E at N (known) | population | coverage | jackknife only | "
              f"old bootstrap ({COMPARED}) | old contains estimate | width / sd |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        known = f"{r['target']:.4g}" + (f" ± {r['target_se']:.2g}" if r["target_se"] else "")
        lines.append(f"| {r['statistic']} | {r['setting']} | {r['n']} | {known} | {r['population']:.4g} | "
                     f"{r['interval_coverage']:.3f} | {r['jackknife_coverage']:.3f} | "
                     f"{r.get('bootstrap_coverage', math.nan):.3f} | {r.get('bootstrap_contains_estimate', math.nan):.2f} | "
                     f"{r['interval_width'] / r['sd']:.2f} |")
    fd_inf = [r for r in rows if "fd_infinity_mean" in r]
    if fd_inf:
        lines += ["", f"| FD setting | N | population FD | mean FD_N | mean FD-infinity ({COMPARED} data sets) |",
                  "|---|---|---|---|---|"]
        for r in fd_inf:
            lines.append(f"| {r['setting']} | {r['n']} | {r['population']:.4g} | {r['fd_n_mean']:.4g} | "
                         f"{r['fd_infinity_mean']:.4g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--targets", type=int, default=TARGET_DRAWS, help="Monte Carlo draws for E[FD_N]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated statistics to run (FD, FD difference, ...)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    check_fast_frechet()
    chosen = [i for i, c in enumerate(cells()) if not args.only or c["statistic"] in args.only.split(",")]
    chunk = 25
    jobs = [(i, "replicate", s, min(s + chunk, args.replicates)) for i in chosen for s in range(0, args.replicates, chunk)]
    jobs += [(i, "target", s, min(s + 500, args.targets)) for i in chosen if cells()[i]["statistic"].startswith("FD")
             for s in range(0, args.targets, 500)]
    jobs.sort(key=lambda job: -cells()[job[0]]["n"])      # the slow cells first
    results: dict[tuple[int, str], list] = {}
    with Pool(args.workers) as pool:
        for i, kind, out in pool.imap_unordered(run_chunk, jobs):
            results.setdefault((i, kind), []).extend(out)
    rows = [summarise(cells()[i], results[(i, "replicate")], results.get((i, "target"), [])) for i in chosen]
    elapsed = time.perf_counter() - started
    print(markdown(rows))
    print(f"\n{args.replicates} replicates per row, {args.targets} Monte Carlo draws per FD target, "
          f"{args.workers} worker processes: {elapsed / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seconds": elapsed}, indent=1))


if __name__ == "__main__":
    main()
