"""Synthetic ranking studies with known differences between methods: demos, tests, power checks.

    python -m userstudy simulate --methods a,b,c --participants 20 --trials 30 --out rankings.csv \
        [--seed N] [--effect 0.5 | --effect a=1,b=0.5,c=0] [--criteria "visual quality,..."] \
        [--trial-sd 0.5] [--power 200 [--alpha 0.05]]

(``python -m userstudy.simulate`` is the same command.)

The model is Thurstone's: every method has a latent quality per criterion; a judgement of one
method's video is quality + a video effect (the trial's clip suits some methods better; shared by
all participants, standard deviation ``trial_sd``) + the participant's noise (standard deviation 1);
a participant ranks the videos of a trial by that judgement, highest first. So an effect of 0.5
is half a noise standard deviation between adjacent methods. The videos' shown positions are a
random permutation per participant and trial, as on the ranking page.

The output is the format ``python -m userstudy analyze`` reads (see ``userstudy/README.md``).
The Python API: ``simulate`` (what the command does), ``simulate_rankings``, ``estimate_power``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from userstudy import cli
from userstudy.files import write_text_atomic
from userstudy.nonparametric import friedman, kruskal_wallis
from userstudy.progress import Progress
from userstudy.rankings import by_trial, points_from_ranks
from userstudy.schema import CRITERION, METHOD, PAPER_CRITERIA, PARTICIPANT, POSITION, RANK, TRIAL, check_slugs

logger = logging.getLogger(__name__)


def method_qualities(methods: Sequence[str], effect: float | Mapping[str, float]) -> dict[str, float]:
    """Latent qualities: a number steps down by ``effect`` from each method to the next (the first
    is best); a mapping gives each method's quality (unnamed methods get 0)."""
    if isinstance(effect, Mapping):
        unknown = [m for m in effect if m not in methods]
        if unknown:
            raise ValueError(f"effect names method(s) {unknown} that are not among {list(methods)}")
        return {m: float(effect.get(m, 0.0)) for m in methods}
    return {m: -float(effect) * i for i, m in enumerate(methods)}


# The most rows one simulated study may have (participants x trials x criteria x methods): building
# and writing a million rows peaks at 460 MB (measured, the interpreter and pandas included), so this
# bound keeps a study within about 4 GB of memory and a 400 MB CSV.
MAX_ROWS = 10_000_000


def size_problem(participants: int, trials: int, criteria: int, methods: int) -> str | None:
    """Why a study of this size is refused (more than ``MAX_ROWS`` rows), or None. Pure arithmetic:
    it runs before anything is allocated."""
    rows = participants * trials * criteria * methods
    if rows <= MAX_ROWS:
        return None
    return (f"participants x trials x criteria x methods = {participants} x {trials} x {criteria} x {methods} = "
            f"{rows:,} rows; a simulated study has at most {MAX_ROWS:,} (give fewer participants or trials)")


