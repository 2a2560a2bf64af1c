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
``{"name", "question"}``. ``title`` and ``instructions`` are optional, and so are a trial's
``reference``, its ``clip`` (where its videos come from, e.g. ``alice/clip03``: information for the
analysis, never shown) and its ``check``.

An *attention check* is a trial with a known answer, mixed among the others (each participant's
trial order is shuffled, so it lands at a random position). Its ``check`` is one of::

    {"kind": "last", "method": "mya", "criteria": ["sound-video synchronization"]}
        the video in the slot of ``method`` is visibly broken (e.g. a frozen video): a participant
        who watches ranks it last on each of ``criteria`` (default: every criterion);
    {"kind": "repeat", "of": "t01", "criteria": [...]}
        the same videos as trial ``of`` (a trial that is not a check), shown again under fresh
        blinded ids and positions: an attentive participant ranks them alike.

Check trials are answered like any other; ``userstudy.attention`` scores them, and the analysis
leaves them out of the statistics and excludes participants who fail them.

A trial is a ranking of every method's video (``"kind": "rank"``, the default) or a *pairwise*
trial, answered per criterion with a preference between two videos shown left and right (on
``preference_levels`` levels: 3 = left / equal / right, 5 = clearly or slightly left, equal,
slightly or clearly right)::

    {"id": "p01", "kind": "compare", "videos": {"imac": "...", "s2g": "..."}}
        two of the study's methods on one clip;
    {"id": "m01", "kind": "match", "method": "imac",
     "videos": {"matched": "...", "mismatched": "..."}, "criteria": ["sound-video synchronization"]}
        one method's video with its own speech against one with another clip's speech (the
        sound-gesture synchronisation test: does the participant pick the right speech?).

A pairwise trial may name the ``criteria`` it asks (default: every criterion of the study); a check
is a ranking trial. The study-level options: ``play_through`` (default true: ranking or answering
a trial unlocks once each of its videos has played to the end, or was reported as not playing),
``consent`` (an information and consent text the participant must agree to before starting),
``completion_code`` and ``completion_url`` (shown once every trial is saved, e.g. the code a
crowdsourcing platform expects back) and ``preference_levels`` (3 or 5, default 3). Any other key, or a value of the wrong type, is an error that names the section and
the key. Every trial has one video per method. ``seed`` keys the randomisation:
a participant's trial order, the videos' positions and their blinded ids are a deterministic
function of (seed, participant id), so a participant who comes back sees the same page, and the
server can un-blind an answer without storing any mapping.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from userstudy.cli import problems_message
from userstudy.jsonfile import JSONFileError, read_json
from userstudy.schema import PAPER_CRITERIA, PAPER_QUESTIONS, criterion_slug

STUDY_FILE = "study.json"
RANKINGS_FILE = "rankings.csv"
VIDEO_SUFFIXES = (".mp4", ".webm", ".ogv", ".mov", ".m4v")
REFERENCE_SUFFIXES = VIDEO_SUFFIXES + (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Ids that travel in URLs and the CSV: letters, digits and . _ - (no path separators, no dots-only).
# Always matched whole (``is_valid_id``): with ``re.match``, ``$`` also matches before a final
# newline, so "alice\n" slipped through.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def is_valid_id(value: object) -> bool:
    """True for a string of 1-64 ASCII letters, digits, '.', '_' or '-' starting with a letter or digit."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None
# Blinded video ids: capital letters without I and O (read as 1 and 0).
BLIND_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DEFAULT_TITLE = "Video ranking study"


class StudyError(ValueError):
    """A study folder or study file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], source: str | os.PathLike | None = None):
        self.problems = list(problems)
        super().__init__(problems_message(self.problems, source, "the study"))


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str


CHECK_KINDS = ("last", "repeat")
TRIAL_KINDS = ("rank", "compare", "match")
PAIRWISE_KINDS = ("compare", "match")
MATCH_SLOTS = ("matched", "mismatched")
PREFERENCE_LEVELS = {3: (-1, 0, 1), 5: (-2, -1, 0, 1, 2)}


