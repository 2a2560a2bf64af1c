"""A run and ``metrics compute`` spread over 2 CPU processes (gloo, 1 torch thread each) give the values
of one process; a run whose process is killed mid-run continues (with another number of processes).

The reference is the same micro run in one process: 1 speaker, 2 test clips, a command method that
writes its videos (so generation is shared too), the always-run controls, FGD/Div/BAS/FVD* with the
skeleton autoencoder and a tiny TorchScript I3D made by the fixtures (nothing is trained by the run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from bench.cli import main as bench_main
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.cli import main as metrics_main
from metrics.distributed import (SINGLE, Processes, PEER_ENDED_STATUS, _launch_status, launch_command, one_process_argv,
                                 peer_gone, without_option)
from metrics.io.files import hold_folder
from metrics.fgd_training import train_fgd_autoencoder
from metrics.evaluate import make_extractor
from metrics.protocol import Protocol, get_protocol
from tests.launch_output import failed_launch

# launches processes: one xdist worker runs these one after another (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("launches")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 85      # seconds per launched command (the test's budget is 90 s)

# A method's command: the reference frame slid sideways (some motion for the metrics), the clip's speech
# muxed in. With KILL_CLIP set it kills the process that runs it (the rank) on that clip, once: its
# grandparent, as the rank runs it under metrics.process_guard.
WRITER = '''
import os, signal, sys
from pathlib import Path
import numpy as np
from PIL import Image
from metrics.io.audio import load_audio
from metrics.io.video import write_video

reference, audio, out, frames, fps, clip_id = sys.argv[1:7]
marker = os.environ.get("KILL_MARKER")
if clip_id == os.environ.get("KILL_CLIP") and marker and not Path(marker).exists():
    Path(marker).write_text(clip_id)
    rank = int(Path(f"/proc/{os.getppid()}/stat").read_text().rpartition(")")[2].split()[1])
    os.kill(rank, signal.SIGKILL)
    raise SystemExit(1)
image = np.asarray(Image.open(reference).convert("RGB"))
shifts = np.round(4 * np.sin(np.arange(int(frames)) / 3.0)).astype(int)
write_video(out, [np.roll(image, s, axis=1) for s in shifts], float(fps), audio=load_audio(audio, 16000))
with open(os.environ["CALLS_LOG"], "a") as log:
    log.write(clip_id + "\\n")
'''


class TinyI3d(torch.nn.Module):
    """The call signature of StyleGAN-V's i3d_torchscript.pt; 400 features from a fixed projection of
    the clip's per-channel means over 16 stretches of time."""

    def __init__(self) -> None:
        super().__init__()
        self.projection = torch.nn.Parameter(torch.randn(48, 400, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        means = x.to(torch.float32).mean(dim=(3, 4))                    # (N, C, T)
        means = torch.nn.functional.adaptive_avg_pool1d(means, 16)      # (N, C, 16) whatever T is
        return torch.tanh(means.flatten(1) @ self.projection)


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("distributed")
    corpus = root / "toy"
    generate_toy_corpus(corpus, ToyCorpusConfig(identities=1, clips=4, test_clips=2, size=64, min_seconds=3.6,
                                                max_seconds=4.0), progress=False)
    autoencoder = root / "fgd_ae"
    train_fgd_autoencoder(corpus, autoencoder, Protocol(), keypoints="dataset", steps=20)
    i3d = root / "i3d_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyI3d()).save(str(i3d))
    config = root / "micro.yaml"
    config.write_text(json.dumps({"metrics": ["fgd", "div", "bas", "fvd"], "fgd_autoencoder": str(autoencoder),
                                  "i3d": str(i3d), "methods": {}}))
    writer = root / "writer.py"
    writer.write_text(WRITER)
    methods = root / "methods.yaml"
    methods.write_text(textwrap.dedent(f"""\
        methods:
          slide:
            command: "{sys.executable} {writer} {{reference}} {{audio}} {{out}} {{num_frames}} {{fps}} {{clip_id}}"
            label: Sliding reference frame
        """))
    calls = root / "calls.log"
    os.environ["CALLS_LOG"] = str(calls)        # read by the writer, in this process and the launched ones
    micro = {"root": root, "corpus": corpus, "config": config, "methods": methods, "calls": calls}
    micro["single"] = run_in_this_process(micro, root / "single")
    return micro


def run_arguments(micro: dict, out: Path) -> list[str]:
    return ["run", "--methods-file", str(micro["methods"]), "--methods", "slide", "--data", str(micro["corpus"]),
            "--config", str(micro["config"]), "--out", str(out), "--quiet", "--no-plots", "--threads", "1"]


@contextmanager
def one_thread():
    """torch and the BLAS under numpy/scipy on 1 thread, as the launched processes (OMP_NUM_THREADS=1):
    with 2 BLAS threads a covariance's sums run in another order and the values differ in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def run_in_this_process(micro: dict, out: Path) -> dict:
    with one_thread():
        assert bench_main(run_arguments(micro, out)) in (0, 3)
    return json.loads((out / "results.json").read_text())


def launch(arguments: list[str], module: str = "bench", env: dict | None = None,
           shorthand: bool = True) -> subprocess.CompletedProcess:
    """``python -m module arguments`` on 2 processes: through the CLI's own ``--processes 2``, or
    (``shorthand=False``) launched by ``torch.distributed.run`` as ``accelerate launch`` does."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environment.pop("WORLD_SIZE", None)
    command = ([sys.executable, "-m", module, *arguments, "--processes", "2"] if shorthand
               else launch_command(module, arguments, 2))
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=TIMEOUT)


def values(results: dict) -> dict:
    """What must not depend on the number of processes: every metric value, interval and count, the
    provenance, the input reports, the paired differences and control checks, and each clip's seed."""
    methods = {name: {"scores": m["scores"], "provenance": m["provenance"], "inputs": m["inputs"],
                      "unscored": m["unscored"], "skipped": m["skipped"], "kind": m["kind"], "label": m["label"],
                      "note": m["note"], "seeds": {k: r.get("seed") for k, r in m["generation"].items()},
                      "clips": list(m["generation"])}
               for name, m in results["methods"].items()}
    return {"methods": methods, "order": list(results["methods"]), "paired": results["paired"],
            "control_checks": results["control_checks"], "networks": results["networks"],
            "test_clips": results["run"]["test_clips"], "protocol": results["protocol"]}


# -- the helpers --------------------------------------------------------------------------------------


def test_shards_deal_the_clips_round_robin_and_map_keeps_the_order():
    items = list(range(7))
    shares = [Processes(rank, 3).shard(items) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert SINGLE.map(items, lambda x: x * x) == [x * x for x in items]
    with pytest.raises(ValueError, match="0 <= rank < world"):
        Processes(2, 2)
    assert without_option(["run", "--processes", "2", "--out", "r", "--processes=3"], "--processes") == \
        ["run", "--out", "r"]
    # each launched process's command line: one process, even when --processes was abbreviated (argparse
    # takes an unambiguous prefix, and the last of repeated options)
    from bench.cli import build_parser

    for given in (["--processes", "2"], ["--proc", "2"], ["--processes=3"]):
        argv = ["run", "--methods", "s2g", "--out", "r", *given]
        assert build_parser().parse_args(argv).processes > 1
        assert build_parser().parse_args(one_process_argv(argv, "--processes")).processes == 1
    command = launch_command("bench", ["run"], 4)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    with pytest.raises(ValueError, match="--processes 0"):
        launch_command("bench", ["run"], 0)


@pytest.mark.parametrize("rank, world, shown", [(None, None, ["alike", "own"]), ("0", "2", ["alike", "own"]),
                                                 ("1", "2", ["own"])])
def test_records_every_process_makes_alike_are_shown_by_the_main_process_alone(monkeypatch, rank, world, shown):
    import io
    import logging

    from metrics.distributed import SAME_IN_EVERY_PROCESS, told_by_main
    for name, value in (("RANK", rank), ("WORLD_SIZE", world)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("metrics.test_told_by_main")
    logger.addHandler(handler)
    try:
        told_by_main([handler])
        logger.warning("alike", extra=SAME_IN_EVERY_PROCESS)
        logger.warning("own")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().split() == shown


# -- the runs -----------------------------------------------------------------------------------------


def test_two_processes_give_the_values_of_one(micro):
    out = micro["root"] / "two"
    done = launch(run_arguments(micro, out), shorthand=False)
    assert done.returncode in (0, 3), failed_launch(done.stderr)
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["processes"] == 2 and micro["single"]["environment"]["processes"] == 1
    assert values(results) == values(micro["single"])
    assert set(results["methods"]["slide"]["scores"]["all"]) == {"fgd", "div", "bas", "fvd"}
    assert results["methods"]["slide"]["scores"]["all"]["fgd"]["counts"]["n_fake_clips"] == 2
    work = out / "work" / "slide"
    assert not list(work.glob("generation.process-*.json"))      # merged into generation.json
    assert list(json.loads((work / "generation.json").read_text())) == results["run"]["test_clips"]
    assert done.stdout.count("report:") == 1                      # one process prints and writes
    # the stand-in I3D's warning, which each process made alike, is the main process's alone
    assert done.stderr.count("is not the published i3d_torchscript.pt") == 1, done.stderr


def test_a_killed_process_loses_only_its_clip_and_a_rerun_finishes(micro):
    out = micro["root"] / "killed"
    clips = micro["single"]["run"]["test_clips"]
    victim = clips[1].split("/")[1]                                # dealt to process 1
    micro["calls"].write_text("")
    done = launch(run_arguments(micro, out), env={"KILL_CLIP": victim, "KILL_MARKER": str(micro["root"] / "killed.mark")})
    # the launch ends as a process killed by SIGKILL does in a shell (128 + 9), saying which one in a line
    # of its own (the main process, stopped by the launcher or left waiting, at most says that it
    # stopped, in a line): no launcher traceback, no gloo one
    assert done.returncode == 128 + signal.SIGKILL, failed_launch(done.stderr)
    assert "imac-bench run: process 2 of 2" in done.stderr and "was killed by SIGKILL" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert (micro["root"] / "killed.mark").read_text() == victim      # killed by the writer, mid-run
    assert not (out / "results.json").exists()
    slide = out / "slide" / f"{clips[1]}.mp4"
    assert not slide.exists()                                        # the killed clip is not there
    finished = {c: (out / "slide" / f"{c}.mp4").stat().st_mtime_ns for c in clips
                if (out / "slide" / f"{c}.mp4").is_file()}              # the other process's, if it got there
    micro["calls"].write_text("")
    results = run_in_this_process(micro, out)                        # 1 process continues the folder of 2
    assert values(results) == values(micro["single"])
    assert {c: (out / "slide" / f"{c}.mp4").stat().st_mtime_ns for c in finished} == finished   # kept
    assert sorted(micro["calls"].read_text().split()) == sorted(c.split("/")[1] for c in clips if c not in finished)
    # what the killed writers left under temporary names went at the next write into the folder
    assert [p.name for p in slide.parent.iterdir() if p.name.startswith(".")] == []
    assert not list((out / "work" / "slide").glob("generation.process-*.json"))


def test_a_refusal_under_a_launch_is_the_main_process_line_alone(micro, tmp_path):
    """A run folder another run holds, under ``--processes 2``: the main process's one line and its
    status 2; the other process, told, says nothing (before, each process printed its error, the waiting
    one a gloo traceback, and the launcher its own). Launched by torchrun as ``accelerate launch`` does,
    a refusal every process would make (a control named in --methods) is still told once."""
    out, temporary = tmp_path / "busy", tmp_path / "tmp"
    temporary.mkdir()
    lock = hold_folder(out, "a test")
    try:
        done = launch(run_arguments(micro, out), env={"TMPDIR": str(temporary)})
    finally:
        lock.release()
    assert list(temporary.glob("torchelastic_*")) == []      # torchrun's log folders went with the launch
    assert done.returncode == 2, failed_launch(done.stderr)
    assert done.stderr.count("error:") == 1 and "is working in this folder" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "process 2 of 2" not in done.stderr, done.stderr
    assert not (out / "run.json").exists()
    arguments = run_arguments(micro, tmp_path / "controls")
    arguments[arguments.index("slide")] = "slide,static"
    done = launch(arguments, shorthand=False)
    assert done.returncode != 0
    assert done.stderr.count("imac-bench run: error: --methods: static: the controls run on every run") == 1, \
        done.stderr
    assert "process 2 of 2" not in done.stderr and "Connection closed" not in done.stderr, done.stderr


def test_the_processes_of_a_launch_end_with_their_launcher(micro, tmp_path):
    """``--processes 2`` whose launcher is killed (SIGKILL: the OOM killer, a scheduler): its processes
    end too, and the commands they wait for (before, both went on without it, holding the run folder,
    and printed the run's table into a closed terminal)."""
    import time

    token = f"launcher-test-{os.getpid()}"
    methods = tmp_path / "methods.yaml"
    methods.write_text(textwrap.dedent(f"""\
        methods:
          wait:
            command: "{sys.executable} -c 'import time; time.sleep(120)' {token} {{out}}"
        """))
    arguments = ["run", "--methods-file", str(methods), "--methods", "wait", "--data", str(micro["corpus"]),
                 "--config", str(micro["config"]), "--out", str(tmp_path / "run"), "--quiet", "--no-plots",
                 "--threads", "1", "--processes", "2"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("WORLD_SIZE", None)
    launcher = subprocess.Popen([sys.executable, "-m", "bench", *arguments], cwd=REPO, env=environment,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def running(pattern: str) -> list[str]:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()

    command = f"^{re.escape(sys.executable)} -c .*{token}"        # the commands, not their guards

    try:
        deadline = time.monotonic() + 60
        while len(running(command)) < 2 and time.monotonic() < deadline:     # both processes wait on a command
            time.sleep(0.5)
        assert len(running(command)) == 2, launcher.stderr.read1().decode() if launcher.poll() is not None else ""
        launcher.kill()
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 30
        while (running(token) or running(str(tmp_path / "run"))) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert running(token) == [] and running(str(tmp_path / "run")) == []
    finally:
        for pid in running(token) + running(str(tmp_path / "run")):
            os.kill(int(pid), signal.SIGKILL)


def test_a_launch_ends_with_the_status_of_its_cause(capsys):
    """What ``relaunch`` returns from torchrun's failures (exit code by rank, negative: killed by that
    signal): a process killed from outside is the cause (a shell's 128 + signal), then the lowest-ranked
    process that ended with an error of its own; the SIGTERM the launcher sends the others is no cause."""
    def failed(code, pid=100):
        return type("Failure", (), {"exitcode": code, "pid": pid})()

    assert _launch_status({0: failed(2), 1: failed(-15)}, 2, "x") == 2
    assert _launch_status({1: failed(0 - 9), 0: failed(2)}, 2, "x") == 137
    assert _launch_status({3: failed(1), 2: failed(-15)}, 4, "x") == 1
    assert _launch_status({0: failed(-15), 1: failed(3)}, 2, "x") == 3
    assert _launch_status({1: failed(-15), 0: failed(-2)}, 2, "x") == 130
    # a process stopped by SIGTERM as an exception exits 143 (follow_launcher): no cause either; one that
    # only stopped because another ended (PEER_ENDED_STATUS) neither, but a SIGTERM from outside is named
    assert _launch_status({0: failed(143), 1: failed(2)}, 2, "x") == 2
    assert _launch_status({0: failed(PEER_ENDED_STATUS), 1: failed(2)}, 2, "x") == 2
    assert _launch_status({0: failed(130), 1: failed(130)}, 2, "x") == 130
    capsys.readouterr()
    assert _launch_status({0: failed(PEER_ENDED_STATUS), 1: failed(143, pid=7)}, 2, "x") == 143
    assert capsys.readouterr().err == "x: process 2 of 2 (pid 7) was stopped by SIGTERM\n"


EXITING = textwrap.dedent("""
    import argparse, atexit, os, signal, time
    from metrics.cli import run_command

    def slow_exit_handler():          # the launcher's SIGTERM (a terminal's Ctrl-C) arrives while it exits
        os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_SENT"]))
        time.sleep(5)
        print("the exit handler finished")

    atexit.register(slow_exit_handler)
    parser = argparse.ArgumentParser(prog="job")
    parser.set_defaults(handler=lambda args: print("worked", end="") or 0)
    raise SystemExit(run_command(parser, []))
""")


def _as_a_terminals_job():
    for number in (signal.SIGTERM, signal.SIGINT):     # a non-interactive shell's background job ignores SIGINT
        signal.signal(number, signal.SIG_DFL)


@pytest.mark.parametrize("sent", ["SIGTERM", "SIGINT"])
def test_a_launched_process_sent_a_stop_signal_while_it_exits_ends_at_once_without_a_traceback(sent):
    # seen in a full test run: SIGTERM raised into a library's atexit callback printed "Exception ignored in
    # atexit callback" with a traceback, and the exit went on
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "SIGNAL_SENT": sent}
    done = subprocess.run([sys.executable, "-c", EXITING], env=env, capture_output=True, text=True, timeout=60,
                          preexec_fn=_as_a_terminals_job)
    assert done.returncode == 128 + getattr(signal, sent), done.stderr
    assert done.stdout == "worked" and done.stderr == ""      # its output flushed; no handler's traceback


def test_the_errors_of_a_peer_gone_are_recognised():
    """gloo's words when the other end of a connection went away (seen when a rank was killed during
    DDP's all-reduce and at a barrier), and torch's distributed errors, are a peer gone; others are not."""
    reset = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:4783: "
             "Connection reset by peer. This is typically caused by a remote worker hanging")
    closed = "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:42368"
    assert peer_gone(RuntimeError(reset)) and peer_gone(RuntimeError(closed))
    assert peer_gone(torch.distributed.DistBackendError("NCCL communicator was aborted"))
    assert not peer_gone(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not peer_gone(ValueError("Connection reset by peer"))


def test_metrics_compute_on_two_processes_gives_the_values_of_one(micro, tmp_path):
    fake = micro["root"] / "single" / "slide"
    arguments = ["compute", "--real", str(micro["corpus"]), "--fake", str(fake), "--metrics", "fgd,div,bas,fvd",
                 "--fgd-ae", str(micro["root"] / "fgd_ae"), "--i3d", str(micro["root"] / "i3d_torchscript.pt"),
                 "--cache", "none", "--quiet"]
    with one_thread():
        assert metrics_main(arguments + ["--out", str(tmp_path / "one.json")]) == 0
    done = launch(arguments + ["--out", str(tmp_path / "two.json")], module="metrics")
    assert done.returncode == 0, failed_launch(done.stderr)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["environment"].pop("processes") == 2 and one["environment"].pop("processes") == 1
    for key in ("scores", "reference", "provenance", "inputs", "skipped", "real", "fake"):
        assert two[key] == one[key], key
    assert np.isfinite(two["scores"]["all"]["fvd"]["value"])
    assert done.stdout.count("written") == 1


def test_under_a_launch_the_main_process_trains_the_shared_model_and_the_other_loads_it(micro, tmp_path):
    """The skeleton autoencoder a run trains (no fixture this time) is trained by the main process
    alone, written once, and is the model one process trains (the same weights, bit for bit)."""
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"metrics": ["fgd"], "fgd_autoencoder_steps": 20, "methods": {}}))
    out = tmp_path / "run"
    arguments = run_arguments({**micro, "config": config}, out)
    done = launch(arguments, shorthand=False)
    assert done.returncode in (0, 3), failed_launch(done.stderr)
    # both processes enter the trainer; on CPUs (BatchNorm, no SyncBatchNorm) the main one trains it alone
    assert done.stderr.count("training the skeleton autoencoder") == 2
    folder = out / "work" / "fgd_autoencoder"
    trained = json.loads((folder / "config.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone, _ = train_fgd_autoencoder(micro["corpus"], tmp_path / "alone", get_protocol("imac-bench"),
                                         make_extractor("toy"), steps=20, seed=0, cache_dir=tmp_path / "cache")
    finally:
        torch.set_num_threads(threads)
    assert trained["checkpoint_hash"] == alone
    assert [p.name for p in (out / "work").iterdir() if p.name.startswith(".")] == []   # no second writer's
    results = json.loads((out / "results.json").read_text())
    assert results["networks"]["skeleton_autoencoder"]["checkpoint_hash"] == alone


PREPARE_WORKER = '''
import json, sys
from pathlib import Path
import torch
import torch.distributed as dist
from bench.config import config_from_dict
from bench.methods.base import Method
from bench.runner import RunSettings, run_benchmark
from metrics.cli import configure_logging
from metrics.io.video import VideoReader

corpus, out, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])


def note(text):
    with open(log, "a") as f:
        f.write(f"{dist.get_rank()} {text}\\n")


class Copy(Method):
    name, label = "copy", "Copy (prepared by the main process first)"

    def prepare(self, context):
        note("copy")
        return {}

    def generate(self, clip, seed):
        with VideoReader(clip.video) as reader:
            return reader.read(0, len(reader))


class Together(Copy):
    name, label, prepares_together = "together", "Together (an accelerate-like trainer)", True

    def prepare(self, context):
        total = torch.ones(1)
        dist.all_reduce(total)                  # only returns when every process is in prepare at once
        note(f"together {int(total.item())} {context.shared_vae().name}")
        return {"processes": int(total.item())}


configure_logging()                             # the runner's lines on stderr, as under the CLI
config = config_from_dict({"metrics": ["bas"], "vae_steps": 2, "methods": {}})
run_benchmark(RunSettings(methods=["copy", "together"], out=out, data=corpus, config=config, progress=False,
                          custom={"copy": Copy, "together": Together}))
'''


def test_prepare_runs_on_the_main_process_first_or_on_every_process_together(micro, tmp_path):
    """A method's ``prepare`` runs on the main process, then on the others; one that sets
    ``prepares_together`` (a trainer every process must enter) runs on all at once, and the shared VAE
    it asks for is trained by all of them together (data-parallel) and written by the main one."""
    worker, log = tmp_path / "worker.py", tmp_path / "prepare.log"
    worker.write_text(PREPARE_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(worker),
               str(micro["corpus"]), str(tmp_path / "run"), str(log)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, failed_launch(done.stderr)
    lines = log.read_text().splitlines()
    assert lines[0] == "0 copy" and sorted(lines[:2]) == ["0 copy", "1 copy"]       # the main process first
    assert sorted(lines[2:]) == ["0 together 2 vae", "1 together 2 vae"]
    assert done.stderr.count("training the shared tiny VAE") == 2            # each process takes part
    vae = tmp_path / "run" / "work" / "vae"
    assert json.loads((vae / "training.json").read_text())["settings"]["processes"] == 2
    assert [p.name for p in vae.parent.iterdir() if p.name.startswith(".")] == []   # one writer
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["methods"]["together"]["facts"]["processes"] == 2
    assert set(results["methods"]["together"]["scores"]["all"]) == {"bas"}
