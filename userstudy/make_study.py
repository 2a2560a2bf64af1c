"""Make a study folder for ``userstudy.serve`` from one folder of videos per method, or from a benchmark run.

    python -m userstudy make-study --out STUDY --method imac=gen/imac --method s2g=gen/s2g \
        [--method ...] [--references refs/] [--criteria "visual quality,temporal consistency"] \
        [--title TEXT] [--instructions TEXT] [--seed TEXT]
    python -m userstudy make-study --out STUDY --run runs/NAME [--methods imac,s2g,mya] \
        [--identities a,b] [--trials-per-identity 10] [--frozen-checks 2] [--repeat-checks 2]

With ``--run`` (``make_study_from_run``), the study is made from a benchmark run folder, reading
only its ``run.json`` (the ``methods`` list) and its ``<method>/<identity>/<clip_id>.mp4`` videos;
nothing of the benchmark's code is imported. The run's controls (``gt``, ``static``, ``shuffled``)
are not methods of the study, but the ``static`` videos (the reference frame repeated: a frozen
video) serve as attention checks that must rank last on sound-video synchronization.

(``python -m userstudy.make_study`` is the same command.) A trial is a video file name (without
suffix) present in every method's folder: ``gen/imac/t01.mp4`` and ``gen/s2g/t01.mp4`` make trial
``t01``. A name missing from some folder is an error, listed, not skipped. The videos (and a
reference per trial, matched by the same name, if ``--references`` is given) are copied into STUDY,
and ``STUDY/study.json`` is written (format: ``userstudy.study``). The Python API is ``make_study``.

STUDY must be new (or an empty folder). The study is built in a hidden folder beside it and renamed
onto STUDY only when complete (``files.atomic_folder``; ``--constant-bitrate`` re-encodes before
that), so a failed make-study leaves nothing, and an existing study is never touched. Asking for
more trials of a kind than there are different ones (``--trials-per-identity``, ``--pairwise-trials``,
``--match-trials``, the checks) is an error naming the option and the most possible: no trial is
silently repeated or left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import itertools
import json
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

from userstudy import cli
from userstudy.dubbing import DubbingError, dub, picture_seconds
from userstudy.encoding import EncodingError
from userstudy.files import atomic_folder, write_text_atomic
from userstudy.frozen import FreezeError, freeze
from userstudy.jsonfile import JSONFileError, read_json
from userstudy.playable import playable, reference_problems, trial_problems
from userstudy.schema import PAPER_CRITERIA
from userstudy.study import (
    BLIND_LETTERS,
    DEFAULT_TITLE,
    REFERENCE_SUFFIXES,
    STUDY_FILE,
    VIDEO_SUFFIXES,
    Study,
    StudyError,
    default_question,
    is_valid_id,
    keyed_rng,
    name_slug,
    parse_study,
)

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"   # the run's metric scores, copied beside the study (userstudy.agreement)
# The benchmark's controls (bench.methods.CONTROLS: userstudy imports nothing of bench, and a test
# keeps the two equal). ``static`` is the reference frame repeated for the clip's length.
RUN_CONTROLS = ("gt", "static", "shuffled")
FROZEN_CONTROL = "static"
SYNC_CRITERION = "sound-video synchronization"

logger = logging.getLogger(__name__)


def _files_by_stem(folder: Path, suffixes: tuple[str, ...], problems: list[str] | None = None,
                   what: str = "") -> dict[str, Path]:
    """The files of ``folder`` with one of ``suffixes`` (any case), by name without suffix. Two files of
    one name (``t01.mp4`` and ``t01.webm``) leave it unclear which is meant: a problem naming both
    (``what`` says whose folder, e.g. "method 'b'") is appended to ``problems``, and the first is kept."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found and problems is not None:
                problems.append(f"{what}{': ' if what else ''}{found[path.stem]} and {path} have the same name "
                                f"{path.stem!r}, so which one is the video of trial {path.stem!r} is unclear; "
                                "keep one of them (or rename the other)")
            found.setdefault(path.stem, path)
    return found


def page_options(play_through: bool = True, consent: str = "", completion_code: str = "",
                 completion_url: str = "", preference_levels: int = 3) -> dict:
    """The study file's page options that differ from their defaults (``userstudy.study``)."""
    options = {"play_through": play_through, "consent": consent, "completion_code": completion_code,
               "completion_url": completion_url, "preference_levels": preference_levels}
    defaults = {"play_through": True, "consent": "", "completion_code": "", "completion_url": "",
                "preference_levels": 3}
    return {k: v for k, v in options.items() if v != defaults[k]}


def check_out(out: Path) -> None:
    """Refuse an ``out`` that cannot become a new study folder: a study folder already, a file, or a
    folder with other things in it (``StudyError`` naming it). A missing or empty folder is fine."""
    if (out / STUDY_FILE).exists():
        raise StudyError([f"{out / STUDY_FILE} exists already; choose a new folder"])
    if out.exists() and not out.is_dir():
        raise StudyError([f"{out}: is a file; --out is the study folder to create"])
    blocker = cli.file_in_the_way(out)
    if blocker is not None:
        raise StudyError([f"{blocker}: is a file, so the study folder {out} cannot be made (--out)"])
    if out.is_dir() and any(out.iterdir()):
        raise StudyError([f"{out}: the folder exists and holds other files; --out is the study folder to "
                          "create: choose a new (or empty) one"])


