"""The benchmark runner: registry, resumption, atomic outputs, controls, external methods, report, check."""

from __future__ import annotations

import csv
import json
import math
import re
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import bench.report as report_module
from bench.check import check_run, compare, update_baseline
from bench.cli import main as bench_main
from bench.config import CONFIG_DIR as BENCH_CONFIG_DIR
from bench.config import config_from_dict, load_bench_config
from bench.methods import UnknownMethodError, make_method
from bench.methods.base import Method
from imac.frames import NonFiniteError
from metrics.dataset import ClipRecord, find_clips
from bench.methods.command import format_command, parse_methods_file
from bench.methods.external import ExternalVideoError, check_video
from bench.report import control_checks, failed_checks, load_results, write_report
from bench.results import BenchResults, ControlCheck, MethodResult, OldSchemaError, read_results
from bench.runner import (RunMismatchError, RunSettings, SharedModels, card_changes, check_sources, conform_frames,
                          own_seconds, plan_run, run_benchmark)
from bench.data.toy.corpus import ToyCorpusConfig, generate_toy_corpus
from metrics.dataset import DatasetError
from metrics.evaluate import make_extractor
from metrics.fgd_training import training_card
from metrics.io.video import VideoReader, probe_video, read_video
from metrics.protocol import get_protocol
from metrics.results import Score, checkout_revision

FAST = {"metrics": ["fgd", "div", "bas"], "fgd_autoencoder_steps": 20, "methods": {}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "toy"
    generate_toy_corpus(root, ToyCorpusConfig(identities=2, clips=4, test_clips=2, size=64,
                                              min_seconds=3.6, max_seconds=4.0), progress=False)
    return root


def real_frames(clip: ClipRecord) -> np.ndarray:
    with VideoReader(clip.video) as reader:
        return reader.read(0, len(reader))


class CopyMethod(Method):
    """Returns the real test video (a perfect method), optionally crashing on one clip."""

    name, label = "copy", "Copy of the real video"

    def __init__(self, crash_on: str | None = None, calls: list | None = None) -> None:
        self.crash_on = crash_on
        self.calls = calls if calls is not None else []

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        self.calls.append(clip.label)
        if clip.label == self.crash_on:
            raise RuntimeError("simulated crash")
        return real_frames(clip)


def settings(corpus: Path, out: Path, methods=("copy",), **kwargs) -> RunSettings:
    return RunSettings(methods=list(methods), out=out, data=corpus, config=config_from_dict(dict(FAST)),
                       progress=False, **kwargs)


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    run_benchmark(settings(corpus, out, custom={"copy": CopyMethod}))
    write_report(out)
    return out


# -- registry and configuration --------------------------------------------------------------------


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethodError) as error:
        make_method("imac-xl")
    message = str(error.value)
    for name in ("imac", "imac-no-ref", "s2g", "mya", "gt", "static", "shuffled"):
        assert name in message


@pytest.mark.parametrize("generated, message", [
    (["..=videos"], "cannot name a method"),
    (["a/b=videos"], "cannot name a method"),
    (["cache=videos"], "cannot name a method"),
    (["copy=one", "copy=two"], "copy is given twice"),
])
def test_cli_generated_names_that_cannot_be_folders_exit_2_before_any_work(corpus, tmp_path, capsys,
                                                                           generated, message):
    arguments = ["run", "--data", str(corpus), "--out", str(tmp_path / "r"), "--quiet"]
    for value in generated:
        arguments += ["--generated", value]
    assert bench_main(arguments) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "videos").exists()


def test_cli_unknown_method_exits_2_before_any_work(corpus, tmp_path, capsys):
    code = bench_main(["run", "--methods", "imac,nope", "--data", str(corpus), "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "work").exists()


def test_bench_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="metric"):
        config_from_dict({"metric": ["fgd"]})
    with pytest.raises(ValueError, match="corpus: unknown key.*sizes"):
        config_from_dict({"corpus": {"sizes": 64}})
    with pytest.raises(ValueError, match="metrics: empty"):      # an empty table whose checks all "hold"
        config_from_dict({"metrics": []})
    with pytest.raises(ValueError, match=r"bench config: weights: 'i3d' \(give it with --i3d \(bench config: i3d\)\)"):
        config_from_dict({"weights": {"i3d": "x.pt"}})                   # was ignored: FVD* from the stand-in
    assert load_bench_config("toy").corpus.size == 128
    with pytest.raises(FileNotFoundError, match="toy"):
        load_bench_config("nonexistent")


def test_ablations_share_the_imac_options_and_reject_typos():
    from bench.methods.imac_method import IMAC_VARIANTS, IMACOptions

    assert set(IMAC_VARIANTS) == {"imac", "imac-no-ref", "imac-no-motion", "imac-no-stage1", "imac-no-slowfast"}
    with pytest.raises(ValueError, match="samples_steps"):
        IMACOptions.from_dict({"samples_steps": 3})


# -- conforming frames ------------------------------------------------------------------------------


def test_conform_frames_resizes_and_fits_the_length(corpus):
    clip = ClipRecord(identity="a", clip_id="a_0", video=corpus, audio=corpus, fps=25.0, num_frames=10, width=64,
                      height=48)
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    frames[:, :, 16:] = 200
    out, changes = conform_frames(frames, clip)
    assert out.shape == (10, 48, 64, 3)
    assert changes == {"resized_from": [32, 32], "frames_generated": 12}
    assert out[:, :, :28].max() == 0 and out[:, :, 36:].min() == 200  # left/right halves survive
    short, changes = conform_frames(np.arange(7, dtype=np.uint8)[:, None, None, None].repeat(3, -1).repeat(48, 1)
                                    .repeat(64, 2), clip)
    assert changes == {"frames_generated": 7}
    assert [int(f[0, 0, 0]) for f in short] == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6]
    with pytest.raises(ValueError, match="a/a_0: a method must return uint8"):
        conform_frames(np.zeros((3, 8, 8, 3), np.float32), clip)


# -- a whole run --------------------------------------------------------------------------------------