@dataclass(frozen=True)
class AttentionCheck:
    """What a check trial expects (see the module docstring): ``kind`` "last" (the video in the slot
    of ``method`` must be ranked last) or "repeat" (ranked like trial ``of``), on ``criteria``
    (empty: every criterion of the study)."""

    kind: str
    method: str | None = None
    of: str | None = None
    criteria: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trial:
    id: str
    videos: dict[str, str]          # slot -> path relative to the study folder (a slot is a method,
                                    # or "matched" / "mismatched" in a match trial)
    reference: str | None = None
    clip: str | None = None         # provenance, e.g. "alice/clip03" (never shown to participants)
    check: AttentionCheck | None = None
    kind: str = "rank"              # one of TRIAL_KINDS
    method: str | None = None       # a match trial's method
    criteria: tuple[str, ...] = ()  # a pairwise trial's criteria (empty: every criterion)

    @property
    def pairwise(self) -> bool:
        return self.kind in PAIRWISE_KINDS

    def slots(self, methods: tuple[str, ...]) -> tuple[str, ...]:
        """The trial's video slots in a fixed order: the study's methods (a compare trial's two, in
        the study's order: the first is ``method_a``), or matched then mismatched."""
        if self.kind == "match":
            return MATCH_SLOTS
        return tuple(m for m in methods if m in self.videos)

    def pair(self, methods: tuple[str, ...]) -> tuple[str, str]:
        """A pairwise trial's (method_a, method_b): video a is the first slot."""
        if self.kind == "match":
            return self.method, self.method
        first, second = self.slots(methods)
        return first, second


@dataclass(frozen=True)
class Study:
    root: Path
    title: str
    instructions: str
    seed: str
    methods: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    trials: tuple[Trial, ...]
    play_through: bool = True
    consent: str = ""
    completion_code: str = ""
    completion_url: str = ""
    preference_levels: int = 3

    def criteria_of(self, trial: Trial) -> list[str]:
        """The criteria a trial asks: every criterion, or a pairwise trial's own."""
        return list(trial.criteria) if trial.criteria else [c.name for c in self.criteria]

    @property
    def rankings_path(self) -> Path:
        return self.root / RANKINGS_FILE

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials if t.id == trial_id), None)

    def file(self, relative: str) -> Path:
        """The absolute path of a file named in the study file, resolved now (links followed).

        Raises ``FileNotFoundError`` when it is missing, not a regular file, or leads outside the
        folder (a link replaced after the study was loaded): callers serve nothing then.
        """
        try:
            path = (self.root / relative).resolve(strict=True)
        except (OSError, ValueError, RuntimeError) as error:
            raise FileNotFoundError(f"{relative!r}: {error}") from None
        if not path.is_relative_to(self.root) or not path.is_file():
            raise FileNotFoundError(f"{relative!r} is not a file inside the study folder")
        return path


@dataclass(frozen=True)
class PlannedTrial:
    """One trial as one participant sees it: ``shown`` is (blinded id, slot) left to right (a slot is
    a method, or matched / mismatched in a match trial)."""

    trial: Trial
    shown: tuple[tuple[str, str], ...]

    def method_of(self, blind_id: str) -> str | None:
        return next((m for b, m in self.shown if b == blind_id), None)

    def position_of(self, method: str) -> int:
        return next(i for i, (_, m) in enumerate(self.shown, start=1) if m == method)

    def blind_id_of(self, method: str) -> str:
        return next(b for b, m in self.shown if m == method)


