"""The metrics on folders of videos, from the command line (python -m metrics).

    python -m metrics compute --fake DIR [--real DIR] [--metrics fgd,div,bas,fvd,...] [--out FILE.json|DIR/]
                              [--fgd-ae DIR] [--i3d PATH] [--extractor toy|dwpose] [--options FILE.yaml]
                              [--allow-mismatch frame_size,...]   # the sides' headers are compared first
                              [--processes N]     # clips spread over N processes (or: accelerate launch -m metrics compute)
    python -m metrics train-fgd-ae --data DATASET --out DIR [--steps 1000]
    python -m metrics sanity --data DATASET --out DIR
    python -m metrics protocol [--protocol NAME]          # print every constant of a protocol

The settings of compute can also come from a YAML file (--options FILE, keys: the fields of
metrics.cli.ComputeOptions); flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import logging
import dataclasses
import importlib.metadata
import json
import math
import os
import shlex
import sys
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metrics.device import resolve_device
from metrics.distributed import (PEER_ENDED_STATUS, MainProcessFailed, PeerProcessEnded, Stopped, current_processes,
                                 follow_launcher, launch_place, one_process_argv, peer_gone, relaunch, relaunched,
                                 stop_on_signals, told_by_main, work_done)
from metrics.evaluate import DEFAULT_CACHE, evaluate, format_table, make_extractor, write_result
from metrics.fgd_training import LATENT, train_fgd_autoencoder
from metrics.inputs import ALLOWABLE, normalise_allow
from metrics.io.cache import check_cache_root
from metrics.io.files import check_file_target
from metrics.options import OptionsError, build_options, field_range, ranged, read_yaml
from metrics.protocol import PRESETS, get_protocol, split_presets
from metrics.registry import DEFAULT_METRICS, METRIC_IDS, REGISTRY, check_weight_names, normalise_metrics
from metrics.results import result_paths
from metrics.sanity import format_sanity, run_sanity
from metrics.skeleton_ae import CONFIG_LIMITS as AUTOENCODER_LIMITS, CONFIG_NAME as AUTOENCODER_CONFIG
from metrics.skeleton_ae import WEIGHTS_NAME as AUTOENCODER_WEIGHTS
from metrics.skeleton_ae import checkpoint_hash

# -- the command-line style shared by imac-bench, imac and python -m metrics -------------------------
#
# Subcommands, each with one handler (``handler(args) -> exit status``) that is a thin layer over one
# library function, named in the subcommand's help; every option shows its default; ``--version``; a
# bad option or input gives one line on stderr and exit status 2, never a traceback.

PACKAGE = "imac-bench"


def package_version(fallback: str = "unknown") -> str:
    """The installed version of the imac-bench distribution, or ``fallback`` when it is not installed."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return fallback


