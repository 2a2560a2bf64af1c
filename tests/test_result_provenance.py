"""What produced a result: the command line, the start time and the source revision are recorded in
``python -m metrics compute``'s result and ``imac-bench run``'s results.json, and each CSV row names the
weights behind its number."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import bench.runner
from bench.cli import main as bench_main
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.cli import main as metrics_main
from metrics.results import checkout_revision, source_revision

ROOT = Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_the_revision_is_the_commit_checked_out_and_says_when_the_package_source_differs(tmp_path):
    root = tmp_path / "checkout"
    (root / "metrics").mkdir(parents=True)
    (root / "metrics" / "a.py").write_text("x = 1\n")
    (root / "README.md").write_text("readme\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    commit = (root / ".git" / "refs" / "heads").glob("*").__next__().read_text().strip()   # the branch's ref file
    assert checkout_revision(root) == commit
    (root / "README.md").write_text("edited\n")            # outside the packages: the numbers' code is the commit's
    (root / "metrics" / "new.py").write_text("y = 2\n")     # untracked: not part of the source that runs
    assert checkout_revision(root) == commit
    (root / "metrics" / "a.py").write_text("x = 2\n")
    assert checkout_revision(root) == commit + "-dirty"
    assert checkout_revision(root / "metrics") is None      # a folder inside another checkout (a wheel in a venv)
    assert checkout_revision(tmp_path / "elsewhere") is None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=1, clips=3, test_clips=2, size=64, min_seconds=3.2,
                                              max_seconds=3.4), progress=False)
    return root


def test_metrics_compute_records_its_command_start_and_revision_and_each_row_its_weights(corpus, tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    argv = ["compute", "--real", str(corpus), "--fake", str(corpus), "--metrics", "bas,fvd", "--split", "all",
            "--out", str(tmp_path / "my result.json"), "--cache", "none", "--quiet"]
    assert metrics_main(argv) == 0
    saved = json.loads((tmp_path / "my result.json").read_text())
    environment = saved["environment"]
    assert shlex.split(environment["command"]) == ["python", "-m", "metrics", *argv]   # quoted: the space survives
    started = datetime.fromisoformat(environment["started_utc"])
    assert before <= started <= datetime.now(timezone.utc) and started.utcoffset() == timedelta(0)
    assert environment["revision"] == source_revision() == checkout_revision(ROOT)
    assert environment["revision"].split("-")[0] == _git(ROOT, "rev-parse", "HEAD")
    rows = list(csv.DictReader((tmp_path / "my result.csv").open()))
    assert saved["provenance"]["fvd"]["weights_hash"] is None                      # the stand-in: its id
    assert {r["weights"] for r in rows if r["metric"] == "fvd"} == {"i3d-untrained-seed0"}
    assert {r["weights"] for r in rows if r["metric"] == "bas"} == {""}             # BAS reads no network


def test_imac_bench_run_hands_its_command_line_to_the_run(tmp_path, monkeypatch):
    given = []
    monkeypatch.setattr(bench.runner, "run_benchmark", lambda settings: given.append(settings))
    out = tmp_path / "a run"
    assert bench_main(["run", "--methods", "static", "--out", str(out), "--quiet"]) == 0
    assert shlex.split(given[0].command) == ["imac-bench", "run", "--methods", "static", "--out", str(out), "--quiet"]
