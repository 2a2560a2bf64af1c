"""benchmarks/sampling_seeds.py: a finished run's methods sampled again with other seeds, scored like the run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.config import config_from_dict
from bench.methods.base import Method
from bench.results import read_results
from bench.runner import RunSettings, clip_seed, run_benchmark
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.dataset import ClipRecord, find_clips
from metrics.io.video import VideoReader, read_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import sampling_seeds  # noqa: E402

FAST = {"metrics": ["fgd", "div", "bas"], "fgd_autoencoder_steps": 20, "methods": {}}


def real_frames(clip: ClipRecord) -> np.ndarray:
    with VideoReader(clip.video) as reader:
        return reader.read(0, len(reader))


class Shifted(Method):
    """The real test video moved sideways by (seed mod 7) - 3 pixels: what it draws depends on the seed."""

    name, label = "shifted", "Shifted by the seed"

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        return np.roll(real_frames(clip), seed % 7 - 3, axis=2)


class Copy(Method):
    """The real test video whatever the seed."""

    name, label = "copy", "Copy"

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        return real_frames(clip)


class Versioned(Copy):
    """A copy whose recorded settings (``made_with``) a test changes after the run."""

    name, label = "versioned", "Versioned"
    setting = 1

    def made_with(self, context) -> dict:
        return {"setting": type(self).setting}


CUSTOM = {"shifted": Shifted, "copy": Copy, "versioned": Versioned}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeds")
    corpus = root / "toy"
    generate_toy_corpus(corpus, ToyCorpusConfig(identities=2, clips=4, test_clips=2, size=64,
                                                min_seconds=3.6, max_seconds=4.0), progress=False)
    out = root / "run"
    run_benchmark(RunSettings(methods=["shifted", "copy", "versioned"], out=out, data=corpus, config=config_from_dict(dict(FAST)),
                              progress=False, custom=CUSTOM))
    return out


def rows(printed: str, label: str) -> dict[str, list[str]]:
    """The cells of each row of the table whose header starts with ``| label |``."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {label} |"))
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = cells[1:]
    return table


def test_other_seeds_are_drawn_with_the_runs_models_and_scored_like_the_run(finished_run, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert sampling_seeds.main(["--run", str(finished_run), "--methods", "shifted,copy", "--seeds", "4,5",
                                "--metrics", "fgd,div", "--out", str(out)], custom=CUSTOM) == 0
    printed = capsys.readouterr().out
    results = read_results(finished_run / "results.json")
    fgd = rows(printed, "FGD")
    # the run's own videos, scored again here, give the run's own numbers (the runner scored them)
    for method, label in (("shifted", "Shifted by the seed"), ("copy", "Copy"),
                          ("static", "Static (reference frame repeated) (draws nothing)")):
        assert float(fgd[label][0]) == pytest.approx(results.value(method, "fgd"), rel=1e-3)
    assert len(set(fgd["Copy"][:3])) == 1                      # draws nothing from the seed
    assert len(set(fgd["Static (reference frame repeated) (draws nothing)"][:3])) == 1
    assert len(set(fgd["Shifted by the seed"][:3])) == 3      # each clip moved by its seed's amount
    # beside them, each method minus the static control, paired over the clips both could score, inside its
    # interval; a clip either could not score (here the static frame of one clip shows no shoulder, as the
    # run's results.json lists under no_body: left out of FGD) leaves fewer pairs than test clips, and the cell
    # says how many (its estimate is then not the difference of the two values above, which rest on other clips)
    paired = rows(printed, "FGD: method - static control, paired")
    assert set(paired) == {"Shifted by the seed", "Copy"}
    unscored = {name: set(results.methods[name].no_body) for name in ("copy", "static")}
    assert not any(results.methods[name].unscored for name in ("copy", "static"))
    assert len(unscored["static"]) == 1 and not unscored["copy"]
    for label in paired:
        for column in range(3):
            cell, _, count = paired[label][column].partition(" (")
            estimate, low, high = (float(v) for v in cell.replace("[", "").replace("]", "").replace(",", "").split())
            assert low <= estimate <= high
            if label == "Copy":                       # the same videos at every seed: static's one clip missing
                assert count == f"{4 - len(unscored['static'])} of 4 clips)"
    # each clip's video at seed N is the method's output for clip_seed(N, clip): of the seven shifts the
    # method can draw, the written video is nearest to the one of that seed
    for clip in find_clips(finished_run.parent / "toy", split="test"):
        written = read_video(out / "seed-4" / "shifted" / clip.identity / f"{clip.clip_id}.mp4").astype(float)
        real = real_frames(clip).astype(float)
        errors = [np.abs(written - np.roll(real, shift, axis=2)).mean() for shift in range(-3, 4)]
        assert int(np.argmin(errors)) - 3 == clip_seed(4, clip) % 7 - 3
    # a second call finds every video written and makes none
    assert sampling_seeds.main(["--run", str(finished_run), "--methods", "shifted", "--seeds", "4",
                                "--metrics", "fgd", "--out", str(out)], custom=CUSTOM) == 0
    assert "videos in" not in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--methods", "static", "--seeds", "1"], "--methods: static is a control"),
    (["--methods", "copy", "--seeds", "a"], "--seeds a: expected integers"),
    (["--methods", "mya", "--seeds", "1"], "of the 4 test videos are missing"),
    (["--methods", "copy", "--seeds", "1", "--metrics", "fgd,nope"], "nope"),
])
def test_what_cannot_be_done_is_said_in_a_line(finished_run, capsys, arguments, message):
    with pytest.raises(SystemExit) as stopped:
        sampling_seeds.main(["--run", str(finished_run), *arguments], custom=CUSTOM)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_folder_without_a_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sampling_seeds.main(["--run", str(tmp_path), "--methods", "copy", "--seeds", "1"], custom=CUSTOM)
    assert f"{tmp_path / 'run.json'}: no such file" in capsys.readouterr().err


def test_a_run_whose_videos_this_version_would_make_otherwise_is_refused(finished_run, capsys, monkeypatch):
    monkeypatch.setattr(Versioned, "setting", 2)
    with pytest.raises(SystemExit) as stopped:
        sampling_seeds.main(["--run", str(finished_run), "--methods", "versioned", "--seeds", "1"], custom=CUSTOM)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "setting: 1 -> 2" in err
    assert "this version would sample versioned otherwise than the run did" in err and "Traceback" not in err
