"""The scoring stage of ``imac-bench run``: one evaluator per run, the real side recorded once, every
method and control scored against it.

- One ``metrics.evaluate.Evaluator`` loads the pose extractor, the skeleton autoencoder and the I3D
  once. The real test clips are recorded once (keypoints and I3D statistics, both also cached per
  video content, their own BAS); every method is scored against those records.
- Before any method is scored, every method's videos are compared with the real clips from their
  headers (``metrics.inputs``): a property that changes a number and differs stops the run, naming
  the method, the property and the clips. What the runner converted while generating (frames resized
  or padded to the real clip's) and what the protocol converts are recorded per method.
- The controls, each a row of the tables:
  ``gt``          the real test videos: their own value of every metric that has one
                  (``MetricSpec.reference``: Diversity, BAS, HKC, HKV, the chunk joins, drift; no FGD
                  or FVD: a set against itself is 0 by construction), what a method's are read against;
  ``noise-floor`` real against real: each identity's test clips split in halves, one half scored
                  against the other; when an identity has fewer than ``2 * MIN_HALF`` test clips, its
                  first train clips (as many as its test clips) are the reference half and its test
                  clips the other (the row's note says which). How far real data of the same speakers
                  is: the floor a method's FGD and FVD are read against (at its own N);
  ``static``      the reference frame repeated: scored like a method (no motion);
  ``shuffled``    the real test videos with other clips' speech: scored on BAS only (the only metric
                  that hears the audio), each video against the speech of the next ``SHUFFLED_PARTNERS``
                  test clips, averaged.

Under a launch of several processes the per-clip work (``RunScorer.record_all``: the real clips, each
method's clips, the noise floor's train clips, the shuffled control's BAS) is shared among them by
the evaluator (``metrics.distributed``) and every process ends with every record in the single-process
order; the rows are then scored from those records by the main process alone.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.methods.controls import fit_audio
from metrics.beats import BAS
from metrics.dataset import ClipRecord, Dataset, FolderError, find_clips
from metrics.differences import compare_methods, describe_difference
from metrics.evaluate import ClipResult, Evaluator, metric_score, without_body
from metrics.inputs import PIXEL_METRICS, ClipProperties, Finding, InputMismatchError, InputReport, clip_properties
from metrics.io.video import write_video
from metrics.registry import REGISTRY
from metrics.results import Provenance, Scores, SkippedClip
from metrics.sanity import split_halves

logger = logging.getLogger(__name__)

REFERENCE = "gt"
NOISE_FLOOR = "noise-floor"
NOISE_FLOOR_LABEL = "Real vs real (noise floor: other real clips of the same speakers)"
MIN_HALF = 2            # clips per identity in each half of the noise floor
SHUFFLED_PARTNERS = 32  # other clips' speech each shuffled video is scored with


@dataclass(frozen=True)
class Scored:
    """What scoring gives one row: scores, provenance cards, the input report, unscored clips, a note."""

    scores: Scores
    provenance: dict[str, Provenance]
    inputs: InputReport = field(default_factory=InputReport)
    unscored: dict[str, str] = field(default_factory=dict)
    note: str = ""
    no_body: dict[str, str] = field(default_factory=dict)    # clips left out of the skeleton metrics only


@dataclass(frozen=True)
class NoiseFloorSplit:
    """The two real halves of the noise floor and how they were chosen."""

    reference: tuple[ClipRecord, ...]
    candidates: tuple[ClipRecord, ...]
    source: str          # "test-halves" | "train-reference"
    note: str


def noise_floor_split(test: Sequence[ClipRecord], train: Sequence[ClipRecord], min_half: int = MIN_HALF
                      ) -> NoiseFloorSplit:
    """Each identity's test clips in halves (alternating by clip id), or, when an identity has fewer
    than ``2 * min_half`` test clips, its first train clips (as many as its test clips) as the reference."""
    identities = sorted({c.identity for c in test})
    counts = {i: sum(c.identity == i for c in test) for i in identities}
    if all(n >= 2 * min_half for n in counts.values()):
        a, b = split_halves(list(test))
        return NoiseFloorSplit(tuple(a), tuple(b), "test-halves",
                               f"each identity's test clips split in halves (alternating by clip id): {len(b)} "
                               f"clips scored against the other {len(a)}")
    reference, candidates, missing = [], [], []
    for identity in identities:
        mine = sorted((c for c in train if c.identity == identity), key=lambda c: c.clip_id)
        if not mine:
            missing.append(identity)
            continue
        reference += mine[:counts[identity]]
        candidates += [c for c in test if c.identity == identity]
    small = ", ".join(f"{i} ({n})" for i, n in counts.items() if n < 2 * min_half)
    note = (f"too few test clips to split in halves of {min_half} (identity (test clips): {small}): the test clips "
            f"({len(candidates)}) are scored against as many train clips of the same speakers ({len(reference)})")
    if missing:
        note += f"; identities without train clips left out: {', '.join(missing)}"
    return NoiseFloorSplit(tuple(reference), tuple(candidates), "train-reference", note)


def generation_findings(generation: dict) -> tuple[Finding, ...]:
    """What the runner converted while writing a method's videos (recorded in its generation.json)."""
    resized = {label: r["resized_from"] for label, r in generation.items() if "resized_from" in r}
    lengths = {label: r["frames_generated"] for label, r in generation.items() if "frames_generated" in r}
    findings = []
    if resized:
        sizes = sorted({f"{w}x{h}" for w, h in resized.values()})
        findings.append(Finding("frame_size", "converted", PIXEL_METRICS,
                                f"{len(resized)} clip(s) generated at {', '.join(sizes)} were resized (bilinear, "
                                f"antialiased) to their real clip's size by the runner: {', '.join(sorted(resized))}"))
    if lengths:
        findings.append(Finding("duration", "converted", PIXEL_METRICS,
                                f"{len(lengths)} clip(s) generated with another frame count were padded with "
                                "their last frame or cut to their real clip's: "
                                + ", ".join(f"{k} ({v})" for k, v in sorted(lengths.items()))))
    return tuple(findings)


