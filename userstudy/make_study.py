"""Make a study folder for ``userstudy.serve`` from one folder of videos per method.

    python -m userstudy.make_study --out STUDY --method imac=gen/imac --method s2g=gen/s2g \
        [--method ...] [--references refs/] [--criteria "visual quality,temporal consistency"] \
        [--title TEXT] [--instructions TEXT] [--seed TEXT]

A trial is a video file name (without suffix) present in every method's folder: ``gen/imac/t01.mp4``
and ``gen/s2g/t01.mp4`` make trial ``t01``. A name missing from some folder is an error, listed,
not skipped. The videos (and a reference per trial, matched by the same name, if ``--references``
is given) are copied into STUDY, and ``STUDY/study.json`` is written (format: ``userstudy.study``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from userstudy.study import StudyError, create_study


def _method(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"--method {text!r}: expected NAME=FOLDER")
    return name.strip(), Path(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m userstudy.make_study",
                                     description="Make a study folder from one folder of videos per method.")
    parser.add_argument("--out", type=Path, required=True, help="the study folder to create")
    parser.add_argument("--method", type=_method, action="append", required=True, metavar="NAME=FOLDER",
                        help="a method and its folder of videos (repeat for each method)")
    parser.add_argument("--references", type=Path, help="folder with a reference image/video per trial")
    parser.add_argument("--criteria", help="comma-separated criteria (default: the paper's four)")
    parser.add_argument("--title", default="Video ranking study")
    parser.add_argument("--instructions", default="")
    parser.add_argument("--seed", help="key of the randomisation (default: random)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [name for name, _ in args.method]
    if len(set(names)) != len(names):
        print(f"error: a method is given twice: {names}", file=sys.stderr)
        return 2
    criteria = [c.strip() for c in args.criteria.split(",") if c.strip()] if args.criteria else None
    try:
        study = create_study(args.out, dict(args.method), criteria=criteria, title=args.title,
                             instructions=args.instructions, references=args.references, seed=args.seed)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"study {study.title!r}: {len(study.trials)} trials x {len(study.methods)} methods, "
          f"{len(study.criteria)} criteria, written to {args.out}; serve it with "
          f"python -m userstudy.serve --study {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
