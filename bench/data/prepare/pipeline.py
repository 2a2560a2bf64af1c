"""From a folder of raw talking videos of one speaker to clips in the project's dataset format.

The paper's pipeline, stage by stage (``imac-bench data prepare RAW_DIR --identity NAME --out DIR``):

1. scenes: PySceneDetect's content detector splits every source video at its shot changes, and its
   adaptive detector at jump cuts inside a shot (``bench.data.prepare.jumpcuts``; ``jump_cuts``
   False turns that off; the report counts them); frames are resampled to a constant rate by their timestamps (``--fps``, default the source's average), so
   variable-rate recordings stay in sync with their audio;
2. length: scenes shorter than ``min_seconds`` (3 s) are dropped; scenes longer than
   ``max_seconds`` (no limit by default) are cut into equal pieces;
3. single speaker: per-clip active-speaker counts from a file (TalkNet's, the paper's choice, see
   ``bench.data.prepare.speakers``) or, for clips it does not list, the face-count fallback: a clip
   where two or more faces show in more than ``max_several_faces_fraction`` of the sampled frames
   is dropped. Which of the two decided is written per clip and counted in the report;
4. face filter: a frontal face (``bench.data.prepare.faces``) must be found with confidence
   >= ``face_confidence`` in at least ``min_frontal_fraction`` of the sampled frames;
5. audio: 16 kHz mono wav per clip, decoded by PyAV (no system ffmpeg);
6. motion: per-clip SMPL-X fits (SHOW's files) imported into the motion npz, frame counts checked;
7. crop: one square box per clip from the person's extent over all its frames (DWPose keypoints,
   a mask, or the face fallback), resized to ``size``; a clip whose keypoints or masks show the
   person jumping between consecutive frames is dropped, naming the frame
   (``bench.data.prepare.continuity``);
8. split by source video, ``manifest.jsonl``, ``statistics.md`` (the paper's Table 1), and per
   identity a ``report.md`` and a ``dropped.csv`` naming every dropped clip and why.

Expensive work (decoding, face detection, crops, keypoints, motion import) is done once and kept
under ``<out>/prepare/<identity>/``; the decisions are re-made from it on every run. A run is
resumable at any point, and the usual way to use the pipeline is to run it twice: once to get
the candidate clips (``prepare/<identity>/candidates/*.mp4``) that SHOW (and TalkNet) are then run
on, and again with ``--motion DIR`` (and ``--speakers FILE``) to finish the dataset. Clips waiting
for their motion are listed in the report and in ``awaiting_motion.txt``; they are not in the manifest.
Runs of several identities into one ``--out`` may go at once (one per speaker): each holds its own
``prepare/<identity>/`` and they write the shared manifest in turn; a second run of the same identity
is refused while the first works.
"""

from __future__ import annotations

import atexit
import csv
import io
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from metrics.dataset import MANIFEST_NAME, write_manifest
from bench.data.prepare import motion as motion_import
from bench.data.prepare.faces import (
    DEFAULT_CONFIDENCE,
    DEFAULT_DETECTOR,
    DETECTORS,
    MIN_FRONTALITY,
    FaceDetector,
    frontal_face_fraction,
    make_face_detector,
    several_faces_fraction,
)
from bench.data.prepare.continuity import DEFAULT_MAX_JUMP, PersonJumpError
from bench.data.prepare.crop import Box, upscale_factor
from bench.data.prepare.framing import CropJob, CropSettings, crop_clip
from bench.data.prepare.jumpcuts import JumpCutSettings
from bench.data.prepare.sources import (
    DECODE_ERRORS,
    VIDEO_SUFFIXES,
    SceneSettings,
    Workspace,
    clip_faces,
    file_signature,
    list_sources,
    passed_over,
    load_state,
    measure_source,
    read_json,
    settings_digest,
    source_name,
    state_is_current,
)
from bench.data.prepare.speakers import read_speaker_counts
from bench.data.prepare.split import split_by_source, statistics_markdown, statistics_rows
from bench.data.prepare.workers import run_jobs
from metrics.io.bounded import parse_json
from metrics.io.files import hold_folder, link_or_copy, write_json_atomic, write_text_atomic
from metrics.options import OptionsError, build_options, range_problem, ranged

PREPARE_VERSION = "imac-prepare-1"
STATISTICS_NAME = "statistics.md"
MAX_AUDIO_GAP_SECONDS = 0.5
PERSON_BOX_SOURCES = ("masks", "keypoints", "dwpose", "faces")
FACE_MEASUREMENT_VERSION = 2                 # 2: faces stored with their five landmarks
PREPARE_SECTION = "prepare"                  # names the options in messages (OptionsError)
MANIFEST_WAIT = 120.0                        # seconds a run waits for another identity's run writing the manifest
CLIP_FILE_SUFFIXES = (".motion.npz", ".keypoints.npz", ".mp4", ".wav")   # what a clip's files end in