def _with(inputs: InputReport, extra: Sequence[Finding]) -> InputReport:
    return InputReport(values=inputs.values, findings=inputs.findings + tuple(extra))


def _subset(records: Sequence[ClipResult], clips: Sequence[ClipRecord]) -> list[ClipResult]:
    keys = {c.key for c in clips}
    return [r for r in records if r.clip.key in keys]


class RunScorer:
    """Scores a run: ``real`` once, then ``method(name)`` per method and the controls."""

    def __init__(self, evaluator: Evaluator, test_clips: Sequence[ClipRecord], train_clips: Sequence[ClipRecord],
                 out, progress: Callable[[str], None] | None = None) -> None:
        self.evaluator = evaluator
        self.test_clips = list(test_clips)
        self.train_clips = list(train_clips)
        self.out = out
        self.progress = progress
        self.fake_records: dict[str, list[ClipResult]] = {}     # per method, for paired differences
        self.hints: dict[str, dict] = {}          # per method: what its facts state for the hook metrics
        self._real: list[ClipResult] | None = None
        self._real_props: list[ClipProperties] | None = None
        self._method_clips: dict[str, tuple[list[ClipRecord], InputReport]] = {}
        self._unread: dict[str, list[SkippedClip]] = {}
        self._fake: dict[str, tuple[list[ClipResult], list[SkippedClip]]] = {}
        self._floor_reference: list[ClipResult] | None = None
        self._shuffled: dict[tuple[str, str], float] | None = None

    @classmethod
    def for_dataset(cls, evaluator: Evaluator, data_root, test_clips: Sequence[ClipRecord], out,
                    progress: Callable[[str], None] | None = None) -> RunScorer:
        identities = sorted({c.identity for c in test_clips})
        train = [c for c in Dataset.open(data_root, level="files").split("train") if c.identity in identities]
        return cls(evaluator, test_clips, train, out, progress)

    # -- the real side, once -------------------------------------------------------------------------

    def real_properties(self) -> list[ClipProperties]:
        """The real test clips' header properties (read once)."""
        if self._real_props is None:
            _, self._real_props, _ = self.evaluator.properties(self.test_clips, "real")
        return self._real_props

    def real(self) -> list[ClipResult]:
        """The real test clips' records (computed on the first call only); a clip that cannot be
        scored is an error naming it."""
        if self._real is None:
            self._real, _ = self.evaluator.records(self.test_clips, "real", progress=self._progress("real"))
        return self._real

    def _progress(self, name: str) -> Callable[[str], None] | None:
        if self.progress is None:
            return None
        return lambda message: self.progress(f"{name}: {message}")

    # -- methods -------------------------------------------------------------------------------------

    def check_method(self, name: str) -> tuple[list[ClipRecord], InputReport] | None:
        """A method's clips and their input report against the real clips (headers only); None when
        it has no video. Raises ``InputMismatchError`` naming the method."""
        if name not in self._method_clips:
            try:
                clips = find_clips(self.out / name, split=None)
            except FolderError:
                return None
            clips, props, unread = self.evaluator.properties(clips, "fake", on_error="skip")
            try:
                report = self.evaluator.check_inputs(self.real_properties(), props)
            except InputMismatchError as error:
                raise InputMismatchError(f"method {name}: {without_allow_option(str(error))}") from None
            self._method_clips[name] = (clips, report)
            self._unread[name] = unread     # headers that do not read (a damaged video): listed as unscored
        return self._method_clips[name]

    def method_records(self, name: str) -> tuple[list[ClipResult], list[SkippedClip]] | None:
        """A method's generated clips recorded (on the first call only), with the ones skipped; None
        when it has no video. A collective under several processes."""
        checked = self.check_method(name)
        if checked is None:
            return None
        if name not in self._fake:
            partners = {c.key: c for c in self.test_clips}
            self._fake[name] = self.evaluator.records(checked[0], "fake", partners=partners, on_error="skip",
                                                      progress=self._progress(name), hints=self.hints.get(name))
        return self._fake[name]

    def record_all(self, methods: Sequence[str], timings: dict[str, float] | None = None) -> None:
        """Every per-clip record the rows need, in a fixed order: the real clips, each method's, the
        noise floor's train clips and the shuffled control's BAS. Under several processes every
        process must call it (each computes its share); the rows are then scored without collectives.
        ``timings``: seconds per step, added under ``score:<row>``."""
        steps = [("real", self.real)] + [(name, lambda name=name: self.method_records(name)) for name in methods]
        steps += [(NOISE_FLOOR, self._noise_floor_reference), ("shuffled", self._shuffled_bas)]
        for name, step in steps:
            started = time.perf_counter()
            step()
            if timings is not None:
                timings[f"score:{name}"] = round(timings.get(f"score:{name}", 0.0) + time.perf_counter() - started, 1)

    def method(self, name: str, generation: dict | None = None) -> Scored:
        """A method's videos against the real ones. A generated clip the metrics cannot score (too short,
        damaged) is skipped and listed; one in which no body is found is left out of the skeleton metrics
        only (FGD, Div, BAS: their scores warn) and listed; a real one is an error."""
        checked = self.check_method(name)
        extra = generation_findings(generation or {})
        if checked is None:
            return Scored({}, {}, _with(InputReport(), extra), {"*": f"no video in {self.out / name}"})
        clips, inputs = checked
        inputs = _with(inputs, extra)
        real = self.real()
        fake, skipped = self.method_records(name)
        unscored = {s.clip: s.reason for s in (*self._unread.get(name, ()), *skipped)}
        if not fake:
            unscored["*"] = f"no usable generated clips ({len(skipped)} skipped)"
            return Scored({}, {}, inputs, unscored)
        self.fake_records[name] = fake
        no_body = {s.clip: s.reason for s in without_body(fake, self.evaluator.metrics)}
        cards = self.evaluator.provenance(len(real), len(fake), inputs, self.evaluator.paired(real, fake), len(no_body))
        return Scored(self.evaluator.score(real, fake), cards, inputs, unscored, no_body=no_body)

    # -- controls ------------------------------------------------------------------------------------

    def reference_row(self) -> Scored:
        """``gt``: the real test videos' own values (Diversity, BAS and every ``MetricSpec.reference`` metric)."""
        real, props = self.real(), self.real_properties()
        metrics = [m for m in self.evaluator.metrics if REGISTRY[m].reference]
        inputs = self.evaluator.check_inputs([], props)
        cards = {m: c for m, c in self.evaluator.provenance(None, len(real), inputs).items() if m in metrics}
        return Scored(self.evaluator.reference(real), cards, inputs,
                      note="the real test videos: their own Diversity, BAS and the other one-sided metrics (FGD "
                           "and FVD of a set against itself are 0 by construction, so none is given)")

    def noise_floor(self) -> Scored:
        """Real against real: the floor of FGD and FVD for these speakers (see the module docstring)."""
        split = noise_floor_split(self.test_clips, self.train_clips)
        real = self.real()
        if not split.reference:
            return Scored({}, {}, InputReport(), {"*": split.note}, split.note)
        candidates = _subset(real, split.candidates)
        reference = self._noise_floor_reference()
        _, ref_props, _ = self.evaluator.properties(split.reference, "real")
        _, cand_props, _ = self.evaluator.properties(split.candidates, "fake")
        inputs = self.evaluator.check_inputs(ref_props, cand_props)
        # a real clip's frame-to-frame metrics (PSNR, SSIM, LPIPS) compare it with itself: none here
        metrics = [m for m in self.evaluator.metrics if REGISTRY[m].partner_pixels != "equal"]
        cards = {m: c for m, c in self.evaluator.provenance(len(reference), len(candidates), inputs).items()
                 if m in metrics}
        return Scored(self.evaluator.score(reference, candidates, metrics), cards, inputs, note=split.note)

    def _noise_floor_reference(self) -> list[ClipResult]:
        """The reference half of the noise floor (train clips recorded on the first call only)."""
        if self._floor_reference is None:
            split = noise_floor_split(self.test_clips, self.train_clips)
            if split.source == "test-halves":
                self._floor_reference = _subset(self.real(), split.reference)
            elif not split.reference:
                self._floor_reference = []
            else:
                self._floor_reference, _ = self.evaluator.records(split.reference, "real",
                                                                  progress=self._progress(NOISE_FLOOR))
        return self._floor_reference

    def _shuffled_bas(self) -> dict[tuple[str, str], float]:
        """Each real test video's BAS with the speech of the next ``SHUFFLED_PARTNERS`` test clips,
        averaged (computed on the first call only, each process its share); empty without BAS or with
        fewer than 2 test clips."""
        if self._shuffled is None:
            self._shuffled = {}
            evaluator = self.evaluator
            n = len(self.test_clips)
            partners = min(n - 1, SHUFFLED_PARTNERS)
            if "bas" not in evaluator.metrics or partners < 1:
                return self._shuffled
            rate = evaluator.protocol.audio_sample_rate
            audio = [c.load_audio(rate) for c in self.test_clips]

            def value(i: int) -> float:
                keypoints, fps = evaluator.keypoints(self.test_clips[i])
                others = [(i + k) % n for k in range(1, partners + 1)]
                return float(np.mean([evaluator.clip_bas(keypoints, fps, fit_audio(audio[j], len(audio[i])), rate)[0]
                                      for j in others]))

            values = evaluator.processes.map(list(range(n)), value)
            self._shuffled = {clip.key: v for clip, v in zip(self.test_clips, values)}
        return self._shuffled

    def shuffled(self) -> Scored:
        """BAS of the real test videos with other clips' speech (the audio control)."""
        if "bas" not in self.evaluator.metrics:
            return Scored({}, {}, note="scored on BAS only, which this run does not compute")
        real, props = self.real(), self.real_properties()
        evaluator = self.evaluator
        n = len(self.test_clips)
        partners = min(n - 1, SHUFFLED_PARTNERS)
        if partners < 1:
            return Scored({}, {}, unscored={"*": "the shuffled-audio control needs at least 2 test clips"})
        by_key = {r.clip.key: r for r in real}
        per_clip = self._shuffled_bas()
        detail = (f"each real video scored with the speech of the next {partners} test clip(s) (tiled or cut to its "
                  "length), averaged")
        inputs = _with(evaluator.check_inputs([], props), [Finding("shuffled_audio", "converted", ("bas",), detail)])
        scores: Scores = {}
        for scope, keys in self._scopes().items():
            metric = BAS(evaluator.protocol)
            metric.scores = [per_clip[k] for k in keys]
            metric.weights = [by_key[k].bas_frames for k in keys]
            scores[scope] = {"bas": metric_score(metric, n_clips=len(keys))}
        cards = {"bas": evaluator.provenance(None, n, inputs)["bas"]}
        return Scored(scores, cards, inputs, note=f"the real test videos with other clips' speech, scored on BAS "
                                                  f"only: {detail}")

    def _scopes(self) -> dict[str, list[tuple[str, str]]]:
        scopes = {"all": [c.key for c in self.test_clips]}
        for identity in sorted({c.identity for c in self.test_clips}):
            scopes[f"identity:{identity}"] = [c.key for c in self.test_clips if c.identity == identity]
        return scopes


