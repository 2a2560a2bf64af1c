"""Re-scoring a run folder: another metric selection or a newer protocol reuses every video and
trained model and recomputes the scores; only what generation depends on must match."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest

import bench.runner as runner_module
from bench.config import config_from_dict
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from bench.methods.base import Method
from bench.runner import RunMismatchError, RunSettings, run_benchmark
from metrics.dataset import ClipRecord
from metrics.lipsync import LipSyncSettings
from metrics.lipsync_training import SyncTrainingConfig
from metrics.io.video import VideoReader

FOUR = ["fgd", "div", "bas"]          # the FVD of the four needs an I3D: left out to keep the test small
HOOKS = ["hkc", "hkv", "joins_app", "joins_motion", "drift"]


class CopyMethod(Method):
    """Returns the real test video; counts its calls."""

    name, label = "copy", "Copy of the real video"
    calls: typing.ClassVar[list[str]] = []

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        CopyMethod.calls.append(clip.label)
        with VideoReader(clip.video) as reader:
            return reader.read(0, len(reader))


def config(metrics):
    return config_from_dict({"metrics": list(metrics), "fgd_autoencoder_steps": 20, "methods": {}})


def run(corpus: Path, out: Path, metrics) -> object:
    return run_benchmark(RunSettings(methods=["copy"], out=out, data=corpus, config=config(metrics), progress=False,
                                     custom={"copy": CopyMethod}))


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A run scored on fgd, div, bas whose run.json is in the form the code before re-scoring wrote
    (the whole config, metrics and protocol included, as results/toy-ci's run folder has)."""
    root = tmp_path_factory.mktemp("rescore")
    corpus = root / "toy"
    generate_toy_corpus(corpus, ToyCorpusConfig(identities=2, clips=4, test_clips=2, size=64,
                                                min_seconds=3.6, max_seconds=4.0), progress=False)
    out = root / "run"
    first = run(corpus, out, FOUR)
    record = json.loads((out / "run.json").read_text())
    old_config = {k: v for k, v in config(FOUR).to_dict().items() if k != "weights"}   # no weights key then
    (out / "run.json").write_text(json.dumps({"data": record["data"], "seed": 0, "identities": None,
                                              "config": old_config, "methods": ["copy"],
                                              "bench_version": "imac-bench-run-2"}))
    return corpus, out, first


def test_a_new_metric_selection_rescores_without_generating_or_training(old_run, tmp_path, monkeypatch):
    corpus, finished, first = old_run
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    videos = {p: p.stat().st_mtime_ns for p in (out / "copy").rglob("*.mp4")}
    autoencoder = out / "work" / "fgd_autoencoder" / "config.json"
    trained = autoencoder.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the skeleton autoencoder was trained again")

    monkeypatch.setattr(runner_module, "train_fgd_autoencoder", no_training)
    CopyMethod.calls = []
    results = run(corpus, out, FOUR + HOOKS)
    assert CopyMethod.calls == []                                   # nothing generated again
    assert {p: p.stat().st_mtime_ns for p in (out / "copy").rglob("*.mp4")} == videos
    assert autoencoder.stat().st_mtime_ns == trained
    for method in ("copy", "static", "gt"):
        for metric in ("div", "bas"):
            assert results.methods[method].scores["all"][metric].value == first.methods[method].scores["all"][metric].value
    assert results.methods["copy"].scores["all"]["fgd"].value == first.methods["copy"].scores["all"]["fgd"].value
    assert set(HOOKS) <= set(results.scored_metrics())
    # real videos and their re-encoded copies have no chunk seams: ~1.0 (no period found)
    for method in ("copy", "gt"):
        assert results.methods[method].scores["all"]["joins_app"].value == pytest.approx(1.0, abs=0.2)
    assert results.methods["static"].scores["all"]["hkv"].value < results.methods["gt"].scores["all"]["hkv"].value
    assert results.methods["static"].scores["all"]["joins_app"].value == 1.0
    assert next(c for c in results.control_checks if c.id == "hkv:static<gt").holds
    saved = json.loads((out / "run.json").read_text())
    assert "metrics" not in saved["config"] and saved["scoring"]["metrics"] == FOUR + HOOKS
    # and back to the four: the same folder scores again (the key no longer holds the selection)
    CopyMethod.calls = []
    again = run(corpus, out, FOUR)
    assert CopyMethod.calls == [] and "hkc" not in again.scored_metrics()