@dataclass(frozen=True)
class PrepareOptions:
    """Every setting of a preparation run; the defaults are the paper's where it gives one.

    Each number's range is declared once, in its field (``metrics.options.ranged``): the options loader
    (``from_values``), a direct construction (``__post_init__``) and the command line's argparse types
    (``metrics.cli.option_type``, which also show it in the help) all check that declaration; a float
    must also be finite.
    """

    identity: str
    posture: str = "unknown"                 # standing | sitting | ..., for the statistics table
    size: int = ranged(512, ge=16, le=4096)  # output clips are size x size (even)
    fps: float | None = ranged(None, gt=0, le=1000)   # output frame rate (None: each source's average rate)
    # scenes and length
    scene_threshold: float = ranged(27.0, ge=0, le=255)   # PySceneDetect ContentDetector threshold
    min_scene_seconds: float = ranged(0.6, ge=0)          # its shortest scene
    jump_cuts: bool = True                   # also split at jump cuts (PySceneDetect's adaptive detector)
    jump_cut_threshold: float = ranged(3.0, gt=1)         # its ratio to the neighbouring frames' change
    min_seconds: float = ranged(3.0, gt=0)                # clips shorter than this are dropped
    max_seconds: float | None = ranged(None, gt=0)        # longer scenes are cut into equal pieces (None: no limit)
    # faces
    face_detector: str = DEFAULT_DETECTOR  # mtcnn (metrics.faces: the project's one face detector)
    face_model: str | None = None
    face_confidence: float | None = None     # None: the detector's default (its own scale: log-odds for mtcnn)
    min_face_size: float = ranged(0.05, gt=0, le=1)       # smallest face side, fraction of the frame's shorter side
    min_frontal_fraction: float = ranged(0.8, ge=0, le=1)
    min_frontality: float = ranged(MIN_FRONTALITY, ge=-1, le=1)   # nose within the middle of the eye line
    samples_per_second: float = ranged(2.0, gt=0)
    max_samples: int = ranged(24, ge=1)
    # single speaker
    speakers: str | None = None              # CSV clip_id,speakers (e.g. from TalkNet)
    max_several_faces_fraction: float = ranged(0.2, ge=0, le=1)   # face-count fallback
    # motion
    motion: str | None = None                # folder of per-clip SMPL-X fits
    smplx_model: str | None = None           # SMPLX_NEUTRAL_2020.npz, to expand PCA hand poses
    joints: str = "upper"
    flat_hand_mean: bool = False
    motion_frame_tolerance: int = ranged(0, ge=0)
    # crop
    masks: str | None = None                 # folder of per-clip person masks
    keypoints: str | None = None             # folder of per-clip DWPose keypoints
    dwpose_detector: str | None = None       # or compute them with DWPose from these ONNX files
    dwpose_pose: str | None = None
    keypoint_threshold: float = ranged(0.3, ge=0, le=1)
    crop_margin: float = ranged(0.05, ge=0)
    max_person_jump: float = ranged(DEFAULT_MAX_JUMP, ge=0)   # between consecutive frames (0: not checked)
    # split
    test_fraction: float = ranged(0.05, ge=0, lt=1)
    test_sources: tuple[str, ...] = ()
    seed: int = ranged(0, ge=0)
    workers: int = ranged(1, ge=1)           # processes for measuring sources and cropping clips

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> PrepareOptions:
        """Options from a mapping (a YAML section, the command line) through the project's options loader.

        Raises ``OptionsError`` naming the section ("prepare") and the key: an unknown key, a value of
        the wrong type, or one outside its range.
        """
        return build_options(cls, values, PREPARE_SECTION)

    def __post_init__(self) -> None:
        for option in fields(self):
            value = getattr(self, option.name)
            problem = range_problem(option.metadata.get("range", {}), value)
            if problem is None and isinstance(value, float) and not math.isfinite(value):
                problem = f"must be a finite number, got {value!r}"
            if problem:
                raise OptionsError(f"{PREPARE_SECTION}: {option.name}: {problem}")
        checks = [
            ("identity", bool(self.identity.strip()) and not set("/\\") & set(self.identity)
             and self.identity not in (".", ".."),
             f"must be a name of a folder inside --out (not '.' or '..', without '/' or '\\'), got "
             f"{self.identity!r}"),
            ("size", self.size % 2 == 0, f"must be even, got {self.size}"),
            ("max_seconds", self.max_seconds is None or self.max_seconds >= self.min_seconds,
             f"must be >= min_seconds ({self.min_seconds:g}), got {self.max_seconds}"),
            ("face_detector", self.face_detector in DETECTORS,
             f"must be one of {', '.join(DETECTORS)}, got {self.face_detector!r}"),
            ("joints", self.joints in motion_import.JOINT_PRESETS,
             f"must be one of {', '.join(motion_import.JOINT_PRESETS)}, got {self.joints!r}"),
            ("dwpose_pose", (self.dwpose_detector is None) == (self.dwpose_pose is None),
             "dwpose_detector and dwpose_pose go together"),
        ]
        for key, ok, message in checks:
            if not ok:
                raise OptionsError(f"{PREPARE_SECTION}: {key}: {message}")

    @property
    def confidence(self) -> float:
        return self.face_confidence if self.face_confidence is not None else DEFAULT_CONFIDENCE[self.face_detector]

    def measurement_settings(self) -> dict[str, Any]:
        """The settings the per-source measurements depend on (a change re-measures the sources)."""
        return {"fps": self.fps, "scene_threshold": self.scene_threshold, "min_scene_seconds": self.min_scene_seconds,
                "jump_cuts": self.jump_cuts, "jump_cut_threshold": self.jump_cut_threshold,
                "min_seconds": self.min_seconds, "max_seconds": self.max_seconds,
                "face_detector": self.face_detector,
                "face_model": self.face_model, "min_face_size": self.min_face_size,
                "samples_per_second": self.samples_per_second, "max_samples": self.max_samples,
                "face_version": FACE_MEASUREMENT_VERSION}


