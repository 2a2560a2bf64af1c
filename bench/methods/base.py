"""What every benchmarked method is: something that turns (reference image, audio) into a video.

A method is prepared once per run (trained on the dataset's train split, or loaded) and then asked
for one video per test clip. Internal methods return frames and the runner writes them (with the
clip's audio muxed in, atomically); external methods write their own file.

The contract of ``generate``: ``clip.num_frames`` RGB uint8 frames (F, H, W, 3) at ``clip.fps``,
made from ``clip.first_frame()`` (the first frame of the real test video) and ``clip.audio``.
Frames of another size are resized by the runner to the real clip's size (bilinear), and the run
records that it happened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.side_by_side import Training
from imac.config import config_differences, flat_config, listed
from metrics.dataset import ClipRecord, Dataset
from metrics.distributed import SINGLE, Processes
from metrics.io.cache import VideoCache


def reference_keypoints(clip: ClipRecord, extractor=None) -> np.ndarray:
    """COCO-WholeBody keypoints (133, 3) of the clip's reference (first) frame: the dataset's, else
    ``extractor``'s. Raises ``ValueError`` when the dataset has none and no extractor is given."""
    keypoints = clip.load_keypoints()
    if keypoints is not None:
        return keypoints[0]
    if extractor is None:
        raise ValueError(f"{clip.label}: the dataset has no keypoints for this clip and no pose "
                         "extractor was given")
    return np.asarray(extractor(clip.first_frame()[None]), dtype=np.float32)[0]


@dataclass
class BenchContext:
    """What a method may use while it prepares: the data, its own folder, the device, its options."""

    data_root: Path                   # the dataset folder (manifest.jsonl)
    work_dir: Path                    # this method's folder for trained models and caches (resumable)
    device: str = "cpu"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)   # this method's section of the bench config
    identities: tuple[str, ...] | None = None                # restrict training to these speakers
    test_clips: tuple[ClipRecord, ...] = ()                    # every test clip of the run
    progress: bool = True
    pose_extractor: Any = None        # the run's pose extractor (for datasets without keypoints)
    # where what ``pose_extractor`` extracts is cached: the run's keypoint cache, shared with its scoring and
    # the FGD autoencoder's training (``metrics.pose.extraction.keypoint_cache``); None: not cached
    keypoint_cache: VideoCache | None = None
    shared_vae: Callable[[], Path] | None = None   # trains (once per run) or returns the run's tiny VAE
    # refuses (ValueError) a tiny VAE trained earlier in the run folder with other settings than this run's
    # would be; trains nothing (``check_folder`` may call it, never ``shared_vae``)
    check_shared_vae: Callable[[], None] | None = None
    shared_vae_resolution: int | None = None   # the frame size of ``shared_vae`` (the bench config's vae_resolution)
    # The processes preparing together (a method with ``prepares_together`` under a launch): its trainers
    # run data-parallel over them (``metrics.training``) and only the main one writes model folders.
    processes: Processes = SINGLE
    # what the run's side-by-side trainings returned (``bench.side_by_side.Trained``), by their key (the folder
    # each wrote): ``prepare`` finds those folders trained and may report how (steps, seconds, losses)
    trained_beside: dict[str, Any] = field(default_factory=dict)

    def dataset(self) -> Dataset:
        return Dataset.open(self.data_root, level="files")


def check_shared_vae_size(context: BenchContext, resolution: int, method: str, key: str) -> None:
    """Refuse (ValueError) a method whose frames (``resolution`` px, its option ``key``) are not the size
    the run's shared VAE is trained at (``context.shared_vae_resolution``), before anything is trained:
    it would encode them to another latent grid than its network's."""
    size = context.shared_vae_resolution
    if size is not None and resolution != size:
        raise ValueError(f"{method}: {key} is {resolution} px but the run's shared VAE takes {size} px frames "
                         f"(the bench config's vae_resolution): give {key}={size}, or vae_resolution: {resolution}")


def made_videos(context: BenchContext) -> Path | None:
    """The folder of the method's videos in the run folder (``<out>/<name>``; ``context.work_dir`` is
    ``<out>/work/<name>``) when it holds any, else None."""
    work = Path(context.work_dir)
    folder = work.parent.parent / work.name
    return folder if any(folder.glob("*/*.mp4")) else None


def check_model_of_videos(videos: Path, model: str, changes: Callable[[], list[str]]) -> None:
    """Refuse (ValueError) to report or complete ``videos`` when ``changes()`` ("key: old -> new", read
    from the model's saved files) says that ``model``, which made them, is not the model this run would
    use: generating only the missing clips with another model would mix two models' videos in one row.
    A saved file that cannot be read is refused too, naming it."""
    advice = "give a new --out to run these settings"
    try:
        found = changes()
    except (OSError, ValueError) as error:
        raise ValueError(f"{videos} holds videos made with {model}, which cannot be compared with this "
                         f"run's ({error}); {advice}") from None
    if found:
        raise ValueError(f"{videos} holds videos made with {model} of other settings than this run's "
                         f"({listed(found)}); {advice}")


