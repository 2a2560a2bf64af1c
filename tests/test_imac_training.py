"""Slow-fast windows, the stage-2 losses and gradients, training runs, resumption, ablations."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.dataset import ClipRecord
from imac.cli import training_summary
from imac.config import load_config
from imac.training.trainer import build_stage_model, train
from imac.models import noise as draws
from imac.training.windows import (ClipArrays, GlobalBatches, TrainingWindows, item_seed, video_window_start,
                                   window_positions)
from tests.imac_fixtures import RESOLUTION, make_corpus, make_vae, tiny_config
from tests.launch_output import failed_launch


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "toy")


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return make_vae(tmp_path_factory.mktemp("vae") / "vae")


def synthetic_clip(num_frames: int, label: str = "a/clip") -> ClipArrays:
    """Arrays whose values are the frame index, so any slice says where it came from."""
    index = np.arange(num_frames, dtype=np.float32)[:, None]
    frames = np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None] * 2,
                             (num_frames, RESOLUTION, RESOLUTION, 3)).copy()
    record = ClipRecord(identity=label.split("/")[0], split="train", clip_id=label.split("/")[1], video=None,
                        audio=None, motion=None, keypoints=None, fps=25, num_frames=num_frames,
                        width=RESOLUTION, height=RESOLUTION, root=None, extra={})
    return ClipArrays(record, np.repeat(index, 3, 1), np.repeat(index, 2, 1), np.repeat(index, 4, 1),
                      np.repeat(index, 5, 1), frames)


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(10, 60), min_size=1, max_size=4), motion=st.integers(2, 30),
       video=st.integers(1, 30), seed=st.integers(0, 1000), pick=st.integers(0, 10_000))
def test_video_window_lies_inside_the_motion_window_with_its_own_frames(lengths, motion, video, seed, pick):
    if video > motion or max(lengths) < motion:
        return
    clips = [synthetic_clip(n, f"s/c{i}") for i, n in enumerate(lengths)]
    windows = TrainingWindows(clips, motion, video, RESOLUTION, seed=seed)
    assert len(windows) == sum(n - motion + 1 for n in lengths if n >= motion)
    assert len(windows.skipped) == sum(n < motion for n in lengths)
    item = windows[(pick % len(windows), seed)]
    start = int(item["pose"][0, 0])
    np.testing.assert_array_equal(item["pose"][:, 0].numpy(), np.arange(start, start + motion))
    for name in ("expression", "mfcc", "hubert"):
        np.testing.assert_array_equal(item[name][:, 0].numpy(), item["pose"][:, 0].numpy())
    offset = int(item["video_start"])
    assert 0 <= offset <= motion - video
    # The video frames are the frames of motion rows offset .. offset + video - 1.
    pixel = ((item["frames"][:, 0, 0, 0] + 1) * 127.5).round().numpy() / 2
    np.testing.assert_array_equal(pixel, np.arange(start + offset, start + offset + video))


def test_window_helpers():
    assert window_positions([3, 5], 3).tolist() == [[0, 0], [1, 0], [1, 1], [1, 2]]
    rng = np.random.default_rng(0)
    starts = {video_window_start(80, 16, rng) for _ in range(2000)}
    assert min(starts) == 0 and max(starts) == 64
    with pytest.raises(ValueError, match="must fit"):
        video_window_start(16, 80, rng)
    with pytest.raises(ValueError, match=re.escape("no training clip has 80 frames (stage2.motion_frames); the longest "
                                                   "has 50: 2 shorter clip(s) skipped; give stage2.motion_frames of at "
                                                   "most 50")):
        TrainingWindows([synthetic_clip(40), synthetic_clip(50)], 80, 16, RESOLUTION, setting="stage2.motion_frames")


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 40), batch=st.integers(1, 6), processes=st.integers(1, 4), start=st.integers(0, 20))
def test_global_batches_are_the_same_for_any_number_of_processes(size, batch, processes, start):
    """N processes of batch B together draw exactly what one process of batch N B draws, step by step."""
    def steps(sampler, count):
        it = iter(sampler)
        return [next(it) for _ in range(count)]

    single = steps(GlobalBatches(size, batch * processes, 1, 0, seed=3, start=start), 5)
    ranks = [steps(GlobalBatches(size, batch, processes, r, seed=3, start=start), 5) for r in range(processes)]
    for k in range(5):
        assert single[k] == [pair for r in range(processes) for pair in ranks[r][k]]
    # every epoch is a permutation of the windows: a direct count over the first epochs
    drawn = [w for b in steps(GlobalBatches(size, batch, 1, 0, seed=3), size * 2) for w, _ in b][:size * 2]
    assert sorted(drawn[:size]) == list(range(size)) == sorted(drawn[size:])
    assert single[0][0][1] == item_seed(3, start * batch * processes)


def test_per_sample_draws_do_not_depend_on_the_batch():
    seeds = torch.tensor([5, 9, 11])
    whole = draws.randn((3, 4, 2), draws.per_sample_generators(seeds, "cpu"), "cpu")
    alone = draws.randn((1, 4, 2), draws.per_sample_generators(seeds[1:2], "cpu"), "cpu")
    torch.testing.assert_close(whole[1:2], alone)
    direct = torch.randn((4, 2), generator=torch.Generator().manual_seed(9))      # torch's own draw for seed 9
    torch.testing.assert_close(whole[1], direct)
    steps = draws.randint(1000, 3, draws.per_sample_generators(seeds, "cpu"), "cpu")
    assert steps[2] == torch.randint(0, 1000, (1,), generator=torch.Generator().manual_seed(11))[0]
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        draws.rand(3, draws.per_sample_generators(seeds[:2], "cpu"), "cpu")


def stage2_batch(model, batch_size=2, motion_frames=20, video_frames=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose_dim = model.motion.config.pose_dim
    return {"pose": torch.randn(batch_size, motion_frames, pose_dim, generator=g),
            "expression": torch.randn(batch_size, motion_frames, 100, generator=g),
            "mfcc": torch.randn(batch_size, motion_frames, 13, generator=g),
            "hubert": torch.randn(batch_size, motion_frames, 16, generator=g),
            "frames": torch.rand(batch_size, video_frames, 3, RESOLUTION, RESOLUTION, generator=g) * 2 - 1,
            "video_start": torch.tensor([0, motion_frames - video_frames])[:batch_size]}


def test_stage2_gradients_reach_every_trained_part(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path, ["video.condition_dropout=0.0"])
    model = build_stage_model(config, "stage2", pose_dim=9, hubert_dim=16, normalization=None).train()
    parameters = [p for m in model.trainable_modules("stage2") for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    batch = stage2_batch(model)
    # Step once so that the zero-initialised output projections stop blocking the gradient.
    model(batch, "stage2")["loss"].backward()
    optimizer.step()
    optimizer.zero_grad()
    losses = model(batch, "stage2", generator=torch.Generator().manual_seed(1))
    assert set(losses) == {"loss", "video_loss", "motion_loss"}
    losses["loss"].backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    coupling, motion = model.coupling, model.motion
    parts = {"reference encoder": coupling.reference_encoder, "reference projections": coupling.reference_out,
             "motion cross-attention K/V": torch.nn.ModuleList([a.to_k for a in coupling.motion_attention]),
             "motion cross-attention out": torch.nn.ModuleList([a.to_out for a in coupling.motion_attention]),
             "pose encoder": motion.pose_stream.encoder, "expression encoder": motion.expression_stream.encoder,
             "audio encoder": motion.audio_encoder, "unet": model.unet}
    for name, module in parts.items():
        assert grad_norm(module) > 0, name
    # Frozen parts get nothing.
    assert all(p.grad is None for p in model.vae.parameters())
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_motion_map_is_fed_the_normalised_pose_and_trained(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path, ["video.condition_dropout=0.0", "video.motion_map=4"])
    model = build_stage_model(config, "stage2", pose_dim=9, hubert_dim=16, normalization=None).train()
    assert model.video_feature_width == model.motion.feature_width + 9
    assert model.coupling.motion_map.size == RESOLUTION // 4 == config.video.unet["sample_size"]  # the latent grid
    batch = stage2_batch(model)
    pose, expression = model.motion.normalize(batch["pose"], batch["expression"])
    with torch.no_grad():
        model.eval()                                     # no dropout: the two calls must agree
        features = model.video_features(pose, expression, batch["mfcc"], batch["hubert"])
        representation = model.motion.representation(pose, expression, batch["mfcc"], batch["hubert"])
        model.train()
    torch.testing.assert_close(features[..., -9:], pose, rtol=0, atol=0)
    torch.testing.assert_close(features[..., :-9], representation, rtol=0, atol=0)
    optimizer = torch.optim.Adam([p for m in model.trainable_modules("stage2") for p in m.parameters()], lr=1e-3)
    model(batch, "stage2")["loss"].backward()          # one step opens the zero-initialised projections
    optimizer.step()
    optimizer.zero_grad()
    model(batch, "stage2", generator=torch.Generator().manual_seed(1))["loss"].backward()
    assert float(model.coupling.motion_map.linear.weight.grad.abs().sum()) > 0
    assert all(float(conv.weight.grad.abs().sum()) > 0 for conv in model.coupling.motion_map_out)
    # without motion (the w/o-motion ablation) there is no map: from zeros it would learn a constant bias
    silent = build_stage_model(tiny_config(corpus, vae, tmp_path, ["video.motion_map=4", "motion.enabled=false"]),
                               "stage2", pose_dim=9, hubert_dim=16, normalization=None)
    assert silent.coupling.motion_map is None and silent.video_feature_width == silent.motion.feature_width
    with torch.no_grad():
        features = silent.video_features(pose, expression, batch["mfcc"], batch["hubert"])
    assert features.shape[-1] == silent.motion.feature_width


@pytest.mark.parametrize("overrides", [
    ["video.reference_encoder=false"],   # w/o reference encoder
    ["motion.enabled=false"],             # w/o motion
    ["stage2.motion_frames=16"],          # w/o slow-fast (the motion window is the video window)
], ids=["no-reference-encoder", "no-motion", "no-slow-fast"])
def test_ablations_build_and_run_a_stage2_step(corpus, vae, tmp_path, overrides):
    config = tiny_config(corpus, vae, tmp_path, overrides)
    model = build_stage_model(config, "stage2", pose_dim=9, hubert_dim=16, normalization=None).train()
    frames = config.stage2.motion_frames if "stage2.motion_frames=16" in overrides else 20
    losses = model(stage2_batch(model, motion_frames=frames), "stage2")
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    if "video.reference_encoder=false" in overrides:
        assert model.coupling.reference_encoder is None
    if "motion.enabled=false" in overrides:
        assert float(losses["motion_loss"]) == 0.0


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_runs_both_stages_resumes_and_skips_the_first_stage_for_the_ablation(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path, ["stage1.motion_frames=80", "train.save_every=2"])
    first = train(config, "stage1", progress=False, max_steps=3)
    assert first.steps == 3 and (first.model_dir / "imac.json").is_file()
    assert [line["step"] for line in read_log(first.log)] == [1, 2, 3]
    assert all(np.isfinite(line["motion_loss"]) and line["samples_per_s"] > 0 for line in read_log(first.log))
    # A second run continues from the checkpoint written at the end of the first.
    resumed = train(config, "stage1", progress=False, max_steps=5)
    assert [line["step"] for line in read_log(resumed.log)] == [1, 2, 3, 4, 5]
    checkpoints = sorted(p.name for p in (tmp_path / "stage1" / "checkpoints").iterdir())
    assert checkpoints == ["step-4", "step-5"]
    # what `imac train` prints: this run's steps, where it resumed, what the losses average
    assert (first.first_step, resumed.first_step, resumed.steps, resumed.last_window) == (0, 3, 5, 1)
    assert training_summary(first).startswith("3 steps in ")
    # one step: "1 step", "step 3" (before: "1 steps", "steps 3-3")
    assert training_summary(dataclasses.replace(first, steps=1)).startswith("1 step in ")
    assert training_summary(dataclasses.replace(first, first_step=2)).startswith("step 3 (resumed at step 2) in ")
    assert re.fullmatch(r"steps 4-5 \(resumed at step 3\) in \d+ s \(mean of the last 1 step: loss [\d.]+, "
                        r"motion_loss [\d.]+\)", training_summary(resumed)), training_summary(resumed)
    assert training_summary(train(config, "stage1", progress=False, max_steps=5)) == \
        "already trained to step 5, nothing to do"

    stage2 = tiny_config(corpus, vae, tmp_path, [f"stage2.init_from={first.model_dir}", "stage2.motion_frames=80"])
    result = train(stage2, "stage2", progress=False, max_steps=2)
    losses = read_log(result.log)[-1]
    assert {"video_loss", "motion_loss", "loss"} <= set(losses)
    card = json.loads((result.model_dir / "imac.json").read_text())
    assert card["stage"] == "stage2" and card["config"]["stage2"]["init_from"] == str(first.model_dir)
    for part in ("motion", "hubert", "unet", "vae", "image_encoder", "coupling", "text_context.safetensors"):
        assert (result.model_dir / part).exists(), part


def _motion_weights(model_dir):
    from safetensors.torch import load_file

    return load_file(model_dir / "motion" / "diffusion_pytorch_model.safetensors")


def test_ema_model_folder_holds_the_moving_average_of_the_trained_weights(corpus, vae, tmp_path):
    # The reference: the weights after each of 4 plain steps (separate runs of 1..4 steps, the same
    # draws), averaged by the warm-up formula of diffusers' EMAModel written out as a loop:
    # update n copies the weights at n = 1, else e = d e + (1 - d) w with d = min(decay, n / (n + 9)).
    decay = 0.2
    plain = [_motion_weights(train(tiny_config(corpus, vae, tmp_path / f"plain{n}"), "stage1", progress=False,
                                   max_steps=n).model_dir) for n in range(1, 5)]
    expected = {}
    for n, weights in enumerate(plain, start=1):
        d = 0.0 if n == 1 else min(decay, n / (n + 9))
        expected = {k: w.clone() if n == 1 else d * expected[k] + (1 - d) * w for k, w in weights.items()}
    assert any(not torch.equal(expected[k], plain[-1][k]) for k in expected)   # the average is not the last
    config = tiny_config(corpus, vae, tmp_path / "ema", [f"stage1.ema_decay={decay}", "train.save_every=2"])
    averaged = _motion_weights(train(config, "stage1", progress=False, max_steps=4).model_dir)
    for name, value in expected.items():
        torch.testing.assert_close(averaged[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # resumed from the checkpoint at step 2, the average goes on as in one run (and so do the trained
    # weights: the data loader's base seeds no longer shift the dropout draws of a resumed run)
    resumed_config = tiny_config(corpus, vae, tmp_path / "resumed", [f"stage1.ema_decay={decay}"])
    train(resumed_config, "stage1", progress=False, max_steps=2)
    resumed = _motion_weights(train(resumed_config, "stage1", progress=False, max_steps=4).model_dir)
    for name, value in expected.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match=r"stage1.ema_decay: must be >= 0 and < 1, got 1.0"):     # the config
        tiny_config(corpus, vae, tmp_path / "bad", ["stage1.ema_decay=1"])
    bad = tiny_config(corpus, vae, tmp_path / "bad")
    bad.stage1.ema_decay = 1.0                                                                   # built in code
    with pytest.raises(ValueError, match=r"stage1.ema_decay: 0 \(off\) or a decay in \(0, 1\), got 1.0"):
        train(bad, "stage1", progress=False)


def test_stage2_refuses_a_stage1_model_for_other_poses(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path)
    first = train(config, "stage1", progress=False, max_steps=1)
    stage2 = tiny_config(corpus, vae, tmp_path, [f"stage2.init_from={first.model_dir}"])
    with pytest.raises(ValueError, match="trained on 129-d poses, the data has 9"):
        build_stage_model(stage2, "stage2", pose_dim=9, hubert_dim=16, normalization=None)


def test_stage2_refuses_a_stage1_model_without_the_noise_gate_unless_the_config_says_so(corpus, vae, tmp_path):
    """A stage-1 folder written before motion.noise_skip existed (its motion/config.json has no key)
    holds encoders without the gate: stage 2 names the override instead of saving a config that says
    otherwise; with the override it trains on that model."""
    from imac.models.motion import MotionModel
    old = tmp_path / "old-stage1"
    MotionModel(pose_dim=9, expression_dim=100, width=64, heads=4).save_pretrained(old / "motion")
    config_file = json.loads((old / "motion" / "config.json").read_text())
    config_file.pop("noise_skip")                       # as a folder of the earlier code
    (old / "motion" / "config.json").write_text(json.dumps(config_file))
    stage2 = tiny_config(corpus, vae, tmp_path, [f"stage2.init_from={old}"])
    with pytest.raises(ValueError, match=r"trained with motion.noise_skip=false .*give that override"):
        build_stage_model(stage2, "stage2", pose_dim=9, hubert_dim=16, normalization=None)
    stage2 = tiny_config(corpus, vae, tmp_path, [f"stage2.init_from={old}", "motion.noise_skip=false"])
    model = build_stage_model(stage2, "stage2", pose_dim=9, hubert_dim=16, normalization=None)
    assert model.motion.pose_stream.skip_gate is None


def test_training_refuses_unknown_identities(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path, ["data.identities=[nobody]"])
    with pytest.raises(ValueError, match="nobody not in"):
        train(config, "stage1", progress=False, max_steps=1)


def test_stage2_names_a_missing_stage1_folder(corpus, vae, tmp_path):
    config = tiny_config(corpus, vae, tmp_path, [f"stage2.init_from={tmp_path / 'missing'}"])
    with pytest.raises(FileNotFoundError, match="not a stage-1 model folder.*imac train stage1"):
        train(config, "stage2", progress=False, max_steps=1)


def test_block_checkpointing_gives_the_same_gradients(corpus, vae, tmp_path):
    # I2VGenXLUNet refuses enable_gradient_checkpointing; IMAC wraps each block instead. The
    # coupling's per-call tensors must still be there when the blocks are recomputed in backward.
    from imac.models.video import enable_block_checkpointing

    grads = []
    for checkpointed in (False, True):
        config = tiny_config(corpus, vae, tmp_path, ["video.condition_dropout=0.0", "motion.dropout=0.0"])
        model = build_stage_model(config, "stage2", pose_dim=9, hubert_dim=16, normalization=None).train()
        with torch.no_grad():  # make the coupling active so that its recomputation matters
            for attention in model.coupling.motion_attention:
                attention.to_out.weight.normal_(0, 0.1)
            for conv in model.coupling.reference_out:
                conv.weight.normal_(0, 0.1)
        if checkpointed:
            enable_block_checkpointing(model.unet)
        losses = model(stage2_batch(model), "stage2", generator=torch.Generator().manual_seed(0))
        losses["loss"].backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_cli_trains_the_tiny_vae_and_refuses_a_pretrained_config(corpus, tmp_path, capsys):
    from diffusers import AutoencoderKL

    from imac.cli import main

    assert main(["train", "vae", "--config", "tiny", f"data.root={corpus}", f"video.vae={tmp_path / 'vae'}",
                 "--max-steps", "2", "--quiet"]) == 0
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert vae.config.sample_size == 64 and np.isfinite(vae.config.scaling_factor)
    assert main(["train", "vae", "--config", "i2vgenxl", "--quiet"]) == 2
    assert "pretrained VAE" in capsys.readouterr().err
    assert main(["train", "stage1", "--config", "tiny", "stage1.nope=1"]) == 2
    assert "unknown key(s) nope" in capsys.readouterr().err


def test_cli_says_where_the_vae_goes_when_train_output_is_given(corpus, tmp_path, capsys, monkeypatch):
    from imac.cli import main

    monkeypatch.chdir(tmp_path)                    # the tiny config's video.vae is relative
    assert main(["train", "vae", "--config", "tiny", f"data.root={corpus}", f"train.output={tmp_path / 'mine'}",
                 "--max-steps", "1", "--quiet"]) == 0
    assert ("note: the VAE is written to video.vae (runs/imac-tiny/vae), not under train.output "
            f"({tmp_path / 'mine'})") in capsys.readouterr().err
    assert (tmp_path / "runs" / "imac-tiny" / "vae" / "config.json").is_file()


@pytest.mark.parametrize("stage, overrides, said", [
    ("stage1", ["data.root={tmp}/nowhere"], "data.root: {tmp}/nowhere holds no dataset (no manifest.jsonl)"),
    ("stage1", ["data.identities=[nobody]"], "data.identities: nobody not in"),
    ("stage1", ["fps=24"], "fps: the config's 24 is not the dataset's 25 fps ({corpus}); give the override fps=25"),
    ("stage2", ["fps=30"], "give the override fps=25"),
    ("stage2", ["stage2.init_from={tmp}/no-stage1"], "stage2.init_from: {tmp}/no-stage1 is not a stage-1 model"),
    ("stage2", ["video.vae={tmp}/no-vae"], "video.vae: {tmp}/no-vae holds no model (no config.json); train one"),
    ("vae", ["data.root={tmp}/nowhere", "video.vae={tmp}/out/vae"], "data.root: {tmp}/nowhere holds no dataset"),
])
def test_imac_train_checks_its_inputs_before_it_writes_anything(corpus, vae, tmp_path, capsys, stage, overrides,
                                                                said):
    from imac.cli import main

    fill = {"tmp": str(tmp_path), "corpus": str(corpus)}
    argv = ["train", stage, "--config", "tiny", f"data.root={corpus}", f"video.vae={vae}",
            f"train.output={tmp_path / 'out'}", "stage2.init_from=null", "--max-steps", "1", "--quiet",
            *(o.format(**fill) for o in overrides)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("imac train: error: ") and err.count("\n") == 1 and said.format(**fill) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a refused run wrote its output folder"


def test_stage2_starts_from_the_stage1_of_its_own_output(corpus, vae, tmp_path, capsys, monkeypatch):
    """tiny.yaml named runs/imac-tiny/stage1/model as a fixed path: with train.output=DIR, stage 2 started
    from that default run's stage 1 whenever one existed, without a word. Its stage 1 is now the one under
    DIR (refused here, there is none), and stage 2 says which it starts from."""
    from imac.cli import main

    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "runs" / "imac-tiny" / "stage1" / "model"
    stale.mkdir(parents=True)
    (stale / "imac.json").write_text("{}")                 # another run's stage 1, where the default points
    out = tmp_path / "elsewhere"
    argv = ["train", "stage2", "--config", "tiny", f"data.root={corpus}", f"video.vae={vae}", f"train.output={out}",
            "--max-steps", "1", "--quiet"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"stage2: from the stage-1 model {out}/stage1/model (stage2.init_from)" in captured.out
    assert f"stage2.init_from: {out}/stage1/model is not a stage-1 model folder" in captured.err
    assert load_config("tiny").stage2.init_from == "runs/imac-tiny/stage1/model"      # the default run: as before
    assert load_config("tiny", [f"train.output={out}"]).video.vae == "runs/imac-tiny/vae"   # shared, said by train vae


def test_clips_of_several_frame_rates_are_named():
    import dataclasses

    from imac.config import load_config
    from imac.training.trainer import check_frame_rate

    clips = [synthetic_clip(10, "a/x").record, dataclasses.replace(synthetic_clip(10, "a/y").record, fps=30.0)]
    with pytest.raises(ValueError, match=r"fps: the config's 25 does not match the dataset \(DIR\), whose clips "
                                         r"are at 25, 30 fps; train on clips of one frame rate"):
        check_frame_rate(load_config("tiny", ["data.root=DIR"]), clips)
    check_frame_rate(load_config("tiny", ["fps=30"]), clips[1:])     # the same rate: nothing to say


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_two_processes_train_with_the_losses_of_one(corpus, vae, tmp_path):
    """accelerate launch, 2 CPU processes (gloo, 1 thread each) with batch 1 each, against one process
    with batch 2: the same windows, the same per-sample draws, so the same losses and the same
    synchronised gradient (its logged norm) up to float order."""
    import os
    import subprocess
    import sys

    from imac.config import save_config

    # lr 1e-6: Adam normalises each parameter's step, so a gradient that differs in its 7th digit (the
    # order of float sums in one batch of 2 against two of 1) can move a parameter whose gradient is
    # near 0 by up to lr; the later losses agree to about lr x the loss's sensitivity, which the
    # zero-initialised couplings make large (video loss at step 3, measured: 6.2e-6 relative at lr 1e-5
    # without the spatial motion map, 1.9e-5 with it; 1.5e-6 with it at 1e-6, the log's rounding; 1.2e-4
    # at the tiny config's lr 5e-4). Step 1 (before any update) agrees to float rounding.
    common = ["motion.dropout=0.0", "stage2.motion_frames=40", "stage2.steps=3", "train.log_every=1",
              "stage2.lr=1.0e-6"]
    one = tiny_config(corpus, vae, tmp_path / "one", [*common, "stage2.batch_size=2"])
    train(one, "stage2", progress=False)
    two = tiny_config(corpus, vae, tmp_path / "two", [*common, "stage2.batch_size=1"])
    path = save_config(two, tmp_path / "two.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    launched = subprocess.run(
        # --multi_gpu starts torch.distributed's processes; the trainer's Accelerator(cpu=True) then
        # runs them on the CPU with gloo (accelerate's --cpu flag would start one process)
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "imac", "train", "stage2", "--config", str(path), "--quiet"],
        env=env, capture_output=True, text=True, timeout=240)
    assert launched.returncode == 0, failed_launch(launched.stderr)
    # the result is said once, by the main process (before: by each process)
    assert launched.stdout.count("stage2: 3 steps in ") == 1, launched.stdout
    assert launched.stdout.count("stage2: without a stage-1 model") == 1, launched.stdout
    lines = [read_log(folder / "stage2" / "log.jsonl") for folder in (tmp_path / "one", tmp_path / "two")]
    assert [line["step"] for line in lines[1]] == [1, 2, 3]
    for single, parallel in zip(*lines):
        for name in ("loss", "video_loss", "motion_loss"):
            assert parallel[name] == pytest.approx(single[name], rel=1e-5), (name, single, parallel)
    # The synchronised gradient of step 1 (before any update; its norm, logged): 2.9e-5 relative apart,
    # measured (one batch of 2 against two of 1 sum in another order; the gradient is more sensitive to
    # it than the loss). Later steps' gradients also carry Adam's float-order moves of the parameters.
    single, parallel = lines[0][0]["grad_norm"], lines[1][0]["grad_norm"]
    assert parallel == pytest.approx(single, rel=1e-4), (single, parallel)
    # Adam's steps hardly depend on the gradient's size, so at lr 1e-6 the losses would agree even if the
    # processes never averaged their gradients; the gradient's norm would not: one process's own
    # (its first sample's, batch 1 alone) is far from the global batch's
    alone = tiny_config(corpus, vae, tmp_path / "alone", [*common, "stage2.batch_size=1", "stage2.steps=1"])
    train(alone, "stage2", progress=False)
    own = read_log(tmp_path / "alone" / "stage2" / "log.jsonl")[0]["grad_norm"]
    assert abs(own - single) > 1e-2 * single, (own, single)


# Run by test_both_stages_train_one_after_the_other_in_the_same_launched_processes, in each process.
BOTH_STAGES = """
import sys
import torch.distributed as dist
from imac.config import load_config
from imac.training.trainer import train

