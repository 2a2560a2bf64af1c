"""The study folder: its ``study.json``, its checks, and each participant's randomised, blinded plan.

Standard library only (the server uses it). A study folder holds::

    study.json          the study file (below)
    videos/...          the videos, any layout, referenced from study.json by relative paths
    references/...      optional: a reference image or video per trial (e.g. the speaker's photo)
    rankings.csv        written by the server: the answers (userstudy.schema)

``study.json``::

    {
      "title": "Co-speech gesture videos",
      "instructions": "Watch the videos, then rank them on each criterion.",
      "seed": "5f1c0e9a",
      "methods": ["imac", "s2g", "mya"],
      "criteria": [{"name": "visual quality", "question": "Which video looks best?"}, "temporal consistency"],
      "trials": [
        {"id": "t01", "reference": "references/t01.png",
         "videos": {"imac": "videos/imac/t01.mp4", "s2g": "videos/s2g/t01.mp4", "mya": "videos/mya/t01.mp4"}}
      ]
    }

``criteria`` is optional (default: the paper's four, with their questions); an entry is a name or
``{"name", "question"}``. Every trial has one video per method. ``seed`` keys the randomisation:
a participant's trial order, the videos' positions and their blinded ids are a deterministic
function of (seed, participant id), so a participant who comes back sees the same page, and the
server can un-blind an answer without storing any mapping.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from userstudy.files import write_text_atomic
from userstudy.schema import PAPER_CRITERIA, PAPER_QUESTIONS, criterion_slug

STUDY_FILE = "study.json"
RANKINGS_FILE = "rankings.csv"
VIDEO_SUFFIXES = (".mp4", ".webm", ".ogv", ".mov", ".m4v")
REFERENCE_SUFFIXES = VIDEO_SUFFIXES + (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Ids that travel in URLs and the CSV: letters, digits and . _ - (no path separators, no dots-only).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Blinded video ids: capital letters without I and O (read as 1 and 0).
BLIND_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


class StudyError(ValueError):
    """A study folder or study file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], source: str | os.PathLike | None = None):
        self.problems = list(problems)
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{len(self.problems)} problem(s) in the study:\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str


@dataclass(frozen=True)
class Trial:
    id: str
    videos: dict[str, str]          # method -> path relative to the study folder
    reference: str | None = None


@dataclass(frozen=True)
class Study:
    root: Path
    title: str
    instructions: str
    seed: str
    methods: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    trials: tuple[Trial, ...]

    @property
    def rankings_path(self) -> Path:
        return self.root / RANKINGS_FILE

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials if t.id == trial_id), None)

    def file(self, relative: str) -> Path:
        """The absolute path of a file named in the study file (checked to lie in the folder)."""
        return (self.root / relative).resolve()


@dataclass(frozen=True)
class PlannedTrial:
    """One trial as one participant sees it: ``shown`` is (blinded id, method) left to right."""

    trial: Trial
    shown: tuple[tuple[str, str], ...]

    def method_of(self, blind_id: str) -> str | None:
        return next((m for b, m in self.shown if b == blind_id), None)

    def position_of(self, method: str) -> int:
        return next(i for i, (_, m) in enumerate(self.shown, start=1) if m == method)

    def blind_id_of(self, method: str) -> str:
        return next(b for b, m in self.shown if m == method)


def _inside(root: Path, relative: object, what: str, suffixes: tuple[str, ...], problems: list[str]) -> None:
    if not isinstance(relative, str) or not relative:
        problems.append(f"{what}: expected a relative path, got {relative!r}")
        return
    if Path(relative).is_absolute() or ".." in Path(relative).parts or "\\" in relative:
        problems.append(f"{what}: {relative!r} must be a path inside the study folder (no absolute "
                        "paths, no '..')")
        return
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        problems.append(f"{what}: {relative!r} leads outside the study folder (a symbolic link?)")
    elif not path.is_file():
        problems.append(f"{what}: {relative!r} does not exist")
    elif path.suffix.lower() not in suffixes:
        problems.append(f"{what}: {relative!r} is not one of {', '.join(suffixes)}")