@dataclass
class ClipDecision:
    """What became of one scene: kept, or dropped at a stage for a reason."""

    clip_id: str
    source: str
    seconds: float
    kept: bool
    stage: str = ""
    reason: str = ""
    speaker_check: str = ""


@dataclass
class PrepareSummary:
    """What a run did: counts, where its outputs are, and what is still missing."""

    identity: str
    out: Path
    sources: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)     # readable sources without sound (a clip needs speech)
    scenes: int = 0
    jump_cuts: list[tuple[str, int]] = field(default_factory=list)   # (source, source frame) split there
    person_jumps: list[tuple[str, int]] = field(default_factory=list)  # (clip, first frame after the jump) dropped
    decisions: list[ClipDecision] = field(default_factory=list)
    in_manifest: int = 0
    awaiting_motion: list[str] = field(default_factory=list)
    motion_errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    speaker_checks: Counter = field(default_factory=Counter)
    person_boxes: Counter = field(default_factory=Counter)
    train_seconds: float = 0.0               # the split as realised on the kept clips, by whole sources
    test_seconds: float = 0.0
    test_fraction: float = 0.0               # as asked
    elapsed_seconds: float = 0.0             # wall-clock time of the run

    @property
    def kept(self) -> int:
        return sum(d.kept for d in self.decisions)

    @property
    def dropped(self) -> dict[str, int]:
        return dict(Counter(d.stage for d in self.decisions if not d.kept))


# -- decisions (pure) ------------------------------------------------------------------------------


def decide_clip(clip: str, source: str, entry: dict[str, Any], options: PrepareOptions,
                speaker_counts: dict[str, int] | None, frame_size: tuple[int, int] | None = None) -> ClipDecision:
    """Keep or drop one measured scene, by length, audio, speaker count and frontal face.

    ``frame_size`` ``(width, height)`` of the source's upright frames: a face must be in view in
    them to count (None: not checked).
    """
    decision = ClipDecision(clip, source, float(entry["seconds"]), kept=False)
    if entry["seconds"] < options.min_seconds:
        decision.stage, decision.reason = "length", f"{entry['seconds']:.2f} s < {options.min_seconds:g} s"
        return decision
    if not entry.get("measured"):
        decision.stage, decision.reason = "length", "not measured (it was shorter than the --min-seconds of the measuring run)"
        return decision
    gap = float(entry.get("audio_missing_seconds", 0.0))
    if gap > MAX_AUDIO_GAP_SECONDS:
        decision.stage, decision.reason = "audio", f"{gap:.2f} s of the clip lie outside the audio track"
        return decision
    samples = clip_faces(entry)
    threshold = options.confidence
    if speaker_counts is not None and clip in speaker_counts:
        decision.speaker_check = "speakers-file"
        count = speaker_counts[clip]
        if count != 1:
            decision.stage, decision.reason = "speakers", f"speakers file: {count} active speakers"
            return decision
    else:
        decision.speaker_check = "face-count"
        several = several_faces_fraction(samples, threshold)
        if several > options.max_several_faces_fraction:
            decision.stage = "speakers"
            decision.reason = (f"face-count fallback: two or more faces in {several:.0%} of {len(samples)} sampled "
                               f"frames (> {options.max_several_faces_fraction:.0%})")
            return decision
    frontal = frontal_face_fraction(samples, threshold, options.min_frontality, frame_size)
    if frontal < options.min_frontal_fraction:
        found = frontal_face_fraction(samples, threshold, -1.0, None)
        decision.stage = "faces"
        decision.reason = (f"frontal face (confidence >= {threshold:g}) in {frontal:.0%} of {len(samples)} sampled "
                           f"frames (< {options.min_frontal_fraction:.0%})")
        if found > frontal:
            decision.reason += (f"; a face of any pose in {found:.0%} (turned away: frontality < "
                                f"{options.min_frontality:g}, or cut by the frame's edge)")
        return decision
    decision.kept = True
    return decision


