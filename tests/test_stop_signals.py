"""A stop signal (SIGTERM: ``kill``, a scheduler's cancellation or preemption; SIGUSR1: SLURM's
``--signal`` notice): one line and status 128 + the signal instead of a silent death; ``imac train``
stops at a step's end with that step's checkpoint written, on every process of a launch at the same
step, and the rerun goes on as one uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from imac.config import save_config
from imac.training import trainer
from imac.training.trainer import train
from metrics.distributed import StopRequests, Stopped
from tests.imac_fixtures import make_corpus, make_vae, tiny_config
from tests.launch_output import failed_launch, launch_two_cpu_processes

RESUME = "finished work is kept, rerun the same command to resume"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "toy")


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return make_vae(tmp_path_factory.mktemp("vae") / "vae")


def _read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# The command's work replaced by a signal to itself; the handler acts at the next bytecode.
SIGNALLED = """
import os, signal, sys, time, {module}

def signalled(*args, **kwargs):
    os.kill(os.getpid(), signal.{name})
    time.sleep(30)                          # not reached when the signal stops the command

{module}.{function} = signalled
sys.exit({module}.main({argv!r}))
"""


@pytest.mark.parametrize("module, function, argv, name, line", [
    ("metrics.cli", "get_protocol", ["protocol"], "SIGTERM", "python -m metrics protocol: stopped by SIGTERM"),
    ("metrics.cli", "evaluate", ["compute", "--real", "{tmp}", "--fake", "{tmp}", "--cache", "{tmp}/c"], "SIGUSR1",
     f"python -m metrics compute: stopped by SIGUSR1; {RESUME}"),
    ("bench.cli", "generate_toy_corpus", ["data", "toy", "--out", "{tmp}/toy"], "SIGTERM",
     f"imac-bench data toy: stopped by SIGTERM; {RESUME}"),
])
def test_a_stop_signal_ends_a_command_in_one_line_with_128_plus_the_signal(module, function, argv, name, line,
                                                                            tmp_path):
    """Before, the default action of both signals ended the process at once: status -15 / -10 and nothing
    said (a SLURM job's log showed no reason, and whether finished work was kept was left to guess)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    script = SIGNALLED.format(module=module, function=function, argv=argv, name=name)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + getattr(signal, name), (done.returncode, done.stderr)
    assert done.stderr == line + "\n", done.stderr


def test_stop_requests_record_a_signal_and_deliver_it_after_the_block_unless_it_was_acted_on():
    told = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: told.append(number))
    try:
        with StopRequests() as stops:
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)       # recorded too; the first one is kept
            assert stops.number == signal.SIGUSR1 and told == []
        assert told == [signal.SIGUSR1]                # deferred, not lost
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        with pytest.raises(Stopped):
            with StopRequests() as stops:
                os.kill(os.getpid(), signal.SIGUSR1)
                raise Stopped(stops.number)            # acted on: not delivered again
        assert told == [signal.SIGUSR1]
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        with StopRequests() as stops:                  # an ignored signal stays ignored (nohup)
            os.kill(os.getpid(), signal.SIGUSR1)
        assert stops.number == 0 and signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _signal_at(call: int, number: int = signal.SIGTERM):
    """A stand-in for the trainer's gradient_norm that sends ``number`` to this process in step ``call``."""
    calls = []
    original = trainer.gradient_norm

    def norm(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            if signal.getsignal(number) == signal.SIG_DFL:
                pytest.fail("the signal would end the test process: training does not catch it")
            os.kill(os.getpid(), number)
        return original(*args, **kwargs)
    return norm


def test_imac_train_stopped_by_sigterm_writes_that_step_s_checkpoint_and_the_rerun_is_one_run(
        corpus, vae, tmp_path, monkeypatch, capsys):
    """Before: SIGTERM (SLURM's preemption) ended `imac train` without a word, and the steps since the
    last checkpoint (train.save_every: 2000 in the i2vgenxl config) were lost."""
    import imac.cli

    settings = ["stage1.steps=5", "train.save_every=1000", "motion.dropout=0.0"]
    whole = tiny_config(corpus, vae, tmp_path / "whole", settings)
    train(whole, "stage1", progress=False)

    stopped = tiny_config(corpus, vae, tmp_path / "stopped", settings)
    path = save_config(stopped, tmp_path / "stopped.yaml")
    monkeypatch.setattr(trainer, "gradient_norm", _signal_at(3))
    assert imac.cli.main(["train", "stage1", "--config", str(path), "--quiet"]) == 128 + signal.SIGTERM
    checkpoints = tmp_path / "stopped" / "stage1" / "checkpoints"
    assert capsys.readouterr().err == (f"imac train: stopped by SIGTERM at step 3: its checkpoint is written "
                                       f"({checkpoints / 'step-3'}); rerun the same command to resume\n")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-3"]
    assert not (tmp_path / "stopped" / "stage1" / "model").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL          # the handlers are given back

    monkeypatch.undo()
    resumed = train(stopped, "stage1", progress=False)
    assert resumed.first_step == 3
    lines = [_read_log(folder / "stage1" / "log.jsonl") for folder in (tmp_path / "whole", tmp_path / "stopped")]
    assert [line["step"] for line in lines[1]] == [1, 2, 3, 4, 5]
    for one, two in zip(*lines):
        for name in ("loss", "motion_loss", "grad_norm"):
            assert two[name] == pytest.approx(one[name], rel=1e-5), (name, one, two)


# Run by accelerate launch in each of 2 processes: only the second process gets the signal, in step 2.
LAUNCHED = textwrap.dedent("""
    import os, signal, sys
    import imac.cli
    from imac.training import trainer

    if os.environ.get("RANK") == "1":
        calls, original = [], trainer.gradient_norm

        def norm(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(*args, **kwargs)
        trainer.gradient_norm = norm
    sys.exit(imac.cli.main(["train", "stage1", "--config", sys.argv[1], "--quiet"]))
""")


@pytest.mark.xdist_group("launches")   # launches processes (see tests/conftest.py)
def test_a_stop_signal_to_one_process_of_a_launch_stops_every_process_at_the_same_step(corpus, vae, tmp_path):
    """A signal reaches the processes of a launch at different moments (here one process alone gets it):
    they agree on it at each step's end, so every process writes its part of the same checkpoint. Before,
    the signalled process ended at once and the other was left in a collective."""
    config = tiny_config(corpus, vae, tmp_path / "out", ["stage1.steps=6", "stage1.batch_size=2",
                                                         "train.save_every=1000"])
    path = save_config(config, tmp_path / "tiny.yaml")
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED)
    launched = launch_two_cpu_processes(str(script), str(path))
    assert launched.returncode != 0, failed_launch(launched.stderr)
    checkpoints = tmp_path / "out" / "stage1" / "checkpoints"
    told = [line for line in launched.stderr.splitlines() if "stopped by" in line]
    assert told == [f"imac train: stopped by SIGTERM at step 2: its checkpoint is written ({checkpoints / 'step-2'}); "
                    "rerun the same command to resume"], launched.stderr
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]
    assert {"random_states_0.pkl", "random_states_1.pkl", "COMPLETE"} <= {p.name for p in (checkpoints / "step-2").iterdir()}
    assert [line["step"] for line in _read_log(tmp_path / "out" / "stage1" / "log.jsonl")] == [1, 2]