def _inside(root: Path, relative: object, what: str, suffixes: tuple[str, ...], problems: list[str],
            check_files: bool = True) -> None:
    if not isinstance(relative, str) or not relative:
        problems.append(f"{what}: expected a relative path, got {relative!r}")
        return
    if Path(relative).is_absolute() or ".." in Path(relative).parts or "\\" in relative:
        problems.append(f"{what}: {relative!r} must be a path inside the study folder (no absolute "
                        "paths, no '..')")
        return
    if not check_files:
        return
    try:
        path = (root / relative).resolve()
        is_file = path.is_file()
    except (OSError, ValueError, RuntimeError) as error:  # a NUL byte, a symbolic link loop
        problems.append(f"{what}: {relative!r} cannot be opened ({error})")
        return
    if not path.is_relative_to(root.resolve()):
        problems.append(f"{what}: {relative!r} leads outside the study folder (a symbolic link?)")
    elif not is_file:
        problems.append(f"{what}: {relative!r} does not exist")
    elif path.suffix.lower() not in suffixes:
        problems.append(f"{what}: {relative!r} is not one of {', '.join(suffixes)}")


# The keys of each section of the study file, with the JSON type of each: any other key, or a value
# of another type, is a problem that names the section (the file, ``criteria[i]``, ``trials[i]``)
# and the key. A reference may be null (no reference).
STRING, LIST, OBJECT = (str,), (list,), (dict,)
STUDY_KEYS: dict[str, tuple[type, ...]] = {"title": STRING, "instructions": STRING, "seed": (str, int),
                                           "methods": LIST, "criteria": LIST, "trials": LIST,
                                           "play_through": (bool,), "consent": STRING,
                                           "completion_code": STRING, "completion_url": STRING,
                                           "preference_levels": (int,)}
CRITERION_KEYS: dict[str, tuple[type, ...]] = {"name": STRING, "question": STRING}
TRIAL_KEYS: dict[str, tuple[type, ...]] = {"id": STRING, "videos": OBJECT, "reference": (str, type(None)),
                                           "clip": STRING, "check": OBJECT, "kind": STRING, "method": STRING,
                                           "criteria": LIST}
CHECK_KEYS: dict[str, tuple[type, ...]] = {"kind": STRING, "method": STRING, "of": STRING, "criteria": LIST}


JSON_KINDS: dict[type, str] = {str: "a string", list: "a list", dict: "an object", type(None): "null",
                               bool: "true or false", int: "a number", float: "a number"}


def _json_kind(value: object) -> str:
    """How JSON names the type of a parsed value: ``a string``, ``a number``, ``null``."""
    return JSON_KINDS.get(type(value), type(value).__name__)


def _check_keys(section: str, entry: dict, keys: dict[str, tuple[type, ...]],
                problems: list[str]) -> tuple[dict, set[str]]:
    """Report the unknown keys of ``entry`` and its values of the wrong type.

    Returns the values that passed and the keys that were reported (so that a key of the wrong
    type is not reported again as missing).
    """
    passed, reported = {}, set()
    for key, value in entry.items():
        if key not in keys:
            problems.append(f"{section}: unknown key {key!r} (known: {', '.join(sorted(keys))})")
            reported.add(key)
        elif not isinstance(value, keys[key]):
            expected = " or ".join(JSON_KINDS[t] for t in keys[key])
            problems.append(f"{section}: {key!r} must be {expected}, got {value!r} ({_json_kind(value)})")
            reported.add(key)
        else:
            passed[key] = value
    return passed, reported


def default_question(criterion: str) -> str:
    """The question shown with a criterion that the study file gives none for."""
    return PAPER_QUESTIONS.get(criterion, f"Rank the videos by {criterion}.")


def name_slug(name: str) -> str:
    """``criterion_slug`` of a name, or ``""`` for a name without a letter or digit."""
    return criterion_slug(name) if re.search(r"[A-Za-z0-9]", name) else ""


def _criteria(entries: list, problems: list[str]) -> list[Criterion]:
    criteria = []
    for i, entry in enumerate(entries):
        section = f"criteria[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if isinstance(entry, dict):
            entry, reported = _check_keys(section, entry, CRITERION_KEYS, problems)
            if reported:
                continue
        if not isinstance(entry, dict) or not entry.get("name", "").strip():
            problems.append(f"{section}: expected a name or {{'name', 'question'}}, got {entry!r}")
            continue
        name = entry["name"].strip()
        criteria.append(Criterion(name, entry.get("question", default_question(name))))
    names = [c.name for c in criteria]
    slugs = [name_slug(n) for n in names]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        problems.append(f"criteria: names must differ in their letters and digits, got {names}")
    return criteria


