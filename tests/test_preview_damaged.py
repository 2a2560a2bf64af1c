"""``imac-bench data preview`` on a dataset whose files disagree with its manifest: one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main as bench_main
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.dataset import Dataset

SMALL = ToyCorpusConfig(seed=3, identities=2, clips=3, test_clips=1, size=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "corpus"
    generate_toy_corpus(out, SMALL, progress=False)
    return out


def _previewed_clip(root: Path):
    """The clip preview draws for the first identity (its first test clip)."""
    dataset = Dataset.open(root, level="files")
    return dataset.by_identity(dataset.identities[0], "test")[0]


def test_preview_names_a_keypoints_file_shorter_than_its_clip(corpus, tmp_path, capsys):
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    clip = _previewed_clip(root)
    arrays = dict(np.load(clip.keypoints))
    arrays["keypoints"] = arrays["keypoints"][:10]
    np.savez(clip.keypoints, **arrays)
    out = tmp_path / "sheet.png"
    assert bench_main(["data", "preview", str(root), "--out", str(out), "--frames", "24"]) == 2
    err = capsys.readouterr().err
    assert err == (f"imac-bench data preview: error: {clip.keypoints}: 10 frame(s) of keypoints, "
                   f"the clip {clip.clip_id} has {clip.num_frames}\n")
    assert not out.exists()


def test_preview_names_a_keypoints_array_of_the_wrong_shape(corpus, tmp_path, capsys):
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    clip = _previewed_clip(root)
    arrays = dict(np.load(clip.keypoints))
    arrays["keypoints"] = arrays["keypoints"][:, :17]
    np.savez(clip.keypoints, **arrays)
    assert bench_main(["data", "preview", str(root), "--out", str(tmp_path / "sheet.png"), "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imac-bench data preview: error: {clip.keypoints}: array 'keypoints' has shape ")
    assert "expected (frames, 133, 3)" in err and err.count("\n") == 1