first = train(load_config(sys.argv[1]), "stage1", progress=False)
second = train(load_config(sys.argv[1], [f"stage2.init_from={first.model_dir}"]), "stage2", progress=False)
flag = __import__("torch").ones(1)
dist.all_reduce(flag)             # the group outlives both trainings: the benchmark goes on with it
sys.stdout.write(f"both stages {second.steps} {int(flag.item())}\\n")   # one write: the ranks share the pipe
sys.stdout.flush()
"""


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_both_stages_train_one_after_the_other_in_the_same_launched_processes(corpus, vae, tmp_path):
    """Under a launch of 2 CPU processes, stage 1 then stage 2 in the same processes (as
    ``imac-bench run --processes N`` trains IMAC), and a collective after both: the first training
    must not end the process group (accelerate's ``end_training`` destroys it)."""
    import os
    import subprocess
    import sys

    from imac.config import save_config

    config = tiny_config(corpus, vae, tmp_path / "out", ["stage1.steps=1", "stage2.steps=1", "stage1.batch_size=2",
                                                         "stage2.batch_size=2", "stage2.motion_frames=40"])
    path = save_config(config, tmp_path / "tiny.yaml")
    script = tmp_path / "both_stages.py"
    script.write_text(BOTH_STAGES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), str(script), str(path)],
        env=env, capture_output=True, text=True, timeout=240)
    assert launched.returncode == 0, failed_launch(launched.stderr)
    assert launched.stdout.count("both stages 1 2") == 2, launched.stdout
    for stage in ("stage1", "stage2"):
        # each rank's random states are in the checkpoint (accelerate names them random_states_<rank>.pkl),
        # and no rank wrote into a temporary folder renamed under it (once a race, now a barrier)
        checkpoints = tmp_path / "out" / stage / "checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["step-1"]
        assert {"random_states_0.pkl", "random_states_1.pkl", "COMPLETE"} <= {
            p.name for p in (checkpoints / "step-1").iterdir()}


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_a_stage_folder_in_use_is_refused_in_one_line_under_a_launch(corpus, vae, tmp_path):
    """``imac train`` on 2 launched processes into a stage folder another training holds: the main
    process refuses in its one line; the other, told, ends without a word (before: a gloo "Connection
    closed by peer" traceback from the rank left waiting, under the launcher's own report)."""
    import os
    import subprocess
    import sys

    from imac.config import save_config
    from metrics.io.files import hold_folder

    config = tiny_config(corpus, vae, tmp_path / "out", ["stage1.steps=1"])
    path = save_config(config, tmp_path / "tiny.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    lock = hold_folder(tmp_path / "out" / "stage1", "a test")
    try:
        launched = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
             "--main_process_port", str(_free_port()), "-m", "imac", "train", "stage1", "--config", str(path),
             "--quiet"], env=env, capture_output=True, text=True, timeout=240)
    finally:
        lock.release()
    assert launched.returncode != 0
    errors = [line for line in launched.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "is working in this folder" in errors[0], launched.stderr
    assert "Connection closed" not in launched.stderr and "process 2 of 2" not in launched.stderr, launched.stderr
    assert not (tmp_path / "out" / "stage1" / "checkpoints").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_resumed_run_must_keep_its_ema_setting(corpus, vae, tmp_path):
    averaged = tiny_config(corpus, vae, tmp_path / "ema", ["stage1.ema_decay=0.5"])
    train(averaged, "stage1", progress=False, max_steps=1)
    for other, message in (("stage1.ema_decay=0", "trained with stage1.ema_decay; resume it with the same"),
                           ("stage1.ema_decay=0.9", r"trained with stage1.ema_decay=0.5, not 0.9")):
        with pytest.raises(ValueError, match=message):
            train(tiny_config(corpus, vae, tmp_path / "ema", [other]), "stage1", progress=False, max_steps=2)
    train(tiny_config(corpus, vae, tmp_path / "plain"), "stage1", progress=False, max_steps=1)
    with pytest.raises(ValueError, match="trained without stage1.ema_decay; resume it with ema_decay 0"):
        train(tiny_config(corpus, vae, tmp_path / "plain", ["stage1.ema_decay=0.5"]), "stage1", progress=False,
              max_steps=2)


def test_resuming_a_checkpoint_of_another_layout_names_the_changed_keys(corpus, vae, tmp_path):
    """A stage-2 run interrupted before the tiny config's spatial motion map, resumed with it: the
    checkpoint's weights do not fit the new model, and the refusal says which config keys changed."""
    before = tiny_config(corpus, vae, tmp_path / "run", ["video.motion_map=0"])
    train(before, "stage2", progress=False, max_steps=1)
    with pytest.raises(ValueError, match=r"checkpoints/step-1: a checkpoint of another model layout \(its config.yaml "
                                         r"differs in video.motion_map: 0 -> 3\); resume it with the config and "
                                         r"data it was written with, or give another train.output$"):
        train(tiny_config(corpus, vae, tmp_path / "run", ["video.motion_map=3"]), "stage2", progress=False, max_steps=2)


def test_a_layout_refusal_with_only_the_data_moved_blames_the_data_not_the_key(tmp_path):
    """Resumed on a dataset prepared with other --joints (162-d poses against 129), the refusal said the
    config differed in data.root, a key a resumed run may change; it now gives torch's size mismatch and
    says the data moved."""
    from imac.config import save_config
    from imac.training.trainer import _layout_difference

    saved = save_config(load_config("tiny", ["data.root=/data/mine"]), tmp_path / "config.yaml")
    error = RuntimeError("Error(s) in loading state_dict for MotionModel:\n\tsize mismatch for pose_in.weight: "
                         "copying a param with shape torch.Size([256, 129]) from checkpoint, the shape in current "
                         "model is torch.Size([256, 162]).")
    said = _layout_difference(saved, load_config("tiny", ["data.root=/data/mine_all"]), "stage1", error)
    assert said.startswith("size mismatch for pose_in.weight: copying a param with shape torch.Size([256, 129])")
    assert "; the data moved (data.root: '/data/mine' -> '/data/mine_all'): its poses or features may have " \
           "another size" in said


def test_a_resumed_run_refuses_changed_training_settings_and_trims_its_log(corpus, vae, tmp_path):
    """Resumed with another learning rate or batch, the checkpoint's optimizer would keep the old rate while
    the folder recorded the new one: refused, naming the keys. The steps, the logging and the sampling may
    change; the log keeps each step once (an interrupted run had logged past its last checkpoint)."""
    run = tmp_path / "run"
    train(tiny_config(corpus, vae, run, ["train.save_every=2", "train.log_every=1"]), "stage1", progress=False,
          max_steps=2)
    with pytest.raises(ValueError, match=r"checkpoints/step-2: trained with other settings \(stage1.batch_size: "
                                         r"\d+ -> 1, stage1.lr: [0-9.e-]+ -> 0.5\); resume it with the settings"):
        train(tiny_config(corpus, vae, run, ["stage1.lr=0.5", "stage1.batch_size=1"]), "stage1", progress=False,
              max_steps=3)
    log = run / "stage1" / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "loss": 1.0}\n')       # logged after the last checkpoint
    train(tiny_config(corpus, vae, run, ["train.save_every=2", "train.log_every=1", "video.sample_steps=3"]),
          "stage1", progress=False, max_steps=4)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_damaged_checkpoint_is_named_not_a_traceback(corpus, vae, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(corpus, vae, run), "stage1", progress=False, max_steps=1)
    weights = run / "stage1" / "checkpoints" / "step-1" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"checkpoints/step-1: a damaged checkpoint \(SafetensorError: .*\); "
                                         r"remove that folder to resume from the checkpoint before it"):
        train(tiny_config(corpus, vae, run), "stage1", progress=False, max_steps=2)


