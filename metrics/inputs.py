"""Both sides of a comparison must match: every input property that changes a metric's number is
equal on the real and the generated side, converted as the protocol says, or refused before any
video is decoded, with an error naming the property and the clips (``InputMismatchError``). What
was converted, or allowed by the user, is written into the result (``InputReport``).

The properties come from the files' headers and packet times (``metrics.io.video.VideoReader``, the wav's header)
and, for the display matrix (turned, mirrored), from the first decoded frame:

============================  =================  ==========================================================
property                      changes            rule
============================  =================  ==========================================================
``frame_size`` (w x h)        FVD; pose;         equal for FVD (both are resized to 224 from it), for
                              pixels             PSNR/SSIM/LPIPS (pixel to pixel; allowed: the real frames
                                                 resized to the generated size) and for HKV in pixels
                                                 (``hkv_space`` "pixels"), on each side and for each
                                                 generated clip against its real clip; for the skeleton
                                                 metrics converted (keypoints in shoulder widths), for Drift
                                                 and the joins converted (the real first frame resized),
                                                 both at the real clip's shape (width / height, within 1%:
                                                 one length cannot undo a stretch)
``frame_rate``                FVD; FGD/Div/BAS   equal for FVD (a 16-frame clip spans 16 / fps seconds);
                                                 keypoints resampled to the protocol's rate
``duration`` (paired clips)   all                a generated clip lasts its real clip's length, +- 1 frame
                                                 (of the slower of the two rates)
``frame_timing``              all                a constant rate on both sides: frame i is read as shown at
                                                 i / fps (FVD's clips, the keypoints' resampling, the beats
                                                 of BAS), so a variable-rate clip is refused (allowed: read
                                                 so all the same)
``pixel_format``              all (pixels)       equal (chroma subsampling and bit depth)
``colour_range``              all (pixels)       equal (tv/limited or pc/full; unspecified decodes as tv)
``colour_matrix``             all (pixels)       equal (the YUV->RGB matrix; unspecified decodes as BT.601)
``sample_aspect_ratio``       all (geometry)     equal (unspecified = square pixels)
``rotation``                  all (geometry)     equal: the display matrix, turned and mirrored (frames are
                                                 read as stored, never turned upright)
``audio_rate``                BAS                converted: resampled to the protocol's audio rate
``audio_channels``            BAS                converted: channels averaged to mono
``audio_duration``            BAS                the speech covers the video (up to 0.1 s short: AAC); a
                                                 generated clip read with its real clip's speech: up to
                                                 0.1 s and one real frame short
``audio_missing``             BAS                under ``bas_audio: generated``, a generated clip without sound
                                                 is scored with its real clip's speech (converted); with no
                                                 real partner, refused (under either ``bas_audio``)
``reference_image``           Drift, CSIM        a generated clip with no real clip is measured from its own
                                                 first frame (converted, said)
``bas_audio``                 BAS                under ``bas_audio: real`` (default) a generated clip with no
                                                 real partner and no wav is scored with its own sound track
                                                 (converted)
``clips`` (``metrics          all                every real clip has a generated clip of the same
compute``)                                       identity/clip_id and every generated clip a real one (else
                                                 the numbers describe a subset); the counts are recorded
                                                 (``InputReport.pairing``)
============================  =================  ==========================================================

The audio rows concern the sound BAS reads: the real clips' and, under ``bas_audio: real`` (default),
only the unpaired generated clips' own (a paired one is scored with its real clip's speech).

"Equal" holds on each side (the same values) and for each generated clip against its real clip (the same
identity/clip_id). ``allow`` names properties whose mismatch is accepted; the result then lists it under ``allowed``.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import soundfile

from metrics.dataset import ClipRecord
from metrics.io.fields import typed_field
from metrics.io.video import DisplayMatrix, VideoReader, display_matrix, display_rotation, uneven_frame, uneven_words
from metrics.protocol import Protocol
from metrics.registry import METRIC_IDS, REGISTRY

# The properties a user may allow to differ (``allow``), and the alias the old option used.
ALLOWABLE = ("frame_size", "frame_rate", "duration", "frame_timing", "pixel_format", "colour_range", "colour_matrix",
             "sample_aspect_ratio", "rotation", "audio_duration", "clips")
ALIASES = {"resolution": "frame_size", "fps": "frame_rate", "color_range": "colour_range",
           "color_matrix": "colour_matrix", "color_space": "colour_matrix"}
PIXEL_METRICS = METRIC_IDS     # every metric reads pixels (keypoints come from them): metrics.registry
SKELETON_METRICS = ("fgd", "div", "bas")     # built-in metrics that read keypoints
REFERENCE_IMAGE_METRICS = ("drift", "csim")   # measured from the real clip's first frame (the joins' ratios are not)
AUDIO_SLACK_SECONDS = 0.1       # AAC priming and padding: a muxed track may read up to ~0.1 s short
ASPECT_TOLERANCE = 0.01         # relative: sizes rounded to even pixels (1920x1080 as 854x480: 0.08%)
NAMED_CLIPS = 5                 # clips named in a message before "... and N more"


class InputMismatchError(ValueError):
    """A property that changes a number differs between the sides (or is wrong on one side)."""


@dataclass(frozen=True)
class ClipProperties:
    """What one clip's headers say, on one side (``real`` or ``fake``)."""

    clip: str                       # identity/clip_id
    side: str
    width: int
    height: int
    fps: float
    num_frames: int
    pixel_format: str | None
    colour_range: str               # effective: "tv" or "pc"
    colour_matrix: str              # effective: "bt601", "bt709", ...
    sample_aspect_ratio: str        # "1:1" when unspecified
    rotation: int                   # degrees a player turns the frames (0 when ``mirrored``)
    audio_source: str | None        # "wav", "track" or None (no sound)
    audio_rate: int | None
    audio_channels: int | None
    audio_duration: float | None
    uneven_timing: str | None = None    # a variable frame rate, in words (the frame furthest off); None: constant
    audio_problem: str | None = None    # why the wav beside it cannot be read (refused where its sound is heard)
    mirrored: str = ""              # how a player mirrors the frames, in words ("" when it does not)

    @property
    def key(self) -> str:
        return self.clip

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def value(self, name: str) -> str:
        """The property ``name`` as text (what messages and the report show)."""
        if name == "frame_size":
            return f"{self.width}x{self.height}"
        if name == "frame_rate":
            return f"{self.fps:g} fps"
        if name == "rotation" and self.mirrored:
            return f"mirrored {self.mirrored}"
        return str(getattr(self, name))


