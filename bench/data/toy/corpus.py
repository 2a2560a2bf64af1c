"""Writing the toy corpus to disk: clips, manifest and the corpus card.

Every clip is generated from its own random stream, seeded by (seed, identity, clip), so a clip
does not depend on how many others are generated, and an interrupted generation resumes: each
file is written atomically (to a temporary name, then renamed), and on resuming each file already
there is checked against what this run would write (``damaged_files``): the arrays, the events
and the wav's samples compared, the video probed and its last frame decoded. A file missing, cut
short (a crash before the renamed file reached the disk, an interrupted copy) or holding anything
else is written again; the others are kept.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from metrics.dataset import write_manifest
from metrics.io.bounded import BoundedReadError, load_npz, read_json
from bench.data.toy import body
from bench.data.toy.gestures import generate_motion
from bench.data.toy.identities import Identity, make_identities
from bench.data.toy.render import FrameRenderer
from bench.data.toy.speech import synthesize_speech
from metrics.io.audio import SAMPLE_RATE, write_wav
from metrics.io.files import save_npz_atomic, write_json_atomic
from metrics.io.video import VideoReader, write_video

logger = logging.getLogger(__name__)

CORPUS_VERSION = "toy-corpus-v2"
CARD_NAME = "toy_corpus.json"

# The ranges the corpus options accept (the command line's too): beyond them a corpus is no longer a
# toy (a 100000 px frame side asks for 112 GiB of memory), and identities keep two-digit names.
LIMITS = {"seed": (0, 2**32 - 1), "identities": (1, 100), "clips": (2, 1000), "test_clips": (1, 999),
          "size": (64, 1024)}
MAX_SECONDS = 60.0


@dataclass(frozen=True)
class ToyCorpusConfig:
    seed: int = 0
    identities: int = 4
    clips: int = 10               # per identity
    test_clips: int = 2           # per identity, taken from the clips
    size: int = 128               # frames are size x size
    fps: int = 25
    min_seconds: float = 3.6      # >= 80 frames at 25 fps
    max_seconds: float = 6.0

    def __post_init__(self) -> None:
        for name, (low, high) in LIMITS.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"--{name.replace('_', '-')} must be in {low}..{high}, got {getattr(self, name)}")
        if self.test_clips >= self.clips:
            raise ValueError(f"--test-clips must be in 1..clips-1 (train and test), got {self.test_clips} of "
                             f"{self.clips}")
        if self.size % 2:
            raise ValueError(f"--size must be even, got {self.size}")
        if self.min_seconds * self.fps < 80:
            raise ValueError("clips must hold an 80-frame window: min_seconds * fps >= 80")
        if not self.min_seconds <= self.max_seconds <= MAX_SECONDS:
            raise ValueError(f"max_seconds must be >= min_seconds ({self.min_seconds:g}) and <= {MAX_SECONDS:g}, "
                             f"got {self.max_seconds:g}")


def clip_rng(seed: int, identity_index: int, clip_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, identity_index, clip_index])


def make_clip(identity: Identity, identity_index: int, clip_index: int, config: ToyCorpusConfig) -> dict:
    """Audio, motion, keypoints and events of one clip (no frames, no files)."""
    rng = clip_rng(config.seed, identity_index, clip_index)
    num_frames = int(round(rng.uniform(config.min_seconds, config.max_seconds) * config.fps))
    duration = num_frames / config.fps
    speech = synthesize_speech(rng, duration, identity.speech)
    motion = generate_motion(rng, speech, identity.gesture, config.fps, num_frames)
    keypoints = body.wholebody_keypoints(
        motion["pose"], motion["expression"], identity.shape, identity.camera(config.size),
        hips_visible=not identity.sitting,
    )
    events = {
        "syllables": [asdict(s) for s in speech.syllables],
        "pauses": [list(p) for p in speech.pauses],
        "strokes": [{"time": s.time, "syllable": s.syllable} for s in motion["strokes"]],
        "hands": [list(h) for h in motion["hands"]],
        "arrivals": [{"time": a.time, "arm": arm, "kind": a.kind} for arm, a in motion["arrivals"]],
    }
    return {"num_frames": num_frames, "audio": speech.samples, "pose": motion["pose"],
            "expression": motion["expression"], "keypoints": keypoints, "events": events}


CLIP_FILES = ("audio", "motion", "keypoints", "events", "video")     # in the order they are written


def _clip_paths(out_dir: Path, identity: str, clip_id: str) -> dict[str, Path]:
    stem = out_dir / identity / clip_id
    return {"video": stem.with_suffix(".mp4"), "audio": stem.with_suffix(".wav"),
            "motion": Path(f"{stem}.motion.npz"), "keypoints": Path(f"{stem}.keypoints.npz"),
            "events": Path(f"{stem}.events.json")}


def _motion_arrays(clip: dict, fps: int) -> dict[str, np.ndarray]:
    return {"pose": clip["pose"], "expression": clip["expression"],
            "joint_names": np.array(body.POSED_JOINT_NAMES), "fps": np.array(fps)}


def _write_clip(paths: dict[str, Path], clip: dict, renderer: Callable[[], FrameRenderer], fps: int,
                names: tuple[str, ...] = CLIP_FILES) -> None:
    """Write the files ``names`` of a clip, each atomically; ``renderer`` makes the video's renderer."""
    if "audio" in names:
        write_wav(paths["audio"], clip["audio"], SAMPLE_RATE)
    if "motion" in names:
        save_npz_atomic(paths["motion"], **_motion_arrays(clip, fps))
    if "keypoints" in names:
        save_npz_atomic(paths["keypoints"], keypoints=clip["keypoints"])
    if "events" in names:
        write_json_atomic(paths["events"], clip["events"])
    if "video" in names:
        write_video(paths["video"], renderer().iter_render(clip["pose"], clip["expression"]), fps,
                    audio=clip["audio"], sample_rate=SAMPLE_RATE)