def as_json(value: Any) -> Any:
    """``value`` as JSON gives it back (dataclasses as dicts, tuples as lists, paths as strings)."""
    return json.loads(json.dumps(value, default=lambda v: asdict(v) if hasattr(v, "__dataclass_fields__") else str(v)))


def made_with_changes(recorded: Any, now: dict[str, Any]) -> list[str]:
    """"key: old -> new" (flattened keys) between the settings recorded beside a folder's videos
    (``Method.made_with`` of the run that made them) and this run's. ValueError when ``recorded`` is not
    a mapping."""
    if not isinstance(recorded, dict):
        raise ValueError("made_with: not a mapping")
    return config_differences(flat_config(recorded), flat_config(as_json(now)))


class Method:
    """Base class. ``name`` is the registry key, ``label`` the row name in tables."""

    name: str = ""
    label: str = ""
    kind: str = "model"               # "model" | "control" | "external" | "reference" (gt: the real videos, never scored against themselves)

    def check_inputs(self) -> None:
        """Refuse (ValueError naming the option or file) inputs the method reads that cannot be used (a
        ``--generated`` folder that does not exist); the runner calls it for every method before it
        creates anything in the run folder. Reads nothing of the run; the default: nothing to check."""

    def check_folder(self, context: BenchContext) -> None:
        """Refuse (ValueError, naming what differs) a run folder whose earlier work for this method was
        done with other settings than this run's; the runner calls it for every method before any method
        prepares or generates, whether or not a clip is missing, so that finished results of another
        setting are never reported as this one's."""

    def made_with(self, context: BenchContext) -> dict[str, Any]:
        """What this run would make the method's videos with beyond the explicit keys of the run config
        (which ``run.json`` compares): its options with every default filled in and the models it samples
        with, as JSON-able values; reads files, trains nothing. The runner records it beside the videos
        (``made_with`` in ``work/<name>/method.json``) and refuses a folder whose videos were made with
        other values (``made_with_changes``): a version whose defaults changed must not add its videos to
        an older row, nor report that row as its own. {} (the default): nothing to compare."""
        return {}

    def recorded_made_with(self, recorded: dict[str, Any]) -> dict[str, Any]:
        """``made_with`` as a folder recorded it, read as this version's ``made_with`` would state it: a
        method whose ``made_with`` gained a key that an older version made its videos without overrides
        this to add that key with the value the older version used. Default: ``recorded`` unchanged."""
        return recorded

    def needs_shared_vae(self, context: BenchContext) -> bool:
        """Whether ``prepare`` asks for the run's tiny VAE (``context.shared_vae``); the runner then trains it
        before any method (``bench.runner.train_beside_first``). Default: False."""
        return False

    def side_trainings(self, context: BenchContext) -> list[Training]:
        """Trainings ``prepare`` would do that need nothing of the run but its data (not the shared VAE's
        weights; ``context.shared_vae()`` gives its folder and trains nothing here), each writing its own
        folder as ``prepare`` would: on a CPU run of one process the runner trains them first, on one torch
        thread each and side by side (``bench.side_by_side``), and ``prepare`` finds them trained. Reads
        files, trains nothing. Default: none."""
        return []

    def prepare(self, context: BenchContext) -> dict[str, Any]:
        """Train or load what the method needs (resumable); returns facts for the report."""
        return {}

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        """The generated frames (F, H, W, 3) uint8 for one test clip (internal methods implement this)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither generate() nor write()")

    def write(self, clip: ClipRecord, out: Path, seed: int) -> dict[str, Any] | None:
        """Write the video of one test clip to ``out`` (atomically). Internal methods leave this to
        the runner (which calls ``generate``); external methods that write files override it and set
        ``writes_files``."""
        raise NotImplementedError(f"{type(self).__name__} sets writes_files but does not implement write()")

    writes_files: bool = False        # True when the method overrides ``write``
    uses_seed: bool = True            # False where the clip's seed plays no part (videos made elsewhere):
                                      # generation.json then records none

    # Under a launch of several processes (``accelerate launch -m bench run``, ``--processes N``) the
    # runner calls ``prepare`` on the main process first (it trains and writes the model folder) and then
    # on the others (they load what it wrote). A method whose ``prepare`` is itself an accelerate program
    # (a trainer that every process of the launch must enter together: IMAC's) sets this to True: the
    # runner then calls ``prepare`` on every process at once, and the method writes files from the main
    # process only.
    prepares_together: bool = False