def run_folder(path: str | os.PathLike) -> Path:
    """The benchmark run folder that ``path`` names: the folder, or its ``run.json`` standing for it
    (as ``imac-bench`` takes a run's ``results.json`` for the run folder)."""
    path = Path(path)
    return path.parent if path.name == RUN_FILE and path.is_file() else path


def reencode_study_videos(folder: Path, constant_bitrate: int | None, out: Path,
                          sources: dict[Path, Path]) -> None:
    """``constant_bitrate``: re-encode the study's videos in ``folder`` (``userstudy.encoding``) and log
    how equal their sizes came out; a warning when they still differ by more than 10%. ``folder`` is
    the temporary folder that becomes ``out``; ``sources`` maps a copied video (``folder / ...``) to the
    user's file it was copied from: an ``EncodingError`` names that file (or the video under ``out``)."""
    if constant_bitrate is None:
        return
    from userstudy.encoding import reencode_folder

    videos = folder / "videos"
    names = {path: sources.get(path, out / path.relative_to(folder)) for path in videos.rglob("*.mp4")}
    spread = reencode_folder(videos, constant_bitrate, names=names)
    logger.info("re-encoded %s at %d kbit/s: %.1f to %.1f kB per second (x%.2f)", cli.count(spread.videos, "video"),
                constant_bitrate, spread.smallest / 1000, spread.largest / 1000, spread.ratio)
    if spread.ratio > 1.1:
        logger.warning("sizes still differ by more than 10%% (x%.2f): some videos need more than %d kbit/s; "
                       "raise --constant-bitrate", spread.ratio, constant_bitrate)


def criteria_problems(criteria: list[str] | None) -> list[str]:
    """What is wrong with the criteria asked for (``--criteria``): an empty list (None means the
    paper's four), or names that differ only in case or punctuation (their file names would clash)."""
    if criteria is None:
        return []
    if not criteria:
        return ["criteria (--criteria): the list is empty; give at least one criterion, or leave the "
                "option out for the paper's four"]
    slugs = [name_slug(c) for c in criteria]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        return [f"criteria (--criteria): names must differ in their letters and digits, got {list(criteria)}"]
    return []


def checked_study(document: dict, folder: Path, out: Path) -> Study:
    """``parse_study`` of the document built in ``folder``, the temporary folder that becomes ``out``:
    a ``StudyError`` names ``out``'s study file, never the temporary folder."""
    try:
        return parse_study(document, folder)
    except StudyError as error:
        raise StudyError(error.problems, out / STUDY_FILE) from None


def checks_options(frozen_checks: int, repeat_checks: int, check_criteria: list[str] | None, criteria: list[str],
                   problems: list[str]) -> list[str]:
    """The criteria on which a frozen video must rank last (``check_criteria``, by default sound-video
    synchronization when the study asks it), with the problems of the checks' options added to
    ``problems``: a negative count, frozen checks without such a criterion, a criterion not of the study."""
    for number, name in ((frozen_checks, "frozen checks"), (repeat_checks, "repeat checks")):
        if number < 0:
            problems.append(f"{name} must be 0 or more, got {number}")
    chosen = list(check_criteria) if check_criteria else ([SYNC_CRITERION] if SYNC_CRITERION in criteria else [])
    if frozen_checks and not chosen:
        problems.append(f"frozen checks: say on which criteria a frozen video must rank last (--check-criteria); "
                        f"the default, {SYNC_CRITERION!r}, is not among the study's criteria")
    if [c for c in chosen if c not in criteria]:
        problems.append(f"check criteria {chosen} must be among the study's criteria {criteria}")
    return chosen


def folder_checks(stems: list[str], methods: list[str], frozen_checks: int, repeat_checks: int,
                  seed: str, problems: list[str]
                  ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], dict[str, str]]:
    """A folder study's attention checks, drawn with the study's seed: (check id, trial, slot method) of each
    frozen check, (check id, trial) of each repeat, each trial drawn once per kind, and the ids of the
    ordinary trials (video name -> id). With checks, every trial's id is opaque (``c`` and ten hex digits,
    the video name kept as the trial's ``clip``), so that no id tells a check from a trial in the page's
    requests (before, the checks' ids alone were opaque, beside trials named ``clip04``); without, the
    video names are the ids. Asking for more checks of a kind than there are trials is a problem added to
    ``problems``."""
    for number, name, option in ((frozen_checks, "frozen", "--frozen-checks"), (repeat_checks, "repeat",
                                                                                 "--repeat-checks")):
        if number > len(stems):
            problems.append(f"{name} checks ({option}): {number} asked, but the study has {cli.count(len(stems), 'trial')}"
                            f"; at most {len(stems)}")
    if problems:
        return [], [], {}
    rng = keyed_rng(seed, "checks")
    taken = set(stems)

    def opaque() -> str:
        while (name := f"c{rng.getrandbits(40):010x}") in taken:
            pass
        taken.add(name)
        return name

    frozen = [(opaque(), stem, rng.choice(methods)) for stem in rng.sample(stems, frozen_checks)]
    repeats = [(opaque(), stem) for stem in rng.sample(stems, repeat_checks)]
    ids = {stem: opaque() for stem in stems} if frozen or repeats else {stem: stem for stem in stems}
    return frozen, [(check, ids[stem]) for check, stem in repeats], ids