@pytest.mark.parametrize("damage", ["cut", "gone", "keyless", "garbage"])
def test_a_checkpoint_whose_random_states_cannot_be_read_is_refused(corpus, vae, tmp_path, damage):
    # accelerate would pass over them with an INFO line (the test below shows what that costs)
    run = tmp_path / "run"
    train(tiny_config(corpus, vae, run), "stage1", progress=False, max_steps=1)
    states = run / "stage1" / "checkpoints" / "step-1" / "random_states_0.pkl"
    if damage == "cut":
        states.write_bytes(states.read_bytes()[:40])
    elif damage == "gone":
        states.unlink()
    elif damage == "garbage":
        states.write_bytes(b"\x80\x04garbage" * 20)
    else:
        torch.save({"random_state": [1, 2, 3]}, states)
    with pytest.raises(ValueError, match=r"checkpoints/step-1: a damaged checkpoint \(\w+: .+\); remove that "
                                         r"folder to resume from the checkpoint before it") as refused:
        train(tiny_config(corpus, vae, run), "stage1", progress=False, max_steps=2)
    # torch's advice to load it with weights_only=False (running what a pickle says) is not passed on
    assert "weights_only" not in str(refused.value)


def test_a_checkpoint_resumed_by_another_number_of_processes_is_refused(tmp_path):
    """batch_size is per process: resumed on 1 process a checkpoint of 2 halved the global batch and trained
    the windows of its last steps again, with nothing said (on more processes it skipped some), while a
    changed batch_size was refused. The count is the checkpoint's random-states files, one per process."""
    from imac.training.trainer import TrainingFolderError, _check_process_count

    checkpoint = tmp_path / "step-200"
    checkpoint.mkdir()
    for rank in (0, 1):
        torch.save({"random_state": random.getstate()}, checkpoint / f"random_states_{rank}.pkl")
    _check_process_count(checkpoint, 2, "stage1", 16)
    with pytest.raises(TrainingFolderError, match=r"step-200: written by 2 processes \(a global batch of 2 x "
                                                  r"stage1.batch_size 16 = 32 windows\) and resumed by 1 \(16\): "
                                                  r"the windows .* again or skipped; resume it with 2 processes"):
        _check_process_count(checkpoint, 1, "stage1", 16)
    (checkpoint / "random_states_1.pkl").unlink()
    with pytest.raises(TrainingFolderError, match=r"written by 1 process \(.*resumed by 2 \(32\)"):
        _check_process_count(checkpoint, 2, "stage1", 16)