def test_ctrl_c_in_imac_train_writes_that_step_s_checkpoint_and_a_second_acts_at_once(
        corpus, vae, tmp_path, monkeypatch, capsys):
    """Before: Ctrl-C ended `imac train` at once, losing every step since the last checkpoint
    (train.save_every), and said "finished work is kept"."""
    import imac.cli

    config = tiny_config(corpus, vae, tmp_path / "out", ["stage1.steps=5", "train.save_every=1000",
                                                         "motion.dropout=0.0"])
    path = save_config(config, tmp_path / "tiny.yaml")
    monkeypatch.setattr(trainer, "gradient_norm", _signal_at(3, signal.SIGINT))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # (a pytest-xdist worker ignores it)
    try:
        assert imac.cli.main(["train", "stage1", "--config", str(path), "--quiet"]) == 128 + signal.SIGINT
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    checkpoints = tmp_path / "out" / "stage1" / "checkpoints"
    assert capsys.readouterr().err == (
        "Ctrl-C: stopping at this step's end, once its checkpoint is written (Ctrl-C again: at once, and the steps "
        "since the last checkpoint are trained again)\n"
        f"imac train: stopped by SIGINT at step 3: its checkpoint is written ({checkpoints / 'step-3'}); rerun the "
        "same command to resume\n")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-3"]

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with StopRequests(interrupt=True) as stops:
                os.kill(os.getpid(), signal.SIGINT)
                assert stops.number == signal.SIGINT
                os.kill(os.getpid(), signal.SIGINT)          # again: at once
                pytest.fail("a second Ctrl-C did not act at once")
    finally:
        signal.signal(signal.SIGINT, previous)
    capsys.readouterr()


def test_a_run_started_from_step_0_drops_the_log_of_a_run_stopped_before_its_first_checkpoint(corpus, vae, tmp_path):
    """Before: a run interrupted before its first checkpoint left its log lines, and the next run from
    step 0 appended its own after them (steps 20, 40, ... 220, then 5)."""
    config = tiny_config(corpus, vae, tmp_path / "out", ["stage1.steps=2"])
    log = tmp_path / "out" / "stage1" / "log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps({"step": step, "loss": 1.0}) + "\n" for step in (20, 40)))
    train(config, "stage1", progress=False)
    assert [line["step"] for line in _read_log(log)] == [1, 2]
