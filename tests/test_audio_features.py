"""IMAC's frozen audio features: MFCCs against librosa, frame alignment, HuBERT loading and caching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imac.audio_features import (
    AudioFeatures,
    frame_count,
    hubert_frames,
    load_hubert,
    mfcc_frames,
    tiny_hubert_config,
)
from metrics.io.audio import resample, write_wav

SAMPLE_RATE = 16000


def chirp_and_noise(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A 100 Hz -> ~3 kHz chirp with white noise: energy across the whole mel range."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 450 * t ** 2))
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (chirp + noise).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model():
    return load_hubert(tiny=True, seed=0)


def count_forward_calls(model) -> list[int]:
    """Wrap the model's forward so that each call is counted; returns the counter."""
    calls = [0]
    original = model.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    model.forward = counted
    return calls


# -- MFCC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [25, 30])
def test_mfcc_matches_librosa(fps):
    import librosa

    samples = chirp_and_noise(3.3)
    hop = int(round(SAMPLE_RATE / fps))
    n_fft = max(2048, 2 ** math.ceil(math.log2(2 * hop)))
    reference = librosa.feature.mfcc(y=samples, sr=SAMPLE_RATE, n_mfcc=13, hop_length=hop,
                                     n_fft=n_fft).T
    num_frames = frame_count(len(samples), SAMPLE_RATE, fps)
    assert num_frames == math.floor(3.3 * fps)
    ours = mfcc_frames(samples, SAMPLE_RATE, fps, num_frames)
    assert ours.shape == (num_frames, 13) and ours.dtype == np.float32
    assert len(reference) >= num_frames
    relative = np.abs(ours - reference[:num_frames]).max() / np.ptp(reference)
    assert relative < 1e-3


def test_mfcc_pads_by_repeating_the_last_frame_and_cuts_extra_frames():
    samples = chirp_and_noise(1.0)  # 26 STFT frames at 25 fps
    full = mfcc_frames(samples, SAMPLE_RATE, 25, 26)
    longer = mfcc_frames(samples, SAMPLE_RATE, 25, 30)
    shorter = mfcc_frames(samples, SAMPLE_RATE, 25, 10)
    np.testing.assert_array_equal(longer[:26], full)
    np.testing.assert_array_equal(longer[26:], np.repeat(full[-1:], 4, axis=0))
    np.testing.assert_array_equal(shorter, full[:10])
    assert mfcc_frames(samples, SAMPLE_RATE, 25, 26, n_mfcc=20).shape == (26, 20)


def test_mfcc_refuses_bad_input():
    with pytest.raises(ValueError, match="empty"):
        mfcc_frames(np.zeros(0), SAMPLE_RATE, 25, 1)
    with pytest.raises(ValueError, match="non-finite"):
        mfcc_frames(np.array([0.0, np.nan, 0.1]), SAMPLE_RATE, 25, 1)
    with pytest.raises(ValueError, match="num_frames"):
        mfcc_frames(np.zeros(1000), SAMPLE_RATE, 25, 0)


# -- frame count ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples, sample_rate, fps, expected", [
    (16000, 16000, 25, 25),
    (15999, 16000, 25, 24),
    (640, 16000, 25, 1),
    (44100 * 2, 44100, 30, 60),
    (48048, 48000, 30000 / 1001, 30),  # 1.001 s at NTSC 29.97 fps: 30 frames despite rounding
    (48047, 48000, 30000 / 1001, 29),
    (533, 16000, 30, 0),
])
def test_frame_count_examples(num_samples, sample_rate, fps, expected):
    if expected == 0:
        with pytest.raises(ValueError, match="shorter than one video frame"):
            frame_count(num_samples, sample_rate, fps)
    else:
        assert frame_count(num_samples, sample_rate, fps) == expected


@settings(max_examples=200, deadline=None)
@given(seconds=st.floats(0.05, 600.0), sample_rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
       fps=st.sampled_from([24, 25, 30, 29.97, 50, 60]))
def test_frame_count_is_whole_frames_of_the_duration(seconds, sample_rate, fps):
    frames = seconds * fps
    # Away from frame boundaries: more than a sample's worth of a frame from an integer.
    assume(abs(frames - round(frames)) > 2 * fps / sample_rate)
    assume(frames >= 1)
    assert frame_count(round(seconds * sample_rate), sample_rate, fps) == math.floor(frames)