def paired_differences(scorer: RunScorer, methods: Sequence[str], labels: dict[str, str] | None = None
                       ) -> list[dict]:
    """metric(a) - metric(b) for every pair of ``methods`` on the test clips both could score, paired
    clip by clip (``metrics.differences.compare_methods``: the same clips, and for FGD and FVD the same
    real clips, in every resample), one dict per (a, b, metric) on scope ``all``, with a sentence."""
    labels = labels or {}
    real = {r.clip.key: r for r in scorer.real()}
    names = [m for m in methods if m in scorer.fake_records]
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            fake_a = {r.clip.key: r for r in scorer.fake_records[a]}
            fake_b = {r.clip.key: r for r in scorer.fake_records[b]}
            common = sorted(set(fake_a) & set(fake_b) & set(real))
            for metric in scorer.evaluator.metrics:
                # a skeleton metric pairs the clips in which both methods show a body
                keys = [k for k in common if len(scorer.evaluator.body_scored(metric, [fake_a[k], fake_b[k]])) == 2]
                if len(keys) < 2:
                    continue
                rows += _difference(scorer.evaluator, metric, [real[k] for k in keys], a, [fake_a[k] for k in keys],
                                    b, [fake_b[k] for k in keys], labels)
    return rows


def _difference(evaluator: Evaluator, metric: str, real, a: str, fake_a, b: str, fake_b, labels) -> list[dict]:
    value_a, value_b = evaluator.metric(metric, real, fake_a), evaluator.metric(metric, real, fake_b)
    if value_a is None or value_b is None:
        return []
    try:
        difference = compare_methods(value_a, value_b, labels.get(a, a), labels.get(b, b))
    except ValueError as error:     # e.g. a statistic undefined on the subsets: say so, compute the rest
        logger.warning("paired difference %s - %s on %s: %s", a, b, metric, error)
        return []
    return [{"a": a, "b": b, "metric": metric, "scope": "all", "estimate": difference.estimate,
             "low": difference.low, "high": difference.high, "pairs": difference.clips,
             "confidence": difference.confidence,
             "sentence": describe_difference(difference).replace(difference.metric, evaluator.label(metric))}]


