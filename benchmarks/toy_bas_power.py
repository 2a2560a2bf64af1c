"""Power of the BAS check on the toy corpus: does real motion score higher with its own audio
than with shuffled audio, at the CI configuration's clip count? Old corpus and new, side by side.

    .venv/bin/python benchmarks/toy_bas_power.py [--sets 60] [--speaker-sets 15] [--old-ref REV | --skip-old]

"new" is the toy corpus of this tree; "old" is ``bench/data/toy`` at a git revision (default
7823602, the last ``toy-corpus-v1``), loaded from ``git show`` into a temporary package.

1. Per-clip paired differences, diff = BAS(matched) - BAS(shuffled), on the corpus' ground-truth
   keypoints with the default protocol (``metrics.protocol.get_protocol()``, ``metrics.beats.BAS``),
   over ``--sets`` test sets shaped like ``bench/configs/toy-ci.yaml`` (its identities, clips and
   test clips; seeds 0, 1, ...). Matched: the clip's own audio. Shuffled: the rule of the
   benchmark's shuffled control (``bench.runner.permutation_bas``): the clip's keypoints against
   the audio of EVERY other test clip of its set, tiled or cut to the clip's length
   (``bench.methods.controls.fit_audio``), BAS averaged.
2. The power of three checks at the CI clip count n:
   - ``mean``: the report's control check, mean BAS of the real videos > mean BAS of shuffled;
   - ``t``: one-sided paired t-test of the n differences, alpha 0.05;
   - ``sign``: one-sided exact sign test, alpha 0.05 (needs n >= 5: with n clips all positive its
     p-value is 0.5^n, 0.0625 at n = 4).
   each estimated three ways: ``direct`` (the share of the seeded CI-shaped test sets on which the
   check passes), ``resampled`` (20,000 draws of n differences, with replacement, from all the
   measured ones) and ``analytic`` (from the effect size mean/sd, differences taken as normal:
   Phi(sqrt(n) d) for the mean check, the noncentral t for the t-test, P(diff > 0)^n for the sign
   test where n >= 5).
3. Per speaker, on test sets shaped like ``bench/configs/toy.yaml`` (``--speaker-sets`` of them):
   matched and shuffled BAS, the share of clips where matched wins, and the effect size.

Prints markdown tables and the run time. BAS here is on the ground-truth keypoints; the benchmark
scores the rendered videos through the toy pose extractor, whose keypoints are within a pixel or
so of these (``benchmarks/toy_pose_error.py``).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import stats

from bench.config import CorpusSettings, load_bench_config
from bench.methods.controls import fit_audio
from metrics.beats import BAS
from metrics.io.audio import SAMPLE_RATE
from metrics.protocol import get_protocol

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "7823602a37ad28d96bb4df4d9616711459fe483c"   # the last commit with toy-corpus-v1
ALPHA = 0.05
RESAMPLES = 20_000


@dataclass
class ClipScores:
    speaker: str
    matched: float
    shuffled: float

    @property
    def diff(self) -> float:
        return self.matched - self.shuffled


def this_tree_toy() -> SimpleNamespace:
    from bench.data.toy import corpus, identities

    return SimpleNamespace(ToyCorpusConfig=corpus.ToyCorpusConfig, make_clip=corpus.make_clip,
                           make_identities=identities.make_identities, version=corpus.CORPUS_VERSION)


def toy_at(ref: str, into: Path) -> SimpleNamespace:
    """``bench/data/toy`` at git revision ``ref``, imported as its own package (its imports of
    ``bench.data.toy`` rewritten; ``metrics`` is this tree's)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    name = f"toy_at_{ref[:12]}"
    package = into / name
    package.mkdir()
    for path in git("ls-tree", "--name-only", ref, "bench/data/toy/").split():
        if path.endswith(".py"):
            (package / Path(path).name).write_text(git("show", f"{ref}:{path}").replace("bench.data.toy", name))
    sys.path.insert(0, str(into))
    corpus = importlib.import_module(f"{name}.corpus")
    identities = importlib.import_module(f"{name}.identities")
    return SimpleNamespace(ToyCorpusConfig=corpus.ToyCorpusConfig, make_clip=corpus.make_clip,
                           make_identities=identities.make_identities, version=corpus.CORPUS_VERSION)


def test_set_scores(toy: SimpleNamespace, shape: CorpusSettings, seed: int, scorer: BAS) -> list[ClipScores]:
    """Matched and shuffled BAS of every test clip of the corpus ``shape`` generated with ``seed``."""
    config = toy.ToyCorpusConfig(seed=seed, identities=shape.identities, clips=shape.clips,
                                 test_clips=shape.test_clips, size=shape.size)
    clips = [(identity.name, toy.make_clip(identity, i, c, config))
             for i, identity in enumerate(toy.make_identities(shape.identities, seed))
             for c in range(config.clips - config.test_clips, config.clips)]
    scores = []
    for i, (speaker, clip) in enumerate(clips):
        length = len(clip["audio"])
        matched = scorer.score(clip["keypoints"], config.fps, clip["audio"], SAMPLE_RATE)
        shuffled = np.mean([scorer.score(clip["keypoints"], config.fps, fit_audio(other["audio"], length), SAMPLE_RATE)
                            for j, (_, other) in enumerate(clips) if j != i])
        scores.append(ClipScores(speaker, float(matched), float(shuffled)))
    return scores


def t_rejects(samples: np.ndarray) -> np.ndarray:
    """One-sided paired t-test at ALPHA on each row of differences (R, n)."""
    n = samples.shape[1]
    mean, sd = samples.mean(axis=1), samples.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd > 0, mean / (sd / np.sqrt(n)), np.where(mean > 0, np.inf, 0.0))
    return t > stats.t.ppf(1 - ALPHA, n - 1)