class Preparation:
    """One run of the pipeline for one identity (see the module docstring)."""

    def __init__(self, raw_dir: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions,
                 progress: bool = True, log: Callable[[str], None] = print, replace_identity: bool = False) -> None:
        self.raw_dir = Path(raw_dir)
        self.replace_identity = replace_identity
        self.out = Path(out)
        self.options = options
        self.progress = progress
        self.log = log
        self.workspace = Workspace(self.out / "prepare" / options.identity)
        self.clips_dir = self.out / options.identity
        self.summary = PrepareSummary(options.identity, self.out)
        self.candidate_lines: list[dict[str, Any]] = []     # cropped clips waiting for motion
        self._check_inputs()
        # read first: a damaged manifest, or clips of this identity that prepare did not make, should
        # stop the run before hours of decoding and before anything is written
        self.existing_lines = [line for line in _read_manifest_lines(self.out)
                               if line.get("identity") == options.identity]
        self._check_existing_identity()

    def _check_inputs(self) -> None:
        o = self.options
        for flag, value in (("--speakers", o.speakers), ("--smplx-model", o.smplx_model),
                            ("--dwpose-detector", o.dwpose_detector), ("--dwpose-pose", o.dwpose_pose)):
            if value is not None and not Path(value).is_file():
                raise FileNotFoundError(f"{flag} {value}: no such file")
        if o.face_model is not None and not Path(o.face_model).exists():   # a folder for mtcnn, a file otherwise
            raise FileNotFoundError(f"--face-model {o.face_model}: no such file or folder")
        for flag, value in (("--motion", o.motion), ("--masks", o.masks), ("--keypoints", o.keypoints)):
            if value is not None and not Path(value).is_dir():
                raise FileNotFoundError(f"{flag} {value}: no such folder")
        raw = self.raw_dir.resolve()
        if raw == self.out.resolve():
            raise ValueError(f"{self.raw_dir}: the raw videos and --out are one folder; give --out a folder of its "
                             "own (the next run would read this run's clips as raw videos)")
        for written in (self.clips_dir, self.workspace.root):
            if raw == written.resolve() or written.resolve() in raw.parents:
                raise ValueError(f"{self.raw_dir}: the raw videos lie in {written}, where this run writes (and "
                                 "replaces) its files: move them to a folder outside it, or give another --out")

    def _check_existing_identity(self) -> None:
        """Refuse to replace manifest lines of this identity that ``prepare`` did not write (every line
        it writes has ``speaker_check``: e.g. the toy corpus's clips) unless ``replace_identity``."""
        foreign = [line for line in self.existing_lines if "speaker_check" not in line]
        if foreign and not self.replace_identity:
            raise ValueError(
                f"{self.out / MANIFEST_NAME}: identity {self.options.identity!r} already has {len(foreign)} clip(s) "
                f"not made by `imac-bench data prepare` (first: {foreign[0].get('clip_id')}); a run replaces its "
                f"identity's clips: pass --replace-identity to replace them, or choose another --identity")

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> PrepareSummary:
        """The whole run, holding the identity's workspace (``out/prepare/<identity>``): a second run of
        the same identity into ``out`` is refused while this one works (``FolderBusyError``); runs of other
        identities go on beside it and write the shared manifest in turn."""
        with hold_folder(self.workspace.root, f"imac-bench data prepare of {self.options.identity!r}"):
            self._hold_out().release()       # the manifest's lock can be taken: found now, not after hours
            return self._run()

    def _hold_out(self):
        """``out``'s lock, for writing the shared manifest (waiting, with a line, for another identity's run)."""
        return hold_folder(self.out, "imac-bench data prepare (writing the manifest)", wait=MANIFEST_WAIT,
                           waiting=lambda line: self.log(f"  {line}"))

    def _run(self) -> PrepareSummary:
        started = time.perf_counter()
        # what this run writes inside the raw folder is not a source (else each run takes the last one's
        # clips and candidates in again, the same footage in both splits)
        raw = self.raw_dir.resolve()
        inside = raw in self.out.resolve().parents
        leave_out = [self.out] if inside else [folder for folder in (self.clips_dir, self.workspace.root)
                                               if raw in folder.resolve().parents]
        sources = list_sources(self.raw_dir, leave_out)
        for entry in passed_over(self.raw_dir, leave_out):
            self.summary.warnings.append(f"{self.raw_dir}: passed over: {entry}")
        if not sources:
            raise FileNotFoundError(f"{self.raw_dir}: no video files ({', '.join(VIDEO_SUFFIXES)})"
                                    + (", but for what this run writes inside it" if leave_out else ""))
        if leave_out:
            self.summary.warnings.append(f"{', '.join(map(str, leave_out))} lie(s) inside {self.raw_dir}: what this "
                                         "run writes there is not taken as raw videos")
        self.summary.sources = len(sources)
        write_json_atomic(self.workspace.root / "identity.json",
                          {"identity": self.options.identity, "posture": self.options.posture,
                           "raw_dir": str(self.raw_dir.absolute()), "version": PREPARE_VERSION,
                           "options": _jsonable(asdict(self.options))})
        # read first: a bad speakers file should fail before hours of decoding, not after
        speaker_counts = read_speaker_counts(self.options.speakers) if self.options.speakers else None
        states = self._measure(sources)
        kept: list[tuple[ClipDecision, dict[str, Any], dict[str, Any]]] = []
        for state in states:
            if state["status"] == "unreadable" and _without_sound(state):
                self.summary.silent.append(state["source"])
            elif state["status"] == "unreadable":
                self.summary.unreadable.append((state["source"], f"unreadable: {state.get('error', '')}"))
            elif state["status"] == "failed":
                self.summary.unreadable.append(
                    (state["source"], f"failed part-way ({len(state.get('clips', {}))} scene(s) before the error "
                                      f"kept): {state.get('error', '')}"))
            if state.get("audio_broken_at") is not None:
                self.summary.warnings.append(
                    f"{state['source']}: the sound stops decoding at {state['audio_broken_at']:g} s "
                    f"({state.get('audio_broken_by', '')}): cut short or damaged; clips past it are dropped "
                    "(stage audio)")
            gaps = state.get("audio_gaps") or []
            if gaps:
                self.summary.warnings.append(
                    f"{state['source']}: {len(gaps)} gap(s) in the sound's timestamps (the first: {gaps[0][1]:g} s at "
                    f"{gaps[0][0]:g} s), left silent as a player leaves them, so the speech after stays in sync")
            self.summary.scenes += len(state.get("clips", {}))
            self.summary.jump_cuts += [(state["source"], int(frame)) for frame in state.get("jump_cuts", [])]
            for clip, entry in state.get("clips", {}).items():
                decision = decide_clip(clip, state["source"], entry, self.options, speaker_counts,
                                       _frame_size(state))
                self.summary.decisions.append(decision)
                if decision.kept:
                    kept.append((decision, entry, state))
        if speaker_counts is not None:
            unknown = sorted(set(speaker_counts) - {d.clip_id for d in self.summary.decisions})
            if unknown:
                self.summary.warnings.append(
                    f"the speakers file lists {len(unknown)} clip id(s) that are not scenes of "
                    f"{self.options.identity!r} (first: {', '.join(unknown[:3])})")
        seconds_per_source: Counter = Counter()
        for decision, _, state in kept:
            seconds_per_source[state["source"]] += decision.seconds
        split = split_by_source(seconds_per_source, self.options.test_fraction, self.options.identity,
                                self.options.seed, self.options.test_sources)
        if split.warning:
            self.summary.warnings.append(split.warning)
        self.summary.train_seconds, self.summary.test_seconds = split.train_seconds, split.test_seconds
        self.summary.test_fraction = self.options.test_fraction
        lines = self._finish_clips(kept, set(split.test_sources))
        self.summary.speaker_checks = Counter(d.speaker_check for d in self.summary.decisions if d.kept)
        if lines or not self.existing_lines:
            # the identity's entries are replaced only now that its new clips exist: the manifest
            # first, so it never names a file already deleted
            self._write_manifest(lines)
            self._remove_stale_outputs({d.clip_id for d in self.summary.decisions if d.kept})
        else:   # nothing finished (kept nothing, or all waiting for motion): the dataset stays as it was
            self.summary.warnings.append(
                f"no clip of {self.options.identity!r} finished in this run: the dataset's "
                f"{len(self.existing_lines)} earlier clip(s) of it are left as they were (manifest lines and files)")
        self.summary.elapsed_seconds = time.perf_counter() - started
        self._write_logs()
        return self.summary

    def _scene_settings(self) -> SceneSettings:
        o = self.options
        jumps = JumpCutSettings(adaptive_threshold=o.jump_cut_threshold) if o.jump_cuts else None
        return SceneSettings(o.scene_threshold, o.min_scene_seconds, jumps)

    def _measure(self, sources: list[Path]) -> list[dict[str, Any]]:
        """Measure every source not measured yet (or changed since); return all their states."""
        o = self.options
        digest = settings_digest(o.measurement_settings())
        states: dict[Path, dict[str, Any]] = {}
        jobs = []
        for source in sources:
            name = source_name(self.raw_dir, source)
            state = load_state(self.workspace.state_path(name))
            if state_is_current(state, file_signature(source), digest):
                states[source] = state
            else:
                jobs.append(MeasureJob(source, name, self.workspace, (o.face_detector, o.face_model, o.min_face_size),
                                       self._scene_settings(), o.min_seconds,
                                       o.samples_per_second, o.max_samples, digest, state, o.fps, o.max_seconds))

        def report(job: MeasureJob, state: dict[str, Any]) -> None:
            if state["status"] != "done":
                self.log(f"  {job.source}: {state['status']}: {state.get('error', '')} (skipped; "
                         f"{len(state.get('clips', {}))} scene(s) measured before it are kept)")

        try:
            results = run_jobs(measure_job, jobs, o.workers, self.progress, f"{o.identity}: sources", "video",
                               lambda job: job.name, on_result=report)
        finally:
            close_detectors()
        states.update({job.source: state for job, state in zip(jobs, results)})
        return [states[source] for source in sources]

    def _finish_clips(self, kept: list[tuple[ClipDecision, dict[str, Any], dict[str, Any]]],
                      test_sources: set[str]) -> list[dict[str, Any]]:
        """Crop, audio and motion of every kept clip; the manifest lines of the complete ones."""
        o = self.options
        settings = CropSettings(o.size, o.crop_margin, o.confidence, o.keypoint_threshold, o.masks, o.keypoints,
                                o.dwpose_detector, o.dwpose_pose, o.max_person_jump or None)
        jobs = [CropJob(decision.clip_id, entry, state["width"], state["height"], state["fps"], self.workspace,
                        self.clips_dir, settings) for decision, entry, state in kept]
        crops = run_jobs(_crop_or_error, jobs, o.workers, self.progress, f"{o.identity}: clips", "clip",
                         lambda job: job.clip)
        lines = []
        upscaled: list[tuple[float, str]] = []
        for (decision, entry, state), crop in zip(kept, crops):
            clip = decision.clip_id
            if isinstance(crop, dict) and "continuity" in crop:   # the person jumps: not one take
                decision.kept, decision.stage, decision.reason = False, "continuity", crop["continuity"]
                self.summary.person_jumps.append((clip, crop["frames"][0]))
                continue
            if isinstance(crop, str) or crop is None:   # an error message, or no person found
                decision.kept, decision.stage = False, "crop"
                decision.reason = crop or "no person found to crop around"
                continue
            self.summary.person_boxes[crop["person_box_source"]] += 1
            factor = upscale_factor(Box(*crop["box"]), o.size)
            if factor > 1.0:
                upscaled.append((factor, clip))
            link_or_copy(self.workspace.candidate_audio(clip), self.clips_dir / f"{clip}.wav")
            split = "test" if state["source"] in test_sources else "train"
            candidate = {"identity": o.identity, "split": split, "clip_id": clip, "fps": state["fps"],
                         "num_frames": crop["num_frames"], "width": o.size, "height": o.size,
                         "source": state["source"]}
            motion = self._motion(decision, crop["num_frames"])
            if motion is None:
                if clip in self.summary.awaiting_motion:
                    self.candidate_lines.append(candidate)
                continue
            line = {"identity": o.identity, "split": split, "clip_id": clip,
                    "video": f"{o.identity}/{clip}.mp4", "audio": f"{o.identity}/{clip}.wav",
                    "motion": f"{o.identity}/{clip}.motion.npz", "fps": state["fps"],
                    "num_frames": crop["num_frames"], "width": o.size, "height": o.size,
                    "source": state["source"], "start_seconds": round(entry["start"] / state["fps"], 4),
                    "end_seconds": round(entry["end"] / state["fps"], 4),
                    "speaker_check": decision.speaker_check, "person_box": crop["person_box_source"],
                    "crop_box": crop["box"], "motion_source": motion}
            if crop.get("keypoints"):
                line["keypoints"] = f"{o.identity}/{clip}.keypoints.npz"
            lines.append(line)
        if upscaled:
            largest, which = max(upscaled)
            self.summary.warnings.append(
                f"{len(upscaled)} of {len(crops)} clip(s) upscaled to {o.size}x{o.size}: their crop is smaller than "
                f"that (up to {largest:.2f}x, {which}: a {o.size / largest:.0f}-pixel square); the pictures hold no "
                f"more detail than the source's; a smaller --size (e.g. {_even_below(o.size / largest)}) keeps them sharp")
        return lines

    # -- motion ----------------------------------------------------------------------------------

    def _motion(self, decision: ClipDecision, num_frames: int) -> str | None:
        """Import the clip's SMPL-X fit (once; redone when the fit file or the settings change).

        Returns the fit file's name, or None when the clip has none yet (it waits) or it is bad.
        """
        o = self.options
        clip = decision.clip_id
        out = self.clips_dir / f"{clip}.motion.npz"
        fit = motion_import.find_motion_file(Path(o.motion), clip) if o.motion else None
        if fit is None:
            self.summary.awaiting_motion.append(clip)
            return None
        record_path = self.workspace.root / "motion" / f"{clip}.json"
        record = {"fit": str(fit.absolute()), "signature": file_signature(fit), "num_frames": num_frames,
                  "joints": o.joints, "flat_hand_mean": o.flat_hand_mean,
                  "smplx_model": o.smplx_model and file_signature(Path(o.smplx_model)),
                  "tolerance": o.motion_frame_tolerance}
        if read_json(record_path) == record and out.is_file():
            return fit.name
        try:
            hand_pca = self._hand_pca()
            motion_import.import_motion(fit, num_frames, out, joints=o.joints, hand_pca=hand_pca,
                                        flat_hand_mean=o.flat_hand_mean, frame_tolerance=o.motion_frame_tolerance)
        except motion_import.MotionImportError as error:
            self.summary.motion_errors.append((clip, str(error)))
            decision.kept, decision.stage, decision.reason = False, "motion", str(error)
            return None
        write_json_atomic(record_path, record)
        return fit.name

    def _hand_pca(self):
        if self.options.smplx_model is None:
            return None
        if not hasattr(self, "_pca"):
            self._pca = motion_import.load_smplx_hand_pca(self.options.smplx_model)
        return self._pca

    # -- outputs ---------------------------------------------------------------------------------

    def _remove_stale_outputs(self, kept: set[str]) -> None:
        """Delete the dataset files of this identity's clips that prepare made and no longer keeps (thresholds
        changed, a source removed): those of this run's scenes and of the manifest's earlier lines. Any other
        file in the folder is left alone (a clip id may hold dots, as its source's name may)."""
        if not self.clips_dir.is_dir():
            return
        made = {d.clip_id for d in self.summary.decisions} | {str(line.get("clip_id")) for line in self.existing_lines}
        for path in self.clips_dir.iterdir():
            clip = next((path.name[:-len(suffix)] for suffix in CLIP_FILE_SUFFIXES if path.name.endswith(suffix)), None)
            if clip in made and clip not in kept and path.is_file():
                path.unlink()

    def _write_manifest(self, lines: list[dict[str, Any]]) -> None:
        """The manifest: this identity's complete clips, other identities' lines kept as they were (read and
        written holding ``out``, so runs of two identities at once both land)."""
        with self._hold_out():
            self._write_manifest_held(lines)

    def _write_manifest_held(self, lines: list[dict[str, Any]]) -> None:
        others = [line for line in _read_manifest_lines(self.out) if line.get("identity") != self.options.identity]
        lines = sorted(lines, key=lambda line: line["clip_id"])
        write_manifest(self.out, others + lines)
        self.summary.in_manifest = len(lines)
        all_lines = others + lines
        postures = {}
        for folder in sorted((self.out / "prepare").glob("*/identity.json")):
            info = read_json(folder) or {}
            postures[info.get("identity", folder.parent.name)] = info.get("posture", "unknown")
        rows = statistics_rows(all_lines, postures)
        candidates = statistics_rows(self.candidate_lines, postures)
        write_json_atomic(self.out / "statistics.json", {"version": PREPARE_VERSION, "rows": rows,
                                                         "waiting_for_motion": candidates})
        text = ("# Dataset statistics\n\nClips in `manifest.jsonl`, per identity (written by "
                f"`imac-bench data prepare`, {PREPARE_VERSION}).\n\n"
                + (statistics_markdown(rows) if rows else "(none yet)\n"))
        if candidates:
            text += (f"\n## Waiting for motion\n\nClips of `{self.options.identity}` kept by the filters and cropped, "
                     "not in the manifest until their SMPL-X fits are given (`--motion`); the split they will "
                     "have:\n\n" + statistics_markdown(candidates))
        write_text_atomic(self.out / STATISTICS_NAME, text)

    def _write_logs(self) -> None:
        s = self.summary
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["identity", "source", "clip_id", "seconds", "stage", "reason"])
        for source, error in s.unreadable:
            writer.writerow([s.identity, source, "", "", "source", error])
        for d in s.decisions:
            if not d.kept:
                writer.writerow([s.identity, d.source, d.clip_id, f"{d.seconds:.2f}", d.stage, d.reason])
        write_text_atomic(self.workspace.root / "dropped.csv", buffer.getvalue())
        write_text_atomic(self.workspace.root / "awaiting_motion.txt",
                          "".join(f"{self.workspace.candidate_video(c)}\n" for c in s.awaiting_motion))
        write_text_atomic(self.workspace.root / "report.md", report_markdown(s, self.options, self.workspace))


