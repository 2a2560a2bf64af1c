"""``imac-bench run``: every method on every test clip, one protocol, one table.

Plan (settings, data, test clips, methods), generate (each method's missing clips), score (one
evaluator for the run, the real side once: ``bench.scoring``), assemble (``results.json``,
``bench.results``).

A run folder (``--out runs/NAME``)::

    run.json                     what generation depends on (seed, data, config but its metrics and protocol,
                                 methods, each external method's folder or command: ``sources``); a rerun
                                 must match it (the metrics and protocol may change: scores are always
                                 recomputed; an external method's source may change once its videos are deleted)
    data/                        the toy corpus, when no --data is given
    <method>/<identity>/<clip_id>.mp4   generated videos (audio muxed in; controls link the real ones)
    work/<method>/               training outputs, method.json (facts), generation.json (per clip)
    work/vae/, work/fgd_autoencoder/    shared models trained once per run
    cache/                       keypoints and I3D statistics per video content
    results.json                 the typed results (bench.results), written once per run
    metrics.csv, report.md, plots/   made from results.json by ``imac-bench report``

Resumable: every file appears atomically, a clip whose video exists is not generated again (one whose
header no longer reads, or cut short, damaged after the run, is set aside as ``<clip_id>.mp4.damaged``
and made again: ``kept_video``; one whose bytes are not those its record's SHA-256 names, replaced since, is
set aside as ``.changed`` and made, or linked, again: ``same_as_recorded``), model training resumes from its checkpoints, and the shared models are trained once. One run
at a time: the main process holds the folder (``<out>/.lock``) and a second run into it is refused. A
rerun given fewer methods says which rows its ``results.json`` will not have (``run.left_out``). Re-scoring: the
metric selection (``metrics``) and the protocol preset are not part of what a rerun must match, so
a rerun with other metrics or a newer protocol (``imac-bench run --out EXISTING``) reuses every
video and trained model and recomputes the scores under the current protocol; only the protocol
fields the run's own skeleton autoencoder was trained with (``AUTOENCODER_FIELDS``) must match
(else the rerun is refused, naming them: that autoencoder would no longer fit). Each clip's seed is
derived from the run's seed and the clip's name, so a rerun (or a run in another order) draws the
same noise for the same clip.

On a CPU run of one process, the trainings that need nothing of one another (the shared tiny VAE, the
skeleton autoencoder of FGD, IMAC's stage 1, the keypoint motion of S2G and MYA) come first, each on one
torch thread, as many at once as torch has threads (``bench.side_by_side``): their weights do not depend
on the core count.

Several processes (``accelerate launch -m bench run ...``, ``torchrun``, or ``imac-bench run
--processes N`` on one machine; ``metrics.distributed``): the main process writes ``run.json``, the
toy corpus, the trained models and ``results.json``, and trains first (the others then load what it
wrote); the missing clips of each method are dealt out among the processes, each writing its own
videos and its per-clip records (``work/<method>/generation.process-<rank>.json``, merged into
``generation.json`` in clip order by the main process after the method, or on the next run after a
crash); the scoring's per-clip work is shared the same way and gathered in clip order, so
``results.json`` has the values of one process. A rerun with any number of processes continues the
same folder.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench.config import BenchConfig, load_bench_config
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from bench.methods import BUILTIN, CONTROLS, OPTION_SECTIONS, make_method
from bench.methods.base import BenchContext, Method, as_json, made_videos, made_with_changes
from bench.methods.command import CommandMethod, parse_methods_file
from bench.methods.external import ExternalVideoError, GeneratedFolder
from bench.report import control_checks
from bench.results import BenchResults, MethodResult, write_results
from bench.side_by_side import Trained, Training, train_side_by_side
from bench.scoring import (NOISE_FLOOR, NOISE_FLOOR_LABEL, REFERENCE, RunScorer, Scored, check_folder,
                           check_real_clips_writable, paired_differences)
from imac import __version__
from imac.config import config_differences, flat_config, listed
from imac.frames import NonFiniteError
from imac.training.trainer import TrainingFolderError
from metrics.dataset import ClipRecord, Dataset
from metrics.device import processor, resolve_device
from metrics.distributed import SAME_IN_EVERY_PROCESS, SINGLE, Processes, current_processes
from metrics.evaluate import Evaluator, make_extractor
from metrics.fgd_training import train_fgd_autoencoder, training_card
from metrics.io.audio import SAMPLE_RATE
from metrics.io.bounded import read_json
from metrics.io.files import FolderLock, file_sha256, hold_folder, write_json_atomic
from metrics.io.video import chunk_frames, probe_video, write_video
from metrics.pose.extraction import keypoint_cache
from metrics.lipsync import LipSyncSettings
from metrics.lipsync_training import SyncTrainingConfig, train_syncnet_standin
from metrics.syncnet import standin_card_path
from metrics.protocol import Protocol, get_protocol
from metrics.registry import REGISTRY
from metrics.results import produced_by

logger = logging.getLogger(__name__)

BENCH_VERSION = "imac-bench-run-2"


class RunMismatchError(ValueError):
    pass


# The config keys a run's scores depend on but its generation does not: a rerun may change them.
SCORING_ONLY_KEYS = ("name", "metrics", "protocol", "weights", "syncnet_steps")
# The protocol fields the run's skeleton autoencoder (trained on the train split's windows) depends on.
AUTOENCODER_FIELDS = ("skeleton_points", "visibility_threshold", "fps", "window", "stride")


def autoencoder_fields(protocol: Protocol) -> dict[str, Any]:
    """The protocol fields a skeleton autoencoder trained by the run depends on (JSON-ready)."""
    return json.loads(json.dumps({name: getattr(protocol, name) for name in AUTOENCODER_FIELDS}))


def read_run_file(path: Path) -> Any:
    """A JSON file of the run folder through ``metrics.io.bounded.read_json`` (size and nesting
    bounded); ``ValueError`` naming the file when it is not JSON."""
    return read_json(path)


def clip_seed(seed: int, clip: ClipRecord) -> int:
    """A seed per clip from the run's seed and the clip's name (not its position in the run)."""
    return zlib.crc32(f"{seed}/{clip.identity}/{clip.clip_id}".encode()) & 0x7FFFFFFF


def test_clips(data_root: Path, identities: list[str] | None = None) -> list[ClipRecord]:
    """The test clips of a dataset (optionally some speakers only), sorted by (identity, clip_id)."""
    records = Dataset.open(data_root, level="files").select("test", identities, option="--identities")
    return sorted(records, key=lambda r: r.key)


def conform_frames(frames: np.ndarray, clip: ClipRecord) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames at the real clip's size and length: bilinear resize; the last frame repeated or extra
    frames dropped. Returns the frames and what was changed (recorded in generation.json)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{clip.label}: a method must return uint8 frames (F, H, W, 3), got "
                         f"{frames.dtype} {frames.shape}")
    changes: dict[str, Any] = {}
    generated = len(frames)
    if frames.shape[1:3] != (clip.height, clip.width):
        changes["resized_from"] = [int(frames.shape[2]), int(frames.shape[1])]
        # the frames kept, resized a group at a time into the uint8 result, padded in place (float32 of the
        # whole clip at the real size: 16 frames of 2048 x 2048 took 2.8 GB); each frame resizes alone
        kept = min(generated, clip.num_frames)
        resized = np.empty((clip.num_frames, clip.height, clip.width, 3), np.uint8)
        step = chunk_frames(clip.height * clip.width * 3 * 4)          # float32 output within CHUNK_BUDGET
        for start in range(0, kept, step):
            end = min(kept, start + step)
            x = torch.from_numpy(np.ascontiguousarray(frames[start:end])).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(clip.height, clip.width), mode="bilinear", align_corners=False,
                              antialias=True)
            resized[start:end] = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            del x
        if kept < clip.num_frames:
            resized[kept:] = resized[kept - 1]
        frames = resized
    if generated != clip.num_frames:
        changes["frames_generated"] = int(generated)
    if len(frames) > clip.num_frames:
        frames = frames[:clip.num_frames]
    elif len(frames) < clip.num_frames:
        pad = np.repeat(frames[-1:], clip.num_frames - len(frames), axis=0)
        frames = np.concatenate([frames, pad])
    return frames, changes


@dataclass(frozen=True)
class RunSettings:
    """What the user asked for (``imac-bench run``'s options); never changed by the run."""

    methods: list[str]
    out: Path
    data: Path | None = None
    identities: list[str] | None = None
    device: str = "cpu"
    seed: int = 0
    config: BenchConfig | None = None           # None: the packaged ``toy`` config
    generated: dict[str, Path] | None = None
    methods_file: Path | None = None
    skip_missing: bool = False
    progress: bool = True
    custom: dict[str, Callable[[], Method]] | None = None   # your own Method classes: name -> factory
    command: str | None = None                  # the command line, recorded in results.json (None: sys.argv)

    def resume_key(self, config: BenchConfig) -> dict[str, Any]:
        """What must match between a run and its resumption (stored in ``run.json``): what generation
        and the shared models depend on. The metric selection and the protocol are left out (scores
        are recomputed on every run), except the protocol fields of a skeleton autoencoder the run
        trains itself (``autoencoder``)."""
        generation = {k: v for k, v in config.to_dict().items() if k not in SCORING_ONLY_KEYS}
        key = {"data": str(self.data.resolve()) if self.data else None, "seed": self.seed,
               "identities": self.identities, "config": generation}
        if not config.fgd_autoencoder:
            key["autoencoder"] = autoencoder_fields(get_protocol(config.protocol))
        return key


def standin_changes(card_path: Path, training: SyncTrainingConfig, settings: LipSyncSettings) -> list[str]:
    """"key: old -> new" between the SyncNet stand-in whose card is ``card_path`` (``train_syncnet_standin``'s:
    ``training.config``, ``face_settings``) and one trained with ``training`` on faces of ``settings``;
    one line saying so for a card that cannot be read."""
    try:
        card = read_run_file(card_path)
        recorded = {"training": card["training"]["config"], "face_settings": card["face_settings"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{card_path.name}: unreadable ({error})"]
    now = json.loads(json.dumps({"training": asdict(training), "face_settings": asdict(settings)}))
    if not all(isinstance(value, dict) for value in recorded.values()):
        return [f"{card_path.name}: not a stand-in's card"]
    return config_differences(flat_config(recorded), flat_config(now))


def card_changes(card: Any, expected: dict[str, dict[str, Any]]) -> list[str]:
    """"section.key: saved -> expected" for each entry of ``expected`` (``metrics.fgd_training.training_card``)
    that the saved ``config.json`` content ``card`` lacks or holds with another value (its other entries do
    not count). ValueError when ``card`` is not a mapping of mappings."""
    if not isinstance(card, dict) or not all(isinstance(card.get(section), dict) for section in expected):
        raise ValueError(f"not a skeleton autoencoder's config.json (no {' and '.join(expected)} mappings)")
    saved = {section: {key: card[section][key] for key in values if key in card[section]}
             for section, values in expected.items()}
    return config_differences(flat_config(saved), flat_config(expected))


def vae_training_changes(card: Any, training: dict[str, Any]) -> list[str]:
    """"key: old -> new" for the settings of ``training`` (``train_autoencoder``'s keywords) that a tiny
    VAE's card (``training.json``) records otherwise. The card keeps ``resolution`` and ``steps`` at its
    top level and the rest under ``settings``, as JSON (tuples as lists); a setting it lacks counts as
    changed, what it records beyond ``training`` (device, threads, processes) does not count.
    ValueError when the card has no ``settings`` mapping."""
    if not isinstance(card, dict) or not isinstance(card.get("settings"), dict):
        raise ValueError("not a VAE training card: no 'settings' mapping")
    recorded = {**card["settings"], **{key: card[key] for key in ("resolution", "steps") if key in card}}
    now = json.loads(json.dumps(training))
    return config_differences(flat_config({key: recorded[key] for key in now if key in recorded}), flat_config(now))


class SharedModels:
    """The models every method and metric of a run shares, each made once, when first needed: the
    pose extractor, the tiny VAE (imac's tiny config and mya) and the skeleton autoencoder of
    FGD/Diversity. Training times go to ``timings``."""

    def __init__(self, out: Path, data: Path, config: BenchConfig, protocol: Protocol, device: str, seed: int,
                 progress: bool, processes: Processes = SINGLE) -> None:
        self.out, self.data, self.config, self.protocol = out, data, config, protocol
        self.device, self.seed, self.progress = device, seed, progress
        self.processes = processes
        self.together = False        # set while every process runs a method's prepare at once (``generate``)
        self.timings: dict[str, float] = {}
        self.trained_beside: dict[str, Trained] = {}    # by folder: what ``train_beside_first`` trained
        self._pose = None
        self.vae_card = out / "work" / "vae" / "training.json"     # written last: the tiny VAE is finished

    def pose_extractor(self):
        if self._pose is None:
            self._pose = make_extractor(self.config.extractor, self.config.dwpose_detector, self.config.dwpose_pose,
                                        self.device)
        return self._pose

    def vae(self) -> Path:
        """The tiny VAE of the run (trained once, on the train split). Called from a method's ``prepare``,
        which the main process of a launch runs first (``generate``): it trains, the others load; or,
        for a method whose processes prepare together, trained by all of them data-parallel, written by the main one.
        One trained earlier with other settings than ``vae_training()`` is refused (``check_vae``)."""
        folder = self.vae_card.parent
        processes = self.processes if self.together else SINGLE   # (otherwise only one process is here)
        if processes.broadcast(self.vae_card.is_file()):
            self.check_vae()              # every process reads the same card: all refuse alike
        else:                             # together: data-parallel
            logger.info("training the shared tiny VAE (%d steps)", self.config.vae_steps)
            started = time.perf_counter()
            # imported here: it loads diffusers (and torch._dynamo), which a run of external methods
            # and controls never needs (each launched process of such a run starts seconds sooner)
            from imac.training.autoencoder import train_autoencoder

            train_autoencoder(self.data, folder, **self.vae_training(), device=self.device,
                              progress=self.progress, overwrite=True, processes=processes)
            self.timings["vae"] = round(time.perf_counter() - started, 1)
        return folder

    def vae_side_training(self) -> Training | None:
        """The tiny VAE as a side-by-side training (``bench.side_by_side``), unless trained (its card written)."""
        if self.vae_card.is_file():
            return None
        from imac.training.autoencoder import train_autoencoder     # (diffusers: see ``vae``)

        steps = self.config.vae_steps
        return Training(str(self.vae_card.parent), f"the shared tiny VAE ({steps} steps)", train_autoencoder,
                        {"dataset_root": self.data, "out_dir": self.vae_card.parent, **self.vae_training(),
                         "device": self.device, "progress": False, "overwrite": True})

    def fgd_autoencoder_side_training(self) -> Training | None:
        """The skeleton autoencoder of FGD/Diversity as a side-by-side training, unless the config gives one or
        it is trained (its ``config.json`` written)."""
        folder = self.out / "work" / "fgd_autoencoder"
        if self.config.fgd_autoencoder or (folder / "config.json").is_file():
            return None
        steps = self.config.fgd_autoencoder_steps
        return Training(str(folder), f"the skeleton autoencoder of FGD ({steps} steps)", train_fgd_autoencoder,
                        {"data_dir": self.data, "out_dir": folder, "protocol": self.protocol,
                         "extractor": self.pose_extractor(), "steps": steps, "seed": self.seed,
                         "cache_dir": self.out / "cache", "device": self.device})

    def vae_training(self) -> dict[str, Any]:
        """The settings ``vae`` trains the tiny VAE with (``train_autoencoder``'s keywords but the
        device, progress and processes)."""
        from imac.training.autoencoder import tiny_vae_training     # (diffusers: see ``vae``)

        return {**tiny_vae_training(self.config.vae_resolution), "steps": self.config.vae_steps, "seed": self.seed}

    def check_vae(self) -> None:
        """Refuse (RunMismatchError) a tiny VAE trained earlier in the run folder (``work/vae``) with other
        settings than ``vae_training()``, or whose card cannot be read: IMAC's tiny config and MYA were
        trained on it, and their videos made with it. Trains nothing; a folder without its card (none
        trained, or unfinished) passes."""
        path = self.vae_card
        if not path.is_file():
            return
        advice = "the run's IMAC and MYA were trained and sampled with it: give a new --out to run these settings"
        try:
            changes = vae_training_changes(read_run_file(path), self.vae_training())
        except (OSError, ValueError) as error:     # (the reader's errors name the card already)
            said = str(error).removeprefix(f"{path}: ")
            raise RunMismatchError(f"{path}: cannot compare the shared tiny VAE with this run's settings: "
                                   f"{said}; {advice}") from None
        if changes:
            raise RunMismatchError(f"{path.parent}: the shared tiny VAE was trained with other settings than "
                                   f"this run's ({listed(changes)}); {advice}")

    def syncnet(self) -> Path:
        """The SyncNet stand-in of Sync-C*/Sync-D* when the config gives no ``weights.syncnet``: a
        reduced-width SyncNet of the published layers trained once on the train split's face tracks,
        found with the protocol's lip-sync settings (``metrics.lipsync_training``; on the main process,
        the others wait and load). Its ``.standin.json`` card stars the columns."""
        path = self.out / "work" / "syncnet" / "syncnet_standin.model"
        training = SyncTrainingConfig(steps=self.config.syncnet_steps, seed=self.seed)
        settings = LipSyncSettings.from_protocol(self.protocol)
        stale = None
        if standin_card_path(path).is_file():                                  # the card is written last
            stale = standin_changes(standin_card_path(path), training, settings)
        if not self.processes.broadcast(stale == []):
            if self.processes.is_main:
                if stale:      # scoring-only: another syncnet_steps or protocol re-scores; its stand-in is trained anew
                    logger.info("the SyncNet stand-in of %s was trained otherwise (%s): training it again",
                                path.parent, listed(stale))
                logger.info("training a SyncNet stand-in for Sync-C*/Sync-D* (%d steps; no weights.syncnet given)",
                            self.config.syncnet_steps)
                started = time.perf_counter()
                path.parent.mkdir(parents=True, exist_ok=True)
                report = (lambda message: logger.info("  %s", message)) if self.progress else None
                train_syncnet_standin(self.data, path, training, settings=settings, progress=report)
                self.timings["syncnet"] = round(time.perf_counter() - started, 1)
            self.processes.barrier()
        return path

    def fgd_autoencoder(self) -> Path:
        """The skeleton autoencoder of FGD/Diversity: the config's, else trained once on the train split
        (under several processes: data-parallel on GPUs; on CPUs by the main one while the others wait)."""
        if self.config.fgd_autoencoder:
            return Path(self.config.fgd_autoencoder)
        folder = self.out / "work" / "fgd_autoencoder"
        if self.processes.broadcast((folder / "config.json").is_file()):   # written last: else train again
            self.check_fgd_autoencoder()
        else:
            logger.info("training the skeleton autoencoder for FGD/Diversity (%d steps)",
                        self.config.fgd_autoencoder_steps)
            started = time.perf_counter()
            train_fgd_autoencoder(self.data, folder, self.protocol, self.pose_extractor(),   # GPUs: data-parallel
                                  steps=self.config.fgd_autoencoder_steps, seed=self.seed,
                                  cache_dir=self.out / "cache", processes=self.processes, device=self.device)
            self.timings["fgd_autoencoder"] = round(time.perf_counter() - started, 1)
        return folder

    def check_fgd_autoencoder(self) -> None:
        """Refuse (``RunMismatchError``, naming the entries) the skeleton autoencoder trained earlier in the
        run folder when its ``config.json`` says it was trained otherwise than this version would train it
        (``metrics.fgd_training.training_card``: widths, steps, batch, learning rate, seed, pose extractor):
        every FGD and Diversity of the run would be another autoencoder's than a fresh run's. Nothing to
        check when the config gives one or none was trained yet."""
        folder = self.out / "work" / "fgd_autoencoder"
        path = folder / "config.json"
        if self.config.fgd_autoencoder or not path.is_file():
            return
        expected = training_card(self.protocol, self.config.fgd_autoencoder_steps, self.seed, self.pose_extractor())
        card = read_run_file(path)                  # ValueError naming the file when it is not JSON
        try:
            changes = card_changes(card, expected)
        except ValueError as error:
            raise RunMismatchError(f"{path}: {error}") from None
        if changes:
            raise RunMismatchError(
                f"{folder}: the skeleton autoencoder of FGD/Diversity was trained otherwise than this version trains "
                f"it ({listed(changes)}): delete {folder} to train it again (the run's videos are kept; every FGD "
                "and Diversity is recomputed with it), or use another --out")


@dataclass(frozen=True)
class RunPlan:
    """Everything a run will do, fixed before any method runs: the settings, the data and its test
    clips, the protocol, the methods (unknown names fail here) and the shared models."""

    settings: RunSettings
    config: BenchConfig
    out: Path
    data: Path
    device: str
    protocol: Protocol
    clips: tuple[ClipRecord, ...]
    methods: tuple[Method, ...]
    shared: SharedModels
    processes: Processes = SINGLE
    lock: FolderLock | None = None      # the run folder's, held by the main process (plan_run's hold)
    left_out: tuple[str, ...] = ()       # methods of earlier runs into the folder, with videos, not in this run
    record: dict = field(default_factory=dict)   # the run.json to write once the checks pass (check_run_file)

    @property
    def method_names(self) -> list[str]:
        return [method.name for method in self.methods]

    def release(self) -> None:
        """Let go of the run folder's lock, if held."""
        if self.lock is not None:
            self.lock.release()

    def target(self, method: Method, clip: ClipRecord) -> Path:
        """Where the method's video of ``clip`` goes."""
        return self.out / method.name / clip.identity / f"{clip.clip_id}.mp4"

    def context(self, method: Method) -> BenchContext:
        section = OPTION_SECTIONS.get(method.name, method.name)
        return BenchContext(data_root=self.data, work_dir=self.out / "work" / method.name,
                            device=self.device, seed=self.settings.seed,
                            options=dict(self.config.methods.get(section, {})),
                            identities=tuple(self.settings.identities) if self.settings.identities else None,
                            test_clips=self.clips, progress=self.settings.progress,
                            pose_extractor=self.shared.pose_extractor(),
                            keypoint_cache=keypoint_cache(self.out / "cache", self.shared.pose_extractor().extractor_id,
                                                          self.protocol.version),
                            shared_vae=self.shared.vae,
                            check_shared_vae=self.shared.check_vae,
                            shared_vae_resolution=self.config.vae_resolution,
                            trained_beside=self.shared.trained_beside,
                            processes=self.processes if method.prepares_together else SINGLE)


# -- plan ------------------------------------------------------------------------------------------


# What to do with a run.json that does not read (its key cannot be compared with this run's settings).
RUN_FILE_ADVICE = ("it records what the folder's videos and models were made with; put it back, or delete the folder "
                   "to start again (or delete run.json alone to go on with this run's settings, if they are the ones "
                   "the folder was made with)")


def previous_key(previous: dict, path: Path) -> dict[str, Any]:
    """The resume key a ``run.json`` holds, in this version's form: the config without its scoring-only
    keys, and the autoencoder's protocol fields (a run.json of an earlier version has none: they are
    those of its protocol preset, whose skeleton fields have not changed since)."""
    if not isinstance(previous, dict):
        raise RunMismatchError(f"{path}: not a JSON object: {RUN_FILE_ADVICE}")
    config = previous.get("config")
    key = {name: previous.get(name) for name in ("data", "seed", "identities")}
    key["config"] = ({k: v for k, v in config.items() if k not in SCORING_ONLY_KEYS}
                     if isinstance(config, dict) else config)
    if "autoencoder" in previous:
        key["autoencoder"] = previous["autoencoder"]
    elif isinstance(config, dict) and not config.get("fgd_autoencoder"):
        try:
            key["autoencoder"] = autoencoder_fields(get_protocol(str(config.get("protocol", "imac-bench"))))
        except ValueError as error:
            raise RunMismatchError(f"{path}: config.protocol: {error}") from None
    return key


def check_sources(out: Path, recorded: dict[str, Any], sources: dict[str, dict]) -> dict[str, Any]:
    """The external methods' sources to record in ``run.json``: ``recorded`` (the previous run's) with
    ``sources`` (this run's, name -> folder or command). A method whose source changed while the run
    holds videos made from the old one is refused: generating only its missing clips would mix the two
    sources in one row, and making them all again would replace finished videos (hours of a command's
    work) on what may be a typo; the message says how to proceed. A folder of an earlier version, whose
    run.json has no sources, is compared with the method's facts (``work/<name>/method.json``)."""
    if not isinstance(recorded, dict):
        raise RunMismatchError(f"{out / 'run.json'}: sources: not a mapping: {RUN_FILE_ADVICE}")
    recorded = dict(recorded)
    for name, source in sources.items():
        old, facts_path = recorded.get(name), out / "work" / name / "method.json"
        if old is None and facts_path.is_file():
            facts = read_run_file(facts_path)
            old = {key: facts.get(key) for key in source} if isinstance(facts, dict) else facts
        if old not in (None, source) and any((out / name).glob("*/*.mp4")):
            raise RunMismatchError(
                f"{out / name} holds videos of {name} made from {_said(old)}, now {_said(source)}: use another --out "
                f"or another method name, or delete {out / name} to make them again from the new one")
        recorded[name] = source
    return recorded


def _said(source: Any) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in source.items()) if isinstance(source, dict) else repr(source)


def check_run_file(out: Path, settings: RunSettings, config: BenchConfig,
                   sources: dict[str, dict] | None = None, hold: bool = False) -> tuple[FolderLock | None, dict]:
    """Refuse a folder made with settings that change generation or the run's trained models, or whose
    videos of an external method came from another folder or command (``check_sources``); return the
    ``run.json`` that records this run's settings, metrics, methods and sources (``write_run_file`` writes
    it once every check of the run has passed: a refused run leaves no settings that would refuse its
    corrected command). Another metric selection or protocol is accepted: the videos and models are
    reused and the scores recomputed.

    ``hold``: lock the folder (``metrics.io.files.hold_folder``; made if new), and return the lock with
    the record: ``FolderBusyError`` when another run works in it."""
    path = out / "run.json"
    key = json.loads(json.dumps(settings.resume_key(config)))
    methods = list(settings.methods)
    previous: Any = {}
    if path.is_file():
        try:
            previous = read_run_file(path)
        except ValueError as error:
            raise RunMismatchError(f"{error}: {RUN_FILE_ADVICE}") from None
        old = previous_key(previous, path)
        for name, value in key.items():
            if old.get(name) != value:
                if name == "autoencoder":
                    fields = [f for f in AUTOENCODER_FIELDS if (old.get(name) or {}).get(f) != value.get(f)]
                    raise RunMismatchError(
                        f"{out} holds a skeleton autoencoder trained with other protocol fields ({', '.join(fields)}): "
                        "use another --out, or delete work/fgd_autoencoder and run.json's autoencoder entry to "
                        "train it again")
                said = f"{old.get(name)!r}, now {value!r}"
                if name == "config" and isinstance(old.get(name), dict):     # the keys, not two whole configs
                    said = listed(config_differences(flat_config(old[name]), flat_config(value)))
                raise RunMismatchError(f"{out} holds a run with another {name} ({said}): "
                                       "use another --out, or delete the folder to start again")
        earlier = previous.get("methods", [])
        if not isinstance(earlier, list) or not all(isinstance(name, str) for name in earlier):
            raise RunMismatchError(f"{path}: methods: not a list of names: {RUN_FILE_ADVICE}")
        methods = list(dict.fromkeys(earlier + methods))
    recorded = check_sources(out, previous.get("sources", {}), json.loads(json.dumps(sources or {})))
    lock = hold_folder(out, "imac-bench run") if hold else None
    out.mkdir(parents=True, exist_ok=True)
    scoring = {"metrics": list(config.metrics), "protocol": config.protocol}
    return lock, {**key, "scoring": scoring, "methods": methods, "sources": recorded, "bench_version": BENCH_VERSION}


def write_run_file(plan: RunPlan) -> None:
    """Record the run's settings in ``plan.out/run.json`` (``check_run_file``'s record): what a later run
    into the folder is compared with. Written by the main process once the run's checks have passed."""
    if plan.processes.is_main and plan.record:
        write_json_atomic(plan.out / "run.json", plan.record)


def data_root(settings: RunSettings, out: Path) -> Path:
    """The dataset folder of the run: ``--data``, else ``out/data`` (the toy corpus)."""
    return Path(settings.data) if settings.data is not None else out / "data"


def run_device(name: str, processes: Processes) -> str:
    """The device of this process: ``resolve_device(name)``; a plain ``cuda`` under several processes is
    the process's own GPU (``cuda:<local rank>``)."""
    device = resolve_device(name)
    if processes.distributed and device == "cuda":
        return f"cuda:{processes.local_rank}"
    return device


def prepare_data(settings: RunSettings, config: BenchConfig, out: Path) -> Path:
    """The dataset of the run: ``--data``, else the toy corpus generated (once) in ``out/data``."""
    if settings.data is not None:
        return Path(settings.data)
    corpus = config.corpus
    root = out / "data"
    if not (root / "manifest.jsonl").is_file():
        logger.info("generating the toy corpus (%d identities x %d clips, %d px) in %s",
                    corpus.identities, corpus.clips, corpus.size, root)
    generate_toy_corpus(root, ToyCorpusConfig(seed=corpus.seed, identities=corpus.identities, clips=corpus.clips,
                                              test_clips=corpus.test_clips, size=corpus.size),
                        progress=False)
    return root


def external_factories(settings: RunSettings) -> dict[str, Callable[[], Method]]:
    """Factories of the run's own methods: ``custom``, ``--generated`` folders, the methods file."""
    factories: dict[str, Callable[[], Method]] = dict(settings.custom or {})
    for name, folder in (settings.generated or {}).items():
        factories[name] = lambda name=name, folder=folder: GeneratedFolder(name, folder)
    if settings.methods_file:
        for name, spec in parse_methods_file(settings.methods_file).items():
            if name in (settings.generated or {}):
                raise ValueError(f"--generated {name}={settings.generated[name]}: {name} is also a method of "
                                 f"--methods-file {settings.methods_file}; give one of them another name")
            factories[name] = lambda spec=spec: CommandMethod(spec)
    return factories


def method_names(settings: RunSettings) -> list[str]:
    """The methods asked for, then the controls (which every run has)."""
    generated = settings.generated or {}
    for name, folder in generated.items():
        if name in settings.methods:      # the folder's videos would silently replace the method's
            raise ValueError(f"--generated {name}={folder}: {name} is also in --methods; give the external videos "
                             f"another name (e.g. --generated {name}-external={folder}) to compare both")
        if name in BUILTIN and name not in CONTROLS:   # (controls: said below) a built-in method's name
            raise ValueError(f"--generated {name}={folder}: {name} is a built-in method's name; give the external "
                             f"videos another name (e.g. --generated {name}-external={folder})")
    for option, given in (("--methods", settings.methods), ("--generated", list(generated))):
        clash = [n for n in given if n in CONTROLS or n == NOISE_FLOOR]
        if clash:
            raise ValueError(f"{option}: {', '.join(clash)}: the controls run on every run and keep their names; "
                             f"do not name them in {option}")
    return list(dict.fromkeys(settings.methods + list(generated))) + list(CONTROLS)


def check_config_paths(config: BenchConfig) -> None:
    """Every weight file or folder the bench config names exists, whether or not a selected metric reads
    it (a mistyped path is named before any work, not ignored): ``FileNotFoundError`` naming each key."""
    given = [("i3d", config.i3d), ("fgd_autoencoder", config.fgd_autoencoder),
             ("dwpose_detector", config.dwpose_detector), ("dwpose_pose", config.dwpose_pose),
             *((f"weights: {name}", path) for name, path in config.weights.items())]
    missing = [f"{key}: {path}" for key, path in given if path is not None and not Path(path).exists()]
    if missing:
        raise FileNotFoundError(f"bench config ({config.name}): no such file or folder: {'; '.join(missing)}")


def plan_run(settings: RunSettings, processes: Processes = SINGLE, hold: bool = False) -> RunPlan:
    """Check the config's paths and the run folder, make the data, find the test clips (at least 2: the
    shuffled-audio control pairs each with another's speech) and build every method (the folder and the
    data by the main process, before the others read them).

    ``hold``: the main process locks the run folder (``plan.lock``; release it with ``plan.release()``):
    ``FolderBusyError`` when another run works in it."""
    config = settings.config or load_bench_config("toy")
    out = Path(settings.out)
    protocol = get_protocol(config.protocol)
    lock, record = None, {}
    with processes.main_first():                     # a refusal is the main process's: one line, not one each
        check_config_paths(config)
        factories = external_factories(settings)
        methods = tuple(make_method(name, factories) for name in method_names(settings))  # unknown names fail here
        every_problem(method.check_inputs for method in methods)   # e.g. a --generated folder that is
        if settings.data is not None:     # a bad --data or --identities is named before the run folder's state
            run_clips(Path(settings.data), settings.identities)
        if processes.is_main:                                       # not there, before the run folder is made
            lock, record = check_run_file(out, settings, config,
                                          {m.name: m.source for m in methods if hasattr(m, "source")}, hold)
    try:
        return _plan(settings, processes, config, out, protocol, methods, lock, record)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _plan(settings: RunSettings, processes: Processes, config: BenchConfig, out: Path, protocol: Protocol,
          methods: tuple[Method, ...], lock: FolderLock | None, record: dict) -> RunPlan:
    """``plan_run`` once the run folder is checked (and held): the data, the test clips, the shared models."""
    with processes.main_first():
        if processes.is_main:
            prepare_data(settings, config, out)
        data = data_root(settings, out)
        clips = run_clips(data, settings.identities)
    device = run_device(settings.device, processes)
    shared = SharedModels(out, data, config, protocol, device, settings.seed, settings.progress, processes)
    return RunPlan(settings=settings, config=config, out=out, data=data, device=device, protocol=protocol,
                   clips=tuple(clips), methods=methods, shared=shared, processes=processes, lock=lock,
                   left_out=methods_left_out(out, [m.name for m in methods]), record=record)


def run_clips(data: Path, identities: list[str] | None) -> list[ClipRecord]:
    """The test clips of the run (``test_clips``): ``ValueError`` when fewer than 2 (the shuffled-audio
    control gives each test video another clip's speech)."""
    clips = test_clips(data, identities)
    if len(clips) < 2:
        raise ValueError(f"{data}: {len(clips)} test clip(s)" + (f" of {', '.join(identities)}" if identities
                         else "") + "; a run needs at least 2 (the shuffled-audio control gives each test video "
                         "another clip's speech)")
    return clips


def methods_left_out(out: Path, names: list[str]) -> tuple[str, ...]:
    """The methods that ``run.json`` lists (every run into the folder adds its own) and whose videos are in
    the folder, but that are not among ``names``: a rerun with fewer ``--methods`` scores only its own,
    and its ``results.json`` replaces the one that had their rows (their videos and models are kept)."""
    try:
        run = read_run_file(out / "run.json")
        recorded = list(run.get("methods") or []) + list(run.get("sources") or {})
    except (OSError, ValueError, AttributeError, TypeError):
        return ()
    return tuple(name for name in dict.fromkeys(recorded) if isinstance(name, str) and name not in names
                 and any((out / name).glob("*/*.mp4")))


# -- generate --------------------------------------------------------------------------------------


PART_RECORDS = "generation.process-*.json"   # a process's per-clip records while several generate


def merge_part_records(work: Path, generation: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """``generation`` with the records of the processes' part files in ``work`` (left by a run of
    several processes that stopped before merging them) added in the order of ``labels``."""
    parts: dict[str, Any] = {}
    for path in sorted(work.glob(PART_RECORDS)):
        try:
            parts.update(read_run_file(path))
        except (OSError, ValueError) as error:   # a part file is written atomically; say so if not
            logger.warning("%s: unreadable, its clips' records are lost (%s)", path, error)
    merged = dict(generation)
    merged.update({label: parts[label] for label in labels if label in parts})
    return merged


def read_generation(path: Path) -> dict[str, Any]:
    """A method's ``generation.json`` (its per-clip records); {} when there is none. ``RunMismatchError``
    naming the file, and saying what deleting it costs, when it is not a JSON object."""
    if not path.is_file():
        return {}
    advice = ("it holds the per-clip records of the videos beside it (seed, seconds, what was changed to fit, "
              "the clips skipped); delete it to go on: the videos are kept and their records lost")
    try:
        generation = read_run_file(path)
    except ValueError as error:
        raise RunMismatchError(f"{error}: {advice}") from None
    if not isinstance(generation, dict):
        raise RunMismatchError(f"{path}: not a JSON object: {advice}")
    odd = next((label for label, record in generation.items() if not isinstance(record, dict)), None)
    if odd is not None:
        raise RunMismatchError(f"{path}: {odd}: not a record (a JSON object): {advice}")
    return generation


DAMAGED_SUFFIX = ".damaged"


def same_as_recorded(method: str, path: Path, generation: dict, label: str) -> bool:
    """Whether the kept video at ``path`` holds the bytes its record says were made (``sha256``; True when
    none is recorded, or no video is there). A video replaced since (a ``--generated`` folder's file copied
    over, a file of the run folder swapped by hand) is made again, with a warning naming both hashes: a file
    of the run folder is set aside first (``<name>.mp4.changed``); a link to a ``--generated`` folder's file is
    removed and made again (the folder's new bytes, recorded; that file is not touched). Before, the new
    bytes were scored under the old record, which named content that no longer produced the numbers."""
    recorded = (generation.get(label) or {}).get("sha256")
    if not recorded or not path.is_file():
        return True
    now = file_sha256(path)
    if now == recorded:
        return True
    if path.is_symlink():
        path.unlink()
        aside = None
    else:
        aside = damaged_name(path, ".changed")
        os.replace(path, aside)
    logger.warning("%s, %s: the video is not the one recorded (sha256 %s..., now %s...): replaced since it was "
                   "made; %s", method, label, recorded[:12], now[:12],
                   f"making it again (the replaced file is now {aside.name})" if aside else
                   "linking it again, to be scored and recorded as it is now (the link to it was removed; the file "
                   "itself is left as it is)")
    generation.pop(label, None)
    return False


def record_hashes(target: dict[str, Path], generation: dict, missing: list[str]) -> bool:
    """Record the SHA-256 of each kept video whose record has none (made by an earlier version), so that a
    later replacement is seen (``same_as_recorded``); whether any record changed."""
    added = False
    for label, path in target.items():
        record = generation.get(label)
        if label in missing or not isinstance(record, dict) or "sha256" in record or "skipped" in record:
            continue
        if path.is_file():
            record["sha256"] = file_sha256(path)
            added = True
    return added


def kept_video(path: Path, frames: int | None = None) -> bool:
    """Whether the run keeps the video at ``path`` (else it is made again): False when there is none, when
    its header does not read, or (``frames``: the count the run wrote it with) when it holds fewer frames.
    Every video of the run appears whole (atomically), so such a file was damaged afterwards (a copy cut
    short, a disk error). A link (to a ``--generated`` folder's video) is removed and made again, naming
    what it links to; a file is renamed ``<name>.mp4.damaged`` (``.damaged-2``, ... when one is there),
    not deleted (a command's video may have taken hours). A warning says which."""
    if not path.is_file():
        return False
    try:
        found = probe_video(path).num_frames
        if frames is None or found >= frames:
            return True
        problem = f"{path}: {found} frames, fewer than the {frames} it was written with: cut short"
    except (ValueError, OSError) as error:
        problem = str(error) if str(path) in str(error) else f"{path}: {error}"
    if path.is_symlink():
        logger.warning("%s (a link to %s, which does not read as the run made it); linking it again", problem,
                       os.readlink(path))
        path.unlink()
        return False
    aside = damaged_name(path)
    os.replace(path, aside)
    logger.warning("%s: damaged after it was made; making it again (the damaged file is now %s)", problem, aside.name)
    return False


def damaged_name(path: Path, suffix: str = DAMAGED_SUFFIX) -> Path:
    """A free name to set a damaged ``path`` aside as: ``<name>.damaged``, else ``<name>.damaged-2``, ...
    (``suffix``: another word, ``.changed``)."""
    aside, number = path.with_name(path.name + suffix), 1
    while aside.exists() or aside.is_symlink():
        number += 1
        aside = path.with_name(f"{path.name}{suffix}-{number}")
    return aside


def generate(plan: RunPlan, method: Method) -> dict[str, Any]:
    """Prepare the method (if a clip is missing) and write every missing clip; returns its record.

    Under several processes (``plan.processes``) the missing clips are dealt out among them; the
    main process prepares first (trains, writes the facts) and merges the per-clip records."""
    processes = plan.processes
    work = plan.out / "work" / method.name
    facts_path, generation_path = work / "method.json", work / "generation.json"
    target = {clip.label: plan.target(method, clip) for clip in plan.clips}
    labels = [clip.label for clip in plan.clips]
    missing_labels = None
    with processes.main_first():                              # its refusal of generation.json, told to all
        if processes.is_main:
            generation = read_generation(generation_path)
            if work.is_dir() and any(work.glob(PART_RECORDS)):
                generation = merge_part_records(work, generation, labels)
                write_json_atomic(generation_path, generation)
                for path in work.glob(PART_RECORDS):
                    path.unlink()
            # (a method returning frames has them conformed to its clip's count; one writing files, its own)
            missing_labels = [clip.label for clip in plan.clips if not kept_video(
                target[clip.label], None if method.writes_files else clip.num_frames)
                or not same_as_recorded(method.name, target[clip.label], generation, clip.label)]
            if record_hashes(target, generation, missing_labels):
                write_json_atomic(generation_path, generation)
    missing_labels = processes.broadcast(missing_labels)     # one view of what is missing, the main one
    missing = [clip for clip in plan.clips if clip.label in set(missing_labels)]
    mine = processes.shard(missing)
    if not processes.is_main:
        generation = {}
    facts = read_method_facts(facts_path)
    # videos made before any setting was recorded (an earlier version's folder): what the missing ones are
    # made with now cannot be compared with theirs, so none is recorded and every rerun says so
    unchecked = "made_with" not in facts and any(target[label].is_file() for label in labels)
    part_path = work / f"generation.process-{processes.rank}.json" if processes.distributed else generation_path
    new: dict[str, Any] = {}
    if missing:
        started = time.perf_counter()
        together = processes.distributed and method.prepares_together
        # the main process trains, then the others load; or all prepare at once (an accelerate trainer)
        with (SINGLE if together else processes).main_first():
            if mine or together:
                context = plan.context(method)
                work.mkdir(parents=True, exist_ok=True)
                plan.shared.together = together
                try:
                    facts = method.prepare(context) or {}
                finally:
                    plan.shared.together = False
                made_with = as_json(method.made_with(context))
                if made_with and not unchecked:   # what check_made_with compares when the folder is reused
                    facts["made_with"] = made_with
                facts["prepare_seconds"] = round(time.perf_counter() - started, 1)
                if processes.is_main:
                    write_json_atomic(facts_path, facts)
        bar = tqdm(mine, desc=f"{method.name}: generating", unit="clip", disable=not plan.settings.progress,
                   position=processes.rank if processes.distributed else None)
        for clip in bar:
            out = target[clip.label]
            seed = clip_seed(plan.settings.seed, clip)
            started = time.perf_counter()
            try:
                if method.writes_files:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    record = method.write(clip, out, seed) or {}
                else:
                    frames, record = conform_frames(method.generate(clip, seed), clip)
                    write_video(out, frames, clip.fps, audio=clip.load_audio(), sample_rate=SAMPLE_RATE)
            except NonFiniteError as error:       # say which clip (the finished ones are kept)
                raise NonFiniteError(f"{method.name}, clip {clip.label} (seed {seed}): {error}") from None
            except ExternalVideoError as error:
                if not plan.settings.skip_missing:
                    raise
                record = {"skipped": str(error)}
                logger.warning("skipped %s %s: %s", method.name, clip.label, error)
            record.update({**({"seed": seed} if method.uses_seed else {}),
                           "seconds": round(time.perf_counter() - started, 2)})
            if "skipped" not in record and "sha256" not in record and out.is_file():   # the bytes scored (a
                record["sha256"] = file_sha256(out)     # --generated folder's write() hashed its source, linked here)
            if processes.distributed:
                new[clip.label] = record
                write_json_atomic(part_path, new)
            else:
                generation[clip.label] = record
                write_json_atomic(generation_path, generation)
    if processes.distributed and missing:
        shares = processes.gather_lists(list(new.items()))
        if processes.is_main:
            gathered = dict(item for share in shares for item in share)
            generation.update({label: gathered[label] for label in labels if label in gathered})
            write_json_atomic(generation_path, generation)
        processes.barrier()                                   # merged: the part files can go
        if part_path.is_file():
            part_path.unlink()
    skipped = {label: r["skipped"] for label, r in generation.items() if "skipped" in r
               and not target[label].is_file()}
    return {"name": method.name, "label": method.label, "kind": method.kind, "facts": facts,
            "generation": generation, "skipped": skipped}


def side_trainings(plan: RunPlan) -> list[Training]:
    """What ``train_beside_first`` trains, in this order: the shared tiny VAE when a method with a clip to
    make uses it (``Method.needs_shared_vae``), the skeleton autoencoder of FGD/Diversity when the run scores
    them, then those methods' own side trainings (``Method.side_trainings``); each unless trained. None on
    a GPU or under several processes (each trains in place, as before)."""
    if resolve_device(plan.device) != "cpu" or plan.processes.distributed:
        return []
    vae_folder = plan.shared.vae_card.parent
    pending = [m for m in plan.methods if any(not plan.target(m, clip).is_file() for clip in plan.clips)]
    # the VAE's folder without training it (a method's stage-1 config names it; that stage does not read it)
    contexts = [(m, replace(plan.context(m), shared_vae=lambda: vae_folder)) for m in pending]
    trainings: list[Training | None] = []
    if any(method.needs_shared_vae(context) for method, context in contexts):
        plan.shared.check_vae()          # one trained otherwise is refused before anything trains
        trainings.append(plan.shared.vae_side_training())
    if any(m in plan.config.metrics for m in ("fgd", "div")):
        trainings.append(plan.shared.fgd_autoencoder_side_training())
    for method, context in contexts:
        trainings += method.side_trainings(context)
    return [t for t in trainings if t is not None]


def train_beside_first(plan: RunPlan) -> None:
    """Train ``side_trainings`` on one torch thread each, as many at once as torch has threads
    (``bench.side_by_side``); their results go to ``plan.shared.trained_beside`` and the phase's wall time
    to the timings (``side_by_side``)."""
    trainings = side_trainings(plan)
    if not trainings:
        return
    started = time.perf_counter()
    plan.shared.trained_beside.update(train_side_by_side(trainings, torch.get_num_threads()))
    plan.shared.timings["side_by_side"] = round(time.perf_counter() - started, 1)


# -- score ---------------------------------------------------------------------------------------


def make_scorer(plan: RunPlan) -> RunScorer:
    """The run's one evaluator (each network loaded once) and its scorer."""
    metrics = plan.config.metrics
    autoencoder = None
    if any(m in metrics for m in ("fgd", "div")):
        autoencoder = plan.shared.fgd_autoencoder()           # (every process: the main one trains it first)
    weights = dict(plan.config.weights)
    if any(REGISTRY[m].weights == "syncnet" for m in metrics) and "syncnet" not in weights:
        weights["syncnet"] = str(plan.shared.syncnet())      # the stand-in: Sync-C*/Sync-D*
    evaluator = Evaluator.load(metrics, plan.protocol, autoencoder=autoencoder, i3d=plan.config.i3d,
                               extractor=plan.shared.pose_extractor(), device=plan.device,
                               cache_dir=plan.out / "cache", processes=plan.processes, weights=weights)
    progress = (lambda message: logger.info("  %s", message)) if plan.settings.progress else None
    return RunScorer.for_dataset(evaluator, plan.data, plan.clips, plan.out, progress)


def check_method_folders(plan: RunPlan) -> None:
    """Every method's earlier work in the run folder is checked (``Method.check_folder``) before any
    method prepares or generates: a model an earlier method trains now (S2G's keypoint model, which MYA
    shares) must not make a later method's videos of an older model pass, and a refusal must not come
    after another method's training. Every process reads the same files (the main process first, under
    a launch: its refusal is the one told)."""
    for method in plan.methods:
        context = plan.context(method)
        method.check_folder(context)
        check_made_with(method, context)


def check_made_with(method: Method, context: BenchContext) -> None:
    """Refuse a run folder holding the method's videos made with other settings than this run's would
    be (``Method.made_with``, recorded in ``work/<name>/method.json`` when the videos were made); a folder
    of an earlier version, which recorded none, is reused with a warning that it could not be checked."""
    now = method.made_with(context)
    videos = made_videos(context)
    if not now or videos is None:
        return
    facts_path = Path(context.work_dir) / "method.json"
    recorded = read_method_facts(facts_path)
    if "made_with" not in recorded:
        logger.warning("%s: made by a version that did not record its settings; cannot check that they are "
                       "this run's, nor that its missing clips would be made like the others (give a new --out "
                       "to be sure)", videos, extra=SAME_IN_EVERY_PROCESS)
        return
    try:
        made_with = recorded["made_with"]
        changes = made_with_changes(method.recorded_made_with(made_with) if isinstance(made_with, dict) else made_with,
                                    now)
    except ValueError as error:
        raise RunMismatchError(f"{facts_path}: {error}: give a new --out to run these settings") from None
    if changes:
        raise RunMismatchError(f"{videos} holds videos of {method.name} made with other settings than this run's "
                               f"({listed(changes)}, as {facts_path} records them): give a new --out to run "
                               "these settings")


def read_method_facts(path: Path) -> dict[str, Any]:
    """A method's ``method.json`` (what ``prepare`` said, and ``made_with``); {} when there is none.
    ``RunMismatchError`` naming the file when it is not a JSON object."""
    if not path.is_file():
        return {}
    facts = read_run_file(path)
    if not isinstance(facts, dict):
        raise RunMismatchError(f"{path}: not a JSON object: give a new --out, or delete {path.parent} and the "
                               "method's videos to make them again")
    return facts


def check_external_folders(plan: RunPlan) -> None:
    """Videos made elsewhere (``--generated``) are checked against the real clips' headers, and for a
    test clip without one (unless ``--skip-missing``), before anything is trained or generated."""
    checks = []
    for method in plan.methods:
        folder = getattr(method, "folder", None)
        if isinstance(method, GeneratedFolder) and method.folder.is_dir() and not plan.settings.skip_missing:
            checks.append(functools.partial(method.check_complete, plan.clips))
            checks.append(functools.partial(method.check_readable, plan.clips))
        if method.kind == "external" and folder is not None and Path(folder).is_dir():
            checks.append(functools.partial(check_folder, plan.config.metrics, plan.protocol, plan.clips,
                                            method.name, Path(folder)))
    every_problem(checks)


def every_problem(checks: Iterable[Callable[[], None]]) -> None:
    """Run every check; the ValueError of the one that fails, or one ValueError naming each failure
    in turn (``N problems: A; B``), so that a user fixes every input at once, not one per run."""
    problems = []
    for check in checks:
        try:
            check()
        except ValueError as problem:
            problems.append(problem)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ValueError(f"{len(problems)} problems: " + "; ".join(str(problem) for problem in problems))


HINT_KEYS = ("chunk_period", "chunk_offset")    # what a method's facts may state for the metrics


def method_hints(facts: dict) -> dict[str, Any]:
    """What a method's facts state about how its videos were made, for the hook metrics (e.g. its
    chunk period, read by the chunk joins when the protocol takes stated periods)."""
    return {key: facts[key] for key in HINT_KEYS if key in facts}


def own_seconds(elapsed: float, before: dict[str, float], after: dict[str, float]) -> float:
    """A step's own seconds, rounded to 0.1: ``elapsed`` less the seconds that steps timed inside it added to
    the run's timings (``before`` and ``after`` it), e.g. the shared VAE trained when a method first asks
    for it, which ``timings_s`` counts under ``vae`` alone: no second is counted under two steps."""
    nested = sum(value - before.get(key, 0.0) for key, value in after.items())
    return round(max(elapsed - nested, 0.0), 1)


def score_run(plan: RunPlan, records: dict[str, dict], timings: dict[str, float]) -> tuple[RunScorer, dict[str, Scored]]:
    """Every row's scores: the methods, then gt, noise-floor, static and shuffled. Every method's
    headers are checked first, so a mismatch stops the run before any video is decoded. The per-clip
    records are made first (shared among the processes); the rows are scored by the main process
    only (the others get no rows)."""
    scorer = make_scorer(plan)
    scorer.hints = {name: method_hints(record.get("facts") or {}) for name, record in records.items()}
    methods = [name for name in plan.method_names if name not in CONTROLS] + ["static"]
    for name in methods:
        scorer.check_method(name)
    scorer.record_all(methods, timings)
    rows: dict[str, Scored] = {}
    if not plan.processes.is_main:
        return scorer, rows
    jobs = [(name, lambda name=name: scorer.method(name, records[name]["generation"])) for name in methods]
    jobs += [(REFERENCE, scorer.reference_row), (NOISE_FLOOR, scorer.noise_floor), ("shuffled", scorer.shuffled)]
    for name, job in jobs:
        step = time.perf_counter()
        logger.info("scoring %s", name)
        rows[name] = job()
        timings[f"score:{name}"] = round(timings.get(f"score:{name}", 0.0) + time.perf_counter() - step, 1)
    return scorer, rows


# -- the whole run -----------------------------------------------------------------------------------


def run_benchmark(settings: RunSettings, processes: Processes | None = None) -> BenchResults | None:
    """Plan, generate every method's videos, score them, and write ``results.json``; returns it.

    ``processes``: this process's place in a launch (default: ``metrics.distributed.current_processes()``,
    i.e. one process unless started by ``accelerate launch`` / ``torchrun``). Every process of a launch
    calls this with the same settings; the main process writes ``results.json`` and returns it (with the
    values one process gets), the others return None."""
    started = time.perf_counter()
    produced = produced_by(settings.command)
    processes = current_processes() if processes is None else processes
    plan = plan_run(settings, processes, hold=True)
    try:
        return _run(plan, started, produced)
    except TrainingFolderError as error:    # its other way out, another train.output, is --out here
        raise RunMismatchError(f"{error.problem}; {error.remedy}, or use another --out") from None
    finally:
        plan.release()


def _run(plan: RunPlan, started: float, produced: dict) -> BenchResults | None:
    """``run_benchmark`` once planned: check, train, generate, score, assemble."""
    processes = plan.processes
    if plan.left_out and processes.is_main:
        logger.warning("%s also holds videos of %s, which this run was not given: its results.json will have no "
                       "row for %s (the videos and models are kept; give every method again, in --methods, "
                       "--generated or --methods-file, to score them all)", plan.out, ", ".join(plan.left_out),
                       "them" if len(plan.left_out) > 1 else "it")
    with processes.main_first():                        # every process reads the same files: the main refuses
        check_real_clips_writable(plan.config.metrics, plan.protocol, plan.clips)
        check_external_folders(plan)
        check_method_folders(plan)
        if any(m in plan.config.metrics for m in ("fgd", "div")):
            plan.shared.check_fgd_autoencoder()        # before any method works, not after all have
        write_run_file(plan)
    train_beside_first(plan)
    timings = plan.shared.timings
    records = {}
    for method in plan.methods:
        step, shared = time.perf_counter(), dict(timings)
        records[method.name] = generate(plan, method)
        timings[f"generate:{method.name}"] = own_seconds(time.perf_counter() - step, shared, timings)
    scorer, rows = score_run(plan, records, timings)
    results = None
    if processes.is_main:
        step = time.perf_counter()
        paired = paired_differences(scorer, [n for n in plan.method_names if n not in CONTROLS],
                                    {m.name: m.label for m in plan.methods})
        timings["score:paired-differences"] = round(time.perf_counter() - step, 1)
        timings["total"] = round(time.perf_counter() - started, 1)
        results = assemble_results(plan, records, rows, scorer.evaluator.networks(), paired, timings, produced)
        write_results(plan.out / "results.json", results)
    processes.end_together()
    return results


# -- assemble --------------------------------------------------------------------------------------

ROW_ORDER = (REFERENCE, NOISE_FLOOR, "static", "shuffled")


def method_result(name: str, record: dict | None, scored: Scored) -> MethodResult:
    """One row: the generation record (label, kind, facts, per-clip generation) and its scores."""
    if record is None:   # the noise floor: scored, never generated
        record = {"label": NOISE_FLOOR_LABEL, "kind": "control", "facts": {}, "generation": {}, "skipped": {}}
    return MethodResult(name=name, label=record["label"], kind=record["kind"], scores=scored.scores,
                        provenance=scored.provenance, inputs=scored.inputs, facts=record["facts"],
                        generation=record["generation"], skipped=record["skipped"], unscored=scored.unscored, no_body=scored.no_body,
                        note=scored.note)


def assemble_results(plan: RunPlan, records: dict[str, dict], rows: dict[str, Scored], networks: dict,
                     paired: list[dict], timings: dict[str, float], produced: dict | None = None) -> BenchResults:
    """One document with everything the report and the check need (``bench.results``); ``produced``
    (``metrics.results.produced_by``: command line, start time, source revision) goes into its environment."""
    order = [n for n in rows if n not in ROW_ORDER] + [n for n in ROW_ORDER if n in rows]
    methods = {name: method_result(name, records.get(name), rows[name]) for name in order}
    results = BenchResults(
        run={"out": str(plan.out), "data": str(plan.data), "data_given": plan.settings.data is not None,
             "seed": plan.settings.seed,
             "identities": plan.settings.identities, "device": plan.device, "config": plan.config.to_dict(),
             "test_clips": [c.label for c in plan.clips],
             **({"left_out": list(plan.left_out)} if plan.left_out else {})},
        protocol=plan.protocol.to_dict(), protocol_label=plan.protocol.label, metrics=tuple(plan.config.metrics),
        methods=methods, networks=networks, paired=paired, timings_s=timings,
        environment={**(produced or {}), "python": platform.python_version(), "torch": torch.__version__,
                     "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
                     **processor(), "processes": plan.processes.world},
        bench_version=BENCH_VERSION, package_version=__version__)
    results.control_checks = control_checks(results)
    return results