def test_what_generation_depends_on_must_still_match(old_run, tmp_path):
    corpus, finished, _ = old_run
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    record = json.loads((out / "run.json").read_text())
    record["config"]["fgd_autoencoder_steps"] = 999
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunMismatchError, match=r"another config \(fgd_autoencoder_steps: 999 -> 20\): use another --out"):
        run(corpus, out, FOUR)
    record["config"]["fgd_autoencoder_steps"] = 20
    record["autoencoder"] = {**runner_module.autoencoder_fields(runner_module.get_protocol("imac-bench")), "window": 16}
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunMismatchError, match="skeleton autoencoder trained with other protocol fields \\(window\\)"):
        run(corpus, out, FOUR)
    (out / "run.json").write_text('{"data": ')
    with pytest.raises(RunMismatchError, match="run.json"):
        run(corpus, out, FOUR)


def test_lip_sync_without_weights_trains_a_starred_stand_in_once(tmp_path, monkeypatch, caplog):
    """Sync-C/Sync-D selected without ``weights.syncnet``: the run trains a SyncNet stand-in on the train
    split once (its card beside it), the columns are labelled Sync-C*/Sync-D*, and a re-score reuses it."""
    corpus = tmp_path / "toy"
    generate_toy_corpus(corpus, ToyCorpusConfig(identities=1, clips=4, test_clips=2, size=128,
                                                min_seconds=3.6, max_seconds=4.0), progress=False)
    settings = config_from_dict({"metrics": ["sync_c", "sync_d"], "protocol": "imac-bench+toy-faces",
                                 "syncnet_steps": 2, "methods": {}})
    out = tmp_path / "run"

    def go(config=settings):
        return run_benchmark(RunSettings(methods=["copy"], out=out, data=corpus, config=config, progress=False,
                                         custom={"copy": CopyMethod}))

    results = go()
    card = json.loads((out / "work" / "syncnet" / "syncnet_standin.model.standin.json").read_text())
    assert card["standin"] is True and card["training"]["config"]["steps"] == 2
    assert results.label("sync_c") == "Sync-C*" and results.label("sync_d") == "Sync-D*"
    assert np.isfinite(results.methods["gt"].scores["all"]["sync_d"].value)

    def no_training(*args, **kwargs):
        raise AssertionError("the SyncNet stand-in was trained again")

    monkeypatch.setattr(runner_module, "train_syncnet_standin", no_training)
    again = go()
    assert again.methods["gt"].scores["all"]["sync_d"].value == results.methods["gt"].scores["all"]["sync_d"].value

    # another syncnet_steps re-scores the folder (a scoring-only key): its stand-in is trained anew, not reused
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="bench.runner"):
        go(config_from_dict({**settings.to_dict(), "syncnet_steps": 3}))
    card = json.loads((out / "work" / "syncnet" / "syncnet_standin.model.standin.json").read_text())
    assert card["training"]["config"]["steps"] == 3
    assert "trained otherwise (training.steps: 2 -> 3): training it again" in caplog.text


def test_a_stand_in_card_that_cannot_be_read_counts_as_another_stand_in(tmp_path):
    card = tmp_path / "syncnet_standin.model.standin.json"
    card.write_text('{"training": ')
    changes = runner_module.standin_changes(card, SyncTrainingConfig(), LipSyncSettings())
    assert len(changes) == 1 and changes[0].startswith("syncnet_standin.model.standin.json: unreadable")
    card.write_text(json.dumps({"training": {"config": []}, "face_settings": {}}))
    assert runner_module.standin_changes(card, SyncTrainingConfig(), LipSyncSettings()) == [
        "syncnet_standin.model.standin.json: not a stand-in's card"]