def test_run_layout_controls_and_report(finished_run):
    results = read_results(finished_run / "results.json")
    assert list(results.methods) == ["copy", "gt", "noise-floor", "static", "shuffled"]
    assert [results.methods[m].kind for m in results.methods] == ["model", "reference", "control", "control",
                                                                   "control"]
    clips = results.run["test_clips"]
    assert len(clips) == 4 and results.run["data_given"] is True     # settings(corpus, ...) gives --data
    for method in ("copy", "gt", "static", "shuffled"):
        for label in clips:
            identity, clip_id = label.split("/")
            assert (finished_run / method / identity / f"{clip_id}.mp4").is_file()
    fgd = {m: results.value(m, "fgd") for m in results.methods}
    # gt is never scored against itself; the floor is other real clips of the same speakers
    assert "fgd" not in results.methods["gt"].scores["all"] and set(results.methods["gt"].scores["all"]) == {"div", "bas"}
    assert 0 < fgd["noise-floor"] < fgd["static"]
    # the copy is re-encoded (crf 18) but the same motion: closer to the real clips than other real
    # clips of the same speakers are (the floor), which are far closer than a still frame
    assert fgd["copy"] < fgd["noise-floor"] < 0.5 * fgd["static"]
    assert results.value("static", "div") < results.value("gt", "div")
    # the shuffled-audio control is scored on BAS only
    assert set(results.methods["shuffled"].scores["all"]) == {"bas"}
    # a still frame has no motion beat: its BAS of exactly 0 says so, and the report lists it
    static_bas = results.methods["static"].scores["all"]["bas"]
    assert static_bas.value == 0.0 and static_bas.warnings[0].startswith(
        f"{static_bas.counts['n_clips']} of {static_bas.counts['n_clips']} clips score exactly 0: no motion beat")
    assert f"- Static (reference frame repeated), BAS: {static_bas.warnings[0]}" in (finished_run / "report.md").read_text()
    assert "train clips" in results.methods["noise-floor"].note     # 2 test clips per identity: train reference
    card = results.methods["noise-floor"].provenance["fgd"]
    assert (card.n_real, card.n_fake) == (4, 4)
    gt_wav, shuffled_wav = (finished_run / "gt" / clips[0]).with_suffix(".wav"), (finished_run / "shuffled" / clips[0]).with_suffix(".wav")
    from metrics.io.audio import load_audio

    other = load_audio((finished_run / "gt" / clips[1]).with_suffix(".wav"), 16000)
    shuffled = load_audio(shuffled_wav, 16000)
    assert len(shuffled) == len(load_audio(gt_wav, 16000))
    n = min(len(other), len(shuffled))
    assert np.abs(shuffled[:n] - other[:n]).max() < 1e-3
    checks = {c.id: c.holds for c in results.control_checks}
    assert checks["fgd:noise-floor<static"] and checks["div:static<gt"] and checks["bas:static<gt"]
    report = (finished_run / "report.md").read_text()
    assert "FGD ↓" in report and "Div ↑" in report and results.protocol_label in report
    assert "## Identity:" in report and "Control checks" in report and "Provenance of each metric" in report
    assert "noise floor" in report
    for plot in ("metrics.png", "frames.png", "beats.png"):
        assert (finished_run / "plots" / plot).stat().st_size > 1000
    lines = (finished_run / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("method,label,kind,scope,metric,metric_label,value")
    assert any(line.startswith("copy,Copy of the real video,model,all,fgd,FGD,") for line in lines)


def test_results_json_is_typed_and_schema_versioned(finished_run):
    data = json.loads((finished_run / "results.json").read_text())
    assert (data["schema"], data["schema_version"]) == ("imac-bench-results", 2)
    assert data["labels"] == {"fgd": "FGD", "div": "Div", "bas": "BAS"}
    for method in data["methods"].values():
        for table in method["scores"].values():
            assert set(table) <= {"fgd", "div", "bas", "fvd"}       # ids, never display names
    card = data["methods"]["copy"]["provenance"]["fgd"]
    assert card["preset"] == "imac-bench" and card["weights_hash"] == data["networks"]["skeleton_autoencoder"]["checkpoint_hash"]
    assert {"covariance", "sqrt_method", "packages", "frames_per_clip", "n_real", "n_fake", "input"} <= set(card)
    assert read_results(finished_run / "results.json").to_dict() == data
    # what produced it (the command line: test_result_provenance), and the weights behind each CSV row
    environment = data["environment"]
    assert environment["revision"] == checkout_revision(Path(__file__).resolve().parent.parent)
    assert f"produced by     {environment['command']}" in (finished_run / "report.md").read_text()
    assert f"started {environment['started_utc']} UTC, source {environment['revision']}" in (
        finished_run / "report.md").read_text()
    rows = list(csv.DictReader((finished_run / "metrics.csv").open()))
    assert card["weights_hash"] and {r["weights"] for r in rows if r["metric"] == "fgd"} == {card["weights_hash"]}
    assert {r["weights"] for r in rows if r["metric"] == "bas"} == {""}


def test_an_older_results_file_is_named_with_what_to_do(finished_run, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({"bench_version": "imac-bench-run-1", "methods": {
        "gt": {"results": {"all": {"FVD*": {"value": 0.0}}}}}}))
    with pytest.raises(OldSchemaError, match="older imac-bench.*'FVD\\*'.*imac-bench run"):
        write_report(old)
    assert bench_main(["report", "--run", str(old), "--no-plots"]) == 2
    assert "older imac-bench" in capsys.readouterr().err


def test_generated_videos_carry_the_audio_and_the_real_size(finished_run):
    results = read_results(finished_run / "results.json")
    for label in results.run["test_clips"]:
        identity, clip_id = label.split("/")
        info = probe_video(finished_run / "copy" / identity / f"{clip_id}.mp4")
        real = probe_video(finished_run / "gt" / identity / f"{clip_id}.mp4")
        assert (info.width, info.height, info.num_frames) == (real.width, real.height, real.num_frames)
        from metrics.io.video import read_video_audio

        assert len(read_video_audio(finished_run / "copy" / identity / f"{clip_id}.mp4", 16000)) > 16000


def test_resume_after_a_crash_mid_method(corpus, tmp_path):
    out = tmp_path / "run"
    calls: list[str] = []
    clips = sorted(f"{r['identity']}/{r['clip_id']}" for r in map(json.loads, (corpus / "manifest.jsonl").read_text().splitlines())
                   if r["split"] == "test")
    crashing = {"copy": lambda: CopyMethod(crash_on=clips[1], calls=calls)}
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(settings(corpus, out, custom=crashing))
    identity, clip_id = clips[0].split("/")
    first = out / "copy" / identity / f"{clip_id}.mp4"
    assert first.is_file()
    before = (first.stat().st_ino, first.stat().st_mtime_ns)
    leftovers = [p.name for p in (out / "copy").rglob("*") if p.is_file() and p != first]
    assert leftovers == []                      # no half-written video of the crashed clip
    calls.clear()
    working = {"copy": lambda: CopyMethod(calls=calls)}
    results = run_benchmark(settings(corpus, out, custom=working))
    assert calls == clips[1:]                   # only the missing clips were generated
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == before
    assert set(results.methods["copy"].generation) == set(clips)
    with pytest.raises(RunMismatchError, match="seed"):
        run_benchmark(settings(corpus, out, custom=working, seed=1))


def test_same_seed_same_results(corpus, finished_run, tmp_path):
    again = run_benchmark(settings(corpus, tmp_path / "again", custom={"copy": CopyMethod}))
    first = read_results(finished_run / "results.json")
    for method in first.methods:
        # (compared as JSON: the per-identity intervals of one clip are NaN, and NaN != NaN)
        assert again.methods[method].to_dict()["scores"] == first.methods[method].to_dict()["scores"]


def test_the_real_side_is_recorded_once_and_each_network_loaded_once(corpus, finished_run, tmp_path, monkeypatch):
    import metrics.evaluate as evaluate_module
    import metrics.skeleton_ae as skeleton_ae

    run = tmp_path / "rescored"
    shutil.copytree(finished_run, run, symlinks=True)
    shutil.rmtree(run / "cache")                  # nothing cached: every clip is decoded once
    loads, recorded = [], []
    real_load, real_record = skeleton_ae.load_autoencoder, evaluate_module.Evaluator.record
    monkeypatch.setattr(skeleton_ae, "load_autoencoder", lambda *a, **k: loads.append(a) or real_load(*a, **k))

    def record(self, clip, side, partner=None, hints=None):
        recorded.append((side, clip.label, str(clip.video)))
        return real_record(self, clip, side, partner, hints)

    monkeypatch.setattr(evaluate_module.Evaluator, "record", record)
    results = run_benchmark(settings(corpus, run, custom={"copy": CopyMethod}))
    assert len(loads) == 1
    test_clips = results.run["test_clips"]
    assert sorted(label for side, label, _ in recorded if side == "real" and label in test_clips) == sorted(test_clips)
    assert len(recorded) == len(set(recorded))    # no clip recorded twice on the same side
    fake = {label for side, label, path in recorded if side == "fake"}
    assert fake == set(test_clips)                # copy and static, never gt or shuffled as generated videos
    assert not [r for r in recorded if "/gt/" in r[2] or "/shuffled/" in r[2]]


def test_own_seconds_leaves_out_what_steps_inside_added():
    # a method's step of 100 s inside which the shared VAE (30 s) was trained: 70 s its own; keys that did
    # not change add nothing, a key that grew adds its growth
    assert own_seconds(100.0, {"generate:a": 5.0}, {"generate:a": 5.0, "vae": 30.0}) == 70.0
    assert own_seconds(100.0, {"vae": 30.0}, {"vae": 30.0}) == 100.0
    assert own_seconds(100.04, {"syncnet": 1.0}, {"syncnet": 3.5, "vae": 30.0}) == 67.5


def test_a_shared_model_trained_inside_a_method_is_timed_once(corpus, tmp_path, monkeypatch):
    # the shared VAE, trained when the first method asks for it, is counted under "vae", not in the
    # method's generate: the steps add up to the total. The clock jumps 1000 s while the "VAE trains", so
    # the accounting is told apart from how long the rest takes on a busy machine.
    jump, clock, offset = 1000.0, time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock() + offset[0])

    def slow_vae(shared):
        offset[0] += jump
        shared.timings["vae"] = jump
        return tmp_path / "vae"

    class AsksForTheVAE(CopyMethod):
        def prepare(self, context):
            context.shared_vae()
            return {}

    monkeypatch.setattr(SharedModels, "vae", slow_vae)
    out = tmp_path / "run"
    run_benchmark(settings(corpus, out, custom={"copy": AsksForTheVAE}))
    timings = read_results(out / "results.json").timings_s
    assert timings["vae"] == jump and timings["total"] >= jump
    assert timings["generate:copy"] < jump / 2            # its own seconds: copying 4 clips, not the VAE's
    assert sum(v for k, v in timings.items() if k != "total") <= timings["total"] + 0.1 * len(timings)


# -- controls that can fail: a deliberately broken metric makes each check fail -------------------------


class ConstantFeatures:
    """An I3D stand-in whose features ignore the video: every FVD is the same."""

    feature_id, is_pretrained, batch_size = "constant", False, 8

    def __call__(self, videos):
        rng = np.random.default_rng(0)
        return rng.normal(size=(len(videos), 8))


class MeanColourFeatures:
    feature_id, is_pretrained, batch_size = "mean-colour", False, 8

    def __call__(self, videos):
        v = np.asarray(videos, dtype=np.float64)
        parts = [q.mean(axis=(1, 2, 3)) for q in np.array_split(v, 4, axis=1)]
        return np.concatenate(parts + [v.std(axis=(1, 2, 3, 4))[:, None]], axis=1) / 255.0


def _rescore(finished_run, corpus, tmp_path, monkeypatch, metrics=("fgd", "div", "bas"), features=None):
    import metrics.evaluate as evaluate_module

    run = tmp_path / "broken"
    shutil.copytree(finished_run, run, symlinks=True)
    if features is not None:
        monkeypatch.setattr(evaluate_module.Evaluator, "load", _with_features(evaluate_module.Evaluator.load, features))
    config = config_from_dict({**FAST, "metrics": list(metrics)})
    if set(metrics) != set(FAST["metrics"]):
        (run / "run.json").unlink()               # another config: a fresh run record over the same videos
    return run_benchmark(RunSettings(methods=["copy"], out=run, data=corpus, config=config, progress=False,
                                     custom={"copy": CopyMethod}))


def _with_features(load, features):
    def patched(cls, metrics, protocol, **kwargs):
        kwargs["i3d"] = features
        return load.__func__(cls, metrics, protocol, **kwargs)
    return classmethod(patched)


def _check(results, check_id):
    return next(c for c in results.control_checks if c.id == check_id)


def test_the_control_checks_hold_with_working_metrics(finished_run, corpus, tmp_path, monkeypatch):
    results = _rescore(finished_run, corpus, tmp_path, monkeypatch, ("fgd", "div", "bas", "fvd"), MeanColourFeatures())
    for check_id in ("fgd:noise-floor<static", "fvd:noise-floor<static", "div:static<gt", "bas:static<gt",
                     "bas:shuffled<gt"):
        assert _check(results, check_id).holds, check_id
    assert results.label("fvd") == "FVD*"


@pytest.mark.parametrize("check_id, broken", [
    ("fgd:noise-floor<static", "fgd constant"),
    ("fvd:noise-floor<static", "fvd ignores the video"),
    ("div:static<gt", "div constant"),
    ("bas:static<gt", "bas constant"),
    ("bas:shuffled<gt", "bas ignores the audio"),
])
def test_a_broken_metric_fails_its_control_check(finished_run, corpus, tmp_path, monkeypatch, check_id, broken):
    import metrics.beats as beats
    from metrics.diversity import Diversity
    from metrics.fgd import FGD

    metrics, features = ("fgd", "div", "bas"), None
    if broken == "fgd constant":
        monkeypatch.setattr(FGD, "compute", lambda self: 1.0)
    elif broken == "fvd ignores the video":
        metrics, features = ("fvd",), ConstantFeatures()
    elif broken == "div constant":
        monkeypatch.setattr(Diversity, "compute", lambda self: 2.0)
    elif broken == "bas constant":
        monkeypatch.setattr(beats.BAS, "compute", lambda self: 0.5)
    else:   # fixed audio beats, whatever the speech
        monkeypatch.setattr(beats, "audio_beats", lambda wav, protocol: np.arange(0.2, 10.0, 0.4))
    results = _rescore(finished_run, corpus, tmp_path, monkeypatch, metrics, features)
    check = _check(results, check_id)
    assert check.holds is False, check
    if check.gating:
        assert check in results.failed_checks()
    else:       # shuffled < gt gates from MIN_CLIPS_BAS_ORDER test clips; this corpus has 4
        monkeypatch.setattr(report_module, "MIN_CLIPS_BAS_ORDER", 4)
        assert any(c.id == check_id for c in report_module.control_checks(results) if c.fails)


# -- regression check ---------------------------------------------------------------------------------


def test_check_passes_then_catches_a_moved_number_and_a_missing_row(finished_run, tmp_path):
    baseline = update_baseline(finished_run, tmp_path / "baseline")
    assert {p.name for p in baseline.iterdir()} == {"results.json", "metrics.csv", "report.md", "tolerances.yaml"}
    failures, _ = check_run(finished_run, baseline)
    assert failures == []
    data = json.loads((baseline / "results.json").read_text())
    data["methods"]["static"]["scores"]["all"]["fgd"]["value"] *= 1.5
    data["methods"]["ghost"] = {**data["methods"]["copy"], "name": "ghost"}
    (baseline / "results.json").write_text(json.dumps(data))
    failures, _ = check_run(finished_run, baseline)
    text = [str(f) for f in failures]
    assert any(t.startswith("static/all/fgd: baseline") and "moved" in t and "tolerance" in t for t in text)
    assert any(t.startswith("ghost/all/") and "missing from the run" in t for t in text)
    assert len([t for t in text if t.startswith("static/")]) == 1
    assert bench_main(["check", "--baseline", str(baseline), "--run", str(finished_run)]) == 1


