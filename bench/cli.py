"""The ``imac-bench`` command line: a thin layer over the library.

    imac-bench data toy --out DIR [--seed N] [--identities K] [--clips N]   # the embedded toy corpus
    imac-bench data validate DIR                                              # check a dataset
    imac-bench data preview DIR --out sheet.png                               # look at a dataset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from imac import __version__
from imac.cli import add_validate_arguments, validate_command


def _data_toy(args: argparse.Namespace) -> int:
    from imac.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus

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
    from imac.data.preview import save_contact_sheet

    path = save_contact_sheet(args.dataset, args.out, frames_per_row=args.frames, split=args.split)
    print(f"contact sheet of {args.dataset} written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imac-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: the toy corpus, validation").add_subparsers(
        dest="data_command", required=True)
    toy = data.add_parser("toy", help="generate the embedded toy corpus")
    toy.add_argument("--out", type=Path, required=True, help="folder to write (new, or a resumable run)")
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--identities", type=int, default=4, help="number of speakers (default 4)")
    toy.add_argument("--clips", type=int, default=10, help="clips per speaker (default 10)")
    toy.add_argument("--test-clips", type=int, default=2, help="of those, test clips (default 2)")
    toy.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    toy.add_argument("--quiet", action="store_true", help="no progress bar")
    toy.set_defaults(handler=_data_toy)

    validate = data.add_parser("validate", help="check a dataset folder against the format")
    add_validate_arguments(validate)
    validate.set_defaults(handler=_data_validate)

    preview = data.add_parser("preview", help="a PNG with frames and keypoints of every identity")
    preview.add_argument("dataset", type=Path)
    preview.add_argument("--out", type=Path, required=True, help="PNG file to write")
    preview.add_argument("--frames", type=int, default=6, help="frames per identity (default 6)")
    preview.add_argument("--split", choices=("train", "test"), default="test")
    preview.set_defaults(handler=_data_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"imac-bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