def sign_rejects(samples: np.ndarray) -> np.ndarray:
    """One-sided exact sign test at ALPHA on each row (ties count against)."""
    n = samples.shape[1]
    wins = (samples > 0).sum(axis=1)
    return stats.binom.sf(wins - 1, n, 0.5) <= ALPHA


def power(sets: list[np.ndarray], n: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Power of the three checks at n clips: direct (over the test sets), resampled, analytic."""
    pooled = np.concatenate(sets)
    direct = np.stack([s for s in sets if len(s) == n])
    drawn = rng.choice(pooled, size=(RESAMPLES, n), replace=True)
    effect = pooled.mean() / pooled.std(ddof=1)
    win = float(np.mean(pooled > 0))
    critical = stats.t.ppf(1 - ALPHA, n - 1)
    attainable = 0.5 ** n <= ALPHA
    return {
        "mean": {"direct": float(np.mean(direct.mean(axis=1) > 0)), "resampled": float(np.mean(drawn.mean(axis=1) > 0)),
                 "analytic": float(stats.norm.cdf(np.sqrt(n) * effect))},
        "t": {"direct": float(np.mean(t_rejects(direct))), "resampled": float(np.mean(t_rejects(drawn))),
              "analytic": float(stats.nct.sf(critical, n - 1, np.sqrt(n) * effect))},
        "sign": {"direct": float(np.mean(sign_rejects(direct))), "resampled": float(np.mean(sign_rejects(drawn))),
                 "analytic": float(sum(stats.binom.pmf(k, n, win) for k in range(n + 1)
                                       if stats.binom.sf(k - 1, n, 0.5) <= ALPHA)) if attainable else 0.0},
    }


def summary(scores: list[ClipScores]) -> dict[str, float]:
    diff = np.array([s.diff for s in scores])
    return {"clips": len(scores), "matched": np.mean([s.matched for s in scores]),
            "shuffled": np.mean([s.shuffled for s in scores]), "diff": diff.mean(), "sd": diff.std(ddof=1),
            "effect": diff.mean() / diff.std(ddof=1), "wins": float(np.mean(diff > 0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=60, help="seeded test sets shaped like toy-ci")
    parser.add_argument("--speaker-sets", type=int, default=15, help="seeded test sets shaped like toy, per speaker")
    parser.add_argument("--old-ref", default=OLD_REF, help="git revision of the old corpus")
    parser.add_argument("--skip-old", action="store_true", help="measure this tree's corpus only")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    ci_shape, toy_shape = load_bench_config("toy-ci").corpus, load_bench_config("toy").corpus
    n = ci_shape.identities * ci_shape.test_clips
    protocol = get_protocol()
    scorer = BAS(protocol)
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {} if args.skip_old else {"old": toy_at(args.old_ref, Path(tmp))}
        corpora["new"] = this_tree_toy()
        for label, toy in corpora.items():
            step = time.perf_counter()
            sets = [test_set_scores(toy, ci_shape, seed, scorer) for seed in range(args.sets)]
            speakers = [s for seed in range(args.speaker_sets) for s in test_set_scores(toy, toy_shape, seed, scorer)]
            results[label] = {"version": toy.version, "sets": sets, "speakers": speakers,
                              "power": power([np.array([s.diff for s in one]) for one in sets], n, rng),
                              "seconds": time.perf_counter() - step}
            print(f"{label} ({toy.version}): {time.perf_counter() - step:.0f} s", file=sys.stderr)
    labels = list(results)

    print(f"BAS, real motion with its own audio (matched) vs shuffled audio, ground-truth keypoints, protocol "
          f"{protocol.label}; CI-shaped test sets (toy-ci: {ci_shape.identities} speakers x {ci_shape.test_clips} "
          f"test clips = {n} clips), seeds 0-{args.sets - 1}:\n")
    print("| corpus | clips | BAS matched | BAS shuffled | diff (mean ± sd) | effect size d | matched wins |")
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        s = summary([c for one in results[label]["sets"] for c in one])
        print(f"| {label} ({results[label]['version']}) | {s['clips']} | {s['matched']:.3f} | {s['shuffled']:.3f} | "
              f"{s['diff']:+.3f} ± {s['sd']:.3f} | {s['effect']:.2f} | {100 * s['wins']:.0f}% |")
    print(f"\nPower at n = {n} clips (direct: share of the {args.sets} seeded sets; resampled: {RESAMPLES} draws of "
          f"{n} measured differences; analytic: from d, normal differences):\n")
    print("| check (one-sided, alpha 0.05) | " + " | ".join(f"{label}: direct / resampled / analytic" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    names = {"mean": "mean BAS matched > shuffled (the report's control check)", "t": "paired t-test",
             "sign": f"sign test{' (unattainable: needs >= 5 clips)' if 0.5 ** n > ALPHA else ''}"}
    for check, name in names.items():
        cells = [" / ".join(f"{100 * results[label]['power'][check][way]:.1f}%" for way in ("direct", "resampled", "analytic"))
                 for label in labels]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nPer speaker, toy-shaped test sets ({toy_shape.identities} speakers x {toy_shape.test_clips} test clips, "
          f"shuffled against the other {toy_shape.identities * toy_shape.test_clips - 1}), seeds 0-{args.speaker_sets - 1}:\n")
    print("| speaker | " + " | ".join(f"{label}: matched / shuffled, wins, d" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for speaker in dict.fromkeys(c.speaker for c in results[labels[-1]]["speakers"]):
        cells = []
        for label in labels:
            s = summary([c for c in results[label]["speakers"] if c.speaker == speaker])
            cells.append(f"{s['matched']:.3f} / {s['shuffled']:.3f}, {100 * s['wins']:.0f}%, {s['effect']:.2f}")
        print(f"| {speaker} | " + " | ".join(cells) + " |")
    print(f"\nRun time: {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU ("
          + ", ".join(f"{label} {results[label]['seconds']:.0f} s" for label in labels) + " wall).")


if __name__ == "__main__":
    main()
