"""``imac train stage1|stage2``: the slow-fast training of IMAC with ``accelerate``.

Stage 1 trains the audio-to-motion branch alone (audio encoder + pose and expression encoders)
on ``stage1.motion_frames`` windows with L_M. Stage 2 starts from the stage-1 model folder
(``stage2.init_from``; null is the "w/o first stage" ablation), builds the video branch
(pretrained I2VGen-XL or the tiny random UNet) and trains everything that is not frozen (motion
branch, UNet, coupling; not the VAE, the CLIP image encoder or HuBERT) with
L = L_LDM + stage2.motion_loss_weight * L_M on long motion windows and a random short video
window inside each (``imac.training.windows``).

The same code runs on a CPU and on one or many GPUs: launch with ``accelerate launch -m imac
train ...`` for DDP; ``train.mixed_precision`` (fp16/bf16) applies on CUDA. Runs are resumable:
``accelerate`` states are written every ``train.save_every`` steps under
``<output>/<stage>/checkpoints/step-N`` and at the end (complete folders only, the last two
kept), and a new run with the same output folder continues from the latest one (and the sequence
of windows where it stopped), so ``--max-steps`` can also extend a finished run.

Data-parallel training computes the losses of one process with the same global batch: the windows
of each global batch and every random draw of a sample's loss come from the run's seed and the
sample's slot (``imac.training.windows.GlobalBatches``, ``imac.models.noise``), not from the
process. Dropout (``motion.dropout``) still draws per process. A log
line per ``train.log_every`` steps goes to ``<output>/<stage>/log.jsonl``; the final model folder
is ``<output>/<stage>/model``.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list, set_seed
from safetensors import SafetensorError
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from imac.audio_features import AudioFeatures
from imac.config import (SAMPLING_KEYS, IMACConfig, StageConfig, config_differences, flat_config, listed, load_config,
                         save_config)
from imac.models.loading import load_pretrained
from imac.models.motion import MotionModel
from imac.models.video import check_video_config, enable_block_checkpointing
from imac.pipeline import (IMACPipeline, assemble, build_hubert, build_motion, build_video_parts,
                           hubert_identity)
from imac.training.windows import ClipArrays, GlobalBatches, TrainingWindows, open_dataset, preload_frames
from metrics.dataset import FPS_RELATIVE_TOLERANCE, MANIFEST_NAME, Dataset
from metrics.device import resolve_device
from metrics.distributed import Processes, StopRequests, Stopped, close_at_exit, stopped_anywhere
from metrics.io.bounded import read_json
from metrics.io.files import (hold_folder, remove_stale_temporaries, replace_folder, temporary_folder_sibling,
                              file_sha256, update_digest_from_file, write_json_atomic, write_text_atomic)

STAGES = ("stage1", "stage2")
PRELOAD_LIMIT_BYTES = 2 * 1024 ** 3


@dataclass
class TrainingResult:
    model_dir: Path
    steps: int
    seconds: float
    log: Path
    last_losses: dict[str, float]      # the mean over the last logged window of steps
    first_step: int = 0                # the step this run started from (> 0: resumed from a checkpoint)
    last_window: int = 0               # how many steps ``last_losses`` averages


def _select_clips(config: IMACConfig, dataset: Dataset, split: str = "train") -> list:
    return dataset.select(split, config.data.identities, option="data.identities")


def load_clip_arrays(config: IMACConfig, dataset: Dataset, features: AudioFeatures, with_frames: bool,
                     progress: bool = True, split: str = "train") -> list[ClipArrays]:
    """Motion, cached audio features and (small datasets, stage 2) preloaded frames of the ``split``'s clips
    (training: the train clips)."""
    records = _select_clips(config, dataset, split)
    size = config.data.resolution
    preload = with_frames and sum(r.num_frames for r in records) * size * size * 3 < PRELOAD_LIMIT_BYTES
    arrays = []
    for record in tqdm(records, desc="clips (motion, audio features)", unit="clip", disable=not progress):
        motion = record.load_motion()
        audio = features.from_file(record.audio, num_frames=record.num_frames)
        frames = preload_frames(record, size) if preload else None
        arrays.append(ClipArrays(record, motion["pose"], motion["expression"], audio["mfcc"], audio["hubert"], frames))
    return arrays


def config_changes(saved: Path, config: IMACConfig, most: int = 4) -> str:
    """The keys (section.key) whose values in the config file ``saved`` differ from ``config``'s
    (``train.output`` left out), at most ``most`` of them and a count of the rest; empty when the file
    is missing or unreadable."""
    try:
        before = load_config(saved).to_dict()
    except (OSError, ValueError):
        return ""
    return listed(config_differences(flat_config(before), flat_config(config.to_dict()), ("train.output",)), most)


def gradient_norm(accelerator: Accelerator, parameters: list[torch.nn.Parameter], clip: float) -> float | None:
    """The L2 norm of the synchronised gradient (unscaled under fp16), clipping it to ``clip`` when
    ``clip`` > 0 (``train.grad_clip``); None where the backend does not say (DeepSpeed clips itself)."""
    if clip:
        norm = accelerator.clip_grad_norm_(parameters, clip)
    else:                                  # measured only: the gradients are left exactly as they are
        accelerator.unscale_gradients()
        grads = [p.grad for p in parameters if p.grad is not None]
        norm = (torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
                if grads else torch.zeros(()))       # as clip_grad_norm_ computes it (torch >= 2.3)
    return None if norm is None else float(norm)


def window_norm(norms: list[float | None]) -> float | str | None:
    """The logged ``grad_norm`` of a window of steps: their mean; "non-finite" when a step's gradient
    overflowed or was NaN (JSON has no infinity), None when no step measured one."""
    measured = [norm for norm in norms if norm is not None]
    if not measured:
        return None
    if not all(math.isfinite(norm) for norm in measured):
        return "non-finite"
    return round(float(np.mean(measured)), 6)


def check_frame_rate(config: IMACConfig, clips: list) -> None:
    """Refuse clips whose fps is not the config's: the audio features are cut into ``config.fps`` frames
    per second and laid against the clips' motion and video frames, so another rate misaligns them."""
    rates = sorted({float(record.fps) for record in clips})
    if all(abs(config.fps - rate) <= FPS_RELATIVE_TOLERANCE * rate for rate in rates):
        return
    root = config.data.root
    if len(rates) == 1:
        raise ValueError(f"fps: the config's {config.fps:g} is not the dataset's {rates[0]:g} fps ({root}); "
                         f"give the override fps={rates[0]:g}")
    raise ValueError(f"fps: the config's {config.fps:g} does not match the dataset ({root}), whose clips are at "
                     f"{', '.join(f'{rate:g}' for rate in rates)} fps; train on clips of one frame rate "
                     "(data.identities, or another dataset) with that rate as fps")