# The largest difference between a sample written to a 16-bit wav and the sample read back: libsndfile
# writes round(x * 32767) and reads n / 32768, so |x - read| <= x / 32768 + 0.5 / 32768 < 2 / 32768.
_WAV_TOLERANCE = 2.0 / 32768

# What reading a file cut short or holding something else raises (soundfile: LibsndfileError, a
# RuntimeError; the video and npz readers: ValueError naming the file).
_READ_ERRORS = (OSError, ValueError, EOFError, RuntimeError, KeyError, zipfile.BadZipFile, BoundedReadError)


def _audio_problem(path: Path, clip: dict) -> str | None:
    info = soundfile.info(str(path))
    if (info.samplerate, info.channels, info.frames) != (SAMPLE_RATE, 1, len(clip["audio"])):
        return (f"{info.frames} samples at {info.samplerate} Hz, {info.channels} channel(s); expected "
                f"{len(clip['audio'])} at {SAMPLE_RATE} Hz, mono")
    samples, _ = soundfile.read(str(path), dtype="float64")
    if not np.allclose(samples, np.clip(clip["audio"], -1.0, 1.0), rtol=0.0, atol=_WAV_TOLERANCE):
        return "other samples"
    return None


def _arrays_problem(path: Path, expected: dict[str, np.ndarray]) -> str | None:
    arrays = load_npz(path)
    if set(arrays) != set(expected):
        return f"arrays {sorted(arrays)}, expected {sorted(expected)}"
    other = [name for name, array in expected.items() if not np.array_equal(arrays[name], array)]
    return f"other values in {', '.join(other)}" if other else None


def _video_problem(path: Path, clip: dict, config: ToyCorpusConfig) -> str | None:
    with VideoReader(path) as reader:
        info = reader.info
        found = (info.num_frames, info.width, info.height, info.fps, info.has_audio)
        expected = (clip["num_frames"], config.size, config.size, float(config.fps), True)
        if found != expected:
            return (f"{info.num_frames} frames of {info.width}x{info.height} at {info.fps:g} fps"
                    f"{'' if info.has_audio else ', no sound'}; expected {clip['num_frames']} of "
                    f"{config.size}x{config.size} at {config.fps} fps with sound")
        reader.read(info.num_frames - 1, info.num_frames)     # its last frame's data is there
    return None