def _without_sound(state: dict[str, Any]) -> bool:
    """Whether a source was passed over for having no audio track (its state says so; one measured before
    the state did, by its error's words)."""
    return bool(state.get("no_audio")) or str(state.get("error", "")).endswith(": no audio track")


def sources_text(summary: PrepareSummary) -> str:
    """``N source(s) (U unreadable or damaged[, S without sound])``, as the summary and the report say it."""
    silent = f", {len(summary.silent)} without sound" if summary.silent else ""
    return f"{summary.sources} source(s) ({len(summary.unreadable)} unreadable or damaged{silent})"


def _jump_cut_text(summary: PrepareSummary, options: PrepareOptions) -> str:
    """How many jump cuts split the sources, and where (the first few: source and frame)."""
    if not options.jump_cuts:
        return "not looked for (--no-jump-cuts)"
    where = ", ".join(f"`{source}` frame {frame}" for source, frame in summary.jump_cuts[:10])
    more = f" and {len(summary.jump_cuts) - 10} more" if len(summary.jump_cuts) > 10 else ""
    return f"{len(summary.jump_cuts)}" + (f" ({where}{more})" if where else "")


def _share_text(summary: PrepareSummary) -> str:
    total = summary.train_seconds + summary.test_seconds
    return f"{summary.test_seconds / total:.0%}" if total > 0 else "none"


