"""Sampling: chunk schedule, output length for any audio length, model folder round trip, CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imac.audio_features import load_hubert
from imac.cli import main
from imac.frames import frames_to_tensor
from imac.pipeline import IMACPipeline, chunk_starts
from imac.training.trainer import build_stage_model
from metrics.io.audio import write_wav
from metrics.io.video import probe_video, read_video_audio
from tests.imac_fixtures import RESOLUTION, make_corpus, make_vae, tiny_config


@given(total=st.integers(1, 400), chunk=st.integers(2, 40))
def test_chunks_cover_every_frame_and_start_on_a_generated_frame(total, chunk):
    starts = chunk_starts(total, chunk)
    assert starts[0] == 0
    covered_until = min(chunk, total)
    for previous, start in zip(starts, starts[1:]):
        assert previous < start <= previous + chunk - 1      # the reference is the previous chunk's frame
        assert start <= covered_until - 1
        covered_until = start + chunk
    assert covered_until >= total
    if total >= chunk:
        assert starts[-1] + chunk == total                   # no frame beyond the audio
    with pytest.raises(ValueError):
        chunk_starts(total, 1)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("imac")
    config = tiny_config(make_corpus(root / "toy"), make_vae(root / "vae"), root / "run")
    torch.manual_seed(0)
    model = build_stage_model(config, "stage2", pose_dim=129, hubert_dim=16, normalization=None).eval()
    return IMACPipeline(config, model, load_hubert(tiny=True), "tiny-seed0", "stage2")


def reference_image():
    return torch.rand(3, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(0)) * 2 - 1


def speech(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("seconds, rate", [(0.3, 16000), (1.0, 16000), (1.7, 22050)])
def test_output_has_duration_times_fps_frames(pipeline, seconds, rate):
    sample = pipeline(reference_image(), speech(seconds, rate), rate, generator=torch.Generator().manual_seed(0))
    expected = int(np.floor(seconds * 25 + 1e-6))
    assert sample.frames.shape == (expected, RESOLUTION, RESOLUTION, 3) and sample.frames.dtype == np.uint8
    assert sample.pose.shape == (expected, 129) and sample.expression.shape == (expected, 100)
    assert len(sample.audio) == int(round(seconds * 16000))  # resampled to 16 kHz when needed


def test_each_chunk_starts_from_the_last_frame_of_the_previous_one(pipeline, monkeypatch):
    references, counter = [], iter(range(1000))

    def fake_chunk(reference, motion_features, steps, guidance_scale, generator=None):
        references.append(reference.clone())
        chunk = next(counter)
        frames = torch.arange(motion_features.shape[1], dtype=torch.float32)[:, None, None, None] / 100 + chunk
        return frames.expand(-1, 3, RESOLUTION, RESOLUTION)

    monkeypatch.setattr(pipeline.model, "sample_chunk", fake_chunk)
    features = torch.zeros(1, 40, 8)
    video = pipeline.sample_video(reference_image()[None][0], features)
    starts = chunk_starts(40, 16)  # [0, 15, 24]
    assert starts == [0, 15, 24] and len(references) == 3
    torch.testing.assert_close(references[0][0], reference_image())
    for k, start in enumerate(starts[1:], start=1):
        torch.testing.assert_close(references[k][0], video[start])  # generated frame, kept as it was
    values = video[:, 0, 0, 0]
    # frames 0..15 from chunk 0, 16..24 from chunk 1 (offsets 1..9), 25..39 from chunk 2 (offsets 1..15)
    expected = [0 + f / 100 for f in range(16)] + [1 + f / 100 for f in range(1, 10)] + \
               [2 + f / 100 for f in range(1, 16)]
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-6)


def test_wrong_reference_size_and_stage1_models_are_refused(pipeline):
    with pytest.raises(ValueError, match=f"reference image must be \\(3, {RESOLUTION}, {RESOLUTION}\\)"):
        pipeline(torch.zeros(3, 20, 20), speech(0.5), 16000)
    with pytest.raises(ValueError, match="shorter than one video frame"):
        pipeline(reference_image(), np.zeros(100, np.float32), 16000)


def test_model_folder_round_trip_gives_identical_outputs(pipeline, tmp_path):
    folder = pipeline.save_pretrained(tmp_path / "model")
    loaded = IMACPipeline.from_pretrained(folder)
    audio = speech(0.8)
    a = pipeline(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    b = loaded(reference_image(), audio, 16000, generator=torch.Generator().manual_seed(3))
    for name, tensor in pipeline.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    # Identical weights; kernels may differ in the last float bit, which the first DDIM steps
    # (divided by sqrt(alpha_bar) near 0) amplify, so whole samples are compared with a tolerance.
    args = (torch.randn(1, 20, 129), torch.randn(1, 20, 100), torch.randn(1, 20, 13), torch.randn(1, 20, 16),
            torch.tensor([999]))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.motion(*args).features, pipeline.model.motion(*args).features,
                                   rtol=0, atol=1e-5)
    assert np.abs(a.frames.astype(int) - b.frames).max() <= 2
    np.testing.assert_allclose(a.pose, b.pose, atol=0.05)
    # Saving again replaces the folder as a whole.
    pipeline.save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(FileNotFoundError, match="not an IMAC model folder"):
        IMACPipeline.from_pretrained(tmp_path)


def test_cli_sample_writes_video_with_audio_and_motion(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")  # not square: cropped
    write_wav(tmp_path / "speech.wav", speech(1.3, 22050), 22050)
    out = tmp_path / "out.mp4"
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(out), "--quiet"]) == 0
    info = probe_video(out)
    assert info.num_frames == 32 and info.width == RESOLUTION and info.fps == 25
    audio = read_video_audio(out)
    assert abs(len(audio) / 16000 - 1.3) < 0.03  # the input speech, muxed in
    motion = np.load(out.with_suffix(".motion.npz"))
    assert motion["pose"].shape == (32, 129)

    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "empty.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    assert "empty.wav" in capsys.readouterr().err
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "nope.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_cli_sample_says_what_it_does_and_blames_the_right_file(pipeline, tmp_path, capsys):
    model = pipeline.save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((48, 80, 3), 120, np.uint8)).save(tmp_path / "ref.png")
    write_wav(tmp_path / "speech.wav", speech(0.7, 44100), 44100)
    assert main(["sample", "--model", str(model), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "out.mp4"), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    # 80 x 48: the centre 48 x 48 square (32 px of width cut), then resized to the model's side
    assert f"80x48 -> centre square 48x48 (crop 32 px of width, 0 px of height) -> shrunk to {RESOLUTION}x" in out
    assert "0.70 s, mono at 16000 Hz -> 17 frames at 25 fps" in out
    assert f"sampling: 2 video steps, guidance {pipeline.config.video.guidance_scale:g}" in out

    stage1 = IMACPipeline(pipeline.config, build_stage_model(pipeline.config, "stage1", 129, 16, None),
                          pipeline.hubert, "tiny-seed0", "stage1").save_pretrained(tmp_path / "stage1")
    assert main(["sample", "--model", str(stage1), "--reference", str(tmp_path / "ref.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--model {stage1}: a stage-1 (motion only) model folder" in err and "speech.wav" not in err


def test_read_only_frames_convert_without_a_torch_warning():
    frames = np.full((1, 8, 8, 3), 255, np.uint8)
    frames.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = frames_to_tensor(frames, 4)
    assert x.shape == (1, 3, 4, 4) and torch.all(x == 1.0)