_ALLOW_HINT = re.compile(r", or allow it \(allow='([a-z_]+)', --allow-mismatch [a-z_]+\)")


def without_allow_option(message: str) -> str:
    """The metrics library's refusal of a header mismatch, which suggests ``--allow-mismatch`` (an option of
    ``python -m metrics compute``, not of ``imac-bench run``), told with what this command offers."""
    return _ALLOW_HINT.sub(r" (imac-bench run scores only matching videos: re-encode them to match; "
                           r"python -m metrics compute --allow-mismatch \1 scores them anyway)", message)


WRITTEN_PROPERTIES = ("pixel_format", "colour_range", "colour_matrix", "sample_aspect_ratio", "rotation")


def written_properties() -> dict[str, str]:
    """The pixel properties of the videos the bench writes (``metrics.io.video.write_video``: the methods'
    and the static control's), read from a video it writes now, as the input check reads them."""
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "written.mp4", np.zeros((2, 16, 16, 3), np.uint8), 25)
        written = clip_properties(ClipRecord(identity="a", clip_id="written", video=video), "fake", audio=False)
    return {name: written.value(name) for name in WRITTEN_PROPERTIES}


def check_real_clips_writable(metrics: Sequence[str], protocol, test_clips: Sequence[ClipRecord]) -> None:
    """Refuse, before anything trains, real test clips whose pixel properties no video the bench writes can
    have (``written_properties``): the static control, and every method the bench runs itself, would be
    refused when scored, after all the training and generation. ``InputMismatchError`` naming the clips."""
    _, real, _ = Evaluator(metrics, protocol).properties(test_clips, "real")      # headers only
    written = written_properties()
    differing = {p.clip: [f"{name} {p.value(name)}" for name, value in written.items() if p.value(name) != value]
                 for p in real}
    unlike = [f"{clip} ({', '.join(names)})" for clip, names in differing.items() if names]
    if unlike:
        shown = "; ".join(unlike[:5]) + (f"; ... and {len(unlike) - 5} more" if len(unlike) > 5 else "")
        raise InputMismatchError(
            f"{len(unlike)} real test clip(s) unlike every video the bench writes ({shown}); it writes "
            f"{', '.join(f'{name} {value}' for name, value in written.items())}, and scores only videos that "
            "match their real clips: re-encode the dataset's videos to match (imac-bench data prepare makes them so)")


def check_folder(metrics: Sequence[str], protocol, test_clips: Sequence[ClipRecord], name: str, folder) -> None:
    """Compare the headers of videos made elsewhere (``folder/<identity>/<clip_id>.mp4``) with the real
    test clips before the run does any other work; ``InputMismatchError`` names the folder."""
    headers = Evaluator(metrics, protocol)             # no network: headers only
    clips = []
    for clip in test_clips:
        video = folder / clip.identity / f"{clip.clip_id}.mp4"
        if video.is_file():
            wav = video.with_suffix(".wav")
            clips.append(ClipRecord(identity=clip.identity, clip_id=clip.clip_id, video=video,
                                    audio=wav if wav.is_file() else None))
    if not clips:
        return
    _, real_props, _ = headers.properties(test_clips, "real")
    _, props, _ = headers.properties(clips, "fake", on_error="skip")
    try:
        headers.check_inputs(real_props, props)
    except InputMismatchError as error:
        raise InputMismatchError(f"--generated {name}={folder}: {without_allow_option(str(error))}") from None