def damaged_files(paths: dict[str, Path], clip: dict, config: ToyCorpusConfig) -> dict[str, str]:
    """``{file: why}`` for each file of a clip that is not what ``_write_clip`` writes: missing, cut
    short, unreadable or holding other content (empty: the clip is finished).

    ``paths``: ``_clip_paths``'s; ``clip``: ``make_clip``'s (what the files must hold). The wav's
    samples, the npz arrays and the events are compared with ``clip``; the video (the one file that
    is costly to make again) is probed (frame count, size, rate, sound) and its last frame decoded.
    """
    checks = {"audio": lambda path: _audio_problem(path, clip),
              "motion": lambda path: _arrays_problem(path, _motion_arrays(clip, config.fps)),
              "keypoints": lambda path: _arrays_problem(path, {"keypoints": clip["keypoints"]}),
              "events": lambda path: None if read_json(path) == json.loads(json.dumps(clip["events"]))
              else "other events",
              "video": lambda path: _video_problem(path, clip, config)}
    damaged = {}
    for name in CLIP_FILES:
        path = paths[name]
        if not path.is_file():
            damaged[name] = "missing"
            continue
        try:
            problem = checks[name](path)
        except _READ_ERRORS as error:
            problem = f"unreadable ({error})"
        if problem:
            damaged[name] = problem
    return damaged


def corpus_card(config: ToyCorpusConfig, identities: list[Identity]) -> dict:
    return {"version": CORPUS_VERSION, "config": asdict(config),
            "joint_names": list(body.POSED_JOINT_NAMES), "expression_dim": body.EXPRESSION_DIM,
            "expression_rendered": {"0": "mouth open", "1": "brow raise", "2": "smile", "3": "eye closure"},
            "audio_sample_rate": SAMPLE_RATE,
            "identities": [identity.describe() for identity in identities]}


def generate_toy_corpus(out_dir: str | Path, config: ToyCorpusConfig = ToyCorpusConfig(),
                        progress: bool = True) -> Path:
    """Write the toy corpus to ``out_dir`` and return the path of its manifest.

    Resumes an interrupted run of the same configuration: a clip's files already there are kept
    when they hold what this run would write, and written again when missing, cut short or
    different (``damaged_files``). Refuses (``FileExistsError``) a folder that holds a corpus made
    with another configuration, a folder whose corpus card is unreadable, or a non-empty folder
    without a card.
    """
    out_dir = Path(out_dir)
    identities = make_identities(config.identities, config.seed)
    card = corpus_card(config, identities)
    card_path = out_dir / CARD_NAME
    if card_path.exists():
        try:
            existing = read_json(card_path)
        except (BoundedReadError, OSError) as error:
            raise FileExistsError(f"{out_dir} holds a damaged toy corpus card ({error}): the settings its clips "
                                  "were made with are unknown; delete the folder, or choose another --out") from None
        if existing != json.loads(json.dumps(card)):
            raise FileExistsError(f"{out_dir} holds a toy corpus made with other settings "
                                  f"({card_path}); choose another --out or delete it")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty and holds no toy corpus; choose another --out")
    write_json_atomic(card_path, card)

    records = []
    jobs = [(i, identity, c) for i, identity in enumerate(identities) for c in range(config.clips)]
    for i, identity, c in tqdm(jobs, desc="toy corpus", unit="clip", disable=not progress):
        clip_id = f"{identity.name}_{c:03d}"
        split = "test" if c >= config.clips - config.test_clips else "train"
        paths = _clip_paths(out_dir, identity.name, clip_id)
        clip = make_clip(identity, i, c, config)  # cheap; also what the files must hold when resuming
        damaged = damaged_files(paths, clip, config)
        if damaged:
            redone = {name: why for name, why in damaged.items() if why != "missing"}
            if redone:
                logger.info("%s/%s: writing again what an earlier run left damaged: %s", identity.name, clip_id,
                            "; ".join(f"{paths[name].name} ({why})" for name, why in redone.items()))
            _write_clip(paths, clip, lambda: FrameRenderer(identity.shape, identity.appearance,
                                                           identity.camera(config.size)),
                        config.fps, tuple(damaged))
        records.append({
            "identity": identity.name, "split": split, "clip_id": clip_id,
            "video": paths["video"], "audio": paths["audio"], "motion": paths["motion"],
            "keypoints": paths["keypoints"], "events": paths["events"],
            "fps": config.fps, "num_frames": clip["num_frames"], "width": config.size, "height": config.size,
        })
    return write_manifest(out_dir, records)