def _check(where: str, entry: dict, methods: list[str], criteria: list[str],
           problems: list[str]) -> AttentionCheck | None:
    """The ``check`` of a trial, or None with the problems reported (the ``of`` target is checked later)."""
    section = f"{where} check"
    entry, reported = _check_keys(section, entry, CHECK_KEYS, problems)
    if reported:
        return None
    kind = entry.get("kind")
    if kind not in CHECK_KINDS:
        problems.append(f"{section}: kind must be one of {', '.join(CHECK_KINDS)}, got {kind!r}")
        return None
    chosen = entry.get("criteria", [])
    unknown = [c for c in chosen if c not in criteria]
    found = len(problems)             # each of the check's problems is reported, not only the first
    if unknown or (not chosen and "criteria" in entry):
        problems.append(f"{section}: criteria must name criteria of the study ({', '.join(criteria)}), got {chosen!r}")
    if kind == "last":
        if entry.get("method") not in methods or "of" in entry:
            problems.append(f"{section}: a 'last' check names the method whose slot holds the broken video "
                            f"(one of {', '.join(methods)}) and no 'of', got {entry!r}")
        return None if len(problems) > found else AttentionCheck("last", method=entry["method"],
                                                                 criteria=tuple(chosen))
    if not isinstance(entry.get("of"), str) or "method" in entry:
        problems.append(f"{section}: a 'repeat' check names the trial it repeats in 'of' and no 'method', "
                        f"got {entry!r}")
    return None if len(problems) > found else AttentionCheck("repeat", of=entry["of"], criteria=tuple(chosen))