def _video_inputs(config: IMACConfig) -> list[tuple[str, Path]]:
    """The model folders stage 2 reads for its video branch, as (option, folder holding config.json)."""
    video = config.video
    if video.pretrained:
        return [("video.pretrained", Path(video.pretrained) / sub)
                for sub in ("unet", "vae", "image_encoder", "text_encoder")]
    return [("video.vae", Path(video.vae))] if video.vae else []


def _not_a_stage1_folder(init) -> FileNotFoundError:
    return FileNotFoundError(f"stage2.init_from: {init} is not a stage-1 model folder (run `imac train stage1` "
                             "first, or set stage2.init_from=null for the w/o-first-stage ablation)")


def check_inputs(config: IMACConfig, stage: str) -> Dataset:
    """Every input of a training stage, checked before anything is written: the dataset (its format, the
    clips of ``data.identities``, their frame rate against ``fps``), and in stage 2 the stage-1 model
    (``stage2.init_from``) and the video branch's model folders. Returns the opened dataset."""
    check_video_config(config.video)     # in stage 1 too: a typo there would surface only when stage 2 builds it
    hubert = config.audio.hubert      # (stage 2 from a stage-1 model takes that model's HuBERT)
    own_hubert = not (stage == "stage2" and config.stage2.init_from) and hubert != "tiny"
    if own_hubert and not (Path(hubert) / "config.json").is_file():
        raise FileNotFoundError(f"audio.hubert: {hubert} holds no HuBERT model (no config.json); give a local "
                                "HuBERT folder (e.g. hubert-large-ls960-ft in the transformers layout) or 'tiny'")
    dataset = open_dataset(config.data.root)
    check_frame_rate(config, _select_clips(config, dataset))
    if stage == "stage2":
        init = config.stage2.init_from
        if init and not (Path(init) / "imac.json").is_file():
            raise _not_a_stage1_folder(init)
        if init:
            check_stage1_audio(config, init)
        for option, folder in _video_inputs(config):
            if not (folder / "config.json").is_file():
                hint = ("train one with `imac train vae`" if option == "video.vae" else
                        "video.pretrained must be a local I2VGen-XL folder")
                raise FileNotFoundError(f"{option}: {folder} holds no model (no config.json); {hint}")
        video = config.video
        if video.pretrained or video.vae:
            check_vae_resolution(config.data.resolution, Path(video.pretrained) / "vae" if video.pretrained
                                 else Path(video.vae), "video.pretrained" if video.pretrained else "video.vae")
    return dataset