def test_without_its_random_states_a_resumed_run_would_not_continue_the_run(corpus, vae, tmp_path, monkeypatch):
    """The reference: two steps in one run. Resumed after step 1 with the checkpoint's random states, the
    weights are those; with the states gone and the check taken out, accelerate resumes anyway and the
    weights differ: why an unreadable states file is refused (above) rather than passed over."""
    from imac.training import trainer

    straight = _motion_weights(train(tiny_config(corpus, vae, tmp_path / "straight"), "stage1", progress=False,
                                     max_steps=2).model_dir)
    resumed = {}
    for name in ("with", "without"):
        config = tiny_config(corpus, vae, tmp_path / name)
        train(config, "stage1", progress=False, max_steps=1)
        if name == "without":
            (tmp_path / name / "stage1" / "checkpoints" / "step-1" / "random_states_0.pkl").unlink()
            monkeypatch.setattr(trainer, "_check_random_states", lambda folder, process_index: None)
        resumed[name] = _motion_weights(train(config, "stage1", progress=False, max_steps=2).model_dir)
    assert all(torch.equal(resumed["with"][k], v) for k, v in straight.items())
    assert not all(torch.equal(resumed["without"][k], v) for k, v in straight.items())


def test_stage2_refuses_a_stage1_of_another_motion_branch(corpus, vae, tmp_path):
    narrow = tiny_config(corpus, vae, tmp_path / "narrow", ["motion.width=32", "audio.width=32"])
    stage1 = train(narrow, "stage1", progress=False, max_steps=1).model_dir
    with pytest.raises(ValueError, match=rf"stage2.init_from: {stage1} was trained with another motion branch "
                                         r"\(motion.width: 32 there, 64 here; audio.width: 32 there, 64 here\)"):
        train(tiny_config(corpus, vae, tmp_path / "wide", [f"stage2.init_from={stage1}"]), "stage2", progress=False,
              max_steps=1)


