"""Writing the toy corpus to disk: clips, manifest and the corpus card.

Every clip is generated from its own random stream, seeded by (seed, identity, clip), so a clip
does not depend on how many others are generated, and an interrupted generation resumes by
skipping the clips whose files are all there (each file is written atomically).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from metrics.dataset import write_manifest
from metrics.io.bounded import read_json
from bench.data.toy import body
from bench.data.toy.gestures import generate_motion
from bench.data.toy.identities import Identity, make_identities
from bench.data.toy.render import FrameRenderer
from bench.data.toy.speech import synthesize_speech
from metrics.io.audio import SAMPLE_RATE, write_wav
from metrics.io.files import save_npz_atomic, write_json_atomic
from metrics.io.video import write_video

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


def _clip_paths(out_dir: Path, identity: str, clip_id: str) -> dict[str, Path]:
    stem = out_dir / identity / clip_id
    return {"video": stem.with_suffix(".mp4"), "audio": stem.with_suffix(".wav"),
            "motion": Path(f"{stem}.motion.npz"), "keypoints": Path(f"{stem}.keypoints.npz"),
            "events": Path(f"{stem}.events.json")}


def _write_clip(paths: dict[str, Path], clip: dict, renderer: FrameRenderer, fps: int) -> None:
    write_wav(paths["audio"], clip["audio"], SAMPLE_RATE)
    save_npz_atomic(paths["motion"], pose=clip["pose"], expression=clip["expression"],
                    joint_names=np.array(body.POSED_JOINT_NAMES), fps=np.array(fps))
    save_npz_atomic(paths["keypoints"], keypoints=clip["keypoints"])
    write_json_atomic(paths["events"], clip["events"])
    # The video last: its presence marks a finished clip for resuming.
    write_video(paths["video"], renderer.iter_render(clip["pose"], clip["expression"]), fps,
                audio=clip["audio"], sample_rate=SAMPLE_RATE)


def corpus_card(config: ToyCorpusConfig, identities: list[Identity]) -> dict:
    return {"version": CORPUS_VERSION, "config": asdict(config),
            "joint_names": list(body.POSED_JOINT_NAMES), "expression_dim": body.EXPRESSION_DIM,
            "expression_rendered": {"0": "mouth open", "1": "brow raise", "2": "smile", "3": "eye closure"},
            "audio_sample_rate": SAMPLE_RATE,
            "identities": [identity.describe() for identity in identities]}


def generate_toy_corpus(out_dir: str | Path, config: ToyCorpusConfig = ToyCorpusConfig(),
                        progress: bool = True) -> Path:
    """Write the toy corpus to ``out_dir`` and return the path of its manifest.

    Resumes an interrupted run of the same configuration; refuses a folder that holds a corpus
    made with another configuration.
    """
    out_dir = Path(out_dir)
    identities = make_identities(config.identities, config.seed)
    card = corpus_card(config, identities)
    card_path = out_dir / CARD_NAME
    if card_path.exists():
        existing = read_json(card_path)
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
        clip = make_clip(identity, i, c, config)  # cheap; also gives num_frames when resuming
        if not all(p.exists() for p in paths.values()):
            renderer = FrameRenderer(identity.shape, identity.appearance, identity.camera(config.size))
            _write_clip(paths, clip, renderer, config.fps)
        records.append({
            "identity": identity.name, "split": split, "clip_id": clip_id,
            "video": paths["video"], "audio": paths["audio"], "motion": paths["motion"],
            "keypoints": paths["keypoints"], "events": paths["events"],
            "fps": config.fps, "num_frames": clip["num_frames"], "width": config.size, "height": config.size,
        })
    return write_manifest(out_dir, records)