# The audio settings a stage-1 model fixes for the stage 2 that starts from it: the features its motion
# branch was trained on (stage 2 takes that model's HuBERT, whatever audio.hubert and hubert_seed say;
# the path of a HuBERT folder is not compared, only tiny against a folder, and the tiny one's seed).
STAGE1_AUDIO_KEYS = ("sample_rate", "hubert", "hubert_seed", "n_mfcc")


def check_stage1_audio(config: IMACConfig, init: str) -> None:
    """Refuse a stage 2 whose ``audio`` settings differ from those of its stage-1 model (``stage2.init_from``)
    in ``STAGE1_AUDIO_KEYS`` or whose ``fps`` does: its motion branch would read features of another rate or
    HuBERT than it learnt on, while the stage-2 folder's card recorded this config's. ``ValueError`` naming the
    keys with both values and the overrides to give; before, accepted without a word. A card without a config
    (not one) is left to the loader to name."""
    try:
        before = read_json(Path(init) / "imac.json").get("config") or {}
    except (OSError, ValueError, AttributeError):
        return
    audio = before.get("audio") if isinstance(before.get("audio"), dict) else {}
    now = config.audio
    tiny = "tiny" in (audio.get("hubert"), now.hubert)   # a HuBERT folder's path may differ (moved): not compared
    keys = [key for key in STAGE1_AUDIO_KEYS if (key != "hubert" or tiny)
            and (key != "hubert_seed" or audio.get("hubert") == now.hubert == "tiny")]
    differing = {f"audio.{key}": audio[key] for key in keys if key in audio and audio[key] != getattr(now, key)}
    if "fps" in before and before["fps"] != config.fps:
        differing["fps"] = before["fps"]
    if differing:
        here = {key: (config.fps if key == "fps" else getattr(now, key.split(".", 1)[1])) for key in differing}
        raise ValueError(f"stage2.init_from: {init} was trained with other audio settings ("
                         + "; ".join(f"{key}: {value!r} there, {here[key]!r} here" for key, value in differing.items())
                         + "); give " + " ".join(f"{key}={value}" for key, value in differing.items())
                         + ", or train stage 1 again")


def check_vae_resolution(resolution: int, folder: Path, option: str) -> None:
    """``data.resolution`` against the VAE at ``folder``: a multiple of its downsampling factor (2 per
    down block after the first), and, for a VAE trained here (its ``training.json``), the frame size it was
    trained on. ``ValueError`` naming both; before, a 63 px config made 60 px videos while saying 63, and a
    64 px VAE was used at 128 px without a word."""
    config = read_json(folder / "config.json")
    factor = 2 ** (len(config.get("block_out_channels") or [0]) - 1)
    if resolution % factor:
        raise ValueError(f"data.resolution: {resolution} px is not a multiple of the VAE's downsampling factor "
                         f"{factor} ({option}: {folder}); frames would be cut to {resolution // factor * factor} px")
    training = folder / "training.json"
    trained = read_json(training).get("resolution") if training.is_file() else None
    if trained is not None and int(trained) != resolution:
        raise ValueError(f"data.resolution: {resolution} px, but the VAE at {folder} ({option}) was trained on "
                         f"{trained} px frames; train one at {resolution} px (`imac train vae ... "
                         f"data.resolution={resolution}`) or set data.resolution={trained}")


def _latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    found = []
    for path in folder.glob("step-*"):
        if (path / "COMPLETE").is_file() and path.name[5:].isdigit():
            found.append((int(path.name[5:]), path))
    if not found:
        return None
    step, path = max(found)
    return path, step


def _save_checkpoint(accelerator, folder: Path, step: int, keep: int = 2) -> None:
    target = folder / f"step-{step}"
    # One temporary folder for every process (each rank's save_state writes its random states into
    # it), named by the main process as metrics.io.files names its temporaries
    # (.step-N.tmp-<host>-<pid>-<token>), so that the next save removes what a killed run left.
    name = [None]
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder, once=True)
        for older in folder.glob(".step-*.tmp"):       # the unnamed form of earlier versions
            shutil.rmtree(older, ignore_errors=True)
        name = [temporary_folder_sibling(target).name]
    temporary = folder / broadcast_object_list(name)[0]
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    # Every rank has written its random states before the folder is marked and renamed: without this
    # barrier a slower rank wrote into a folder already renamed (or lost its states from the checkpoint).
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / "COMPLETE").write_text(str(step))
        replace_folder(temporary, target)
        complete = sorted((int(p.name[5:]), p) for p in folder.glob("step-*") if p.name[5:].isdigit())
        for _, old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