def simulate_rankings(methods: Sequence[str], participants: int, trials: int,
                      effect: float | Mapping[str, float] | Mapping[str, Mapping[str, float]] = 0.5,
                      criteria: Sequence[str] = PAPER_CRITERIA, trial_sd: float = 0.5,
                      seed: int = 0) -> pd.DataFrame:
    """A complete synthetic study in long format: participant, trial, criterion, method, rank, position.

    ``effect``: a number (step between adjacent methods, first best), a mapping method -> quality
    for every criterion, or a mapping criterion -> (method -> quality). Raises ``ValueError`` for a
    method or criterion named twice, fewer than two methods, no criterion, fewer than one participant
    or trial, or more than ``MAX_ROWS`` rows (checked before anything is allocated).
    """
    methods = list(methods)
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ValueError(f"methods: {', '.join(repeated)} given more than once in {','.join(methods)}; "
                         "name each method once")
    if len(methods) < 2:
        raise ValueError(f"methods: a study compares at least two methods, got {','.join(methods) or 'none'}")
    if participants < 1 or trials < 1:
        raise ValueError("participants and trials must be at least 1")
    criteria = list(criteria)
    if not criteria:
        raise ValueError("criteria: the list is empty; give at least one criterion")
    repeated = sorted({c for c in criteria if criteria.count(c) > 1})
    if repeated:
        raise ValueError(f"criteria: {', '.join(repeated)} given more than once; name each criterion once")
    check_slugs(criteria)        # what analyze refuses (two criteria of one file name) is not written either
    too_big = size_problem(participants, trials, len(criteria), len(methods))
    if too_big:
        raise ValueError(too_big)
    if isinstance(effect, Mapping) and effect and all(isinstance(v, Mapping) for v in effect.values()):
        quality = {c: method_qualities(methods, effect.get(c, {})) for c in criteria}
    else:
        quality = {c: method_qualities(methods, effect) for c in criteria}

    rng = np.random.default_rng(seed)
    k = len(methods)
    q = np.array([[quality[c][m] for m in methods] for c in criteria])            # (C, k)
    video = rng.normal(0.0, trial_sd, (trials, len(criteria), k))                   # (T, C, k)
    noise = rng.normal(0.0, 1.0, (participants, trials, len(criteria), k))          # (P, T, C, k)
    judgement = q[None, None] + video[None] + noise
    # rank 1 = the highest judgement; argsort of argsort turns scores into 0-based ranks
    rank = np.argsort(np.argsort(-judgement, axis=-1), axis=-1) + 1
    position = np.argsort(rng.random((participants, trials, k)), axis=-1) + 1       # (P, T, k)

    p_idx, t_idx, c_idx, m_idx = np.meshgrid(np.arange(participants), np.arange(trials),
                                             np.arange(len(criteria)), np.arange(k), indexing="ij")
    width_p, width_t = len(str(participants)), len(str(trials))
    return pd.DataFrame({
        PARTICIPANT: [f"P{i + 1:0{width_p}d}" for i in p_idx.ravel()],
        TRIAL: [f"t{i + 1:0{width_t}d}" for i in t_idx.ravel()],
        CRITERION: np.asarray(criteria, dtype=object)[c_idx.ravel()],
        METHOD: np.asarray(methods, dtype=object)[m_idx.ravel()],
        RANK: rank.ravel(),
        POSITION: position[p_idx, t_idx, m_idx].ravel(),
    })