def _even_below(value: float) -> int:
    """The largest even integer <= ``value`` (at least 16: the smallest --size)."""
    return max(16, int(value) // 2 * 2)


def _frame_size(state: dict[str, Any]) -> tuple[int, int] | None:
    """``(width, height)`` of a measured source's upright frames, None when it was not probed."""
    if "width" in state and "height" in state:
        return int(state["width"]), int(state["height"])
    return None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _read_manifest_lines(out: Path) -> list[dict[str, Any]]:
    path = out / MANIFEST_NAME
    if not path.is_file():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip():
            try:
                lines.append(parse_json(text, f"{path} line {number}"))   # nesting too deep: named too
            except ValueError as error:
                raise ValueError(f"{error}; fix or remove the manifest") from None
    return lines


@dataclass(frozen=True)
class MeasureJob:
    """One source to measure (picklable, for worker processes)."""

    source: Path
    name: str
    workspace: Workspace
    detector: tuple[str, str | None, float]      # name, model, min_face_size
    scenes: SceneSettings
    min_seconds: float
    samples_per_second: float
    max_samples: int
    digest: str
    previous: dict[str, Any] | None
    fps: float | None
    max_seconds: float | None


_DETECTORS: dict[tuple[str, str | None, float], FaceDetector] = {}   # one per process and setting


def close_detectors() -> None:
    """Close and forget this process's face detectors."""
    while _DETECTORS:
        _DETECTORS.popitem()[1].close()


def measure_job(job: MeasureJob) -> dict[str, Any]:
    """``measure_source`` for one job, with this process's detector for the job's settings."""
    if job.detector not in _DETECTORS:
        if not _DETECTORS:
            atexit.register(close_detectors)
        _DETECTORS[job.detector] = make_face_detector(*job.detector)
    return measure_source(job.source, job.name, job.workspace, _DETECTORS[job.detector], job.scenes,
                          job.min_seconds, job.samples_per_second, job.max_samples, job.digest,
                          previous=job.previous, fps=job.fps, max_seconds=job.max_seconds)


def _crop_or_error(job: CropJob) -> dict[str, Any] | str | None:
    """``crop_clip``, with an unreadable candidate or a bad mask or keypoints file as its message, and
    a person who jumps between consecutive frames as ``{"continuity": message, "frames": [...]}``."""
    try:
        return crop_clip(job)
    except PersonJumpError as error:
        return {"continuity": str(error), "frames": [jump.frame for jump in error.jumps]}
    except DECODE_ERRORS as error:   # ValueError included
        return str(error)


def report_markdown(summary: PrepareSummary, options: PrepareOptions, workspace: Workspace) -> str:
    """The run's report: settings, what each stage dropped, which checks decided, what is missing."""
    s = summary
    lines = [f"# Data preparation of `{s.identity}` ({PREPARE_VERSION})", "",
             f"- sources: {sources_text(s)}",
             f"- scenes: {s.scenes}; kept after the filters: {s.kept}; in the manifest: {s.in_manifest}",
             f"- jump cuts inside a shot split there: {_jump_cut_text(s, options)}",
             f"- waiting for motion (SMPL-X fits): {len(s.awaiting_motion)} clip(s), listed in "
             f"`awaiting_motion.txt`",
             f"- split by whole source videos: train {s.train_seconds / 3600:.3g} h, test {s.test_seconds / 3600:.3g} h "
             f"({_share_text(s)} of the kept hours; --test-fraction {s.test_fraction:g} asked)", ""]
    lines += ["## Dropped, by stage", "", "| stage | clips |", "|---|---:|"]
    lines += [f"| {stage} | {count} |" for stage, count in sorted(s.dropped.items())] or ["| (none) | 0 |"]
    lines += ["", "Every dropped clip and the reason: `dropped.csv`.", "", "## How the checks decided", ""]
    checks = s.speaker_checks
    lines.append(f"- single speaker: {checks.get('speakers-file', 0)} kept clip(s) decided by the speakers file "
                 f"({options.speakers or 'none given'}), {checks.get('face-count', 0)} by the **face-count fallback** "
                 f"(at most {options.max_several_faces_fraction:.0%} of sampled frames with two or more faces)")
    lines.append(f"- face filter: {options.face_detector} detector, confidence >= {options.confidence:g}, a frontal "
                 f"face in view (frontality >= {options.min_frontality:g} where the detector gives landmarks) in at "
                 f"least {options.min_frontal_fraction:.0%} of the frames sampled at "
                 f"{options.samples_per_second:g}/s (at most {options.max_samples} per clip)")
    if options.max_person_jump:
        jumped = ", ".join(f"`{clip}` at frame {frame}" for clip, frame in s.person_jumps[:10])
        more = f" and {len(s.person_jumps) - 10} more" if len(s.person_jumps) > 10 else ""
        lines.append(f"- person continuity (keypoints or masks, every pair of consecutive frames; the face fallback "
                     f"is not checked): {len(s.person_jumps)} clip(s) dropped where the person jumps by more than "
                     f"{options.max_person_jump:g} of its size" + (f" ({jumped}{more})" if jumped else ""))
    else:
        lines.append("- person continuity: not checked (--max-person-jump 0)")
    boxes = ", ".join(f"{k}: {v}" for k, v in sorted(s.person_boxes.items())) or "none"
    lines.append(f"- crop: person box from {boxes} (`faces` is the fallback: face boxes widened, down to the "
                 f"frame's bottom); {options.size}x{options.size}, margin {options.crop_margin:g}")
    lines.append(f"- motion: joints `{options.joints}`, from {options.motion or 'no --motion folder'}")
    if s.unreadable:
        lines += ["", "## Unreadable or damaged sources", ""]
        lines += [f"- `{source}`: {error}" for source, error in s.unreadable]
    if s.silent:
        lines += ["", "## Sources without sound (passed over: every clip needs its speech)", ""]
        lines += [f"- `{source}`" for source in s.silent]
    if s.motion_errors:
        lines += ["", "## Motion files refused", ""]
        lines += [f"- `{clip}`: {error}" for clip, error in s.motion_errors]
    if s.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in s.warnings]
    if s.awaiting_motion:
        lines += ["", "## Next step", "",
                  f"Fit SMPL-X (SHOW) on the {len(s.awaiting_motion)} candidate clips listed in "
                  f"`{workspace.root / 'awaiting_motion.txt'}`, put each fit where `--motion DIR` finds it "
                  f"({motion_import.motion_layouts()}), "
                  "and run the same command again with `--motion DIR`."]
    return "\n".join(lines) + "\n"


def prepare_dataset(raw_dir: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions,
                    progress: bool = True, log: Callable[[str], None] = print,
                    replace_identity: bool = False) -> PrepareSummary:
    """Run the whole pipeline for one identity (see the module docstring); return what it did.

    The identity's earlier manifest lines and clip files are replaced only once this run has finished
    clips of its own; a run that finishes none leaves the dataset as it was (with a warning). Lines of
    the identity that ``prepare`` did not write are a ``ValueError`` unless ``replace_identity``.
    """
    return Preparation(raw_dir, out, options, progress=progress, log=log, replace_identity=replace_identity).run()
