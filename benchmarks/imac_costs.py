"""Costs of the IMAC model on the tiny configuration (or any config), measured side by side.

    .venv/bin/python benchmarks/imac_costs.py [--config tiny] [--device cpu|cuda] [--vae DIR]

1. Slow-fast memory: peak memory of ONE stage-2 training step (forward + backward) with the
   paper's windows (motion 80, video 16) versus (motion 80, video 80), same config and batch.
   On CPU each setting runs in a fresh process and reports its peak resident memory above the
   memory held after building the model (peak resident set, VmHWM: ``peak_memory``); on CUDA,
   torch.cuda.max_memory_allocated.
2. Sampling cost against audio length: wall time of IMACPipeline on 1x, 2x, 4x a base duration
   (motion sampling + chunked video), with the least-squares slope (seconds per second of audio)
   and intercept.
3. Training throughput (windows per second) of stage 1 and stage 2 steps on random batches of
   the config's shapes, after warm-up steps.

The model is untrained (random weights of the config's shapes); costs do not depend on training.
The tiny config needs a VAE folder: the one `imac train vae --config tiny` wrote, or --vae.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_memory import peak_rss_bytes  # noqa: E402

from imac.audio_features import load_hubert  # noqa: E402
from imac.config import load_config  # noqa: E402
from imac.pipeline import IMACPipeline  # noqa: E402
from imac.training.trainer import build_stage_model  # noqa: E402

POSE_DIM = 129


def random_batch(model, batch_size: int, motion_frames: int, video_frames: int | None, resolution: int,
                 device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    motion = model.motion.config
    batch = {"pose": torch.randn(batch_size, motion_frames, motion.pose_dim, generator=g),
             "expression": torch.randn(batch_size, motion_frames, motion.expression_dim, generator=g),
             "mfcc": torch.randn(batch_size, motion_frames, motion.n_mfcc, generator=g),
             "hubert": torch.randn(batch_size, motion_frames, motion.hubert_dim, generator=g)}
    if video_frames is not None:
        batch["frames"] = torch.rand(batch_size, video_frames, 3, resolution, resolution, generator=g) * 2 - 1
        batch["video_start"] = torch.zeros(batch_size, dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def build(config, stage: str, device):
    model = build_stage_model(config, stage, POSE_DIM, 16 if config.audio.hubert == "tiny" else 1024, None)
    return model.to(device).train()


def one_step_memory(args) -> None:
    """Child process: print the peak memory of one stage-2 step for --video-frames."""
    config = load_config(args.config, args.override)
    device = torch.device(args.device)
    model = build(config, "stage2", device)
    parameters = [p for m in model.trainable_modules("stage2") for p in m.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    batch = random_batch(model, config.stage2.batch_size, config.stage2.motion_frames, args.video_frames,
                         config.data.resolution, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = peak_rss_bytes()
    model(batch, "stage2")["loss"].backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = peak_rss_bytes()
    print(json.dumps({"video_frames": args.video_frames, "peak_bytes_above_model": peak - base,
                      "peak_bytes": peak}))


def memory_ratio(args) -> dict:
    results = {}
    for frames in (16, 80):
        command = [sys.executable, __file__, "--child-memory", "--video-frames", str(frames), "--config",
                   args.config, "--device", args.device, *[x for o in args.override for x in ("--override", o)]]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[frames] = json.loads(output.strip().splitlines()[-1])
    ratio = results[80]["peak_bytes_above_model"] / results[16]["peak_bytes_above_model"]
    return {"video16_MB": results[16]["peak_bytes_above_model"] / 2**20,
            "video80_MB": results[80]["peak_bytes_above_model"] / 2**20, "ratio_80_over_16": ratio}


def sampling_times(args, config, device) -> dict:
    torch.manual_seed(0)
    model = build(config, "stage2", device).eval()
    pipeline = IMACPipeline(config, model, load_hubert(tiny=True, device=device), "tiny-seed0", "stage2")
    reference = torch.rand(3, config.data.resolution, config.data.resolution, device=device) * 2 - 1
    durations = [args.base_seconds * k for k in (1, 2, 4)]
    rate = config.audio.sample_rate
    pipeline(reference, np.zeros(rate, np.float32) + 0.01, rate)  # warm-up
    times = []
    for seconds in durations:
        t = np.arange(int(seconds * rate)) / rate
        audio = (0.3 * np.sin(2 * np.pi * 160 * t)).astype(np.float32)
        start = time.perf_counter()
        pipeline(reference, audio, rate, generator=torch.Generator(device=device).manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    slope, intercept = np.polyfit(durations, times, 1)
    return {"audio_seconds": durations, "wall_seconds": [round(x, 2) for x in times],
            "slope_s_per_audio_s": round(float(slope), 3), "intercept_s": round(float(intercept), 3)}


def throughput(config, stage: str, device, steps: int, warmup: int = 2) -> dict:
    settings = config.stage1 if stage == "stage1" else config.stage2
    model = build(config, stage, device)
    parameters = [p for m in model.trainable_modules(stage) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    batch = random_batch(model, settings.batch_size, settings.motion_frames,
                         config.video.frames if stage == "stage2" else None, config.data.resolution, device)
    for index in range(warmup + steps):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        model(batch, stage)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"batch_size": settings.batch_size, "steps": steps, "steps_per_s": round(steps / seconds, 3),
            "samples_per_s": round(steps * settings.batch_size / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--override", action="append", default=[], help="key.sub=value (repeatable)")
    parser.add_argument("--vae", default=None, help="VAE folder for a config without video.pretrained")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base-seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video-frames", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.override.insert(0, "stage2.init_from=null")  # random weights: costs do not depend on training
    if args.vae:
        args.override.append(f"video.vae={args.vae}")
    if args.child_memory:
        one_step_memory(args)
        return
    config = load_config(args.config, args.override)
    device = torch.device(args.device)
    print(f"config {args.config}, device {device}, torch threads {torch.get_num_threads()}", flush=True)
    memory = memory_ratio(args)
    print("1. one stage-2 step, peak memory above the built model: motion 80 / video 16: "
          f"{memory['video16_MB']:.0f} MB; motion 80 / video 80: {memory['video80_MB']:.0f} MB; "
          f"ratio {memory['ratio_80_over_16']:.2f}", flush=True)
    sampling = sampling_times(args, config, device)
    print(f"2. sampling: audio {sampling['audio_seconds']} s -> {sampling['wall_seconds']} s; "
          f"slope {sampling['slope_s_per_audio_s']} s per audio second, intercept {sampling['intercept_s']} s",
          flush=True)
    for stage in ("stage1", "stage2"):
        result = throughput(config, stage, device, args.steps)
        print(f"3. {stage} training: batch {result['batch_size']}, {result['steps_per_s']} steps/s, "
              f"{result['samples_per_s']} samples/s", flush=True)
    print(json.dumps({"memory": memory, "sampling": sampling}))


if __name__ == "__main__":
    main()
