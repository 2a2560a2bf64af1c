"""The run's independent trainings side by side (bench.side_by_side): one thread each, wherever they run,
so that side by side (worker processes) and one after the other (here) give the same weights."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from bench.config import config_from_dict
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from bench.runner import RunMismatchError, RunSettings, plan_run, side_trainings, train_beside_first
from bench.side_by_side import Training, train_side_by_side
from imac.config import load_config
from imac.training.trainer import train
from side_by_side_jobs import die, fail, fit


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def alone_on_one_thread(seed: int) -> dict:
    """The reference: the training called directly, torch on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fit(seed)
    finally:
        torch.set_num_threads(before)


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a["weights"], b["weights"], strict=True))


def test_side_by_side_gives_the_weights_of_one_thread_here_and_there(two_threads):
    trainings = [Training(f"net{seed}", f"net {seed}", fit, {"seed": seed}) for seed in (0, 1, 2)]
    beside = train_side_by_side(trainings, workers=2)
    in_turn = train_side_by_side(trainings, workers=1)
    assert torch.get_num_threads() == 2                 # restored after the trainings here
    for seed in (0, 1, 2):
        reference = alone_on_one_thread(seed)
        assert beside[f"net{seed}"].result["threads"] == in_turn[f"net{seed}"].result["threads"] == 1
        assert same_weights(beside[f"net{seed}"].result, reference)
        assert same_weights(in_turn[f"net{seed}"].result, reference)
        assert beside[f"net{seed}"].seconds >= 0


def test_a_folder_asked_for_twice_is_trained_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bench.side_by_side")
    first = Training(str(tmp_path / "shared"), "the shared model", fit, {"seed": 0})
    again = Training(str(tmp_path / "shared"), "the shared model (asked again)", fit, {"seed": 5})
    done = train_side_by_side([first, again], workers=1)
    assert list(done) == [str(tmp_path / "shared")]
    assert same_weights(done[str(tmp_path / "shared")].result, alone_on_one_thread(0))
    assert "asked again" not in caplog.text


def test_a_failing_training_stops_the_run_with_its_error_and_the_running_ones_finish(tmp_path, two_threads):
    finished, never = tmp_path / "finished", tmp_path / "never"
    trainings = [Training("slow", "the slow one", fit, {"seed": 0, "steps": 200, "out": str(finished)}),
                 Training("bad", "the bad one", fail, {"message": f"{tmp_path / 'x.npz'}: not a motion file"}),
                 Training("next", "the waiting one", fit, {"seed": 1, "steps": 1, "out": str(never)})]
    with pytest.raises(ValueError, match=f"^{tmp_path / 'x.npz'}: not a motion file$"):
        train_side_by_side(trainings, workers=2)
    assert finished.read_text() == "done"               # its work is kept for the rerun
    assert not never.exists()                           # waiting when the other failed: not started


def test_a_worker_that_dies_is_named(two_threads):
    trainings = [Training("ok", "the good one", fit, {"seed": 0, "steps": 1}),
                 Training("dead", "the one that dies", die)]
    with pytest.raises(RuntimeError, match="^a worker process of the side-by-side trainings died .*while training: "
                                           ".*the one that dies"):
        train_side_by_side(trainings, workers=2)


def test_workers_must_be_at_least_one():
    with pytest.raises(ValueError, match="workers: at least 1, got 0"):
        train_side_by_side([], workers=0)


# -- in a run --------------------------------------------------------------------------------------


def run_settings(corpus: Path, out: Path) -> RunSettings:
    config = config_from_dict({"metrics": ["fgd", "div"], "fgd_autoencoder_steps": 10, "vae_steps": 4,
                               "methods": {"imac": {"config": "tiny", "overrides": [
                                   "stage1.steps=3", "stage1.batch_size=2", "stage2.steps=2", "stage2.batch_size=1"]},
                                   "mya": {"steps": 2, "motion": {"steps": 5}}}})
    return RunSettings(methods=["imac", "mya"], out=out, data=corpus, config=config, progress=False)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("side") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=1, clips=3, test_clips=2, size=64, min_seconds=3.6,
                                              max_seconds=4.0), progress=False)
    return root