def _effective_matrix(name: str | None) -> str:
    # BT.470BG and SMPTE 170M are both the BT.601 matrix; unspecified decodes as BT.601 (swscale's default).
    return "bt601" if name in (None, "bt470bg", "smpte170m") else name


def _wav_header(path) -> tuple[int, int, float]:
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, OSError) as error:
        raise InputMismatchError(f"{path}: cannot read the audio header: {error}") from error
    return int(info.samplerate), int(info.channels), info.frames / info.samplerate


def clip_properties(clip: ClipRecord, side: str, audio: bool = True) -> ClipProperties:
    """The properties of one clip from its headers and packet times (and its first frame, for the rotation)."""
    with VideoReader(clip.video) as reader:       # one demux: the header and every frame's time, nothing decoded
        info, times = reader.info, reader.frame_times()
    if info.truncated:                            # an unreadable clip (skipped by on_error="skip"), not a short one
        raise ValueError(f"{clip.video}: {info.truncated}")
    source = rate = channels = seconds = problem = None
    if audio and clip.audio is not None:
        source = "wav"
        try:
            rate, channels, seconds = _wav_header(clip.audio)
        except InputMismatchError as error:     # refused by the audio check if its sound is heard
            problem = str(error)
    elif audio and info.has_audio:
        source, rate, channels, seconds = "track", info.audio_sample_rate, info.audio_channels, info.audio_duration
    mirrored = mirroring(display_matrix(clip.video))
    return ClipProperties(
        clip=clip.label, side=side, width=info.width, height=info.height, fps=info.fps, num_frames=info.num_frames,
        pixel_format=info.pix_fmt, colour_range=info.color_range or "tv",
        colour_matrix=_effective_matrix(info.color_space), sample_aspect_ratio=info.sample_aspect_ratio or "1:1",
        rotation=0 if mirrored else display_rotation(clip.video), mirrored=mirrored, audio_source=source, audio_rate=rate, audio_channels=channels,
        audio_duration=seconds, uneven_timing=_uneven_timing(times), audio_problem=problem)