def parse_study(document: object, root: Path) -> Study:
    """Check a parsed study file against the folder; every problem is reported at once."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise StudyError(["the study file must be a JSON object"], root / STUDY_FILE)
    methods = document.get("methods")
    if (not isinstance(methods, list) or len(methods) < 2
            or not all(isinstance(m, str) and m.strip() and m.isprintable() for m in methods)):
        problems.append(f"methods: expected a list of at least two names, got {methods!r}")
        methods = []
    elif len(set(methods)) != len(methods):
        problems.append(f"methods: names repeat in {methods}")
    if len(methods) > len(BLIND_LETTERS):
        problems.append(f"methods: at most {len(BLIND_LETTERS)} per trial, got {len(methods)}")

    criteria = []
    for i, entry in enumerate(document.get("criteria", list(PAPER_CRITERIA))):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            problems.append(f"criteria[{i}]: expected a name or {{'name', 'question'}}, got {entry!r}")
            continue
        name = entry["name"].strip()
        question = entry.get("question", PAPER_QUESTIONS.get(name, f"Rank the videos by {name}."))
        criteria.append(Criterion(name, str(question)))
    names = [c.name for c in criteria]
    if not criteria and "criteria" in document:
        problems.append("criteria: the list is empty")
    slugs = [criterion_slug(n) for n in names if re.search(r"[A-Za-z0-9]", n)]
    if len(set(slugs)) != len(slugs) or len(slugs) != len(names):
        problems.append(f"criteria: names must differ in their letters and digits, got {names}")

    trials, seen = [], set()
    raw_trials = document.get("trials")
    if not isinstance(raw_trials, list) or not raw_trials:
        problems.append("trials: expected a non-empty list")
        raw_trials = []
    for i, entry in enumerate(raw_trials):
        if not isinstance(entry, dict):
            problems.append(f"trials[{i}]: expected an object, got {entry!r}")
            continue
        trial_id = entry.get("id")
        where = f"trials[{i}] ({trial_id!r})"
        if not isinstance(trial_id, str) or not ID_PATTERN.match(trial_id):
            problems.append(f"{where}: id must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit")
        elif trial_id in seen:
            problems.append(f"{where}: id repeats")
        seen.add(trial_id)
        videos = entry.get("videos")
        if not isinstance(videos, dict):
            problems.append(f"{where}: videos must map each method to a file")
            continue
        missing = [m for m in methods if m not in videos]
        extra = [m for m in videos if m not in methods]
        if missing or extra:
            problems.append(f"{where}: videos must name each method once"
                            + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
        for method, relative in videos.items():
            _inside(root, relative, f"{where} video of {method!r}", VIDEO_SUFFIXES, problems)
        reference = entry.get("reference")
        if reference is not None:
            _inside(root, reference, f"{where} reference", REFERENCE_SUFFIXES, problems)
        trials.append(Trial(str(trial_id), {m: str(v) for m, v in videos.items()}, reference))

    seed = document.get("seed")
    if not isinstance(seed, (str, int)) or str(seed) == "":
        problems.append(f"seed: expected a string or integer that keys the randomisation, got {seed!r}")
    if problems:
        raise StudyError(problems, root / STUDY_FILE)
    return Study(root=root.resolve(), title=str(document.get("title", "Video ranking study")),
                 instructions=str(document.get("instructions", "")), seed=str(seed),
                 methods=tuple(methods), criteria=tuple(criteria), trials=tuple(trials))


def load_study(folder: str | os.PathLike) -> Study:
    """Read and check ``folder/study.json``; raises ``StudyError`` with every problem."""
    root = Path(folder)
    path = root / STUDY_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError([f"no {STUDY_FILE} in the folder (make one with python -m userstudy.make_study)"],
                         root) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StudyError([f"not valid JSON: {error}"], path) from None
    return parse_study(document, root)


def _rng(*parts: str) -> random.Random:
    # A hash, not Python's hash(): the same plan in every process and after every restart.
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def participant_plan(study: Study, participant: str) -> list[PlannedTrial]:
    """The participant's trials in their randomised order, each with the methods' videos in a
    randomised position under blinded ids (fresh per trial, so ids say nothing across trials)."""
    order = list(study.trials)
    _rng(study.seed, "order", participant).shuffle(order)
    plan = []
    for trial in order:
        rng = _rng(study.seed, "trial", participant, trial.id)
        methods = list(study.methods)
        rng.shuffle(methods)
        letters = rng.sample(BLIND_LETTERS, len(methods))
        plan.append(PlannedTrial(trial, tuple(zip(letters, methods, strict=True))))
    return plan


def planned_trial(study: Study, participant: str, trial_id: str) -> PlannedTrial | None:
    return next((p for p in participant_plan(study, participant) if p.trial.id == trial_id), None)


def new_participant_id() -> str:
    """A fresh participant id, e.g. ``P-7K2M9QXD`` (unambiguous letters and digits)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "P-" + "".join(secrets.choice(alphabet) for _ in range(8))


# -- making a study folder -------------------------------------------------------------------------


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def create_study(out: str | os.PathLike, method_folders: dict[str, str | os.PathLike],
                 criteria: list[str] | None = None, title: str = "Video ranking study",
                 instructions: str = "", references: str | os.PathLike | None = None,
                 seed: str | None = None) -> Study:
    """Make a study folder from one folder of videos per method; returns the checked study.

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
    folder_names = {m: criterion_slug(m) if re.search(r"[A-Za-z0-9]", m) else "" for m in method_folders}
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
    if references is not None:
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
        "criteria": [{"name": c, "question": PAPER_QUESTIONS.get(c, f"Rank the videos by {c}.")} for c in criteria],
        "trials": trials,
    }
    study = parse_study(document, out)
    write_text_atomic(out / STUDY_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return study