def shown_default(value: Any) -> str:
    """A default as the help shows it: none, off/on, a comma-separated list, or the value."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with the range its type accepts (a ``NumberIn``
    type: ``int_in``, ``float_in``, ``option_type``) and its default (unless the help already names them)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        notes = []
        accepted = getattr(action.type, "range_text", None)
        if accepted and accepted not in text:
            notes.append(accepted)
        if not (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or "default" in text.lower()):
            # a --no-X flag (store_false) is off unless given, as a store_true flag: not its dest's True
            default = False if isinstance(action, argparse._StoreFalseAction) else action.default
            notes.append(f"default: {shown_default(default).replace('%', '%%')}")
        return f"{text} ({'; '.join(notes)})" if notes else text


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser with the shared help format and a one-line error (exit status 2).

    ``intermixed=True``: positionals may stand between options (``imac train stage1 --config tiny
    stage2.lr=1e-4 --quiet``), as with ``parse_intermixed_args``, also when this parser is a subcommand.
    """

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed
        self._intermixing = False

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):  # type: ignore[override]
        if not self._intermixed or self._intermixing:  # parse_known_intermixed_args calls back here twice
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None):  # type: ignore[override]
        """As argparse's, but an unknown argument after a subcommand is refused by that subcommand's name
        (``imac-bench run: error: ... (see imac-bench run --help)``), whose help lists what it takes."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = getattr(namespace, "command_prog", None) or self.prog
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extras)} (see {prog} --help)\n")
        return namespace

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def plain(text: str) -> str:
    """Docstring text for a terminal: without the double backticks of reStructuredText literals."""
    return text.replace("``", "")


def help_texts(doc: str | None) -> dict[str, str]:
    """description (the first paragraph) and epilog (the rest) of a command from its module docstring."""
    first, _, rest = plain(doc or "").strip().partition("\n\n")
    return {"description": " ".join(first.split()), "epilog": rest.strip("\n") or None}


def add_command(commands: argparse._SubParsersAction, name: str, summary: str, *,
                handler: Callable[[argparse.Namespace], int] | None = None, wraps: str | None = None,
                description: str | None = None, resumable: bool = False, **kwargs: Any) -> CommandParser:
    """A subcommand: ``summary`` in its parent's list and as its description, with the wrapped function.

    ``resumable``: rerunning the command after an interruption (Ctrl-C) continues where it stopped (a
    handler may set ``args.resumable`` to the sentence an interruption ends with instead).
    """
    text = summary if wraps is None else f"{summary} (Python: {wraps})"
    long = description or textwrap.fill(summary if wraps is None else f"{summary}.", 100)
    if wraps is not None and description is None:
        long += f"\nPython: {wraps}"
    parser = commands.add_parser(name, help=text, description=long, **kwargs)
    if handler is not None:
        parser.set_defaults(handler=handler, command_prog=parser.prog, resumable=resumable)
    return parser


# -- numeric options: one argparse type, its range shown in the help ----------------------------------

SEED_RANGE = (0, 2 ** 63 - 1)     # the seeds of python -m metrics (and of imac sample): within torch's 64 bits


class NumberIn:
    """An argparse type: an ``int`` or a finite ``float`` within bounds (``ge``: >=, ``gt``: >, ``le``: <=,
    ``lt``: <; None: unbounded there), the bounds of ``metrics.options.ranged`` fields.

    A value that is not a number, not finite or out of range is an ``argparse.ArgumentTypeError``
    (argparse names the option: ``argument --steps: 0 is less than 1``); ``range_text`` is what the
    help shows (``HelpFormatter``).
    """

    def __init__(self, kind: type, ge: float | None = None, gt: float | None = None, le: float | None = None,
                 lt: float | None = None) -> None:
        if kind not in (int, float):
            raise TypeError(f"NumberIn takes int or float, got {kind!r}")
        self.kind, self.ge, self.gt, self.le, self.lt = kind, ge, gt, le, lt
        self.__name__ = kind.__name__     # argparse's name of the type in its own messages

    @property
    def range_text(self) -> str:
        """The accepted values in words: ``1..100`` (integers), ``0 to 1``, ``>= 1``, ``> 0 and <= 1``;
        "" when unbounded."""
        if self.ge is not None and self.le is not None and self.gt is None and self.lt is None:
            between = ".." if self.kind is int else " to "
            return f"{_number(self.ge)}{between}{_number(self.le)}"
        bounds = [f"{sign} {_number(bound)}" for sign, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le),
                                                                 ("<", self.lt)) if bound is not None]
        return " and ".join(bounds)

    def __call__(self, text: str) -> int | float:
        noun = "an integer" if self.kind is int else "a number"
        try:
            value = self.kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        inside = ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                  and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        if not inside:
            inclusive = self.gt is None and self.lt is None and self.ge is not None
            if inclusive and self.le is None:
                raise argparse.ArgumentTypeError(f"{_number(value)} is less than {_number(self.ge)}")
            if inclusive:
                raise argparse.ArgumentTypeError(f"{_number(value)} is outside {self.range_text}")
            raise argparse.ArgumentTypeError(f"must be {self.range_text}, got {_number(value)}")
        return value

    def __repr__(self) -> str:
        return f"NumberIn({self.kind.__name__}, {self.range_text or 'any'})"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def int_in(low: int, high: int | None = None) -> NumberIn:
    """An argparse type: an integer in [low, high], or at least ``low`` when ``high`` is None (a bound
    checked later, e.g. against a model's window; argparse names the option in the error)."""
    return NumberIn(int, ge=low, le=high)


def float_in(ge: float | None = None, le: float | None = None, *, gt: float | None = None,
             lt: float | None = None) -> NumberIn:
    """An argparse type: a finite number within the bounds (``float_in(0, 1)``: 0..1; ``float_in(gt=0)``: > 0)."""
    return NumberIn(float, ge=ge, gt=gt, le=le, lt=lt)


def existing_folder(text: str) -> Path:
    """An argparse type: a folder that exists (argparse names the option in the error)."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: " + ("a file, not a folder" if path.exists() else "no such folder"))
    return path


def option_type(kind: type, name: str) -> NumberIn:
    """The argparse type of the numeric field ``name`` of the options dataclass ``kind``: its type (int or
    float, also as ``X | None``) within the range its ``metrics.options.ranged`` declares, so that the
    command line and the options loader take the same values from one declaration."""
    hint = typing.get_type_hints(kind)[name]
    numbers = [arg for arg in (typing.get_args(hint) or (hint,)) if arg in (int, float)]
    if len(numbers) != 1:
        raise TypeError(f"{kind.__name__}.{name}: not an int or float field ({hint!r})")
    return NumberIn(numbers[0], **field_range(kind, name))


def _one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    # "N problems:" then one per line -> "N problems: first; second"
    joined = "".join(line + ("" if last else " " if line.endswith(":") else "; ")
                     for last, line in ((i == len(lines) - 1, line) for i, line in enumerate(lines)))
    return joined or type(error).__name__


PROJECT_LOGGERS = ("metrics", "imac", "bench")


def configure_logging(level: int = logging.INFO) -> None:
    """Show the project's log records (what a command is doing) as plain lines on stderr.

    Only the project's loggers are set: third-party libraries keep their own levels.
    """
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    ``logging.StreamHandler()`` keeps the stream it was made with; when that stream is replaced
    and closed (a test harness capturing output, an embedding application), every later record
    fails with "I/O operation on closed file".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                errors: tuple[type[BaseException], ...] = (ValueError, OSError)) -> int:
    """Parse ``argv``, set up logging and run the chosen handler; ``errors`` become one line on
    stderr and exit status 2, an interruption (Ctrl-C) one line and exit status 130, a stop signal
    (SIGTERM, SIGUSR1: ``metrics.distributed.Stopped``; a single process's default would end it without a
    word) one line and exit status 128 + the signal, a closed pipe on stdout (``| head``) nothing and exit
    status 141.

    In a launch of several processes, the other processes' lines name theirs ("process 2 of 4"); one
    stopped by the main process's failure (``MainProcessFailed``, which the main one reports) says
    nothing and ends with status 0, so that the launcher does not stop the main process before it has
    ended with its own status (the launch's); one whose peer went away (``PeerProcessEnded``, or a
    collective's error that ``metrics.distributed.peer_gone`` recognises) says so in one line, or under
    ``--processes N`` (``relaunch``, which names the failed process) nothing, like the others'
    interruption; log records every process makes alike are the main one's alone (``told_by_main``). A
    launched process ends by SIGTERM as by an exception (``follow_launcher``), and once its work is over
    at once, without raising into an exit handler (``work_done``)."""
    args = parser.parse_args(argv)
    args.command_argv = list(sys.argv[1:] if argv is None else argv)   # for a relaunch (--processes)
    configure_logging()
    prog = getattr(args, "command_prog", parser.prog)
    place = launch_place()
    if place is not None and place[0] != 0:
        prog = f"{prog} (process {place[0] + 1} of {place[1]})"
    told_by_main([handler for name in PROJECT_LOGGERS for handler in logging.getLogger(name).handlers])
    follow_launcher()
    # under --processes N the launcher names the process that failed: the others stop without a word
    quiet_peers = relaunched()
    try:
        if place is None:      # a launched process follows its launcher (follow_launcher)
            with stop_on_signals():
                return _handled(args, prog, place, quiet_peers, errors)
        return _handled(args, prog, place, quiet_peers, errors)
    finally:
        work_done()


def _handled(args: argparse.Namespace, prog: str, place, quiet_peers: bool, errors) -> int:
    """``args.handler(args)``, its failures told as ``run_command`` says."""
    try:
        return args.handler(args)
    except MainProcessFailed:
        return 0
    except PeerProcessEnded as error:
        if quiet_peers:
            return PEER_ENDED_STATUS
        print(f"{prog}: stopped: {_one_line(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:        # e.g. DDP's all-reduce when another process was killed
        if place is None or not peer_gone(error):
            raise
        if quiet_peers:
            return PEER_ENDED_STATUS
        print(f"{prog}: stopped: another process of the launch ended while this one worked with it "
              f"({_one_line(error).split('. ')[0][:200]})", file=sys.stderr)
        return 2
    except BrokenPipeError:      # the reader of the output went away (`| head`): no error of the command's
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # (the exit's flush would fail again)
        return 141               # 128 + SIGPIPE, as a command killed by the pipe reports it
    except errors as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Stopped as error:                 # SIGTERM, SIGUSR1: a scheduler's cancellation or notice
        if place is not None and place[0] != 0:
            return 128 + error.number        # the main process says it, once
        told = f"{error.kept}; rerun the same command to resume" if error.kept else _resume_words(args)
        print(f"{prog}: stopped by {error.name}" + (f" {told}" if error.kept else f"; {told}" if told else ""),
              file=sys.stderr)
        return 128 + error.number
    except KeyboardInterrupt:
        if quiet_peers and place is not None and place[0] != 0:
            return 130                   # the main process says it, once
        told = _resume_words(args)
        print(f"{prog}: interrupted" + (f"; {told}" if told else ""), file=sys.stderr)
        return 130


def _resume_words(args: argparse.Namespace) -> str:
    """What an interrupted command says of a rerun: ``args.resumable`` when a sentence, else the common one
    when it is true, else nothing."""
    resumable = getattr(args, "resumable", False)
    if isinstance(resumable, str):
        return resumable
    return "finished work is kept, rerun the same command to resume" if resumable else ""


# -- the metrics commands ---------------------------------------------------------------------------

PROG = "python -m metrics"
COMPUTE_SECTION = "metrics compute"


@dataclass
class ComputeOptions:
    """The settings of ``python -m metrics compute`` (the keys of its --options YAML file)."""

    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))   # metrics.registry ids
    protocol: str = "imac-bench"                 # presets of metrics.protocol.PRESETS, '+'-combined
    extractor: Literal["toy", "dwpose"] = "toy"
    dwpose_detector: str | None = None           # yolox_l.onnx, with extractor dwpose
    dwpose_pose: str | None = None               # dw-ll_ucoco_384.onnx, with extractor dwpose
    fgd_ae: str | None = None                    # skeleton autoencoder folder (fgd, div)
    i3d: str | None = None                       # I3D weights; None: the untrained stand-in (FVD*)
    i3d_seed: int = ranged(0, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    split: Literal["train", "test", "all"] = "test"
    cache: str | None = None                     # None: metrics.evaluate.DEFAULT_CACHE; "none": no cache
    skip_bad: bool = False
    allow_mismatch: list[str] = field(default_factory=list)   # input properties allowed to differ (metrics.inputs)
    allow_resolution_mismatch: bool = False      # the same as allow_mismatch: [frame_size]
    device: str = "cpu"
    weights: dict[str, str] = field(default_factory=dict)   # hook metrics' local weight files (syncnet: PATH)


def load_compute_options(values: Mapping[str, Any] | None, section: str = COMPUTE_SECTION) -> ComputeOptions:
    """``ComputeOptions`` from a mapping through ``build_options``; ``OptionsError`` names section and key."""
    options = build_options(ComputeOptions, values, section)
    try:
        split_presets(options.protocol)
    except ValueError as error:
        raise OptionsError(f"{section}: {error}") from None
    if not options.metrics:
        raise OptionsError(f"{section}: metrics: name at least one of {', '.join(METRIC_IDS)}")
    try:
        options.metrics = list(normalise_metrics(options.metrics))
    except ValueError as error:
        raise OptionsError(f"{section}: metrics: {error}") from None
    try:
        normalise_allow(options.allow_mismatch)
    except ValueError as error:
        raise OptionsError(f"{section}: allow_mismatch: {error}") from None
    return options


PROTOCOL_HELP = (f"metric protocol: imac-bench (default) or presets of different metrics joined by '+' "
                 f"(e.g. videogpt+emage); presets: {', '.join(sorted(PRESETS))}")


def preset_names(text: str) -> str:
    """argparse type of ``--protocol``: the text, once ``metrics.protocol.split_presets`` accepts it."""
    try:
        split_presets(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _weights(text: str) -> dict[str, str]:
    """argparse type of ``--weights NAME=PATH,NAME=PATH``."""
    pairs = {}
    for part in _comma_list(text):
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise argparse.ArgumentTypeError(f"--weights: {part!r} is not NAME=PATH")
        pairs[name.strip()] = path.strip()
    return pairs


def _cache_dir(cache: str | None) -> Path | None:
    """The content cache folder of ``--cache`` (None: the default; "none": no cache), checked to be a
    folder or one that can be made (``NotADirectoryError`` naming it), before any work."""
    if cache is None:
        return check_cache_root(DEFAULT_CACHE)
    return None if cache == "none" else check_cache_root(cache)


def _extractor(name: str, detector: str | None, pose: str | None, device: str):
    return make_extractor(name, detector, pose, device)


def _compute_options(args: argparse.Namespace) -> ComputeOptions:
    """The --options file, then the setting flags given on the command line, through the options loader."""
    if args.options and not args.options.is_file():
        raise FileNotFoundError(f"--options {args.options}: no such file")
    values = read_yaml(args.options) if args.options else {}
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(ComputeOptions)
                   if hasattr(args, f.name)})
    section = f"{COMPUTE_SECTION} ({args.options})" if args.options else COMPUTE_SECTION
    return load_compute_options(values, section)


RESULT_NAME = "evaluation.json"     # compute's result file inside an --out folder (a run's results.json is bench's)


def result_file(text: str) -> Path:
    """argparse type of compute's ``--out``: the JSON result file to write (its CSV goes beside it).

    ``FILE.json`` as given (a name without the suffix gets it: ``out/eval`` -> ``out/eval.json``); an
    existing folder, or a path ending in ``/``, gets ``evaluation.json`` (and ``evaluation.csv``) inside,
    never a file beside the folder.
    """
    path = Path(text)
    if text.endswith(("/", "\\")) or path.is_dir():
        return path / RESULT_NAME
    return path


def check_given_paths(options: ComputeOptions) -> None:
    """Every weight file or folder the options name exists, whether or not a selected metric reads it
    (a mistyped path is named, not ignored): ``FileNotFoundError`` naming the option and the path; and no
    weight file goes by a name no metric reads (``ValueError``: ``check_weight_names``)."""
    check_weight_names(options.weights)
    given = [("--fgd-ae", options.fgd_ae), ("--i3d", options.i3d), ("--dwpose-detector", options.dwpose_detector),
             ("--dwpose-pose", options.dwpose_pose),
             *((f"--weights {name}", path) for name, path in options.weights.items())]
    for option, path in given:
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{option} {path}: no such file or folder")


def _compute(args: argparse.Namespace) -> int:
    options = _compute_options(args)
    check_given_paths(options)
    # what was computed before an interruption stays in the content cache: a rerun reuses it
    args.resumable = _cache_dir(options.cache) is not None
    device = resolve_device(options.device)     # a GPU torch does not see is named here, before any work
    for target in result_paths(args.out) if args.out else ():
        check_file_target(target, "result file")     # not after the evaluation
        if target.exists() and not args.overwrite:   # another selection's numbers would be lost without a word
            raise FileExistsError(f"{target}: a result is there already; give another --out, or --overwrite to "
                                  "replace it")
    if args.processes != 1:
        return relaunch("metrics", one_process_argv(args.command_argv, "--processes"), args.processes,
                        prog=f"{PROG} compute")
    processes = current_processes()
    result = evaluate(args.real, args.fake, metrics=options.metrics, protocol=get_protocol(options.protocol),
                      autoencoder=options.fgd_ae, i3d=options.i3d, i3d_seed=options.i3d_seed,
                      extractor=_extractor(options.extractor, options.dwpose_detector, options.dwpose_pose, device),
                      cache_dir=_cache_dir(options.cache), split=None if options.split == "all" else options.split,
                      on_error="skip" if options.skip_bad else "raise", allow=options.allow_mismatch,
                      allow_resolution_mismatch=options.allow_resolution_mismatch, device=device,
                      progress=None if args.quiet else _log, processes=processes, weights=options.weights,
                      command=f"{PROG} {shlex.join(args.command_argv)}")
    if result is None:                 # another process of a launch: the main one prints and writes
        return 0
    print(format_table(result))
    if args.out:
        json_path, csv_path = write_result(result, args.out)
        print(f"written {json_path} and {csv_path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    check_file_target(args.out / AUTOENCODER_CONFIG, "autoencoder folder")    # not after the training
    held = [args.out / name for name in (AUTOENCODER_CONFIG, AUTOENCODER_WEIGHTS) if (args.out / name).exists()]
    if held and not args.overwrite:     # FGDs compare only under one checkpoint: never replaced without a word
        weights = args.out / AUTOENCODER_WEIGHTS
        which = f" (checkpoint {checkpoint_hash(args.out)})" if weights.is_file() else ""
        raise FileExistsError(f"{args.out}: holds a skeleton autoencoder{which}; FGD and Diversity compare only "
                              "under one checkpoint: give another --out, or --overwrite to replace it")
    checkpoint, info = train_fgd_autoencoder(
        args.data, args.out, get_protocol(args.protocol),
        _extractor(args.extractor, args.dwpose_detector, args.dwpose_pose, device), keypoints=args.keypoints,
        split=args.split, steps=args.steps, latent=args.latent, seed=args.seed, cache_dir=_cache_dir(args.cache),
        progress=None if args.quiet else _log, device=device)
    print(f"skeleton autoencoder {checkpoint} written to {args.out}: {info['training_windows']} windows, "
          f"L1 {info['first_l1']:.4f} -> {info['final_l1']:.4f}")
    return 0


def _sanity(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    report = run_sanity(args.data, args.out, get_protocol(args.protocol), autoencoder=args.fgd_ae, i3d=args.i3d,
                        extractor=args.extractor, ae_steps=args.steps, cache_dir=_cache_dir(args.cache),
                        metrics=tuple(args.metrics.split(",")), progress=None if args.quiet else _log,
                        dwpose_detector=args.dwpose_detector, dwpose_pose=args.dwpose_pose,
                        device=device)
    print(format_sanity(report))
    return 0 if report["passed"] else 1


def _protocol(args: argparse.Namespace) -> int:
    protocol = get_protocol(args.protocol)
    print(json.dumps({"label": protocol.label, **protocol.to_dict()}, indent=2))
    return 0


def _add_common(parser: argparse.ArgumentParser, settings: bool = False) -> None:
    """The options every metrics command takes; ``settings``: compute's, merged with its --options file.

    Setting flags default to "not given" (so that the file's value stays) and show ComputeOptions' default.
    """
    defaults = ComputeOptions()

    def option(*flags: str, key: str, help: str, **kwargs: Any) -> None:
        value = getattr(defaults, key)
        if settings:
            kwargs["default"] = argparse.SUPPRESS
            if "default" not in help.lower():
                help = f"{help} (default: {shown_default(value)})"
        else:
            kwargs["default"] = value
        parser.add_argument(*flags, dest=key, help=help, **kwargs)

    option("--protocol", key="protocol", type=preset_names, help=PROTOCOL_HELP)
    option("--extractor", key="extractor", choices=("toy", "dwpose"),
           help="pose extractor: toy (toy corpus markers) or dwpose (real videos)")
    option("--dwpose-detector", key="dwpose_detector", metavar="FILE", help="yolox_l.onnx (local path), with --extractor dwpose")
    option("--dwpose-pose", key="dwpose_pose", metavar="FILE", help="dw-ll_ucoco_384.onnx (local path), with --extractor dwpose")
    option("--cache", key="cache", metavar="DIR", help="content cache folder of keypoints and I3D features; 'none' disables "
           "(default: ~/.cache/imac-bench)")
    option("--device", key="device", help="cpu, cuda[:N] or auto (a GPU if torch sees one)")
    if settings:
        option("--metrics", key="metrics", type=_comma_list, metavar="LIST",
               help=f"comma-separated metric ids (default {','.join(DEFAULT_METRICS)}); known: {','.join(METRIC_IDS)}")
        option("--weights", key="weights", type=_weights, metavar="NAME=PATH,...",
               help="local weight files of metrics that need them (a metric without its file is left out, or "
                    "computed by a starred stand-in)")
        option("--fgd-ae", key="fgd_ae", metavar="DIR", help="skeleton autoencoder folder (for fgd and div)")
        option("--i3d", key="i3d", metavar="FILE", help="I3D weights (i3d_pretrained_400.pt or i3d_torchscript.pt); "
               "without: an untrained stand-in, reported as FVD*")
        option("--i3d-seed", key="i3d_seed", type=option_type(ComputeOptions, "i3d_seed"), metavar="N",
               help="seed of the untrained stand-in I3D")
        option("--split", key="split", choices=("train", "test", "all"), help="split of a real dataset folder")
        option("--skip-bad", key="skip_bad", action="store_true", help="skip the clips that cannot be scored and "
               "list them with why: unreadable or truncated files, and clips a metric cannot read (shorter than a "
               "window, no pose found: for a method, a failure that then weighs nothing; without the flag it stops "
               "the run, naming it). A skipped clip leaves its partner unpaired: the run then needs "
               "--allow-mismatch clips")
        option("--allow-mismatch", key="allow_mismatch", type=_comma_list, metavar="LIST",
               help=f"input properties allowed to differ between the sides, comma-separated: {', '.join(ALLOWABLE)} "
               "(recorded in the result; the headers are checked before any decoding)")
        option("--allow-resolution-mismatch", key="allow_resolution_mismatch", action="store_true",
               help="the same as --allow-mismatch frame_size")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, **help_texts(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compute = add_command(commands, "compute", "metrics of generated videos against real ones",
                          handler=_compute, wraps="metrics.evaluate.evaluate")
    compute.add_argument("--real", type=Path, metavar="DIR", help="real videos: a dataset folder or <identity>/<clip>.mp4 files "
                         f"(needed by {', '.join(m for m, spec in REGISTRY.items() if spec.two_sided or spec.paired)}; "
                         "without it, drift and csim measure each generated clip from its own first frame, and BAS "
                         "reads each generated clip's own sound)")
    compute.add_argument("--fake", type=Path, required=True, metavar="DIR", help="generated videos: <identity>/<clip>.mp4")
    compute.add_argument("--out", type=result_file, metavar="PATH",
                         help=f"result file FILE.json (FILE.csv is written beside it; a name without .json gets it), "
                         f"or a folder: an existing one, or a path ending in '/', gets {RESULT_NAME} and "
                         f"{Path(RESULT_NAME).with_suffix('.csv')} inside; default: print only")
    compute.add_argument("--overwrite", action="store_true", help="replace the result file --out names when it "
                         "exists (without it, an existing result is refused before any work, not lost)")
    compute.add_argument("--processes", type=int_in(1), default=1, metavar="N",
                         help="spread the clips over N processes on this machine (torch.distributed.run; the "
                         "same as `accelerate launch --multi_gpu --num_processes N -m metrics compute ...`)")
    compute.add_argument("--options", type=Path, metavar="FILE", help="YAML file of settings (keys: the setting flags' names "
                         "with _, e.g. fgd_ae: DIR: " + ", ".join(f.name for f in dataclasses.fields(ComputeOptions))
                         + "; not --processes, --out or the folders); flags override it; default: none")
    _add_common(compute, settings=True)

    train = add_command(commands, "train-fgd-ae", "train the FGD skeleton autoencoder on a dataset",
                        handler=_train, wraps="metrics.fgd_training.train_fgd_autoencoder")
    train.add_argument("--data", type=Path, required=True, help="dataset folder (manifest.jsonl)")
    train.add_argument("--out", type=Path, required=True, help="autoencoder folder to write (config.json and "
                       "model.safetensors inside)")
    train.add_argument("--split", default="train", help="split of the dataset to train on")
    train.add_argument("--keypoints", choices=("extract", "dataset"), default="extract",
                       help="extract with --extractor or use the dataset's keypoint files")
    train.add_argument("--steps", type=int_in(1), default=1000, metavar="N", help="training steps")
    train.add_argument("--latent", type=int_in(1, AUTOENCODER_LIMITS["latent"]), default=LATENT, metavar="N",
                       help="latent size (the dimension FGD and Diversity are measured in)")
    train.add_argument("--seed", type=int_in(*SEED_RANGE), default=0, metavar="N", help="random seed")
    train.add_argument("--overwrite", action="store_true", help="replace the autoencoder --out holds (FGDs "
                       "computed with it are then not comparable with new ones)")
    _add_common(train)

    sanity = add_command(commands, "sanity", "check that the metrics order known controls correctly",
                         handler=_sanity, wraps="metrics.sanity.run_sanity")
    sanity.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. the toy corpus)")
    sanity.add_argument("--out", type=Path, required=True, help="folder for the controls and the report")
    sanity.add_argument("--fgd-ae", type=Path, help="an autoencoder folder (default: train one)")
    sanity.add_argument("--i3d", type=Path, help="I3D weights (default: the untrained stand-in)")
    sanity.add_argument("--steps", type=int_in(1), default=400, metavar="N",
                        help="autoencoder training steps when training one")
    sanity.add_argument("--metrics", default="fgd,div,bas,fvd",
                        help="comma-separated; FVD with I3D at 224 px is the slow part on a CPU")
    _add_common(sanity)

    protocol = add_command(commands, "protocol", "print every constant of a protocol preset",
                           handler=_protocol, wraps="metrics.protocol.get_protocol")
    protocol.add_argument("--protocol", default="imac-bench", type=preset_names, help=PROTOCOL_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, errors=(ValueError, OSError, KeyError))


if __name__ == "__main__":
    sys.exit(main())