class TrainingFolderError(ValueError):
    """A stage's folder (``train.output/<stage>``) holds a checkpoint this training cannot resume.

    ``problem`` names the checkpoint and what is wrong, ``remedy`` how to resume it; the message adds
    the other way out, another ``train.output`` (a caller that chooses the folder otherwise, such as the
    benchmark's ``--out``, says its own)."""

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(problem, remedy)          # (both in args: the error crosses process pools)
        self.problem, self.remedy = problem, remedy

    def __str__(self) -> str:
        return f"{self.problem}; {self.remedy}, or give another train.output"


def _damaged_checkpoint(folder: Path, error: BaseException) -> TrainingFolderError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "weights_only" in reason:      # torch's advice to unpickle it unchecked (arbitrary code): not passed on
        reason = "a file that does not read as saved states (torch.load refused to unpickle it)"
    return TrainingFolderError(f"{folder}: a damaged checkpoint ({type(error).__name__}: {reason})",
                               "remove that folder to resume from the checkpoint before it")


RANDOM_STATE_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


def _check_process_count(folder: Path, processes: int, stage: str, batch_size: int) -> None:
    """``TrainingFolderError`` when the checkpoint ``folder`` was written by another number of processes than
    ``processes`` (one random-states file each): ``stage.batch_size`` is per process, so the global batch would
    change, and the windows of the steps trained (step x batch x processes, ``GlobalBatches``) would be
    trained again or skipped, with nothing said; a changed ``batch_size`` is refused the same way."""
    from accelerate.utils.constants import RNG_STATE_NAME

    written = len(list(folder.glob(f"{RNG_STATE_NAME}_*.pkl")))
    if written and written != processes:
        raise TrainingFolderError(
            f"{folder}: written by {written} process{'es' * (written != 1)} (a global batch of {written} x "
            f"{stage}.batch_size {batch_size} = {written * batch_size} windows) and resumed by {processes} "
            f"({processes * batch_size}): the windows of the steps trained would be trained again or skipped",
            f"resume it with {written} process{'es' * (written != 1)}")


def _check_random_states(folder: Path, process_index: int) -> None:
    """Read a checkpoint's random states (``random_states_<process>.pkl``, as accelerate reads them) before
    ``load_state`` does: accelerate passes over states it cannot read with an INFO line only (1.x,
    ``checkpointing.load_accelerator_state``), and the resumed run would then draw other noise and dropout
    than the run it continues, with nothing said. ValueError (``_damaged_checkpoint``) if they are missing,
    unreadable or lack a generator's state (a run resumed by another number of processes is refused before:
    ``_check_process_count``)."""
    from accelerate.utils import load
    from accelerate.utils.constants import RNG_STATE_NAME

    path = folder / f"{RNG_STATE_NAME}_{process_index}.pkl"
    try:
        states = load(path)
    except Exception as error:       # noqa: BLE001 - whatever accelerate would pass over
        raise _damaged_checkpoint(folder, error) from None
    missing = [key for key in RANDOM_STATE_KEYS if not isinstance(states, dict) or key not in states]
    if missing:
        raise _damaged_checkpoint(folder, ValueError(f"{path.name} holds no {', '.join(missing)}"))


