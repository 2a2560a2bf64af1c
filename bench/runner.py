"""``imac-bench run``: every method on every test clip, one protocol, one table.

A run folder (``--out runs/NAME``)::

    run.json                     the run's settings (seed, data, config, methods); a rerun must match
    data/                        the toy corpus, when no --data is given
    <method>/<identity>/<clip_id>.mp4   generated videos (audio muxed in; controls link the real ones)
    work/<method>/               training outputs, method.json (facts), generation.json (per clip)
    work/vae/, work/fgd_autoencoder/    shared models trained once per run
    cache/                       keypoints and I3D statistics per video content
    results.json, metrics.csv, report.md, plots/     the results (``imac-bench report`` rewrites them)

Resumable: every file appears atomically, a clip whose video exists is not generated again, model
training resumes from its checkpoints, and the shared models are trained once. Each clip's seed is
derived from the run's seed and the clip's name, so a rerun (or a run in another order) draws the
same noise for the same clip.
"""

from __future__ import annotations

import json
import platform
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import BenchConfig, load_bench_config
from bench.methods import CONTROLS, OPTION_SECTIONS, make_method
from bench.methods.base import BenchContext, Method
from metrics.dataset import ClipRecord
from metrics.io.audio import SAMPLE_RATE
from metrics.io.files import write_json_atomic

BENCH_VERSION = "imac-bench-run-1"


class RunMismatchError(ValueError):
    pass


def clip_seed(seed: int, clip: ClipRecord) -> int:
    """A seed per clip from the run's seed and the clip's name (not its position in the run)."""
    return zlib.crc32(f"{seed}/{clip.identity}/{clip.clip_id}".encode()) & 0x7FFFFFFF


def test_clips(data_root: Path, identities: list[str] | None = None) -> list[ClipRecord]:
    """The test split of a dataset (optionally some speakers only) as TestClips."""
    from metrics.dataset import Dataset

    dataset = Dataset.open(data_root, level="files")
    if identities:
        unknown = sorted(set(identities) - set(dataset.identities))
        if unknown:
            raise ValueError(f"--identities: {', '.join(unknown)} not in {data_root} "
                             f"(has {', '.join(dataset.identities)})")
    records = [r for r in dataset.split("test") if not identities or r.identity in identities]
    if not records:
        raise ValueError(f"{data_root}: no test clips" + (f" for {', '.join(identities)}" if identities else ""))
    return sorted(records, key=lambda r: r.key)


