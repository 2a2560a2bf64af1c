"""The toy benchmark's SyncNet stand-in (metrics.lipsync_training): its losses against the formulas
written out by hand, a few training steps on regenerated tracks, and the saved file read back as a
stand-in (Sync-C*), never as the published network."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from metrics.lipsync import mfcc
from metrics.lipsync_training import (
    SyncTrainingConfig,
    TrackData,
    contrastive_loss,
    multiway_loss,
    train_syncnet,
)
from metrics.syncnet import load_syncnet, save_syncnet, standin_card_path
from tests.lipsync_fixtures import parity_clip


def test_contrastive_loss_by_hand():
    video = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    audio = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    genuine = torch.tensor([1.0, 0.0, 0.0])
    # distances (eps 1e-6 inside pairwise_distance): ~1, ~5, ~0; margin 4: 1^2, 0, 4^2
    assert abs(float(contrastive_loss(video, audio, genuine, 4.0)) - (1 + 0 + 16) / 3) < 1e-4


def test_multiway_loss_by_hand():
    video = torch.tensor([[0.0, 0.0]])
    audio = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    # softmax over -d = (-1, -2) (the third candidate absent): -log(e^-1 / (e^-1 + e^-2))
    expected = -math.log(math.exp(-1) / (math.exp(-1) + math.exp(-2)))
    assert abs(float(multiway_loss(video, audio, mask)) - expected) < 1e-6


def _tracks() -> list[TrackData]:
    frames, audio = parity_clip(frames=30)
    return [TrackData(frames, mfcc(audio), "parity"), TrackData(frames[::-1].copy(), mfcc(audio[::-1].copy()), "reversed")]


def test_a_few_steps_train_and_save_a_standin(tmp_path):
    config = SyncTrainingConfig(width_divisor=32, steps=3, batch_size=4, seed=0)
    network, info = train_syncnet(_tracks(), config)
    assert not network.training and network.config.embedding == 32
    assert info["tracks"] == 2 and info["windows"] == 50 and len(info["training_data_hash"]) == 16
    assert math.isfinite(info["first_loss"]) and math.isfinite(info["last_loss_mean"])
    again, _ = train_syncnet(_tracks(), config)                  # seeded: the same weights again
    for key, value in network.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    path = tmp_path / "toy_syncnet.model"
    save_syncnet(network, path)
    standin_card_path(path).write_text(json.dumps({"standin": True}))
    loaded = load_syncnet(path)
    assert not loaded.published and loaded.weights_id.startswith("syncnet-standin:")
    with torch.no_grad():
        mels = torch.randn(2, 1, 13, 20)
        assert torch.equal(loaded.network.embed_audio(mels), network.embed_audio(mels))


def test_contrastive_option_runs():
    config = SyncTrainingConfig(width_divisor=32, steps=2, batch_size=4, loss="contrastive")
    _, info = train_syncnet(_tracks(), config)
    assert info["config"]["loss"] == "contrastive" and np.isfinite(info["last_loss_mean"])
