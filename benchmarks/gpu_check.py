"""The real IMAC configuration on the device it is meant for, with random weights of the real sizes.

    .venv/bin/python benchmarks/gpu_check.py --size full --device cuda      # one GPU, ~5 minutes
    .venv/bin/python benchmarks/gpu_check.py --size reduced --device cpu    # CI: same code, small widths

Builds the ``i2vgenxl`` configuration (``imac/configs/i2vgenxl.yaml``: 512 x 512, motion windows of
80 frames, video windows of 16, ``train.mixed_precision`` and gradient checkpointing as configured)
with randomly initialised networks of the published architectures, since the weights cannot be
downloaded here:

- UNet: diffusers' ``I2VGenXLUNet`` with the ali-vilab/i2vgen-xl release's settings (``UNET``:
  4 levels of 320/640/1280/1280 channels, 2 layers per block, cross-attention width 1024, head
  width 64 -- diffusers' defaults for the class);
- VAE: Stable Diffusion 2.1's ``AutoencoderKL`` (``VAE``: 128/256/512/512, 4 latent channels,
  scaling 0.18215), written once to a temporary folder because the config names a VAE folder;
- CLIP image encoder: OpenCLIP ViT-H/14 (``IMAGE_ENCODER``: width 1280, 32 layers, projection
  1024); text context: 77 tokens of width 1024 (the prompt's shape; the text encoder is not run);
- HuBERT: hubert-large's architecture (``HUBERT``: 24 layers of width 1024).

``--size reduced`` keeps every part's structure (4 UNet levels, the same block types, the real
frame counts) with small widths and 128 x 128 frames, so that CI checks in well under a minute that
the script runs. Networks are built directly on ``--device`` (under ``torch.device``), so the full
size does not spend minutes initialising 1.4 billion parameters on the host CPU.

Printed (and written as JSON with ``--json FILE``):

1. build: seconds to build both stages' models on the device;
2. stage-1 training: seconds per step and peak memory at the config's batch (32 windows of 80 frames);
3. stage-2 training: seconds per step and peak memory at the config's batch, with the paper's
   slow-fast windows (motion 80 / video 16), and the peak memory of one step with motion 80 /
   video 80: the slow-fast memory ratio, of the memory each step adds above the weights and
   optimiser states it starts with (an out-of-memory error is reported as such);
4. sampling at the config's steps and guidance, in seconds per generated second: HuBERT, the
   motion windows and the chunked video (``sampling_cost``).

Peak memory is ``torch.cuda.max_memory_allocated`` (CUDA only; "n/a" on a CPU). Every step runs
the project's own code: ``build_stage_model``, ``IMACModel.forward`` under ``accelerate`` with the
config's mixed precision, and ``IMACPipeline.sample_video``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import transformers
from accelerate import Accelerator
from diffusers import AutoencoderKL

from imac.config import load_config
from imac.pipeline import IMACPipeline
from imac.training.trainer import build_stage_model
from metrics.io.files import write_text_atomic

POSE_DIM = 129          # the 43 upper-body joints' axis-angles of the prepared datasets
TEXT_TOKENS = 77        # CLIP's context length: the prompt's shape

UNET = dict(in_channels=4, out_channels=4,
            down_block_types=["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
            up_block_types=["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
            block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, norm_num_groups=32,
            cross_attention_dim=1024, attention_head_dim=64)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           block_out_channels=[128, 256, 512, 512], scaling_factor=0.18215, sample_size=768)
IMAGE_ENCODER = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                     image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu")
HUBERT = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
              feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)

REDUCED = {
    "unet": dict(UNET, block_out_channels=[16, 16, 32, 32], layers_per_block=1, norm_num_groups=8,
                 cross_attention_dim=32, attention_head_dim=8),
    "vae": dict(VAE, block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4, sample_size=64),
    "image_encoder": dict(IMAGE_ENCODER, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
    "hubert": dict(HUBERT, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                   conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
    "overrides": ["data.resolution=128", "stage1.batch_size=2", "audio.width=32", "audio.mfcc_width=16",
                  "motion.width=32", "motion.layers=1", "video.reference_widths=[8,8,16,16]",
                  "video.motion_context_width=32", "video.sample_steps=2", "motion.sample_steps=2"],
}
FULL = {"unet": UNET, "vae": VAE, "image_encoder": IMAGE_ENCODER, "hubert": HUBERT, "overrides": []}


def architecture(size: str) -> dict:
    """The network settings and config overrides of ``size`` ("full" or "reduced")."""
    if size not in ("full", "reduced"):
        raise ValueError(f"--size must be full or reduced, got {size!r}")
    return FULL if size == "full" else REDUCED


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


@contextmanager
def timed(device: torch.device, into: dict, key: str):
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    into[key] = round(time.perf_counter() - start, 3)


def random_batch(config, stage: str, video_frames: int | None, hubert_dim: int, device: torch.device,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of the trainer's layout (``imac.training.windows``) with random values, on ``device``."""
    settings = config.stage1 if stage == "stage1" else config.stage2
    g = torch.Generator().manual_seed(seed)
    b, f = settings.batch_size, settings.motion_frames
    batch = {"pose": torch.randn(b, f, POSE_DIM, generator=g),
             "expression": torch.randn(b, f, config.motion.expression_dim, generator=g),
             "mfcc": torch.randn(b, f, config.audio.n_mfcc, generator=g),
             "hubert": torch.randn(b, f, hubert_dim, generator=g)}
    if video_frames is not None:
        size = config.data.resolution
        batch["frames"] = torch.rand(b, video_frames, 3, size, size, generator=g) * 2 - 1
        batch["video_start"] = torch.zeros(b, dtype=torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def build_model(config, stage: str, hubert_dim: int, device: torch.device, report: dict):
    """``build_stage_model`` with parameters created on ``device``; on the host if that fails (said in ``report``)."""
    try:
        with torch.device(device):
            model = build_stage_model(config, stage, POSE_DIM, hubert_dim, None)
        report[f"{stage}_built_on"] = str(device)
    except Exception as error:  # noqa: BLE001 - reported, then the host path is taken
        report[f"{stage}_built_on"] = f"host ({type(error).__name__}: {str(error)[:160]})"
        model = build_stage_model(config, stage, POSE_DIM, hubert_dim, None)
    model = model.to(device)
    if model.has_video:  # the prompt's shape: the text encoder itself is not part of the check
        model.text_context = torch.randn(1, TEXT_TOKENS, model.unet.config.cross_attention_dim, device=device)
    return model


def training_steps(accelerator: Accelerator, model, stage: str, batch: dict, steps: int, warmup: int = 1) -> dict:
    """Seconds per optimiser step (after ``warmup`` steps) and peak memory, with the trainer's calls."""
    device = accelerator.device
    model.train()
    if model.has_video:
        model.vae.eval()
        model.image_encoder.eval()
    parameters = [p for m in model.trainable_modules(stage) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    model, optimizer = accelerator.prepare(model, optimizer)
    reset_peak(device)
    result: dict = {}
    before = 0
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            start = time.perf_counter()
        if index == warmup + steps - 1 and device.type == "cuda":  # the last step's own peak, above what is held
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        loss = model(batch, stage)["loss"]
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    result["seconds_per_step"] = round((time.perf_counter() - start) / steps, 3)
    result["peak_GiB"] = peak_gib(device)
    result["step_GiB"] = None if device.type != "cuda" else round(result["peak_GiB"] - before / 2**30, 2)
    result["loss_finite"] = bool(torch.isfinite(loss.detach()).item())
    return result


def one_step_memory(accelerator: Accelerator, model, batch: dict) -> dict:
    """Peak memory of one stage-2 step; an out-of-memory error is a result, not a failure."""
    try:
        return training_steps(accelerator, model, "stage2", batch, steps=1, warmup=0)
    except torch.OutOfMemoryError as error:
        return {"out_of_memory": str(error).splitlines()[0][:200], "peak_GiB": peak_gib(accelerator.device)}


def sampling_cost(config, model, hubert, device: torch.device) -> dict:
    """Seconds per generated second of each sampling part, at the config's steps and guidance.

    HuBERT on random audio (1 s and 3 s), ``IMACPipeline.sample_motion`` on random audio features
    (1 and 3 motion windows) and ``IMACPipeline.sample_video`` on random motion features (1 and 3
    chunks); each slope is (time of 3 - time of 1) / (seconds of 3 - seconds of 1), so the fixed
    costs (the first call's set-up) drop out. MFCCs are computed on the host and are not timed.
    """
    model.eval()
    pipeline = IMACPipeline(config, model, hubert, "random-hubert", "stage2")
    fps, chunk, window = config.fps, config.video.frames, config.stage1.motion_frames
    generator = torch.Generator(device=device).manual_seed(0)
    reference = torch.rand(3, config.data.resolution, config.data.resolution, device=device) * 2 - 1
    width = model.video_feature_width
    result: dict = {"video_steps": config.video.sample_steps, "motion_steps": config.motion.sample_steps,
                    "guidance_scale": config.video.guidance_scale, "precision": config.video.sample_precision}

    def hubert_part(k: int) -> float:
        with torch.no_grad():
            hubert(torch.randn(1, int(k * config.audio.sample_rate), device=device))
        return float(k)

    def motion_part(k: int) -> float:
        frames = k * window
        rng = np.random.default_rng(k)
        pipeline.sample_motion(rng.standard_normal((frames, config.audio.n_mfcc), dtype=np.float32),
                               rng.standard_normal((frames, model.motion.config.hubert_dim), dtype=np.float32),
                               generator)
        return frames / fps

    def video_part(k: int) -> float:
        frames = chunk + (k - 1) * (chunk - 1)
        video = pipeline.sample_video(reference, torch.randn(1, frames, width, device=device), generator)
        if video.shape[0] != frames or not torch.isfinite(video).all():
            raise RuntimeError(f"sample_video gave {tuple(video.shape)} frames with non-finite values")
        return frames / fps

    hubert_part(1)  # warm-up: the first call's kernel selection is not a per-second cost
    for name, part in (("hubert", hubert_part), ("motion", motion_part), ("video", video_part)):
        points = []
        for k in (1, 3):
            reset_peak(device)
            timing: dict = {}
            with timed(device, timing, "s"):
                seconds = part(k)
            points.append((seconds, timing["s"]))
        (d1, t1), (d3, t3) = points
        result[name] = {"generated_seconds": [round(d1, 2), round(d3, 2)], "wall_seconds": [t1, t3],
                        "seconds_per_generated_second": round((t3 - t1) / (d3 - d1), 3),
                        "peak_GiB": peak_gib(device)}
    result["seconds_per_generated_second"] = round(sum(result[n]["seconds_per_generated_second"]
                                                       for n in ("hubert", "motion", "video")), 3)
    return result


def write_vae(folder: Path, settings: dict) -> Path:
    """A random ``AutoencoderKL`` of ``settings`` saved where ``video.vae`` can load it."""
    torch.manual_seed(0)
    AutoencoderKL(**settings).save_pretrained(folder)
    return folder


def random_weights_config(arch: dict, folder: Path, overrides: list[str]):
    """The i2vgenxl config for ``arch``'s networks with random weights: no pretrained folders, the VAE
    written to ``folder``/vae (``write_vae``), then ``overrides``."""
    vae = write_vae(folder / "vae", arch["vae"])
    return load_config("i2vgenxl", ["video.pretrained=null", "stage2.init_from=null", f"video.vae={vae}",
                                    f"video.unet={json.dumps(arch['unet'])}",
                                    f"video.image_encoder={json.dumps(arch['image_encoder'])}", *overrides])


def run(size: str, device_name: str, overrides: list[str] = (), steps: int = 3) -> dict:
    arch = architecture(size)
    device = torch.device(device_name)
    with tempfile.TemporaryDirectory() as temporary:
        config = random_weights_config(arch, Path(temporary), [*arch["overrides"], *overrides])
        if device.type == "cpu":  # the trainer's rule: mixed precision applies on CUDA only
            config.train.mixed_precision = "no"
            config.video.sample_precision = "no"
        accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision=config.train.mixed_precision)
        hubert_dim = arch["hubert"]["hidden_size"]
        report: dict = {"size": size, "device": str(device), "resolution": config.data.resolution,
                        "motion_frames": config.stage2.motion_frames, "video_frames": config.video.frames,
                        "mixed_precision": config.train.mixed_precision,
                        "gradient_checkpointing": config.train.gradient_checkpointing,
                        "torch": torch.__version__}
        if device.type == "cuda":
            report["gpu"] = torch.cuda.get_device_name(device)
        timings: dict = {}
        with timed(device, timings, "stage1_seconds"):
            stage1 = build_model(config, "stage1", hubert_dim, device, timings)
        report["stage1"] = training_steps(accelerator, stage1, "stage1",
                                          random_batch(config, "stage1", None, hubert_dim, device), steps=steps)
        del stage1
        with timed(device, timings, "stage2_seconds"):
            stage2 = build_model(config, "stage2", hubert_dim, device, timings)
        report["build"] = timings
        report["parameters_M"] = {name: round(sum(p.numel() for p in part.parameters()) / 1e6, 1)
                                  for name, part in (("unet", stage2.unet), ("vae", stage2.vae),
                                                     ("image_encoder", stage2.image_encoder),
                                                     ("coupling", stage2.coupling), ("motion", stage2.motion))}
        fast = random_batch(config, "stage2", config.video.frames, hubert_dim, device)
        report["stage2"] = training_steps(accelerator, stage2, "stage2", fast, steps=steps)
        accelerator.free_memory()  # the first optimizer's states go before the 80-frame step
        slow = random_batch(config, "stage2", config.stage2.motion_frames, hubert_dim, device)
        report["stage2_video80"] = one_step_memory(accelerator, stage2, slow)
        del fast, slow
        accelerator.free_memory()
        step16, step80 = report["stage2"].get("step_GiB"), report["stage2_video80"].get("step_GiB")
        if step16 and step80:  # memory a step adds above the weights and optimizer states it starts with
            report["slow_fast_memory_ratio_80_over_16"] = round(step80 / step16, 2)
        stage2 = accelerator.unwrap_model(stage2)
        with torch.device(device):
            hubert = transformers.HubertModel(transformers.HubertConfig(**arch["hubert"])).eval()
        report["sampling"] = sampling_cost(config, stage2, hubert, device)
    return report


def print_report(report: dict) -> None:
    def gib(value):
        return "n/a" if value is None else f"{value:.1f} GiB"

    s1, s2, s80, smp = report["stage1"], report["stage2"], report["stage2_video80"], report["sampling"]
    print(f"{report['size']} i2vgenxl on {report.get('gpu', report['device'])}, {report['resolution']} px, "
          f"motion {report['motion_frames']} / video {report['video_frames']} frames, "
          f"{report['mixed_precision']}, checkpointing {report['gradient_checkpointing']}, torch {report['torch']}")
    print(f"parameters (M): {report['parameters_M']}")
    b = report["build"]
    print(f"1. build: stage 1 {b['stage1_seconds']} s on {b['stage1_built_on']}, "
          f"stage 2 {b['stage2_seconds']} s on {b['stage2_built_on']}")
    print(f"2. stage-1 step: {s1['seconds_per_step']} s, peak {gib(s1['peak_GiB'])} (the step adds {gib(s1['step_GiB'])})")
    m, v = report["motion_frames"], report["video_frames"]
    print(f"3. stage-2 step (motion {m} / video {v}): {s2['seconds_per_step']} s, peak {gib(s2['peak_GiB'])} "
          f"(the step adds {gib(s2['step_GiB'])}); "
          + (f"motion {m} / video {m}: out of memory ({s80['out_of_memory']})" if "out_of_memory" in s80 else
             f"motion {m} / video {m}: {s80['seconds_per_step']} s, peak {gib(s80['peak_GiB'])} "
             f"(adds {gib(s80['step_GiB'])}); "
             f"ratio {report.get('slow_fast_memory_ratio_80_over_16', 'n/a')}"))
    parts = "; ".join(f"{name} {smp[name]['seconds_per_generated_second']} (wall {smp[name]['wall_seconds']} s "
                      f"for {smp[name]['generated_seconds']} s, peak {gib(smp[name]['peak_GiB'])})"
                      for name in ("hubert", "motion", "video"))
    print(f"4. sampling, seconds per generated second (video {smp['video_steps']} steps, motion "
          f"{smp['motion_steps']} steps, guidance {smp['guidance_scale']}, {smp['precision']}): {parts}; "
          f"total {smp['seconds_per_generated_second']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "reduced"), default="full")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--override", action="append", default=[], help="key.sub=value on the i2vgenxl config")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per stage (after one warm-up)")
    parser.add_argument("--json", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    report = run(args.size, args.device, args.override, args.steps)
    print_report(report)
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
