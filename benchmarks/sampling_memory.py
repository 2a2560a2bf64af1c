"""Memory of IMAC's whole-video sampling against the video's length, at the i2vgenxl frame size.

    .venv/bin/python benchmarks/sampling_memory.py                       # CPU: 512 px, 4 and 24 s of speech
    .venv/bin/python benchmarks/sampling_memory.py --device cuda --seconds 4 40

Samples a video with ``IMACPipeline.__call__`` (the whole video as one uint8 array: what ``imac-bench run``
calls) and with ``IMACPipeline.stream`` into ``metrics.io.video.write_video`` (what ``imac sample`` does) for
each length of random speech, each in a fresh process, and prints the peak memory of each: the
process's peak resident set (``peak_memory``: VmHWM) and, on CUDA, ``torch.cuda.max_memory_allocated``. The
model is ``benchmarks/gpu_check.py``'s reduced architecture (random weights, small widths) at
``--resolution`` (512: the i2vgenxl frames), with one video step and one motion step and no
guidance, so that the frames, not the networks, set the memory; its slope, in MiB per generated
second, is set beside the frames' own size (``resolution`` squared x 3 bytes x 25 fps).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_check  # noqa: E402
from peak_memory import peak_rss_bytes  # noqa: E402

from imac.pipeline import IMACPipeline  # noqa: E402
from metrics.io.video import write_video  # noqa: E402

WAYS = ("call", "stream")


def pipeline_of(resolution: int, device: torch.device, folder: Path) -> IMACPipeline:
    """A random-weight stage-2 pipeline of gpu_check's reduced architecture at ``resolution``."""
    arch = gpu_check.REDUCED
    config = gpu_check.random_weights_config(arch, folder, [
        *arch["overrides"], f"data.resolution={resolution}", "video.sample_steps=1", "motion.sample_steps=1",
        "video.guidance_scale=1", "video.sample_precision=no"])      # (later overrides win)
    model = gpu_check.build_model(config, "stage2", arch["hubert"]["hidden_size"], device, {}).eval()
    import transformers
    with torch.device(device):
        hubert = transformers.HubertModel(transformers.HubertConfig(**arch["hubert"])).eval()
    return IMACPipeline(config, model, hubert, "random-hubert", "stage2")


def one(way: str, seconds: float, resolution: int, device_name: str) -> dict:
    """Sample ``seconds`` of random speech one ``way``; the process's peaks."""
    torch.set_num_threads(1)
    device = torch.device(device_name)
    with tempfile.TemporaryDirectory() as temporary:
        pipeline = pipeline_of(resolution, device, Path(temporary))
        audio = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)
        reference = torch.rand(3, resolution, resolution, device=device) * 2 - 1
        generator = torch.Generator(device=device).manual_seed(0)
        before = peak_rss_bytes() / 2**20
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            if way == "call":
                frames = len(pipeline(reference, audio, 16000, generator=generator).frames)
            else:
                sample = pipeline.stream(reference, audio, 16000, generator=generator)
                write_video(Path(temporary) / "out.mp4", sample.frames, sample.fps, preset="ultrafast")
                frames = sample.num_frames
    return {"way": way, "seconds": seconds, "frames": frames, "before_MiB": round(before, 1),
            "peak_MiB": round(peak_rss_bytes() / 2**20, 1),
            "device_peak_MiB": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda" else None}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seconds", type=float, nargs=2, default=(4.0, 24.0), metavar=("SHORT", "LONG"))
    parser.add_argument("--ways", default=",".join(WAYS), help=f"of {', '.join(WAYS)}")
    parser.add_argument("--one", nargs=2, metavar=("WAY", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], float(args.one[1]), args.resolution, args.device)))
        return []
    results = []
    for way in args.ways.split(","):
        for seconds in args.seconds:
            done = subprocess.run([sys.executable, __file__, "--one", way, str(seconds), "--device", args.device,
                                   "--resolution", str(args.resolution)], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{way} {seconds} s failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    frame_mib = args.resolution ** 2 * 3 / 2**20 * 25
    (short, long) = args.seconds
    for way in args.ways.split(","):
        a, b = (r for r in results if r["way"] == way)
        slope = (b["peak_MiB"] - a["peak_MiB"]) / (long - short)
        device = ("" if a["device_peak_MiB"] is None else
                  f", device {(b['device_peak_MiB'] - a['device_peak_MiB']) / (long - short):.1f} MiB/s")
        print(f"{way}: peak RSS {a['peak_MiB']:.0f} MiB at {short:g} s, {b['peak_MiB']:.0f} MiB at {long:g} s: "
              f"{slope:.1f} MiB per generated second ({slope / frame_mib:.2f}x the uint8 frames' "
              f"{frame_mib:.1f} MiB/s){device}")
    return results


if __name__ == "__main__":
    main()