def test_the_logged_gradient_norm_is_the_gradients_and_leaves_them_as_they_are():
    """grad_norm without clipping: the L2 norm over all gradients (numpy on the flattened values), and
    the gradients untouched, also when they overflow (clipping at an infinite bound would make them NaN)."""
    from accelerate import Accelerator

    from imac.training.trainer import gradient_norm, window_norm

    rng = np.random.default_rng(0)
    parameters = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((3, 4), (5,), (2, 2, 2))]
    for p in parameters:
        p.grad = torch.from_numpy(rng.normal(size=p.shape).astype(np.float32))
    before = [p.grad.clone() for p in parameters]
    accelerator = Accelerator(cpu=True)
    expected = np.linalg.norm(np.concatenate([b.numpy().ravel() for b in before]))
    assert gradient_norm(accelerator, parameters, 0.0) == pytest.approx(expected, rel=1e-6)
    assert all(torch.equal(p.grad, b) for p, b in zip(parameters, before))
    parameters[0].grad[0, 0] = 1e20
    parameters[1].grad[0] = 1e20                         # the float32 norm overflows
    assert gradient_norm(accelerator, parameters, 0.0) == math.inf
    assert all(torch.isfinite(p.grad).all() for p in parameters)
    assert window_norm([1.0, 3.0]) == 2.0 and window_norm([1.0, math.inf]) == "non-finite"
    assert window_norm([None]) is None


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_imac_train_vae_under_a_launch_trains_once_data_parallel(corpus, tmp_path):
    """`accelerate launch --num_processes 2 -m imac train vae`: before, each process trained a VAE of its own
    and the second to finish was refused the folder ("is not empty"), failing the launch."""
    import os
    import subprocess
    import sys

    out = tmp_path / "vae"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()), "-m", "imac", "train", "vae", "--config", "tiny",
         f"data.root={corpus}", f"video.vae={out}", "--max-steps", "2", "--quiet"],
        env=env, capture_output=True, text=True, timeout=240)
    assert launched.returncode == 0, failed_launch(launched.stderr)
    assert launched.stdout.count("vae: 2 steps in") == 1 and ", 2 processes; written to" in launched.stdout
    summary = json.loads((out / "training.json").read_text())
    assert summary["settings"]["processes"] == 2 and summary["steps"] == 2