def warn_no_reference(criteria: list[str], run: bool = False) -> None:
    """A warning when a criterion's question asks about the reference (identity preservation) and the
    study shows none (no ``--references``; a run's study never has one)."""
    asking = [c for c in criteria if "reference" in default_question(c)]
    if asking:
        logger.warning("%s asks about the person in the reference, but the study shows no reference: %s",
                       " and ".join(repr(c) for c in asking),
                       "choose --criteria without it" if run else
                       "give --references DIR (a picture or video per trial, by the same name) or --criteria without it")


def warn_differences(differences: list[str], shown: int = 5) -> None:
    """A warning listing what sets the videos of a trial apart besides their content (``trial_differences``:
    picture sizes, lengths): participants can tell the methods apart by them. Not an error: a study may
    mean to compare methods as they come; ``--constant-bitrate`` keeps each video's size and length."""
    if differences:
        logger.warning("%s in the videos of one trial (participants can tell the methods apart by them; "
                       "--constant-bitrate keeps each video's size and length: make them equal before):\n  %s%s",
                       cli.count(len(differences), "difference"), "\n  ".join(differences[:shown]),
                       f"\n  ... and {len(differences) - shown} more" if len(differences) > shown else "")


def make_study(out: str | os.PathLike, method_folders: dict[str, str | os.PathLike],
               criteria: list[str] | None = None, title: str = DEFAULT_TITLE,
               instructions: str = "", references: str | os.PathLike | None = None,
               seed: str | None = None, play_through: bool = True, consent: str = "",
               completion_code: str = "", completion_url: str = "",
               constant_bitrate: int | None = None, frozen_checks: int = 0, repeat_checks: int = 0,
               check_criteria: list[str] | None = None) -> Study:
    """Make a study folder from one folder of videos per method (the command); returns the checked study.

    Attention checks (``userstudy.study``), drawn with the seed: ``frozen_checks`` trials in which one
    method's slot shows that method's video frozen on its first frame, sound kept (``userstudy.frozen``),
    which must rank last on ``check_criteria`` (default: sound-video synchronization); ``repeat_checks``
    trials shown a second time. With checks, every trial's id is opaque (``folder_checks``).

    A trial is a file name (without suffix) present in every method's folder; names missing from
    some folders are errors, not silently skipped. Videos (and references, matched by the same
    name) are copied into ``out/videos/<method>/`` and ``out/references/``. ``play_through``,
    ``consent``, ``completion_code`` and ``completion_url`` are the page's options (``userstudy.study``);
    ``constant_bitrate`` (kbit/s) re-encodes the copied videos (``userstudy.encoding``).

    ``out`` must be new (or an empty folder). The study is built in a hidden folder beside it and
    renamed onto ``out`` when complete, so a failure leaves nothing. Raises ``StudyError`` listing
    every problem, ``EncodingError`` (a video that cannot be re-encoded) or ``OSError``.
    """
    out = Path(out)
    check_out(out)
    seed = seed or secrets.token_hex(8)
    problems = criteria_problems(criteria)
    check_criteria = checks_options(frozen_checks, repeat_checks, check_criteria,
                                    list(criteria) if criteria is not None else list(PAPER_CRITERIA), problems)
    if len(method_folders) < 2:
        problems.append("give at least two methods")
    if len(method_folders) > len(BLIND_LETTERS):     # (before any video is read)
        problems.append(f"at most {len(BLIND_LETTERS)} methods (one blinded letter each), got {len(method_folders)}")
    same: dict[Path, list[str]] = {}
    for method, folder in method_folders.items():
        same.setdefault(Path(folder).resolve(), []).append(method)
    for folder, methods in same.items():
        if len(methods) > 1:
            logger.warning("methods %s read the same folder %s: their videos are identical", ", ".join(methods), folder)
    videos = {}
    for method, folder in method_folders.items():
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"method {method!r}: {folder} is not a folder")
            continue
        videos[method] = _files_by_stem(folder, VIDEO_SUFFIXES, problems, f"method {method!r}")
        if not videos[method]:
            nested = any(_files_by_stem(sub, VIDEO_SUFFIXES) for sub in folder.iterdir() if sub.is_dir())
            problems.append(f"method {method!r}: no video ({', '.join(VIDEO_SUFFIXES)}) in {folder}"
                            + ("; its sub-folders hold videos, as a benchmark run's <method>/<identity>/ "
                               "layout does: make the study with --run RUN_FOLDER" if nested else ""))
    folder_names = {m: name_slug(m) for m in method_folders}
    if len(set(folder_names.values())) != len(folder_names) or "" in folder_names.values():
        problems.append(f"method names must differ in their letters and digits: {list(method_folders)}")
    if problems:
        raise StudyError(problems)
    stems = sorted(set().union(*[set(v) for v in videos.values()]))
    for stem in stems:
        lacking = [m for m in videos if stem not in videos[m]]
        if lacking:
            unread = [f"{path} is a folder or a broken link" for m in lacking for path in
                      sorted(Path(method_folders[m]).glob(f"{glob.escape(stem)}.*"))
                      if path.suffix.lower() in VIDEO_SUFFIXES and not path.is_file()]
            problems.append(f"video {stem!r} is missing for {', '.join(lacking)}"
                            + (f" ({'; '.join(unread)})" if unread else ""))
        if not is_valid_id(stem):
            where = "; ".join(str(videos[m][stem]) for m in videos if stem in videos[m])
            problems.append(f"video name {stem!r} ({where}) cannot be a trial id: 1-64 ASCII letters, digits, '.', "
                            "'_' or '-', starting with a letter or digit")
    reference_files = {}
    if references is not None and not Path(references).is_dir():
        problems.append(f"references: {references} is not a folder")
    elif references is not None:
        reference_files = _files_by_stem(Path(references), REFERENCE_SUFFIXES, problems, "references")
        lacking = [s for s in stems if s not in reference_files]
        if lacking:
            problems.append(f"no reference in {references} for {', '.join(lacking)}")
    frozen, repeats, trial_ids = folder_checks(stems, list(method_folders), frozen_checks, repeat_checks, seed,
                                               problems)
    if problems:
        raise StudyError(problems)
    logger.info("reading the %d videos of the study (whether each plays to its end)", len(stems) * len(method_folders))
    differences: list[str] = []
    for stem in stems:
        problems += trial_problems({method: videos[method][stem] for method in method_folders}, differences)
        if references is not None:
            problems += [f"{reference_files[stem]}: {problem}" for problem in reference_problems(reference_files[stem])]
    if problems:
        raise StudyError(problems)
    warn_differences(differences)
    if references is None:
        warn_no_reference(list(criteria) if criteria is not None else list(PAPER_CRITERIA))

    with atomic_folder(out) as folder:
        trials = []
        sources = {}   # copied video -> the user's file, to name in an error of the re-encoding
        for stem in stems:
            entry = {"id": trial_ids[stem], **({"clip": stem} if trial_ids[stem] != stem else {}), "videos": {}}
            for method in method_folders:
                source = videos[method][stem]
                # re-encoded, every video becomes an MP4, whatever its container
                name = source.name if constant_bitrate is None else f"{source.stem}.mp4"
                relative = f"videos/{folder_names[method]}/{name}"
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, folder / relative)
                sources[folder / relative] = source
                entry["videos"][method] = relative
            if references is not None:
                relative = f"references/{reference_files[stem].name}"
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(reference_files[stem], folder / relative)
                entry["reference"] = relative
            trials.append(entry)
        by_stem = {entry.get("clip", entry["id"]): entry for entry in trials}
        for check_id, stem, slot in frozen:
            relative = f"videos/{folder_names[slot]}/{check_id}.mp4"
            try:
                freeze(videos[slot][stem], folder / relative)
            except FreezeError as error:
                raise StudyError([f"frozen checks: {error}"]) from None
            sources[folder / relative] = videos[slot][stem]
            trials.append({"id": check_id, "videos": {**by_stem[stem]["videos"], slot: relative},
                           **({"reference": by_stem[stem]["reference"]} if "reference" in by_stem[stem] else {}),
                           "check": {"kind": "last", "method": slot, "criteria": check_criteria}})
        by_id = {entry["id"]: entry for entry in trials}
        for check_id, original in repeats:
            trials.append({"id": check_id, "videos": dict(by_id[original]["videos"]),
                           **({"reference": by_id[original]["reference"]} if "reference" in by_id[original] else {}),
                           "check": {"kind": "repeat", "of": original}})
        trials.sort(key=lambda entry: entry["id"])
        criteria = list(criteria) if criteria is not None else list(PAPER_CRITERIA)
        document = {
            "title": title, "instructions": instructions, "seed": seed,
            "methods": list(method_folders),
            "criteria": [{"name": c, "question": default_question(c)} for c in criteria],
            "trials": trials,
            **page_options(play_through, consent, completion_code, completion_url),
        }
        study = checked_study(document, folder, out)
        write_text_atomic(folder / STUDY_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        reencode_study_videos(folder, constant_bitrate, out, sources)
    study = dataclasses.replace(study, root=out.resolve())
    logger.info("study %r: %s x %s, %s, written to %s; serve it with python -m userstudy serve --study %s",
                study.title, cli.count(len(study.trials), "trial"), cli.count(len(study.methods), "method"),
                cli.count(len(study.criteria), "criterion", "criteria"), out, out)
    return study


def _run_methods(run: Path, methods: list[str] | None, problems: list[str]) -> list[str]:
    path = run / RUN_FILE
    if run.exists() and not run.is_dir():
        problems.append(f"{run}: is a file, not a benchmark run folder (give the folder that holds {RUN_FILE})")
        return []
    try:
        document = read_json(path)
    except FileNotFoundError:
        problems.append(f"{path}: no such file (is {run} a benchmark run folder, made by imac-bench run?)")
        return []
    except JSONFileError as error:   # too large, nested too deeply, not UTF-8 or not JSON
        problems.append(str(error))
        return []
    listed = document.get("methods") if isinstance(document, dict) else None
    if not isinstance(listed, list) or not all(isinstance(m, str) and m for m in listed):
        problems.append(f"{path}: 'methods' must be a list of method names, got {listed!r}")
        return []
    available = [m for m in listed if m not in RUN_CONTROLS]
    if methods is None:
        return available
    controls = [m for m in methods if m in RUN_CONTROLS]
    unknown = [m for m in methods if m not in listed]
    if controls:
        problems.append(f"methods: {', '.join(controls)} are the run's controls, not methods to study "
                        f"(the {FROZEN_CONTROL!r} videos serve as attention checks: --frozen-checks)")
    if unknown:
        problems.append(f"methods: {', '.join(unknown)} not in {path} (its methods: {', '.join(available)})")
    if len(set(methods)) != len(methods):
        problems.append(f"methods: a method is given twice: {methods}")
    return list(methods)


def _run_clips(run: Path, method: str, problems: list[str]) -> dict[tuple[str, str], Path]:
    """(identity, clip id) -> video, from ``run/<method>/<identity>/<clip_id>.mp4``."""
    folder = run / method
    if not folder.is_dir():
        problems.append(f"method {method!r}: {folder} is not a folder (the run has no videos of it)")
        return {}
    clips = {}
    for identity in sorted(p for p in folder.iterdir() if p.is_dir()):
        for stem, path in _files_by_stem(identity, (".mp4",), problems, f"method {method!r}").items():
            clips[identity.name, stem] = path
    if not clips:
        problems.append(f"method {method!r}: no <identity>/<clip_id>.mp4 video in {folder}")
    return clips


def _picture_lengths(clips: dict[str, dict[tuple[str, str], Path]], identities: set[str],
                     problems: list[str]) -> dict[tuple[str, str, str], float]:
    """(method, identity, clip) -> seconds of its video's picture (``dubbing.picture_seconds``), for every
    clip of ``identities``: what a match trial's other clip is chosen by. A file that cannot be read is a
    problem naming it."""
    lengths = {}
    for method, videos in clips.items():
        for (identity, clip), path in videos.items():
            if identity in identities:
                try:
                    lengths[method, identity, clip] = picture_seconds(path)
                except DubbingError as error:
                    problems.append(f"match trials: {error}")
    return lengths


def longer_clips(lengths: dict[tuple[str, str, str], float], method: str, identity: str, clip: str) -> list[str]:
    """The speaker's other clips whose picture (``lengths``, seconds) is at least as long as ``clip``'s, so
    that ``clip``'s speech plays to its end under them: nearest in length first, then by name."""
    own = lengths.get((method, identity, clip))
    if own is None:
        return []
    found = [(length - own, other) for (m, who, other), length in lengths.items()
             if m == method and who == identity and other != clip and length >= own]
    return [other for _, other in sorted(found)]


def make_study_from_run(out: str | os.PathLike, run: str | os.PathLike, methods: list[str] | None = None,
                        identities: list[str] | None = None, trials_per_identity: int | None = None,
                        frozen_checks: int = 0, repeat_checks: int = 0, check_criteria: list[str] | None = None,
                        criteria: list[str] | None = None, title: str = DEFAULT_TITLE, instructions: str = "",
                        seed: str | None = None, pairwise_trials: int = 0, match_trials: int = 0,
                        preference_levels: int = 3,
                        play_through: bool = True, consent: str = "", completion_code: str = "",
                        completion_url: str = "", constant_bitrate: int | None = None) -> Study:
    """Make a study folder from a benchmark run folder (or its ``run.json``); returns the checked study.

    Reads ``run/run.json`` (its ``methods``: the study's methods are those minus the controls, or
    ``methods``) and the videos ``run/<method>/<identity>/<clip_id>.mp4``. A trial is a clip that
    every chosen method has; a clip missing for some method is an error that names it. Per
    identity (all, or ``identities``), ``trials_per_identity`` clips are drawn at random (keyed by
    ``seed``; default all; more than an identity has is an error naming the most possible). Trial
    ids are opaque (``t001``, ...; each trial's ``clip`` says ``identity/clip_id``) and the check
    trials are numbered among them, so neither an id nor a position gives a check away.

    Attention checks (``userstudy.study``): ``frozen_checks`` trials in which one method's slot
    (drawn at random) shows the run's ``static`` video of the clip, to be ranked last on
    ``check_criteria`` (default: sound-video synchronization, the criterion a frozen video plainly
    fails); ``repeat_checks`` trials that repeat a drawn trial.

    A pairwise block: ``pairwise_trials`` trials of kind ``compare`` (two methods' videos of one
    drawn clip, answered with a preference on ``preference_levels`` levels on every criterion), the
    pairs of methods taken in turn so each pair is asked about equally often, each pair's clips drawn
    at random without repetition: no two trials show the same pair on the same clip, so at most
    (drawn clips) x (pairs of methods) trials, and more is an error naming that maximum.
    ``match_trials`` trials of kind ``match`` (the methods in turn, a drawn clip c each, no clip twice
    for a method, so at most (drawn clips whose speaker has another clip at least as long) x (methods)):
    the method's video of c (with its own speech) against its video of another clip c' of the same
    speaker dubbed with c's speech (``userstudy.dubbing``, no re-encoding; c' is the clip at least as
    long as c nearest in length, drawn among equals, and its picture is cut at c's length, so both
    videos play equally long and the speech to its end), asked on sound-video
    synchronization (or every criterion when the study does not have it). The run's
    ``results.json``, if any, is copied into the study folder, where ``analyze`` finds it for the
    metric-human agreement. The page options (``play_through``, ``consent``, ``completion_code``,
    ``completion_url``) go into the study file; ``constant_bitrate`` (kbit/s) re-encodes the videos.

    ``out`` must be new (or an empty folder); the study is built in a hidden folder beside it and
    renamed onto ``out`` when complete. Raises ``StudyError`` listing every problem (nothing is
    written then), ``EncodingError`` or ``OSError`` (nothing is left then either).
    """
    out, run = Path(out), run_folder(run)
    seed = seed or secrets.token_hex(8)
    check_out(out)
    problems = criteria_problems(criteria)
    if problems:
        raise StudyError(problems)
    criteria = list(criteria) if criteria is not None else list(PAPER_CRITERIA)
    warn_no_reference(criteria, run=True)
    chosen = _run_methods(run, methods, problems)
    if problems:
        raise StudyError(problems)
    if len(chosen) < 2:
        raise StudyError([f"a study needs at least two methods; {run / RUN_FILE} has {chosen or 'none'} "
                          f"besides the controls"])
    clips = {m: _run_clips(run, m, problems) for m in chosen}
    if problems:
        raise StudyError(problems)
    every = sorted(set().union(*[set(c) for c in clips.values()]))
    for identity, clip in every:
        lacking = [m for m in chosen if (identity, clip) not in clips[m]]
        if lacking:
            problems.append(f"clip {identity}/{clip} is missing for {', '.join(lacking)}")
    present = sorted({identity for identity, _ in every})
    if identities is not None:
        unknown = [i for i in identities if i not in present]
        if unknown:
            problems.append(f"identities: {', '.join(unknown)} not in the run (it has {', '.join(present)})")
    if trials_per_identity is not None and trials_per_identity < 1:
        problems.append(f"trials per identity must be at least 1, got {trials_per_identity}")
    for number, name in ((pairwise_trials, "pairwise trials"), (match_trials, "match trials")):
        if number < 0:
            problems.append(f"{name} must be 0 or more, got {number}")
    check_criteria = checks_options(frozen_checks, repeat_checks, check_criteria, criteria, problems)
    if problems:
        raise StudyError(problems)

    own_clips = {i: sorted(clip for who, clip in every if who == i) for i in identities or present}
    if trials_per_identity is not None:
        short = {i: len(c) for i, c in own_clips.items() if len(c) < trials_per_identity}
        if short:
            problems.append(f"trials per identity (--trials-per-identity): {trials_per_identity} asked, but "
                            + ", ".join(f"{i!r} has {cli.count(n, 'clip')}" for i, n in short.items())
                            + f" (a clip is drawn once); at most {min(len(c) for c in own_clips.values())}")
            raise StudyError(problems)
    drawn: list[tuple[str, str]] = []
    for identity, own in own_clips.items():
        if trials_per_identity is not None and trials_per_identity < len(own):
            own = sorted(keyed_rng(seed, "clips", identity).sample(own, trials_per_identity))
        drawn += [(identity, clip) for clip in own]
    rng = keyed_rng(seed, "checks")
    frozen = []
    if frozen_checks:
        static = _run_clips(run, FROZEN_CONTROL, problems)
        candidates = [c for c in drawn if c in static]
        if len(candidates) < frozen_checks:
            problems.append(f"frozen checks (--frozen-checks): {frozen_checks} asked, but the run's "
                            f"{FROZEN_CONTROL!r} videos cover {len(candidates)} of the drawn clips; at most "
                            f"{len(candidates)}")
        else:
            frozen = [(c, rng.choice(chosen)) for c in rng.sample(candidates, frozen_checks)]
    if repeat_checks > len(drawn):
        problems.append(f"repeat checks (--repeat-checks): {repeat_checks} asked, but only {len(drawn)} trials "
                        f"are drawn; at most {len(drawn)}")
    pairs = list(itertools.combinations(chosen, 2))
    if pairwise_trials > len(drawn) * len(pairs):
        problems.append(f"pairwise trials (--pairwise-trials): {pairwise_trials} asked, but {len(drawn)} drawn "
                        f"clips x {len(pairs)} pairs of methods give at most {len(drawn) * len(pairs)} different "
                        "trials (a pair is never asked twice on one clip)")
    # A match trial needs another clip of the same speaker, at least as long (for every method), so that
    # the speech plays to its end under the other clip's picture; every chosen method has the same clips.
    lengths = _picture_lengths(clips, {i for i, _ in drawn}, problems) if match_trials else {}
    eligible = [(i, c) for i, c in drawn if all(longer_clips(lengths, m, i, c) for m in chosen)]
    if match_trials and not any(who == i and other != c for i, c in drawn for who, other in clips[chosen[0]]):
        problems.append(f"match trials: {drawn[0][0]!r} has a single clip of {chosen[0]!r}, so there is no other "
                        "clip's video to put its speech under")
    elif match_trials and not eligible:
        problems.append("match trials: no drawn clip has another clip of its speaker at least as long (for every "
                        "method), so every speech would be cut short under the other clip's video")
    elif match_trials > len(eligible) * len(chosen):
        problems.append(f"match trials (--match-trials): {match_trials} asked, but {len(eligible)} drawn clips "
                        f"whose speaker has another clip x {len(chosen)} methods give at most "
                        f"{len(eligible) * len(chosen)} different trials (a method's clip is never asked twice; "
                        "the other clip must be at least as long, so that the speech is not cut short)")
    if problems:
        raise StudyError(problems)
    repeats = rng.sample(drawn, repeat_checks)
    pair_rng = keyed_rng(seed, "pairwise")
    pair_rng.shuffle(pairs)
    # Each pair of methods in turn, on its own random order of the drawn clips: no trial twice.
    clip_orders = {pair: pair_rng.sample(drawn, len(drawn)) for pair in pairs} if pairwise_trials else {}
    pairwise = [(clip_orders[pairs[i % len(pairs)]][i // len(pairs)], pairs[i % len(pairs)])
                for i in range(pairwise_trials)]
    match_orders = {m: pair_rng.sample(eligible, len(eligible)) for m in chosen} if match_trials else {}
    matches = []
    for i in range(match_trials):
        method = chosen[i % len(chosen)]
        identity, clip = match_orders[method][i // len(chosen)]
        others = longer_clips(lengths, method, identity, clip)   # nearest in length first
        nearest = [c for c in others if lengths[method, identity, c] == lengths[method, identity, others[0]]]
        matches.append((method, identity, clip, pair_rng.choice(nearest)))
    # every file the study shows: the drawn clips' videos (a frozen check's static one beside them) and the
    # videos whose frames a match trial puts under another clip's speech
    logger.info("reading the %d videos of the study (whether each plays to its end)",
                len(drawn) * len(chosen) + len(frozen) + len(matches))
    frozen_clips = {clip for clip, _ in frozen}
    differences: list[str] = []
    for identity, clip in drawn:
        frozen_video = {FROZEN_CONTROL: static[identity, clip]} if (identity, clip) in frozen_clips else {}
        problems += trial_problems({m: clips[m][identity, clip] for m in chosen} | frozen_video, differences)
    for method, identity, _, other in matches:
        problems += [f"{clips[method][identity, other]}: {problem}"
                     for problem in playable(clips[method][identity, other]).problems]
    if problems:
        raise StudyError(sorted(set(problems), key=problems.index))
    warn_differences(differences)

    with atomic_folder(out) as folder:
        sources = {}   # copied video -> the run's file, to name in an error of the re-encoding

        def copy(method: str, identity: str, clip: str, source: Path) -> str:
            relative = f"videos/{name_slug(method)}/{identity}/{clip}.mp4"
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / relative)
            sources[folder / relative] = source
            return relative

        entries = [{"clip": f"{i}/{c}", "videos": {m: copy(m, i, c, clips[m][i, c]) for m in chosen}}
                   for i, c in drawn]
        by_clip = {e["clip"]: e for e in entries}
        checks = []
        for (identity, clip), slot in frozen:
            videos = dict(by_clip[f"{identity}/{clip}"]["videos"])
            videos[slot] = copy(FROZEN_CONTROL, identity, clip, static[identity, clip])
            checks.append({"clip": f"{identity}/{clip}", "videos": videos,
                           "check": {"kind": "last", "method": slot, "criteria": check_criteria}})
        for identity, clip in repeats:
            checks.append({"clip": f"{identity}/{clip}", "videos": dict(by_clip[f"{identity}/{clip}"]["videos"]),
                           "check": {"kind": "repeat", "of": None}})
        compared = [{"clip": f"{identity}/{clip}", "kind": "compare",
                     "videos": {m: by_clip[f"{identity}/{clip}"]["videos"][m] for m in pair}}
                    for (identity, clip), pair in pairwise]
        match_criteria = [SYNC_CRITERION] if SYNC_CRITERION in criteria else list(criteria)
        for method, identity, clip, other in matches:
            relative = f"videos/{name_slug(method)}/{identity}/{clip}.speech-under-{other}.mp4"
            try:
                dub(clips[method][identity, other], clips[method][identity, clip], folder / relative)
            except DubbingError as error:
                raise StudyError([f"match trials: {error}"]) from None
            compared.append({"clip": f"{identity}/{clip}", "kind": "match", "method": method,
                             "criteria": match_criteria,
                             "videos": {"matched": by_clip[f"{identity}/{clip}"]["videos"][method],
                                        "mismatched": relative}})
        # Opaque ids, numbered in a shuffled order of trials, checks and pairwise trials together.
        order = entries + checks + compared
        numbers = list(range(1, len(order) + 1))
        keyed_rng(seed, "ids").shuffle(numbers)
        width = max(3, len(str(len(order))))
        for entry, number in zip(order, numbers):
            entry["id"] = f"t{number:0{width}d}"
        for entry in checks:
            if entry["check"]["kind"] == "repeat":
                entry["check"]["of"] = by_clip[entry["clip"]]["id"]
        trials = sorted(({"id": e["id"], "clip": e["clip"],
                          **{k: e[k] for k in ("kind", "method", "criteria") if k in e},
                          "videos": e["videos"], **({"check": e["check"]} if "check" in e else {})} for e in order),
                        key=lambda e: e["id"])
        document = {
            "title": title, "instructions": instructions, "seed": seed, "methods": chosen,
            "criteria": [{"name": c, "question": default_question(c)} for c in criteria], "trials": trials,
            **page_options(play_through, consent, completion_code, completion_url, preference_levels),
        }
        study = checked_study(document, folder, out)
        results = run / RESULTS_FILE
        if results.is_file():   # beside the study, for analyze's metric-human agreement
            shutil.copyfile(results, folder / RESULTS_FILE)
        write_text_atomic(folder / STUDY_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        reencode_study_videos(folder, constant_bitrate, out, sources)
    study = dataclasses.replace(study, root=out.resolve())
    logger.info("study %r from run %s: %d trials (%d attention checks, %d pairwise, matched-speech ones included) "
                "x %d methods, %d criteria, "
                "written to %s", study.title, run, len(study.trials), len(checks), len(compared), len(chosen),
                len(criteria), out)
    return study


def _method(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"--method {text!r}: expected NAME=FOLDER")
    return name.strip(), Path(folder)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = cli.command_parser("make-study", prog)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the study folder to create")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--method", type=_method, action="append", metavar="NAME=FOLDER",
                        help="a method and its folder of videos (repeat for each method) (default: none; "
                             "give --method or --run)")
    source.add_argument("--run", type=Path, metavar="DIR",
                        help="a benchmark run folder: run.json and <method>/<identity>/<clip_id>.mp4 (default: "
                             "none; give --method or --run)")
    parser.add_argument("--methods", type=cli.names, metavar="A,B",
                        help="with --run: the methods to study (default: the run's methods without its controls)")
    parser.add_argument("--identities", type=cli.names, metavar="A,B",
                        help="with --run: the identities to draw trials from (default: all)")
    parser.add_argument("--trials-per-identity", type=int, metavar="N",
                        help="with --run: clips drawn per identity (default: all)")
    parser.add_argument("--frozen-checks", type=int, default=0, metavar="N",
                        help="attention checks where one slot shows a frozen video, which must rank last (with "
                             "--run: the run's 'static' video; else that slot's video frozen on its first frame)")
    parser.add_argument("--repeat-checks", type=int, default=0, metavar="N",
                        help="attention checks that show a trial a second time")
    parser.add_argument("--check-criteria", type=cli.names, metavar="A,B",
                        help="criteria on which a frozen video must rank last (default: sound-video "
                             "synchronization)")
    parser.add_argument("--pairwise-trials", type=int, default=0, metavar="N",
                        help="with --run: a pairwise block of N trials, two methods' videos of a clip each")
    parser.add_argument("--match-trials", type=int, default=0, metavar="N",
                        help="with --run: N matched-versus-mismatched speech trials (a method's video against "
                             "its video of another clip dubbed with the same speech)")
    parser.add_argument("--preference-levels", type=int, default=3, choices=(3, 5),
                        help="with --run: levels of a pairwise answer (3: left/equal/right; 5: clearly or slightly)")
    parser.add_argument("--no-play-through", dest="play_through", action="store_false",
                        help="let participants answer before every video of a trial has played to the end "
                             "(default: answers unlock once each video has played through)")
    parser.add_argument("--consent", type=Path, metavar="FILE",
                        help="a text file: the information and consent text participants agree to first "
                             "(default: none)")
    parser.add_argument("--completion-code", default="", metavar="CODE",
                        help="shown once every trial is saved, e.g. a crowdsourcing platform's code (default: none)")
    parser.add_argument("--completion-url", default="", metavar="URL",
                        help="a link shown with the completion code, e.g. the platform's return address (default: none)")
    parser.add_argument("--references", type=Path, metavar="DIR",
                        help="folder with a reference image or video per trial, named like the trial's videos "
                             "(default: none)")
    parser.add_argument("--criteria", type=cli.names, metavar="A,B", help="comma-separated criteria (default: the paper's four)")
    parser.add_argument("--title", default=DEFAULT_TITLE, metavar="TEXT", help="the page's title")
    parser.add_argument("--instructions", default="", metavar="TEXT",
                        help="text shown above the trials (default: none; the page then says how many "
                             "trials and criteria there are)")
    parser.add_argument("--seed", metavar="TEXT", help="key of the randomisation (default: random)")
    parser.add_argument("--constant-bitrate", type=cli.int_in(1, 1_000_000), metavar="KBPS",
                        help="re-encode the study's videos as H.264 at this constant bitrate (kbit/s; AAC audio at "
                             "96), so that file sizes do not group videos by method (default: copied as they are)")
    return parser


@cli.interruptible
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    cli.configure_logging()
    run_only = [f"--{n.replace('_', '-')}" for n in ("methods", "identities", "trials_per_identity")
                if getattr(args, n) is not None] + [f"--{n.replace('_', '-')}" for n in ("pairwise_trials", "match_trials")
                                                      if getattr(args, n)]
    if args.preference_levels != 3:
        run_only.append("--preference-levels")
    try:
        consent = args.consent.read_text(encoding="utf-8").strip() if args.consent is not None else ""
    except OSError as error:
        return cli.fail(f"{args.consent}: cannot be read: {error.strerror or error} (--consent)", parser.prog)
    except UnicodeDecodeError as error:
        return cli.fail(f"{args.consent}: not UTF-8 text ({error}) (--consent)", parser.prog)
    options = {"play_through": args.play_through, "consent": consent, "completion_code": args.completion_code,
               "completion_url": args.completion_url, "constant_bitrate": args.constant_bitrate}
    if args.run is not None:
        if args.references is not None:
            parser.error("--references is for --method folders; a run's study has no reference")
        build = functools.partial(
            make_study_from_run, args.out, args.run, methods=args.methods, identities=args.identities,
            trials_per_identity=args.trials_per_identity, frozen_checks=args.frozen_checks,
            repeat_checks=args.repeat_checks, check_criteria=args.check_criteria, criteria=args.criteria,
            title=args.title, instructions=args.instructions, seed=args.seed, pairwise_trials=args.pairwise_trials,
            match_trials=args.match_trials, preference_levels=args.preference_levels, **options)
    else:
        if run_only:
            parser.error(f"{', '.join(run_only)} only with --run")
        names = [name for name, _ in args.method]
        if len(set(names)) != len(names):
            return cli.fail(f"a method is given twice: {names}", parser.prog)
        build = functools.partial(make_study, args.out, dict(args.method), criteria=args.criteria, title=args.title,
                                  instructions=args.instructions, references=args.references, seed=args.seed,
                                  frozen_checks=args.frozen_checks, repeat_checks=args.repeat_checks,
                                  check_criteria=args.check_criteria, **options)
    try:
        build()
    except (StudyError, EncodingError) as error:
        return cli.fail(error, parser.prog)
    except OSError as error:   # a folder that cannot be written, a disk that is full: nothing is left
        return cli.fail(f"{error.filename}: {error.strerror or error}", parser.prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