def test_a_run_trains_its_shared_models_and_stage_1_alike_side_by_side_or_in_turn(corpus, tmp_path, two_threads):
    beside, in_turn = tmp_path / "beside", tmp_path / "in_turn"
    plan = plan_run(run_settings(corpus, beside))
    motion = next((beside / "work").glob("keypoint_motion-*"), None) if (beside / "work").is_dir() else None
    assert motion is None
    assert [t.name for t in side_trainings(plan)] == [
        "the shared tiny VAE (4 steps)", "the skeleton autoencoder of FGD (10 steps)", "imac: stage 1 (3 steps)",
        "the keypoint motion of S2G and MYA (5 steps)"]            # asked for by mya alone here
    train_beside_first(plan)
    motion = next((beside / "work").glob("keypoint_motion-*"))
    assert set(plan.shared.trained_beside) == {str(beside / "work" / p) for p in ("vae", "imac/stage1",
                                                                                  "fgd_autoencoder", motion.name)}
    assert plan.shared.timings["side_by_side"] > 0
    assert side_trainings(plan_run(run_settings(corpus, beside))) == []       # all trained: nothing again
    torch.set_num_threads(1)                                                 # one at a time, in this process
    train_beside_first(plan_run(run_settings(corpus, in_turn)))
    for folder in ("vae", "imac/stage1/model", "fgd_autoencoder", motion.name):
        made = folder_bytes(beside / "work" / folder)
        assert made and made == folder_bytes(in_turn / "work" / folder), folder
    # the reference: stage 1 trained by the trainer itself, torch on one thread
    config = load_config(tmp_path / "in_turn" / "work" / "imac" / "stage1" / "config.yaml",
                         [f"train.output={tmp_path / 'alone'}"])
    train(config, "stage1", progress=False)
    assert folder_bytes(tmp_path / "alone" / "stage1" / "model") == folder_bytes(beside / "work" / "imac/stage1/model")


def test_a_shared_vae_trained_otherwise_is_refused_before_anything_trains(corpus, tmp_path):
    plan = plan_run(run_settings(corpus, tmp_path / "run"))
    card = tmp_path / "run" / "work" / "vae" / "training.json"
    card.parent.mkdir(parents=True)
    card.write_text("not json")
    with pytest.raises(RunMismatchError, match=f"^{card}: cannot compare the shared tiny VAE"):
        train_beside_first(plan)
    assert not (tmp_path / "run" / "work" / "imac").exists() and not (tmp_path / "run" / "work" / "fgd_autoencoder").exists()


def test_imac_reports_the_stage_trained_side_by_side(corpus, tmp_path):
    plan = plan_run(run_settings(corpus, tmp_path / "run"))
    train_beside_first(plan)
    method = next(m for m in plan.methods if m.name == "imac")
    facts = method.prepare(plan.context(method))
    assert facts["stage1"]["trained"] == "side by side (one thread)"
    assert facts["stage1"]["steps"] == 3 and set(facts["stage1"]["losses"]) == {"loss", "motion_loss"}
    assert "trained" not in facts["stage2"] and facts["stage2"]["steps"] == 2


def ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")          # a zombie has ended (nobody here reaps it)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_the_workers_end_with_the_run(tmp_path, how):
    """SIGKILL: the run cannot tell its workers, they watch it; SIGINT (Ctrl-C, sent to the run alone): the run
    ends them itself, and ends (it would otherwise wait for trainings that never finish)."""
    pids = [tmp_path / "a.pid", tmp_path / "b.pid"]
    script = textwrap.dedent(f"""
        import signal, sys, torch
        signal.signal(signal.SIGINT, signal.default_int_handler)     # as in a terminal, whoever started it
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from bench.side_by_side import Training, train_side_by_side
        from side_by_side_jobs import forever
        train_side_by_side([Training(str(p), str(p), forever, {{"pid_file": str(p)}}) for p in {[str(p) for p in pids]!r}],
                           workers=2)
        """)
    run = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"},
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all(p.is_file() and p.read_text() for p in pids):
            assert run.poll() is None and time.monotonic() < deadline, "the trainings did not start"
            time.sleep(0.2)
        workers = [int(p.read_text()) for p in pids]
        assert not any(ended(pid) for pid in workers)
        run.send_signal(getattr(signal, how))
        _, stderr = run.communicate(timeout=30)           # a run that hangs on its workers fails here
        if how == "SIGINT":
            assert "KeyboardInterrupt" in stderr
        deadline = time.monotonic() + 10
        while not all(ended(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(ended(pid) for pid in workers)
    finally:
        run.kill()
        for path in pids:                                  # none left behind, whatever happened above
            if path.is_file() and path.read_text() and not ended(int(path.read_text())):
                os.kill(int(path.read_text()), 9)
