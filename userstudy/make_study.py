"""Make a study folder for ``userstudy.serve`` from one folder of videos per method.

    python -m userstudy make-study --out STUDY --method imac=gen/imac --method s2g=gen/s2g \
        [--method ...] [--references refs/] [--criteria "visual quality,temporal consistency"] \
        [--title TEXT] [--instructions TEXT] [--seed TEXT]

(``python -m userstudy.make_study`` is the same command.) A trial is a video file name (without
suffix) present in every method's folder: ``gen/imac/t01.mp4`` and ``gen/s2g/t01.mp4`` make trial
``t01``. A name missing from some folder is an error, listed, not skipped. The videos (and a
reference per trial, matched by the same name, if ``--references`` is given) are copied into STUDY,
and ``STUDY/study.json`` is written (format: ``userstudy.study``). The Python API is ``make_study``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

from userstudy import cli
from userstudy.files import write_text_atomic
from userstudy.schema import PAPER_CRITERIA
from userstudy.study import (
    DEFAULT_TITLE,
    ID_PATTERN,
    REFERENCE_SUFFIXES,
    STUDY_FILE,
    VIDEO_SUFFIXES,
    Study,
    StudyError,
    default_question,
    name_slug,
    parse_study,
)

logger = logging.getLogger(__name__)


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def make_study(out: str | os.PathLike, method_folders: dict[str, str | os.PathLike],
               criteria: list[str] | None = None, title: str = DEFAULT_TITLE,
               instructions: str = "", references: str | os.PathLike | None = None,
               seed: str | None = None) -> Study:
    """Make a study folder from one folder of videos per method (the command); returns the checked study.

    A trial is a file name (without suffix) present in every method's folder; names missing from
    some folders are errors, not silently skipped. Videos (and references, matched by the same
    name) are copied into ``out/videos/<method>/`` and ``out/references/``.
    """
    out = Path(out)
    if (out / STUDY_FILE).exists():
        raise StudyError([f"{out / STUDY_FILE} exists already; choose a new folder"])
    problems = []
    if len(method_folders) < 2:
        problems.append("give at least two methods")
    videos = {}
    for method, folder in method_folders.items():
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"method {method!r}: {folder} is not a folder")
            continue
        videos[method] = _files_by_stem(folder, VIDEO_SUFFIXES)
        if not videos[method]:
            problems.append(f"method {method!r}: no video ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    folder_names = {m: name_slug(m) for m in method_folders}
    if len(set(folder_names.values())) != len(folder_names) or "" in folder_names.values():
        problems.append(f"method names must differ in their letters and digits: {list(method_folders)}")
    if problems:
        raise StudyError(problems)
    stems = sorted(set().union(*[set(v) for v in videos.values()]))
    for stem in stems:
        lacking = [m for m in videos if stem not in videos[m]]
        if lacking:
            problems.append(f"video {stem!r} is missing for {', '.join(lacking)}")
        if not ID_PATTERN.match(stem):
            problems.append(f"video name {stem!r} cannot be a trial id (letters, digits, '.', '_', '-')")
    reference_files = {}
    if references is not None and not Path(references).is_dir():
        problems.append(f"references: {references} is not a folder")
    elif references is not None:
        reference_files = _files_by_stem(Path(references), REFERENCE_SUFFIXES)
        lacking = [s for s in stems if s not in reference_files]
        if lacking:
            problems.append(f"no reference in {references} for {', '.join(lacking)}")
    if problems:
        raise StudyError(problems)

    out.mkdir(parents=True, exist_ok=True)
    trials = []
    for stem in stems:
        entry = {"id": stem, "videos": {}}
        for method in method_folders:
            source = videos[method][stem]
            relative = f"videos/{folder_names[method]}/{source.name}"
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out / relative)
            entry["videos"][method] = relative
        if references is not None:
            relative = f"references/{reference_files[stem].name}"
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reference_files[stem], out / relative)
            entry["reference"] = relative
        trials.append(entry)
    criteria = list(criteria) if criteria else list(PAPER_CRITERIA)
    document = {
        "title": title, "instructions": instructions, "seed": seed or secrets.token_hex(8),
        "methods": list(method_folders),
        "criteria": [{"name": c, "question": default_question(c)} for c in criteria],
        "trials": trials,
    }
    study = parse_study(document, out)
    write_text_atomic(out / STUDY_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    logger.info("study %r: %d trials x %d methods, %d criteria, written to %s; serve it with "
                "python -m userstudy serve --study %s", study.title, len(study.trials), len(study.methods),
                len(study.criteria), out, out)
    return study


def _method(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"--method {text!r}: expected NAME=FOLDER")
    return name.strip(), Path(folder)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("make-study", prog)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the study folder to create")
    parser.add_argument("--method", type=_method, action="append", required=True, metavar="NAME=FOLDER",
                        help="a method and its folder of videos (repeat for each method)")
    parser.add_argument("--references", type=Path, metavar="DIR",
                        help="folder with a reference image or video per trial, named like the trial's videos "
                             "(default: none)")
    parser.add_argument("--criteria", type=cli.names, metavar="A,B", help="comma-separated criteria (default: the paper's four)")
    parser.add_argument("--title", default=DEFAULT_TITLE, metavar="TEXT", help="the page's title")
    parser.add_argument("--instructions", default="", metavar="TEXT",
                        help="text shown above the trials (default: none; the page then says how many "
                             "trials and criteria there are)")
    parser.add_argument("--seed", metavar="TEXT", help="key of the randomisation (default: random)")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    cli.configure_logging()
    names = [name for name, _ in args.method]
    if len(set(names)) != len(names):
        return cli.fail(f"a method is given twice: {names}")
    try:
        make_study(args.out, dict(args.method), criteria=args.criteria, title=args.title,
                   instructions=args.instructions, references=args.references, seed=args.seed)
    except StudyError as error:
        return cli.fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
