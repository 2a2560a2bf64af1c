"""Every JSON file a user can hand over is read through metrics.io.bounded (64 MiB, nesting too deep
named): model folders' cards and configs, result files, a preparation run's state and manifest.
A file nested 100,000 deep used to end in a RecursionError traceback (not a ValueError, so no
caller's handling applied); now it is refused with a ValueError naming the file."""

from __future__ import annotations

import json

import pytest

DEEP = "[" * 100_000


def test_model_folder_files_nested_too_deeply_are_named(tmp_path):
    from imac.audio_features import load_hubert
    from imac.config import VideoConfig
    from imac.models.video import clip_statistics
    from imac.pipeline import MODEL_CARD, IMACPipeline
    from metrics.skeleton_ae import AutoencoderFileError, load_autoencoder

    card = tmp_path / "imac" / MODEL_CARD
    card.parent.mkdir()
    card.write_text(DEEP)
    with pytest.raises(ValueError, match=f"^{card}: refused: JSON nested too deeply"):
        IMACPipeline.from_pretrained(card.parent)

    config = tmp_path / "fgd_ae" / "config.json"          # a million deep, under the 1 MiB size limit
    config.parent.mkdir()
    config.write_text("[" * 1_000_000)
    (config.parent / "model.safetensors").write_bytes(b"")
    with pytest.raises(AutoencoderFileError, match=f"^{config}: refused: JSON nested too deeply"):
        load_autoencoder(config.parent)
    config.write_text(" " * (2 << 20))
    with pytest.raises(AutoencoderFileError, match=f"^{config}: refused: 2 MiB, more than the 1 MiB"):
        load_autoencoder(config.parent)

    hubert = tmp_path / "hubert"
    hubert.mkdir()
    (hubert / "config.json").write_text("{}")
    (hubert / "preprocessor_config.json").write_text(DEEP)
    with pytest.raises(ValueError, match=f"^{hubert / 'preprocessor_config.json'}: refused: JSON nested"):
        load_hubert(hubert)

    preprocessor = tmp_path / "i2vgen" / "feature_extractor" / "preprocessor_config.json"
    preprocessor.parent.mkdir(parents=True)
    preprocessor.write_text(DEEP)
    with pytest.raises(ValueError, match=f"^{preprocessor}: refused: JSON nested too deeply"):
        clip_statistics(VideoConfig(pretrained=str(tmp_path / "i2vgen")))
    preprocessor.write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    assert clip_statistics(VideoConfig(pretrained=str(tmp_path / "i2vgen"))) == ((0.5,) * 3, (0.25,) * 3)


def test_result_files_nested_too_deeply_are_named(tmp_path):
    from bench.results import read_results
    from metrics.results import read_result
    path = tmp_path / "results.json"
    path.write_text(DEEP)
    for reader in (read_result, read_results):
        with pytest.raises(ValueError, match=f"^{path}: refused: JSON nested too deeply"):
            reader(path)
    path.write_text("{")
    for reader in (read_result, read_results):
        with pytest.raises(ValueError, match=f"^{path}: not valid JSON"):
            reader(path)


def test_a_preparation_runs_state_nested_too_deeply_is_redone_and_its_manifest_named(tmp_path):
    from bench.data.prepare.pipeline import _read_manifest_lines
    from bench.data.prepare.sources import STATE_VERSION, load_state
    from metrics.dataset import MANIFEST_NAME
    state = tmp_path / "source.json"
    state.write_text(DEEP)
    assert load_state(state) is None                  # unreadable: the work is redone, no traceback
    state.write_text(json.dumps({"version": STATE_VERSION, "status": "done"}))
    assert load_state(state) == {"version": STATE_VERSION, "status": "done"}

    (tmp_path / MANIFEST_NAME).write_text('{"clip_id": "c0"}\n' + DEEP + "\n")
    with pytest.raises(ValueError, match=f"^{tmp_path / MANIFEST_NAME} line 2: refused: JSON nested too deeply; "
                                         "fix or remove the manifest"):
        _read_manifest_lines(tmp_path)