def _trial_videos(where: str, kind: str, entry: dict, videos: dict, methods: list[str], criteria: list[str],
                  problems: list[str]) -> None:
    """Check that a trial's videos fit its kind, and a pairwise trial's method and criteria."""
    if kind == "rank":
        missing = [m for m in methods if m not in videos]
        extra = [m for m in videos if m not in methods]
        if methods and (missing or extra):  # (no methods: that problem is reported once, above)
            problems.append(f"{where}: videos must name each method once"
                            + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
        for key in ("method", "criteria"):
            if key in entry:
                problems.append(f"{where}: {key!r} belongs to pairwise trials (kind compare or match)")
        return
    if kind == "compare":
        if len(videos) != 2 or not all(m in methods for m in videos):
            problems.append(f"{where}: a 'compare' trial has the videos of two of the study's methods "
                            f"({', '.join(methods)}), got {sorted(videos)}")
        if "method" in entry:
            problems.append(f"{where}: 'method' belongs to match trials")
    else:
        if sorted(videos) != sorted(MATCH_SLOTS):
            problems.append(f"{where}: a 'match' trial's videos are 'matched' (the clip's own speech) and "
                            f"'mismatched' (another clip's speech), got {sorted(videos)}")
        if entry.get("method") not in methods:
            problems.append(f"{where}: a 'match' trial names the method of its two videos (one of "
                            f"{', '.join(methods)}), got {entry.get('method')!r}")
    chosen = entry.get("criteria", [])
    if ("criteria" in entry and not chosen) or any(c not in criteria for c in chosen) \
            or len(set(chosen)) != len(chosen):
        problems.append(f"{where}: criteria must name criteria of the study once each "
                        f"({', '.join(criteria)}), got {chosen!r}")


def _check_repeats(trials: list[Trial], problems: list[str]) -> None:
    by_id = {t.id: t for t in trials}
    for trial in trials:
        if trial.check is None or trial.check.kind != "repeat":
            continue
        original = by_id.get(trial.check.of)
        where = f"trial {trial.id!r} check"
        if original is None or original.check is not None:
            problems.append(f"{where}: 'of' must name a trial of the study that is not a check, got "
                            f"{trial.check.of!r}")
        elif original.videos != trial.videos:
            problems.append(f"{where}: a repeat shows the same videos as trial {original.id!r}")


def _trials(entries: list, root: Path, methods: list[str], problems: list[str], criteria: list[str] = (),
            check_files: bool = True) -> list[Trial]:
    trials, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"trials[{i}]: expected an object, got {entry!r}")
            continue
        trial_id = entry.get("id")
        where = f"trials[{i}] ({trial_id!r})"
        entry, reported = _check_keys(where, entry, TRIAL_KEYS, problems)
        if not is_valid_id(trial_id):
            if "id" not in reported:
                problems.append(f"{where}: id must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                                "letter or digit")
        elif trial_id in seen:
            problems.append(f"{where}: id repeats")
        seen.add(trial_id)
        videos = entry.get("videos")
        if videos is None:
            if "videos" not in reported:
                problems.append(f"{where}: videos must map each method to a file")
            continue
        kind = entry.get("kind", "rank")
        if kind not in TRIAL_KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(TRIAL_KINDS)}, got {kind!r}")
            continue
        _trial_videos(where, kind, entry, videos, methods, criteria, problems)
        for method, relative in videos.items():
            _inside(root, relative, f"{where} video of {method!r}", VIDEO_SUFFIXES, problems, check_files)
        reference = entry.get("reference")
        if reference is not None:
            _inside(root, reference, f"{where} reference", REFERENCE_SUFFIXES, problems, check_files)
        check = _check(where, entry["check"], methods, criteria, problems) if "check" in entry else None
        if check is not None and kind != "rank":
            problems.append(f"{where}: an attention check is a ranking trial, not a {kind!r} trial")
        trials.append(Trial(str(trial_id), {m: str(v) for m, v in videos.items()}, reference,
                            entry.get("clip"), check, kind, entry.get("method"),
                            tuple(entry.get("criteria", ()))))
    _check_repeats(trials, problems)
    if trials and all(t.check is not None for t in trials):
        problems.append("trials: every trial is an attention check; a study needs trials to analyse")
    if trials and all(t.check is not None or t.pairwise for t in trials) and any(t.check for t in trials):
        problems.append("trials: the attention checks are ranking trials; a study with checks needs ranking "
                        "trials to analyse beside them")
    return trials


def parse_study(document: object, root: Path, check_files: bool = True) -> Study:
    """Check a parsed study file against the folder; every problem is reported at once.

    A key the file does not know, or a value of the wrong type, is a problem that names the
    section (``study.json``, ``criteria[i]``, ``trials[i]``) and the key. ``check_files=False``
    skips the checks that the videos and references exist (the analysis needs only the file).
    """
    problems: list[str] = []
    if not isinstance(document, dict):
        raise StudyError(["the study file must be a JSON object"], root / STUDY_FILE)
    document, reported = _check_keys(STUDY_FILE, document, STUDY_KEYS, problems)

    methods = document.get("methods", [])
    if len(methods) < 2 or not all(isinstance(m, str) and m.strip() and m.isprintable() for m in methods):
        if "methods" not in reported:
            problems.append(f"methods: expected a list of at least two names, got {document.get('methods')!r}")
        methods = []
    elif len(set(methods)) != len(methods):
        problems.append(f"methods: names repeat in {methods}")
    if len(methods) > len(BLIND_LETTERS):
        problems.append(f"methods: at most {len(BLIND_LETTERS)} per trial, got {len(methods)}")

    criteria = _criteria(document.get("criteria", list(PAPER_CRITERIA)), problems)
    if "criteria" in document and not document["criteria"]:
        problems.append("criteria: the list is empty")

    raw_trials = document.get("trials")
    if not raw_trials and "trials" not in reported:
        problems.append("trials: expected a non-empty list")
    trials = _trials(raw_trials or [], root, methods, problems, [c.name for c in criteria], check_files)

    seed = document.get("seed")   # an integer seed keys the randomisation as its decimal text
    if (seed is None or isinstance(seed, bool) or str(seed) == "") and "seed" not in reported:
        problems.append(f"seed: expected a non-empty string or an integer that keys the randomisation, "
                        f"got {seed!r}")
    levels = document.get("preference_levels", 3)
    if levels not in PREFERENCE_LEVELS and "preference_levels" not in reported:
        problems.append(f"preference_levels: 3 (left, equal, right) or 5 (clearly/slightly left, equal, "
                        f"slightly/clearly right), got {levels!r}")
    url = document.get("completion_url", "")
    if url and not url.startswith(("https://", "http://")):
        problems.append(f"completion_url: an http(s) address, got {url!r}")
    if problems:
        raise StudyError(problems, root / STUDY_FILE)
    return Study(root=root.resolve(), title=document.get("title", DEFAULT_TITLE),
                 instructions=document.get("instructions", ""), seed=str(seed),
                 methods=tuple(methods), criteria=tuple(criteria), trials=tuple(trials),
                 play_through=document.get("play_through", True), consent=document.get("consent", ""),
                 completion_code=document.get("completion_code", ""), completion_url=url,
                 preference_levels=levels)