def estimate_power(methods: Sequence[str], participants: int, trials: int,
                   effect: float | Mapping[str, float] = 0.5, replicates: int = 200,
                   alpha: float = 0.05, trial_sd: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """How often a study of this size finds a difference: the fraction of ``replicates`` simulated
    studies (one criterion each) where Friedman's test (blocks = participant x trial), Friedman's test
    across clips (blocks = trials: ``userstudy.rankings.by_trial``) and the paper's Kruskal-Wallis test
    have p < ``alpha``. With ``effect=0`` it is the false-positive rate.
    """
    hits = {"friedman": 0, "friedman_by_trial": 0, "kruskal_wallis": 0}
    progress = Progress(logger, "power", replicates, "simulated studies")
    for r in range(replicates):
        study = simulate_rankings(methods, participants, trials, effect, criteria=["criterion"],
                                  trial_sd=trial_sd, seed=seed + r)
        study["points"] = points_from_ranks(study[RANK], len(methods))
        hits["friedman"] += friedman(study, "points", METHOD, [PARTICIPANT, TRIAL])["p"] < alpha
        hits["friedman_by_trial"] += friedman(by_trial(study), "points", METHOD, TRIAL)["p"] < alpha
        hits["kruskal_wallis"] += kruskal_wallis(study, "points", METHOD)["p"] < alpha
        progress.advance()
    return pd.DataFrame({"test": list(hits), "power": [hits[t] / replicates for t in hits],
                         "replicates": replicates, "alpha": alpha})


def parse_effect(text: str) -> float | dict[str, float]:
    """``"0.5"`` -> 0.5; ``"a=1,b=0.5"`` -> {"a": 1.0, "b": 0.5}."""
    if "=" not in text:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--effect {text!r}: give a number or method=quality pairs") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"--effect {text!r}: give a finite number")
        return value
    effect = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            effect[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--effect: {item!r} is not method=number") from None
        if not math.isfinite(effect[name.strip()]):
            raise argparse.ArgumentTypeError(f"--effect: {item!r}: give a finite number")
    return effect


def simulate(methods: Sequence[str], participants: int = 20, trials: int = 30,
             out: str | os.PathLike | None = None,
             effect: float | Mapping[str, float] | Mapping[str, Mapping[str, float]] = 0.5,
             criteria: Sequence[str] = PAPER_CRITERIA, trial_sd: float = 0.5, seed: int = 0,
             power: int | None = None, alpha: float = 0.05) -> pd.DataFrame | None:
    """What the command does: write a synthetic study to ``out`` (``simulate_rankings``) and/or,
    with ``power`` = N, estimate the power of this design from N simulated studies
    (``estimate_power``, which takes a single mapping of qualities, not one per criterion).

    Returns the power table, or None without ``power``.
    """
    if out is None and power is None:
        raise ValueError("give out (write a study) and/or power (estimate power)")
    if out is not None:
        study = simulate_rankings(methods, participants, trials, effect, criteria, trial_sd, seed)
        write_text_atomic(out, study.to_csv(index=False))
        logger.info("%d rankings (%s x %s x %s x %d methods) written to %s", len(study),
                    cli.count(participants, "participant"), cli.count(trials, "trial"),
                    cli.count(len(criteria), "criterion", "criteria"), len(methods), out)
    if power is None:
        return None
    return estimate_power(methods, participants, trials, effect, power, alpha, trial_sd, seed)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("simulate", prog)
    parser.add_argument("--methods", type=cli.names, required=True, metavar="A,B,C", help="comma-separated, best first")
    parser.add_argument("--participants", type=cli.int_in(1, 100_000), default=20, metavar="N", help="participants per study")
    parser.add_argument("--trials", type=cli.int_in(1, 100_000), default=30, metavar="N", help="trials per study")
    parser.add_argument("--out", type=Path, metavar="CSV", help="rankings CSV to write (default: none; give --out and/or --power)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random numbers")
    parser.add_argument("--effect", type=parse_effect, default=0.5,
                        help="step in latent quality between adjacent methods, in noise standard "
                             "deviations, or method=quality pairs for every method: a=1,b=0.5,c=0")
    parser.add_argument("--criteria", type=cli.names, default=list(PAPER_CRITERIA), metavar="A,B",
                        help="comma-separated (default: the paper's four)")
    parser.add_argument("--trial-sd", type=cli.float_in(0.0, 1e6), default=0.5, metavar="SD",
                        help="standard deviation of the per-video effect shared by all participants")
    parser.add_argument("--power", type=cli.int_in(1, 1_000_000), metavar="N",
                        help="instead of (or besides) writing, simulate N studies and print how often "
                             "Friedman and Kruskal-Wallis reach p < --alpha (default: none)")
    parser.add_argument("--alpha", type=cli.float_in(1e-12, 0.5), default=0.05, help="significance level of --power")
    return parser


@cli.interruptible
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.out is None and args.power is None:
        parser.error("give --out (write a study) and/or --power N (estimate power)")
    cli.configure_logging()
    if args.out is not None and args.out.is_dir():
        return cli.fail(f"{args.out}: is a folder; --out is the rankings CSV file to write", parser.prog)
    blocker = cli.file_in_the_way(args.out) if args.out is not None else None
    if blocker is not None:
        return cli.fail(f"{blocker}: is a file, so {args.out} cannot be written (--out)", parser.prog)
    repeated = sorted({m for m in args.methods if args.methods.count(m) > 1})
    if repeated:
        return cli.fail(f"--methods {','.join(args.methods)}: {', '.join(repeated)} given more than once; "
                        "name each method once", parser.prog)
    unnamed = [m for m in args.methods if isinstance(args.effect, dict) and m not in args.effect]
    if unnamed:        # quality 0 by default: `a=0,b=-1` then made the unnamed c as good as a, without a word
        return cli.fail(f"--effect: give every method of --methods a quality (missing: {', '.join(unnamed)})",
                        parser.prog)
    try:
        power = simulate(args.methods, args.participants, args.trials, args.out, args.effect, args.criteria,
                         args.trial_sd, args.seed, args.power, args.alpha)
    except ValueError as error:
        return cli.fail(error, parser.prog)
    except OSError as error:   # a folder that does not exist or cannot be written
        return cli.fail(f"{error.filename}: {error.strerror or error}", parser.prog)
    if power is not None:
        print(power.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