def conform_frames(frames: np.ndarray, clip: ClipRecord) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames at the real clip's size and length: bilinear resize; the last frame repeated or extra
    frames dropped. Returns the frames and what was changed (recorded in generation.json)."""
    import torch
    import torch.nn.functional as F

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{clip.label}: a method must return uint8 frames (F, H, W, 3), got "
                         f"{frames.dtype} {frames.shape}")
    changes: dict[str, Any] = {}
    if frames.shape[1:3] != (clip.height, clip.width):
        changes["resized_from"] = [int(frames.shape[2]), int(frames.shape[1])]
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(clip.height, clip.width), mode="bilinear", align_corners=False, antialias=True)
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if len(frames) != clip.num_frames:
        changes["frames_generated"] = int(len(frames))
        if len(frames) > clip.num_frames:
            frames = frames[:clip.num_frames]
        else:
            pad = np.repeat(frames[-1:], clip.num_frames - len(frames), axis=0)
            frames = np.concatenate([frames, pad])
    return frames, changes


@dataclass
class RunSettings:
    methods: list[str]
    out: Path
    data: Path | None = None
    identities: list[str] | None = None
    device: str = "cpu"
    seed: int = 0
    config: BenchConfig | None = None
    generated: dict[str, Path] | None = None
    methods_file: Path | None = None
    skip_missing: bool = False
    progress: bool = True
    custom: dict[str, Callable[[], Method]] | None = None   # your own Method classes: name -> factory

    def identity(self) -> dict[str, Any]:
        """What must match between a run and its resumption."""
        return {"data": str(self.data.resolve()) if self.data else None, "seed": self.seed,
                "identities": self.identities, "config": self.config.to_dict()}


class Run:
    def __init__(self, settings: RunSettings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.config = settings.config or load_bench_config("toy")
        settings.config = self.config
        self.out = Path(settings.out)
        self.log = log
        self.timings: dict[str, float] = {}
        self._pose = None

    # -- folders and shared models -------------------------------------------------------------

    def check_run_file(self) -> None:
        path = self.out / "run.json"
        identity = json.loads(json.dumps(self.settings.identity()))
        methods = list(self.settings.methods)
        if path.is_file():
            previous = json.loads(path.read_text())
            for key, value in identity.items():
                if previous.get(key) != value:
                    raise RunMismatchError(
                        f"{self.out} holds a run with another {key} ({previous.get(key)!r}, now {value!r}): "
                        "use another --out, or delete the folder to start again")
            methods = list(dict.fromkeys(previous.get("methods", []) + methods))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {**identity, "methods": methods, "bench_version": BENCH_VERSION})

    def data_root(self) -> Path:
        if self.settings.data is not None:
            return Path(self.settings.data)
        from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus

        corpus = self.config.corpus
        root = self.out / "data"
        if not (root / "manifest.jsonl").is_file():
            self.log(f"generating the toy corpus ({corpus.identities} identities x {corpus.clips} clips, "
                     f"{corpus.size} px) in {root}")
        generate_toy_corpus(root, ToyCorpusConfig(seed=corpus.seed, identities=corpus.identities, clips=corpus.clips,
                                                  test_clips=corpus.test_clips, size=corpus.size),
                            progress=False)
        return root

    def pose_extractor(self):
        if self._pose is None:
            from metrics.evaluate import make_extractor

            self._pose = make_extractor(self.config.extractor, self.config.dwpose_detector, self.config.dwpose_pose,
                                        self.settings.device)
        return self._pose

    def shared_vae(self) -> Path:
        """The tiny VAE of the run (trained once, on the train split)."""
        from imac.training.autoencoder import TINY_VAE_TRAINING, train_autoencoder

        folder = self.out / "work" / "vae"
        if not (folder / "training.json").is_file():
            self.log(f"training the shared tiny VAE ({self.config.vae_steps} steps)")
            started = time.perf_counter()
            settings = {**TINY_VAE_TRAINING, "steps": self.config.vae_steps}
            train_autoencoder(self.data, folder, **settings, seed=self.settings.seed, device=self.torch_device(),
                              progress=self.settings.progress, overwrite=True)
            self.timings["vae"] = round(time.perf_counter() - started, 1)
        return folder

    def torch_device(self) -> str:
        import torch

        device = self.settings.device
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def fgd_autoencoder(self) -> Path:
        if self.config.fgd_autoencoder:
            return Path(self.config.fgd_autoencoder)
        from metrics.fgd_training import train_fgd_autoencoder

        folder = self.out / "work" / "fgd_autoencoder"
        if not (folder / "config.json").is_file():   # written last: a crash before it means train again
            self.log(f"training the skeleton autoencoder for FGD/Diversity ({self.config.fgd_autoencoder_steps} steps)")
            started = time.perf_counter()
            train_fgd_autoencoder(self.data, folder, self.protocol, self.pose_extractor(),
                                  steps=self.config.fgd_autoencoder_steps, seed=self.settings.seed,
                                  cache_dir=self.out / "cache")
            self.timings["fgd_autoencoder"] = round(time.perf_counter() - started, 1)
        return folder

    # -- methods ---------------------------------------------------------------------------------

    def external_factories(self) -> dict[str, Callable[[], Method]]:
        from bench.methods.external import CommandMethod, GeneratedFolder, parse_methods_file

        factories: dict[str, Callable[[], Method]] = dict(self.settings.custom or {})
        for name, folder in (self.settings.generated or {}).items():
            factories[name] = lambda name=name, folder=folder: GeneratedFolder(name, folder)
        if self.settings.methods_file:
            for name, spec in parse_methods_file(self.settings.methods_file).items():
                factories[name] = lambda spec=spec: CommandMethod(spec)
        return factories

    def method_names(self) -> list[str]:
        names = list(dict.fromkeys(self.settings.methods + list((self.settings.generated or {}))))
        clash = [n for n in names if n in CONTROLS]
        if clash:
            raise ValueError(f"{', '.join(clash)}: the controls run on every run; do not list them in --methods")
        return names + list(CONTROLS)

    def context(self, method: Method) -> BenchContext:
        section = OPTION_SECTIONS.get(method.name, method.name)
        return BenchContext(data_root=self.data, work_dir=self.out / "work" / method.name,
                            device=self.torch_device(), seed=self.settings.seed,
                            options=dict(self.config.methods.get(section, {})),
                            identities=tuple(self.settings.identities) if self.settings.identities else None,
                            test_clips=tuple(self.clips), progress=self.settings.progress,
                            pose_extractor=self.pose_extractor(), shared_vae=self.shared_vae, log=self.log)

    def generate(self, method: Method) -> dict[str, Any]:
        """Prepare the method (if a clip is missing) and write every missing clip; returns its record."""
        from tqdm import tqdm

        from bench.methods.external import ExternalVideoError
        from metrics.io.video import write_video

        work = self.out / "work" / method.name
        facts_path, generation_path = work / "method.json", work / "generation.json"
        generation = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
        target = {clip.label: self.out / method.name / clip.identity / f"{clip.clip_id}.mp4" for clip in self.clips}
        missing = [clip for clip in self.clips if not target[clip.label].is_file()]
        facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
        if missing:
            started = time.perf_counter()
            context = self.context(method)
            work.mkdir(parents=True, exist_ok=True)
            facts = method.prepare(context) or {}
            facts["prepare_seconds"] = round(time.perf_counter() - started, 1)
            write_json_atomic(facts_path, facts)
            bar = tqdm(missing, desc=f"{method.name}: generating", unit="clip", disable=not self.settings.progress)
            for clip in bar:
                out = target[clip.label]
                seed = clip_seed(self.settings.seed, clip)
                started = time.perf_counter()
                try:
                    if method.writes_files:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        record = method.write(clip, out, seed) or {}
                    else:
                        frames, record = conform_frames(method.generate(clip, seed), clip)
                        write_video(out, frames, clip.fps, audio=clip.load_audio(), sample_rate=SAMPLE_RATE)
                except ExternalVideoError as error:
                    if not self.settings.skip_missing:
                        raise
                    record = {"skipped": str(error)}
                    self.log(f"skipped {method.name} {clip.label}: {error}")
                record.update({"seed": seed, "seconds": round(time.perf_counter() - started, 2)})
                generation[clip.label] = record
                write_json_atomic(generation_path, generation)
        skipped = {label: r["skipped"] for label, r in generation.items() if "skipped" in r
                   and not target[label].is_file()}
        return {"name": method.name, "label": method.label, "kind": method.kind, "facts": facts,
                "generation": generation, "skipped": skipped}

    def evaluate(self, name: str) -> dict:
        """The method's videos against the real ones. A generated clip the metrics cannot score (no
        body found, too short) is skipped and listed, and flagged in every table; a real one is an error."""
        from metrics.evaluate import ClipError, evaluate

        try:
            result = evaluate(self.out / "gt", self.out / name, metrics=self.config.metrics, protocol=self.protocol,
                              autoencoder=self.autoencoder if any(m in self.config.metrics for m in ("fgd", "div")) else None,
                              i3d=self.config.i3d, extractor=self.pose_extractor(), cache_dir=self.out / "cache",
                              split=None, on_error="skip", device=self.torch_device(),
                              progress=(lambda message: self.log(f"  {name}: {message}")) if self.settings.progress else None)
        except ClipError as error:
            if "no usable fake clips" not in str(error):
                raise
            return {"results": {}, "skipped": [], "error": str(error)}
        real = [s for s in result["skipped"] if s["side"] == "real"]
        if real:
            raise ValueError(f"real test clip {real[0]['clip']} cannot be scored: {real[0]['reason']}")
        if name == "shuffled" and "bas" in self.config.metrics:
            self.permutation_bas(result)
        return result

    def permutation_bas(self, result: dict) -> None:
        """The shuffled control's BAS: each real video scored against the audio of EVERY other test
        clip, averaged (chance-level BAS for that motion), instead of one partner's audio: a single
        partner makes the control as noisy as the clip it happened to draw."""
        from metrics.io.audio import load_audio
        from metrics.beats import BAS
        from metrics.evaluate import Evaluator
        from metrics.dataset import find_clips

        clips = find_clips(self.out / "gt", split=None)
        evaluator = Evaluator(("bas",), self.protocol, self.pose_extractor(), cache_dir=self.out / "cache")
        motion = [evaluator.keypoints_and_fvd(clip)[:2] for clip in clips]
        rate = self.protocol.audio_sample_rate
        audio = [load_audio(c.audio, rate) for c in clips]   # the gt folder holds each clip's wav
        scorer = BAS(self.protocol)
        per_clip = {}
        for i, (keypoints, fps) in enumerate(motion):
            length = len(audio[i])
            others = [np.resize(a, length) if len(a) < length else a[:length] for j, a in enumerate(audio) if j != i]
            per_clip[clips[i].key] = float(np.mean([scorer.score(keypoints, fps, a, rate) for a in others]))
        scopes = {"all": list(per_clip)}
        for identity in sorted({c.identity for c in clips}):
            scopes[f"identity:{identity}"] = [c.key for c in clips if c.identity == identity]
        for scope, keys in scopes.items():
            metric = BAS(self.protocol)
            metric.scores = [per_clip[k] for k in keys]
            low, high = metric.interval()
            result["results"].setdefault(scope, {})["BAS"] = {
                "value": metric.compute(), "ci_low": low, "ci_high": high, "n_clips": len(keys),
                "audio": f"each video against the other {len(clips) - 1} test clips' audio, averaged"}

    # -- the whole run ---------------------------------------------------------------------------

    def __call__(self) -> dict:
        from metrics.protocol import get_protocol

        started = time.perf_counter()
        self.check_run_file()
        self.protocol = get_protocol(self.config.protocol)
        self.data = self.data_root()
        self.clips = test_clips(self.data, self.settings.identities)
        factories = self.external_factories()
        names = self.method_names()
        methods = [make_method(name, factories) for name in names]   # unknown names fail before any work
        records = {}
        for method in methods:
            step = time.perf_counter()
            records[method.name] = self.generate(method)
            self.timings[f"generate:{method.name}"] = round(time.perf_counter() - step, 1)
        if any(m in self.config.metrics for m in ("fgd", "div")):
            self.autoencoder = self.fgd_autoencoder()
        evaluations = {}
        for name in names:
            step = time.perf_counter()
            self.log(f"evaluating {name}")
            evaluations[name] = self.evaluate(name)
            self.timings[f"evaluate:{name}"] = round(time.perf_counter() - step, 1)
        self.timings["total"] = round(time.perf_counter() - started, 1)
        results = assemble_results(self, records, evaluations)
        write_json_atomic(self.out / "results.json", results)
        return results


def assemble_results(run: Run, records: dict[str, dict], evaluations: dict[str, dict]) -> dict:
    """One document with everything the report needs: settings, protocol, methods, tables, checks."""
    from bench.report import control_checks

    first = evaluations["gt"]
    methods = {}
    for name, record in records.items():
        evaluation = evaluations[name]
        methods[name] = {**record, "results": evaluation["results"],
                         "unscored": {s["clip"]: s["reason"] for s in evaluation["skipped"]}}
        if "error" in evaluation:
            methods[name]["unscored"]["*"] = evaluation["error"]
    import torch

    from imac import __version__

    results = {
        "bench_version": BENCH_VERSION,
        "package_version": __version__,
        "run": {"out": str(run.out), "data": str(run.data), "seed": run.settings.seed,
                "identities": run.settings.identities, "device": run.torch_device(),
                "config": run.config.to_dict(), "test_clips": [c.label for c in run.clips]},
        "protocol": first["protocol"],
        "protocol_label": first["protocol_label"],
        "pose_extractor": first["pose_extractor"],
        "skeleton_autoencoder": first["skeleton_autoencoder"],
        "i3d": first["i3d"],
        "methods": methods,
        "timings_s": run.timings,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads(), "machine": platform.machine()},
    }
    results["control_checks"] = control_checks(results)
    return results


def run_benchmark(settings: RunSettings, log: Callable[[str], None] = print) -> dict:
    return Run(settings, log)()
