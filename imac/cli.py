"""The ``imac`` command line of the reference model.

    imac validate DATASET [--level files|full]    # check a dataset before training on it

Training (``imac train stage1|stage2``) and sampling (``imac sample``) are added with the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imac import __version__


def validate_command(dataset: Path, level: str = "full") -> int:
    """Print every problem of a dataset (exit 1) or a one-line summary (exit 0)."""
    from imac.data.manifest import read_manifest, validate_dataset

    problems = validate_dataset(dataset, level=level)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{dataset}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    clips = read_manifest(dataset)
    identities = sorted({c.identity for c in clips})
    splits = {s: sum(c.split == s for c in clips) for s in ("train", "test")}
    print(f"{dataset}: ok, {len(clips)} clips ({splits['train']} train, {splits['test']} test), "
          f"{len(identities)} identities ({', '.join(identities)})")
    return 0


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--level", choices=("files", "full"), default="full",
                        help="files: referenced files exist; full: also frame counts, fps, values")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imac", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a dataset folder against the format")
    add_validate_arguments(validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        return validate_command(args.dataset, args.level)
    return 2


if __name__ == "__main__":
    sys.exit(main())