def mirroring(matrix: DisplayMatrix) -> str:
    """How ``matrix`` mirrors the picture, in words ("" when it only turns it, or leaves it): what a rotation
    in degrees cannot say (PyAV reads ``-display_hflip`` as a turn of 180, ``-display_vflip`` as none)."""
    if not matrix.mirrored:
        return ""
    if matrix.transpose:
        return "across a diagonal"
    return "left to right" if matrix.flip_x else "upside down"


def _uneven_timing(times) -> str | None:
    """How a clip's frame times depart from a constant rate (``uneven_frame``), in words, or None."""
    uneven = uneven_frame(times)
    return None if uneven is None else uneven_words(times, uneven[0])


@dataclass(frozen=True)
class Finding:
    """One property that needed something: converted as the protocol says, or allowed to differ."""

    property: str
    action: str                     # "converted" | "allowed"
    metrics: tuple[str, ...]        # the metrics whose numbers it concerns
    detail: str

    def __str__(self) -> str:
        return f"{self.property} ({self.action}, {'/'.join(self.metrics)}): {self.detail}"

    def to_dict(self) -> dict:
        return {"property": self.property, "action": self.action, "metrics": list(self.metrics),
                "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict, where: str = "finding") -> Finding:
        text = {key: typed_field(data, key, str, where) for key in ("property", "action", "detail")}
        metrics = typed_field(data, "metrics", list, where)
        if not all(isinstance(m, str) for m in metrics):
            raise ValueError(f"{where}: metrics: expected a list of metric ids")
        return cls(text["property"], text["action"], tuple(metrics), text["detail"])


@dataclass(frozen=True)
class InputReport:
    """What the two sides hold (distinct values per property) and what was converted or allowed."""

    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)   # side -> property -> values
    findings: tuple[Finding, ...] = ()
    pairing: dict[str, int] = field(default_factory=dict)   # clip counts: real, generated, paired, *_unpaired

    def for_metric(self, metric: str) -> tuple[str, ...]:
        """The findings that concern ``metric``, as text (its provenance card's ``conversions``)."""
        return tuple(str(f) for f in self.findings if metric in f.metrics)

    def to_dict(self) -> dict:
        data = {"values": self.values, "findings": [f.to_dict() for f in self.findings]}
        return {**data, "pairing": self.pairing} if self.pairing else data

    @classmethod
    def from_dict(cls, data: dict | None, where: str = "inputs") -> InputReport:
        """Read back ``to_dict``'s output; ``ValueError`` naming ``where`` and the field of the wrong type."""
        data = data or {}
        findings = typed_field(data, "findings", list, where, [])
        return cls(values=typed_field(data, "values", dict, where, {}),
                   findings=tuple(Finding.from_dict(f, f"{where}: findings[{i}]") for i, f in enumerate(findings)),
                   pairing=typed_field(data, "pairing", dict, where, {}))


def normalise_allow(allow: Iterable[str]) -> frozenset[str]:
    """Property names of ``allow`` (aliases such as ``resolution`` resolved); unknown names raise."""
    names = set()
    for name in allow:
        name = ALIASES.get(name.strip(), name.strip())
        if name not in ALLOWABLE:
            raise ValueError(f"allow: unknown property {name!r}; choose from {', '.join(ALLOWABLE)}")
        names.add(name)
    return frozenset(names)


def _named(clips: Sequence[str]) -> str:
    shown = ", ".join(clips[:NAMED_CLIPS])
    return shown + (f" and {len(clips) - NAMED_CLIPS} more" if len(clips) > NAMED_CLIPS else "")


