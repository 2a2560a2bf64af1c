"""The ``imac-bench`` command line: a thin layer over the library.

    imac-bench run --methods imac,s2g,mya [--data DIR] [--identities a,b] [--out runs/NAME] [--device cpu|cuda]
                   [--processes N]         # clips spread over N processes (or: accelerate launch -m bench run ...)
    imac-bench report [--run runs/NAME]                                       # tables + plots of a run
    imac-bench check --baseline results/toy [--run runs/NAME]                  # regression on results.json
                     [--update [--force] [--allow-undefined]                  # write the run as the baseline
                               [--allow-failed-checks] [--allow-fewer-methods]]
    imac-bench data toy --out DIR [--seed N] [--identities K] [--clips N]   # the embedded toy corpus
    imac-bench data validate DIR [--level files|full]                         # check a dataset
    imac-bench data preview DIR --out sheet.png                               # look at a dataset
    imac-bench data prepare RAW_DIR --identity NAME --out DIR [--motion FITS]  # raw videos -> dataset
    imac-bench data speakers TALKNET_DIR --out speakers.csv                   # TalkNet -> --speakers file
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from bench.check import check_run, update_baseline
from bench.config import load_bench_config
from bench.data.prepare.cli import add_prepare_arguments, add_speakers_arguments, prepare_command, speakers_command
from bench.data.preview import MAX_FRAMES_PER_ROW, save_contact_sheet
from bench.data.toy.corpus import LIMITS as TOY_LIMITS, ToyCorpusConfig, generate_toy_corpus
from bench.methods import check_method_name, known_methods
from bench.report import failed_checks, format_terminal, load_results, missing_videos, write_report
from imac import __version__
from imac.cli import add_validate_arguments, validate_command
from metrics.cli import CommandParser, add_command, help_texts, int_in, package_version, run_command
from metrics.device import resolve_device
from metrics.io.files import file_in_the_way
from metrics.distributed import one_process_argv, relaunch

# bench.runner is imported in _run only (it loads the metrics' networks and the run's machinery); diffusers
# and transformers load only with a method or the shared VAE that needs them (bench.methods.make_method,
# SharedModels.vae), so a run of external methods and controls never imports them.


def _data_toy(args: argparse.Namespace) -> int:
    config = ToyCorpusConfig(seed=args.seed, identities=args.identities, clips=args.clips,
                             test_clips=args.test_clips, size=args.size)
    start = time.perf_counter()
    manifest = generate_toy_corpus(args.out, config, progress=not args.quiet)
    print(f"toy corpus ({config.identities} identities x {config.clips} clips, {config.size}px, seed "
          f"{config.seed}) written to {manifest.parent} in {time.perf_counter() - start:.1f} s")
    return 0


def _data_validate(args: argparse.Namespace) -> int:
    return validate_command(args.dataset, args.level)


def _data_preview(args: argparse.Namespace) -> int:
    path = save_contact_sheet(args.dataset, args.out, frames_per_row=args.frames, split=args.split)
    print(f"contact sheet of {args.dataset} written to {path}")
    return 0


def _parse_generated(values: list[str]) -> dict[str, Path]:
    generated = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--generated {value!r}: expected NAME=DIR")
        check_method_name(name, f"--generated {value!r}")
        if name in generated:
            raise ValueError(f"--generated {value!r}: {name} is given twice (also {name}={generated[name]})")
        generated[name] = Path(folder)
    return generated


def _check_out_folder(out: Path) -> None:
    """``--out`` is a folder or can be made one: neither it nor a folder above it is a file."""
    blocker = file_in_the_way(out)
    if blocker is not None:
        what = "a file" if blocker == out else f"{blocker} is a file"
        raise ValueError(f"--out {out}: {what}, not a folder; give a folder")


def _out_error(error: OSError, out: Path) -> OSError:
    """``error`` named as ``--out``'s when it is about the run folder or a folder above it (one that cannot
    be made or written: no such parent, no permission, an immutable folder); was bare errno text,
    "[Errno 1] Operation not permitted: '/x/sub'". Any other error as it is."""
    if error.filename is None:
        return error
    failed = Path(error.filename).absolute()
    if failed not in (out.absolute(), *out.absolute().parents):
        return error
    return OSError(f"--out {out}: the run folder cannot be made or written there ({error.strerror or error}: "
                   f"{error.filename}); give another --out")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _run(args: argparse.Namespace) -> int:
    from bench.runner import RunSettings, run_benchmark  # diffusers: see the note at the top

    methods = _split(args.methods)
    generated = _parse_generated(args.generated)
    if not methods and not generated:
        raise ValueError("--methods: name at least one method (e.g. imac,s2g,mya), or give --generated NAME=DIR")
    _check_out_folder(args.out)
    resolve_device(args.device)        # a GPU torch does not see is named here, before any work
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: give at least 1 (or leave it out for torch's default)")
    config = load_bench_config(args.config)      # a bad config is told once, before processes are launched
    if args.processes != 1:
        return relaunch("bench", one_process_argv(args.command_argv, "--processes"), args.processes,
                        prog="imac-bench run")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = RunSettings(methods=methods, out=args.out, data=args.data, identities=_split(args.identities) or None,
                           device=args.device, seed=args.seed, config=config,
                           generated=generated, methods_file=args.methods_file, skip_missing=args.skip_missing,
                           progress=not args.quiet, command=f"imac-bench {shlex.join(args.command_argv)}")
    try:
        results = run_benchmark(settings)
    except OSError as error:
        raise _out_error(error, args.out) from None
    if results is None:          # another process of a launch: the main one writes and prints
        return 0
    paths = write_report(args.out, plots=not args.no_plots)
    print(format_terminal(results))
    print(f"report: {paths['report']}  table: {paths['csv']}  ({results.timings_s['total']:.0f} s)")
    return 3 if failed_checks(results) else 0   # the metrics got a known answer wrong


def _report(args: argparse.Namespace) -> int:
    paths = write_report(args.run, plots=not args.no_plots)
    results = load_results(args.run)
    print(format_terminal(results))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    missing = "" if args.no_plots else missing_videos(Path(args.run), results)
    if missing:
        print(f"not drawn: plots/frames.png and plots/beats.png: {missing}")
    return 0


def results_folder(text: str) -> Path:
    """argparse type of a run or baseline folder: its ``results.json`` given instead stands for the folder."""
    path = Path(text)
    if path.name == "results.json" and not path.is_dir():   # also a baseline's results.json to be written
        return path.parent
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file; give the folder that holds results.json")
    return path


def _check(args: argparse.Namespace) -> int:
    if args.force and not args.update:
        raise ValueError("--force goes with --update (it replaces a baseline of another config)")
    if args.allow_undefined and not args.update:
        raise ValueError("--allow-undefined goes with --update (it keeps undefined scores in the new baseline)")
    if args.allow_failed_checks and not args.update:
        raise ValueError("--allow-failed-checks goes with --update (it makes a run with failing control checks "
                         "the new baseline)")
    if args.allow_fewer_methods and not args.update:
        raise ValueError("--allow-fewer-methods goes with --update (it drops the methods the run lacks from "
                         "the baseline)")
    if args.update:
        tolerances = Path(args.baseline) / "tolerances.yaml"
        before = tolerances.read_text() if tolerances.is_file() else None
        folder = update_baseline(args.run, args.baseline, force=args.force, allow_undefined=args.allow_undefined,
                                 allow_failed_checks=args.allow_failed_checks,
                                 allow_fewer_methods=args.allow_fewer_methods)
        kept = ("tolerances.yaml kept" if tolerances.read_text() == before else
                "tolerances.yaml kept but for its protocol line, now the run's protocol")
        print(f"baseline {folder} updated from {args.run} " + (f"({kept})" if before is not None else
              "(new tolerances.yaml with the default margins: review it)"))
        return 0
    failures, notes = check_run(args.run, args.baseline)
    for note in notes:
        print(f"note: {note}")
    if failures:
        print(f"{len(failures)} difference(s) between {args.run} and the baseline {args.baseline}:")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print(f"{args.run} matches the baseline {args.baseline} within its tolerances")
    return 0


def build_parser() -> CommandParser:
    parser = CommandParser(prog="imac-bench", **help_texts(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version(__version__)}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = add_command(commands, "data", "datasets: toy, validate, prepare, preview, speakers",
                       description="Datasets in the project's format: generate the embedded toy corpus, validate "
                                   "a dataset, prepare one\nfrom raw videos, preview it, count active speakers.")
    data = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    toy_defaults = ToyCorpusConfig()
    toy = add_command(data, "toy", "generate the embedded toy corpus", handler=_data_toy,
                      wraps="bench.data.toy.corpus.generate_toy_corpus", resumable=True)
    toy.add_argument("--out", type=Path, required=True, help="folder to write (new, or a resumable run)")
    toy.add_argument("--seed", type=int_in(*TOY_LIMITS["seed"]), default=toy_defaults.seed,
                     help="random seed of the corpus")
    toy.add_argument("--identities", type=int_in(*TOY_LIMITS["identities"]), default=toy_defaults.identities,
                     help="number of speakers")
    toy.add_argument("--clips", type=int_in(*TOY_LIMITS["clips"]), default=toy_defaults.clips,
                     help="clips per speaker")
    toy.add_argument("--test-clips", type=int_in(*TOY_LIMITS["test_clips"]), default=toy_defaults.test_clips,
                     help="of those, test clips")
    toy.add_argument("--size", type=int_in(*TOY_LIMITS["size"]), default=toy_defaults.size,
                     help="frame side in pixels (even)")
    toy.add_argument("--quiet", action="store_true", help="no progress bar")

    validate = add_command(data, "validate", "check a dataset folder against the format", handler=_data_validate,
                           wraps="metrics.dataset.validate_dataset")
    add_validate_arguments(validate)

    prepare = add_command(data, "prepare", "raw videos of a speaker -> clips in the dataset format "
                          "(scene split, filters, audio, SMPL-X import, crop, split, statistics)",
                          handler=prepare_command, wraps="bench.data.prepare.pipeline.prepare_dataset",
                          resumable=True, epilog="exit status: 0, or 1 when no clip is kept, 2 on bad input")
    add_prepare_arguments(prepare)

    preview = add_command(data, "preview", "an image with frames and keypoints of every identity",
                          handler=_data_preview, wraps="bench.data.preview.save_contact_sheet")
    preview.add_argument("dataset", type=Path, help="dataset folder (manifest.jsonl)")
    preview.add_argument("--out", type=Path, required=True, help="image to write: .png, .jpg or .webp")
    preview.add_argument("--frames", type=int_in(1, MAX_FRAMES_PER_ROW), default=6, help="frames per identity")
    preview.add_argument("--split", choices=("train", "test"), default="test", help="split to show")

    speakers = add_command(data, "speakers", "active-speaker counts per clip from TalkNet outputs (for --speakers)",
                           handler=speakers_command, wraps="bench.data.prepare.speakers.talknet_speaker_counts")
    add_speakers_arguments(speakers)

    methods = ", ".join(m for m in known_methods() if m not in ("gt", "static", "shuffled"))
    run = add_command(commands, "run", "generate every test clip with each method, score, tabulate", handler=_run,
                      wraps="bench.runner.run_benchmark", resumable=True,
                      epilog="exit status: 0, or 3 when a control check fails (the metrics ordered a "
                             "known answer wrongly), 2 on bad input")
    run.add_argument("--methods", default="", help=f"comma-separated: {methods}, or a name from --methods-file "
                     "(the controls gt, static, shuffled always run)")
    run.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded toy corpus)")
    run.add_argument("--identities", default=None, help="comma-separated speakers (default: all)")
    run.add_argument("--out", type=Path, default=Path("runs/bench"), help="run folder (rerun to resume)")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    run.add_argument("--seed", type=int_in(0, 2 ** 32 - 1), default=0,
                     help="random seed of the training and the generation (numpy's 32 bits: IMAC's train.seed)")
    run.add_argument("--config", default="toy", help="bench config name or YAML path")
    run.add_argument("--generated", action="append", default=[], metavar="NAME=DIR",
                     help="evaluate videos made elsewhere: DIR/<identity>/<clip_id>.mp4 (repeatable)")
    run.add_argument("--methods-file", type=Path, default=None, help="YAML with command-template methods")
    run.add_argument("--skip-missing", action="store_true",
                     help="skip (and flag) missing or corrupt external videos instead of stopping")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 per "
                     "process under --processes); also how many of the run's first trainings (the shared VAE, "
                     "IMAC's stage 1, ...) run at once, on one thread each")
    run.add_argument("--processes", type=int, default=1, metavar="N",
                     help="spread the clips over N processes on this machine (torch.distributed.run; the same as "
                     "`accelerate launch --multi_gpu --num_processes N -m bench run ...`)")
    run.add_argument("--no-plots", action="store_true", help="tables only, no plots")
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    report = add_command(commands, "report", "tables (md, csv, tex) and plots of a run", handler=_report,
                         wraps="bench.report.write_report")
    report.add_argument("--run", type=results_folder, default=Path("runs/bench"),
                        help="run folder (or its results.json)")
    report.add_argument("--no-plots", action="store_true", help="tables only, no plots")

    check = add_command(commands, "check", "compare a run's results.json with a baseline's", handler=_check,
                        wraps="bench.check.check_run; --update: bench.check.update_baseline")
    check.add_argument("--baseline", type=results_folder, required=True,
                       help="baseline folder (or its results.json), e.g. results/toy")
    check.add_argument("--run", type=results_folder, default=Path("runs/bench"), help="run folder (or its results.json)")
    check.add_argument("--update", action="store_true", help="write the run's results as the new baseline")
    check.add_argument("--force", action="store_true", help="with --update: replace a baseline of another config "
                       "(other test clips, corpus or protocol), which --update alone refuses")
    check.add_argument("--allow-undefined", action="store_true", help="with --update: copy a run with undefined "
                       "(null) or missing scores, which --update alone refuses (the baseline would not guard them)")
    check.add_argument("--allow-failed-checks", action="store_true", help="with --update: copy a run whose control "
                       "checks fail, which --update alone refuses (the baseline would hold a wrong ordering)")
    check.add_argument("--allow-fewer-methods", action="store_true", help="with --update: copy a run without rows "
                       "for some of the baseline's methods, which --update alone refuses (their rows would leave "
                       "the baseline)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