def test_frame_count_refuses_empty_audio():
    with pytest.raises(ValueError, match="shorter than one video frame"):
        frame_count(0, SAMPLE_RATE, 25)


# -- HuBERT --------------------------------------------------------------------------------------


def test_tiny_config_keeps_hubert_geometry():
    config = tiny_hubert_config(num_hidden_layers=1)
    assert config.hidden_size == 16 and config.num_hidden_layers == 1
    assert tuple(config.conv_kernel) == (10, 3, 3, 3, 3, 2, 2)
    assert tuple(config.conv_stride) == (5, 2, 2, 2, 2, 2, 2)


def test_tiny_model_is_frozen_and_reproducible(tiny_model):
    assert not tiny_model.training
    assert not any(parameter.requires_grad for parameter in tiny_model.parameters())
    assert tiny_model.imac_do_normalize is False
    state = torch.random.get_rng_state()
    again = load_hubert(tiny=True, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    other = load_hubert(tiny=True, seed=1)
    first = next(tiny_model.parameters())
    assert torch.equal(first, next(again.parameters()))
    assert not torch.equal(first, next(other.parameters()))


def test_saved_model_reloads_with_identical_output(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "hubert")
    reloaded = load_hubert(tmp_path / "hubert")
    assert not reloaded.training
    assert not any(parameter.requires_grad for parameter in reloaded.parameters())
    assert reloaded.imac_do_normalize is False
    samples = chirp_and_noise(1.2)
    np.testing.assert_array_equal(hubert_frames(reloaded, samples, 30),
                                  hubert_frames(tiny_model, samples, 30))


def test_load_hubert_errors(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_hubert(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hubert(tmp_path / "empty")
    with pytest.raises(ValueError, match="exactly one"):
        load_hubert()
    with pytest.raises(ValueError, match="exactly one"):
        load_hubert(tmp_path, tiny=True)


@pytest.mark.parametrize("num_samples, num_frames", [(100, 1), (399, 3), (400, 1), (8000, 12),
                                                     (16000, 25), (16000, 40), (33333, 52)])
def test_hubert_frames_are_interpolated_hidden_states(tiny_model, num_samples, num_frames):
    samples = chirp_and_noise(num_samples / SAMPLE_RATE, seed=num_samples)[:num_samples]
    features = hubert_frames(tiny_model, samples, num_frames)
    assert features.shape == (num_frames, 16) and features.dtype == np.float32

    # Independent computation: run the model ourselves, interpolate with numpy.
    padded = np.pad(samples, (0, max(0, 400 - len(samples))))
    with torch.no_grad():
        hidden = tiny_model(torch.from_numpy(padded.astype(np.float32))[None]).last_hidden_state[0].numpy()
    assert len(hidden) == (len(padded) - 400) // 320 + 1  # 50 Hz
    positions = (np.arange(num_frames) + 0.5) * len(hidden) / num_frames - 0.5
    expected = np.stack([np.interp(positions, np.arange(len(hidden)), hidden[:, channel])
                         for channel in range(hidden.shape[1])], axis=1)
    # torch computes the source positions in float32, numpy in float64.
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


def test_do_normalize_is_honoured(tiny_model, tmp_path):
    plain, normalising = tmp_path / "plain", tmp_path / "normalising"
    for folder in (plain, normalising):
        tiny_model.save_pretrained(folder)
    (normalising / "preprocessor_config.json").write_text(
        json.dumps({"feature_extractor_type": "Wav2Vec2FeatureExtractor", "do_normalize": True,
                    "sampling_rate": 16000}), encoding="utf-8")
    samples = chirp_and_noise(1.0) * 0.05

    model = load_hubert(normalising)
    assert model.imac_do_normalize is True
    quiet, loud = hubert_frames(model, samples, 25), hubert_frames(model, samples * 10, 25)
    np.testing.assert_allclose(quiet, loud, atol=1e-4)

    model = load_hubert(plain)
    assert model.imac_do_normalize is False
    quiet, loud = hubert_frames(model, samples, 25), hubert_frames(model, samples * 10, 25)
    assert np.abs(quiet - loud).max() > 1e-2


# -- AudioFeatures -------------------------------------------------------------------------------


def test_audio_features_id_and_sizes(tiny_model, tmp_path):
    features = AudioFeatures(tiny_model, hubert_id="tiny/seed0", fps=25.0)
    assert features.id == "mfcc13-hubert:tiny/seed0-sr16000-fps25"
    assert "/" not in features.safe_id and ":" not in features.safe_id
    assert features.safe_id != AudioFeatures(tiny_model, hubert_id="tiny_seed0").safe_id
    assert features.mfcc_dim == 13 and features.hubert_dim == 16


def test_resamples_other_rates(tiny_model):
    features = AudioFeatures(tiny_model, hubert_id="tiny-seed0")
    samples_44k = chirp_and_noise(1.5, sample_rate=44100)
    direct = features.from_samples(samples_44k, 44100)
    presampled = features.from_samples(resample(samples_44k.astype(np.float64), 44100, SAMPLE_RATE),
                                       SAMPLE_RATE)
    assert direct["mfcc"].shape == (37, 13) and direct["hubert"].shape == (37, 16)
    np.testing.assert_allclose(direct["mfcc"], presampled["mfcc"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(direct["hubert"], presampled["hubert"], rtol=1e-5, atol=1e-5)
    assert features.from_samples(samples_44k, 44100, num_frames=20)["hubert"].shape == (20, 16)


def test_bad_audio_is_refused(tiny_model, tmp_path):
    features = AudioFeatures(tiny_model, hubert_id="tiny-seed0")
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0), SAMPLE_RATE)
    with pytest.raises(ValueError, match="empty.wav.*empty"):
        features.from_file(empty)
    with pytest.raises(ValueError, match="empty"):
        features.from_samples(np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="non-finite"):
        features.from_samples(np.array([0.0] * 1000 + [np.nan] + [0.0] * 1000), SAMPLE_RATE)
    with pytest.raises(ValueError, match="1-d"):
        features.from_samples(np.zeros((1000, 2)), SAMPLE_RATE)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        features.from_file(tmp_path / "missing.wav")
    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(100), SAMPLE_RATE)
    with pytest.raises(ValueError, match="short.wav.*shorter than one video frame"):
        features.from_file(short)


def test_cache_hit_skips_the_model_and_corrupt_files_are_recomputed(tmp_path):
    model = load_hubert(tiny=True, seed=0)
    calls = count_forward_calls(model)
    wav = tmp_path / "clip.wav"
    write_wav(wav, chirp_and_noise(1.0), SAMPLE_RATE)
    features = AudioFeatures(model, hubert_id="tiny-seed0", cache_dir=tmp_path / "cache")

    first = features.from_file(wav)
    assert calls[0] == 1 and first["mfcc"].shape == (25, 13)
    cache_files = list((tmp_path / "cache").rglob("*.npz"))
    assert [path.name.split("_")[-1] for path in cache_files] == ["all.npz"]
    assert cache_files[0].parent.name == features.safe_id

    second = features.from_file(wav)
    assert calls[0] == 1
    for name in ("mfcc", "hubert"):
        np.testing.assert_array_equal(second[name], first[name])
        assert second[name].dtype == np.float32

    # A different frame count is a different entry; uncached, it agrees with from_samples.
    fixed = features.from_file(wav, num_frames=20)
    assert calls[0] == 2 and fixed["hubert"].shape == (20, 16)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2

    cache_files[0].write_bytes(b"not an npz file")
    with pytest.warns(RuntimeWarning, match="recomputing"):
        third = features.from_file(wav)
    assert calls[0] == 3
    np.testing.assert_array_equal(third["hubert"], first["hubert"])
    features.from_file(wav)  # the rewritten cache file is good again
    assert calls[0] == 3


def test_from_file_matches_from_samples(tiny_model, tmp_path):
    samples = chirp_and_noise(0.9, sample_rate=44100)
    wav = tmp_path / "clip44k.wav"
    write_wav(wav, samples, 44100)
    features = AudioFeatures(tiny_model, hubert_id="tiny-seed0")
    from_file = features.from_file(Path(wav))
    stored, rate = soundfile.read(str(wav), dtype="float64")  # the 16-bit samples, at 44.1 kHz
    from_samples = features.from_samples(stored, rate)
    assert from_file["mfcc"].shape == (22, 13)
    np.testing.assert_allclose(from_file["mfcc"], from_samples["mfcc"], atol=1e-3)
    # load_audio hands float32 samples over (the raw path stays float64 throughout).
    np.testing.assert_allclose(from_file["hubert"], from_samples["hubert"], atol=2e-3)