def study_folder(path: str | os.PathLike) -> Path:
    """The study folder that ``path`` names: the folder itself, or its ``study.json`` standing for
    it (as ``imac-bench`` takes a run's ``results.json`` for the run folder). Raises ``StudyError``
    for another file (a study is given by its folder)."""
    path = Path(path)
    if path.name == STUDY_FILE and path.is_file():
        return path.parent
    if path.exists() and not path.is_dir():
        raise StudyError([f"is a file, not a study folder (give the folder that holds {STUDY_FILE})"], path)
    return path


def load_study(folder: str | os.PathLike, check_files: bool = True) -> Study:
    """Read and check ``folder/study.json``; raises ``StudyError`` with every problem.

    ``folder`` may also be the ``study.json`` itself (``study_folder``). ``check_files=False``: the
    study file alone (its videos need not be there), for the analysis.
    """
    root = study_folder(folder)
    path = root / STUDY_FILE
    try:
        document = read_json(path)
    except FileNotFoundError:
        what = "no such folder" if not root.exists() else f"no {STUDY_FILE} in the folder"
        raise StudyError([f"{what} (make a study with python -m userstudy make-study)"], root) from None
    except JSONFileError as error:   # too large, nested too deeply, not UTF-8 or not JSON
        raise StudyError([str(error).removeprefix(f"{path}: ")], path) from None
    return parse_study(document, root, check_files)


def keyed_rng(*parts: str) -> random.Random:
    """A random generator keyed by text (e.g. the study's seed and a participant id)."""
    # A hash, not Python's hash(): the same plan in every process and after every restart.
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def participant_plan(study: Study, participant: str) -> list[PlannedTrial]:
    """The participant's trials in their randomised order, each with the methods' videos in a
    randomised position under blinded ids (fresh per trial, so ids say nothing across trials)."""
    order = list(study.trials)
    keyed_rng(study.seed, "order", participant).shuffle(order)
    plan = []
    for trial in order:
        rng = keyed_rng(study.seed, "trial", participant, trial.id)
        slots = list(trial.slots(study.methods))
        rng.shuffle(slots)
        letters = rng.sample(BLIND_LETTERS, len(slots))
        plan.append(PlannedTrial(trial, tuple(zip(letters, slots, strict=True))))
    return plan


def planned_trial(study: Study, participant: str, trial_id: str) -> PlannedTrial | None:
    return next((p for p in participant_plan(study, participant) if p.trial.id == trial_id), None)


def new_participant_id() -> str:
    """A fresh participant id, e.g. ``P-7K2M9QXD`` (unambiguous letters and digits)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "P-" + "".join(secrets.choice(alphabet) for _ in range(8))