@pytest.mark.parametrize("override, said", [
    ("video.image_encoder.hiden_size=64", "video.image_encoder: unknown key\\(s\\) hiden_size; the keys: attention_dropout"),
    ("video.unet.blocks_out_channels=[64,64]", "video.unet: unknown key\\(s\\) blocks_out_channels; the keys: "
                                               "attention_head_dim, block_out_channels"),
    ("video.unet.block_out_channels=64", "video.unet: object of type 'int' has no len()"),
    ("video.image_encoder.num_attention_heads=3", "video.image_encoder: .*hidden size \\(32\\) is not a multiple of "
                                                  "the number of attention heads \\(3\\)"),
    ("video.unet.norm_num_groups=7", "video.unet: num_channels \\(32\\) must be divisible by num_groups \\(7\\)"),
])
def test_the_video_branch_s_arguments_are_checked_before_any_work_in_either_stage(corpus, vae, tmp_path, override,
                                                                                  said):
    """A typo under video.unet / video.image_encoder was trained with silently (and saved into the model) or
    ended in a library's traceback, and stage 1, which never builds the UNet, accepted it."""
    for stage in ("stage1", "stage2"):
        config = tiny_config(corpus, vae, tmp_path / stage, [override])
        with pytest.raises(ValueError, match=said):
            train(config, stage, progress=False)
        assert not (tmp_path / stage).exists()          # refused before anything was written