def test_check_refuses_a_baseline_of_an_older_schema(finished_run, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.csv").write_text("method,label,kind,scope,metric,value\ngt,GT,control,all,FVD*,0.0\n")
    (old / "tolerances.yaml").write_text("scopes: [all]\nmetrics:\n  fgd: {rel: 0.1}\n")
    assert bench_main(["check", "--baseline", str(old), "--run", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "older schema" in err and "check --update" in err
    (old / "tolerances.yaml").write_text("metrics:\n  FVD*: {rel: 0.1}\n")
    with pytest.raises(ValueError, match="'FVD\\*' not metric ids.*FVD\\* -> fvd"):
        check_run(finished_run, old)


MALFORMED = [   # (edit of the committed toy-ci results.json, the one line each command must print after "RESULTS: ")
    (lambda d: d.update(methods=list(d["methods"])), "methods: expected an object, got a list"),
    (lambda d: d["methods"]["imac"]["scores"]["all"].update(fgd=5),
     "methods: imac: scores: all: fgd: expected an object, got a number 5"),
    (lambda d: d["methods"]["imac"]["scores"]["all"]["fgd"].update(value="354.1"),
     "methods: imac: scores: all: fgd: value: expected a number or null, got a string '354.1'"),
    (lambda d: d["methods"]["imac"]["scores"]["all"]["fgd"].update(value=True),
     "methods: imac: scores: all: fgd: value: expected a number or null, got true/false"),
    (lambda d: d["methods"].update(imac=None), "methods: imac: expected an object, got null"),
    (lambda d: d.update(environment="linux"), "environment: expected an object, got a string 'linux'"),
    (lambda d: d["run"].pop("device"), "run: missing field 'device'"),
    (lambda d: d.pop("protocol"), "missing field 'protocol'"),
    (lambda d: d["networks"]["i3d"].update(pretrained="no"), "networks: i3d: pretrained: expected true/false, got a "
                                                             "string 'no'"),
    (lambda d: d.update(schema_version=3), "written by a newer version (schema 'imac-bench-results' version 3; this "
                                           "one reads version 2): upgrade the package to read it"),
    (lambda d: d.update(schema="metrics-evaluation"), "a 'metrics-evaluation' document, not a 'imac-bench-results' one"),
    (lambda d: d.update(schema_version="2"), "schema_version: expected an integer, got a string '2'"),
]


@pytest.mark.parametrize("edit,problem", MALFORMED)
def test_a_malformed_results_file_is_one_line_naming_the_field_in_report_and_check(edit, problem, tmp_path, capsys):
    """Was: KeyError / AttributeError tracebacks, '354.1' and true read as scores, and every schema mismatch
    said to be 'written by an older imac-bench'."""
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    edit(data)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    for argv in (["report", "--run", str(run), "--no-plots"], ["check", "--baseline", str(COMMITTED_BASELINE),
                                                                "--run", str(run)]):
        assert bench_main(argv) == 2
        assert capsys.readouterr().err == f"imac-bench {argv[0]}: error: {run / 'results.json'}: {problem}\n"


def test_report_of_a_results_file_without_its_videos_makes_the_tables_and_says_which_plots_it_left_out(tmp_path, capsys):
    """Was: IndexError in the frame strip (a results.json copied without the run's videos)."""
    run = tmp_path / "copied"
    run.mkdir()
    shutil.copy(COMMITTED_BASELINE / "results.json", run / "results.json")
    first = json.loads((run / "results.json").read_text())["run"]["test_clips"][0]
    identity, clip = first.split("/")
    assert bench_main(["report", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert (f"not drawn: plots/frames.png and plots/beats.png: {run / 'gt' / identity / clip}.mp4 is missing "
            "(a results.json copied without the run's videos?)") in out
    assert (run / "plots" / "metrics.png").is_file() and not (run / "plots" / "frames.png").exists()
    # each row's label whole (was: cut at 45 characters, "Real vs real (noise floor: other real clips o")
    assert "\nReal vs real (noise floor: other real clips of the same speakers) " in out
    assert (run / "report.md").is_file() and (run / "metrics.csv").is_file()


def test_without_a_control_row_the_checks_are_said_not_made_and_the_check_fails(finished_run, tmp_path, capsys):
    baseline = update_baseline(finished_run, tmp_path / "baseline")
    assert bench_main(["report", "--run", str(finished_run), "--no-plots"]) == 0
    assert "control checks: all hold" in capsys.readouterr().out          # the complete run: the checks are made
    edited = tmp_path / "edited"
    edited.mkdir()
    data = json.loads((finished_run / "results.json").read_text())
    del data["methods"]["static"]                                          # a hand-edited results.json
    (edited / "results.json").write_text(json.dumps(data))
    assert bench_main(["report", "--run", str(edited), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "all hold" not in out and "control checks: COULD NOT BE MADE: the results have no static row" in out
    report = (edited / "report.md").read_text()
    assert "**The control checks could not be made**: the results have no static row" in report
    failures, _ = check_run(edited, baseline)
    assert [f.problem for f in failures if f.key == "control checks"] == [
        "could not be made: the run has no static row(s) (the baseline has them)"]
    # compared on one identity only the missing row's scores are missing too; the checks still fail
    identity = data["run"]["test_clips"][0].split("/")[0]
    (baseline / "tolerances.yaml").write_text(f"scopes: [identity:{identity}]\n")
    assert "control checks" in {f.key for f in check_run(edited, baseline)[0]}
    assert check_run(finished_run, baseline)[0] == []
    assert bench_main(["check", "--baseline", str(baseline), "--run", str(edited)]) == 1


def test_check_refuses_an_unknown_scope_and_fails_on_a_scope_the_baseline_lacks(finished_run, tmp_path, capsys):
    baseline = update_baseline(finished_run, tmp_path / "baseline")
    tolerances = baseline / "tolerances.yaml"
    tolerances.write_text("scopes: [al]\n")
    assert bench_main(["check", "--baseline", str(baseline), "--run", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tolerances}: scopes: 'al' is not a scope" in err
    identities = sorted({label.split("/")[0] for label in read_results(finished_run / "results.json").run["test_clips"]})
    for scopes in (f"[identity:{identities[0]}]", "['*']", "'*'", "all"):
        tolerances.write_text(f"scopes: {scopes}\n")
        assert check_run(finished_run, baseline) == ([], []), scopes
    tolerances.write_text(f"scopes: [all, identity:{identities[0]}x]\n")     # a typo in an identity
    failures, _ = check_run(finished_run, baseline)
    assert [str(f) for f in failures] == [f"scope identity:{identities[0]}x: no scores in the baseline, nothing to "
                                          f"compare (its scopes: all, identity:{identities[0]}, identity:{identities[1]})"]


COMMITTED_BASELINE = Path(__file__).resolve().parent.parent / "results" / "toy-ci"


def test_check_takes_a_results_json_for_its_folder_and_refuses_another_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(COMMITTED_BASELINE / "results.json", run / "results.json")
    assert bench_main(["check", "--baseline", str(COMMITTED_BASELINE / "results.json"),
                       "--run", str(run / "results.json")]) == 0
    assert f"{run} matches the baseline {COMMITTED_BASELINE} within its tolerances" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        bench_main(["check", "--baseline", str(COMMITTED_BASELINE), "--run", str(COMMITTED_BASELINE / "report.md")])
    assert refused.value.code == 2
    assert capsys.readouterr().err == (f"imac-bench check: error: argument --run: {COMMITTED_BASELINE / 'report.md'} "
                                       "is a file; give the folder that holds results.json (see imac-bench check "
                                       "--help)\n")


def test_update_into_a_new_baseline_given_as_its_results_json_writes_that_folder(tmp_path, capsys):
    """--baseline NEW/results.json with --update is the folder NEW (was: a folder named results.json),
    and a baseline without tolerances.yaml is said to get the default margins (was: 'kept')."""
    new = tmp_path / "new"
    assert bench_main(["check", "--update", "--allow-undefined", "--baseline", str(new / "results.json"),
                       "--run", str(COMMITTED_BASELINE)]) == 0
    assert (new / "results.json").is_file() and (new / "tolerances.yaml").is_file()
    assert "(new tolerances.yaml with the default margins: review it)" in capsys.readouterr().out
    assert bench_main(["check", "--update", "--allow-undefined", "--baseline", str(new),
                       "--run", str(COMMITTED_BASELINE)]) == 0
    assert "(tolerances.yaml kept)" in capsys.readouterr().out


def test_update_refuses_a_run_with_undefined_or_missing_scores_unless_allowed(tmp_path, capsys):
    """A baseline holding an undefined score passes every later run where it is undefined again (was:
    copied silently). A copy of the committed toy-ci baseline with IMAC's FGD set to null and MYA's HKV
    removed, as when no clip of a method can be scored on it."""
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["methods"]["imac"]["scores"]["all"]["fgd"]["value"] = None
    del data["methods"]["mya"]["scores"]["all"]["hkv"]
    data["methods"]["mya"]["unscored"] = {"ines/ines_004": "ines/ines_004.mp4: no frames decoded"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    baseline = tmp_path / "baseline"
    assert bench_main(["check", "--update", "--baseline", str(baseline), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imac-bench check: error: {baseline}: not updated from {run}: 2 score(s) undefined or "
                          "missing, which the baseline would then not guard: imac/all/fgd: undefined; mya/all/hkv: "
                          "no score (its unscored clips: e.g. ") and err.count("\n") == 1
    assert "give --allow-undefined" in err and not baseline.exists()
    assert bench_main(["check", "--allow-undefined", "--baseline", str(baseline), "--run", str(run)]) == 2
    assert "--allow-undefined goes with --update" in capsys.readouterr().err
    assert bench_main(["check", "--update", "--allow-undefined", "--baseline", str(baseline), "--run", str(run)]) == 0
    assert json.loads((baseline / "results.json").read_text())["methods"]["imac"]["scores"]["all"]["fgd"]["value"] is None


def test_update_refuses_to_replace_a_baseline_of_another_config_without_force(tmp_path, capsys):
    baseline = tmp_path / "baseline"
    shutil.copytree(COMMITTED_BASELINE, baseline)
    toy = COMMITTED_BASELINE.parent / "toy"                          # the toy config: other clips and corpus
    argv = ["check", "--update", "--baseline", str(baseline), "--run", str(toy)]
    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imac-bench check: error: {baseline}: not updated from {toy}: the baseline scored 4 test "
                          "clips, the run 8") and err.count("\n") == 1
    assert "give --force to replace this one" in err
    assert (baseline / "results.json").read_bytes() == (COMMITTED_BASELINE / "results.json").read_bytes()
    other_protocol = tmp_path / "other-protocol"
    other_protocol.mkdir()
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["protocol_label"] = "imac-bench (imac-bench-metrics-9.9, 0000000)"
    (other_protocol / "results.json").write_text(json.dumps(data))
    assert bench_main(["check", "--update", "--baseline", str(baseline), "--run", str(other_protocol)]) == 2
    assert "the protocol differs (baseline 'imac-bench" in capsys.readouterr().err
    # the same clips and corpus under other settings (before: replaced without --force, a 9-metric baseline
    # by a 2-metric run, even with only --allow-fewer-methods given)
    other_settings = tmp_path / "other-settings"
    other_settings.mkdir()
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["run"]["config"]["metrics"] = ["fgd", "bas"]
    (other_settings / "results.json").write_text(json.dumps(data))
    assert bench_main(["check", "--update", "--allow-fewer-methods", "--baseline", str(baseline), "--run",
                       str(other_settings)]) == 2
    assert "the bench config's settings differ (metrics: [" in capsys.readouterr().err
    assert bench_main(["check", "--force", "--baseline", str(baseline), "--run", str(toy)]) == 2
    assert "--force goes with --update" in capsys.readouterr().err
    assert bench_main([*argv, "--force"]) == 0
    assert (baseline / "results.json").read_bytes() == (toy / "results.json").read_bytes()


def _typed(methods: dict, protocol_label: str = "p (1.0, abc)") -> BenchResults:
    return BenchResults(run={"test_clips": []}, protocol={}, protocol_label=protocol_label, metrics=("fgd", "bas"),
                        methods=methods)


def _row(name, kind="model", **values):
    return MethodResult(name=name, label=name.upper(), kind=kind,
                        scores={"all": {k: Score(v, v - 1, v + 1, {"n_fake_clips": 4}) for k, v in values.items()}})


def test_check_fails_on_a_protocol_change_and_a_failed_control_check():
    run = _typed({"m": _row("m", fgd=1.0)})
    failures, _ = compare(run, _typed({"m": _row("m", fgd=1.0)}), {"protocol": "p (1.1, def)"})
    assert failures and "protocol" in str(failures[0])
    run.control_checks = [ControlCheck("bas:shuffled<gt", "bas", "shuffled", "gt", True, 0.6, 0.5, False)]
    failures, _ = compare(run, _typed({"m": _row("m", fgd=1.0)}), {})
    assert "control check bas:shuffled<gt" in str(failures[0])
    within, _ = compare(_typed({"m": _row("m", fgd=1.05)}), _typed({"m": _row("m", fgd=1.0)}),
                        {"metrics": {"fgd": {"rel": 0.1}}})
    assert within == []


def test_trained_methods_are_compared_with_the_trained_margins_and_the_controls_strictly():
    # A CPU with other vector instructions re-rolls the toy training (measured: IMAC's CI-size FGD 321 on
    # the baseline's machine, 747 on an AVX-512 one, 269 there with ATEN_CPU_CAPABILITY=avx2), the
    # controls move only with the skeleton autoencoder.
    baseline = _typed({"m": _row("m", fgd=1.0, hkv=0.5), "static": _row("static", "control", fgd=1.0)})
    baseline.environment = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cpu_id": "0123456789ab"}
    run = _typed({"m": _row("m", fgd=1.4, hkv=math.nan), "static": _row("static", "control", fgd=1.4)})
    run.environment = {"cpu": "AMD EPYC", "cpu_capability": "AVX512"}
    strict = {"metrics": {"fgd": {"rel": 0.1}}}
    failures, _ = compare(run, baseline, strict)
    assert sorted(f.key for f in failures) == ["m/all/fgd", "m/all/hkv", "static/all/fgd"]
    margins = {**strict, "trained": {"default": {"rel": 0.5}, "may_be_undefined": ["hkv"]}}
    failures, notes = compare(run, baseline, margins)
    assert [f.key for f in failures] == ["static/all/fgd"]
    assert any(n.startswith("m/all/hkv: baseline 0.5, run nan") for n in notes)
    assert any("AVX2" in n and "AVX512" in n and "trained margins" in n for n in notes)
    run.methods["m"] = _row("m", fgd=1.6, hkv=math.nan)  # beyond 50%
    assert [f.key for f in compare(run, baseline, margins)[0]] == ["m/all/fgd", "static/all/fgd"]
    run.environment = dict(baseline.environment)         # on the baseline's own CPU a run repeats it: strict
    assert [f.key for f in compare(run, baseline, margins)[0]] == ["m/all/fgd", "m/all/hkv", "static/all/fgd"]
    run.environment["cpu_id"] = "ba9876543210"           # one model name, other instructions: margins
    assert [f.key for f in compare(run, baseline, margins)[0]] == ["m/all/fgd", "static/all/fgd"]
    baseline.environment.pop("cpu_id")                   # id not recorded (an older baseline): margins
    run.environment = dict(baseline.environment)
    assert [f.key for f in compare(run, baseline, margins)[0]] == ["m/all/fgd", "static/all/fgd"]
    run.environment = {"cpu": "AMD EPYC", "cpu_capability": "AVX512"}
    run.methods["m"] = _row("m", fgd=1.05, hkv=0.52)     # a trained section without fgd keeps the top level's
    assert compare(run, baseline, {**strict, "trained": {"metrics": {"hkv": {"rel": 0.1}}}})[0][0].key == "static/all/fgd"
    run.methods["m"] = _row("m", fgd=1.2, hkv=0.5)
    assert [f.key for f in compare(run, baseline, {**strict, "trained": {"metrics": {"hkv": {"rel": 0.1}}}})[0]] \
        == ["m/all/fgd", "static/all/fgd"]
    run.methods["m"] = _row("m", fgd=1.0)                # a score deleted is missing, not undefined
    failures = compare(run, baseline, margins)[0]
    assert [(f.key, f.problem) for f in failures if f.key.startswith("m/")] == [("m/all/hkv", "missing from the run")]
    del run.methods["m"]                                 # a method that did not run fails whatever the margins
    failures, _ = compare(run, baseline, margins)
    assert {f.key for f in failures} == {"m/all/fgd", "m/all/hkv", "static/all/fgd"}
    assert all("missing from the run" in f.problem for f in failures if f.key.startswith("m/"))


def test_check_fails_on_what_produced_the_numbers_not_only_on_the_numbers():
    """Before, a run of another config, seed, autoencoder or I3D, or one scored on fewer clips, "matched the
    baseline" wherever its values fell within the tolerances."""
    import dataclasses

    def results(config=None, seed=0, ae="07998149a004", i3d="i3d-untrained-seed0", clips=4, cpu="x"):
        typed = _typed({"m": MethodResult(name="m", label="M", kind="model", scores={"all": {
            "fgd": Score(10.0, 9.0, 11.0, {"n_real_clips": 4, "n_fake_clips": clips})}})})
        typed.run = {"test_clips": [], "seed": seed,
                     "config": config or {"name": "toy-ci", "fgd_autoencoder": None, "s2g": {"steps": 100}}}
        typed.networks = {"pose_extractor": "toy-markers-v1", "skeleton_autoencoder": {"checkpoint_hash": ae},
                          "i3d": {"feature_id": i3d, "pretrained": False}}
        typed.environment = {"cpu": cpu, "cpu_capability": "AVX2", "torch_threads": 2, "cpu_id": cpu}
        return typed

    baseline = results()
    assert compare(results(), baseline, {}) == ([], [])
    cases = [(dict(config={"name": "toy-ci", "fgd_autoencoder": None, "s2g": {"steps": 5}}),
              "config", "the run's bench config differs from the baseline's (s2g.steps: 100 -> 5)"),
             (dict(seed=7), "seed", "baseline 0, run 7: another seed's numbers"),
             (dict(i3d="i3d-untrained-seed3"), "I3D", "baseline 'i3d-untrained-seed0', run 'i3d-untrained-seed3'"),
             (dict(ae="8b456de03a73"), "skeleton autoencoder", "baseline 07998149a004, run 8b456de03a73"),
             (dict(clips=1), "m/all/fgd", "rests on other clips (n_fake_clips 4 -> 1)")]
    for change, key, said in cases:
        failures, _ = compare(results(**change), baseline, {})
        assert [f.key for f in failures] == [key] and said in failures[0].problem, (key, failures)
    # the config's name and where a weight file lies are no settings of the experiment
    renamed = results(config={"name": "mine", "fgd_autoencoder": None, "s2g": {"steps": 100}})
    assert compare(renamed, baseline, {})[0] == []
    # an autoencoder the run trained itself, or a trained method's videos, on another CPU may end otherwise:
    # a note, not a failure (on the baseline's own CPU they repeat exactly)
    failures, notes = compare(results(ae="8b456de03a73", cpu="y", clips=3), baseline, {})
    assert failures == [] and any(n.startswith("skeleton autoencoder: baseline 07998149a004") for n in notes)
    assert any(n.startswith("m/all/fgd: rests on other clips (n_fake_clips 4 -> 3); a method trained") for n in notes)
    given = results(config={"name": "toy-ci", "fgd_autoencoder": "/a/ae", "s2g": {"steps": 100}}, ae="8b456de03a73",
                    cpu="y")
    assert [f.key for f in compare(given, dataclasses.replace(baseline, run={**baseline.run, "config": given.run[
        "config"]}), {})[0]] == ["skeleton autoencoder"]


def test_a_run_of_other_clips_is_said_to_be_another_config_not_a_list_of_moved_numbers():
    corpus = {"identities": 4, "clips": 8, "test_clips": 2, "size": 128, "seed": 0}
    baseline = _typed({"m": _row("m", fgd=1.0, bas=0.5)})
    baseline.run = {"config": {"name": "toy-ci", "corpus": {**corpus, "test_clips": 1}}, "test_clips": ["a/a_1", "b/b_1"]}
    run = _typed({"m": _row("m", fgd=3.0, bas=0.1)})
    run.run = {"config": {"name": "toy", "corpus": corpus}, "test_clips": ["a/a_1", "a/a_2", "b/b_1", "b/b_2"]}
    failures, _ = compare(run, baseline, {})
    assert [f.key for f in failures] == ["test clips"]
    assert failures[0].problem.startswith("the baseline scored 2 test clips, the run 4; the corpus differs")
    assert "(baseline 'toy-ci', run 'toy')" in failures[0].problem
    run.run = {"config": {"name": "toy", "corpus": corpus}, "test_clips": ["a/a_1", "c/c_1"]}   # same count, others
    assert "2 test clips, the run 2 (2 not in both)" in compare(run, baseline, {})[0][0].problem
    run.run = {"config": {"name": "mine", "corpus": {**corpus, "test_clips": 1}}, "test_clips": ["a/a_1", "b/b_1"]}
    assert [f.key for f in compare(run, baseline, {})[0]] == ["m/all/fgd", "m/all/bas"]    # same clips: compared
    run.run = {"config": {"name": "toy", "corpus": corpus}}                       # clips not recorded: the corpus says
    assert compare(run, baseline, {})[0][0].problem.startswith("the corpus differs")
    # a run given --data scored that dataset, whatever its config's embedded corpus settings say
    run.run = {"config": {"name": "toy-ci", "corpus": {**corpus, "test_clips": 1}}, "data": "/d/mine",
               "data_given": True, "test_clips": ["a/a_1", "b/b_1"]}
    problem = compare(run, baseline, {})[0][0].problem
    assert problem.startswith("the corpus differs (baseline {'identities': 4") and "run --data /d/mine)" in problem


@pytest.mark.parametrize("text, message", [
    ("trained: {metrics: {FVD*: {rel: 0.5}}}", "trained: metrics: 'FVD\\*' not metric ids"),
    ("trained: {may_be_undefined: [hands]}", "trained: may_be_undefined: a list of metric ids"),
    ("trained: {default: {rel: -1}}", "trained: default: rel must be a finite number >= 0"),
    ("trained: {default: {rel: .inf}}", "trained: default: rel must be a finite number >= 0, got inf"),
    ("metrics: {fgd: {abs: 1e1000}}", "fgd: abs must be a finite number >= 0, got inf"),
    ("metrics:\n  fgd: {abs: 1}\n  fgd: {abs: 1e9}", "line 3: the key 'fgd' is given twice \\(first on line 2\\); keep one"),
    ("protocol: a\nprotocol: b", "line 2: the key 'protocol' is given twice"),
    ("trained: {seeds: 3}", "trained: a mapping of default, metrics and may_be_undefined"),
    ("metrics: {fgd: {abs: foo}}", "fgd: abs must be a finite number >= 0, got 'foo'"),
    ("margins: {}", "unknown key\\(s\\) margins"),
    ("metrics:\n  fgd: 0.1", "metrics: fgd: a mapping of abs and rel, got 0.1"),
    ("metrics: [fgd]", "metrics: a mapping, got \\['fgd'\\]"),
    ("default: 5", "default: a mapping, got 5"),
    ("trained:\n  metrics: {fgd: 0.5}", "trained: metrics: fgd: a mapping of abs and rel"),
    ("scopes: [all, al]", "scopes: 'al' is not a scope \\(all, identity:NAME"),
    ("scopes: ['identity:']", "scopes: 'identity:' is not a scope"),
    ("scopes: [3]", "scopes: 3 is not a scope"),
    ("scopes: []", "scopes: a list of scopes"),
    ("scopes: {all: 1}", "scopes: a list of scopes"),
    ("", "empty: no options in it; the tolerances of a baseline are a mapping of protocol, scopes, default, metrics and trained"),
    ("# margins to come", "empty: no options in it; .*`default: {abs: 0, rel: 0}` for an exact comparison"),
    ("[fgd, div]", "expected a mapping of options, got list; the tolerances of a baseline are a mapping"),
])
def test_tolerances_are_refused_naming_the_field(tmp_path, text, message):
    from bench.check import read_tolerances
    path = tmp_path / "tolerances.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=f"tolerances.yaml: .*{message}"):
        read_tolerances(path)


def test_an_empty_tolerances_file_is_one_line_naming_it_not_zero_tolerance(tmp_path, capsys):
    (tmp_path / "tolerances.yaml").write_text("")
    assert bench_main(["check", "--baseline", str(tmp_path), "--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imac-bench check: error: {tmp_path / 'tolerances.yaml'}: empty: no options in it; ") and err.count("\n") == 1


def test_a_missing_baseline_folder_is_named_as_a_folder(tmp_path, capsys):
    assert bench_main(["check", "--baseline", str(tmp_path / "nowhere"), "--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == (f"imac-bench check: error: {tmp_path / 'nowhere'}: no such baseline folder (one holds results.json "
                   "and tolerances.yaml; write one with `imac-bench check --update --baseline DIR --run RUN`)\n")


def test_control_checks_flag_a_wrong_order_and_skip_unscored_methods():
    gt = _row("gt", "reference", div=5.0, bas=0.5)
    gt.scores["all"]["bas"] = Score(0.5, 0.4, 0.6, {"n_clips": 2})      # too few clips to gate
    results = _typed({"m": MethodResult("m", "m", "model"),
                      "gt": gt,
                      "noise-floor": _row("noise-floor", "control", fgd=3.0, div=5.0, bas=0.5),
                      "static": _row("static", "control", fgd=9.0, div=0.0, bas=0.0),
                      "shuffled": _row("shuffled", "control", bas=0.7)})
    checks = {c.id: c for c in control_checks(results)}
    assert checks["bas:shuffled<gt"].holds is False
    assert checks["fgd:noise-floor<static"].holds is True
    assert checks["fgd:noise-floor<=m"].holds is None and not checks["fgd:noise-floor<=m"].gating
    # with fewer than MIN_CLIPS_BAS_ORDER (4) test clips the BAS ordering is reported, not gating; with 8 it fails the run
    assert not checks["bas:shuffled<gt"].gating and failed_checks(results) == []
    results.methods["gt"] = _row("gt", "reference", div=5.0, bas=0.5)
    results.methods["gt"].scores["all"]["bas"] = Score(0.5, 0.4, 0.6, {"n_clips": 8})
    results.control_checks = control_checks(results)
    assert [c.id for c in failed_checks(results)] == ["bas:shuffled<gt"]
    # a method whose poses vary less than the reference frames (Div below static) is reported, not a failure
    results.methods["m"] = _row("m", div=0.5, bas=0.4)
    results.methods["static"] = _row("static", "control", fgd=9.0, div=1.0, bas=0.0)
    checks = {c.id: c for c in control_checks(results)}
    assert checks["div:static<=m"].holds is False and not checks["div:static<=m"].gating
    assert checks["bas:static<=m"].holds is True and checks["bas:static<=m"].gating


# -- external methods ---------------------------------------------------------------------------------


def test_generated_folder_missing_and_corrupt_videos(corpus, finished_run, tmp_path):
    results = read_results(finished_run / "results.json")
    *present, absent = results.run["test_clips"]
    folder = tmp_path / "official"
    for label in present:
        identity, clip_id = label.split("/")
        (folder / identity).mkdir(parents=True, exist_ok=True)
        (folder / identity / f"{clip_id}.mp4").write_bytes((finished_run / "copy" / identity / f"{clip_id}.mp4").read_bytes())
    with pytest.raises(ExternalVideoError, match=f"{absent.split('/')[1]}.mp4: missing"):
        run_benchmark(settings(corpus, tmp_path / "r1", methods=(), generated={"official": folder}))
    results = run_benchmark(settings(corpus, tmp_path / "r2", methods=(), generated={"official": folder},
                                     skip_missing=True))
    assert list(results.methods["official"].skipped) == [absent]
    assert "fgd" in results.methods["official"].scores["all"]
    # each scored video's bytes are recorded (hashlib here), and no seed: none made them
    import hashlib

    generation = results.methods["official"].generation
    for label in present:
        identity, clip_id = label.split("/")
        expected = hashlib.sha256((folder / identity / f"{clip_id}.mp4").read_bytes()).hexdigest()
        assert generation[label]["sha256"] == expected and "seed" not in generation[label]
    write_report(tmp_path / "r2", plots=False)
    report = (tmp_path / "r2" / "report.md").read_text()
    assert "⚠ 1 clip(s) skipped" in report
    # flagged in the table of all identities and in the missing clip's identity's, not in the others' (it was
    # in every speaker's table)
    from bench.report import markdown_table

    flagged = {scope for scope in results.methods["official"].scores
               if "⚠ 1 clip(s) skipped" in markdown_table(results, scope)}
    assert flagged == {"all", f"identity:{absent.split('/')[0]}"}
    assert len(results.methods["official"].scores) > 2
    corrupt = folder / absent.split("/")[0] / f"{absent.split('/')[1]}.mp4"
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(ExternalVideoError, match="unreadable video"):
        check_video(corrupt)
    # an mp4 with its header first, cut short: every packet left decodes, so only the header tells
    from tests.cut_files import write_faststart_cut

    write_faststart_cut(corrupt, read_video(folder / present[0].split("/")[0] / f"{present[0].split('/')[1]}.mp4"))
    with pytest.raises(ExternalVideoError, match=r"truncated: its header lists \d+ video frames and the file holds"):
        check_video(corrupt)


def _folder_of(run: Path, method: str, labels: list[str], folder: Path) -> Path:
    """``folder/<identity>/<clip_id>.mp4``: copies of ``method``'s videos in ``run``."""
    for label in labels:
        (folder / label).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / method / f"{label}.mp4", folder / f"{label}.mp4")
    return folder


def test_a_rerun_with_the_videos_of_another_folder_is_refused_until_the_old_ones_are_deleted(corpus, finished_run,
                                                                                            tmp_path):
    labels = read_results(finished_run / "results.json").run["test_clips"]
    first = _folder_of(finished_run, "copy", labels, tmp_path / "first")
    second = _folder_of(finished_run, "static", labels, tmp_path / "second")
    out = tmp_path / "run"
    results = run_benchmark(settings(corpus, out, methods=(), generated={"x": first}))
    # the same videos as the copy's in the finished run (same data, seed and autoencoder training): the same FGD
    assert results.value("x", "fgd") == pytest.approx(read_results(finished_run / "results.json").value("copy", "fgd"))
    assert json.loads((out / "run.json").read_text())["sources"] == {"x": {"folder": str(first.resolve())}}
    video = out / "x" / f"{labels[0]}.mp4"
    before = (os.readlink(video), video.lstat().st_mtime_ns)
    with pytest.raises(RunMismatchError) as error:
        run_benchmark(settings(corpus, out, methods=(), generated={"x": second}))
    assert str(error.value) == (f"{out / 'x'} holds videos of x made from folder {str(first.resolve())!r}, now folder "
                                f"{str(second.resolve())!r}: use another --out or another method name, or delete "
                                f"{out / 'x'} to make them again from the new one")
    assert (os.readlink(video), video.lstat().st_mtime_ns) == before            # nothing touched
    assert json.loads((out / "run.json").read_text())["sources"] == {"x": {"folder": str(first.resolve())}}
    shutil.rmtree(out / "x")                                                      # as the message says
    results = run_benchmark(settings(corpus, out, methods=(), generated={"x": second}))
    assert Path(os.readlink(video)).parent.parent == second
    assert results.methods["x"].facts["folder"] == str(second.resolve())
    assert {r["source"] for r in results.methods["x"].generation.values()} == {str(second / f"{l}.mp4") for l in labels}
    assert results.value("x", "fgd") == pytest.approx(results.value("static", "fgd"))   # now the static videos


def test_a_folder_of_an_earlier_version_is_compared_with_the_methods_facts(tmp_path):
    out, old, new = tmp_path / "run", {"command": "tool {out}", "cwd": None}, {"command": "tool --v2 {out}", "cwd": None}
    (out / "work" / "tool").mkdir(parents=True)
    (out / "work" / "tool" / "method.json").write_text(json.dumps({**old, "prepare_seconds": 1.0}))
    (out / "tool" / "anna").mkdir(parents=True)
    (out / "tool" / "anna" / "c0.mp4").write_bytes(b"a finished video")
    assert check_sources(out, {}, {"tool": old}) == {"tool": old}     # run.json of an earlier version: no sources
    with pytest.raises(RunMismatchError, match="made from command 'tool {out}', cwd None, now command 'tool --v2"):
        check_sources(out, {}, {"tool": new})
    with pytest.raises(RunMismatchError, match="sources: not a mapping"):
        check_sources(out, ["tool"], {"tool": old})
    (out / "tool" / "anna" / "c0.mp4").unlink()                      # no video left: the new command is recorded
    assert check_sources(out, {"tool": old}, {"tool": new}) == {"tool": new}


FAKE_TOOL = textwrap.dedent("""
    import sys
    import numpy as np
    from PIL import Image
    from metrics.io.video import write_video
    reference, audio, out, frames, fps = sys.argv[1:6]
    if "fail" in out:
        sys.exit(3)
    image = np.asarray(Image.open(reference).convert("RGB"))
    write_video(out, np.repeat(image[None], int(frames), axis=0), float(fps))
""")


def test_command_template_adapter_runs_a_fake_tool(corpus, tmp_path):
    tool = tmp_path / "tool.py"
    tool.write_text(FAKE_TOOL)
    methods_file = tmp_path / "methods.yaml"
    methods_file.write_text(f"methods:\n  official:\n    label: Official tool\n    command: {sys.executable} {tool} "
                            "{reference} {audio} {out} {num_frames} {fps}\n")
    results = run_benchmark(settings(corpus, tmp_path / "r", methods=("official",), methods_file=methods_file))
    assert results.methods["official"].label == "Official tool"
    # the tool writes no sound: under bas_audio "real" BAS takes each clip's real speech as it does for
    # every generated clip, so nothing was converted
    assert not any("audio" in line for line in results.methods["official"].provenance["bas"].conversions)
    for label in results.run["test_clips"]:
        identity, clip_id = label.split("/")
        made, real = tmp_path / "r" / "official" / identity / f"{clip_id}.mp4", corpus / identity / f"{clip_id}.mp4"
        assert probe_video(made).num_frames == probe_video(real).num_frames
        assert (tmp_path / "r" / "work" / "official" / "inputs" / identity / f"{clip_id}.png").is_file()
    # another command for the same method in the same folder: refused, nothing regenerated
    made = sorted((tmp_path / "r" / "official").glob("*/*.mp4"))
    before = [p.stat().st_mtime_ns for p in made]
    methods_file.write_text(methods_file.read_text().replace("{fps}", "{fps} --v2"))
    with pytest.raises(RunMismatchError, match=r"official made from command .*\{fps\}', cwd None, now command "
                                               r".*\{fps\} --v2', cwd None: use another --out or another method name"):
        run_benchmark(settings(corpus, tmp_path / "r", methods=("official",), methods_file=methods_file))
    assert [p.stat().st_mtime_ns for p in made] == before and len(made) == 4
    # a failing command: a clear error naming the clip and the exit code; nothing left as finished
    failing = tmp_path / "failing.yaml"
    failing.write_text(f"methods:\n  fail:\n    command: {sys.executable} {tool} {{reference}} {{audio}} "
                       "{out} {num_frames} {fps}\n")
    with pytest.raises(ExternalVideoError, match=r"fail on .*exited with 3"):
        run_benchmark(settings(corpus, tmp_path / "r3", methods=("fail",), methods_file=failing))
    assert not list((tmp_path / "r3").glob("fail/*/*.mp4"))
    # a command that exits 0 and writes nothing: said so (before: "<hidden temporary file>: missing")
    silent = tmp_path / "silent.yaml"
    silent.write_text("methods:\n  quiet:\n    command: true {out}\n")
    with pytest.raises(ExternalVideoError, match=r"quiet on .*: the command exited with 0 but wrote no video to "
                                                 r"its \{out\} \(\..*\.mp4\): true "):
        run_benchmark(settings(corpus, tmp_path / "r4", methods=("quiet",), methods_file=silent))


def test_methods_file_errors_and_quoting(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("methods:\n  x:\n    command: run {reference} {output}\n")
    with pytest.raises(ValueError, match=r"unknown placeholder.*\{output\}"):
        parse_methods_file(path)
    path.write_text("methods:\n  x:\n    command: run {reference}\n")
    with pytest.raises(ValueError, match=r"must write \{out\}"):
        parse_methods_file(path)
    path.write_text("methods:\n  x:\n    command: run {out}\n    gpu: 1\n")
    with pytest.raises(ValueError, match="unknown key.*gpu"):
        parse_methods_file(path)
    path.write_text("methods:\n  x:\n    command: run {out}\n    timeout: -2\n")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        parse_methods_file(path)
    for name in ("..", "a/b", "work", ".hidden"):          # a method's name is its folder in the run
        path.write_text(f"methods:\n  '{name}':\n    command: run {{out}}\n")
        with pytest.raises(ValueError, match="cannot name a method"):
            parse_methods_file(path)
    argv = format_command("tool --in {reference} --out {out}", {"reference": "/a b/c.png", "out": "/o;rm -rf x.mp4"})
    assert argv == ["tool", "--in", "/a b/c.png", "--out", "/o;rm -rf x.mp4"]


def test_methods_file_cwd_is_relative_to_the_file_and_env_values_are_strings(tmp_path, monkeypatch):
    (tmp_path / "official").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "m.yaml"
    path.write_text("methods:\n  a: {command: 'run {out}', cwd: official, env: {CUDA_VISIBLE_DEVICES: 0, X: 'y'}}\n"
                    "  b: {command: 'run {out}', cwd: ~/official}\n")
    monkeypatch.chdir(tmp_path)
    specs = parse_methods_file("m.yaml")                      # kept absolute: a rerun from elsewhere matches
    assert specs["a"].cwd == specs["b"].cwd == str(tmp_path / "official")
    assert specs["a"].env == {"CUDA_VISIBLE_DEVICES": "0", "X": "y"}
    for entry, message in (("cwd: nowhere", rf"method 'x': cwd {tmp_path / 'nowhere'} is not a folder"),
                           ("env: {FLAG: true}", r"method 'x': env FLAG: True is not a string \(quote it"),
                           ("env: {RATE: 0.10}", r"method 'x': env RATE: 0.1 is not a string"),
                           ("env: {EMPTY: null}", r"method 'x': env EMPTY: None is not a string"),
                           ("env: [A]", r"method 'x': env must be a mapping"),
                           ("env: {'A=B': x}", r"method 'x': env: 'A=B' cannot name an environment variable"),
                           ("env: {'': x}", r"method 'x': env: '' cannot name an environment variable"),
                           ('env: {A: "x\\0y"}', r"method 'x': env A: the value holds a NUL character"),
                           ("label: [1, 2]", r"method 'x': label must be a string"),
                           ("cwd: .\n    timeout: 5\n    label: 'y'\n    env: {}\n  z:\n    command: 'run \"{out}'",
                            r"method 'z': the command does not split into arguments as a shell would: No closing")):
        path.write_text(f"methods:\n  x:\n    command: run {{out}}\n    {entry}\n")
        with pytest.raises(ValueError, match=message):
            parse_methods_file(path)
    for name, message in (("true", r"methods: True is not a name \(quote it"),
                          ("s2g", r"method 's2g': a method the bench has already"),
                          ("static", r"method 'static': a method the bench has already"),
                          ("noise-floor", r"method 'noise-floor': a method the bench has already")):
        path.write_text(f"methods:\n  {name}:\n    command: run {{out}}\n")
        with pytest.raises(ValueError, match=message):
            parse_methods_file(path)


ENV_WRITER = ("{python} -c \"import json, os, sys; json.dump([dict(os.environ), sys.argv[1]], open('env.json', 'w')); "
              "sys.exit(1)\" {{local_rank}} {{out}}")


@pytest.mark.parametrize("launched", [False, True])
def test_a_command_runs_outside_the_benchs_launch(tmp_path, monkeypatch, launched):
    """Under a launch (torchrun's variables, accelerate's) the command gets none of the launcher's
    variables, which would make torch.distributed or accelerate in it wait to join the bench's processes,
    and ``{local_rank}`` is the bench process's; what the methods file sets is kept."""
    import json
    from types import SimpleNamespace

    from bench.methods.command import CommandMethod, CommandSpec
    from metrics.dataset import ClipRecord
    launch = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1",
              "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x", "ACCELERATE_MIXED_PRECISION": "bf16",
              "GROUP_RANK": "1", "IMAC_LAUNCHER_PID": "1"}
    # outside a launch (no WORLD_SIZE above 1) such variables are the user's own, and kept
    users = {"MASTER_ADDR", "ACCELERATE_MIXED_PRECISION", "LOCAL_RANK"}
    for key, value in launch.items():
        if launched or key in users:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("USERS_OWN", "kept")
    (tmp_path / "work" / "inputs" / "anna").mkdir(parents=True)
    (tmp_path / "work" / "inputs" / "anna" / "c0.png").write_bytes(b"")
    clip = ClipRecord("anna", "test", "c0", video=tmp_path / "c0.mp4", audio=tmp_path / "c0.wav", fps=25.0,
                      num_frames=5, width=16, height=16)
    method = CommandMethod(CommandSpec("tool", ENV_WRITER.format(python=sys.executable), cwd=str(tmp_path),
                                       env={"MASTER_PORT": "1234"}))
    method.prepare(SimpleNamespace(work_dir=tmp_path / "work"))
    with pytest.raises(ExternalVideoError, match="exited with 1"):
        method.write(clip, tmp_path / "run" / "c0.mp4", seed=0)
    environment, rank = json.loads((tmp_path / "env.json").read_text())
    assert environment["USERS_OWN"] == "kept" and environment["MASTER_PORT"] == "1234"
    assert {key for key in launch if key in environment} - {"MASTER_PORT"} == (set() if launched else users)
    assert rank == ("1" if launched else "0")


def test_a_failed_commands_last_lines_are_told_as_a_terminal_shows_them(tmp_path):
    from types import SimpleNamespace

    from bench.methods.command import CommandMethod, CommandSpec, output_tail
    # a progress bar rewritten with carriage returns, colour codes, a blank stderr: what a terminal shows
    assert output_tail("loading\n\x1b[1;31mError:\x1b[0m no GPU\n 10%|#  \r 50%|###  \r100%|#####|\n\n") == \
        ["loading", "Error: no GPU", "100%|#####|"]
    assert output_tail("x" * 500 + "the reason") == ["x" * 148 + " … " + "x" * 139 + "the reason"]
    from metrics.dataset import ClipRecord
    (tmp_path / "work" / "inputs" / "anna").mkdir(parents=True)
    (tmp_path / "work" / "inputs" / "anna" / "c0.png").write_bytes(b"")
    clip = ClipRecord("anna", "test", "c0", video=tmp_path / "c0.mp4", audio=tmp_path / "c0.wav", fps=25.0,
                      num_frames=5, width=16, height=16)
    for command, expected in (("sh -c 'echo the reason; echo >&2; exit 2' {out}", r"exited with 2: .*\nthe reason$"),
                              ("sh -c 'kill -SEGV $$' {out}", r"was killed by SIGSEGV: ")):
        method = CommandMethod(CommandSpec("tool", command))
        method.prepare(SimpleNamespace(work_dir=tmp_path / "work"))
        with pytest.raises(ExternalVideoError, match=expected):
            method.write(clip, tmp_path / "run" / "c0.mp4", seed=0)


def test_shuffled_bas_is_the_mean_over_every_other_clips_audio(finished_run):
    from metrics.io.audio import load_audio
    from metrics.beats import BAS
    from metrics.pose.toy import ToyMarkerPose
    from metrics.protocol import Protocol

    results = read_results(finished_run / "results.json")
    labels = results.run["test_clips"]
    scorer, pose = BAS(Protocol.from_dict(results.protocol)), ToyMarkerPose()
    audio = {label: load_audio((finished_run / "gt" / label).with_suffix(".wav"), 16000) for label in labels}
    expected = []
    for label in labels:
        with VideoReader((finished_run / "gt" / label).with_suffix(".mp4")) as reader:
            keypoints = pose(reader.read(0, len(reader)))
        n = len(audio[label])
        scores = [scorer.score(keypoints, 25.0, np.resize(audio[other], n), 16000)
                  for other in labels if other != label]
        expected.append(np.mean(scores))
    shuffled = results.methods["shuffled"].scores["all"]["bas"]
    assert shuffled.value == pytest.approx(np.mean(expected), rel=1e-9)
    assert shuffled.counts["n_clips"] == 4


def test_diversity_is_within_identity(finished_run):
    results = read_results(finished_run / "results.json")
    gt = results.methods["gt"].scores
    per_identity = [gt[s]["div"].value for s in gt if s.startswith("identity:")]
    assert gt["all"]["div"].value == pytest.approx(np.mean(per_identity))
    assert not math.isnan(gt["all"]["div"].value)


def test_each_imac_variant_is_its_config_switches(corpus, tmp_path):
    from bench.methods.base import BenchContext
    from bench.methods.imac_method import IMACMethod, IMACOptions

    context = BenchContext(data_root=corpus, work_dir=tmp_path / "work", seed=3, identities=("ines",),
                           shared_vae=lambda: tmp_path / "vae", progress=False)
    options = IMACOptions.from_dict({"overrides": ["stage2.steps=7"]})
    configs = {name: IMACMethod(name).config(context, options) for name in
               ("imac", "imac-no-ref", "imac-no-motion", "imac-no-stage1", "imac-no-slowfast")}
    base = configs["imac"]
    assert (base.data.root, base.train.output, base.train.seed) == (str(corpus), str(tmp_path / "work"), 3)
    assert base.video.vae == str(tmp_path / "vae") and base.data.identities == ["ines"]
    assert base.stage2.steps == 7 and base.stage2.init_from == str(tmp_path / "work" / "stage1" / "model")
    assert base.video.reference_encoder and base.motion.enabled and base.stage1.motion_frames == 80
    assert configs["imac-no-ref"].video.reference_encoder is False
    assert configs["imac-no-motion"].motion.enabled is False and configs["imac-no-motion"].stage2.init_from is None
    assert configs["imac-no-stage1"].stage2.init_from is None and configs["imac-no-stage1"].motion.enabled
    assert (configs["imac-no-slowfast"].stage1.motion_frames, configs["imac-no-slowfast"].stage2.motion_frames) == (16, 16)
    assert not IMACMethod("imac-no-stage1").trains_stage1 and IMACMethod("imac-no-slowfast").trains_stage1


class ShiftMethod(CopyMethod):
    """The real video three frames late: the same look, motion off its speech."""

    name, label = "shift", "Shifted copy"

    def generate(self, clip: ClipRecord, seed: int) -> np.ndarray:
        return np.roll(real_frames(clip), 3, axis=0)


def test_methods_are_compared_in_pairs_on_the_same_clips(finished_run, corpus, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(finished_run, run, symlinks=True)
    results = run_benchmark(RunSettings(methods=["copy", "shift"], out=run, data=corpus,
                                        config=config_from_dict(dict(FAST)), progress=False,
                                        custom={"copy": CopyMethod, "shift": ShiftMethod}))
    rows = {(r["a"], r["b"], r["metric"]): r for r in results.paired}
    assert set(rows) == {("copy", "shift", m) for m in ("fgd", "div", "bas")}
    fgd = rows[("copy", "shift", "fgd")]
    assert fgd["pairs"] == 4 and fgd["low"] <= fgd["estimate"] <= fgd["high"]
    assert fgd["estimate"] == pytest.approx(results.value("copy", "fgd") - results.value("shift", "fgd"))
    assert "FGD" in fgd["sentence"] and "Copy of the real video" in fgd["sentence"]
    write_report(run, plots=False)
    assert "Differences between methods (paired on the same test clips)" in (run / "report.md").read_text()


def test_a_finished_folder_is_checked_by_the_method_before_anything_is_reused(corpus, finished_run, tmp_path):
    """Every clip is there, so nothing would be generated or prepared: the method's ``check_folder``
    still runs (an IMAC trained with other settings must not be reported as this run's)."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    calls: list[str] = []

    class StaleCopy(CopyMethod):
        def check_folder(self, context):
            assert context.work_dir == out / "work" / "copy"
            raise ValueError("trained earlier with another configuration")

    with pytest.raises(ValueError, match="trained earlier with another configuration"):
        run_benchmark(settings(corpus, out, custom={"copy": lambda: StaleCopy(calls=calls)}))
    assert calls == []


def test_every_methods_folder_is_checked_before_any_method_prepares(corpus, tmp_path):
    """A later method's stale folder is refused before an earlier method prepares or generates: what
    the earlier one trains (S2G's keypoint model, which MYA shares) must not make the later one's old
    videos pass, nor its refusal come after the earlier one's work."""
    out = tmp_path / "run"
    calls: list[str] = []
    checked: list[str] = []

    class Preparing(CopyMethod):
        def prepare(self, context):
            calls.append("prepare")
            return {}

    class StaleShift(ShiftMethod):
        def check_folder(self, context):
            checked.append(self.name)
            raise ValueError("videos made with another model")

    custom = {"copy": lambda: Preparing(calls=calls), "shift": StaleShift}
    with pytest.raises(ValueError, match="videos made with another model"):
        run_benchmark(settings(corpus, out, methods=("copy", "shift"), custom=custom))
    assert checked == ["shift"] and calls == [] and not (out / "copy").exists()


class Smoothed(ShiftMethod):
    """A method with an option whose default a new version may change (``made_with``)."""

    name, label = "smoothed", "Smoothed copy"
    smoothing = 0.5

    def made_with(self, context):
        return {"options": {"smoothing": self.smoothing, "window": (3, 4)}}


def test_videos_made_with_another_default_are_refused_naming_it(corpus, finished_run, tmp_path, caplog):
    """The runner records what a method's videos were made with (``made_with``, defaults filled in) and
    refuses to report or complete them under another version's defaults, which no config key says."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": Smoothed}))
    facts = json.loads((out / "work" / "smoothed" / "method.json").read_text())
    assert facts["made_with"] == {"options": {"smoothing": 0.5, "window": [3, 4]}}

    class NewDefault(Smoothed):
        smoothing = 0.7

    first = sorted((out / "smoothed").glob("*/*.mp4"))[0]
    first.unlink()                     # one clip missing: it would be made with the new default
    with pytest.raises(RunMismatchError, match=r"holds videos of smoothed made with other settings than "
                                               r"this run's \(options.smoothing: 0.5 -> 0.7, as \S+/work/smoothed/"
                                               r"method.json records them\): give a new --out"):
        run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": NewDefault}))
    assert not first.exists()

    # a folder of a version that recorded nothing is reused, saying that it could not be checked
    facts.pop("made_with")
    (out / "work" / "smoothed" / "method.json").write_text(json.dumps(facts))
    with caplog.at_level("WARNING", logger="bench.runner"):
        run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": NewDefault}))
    assert first.exists() and "smoothed: made by a version that did not record its settings" in caplog.text
    # the missing clip was made with this version's settings, the others with unknown ones: recording this
    # version's now would let the mixed row pass every later check
    assert "made_with" not in json.loads((out / "work" / "smoothed" / "method.json").read_text())

    for content in ("[1, 2]", '"hello"'):      # JSON, but not the method's facts
        (out / "work" / "smoothed" / "method.json").write_text(content)
        with pytest.raises(RunMismatchError, match=r"smoothed/method.json: not a JSON object: give a new --out"):
            run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": NewDefault}))


def test_a_key_added_to_made_with_reads_an_older_record_as_the_value_it_had(corpus, finished_run, tmp_path):
    """A version whose ``made_with`` gains a key (a setting the older one did not have) reads a folder that
    lacks it through ``recorded_made_with``: as the older version's value it passes, another refuses."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": Smoothed}))

    class WithPasses(Smoothed):
        passes = 1                       # the new setting; 1 is what every older version did

        def made_with(self, context):
            made = super().made_with(context)
            return {"options": {**made["options"], "passes": self.passes}}

        def recorded_made_with(self, recorded):
            return {"options": {"passes": 1, **recorded["options"]}}

    class Unaware(WithPasses):          # the same key added without saying what older folders did
        def recorded_made_with(self, recorded):
            return recorded

    class TwoPasses(WithPasses):
        passes = 2

    run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": WithPasses}))
    with pytest.raises(RunMismatchError, match=r"options.passes: \(absent\) -> 1"):
        run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": Unaware}))
    with pytest.raises(RunMismatchError, match=r"options.passes: 1 -> 2"):
        run_benchmark(settings(corpus, out, methods=("smoothed",), custom={"smoothed": TwoPasses}))


def test_a_method_whose_sample_is_not_finite_stops_the_run_naming_the_clip_and_keeps_the_finished_ones(corpus, tmp_path):
    first_clip = find_clips(corpus)[0].label                 # the runner generates in this order

    class Overflowing(CopyMethod):
        def generate(self, clip, seed):
            if clip.label != first_clip:
                raise NonFiniteError("IMAC's video chunk 2 of 6: 3 of 12 values are NaN or infinite")
            return super().generate(clip, seed)

    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"^copy, clip (\S+) \(seed \d+\): IMAC's video chunk 2 of 6: 3 of 12"):
        run_benchmark(settings(corpus, out, custom={"copy": Overflowing}))
    assert [p.relative_to(out / "copy").with_suffix("").as_posix() for p in (out / "copy").glob("*/*.mp4")] == [first_clip]


def test_the_runs_skeleton_autoencoder_is_recorded_as_this_version_trains_it(finished_run):
    # what the runner's autoencoder wrote agrees with what the reuse check expects (widths, batch, rate,
    # steps, seed, extractor): were one of them changed on one side only, every reused folder would be refused
    card = json.loads((finished_run / "work" / "fgd_autoencoder" / "config.json").read_text())
    expected = training_card(get_protocol("imac-bench"), FAST["fgd_autoencoder_steps"], 0, make_extractor("toy"))
    assert card_changes(card, expected) == []
    assert card["model"]["hidden"] == 128 and card["training"]["batch_size"] == 64      # the published defaults
    assert card["training"]["learning_rate"] == 1e-3 and card["training"]["steps"] == 20


def test_card_changes_name_each_entry_that_differs_or_is_absent():
    expected = {"model": {"hidden": 128, "latent": 64}, "training": {"learning_rate": 0.001, "pose_extractor": "toy-v1"}}
    card = {"model": {"hidden": 256, "latent": 64}, "training": {"learning_rate": 0.001}}
    assert card_changes(card, expected) == ["model.hidden: 256 -> 128", "training.pose_extractor: (absent) -> 'toy-v1'"]
    with pytest.raises(ValueError, match="no model and training mappings"):
        card_changes({"model": {}}, expected)


def test_a_skeleton_autoencoder_trained_otherwise_is_refused_before_any_method_works(corpus, finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, symlinks=True)
    path = out / "work" / "fgd_autoencoder" / "config.json"
    card = json.loads(path.read_text())
    card["training"]["learning_rate"] = 0.01              # an earlier version's rate
    path.write_text(json.dumps(card))
    with pytest.raises(RunMismatchError, match=r"fgd_autoencoder: the skeleton autoencoder of FGD/Diversity was "
                                               r"trained otherwise than this version trains it \(training.learning_rate: "
                                               r"0.01 -> 0.001\): delete .* to train it again"):
        run_benchmark(settings(corpus, out, methods=("copy", "smoothed"), custom={"copy": CopyMethod, "smoothed": Smoothed}))
    assert not (out / "smoothed").exists()


def test_an_imac_sampling_that_keeps_no_step_is_refused_before_any_training(corpus, tmp_path, capsys):
    # tiny samples at video.sample_strength 0.5: one sample step keeps int(0.5) = 0 of them
    config = yaml.safe_load((BENCH_CONFIG_DIR / "toy-ci.yaml").read_text())
    config["methods"]["imac"]["sample_steps"] = 1
    (tmp_path / "one-step.yaml").write_text(yaml.safe_dump(config))
    code = bench_main(["run", "--methods", "imac", "--data", str(corpus), "--config", str(tmp_path / "one-step.yaml"),
                       "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "imac: video.sample_strength 0.5 keeps no step of 1" in err and "(sample_steps 1)" in err
    assert not (tmp_path / "r" / "work" / "imac" / "stage1").exists() and not (tmp_path / "r" / "work" / "vae").exists()


def test_missing_weight_paths_and_a_single_test_clip_are_refused_before_any_work(tmp_path):
    corpus = tmp_path / "toy"
    generate_toy_corpus(corpus, ToyCorpusConfig(identities=1, clips=2, test_clips=1, size=64), progress=False)
    config = config_from_dict({**FAST, "i3d": str(tmp_path / "i3d.pt"), "weights": {"lpips": str(tmp_path / "l")}})
    with pytest.raises(FileNotFoundError) as error:
        run_benchmark(RunSettings(methods=["copy"], out=tmp_path / "run", data=corpus, config=config, progress=False,
                                  custom={"copy": CopyMethod}))
    assert str(error.value) == (f"bench config (toy): no such file or folder: i3d: {tmp_path / 'i3d.pt'}; "
                                f"weights: lpips: {tmp_path / 'l'}")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"1 test clip\(s\); a run needs at least 2 \(the shuffled-audio control"):
        run_benchmark(RunSettings(methods=["copy"], out=tmp_path / "run", data=corpus, config=config_from_dict(FAST),
                                  progress=False, custom={"copy": CopyMethod}))
    assert not (tmp_path / "run" / "copy").exists() and not (tmp_path / "run" / "results.json").exists()


# -- check and update, as a CI maintainer meets them (found by a new-user trial) ---------------------


def test_the_trained_margins_widen_never_narrow():
    # toy-ci's S2G FVD 6.04: the top level allows max(5.0, 0.1 x 6.04) = 5.0; the trained section's
    # default abs 0 over it left 0.6 x 6.04 = 3.62, so a run on another CPU failed what one on the same passed
    from bench.check import allowed_change
    tolerances = {"metrics": {"fvd": {"abs": 5.0, "rel": 0.1}}, "trained": {"default": {"abs": 0.0, "rel": 0.6}}}
    assert allowed_change(tolerances, "fvd", 6.038, trained=False) == 5.0
    assert allowed_change(tolerances, "fvd", 6.038, trained=True) == 5.0                  # not 3.62
    assert allowed_change(tolerances, "fvd", 100.0, trained=True) == pytest.approx(60.0)   # 0.6 x 100 > 10


def test_a_move_just_beyond_the_tolerance_reads_beyond_it():
    baseline = _typed({"m": _row("m", hkv=0.00803781381109531)})
    run = _typed({"m": _row("m", hkv=0.00803781381109531 + 0.0020001)})
    failures, _ = compare(run, baseline, {"metrics": {"hkv": {"abs": 0.002}}})
    assert failures[0].problem.endswith("moved +0.0020001, tolerance ±0.002")


def test_an_infinite_score_in_a_baseline_is_refused_not_a_check_that_always_passes(tmp_path, capsys):
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["methods"]["imac"]["scores"]["all"]["fgd"]["value"] = 1e400                  # parses as inf
    (tmp_path / "results.json").write_text(json.dumps(data).replace("Infinity", "1e400"))
    shutil.copy(COMMITTED_BASELINE / "tolerances.yaml", tmp_path)
    assert bench_main(["check", "--baseline", str(tmp_path), "--run", str(COMMITTED_BASELINE)]) == 2
    err = capsys.readouterr().err
    assert "fgd: value: expected a finite number or null, got inf" in err and err.count("\n") == 1


def test_update_refuses_a_run_whose_control_checks_fail_unless_allowed(tmp_path, capsys):
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["methods"]["static"]["scores"]["all"]["fgd"]["value"] = 100.0                 # below the noise floor
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    baseline = tmp_path / "baseline"
    argv = ["check", "--update", "--allow-undefined", "--baseline", str(baseline), "--run", str(run)]
    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    assert "control check(s) fail" in err and "fgd:noise-floor<static" in err and not baseline.exists()
    assert "give --allow-failed-checks" in err
    assert bench_main([*argv, "--allow-failed-checks"]) == 0
    assert bench_main(["check", "--allow-failed-checks", "--baseline", str(baseline), "--run", str(run)]) == 2
    assert "--allow-failed-checks goes with --update" in capsys.readouterr().err


def test_update_refuses_a_run_without_some_of_the_baselines_methods_unless_allowed(tmp_path, capsys):
    """A run rerun with fewer --methods, copied in by --update, silently dropped the other methods' rows:
    no later check guarded them. Refused, naming them; with --allow-fewer-methods the rows go."""
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    for name in ("s2g", "mya"):
        del data["methods"][name]
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    baseline = tmp_path / "baseline"
    shutil.copytree(COMMITTED_BASELINE, baseline)
    before = (baseline / "results.json").read_bytes()
    argv = ["check", "--update", "--allow-undefined", "--allow-failed-checks", "--baseline", str(baseline),
            "--run", str(run)]
    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    assert "no rows for 2 of the baseline's methods (s2g, mya)" in err and "--allow-fewer-methods" in err
    assert (baseline / "results.json").read_bytes() == before
    assert bench_main([*argv, "--allow-fewer-methods"]) == 0
    assert set(json.loads((baseline / "results.json").read_text())["methods"]) == set(data["methods"])
    assert bench_main(["check", "--allow-fewer-methods", "--baseline", str(baseline), "--run", str(run)]) == 2
    assert "--allow-fewer-methods goes with --update" in capsys.readouterr().err


def test_update_does_not_downgrade_a_baseline_it_cannot_read_without_force(tmp_path, capsys):
    baseline = tmp_path / "baseline"
    shutil.copytree(COMMITTED_BASELINE, baseline)
    data = json.loads((baseline / "results.json").read_text())
    data["schema_version"] += 1                                                       # a newer version's
    (baseline / "results.json").write_text(json.dumps(data))
    written = (baseline / "results.json").read_bytes()
    argv = ["check", "--update", "--allow-undefined", "--baseline", str(baseline), "--run", str(COMMITTED_BASELINE)]
    assert bench_main(argv) == 2
    err = capsys.readouterr().err
    assert "its results.json does not read" in err and "written by a newer version" in err and "--force" in err
    assert (baseline / "results.json").read_bytes() == written
    assert bench_main([*argv, "--force"]) == 0


def test_update_says_when_it_rewrote_the_tolerances_protocol_line(tmp_path, capsys):
    baseline = tmp_path / "baseline"
    shutil.copytree(COMMITTED_BASELINE, baseline)
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["protocol_label"] = "imac-bench (imac-bench-metrics-9.9, 0000000)"
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    assert bench_main(["check", "--update", "--allow-undefined", "--force", "--baseline", str(baseline),
                       "--run", str(run)]) == 0
    assert "(tolerances.yaml kept but for its protocol line, now the run's protocol)" in capsys.readouterr().out
    assert 'protocol: "imac-bench (imac-bench-metrics-9.9, 0000000)"' in (baseline / "tolerances.yaml").read_text()


def test_a_label_with_a_bar_keeps_its_row_s_numbers_in_their_columns(tmp_path):
    from bench.report import markdown_report
    data = json.loads((COMMITTED_BASELINE / "results.json").read_text())
    data["methods"]["imac"]["label"] = "IMAC | v2"
    (tmp_path / "results.json").write_text(json.dumps(data))
    text = markdown_report(load_results(tmp_path), [])
    table = text.split("## All identities")[1].split("\n\n")[1].splitlines()
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in table]
    assert len(set(cells)) == 1 and any(line.startswith(r"| IMAC \| v2") for line in table)


@pytest.mark.parametrize("tags, named", [(["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"],
                                          "colour_matrix bt709"),
                                         (["-vf", "setsar=2/1"], "sample_aspect_ratio 2:1")])
def test_real_clips_no_written_video_can_match_are_refused_before_any_training(corpus, tmp_path, capsys, tags, named):
    # HD footage tagged BT.709 validated, then the run trained and generated everything and was refused when
    # scored (the static control's video, like every method's, is written untagged: BT.601), with advice
    # to use --allow-mismatch, which imac-bench run does not have
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="ffmpeg tags the real clip")
    import subprocess

    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    from bench.runner import test_clips as real_test_clips
    clip = real_test_clips(data)[0]
    tagged = tmp_path / "tagged.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(clip.video),
                    "-c:v", "libx264", *tags, "-c:a", "copy", str(tagged)], check=True, timeout=60)
    shutil.move(tagged, clip.video)
    out = tmp_path / "run"
    code = bench_main(["run", "--data", str(data), "--out", str(out), "--methods", "s2g", "--quiet", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"1 real test clip(s) unlike every video the bench writes ({clip.label} ({named}))" in err
    assert "--allow-mismatch" not in err
    assert not (out / "run.json").exists() and not (out / "work").exists()


def test_a_bad_data_or_identities_is_named_before_the_run_folder_s_other_settings(corpus, finished_run, tmp_path):
    """The folder was made from ``corpus``: a mistyped --data (or an unknown speaker) is the fault to name, not
    that the folder holds a run of other data, which the user would then "fix" by deleting the folder."""
    with pytest.raises(DatasetError, match=r"nowhere/manifest.jsonl: manifest: file not found") as error:
        plan_run(settings(tmp_path / "nowhere", finished_run, custom={"copy": CopyMethod}))
    assert "holds a run" not in str(error.value)
    with pytest.raises(ValueError, match=r"--identities.*nobody") as error:
        plan_run(settings(corpus, finished_run, identities=["nobody"], custom={"copy": CopyMethod}))
    assert "holds a run" not in str(error.value)