def _trim_log(path: Path, step: int) -> None:
    """Drop the lines of a stage's ``log.jsonl`` logged after ``step``, the checkpoint a run resumes from:
    the resumed run logs those steps again (an interrupted run had logged past its last checkpoint)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(kept))


def _logged_step(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -math.inf                  # a line that is not a step's: kept


def _cycle(loader):
    while True:
        yield from loader


def motion_shape_keys(config: IMACConfig) -> list[tuple[str, str, object]]:
    """(motion model config name, config key, this config's value) of the motion branch's settings that a
    stage-1 folder fixes (its layout and dropout): a stage 2 started from it must have the same, or its
    card would say one thing and its weights hold another."""
    a, m = config.audio, config.motion
    return [("width", "motion.width", m.width), ("layers", "motion.layers", m.layers), ("heads", "motion.heads", m.heads),
            ("expression_dim", "motion.expression_dim", m.expression_dim), ("dropout", "motion.dropout", m.dropout),
            ("audio_width", "audio.width", a.width), ("mfcc_width", "audio.mfcc_width", a.mfcc_width),
            ("mfcc_heads", "audio.mfcc_heads", a.mfcc_heads), ("n_mfcc", "audio.n_mfcc", a.n_mfcc)]


# What may change when a stage resumes from its checkpoint: how long it trains, where it logs and writes,
# where the data lies and how a trained model samples (``SAMPLING_KEYS``); every other key is part of the
# training that the checkpoint continues.
RESUMABLE_KEYS = ("train.output", "train.save_every", "train.log_every", "train.num_workers", "train.device",
                  "data.root", "data.feature_cache", *SAMPLING_KEYS)


# The model folders a stage reads its starting weights from, and its dataset. Where they lie may change when a
# stage resumes (a run moved, or named by another path); what they hold may not: ``inputs.json`` in the stage's
# folder records a fingerprint of each (``folder_fingerprint``; of the dataset, its manifest's SHA-256) and a
# resume compares those instead of the paths.
MODEL_INPUT_KEYS = ("stage2.init_from", "video.vae", "video.pretrained", "audio.hubert")
INPUTS_FILE = "inputs.json"
SAMPLED_ABOVE = 64 << 20          # bytes: a larger file is fingerprinted by its size and 10 blocks of 1 MiB
# Records of how a folder was made, not what it computes: they name paths (a stage-1 model's imac.json holds
# its config, train.output included, rewritten by a rerun with nothing to do) and seconds (training.json).
RECORD_FILES = ("imac.json", "training.json")


def folder_fingerprint(folder: Path) -> str:
    """A SHA-256 over a folder's files (recursively, in name order; not ``RECORD_FILES``): each one's relative
    path, size and content; of a file over ``SAMPLED_ABOVE`` bytes (the weights of a large model), its size and
    10 blocks of 1 MiB spread over it (first and last included), so that a start does not read gigabytes. A
    retrained or replaced model changes every block; the files' times are not read (a copy keeps the fingerprint)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in RECORD_FILES):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        if size <= SAMPLED_ABOVE:
            update_digest_from_file(digest, path)
            continue
        block = 1 << 20
        with open(path, "rb") as handle:
            for start in np.linspace(0, size - block, 10).astype(np.int64):
                handle.seek(int(start))
                digest.update(handle.read(block))
    return digest.hexdigest()


def model_inputs(config: IMACConfig, stage: str) -> dict[str, dict[str, str | None]]:
    """The model folders ``stage`` reads (``MODEL_INPUT_KEYS``; stage 1 only HuBERT): key -> its value in
    ``config`` ("path") and the fingerprint of that folder ("fingerprint"; the value itself when it is no
    folder: None, or "tiny" for the random tiny HuBERT)."""
    values = flat_config(config.to_dict())
    keys = [key for key in MODEL_INPUT_KEYS if stage == "stage2" or key == "audio.hubert"]
    inputs = {}
    for key in keys:
        value = values.get(key)
        folder = Path(value) if isinstance(value, str) and value else None
        inputs[key] = {"path": value, "fingerprint": folder_fingerprint(folder) if folder and folder.is_dir()
                       else value}
    manifest = Path(config.data.root) / MANIFEST_NAME     # the dataset: its clip list (which files, splits, sizes)
    inputs["data.root"] = {"path": config.data.root,
                           "fingerprint": file_sha256(manifest) if manifest.is_file() else config.data.root}
    return inputs


def input_changes(saved: Path, inputs: dict[str, dict[str, str | None]]) -> list[str] | None:
    """The model inputs (``model_inputs``) whose content differs from what ``saved`` (a stage's
    ``inputs.json``) recorded, in words; None when there is no readable record (a folder written by an
    earlier version: then the paths themselves are compared, as the other settings are)."""
    try:
        recorded = read_json(saved)
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    changed = []
    for key, now in inputs.items():
        if key not in recorded:          # a record without it (data.root: written before it was recorded)
            continue
        before = recorded.get(key) if isinstance(recorded.get(key), dict) else {}
        if before.get("fingerprint") != now["fingerprint"]:
            where = (f"{before.get('path')!r} -> {now['path']!r}" if before.get("path") != now["path"]
                     else f"{now['path']!r}, whose content changed")
            changed.append(f"{key}: {where}")
    return changed


def _layout_difference(saved: Path, config: IMACConfig, stage: str, error: Exception) -> str:
    """Why a checkpoint's weights do not fit the model built now, in words: the config keys that change the
    model (not those a resumed run may change, such as data.root), else torch's first size mismatch and, when
    the data moved, that the data's pose size may differ (a dataset prepared with other --joints)."""
    changed = resume_changes(saved, config, stage)
    if changed:
        return f"its config.yaml differs in {listed(changed)}"
    mismatch = next((line.strip().rstrip(".") for line in str(error).splitlines() if "size mismatch" in line),
                    "its weights do not fit the model")
    moved = config_changes(saved, config) if "data.root" in config_changes(saved, config, most=100) else ""
    return mismatch + (f"; the data moved ({moved}): its poses or features may have another size than those it "
                       "was trained on" if moved else "")


def resume_changes(saved: Path, config: IMACConfig, stage: str, inputs_compared: bool = False) -> list[str]:
    """The keys of ``config`` that differ from the ``config.yaml`` a stage's checkpoints were written with
    (``saved``), besides ``RESUMABLE_KEYS``, the stage's own ``steps`` and the other stage's section (and
    the video branch for stage 1), and, with ``inputs_compared`` (their contents compared by
    ``input_changes``), the model folders' paths; empty when the file is missing or unreadable (written by an
    earlier version)."""
    try:
        before = load_config(saved).to_dict()
    except (OSError, ValueError):
        return []
    other = ["stage2.", "video."] if stage == "stage1" else ["stage1."]
    moved = MODEL_INPUT_KEYS if inputs_compared else ()
    return config_differences(flat_config(before), flat_config(config.to_dict()),
                              (*RESUMABLE_KEYS, f"{stage}.steps", *other, *moved))


def build_stage_model(config: IMACConfig, stage: str, pose_dim: int, hubert_dim: int,
                      normalization: tuple[np.ndarray, np.ndarray] | None):
    """The model to train: a fresh or stage-1-initialised motion branch, and the video parts in stage 2."""
    init = config.stage2.init_from if stage == "stage2" else None
    if init:
        if not (Path(init) / "motion" / "config.json").is_file():
            raise _not_a_stage1_folder(init)
        motion = load_pretrained(MotionModel, Path(init) / "motion")
        if motion.config.pose_dim != pose_dim:
            raise ValueError(f"stage2.init_from: {init} was trained on {motion.config.pose_dim}-d poses, "
                             f"the data has {pose_dim}")
        if bool(motion.config.noise_skip) != config.motion.noise_skip:
            # the model folder would otherwise say one thing (imac.json) and hold another (motion/)
            raise ValueError(f"stage2.init_from: {init} was trained with motion.noise_skip="
                             f"{str(bool(motion.config.noise_skip)).lower()} (folders written before the key "
                             f"existed have false); give that override, or train stage 1 again")
        differing = [f"{key}: {motion.config[name]!r} there, {value!r} here" for name, key, value in
                     motion_shape_keys(config) if motion.config[name] != value]
        if differing:
            raise ValueError(f"stage2.init_from: {init} was trained with another motion branch ({'; '.join(differing)}); "
                             "give its values as overrides, or train stage 1 again")
    else:
        torch.manual_seed(config.train.seed)
        motion = build_motion(config, pose_dim, hubert_dim)
        if normalization is not None:
            motion.set_normalization(*normalization)
    video_parts = build_video_parts(config, motion) if stage == "stage2" else None
    if video_parts and config.train.gradient_checkpointing:
        enable_block_checkpointing(video_parts["unet"])
    return assemble(config, motion, video_parts)


def train(config: IMACConfig, stage: str, progress: bool = True, max_steps: int | None = None) -> TrainingResult:
    """Train one stage as configured; resume from the latest checkpoint in its output folder."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    settings = config.stage1 if stage == "stage1" else config.stage2
    if not 0 <= settings.ema_decay < 1:
        raise ValueError(f"{stage}.ema_decay: 0 (off) or a decay in (0, 1), got {settings.ema_decay}")
    dataset = check_inputs(config, stage)       # before anything is written: a wrong input leaves no folder
    cpu = resolve_device(config.train.device) == "cpu"
    accelerator = Accelerator(
        cpu=cpu, mixed_precision="no" if cpu else config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if accelerator.num_processes > 1:
        close_at_exit()       # the group outlives this training (see the end), not the program
    set_seed(config.train.seed)
    out = Path(config.train.output) / stage
    # one training per stage folder: a second one started into it (a job submitted twice) is refused, by the
    # main process (the others are told, and end without a word: one error line, not a rank's traceback)
    lock = None
    with Processes(accelerator.process_index, accelerator.num_processes, accelerator.local_process_index).main_first():
        if accelerator.is_main_process:
            lock = hold_folder(out, f"imac train {stage}")
    try:
        return _train_stage(config, stage, settings, dataset, accelerator, out, progress, max_steps)
    finally:
        if lock is not None:
            lock.release()


def _train_stage(config: IMACConfig, stage: str, settings: StageConfig, dataset: Dataset, accelerator: Accelerator,
                 out: Path, progress: bool, max_steps: int | None) -> TrainingResult:
    """``train`` once its inputs are checked, its processes set up and its folder ``out`` held."""
    checkpoints = out / "checkpoints"
    show = progress and accelerator.is_local_main_process

    init = Path(config.stage2.init_from) if stage == "stage2" and config.stage2.init_from else None
    if init is not None:
        stage1 = IMACPipeline.from_pretrained(init, device=accelerator.device)
        hubert, hubert_id = stage1.hubert, stage1.hubert_id
    else:
        hubert, hubert_id = build_hubert(config, accelerator.device), hubert_identity(config)
    cache = config.data.feature_cache or str(Path(config.train.output) / "features")
    features = AudioFeatures(hubert, hubert_id=hubert_id, n_mfcc=config.audio.n_mfcc, fps=config.fps,
                             sample_rate=config.audio.sample_rate, cache_dir=cache)
    clips = load_clip_arrays(config, dataset, features, with_frames=stage == "stage2", progress=show)
    windows = TrainingWindows(clips, settings.motion_frames, config.video.frames if stage == "stage2" else None,
                              config.data.resolution, seed=config.train.seed, setting=f"{stage}.motion_frames")
    if windows.skipped and show:
        print(f"skipped {len(windows.skipped)} clip(s) shorter than {settings.motion_frames} frames")
    normalization = (np.concatenate([c.pose for c in clips]), np.concatenate([c.expression for c in clips]))
    model = build_stage_model(config, stage, clips[0].pose.shape[1], features.hubert_dim, normalization)
    model.train()
    if model.vae is not None:
        model.vae.eval()
        model.image_encoder.eval()
    parameters = [p for module in model.trainable_modules(stage) for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=config.train.weight_decay, foreach=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = EMAModel(parameters, decay=settings.ema_decay, foreach=True) if settings.ema_decay > 0 else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)      # resumed with the run (custom_checkpoint_0.pkl)

    step = 0
    latest = _latest_checkpoint(checkpoints)
    if latest is not None:
        averaged = (latest[0] / "custom_checkpoint_0.pkl").is_file()
        if averaged != (ema is not None):
            raise TrainingFolderError(f"{latest[0]}: trained {'with' if averaged else 'without'} {stage}.ema_decay",
                                      f"resume it {'with the same ema_decay' if averaged else 'with ema_decay 0'}")
        _check_process_count(latest[0], accelerator.num_processes, stage, settings.batch_size)
        _check_random_states(latest[0], accelerator.process_index)
        try:
            accelerator.load_state(str(latest[0]))
        except RuntimeError as error:          # torch's "Error(s) in loading state_dict": another layout
            if "state_dict" not in str(error):
                raise _damaged_checkpoint(latest[0], error) from None
            raise TrainingFolderError(f"{latest[0]}: a checkpoint of another model layout ("
                                      + _layout_difference(out / "config.yaml", config, stage, error) + ")",
                                      "resume it with the config and data it was written with") from None
        except (OSError, EOFError, ValueError, pickle.UnpicklingError, SafetensorError) as error:
            raise _damaged_checkpoint(latest[0], error) from None
        if ema is not None and ema.decay != settings.ema_decay:
            raise TrainingFolderError(f"{latest[0]}: trained with {stage}.ema_decay={ema.decay}, not "
                                      f"{settings.ema_decay}", "resume it with the same value")
        inputs = model_inputs(config, stage)
        moved = input_changes(out / INPUTS_FILE, inputs)
        if moved:
            raise TrainingFolderError(f"{latest[0]}: trained from other model weights or data ({listed(moved)})",
                                      "resume it from the folders and the dataset it was trained from (they may lie "
                                      "elsewhere)")
        changed = resume_changes(out / "config.yaml", config, stage, inputs_compared=moved is not None)
        if changed:
            raise TrainingFolderError(f"{latest[0]}: trained with other settings ({listed(changed)})",
                                      "resume it with the settings it was trained with (only the steps, the logging "
                                      "and where data and output lie may change)")
        step = latest[1]
        if accelerator.is_main_process:
            _trim_log(out / "log.jsonl", step)
        if show:
            print(f"resumed from {latest[0]} (step {step})")
    # The stage's folder is written once the model is built and a checkpoint to resume agrees with the
    # config (the audio features' cache, data.feature_cache, may be filled before: it is keyed by content).
    if accelerator.is_main_process:
        checkpoints.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        write_json_atomic(out / INPUTS_FILE, inputs if latest is not None else model_inputs(config, stage))
        if latest is None:      # a start from step 0: the lines of a run interrupted before its first checkpoint go
            _trim_log(out / "log.jsonl", 0)
    # Not prepared by accelerate: GlobalBatches shards the global batches itself, so any number of
    # processes trains on the same windows with the same per-sample seeds (and a resumed run goes on).
    sampler = GlobalBatches(len(windows), settings.batch_size, accelerator.num_processes, accelerator.process_index,
                            seed=config.train.seed, start=step * config.train.gradient_accumulation)
    # Its own generator: each new iterator (every pass over the windows) draws a base seed, which
    # from torch's global generator would shift the dropout draws of a resumed run against one run.
    loader = torch.utils.data.DataLoader(windows, batch_sampler=sampler, num_workers=config.train.num_workers,
                                         generator=torch.Generator().manual_seed(config.train.seed))
    total = max_steps if max_steps is not None else settings.steps
    log_path = out / "log.jsonl"
    bar = tqdm(total=total, initial=step, desc=f"{stage}", unit="step", disable=not show)
    started = time.perf_counter()
    window_started, window_samples = started, 0
    sums: dict[str, float] = {}
    norms: list[float | None] = []
    count = 0
    last: dict[str, float] = {}
    first_step, last_window = step, 0
    batches = _cycle(loader)
    # a stop signal, or Ctrl-C, acts at a step's end, or after the model is written
    with StopRequests(interrupt=True) as stops:
        while step < total:
            batch = {name: value.to(accelerator.device) for name, value in next(batches).items()}
            with accelerator.accumulate(model):
                losses = model(batch, stage)
                accelerator.backward(losses["loss"])
                if accelerator.sync_gradients:   # the norm of the synchronised gradient, logged; clipped if asked
                    norms.append(gradient_norm(accelerator, parameters, config.train.grad_clip))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None and accelerator.sync_gradients:
                    ema.step(parameters)
            window_samples += batch["pose"].shape[0] * accelerator.num_processes
            for name, value in losses.items():      # the mean over the processes: the global batch's loss
                sums[name] = sums.get(name, 0.0) + float(accelerator.reduce(value.detach(), reduction="mean"))
            count += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % config.train.log_every == 0 or step == total:
                now = time.perf_counter()
                last = {name: value / count for name, value in sums.items()}
                last_window = count // config.train.gradient_accumulation
                line = {"step": step, **{k: round(v, 6) for k, v in last.items()},
                        "grad_norm": window_norm(norms),
                        "samples_per_s": round(window_samples / max(now - window_started, 1e-9), 3),
                        "seconds": round(now - started, 2)}
                bar.set_postfix({k: f"{v:.4f}" for k, v in last.items() if k != "loss"} | {
                    "samples/s": f"{line['samples_per_s']:.1f}"})
                if accelerator.is_main_process:
                    with open(log_path, "a") as log:
                        log.write(json.dumps(line) + "\n")
                sums, norms, count, window_started, window_samples = {}, [], 0, now, 0
            # A stop signal (a scheduler's preemption or time-limit notice) ends the run at this step's end, on
            # every process at the same step, once its checkpoint is written: the rerun goes on from here.
            stop = stopped_anywhere(stops.number, accelerator.device) if step < total else 0
            if step % config.train.save_every == 0 or step == total or stop:
                _save_checkpoint(accelerator, checkpoints, step)
            if stop:
                stops.number = 0
                bar.close()
                raise Stopped(stop, f"at step {step}: its checkpoint is written ({checkpoints / f'step-{step}'})")
        bar.close()
        seconds = time.perf_counter() - started
        model_dir = out / "model"
        accelerator.wait_for_everyone()
        if ema is not None:                  # the folder gets the averaged weights; training's stay in memory
            ema.store(parameters)
            ema.copy_to(parameters)
        if accelerator.is_main_process:
            trained = accelerator.unwrap_model(model)
            pipeline = IMACPipeline(config, trained, hubert, hubert_id, stage)
            pipeline.save_pretrained(model_dir)
        if ema is not None:
            ema.restore(parameters)
        accelerator.wait_for_everyone()
    # No accelerator.end_training(): it destroys the process group (accelerate >= 1.0), and under a
    # launch the same processes go on (stage 2 after stage 1, the benchmark's generation and scoring).
    if not math.isfinite(last.get("loss", 0.0)):
        raise FloatingPointError(f"{stage}: the loss is not finite ({last}); see {log_path}")
    return TrainingResult(model_dir, step, seconds, log_path, last, first_step, last_window)