def test_the_paper_s_video_branch_passes_the_check():
    """gpu_check's full-size I2VGen-XL UNet and CLIP image encoder (the published configs' values), built on
    the meta device: no memory, no error."""
    import sys
    from pathlib import Path

    from imac.models.video import check_video_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import gpu_check

    config = load_config("i2vgenxl", ["video.pretrained=null", f"video.unet={json.dumps(gpu_check.UNET)}",
                                      f"video.image_encoder={json.dumps(gpu_check.IMAGE_ENCODER)}"])
    check_video_config(config.video)


@pytest.mark.parametrize("resolution, said", [
    (30, "data.resolution: 30 px is not a multiple of the VAE's downsampling factor 4 \\(video.vae: .*\\); frames "
         "would be cut to 28 px"),
    (64, "data.resolution: 64 px, but the VAE at .* \\(video.vae\\) was trained on 32 px frames"),
])
def test_stage2_refuses_a_resolution_its_vae_cannot_take(corpus, vae, tmp_path, resolution, said):
    """The VAE of the fixtures has 3 down blocks (factor 4); its copy here gets a card saying 32 px, as `imac
    train vae` writes one. Before, 63 px made 60 px videos while the sampler said 63, and a VAE was used at
    another size than it learned, silently."""
    import shutil

    trained = tmp_path / "vae"
    shutil.copytree(vae, trained)
    (trained / "training.json").write_text(json.dumps({"resolution": RESOLUTION}))
    config = tiny_config(corpus, trained, tmp_path / "out", [f"data.resolution={resolution}"])
    with pytest.raises(ValueError, match=said):
        train(config, "stage2", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_hubert_folder_that_is_not_there_is_named_by_its_key_before_any_work(corpus, vae, tmp_path):
    """`audio.hubert=tny` said "tny: HuBERT model folder not found" after the stage folder was taken."""
    config = tiny_config(corpus, vae, tmp_path / "out", ["audio.hubert=tny"])
    with pytest.raises(FileNotFoundError, match=r"audio.hubert: tny holds no HuBERT model \(no config.json\)"):
        train(config, "stage1", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_moved_run_resumes_from_moved_model_folders_but_not_from_changed_ones(corpus, vae, tmp_path):
    """Before: a run copied elsewhere, or named by an absolute path, was refused (stage2.init_from and
    video.vae differed as strings), while a VAE retrained in place was resumed without a word into a model
    whose weights and scaling factor disagree."""
    import shutil

    from diffusers import AutoencoderKL

    run = tmp_path / "run"
    shutil.copytree(vae, run / "vae")
    train(tiny_config(corpus, run / "vae", run, ["stage1.steps=1"]), "stage1", progress=False)
    stage2 = ["train.save_every=1", f"stage2.init_from={run / 'stage1' / 'model'}"]
    train(tiny_config(corpus, run / "vae", run, stage2), "stage2", progress=False, max_steps=1)

    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    shutil.rmtree(run)                                  # the old paths are gone
    resumed = train(tiny_config(corpus, moved / "vae", moved, ["train.save_every=1",
                                                                f"stage2.init_from={moved / 'stage1' / 'model'}"]),
                    "stage2", progress=False, max_steps=2)
    assert (resumed.first_step, resumed.steps) == (1, 2)

    changed = AutoencoderKL.from_pretrained(moved / "vae")      # the VAE retrained in place: other weights
    with torch.no_grad():
        for parameter in changed.parameters():
            parameter.add_(0.01)
    changed.save_pretrained(moved / "vae")
    with pytest.raises(ValueError, match=re.escape(
            f"checkpoints/step-2: trained from other model weights or data (video.vae: '{moved / 'vae'}', whose "
            "content changed); resume it from the folders and the dataset it was trained from (they may lie "
            "elsewhere)")):
        train(tiny_config(corpus, moved / "vae", moved, ["train.save_every=1",
                                                         f"stage2.init_from={moved / 'stage1' / 'model'}"]),
              "stage2", progress=False, max_steps=3)


def test_a_data_root_without_a_dataset_says_how_to_make_the_toy_corpus(tmp_path, capsys, monkeypatch):
    """Before: a fresh clone's `imac train vae --config tiny` (the README's first training command) said only
    "data/toy/manifest.jsonl: file not found (is this a dataset folder?)"."""
    from imac.cli import main

    monkeypatch.chdir(tmp_path)
    for stage in ("vae", "stage1"):
        assert main(["train", stage, "--config", "tiny", "--quiet"]) == 2
        assert capsys.readouterr().err == (
            "imac train: error: data.root: data/toy holds no dataset (no manifest.jsonl): make the toy corpus there "
            "with `imac-bench data toy --out data/toy`, prepare one from videos with `imac-bench data prepare`, "
            "or give data.root=DIR\n")
    assert not (tmp_path / "runs").exists()


def test_stage2_refuses_a_stage1_model_of_other_audio_settings(corpus, vae, tmp_path):
    """Before: a stage 2 at 16 kHz from a stage-1 model trained at 22.05 kHz, or with another tiny HuBERT
    seed, was accepted without a word: its motion branch read other features than it learnt on, and the
    stage-2 card recorded this config's settings."""
    run = tmp_path / "run"
    train(tiny_config(corpus, vae, run, ["stage1.steps=1", "audio.sample_rate=22050"]), "stage1", progress=False)
    init = run / "stage1" / "model"
    with pytest.raises(ValueError, match=re.escape(
            f"stage2.init_from: {init} was trained with other audio settings (audio.sample_rate: 22050 there, 16000 "
            "here; audio.hubert_seed: 0 there, 5 here); give audio.sample_rate=22050 audio.hubert_seed=0, or train "
            "stage 1 again")):
        train(tiny_config(corpus, vae, tmp_path / "two", [f"stage2.init_from={init}", "audio.hubert_seed=5"]),
              "stage2", progress=False, max_steps=1)
    assert not (tmp_path / "two").exists()


def test_a_stage_resumed_on_another_dataset_is_refused_and_on_the_same_one_moved_is_not(corpus, vae, tmp_path):
    """Before: resumed with data.root on another corpus, a stage trained on without a word and its config.yaml
    then named the new corpus for the whole run."""
    import shutil

    run = tmp_path / "run"
    train(tiny_config(corpus, vae, run, ["train.save_every=1"]), "stage1", progress=False, max_steps=1)
    moved = tmp_path / "moved-corpus"
    shutil.copytree(corpus, moved)
    assert train(tiny_config(moved, vae, run, ["train.save_every=1"]), "stage1", progress=False,
                 max_steps=2).first_step == 1
    from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus

    other = tmp_path / "other-corpus"       # another seed: other clips of other lengths
    generate_toy_corpus(other, ToyCorpusConfig(seed=7, identities=1, clips=3, test_clips=1, size=64,
                                               min_seconds=3.6, max_seconds=4.0), progress=False)
    with pytest.raises(ValueError, match=re.escape(f"trained from other model weights or data (data.root: "
                                                   f"'{moved}' -> '{other}')")):
        train(tiny_config(other, vae, run, ["train.save_every=1"]), "stage1", progress=False, max_steps=3)