def _by_value(props: Sequence[ClipProperties], name: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for p in props:
        groups.setdefault(p.value(name), []).append(p.clip)
    return groups


def _describe(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{value} ({len(clips)} clip(s): {_named(clips)})" for value, clips in sorted(groups.items()))


class _Checker:
    """Collects findings and refusals; ``report()`` raises every refusal at once."""

    def __init__(self, metrics: Sequence[str], allow: frozenset[str]) -> None:
        self.metrics, self.allow = tuple(metrics), allow
        self.findings: list[Finding] = []
        self.refused: list[str] = []

    def concerned(self, metrics: Sequence[str]) -> tuple[str, ...]:
        return tuple(m for m in metrics if m in self.metrics)

    def mismatch(self, name: str, metrics: Sequence[str], detail: str, why: str) -> None:
        """The two sides differ in the property ``name``."""
        self.problem(name, metrics, f"{name} differs ({detail}): {why}; make both sides match", detail)

    def problem(self, name: str, metrics: Sequence[str], refusal: str, allowed: str) -> None:
        """A problem with the allowable property ``name``: recorded as ``allowed`` when it is allowed,
        else refused with ``refusal`` and how to allow it; nothing when no metric of the run is concerned."""
        metrics = self.concerned(metrics)
        if not metrics:
            return
        if name in self.allow:
            self.findings.append(Finding(name, "allowed", metrics, allowed))
        else:
            self.refused.append(f"{refusal}, or allow it (allow={name!r}, --allow-mismatch {name})")

    def converted(self, name: str, metrics: Sequence[str], detail: str) -> None:
        metrics = self.concerned(metrics)
        if metrics:
            self.findings.append(Finding(name, "converted", metrics, detail))


def _equal_sides(check: _Checker, real, fake, name: str, metrics: Sequence[str], why: str) -> bool:
    """The property ``name`` holds the same values on both sides, and each generated clip its real clip's."""
    ours, theirs = _by_value(real, name), _by_value(fake, name)
    unlike = _unlike_partners(real, fake, name)
    if set(ours) == set(theirs) and not unlike:
        return True
    paired = f"; {len(unlike)} generated clip(s) unlike their real clip: {_named(unlike)}" if unlike else ""
    check.mismatch(name, metrics, f"real {_describe(ours)}; generated {_describe(theirs)}{paired}", why)
    return False


def _unlike_partners(real, fake, name: str) -> list[str]:
    """Each generated clip whose ``name`` differs from its real clip's, as "clip (real V, generated W)"."""
    partners = {p.key: p for p in real}
    return [f"{p.clip} (real {partners[p.key].value(name)}, generated {p.value(name)})" for p in fake
            if p.key in partners and p.value(name) != partners[p.key].value(name)]


def _shape(props: ClipProperties) -> float:
    """The frame's width / height in samples (non-square samples are ``sample_aspect_ratio``'s to refuse)."""
    return props.width / props.height


def _other_shapes(real, fake) -> list[str]:
    """The generated clips shown at another width / height than their real clip (more than
    ``ASPECT_TOLERANCE`` apart), or, with no real partner, than every real clip; in words."""
    def apart(a: float, b: float) -> bool:
        return abs(a / b - 1.0) > ASPECT_TOLERANCE

    partners = {p.key: p for p in real}
    shapes = [_shape(p) for p in real]
    found = []
    for p in fake:
        partner = partners.get(p.key)
        if partner is not None and apart(_shape(p), _shape(partner)):
            found.append(f"{p.clip} (real {partner.value('frame_size')}, generated {p.value('frame_size')})")
        elif partner is None and shapes and all(apart(_shape(p), shape) for shape in shapes):
            found.append(f"{p.clip} ({p.value('frame_size')}; no real clip has its shape)")
    return found


def _check_frames(check: _Checker, real, fake, protocol: Protocol) -> None:
    pixel_to_pixel = [m for m, spec in REGISTRY.items() if spec.partner_pixels == "equal"]
    resized = [m for m, spec in REGISTRY.items() if spec.partner_pixels == "resized"]
    # HKV in pixels (hkv_space "pixels", the cyberhost preset): squared pixels scale with the frame's size
    in_pixels = ("hkv",) if getattr(protocol, "hkv_space", "normalised") == "pixels" else ()
    if not _equal_sides(check, real, fake, "frame_size", ("fvd", *pixel_to_pixel, *in_pixels), "FVD resizes both to "
                       "224, so the result depends on the mismatch, and PSNR, SSIM and LPIPS compare pixel to pixel "
                       "(allowed, the real frames are resized to the generated size)" + (", and HKV in pixels "
                       "(hkv_space: pixels) grows with the square of the frame size" if in_pixels else "")
                       + "; render at the real resolution"):
        check.converted("frame_size", resized, "the real clip's first frame resized (area) to the generated "
                        "frames' size for the distances from it")
    stretched = _other_shapes(real, fake)
    if stretched:
        check.mismatch("frame_size", (*SKELETON_METRICS, *resized), f"{len(stretched)} generated clip(s) of another "
                       f"shape (width / height) than their real clip: {_named(stretched)}", "the keypoints are "
                       "normalised by one length (the shoulder width), which cannot undo a stretch in one direction, "
                       "and the real first frame would be stretched to the generated shape for the distances from "
                       "it; frames cropped or padded, not stretched, do no harm to the skeletons (allow it then)")
    sizes = {p.value("frame_size") for p in (*real, *fake)}
    if len(sizes) > 1:
        check.converted("frame_size", SKELETON_METRICS, f"frame sizes {', '.join(sorted(sizes))}: keypoints are "
                        "normalised per clip (neck centre, shoulder width), so skeletons compare in shoulder widths")
    frame_to_frame = [m for m, spec in REGISTRY.items() if spec.partner_pixels == "equal"]
    _equal_sides(check, real, fake, "frame_rate", ("fvd", *frame_to_frame), f"a {protocol.fvd_frames}-frame FVD clip "
                 f"spans {protocol.fvd_frames} / fps seconds, and PSNR, SSIM and LPIPS compare the real clip's frame i "
                 "with the generated clip's frame i, which at another frame rate show other moments; render at the "
                 "real clips' frame rate")
    rates = {p.fps for p in (*real, *fake)}
    skeleton_fps = {"fgd": protocol.fps, "div": protocol.fps, "bas": getattr(protocol, "bas_fps", protocol.fps)}
    for metric, target in skeleton_fps.items():
        other = sorted(r for r in rates if not math.isclose(r, target))
        if other:
            check.converted("frame_rate", (metric,), f"keypoints at {', '.join(f'{r:g}' for r in other)} fps "
                            f"resampled to {target:g} fps")


def _check_timing(check: _Checker, real, fake) -> None:
    uneven = [f"{p.side} {p.clip} ({p.uneven_timing})" for p in (*real, *fake) if p.uneven_timing]
    if not uneven:
        return
    detail = f"{len(uneven)} clip(s) with a variable frame rate: {_named(uneven)}"
    check.problem("frame_timing", PIXEL_METRICS,
                  f"frame_timing: {detail}: the metrics read frame i as shown at i / fps (FVD's clips, the keypoints' "
                  "resampling, the beats of BAS), so their motion would be timed wrongly; make the rate constant "
                  "(imac-bench data prepare picks frames by their timestamps; ffmpeg -vf fps=N)",
                  f"{detail}; frame i read as shown at i / fps")


def _check_pixels(check: _Checker, real, fake) -> None:
    reasons = {"pixel_format": "chroma subsampling and bit depth change the decoded pixels",
               "colour_range": "limited and full range decode to different RGB values",
               "colour_matrix": "the YUV->RGB matrix changes the decoded colours",
               "sample_aspect_ratio": "non-square pixels change the shapes the pose extractor and I3D see",
               "rotation": "frames are read as stored, so one side would be seen turned"}
    for name, why in reasons.items():
        _equal_sides(check, real, fake, name, PIXEL_METRICS, why)
    turned = [p.clip for p in (*real, *fake) if p.rotation or p.mirrored]
    if turned and not check.refused:
        check.converted("rotation", PIXEL_METRICS, f"{len(turned)} clip(s) carry a display rotation or mirroring "
                        f"({_named(turned)}): frames are read as stored on both sides")


def duration_tolerance(real_fps: float, fake_fps: float) -> float:
    """Seconds by which a generated clip may differ from its real clip: one frame of the slower of the two
    rates (each side's length is a whole number of its own frames: ffmpeg's ``fps`` filter, converting a
    25-fps clip of 127 frames to 8 fps, gives 41 frames, 0.045 s away, more than one 25-fps frame)."""
    return 1.0 / min(real_fps, fake_fps) + 1e-6


def _check_durations(check: _Checker, real, fake) -> None:
    partners = {p.key: p for p in real}
    off = [f"{p.clip} ({p.num_frames} frames at {p.fps:g} fps vs {partners[p.key].num_frames} at "
           f"{partners[p.key].fps:g})" for p in fake if p.key in partners
           and abs(p.duration - partners[p.key].duration) > duration_tolerance(partners[p.key].fps, p.fps)]
    if off:
        check.mismatch("duration", PIXEL_METRICS, f"{len(off)} generated clip(s) differ from their real clip by "
                       f"more than one frame (of the slower rate): {_named(off)}", "the number of windows, I3D clips "
                       "and beats follows the length; generate the real clip's length")


def _check_heard_files(check: _Checker, real, fake, protocol: Protocol) -> None:
    """A wav that cannot be read is refused where a metric hears it: a real clip's, and a generated clip's
    unless BAS alone hears the sound and takes its real clip's speech (``bas_audio: real``)."""
    hearing = [m for m in check.metrics if REGISTRY[m].audio]
    if not hearing:
        return
    partners = {p.key for p in real}
    own = [p for p in fake if hearing != ["bas"] or protocol.bas_audio != "real" or p.key not in partners]
    unread = [p.audio_problem for p in (*real, *own) if p.audio_problem]
    if unread:
        check.refused.append(f"audio: {len(unread)} wav file(s) cannot be read: {_named(unread)}")


def _check_audio(check: _Checker, real, fake, protocol: Protocol) -> None:
    _check_heard_files(check, real, fake, protocol)
    if "bas" not in check.metrics:
        return
    partners = {p.key: p for p in real}
    silent = [p for p in fake if p.audio_source is None]
    orphans = [p.clip for p in silent if p.key not in partners]
    if orphans:
        check.refused.append(f"audio_missing: {len(orphans)} generated clip(s) have no audio track, no wav beside "
                             f"them and no real clip with the same identity/clip_id to take the speech from: "
                             f"{_named(orphans)} (BAS needs the speech)")
    if protocol.bas_audio == "real":          # every paired clip is scored with its real clip's speech
        alone = [p.clip for p in fake if p.key not in partners and p.audio_source == "track"]
        if alone:                             # (a wav beside a clip is read as the real side reads its own)
            check.converted("bas_audio", ("bas",), f"{len(alone)} generated clip(s) with no real clip of the same "
                            f"identity/clip_id scored with their own sound track, not the real speech: "
                            f"{_named(alone)}")
    elif silent and len(silent) > len(orphans):
        check.converted("audio_missing", ("bas",), f"{len(silent) - len(orphans)} generated clip(s) without sound "
                        f"scored with their real clip's speech: {_named([p.clip for p in silent])}")
    silent_real = [p.clip for p in real if p.audio_source is None]
    if silent_real:
        check.refused.append(f"audio_missing: {len(silent_real)} real clip(s) have no sound: {_named(silent_real)}")
    # the sound BAS reads: the real clips', and a generated clip's own only where bas_audio has it read
    own = [p for p in fake if protocol.bas_audio != "real" or p.key not in partners]
    voiced = [p for p in (*real, *own) if p.audio_source is not None and not p.audio_problem]
    rates = sorted({p.audio_rate for p in voiced if p.audio_rate != protocol.audio_sample_rate})
    if rates:
        check.converted("audio_rate", ("bas",), f"audio at {', '.join(map(str, rates))} Hz resampled to "
                        f"{protocol.audio_sample_rate} Hz")
    channels = sorted({p.audio_channels for p in voiced if (p.audio_channels or 1) > 1})
    if channels:
        check.converted("audio_channels", ("bas",), f"audio of {', '.join(map(str, channels))} channels averaged "
                        "to mono")
    short = [f"{p.side} {p.clip} ({p.audio_duration:.2f} s of sound for {p.duration:.2f} s of video)" for p in voiced
             if p.audio_duration is not None and p.audio_duration < p.duration - AUDIO_SLACK_SECONDS]
    # a generated clip read with its real clip's speech: the video may pass the real clip's length by up to a
    # frame of the slower rate (``duration_tolerance``); beyond one frame of the real clip's, that speech is
    # held against the generated video's length as a clip's own sound is against its own
    borrowed = [(p, partners[p.key]) for p in fake
                if p.key in partners and (protocol.bas_audio == "real" or p.audio_source is None)]
    short += [f"fake {p.clip} ({partner.audio_duration:.2f} s of its real clip's speech for {p.duration:.2f} s of "
              "video)" for p, partner in borrowed if partner.audio_duration is not None
              and partner.audio_duration < p.duration - AUDIO_SLACK_SECONDS - 1.0 / partner.fps]
    if short:
        check.mismatch("audio_duration", ("bas",), f"{len(short)} clip(s) with less sound than video: "
                       f"{_named(short)}", "the end of the video has no speech to align with")


def _check_clips(check: _Checker, real: Sequence[str], fake: Sequence[str]) -> dict[str, int]:
    missing, extra = sorted(set(real) - set(fake)), sorted(set(fake) - set(real))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(real)} real clip(s) have no generated clip: {_named(missing)}")
        if extra:
            parts.append(f"{len(extra)} of {len(fake)} generated clip(s) have no real clip of the same "
                         f"identity/clip_id: {_named(extra)}")
        # names that look alike and differ in their Unicode form (macOS writes file names decomposed, NFD)
        composed = {unicodedata.normalize("NFC", label): label for label in missing}
        alike = [f"{composed[key]!a} vs {label!a}" for label in extra
                 if (key := unicodedata.normalize("NFC", label)) in composed]
        if alike:
            parts.append(f"{len(alike)} pair(s) of names alike but written in other Unicode forms (composed "
                         f"and decomposed accents; rename one side): {_named(alike)}")
        check.mismatch("clips", PIXEL_METRICS, "; ".join(parts), "the numbers would describe other clips than the "
                       "real side's; generate one video per real clip")
    return pairing_counts(real, fake)


def pairing_counts(real: Sequence[str], fake: Sequence[str]) -> dict[str, int]:
    """How the clip labels of the two sides pair (``InputReport.pairing``): each side's count, the paired
    ones, and each side's unpaired ones."""
    return {"real": len(real), "generated": len(fake), "paired": len(set(real) & set(fake)),
            "real_unpaired": len(set(real) - set(fake)), "generated_unpaired": len(set(fake) - set(real))}


def _check_identities(check: _Checker, real, fake) -> None:
    loose = [f"{p.side} {p.clip}" for p in (*real, *fake) if "/" not in p.clip]   # a label is identity/clip_id
    if loose:
        check.converted("identity", ("div",), f"{len(loose)} clip(s) with no identity folder ({_named(loose)}): "
                        "Diversity, computed per speaker, takes them as one speaker; lay them out as "
                        "<identity>/<clip_id>.mp4")


def _values(props: Sequence[ClipProperties]) -> dict[str, list[str]]:
    names = ("frame_size", "frame_rate", "pixel_format", "colour_range", "colour_matrix", "sample_aspect_ratio",
             "rotation", "audio_rate", "audio_channels", "audio_source")
    return {name: sorted(_by_value(props, name)) for name in names}


def _check_reference(check: _Checker, real, fake) -> None:
    """The metrics measured from the real clip's first frame (the image generation starts from: drift, CSIM)
    take a generated clip's own first frame when it has no real clip: said, since the number then measures
    something else (no real videos given, or clips allowed to be unpaired)."""
    partners = {p.key for p in real}
    alone = [p.clip for p in fake if p.key not in partners]
    if alone:
        check.converted("reference_image", REFERENCE_IMAGE_METRICS,
                        f"{len(alone)} generated clip(s) with no real clip of the same identity/clip_id measured from "
                        f"their own first frame, not the real clip's: {_named(alone)}")


def check_inputs(real: Sequence[ClipProperties], fake: Sequence[ClipProperties], metrics: Sequence[str],
                 protocol: Protocol, allow: Iterable[str] = (),
                 clips: tuple[Sequence[str], Sequence[str]] | None = None) -> InputReport:
    """Compare the two sides' properties under the rules of the module docstring.

    ``clips``: the clip labels (identity/clip_id) found on each side, real then generated, to check
    that they pair one to one (``clips``); None: not checked (a caller scoring subsets on purpose).
    Returns the report of what the sides hold and what was converted or allowed; raises
    ``InputMismatchError`` listing every refused property (with the clips) otherwise.
    """
    check = _Checker(metrics, normalise_allow(allow))
    pairing = _check_clips(check, *clips) if clips is not None else {}
    if real and fake:                  # (no generated clip read: nothing to compare, the caller says so)
        _check_frames(check, real, fake, protocol)
        _check_pixels(check, real, fake)
        _check_durations(check, real, fake)
    _check_timing(check, real, fake)
    _check_audio(check, real, fake, protocol)
    _check_reference(check, real, fake)
    _check_identities(check, real, fake)
    if check.refused:
        raise InputMismatchError("the real and generated inputs do not match: " + " | ".join(check.refused))
    return InputReport(values={"real": _values(real), "fake": _values(fake)}, findings=tuple(check.findings),
                       pairing=pairing)
